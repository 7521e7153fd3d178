// Shared helpers for the io_* tests: a per-test temporary directory, hand-built safetensors
// images, and an error matcher that checks both the status and the message.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "slidesparse/error.hpp"
#include "temp_dir.hpp"

namespace slidesparse::testing {

namespace fs = std::filesystem;

inline std::vector<uint8_t> u64_le(uint64_t v) {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(v >> (8 * i));
  return out;
}

// 8-byte little-endian length + header text + data, exactly as the format lays it out.
inline std::vector<uint8_t> make_image(const std::string& header,
                                       const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const auto len = u64_le(header.size());
  std::copy(len.begin(), len.end(), out.begin());
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + std::ptrdiff_t(header.size()));
  return out;
}

inline std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `fn`, requires it to throw slidesparse::Error with `status` and a message containing every
// one of `parts`. Any other exception type fails the test too (gtest reports it).
inline ::testing::AssertionResult throws_error(const std::function<void()>& fn, Status status,
                                               std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.status() != status) {
      return ::testing::AssertionFailure() << "status " << status_name(e.status()) << ", expected "
                                           << status_name(status) << "; message: " << e.message();
    }
    for (const auto& p : parts) {
      if (e.message().find(p) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message lacks \"" << p << "\"; message: " << e.message();
      }
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no exception; expected " << status_name(status);
}

}  // namespace slidesparse::testing
