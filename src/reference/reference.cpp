#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <tuple>

namespace reference {

std::vector<int64_t> gemm_xwt(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                              int64_t m, int64_t n, int64_t k) {
  if (int64_t(x.size()) != m * k || int64_t(w.size()) != n * k)
    throw std::invalid_argument("reference::gemm_xwt: operand sizes do not match m, n, k");
  std::vector<int64_t> y(size_t(m * n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += x[size_t(i * k + c)] * w[size_t(j * k + c)];
      y[size_t(i * n + j)] = acc;
    }
  return y;
}

bool is_zero(ElemKind e, const uint8_t* element) {
  for (size_t b = 0; b < e.bytes; ++b) {
    uint8_t byte = element[b];
    if (e.is_float && b + 1 == e.bytes) byte = uint8_t(byte & 0x7f);
    if (byte != 0) return false;
  }
  return true;
}

std::vector<int64_t> slid_columns(int n_pat, int64_t k, int64_t k_slide) {
  std::vector<int64_t> orig(size_t(std::max<int64_t>(k_slide, 0)), -1);
  const int64_t group = 2 * n_pat, slid_group = 4 * (n_pat - 1);
  const int64_t groups = (k + group - 1) / group;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t w = 0; w < n_pat - 1; ++w)
      for (int64_t l = 0; l < 4; ++l) {
        const int64_t kp = g * slid_group + 4 * w + l;
        const int64_t kk = g * group + 2 * w + l;
        if (kp < k_slide && kk < k) orig[size_t(kp)] = kk;
      }
  return orig;
}

SlideResult slide(int n_pat, ElemKind e, const std::vector<uint8_t>& w, int64_t rows, int64_t k,
                  int64_t k_slide) {
  const int64_t group = 2 * n_pat, slid_group = 4 * (n_pat - 1), windows = n_pat - 1;
  const int64_t groups = (k + group - 1) / group;
  if (int64_t(w.size()) != rows * k * int64_t(e.bytes) || k_slide < groups * slid_group)
    throw std::invalid_argument("reference::slide: bad sizes");
  SlideResult res;
  res.w_slide.assign(size_t(rows * k_slide) * e.bytes, 0);
  auto in = [&](int64_t r, int64_t c) { return &w[size_t(r * k + c) * e.bytes]; };
  auto out = [&](int64_t r, int64_t c) { return &res.w_slide[size_t(r * k_slide + c) * e.bytes]; };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      // Offsets past k are padding: zero, never placed.
      std::vector<bool> nonzero(size_t(group), false), placed(size_t(group), false);
      int64_t nnz = 0;
      for (int64_t o = 0; o < group; ++o) {
        const int64_t c = g * group + o;
        nonzero[size_t(o)] = c < k && !is_zero(e, in(r, c));
        nnz += nonzero[size_t(o)];
      }
      bool group_ok = nnz <= group - 2;
      if (group_ok) {
        for (int64_t win = 0; win < windows; ++win) {
          int held = 0;
          for (int64_t l = 0; l < 4; ++l) {
            const int64_t o = 2 * win + l;
            if (nonzero[size_t(o)] && !placed[size_t(o)] && held < 2) {
              std::memcpy(out(r, g * slid_group + 4 * win + l), in(r, g * group + o), e.bytes);
              placed[size_t(o)] = true;
              ++held;
            }
          }
        }
        for (int64_t o = 0; o < group; ++o)
          if (nonzero[size_t(o)] && !placed[size_t(o)]) group_ok = false;
      }
      if (!group_ok && res.ok) {
        res.ok = false;
        res.bad_row = r;
        res.bad_group = g;
        res.bad_nonzeros = nnz;
      }
    }
  }
  return res;
}

std::vector<int64_t> lift(int n_pat, const std::vector<int64_t>& x, int64_t m, int64_t k,
                          int64_t k_slide) {
  const std::vector<int64_t> orig = slid_columns(n_pat, k, k_slide);
  std::vector<int64_t> xl(size_t(m * k_slide), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t kp = 0; kp < k_slide; ++kp)
      if (orig[size_t(kp)] >= 0) xl[size_t(i * k_slide + kp)] = x[size_t(i * k + orig[size_t(kp)])];
  return xl;
}

