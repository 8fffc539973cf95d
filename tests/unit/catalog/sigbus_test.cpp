// SPDX-License-Identifier: MIT
// The SIGBUS guard (read_guarded(), include/shmlink/segment.hpp) takes only the guarded thread's
// own fault: a fault of another thread, or a SIGBUS sent by kill, still kills the process. Each
// case runs in a forked child whose death the parent checks (WTERMSIG). Public API only.
#include <shmlink/segment.hpp>

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>

namespace shmlink {
namespace {

// How a SIGBUS the guard passes on ends the process: the previous action runs. That is the
// default action (death by SIGBUS), except under a sanitizer whose own SIGBUS handler is the
// previous action: it reports the fault and exits with its exit code (ASan 1, TSan 66). Either
// way the process does not go on (a guard that absorbed the fault lets the child exit 0 or 12).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizer = true;
#else
constexpr bool kSanitizer = false;
#endif
#else
constexpr bool kSanitizer = false;
#endif

bool ended_by_passed_on_sigbus(int reaped) {
  return reaped == -SIGBUS || (kSanitizer && (reaped == 1 || reaped == 66));
}

using test::TempStreamDir;

/// A shared mapping of four pages of a new file `path`, whose file is then truncated to one
/// page: reading its last page raises SIGBUS (BUS_ADRERR). Null on failure.
const std::byte* truncated_mapping(const std::string& path) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return nullptr;
  void* p = MAP_FAILED;
  if (::ftruncate(fd, 4 * page) == 0) p = ::mmap(nullptr, static_cast<std::size_t>(4 * page), PROT_READ, MAP_SHARED, fd, 0);
  const bool shrunk = ::ftruncate(fd, page) == 0;
  ::close(fd);
  return p == MAP_FAILED || !shrunk ? nullptr : static_cast<const std::byte*>(p);
}

/// The byte at `p + 3 pages` (past the truncated file's end).
std::byte read_far(const std::byte* p) {
  const volatile std::byte* far = p + 3 * ::sysconf(_SC_PAGESIZE);
  return *far;
}

/// What test::reap() said of a child.
std::string describe(int reaped) {
  if (reaped == -1000) return "did not end (killed)";
  if (reaped < 0) return "killed by signal " + std::to_string(-reaped);
  return "exited with " + std::to_string(reaped);
}

TEST(Sigbus, AnotherThreadsFaultKillsTheProcessWhileOneThreadIsGuarded) {
  TempStreamDir dir;
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(report[0]);
    const std::byte* guarded = truncated_mapping(dir.path() + "/guarded.bin");
    const std::byte* unguarded = truncated_mapping(dir.path() + "/unguarded.bin");
    if (guarded == nullptr || unguarded == nullptr) ::_exit(10);
    // The guarded thread's own fault is absorbed and reported.
    std::byte seen{1};
    const bool faulted = read_guarded({guarded, static_cast<std::size_t>(4 * ::sysconf(_SC_PAGESIZE))},
                                      [&] { seen = read_far(guarded); });
    const char verdict = faulted && seen == std::byte{0} ? 'y' : 'n';
    if (::write(report[1], &verdict, 1) != 1) ::_exit(11);
    // Another thread faults on an unguarded mapping while this one is guarded (every address):
    // that fault is not the guard's, so the process dies of it.
    std::atomic<bool> go{false}, survived{false};
    std::thread other([&] {
      while (!go.load()) std::this_thread::yield();
      (void)read_far(unguarded);
      survived.store(true);
    });
    (void)read_guarded({}, [&] {
      go.store(true);
      for (int i = 0; i < 500 && !survived.load(); ++i) {
        timespec ts{0, 10'000'000};
        ::nanosleep(&ts, nullptr);
      }
    });
    other.join();
    ::_exit(survived.load() ? 0 : 12);
  }
  ::close(report[1]);
  char verdict = '?';
  EXPECT_EQ(::read(report[0], &verdict, 1), 1);
  ::close(report[0]);
  const int reaped = test::reap(pid, 20);
  EXPECT_EQ(verdict, 'y') << "the guarded thread's read of the truncated mapping was not reported as faulted";
  EXPECT_TRUE(ended_by_passed_on_sigbus(reaped)) << "child " << describe(reaped);
}

TEST(Sigbus, ASigbusSentByKillIsNotAbsorbed) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Sent, not a fault (si_code SI_TKILL): the guard passes it on to the default action.
    (void)read_guarded({}, [] { ::raise(SIGBUS); });
    ::_exit(0);
  }
  const int reaped = test::reap(pid, 20);
  EXPECT_TRUE(ended_by_passed_on_sigbus(reaped)) << "child " << describe(reaped);
}

}  // namespace
}  // namespace shmlink
