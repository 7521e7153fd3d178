// Simulated FP8 linears and the slid forms of the float and FP8 linears: exact oracles on data
// whose sums are exact (small integers times power-of-two scales), and slid == unslid on such data.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "reference.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/llama.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

// Integers in [-16, 16] (every one is an exact E4M3 value), with each row's first entry 448 so the
// per-row amax is 448 * 2^-e: the quantization scale is then exactly 2^-e and the codes are the
// integers themselves.
struct IntRows {
  std::vector<int> ints;     // [rows, cols]
  std::vector<float> vals;   // ints * 2^-e(row)
  std::vector<int> exps;     // e(row)
};
IntRows int_rows(int64_t rows, int64_t cols, uint64_t seed, int exp0) {
  std::mt19937_64 rng(seed);
  IntRows r;
  r.ints.resize(size_t(rows * cols));
  r.vals.resize(r.ints.size());
  for (int64_t i = 0; i < rows; ++i) {
    r.exps.push_back(exp0 + int(i % 4));
    for (int64_t j = 0; j < cols; ++j) {
      const int v = j == 0 ? 448 : int(rng() % 33) - 16;
      r.ints[size_t(i * cols + j)] = v;
      r.vals[size_t(i * cols + j)] = std::ldexp(float(v), -r.exps.back());
    }
  }
  return r;
}

// Keep at most 2N-2 nonzeros per aligned group of 2N along each row (zero the last extra ones).
void prune_rows(Pattern p, IntRows& w, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t b = 0; b < cols; b += p.group()) {
      int kept = 0;
      for (int64_t j = b; j < std::min(cols, b + p.group()); ++j) {
        const size_t at = size_t(i * cols + j);
        if (w.ints[at] == 0) continue;
        if (kept < p.keep()) {
          ++kept;
        } else {
          w.ints[at] = 0;
          w.vals[at] = 0.0f;
        }
      }
    }
}

std::vector<float> run(const Linear& lin, const std::vector<float>& x, int64_t m) {
  std::vector<float> y(size_t(m * lin.n()), std::nanf(""));  // poisoned
  lin.apply(x.data(), m, y.data());
  return y;
}

TEST(Fp8Linear, ExactOnIntegerCodesWithPowerOfTwoScales) {
  const int64_t m = 5, n = 7, k = 37;
  const IntRows x = int_rows(m, k, 1, 6), w = int_rows(n, k, 2, 3);
  const Fp8Linear lin = Fp8Linear::quantize(w.vals.data(), n, k, 1);
  for (int64_t j = 0; j < n; ++j) {
    ASSERT_EQ(lin.weight_scale()[size_t(j)], std::ldexp(1.0f, -w.exps[size_t(j)]));
    for (int64_t i = 0; i < k; ++i)
      ASSERT_EQ(reference::e4m3_decode(lin.weight_q()[size_t(j * k + i)]), double(w.ints[size_t(j * k + i)]));
  }
  const auto y = run(lin, x.vals, m);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += int64_t(x.ints[size_t(r * k + i)]) * w.ints[size_t(j * k + i)];
      ASSERT_EQ(double(y[size_t(r * n + j)]), std::ldexp(double(acc), -x.exps[size_t(r)] - w.exps[size_t(j)]))
          << "row " << r << " col " << j;
    }
}

TEST(Fp8Linear, RejectsNaNCodesAndBadSizes) {
  std::vector<uint8_t> q(12, 0x38);
  q[5] = 0x7F;
  EXPECT_THROW(Fp8Linear(q, std::vector<float>(3, 1.0f), 3, 4, 1), Error);
  EXPECT_THROW(Fp8Linear(std::vector<uint8_t>(11, 0), std::vector<float>(3, 1.0f), 3, 4, 1), Error);
}

// Gaussian data: the FP8 linear is a W8A8 approximation of the f32 one, not the same thing.
TEST(Fp8Linear, CloseToFloatOnGaussianData) {
  const int64_t m = 9, n = 33, k = 70;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(m * k)), w(size_t(n * k));
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  const auto yf = run(DenseLinear(w.data(), n, k, 1), x, m);
  const auto y8 = run(Fp8Linear::quantize(w.data(), n, k, 1), x, m);
  double err = 0, ref = 0;
  for (size_t i = 0; i < yf.size(); ++i) err += (yf[i] - y8[i]) * (yf[i] - y8[i]), ref += yf[i] * yf[i];
  EXPECT_LT(std::sqrt(err / ref), 0.08);  // E4M3 has 3 mantissa bits: ~2-4% relative error per operand
  EXPECT_GT(std::sqrt(err / ref), 1e-4);  // and it does quantize
}

