#include "slidesparse/slide.hpp"

#include <cstring>

#include "common/check.hpp"
#include "core/detail.hpp"

namespace slidesparse {
namespace {

using detail::load;

void check_matrix(const void* p, int64_t rows, int64_t cols, const char* what) {
  SLIDESPARSE_CHECK(rows >= 0 && cols >= 0, Status::kInvalidArgument,
                    "{}: shape [{}, {}] has a negative dimension", what, rows, cols);
  SLIDESPARSE_CHECK(p != nullptr || rows == 0 || cols == 0, Status::kInvalidArgument,
                    "{}: null data pointer for a [{}, {}] matrix", what, rows, cols);
}

void check_k_slide(Pattern p, int64_t k, int64_t k_slide, const char* what) {
  const int64_t need = num_groups(p, k) * p.slide_group();
  SLIDESPARSE_CHECK(k_slide >= need, Status::kInvalidArgument,
                    "{}: k_slide = {} is too small for pattern {} and k = {} (need >= {}, "
                    "normally slide_k = {})",
                    what, k_slide, p.str(), k, need, slide_k(p, k));
}

[[noreturn]] void fail_too_dense(Pattern p, std::string_view layer, int64_t row, int64_t g,
                                  int len, int cnt) {
  SLIDESPARSE_FAIL(Status::kInvalidData,
                   "layer '{}': row {}, group {} (columns {}..{}) holds {} nonzeros, more than {} "
                   "allowed by pattern {}; prune the weight first",
                   detail::layer_label(layer), row, g, g * p.group(), g * p.group() + len - 1, cnt,
                   p.keep(), p.str());
}

// Greedy placement of one group from the offsets of its nonzeros in increasing order: slot[i]
// receives the slid position (within the group's 4(N-1) columns) of nonzero i. The nonzeros placed
// so far are always a prefix of that list (window w only sees offsets >= 2w, and every nonzero left
// of 2w was placed by window w-1), so a cursor replaces the "placed" flags of the textbook
// formulation. Returns false when a nonzero is left over (only possible above 2N-2 nonzeros).
bool greedy_slots(int windows, const int* off, int cnt, int* slot) {
  int i = 0;
  for (int win = 0; win < windows && i < cnt; ++win) {
    const int lo = 2 * win;
    for (int taken = 0; taken < 2 && i < cnt && off[i] < lo + 4; ++taken, ++i)
      slot[i] = 4 * win + off[i] - lo;
  }
  return i == cnt;
}

// For groups of up to 12 elements (N <= 6, which covers the patterns that pay off) the placement
// depends only on the group's nonzero bit mask, so it is precomputed once: the scatter then runs
// without the data-dependent branches of the greedy loop, which mispredict on pruned weights.
constexpr int kTableMaxN = 6;

struct SlotTable {
  int group = 0, slide_group = 0;
  std::vector<uint8_t> valid;  // [mask]: at most 2N-2 nonzeros
  std::vector<uint8_t> dst;    // [mask][offset]: slot, or slide_group (a scratch slot) for zeros
};

SlotTable build_slot_table(Pattern p) {
  SlotTable t;
  t.group = p.group();
  t.slide_group = p.slide_group();
  const uint32_t masks = 1u << t.group;
  t.valid.assign(masks, 0);
  t.dst.assign(size_t(masks) * size_t(t.group), uint8_t(t.slide_group));
  int off[2 * kMaxN], slot[2 * kMaxN];
  for (uint32_t m = 0; m < masks; ++m) {
    int cnt = 0;
    for (int o = 0; o < t.group; ++o)
      if (m >> o & 1u) off[cnt++] = o;
    if (cnt > p.keep() || !greedy_slots(p.windows(), off, cnt, slot)) continue;
    t.valid[m] = 1;
    for (int i = 0; i < cnt; ++i) t.dst[size_t(m) * size_t(t.group) + size_t(off[i])] = uint8_t(slot[i]);
  }
  return t;
}

const SlotTable* slot_table(Pattern p) {
  if (p.n() > kTableMaxN) return nullptr;
  static const std::vector<SlotTable> tables = [] {
    std::vector<SlotTable> all;
    for (int n = kMinN; n <= kTableMaxN; ++n) all.push_back(build_slot_table(Pattern::from_n(n)));
    return all;
  }();
  return &tables[size_t(p.n() - kMinN)];
}

// Any group, including a partial last one of len < 2N; dst (4(N-1) elements) must be zero.
template <class U>
void slide_group_greedy(Pattern p, const uint8_t* src, int len, uint8_t* dst, U mask,
                        std::string_view layer, int64_t row, int64_t g) {
  constexpr int64_t B = sizeof(U);
  int off[2 * kMaxN], slot[2 * kMaxN];
  int cnt = 0;
  for (int o = 0; o < len; ++o) {
    off[cnt] = o;
    cnt += (load<U>(src + o * B) & mask) != 0;
  }
  if (cnt > p.keep()) fail_too_dense(p, layer, row, g, len, cnt);
  SLIDESPARSE_ASSERT(greedy_slots(p.windows(), off, cnt, slot),
                     "greedy left a nonzero of {} unplaced (row {}, group {})", cnt, row, g);
  for (int i = 0; i < cnt; ++i) std::memcpy(dst + slot[i] * B, src + off[i] * B, size_t(B));
}

template <class U>
void slide_rows(Pattern p, DType dtype, const uint8_t* w, int64_t k, uint8_t* ws, int64_t k_slide,
                std::string_view layer, int64_t row_begin, int64_t row_end) {
  constexpr int64_t B = sizeof(U);
  const U mask = detail::nonzero_mask<U>(dtype);
  const int group = p.group();
  const int64_t sg = p.slide_group();
  const int64_t groups = num_groups(p, k), full = k / group;
  const SlotTable* table = slot_table(p);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* src_row = w + r * k * B;
    uint8_t* dst_row = ws + r * k_slide * B;
    if (table) {
      const uint8_t* valid = table->valid.data();
      for (int64_t g = 0; g < full; ++g) {
        const uint8_t* src = src_row + g * group * B;
        uint32_t m = 0;
        for (int o = 0; o < group; ++o) m |= uint32_t((load<U>(src + o * B) & mask) != 0) << o;
        if (!valid[m]) fail_too_dense(p, layer, r, g, group, __builtin_popcount(m));
        const uint8_t* slot = &table->dst[size_t(m) * size_t(group)];
        U tmp[4 * (kTableMaxN - 1) + 1] = {};
        for (int o = 0; o < group; ++o) tmp[slot[o]] = load<U>(src + o * B);
        std::memcpy(dst_row + g * sg * B, tmp, size_t(sg * B));
      }
    } else {
      std::memset(dst_row, 0, size_t(full * sg * B));
      for (int64_t g = 0; g < full; ++g)
        slide_group_greedy<U>(p, src_row + g * group * B, group, dst_row + g * sg * B, mask, layer,
                              r, g);
    }
    std::memset(dst_row + full * sg * B, 0, size_t((k_slide - full * sg) * B));
    if (groups > full)
      slide_group_greedy<U>(p, src_row + full * group * B, int(k - full * group),
                            dst_row + full * sg * B, mask, layer, r, full);
  }
}

template <class U>
void unslide_rows(Pattern p, DType dtype, const uint8_t* ws, int64_t n, int64_t k_slide,
                  uint8_t* w, int64_t k, std::string_view layer) {
  constexpr int64_t B = sizeof(U);
  const U mask = detail::nonzero_mask<U>(dtype);
  const int group = p.group(), windows = p.windows();
  const int64_t sg = p.slide_group();
  const int64_t groups = num_groups(p, k);
  std::vector<int64_t> claimed(static_cast<size_t>(k));  // slid column that wrote it, or -1
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* src = ws + r * k_slide * B;
    uint8_t* dst = w + r * k * B;
    if (k > 0) std::memset(dst, 0, size_t(k * B));
    std::fill(claimed.begin(), claimed.end(), int64_t(-1));
    auto padding = [&](int64_t kp) {
      SLIDESPARSE_FAIL(Status::kInvalidData,
                       "layer '{}': row {}: slid column {} holds a nonzero but is padding for "
                       "pattern {} and k = {}",
                       detail::layer_label(layer), r, kp, p.str(), k);
    };
    for (int64_t g = 0; g < groups; ++g)
      for (int win = 0; win < windows; ++win)
        for (int l = 0; l < 4; ++l) {
          const int64_t kp = g * sg + 4 * win + l;
          if ((load<U>(src + kp * B) & mask) == 0) continue;
          const int64_t orig = g * group + 2 * win + l;
          if (orig >= k) padding(kp);
          SLIDESPARSE_CHECK(claimed[size_t(orig)] < 0, Status::kInvalidData,
                            "layer '{}': row {}: slid columns {} and {} both hold a nonzero for "
                            "original column {}",
                            detail::layer_label(layer), r, claimed[size_t(orig)], kp, orig);
          claimed[size_t(orig)] = kp;
          std::memcpy(dst + orig * B, src + kp * B, size_t(B));
        }
    for (int64_t kp = groups * sg; kp < k_slide; ++kp)
      if ((load<U>(src + kp * B) & mask) != 0) padding(kp);
  }
}

