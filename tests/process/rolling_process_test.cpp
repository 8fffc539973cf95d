// SPDX-License-Identifier: MIT
// Rolling buffers (StreamSpec::depth, DAO's FIFO) between real processes: a sequential reader
// that sees every frame, a lapped reader told exactly how many frames it lost, per-slice counters
// and times, the raw ISIO file a milk reader sees, torn-read stress while the writer laps the
// buffer, read_next on plain streams, and DAO's Shm<T> FIFO calls (reference 11.2, 16.5, 17.7,
// 17.8). Written from the contract in include/shmlink/stream.hpp and shm.hpp.
//
// Convention: the frame whose cnt0 is k has every element equal to k, so content identifies the
// frame and a torn copy (parts of two frames) is caught by a non-uniform frame.
#include "test_util.hpp"

#include <shmlink/shm.hpp>
#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::ChildReport;
using test::Shared;
using test::spec_of;

constexpr std::int64_t kAtimeBase = 1'600'000'000'000'000'000;  // 2020-09-13, ns since the epoch
// The acquisition time the writers below give frame k.
constexpr std::int64_t atime_of(std::uint64_t k) { return kAtimeBase + static_cast<std::int64_t>(k) * 1'000'003; }

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

template <class T>
bool uniform(const std::vector<T>& f, std::uint64_t k) {
  return std::all_of(f.begin(), f.end(), [k](T v) { return v == static_cast<T>(k); });
}
template <class T>
bool uniform(std::span<const std::byte> bytes, std::uint64_t k) {
  std::vector<T> f(bytes.size() / sizeof(T));
  std::memcpy(f.data(), bytes.data(), f.size() * sizeof(T));
  return uniform(f, k);
}

template <class T>
std::span<std::byte> bytes_of(std::vector<T>& v) {
  return std::as_writable_bytes(std::span(v));
}

StreamSpec rolling_spec(std::vector<std::uint32_t> frame_shape, Dtype dtype, std::uint32_t depth) {
  StreamSpec s = spec_of(std::move(frame_shape), dtype);
  s.depth = depth;
  return s;
}

// Child: opens `name` and writes `count` u32 frames, frame k filled with k and given atime_of(k).
pid_t spawn_u32_writer(const std::string& name, int count, ChildReport* rep) {
  return test::spawn([=] {
    auto out = Stream::open(name);
    std::vector<std::uint32_t> f(out.frame_elements());
    for (int i = 0; i < count; ++i) {
      const std::uint64_t k = out.cnt0() + 1;
      std::fill(f.begin(), f.end(), static_cast<std::uint32_t>(k));
      WriteOptions o;
      o.atime_ns = atime_of(k);
      const Status st = out.write(std::span<const std::uint32_t>(f), o);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
    }
    return 0;
  });
}

// Our offset helper agrees with the reference's worked examples (section 5.1 and 5.2), so the
// raw checks below rest on the reference, not on the library.
TEST(RollingLayoutHelper, MatchesReferenceExamples) {
  EXPECT_EQ(test::isio_offsets(64 * 64 * 4, 0, 10, 0, false).file_size, 17920u);
  EXPECT_EQ(test::isio_offsets(15, 1, 3, 0, false).file_size, 1360u);
  const auto b = test::isio_offsets(32 * 32 * 8 * 2, 4, 10, 8, true);
  EXPECT_EQ(b.atimearray, 18432u);
  EXPECT_EQ(b.writetimearray, 18560u);
  EXPECT_EQ(b.cntarray, 18688u);
  EXPECT_EQ(b.file_size, 18752u);
}

// 2000 frames into a depth-8 buffer; the writer never gets more than 4 frames ahead of the
// reader's published progress, so nothing may be lost: every read_next is ok, in order.
TEST(RollingProcesses, ReaderInAnotherProcessSeesEveryFrameInOrder) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kDepth = 8;
  constexpr std::uint64_t kFrames = 2000;
  auto s = Stream::create("seq", rolling_spec({32, 16}, Dtype::u32, kDepth));
  ASSERT_EQ(s.depth(), kDepth);
  struct Ctl {
    ChildReport rep;
    std::atomic<int> ready{0};
    std::atomic<std::uint64_t> progress{0};
  };
  Shared<Ctl> ctl;

  pid_t reader = test::spawn([&] {
    auto in = Stream::open("seq");
    ChildReport* rep = &ctl->rep;
    SHMLINK_CHILD_CHECK(rep, in.rolling() && in.depth() == kDepth, in.depth());
    SHMLINK_CHILD_CHECK(rep, in.tail() == 0, in.tail());
    ctl->ready.store(1);
    std::vector<std::uint32_t> f(in.frame_elements());
    for (std::uint64_t k = 1; k <= kFrames; ++k) {
      FrameInfo info;
      std::uint64_t skipped = 12345;
      const Status st = in.read_next(bytes_of(f), &info, &skipped, 10s);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(rep, info.cnt0 == k, info.cnt0);
      SHMLINK_CHILD_CHECK(rep, skipped == 0, skipped);
      SHMLINK_CHILD_CHECK(rep, uniform(f, k), f[0]);
      SHMLINK_CHILD_CHECK(rep, info.atime_ns == atime_of(k), info.atime_ns);
      SHMLINK_CHILD_CHECK(rep, in.tail() == k, in.tail());
      ctl->progress.store(k);
    }
    const Status last = in.read_next(bytes_of(f), nullptr, nullptr, 0ns);
    SHMLINK_CHILD_CHECK(rep, last.code() == Errc::would_block, static_cast<int>(last.code()));
    return 0;
  });
  pid_t writer = test::spawn([&] {
    auto out = Stream::open("seq");
    ChildReport* rep = &ctl->rep;
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->ready.load() == 1; }), 0);
    std::vector<std::uint32_t> f(out.frame_elements());
    for (std::uint64_t k = 1; k <= kFrames; ++k) {
      // Back-pressure: at most kDepth / 2 unread frames (a bounded wait, not a timing assertion).
      const auto give_up = std::chrono::steady_clock::now() + 20s;
      while (k - ctl->progress.load() > kDepth / 2) {
        SHMLINK_CHILD_CHECK(rep, std::chrono::steady_clock::now() < give_up, k);
        std::this_thread::sleep_for(20us);
      }
      std::fill(f.begin(), f.end(), static_cast<std::uint32_t>(k));
      WriteOptions o;
      o.atime_ns = atime_of(k);
      const Status st = out.write(std::span<const std::uint32_t>(f), o);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
    }
    return 0;
  });
  EXPECT_EQ(test::reap(writer, 60), 0) << ctl->rep.describe();
  EXPECT_EQ(test::reap(reader, 60), 0) << ctl->rep.describe();
  EXPECT_EQ(s.cnt0(), kFrames);
  EXPECT_EQ(s.cnt1(), kFrames % kDepth);
}

