// SPDX-License-Identifier: MIT
// VILLASnode v1.x shmem regions in one process (src/queue/villas_region.hpp,
// include/shmlink/villas.hpp): the exact offsets villas-node's allocator gives two reference
// sizes, OwnRegion -> PeerRegion round trips in both modes over memfd mappings, blocks coming back
// to the free list, full pool and full queue, stop-and-drain, and hostile regions: each check of
// attach and try_pull met by a good region with a few bytes changed. Offsets are written here from
// docs/reference/villas-shmem.md, independently of src/queue/villas_layout.hpp, so a drift of the
// layout fails these tests instead of moving with them.
#include "queue/villas_region.hpp"

#include <shmlink/villas.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;
using namespace shmlink::villas;

// ---- the layout, from the reference (bytes from the start of a region) ----------------------
namespace off {
constexpr std::uint64_t kPolling = 80;         // i32
constexpr std::uint64_t kDataQ = 88;           // CQueue of the data queue
constexpr std::uint64_t kMode = 88 + 296;      // i32
constexpr std::uint64_t kPool = 480;           // Pool
constexpr std::uint64_t kFreeQ = 480 + 40;     // CQueue of the free list
// within a CQueue
constexpr std::uint64_t kState = 0;            // i32
constexpr std::uint64_t kMask = 72;            // u64
constexpr std::uint64_t kBufferOff = 80;       // i64, relative to the CQueue
constexpr std::uint64_t kTail = 152;           // u64
constexpr std::uint64_t kHead = 224;           // u64
// within the Pool
constexpr std::uint64_t kPoolState = 0;
constexpr std::uint64_t kPoolBufferOff = 8;    // i64, relative to the Pool
constexpr std::uint64_t kPoolLen = 16;
constexpr std::uint64_t kPoolBlocksz = 24;
constexpr std::uint64_t kPoolAlignment = 32;
// within a sample
constexpr std::uint64_t kSeq = 0, kLength = 8, kCapacity = 12, kFlags = 16, kSignals = 24, kRefcnt = 40,
                        kPoolOff = 48, kTsOrigin = 56, kTsReceived = 72, kData = 88;
}  // namespace off

/// A region-sized shared mapping of a memfd (what a POSIX shm object gives, without a name).
class Mem {
 public:
  explicit Mem(std::uint64_t size) : size_(size) {
    fd_ = ::memfd_create("villas-test", MFD_CLOEXEC);
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0) std::abort();
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) std::abort();
    p_ = static_cast<std::byte*>(p);
  }
  ~Mem() {
    ::munmap(p_, size_);
    ::close(fd_);
  }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  std::span<std::byte> span() { return {p_, size_}; }
  std::byte* data() { return p_; }
  std::uint64_t size() const { return size_; }
  template <class T>
  T get(std::uint64_t at) const {
    T v{};
    std::memcpy(&v, p_ + at, sizeof v);
    return v;
  }
  template <class T>
  void set(std::uint64_t at, T v) {
    std::memcpy(p_ + at, &v, sizeof v);
  }

 private:
  int fd_ = -1;
  std::byte* p_ = nullptr;
  std::uint64_t size_ = 0;
};

Sample make_sample(std::uint64_t seq, std::size_t n) {
  Sample s;
  s.sequence = seq;
  s.flags = kSampleHasSequence | kSampleHasData | kSampleHasTsOrigin;
  s.ts_origin_ns = 1'765'000'000'123'456'789LL + static_cast<std::int64_t>(seq);
  s.ts_received_ns = -1'500'000'001LL;  // before the epoch: the timespec is normalised
  for (std::size_t i = 0; i < n; ++i) s.values.push_back(SignalValue::of(0.5 * static_cast<double>(i) + static_cast<double>(seq)));
  return s;
}