// Full groups copy whole windows (4 contiguous source elements each); only the last, partial
// group goes column by column.
template <class U>
void lift_rows(Pattern p, const uint8_t* x, int64_t m, int64_t k, uint8_t* xl, int64_t k_slide) {
  constexpr int64_t B = sizeof(U);
  const int group = p.group(), windows = p.windows();
  const int64_t sg = p.slide_group();
  const int64_t groups = num_groups(p, k), full = k / group;
  for (int64_t r = 0; r < m; ++r) {
    const uint8_t* src = x + r * k * B;
    uint8_t* dst = xl + r * k_slide * B;
    for (int64_t g = 0; g < full; ++g)
      for (int win = 0; win < windows; ++win)
        std::memcpy(dst + (g * sg + 4 * win) * B, src + (g * group + 2 * win) * B, size_t(4 * B));
    if (groups > full) {
      for (int64_t kp = full * sg; kp < groups * sg; ++kp) {
        const int64_t orig = slide_to_orig(p, kp, k);
        if (orig >= 0)
          std::memcpy(dst + kp * B, src + orig * B, size_t(B));
        else
          std::memset(dst + kp * B, 0, size_t(B));
      }
    }
    std::memset(dst + groups * sg * B, 0, size_t((k_slide - groups * sg) * B));
  }
}

