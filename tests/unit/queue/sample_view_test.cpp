// SPDX-License-Identifier: MIT
// Samples without a Sample (include/shmlink/queue.hpp, SampleView): the handler burst pop
// (Aeron's read(handler, limit)) shows each sample where it lies in its cell, in order, up to
// the limit, with a lying peer's length clamped to the cell; SampleViews push as Samples do.
#include "test_util.hpp"

#include <shmlink/queue.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

constexpr std::uint32_t kMax = 4;

QueueSpec view_spec(QueueKind kind) {
  QueueSpec s;
  s.kind = kind;
  s.capacity = 8;
  s.max_values = kMax;
  return s;
}

/// A queue in a memfd, so the test can tell whether a view points into the queue's bytes.
struct PlacedQueue {
  explicit PlacedQueue(QueueKind kind)
      : seg(Segment::create_memfd("shmlink-sample-view", 64 * 1024)) {
    Placement p;
    p.bytes = {seg.data(), Queue::bytes_for(view_spec(kind))};
    p.name = "views";
    p.path = "memfd:views";
    q = Queue::create_in(p, view_spec(kind));
  }
  bool inside(const void* p) const {
    const auto* b = reinterpret_cast<const std::byte*>(p);
    return b >= seg.data() && b < seg.data() + seg.size();
  }
  Segment seg;
  Queue q;
};

Sample numbered(std::uint64_t n) {
  Sample s;
  s.sequence = n;
  s.ts_origin_ns = static_cast<std::int64_t>(n) * 10;
  s.ts_received_ns = static_cast<std::int64_t>(n) * 10 + 1;
  s.flags = kSampleHasSequence | kSampleHasData;
  s.values.resize(1 + n % kMax);
  for (std::size_t i = 0; i < s.values.size(); ++i) s.values[i] = SignalValue::of(static_cast<std::int64_t>(n * 100 + i));
  return s;
}

class QueueSampleView : public ::testing::TestWithParam<QueueKind> {};

TEST_P(QueueSampleView, HandlerBurstShowsSamplesInTheirCellsInOrderUpToTheLimit) {
  PlacedQueue pq(GetParam());
  for (std::uint64_t n = 0; n < 5; ++n) ASSERT_EQ(pq.q.try_push(numbered(n)), Errc::ok);
  std::vector<Sample> seen;
  bool all_inside = true;
  auto handler = [&](const SampleView& v) {
    all_inside = all_inside && pq.inside(v.values.data());
    Sample s;
    s.sequence = v.sequence;
    s.ts_origin_ns = v.ts_origin_ns;
    s.ts_received_ns = v.ts_received_ns;
    s.flags = v.flags;
    s.values.assign(v.values.begin(), v.values.end());
    seen.push_back(std::move(s));
  };
  std::size_t popped = 99;
  ASSERT_EQ(pq.q.try_pop_burst(handler, 3, popped), Errc::ok);
  EXPECT_EQ(popped, 3u);
  EXPECT_EQ(pq.q.size(), 2u);
  ASSERT_EQ(pq.q.try_pop_burst(handler, 10, popped), Errc::ok);
  EXPECT_EQ(popped, 2u);
  EXPECT_TRUE(all_inside) << "a view was copied out of the queue";
  ASSERT_EQ(seen.size(), 5u);
  for (std::uint64_t n = 0; n < 5; ++n) {
    const Sample want = numbered(n);
    EXPECT_EQ(seen[n].sequence, n);
    EXPECT_EQ(seen[n].ts_origin_ns, want.ts_origin_ns);
    EXPECT_EQ(seen[n].ts_received_ns, want.ts_received_ns);
    EXPECT_EQ(seen[n].flags, want.flags);
    ASSERT_EQ(seen[n].values.size(), want.values.size()) << n;
    for (std::size_t i = 0; i < want.values.size(); ++i) EXPECT_EQ(seen[n].values[i].i, want.values[i].i);
  }
  EXPECT_EQ(pq.q.try_pop_burst(handler, 10, popped), Errc::would_block);
  EXPECT_EQ(popped, 0u);
  EXPECT_EQ(pq.q.try_pop_burst(handler, 0, popped), Errc::ok);
  EXPECT_EQ(popped, 0u);
  // The cells were freed: a full lap more goes in and comes out.
  for (std::uint64_t n = 0; n < 8; ++n) ASSERT_EQ(pq.q.try_push(numbered(n)), Errc::ok);
  ASSERT_EQ(pq.q.try_pop_burst(handler, 8, popped), Errc::ok);
  EXPECT_EQ(popped, 8u);
  pq.q.shutdown();
  EXPECT_NE(pq.q.try_pop_burst(handler, 1, popped), Errc::ok);
  EXPECT_EQ(popped, 0u);
}