std::uint64_t data_cells(const Mem& m) { return off::kDataQ + static_cast<std::uint64_t>(m.get<std::int64_t>(off::kDataQ + off::kBufferOff)); }
/// Offset of the sample queued at position `pos` of the data queue.
std::uint64_t queued_block(const Mem& m, std::uint64_t pos) {
  const std::uint64_t mask = m.get<std::uint64_t>(off::kDataQ + off::kMask);
  return off::kDataQ + static_cast<std::uint64_t>(m.get<std::int64_t>(data_cells(m) + (pos & mask) * 16 + 8));
}

/// Expects attach() to refuse `m` with a layout error mentioning `needle` and the supported versions.
void expect_refused(Mem& m, std::span<std::byte> bytes, const std::string& needle) {
  try {
    (void)PeerRegion::attach(bytes, "/villas-hostile");
    ADD_FAILURE() << "attach accepted a region that should fail on: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout) << e.what();
    const std::string w = e.what();
    EXPECT_NE(w.find(needle), std::string::npos) << w;
    EXPECT_NE(w.find("/villas-hostile"), std::string::npos) << w;
    EXPECT_NE(w.find("VILLASnode v1.0 to v1.2 on x86_64 glibc"), std::string::npos) << w;
  }
  (void)m;
}

// ---- sizes and offsets --------------------------------------------------------------------------

TEST(VillasLayout, RegionSizesMatchTheReference) {
  EXPECT_EQ(region_size(64, 4), 12176U);
  EXPECT_EQ(region_size(512, 64), 346000U);
  EXPECT_EQ(block_size(4), 128U);
  EXPECT_EQ(block_size(64), 640U);
}

struct Expected {
  std::uint32_t q, l;
  std::int64_t data_off, pool_off, free_off;  // buffer_off of data queue, pool, free list
  std::uint64_t blocksz;
  // the allocator's Block descriptors: offset, length, used
  std::vector<std::array<std::uint64_t, 3>> blocks;
};

void expect_villas_offsets(const Expected& e) {
  Mem m(region_size(e.q, e.l));
  (void)OwnRegion::init(m.span(), e.q, e.l, true, "/own");
  EXPECT_EQ(m.get<std::int32_t>(off::kPolling), 0);
  EXPECT_EQ(m.get<std::int32_t>(off::kMode), 1);
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 1);
  EXPECT_EQ(m.get<std::uint64_t>(off::kDataQ + off::kMask), e.q - 1U);
  EXPECT_EQ(m.get<std::int64_t>(off::kDataQ + off::kBufferOff), e.data_off);
  EXPECT_EQ(m.get<std::int32_t>(off::kPool + off::kPoolState), 1);
  EXPECT_EQ(m.get<std::int64_t>(off::kPool + off::kPoolBufferOff), e.pool_off);
  EXPECT_EQ(m.get<std::uint64_t>(off::kPool + off::kPoolLen), e.q * e.blocksz);
  EXPECT_EQ(m.get<std::uint64_t>(off::kPool + off::kPoolBlocksz), e.blocksz);
  EXPECT_EQ(m.get<std::uint64_t>(off::kPool + off::kPoolAlignment), 64U);
  EXPECT_EQ(m.get<std::int32_t>(off::kFreeQ + off::kState), 1);
  EXPECT_EQ(m.get<std::uint64_t>(off::kFreeQ + off::kMask), e.q - 1U);
  EXPECT_EQ(m.get<std::int64_t>(off::kFreeQ + off::kBufferOff), e.free_off);
  EXPECT_EQ(m.get<std::uint64_t>(off::kFreeQ + off::kTail), e.q);  // every block in the free list
  EXPECT_EQ(m.get<std::uint64_t>(off::kFreeQ + off::kHead), 0U);
  for (const auto& b : e.blocks) {
    EXPECT_EQ(m.get<std::uint64_t>(b[0] + 16), b[1]) << "Block at " << b[0];
    EXPECT_EQ(m.get<std::uint8_t>(b[0] + 24), b[2]) << "Block at " << b[0];
  }
  // free-list cell i holds block i; data cell i has sequence i
  const std::uint64_t free_cells = off::kFreeQ + static_cast<std::uint64_t>(e.free_off);
  for (std::uint64_t i = 0; i < e.q; ++i) {
    EXPECT_EQ(m.get<std::uint64_t>(free_cells + i * 16), i + 1);
    EXPECT_EQ(m.get<std::int64_t>(free_cells + i * 16 + 8),
              static_cast<std::int64_t>(off::kPool) + e.pool_off + static_cast<std::int64_t>(i * e.blocksz) -
                  static_cast<std::int64_t>(off::kFreeQ));
    EXPECT_EQ(m.get<std::uint64_t>(data_cells(m) + i * 16), i);
  }
}

