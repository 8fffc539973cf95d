// SPDX-License-Identifier: MIT
// Polling with a bounded back-off, for the waits that must work between kernels: in memory shared
// with other VMs (an ivshmem BAR2, Placement::same_kernel false) a peer's stores arrive but its
// FUTEX_WAKE stays in its own kernel, so a waiter can only look again. PollBackoff makes a long
// wait cheap: a few looks with a pause instruction, then sleeps that double from 1 us up to
// 50 us (the kernel's default timer slack adds about 50 us to each), so a waiter costs a few
// wake-ups per millisecond instead of a whole core, and sees a change within ~0.1 ms.
#pragma once

#include "os/clock.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>

namespace shmlink::os {

/// The pause between two looks of a polling wait (docs/design/streams.md "Streams on another
/// kernel"). One per wait; not thread-safe (a local of the waiting thread).
class PollBackoff {
 public:
  /// Looks that only pause (cpu_relax) before the first sleep.
  static constexpr int kSpinLooks = 64;
  /// The first sleep, ns.
  static constexpr std::int64_t kFirstNapNs = 1'000;
  /// The longest sleep, ns: bounds how late a change is seen (plus the timer slack).
  static constexpr std::int64_t kMaxNapNs = 50'000;

  /// Pauses before the next look: a pause instruction for the first kSpinLooks calls, then a
  /// nanosleep (CLOCK_MONOTONIC, never past `deadline_ns`) that doubles up to kMaxNapNs.
  /// @return false when a signal interrupted the sleep (EINTR), true otherwise.
  bool pause(std::int64_t deadline_ns) noexcept {
    if (looks_ < kSpinLooks) {
      ++looks_;
      cpu_relax();
      return true;
    }
    const std::int64_t left = deadline_ns - monotonic_ns();
    if (left <= 0) return true;
    const timespec nap = to_timespec(std::min(nap_ns_, left));
    nap_ns_ = std::min(nap_ns_ * 2, kMaxNapNs);
    return ::clock_nanosleep(CLOCK_MONOTONIC, 0, &nap, nullptr) != EINTR;
  }

 private:
  int looks_ = 0;
  std::int64_t nap_ns_ = kFirstNapNs;
};

/// Result of poll_until().
enum class PollResult { ready, timed_out, interrupted };

/// Looks at `ready()` until it returns true, with a PollBackoff pause between looks, until
/// CLOCK_MONOTONIC reaches `deadline_ns` (INT64_MAX: none; checked at each look, so the wait
/// ends by it). `ready()` is called at least once; its own loads carry the memory ordering.
/// @return ready, timed_out, or interrupted (a signal ended a sleep).
template <class Ready>
PollResult poll_until(Ready&& ready, std::int64_t deadline_ns) noexcept(noexcept(ready())) {
  PollBackoff backoff;
  for (;;) {
    if (ready()) return PollResult::ready;
    if (monotonic_ns() >= deadline_ns) return PollResult::timed_out;
    if (!backoff.pause(deadline_ns)) return PollResult::interrupted;
  }
}

}  // namespace shmlink::os
