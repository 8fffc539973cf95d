// SPDX-License-Identifier: MIT
// VILLASnode v1.x shmem regions: fingerprint checks, the allocator's layout, our output region's queue and pool
// operations, and reading the peer's region (docs/reference/villas-shmem.md section 5; the queue algorithm is
// section 2.2, Vyukov's bounded MPMC queue).
#include "queue/villas_region.hpp"

#include "os/log_internal.hpp"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

namespace shmlink::villas {
namespace {

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::int64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::int32_t>::is_always_lock_free);

/// Most attempts of one queue operation before it gives up (the peer may keep moving the indices
/// or the sequences): each try_* does bounded work whatever the peer writes.
constexpr int kMaxAttempts = 64;
/// How long a writer waits for its own region's mutex before it skips the broadcast, and how long it sleeps between two
/// trylocks meanwhile, after a few tries that only yield (CLOCK_MONOTONIC).
constexpr std::int64_t kLockTimeoutNs = 100'000'000;
constexpr std::int64_t kLockRetryNs = 100'000;
constexpr std::int64_t kLockYields = 64;  // tries with a yield before the first sleep
/// How many times the condition variable's internal lock bits are read (yielding in between)
/// before a broadcast is given up.
constexpr int kCondLockChecks = 64;
/// The largest block we accept: the block villas-node makes for kMaxSampleValues values (its
/// capacity, (blocksz - 88) / 8, is a few values more; RegionInfo's 32-bit fields hold it).
constexpr std::uint64_t kMaxBlockSize = block_size(kMaxSampleValues);
static_assert(kMaxBlockSize <= 0xffff'ffffU && kMaxQueueCapacity <= 0xffff'ffffU, "RegionInfo's fields hold them");

// Field offsets from the start of a region.
constexpr std::uint64_t kPollingAt = kSharedOffset;
constexpr std::uint64_t kModeAt = kDataQueueOffset + offsetof(CQueueSignalled, mode);
constexpr std::uint64_t kCondAt = kDataQueueOffset + offsetof(CQueueSignalled, ready);
constexpr std::uint64_t kMutexAt = kDataQueueOffset + offsetof(CQueueSignalled, mutex);
// glibc 2.36 x86_64 words of the pthread objects that are checked before each use (the peer can write them): the
// mutex's kind, the condition variable's flag bits (in __wrefs: bit 0 process-shared, bit 1 clock, bit 2 destroy
// wake-up; the waiter count above) and its internal lock (the low 2 bits of __g1_orig_size, which
// pthread_cond_broadcast takes with an untimed futex wait when a waiter is counted).
static_assert(offsetof(__pthread_mutex_s, __kind) == 16);
static_assert(offsetof(__pthread_cond_s, __g1_orig_size) == 32 && offsetof(__pthread_cond_s, __wrefs) == 36);
constexpr std::uint64_t kMutexKindAt = kMutexAt + offsetof(__pthread_mutex_s, __kind);
constexpr std::uint64_t kCondOrigSizeAt = kCondAt + offsetof(__pthread_cond_s, __g1_orig_size);
constexpr std::uint64_t kCondWrefsAt = kCondAt + offsetof(__pthread_cond_s, __wrefs);
constexpr std::int32_t kMutexElisionBits = 0x300;  // glibc may set these itself (lock elision)
constexpr std::uint32_t kCondFlagBits = 0x7;
constexpr std::uint32_t kCondLockBits = 0x3;
// On aarch64 the mutex is 8 bytes longer, so the Pool starts 8 bytes later.
constexpr std::uint64_t kAarch64PoolOffset = kPoolOffset + 8;

template <class T>
T load_plain(std::span<const std::byte> b, std::uint64_t off) noexcept {
  T v{};
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

template <class T>
std::atomic_ref<T> field(std::byte* base, std::uint64_t off) noexcept {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(base + off));
}

/// Logs `make()` (a std::string) as a warning the first time `logged` is false. Never throws.
template <class F>
void log_once(bool& logged, F&& make) noexcept {
  if (logged) return;
  logged = true;
  try {
    detail::log(LogLevel::warn, make());
  } catch (...) {  // out of memory: the warning is lost, nothing else
  }
}

std::string num(std::uint64_t v) { return std::to_string(v); }
std::string snum(std::int64_t v) { return std::to_string(v); }

constexpr std::uint64_t queue_state_at(std::uint64_t q) { return q + offsetof(CQueue, state); }
constexpr std::uint64_t queue_mask_at(std::uint64_t q) { return q + offsetof(CQueue, buffer_mask); }
constexpr std::uint64_t queue_off_at(std::uint64_t q) { return q + offsetof(CQueue, buffer_off); }
constexpr std::uint64_t queue_tail_at(std::uint64_t q) { return q + offsetof(CQueue, tail); }
constexpr std::uint64_t queue_head_at(std::uint64_t q) { return q + offsetof(CQueue, head); }
constexpr std::uint64_t pool_at(std::uint64_t f) { return kPoolOffset + f; }

/// An array of `bytes` bytes placed at `anchor + rel` (rel read from the region): inside
/// [kSharedEnd, size) and `align`-aligned, or a message saying why not.
bool place(std::uint64_t anchor, std::int64_t rel, std::uint64_t bytes, std::uint64_t align, std::uint64_t size,
           const char* name, std::uint64_t& at, std::string& why) {
  // Wrapping addition is exact here: anchor is below 1024 and a file is far below 2^63 bytes, so
  // a negative sum wraps to a value above any size.
  at = anchor + static_cast<std::uint64_t>(rel);
  if (at < kSharedEnd || at > size || bytes > size - at) {
    why = std::string(name) + " (offset " + snum(rel) + " from byte " + num(anchor) + ", " + num(bytes) +
          " bytes) lies outside the region's " + num(size) + " bytes after its header";
    return false;
  }
  if (at % align != 0) {
    why = std::string(name) + " at byte " + num(at) + " is not " + num(align) + "-byte aligned";
    return false;
  }
  return true;
}

bool disjoint(std::uint64_t a, std::uint64_t an, std::uint64_t b, std::uint64_t bn) { return a + an <= b || b + bn <= a; }

/// A queue's mask: cells a power of two, at most kMaxQueueCapacity, matching `blocks`.
bool check_mask(std::uint64_t mask, std::uint64_t blocks, const char* name, std::uint64_t& cells, std::string& why) {
  if (mask >= kMaxQueueCapacity || ((mask + 1) & mask) != 0) {
    why = std::string(name) + " mask " + num(mask) + " is not a power of two minus one (at most " +
          num(kMaxQueueCapacity) + " cells)";
    return false;
  }
  cells = mask + 1;
  if (cells != std::bit_ceil(blocks)) {
    why = std::string(name) + " has " + num(cells) + " cells for " + num(blocks) + " pool blocks (expected " +
          num(std::bit_ceil(blocks)) + ")";
    return false;
  }
  return true;
}

std::optional<Geometry> check_impl(std::span<const std::byte> h, std::uint64_t size, std::string& why) {
  if (size < kSharedEnd || h.size() < kSharedEnd) {
    why = "the file is " + num(size) + " bytes, shorter than a region's " + num(kSharedEnd) + "-byte header";
    return std::nullopt;
  }
  Geometry g;
  g.size = size;
  const auto polling = load_plain<std::int32_t>(h, kPollingAt);
  const auto mode = load_plain<std::int32_t>(h, kModeAt);
  if (mode != kModePthread && mode != kModePolling) {
    why = "queue mode is " + snum(mode) + ", neither 1 (pthread) nor 2 (polling)";
    return std::nullopt;
  }
  if (polling != (mode == kModePolling ? 1 : 0)) {
    why = "polling flag " + snum(polling) + " disagrees with queue mode " + snum(mode);
    return std::nullopt;
  }
  g.pthread_mode = mode == kModePthread;
  const auto pool_state = load_plain<std::int32_t>(h, pool_at(offsetof(Pool, state)));
  const auto alignment = load_plain<std::uint64_t>(h, pool_at(offsetof(Pool, alignment)));
  if (pool_state != kStateInitialized || alignment != kAlignment) {
    if (load_plain<std::int32_t>(h, kAarch64PoolOffset + offsetof(Pool, state)) == kStateInitialized &&
        load_plain<std::uint64_t>(h, kAarch64PoolOffset + offsetof(Pool, alignment)) == kAlignment)
      why = "the pool sits 8 bytes further on, as on aarch64 (48-byte pthread_mutex_t): not an x86_64 region";
    else if (pool_state != kStateInitialized)
      why = "pool state is " + snum(pool_state) + ", not 1 (initialized)";
    else
      why = "pool alignment is " + num(alignment) + ", not 64";
    return std::nullopt;
  }
  g.blocksz = load_plain<std::uint64_t>(h, pool_at(offsetof(Pool, blocksz)));
  if (g.blocksz % kAlignment != 0 || g.blocksz < sizeof(SampleHeader) + 8) {
    why = "pool block size " + num(g.blocksz) + " is not a multiple of 64 holding a header and a value (>= 96)";
    return std::nullopt;
  }
  if (g.blocksz > kMaxBlockSize) {
    why = "pool block size " + num(g.blocksz) + " holds " + num(block_capacity(g.blocksz)) +
          " values, more than shmlink reads (blocks of at most " + num(kMaxBlockSize) + " bytes, " +
          num(kMaxSampleValues) + " values per sample)";
    return std::nullopt;
  }
  const auto len = load_plain<std::uint64_t>(h, pool_at(offsetof(Pool, len)));
  if (len == 0 || len % g.blocksz != 0 || len > size) {
    why = "pool length " + num(len) + " is not a whole number of " + num(g.blocksz) +
          "-byte blocks inside the " + num(size) + "-byte file";
    return std::nullopt;
  }
  g.blocks = len / g.blocksz;
  if (g.blocks > kMaxQueueCapacity) {
    why = "the pool has " + num(g.blocks) + " blocks, more than " + num(kMaxQueueCapacity);
    return std::nullopt;
  }
  const auto state = load_plain<std::int32_t>(h, queue_state_at(kDataQueueOffset));
  if (state != kStateInitialized && state != kStateStopped) {
    why = "data queue state is " + snum(state) + ", neither 1 (initialized) nor 5 (stopped)";
    return std::nullopt;
  }
  if (!check_mask(load_plain<std::uint64_t>(h, queue_mask_at(kDataQueueOffset)), g.blocks, "the data queue", g.cells,
                  why))
    return std::nullopt;
  const auto free_state = load_plain<std::int32_t>(h, queue_state_at(kFreeQueueOffset));
  if (free_state != kStateInitialized) {
    why = "free-list state is " + snum(free_state) + ", not 1 (initialized)";
    return std::nullopt;
  }
  if (!check_mask(load_plain<std::uint64_t>(h, queue_mask_at(kFreeQueueOffset)), g.blocks, "the free list",
                  g.free_count, why))
    return std::nullopt;
  const std::uint64_t expect = region_size_for_blocks(g.blocks, g.blocksz);
  if (size != expect) {
    why = "the file is " + num(size) + " bytes, not the " + num(expect) + " bytes villas-node makes for " +
          num(g.blocks) + " blocks of " + num(g.blocksz) + " bytes";
    return std::nullopt;
  }
  if (!place(kDataQueueOffset, load_plain<std::int64_t>(h, queue_off_at(kDataQueueOffset)),
             g.cells * sizeof(CQueueCell), 8, size, "the data queue's cells", g.data_cells, why) ||
      !place(kPoolOffset, load_plain<std::int64_t>(h, pool_at(offsetof(Pool, buffer_off))), len, kAlignment, size,
             "the pool buffer", g.pool_buffer, why) ||
      !place(kFreeQueueOffset, load_plain<std::int64_t>(h, queue_off_at(kFreeQueueOffset)),
             g.free_count * sizeof(CQueueCell), 8, size, "the free list's cells", g.free_cells, why))
    return std::nullopt;
  const std::uint64_t cells_bytes = g.cells * sizeof(CQueueCell);
  const std::uint64_t free_bytes = g.free_count * sizeof(CQueueCell);
  if (!disjoint(g.data_cells, cells_bytes, g.pool_buffer, len) ||
      !disjoint(g.data_cells, cells_bytes, g.free_cells, free_bytes) ||
      !disjoint(g.pool_buffer, len, g.free_cells, free_bytes)) {
    why = "the data cells (byte " + num(g.data_cells) + "), pool buffer (byte " + num(g.pool_buffer) +
          ") and free-list cells (byte " + num(g.free_cells) + ") overlap";
    return std::nullopt;
  }
  return g;
}

std::int64_t to_ns(const Timespec& t) noexcept {
  // Wrapping arithmetic: a peer's nonsense time gives a nonsense value, never undefined behaviour.
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(t.sec) * 1'000'000'000ULL +
                                   static_cast<std::uint64_t>(t.nsec));
}