// Worked by hand from villas-node's first-fit allocator over a page-aligned mapping: ShmemShared
// at 80 (Block at 48), data cells at 848 (Block at 816), the pool buffer after the next Block
// rounded up to 64 (the 16-byte gap is counted in its Block), the free-list cells, the rest.
TEST(VillasLayout, OwnRegionHasVillasNodeOffsetsFor64x4) {
  expect_villas_offsets({64, 4, 760, 1440, 9624, 128,
                         {{48, 736, 1}, {816, 1024, 1}, {1872, 8192 + 16, 1}, {10112, 1024, 1}, {11168, 976, 0}}});
}

TEST(VillasLayout, OwnRegionHasVillasNodeOffsetsFor512x64) {
  expect_villas_offsets({512, 64, 760, 8608, 336280, 640,
                         {{48, 736, 1}, {816, 8192, 1}, {9040, 327680 + 16, 1}, {336768, 8192, 1}, {344992, 976, 0}}});
}

TEST(VillasLayout, PollingModeRegionSaysSo) {
  Mem m(region_size(8, 2));
  auto own = OwnRegion::init(m.span(), 8, 2, false, "/own");
  EXPECT_FALSE(own.pthread_mode());
  EXPECT_EQ(m.get<std::int32_t>(off::kPolling), 1);
  EXPECT_EQ(m.get<std::int32_t>(off::kMode), 2);
  EXPECT_EQ(own.sample_capacity(), 5U);  // (128 - 88) / 8
}

TEST(VillasLayout, InitRefusesWrongSizes) {
  Mem m(region_size(8, 2) + 64);
  EXPECT_THROW((void)OwnRegion::init(m.span(), 8, 2, true, "/own"), Error);
  EXPECT_THROW((void)OwnRegion::init(m.span().first(region_size(8, 2)), 0, 2, true, "/own"), Error);
  EXPECT_THROW((void)OwnRegion::init(m.span().first(region_size(8, 2)), 8, 0, true, "/own"), Error);
}

// ---- round trips --------------------------------------------------------------------------------

