// `slidesparse bench` and `slidesparse tune`: their options, registered on the main CLI by one call;
// the suites themselves are in bench/ (bench.hpp). In a build without CUDA both subcommands exist,
// validate their options (usage errors exit 2) and then fail with the "unsupported" status.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "../bench/bench.hpp"

namespace slidesparse::cli {

class BenchCommands {
 public:
  // Adds the two subcommands to `app`; `add_common` adds the shared --json/-q/-v/-j flags.
  BenchCommands(CLI::App& app, const std::function<void(CLI::App*)>& add_common);
  bool parsed() const;
  // Runs the parsed subcommand: `r` receives its summary (main prints it with --json; the table
  // goes to stdout otherwise). Returns 0, or 1 when a measurement failed its verification or
  // raised an error (every record is still written). Throws slidesparse::Error.
  int run(nlohmann::json& r, bool json_out, int threads);

 private:
  CLI::App* bench_ = nullptr;
  CLI::App* tune_ = nullptr;
  bench::BenchOptions bo_;
  bench::TuneOptions to_;
  bool no_search_ = false, no_host_ = false, no_bind_ = false;
};

}  // namespace slidesparse::cli
