// Perplexity over non-overlapping windows (see include/slidesparse/eval.hpp).
#include "slidesparse/eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "common/check.hpp"

namespace slidesparse {

double token_nll(const float* logits, int64_t vocab, int32_t target) {
  SLIDESPARSE_CHECK(target >= 0 && target < vocab, Status::kInvalidArgument, "token {} is outside [0, {})", target,
                    vocab);
  double mx = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  return std::log(sum) + (mx - double(logits[target]));  // parenthesized: no cancellation against mx
}

PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opts) {
  return evaluate_perplexity([&model](const std::vector<int32_t>& w) { return model.forward(w); },
                             model.config().vocab, tokens, opts);
}

PerplexityResult evaluate_perplexity(const ForwardFn& forward, int64_t vocab, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opts) {
  SLIDESPARSE_CHECK(opts.ctx >= 2, Status::kInvalidArgument, "perplexity: ctx must be >= 2, got {}", opts.ctx);
  SLIDESPARSE_CHECK(opts.max_windows >= 0, Status::kInvalidArgument, "perplexity: max_windows must be >= 0, got {}",
                    opts.max_windows);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = int64_t(tokens.size());
  SLIDESPARSE_CHECK(vocab > 0, Status::kInvalidArgument, "perplexity: vocab must be > 0, got {}", vocab);
  // Windows of ctx tokens; a shorter tail counts when it has something to predict.
  int64_t total = n / opts.ctx + (n % opts.ctx >= 2 ? 1 : 0);
  if (opts.max_windows > 0) total = std::min(total, opts.max_windows);
  SLIDESPARSE_CHECK(total > 0, Status::kInvalidArgument, "perplexity: {} tokens give no window (need >= 2)", n);
  PerplexityResult r;
  for (int64_t w = 0; w < total; ++w) {
    const int64_t b = w * opts.ctx, e = std::min(n, b + opts.ctx);
    const std::vector<int32_t> win(tokens.begin() + b, tokens.begin() + e);
    const std::vector<float> logits = forward(win);
    SLIDESPARSE_CHECK(int64_t(logits.size()) == (e - b) * vocab, Status::kInternal,
                      "perplexity: forward returned {} logits for {} tokens x vocab {}", logits.size(), e - b, vocab);
    // Per-token NLLs in parallel (the softmax over the vocabulary dominates once the forward runs on
    // a GPU), then summed in token order: the result does not depend on the thread count.
    const int64_t scored = e - b - 1;
    std::vector<double> nll(static_cast<size_t>(std::max<int64_t>(scored, 0)));
    const int64_t nt = std::min<int64_t>(scored, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    std::exception_ptr err;
    std::mutex err_mu;
    for (int64_t ti = 0; ti < nt; ++ti)
      pool.emplace_back([&, ti] {
        try {
          for (int64_t t = ti; t < scored; t += nt)
            nll[size_t(t)] = token_nll(&logits[size_t(t * vocab)], vocab, win[size_t(t + 1)]);
        } catch (...) {
          std::lock_guard<std::mutex> lock(err_mu);
          if (!err) err = std::current_exception();
        }
      });
    for (auto& th : pool) th.join();
    if (err) std::rethrow_exception(err);
    for (double v : nll) r.nll_sum += v;
    r.tokens_evaluated += e - b - 1;
    r.windows = w + 1;
    if (opts.progress) opts.progress(w + 1, total, std::exp(r.nll_sum / double(r.tokens_evaluated)));
  }
  r.ppl = std::exp(r.nll_sum / double(r.tokens_evaluated));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

CalibrationResult collect_input_norms(LlamaModel& model, const std::vector<int32_t>& tokens,
                                      const PerplexityOptions& opts, bool hessians) {
  SLIDESPARSE_CHECK(opts.ctx >= 1, Status::kInvalidArgument, "calibration: ctx must be >= 1, got {}", opts.ctx);
  SLIDESPARSE_CHECK(!tokens.empty(), Status::kInvalidArgument, "calibration: no tokens");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = int64_t(tokens.size());
  int64_t total = (n + opts.ctx - 1) / opts.ctx;
  if (opts.max_windows > 0) total = std::min(total, opts.max_windows);
  std::map<std::string, std::vector<double>> sums;
  // Hessians: owner[name] = the projection whose accumulator holds name's input (itself for the
  // first of a run of consecutive calls with one pointer).
  std::map<std::string, std::vector<double>> hsum;
  std::map<std::string, std::string> owner;
  const float* prev_x = nullptr;
  std::string prev_owner;
  double hess_s = 0.0;
  const int threads = model.num_threads();
  model.set_linear_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) {
    std::vector<double>& acc = sums[name];
    if (acc.empty()) acc.assign(size_t(k), 0.0);
    SLIDESPARSE_CHECK(int64_t(acc.size()) == k, Status::kInternal, "calibration: '{}' input width changed", name);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) acc[size_t(c)] += double(x[r * k + c]) * double(x[r * k + c]);
    if (!hessians) return;
    const std::string own = x == prev_x ? prev_owner : name;
    auto [it, fresh] = owner.emplace(name, own);
    SLIDESPARSE_CHECK(it->second == own, Status::kInternal,
                      "calibration: '{}' shared its input with '{}' in one window and '{}' in another", name,
                      it->second, own);
    prev_x = x;
    prev_owner = own;
    if (own != name) return;  // a copy of the input just accumulated
    (void)fresh;
    const auto h0 = std::chrono::steady_clock::now();
    std::vector<double>& h = hsum[name];
    if (h.empty()) h.assign(size_t(k * k), 0.0);
    SLIDESPARSE_CHECK(int64_t(h.size()) == k * k, Status::kInternal, "calibration: '{}' input width changed", name);
    // X^T X as the GEMM Y[k, k] = A[k, m] . B[k, m]^T with A = B = X^T.
    std::vector<float> xt(size_t(k * m)), y(size_t(k * k));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) xt[size_t(c * m + r)] = x[r * k + c];
    const DenseLinear gram(xt.data(), k, m, threads);
    gram.apply(xt.data(), k, y.data());
    for (size_t i = 0; i < h.size(); ++i) h[i] += double(y[i]);
    hess_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - h0).count();
  });
  CalibrationResult r;
  try {
    for (int64_t w = 0; w < total; ++w) {
      const int64_t b = w * opts.ctx, e = std::min(n, b + opts.ctx);
      prev_x = nullptr;  // buffers of one forward may reuse the addresses of the last one's
      model.forward(std::vector<int32_t>(tokens.begin() + b, tokens.begin() + e));
      r.tokens += e - b;
      r.windows = w + 1;
      if (opts.progress) opts.progress(w + 1, total, 0.0);
    }
  } catch (...) {
    model.set_linear_observer({});
    throw;
  }
  model.set_linear_observer({});
  for (const auto& [name, acc] : sums) {
    std::vector<float> v(acc.size());
    for (size_t i = 0; i < acc.size(); ++i) v[i] = float(std::sqrt(acc[i]));
    r.norms.emplace(name, std::move(v));
  }
  for (const auto& [name, own] : owner) {
    const std::vector<double>& h = hsum.at(own);
    r.hessians.emplace(name, std::vector<float>(h.begin(), h.end()));
  }
  r.hessian_seconds = hess_s;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace slidesparse
