// Pruning (issue acceptance test 3): agreement with the sort-based reference pruner on tie-heavy
// data, tie determinism, minimality, wanda vs magnitude, non-finite weights, in-place bit
// preservation for bf16/f16, threading; plus check_pattern and column-norm validation.
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
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {
namespace {

std::vector<uint8_t> mask_of(Pattern p, PruneMethod m, const std::vector<float>& w,
                             const std::vector<float>& norms = {}) {
  std::vector<uint8_t> keep(w.size(), 7);
  prune_row_mask(p, m, w.data(), int64_t(w.size()), norms.empty() ? nullptr : norms.data(),
                 keep.data(), "hand", 0);
  return keep;
}

TEST(PruneNames, RoundTrip) {
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGpt})
    EXPECT_EQ(prune_method_from_name(prune_method_name(m)), m);
  EXPECT_STREQ(prune_method_name(PruneMethod::kMagnitude), "magnitude");
  EXPECT_STREQ(prune_method_name(PruneMethod::kWanda), "wanda");
  EXPECT_STREQ(prune_method_name(PruneMethod::kSparseGpt), "sparsegpt");
  EXPECT_FALSE(prune_method_from_name("Magnitude").has_value());
  EXPECT_FALSE(prune_method_from_name("").has_value());
  EXPECT_FALSE(prune_method_from_name("SparseGPT").has_value());
}

