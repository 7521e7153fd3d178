// slidesparse internal: helpers shared by the core .cpp files (row-parallel loops, unaligned
// element access, per-size dispatch, the nonzero bit mask of a dtype).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "common/check.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse::detail {

// Tensors come straight from mmap'd files whose data offsets need not be aligned to the element
// size, so every access goes through memcpy (one unaligned load/store after optimization).
template <class U>
inline U load(const uint8_t* p) noexcept {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
}
template <class U>
inline void store(uint8_t* p, U v) noexcept {
  std::memcpy(p, &v, sizeof(U));
}

// Bits that must be set somewhere for an element to count as nonzero. element_is_zero is either
// "all bits zero" (integers, bool) or "all bits but the sign zero" (floats, so -0.0 is zero); asking
// it about the lone sign-bit pattern tells which. Host and file are little-endian.
template <class U>
inline U nonzero_mask(DType t) noexcept {
  const U sign = U(U(1) << (8 * sizeof(U) - 1));
  uint8_t bytes[sizeof(U)];
  std::memcpy(bytes, &sign, sizeof(U));
  return element_is_zero(t, bytes) ? U(~sign) : U(~U(0));
}

// Calls fn(U{}) with the unsigned integer type as wide as one element, so that inner loops are
// compiled once per element size instead of branching per element.
template <class Fn>
inline void dispatch_size(DType t, Fn&& fn) {
  switch (dtype_size(t)) {
    case 1: fn(uint8_t{}); return;
    case 2: fn(uint16_t{}); return;
    case 4: fn(uint32_t{}); return;
    case 8: fn(uint64_t{}); return;
    default: break;
  }
  SLIDESPARSE_FAIL(Status::kInternal, "internal error: dtype {} has unexpected size {}",
                   dtype_token(t), dtype_size(t));
}

inline std::string layer_label(std::string_view layer) {
  return layer.empty() ? std::string("<unnamed>") : std::string(layer);
}

// Runs fn(row_begin, row_end) over contiguous blocks of [0, rows) on up to num_threads threads
// (the caller's thread takes the first block). Errors are rethrown after every block finished; the
// one from the lowest block wins, so the reported row is the first bad row whatever the thread count.
template <class Fn>
void parallel_rows(int64_t rows, int num_threads, int64_t work_per_row, Fn&& fn) {
  // Below this many elements per thread, starting a thread costs more than the work it takes over.
  constexpr int64_t kMinWorkPerThread = int64_t(1) << 15;
  int64_t t = std::min<int64_t>(std::max(num_threads, 1), rows);
  const int64_t work = rows * std::max<int64_t>(work_per_row, 1);
  t = std::min<int64_t>(t, std::max<int64_t>(work / kMinWorkPerThread, 1));
  if (t <= 1) {
    if (rows > 0) fn(int64_t(0), rows);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(t));
  auto run_block = [&](int64_t i) {
    try {
      fn(rows * i / t, rows * (i + 1) / t);
    } catch (...) {
      errors[size_t(i)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(t - 1));
  int64_t i = 1;
  for (; i < t; ++i) {
    try {
      pool.emplace_back(run_block, i);
    } catch (const std::system_error&) {
      break;  // out of threads: the remaining blocks run on this thread below
    }
  }
  for (int64_t j = i; j < t; ++j) run_block(j);
  run_block(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace slidesparse::detail
