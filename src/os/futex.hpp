// SPDX-License-Identifier: MIT
// Shared (not private) futex wait/wake on 32-bit words inside a MAP_SHARED mapping.
// Shared futexes key on the backing page, so they work between processes that map the same
// file at different addresses; they do not cross kernels (VMs).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

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
