// Perplexity: exact values for a model whose logits are known, and agreement with the logits.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/model_test_util.hpp"
#include "cpu/temp_dir.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/eval.hpp"

namespace slidesparse {
namespace {

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

// All-zero weights: hidden states are 0, RMSNorm keeps them 0, logits are all 0 -> uniform
// distribution -> every token costs log(vocab) -> ppl = vocab.
TEST(Perplexity, ZeroModelGivesVocabSize) {
  testing::TempDir dir;
  testing::TinyShape s;
  s.vocab = 100;
  testing::write_tiny_model(testing::make_tiny_model(s, 1, DType::kF32, /*zero=*/true), dir.path().string());
  const LlamaModel model = LlamaModel::load(dir.path().string(), LlamaLoadOptions::threads(2));
  const auto tok = random_tokens(50, s.vocab, 2);
  PerplexityOptions o;
  o.ctx = 16;  // windows 16, 16, 16, 2 -> 15 + 15 + 15 + 1 predictions
  const auto r = evaluate_perplexity(model, tok, o);
  EXPECT_EQ(r.windows, 4);
  EXPECT_EQ(r.tokens_evaluated, 46);
  EXPECT_NEAR(r.nll_sum, 46 * std::log(100.0), 1e-9 * 46 * std::log(100.0));
  EXPECT_NEAR(r.ppl, 100.0, 1e-9 * 100.0);
  EXPECT_GE(r.seconds, 0.0);
}

TEST(Perplexity, MatchesLogitsOfEachWindow) {
  testing::TempDir dir;
  const testing::TinyShape s;
  testing::write_tiny_model(testing::make_tiny_model(s, 3), dir.path().string());
  const LlamaModel model = LlamaModel::load(dir.path().string(), LlamaLoadOptions::threads(2));
  const auto tok = random_tokens(25, s.vocab, 4);
  PerplexityOptions o;
  o.ctx = 8;  // windows 8, 8, 8; the 1-token tail predicts nothing and is dropped
  int calls = 0;
  o.progress = [&](int64_t done, int64_t total, double) {
    ++calls;
    EXPECT_EQ(done, calls);
    EXPECT_EQ(total, 3);
  };
  const auto r = evaluate_perplexity(model, tok, o);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.tokens_evaluated, 21);
  double nll = 0;
  for (int w = 0; w < 3; ++w) {
    const std::vector<int32_t> win(tok.begin() + w * 8, tok.begin() + w * 8 + 8);
    const auto lg = model.forward(win);
    for (int t = 0; t < 7; ++t) {
      const float* row = &lg[size_t(t * s.vocab)];
      double mx = -1e300, sum = 0;
      for (int64_t i = 0; i < s.vocab; ++i) mx = std::max(mx, double(row[i]));
      for (int64_t i = 0; i < s.vocab; ++i) sum += std::exp(double(row[i]) - mx);
      nll += std::log(sum) + mx - double(row[win[size_t(t + 1)]]);
    }
  }
  EXPECT_NEAR(r.nll_sum, nll, 1e-12 * std::abs(nll));
  EXPECT_NEAR(r.ppl, std::exp(nll / 21), 1e-12 * r.ppl);
  // A random model is a bad language model, but a finite one.
  EXPECT_GT(r.ppl, 1.0);
  EXPECT_TRUE(std::isfinite(r.ppl));

  o.max_windows = 2;
  o.progress = nullptr;
  EXPECT_EQ(evaluate_perplexity(model, tok, o).tokens_evaluated, 14);
}

TEST(Perplexity, TokenNllKnownValues) {
  const float logits[3] = {0.0f, std::log(3.0f), 1000.0f - 1000.0f};
  // softmax([0, log 3, 0]) = [1/5, 3/5, 1/5]
  EXPECT_NEAR(token_nll(logits, 3, 1), -std::log(0.6), 1e-7);
  const float big[2] = {1000.0f, 1000.0f};  // max subtraction keeps this finite
  EXPECT_NEAR(token_nll(big, 2, 0), std::log(2.0), 1e-15);
  EXPECT_THROW(token_nll(big, 2, 2), Error);
}

TEST(Perplexity, RejectsTooFewTokensAndBadCtx) {
  testing::TempDir dir;
  const testing::TinyShape s;
  testing::write_tiny_model(testing::make_tiny_model(s, 5), dir.path().string());
  const LlamaModel model = LlamaModel::load(dir.path().string(), LlamaLoadOptions::threads(1));
  PerplexityOptions o;
  o.ctx = 1;
  EXPECT_THROW(evaluate_perplexity(model, {1, 2, 3}, o), Error);
  o.ctx = 4;
  EXPECT_THROW(evaluate_perplexity(model, {1}, o), Error);
}

}  // namespace
}  // namespace slidesparse
