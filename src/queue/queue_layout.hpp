// SPDX-License-Identifier: MIT
// The shared layout of a queue file (include/shmlink/queue.hpp; docs/design/queues.md).
// Little-endian, offsets only, every struct pinned by static_asserts.
//
//   0    QueueHeader (384 bytes, 6 cache lines)
//        line 0: identity and geometry (written once, before version)
//        line 1: producer index `tail`          line 2: consumer index `head`
//        line 3: push waiters + not_full word   line 4: pop waiters + not_empty word
//        line 5: state, the attached consumer
//        Each line has one kind of writer, so the fast path moves only the cells between cores.
//   384  SignalEntry[signal_count] (64 bytes each)
//   H    cells: capacity x cell_bytes, H = header_bytes (a multiple of 64); each cell is
//        CellHeader (48 bytes) + max_values x 8 bytes, rounded up to 64
#pragma once

#include <shmlink/placement.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/segment.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::qlayout {

/// "SHMLINKQ": the first 8 bytes of every queue file.
inline constexpr char kMagic[8] = {'S', 'H', 'M', 'L', 'I', 'N', 'K', 'Q'};
/// Layout version, written last at creation (release) as the readiness marker. Version 1 (256-byte
/// header, waiter counts on the index lines, SPSC published by index) is not read.
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint32_t kCacheLine = 64;

/// State values.
inline constexpr std::uint32_t kStateOpen = 1;
inline constexpr std::uint32_t kStateShut = 2;

struct QueueHeader {
  // line 0 (0..63): identity and geometry, written once before version
  char magic[8];               // 0
  std::uint32_t version;       // 8   written last (release); 0 while being built
  std::uint32_t header_bytes;  // 12  offset of cell 0
  std::uint32_t cell_bytes;    // 16
  std::uint32_t capacity;      // 20  power of two
  std::uint32_t max_values;    // 24
  std::uint8_t kind;           // 28  QueueKind
  std::uint8_t wait;           // 29  WaitMode
  std::uint16_t signal_count;  // 30
  std::int32_t creator_pid;    // 32
  std::uint32_t reserved0;     // 36
  std::int64_t creation_time_ns;  // 40
  std::uint64_t reserved1[2];  // 48
  // line 1 (64..127): written by producers only. SPSC: a record (consumers never read it on
  // their fast path, they watch the cells); MPMC: the producers' claim index (CAS).
  std::uint64_t tail;          // 64  next position to push (atomic)
  std::uint8_t pad1[56];       // 72
  // line 2 (128..191): written by consumers only, as line 1 for producers.
  std::uint64_t head;          // 128 next position to pop (atomic)
  std::uint8_t pad2[56];       // 136
  // line 3 (192..255): sleeping producers. Written only when one goes to sleep or is woken, so
  // on the fast path it stays shared in every core's cache (a read costs no transfer).
  std::uint32_t push_waiters;  // 192 producers sleeping on not_full (atomic)
  std::uint32_t not_full;      // 196 futex word, +1 per pop that found push waiters
  std::uint8_t pad3[56];       // 200
  // line 4 (256..319): sleeping consumers, as line 3.
  std::uint32_t pop_waiters;   // 256 consumers sleeping on not_empty (atomic)
  std::uint32_t not_empty;     // 260 futex word, +1 per push that found pop waiters
  std::uint8_t pad4[56];       // 264
  // line 5 (320..383): read-mostly state.
  std::uint32_t state;         // 320 kStateOpen / kStateShut (atomic)
  std::int32_t consumer_pid;   // 324 pid of the Interface that attached as reader; 0: none (atomic)
  std::uint64_t consumer_token;  // 328 the reader's own output (its creation_time_ns); written after consumer_pid (atomic)
  std::uint8_t pad5[48];       // 336
};
static_assert(sizeof(QueueHeader) == 384);
static_assert(offsetof(QueueHeader, version) == 8);
static_assert(offsetof(QueueHeader, header_bytes) == 12);
static_assert(offsetof(QueueHeader, cell_bytes) == 16);
static_assert(offsetof(QueueHeader, capacity) == 20);
static_assert(offsetof(QueueHeader, max_values) == 24);
static_assert(offsetof(QueueHeader, kind) == 28);
static_assert(offsetof(QueueHeader, wait) == 29);
static_assert(offsetof(QueueHeader, signal_count) == 30);
static_assert(offsetof(QueueHeader, creator_pid) == 32);
static_assert(offsetof(QueueHeader, creation_time_ns) == 40);
static_assert(offsetof(QueueHeader, tail) == 64);
static_assert(offsetof(QueueHeader, head) == 128);
static_assert(offsetof(QueueHeader, push_waiters) == 192);
static_assert(offsetof(QueueHeader, not_full) == 196);
static_assert(offsetof(QueueHeader, pop_waiters) == 256);
static_assert(offsetof(QueueHeader, not_empty) == 260);
static_assert(offsetof(QueueHeader, state) == 320);
static_assert(offsetof(QueueHeader, consumer_pid) == 324);
static_assert(offsetof(QueueHeader, consumer_token) == 328);

