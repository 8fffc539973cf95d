// SPDX-License-Identifier: MIT
// A region entry's doorbell: the waiter table protocol (docs/design/doorbells.md). Waiters claim
// a slot and count themselves on their entry; writers load the count and ring what the slots name.
#include "region/doorbell.hpp"

#include "os/clock.hpp"
#include "region/region_layout.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace shmlink {

Doorbell::~Doorbell() = default;

namespace rdoor {

Port::~Port() = default;

namespace {

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);

using u64ref = std::atomic_ref<std::uint64_t>;
using u32ref = std::atomic_ref<std::uint32_t>;

/// Takes 1 from a waiter count, never below 0 (a peer may have zeroed it). Relaxed: leaving
/// costs a writer at most a needless scan; nothing is published through it.
void count_down(std::uint32_t& count) noexcept {
  u32ref c(count);
  std::uint32_t v = c.load(std::memory_order_relaxed);
  while (v != 0 && !c.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) {
  }
}

class EntryDoorbell final : public Doorbell {
 public:
  EntryDoorbell(std::shared_ptr<Port> port, std::uint64_t* slots, std::uint32_t* count, std::uint32_t entry,
                std::shared_ptr<const void> keep) noexcept
      : Doorbell(count), port_(std::move(port)), slots_(slots), count_(count), entry_(entry), keep_(std::move(keep)) {}

  bool arm(Ticket& t) noexcept override {
    t = Ticket{};
    // The listener first: a guest's fresh /dev/uioN counts every interrupt after its open, so a
    // ring sent after our registration below is never missed.
    t.fd = port_->listener(t.own_fd);
    if (t.fd < 0) {
      port_->unregistered.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    const std::uint64_t word = rlayout::waiter_word(entry_, port_->self(), port_->vector());
    const std::uint32_t start = (std::uint32_t{port_->self()} * 31 + entry_) % rlayout::kWaiterSlots;
    for (std::uint32_t k = 0; k < rlayout::kWaiterSlots && t.slot < 0; ++k) {
      const std::uint32_t i = (start + k) % rlayout::kWaiterSlots;
      std::uint64_t expected = 0;
      // SYNC POINT D (waiter): the slot is claimed before the count moves (seq_cst), so a
      // writer whose count load sees our increment sees the slot too.
      if (u64ref(slots_[i]).compare_exchange_strong(expected, word, std::memory_order_seq_cst)) t.slot = static_cast<int>(i);
    }
    if (t.slot < 0) {
      if (t.own_fd) ::close(t.fd);
      t = Ticket{};
      port_->unregistered.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    // SYNC POINT D (waiter): count, then a seq_cst fence before the caller re-checks its
    // condition; pairs with notify()'s fence and count load (one of the two sees the other).
    u32ref(*count_).fetch_add(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return true;
  }

  Status sleep(Ticket& t, std::int64_t deadline_ns) noexcept override {
    if (t.fd < 0) return Errc::system;
    const std::int64_t now = os::monotonic_ns();
    const std::int64_t fallback = fallback_ns();
    const bool by_fallback = deadline_ns - now > fallback;
    const std::int64_t slice = by_fallback ? fallback : std::max<std::int64_t>(deadline_ns - now, 0);
    const timespec rel = os::to_timespec(slice);
    pollfd p{t.fd, POLLIN, 0};
    const int r = ::ppoll(&p, 1, &rel, nullptr);
    if (r < 0) return errno == EINTR ? Errc::interrupted : Errc::system;
    if (r == 0) {
      if (by_fallback) port_->wakes_by_timeout.fetch_add(1, std::memory_order_relaxed);
      return Errc::timeout;
    }
    if ((p.revents & (POLLERR | POLLNVAL)) != 0 || !port_->consume(t.fd)) return Errc::system;
    port_->wakes_by_ring.fetch_add(1, std::memory_order_relaxed);
    return Errc::ok;
  }

  std::int64_t fallback_ns() const noexcept override {
    return std::max<std::int64_t>(port_->fallback_ns.load(std::memory_order_relaxed), 1'000'000);
  }

  void disarm(Ticket& t) noexcept override {
    if (t.slot >= 0) {
      const std::uint64_t word = rlayout::waiter_word(entry_, port_->self(), port_->vector());
      std::uint64_t expected = word;
      // Relaxed: a writer that still sees the slot rings once more for nothing. A slot a peer
      // overwrote or cleared meanwhile is left as it is (it is not ours any more), and the count
      // too: whoever cleared it counted it down (a writer clearing a departed peer's slot), so a
      // second count_down would undercount and hide another waiter from writers (a lost ring).
      if (u64ref(slots_[t.slot]).compare_exchange_strong(expected, 0, std::memory_order_relaxed)) count_down(*count_);
    }
    if (t.own_fd && t.fd >= 0) ::close(t.fd);
    t = Ticket{};
  }

 protected:
  void ring_waiters() noexcept override {
    std::uint32_t rung[kMaxRingsPerNotify];
    bool gone[kMaxRingsPerNotify];
    int n = 0;
    for (std::uint32_t i = 0; i < rlayout::kWaiterSlots && n < kMaxRingsPerNotify; ++i) {
      // SYNC POINT D (writer): acquire, pairs with the waiter's seq_cst claim of the slot.
      const std::uint64_t w = u64ref(slots_[i]).load(std::memory_order_acquire);
      if ((w >> 32) != std::uint64_t{entry_} + 1) continue;  // free, another entry's, or garbage
      const auto peer = static_cast<std::uint16_t>(w >> 16);
      const auto vector = static_cast<std::uint16_t>(w);
      if (vector >= kMaxVector) continue;  // no device has it: a peer's garbage
      const std::uint32_t target = std::uint32_t{peer} << 16 | vector;
      const int seen = static_cast<int>(std::find(rung, rung + n, target) - rung);
      if (seen == n) {  // a new target: ring it once
        rung[n] = target;
        port_->rings.fetch_add(1, std::memory_order_relaxed);
        gone[n++] = !port_->ring(peer, vector);
      }
      if (gone[seen]) {
        // The peer left the server (a guest that was shut down or killed while waiting): its
        // registration can never be undone by itself, so the writer clears it.
        std::uint64_t expected = w;
        if (u64ref(slots_[i]).compare_exchange_strong(expected, 0, std::memory_order_relaxed)) count_down(*count_);
      }
    }
  }

 private:
  std::shared_ptr<Port> port_;
  std::uint64_t* slots_;
  std::uint32_t* count_;
  std::uint32_t entry_;
  std::shared_ptr<const void> keep_;
};

}  // namespace

std::shared_ptr<Doorbell> make_doorbell(std::shared_ptr<Port> port, std::span<std::byte> region,
                                        std::uint32_t max_entries, std::uint32_t entry, std::shared_ptr<const void> keep) {
  if (!port || entry >= max_entries || region.size() < rlayout::directory_bytes(max_entries)) return nullptr;
  auto* slots = reinterpret_cast<std::uint64_t*>(region.data() + rlayout::waiters_offset(max_entries));
  auto* count = reinterpret_cast<std::uint32_t*>(region.data() + rlayout::waiter_count_offset(max_entries, entry));
  return std::make_shared<EntryDoorbell>(std::move(port), slots, count, entry, std::move(keep));
}

}  // namespace rdoor
}  // namespace shmlink