void round_trip(bool pthread_mode) {
  Mem m(region_size(64, 4));
  auto own = OwnRegion::init(m.span(), 64, 4, pthread_mode, "/own");
  auto peer = PeerRegion::attach(m.span(), "/own");
  EXPECT_EQ(peer.pthread_mode(), pthread_mode);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) ASSERT_EQ(own.try_push(make_sample(seq, seq + 1)), Errc::ok);
  EXPECT_EQ(own.queued(), 3U);
  EXPECT_EQ(peer.info().free_blocks, 61U);
  // what a villas-node reader finds in the first block
  const std::uint64_t b = queued_block(m, 0);
  EXPECT_EQ(m.get<std::uint64_t>(b + off::kSeq), 1U);
  EXPECT_EQ(m.get<std::uint32_t>(b + off::kLength), 2U);
  EXPECT_EQ(m.get<std::uint32_t>(b + off::kCapacity), 5U);
  EXPECT_EQ(m.get<std::int32_t>(b + off::kFlags), 1 | 8 | 16);
  EXPECT_EQ(m.get<std::int32_t>(b + off::kRefcnt), 1);
  EXPECT_EQ(m.get<std::uint64_t>(b + off::kSignals), 0U);
  EXPECT_EQ(m.get<std::uint64_t>(b + off::kSignals + 8), 0U);
  EXPECT_EQ(b + static_cast<std::uint64_t>(m.get<std::int64_t>(b + off::kPoolOff)), off::kPool);
  EXPECT_EQ(m.get<std::int64_t>(b + off::kTsOrigin), 1'765'000'000);
  EXPECT_EQ(m.get<std::int64_t>(b + off::kTsOrigin + 8), 123'456'790);
  EXPECT_EQ(m.get<std::int64_t>(b + off::kTsReceived), -2);
  EXPECT_EQ(m.get<std::int64_t>(b + off::kTsReceived + 8), 499'999'999);
  EXPECT_EQ(m.get<double>(b + off::kData + 8), 1.5);

  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    Sample s;
    ASSERT_EQ(peer.try_pull(s), Errc::ok) << peer.error();
    const Sample want = make_sample(seq, seq + 1);
    EXPECT_EQ(s.sequence, seq);
    EXPECT_EQ(s.flags, want.flags);
    EXPECT_EQ(s.ts_origin_ns, want.ts_origin_ns);
    EXPECT_EQ(s.ts_received_ns, want.ts_received_ns);
    ASSERT_EQ(s.values.size(), want.values.size());
    for (std::size_t i = 0; i < s.values.size(); ++i) EXPECT_EQ(s.values[i].f, want.values[i].f);
  }
  Sample s;
  EXPECT_EQ(peer.try_pull(s), Errc::would_block);
  // every block is back in the free list, and the queue is empty
  const RegionInfo info = peer.info();
  EXPECT_EQ(info.free_blocks, 64U);
  EXPECT_EQ(info.queued, 0U);
  EXPECT_EQ(own.queued(), 0U);
  EXPECT_EQ(m.get<std::int32_t>(b + off::kRefcnt), 0);
}

TEST(VillasRegion, RoundTripPthreadMode) { round_trip(true); }
TEST(VillasRegion, RoundTripPollingMode) { round_trip(false); }

TEST(VillasRegion, BlocksAreReusedAroundTheRing) {
  Mem m(region_size(4, 2));
  auto own = OwnRegion::init(m.span(), 4, 2, false, "/own");
  auto peer = PeerRegion::attach(m.span(), "/own");
  for (std::uint64_t seq = 0; seq < 50; ++seq) {
    ASSERT_EQ(own.try_push(make_sample(seq, 2)), Errc::ok) << seq;
    Sample s;
    ASSERT_EQ(peer.try_pull(s), Errc::ok) << peer.error();
    EXPECT_EQ(s.sequence, seq);
  }
  EXPECT_EQ(peer.info().free_blocks, 4U);
}

TEST(VillasRegion, FullPoolWouldBlockUntilTheReaderReturnsABlock) {
  Mem m(region_size(4, 2));
  auto own = OwnRegion::init(m.span(), 4, 2, true, "/own");
  auto peer = PeerRegion::attach(m.span(), "/own");
  for (std::uint64_t seq = 0; seq < 4; ++seq) ASSERT_EQ(own.try_push(make_sample(seq, 1)), Errc::ok);
  EXPECT_EQ(own.try_push(make_sample(4, 1)), Errc::would_block);
  Sample s;
  ASSERT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(own.try_push(make_sample(4, 1)), Errc::ok);
  EXPECT_EQ(own.queued(), 4U);
}

TEST(VillasRegion, FullQueueWouldBlockAndKeepsTheBlock) {
  Mem m(region_size(4, 2));
  auto own = OwnRegion::init(m.span(), 4, 2, false, "/own");
  // Every cell looks taken: the tail is a whole lap ahead of the cells' sequences.
  m.set<std::uint64_t>(off::kDataQ + off::kTail, 4);
  EXPECT_EQ(own.try_push(make_sample(0, 1)), Errc::would_block);
  // the block taken for it went back: the free list still holds 4
  EXPECT_EQ(m.get<std::uint64_t>(off::kFreeQ + off::kTail) - m.get<std::uint64_t>(off::kFreeQ + off::kHead), 4U);
}

