// BpeTokenizer: a hand-built tiny byte-level vocabulary whose expected ids are worked out here by
// hand (merge ranks, ties, the GPT-2 byte table, digit isolation, the `\s+(?!\S)` whitespace rule,
// contractions, added tokens, invalid UTF-8, bytes without a token), load errors, round trips,
// `slidesparse tokenize` (the ids file, exit codes), and the real SmolLM2 tokenizer on the whole
// WikiText-2 test file against the digest of the Hugging Face `tokenizers` ids in tests/fixtures
// (scripts/tokenizer_reference.py).
#include "slidesparse/tokenizer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "real_model.hpp"
#include "slidesparse/error.hpp"
#include "temp_dir.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;
using testing::TempDir;

// ---- SHA-256 (FIPS 180-4), for the fixture's digests; checked against the NIST examples below.
class Sha256 {
 public:
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_t(64) - fill_);
      std::memcpy(block_.data() + fill_, p, take);
      fill_ += take, p += take, n -= take;
      if (fill_ == 64) compress(), fill_ = 0;
    }
  }
  std::string hex() {
    const uint64_t bits = bytes_ * 8;
    const uint8_t one = 0x80, zero = 0;
    update(&one, 1);
    while (fill_ != 56) update(&zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
    update(len, 8);
    std::string out;
    for (uint32_t v : h_) out += fmt::format("{:08x}", v);
    return out;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return x >> n | x << (32 - n); }
  void compress() {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int t = 0; t < 16; ++t)
      w[t] = uint32_t(block_[4 * t]) << 24 | uint32_t(block_[4 * t + 1]) << 16 | uint32_t(block_[4 * t + 2]) << 8 |
             uint32_t(block_[4 * t + 3]);
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[t] + w[t];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    const uint32_t v[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; ++i) h_[i] += v[i];
  }
  std::array<uint32_t, 8> h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  size_t fill_ = 0;
  uint64_t bytes_ = 0;
};

std::string sha256_hex(const void* p, size_t n) {
  Sha256 s;
  s.update(p, n);
  return s.hex();
}

// The fixture's convention: ids as little-endian int32.
std::string sha256_ids(const int32_t* ids, size_t n) {
  Sha256 s;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t v = uint32_t(ids[i]);
    const uint8_t le[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    s.update(le, 4);
  }
  return s.hex();
}

TEST(Sha256, NistExamples) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ---- The tiny vocabulary -------------------------------------------------------------------

// GPT-2's byte table, from its definition: the printable bytes '!'..'~', 0xA1..0xAC and
// 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing order, for U+0100 onwards.
std::string byte_char(int b) {
  const auto printable = [](int x) { return (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE; };
  int cp = b;
  if (!printable(b)) {
    cp = 0x100;
    for (int x = 0; x < b; ++x) cp += printable(x) ? 0 : 1;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | cp >> 6);
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

TEST(TokenizerTiny, ByteTableSpotValues) {  // the table the vocabulary below is spelled in
  EXPECT_EQ(byte_char(' '), "\u0120");   // Ġ
  EXPECT_EQ(byte_char('\n'), "\u010A");  // Ċ
  EXPECT_EQ(byte_char('\r'), "\u010D");  // č
  EXPECT_EQ(byte_char('\t'), "\u0109");  // ĉ
  EXPECT_EQ(byte_char(0x00), "\u0100");
  EXPECT_EQ(byte_char(0x7F), "\u0121");
  EXPECT_EQ(byte_char(0xA0), "\u0142");  // ł
  EXPECT_EQ(byte_char(0xAD), "\u0143");
  EXPECT_EQ(byte_char('a'), "a");
  EXPECT_EQ(byte_char(0xFF), "\u00FF");
}

// Ids: 0..2 control tokens, 3 + b the token of byte b (none for 0x04 and 0xFE), then one token per
// merge in rank order, then an added user-defined token and a control token spelled outside the
// byte alphabet (a real space), which therefore is ordinary text.
constexpr int kEot = 0, kImStart = 1, kImEnd = 2;
constexpr int kNoTokenByte1 = 0x04, kNoTokenByte2 = 0xFE;
int32_t B(int byte) { return 3 + byte; }
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"Ġ", "t"},  {"h", "e"},  {"Ġt", "he"}, {"a", "a"}, {"aa", "a"}, {"aa", "aa"}, {"b", "c"},
    {"a", "b"},  {"Ġ", "Ġ"},  {"č", "Ċ"},   {"'", "s"}, {"Ġ", "1"},  {"1", "2"},   {"ł", "Â"},
    {"ċ", "ċ"},  {"£", "Ù"},  {"a", "ÿ"},   {"ÿ", "!"}, {"Ċ", "Ċ"},  {"!", "!"}};
