#include "slidesparse/nm_mask.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.hpp"
#include "core/detail.hpp"

namespace slidesparse {
namespace {

// |w| as its f32 bit pattern: non-negative floats order like their bits, and -0.0 maps to 0.
uint32_t abs_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b & 0x7fffffffu;
}

float load_f32(DType dtype, const uint8_t* p) {
  switch (dtype) {
    case DType::kF32: return detail::load<float>(p);
    case DType::kBF16: return bf16_to_f32(detail::load<uint16_t>(p));
    case DType::kF16: return f16_to_f32(detail::load<uint16_t>(p));
    default: break;
  }
  SLIDESPARSE_FAIL(Status::kInternal, "internal error: nm_mask load of dtype {}", dtype_token(dtype));
}

}  // namespace

void nm_check_keep_group(int keep, int group) {
  SLIDESPARSE_CHECK(group >= 1 && group <= kNmMaxGroup && keep >= 0 && keep <= group,
                    Status::kInvalidArgument,
                    "nm mask keep:group = {}:{} is not valid: need 1 <= group <= {} and 0 <= keep <= group",
                    keep, group, kNmMaxGroup);
}

int64_t nm_mask_row(const float* w, int64_t k, int keep, int group, uint8_t* mask,
                    std::string_view layer, int64_t row) {
  nm_check_keep_group(keep, group);
  SLIDESPARSE_CHECK(k >= 0, Status::kInvalidArgument, "layer '{}': negative k = {}",
                    detail::layer_label(layer), k);
  SLIDESPARSE_CHECK((w != nullptr && mask != nullptr) || k == 0, Status::kInvalidArgument,
                    "layer '{}': null weight or mask pointer for a row of k = {}",
                    detail::layer_label(layer), k);
  int64_t kept = 0;
  uint32_t a[kNmMaxGroup];
  for (int64_t base = 0; base < k; base += group) {
    const int len = int(std::min<int64_t>(group, k - base));
    for (int o = 0; o < len; ++o) {
      SLIDESPARSE_CHECK(!std::isnan(w[base + o]), Status::kInvalidData,
                        "layer '{}': NaN weight at row {}, column {} (an N:M mask needs ordered magnitudes)",
                        detail::layer_label(layer), row, base + o);
      a[o] = abs_bits(w[base + o]);
    }
    // Element o's rank = how many group members beat it (larger |w|, or equal and lower column).
    for (int o = 0; o < len; ++o) {
      int rank = 0;
      for (int j = 0; j < len; ++j) rank += (a[j] > a[o]) || (a[j] == a[o] && j < o);
      mask[base + o] = uint8_t(rank < keep);
      kept += rank < keep;
    }
  }
  return kept;
}

int64_t nm_mask(DType dtype, const void* w, int64_t rows, int64_t k, int64_t ld, int keep,
                int group, uint8_t* mask, void* w_out, std::string_view layer) {
  SLIDESPARSE_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
                    Status::kUnsupported, "layer '{}': nm mask of dtype {}; supported: f32, bf16, f16",
                    detail::layer_label(layer), dtype_token(dtype));
  SLIDESPARSE_CHECK(rows >= 0 && k >= 0 && ld >= k, Status::kInvalidArgument,
                    "layer '{}': shape [{}, {}] with row stride {} is not valid (need rows, k >= 0, ld >= k)",
                    detail::layer_label(layer), rows, k, ld);
  nm_check_keep_group(keep, group);
  if (rows == 0 || k == 0) return 0;
  SLIDESPARSE_CHECK(w != nullptr && mask != nullptr, Status::kInvalidArgument,
                    "layer '{}': null weight or mask pointer", detail::layer_label(layer));
  const int64_t B = int64_t(dtype_size(dtype));
  const auto* src = static_cast<const uint8_t*>(w);
  auto* dst = static_cast<uint8_t*>(w_out);
  std::vector<float> row(static_cast<size_t>(k));
  int64_t kept = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* in = src + r * ld * B;
    for (int64_t c = 0; c < k; ++c) row[size_t(c)] = load_f32(dtype, in + c * B);
    uint8_t* m = mask + r * k;
    kept += nm_mask_row(row.data(), k, keep, group, m, layer, r);
    if (dst != nullptr) {
      uint8_t* out = dst + r * k * B;
      for (int64_t c = 0; c < k; ++c) {
        if (m[c])
          std::memcpy(out + c * B, in + c * B, size_t(B));
        else
          std::memset(out + c * B, 0, size_t(B));
      }
    }
  }
  return kept;
}

}  // namespace slidesparse