TEST(VillasRegion, TooManyValuesIsSizeMismatch) {
  Mem m(region_size(4, 2));
  auto own = OwnRegion::init(m.span(), 4, 2, false, "/own");
  EXPECT_EQ(own.try_push(make_sample(0, 6)), Errc::size_mismatch);
  EXPECT_EQ(own.try_push(make_sample(0, 5)), Errc::ok);  // capacity (128 - 88) / 8
}

TEST(VillasRegion, StoppedQueueIsDrainedBeforeClosed) {
  Mem m(region_size(8, 2));
  auto own = OwnRegion::init(m.span(), 8, 2, true, "/own");
  auto peer = PeerRegion::attach(m.span(), "/own");
  ASSERT_EQ(own.try_push(make_sample(1, 1)), Errc::ok);
  ASSERT_EQ(own.try_push(make_sample(2, 1)), Errc::ok);
  own.stop();
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 5);
  EXPECT_EQ(own.try_push(make_sample(3, 1)), Errc::closed);
  EXPECT_TRUE(peer.info().stopped);
  Sample s;
  ASSERT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(s.sequence, 1U);
  ASSERT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(s.sequence, 2U);
  EXPECT_EQ(peer.try_pull(s), Errc::closed);
  // a region stopped before attach is still accepted (the owner closed; its samples remain)
  EXPECT_NO_THROW((void)PeerRegion::attach(m.span(), "/own"));
}

// ---- hostile regions: attach ----------------------------------------------------------------------

struct Good {
  Mem m{region_size(8, 2)};
  Good() { (void)OwnRegion::init(m.span(), 8, 2, true, "/villas-hostile"); }
};

TEST(VillasHostile, GoodRegionIsAccepted) {
  Good g;
  EXPECT_NO_THROW((void)PeerRegion::attach(g.m.span(), "/villas-hostile"));
}

TEST(VillasHostile, MaskNotAPowerOfTwoMinusOne) {
  Good g;
  g.m.set<std::uint64_t>(off::kDataQ + off::kMask, 6);
  expect_refused(g.m, g.m.span(), "mask 6 is not a power of two");
}

TEST(VillasHostile, MaskTooLargeForThePool) {
  Good g;
  g.m.set<std::uint64_t>(off::kFreeQ + off::kMask, (1U << 20) - 1);
  expect_refused(g.m, g.m.span(), "cells for 8 pool blocks");
}

TEST(VillasHostile, CellsOutsideTheRegion) {
  Good g;
  g.m.set<std::int64_t>(off::kDataQ + off::kBufferOff, std::int64_t{1} << 40);
  expect_refused(g.m, g.m.span(), "lies outside");
  g.m.set<std::int64_t>(off::kDataQ + off::kBufferOff, -88);  // the cells over the header
  expect_refused(g.m, g.m.span(), "lies outside");
}

TEST(VillasHostile, CellsMisaligned) {
  Good g;
  g.m.set<std::int64_t>(off::kFreeQ + off::kBufferOff, g.m.get<std::int64_t>(off::kFreeQ + off::kBufferOff) + 4);
  expect_refused(g.m, g.m.span(), "is not 8-byte aligned");
}

TEST(VillasHostile, PoolBufferMisalignedOrOutside) {
  Good g;
  const auto good = g.m.get<std::int64_t>(off::kPool + off::kPoolBufferOff);
  g.m.set<std::int64_t>(off::kPool + off::kPoolBufferOff, good + 8);
  expect_refused(g.m, g.m.span(), "is not 64-byte aligned");
  g.m.set<std::int64_t>(off::kPool + off::kPoolBufferOff, good + 4096);
  expect_refused(g.m, g.m.span(), "lies outside");
}

TEST(VillasHostile, PoolLengthNotWholeBlocks) {
  Good g;
  g.m.set<std::uint64_t>(off::kPool + off::kPoolLen, g.m.get<std::uint64_t>(off::kPool + off::kPoolLen) - 1);
  expect_refused(g.m, g.m.span(), "pool length");
}

