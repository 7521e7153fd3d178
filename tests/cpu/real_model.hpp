// Where the real-model tests find their inputs: the SmolLM2 GGUF that scripts/fetch_model.sh puts in
// .deps/models, and the WikiText-2 raw test file (never in the repository: $SLIDESPARSE_WIKITEXT,
// else ../shared/data/wikitext-2-raw/wiki.test.raw beside the checkout). Tests skip with a reason
// when either is missing.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace slidesparse::testing {

inline std::string smollm2_gguf_path() {
  return (std::filesystem::path(SLIDESPARSE_SOURCE_DIR) / ".deps/models/SmolLM2-135M-Instruct.Q4_1.gguf").string();
}

inline std::string wikitext_test_path() {
  if (const char* env = std::getenv("SLIDESPARSE_WIKITEXT")) return env;
  const auto beside = std::filesystem::path(SLIDESPARSE_SOURCE_DIR) / "../shared/data/wikitext-2-raw/wiki.test.raw";
  if (std::filesystem::exists(beside)) return beside.lexically_normal().string();
  return "/work/shared/data/wikitext-2-raw/wiki.test.raw";
}

}  // namespace slidesparse::testing
