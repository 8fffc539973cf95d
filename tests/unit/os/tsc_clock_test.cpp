// SPDX-License-Identifier: MIT
// The TSC-based CLOCK_REALTIME (src/os/tsc_clock.hpp): its logic against a fake counter and
// clock, then the process's real clock against clock_gettime() from several threads.
#include "os/clock.hpp"
#include "os/tsc_clock.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;

/// A fake time base: `ns` is CLOCK_REALTIME, `tsc` the counter; tests move both.
struct Fake {
  static inline std::uint64_t tsc = 0;
  static inline std::int64_t ns = 0;
  static inline int exact_calls = 0;
  static inline std::uint64_t bracket = 0;  ///< ticks that pass during an exact reading
  static std::uint64_t ticks() noexcept { return tsc; }
  static std::uint64_t ticks_ordered() noexcept {
    const std::uint64_t t = tsc;
    tsc += bracket;  // the first read of a bracket returns t, the second t + bracket
    return t;
  }
  static std::int64_t exact_ns() noexcept {
    ++exact_calls;
    return ns;
  }
  /// Advances both by `dns` ns of a `ghz` GHz counter.
  static void advance(std::int64_t dns, double ghz = 3.0) {
    ns += dns;
    tsc += static_cast<std::uint64_t>(static_cast<double>(dns) * ghz);
  }
  static void reset() {
    tsc = 1'000'000;
    ns = 1'700'000'000'000'000'000;
    exact_calls = 0;
    bracket = 0;
  }
};
using FakeClock = os::TscClock<Fake>;

/// |v - Fake::ns|, ns.
std::int64_t off(std::int64_t v) { return v > Fake::ns ? v - Fake::ns : Fake::ns - v; }

/// Runs the clock through its first rate: anchors at 0 and at 1 ms.
void calibrate(FakeClock& c) {
  EXPECT_EQ(c.now(), Fake::ns);
  Fake::advance(1'000'000);
  EXPECT_EQ(c.now(), Fake::ns);
  ASSERT_TRUE(c.calibrated());
  EXPECT_NEAR(c.ns_per_tick(), 1.0 / 3.0, 1e-6);
}

