// SPDX-License-Identifier: MIT
// Partial (packetised) writes between real processes: write_packet / missing_packets /
// finalize_packets in one process, read_copy / wait_futex / packet_status in another (reference
// 17.6 and 17.8; contract in include/shmlink/stream.hpp). Out-of-order assembly, no half-built
// frame ever accepted, missing packets published and reported, argument checks, rolling
// buffers, and the `<name>_pkt` companion stream.
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::ChildReport;
using test::Shared;
using test::spec_of;

constexpr std::uint32_t kElems = 512;  // frame: 64 x 8 u32
constexpr std::uint32_t kPackets = 8;
constexpr std::uint32_t kPacketElems = kElems / kPackets;

// The frame the packet tests assemble: element i = base + i (every element distinct).
std::vector<std::uint32_t> pattern(std::uint32_t base, std::uint32_t n = kElems) {
  std::vector<std::uint32_t> v(n);
  std::iota(v.begin(), v.end(), base);
  return v;
}

// Packet p of `frame` (kPacketElems elements at element p * kPacketElems).
Status send_packet(Stream& s, const std::vector<std::uint32_t>& frame, std::uint32_t p,
                   std::uint32_t total = kPackets) {
  const std::uint32_t n = static_cast<std::uint32_t>(frame.size()) / total;
  return s.write_packet(p, total, std::uint64_t{p} * n, std::span<const std::uint32_t>(frame.data() + p * n, n));
}

template <class T>
std::span<std::byte> bytes_of(std::vector<T>& v) {
  return std::as_writable_bytes(std::span(v));
}

std::vector<std::uint32_t> sorted(std::vector<std::uint32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// 8 packets in shuffled order (one of them sent twice, the second copy correct) assemble exactly
// the frame; a reader in another process, woken by the futex, copies it and sees it complete.
TEST(PacketProcesses, OutOfOrderPacketsAssembleTheFrame) {
  test::TempStreamDir dir;
  auto s = Stream::create("pk", spec_of({64, 8}, Dtype::u32));
  const std::vector<std::uint32_t> first(kElems, 7);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(first)).ok());
  const auto want = pattern(1000);
  constexpr std::int64_t kAtime = 1'700'000'000'123'456'789;
  struct Ctl {
    ChildReport rep;
    std::atomic<int> ready{0}, slot{-1};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    auto in = Stream::open("pk");
    // Woken the milk way: finalize_packets() posts the semaphores as commit_write() does.
    const int slot = in.claim_semaphore();
    SHMLINK_CHILD_CHECK(rep, slot >= 0, slot);
    in.sem_flush(slot);
    ctl->slot.store(slot);
    ctl->ready.store(1);
    const Status w = in.sem_wait(slot, 20s);
    SHMLINK_CHILD_CHECK(rep, w.ok() && in.cnt0() == 2, static_cast<int>(w.code()));
    std::vector<std::uint32_t> got(kElems);
    FrameInfo info;
    const Status st = in.read_copy(bytes_of(got), &info);
    SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
    SHMLINK_CHILD_CHECK(rep, info.cnt0 == 2, info.cnt0);
    SHMLINK_CHILD_CHECK(rep, info.atime_ns == kAtime, info.atime_ns);
    SHMLINK_CHILD_CHECK(rep, info.cnt2 == 77 && in.cnt2() == 77, info.cnt2);
    for (std::uint32_t i = 0; i < kElems; ++i) SHMLINK_CHILD_CHECK(rep, got[i] == want[i], i);
    const auto ps = in.packet_status(2);
    SHMLINK_CHILD_CHECK(rep, ps.has_value(), 0);
    SHMLINK_CHILD_CHECK(rep, ps->cnt0 == 2 && ps->total == kPackets, ps->total);
    SHMLINK_CHILD_CHECK(rep, ps->complete() && ps->missing.empty(), ps->missing.size());
    const auto newest = in.packet_status();  // 0: the newest frame
    SHMLINK_CHILD_CHECK(rep, newest.has_value() && newest->cnt0 == 2 && newest->complete(), 0);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == 1; }));
  EXPECT_TRUE(s.missing_packets().empty());  // no frame open
  const std::uint32_t order[kPackets] = {5, 2, 7, 0, 3, 6, 1, 4};
  std::vector<std::uint32_t> outstanding(kPackets);
  std::iota(outstanding.begin(), outstanding.end(), 0u);
  const auto junk = pattern(50'000);
  ASSERT_TRUE(send_packet(s, junk, 3).ok());  // packet 3 first with wrong data, rewritten below
  outstanding.erase(std::find(outstanding.begin(), outstanding.end(), 3u));
  EXPECT_EQ(sorted(s.missing_packets()), outstanding);
  EXPECT_TRUE(s.write_flag());  // the first packet opened the frame
  for (std::uint32_t p : order) {
    ASSERT_TRUE(send_packet(s, want, p).ok()) << "packet " << p;
    outstanding.erase(std::remove(outstanding.begin(), outstanding.end(), p), outstanding.end());
    EXPECT_EQ(sorted(s.missing_packets()), outstanding) << "after packet " << p;
    EXPECT_EQ(s.cnt0(), 1u);  // nothing published yet
  }
  EXPECT_EQ(s.sem_value(ctl->slot.load()), 0);  // packets post nothing
  WriteOptions opts;
  opts.atime_ns = kAtime;
  opts.frame_id = 77;
  EXPECT_EQ(s.finalize_packets(opts).code(), Errc::ok);
  EXPECT_EQ(s.cnt0(), 2u);
  EXPECT_FALSE(s.write_flag());
  EXPECT_TRUE(s.missing_packets().empty());
  EXPECT_EQ(s.finalize_packets().code(), Errc::would_block);  // nothing open any more
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
}

