// SPDX-License-Identifier: MIT
// shmlink's own operations on glibc semaphores that live in shared files (ImageStreamIO's
// in-file sem_t, docs/reference/imagestreamio.md sections 4 and 12.2). Any process that maps a
// stream writable can write any bytes there, and glibc's sem_post / sem_wait abort the process
// ("The futex facility returned an unexpected error code") on some of them. These functions
// keep glibc's protocol, so glibc posters and waiters interoperate with them, but never abort,
// never loop without bound on peer-written state and ignore futex errors: a scribbled slot costs
// that slot's wake-ups, never the process.
//
// glibc's 64-bit semaphore (struct new_sem, x86-64 and aarch64):
//
//    0                   31 32                  63
//   +----------------------+----------------------+
//   | value (u32)          | nwaiters (u32)       |  data: one u64, changed by CAS only
//   +----------------------+----------------------+
//   | private (i32)        | pad (i32)            |  private: 128 = process-shared futex,
//   +----------------------+----------------------+           0 = process-private futex
//   16..31: unused by glibc (sizeof(sem_t) is 32)
//
// Post: CAS value + 1 (release), then FUTEX_WAKE 1 on the value word when nwaiters != 0.
// Wait: take a unit with a CAS value - 1 (acquire); else nwaiters + 1, FUTEX_WAIT while the value
// word is 0, take a unit and unregister in one CAS (value - 1, nwaiters - 1).
// Between kernels (a stream in memory shared with other VMs) a post's FUTEX_WAKE never reaches
// the waiter: poll_wait() takes units by polling the value instead, without registering.
#pragma once

#include "os/backoff.hpp"
#include "os/clock.hpp"
#include "os/futex.hpp"

#include <semaphore.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cstdint>

namespace shmlink::os::gsem {

static_assert(std::endian::native == std::endian::little, "the value word is the low half of data");
static_assert(sizeof(sem_t) == 32, "glibc's 64-bit sem_t");
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
// data() views a sem_t as one u64: a sem_t placed at its own alignment is aligned for that view.
// In stream files the slots are 8-aligned by construction (isio::compute_layout rounds every
// chunk to 8 bytes from offset 384 of a page-aligned mapping, and checks it).
static_assert(alignof(sem_t) >= std::atomic_ref<std::uint64_t>::required_alignment,
              "a sem_t must be aligned for atomic_ref<uint64_t>");

inline constexpr std::uint64_t kValueMask = 0xFFFF'FFFFu;
inline constexpr std::uint64_t kOneWaiter = std::uint64_t{1} << 32;
/// glibc's `private` value of a process-shared semaphore (FUTEX_PRIVATE_FLAG).
inline constexpr std::int32_t kSharedFlag = 128;
/// CAS attempts before an operation gives up on a word that keeps changing under it.
inline constexpr int kMaxCasAttempts = 1000;

inline std::atomic_ref<std::uint64_t> data(sem_t* s) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(s));
}
inline const std::uint32_t* value_word(sem_t* s) noexcept { return reinterpret_cast<const std::uint32_t*>(s); }
inline std::int32_t private_word(sem_t* s) noexcept {
  return std::atomic_ref<std::int32_t>(*(reinterpret_cast<std::int32_t*>(s) + 2)).load(std::memory_order_relaxed);
}

/// The value (sem_getvalue), clamped to 0..INT_MAX whatever the word holds.
inline int value(sem_t* s) noexcept {
  const std::uint64_t d = data(s).load(std::memory_order_relaxed);
  return static_cast<int>(std::min<std::uint64_t>(d & kValueMask, INT_MAX));
}

/// Adds one unit unless the value is already `cap` or more (then nothing happens: ISIO posts only
/// below its cap, and glibc's SEM_VALUE_MAX is INT_MAX), and wakes one waiter if any is counted.
/// @return true when a unit was added.
/// Memory ordering: the CAS is a release, pairing with take()'s acquire CAS: what the poster wrote
/// before posting is visible to the waiter that takes the unit.
inline bool post(sem_t* s, std::uint32_t cap = INT_MAX) noexcept {
  auto d = data(s);
  std::uint64_t seen = d.load(std::memory_order_relaxed);
  for (int i = 0;; ++i) {
    if ((seen & kValueMask) >= cap || i == kMaxCasAttempts) return false;
    // SYNC POINT S (release): pairs with the waiter's acquire CAS in trywait() / wait().
    if (d.compare_exchange_weak(seen, seen + 1, std::memory_order_release, std::memory_order_relaxed)) break;
  }
  if ((seen >> 32) != 0) {
    // Errors (a futex word the kernel refuses) are ignored: the post is made, a waiter re-checks.
    os::futex_wake(value_word(s), 1);
    if (private_word(s) != kSharedFlag) os::futex_wake_private(value_word(s), 1);
  }
  return true;
}