// A reader that does not read while 5 * depth frames are written is lapped: read_next returns
// overwritten with the newest frame and the exact number of frames it will never see.
// Boundaries: exactly depth unread frames are all still readable; depth + 1 is a lap.
TEST(RollingProcesses, LappedReaderGetsNewestFrameAndExactSkipCount) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kDepth = 8;
  auto s = Stream::create("lap", rolling_spec({16, 4}, Dtype::u32, kDepth));
  Shared<ChildReport> rep;
  ASSERT_EQ(test::reap(spawn_u32_writer("lap", 3, &*rep), 20), 0) << rep->describe();

  auto in = Stream::open("lap");
  EXPECT_EQ(in.tail(), 3u);  // open sets the tail to the newest frame
  std::vector<std::uint32_t> f(in.frame_elements());
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);

  ASSERT_EQ(test::reap(spawn_u32_writer("lap", 5 * kDepth, &*rep), 20), 0) << rep->describe();
  ASSERT_EQ(in.cnt0(), 3u + 5 * kDepth);
  FrameInfo info;
  std::uint64_t skipped = 0;
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::overwritten);
  EXPECT_EQ(info.cnt0, 43u);
  EXPECT_TRUE(uniform(f, 43)) << f[0];
  EXPECT_EQ(info.atime_ns, atime_of(43));
  EXPECT_EQ(skipped, 43u - 3u - 1u);  // frames 4..42 are lost to this reader
  EXPECT_EQ(in.tail(), 43u);
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped, 0ns).code(), Errc::would_block);
  EXPECT_EQ(in.tail(), 43u);

  // Exactly depth frames written since the tail: the oldest of them is still in the buffer.
  ASSERT_EQ(test::reap(spawn_u32_writer("lap", kDepth, &*rep), 20), 0) << rep->describe();
  for (std::uint64_t k = 44; k < 44 + kDepth; ++k) {
    skipped = 999;
    ASSERT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::ok) << "frame " << k;
    EXPECT_EQ(info.cnt0, k);
    EXPECT_EQ(skipped, 0u);
    EXPECT_TRUE(uniform(f, k)) << f[0];
  }
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);

  // depth + 1 frames: the first of them was overwritten by the last.
  ASSERT_EQ(test::reap(spawn_u32_writer("lap", kDepth + 1, &*rep), 20), 0) << rep->describe();
  const std::uint64_t tail = in.tail();
  EXPECT_EQ(tail, 43u + kDepth);
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::overwritten);
  EXPECT_EQ(info.cnt0, tail + kDepth + 1);
  EXPECT_EQ(skipped, std::uint64_t{kDepth});
  EXPECT_TRUE(uniform(f, tail + kDepth + 1)) << f[0];
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);
}

// set_tail / reset_tail: replaying the history, and jumping to the newest frame.
TEST(RollingProcesses, SetTailReplaysHistoryResetTailSkipsIt) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kDepth = 5;
  auto s = Stream::create("replay", rolling_spec({8}, Dtype::u32, kDepth));
  Shared<ChildReport> rep;
  ASSERT_EQ(test::reap(spawn_u32_writer("replay", 12, &*rep), 20), 0) << rep->describe();
  auto in = Stream::open("replay");
  std::vector<std::uint32_t> f(in.frame_elements());
  FrameInfo info;
  // set_tail(c): read_next then returns frame c + 1. The buffer holds frames 8..12.
  in.set_tail(12 - kDepth);
  EXPECT_EQ(in.tail(), 12u - kDepth);
  for (std::uint64_t k = 8; k <= 12; ++k) {
    ASSERT_EQ(in.read_next(bytes_of(f), &info).code(), Errc::ok) << "frame " << k;
    EXPECT_EQ(info.cnt0, k);
    EXPECT_TRUE(uniform(f, k));
  }
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);
  // A tail one frame further back than the buffer reaches: frame 7 is gone.
  in.set_tail(6);
  std::uint64_t skipped = 0;
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::overwritten);
  EXPECT_EQ(info.cnt0, 12u);
  EXPECT_EQ(skipped, 5u);  // 7..11
  // reset_tail: to the newest frame.
  in.set_tail(9);
  EXPECT_EQ(in.reset_tail(), 12u);
  EXPECT_EQ(in.tail(), 12u);
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);
}

