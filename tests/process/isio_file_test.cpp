// SPDX-License-Identifier: MIT
// shmlink against stream files laid out and written exactly as ImageStreamIO 2.00 makes them
// (tests/common/isio_file.hpp, written from the ISIO rules, not from the library), issue 18
// items 2-4: a CIRCULAR_BUFFER stream without the temporal bit is a rolling buffer for reading
// and writing; every semaphore count ISIO accepts (129, 0) opens and works; string keywords hold
// 16 characters. The ISIO writer runs in a child process.
//
// Convention: the frame whose cnt0 is k has every element equal to k.
#include "isio_file.hpp"
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::IsioFile;
using test::IsioSpec;

std::vector<std::byte> frame_of(std::size_t bytes, std::uint32_t k) {
  std::vector<std::uint32_t> v(bytes / 4, k);
  std::vector<std::byte> out(bytes);
  std::memcpy(out.data(), v.data(), bytes);
  return out;
}

bool holds(std::span<const std::byte> bytes, std::uint32_t k) {
  std::vector<std::uint32_t> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return !v.empty() && std::all_of(v.begin(), v.end(), [k](std::uint32_t x) { return x == k; });
}

/// A 4 x 2 uint32 frame in `depth` slices with imagetype CIRCULAR_BUFFER alone (0x1: no z-axis
/// bits, so ImageStreamIO sizes no temporal arrays), as ImageStreamIO_createIm is asked for it.
IsioSpec circular_buffer_4x2(std::uint32_t depth) {
  IsioSpec spec;
  spec.naxis = 3;
  spec.size[0] = 4;
  spec.size[1] = 2;
  spec.size[2] = depth;
  spec.imagetype = kImagetypeCircularBuffer;
  return spec;
}

/// An 8 x 8 uint32 image with `semaphores` slots, as ImageStreamIO_createIm is asked for it.
IsioSpec image_with_semaphores(std::uint16_t semaphores) {
  IsioSpec spec;
  spec.size[0] = 8;
  spec.size[1] = 8;
  spec.semaphores = semaphores;
  return spec;
}

std::string path_of(const test::TempStreamDir& dir, const std::string& name) {
  return dir.path() + "/" + name + ".im.shm";
}

