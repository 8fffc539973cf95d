// SPDX-License-Identifier: MIT
// A stream and a queue side by side in one /dev/shm region, created by one process and used by
// two others that find them by name (issue 20, "Done when").
#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "test_util.hpp"

namespace shmlink {
namespace {

using namespace std::chrono_literals;
using test::TempStreamDir;

struct Flags {
  std::atomic<int> created{0};
  std::atomic<int> done{0};
};

constexpr int kFrames = 10;

TEST(RegionProcess, AStreamAndAQueueCreatedByOneProcessAreUsedByTwoOthersByName) {
  TempStreamDir dir;
  test::Shared<Flags> flags;
  test::Shared<test::ChildReport> report;
  // The creator: a region with a 4x4 f32 stream and an SPSC queue; stays until both users are done.
  const pid_t creator = test::spawn([&]() -> int {
    Region r = Region::create("side", 1 << 20);
    (void)r.create_stream("wfs", test::spec_of({4, 4}, Dtype::f32));
    QueueSpec q;
    q.capacity = 16;
    q.max_values = 2;
    (void)r.create_queue("cmd", q);
    flags->created.store(1);
    SHMLINK_CHILD_CHECK(report, test::wait_until([&] { return flags->done.load() == 2; }, 20), 0);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return flags->created.load() == 1; }, 20));
  // The writer: frames into the stream, samples into the queue.
  const pid_t writer = test::spawn([&]() -> int {
    Region r = Region::open("side");
    Stream s = r.open_stream("wfs");
    Queue q = r.open_queue("cmd");
    std::vector<float> frame(16);
    for (int i = 0; i < kFrames; ++i) {
      frame.assign(16, static_cast<float>(i));
      SHMLINK_CHILD_CHECK(report, s.write(std::span<const float>(frame)).ok(), i);
      Sample m;
      m.sequence = static_cast<std::uint64_t>(i);
      m.values = {SignalValue::of(static_cast<double>(i)), SignalValue::of(-1.0)};
      SHMLINK_CHILD_CHECK(report, q.push(m, 10s).ok(), i);
    }
    flags->done.fetch_add(1);
    return 0;
  });
  // The reader: every sample in order (waiting on the queue), then the stream's last frame.
  const pid_t reader = test::spawn([&]() -> int {
    Region r = Region::open("side");
    Queue q = r.open_queue("cmd");
    for (int i = 0; i < kFrames; ++i) {
      Sample m;
      SHMLINK_CHILD_CHECK(report, q.pop(m, 10s).ok(), i);
      SHMLINK_CHILD_CHECK(report, m.sequence == static_cast<std::uint64_t>(i), m.sequence);
      SHMLINK_CHILD_CHECK(report, m.values.size() == 2 && m.values[0].f == i, i);
    }
    Stream s = r.open_stream("wfs");
    SHMLINK_CHILD_CHECK(report, test::wait_until([&] { return s.cnt0() >= kFrames; }, 10), s.cnt0());
    std::vector<float> got(16);
    SHMLINK_CHILD_CHECK(report, s.read_copy(std::as_writable_bytes(std::span<float>(got))).ok(), 0);
    SHMLINK_CHILD_CHECK(report, got[0] == kFrames - 1 && got[15] == kFrames - 1, got[0]);
    flags->done.fetch_add(1);
    return 0;
  });
  EXPECT_EQ(test::reap(writer, 30), 0) << report->describe();
  EXPECT_EQ(test::reap(reader, 30), 0) << report->describe();
  EXPECT_EQ(test::reap(creator, 30), 0) << report->describe();
  // Everything stayed inside the one region file.
  EXPECT_EQ(dir.entries(), 1);
  EXPECT_EQ(Region::open("side").entries().size(), 2U);
}

}  // namespace
}  // namespace shmlink
