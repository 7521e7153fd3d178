// slidesparse backends: the algorithm-choice cache. Searching is expensive (it reruns the GEMM tens
// of times), re-planning per call costs 50-200 us of CPU in other wrappers; a choice measured once
// is reused for every plan with the same key on the same setting.
//
// Key: (m bucket, n, k, precision, sparse, alpha vector), m bucket = the next power of two >= m,
// clamped to [16, 65536]. Value: the cuSPARSELt algorithm id + split-k (sparse) or the cuBLASLt
// algorithm (dense: its heuristic index and its opaque bytes), with the measured time.
// Choices are only valid for the setting they were measured on, so the JSON file groups them by
// BackendEnv::key() (GPU name, SM, driver, CUDA runtime, cuSPARSELt and cuBLASLt versions); a
// file holds any number of settings and saving keeps the others untouched.
//
// File (JSON):
//   {"format": 1, "settings": {"<env key>": {"<plan key>": {"alg_id": 3, "split_k": 1, ...}}}}
// The plan objects never read or write files; only load()/save() here do.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "backends/backend.hpp"

namespace slidesparse {

int64_t plan_m_bucket(int64_t m) noexcept;

struct PlanKey {
  int64_t m_bucket = 16, n = 0, k = 0;
  GemmPrecision precision = GemmPrecision::kBF16;
  bool sparse = false;
  bool alpha_vector = false;
  static PlanKey of(const GemmProblem& p, bool alpha_vector);
  std::string str() const;  // "sparse/i8/m4096/n4608/k3584" (+ "/alpha")
};

struct PlanEntry {
  // cuSPARSELt
  int alg_id = -1;
  int split_k = 1;
  int split_k_mode = 0;
  int split_k_buffers = 0;
  // cuBLASLt
  int algo_index = -1;    // position in the heuristic's list
  std::string algo_hex;   // cublasLtMatmulAlgo_t bytes, hex; empty if unknown
  double time_us = 0;     // median measured when chosen
  std::string source;     // how it was chosen ("search", "grid", "timed-heuristics", ...)
};

class PlanCache {
 public:
  explicit PlanCache(std::string env_key) : env_key_(std::move(env_key)) {}
  // A missing file is an empty cache; an unreadable one is Error(kIoError), a malformed one
  // Error(kBadFormat).
  static std::unique_ptr<PlanCache> load(const std::string& path, std::string env_key);
  // Writes path.tmp, then renames it over path. Error(kIoError) on failure.
  void save(const std::string& path) const;

  std::optional<PlanEntry> find(const PlanKey& key) const;
  void put(const PlanKey& key, const PlanEntry& entry);
  size_t size() const;  // entries for this setting
  const std::string& env_key() const noexcept { return env_key_; }

 private:
  std::string env_key_;
  mutable std::mutex mu_;
  std::map<std::string, PlanEntry> entries_;                  // this setting
  std::map<std::string, std::string> other_settings_json_;    // other settings, verbatim
};

}  // namespace slidesparse
