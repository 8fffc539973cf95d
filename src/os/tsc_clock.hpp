// SPDX-License-Identifier: MIT
// CLOCK_REALTIME in ns from the CPU's time-stamp counter, re-anchored to clock_gettime().
//
// Why: a stream write stamps writetime/atime (ISIO 2.00 metadata). The vDSO's clock_gettime()
// reads the TSC with an ordering fence (LFENCE;RDTSC or RDTSCP), which waits for every earlier
// load to complete: a reader that has just taken a frame and writes its answer pays that wait
// on the critical path. Measured on the development VM (`shmlink bench stream`, spin, p50 one
// way): 100-105 ns with clock_gettime, 65-70 ns with an unordered RDTSC (floor: 55-60 ns).
//
// How: a process-wide anchor (tsc, ns) and a rate (ns per tick, 32.32 fixed point), published
// under a seqlock. A read is RDTSC plus a multiply while the anchor is younger than 1 ms;
// otherwise the caller takes an exact clock_gettime() reading (bracketed by ordered TSC reads),
// returns it, and, if it wins the seqlock, makes it the new anchor. The rate is measured from a
// calibration origin at least 1 ms old at first (then at least 1 s), so the extrapolation error
// within the 1 ms window stays at the anchor's own jitter (tens of ns). Until a rate is known
// (the first millisecond of a process), and wherever the fast path is off, every read is an
// exact clock_gettime().
//
// Off (plain clock_gettime) unless: x86-64, the kernel's clocksource is "tsc" (so the kernel
// has checked the TSC is constant-rate and synchronised across CPUs), and the environment
// variable SHMLINK_TSC_CLOCK is not "0"; SHMLINK_TSC_CLOCK=1 turns it on whatever the
// clocksource (see tsc_clock_wanted()). A clock step (settimeofday, NTP step) shows within
// 1 ms: the next anchor is exact; a measured rate more than 1000 ppm off the previous one is
// taken as a step and discarded (a second disagreement in a row is taken: the old rate was
// wrong). An exact reading whose bracket of counter reads is too wide (preempted) is returned
// but never anchors. This class is not monotonic (CLOCK_REALTIME is not either): at a re-anchor
// a reading may come out up to the anchor jitter earlier than one just before it;
// tsc_realtime_ns() (clock.cpp) hides such small steps back per thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace shmlink::os {

__extension__ using u128 = unsigned __int128;  ///< rate arithmetic (g++ and clang, x86-64 and aarch64)

/// The TSC clock's state and logic, over a tick source and an exact clock so that tests can
/// drive it with fakes. `Source` provides static `std::uint64_t ticks() noexcept` (unordered
/// counter read), `std::uint64_t ticks_ordered() noexcept` (ordered read, used only around an
/// exact reading) and `std::int64_t exact_ns() noexcept` (CLOCK_REALTIME in ns).
/// Thread safety: now() may be called from any number of threads at once (the anchor is a
/// seqlock; a thread that loses the race to re-anchor returns its own exact reading).
template <class Source>
class TscClock {
 public:
  /// Window of one anchor, ns: reads older than this take an exact reading.
  static constexpr std::int64_t kAnchorNs = 1'000'000;
  /// Baseline of the first rate, ns; later rates need kRateBaselineNs.
  static constexpr std::int64_t kFirstBaselineNs = 1'000'000;
  static constexpr std::int64_t kRateBaselineNs = 1'000'000'000;
  /// The calibration origin moves when older than this (follows slow frequency drift).
  static constexpr std::int64_t kOriginMaxNs = 8'000'000'000;
  /// An anchor more than this after the previous one restarts the baseline (long idle).
  static constexpr std::int64_t kIdleNs = 1'000'000'000;
  /// Widest bracket of ordered counter reads around an exact reading that may become an anchor:
  /// the exact reading lies somewhere inside it, so its width is the anchor's error. A thread
  /// preempted inside the bracket gives a wide one, which is not used (the reading is still
  /// returned). In ns once a rate is known; in ticks before (about 0.06-1 us for 1-16 GHz).
  static constexpr std::int64_t kMaxBracketNs = 500;
  static constexpr std::uint64_t kMaxBracketTicks = 1'000;

  explicit TscClock(bool enabled) noexcept : enabled_(enabled) {}

  /// CLOCK_REALTIME, ns since the epoch (see the file comment for accuracy).
  std::int64_t now() noexcept {
    if (!enabled_.load(std::memory_order_relaxed)) return Source::exact_ns();
    const std::uint64_t t = Source::ticks();
    const std::uint64_t s0 = seq_.load(std::memory_order_acquire);
    if ((s0 & 1) == 0) {
      const std::uint64_t base = tsc_.load(std::memory_order_relaxed);
      const std::uint64_t limit = limit_.load(std::memory_order_relaxed);
      const std::uint64_t mult = mult_.load(std::memory_order_relaxed);
      const std::int64_t ns = ns_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      // Unsigned: a tick count before the anchor (another CPU's slightly earlier anchor, or a
      // fake going backwards) wraps to a huge delta and takes the exact path.
      const std::uint64_t d = t - base;
      if (seq_.load(std::memory_order_relaxed) == s0 && d < limit)
        return ns + static_cast<std::int64_t>((d * mult) >> 32);
    }
    return reanchor();
  }

