// SPDX-License-Identifier: MIT
// Small POSIX helpers: errno-to-Error with the resource named, a unique fd.
#pragma once

#include <shmlink/error.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace shmlink::os {

/// Throws Error for errno `err`: "<action> <resource>: <strerror(err)>".
[[noreturn]] inline void throw_errno(int err, const std::string& action, const std::string& resource) {
  throw Error(errc_from_errno(err), action + " " + resource + ": " + std::strerror(err));
}

/// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  int release() noexcept {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace shmlink::os
