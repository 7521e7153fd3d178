// Per-row symmetric quantization (issue acceptance test 5) against the double reference. Rows are
// built with a power-of-two amax and few significant bits, so that the f32 arithmetic of the spec
// and the reference's double arithmetic are both exact and must agree bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core_test_util.hpp"
#include "reference/reference.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/quant.hpp"

namespace slidesparse {
namespace {

TEST(QuantNames, RoundTrip) {
  for (Precision p : {Precision::kKeep, Precision::kInt8, Precision::kFp8})
    EXPECT_EQ(precision_from_name(precision_name(p)), p);
  EXPECT_STREQ(precision_name(Precision::kInt8), "int8");
  EXPECT_STREQ(precision_name(Precision::kFp8), "fp8");
  EXPECT_STREQ(precision_name(Precision::kKeep), "keep");
  EXPECT_FALSE(precision_from_name("INT8").has_value());
  EXPECT_FALSE(precision_from_name("e4m3").has_value());
  EXPECT_FALSE(precision_from_name("").has_value());
}

TEST(QuantConstants, MinAmaxIsTwoToTheMinus100) {
  EXPECT_EQ(kMinAmax, std::ldexp(1.0f, -100));
  EXPECT_TRUE(std::isfinite(kI8Max / kMinAmax));
  EXPECT_TRUE(std::isfinite(kE4M3Max / kMinAmax));
}

struct Quantized {
  std::vector<int8_t> i8;
  std::vector<uint8_t> e4m3;
  std::vector<float> scale_i8, scale_e4m3;
};

Quantized run_core(DType t, const std::vector<double>& v, int64_t rows, int64_t cols,
                   int threads = 1) {
  const std::vector<uint8_t> bytes = test::encode(t, v);
  Quantized q;
  q.i8.assign(size_t(rows * cols), int8_t(0x5A));
  q.e4m3.assign(size_t(rows * cols), 0x5A);
  q.scale_i8.assign(size_t(rows), -1.0f);
  q.scale_e4m3.assign(size_t(rows), -1.0f);
  quantize_rows_i8(t, bytes.data(), rows, cols, q.i8.data(), q.scale_i8.data(), threads);
  quantize_rows_e4m3(t, bytes.data(), rows, cols, q.e4m3.data(), q.scale_e4m3.data(), threads);
  return q;
}

void expect_matches_reference(const Quantized& q, const std::vector<double>& v, int64_t rows,
                              int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    SCOPED_TRACE(testing::Message() << "row " << r);
    const std::vector<double> row(v.begin() + r * cols, v.begin() + (r + 1) * cols);
    const reference::QuantRowI8 ri = reference::quantize_row_i8(row);
    const reference::QuantRowE4M3 re = reference::quantize_row_e4m3(row);
    ASSERT_EQ(q.scale_i8[size_t(r)], float(ri.scale));
    ASSERT_EQ(q.scale_e4m3[size_t(r)], float(re.scale));
    for (int64_t j = 0; j < cols; ++j) {
      ASSERT_EQ(int(q.i8[size_t(r * cols + j)]), ri.q[size_t(j)]) << "col " << j << " v " << row[size_t(j)];
      ASSERT_EQ(int(q.e4m3[size_t(r * cols + j)]), int(re.q[size_t(j)]))
          << "col " << j << " v " << row[size_t(j)];
    }
  }
}

// Values j * 2^(e - bits) with |j| <= 2^bits and one element of magnitude exactly 2^e (the amax).
// Products with 127 or 448 then need at most bits + 9 significant bits: exact in f32.
TEST(QuantExact, PowerOfTwoAmaxMatchesReference) {
  int64_t ties = 0;
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int bits = t == DType::kBF16 ? 7 : 10;
    const int emin = t == DType::kF16 ? -13 : -60, emax = t == DType::kF16 ? 14 : 60;
    for (uint32_t trial = 0; trial < 200; ++trial) {
      const uint32_t seed = 17u * uint32_t(t) + trial;
      SCOPED_TRACE(testing::Message() << dtype_token(t) << " seed=" << seed);
      std::mt19937 rng(seed);
      auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      const int64_t rows = uni(1, 5), cols = uni(1, 300);
      std::vector<double> v(size_t(rows * cols));
      for (int64_t r = 0; r < rows; ++r) {
        const int e = uni(emin, emax);
        for (int64_t j = 0; j < cols; ++j)
          v[size_t(r * cols + j)] = std::ldexp(double(uni(-(1 << bits), 1 << bits)), e - bits);
        v[size_t(r * cols + uni(0, int(cols) - 1))] = std::ldexp(uni(0, 1) ? 1.0 : -1.0, e);
        for (int64_t j = 0; j < cols; ++j) {
          // Count exact ties of the INT8 rounding (x.5 after scaling).
          const double s = std::ldexp(v[size_t(r * cols + j)], -e) * 127.0;
          ties += s - std::floor(s) == 0.5;
        }
      }
      const Quantized q = run_core(t, v, rows, cols, 1 + int(trial % 3));
      expect_matches_reference(q, v, rows, cols);
      for (int64_t r = 0; r < rows; ++r) {
        // The amax element maps to the end of the range.
        int max_i8 = 0;
        for (int64_t j = 0; j < cols; ++j) max_i8 = std::max(max_i8, std::abs(int(q.i8[size_t(r * cols + j)])));
        EXPECT_EQ(max_i8, 127);
      }
    }
  }
  EXPECT_GT(ties, 50);  // the round-half-even path was exercised
}