TEST(VillasHostile, BlockSizeNotAMultipleOf64) {
  Good g;
  g.m.set<std::uint64_t>(off::kPool + off::kPoolBlocksz, 120);
  expect_refused(g.m, g.m.span(), "block size 120");
}

TEST(VillasHostile, PoolAlignmentNot64) {
  Good g;
  g.m.set<std::uint64_t>(off::kPool + off::kPoolAlignment, 32);
  expect_refused(g.m, g.m.span(), "pool alignment is 32");
}

TEST(VillasHostile, ModeAndPollingDisagree) {
  Good g;
  g.m.set<std::int32_t>(off::kPolling, 1);  // a pthread-mode queue
  expect_refused(g.m, g.m.span(), "polling flag 1 disagrees");
  g.m.set<std::int32_t>(off::kMode, 3);  // eventfd: process-local, never in a shared region
  expect_refused(g.m, g.m.span(), "queue mode is 3");
}

TEST(VillasHostile, QueueStateNeitherInitializedNorStopped) {
  Good g;
  g.m.set<std::int32_t>(off::kDataQ + off::kState, 0);
  expect_refused(g.m, g.m.span(), "data queue state is 0");
}

TEST(VillasHostile, TruncatedFile) {
  Good g;
  expect_refused(g.m, g.m.span().first(g.m.size() - 64), "not the " + std::to_string(g.m.size()) + " bytes");
  expect_refused(g.m, g.m.span().first(100), "shorter than a region's 816-byte header");
}

TEST(VillasHostile, Aarch64LayoutIsRefusedAsSuch) {
  // aarch64 glibc's mutex is 48 bytes: the Pool and everything after it sit 8 bytes further on.
  Mem m(region_size(8, 2) + 8);
  (void)OwnRegion::init(m.span().first(region_size(8, 2)), 8, 2, true, "/own");
  std::memmove(m.data() + off::kPool + 8, m.data() + off::kPool, m.size() - off::kPool - 8);
  std::memset(m.data() + off::kPool, 0, 8);  // the mutex's last 8 bytes
  m.set<std::int64_t>(off::kDataQ + off::kBufferOff, m.get<std::int64_t>(off::kDataQ + off::kBufferOff) + 8);
  expect_refused(m, m.span(), "as on aarch64");
}

// ---- hostile samples: try_pull --------------------------------------------------------------------

struct Queued {
  Mem m{region_size(8, 2)};
  OwnRegion own = OwnRegion::init(m.span(), 8, 2, false, "/villas-hostile");
  PeerRegion peer = PeerRegion::attach(m.span(), "/villas-hostile");
  std::uint64_t block = 0;
  Queued() {
    if (own.try_push(make_sample(7, 2)) != Errc::ok || own.try_push(make_sample(8, 2)) != Errc::ok) std::abort();
    block = queued_block(m, 0);
  }
  /// The bad sample is skipped with `needle` in error(); the next one still arrives.
  void expect_skipped(const std::string& needle) {
    Sample s;
    EXPECT_EQ(peer.try_pull(s), Errc::layout);
    EXPECT_NE(peer.error().find(needle), std::string::npos) << peer.error();
    EXPECT_NE(peer.error().find("/villas-hostile"), std::string::npos) << peer.error();
    ASSERT_EQ(peer.try_pull(s), Errc::ok) << peer.error();
    EXPECT_EQ(s.sequence, 8U);
    EXPECT_EQ(peer.try_pull(s), Errc::would_block);
  }
};

