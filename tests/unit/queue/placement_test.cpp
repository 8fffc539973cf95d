// SPDX-License-Identifier: MIT
// Queues placed in memory the caller provides (Queue::bytes_for / create_in / open_in): a queue
// in a memfd at a non-zero offset used by two processes (each maps the memfd itself), the bytes
// around it untouched, every peer-written size bounded by the span (not a file size), and the
// file placement (Queue::create) laying out exactly bytes_for(spec) bytes.
#include "queue_test_util.hpp"
#include "test_util.hpp"

#include <shmlink/queue.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::expect_error;

QueueSpec small_spec(QueueKind kind) {
  QueueSpec s;
  s.kind = kind;
  s.capacity = 8;
  s.max_values = 4;
  s.signals = {Signal{0, "volt", SignalType::f64, "V"}, Signal{2, "count", SignalType::i64, ""}};
  return s;
}

/// `size` bytes at byte `offset` of the memfd `seg`, named as a region entry would be.
Placement span_of(const Segment& seg, std::size_t offset, std::size_t size) {
  Placement p;
  p.bytes = {seg.data() + offset, size};
  p.name = "q";
  p.path = "memfd:test-region:q";
  p.offset = offset;
  p.fd = seg.fd();
  return p;
}

constexpr std::size_t kOffset = 8192;            // a non-zero offset, as a region entry has
constexpr std::size_t kMemfdBytes = 64 * 1024;

TEST(QueuePlacement, BytesForIsTheFileSizeCreateLaysOut) {
  test::TempStreamDir dir;
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    const QueueSpec spec = small_spec(kind);
    auto q = Queue::create("sized", spec, OpenMode::PurgeAndCreate);
    EXPECT_EQ(std::filesystem::file_size(q.path()), Queue::bytes_for(spec));
    EXPECT_EQ(q.info().file_bytes, Queue::bytes_for(spec));
  }
  QueueSpec bad = small_spec(QueueKind::spsc);
  bad.capacity = 6;
  expect_error([&] { (void)Queue::bytes_for(bad); }, Errc::invalid_argument, "queue spec", {"capacity 6"});
}

TEST(QueuePlacement, AFileQueueRemovedOrRecreatedIsReplacedAndEndsABlockingPop) {
  test::TempStreamDir dir;
  QueueSpec spec = small_spec(QueueKind::spsc);
  spec.wait = WaitMode::futex;
  Queue q = Queue::create("moved", spec);
  EXPECT_FALSE(q.replaced());
  Queue::remove("moved");
  EXPECT_TRUE(q.replaced());  // the path names nothing
  Sample s;
  EXPECT_EQ(q.pop(s, 10s).code(), Errc::replaced) << "a quiet slice must notice the removal";
  Queue again = Queue::create("moved", spec);
  EXPECT_TRUE(q.replaced());  // the path names another inode
  EXPECT_FALSE(again.replaced());
  // Its own file still works: a push there is not lost to anyone who holds it.
  s.values = {SignalValue::of(1.0)};
  EXPECT_TRUE(q.try_push(s).ok());
}

TEST(QueuePlacement, TwoProcessesShareAQueueInAMemfdAtAnOffset) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    SCOPED_TRACE(kind == QueueKind::spsc ? "spsc" : "mpmc");
    Segment seg = Segment::create_memfd("shmlink-queue-placement", kMemfdBytes);
    std::memset(seg.data(), 0xA5, kOffset);  // what lies before the entry must stay as it is
    const QueueSpec spec = small_spec(kind);
    const std::size_t need = Queue::bytes_for(spec);
    ASSERT_LT(kOffset + need + 64, kMemfdBytes);
    std::memset(seg.data() + kOffset + need, 0x5A, 64);  // and what lies after it
    auto out = Queue::create_in(span_of(seg, kOffset, need + 64), spec);
    EXPECT_EQ(out.name(), "q");
    EXPECT_EQ(out.path(), "memfd:test-region:q");
    EXPECT_EQ(out.info().file_bytes, need);

    constexpr std::uint64_t kCount = 200;  // many laps of 8 cells: the peers wait on each other
    const int fd = seg.fd();
    const pid_t parent = ::getpid();
    const pid_t child = test::spawn([fd, parent, need, &spec] {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) return 97;
      // The child maps the memfd on its own, at an address of its own.
      Segment mine = Segment::adopt_fd(::dup(fd), "memfd:test-region");
      auto in = Queue::open_in(span_of(mine, kOffset, need + 64),
                               QueueExpect{spec.max_values, spec.signals, spec.kind, true});
      Sample s;
      for (std::uint64_t n = 0; n < kCount; ++n) {
        if (!in.pop(s, 20s).ok()) return 10;
        if (s.sequence != n || s.values.size() != 1 + n % 4 || s.values[0].i != static_cast<std::int64_t>(n * 7))
          return 11;
      }
      return in.pop(s, 20s).code() == Errc::shut_down ? 0 : 12;
    });
    ASSERT_GT(child, 0);
    Sample s;
    for (std::uint64_t n = 0; n < kCount; ++n) {
      s.sequence = n;
      s.values.assign(1 + n % 4, SignalValue::of(static_cast<std::int64_t>(n * 7)));
      ASSERT_EQ(out.push(s, 20s), Errc::ok) << n;
    }
    out.shutdown();
    EXPECT_EQ(test::reap(child, 30), 0);
    const auto* b = reinterpret_cast<const unsigned char*>(seg.data());
    EXPECT_TRUE(std::all_of(b, b + kOffset, [](unsigned char c) { return c == 0xA5; }));
    EXPECT_TRUE(std::all_of(b + kOffset + need, b + kOffset + need + 64, [](unsigned char c) { return c == 0x5A; }));
  }
}

