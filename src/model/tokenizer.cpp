// Byte-level BPE from GGUF tokenizer data (see include/slidesparse/tokenizer.hpp).
//
// The pipeline mirrors the Hugging Face `tokenizers` one it must agree with, step for step:
//   1. added tokens (control / user-defined) split the text, leftmost-longest, matched verbatim;
//   2. pre type "smollm": Digits(individual_digits) isolates every \p{N} character;
//   3. ByteLevel's GPT-2 regex splits each stretch (the lookahead `\s+(?!\S)` done by hand);
//   4. each piece's bytes become their byte tokens and are merged by BPE rank (cached per piece).
// A byte with no token in the vocabulary (SmolLM2 has none for 21 bytes, e.g. 0x04 and 0xF5..0xFF)
// is dropped before merging, as the BPE model of `tokenizers` without an unknown token does.
#include "slidesparse/tokenizer.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/check.hpp"
#include "io/json_util.hpp"
#include "io/mapped_file.hpp"

namespace slidesparse {
namespace {

using nlohmann::json;

constexpr const char* kFileName = "tokenizer_gguf.json";
// llama.cpp token types (llama_token_type): the two that are added tokens, matched verbatim.
constexpr int64_t kTokenControl = 3, kTokenUserDefined = 4;

// Oniguruma's Unicode \s (what `tokenizers` uses) is the Unicode White_Space property; RE2's \s is
// ASCII only, so the class is spelled out. is_space() below must list the same code points.
constexpr const char* kWhiteSpace =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// GPT-2's split regex without its `\s+(?!\S)` alternative (RE2 has no lookahead): a whitespace
// run then matches `\s+` whole and split_stretch() gives its last character back.
std::string gpt2_regex() {
  const std::string ws = kWhiteSpace;
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + ws + "\\p{L}\\p{N}]+|[" + ws + "]+";
}

bool is_space(uint32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Length of the well-formed UTF-8 character at s[i] (Unicode Table 3-7: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 if the bytes there are not one.
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return uint8_t(s[i + k]); };
  const size_t left = s.size() - i;
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  auto cont = [&](size_t k, uint8_t lo = 0x80, uint8_t hi = 0xBF) { return k < left && b(k) >= lo && b(k) <= hi; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// The code point of a well-formed character of `len` bytes at s[i].
uint32_t utf8_decode(std::string_view s, size_t i, size_t len) {
  const auto b = [&](size_t k) { return uint32_t(uint8_t(s[i + k])); };
  switch (len) {
    case 1: return b(0);
    case 2: return (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    case 3: return (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    default: return (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
  }
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | cp >> 6);
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | cp >> 12);
    out += char(0x80 | (cp >> 6 & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | cp >> 18);
    out += char(0x80 | (cp >> 12 & 0x3F));
    out += char(0x80 | (cp >> 6 & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes (in
// increasing order) for U+0100, U+0101, ... so that every byte is one visible character.
std::array<uint32_t, 256> byte_to_code_point() {
  std::array<uint32_t, 256> t{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t[b] = printable ? b : next++;
  }
  return t;
}

std::unique_ptr<RE2> compile(const std::string& pattern) {
  RE2::Options o;
  o.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, o);
  SLIDESPARSE_ASSERT(re->ok(), "tokenizer regex {} does not compile: {}", pattern, re->error());
  return re;
}

struct Merge {
  int32_t rank, merged;
};
uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

const json& require(const json& j, const char* key, const std::string& file) {
  const auto it = j.find(key);
  SLIDESPARSE_CHECK(it != j.end(), Status::kBadFormat, "{}: missing key \"{}\"", file, key);
  return *it;
}

std::vector<std::string> string_array(const json& j, const char* key, const std::string& file) {
  const json& a = require(j, key, file);
  SLIDESPARSE_CHECK(a.is_array(), Status::kBadFormat, "{}: \"{}\" must be an array of strings, got {}", file, key,
                    describe_json(a));
  std::vector<std::string> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SLIDESPARSE_CHECK(a[i].is_string(), Status::kBadFormat, "{}: \"{}\"[{}] must be a string, got {}", file, key, i,
                      describe_json(a[i]));
    out.push_back(a[i].get<std::string>());
  }
  return out;
}

// An optional token id: -1 when absent; must name a token when present.
int32_t optional_id(const json& j, const char* key, size_t vocab, const std::string& file) {
  const auto it = j.find(key);
  if (it == j.end()) return -1;
  SLIDESPARSE_CHECK(it->is_number_unsigned() && it->get<uint64_t>() < vocab, Status::kBadFormat,
                    "{}: \"{}\" must be a token id in [0, {}), got {}", file, key, vocab, describe_json(*it));
  return int32_t(it->get<uint64_t>());
}

}  // namespace

struct BpeTokenizer::Impl {
  std::vector<std::string> tokens;
  std::vector<std::string> token_bytes;  // what decode() writes for each id
  std::string pre;
  bool isolate_digits = false;  // Digits(individual_digits=true) before the GPT-2 regex
  int32_t bos = -1, eos = -1;
  bool add_bos = false;
  std::array<int32_t, 256> byte_token{};  // -1: the vocabulary has no token for this byte
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> rank, merged id
  // Added tokens by first byte, longest first (leftmost-longest matching).
  std::array<std::vector<int32_t>, 256> added_by_first_byte;
  bool has_added = false;
  std::unique_ptr<RE2> gpt2_re, digit_re;

  // Per encode() call: piece bytes (a view into the caller's text) -> ids in `pool`.
  struct Cache {
    std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> pieces;
    std::vector<int32_t> pool;
  };

  void encode_text(std::string_view text, Cache& cache, std::vector<int32_t>& out) const;
  void encode_stretch(std::string_view text, Cache& cache, std::vector<int32_t>& out) const;
  template <typename Emit>
  void split_stretch(std::string_view work, size_t begin, size_t end, Emit&& emit) const;
  void bpe_piece(std::string_view piece, Cache& cache, std::vector<int32_t>& out) const;
  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
};

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

int64_t BpeTokenizer::vocab_size() const noexcept { return int64_t(impl_->tokens.size()); }
int32_t BpeTokenizer::bos_id() const noexcept { return impl_->bos; }
int32_t BpeTokenizer::eos_id() const noexcept { return impl_->eos; }
bool BpeTokenizer::add_bos() const noexcept { return impl_->add_bos; }
const std::string& BpeTokenizer::pre_type() const noexcept { return impl_->pre; }

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string file = fs::is_directory(path, ec) ? (fs::path(path) / kFileName).string() : path;
  json j;
  {
    const Mapping m = map_file_readonly(file, kFileName);
    const char* first = m.data ? reinterpret_cast<const char*>(m.data) : "";
    try {
      j = parse_json_no_duplicates(first, first + m.size, file, kFileName);
    } catch (...) {
      unmap_file(m);
      throw;
    }
    unmap_file(m);
  }
  SLIDESPARSE_CHECK(j.is_object(), Status::kBadFormat, "{}: expected a JSON object, got {}", file, describe_json(j));

  auto impl = std::make_unique<Impl>();
  const json& model = require(j, "model", file);
  SLIDESPARSE_CHECK(model.is_string(), Status::kBadFormat, "{}: \"model\" must be a string, got {}", file,
                    describe_json(model));
  SLIDESPARSE_CHECK(model.get<std::string>() == "gpt2", Status::kUnsupported,
                    "{}: tokenizer model {} is not supported (supported: \"gpt2\", byte-level BPE)", file,
                    quote_for_message(model.get<std::string>()));
  // A file without "pre" gets what transformers' GGUF conversion gives one: GPT-2's regex.
  impl->pre = "default";
  if (const auto it = j.find("pre"); it != j.end()) {
    SLIDESPARSE_CHECK(it->is_string(), Status::kBadFormat, "{}: \"pre\" must be a string, got {}", file,
                      describe_json(*it));
    impl->pre = it->get<std::string>();
  }
  if (impl->pre == "smollm") {
    impl->isolate_digits = true;
  } else {
    SLIDESPARSE_CHECK(impl->pre == "gpt2" || impl->pre == "default", Status::kUnsupported,
                      "{}: pre-tokenizer type {} is not supported (supported: \"smollm\", \"gpt2\", \"default\")",
                      file, quote_for_message(impl->pre));
  }

  impl->tokens = string_array(j, "tokens", file);
  const size_t vocab = impl->tokens.size();
  SLIDESPARSE_CHECK(vocab > 0 && vocab <= size_t(INT32_MAX), Status::kBadFormat,
                    "{}: \"tokens\" must hold 1 to 2^31-1 tokens, got {}", file, vocab);
  std::vector<int64_t> types(vocab, 1);
  if (const auto it = j.find("token_type"); it != j.end()) {
    SLIDESPARSE_CHECK(it->is_array() && it->size() == vocab, Status::kBadFormat,
                      "{}: \"token_type\" must be an array of {} integers (one per token), got {}", file, vocab,
                      describe_json(*it));
    for (size_t i = 0; i < vocab; ++i) {
      SLIDESPARSE_CHECK((*it)[i].is_number_integer(), Status::kBadFormat,
                        "{}: \"token_type\"[{}] must be an integer, got {}", file, i, describe_json((*it)[i]));
      types[i] = (*it)[i].get<int64_t>();
    }
  }
  impl->bos = optional_id(j, "bos_token_id", vocab, file);
  impl->eos = optional_id(j, "eos_token_id", vocab, file);
  if (const auto it = j.find("add_bos_token"); it != j.end()) {
    SLIDESPARSE_CHECK(it->is_boolean(), Status::kBadFormat, "{}: \"add_bos_token\" must be true or false, got {}",
                      file, describe_json(*it));
    impl->add_bos = it->get<bool>();
  }

  // Vocabulary text -> id; a repeated text keeps its last id, as a Python dict built from the
  // token list (transformers) and llama.cpp's token_to_id both do.
  std::unordered_map<std::string_view, int32_t> id_of;
  id_of.reserve(vocab);
  for (size_t i = 0; i < vocab; ++i) id_of[impl->tokens[i]] = int32_t(i);

  const auto cp_of_byte = byte_to_code_point();
  std::unordered_map<uint32_t, uint8_t> byte_of_cp;
  for (uint32_t b = 0; b < 256; ++b) {
    byte_of_cp[cp_of_byte[b]] = uint8_t(b);
    std::string s;
    utf8_append(s, cp_of_byte[b]);
    const auto it = id_of.find(s);
    impl->byte_token[b] = it == id_of.end() ? -1 : it->second;
  }

  // Added tokens: control and user-defined ones whose text is spelled in the byte alphabet (the
  // rule of transformers' GGUF conversion, which skips any other as a llama.cpp mislabel). They
  // decode to their text; every other token to the bytes its characters stand for.
  impl->token_bytes.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    const std::string& t = impl->tokens[i];
    std::string bytes;
    bool in_alphabet = true;
    for (size_t k = 0; k < t.size();) {
      const size_t len = utf8_len(t, k);
      if (len == 0) {  // not UTF-8 (GGUF strings are not checked): the raw byte
        in_alphabet = false;
        bytes += t[k++];
        continue;
      }
      const uint32_t cp = utf8_decode(t, k, len);
      if (const auto it = byte_of_cp.find(cp); it != byte_of_cp.end()) {
        bytes += char(it->second);
      } else {
        in_alphabet = false;
        bytes.append(t, k, len);
      }
      k += len;
    }
    const bool added = (types[i] == kTokenControl || types[i] == kTokenUserDefined) && !t.empty() && in_alphabet;
    if (added) {
      impl->added_by_first_byte[uint8_t(t[0])].push_back(int32_t(i));
      impl->has_added = true;
      impl->token_bytes[i] = t;
    } else {
      impl->token_bytes[i] = std::move(bytes);
    }
  }
  for (auto& v : impl->added_by_first_byte)
    std::stable_sort(v.begin(), v.end(), [&](int32_t a, int32_t b) {
      return impl->tokens[size_t(a)].size() > impl->tokens[size_t(b)].size();
    });

  // Merges "A B" by rank (list order). A pair listed twice keeps its last rank, as the merge map of
  // `tokenizers` (collected into a hash map) does.
  const std::vector<std::string> merges = string_array(j, "merges", file);
  impl->merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const size_t sp = m.find(' ');
    SLIDESPARSE_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < m.size() && m.find(' ', sp + 1) == std::string::npos,
                      Status::kBadFormat, "{}: merge {} {} is not two tokens separated by one space", file, r,
                      quote_for_message(m));
    const std::string_view a(m.data(), sp), b(m.data() + sp + 1, m.size() - sp - 1);
    const std::string ab = std::string(a) + std::string(b);
    const auto ia = id_of.find(a), ib = id_of.find(b), iab = id_of.find(ab);
    SLIDESPARSE_CHECK(ia != id_of.end() && ib != id_of.end() && iab != id_of.end(), Status::kBadFormat,
                      "{}: merge {} {} names a token that is not in the vocabulary ({})", file, r, quote_for_message(m),
                      quote_for_message(ia == id_of.end() ? a : ib == id_of.end() ? b : std::string_view(ab)));
    impl->merges[pair_key(ia->second, ib->second)] = Merge{int32_t(r), iab->second};
  }

  impl->gpt2_re = compile(gpt2_regex());
  impl->digit_re = compile("\\p{N}");
  return BpeTokenizer(std::move(impl));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  if (add_bos && impl_->add_bos && impl_->bos >= 0) out.push_back(impl_->bos);
  Impl::Cache cache;
  impl_->encode_text(text, cache, out);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    SLIDESPARSE_CHECK(ids[i] >= 0 && size_t(ids[i]) < impl_->tokens.size(), Status::kInvalidArgument,
                      "decode: token id {} at position {} is outside [0, {})", ids[i], i, impl_->tokens.size());
    out += impl_->token_bytes[size_t(ids[i])];
  }
  return out;
}

void BpeTokenizer::Impl::encode_text(std::string_view text, Cache& cache, std::vector<int32_t>& out) const {
  if (!has_added) return encode_stretch(text, cache, out);
  size_t start = 0;  // first byte not yet encoded
  for (size_t i = 0; i < text.size(); ++i) {
    for (const int32_t id : added_by_first_byte[uint8_t(text[i])]) {
      const std::string& t = tokens[size_t(id)];
      if (text.compare(i, t.size(), t) != 0) continue;
      encode_stretch(text.substr(start, i - start), cache, out);
      out.push_back(id);
      start = i + t.size();
      i = start - 1;
      break;
    }
  }
  encode_stretch(text.substr(start), cache, out);
}

void BpeTokenizer::Impl::encode_stretch(std::string_view text, Cache& cache, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // The regexes run on well-formed UTF-8 only: an invalid byte is split the way U+FFFD (a symbol;
  // what a lossy UTF-8 decode puts there) would be, and encoded as itself. `orig` maps offsets back.
  std::string clean;
  std::vector<size_t> orig;
  std::string_view work = text;
  bool valid = true;
  for (size_t i = 0; i < text.size() && valid;) {
    const size_t len = utf8_len(text, i);
    valid = len != 0;
    i += len;
  }
  if (!valid) {
    clean.reserve(text.size() + 16);
    orig.reserve(text.size() + 16);
    for (size_t i = 0; i < text.size();) {
      const size_t len = utf8_len(text, i);
      if (len == 0) {
        clean += "\xEF\xBF\xBD";
        orig.insert(orig.end(), 3, i);
        ++i;
      } else {
        clean.append(text, i, len);
        for (size_t k = 0; k < len; ++k) orig.push_back(i + k);
        i += len;
      }
    }
    orig.push_back(text.size());
    work = clean;
  }
  const auto emit = [&](size_t a, size_t b) {
    if (!valid) a = orig[a], b = orig[b];
    bpe_piece(text.substr(a, b - a), cache, out);
  };
  if (!isolate_digits) return split_stretch(work, 0, work.size(), emit);
  re2::StringPiece m;
  size_t pos = 0;
  while (pos < work.size() &&
         digit_re->Match(re2::StringPiece(work.data(), work.size()), pos, work.size(), RE2::UNANCHORED, &m, 1)) {
    const size_t d = size_t(m.data() - work.data());
    split_stretch(work, pos, d, emit);
    emit(d, d + m.size());
    pos = d + m.size();
  }
  split_stretch(work, pos, work.size(), emit);
}

// GPT-2 pieces of work[begin, end). `\s+(?!\S)`: a whitespace run followed by something else keeps
// all but its last character, which starts the next piece (" word", or a lone "\n"); a run that
// ends the stretch stays whole.
template <typename Emit>
void BpeTokenizer::Impl::split_stretch(std::string_view work, size_t begin, size_t end, Emit&& emit) const {
  const re2::StringPiece all(work.data(), work.size());
  re2::StringPiece m;
  for (size_t pos = begin; pos < end;) {
    const bool ok = gpt2_re->Match(all, pos, end, RE2::ANCHOR_START, &m, 1);
    SLIDESPARSE_ASSERT(ok && !m.empty(), "the GPT-2 regex matched nothing at byte {} of a {}-byte stretch", pos,
                       end - begin);
    size_t stop = pos + m.size();
    if (stop < end) {
      size_t last = stop - 1;  // start of the match's last character
      while (last > pos && (uint8_t(work[last]) & 0xC0) == 0x80) --last;
      // Only the `\s+` alternative ends in whitespace; the others end in a letter, digit or symbol.
      if (last > pos && is_space(utf8_decode(work, last, stop - last))) stop = last;
    }
    emit(pos, stop);
    pos = stop;
  }
}

void BpeTokenizer::Impl::bpe_piece(std::string_view piece, Cache& cache, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    if (const int32_t id = byte_token[uint8_t(piece[0])]; id >= 0) out.push_back(id);
    return;
  }
  const auto it = cache.pieces.find(piece);
  if (it != cache.pieces.end()) {
    out.insert(out.end(), cache.pool.begin() + it->second.first,
               cache.pool.begin() + it->second.first + it->second.second);
    return;
  }
  const size_t first = cache.pool.size();
  bpe(piece, cache.pool);
  const size_t n = cache.pool.size() - first;
  cache.pieces.emplace(piece, std::make_pair(uint32_t(first), uint32_t(n)));
  out.insert(out.end(), cache.pool.begin() + int64_t(first), cache.pool.end());
}

// BPE over the byte tokens of one piece: repeatedly merge the adjacent pair of lowest rank, the
// leftmost one among equal ranks (a min-heap keyed by (rank, position) with lazy invalidation).
void BpeTokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id, prev, next;
  };
  struct Candidate {
    int32_t rank, left, left_id, right_id, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::vector<Symbol> sym;
  sym.reserve(piece.size());
  for (const char c : piece)
    if (const int32_t id = byte_token[uint8_t(c)]; id >= 0) sym.push_back(Symbol{id, int32_t(sym.size()) - 1, -1});
  const int32_t n = int32_t(sym.size());
  if (n == 0) return;
  for (int32_t i = 0; i + 1 < n; ++i) sym[size_t(i)].next = i + 1;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = sym[size_t(left)].next;
    if (right < 0) return;
    const auto it = merges.find(pair_key(sym[size_t(left)].id, sym[size_t(right)].id));
    if (it != merges.end())
      heap.push(Candidate{it->second.rank, left, sym[size_t(left)].id, sym[size_t(right)].id, it->second.merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& l = sym[size_t(c.left)];
    // Stale entries: the left symbol merged (its id changed or it died) or its neighbour did.
    if (l.id != c.left_id || l.next < 0 || sym[size_t(l.next)].id != c.right_id) continue;
    Symbol& r = sym[size_t(l.next)];
    l.id = c.merged;
    l.next = r.next;
    if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
    r.id = -1;
    push(l.prev);
    push(c.left);
  }
  for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

}  // namespace slidesparse
