// Which tensors prune touches (default rule, --include, --exclude, skipped tensors) and how
// (magnitude vs wanda, kept positions worked out by hand).
#include <set>
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

std::string prefix_of(const std::string& weight) { return weight.substr(0, weight.size() - 7); }

std::set<std::string> metadata_layers(const std::string& file) {
  std::set<std::string> out;
  const json m = json::parse(load_metadata(file).at("slidesparse"));
  for (const auto& [k, v] : m["layers"].items()) out.insert(k + ".weight");
  return out;
}
std::set<std::string> report_layers(const CliResult& r) {
  std::set<std::string> out;
  const json j = r.out_json();
  for (const auto& l : j["layers"]) out.insert(l["tensor"].get<std::string>());
  return out;
}

// Checks that exactly `targets` changed (and are in metadata and the report); everything else
// is byte-identical to the input.
void expect_selection(const std::string& in, const std::string& out, const CliResult& r,
                      const std::set<std::string>& targets) {
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(report_layers(r), targets);
  EXPECT_EQ(metadata_layers(out), targets);
  const auto a = load_any(in), b = load_any(out);
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    if (targets.count(name)) {
      EXPECT_NE(b.at(name).bytes, t.bytes) << name << " should have been pruned";
    } else {
      EXPECT_EQ(b.at(name).bytes, t.bytes) << name << " must be copied byte for byte";
      EXPECT_EQ(b.at(name).shape, t.shape) << name;
    }
  }
}

struct Synth {
  TempDir dir;
  std::string in = dir.file("m.safetensors");
  std::set<std::string> projections, attention, mlp;
  Synth() {
    const CliResult r = run_cli({"synth", in, "--layers", "2", "--hidden", "32", "--intermediate", "40", "--vocab", "16"});
    EXPECT_EQ(r.code, 0) << r;
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      for (const char* a : {"q_proj", "k_proj", "v_proj", "o_proj"}) attention.insert(p + "self_attn." + a + ".weight");
      for (const char* m : {"gate_proj", "up_proj", "down_proj"}) mlp.insert(p + "mlp." + m + ".weight");
    }
    projections = attention;
    projections.insert(mlp.begin(), mlp.end());
  }
};

TEST(cli_Select, DefaultTargetsLeaveEmbeddingsNormsLmHeadUntouched) {
  Synth s;
  const std::string out = s.dir.file("p.safetensors");
  const CliResult r = run_cli({"prune", "--json", s.in, out});
  expect_selection(s.in, out, r, s.projections);
  const auto a = load_file(s.in), b = load_file(out);
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                           "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight"}) {
    ASSERT_TRUE(a.count(name)) << name;
    EXPECT_EQ(b.at(name).bytes, a.at(name).bytes) << name;
  }
  EXPECT_TRUE(r.out_json()["skipped"].empty());
}

TEST(cli_Select, IncludeReplacesTheDefaultRule) {
  Synth s;
  const std::string out = s.dir.file("p.safetensors");
  expect_selection(s.in, out, run_cli({"prune", "--json", "--include", "mlp\\.", s.in, out}), s.mlp);
  // lm_head is never a default target, but --include can name it.
  const std::string out2 = s.dir.file("p2.safetensors");
  expect_selection(s.in, out2, run_cli({"prune", "--json", "--include", "^lm_head\\.weight$", s.in, out2}),
                   {"lm_head.weight"});
}

TEST(cli_Select, ExcludeRemovesFromTheSelection) {
  Synth s;
  const std::string out = s.dir.file("p.safetensors");
  std::set<std::string> want = s.attention;
  want.erase("model.layers.0.self_attn.q_proj.weight");
  want.erase("model.layers.1.self_attn.q_proj.weight");
  expect_selection(s.in, out, run_cli({"prune", "--json", "--exclude", "mlp|q_proj", s.in, out}), want);
  // --include and --exclude together.
  const std::string out2 = s.dir.file("p2.safetensors");
  expect_selection(s.in, out2,
                   run_cli({"prune", "--json", "--include", "layers\\.1\\.", "--exclude", "norm|self_attn", s.in, out2}),
                   {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight",
                    "model.layers.1.mlp.down_proj.weight"});
}