Timespec from_ns(std::int64_t ns) noexcept {
  Timespec t{ns / 1'000'000'000, ns % 1'000'000'000};
  if (t.nsec < 0) {
    t.nsec += 1'000'000'000;
    t.sec -= 1;
  }
  return t;
}

/// Pops one entry of the Vyukov queue at `q` (cells at `cells`, `count` of them) into `data_off`.
/// @return 1 taken, 0 empty, -1 gave up after kMaxAttempts (the indices kept moving).
int vyukov_pop(std::byte* base, std::uint64_t q, std::uint64_t cells, std::uint64_t count, std::int64_t& data_off) noexcept {
  auto head = field<std::uint64_t>(base, queue_head_at(q));
  std::uint64_t pos = head.load(std::memory_order_relaxed);
  for (int i = 0; i < kMaxAttempts; ++i) {
    const std::uint64_t cell = cells + (pos & (count - 1)) * sizeof(CQueueCell);
    // SYNC POINT: acquire pairs with the pusher's release store of sequence = pos + 1 (after it
    // stored data_off and filled the block).
    const std::uint64_t seq = field<std::uint64_t>(base, cell + offsetof(CQueueCell, sequence)).load(std::memory_order_acquire);
    const auto diff = static_cast<std::int64_t>(seq - (pos + 1));
    if (diff == 0) {
      if (head.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
        data_off = field<std::int64_t>(base, cell + offsetof(CQueueCell, data_off)).load(std::memory_order_relaxed);
        // SYNC POINT: release pairs with the next pusher's acquire load of this cell's sequence
        // (it sees the cell free only after we have read data_off).
        field<std::uint64_t>(base, cell + offsetof(CQueueCell, sequence)).store(pos + count, std::memory_order_release);
        return 1;
      }
    } else if (diff < 0) {
      return 0;
    } else {
      pos = head.load(std::memory_order_relaxed);
    }
  }
  return -1;
}

