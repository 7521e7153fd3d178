// Test helper: hand-built GGUF images, written byte by byte from the format description and
// independent of src/io/gguf.cpp (the code under test). Also block encoders for exact tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace slidesparse::ggufbuild {

inline void put_le(std::vector<uint8_t>& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
inline void put_str(std::vector<uint8_t>& b, const std::string& s) {
  put_le(b, s.size(), 8);
  b.insert(b.end(), s.begin(), s.end());
}
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Value type ids from the GGUF spec.
enum : uint32_t { kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64 };
// ggml tensor type ids.
enum : uint32_t { tF32 = 0, tF16 = 1, tQ4_0 = 2, tQ4_1 = 3, tQ8_0 = 8, tQ6_K = 14, tBF16 = 30 };

struct Builder {
  uint32_t version = 3;
  uint32_t alignment = 32;  // layout only: add a general.alignment key yourself to change it
  std::vector<uint8_t> kv;
  uint64_t n_kv = 0;
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> bytes;
    int64_t offset_override = -1;  // >= 0: written as the info's offset instead of the real one
  };
  std::vector<Tensor> tensors;

  void raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& value) {
    put_str(kv, key);
    put_le(kv, type, 4);
    kv.insert(kv.end(), value.begin(), value.end());
    ++n_kv;
  }
  void u32(const std::string& key, uint32_t v) {
    std::vector<uint8_t> b;
    put_le(b, v, 4);
    raw(key, kU32, b);
  }
  void f32(const std::string& key, float v) {
    std::vector<uint8_t> b;
    put_le(b, f32_bits(v), 4);
    raw(key, kF32, b);
  }
  void boolean(const std::string& key, bool v) { raw(key, kBool, {uint8_t(v)}); }
  void str(const std::string& key, const std::string& v) {
    std::vector<uint8_t> b;
    put_str(b, v);
    raw(key, kString, b);
  }
  void str_array(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> b;
    put_le(b, kString, 4);
    put_le(b, v.size(), 8);
    for (const auto& s : v) put_str(b, s);
    raw(key, kArray, b);
  }
  void i32_array(const std::string& key, const std::vector<int32_t>& v) {
    std::vector<uint8_t> b;
    put_le(b, kI32, 4);
    put_le(b, v.size(), 8);
    for (int32_t x : v) put_le(b, uint32_t(x), 4);
    raw(key, kArray, b);
  }
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> bytes) {
    tensors.push_back({name, std::move(ne), type, std::move(bytes)});
  }
  void f32_tensor(const std::string& name, std::vector<uint64_t> ne, const std::vector<float>& v) {
    std::vector<uint8_t> b;
    for (float f : v) put_le(b, f32_bits(f), 4);
    tensor(name, std::move(ne), tF32, std::move(b));
  }

  // Offsets of each tensor relative to the data section (aligned, in declaration order).
  std::vector<uint64_t> offsets() const {
    std::vector<uint64_t> o;
    uint64_t at = 0;
    for (const auto& t : tensors) {
      o.push_back(at);
      at += t.bytes.size();
      at = (at + alignment - 1) / alignment * alignment;
    }
    return o;
  }
  std::vector<uint8_t> build() const {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
    put_le(b, version, 4);
    put_le(b, tensors.size(), 8);
    put_le(b, n_kv, 8);
    b.insert(b.end(), kv.begin(), kv.end());
    const auto off = offsets();
    for (size_t i = 0; i < tensors.size(); ++i) {
      put_str(b, tensors[i].name);
      put_le(b, tensors[i].ne.size(), 4);
      for (uint64_t d : tensors[i].ne) put_le(b, d, 8);
      put_le(b, tensors[i].type, 4);
      put_le(b, tensors[i].offset_override >= 0 ? uint64_t(tensors[i].offset_override) : off[i], 8);
    }
    if (tensors.empty()) return b;
    while (b.size() % alignment) b.push_back(0);
    const size_t data = b.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      b.resize(data + off[i], 0);
      b.insert(b.end(), tensors[i].bytes.begin(), tensors[i].bytes.end());
    }
    return b;
  }
};

// A Q8_0 block: f16 scale bits, then 32 int8.
inline std::vector<uint8_t> q8_0_block(uint16_t d_bits, const std::vector<int8_t>& q) {
  std::vector<uint8_t> b;
  put_le(b, d_bits, 2);
  for (int8_t x : q) b.push_back(uint8_t(x));
  return b;
}

}  // namespace slidesparse::ggufbuild
