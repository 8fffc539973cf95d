// SPDX-License-Identifier: MIT
// The binary layout of a VILLASnode v1.x `shmem` region (v1.0 to v1.2, x86_64 glibc), as
// docs/reference/villas-shmem.md section 5 describes it. One region per direction, created by its
// writer; there is no magic and no version field, so a region is recognised by a fingerprint
// (villas_region.cpp). Little-endian, offsets only in the data path; every struct pinned by
// static_asserts against the sizes and offsets villas-node itself uses.
//
//   0     memory::Type (48): the creator's allocator header (its own pointers: never read)
//   48    memory::Block (32): prev/next (process pointers), length, used
//   80    ShmemShared (736): polling, CQueueSignalled (data queue + pthread objects), Pool
//   816   Block + data-queue cells (bit_ceil(Q) x 16 bytes, 8-aligned)
//   ...   Block + pool buffer (Q x blocksz, 64-aligned; a gap before it to reach 64)
//   ...   Block + free-list cells (bit_ceil(Q) x 16 bytes)
//   ...   Block of the free remainder, up to region_size()
#pragma once

#include <pthread.h>

#include <bit>
#include <cstddef>
#include <cstdint>

namespace shmlink::villas {

static_assert(std::endian::native == std::endian::little, "the VILLAS layout is little-endian x86_64");
static_assert(sizeof(void*) == 8, "the VILLAS layout is the 64-bit one");
// The pthread objects live inside CQueueSignalled; their glibc x86_64 sizes fix every later offset
// (aarch64's 48-byte mutex moves the Pool: that layout is refused by fingerprint). The structs below
// hold them as raw bytes, so this header also builds on aarch64, where kHostPthreadMatches is false
// and pthread mode is refused (OwnRegion::init); on x86_64 glibc the sizes must match exactly.
#if defined(__x86_64__)
static_assert(sizeof(pthread_mutex_t) == 40, "VILLAS regions need x86_64 glibc's 40-byte pthread_mutex_t");
static_assert(sizeof(pthread_cond_t) == 48, "VILLAS regions need x86_64 glibc's 48-byte pthread_cond_t");
/// True where this host's pthread objects are the ones a VILLAS v1.x region holds (x86_64 glibc).
inline constexpr bool kHostPthreadMatches = true;
#else
inline constexpr bool kHostPthreadMatches = false;
#endif

/// VILLASnode's State values used in the region.
inline constexpr std::int32_t kStateInitialized = 1;
inline constexpr std::int32_t kStateStopped = 5;
/// QueueSignalledMode values.
inline constexpr std::int32_t kModePthread = 1;
inline constexpr std::int32_t kModePolling = 2;
/// QueueSignalledFlags::PROCESS_SHARED (villas-node leaves the field 0 in its regions).
inline constexpr std::int32_t kFlagProcessShared = 1 << 4;
/// Pool block alignment and the cache line villas-node assumes on x86_64.
inline constexpr std::uint64_t kAlignment = 64;
/// Sample flags (same values as shmlink's kSample* bits).
inline constexpr std::int32_t kFlagHasTsOrigin = 1 << 0;
inline constexpr std::int32_t kFlagHasTsReceived = 1 << 1;
inline constexpr std::int32_t kFlagHasSequence = 1 << 3;
inline constexpr std::int32_t kFlagHasData = 1 << 4;

/// memory::Type: 48 bytes of the creating process's allocator state (pointers). Kept raw.
struct MemoryType {
  std::uint8_t raw[48];
};
static_assert(sizeof(MemoryType) == 48);

/// memory::Block: the managed allocator's descriptor in front of every allocation.
///   0 prev (ptr) | 8 next (ptr) | 16 length (bytes after the descriptor) | 24 used (bool) + pad
struct MemoryBlock {
  std::uint64_t prev;    // 0   process pointer (0 in regions shmlink builds)
  std::uint64_t next;    // 8   process pointer (0 in regions shmlink builds)
  std::uint64_t length;  // 16  bytes of the block, not counting this descriptor
  std::uint8_t used;     // 24  bool
  std::uint8_t pad[7];   // 25
};
static_assert(sizeof(MemoryBlock) == 32);
static_assert(offsetof(MemoryBlock, next) == 8);
static_assert(offsetof(MemoryBlock, length) == 16);
static_assert(offsetof(MemoryBlock, used) == 24);

/// One cell of a CQueue: Vyukov's per-cell sequence and the data offset, relative to the CQueue.
struct CQueueCell {
  std::uint64_t sequence;  // 0  atomic
  std::int64_t data_off;   // 8  relative to the owning CQueue
};
static_assert(sizeof(CQueueCell) == 16);
static_assert(offsetof(CQueueCell, data_off) == 8);

/// CQueue (296 bytes): state, geometry and the two indices, each on cache lines of its own.
///   0 state i32 | 4 pad (64) | 72 buffer_mask u64 | 80 buffer_off i64 | 88 pad (64)
///   152 tail u64 | 160 pad (64) | 224 head u64 | 232 pad (64)
struct CQueue {
  std::int32_t state;        // 0    kStateInitialized / kStateStopped (atomic)
  std::uint8_t pad0[68];     // 4    a cache line of padding, then alignment
  std::uint64_t buffer_mask; // 72   cells - 1 (cells a power of two)
  std::int64_t buffer_off;   // 80   the cells, relative to this CQueue
  std::uint8_t pad1[64];     // 88
  std::uint64_t tail;        // 152  producers' index (atomic)
  std::uint8_t pad2[64];     // 160
  std::uint64_t head;        // 224  consumers' index (atomic)
  std::uint8_t pad3[64];     // 232
};
static_assert(sizeof(CQueue) == 296);
static_assert(offsetof(CQueue, buffer_mask) == 72);
static_assert(offsetof(CQueue, buffer_off) == 80);
static_assert(offsetof(CQueue, tail) == 152);
static_assert(offsetof(CQueue, head) == 224);

/// CQueueSignalled (392 bytes): the data queue and how its reader is woken.
///   0 CQueue (296) | 296 mode i32 | 300 flags i32 | 304 pthread_cond_t (48) | 352 pthread_mutex_t (40)
struct CQueueSignalled {
  CQueue queue;            // 0
  std::int32_t mode;       // 296  kModePthread / kModePolling
  std::int32_t flags;      // 300
  alignas(8) std::byte ready[48];  // 304  pthread_cond_t, process-shared, broadcast after each push (pthread mode)
  alignas(8) std::byte mutex[40];  // 352  pthread_mutex_t, process-shared, not robust
};
static_assert(sizeof(CQueueSignalled) == 392);
static_assert(offsetof(CQueueSignalled, mode) == 296);
static_assert(offsetof(CQueueSignalled, flags) == 300);
static_assert(offsetof(CQueueSignalled, ready) == 304);
static_assert(offsetof(CQueueSignalled, mutex) == 352);

/// Pool (336 bytes): the sample blocks and their free list (itself a CQueue).
///   0 state i32 + pad | 8 buffer_off i64 | 16 len u64 | 24 blocksz u64 | 32 alignment u64 | 40 CQueue
struct Pool {
  std::int32_t state;       // 0   kStateInitialized
  std::uint8_t pad0[4];     // 4
  std::int64_t buffer_off;  // 8   the blocks, relative to this Pool
  std::uint64_t len;        // 16  bytes of the buffer (blocks x blocksz)
  std::uint64_t blocksz;    // 24  bytes per block, a multiple of alignment
  std::uint64_t alignment;  // 32  kAlignment
  CQueue queue;             // 40  free list: data_off relative to this CQueue
};
static_assert(sizeof(Pool) == 336);
static_assert(offsetof(Pool, buffer_off) == 8);
static_assert(offsetof(Pool, len) == 16);
static_assert(offsetof(Pool, blocksz) == 24);
static_assert(offsetof(Pool, alignment) == 32);
static_assert(offsetof(Pool, queue) == 40);

/// ShmemShared (736 bytes): what a peer finds at offset 80.
///   0 polling i32 + pad | 8 CQueueSignalled (392) | 400 Pool (336)
struct ShmemShared {
  std::int32_t polling;   // 0   1: polling mode, 0: pthread mode
  std::uint8_t pad0[4];   // 4
  CQueueSignalled queue;  // 8
  Pool pool;              // 400
};
static_assert(sizeof(ShmemShared) == 736);
static_assert(offsetof(ShmemShared, queue) == 8);
static_assert(offsetof(ShmemShared, pool) == 400);

/// The timespec of a sample (x86_64: two 8-byte fields).
struct Timespec {
  std::int64_t sec;
  std::int64_t nsec;
};
static_assert(sizeof(Timespec) == 16);

/// Sample header (88 bytes), then `capacity` 8-byte values. v0.11 and older had an 8-byte
/// `signals` pointer: refcnt @32, pool_off @40, ts @48, data @80 (refused, see kV011PoolOff).
///   0 sequence u64 | 8 length u32 | 12 capacity u32 | 16 flags i32 | 20 pad
///   24 signals (process-local shared_ptr, 16: zero in ours, ignored in theirs)
///   40 refcnt i32 (atomic) | 44 pad | 48 pool_off i64 (relative to the sample)
///   56 ts.origin | 72 ts.received | 88 data[]
struct SampleHeader {
  std::uint64_t sequence;    // 0
  std::uint32_t length;      // 8   valid values
  std::uint32_t capacity;    // 12  values the block holds
  std::int32_t flags;        // 16
  std::uint8_t pad0[4];      // 20
  std::uint8_t signals[16];  // 24  never read
  std::int32_t refcnt;       // 40  atomic
  std::uint8_t pad1[4];      // 44
  std::int64_t pool_off;     // 48  the Pool, relative to this sample
  Timespec ts_origin;        // 56
  Timespec ts_received;      // 72
};
static_assert(sizeof(SampleHeader) == 88);
static_assert(offsetof(SampleHeader, length) == 8);
static_assert(offsetof(SampleHeader, capacity) == 12);
static_assert(offsetof(SampleHeader, flags) == 16);
static_assert(offsetof(SampleHeader, signals) == 24);
static_assert(offsetof(SampleHeader, refcnt) == 40);
static_assert(offsetof(SampleHeader, pool_off) == 48);
static_assert(offsetof(SampleHeader, ts_origin) == 56);
static_assert(offsetof(SampleHeader, ts_received) == 72);
/// Where v0.11 and older kept pool_off (a sample with it there is reported as too old).
inline constexpr std::uint64_t kV011PoolOff = 40;

/// Fixed offsets from the start of a region.
inline constexpr std::uint64_t kBlock0Offset = sizeof(MemoryType);                          // 48
inline constexpr std::uint64_t kSharedOffset = kBlock0Offset + sizeof(MemoryBlock);         // 80
inline constexpr std::uint64_t kDataQueueOffset = kSharedOffset + offsetof(ShmemShared, queue);  // 88
inline constexpr std::uint64_t kPoolOffset = kSharedOffset + offsetof(ShmemShared, pool);   // 480
inline constexpr std::uint64_t kFreeQueueOffset = kPoolOffset + offsetof(Pool, queue);      // 520
inline constexpr std::uint64_t kSharedEnd = kSharedOffset + sizeof(ShmemShared);            // 816
static_assert(kSharedOffset == 80 && kDataQueueOffset == 88 && kPoolOffset == 480 && kFreeQueueOffset == 520 &&
              kSharedEnd == 816);

/// Bytes of one pool block for `samplelen` values: the sample rounded up to a cache line.
constexpr std::uint64_t block_size(std::uint32_t samplelen) noexcept {
  const std::uint64_t raw = sizeof(SampleHeader) + std::uint64_t{8} * samplelen;
  return (raw + kAlignment - 1) / kAlignment * kAlignment;
}
/// Values a block of `blocksz` bytes holds (a sample's capacity).
constexpr std::uint64_t block_capacity(std::uint64_t blocksz) noexcept {
  return blocksz < sizeof(SampleHeader) ? 0 : (blocksz - sizeof(SampleHeader)) / 8;
}
/// Bytes of a region for `blocks` pool blocks of `blocksz` bytes (villas-node's shmem_total_size():
/// type, shared struct, 2 x 16 bytes of cells per block, the pool, 4 block descriptors, 1024 spare).
constexpr std::uint64_t region_size_for_blocks(std::uint64_t blocks, std::uint64_t blocksz) noexcept {
  return sizeof(MemoryType) + sizeof(ShmemShared) + blocks * 2 * sizeof(CQueueCell) + blocks * blocksz +
         4 * sizeof(MemoryBlock) + 1024;
}
/// Bytes of the region villas-node creates for queuelen `queuelen` and sample length `samplelen`
/// (docs/reference/villas-shmem.md section 5.1).
constexpr std::uint64_t region_size(std::uint32_t queuelen, std::uint32_t samplelen) noexcept {
  return region_size_for_blocks(queuelen, block_size(samplelen));
}
static_assert(region_size(64, 4) == 12176);
static_assert(region_size(512, 64) == 346000);

}  // namespace shmlink::villas
