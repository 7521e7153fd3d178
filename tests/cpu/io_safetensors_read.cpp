// Reader validation: every malformed-header class is rejected with kBadFormat and a message that
// names the file and the offending values; hand-built valid images parse byte-exactly.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "cpu/io_util.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {
namespace {

using testing::make_image;
using testing::TempDir;
using testing::throws_error;
using testing::zeros;

constexpr const char* kWhat = "model-under-test.safetensors";

SafetensorsHeader parse(const std::vector<uint8_t>& bytes) {
  return parse_safetensors(bytes.data(), bytes.size(), kWhat);
}

// Expects kBadFormat for `header` + `data`, with the file name and `parts` in the message.
::testing::AssertionResult rejects(const std::string& header, const std::vector<uint8_t>& data,
                                   std::initializer_list<std::string> parts) {
  const auto image = make_image(header, data);
  auto r = throws_error([&] { parse(image); }, Status::kBadFormat, {kWhat});
  if (!r) return r;
  return throws_error([&] { parse(image); }, Status::kBadFormat, parts);
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

// --- valid images -----------------------------------------------------------------------------

TEST(io_SafetensorsRead, HandBuiltImageParsesExactly) {
  // Entries deliberately not in file order: the reader must sort them by offset.
  const std::string header = R"({"__metadata__":{"format":"pt","note":"x"},)"
                             R"("b":{"dtype":"I8","shape":[2],"data_offsets":[8,10]},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<uint8_t> data(10);
  const float a[2] = {1.5f, -2.0f};
  std::memcpy(data.data(), a, 8);
  data[8] = 0x7f;
  data[9] = 0x80;
  const auto image = make_image(header, data);
  const auto h = parse(image);

  EXPECT_EQ(h.header_bytes, header.size());
  EXPECT_EQ(h.data_offset, 8 + header.size());
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[0].dtype, DType::kF32);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(h.tensors[0].begin, 0u);
  EXPECT_EQ(h.tensors[0].end, 8u);
  EXPECT_EQ(h.tensors[0].nbytes(), 8u);
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].dtype, DType::kI8);
  EXPECT_EQ(h.tensors[1].begin, 8u);
  EXPECT_EQ(h.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  ASSERT_NE(h.find("b"), nullptr);
  EXPECT_EQ(h.find("b")->end, 10u);
  EXPECT_EQ(h.find("c"), nullptr);

  float back[2];
  std::memcpy(back, image.data() + h.data_offset + h.find("a")->begin, 8);
  EXPECT_EQ(back[0], 1.5f);
  EXPECT_EQ(back[1], -2.0f);
}

TEST(io_SafetensorsRead, ScalarHasOneElement) {
  const auto h = parse(make_image("{\"s\":" + entry("F64", "[]", 0, 8) + "}", zeros(8)));
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_TRUE(h.tensors[0].shape.empty());
  EXPECT_EQ(h.tensors[0].numel(), 1);
}

TEST(io_SafetensorsRead, EmptyTensorsAnywhere) {
  // Zero-size tensors before, between and after non-empty ones, and at the same offset.
  const std::string header =
      "{\"e0\":" + entry("F32", "[0]", 0, 0) + ",\"a\":" + entry("F32", "[1]", 0, 4) +
      ",\"e1\":" + entry("BF16", "[3,0,2]", 4, 4) + ",\"e2\":" + entry("I8", "[0]", 4, 4) +
      ",\"b\":" + entry("I8", "[4]", 4, 8) + ",\"e3\":" + entry("F16", "[0,7]", 8, 8) + "}";
  const auto h = parse(make_image(header, zeros(8)));
  ASSERT_EQ(h.tensors.size(), 6u);
  std::vector<std::string> order;
  for (const auto& t : h.tensors) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"e0", "a", "e1", "e2", "b", "e3"}));
  EXPECT_EQ(h.find("e1")->numel(), 0);
}

TEST(io_SafetensorsRead, NoTensorsAndPaddedHeader) {
  const auto h = parse(make_image("{}      ", {}));
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_TRUE(h.metadata.empty());
  EXPECT_EQ(h.data_offset, 16u);
  const auto m = parse(make_image(R"({"__metadata__":{}})", {}));
  EXPECT_TRUE(m.metadata.empty());
}