// With a power-of-two amax the only INT8 ties are +-63.5, where half-to-even and half-away agree.
// An amax of Q * 2^e makes inv = 2^-e and scale = 2^e exact instead, so every half-step is a tie.
TEST(QuantExact, AmaxQTimesPowerOfTwoTiesToEven) {
  int64_t ties = 0;
  for (uint32_t trial = 0; trial < 100; ++trial) {
    const uint32_t seed = 900u + trial;
    SCOPED_TRACE(testing::Message() << "seed=" << seed);
    std::mt19937 rng(seed);
    auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int64_t cols = uni(2, 200);
    const int e = uni(-40, 40);
    for (double qmax : {127.0, 448.0}) {
      std::vector<double> v(static_cast<size_t>(cols));
      // Multiples of 2^(e-6): up to 15 significant bits for |v| <= 448 * 2^e, exact in f32.
      for (double& x : v) x = std::ldexp(double(uni(-int(qmax) * 64, int(qmax) * 64)), e - 6);
      v[size_t(uni(0, int(cols) - 1))] = std::ldexp(uni(0, 1) ? qmax : -qmax, e);
      for (double x : v) ties += std::ldexp(x, -e) - std::floor(std::ldexp(x, -e)) == 0.5;
      const Quantized q = run_core(DType::kF32, v, 1, cols);
      if (qmax == 127.0) EXPECT_EQ(q.scale_i8[0], std::ldexp(1.0f, e));
      else EXPECT_EQ(q.scale_e4m3[0], std::ldexp(1.0f, e));
      expect_matches_reference(q, v, 1, cols);
    }
  }
  EXPECT_GT(ties, 200);
  // Hand values: amax 127, so q = rint(v).
  const std::vector<double> v = {127, 0.5, 1.5, 2.5, -0.5, -2.5, -3.5, 126.5};
  const Quantized q = run_core(DType::kF32, v, 1, int64_t(v.size()));
  EXPECT_EQ(q.i8, (std::vector<int8_t>{127, 0, 2, 2, 0, -2, -4, 126}));
  EXPECT_EQ(q.scale_i8[0], 1.0f);
}

TEST(QuantEdges, ZeroRow) {
  const std::vector<double> v = {0, -0.0, 0, -0.0, 1, -2};
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_token(t));
    const Quantized q = run_core(t, v, 2, 3);
    EXPECT_EQ(q.scale_i8[0], 1.0f);
    EXPECT_EQ(q.scale_e4m3[0], 1.0f);
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(q.i8[size_t(j)], 0);
      EXPECT_EQ(q.e4m3[size_t(j)], 0x00) << j;  // -0 inputs give +0 codes
    }
    expect_matches_reference(q, v, 2, 3);
  }
  // An empty row (cols == 0) is an all-zero row.
  std::vector<float> scale(3, -1.0f);
  quantize_rows_i8(DType::kF32, nullptr, 3, 0, nullptr, scale.data());
  EXPECT_EQ(scale, std::vector<float>(3, 1.0f));
}

