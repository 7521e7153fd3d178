// The CPU twin of the scale epilogue (src/kernels/epilogue.cuh), shared by the tier-1 tests that
// check a GPU result bit for bit: the contract's operations, in its order, one IEEE f32 operation
// at a time (the tests are compiled with -ffp-contract=off: no FMA), then the core's
// round-to-nearest-even f32_to_bf16 / f32_to_f16:
//   Y = cast( ((f32(acc) * s_x) * s_w) + bias ),   a null s_x, s_w or bias leaving its step out.
#pragma once

#include <cstdint>
#include <cstring>

#include "slidesparse/types.hpp"

namespace slidesparse::gputest {

inline float acc_to_f32(DType t, const uint8_t* p) {
  switch (t) {
    case DType::kI32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<float>(v);  // round to nearest, as __int2float_rn
    }
    case DType::kF32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DType::kBF16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return bf16_to_f32(v);
    }
    default: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return f16_to_f32(v);
    }
  }
}

inline uint16_t epilogue_twin(DType acc_dtype, const uint8_t* acc, const float* sx, const float* sw, const float* b,
                              DType y_dtype) {
  float v = acc_to_f32(acc_dtype, acc);
  if (sx != nullptr) v = v * *sx;
  if (sw != nullptr) v = v * *sw;
  if (b != nullptr) v = v + *b;
  return y_dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
}

}  // namespace slidesparse::gputest