TEST(io_SafetensorsRead, AllDtypeNames) {
  const std::pair<const char*, size_t> names[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
  };
  for (const auto& [name, size] : names) {
    const auto h =
        parse(make_image("{\"t\":" + entry(name, "[3]", 0, 3 * size) + "}", zeros(3 * size)));
    ASSERT_EQ(h.tensors.size(), 1u) << name;
    EXPECT_STREQ(dtype_safetensors_name(h.tensors[0].dtype), name);
  }
}

// --- file-level errors ------------------------------------------------------------------------

TEST(io_SafetensorsRead, EmptyAndShortFiles) {
  EXPECT_TRUE(throws_error([] { parse_safetensors(nullptr, 0, kWhat); }, Status::kBadFormat,
                           {kWhat, "0 bytes", "shorter than"}));
  const std::vector<uint8_t> five = {1, 0, 0, 0, 0};
  EXPECT_TRUE(throws_error([&] { parse(five); }, Status::kBadFormat, {kWhat, "5 bytes"}));
}

TEST(io_SafetensorsRead, HeaderLengthPastEnd) {
  auto image = make_image("{}", {});
  image[0] = 100;  // claims 100 header bytes, file has 2
  EXPECT_TRUE(throws_error([&] { parse(image); }, Status::kBadFormat,
                           {kWhat, "header length 100", "past the end", "10-byte file"}));
  // The largest value must not overflow 8 + H.
  auto huge = testing::u64_le(~0ull);
  EXPECT_TRUE(throws_error([&] { parse(huge); }, Status::kBadFormat,
                           {kWhat, "18446744073709551615", "exceeds the limit"}));
}

TEST(io_SafetensorsRead, HeaderLengthOverLimit) {
  const uint64_t h = kMaxHeaderBytes + 1;
  auto image = testing::u64_le(h);
  EXPECT_TRUE(throws_error(
      [&] { parse(image); }, Status::kBadFormat,
      {kWhat, std::to_string(h), "exceeds the limit", std::to_string(kMaxHeaderBytes)}));
}

TEST(io_SafetensorsRead, HeaderNotJson) {
  EXPECT_TRUE(rejects("{\"a\": ", {}, {"header is not valid JSON"}));
  EXPECT_TRUE(rejects("", {}, {"header is not valid JSON"}));
  EXPECT_TRUE(rejects("{} trailing", {}, {"header is not valid JSON"}));
  EXPECT_TRUE(
      rejects(std::string("{}\0 ", 4), {}, {"header is not valid JSON", "NUL byte at offset 2"}));
  EXPECT_TRUE(rejects(std::string("{\"a\0\":1}", 8), {}, {"NUL byte at offset 3"}));
  EXPECT_TRUE(rejects("{\"\xff\":1}", {}, {"header is not valid JSON"}));  // invalid UTF-8
}

TEST(io_SafetensorsRead, HeaderNotObject) {
  EXPECT_TRUE(rejects("[1,2]", {}, {"must be a JSON object", "an array of 2 elements"}));
  EXPECT_TRUE(rejects("42", {}, {"must be a JSON object", "the integer 42"}));
  EXPECT_TRUE(rejects("\"s\"", {}, {"must be a JSON object", "the string \"s\""}));
}

TEST(io_SafetensorsRead, DeepNestingDoesNotExhaustTheStack) {
  // Parsing, rejecting and destroying a deep document must not recurse per level.
  const size_t depth = 100000;  // past what 8 MiB of stack holds at ~100 bytes per level
  EXPECT_TRUE(rejects(std::string(depth, '[') + std::string(depth, ']'), {},
                      {"must be a JSON object", "an array of 1 elements"}));
  std::string nested;
  for (size_t i = 0; i < depth; ++i) nested += "{\"a\":";
  nested += "1" + std::string(depth, '}');
  EXPECT_TRUE(rejects(nested, {}, {"\"a\"", "unexpected key \"a\""}));
}

// --- entry errors -----------------------------------------------------------------------------

TEST(io_SafetensorsRead, EntryNotObject) {
  EXPECT_TRUE(rejects(R"({"w":5})", {}, {"\"w\"", "entry must be an object", "the integer 5"}));
  EXPECT_TRUE(rejects(R"({"w":[0,4]})", {}, {"\"w\"", "entry must be an object"}));
}