// Rows whose amax is denormal or far below 2^-100: the scale is clamped, both reciprocals stay
// finite and nothing overflows.
TEST(QuantEdges, TinyAmaxRows) {
  const float dmin = std::numeric_limits<float>::denorm_min();
  const std::vector<double> v = {1e-38, -5e-39, 0,                 // subnormal f32 amax
                                 double(dmin), -double(dmin), 0,    // the smallest subnormal
                                 1e-31, 2e-31, -3e-31,              // just below 2^-100
                                 0x1p-100, -0x1p-101, 0x1p-102};    // exactly 2^-100
  const int64_t rows = 4, cols = 3;
  std::vector<double> vf(v.size());
  for (size_t i = 0; i < v.size(); ++i) vf[i] = double(float(v[i]));
  const Quantized q = run_core(DType::kF32, vf, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    SCOPED_TRACE(testing::Message() << "row " << r);
    EXPECT_EQ(q.scale_i8[size_t(r)], kMinAmax / 127.0f);
    EXPECT_EQ(q.scale_e4m3[size_t(r)], kMinAmax / 448.0f);
    EXPECT_TRUE(std::isfinite(q.scale_i8[size_t(r)]) && q.scale_i8[size_t(r)] > 0);
    EXPECT_TRUE(std::isfinite(q.scale_e4m3[size_t(r)]) && q.scale_e4m3[size_t(r)] > 0);
    for (int64_t j = 0; j < cols; ++j)
      EXPECT_NE(q.e4m3[size_t(r * cols + j)] & 0x7f, 0x7f) << "NaN code at col " << j;
  }
  expect_matches_reference(q, vf, rows, cols);
  // Exactly 2^-100 is the clamp point: it maps to the full range, 2^-101 to half of it.
  EXPECT_EQ(q.i8[9], 127);
  EXPECT_EQ(q.e4m3[9], 0x7e);
  EXPECT_EQ(q.i8[10], -64);  // -63.5 rounds half to even
  EXPECT_EQ(q.e4m3[10], f32_to_e4m3(-224.0f));
  // Subnormal rows quantize to (nearly) nothing instead of overflowing.
  EXPECT_EQ(q.i8[0], 0);
  EXPECT_EQ(q.e4m3[3], 0x00);
  EXPECT_EQ(q.e4m3[4], 0x00);  // -denorm * inv rounds to -0, stored as +0
}

// Arbitrary (non-power-of-two) amax: the amax element lands on +-127 / +-448 exactly, nothing
// exceeds the range (v * inv may round a hair above Q), and dequantization is within half a step.
TEST(QuantEdges, SaturationAndErrorBound) {
  const uint32_t seed = 2718;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(-30.0f, 30.0f);
  const int64_t rows = 200, cols = 64;
  std::vector<double> v(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = std::exp2(mag(rng));
    std::uniform_real_distribution<float> val(-s, s);
    for (int64_t j = 0; j < cols; ++j) v[size_t(r * cols + j)] = double(val(rng));
  }
  const Quantized q = run_core(DType::kF32, v, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    SCOPED_TRACE(testing::Message() << "row " << r);
    double amax = 0;
    for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(v[size_t(r * cols + j)]));
    int hit_i8 = 0, hit_e4m3 = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double x = v[size_t(r * cols + j)];
      const int qi = q.i8[size_t(r * cols + j)];
      const uint8_t qe = q.e4m3[size_t(r * cols + j)];
      EXPECT_GE(qi, -127);
      EXPECT_NE(qe & 0x7f, 0x7f);
      const double si = q.scale_i8[size_t(r)], se = q.scale_e4m3[size_t(r)];
      // Half a step, plus the f32 rounding of v * inv (relative 2^-23 of up to 127 steps).
      EXPECT_LE(std::fabs(qi * si - x), (0.5 + 1e-4) * si) << "col " << j;
      // E4M3 has 3 mantissa bits: relative error <= 2^-4, absolute floor half a subnormal step.
      const double de = double(e4m3_to_f32(qe)) * se;
      EXPECT_LE(std::fabs(de - x), std::max(std::fabs(x) / 16, 0x1p-10 * se) * (1 + 1e-5)) << j;
      if (std::fabs(x) == amax) {
        hit_i8 += std::abs(qi) == 127;
        hit_e4m3 += (qe & 0x7f) == 0x7e;
      }
    }
    EXPECT_GE(hit_i8, 1);
    EXPECT_GE(hit_e4m3, 1);
    // Off the exact grid, the result is pinned by quant.hpp's f32 formula, transcribed literally
    // (GPU kernels must reproduce these bits).
    const float a = std::max(float(amax), kMinAmax);
    EXPECT_EQ(q.scale_i8[size_t(r)], a / 127.0f);
    EXPECT_EQ(q.scale_e4m3[size_t(r)], a / 448.0f);
    const float inv_i8 = 127.0f / a, inv_e4m3 = 448.0f / a;
    for (int64_t j = 0; j < cols; ++j) {
      const float x = float(v[size_t(r * cols + j)]);
      const float t = std::nearbyint(x * inv_i8);
      ASSERT_EQ(q.i8[size_t(r * cols + j)], int8_t(std::min(std::max(t, -128.0f), 127.0f))) << j;
      const uint8_t c = f32_to_e4m3(x * inv_e4m3);
      ASSERT_EQ(q.e4m3[size_t(r * cols + j)], c == 0x80 ? 0 : c) << j;
    }
  }
}

