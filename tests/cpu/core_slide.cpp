// Greedy placement edge cases, error reporting, dtype genericity and threading of the sliding
// transform (issue acceptance test 2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core_test_util.hpp"
#include "reference/reference.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

std::vector<float> slide_f32(Pattern p, const std::vector<float>& w, int64_t n, int64_t k,
                             int64_t ks) {
  std::vector<float> ws(size_t(n * ks), -1.0f);
  slide_weight(p, DType::kF32, w.data(), n, k, ws.data(), ks, "hand");
  return ws;
}

// Hand-computed placements for 6:8 (windows cover offsets 0..3, 2..5, 4..7).
TEST(SlideGreedy, HandComputed68) {
  const Pattern p = Pattern::parse("6:8");
  struct Hand {
    std::vector<float> w;
    std::vector<float> expect;
  };
  const Hand cases[] = {
      // Crowded at the start: w0 takes offsets 0,1; w1 takes 2,3; w2 takes 4,5.
      {{1, 2, 3, 4, 5, 6, 0, 0}, {1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0}},
      // Crowded at the end: every window takes its last two lanes.
      {{0, 0, 3, 4, 5, 6, 7, 8}, {0, 0, 3, 4, 0, 0, 5, 6, 0, 0, 7, 8}},
      // Alternating.
      {{1, 0, 3, 0, 5, 0, 7, 0}, {1, 0, 3, 0, 0, 0, 5, 0, 0, 0, 7, 0}},
      // w0 takes offsets 1,2; w1 finds nothing unplaced in 2..5; w2 takes 7 (lane 3).
      {{0, 2, 3, 0, 0, 0, 0, 8}, {0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 8}},
      // Gap in the middle: w0 takes 0,1; w1 finds nothing; w2 takes 6,7.
      {{1, 2, 0, 0, 0, 0, 7, 8}, {1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8}},
      // w0 takes 0,3 (lane 3); w1 (2..5) takes 4,5; w2 takes 6.
      {{1, 0, 0, 4, 5, 6, 7, 0}, {1, 0, 0, 4, 0, 0, 5, 6, 0, 0, 7, 0}},
      {{0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {{0, 0, 0, 0, 0, 0, 0, 9}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}},
  };
  for (const Hand& h : cases) {
    SCOPED_TRACE(testing::PrintToString(h.w));
    EXPECT_EQ(slide_f32(p, h.w, 1, 8, 12), h.expect);
    std::vector<float> padded = h.expect;
    padded.resize(32, 0.0f);
    EXPECT_EQ(slide_f32(p, h.w, 1, 8, 32), padded);
  }
  // Partial last group: k = 11 -> group 1 holds columns 8..10 and padding.
  const std::vector<float> w = {1, 2, 3, 4, 5, 6, 0, 0, 9, 10, 11};
  const std::vector<float> expect = {1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0,
                                     9, 10, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(slide_f32(p, w, 1, 11, 32), expect);
}

// Runs one row through core and reference; expects agreement and an exact round trip.
void check_row(Pattern p, DType t, const std::vector<double>& w, int64_t k) {
  const auto ek = test::elem_kind(t);
  const std::vector<uint8_t> wb = test::encode(t, w);
  const int64_t ks = slide_k(p, k, 4);
  std::vector<uint8_t> ws(size_t(ks) * ek.bytes, 0xEE);
  slide_weight(p, t, wb.data(), 1, k, ws.data(), ks, "row");
  const auto ref = reference::slide(p.n(), ek, wb, 1, k, ks);
  ASSERT_TRUE(ref.ok);
  ASSERT_EQ(ws, ref.w_slide);
  ASSERT_EQ(reference::count_bad_2to4_windows(ek, ws, 1, ks), 0);
  std::vector<uint8_t> back(wb.size());
  unslide_weight(p, t, ws.data(), 1, ks, back.data(), k, "row");
  ASSERT_EQ(back, wb);
}

void expect_too_dense(Pattern p, DType t, const std::vector<double>& w, int64_t n, int64_t k,
                      int64_t row, int64_t group, int64_t nnz, int threads = 1) {
  const std::vector<uint8_t> wb = test::encode(t, w);
  const int64_t ks = slide_k(p, k);
  std::vector<uint8_t> ws(size_t(n * ks) * dtype_size(t));
  const std::string layer = "model.layers.7.mlp.down_proj.weight";
  try {
    slide_weight(p, t, wb.data(), n, k, ws.data(), ks, layer, threads);
    ADD_FAILURE() << "too-dense group accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidData);
    const std::string msg = e.what();
    EXPECT_NE(msg.find(layer), std::string::npos) << msg;
    EXPECT_NE(msg.find("row " + std::to_string(row) + ","), std::string::npos) << msg;
    EXPECT_NE(msg.find("group " + std::to_string(group) + " "), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(nnz) + " nonzeros"), std::string::npos) << msg;
  }
  const auto ref = reference::slide(p.n(), test::elem_kind(t), wb, n, k, ks);
  EXPECT_FALSE(ref.ok);
  EXPECT_EQ(ref.bad_row, row);
  EXPECT_EQ(ref.bad_group, group);
}

// Every subset of the 2N positions, for N = 2..6 (N <= 6 is also the range of the core's
// per-mask slot table, so every table entry is checked): subsets of size <= 2N-2 slide exactly (as
// the only group, and as the middle group between an all-zero and a full group); larger ones fail.
TEST(SlideGreedy, ExhaustiveSubsets) {
  for (int n = 2; n <= 6; ++n) {
    const Pattern p = Pattern::from_n(n);
    const int G = p.group();
    int accepted = 0, rejected = 0;
    for (uint32_t mask = 0; mask < (1u << G); ++mask) {
      SCOPED_TRACE(testing::Message() << "N=" << n << " mask=0x" << std::hex << mask);
      std::vector<double> group(size_t(G), 0.0);
      int nnz = 0;
      for (int o = 0; o < G; ++o)
        if (mask >> o & 1) {
          group[size_t(o)] = double(o + 1);
          ++nnz;
        }
      std::vector<double> three(size_t(3 * G), 0.0);
      std::copy(group.begin(), group.end(), three.begin() + G);
      for (int o = 0; o < p.keep(); ++o) three[size_t(2 * G + o)] = -double(o + 1);
      if (nnz <= p.keep()) {
        check_row(p, DType::kF32, group, G);
        check_row(p, DType::kBF16, three, 3 * G);
        ++accepted;
      } else {
        expect_too_dense(p, DType::kF32, group, 1, G, 0, 0, nnz);
        expect_too_dense(p, DType::kBF16, three, 1, 3 * G, 0, 1, nnz);
        ++rejected;
      }
    }
    // C(2N, 2N-1) + C(2N, 2N) subsets are too dense.
    EXPECT_EQ(rejected, G + 1);
    EXPECT_EQ(accepted, (1 << G) - G - 1);
  }
}

// Larger N: every placement of exactly 2N-2 nonzeros is out of reach exhaustively for N = 16, so
// take crowded-start, crowded-end, two-gap and random subsets of size 2N-2.
TEST(SlideGreedy, MaximallyDenseLargeN) {
  const uint32_t seed = 4242;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (int n = 6; n <= kMaxN; ++n) {
    const Pattern p = Pattern::from_n(n);
    const int G = p.group();
    SCOPED_TRACE(testing::Message() << "N=" << n);
    for (int gap1 = 0; gap1 < G; ++gap1)
      for (int gap2 = gap1 + 1; gap2 < G; ++gap2) {
        std::vector<double> w(static_cast<size_t>(G));
        for (int o = 0; o < G; ++o) w[size_t(o)] = (o == gap1 || o == gap2) ? 0.0 : double(o + 1);
        check_row(p, DType::kF32, w, G);
      }
    for (int trial = 0; trial < 50; ++trial) {
      // Random subset of size <= 2N-2 in a partial last group of random length.
      const int len = std::uniform_int_distribution<int>(1, G)(rng);
      std::vector<double> w(size_t(G + len), 0.0);
      std::vector<int> pos(static_cast<size_t>(len));
      for (int i = 0; i < len; ++i) pos[size_t(i)] = i;
      std::shuffle(pos.begin(), pos.end(), rng);
      const int take = std::min(len, std::uniform_int_distribution<int>(0, p.keep())(rng));
      for (int i = 0; i < take; ++i) w[size_t(G + pos[size_t(i)])] = double(i + 1);
      check_row(p, DType::kF32, w, G + len);
    }
  }
}

TEST(SlideGreedy, PartialLastGroup) {
  for (int n = 2; n <= 8; ++n) {
    const Pattern p = Pattern::from_n(n);
    const int G = p.group();
    for (int r = 1; r < G; ++r) {
      SCOPED_TRACE(testing::Message() << "N=" << n << " tail=" << r);
      // Tail fully populated: fine up to 2N-2 columns, too dense at 2N-1.
      std::vector<double> w(size_t(2 * G + r), 0.0);
      for (int j = 0; j < r; ++j) w[size_t(2 * G + j)] = double(j + 1);
      if (r <= p.keep())
        check_row(p, DType::kF32, w, 2 * G + r);
      else
        expect_too_dense(p, DType::kF32, w, 1, 2 * G + r, 0, 2, r);
    }
  }
}

TEST(SlideErrors, TooDenseNamesLayerRowGroupEvenWithThreads) {
  const Pattern p = Pattern::parse("6:8");
  const int64_t n = 2000, k = 64;  // 8 groups per row
  std::vector<double> w(size_t(n * k), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; j += 2) w[size_t(r * k + j)] = 1.0;  // 4 per group: fine
  // Two bad groups in rows handled by different threads; the lower row must be reported.
  for (int64_t j = 40; j < 47; ++j) w[size_t(1300 * k + j)] = 2.0;  // group 5: 7 nonzeros
  for (int64_t j = 8; j < 16; ++j) w[size_t(1700 * k + j)] = 3.0;   // group 1: 8 nonzeros
  for (int threads : {1, 2, 4}) {
    SCOPED_TRACE(testing::Message() << "threads " << threads);
    expect_too_dense(p, DType::kF32, w, n, k, 1300, 5, 7, threads);
  }
}

TEST(SlideErrors, BadArguments) {
  const Pattern p = Pattern::parse("6:8");
  std::vector<float> w(16, 0.0f), ws(64);
  try {
    slide_weight(p, DType::kF32, w.data(), 1, 16, ws.data(), 23);
    ADD_FAILURE() << "k_slide 23 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("k_slide = 23"), std::string::npos) << e.what();
  }
  EXPECT_THROW(slide_weight(p, DType::kF32, nullptr, 1, 16, ws.data(), 24), Error);
  EXPECT_THROW(slide_weight(p, DType::kF32, w.data(), -1, 16, ws.data(), 24), Error);
  EXPECT_THROW(lift_activations(p, DType::kF32, w.data(), 1, 16, ws.data(), 20), Error);
  // Empty matrices are fine.
  slide_weight(p, DType::kF32, nullptr, 0, 16, nullptr, 24);
  slide_weight(p, DType::kF32, nullptr, 3, 0, nullptr, 0);
}

TEST(SlideErrors, UnslideRejectsPaddingAndDoubleClaims) {
  const Pattern p = Pattern::parse("6:8");
  const int64_t k = 10, ks = 32;  // groups: 0 (cols 0..7), 1 (cols 8, 9 + padding)
  std::vector<float> out(static_cast<size_t>(k));
  auto expect_error = [&](const std::vector<int64_t>& nonzero_kp, const std::string& needle) {
    std::vector<float> ws(size_t(2 * ks), 0.0f);
    for (int64_t kp : nonzero_kp) ws[size_t(ks + kp)] = 1.0f;  // row 1
    std::vector<float> out2(size_t(2 * k));
    try {
      unslide_weight(p, DType::kF32, ws.data(), 2, ks, out2.data(), k, "lay");
      ADD_FAILURE() << "accepted " << testing::PrintToString(nonzero_kp);
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidData);
      const std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find("row 1"), std::string::npos) << msg;
      EXPECT_NE(msg.find("lay"), std::string::npos) << msg;
    }
  };
  expect_error({14}, "slid column 14");  // maps to column 10 >= k
  expect_error({24}, "slid column 24");  // past the last group
  expect_error({31}, "slid column 31");
  expect_error({2, 4}, "slid columns 2 and 4");  // both are column 2
  expect_error({7, 9}, "original column 5");     // 7 -> 5, 9 -> 5
  // -0.0 on padding is zero, not a nonzero.
  std::vector<float> ws(size_t(ks), 0.0f);
  ws[20] = -0.0f;
  ws[12] = 5.0f;
  unslide_weight(p, DType::kF32, ws.data(), 1, ks, out.data(), k);
  EXPECT_EQ(out, (std::vector<float>{0, 0, 0, 0, 0, 0, 0, 0, 5, 0}));
}