/// Pushes `data_off` on the Vyukov queue at `q`. @return 1 pushed, 0 full, -1 gave up.
int vyukov_push(std::byte* base, std::uint64_t q, std::uint64_t cells, std::uint64_t count, std::int64_t data_off) noexcept {
  auto tail = field<std::uint64_t>(base, queue_tail_at(q));
  std::uint64_t pos = tail.load(std::memory_order_relaxed);
  for (int i = 0; i < kMaxAttempts; ++i) {
    const std::uint64_t cell = cells + (pos & (count - 1)) * sizeof(CQueueCell);
    // SYNC POINT: acquire pairs with the popper's release store of sequence = pos (it has read
    // the cell's previous data_off).
    const std::uint64_t seq = field<std::uint64_t>(base, cell + offsetof(CQueueCell, sequence)).load(std::memory_order_acquire);
    const auto diff = static_cast<std::int64_t>(seq - pos);
    if (diff == 0) {
      if (tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
        field<std::int64_t>(base, cell + offsetof(CQueueCell, data_off)).store(data_off, std::memory_order_relaxed);
        // SYNC POINT: release publishes data_off and the block's contents; the popper's acquire
        // load of sequence == pos + 1 pairs with it.
        field<std::uint64_t>(base, cell + offsetof(CQueueCell, sequence)).store(pos + 1, std::memory_order_release);
        return 1;
      }
    } else if (diff < 0) {
      return 0;
    } else {
      pos = tail.load(std::memory_order_relaxed);
    }
  }
  return -1;
}

