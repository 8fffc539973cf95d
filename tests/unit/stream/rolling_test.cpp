// SPDX-License-Identifier: MIT
// Rolling buffers and partial writes in one process: geometry of the ISIO file, slice
// bookkeeping, sequential / arbitrary reads, packet bookkeeping and bad arguments.
// (Cross-process behaviour: tests/process/rolling_process_test.cpp, packet_process_test.cpp.)
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <sys/stat.h>

#include <cstring>
#include <numeric>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

/// A frame of `n` u32 elements all equal to `value`.
std::vector<std::uint32_t> frame_of(std::size_t n, std::uint32_t value) { return std::vector<std::uint32_t>(n, value); }

/// Reads a little-endian u64 from the mapped file.
std::uint64_t u64_at(const Stream& s, std::size_t off) {
  std::uint64_t v = 0;
  std::memcpy(&v, s.file_bytes().data() + off, 8);
  return v;
}

StreamSpec rolling_spec(std::vector<std::uint32_t> shape, std::uint32_t depth) {
  StreamSpec spec;
  spec.shape = std::move(shape);
  spec.dtype = Dtype::u32;
  spec.depth = depth;
  return spec;
}

TEST(Rolling, DepthMakesAThreeAxisTemporalCircularBuffer) {
  test::TempStreamDir dir;
  Stream s = Stream::create("roll", rolling_spec({6, 4}, 5));
  EXPECT_TRUE(s.rolling());
  EXPECT_EQ(s.depth(), 5U);
  EXPECT_EQ(std::vector<std::uint32_t>(s.shape().begin(), s.shape().end()), (std::vector<std::uint32_t>{6, 4, 5}));
  EXPECT_EQ(std::vector<std::uint32_t>(s.frame_shape().begin(), s.frame_shape().end()),
            (std::vector<std::uint32_t>{6, 4}));
  EXPECT_EQ(s.frame_elements(), 24U);
  EXPECT_EQ(s.frame_bytes(), 96U);
  EXPECT_EQ(s.data_bytes(), 480U);
  EXPECT_EQ(s.nelement(), 120U);
  const StreamInfo info = s.info();
  EXPECT_EQ(info.imagetype & 0xF000F, kImagetypeCircularBuffer | kImagetypeZaxisTemporal);
  EXPECT_EQ(info.depth, 5U);
  EXPECT_EQ(info.frame_bytes, 96U);
  EXPECT_EQ(info.data_bytes, 480U);
  // A 1-axis frame gets a unit y axis.
  Stream one = Stream::create("roll1", rolling_spec({7}, 3));
  EXPECT_EQ(std::vector<std::uint32_t>(one.shape().begin(), one.shape().end()), (std::vector<std::uint32_t>{7, 1, 3}));
  EXPECT_EQ(one.frame_bytes(), 28U);
  EXPECT_EQ(std::vector<std::uint32_t>(one.frame_shape().begin(), one.frame_shape().end()),
            (std::vector<std::uint32_t>{7}));
  // Re-opening sees the same geometry.
  Stream r = Stream::open("roll");
  EXPECT_TRUE(r.rolling());
  EXPECT_EQ(r.depth(), 5U);
  EXPECT_EQ(r.frame_bytes(), 96U);
}

TEST(Rolling, DepthZeroOrOneIsPlainAndThreeAxisFramesAreRejected) {
  test::TempStreamDir dir;
  EXPECT_FALSE(Stream::create("d1", rolling_spec({4, 4}, 1)).rolling());
  EXPECT_FALSE(Stream::create("d0", rolling_spec({4, 4, 2}, 0)).rolling());
  try {
    Stream::create("d3", rolling_spec({2, 2, 2}, 4));
    ADD_FAILURE() << "3-axis frame with depth accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("1 or 2 axes"), std::string::npos) << e.what();
  }
}

TEST(Rolling, WritesFillSlicesInOrderWithTemporalArrays) {
  test::TempStreamDir dir;
  Stream s = Stream::create("slices", rolling_spec({3}, 4));
  for (std::uint32_t i = 1; i <= 6; ++i)
    ASSERT_TRUE(s.write(std::span<const std::uint32_t>(frame_of(3, i)), {.atime_ns = 1000 * i}).ok());
  // Frame 1 went to slice 1 (ISIO convention), so frame k is in slice k % 4.
  EXPECT_EQ(s.cnt0(), 6U);
  EXPECT_EQ(s.cnt1(), 2U);
  for (std::uint32_t sl = 0; sl < 4; ++sl) {
    const FrameInfo f = s.slice_info(sl);
    const std::uint64_t k = sl < 3 ? sl + 4 : 3;  // slices hold frames 4, 5, 6, 3
    EXPECT_EQ(f.cnt0, k) << sl;
    EXPECT_EQ(f.atime_ns, static_cast<std::int64_t>(1000 * k)) << sl;
    auto v = s.view_slice(sl);
    std::uint32_t first = 0;
    std::memcpy(&first, v.data(), 4);
    EXPECT_EQ(first, k) << sl;
  }
  // cnt1 sits at ISIO's offset 272 for milk readers.
  EXPECT_EQ(u64_at(s, 272), 2U);
  // The newest frame is what read_copy and view give.
  std::vector<std::uint32_t> out(3);
  FrameInfo info;
  ASSERT_TRUE(s.read_copy(std::as_writable_bytes(std::span(out)), &info).ok());
  EXPECT_EQ(out, frame_of(3, 6));
  EXPECT_EQ(info.cnt0, 6U);
  EXPECT_EQ(info.cnt1, 2U);
  EXPECT_EQ(s.view_as<std::uint32_t>()[0], 6U);
}