// Zero test per dtype: -0.0 (floats), 0x80 (e4m3) are zero and become +0 bytes in W'; for integer
// dtypes 0x80 in the top byte is a nonzero.
TEST(SlideDtypes, NegativeZeroAndIntegers) {
  const Pattern p = Pattern::parse("2:4");
  {
    const std::vector<float> w = {-0.0f, 1.0f, 2.0f, -0.0f};
    const std::vector<float> ws = slide_f32(p, w, 1, 4, 4);
    EXPECT_EQ(ws, (std::vector<float>{0, 1, 2, 0}));
    EXPECT_FALSE(std::signbit(ws[0]));
    EXPECT_FALSE(std::signbit(ws[3]));
  }
  {
    const std::vector<uint8_t> w = {0x80, 0x38, 0x80, 0xC0};  // -0, 1, -0, -2 (e4m3)
    std::vector<uint8_t> ws(4, 0xFF);
    slide_weight(p, DType::kE4M3, w.data(), 1, 4, ws.data(), 4);
    EXPECT_EQ(ws, (std::vector<uint8_t>{0, 0x38, 0, 0xC0}));
    EXPECT_TRUE(check_2to4(DType::kE4M3, ws.data(), 1, 4).ok());
  }
  {
    const std::vector<int8_t> w = {-128, 1, 0, 5};  // 0x80 is -128 for i8: three nonzeros
    std::vector<int8_t> ws(4);
    EXPECT_THROW(slide_weight(p, DType::kI8, w.data(), 1, 4, ws.data(), 4), Error);
    const std::vector<uint8_t> u = {0x80, 0, 0, 0x80};
    std::vector<uint8_t> us(4);
    slide_weight(p, DType::kU8, u.data(), 1, 4, us.data(), 4);
    EXPECT_EQ(us, u);
  }
}

