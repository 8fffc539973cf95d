// SPDX-License-Identifier: MIT
// Doorbells of a region (include/shmlink/doorbell.hpp; docs/design/doorbells.md): the endpoint a
// process rings and sleeps on (a Port: a guest's ivshmem device through its UIO driver, or a host
// ivshmem::Peer, both in src/ivshmem) and the per-entry Doorbell that channels placed in the
// region hold, which reads and writes the region's waiter table (region_layout.hpp).
#pragma once

#include <shmlink/doorbell.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace shmlink::rdoor {

/// The fallback timeout of a sleep when nobody sets one: a lost ring costs at most this.
inline constexpr std::int64_t kDefaultFallbackNs = 100'000'000;
/// Distinct (peer, vector) pairs one notify() rings at most: a table full of garbage costs a
/// bounded number of rings per publish (waiters beyond it wake by their fallback timeout).
inline constexpr int kMaxRingsPerNotify = 16;
/// Vectors a waiter may name (ivshmem::kMaxVectors): a slot naming a larger one is ignored.
inline constexpr std::uint16_t kMaxVector = 64;

/// One process's endpoint on the ivshmem doorbell network. Thread-safe.
class Port {
 public:
  Port(std::uint16_t self, std::uint16_t vector, std::string what) : self_(self), vector_(vector), what_(std::move(what)) {}
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  virtual ~Port();

  /// This process's peer id (a guest's IVPosition, a host Peer's id).
  [[nodiscard]] std::uint16_t self() const noexcept { return self_; }
  /// The vector this process's waiters sleep on.
  [[nodiscard]] std::uint16_t vector() const noexcept { return vector_; }
  /// Names the endpoint in messages ("ivshmem:0000:00:02.0 vector 0 (/dev/uio1)").
  [[nodiscard]] const std::string& what() const noexcept { return what_; }

  /// Rings `vector` of `peer`. @return false only when the peer is known to be gone (a host
  /// Peer's table lacks it): the caller may clear its slots; true otherwise (rung, or a ring
  /// the device drops silently, as QEMU does for unknown peers).
  virtual bool ring(std::uint16_t peer, std::uint16_t vector) noexcept = 0;
  /// The descriptor a wait sleeps on (poll POLLIN): a fresh one the caller closes (`own` true:
  /// a guest's /dev/uioN, which counts only interrupts after its open) or the endpoint's shared
  /// one (`own` false: a host Peer's eventfd). -1 when it cannot be opened.
  virtual int listener(bool& own) noexcept = 0;
  /// Consumes what made `fd` readable. @return false when the descriptor failed.
  virtual bool consume(int fd) noexcept = 0;

  std::atomic<std::int64_t> fallback_ns{kDefaultFallbackNs};  ///< Region::set_doorbell_fallback
  std::atomic<std::uint64_t> rings{0}, wakes_by_ring{0}, wakes_by_timeout{0}, unregistered{0};

 private:
  std::uint16_t self_;
  std::uint16_t vector_;
  std::string what_;
};

/// The doorbell of entry `entry` of the region mapped at `region` (its directory has
/// `max_entries` entries, already validated), for channels placed in that entry. `keep` keeps the
/// mapping alive.
std::shared_ptr<Doorbell> make_doorbell(std::shared_ptr<Port> port, std::span<std::byte> region,
                                        std::uint32_t max_entries, std::uint32_t entry, std::shared_ptr<const void> keep);

}  // namespace shmlink::rdoor