TEST(cli_Select, IncludedButUnprunableIsReportedSkipped) {
  TempDir dir;
  const std::string in = dir.file("in.safetensors"), out = dir.file("out.safetensors");
  std::mt19937 rng(5);
  OwnedTensor ints{{"model.layers.0.ints_proj.weight", DType::kI32, {2, 8}}, std::vector<uint8_t>(64, 1)};
  write_safetensors(in, {f32_tensor("model.layers.0.input_layernorm.weight", {8}, small_ints(rng, 8)),
                         f32_tensor("model.layers.0.self_attn.q_proj.weight", {2, 8}, small_ints(rng, 16, 9, 0)),
                         f32_tensor("model.layers.0.self_attn.q_proj.bias", {2, 8}, small_ints(rng, 16, 9, 0)),
                         f32_tensor("model.layers.0.conv.weight", {2, 2, 4}, small_ints(rng, 16, 9, 0)),
                         f32_tensor("model.layers.0.empty_proj.weight", {0, 8}, {}), ints});
  const CliResult r = run_cli({"prune", "--json", "--include", "layers\\.0\\.", in, out});
  expect_selection(in, out, r, {"model.layers.0.self_attn.q_proj.weight"});
  std::map<std::string, std::string> skipped;
  const json report = r.out_json();
  for (const auto& s : report["skipped"]) skipped[s["tensor"].get<std::string>()] = s["reason"].get<std::string>();
  ASSERT_EQ(skipped.size(), 5u) << r;
  EXPECT_NE(skipped["model.layers.0.input_layernorm.weight"].find("1-D"), std::string::npos);
  EXPECT_NE(skipped["model.layers.0.self_attn.q_proj.bias"].find(".weight"), std::string::npos);
  EXPECT_NE(skipped["model.layers.0.conv.weight"].find("3-D"), std::string::npos);
  EXPECT_NE(skipped["model.layers.0.ints_proj.weight"].find("i32"), std::string::npos);
  EXPECT_NE(skipped["model.layers.0.empty_proj.weight"].find("empty"), std::string::npos);
  // The text report lists them too.
  const CliResult t = run_cli({"prune", "--force", "--include", "layers\\.0\\.", in, out});
  EXPECT_NE(t.out.find("skipped model.layers.0.input_layernorm.weight: 1-D"), std::string::npos) << t;
}

// ---- wanda ------------------------------------------------------------------------------------

// One 1x8 row, hand-worked. w = [8, -1, 2, 3, -4, 5, 6, 7].
//   magnitude 6:8 drops the two smallest |w|: columns 1 (-1) and 2 (2).
//   wanda with norms [0.1, 100, 100, 1, 1, 1, 1, 1]: scores [0.8, 100, 200, 3, 4, 5, 6, 7]
//     drops columns 0 and 3.
//   2:4, magnitude: groups [8,-1,2,3] keep 8,3; [-4,5,6,7] keep 6,7.
//   2:4, wanda: scores [0.8,100,200,3] keep columns 1,2; [4,5,6,7] keep 6,7.
// A second 1x8 layer of equal magnitudes checks the tie rule (lower column kept):
//   t = [1, -1, 1, -1, 2, 2, -2, 2] with norms all 1: 6:8 drops columns 2, 3 (the last of the
//   four 1s); 2:4 keeps columns 0, 1 and 4, 5.
struct Wanda {
  TempDir dir;
  std::string in = dir.file("in.safetensors"), calib = dir.file("calib.safetensors");
  const std::string q = "model.layers.0.self_attn.q_proj", t = "model.layers.0.self_attn.k_proj";
  Wanda() {
    write_safetensors(in, {f32_tensor(q + ".weight", {1, 8}, {8, -1, 2, 3, -4, 5, 6, 7}),
                           f32_tensor(t + ".weight", {1, 8}, {1, -1, 1, -1, 2, 2, -2, 2})});
    write_safetensors(calib, {f32_tensor(q + ".input_norm", {8}, {0.1f, 100, 100, 1, 1, 1, 1, 1}),
                              f32_tensor(t + ".input_norm", {8}, {1, 1, 1, 1, 1, 1, 1, 1})});
  }
  std::vector<double> run(const std::string& pattern, const std::string& method, const std::string& name) {
    const std::string out = dir.file(pattern.substr(0, pattern.find(':')) + method + ".safetensors");
    std::vector<std::string> args = {"prune", "--pattern", pattern, "--method", method, in, out};
    if (method == "wanda") args.insert(args.end(), {"--calib", calib});
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.code, 0) << r;
    const CliResult v = run_cli({"verify", out, "--against", in});
    EXPECT_EQ(v.code, 0) << v;
    EXPECT_EQ(json::parse(load_metadata(out).at("slidesparse"))["method"], method);
    return load_file(out).at(name + ".weight").values();
  }
};