// All element sizes (1, 2, 4, 8 bytes) and both zero rules, against the reference.
TEST(SlideDtypes, AllSizesMatchReference) {
  const uint32_t seed = 99;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (DType t : {DType::kI8, DType::kE4M3, DType::kBF16, DType::kF16, DType::kI16, DType::kF32,
                  DType::kI32, DType::kF64, DType::kI64}) {
    for (int n_pat : {2, 3, 4, 9, 16}) {
      SCOPED_TRACE(testing::Message() << dtype_token(t) << " N=" << n_pat);
      const Pattern p = Pattern::from_n(n_pat);
      const int64_t n = 5, k = 3 * p.group() + 3, ks = slide_k(p, k);
      const auto ek = test::elem_kind(t);
      // Random bytes, then zero elements until every group complies; some kept zeros are -0.
      std::vector<uint8_t> wb(size_t(n * k) * ek.bytes);
      for (auto& b : wb) b = uint8_t(rng());
      std::uniform_int_distribution<int> coin(0, 2);
      for (int64_t i = 0; i < n * k; ++i) {
        if (coin(rng) == 0) {
          std::fill_n(&wb[size_t(i) * ek.bytes], ek.bytes, 0);
          if (ek.is_float && coin(rng) == 0) wb[size_t(i + 1) * ek.bytes - 1] = 0x80;
        }
      }
      for (int64_t r = 0; r < n; ++r)
        for (int64_t g0 = 0; g0 < k; g0 += p.group()) {
          int cnt = 0;
          for (int64_t j = g0; j < std::min(k, g0 + p.group()); ++j) {
            uint8_t* e = &wb[size_t(r * k + j) * ek.bytes];
            if (reference::is_zero(ek, e)) continue;
            if (++cnt > p.keep()) std::fill_n(e, ek.bytes, 0);
          }
        }
      std::vector<uint8_t> ws(size_t(n * ks) * ek.bytes, 0x77);
      slide_weight(p, t, wb.data(), n, k, ws.data(), ks);
      const auto ref = reference::slide(n_pat, ek, wb, n, k, ks);
      ASSERT_TRUE(ref.ok);
      ASSERT_EQ(ws, ref.w_slide);
      EXPECT_EQ(reference::count_bad_2to4_windows(ek, ws, n, ks), 0);
      // Unslide restores W except that -0 became +0.
      std::vector<uint8_t> back(wb.size());
      unslide_weight(p, t, ws.data(), n, ks, back.data(), k);
      for (int64_t i = 0; i < n * k; ++i) {
        const uint8_t* a = &wb[size_t(i) * ek.bytes];
        const uint8_t* b = &back[size_t(i) * ek.bytes];
        if (reference::is_zero(ek, a))
          EXPECT_TRUE(std::all_of(b, b + ek.bytes, [](uint8_t x) { return x == 0; })) << i;
        else
          EXPECT_TRUE(std::equal(a, a + ek.bytes, b)) << i;
      }
      // Lifting is byte-generic too: compare with the reference column map.
      const int64_t m = 3;
      std::vector<uint8_t> xb(size_t(m * k) * ek.bytes), xl(size_t(m * ks) * ek.bytes, 0x33);
      for (auto& b : xb) b = uint8_t(rng());
      lift_activations(p, t, xb.data(), m, k, xl.data(), ks);
      const std::vector<int64_t> map = reference::slid_columns(n_pat, k, ks);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t kp = 0; kp < ks; ++kp) {
          const uint8_t* got = &xl[size_t(i * ks + kp) * ek.bytes];
          for (size_t b = 0; b < ek.bytes; ++b) {
            const uint8_t want =
                map[size_t(kp)] < 0 ? 0 : xb[size_t(i * k + map[size_t(kp)]) * ek.bytes + b];
            ASSERT_EQ(got[b], want) << "row " << i << " kp " << kp << " byte " << b;
          }
        }
    }
  }
}

