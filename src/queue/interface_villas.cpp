// SPDX-License-Identifier: MIT
// The Interface over VILLASnode's shmem protocol (protocol villas; docs/design/villas.md): its
// open handshake, waits by back-off (a VILLAS region has no futex), liveness and close. The
// regions and their handshake are villas::Link (src/queue/villas_link.hpp); what both
// protocols share is in interface.cpp.
#include "queue/interface_impl.hpp"

#include "os/clock.hpp"
#include "os/process.hpp"
#include "queue/villas_link.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace shmlink {

namespace {

/// Waiting for a VILLAS region (protocol villas), which has no futex: spin, then sleep with a
/// doubling back-off. hybrid spins kSpinBudget first; futex sleeps at once; polling only spins.
/// A new wait starts at the shortest sleep again (the back-off is reset after data).
class Backoff {
 public:
  static constexpr std::int64_t kSpinBudget = 20'000;   ///< ns of spinning before sleeping (hybrid)
  static constexpr std::int64_t kFirstSleep = 2'000;    ///< ns
  static constexpr std::int64_t kMaxSleep = 500'000;    ///< ns

  explicit Backoff(WaitMode mode) noexcept
      : mode_(mode), spin_until_(mode == WaitMode::hybrid ? os::monotonic_ns() + kSpinBudget : 0) {}

  /// Waits one step, never past `deadline` (monotonic ns). False when a signal interrupted a sleep.
  bool pause(std::int64_t deadline) noexcept {
    if (mode_ == WaitMode::polling) {
      os::cpu_relax();
      return true;
    }
    const std::int64_t now = os::monotonic_ns();
    if (now < spin_until_) {
      os::cpu_relax();
      return true;
    }
    const std::int64_t d = std::min(sleep_, std::max<std::int64_t>(deadline - now, 0));
    sleep_ = std::min(sleep_ * 2, kMaxSleep);
    if (d <= 0) return true;
    const timespec ts = os::to_timespec(d);
    return ::clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr) != EINTR;
  }

 private:
  WaitMode mode_;
  std::int64_t spin_until_;
  std::int64_t sleep_ = kFirstSleep;
};

}  // namespace

bool Interface::Impl::alive_villas(bool may_wait) noexcept {
  std::unique_lock lock(peer_mutex);
  if (peer.exited || peer.closed || !vl) return false;
  if (peer.launched && reap(WNOHANG)) {
    peer_gone.store(true, std::memory_order_relaxed);
    return false;
  }
  if (vl->peer_stopped()) {
    peer.closed = true;
    peer_gone.store(true, std::memory_order_relaxed);
    return false;
  }
  if (vl->peer_alive() == 0) {
    if (peer.launched && may_wait) {  // let its exit status be reported (the lock is not held meanwhile)
      for (int i = 0; i < 50 && child > 0 && !reap(WNOHANG); ++i) {
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        lock.lock();
      }
    }
    peer.exited = true;
    peer_gone.store(true, std::memory_order_relaxed);
    return false;
  }
  return true;
}

Status Interface::Impl::push_villas(const Sample& s, std::chrono::nanoseconds timeout) noexcept {
  Status st = vl->try_push(s);
  if (st.code() != Errc::would_block) return st;
  if (timeout.count() <= 0) return Errc::would_block;
  const std::int64_t deadline = os::deadline_after(timeout);
  std::int64_t next_check = os::monotonic_ns() + interval_ns();
  Backoff backoff(spec.wait);
  for (;;) {
    if (!backoff.pause(deadline)) return Errc::interrupted;
    st = vl->try_push(s);
    if (st.code() != Errc::would_block) return st;
    const std::int64_t now = os::monotonic_ns();
    if (now >= next_check) {
      if (!alive()) return gone();
      next_check = now + interval_ns();
    }
    if (now >= deadline) return Errc::timeout;
  }
}