// Per-slice counters and times, and the history reads, checked in this process after another
// process wrote: frame k lands in slice k % depth (the first frame of a new stream in slice 1).
TEST(RollingProcesses, SliceCountersTimesAndHistoryReads) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kDepth = 8;
  auto s = Stream::create("slices", rolling_spec({6, 5}, Dtype::u32, kDepth));
  EXPECT_EQ(s.cnt1(), 0u);
  for (std::uint32_t sl = 0; sl < kDepth; ++sl) EXPECT_EQ(s.slice_info(sl).cnt0, 0u) << "slice " << sl;
  std::vector<std::uint32_t> f(s.frame_elements());
  EXPECT_EQ(s.read_slice(0, bytes_of(f)).code(), Errc::would_block);
  EXPECT_EQ(s.read_frame(1, bytes_of(f)).code(), Errc::would_block);

  Shared<ChildReport> rep;
  const std::int64_t t0 = realtime_ns();
  ASSERT_EQ(test::reap(spawn_u32_writer("slices", 1, &*rep), 20), 0) << rep->describe();
  EXPECT_EQ(s.cnt0(), 1u);
  EXPECT_EQ(s.cnt1(), 1u);  // ISIO: the first frame goes to slice (0 + 1) % depth
  EXPECT_EQ(s.slice_info(1).cnt0, 1u);
  EXPECT_EQ(s.slice_info(0).cnt0, 0u);
  EXPECT_EQ(s.slice_info(2).cnt0, 0u);
  EXPECT_EQ(s.read_slice(0, bytes_of(f)).code(), Errc::would_block);
  EXPECT_EQ(s.read_slice(2, bytes_of(f)).code(), Errc::would_block);
  FrameInfo info;
  ASSERT_EQ(s.read_slice(1, bytes_of(f), &info).code(), Errc::ok);
  EXPECT_EQ(info.cnt0, 1u);
  EXPECT_TRUE(uniform(f, 1));

  ASSERT_EQ(test::reap(spawn_u32_writer("slices", 12, &*rep), 20), 0) << rep->describe();
  const std::int64_t t1 = realtime_ns();
  constexpr std::uint64_t kLast = 13;  // the buffer holds frames 6..13
  ASSERT_EQ(s.cnt0(), kLast);
  EXPECT_EQ(s.cnt1(), kLast % kDepth);
  EXPECT_EQ(s.frame_info().cnt0, kLast);

  std::map<std::uint64_t, std::int64_t> writetime_by_cnt0;
  for (std::uint32_t sl = 0; sl < kDepth; ++sl) {
    SCOPED_TRACE("slice " + std::to_string(sl));
    const std::uint64_t k = sl + kDepth <= kLast ? sl + kDepth : sl;  // 8..13 in slices 0..5, 6..7 in 6..7
    const FrameInfo si = s.slice_info(sl);
    EXPECT_EQ(si.cnt0, k);
    EXPECT_EQ(si.cnt1, sl);
    EXPECT_EQ(si.atime_ns, atime_of(k));
    // The writer stamps with the library's TSC clock, within tens of ns of clock_gettime.
    EXPECT_GE(si.writetime_ns, t0 - 1'000);
    EXPECT_LE(si.writetime_ns, t1 + 1'000);
    writetime_by_cnt0[si.cnt0] = si.writetime_ns;
    EXPECT_EQ(s.slice_info(sl + kDepth).cnt0, k);      // slice index taken modulo depth
    EXPECT_EQ(s.slice_info(sl + 5 * kDepth).cnt0, k);

    FrameInfo ri;
    ASSERT_EQ(s.read_slice(sl, bytes_of(f), &ri).code(), Errc::ok);
    EXPECT_EQ(ri.cnt0, k);
    EXPECT_EQ(ri.atime_ns, atime_of(k));
    EXPECT_TRUE(uniform(f, k)) << f[0];
    const auto v = s.view_slice(sl);
    ASSERT_EQ(v.size(), s.frame_bytes());
    EXPECT_EQ(std::memcmp(v.data(), f.data(), v.size()), 0);
    EXPECT_EQ(s.view_slice(sl + kDepth).data(), v.data());
  }
  std::int64_t prev = 0;
  for (auto [k, wt] : writetime_by_cnt0) {
    EXPECT_GE(wt, prev) << "writetime goes back at frame " << k;
    prev = wt;
  }

  for (std::uint64_t k = 1; k <= kLast + 2; ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    FrameInfo ri;
    const Status st = s.read_frame(k, bytes_of(f), &ri);
    if (k > kLast) {
      EXPECT_EQ(st.code(), Errc::would_block);
    } else if (k + kDepth <= kLast) {
      EXPECT_EQ(st.code(), Errc::overwritten);
    } else {
      ASSERT_EQ(st.code(), Errc::ok);
      EXPECT_EQ(ri.cnt0, k);
      EXPECT_EQ(ri.atime_ns, atime_of(k));
      EXPECT_TRUE(uniform(f, k)) << f[0];
    }
  }
  // "A frame" is one slice: the newest through read_copy and view().
  ASSERT_EQ(s.read_copy(bytes_of(f), &info).code(), Errc::ok);
  EXPECT_EQ(info.cnt0, kLast);
  EXPECT_TRUE(uniform(f, kLast));
  EXPECT_TRUE(uniform<std::uint32_t>(s.view(), kLast));
  // Wrong buffer sizes.
  std::vector<std::uint32_t> small(f.size() - 1);
  EXPECT_EQ(s.read_frame(kLast, bytes_of(small)).code(), Errc::size_mismatch);
  EXPECT_EQ(s.read_slice(1, bytes_of(small)).code(), Errc::size_mismatch);
  EXPECT_EQ(s.read_next(bytes_of(small)).code(), Errc::size_mismatch);
}

// The file is an ISIO 2.00 rolling buffer that a reader knowing only the reference's layout can
// follow: naxis 3, size[2] = depth, CIRCULAR_BUFFER | ZAXIS_TEMPORAL, cnt1 at 272, cntarray /
// atimearray / writetimearray where section 5 puts them, the frame in data slice cnt1.
TEST(RollingProcesses, FileIsAnIsioRollingBufferMilkCanRead) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kDepth = 8;
  StreamSpec spec = rolling_spec({8, 4}, Dtype::u32, kDepth);
  spec.keywords = 3;    // move the later chunks, so the offsets are really computed
  spec.semaphores = 5;
  auto s = Stream::create("isio", spec);
  EXPECT_TRUE(s.rolling());
  EXPECT_EQ(s.depth(), kDepth);
  EXPECT_EQ(s.frame_bytes(), 8u * 4 * 4);
  EXPECT_EQ(s.frame_elements(), 32u);
  EXPECT_EQ(s.data_bytes(), kDepth * s.frame_bytes());
  EXPECT_EQ(s.nelement(), 32u * kDepth);
  ASSERT_EQ(s.shape().size(), 3u);
  EXPECT_EQ(s.shape()[2], kDepth);
  ASSERT_EQ(s.frame_shape().size(), 2u);
  EXPECT_EQ(s.frame_shape()[0], 8u);
  EXPECT_EQ(s.frame_shape()[1], 4u);
  EXPECT_EQ(s.info().depth, kDepth);
  EXPECT_EQ(s.info().frame_bytes, s.frame_bytes());

  Shared<ChildReport> rep;
  const std::int64_t t0 = realtime_ns();
  ASSERT_EQ(test::reap(spawn_u32_writer("isio", 11, &*rep), 20), 0) << rep->describe();
  const std::int64_t t1 = realtime_ns();

  // Another process opens it as a plain ISIO file and recognises the rolling buffer.
  pid_t opener = test::spawn([] {
    auto in = Stream::open("isio");
    return in.rolling() && in.depth() == 8 && in.frame_elements() == 32 && in.cnt1() == 3 ? 0 : 1;
  });
  EXPECT_EQ(test::reap(opener, 20), 0);

  // Raw bytes, as a milk reader maps them.
  const std::string path = s.path();
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  const auto o = test::isio_offsets(kDepth * 8 * 4 * 4, 3, 5, kDepth, true);
  ASSERT_EQ(static_cast<std::size_t>(st.st_size), o.file_size);
  auto* base = static_cast<const char*>(::mmap(nullptr, o.file_size, PROT_READ, MAP_SHARED, fd, 0));
  ::close(fd);
  ASSERT_NE(base, MAP_FAILED);
  auto u64_at = [&](std::size_t off) {
    std::uint64_t v;
    std::memcpy(&v, base + off, 8);
    return v;
  };
  auto u32_at = [&](std::size_t off) {
    std::uint32_t v;
    std::memcpy(&v, base + off, 4);
    return v;
  };
  auto ts_at = [&](std::size_t off) {
    timespec ts{};
    std::memcpy(&ts, base + off, sizeof ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  };
  EXPECT_STREQ(base, "2.00");
  EXPECT_EQ(static_cast<int>(base[112]), 3);  // naxis
  EXPECT_EQ(u32_at(116), 8u);
  EXPECT_EQ(u32_at(120), 4u);
  EXPECT_EQ(u32_at(124), kDepth);             // size[2]
  EXPECT_EQ(u64_at(128), 32u * kDepth);       // nelement
  EXPECT_EQ(static_cast<int>(base[136]), 5);  // datatype u32
  const std::uint64_t imagetype = u64_at(144);
  EXPECT_EQ(imagetype & kImagetypeCircularBuffer, kImagetypeCircularBuffer);
  EXPECT_EQ(imagetype & kImagetypeZaxisTemporal, kImagetypeZaxisTemporal);
  // ISIO sizes the temporal arrays only when (imagetype & 0xF000F) is exactly CIRCULAR_BUFFER |
  // ZAXIS_TEMPORAL (reference section 5, chunk 11): with MATH_DATA also set, milk would compute a
  // file without those arrays and reject ours for its size.
  EXPECT_EQ(imagetype & 0xF000F, 0x20001u);
  std::uint16_t nsem = 0;
  std::memcpy(&nsem, base + 258, 2);
  EXPECT_EQ(nsem, 5);
  EXPECT_EQ(u64_at(264), 11u);                // cnt0
  EXPECT_EQ(u64_at(272), 11u % kDepth);       // cnt1: the newest slice
  EXPECT_EQ(static_cast<int>(base[288]), 0);  // write flag
  EXPECT_EQ(u64_at(312), std::uint64_t{kDepth} * 128);  // imdatamemsize
  // The buffer holds frames 4..11: slice sl holds k with k % 8 == sl.
  for (std::uint32_t sl = 0; sl < kDepth; ++sl) {
    SCOPED_TRACE("slice " + std::to_string(sl));
    const std::uint64_t k = sl < 4 ? sl + kDepth : sl;
    EXPECT_EQ(u64_at(o.cntarray + 8 * sl), k);
    EXPECT_EQ(ts_at(o.atimearray + 16 * sl), atime_of(k));
    const std::int64_t wt = ts_at(o.writetimearray + 16 * sl);
    EXPECT_GE(wt, t0 - 1'000);  // the TSC clock: within tens of ns of clock_gettime
    EXPECT_LE(wt, t1 + 1'000);
    EXPECT_EQ(wt, s.slice_info(sl).writetime_ns);
    bool slice_ok = true;
    for (std::size_t e = 0; e < 32; ++e) slice_ok &= u32_at(o.data + sl * 128 + 4 * e) == k;
    EXPECT_TRUE(slice_ok);
  }
  // The newest frame, found the milk way: data slice cnt1; metadata atime is its atime.
  EXPECT_EQ(u32_at(o.data + u64_at(272) * 128), 11u);
  EXPECT_EQ(ts_at(184), atime_of(11));
  ::munmap(const_cast<char*>(base), o.file_size);
}

// Other ways to make a rolling buffer: a 3-axis shape with both imagetype bits (depth =
// shape[2]), and a 1-axis frame (the file still has 3 axes, size[2] = depth).
TEST(RollingProcesses, ThreeAxisTemporalSpecAndOneAxisFrameAreRolling) {
  test::TempStreamDir dir;
  StreamSpec three = spec_of({8, 4, 5}, Dtype::u32);
  three.imagetype = kImagetypeCircularBuffer | kImagetypeZaxisTemporal;
  auto a = Stream::create("three", three);
  EXPECT_TRUE(a.rolling());
  EXPECT_EQ(a.depth(), 5u);
  EXPECT_EQ(a.frame_elements(), 32u);
  EXPECT_EQ(a.frame_bytes(), 128u);

  auto b = Stream::create("one", rolling_spec({16}, Dtype::u32, 4));
  EXPECT_TRUE(b.rolling());
  EXPECT_EQ(b.depth(), 4u);
  ASSERT_EQ(b.shape().size(), 3u);
  EXPECT_EQ(b.shape()[2], 4u);
  EXPECT_EQ(b.frame_elements(), 16u);
  const auto o = test::isio_offsets(4 * 16 * 4, 0, 10, 4, true);
  EXPECT_EQ(b.file_bytes().size(), o.file_size);

  for (std::uint32_t d : {0u, 1u}) {
    auto p = Stream::create("plain" + std::to_string(d), rolling_spec({16}, Dtype::u32, d));
    EXPECT_FALSE(p.rolling());
    EXPECT_EQ(p.depth(), 1u);
    EXPECT_EQ(p.shape().size(), 1u);
  }

  Shared<ChildReport> rep;
  ASSERT_EQ(test::reap(spawn_u32_writer("three", 7, &*rep), 20), 0) << rep->describe();
  EXPECT_EQ(a.cnt1(), 7u % 5);
  std::vector<std::uint32_t> f(32);
  FrameInfo info;
  ASSERT_EQ(a.read_frame(3, bytes_of(f), &info).code(), Errc::ok);
  EXPECT_TRUE(uniform(f, 3));
  EXPECT_EQ(a.read_frame(2, bytes_of(f)).code(), Errc::overwritten);
}

// Cross-process torn-read stress: the writer laps a small buffer as fast as it can (half its
// frames through write(), half filled in place through begin_write()), two readers use
// read_next, read_frame and read_slice. Every frame they accept must be uniform and be the
// frame the call says it is; read_next's counters must account for every frame.
void rolling_stress(const std::uint32_t kDepth, const std::chrono::milliseconds kRun) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kElems = 8 * 1024;  // 64 KiB of u64 per frame
  auto s = Stream::create("stress", rolling_spec({kElems}, Dtype::u64, kDepth));
  struct Ctl {
    ChildReport rep;
    std::atomic<int> readers_ready{0};
    std::atomic<int> writer_done{0};
    std::atomic<std::uint64_t> next_ok{0}, next_overwritten{0}, next_last{0};
    std::atomic<std::uint64_t> frame_ok{0}, slice_ok{0}, unvalidated_torn{0};
  };
  Shared<Ctl> ctl;

  // Reader 1: read_next. ok is the next frame; overwritten is tail + skipped + 1.
  pid_t next_reader = test::spawn([&] {
    auto in = Stream::open("stress");
    ChildReport* rep = &ctl->rep;
    std::vector<std::uint64_t> f(kElems);
    std::uint64_t tail = in.tail(), ok = 0, over = 0;
    ctl->readers_ready.fetch_add(1);
    auto drained = [&] { return ctl->writer_done.load() == 1 && tail == in.cnt0(); };
    while (!drained()) {
      FrameInfo info;
      std::uint64_t skipped = 777;
      const Status st = in.read_next(bytes_of(f), &info, &skipped, 20ms);
      switch (st.code()) {
        case Errc::ok:
          SHMLINK_CHILD_CHECK(rep, info.cnt0 == tail + 1, info.cnt0);
          SHMLINK_CHILD_CHECK(rep, skipped == 0, skipped);
          break;
        case Errc::overwritten:
          SHMLINK_CHILD_CHECK(rep, skipped >= 1 && info.cnt0 == tail + skipped + 1, info.cnt0);
          break;
        // Not accepted, so allowed: nothing new, a copy that kept colliding, or a commit that
        // stalled past the grace time (a writer preempted on a loaded machine).
        case Errc::would_block: case Errc::timeout: case Errc::torn: case Errc::writer_active: continue;
        default: SHMLINK_CHILD_CHECK(rep, false, static_cast<int>(st.code()));
      }
      SHMLINK_CHILD_CHECK(rep, uniform(f, info.cnt0), static_cast<std::int64_t>(info.cnt0));
      SHMLINK_CHILD_CHECK(rep, in.tail() == info.cnt0, in.tail());
      (st.ok() ? ok : over) += 1;
      tail = info.cnt0;
    }
    ctl->next_ok.store(ok);
    ctl->next_overwritten.store(over);
    ctl->next_last.store(tail);
    return 0;
  });
  // Reader 2: read_frame of a recent frame and read_slice of a random slice.
  pid_t history_reader = test::spawn([&] {
    auto in = Stream::open("stress");
    ChildReport* rep = &ctl->rep;
    std::vector<std::uint64_t> f(kElems);
    std::mt19937 rng(42);
    std::uint64_t frame_ok = 0, slice_ok = 0, unvalidated_torn = 0;
    ctl->readers_ready.fetch_add(1);
    while (ctl->writer_done.load() == 0) {
      const std::uint64_t c = in.cnt0();
      const std::uint64_t back = rng() % (kDepth + 1);
      if (c > back) {
        const std::uint64_t k = c - back;
        FrameInfo info;
        const Status st = in.read_frame(k, bytes_of(f), &info);
        if (st.ok()) {
          SHMLINK_CHILD_CHECK(rep, info.cnt0 == k, info.cnt0);
          SHMLINK_CHILD_CHECK(rep, uniform(f, k), static_cast<std::int64_t>(f[0]));
          ++frame_ok;
        } else {
          SHMLINK_CHILD_CHECK(rep, st.code() == Errc::overwritten || st.code() == Errc::torn ||
                                       st.code() == Errc::writer_active,
                              static_cast<int>(st.code()));
        }
      }
      const auto sl = static_cast<std::uint32_t>(rng() % kDepth);
      FrameInfo info;
      const Status st = in.read_slice(sl, bytes_of(f), &info);
      if (st.ok()) {
        SHMLINK_CHILD_CHECK(rep, info.cnt0 % kDepth == sl, info.cnt0);
        SHMLINK_CHILD_CHECK(rep, uniform(f, info.cnt0), static_cast<std::int64_t>(f[0]));
        ++slice_ok;
      } else {
        // writer_active (a commit stalled past the grace time) is not in read_slice's documented
        // list but is harmless here: nothing was accepted.
        SHMLINK_CHILD_CHECK(rep, st.code() == Errc::would_block || st.code() == Errc::torn ||
                                     st.code() == Errc::writer_active,
                            static_cast<int>(st.code()));
      }
      // Control: the same check on an unvalidated copy of the oldest slice, the one the next
      // write fills, does catch torn frames (printed, not asserted: it shows that the writer
      // really collides with readers of the oldest frame, as read_frame(c - depth + 1) is).
      const auto v = in.view_slice(static_cast<std::uint32_t>(in.cnt1() + 1));
      std::memcpy(f.data(), v.data(), v.size());
      unvalidated_torn += !uniform(f, f[0]);
    }
    ctl->unvalidated_torn.store(unvalidated_torn);
    ctl->frame_ok.store(frame_ok);
    ctl->slice_ok.store(slice_ok);
    return 0;
  });
  pid_t writer = test::spawn([&] {
    auto out = Stream::open("stress");
    ChildReport* rep = &ctl->rep;
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->readers_ready.load() == 2; }), 0);
    std::vector<std::uint64_t> f(kElems);
    const auto end = std::chrono::steady_clock::now() + kRun;
    while (std::chrono::steady_clock::now() < end) {
      const std::uint64_t k = out.cnt0() + 1;
      if (k % 2 == 0) {
        std::fill(f.begin(), f.end(), k);
        const Status st = out.write(std::span<const std::uint64_t>(f));
        SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      } else {
        auto buf = out.begin_write();
        SHMLINK_CHILD_CHECK(rep, buf.size() == kElems * 8, buf.size());
        for (std::size_t e = 0; e < kElems; ++e) std::memcpy(buf.data() + 8 * e, &k, 8);
        const Status st = out.commit_write();
        SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      }
    }
    ctl->writer_done.store(1);
    return 0;
  });
  EXPECT_EQ(test::reap(writer, 60), 0) << ctl->rep.describe();
  ctl->writer_done.store(1);  // in case the writer failed early
  EXPECT_EQ(test::reap(next_reader, 60), 0) << ctl->rep.describe();
  EXPECT_EQ(test::reap(history_reader, 60), 0) << ctl->rep.describe();
  const std::uint64_t written = s.cnt0();
  EXPECT_GT(written, 50u);
  // read_next accounts for every frame: those returned plus those reported skipped.
  EXPECT_EQ(ctl->next_last.load(), written);
  EXPECT_GT(ctl->next_ok.load() + ctl->next_overwritten.load(), 10u);
  EXPECT_GT(ctl->frame_ok.load() + ctl->slice_ok.load(), 10u);
  std::printf("[ stress depth %u ] written %llu; read_next ok %llu overwritten %llu; read_frame ok %llu; "
              "read_slice ok %llu; torn unvalidated view_slice copies (control) %llu\n",
              kDepth, static_cast<unsigned long long>(written), static_cast<unsigned long long>(ctl->next_ok.load()),
              static_cast<unsigned long long>(ctl->next_overwritten.load()),
              static_cast<unsigned long long>(ctl->frame_ok.load()),
              static_cast<unsigned long long>(ctl->slice_ok.load()),
              static_cast<unsigned long long>(ctl->unvalidated_torn.load()));
}