int64_t count_bad_2to4_windows(ElemKind e, const std::vector<uint8_t>& w, int64_t rows,
                               int64_t cols) {
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t start = 0; start < cols; start += 4) {
      int nnz = 0;
      for (int64_t c = start; c < start + 4 && c < cols; ++c)
        nnz += !is_zero(e, &w[size_t(r * cols + c) * e.bytes]);
      bad += nnz > 2;
    }
  return bad;
}

int64_t count_bad_groups(int n_pat, const std::vector<double>& w, int64_t rows, int64_t k) {
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t start = 0; start < k; start += 2 * n_pat) {
      int nnz = 0;
      for (int64_t c = start; c < start + 2 * n_pat && c < k; ++c) nnz += w[size_t(r * k + c)] != 0.0;
      bad += nnz > 2 * n_pat - 2;
    }
  return bad;
}

std::vector<uint8_t> prune_keep_mask(int n_pat, const std::vector<double>& w, int64_t rows,
                                     int64_t k, const std::vector<double>& norms) {
  const int64_t group = 2 * n_pat, allowed = group - 2;
  std::vector<uint8_t> keep(size_t(rows * k), 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t start = 0; start < k; start += group) {
      std::vector<std::pair<double, int64_t>> cand;  // (score, column)
      for (int64_t c = start; c < std::min(start + group, k); ++c) {
        const double v = w[size_t(r * k + c)];
        if (v != 0.0) cand.emplace_back(std::fabs(v) * (norms.empty() ? 1.0 : norms[size_t(c)]), c);
      }
      if (int64_t(cand.size()) <= allowed) continue;
      std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second > b.second;
      });
      for (size_t i = 0; i < cand.size() - size_t(allowed); ++i)
        keep[size_t(r * k + cand[i].second)] = 0;
    }
  return keep;
}

std::vector<uint8_t> topk_group_mask(int keep, int group, const std::vector<double>& w, int64_t rows,
                                     int64_t k) {
  std::vector<uint8_t> mask(size_t(rows * k), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t start = 0; start < k; start += group) {
      std::vector<int64_t> cols;
      for (int64_t c = start; c < std::min(start + group, k); ++c) cols.push_back(c);
      std::stable_sort(cols.begin(), cols.end(), [&](int64_t a, int64_t b) {
        return std::fabs(w[size_t(r * k + a)]) > std::fabs(w[size_t(r * k + b)]);
      });
      for (size_t i = 0; i < cols.size() && i < size_t(keep); ++i) mask[size_t(r * k + cols[i])] = 1;
    }
  return mask;
}

// ---- small float formats ---------------------------------------------------------------------

double e4m3_decode(uint8_t code) {
  const int exp = (code >> 3) & 0xf, mant = code & 0x7;
  if (exp == 0xf && mant == 0x7) return std::numeric_limits<double>::quiet_NaN();
  const double mag = exp == 0 ? std::ldexp(mant / 8.0, -6) : std::ldexp(1.0 + mant / 8.0, exp - 7);
  return (code & 0x80) ? -mag : mag;
}

double f16_decode(uint16_t code) {
  const int exp = (code >> 10) & 0x1f, mant = code & 0x3ff;
  double mag;
  if (exp == 0x1f)
    mag = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    mag = exp == 0 ? std::ldexp(mant / 1024.0, -14) : std::ldexp(1.0 + mant / 1024.0, exp - 15);
  return (code & 0x8000) ? -mag : mag;
}

double bf16_decode(uint16_t code) {
  const int exp = (code >> 7) & 0xff, mant = code & 0x7f;
  double mag;
  if (exp == 0xff)
    mag = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    mag = exp == 0 ? std::ldexp(mant / 128.0, -126) : std::ldexp(1.0 + mant / 128.0, exp - 127);
  return (code & 0x8000) ? -mag : mag;
}

namespace {

// Decoded values of the positive finite codes 0..max_code (they increase with the code).
template <class Decode>
std::vector<double> positive_table(unsigned max_code, Decode decode) {
  std::vector<double> t(max_code + 1);
  for (unsigned c = 0; c <= max_code; ++c) t[c] = decode(c);
  return t;
}

// Nearest positive finite code for |v| (ties to the even code); beyond the largest code either
// saturate or return inf_code once |v| reaches max + ulp/2 (inf_code is even, so it wins the tie).
unsigned nearest_code(const std::vector<double>& table, double a, bool saturate, unsigned inf_code) {
  const unsigned max_code = unsigned(table.size() - 1);
  const auto it = std::upper_bound(table.begin(), table.end(), a);
  const unsigned c = unsigned(it - table.begin()) - 1;  // largest code with value <= a
  if (c == max_code) {
    if (saturate) return max_code;
    const double mid = table[max_code] + (table[max_code] - table[max_code - 1]) / 2;
    return a < mid ? max_code : inf_code;
  }
  const double mid = (table[c] + table[c + 1]) / 2;
  if (a < mid) return c;
  if (a > mid) return c + 1;
  return (c % 2 == 0) ? c : c + 1;
}

}  // namespace

