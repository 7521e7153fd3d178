// `slidesparse bench --suite quant`: the fused per-token quantize (+ lift) kernel against a
// device-to-device copy of the same bytes, measured in the same run.
//
// Per configuration (m x k x pattern x output dtype; "dense" = quantization without lifting):
// one launch is verified against the CPU core on sampled rows (scale and every code, bit for bit),
// then the kernel is timed with CUDA events (warm-up, median of --reps launches), inputs and
// outputs rotated over >= 4 buffer sets whose total exceeds twice the L2, and a cudaMemcpyAsync
// D2D of half the kernel's traffic (so the copy also moves read + write = the same total bytes) is
// timed the same way. GB/s = (bytes of X read + bytes of q and scales written) / median time.
// X: 256 distinct bf16 rows (a bell-shaped sum of uniforms times a per-row magnitude 2^(r%7 - 3),
// so rows have different scales), repeated down the rows. Records: "quant".
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/quant_lift.cuh"
#include "slidesparse/pattern.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

#include "bench.hpp"
#include "bench_common.hpp"
#include "suites.hpp"

namespace slidesparse::bench {
namespace {

using json = nlohmann::json;

constexpr int64_t kBlockRows = 256;
constexpr int64_t kAcceptMK = int64_t(32) << 20;  // acceptance: >= 0.85 of copy from m*k >= 32M

// kBlockRows rows of x, repeated to fill [m, k] on the device (doubling copies).
void fill_x(uint8_t* dst, int64_t m, int64_t k, uint64_t seed) {
  const int64_t rows = std::min(m, kBlockRows);
  std::vector<uint16_t> h(size_t(rows * k));
  for (int64_t r = 0; r < rows; ++r) {
    const float mag = std::ldexp(1.0f, int(r % 7) - 3);
    for (int64_t c = 0; c < k; ++c) {
      const uint64_t x = mix(seed + uint64_t(r * k + c));
      const float u = float(x & 0xfffff) + float((x >> 20) & 0xfffff) + float((x >> 40) & 0xfffff);
      h[size_t(r * k + c)] = f32_to_bf16((u * (1.0f / 1048576.0f) - 1.5f) * mag);
    }
  }
  const size_t total = size_t(m * k) * 2, block = h.size() * 2;
  BENCH_CUDA(cudaMemcpy(dst, h.data(), block, cudaMemcpyHostToDevice));
  for (size_t have = block; have < total;) {
    const size_t nbytes = std::min(have, total - have);
    BENCH_CUDA(cudaMemcpy(dst + have, dst, nbytes, cudaMemcpyDeviceToDevice));
    have += nbytes;
  }
}

// Sampled rows of one launch (q and scale) against the CPU core; "" when equal, else the first miss.
std::string verify(const QuantLiftParams& p) {
  const int64_t m = p.m, k = p.k, k_out = p.k_out;
  std::vector<int64_t> rows = {0, 1, m / 3, m / 2, m - 2, m - 1};
  for (int i = 0; i < 6; ++i) rows.push_back((int64_t(i) * 2654435761ll + 12345) % m);
  std::vector<uint16_t> x(static_cast<size_t>(k));
  std::vector<uint8_t> got(static_cast<size_t>(k_out)), want(static_cast<size_t>(k_out)), qd(static_cast<size_t>(k));
  for (const int64_t r : rows) {
    if (r < 0 || r >= m) continue;
    BENCH_CUDA(cudaMemcpy(x.data(), static_cast<const uint16_t*>(p.x) + r * p.ldx, size_t(k) * 2,
                          cudaMemcpyDeviceToHost));
    BENCH_CUDA(cudaMemcpy(got.data(), static_cast<const uint8_t*>(p.q) + r * p.ldq, size_t(k_out),
                          cudaMemcpyDeviceToHost));
    float s_got = 0.0f, s_want = 0.0f;
    BENCH_CUDA(cudaMemcpy(&s_got, p.scale + r, 4, cudaMemcpyDeviceToHost));
    if (p.out_dtype == DType::kI8)
      quantize_rows_i8(p.in_dtype, x.data(), 1, k, reinterpret_cast<int8_t*>(qd.data()), &s_want);
    else
      quantize_rows_e4m3(p.in_dtype, x.data(), 1, k, qd.data(), &s_want);
    std::fill(want.begin(), want.end(), uint8_t(0));
    if (p.pattern_n == 0)
      std::memcpy(want.data(), qd.data(), size_t(k));
    else
      lift_activations(Pattern::from_n(p.pattern_n), p.out_dtype, qd.data(), 1, k, want.data(), k_out);
    if (std::memcmp(&s_got, &s_want, 4) != 0) return fmt::format("row {} scale {:.9g}, CPU {:.9g}", r, s_got, s_want);
    for (int64_t c = 0; c < k_out; ++c)
      if (got[size_t(c)] != want[size_t(c)])
        return fmt::format("row {} col {}: 0x{:02x}, CPU 0x{:02x}", r, c, got[size_t(c)], want[size_t(c)]);
  }
  return "";
}

}  // namespace

json run_quant_suite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out) {
  Budget budget;
  budget.max_seconds = o.max_seconds;
  Tally tally;
  cudaStream_t stream = nullptr;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<int> patterns{0};  // 0: quantization only
  for (const auto& v : o.variants)
    if (v.kind == VariantSpec::Kind::kSparse) patterns.push_back(v.pattern_n);
  std::vector<DType> outs;
  for (const auto& p : o.precisions) outs.push_back(p == "i8" ? DType::kI8 : DType::kE4M3);
  double worst_fraction = 1e9;
  bool stopped = false;

  out << fmt::format("{:>6} {:>6} {:>6} {:<6} {:<5} {:>10} {:>8} {:>8} {:>6}\n", "m", "k", "k_out", "pattern", "dtype",
                     "time_us", "GB/s", "copyGB/s", "frac");
  for (const int64_t m : o.ms) {
    for (const int64_t k : o.ks) {
      if (budget.out_of_time(0) || !tally.context_lost.empty()) {
        stopped = true;
        break;
      }
      try {
        const int64_t x_bytes = m * k * 2;
        auto k_out_for = [k](int n) { return n == 0 ? k : slide_k(Pattern::from_n(n), k); };
        int64_t q_max = 0;
        for (const int n : patterns) q_max = std::max(q_max, m * k_out_for(n));
        // q buffers also serve as destinations of the copy baseline: half the kernel's traffic.
        const int64_t q_alloc = std::max(q_max, (x_bytes + q_max + m * 4) / 2 + 16);
        const int nbuf = int(std::max<int64_t>(4, int64_t(2 * env.l2_bytes) / (x_bytes + q_alloc) + 1));
        std::vector<DevMem> xs, qs, ss;
        for (int i = 0; i < nbuf; ++i) {
          xs.emplace_back(size_t(x_bytes));
          qs.emplace_back(size_t(q_alloc));
          ss.emplace_back(size_t(m) * 4);
          fill_x(xs.back().get(), m, k, o.seed * 1000 + uint64_t(i));
        }
        BENCH_CUDA(cudaDeviceSynchronize());
        for (const int n : patterns)
          for (const DType dt : outs) {
            QuantLiftParams p;
            p.in_dtype = DType::kBF16;
            p.out_dtype = dt;
            p.m = m, p.k = k, p.ldx = k;
            p.m_pad = m;
            p.k_out = k_out_for(n);
            p.ldq = p.k_out;
            p.pattern_n = n;
            const std::string pattern = n == 0 ? "dense" : Pattern::from_n(n).str();
            auto params = [&](int64_t i) {
              QuantLiftParams r = p;
              r.x = xs[size_t(i % nbuf)].get();
              r.q = qs[size_t(i % nbuf)].get();
              r.scale = reinterpret_cast<float*>(ss[size_t(i % nbuf)].get());
              return r;
            };
            BENCH_CUDA(quant_lift(params(0), stream));
            BENCH_CUDA(cudaStreamSynchronize(stream));
            const std::string miss = verify(params(0));
            if (!miss.empty()) {
              ++tally.verification_failures;
              out << fmt::format("  VERIFY FAILED {} {} m={} k={}: {}\n", pattern, dtype_token(dt), m, k, miss);
            }
            const double t_us =
                time_events_us([&](int64_t i) { BENCH_CUDA(quant_lift(params(i), stream)); }, o.warmup, o.reps, stream);
            const int64_t bytes = x_bytes + p.m_pad * p.k_out + p.m_pad * 4;
            const int64_t copy_bytes = bytes / 2;
            const double copy_us = time_events_us(
                [&](int64_t i) {
                  BENCH_CUDA(cudaMemcpyAsync(qs[size_t(i % nbuf)].get(), xs[size_t(i % nbuf)].get(), size_t(copy_bytes),
                                             cudaMemcpyDeviceToDevice, stream));
                },
                o.warmup, o.reps, stream);
            const double gbps = double(bytes) / (t_us * 1e3);
            const double copy_gbps = double(2 * copy_bytes) / (copy_us * 1e3);
            const double frac = gbps / copy_gbps;
            if (m * k >= kAcceptMK) worst_fraction = std::min(worst_fraction, frac);
            out << fmt::format("{:>6} {:>6} {:>6} {:<6} {:<5} {:>10.1f} {:>8.0f} {:>8.0f} {:>6.3f}{}\n", m, k, p.k_out,
                               pattern, dtype_token(dt), t_us, gbps, copy_gbps, frac,
                               miss.empty() ? "" : "  VERIFY FAILED");
            sink.write({{"type", "quant"},
                        {"suite", "quant"},
                        {"kernel", "quant_lift"},
                        {"in_dtype", "bf16"},
                        {"dtype", dtype_token(dt)},
                        {"pattern", pattern},
                        {"m", m},
                        {"k", k},
                        {"k_out", p.k_out},
                        {"bytes", bytes},
                        {"time_us", t_us},
                        {"gbps", gbps},
                        {"copy_time_us", copy_us},
                        {"copy_gbps", copy_gbps},
                        {"fraction_of_copy", frac},
                        {"rotating_buffers", nbuf},
                        {"verified", miss.empty()}});
            ++tally.records;
          }
      } catch (const std::exception& e) {
        tally.error(sink, out, {{"m", m}, {"k", k}}, e);
      }
    }
    if (stopped) break;
  }
  cudaStreamDestroy(stream);
  json r = {{"records", tally.records},
            {"errors", tally.errors},
            {"verification_failures", tally.verification_failures},
            {"completed", !stopped},
            {"context_lost", tally.context_lost}};
  if (worst_fraction < 1e9) {
    r["worst_fraction_of_copy_at_mk_32m"] = worst_fraction;
    out << fmt::format("acceptance: worst fraction_of_copy at m*k >= 32M = {:.3f} (target >= 0.85): {}\n",
                       worst_fraction, worst_fraction >= 0.85 ? "PASS" : "FAIL");
  }
  return r;
}

}  // namespace slidesparse::bench
