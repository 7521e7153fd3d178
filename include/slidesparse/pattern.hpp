// slidesparse: the (2N-2):2N pattern family and its sliding-window geometry.
//
// Along the reduction dimension k of W[n,k] (row-major, k contiguous), every aligned group of 2N
// consecutive elements holds at most 2N-2 nonzeros. Each group is rewritten as N-1 windows of
// width 4, stride 2 (window w covers group offsets 2w..2w+3); every window is 2:4.
//   k' = g*4(N-1) + 4w + l   <->   k = g*2N + 2w + l,   l in 0..3
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slidesparse {

inline constexpr int kMinN = 2;
inline constexpr int kMaxN = 16;
// cuSPARSELt 8-bit operands need k' to be a multiple of 32 (16-bit: 16); format v1 always uses 32.
inline constexpr int64_t kSlideAlign = 32;

class Pattern {
 public:
  // "keep:group", e.g. "6:8". Accepts exactly the family (2N-2):2N for N in [kMinN, kMaxN];
  // anything else throws Error(kInvalidArgument) listing valid examples.
  static Pattern parse(std::string_view text);
  static Pattern from_n(int n);  // throws kInvalidArgument outside [kMinN, kMaxN]

  int n() const noexcept { return n_; }
  int group() const noexcept { return 2 * n_; }       // 2N
  int keep() const noexcept { return 2 * n_ - 2; }    // 2N-2 nonzeros allowed per group
  int windows() const noexcept { return n_ - 1; }     // N-1 windows of width 4
  int slide_group() const noexcept { return 4 * (n_ - 1); }  // columns per group after sliding
  double expansion() const noexcept { return double(2 * n_ - 2) / n_; }  // gamma = k'/k
  double ideal_speedup() const noexcept { return double(n_) / (n_ - 1); }
  std::string str() const;  // "6:8"

  friend bool operator==(Pattern a, Pattern b) noexcept { return a.n_ == b.n_; }
  friend bool operator!=(Pattern a, Pattern b) noexcept { return a.n_ != b.n_; }

 private:
  explicit Pattern(int n) : n_(n) {}
  int n_;
};

int64_t num_groups(Pattern p, int64_t k) noexcept;   // ceil(k / 2N)
int64_t padded_k(Pattern p, int64_t k) noexcept;     // k rounded up to a multiple of 2N
// k' = align(ceil(k/2N) * 4(N-1), align). Format v1 uses align = kSlideAlign.
int64_t slide_k(Pattern p, int64_t k, int64_t align = kSlideAlign) noexcept;

// Column map: the original column of slid column kp, or -1 when kp is padding (past the last
// group, or mapping to a column >= k). Windows overlap by 2, so each original column appears at one
// or two slid columns; lifting copies the activation to all of them.
int64_t slide_to_orig(Pattern p, int64_t kp, int64_t k) noexcept;

}  // namespace slidesparse
