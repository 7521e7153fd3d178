// GGUF reader: exact dequantization of hand-built blocks (expected values computed here from the
// block formulas), a hand-built file round trip through every metadata type, and one test per
// malformed-input class checking the status and the message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf_builder.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gguf.hpp"
#include "slidesparse/types.hpp"
#include "temp_dir.hpp"

namespace slidesparse {
namespace {

using namespace ggufbuild;

constexpr uint16_t kHalf = 0x3800, kMinusOne = 0xBC00, kQuarter = 0x3400, kTwo = 0x4000;

std::vector<float> dq(GgmlType t, const std::vector<uint8_t>& bytes, uint64_t count) {
  std::vector<float> y(count, std::nanf(""));
  dequantize_to_f32(t, bytes.data(), count, y.data());
  return y;
}

TEST(GgufDequant, Q4_1ExactFromFormula) {
  // d = 0.5, m = -1; byte j holds nibble j (element j) and 15 - j (element j + 16).
  std::vector<uint8_t> b;
  put_le(b, kHalf, 2);
  put_le(b, kMinusOne, 2);
  for (int j = 0; j < 16; ++j) b.push_back(uint8_t(j | ((15 - j) << 4)));
  ASSERT_EQ(b.size(), 20u);
  const auto y = dq(GgmlType::kQ4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j) * 0.5f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], float(15 - j) * 0.5f - 1.0f) << j;
  }
}

TEST(GgufDequant, Q4_0ExactFromFormula) {
  std::vector<uint8_t> b;
  put_le(b, kQuarter, 2);
  for (int j = 0; j < 16; ++j) b.push_back(uint8_t(((j * 7) & 15) | (j << 4)));
  const auto y = dq(GgmlType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(((j * 7) & 15) - 8) * 0.25f) << j;
    EXPECT_EQ(y[j + 16], float(j - 8) * 0.25f) << j;
  }
}

TEST(GgufDequant, Q8_0ExactTwoBlocks) {
  std::vector<int8_t> q1, q2;
  for (int j = 0; j < 32; ++j) {
    q1.push_back(int8_t(j - 16));
    q2.push_back(int8_t(j % 2 ? 127 : -128));
  }
  auto b = q8_0_block(kTwo, q1);
  const auto b2 = q8_0_block(kHalf, q2);
  b.insert(b.end(), b2.begin(), b2.end());
  const auto y = dq(GgmlType::kQ8_0, b, 64);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y[j], float(j - 16) * 2.0f);
    EXPECT_EQ(y[32 + j], float(j % 2 ? 127 : -128) * 0.5f);
  }
}

TEST(GgufDequant, Q5_0AndQ5_1FifthBit) {
  // Element j: low nibble j, fifth bit set for odd j; element j + 16: nibble 15 - j, fifth bit
  // set for j < 8.
  uint32_t qh = 0;
  std::vector<uint8_t> qs;
  for (int j = 0; j < 16; ++j) {
    qs.push_back(uint8_t(j | ((15 - j) << 4)));
    if (j % 2) qh |= 1u << j;
    if (j < 8) qh |= 1u << (j + 16);
  }
  auto expect_q = [](int j, bool hi) { return hi ? (15 - j) + (j < 8 ? 16 : 0) : j + (j % 2 ? 16 : 0); };
  std::vector<uint8_t> b0;
  put_le(b0, kHalf, 2);
  put_le(b0, qh, 4);
  b0.insert(b0.end(), qs.begin(), qs.end());
  const auto y0 = dq(GgmlType::kQ5_0, b0, 32);
  std::vector<uint8_t> b1;
  put_le(b1, kTwo, 2);
  put_le(b1, kMinusOne, 2);
  put_le(b1, qh, 4);
  b1.insert(b1.end(), qs.begin(), qs.end());
  const auto y1 = dq(GgmlType::kQ5_1, b1, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y0[j], float(expect_q(j, false) - 16) * 0.5f) << j;
    EXPECT_EQ(y0[j + 16], float(expect_q(j, true) - 16) * 0.5f) << j;
    EXPECT_EQ(y1[j], float(expect_q(j, false)) * 2.0f - 1.0f) << j;
    EXPECT_EQ(y1[j + 16], float(expect_q(j, true)) * 2.0f - 1.0f) << j;
  }
}