TEST(QuantEdges, NegativeZeroCanonical) {
  // -1e-6 * 448 is below half the smallest e4m3 subnormal (2^-10): rounds to -0, stored as 0x00.
  const std::vector<double> v = {1.0, -1e-6, -0.0, -1.0 / 1024.0};
  std::vector<double> vf(v.size());
  for (size_t i = 0; i < v.size(); ++i) vf[i] = double(float(v[i]));
  const Quantized q = run_core(DType::kF32, vf, 1, 4);
  EXPECT_EQ(q.e4m3[1], 0x00);
  EXPECT_EQ(q.e4m3[2], 0x00);
  EXPECT_EQ(q.e4m3[3], f32_to_e4m3(-448.0f / 1024.0f));
  EXPECT_EQ(q.i8[1], 0);
  EXPECT_EQ(q.i8[2], 0);
  for (uint8_t c : q.e4m3) EXPECT_NE(c, 0x80);
}

TEST(QuantErrors, NonFiniteAndUnsupported) {
  const float inf = std::numeric_limits<float>::infinity();
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (float bad : {std::nanf(""), inf, -inf}) {
      SCOPED_TRACE(testing::Message() << dtype_token(t) << " " << bad);
      std::vector<double> v(3 * 4, 1.0);
      std::vector<uint8_t> bytes = test::encode(t, v);
      const size_t at = size_t(2 * 4 + 1) * dtype_size(t);
      if (t == DType::kF32) std::memcpy(&bytes[at], &bad, 4);
      if (t == DType::kBF16) { const uint16_t h = f32_to_bf16(bad); std::memcpy(&bytes[at], &h, 2); }
      if (t == DType::kF16) { const uint16_t h = f32_to_f16(bad); std::memcpy(&bytes[at], &h, 2); }
      std::vector<int8_t> qi(12);
      std::vector<uint8_t> qe(12);
      std::vector<float> s(3);
      for (int which = 0; which < 2; ++which) {
        try {
          if (which == 0)
            quantize_rows_i8(t, bytes.data(), 3, 4, qi.data(), s.data());
          else
            quantize_rows_e4m3(t, bytes.data(), 3, 4, qe.data(), s.data());
          ADD_FAILURE() << "non-finite accepted";
        } catch (const Error& e) {
          EXPECT_EQ(e.status(), Status::kInvalidData);
          EXPECT_NE(std::string(e.what()).find("row 2, column 1"), std::string::npos) << e.what();
        }
      }
    }
  }
  std::vector<uint8_t> bytes(64);
  std::vector<int8_t> qi(8);
  std::vector<float> s(2);
  for (DType t : {DType::kI8, DType::kE4M3, DType::kF64, DType::kI32}) {
    SCOPED_TRACE(dtype_token(t));
    try {
      quantize_rows_i8(t, bytes.data(), 2, 4, qi.data(), s.data());
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("f32, f16, bf16"), std::string::npos) << e.what();
    }
  }
}

TEST(QuantThreads, SameResultForAnyThreadCount) {
  const uint32_t seed = 3;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t rows = 517, cols = 777;
  std::vector<double> v(size_t(rows * cols));
  for (double& x : v) x = double(nd(rng));
  const Quantized one = run_core(DType::kF32, v, rows, cols, 1);
  for (int threads : {2, 5}) {
    const Quantized many = run_core(DType::kF32, v, rows, cols, threads);
    EXPECT_EQ(one.i8, many.i8);
    EXPECT_EQ(one.e4m3, many.e4m3);
    EXPECT_EQ(one.scale_i8, many.scale_i8);
    EXPECT_EQ(one.scale_e4m3, many.scale_e4m3);
  }
}

}  // namespace
}  // namespace slidesparse