TEST(Rolling, ReadFrameReachesTheHistoryAndReportsWhatIsGone) {
  test::TempStreamDir dir;
  Stream s = Stream::create("hist", rolling_spec({2}, 4));
  for (std::uint32_t i = 1; i <= 10; ++i) ASSERT_TRUE(s.write(std::span<const std::uint32_t>(frame_of(2, i))).ok());
  std::vector<std::uint32_t> out(2);
  auto bytes = std::as_writable_bytes(std::span(out));
  for (std::uint64_t k = 7; k <= 10; ++k) {
    FrameInfo f;
    ASSERT_EQ(s.read_frame(k, bytes, &f).code(), Errc::ok) << k;
    EXPECT_EQ(out[0], k);
    EXPECT_EQ(f.cnt0, k);
  }
  EXPECT_EQ(s.read_frame(6, bytes).code(), Errc::overwritten);
  EXPECT_EQ(s.read_frame(11, bytes).code(), Errc::would_block);
  EXPECT_EQ(s.read_frame(0, bytes).code(), Errc::would_block);
  ASSERT_TRUE(s.read_slice(1, bytes).ok());
  EXPECT_EQ(out[0], 9U);
}

TEST(Rolling, ReadNextFollowsAndDetectsALap) {
  test::TempStreamDir dir;
  Stream w = Stream::create("next", rolling_spec({2}, 4));
  Stream r = Stream::open("next");
  std::vector<std::uint32_t> out(2);
  auto bytes = std::as_writable_bytes(std::span(out));
  FrameInfo f;
  std::uint64_t skipped = 99;
  EXPECT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::would_block);
  for (std::uint32_t i = 1; i <= 3; ++i) ASSERT_TRUE(w.write(std::span<const std::uint32_t>(frame_of(2, i))).ok());
  for (std::uint32_t i = 1; i <= 3; ++i) {
    ASSERT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::ok);
    EXPECT_EQ(f.cnt0, i);
    EXPECT_EQ(out[0], i);
    EXPECT_EQ(skipped, 0U);
  }
  // 10 more frames into 4 slices: frames 4..9 are gone, the newest (13) comes back.
  for (std::uint32_t i = 4; i <= 13; ++i) ASSERT_TRUE(w.write(std::span<const std::uint32_t>(frame_of(2, i))).ok());
  ASSERT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::overwritten);
  EXPECT_EQ(f.cnt0, 13U);
  EXPECT_EQ(out[0], 13U);
  EXPECT_EQ(skipped, 9U);  // frames 4..12
  EXPECT_EQ(r.tail(), 13U);
  EXPECT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::would_block);
  EXPECT_EQ(r.read_next(bytes, &f, &skipped, 20ms).code(), Errc::timeout);
  // Replay what is still there.
  r.set_tail(13 - 3);
  for (std::uint64_t k = 11; k <= 13; ++k) {
    ASSERT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::ok) << k;
    EXPECT_EQ(out[0], k);
  }
}

TEST(Rolling, PlainStreamReadNextCountsSkippedFrames) {
  test::TempStreamDir dir;
  StreamSpec spec;
  spec.shape = {2};
  spec.dtype = Dtype::u32;
  Stream w = Stream::create("plainnext", spec);
  Stream r = Stream::open("plainnext");
  std::vector<std::uint32_t> out(2);
  auto bytes = std::as_writable_bytes(std::span(out));
  FrameInfo f;
  std::uint64_t skipped = 0;
  ASSERT_TRUE(w.write(std::span<const std::uint32_t>(frame_of(2, 1))).ok());
  EXPECT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::ok);
  for (std::uint32_t i = 2; i <= 4; ++i) ASSERT_TRUE(w.write(std::span<const std::uint32_t>(frame_of(2, i))).ok());
  EXPECT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::overwritten);
  EXPECT_EQ(skipped, 2U);
  EXPECT_EQ(out[0], 4U);
  EXPECT_EQ(r.read_next(bytes, &f, &skipped).code(), Errc::would_block);
}

