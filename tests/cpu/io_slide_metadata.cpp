// SlideMetadata (the __metadata__["slidesparse"] document): exact serialization, round trips, and
// every malformed field rejected naming the field and its value.
#include "cpu/io_util.hpp"
#include "slidesparse/checkpoint.hpp"

namespace slidesparse {
namespace {

using testing::throws_error;

constexpr const char* kWhat = "shard-7.safetensors";

SlideMetadata sample() {
  SlideMetadata m;
  m.pattern = Pattern::parse("6:8");
  m.method = "magnitude";
  m.layers["model.layers.0.mlp.up_proj"] = {4096, "bf16", 0, ""};
  m.layers["model.layers.0.mlp.down_proj"] = {11008, "e4m3", 16512, ""};
  return m;
}

TEST(io_SlideMetadata, ExactJson) {
  EXPECT_EQ(sample().to_json(),
            R"({"format":1,"pattern":"6:8","method":"magnitude","layers":{)"
            R"("model.layers.0.mlp.down_proj":{"k":11008,"precision":"e4m3","k_slide":16512},)"
            R"("model.layers.0.mlp.up_proj":{"k":4096,"precision":"bf16"}}})");
}

TEST(io_SlideMetadata, RoundTrip) {
  const SlideMetadata a = sample();
  const SlideMetadata b = SlideMetadata::from_json(a.to_json(), kWhat);
  EXPECT_EQ(b.format, kFormatVersion);
  EXPECT_EQ(b.pattern, a.pattern);
  EXPECT_EQ(b.method, a.method);
  ASSERT_EQ(b.layers.size(), a.layers.size());
  for (const auto& [name, l] : a.layers) {
    const LayerFormat& r = b.layers.at(name);
    EXPECT_EQ(r.k, l.k) << name;
    EXPECT_EQ(r.precision, l.precision) << name;
    EXPECT_EQ(r.k_slide, l.k_slide) << name;
  }
  // Every pattern of the family survives.
  for (int n = kMinN; n <= kMaxN; ++n) {
    SlideMetadata m;
    m.pattern = Pattern::from_n(n);
    EXPECT_EQ(SlideMetadata::from_json(m.to_json(), kWhat).pattern.n(), n);
  }
  // No layers, explicit k_slide 0.
  const auto e = SlideMetadata::from_json(
      R"({"format":1,"pattern":"2:4","method":"","layers":{"p":{"k":8,"precision":"f32","k_slide":0}}})",
      kWhat);
  EXPECT_EQ(e.layers.at("p").k_slide, 0);
}

TEST(io_SlideMetadata, ToJsonRejectsInvalidUtf8) {
  SlideMetadata m = sample();
  m.method = "bad\xff";
  EXPECT_TRUE(throws_error([&] { m.to_json(); }, Status::kInvalidArgument, {"not valid UTF-8"}));
}

::testing::AssertionResult bad(const std::string& json, std::initializer_list<std::string> parts,
                               Status status = Status::kBadFormat) {
  auto r = throws_error([&] { SlideMetadata::from_json(json, kWhat); }, status, {kWhat});
  if (!r) return r;
  return throws_error([&] { SlideMetadata::from_json(json, kWhat); }, status, parts);
}

std::string with_layer(const std::string& layer) {
  return R"({"format":1,"pattern":"6:8","method":"magnitude","layers":{"p":)" + layer + "}}";
}

// A ternary layer (prune --precision ternary): "quant" after "precision", kept by a round trip.
TEST(io_SlideMetadata, TernaryMarker) {
  SlideMetadata m = sample();
  m.layers["model.layers.0.mlp.gate_proj"] = {4096, "i8", 6144, kQuantTernary};
  const std::string j = m.to_json();
  EXPECT_NE(j.find(R"("model.layers.0.mlp.gate_proj":{"k":4096,"precision":"i8","quant":"ternary","k_slide":6144})"),
            std::string::npos)
      << j;
  const SlideMetadata b = SlideMetadata::from_json(j, kWhat);
  EXPECT_EQ(b.layers.at("model.layers.0.mlp.gate_proj").quant, "ternary");
  EXPECT_EQ(b.layers.at("model.layers.0.mlp.up_proj").quant, "");
  EXPECT_EQ(j.find("quant", j.find("up_proj")), std::string::npos) << "only ternary layers carry the key";
  EXPECT_TRUE(
      bad(with_layer(R"({"k":8,"precision":"i8","quant":"binary"})"), {"\"quant\" must be \"ternary\"", "\"binary\""}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8,"precision":"i8","quant":null})"), {"\"quant\" must be", "null"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8,"precision":"bf16","quant":"ternary"})"),
                  {"must have precision \"i8\"", "\"bf16\""}));
}

