// SPDX-License-Identifier: MIT
/// @file region.hpp
/// @brief A region: one shared mapping (a file on /dev/shm or hugetlbfs, a memfd, or memory the
/// caller maps, such as a QEMU guest's ivshmem BAR2) holding a directory of named streams and
/// queues, each laid out exactly as its file-backed twin.
///
/// The directory sits at the region's start (magic, version written last, size, the creator's
/// host/boot identity, a lock word and a table of entries: name, kind, state, offset, size,
/// generation, owner). Its allocator works without a shared kernel (no futex, no pthread mutex):
/// a lock word holding the holder's token, taken by compare-and-swap, stolen at once from a dead
/// holder of this host and after 2 s of silence from a holder on another kernel. Everything a
/// peer can write is validated: a corrupted directory is Errc::layout naming the region and the
/// entry, never a crash (docs/design/region.md; the user guide is docs/regions.md).
#pragma once

#include <shmlink/doorbell.hpp>
#include <shmlink/export.h>
#include <shmlink/placement.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/segment.hpp>
#include <shmlink/stream.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmlink {

namespace detail {
struct RegionAccess;
}

/// What an entry of a region holds (the `kind` field of the layout).
enum class ChannelKind : std::uint32_t { stream = 1, queue = 2 };

/// An entry's state (the `state` field of the layout): `creating` while its creator lays the
/// channel out (invisible to open), `ready` once published, `removing` once removed while
/// writable handles are still attached (its bytes stay reserved until the last one closes or its
/// process dies; the next allocator operation after that frees it), or after a remover died
/// mid-way (freed by the next allocator operation).
enum class EntryState : std::uint32_t { free = 0, creating = 1, ready = 2, removing = 3 };

/// One entry of a region's directory, as copied out and validated by Region::entries().
struct RegionEntry {
  std::string name;                       ///< 1..79 bytes, the channel rule (no '/', ':' or control characters)
  ChannelKind kind = ChannelKind::stream;
  EntryState state = EntryState::free;
  std::uint64_t offset = 0;               ///< bytes from the region's start, a multiple of 4096
  std::uint64_t size = 0;                 ///< bytes reserved, a multiple of 4096
  std::uint64_t generation = 0;           ///< +1 at every reservation and every removal of the slot
  std::uint64_t owner = 0;                ///< holder token of the creator: (boot hash << 32) | pid
};

/// How Region::create / create_memfd / format lay out a new region.
struct RegionOptions {
  /// File mode bits of a region file: read and write bits only (check_channel_permissions()).
  mode_t permissions = 0600;
  /// Entries of the directory, 1..16384 (each 128 bytes; the directory is rounded up to 4096).
  std::size_t max_entries = 256;
};