// Item 2: ImageStreamIO treats a 3-axis stream whose imagetype & 0xF is CIRCULAR_BUFFER as a
// rolling buffer with or without ZAXIS_TEMPORAL (writeIndex / readLastWroteIndex). Before the
// fix shmlink required 0x20001: it showed depth 1, read the whole cube, and its write left cnt1
// alone, so ISIO's reader found the wrong slice.
TEST(IsioFile, CircularBufferWithoutTemporalBitIsARollingBufferForReadersAndWriters) {
  test::TempStreamDir dir;
  IsioFile file(path_of(dir, "cb"), circular_buffer_4x2(5));
  ASSERT_EQ(file.slice_bytes(), 32u);

  // An ISIO writer process publishes frames 1..7: slices 1, 2, 3, 4, 0, 1, 2.
  const pid_t writer = test::spawn([&] {
    for (std::uint32_t k = 1; k <= 7; ++k) file.write_frame(frame_of(file.slice_bytes(), k));
    return 0;
  });
  ASSERT_EQ(test::reap(writer, 20), 0);
  ASSERT_EQ(file.cnt0(), 7u);
  ASSERT_EQ(file.cnt1(), 2u);

  auto s = Stream::open("cb");
  EXPECT_TRUE(s.rolling());
  EXPECT_EQ(s.depth(), 5u);
  EXPECT_EQ(s.frame_bytes(), 32u);
  EXPECT_EQ(s.frame_elements(), 8u);
  ASSERT_EQ(s.frame_shape().size(), 2u);
  EXPECT_EQ(s.frame_shape()[0], 4u);
  EXPECT_EQ(s.frame_shape()[1], 2u);
  const StreamInfo info = s.info();
  EXPECT_EQ(info.depth, 5u);
  EXPECT_TRUE(info.rolling);
  EXPECT_EQ(info.frame_bytes, 32u);

  // The newest frame is slice cnt1, by copy and by view.
  std::vector<std::byte> out(s.frame_bytes());
  FrameInfo f;
  ASSERT_TRUE(s.read_copy(out, &f).ok());
  EXPECT_TRUE(holds(out, 7));
  EXPECT_EQ(f.cnt0, 7u);
  EXPECT_TRUE(holds(s.view(), 7));
  // The history: frames 3..7 are in the buffer (depth 5), frame 2 is gone.
  for (std::uint32_t k = 3; k <= 7; ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    ASSERT_TRUE(s.read_frame(k, out, &f).ok());
    EXPECT_TRUE(holds(out, k));
    EXPECT_EQ(f.cnt0, k);
    EXPECT_EQ(f.cnt1, k % 5);
    EXPECT_EQ(s.slice_info(k % 5).cnt0, k);
  }
  EXPECT_EQ(s.read_frame(2, out).code(), Errc::overwritten);
  EXPECT_EQ(s.read_frame(8, out).code(), Errc::would_block);
  ASSERT_TRUE(s.read_slice(4, out, &f).ok());
  EXPECT_TRUE(holds(out, 4));
  EXPECT_EQ(f.cnt0, 4u);
  // read_next walks the history in order from the tail.
  s.set_tail(2);
  for (std::uint32_t k = 3; k <= 7; ++k) {
    std::uint64_t skipped = 99;
    ASSERT_TRUE(s.read_next(out, &f, &skipped).ok()) << k;
    EXPECT_EQ(f.cnt0, k);
    EXPECT_EQ(skipped, 0u);
    EXPECT_TRUE(holds(out, k));
  }
  EXPECT_EQ(s.read_next(out).code(), Errc::would_block);

  // A shmlink write goes to slice (cnt1 + 1) % 5 = 3 and advances cnt1 there: ISIO's reader
  // (readLastWroteIndex = cnt1) finds it. The file keeps its imagetype and size.
  ASSERT_TRUE(s.write(frame_of(32, 8)).ok());
  EXPECT_EQ(file.cnt0(), 8u);
  EXPECT_EQ(file.cnt1(), 3u);
  EXPECT_TRUE(holds(file.newest_frame(), 8));
  EXPECT_EQ(file.get<std::uint64_t>(144), kImagetypeCircularBuffer);
  std::uint64_t skipped = 0;
  ASSERT_EQ(s.read_next(out, &f, &skipped).code(), Errc::ok);
  EXPECT_EQ(f.cnt0, 8u);
  EXPECT_TRUE(holds(out, 8));

  // And the ISIO writer continues after shmlink's frame: slice 4, then 0.
  const pid_t again = test::spawn([&] {
    file.write_frame(frame_of(32, 9));
    file.write_frame(frame_of(32, 10));
    return 0;
  });
  ASSERT_EQ(test::reap(again, 20), 0);
  EXPECT_EQ(file.cnt1(), 0u);
  ASSERT_TRUE(s.read_next(out, &f, &skipped).ok());
  EXPECT_EQ(f.cnt0, 9u);
  EXPECT_TRUE(holds(out, 9));
  ASSERT_TRUE(s.read_copy(out, &f).ok());
  EXPECT_EQ(f.cnt0, 10u);
  EXPECT_TRUE(holds(out, 10));
}

