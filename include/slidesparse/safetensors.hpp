// slidesparse: safetensors reader (memory-mapped, fully validated) and streaming writer (atomic).
//
// File layout: u64 little-endian header length H, H bytes of JSON object, then the data buffer.
// Each tensor entry: {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]} relative to
// the data buffer. "__metadata__" maps string -> string. The reader rejects (Error kBadFormat, with
// a message naming the problem): files shorter than 8 bytes, H past the end of the file or over
// kMaxHeaderBytes, header not JSON or not an object, unknown dtype, negative or non-integer shape,
// byte size != numel * dtype size (overflow-checked), offsets reversed, out of range, overlapping,
// leaving holes, or not covering the whole buffer, non-string metadata values, duplicate names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slidesparse/types.hpp"

namespace slidesparse {

inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // same limit as the reference library

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data buffer
  uint64_t nbytes() const noexcept { return end - begin; }
  int64_t numel() const noexcept;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset (file order)
  std::map<std::string, std::string> metadata;
  uint64_t header_bytes = 0;        // H
  uint64_t data_offset = 0;         // 8 + H
  const TensorInfo* find(std::string_view name) const noexcept;
};

// Parse and validate a complete file image (used by the reader and the fuzzer). `what` names the
// source in messages (a path).
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, std::string_view what = "buffer");

// Read-only memory-mapped file. Tensor bytes are read in place; release() drops a tensor's pages
// from this process's resident set once it has been consumed, so streaming a checkpoint keeps peak
// memory near one tensor.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);  // kNotFound / kIoError / kBadFormat
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const noexcept { return path_; }
  const SafetensorsHeader& header() const noexcept { return header_; }
  const std::vector<TensorInfo>& tensors() const noexcept { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const noexcept { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const noexcept { return header_.find(name); }
  const uint8_t* data(const TensorInfo& t) const noexcept;  // pointer into the mapping
  void release(const TensorInfo& t) const noexcept;         // madvise(DONTNEED) its pages
  uint64_t file_size() const noexcept { return size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  SafetensorsHeader header_;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
};

// Streaming writer. All tensor specs (name, dtype, shape) and the metadata are declared up front,
// so the header is written first and data then streams tensor by tensor, in declaration order.
// Output goes to a temporary file in the destination's directory; commit() flushes, fsyncs and
// renames it into place. Destruction without commit() removes the temporary file.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata = {});
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  // Append bytes of the current tensor; may be called several times per tensor. Throws
  // kInternal when more bytes are written than the declared tensors hold.
  void append(const void* bytes, size_t n);
  // Convenience: the whole next tensor at once; checks the name matches the declared order.
  void write(std::string_view name, const void* bytes, size_t n);
  // All declared bytes must have been written (kInternal otherwise).
  void commit();
  const std::string& path() const noexcept { return path_; }

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

// Whole-file helpers for small files (tests, tools): write and read all tensors in memory.
struct OwnedTensor {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
};
void write_safetensors(const std::string& path, const std::vector<OwnedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace slidesparse