/// One signal table entry.
struct SignalEntry {
  std::uint32_t index;  // 0
  std::uint8_t type;    // 4   SignalType
  std::uint8_t pad[3];  // 5
  char name[40];        // 8   NUL-terminated
  char unit[16];        // 48  NUL-terminated
};
static_assert(sizeof(SignalEntry) == 64);
static_assert(offsetof(SignalEntry, type) == 4);
static_assert(offsetof(SignalEntry, name) == 8);
static_assert(offsetof(SignalEntry, unit) == 48);

/// The head of one cell; the sample's values follow it.
struct CellHeader {
  std::uint64_t turn;        // 0   Vyukov's sequence (atomic), both kinds: pos free, pos+1 published
  std::uint64_t sequence;    // 8   Sample::sequence
  std::int64_t ts_origin;    // 16  ns since the epoch
  std::int64_t ts_received;  // 24
  std::uint32_t flags;       // 32
  std::uint32_t length;      // 36  values in this sample
  std::uint64_t reserved;    // 40
};
static_assert(sizeof(CellHeader) == 48);
static_assert(offsetof(CellHeader, sequence) == 8);
static_assert(offsetof(CellHeader, ts_origin) == 16);
static_assert(offsetof(CellHeader, flags) == 32);
static_assert(offsetof(CellHeader, length) == 36);

/// Bytes of one cell for `max_values` values, rounded up to a cache line.
constexpr std::uint64_t cell_bytes(std::uint32_t max_values) noexcept {
  const std::uint64_t raw = sizeof(CellHeader) + std::uint64_t{8} * max_values;
  return (raw + kCacheLine - 1) / kCacheLine * kCacheLine;
}
/// Offset of cell 0 for `signals` table entries.
constexpr std::uint64_t header_bytes(std::uint32_t signals) noexcept {
  const std::uint64_t raw = sizeof(QueueHeader) + std::uint64_t{sizeof(SignalEntry)} * signals;
  return (raw + kCacheLine - 1) / kCacheLine * kCacheLine;
}
/// Whole file size.
constexpr std::uint64_t file_bytes(std::uint32_t signals, std::uint32_t max_values, std::uint32_t capacity) noexcept {
  return header_bytes(signals) + cell_bytes(max_values) * capacity;
}
// Worked example: VILLASnode's defaults (512 cells of 64 values), two signals.
static_assert(cell_bytes(64) == 576);
static_assert(header_bytes(2) == 512);
static_assert(file_bytes(2, 64, 512) == 512 + 576 * 512);

// ---- the layout over a span (queue_layout.cpp) -------------------------------------------------

// Queue kinds are named by the public queue_kind_name() (include/shmlink/queue.hpp).
/// Checks a spec as Queue::create does.
/// @throws Error invalid_argument "creating queue PATH: ..." ("queue spec: ..." when `path` is empty).
void check_spec(const std::string& path, const QueueSpec& spec);
/// The bytes a queue of `spec` lays out (header, signal table, cells). `spec` must be checked.
std::uint64_t bytes_for(const QueueSpec& spec) noexcept;
/// Lays a queue of the checked `spec` out in `bytes` (zero-filled, >= bytes_for(spec), 64-byte
/// aligned, not yet visible to others); writes the version last (release).
void init(std::span<std::byte> bytes, const QueueSpec& spec) noexcept;
/// A validated header: every value read once from the bytes, checked, then used.
struct Checked {
  std::uint32_t capacity = 0;
  std::uint32_t max_values = 0;
  std::uint32_t signal_count = 0;
  QueueKind kind = QueueKind::spsc;
  WaitMode wait = WaitMode::hybrid;
  std::vector<Signal> signals;
  std::uint64_t bytes = 0;  ///< what the layout uses: file_bytes(signal_count, max_values, capacity)
};
/// Validates the queue in `bytes`: magic, version (acquire), geometry, the signal table, then
/// `expect`. The layout must fit in `bytes` (`exact_size`: fill it exactly, as a file must).
/// @throws Error layout "opening queue PATH: ..." naming the field or mismatch.
Checked validate(std::span<const std::byte> bytes, const std::string& path, bool exact_size, const QueueExpect& expect);

// ---- a queue file as a placement (queue_layout.cpp) ---------------------------------------------

/// Suffix of a queue file's name.
inline constexpr std::string_view kFileSuffix = ".queue.shm";
/// The name part of a queue file's path: its basename without ".queue.shm".
std::string file_name(const std::string& path);
/// The placement of a whole queue file: its mapping, kept alive by every handle placed in it;
/// `still_current` is true while `path` names the mapped inode (Queue::replaced()).
Placement file_placement(Segment seg, const std::string& path, bool writable);

}  // namespace shmlink::qlayout
