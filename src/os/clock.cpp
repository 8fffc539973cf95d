// SPDX-License-Identifier: MIT
// The process's TSC clock (tsc_clock.hpp): whether it is on, and the instance behind realtime_ns().
#include "os/tsc_clock.hpp"

#include "os/clock.hpp"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace shmlink::os {
namespace {

struct HwSource {
  static std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
    return __rdtsc();
#else
    return 0;
#endif
  }
  static std::uint64_t ticks_ordered() noexcept {
#if defined(__x86_64__)
    _mm_lfence();
    const std::uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    return 0;
#endif
  }
  static std::int64_t exact_ns() noexcept { return now_ns(CLOCK_REALTIME); }
};

/// x86-64 and tsc_clock_wanted() with the environment and the kernel's clocksource.
bool decide() noexcept {
#if defined(__x86_64__)
  try {
    std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    std::string name;
    if (!(f >> name)) name.clear();
    return tsc_clock_wanted(std::getenv("SHMLINK_TSC_CLOCK"), name);
  } catch (...) {
    return false;
  }
#else
  return false;
#endif
}

TscClock<HwSource>& instance() noexcept {
  static TscClock<HwSource> clock(decide());
  return clock;
}

}  // namespace

bool tsc_clock_wanted(const char* env, std::string_view clocksource) noexcept {
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  if (env != nullptr && std::strcmp(env, "1") == 0) return true;
  return clocksource == "tsc";
}

bool tsc_clock_enabled() noexcept { return instance().enabled(); }

std::int64_t tsc_realtime_ns() noexcept {
  // Per thread, a reading never comes out below the previous one by less than 1 us: a
  // re-anchor may land a few ns below the extrapolation just before it, and a writer's
  // successive frames should not go back in time for that. A larger step back is the clock's
  // own (settimeofday) and is passed on. Initial-exec TLS: no __tls_get_addr call per read.
  [[gnu::tls_model("initial-exec")]] static thread_local std::int64_t last = 0;
  std::int64_t v = instance().now();
  if (v < last && last - v < 1'000) v = last;
  last = v;
  return v;
}

}  // namespace shmlink::os
