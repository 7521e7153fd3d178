// libFuzzer target: parse_gguf on arbitrary bytes. Rejection must be Error(kBadFormat) or, for an
// unknown ggml type id, Error(kUnsupported); any other exception, a crash, or an accepted header
// that breaks the documented invariants is a bug. Accepted tensors are dequantized when the type
// has a dequantizer (reads must stay inside the tensor's byte range: ASan checks that).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "slidesparse/error.hpp"
#include "slidesparse/gguf.hpp"

namespace {

void require(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  slidesparse::GgufHeader h;
  try {
    h = slidesparse::parse_gguf(data, size, "fuzz-input");
  } catch (const slidesparse::Error& e) {
    require((e.status() == slidesparse::Status::kBadFormat ||
             e.status() == slidesparse::Status::kUnsupported) &&
            !e.message().empty());
    return 0;
  }
  require(h.version == 2 || h.version == 3);
  require(h.alignment != 0 && (h.alignment & (h.alignment - 1)) == 0);
  require(h.metadata.size() == h.metadata_order.size());
  for (const auto& t : h.tensors) {
    const auto* tr = slidesparse::ggml_type_traits(uint32_t(t.type));
    require(tr != nullptr && !t.ne.empty() && t.ne.size() <= 4);
    require(t.begin >= h.data_offset && t.begin <= t.end && t.end <= size);
    require(t.numel % tr->block_elems == 0);
    require(t.nbytes() == t.numel / tr->block_elems * tr->block_bytes);
    require(h.find(t.name) != nullptr);
    // Dequantize a bounded prefix (whole rows) so that huge claimed shapes stay cheap.
    if (tr->dequantizable && t.numel <= (1u << 16)) {
      std::vector<float> out(t.numel);
      slidesparse::dequantize_to_f32(t.type, data + t.begin, t.numel, out.data());
    }
  }
  return 0;
}