// While a packetised frame is open, a validated reader in another process never gets a mixed
// frame: read_copy returns writer_active (plain stream: the frame is assembled in place) or the
// previous frame whole; wait_futex sees no new cnt0 until finalize_packets().
TEST(PacketProcesses, ReaderNeverAcceptsAHalfAssembledFrame) {
  test::TempStreamDir dir;
  auto s = Stream::create("half", spec_of({64, 8}, Dtype::u32));
  const std::vector<std::uint32_t> first(kElems, 1);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(first)).ok());
  struct Ctl {
    ChildReport rep;
    std::atomic<int> opened{0}, checked{0};
    std::atomic<int> writer_active{0}, previous_whole{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    auto in = Stream::open("half");
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->opened.load() == 1; }), 0);
    std::vector<std::uint32_t> got(kElems);
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::fill(got.begin(), got.end(), 0xDEADu);
      FrameInfo info;
      const Status st = in.read_copy(bytes_of(got), &info);
      if (st.code() == Errc::writer_active) {
        ctl->writer_active.fetch_add(1);
      } else {
        SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
        SHMLINK_CHILD_CHECK(rep, info.cnt0 == 1, info.cnt0);
        for (std::uint32_t i = 0; i < kElems; ++i) SHMLINK_CHILD_CHECK(rep, got[i] == 1, i);
        ctl->previous_whole.fetch_add(1);
      }
    }
    SHMLINK_CHILD_CHECK(rep, in.cnt0() == 1, in.cnt0());
    const Status w = in.wait_futex(1, 50ms);
    SHMLINK_CHILD_CHECK(rep, w.code() == Errc::timeout, static_cast<int>(w.code()));
    ctl->checked.store(1);
    std::uint64_t c = 0;
    const Status w2 = in.wait_futex(1, 20s, &c);
    SHMLINK_CHILD_CHECK(rep, w2.ok() && c == 2, static_cast<int>(w2.code()));
    FrameInfo info;
    const Status st = in.read_copy(bytes_of(got), &info);
    SHMLINK_CHILD_CHECK(rep, st.ok() && info.cnt0 == 2, static_cast<int>(st.code()));
    const auto want = pattern(2000);
    for (std::uint32_t i = 0; i < kElems; ++i) SHMLINK_CHILD_CHECK(rep, got[i] == want[i], i);
    return 0;
  });
  const auto want = pattern(2000);
  for (std::uint32_t p = 0; p < kPackets / 2; ++p) ASSERT_TRUE(send_packet(s, want, p).ok());
  ctl->opened.store(1);
  ASSERT_TRUE(test::wait_until([&] { return ctl->checked.load() == 1 || !test::still_running(reader); }));
  for (std::uint32_t p = kPackets / 2; p < kPackets; ++p) ASSERT_TRUE(send_packet(s, want, p).ok());
  EXPECT_EQ(s.finalize_packets().code(), Errc::ok);
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
  EXPECT_EQ(ctl->writer_active.load() + ctl->previous_whole.load(), 2);
  std::printf("[ packets ] read_copy during an open packetised frame: writer_active %d, previous frame %d\n",
              ctl->writer_active.load(), ctl->previous_whole.load());
}

