#include "convert/metadata_util.hpp"

#include "common/check.hpp"

namespace slidesparse {

SlideMetadata read_slide_metadata(const Checkpoint& ckpt) {
  std::string json;
  for (size_t i = 0; i < ckpt.shards.size(); ++i) {
    const SafetensorsFile f = SafetensorsFile::open(ckpt.shard_path(i));
    auto it = f.metadata().find(kMetadataKey);
    SLIDESPARSE_CHECK(it != f.metadata().end(), Status::kBadFormat,
                      "'{}' has no \"{}\" metadata: not a checkpoint written by `slidesparse prune`",
                      ckpt.shard_path(i), kMetadataKey);
    if (i == 0) json = it->second;
    SLIDESPARSE_CHECK(it->second == json, Status::kBadFormat,
                      "shard '{}' carries different slidesparse metadata than shard '{}'",
                      ckpt.shard_path(i), ckpt.shard_path(0));
  }
  return SlideMetadata::from_json(json, ckpt.path);
}

std::map<std::string, TensorLocation> index_tensors(const Checkpoint& ckpt) {
  std::map<std::string, TensorLocation> out;
  for (size_t i = 0; i < ckpt.shards.size(); ++i) {
    const SafetensorsFile f = SafetensorsFile::open(ckpt.shard_path(i));
    for (const auto& t : f.tensors()) {
      SLIDESPARSE_CHECK(!out.count(t.name), Status::kBadFormat, "tensor '{}' appears in two shards of '{}'",
                        t.name, ckpt.path);
      out[t.name] = TensorLocation{i, t};
    }
  }
  return out;
}

}  // namespace slidesparse
