// SPDX-License-Identifier: MIT
// The shared layout of a region (include/shmlink/region.hpp; docs/design/region.md): one mapping
// with a directory at its start and the channels' own layouts (ISIO streams, queues) inside it,
// unchanged. Little-endian, offsets only (every process and every VM maps the region at its own
// address), every struct pinned by static_asserts.
//
//   0                RegionHeader (256 bytes): identity and geometry, written once before
//                    `version`; the lock line (lock, lock_count) written under the lock protocol
//   256              RegionEntry[max_entries] (128 bytes each): the table of named channels
//   waiters_offset   the doorbell waiter table (256 + 128 * max_entries): kWaiterSlots slots of
//                    8 bytes, then one 32-bit waiter count per entry (docs/design/doorbells.md)
//   directory_bytes  first byte a channel may use: the end of the waiter table rounded up to 4096
//   region_size      end of the region (a power of two for files and memfds: QEMU's ivshmem)
//
// Every channel's bytes start at a multiple of kEntryAlign (4096) and span a multiple of it.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace shmlink::rlayout {

static_assert(std::endian::native == std::endian::little, "regions are little-endian");

/// "SHMLREG\0": the first 8 bytes of every region.
inline constexpr char kMagic[8] = {'S', 'H', 'M', 'L', 'R', 'E', 'G', '\0'};
/// Layout version, written last at formatting (release) as the readiness marker; 0 while formatted.
/// 2: the doorbell waiter table after the entries (version 1 had none).
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint32_t kCacheLine = 64;
/// Alignment of every entry's offset and size (a page; hugetlbfs regions still use 4096 inside).
inline constexpr std::uint64_t kEntryAlign = 4096;
/// Smallest region: 64 KiB.
inline constexpr std::uint64_t kMinRegionSize = 64 * 1024;
/// Entries a reader accepts at most (bounds the directory it copies: 2 MiB).
inline constexpr std::uint32_t kMaxEntries = 16384;
/// Longest entry name in bytes (the field holds it plus a NUL).
inline constexpr std::size_t kMaxName = 79;

/// Header flag: processes on other kernels (VMs sharing the memory) use this region, so every
/// channel in it waits by polling (futex wake-ups do not cross kernels). Set by format() when the
/// formatter says the memory is not same-kernel (an ivshmem server); honoured by every opener.
inline constexpr std::uint32_t kFlagOtherKernels = 1;

/// Entry kinds (shmlink::ChannelKind values).
inline constexpr std::uint32_t kKindStream = 1;
inline constexpr std::uint32_t kKindQueue = 2;
/// Entry states (shmlink::EntryState values).
inline constexpr std::uint32_t kStateFree = 0;
inline constexpr std::uint32_t kStateCreating = 1;
inline constexpr std::uint32_t kStateReady = 2;
inline constexpr std::uint32_t kStateRemoving = 3;

