// SPDX-License-Identifier: MIT
/// @file queue_state.hpp
/// @brief The small files that let a bridged queue's ends resume after a restart (docs/design/
/// bridge.md, "Queues: exactly once"): `<queue file without .shm>.bridge-tx` for the sender (its
/// resend window) and `.bridge-rx` for the receiver (its numbering base). They live next to the
/// queue file, in the same file system (shared memory: they survive a killed process, not a
/// reboot, like the queue itself). Only the process that owns an end maps its file.
#pragma once

#include <shmlink/error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace shmlink::bridge {

//  Sender state (.bridge-tx), little-endian:
//   0        4        8        12       16                24               32
//  +--------+--------+--------+--------+----------------+----------------+
//  | magic  |version |max_vals| window | source created | acked          |
//  +--------+--------+--------+--------+----------------+----------------+
//  | end (next number to give)   40 | offset (number - consumer index) 48 |
//  +--------------------------------+-----------------------------------+
//  | renumber: offset to set     56 | renumber: end = acked to set    64 |
//  +--------------------------------+-----------------------------------+
//  then `window` slots of record_bytes(max_vals): sample number n in slot n % window (the
//  queue_samples record layout)
//
//  Renumbering (an empty window meeting a receiver that is ahead) changes offset, end and acked
//  together. It is written ahead: renumber_offset, then renumber_end (release: the commit point,
//  never 0 when pending), then the three fields, then renumber_end = 0. A sender that finds
//  renumber_end != 0 at start finishes the renumbering, so a crash between the stores never
//  leaves a file that cannot be opened. (Files written before this record existed hold 0 there.)
struct TxStateHeader {
  std::uint32_t magic;             // 0  kTxMagic, written last at creation (release)
  std::uint32_t version;           // 4  1
  std::uint32_t max_values;        // 8  the source queue's values per sample
  std::uint32_t window;            // 12 slots
  std::int64_t source_created_ns;  // 16 the source queue's creation_time_ns (its incarnation)
  std::uint64_t acked;             // 24 every number below it was pushed by the receiver (atomic)
  std::uint64_t end;               // 32 numbers below it are in the window or acked (atomic)
  std::uint64_t offset;            // 40 number = source consumer index + offset (atomic)
  std::uint64_t renumber_offset;   // 48 a pending renumbering's offset (valid while renumber_end != 0)
  std::uint64_t renumber_end;      // 56 a pending renumbering's end and acked; 0: none (atomic)
};
static_assert(sizeof(TxStateHeader) == 64);
static_assert(offsetof(TxStateHeader, source_created_ns) == 16);
static_assert(offsetof(TxStateHeader, acked) == 24);
static_assert(offsetof(TxStateHeader, end) == 32);
static_assert(offsetof(TxStateHeader, offset) == 40);
static_assert(offsetof(TxStateHeader, renumber_offset) == 48);
static_assert(offsetof(TxStateHeader, renumber_end) == 56);

//  Receiver state (.bridge-rx), little-endian:
//   0        4        8                16               24               32 .. 64
//  +--------+--------+----------------+----------------+----------------+---------+
//  | magic  |version | base           | queue created  | source gen.    | reserved|
//  +--------+--------+----------------+----------------+----------------+---------+
//  next expected number = base + the local queue's producer_position()
struct RxStateHeader {
  std::uint32_t magic;            // 0  kRxMagic, written last (release)
  std::uint32_t version;          // 4  1
  std::uint64_t base;             // 8  (atomic)
  std::int64_t queue_created_ns;  // 16 the local queue's creation_time_ns the base belongs to
  std::uint64_t source_generation;  // 24 the source queue's creation_time_ns (informational)
  std::uint8_t reserved[32];      // 32
};
static_assert(sizeof(RxStateHeader) == 64);
static_assert(offsetof(RxStateHeader, base) == 8);
static_assert(offsetof(RxStateHeader, queue_created_ns) == 16);
static_assert(offsetof(RxStateHeader, source_generation) == 24);

inline constexpr std::uint32_t kTxMagic = 0x58544C53;  // "SLTX"
inline constexpr std::uint32_t kRxMagic = 0x58524C53;  // "SLRX"
inline constexpr std::uint32_t kStateVersion = 1;

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

/// A state file mapped read-write (MAP_SHARED), with an exclusive flock(2) on it held while the
/// object lives: one bridge end per state file. Move-only; unlocks and unmaps on destruction.
class StateFile {
 public:
  StateFile() = default;
  StateFile(StateFile&&) noexcept;
  StateFile& operator=(StateFile&&) noexcept;
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;
  ~StateFile();

  /// Locks (flock LOCK_EX | LOCK_NB) and maps an existing file at `path` (any size >= 64), or
  /// returns an empty StateFile when none.
  /// @throws Error busy (another process or handle holds it: a second sender or receiver of the
  ///         same queue), layout (not a regular file of at least 64 bytes), permission, system;
  ///         each naming the file.
  static StateFile open_existing(const std::string& path);
  /// Creates a zero-filled file of `bytes` at `path`, 0600, its blocks allocated
  /// (posix_fallocate: a full file system fails here, not as SIGBUS later), locked, through a
  /// temporary name that takes the path once `fill` has written it (so a reader never sees half a
  /// file). `replace`: renamed over an existing file (the caller holds that file's lock);
  /// otherwise linked, so that a file someone else created meanwhile is never replaced.
  /// @throws Error no_space (the file system is full), busy (not `replace` and the file
  ///         appeared meanwhile), permission, system; each naming the file.
  template <class Fill>
  static StateFile create(const std::string& path, std::size_t bytes, bool replace, Fill&& fill) {
    StateFile f = create_temp(path, bytes);
    fill(f.bytes());
    f.publish(path, replace);
    return f;
  }

  [[nodiscard]] bool valid() const noexcept { return base_ != nullptr; }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte*>(base_), size_}; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  static StateFile create_temp(const std::string& path, std::size_t bytes);
  void publish(const std::string& path, bool replace);
  int fd_ = -1;  // open while mapped: holds the flock
  void* base_ = nullptr;
  std::size_t size_ = 0;
  std::string path_;
};

/// The state file of `queue_file` ("<dir>/x.queue.shm") with `suffix` (".bridge-tx"):
/// "<dir>/x.queue.bridge-tx".
std::string state_path(const std::string& queue_file, const char* suffix);

}  // namespace shmlink::bridge