TEST(VillasHostile, HugeSampleLength) {
  Queued q;
  q.m.set<std::uint32_t>(q.block + off::kLength, 1'000'000'000);
  q.expect_skipped("length 1000000000");
  // the length check still returns the block: the pool is whole again
  EXPECT_EQ(q.peer.info().free_blocks, 8U);
}

TEST(VillasHostile, CapacityLargerThanTheBlock) {
  Queued q;
  q.m.set<std::uint32_t>(q.block + off::kCapacity, 6);
  q.m.set<std::uint32_t>(q.block + off::kLength, 6);
  q.expect_skipped("a block holds 5 values");
}

TEST(VillasHostile, SampleOffABlockBoundary) {
  Queued q;
  const std::uint64_t cell = data_cells(q.m);  // position 0
  q.m.set<std::int64_t>(cell + 8, q.m.get<std::int64_t>(cell + 8) + 8);
  q.expect_skipped("block boundary");
}

TEST(VillasHostile, SampleOutsideThePool) {
  Queued q;
  q.m.set<std::int64_t>(data_cells(q.m) + 8, -88);  // the region's first byte
  q.expect_skipped("outside the pool buffer");
}

TEST(VillasHostile, PoolOffNotBackToThePool) {
  Queued q;
  q.m.set<std::int64_t>(q.block + off::kPoolOff, q.m.get<std::int64_t>(q.block + off::kPoolOff) + 64);
  q.expect_skipped("does not point back to the pool");
}

TEST(VillasHostile, V011SampleLayoutIsNamed) {
  Queued q;
  // v0.11: an 8-byte signals pointer, so refcnt @32 and pool_off @40
  q.m.set<std::int64_t>(q.block + 40, static_cast<std::int64_t>(off::kPool) - static_cast<std::int64_t>(q.block));
  q.m.set<std::int64_t>(q.block + 48, 0);
  q.expect_skipped("VILLASnode v0.11 or older");
  EXPECT_NE(q.peer.error().find("v1.0 to v1.2"), std::string::npos) << q.peer.error();
}

/// Runs `f` with a bound: a call that does not return within 10 s fails the test (and ends the
/// process, since the stuck thread cannot be joined).
template <class F>
void bounded(F f) {
  auto fut = std::async(std::launch::async, f);
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "a try_* call did not return";
    std::_Exit(1);
  }
  fut.get();
}

TEST(VillasHostile, SequencesAheadOfTheIndicesCostBoundedWork) {
  Queued q;
  // Every data cell's sequence a lap ahead of head: villas-node would reload head and retry for ever.
  for (std::uint64_t i = 0; i < 8; ++i) q.m.set<std::uint64_t>(data_cells(q.m) + i * 16, 1000 + i);
  // and the same in the free list, which try_push pops
  const std::uint64_t free_cells =
      off::kFreeQ + static_cast<std::uint64_t>(q.m.get<std::int64_t>(off::kFreeQ + off::kBufferOff));
  for (std::uint64_t i = 0; i < 8; ++i) q.m.set<std::uint64_t>(free_cells + i * 16, 1000 + i);
  bounded([&] {
    Sample s;
    EXPECT_EQ(q.peer.try_pull(s), Errc::would_block);
    EXPECT_EQ(q.own.try_push(make_sample(1, 1)), Errc::would_block);
  });
}

TEST(VillasHostile, HeldMutexCostsAWakeUpNeverAHang) {
  // A peer that died holding our region's mutex (it is not robust): pushes and stop still return,
  // the sample stays queued for a reader that polls.
  Mem m(region_size(4, 1));
  auto own = OwnRegion::init(m.span(), 4, 1, true, "/own");
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(m.data() + 88 + 352);
  std::promise<void> locked, release;
  std::thread holder([&] {
    pthread_mutex_lock(mutex);
    locked.set_value();
    release.get_future().wait();
    pthread_mutex_unlock(mutex);
  });
  locked.get_future().wait();
  bounded([&] {
    EXPECT_EQ(own.try_push(make_sample(1, 1)), Errc::ok);
    own.stop();
  });
  release.set_value();
  holder.join();
  EXPECT_EQ(own.queued(), 1U);
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 5);
  auto peer = PeerRegion::attach(m.span(), "/own");
  Sample s;
  EXPECT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(peer.try_pull(s), Errc::closed);
}