// A frame with a missing packet is still published (cnt0 advances), reported as incomplete; the
// missing region keeps the slot's previous bytes; a reader in another process, which opened the
// stream before any packet existed, sees exactly the missing id.
TEST(PacketProcesses, MissingPacketIsPublishedAndReported) {
  test::TempStreamDir dir;
  auto s = Stream::create("miss", spec_of({64, 8}, Dtype::u32));
  const std::vector<std::uint32_t> first(kElems, 1);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(first)).ok());
  struct Ctl {
    ChildReport rep;
    std::atomic<int> ready{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    auto in = Stream::open("miss");
    // No packet yet: no companion stream, no status (and the handle must look again later).
    SHMLINK_CHILD_CHECK(rep, !in.packet_status().has_value(), 0);
    ctl->ready.store(1);
    std::uint64_t c = 0;
    const Status w = in.wait_futex(1, 20s, &c);
    SHMLINK_CHILD_CHECK(rep, w.ok() && c == 2, static_cast<int>(w.code()));
    std::vector<std::uint32_t> got(kElems);
    FrameInfo info;
    const Status st = in.read_copy(bytes_of(got), &info);
    SHMLINK_CHILD_CHECK(rep, st.ok() && info.cnt0 == 2, static_cast<int>(st.code()));
    const auto want = pattern(3000);
    for (std::uint32_t i = 0; i < kElems; ++i) {
      const bool in_missing = i / kPacketElems == 5;
      SHMLINK_CHILD_CHECK(rep, got[i] == (in_missing ? 1u : want[i]), i);
    }
    const auto ps = in.packet_status(2);
    SHMLINK_CHILD_CHECK(rep, ps.has_value(), 0);
    SHMLINK_CHILD_CHECK(rep, ps->cnt0 == 2 && ps->total == kPackets && !ps->complete(), ps->total);
    SHMLINK_CHILD_CHECK(rep, ps->missing == std::vector<std::uint32_t>{5}, ps->missing.size());
    const auto newest = in.packet_status(0);
    SHMLINK_CHILD_CHECK(rep, newest.has_value() && newest->missing == std::vector<std::uint32_t>{5}, 0);
    // Frame 1 was a whole-frame write and is no longer the newest: no record.
    SHMLINK_CHILD_CHECK(rep, !in.packet_status(1).has_value(), 0);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == 1 || !test::still_running(reader); }));
  const auto want = pattern(3000);
  for (std::uint32_t p = 0; p < kPackets; ++p) {
    if (p == 5) continue;
    ASSERT_TRUE(send_packet(s, want, p).ok());
  }
  EXPECT_EQ(s.missing_packets(), std::vector<std::uint32_t>{5});
  EXPECT_EQ(s.cnt0(), 1u);
  EXPECT_EQ(s.finalize_packets().code(), Errc::incomplete);
  EXPECT_EQ(s.cnt0(), 2u);
  EXPECT_FALSE(s.write_flag());
  EXPECT_TRUE(s.missing_packets().empty());
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
  // The writer's own handle reports the same.
  const auto ps = s.packet_status(2);
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->missing, std::vector<std::uint32_t>{5});

  // A whole-frame write afterwards: the newest frame has no packet record.
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(first)).ok());
  EXPECT_FALSE(s.packet_status().has_value());
  EXPECT_FALSE(s.packet_status(3).has_value());
}