TEST(RollingProcesses, NoTornFrameAcceptedWhileWriterLapsDepth2) { rolling_stress(2, 800ms); }
TEST(RollingProcesses, NoTornFrameAcceptedWhileWriterLapsDepth3) { rolling_stress(3, 800ms); }

// read_next on a plain stream (depth 1): only the newest frame exists.
TEST(RollingProcesses, PlainStreamReadNext) {
  test::TempStreamDir dir;
  auto s = Stream::create("plain", spec_of({64}, Dtype::u32));
  ASSERT_FALSE(s.rolling());
  Shared<ChildReport> rep;
  auto in = Stream::open("plain");
  EXPECT_EQ(in.tail(), 0u);
  std::vector<std::uint32_t> f(64);
  FrameInfo info;
  std::uint64_t skipped = 5;
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::would_block);
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped, 30ms).code(), Errc::timeout);

  ASSERT_EQ(test::reap(spawn_u32_writer("plain", 1, &*rep), 20), 0) << rep->describe();
  skipped = 5;
  ASSERT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::ok);
  EXPECT_EQ(info.cnt0, 1u);
  EXPECT_EQ(skipped, 0u);
  EXPECT_EQ(info.atime_ns, atime_of(1));
  EXPECT_TRUE(uniform(f, 1));
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);

  ASSERT_EQ(test::reap(spawn_u32_writer("plain", 3, &*rep), 20), 0) << rep->describe();
  EXPECT_EQ(in.read_next(bytes_of(f), &info, &skipped).code(), Errc::overwritten);
  EXPECT_EQ(info.cnt0, 4u);
  EXPECT_EQ(skipped, 2u);  // frames 2 and 3
  EXPECT_TRUE(uniform(f, 4));
  EXPECT_EQ(in.tail(), 4u);
  EXPECT_EQ(in.read_next(bytes_of(f)).code(), Errc::would_block);

  // The history calls on a plain stream (depth 1): slice 0 is the frame.
  EXPECT_EQ(in.slice_info(0).cnt0, 4u);
  EXPECT_EQ(in.slice_info(5).cnt0, 4u);
  std::fill(f.begin(), f.end(), 0u);
  EXPECT_EQ(in.read_slice(0, bytes_of(f), &info).code(), Errc::ok);
  EXPECT_EQ(info.cnt0, 4u);
  EXPECT_TRUE(uniform(f, 4));
  EXPECT_EQ(in.view_slice(0).data(), in.view().data());
  // read_frame on a plain stream: the newest frame only.
  EXPECT_EQ(in.read_frame(4, bytes_of(f), &info).code(), Errc::ok);
  EXPECT_TRUE(uniform(f, 4));
  EXPECT_EQ(in.read_frame(3, bytes_of(f)).code(), Errc::overwritten);
  EXPECT_EQ(in.read_frame(5, bytes_of(f)).code(), Errc::would_block);

  // A read_next with a timeout in another process wakes when a frame arrives from this one.
  struct Ctl {
    ChildReport rep;
    std::atomic<int> waiting{0};
  };
  Shared<Ctl> ctl;
  pid_t waiter = test::spawn([&] {
    auto r = Stream::open("plain");
    ChildReport* crep = &ctl->rep;
    std::vector<std::uint32_t> g(64);
    FrameInfo gi;
    std::uint64_t sk = 9;
    ctl->waiting.store(1);
    const Status st = r.read_next(bytes_of(g), &gi, &sk, 20s);
    SHMLINK_CHILD_CHECK(crep, st.ok(), static_cast<int>(st.code()));
    SHMLINK_CHILD_CHECK(crep, gi.cnt0 == 5 && sk == 0, gi.cnt0);
    SHMLINK_CHILD_CHECK(crep, uniform(g, 5), g[0]);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->waiting.load() == 1; }));
  std::this_thread::sleep_for(100ms);  // let it block (not needed for correctness)
  const std::vector<std::uint32_t> five(64, 5);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(five)).ok());
  EXPECT_EQ(test::reap(waiter, 30), 0) << ctl->rep.describe();
}