TEST(Check2to4, MatchesReferenceCounts) {
  const uint32_t seed = 5;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  for (int64_t cols : {int64_t(4), int64_t(12), int64_t(30), int64_t(64), int64_t(2)}) {
    const int64_t n = 7;
    std::vector<float> w(size_t(n * cols));
    std::bernoulli_distribution nz(0.45);
    for (float& v : w) v = nz(rng) ? 1.0f : (nz(rng) ? -0.0f : 0.0f);
    std::vector<uint8_t> bytes(w.size() * 4);
    std::memcpy(bytes.data(), w.data(), bytes.size());
    const TwoFourReport rep = check_2to4(DType::kF32, w.data(), n, cols);
    EXPECT_EQ(rep.windows, n * ((cols + 3) / 4));
    EXPECT_EQ(rep.violating_windows, reference::count_bad_2to4_windows({4, true}, bytes, n, cols));
    EXPECT_EQ(rep.ok(), rep.violating_windows == 0);
  }
  // First bad window is reported in row-major order.
  std::vector<float> w(2 * 8, 0.0f);
  w[8 + 4] = w[8 + 5] = w[8 + 7] = 1.0f;  // row 1, window 1
  const TwoFourReport rep = check_2to4(DType::kF32, w.data(), 2, 8);
  EXPECT_EQ(rep.violating_windows, 1);
  EXPECT_EQ(rep.first_bad_row, 1);
  EXPECT_EQ(rep.first_bad_window, 1);
  EXPECT_FALSE(rep.ok());
}