// Every documented argument error, none of which opens a frame; then the boundaries that are
// accepted (a packet ending exactly at the frame's end, kMaxPackets packets).
TEST(PacketProcesses, BadArgumentsAreRejectedWithoutOpeningAFrame) {
  test::TempStreamDir dir;
  auto s = Stream::create("args", spec_of({64, 8}, Dtype::u32));
  const auto data = pattern(0, kPacketElems);
  const std::span<const std::uint32_t> pkt(data);
  EXPECT_EQ(s.finalize_packets().code(), Errc::would_block);                 // nothing open
  EXPECT_EQ(s.write_packet(8, 8, 0, pkt).code(), Errc::invalid_argument);    // id >= total
  EXPECT_EQ(s.write_packet(9, 8, 0, pkt).code(), Errc::invalid_argument);
  EXPECT_EQ(s.write_packet(0, 0, 0, pkt).code(), Errc::invalid_argument);    // total 0
  EXPECT_EQ(s.write_packet(0, kMaxPackets + 1, 0, pkt).code(), Errc::invalid_argument);
  EXPECT_EQ(s.write_packet(0, 8, kElems - kPacketElems + 1, pkt).code(), Errc::out_of_range);
  EXPECT_EQ(s.write_packet(0, 8, kElems, pkt).code(), Errc::out_of_range);
  EXPECT_EQ(s.write_packet(0, 8, std::uint64_t{1} << 62, pkt).code(), Errc::out_of_range);  // no overflow
  const std::byte three[3]{};
  EXPECT_EQ(s.write_packet(0, 8, 0, std::span<const std::byte>(three)).code(), Errc::invalid_argument);
  const std::vector<float> floats(kPacketElems, 1.0f);
  EXPECT_EQ(s.write_packet(0, 8, 0, std::span<const float>(floats)).code(), Errc::dtype_mismatch);
  // None of these opened a frame or published anything.
  EXPECT_FALSE(s.write_flag());
  EXPECT_EQ(s.cnt0(), 0u);
  EXPECT_TRUE(s.missing_packets().empty());
  EXPECT_EQ(s.finalize_packets().code(), Errc::would_block);

  // A packet that ends exactly at the frame's end is fine; it opens the frame.
  ASSERT_EQ(s.write_packet(7, 8, kElems - kPacketElems, pkt).code(), Errc::ok);
  EXPECT_TRUE(s.write_flag());
  EXPECT_EQ(s.write_packet(0, 4, 0, pkt).code(), Errc::invalid_argument);  // total changed mid-frame
  EXPECT_EQ(s.write_packet(0, 8, kElems - 1, pkt).code(), Errc::out_of_range);
  EXPECT_EQ(sorted(s.missing_packets()), (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.finalize_packets().code(), Errc::incomplete);
  EXPECT_EQ(s.cnt0(), 1u);
  const auto ps1 = s.packet_status(1);
  ASSERT_TRUE(ps1.has_value());
  EXPECT_EQ(ps1->total, 8u);
  EXPECT_EQ(ps1->missing, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6}));

  // kMaxPackets packets is the most, and allowed; the next frame may use another total.
  const std::uint32_t one = 42;
  ASSERT_EQ(s.write_packet(kMaxPackets - 1, kMaxPackets, 3, std::span<const std::uint32_t>(&one, 1)).code(), Errc::ok);
  EXPECT_EQ(s.missing_packets().size(), std::size_t{kMaxPackets} - 1);
  EXPECT_EQ(s.finalize_packets().code(), Errc::incomplete);
  const auto ps2 = s.packet_status();
  ASSERT_TRUE(ps2.has_value());
  EXPECT_EQ(ps2->cnt0, 2u);
  EXPECT_EQ(ps2->total, kMaxPackets);
  EXPECT_EQ(ps2->missing.size(), std::size_t{kMaxPackets} - 1);
  EXPECT_EQ(std::find(ps2->missing.begin(), ps2->missing.end(), kMaxPackets - 1), ps2->missing.end());
  EXPECT_TRUE(std::is_sorted(ps2->missing.begin(), ps2->missing.end()));
  EXPECT_EQ(s.view_as<std::uint32_t>()[3], 42u);

  // Read-only and closed handles.
  OpenOptions ro;
  ro.writable = false;
  auto reader = Stream::open("args", ro);
  EXPECT_EQ(reader.write_packet(0, 8, 0, pkt).code(), Errc::permission);
  Stream moved = std::move(s);
  EXPECT_EQ(s.write_packet(0, 8, 0, pkt).code(), Errc::closed);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(s.finalize_packets().code(), Errc::closed);
  EXPECT_EQ(moved.cnt0(), 2u);
}

