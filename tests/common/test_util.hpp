// SPDX-License-Identifier: MIT
// Helpers shared by shmlink's tests: a private stream directory, child processes with timeouts.
#pragma once

#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <new>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace shmlink::test {

/// True in a test binary built with AddressSanitizer (the asan preset; the CLI and the library
/// it runs are then instrumented too). A test whose subject ASan cannot see, such as external
/// programs talking to each other or a race between processes renaming files, repeats under ASan
/// only code paths that other tests of the same binary already run there: it skips under ASan with
/// that reason (docs/testing.md) and runs, unchanged, in the dev preset.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kBuiltWithAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kBuiltWithAsan = true;
#else
inline constexpr bool kBuiltWithAsan = false;
#endif
#else
inline constexpr bool kBuiltWithAsan = false;
#endif

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

/// A `T` in anonymous MAP_SHARED memory, constructed in place: forked children share it with the
/// parent (use std::atomic members for flags and counters). T must be trivially destructible.
template <class T>
class Shared {
  static_assert(std::is_trivially_destructible_v<T>, "Shared<T> never runs ~T");

 public:
  Shared() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap(MAP_SHARED | MAP_ANONYMOUS) failed");
    ptr_ = new (p) T{};
  }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() { ::munmap(ptr_, sizeof(T)); }
  T* operator->() const noexcept { return ptr_; }
  T& operator*() const noexcept { return *ptr_; }

 private:
  T* ptr_ = nullptr;
};

/// Polls `pred` every millisecond until it is true or `seconds` have passed; returns pred().
/// For handshakes between processes (a generous bound, never a timing assertion).
template <class Pred>
bool wait_until(Pred pred, double seconds = 20) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// True while `pid` (a child of this process) has not exited (it is not reaped).
inline bool still_running(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

/// Chunk offsets of an ISIO 2.00 file with CBsize 0, from the reference's rules (section 5:
/// chunks back to back, each rounded up to 8 bytes), written independently of the library so
/// that tests can check raw bytes the way a milk reader finds them.
struct IsioOffsets {
  std::size_t data, keywords, semaphores, semlog, sem_read_pid, sem_write_pid, semctrl, semstatus,
      proc_trace, atimearray, writetimearray, cntarray, file_size;
};

/// @param data_bytes imdatamemsize; @param keywords NBkw; @param semaphores sem;
/// @param zsize size[2]; @param temporal imagetype has CIRCULAR_BUFFER | ZAXIS_TEMPORAL.
inline IsioOffsets isio_offsets(std::size_t data_bytes, std::size_t keywords, std::size_t semaphores,
                                std::size_t zsize, bool temporal) {
  auto r8 = [](std::size_t n) { return (n + 7) / 8 * 8; };
  IsioOffsets o{};
  o.data = 384;
  o.keywords = o.data + r8(data_bytes);
  o.semaphores = o.keywords + r8(128 * keywords);
  o.semlog = o.semaphores + r8(32 * semaphores);
  o.sem_read_pid = o.semlog + 32;
  o.sem_write_pid = o.sem_read_pid + r8(4 * semaphores);
  o.semctrl = o.sem_write_pid + r8(4 * semaphores);
  o.semstatus = o.semctrl + r8(4 * semaphores);
  o.proc_trace = o.semstatus + r8(4 * semaphores);
  o.atimearray = o.proc_trace + 64 * 10;
  const std::size_t t = temporal ? zsize : 0;
  o.writetimearray = o.atimearray + r8(16 * t);
  o.cntarray = o.writetimearray + r8(16 * t);
  o.file_size = o.cntarray + r8(8 * t);
  return o;
}

/// Where a forked child records its first failed check, for the parent's failure message.
/// Lives in Shared<> memory; lock-free atomics work across fork.
struct ChildReport {
  std::atomic<int> line{0};             ///< source line of the first failed check (0: none)
  std::atomic<std::int64_t> value{0};   ///< a value that check wants printed
  /// "child check failed at line L (value V)", or "no failed check".
  [[nodiscard]] std::string describe() const {
    const int l = line.load();
    if (l == 0) return "no failed check";
    return "child check failed at line " + std::to_string(l) + " (value " + std::to_string(value.load()) + ")";
  }
};

}  // namespace shmlink::test

/// In a forked child's body: unless `cond`, record this line and `val` in `report` (a
/// ChildReport*) and return 1 from the body.
#define SHMLINK_CHILD_CHECK(report, cond, val)                                          \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      int expected_zero_ = 0;                                                           \
      if ((report)->line.compare_exchange_strong(expected_zero_, __LINE__))             \
        (report)->value.store(static_cast<std::int64_t>(val));                          \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)

namespace shmlink {
/// gtest prints an Errc by name and number.
inline void PrintTo(Errc e, std::ostream* os) {
  *os << shmlink::strerror(e) << " (" << static_cast<int>(e) << ")";
}
}  // namespace shmlink
