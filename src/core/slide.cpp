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

// Greedy placement, one group at a time. The nonzeros placed so far are always a prefix of the
// group's nonzeros in offset order (window w only sees offsets >= 2w, and every nonzero left of 2w
// was placed by window w-1), so a cursor over the sorted nonzero offsets replaces the
// "placed" flags of the textbook formulation.
template <class U>
void slide_rows(Pattern p, DType dtype, const uint8_t* w, int64_t k, uint8_t* ws, int64_t k_slide,
                std::string_view layer, int64_t row_begin, int64_t row_end) {
  constexpr int64_t B = sizeof(U);
  const U mask = detail::nonzero_mask<U>(dtype);
  const int group = p.group(), keep = p.keep(), windows = p.windows();
  const int64_t sg = p.slide_group();
  const int64_t groups = num_groups(p, k);
  int off[2 * kMaxN];
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* src_row = w + r * k * B;
    uint8_t* dst_row = ws + r * k_slide * B;
    std::memset(dst_row, 0, size_t(k_slide * B));
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* src = src_row + g * group * B;
      const int len = int(std::min<int64_t>(group, k - g * group));
      int cnt = 0;
      for (int o = 0; o < len; ++o) {
        off[cnt] = o;
        cnt += (load<U>(src + o * B) & mask) != 0;
      }
      SLIDESPARSE_CHECK(cnt <= keep, Status::kInvalidData,
                        "layer '{}': row {}, group {} (columns {}..{}) holds {} nonzeros, more than "
                        "{} allowed by pattern {}; prune the weight first",
                        detail::layer_label(layer), r, g, g * group, g * group + len - 1, cnt, keep,
                        p.str());
      uint8_t* dst = dst_row + g * sg * B;
      int i = 0;
      for (int win = 0; win < windows && i < cnt; ++win) {
        const int lo = 2 * win;
        SLIDESPARSE_ASSERT(off[i] >= lo, "greedy cursor at offset {} behind window {} (row {}, group {})",
                           off[i], win, r, g);
        for (int taken = 0; taken < 2 && i < cnt && off[i] < lo + 4; ++taken, ++i)
          std::memcpy(dst + (4 * win + off[i] - lo) * B, src + off[i] * B, size_t(B));
      }
      SLIDESPARSE_ASSERT(i == cnt, "greedy placed {} of {} nonzeros (row {}, group {})", i, cnt, r, g);
    }
  }
}

template <class U>
void unslide_rows(Pattern p, DType dtype, const uint8_t* ws, int64_t n, int64_t k_slide,
                  uint8_t* w, int64_t k, std::string_view layer) {
  constexpr int64_t B = sizeof(U);
  const U mask = detail::nonzero_mask<U>(dtype);
  const int64_t sg = p.slide_group();
  const int64_t used = num_groups(p, k) * sg;
  std::vector<int64_t> claimed(static_cast<size_t>(k));  // slid column that wrote each original column, or -1
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* src = ws + r * k_slide * B;
    uint8_t* dst = w + r * k * B;
    if (k > 0) std::memset(dst, 0, size_t(k * B));
    std::fill(claimed.begin(), claimed.end(), int64_t(-1));
    for (int64_t kp = 0; kp < k_slide; ++kp) {
      if ((load<U>(src + kp * B) & mask) == 0) continue;
      const int64_t orig = kp < used ? slide_to_orig(p, kp, k) : -1;
      SLIDESPARSE_CHECK(orig >= 0, Status::kInvalidData,
                        "layer '{}': row {}: slid column {} holds a nonzero but is padding for "
                        "pattern {} and k = {}",
                        detail::layer_label(layer), r, kp, p.str(), k);
      SLIDESPARSE_CHECK(claimed[size_t(orig)] < 0, Status::kInvalidData,
                        "layer '{}': row {}: slid columns {} and {} both hold a nonzero for "
                        "original column {}",
                        detail::layer_label(layer), r, claimed[size_t(orig)], kp, orig);
      claimed[size_t(orig)] = kp;
      std::memcpy(dst + orig * B, src + kp * B, size_t(B));
    }
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