template <class U>
void check_2to4_rows(DType dtype, const uint8_t* ws, int64_t n, int64_t k_slide,
                     TwoFourReport& rep) {
  constexpr int64_t B = sizeof(U);
  const U mask = detail::nonzero_mask<U>(dtype);
  const int64_t runs = (k_slide + 3) / 4;
  rep.windows = n * runs;
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = ws + r * k_slide * B;
    for (int64_t j = 0; j < runs; ++j) {
      const int64_t end = std::min(k_slide, 4 * j + 4);
      int cnt = 0;
      for (int64_t c = 4 * j; c < end; ++c) cnt += (load<U>(row + c * B) & mask) != 0;
      if (cnt > 2) {
        if (rep.violating_windows == 0) {
          rep.first_bad_row = r;
          rep.first_bad_window = j;
        }
        ++rep.violating_windows;
      }
    }
  }
}

}  // namespace

void slide_weight(Pattern p, DType dtype, const void* w, int64_t n, int64_t k, void* w_slide,
                  int64_t k_slide, std::string_view layer, int num_threads) {
  check_matrix(w, n, k, "slide_weight input");
  check_k_slide(p, k, k_slide, "slide_weight");
  check_matrix(w_slide, n, k_slide, "slide_weight output");
  if (n == 0 || k_slide == 0) return;
  const auto* src = static_cast<const uint8_t*>(w);
  auto* dst = static_cast<uint8_t*>(w_slide);
  detail::dispatch_size(dtype, [&](auto tag) {
    using U = decltype(tag);
    detail::parallel_rows(n, num_threads, k_slide, [&](int64_t r0, int64_t r1) {
      slide_rows<U>(p, dtype, src, k, dst, k_slide, layer, r0, r1);
    });
  });
}

void unslide_weight(Pattern p, DType dtype, const void* w_slide, int64_t n, int64_t k_slide,
                    void* w, int64_t k, std::string_view layer) {
  check_matrix(w_slide, n, k_slide, "unslide_weight input");
  check_matrix(w, n, k, "unslide_weight output");
  check_k_slide(p, k, k_slide, "unslide_weight");
  if (n == 0 || k_slide == 0) return;
  detail::dispatch_size(dtype, [&](auto tag) {
    unslide_rows<decltype(tag)>(p, dtype, static_cast<const uint8_t*>(w_slide), n, k_slide,
                                static_cast<uint8_t*>(w), k, layer);
  });
}

std::vector<int64_t> lift_map(Pattern p, int64_t k, int64_t k_slide) {
  SLIDESPARSE_CHECK(k >= 0, Status::kInvalidArgument, "lift_map: negative k = {}", k);
  check_k_slide(p, k, k_slide, "lift_map");
  std::vector<int64_t> map(static_cast<size_t>(k_slide));
  for (int64_t kp = 0; kp < k_slide; ++kp) map[size_t(kp)] = slide_to_orig(p, kp, k);
  return map;
}

void lift_activations(Pattern p, DType dtype, const void* x, int64_t m, int64_t k, void* x_lift,
                      int64_t k_slide) {
  check_matrix(x, m, k, "lift_activations input");
  check_k_slide(p, k, k_slide, "lift_activations");
  check_matrix(x_lift, m, k_slide, "lift_activations output");
  if (m == 0 || k_slide == 0) return;
  detail::dispatch_size(dtype, [&](auto tag) {
    lift_rows<decltype(tag)>(p, static_cast<const uint8_t*>(x), m, k,
                             static_cast<uint8_t*>(x_lift), k_slide);
  });
}

TwoFourReport check_2to4(DType dtype, const void* w_slide, int64_t n, int64_t k_slide) {
  check_matrix(w_slide, n, k_slide, "check_2to4");
  TwoFourReport rep;
  if (n == 0 || k_slide == 0) return rep;
  detail::dispatch_size(dtype, [&](auto tag) {
    check_2to4_rows<decltype(tag)>(dtype, static_cast<const uint8_t*>(w_slide), n, k_slide, rep);
  });
  return rep;
}

}  // namespace slidesparse
