// Malformed safetensors files, hand-built byte by byte, fed to every subcommand that reads a
// checkpoint (prune, slide, verify, info, and verify --against). Each case checks exit code 5, a
// stderr fragment naming the problem and the file, and that nothing -- no output, no hidden
// temporary -- was left in the output directory.
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

constexpr int kExitBadFormat = 5;
const std::string kName = "model.layers.0.self_attn.q_proj.weight";  // a default prune target

std::vector<uint8_t> filler(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(0x3f + i % 3);  // nonzero, finite-looking bytes
  return v;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

struct Malformed {
  std::string id;
  std::function<std::vector<uint8_t>()> bytes;
  std::string fragment;  // what stderr must say
};

std::vector<Malformed> malformed_cases() {
  const std::string ok = entry(kName, "F32", "[2,8]", "[0,64]");
  return {
      {"Empty", [] { return std::vector<uint8_t>{}; }, "shorter than the 8-byte header length"},
      {"ShorterThanLength", [] { return std::vector<uint8_t>{1, 0, 0}; }, "file is 3 bytes"},
      {"Truncated", [=] { return make_image("{" + ok + "}", filler(40)); },
       "past the end of the 40-byte data buffer"},
      {"HeaderLengthPastEnd", [=] { return make_image("{" + ok + "}", filler(64), 5000); },
       "header length 5000 runs past the end"},
      {"HeaderLengthHuge", [=] { return make_image("{}", {}, uint64_t(1) << 40); }, "exceeds the limit"},
      {"HeaderNotJson", [] { return make_image("{\"a\": [1, 2", {}); }, "header is not valid JSON"},
      {"HeaderNotObject", [] { return make_image("[1,2,3]", {}); }, "header must be a JSON object"},
      {"OffsetsOutOfRange", [=] { return make_image("{" + entry(kName, "F32", "[2,8]", "[64,128]") + "}", filler(64)); },
       "data_offsets [64, 128] past the end of the 64-byte data buffer"},
      {"OffsetsReversed", [=] { return make_image("{" + entry(kName, "F32", "[2,8]", "[64,0]") + "}", filler(64)); },
       "data_offsets reversed"},
      {"Overlapping",
       [=] {
         return make_image("{" + ok + "," + entry("model.layers.0.self_attn.k_proj.weight", "F32", "[2,8]", "[32,96]") + "}",
                           filler(96));
       },
       "overlaps"},
      {"Hole",
       [=] {
         return make_image("{" + ok + "," + entry("model.layers.0.self_attn.k_proj.weight", "F32", "[2,8]", "[72,136]") + "}",
                           filler(136));
       },
       "hole of 8 bytes"},
      {"TrailingBytes", [=] { return make_image("{" + ok + "}", filler(72)); }, "8 trailing bytes"},
      {"ShapeByteSizeMismatch", [=] { return make_image("{" + entry(kName, "F32", "[2,8]", "[0,60]") + "}", filler(60)); },
       "hold 60 bytes but shape [2, 8] of F32 needs 64"},
      {"UnknownDtype", [=] { return make_image("{" + entry(kName, "F33", "[2,8]", "[0,64]") + "}", filler(64)); },
       "unknown dtype"},
      {"NegativeShape", [=] { return make_image("{" + entry(kName, "F32", "[-2,8]", "[0,64]") + "}", filler(64)); },
       "negative shape dim -2"},
      {"ShapeNotIntegers", [=] { return make_image("{" + entry(kName, "F32", "[2.5,8]", "[0,64]") + "}", filler(64)); },
       "\"shape\" must be an array of integers"},
      {"DuplicateName", [=] { return make_image("{" + ok + "," + entry(kName, "F32", "[2,8]", "[64,128]") + "}", filler(128)); },
       "duplicate key"},
      {"MetadataNotString", [=] { return make_image("{\"__metadata__\":{\"format\":1}," + ok + "}", filler(64)); },
       "must be a string"},
      {"EntryMissingField", [=] { return make_image("{\"" + kName + "\":{\"dtype\":\"F32\",\"shape\":[2,8]}}", filler(64)); },
       "missing \"data_offsets\""},
  };
}

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.id; }

struct Case {
  Malformed m;
  std::string command;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.command << " " << c.m.id; }

class cli_MalformedInput : public ::testing::TestWithParam<Case> {};

// IN is malformed; every subcommand fails with exit 5 and writes nothing.
TEST_P(cli_MalformedInput, RejectedWithMessageAndNoOutput) {
  const Case& c = GetParam();
  TempDir dir;
  const std::string in_dir = dir.sub("in"), out_dir = dir.sub("out");
  const std::string in = in_dir + "/bad.safetensors", out = out_dir + "/o.safetensors";
  write_bytes(in, c.m.bytes());

  std::vector<std::string> args = {c.command, in};
  if (c.command == "prune" || c.command == "slide") args.push_back(out);
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.code, kExitBadFormat) << r;
  EXPECT_NE(r.err.find("slidesparse: error:"), std::string::npos) << r;
  EXPECT_NE(r.err.find(c.m.fragment), std::string::npos) << "wanted \"" << c.m.fragment << "\"\n" << r;
  EXPECT_NE(r.err.find("bad.safetensors"), std::string::npos) << "message should name the file\n" << r;
  EXPECT_EQ(entries(out_dir), std::vector<std::string>{}) << r;
  EXPECT_EQ(entries(in_dir), std::vector<std::string>{"bad.safetensors"}) << r;
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const auto& m : malformed_cases())
    for (const char* cmd : {"prune", "slide", "verify", "info"}) out.push_back({m, cmd});
  return out;
}
INSTANTIATE_TEST_SUITE_P(EveryReader, cli_MalformedInput, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.command + "_" + i.param.m.id; });