std::uint64_t clamped_distance(std::span<const std::byte> b, std::uint64_t q, std::uint64_t limit) noexcept {
  const auto tail = load_plain<std::uint64_t>(b, queue_tail_at(q));
  const auto head = load_plain<std::uint64_t>(b, queue_head_at(q));
  const std::uint64_t d = tail - head;
  return d > limit ? limit : d;
}

/// CLOCK_MONOTONIC now, in ns.
std::int64_t monotonic_ns() noexcept {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

}  // namespace

std::optional<Geometry> check_region(std::span<const std::byte> header, std::uint64_t file_size,
                                     std::string& why) noexcept {
  try {
    return check_impl(header, file_size, why);
  } catch (...) {  // std::bad_alloc building a message
    return std::nullopt;
  }
}

std::optional<Plan> plan_region(std::uint64_t size, std::uint32_t queuelen, std::uint64_t blocksz) noexcept {
  // First fit over a list of descriptors kept in address order, as villas-node's managed
  // allocator does (lib/memory/managed.cpp): an allocation starts after its descriptor, aligned;
  // an alignment gap larger than a descriptor gets a descriptor of its own (a free block), a
  // smaller one is counted in the block; the remainder, when a descriptor fits, becomes a free block.
  constexpr std::uint64_t kDesc = sizeof(MemoryBlock);
  Plan p;
  if (size < kSharedOffset) return std::nullopt;
  p.descriptors[0] = {kBlock0Offset, size - kSharedOffset, false};
  p.descriptor_count = 1;
  auto insert_after = [&p](std::size_t i, Plan::Descriptor d) {
    if (p.descriptor_count == p.descriptors.size()) return false;
    for (std::size_t j = p.descriptor_count; j > i + 1; --j) p.descriptors[j] = p.descriptors[j - 1];
    p.descriptors[i + 1] = d;
    ++p.descriptor_count;
    return true;
  };
  auto alloc = [&](std::uint64_t len, std::uint64_t align, std::uint64_t& at) {
    for (std::size_t i = 0; i < p.descriptor_count; ++i) {
      if (p.descriptors[i].used) continue;
      std::uint64_t start = p.descriptors[i].at + kDesc;
      std::uint64_t avail = p.descriptors[i].length;
      const std::uint64_t gap = (align - start % align) % align;
      if (gap > avail) continue;
      start += gap;
      avail -= gap;
      if (avail < len) continue;
      if (gap > kDesc) {
        p.descriptors[i].length = gap - kDesc;
        if (!insert_after(i, {start - kDesc, len, false})) return false;
        ++i;
      } else {
        p.descriptors[i].length = len + gap;
      }
      if (avail > len + kDesc) {
        if (!insert_after(i, {start + len, avail - len - kDesc, false})) return false;
      } else {
        p.descriptors[i].length = avail;
      }
      p.descriptors[i].used = true;
      at = start;
      return true;
    }
    return false;
  };
  Geometry& g = p.geometry;
  g.size = size;
  g.blocks = queuelen;
  g.blocksz = blocksz;
  g.cells = std::bit_ceil(std::uint64_t{queuelen});
  g.free_count = g.cells;
  std::uint64_t shared = 0;
  if (!alloc(sizeof(ShmemShared), 8, shared) || shared != kSharedOffset) return std::nullopt;
  if (!alloc(g.cells * sizeof(CQueueCell), 8, g.data_cells)) return std::nullopt;
  if (!alloc(g.blocks * g.blocksz, kAlignment, g.pool_buffer)) return std::nullopt;
  if (!alloc(g.free_count * sizeof(CQueueCell), 8, g.free_cells)) return std::nullopt;
  return p;
}

RegionInfo summarize(std::span<const std::byte> b, const Geometry& g, std::string_view what) noexcept {
  RegionInfo r;
  try {
    r.path = std::string(what);
  } catch (...) {  // out of memory: an info without its name
  }
  r.size = g.size;
  r.pthread_mode = g.pthread_mode;
  r.stopped = load_plain<std::int32_t>(b, queue_state_at(kDataQueueOffset)) == kStateStopped;
  r.queue_cells = static_cast<std::uint32_t>(g.cells);
  r.pool_blocks = static_cast<std::uint32_t>(g.blocks);
  r.block_size = static_cast<std::uint32_t>(g.blocksz);
  r.sample_capacity = static_cast<std::uint32_t>(block_capacity(g.blocksz));
  r.queued = clamped_distance(b, kDataQueueOffset, g.cells);
  r.free_blocks = clamped_distance(b, kFreeQueueOffset, g.blocks);
  return r;
}

// ---- OwnRegion ------------------------------------------------------------------------------

