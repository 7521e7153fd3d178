// sparsegpt: second-order (OBS) pruning with error compensation, after the algorithm described in
// Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot"
// (2023), adapted to aligned (2N-2):2N groups. See include/slidesparse/prune.hpp for the contract.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "common/check.hpp"
#include "core/detail.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {
namespace {

// Rows swept together: each row of u is read once per block instead of once per row, and a block
// of 8 double rows of k <= 16K stays in L2.
constexpr int64_t kRowBlock = 8;

double dot(const double* a, const double* b, int64_t len) {
  double s = 0.0;
  for (int64_t t = 0; t < len; ++t) s += a[t] * b[t];
  return s;
}

// One group's keep mask for one row: keeps min(len, keep) positions, dropping the weakest first.
// A current zero is weaker than any nonzero (so a group with few nonzeros only pins zeros and the
// pattern holds even after later columns of the group are updated); among nonzeros the lower
// score w^2/d^2 is weaker; equal keys drop the higher offset (the lower index is kept).
void choose_group_mask(const double* w, const double* diag, int len, int keep, bool* kept) {
  for (int o = 0; o < len; ++o) kept[o] = true;
  for (int drops = len - std::min(len, keep); drops > 0; --drops) {
    int weakest = -1;
    bool wnz = false;
    double wscore = 0.0;
    for (int o = 0; o < len; ++o) {
      if (!kept[o]) continue;
      const bool nz = w[o] != 0.0;
      const double score = nz ? (w[o] / diag[o]) * (w[o] / diag[o]) : 0.0;
      // >= on the score: a later (higher) offset with an equal key is the weaker one.
      const bool weaker = weakest < 0 || (!nz && wnz) || (nz == wnz && score <= wscore);
      if (weaker) weakest = o, wnz = nz, wscore = score;
    }
    kept[weakest] = false;
  }
}

}  // namespace

ObsFactor obs_factor(const float* hessian, int64_t k, double damp, std::string_view layer, int num_threads) {
  (void)num_threads;  // the factorization is O(k^3 / 3) once per distinct input: kept single-threaded
  const std::string name = detail::layer_label(layer);
  SLIDESPARSE_CHECK(k > 0, Status::kInvalidArgument, "layer '{}': Hessian width k = {} must be > 0", name, k);
  SLIDESPARSE_CHECK(hessian != nullptr, Status::kInvalidArgument, "layer '{}': null Hessian pointer", name);
  SLIDESPARSE_CHECK(std::isfinite(damp) && damp >= 0.0, Status::kInvalidArgument,
                    "layer '{}': damp must be a finite value >= 0, got {}", name, damp);
  const size_t K = size_t(k);
  // a = H symmetrized from its lower triangle.
  std::vector<double> a(K * K);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const float v = hessian[i * k + j];
      SLIDESPARSE_CHECK(std::isfinite(v), Status::kInvalidData, "layer '{}': non-finite Hessian entry {} at [{}, {}]",
                        name, v, i, j);
      a[size_t(i) * K + size_t(j)] = a[size_t(j) * K + size_t(i)] = double(v);
    }
  ObsFactor f;
  f.k = k;
  f.dead.assign(K, 0);
  double trace = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    const double d = a[size_t(j) * (K + 1)];
    SLIDESPARSE_CHECK(d >= 0.0, Status::kInvalidData,
                      "layer '{}': Hessian is not positive semi-definite: H[{}, {}] = {} < 0", name, j, j, d);
    trace += d;
    if (d != 0.0) continue;
    for (int64_t i = 0; i < k; ++i)
      SLIDESPARSE_CHECK(a[size_t(j) * K + size_t(i)] == 0.0, Status::kInvalidData,
                        "layer '{}': Hessian is not positive semi-definite: H[{}, {}] = 0 but H[{}, {}] = {}", name,
                        j, j, std::max(i, j), std::min(i, j), a[size_t(j) * K + size_t(i)]);
    f.dead[size_t(j)] = 1;
  }
  f.lambda = damp * trace / double(k);
  for (int64_t j = 0; j < k; ++j) a[size_t(j) * (K + 1)] += (f.dead[size_t(j)] ? 1.0 : 0.0) + f.lambda;

  // Cholesky of the index-reversed matrix B = J H' J = L L^T (L lower, row-major). Then
  // H' = R R^T with R = J L J upper, so H'^-1 = R^-T R^-1 and its upper Cholesky factor is
  // u = R^-1 = J L^-1 J: one factorization and one triangular inverse, no explicit H'^-1.
  std::vector<double> l(K * K, 0.0);
  auto b = [&](int64_t i, int64_t j) { return a[size_t(k - 1 - i) * K + size_t(k - 1 - j)]; };
  for (int64_t i = 0; i < k; ++i) {
    double* li = &l[size_t(i) * K];
    for (int64_t j = 0; j < i; ++j) li[j] = (b(i, j) - dot(li, &l[size_t(j) * K], j)) / l[size_t(j) * (K + 1)];
    const double s = b(i, i) - dot(li, li, i);
    SLIDESPARSE_CHECK(s > 0.0 && std::isfinite(s), Status::kInvalidData,
                      "layer '{}': Hessian is not positive definite after dampening (lambda = {}): Cholesky pivot "
                      "{} at column {}; raise --damp or check the calibration",
                      name, f.lambda, s, k - 1 - i);
    li[i] = std::sqrt(s);
  }
  // X = L^-1 row by row: X[i] = (e_i - sum_{t<i} L[i][t] X[t]) / L[i][i]; X[t] is zero past t.
  std::vector<double> x(K * K, 0.0);
  for (int64_t i = 0; i < k; ++i) {
    double* xi = &x[size_t(i) * K];
    const double* li = &l[size_t(i) * K];
    xi[i] = 1.0;
    for (int64_t t = 0; t < i; ++t) {
      const double c = li[t];
      const double* xt = &x[size_t(t) * K];
      for (int64_t c2 = 0; c2 <= t; ++c2) xi[c2] -= c * xt[c2];
    }
    const double inv = 1.0 / li[i];
    for (int64_t c2 = 0; c2 <= i; ++c2) xi[c2] *= inv;
  }
  f.u.assign(K * K, 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) f.u[size_t(i) * K + size_t(j)] = x[size_t(k - 1 - i) * K + size_t(k - 1 - j)];
  return f;
}

