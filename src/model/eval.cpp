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

namespace {

// Per-projection input statistics fed by a LinearObserver: sums of squares per column (norms) and,
// when asked for, X^T X (Hessians). Projections fed the same input pointer in consecutive calls
// (q/k/v, gate/up) share one Hessian computation.
class StatsAccumulator {
 public:
  StatsAccumulator(bool hessians, int threads) : hessians_(hessians), threads_(threads) {}

  void new_window() { prev_x_ = nullptr; }  // buffers of one forward may reuse a previous one's addresses

  void observe(const std::string& name, const float* x, int64_t m, int64_t k) {
    std::vector<double>& acc = sums_[name];
    if (acc.empty()) acc.assign(size_t(k), 0.0);
    SLIDESPARSE_CHECK(int64_t(acc.size()) == k, Status::kInternal, "calibration: '{}' input width changed", name);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) acc[size_t(c)] += double(x[r * k + c]) * double(x[r * k + c]);
    if (!hessians_) return;
    const std::string own = x == prev_x_ ? prev_owner_ : name;
    auto it = owner_.emplace(name, own).first;
    SLIDESPARSE_CHECK(it->second == own, Status::kInternal,
                      "calibration: '{}' shared its input with '{}' in one window and '{}' in another", name,
                      it->second, own);
    prev_x_ = x;
    prev_owner_ = own;
    if (own != name) return;  // a copy of the input just accumulated
    const auto h0 = std::chrono::steady_clock::now();
    std::vector<double>& h = hsum_[name];
    if (h.empty()) h.assign(size_t(k * k), 0.0);
    SLIDESPARSE_CHECK(int64_t(h.size()) == k * k, Status::kInternal, "calibration: '{}' input width changed", name);
    // X^T X as the GEMM Y[k, k] = A[k, m] . B[k, m]^T with A = B = X^T.
    std::vector<float> xt(size_t(k * m)), y(size_t(k * k));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < k; ++c) xt[size_t(c * m + r)] = x[r * k + c];
    const DenseLinear gram(xt.data(), k, m, threads_);
    gram.apply(xt.data(), k, y.data());
    for (size_t i = 0; i < h.size(); ++i) h[i] += double(y[i]);
    hessian_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - h0).count();
  }

  // Adds the finished statistics (norms as f32 square roots, Hessians as f32) to r.
  void finish(CalibrationResult& r) const {
    for (const auto& [name, acc] : sums_) {
      std::vector<float> v(acc.size());
      for (size_t i = 0; i < acc.size(); ++i) v[i] = float(std::sqrt(acc[i]));
      r.norms[name] = std::move(v);
    }
    for (const auto& [name, own] : owner_) {
      const std::vector<double>& h = hsum_.at(own);
      r.hessians[name] = std::vector<float>(h.begin(), h.end());
    }
    r.hessian_seconds += hessian_seconds_;
  }

 private:
  bool hessians_;
  int threads_;
  std::map<std::string, std::vector<double>> sums_, hsum_;
  std::map<std::string, std::string> owner_;  // name -> the projection whose Hessian holds its input
  const float* prev_x_ = nullptr;
  std::string prev_owner_;
  double hessian_seconds_ = 0.0;
};

// The calibration windows: [begin, end) token offsets, as for perplexity.
std::vector<std::pair<int64_t, int64_t>> calibration_windows(const std::vector<int32_t>& tokens,
                                                             const PerplexityOptions& opts) {
  SLIDESPARSE_CHECK(opts.ctx >= 1, Status::kInvalidArgument, "calibration: ctx must be >= 1, got {}", opts.ctx);
  SLIDESPARSE_CHECK(!tokens.empty(), Status::kInvalidArgument, "calibration: no tokens");
  const int64_t n = int64_t(tokens.size());
  int64_t total = (n + opts.ctx - 1) / opts.ctx;
  if (opts.max_windows > 0) total = std::min(total, opts.max_windows);
  std::vector<std::pair<int64_t, int64_t>> w;
  for (int64_t i = 0; i < total; ++i) w.emplace_back(i * opts.ctx, std::min(n, (i + 1) * opts.ctx));
  return w;
}