OwnRegion OwnRegion::init(std::span<std::byte> bytes, std::uint32_t queuelen, std::uint32_t samplelen,
                          bool pthread_mode, std::string_view what) {
  const std::string name(what);
  const std::string ctx = "creating VILLAS region " + name + ": ";
  if (queuelen < 1 || queuelen > kMaxQueueCapacity)
    throw Error(Errc::invalid_argument, ctx + "queuelen " + num(queuelen) + " is not 1 .. " + num(kMaxQueueCapacity));
  if (samplelen < 1 || samplelen > kMaxSampleValues)
    throw Error(Errc::invalid_argument, ctx + "samplelen " + num(samplelen) + " is not 1 .. " + num(kMaxSampleValues));
  const std::uint64_t size = region_size(queuelen, samplelen);
  if (bytes.size() != size)
    throw Error(Errc::invalid_argument, ctx + "the mapping is " + num(bytes.size()) + " bytes, not " + num(size));
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % kAlignment != 0)
    throw Error(Errc::invalid_argument, ctx + "the mapping is not 64-byte aligned");
  const auto plan = plan_region(size, queuelen, block_size(samplelen));
  if (!plan)
    throw Error(Errc::invalid_argument, ctx + "queuelen " + num(queuelen) +
                                            " does not fit villas-node's region size (a power of two always does)");
  OwnRegion r;
  r.base_ = bytes.data();
  r.geo_ = plan->geometry;
  r.geo_.pthread_mode = pthread_mode;
  r.what_ = name;
  const Geometry& g = r.geo_;
  std::byte* b = r.base_;
  std::memset(b, 0, size);

  // The allocator's descriptors (prev/next are process pointers in villas-node: left 0).
  for (std::size_t i = 0; i < plan->descriptor_count; ++i) {
    MemoryBlock d{};
    d.length = plan->descriptors[i].length;
    d.used = plan->descriptors[i].used ? 1 : 0;
    std::memcpy(b + plan->descriptors[i].at, &d, sizeof d);
  }
  auto put = [b](std::uint64_t off, auto v) { std::memcpy(b + off, &v, sizeof v); };
  put(kPollingAt, std::int32_t{pthread_mode ? 0 : 1});
  put(kModeAt, pthread_mode ? kModePthread : kModePolling);
  // The data queue: cell i starts with sequence i; head = tail = 0 (zero already).
  put(queue_mask_at(kDataQueueOffset), g.cells - 1);
  put(queue_off_at(kDataQueueOffset), static_cast<std::int64_t>(g.data_cells - kDataQueueOffset));
  for (std::uint64_t i = 0; i < g.cells; ++i) put(g.data_cells + i * sizeof(CQueueCell), i);
  if (pthread_mode && !kHostPthreadMatches)
    throw Error(Errc::invalid_argument, ctx + "pthread mode needs x86_64 glibc's pthread objects (VILLASnode v1.x "
                                              "regions are x86_64 ones); use polling mode on this machine");
  if (pthread_mode) {
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    int err = pthread_mutexattr_init(&ma);
    if (err == 0) {
      err = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
      if (err == 0) err = pthread_mutex_init(reinterpret_cast<pthread_mutex_t*>(b + kMutexAt), &ma);
      pthread_mutexattr_destroy(&ma);
    }
    if (err == 0) err = pthread_condattr_init(&ca);
    if (err == 0) {
      err = pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
      if (err == 0) err = pthread_cond_init(reinterpret_cast<pthread_cond_t*>(b + kCondAt), &ca);
      pthread_condattr_destroy(&ca);
    }
    if (err != 0) throw Error(errc_from_errno(err), ctx + "process-shared pthread objects: " + std::strerror(err));
    // Local copies of the words checked before each later use (nobody else maps the region yet).
    r.mutex_kind_ = load_plain<std::int32_t>({b, size}, kMutexKindAt) & ~kMutexElisionBits;
    r.cond_flags_ = load_plain<std::uint32_t>({b, size}, kCondWrefsAt) & kCondFlagBits;
  }
  // The pool and its free list, filled with every block (cell i holds block i).
  put(pool_at(offsetof(Pool, state)), kStateInitialized);
  put(pool_at(offsetof(Pool, buffer_off)), static_cast<std::int64_t>(g.pool_buffer - kPoolOffset));
  put(pool_at(offsetof(Pool, len)), g.blocks * g.blocksz);
  put(pool_at(offsetof(Pool, blocksz)), g.blocksz);
  put(pool_at(offsetof(Pool, alignment)), kAlignment);
  put(queue_mask_at(kFreeQueueOffset), g.free_count - 1);
  put(queue_off_at(kFreeQueueOffset), static_cast<std::int64_t>(g.free_cells - kFreeQueueOffset));
  for (std::uint64_t i = 0; i < g.free_count; ++i) {
    const std::uint64_t cell = g.free_cells + i * sizeof(CQueueCell);
    if (i < g.blocks) {
      put(cell + offsetof(CQueueCell, sequence), i + 1);
      put(cell + offsetof(CQueueCell, data_off),
          static_cast<std::int64_t>(g.pool_buffer + i * g.blocksz - kFreeQueueOffset));
    } else {
      put(cell + offsetof(CQueueCell, sequence), i);
    }
  }
  put(queue_tail_at(kFreeQueueOffset), g.blocks);
  put(queue_state_at(kFreeQueueOffset), kStateInitialized);
  // SYNC POINT: the data queue's state is the last field written; the peer reads the region only
  // after our rendezvous semaphore post (a full barrier), so this release is belt and braces.
  field<std::int32_t>(b, queue_state_at(kDataQueueOffset)).store(kStateInitialized, std::memory_order_release);
  return r;
}