/// The directory header, 32 bits per row:
///
///      0 +-------------------------------+
///        | magic "SHMLREG\0" (8 bytes)   |
///      8 | version (written last)        |
///     12 | header_bytes = 256            |
///     16 | region_size (64 bit)          |
///     24 | directory_bytes (64 bit)      |
///     32 | max_entries                   |
///     36 | entry_bytes = 128             |
///     40 | created_ns (64 bit)           |  CLOCK_REALTIME of the creator
///     48 | creator_pid                   |
///     52 | flags                         |  kFlagOtherKernels
///     56 | reserved1 (64 bit)            |
///     64 | boot_id (16 bytes)            |  /proc/sys/kernel/random/boot_id of the creator
///     80 | host_name (72 bytes, NUL-terminated)
///    152 | reserved2 (40 bytes)          |
///    192 | lock (64 bit, atomic)         |  holder token, 0 when free
///    200 | lock_count (64 bit, atomic)   |  +1 by each holder right after it takes the lock
///    208 | lock_start (64 bit, atomic)   |  holder token's low 32 bits << 32 | its thread's start time
///    216 | pad (40 bytes)                |
///    256 +-------------------------------+
struct RegionHeader {
  // line 0 (0..63): identity and geometry, written once before version
  char magic[8];                  // 0
  std::uint32_t version;          // 8   written last (release); 0 while being formatted
  std::uint32_t header_bytes;     // 12  sizeof(RegionHeader): offset of entry 0
  std::uint64_t region_size;      // 16  bytes of the whole region
  std::uint64_t directory_bytes;  // 24  header + entries rounded up to kEntryAlign
  std::uint32_t max_entries;      // 32
  std::uint32_t entry_bytes;      // 36  sizeof(RegionEntry)
  std::int64_t created_ns;        // 40
  std::int32_t creator_pid;       // 48  as the creator saw itself (its pid namespace)
  std::uint32_t flags;            // 52  kFlag* bits
  std::uint64_t reserved1;        // 56
  // lines 1-2 (64..191): who formatted the region (a later issue tells "same kernel" from
  // "another VM on this host" with it)
  std::uint8_t boot_id[16];       // 64  raw bytes of the creator's boot_id
  char host_name[72];             // 80  the creator's host name, NUL-terminated
  std::uint8_t reserved2[40];     // 152
  // line 3 (192..255): the allocator's lock, alone on its line
  std::uint64_t lock;             // 192 acquisition token (boot hash << 32 | seq << 22 | tid), 0: free
  std::uint64_t lock_count;       // 200 acquisitions; the directory readers' sequence (atomic)
  std::uint64_t lock_start;       // 208 lock's low 32 bits << 32 | the holder thread's start time (low 32 bits)
  std::uint8_t pad[40];           // 216
};
static_assert(sizeof(RegionHeader) == 256);
static_assert(offsetof(RegionHeader, magic) == 0);
static_assert(offsetof(RegionHeader, version) == 8);
static_assert(offsetof(RegionHeader, header_bytes) == 12);
static_assert(offsetof(RegionHeader, region_size) == 16);
static_assert(offsetof(RegionHeader, directory_bytes) == 24);
static_assert(offsetof(RegionHeader, max_entries) == 32);
static_assert(offsetof(RegionHeader, entry_bytes) == 36);
static_assert(offsetof(RegionHeader, created_ns) == 40);
static_assert(offsetof(RegionHeader, creator_pid) == 48);
static_assert(offsetof(RegionHeader, flags) == 52);
static_assert(offsetof(RegionHeader, reserved1) == 56);
static_assert(offsetof(RegionHeader, boot_id) == 64);
static_assert(offsetof(RegionHeader, host_name) == 80);
static_assert(offsetof(RegionHeader, reserved2) == 152);
static_assert(offsetof(RegionHeader, lock) == 192);
static_assert(offsetof(RegionHeader, lock_count) == 200);
static_assert(offsetof(RegionHeader, lock_start) == 208);
static_assert(offsetof(RegionHeader, pad) == 216);
static_assert(offsetof(RegionHeader, lock) % kCacheLine == 0);

/// One entry of the table, 32 bits per row. Written only by the lock holder, as sixteen 64-bit
/// words (relaxed atomics inside the readers' seqlock); a free entry's other fields mean nothing.
///
///      0 +-------------------------------+
///        | name (80 bytes, NUL-terminated, 1..79 bytes)
///     80 | kind                          |  1 stream, 2 queue
///     84 | state                         |  0 free, 1 creating, 2 ready, 3 removing (held while attached)
///     88 | offset (64 bit)               |  from the region's start, multiple of 4096
///     96 | size (64 bit)                 |  multiple of 4096
///    104 | generation (64 bit)           |  +1 at every reservation and every release
///    112 | owner (64 bit)                |  holder token of the process that reserved it
///    120 | owner_start (64 bit)          |  the owner's process start time (clock ticks), 0: unknown
///    128 +-------------------------------+
struct RegionEntry {
  char name[80];             // 0
  std::uint32_t kind;        // 80  (kind and state form one 64-bit word: kind low, state high)
  std::uint32_t state;       // 84
  std::uint64_t offset;      // 88
  std::uint64_t size;        // 96
  std::uint64_t generation;  // 104
  std::uint64_t owner;       // 112
  std::uint64_t owner_start;  // 120 start time of the owner process (/proc/PID/stat field 22)
};
static_assert(sizeof(RegionEntry) == 128);
static_assert(offsetof(RegionEntry, name) == 0);
static_assert(offsetof(RegionEntry, kind) == 80);
static_assert(offsetof(RegionEntry, state) == 84);
static_assert(offsetof(RegionEntry, offset) == 88);
static_assert(offsetof(RegionEntry, size) == 96);
static_assert(offsetof(RegionEntry, generation) == 104);
static_assert(offsetof(RegionEntry, owner) == 112);
static_assert(offsetof(RegionEntry, owner_start) == 120);
/// The entry as 64-bit words (the unit of every shared access): word 10 holds kind | state << 32,
/// word 13 the generation, word 14 the owner.
inline constexpr std::size_t kEntryWords = sizeof(RegionEntry) / 8;
inline constexpr std::size_t kKindStateWord = offsetof(RegionEntry, kind) / 8;
inline constexpr std::size_t kGenerationWord = offsetof(RegionEntry, generation) / 8;
inline constexpr std::size_t kOwnerWord = offsetof(RegionEntry, owner) / 8;
inline constexpr std::size_t kOwnerStartWord = offsetof(RegionEntry, owner_start) / 8;
static_assert(kEntryWords == 16 && kKindStateWord == 10 && kGenerationWord == 13 && kOwnerWord == 14 &&
              kOwnerStartWord == 15);