// A read-only handle (tools inspecting other users' streams) reads the history and follows
// the stream with read_next; a closed handle says so.
TEST(RollingProcesses, ReadOnlyHandleFollowsAndClosedHandleRefuses) {
  test::TempStreamDir dir;
  auto s = Stream::create("ro", rolling_spec({16}, Dtype::u32, 4));
  struct Ctl {
    ChildReport rep;
    std::atomic<int> ready{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    OpenOptions ro;
    ro.writable = false;
    auto in = Stream::open("ro", ro);
    SHMLINK_CHILD_CHECK(rep, in.rolling() && in.depth() == 4, in.depth());
    ctl->ready.store(1);
    std::vector<std::uint32_t> f(16);
    for (std::uint64_t k = 1; k <= 3; ++k) {
      FrameInfo info;
      const Status st = in.read_next(bytes_of(f), &info, nullptr, 20s);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(rep, info.cnt0 == k && uniform(f, k), info.cnt0);
    }
    SHMLINK_CHILD_CHECK(rep, in.read_frame(2, bytes_of(f)).ok() && uniform(f, 2), 0);
    SHMLINK_CHILD_CHECK(rep, in.slice_info(3).cnt0 == 3, in.slice_info(3).cnt0);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == 1 || !test::still_running(reader); }));
  for (std::uint32_t k = 1; k <= 3; ++k) {
    const std::vector<std::uint32_t> f(16, k);
    ASSERT_TRUE(s.write(std::span<const std::uint32_t>(f)).ok());
    std::this_thread::sleep_for(20ms);  // not needed: read_next keeps its own tail
  }
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();

  Stream gone = std::move(s);
  std::vector<std::uint32_t> f(16);
  EXPECT_EQ(s.read_next(bytes_of(f)).code(), Errc::closed);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(s.read_frame(1, bytes_of(f)).code(), Errc::closed);
  EXPECT_EQ(s.read_slice(1, bytes_of(f)).code(), Errc::closed);
  EXPECT_EQ(s.tail(), 0u);
  EXPECT_EQ(s.slice_info(1).cnt0, 0u);
  EXPECT_TRUE(s.view_slice(1).empty());
  EXPECT_EQ(gone.cnt0(), 3u);
}