std::uint32_t OwnRegion::sample_capacity() const noexcept {
  return static_cast<std::uint32_t>(block_capacity(geo_.blocksz));
}

bool OwnRegion::pop_free_block(std::uint64_t& block) noexcept {
  // The peer pushes blocks back into this list: every entry is checked before use, and a bounded
  // number of bad ones is skipped.
  for (int i = 0; i < kMaxAttempts; ++i) {
    std::int64_t rel = 0;
    if (vyukov_pop(base_, kFreeQueueOffset, geo_.free_cells, geo_.free_count, rel) != 1) return false;
    const std::uint64_t at = kFreeQueueOffset + static_cast<std::uint64_t>(rel);
    const std::uint64_t len = geo_.blocks * geo_.blocksz;
    if (at >= geo_.pool_buffer && at - geo_.pool_buffer < len && (at - geo_.pool_buffer) % geo_.blocksz == 0) {
      block = at;
      return true;
    }
    log_once(logged_bad_block_, [&] {
      return "VILLAS region " + what_ + ": the peer returned offset " + snum(rel) +
             " to the free list, not a block of the pool; dropped (logged once)";
    });
  }
  return false;
}

bool OwnRegion::push_free_block(std::uint64_t block) noexcept {
  return vyukov_push(base_, kFreeQueueOffset, geo_.free_cells, geo_.free_count,
                     static_cast<std::int64_t>(block - kFreeQueueOffset)) == 1;
}

Status OwnRegion::try_push(const Sample& s) noexcept {
  if (base_ == nullptr) return Errc::closed;
  if (stopped_) return Errc::shut_down;
  const Status st = push(s);
  // A pushed sample's wake-up also makes an owed one; a call that pushed nothing still retries
  // an owed one, so a writer that keeps finding the pool empty wakes the reader that would empty it.
  if (st == Errc::ok)
    wake(true);
  else
    retry_wake();
  return st;
}

Status OwnRegion::push(const Sample& s) noexcept {
  if (s.values.size() > sample_capacity()) return Errc::size_mismatch;
  std::uint64_t block = 0;
  if (!pop_free_block(block)) return Errc::would_block;
  SampleHeader h{};
  h.sequence = s.sequence;
  h.length = static_cast<std::uint32_t>(s.values.size());
  h.capacity = sample_capacity();
  h.flags = static_cast<std::int32_t>(s.flags);
  h.refcnt = 1;
  h.pool_off = static_cast<std::int64_t>(kPoolOffset) - static_cast<std::int64_t>(block);
  h.ts_origin = from_ns(s.ts_origin_ns);
  h.ts_received = from_ns(s.ts_received_ns);
  std::memcpy(base_ + block, &h, sizeof h);
  if (!s.values.empty()) std::memcpy(base_ + block + sizeof h, s.values.data(), s.values.size() * sizeof(SignalValue));

  // Published by vyukov_push's release store of the cell's sequence.
  if (vyukov_push(base_, kDataQueueOffset, geo_.data_cells, geo_.cells,
                  static_cast<std::int64_t>(block - kDataQueueOffset)) != 1) {
    // Full (or a peer keeps moving the tail): nothing was queued. The block goes back to our free
    // list; a list the peer filled or keeps moving loses it (a block fewer, logged once).
    if (!push_free_block(block))
      log_once(logged_free_push_, [&] {
        return "VILLAS region " + what_ + ": block at byte " + num(block) +
               " could not be put back on our free list (the peer filled it or keeps moving it); the pool has a "
               "block fewer (logged once)";
      });
    return Errc::would_block;
  }
  return Errc::ok;
}

bool OwnRegion::mutex_intact() noexcept {
  // SYNC POINT: relaxed: a plausibility check of a word only glibc and the peer write; nothing is published through it.
  const std::int32_t kind =
      field<std::int32_t>(base_, kMutexKindAt).load(std::memory_order_relaxed) & ~kMutexElisionBits;
  if (kind == mutex_kind_) return true;
  log_once(logged_mutex_, [&] {
    return "VILLAS region " + what_ + ": its mutex's kind word is " + snum(kind) + ", not the " + snum(mutex_kind_) +
           " we initialised (the peer wrote it); the mutex is no longer used and wake-ups are skipped, samples stay "
           "queued (logged once)";
  });
  return false;
}

bool OwnRegion::cond_intact() noexcept {
  // SYNC POINT: relaxed loads: plausibility checks of words glibc and the peer write; nothing is
  // published through them (the broadcast that follows synchronises through glibc itself).
  const std::uint32_t flags = field<std::uint32_t>(base_, kCondWrefsAt).load(std::memory_order_relaxed) & kCondFlagBits;
  bool locked = false;
  if (flags == cond_flags_) {
    // The internal lock is held for a few instructions by a legitimate user: look a few times.
    for (int i = 0; i < kCondLockChecks; ++i) {
      locked = (field<std::uint32_t>(base_, kCondOrigSizeAt).load(std::memory_order_relaxed) & kCondLockBits) != 0;
      if (!locked) return true;
      sched_yield();
    }
  }
  log_once(logged_cond_, [&] {
    return "VILLAS region " + what_ + ": its condition variable " +
           (locked ? std::string("stays internally locked (a peer died inside pthread_cond_wait, or wrote it)")
                   : "has flag bits " + num(flags) + ", not the " + num(cond_flags_) + " we initialised (the peer wrote it)") +
           "; wake-ups are skipped, samples stay queued (logged once)";
  });
  return false;
}