enum : int32_t {
  kGt = 259, kHe, kGthe, kAA, kAAA, kAAAA, kBC, kAB, kGG, kCrLf, kApS, kG1, k12, kNbspPair, kVtVt, kDigitPair,
  kAy, kYBang, kLfLf, kBangBang, kImPrefix /* "<|im", user-defined */, kSpaced /* "<a b>", control */
};
static_assert(kBangBang == 259 + 19, "one token per merge");

json tiny_json(const std::string& pre = "smollm") {
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  std::vector<int> types = {3, 3, 3};
  for (int b = 0; b < 256; ++b) {
    // A byte without a token keeps its id slot, filled with a token nothing maps to.
    tokens.push_back(b == kNoTokenByte1 || b == kNoTokenByte2 ? "<unused" + std::to_string(b) + ">" : byte_char(b));
    types.push_back(b == kNoTokenByte1 || b == kNoTokenByte2 ? 5 : 1);
  }
  std::vector<std::string> merges;
  for (const auto& [l, r] : kMerges) {
    tokens.push_back(l + r);
    types.push_back(1);
    merges.push_back(l + " " + r);
  }
  tokens.push_back("<|im");
  types.push_back(4);
  tokens.push_back("<a b>");
  types.push_back(3);
  return {{"model", "gpt2"},     {"pre", pre},           {"tokens", tokens},       {"token_type", types},
          {"merges", merges},    {"bos_token_id", kEot}, {"eos_token_id", kImEnd}, {"add_bos_token", false},
          {"add_space_prefix", false}};
}

std::string write_json(const TempDir& dir, const json& j, const std::string& name = "tokenizer_gguf.json") {
  const std::string path = dir.file(name);
  std::ofstream(path) << j.dump();
  return path;
}

BpeTokenizer tiny(const TempDir& dir, const std::string& pre = "smollm") {
  return BpeTokenizer::load(write_json(dir, tiny_json(pre)));
}

std::string show(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

TEST(TokenizerTiny, Accessors) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  EXPECT_EQ(t.vocab_size(), kSpaced + 1);
  EXPECT_EQ(t.bos_id(), kEot);
  EXPECT_EQ(t.eos_id(), kImEnd);
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(t.pre_type(), "smollm");
  // A directory holding tokenizer_gguf.json loads the same.
  EXPECT_EQ(BpeTokenizer::load(dir.path().string()).vocab_size(), kSpaced + 1);
}

struct Case {
  std::string text;
  Ids ids;
};

void expect_cases(const BpeTokenizer& t, const std::vector<Case>& cases) {
  for (const Case& c : cases) EXPECT_EQ(t.encode(c.text), c.ids) << "text " << show(c.text);
}

TEST(TokenizerTiny, MergeRanksAndTies) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  expect_cases(t, {
      {"", {}},
      {"the", {B('t'), kHe}},            // no "t h" merge
      {" the", {kGthe}},                 // Ġ t -> Ġt (rank 0), h e -> he (1), Ġt he (2)
      {"the the", {B('t'), kHe, kGthe}},
      {"abc", {B('a'), kBC}},            // "b c" (rank 6) before "a b" (7): not [ab, c]
      {"aaa", {kAAA}},                   // equal ranks, leftmost first: aa a -> aaa (not a aa)
      {"aaaa", {kAAAA}},                 // aa a a -> aa aa -> aaaa
      {"aaaaa", {kAA, kAAA}},            // aa a a a -> aa aa a -> "aa a" (4) beats "aa aa" (5)
      {"bcbc", {kBC, kBC}},
  });
}

TEST(TokenizerTiny, ContractionsAndPunctuation) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  expect_cases(t, {
      {"it's", {B('i'), B('t'), kApS}},
      {"x's", {B('x'), kApS}},
      {"IT'S", {B('I'), B('T'), B('\''), B('S')}},  // contractions are lower case only
      {" 's", {B(' '), B('\''), B('s')}},           // " '" is one piece, "s" another
      {"!!", {kBangBang}},
      {"a!!", {B('a'), kBangBang}},
  });
}