// read_next on a plain stream against a full-speed writer in another process: every accepted
// frame is whole, ok is always tail + 1, overwritten accounts for the frames it skipped.
TEST(RollingProcesses, PlainStreamReadNextNoTornFrameAccepted) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kElems = 16 * 1024;
  auto s = Stream::create("plainstress", spec_of({kElems}, Dtype::u64));
  struct Ctl {
    ChildReport rep;
    std::atomic<int> ready{0}, writer_done{0};
    std::atomic<std::uint64_t> ok{0}, overwritten{0}, last{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    auto in = Stream::open("plainstress");
    std::vector<std::uint64_t> f(kElems);
    std::uint64_t tail = in.tail(), ok = 0, over = 0;
    ctl->ready.store(1);
    while (!(ctl->writer_done.load() == 1 && tail == in.cnt0())) {
      FrameInfo info;
      std::uint64_t skipped = 777;
      const Status st = in.read_next(bytes_of(f), &info, &skipped, 20ms);
      if (st.code() == Errc::would_block || st.code() == Errc::timeout || st.code() == Errc::torn ||
          st.code() == Errc::writer_active)
        continue;
      SHMLINK_CHILD_CHECK(rep, st.ok() || st.code() == Errc::overwritten, static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(rep, info.cnt0 == tail + skipped + 1, info.cnt0);
      SHMLINK_CHILD_CHECK(rep, st.ok() ? skipped == 0 : skipped >= 1, skipped);
      SHMLINK_CHILD_CHECK(rep, uniform(f, info.cnt0), static_cast<std::int64_t>(info.cnt0));
      (st.ok() ? ok : over) += 1;
      tail = info.cnt0;
    }
    ctl->ok.store(ok);
    ctl->overwritten.store(over);
    ctl->last.store(tail);
    return 0;
  });
  pid_t writer = test::spawn([&] {
    auto out = Stream::open("plainstress");
    SHMLINK_CHILD_CHECK(&ctl->rep, test::wait_until([&] { return ctl->ready.load() == 1; }), 0);
    std::vector<std::uint64_t> f(kElems);
    const auto end = std::chrono::steady_clock::now() + 1000ms;
    while (std::chrono::steady_clock::now() < end) {
      std::fill(f.begin(), f.end(), out.cnt0() + 1);
      SHMLINK_CHILD_CHECK(&ctl->rep, out.write(std::span<const std::uint64_t>(f)).ok(), 0);
    }
    ctl->writer_done.store(1);
    return 0;
  });
  EXPECT_EQ(test::reap(writer, 60), 0) << ctl->rep.describe();
  ctl->writer_done.store(1);
  EXPECT_EQ(test::reap(reader, 60), 0) << ctl->rep.describe();
  EXPECT_EQ(ctl->last.load(), s.cnt0());
  EXPECT_GT(ctl->ok.load() + ctl->overwritten.load(), 10u);
}