// On a rolling buffer each packetised frame goes to the next slice, history keeps each frame's
// packet status, and a frame being assembled does not disturb reads of the frames before it.
TEST(PacketProcesses, RollingBufferKeepsPerFramePacketStatus) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kDepth = 4;
  constexpr std::uint32_t kN = 64, kP = 4;  // 4 packets of 16 elements
  StreamSpec spec = spec_of({kN}, Dtype::u32);
  spec.depth = kDepth;
  auto s = Stream::create("rp", spec);
  ASSERT_TRUE(s.rolling());
  struct Ctl {
    ChildReport rep;
    std::atomic<int> step{0}, checked{0};
  };
  Shared<Ctl> ctl;
  // Frame k: every element k, except missing packets (which keep the slice's older bytes).
  pid_t writer = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    auto out = Stream::open("rp");
    auto packets = [&](std::uint64_t k, std::vector<std::uint32_t> ids, Errc expect) -> bool {
      const std::vector<std::uint32_t> f(kN, static_cast<std::uint32_t>(k));
      for (std::uint32_t p : ids)
        if (!send_packet(out, f, p, kP).ok()) return false;
      return out.finalize_packets().code() == expect && out.cnt0() == k;
    };
    SHMLINK_CHILD_CHECK(rep, packets(1, {0, 1, 2, 3}, Errc::ok), 1);
    SHMLINK_CHILD_CHECK(rep, packets(2, {3, 0, 2}, Errc::incomplete), 2);
    const std::vector<std::uint32_t> three(kN, 3);
    SHMLINK_CHILD_CHECK(rep, out.write(std::span<const std::uint32_t>(three)).ok(), 3);
    SHMLINK_CHILD_CHECK(rep, packets(4, {3, 2, 1, 0}, Errc::ok), 4);
    SHMLINK_CHILD_CHECK(rep, packets(5, {1, 2}, Errc::incomplete), 5);
    SHMLINK_CHILD_CHECK(rep, packets(6, {0, 1, 2, 3}, Errc::ok), 6);
    // Frame 7: half assembled, left open while the parent reads the history.
    const std::vector<std::uint32_t> seven(kN, 7);
    SHMLINK_CHILD_CHECK(rep, send_packet(out, seven, 0, kP).ok() && send_packet(out, seven, 1, kP).ok(), 7);
    ctl->step.store(1);
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return ctl->checked.load() == 1; }), 0);
    SHMLINK_CHILD_CHECK(rep, send_packet(out, seven, 2, kP).ok() && send_packet(out, seven, 3, kP).ok(), 7);
    SHMLINK_CHILD_CHECK(rep, out.finalize_packets().ok() && out.cnt0() == 7, 7);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->step.load() == 1 || !test::still_running(writer); }));
  ASSERT_EQ(ctl->step.load(), 1) << ctl->rep.describe();
  {
    SCOPED_TRACE("frame 7 open");
    EXPECT_EQ(s.cnt0(), 6u);
    // Buffer: frames 3..6 in slices 3, 0, 1, 2; frame 7 is being assembled in slice 3.
    for (std::uint64_t k = 4; k <= 6; ++k) EXPECT_EQ(s.slice_info(static_cast<std::uint32_t>(k % kDepth)).cnt0, k);
    std::vector<std::uint32_t> f(kN);
    FrameInfo info;
    ASSERT_EQ(s.read_frame(6, bytes_of(f), &info).code(), Errc::ok);  // slice 2 is untouched
    EXPECT_EQ(info.cnt0, 6u);
    EXPECT_TRUE(std::all_of(f.begin(), f.end(), [](std::uint32_t v) { return v == 6; }));
    EXPECT_EQ(s.read_frame(7, bytes_of(f)).code(), Errc::would_block);
    EXPECT_EQ(s.read_frame(1, bytes_of(f)).code(), Errc::overwritten);
    // read_next (tail 0 on this handle) is lapped: it gets frame 6, untouched by frame 7.
    std::uint64_t skipped = 0;
    ASSERT_EQ(s.read_next(bytes_of(f), &info, &skipped).code(), Errc::overwritten);
    EXPECT_EQ(info.cnt0, 6u);
    EXPECT_EQ(skipped, 5u);
    EXPECT_TRUE(std::all_of(f.begin(), f.end(), [](std::uint32_t v) { return v == 6; }));
    EXPECT_EQ(s.read_next(bytes_of(f)).code(), Errc::would_block);
    // read_copy (the newest frame, seqlock on the write flag): frame 6 whole, or writer_active.
    std::fill(f.begin(), f.end(), 0u);
    const Status rc = s.read_copy(bytes_of(f), &info);
    if (rc.code() != Errc::writer_active) {
      ASSERT_EQ(rc.code(), Errc::ok);
      EXPECT_EQ(info.cnt0, 6u);
      EXPECT_TRUE(std::all_of(f.begin(), f.end(), [](std::uint32_t v) { return v == 6; }));
    }
    // Frame 5 (slice 1, previously frame 1 = all 1): packets 0 and 3 never came.
    ASSERT_EQ(s.read_frame(5, bytes_of(f), &info).code(), Errc::ok);
    for (std::uint32_t i = 0; i < kN; ++i) {
      const std::uint32_t p = i / (kN / kP);
      EXPECT_EQ(f[i], (p == 0 || p == 3) ? 1u : 5u) << "element " << i;
    }
    EXPECT_FALSE(s.packet_status(1).has_value());  // no longer in the buffer
    EXPECT_FALSE(s.packet_status(2).has_value());
    EXPECT_FALSE(s.packet_status(3).has_value());  // a whole-frame write
    const auto p4 = s.packet_status(4);
    ASSERT_TRUE(p4.has_value());
    EXPECT_EQ(p4->cnt0, 4u);
    EXPECT_EQ(p4->total, kP);
    EXPECT_TRUE(p4->complete());
    const auto p5 = s.packet_status(5);
    ASSERT_TRUE(p5.has_value());
    EXPECT_EQ(p5->missing, (std::vector<std::uint32_t>{0, 3}));
    const auto p6 = s.packet_status(6);
    ASSERT_TRUE(p6.has_value());
    EXPECT_TRUE(p6->complete());
    const auto newest = s.packet_status();
    ASSERT_TRUE(newest.has_value());
    EXPECT_EQ(newest->cnt0, 6u);
  }
  ctl->checked.store(1);
  EXPECT_EQ(test::reap(writer, 30), 0) << ctl->rep.describe();
  EXPECT_EQ(s.cnt1(), 7u % kDepth);
  EXPECT_FALSE(s.packet_status(3).has_value());
  const auto p7 = s.packet_status(7);
  ASSERT_TRUE(p7.has_value());
  EXPECT_TRUE(p7->complete());
  std::vector<std::uint32_t> f(kN);
  ASSERT_EQ(s.read_frame(7, bytes_of(f)).code(), Errc::ok);
  EXPECT_TRUE(std::all_of(f.begin(), f.end(), [](std::uint32_t v) { return v == 7; }));
  FrameInfo info;
  ASSERT_EQ(s.read_next(bytes_of(f), &info).code(), Errc::ok);
  EXPECT_EQ(info.cnt0, 7u);
}