TEST(TokenizerTiny, WhitespaceRuns) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  expect_cases(t, {
      // A run followed by a non-space keeps all but its last character: "a", " ", " b".
      {"a  b", {B('a'), B(' '), B(' '), B('b')}},
      {"a   b", {B('a'), kGG, B(' '), B('b')}},
      {"  a", {B(' '), B(' '), B('a')}},
      {"a  ", {B('a'), kGG}},  // a run that ends the text stays whole
      {"\n\nword", {B('\n'), B('\n'), B('w'), B('o'), B('r'), B('d')}},
      {"x\n\n", {B('x'), kLfLf}},
      {"x\r\n", {B('x'), kCrLf}},
      // WikiText's line ends: " \r\n \r\n " before a word gives " \r\n \r\n" and " b".
      {"a \r\n \r\n b", {B('a'), B(' '), kCrLf, B(' '), kCrLf, B(' '), B('b')}},
      // Unicode whitespace (NBSP, VT) counts as whitespace, not as a symbol.
      {"a\u00A0\u00A0b", {B('a'), B(0xC2), B(0xA0), B(0xC2), B(0xA0), B('b')}},
      {"a\x0B\x0B" "b", {B('a'), B(0x0B), B(0x0B), B('b')}},
      {"a\x0B\x0B", {B('a'), kVtVt}},
  });
}

TEST(TokenizerTiny, DigitsSmollmVersusGpt2) {
  TempDir dir;
  const BpeTokenizer smollm = tiny(dir);
  expect_cases(smollm, {
      {"x12", {B('x'), B('1'), B('2')}},  // every digit its own piece: no "1 2" merge
      {" 1", {B(' '), B('1')}},           // the space is not glued to the digit
      {"a  1", {B('a'), kGG, B('1')}},    // the run ends its stretch before the digit: whole
      {"a\u0663\u0663", {B('a'), B(0xD9), B(0xA3), B(0xD9), B(0xA3)}},  // any \p{N}, not only ASCII
  });
  TempDir dir2;
  const BpeTokenizer gpt2 = tiny(dir2, "gpt2");
  EXPECT_EQ(gpt2.pre_type(), "gpt2");
  expect_cases(gpt2, {
      {"x12", {B('x'), k12}},
      {" 1", {kG1}},
      {"a  1", {B('a'), B(' '), kG1}},
      {"a\u0663\u0663", {B('a'), B(0xD9), kDigitPair, B(0xA3)}},
  });
  // Without "pre", GPT-2's regex (what transformers' GGUF conversion falls back to).
  TempDir dir3;
  json j = tiny_json();
  j.erase("pre");
  const BpeTokenizer dflt = BpeTokenizer::load(write_json(dir3, j));
  EXPECT_EQ(dflt.pre_type(), "default");
  expect_cases(dflt, {{"x12", {B('x'), k12}}, {"a  1", {B('a'), B(' '), kG1}}});
}

TEST(TokenizerTiny, AddedTokens) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  expect_cases(t, {
      {"<|im_start|>user\nhi<|im_end|>", {kImStart, B('u'), B('s'), B('e'), B('r'), B('\n'), B('h'), B('i'), kImEnd}},
      {"<|endoftext|>", {kEot}},
      {"<|im_end|><|im_end|>", {kImEnd, kImEnd}},
      // Longest match at a position: "<|im_start|>" over "<|im"; "<|im" alone where that is all.
      {"<|im_start|", {kImPrefix, B('_'), B('s'), B('t'), B('a'), B('r'), B('t'), B('|')}},
      // The text before an added token is its own stretch: its trailing run stays whole.
      {"a  <|im_end|>", {B('a'), kGG, kImEnd}},
      // A control token spelled outside the byte alphabet (a real space) is not an added token.
      {"<a b>", {B('<'), B('a'), B(' '), B('b'), B('>')}},
  });
}