  /// Whether a rate is known (reads within an anchor's window take the fast path).
  bool calibrated() const noexcept { return limit_.load(std::memory_order_acquire) != 0; }
  /// Whether the TSC path is on at all (a rate outside 1/16..16 ns per tick turns it off).
  bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }
  /// The rate, ns per tick (0 until calibrated).
  double ns_per_tick() const noexcept {
    return static_cast<double>(mult_.load(std::memory_order_relaxed)) / 4294967296.0;
  }

 private:
  std::int64_t reanchor() noexcept {
    const std::uint64_t t1 = Source::ticks_ordered();
    const std::int64_t ns = Source::exact_ns();
    const std::uint64_t t2 = Source::ticks_ordered();
    if (t2 < t1 || !narrow(t2 - t1)) return ns;  // preempted inside the bracket: not an anchor
    std::uint64_t s = seq_.load(std::memory_order_relaxed);
    if ((s & 1) != 0 || !seq_.compare_exchange_strong(s, s + 1, std::memory_order_acquire))
      return ns;  // another thread is re-anchoring: exact value
    std::atomic_thread_fence(std::memory_order_release);  // seqlock writer: odd before the fields
    const std::uint64_t tm = t1 + (t2 - t1) / 2;
    const std::int64_t last_ns = ns_.load(std::memory_order_relaxed);
    std::uint64_t mult = mult_.load(std::memory_order_relaxed);
    if (origin_tsc_ == 0 || ns - last_ns > kIdleNs || ns < last_ns || tm <= origin_tsc_) {
      origin_tsc_ = tm;  // first anchor, long idle, or a step back: restart the baseline
      origin_ns_ = ns;
    } else if (const std::int64_t span = ns - origin_ns_; span >= (mult == 0 ? kFirstBaselineNs : kRateBaselineNs)) {
      const auto fresh = static_cast<std::uint64_t>((static_cast<u128>(span) << 32) / (tm - origin_tsc_));
      if (fresh < (std::uint64_t{1} << 28) || fresh > (std::uint64_t{1} << 36)) {
        enabled_.store(false, std::memory_order_relaxed);  // not 1/16..16 ns per tick: not a TSC we trust
      } else if (mult != 0 && (fresh > mult + mult / 1000 || fresh < mult - mult / 1000) && !refused_) {
        origin_tsc_ = tm;  // > 1000 ppm off the last rate: a clock step inside the span; keep the rate
        origin_ns_ = ns;
        refused_ = true;   // twice in a row is not a step but a wrong rate: the next one is taken
      } else {
        refused_ = false;
        mult = fresh;
        if (span > kOriginMaxNs) {
          origin_tsc_ = tm;
          origin_ns_ = ns;
        }
      }
    }
    tsc_.store(tm, std::memory_order_relaxed);
    ns_.store(ns, std::memory_order_relaxed);
    mult_.store(mult, std::memory_order_relaxed);
    // Ticks in one anchor window: kAnchorNs / (mult / 2^32); bounded so that d * mult fits.
    limit_.store(mult == 0 ? 0 : static_cast<std::uint64_t>((static_cast<u128>(kAnchorNs) << 32) / mult),
                 std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
    return ns;
  }

  /// Whether `width` ticks of bracket make an anchor accurate enough (see kMaxBracketNs).
  bool narrow(std::uint64_t width) const noexcept {
    const std::uint64_t mult = mult_.load(std::memory_order_relaxed);
    if (mult == 0) return width <= kMaxBracketTicks;
    return width < (std::uint64_t{1} << 26) && ((width * mult) >> 32) <= static_cast<std::uint64_t>(kMaxBracketNs);
  }

  std::atomic<bool> enabled_;
  // Read by every now() (one cache line, written once per anchor window).
  alignas(64) std::atomic<std::uint64_t> seq_{0};
  std::atomic<std::uint64_t> tsc_{0};
  std::atomic<std::int64_t> ns_{0};
  std::atomic<std::uint64_t> mult_{0};   ///< ns per tick << 32
  std::atomic<std::uint64_t> limit_{0};  ///< ticks of one anchor window; 0: no rate yet
  // Written only by the seqlock's owner.
  alignas(64) std::uint64_t origin_tsc_ = 0;
  std::int64_t origin_ns_ = 0;
  bool refused_ = false;  ///< the last rate was refused as a step
};

/// Whether the TSC clock should be on (on x86-64), given the value of SHMLINK_TSC_CLOCK (`env`,
/// nullptr when unset) and the kernel's clocksource name: "0" turns it off; "1" turns it on
/// whatever the clocksource (for virtual machines whose kernel distrusts the TSC only because the
/// guest might migrate, e.g. booted with tsc=unstable and clocksource=kvm-clock: the 1 ms anchor
/// bounds the error of a jump, but a counter that is not synchronised across CPUs gives readings
/// off by the skew, so this is the user's call); anything else leaves it to the clocksource:
/// on exactly when it is "tsc".
bool tsc_clock_wanted(const char* env, std::string_view clocksource) noexcept;
/// The process's TSC clock is in use (x86-64 and tsc_clock_wanted(), decided once per process).
bool tsc_clock_enabled() noexcept;
/// CLOCK_REALTIME in ns through the process's TSC clock (clock_gettime where it is off).
std::int64_t tsc_realtime_ns() noexcept;

}  // namespace shmlink::os