TEST(PruneHand, TiesKeepLowerIndex) {
  const Pattern p24 = Pattern::parse("2:4"), p68 = Pattern::parse("6:8");
  using V = std::vector<uint8_t>;
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {1, 1, 1, 1}), (V{1, 1, 0, 0}));
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {-1, 1, -1, 1}), (V{1, 1, 0, 0}));
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {1, 2, 2, 1}), (V{0, 1, 1, 0}));
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {3, 1, 2, 1}), (V{1, 0, 1, 0}));
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {0.5f, -3, 1, 2}), (V{0, 1, 0, 1}));
  // Three nonzeros: only one dropped; zeros stay "kept".
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {2, 0, 2, 2}), (V{1, 1, 1, 0}));
  // -0.0 is a zero: the group is compliant and untouched.
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {5, -0.0f, 1, -0.0f}), (V{1, 1, 1, 1}));
  EXPECT_EQ(mask_of(p68, PruneMethod::kMagnitude, {1, 1, 1, 1, 1, 1, 1, 1}),
            (V{1, 1, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(mask_of(p68, PruneMethod::kMagnitude, {1, 1, 1, 1, 1, 1, 1, 0}),
            (V{1, 1, 1, 1, 1, 1, 0, 1}));
  // Two groups of 2:4 and a partial tail of 3 (padded with zeros: 3 nonzeros > 2).
  EXPECT_EQ(mask_of(p24, PruneMethod::kMagnitude, {4, 3, 2, 1, 1, 2, 3, 4, 7, 7, 7}),
            (V{1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0}));
  // A tail of exactly 2N-2 is never touched.
  EXPECT_EQ(mask_of(p68, PruneMethod::kMagnitude, {1, 2, 3, 4, 5, 6}), (V{1, 1, 1, 1, 1, 1}));
}

TEST(PruneHand, WandaChangesTheChoice) {
  const Pattern p = Pattern::parse("2:4");
  const std::vector<float> w = {1, 2, 3, 4};
  using V = std::vector<uint8_t>;
  EXPECT_EQ(mask_of(p, PruneMethod::kMagnitude, w), (V{0, 0, 1, 1}));
  // Scores 10, 2, 3, 4: column 0's large activation norm saves its small weight.
  EXPECT_EQ(mask_of(p, PruneMethod::kWanda, w, {10, 1, 1, 1}), (V{1, 0, 0, 1}));
  // Norm 0 makes a score 0; equal scores still keep the lower index.
  EXPECT_EQ(mask_of(p, PruneMethod::kWanda, w, {1, 1, 0, 0}), (V{1, 1, 0, 0}));
  // Wanda ignores nothing: a column with a huge weight but zero norm is dropped first.
  EXPECT_EQ(mask_of(p, PruneMethod::kWanda, {100, 1, 1, 1}, {0, 1, 1, 1}), (V{0, 1, 1, 0}));
  // Magnitude ignores norms when given.
  EXPECT_EQ(mask_of(p, PruneMethod::kMagnitude, w, {10, 1, 1, 1}), (V{0, 0, 1, 1}));
}

// Scores are exact products (two floats multiply exactly in double). With third = fl(1/3), slightly
// above 1/3, 3 * third exceeds 1 by less than half an f32 ulp: an f32 product would tie with 1 and
// the tie rule would then drop column 1 instead of column 0.
TEST(PruneHand, WandaScoresCompareExactly) {
  const Pattern p = Pattern::parse("2:4");
  const float third = 1.0f / 3.0f;
  ASSERT_EQ(3.0f * third, 1.0f);                // the f32 product rounds to a tie
  ASSERT_GT(3.0 * double(third), 1.0);          // the exact product does not
  using V = std::vector<uint8_t>;
  // Scores: col 0 = 1, col 1 = 3 * third > 1, col 3 = 9; one drop -> col 0.
  EXPECT_EQ(mask_of(p, PruneMethod::kWanda, {1, 3, 0, 9}, {1, third, 1, 1}), (V{0, 1, 1, 1}));
  const std::vector<double> w = {1, 3, 0, 9}, norms = {1, double(third), 1, 1};
  EXPECT_EQ(reference::prune_keep_mask(2, w, 1, 4, norms), (V{0, 1, 1, 1}));
}

TEST(PruneRandom, MatchesReferenceWithTies) {
  int64_t total_dropped = 0;
  for (int n_pat : {2, 3, 4, 5, 6, 8, 16}) {
    const Pattern p = Pattern::from_n(n_pat);
    for (PruneMethod method : {PruneMethod::kMagnitude, PruneMethod::kWanda}) {
      for (uint32_t trial = 0; trial < 60; ++trial) {
        const uint32_t seed = 31u * uint32_t(n_pat) + 1000u * uint32_t(method) + trial * 7u + 1u;
        SCOPED_TRACE(testing::Message() << "N=" << n_pat << " " << prune_method_name(method)
                                        << " seed=" << seed);
        std::mt19937 rng(seed);
        auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
        const int64_t n = uni(1, 9), k = uni(1, 7 * p.group());
        // Values from {-2..2}: many ties and zeros; some rows denser than others.
        std::vector<double> w(size_t(n * k));
        for (double& v : w) v = uni(0, 3) == 0 ? 0.0 : double(uni(-2, 2));
        std::vector<double> norms;
        if (method == PruneMethod::kWanda) {
          norms.resize(size_t(k));
          for (double& v : norms) v = std::vector<double>{0, 0.5, 1, 2}[size_t(uni(0, 3))];
        }
        const std::vector<float> nf(norms.begin(), norms.end());
        const std::vector<uint8_t> want = reference::prune_keep_mask(n_pat, w, n, k, norms);
        // Row API.
        std::vector<uint8_t> got(size_t(n * k));
        int64_t dropped_rows = 0;
        for (int64_t r = 0; r < n; ++r) {
          const std::vector<float> row(w.begin() + r * k, w.begin() + (r + 1) * k);
          dropped_rows += prune_row_mask(p, method, row.data(), k, nf.empty() ? nullptr : nf.data(),
                                         got.data() + r * k, "rand", r);
        }
        ASSERT_EQ(got, want);
        // Minimality: exactly sum over groups of max(0, nnz - keep) are dropped.
        int64_t excess = 0;
        for (int64_t r = 0; r < n; ++r)
          for (int64_t g0 = 0; g0 < k; g0 += p.group()) {
            int64_t nnz = 0;
            for (int64_t j = g0; j < std::min(k, g0 + p.group()); ++j) nnz += w[size_t(r * k + j)] != 0;
            excess += std::max<int64_t>(0, nnz - p.keep());
          }
        EXPECT_EQ(dropped_rows, excess);
        int64_t zeros_in_mask = 0;
        for (uint8_t b : got) zeros_in_mask += b == 0;
        EXPECT_EQ(zeros_in_mask, excess);
        // In-place on f32: dropped -> +0, the rest untouched, result compliant.
        std::vector<uint8_t> wb = test::encode(DType::kF32, w);
        const int64_t dropped = prune_inplace(p, method, DType::kF32, wb.data(), n, k,
                                              nf.empty() ? nullptr : nf.data(), "rand", 2);
        EXPECT_EQ(dropped, excess);
        const std::vector<double> pruned = test::decode(DType::kF32, wb);
        for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(pruned[i], want[i] ? w[i] : 0.0) << i;
        EXPECT_EQ(reference::count_bad_groups(n_pat, pruned, n, k), 0);
        const PatternReport rep = check_pattern(p, DType::kF32, wb.data(), n, k);
        EXPECT_TRUE(rep.ok());
        EXPECT_LE(rep.max_group_nonzeros, p.keep());
        // Pruning twice changes nothing.
        std::vector<uint8_t> again = wb;
        EXPECT_EQ(prune_inplace(p, method, DType::kF32, again.data(), n, k,
                                nf.empty() ? nullptr : nf.data(), "rand"),
                  0);
        EXPECT_EQ(again, wb);
        total_dropped += dropped;
      }
    }
  }
  EXPECT_GT(total_dropped, 1000);
}

// bf16 / f16: random finite bit patterns (subnormals and -0 included). Kept elements keep their
// exact bits, dropped ones become 0x0000, and the choice matches the reference on decoded values.
TEST(PruneInPlace, HalfTypesKeepBitsExactly) {
  for (DType t : {DType::kBF16, DType::kF16}) {
    const uint32_t seed = 555u + uint32_t(t);
    SCOPED_TRACE(testing::Message() << dtype_token(t) << " seed=" << seed);
    std::mt19937 rng(seed);
    const Pattern p = Pattern::parse("6:8");
    const int64_t n = 37, k = 203;
    std::vector<uint16_t> w(size_t(n * k));
    for (uint16_t& b : w) {
      do {
        b = uint16_t(rng());
        if (rng() % 8 == 0) b = uint16_t(b & 0x8000u);  // some +-0
      } while (!std::isfinite(t == DType::kBF16 ? bf16_to_f32(b) : f16_to_f32(b)));
    }
    std::vector<double> vals(w.size());
    for (size_t i = 0; i < w.size(); ++i)
      vals[i] = t == DType::kBF16 ? bf16_to_f32(w[i]) : f16_to_f32(w[i]);
    const std::vector<uint8_t> want = reference::prune_keep_mask(p.n(), vals, n, k);
    std::vector<uint16_t> out = w;
    const int64_t dropped = prune_inplace(p, PruneMethod::kMagnitude, t, out.data(), n, k, nullptr,
                                          "half", 3);
    int64_t expect_dropped = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (want[i]) {
        ASSERT_EQ(out[i], w[i]) << "kept element " << i << " changed";
      } else {
        ASSERT_EQ(out[i], 0u) << "dropped element " << i;
        ++expect_dropped;
      }
    }
    EXPECT_EQ(dropped, expect_dropped);
    EXPECT_GT(dropped, 100);
  }
}

void expect_nonfinite(DType t, float bad) {
  const int64_t n = 5, k = 9;
  const std::vector<double> w(size_t(n * k), 1.0);
  std::vector<uint8_t> wb = test::encode(t, w);
  const size_t b = dtype_size(t);
  const size_t at = size_t(3 * k + 5) * b;
  if (t == DType::kF32) std::memcpy(&wb[at], &bad, 4);
  if (t == DType::kBF16) { const uint16_t h = f32_to_bf16(bad); std::memcpy(&wb[at], &h, 2); }
  if (t == DType::kF16) { const uint16_t h = f32_to_f16(bad); std::memcpy(&wb[at], &h, 2); }
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda}) {
    const std::vector<float> norms(size_t(k), 1.0f);
    try {
      prune_inplace(Pattern::parse("2:4"), m, t, wb.data(), n, k, norms.data(),
                    "model.layers.0.self_attn.q_proj.weight");
      ADD_FAILURE() << "non-finite accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidData);
      const std::string msg = e.what();
      EXPECT_NE(msg.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << msg;
      EXPECT_NE(msg.find("row 3"), std::string::npos) << msg;
      EXPECT_NE(msg.find("column 5"), std::string::npos) << msg;
    }
  }
}

