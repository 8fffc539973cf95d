// SPDX-License-Identifier: MIT
// The memif status segment: shmlink's own file (not part of the memif protocol) in which a
// process publishes its memif sockets and interfaces for `shmlink ls`/`info`/`gc`
// (include/shmlink/memif.hpp "Status"; docs/design/memif.md "Status segment").
// Little-endian, offsets only, every struct pinned by static_asserts.
//
// One file per memif::Socket: <stream directory>/<pid>-<k>.memif.shm
//
//   0     StatusHeader (512 bytes): identity written once before `version`; role, used and
//         overflow change later (atomics)
//   512   InterfaceRecord[capacity] (384 bytes each), each guarded by its own seqlock
//
//   StatusHeader, 32 bits per row:
//    0 +-------------------------------+  magic "SHMLMIF\0" (8 bytes)
//    8 | version (written last)        |
//   12 | header_bytes = 512            |
//   16 | record_bytes = 384            |
//   20 | capacity (records)            |
//   24 | pid                           |
//   28 | role | pad (3 bytes)          |  role: 0 none, 1 master, 2 slave (atomic)
//   32 | start_time_ticks (64 bit)     |
//   40 | created_ns (64 bit)           |
//   48 | used (atomic)                 |
//   52 | overflow (atomic)             |
//   56 | reserved (64 bit)             |
//   64 | socket[256] ... app_name[32] ... reserved to 512
//
//   InterfaceRecord, 32 bits per row:
//    0 | seq (odd while written)       |
//    4 | reserved                      |
//    8 | in_use                        |
//   12 | id                            |
//   16 | role | mode | state | pad     |
//   20 | tx_queues     | rx_queues     |
//   24 | ring_size                     |
//   28 | buffer_size                   |
//   32 | connects (64)  40 updated_ns (64)  48..119 nine counters (64 each)  120 reserved
//  128 | name[32]  160 peer_name[32]  192 peer_app[32]  224 last_disconnect[128]  352 reserved[32]
//
// Seqlock: the one writer (the control thread of the owning process) makes `seq` odd, fences
// (release), stores the record's payload (bytes 8..383) as 64-bit relaxed atomics, then stores
// the next even `seq` with release. A reader loads `seq` (acquire), copies the payload with
// relaxed 64-bit loads, fences (acquire), loads `seq` again and keeps the copy only when both
// loads returned the same even value.
#pragma once

#include <bit>
#include <optional>
#include <cstddef>
#include <cstdint>

