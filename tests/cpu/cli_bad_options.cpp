// Bad command lines and unusable data: invalid patterns, methods, precisions and regexes; missing
// inputs; existing outputs; output == input; wanda calibration problems; non-finite weights; a
// dense checkpoint given to verify/slide; and conversions that fail midway. Every case checks
// the exit code, a stderr fragment naming the problem, and that nothing was left behind.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

constexpr int kExitUsage = 2, kExitNotFound = 3, kExitBadFormat = 5, kExitInvalidData = 6, kExitExists = 7,
              kExitUnsupported = 8;
constexpr uint32_t kSeed = 4242;

const std::string kQ = "model.layers.0.self_attn.q_proj.weight";
const std::string kK = "model.layers.0.self_attn.k_proj.weight";
const std::string kDown = "model.layers.0.mlp.down_proj.weight";

// A small dense f32 checkpoint with three default targets and three tensors that are not.
void write_dense(const std::string& path, uint32_t seed = kSeed) {
  std::mt19937 rng(seed);
  write_safetensors(path, {f32_tensor("model.embed_tokens.weight", {6, 16}, small_ints(rng, 96)),
                           f32_tensor("model.layers.0.input_layernorm.weight", {16}, small_ints(rng, 16)),
                           f32_tensor(kQ, {4, 16}, small_ints(rng, 64)),
                           f32_tensor(kK, {2, 16}, small_ints(rng, 32)),
                           f32_tensor(kDown, {16, 12}, small_ints(rng, 192)),
                           f32_tensor("lm_head.weight", {6, 16}, small_ints(rng, 96))},
                    {{"format", "pt"}});
}

void expect_error(const CliResult& r, int code, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.code, code) << r;
  EXPECT_NE(r.err.find("slidesparse: error:"), std::string::npos) << r;
  for (const auto& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << "wanted \"" << f << "\"\n" << r;
}

// ---- pattern / method / precision / regex ---------------------------------------------------

class cli_InvalidPattern : public ::testing::TestWithParam<std::string> {};

TEST_P(cli_InvalidPattern, Exit2ListsValidExamples) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors");
  write_dense(in);
  const CliResult r = run_cli({"prune", "--pattern", GetParam(), in, dir.file("out.safetensors")});
  expect_error(r, kExitUsage, {"'" + GetParam() + "'", "2:4, 4:6, 6:8"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
}
INSTANTIATE_TEST_SUITE_P(Patterns, cli_InvalidPattern,
                         ::testing::Values("3:4", "6:9", "abc", "1:2", "32:34", "0:2", "6:8:10", "06:8", "-2:4", ""),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string s = "p" + std::to_string(i.index);
                           return s;
                         });

TEST(cli_BadOption, UnknownMethodAndPrecision) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  write_dense(in);
  expect_error(run_cli({"prune", "--method", "obc", in, out}), kExitUsage,
               {"--method 'obc'", "magnitude, wanda, sparsegpt"});
  expect_error(run_cli({"prune", "--precision", "int4", in, out}), kExitUsage, {"--precision 'int4'", "keep, int8, fp8"});
  expect_error(run_cli({"prune", "--precision", "INT8", in, out}), kExitUsage, {"--precision 'INT8'"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
}

TEST(cli_BadOption, InvalidRegex) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  write_dense(in);
  expect_error(run_cli({"prune", "--include", "q_proj(", in, out}), kExitUsage,
               {"invalid --include regular expression 'q_proj('"});
  expect_error(run_cli({"prune", "--exclude", "[a-", in, out}), kExitUsage, {"invalid --exclude regular expression"});
  expect_error(run_cli({"prune", "--include", "no_such_tensor", in, out}), kExitUsage, {"no tensor", "was selected"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
}

TEST(cli_BadOption, CommandLineErrorsExit2) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors");
  write_dense(in);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"frobnicate"},
           {"prune", in},
           {"prune", in, dir.file("o"), "--no-such-flag"},
           {"prune", in, dir.file("o"), "--threads", "-1"},
           {"verify"},
           {"info", in, "extra-positional"},
           {"synth", dir.file("s.safetensors"), "--hidden", "abc"},
       }) {
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.code, kExitUsage) << r;
    EXPECT_FALSE(r.err.empty()) << r;
  }
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
}