// Item 2 against a hostile peer: without per-slice arrays every placement comes from cnt0 and
// cnt1, which any co-user can scribble. Every read ends with a status from the expected set,
// inside the mapping, and a frame it returns names a slice of the buffer. A cnt1 outside the
// buffer places nothing: the reads say layout, the views of the newest frame are empty (item 3).
// A cnt0 near 2^64 makes the history validation (cnt0 + write < k + depth) fail: torn, never a
// frame.
TEST(IsioFile, CircularBufferWithoutTemporalBitSurvivesScribbledCounters) {
  test::TempStreamDir dir;
  IsioFile file(path_of(dir, "scrib"), circular_buffer_4x2(3));
  auto s = Stream::open("scrib");
  ASSERT_TRUE(s.rolling());
  ASSERT_EQ(s.depth(), 3u);
  std::vector<std::byte> out(s.frame_bytes());
  const std::uint64_t big = ~std::uint64_t{0};
  const auto in = [](Status st, std::initializer_list<Errc> allowed) {
    return std::find(allowed.begin(), allowed.end(), st.code()) != allowed.end();
  };
  for (const auto& [c0, c1] : {std::pair{big, big}, std::pair{big - 1, std::uint64_t{7}}, std::pair{std::uint64_t{2}, big},
                              std::pair{std::uint64_t{0}, std::uint64_t{5}}, std::pair{big, std::uint64_t{1}},
                              std::pair{std::uint64_t{2}, std::uint64_t{0}}, std::pair{std::uint64_t{0}, std::uint64_t{2}}}) {
    SCOPED_TRACE("cnt0 " + std::to_string(c0) + " cnt1 " + std::to_string(c1));
    file.put<std::uint64_t>(264, c0);
    file.put<std::uint64_t>(272, c1);
    const bool placed = c1 < 3;  // cnt1 names a slice
    FrameInfo f;
    f.cnt1 = 99;
    s.set_tail(0);
    const Status newest = s.read_copy(out, &f);
    if (placed) {
      EXPECT_EQ(newest.code(), Errc::ok);
      EXPECT_EQ(f.cnt0, c0);
      EXPECT_EQ(f.cnt1, c1);
      EXPECT_EQ(s.view().size(), s.frame_bytes());
      EXPECT_EQ(s.rolling_layout_error(), "");
    } else {
      EXPECT_EQ(newest.code(), Errc::layout);
      EXPECT_TRUE(s.view().empty());
      EXPECT_NE(s.rolling_layout_error().find("cnt1 is " + std::to_string(c1)), std::string::npos)
          << s.rolling_layout_error();
    }
    for (std::uint32_t sl = 0; sl < 4; ++sl) {
      f = FrameInfo{};
      f.cnt1 = 99;
      const Status st = s.read_slice(sl, out, &f);
      EXPECT_TRUE(placed ? in(st, {Errc::ok, Errc::would_block, Errc::torn}) : st.code() == Errc::layout) << st.message();
      if (st.ok()) {
        EXPECT_EQ(f.cnt1, sl % 3);
      }
      const FrameInfo si = s.slice_info(sl);
      EXPECT_EQ(si.cnt1, sl % 3);
      if (!placed) {
        EXPECT_EQ(si.cnt0, 0u);
      }
      EXPECT_EQ(s.view_slice(sl).size(), s.frame_bytes());
    }
    for (const std::uint64_t k : {c0, c0 - 1}) {
      f = FrameInfo{};
      f.cnt1 = 99;
      const Status st = s.read_frame(k, out, &f);
      EXPECT_TRUE(in(st, placed ? std::initializer_list<Errc>{Errc::ok, Errc::would_block, Errc::overwritten, Errc::torn}
                                : std::initializer_list<Errc>{Errc::layout, Errc::would_block}))
          << k << ": " << st.message();
      if (st.ok()) {
        EXPECT_EQ(f.cnt0, k);
        EXPECT_LT(f.cnt1, 3u);
      }
    }
    std::uint64_t skipped = 0;
    f = FrameInfo{};
    f.cnt1 = 99;
    const Status next = s.read_next(out, &f, &skipped);
    EXPECT_TRUE(in(next, placed ? std::initializer_list<Errc>{Errc::ok, Errc::overwritten, Errc::would_block, Errc::torn}
                                : std::initializer_list<Errc>{Errc::layout, Errc::would_block}))
        << next.message();
    if (next.ok() || next.code() == Errc::overwritten) {
      EXPECT_LT(f.cnt1, 3u);
    }
    EXPECT_EQ(out.size(), s.frame_bytes());
    // A write goes to slice (cnt1 + 1) % 3, as ISIO's writeIndex: cnt1 is inside the buffer again.
    ASSERT_TRUE(s.write(frame_of(s.frame_bytes(), 1)).ok());
    EXPECT_EQ(file.cnt1(), (c1 + 1) % 3);
    EXPECT_EQ(s.read_copy(out, &f).code(), Errc::ok);
    EXPECT_TRUE(holds(out, 1));
  }
}

