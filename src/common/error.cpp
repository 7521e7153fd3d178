#include "slidesparse/error.hpp"

#include <utility>

namespace slidesparse {

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid_argument";
    case Status::kNotFound: return "not_found";
    case Status::kIoError: return "io_error";
    case Status::kBadFormat: return "bad_format";
    case Status::kInvalidData: return "invalid_data";
    case Status::kAlreadyExists: return "already_exists";
    case Status::kUnsupported: return "unsupported";
    case Status::kInternal: return "internal";
  }
  return "unknown";
}

Error::Error(Status status, std::string message, const char* file, int line, std::string backend,
             std::string expr)
    : std::runtime_error(message),
      status_(status),
      message_(std::move(message)),
      backend_(std::move(backend)),
      expr_(std::move(expr)),
      file_(file),
      line_(line) {}

}  // namespace slidesparse
