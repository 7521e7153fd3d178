// The suites behind run_bench() (bench.cpp), each in its own file. CUDA builds only.
#pragma once

#include <ostream>

#include <nlohmann/json.hpp>

#include "backends/backend.hpp"
#include "bench.hpp"
#include "bench_common.hpp"

namespace slidesparse::bench {

// Each writes its records to `sink`, a human table to `out`, and returns the counts of its summary
// ("records", "errors", "verification_failures", "completed", "context_lost", and suite extras).
nlohmann::json run_kernel_suite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out);
nlohmann::json run_layer_suite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out);
nlohmann::json run_quant_suite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out);
nlohmann::json run_load_suite(const BenchOptions& o, const BackendEnv& env, Sink& sink, std::ostream& out);

}  // namespace slidesparse::bench