TEST(io_SafetensorsRead, MissingFields) {
  EXPECT_TRUE(rejects(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", zeros(4),
                      {"\"w\"", "missing \"dtype\""}));
  EXPECT_TRUE(rejects(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", zeros(4),
                      {"\"w\"", "missing \"shape\""}));
  EXPECT_TRUE(rejects(R"({"w":{"dtype":"F32","shape":[1]}})", zeros(4),
                      {"\"w\"", "missing \"data_offsets\""}));
}

TEST(io_SafetensorsRead, UnexpectedField) {
  EXPECT_TRUE(rejects(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})",
                      zeros(4), {"\"w\"", "unexpected key \"extra\""}));
}

TEST(io_SafetensorsRead, UnknownDtype) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("F7", "[1]", 0, 1) + "}", zeros(1),
                      {"\"w\"", "unknown dtype", "\"F7\"", "supported", "BF16", "F8_E4M3"}));
  EXPECT_TRUE(
      rejects("{\"w\":" + entry("f32", "[1]", 0, 4) + "}", zeros(4), {"unknown dtype", "\"f32\""}));
  EXPECT_TRUE(rejects(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", zeros(4),
                      {"\"w\"", "\"dtype\" must be a string", "the integer 4"}));
}

TEST(io_SafetensorsRead, ShapeNotArrayOfIntegers) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "3", 0, 12) + "}", zeros(12),
                      {"\"w\"", "\"shape\" must be an array of integers", "the integer 3"}));
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[2.5]", 0, 8) + "}", zeros(8),
                      {"\"w\"", "array of integers", "dim 0", "2.5"}));
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[2.0]", 0, 8) + "}", zeros(8),
                      {"\"w\"", "array of integers", "dim 0"}));
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[1,\"2\"]", 0, 8) + "}", zeros(8),
                      {"\"w\"", "dim 1", "the string \"2\""}));
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[null]", 0, 4) + "}", zeros(4),
                      {"\"w\"", "dim 0", "null"}));
}

TEST(io_SafetensorsRead, NegativeShapeDim) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[2,-3]", 0, 0) + "}", {},
                      {"\"w\"", "negative shape dim -3", "index 1"}));
}

TEST(io_SafetensorsRead, ShapeDimBeyondInt64) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("I8", "[9223372036854775808]", 0, 0) + "}", {},
                      {"\"w\"", "9223372036854775808", "int64 range"}));
}

TEST(io_SafetensorsRead, ShapeNumelOverflow) {
  // 2^62 * 4 overflows the int64 element count; 2^62 F64 elements overflow the 64-bit byte count.
  EXPECT_TRUE(rejects("{\"w\":" + entry("I8", "[4611686018427387904,4]", 0, 0) + "}", {},
                      {"\"w\"", "[4611686018427387904, 4]", "overflows"}));
  EXPECT_TRUE(rejects("{\"w\":" + entry("F64", "[4611686018427387904]", 0, 0) + "}", {},
                      {"\"w\"", "[4611686018427387904]", "F64", "overflows"}));
  // The product is checked left to right, as the reference library does: a later 0 dim does not
  // make an overflowing prefix acceptable.
  EXPECT_TRUE(rejects("{\"w\":" + entry("I8", "[4611686018427387904,4,0]", 0, 0) + "}", {},
                      {"\"w\"", "overflows"}));
  const auto h = parse(
      testing::make_image("{\"w\":" + entry("I8", "[0,4611686018427387904,4]", 0, 0) + "}", {}));
  EXPECT_EQ(h.tensors[0].numel(), 0);
}

TEST(io_SafetensorsRead, DataOffsetsMalformed) {
  const char* bad[] = {"[0]", "[0,4,8]", "4", "[0,-4]", "[0,\"4\"]", "[0,4.0]", "[null,4]"};
  for (const char* off : bad) {
    const std::string h =
        std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") + off + "}}";
    EXPECT_TRUE(rejects(h, zeros(4), {"\"w\"", "data_offsets"})) << off;
  }
  EXPECT_TRUE(rejects(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", zeros(4),
                      {"two non-negative integers", "element 1", "-4"}));
  EXPECT_TRUE(rejects(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", zeros(4),
                      {"must be [begin, end]", "an array of 1 elements"}));
}

