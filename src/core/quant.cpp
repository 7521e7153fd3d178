#include "slidesparse/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

#include "common/check.hpp"
#include "core/detail.hpp"

namespace slidesparse {
namespace {

void check_quant_args(DType dtype, const void* v, int64_t rows, int64_t cols, const void* q,
                      const float* scale, const char* what) {
  SLIDESPARSE_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16,
                    Status::kUnsupported, "{}: cannot quantize dtype {}; supported: f32, f16, bf16",
                    what, dtype_token(dtype));
  SLIDESPARSE_CHECK(rows >= 0 && cols >= 0, Status::kInvalidArgument,
                    "{}: shape [{}, {}] has a negative dimension", what, rows, cols);
  SLIDESPARSE_CHECK(rows == 0 || scale != nullptr, Status::kInvalidArgument,
                    "{}: null scale pointer for {} rows", what, rows);
  SLIDESPARSE_CHECK(rows == 0 || cols == 0 || (v != nullptr && q != nullptr),
                    Status::kInvalidArgument, "{}: null input or output pointer for [{}, {}]",
                    what, rows, cols);
}

// rint of an f32 product of magnitude <= 2^31 in the default rounding mode (half to even, like
// cvt.rni on the GPU). Baseline x86-64 has no roundss, so nearbyint would be a libm call per
// element; cvtss2si rounds per MXCSR (nearest-even) in one instruction. The usual
// "+1.5*2^23 -1.5*2^23" trick is avoided: compilers contract it with the product into an FMA when
// FMA is enabled, skipping the f32 rounding of v*inv that the spec requires.
inline float round_half_even(float x) noexcept {
#if defined(__SSE2__) || defined(_M_X64)
  return float(_mm_cvtss_si32(_mm_set_ss(x)));
#else
  return std::nearbyint(x);
#endif
}

void load_row(DType dtype, const uint8_t* src, int64_t cols, float* out) {
  if (dtype == DType::kF32) {
    std::memcpy(out, src, size_t(cols) * 4);
  } else if (dtype == DType::kBF16) {
    // bf16 is the top half of an f32 (what bf16_to_f32 does), inlined so the loop vectorizes.
    for (int64_t j = 0; j < cols; ++j) {
      const uint32_t b = uint32_t(detail::load<uint16_t>(src + 2 * j)) << 16;
      std::memcpy(&out[j], &b, 4);
    }
  } else {
    for (int64_t j = 0; j < cols; ++j) out[j] = f16_to_f32(detail::load<uint16_t>(src + 2 * j));
  }
}

// Shared row driver: reads each row exactly as f32, rejects non-finite values, computes the scale
// pair from the clamped amax and hands (row, inverse scale) to `emit`.
template <class Emit>
void quantize_rows(DType dtype, const void* v, int64_t rows, int64_t cols, float qmax,
                   float* scale, int num_threads, const char* what, Emit&& emit) {
  if (cols == 0) {
    std::fill(scale, scale + rows, 1.0f);  // empty rows are all-zero rows
    return;
  }
  const auto* base = static_cast<const uint8_t*>(v);
  const int64_t B = int64_t(dtype_size(dtype));
  detail::parallel_rows(rows, num_threads, cols, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      load_row(dtype, base + r * cols * B, cols, row.data());
      // |x| as bits: for non-negative floats the integer order is the numeric order, and an
      // integer max reduction vectorizes where a float one (NaN semantics) does not. Any
      // non-finite value has the largest bits, so one comparison after the scan finds it.
      uint32_t amax_bits = 0;
      for (int64_t j = 0; j < cols; ++j) {
        uint32_t b;
        std::memcpy(&b, &row[size_t(j)], 4);
        amax_bits = std::max(amax_bits, b & 0x7fffffffu);
      }
      if (amax_bits >= 0x7f800000u) {
        int64_t j = 0;
        while (std::isfinite(row[size_t(j)])) ++j;
        SLIDESPARSE_FAIL(Status::kInvalidData, "{}: non-finite value {} at row {}, column {}",
                         what, row[size_t(j)], r, j);
      }
      float amax;
      std::memcpy(&amax, &amax_bits, 4);
      if (amax == 0.0f) {
        // An all-zero row: any scale reproduces it; 1 keeps dequantization trivially finite.
        scale[r] = 1.0f;
        emit(r, row.data(), 0.0f);
        continue;
      }
      // Clamping amax before taking either reciprocal keeps both finite for denormal-tiny rows.
      const float a = std::max(amax, kMinAmax);
      scale[r] = a / qmax;
      emit(r, row.data(), qmax / a);
    }
  });
}

}  // namespace

const char* precision_name(Precision p) noexcept {
  switch (p) {
    case Precision::kKeep: return "keep";
    case Precision::kInt8: return "int8";
    case Precision::kFp8: return "fp8";
    case Precision::kTernary: return "ternary";
  }
  return "unknown";
}

std::optional<Precision> precision_from_name(std::string_view s) noexcept {
  if (s == "keep") return Precision::kKeep;
  if (s == "int8") return Precision::kInt8;
  if (s == "fp8") return Precision::kFp8;
  if (s == "ternary") return Precision::kTernary;
  return std::nullopt;
}

void quantize_rows_i8(DType dtype, const void* v, int64_t rows, int64_t cols, int8_t* q,
                      float* scale, int num_threads) {
  check_quant_args(dtype, v, rows, cols, q, scale, "quantize_rows_i8");
  quantize_rows(dtype, v, rows, cols, kI8Max, scale, num_threads, "quantize_rows_i8",
                [&](int64_t r, const float* row, float inv) {
                  int8_t* out = q + r * cols;
                  for (int64_t j = 0; j < cols; ++j) {
                    const float t = round_half_even(row[j] * inv);
                    out[j] = int8_t(std::min(std::max(t, -128.0f), 127.0f));
                  }
                });
}

void quantize_rows_e4m3(DType dtype, const void* v, int64_t rows, int64_t cols, uint8_t* q,
                        float* scale, int num_threads) {
  check_quant_args(dtype, v, rows, cols, q, scale, "quantize_rows_e4m3");
  quantize_rows(dtype, v, rows, cols, kE4M3Max, scale, num_threads, "quantize_rows_e4m3",
                [&](int64_t r, const float* row, float inv) {
                  uint8_t* out = q + r * cols;
                  for (int64_t j = 0; j < cols; ++j) {
                    const uint8_t c = f32_to_e4m3(row[j] * inv);
                    out[j] = c == 0x80 ? uint8_t(0) : c;  // one zero code, so outputs compare bytewise
                  }
                });
}

}  // namespace slidesparse