TEST(cli_BadOption, SynthInvalidShapeOrDtype) {
  TempDir dir;
  expect_error(run_cli({"synth", dir.file("s.safetensors"), "--dtype", "f64"}), kExitUsage, {"--dtype 'f64'"});
  expect_error(run_cli({"synth", dir.file("s.safetensors"), "--hidden", "0"}), kExitUsage, {"invalid shape"});
  expect_error(run_cli({"synth", dir.file("s.safetensors"), "--hidden", "30"}), kExitUsage, {"divisible"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{});
}

// ---- missing inputs --------------------------------------------------------------------------

TEST(cli_MissingInput, EverySubcommandExit3) {
  TempDir dir;
  const std::string missing = dir.file("nope.safetensors");
  const std::string missing_dir = dir.file("no_dir");
  for (const auto& args : std::vector<std::vector<std::string>>{{"prune", missing, dir.file("o.safetensors")},
                                                                {"slide", missing, dir.file("o.safetensors")},
                                                                {"verify", missing},
                                                                {"info", missing},
                                                                {"prune", missing_dir, dir.file("o")}}) {
    expect_error(run_cli(args), kExitNotFound, {args[1], "No such file"});
  }
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{});
}

TEST(cli_MissingInput, VerifyAgainstAndCalibMissing) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), pruned = dir.file("p.safetensors");
  write_dense(in);
  ASSERT_EQ(run_cli({"prune", in, pruned}).code, 0);
  expect_error(run_cli({"verify", pruned, "--against", dir.file("dense_missing.safetensors")}), kExitNotFound,
               {"dense_missing.safetensors"});
  expect_error(run_cli({"prune", "--method", "wanda", "--calib", dir.file("calib_missing.safetensors"), in,
                        dir.file("w.safetensors")}),
               kExitNotFound, {"calib_missing.safetensors"});
  // An empty directory is not a checkpoint either.
  const std::string empty = dir.sub("empty");
  expect_error(run_cli({"info", empty}), kExitNotFound, {"holds no"});
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"empty", "in.safetensors", "p.safetensors"}));
}

// ---- existing output / output == input -------------------------------------------------------

TEST(cli_ExistingOutput, FileRefusedThenForced) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors"), slid = dir.file("s.safetensors");
  write_dense(in);
  write_text(out, "precious");
  write_text(slid, "precious too");
  expect_error(run_cli({"prune", in, out}), kExitExists, {"already exists", "--force"});
  EXPECT_EQ(read_text(out), "precious");
  ASSERT_EQ(run_cli({"prune", "--force", in, out}).code, 0);
  const CliResult v = run_cli({"verify", out, "--against", in});
  EXPECT_EQ(v.code, 0) << v;

  expect_error(run_cli({"slide", out, slid}), kExitExists, {"already exists"});
  EXPECT_EQ(read_text(slid), "precious too");
  ASSERT_EQ(run_cli({"slide", "-f", out, slid}).code, 0);
  const CliResult v2 = run_cli({"verify", slid, "--against", in});
  EXPECT_EQ(v2.code, 0) << v2;

  expect_error(run_cli({"synth", in}), kExitExists, {"already exists"});
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{});
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"in.safetensors", "out.safetensors", "s.safetensors"}));
}

TEST(cli_ExistingOutput, DirectoryRefusedThenForced) {
  TempDir dir;
  const std::string in = dir.file("model"), out = dir.file("pruned");
  ASSERT_EQ(run_cli({"synth", in, "--shards", "2", "--layers", "1", "--hidden", "32", "--intermediate", "48",
                     "--vocab", "16"})
                .code,
            0);
  fs::create_directories(out);
  write_text(out + "/old.txt", "old");
  expect_error(run_cli({"prune", in, out}), kExitExists, {"already exists"});
  EXPECT_EQ(read_text(out + "/old.txt"), "old");
  const CliResult r = run_cli({"prune", "--force", in, out});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_FALSE(fs::exists(out + "/old.txt")) << "the old directory is replaced, not merged into";
  const CliResult v = run_cli({"verify", out, "--against", in});
  EXPECT_EQ(v.code, 0) << v;
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{}) << "staging or .old- left behind";
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"model", "pruned"}));
}

