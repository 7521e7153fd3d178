// Simulated W8A8 INT8 linears: exact integer oracle (B) and slid == unslid bit for bit (C), at the
// layer and the whole-model level.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/model_test_util.hpp"
#include "cpu/temp_dir.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/llama.hpp"
#include "slidesparse/pattern.hpp"

namespace slidesparse {
namespace {

struct Shape {
  int64_t m, n, k;
};

// Zero the 2 smallest-magnitude entries of every group of 2N along k (the partial tail group
// too, when it holds more than 2N-2 entries), so each group has <= 2N-2 nonzeros.
void prune_i8(Pattern p, std::vector<int8_t>& w, int64_t n, int64_t k) {
  const int64_t g = p.group();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t b = 0; b < k; b += g) {
      const int64_t e = std::min(k, b + g);
      for (int64_t drop = 0; drop < (e - b) - p.keep(); ++drop) {
        int64_t best = -1;
        for (int64_t i = b; i < e; ++i) {
          const int8_t v = w[size_t(r * k + i)];
          if (v != 0 && (best < 0 || std::abs(int(v)) < std::abs(int(w[size_t(r * k + best)])))) best = i;
        }
        if (best >= 0) w[size_t(r * k + best)] = 0;
      }
    }
}

std::vector<float> random_f32(int64_t count, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = nd(rng);
  return v;
}

std::vector<float> run(const Linear& lin, const std::vector<float>& x, int64_t m) {
  std::vector<float> y(size_t(m * lin.n()), std::nanf(""));  // poisoned
  lin.apply(x.data(), m, y.data());
  return y;
}

TEST(Int8Linear, SlidEqualsUnslidBitForBit) {
  const Shape shapes[] = {{1, 16, 64}, {2, 33, 96}, {17, 40, 100}, {33, 7, 257}, {5, 64, 576}};
  for (const char* pat : {"6:8", "4:6", "2:4"}) {
    const Pattern p = Pattern::parse(pat);
    uint64_t seed = 100;
    for (const auto& s : shapes) {
      SCOPED_TRACE(::testing::Message() << pat << " m=" << s.m << " n=" << s.n << " k=" << s.k << " seed=" << seed);
      const auto w = random_f32(s.n * s.k, seed++, 0.05f);
      const Int8Linear dense_q = Int8Linear::quantize(w.data(), s.n, s.k, 2);
      auto wq = dense_q.weight_q();
      prune_i8(p, wq, s.n, s.k);
      const Int8Linear base(wq, dense_q.weight_scale(), s.n, s.k, 2);
      const SlidInt8Linear slid(p, base);
      EXPECT_EQ(slid.k_slide(), slide_k(p, s.k));
      const auto x = random_f32(s.m * s.k, seed++);
      const auto y0 = run(base, x, s.m), y1 = run(slid, x, s.m);
      for (size_t i = 0; i < y0.size(); ++i) {
        ASSERT_FALSE(std::isnan(y0[i])) << i;
        ASSERT_EQ(std::memcmp(&y0[i], &y1[i], sizeof(float)), 0) << "output " << i << ": " << y0[i] << " vs " << y1[i];
      }
    }
  }
}

// Integer data with row amax 127 quantizes with scale 1 exactly, so y is the integer product.
TEST(Int8Linear, EqualsInt64ReferenceOnIntegerData) {
  const Shape shapes[] = {{1, 5, 8}, {15, 33, 100}, {16, 17, 64}, {3, 2, 1000}};
  std::mt19937_64 rng(42);
  for (const auto& s : shapes) {
    SCOPED_TRACE(::testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k);
    std::vector<float> x(size_t(s.m * s.k));
    std::vector<int8_t> wq(size_t(s.n * s.k));
    for (auto& v : x) v = float(int(rng() % 255) - 127);
    for (int64_t r = 0; r < s.m; ++r) x[size_t(r * s.k + int64_t(rng() % uint64_t(s.k)))] = (rng() & 1) ? 127.f : -127.f;
    for (auto& v : wq) v = int8_t(int(rng() % 256) - 128);
    const std::vector<float> sw(size_t(s.n), 1.0f);
    const Int8Linear lin(wq, sw, s.n, s.k, 2);
    const auto y = run(lin, x, s.m);
    for (int64_t r = 0; r < s.m; ++r)
      for (int64_t j = 0; j < s.n; ++j) {
        int64_t acc = 0;
        for (int64_t i = 0; i < s.k; ++i) acc += int64_t(x[size_t(r * s.k + i)]) * int64_t(wq[size_t(j * s.k + i)]);
        ASSERT_EQ(double(y[size_t(r * s.n + j)]), double(acc)) << "y[" << r << "," << j << "]";
      }
  }
}

// Power-of-two weight scales and scaled activations: still exact against acc * s_x * s_w.
TEST(Int8Linear, AppliesScalesExactlyAsTheEpilogue) {
  const int64_t m = 4, n = 6, k = 48;
  std::mt19937_64 rng(7);
  std::vector<float> x(size_t(m * k));
  std::vector<int8_t> wq(size_t(n * k));
  std::vector<float> sw(static_cast<size_t>(n));
  for (auto& v : x) v = float(int(rng() % 255) - 127) * 0.25f;
  for (int64_t r = 0; r < m; ++r) x[size_t(r * k)] = 127.f * 0.25f;  // amax = 31.75 -> s_x = 0.25
  for (auto& v : wq) v = int8_t(int(rng() % 256) - 128);
  for (int64_t j = 0; j < n; ++j) sw[size_t(j)] = std::ldexp(1.0f, int(j) - 3);
  const auto y = run(Int8Linear(wq, sw, n, k, 1), x, m);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += int64_t(x[size_t(r * k + i)] * 4.0f) * int64_t(wq[size_t(j * k + i)]);
      ASSERT_EQ(double(y[size_t(r * n + j)]), double(acc) * 0.25 * std::ldexp(1.0, int(j) - 3));
    }
}