TEST_P(QueueSampleView, ALyingLengthIsClampedToTheCell) {
  PlacedQueue pq(GetParam());
  ASSERT_EQ(pq.q.try_push(numbered(1)), Errc::ok);
  // Cell 0 starts after the 384-byte header (no signals); its length is the u32 at byte 36.
  const std::uint32_t lie = 0xFFFFFFFFu;
  std::memcpy(pq.seg.data() + 384 + 36, &lie, sizeof lie);
  std::size_t length = 0, popped = 0;
  ASSERT_EQ(pq.q.try_pop_burst([&](const SampleView& v) { length = v.values.size(); }, 1, popped), Errc::ok);
  EXPECT_EQ(popped, 1u);
  EXPECT_EQ(length, kMax);
}

TEST_P(QueueSampleView, ViewsPushAsSamplesDo) {
  PlacedQueue pq(GetParam());
  const Sample a = numbered(3);
  SampleView v{a.sequence, a.ts_origin_ns, a.ts_received_ns, a.flags, a.values};
  ASSERT_EQ(pq.q.try_push(v), Errc::ok);
  ASSERT_EQ(pq.q.push(v, 1s), Errc::ok);
  const SignalValue too_many[kMax + 1] = {};
  SampleView long_one;
  long_one.values = too_many;
  EXPECT_EQ(pq.q.try_push(long_one), Errc::size_mismatch);
  const Sample b = numbered(4);
  const SampleView burst[3] = {v, {b.sequence, b.ts_origin_ns, b.ts_received_ns, b.flags, b.values}, long_one};
  std::size_t pushed = 0;
  ASSERT_EQ(pq.q.try_push_burst(burst, pushed), Errc::ok);
  EXPECT_EQ(pushed, 2u);  // stops at the too-long one
  Sample out;
  for (std::uint64_t want : {3, 3, 3, 4}) {
    ASSERT_EQ(pq.q.try_pop(out), Errc::ok);
    const Sample w = numbered(want);
    EXPECT_EQ(out.sequence, w.sequence);
    EXPECT_EQ(out.ts_origin_ns, w.ts_origin_ns);
    EXPECT_EQ(out.flags, w.flags);
    ASSERT_EQ(out.values.size(), w.values.size());
    for (std::size_t i = 0; i < w.values.size(); ++i) EXPECT_EQ(out.values[i].bits, w.values[i].bits);
  }
  EXPECT_EQ(pq.q.try_pop(out), Errc::would_block);
}

INSTANTIATE_TEST_SUITE_P(Kinds, QueueSampleView, ::testing::Values(QueueKind::spsc, QueueKind::mpmc),
                         [](const auto& p) { return std::string(p.param == QueueKind::spsc ? "spsc" : "mpmc"); });

TEST(QueueSampleView, ClosedHandlesReportClosed) {
  Queue q;
  std::size_t popped = 7;
  EXPECT_EQ(q.try_pop_burst([](const SampleView&) {}, 4, popped), Errc::closed);
  EXPECT_EQ(popped, 0u);
  EXPECT_EQ(q.try_push(SampleView{}), Errc::closed);
}

}  // namespace