TEST(cli_OutputIsInput, RefusedEvenWithForce) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors");
  write_dense(in);
  const auto before = read_bytes(in);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"prune", in, in},
           {"prune", "--force", in, in},
           {"prune", "--force", in, dir.path().string() + "/./in.safetensors"},
       }) {
    expect_error(run_cli(args), kExitUsage, {"is the input itself"});
  }
  const std::string pruned = dir.file("p.safetensors");
  ASSERT_EQ(run_cli({"prune", in, pruned}).code, 0);
  const auto pruned_before = read_bytes(pruned);
  expect_error(run_cli({"slide", "--force", pruned, pruned}), kExitUsage, {"is the input itself"});
  EXPECT_EQ(read_bytes(in), before);
  EXPECT_EQ(read_bytes(pruned), pruned_before);

  const std::string model = dir.file("model");
  ASSERT_EQ(run_cli({"synth", model, "--shards", "2", "--layers", "1", "--hidden", "32", "--intermediate", "48",
                     "--vocab", "16"})
                .code,
            0);
  const auto shard_before = read_bytes(model + "/model-00001-of-00002.safetensors");
  expect_error(run_cli({"prune", "--force", model, model}), kExitUsage, {"is the input itself"});
  expect_error(run_cli({"prune", "--force", model, model + "/"}), kExitUsage, {"is the input itself"});
  EXPECT_EQ(read_bytes(model + "/model-00001-of-00002.safetensors"), shard_before);
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{});
  EXPECT_EQ(hidden_entries(model), std::vector<std::string>{});
}

// The parent of OUT must exist (nothing is created above the output itself).
TEST(cli_OutputPath, ParentMissingExit3) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors");
  write_dense(in);
  expect_error(run_cli({"prune", in, dir.file("no/such/out.safetensors")}), kExitNotFound,
               {"output directory", "no/such", "does not exist"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
}

// "pruned/" names the directory "pruned", as it does for every shell tool.
TEST(cli_OutputPath, TrailingSlashNamesTheDirectory) {
  TempDir dir;
  const std::string model = dir.file("model"), out = dir.file("pruned"), slid = dir.file("slid");
  const CliResult sy = run_cli({"synth", model + "/", "--shards", "2", "--layers", "1", "--hidden", "32",
                                "--intermediate", "48", "--vocab", "16"});
  EXPECT_EQ(sy.code, 0) << sy;
  ASSERT_TRUE(fs::is_directory(model)) << sy;
  const CliResult p1 = run_cli({"prune", model + "/", out + "/"});
  EXPECT_EQ(p1.code, 0) << p1;
  const CliResult p2 = run_cli({"prune", "--force", model, out + "/"});
  EXPECT_EQ(p2.code, 0) << p2;
  const CliResult s1 = run_cli({"slide", out + "/", slid + "//"});
  EXPECT_EQ(s1.code, 0) << s1;
  const CliResult v = run_cli({"verify", slid + "/", "--against", model + "/"});
  EXPECT_EQ(v.code, 0) << v;
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"model", "pruned", "slid"}));
  for (const auto& d : {model, out, slid}) EXPECT_EQ(hidden_entries(d), std::vector<std::string>{}) << d;
}

// ---- wanda calibration ---------------------------------------------------------------------

TEST(cli_Wanda, NeedsCalib) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  write_dense(in);
  expect_error(run_cli({"prune", "--method", "wanda", in, out}), kExitUsage, {"--method wanda needs --calib"});
  // --calib without wanda is a usage error too (it would be silently ignored).
  const std::string calib = dir.file("calib.safetensors");
  write_safetensors(calib, {f32_tensor("model.layers.0.self_attn.q_proj.input_norm", {16}, std::vector<float>(16, 1))});
  expect_error(run_cli({"prune", "--calib", calib, in, out}), kExitUsage, {"--calib is only used by --method wanda"});
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"calib.safetensors", "in.safetensors"}));
}

