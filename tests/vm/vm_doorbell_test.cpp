// SPDX-License-Identifier: MIT
// Doorbell waits with real guests (issue 21): QEMU ivshmem-doorbell devices of shmlink's ivshmem
// server, the uio_ivshmem driver in the guests, a host ivshmem::Peer. Host -> guest (a guest
// blocked in a stream wait and in a queue pop wakes on the host's write and push), guest -> host
// (the host Peer's reader wakes on a guest's write) and guest -> guest (two guests on one server).
//
// "Woken by a doorbell", not "fast": every waiter sets its doorbell fallback to 10 minutes and
// bounds each wait by 30 s, and the waiters' counters must show wake-ups by a ring and none by
// the fallback timeout (tests/vm/guest/vm_doorbell_guest.cpp checks the guests' own).
#include "guest_vm.hpp"
#include "region/region_layout.hpp"
#include "test_util.hpp"

#include <shmlink/doorbell.hpp>
#include <shmlink/ivshmem_server.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace iv = shmlink::ivshmem;
using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

constexpr std::uint64_t kBytes = 1 << 20;
constexpr std::uint32_t kCount = 5;  // frames / samples per direction

#define SKIP_WITHOUT_DRIVER()                                                                          \
  do {                                                                                                 \
    if (auto why = shmlink::testvm::vm_driver_unavailable_reason(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

/// A doorbell server (one vector) served by a thread, and a host peer joined to it.
struct Doorbells {
  explicit Doorbells(const std::string& dir) {
    spec.socket_path = dir + "/ivshmem.sock";
    spec.shm_path = dir + "/ivshmem.shm";
    spec.bytes = kBytes;
    spec.vectors = 1;
    server = iv::Server::start(spec);
    serving = std::thread([this] { server.run(); });
    host = iv::Peer::connect(spec.socket_path);
    region = host.region();
    region.set_doorbell_fallback(std::chrono::minutes(10));
  }
  ~Doorbells() {
    region = shmlink::Region();
    host = iv::Peer();
    server.stop();
    serving.join();
  }
  /// The waiter count of entry `name` in the waiter table (shared memory).
  const std::uint32_t* count_of(const std::string& name) const {
    const auto entries = region.entries();
    for (std::uint32_t i = 0; i < entries.size(); ++i)
      if (entries[i].name == name)
        return reinterpret_cast<const std::uint32_t*>(host.memory().data() + shmlink::rlayout::waiter_count_offset(256, i));
    return nullptr;
  }
  static bool waiting(const std::uint32_t* count) {
    return std::atomic_ref<const std::uint32_t>(*count).load(std::memory_order_acquire) != 0;
  }

  iv::ServerSpec spec;
  iv::Server server;
  std::thread serving;
  iv::Peer host;
  shmlink::Region region;
};

GuestSpec guest_of(const Doorbells& d, const std::string& name, const std::string& command) {
  GuestSpec spec;
  spec.name = name;
  spec.doorbell_socket = d.spec.socket_path;
  spec.vectors = 1;
  spec.timeout = std::chrono::seconds(120);
  spec.command = command;
  return spec;
}

shmlink::StreamSpec frame_spec() { return shmlink::test::spec_of({16}, shmlink::Dtype::u32); }
shmlink::QueueSpec queue_spec(std::uint32_t capacity = 8) { return {.capacity = capacity, .max_values = 2}; }

// The guest sleeps in Stream::wait_futex, then in Queue::pop; the host writes frame i (pushes
// sample i) only once the guest is registered as waiting, and only once it knows the guest's
// peer id (a ring to a peer not heard of yet goes nowhere).
TEST(VmDoorbell, AGuestBlockedInAStreamWaitAndAQueuePopWakesOnTheHostsWriteAndPush) {
  SKIP_WITHOUT_DRIVER();
  shmlink::test::TempStreamDir dir;
  Doorbells d(dir.path());
  shmlink::Stream frames = d.region.create_stream("frames", frame_spec());
  shmlink::Queue samples = d.region.create_queue("samples", queue_spec());
  const std::uint32_t* frames_waiting = d.count_of("frames");
  const std::uint32_t* samples_waiting = d.count_of("samples");
  ASSERT_TRUE(frames_waiting != nullptr && samples_waiting != nullptr);
  auto guest = GuestVm::start(guest_of(d, "bell-h2g",
                                       "shmlink_vm_doorbell_guest wait-stream frames 5 || exit $?\n"
                                       "shmlink_vm_doorbell_guest pop samples 5\n"));
  ASSERT_TRUE(guest) << guest.error();
  std::uint32_t written = 0, pushed = 0;
  while (guest->running()) {  // bounded by the guest's timeout (the harness kills it)
    (void)d.host.update(5ms);
    if (d.host.peers().empty()) continue;
    if (written < kCount && Doorbells::waiting(frames_waiting)) {
      std::array<std::uint32_t, 16> frame{};
      frame[0] = ++written;
      ASSERT_TRUE(frames.write(std::span<const std::uint32_t>(frame)).ok());
    }
    if (pushed < kCount && Doorbells::waiting(samples_waiting)) {
      shmlink::Sample s;
      s.sequence = ++pushed;
      s.values = {shmlink::SignalValue::of(1.0)};
      ASSERT_TRUE(samples.try_push(s).ok());
    }
  }
  ASSERT_EQ(guest->wait(), 0) << guest->log();
  EXPECT_EQ(written, kCount);
  EXPECT_EQ(pushed, kCount);
  EXPECT_GE(d.region.doorbell_stats().rings, 2U * kCount);
  EXPECT_NE(guest->log().find("doorbell: "), std::string::npos) << guest->log();
}

// The host Peer's reader sleeps in Stream::wait_futex; the guest writes frame i whenever the
// host is registered as waiting, ringing the host through BAR0's Doorbell register.
TEST(VmDoorbell, AHostPeerBlockedInAStreamWaitWakesOnAGuestsWrite) {
  SKIP_WITHOUT_DRIVER();
  shmlink::test::TempStreamDir dir;
  Doorbells d(dir.path());
  shmlink::Stream frames = d.region.create_stream("frames", frame_spec());
  auto guest = GuestVm::start(guest_of(d, "bell-g2h", "shmlink_vm_doorbell_guest write-stream frames 5\n"));
  ASSERT_TRUE(guest) << guest.error();
  std::uint64_t cnt0 = 0;
  const auto bound = std::chrono::steady_clock::now() + 110s;
  while (cnt0 < kCount && std::chrono::steady_clock::now() < bound) {
    const shmlink::Status st = frames.wait_futex(cnt0, 1s, &cnt0);  // 1 s slices: the guest may have died
    if (st.code() == shmlink::Errc::timeout && !guest->running()) break;
    ASSERT_TRUE(st.ok() || st.code() == shmlink::Errc::timeout) << st.message();
  }
  EXPECT_EQ(cnt0, kCount) << guest->log();
  ASSERT_EQ(guest->wait(), 0) << guest->log();
  const shmlink::DoorbellStats s = d.region.doorbell_stats();
  EXPECT_GE(s.wakes_by_ring, 1U);
  EXPECT_EQ(s.wakes_by_timeout, 0U);
}

// Two guests on one server: one sleeps in Stream::wait_futex, the other writes whenever it is
// registered and rings it (guest -> guest, the host only made the stream).
TEST(VmDoorbell, AGuestBlockedInAStreamWaitWakesOnAnotherGuestsWrite) {
  SKIP_WITHOUT_DRIVER();
  shmlink::test::TempStreamDir dir;
  Doorbells d(dir.path());
  shmlink::Stream frames = d.region.create_stream("frames", frame_spec());
  auto reader = GuestVm::start(guest_of(d, "bell-g2g-reader", "shmlink_vm_doorbell_guest wait-stream frames 5\n"));
  ASSERT_TRUE(reader) << reader.error();
  auto writer = GuestVm::start(guest_of(d, "bell-g2g-writer", "shmlink_vm_doorbell_guest write-stream frames 5\n"));
  ASSERT_TRUE(writer) << writer.error();
  ASSERT_EQ(reader->wait(), 0) << reader->log() << writer->log();
  ASSERT_EQ(writer->wait(), 0) << writer->log();
  EXPECT_EQ(frames.cnt0(), kCount);
  EXPECT_EQ(d.region.doorbell_stats().rings, 0U);  // the host rang nobody: the writer guest did
}

}  // namespace
