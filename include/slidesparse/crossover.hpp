// slidesparse: the small-m policy's rule. SlideLinear (dense_below_m = -1) times its full layer on
// both paths at a few probe row counts and turns those probes into one crossover: forward takes
// the dense path for m below it, the sparse path from it on. Plain C++ (no CUDA), header-only, so
// the rule is tested on the CPU tier (tests/core/test_crossover.cpp).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace slidesparse {

// One crossover probe at m rows: the full-layer median times of both paths, and the median over
// call pairs (sparse and dense timed back to back, the L2 scrubbed before each call) of
// dense_us / sparse_us: > 1 means the sparse path is faster. The pairwise median is what the rule
// reads: two calls next to each other see the same clocks, so slow drifts cancel in it.
struct CrossoverProbe {
  int64_t m = 0;
  double sparse_us = 0, dense_us = 0;
  double dense_over_sparse = 0;
  int pairs = 0;  // call pairs timed
};

// Probe row counts: decode-sized to prefill-sized m. The largest one matters as much as the
// smallest: some layers whose sparse path wins at a few thousand rows lose again at 8-16K (the
// library's large-m dense kernels), and "never slower than dense" has to hold there too.
inline constexpr int64_t kCrossoverProbeMs[] = {16, 64, 256, 1024, 4096, 16384};

// The sparse path must beat dense by this fraction at a probe to count as faster there: a tie
// within the probes' noise goes to the dense path (the safe side of "never slower than dense").
// 3%: on a power-capped H200 a probe and a long interleaved benchmark of the same layer at 16384
// rows were measured to disagree by up to 7% (bench/results/layer_policy_scrub_h200.jsonl, e4m3
// down: probe 1.011, benchmark 0.937), and by about 2% elsewhere; a 6:8 layer on the library
// kernels gains at most ~5-8% at large m, so little is lost by asking for 3%.
inline constexpr double kCrossoverMargin = 0.03;

inline constexpr int64_t kCrossoverNever = std::numeric_limits<int64_t>::max();  // always dense

// The crossover from probes in increasing m: the m of the smallest probe from which the sparse
// path is faster (dense_over_sparse >= 1 + margin) at that probe and at every larger one; 0 (never
// dense) when that holds from the first probe on; kCrossoverNever (always dense) when the sparse
// path is not faster at the largest probe, or there are no probes.
inline int64_t crossover_from_probes(const std::vector<CrossoverProbe>& probes,
                                     double margin = kCrossoverMargin) {
  size_t first = probes.size();
  while (first > 0 && probes[first - 1].dense_over_sparse >= 1.0 + margin) --first;
  if (first == probes.size()) return kCrossoverNever;
  return first == 0 ? 0 : probes[first].m;
}

}  // namespace slidesparse