TEST(cli_Wanda, CalibProblemsExit6) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors"), calib = dir.file("calib.safetensors");
  write_dense(in);
  const std::string nq = "model.layers.0.self_attn.q_proj.input_norm", nk = "model.layers.0.self_attn.k_proj.input_norm",
                    nd = "model.layers.0.mlp.down_proj.input_norm";
  const std::vector<float> ones16(16, 1.0f), ones12(12, 1.0f);
  auto run = [&] { return run_cli({"prune", "--method", "wanda", "--calib", calib, in, out}); };

  // k_proj's norms missing.
  write_safetensors(calib, {f32_tensor(nq, {16}, ones16), f32_tensor(nd, {12}, ones12)});
  expect_error(run(), kExitInvalidData, {"has no tensor '" + nk + "'", kK});
  // Wrong shape.
  write_safetensors(calib, {f32_tensor(nq, {16}, ones16), f32_tensor(nk, {15}, std::vector<float>(15, 1)),
                            f32_tensor(nd, {12}, ones12)});
  expect_error(run(), kExitInvalidData, {nk, "must be F32 [16]"});
  // Wrong dtype.
  OwnedTensor bf{{nk, DType::kBF16, {16}}, std::vector<uint8_t>(32, 0)};
  write_safetensors(calib, {f32_tensor(nq, {16}, ones16), bf, f32_tensor(nd, {12}, ones12)});
  expect_error(run(), kExitInvalidData, {nk, "must be F32 [16]"});
  // Negative and non-finite norms.
  for (float bad : {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> v = ones12;
    v[7] = bad;
    write_safetensors(calib, {f32_tensor(nq, {16}, ones16), f32_tensor(nk, {16}, ones16), f32_tensor(nd, {12}, v)});
    expect_error(run(), kExitInvalidData, {"column 7"});
  }
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"calib.safetensors", "in.safetensors"}));
}

// ---- non-finite weights ------------------------------------------------------------------------

struct NonFinite {
  std::string id;
  float value;
  std::string precision;
};
void PrintTo(const NonFinite& n, std::ostream* os) { *os << n.id; }
class cli_NonFinite : public ::testing::TestWithParam<NonFinite> {};

TEST_P(cli_NonFinite, PruneExit6NamesTensorRowColumn) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  write_dense(in);
  rewrite_file(in, in, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& q = find_tensor(ts, kQ);  // [4, 16]
    std::memcpy(q.bytes.data() + (2 * 16 + 11) * 4, &GetParam().value, 4);
  });
  const CliResult r = run_cli({"prune", "--precision", GetParam().precision, in, out});
  expect_error(r, kExitInvalidData, {kQ, "row 2", "column 11", "non-finite"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
}
INSTANTIATE_TEST_SUITE_P(Values, cli_NonFinite,
                         ::testing::Values(NonFinite{"NaN", std::numeric_limits<float>::quiet_NaN(), "keep"},
                                           NonFinite{"Inf", std::numeric_limits<float>::infinity(), "keep"},
                                           NonFinite{"NegInf", -std::numeric_limits<float>::infinity(), "keep"},
                                           NonFinite{"NaN_int8", std::numeric_limits<float>::quiet_NaN(), "int8"},
                                           NonFinite{"Inf_fp8", std::numeric_limits<float>::infinity(), "fp8"}),
                         [](const ::testing::TestParamInfo<NonFinite>& i) { return i.param.id; });

// A NaN in a tensor that is not pruned is simply copied.
TEST(cli_NonFiniteCopied, NaNOutsideTargetsIsCopied) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  write_dense(in);
  rewrite_file(in, in, [](std::vector<OwnedTensor>& ts) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(find_tensor(ts, "lm_head.weight").bytes.data() + 8, &nan, 4);
  });
  const CliResult r = run_cli({"prune", in, out});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(load_file(out)["lm_head.weight"].bytes, load_file(in)["lm_head.weight"].bytes);
}

// ---- failing midway --------------------------------------------------------------------------