int64_t prune_obs(Pattern p, float* w, int64_t n, int64_t k, const ObsFactor& factor, std::string_view layer,
                  int num_threads) {
  const std::string name = detail::layer_label(layer);
  SLIDESPARSE_CHECK(n >= 0 && k > 0, Status::kInvalidArgument, "layer '{}': shape [{}, {}] is not a valid [n, k]",
                    name, n, k);
  SLIDESPARSE_CHECK(factor.k == k && factor.u.size() == size_t(k) * size_t(k) && factor.dead.size() == size_t(k),
                    Status::kInvalidArgument, "layer '{}': Hessian factor is for k = {}, the weight has k = {}", name,
                    factor.k, k);
  SLIDESPARSE_CHECK(w != nullptr || n == 0, Status::kInvalidArgument, "layer '{}': null weight pointer", name);
  if (n == 0) return 0;
  const int group = p.group(), keep = p.keep();
  const size_t K = size_t(k);
  const double* u = factor.u.data();
  std::vector<double> diag(K);
  for (size_t j = 0; j < K; ++j) diag[j] = u[j * (K + 1)];

  std::atomic<int64_t> total{0};
  detail::parallel_rows(n, num_threads, k * std::max<int64_t>(k / 4, 1), [&](int64_t r0, int64_t r1) {
    std::vector<double> wd(size_t(kRowBlock) * K);
    std::vector<uint8_t> kept(size_t(kRowBlock) * K);
    bool gk[64];
    int64_t dropped = 0;
    for (int64_t b0 = r0; b0 < r1; b0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, r1 - b0);
      for (int64_t r = 0; r < rows; ++r) {
        const float* src = w + (b0 + r) * k;
        double* dst = &wd[size_t(r) * K];
        for (int64_t j = 0; j < k; ++j) {
          SLIDESPARSE_CHECK(std::isfinite(src[j]), Status::kInvalidData,
                            "layer '{}': non-finite weight {} at row {}, column {}", name, src[j], b0 + r, j);
          dst[j] = factor.dead[size_t(j)] ? 0.0 : double(src[j]);
        }
      }
      for (int64_t j = 0; j < k; ++j) {
        if (j % group == 0) {
          const int len = int(std::min<int64_t>(group, k - j));
          for (int64_t r = 0; r < rows; ++r) {
            choose_group_mask(&wd[size_t(r) * K + size_t(j)], &diag[size_t(j)], len, keep, gk);
            for (int o = 0; o < len; ++o) kept[size_t(r) * K + size_t(j + o)] = gk[o];
          }
        }
        const double* urow = u + size_t(j) * K;
        for (int64_t r = 0; r < rows; ++r) {
          if (kept[size_t(r) * K + size_t(j)]) continue;  // q = w: no error to compensate
          double* wr = &wd[size_t(r) * K];
          const double err = wr[j] / diag[size_t(j)];
          wr[j] = 0.0;
          if (err == 0.0) continue;
          for (int64_t c = j + 1; c < k; ++c) wr[c] -= err * urow[c];
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        float* dst = w + (b0 + r) * k;
        const double* src = &wd[size_t(r) * K];
        for (int64_t j = 0; j < k; ++j) {
          const float v = float(src[j]);
          SLIDESPARSE_CHECK(std::isfinite(v), Status::kInvalidData,
                            "layer '{}': error compensation overflowed f32 at row {}, column {} ({})", name, b0 + r,
                            j, src[j]);
          dropped += dst[j] != 0.0f && v == 0.0f;
          dst[j] = v;
        }
      }
    }
    total += dropped;
  });
  return total.load();
}

int64_t prune_obs(Pattern p, float* w, int64_t n, int64_t k, const float* hessian, double damp,
                  std::string_view layer, int num_threads) {
  return prune_obs(p, w, n, k, obs_factor(hessian, k, damp, layer, num_threads), layer, num_threads);
}

}  // namespace slidesparse