TEST(io_SlideMetadata, NotJsonOrNotObject) {
  EXPECT_TRUE(bad("{\"format\":", {"not valid JSON"}));
  EXPECT_TRUE(bad("[1]", {"must be a JSON object", "an array"}));
  EXPECT_TRUE(bad("", {"not valid JSON"}));
}

TEST(io_SlideMetadata, FormatVersion) {
  EXPECT_TRUE(bad(R"({"format":2,"pattern":"6:8","method":"m","layers":{}})",
                  {"version 2 is not supported", "reads version 1"}, Status::kUnsupported));
  // A future version is reported as such even when its other fields differ.
  EXPECT_TRUE(bad(R"({"format":3,"sparsity":{}})", {"version 3"}, Status::kUnsupported));
  EXPECT_TRUE(bad(R"({"format":"1","pattern":"6:8","method":"m","layers":{}})",
                  {"\"format\" must be an integer", "the string \"1\""}));
  EXPECT_TRUE(bad(R"({"format":1.0,"pattern":"6:8","method":"m","layers":{}})",
                  {"\"format\" must be an integer"}));
  EXPECT_TRUE(bad(R"({"pattern":"6:8","method":"m","layers":{}})", {"no \"format\""}));
}

TEST(io_SlideMetadata, MissingOrUnknownFields) {
  EXPECT_TRUE(bad(R"({"format":1,"method":"m","layers":{}})", {"no \"pattern\""}));
  EXPECT_TRUE(bad(R"({"format":1,"pattern":"6:8","layers":{}})", {"no \"method\""}));
  EXPECT_TRUE(bad(R"({"format":1,"pattern":"6:8","method":"m"})", {"no \"layers\""}));
  EXPECT_TRUE(bad(R"({"format":1,"pattern":"6:8","method":"m","layers":{},"x":1})",
                  {"unexpected key \"x\""}));
  EXPECT_TRUE(bad(R"({"format":1,"format":1,"pattern":"6:8","method":"m","layers":{}})",
                  {"duplicate key \"format\""}));
}

TEST(io_SlideMetadata, Pattern) {
  EXPECT_TRUE(
      bad(R"({"format":1,"pattern":"5:8","method":"m","layers":{}})", {"\"pattern\"", "5:8"}));
  EXPECT_TRUE(
      bad(R"({"format":1,"pattern":"34:36","method":"m","layers":{}})", {"\"pattern\"", "34:36"}));
  EXPECT_TRUE(bad(R"({"format":1,"pattern":8,"method":"m","layers":{}})",
                  {"\"pattern\" must be a string", "the integer 8"}));
}

TEST(io_SlideMetadata, Method) {
  EXPECT_TRUE(bad(R"({"format":1,"pattern":"6:8","method":null,"layers":{}})",
                  {"\"method\" must be a string", "null"}));
}

TEST(io_SlideMetadata, Layers) {
  EXPECT_TRUE(bad(R"({"format":1,"pattern":"6:8","method":"m","layers":[]})",
                  {"\"layers\" must be an object", "an array"}));
  EXPECT_TRUE(bad(with_layer("5"), {"layer \"p\" must be an object", "the integer 5"}));
  EXPECT_TRUE(bad(with_layer(R"({"precision":"bf16"})"), {"layer \"p\" has no \"k\""}));
  EXPECT_TRUE(bad(with_layer(R"({"k":0,"precision":"bf16"})"),
                  {"layer \"p\"", "positive integer", "the integer 0"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":-8,"precision":"bf16"})"), {"positive integer", "-8"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8.5,"precision":"bf16"})"), {"positive integer", "8.5"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":"8","precision":"bf16"})"), {"positive integer", "\"8\""}));
  EXPECT_TRUE(bad(with_layer(R"({"k":18446744073709551615,"precision":"bf16"})"),
                  {"positive integer", "18446744073709551615"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8})"), {"layer \"p\" has no \"precision\""}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8,"precision":7})"), {"\"precision\"", "the integer 7"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8,"precision":"BF16"})"),
                  {"\"precision\" must be a dtype token", "\"BF16\""}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8,"precision":"bf16","k_slide":-1})"),
                  {"\"k_slide\" must be a non-negative integer", "-1"}));
  EXPECT_TRUE(
      bad(with_layer(R"({"k":8,"precision":"bf16","k_slide":true})"), {"\"k_slide\"", "true"}));
  EXPECT_TRUE(bad(with_layer(R"({"k":8,"precision":"bf16","scale":1})"),
                  {"layer \"p\"", "unexpected key \"scale\""}));
  EXPECT_TRUE(
      bad(R"({"format":1,"pattern":"6:8","method":"m","layers":{"":{"k":8,"precision":"bf16"}}})",
          {"empty layer name"}));
}

}  // namespace
}  // namespace slidesparse
