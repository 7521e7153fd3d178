// The command line itself: --help for every subcommand, --version, a missing subcommand, and the
// --json report of every subcommand (parses, carries the documented keys, values consistent with
// the files written).
#include <set>
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

struct Help {
  std::string command;
  std::vector<std::string> mentions;
};
void PrintTo(const Help& h, std::ostream* os) { *os << h.command; }
class cli_Help : public ::testing::TestWithParam<Help> {};

TEST_P(cli_Help, ExitsZeroAndListsOptions) {
  const CliResult r = run_cli({GetParam().command, "--help"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("Usage: slidesparse " + GetParam().command), std::string::npos) << r;
  for (const auto& m : GetParam().mentions) EXPECT_NE(r.out.find(m), std::string::npos) << "wanted " << m << "\n" << r;
  const CliResult h = run_cli({GetParam().command, "-h"});
  EXPECT_EQ(h.code, 0) << h;
  EXPECT_EQ(h.out, r.out);
}
INSTANTIATE_TEST_SUITE_P(
    Subcommands, cli_Help,
    ::testing::Values(Help{"prune", {"IN", "OUT", "--pattern", "--method", "--calib", "--precision", "--include",
                                     "--exclude", "--force", "--json", "--threads", "2:4, 4:6, 6:8", "lm_head"}},
                      Help{"slide", {"IN", "OUT", "--force", "--json", "--threads"}},
                      Help{"verify", {"FILE", "--against", "--json", "--threads"}},
                      Help{"info", {"FILE", "--json", "--verbose"}},
                      Help{"synth", {"OUT", "--layers", "--hidden", "--intermediate", "--vocab", "--dtype", "--seed",
                                     "--shards", "--force"}}),
    [](const ::testing::TestParamInfo<Help>& i) { return i.param.command; });

TEST(cli_Usage, TopLevelHelpVersionAndNoSubcommand) {
  const CliResult h = run_cli({"--help"});
  EXPECT_EQ(h.code, 0) << h;
  for (const char* s : {"prune", "slide", "verify", "info", "synth", "Exit codes"})
    EXPECT_NE(h.out.find(s), std::string::npos) << s << "\n" << h;
  const CliResult v = run_cli({"--version"});
  EXPECT_EQ(v.code, 0) << v;
  EXPECT_EQ(v.out.rfind("slidesparse ", 0), 0u) << v;
  const CliResult none = run_cli({});
  EXPECT_EQ(none.code, 2) << none;
  EXPECT_NE(none.err.find("subcommand"), std::string::npos) << none;
  const CliResult only_flags = run_cli({"--json"});
  EXPECT_EQ(only_flags.code, 2) << only_flags;
}

// ---- --json reports -----------------------------------------------------------------------------

void expect_keys(const json& j, const std::vector<std::string>& keys, const std::string& what) {
  ASSERT_TRUE(j.is_object()) << what;
  for (const auto& k : keys) EXPECT_TRUE(j.contains(k)) << what << " lacks \"" << k << "\": " << j.dump().substr(0, 400);
}

TEST(cli_Json, EverySubcommand) {
  TempDir dir;
  const std::string in = dir.file("m.safetensors"), p = dir.file("p.safetensors"), s = dir.file("s.safetensors");

  const CliResult sy = run_cli({"synth", "--json", in, "--layers", "1", "--hidden", "32", "--intermediate", "40",
                                "--vocab", "8", "--dtype", "f16"});
  ASSERT_EQ(sy.code, 0) << sy;
  const json sj = json::parse(sy.out);
  expect_keys(sj, {"command", "output", "layers", "hidden", "intermediate", "vocab", "dtype", "shards", "total_bytes",
                   "num_tensors", "seconds"},
              "synth");
  EXPECT_EQ(sj["command"], "synth");
  EXPECT_EQ(sj["num_tensors"], 12);
  const auto dense = load_file(in);
  EXPECT_EQ(dense.size(), 12u);
  uint64_t dense_bytes = 0;
  for (const auto& [name, t] : dense) {
    dense_bytes += t.bytes.size();
    EXPECT_EQ(t.dtype, DType::kF16) << name;
  }
  EXPECT_EQ(sj["total_bytes"].get<uint64_t>(), dense_bytes);

  const CliResult pr = run_cli({"prune", "--json", "--precision", "int8", in, p});
  ASSERT_EQ(pr.code, 0) << pr;
  EXPECT_TRUE(pr.err.empty()) << "no progress bar on a non-terminal\n" << pr;
  const json pj = json::parse(pr.out);
  expect_keys(pj, {"command", "input", "output", "pattern", "method", "precision", "layers", "skipped", "num_layers",
                   "params_total", "params_in_layers", "params_pruned", "output_bytes", "threads", "seconds"},
              "prune");
  EXPECT_EQ(pj["pattern"], "6:8");
  EXPECT_EQ(pj["method"], "magnitude");
  EXPECT_EQ(pj["precision"], "int8");
  EXPECT_EQ(pj["num_layers"], 7);
  ASSERT_EQ(pj["layers"].size(), 7u);
  int64_t pruned_sum = 0, in_layers = 0, zeros_added = 0;
  const auto pruned = load_file(p);
  for (const auto& l : pj["layers"]) {
    expect_keys(l, {"tensor", "shape", "dtype_in", "dtype_out", "pruned", "pruned_fraction"}, "prune layer");
    const std::string name = l["tensor"];
    EXPECT_EQ(l["dtype_in"], "f16") << name;
    EXPECT_EQ(l["dtype_out"], "i8") << name;
    EXPECT_EQ(l["shape"], json(dense.at(name).shape)) << name;
    pruned_sum += l["pruned"].get<int64_t>();
    in_layers += int64_t(dense.at(name).count());
    int64_t zeros = 0;
    for (size_t i = 0; i < pruned.at(name).count(); ++i)
      zeros += int64_t(pruned.at(name).is_zero(i)) - int64_t(dense.at(name).is_zero(i));
    zeros_added += zeros;
    EXPECT_DOUBLE_EQ(l["pruned_fraction"].get<double>(), double(l["pruned"].get<int64_t>()) / double(dense.at(name).count()));
  }
  EXPECT_EQ(pj["params_pruned"].get<int64_t>(), pruned_sum);
  // Every pruned value became zero (int8 may also round a small kept value to zero).
  EXPECT_GE(zeros_added, pruned_sum);
  EXPECT_GT(pruned_sum, 0);
  EXPECT_EQ(pj["params_in_layers"].get<int64_t>(), in_layers);
  int64_t total = 0;
  for (const auto& [name, t] : dense) total += int64_t(t.count());
  EXPECT_EQ(pj["params_total"].get<int64_t>(), total);
  uint64_t out_bytes = 0;
  for (const auto& [name, t] : pruned) out_bytes += t.bytes.size();
  EXPECT_EQ(pj["output_bytes"].get<uint64_t>(), out_bytes);
  EXPECT_GE(pj["seconds"].get<double>(), 0.0);
  EXPECT_GE(pj["threads"].get<int>(), 1);

  // With --precision keep the zeros added are exactly the pruned values.
  const CliResult pk = run_cli({"prune", "--json", in, dir.file("keep.safetensors")});
  ASSERT_EQ(pk.code, 0) << pk;
  const json pkj = json::parse(pk.out);
  const auto kept = load_file(dir.file("keep.safetensors"));
  int64_t keep_zeros = 0;
  for (const auto& l : pkj["layers"]) {
    const std::string name = l["tensor"];
    EXPECT_EQ(l["dtype_out"], "f16") << name;
    for (size_t i = 0; i < kept.at(name).count(); ++i)
      keep_zeros += int64_t(kept.at(name).is_zero(i)) - int64_t(dense.at(name).is_zero(i));
  }
  EXPECT_EQ(keep_zeros, pkj["params_pruned"].get<int64_t>());
  EXPECT_EQ(pkj["params_pruned"], pj["params_pruned"]);

  const CliResult sl = run_cli({"slide", "--json", p, s});
  ASSERT_EQ(sl.code, 0) << sl;
  const json lj = json::parse(sl.out);
  expect_keys(lj, {"command", "input", "output", "pattern", "layers", "num_layers", "output_bytes", "threads", "seconds"},
              "slide");
  ASSERT_EQ(lj["layers"].size(), 7u);
  for (const auto& l : lj["layers"]) {
    expect_keys(l, {"tensor", "shape", "k_slide", "dtype", "expansion"}, "slide layer");
    const int64_t k = l["shape"][1];
    EXPECT_EQ(l["k_slide"], expected_k_slide(4, k));
    EXPECT_EQ(l["dtype"], "i8");
    EXPECT_DOUBLE_EQ(l["expansion"].get<double>(), double(expected_k_slide(4, k)) / double(k));
  }

  const CliResult ve = run_cli({"verify", "--json", s, "--against", in});
  ASSERT_EQ(ve.code, 0) << ve;
  const json vj = json::parse(ve.out);
  expect_keys(vj, {"command", "path", "pattern", "method", "against", "compliant", "problems", "layers", "num_layers",
                   "seconds"},
              "verify");
  EXPECT_EQ(vj["compliant"], true);
  EXPECT_EQ(vj["problems"], json::array());
  ASSERT_EQ(vj["layers"].size(), 7u);
  for (const auto& l : vj["layers"]) {
    expect_keys(l, {"tensor", "shape", "dtype", "groups", "violating_groups", "sparsity", "pattern_ok", "slide", "against"},
                "verify layer");
    EXPECT_EQ(l["pattern_ok"], true);
    EXPECT_EQ(l["violating_groups"], 0);
    EXPECT_EQ(l["slide"]["twofour_ok"], true);
    EXPECT_EQ(l["slide"]["roundtrip_ok"], true);
    EXPECT_EQ(l["against"]["mismatches"], 0);
    EXPECT_EQ(l["against"]["over_pruned_groups"], 0);
  }

  const CliResult inf = run_cli({"info", "--json", s});
  ASSERT_EQ(inf.code, 0) << inf;
  const json ij = json::parse(inf.out);
  expect_keys(ij, {"command", "path", "kind", "shards", "metadata", "num_tensors", "params", "total_bytes", "tensors",
                   "layers"},
              "info");
  EXPECT_EQ(ij["kind"], "file");
  const auto slid = load_file(s);
  EXPECT_EQ(ij["num_tensors"].get<size_t>(), slid.size());
  ASSERT_EQ(ij["tensors"].size(), slid.size());
  for (const auto& t : ij["tensors"]) {
    expect_keys(t, {"name", "dtype", "shape", "bytes"}, "info tensor");
    const std::string name = t["name"];
    ASSERT_TRUE(slid.count(name)) << name;
    EXPECT_EQ(t["dtype"], dtype_token(slid.at(name).dtype)) << name;
    EXPECT_EQ(t["shape"], json(slid.at(name).shape)) << name;
    EXPECT_EQ(t["bytes"].get<size_t>(), slid.at(name).bytes.size()) << name;
  }
  ASSERT_EQ(ij["layers"].size(), 7u);
  for (const auto& l : ij["layers"]) {
    expect_keys(l, {"tensor", "sparsity", "pattern_ok"}, "info layer");
    EXPECT_EQ(l["pattern_ok"], true);
    EXPECT_NEAR(l["sparsity"].get<double>(), 0.25, 0.02);
  }
  ASSERT_TRUE(ij["metadata"].contains("slidesparse"));
  EXPECT_EQ(ij["metadata"]["slidesparse"]["format"], 1);
  EXPECT_EQ(ij["metadata"]["slidesparse"]["pattern"], "6:8");

  // info of a dense checkpoint: default targets as layers, no pattern verdict.
  const CliResult dinf = run_cli({"info", "--json", in});
  ASSERT_EQ(dinf.code, 0) << dinf;
  const json dj = json::parse(dinf.out);
  ASSERT_EQ(dj["layers"].size(), 7u);
  for (const auto& l : dj["layers"]) EXPECT_EQ(l["sparsity"], 0.0);
  EXPECT_FALSE(dj["metadata"].contains("slidesparse"));
}

// The text (non --json) output of each subcommand names its result; --verbose lists every layer.
TEST(cli_Text, TablesAndVerbose) {
  TempDir dir;
  const std::string in = dir.file("model"), p = dir.file("p"), s = dir.file("s");
  ASSERT_EQ(run_cli({"synth", in, "--shards", "2", "--layers", "2", "--hidden", "32", "--intermediate", "40",
                     "--vocab", "8"})
                .code,
            0);
  const CliResult pr = run_cli({"prune", "--pattern", "8:10", in, p});
  ASSERT_EQ(pr.code, 0) << pr;
  EXPECT_NE(pr.out.find("pruned 14 layers"), std::string::npos) << pr;
  EXPECT_NE(pr.out.find("2 more (use --verbose"), std::string::npos) << pr;
  const CliResult sl = run_cli({"slide", "--verbose", p, s});
  ASSERT_EQ(sl.code, 0) << sl;
  EXPECT_NE(sl.out.find("slid 14 layers (8:10)"), std::string::npos) << sl;
  EXPECT_EQ(sl.out.find("--verbose"), std::string::npos) << sl;
  for (const char* l : {"model.layers.1.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight"})
    EXPECT_NE(sl.out.find(l), std::string::npos) << l;
  const CliResult ve = run_cli({"verify", s, "--against", in});
  EXPECT_EQ(ve.code, 0) << ve;
  EXPECT_NE(ve.out.find("COMPLIANT: 14 layers"), std::string::npos) << ve;
  const CliResult inf = run_cli({"info", s});
  EXPECT_EQ(inf.code, 0) << inf;
  EXPECT_NE(inf.out.find("directory, 2 shards"), std::string::npos) << inf;
  EXPECT_NE(inf.out.find("pattern 8:10"), std::string::npos) << inf;
}

}  // namespace
}  // namespace slidesparse::clitest