// A reader blocked in read_next learns that the stream was re-created (Errc::replaced).
TEST(RollingProcesses, ReadNextReportsReplacedStream) {
  test::TempStreamDir dir;
  auto s = Stream::create("rep", rolling_spec({16}, Dtype::u32, 4));
  struct Ctl {
    ChildReport rep;
    std::atomic<int> waiting{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    auto in = Stream::open("rep");
    std::vector<std::uint32_t> f(16);
    ctl->waiting.store(1);
    const Status st = in.read_next(bytes_of(f), nullptr, nullptr, 20s);
    SHMLINK_CHILD_CHECK(&ctl->rep, st.code() == Errc::replaced, static_cast<int>(st.code()));
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->waiting.load() == 1; }));
  std::this_thread::sleep_for(100ms);  // let it block (the result is the same if it has not yet)
  auto again = Stream::create("rep", rolling_spec({16}, Dtype::u32, 4), OpenMode::PurgeAndCreate);
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
}

// DAO's FIFO through Shm<T> (reference 16.3, 16.5, 17.7): depth-4 sequential reads in another
// process, a lap of 10 writes, NOTREADY, check_segment_overwrite at its boundary, the per-slice
// getters and get_arbitrary_frame.
TEST(DaoFifo, SequentialOverwriteNotReadyAndSegmentChecksAcrossProcesses) {
  test::TempStreamDir dir;
  Shm<float> w("fifo", Shape{4, 8}, nullptr, 4);  // 4 rows of 8, depth 4
  EXPECT_EQ(w.get_depth(), 4u);
  EXPECT_EQ(w.get_shape(), (Shape{4, 8}));
  EXPECT_EQ(w.get_element_count(), 32u);
  EXPECT_EQ(w.stream().frame_shape()[0], 8u);  // ISIO order: x first
  struct Ctl {
    ChildReport rep;
    std::atomic<int> reader_step{0}, writer_step{0};
  };
  Shared<Ctl> ctl;
  auto frame = [](float k) { return std::vector<float>(32, k); };

  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    Shm<float> r("fifo");
    SHMLINK_CHILD_CHECK(rep, r.get_shape() == (Shape{4, 8}) && r.get_depth() == 4, r.get_depth());
    SHMLINK_CHILD_CHECK(rep, r.check_segment_overwrite() == kDaoSuccess, 0);
    std::int_fast8_t status = 99;
    std::uint64_t c = 0;
    ctl->reader_step.store(1);
    for (std::uint64_t k = 1; k <= 4; ++k) {  // waits for each (DAO wait = true)
      const float* p = r.get_next_frame(true, status, c);
      SHMLINK_CHILD_CHECK(rep, p != nullptr && status == kDaoSuccess, status);
      SHMLINK_CHILD_CHECK(rep, c == k, c);
      SHMLINK_CHILD_CHECK(rep, std::all_of(p, p + 32, [k](float v) { return v == static_cast<float>(k); }), p[0]);
    }
    SHMLINK_CHILD_CHECK(rep, r.get_next_frame(false, status, c) == nullptr && status == kDaoNotReady, status);
    ctl->reader_step.store(2);
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->writer_step.load() == 2; }), 0);
    // 10 frames were written into depth 4: lapped, the newest is returned, cnt0 jumped by 10.
    const float* p = r.get_next_frame(false, status, c);
    SHMLINK_CHILD_CHECK(rep, p != nullptr && status == kDaoOverwrite, status);
    SHMLINK_CHILD_CHECK(rep, c == 14, c);
    SHMLINK_CHILD_CHECK(rep, p[0] == 14.0f && p[31] == 14.0f, p[0]);
    SHMLINK_CHILD_CHECK(rep, r.check_segment_overwrite() == kDaoSuccess, 0);
    SHMLINK_CHILD_CHECK(rep, r.get_next_frame(false, status, c) == nullptr && status == kDaoNotReady, status);
    ctl->reader_step.store(3);
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->writer_step.load() == 3; }), 0);
    // Frames 15..17: frame 14's slice is untouched until frame 18.
    SHMLINK_CHILD_CHECK(rep, r.check_segment_overwrite() == kDaoSuccess, r.get_counter());
    ctl->reader_step.store(4);
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->writer_step.load() == 4; }), 0);
    SHMLINK_CHILD_CHECK(rep, r.check_segment_overwrite() == kDaoOverwrite, r.get_counter());
    // ... but frame 15, the next one, is still in the buffer (it is the oldest of 15..18).
    for (std::uint64_t k = 15; k <= 18; ++k) {
      p = r.get_next_frame(false, status, c);
      SHMLINK_CHILD_CHECK(rep, p != nullptr && status == kDaoSuccess, status);
      SHMLINK_CHILD_CHECK(rep, c == k && p[0] == static_cast<float>(k), c);
    }
    SHMLINK_CHILD_CHECK(rep, r.get_next_frame(false, status) == nullptr && status == kDaoNotReady, status);
    // Per-slice getters: frame k sits in slice k % 4.
    for (std::uint32_t idx = 0; idx < 4; ++idx) {
      const std::uint64_t k = idx == 3 ? 15 : 16 + idx;
      SHMLINK_CHILD_CHECK(rep, r.get_counter(idx) == k, r.get_counter(idx));
      SHMLINK_CHILD_CHECK(rep, r.get_counter(idx + 4) == k, idx);
      const float* a = r.get_arbitrary_frame(idx);
      SHMLINK_CHILD_CHECK(rep, a != nullptr && a[0] == static_cast<float>(k) && a[31] == static_cast<float>(k), idx);
      SHMLINK_CHILD_CHECK(rep, r.get_arbitrary_frame(idx + 4) == a, idx);
      SHMLINK_CHILD_CHECK(rep, r.get_timestamp(idx) > 0, idx);
    }
    SHMLINK_CHILD_CHECK(rep, r.get_counter() == 18 && r.get_cnt1() == 2, r.get_cnt1());
    // reset_tail: nothing new afterwards.
    r.stream().set_tail(15);
    r.reset_tail();
    SHMLINK_CHILD_CHECK(rep, r.stream().tail() == 18, r.stream().tail());
    SHMLINK_CHILD_CHECK(rep, r.get_next_frame(false, status) == nullptr && status == kDaoNotReady, status);
    return 0;
  });

  ASSERT_TRUE(test::wait_until([&] { return ctl->reader_step.load() >= 1 || !test::still_running(reader); }));
  for (int k = 1; k <= 4; ++k) w.set_frame(frame(static_cast<float>(k)).data());
  ctl->writer_step.store(1);
  ASSERT_TRUE(test::wait_until([&] { return ctl->reader_step.load() >= 2 || !test::still_running(reader); }));
  for (int k = 5; k <= 14; ++k) w.set_frame(frame(static_cast<float>(k)).data());
  ctl->writer_step.store(2);
  ASSERT_TRUE(test::wait_until([&] { return ctl->reader_step.load() >= 3 || !test::still_running(reader); }));
  for (int k = 15; k <= 17; ++k) w.set_frame(frame(static_cast<float>(k)).data());
  ctl->writer_step.store(3);
  ASSERT_TRUE(test::wait_until([&] { return ctl->reader_step.load() >= 4 || !test::still_running(reader); }));
  w.set_frame(frame(18.0f).data());
  ctl->writer_step.store(4);
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
  EXPECT_EQ(w.get_counter(), 18u);
}

