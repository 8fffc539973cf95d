// SPDX-License-Identifier: MIT
// The region handle's shared state and the internal door to it (placements, reservations) used
// by region.cpp, region_channels.cpp and the tests (include/shmlink/region.hpp).
#pragma once

#include <shmlink/region.hpp>
#include <shmlink/segment.hpp>

#include "region/doorbell.hpp"
#include "region/region_internal.hpp"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shmlink {

/// What a Region handle and every channel placed in it share: the mapping and the directory.
struct Region::State {
  Segment segment;                    ///< the owned backing (file, memfd); empty for attached memory
  std::shared_ptr<const void> owner;  ///< the caller's owner of attached memory
  std::span<std::byte> bytes;         ///< the whole mapping
  std::string path;                   ///< file path, "memfd:NAME" or the caller's `what`
  std::uint64_t dev = 0, ino = 0;     ///< the backing's identity (0 for attached memory)
  int fd = -1;                        ///< owned by `segment`, or -1
  bool writable = true;
  bool same_kernel = true;
  rdir::Directory dir;
  /// This process's doorbell endpoint where waits between kernels sleep on it (an ivshmem
  /// guest's device with the UIO driver, a host Peer); null: they poll (or use futexes).
  std::shared_ptr<rdoor::Port> port;
};

namespace detail {

/// A reserved (creating) entry: its slot and the placement of its zero-filled bytes.
struct Reserved {
  rdir::Slot slot;
  Placement where;
};

/// Internal access to a Region for the channel code and the tests.
struct RegionAccess {
  static rdir::Directory& directory(const Region& r);
  static const std::shared_ptr<Region::State>& state(const Region& r);
  /// Region::attach with the mapping's access mode: a read-only mapping (an ivshmem BAR2 mapped
  /// PROT_READ, src/ivshmem) makes a read-only region.
  /// `port`: the doorbell endpoint its channels' waits sleep on (only used when not same_kernel
  /// and writable: a waiter writes the waiter table); null: they poll.
  static Region attach(std::span<std::byte> bytes, std::shared_ptr<const void> owner, std::string what,
                       bool same_kernel, bool writable, std::shared_ptr<rdoor::Port> port = nullptr);
  /// The placement of the in-use entry `slot`: its bytes, `PATH:NAME`, still_current by
  /// generation, sibling lookup/creation for a stream's companion.
  static Placement placement(const std::shared_ptr<Region::State>& st, const rdir::Slot& slot);
  /// placement(), attached to the entry when `writable` (and the region is): the entry's bytes
  /// stay reserved while the placement (any copy of it) lives, even after a remove.
  /// @throws Error replaced (the entry was removed or reused since `slot` was read), no_space,
  ///         timeout, layout.
  static Placement attached(const std::shared_ptr<Region::State>& st, const rdir::Slot& slot, bool writable);
  /// Reserves an entry (creating) of at least `bytes` plus its attachment page, zeroes it and
  /// attaches the placement (the creator's handle); the caller lays the channel
  /// out and then calls `st->dir.publish(slot)`, or `abandon(slot)` on failure. `replace`
  /// (PurgeAndCreate): an entry of that name is retired in the same locked step.
  static Reserved allocate(const std::shared_ptr<Region::State>& st, std::string_view name, ChannelKind kind,
                           std::size_t bytes, bool replace = false);
  /// The in-use entry named `name`.
  static std::optional<rdir::Slot> find(const std::shared_ptr<Region::State>& st, std::string_view name);
};

}  // namespace detail
}  // namespace shmlink