// Runs f with the observer installed; removes it afterwards, also on an exception.
template <class F>
void with_observer(LlamaModel& model, StatsAccumulator& acc, F&& f) {
  model.set_linear_observer(
      [&acc](const std::string& name, const float* x, int64_t m, int64_t k) { acc.observe(name, x, m, k); });
  try {
    f();
  } catch (...) {
    model.set_linear_observer({});
    throw;
  }
  model.set_linear_observer({});
}

}  // namespace

CalibrationResult collect_input_norms(LlamaModel& model, const std::vector<int32_t>& tokens,
                                      const PerplexityOptions& opts, bool hessians) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto windows = calibration_windows(tokens, opts);
  StatsAccumulator acc(hessians, model.num_threads());
  CalibrationResult r;
  with_observer(model, acc, [&] {
    for (size_t w = 0; w < windows.size(); ++w) {
      const auto [b, e] = windows[w];
      acc.new_window();
      model.forward(std::vector<int32_t>(tokens.begin() + b, tokens.begin() + e));
      r.tokens += e - b;
      r.windows = int64_t(w) + 1;
      if (opts.progress) opts.progress(int64_t(w) + 1, int64_t(windows.size()), 0.0);
    }
  });
  acc.finish(r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

CalibrationResult collect_sequential(LlamaModel& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opts, bool hessians, const PruneLayerFn& prune_layer) {
  SLIDESPARSE_CHECK(bool(prune_layer), Status::kInvalidArgument, "sequential calibration needs a pruning function");
  const auto t0 = std::chrono::steady_clock::now();
  const auto windows = calibration_windows(tokens, opts);
  // Hidden states of every window, advanced one layer at a time through the pruned model.
  std::vector<std::vector<float>> xs;
  CalibrationResult r;
  for (const auto& [b, e] : windows) {
    xs.push_back(model.embed(std::vector<int32_t>(tokens.begin() + b, tokens.begin() + e)));
    r.tokens += e - b;
  }
  r.windows = int64_t(windows.size());
  const int64_t layers = model.config().layers;
  for (int64_t l = 0; l < layers; ++l) {
    // 1. Statistics of layer l's projections, with layer l as loaded, on the pruned model's inputs.
    StatsAccumulator acc(hessians, model.num_threads());
    with_observer(model, acc, [&] {
      for (size_t w = 0; w < windows.size(); ++w) {
        std::vector<float> x = xs[w];
        acc.new_window();
        model.apply_layer(l, x.data(), windows[w].second - windows[w].first);
      }
    });
    CalibrationResult part;
    acc.finish(part);
    // 2. Prune layer l's projections with them.
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    model.transform_linears([&](const std::string& name, const Linear& cur) -> std::unique_ptr<Linear> {
      if (name.compare(0, prefix.size(), prefix) != 0) return nullptr;
      const auto* dense = dynamic_cast<const DenseLinear*>(&cur);
      SLIDESPARSE_CHECK(dense != nullptr, Status::kUnsupported,
                        "sequential calibration needs float projections; '{}' is not one (load the model with "
                        "the stored float weights)",
                        name);
      const auto nit = part.norms.find(name);
      SLIDESPARSE_CHECK(nit != part.norms.end(), Status::kInternal, "sequential calibration: no input seen for '{}'",
                        name);
      const std::vector<float>* h = nullptr;
      if (hessians) h = &part.hessians.at(name);
      std::vector<float> w = prune_layer(name, dense->weight(), cur.n(), cur.k(), nit->second, h);
      SLIDESPARSE_CHECK(int64_t(w.size()) == cur.n() * cur.k(), Status::kInternal,
                        "sequential calibration: pruning '{}' returned {} values, expected {}", name, w.size(),
                        cur.n() * cur.k());
      return std::make_unique<DenseLinear>(w.data(), cur.n(), cur.k(), dense->num_threads());
    });
    // 3. The pruned layer's outputs are the next layer's inputs.
    for (size_t w = 0; w < windows.size(); ++w)
      model.apply_layer(l, xs[w].data(), windows[w].second - windows[w].first);
    for (auto& [name, v] : part.norms) r.norms[name] = std::move(v);
    for (auto& [name, v] : part.hessians) r.hessians[name] = std::move(v);
    r.hessian_seconds += part.hessian_seconds;
    if (opts.progress) opts.progress(l + 1, layers, 0.0);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace slidesparse
