#include "slidesparse/ternary.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.hpp"
#include "core/detail.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quant.hpp"

namespace slidesparse {
namespace {

void check_args(DType dtype, const void* w, int64_t n, int64_t k, std::string_view layer) {
  SLIDESPARSE_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16, Status::kUnsupported,
                    "layer '{}': cannot quantize dtype {} to ternary; supported: f32, f16, bf16",
                    detail::layer_label(layer), dtype_token(dtype));
  SLIDESPARSE_CHECK(n >= 1 && k >= 1, Status::kInvalidArgument,
                    "layer '{}': ternary quantization needs a non-empty [n, k] weight, got [{}, {}]",
                    detail::layer_label(layer), n, k);
  SLIDESPARSE_CHECK(w != nullptr, Status::kInvalidArgument, "layer '{}': null weight pointer for [{}, {}]",
                    detail::layer_label(layer), n, k);
}

void load_row(DType dtype, const uint8_t* src, int64_t k, float* out) {
  if (dtype == DType::kF32) {
    std::memcpy(out, src, size_t(k) * 4);
  } else if (dtype == DType::kBF16) {
    for (int64_t j = 0; j < k; ++j) out[j] = bf16_to_f32(detail::load<uint16_t>(src + 2 * j));
  } else {
    for (int64_t j = 0; j < k; ++j) out[j] = f16_to_f32(detail::load<uint16_t>(src + 2 * j));
  }
}

}  // namespace

float ternary_scale(DType dtype, const void* w, int64_t n, int64_t k, std::string_view layer) {
  check_args(dtype, w, n, k, layer);
  const auto* base = static_cast<const uint8_t*>(w);
  const int64_t B = int64_t(dtype_size(dtype));
  std::vector<float> row(static_cast<size_t>(k));
  // One running double over the whole tensor, row-major: the order is part of the definition (a
  // split into per-thread partial sums would round differently).
  double sum = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    load_row(dtype, base + r * k * B, k, row.data());
    for (int64_t j = 0; j < k; ++j) sum += double(std::fabs(row[size_t(j)]));
    if (!std::isfinite(sum)) {
      // Finite f32 magnitudes sum to at most n*k*2^128 < 2^192: only an inf or NaN weight gets here.
      int64_t j = 0;
      while (std::isfinite(row[size_t(j)])) ++j;
      SLIDESPARSE_FAIL(Status::kInvalidData, "layer '{}': non-finite weight {} at row {}, column {}",
                       detail::layer_label(layer), row[size_t(j)], r, j);
    }
  }
  if (sum == 0.0) return 1.0f;  // an all-zero tensor: any scale reproduces it
  // The floor keeps w / s finite when the mean of a denormal-tiny tensor rounds to (near) zero in f32.
  return std::max(float(sum / double(n * k)), kMinAmax);
}

TernaryResult quantize_ternary(Pattern p, DType dtype, const void* w, int64_t n, int64_t k, int8_t* q,
                               std::string_view layer, int num_threads) {
  SLIDESPARSE_CHECK(q != nullptr, Status::kInvalidArgument, "layer '{}': null output pointer for [{}, {}]",
                    detail::layer_label(layer), n, k);
  TernaryResult res;
  res.scale = ternary_scale(dtype, w, n, k, layer);  // also rejects non-finite weights
  const float s = res.scale;
  const auto* base = static_cast<const uint8_t*>(w);
  const int64_t B = int64_t(dtype_size(dtype));
  std::atomic<int64_t> nonzeros{0}, pruned{0};
  detail::parallel_rows(n, num_threads, k, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(k)), masked(static_cast<size_t>(k));
    std::vector<uint8_t> keep(static_cast<size_t>(k));
    int64_t nz = 0, dropped = 0;
    for (int64_t r = r0; r < r1; ++r) {
      load_row(dtype, base + r * k * B, k, row.data());
      int8_t* out = q + r * k;
      for (int64_t j = 0; j < k; ++j) {
        // clamp(rint(t), -1, 1) with rint half-to-even: |t| <= 1/2 gives 0 (exactly 1/2 is a tie
        // that goes to the even 0), |t| > 1/2 gives +-1 (1.5 rounds to 2, clamped).
        const float t = row[size_t(j)] / s;
        const int8_t c = t > 0.5f ? int8_t(1) : t < -0.5f ? int8_t(-1) : int8_t(0);
        out[j] = c;
        masked[size_t(j)] = c != 0 ? row[size_t(j)] : 0.0f;
        nz += c != 0;
      }
      // The core's magnitude rule on w * [q != 0]: zeros are never candidates, so a group within the
      // budget is untouched and otherwise the smallest original |w| go, ties keeping the lower index.
      dropped += prune_row_mask(p, PruneMethod::kMagnitude, masked.data(), k, nullptr, keep.data(), layer, r);
      for (int64_t j = 0; j < k; ++j)
        if (!keep[size_t(j)]) out[j] = 0;
    }
    nonzeros += nz;
    pruned += dropped;
  });
  res.nonzeros = nonzeros.load();
  res.pruned = pruned.load();
  return res;
}

}  // namespace slidesparse