TEST(io_SafetensorsRead, ReversedOffsets) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[1]", 8, 4) + "}", zeros(8),
                      {"\"w\"", "reversed", "begin 8 > end 4"}));
}

TEST(io_SafetensorsRead, OffsetPastBuffer) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[4]", 0, 16) + "}", zeros(8),
                      {"\"w\"", "[0, 16]", "past the end of the 8-byte data buffer"}));
  // Offsets near 2^64 must not wrap around the range check.
  EXPECT_TRUE(rejects(
      "{\"w\":" + entry("I8", "[4]", 18446744073709551612ull, 18446744073709551615ull) + "}",
      zeros(8), {"\"w\"", "hold 3 bytes", "needs 4"}));
  EXPECT_TRUE(rejects(
      "{\"w\":" + entry("I8", "[3]", 18446744073709551612ull, 18446744073709551615ull) + "}",
      zeros(8), {"\"w\"", "18446744073709551612", "past the end"}));
}

TEST(io_SafetensorsRead, ByteSizeMismatch) {
  EXPECT_TRUE(rejects("{\"w\":" + entry("F32", "[3]", 0, 8) + "}", zeros(8),
                      {"\"w\"", "hold 8 bytes", "[3]", "F32", "needs 12"}));
  EXPECT_TRUE(rejects("{\"w\":" + entry("BF16", "[2,2]", 0, 16) + "}", zeros(16),
                      {"\"w\"", "hold 16 bytes", "needs 8"}));
}

TEST(io_SafetensorsRead, OverlappingTensors) {
  EXPECT_TRUE(
      rejects("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"b\":" + entry("F32", "[2]", 4, 12) + "}",
              zeros(12), {"\"b\" at [4, 12] overlaps tensor \"a\" at [0, 8]"}));
  // Same range twice.
  EXPECT_TRUE(
      rejects("{\"a\":" + entry("F32", "[1]", 0, 4) + ",\"b\":" + entry("F32", "[1]", 0, 4) + "}",
              zeros(4), {"overlaps"}));
  // An empty tensor strictly inside another's bytes.
  EXPECT_TRUE(
      rejects("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"e\":" + entry("F32", "[0]", 4, 4) + "}",
              zeros(8), {"\"e\" at [4, 4] overlaps tensor \"a\""}));
}

TEST(io_SafetensorsRead, HoleBetweenTensors) {
  EXPECT_TRUE(
      rejects("{\"a\":" + entry("F32", "[1]", 0, 4) + ",\"b\":" + entry("F32", "[1]", 8, 12) + "}",
              zeros(12), {"hole of 4 bytes", "[4, 8)", "\"b\""}));
  EXPECT_TRUE(rejects("{\"b\":" + entry("F32", "[1]", 4, 8) + "}", zeros(8),
                      {"hole of 4 bytes", "[0, 4)"}));
}

TEST(io_SafetensorsRead, TrailingBytes) {
  EXPECT_TRUE(rejects("{\"a\":" + entry("F32", "[1]", 0, 4) + "}", zeros(9),
                      {"cover 4 bytes of the 9-byte data buffer", "5 trailing bytes"}));
  EXPECT_TRUE(rejects("{}", zeros(1), {"cover 0 bytes", "1 trailing bytes"}));
}

TEST(io_SafetensorsRead, MetadataNotObjectOfStrings) {
  EXPECT_TRUE(rejects(R"({"__metadata__":"pt"})", {},
                      {"\"__metadata__\" must be an object of strings", "the string \"pt\""}));
  EXPECT_TRUE(rejects(R"({"__metadata__":[]})", {}, {"\"__metadata__\" must be an object"}));
  EXPECT_TRUE(rejects(R"({"__metadata__":{"a":"x","b":1}})", {},
                      {"value for key \"b\" must be a string", "the integer 1"}));
  EXPECT_TRUE(rejects(R"({"__metadata__":{"a":{"x":"y"}}})", {},
                      {"value for key \"a\"", "an object of 1 entries"}));
}

