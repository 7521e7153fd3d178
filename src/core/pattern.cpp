#include "slidesparse/pattern.hpp"

#include <charconv>

#include "common/check.hpp"

namespace slidesparse {
namespace {

constexpr const char* kValidPatterns = "2:4, 4:6, 6:8, 8:10 ... 30:32";

// Canonical decimal only ("6:8", not "06:8" or "+6:8"), so that parse(s).str() == s.
bool parse_uint(std::string_view s, int& out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Pattern Pattern::parse(std::string_view text) {
  const size_t colon = text.find(':');
  int keep = 0, group = 0;
  const bool numbers = colon != std::string_view::npos && parse_uint(text.substr(0, colon), keep) &&
                       parse_uint(text.substr(colon + 1), group);
  SLIDESPARSE_CHECK(numbers, Status::kInvalidArgument,
                    "invalid sparsity pattern '{}': expected 'keep:group' of the family "
                    "(2N-2):2N with N in {}..{}, e.g. {}",
                    text, kMinN, kMaxN, kValidPatterns);
  const int n = group / 2;
  const bool in_family = group % 2 == 0 && keep == group - 2 && n >= kMinN && n <= kMaxN;
  SLIDESPARSE_CHECK(in_family, Status::kInvalidArgument,
                    "unsupported sparsity pattern '{}': only (2N-2):2N with N in {}..{} is "
                    "supported, e.g. {}",
                    text, kMinN, kMaxN, kValidPatterns);
  return Pattern(n);
}

Pattern Pattern::from_n(int n) {
  SLIDESPARSE_CHECK(n >= kMinN && n <= kMaxN, Status::kInvalidArgument,
                    "pattern N = {} out of range: N must be in {}..{} (patterns {})", n, kMinN,
                    kMaxN, kValidPatterns);
  return Pattern(n);
}

std::string Pattern::str() const { return fmt::format("{}:{}", keep(), group()); }

int64_t num_groups(Pattern p, int64_t k) noexcept {
  return k <= 0 ? 0 : (k + p.group() - 1) / p.group();
}

int64_t padded_k(Pattern p, int64_t k) noexcept { return num_groups(p, k) * p.group(); }

int64_t slide_k(Pattern p, int64_t k, int64_t align) noexcept {
  const int64_t raw = num_groups(p, k) * p.slide_group();
  if (align <= 1) return raw;
  return (raw + align - 1) / align * align;
}

int64_t slide_to_orig(Pattern p, int64_t kp, int64_t k) noexcept {
  if (kp < 0) return -1;
  const int64_t g = kp / p.slide_group();
  if (g >= num_groups(p, k)) return -1;
  const int64_t r = kp % p.slide_group();
  const int64_t orig = g * p.group() + 2 * (r / 4) + r % 4;
  return orig < k ? orig : -1;
}

}  // namespace slidesparse
