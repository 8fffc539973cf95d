// SPDX-License-Identifier: MIT
// The region directory's machinery (docs/design/region.md): identity and holder tokens, header
// validation, the lock without a shared kernel, the seqlock copy of the table, its validation
// (the trust rule) and the allocator. Used by region.cpp, the unit tests and the fuzz target.
#pragma once

#include <shmlink/region.hpp>

#include "region/region_layout.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::rdir {

// ---- test hooks -----------------------------------------------------------------------------

/// Where the test hook is called.
enum class HookPoint {
  locked,    ///< inside reserve(), lock held, the entry written but not yet committed
  reserved,  ///< after reserve() released the lock, before the channel is laid out and published
  recovering,  ///< in every acquisition of the lock, lock held, before the recovery rule runs
  storing,     ///< before each store to the table, after checking that the lock is still held
};
/// Called (when set) at each HookPoint: tests make a child stop or pause there and kill it, or
/// throw there. Set before the region is used by other threads (a plain pointer, no ordering).
inline void (*g_test_hook)(HookPoint) = nullptr;
/// How long a holder may keep the lock before waiters act (2 s); tests shorten it.
/// SYNC POINT: read and written relaxed (a setting; it publishes nothing).
inline std::atomic<std::int64_t> g_lock_timeout_ns{2'000'000'000};
/// Where the liveness rules read the task table ("/proc"): tests point it at a folder that is not
/// this pid namespace's /proc (an internal hook, no public knob). Set before other threads run.
inline const char* g_proc_root = "/proc";

// ---- holders (holders.cpp) ------------------------------------------------------------------

/// What this kernel can say about a thread or process named by a token of its own hash.
enum class Liveness {
  gone,     ///< it has exited, or its id now names a task with another start time: it can do nothing more
  alive,    ///< it runs, with the start time recorded for it
  unknown,  ///< nothing sure (unreadable or foreign /proc, no start time recorded): treated as alive
};
/// The thread `tid` (any process) that started at `start` (clock ticks, low 32 bits compared;
/// 0: not recorded). gone only when /proc (this pid namespace's) says ENOENT and kill(tid, 0)
/// says ESRCH, when the thread has exited, or when a task of another start time has the id.
Liveness thread_liveness(std::uint64_t tid, std::uint64_t start);
/// The process `pid` that started at `start` (0: not recorded): gone as for a thread, or when
/// every thread of it has exited (a zombie leader whose other threads run is alive).
Liveness process_liveness(std::uint64_t pid, std::uint64_t start);
/// This thread's start time (clock ticks since boot; 0 when /proc cannot say: never cached).
std::uint64_t thread_start();
/// A random 64-bit value from getrandom (a clock-and-address mix where getrandom fails).
std::uint64_t random_u64() noexcept;

// ---- identity -------------------------------------------------------------------------------

/// This kernel's identity: the boot_id bytes, the host name and the 32-bit hash that holder
/// tokens carry (boot_id and pid namespace: pids are comparable only within one namespace).
struct Identity {
  std::array<std::uint8_t, 16> boot_id{};
  std::string host_name;
  std::uint32_t token_hash = 1;
  bool boot_id_read = false;  ///< false: the lock refuses to work (kernels could not be told apart)
};
/// Where this kernel's boot identity is read.
inline constexpr const char* kBootIdPath = "/proc/sys/kernel/random/boot_id";
/// Read once per process (boot_id from /proc/sys/kernel/random/boot_id; zeros when unreadable).
const Identity& local_identity();
/// This process's holder token (an entry's owner): token_hash << 32 | pid. Never 0. The lock
/// word holds a token per acquisition instead: token_hash << 32 | seq (10 bits) << 22 | tid,
/// the thread's first seq drawn at random (getrandom).
std::uint64_t holder_token() noexcept;
/// The lock_start word of the acquisition `token` by a thread started at `start` (clock ticks):
/// the token's low 32 bits (seq and tid) << 32 | the start's low 32 bits. A lock_start whose high
/// half is not the lock word's low half belongs to an earlier acquisition (docs/design/region.md).
constexpr std::uint64_t lock_start_of(std::uint64_t token, std::uint64_t start) noexcept {
  return (token << 32) | (start & 0xffffffffU);
}
/// This process's start time (/proc/self/stat field 22, clock ticks since boot; 0 if unreadable),
/// recorded next to an entry's owner so that a reused pid does not look like its creator.
std::uint64_t process_start();
/// The boot_id bytes as the kernel prints them ("8-4-4-4-12" lower-case hex).
std::string format_boot_id(const std::uint8_t (&id)[16]);

// ---- header ---------------------------------------------------------------------------------

/// The header fields a handle keeps (copied once at attach; the shared copy is never re-read).
struct Header {
  std::uint64_t region_size = 0;
  std::uint64_t directory_bytes = 0;
  std::uint32_t max_entries = 0;
  std::uint8_t boot_id[16] = {};
  std::string host_name;
  std::int32_t creator_pid = 0;
  std::uint32_t flags = 0;  ///< rlayout::kFlag* bits
  std::int64_t created_ns = 0;
};

/// Writes a fresh directory over `bytes` (size a multiple of 4096, >= 64 KiB, 64-byte aligned):
/// zeroes the header and table, fills the identity and `flags` (rlayout::kFlag*), and stores
/// version last (release).
/// @throws Error invalid_argument naming `what`.
void format(std::span<std::byte> bytes, std::uint32_t max_entries, const std::string& what, std::uint32_t flags = 0);

/// Validates the header of the region in `bytes` (version with acquire) and copies it.
/// @param whole bytes of the whole region `bytes` starts (0: bytes.size()): a reader that copied
///        only the header (the catalog's pread) says how long the file is; `bytes` must then hold
///        at least the 256-byte header.
/// @throws Error layout naming `what` and the field.
Header read_header(std::span<const std::byte> bytes, const std::string& what, std::uint64_t whole = 0);

// ---- the directory --------------------------------------------------------------------------

/// One in-use entry copied out of the table and validated, with its index.
struct Slot {
  std::uint32_t index = 0;
  RegionEntry entry;
};

/// Validates a raw copy of the table (the trust rule): every entry not free has a known kind and
/// state, a terminated name following the channel rule, an offset and size that are multiples
/// of 4096 inside [directory_bytes, region_size), no overlap with another and a name of its own.
/// @return the entries in use, in table order.
/// @throws Error layout "region WHAT: entry I ('NAME'): ..." naming the first bad entry.
std::vector<Slot> validate(std::span<const rlayout::RegionEntry> table, const Header& h, const std::string& what);

/// The directory of a mapped, validated region. Cheap to copy (a view); the mapping is owned
/// elsewhere (Region::State).
class Directory {
 public:
  Directory() = default;
  /// `other_kernels`: processes of other kernels (VMs, possibly cloned from one snapshot and so
  /// sharing this kernel's boot_id and pids) may use the region; a holder's liveness as this
  /// kernel's /proc tells it then never frees anything at once (docs/design/region.md).
  Directory(std::span<std::byte> bytes, Header header, std::string what, bool writable, bool other_kernels = false)
      : bytes_(bytes), header_(std::move(header)), what_(std::move(what)), writable_(writable),
        other_kernels_(other_kernels) {}

  [[nodiscard]] const Header& header() const noexcept { return header_; }
  [[nodiscard]] const std::string& what() const noexcept { return what_; }

  /// The entries in use: a seqlock copy of the table (retried while a holder changes it; read as
  /// it is when the holder is dead or silent), validated.
  /// @throws Error layout (corrupt entry), timeout (a live local holder keeps the lock).
  [[nodiscard]] std::vector<Slot> snapshot() const;
  /// The in-use entry named `name`, or std::nullopt.
  [[nodiscard]] std::optional<Slot> find(std::string_view name) const;

  /// Reserves an entry for `name` of `bytes` (rounded up to 4096), first fit: state creating,
  /// generation + 1, owner = this process. The bytes are not touched.
  /// @throws Error exists (an entry of that name in any state, unless `replace`), busy, no_space (no free entry, or
  ///         no gap big enough), permission (read-only), timeout, layout.
  /// `replace` (PurgeAndCreate): an entry of that name is freed first under the same lock, so no
  /// other process ever sees the name missing; busy when a live local process is still creating it.
  Slot reserve(std::string_view name, ChannelKind kind, std::uint64_t bytes, bool replace = false);
  /// Makes a reserved entry ready. @throws Error replaced when the entry is no longer the one
  /// reserved (reclaimed or removed meanwhile), timeout, layout.
  void publish(const Slot& slot);
  /// Frees a reserved entry after a failed creation: only the process that reserved it (its
  /// owner token) may, so a forked child cannot free its parent's reservation; a no-op when the
  /// entry changed meanwhile or is not the caller's. Never throws.
  void abandon(const Slot& slot) noexcept;
  /// Removes the in-use entry `name` (not one already removing): generation + 1, then free when
  /// no live process is attached (attachments()), else left `removing` with its bytes reserved
  /// until the last attached process detaches or dies (freed by the next lock holder's recovery).
  /// @return false when there is no such entry. @throws Error busy (a live local process is still
  ///         creating it), permission, timeout, layout.
  bool remove(std::string_view name);
  /// Frees entry `index` without validating the table, attached or not (Region::remove_entry).
  /// @return false when it is free already. @throws Error invalid_argument, permission, timeout.
  bool remove_index(std::uint32_t index);

  /// True while entry `index` still has `generation` and is creating or ready (an open handle's
  /// Placement::still_current). Reads two words of the table; never throws.
  [[nodiscard]] bool current(std::uint32_t index, std::uint64_t generation) const noexcept;

  /// Records this process in the attachment page of `slot` (entries keep the last kAttachBytes
  /// of their bytes for it), under the lock and only while the entry still has the slot's
  /// generation and is creating or ready. Slots of dead local processes are reused.
  /// @return the attachment's index, for detach(). @throws Error replaced (removed or reused
  ///         meanwhile), no_space (every slot names a live process), permission, timeout.
  std::uint32_t attach(const Slot& slot);
  /// Clears attachment `a` of `slot` (taken by attach()) while the entry is still that entry
  /// (its generation, or its generation + 1 and removing); lock-free. Never throws.
  void detach(const Slot& slot, std::uint32_t a) const noexcept;
  /// Live processes attached to entry `i` (slots of dead local processes are cleared on the way;
  /// slots of other kernels count as live). Under the lock only: `lock` is the holder's token
  /// (Lock::token()), checked before each slot it clears, as the table's stores check it.
  /// @throws Error timeout when the lock was taken over (nothing more cleared).
  [[nodiscard]] std::uint32_t attachments(std::uint32_t i, std::uint64_t lock) const;

  /// Reads the table as it is, without lock or retry (for the fuzz target and tests).
  [[nodiscard]] std::vector<rlayout::RegionEntry> raw_table() const;

 private:
  class Lock;
  /// attach() once the lock (token `lock`) is held and the entry checked (attachments.cpp).
  std::uint32_t attach_locked(const Slot& slot, std::uint64_t lock) const;
  /// Throws Error timeout naming the region and `doing` when the directory lock is no longer
  /// the acquisition `lock` (a waiter took it over after this holder stalled past the lock
  /// timeout): checked right before every store a lock holder makes to the table or to an
  /// attachment page, so that a stalled holder stops writing instead of racing the new one.
  void still_holding(std::uint64_t lock, const char* doing) const;
  /// The attachment page of entry `i` (its last kAttachBytes), or null when the entry's offset
  /// and size do not leave one inside the region (a corrupt entry has no attachments).
  [[nodiscard]] rlayout::AttachSlot* attach_page(std::uint32_t i) const noexcept;
  std::span<std::byte> bytes_;
  Header header_;
  std::string what_;
  bool writable_ = false;
  bool other_kernels_ = false;
};

/// True when `token` (an attachment's holder token) is a process of this kernel that is dead
/// (gone, or its pid reused: another start time than `start` when known). Other kernels' tokens
/// are never judged dead.
bool holder_dead(std::uint64_t token, std::uint64_t start);

/// A channel name as the directory accepts it: 1..79 bytes, not "." or "..", no '/', ':', NUL
/// or control characters. Returns what is wrong, or nullptr.
const char* name_problem(std::string_view name) noexcept;

/// A file on hugetlbfs (found by statfs(2) of `path`'s directory) takes whole huge pages: there
/// `size` must be a multiple of the huge page size (the file system's block size), else the
/// file would be longer than the directory written in it, and no host process could open it.
/// Elsewhere (or when statfs fails) nothing is checked.
/// @throws Error invalid_argument "WHO: size N is not a multiple of the huge page size P of this
///         hugetlbfs".
void check_hugetlbfs_size(const std::string& path, std::size_t size, const std::string& who);

}  // namespace shmlink::rdir
