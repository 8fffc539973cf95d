// SPDX-License-Identifier: MIT
// Shared (not private) futex wait/wake on 32-bit words inside a MAP_SHARED mapping.
// Shared futexes key on the backing page, so they work between processes that map the same
// file at different addresses; they do not cross kernels (VMs).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

namespace shmlink::os {

/// Result of futex_wait.
enum class FutexResult { woken, value_changed, timed_out, interrupted, fault };

/// Sleeps while `*word == expected`, at most `rel` (relative, CLOCK_MONOTONIC; nullptr = no
/// limit). Returns woken (or spurious), value_changed (EAGAIN: *word != expected on entry),
/// timed_out, interrupted (EINTR), fault (EFAULT: the word's page is gone, e.g. the file was
/// truncated under the mapping; touching it would raise SIGBUS).
inline FutexResult futex_wait(const std::uint32_t* word, std::uint32_t expected, const timespec* rel) noexcept {
  // FUTEX_WAIT without FUTEX_PRIVATE_FLAG: shared futex (keyed on the page, not the address).
  long r = ::syscall(SYS_futex, word, FUTEX_WAIT, expected, rel, nullptr, 0);
  if (r == 0) return FutexResult::woken;
  switch (errno) {
    case EAGAIN: return FutexResult::value_changed;
    case ETIMEDOUT: return FutexResult::timed_out;
    case EINTR: return FutexResult::interrupted;
    case EFAULT: return FutexResult::fault;
    default: return FutexResult::woken;  // treat anything else as spurious; callers re-check
  }
}

/// Whether the kernel has futex_waitv (Linux >= 5.16; Debian 12 runs 6.1).
enum class FutexWaitvSupport { unknown, yes, no };

/// Whether futex_waitv worked here (process-wide; learnt from the first call).
inline std::atomic<FutexWaitvSupport>& futex_waitv_support() noexcept {
  static std::atomic<FutexWaitvSupport> support{FutexWaitvSupport::unknown};
  return support;
}

/// Sleeps while `*a == va` and `*b == vb` (shared futexes, 32 bits each) with one futex_waitv
/// (Linux >= 5.16): a wake-up of either word, or a change of either before sleeping, ends it.
/// `rel` is relative (CLOCK_MONOTONIC, >= 0). Results as futex_wait(), plus `unsupported`
/// set to true (and nothing waited) when futex_waitv cannot be used here: ENOSYS (no such
/// system call), EPERM (a seccomp filter, as container runtimes install, refuses it), EINVAL or
/// EOPNOTSUPP (a kernel or filter that rejects its arguments); remembered in
/// futex_waitv_support() so that later calls fail at once without a syscall, and the caller
/// falls back to futex_wait on one word. Any other error reads as timed_out, so that a caller's
/// loop re-checks after a sleep slice instead of spinning on an error that comes back at once.
inline FutexResult futex_wait_either(const std::uint32_t* a, std::uint32_t va, const std::uint32_t* b,
                                     std::uint32_t vb, const timespec& rel, bool* unsupported) noexcept {
  *unsupported = false;
#if defined(SYS_futex_waitv)
  if (futex_waitv_support().load(std::memory_order_relaxed) == FutexWaitvSupport::no) {
    *unsupported = true;
    return FutexResult::woken;
  }
  // Shared futexes (no FUTEX_PRIVATE_FLAG): keyed on the page, so glibc's pshared sem_post and
  // other processes' FUTEX_WAKE reach them.
  struct futex_waitv w[2] = {};
  w[0].val = va;
  w[0].uaddr = reinterpret_cast<std::uintptr_t>(a);
  w[0].flags = FUTEX_32;
  w[1].val = vb;
  w[1].uaddr = reinterpret_cast<std::uintptr_t>(b);
  w[1].flags = FUTEX_32;
  // futex_waitv takes an absolute deadline on the clock it is given.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  timespec abs{now.tv_sec + rel.tv_sec, now.tv_nsec + rel.tv_nsec};
  if (abs.tv_nsec >= 1'000'000'000) {
    abs.tv_sec += 1;
    abs.tv_nsec -= 1'000'000'000;
  }
  const long r = ::syscall(SYS_futex_waitv, w, 2u, 0u, &abs, CLOCK_MONOTONIC);
  if (r >= 0) {
    futex_waitv_support().store(FutexWaitvSupport::yes, std::memory_order_relaxed);
    return FutexResult::woken;
  }
  switch (errno) {
    case ENOSYS:
    case EPERM:
    case EINVAL:
    case EOPNOTSUPP:
      futex_waitv_support().store(FutexWaitvSupport::no, std::memory_order_relaxed);
      *unsupported = true;
      return FutexResult::woken;
    case EAGAIN: return FutexResult::value_changed;
    case ETIMEDOUT: return FutexResult::timed_out;
    case EINTR: return FutexResult::interrupted;
    case EFAULT: return FutexResult::fault;
    default: return FutexResult::timed_out;  // unknown: the caller re-checks, as after a slice
  }
#else
  (void)a, (void)va, (void)b, (void)vb, (void)rel;
  *unsupported = true;
  return FutexResult::woken;
#endif
}

/// Wakes up to `count` waiters on `word` (INT_MAX: all). Returns the number woken.
inline int futex_wake(const std::uint32_t* word, int count = INT_MAX) noexcept {
  long r = ::syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

/// As futex_wake, for a process-private futex (FUTEX_WAKE_PRIVATE): wakes only waiters of this
/// process that waited with FUTEX_WAIT_PRIVATE (glibc does for a sem_t whose `private` word is 0).
inline int futex_wake_private(const std::uint32_t* word, int count = INT_MAX) noexcept {
  long r = ::syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

}  // namespace shmlink::os