namespace shmlink::memif::status {

static_assert(std::endian::native == std::endian::little, "status files are little-endian");

/// "SHMLMIF\0": the first 8 bytes of every status file.
inline constexpr char kMagic[8] = {'S', 'H', 'M', 'L', 'M', 'I', 'F', '\0'};
/// Layout version, written last at creation (release) as the readiness marker.
inline constexpr std::uint32_t kVersion = 1;
/// Interface records per file; interfaces beyond them are counted in `overflow`, not published.
inline constexpr std::uint32_t kCapacity = 64;
/// Largest capacity a reader accepts (bounds the mapping it checks against).
inline constexpr std::uint32_t kMaxCapacity = 4096;
/// File name suffix: `<pid>-<k>.memif.shm`.
inline constexpr char kSuffix[] = ".memif.shm";

/// Role codes in `StatusHeader::role` and `InterfaceRecord::role`.
inline constexpr std::uint8_t kRoleNone = 0;
inline constexpr std::uint8_t kRoleMaster = 1;
inline constexpr std::uint8_t kRoleSlave = 2;

/// State codes in `InterfaceRecord::state` (memif::LinkState values).
inline constexpr std::uint8_t kStateIdle = 0;
inline constexpr std::uint8_t kStateListening = 1;
inline constexpr std::uint8_t kStateConnecting = 2;
inline constexpr std::uint8_t kStateHandshake = 3;
inline constexpr std::uint8_t kStateConnected = 4;

/// The file header. Everything but role, used and overflow is written once, before `version`.
struct StatusHeader {
  char magic[8];                   ///< 0   kMagic
  std::uint32_t version;           ///< 8   kVersion; written last (release), 0 while being built
  std::uint32_t header_bytes;      ///< 12  sizeof(StatusHeader): offset of record 0
  std::uint32_t record_bytes;      ///< 16  sizeof(InterfaceRecord)
  std::uint32_t capacity;          ///< 20  records in the file
  std::int32_t pid;                ///< 24  the owning process (as it sees itself: its pid namespace)
  std::uint8_t role;               ///< 28  the socket's role: kRoleNone until its first interface (atomic)
  std::uint8_t pad0[3];            ///< 29  zero
  std::uint64_t start_time_ticks;  ///< 32  the owner's start time, clock ticks after boot (/proc/self/stat field 22)
  std::int64_t created_ns;         ///< 40  when the file was created, ns since the epoch (CLOCK_REALTIME)
  std::uint32_t used;              ///< 48  records [0, used) have been used; the others are zero (atomic)
  std::uint32_t overflow;          ///< 52  interfaces of the socket that have no record now (atomic)
  std::uint64_t reserved0;         ///< 56  zero
  char socket[256];                ///< 64  socket display name: absolute path, or @name; NUL-terminated
  char app_name[32];               ///< 320 SocketOptions::app_name, NUL-terminated
  std::uint8_t reserved1[160];     ///< 352 zero
};
static_assert(sizeof(StatusHeader) == 512);
static_assert(offsetof(StatusHeader, magic) == 0);
static_assert(offsetof(StatusHeader, version) == 8);
static_assert(offsetof(StatusHeader, header_bytes) == 12);
static_assert(offsetof(StatusHeader, record_bytes) == 16);
static_assert(offsetof(StatusHeader, capacity) == 20);
static_assert(offsetof(StatusHeader, pid) == 24);
static_assert(offsetof(StatusHeader, role) == 28);
static_assert(offsetof(StatusHeader, start_time_ticks) == 32);
static_assert(offsetof(StatusHeader, created_ns) == 40);
static_assert(offsetof(StatusHeader, used) == 48);
static_assert(offsetof(StatusHeader, overflow) == 52);
static_assert(offsetof(StatusHeader, reserved0) == 56);
static_assert(offsetof(StatusHeader, socket) == 64);
static_assert(offsetof(StatusHeader, app_name) == 320);
static_assert(offsetof(StatusHeader, reserved1) == 352);

/// One interface, guarded by `seq` (see the file comment). A record whose `in_use` is 0 is free.
struct InterfaceRecord {
  std::uint32_t seq;               ///< 0   seqlock word: odd while the writer is inside
  std::uint32_t reserved0;         ///< 4   zero
  // -- payload: bytes 8..383, copied as 47 64-bit words --
  std::uint32_t in_use;            ///< 8   1: describes an interface of the socket; 0: free
  std::uint32_t id;                ///< 12  InterfaceOptions::id
  std::uint8_t role;               ///< 16  kRoleMaster / kRoleSlave
  std::uint8_t mode;               ///< 17  InterfaceMode (0 ethernet, 1 ip, 2 punt/inject)
  std::uint8_t state;              ///< 18  kState* (LinkState)
  std::uint8_t pad0;               ///< 19  zero
  std::uint16_t tx_queues;         ///< 20  queues this side transmits on (0 while down)
  std::uint16_t rx_queues;         ///< 22  queues this side receives on (0 while down)
  std::uint32_t ring_size;         ///< 24  slots per ring of the connection (0 while down)
  std::uint32_t buffer_size;       ///< 28  bytes per buffer (slave; 0 for a master: not on the wire)
  std::uint64_t connects;          ///< 32  times the link came up
  std::int64_t updated_ns;         ///< 40  time of this update, ns since the epoch (CLOCK_REALTIME)
  std::uint64_t tx_packets;        ///< 48  packets sent, all tx queues, all connections
  std::uint64_t tx_bytes;          ///< 56  bytes of those packets
  std::uint64_t rx_packets;        ///< 64  packets received, all rx queues
  std::uint64_t rx_bytes;          ///< 72  bytes of those packets
  std::uint64_t bad_descriptors;   ///< 80  descriptors from the peer that failed a check
  std::uint64_t dropped_packets;   ///< 88  received packets dropped for a bad descriptor
  std::uint64_t clamped_jumps;     ///< 96  peer index jumps clamped
  std::uint64_t ring_full;         ///< 104 alloc calls that found no free slot
  std::uint64_t interrupts_sent;   ///< 112 eventfd writes to the peer
  std::uint64_t reserved1;         ///< 120 zero
  char name[32];                   ///< 128 our interface name, NUL-terminated
  char peer_name[32];              ///< 160 the peer's interface name ("" before CONNECT/CONNECTED)
  char peer_app[32];               ///< 192 the peer's application name ("" before HELLO/INIT)
  char last_disconnect[128];       ///< 224 reason of the last disconnect, NUL-terminated, truncated
  std::uint8_t reserved2[32];      ///< 352 zero
};
static_assert(sizeof(InterfaceRecord) == 384);
static_assert(sizeof(InterfaceRecord) % 8 == 0);
static_assert(offsetof(InterfaceRecord, seq) == 0);
static_assert(offsetof(InterfaceRecord, reserved0) == 4);
static_assert(offsetof(InterfaceRecord, in_use) == 8);
static_assert(offsetof(InterfaceRecord, id) == 12);
static_assert(offsetof(InterfaceRecord, role) == 16);
static_assert(offsetof(InterfaceRecord, mode) == 17);
static_assert(offsetof(InterfaceRecord, state) == 18);
static_assert(offsetof(InterfaceRecord, tx_queues) == 20);
static_assert(offsetof(InterfaceRecord, rx_queues) == 22);
static_assert(offsetof(InterfaceRecord, ring_size) == 24);
static_assert(offsetof(InterfaceRecord, buffer_size) == 28);
static_assert(offsetof(InterfaceRecord, connects) == 32);
static_assert(offsetof(InterfaceRecord, updated_ns) == 40);
static_assert(offsetof(InterfaceRecord, tx_packets) == 48);
static_assert(offsetof(InterfaceRecord, tx_bytes) == 56);
static_assert(offsetof(InterfaceRecord, rx_packets) == 64);
static_assert(offsetof(InterfaceRecord, rx_bytes) == 72);
static_assert(offsetof(InterfaceRecord, bad_descriptors) == 80);
static_assert(offsetof(InterfaceRecord, dropped_packets) == 88);
static_assert(offsetof(InterfaceRecord, clamped_jumps) == 96);
static_assert(offsetof(InterfaceRecord, ring_full) == 104);
static_assert(offsetof(InterfaceRecord, interrupts_sent) == 112);
static_assert(offsetof(InterfaceRecord, reserved1) == 120);
static_assert(offsetof(InterfaceRecord, name) == 128);
static_assert(offsetof(InterfaceRecord, peer_name) == 160);
static_assert(offsetof(InterfaceRecord, peer_app) == 192);
static_assert(offsetof(InterfaceRecord, last_disconnect) == 224);
static_assert(offsetof(InterfaceRecord, reserved2) == 352);

/// Offset of the seqlock-guarded payload in a record, and its length in 64-bit words.
inline constexpr std::size_t kPayloadOffset = 8;
inline constexpr std::size_t kPayloadWords = (sizeof(InterfaceRecord) - kPayloadOffset) / 8;
static_assert(kPayloadWords == 47);

/// Whole file size for `capacity` records.
constexpr std::uint64_t file_bytes(std::uint32_t capacity) noexcept {
  return sizeof(StatusHeader) + std::uint64_t{sizeof(InterfaceRecord)} * capacity;
}
static_assert(file_bytes(kCapacity) == 512 + 64 * 384);

/// `header_bytes + record_bytes * capacity` as a reader must compute it from a file's own
/// fields: nullopt when it does not fit in 64 bits (a reader then refuses the file).
std::optional<std::uint64_t> checked_file_bytes(std::uint64_t header_bytes, std::uint64_t record_bytes,
                                                std::uint64_t capacity) noexcept;

}  // namespace shmlink::memif::status