Status Interface::Impl::pull_villas(Sample& s, std::chrono::nanoseconds timeout) noexcept {
  if (timeout.count() <= 0) {
    if (alive_lazily(false)) return Errc::would_block;
    const Status st = vl->try_pull(s);  // what it wrote before it went is still delivered
    return st.code() == Errc::would_block ? gone() : st;
  }
  const std::int64_t deadline = os::deadline_after(timeout);
  std::int64_t next_check = os::monotonic_ns() + interval_ns();
  Backoff backoff(spec.wait);
  for (;;) {
    if (!backoff.pause(deadline)) return Errc::interrupted;
    // A reply may wait on a wake-up of ours that had to be skipped (a pthread-mode peer sleeps
    // on our condition variable without a timeout): make it while we wait.
    (void)vl->retry_wake();
    Status st = vl->try_pull(s);
    if (st.code() != Errc::would_block) return st;
    const std::int64_t now = os::monotonic_ns();
    if (now >= next_check) {
      if (!alive()) {
        st = vl->try_pull(s);
        return st.code() == Errc::would_block ? gone() : st;
      }
      next_check = now + interval_ns();
    }
    if (now >= deadline) return Errc::timeout;
  }
}

void Interface::Impl::remove_villas_if_stale() noexcept {
  try {
    const std::string name = villas::object_name(spec.in, "in");
    const std::string path = "/dev/shm" + name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    // As at attach: processes we cannot inspect count only when the region is another user's.
    int uninspectable = 0;
    if (processes_using(path, &uninspectable).empty() && (uninspectable == 0 || st.st_uid == ::geteuid()))
      ::shm_unlink(name.c_str());
  } catch (...) {
  }
}

void Interface::Impl::open_villas(std::int64_t deadline) {
  villas::LinkSpec ls;
  ls.out = villas::object_name(spec.out, "out");
  ls.in = villas::object_name(spec.in, "in");
  loopback = ls.out == ls.in;
  if (loopback && !spec.exec.empty())
    throw Error(Errc::invalid_argument, label() + ": a loopback interface (out == in) cannot launch a peer");
  if (spec.capacity < 2 || spec.capacity > kMaxQueueCapacity || (spec.capacity & (spec.capacity - 1)) != 0)
    throw Error(Errc::invalid_argument, label() + ": capacity (VILLAS queuelen) " + std::to_string(spec.capacity) +
                                            " is not a power of two in 2.." + std::to_string(kMaxQueueCapacity));
  ls.queuelen = spec.capacity;
  ls.samplelen = values_per_sample();
  if (ls.samplelen > kMaxSampleValues)
    throw Error(Errc::invalid_argument, label() + ": max_values " + std::to_string(ls.samplelen) + " is over " +
                                            std::to_string(kMaxSampleValues));
  ls.pthread_mode = spec.wait != WaitMode::polling;
  ls.permissions = spec.permissions;
  ls.slice = std::chrono::nanoseconds(interval_ns());
  ls.attach_timeout = spec.attach_timeout;
  ls.label = label();
  vl = std::make_unique<villas::Link>(std::move(ls));
  vl->create();
  if (!spec.exec.empty()) launch();
  vl->attach(deadline, [this] {
    if (peer.launched && reap(WNOHANG))
      throw Error(Errc::peer_exited, label() + ": " + peer.describe() + " before attaching");
  });
  if (loopback) {
    peer.pid = os::current_pid();
  } else if (!peer.launched) {
    peer.pid = vl->peer_pid();
    peer.command = vl->in_path();
  }
  // No signal table travels: an import can only be checked against the values the peer's
  // samples can hold.
  for (const auto& want : imports)
    if (want.index >= vl->in_values())
      throw Error(Errc::layout, label() + ": import " + std::to_string(want.index) + " '" + want.name +
                                    "': the peer's VILLAS region '" + vl->in_path() + "' holds only " +
                                    std::to_string(vl->in_values()) + " values per sample");
}

void Interface::Impl::close_villas() noexcept {
  if (!loopback) {
    // villas-node stops reading at STOPPED even with samples queued: wait until the peer took
    // them all, or died, or closed, or stop_timeout passed.
    const std::int64_t deadline = os::deadline_after(spec.stop_timeout);
    std::int64_t next_check = 0;
    Backoff backoff(WaitMode::futex);
    while (vl->queued() > 0) {
      (void)vl->retry_wake();  // a skipped wake-up would leave a pthread-mode reader asleep
      const std::int64_t now = os::monotonic_ns();
      if (now >= deadline) break;
      if (now >= next_check) {
        if (!alive()) break;
        next_check = now + interval_ns();
      }
      backoff.pause(std::min(deadline, next_check));
    }
  }
  vl->stop();
  (void)vl->retry_wake();  // once more, if stop() could only owe its broadcast
  vl->remove_own_region();
  vl.reset();
}

}  // namespace shmlink