TEST(io_SafetensorsRead, DuplicateNames) {
  const std::string e = entry("F32", "[1]", 0, 4);
  EXPECT_TRUE(rejects("{\"w\":" + e + ",\"w\":" + e + "}", zeros(4), {"duplicate key \"w\""}));
  EXPECT_TRUE(rejects(R"({"w":{"dtype":"F32","dtype":"I8","shape":[1],"data_offsets":[0,4]}})",
                      zeros(4), {"duplicate key \"dtype\""}));
  EXPECT_TRUE(rejects(R"({"__metadata__":{"a":"1","a":"2"}})", {}, {"duplicate key \"a\""}));
  EXPECT_TRUE(
      rejects(R"({"__metadata__":{},"__metadata__":{}})", {}, {"duplicate key \"__metadata__\""}));
}

TEST(io_SafetensorsRead, LongNamesAreCutInMessages) {
  const std::string name(5000, 'x');
  const auto image = make_image("{\"" + name + "\":7}", {});
  try {
    parse(image);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kBadFormat);
    EXPECT_LT(e.message().size(), 400u) << e.message();
    EXPECT_NE(e.message().find("(5000 bytes)"), std::string::npos) << e.message();
  }
}

// --- files on disk ----------------------------------------------------------------------------

TEST(io_SafetensorsFileOpen, MissingFileIsNotFound) {
  TempDir dir;
  const std::string p = dir.file("absent.safetensors");
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(p); }, Status::kNotFound, {p}));
  const std::string under_file = dir.file("absent/x.safetensors");
  EXPECT_TRUE(
      throws_error([&] { SafetensorsFile::open(under_file); }, Status::kNotFound, {under_file}));
}

TEST(io_SafetensorsFileOpen, DirectoryIsIoError) {
  TempDir dir;
  const std::string p = dir.path().string();
  EXPECT_TRUE(
      throws_error([&] { SafetensorsFile::open(p); }, Status::kIoError, {p, "is a directory"}));
}

TEST(io_SafetensorsFileOpen, UnreadableIsIoError) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: file permissions are not enforced";
  TempDir dir;
  const std::string p = dir.file("locked.safetensors");
  write_safetensors(p, {});
  ASSERT_EQ(::chmod(p.c_str(), 0), 0);
  EXPECT_TRUE(
      throws_error([&] { SafetensorsFile::open(p); }, Status::kIoError, {p, "Permission denied"}));
}

TEST(io_SafetensorsFileOpen, NonRegularFileIsIoError) {
  TempDir dir;
  const std::string fifo = dir.file("pipe.safetensors");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(fifo); }, Status::kIoError,
                           {fifo, "not a regular file"}));
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open("/dev/null"); }, Status::kIoError,
                           {"/dev/null", "not a regular file"}));
}

TEST(io_SafetensorsFileOpen, EmptyFileIsBadFormat) {
  TempDir dir;
  const std::string p = dir.file("empty.safetensors");
  testing::write_bytes(p, {});
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(p); }, Status::kBadFormat, {p, "0 bytes"}));
}

TEST(io_SafetensorsFileOpen, BadHeaderNamesPath) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  testing::write_bytes(p, make_image("{\"w\":" + entry("F32", "[3]", 0, 8) + "}", zeros(8)));
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(p); }, Status::kBadFormat,
                           {p, "\"w\"", "needs 12"}));
}

TEST(io_SafetensorsFileOpen, MapsHandBuiltFileInPlace) {
  TempDir dir;
  const std::string p = dir.file("x.safetensors");
  std::vector<uint8_t> data(6);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(10 + i);
  testing::write_bytes(p, make_image("{\"a\":" + entry("U8", "[2]", 0, 2) +
                                         ",\"b\":" + entry("U16", "[2]", 2, 6) + "}",
                                     data));
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.file_size(), testing::read_bytes(p).size());
  const TensorInfo* b = f.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(f.data(*b), f.data(*b) + b->nbytes()),
            (std::vector<uint8_t>{12, 13, 14, 15}));

  // Moves transfer the mapping; the moved-to object reads the same bytes.
  SafetensorsFile g = std::move(f);
  EXPECT_EQ(g.data(*g.find("a"))[1], 11);
  auto h = SafetensorsFile::open(p);
  h = std::move(g);
  EXPECT_EQ(h.data(*h.find("b"))[0], 12);
  EXPECT_EQ(h.tensors().size(), 2u);
}

}  // namespace
}  // namespace slidesparse