TEST(cli_Wanda, DifferentChoiceThanMagnitude) {
  Wanda w;
  EXPECT_EQ(w.run("6:8", "magnitude", w.q), (std::vector<double>{8, 0, 0, 3, -4, 5, 6, 7}));
  EXPECT_EQ(w.run("6:8", "wanda", w.q), (std::vector<double>{0, -1, 2, 0, -4, 5, 6, 7}));
  EXPECT_EQ(w.run("2:4", "magnitude", w.q), (std::vector<double>{8, 0, 0, 3, 0, 0, 6, 7}));
  EXPECT_EQ(w.run("2:4", "wanda", w.q), (std::vector<double>{0, -1, 2, 0, 0, 0, 6, 7}));
}

TEST(cli_Wanda, TiesKeepTheLowerColumn) {
  Wanda w;
  EXPECT_EQ(w.run("6:8", "magnitude", w.t), (std::vector<double>{1, -1, 0, 0, 2, 2, -2, 2}));
  EXPECT_EQ(w.run("6:8", "wanda", w.t), (std::vector<double>{1, -1, 0, 0, 2, 2, -2, 2}));
  EXPECT_EQ(w.run("2:4", "wanda", w.t), (std::vector<double>{1, -1, 0, 0, 2, 2, 0, 0}));
}

// Wanda through the whole flow on a synth model with random calibration norms: the oracle
// (reference pruner with the same norms) agrees, and slide/verify pass.
TEST(cli_Wanda, SynthWithRandomNorms) {
  TempDir dir;
  const std::string in = dir.file("m.safetensors"), calib = dir.file("c.safetensors"), p = dir.file("p.safetensors"),
                    s = dir.file("s.safetensors");
  ASSERT_EQ(run_cli({"synth", in, "--layers", "1", "--hidden", "36", "--intermediate", "20", "--vocab", "8"}).code, 0);
  const auto dense = load_file(in);
  std::mt19937 rng(77);
  std::vector<OwnedTensor> norms;
  std::map<std::string, std::vector<double>> norm_values;
  for (const auto& [name, t] : dense) {
    if (name.find("_proj.weight") == std::string::npos) continue;
    std::vector<float> v(size_t(t.shape[1]));
    for (auto& x : v) x = float(rng() % 64) / 8.0f;  // includes zeros: those columns always lose
    norms.push_back(f32_tensor(prefix_of(name) + ".input_norm", {t.shape[1]}, v));
    norm_values[name] = std::vector<double>(v.begin(), v.end());
  }
  write_safetensors(calib, norms);
  const CliResult r = run_cli({"prune", "--method", "wanda", "--calib", calib, "--pattern", "4:6", in, p});
  ASSERT_EQ(r.code, 0) << r;
  ASSERT_EQ(run_cli({"slide", p, s}).code, 0);
  const CliResult v = run_cli({"verify", s, "--against", in});
  EXPECT_EQ(v.code, 0) << v;
  const auto slid = load_file(s);
  for (const auto& [name, nv] : norm_values)
    check_layer(dense, slid, {prefix_of(name), 3, "keep", true, false, &nv}, 9);
}

}  // namespace
}  // namespace slidesparse::clitest