/// The last page of every entry: the channel's attachments (docs/design/region.md, "Removing a
/// channel"), not part of the channel's bytes. A writable handle takes a slot (under the
/// directory lock, while the entry is current) and clears it when it closes; a removed entry
/// stays `removing`, its bytes reserved, until no slot names a live process.
///
///      0 +-------------------------------+
///        | token (64 bit, atomic)        |  holder token (boot hash << 32 | pid), 0: free
///      8 | start (64 bit, atomic)        |  the holder's process start time, 0: unknown
///     16 +-------------------------------+  x kAttachSlots
struct AttachSlot {
  std::uint64_t token;  // 0
  std::uint64_t start;  // 8
};
static_assert(sizeof(AttachSlot) == 16);
static_assert(offsetof(AttachSlot, token) == 0);
static_assert(offsetof(AttachSlot, start) == 8);
/// Bytes of an entry's attachment page (its last kEntryAlign bytes) and its slots.
inline constexpr std::uint64_t kAttachBytes = kEntryAlign;
inline constexpr std::uint32_t kAttachSlots = static_cast<std::uint32_t>(kAttachBytes / sizeof(AttachSlot));
static_assert(kAttachSlots == 256);

/// The doorbell waiter table (docs/design/doorbells.md), right after the entries:
///
///   waiters_offset                 +-------------------------------+
///                                  | slot[0] (64 bit, atomic)      |  0: free; else
///                                  | ...                           |  (entry + 1) << 32 |
///                                  | slot[kWaiterSlots - 1]        |  peer << 16 | vector
///   waiters_offset + 8 * slots     | count[0] (32 bit, atomic)     |  waiters registered on
///                                  | ...                           |  entry i (a hint: the
///                                  | count[max_entries - 1]        |  writer's one load)
///                                  +-------------------------------+
///
/// A waiter (a process of any kernel that sleeps on its ivshmem doorbell) claims a free slot by
/// compare-and-swap, then adds 1 to its entry's count; a writer that published loads the count
/// and, when it is not 0, rings the peer and vector of every slot naming the entry. Every value
/// is a hint a peer may have garbled: an entry, peer or vector out of range is ignored, never
/// used to index memory; a wrong count costs a scan or a late (fallback) wake-up, never data.
inline constexpr std::uint32_t kWaiterSlots = 128;
/// A waiter slot's word: (entry + 1) << 32 | peer << 16 | vector; 0 is a free slot.
constexpr std::uint64_t waiter_word(std::uint32_t entry, std::uint16_t peer, std::uint16_t vector) noexcept {
  return (std::uint64_t{entry} + 1) << 32 | std::uint64_t{peer} << 16 | vector;
}
/// Offset of the waiter table from the region's start.
constexpr std::uint64_t waiters_offset(std::uint32_t max_entries) noexcept {
  return sizeof(RegionHeader) + std::uint64_t{sizeof(RegionEntry)} * max_entries;
}
/// Offset of entry `i`'s waiter count (of a directory of `max_entries`).
constexpr std::uint64_t waiter_count_offset(std::uint32_t max_entries, std::uint32_t i) noexcept {
  return waiters_offset(max_entries) + 8ULL * kWaiterSlots + 4ULL * i;
}
static_assert(waiters_offset(1) % kCacheLine == 0, "slots start on a cache line (128-byte entries)");
static_assert(waiter_count_offset(1, 0) % kCacheLine == 0, "counts start on a cache line");
static_assert(waiter_word(0, 0, 0) != 0 && waiter_word(16383, 65535, 65535) == 0x00004000FFFFFFFFULL);

/// `n` rounded up to a multiple of kEntryAlign.
constexpr std::uint64_t align_up(std::uint64_t n) noexcept { return (n + kEntryAlign - 1) / kEntryAlign * kEntryAlign; }
/// Bytes of the directory (header, table, waiter table) for `max_entries`, rounded up to kEntryAlign.
constexpr std::uint64_t directory_bytes(std::uint32_t max_entries) noexcept {
  return align_up(waiter_count_offset(max_entries, max_entries));
}
/// Offset of entry `i` from the region's start.
constexpr std::uint64_t entry_offset(std::uint32_t i) noexcept {
  return sizeof(RegionHeader) + std::uint64_t{sizeof(RegionEntry)} * i;
}
/// The word that holds `kind` and `state`.
constexpr std::uint64_t kind_state(std::uint32_t kind, std::uint32_t state) noexcept {
  return std::uint64_t{kind} | (std::uint64_t{state} << 32);
}
// Worked example: the default 256 entries take 36 KiB (35072 bytes with the waiter table),
// leaving 28 KiB of a 64 KiB region.
static_assert(waiters_offset(256) == 33024 && waiter_count_offset(256, 0) == 34048);
static_assert(directory_bytes(256) == 36864);
static_assert(entry_offset(1) == 384);

}  // namespace shmlink::rlayout