/// A region handle. Move-only; the mapping is shared with every channel placed in it (a Stream
/// or Queue from create_stream/open_stream/... keeps it mapped after the Region is gone).
///
/// Thread safety: every member may be called from any thread; allocator operations of threads
/// and processes are serialised by the region's lock.
///
/// Memory ordering: the directory's version is stored last with release when a region is
/// formatted and loaded with acquire on open/attach. Directory changes happen under the lock
/// (taken by an acquire CAS, given back by a release CAS); readers copy the table without the
/// lock, seqlock style: lock_count (acquire), copy, acquire fence, lock_count again; a copy
/// that saw any change of a holder sees its lock_count increment and is retried. An entry is
/// published (creating -> ready) after its channel is laid out, so an opener that finds it
/// ready sees the channel complete (the channel also writes its own version last).
class SHMLINK_EXPORT Region {
 public:
  Region() noexcept;
  Region(Region&&) noexcept;
  Region& operator=(Region&&) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  /// Creates (or opens, by `mode`) a region file and formats its directory before it becomes
  /// visible (built under a temporary name, then linked: Segment::create_file).
  /// @param path a path (containing '/') used as given, e.g. "/dev/hugepages/ao.region"; a
  ///        plain name means `<stream_directory()>/<name>.region.shm`.
  /// @param size bytes: a power of two (QEMU's ivshmem requires it), at least 64 KiB and larger
  ///        than the directory; on hugetlbfs also a multiple of the huge page size.
  /// @param mode ExclusiveCreate (default), PurgeAndCreate (a new file replaces the old; handles
  ///        on the old keep it), OpenOrCreate (opens an existing region of the same size, else
  ///        Errc::layout), OpenExisting.
  /// @throws Error invalid_argument (size, name, permissions, max_entries), name_too_long,
  ///         exists, permission, no_space, not_found (missing directory), layout (OpenOrCreate of
  ///         a different region), busy (OpenOrCreate found the path absent to open and present
  ///         to create 16 times in a row, e.g. a dangling symbolic link), system; each naming the path.
  static Region create(const std::string& path, std::size_t size, OpenMode mode = OpenMode::ExclusiveCreate,
                       const RegionOptions& options = {});
  /// Creates a region in an anonymous memfd (sealed against resizing) named `name` ("memfd:NAME"
  /// in messages and path()). Share fd() with other processes (SCM_RIGHTS) and attach there.
  /// @throws Error invalid_argument (size as create), no_space, system.
  static Region create_memfd(const std::string& name, std::size_t size, const RegionOptions& options = {});
  /// Opens a region file (name rule as create) and validates its directory header. An ivshmem
  /// locator ("ivshmem:", "ivshmem:0000:00:02.0": include/shmlink/ivshmem.hpp) opens the region
  /// in that guest device's shared memory (BAR2) instead, with same_kernel() false.
  /// @param writable map read-write (needed to create, remove, or write channels) or read-only.
  /// @throws Error not_found, permission, layout (not a region, not formatted yet, wrong
  ///         version, size fields that do not match the file), system; each naming the path
  ///         (or the ivshmem device).
  static Region open(const std::string& path, bool writable = true);
  /// Uses an already-formatted region in memory the caller maps (e.g. a guest's ivshmem BAR2).
  /// @param bytes the whole region, 64-byte aligned; @param owner keeps it mapped (may be null
  ///        when the caller guarantees the lifetime); @param what names it in messages and
  ///        path(); @param same_kernel true when every process using it runs on this kernel
  ///        (futex waits reach them), false for memory shared with other VMs (polling waits;
  ///        doorbell waits come only with ivshmem::open_region and ivshmem::Peer::region()).
  /// @throws Error layout naming `what` when the directory is absent, not formatted or invalid.
  static Region attach(std::span<std::byte> bytes, std::shared_ptr<const void> owner, std::string what,
                       bool same_kernel);
  /// Formats a new directory in the caller's memory (e.g. an ivshmem server's shared memory),
  /// erasing whatever directory was there, and returns it attached. `bytes.size()` must be a
  /// multiple of 4096 and at least 64 KiB; `options.permissions` is not used. With
  /// `same_kernel` false the directory records that other kernels (VMs) use the region, and
  /// every process that opens or attaches it later, the host's included, then places its
  /// channels as not same_kernel (their waits poll).
  /// @throws Error invalid_argument naming `what` (size, alignment, max_entries).
  static Region format(std::span<std::byte> bytes, std::shared_ptr<const void> owner, std::string what,
                       bool same_kernel, const RegionOptions& options = {});

  /// Creates a stream named `name` in the region: reserves an entry (state creating), zeroes
  /// and lays out its bytes (Stream::create_in) and publishes it (state ready).
  /// @param mode ExclusiveCreate (default); PurgeAndCreate (frees an existing entry and reserves
  ///        the new one in one locked step, so no other process sees the name missing: handles
  ///        on the old see replaced()); OpenOrCreate (opens it when it exists with the same
  ///        shape and dtype, else Errc::layout); OpenExisting.
  /// @throws Error invalid_argument / name_too_long (the name; the spec as Stream::create),
  ///         exists, no_space (no gap or no free entry big enough), busy (another process is
  ///         creating it), permission (read-only region), timeout (the lock), layout (corrupt
  ///         directory); each naming `PATH:NAME` or the region.
  Stream create_stream(std::string_view name, const StreamSpec& spec, OpenMode mode = OpenMode::ExclusiveCreate);
  /// Opens the ready stream entry `name` with every check Stream::open does, against the entry.
  /// @throws Error not_found (no such entry, or not ready yet), layout (a queue of that name, a
  ///         corrupt directory or stream), timeout; naming `PATH:NAME`.
  Stream open_stream(std::string_view name, const OpenOptions& options = {});
  /// Creates a queue named `name` in the region, as create_stream (Queue::create_in).
  /// OpenOrCreate opens an existing queue whose max_values, kind and signals match.
  /// @throws Error invalid_argument / name_too_long (the name; the spec as Queue::create),
  ///         exists, no_space, busy, permission, timeout, layout (an existing queue that does
  ///         not match for OpenOrCreate, a stream of that name, a corrupt directory); each
  ///         naming `PATH:NAME` or the region.
  Queue create_queue(std::string_view name, const QueueSpec& spec, OpenMode mode = OpenMode::ExclusiveCreate);
  /// Opens the ready queue entry `name` (Queue::open_in with `expect`), as open_stream.
  /// @throws Error not_found (no such entry, or not ready yet), layout (a stream of that name,
  ///         a queue that does not match `expect`, a corrupt directory or queue), timeout;
  ///         naming `PATH:NAME`.
  Queue open_queue(std::string_view name, const QueueExpect& expect = {});
  /// Removes the entry `name` (and, for a stream, its partial-write companion `<name>_pkt`);
  /// the name is free at once. Its bytes return to the free space when no writable handle is
  /// attached, else the entry stays `removing` and its bytes reserved until the last one closes
  /// or its process dies (docs/design/region.md, "Removing a channel"). Handles still open on
  /// it see replaced(), and their writes, pushes and (once empty) pops return Errc::replaced.
  /// @throws Error not_found, busy (a live process of this host is still creating it),
  ///         permission (read-only), timeout, layout; naming `PATH:NAME`.
  void remove(std::string_view name);
  /// Frees table entry `index` whatever it holds (the last resort for a corrupt entry, which
  /// makes entries() and every lookup fail with Errc::layout naming "entry INDEX", or one stuck
  /// in a state nobody clears): no validation, no companion, no check that its creator is done,
  /// attached handles or not (e.g. a removed entry held by a process on another VM that never
  /// closes). Handles still open on it see replaced().
  /// @throws Error invalid_argument (index >= max_entries), not_found (the entry is free),
  ///         permission (read-only), timeout (the lock); naming the region and the index.
  void remove_entry(std::uint32_t index);
  /// The entries in use (every state but free), in table order, copied and validated.
  /// @throws Error layout naming the region and the entry (index and name) that is corrupt;
  ///         timeout when a live holder keeps the lock.
  [[nodiscard]] std::vector<RegionEntry> entries() const;

