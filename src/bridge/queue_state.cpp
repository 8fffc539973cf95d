// SPDX-License-Identifier: MIT
#include "bridge/queue_state.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace shmlink::bridge {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw Error(errc_from_errno(err), what + " " + path + ": " + std::strerror(err));
}

/// The pid holding a flock on the file of `fd`, from /proc/locks ("N: FLOCK ADVISORY WRITE pid
/// MAJ:MIN:INODE ..."); 0 when unknown (no /proc, another namespace).
long flock_holder(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return 0;
  char want[64];
  std::snprintf(want, sizeof want, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream in(line);
    std::string id, kind, mode, access, file;
    long pid = 0;
    if (in >> id >> kind >> mode >> access >> pid >> file && kind == "FLOCK" && file == want) return pid;
  }
  return 0;
}

/// Takes the exclusive lock of an open state file; closes `fd` and throws when it is taken.
void lock_or_throw(int fd, const std::string& path) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return;
  const int err = errno;
  if (err == EWOULDBLOCK) {
    const long holder = flock_holder(fd);
    ::close(fd);
    throw Error(Errc::busy, "bridge state file " + path + " is locked by another bridge end" +
                                (holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string()) +
                                ": a second sender or receiver of this queue");
  }
  ::close(fd);
  fail("locking bridge state file", path, err);
}

}  // namespace

StateFile::StateFile(StateFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      path_(std::move(o.path_)) {}
StateFile& StateFile::operator=(StateFile&& o) noexcept {
  if (this != &o) {
    if (base_ != nullptr) ::munmap(base_, size_);
    if (fd_ >= 0) ::close(fd_);  // releases the lock
    fd_ = std::exchange(o.fd_, -1);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}
StateFile::~StateFile() {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
}

StateFile StateFile::open_existing(const std::string& path) {
  StateFile f;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return f;
    fail("opening bridge state file", path, errno);
  }
  lock_or_throw(fd, path);
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
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    fail("mapping bridge state file", path, err);
  }
  f.fd_ = fd;
  f.base_ = p;
  f.size_ = static_cast<std::size_t>(st.st_size);
  f.path_ = path;
  return f;
}

StateFile StateFile::create_temp(const std::string& path, std::size_t bytes) {
  StateFile f;
  static std::atomic<unsigned> serial{0};  // two ends of one process never share a temporary name
  f.path_ = path + ".tmp-" + std::to_string(::getpid()) + "-" +
            std::to_string(serial.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(f.path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail("creating bridge state file", f.path_, errno);
  lock_or_throw(fd, f.path_);  // nobody else knows this name yet: never contended
  // Blocks allocated now: a full file system (tmpfs /dev/shm) is an error here, naming the file,
  // rather than a SIGBUS at the first store into a hole of a sparse file.
  if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)); err != 0) {
    ::close(fd);
    ::unlink(f.path_.c_str());
    fail("allocating " + std::to_string(bytes) + " bytes for bridge state file", f.path_, err);
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    ::unlink(f.path_.c_str());
    fail("mapping bridge state file", f.path_, err);
  }
  f.fd_ = fd;
  f.base_ = p;
  f.size_ = bytes;
  return f;
}

void StateFile::publish(const std::string& path, bool replace) {
  if (replace) {
    if (::rename(path_.c_str(), path.c_str()) != 0) {
      const int err = errno;
      ::unlink(path_.c_str());
      fail("renaming bridge state file over", path, err);
    }
  } else {
    // link() never replaces: two ends starting at once cannot both believe they own the file.
    const int rc = ::link(path_.c_str(), path.c_str());
    const int err = errno;
    ::unlink(path_.c_str());
    if (rc != 0 && err == EEXIST)
      throw Error(Errc::busy, "bridge state file " + path + " was created meanwhile by another bridge end");
    if (rc != 0) fail("creating bridge state file", path, err);
  }
  path_ = path;
}

std::string state_path(const std::string& queue_file, const char* suffix) {
  std::string p = queue_file;
  if (p.ends_with(".shm")) p.resize(p.size() - 4);
  return p + suffix;
}

}  // namespace shmlink::bridge