TEST(TokenizerTiny, InvalidUtf8AndBytesWithoutToken) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  expect_cases(t, {
      {"a\xFF" "b", {B('a'), B(0xFF), B('b')}},  // split as a symbol: no "a ÿ" merge across pieces
      {"\xFF!", {kYBang}},                         // a symbol run with '!'
      {"\xC3", {B(0xC3)}},                         // a truncated sequence
      {"\xED\xA0\x80", {B(0xED), B(0xA0), B(0x80)}},  // an encoded surrogate is not UTF-8
      {"\xC3\xA9", {B(0xC3), B(0xA9)}},            // well-formed é: its two bytes
      // No token for 0x04: the byte is dropped before merging, so "!" and "!" meet.
      {"!\x04!", {kBangBang}},
      {"\x04", {}},
      {"a\xFE", {B('a')}},
  });
}

TEST(TokenizerTiny, DuplicateMergeKeepsLastRank) {
  TempDir dir;
  json j = tiny_json();
  j["merges"].push_back("b c");  // "b c" now ranks after "a b"
  const BpeTokenizer t = BpeTokenizer::load(write_json(dir, j));
  EXPECT_EQ(t.encode("abc"), (Ids{kAB, B('c')}));
}

TEST(TokenizerTiny, BosOnlyWhenAsked) {
  TempDir dir;
  const BpeTokenizer no = tiny(dir);
  EXPECT_EQ(no.encode("the", true), (Ids{B('t'), kHe}));
  TempDir dir2;
  json j = tiny_json();
  j["add_bos_token"] = true;
  const BpeTokenizer yes = BpeTokenizer::load(write_json(dir2, j));
  EXPECT_TRUE(yes.add_bos());
  EXPECT_EQ(yes.encode("the", true), (Ids{kEot, B('t'), kHe}));
  EXPECT_EQ(yes.encode("the", false), (Ids{B('t'), kHe}));
  TempDir dir3;
  j.erase("bos_token_id");
  const BpeTokenizer no_id = BpeTokenizer::load(write_json(dir3, j));
  EXPECT_EQ(no_id.bos_id(), -1);
  EXPECT_EQ(no_id.encode("the", true), (Ids{B('t'), kHe}));
}

TEST(TokenizerTiny, Decode) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  EXPECT_EQ(t.decode({}), "");
  EXPECT_EQ(t.decode({kGthe, kGG, kCrLf, B(0xFF), kImStart, kSpaced}), " the  \r\n\xFF<|im_start|><a b>");
  for (const int32_t bad : {-1, int32_t(kSpaced + 1)}) {
    try {
      (void)t.decode({B('a'), bad});
      ADD_FAILURE() << "decode accepted id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidArgument);
      EXPECT_NE(e.message().find(std::to_string(bad)), std::string::npos) << e.message();
    }
  }
}

TEST(TokenizerTiny, RoundTrip) {
  TempDir dir;
  const BpeTokenizer t = tiny(dir);
  const std::vector<std::string> atoms = {
      " ", "  ", "\n", "\r\n", "\t", "\u00A0", "\u3000", "\x0B", "a", "b", "c", "h", "e", "t", "Z", "\u00E9", "'s",
      "'", "1", "2", "\u0663", "!", "<", "|", "<|im_start|>", "<|im_end|>", "<|im", "<a b>", "\xFF", "\xC3",
      "\xE2\x82", "\xF0\x9F\x98\x80", "\u4E2D"};
  std::mt19937 rng(20240917);
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    const int n = int(rng() % 24);
    for (int k = 0; k < n; ++k) s += atoms[rng() % atoms.size()];
    ASSERT_EQ(t.decode(t.encode(s)), s) << "seed 20240917, string " << i << ": " << show(s);
  }
  // Bytes without a token are the one loss.
  EXPECT_EQ(t.decode(t.encode("a\x04" "b\xFE")), "ab");
}

// ---- Load errors ---------------------------------------------------------------------------

void expect_load_error(const std::string& path, Status status, const std::string& fragment) {
  try {
    (void)BpeTokenizer::load(path);
    ADD_FAILURE() << "load(" << path << ") succeeded; expected " << status_name(status);
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.message();
    EXPECT_NE(e.message().find(fragment), std::string::npos) << "message: " << e.message() << "\nexpected: " << fragment;
  }
}

