// The keep:group magnitude mask (include/slidesparse/nm_mask.hpp): agreement with the sort-based
// reference (src/reference, written apart from the core) on tie-heavy integer data for every dtype,
// odd k and a row stride > k; -0.0 == +0.0; inf; partial last groups; NaN and bad keep:group
// rejected with their values named; the masked weight's bits; and the stated relation to magnitude
// pruning: for keep:group = (2N-2):2N the masked weight equals prune_inplace's output bit for bit.
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
#include "slidesparse/nm_mask.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse {
namespace {

struct KeepGroup {
  int keep, group;
};
const KeepGroup kCases[] = {{2, 4}, {6, 8}, {4, 6}, {8, 10}, {14, 16}, {1, 4}, {0, 3}, {3, 3}, {30, 32}, {1, 1}};

// Small signed integers from a narrow range: many exact ties, zeros of both signs.
std::vector<double> tie_heavy(int64_t count, uint64_t seed, int range) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-range, range);
  std::vector<double> v(static_cast<size_t>(count));
  for (auto& x : v) {
    const int q = d(rng);
    x = q == 0 && (rng() & 1) ? -0.0 : double(q);
  }
  return v;
}

std::vector<uint8_t> row_mask(const std::vector<float>& w, int keep, int group) {
  std::vector<uint8_t> m(w.size(), 7);
  nm_mask_row(w.data(), int64_t(w.size()), keep, group, m.data(), "hand", 0);
  return m;
}

TEST(NmMask, HandCases) {
  // Ties go to the lower column; |-3| beats 2.
  EXPECT_EQ(row_mask({1, 1, 1, 1}, 2, 4), (std::vector<uint8_t>{1, 1, 0, 0}));
  EXPECT_EQ(row_mask({2, -3, 2, 0}, 2, 4), (std::vector<uint8_t>{1, 1, 0, 0}));
  EXPECT_EQ(row_mask({0, 2, -3, 2}, 2, 4), (std::vector<uint8_t>{0, 1, 1, 0}));
  // -0.0 and +0.0 tie: the lower column wins whichever sign it has.
  EXPECT_EQ(row_mask({-0.0f, 0.0f, 0.0f, -0.0f}, 1, 4), (std::vector<uint8_t>{1, 0, 0, 0}));
  EXPECT_EQ(row_mask({0.0f, -0.0f, 5, 0.0f}, 2, 4), (std::vector<uint8_t>{1, 0, 1, 0}));
  // inf is the largest magnitude.
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(row_mask({1e30f, -inf, 3, inf}, 2, 4), (std::vector<uint8_t>{0, 1, 0, 1}));
  // Partial last group (k = 6, group 4): the tail of 2 keeps min(keep, 2).
  EXPECT_EQ(row_mask({1, 2, 3, 4, 9, 8}, 3, 4), (std::vector<uint8_t>{0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(row_mask({1, 2, 3, 4, 9, 8}, 1, 4), (std::vector<uint8_t>{0, 0, 0, 1, 1, 0}));
  // keep 0 keeps nothing, keep == group everything.
  EXPECT_EQ(row_mask({1, 2, 3}, 0, 3), (std::vector<uint8_t>{0, 0, 0}));
  EXPECT_EQ(row_mask({0, 0, 1}, 3, 3), (std::vector<uint8_t>{1, 1, 1}));
}

TEST(NmMask, MatchesReferenceEveryDtype) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16})
    for (const KeepGroup c : kCases)
      for (int64_t k : {int64_t(1), int64_t(7), int64_t(33), int64_t(101), int64_t(160)}) {
        const int64_t rows = 5, ld = k + 3;
        const uint64_t seed = uint64_t(k) * 131 + uint64_t(c.group) * 7 + uint64_t(c.keep);
        SCOPED_TRACE(std::string(dtype_token(t)) + " " + std::to_string(c.keep) + ":" +
                     std::to_string(c.group) + " k=" + std::to_string(k) + " seed=" + std::to_string(seed));
        const std::vector<double> v = tie_heavy(rows * ld, seed, 4);
        const std::vector<uint8_t> bytes = test::encode(t, v);
        std::vector<double> dense(size_t(rows * k));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < k; ++j) dense[size_t(r * k + j)] = v[size_t(r * ld + j)];
        std::vector<uint8_t> mask(size_t(rows * k), 7);
        const size_t B = dtype_size(t);
        std::vector<uint8_t> out(size_t(rows * k) * B, 0xA5);
        const int64_t kept = nm_mask(t, bytes.data(), rows, k, ld, c.keep, c.group, mask.data(), out.data());
        const std::vector<uint8_t> want = reference::topk_group_mask(c.keep, c.group, dense, rows, k);
        ASSERT_EQ(mask, want);
        int64_t want_kept = 0;
        for (uint8_t m : want) want_kept += m;
        EXPECT_EQ(kept, want_kept);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < k; ++j) {
            const uint8_t* o = &out[size_t(r * k + j) * B];
            const uint8_t* in = &bytes[size_t(r * ld + j) * B];
            if (mask[size_t(r * k + j)])
              ASSERT_EQ(std::memcmp(o, in, B), 0) << "kept element changed at " << r << "," << j;
            else
              for (size_t b = 0; b < B; ++b) ASSERT_EQ(o[b], 0) << "dropped element not +0 at " << r << "," << j;
          }
      }
}

