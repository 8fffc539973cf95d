// SPDX-License-Identifier: MIT
// Doorbell waits in a region shared with other kernels (issue 21; docs/design/doorbells.md), on
// the host: two ivshmem::Peers of one shmlink ivshmem server (real sockets, eventfds, shared
// memory) stand for two VMs. A reader or popper of one peer sleeps on its doorbell and is woken
// by a writer or pusher of the other; hostile waiter tables cost latency, never a crash or data.
//
// "Woken by a doorbell", not "fast": each test sets the fallback timeout far beyond its own wait
// bound, so a wait that ends in time was ended by a ring, and checks the doorbell counters.
#include "region/region_layout.hpp"
#include "test_util.hpp"

#include <shmlink/doorbell.hpp>
#include <shmlink/ivshmem_server.hpp>
#include <shmlink/log.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using shmlink::Errc;
using shmlink::Region;
using shmlink::RegionWaitMode;
using shmlink::ivshmem::Peer;
using shmlink::ivshmem::Server;
using shmlink::ivshmem::ServerSpec;
namespace rlayout = shmlink::rlayout;

constexpr auto kWaitBound = 20s;     // a wait's own timeout in these tests
constexpr auto kFallback = 600000ms;  // far beyond it: only a ring ends a sleep in time

class RegionDoorbell : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.socket_path = dir_.path() + "/ivshmem.sock";
    spec_.shm_path = dir_.path() + "/ivshmem.shm";
    spec_.bytes = 1 << 20;
    spec_.vectors = 1;
    server_ = Server::start(spec_);
    thread_ = std::thread([this] { server_.run(); });
    a_ = Peer::connect(spec_.socket_path);
    b_ = Peer::connect(spec_.socket_path);
    ASSERT_TRUE(knows(a_, b_.id()));
    ASSERT_TRUE(knows(b_, a_.id()));
  }
  void TearDown() override {
    a_ = Peer();
    b_ = Peer();
    server_.stop();
    thread_.join();
  }
  /// Updates `p` until it knows peer `id` with a vector (5 s at most).
  static bool knows(Peer& p, std::uint16_t id) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      for (const auto& info : p.peers())
        if (info.id == id && info.vectors >= 1) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      (void)p.update(50ms);
    }
  }
  static bool knows_now(Peer& p, std::uint16_t id) {
    for (const auto& info : p.peers())
      if (info.id == id) return true;
    return false;
  }
  /// The region's raw bytes and the waiter count word of entry `name`.
  static std::uint32_t* count_of(Region& r, std::span<std::byte> memory, const std::string& name) {
    const auto entries = r.entries();
    for (std::uint32_t i = 0; i < entries.size(); ++i) {
      if (entries[i].name == name)
        return reinterpret_cast<std::uint32_t*>(memory.data() + rlayout::waiter_count_offset(256, i));
    }
    return nullptr;
  }
  static std::uint64_t* slots_of(std::span<std::byte> memory) {
    return reinterpret_cast<std::uint64_t*>(memory.data() + rlayout::waiters_offset(256));
  }
  /// Waits until `*word` (a waiter count) is not zero: the other thread registered (5 s at most).
  static bool registered(const std::uint32_t* word) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::atomic_ref<const std::uint32_t>(*word).load(std::memory_order_acquire) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  shmlink::test::TempStreamDir dir_;
  ServerSpec spec_;
  Server server_;
  std::thread thread_;
  Peer a_, b_;
};

shmlink::StreamSpec frame_spec() { return shmlink::test::spec_of({16}, shmlink::Dtype::u32); }
shmlink::QueueSpec queue_spec(std::uint32_t capacity = 8) { return {.capacity = capacity, .max_values = 2}; }

TEST_F(RegionDoorbell, PeerRegionsWaitOnDoorbellsAndAFileOpenerPolls) {
  EXPECT_EQ(a_.region().wait_mode(), RegionWaitMode::doorbell);
  EXPECT_EQ(b_.region().wait_mode(), RegionWaitMode::doorbell);
  // The backing file, opened directly: another kernel may use it, and no doorbell reaches here.
  EXPECT_EQ(Region::open(spec_.shm_path).wait_mode(), RegionWaitMode::polling);
  shmlink::test::TempStreamDir other;
  EXPECT_EQ(Region::create(other.path() + "/plain.region", 1 << 16).wait_mode(), RegionWaitMode::futex);
}

