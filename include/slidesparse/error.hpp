// slidesparse: one exception type carrying a status code. Library code never exits; the CLI maps
// Status to distinct process exit codes (see cli/main.cpp and docs/FORMAT.md "Exit codes").
#pragma once

#include <stdexcept>
#include <string>

namespace slidesparse {

enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad option value: pattern string, regex, precision name, shape request
  kNotFound = 2,         // input path (or a tensor it names) does not exist
  kIoError = 3,          // the OS refused a read/write/rename (permissions, disk full)
  kBadFormat = 4,        // the file is not a valid safetensors/index/metadata document
  kInvalidData = 5,      // well-formed file, unusable values: non-finite weights, group too dense
  kAlreadyExists = 6,    // output exists and --force was not given
  kUnsupported = 7,      // valid request this build/GPU/dtype cannot serve (says what is supported)
  kInternal = 8,         // a bug: an invariant of our own code broke
};

const char* status_name(Status s) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Status status, std::string message, const char* file = nullptr, int line = 0,
        std::string backend = "core", std::string expr = {});
  Status status() const noexcept { return status_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& backend() const noexcept { return backend_; }
  const std::string& expr() const noexcept { return expr_; }
  const char* file() const noexcept { return file_; }
  int line() const noexcept { return line_; }

 private:
  Status status_;
  std::string message_, backend_, expr_;
  const char* file_;
  int line_;
};

}  // namespace slidesparse
