#include "slidesparse/prune.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.hpp"
#include "core/detail.hpp"

namespace slidesparse {
namespace {

void check_norms_present(PruneMethod method, const float* col_norms, int64_t k,
                         std::string_view layer) {
  SLIDESPARSE_CHECK(method != PruneMethod::kWanda || col_norms != nullptr || k == 0,
                    Status::kInvalidArgument,
                    "layer '{}': wanda pruning needs per-column activation norms (k = {}), got none",
                    detail::layer_label(layer), k);
}

// One row, norms already validated. Scores are products of two floats, exact in double, so the
// ranking never depends on rounding. At most two nonzeros per group are dropped (a group holds at
// most 2N, may keep 2N-2), so repeated "find the weakest" beats sorting.
int64_t prune_row(Pattern p, bool wanda, const float* w, int64_t k, const float* norms,
                  uint8_t* keep, std::string_view layer, int64_t row) {
  const int group = p.group(), allowed = p.keep();
  int idx[2 * kMaxN];
  double score[2 * kMaxN];
  int64_t dropped = 0;
  std::memset(keep, 1, size_t(k));
  for (int64_t base = 0; base < k; base += group) {
    const int len = int(std::min<int64_t>(group, k - base));
    int cnt = 0;
    for (int o = 0; o < len; ++o) {
      const float v = w[base + o];
      SLIDESPARSE_CHECK(std::isfinite(v), Status::kInvalidData,
                        "layer '{}': non-finite weight {} at row {}, column {}",
                        detail::layer_label(layer), v, row, base + o);
      idx[cnt] = o;
      cnt += v != 0.0f;
    }
    if (cnt <= allowed) continue;
    for (int i = 0; i < cnt; ++i) {
      const int64_t c = base + idx[i];
      score[i] = std::fabs(double(w[c])) * (wanda ? double(norms[c]) : 1.0);
    }
    for (int d = cnt - allowed; d > 0; --d) {
      // Weakest = lowest score; among equal scores the higher column goes first (lower is kept).
      int weak = -1;
      for (int i = 0; i < cnt; ++i) {
        if (!keep[base + idx[i]]) continue;
        if (weak < 0 || score[i] < score[weak] || (score[i] == score[weak] && idx[i] > idx[weak]))
          weak = i;
      }
      keep[base + idx[weak]] = 0;
      ++dropped;
    }
  }
  return dropped;
}

void load_row_f32(DType dtype, const uint8_t* src, int64_t k, float* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, src, size_t(k) * 4); return;
    case DType::kBF16:
      for (int64_t j = 0; j < k; ++j) out[j] = bf16_to_f32(detail::load<uint16_t>(src + 2 * j));
      return;
    case DType::kF16:
      for (int64_t j = 0; j < k; ++j) out[j] = f16_to_f32(detail::load<uint16_t>(src + 2 * j));
      return;
    default: break;
  }
  SLIDESPARSE_FAIL(Status::kInternal, "internal error: load_row_f32 got dtype {}", dtype_token(dtype));
}

template <class U>
void count_groups(Pattern p, DType dtype, const uint8_t* w, int64_t n, int64_t k,
                  PatternReport& rep) {
  constexpr int64_t B = sizeof(U);
  const U mask = detail::nonzero_mask<U>(dtype);
  const int64_t group = p.group(), groups = num_groups(p, k);
  rep.groups = n * groups;
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = w + r * k * B;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t end = std::min(k, (g + 1) * group);
      int64_t cnt = 0;
      for (int64_t c = g * group; c < end; ++c) cnt += (detail::load<U>(row + c * B) & mask) != 0;
      rep.nonzeros += cnt;
      rep.max_group_nonzeros = std::max(rep.max_group_nonzeros, cnt);
      if (cnt > p.keep()) {
        if (rep.violating_groups == 0) {
          rep.first_bad_row = r;
          rep.first_bad_group = g;
        }
        ++rep.violating_groups;
      }
    }
  }
}

}  // namespace

const char* prune_method_name(PruneMethod m) noexcept {
  switch (m) {
    case PruneMethod::kMagnitude: return "magnitude";
    case PruneMethod::kWanda: return "wanda";
  }
  return "unknown";
}

std::optional<PruneMethod> prune_method_from_name(std::string_view s) noexcept {
  if (s == "magnitude") return PruneMethod::kMagnitude;
  if (s == "wanda") return PruneMethod::kWanda;
  return std::nullopt;
}

