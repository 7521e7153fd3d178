// slidesparse reference: float64/int64 operations written from the spec (BRIEF section 1 and the
// public headers' wording), sharing no code with src/core. Deliberately plain and slow: every
// function follows the prose definition literally so that the tests compare two independent
// readings of the spec. Only std types; no slidesparse header is included.
//
// GEMM convention: Y[m,n] = X[m,k] . W[n,k]^T, W row-major with k contiguous.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reference {

// ---- exact GEMM -----------------------------------------------------------------------------
std::vector<int64_t> gemm_xwt(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                              int64_t m, int64_t n, int64_t k);

// ---- element bytes --------------------------------------------------------------------------
// An element is `bytes` little-endian bytes. It is zero when every bit is zero, or, for a float
// type, when every bit but the sign (the top bit of the last byte) is zero.
struct ElemKind {
  size_t bytes;
  bool is_float;
};
bool is_zero(ElemKind e, const uint8_t* element);

// ---- (2N-2):2N geometry and sliding ---------------------------------------------------------
// For every slid column kp in [0, k_slide): the original column it copies, or -1. Built forwards
// from k = g*2N + 2w + l  ->  kp = g*4(N-1) + 4w + l.
std::vector<int64_t> slid_columns(int n_pat, int64_t k, int64_t k_slide);

struct SlideResult {
  bool ok = true;                 // false: some group could not be placed
  std::vector<uint8_t> w_slide;   // [rows, k_slide] elements
  int64_t bad_row = -1, bad_group = -1, bad_nonzeros = -1;
};
// Per group, per window w = 0..N-2, per lane l = 0..3: an unplaced nonzero at group offset 2w+l
// goes to window w lane l while the window holds fewer than 2. A group with more than 2N-2
// nonzeros, or any nonzero left unplaced, fails (first failure in row-major order reported).
SlideResult slide(int n_pat, ElemKind e, const std::vector<uint8_t>& w, int64_t rows, int64_t k,
                  int64_t k_slide);

// X'[m,kp] = X[m, k(kp)], zero for padding.
std::vector<int64_t> lift(int n_pat, const std::vector<int64_t>& x, int64_t m, int64_t k,
                          int64_t k_slide);

// Number of aligned runs of 4 columns (a partial last run counts, padded with zeros) holding more
// than 2 nonzeros.
int64_t count_bad_2to4_windows(ElemKind e, const std::vector<uint8_t>& w, int64_t rows,
                               int64_t cols);
// Number of aligned groups of 2N (partial last group padded) holding more than 2N-2 nonzeros.
int64_t count_bad_groups(int n_pat, const std::vector<double>& w, int64_t rows, int64_t k);

// ---- pruning --------------------------------------------------------------------------------
// Keep mask (1 kept) for W[rows,k] in groups of 2N: a group with more than 2N-2 nonzeros loses
// nnz-(2N-2) of them, taken from the front of its nonzeros sorted by (score ascending, column
// descending). score = |w| (norms empty) or |w|*norms[k]. Zeros are always "kept".
std::vector<uint8_t> prune_keep_mask(int n_pat, const std::vector<double>& w, int64_t rows,
                                     int64_t k, const std::vector<double>& norms = {});

// Keep mask of the general keep:group magnitude rule (Sparse-BitNet's N:M mask): in every aligned
// group of `group` columns (a partial last group has len < group), sort the positions by |w|
// descending, then column ascending, and keep the first min(keep, len). Zeros are ordinary
// candidates (|0| = 0, so -0.0 ties with +0.0). w must hold no NaN.
std::vector<uint8_t> topk_group_mask(int keep, int group, const std::vector<double>& w, int64_t rows,
                                     int64_t k);

// ---- small float formats, by table search -----------------------------------------------------
// Decoders evaluate the format's formula with ldexp. Encoders search the table of decoded finite
// codes for the nearest value; a tie goes to the code with an even mantissa (even code).
// E4M3 ("fn": no inf, 0x7F/0xFF NaN) saturates to +-448; f16 and bf16 overflow to inf at and
// beyond max + ulp/2. NaN input returns a NaN code (quiet, positive).
double e4m3_decode(uint8_t code);
uint8_t e4m3_encode(double v);
double f16_decode(uint16_t code);
uint16_t f16_encode(double v);
double bf16_decode(uint16_t code);
uint16_t bf16_encode(double v);

// Round half to even, from floor() and an explicit comparison.
double round_half_even(double x);

// ---- per-row symmetric quantization in double ----------------------------------------------
// amax = max|v|; amax == 0 -> scale 1, q 0. Else a = max(amax, 2^-100), inv = Q/a, scale = a/Q;
// INT8 q = clamp(round_half_even(v*inv), -128, 127) with Q = 127; E4M3 q = e4m3_encode(v*inv)
// with -0 stored as +0 and Q = 448.
struct QuantRowI8 {
  double scale = 1.0;
  std::vector<int> q;
};
struct QuantRowE4M3 {
  double scale = 1.0;
  std::vector<uint8_t> q;
};
QuantRowI8 quantize_row_i8(const std::vector<double>& v);
QuantRowE4M3 quantize_row_e4m3(const std::vector<double>& v);

// ---- per-tensor absmean ternary -----------------------------------------------------------
// s = mean of |w| over all rows*k values: summed in double in row-major order, divided by rows*k
// in double, rounded once to f32, at least 2^-100; a zero sum gives s = 1 and every q = 0.
// t = w / s rounded to f32 (the double quotient of two f32 values rounded to f32 is the f32
// quotient), q = clamp(round_half_even(t), -1, 1). Then prune_keep_mask on the row w * [q != 0]
// (zeros where q == 0) decides which codes survive; dropped codes become 0.
struct TernaryTensor {
  float scale = 1.0f;
  std::vector<int> q;  // [rows, k]
};
TernaryTensor ternary(int n_pat, const std::vector<double>& w, int64_t rows, int64_t k);

}  // namespace reference
