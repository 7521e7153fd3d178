// slidesparse internal: reading the format-v1 metadata of a pruned checkpoint.
#pragma once

#include <string>

#include "slidesparse/checkpoint.hpp"

namespace slidesparse {

// The slidesparse metadata of a checkpoint; every shard must carry the same value. Throws
// kBadFormat when it is missing ("not a slidesparse checkpoint") or differs between shards.
SlideMetadata read_slide_metadata(const Checkpoint& ckpt);

// Locates tensors by name across the shards of a checkpoint.
struct TensorLocation {
  size_t shard = 0;
  TensorInfo info;
};
std::map<std::string, TensorLocation> index_tensors(const Checkpoint& ckpt);

}  // namespace slidesparse