TEST(NmMask, KeptCountIsMinKeepLen) {
  const std::vector<double> v = tie_heavy(3 * 29, 5, 2);
  const std::vector<uint8_t> b = test::encode(DType::kF32, v);
  std::vector<uint8_t> mask(v.size());
  for (const KeepGroup c : kCases) {
    nm_mask(DType::kF32, b.data(), 3, 29, 29, c.keep, c.group, mask.data());
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t base = 0; base < 29; base += c.group) {
        int cnt = 0;
        const int64_t len = std::min<int64_t>(c.group, 29 - base);
        for (int64_t j = base; j < base + len; ++j) cnt += mask[size_t(r * 29 + j)];
        EXPECT_EQ(cnt, std::min<int64_t>(c.keep, len)) << c.keep << ":" << c.group << " row " << r << " base " << base;
      }
  }
}

TEST(NmMask, NanIsAnErrorNamingRowAndColumn) {
  std::vector<float> w(2 * 10, 1.0f);
  w[13] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> mask(w.size());
  try {
    nm_mask(DType::kF32, w.data(), 2, 10, 10, 2, 4, mask.data(), nullptr, "blk.0.q");
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidData);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("row 1, column 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("blk.0.q"), std::string::npos) << msg;
  }
}

TEST(NmMask, RejectsBadArguments) {
  std::vector<float> w(8, 1.0f);
  std::vector<uint8_t> mask(8);
  for (const KeepGroup c : {KeepGroup{3, 2}, KeepGroup{-1, 4}, KeepGroup{2, 0}, KeepGroup{2, 33}}) {
    try {
      nm_mask(DType::kF32, w.data(), 1, 8, 8, c.keep, c.group, mask.data());
      FAIL() << c.keep << ":" << c.group << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(std::to_string(c.keep) + ":" + std::to_string(c.group)),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(nm_mask(DType::kF32, w.data(), 1, 8, 7, 2, 4, mask.data()), Error);  // ld < k
  try {
    nm_mask(DType::kI8, w.data(), 1, 8, 8, 2, 4, mask.data());
    FAIL() << "i8 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kUnsupported);
  }
}

// For keep:group = (2N-2):2N the masked weight is what magnitude pruning writes: bit for bit when
// the weight holds no -0.0 (a -0.0 that pruning leaves alone may be dropped by the mask -> +0.0),
// and equal as values with -0.0 present.
TEST(NmMask, EqualsMagnitudePruningForTheFamily) {
  for (bool neg_zero : {false, true})
    for (int n : {2, 3, 4, 5, 8, 16})
      for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
        const Pattern p = Pattern::from_n(n);
        const int64_t rows = 7, k = 3 * p.group() + 5;  // a partial last group
        std::vector<double> v = tie_heavy(rows * k, uint64_t(n) * 3 + uint64_t(t), 3);
        for (size_t i = 0; i < v.size(); i += 5) v[i] = 0.0;  // some groups already within budget
        if (!neg_zero)
          for (double& x : v) x = x == 0.0 ? 0.0 : x;
        std::vector<uint8_t> pruned = test::encode(t, v);
        const std::vector<uint8_t> orig = pruned;
        prune_inplace(p, PruneMethod::kMagnitude, t, pruned.data(), rows, k, nullptr);
        std::vector<uint8_t> mask(size_t(rows * k));
        std::vector<uint8_t> masked(orig.size(), 0xA5);
        nm_mask(t, orig.data(), rows, k, k, p.keep(), p.group(), mask.data(), masked.data());
        if (!neg_zero)
          EXPECT_EQ(masked, pruned) << "N=" << n << " " << dtype_token(t);
        else
          EXPECT_EQ(test::decode(t, masked), test::decode(t, pruned)) << "N=" << n << " " << dtype_token(t);
      }
}

}  // namespace
}  // namespace slidesparse
