#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/check.hpp"

namespace slidesparse {
namespace {

std::string parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? std::string(".") : dir;
}

// Makes the rename itself durable. Some filesystems refuse fsync on a directory (EINVAL); the data
// is already synced by then, so this stays best-effort rather than failing a finished write.
void fsync_directory(const std::string& dir) noexcept {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  SLIDESPARSE_CHECK(!path_.empty(), Status::kInvalidArgument, "output path is empty");
  const std::filesystem::path p(path_);
  const std::string name = p.filename().string();
  SLIDESPARSE_CHECK(!name.empty() && name != "." && name != "..", Status::kInvalidArgument,
                    "output path '{}' does not name a file", path_);
  const std::string dir = parent_dir(path_);
  std::random_device rd;
  // O_EXCL makes a name collision (two writers, stale temp) an error we can retry, never a clobber.
  for (int attempt = 0; attempt < 16; ++attempt) {
    const uint64_t r = (uint64_t(rd()) << 32) ^ uint64_t(rd());
    std::string candidate =
        fmt::format("{}/.{}.tmp-{}-{:016x}", dir, name, static_cast<long>(::getpid()), r);
    fd_ = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) {
      temp_path_ = std::move(candidate);
      return;
    }
    if (errno != EEXIST) break;
  }
  const int err = errno;
  SLIDESPARSE_FAIL(err == ENOENT ? Status::kNotFound : Status::kIoError,
                   "cannot create a temporary file in '{}' for '{}': {}", dir, path_,
                   std::strerror(err));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* bytes, size_t n) {
  SLIDESPARSE_ASSERT(fd_ >= 0, "write to '{}' after commit", path_);
  const auto* p = static_cast<const uint8_t*>(bytes);
  while (n > 0) {
    // Linux transfers at most ~2 GiB per call; larger requests just come back short.
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      SLIDESPARSE_FAIL(Status::kIoError, "writing '{}' (temporary '{}') failed: {}", path_,
                       temp_path_, std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

void AtomicFile::commit() {
  SLIDESPARSE_ASSERT(fd_ >= 0 && !committed_, "commit of '{}' called twice", path_);
  if (::fsync(fd_) != 0) {
    SLIDESPARSE_FAIL(Status::kIoError, "fsync of '{}' failed: {}", temp_path_,
                     std::strerror(errno));
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    SLIDESPARSE_FAIL(Status::kIoError, "closing '{}' failed: {}", temp_path_, std::strerror(errno));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    SLIDESPARSE_FAIL(Status::kIoError, "renaming '{}' to '{}' failed: {}", temp_path_, path_,
                     std::strerror(errno));
  }
  committed_ = true;
  fsync_directory(parent_dir(path_));
}

void write_text_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace slidesparse
