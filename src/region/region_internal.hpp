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
};
/// Called (when set) at each HookPoint: tests make a child stop or pause there and kill it, or
/// throw there. Set before the region is used by other threads (a plain pointer, no ordering).
inline void (*g_test_hook)(HookPoint) = nullptr;
/// How long a holder may keep the lock before waiters act (2 s); tests shorten it.
/// SYNC POINT: read and written relaxed (a setting; it publishes nothing).
inline std::atomic<std::int64_t> g_lock_timeout_ns{2'000'000'000};

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
/// word holds a token per acquisition instead: token_hash << 32 | seq (10 bits) << 22 | tid.
std::uint64_t holder_token() noexcept;
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
  Directory(std::span<std::byte> bytes, Header header, std::string what, bool writable)
      : bytes_(bytes), header_(std::move(header)), what_(std::move(what)), writable_(writable) {}

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
  /// @throws Error exists (an entry of that name in any state), no_space (no free entry, or
  ///         no gap big enough), permission (read-only), timeout, layout.
  Slot reserve(std::string_view name, ChannelKind kind, std::uint64_t bytes);
  /// Makes a reserved entry ready. @throws Error replaced when the entry is no longer the one
  /// reserved (reclaimed or removed meanwhile), timeout, layout.
  void publish(const Slot& slot);
  /// Frees a reserved entry after a failed creation (no-op when it changed meanwhile). Never throws.
  void abandon(const Slot& slot) noexcept;
  /// Removes the in-use entry `name` (removing -> free, generation + 1).
  /// @return false when there is no such entry. @throws Error busy (a live local process is still
  ///         creating it), permission, timeout, layout.
  bool remove(std::string_view name);
  /// Frees entry `index` without validating the table (Region::remove_entry).
  /// @return false when it is free already. @throws Error invalid_argument, permission, timeout.
  bool remove_index(std::uint32_t index);

  /// True while entry `index` still has `generation` and is creating or ready (an open handle's
  /// Placement::still_current). Reads two words of the table; never throws.
  [[nodiscard]] bool current(std::uint32_t index, std::uint64_t generation) const noexcept;

  /// Reads the table as it is, without lock or retry (for the fuzz target and tests).
  [[nodiscard]] std::vector<rlayout::RegionEntry> raw_table() const;

 private:
  class Lock;
  /// Frees entry `i` (removing, generation + 1, free). Under the lock only.
  void release_slot(std::uint32_t i) const noexcept;
  std::span<std::byte> bytes_;
  Header header_;
  std::string what_;
  bool writable_ = false;
};

/// A channel name as the directory accepts it: 1..79 bytes, not "." or "..", no '/', ':', NUL
/// or control characters. Returns what is wrong, or nullptr.
const char* name_problem(std::string_view name) noexcept;

}  // namespace shmlink::rdir