// The dense side of verify --against is read with the same validation.
class cli_MalformedAgainst : public ::testing::TestWithParam<Malformed> {};

TEST_P(cli_MalformedAgainst, VerifyAgainstRejected) {
  TempDir dir;
  const std::string good = dir.file("dense.safetensors"), pruned = dir.file("pruned.safetensors"),
                    bad = dir.file("bad.safetensors");
  std::mt19937 rng(7);
  write_safetensors(good, {f32_tensor(kName, {2, 8}, small_ints(rng, 16))});
  const CliResult p = run_cli({"prune", good, pruned});
  ASSERT_EQ(p.code, 0) << p;
  write_bytes(bad, GetParam().bytes());
  const CliResult r = run_cli({"verify", pruned, "--against", bad});
  EXPECT_EQ(r.code, kExitBadFormat) << r;
  EXPECT_NE(r.err.find(GetParam().fragment), std::string::npos) << r;
  EXPECT_NE(r.err.find("bad.safetensors"), std::string::npos) << r;
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{}) << r;
}
INSTANTIATE_TEST_SUITE_P(EveryClass, cli_MalformedAgainst, ::testing::ValuesIn(malformed_cases()),
                         [](const ::testing::TestParamInfo<Malformed>& i) { return i.param.id; });

// A malformed shard inside a Hugging Face directory: no OUT directory and no staging directory.
TEST(cli_MalformedDirectory, ShardMalformedLeavesNothing) {
  TempDir dir;
  const std::string in = dir.sub("model");
  ASSERT_EQ(run_cli({"synth", in, "--shards", "2", "--layers", "1", "--hidden", "32", "--intermediate", "48",
                     "--vocab", "16", "--force"})
                .code,
            0);
  const std::string shard2 = in + "/model-00002-of-00002.safetensors";
  std::vector<uint8_t> bytes = read_bytes(shard2);
  bytes.resize(bytes.size() - 4);  // data cut short
  write_bytes(shard2, bytes);
  for (const char* cmd : {"prune", "slide", "info", "verify"}) {
    SCOPED_TRACE(cmd);
    std::vector<std::string> args = {cmd, in};
    if (std::string(cmd) == "prune" || std::string(cmd) == "slide") args.push_back(dir.file("out"));
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.code, kExitBadFormat) << r;
    EXPECT_NE(r.err.find("model-00002-of-00002.safetensors"), std::string::npos) << r;
    EXPECT_NE(r.err.find("past the end"), std::string::npos) << r;
    EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"model"}) << r;
  }
}

// Index problems: a weight_map naming a missing shard is "not found" (3); a weight_map that is
// not an object, or a shard path escaping the directory, is malformed (5).
TEST(cli_MalformedDirectory, IndexProblems) {
  TempDir dir;
  const std::string in = dir.file("model");
  ASSERT_EQ(run_cli({"synth", in, "--shards", "2", "--layers", "1", "--hidden", "32", "--intermediate", "48",
                     "--vocab", "16"})
                .code,
            0);
  const std::string index_path = in + "/model.safetensors.index.json";
  const json index = json::parse(read_text(index_path));

  {
    const std::string shard2 = in + "/model-00002-of-00002.safetensors";
    const std::vector<uint8_t> keep = read_bytes(shard2);
    fs::remove(shard2);
    const CliResult r = run_cli({"prune", in, dir.file("out")});
    EXPECT_EQ(r.code, 3) << r;
    EXPECT_NE(r.err.find("model-00002-of-00002.safetensors"), std::string::npos) << r;
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r;
    write_bytes(shard2, keep);
  }
  {
    json bad = index;
    bad["weight_map"] = json::array({1, 2});
    write_text(index_path, bad.dump());
    const CliResult r = run_cli({"info", in});
    EXPECT_EQ(r.code, kExitBadFormat) << r;
    EXPECT_NE(r.err.find("\"weight_map\" must be an object"), std::string::npos) << r;
  }
  {
    json bad = index;
    bad["weight_map"]["lm_head.weight"] = "../escape.safetensors";
    write_text(index_path, bad.dump());
    const CliResult r = run_cli({"slide", in, dir.file("out")});
    EXPECT_EQ(r.code, kExitBadFormat) << r;
    EXPECT_NE(r.err.find("not a file name inside"), std::string::npos) << r;
  }
  {
    write_text(index_path, "{\"weight_map\": ");
    const CliResult r = run_cli({"verify", in});
    EXPECT_EQ(r.code, kExitBadFormat) << r;
    EXPECT_NE(r.err.find("is not valid JSON"), std::string::npos) << r;
  }
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"model"});
}

}  // namespace
}  // namespace slidesparse::clitest