// The companion `<name>_pkt` appears at the first packet, the main stream stays a plain ISIO
// stream that opens as before, a second writer process re-initialises it, and Stream::remove
// removes both files.
TEST(PacketProcesses, CompanionStreamAppearsAndIsRemovedWithTheStream) {
  test::TempStreamDir dir;
  auto s = Stream::create("cam", spec_of({64, 8}, Dtype::u32));
  const std::filesystem::path main_file = s.path();
  const std::filesystem::path companion = std::filesystem::path(dir.path()) / "cam_pkt.im.shm";
  EXPECT_FALSE(std::filesystem::exists(companion));
  EXPECT_EQ(dir.entries(), 1);
  Shared<ChildReport> rep;
  auto write_frame_missing = [&](std::uint32_t missing) {
    return test::spawn([&, missing] {
      auto out = Stream::open("cam");
      const auto f = pattern(100);
      for (std::uint32_t p = 0; p < kPackets; ++p) {
        if (p != missing) SHMLINK_CHILD_CHECK(&*rep, send_packet(out, f, p).ok(), p);
      }
      const Status st = out.finalize_packets();
      SHMLINK_CHILD_CHECK(&*rep, st.code() == (missing < kPackets ? Errc::incomplete : Errc::ok),
                          static_cast<int>(st.code()));
      return 0;
    });
  };
  ASSERT_EQ(test::reap(write_frame_missing(kPackets), 20), 0) << rep->describe();
  EXPECT_TRUE(std::filesystem::exists(companion));
  pid_t opener = test::spawn([] {
    auto in = Stream::open("cam");
    if (in.rolling() || in.shape().size() != 2 || in.shape()[0] != 64 || in.shape()[1] != 8) return 1;
    if (in.info().file_bytes != test::isio_offsets(kElems * 4, 0, 10, 0, false).file_size) return 2;
    auto pkt = Stream::open("cam_pkt");  // a stream in its own right
    if (!pkt.valid()) return 3;
    const auto ps = in.packet_status(1);
    return ps.has_value() && ps->complete() && ps->total == kPackets ? 0 : 4;
  });
  EXPECT_EQ(test::reap(opener, 20), 0);
  // Another writer process (a new handle) re-initialises the companion and records its frame.
  ASSERT_EQ(test::reap(write_frame_missing(3), 20), 0) << rep->describe();
  const auto ps = s.packet_status(2);
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->missing, std::vector<std::uint32_t>{3});
  EXPECT_EQ(dir.entries(), 2);

  Stream::remove("cam");
  EXPECT_FALSE(std::filesystem::exists(main_file));
  EXPECT_FALSE(std::filesystem::exists(companion));
  EXPECT_EQ(dir.entries(), 0);
  // A stream without a companion is removed as before.
  auto plain = Stream::create("plain", spec_of({4}, Dtype::u8));
  Stream::remove("plain");
  EXPECT_EQ(dir.entries(), 0);
}