void validate_col_norms(const float* col_norms, int64_t k, std::string_view layer) {
  SLIDESPARSE_CHECK(k >= 0, Status::kInvalidArgument, "layer '{}': negative k = {}",
                    detail::layer_label(layer), k);
  SLIDESPARSE_CHECK(col_norms != nullptr || k == 0, Status::kInvalidArgument,
                    "layer '{}': column norms missing (k = {})", detail::layer_label(layer), k);
  for (int64_t j = 0; j < k; ++j) {
    const float v = col_norms[j];
    SLIDESPARSE_CHECK(std::isfinite(v) && v >= 0.0f, Status::kInvalidData,
                      "layer '{}': column norm {} at column {} is not a finite value >= 0",
                      detail::layer_label(layer), v, j);
  }
}

int64_t prune_row_mask(Pattern p, PruneMethod method, const float* w, int64_t k,
                       const float* col_norms, uint8_t* keep, std::string_view layer,
                       int64_t row) {
  SLIDESPARSE_CHECK(k >= 0, Status::kInvalidArgument, "layer '{}': negative k = {}",
                    detail::layer_label(layer), k);
  SLIDESPARSE_CHECK((w != nullptr && keep != nullptr) || k == 0, Status::kInvalidArgument,
                    "layer '{}': null weight or mask pointer for a row of k = {}",
                    detail::layer_label(layer), k);
  check_norms_present(method, col_norms, k, layer);
  if (method == PruneMethod::kWanda) validate_col_norms(col_norms, k, layer);
  if (k == 0) return 0;
  return prune_row(p, method == PruneMethod::kWanda, w, k, col_norms, keep, layer, row);
}

int64_t prune_inplace(Pattern p, PruneMethod method, DType dtype, void* w, int64_t n, int64_t k,
                      const float* col_norms, std::string_view layer, int num_threads) {
  SLIDESPARSE_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16,
                    Status::kUnsupported,
                    "layer '{}': cannot prune dtype {}; pruning supports f32, f16, bf16",
                    detail::layer_label(layer), dtype_token(dtype));
  SLIDESPARSE_CHECK(n >= 0 && k >= 0, Status::kInvalidArgument,
                    "layer '{}': shape [{}, {}] has a negative dimension",
                    detail::layer_label(layer), n, k);
  SLIDESPARSE_CHECK(w != nullptr || n == 0 || k == 0, Status::kInvalidArgument,
                    "layer '{}': null weight pointer for a [{}, {}] matrix",
                    detail::layer_label(layer), n, k);
  check_norms_present(method, col_norms, k, layer);
  const bool wanda = method == PruneMethod::kWanda;
  if (wanda) validate_col_norms(col_norms, k, layer);

  if (n == 0 || k == 0) return 0;
  const int64_t B = int64_t(dtype_size(dtype));
  auto* base = static_cast<uint8_t*>(w);
  std::atomic<int64_t> total{0};
  detail::parallel_rows(n, num_threads, k, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(k));
    std::vector<uint8_t> keep(static_cast<size_t>(k));
    int64_t dropped = 0;
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* src = base + r * k * B;
      load_row_f32(dtype, src, k, row.data());
      const int64_t d = prune_row(p, wanda, row.data(), k, col_norms, keep.data(), layer, r);
      if (d == 0) continue;
      for (int64_t j = 0; j < k; ++j)
        if (!keep[size_t(j)]) std::memset(src + j * B, 0, size_t(B));
      dropped += d;
    }
    total += dropped;
  });
  return total.load();
}

PatternReport check_pattern(Pattern p, DType dtype, const void* w, int64_t n, int64_t k) {
  SLIDESPARSE_CHECK(n >= 0 && k >= 0, Status::kInvalidArgument,
                    "check_pattern: shape [{}, {}] has a negative dimension", n, k);
  SLIDESPARSE_CHECK(w != nullptr || n == 0 || k == 0, Status::kInvalidArgument,
                    "check_pattern: null weight pointer for a [{}, {}] matrix", n, k);
  PatternReport rep;
  rep.groups = n * num_groups(p, k);
  if (n == 0 || k == 0) return rep;
  detail::dispatch_size(dtype, [&](auto tag) {
    count_groups<decltype(tag)>(p, dtype, static_cast<const uint8_t*>(w), n, k, rep);
  });
  return rep;
}

}  // namespace slidesparse
