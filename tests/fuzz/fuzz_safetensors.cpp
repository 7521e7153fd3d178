// libFuzzer target: parse_safetensors on arbitrary bytes. Rejection must be Error(kBadFormat);
// any other exception, a crash, or an accepted header that breaks the documented invariants is a
// bug. Accepted headers carrying slidesparse metadata also exercise SlideMetadata::from_json.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "slidesparse/checkpoint.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/safetensors.hpp"

namespace {

void require(bool cond) {
  if (!cond) std::abort();
}

void check_invariants(const slidesparse::SafetensorsHeader& h, size_t size) {
  require(h.data_offset == 8 + h.header_bytes && h.data_offset <= size);
  const uint64_t buffer = size - h.data_offset;
  uint64_t covered = 0;
  for (const auto& t : h.tensors) {
    require(t.begin == covered && t.begin <= t.end && t.end <= buffer);
    require(t.numel() >= 0);
    require(t.nbytes() == uint64_t(t.numel()) * slidesparse::dtype_size(t.dtype));
    require(h.find(t.name) != nullptr);
    covered = t.end;
  }
  require(covered == buffer);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  slidesparse::SafetensorsHeader h;
  try {
    h = slidesparse::parse_safetensors(data, size, "fuzz-input");
  } catch (const slidesparse::Error& e) {
    require(e.status() == slidesparse::Status::kBadFormat && !e.message().empty());
    return 0;
  }
  check_invariants(h, size);

  const auto it = h.metadata.find(slidesparse::kMetadataKey);
  if (it != h.metadata.end()) {
    try {
      const auto m = slidesparse::SlideMetadata::from_json(it->second, "fuzz-input");
      // Whatever was accepted must serialize and parse back to the same layers.
      const auto back = slidesparse::SlideMetadata::from_json(m.to_json(), "round-trip");
      require(back.layers.size() == m.layers.size() && back.pattern == m.pattern);
    } catch (const slidesparse::Error& e) {
      require(e.status() == slidesparse::Status::kBadFormat ||
              e.status() == slidesparse::Status::kUnsupported);
    }
  }
  return 0;
}