// Item 3 of the review: when cnt1 names no slice (cnt1 >= size[2]) ImageStreamIO's
// readLastWroteBuffer fails (readBufferAt refuses the index). shmlink read slice cnt1 % depth
// instead and called it the newest frame: here slice 0, holding frame 3, reported as frame 4.
// Now the newest-frame read is a layout error naming the stream and the values, with or without
// the temporal arrays, and never another slice.
TEST(IsioFile, ANewestFrameReadWithCnt1OutsideTheBufferIsALayoutErrorNotAnotherSlice) {
  test::TempStreamDir dir;
  IsioFile file(path_of(dir, "lost"), circular_buffer_4x2(3));
  const pid_t writer = test::spawn([&] {
    for (std::uint32_t k = 1; k <= 4; ++k) file.write_frame(frame_of(file.slice_bytes(), k));  // slices 1, 2, 0, 1
    return 0;
  });
  ASSERT_EQ(test::reap(writer, 20), 0);
  auto s = Stream::open("lost");
  std::vector<std::byte> out(s.frame_bytes());
  FrameInfo f;
  ASSERT_TRUE(s.read_copy(out, &f).ok());
  EXPECT_TRUE(holds(out, 4));
  file.put<std::uint64_t>(272, 3);  // a co-user scribbles cnt1: 3 % 3 would be slice 0 (frame 3)
  EXPECT_EQ(s.read_copy(out, &f).code(), Errc::layout);
  EXPECT_EQ(s.rolling_layout_error(),
            "stream 'lost': cnt1 is 3, outside the 3 slices of its rolling buffer (the newest frame's slice is unknown)");
  EXPECT_TRUE(s.view().empty());
  EXPECT_EQ(s.read_frame(4, out, &f).code(), Errc::layout);
  EXPECT_EQ(s.read_slice(0, out, &f).code(), Errc::layout);
  s.set_tail(3);
  EXPECT_EQ(s.read_next(out, &f).code(), Errc::layout);
  // The next write repairs it, as ISIO's writeIndex does: slice (3 + 1) % 3 = 1.
  ASSERT_TRUE(s.write(frame_of(s.frame_bytes(), 5)).ok());
  EXPECT_EQ(file.cnt1(), 1u);
  ASSERT_TRUE(s.read_copy(out, &f).ok());
  EXPECT_EQ(f.cnt0, 5u);
  EXPECT_TRUE(holds(out, 5));
  EXPECT_EQ(s.rolling_layout_error(), "");

  // With the temporal arrays (a shmlink rolling buffer) the newest frame is refused the same way.
  StreamSpec spec = test::spec_of({4, 2}, Dtype::u32);
  spec.depth = 3;
  auto t = Stream::create("temporal", spec);
  for (std::uint32_t k = 1; k <= 4; ++k) ASSERT_TRUE(t.write(frame_of(t.frame_bytes(), k)).ok());
  ASSERT_TRUE(t.read_copy(out, &f).ok());
  EXPECT_TRUE(holds(out, 4));
  {  // the scribbling co-user: cnt1 (offset 272) = 3, through the file
    const int fd = ::open(path_of(dir, "temporal").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const std::uint64_t three = 3;
    EXPECT_EQ(::pwrite(fd, &three, sizeof three, 272), static_cast<ssize_t>(sizeof three));
    ::close(fd);
  }
  EXPECT_EQ(t.read_copy(out, &f).code(), Errc::layout);
  EXPECT_TRUE(t.view().empty());
  // Its history frames are still placed by their cntarray entries.
  ASSERT_TRUE(t.read_slice(0, out, &f).ok());
  EXPECT_EQ(f.cnt0, 3u);
  EXPECT_TRUE(holds(out, 3));
}

// Item 2 under load: an ISIO-order writer process (tests/common/isio_file.hpp) fills a 0x1
// rolling buffer (no temporal arrays: every frame placed by cnt0 and cnt1 alone) at full speed
// while this process reads with read_next, read_frame and read_slice. Every frame a read returns
// holds its own cnt0 in every element, read_next's cnt0 never goes back, and every status is one
// a reader of a live stream can get (no layout, no size or closed errors). The writer runs until
// the reader has made 2000 rounds and seen 3000 frames (or 2^20 frames, or 10 s), then the reader
// catches up to its last frame.
TEST(IsioFile, CircularBufferWithoutTemporalBitReadsWholeFramesWhileAnIsioWriterRuns) {
  test::TempStreamDir dir;
  IsioSpec spec = circular_buffer_4x2(4);
  spec.size[0] = 64;  // 64 x 64 uint32: 16 KiB frames, so copies and writes overlap
  spec.size[1] = 64;
  IsioFile file(path_of(dir, "live"), spec);
  int go[2], stop[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(stop), 0);
  const pid_t writer = test::spawn([&] {
    char byte = 0;
    if (::read(go[0], &byte, 1) != 1) return 2;
    std::vector<std::byte> frame;
    for (std::uint32_t k = 1; k <= (1u << 20); ++k) {
      frame = frame_of(file.slice_bytes(), k);
      file.write_frame(frame);
      pollfd p{stop[0], POLLIN, 0};
      if (k % 64 == 0 && ::poll(&p, 1, 0) == 1) break;
    }
    return 0;
  });
  auto s = Stream::open("live");
  ASSERT_EQ(s.depth(), 4u);
  std::vector<std::byte> out(s.frame_bytes());
  const auto in = [](Status st, std::initializer_list<Errc> allowed) {
    return std::find(allowed.begin(), allowed.end(), st.code()) != allowed.end();
  };
  // Statuses a reader of a live buffer may get: a frame, a lapped reader, nothing new yet, a copy
  // that kept colliding with writes, a writer descheduled mid-write on a loaded machine.
  const std::initializer_list<Errc> live = {Errc::ok, Errc::overwritten, Errc::would_block, Errc::torn,
                                            Errc::writer_active};
  std::uint64_t last = 0;  // cnt0 of read_next's last frame
  std::uint64_t frames_ok = 0, bad = 0;
  const auto next_frame = [&]() -> Status {
    FrameInfo f;
    std::uint64_t skipped = 0;
    const Status st = s.read_next(out, &f, &skipped);
    if (st.ok() || st.code() == Errc::overwritten) {
      EXPECT_GT(f.cnt0, last) << "read_next went back";
      EXPECT_EQ(f.cnt0 - last - 1, skipped);
      last = f.cnt0;
      bad += !holds(out, static_cast<std::uint32_t>(f.cnt0));
      ++frames_ok;
    }
    return st;
  };
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (s.cnt0() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_GT(s.cnt0(), 0u) << "the writer process did not start";
  for (std::uint32_t round = 0; (round < 2000 || s.cnt0() < 3000) && std::chrono::steady_clock::now() < deadline;
       ++round) {
    const Status next = next_frame();
    ASSERT_TRUE(in(next, live)) << "read_next: " << next.message();
    FrameInfo f;
    const std::uint64_t c = s.cnt0();
    const std::uint64_t k = c > round % 4 ? c - round % 4 : 1;  // the newest frame or one up to 3 back
    const Status frame = s.read_frame(k, out, &f);
    ASSERT_TRUE(in(frame, live)) << "read_frame: " << frame.message();
    if (frame.ok()) {
      EXPECT_EQ(f.cnt0, k);
      bad += !holds(out, static_cast<std::uint32_t>(k));
      ++frames_ok;
    }
    const Status slice = s.read_slice(round % 4, out, &f);
    ASSERT_TRUE(in(slice, live)) << "read_slice: " << slice.message();
    if (slice.ok()) {
      EXPECT_EQ(f.cnt1, round % 4);
      bad += !holds(out, static_cast<std::uint32_t>(f.cnt0));
      ++frames_ok;
    }
  }
  ASSERT_EQ(::write(stop[1], "s", 1), 1);
  EXPECT_EQ(test::reap(writer, 20), 0);
  for (const int fd : {go[0], go[1], stop[0], stop[1]}) ::close(fd);
  // The writer is gone: read_next reaches its last frame, then has nothing new.
  for (int i = 0; i < 8 && next_frame().code() != Errc::would_block; ++i) {
  }
  EXPECT_EQ(last, file.cnt0()) << "read_next did not reach the last frame";
  EXPECT_EQ(bad, 0u) << "frames whose elements were not their cnt0 (torn or misplaced)";
  EXPECT_GT(frames_ok, 0u);
}

// Item 2, the rule itself: rolling exactly when ISIO's writeIndex would roll.
TEST(IsioFile, RollingIsTheLowNibbleCircularBufferOnThreeAxes) {
  EXPECT_TRUE(is_rolling_buffer(3, 0x1));
  EXPECT_TRUE(is_rolling_buffer(3, 0x10001));
  EXPECT_TRUE(is_rolling_buffer(3, 0x20001));
  EXPECT_FALSE(is_rolling_buffer(2, 0x20001));
  EXPECT_FALSE(is_rolling_buffer(3, 0x2));
  EXPECT_FALSE(is_rolling_buffer(3, 0x3));      // CIRCULAR_BUFFER | MATH_DATA: ISIO's test is == 1
  EXPECT_FALSE(is_rolling_buffer(3, 0x20000));
}

// Item 3: ISIO opens a stream with 129 semaphores; shmlink refused it ("sem is 129, at most 128
// supported"). Every slot must be usable: posted by a shmlink write and by an ISIO writer, waited
// on, seen in the PID arrays at the offsets ISIO computes; the last one claimed.
TEST(IsioFile, A129SemaphoreStreamOpensAndEverySlotWorks) {
  test::TempStreamDir dir;
  IsioFile file(path_of(dir, "many"), image_with_semaphores(129));

  auto s = Stream::open("many");
  EXPECT_EQ(s.semaphore_count(), 129);
  const StreamInfo info = s.info();
  EXPECT_EQ(info.semaphores, 129);
  ASSERT_EQ(info.sem_read_pids.size(), 129u);
  ASSERT_EQ(info.sem_values.size(), 129u);
  EXPECT_EQ(info.sem_read_pids[128], -1);

  // Slot 128 claimed: ISIO finds our pid in semReadPID[128].
  ASSERT_EQ(s.claim_semaphore(128), 128);
  EXPECT_EQ(file.get<std::int32_t>(file.offsets().sem_read_pid + 4 * 128), ::getpid());
  // A shmlink write posts all 129 slots (ISIO's sempost(-1)) and records semWritePID of each;
  // each slot then takes exactly one wait.
  ASSERT_TRUE(s.write(frame_of(256, 1)).ok());
  for (int i = 0; i < 129; ++i) {
    SCOPED_TRACE("slot " + std::to_string(i));
    int v = -1;
    ::sem_getvalue(file.sem(static_cast<std::size_t>(i)), &v);
    EXPECT_EQ(v, 1);
    EXPECT_EQ(file.get<std::int32_t>(file.offsets().sem_write_pid + 4 * static_cast<std::size_t>(i)), ::getpid());
    EXPECT_EQ(s.sem_value(i), 1);
    EXPECT_TRUE(s.sem_wait(i, 1s).ok());
    EXPECT_EQ(s.sem_value(i), 0);
  }
  // An ISIO writer in another process posts every slot; the shmlink reader waiting on each wakes.
  const pid_t writer = test::spawn([&] {
    file.write_frame(frame_of(256, 2));
    return 0;
  });
  for (int i = 0; i < 129; ++i) EXPECT_TRUE(s.sem_wait(i, 20s).ok()) << "slot " << i;
  ASSERT_EQ(test::reap(writer, 20), 0);
  EXPECT_EQ(s.cnt0(), 2u);
  for (int i = 0; i < 129; ++i) EXPECT_EQ(s.sem_value(i), 0) << "slot " << i;
  EXPECT_EQ(s.sem_wait(129, 1ms).code(), Errc::out_of_range);
  s.release_semaphore(128);
  EXPECT_EQ(file.get<std::int32_t>(file.offsets().sem_read_pid + 4 * 128), -1);
  EXPECT_EQ(s.reclaim_semaphores(), 0);
}

// Item 3: ISIO and milk's tools accept a stream without semaphore slots; shmlink opened such
// files but refused to create one ("0 semaphores, 1 to 128 allowed").
TEST(IsioFile, StreamsWithoutSemaphoresAreCreatedLaidOutAsIsioAndUsable) {
  test::TempStreamDir dir;
  StreamSpec spec = test::spec_of({8, 8}, Dtype::u32);
  spec.semaphores = 0;
  auto s = Stream::create("none", spec);
  EXPECT_EQ(s.semaphore_count(), 0);
  // Exactly ISIO's size for sem = 0: no slots, semlog, empty PID arrays.
  EXPECT_EQ(s.file_bytes().size(), test::isio_offsets(256, 0, 0, 0, false).file_size);
  ASSERT_TRUE(s.write(frame_of(256, 1)).ok());
  EXPECT_EQ(s.claim_semaphore(), -1);
  EXPECT_EQ(s.sem_wait(0, 1ms).code(), Errc::out_of_range);
  EXPECT_EQ(s.sem_value(0), -1);
  EXPECT_EQ(semaphore_index_error(0, 0, "none"), "stream 'none' has no semaphores");
  EXPECT_EQ(semaphore_index_error(12, 10, "wfs"), "semaphore 12 is outside 0..9 of stream 'wfs'");

  // And one ISIO made with sem = 0 opens.
  IsioFile file(path_of(dir, "isio0"), image_with_semaphores(0));
  auto o = Stream::open("isio0");
  EXPECT_EQ(o.semaphore_count(), 0);
  EXPECT_TRUE(o.info().sem_read_pids.empty());
}

// Item 4: an 'S' keyword holds 16 characters in ISIO (valstr is char[16], no NUL when full);
// shmlink refused to write more than 15.
TEST(IsioFile, StringKeywordsHoldSixteenCharactersBothWays) {
  test::TempStreamDir dir;
  IsioSpec spec;
  spec.size[0] = 4;
  spec.keywords = 2;
  IsioFile file(path_of(dir, "kw"), spec);
  auto s = Stream::open("kw");
  const std::string sixteen = "0123456789ABCDEF";
  s.set_keyword("CAMERA", sixteen, "model");
  // The bytes ISIO reads: type 'S', 16 value bytes filling the field, no terminator.
  const std::size_t kw0 = file.offsets().keywords;
  EXPECT_EQ(file.get<char>(kw0 + 16), 'S');
  const auto value = file.get<std::array<char, 16>>(kw0 + 24);
  EXPECT_EQ(std::string(value.data(), value.size()), sixteen);
  EXPECT_EQ(std::get<std::string>(*Stream::open("kw").keyword("CAMERA")), sixteen);
  // A 16-character value written by ISIO (strncpy into valstr) reads back whole.
  const std::size_t kw1 = kw0 + 128;
  const std::array<char, 16> name{'F', 'I', 'L', 'T', 'E', 'R'};
  file.put(kw1, name);
  file.put<char>(kw1 + 16, 'S');
  const std::string other = "abcdefghijklmnop";
  for (std::size_t i = 0; i < 16; ++i) file.put<char>(kw1 + 24 + i, other[i]);
  EXPECT_EQ(std::get<std::string>(*s.keyword("FILTER")), other);
  // 17 do not fit.
  try {
    s.set_keyword("CAMERA", sixteen + "X");
    ADD_FAILURE() << "a 17-byte string keyword was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::name_too_long);
    EXPECT_NE(std::string(e.what()).find("at most 16"), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::get<std::string>(*s.keyword("CAMERA")), sixteen);
}

}  // namespace