TEST(VillasHostile, ForeignBlockInOurFreeListIsNeverUsed) {
  Mem m(region_size(2, 2));
  auto own = OwnRegion::init(m.span(), 2, 2, false, "/own");
  ASSERT_EQ(own.try_push(make_sample(1, 1)), Errc::ok);
  ASSERT_EQ(own.try_push(make_sample(2, 1)), Errc::ok);
  // The peer "returns" an offset that is no block of the pool (the header at byte 0).
  const std::uint64_t free_cells =
      off::kFreeQ + static_cast<std::uint64_t>(m.get<std::int64_t>(off::kFreeQ + off::kBufferOff));
  const std::uint64_t tail = m.get<std::uint64_t>(off::kFreeQ + off::kTail);  // 2
  m.set<std::int64_t>(free_cells + (tail & 1) * 16 + 8, -static_cast<std::int64_t>(off::kFreeQ));
  m.set<std::uint64_t>(free_cells + (tail & 1) * 16, tail + 1);
  m.set<std::uint64_t>(off::kFreeQ + off::kTail, tail + 1);
  const std::vector<std::byte> header(m.data(), m.data() + 816);
  EXPECT_EQ(own.try_push(make_sample(3, 1)), Errc::would_block);
  EXPECT_EQ(own.queued(), 2U);
  // nothing was written at the bogus offset (the region's start and shared header)
  EXPECT_EQ(std::memcmp(header.data(), m.data(), 480), 0);
}

// ---- inspection -----------------------------------------------------------------------------------

TEST(VillasInspect, SummarisesALiveRegion) {
  Mem m(region_size(64, 4));
  auto own = OwnRegion::init(m.span(), 64, 4, false, "/own");
  for (std::uint64_t seq = 0; seq < 3; ++seq) ASSERT_EQ(own.try_push(make_sample(seq, 1)), Errc::ok);
  const RegionInfo r = inspect(m.span(), "/own");
  EXPECT_EQ(r.path, "/own");
  EXPECT_EQ(r.size, 12176U);
  EXPECT_FALSE(r.pthread_mode);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.queue_cells, 64U);
  EXPECT_EQ(r.pool_blocks, 64U);
  EXPECT_EQ(r.block_size, 128U);
  EXPECT_EQ(r.sample_capacity, 5U);
  EXPECT_EQ(r.queued, 3U);
  EXPECT_EQ(r.free_blocks, 61U);
  EXPECT_TRUE(looks_like_region(m.span().first(1024), m.size()));
  EXPECT_FALSE(looks_like_region(m.span().first(1024), m.size() + 1));
  EXPECT_FALSE(looks_like_region(m.span().first(100), 100));
  const std::vector<std::byte> zeros(4096);
  EXPECT_FALSE(looks_like_region(zeros, zeros.size()));
}

TEST(VillasInspect, FileIsReadWithoutWriting) {
  const std::string name = "/shmlink-villas-test-" + std::to_string(::getpid());
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  const std::uint64_t size = region_size(8, 2);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::span<std::byte> bytes(static_cast<std::byte*>(p), size);
  auto own = OwnRegion::init(bytes, 8, 2, true, name);
  ASSERT_EQ(own.try_push(make_sample(1, 2)), Errc::ok);
  own.stop();
  const std::vector<std::byte> before(bytes.begin(), bytes.end());
  ::fchmod(fd, 0400);  // a writer would be refused; inspect_file only reads
  RegionInfo r;
  ASSERT_NO_THROW(r = inspect_file(name.substr(1)));
  EXPECT_EQ(r.path, "/dev/shm" + name);
  EXPECT_TRUE(r.pthread_mode);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.queued, 1U);
  EXPECT_EQ(std::memcmp(before.data(), bytes.data(), size), 0);
  // a truncated file is a layout error, never a crash
  ASSERT_EQ(::ftruncate(fd, 100), 0);
  try {
    (void)inspect_file(name);
    ADD_FAILURE() << "a 100-byte file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find("100 bytes"), std::string::npos) << e.what();
  }
  ::munmap(p, size);
  ::close(fd);
  ::shm_unlink(name.c_str());
  try {
    (void)inspect_file(name);
    ADD_FAILURE() << "a removed file was inspected";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

}  // namespace
