// SPDX-License-Identifier: MIT
// VILLASnode v1.x shmem regions: our own output region (OwnRegion) and the peer's (PeerRegion),
// over bytes someone else maps (docs/reference/villas-shmem.md section 5; layout in
// villas_layout.hpp). The Interface's villas protocol drives them; inspect() shares the checks.
#pragma once

#include "queue/villas_layout.hpp"

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/villas.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace shmlink::villas {

/// Where things are in a region: offsets from its start, all validated against its size.
struct Geometry {
  std::uint64_t size = 0;            // file bytes
  bool pthread_mode = false;
  std::uint64_t data_cells = 0;      // offset of the data queue's cells
  std::uint64_t cells = 0;           // data-queue cells (mask + 1)
  std::uint64_t pool_buffer = 0;     // offset of block 0
  std::uint64_t blocks = 0;          // pool blocks
  std::uint64_t blocksz = 0;         // bytes per block
  std::uint64_t free_cells = 0;      // offset of the free list's cells
  std::uint64_t free_count = 0;      // free-list cells (mask + 1)
};

/// Validates a region's shared header (its first kSharedEnd bytes, `header`) against `file_size`:
/// the fingerprint checks of docs/reference/villas-shmem.md section 5.3, in that order (a block
/// size above block_size(kMaxSampleValues) is refused, so every count fits RegionInfo's fields).
/// @return the geometry, or nullopt with `why` set to the first failed check (no exceptions).
std::optional<Geometry> check_region(std::span<const std::byte> header, std::uint64_t file_size,
                                     std::string& why) noexcept;

/// The allocation villas-node's managed allocator makes in a fresh region of `size` bytes for
/// `queuelen` blocks of `blocksz` bytes: the shared struct, data cells, pool buffer (64-aligned),
/// free-list cells, in that order, first fit, each behind a Block descriptor.
struct Plan {
  struct Descriptor {
    std::uint64_t at = 0;      // offset of the Block descriptor
    std::uint64_t length = 0;  // MemoryBlock::length
    bool used = false;
  };
  Geometry geometry;
  std::array<Descriptor, 8> descriptors{};
  std::size_t descriptor_count = 0;
};
/// Implements docs/reference/villas-shmem.md section 5.4 (the allocation order and alignment gaps).
/// @return the plan, or nullopt when the allocations do not fit `size` bytes.
std::optional<Plan> plan_region(std::uint64_t size, std::uint32_t queuelen, std::uint64_t blocksz) noexcept;

/// The start of a region's mapping, which a move hands over and leaves null in the moved-from
/// handle (whose calls then do nothing).
class RegionBase {
 public:
  RegionBase() = default;
  RegionBase(RegionBase&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  RegionBase& operator=(RegionBase&& other) noexcept {
    p_ = std::exchange(other.p_, nullptr);
    return *this;
  }
  RegionBase(const RegionBase&) = delete;
  RegionBase& operator=(const RegionBase&) = delete;
  ~RegionBase() = default;
  RegionBase& operator=(std::byte* p) noexcept {
    p_ = p;
    return *this;
  }
  operator std::byte*() const noexcept { return p_; }  // NOLINT(google-explicit-constructor): used as the pointer
  std::byte* get() const noexcept { return p_; }

 private:
  std::byte* p_ = nullptr;
};

/// This process's output region, laid out in memory it owns (sized region_size(), zero-filled),
/// byte for byte as villas-node lays its own out (so villas-node and our inspect() accept it).
///
/// Pthread mode puts glibc's process-shared mutex and condition variable in the region, as
/// villas-node does, and the peer can write them. Before every lock, unlock and broadcast the
/// live words are compared with what init() wrote (the mutex's kind; the condition variable's
/// process-shared and clock bits, and its internal lock bits clear, checked a few times over a
/// short bounded spin); on a mismatch glibc is not called with them, the wake-up is skipped (the
/// sample stays queued) and a warning naming the region is logged once. A skipped wake-up (those
/// checks failed, or the mutex could not be taken) is owed: every later try_push, retry_wake() and
/// stop() tries it again until a broadcast is made, so a villas-node reader sleeping on the
/// condition variable with no timeout is woken for the sample once the mutex is free. So a crashed
/// or corrupting peer costs wake-ups, never a hang or a crash, except a peer that races the check
/// deliberately (changes the words between our check and glibc's use of them). Polling mode has no
/// pthread object at all and is the mode for peers that are not trusted
/// (docs/reference/villas-shmem.md section 5.3).
///
/// Thread safety: one thread at a time calls try_push/stop; queued() from any thread.
///
/// Memory ordering (docs/reference/villas-shmem.md section 2.2): try_push fills the block, stores
/// the cell's data offset, then publishes the cell with a release store of its sequence; the
/// peer's acquire load of that sequence sees the whole sample. The peer returns a block with a
/// release store of a free-list cell's sequence that our acquire load in try_push pairs with.
/// stop() moves the state with a seq_cst CAS after every push, so a reader that sees STOPPED
/// (acquire) also sees every sample pushed before it.
class OwnRegion {
 public:
  /// Moves the handle; the moved-from object is unusable (try_push returns closed, stop does
  /// nothing, queued() is 0).
  OwnRegion(OwnRegion&&) noexcept = default;
  OwnRegion& operator=(OwnRegion&&) noexcept = default;
  OwnRegion(const OwnRegion&) = delete;  // one handle per region: it keeps per-region state (stopped, logged once)
  OwnRegion& operator=(const OwnRegion&) = delete;
  ~OwnRegion() = default;

  /// Lays out the region as villas-node's allocator does (docs/reference/villas-shmem.md
  /// sections 5.2 and 5.4), pthread objects process-shared when pthread_mode, and keeps local
  /// copies of the pthread words it later checks.
  /// @param bytes the mapping, 64-aligned, exactly region_size(queuelen, samplelen) bytes, zeros.
  /// @param queuelen pool blocks, 1 .. kMaxQueueCapacity (data-queue cells: rounded up to a
  ///        power of two, as villas-node does); @param samplelen values per sample, 1 .. kMaxSampleValues.
  /// @param what the object's name, for messages.
  /// @throws Error invalid_argument (sizes, alignment), system (a pthread init failed).
  static OwnRegion init(std::span<std::byte> bytes, std::uint32_t queuelen, std::uint32_t samplelen,
                        bool pthread_mode, std::string_view what);

  /// Takes a free block, fills it from `s` (sequence, flags, ts origin/received, values; the 16
  /// signals bytes zero, refcnt 1, pool_off, capacity), pushes it on the data queue
  /// (docs/reference/villas-shmem.md sections 2.2, 2.4 and 5.2), and in pthread mode broadcasts
  /// the condition variable under our mutex. The mutex is taken by trylock, retried with short
  /// sleeps up to 100 ms on a CLOCK_MONOTONIC deadline; after such a timeout only one trylock per
  /// call is tried (no waiting) until one succeeds again. A skipped wake-up (mutex held, pthread
  /// words changed by the peer) leaves the sample queued, is logged once and stays owed: every
  /// later call (whatever it returns, closed and shut_down excepted) and retry_wake() try it again.
  /// A free-list entry that is not a block of our pool is dropped (logged once).
  /// @return ok, would_block (no free block or queue full), size_mismatch (more values than
  ///         sample_capacity()), shut_down (already stopped), closed (a moved-from handle). Bounded work
  ///         whatever the peer wrote.
  Status try_push(const Sample& s) noexcept;
  /// Retries a wake-up that an earlier try_push or stop() had to skip
  /// (docs/reference/villas-shmem.md sections 2.3 and 5.3): when one is owed, one trylock of our
  /// mutex (never a wait, whether or not the mutex counted as stuck), the pthread words' checks (a
  /// bounded spin of at most 64 yields while the condition variable's internal lock is held), a
  /// broadcast, an unlock. So a villas-node reader asleep in pthread_cond_wait (it has no timeout)
  /// learns of samples queued while the mutex was held. Callers that wait for the peer (for room to
  /// write, for the queue to drain before stop()) call it on each turn; it costs nothing when no
  /// wake-up is owed and in polling mode.
  /// @return true when no wake-up is owed any more (or none ever was; a moved-from handle); false
  ///         while one still is (the mutex was held, or the peer damaged the pthread objects: then
  ///         it stays false, cheaply, since glibc is never called with them).
  /// Thread safety: the thread that calls try_push/stop.
  bool retry_wake() noexcept;
  /// Samples still in the data queue (the peer has not taken them yet); racy, clamped to the cells.
  std::uint64_t queued() const noexcept;
  /// Marks the data queue STOPPED (docs/reference/villas-shmem.md section 2.1: CAS 1 -> 5, in
  /// pthread mode under our mutex, taken as try_push takes it) and, when it holds the mutex and the
  /// pthread words are intact, broadcasts (never without the mutex). An owed wake-up is retried
  /// first (retry_wake()); a broadcast skipped here is owed in turn, and retry_wake() still makes
  /// it after stop() (a reader asleep would otherwise never see STOPPED). A villas-node reader
  /// checks STOPPED before the cells and so loses the samples still queued: callers drain first
  /// (wait until queued() is 0; the Interface's close() does).
  void stop() noexcept;
  bool pthread_mode() const noexcept { return geo_.pthread_mode; }
  /// Values a sample holds ((blocksz - 88) / 8).
  std::uint32_t sample_capacity() const noexcept;
  /// The region's geometry (offsets from its start).
  const Geometry& geometry() const noexcept { return geo_; }

 private:
  OwnRegion() = default;
  bool pop_free_block(std::uint64_t& block) noexcept;
  bool push_free_block(std::uint64_t block) noexcept;
  Status push(const Sample& s) noexcept;
  void wake(bool wait) noexcept;
  void broadcast_and_unlock() noexcept;
  bool lock(bool wait) noexcept;
  void unlock() noexcept;
  bool mutex_intact() noexcept;
  bool cond_intact() noexcept;

  RegionBase base_;
  Geometry geo_;
  std::string what_;
  std::int32_t mutex_kind_ = 0;   // the mutex's __kind as init left it (elision bits masked)
  std::uint32_t cond_flags_ = 0;  // the condition variable's __wrefs flag bits as init left them
  bool stopped_ = false;
  bool lock_stuck_ = false;       // a lock timed out: trylock only until one succeeds
  bool wake_pending_ = false;     // a wake-up was skipped and no broadcast made since
  bool logged_bad_block_ = false;
  bool logged_free_push_ = false;
  bool logged_lock_ = false;
  bool logged_mutex_ = false;
  bool logged_cond_ = false;
};

/// The peer's output region, validated once at attach (every offset, mask, size and alignment the
/// reference lists; local copies of them are kept and never re-read from shared memory).
///
/// Thread safety: one thread at a time calls try_pull; the others from any thread.
///
/// Memory ordering: try_pull reads the STOPPED state (acquire), then a cell's sequence (acquire,
/// pairing with the writer's release store after it filled the sample); it frees the cell with a
/// release store of its next sequence. Returning a block to the peer's free list stores the data
/// offset, then the free cell's sequence (release), which the peer's pool_get acquires.
class PeerRegion {
 public:
  /// Moves the handle; the moved-from object is unusable (try_pull returns closed).
  PeerRegion(PeerRegion&&) noexcept = default;
  PeerRegion& operator=(PeerRegion&&) noexcept = default;
  PeerRegion(const PeerRegion&) = delete;  // one handle per region: it keeps per-region state (stopped, logged once)
  PeerRegion& operator=(const PeerRegion&) = delete;
  ~PeerRegion() = default;

  /// @param bytes the peer's region, mapped read-write, 64-aligned; @param what its name.
  /// @throws Error layout naming `what` and the failed check (as inspect()); invalid_argument
  ///         when `bytes` is not 64-aligned.
  static PeerRegion attach(std::span<std::byte> bytes, std::string_view what);

  /// Takes the next sample (docs/reference/villas-shmem.md sections 2.2, 2.4 and 5.3): validates
  /// its offset (inside the pool buffer, on a block boundary), its pool_off (back to the pool) and
  /// length <= capacity <= block capacity, copies it into `out` (values resized to length),
  /// drops the reference (returning the block to the peer's free list at 0; a count that was
  /// above 1 keeps the block, logged once).
  /// A refused sample is taken off the queue and its block is NOT returned to the peer's free
  /// list (its reference count cannot be trusted), except a length/capacity failure, whose
  /// reference is dropped. A sample whose pool_off sits where VILLASnode v0.11 kept it makes the
  /// refusal sticky: every later call returns layout with the same error without taking anything.
  /// @return ok, would_block (empty; the queue may still be open), shut_down (empty and STOPPED:
  ///         cells are drained before STOPPED is believed), closed (a moved-from handle), layout (a
  ///         sample failed a check: it is skipped, and `error()` says which check), no_space (out
  ///         of memory; nothing taken). Bounded work whatever the peer wrote.
  Status try_pull(Sample& out) noexcept;
  /// The last failed check of try_pull ("" when none).
  const std::string& error() const noexcept { return error_; }
  bool pthread_mode() const noexcept { return geo_.pthread_mode; }
  /// A snapshot of the region (counters read racily, clamped; empty for a moved-from handle).
  RegionInfo info() const noexcept;
  /// The validated geometry.
  const Geometry& geometry() const noexcept { return geo_; }

 private:
  PeerRegion() = default;
  void fail(std::string message) noexcept;
  void release_block(std::uint64_t block) noexcept;

  RegionBase base_;
  Geometry geo_;
  std::string what_;
  std::string error_;
  bool refused_ = false;  // a v0.11 sample was seen: the region is refused from then on
  bool logged_free_full_ = false;
  bool logged_refcnt_ = false;
  bool logged_shared_ = false;
};

/// Summary of a validated region (counters read with relaxed loads, clamped).
RegionInfo summarize(std::span<const std::byte> bytes, const Geometry& g, std::string_view what) noexcept;

}  // namespace shmlink::villas