bool OwnRegion::lock(bool wait) noexcept {
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(base_ + kMutexAt);
  if (!mutex_intact()) return false;
  if (pthread_mutex_trylock(mutex) == 0) {
    lock_stuck_ = false;
    return true;
  }
  // A retry never waits; after a timeout nothing waits until a trylock succeeds.
  if (!wait || lock_stuck_) return false;
  // A trylock and short sleeps up to a CLOCK_MONOTONIC deadline (pthread_mutex_timedlock takes a CLOCK_REALTIME one;
  // this also works under ThreadSanitizer). Bounded by the deadline and by a count of tries. A live reader holds it
  // only while it pulls: the first tries only yield, later ones sleep.
  const std::int64_t deadline = monotonic_ns() + kLockTimeoutNs;
  for (std::int64_t i = 0; i <= kLockYields + kLockTimeoutNs / kLockRetryNs; ++i) {
    if (i < kLockYields) {
      sched_yield();
    } else {
      const timespec pause{0, kLockRetryNs};
      clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, nullptr);
    }
    if (!mutex_intact()) return false;
    if (pthread_mutex_trylock(mutex) == 0) return true;
    if (monotonic_ns() >= deadline) break;
  }
  lock_stuck_ = true;
  log_once(logged_lock_, [&] {
    return "VILLAS region " + what_ +
           ": its mutex stayed locked for 100 ms (a peer died holding it?); wake-ups are skipped, samples stay "
           "queued, and the mutex is only tried, never waited for, until it is free again; then the skipped "
           "wake-up is made (logged once)";
  });
  return false;
}

void OwnRegion::unlock() noexcept {
  // A kind changed since our lock would make glibc's unlock act on the peer's kind (a robust one
  // walks this thread's robust list): the mutex is left locked instead.
  if (mutex_intact()) pthread_mutex_unlock(reinterpret_cast<pthread_mutex_t*>(base_ + kMutexAt));
}

void OwnRegion::broadcast_and_unlock() noexcept {
  if (cond_intact()) {
    pthread_cond_broadcast(reinterpret_cast<pthread_cond_t*>(base_ + kCondAt));
    wake_pending_ = false;
  }
  unlock();
}

void OwnRegion::wake(bool wait) noexcept {
  if (!geo_.pthread_mode) return;
  wake_pending_ = true;  // until a broadcast is made
  if (lock(wait)) broadcast_and_unlock();
}

bool OwnRegion::retry_wake() noexcept {
  if (base_ == nullptr) return true;
  if (wake_pending_) wake(false);
  return !wake_pending_;
}

std::uint64_t OwnRegion::queued() const noexcept {
  if (base_ == nullptr) return 0;
  return clamped_distance({base_.get(), geo_.size}, kDataQueueOffset, geo_.cells);
}

void OwnRegion::stop() noexcept {
  if (stopped_ || base_ == nullptr) return;
  stopped_ = true;
  retry_wake();  // a reader owed a wake-up may still take samples before STOPPED (not guaranteed)
  const bool locked = geo_.pthread_mode && lock(true);
  if (geo_.pthread_mode) wake_pending_ = true;  // until the broadcast below is made
  auto state = field<std::int32_t>(base_, queue_state_at(kDataQueueOffset));
  std::int32_t expected = kStateInitialized;
  // SYNC POINT: seq_cst (a release) after every push; the reader's acquire load of STOPPED then
  // sees every cell published before it.
  if (!state.compare_exchange_strong(expected, kStateStopped, std::memory_order_seq_cst))
    state.store(kStateStopped, std::memory_order_seq_cst);  // our own region: a peer scribbled on it
  if (locked) broadcast_and_unlock();  // never a broadcast without the mutex
}

// ---- PeerRegion -----------------------------------------------------------------------------

PeerRegion PeerRegion::attach(std::span<std::byte> bytes, std::string_view what) {
  const std::string name(what);
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % kAlignment != 0)
    throw Error(Errc::invalid_argument, "attaching VILLAS region " + name + ": the mapping is not 64-byte aligned");
  std::string why;
  const auto g = check_region(std::span<const std::byte>(bytes.data(), bytes.size() < kSharedEnd ? bytes.size() : kSharedEnd),
                              bytes.size(), why);
  if (!g)
    throw Error(Errc::layout, "attaching VILLAS region " + name + ": " + why + " (" + std::string(kSupportedVersions) + ")");
  PeerRegion r;
  r.base_ = bytes.data();
  r.geo_ = *g;
  r.what_ = name;
  return r;
}

void PeerRegion::fail(std::string message) noexcept {
  try {
    error_ = "VILLAS region " + what_ + ": " + message;
  } catch (...) {
    error_.clear();
  }
}

