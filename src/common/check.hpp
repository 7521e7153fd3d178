// slidesparse internal: check macros. Messages print the actual values (fmt syntax).
#pragma once

#include <fmt/format.h>

#include "slidesparse/error.hpp"

// Throw Error(status) with a formatted message when `cond` is false.
#define SLIDESPARSE_CHECK(cond, status, ...)                                                     \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      throw ::slidesparse::Error((status), ::fmt::format(__VA_ARGS__), __FILE__, __LINE__, "core", \
                                 #cond);                                                         \
    }                                                                                            \
  } while (0)

#define SLIDESPARSE_FAIL(status, ...) \
  throw ::slidesparse::Error((status), ::fmt::format(__VA_ARGS__), __FILE__, __LINE__, "core")

// Invariants of our own code: a failure is a bug (Status::kInternal).
#define SLIDESPARSE_ASSERT(cond, ...) \
  SLIDESPARSE_CHECK(cond, ::slidesparse::Status::kInternal, "internal error: " __VA_ARGS__)
