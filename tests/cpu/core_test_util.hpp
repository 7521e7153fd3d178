// Test helpers shared by the core_* suites: moving small exact values in and out of dtype bytes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "reference/reference.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse::test {

inline reference::ElemKind elem_kind(DType t) { return {dtype_size(t), dtype_is_float(t)}; }

// Values must be exactly representable in t (the tests only use small integers / dyadic values).
inline std::vector<uint8_t> encode(DType t, const std::vector<double>& v) {
  const size_t b = dtype_size(t);
  std::vector<uint8_t> out(v.size() * b);
  for (size_t i = 0; i < v.size(); ++i) {
    uint8_t* p = &out[i * b];
    const double x = v[i];
    switch (t) {
      case DType::kF32: { const float f = float(x); std::memcpy(p, &f, 4); break; }
      case DType::kF64: std::memcpy(p, &x, 8); break;
      case DType::kBF16: { const uint16_t h = f32_to_bf16(float(x)); std::memcpy(p, &h, 2); break; }
      case DType::kF16: { const uint16_t h = f32_to_f16(float(x)); std::memcpy(p, &h, 2); break; }
      case DType::kE4M3: *p = f32_to_e4m3(float(x)); break;
      case DType::kI8: { const int8_t q = int8_t(x); std::memcpy(p, &q, 1); break; }
      case DType::kI16: { const int16_t q = int16_t(x); std::memcpy(p, &q, 2); break; }
      case DType::kI32: { const int32_t q = int32_t(x); std::memcpy(p, &q, 4); break; }
      case DType::kI64: { const int64_t q = int64_t(x); std::memcpy(p, &q, 8); break; }
      default: throw std::invalid_argument(std::string("encode: dtype ") + dtype_token(t));
    }
    if (double(element_to_f32(t, p)) != x && !(std::isnan(x)))
      throw std::invalid_argument("encode: value " + std::to_string(x) + " not exact in " +
                                  dtype_token(t));
  }
  return out;
}

inline std::vector<double> decode(DType t, const std::vector<uint8_t>& bytes) {
  const size_t b = dtype_size(t);
  std::vector<double> out(bytes.size() / b);
  for (size_t i = 0; i < out.size(); ++i) {
    if (t == DType::kF64) {
      std::memcpy(&out[i], &bytes[i * b], 8);
    } else if (t == DType::kI64) {
      int64_t q;
      std::memcpy(&q, &bytes[i * b], 8);
      out[i] = double(q);
    } else {
      out[i] = double(element_to_f32(t, &bytes[i * b]));
    }
  }
  return out;
}

inline std::vector<int64_t> to_i64(const std::vector<double>& v) {
  std::vector<int64_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != std::floor(v[i])) throw std::invalid_argument("to_i64: not an integer");
    out[i] = int64_t(v[i]);
  }
  return out;
}

}  // namespace slidesparse::test