  /// True when a region is held.
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  /// The region's file path, "memfd:NAME", or the `what` given to attach/format.
  [[nodiscard]] const std::string& path() const noexcept;
  /// Bytes of the region (the directory's region_size).
  [[nodiscard]] std::size_t size() const noexcept;
  /// The backing's descriptor (owned by the region), or -1 for attached memory.
  [[nodiscard]] int fd() const noexcept;
  /// False when processes of other kernels may use the region (attach said so, or its formatter
  /// recorded it): its channels then wait by polling or on doorbells (wait_mode()).
  [[nodiscard]] bool same_kernel() const noexcept;
  /// How the channels placed through this handle wait for a peer: futex (same_kernel()),
  /// doorbell (other kernels share the region and this handle came with a doorbell endpoint:
  /// ivshmem::open_region in a guest whose device is ivshmem-doorbell with shmlink's UIO
  /// driver, or ivshmem::Peer::region() on the host, and the region is writable), else polling
  /// (docs/vm.md "Waiting: polling and doorbells").
  [[nodiscard]] RegionWaitMode wait_mode() const noexcept;
  /// The doorbell counters of this handle and every channel placed through it (all zero
  /// unless wait_mode() is doorbell). Racy observers.
  [[nodiscard]] DoorbellStats doorbell_stats() const noexcept;
  /// Bounds each doorbell sleep of this handle's channels (1 ms .. 1 h, default 100 ms): a ring
  /// that was lost (the peer's device dropped it, a garbled waiter table) costs at most this
  /// much latency. No effect unless wait_mode() is doorbell.
  void set_doorbell_fallback(std::chrono::milliseconds fallback) noexcept;
  /// The creator's boot identity as the kernel prints it ("8-4-4-4-12" lower-case hex).
  [[nodiscard]] std::string boot_id() const;
  /// The creator's host name.
  [[nodiscard]] std::string host_name() const;
  /// True when the region was formatted by this kernel (its boot_id is ours).
  [[nodiscard]] bool created_by_this_kernel() const noexcept;
  /// True when the owner of `entry` (RegionEntry::owner) is a process of this kernel and pid
  /// namespace, whose pid this process can look up (`shmlink gc` judges only such creators);
  /// false for another kernel's (a VM's) or another pid namespace's process.
  [[nodiscard]] static bool owner_is_local(const RegionEntry& entry);

  struct State;  ///< shared by the handle and its channels' placements (src/region)

 private:
  friend struct detail::RegionAccess;
  explicit Region(std::shared_ptr<State> state) noexcept;
  std::shared_ptr<State> state_;
};

/// Splits a channel locator "PATH:NAME" at its last ':' (PATH contains '/', NAME is not empty and
/// has no '/' and no ':'), e.g. "/dev/hugepages/ao.region:wfs" -> {"/dev/hugepages/ao.region",
/// "wfs"}; an ivshmem locator "ivshmem:[DEVICE:]NAME" splits into the device's region and NAME
/// ("ivshmem:wfs" -> {"ivshmem:", "wfs"}: ivshmem::split_channel_locator()). std::nullopt for
/// anything else (a plain name, a path without NAME).
SHMLINK_EXPORT std::optional<std::pair<std::string, std::string>> split_region_locator(std::string_view text);

/// The file of a region: a name without '/' becomes `<stream_directory()>/<name>.region.shm`; a
/// path (containing '/') is used as given, and so is an ivshmem locator ("ivshmem:...").
/// @throws Error invalid_argument / name_too_long for a name that breaks the channel name rule.
SHMLINK_EXPORT std::string region_path(std::string_view name_or_path);

}  // namespace shmlink