TEST(PruneErrors, NonFiniteWeights) {
  const float inf = std::numeric_limits<float>::infinity();
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16})
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), inf, -inf}) {
      SCOPED_TRACE(testing::Message() << dtype_token(t) << " " << bad);
      expect_nonfinite(t, bad);
    }
  // The row API names the row it was given.
  std::vector<float> w = {1, 2, std::nanf(""), 4};
  std::vector<uint8_t> keep(4);
  try {
    prune_row_mask(Pattern::parse("2:4"), PruneMethod::kMagnitude, w.data(), 4, nullptr,
                   keep.data(), "lm", 41);
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidData);
    EXPECT_NE(std::string(e.what()).find("row 41, column 2"), std::string::npos) << e.what();
  }
}

TEST(PruneErrors, UnsupportedDtypeAndNorms) {
  std::vector<uint8_t> w(64, 1);
  for (DType t : {DType::kI8, DType::kE4M3, DType::kF64, DType::kI32}) {
    SCOPED_TRACE(dtype_token(t));
    try {
      prune_inplace(Pattern::parse("2:4"), PruneMethod::kMagnitude, t, w.data(), 1, 4, nullptr);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kUnsupported);
      const std::string msg = e.what();
      EXPECT_NE(msg.find("f32, f16, bf16"), std::string::npos) << msg;
      EXPECT_NE(msg.find(dtype_token(t)), std::string::npos) << msg;
    }
  }
  std::vector<float> wf(8, 1.0f);
  try {
    prune_inplace(Pattern::parse("2:4"), PruneMethod::kWanda, DType::kF32, wf.data(), 2, 4, nullptr,
                  "lay");
    ADD_FAILURE() << "wanda without norms accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("norms"), std::string::npos) << e.what();
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float bad : {-1.0f, std::nanf(""), inf, -inf}) {
    SCOPED_TRACE(bad);
    std::vector<float> norms = {1, 1, bad, 1};
    try {
      validate_col_norms(norms.data(), 4, "lay");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidData);
      EXPECT_NE(std::string(e.what()).find("column 2"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("lay"), std::string::npos) << e.what();
    }
    EXPECT_THROW(prune_inplace(Pattern::parse("2:4"), PruneMethod::kWanda, DType::kF32, wf.data(),
                               2, 4, norms.data(), "lay"),
                 Error);
    EXPECT_EQ(wf, std::vector<float>(8, 1.0f));  // nothing written before validation failed
  }
  const std::vector<float> good = {0, -0.0f, 1, 1e30f};
  validate_col_norms(good.data(), 4, "lay");
  EXPECT_THROW(validate_col_norms(nullptr, 4, "lay"), Error);
}