void PeerRegion::release_block(std::uint64_t block) noexcept {
  // SYNC POINT: acq_rel, as villas-node's sample_decref: the holder that drops the last reference
  // sees the others' reads finished before it returns the block.
  const std::int32_t before =
      field<std::int32_t>(base_, block + offsetof(SampleHeader, refcnt)).fetch_sub(1, std::memory_order_acq_rel);
  if (before == 1) {
    if (vyukov_push(base_, kFreeQueueOffset, geo_.free_cells, geo_.free_count,
                    static_cast<std::int64_t>(block - kFreeQueueOffset)) != 1 &&
        !logged_free_full_) {
      logged_free_full_ = true;
      try {
        detail::log(LogLevel::warn, "VILLAS region " + what_ +
                                        ": its free list is full or keeps moving; a block was not returned (logged once)");
      } catch (...) {
      }
    }
  } else if (before < 1) {
    log_once(logged_refcnt_, [&] {
      return "VILLAS region " + what_ + ": a sample's reference count was " + snum(before) +
             " before our release; its block is not returned (logged once)";
    });
  } else {
    log_once(logged_shared_, [&] {
      return "VILLAS region " + what_ + ": a sample's reference count was " + snum(before) +
             " before our release; the block is kept for its other holders, not returned by us (logged once)";
    });
  }
}

Status PeerRegion::try_pull(Sample& out) noexcept {
  if (base_ == nullptr) return Errc::closed;
  if (refused_) return Errc::layout;  // a v0.11 region: error_ still says so
  const std::uint64_t block_cap = block_capacity(geo_.blocksz);
  try {
    out.values.reserve(block_cap);  // before taking anything: a sample is never lost to bad_alloc
  } catch (...) {
    return Errc::no_space;
  }
  // SYNC POINT: acquire pairs with the owner's CAS to STOPPED, made after its last push: shmlink's
  // stop() makes it seq_cst, so an empty queue seen after STOPPED really is drained. villas-node's
  // queue_close makes it relaxed, which the C++ model does not order after its pushes; on x86-64
  // it still is: the CAS is a locked instruction (a full barrier) in a later call than the pushes,
  // and TSO makes stores visible in program order. The order of our checks matters too: the state
  // is read BEFORE the cells, so every cell published before the STOPPED we saw is seen by the pop.
  const std::int32_t state = field<std::int32_t>(base_, queue_state_at(kDataQueueOffset)).load(std::memory_order_acquire);
  std::int64_t rel = 0;
  const int got = vyukov_pop(base_, kDataQueueOffset, geo_.data_cells, geo_.cells, rel);
  if (got == 0) return state == kStateStopped ? Errc::shut_down : Errc::would_block;
  if (got < 0) return Errc::would_block;
  const std::uint64_t block = kDataQueueOffset + static_cast<std::uint64_t>(rel);
  const std::uint64_t len = geo_.blocks * geo_.blocksz;
  if (block < geo_.pool_buffer || block - geo_.pool_buffer >= len) {
    fail("a queued sample's offset " + snum(rel) + " points outside the pool buffer (bytes " + num(geo_.pool_buffer) +
         " .. " + num(geo_.pool_buffer + len) + "); skipped");
    return Errc::layout;
  }
  if ((block - geo_.pool_buffer) % geo_.blocksz != 0) {
    fail("a queued sample at byte " + num(block) + " is not on a " + num(geo_.blocksz) + "-byte block boundary; skipped");
    return Errc::layout;
  }
  SampleHeader h{};
  std::memcpy(&h, base_ + block, sizeof h);
  if (block + static_cast<std::uint64_t>(h.pool_off) != kPoolOffset) {
    std::int64_t old = 0;
    std::memcpy(&old, base_ + block + kV011PoolOff, sizeof old);
    if (block + static_cast<std::uint64_t>(old) == kPoolOffset) {
      refused_ = true;  // every sample of such a peer is refused: say it once, take nothing more
      fail("the sample at byte " + num(block) +
           " keeps its pool offset at byte 40, as VILLASnode v0.11 and older do: the peer is VILLASnode v0.11 or "
           "older (" + std::string(kSupportedVersions) + "); the region is refused");
    } else {
      fail("the sample at byte " + num(block) + " has pool offset " + snum(h.pool_off) +
           ", which does not point back to the pool at byte 480; skipped");
    }
    return Errc::layout;  // not a v1 sample: its reference count is not where we would decrement it
  }
  if (h.length > h.capacity || h.capacity > block_cap) {
    fail("the sample at byte " + num(block) + " has length " + num(h.length) + " and capacity " + num(h.capacity) +
         " (a block holds " + num(block_cap) + " values); skipped");
    release_block(block);
    return Errc::layout;
  }
  out.values.resize(h.length);  // within the reserved capacity: no allocation
  if (h.length != 0) std::memcpy(out.values.data(), base_ + block + sizeof h, std::uint64_t{h.length} * sizeof(SignalValue));
  out.sequence = h.sequence;
  out.flags = static_cast<std::uint32_t>(h.flags);
  out.ts_origin_ns = to_ns(h.ts_origin);
  out.ts_received_ns = to_ns(h.ts_received);
  release_block(block);
  return Errc::ok;
}

RegionInfo PeerRegion::info() const noexcept {
  if (base_ == nullptr) return {};
  return summarize({base_.get(), geo_.size}, geo_, what_);
}

}  // namespace shmlink::villas
