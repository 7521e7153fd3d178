// The exactness oracle (issue acceptance test 1): random small-integer weights pruned by the core,
// slid by the core, activations lifted by the core; then in int64
//   X . W^T  ==  X' . W'^T          (reference GEMM on both sides)
// plus: every 2:4 window of W' holds <= 2 nonzeros (reference checker), unslide(W') == W bit for
// bit, core slide == reference slide bit for bit, core lift == reference lift.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core_test_util.hpp"
#include "reference/reference.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide.hpp"

namespace slidesparse {
namespace {

struct Case {
  int n_pat;
  DType dtype;
};

class SlideExact : public testing::TestWithParam<Case> {};

constexpr int64_t kMinGroups = 10000;

TEST_P(SlideExact, RandomGroups) {
  const Case c = GetParam();
  const Pattern p = Pattern::from_n(c.n_pat);
  const int G = p.group();
  const reference::ElemKind ek = test::elem_kind(c.dtype);
  int64_t groups_done = 0, dense_groups = 0, nonzeros = 0, partial_groups = 0, small_k = 0;
  for (uint32_t trial = 0; groups_done < kMinGroups; ++trial) {
    const uint32_t seed = 1000003u * uint32_t(c.n_pat) + 7919u * uint32_t(c.dtype) + trial;
    SCOPED_TRACE(testing::Message() << "N=" << c.n_pat << " dtype=" << dtype_token(c.dtype)
                                    << " seed=" << seed);
    std::mt19937 rng(seed);
    auto uni = [&](int64_t lo, int64_t hi) {
      return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    const int64_t n = uni(1, 6), m = uni(1, 4);
    // A quarter of the cases have k < 2N (a single partial group); the rest span a few groups.
    const int64_t k = trial % 4 == 0 ? uni(1, G - 1) : uni(1, 6 * G);
    const double density = std::vector<double>{0.2, 0.5, 0.8, 1.0}[size_t(uni(0, 3))];
    const int64_t align = std::vector<int64_t>{1, 4, 8, 32}[size_t(uni(0, 3))];
    const int64_t ks = slide_k(p, k, align);

    std::vector<double> w(size_t(n * k));
    std::bernoulli_distribution nz(density);
    for (double& v : w) v = nz(rng) ? double(uni(1, 8) * (uni(0, 1) ? 1 : -1)) : 0.0;
    std::vector<double> norms(static_cast<size_t>(k));
    for (double& v : norms) v = double(uni(0, 4));
    const bool wanda = uni(0, 2) == 0;
    const PruneMethod method = wanda ? PruneMethod::kWanda : PruneMethod::kMagnitude;
    const std::vector<float> norms_f(norms.begin(), norms.end());

    // Prune with the core: in place for float dtypes, through the row mask for i8.
    std::vector<uint8_t> wb = test::encode(c.dtype, w);
    if (c.dtype == DType::kI8) {
      std::vector<uint8_t> keep(static_cast<size_t>(k));
      for (int64_t r = 0; r < n; ++r) {
        const std::vector<float> row(w.begin() + r * k, w.begin() + (r + 1) * k);
        prune_row_mask(p, method, row.data(), k, wanda ? norms_f.data() : nullptr, keep.data(),
                       "exact", r);
        for (int64_t j = 0; j < k; ++j)
          if (!keep[size_t(j)]) wb[size_t(r * k + j)] = 0;
      }
    } else {
      prune_inplace(p, method, c.dtype, wb.data(), n, k, wanda ? norms_f.data() : nullptr, "exact",
                    int(uni(1, 3)));
    }
    const std::vector<double> wp = test::decode(c.dtype, wb);
    // The pruner agrees with the reference pruner and leaves every group compliant.
    const std::vector<uint8_t> ref_keep =
        reference::prune_keep_mask(c.n_pat, w, n, k, wanda ? norms : std::vector<double>{});
    for (size_t i = 0; i < w.size(); ++i)
      ASSERT_EQ(wp[i], ref_keep[i] ? w[i] : 0.0) << "element " << i;
    ASSERT_EQ(reference::count_bad_groups(c.n_pat, wp, n, k), 0);

    // Slide (core and reference), check windows, unslide.
    std::vector<uint8_t> ws(size_t(n * ks) * ek.bytes, 0xAB);  // poison: every byte must be written
    slide_weight(p, c.dtype, wb.data(), n, k, ws.data(), ks, "exact", int(uni(1, 3)));
    const reference::SlideResult ref = reference::slide(c.n_pat, ek, wb, n, k, ks);
    ASSERT_TRUE(ref.ok) << "reference failed at row " << ref.bad_row << " group " << ref.bad_group;
    ASSERT_EQ(ws, ref.w_slide);
    ASSERT_EQ(reference::count_bad_2to4_windows(ek, ws, n, ks), 0);
    ASSERT_TRUE(check_2to4(c.dtype, ws.data(), n, ks).ok());
    std::vector<uint8_t> back(wb.size(), 0xCD);
    unslide_weight(p, c.dtype, ws.data(), n, ks, back.data(), k, "exact");
    ASSERT_EQ(back, wb);

    // Lift random integer activations (as i64 bytes) and compare both GEMMs exactly.
    std::vector<int64_t> x(size_t(m * k));
    for (int64_t& v : x) v = uni(-8, 8);
    std::vector<int64_t> xl(size_t(m * ks), 0x5555);
    lift_activations(p, DType::kI64, x.data(), m, k, xl.data(), ks);
    ASSERT_EQ(xl, reference::lift(c.n_pat, x, m, k, ks));
    const std::vector<int64_t> y = reference::gemm_xwt(x, test::to_i64(wp), m, n, k);
    const std::vector<int64_t> ys =
        reference::gemm_xwt(xl, test::to_i64(test::decode(c.dtype, ws)), m, n, ks);
    ASSERT_EQ(y, ys);

    const int64_t groups = num_groups(p, k);
    groups_done += n * groups;
    partial_groups += k % G ? n : 0;
    small_k += k < G;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        int cnt = 0;
        for (int64_t j = g * G; j < std::min(k, (g + 1) * G); ++j) cnt += wp[size_t(r * k + j)] != 0;
        dense_groups += cnt == p.keep();
        nonzeros += cnt;
      }
  }
  // The oracle is only meaningful if the data exercised full, partial and maximally dense groups.
  EXPECT_GE(groups_done, kMinGroups);
  EXPECT_GT(dense_groups, kMinGroups / 10);
  EXPECT_GT(partial_groups, 100);
  EXPECT_GT(small_k, 100);
  EXPECT_GT(nonzeros, kMinGroups);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (int n : {2, 3, 4, 5, 6, 7, 8, 16})
    for (DType t : {DType::kF32, DType::kBF16, DType::kI8}) cases.push_back({n, t});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPatterns, SlideExact, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& param_info) {
                           return "N" + std::to_string(param_info.param.n_pat) + "_" +
                                  dtype_token(param_info.param.dtype);
                         });

}  // namespace
}  // namespace slidesparse