TEST(GgufDequant, Q6_KExactFromLayout) {
  // Element e = 128 * h + 32 * r + l: 6-bit q(e) = (e * 37) % 64, scale index 8h + l/16 + 2r.
  std::vector<uint8_t> b(210, 0);
  auto q_of = [](int e) { return (e * 37) % 64; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = (e % 128) / 32, l = e % 32, q = q_of(e);
    uint8_t& lo = b[size_t(h * 64 + l + 32 * (r & 1))];
    lo = uint8_t(lo | ((q & 15) << (r >= 2 ? 4 : 0)));
    uint8_t& hi = b[size_t(128 + h * 32 + l)];
    hi = uint8_t(hi | ((q >> 4) << (2 * r)));
  }
  for (int s = 0; s < 16; ++s) b[size_t(192 + s)] = uint8_t(int8_t(s - 8));
  b[208] = uint8_t(kQuarter & 0xff);
  b[209] = uint8_t(kQuarter >> 8);
  const auto y = dq(GgmlType::kQ6_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = (e % 128) / 32, l = e % 32;
    const int sc = (8 * h + l / 16 + 2 * r) - 8;
    EXPECT_EQ(y[e], 0.25f * float(sc) * float(q_of(e) - 32)) << e;
  }
}

TEST(GgufDequant, PlainFloatTypes) {
  std::vector<uint8_t> f16, bf16;
  const float vals[] = {1.0f, -2.5f, 0.0f, 65504.0f};
  for (float v : vals) {
    put_le(f16, f32_to_f16(v), 2);
    put_le(bf16, f32_to_bf16(v), 2);
  }
  const auto a = dq(GgmlType::kF16, f16, 4), c = dq(GgmlType::kBF16, bf16, 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a[i], vals[i]);
    EXPECT_EQ(c[i], bf16_to_f32(f32_to_bf16(vals[i])));
  }
}

TEST(GgufDequant, TypesWithoutDequantizerAreUnsupported) {
  std::vector<uint8_t> b(144, 0);
  std::vector<float> y(256);
  try {
    dequantize_to_f32(GgmlType::kQ4_K, b.data(), 256, y.data());
    FAIL() << "expected kUnsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kUnsupported);
    EXPECT_NE(e.message().find("Q4_K"), std::string::npos) << e.message();
  }
}

TEST(GgufTypes, BlockSizes) {
  struct Row { uint32_t id; uint32_t elems, bytes; };
  for (const Row r : {Row{0, 1, 4}, Row{1, 1, 2}, Row{30, 1, 2}, Row{2, 32, 18}, Row{3, 32, 20},
                      Row{6, 32, 22}, Row{7, 32, 24}, Row{8, 32, 34}, Row{14, 256, 210},
                      Row{12, 256, 144}, Row{13, 256, 176}, Row{15, 256, 292}}) {
    const auto* t = ggml_type_traits(r.id);
    ASSERT_NE(t, nullptr) << r.id;
    EXPECT_EQ(t->block_elems, r.elems) << t->name;
    EXPECT_EQ(t->block_bytes, r.bytes) << t->name;
  }
  EXPECT_EQ(ggml_type_traits(4), nullptr);
  EXPECT_EQ(ggml_type_name(99), "type 99");
}

// A file using every metadata value type, nested string arrays, and F32 / Q8_0 tensors.
Builder full_builder() {
  Builder b;
  b.str("general.architecture", "llama");
  std::vector<uint8_t> v;
  b.raw("u8", kU8, {200});
  b.raw("i8", kI8, {0xFE});
  v.clear(); put_le(v, 60000, 2); b.raw("u16", kU16, v);
  v.clear(); put_le(v, 0xFFFF, 2); b.raw("i16", kI16, v);
  b.u32("u32", 4000000000u);
  v.clear(); put_le(v, uint32_t(-7), 4); b.raw("i32", kI32, v);
  b.f32("f32", 1.5f);
  b.boolean("bool", true);
  v.clear(); put_le(v, 1ull << 40, 8); b.raw("u64", kU64, v);
  v.clear(); put_le(v, uint64_t(-5), 8); b.raw("i64", kI64, v);
  double d = -0.125;
  uint64_t dbits;
  std::memcpy(&dbits, &d, 8);
  v.clear(); put_le(v, dbits, 8); b.raw("f64", kF64, v);
  b.str_array("strings", {"a", "", "Ġ t"});
  // Array of 2 arrays of strings: [["x"], ["y", "z"]].
  v.clear();
  put_le(v, kArray, 4); put_le(v, 2, 8);
  put_le(v, kString, 4); put_le(v, 1, 8); put_str(v, "x");
  put_le(v, kString, 4); put_le(v, 2, 8); put_str(v, "y"); put_str(v, "z");
  b.raw("nested", kArray, v);
  b.f32_tensor("norm", {4}, {1.0f, -2.0f, 0.5f, 3.0f});
  std::vector<int8_t> q;
  for (int j = 0; j < 32; ++j) q.push_back(int8_t(j - 10));
  auto blk = q8_0_block(kHalf, q);
  auto blk2 = q8_0_block(kTwo, q);
  blk.insert(blk.end(), blk2.begin(), blk2.end());
  b.tensor("w", {32, 2}, tQ8_0, blk);
  return b;
}