TEST(TscClock, ExactUntilARateIsKnownThenExtrapolatesWithinTheWindow) {
  Fake::reset();
  FakeClock c(true);
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_FALSE(c.calibrated());
  Fake::advance(500'000);  // half a millisecond: too short a baseline for a rate
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_FALSE(c.calibrated());
  Fake::advance(500'000);
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_TRUE(c.calibrated());

  // Within the 1 ms window: no clock_gettime, values follow the counter.
  const int calls = Fake::exact_calls;
  for (int i = 0; i < 100; ++i) {
    Fake::advance(7'000);
    EXPECT_LE(off(c.now()), 1);
  }
  EXPECT_EQ(Fake::exact_calls, calls);
  // Past the window: one exact reading, which becomes the anchor.
  Fake::advance(400'000);
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_EQ(Fake::exact_calls, calls + 1);
  Fake::advance(10);
  EXPECT_LE(off(c.now()), 1);
  EXPECT_EQ(Fake::exact_calls, calls + 1);
}

TEST(TscClock, FollowsAClockStepWithinOneWindowAndKeepsItsRate) {
  Fake::reset();
  FakeClock c(true);
  calibrate(c);
  // The clock steps forward by 1 s (settimeofday) while the counter moves 1.2 ms.
  Fake::advance(1'200'000);
  Fake::ns += 1'000'000'000;
  EXPECT_EQ(c.now(), Fake::ns);  // window expired: exact
  Fake::advance(300'000);
  EXPECT_LE(off(c.now()), 1);
  EXPECT_NEAR(c.ns_per_tick(), 1.0 / 3.0, 1e-6);
  // A step back: exact at the next anchor, rate kept.
  Fake::advance(900'000);
  Fake::ns -= 5'000'000'000;
  EXPECT_EQ(c.now(), Fake::ns);
  Fake::advance(100'000);
  EXPECT_LE(off(c.now()), 1);
  EXPECT_NEAR(c.ns_per_tick(), 1.0 / 3.0, 1e-6);
}

TEST(TscClock, AStepInsideARateBaselineIsNotTakenAsARate) {
  Fake::reset();
  FakeClock c(true);
  calibrate(c);
  // Keep anchoring every 1.1 ms for over a second, with a +2 ms step in the middle: the rate
  // measured across the step would be 2000 ppm off; it is refused and the baseline restarts.
  for (int i = 0; i < 1200; ++i) {
    Fake::advance(1'100'000);
    if (i == 600) Fake::ns += 2'000'000;
    ASSERT_LE(off(c.now()), 1) << "anchor " << i;
  }
  EXPECT_NEAR(c.ns_per_tick(), 1.0 / 3.0, 1e-6);
  // A real frequency change of 100 ppm over more than a second is followed.
  for (int i = 0; i < 2500; ++i) {
    Fake::advance(1'100'000, 3.0 * (1 - 100e-6));
    ASSERT_LE(off(c.now()), 100) << "anchor " << i;
  }
  // (The old rate is 3.3e-5 ns per tick away; the baseline still holds a little of it.)
  EXPECT_NEAR(c.ns_per_tick(), 1.0 / (3.0 * (1 - 100e-6)), 1e-5);
}

TEST(TscClock, LongIdleRestartsTheBaselineAndExtrapolationResumes) {
  Fake::reset();
  FakeClock c(true);
  calibrate(c);
  Fake::advance(3'600'000'000'000);  // an hour without reads
  EXPECT_EQ(c.now(), Fake::ns);
  Fake::advance(200'000);
  EXPECT_LE(off(c.now()), 1);
}

TEST(TscClock, ACounterOutsideAPlausibleRateTurnsItselfOff) {
  Fake::reset();
  FakeClock c(true);
  EXPECT_EQ(c.now(), Fake::ns);
  Fake::advance(2'000'000, 100.0);  // 100 GHz: 0.01 ns per tick
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_FALSE(c.enabled());
  const int calls = Fake::exact_calls;
  Fake::advance(10, 100.0);
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_EQ(Fake::exact_calls, calls + 1);
}

TEST(TscClock, AReadingPreemptedInsideItsBracketIsNotAnAnchor) {
  Fake::reset();
  FakeClock c(true);
  Fake::bracket = 30'000;  // 10 us at 3 GHz: the thread was preempted around clock_gettime
  EXPECT_EQ(c.now(), Fake::ns);
  Fake::bracket = 0;
  Fake::advance(1'000'000);
  EXPECT_EQ(c.now(), Fake::ns);  // the first usable anchor: the baseline starts here
  EXPECT_FALSE(c.calibrated());
  Fake::advance(1'000'000);
  EXPECT_EQ(c.now(), Fake::ns);
  EXPECT_TRUE(c.calibrated());
  // Calibrated: a bracket over 500 ns is refused too, so the window is not renewed by it.
  Fake::advance(1'100'000);
  Fake::bracket = 3'000;  // 1 us
  EXPECT_EQ(c.now(), Fake::ns);  // the exact reading is still returned
  Fake::bracket = 0;
  const int calls = Fake::exact_calls;
  Fake::advance(100);
  EXPECT_EQ(c.now(), Fake::ns);  // still past the old window: exact again
  EXPECT_EQ(Fake::exact_calls, calls + 1);
}

TEST(TscClock, AWrongFirstRateIsCorrectedByTheSecondDisagreement) {
  Fake::reset();
  FakeClock c(true);
  EXPECT_EQ(c.now(), Fake::ns);
  Fake::ns += 1'000'000;  // the first baseline: 1 ms of clock against 1 ms + 0.2 % of ticks
  Fake::tsc += 3'006'000;
  EXPECT_EQ(c.now(), Fake::ns);
  ASSERT_TRUE(c.calibrated());
  for (int i = 0; i < 2000; ++i) {  // 2.2 s of anchors at the true 3 GHz
    Fake::advance(1'100'000);
    ASSERT_LE(off(c.now()), 0) << "anchor " << i;
  }
  EXPECT_NEAR(c.ns_per_tick(), 1.0 / 3.0, 1e-6);
}

TEST(TscClock, DisabledIsClockGettime) {
  Fake::reset();
  FakeClock c(false);
  for (int i = 0; i < 3; ++i) {
    Fake::advance(1'000'000);
    EXPECT_EQ(c.now(), Fake::ns);
  }
  EXPECT_EQ(Fake::exact_calls, 3);
  EXPECT_FALSE(c.calibrated());
}

TEST(TscClock, TheCounterGoingBackwardsTakesTheExactPath) {
  Fake::reset();
  FakeClock c(true);
  calibrate(c);
  Fake::tsc -= 1000;  // e.g. a CPU whose counter is slightly behind the anchor's
  Fake::ns += 10;
  EXPECT_EQ(c.now(), Fake::ns);
}

/// The real clock: every reading lies between two clock_gettime() readings taken around it
/// (less a small tolerance for the anchor's jitter), from four threads at once, over 50 ms.
TEST(TscClock, RealClockAgreesWithClockGettimeAcrossThreads) {
  std::string source;
  std::ifstream("/sys/devices/system/clocksource/clocksource0/current_clocksource") >> source;
#if defined(__x86_64__)
  if (source == "tsc" && std::getenv("SHMLINK_TSC_CLOCK") == nullptr) {
    EXPECT_TRUE(os::tsc_clock_enabled());
  }
#endif
  constexpr std::int64_t kToleranceNs = 5'000;
  std::vector<std::thread> threads;
  std::vector<std::int64_t> worst(4, 0);
  std::vector<long> reads(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::int64_t end = os::now_ns(CLOCK_MONOTONIC) + 50'000'000;
      while (os::now_ns(CLOCK_MONOTONIC) < end) {
        const std::int64_t a = os::now_ns(CLOCK_REALTIME);
        const std::int64_t v = os::realtime_ns();
        const std::int64_t b = os::now_ns(CLOCK_REALTIME);
        // Outside [a, b] by how much (0 when inside).
        const std::int64_t off = v < a ? a - v : v > b ? v - b : 0;
        // A reading bracketed by a long gap (the thread was preempted) proves nothing.
        if (b - a < 50'000 && off > worst[t]) worst[t] = off;
        ++reads[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_GT(reads[t], 100) << "thread " << t;
    EXPECT_LE(worst[t], kToleranceNs) << "thread " << t << ": a TSC reading strayed from CLOCK_REALTIME";
  }
#if defined(__x86_64__)
  if (source == "tsc" && std::getenv("SHMLINK_TSC_CLOCK") == nullptr) {
    EXPECT_TRUE(os::tsc_clock_enabled());
  }
#endif
}

/// SHMLINK_TSC_CLOCK: "0" always off, "1" always on, otherwise (unset, empty, other values) on
/// exactly when the kernel's clocksource is "tsc".
TEST(TscClock, EnvironmentAndClocksourceDecide) {
  EXPECT_TRUE(os::tsc_clock_wanted(nullptr, "tsc"));
  EXPECT_FALSE(os::tsc_clock_wanted(nullptr, "kvm-clock"));
  EXPECT_FALSE(os::tsc_clock_wanted(nullptr, ""));
  EXPECT_FALSE(os::tsc_clock_wanted("0", "tsc"));
  EXPECT_FALSE(os::tsc_clock_wanted("0", "kvm-clock"));
  EXPECT_TRUE(os::tsc_clock_wanted("1", "kvm-clock"));
  EXPECT_TRUE(os::tsc_clock_wanted("1", "hpet"));
  EXPECT_TRUE(os::tsc_clock_wanted("yes", "tsc"));
  EXPECT_FALSE(os::tsc_clock_wanted("yes", "kvm-clock"));
  EXPECT_FALSE(os::tsc_clock_wanted("", "kvm-clock"));
}

}  // namespace