TEST(TokenizerLoad, Errors) {
  TempDir dir;
  expect_load_error(dir.file("absent.json"), Status::kNotFound, "absent.json");
  expect_load_error(dir.sub("empty_dir"), Status::kNotFound, "tokenizer_gguf.json");
  const auto write_text = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  expect_load_error(write_text("bad.json", "{\"model\": \"gpt2\", "), Status::kBadFormat, "not valid JSON");
  expect_load_error(write_text("empty.json", ""), Status::kBadFormat, "not valid JSON");
  expect_load_error(write_text("array.json", "[]"), Status::kBadFormat, "expected a JSON object");

  const auto mutated = [&](const std::string& name, const std::function<void(json&)>& f) {
    json j = tiny_json();
    f(j);
    return write_json(dir, j, name);
  };
  expect_load_error(mutated("no_model.json", [](json& j) { j.erase("model"); }), Status::kBadFormat, "\"model\"");
  expect_load_error(mutated("llama.json", [](json& j) { j["model"] = "llama"; }), Status::kUnsupported, "\"llama\"");
  expect_load_error(mutated("qwen2.json", [](json& j) { j["pre"] = "qwen2"; }), Status::kUnsupported, "\"qwen2\"");
  expect_load_error(mutated("no_tokens.json", [](json& j) { j.erase("tokens"); }), Status::kBadFormat, "\"tokens\"");
  expect_load_error(mutated("int_token.json", [](json& j) { j["tokens"][7] = 7; }), Status::kBadFormat,
                    "\"tokens\"[7]");
  expect_load_error(mutated("no_merges.json", [](json& j) { j.erase("merges"); }), Status::kBadFormat, "\"merges\"");
  expect_load_error(mutated("merge_unknown.json", [](json& j) { j["merges"].push_back("Ġ zz"); }),
                    Status::kBadFormat, "\"zz\"");
  expect_load_error(mutated("merge_no_space.json", [](json& j) { j["merges"].push_back("ab"); }), Status::kBadFormat,
                    "not two tokens");
  expect_load_error(mutated("types_short.json", [](json& j) { j["token_type"].erase(0); }), Status::kBadFormat,
                    "\"token_type\"");
  expect_load_error(mutated("bos_range.json", [](json& j) { j["bos_token_id"] = 100000; }), Status::kBadFormat,
                    "\"bos_token_id\"");
  expect_load_error(mutated("add_bos_type.json", [](json& j) { j["add_bos_token"] = "yes"; }), Status::kBadFormat,
                    "\"add_bos_token\"");
}

// ---- `slidesparse tokenize` ----------------------------------------------------------------

TEST(TokenizerCli, IdsOutAndExitCodes) {
  TempDir dir;
  const std::string model = dir.sub("model");
  std::ofstream(model + "/tokenizer_gguf.json") << tiny_json().dump();
  const std::string text = dir.file("text.txt"), ids_out = dir.file("ids.bin");
  std::ofstream(text, std::ios::binary) << " the aaaa\r\n<|im_end|>x12";
  const auto r = clitest::run_cli({"tokenize", "--model", model, "--text", text, "--ids-out", ids_out, "--json"});
  ASSERT_EQ(r.code, 0) << r;
  // " the", " aaaa" (no "Ġ a" merge), "\r\n" (ends its stretch), the added token, one piece per digit.
  const Ids expected = {kGthe, B(' '), kAAAA, kCrLf, kImEnd, B('x'), B('1'), B('2')};
  const json j = r.out_json();
  EXPECT_EQ(j["tokens"].get<size_t>(), expected.size());
  EXPECT_EQ(j["text_bytes"].get<size_t>(), 24u);
  EXPECT_EQ(j["pre"], "smollm");
  std::vector<uint8_t> le;
  for (const int32_t id : expected)
    for (int b = 0; b < 4; ++b) le.push_back(uint8_t(uint32_t(id) >> (8 * b)));
  EXPECT_EQ(clitest::read_bytes(ids_out), le);

  const auto again = clitest::run_cli({"tokenize", "--model", model, "--text", text, "--ids-out", ids_out});
  EXPECT_EQ(again.code, 7) << again;  // exists, no --force
  EXPECT_EQ(clitest::read_bytes(ids_out), le);
  EXPECT_EQ(clitest::run_cli({"tokenize", "--model", model, "--text", text, "--ids-out", ids_out, "-f"}).code, 0);
  EXPECT_EQ(clitest::run_cli({"tokenize", "--model", model, "--text", dir.file("absent.txt")}).code, 3);
  EXPECT_EQ(clitest::run_cli({"tokenize", "--model", dir.sub("empty"), "--text", text}).code, 3);
  json qwen = tiny_json();
  qwen["pre"] = "qwen2";
  const std::string qwen_dir = dir.sub("qwen");
  std::ofstream(qwen_dir + "/tokenizer_gguf.json") << qwen.dump();
  const auto unsupported = clitest::run_cli({"tokenize", "--model", qwen_dir, "--text", text});
  EXPECT_EQ(unsupported.code, 8) << unsupported;
  EXPECT_NE(unsupported.err.find("qwen2"), std::string::npos) << unsupported;
  EXPECT_TRUE(clitest::hidden_entries(dir.path().string()).empty()) << "a temporary file was left behind";
}

