#include "convert/output.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <system_error>

#include <nlohmann/json.hpp>

#include "common/check.hpp"
#include "io/atomic_file.hpp"

namespace slidesparse {
namespace fs = std::filesystem;

namespace {

// Chunk size for byte-for-byte copies: big enough to amortize syscalls, small enough that the
// resident set stays small while copying a multi-GiB embedding.
constexpr uint64_t kCopyChunkBytes = 64ull << 20;

std::string unique_suffix() {
  std::random_device rd;
  return std::to_string(::getpid()) + "-" + std::to_string(rd() & 0xffffff);
}

// Removes a staging directory unless released.
struct StagingDir {
  fs::path path;
  bool keep = false;
  ~StagingDir() {
    if (!keep && !path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

}  // namespace

std::string strip_trailing_separators(const std::string& out) {
  std::string s = out;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

void check_output_path(const std::string& in, const std::string& out_arg, bool force) {
  const std::string out = strip_trailing_separators(out_arg);
  std::error_code ec;
  SLIDESPARSE_CHECK(!out.empty(), Status::kInvalidArgument, "output path is empty");
  if (fs::exists(out, ec)) {
    SLIDESPARSE_CHECK(!fs::equivalent(in, out, ec), Status::kInvalidArgument,
                      "output '{}' is the input itself; write to a new path", out);
    SLIDESPARSE_CHECK(force, Status::kAlreadyExists,
                      "output '{}' already exists; pass --force to replace it", out);
  }
  fs::path parent = fs::path(out).parent_path();
  if (parent.empty()) parent = ".";
  SLIDESPARSE_CHECK(fs::is_directory(parent, ec), Status::kNotFound,
                    "output directory '{}' does not exist", parent.string());
}

void copy_tensor(const SafetensorsFile& in, const TensorInfo& t, SafetensorsWriter& w) {
  const uint8_t* p = in.data(t);
  for (uint64_t off = 0; off < t.nbytes(); off += kCopyChunkBytes) {
    const uint64_t n = std::min(kCopyChunkBytes, t.nbytes() - off);
    w.append(p + off, n);
    TensorInfo chunk = t;
    chunk.begin = t.begin + off;
    chunk.end = chunk.begin + n;
    in.release(chunk);
  }
}

fs::path staging_path_for(const fs::path& out) {
  fs::path parent = out.parent_path();
  if (parent.empty()) parent = ".";
  return parent / ("." + out.filename().string() + ".tmp-" + unique_suffix());
}

void move_into_place(const fs::path& staged, const fs::path& out) {
  // An existing output (only reachable with --force) is moved aside, replaced, then removed, so
  // at every instant OUT is either the old complete output or the new complete one.
  std::error_code ec;
  fs::path old;
  if (fs::exists(fs::symlink_status(out, ec))) {
    old = out.parent_path() / ("." + out.filename().string() + ".old-" + unique_suffix());
    fs::rename(out, old, ec);
    SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot move existing '{}' aside: {}", out.string(), ec.message());
  }
  fs::rename(staged, out, ec);
  if (ec) {
    const std::string why = ec.message();
    if (!old.empty()) fs::rename(old, out, ec);  // put the old output back
    SLIDESPARSE_FAIL(Status::kIoError, "cannot rename '{}' to '{}': {}", staged.string(), out.string(), why);
  }
  if (!old.empty()) fs::remove_all(old, ec);
}

uint64_t write_converted(const Checkpoint& in, const std::string& out, bool force,
                         const std::string& slidesparse_metadata, const ShardPlanner& planner,
                         const ProgressFn& progress) {
  check_output_path(in.path, out, force);

  uint64_t total_work = 0;
  std::vector<SafetensorsFile> shards;
  for (size_t i = 0; i < in.shards.size(); ++i) {
    shards.push_back(SafetensorsFile::open(in.shard_path(i)));
    for (const auto& t : shards.back().tensors()) total_work += t.nbytes();
  }

  const fs::path out_path(strip_trailing_separators(out));
  // Directory outputs are staged in a hidden sibling directory. A file output normally goes
  // straight to OUT (the writer's temp file + rename replaces a file atomically); only when OUT is
  // an existing directory (--force) is the file staged beside it, so that the directory survives
  // a failed conversion and is swapped out only at the very end.
  StagingDir staging;
  const bool stage_file = !in.is_directory && fs::is_directory(out_path);
  if (in.is_directory || stage_file) staging.path = staging_path_for(out_path);
  if (in.is_directory) {
    std::error_code ec;
    fs::create_directory(staging.path, ec);
    SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot create staging directory '{}': {}",
                      staging.path.string(), ec.message());
  }

  uint64_t done = 0, out_bytes = 0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const SafetensorsFile& shard = shards[i];
    std::vector<OutTensor> plan = planner(shard);
    std::vector<TensorSpec> specs;
    specs.reserve(plan.size());
    for (const auto& o : plan) specs.push_back(o.spec);
    auto metadata = shard.metadata();
    metadata[kMetadataKey] = slidesparse_metadata;
    const std::string path = in.is_directory ? (staging.path / in.shards[i]).string()
                             : stage_file      ? staging.path.string()
                                               : out_path.string();
    SafetensorsWriter writer(path, specs, metadata);
    for (const auto& o : plan) {
      if (progress) progress(done, total_work, o.spec.name);
      o.emit(writer);
      done += o.work_bytes;
      weight_map[o.spec.name] = in.shards[i];
    }
    writer.commit();
    for (const auto& s : specs) {
      uint64_t n = dtype_size(s.dtype);
      for (int64_t d : s.shape) n *= uint64_t(d);
      out_bytes += n;
    }
  }
  if (progress) progress(total_work, total_work, "");

  if (in.is_directory) {
    for (const auto& f : in.other_files) {
      std::error_code ec;
      fs::copy_file(fs::path(in.dir) / f, staging.path / f, ec);
      SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot copy '{}': {}", f, ec.message());
    }
    if (!in.index_json.empty()) {
      nlohmann::json index = nlohmann::json::parse(in.index_json);
      if (!index.contains("metadata") || !index["metadata"].is_object())
        index["metadata"] = nlohmann::json::object();
      index["metadata"]["total_size"] = out_bytes;
      index["metadata"][kMetadataKey] = slidesparse_metadata;
      index["weight_map"] = weight_map;
      write_text_file_atomic((staging.path / kIndexFileName).string(), index.dump(2) + "\n");
    }
  }
  if (in.is_directory || stage_file) {
    move_into_place(staging.path, out_path);
    staging.keep = true;
  }
  return out_bytes;
}

}  // namespace slidesparse