// A stream re-created under the same name (PurgeAndCreate: a new file, cnt0 back to 0) starts
// without packet records: a whole-frame write there is not reported as assembled from packets
// (packet_status: "nullopt otherwise"), whatever the previous incarnation's companion held.
TEST(PacketProcesses, RecreatedStreamDoesNotInheritPacketStatus) {
  test::TempStreamDir dir;
  {
    auto old = Stream::create("re", spec_of({64, 8}, Dtype::u32));
    const auto f = pattern(1);
    for (std::uint32_t p = 0; p < kPackets; ++p) {
      if (p == 5) continue;
      ASSERT_TRUE(send_packet(old, f, p).ok());
    }
    ASSERT_EQ(old.finalize_packets().code(), Errc::incomplete);
    ASSERT_TRUE(old.packet_status(1).has_value());
  }
  auto s = Stream::create("re", spec_of({64, 8}, Dtype::u32), OpenMode::PurgeAndCreate);
  ASSERT_EQ(s.cnt0(), 0u);
  const std::vector<std::uint32_t> whole(kElems, 9);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(whole)).ok());  // frame 1: a whole-frame write
  pid_t reader = test::spawn([] {
    auto in = Stream::open("re");
    return in.packet_status(1).has_value() || in.packet_status().has_value() ? 1 : 0;
  });
  EXPECT_EQ(test::reap(reader, 20), 0) << "frame 1 of the new stream reported as packetised (stale companion)";
  EXPECT_FALSE(s.packet_status(1).has_value());
}

// The companion's name is 4 bytes longer: a stream whose name leaves no room for "_pkt" gets
// the companion's creation error from write_packet, and no frame is opened.
TEST(PacketProcesses, NameWithoutRoomForCompanionFailsCleanly) {
  test::TempStreamDir dir;
  const std::string name(kMaxStreamName - 2, 'n');  // 77 bytes: "<name>_pkt" is 81
  auto s = Stream::create(name, spec_of({64, 8}, Dtype::u32));
  const auto f = pattern(1);
  EXPECT_EQ(send_packet(s, f, 0).code(), Errc::name_too_long);
  EXPECT_FALSE(s.write_flag());
  EXPECT_EQ(s.cnt0(), 0u);
  EXPECT_TRUE(s.missing_packets().empty());
  EXPECT_EQ(s.finalize_packets().code(), Errc::would_block);
  EXPECT_TRUE(s.write(std::span<const std::uint32_t>(f)).ok());  // whole frames still work
}

// Creating a stream must not destroy another stream that merely has the companion's name: a
// user stream "wfs_pkt" (u16 32 x 32, not a companion's u64 records) survives
// Stream::create("wfs"). (Stream::create documents no such side effect.)
TEST(PacketProcesses, CreateLeavesAnUnrelatedStreamNamedLikeACompanion) {
  test::TempStreamDir dir;
  auto user = Stream::create("wfs_pkt", spec_of({32, 32}, Dtype::u16));
  const std::vector<std::uint16_t> img(32 * 32, 5);
  ASSERT_TRUE(user.write(std::span<const std::uint16_t>(img)).ok());
  auto s = Stream::create("wfs", spec_of({64, 8}, Dtype::u32));
  EXPECT_FALSE(user.replaced());
  pid_t opener = test::spawn([] {
    auto in = Stream::open("wfs_pkt");
    return in.dtype() == Dtype::u16 && in.cnt0() == 1 ? 0 : 1;
  });
  EXPECT_EQ(test::reap(opener, 20), 0) << "the user's stream wfs_pkt is gone or changed";
}

}  // namespace