// ---- SmolLM2 on WikiText-2 -----------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The real tokenizer (import-gguf of scripts/fetch_model.sh's GGUF) on the whole test file, against
// the digest of the reference ids (scripts/tokenizer_reference.py): count, every 4096-id chunk,
// all ids, the first and last 32; then the file decodes back byte for byte.
TEST(TokenizerSmolLM2, WikiText2TestMatchesReference) {
  const fs::path gguf = testing::smollm2_gguf_path();
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " not present: run scripts/fetch_model.sh";
  const std::string text_path = testing::wikitext_test_path();
  if (!fs::exists(text_path))
    GTEST_SKIP() << text_path << " not present (the WikiText-2 raw test file; or set SLIDESPARSE_WIKITEXT)";
  const std::string fixture_path =
      (fs::path(SLIDESPARSE_SOURCE_DIR) / "tests/fixtures/wikitext2_test_smollm2_ids.json").string();
  const json fx = json::parse(read_file(fixture_path));

  const std::string text = read_file(text_path);
  ASSERT_EQ(text.size(), fx["text"]["bytes"].get<size_t>()) << text_path << " is not the file the fixture describes";
  ASSERT_EQ(sha256_hex(text.data(), text.size()), fx["text"]["sha256"].get<std::string>())
      << text_path << " is not the file the fixture describes";

  TempDir dir;
  const auto imported = clitest::run_cli({"import-gguf", gguf.string(), dir.file("smol"), "-q"});
  ASSERT_EQ(imported.code, 0) << imported;
  const BpeTokenizer tok = BpeTokenizer::load(dir.file("smol"));
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.pre_type(), "smollm");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_FALSE(tok.add_bos());

  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = tok.encode(text);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ SmolLM2 ] " << text.size() << " bytes -> " << ids.size() << " ids in " << secs << " s\n";
  // A loose bound that only a lost piece cache or a quadratic merge loop would exceed.
  EXPECT_LT(secs, 30.0);

  const size_t chunk = fx["chunk_ids"].get<size_t>();
  const auto& chunks = fx["chunk_sha256"];
  for (size_t c = 0; c < chunks.size(); ++c) {
    const size_t lo = c * chunk, hi = std::min(lo + chunk, ids.size());
    const std::string got = lo < ids.size() ? sha256_ids(ids.data() + lo, hi - lo) : "(no ids)";
    if (got != chunks[c].get<std::string>()) {
      const std::string there = tok.decode(Ids(ids.begin() + int64_t(std::min(lo, ids.size())), ids.begin() + int64_t(hi)));
      ADD_FAILURE() << "first differing chunk: " << c << " of " << chunks.size() << " (ids [" << lo << ", " << lo + chunk
                    << ")), text " << show(there.substr(0, 160)) << "...; the exact id: "
                    << "python3 scripts/tokenizer_reference.py --no-write --compare <build>/slidesparse";
      break;
    }
  }
  EXPECT_EQ(ids.size(), fx["count"].get<size_t>());
  EXPECT_EQ(sha256_ids(ids.data(), ids.size()), fx["ids_sha256"].get<std::string>());
  const Ids first = fx["first_ids"].get<Ids>(), last = fx["last_ids"].get<Ids>();
  ASSERT_GE(ids.size(), first.size());
  EXPECT_EQ(Ids(ids.begin(), ids.begin() + int64_t(first.size())), first);
  EXPECT_EQ(Ids(ids.end() - int64_t(last.size()), ids.end()), last);

  EXPECT_TRUE(tok.decode(ids) == text) << "decode(encode(file)) differs from the file";
}

}  // namespace
}  // namespace slidesparse
