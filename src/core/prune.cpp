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
  SLIDESPARSE_CHECK(method != PruneMethod::kSparseGpt, Status::kInvalidArgument,
                    "layer '{}': sparsegpt needs the input Hessian; use prune_obs",
                    detail::layer_label(layer));
}

// The first column holding an inf or NaN, or -1. A branch-free scan first (vectorizes), since
// non-finite weights are an error path.
int64_t first_nonfinite(const float* w, int64_t k) {
  uint32_t any = 0;
  for (int64_t j = 0; j < k; ++j) {
    uint32_t b;
    std::memcpy(&b, &w[j], 4);
    any |= uint32_t((b & 0x7f800000u) == 0x7f800000u);
  }
  if (!any) return -1;
  for (int64_t j = 0; j < k; ++j)
    if (!std::isfinite(w[j])) return j;
  return -1;
}

// One row, finite and with validated norms; drop(column) is called for every pruned element.
//
// Each nonzero gets one integer key so that a single unsigned compare applies both the score order
// and the tie rule: the score's bits (non-negative floats and doubles order like their bit
// patterns) over (31 - offset) in the low 5 bits (group <= 32), so that among equal scores the
// higher offset is the weaker one. Magnitude: the f32 bits of |w| shifted left by 5. Wanda: the
// double product |w| * norm, exact because two 24-bit significands need at most 48 of double's 53
// bits, which also leaves the low 5 bits zero and free. A group holds at most 2N nonzeros and may
// keep 2N-2, so at most the two smallest keys go.
template <bool kWandaScore, class Drop>
int64_t prune_row(Pattern p, const float* w, int64_t k, const float* norms, Drop&& drop) {
  const int group = p.group(), allowed = p.keep();
  constexpr uint64_t kZero = ~uint64_t(0);  // zeros are never candidates
  uint64_t key[2 * kMaxN];
  int64_t dropped = 0;
  for (int64_t base = 0; base < k; base += group) {
    const int len = int(std::min<int64_t>(group, k - base));
    if (len <= allowed) continue;
    int cnt = 0;
    for (int o = 0; o < len; ++o) {
      uint32_t bits;
      std::memcpy(&bits, &w[base + o], 4);
      bits &= 0x7fffffffu;
      uint64_t score;
      if constexpr (kWandaScore) {
        const double prod = double(std::fabs(w[base + o])) * double(norms[base + o]);
        std::memcpy(&score, &prod, 8);
      } else {
        score = uint64_t(bits) << 5;
      }
      key[o] = bits != 0 ? (score | uint64_t(31 - o)) : kZero;
      cnt += bits != 0;
    }
    if (cnt <= allowed) continue;
    uint64_t k1 = kZero, k2 = kZero;
    int o1 = -1, o2 = -1;
    // Keys are distinct (offset bits), so this finds the two smallest; written with selects
    // because which element wins is data-dependent and would mispredict as branches.
    for (int o = 0; o < len; ++o) {
      const uint64_t x = key[o];
      const bool lt1 = x < k1, lt2 = x < k2;
      k2 = lt1 ? k1 : (lt2 ? x : k2);
      o2 = lt1 ? o1 : (lt2 ? o : o2);
      k1 = lt1 ? x : k1;
      o1 = lt1 ? o : o1;
    }
    drop(base + o1);
    if (cnt - allowed == 2) drop(base + o2);
    dropped += cnt - allowed;
  }
  return dropped;
}

template <class Drop>
int64_t prune_row_checked(Pattern p, bool wanda, const float* w, int64_t k, const float* norms,
                          std::string_view layer, int64_t row, Drop&& drop) {
  const int64_t bad = first_nonfinite(w, k);
  SLIDESPARSE_CHECK(bad < 0, Status::kInvalidData,
                    "layer '{}': non-finite weight {} at row {}, column {}",
                    detail::layer_label(layer), bad < 0 ? 0.0f : w[bad], row, bad);
  return wanda ? prune_row<true>(p, w, k, norms, drop) : prune_row<false>(p, w, k, norms, drop);
}

void load_row_f32(DType dtype, const uint8_t* src, int64_t k, float* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, src, size_t(k) * 4); return;
    case DType::kBF16:
      // bf16 is the top half of an f32 (what bf16_to_f32 does), inlined so the loop vectorizes.
      for (int64_t j = 0; j < k; ++j) {
        const uint32_t b = uint32_t(detail::load<uint16_t>(src + 2 * j)) << 16;
        std::memcpy(&out[j], &b, 4);
      }
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
    case PruneMethod::kSparseGpt: return "sparsegpt";
  }
  return "unknown";
}

std::optional<PruneMethod> prune_method_from_name(std::string_view s) noexcept {
  if (s == "magnitude") return PruneMethod::kMagnitude;
  if (s == "wanda") return PruneMethod::kWanda;
  if (s == "sparsegpt") return PruneMethod::kSparseGpt;
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
  std::memset(keep, 1, size_t(k));
  return prune_row_checked(p, method == PruneMethod::kWanda, w, k, col_norms, layer, row,
                           [keep](int64_t c) { keep[c] = 0; });
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
    int64_t dropped = 0;
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* src = base + r * k * B;
      load_row_f32(dtype, src, k, row.data());
      if (B == 4)
        dropped += prune_row_checked(p, wanda, row.data(), k, col_norms, layer, r,
                                     [src](int64_t c) { detail::store<uint32_t>(src + 4 * c, 0); });
      else
        dropped += prune_row_checked(p, wanda, row.data(), k, col_norms, layer, r,
                                     [src](int64_t c) { detail::store<uint16_t>(src + 2 * c, 0); });
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
