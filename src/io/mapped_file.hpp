// slidesparse internal: opening and memory-mapping an untrusted input file read-only, shared by the
// safetensors and GGUF readers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slidesparse {

struct Mapping {
  const uint8_t* data = nullptr;  // null for an empty file (mmap rejects length 0)
  uint64_t size = 0;
};

// Opens `path` read-only and maps all of it. `kind` names the expected file in messages
// ("safetensors", "GGUF"). Missing path -> kNotFound; a directory, FIFO, device, unreadable file
// or failed mmap -> kIoError. O_NONBLOCK: opening a FIFO by mistake fails, it does not hang.
Mapping map_file_readonly(const std::string& path, std::string_view kind);

// Releases a mapping made by map_file_readonly (no-op for an empty one).
void unmap_file(const Mapping& m) noexcept;

}  // namespace slidesparse