// Shm<T> FIFO details in one process: a new reader's tail is the newest frame, the initial
// frame of the constructor is frame 1 in slice 1, opening with the wrong T fails.
TEST(DaoFifo, ConstructorFrameAndOpenChecks) {
  test::TempStreamDir dir;
  const std::vector<std::uint16_t> init(6 * 3, 7);
  Shm<std::uint16_t> w("fifo16", Shape{3, 6}, init.data(), 3);
  EXPECT_EQ(w.get_counter(), 1u);
  EXPECT_EQ(w.get_cnt1(), 1u);
  EXPECT_EQ(w.get_counter(1), 1u);
  EXPECT_EQ(w.get_counter(0), 0u);
  EXPECT_EQ(w.get_arbitrary_frame(1)[5], 7);
  Shm<std::uint16_t> r("fifo16");
  std::int_fast8_t status = 99;
  EXPECT_EQ(r.get_next_frame(false, status), nullptr);
  EXPECT_EQ(status, kDaoNotReady);
  const std::vector<std::uint16_t> next(18, 8);
  w.set_frame(next.data());
  std::uint64_t c = 0;
  const std::uint16_t* p = r.get_next_frame(false, status, c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(status, kDaoSuccess);
  EXPECT_EQ(c, 2u);
  EXPECT_EQ(p[17], 8);
  EXPECT_EQ(w.get_cnt1(), 2u);
  try {
    Shm<float> wrong("fifo16");
    ADD_FAILURE() << "opening a u16 stream as Shm<float> succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::dtype_mismatch);
  }
  EXPECT_THROW(Shm<float>("bad", Shape{2, 3, 4}, nullptr, 4), Error);  // depth needs 2 axes

  // check_segment_overwrite also reports a rewrite in progress: after depth - 1 more frames the
  // next write goes to the slice of the frame last read.
  c = r.stream().tail();
  ASSERT_EQ(c, 2u);
  w.set_frame(next.data());
  EXPECT_EQ(r.check_segment_overwrite(), kDaoSuccess);
  ASSERT_EQ(w.get_counter(), c + 1);
  w.set_frame(next.data());  // cnt0 = tail + depth - 1
  EXPECT_EQ(r.check_segment_overwrite(), kDaoSuccess);
  auto buf = w.stream().begin_write();  // now writing frame tail + depth into the tail's slice
  ASSERT_FALSE(buf.empty());
  EXPECT_EQ(r.check_segment_overwrite(), kDaoOverwrite);
  ASSERT_TRUE(w.stream().commit_write().ok());
  EXPECT_EQ(r.check_segment_overwrite(), kDaoOverwrite);
}

// Shm<T> with depth 1: get_next_frame on a plain stream.
TEST(DaoFifo, DepthOneGetNextFrame) {
  test::TempStreamDir dir;
  Shm<double> w("d1", Shape{2, 2});
  EXPECT_EQ(w.get_depth(), 1u);
  Shm<double> r("d1");
  std::int_fast8_t status = 99;
  std::uint64_t c = 0;
  EXPECT_EQ(r.get_next_frame(false, status, c), nullptr);
  EXPECT_EQ(status, kDaoNotReady);
  const std::vector<double> one(4, 1.0), two(4, 2.0), three(4, 3.0);
  w.set_frame(one.data());
  const double* p = r.get_next_frame(false, status, c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(status, kDaoSuccess);
  EXPECT_EQ(c, 1u);
  EXPECT_EQ(p[3], 1.0);
  w.set_frame(two.data());
  w.set_frame(three.data());
  p = r.get_next_frame(false, status, c);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(status, kDaoOverwrite);
  EXPECT_EQ(c, 3u);
  EXPECT_EQ(p[0], 3.0);
  EXPECT_EQ(r.get_next_frame(false, status), nullptr);
  EXPECT_EQ(status, kDaoNotReady);
}

}  // namespace
