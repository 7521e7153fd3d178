#include "backends/plan_cache.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "slidesparse/error.hpp"

namespace slidesparse {

namespace {

constexpr int kCacheFormat = 1;
constexpr int64_t kMinBucket = 16, kMaxBucket = 65536;

using nlohmann::json;

json entry_to_json(const PlanEntry& e) {
  json j;
  if (e.alg_id >= 0) {
    j["alg_id"] = e.alg_id;
    j["split_k"] = e.split_k;
    j["split_k_mode"] = e.split_k_mode;
    j["split_k_buffers"] = e.split_k_buffers;
  }
  if (e.algo_index >= 0) j["algo_index"] = e.algo_index;
  if (!e.algo_hex.empty()) j["algo"] = e.algo_hex;
  j["time_us"] = e.time_us;
  j["source"] = e.source;
  return j;
}

PlanEntry entry_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(Status::kBadFormat, fmt::format("{}: entry is not an object", where));
  PlanEntry e;
  auto get_int = [&](const char* name, int& out) {
    if (!j.contains(name)) return;
    if (!j[name].is_number_integer())
      throw Error(Status::kBadFormat, fmt::format("{}: '{}' is not an integer", where, name));
    out = j[name].get<int>();
  };
  get_int("alg_id", e.alg_id);
  get_int("split_k", e.split_k);
  get_int("split_k_mode", e.split_k_mode);
  get_int("split_k_buffers", e.split_k_buffers);
  get_int("algo_index", e.algo_index);
  if (j.contains("algo")) {
    if (!j["algo"].is_string())
      throw Error(Status::kBadFormat, fmt::format("{}: 'algo' is not a string", where));
    e.algo_hex = j["algo"].get<std::string>();
  }
  if (j.contains("time_us")) {
    if (!j["time_us"].is_number())
      throw Error(Status::kBadFormat, fmt::format("{}: 'time_us' is not a number", where));
    e.time_us = j["time_us"].get<double>();
  }
  if (j.contains("source") && j["source"].is_string()) e.source = j["source"].get<std::string>();
  return e;
}

}  // namespace

int64_t plan_m_bucket(int64_t m) noexcept {
  int64_t b = kMinBucket;
  while (b < m && b < kMaxBucket) b *= 2;
  return b;
}

PlanKey PlanKey::of(const GemmProblem& p, bool alpha_vector) {
  PlanKey key;
  key.m_bucket = plan_m_bucket(p.m);
  key.n = p.n;
  key.k = p.k;
  key.precision = p.precision;
  key.sparse = p.sparse;
  key.alpha_vector = alpha_vector;
  return key;
}

std::string PlanKey::str() const {
  return fmt::format("{}/{}/m{}/n{}/k{}{}", sparse ? "sparse" : "dense",
                     gemm_precision_name(precision), m_bucket, n, k, alpha_vector ? "/alpha" : "");
}

std::unique_ptr<PlanCache> PlanCache::load(const std::string& path, std::string env_key) {
  auto cache = std::make_unique<PlanCache>(std::move(env_key));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return cache;
    throw Error(Status::kIoError, fmt::format("plan cache {}: cannot open: {}", path, std::strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json doc;
  try {
    doc = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(Status::kBadFormat, fmt::format("plan cache {}: not JSON: {}", path, e.what()));
  }
  if (!doc.is_object() || !doc.contains("format") || doc["format"] != kCacheFormat ||
      !doc.contains("settings") || !doc["settings"].is_object()) {
    throw Error(Status::kBadFormat,
                fmt::format("plan cache {}: expected {{\"format\": {}, \"settings\": {{...}}}}", path,
                            kCacheFormat));
  }
  for (const auto& [env, entries] : doc["settings"].items()) {
    if (env != cache->env_key_) {
      cache->other_settings_json_[env] = entries.dump();
      continue;
    }
    if (!entries.is_object())
      throw Error(Status::kBadFormat, fmt::format("plan cache {}: setting '{}' is not an object", path, env));
    for (const auto& [key, value] : entries.items())
      cache->entries_[key] = entry_from_json(value, fmt::format("plan cache {} [{}]", path, key));
  }
  return cache;
}

void PlanCache::save(const std::string& path) const {
  json doc;
  doc["format"] = kCacheFormat;
  json settings = json::object();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [env, text] : other_settings_json_) settings[env] = json::parse(text);
    json mine = json::object();
    for (const auto& [key, e] : entries_) mine[key] = entry_to_json(e);
    settings[env_key_] = std::move(mine);
  }
  doc["settings"] = std::move(settings);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error(Status::kIoError, fmt::format("plan cache {}: cannot write: {}", tmp, std::strerror(errno)));
    out << doc.dump(1) << '\n';
    out.flush();
    if (!out)
      throw Error(Status::kIoError, fmt::format("plan cache {}: write failed: {}", tmp, std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(Status::kIoError, fmt::format("plan cache {}: rename failed: {}", path, std::strerror(err)));
  }
}

std::optional<PlanEntry> PlanCache::find(const PlanKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key.str());
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void PlanCache::put(const PlanKey& key, const PlanEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_[key.str()] = entry;
}

size_t PlanCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace slidesparse