class SlidLinears : public ::testing::TestWithParam<int> {};

// Integer data whose sums are exact in f32: slid and unslid outputs are equal bit for bit, for
// every pattern and k not a multiple of 2N.
TEST_P(SlidLinears, SlidEqualsUnslidOnExactData) {
  const Pattern p = Pattern::from_n(GetParam());
  for (const int64_t k : {int64_t(p.group()) * 5, int64_t(p.group()) * 3 + 3, int64_t(p.group()) - 1}) {
    const int64_t m = 6, n = 11;
    IntRows w = int_rows(n, k, 10 + uint64_t(k), 2);
    prune_rows(p, w, n, k);
    const IntRows x = int_rows(m, k, 20 + uint64_t(k), 5);
    const DenseLinear dense(w.vals.data(), n, k, 2);
    const SlidDenseLinear sd(p, dense);
    EXPECT_EQ(sd.k_slide(), slide_k(p, k));
    const auto a = run(dense, x.vals, m), b = run(sd, x.vals, m);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "dense k=" << k << " i=" << i;

    // FP8 over the same integers: the re-quantized weight is the same pruned integer pattern
    // (the row amax entry 448 stays: it is the first of its group).
    const Fp8Linear f8 = Fp8Linear::quantize(w.vals.data(), n, k, 2);
    const SlidFp8Linear sf(p, f8);
    const auto c = run(f8, x.vals, m), d = run(sf, x.vals, m);
    for (size_t i = 0; i < c.size(); ++i) {
      ASSERT_EQ(c[i], d[i]) << "fp8 k=" << k << " i=" << i;
      ASSERT_EQ(c[i], a[i]) << "fp8 vs dense k=" << k << " i=" << i;  // exact codes: same products
    }
  }
}

// Gaussian pruned data: slid sums the same products in another order -> equal to f32 rounding.
TEST_P(SlidLinears, SlidCloseToUnslidOnGaussianData) {
  const Pattern p = Pattern::from_n(GetParam());
  const int64_t m = 4, n = 9, k = p.group() * 7 + 1;
  std::mt19937_64 rng(static_cast<uint64_t>(GetParam()));
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(m * k)), w(size_t(n * k));
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  for (int64_t r = 0; r < n; ++r)  // keep the first 2N-2 of every group
    for (int64_t i = 0; i < k; ++i)
      if (i % p.group() >= p.keep()) w[size_t(r * k + i)] = 0.0f;
  const DenseLinear dense(w.data(), n, k, 1);
  const auto a = run(dense, x, m), b = run(SlidDenseLinear(p, dense), x, m);
  const Fp8Linear f8 = Fp8Linear::quantize(w.data(), n, k, 1);
  const auto c = run(f8, x, m), d = run(SlidFp8Linear(p, f8), x, m);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-5f * (1.0f + std::fabs(a[i])));
    EXPECT_NEAR(c[i], d[i], 1e-5f * (1.0f + std::fabs(c[i])));
  }
}

INSTANTIATE_TEST_SUITE_P(Patterns, SlidLinears, ::testing::Values(2, 3, 4, 5, 8),
                         [](const ::testing::TestParamInfo<int>& param_info) { return "N" + std::to_string(param_info.param); });

TEST(SlidLinears, RejectDenseWeightsAndForeignStoredSlideWeights) {
  const Pattern p = Pattern::parse("6:8");
  const int64_t n = 2, k = 16;
  std::vector<float> w(size_t(n * k), 1.0f);
  const DenseLinear dense(w.data(), n, k, 1);
  try {
    SlidDenseLinear s(p, dense);
    FAIL() << "dense weights accepted for 6:8";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidData);
  }
  // A stored slide weight that does not unslide to W is refused.
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      if (i % 8 >= 6) w[size_t(r * k + i)] = 0.0f;
  const DenseLinear pruned(w.data(), n, k, 1);
  const int64_t ks = slide_k(p, k);
  std::vector<float> good(size_t(n * ks));
  SlidDenseLinear ok(p, pruned);  // slides itself
  slide_weight(p, DType::kF32, w.data(), n, k, good.data(), ks);
  SlidDenseLinear with_stored(p, pruned, good.data());
  EXPECT_EQ(with_stored.k_slide(), ks);
  std::vector<float> bad = good;
  for (auto& v : bad)
    if (v != 0.0f) {
      v = 2.0f;
      break;
    }
  try {
    SlidDenseLinear s(p, pruned, bad.data());
    FAIL() << "a stored slide weight that differs from W was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidData);
  }
}

}  // namespace
}  // namespace slidesparse
