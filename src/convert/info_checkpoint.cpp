// `slidesparse info`: tensors, shapes, dtypes, metadata and per-layer sparsity.
#include "common/check.hpp"
#include "convert/convert.hpp"
#include "slidesparse/checkpoint.hpp"

namespace slidesparse {

nlohmann::json info_checkpoint(const std::string& path, const ProgressFn& progress) {
  const Checkpoint ckpt = Checkpoint::open(path);
  std::vector<SafetensorsFile> shards;
  for (size_t i = 0; i < ckpt.shards.size(); ++i) shards.push_back(SafetensorsFile::open(ckpt.shard_path(i)));

  // Layers to scan: those the slidesparse metadata lists, else the default prune targets.
  std::optional<SlideMetadata> meta;
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : shards.front().metadata()) {
    if (key == kMetadataKey) {
      meta = SlideMetadata::from_json(value, ckpt.shard_path(0));
      metadata[key] = nlohmann::json::parse(value);
    } else {
      metadata[key] = value;
    }
  }

  nlohmann::json tensors = nlohmann::json::array(), layers = nlohmann::json::array();
  uint64_t total_bytes = 0, scan_total = 0, scan_done = 0;
  int64_t params = 0;
  auto is_layer = [&](const TensorInfo& t) {
    if (t.shape.size() != 2) return false;
    if (meta) return meta->layers.count(layer_prefix(t.name)) > 0 && t.name == layer_prefix(t.name) + ".weight";
    return is_default_target(t.name);
  };
  for (const auto& f : shards)
    for (const auto& t : f.tensors())
      if (is_layer(t)) scan_total += t.nbytes();

  for (size_t i = 0; i < shards.size(); ++i) {
    for (const auto& t : shards[i].tensors()) {
      total_bytes += t.nbytes();
      params += t.numel();
      tensors.push_back({{"name", t.name}, {"dtype", dtype_token(t.dtype)}, {"shape", t.shape},
                         {"bytes", t.nbytes()}, {"shard", ckpt.shards[i]}});
      if (!is_layer(t)) continue;
      if (progress) progress(scan_done, scan_total, t.name);
      const int64_t n = t.shape[0], k = t.shape[1];
      nlohmann::json lj = {{"tensor", t.name}, {"shape", {n, k}}, {"dtype", dtype_token(t.dtype)}};
      const uint8_t* p = shards[i].data(t);
      if (meta) {
        const LayerFormat& lf = meta->layers.at(layer_prefix(t.name));
        if (!lf.quant.empty()) lj["quant"] = lf.quant;
        const PatternReport pr = check_pattern(meta->pattern, t.dtype, p, n, k);
        lj["sparsity"] = n * k > 0 ? 1.0 - double(pr.nonzeros) / double(n * k) : 0.0;
        lj["pattern_ok"] = pr.ok();
        lj["max_group_nonzeros"] = pr.max_group_nonzeros;
      } else {
        const size_t es = dtype_size(t.dtype);
        int64_t zeros = 0;
        for (int64_t e = 0; e < n * k; ++e) zeros += element_is_zero(t.dtype, p + size_t(e) * es);
        lj["sparsity"] = n * k > 0 ? double(zeros) / double(n * k) : 0.0;
      }
      shards[i].release(t);
      scan_done += t.nbytes();
      layers.push_back(lj);
    }
  }
  if (progress) progress(scan_total, scan_total, "");
  return {{"command", "info"}, {"path", path}, {"kind", ckpt.is_directory ? "directory" : "file"},
          {"shards", ckpt.shards}, {"other_files", ckpt.other_files}, {"metadata", metadata},
          {"num_tensors", tensors.size()}, {"params", params}, {"total_bytes", total_bytes},
          {"tensors", tensors}, {"layers", layers}};
}

}  // namespace slidesparse