// NaN only in the LAST target tensor of the LAST shard: earlier shards are already written when
// the error surfaces. Neither OUT nor a staging directory may remain; an existing OUT (with
// --force) must survive untouched.
TEST(cli_FailMidway, ShardedLeavesNoOutputAndNoStaging) {
  TempDir dir;
  const std::string in = dir.file("model"), out = dir.file("pruned");
  ASSERT_EQ(run_cli({"synth", in, "--shards", "2", "--layers", "2", "--hidden", "32", "--intermediate", "48",
                     "--vocab", "16", "--dtype", "f32"})
                .code,
            0);
  const std::string shard2 = in + "/model-00002-of-00002.safetensors";
  std::string last_target;
  {
    const auto f = SafetensorsFile::open(shard2);
    for (const auto& t : f.tensors())
      if (t.name.find("_proj.weight") != std::string::npos) last_target = t.name;
  }
  ASSERT_FALSE(last_target.empty());
  {
    // Make sure there is at least one target in shard 1, so work was done before the failure.
    const auto f = SafetensorsFile::open(in + "/model-00001-of-00002.safetensors");
    bool any = false;
    for (const auto& t : f.tensors()) any |= t.name.find("_proj.weight") != std::string::npos;
    ASSERT_TRUE(any);
  }
  rewrite_file(shard2, shard2, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& t = find_tensor(ts, last_target);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const int64_t k = t.spec.shape[1];
    std::memcpy(t.bytes.data() + size_t(3 * k + 5) * 4, &nan, 4);
  });
  const CliResult r = run_cli({"prune", in, out});
  expect_error(r, kExitInvalidData, {last_target, "row 3", "column 5"});
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"model"}) << "staging directory left behind";

  // Same failure over an existing output with --force: the old output is kept.
  fs::create_directories(out);
  write_text(out + "/keep.txt", "old");
  const CliResult r2 = run_cli({"prune", "--force", in, out});
  expect_error(r2, kExitInvalidData, {last_target});
  EXPECT_EQ(read_text(out + "/keep.txt"), "old");
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"model", "pruned"}));
  EXPECT_EQ(entries(out), std::vector<std::string>{"keep.txt"});
}

TEST(cli_FailMidway, SingleFileLeavesNoTemp) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  write_dense(in);
  rewrite_file(in, in, [&](std::vector<OwnedTensor>& ts) {  // kDown is the last target in file order
    const float inf = std::numeric_limits<float>::infinity();
    std::memcpy(find_tensor(ts, kDown).bytes.data() + (15 * 12 + 11) * 4, &inf, 4);
  });
  expect_error(run_cli({"prune", "--precision", "int8", in, out}), kExitInvalidData, {kDown, "row 15", "column 11"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});

  // An existing output file survives a failed --force run.
  write_text(out, "old");
  expect_error(run_cli({"prune", "--force", in, out}), kExitInvalidData, {kDown});
  EXPECT_EQ(read_text(out), "old");
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"in.safetensors", "out.safetensors"}));
}

// A file input whose OUT is an existing directory, with --force: a failed run must not destroy it.
TEST(cli_FailMidway, ForcedFileOverDirectoryKeepsDirectoryOnFailure) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out");
  write_dense(in);
  rewrite_file(in, in, [&](std::vector<OwnedTensor>& ts) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(find_tensor(ts, kDown).bytes.data(), &nan, 4);
  });
  fs::create_directories(out);
  write_text(out + "/keep.txt", "old");
  expect_error(run_cli({"prune", "--force", in, out}), kExitInvalidData, {kDown});
  EXPECT_TRUE(fs::exists(out + "/keep.txt")) << "a failed prune deleted the existing output directory";
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{});
}

// ---- pruned-checkpoint requirements ------------------------------------------------------------

TEST(cli_NotSlidesparse, VerifyAndSlideOfDenseExit5) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors");
  write_dense(in);
  expect_error(run_cli({"verify", in}), kExitBadFormat, {"no \"slidesparse\" metadata", "in.safetensors"});
  expect_error(run_cli({"slide", in, dir.file("s.safetensors")}), kExitBadFormat, {"no \"slidesparse\" metadata"});
  // Pruning an already pruned checkpoint is refused.
  const std::string p = dir.file("p.safetensors");
  ASSERT_EQ(run_cli({"prune", in, p}).code, 0);
  expect_error(run_cli({"prune", p, dir.file("pp.safetensors")}), kExitUsage, {"already a slidesparse checkpoint"});
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"in.safetensors", "p.safetensors"}));
}

