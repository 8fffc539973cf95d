// SPDX-License-Identifier: MIT
/// @file placement.hpp
/// @brief Where a channel's bytes live: a span of mapped memory plus what keeps it mapped.
///
/// Every channel kind separates its layout (how many bytes a spec needs, how to lay them out,
/// how to validate them) from where those bytes live (as DPDK's `rte_ring_get_memsize` /
/// `rte_ring_init` split allocation from layout). A file per channel in the stream directory is
/// one placement (`Stream::create`, `Queue::create`); an entry of a shmlink::Region is another
/// (`Region::create_stream`, ...); a caller-provided span is the general case
/// (`Stream::create_in`, `Stream::open_in`, `Queue::create_in`, `Queue::open_in`).
///
/// A placed channel validates every peer-written field against `bytes.size()` (never against a
/// file size) and stores offsets only, never pointers: each process maps the memory at its own
/// address (docs/design/region.md).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace shmlink {

class Doorbell;  // include/shmlink/doorbell.hpp

/// The memory a channel lives in. Plain data, copied into the channel handle.
struct Placement {
  /// The channel's bytes: starts 64-byte aligned (the region allocator aligns to 4096) and is at
  /// least the size the channel's `bytes_for(spec)` returns. A channel may use fewer bytes than
  /// the span holds (a region rounds entries up); the layout it validates must fit inside it.
  std::span<std::byte> bytes;
  /// Keeps the mapping alive as long as any handle placed in it lives (a Segment, a Region's
  /// mapping, a caller's buffer owner). May be null when the caller guarantees the lifetime.
  std::shared_ptr<const void> owner;
  /// The channel's name (what `Stream::name()` / `Queue::name()` report when the layout has none).
  std::string name;
  /// The resource named in error messages and returned by `path()`: a file path, or
  /// `REGION_PATH:NAME` for a region entry (e.g. "/dev/hugepages/ao.region:wfs").
  std::string path;
  /// Identity of the bytes, used as a process-wide registry key (e.g. a stream's wait-slot
  /// registry): the backing's st_dev and st_ino and the byte offset of `bytes` in the backing.
  /// All zero when unknown (then channels fall back to the span's address).
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint64_t offset = 0;
  /// The backing's descriptor (owned by `owner`, not by the channel), or -1. Channels only
  /// fstat() it; they never close it.
  int fd = -1;
  /// Mapped read-write (true) or read-only.
  bool writable = true;
  /// True when all processes using these bytes share one kernel (a file or memfd on this host),
  /// so futex and sem_t waits reach them; false for memory shared with other VMs (an ivshmem
  /// BAR2), where only polling waits reach every peer. Wake-ups are still made either way. When
  /// false, channels also treat any pid they find in the bytes as a live process of another
  /// kernel (it cannot be checked from here): they never take over what it holds.
  bool same_kernel = true;
  /// Optional: true while the placement still holds this channel (a region entry that was not
  /// removed or reused since it was opened: its generation is unchanged). Null: always true.
  /// Must be cheap and noexcept; called by `replaced()`-style checks, never on hot paths.
  std::function<bool()> still_current;
  /// Optional, the hot-path form of `still_current`: while the placement holds this channel, the
  /// 64-bit word at `current_word` (in shared memory: a region entry's generation) equals
  /// `current_value`; removing or reusing the entry changes it. Channels read it with one relaxed
  /// load at the start of each write, push or pop burst (a stale read costs one operation on
  /// bytes that a region keeps reserved while the handle is attached; docs/design/region.md,
  /// "Removing a channel"). Null: the word never changes (a file: `still_current` alone tells).
  std::uint64_t* current_word = nullptr;
  std::uint64_t current_value = 0;
  /// Optional, only where `same_kernel` is false: the channel's doorbell (a region entry's, when
  /// the region was opened through an ivshmem doorbell: include/shmlink/doorbell.hpp). Its
  /// waits then sleep on the doorbell instead of polling, and its writes, pushes and pops call
  /// Doorbell::notify() after publishing. Null: waits between kernels poll.
  std::shared_ptr<Doorbell> doorbell;

  /// The hot-path test: true unless `current_word` is set and no longer holds `current_value`.
  /// One relaxed load and a compare; never throws.
  [[nodiscard]] bool word_current() const noexcept {
    // SYNC POINT: relaxed: a hint that publishes and reads nothing through it (pairs with no
    // release); a region keeps an attached handle's bytes reserved, so a stale read costs one
    // operation on bytes that are still this channel's.
    return current_word == nullptr ||
           std::atomic_ref<std::uint64_t>(*current_word).load(std::memory_order_relaxed) == current_value;
  }
  /// Optional: the container's other channels, for a channel that keeps a companion next to it
  /// (a stream's partial-write companion `<name>_pkt`). Returns the placement of the sibling
  /// named `name` when it exists and is ready; otherwise, when `create_bytes` > 0, reserves
  /// `create_bytes` zero-filled, still unpublished bytes for it and returns that placement with
  /// `publish` set; otherwise std::nullopt. Throws shmlink::Error (naming the container) when the
  /// container is full or corrupt. Null: the channel has no siblings (file placements find their
  /// companions as files, as before).
  std::function<std::optional<Placement>(const std::string& name, std::size_t create_bytes)> sibling;
  /// Set only on a placement just reserved by `sibling`: makes it visible to `sibling` lookups
  /// and to other processes (a region entry's "being created" -> "ready"). Call it after the
  /// channel's own readiness marker is written. Throws shmlink::Error when the container refuses.
  std::function<void()> publish;
};

}  // namespace shmlink
