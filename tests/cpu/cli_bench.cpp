// `slidesparse bench` and `slidesparse tune` on a machine without a usable GPU (tier 0): both
// subcommands exist and explain themselves (--help), reject bad options with the usage exit code and
// a message naming the option, and otherwise fail with the "unsupported" exit code and a message
// about CUDA (this build has no CUDA, or it has CUDA and the machine no device), leaving no output
// file behind. These tests assume no GPU is visible, as on CI; on a GPU machine the tier-1 scripts
// run the benchmarks themselves (scripts/gpu_all.sh).
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

constexpr int kExitUsage = 2, kExitUnsupported = 8;

void expect_error(const CliResult& r, int code, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.code, code) << r;
  EXPECT_NE(r.err.find("slidesparse: error:"), std::string::npos) << r;
  for (const auto& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << "wanted \"" << f << "\"\n" << r;
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(cli_Bench, HelpExplainsSuitesRecordsAndExitCodes) {
  const CliResult r = run_cli({"bench", "--help"});
  EXPECT_EQ(r.code, 0) << r;
  for (const char* s : {"Usage: slidesparse bench", "--suite", "kernel", "layer", "quant", "--precisions", "--models",
                        "--ms", "--patterns", "--native-kprime", "--sm90", "--policy", "--out", "--plan-cache", "--max-seconds",
                        "--reps", "--git-sha", "--json", "JSON Lines", "median", "L2", "same run", "Exit status",
                        "8 unsupported", "qwen2.5-7b", "llama3-8b"})
    EXPECT_NE(r.out.find(s), std::string::npos) << "wanted " << s << "\n" << r;
  const CliResult t = run_cli({"tune", "--help"});
  EXPECT_EQ(t.code, 0) << t;
  for (const char* s : {"Usage: slidesparse tune", "--cache", "--precisions", "--models", "--ms", "--patterns",
                        "--search-iters", "--force", "bucket", "cuSPARSELt", "Exit status"})
    EXPECT_NE(t.out.find(s), std::string::npos) << "wanted " << s << "\n" << t;
  const CliResult top = run_cli({"--help"});
  EXPECT_NE(top.out.find("bench"), std::string::npos) << top;
  EXPECT_NE(top.out.find("tune"), std::string::npos) << top;
}

// ---- option validation: exit 2 before anything else (also in a build without CUDA) ----------

struct BadOptions {
  std::vector<std::string> args;
  std::vector<std::string> fragments;
};
void PrintTo(const BadOptions& b, std::ostream* os) { *os << join(b.args); }
class cli_BenchBadOptions : public ::testing::TestWithParam<BadOptions> {};

TEST_P(cli_BenchBadOptions, Exit2NamesTheOption) {
  TempDir dir;
  const bool is_bench = GetParam().args[0] == "bench";
  const CliResult r = run_cli(is_bench ? cat(GetParam().args, {"--out", dir.file("bench.jsonl")}) : GetParam().args);
  expect_error(r, kExitUsage, GetParam().fragments);
  EXPECT_TRUE(entries(dir.path().string()).empty()) << r;
}
INSTANTIATE_TEST_SUITE_P(
    Bench, cli_BenchBadOptions,
    ::testing::Values(
        BadOptions{{"bench"}, {"--suite is required", "kernel, layer, quant"}},
        BadOptions{{"bench", "--suite", "gemm"}, {"--suite 'gemm'", "kernel, layer, quant"}},
        BadOptions{{"bench", "--suite", "layer", "--precisions", "f16"}, {"--precisions", "'f16'", "i8, e4m3, bf16"}},
        BadOptions{{"bench", "--suite", "quant", "--precisions", "bf16"}, {"'bf16'", "i8, e4m3"}},
        BadOptions{{"bench", "--suite", "kernel", "--precisions", "i4"}, {"'i4'"}},
        BadOptions{{"bench", "--suite", "kernel", "--models", "gpt-5"}, {"--models 'gpt-5'", "qwen2.5-7b"}},
        BadOptions{{"bench", "--suite", "layer", "--layers", "lm_head"}, {"--layers 'lm_head'", "gate_up"}},
        BadOptions{{"bench", "--suite", "kernel", "--ms", "0"}, {"--ms", "got 0"}},
        BadOptions{{"bench", "--suite", "kernel", "--patterns", "5:8"}, {"--patterns", "'5:8'"}},
        BadOptions{{"bench", "--suite", "layer", "--patterns", "2:4", "--native-kprime"},
                   {"--native-kprime", "slid pattern"}},
        BadOptions{{"bench", "--suite", "kernel", "--policy", "6:8"}, {"--policy", "layer suite"}},
        BadOptions{{"bench", "--suite", "quant", "--sm90"}, {"--sm90", "kernel and layer"}},
        BadOptions{{"bench", "--suite", "layer", "--policy", "3:4"}, {"--policy", "'3:4'"}},
        BadOptions{{"bench", "--suite", "layer", "--ks", "4096"}, {"--ks", "quant suite"}},
        BadOptions{{"bench", "--suite", "quant", "--models", "qwen2.5-7b"}, {"--models", "quant suite"}},
        BadOptions{{"bench", "--suite", "kernel", "--quick"}, {"--quick", "quant suite"}},
        BadOptions{{"bench", "--suite", "kernel", "--reps", "2"}, {"--reps", "[5, 100000]"}},
        BadOptions{{"bench", "--suite", "layer", "--search-iters", "0"}, {"--search-iters"}},
        BadOptions{{"bench", "--suite", "layer", "--max-seconds", "-1"}, {"--max-seconds"}},
        BadOptions{{"bench", "--suite", "layer", "--flush-mib", "-5"}, {"--flush-mib"}},
        BadOptions{{"bench", "--suite", "layer", "--flush-mode", "both"}, {"--flush-mode", "read or write"}},
        BadOptions{{"bench", "--suite", "layer", "--paired-ms", "-1"}, {"--paired-ms", "[0, 60000]"}},
        BadOptions{{"bench", "--suite", "load", "--ms", "16,64"}, {"--ms takes one value"}},
        BadOptions{{"bench", "--suite", "load", "--cpu-layers", "29"}, {"--cpu-layers 29", "28 decoder layers"}},
        BadOptions{{"bench", "--suite", "kernel", "--cpu-layers", "2"}, {"--cpu-layers", "load suite only"}},
        BadOptions{{"bench", "--suite", "load", "--patterns", "dense"}, {"--patterns", "sparse layers"}},
        BadOptions{{"bench", "--suite", "load", "--precisions", "f16"}, {"'f16'", "i8, e4m3, bf16"}},
        BadOptions{{"tune"}, {"--cache FILE is required"}},
        BadOptions{{"tune", "--cache", "c.json", "--patterns", "7:8"}, {"--patterns", "'7:8'"}},
        BadOptions{{"tune", "--cache", "c.json", "--ms", "100000"}, {"--ms", "65536"}},
        BadOptions{{"tune", "--cache", "c.json", "--precisions", "fp4"}, {"--precisions 'fp4'"}},
        BadOptions{{"tune", "--cache", "c.json", "--models", "nope"}, {"--models 'nope'"}}),
    [](const ::testing::TestParamInfo<BadOptions>& i) { return "case" + std::to_string(i.index); });

TEST(cli_Bench, NonNumericValueIsAUsageError) {
  const CliResult r = run_cli({"bench", "--suite", "kernel", "--ms", "lots"});
  EXPECT_EQ(r.code, kExitUsage) << r;
  const CliResult t = run_cli({"tune", "--cache", "c.json", "--search-iters", "many"});
  EXPECT_EQ(t.code, kExitUsage) << t;
}

// ---- valid options: "unsupported" (no CUDA in this build, or no device) -----------------------

class cli_BenchUnsupported : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(cli_BenchUnsupported, Exit8SaysCudaAndWritesNothing) {
  TempDir dir;
  std::vector<std::string> args = GetParam();
  const bool is_tune = args[0] == "tune";
  args = cat(args, is_tune ? std::vector<std::string>{"--cache", dir.file("plans.json")}
                           : std::vector<std::string>{"--out", dir.file("bench.jsonl")});
  const CliResult r = run_cli(args);
  expect_error(r, kExitUnsupported, {"CUDA"});
  EXPECT_TRUE(entries(dir.path().string()).empty()) << r;

  // --json: the error as one JSON object on stdout, with the status name.
  const CliResult j = run_cli(cat(args, {"--json"}));
  EXPECT_EQ(j.code, kExitUnsupported) << j;
  const json doc = j.out_json();
  EXPECT_EQ(doc["error"]["status"], "unsupported") << j;
  EXPECT_NE(doc["error"]["message"].get<std::string>().find("CUDA"), std::string::npos) << j;
}
INSTANTIATE_TEST_SUITE_P(
    Commands, cli_BenchUnsupported,
    ::testing::Values(std::vector<std::string>{"bench", "--suite", "kernel"},
                      std::vector<std::string>{"bench", "--suite", "layer", "--precisions", "i8", "--models", "all",
                                               "--native-kprime", "--policy", "6:8,4:6"},
                      std::vector<std::string>{"bench", "--suite", "quant", "--quick"},
                      std::vector<std::string>{"tune"},
                      std::vector<std::string>{"tune", "--patterns", "dense", "--ms", "16,20000", "--force"}),
    [](const ::testing::TestParamInfo<std::vector<std::string>>& i) { return "case" + std::to_string(i.index); });

}  // namespace
}  // namespace slidesparse::clitest