TEST(Int8Linear, SlidRejectsWeightsViolatingThePattern) {
  const int64_t n = 3, k = 16;
  std::vector<int8_t> wq(size_t(n * k), 1);  // fully dense
  const Int8Linear base(wq, std::vector<float>(size_t(n), 1.0f), n, k, 1);
  try {
    SlidInt8Linear slid(Pattern::parse("6:8"), base);
    FAIL() << "dense weights accepted for 6:8";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidData);
  }
}

// Whole model: every projection pruned + INT8, once unslid and once slid: identical logits.
TEST(Int8Model, SlidModelLogitsEqualUnslidBitForBit) {
  testing::TempDir dir;
  const testing::TinyShape s;
  testing::write_tiny_model(testing::make_tiny_model(s, 21), dir.path().string());
  const Pattern p = Pattern::parse("6:8");
  auto to_int8 = [&](const Linear& cur) {
    const auto* d = dynamic_cast<const DenseLinear*>(&cur);
    EXPECT_NE(d, nullptr);
    const auto w = d->weight();
    const Int8Linear q = Int8Linear::quantize(w.data(), d->n(), d->k(), 2);
    auto wq = q.weight_q();
    prune_i8(p, wq, d->n(), d->k());
    return Int8Linear(wq, q.weight_scale(), d->n(), d->k(), 2);
  };
  LlamaModel a = LlamaModel::load(dir.path().string(), LlamaLoadOptions::threads(2));
  LlamaModel b = LlamaModel::load(dir.path().string(), LlamaLoadOptions::threads(2));
  int replaced = 0;
  a.transform_linears([&](const std::string&, const Linear& cur) -> std::unique_ptr<Linear> {
    ++replaced;
    return std::make_unique<Int8Linear>(to_int8(cur));
  });
  b.transform_linears([&](const std::string&, const Linear& cur) -> std::unique_ptr<Linear> {
    return std::make_unique<SlidInt8Linear>(p, to_int8(cur));
  });
  EXPECT_EQ(replaced, 7 * s.layers);
  std::mt19937_64 rng(3);
  std::vector<int32_t> tok(19);
  for (auto& t : tok) t = int32_t(rng() % uint64_t(s.vocab));
  const auto la = a.forward(tok), lb = b.forward(tok);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) ASSERT_EQ(std::memcmp(&la[i], &lb[i], 4), 0) << "logit " << i;
  // And the INT8 model is close to (but not the same as) the dense one.
  const auto ld = LlamaModel::load(dir.path().string(), LlamaLoadOptions::threads(2)).forward(tok);
  bool differs = false;
  for (size_t i = 0; i < la.size(); ++i) differs |= la[i] != ld[i];
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace slidesparse
