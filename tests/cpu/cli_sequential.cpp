// `calibrate --sequential wanda|sparsegpt --pattern P` through the CLI on tiny random Llama models.
//
// The oracle is the definition of block-sequential calibration, checked exactly: layer l's
// statistics must be those of the model whose layers 0..l-1 are pruned. Pruning the dense model
// with the sequential file gives exactly that model (P), so a plain (one-pass) calibration of P must
// reproduce, bit for bit, the sequential statistics of every projection whose input does not pass
// through layer l's own pruned weights: q/k/v of every layer, and all of layer 0 against the dense
// model. Layer 1's statistics must differ from the dense model's (the test would fail if the
// sequential pass did not prune between layers). Bad inputs: exit codes and messages, no output.
#include <gtest/gtest.h>

#include "cpu/cli_util.hpp"
#include "cpu/model_test_util.hpp"

namespace slidesparse::clitest {
namespace {

using testing::TinyModel;
using testing::TinyShape;

struct Fixture {
  TempDir dir;
  TinyShape s;
  TinyModel m;
  std::string model, ids_path;
  Fixture() {
    // intermediate 52: down_proj's k ends in a partial 6:8 group; 3 layers: layer 2 sees two pruned ones.
    s.layers = 3, s.hidden = 32, s.heads = 2, s.kv_heads = 1, s.intermediate = 52, s.vocab = 64;
    m = testing::make_tiny_model(s, 23, DType::kBF16);
    model = dir.file("m");
    fs::create_directories(model);
    testing::write_tiny_model(m, model, DType::kBF16);
    ids_path = dir.file("calib.bin");
    write_ids(ids_path, random_ids(70, s.vocab, 9));
  }
  CliResult calibrate(const std::string& model_dir, const std::string& out, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"calibrate", "--model", model_dir, "--ids", ids_path, "--ctx", "32", "-o", out,
                                     "--json", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  }
};

const char* const kQkv[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
const char* const kAll[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

std::string proj(int layer, const char* name) { return "model.layers." + std::to_string(layer) + "." + name; }

void expect_same_bytes(const std::map<std::string, Loaded>& a, const std::map<std::string, Loaded>& b,
                       const std::string& tensor) {
  ASSERT_TRUE(a.count(tensor)) << tensor;
  ASSERT_TRUE(b.count(tensor)) << tensor;
  EXPECT_EQ(a.at(tensor).bytes, b.at(tensor).bytes) << tensor;
}

// method: "wanda" (norms) or "sparsegpt" (norms + Hessians).
void check_sequential(const std::string& method, const std::string& pattern) {
  Fixture fx;
  const std::string seq = fx.dir.file("seq.safetensors");
  auto r = fx.calibrate(fx.model, seq, {"--sequential", method, "--pattern", pattern});
  ASSERT_EQ(r.code, 0) << r;
  const json j = r.out_json();
  EXPECT_EQ(j["sequential"]["method"], method);
  EXPECT_EQ(j["sequential"]["pattern"], pattern);
  EXPECT_EQ(j["tensors"].get<int64_t>(), (method == "sparsegpt" ? 2 : 1) * 7 * fx.s.layers);

  const std::string pruned = fx.dir.file("pruned");
  r = run_cli({"prune", fx.model, pruned, "--pattern", pattern, "--method", method, "--calib", seq, "-q"});
  ASSERT_EQ(r.code, 0) << r;
  ASSERT_EQ(run_cli({"verify", pruned, "-q"}).code, 0);

  const bool hess = method == "sparsegpt";
  const std::string again = fx.dir.file("again.safetensors"), dense = fx.dir.file("dense.safetensors");
  std::vector<std::string> extra;
  if (hess) extra.push_back("--hessian");
  ASSERT_EQ(fx.calibrate(pruned, again, extra).code, 0);
  ASSERT_EQ(fx.calibrate(fx.model, dense, extra).code, 0);
  const auto s = load_file(seq), p = load_file(again), d = load_file(dense);

  for (int l = 0; l < fx.s.layers; ++l)
    for (const char* name : kQkv) {
      expect_same_bytes(s, p, proj(l, name) + ".input_norm");
      if (hess) expect_same_bytes(s, p, proj(l, name) + ".input_hessian");
    }
  for (const char* name : kAll) {
    expect_same_bytes(s, d, proj(0, name) + ".input_norm");
    if (hess) expect_same_bytes(s, d, proj(0, name) + ".input_hessian");
  }
  // Layer 1 sees layer 0 pruned: its inputs are not the dense model's.
  for (const char* name : kAll) EXPECT_NE(s.at(proj(1, name) + ".input_norm").bytes, d.at(proj(1, name) + ".input_norm").bytes) << name;
  // ... and o_proj of layer 1 is observed with layer 1's q/k/v still dense: it is not the pruned
  // model's statistic either (block-sequential, not per projection).
  EXPECT_NE(s.at(proj(1, "self_attn.o_proj") + ".input_norm").bytes, p.at(proj(1, "self_attn.o_proj") + ".input_norm").bytes);
}

TEST(CliSequential, SparseGptStatisticsAreThoseOfThePrunedModel) { check_sequential("sparsegpt", "6:8"); }
TEST(CliSequential, WandaStatisticsAreThoseOfThePrunedModel) { check_sequential("wanda", "4:6"); }

TEST(CliSequential, BadInputs) {
  Fixture fx;
  const std::string out = fx.dir.file("out.safetensors");
  struct Case {
    std::vector<std::string> extra;
    int code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"--sequential", "magnitude", "--pattern", "6:8"}, 2, "not one of: wanda, sparsegpt"},
      {{"--sequential", "obs", "--pattern", "6:8"}, 2, "not one of: wanda, sparsegpt"},
      {{"--sequential", "wanda"}, 2, "needs --pattern"},
      {{"--sequential", "wanda", "--pattern", "5:8"}, 2, "5:8"},
      {{"--sequential", "sparsegpt", "--pattern", "6:8", "--damp", "-1"}, 2, "--damp"},
  };
  for (const Case& c : cases) {
    const auto r = fx.calibrate(fx.model, out, c.extra);
    EXPECT_EQ(r.code, c.code) << r;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r;
    EXPECT_FALSE(fs::exists(out)) << r;
  }

  // A quantized checkpoint has no float projections to prune between layers.
  const std::string i8 = fx.dir.file("i8");
  ASSERT_EQ(run_cli({"prune", fx.model, i8, "--precision", "int8", "-q"}).code, 0);
  auto r = fx.calibrate(i8, out, {"--sequential", "wanda", "--pattern", "6:8"});
  EXPECT_EQ(r.code, 8) << r;
  EXPECT_NE(r.err.find("float projections"), std::string::npos) << r;
  EXPECT_FALSE(fs::exists(out));

  // prune refuses a sequential file for another method, pattern or damp.
  ASSERT_EQ(fx.calibrate(fx.model, out, {"--sequential", "sparsegpt", "--pattern", "6:8"}).code, 0);
  const std::vector<std::vector<std::string>> mismatches = {
      {"--method", "wanda", "--pattern", "6:8"},
      {"--method", "sparsegpt", "--pattern", "2:4"},
      {"--method", "sparsegpt", "--pattern", "6:8", "--damp", "0.1"},
  };
  for (const auto& m : mismatches) {
    std::vector<std::string> args = {"prune", fx.model, fx.dir.file("bad"), "--calib", out};
    args.insert(args.end(), m.begin(), m.end());
    r = run_cli(args);
    EXPECT_EQ(r.code, 2) << r;
    EXPECT_NE(r.err.find("sequentially"), std::string::npos) << r;
    EXPECT_FALSE(fs::exists(fx.dir.file("bad")));
  }
  EXPECT_EQ(run_cli({"prune", fx.model, fx.dir.file("ok"), "--calib", out, "--method", "sparsegpt", "-q"}).code, 0);
}

}  // namespace
}  // namespace slidesparse::clitest