TEST(GgufParse, RoundTripEveryValueType) {
  const auto img = full_builder().build();
  const GgufHeader h = parse_gguf(img.data(), img.size(), "test");
  EXPECT_EQ(h.version, 3u);
  EXPECT_EQ(h.alignment, 32u);
  EXPECT_EQ(h.metadata.size(), 14u);
  EXPECT_EQ(h.metadata_order.front(), "general.architecture");
  EXPECT_EQ(h.value("general.architecture")->s, "llama");
  EXPECT_EQ(h.value("u8")->u, 200u);
  EXPECT_EQ(h.value("i8")->i, -2);
  EXPECT_EQ(h.value("u16")->u, 60000u);
  EXPECT_EQ(h.value("i16")->i, -1);
  EXPECT_EQ(h.value("u32")->u, 4000000000u);
  EXPECT_EQ(h.value("i32")->i, -7);
  EXPECT_FALSE(h.value("i32")->as_uint().has_value());
  EXPECT_EQ(h.value("f32")->f, 1.5);
  EXPECT_TRUE(h.value("bool")->b);
  EXPECT_EQ(h.value("u64")->u, 1ull << 40);
  EXPECT_EQ(h.value("i64")->i, -5);
  EXPECT_EQ(h.value("f64")->f, -0.125);
  EXPECT_EQ(h.value("strings")->to_json(), nlohmann::json({"a", "", "Ġ t"}));
  EXPECT_EQ(h.value("nested")->to_json(), nlohmann::json::parse(R"([["x"],["y","z"]])"));
  ASSERT_EQ(h.tensors.size(), 2u);
  const auto* w = h.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape(), (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(w->numel, 64u);
  EXPECT_EQ(w->nbytes(), 68u);
  EXPECT_EQ(w->begin % 32, 0u);
  EXPECT_EQ(w->end, img.size());
  EXPECT_EQ(h.find("norm")->begin, h.data_offset);
}

TEST(GgufFileTest, OpenAndDequantize) {
  testing::TempDir dir;
  const auto img = full_builder().build();
  const std::string path = dir.file("m.gguf");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(img.data()), std::streamsize(img.size()));
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.file_size(), img.size());
  EXPECT_EQ(f.dequantize(*f.find("norm")), (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f}));
  const auto w = f.dequantize(*f.find("w"));
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(w[j], float(j - 10) * 0.5f);
    EXPECT_EQ(w[32 + j], float(j - 10) * 2.0f);
  }
  try {
    (void)GgufFile::open(dir.file("missing.gguf"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kNotFound);
  }
}

TEST(GgufParse, AlignmentKeyIsHonoured) {
  Builder b;
  b.u32("general.alignment", 64);
  b.alignment = 64;
  b.f32_tensor("a", {3}, {1, 2, 3});
  b.f32_tensor("b", {1}, {4});
  const auto img = b.build();
  const auto h = parse_gguf(img.data(), img.size());
  EXPECT_EQ(h.alignment, 64u);
  EXPECT_EQ(h.data_offset % 64, 0u);
  EXPECT_EQ(h.find("b")->offset, 64u);
}

// --- malformed inputs -------------------------------------------------------------------------

void expect_error(const std::vector<uint8_t>& img, Status status, const std::string& needle) {
  try {
    (void)parse_gguf(img.data(), img.size(), "bad");
    FAIL() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.message();
    EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
  }
}

TEST(GgufMalformed, EveryTruncationRejected) {
  const auto img = full_builder().build();
  for (size_t n = 0; n < img.size(); ++n) {
    std::vector<uint8_t> cut(img.begin(), img.begin() + std::ptrdiff_t(n));
    try {
      (void)parse_gguf(cut.data(), cut.size());
      ADD_FAILURE() << "prefix of " << n << " bytes accepted";
    } catch (const Error& e) {
      ASSERT_EQ(e.status(), Status::kBadFormat) << n << ": " << e.message();
      ASSERT_FALSE(e.message().empty());
    }
  }
}

TEST(GgufMalformed, BadMagicAndVersion) {
  auto img = full_builder().build();
  auto bad = img;
  bad[0] = 'X';
  expect_error(bad, Status::kBadFormat, "bad magic");
  for (int ver : {1, 4}) {
    bad = img;
    bad[4] = uint8_t(ver);
    expect_error(bad, Status::kBadFormat, "version " + std::to_string(ver));
  }
  Builder v2 = full_builder();
  v2.version = 2;
  const auto img2 = v2.build();
  EXPECT_EQ(parse_gguf(img2.data(), img2.size()).version, 2u);
}