TEST(SlideThreads, SameResultForAnyThreadCount) {
  const Pattern p = Pattern::parse("6:8");
  const int64_t n = 301, k = 1003, ks = slide_k(p, k);
  const uint32_t seed = 12;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::vector<uint16_t> w(size_t(n * k), 0);
  // bf16 bits, 6 nonzeros at random offsets of every group of 8 (the partial last group: 3 columns).
  std::vector<int64_t> offsets = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g0 = 0; g0 < k; g0 += 8) {
      std::shuffle(offsets.begin(), offsets.end(), rng);
      for (int i = 0; i < 6; ++i)
        if (g0 + offsets[size_t(i)] < k)
          w[size_t(r * k + g0 + offsets[size_t(i)])] = uint16_t(0x3f80 + rng() % 64);
    }
  std::vector<uint16_t> one(size_t(n * ks)), many(size_t(n * ks));
  slide_weight(p, DType::kBF16, w.data(), n, k, one.data(), ks, "t", 1);
  for (int threads : {2, 3, 8}) {
    std::fill(many.begin(), many.end(), uint16_t(0xFFFF));
    slide_weight(p, DType::kBF16, w.data(), n, k, many.data(), ks, "t", threads);
    EXPECT_EQ(one, many) << "threads " << threads;
  }
}

}  // namespace
}  // namespace slidesparse