/// Takes one unit if the value is above 0 (sem_trywait). @return true when taken.
inline bool trywait(sem_t* s) noexcept {
  auto d = data(s);
  std::uint64_t seen = d.load(std::memory_order_relaxed);
  for (int i = 0; i < kMaxCasAttempts; ++i) {
    if ((seen & kValueMask) == 0) return false;
    // SYNC POINT S (acquire): pairs with post()'s release CAS.
    if (d.compare_exchange_weak(seen, seen - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
  return false;
}

/// Sets the value to 0 in one CAS and returns what it was (clamped to INT_MAX): ISIO's semflush
/// without one trywait per unit.
inline int flush(sem_t* s) noexcept {
  auto d = data(s);
  std::uint64_t seen = d.load(std::memory_order_relaxed);
  for (int i = 0; i < kMaxCasAttempts; ++i) {
    if ((seen & kValueMask) == 0) return 0;
    // SYNC POINT S (acquire): pairs with post()'s release CAS, as a wait that took every unit
    // would; the waiter half of the word is kept.
    if (d.compare_exchange_weak(seen, seen & ~kValueMask, std::memory_order_acquire, std::memory_order_relaxed))
      return static_cast<int>(std::min<std::uint64_t>(seen & kValueMask, INT_MAX));
  }
  return 0;
}

/// Result of wait().
enum class WaitResult { taken, timed_out, interrupted };

/// Takes one unit, sleeping until one is posted or CLOCK_MONOTONIC reaches `deadline_ns`
/// (INT64_MAX: no deadline). Sleeps in slices of at most `slice_ns` (> 0; streams pass
/// detail::sem_recheck_ns(), 100 ms) so that a post whose wake-up went astray (a scribbled
/// `private` word makes glibc posters wake a process-private futex) is still seen. Every loop
/// step either sleeps or follows a change of the word, and the deadline is checked on each: the
/// wait ends by the deadline whatever the word holds.
inline WaitResult wait(sem_t* s, std::int64_t deadline_ns, std::int64_t slice_ns = 100'000'000) noexcept {
  if (trywait(s)) return WaitResult::taken;
  auto d = data(s);
  // Register as a waiter (glibc: fetch_add 1 << 32, acquire); posters wake the value word.
  std::uint64_t seen = d.fetch_add(kOneWaiter, std::memory_order_acquire) + kOneWaiter;
  auto unregister = [&] {
    // A scribbled count that is already 0 wraps to a large count: posters then always wake,
    // which costs a syscall per post on this slot, nothing else.
    d.fetch_sub(kOneWaiter, std::memory_order_relaxed);
  };
  for (;;) {
    if ((seen & kValueMask) != 0) {
      // Take a unit and unregister in one step (SYNC POINT S, acquire: pairs with post()).
      if (d.compare_exchange_weak(seen, seen - 1 - kOneWaiter, std::memory_order_acquire, std::memory_order_relaxed))
        return WaitResult::taken;
      // The word changed (a post, another waiter, or a peer writing it): look again, unless
      // the deadline passed.
      if (os::monotonic_ns() >= deadline_ns) {
        unregister();
        return WaitResult::timed_out;
      }
      continue;
    }
    const std::int64_t now = os::monotonic_ns();
    if (now >= deadline_ns) {
      unregister();
      return WaitResult::timed_out;
    }
    const timespec rel = os::to_timespec(std::min<std::int64_t>(deadline_ns - now, slice_ns));
    if (os::futex_wait(value_word(s), 0, &rel) == os::FutexResult::interrupted) {
      unregister();
      return WaitResult::interrupted;
    }
    seen = d.load(std::memory_order_relaxed);
  }
}

/// Takes one unit by polling the value, for a semaphore in memory shared with other kernels (VMs):
/// a poster there makes its CAS here but its FUTEX_WAKE stays in its kernel. Never registers as a
/// waiter (posters then make no wake-up for it) and never sleeps on a futex: looks at the value,
/// pauses (os::PollBackoff: a few pause instructions, then sleeps growing to 50 us), until a unit
/// is taken or CLOCK_MONOTONIC reaches `deadline_ns` (INT64_MAX: no deadline). The deadline is
/// checked at each look, so the wait ends by it whatever the word holds.
/// Memory ordering: the unit is taken by trywait()'s acquire CAS, pairing with post()'s release
/// (or a glibc poster's) on whichever kernel posted: what the poster wrote before is visible.
inline WaitResult poll_wait(sem_t* s, std::int64_t deadline_ns) noexcept {
  switch (os::poll_until([s]() noexcept { return trywait(s); }, deadline_ns)) {  // SYNC POINT S (acquire)
    case os::PollResult::ready: return WaitResult::taken;
    case os::PollResult::timed_out: return WaitResult::timed_out;
    case os::PollResult::interrupted: break;
  }
  return WaitResult::interrupted;
}

}  // namespace shmlink::os::gsem