TEST(GgufMalformed, HugeCounts) {
  auto img = full_builder().build();
  auto bad = img;
  for (int i = 0; i < 8; ++i) bad[8 + size_t(i)] = 0xFF;
  expect_error(bad, Status::kBadFormat, "tensor count");
  bad = img;
  for (int i = 0; i < 7; ++i) bad[16 + size_t(i)] = 0xFF;
  expect_error(bad, Status::kBadFormat, "metadata count");
  Builder b;
  std::vector<uint8_t> v;
  put_le(v, kU64, 4);
  put_le(v, 1ull << 61, 8);  // 2^61 * 8 bytes overflows a naive product
  b.raw("arr", kArray, v);
  expect_error(b.build(), Status::kBadFormat, "cannot fit");
}

TEST(GgufMalformed, StringPastEnd) {
  Builder b;
  std::vector<uint8_t> v;
  put_le(v, 1000, 8);
  v.push_back('x');
  b.raw("s", kString, v);
  expect_error(b.build(), Status::kBadFormat, "runs past the end");
  Builder k;  // key length past the end
  k.kv.clear();
  put_le(k.kv, ~0ull, 8);
  k.kv.resize(40, 0);
  k.n_kv = 1;
  expect_error(k.build(), Status::kBadFormat, "past the end");
}

TEST(GgufMalformed, BadValues) {
  Builder b;
  b.raw("t", 13, {0});
  expect_error(b.build(), Status::kBadFormat, "unknown value type 13");
  Builder c;
  c.raw("flag", kBool, {2});
  expect_error(c.build(), Status::kBadFormat, "bool value 2");
  Builder d;
  d.u32("k", 1);
  d.u32("k", 2);
  expect_error(d.build(), Status::kBadFormat, "duplicate metadata key");
  Builder e;  // arrays nested 9 deep
  std::vector<uint8_t> v;
  for (int i = 0; i < 9; ++i) {
    put_le(v, kArray, 4);
    put_le(v, 1, 8);
  }
  put_le(v, kU8, 4);
  put_le(v, 1, 8);
  v.push_back(0);
  e.raw("deep", kArray, v);
  expect_error(e.build(), Status::kBadFormat, "nested deeper");
}

TEST(GgufMalformed, BadAlignment) {
  Builder b;
  b.u32("general.alignment", 24);
  b.f32_tensor("a", {1}, {1});
  expect_error(b.build(), Status::kBadFormat, "not a power of two");
  Builder c;
  c.u32("general.alignment", 0);
  expect_error(c.build(), Status::kBadFormat, "not a power of two");
  Builder d;
  d.str("general.alignment", "32");
  expect_error(d.build(), Status::kBadFormat, "must be uint32");
  Builder e;
  e.f32_tensor("a", {8}, std::vector<float>(8, 1));
  e.f32_tensor("b", {1}, {1});
  e.tensors[1].offset_override = 16;  // inside the data, but not a multiple of 32
  expect_error(e.build(), Status::kBadFormat, "not a multiple of the alignment");
}

TEST(GgufMalformed, TensorInfos) {
  {
    Builder b;
    b.f32_tensor("a", {4}, {1, 2, 3, 4});
    b.tensors[0].offset_override = 32;
    expect_error(b.build(), Status::kBadFormat, "run past the end");
  }
  {
    Builder b;
    b.f32_tensor("a", {16}, std::vector<float>(16, 1));
    b.f32_tensor("b", {8}, std::vector<float>(8, 1));
    b.tensors[1].offset_override = 32;  // a covers [0, 64)
    expect_error(b.build(), Status::kBadFormat, "overlap");
  }
  {
    Builder b;
    b.tensor("q", {32}, 99, std::vector<uint8_t>(64, 0));
    expect_error(b.build(), Status::kUnsupported, "unknown ggml type id 99");
  }
  {
    Builder b;
    b.tensor("q", {16}, tQ8_0, std::vector<uint8_t>(34, 0));
    expect_error(b.build(), Status::kBadFormat, "not a multiple of the Q8_0 block size 32");
  }
  {
    Builder b;
    b.f32_tensor("a", {1, 1, 1, 1, 1}, {1});
    expect_error(b.build(), Status::kBadFormat, "n_dims 5");
  }
  {
    Builder b;
    b.f32_tensor("a", {0}, {});
    expect_error(b.build(), Status::kBadFormat, "dim 0 is 0");
  }
  {
    Builder b;
    b.f32_tensor("a", {1ull << 62, 1ull << 62}, {1});
    expect_error(b.build(), Status::kBadFormat, "overflows");
  }
  {
    Builder b;
    b.f32_tensor("a", {1}, {1});
    b.f32_tensor("a", {1}, {2});
    expect_error(b.build(), Status::kBadFormat, "duplicate tensor name");
  }
}

}  // namespace
}  // namespace slidesparse