TEST(cli_NotSlidesparse, BadMetadata) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), p = dir.file("p.safetensors"), bad = dir.file("bad.safetensors");
  write_dense(in);
  ASSERT_EQ(run_cli({"prune", in, p}).code, 0);
  const auto tensors = load_file(p);
  auto with_meta = [&](const std::string& meta) {
    std::vector<OwnedTensor> ts;
    const auto f = SafetensorsFile::open(p);
    for (const auto& t : f.tensors())
      ts.push_back({{t.name, t.dtype, t.shape}, std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes())});
    write_safetensors(bad, ts, {{"slidesparse", meta}});
  };
  json m = json::parse(load_metadata(p).at("slidesparse"));
  json v2 = m;
  v2["format"] = 2;
  with_meta(v2.dump());
  expect_error(run_cli({"verify", bad}), kExitUnsupported, {"format version 2"});
  with_meta("{not json");
  expect_error(run_cli({"verify", bad}), kExitBadFormat, {"slidesparse metadata is not valid JSON"});
  json badpat = m;
  badpat["pattern"] = "3:4";
  with_meta(badpat.dump());
  expect_error(run_cli({"slide", bad, dir.file("s.safetensors")}), kExitBadFormat, {"\"pattern\""});
  json badk = m;
  badk["layers"][kQ.substr(0, kQ.size() - 7)]["k"] = 17;
  with_meta(badk.dump());
  expect_error(run_cli({"slide", bad, dir.file("s.safetensors")}), kExitBadFormat, {kQ, "k = 17"});
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(dir.file("s.safetensors")));
}

// slide refuses a group denser than the pattern (a hand-edited "pruned" file), naming layer, row
// and group, and writes nothing.
TEST(cli_SlideTooDense, Exit6NamesLayerRowGroup) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), p = dir.file("p.safetensors"), s = dir.file("s.safetensors");
  write_dense(in);
  ASSERT_EQ(run_cli({"prune", in, p}).code, 0);
  // Row 3, group 1 (columns 8..15) of q_proj: make every element nonzero.
  rewrite_file(p, p, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& q = find_tensor(ts, kQ);
    for (int c = 8; c < 16; ++c) {
      const float one = 1.0f;
      std::memcpy(q.bytes.data() + (3 * 16 + c) * 4, &one, 4);
    }
  });
  expect_error(run_cli({"slide", p, s}), kExitInvalidData, {kQ, "row 3", "group 1"});
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"in.safetensors", "p.safetensors"}));
}

// An input that already holds P.weight_scale cannot take a new per-channel scale.
TEST(cli_ScaleClash, QuantizingOverExistingScaleExit6) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  std::mt19937 rng(3);
  write_safetensors(in, {f32_tensor(kQ, {4, 16}, small_ints(rng, 64)),
                         f32_tensor("model.layers.0.self_attn.q_proj.weight_scale", {4}, {1, 1, 1, 1})});
  expect_error(run_cli({"prune", "--precision", "fp8", in, out}), kExitInvalidData,
               {"model.layers.0.self_attn.q_proj.weight_scale", "clash"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"in.safetensors"});
  // With --precision keep there is no clash: the tensor is copied.
  const CliResult r = run_cli({"prune", in, out});
  EXPECT_EQ(r.code, 0) << r;
}

// A valid file with no tensors: info works, prune has nothing to select, verify has no metadata.
TEST(cli_EmptyCheckpoint, NoTensors) {
  TempDir dir;
  const std::string in = dir.file("empty.safetensors");
  write_bytes(in, make_image("{}", {}));
  const CliResult i = run_cli({"info", "--json", in});
  EXPECT_EQ(i.code, 0) << i;
  EXPECT_EQ(json::parse(i.out)["num_tensors"], 0);
  expect_error(run_cli({"prune", in, dir.file("o.safetensors")}), kExitUsage, {"no tensor"});
  expect_error(run_cli({"verify", in}), kExitBadFormat, {"no \"slidesparse\" metadata"});
  EXPECT_EQ(entries(dir.path().string()), std::vector<std::string>{"empty.safetensors"});
}

// --json on failure: stdout carries {"error": {"status", "message"}}.
TEST(cli_JsonError, ErrorObjectOnStdout) {
  TempDir dir;
  const CliResult r = run_cli({"info", "--json", dir.file("missing.safetensors")});
  EXPECT_EQ(r.code, kExitNotFound) << r;
  const json j = json::parse(r.out);
  ASSERT_TRUE(j.contains("error")) << r;
  EXPECT_TRUE(j["error"]["status"].is_string());
  EXPECT_NE(j["error"]["message"].get<std::string>().find("missing.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace slidesparse::clitest
