// SPDX-License-Identifier: MIT
// Helpers shared by shmlink's tests: a private stream directory, child processes with timeouts.
#pragma once

#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace shmlink::test {

/// A fresh directory under /dev/shm, exported as SHMLINK_DIR for the test's lifetime (so tests
/// never touch real streams), removed with its contents at the end.
class TempStreamDir {
 public:
  TempStreamDir() {
    std::string tmpl = "/dev/shm/shmlink-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    const char* old = std::getenv("SHMLINK_DIR");
    if (old != nullptr) old_ = old, had_old_ = true;
    ::setenv("SHMLINK_DIR", path_.c_str(), 1);
  }
  TempStreamDir(const TempStreamDir&) = delete;
  TempStreamDir& operator=(const TempStreamDir&) = delete;
  ~TempStreamDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (had_old_) ::setenv("SHMLINK_DIR", old_.c_str(), 1);
    else ::unsetenv("SHMLINK_DIR");
  }
  /// The directory.
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Number of entries in it (to check nothing is left behind).
  [[nodiscard]] int entries() const {
    int n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(path_)) ++n;
    return n;
  }

 private:
  std::string path_, old_;
  bool had_old_ = false;
};

/// A StreamSpec of `shape` (ISIO order) and `dtype`, other fields at their defaults.
inline StreamSpec spec_of(std::vector<std::uint32_t> shape, Dtype dtype) {
  StreamSpec s;
  s.shape = std::move(shape);
  s.dtype = dtype;
  return s;
}

/// Forks a child that runs `body` and _exit()s with its return value (exceptions -> 99).
inline pid_t spawn(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
      rc = 98;
    }
    ::_exit(rc);
  }
  return pid;
}

/// Waits for `pid` at most `seconds`; kills it (SIGKILL) when it overstays. Returns the exit
/// status, or -SIGNAL when it died by a signal, or -1000 when it had to be killed.
inline int reap(pid_t pid, double seconds = 30) {
  const long long limit = static_cast<long long>(seconds * 1000);
  for (long long waited = 0;; waited += 5) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    if (r < 0) return -2000;
    if (waited >= limit) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1000;
    }
    struct timespec ts{0, 5'000'000};
    ::nanosleep(&ts, nullptr);
  }
}

}  // namespace shmlink::test
