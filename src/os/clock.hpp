// SPDX-License-Identifier: MIT
// Clocks in nanoseconds and timespec conversions.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace shmlink::os {

/// Nanoseconds of `clock` (CLOCK_MONOTONIC, CLOCK_REALTIME, ...).
inline std::int64_t now_ns(clockid_t clock) noexcept {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
/// CLOCK_MONOTONIC in ns: deadlines and timeouts.
inline std::int64_t monotonic_ns() noexcept { return now_ns(CLOCK_MONOTONIC); }
std::int64_t tsc_realtime_ns() noexcept;  // tsc_clock.hpp
/// CLOCK_REALTIME in ns since the epoch: the timestamps stored in streams and samples. Read
/// through the TSC where the kernel keeps time with it (os/tsc_clock.hpp: within tens of ns of
/// clock_gettime, re-anchored every 1 ms; SHMLINK_TSC_CLOCK=0 turns it off).
inline std::int64_t realtime_ns() noexcept { return tsc_realtime_ns(); }

/// ns -> timespec (ns >= 0).
inline timespec to_timespec(std::int64_t ns) noexcept {
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}
/// timespec -> ns.
inline std::int64_t from_timespec(const timespec& ts) noexcept {
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// Absolute CLOCK_MONOTONIC deadline in ns for a relative timeout; INT64_MAX for "forever".
inline std::int64_t deadline_after(std::chrono::nanoseconds timeout) noexcept {
  if (timeout == std::chrono::nanoseconds::max()) return INT64_MAX;
  if (timeout.count() <= 0) return monotonic_ns();
  const std::int64_t now = monotonic_ns();
  return timeout.count() > INT64_MAX - now ? INT64_MAX : now + timeout.count();
}

/// One spin-wait hint (x86 PAUSE, aarch64 YIELD).
inline void cpu_relax() noexcept {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace shmlink::os
