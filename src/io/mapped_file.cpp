#include "io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/check.hpp"

namespace slidesparse {

Mapping map_file_readonly(const std::string& path, std::string_view kind) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    SLIDESPARSE_FAIL(err == ENOENT || err == ENOTDIR ? Status::kNotFound : Status::kIoError,
                     "cannot open {} file '{}': {}", kind, path, std::strerror(err));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    SLIDESPARSE_FAIL(Status::kIoError, "cannot stat '{}': {}", path, std::strerror(errno));
  }
  SLIDESPARSE_CHECK(!S_ISDIR(st.st_mode), Status::kIoError, "'{}' is a directory, expected a {} file",
                    path, kind);
  SLIDESPARSE_CHECK(S_ISREG(st.st_mode), Status::kIoError,
                    "'{}' is not a regular file (mode {:o}), expected a {} file", path,
                    static_cast<unsigned>(st.st_mode), kind);
  Mapping m;
  m.size = uint64_t(st.st_size);
  SLIDESPARSE_CHECK(m.size <= std::numeric_limits<size_t>::max(), Status::kIoError,
                    "'{}' ({} bytes) does not fit the address space", path, m.size);
  if (m.size == 0) return m;  // the format parser reports the empty file
  void* p = ::mmap(nullptr, size_t(m.size), PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    SLIDESPARSE_FAIL(Status::kIoError, "cannot mmap '{}' ({} bytes): {}", path, m.size, std::strerror(errno));
  }
  m.data = static_cast<const uint8_t*>(p);
  return m;
}

void unmap_file(const Mapping& m) noexcept {
  if (m.data) ::munmap(const_cast<uint8_t*>(m.data), size_t(m.size));
}

}  // namespace slidesparse