TEST(QueuePlacement, OpenInOnATooSmallSpanIsLayoutNamingThePath) {
  Segment seg = Segment::create_memfd("shmlink-queue-small", kMemfdBytes);
  const QueueSpec spec = small_spec(QueueKind::spsc);
  const std::size_t need = Queue::bytes_for(spec);
  (void)Queue::create_in(span_of(seg, kOffset, need), spec);
  expect_error([&] { (void)Queue::open_in(span_of(seg, kOffset, need - 64)); }, Errc::layout, "memfd:test-region:q",
               {"placement holds " + std::to_string(need - 64), std::to_string(need)});
  expect_error([&] { (void)Queue::open_in(span_of(seg, kOffset, 200)); }, Errc::layout, "memfd:test-region:q",
               {"384-byte header"});
  expect_error([&] { (void)Queue::create_in(span_of(seg, kOffset + 4096 * 4, need - 1), spec); },
               Errc::invalid_argument, "memfd:test-region:q", {"needs " + std::to_string(need)});
  // A larger span is fine: a region rounds its entries up.
  EXPECT_TRUE(Queue::open_in(span_of(seg, kOffset, need + 4096)).valid());
}

TEST(QueuePlacement, PeerWrittenGeometryIsBoundedByTheSpan) {
  Segment seg = Segment::create_memfd("shmlink-queue-lie", kMemfdBytes);
  const QueueSpec spec = small_spec(QueueKind::mpmc);
  const std::size_t need = Queue::bytes_for(spec);
  (void)Queue::create_in(span_of(seg, kOffset, need), spec);
  // A peer doubles the capacity (offset 20): the cells it describes run past the span, though
  // not past the memfd.
  std::uint32_t cap = 0;
  std::memcpy(&cap, seg.data() + kOffset + 20, 4);
  ASSERT_EQ(cap, 8u);
  cap = 16;
  std::memcpy(seg.data() + kOffset + 20, &cap, 4);
  expect_error([&] { (void)Queue::open_in(span_of(seg, kOffset, need)); }, Errc::layout, "memfd:test-region:q",
               {"describes"});
}

TEST(QueuePlacement, MisalignedOrReadOnlySpansAreRefusedAndOtherKernelsPoll) {
  Segment seg = Segment::create_memfd("shmlink-queue-misc", kMemfdBytes);
  const QueueSpec spec = small_spec(QueueKind::spsc);
  const std::size_t need = Queue::bytes_for(spec);
  expect_error([&] { (void)Queue::create_in(span_of(seg, 8, need), spec); }, Errc::invalid_argument,
               "memfd:test-region:q", {"64-byte"});
  Placement ro = span_of(seg, 0, need);
  ro.writable = false;
  expect_error([&] { (void)Queue::create_in(ro, spec); }, Errc::permission, "memfd:test-region:q", {"read-only"});
  (void)Queue::create_in(span_of(seg, 0, need), spec);
  auto reader = Queue::open_in(ro);
  Sample s;
  EXPECT_EQ(reader.try_pop(s), Errc::permission);
  Placement vm = span_of(seg, 0, need);
  vm.same_kernel = false;  // e.g. an ivshmem BAR2 shared with other VMs: futexes do not reach them
  auto other_kernels = Queue::open_in(vm);
  EXPECT_EQ(other_kernels.wait_mode(), WaitMode::polling);
  other_kernels.set_wait_mode(WaitMode::futex);  // asking for futex waits cannot undo it
  EXPECT_EQ(other_kernels.wait_mode(), WaitMode::polling);
  EXPECT_EQ(Queue::open_in(span_of(seg, 0, need)).wait_mode(), WaitMode::hybrid);
}

TEST(QueuePlacement, OwnerKeepsTheMappingAliveAfterTheCallerDropsIt) {
  auto seg = std::make_shared<Segment>(Segment::create_memfd("shmlink-queue-owner", kMemfdBytes));
  const QueueSpec spec = small_spec(QueueKind::spsc);
  Placement p = span_of(*seg, kOffset, Queue::bytes_for(spec));
  p.owner = seg;
  auto q = Queue::create_in(p, spec);
  p = Placement();
  seg.reset();  // the queue's copy of the owner keeps the memfd mapped
  Sample s;
  s.values.assign(2, SignalValue::of(1.5));
  ASSERT_EQ(q.try_push(s), Errc::ok);
  Sample got;
  ASSERT_EQ(q.try_pop(got), Errc::ok);
  EXPECT_EQ(got.values.size(), 2u);
}

}  // namespace
