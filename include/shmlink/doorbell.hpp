// SPDX-License-Identifier: MIT
/// @file doorbell.hpp
/// @brief Doorbell waits between kernels: how a reader or popper on one VM (or the host) sleeps
/// until a writer or pusher on another kernel rings it through QEMU's ivshmem-doorbell device
/// (docs/design/doorbells.md; user guide: docs/vm.md "Waiting: polling and doorbells").
///
/// Futex wake-ups never leave a kernel, so a channel in memory shared with other VMs
/// (Placement::same_kernel false) polls, unless its placement carries a Doorbell: a region opened
/// through `ivshmem:` in a guest whose device is `ivshmem-doorbell` with shmlink's UIO driver,
/// or through ivshmem::Peer::region() on the host. The waiter registers in the region's waiter
/// table (its peer id, its vector, the entry it waits on), re-checks its condition and sleeps on
/// its doorbell (/dev/uioN in a guest, an eventfd on the host); a writer, after publishing, loads
/// one word (the entry's waiter count) and rings the registered peers only when it is not zero.
/// Every sleep is bounded by a fallback timeout (Region::set_doorbell_fallback, 100 ms by
/// default): a lost ring costs latency, never a hang or data.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <time.h>

#include <atomic>
#include <cstdint>

namespace shmlink {

/// How the channels of a region wait for a peer (Region::wait_mode()).
enum class RegionWaitMode : std::uint8_t {
  futex = 0,     ///< every user shares this kernel: futex waits (a file or memfd region)
  polling = 1,   ///< other kernels share it and no doorbell reaches them: waits poll
  doorbell = 2,  ///< other kernels share it and waits sleep on this process's ivshmem doorbell
};

/// Doorbell counters of one region handle and the channels placed in it (Region::doorbell_stats).
/// Racy observers: each is read with a relaxed load.
struct DoorbellStats {
  std::uint64_t rings = 0;             ///< doorbells rung by this process's writers after publishing
  std::uint64_t wakes_by_ring = 0;     ///< sleeps of this process's waiters ended by their doorbell
  std::uint64_t wakes_by_timeout = 0;  ///< sleeps ended by the fallback timeout instead
  std::uint64_t unregistered = 0;      ///< waits that polled: the waiter table had no free slot
};

/// One channel's doorbell (a region entry's): what its writers ring after publishing and what
/// its waiters sleep on. Made by the region (src/region/doorbell.cpp); channels hold it through
/// Placement::doorbell. Thread safety: every member may be called from any thread.
class SHMLINK_EXPORT Doorbell {
 public:
  /// One wait's registration: its waiter-table slot and, in a guest, its own listener fd.
  struct Ticket {
    int slot = -1;  ///< index of the claimed waiter slot, -1 when none
    int fd = -1;    ///< the descriptor this wait sleeps on (owned by the ticket when `own_fd`)
    bool own_fd = false;
  };

  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;
  virtual ~Doorbell();

  /// Writer side, right after a publish (a stream's cnt0, a queue's cell turn or head): rings
  /// every peer registered as waiting on this channel. With no waiter it costs one fence and
  /// one load.
  /// Memory ordering: a seq_cst fence, then a seq_cst load of the entry's waiter count (SYNC
  /// POINT D, writer side): paired with arm()'s seq_cst increment and fence, either the writer
  /// sees the count or the waiter's re-check sees the publish (Dekker); the ring itself is a
  /// release (Bar::ring's fence, an eventfd write), so the woken waiter sees the data.
  void notify() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // SYNC POINT D (writer)
    if (std::atomic_ref<std::uint32_t>(*waiters_).load(std::memory_order_seq_cst) != 0) ring_waiters();
  }

  /// Registers a wait: opens its listener (a guest's fresh /dev/uioN descriptor, which counts
  /// only interrupts from now on), claims a waiter slot naming this peer, vector and entry,
  /// adds 1 to the entry's count, then a seq_cst fence (SYNC POINT D, waiter side). The caller
  /// re-checks its condition after arm() and before each sleep().
  /// @return false when no slot is free or the listener cannot be opened: the caller polls.
  virtual bool arm(Ticket& ticket) noexcept = 0;
  /// Sleeps until the doorbell rings, `deadline_ns` (CLOCK_MONOTONIC) or the fallback timeout,
  /// whichever comes first; consumes the ring.
  /// @return ok (rung; maybe for another channel: re-check), timeout (deadline or fallback),
  ///         interrupted (a signal), system (the descriptor failed: the caller polls).
  virtual Status sleep(Ticket& ticket, std::int64_t deadline_ns) noexcept = 0;
  /// Undoes arm(): frees the slot (compare-and-swap from the word it wrote, so a slot a peer
  /// overwrote is left alone) and, only when that succeeded, takes 1 from the count (never
  /// below 0: whoever cleared the slot counted it down), closes its listener.
  virtual void disarm(Ticket& ticket) noexcept = 0;

  /// The fallback timeout of one sleep in nanoseconds (Region::set_doorbell_fallback; 1 ms at
  /// least): the longest a lost ring delays a waiter, and how often wait_until() asks gone().
  [[nodiscard]] virtual std::int64_t fallback_ns() const noexcept = 0;

  /// Waits until `ready()` is true, sleeping on the doorbell between looks: arm(), then
  /// ready(), sleep(), ready(), ... until `deadline_ns` (CLOCK_MONOTONIC; INT64_MAX: none).
  /// `gone()` (did the channel go away?) is asked after a sleep that ended without a ring and
  /// whenever a fallback period has passed since it was last asked, however the sleeps ended:
  /// every waiter of a peer shares one vector, so rings meant for other channels may end every
  /// sleep. A sleep interrupted by a signal looks at `ready()` once more before it says so.
  /// @return ok (ready() was true), timeout, interrupted, replaced (gone() said so), or
  ///         would_block when arm() failed (nothing waited: the caller polls instead).
  template <class Ready, class Gone>
  Status wait_until(Ready&& ready, std::int64_t deadline_ns, Gone&& gone) noexcept {
    Ticket t;
    if (!arm(t)) return Errc::would_block;
    Status out = Errc::timeout;
    std::int64_t last_check = now_ns();
    for (;;) {
      if (ready()) {
        out = Errc::ok;
        break;
      }
      if (now_ns() >= deadline_ns) break;
      const Status s = sleep(t, deadline_ns);
      if (s.code() == Errc::interrupted || s.code() == Errc::system) {
        // A signal: one more look, as a futex wait does, so a publish it raced is not missed.
        out = s.code() == Errc::interrupted && ready() ? Status(Errc::ok) : s;
        break;
      }
      const std::int64_t now = now_ns();
      if (s.code() == Errc::timeout || now - last_check >= fallback_ns()) {
        if (gone()) {
          out = Errc::replaced;
          break;
        }
        last_check = now;
      }
    }
    disarm(t);
    return out;
  }

 protected:
  /// `waiters`: the entry's waiter count in the region's waiter table (shared memory).
  explicit Doorbell(std::uint32_t* waiters) noexcept : waiters_(waiters) {}
  /// Rings the peer and vector of every slot naming this channel (at most a bounded number of
  /// distinct ones per call). Called by notify() only when the count is not zero.
  virtual void ring_waiters() noexcept = 0;

 private:
  static std::int64_t now_ns() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  }

  std::uint32_t* waiters_;
};

}  // namespace shmlink
