// slidesparse internal: writing a converted checkpoint atomically and streaming tensors into it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "convert/convert.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {

// One output tensor: its spec and a function that writes exactly its bytes.
struct OutTensor {
  TensorSpec spec;
  std::function<void(SafetensorsWriter&)> emit;
  uint64_t work_bytes = 0;  // weight for progress reporting (input bytes consumed)
};
using ShardPlanner = std::function<std::vector<OutTensor>(const SafetensorsFile& in)>;

// Streams `in` shard by shard into `out` (same kind: file -> file, directory -> directory).
// Directory outputs are staged in a hidden sibling directory and renamed into place at the end;
// file outputs are written by SafetensorsWriter (temp file + rename). Refuses an existing `out`
// unless `force`, and refuses out == in. Returns the output's total data bytes.
uint64_t write_converted(const Checkpoint& in, const std::string& out, bool force,
                         const std::string& slidesparse_metadata, const ShardPlanner& planner,
                         const ProgressFn& progress);

// Copy one tensor's bytes in chunks, dropping consumed input pages as it goes.
void copy_tensor(const SafetensorsFile& in, const TensorInfo& t, SafetensorsWriter& w);

// A unique hidden sibling path for staging OUT ("<dir>/.<name>.tmp-<pid>-<rand>").
std::filesystem::path staging_path_for(const std::filesystem::path& out);
// Rename `staged` to `out`, replacing an existing `out` (file or directory) as late as possible.
void move_into_place(const std::filesystem::path& staged, const std::filesystem::path& out);

// Fails with kAlreadyExists unless force; kInvalidArgument when out resolves to in.
void check_output_path(const std::string& in, const std::string& out, bool force);

// `out` without trailing separators: "pruned/" names the directory "pruned" (its parent is the
// staging location, and its file name the base of hidden sibling names).
std::string strip_trailing_separators(const std::string& out);

}  // namespace slidesparse