// Peer B's reader sleeps in wait_futex; peer A's writer publishes a frame and rings B.
TEST_F(RegionDoorbell, AStreamReaderOnOnePeerIsWokenByAWriterOnAnother) {
  Region ra = a_.region(), rb = b_.region();
  ra.set_doorbell_fallback(kFallback);
  rb.set_doorbell_fallback(kFallback);
  shmlink::Stream writer = ra.create_stream("frames", frame_spec());
  shmlink::Stream reader = rb.open_stream("frames");
  std::uint32_t* count = count_of(ra, a_.memory(), "frames");
  ASSERT_NE(count, nullptr);
  std::atomic<int> result{1};
  std::uint64_t seen = 0;
  std::jthread waiting([&] { result = static_cast<int>(reader.wait_futex(0, kWaitBound, &seen).code()); });
  ASSERT_TRUE(registered(count));
  std::array<std::uint32_t, 16> frame{};
  frame[3] = 42;
  ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)).ok());
  waiting.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(seen, 1U);
  EXPECT_GE(ra.doorbell_stats().rings, 1U);
  EXPECT_GE(rb.doorbell_stats().wakes_by_ring, 1U);
  EXPECT_EQ(rb.doorbell_stats().wakes_by_timeout, 0U);
  EXPECT_EQ(*count, 0U);  // the waiter left the table
}

// Peer A's popper sleeps in pop; peer B's pusher rings it; then the reverse direction (a
// pusher blocked on a full queue is woken by the popper's ring).
TEST_F(RegionDoorbell, AQueuePopperAndAPusherAreWokenAcrossPeers) {
  Region ra = a_.region(), rb = b_.region();
  ra.set_doorbell_fallback(kFallback);
  rb.set_doorbell_fallback(kFallback);
  shmlink::Queue consumer = ra.create_queue("samples", queue_spec(2));
  shmlink::Queue producer = rb.open_queue("samples");
  std::uint32_t* count = count_of(ra, a_.memory(), "samples");
  ASSERT_NE(count, nullptr);
  shmlink::Sample in;
  std::atomic<int> result{1};
  std::jthread popping([&] { result = static_cast<int>(consumer.pop(in, kWaitBound).code()); });
  ASSERT_TRUE(registered(count));
  shmlink::Sample s;
  s.sequence = 7;
  s.values = {shmlink::SignalValue::of(1.5)};
  ASSERT_TRUE(producer.try_push(s).ok());
  popping.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(in.sequence, 7U);
  EXPECT_GE(ra.doorbell_stats().wakes_by_ring, 1U);

  // Full: the pusher (B) sleeps until the popper (A) frees a cell.
  ASSERT_TRUE(producer.try_push(s).ok());
  ASSERT_TRUE(producer.try_push(s).ok());
  std::jthread pushing([&] { result = static_cast<int>(producer.push(s, kWaitBound).code()); });
  ASSERT_TRUE(registered(count));
  ASSERT_TRUE(consumer.try_pop(in).ok());
  pushing.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_GE(rb.doorbell_stats().wakes_by_ring, 1U);
  EXPECT_EQ(ra.doorbell_stats().wakes_by_timeout + rb.doorbell_stats().wakes_by_timeout, 0U);
}

// A waiter whose registration a peer erased is not rung: it wakes by the fallback timeout and
// still gets the frame (latency, never a hang or lost data).
TEST_F(RegionDoorbell, AnErasedRegistrationCostsAFallbackTimeoutNotTheFrame) {
  Region ra = a_.region(), rb = b_.region();
  rb.set_doorbell_fallback(50ms);
  shmlink::Stream writer = ra.create_stream("frames", frame_spec());
  shmlink::Stream reader = rb.open_stream("frames");
  std::uint32_t* count = count_of(ra, a_.memory(), "frames");
  ASSERT_NE(count, nullptr);
  std::atomic<int> result{1};
  std::jthread waiting([&] { result = static_cast<int>(reader.wait_futex(0, kWaitBound).code()); });
  ASSERT_TRUE(registered(count));
  // The hostile part: every slot and the count wiped.
  std::uint64_t* slots = slots_of(a_.memory());
  for (std::uint32_t i = 0; i < rlayout::kWaiterSlots; ++i) std::atomic_ref(slots[i]).store(0);
  std::atomic_ref(*count).store(0);
  std::array<std::uint32_t, 16> frame{};
  ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)).ok());
  waiting.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(ra.doorbell_stats().rings, 0U);
  EXPECT_GE(rb.doorbell_stats().wakes_by_timeout, 1U);
}

