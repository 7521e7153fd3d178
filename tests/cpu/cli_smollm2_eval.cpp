// The real model on a small slice, through the CLI as a user runs it (bounded: about a minute on
// two cores): import the SmolLM2 GGUF, prune 6:8 and 2:4, and check on the first 1024 tokens of
// WikiText-2 test that perplexity orders dense <= 6:8 < 2:4, that 2:4 is far worse than 6:8 (the
// reason (2N-2):2N patterns exist), and that W8A8 INT8 through the slid weights gives exactly the
// perplexity of the pruned INT8 model. Skips with a reason without the model or the text.
#include <gtest/gtest.h>

#include "cpu/cli_util.hpp"
#include "cpu/real_model.hpp"

namespace slidesparse::clitest {
namespace {

TEST(CliSmolLM2Eval, OrderingAndLosslessSlidingOnAWikiTextSlice) {
  const std::string gguf = testing::smollm2_gguf_path(), text = testing::wikitext_test_path();
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " not present: run scripts/fetch_model.sh";
  if (!fs::exists(text)) GTEST_SKIP() << text << " not present (WikiText-2 raw test file; or set SLIDESPARSE_WIKITEXT)";
  TempDir dir;
  auto ok = [&](const std::vector<std::string>& a) {
    const auto r = run_cli(a);
    EXPECT_EQ(r.code, 0) << r;
    return r;
  };
  ok({"import-gguf", gguf, dir.file("dense"), "-q"});
  ok({"prune", dir.file("dense"), dir.file("p68"), "--pattern", "6:8", "-q"});
  ok({"prune", dir.file("dense"), dir.file("p24"), "--pattern", "2:4", "-q"});
  ok({"slide", dir.file("p68"), dir.file("s68"), "-q"});
  auto ppl = [&](const std::string& model, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"eval", "--model", model, "--text", text, "--max-tokens", "1024", "--json", "-q"};
    a.insert(a.end(), extra.begin(), extra.end());
    const auto r = ok(a);
    if (r.code != 0) return double(NAN);
    const json j = r.out_json();
    EXPECT_EQ(j["tokens_evaluated"].get<int64_t>(), 1022);
    return j["ppl"].get<double>();
  };
  const double dense = ppl(dir.file("dense")), p68 = ppl(dir.file("p68")), p24 = ppl(dir.file("p24"));
  std::cout << "[ SmolLM2 ] first 1024 tokens: dense " << dense << ", 6:8 " << p68 << ", 2:4 " << p24 << "\n";
  // A sane model: SmolLM2-135M is in the tens on WikiText-2 (measured 26.8 here).
  EXPECT_GT(dense, 10.0);
  EXPECT_LT(dense, 60.0);
  EXPECT_LE(dense, p68);
  EXPECT_LT(p68, p24);
  EXPECT_GT(p24, 5.0 * p68);  // 2:4 collapses the small model, 6:8 does not
  const double i8 = ppl(dir.file("p68"), {"--precision", "int8"});
  EXPECT_EQ(ppl(dir.file("s68"), {"--precision", "int8", "--slide"}), i8);
}

}  // namespace
}  // namespace slidesparse::clitest
