// SPDX-License-Identifier: MIT
#include "bridge/queue_state.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace shmlink::bridge {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw Error(errc_from_errno(err), what + " " + path + ": " + std::strerror(err));
}

}  // namespace

StateFile::StateFile(StateFile&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)), path_(std::move(o.path_)) {}
StateFile& StateFile::operator=(StateFile&& o) noexcept {
  if (this != &o) {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}
StateFile::~StateFile() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

StateFile StateFile::open_existing(const std::string& path) {
  StateFile f;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return f;
    fail("opening bridge state file", path, errno);
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("reading the size of bridge state file", path, err);
  }
  if (!S_ISREG(st.st_mode) || st.st_size < 64) {
    ::close(fd);
    throw Error(Errc::layout, "bridge state file " + path + ": not a regular file of at least 64 bytes");
  }
  void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail("mapping bridge state file", path, err);
  f.base_ = p;
  f.size_ = static_cast<std::size_t>(st.st_size);
  f.path_ = path;
  return f;
}

StateFile StateFile::create_temp(const std::string& path, std::size_t bytes) {
  StateFile f;
  f.path_ = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(f.path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail("creating bridge state file", f.path_, errno);
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(f.path_.c_str());
    fail("sizing bridge state file", f.path_, err);
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    ::unlink(f.path_.c_str());
    fail("mapping bridge state file", f.path_, err);
  }
  f.base_ = p;
  f.size_ = bytes;
  return f;
}

void StateFile::publish(const std::string& path) {
  if (::rename(path_.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(path_.c_str());
    fail("renaming bridge state file over", path, err);
  }
  path_ = path;
}

std::string state_path(const std::string& queue_file, const char* suffix) {
  std::string p = queue_file;
  if (p.ends_with(".shm")) p.resize(p.size() - 4);
  return p + suffix;
}

}  // namespace shmlink::bridge