TEST(Packets, OutOfOrderPacketsAssembleAndAreRecorded) {
  test::TempStreamDir dir;
  StreamSpec spec;
  spec.shape = {8, 2};
  spec.dtype = Dtype::u32;
  Stream w = Stream::create("cam", spec);
  Stream r = Stream::open("cam");
  std::vector<std::uint32_t> full(16);
  std::iota(full.begin(), full.end(), 100U);
  for (std::uint32_t p : {3U, 0U, 2U, 1U}) {
    ASSERT_TRUE(w.write_packet(p, 4, 4 * p, std::span<const std::uint32_t>(full.data() + 4 * p, 4)).ok()) << p;
    EXPECT_EQ(r.cnt0(), 0U) << "published before finalize";
  }
  EXPECT_TRUE(w.missing_packets().empty());
  ASSERT_EQ(w.finalize_packets({.frame_id = 77}).code(), Errc::ok);
  std::vector<std::uint32_t> out(16);
  ASSERT_TRUE(r.read_copy(std::as_writable_bytes(std::span(out))).ok());
  EXPECT_EQ(out, full);
  EXPECT_EQ(r.cnt2(), 77U);
  auto ps = r.packet_status();
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->cnt0, 1U);
  EXPECT_EQ(ps->total, 4U);
  EXPECT_TRUE(ps->complete());
  struct stat st {};
  EXPECT_EQ(::stat((dir.path() + "/cam_pkt.im.shm").c_str(), &st), 0) << "companion stream missing";

  // Next frame: packet 2 never comes.
  for (std::uint32_t p : {0U, 1U, 3U})
    ASSERT_TRUE(w.write_packet(p, 4, 4 * p, std::span<const std::uint32_t>(full.data() + 4 * p, 4)).ok());
  EXPECT_EQ(w.missing_packets(), std::vector<std::uint32_t>{2});
  EXPECT_EQ(w.finalize_packets().code(), Errc::incomplete);
  EXPECT_EQ(r.cnt0(), 2U);
  ps = r.packet_status(2);
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->missing, std::vector<std::uint32_t>{2});
  EXPECT_FALSE(r.packet_status(1).has_value()) << "a plain stream keeps the newest frame's record only";

  Stream::remove("cam");
  EXPECT_NE(::stat((dir.path() + "/cam_pkt.im.shm").c_str(), &st), 0) << "companion left behind";
}

TEST(Packets, BadArgumentsAreRefused) {
  test::TempStreamDir dir;
  StreamSpec spec;
  spec.shape = {8};
  spec.dtype = Dtype::u16;
  Stream w = Stream::create("bad", spec);
  const std::vector<std::uint16_t> four(4, 1);
  auto data = std::span<const std::uint16_t>(four);
  EXPECT_EQ(w.finalize_packets().code(), Errc::would_block);
  EXPECT_EQ(w.write_packet(0, 0, 0, data).code(), Errc::invalid_argument);
  EXPECT_EQ(w.write_packet(2, 2, 0, data).code(), Errc::invalid_argument);
  EXPECT_EQ(w.write_packet(0, kMaxPackets + 1, 0, data).code(), Errc::invalid_argument);
  EXPECT_EQ(w.write_packet(0, 2, 5, data).code(), Errc::out_of_range);
  EXPECT_EQ(w.write_packet(0, 2, 0, std::as_bytes(data).subspan(1)).code(), Errc::invalid_argument);
  EXPECT_EQ(w.write_packet(0, 2, 0, std::span<const std::uint32_t>()).code(), Errc::dtype_mismatch);
  ASSERT_TRUE(w.write_packet(0, 2, 0, data).ok());
  EXPECT_EQ(w.write_packet(1, 3, 4, data).code(), Errc::invalid_argument) << "total changed mid-frame";
  ASSERT_TRUE(w.write_packet(1, 2, 4, data).ok());
  EXPECT_TRUE(w.finalize_packets().ok());
}

TEST(Packets, RollingBufferKeepsEachFramesRecord) {
  test::TempStreamDir dir;
  Stream w = Stream::create("rollpkt", rolling_spec({4}, 3));
  const std::vector<std::uint32_t> two(2, 5);
  for (int frame = 1; frame <= 3; ++frame) {
    ASSERT_TRUE(w.write_packet(0, 2, 0, std::span<const std::uint32_t>(two)).ok());
    if (frame != 2) {
      ASSERT_TRUE(w.write_packet(1, 2, 2, std::span<const std::uint32_t>(two)).ok());
    }
    (void)w.finalize_packets();
  }
  Stream r = Stream::open("rollpkt");
  ASSERT_TRUE(r.packet_status(3).has_value());
  ASSERT_TRUE(r.packet_status(1).has_value());
  EXPECT_TRUE(r.packet_status(1)->complete());
  ASSERT_TRUE(r.packet_status(2).has_value());
  EXPECT_EQ(r.packet_status(2)->missing, std::vector<std::uint32_t>{1});
  EXPECT_TRUE(r.packet_status(3)->complete());
}

}  // namespace