// A Region outlives the Peer handle it came from: the region keeps the peer connected, so the
// server keeps its id (a newcomer gets another), the other peers do not see it leave (and do not
// clear its waiter slots as departed), and a writer of another peer still rings its waiters.
TEST_F(RegionDoorbell, ARegionKeepsItsPeerConnectedAfterThePeerHandleIsGone) {
  std::uint16_t id = 0;
  Region rc;
  {
    Peer c = Peer::connect(spec_.socket_path);
    id = c.id();
    ASSERT_TRUE(knows(a_, id));
    rc = c.region();
  }
  EXPECT_EQ(rc.wait_mode(), RegionWaitMode::doorbell);
  // A departure would be announced at once; read the server's messages for a while to see none.
  const auto until = std::chrono::steady_clock::now() + 500ms;
  while (std::chrono::steady_clock::now() < until) (void)a_.update(50ms);
  EXPECT_TRUE(knows_now(a_, id)) << "the server announced peer " << id << " as gone while its region lives";
  {
    Peer d = Peer::connect(spec_.socket_path);
    EXPECT_NE(d.id(), id);
  }
  Region ra = a_.region();
  rc.set_doorbell_fallback(kFallback);
  shmlink::Stream writer = ra.create_stream("frames", frame_spec());
  shmlink::Stream reader = rc.open_stream("frames");
  std::uint32_t* count = count_of(ra, a_.memory(), "frames");
  ASSERT_NE(count, nullptr);
  std::atomic<int> result{1};
  std::jthread waiting([&] { result = static_cast<int>(reader.wait_futex(0, kWaitBound).code()); });
  ASSERT_TRUE(registered(count));
  std::array<std::uint32_t, 16> frame{};
  ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)).ok());
  waiting.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_GE(rc.doorbell_stats().wakes_by_ring, 1U);
  EXPECT_EQ(rc.doorbell_stats().wakes_by_timeout, 0U);
}

// A waiter table full of garbage: entries, peers and vectors out of range, a count at its
// maximum. Writers skip what is not theirs and ring only real peers (a bounded number of
// times); a new waiter finds no free slot and polls (saying so in the counters); nothing
// crashes and every frame arrives. A slot naming a peer that left is cleared by the writer.
TEST_F(RegionDoorbell, AGarbageWaiterTableIsIgnoredAndWaitsFallBackToPolling) {
  Region ra = a_.region(), rb = b_.region();
  rb.set_doorbell_fallback(kFallback);
  shmlink::Stream writer = ra.create_stream("frames", frame_spec());
  shmlink::Stream reader = rb.open_stream("frames");
  std::uint32_t* count = count_of(ra, a_.memory(), "frames");
  ASSERT_NE(count, nullptr);
  // A third peer that joins and leaves: A hears both.
  std::uint16_t gone_id = 0;
  {
    Peer c = Peer::connect(spec_.socket_path);
    gone_id = c.id();
    ASSERT_TRUE(knows(a_, gone_id));
  }
  const auto until_gone = std::chrono::steady_clock::now() + 5s;
  while (knows_now(a_, gone_id) && std::chrono::steady_clock::now() < until_gone) (void)a_.update(50ms);
  ASSERT_FALSE(knows_now(a_, gone_id));
  std::uint64_t* slots = slots_of(a_.memory());
  for (std::uint32_t i = 0; i < rlayout::kWaiterSlots; ++i) {
    std::uint64_t garbage;
    switch (i % 4) {
      case 0: garbage = ~std::uint64_t{0}; break;                                   // entry 2^32-2
      case 1: garbage = rlayout::waiter_word(0, a_.id(), 60000); break;             // a bogus vector
      case 2: garbage = rlayout::waiter_word(5000, b_.id(), 0); break;              // no such entry
      default: garbage = rlayout::waiter_word(0, gone_id, 0); break;                // a peer that left
    }
    std::atomic_ref(slots[i]).store(garbage);
  }
  std::atomic_ref(*count).store(0xFFFFFFFFU);
  std::array<std::uint32_t, 16> frame{};
  for (std::uint32_t k = 1; k <= 3; ++k) {
    frame[0] = k;
    ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)).ok());
  }
  // The peer that left: its slots are cleared (and the count taken down for each); the
  // garbage of other entries, vectors and the all-ones words stays, and was never rung.
  EXPECT_LE(ra.doorbell_stats().rings, 3U * 16U);
  std::uint32_t left = 0;
  for (std::uint32_t i = 0; i < rlayout::kWaiterSlots; ++i) left += std::atomic_ref(slots[i]).load() != 0 ? 1 : 0;
  EXPECT_EQ(left, rlayout::kWaiterSlots - rlayout::kWaiterSlots / 4);

  // The table still has no free slot (three quarters garbage, the rest refilled): the reader polls.
  for (std::uint32_t i = 3; i < rlayout::kWaiterSlots; i += 4) std::atomic_ref(slots[i]).store(~std::uint64_t{0});
  std::atomic<int> result{1};
  std::uint64_t seen = 0;
  std::jthread waiting([&] { result = static_cast<int>(reader.wait_futex(3, kWaitBound, &seen).code()); });
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (rb.doorbell_stats().unregistered == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  frame[0] = 4;
  ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)).ok());
  waiting.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(seen, 4U);
  EXPECT_GE(rb.doorbell_stats().unregistered, 1U);
}

}  // namespace
