// The small-m policy's rule (include/slidesparse/crossover.hpp): probes -> one crossover, on
// hand-written probe tables. The GPU side (the probes themselves, every m exact on the path the
// crossover picks) is tests/gpu/gpu_slide_linear.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <vector>

#include "slidesparse/crossover.hpp"

namespace slidesparse {
namespace {

// Probes at the default m's with the given dense/sparse ratios (times are not read by the rule:
// set them to something the ratio would contradict, so a rule reading them instead fails).
std::vector<CrossoverProbe> probes_of(const std::vector<double>& ratios,
                                      const std::vector<int64_t>& ms = {16, 64, 256, 1024, 4096, 16384}) {
  std::vector<CrossoverProbe> p;
  for (size_t i = 0; i < ratios.size(); ++i) {
    CrossoverProbe c;
    c.m = ms.at(i);
    c.dense_over_sparse = ratios[i];
    c.sparse_us = ratios[i] >= 1 ? 200.0 : 100.0;  // the opposite of what the ratio says
    c.dense_us = ratios[i] >= 1 ? 100.0 : 200.0;
    p.push_back(c);
  }
  return p;
}

TEST(Crossover, DefaultProbesSpanDecodeToPrefill) {
  ASSERT_EQ(std::size(kCrossoverProbeMs), 6u);
  EXPECT_EQ(kCrossoverProbeMs[0], 16);
  EXPECT_EQ(kCrossoverProbeMs[5], 16384);
  for (size_t i = 1; i < std::size(kCrossoverProbeMs); ++i) EXPECT_GT(kCrossoverProbeMs[i], kCrossoverProbeMs[i - 1]);
  EXPECT_EQ(kCrossoverMargin, 0.03);
}

TEST(Crossover, NoProbesMeansAlwaysDense) { EXPECT_EQ(crossover_from_probes({}), kCrossoverNever); }

TEST(Crossover, SparseFasterEverywhereMeansNeverDense) {
  EXPECT_EQ(crossover_from_probes(probes_of({1.5, 1.5, 1.25, 1.25, 1.125, 1.125})), 0);
}

TEST(Crossover, SparseSlowerEverywhereMeansAlwaysDense) {
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.5, 0.75, 0.875, 0.875, 0.875})), kCrossoverNever);
}

TEST(Crossover, SmallestProbeFromWhichSparseAlwaysWins) {
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.75, 0.875, 1.125, 1.25, 1.25})), 1024);
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.75, 0.875, 0.875, 1.25, 1.25})), 4096);
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.75, 0.875, 0.875, 0.875, 1.25})), 16384);
}

// A win at a small probe followed by a loss does not count: sparse from there on would be slower
// at the probe that lost.
TEST(Crossover, AWinBeforeALossIsIgnored) {
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 1.25, 0.875, 1.125, 1.125, 1.125})), 1024);
  EXPECT_EQ(crossover_from_probes(probes_of({1.25, 1.25, 1.25, 1.25, 0.875, 1.25})), 16384);
}

// Wins at mid m but a loss at the largest probe (the library's large-m dense kernels): dense
// everywhere, since a single crossover cannot express "sparse only in the middle".
TEST(Crossover, ALossAtTheLargestProbeMeansAlwaysDense) {
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.75, 1.25, 1.25, 1.25, 0.96875})), kCrossoverNever);
}

// Ties go to the dense path: the sparse path must be faster by the margin.
TEST(Crossover, TiesWithinTheMarginGoDense) {
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.5, 1.0, 1.0, 1.0, 1.0})), kCrossoverNever);
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.5, 1.25, 1.25, 1.0, 1.25})), 16384);
  // 1.02 is a 2% win: below the default 3% margin, above a 1% one.
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.5, 1.25, 1.25, 1.25, 1.02})), kCrossoverNever);
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 0.5, 1.25, 1.25, 1.25, 1.02}), 0.01), 256);
  // Power-of-two margins keep the boundary exact: ratio == 1 + margin wins, one ulp below loses.
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 1.0625, 1.0625, 1.0625, 1.0625, 1.0625}), 0.0625), 64);
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 1.0625, 1.0625, 1.0625, 1.0625, std::nextafter(1.0625, 0.0)}),
                                  0.0625),
            kCrossoverNever);
  // Margin 0: an exact tie is a win.
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 1.0, 1.0, 1.0, 1.0, 1.0}), 0.0), 64);
}

// The rule reads the probes' own m, not the default table.
TEST(Crossover, UsesTheProbesOwnRowCounts) {
  EXPECT_EQ(crossover_from_probes(probes_of({0.5, 1.5, 1.5}, {8, 100, 5000})), 100);
  EXPECT_EQ(crossover_from_probes(probes_of({1.5}, {300})), 0);
  EXPECT_EQ(crossover_from_probes(probes_of({0.5}, {300})), kCrossoverNever);
}

}  // namespace
}  // namespace slidesparse
