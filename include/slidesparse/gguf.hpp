// slidesparse: GGUF reader (memory-mapped, fully validated) and ggml block dequantization.
//
// File layout (GGUF v2/v3, little-endian): "GGUF", u32 version, u64 tensor count, u64 key/value
// count; then the key/values (string key, u32 value type, value), then the tensor infos (string
// name, u32 n_dims, u64 ne[n_dims] listed fastest-first, u32 ggml type, u64 offset relative to the
// data section); then padding up to `general.alignment` (default 32); then the data section.
// Strings are u64 length + bytes (no terminator); arrays are u32 element type + u64 count + items.
//
// The parser rejects (Error kBadFormat, naming the problem): bad magic, versions other than 2/3,
// counts that cannot fit in the remaining bytes, strings/arrays past the end of the file, array
// nesting deeper than kMaxGgufArrayDepth, unknown value types, duplicate keys or tensor names,
// n_dims outside 1..4, zero-sized or overflowing shapes, rows that are not a whole number of
// blocks, a bad general.alignment (not a u32 power of two), offsets not aligned, tensors past the
// end of the file or overlapping. Unknown ggml tensor types are Error kUnsupported naming the id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace slidesparse {

inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;
inline constexpr int kMaxGgufArrayDepth = 8;

enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* gguf_value_type_name(GgufValueType t) noexcept;

// One metadata value. Integers are held in `u` (unsigned kinds) or `i` (signed kinds), floats in
// `f`, bools in `b`; arrays hold their element type and items (which may be arrays again).
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  GgufValueType elem_type = GgufValueType::kU8;  // arrays only
  std::vector<GgufValue> items;                   // arrays only

  bool is_integer() const noexcept;
  bool is_float() const noexcept { return type == GgufValueType::kF32 || type == GgufValueType::kF64; }
  // The value as an unsigned integer when it is a non-negative integer of any width.
  std::optional<uint64_t> as_uint() const noexcept;
  std::optional<double> as_double() const noexcept;  // integers and floats
  nlohmann::json to_json() const;                     // arrays -> JSON arrays, strings as is
};

// ggml tensor element types that have a fixed block layout (ids from ggml.h).
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kBF16 = 30,
};
struct GgmlTypeTraits {
  const char* name;      // "Q4_1", "F32", ...
  uint32_t block_elems;  // elements per block (1 for plain types)
  uint32_t block_bytes;  // bytes per block
  bool dequantizable;    // dequantize_to_f32 supports it
};
// nullptr for ids this reader does not know.
const GgmlTypeTraits* ggml_type_traits(uint32_t type_id) noexcept;
std::string ggml_type_name(uint32_t type_id);  // "Q4_1", or "type 99" for unknown ids

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;   // dims, fastest-first: ne[0] is the contiguous (k) dimension
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;        // relative to the data section, as stored
  uint64_t begin = 0, end = 0;  // absolute byte range in the file
  uint64_t numel = 0;
  uint64_t nbytes() const noexcept { return end - begin; }
  // Row-major shape, slowest-first (what safetensors/PyTorch call the shape): ne reversed.
  std::vector<int64_t> shape() const;
};

struct GgufHeader {
  uint32_t version = 0;
  uint32_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;                // absolute start of the data section
  std::map<std::string, GgufValue> metadata;
  std::vector<std::string> metadata_order;  // keys in file order
  std::vector<GgufTensorInfo> tensors;      // file order of the tensor infos
  const GgufTensorInfo* find(std::string_view name) const noexcept;
  const GgufValue* value(std::string_view key) const noexcept;
};

// Parse and validate a complete file image (used by the reader and the fuzzer).
GgufHeader parse_gguf(const uint8_t* data, size_t size, std::string_view what = "buffer");

// `count` elements of ggml type `type` starting at `src` (a whole number of blocks, in
// `count / block_elems * block_bytes` bytes) to f32. kUnsupported for types without a dequantizer.
void dequantize_to_f32(GgmlType type, const uint8_t* src, uint64_t count, float* dst);

class GgufFile {
 public:
  static GgufFile open(const std::string& path);  // kNotFound / kIoError / kBadFormat / kUnsupported
  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const noexcept { return path_; }
  const GgufHeader& header() const noexcept { return header_; }
  const std::vector<GgufTensorInfo>& tensors() const noexcept { return header_.tensors; }
  const GgufTensorInfo* find(std::string_view name) const noexcept { return header_.find(name); }
  const GgufValue* value(std::string_view key) const noexcept { return header_.value(key); }
  const uint8_t* data(const GgufTensorInfo& t) const noexcept { return map_ + t.begin; }
  std::vector<float> dequantize(const GgufTensorInfo& t) const;  // all elements, ggml order
  uint64_t file_size() const noexcept { return size_; }

 private:
  GgufFile() = default;
  std::string path_;
  GgufHeader header_;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace slidesparse
