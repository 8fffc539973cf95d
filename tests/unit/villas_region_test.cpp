// SPDX-License-Identifier: MIT
// VILLASnode v1.x shmem regions in one process (src/queue/villas_region.hpp,
// include/shmlink/villas.hpp): the exact offsets villas-node's allocator gives two reference
// sizes, OwnRegion -> PeerRegion round trips in both modes over memfd mappings, blocks coming back
// to the free list, full pool and full queue, stop-and-drain, and hostile regions: each check of
// attach and try_pull met by a good region with a few bytes changed. Offsets are written here from
// docs/reference/villas-shmem.md, independently of src/queue/villas_layout.hpp, so a drift of the
// layout fails these tests instead of moving with them.
#include "queue/villas_region.hpp"

#include <shmlink/log.hpp>
#include <shmlink/villas.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
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

/// Collects the library's log messages while alive (then restores the default handler).
class LogCapture {
 public:
  LogCapture() {
    set_log_handler([this](LogLevel, std::string_view m) {
      const std::lock_guard<std::mutex> g(mu_);
      lines_.emplace_back(m);
    });
  }
  ~LogCapture() { set_log_handler({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  /// Messages containing every one of `needles`.
  std::size_t count(std::initializer_list<std::string_view> needles) {
    const std::lock_guard<std::mutex> g(mu_);
    std::size_t n = 0;
    for (const auto& l : lines_) {
      bool all = true;
      for (auto nd : needles) all = all && l.find(nd) != std::string::npos;
      n += all ? 1 : 0;
    }
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// glibc 2.36 x86_64 words of our region's pthread objects (bytes from the region's start).
constexpr std::uint64_t kCondAt = 88 + 304, kMutexAt = 88 + 352;
constexpr std::uint64_t kCondOrigSize = kCondAt + 32, kCondWrefs = kCondAt + 36, kMutexKind = kMutexAt + 16;

/// Holds the process-shared mutex at `at` from another thread while alive (a peer holding it).
class MutexHolder {
 public:
  explicit MutexHolder(std::byte* at) : mutex_(reinterpret_cast<pthread_mutex_t*>(at)) {
    thread_ = std::thread([this] {
      pthread_mutex_lock(mutex_);
      locked_.set_value();
      release_.get_future().wait();
      pthread_mutex_unlock(mutex_);
    });
    locked_.get_future().wait();
  }
  ~MutexHolder() {
    release_.set_value();
    thread_.join();
  }
  MutexHolder(const MutexHolder&) = delete;
  MutexHolder& operator=(const MutexHolder&) = delete;

 private:
  pthread_mutex_t* mutex_;
  std::promise<void> locked_, release_;
  std::thread thread_;
};

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

/// Runs `f` on another thread and waits for it at most 10 s (a stuck call fails the test and
/// ends the process, since the thread cannot be joined).
template <class F>
auto bounded(F f) {
  auto fut = std::async(std::launch::async, f);
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "a call did not return within 10 s";
    std::_Exit(1);
  }
  return fut.get();
}

/// A reader that does what villas-node's queue_signalled_pull does on our region `m`: lock the
/// region's mutex; loop { STOPPED -> -1; pull -> 1; wait on the condition variable }. Its wait
/// is timed (5 s) so a missing wake-up fails the test (-2) instead of hanging it.
class VillasStyleReader {
 public:
  explicit VillasStyleReader(Mem& m)
      : m_(m),
        peer_(PeerRegion::attach(m.span(), "/own")),
        mutex_(reinterpret_cast<pthread_mutex_t*>(m.data() + kMutexAt)),
        cond_(reinterpret_cast<pthread_cond_t*>(m.data() + kCondAt)) {}
  /// Starts one pull on another thread into `out`; its result comes from the future.
  std::future<int> start(Sample& out) {
    return std::async(std::launch::async, [this, &out] { return pull(out); });
  }
  /// Waits (at most 5 s) until the reader went to sleep in its `n`th wait (counted from 1).
  void wait_for_waits(int n) {
    for (int i = 0; i < 10'000 && waits_.load(std::memory_order_acquire) < n; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    ASSERT_GE(waits_.load(std::memory_order_acquire), n) << "the reader never waited";
  }
  int waits() const { return waits_.load(std::memory_order_acquire); }

 private:
  int pull(Sample& out) {
    int result = 0;
    pthread_mutex_lock(mutex_);
    for (;;) {
      if (std::atomic_ref<std::int32_t>(*reinterpret_cast<std::int32_t*>(m_.data() + off::kDataQ + off::kState))
              .load(std::memory_order_acquire) == 5) {
        result = -1;
        break;
      }
      if (peer_.try_pull(out) == Errc::ok) {
        result = 1;
        break;
      }
      waits_.fetch_add(1, std::memory_order_release);  // under the mutex, right before the wait
      timespec until{};
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 5;
      if (pthread_cond_timedwait(cond_, mutex_, &until) == ETIMEDOUT) {
        result = -2;
        break;
      }
    }
    pthread_mutex_unlock(mutex_);
    return result;
  }

  Mem& m_;
  PeerRegion peer_;
  pthread_mutex_t* mutex_;
  pthread_cond_t* cond_;
  std::atomic<int> waits_{0};
};

TEST(VillasRegion, PthreadReaderIsWokenByPushAndStop) {
  Mem m(region_size(8, 2));
  auto own = OwnRegion::init(m.span(), 8, 2, true, "/own");
  VillasStyleReader reader(m);
  Sample got;
  auto first = reader.start(got);
  reader.wait_for_waits(1);
  // The push's broadcast needs the mutex, which the reader gives up only inside its wait.
  ASSERT_EQ(own.try_push(make_sample(5, 2)), Errc::ok);
  EXPECT_EQ(bounded([&] { return first.get(); }), 1) << "try_push did not wake the reader (-2)";
  EXPECT_EQ(got.sequence, 5U);
  const int waited = reader.waits();
  auto second = reader.start(got);
  reader.wait_for_waits(waited + 1);
  own.stop();
  EXPECT_EQ(bounded([&] { return second.get(); }), -1) << "stop() did not wake the reader (-2)";
}

TEST(VillasRegion, MovedFromHandlesAreUnusable) {
  Mem m(region_size(4, 1));
  auto own = OwnRegion::init(m.span(), 4, 1, false, "/own");
  OwnRegion own2 = std::move(own);
  EXPECT_EQ(own.try_push(make_sample(1, 1)), Errc::closed);  // NOLINT(bugprone-use-after-move): the point
  EXPECT_EQ(own.queued(), 0U);                                // NOLINT(bugprone-use-after-move)
  own.stop();                                                 // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 1);
  ASSERT_EQ(own2.try_push(make_sample(2, 1)), Errc::ok);
  auto peer = PeerRegion::attach(m.span(), "/own");
  PeerRegion peer2 = std::move(peer);
  Sample s;
  EXPECT_EQ(peer.try_pull(s), Errc::closed);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(peer.info().size, 0U);            // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(own2.queued(), 1U);
  ASSERT_EQ(peer2.try_pull(s), Errc::ok);
  EXPECT_EQ(s.sequence, 2U);
}

TEST(VillasRegion, StoppedQueueIsDrainedBeforeClosed) {
  Mem m(region_size(8, 2));
  auto own = OwnRegion::init(m.span(), 8, 2, true, "/own");
  auto peer = PeerRegion::attach(m.span(), "/own");
  ASSERT_EQ(own.try_push(make_sample(1, 1)), Errc::ok);
  ASSERT_EQ(own.try_push(make_sample(2, 1)), Errc::ok);
  own.stop();
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 5);
  EXPECT_EQ(own.try_push(make_sample(3, 1)), Errc::shut_down);
  EXPECT_TRUE(peer.info().stopped);
  Sample s;
  ASSERT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(s.sequence, 1U);
  ASSERT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(s.sequence, 2U);
  EXPECT_EQ(peer.try_pull(s), Errc::shut_down);
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

TEST(VillasHostile, V011SampleLayoutIsNamedAndRefusesTheRegion) {
  Queued q;
  // v0.11: an 8-byte signals pointer, so refcnt @32 and pool_off @40
  q.m.set<std::int64_t>(q.block + 40, static_cast<std::int64_t>(off::kPool) - static_cast<std::int64_t>(q.block));
  q.m.set<std::int64_t>(q.block + 48, 0);
  Sample s;
  EXPECT_EQ(q.peer.try_pull(s), Errc::layout);
  const std::string first = q.peer.error();
  EXPECT_NE(first.find("VILLASnode v0.11 or older"), std::string::npos) << first;
  EXPECT_NE(first.find("v1.0 to v1.2"), std::string::npos) << first;
  EXPECT_NE(first.find("/villas-hostile"), std::string::npos) << first;
  // Sticky: the next (good) sample is not taken, the same error is returned again.
  EXPECT_EQ(q.peer.try_pull(s), Errc::layout);
  EXPECT_EQ(q.peer.error(), first);
  EXPECT_EQ(q.own.queued(), 1U);
}

TEST(VillasHostile, SharedSampleIsKeptAndLoggedOnce) {
  LogCapture log;
  Queued q;
  q.m.set<std::int32_t>(q.block + off::kRefcnt, 2);  // another holder in the peer
  Sample s;
  ASSERT_EQ(q.peer.try_pull(s), Errc::ok) << q.peer.error();
  EXPECT_EQ(s.sequence, 7U);
  EXPECT_EQ(q.m.get<std::int32_t>(q.block + off::kRefcnt), 1);
  EXPECT_EQ(q.peer.info().free_blocks, 6U);  // not returned by us
  EXPECT_EQ(log.count({"/villas-hostile", "reference count was 2", "kept"}), 1U);
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
  {
    const MutexHolder holder(m.data() + kMutexAt);
    bounded([&] {
      EXPECT_EQ(own.try_push(make_sample(1, 1)), Errc::ok);
      own.stop();
    });
  }
  EXPECT_EQ(own.queued(), 1U);
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 5);
  auto peer = PeerRegion::attach(m.span(), "/own");
  Sample s;
  EXPECT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(peer.try_pull(s), Errc::shut_down);
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

TEST(VillasHostile, BlockLostBetweenAFullQueueAndAFullFreeListIsLoggedOnce) {
  // The peer makes our data queue look full (its tail cell's sequence one behind) and moves our
  // free list's tail on by one (that cell then looks full): the block try_push popped can go
  // nowhere; it says would_block and logs the lost block once.
  LogCapture log;
  Mem m(region_size(2, 1));
  auto own = OwnRegion::init(m.span(), 2, 1, false, "/own");
  m.set<std::uint64_t>(data_cells(m), ~std::uint64_t{0});  // tail 0, sequence -1
  m.set<std::uint64_t>(off::kFreeQ + off::kTail, m.get<std::uint64_t>(off::kFreeQ + off::kTail) + 1);
  EXPECT_EQ(own.try_push(make_sample(1, 1)), Errc::would_block);
  EXPECT_EQ(own.try_push(make_sample(2, 1)), Errc::would_block);
  EXPECT_EQ(own.queued(), 0U);
  EXPECT_EQ(log.count({"/own", "could not be put back on our free list"}), 1U);
}

/// Pushes `n` samples and stops `own` within a bound (in pthread mode with objects the peer
/// damaged): every push is ok, the samples stay queued, the queue is STOPPED.
void expect_pushes_and_stop_return(Mem& m, OwnRegion& own, std::uint64_t n) {
  bounded([&] {
    for (std::uint64_t seq = 1; seq <= n; ++seq) EXPECT_EQ(own.try_push(make_sample(seq, 1)), Errc::ok);
    own.stop();
  });
  EXPECT_EQ(own.queued(), n);
  EXPECT_EQ(m.get<std::int32_t>(off::kDataQ + off::kState), 5);
}

TEST(VillasHostile, CondvarLockedByThePeerCostsAWakeUpNeverAHang) {
  // A peer that died inside pthread_cond_wait's internal critical section (or wrote the bits):
  // glibc's broadcast would wait on the internal lock with no timeout while a waiter is counted.
  LogCapture log;
  Mem m(region_size(4, 1));
  auto own = OwnRegion::init(m.span(), 4, 1, true, "/own");
  m.set<std::uint32_t>(kCondOrigSize, m.get<std::uint32_t>(kCondOrigSize) | 1U);
  m.set<std::uint32_t>(kCondWrefs, m.get<std::uint32_t>(kCondWrefs) + 8U);  // one waiter counted
  expect_pushes_and_stop_return(m, own, 2);
  EXPECT_EQ(m.get<std::int32_t>(kMutexAt), 0);  // the mutex was unlocked again
  EXPECT_EQ(log.count({"/own", "condition variable"}), 1U);
  auto peer = PeerRegion::attach(m.span(), "/own");
  Sample s;
  EXPECT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(peer.try_pull(s), Errc::ok);
  EXPECT_EQ(peer.try_pull(s), Errc::shut_down);
}

TEST(VillasHostile, ChangedCondvarFlagsAreNeverUsed) {
  LogCapture log;
  Mem m(region_size(4, 1));
  auto own = OwnRegion::init(m.span(), 4, 1, true, "/own");
  m.set<std::uint32_t>(kCondWrefs, m.get<std::uint32_t>(kCondWrefs) ^ 1U);  // process-shared bit flipped
  expect_pushes_and_stop_return(m, own, 1);
  EXPECT_EQ(log.count({"/own", "condition variable", "flag bits"}), 1U);
}

TEST(VillasHostile, ChangedMutexKindIsNeverUsed) {
  // A peer that turned our mutex robust: glibc's unlock would walk this thread's robust list.
  LogCapture log;
  Mem m(region_size(4, 1));
  auto own = OwnRegion::init(m.span(), 4, 1, true, "/own");
  const auto kind = m.get<std::int32_t>(kMutexKind);
  m.set<std::int32_t>(kMutexKind, kind | 16);  // PTHREAD_MUTEX_ROBUST_NORMAL_NP
  const std::vector<std::byte> mutex_before(m.data() + kMutexAt, m.data() + kMutexAt + 40);
  expect_pushes_and_stop_return(m, own, 2);
  // glibc was never called with it: not a byte of the mutex changed
  EXPECT_EQ(std::memcmp(mutex_before.data(), m.data() + kMutexAt, 40), 0);
  EXPECT_EQ(log.count({"/own", "mutex's kind word is " + std::to_string(kind | 16)}), 1U);
}

TEST(VillasHostile, StuckMutexIsOnlyTriedAfterItsFirstTimeout) {
  // The first push waits up to the 100 ms bound, later ones do not wait at all; a free mutex
  // ends that, and the next stuck one is waited for again.
  Mem m(region_size(64, 1));
  auto own = OwnRegion::init(m.span(), 64, 1, true, "/own");
  using Clock = std::chrono::steady_clock;
  auto holder = std::make_unique<MutexHolder>(m.data() + kMutexAt);
  bounded([&] {
    const auto t0 = Clock::now();
    EXPECT_EQ(own.try_push(make_sample(0, 1)), Errc::ok);
    const auto t1 = Clock::now();
    EXPECT_GE(t1 - t0, std::chrono::milliseconds(100));  // waited the whole bound (monotonic)
    for (std::uint64_t seq = 1; seq <= 40; ++seq) EXPECT_EQ(own.try_push(make_sample(seq, 1)), Errc::ok);
    // 40 more pushes that each waited 100 ms would take 4 s; trylocks only take microseconds
    EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(2000));
  });
  holder.reset();
  EXPECT_EQ(own.try_push(make_sample(41, 1)), Errc::ok);  // the trylock succeeds: no longer stuck
  holder = std::make_unique<MutexHolder>(m.data() + kMutexAt);
  const auto t2 = Clock::now();
  EXPECT_EQ(own.try_push(make_sample(42, 1)), Errc::ok);
  EXPECT_GE(Clock::now() - t2, std::chrono::milliseconds(100));
  holder.reset();
  EXPECT_EQ(own.queued(), 43U);
}

/// A villas-style reader sleeps on our condition variable; another thread takes our mutex (so
/// it is held at the moment of `skip`, a push or stop, whose wake-up is then skipped after the
/// 100 ms bound); after it lets go, `retry` alone must wake the reader, which then returns
/// `expect` (1 with the pushed sample 7, or -1 for STOPPED), well before its 5 s timeout (-2).
template <class Skip, class Retry>
void expect_skipped_wake_retried(std::uint32_t queuelen, Skip skip, Retry retry, int expect) {
  Mem m(region_size(queuelen, 1));
  auto own = OwnRegion::init(m.span(), queuelen, 1, true, "/own");
  VillasStyleReader reader(m);
  Sample got;
  auto pulled = reader.start(got);
  reader.wait_for_waits(1);
  {
    const MutexHolder holder(m.data() + kMutexAt);  // taken once the reader sleeps (it held it until then)
    bounded([&] { skip(own); });
    EXPECT_FALSE(own.retry_wake()) << "the mutex is still held: the wake-up stays owed";
  }
  bounded([&] { retry(own); });
  EXPECT_EQ(bounded([&] { return pulled.get(); }), expect) << "the owed wake-up was not retried (-2: timed out)";
  if (expect == 1) {
    EXPECT_EQ(got.sequence, 7U);
  }
  EXPECT_TRUE(own.retry_wake()) << "nothing is owed after the broadcast";
}

/// Calls retry_wake() until it says nothing is owed (a few tries: a spuriously woken reader may
/// hold the mutex for a moment).
void retry_until_done(OwnRegion& own) {
  for (int i = 0; i < 1000 && !own.retry_wake(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TEST(VillasHostile, WakeUpSkippedForAHeldMutexIsMadeByRetryWake) {
  expect_skipped_wake_retried(
      4, [](OwnRegion& own) { EXPECT_EQ(own.try_push(make_sample(7, 1)), Errc::ok); }, retry_until_done, 1);
}

TEST(VillasHostile, WakeUpSkippedForAHeldMutexIsMadeByALaterTryPushThatWouldBlock) {
  // One block: the later push finds the pool empty (the reader, asleep, holds the sample).
  expect_skipped_wake_retried(
      1, [](OwnRegion& own) { EXPECT_EQ(own.try_push(make_sample(7, 1)), Errc::ok); },
      [](OwnRegion& own) { EXPECT_EQ(own.try_push(make_sample(8, 1)), Errc::would_block); }, 1);
}

TEST(VillasHostile, BroadcastSkippedByStopIsMadeByRetryWake) {
  // A reader asleep would otherwise never see STOPPED.
  expect_skipped_wake_retried(4, [](OwnRegion& own) { own.stop(); }, retry_until_done, -1);
}

TEST(VillasHostile, BlockSizeAboveTheLargestSampleIsRefused) {
  // The largest block shmlink makes (kMaxSampleValues values) is accepted ...
  const std::uint64_t big = region_size(1, kMaxSampleValues);
  Mem ok(big);
  (void)OwnRegion::init(ok.span(), 1, kMaxSampleValues, false, "/own");
  const RegionInfo r = inspect(ok.span(), "/own");
  EXPECT_EQ(r.block_size, 32896U);
  // ... one 64 bytes larger, otherwise consistent (file size, pool length, cells moved along), is not.
  Mem m(big + 64);
  (void)OwnRegion::init(m.span().first(big), 1, kMaxSampleValues, false, "/villas-hostile");
  m.set<std::uint64_t>(off::kPool + off::kPoolBlocksz, 32896 + 64);
  m.set<std::uint64_t>(off::kPool + off::kPoolLen, 32896 + 64);
  m.set<std::int64_t>(off::kFreeQ + off::kBufferOff, m.get<std::int64_t>(off::kFreeQ + off::kBufferOff) + 64);
  expect_refused(m, m.span(), "pool block size 32960 holds 4109 values, more than shmlink reads");
  try {
    (void)inspect(m.span(), "/villas-hostile");
    ADD_FAILURE() << "inspect accepted a 32960-byte block";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find("32896 bytes"), std::string::npos) << e.what();
  }
  // and a block of 2^40 bytes is refused for its size, whatever the rest says
  m.set<std::uint64_t>(off::kPool + off::kPoolBlocksz, std::uint64_t{1} << 40);
  expect_refused(m, m.span(), "pool block size 1099511627776");
}

TEST(VillasHostile, PeerScribblingBothRegionsConcurrentlyCostsSamplesNeverMemory) {
  // One thread does what both sides do (we push on A and pull from B; the "peer" pulls from A
  // and pushes on B) while another scribbles, with relaxed atomic stores, the words a peer can
  // move under us: both regions' queue indices, states, and every data and free-list cell
  // (sequence and offset). Pool blocks and pthread objects are left alone (blocks are copied
  // with memcpy, and a glibc object changed inside glibc is the documented deliberate race).
  // Bounded iterations; every call returns; nothing outside the two regions is written. Meant
  // for the asan and tsan stages as much as for this one.
  constexpr std::uint64_t kGuard = 4096;
  const std::uint64_t size = region_size(8, 2);
  Mem a(size + kGuard), b(size + kGuard);
  auto own = OwnRegion::init(a.span().first(size), 8, 2, true, "/villas-a");
  auto theirs = OwnRegion::init(b.span().first(size), 8, 2, false, "/villas-b");
  auto peer_of_a = PeerRegion::attach(a.span().first(size), "/villas-a");
  auto peer = PeerRegion::attach(b.span().first(size), "/villas-b");
  std::vector<std::uint64_t> words;  // offsets of the scribbled 8-byte words, in both regions
  for (const Mem* m : {&a, &b}) {
    const std::uint64_t base = m == &a ? 0 : (std::uint64_t{1} << 40);  // tag: which region
    for (std::uint64_t q : {off::kDataQ, off::kFreeQ}) {
      words.push_back(base + q + off::kHead);
      words.push_back(base + q + off::kTail);
      const std::uint64_t cells = q + static_cast<std::uint64_t>(m->get<std::int64_t>(q + off::kBufferOff));
      for (std::uint64_t i = 0; i < 8; ++i) {
        words.push_back(base + cells + i * 16);
        words.push_back(base + cells + i * 16 + 8);
      }
    }
  }
  std::atomic<bool> done{false};
  std::atomic<int> scribbles{0};
  std::atomic<std::uint64_t> progress{0};
  std::thread scribbler([&] {
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    std::uint64_t damages = 0;
    for (int i = 0; i < 2'000'000 && !done.load(std::memory_order_relaxed); ++i) {
      scribbles.store(i, std::memory_order_relaxed);
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const std::uint64_t w = words[x % words.size()];
      std::byte* at = (w >> 40 != 0 ? b.data() : a.data()) + (w & ((std::uint64_t{1} << 40) - 1));
      std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(at));
      const std::uint64_t cur = word.load(std::memory_order_relaxed);
      // (the last two: offsets, from either queue, that land just past the region's end)
      const std::uint64_t choices[] = {x, cur + 1, cur - 1, cur + (x & 15), 0, ~std::uint64_t{0},
                                       static_cast<std::uint64_t>(-static_cast<std::int64_t>(x & 0xffff)),
                                       size - off::kDataQ + (x & 0xfc0), size - off::kFreeQ + (x & 0xfc0)};
      // Mostly a racing write that changes nothing (a CAS of the value it holds), so samples keep
      // flowing; one damaging store each time the worker has done another 50 iterations.
      if (progress.load(std::memory_order_relaxed) / 50 > damages) {
        ++damages;
        word.store(choices[(x >> 32) % std::size(choices)], std::memory_order_relaxed);
      } else {
        std::uint64_t same = cur;
        (void)word.compare_exchange_strong(same, cur, std::memory_order_relaxed);
      }
      if (i % 65536 == 65535) {  // and the data queues' states, now and then (any value)
        std::atomic_ref<std::int32_t>(*reinterpret_cast<std::int32_t*>((x & 1 ? a.data() : b.data()) + off::kDataQ))
            .store(static_cast<std::int32_t>(x >> 61), std::memory_order_relaxed);
      }
    }
  });
  for (int i = 0; i < 10'000 && scribbles.load(std::memory_order_relaxed) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(100));  // the scribbler has started
  bounded([&] {
    Sample s;
    for (std::uint64_t i = 0; i < 5000; ++i) {
      progress.store(i, std::memory_order_relaxed);
      const Status pushed = own.try_push(make_sample(i, 2));
      EXPECT_TRUE(pushed == Errc::ok || pushed == Errc::would_block) << pushed.message();
      (void)peer_of_a.try_pull(s);  // any status: the sample may be lost, never memory
      (void)theirs.try_push(make_sample(i, 2));
      const Status pulled = peer.try_pull(s);
      if (pulled == Errc::ok) {
        EXPECT_LE(s.values.size(), 5U);
      }
    }
  });
  done.store(true, std::memory_order_relaxed);
  scribbler.join();
  for (const Mem* m : {&a, &b}) {
    const std::vector<std::byte> zeros(kGuard);
    EXPECT_EQ(std::memcmp(m == &a ? a.data() + size : b.data() + size, zeros.data(), kGuard), 0)
        << "bytes after a region were written";
  }
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

TEST(VillasInspect, FileIsInspectedFromItsHeaderWithoutReadingItWhole) {
  // A 67 MB region whose pool is a hole: inspect_file must read its header only. The child
  // that inspects it may not grow its address space by a quarter of the file.
  const std::string name = "/shmlink-villas-test-big-" + std::to_string(::getpid());
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  const std::uint64_t size = region_size(2048, kMaxSampleValues);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  (void)OwnRegion::init(std::span<std::byte>(static_cast<std::byte*>(p), size), 2048, kMaxSampleValues, false, name);
  ::munmap(p, size);
  // Give the zeroed pool back (the file stays its size, sparse).
  (void)::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, static_cast<off_t>(size - 2 * 4096));
  ::close(fd);
  const pid_t child = ::fork();
  if (child == 0) {
    long pages = 0;
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
      std::fclose(statm);
    }
    if (pages <= 0) ::_exit(3);
    const auto limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (rlim_t{16} << 20);
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(4);
    try {
      const RegionInfo r = inspect_file(name);
      ::_exit(r.pool_blocks == 2048 && r.size == size ? 0 : 5);
    } catch (...) {
      ::_exit(6);  // std::bad_alloc: the file was read whole
    }
  }
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::shm_unlink(name.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(VillasInspect, HeaderOverloadChecksAgainstTheFileSize) {
  Mem m(region_size(8, 2));
  (void)OwnRegion::init(m.span(), 8, 2, false, "/own");
  const std::span<std::byte> bytes = m.span();
  EXPECT_EQ(inspect(std::span<const std::byte>(bytes).first(kSharedEnd), bytes.size(), "/own").pool_blocks, 8U);
  EXPECT_THROW((void)inspect(std::span<const std::byte>(bytes).first(kSharedEnd), bytes.size() + 64, "/own"), Error);
  EXPECT_THROW((void)inspect(std::span<const std::byte>(bytes).first(100), bytes.size(), "/own"), Error);
}

}  // namespace