uint8_t e4m3_encode(double v) {
  static const std::vector<double> table =
      positive_table(0x7e, [](unsigned c) { return e4m3_decode(uint8_t(c)); });
  if (std::isnan(v)) return 0x7f;
  const unsigned c = nearest_code(table, std::fabs(v), true, 0);
  return uint8_t((std::signbit(v) ? 0x80 : 0) | c);
}

uint16_t f16_encode(double v) {
  static const std::vector<double> table =
      positive_table(0x7bff, [](unsigned c) { return f16_decode(uint16_t(c)); });
  if (std::isnan(v)) return 0x7e00;
  const unsigned c = nearest_code(table, std::fabs(v), false, 0x7c00);
  return uint16_t((std::signbit(v) ? 0x8000 : 0) | c);
}

uint16_t bf16_encode(double v) {
  static const std::vector<double> table =
      positive_table(0x7f7f, [](unsigned c) { return bf16_decode(uint16_t(c)); });
  if (std::isnan(v)) return 0x7fc0;
  const unsigned c = nearest_code(table, std::fabs(v), false, 0x7f80);
  return uint16_t((std::signbit(v) ? 0x8000 : 0) | c);
}

double round_half_even(double x) {
  const double lo = std::floor(x);
  const double mid = lo + 0.5;  // exact for |x| < 2^52, unlike x - lo for tiny negative x
  if (x < mid) return lo;
  if (x > mid) return lo + 1;
  return std::fmod(lo, 2.0) == 0.0 ? lo : lo + 1;
}

// ---- quantization ----------------------------------------------------------------------------

namespace {

constexpr double kMinAmaxRef = 0x1p-100;

// (scale, inverse) for one row, or (1, 0) for an all-zero row.
std::pair<double, double> scales(const std::vector<double>& v, double qmax) {
  double amax = 0;
  for (double x : v) amax = std::max(amax, std::fabs(x));
  if (amax == 0) return {1.0, 0.0};
  const double a = std::max(amax, kMinAmaxRef);
  return {a / qmax, qmax / a};
}

}  // namespace

QuantRowI8 quantize_row_i8(const std::vector<double>& v) {
  QuantRowI8 out;
  double inv;
  std::tie(out.scale, inv) = scales(v, 127.0);
  for (double x : v) out.q.push_back(int(std::clamp(round_half_even(x * inv), -128.0, 127.0)));
  return out;
}

QuantRowE4M3 quantize_row_e4m3(const std::vector<double>& v) {
  QuantRowE4M3 out;
  double inv;
  std::tie(out.scale, inv) = scales(v, 448.0);
  for (double x : v) {
    const uint8_t c = e4m3_encode(x * inv);
    out.q.push_back(c == 0x80 ? 0 : c);
  }
  return out;
}

// ---- ternary ------------------------------------------------------------------------------------

TernaryTensor ternary(int n_pat, const std::vector<double>& w, int64_t rows, int64_t k) {
  TernaryTensor out;
  out.q.assign(size_t(rows * k), 0);
  double sum = 0.0;
  for (int64_t i = 0; i < rows * k; ++i) sum += std::fabs(w[size_t(i)]);
  if (sum == 0.0) return out;
  out.scale = std::max(float(sum / double(rows * k)), float(kMinAmaxRef));
  std::vector<double> masked(size_t(rows * k), 0.0);
  for (int64_t i = 0; i < rows * k; ++i) {
    const float t = float(w[size_t(i)] / double(out.scale));
    out.q[size_t(i)] = int(std::clamp(round_half_even(double(t)), -1.0, 1.0));
    if (out.q[size_t(i)] != 0) masked[size_t(i)] = w[size_t(i)];
  }
  const std::vector<uint8_t> keep = prune_keep_mask(n_pat, masked, rows, k);
  for (size_t i = 0; i < keep.size(); ++i)
    if (!keep[i]) out.q[i] = 0;
  return out;
}

}  // namespace reference
