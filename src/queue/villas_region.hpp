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

/// Validates a region's shared header (its first kSharedEnd bytes, `header`) against `file_size`.
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
/// @return the plan, or nullopt when the allocations do not fit `size` bytes.
std::optional<Plan> plan_region(std::uint64_t size, std::uint32_t queuelen, std::uint64_t blocksz) noexcept;

/// This process's output region, laid out in memory it owns (sized region_size(), zero-filled),
/// byte for byte as villas-node lays its own out (so villas-node and our inspect() accept it).
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
  OwnRegion(OwnRegion&&) noexcept = default;
  OwnRegion& operator=(OwnRegion&&) noexcept = default;
  OwnRegion(const OwnRegion&) = delete;  // one handle per region: it keeps per-region state (stopped, logged once)
  OwnRegion& operator=(const OwnRegion&) = delete;
  ~OwnRegion() = default;

  /// Lays out the region (pthread objects process-shared when pthread_mode).
  /// @param bytes the mapping, 64-aligned, exactly region_size(queuelen, samplelen) bytes, zeros.
  /// @param queuelen pool blocks, 1 .. kMaxQueueCapacity (data-queue cells: rounded up to a
  ///        power of two, as villas-node does); @param samplelen values per sample, 1 .. kMaxSampleValues.
  /// @param what the object's name, for messages.
  /// @throws Error invalid_argument (sizes, alignment), system (a pthread init failed).
  static OwnRegion init(std::span<std::byte> bytes, std::uint32_t queuelen, std::uint32_t samplelen,
                        bool pthread_mode, std::string_view what);

  /// Takes a free block, fills it from `s` (sequence, flags, ts origin/received, values; the 16
  /// signals bytes zero, refcnt 1, pool_off, capacity), pushes it on the data queue, and in
  /// pthread mode broadcasts the condition variable under a timed lock of the mutex (100 ms; on
  /// timeout the sample stays queued and the broadcast is skipped, logged once).
  /// A free-list entry that is not a block of our pool is dropped (logged once).
  /// @return ok, would_block (no free block or queue full), size_mismatch (more values than
  ///         sample_capacity()), closed (already stopped). Bounded work whatever the peer wrote.
  Status try_push(const Sample& s) noexcept;
  /// Samples still in the data queue (the peer has not taken them yet); racy, clamped to the cells.
  std::uint64_t queued() const noexcept;
  /// Marks the data queue STOPPED (CAS 1 -> 5 under a timed lock in pthread mode) and wakes readers.
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
  void wake() noexcept;

  std::byte* base_ = nullptr;
  Geometry geo_;
  std::string what_;
  bool stopped_ = false;
  bool logged_bad_block_ = false;
  bool logged_lock_ = false;
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
  PeerRegion(PeerRegion&&) noexcept = default;
  PeerRegion& operator=(PeerRegion&&) noexcept = default;
  PeerRegion(const PeerRegion&) = delete;  // one handle per region: it keeps per-region state (stopped, logged once)
  PeerRegion& operator=(const PeerRegion&) = delete;
  ~PeerRegion() = default;

  /// @param bytes the peer's region, mapped read-write, 64-aligned; @param what its name.
  /// @throws Error layout naming `what` and the failed check (as inspect()); invalid_argument
  ///         when `bytes` is not 64-aligned.
  static PeerRegion attach(std::span<std::byte> bytes, std::string_view what);

  /// Takes the next sample: validates its offset (inside the pool buffer, on a block boundary),
  /// its pool_off (back to the pool: a v0.11 sample layout is reported as such) and
  /// length <= capacity <= block capacity, copies it into `out` (values resized to length),
  /// drops the reference (returning the block to the peer's free list at 0).
  /// @return ok, would_block (empty; the queue may still be open), closed (empty and STOPPED:
  ///         cells are drained before STOPPED is believed), layout (a sample failed a check: it
  ///         is skipped, and `error()` says which check), no_space (out of memory; nothing taken).
  ///         Bounded work whatever the peer wrote.
  Status try_pull(Sample& out) noexcept;
  /// The last failed check of try_pull ("" when none).
  const std::string& error() const noexcept { return error_; }
  bool pthread_mode() const noexcept { return geo_.pthread_mode; }
  /// A snapshot of the region (counters read racily, clamped).
  RegionInfo info() const noexcept;
  /// The validated geometry.
  const Geometry& geometry() const noexcept { return geo_; }

 private:
  PeerRegion() = default;
  void fail(std::string message) noexcept;
  void release_block(std::uint64_t block) noexcept;

  std::byte* base_ = nullptr;
  Geometry geo_;
  std::string what_;
  std::string error_;
  bool logged_free_full_ = false;
  bool logged_refcnt_ = false;
};

/// Summary of a validated region (counters read with relaxed loads, clamped).
RegionInfo summarize(std::span<const std::byte> bytes, const Geometry& g, std::string_view what) noexcept;

}  // namespace shmlink::villas
