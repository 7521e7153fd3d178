// `slidesparse slide`: add P.slide_weight [n, k'] (the windowed 2:4 weight) next to every pruned
// P.weight, per format v1. Everything else is copied; an existing P.slide_weight is recomputed.
#include <chrono>
#include <set>

#include <fmt/ranges.h>

#include "common/check.hpp"
#include "convert/convert.hpp"
#include "convert/metadata_util.hpp"
#include "convert/output.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {

nlohmann::json slide_checkpoint(const std::string& in, const std::string& out, const SlideOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const int threads = resolve_threads(opts.num_threads);
  check_output_path(in, out, opts.force);
  const Checkpoint ckpt = Checkpoint::open(in);
  SlideMetadata meta = read_slide_metadata(ckpt);
  const auto tensors = index_tensors(ckpt);

  // Validate every layer against its tensor before writing anything.
  std::set<std::string> weights, stale;
  for (auto& [prefix, layer] : meta.layers) {
    const std::string name = prefix + ".weight";
    auto it = tensors.find(name);
    SLIDESPARSE_CHECK(it != tensors.end(), Status::kBadFormat,
                      "metadata lists layer '{}' but the checkpoint has no tensor '{}'", prefix, name);
    const TensorInfo& t = it->second.info;
    SLIDESPARSE_CHECK(t.shape.size() == 2 && t.shape[1] == layer.k, Status::kBadFormat,
                      "'{}' has shape [{}], metadata says k = {}", name, fmt::join(t.shape, ", "), layer.k);
    SLIDESPARSE_CHECK(layer.precision == dtype_token(t.dtype), Status::kBadFormat,
                      "'{}' is {}, metadata says precision {}", name, dtype_token(t.dtype), layer.precision);
    layer.k_slide = slide_k(meta.pattern, layer.k);
    weights.insert(name);
    stale.insert(prefix + ".slide_weight");
  }
  const std::string meta_json = meta.to_json();

  nlohmann::json layers = nlohmann::json::array();
  auto planner = [&](const SafetensorsFile& shard) {
    std::vector<OutTensor> plan;
    for (const TensorInfo& t : shard.tensors()) {
      if (stale.count(t.name)) continue;  // recomputed below from P.weight
      plan.push_back({{t.name, t.dtype, t.shape}, [&shard, t](SafetensorsWriter& w) { copy_tensor(shard, t, w); },
                      t.nbytes()});
      if (!weights.count(t.name)) continue;
      const std::string prefix = layer_prefix(t.name);
      const int64_t n = t.shape[0], k = t.shape[1], kp = meta.layers.at(prefix).k_slide;
      auto emit = [&, t, n, k, kp](SafetensorsWriter& w) {
        std::vector<uint8_t> buf(size_t(n * kp) * dtype_size(t.dtype));
        slide_weight(meta.pattern, t.dtype, shard.data(t), n, k, buf.data(), kp, t.name, threads);
        shard.release(t);
        w.append(buf.data(), buf.size());
        layers.push_back({{"tensor", t.name}, {"shape", {n, k}}, {"k_slide", kp},
                          {"dtype", dtype_token(t.dtype)}, {"expansion", double(kp) / double(k)}});
      };
      plan.push_back({{prefix + ".slide_weight", t.dtype, {n, kp}}, emit, 0});
    }
    return plan;
  };
  const uint64_t out_bytes = write_converted(ckpt, out, opts.force, meta_json, planner, opts.progress);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {{"command", "slide"},   {"input", in},         {"output", out},
          {"pattern", meta.pattern.str()}, {"layers", layers}, {"num_layers", layers.size()},
          {"output_bytes", out_bytes}, {"threads", threads}, {"seconds", seconds}};
}

}  // namespace slidesparse