TEST(PruneThreads, SameResultForAnyThreadCount) {
  const uint32_t seed = 8;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse("8:10");
  const int64_t n = 263, k = 1001;
  std::vector<float> w(size_t(n * k)), norms(static_cast<size_t>(k));
  std::uniform_int_distribution<int> small(-3, 3);
  for (float& v : w) v = float(small(rng));
  for (float& v : norms) v = float(rng() % 4);
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda}) {
    std::vector<float> one = w;
    const int64_t d1 = prune_inplace(p, m, DType::kF32, one.data(), n, k, norms.data(), "t", 1);
    EXPECT_GT(d1, 0);
    for (int threads : {2, 3, 16}) {
      std::vector<float> many = w;
      EXPECT_EQ(prune_inplace(p, m, DType::kF32, many.data(), n, k, norms.data(), "t", threads), d1);
      EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * 4), 0) << "threads " << threads;
    }
  }
  // The lowest bad row is reported whatever the thread count.
  std::vector<float> bad = w;
  bad[size_t(200 * k + 7)] = std::nanf("");
  bad[size_t(90 * k + 999)] = std::numeric_limits<float>::infinity();
  for (int threads : {1, 4}) {
    std::vector<float> copy = bad;
    try {
      prune_inplace(p, PruneMethod::kMagnitude, DType::kF32, copy.data(), n, k, nullptr, "t", threads);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 90, column 999"), std::string::npos) << e.what();
    }
  }
}

TEST(CheckPattern, ReportsCountsAnyDtype) {
  const Pattern p = Pattern::parse("4:6");
  // Row 0: groups {1,1,1,1,0,-0} ok (4), {1,1,1,1,1,0} bad (5); row 1: {...}, tail of 2.
  const std::vector<float> w = {1, 1, 1, 1, 0, -0.0f, 1, 1, 1, 1, 1, 0, 2, 2,
                                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 5, 5};
  const PatternReport rep = check_pattern(p, DType::kF32, w.data(), 3, 14);
  EXPECT_EQ(rep.groups, 9);
  EXPECT_EQ(rep.violating_groups, 2);
  EXPECT_EQ(rep.nonzeros, 4 + 5 + 2 + 0 + 6 + 2);
  EXPECT_EQ(rep.max_group_nonzeros, 6);
  EXPECT_EQ(rep.first_bad_row, 0);
  EXPECT_EQ(rep.first_bad_group, 1);
  EXPECT_FALSE(rep.ok());
  // Same layout as e4m3 bytes: 0x80 (-0) is zero; as i8, 0x80 is -128 (nonzero).
  std::vector<uint8_t> e(w.size());
  for (size_t i = 0; i < w.size(); ++i) e[i] = f32_to_e4m3(w[i]);
  const PatternReport re = check_pattern(p, DType::kE4M3, e.data(), 3, 14);
  EXPECT_EQ(re.nonzeros, rep.nonzeros);
  EXPECT_EQ(re.violating_groups, 2);
  const PatternReport ri = check_pattern(p, DType::kI8, e.data(), 3, 14);
  EXPECT_EQ(ri.nonzeros, rep.nonzeros + 1);
  const PatternReport empty = check_pattern(p, DType::kBF16, nullptr, 0, 14);
  EXPECT_EQ(empty.groups, 0);
  EXPECT_TRUE(empty.ok());
}

}  // namespace
}  // namespace slidesparse
