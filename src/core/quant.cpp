#include "slidesparse/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

void load_row(DType dtype, const uint8_t* src, int64_t cols, float* out) {
  if (dtype == DType::kF32) {
    std::memcpy(out, src, size_t(cols) * 4);
  } else if (dtype == DType::kBF16) {
    for (int64_t j = 0; j < cols; ++j) out[j] = bf16_to_f32(detail::load<uint16_t>(src + 2 * j));
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
      float amax = 0.0f;
      for (int64_t j = 0; j < cols; ++j) {
        const float x = row[size_t(j)];
        SLIDESPARSE_CHECK(std::isfinite(x), Status::kInvalidData,
                          "{}: non-finite value {} at row {}, column {}", what, x, r, j);
        amax = std::max(amax, std::fabs(x));
      }
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
  }
  return "unknown";
}

std::optional<Precision> precision_from_name(std::string_view s) noexcept {
  if (s == "keep") return Precision::kKeep;
  if (s == "int8") return Precision::kInt8;
  if (s == "fp8") return Precision::kFp8;
  return std::nullopt;
}

void quantize_rows_i8(DType dtype, const void* v, int64_t rows, int64_t cols, int8_t* q,
                      float* scale, int num_threads) {
  check_quant_args(dtype, v, rows, cols, q, scale, "quantize_rows_i8");
  quantize_rows(dtype, v, rows, cols, kI8Max, scale, num_threads, "quantize_rows_i8",
                [&](int64_t r, const float* row, float inv) {
                  int8_t* out = q + r * cols;
                  for (int64_t j = 0; j < cols; ++j) {
                    // nearbyint in the default rounding mode rounds half to even (cvt.rni on GPU).
                    const float t = std::nearbyint(row[j] * inv);
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
