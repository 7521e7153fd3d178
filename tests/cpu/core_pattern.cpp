// Pattern parsing and the sliding geometry (slide_k, slide_to_orig, lift_map) against the
// reference column map and hand-computed values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "reference/reference.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

TEST(Pattern, AcceptsTheWholeFamily) {
  for (int n = kMinN; n <= kMaxN; ++n) {
    const std::string text = std::to_string(2 * n - 2) + ":" + std::to_string(2 * n);
    SCOPED_TRACE(text);
    const Pattern p = Pattern::parse(text);
    EXPECT_EQ(p.n(), n);
    EXPECT_EQ(p.group(), 2 * n);
    EXPECT_EQ(p.keep(), 2 * n - 2);
    EXPECT_EQ(p.windows(), n - 1);
    EXPECT_EQ(p.slide_group(), 4 * (n - 1));
    EXPECT_EQ(p.str(), text);
    EXPECT_EQ(Pattern::from_n(n), p);
    EXPECT_DOUBLE_EQ(p.expansion() * n, 2.0 * n - 2);
    EXPECT_DOUBLE_EQ(p.ideal_speedup() * (n - 1), double(n));
  }
  EXPECT_EQ(Pattern::parse("6:8").n(), 4);
  EXPECT_EQ(Pattern::parse("30:32").n(), 16);
  EXPECT_DOUBLE_EQ(Pattern::parse("6:8").expansion(), 1.5);
  EXPECT_DOUBLE_EQ(Pattern::parse("4:6").ideal_speedup(), 1.5);
}

TEST(Pattern, RejectsEverythingElseWithExamples) {
  const char* bad[] = {"",      "3:4",  "6:9",   "2:4x",  "0:2",   "32:34", "2:2",  "4:4",
                       "1:2",   "6:8:", ":8",    "6:",    " 6:8",  "6:8 ",  "6 : 8", "+6:8",
                       "-6:8",  "06:8", "6:08",  "6/8",   "68",    "a:b",   "8:6",  "2:6",
                       "99999999999999999999:4", "6:8\n", "2:4,",  "0:0",   "34:36"};
  for (const char* text : bad) {
    SCOPED_TRACE(std::string("input '") + text + "'");
    try {
      Pattern::parse(text);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument);
      const std::string msg = e.what();
      EXPECT_NE(msg.find("2:4, 4:6, 6:8, 8:10"), std::string::npos) << msg;
      EXPECT_NE(msg.find("30:32"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::string("'") + text + "'"), std::string::npos) << msg;
    }
  }
}

TEST(Pattern, FromNRange) {
  for (int n : {-1, 0, 1, 17, 100}) {
    SCOPED_TRACE(n);
    try {
      Pattern::from_n(n);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(std::to_string(n)), std::string::npos) << e.what();
    }
  }
}

TEST(Pattern, Geometry) {
  const Pattern p68 = Pattern::parse("6:8");
  EXPECT_EQ(num_groups(p68, 0), 0);
  EXPECT_EQ(num_groups(p68, 1), 1);
  EXPECT_EQ(num_groups(p68, 8), 1);
  EXPECT_EQ(num_groups(p68, 9), 2);
  EXPECT_EQ(padded_k(p68, 9), 16);
  EXPECT_EQ(padded_k(p68, 16), 16);
  // 4096 = 512 groups of 8 -> 512 * 12 = 6144, already a multiple of 32.
  EXPECT_EQ(slide_k(p68, 4096), 6144);
  EXPECT_EQ(slide_k(p68, 4096, 1), 6144);
  // 9 -> 2 groups -> 24 slid columns -> 32 with alignment 32, 24 with 8, 24 with 1.
  EXPECT_EQ(slide_k(p68, 9), 32);
  EXPECT_EQ(slide_k(p68, 9, 8), 24);
  EXPECT_EQ(slide_k(p68, 9, 1), 24);
  EXPECT_EQ(slide_k(p68, 0), 0);
  const Pattern p810 = Pattern::parse("8:10");
  // Qwen2.5-7B down projection k = 18944: 1895 groups (last partial) * 16 = 30320 -> 30336.
  EXPECT_EQ(slide_k(p810, 18944), 30336);
  EXPECT_EQ(slide_k(Pattern::parse("2:4"), 3584), 3584);
}

TEST(Pattern, SlideToOrigHandValues) {
  const Pattern p = Pattern::parse("6:8");
  // Group 0 windows: w0 -> k 0..3, w1 -> k 2..5, w2 -> k 4..7; group 1 starts at kp 12 / k 8.
  const int64_t expect[] = {0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 10, 11};
  for (int64_t kp = 0; kp < 16; ++kp) EXPECT_EQ(slide_to_orig(p, kp, 16), expect[kp]) << kp;
  // k = 10: group 1 holds columns 8, 9 and padding.
  EXPECT_EQ(slide_to_orig(p, 12, 10), 8);
  EXPECT_EQ(slide_to_orig(p, 13, 10), 9);
  EXPECT_EQ(slide_to_orig(p, 14, 10), -1);
  EXPECT_EQ(slide_to_orig(p, 23, 10), -1);
  EXPECT_EQ(slide_to_orig(p, 24, 10), -1);  // past the last group
  EXPECT_EQ(slide_to_orig(p, -1, 10), -1);
}

TEST(Pattern, ColumnMapMatchesReference) {
  for (int n = kMinN; n <= kMaxN; ++n) {
    const Pattern p = Pattern::from_n(n);
    for (int64_t k : {int64_t(1), int64_t(2), int64_t(2 * n - 1), int64_t(2 * n), int64_t(2 * n + 1),
                      int64_t(7 * n + 3), int64_t(130)}) {
      for (int64_t align : {int64_t(1), int64_t(4), int64_t(32)}) {
        SCOPED_TRACE(testing::Message() << "N=" << n << " k=" << k << " align=" << align);
        const int64_t ks = slide_k(p, k, align);
        EXPECT_EQ(ks % align, 0);
        EXPECT_GE(ks, num_groups(p, k) * 4 * (n - 1));
        EXPECT_LT(ks, num_groups(p, k) * 4 * (n - 1) + align);
        const std::vector<int64_t> ref = reference::slid_columns(n, k, ks);
        EXPECT_EQ(lift_map(p, k, ks), ref);
        for (int64_t kp = 0; kp < ks + 3; ++kp)
          ASSERT_EQ(slide_to_orig(p, kp, k), kp < ks ? ref[size_t(kp)] : -1) << kp;
        // Every original column appears once or twice.
        std::vector<int> seen(size_t(k), 0);
        for (int64_t c : ref)
          if (c >= 0) ++seen[size_t(c)];
        for (int64_t c = 0; c < k; ++c) {
          EXPECT_GE(seen[size_t(c)], 1) << c;
          EXPECT_LE(seen[size_t(c)], 2) << c;
        }
      }
    }
  }
}

TEST(Pattern, LiftMapRejectsShortKSlide) {
  const Pattern p = Pattern::parse("6:8");
  try {
    lift_map(p, 16, 23);
    ADD_FAILURE() << "accepted k_slide 23 for k 16";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("23"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("24"), std::string::npos) << e.what();
  }
  EXPECT_EQ(lift_map(p, 16, 24).size(), 24u);
}

}  // namespace
}  // namespace slidesparse
