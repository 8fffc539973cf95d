// SPDX-License-Identifier: MIT
// A region entry's doorbell (src/region/doorbell.hpp; docs/design/doorbells.md) against fake
// endpoints over a plain buffer laid out as a region directory: what ends Doorbell::wait_until()
// and how the waiter table's counts stay honest. No timing assertions: each case ends by what it
// checks, bounded by a deadline that only a broken wait reaches.
#include "os/clock.hpp"
#include "region/doorbell.hpp"
#include "region/region_layout.hpp"

#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using shmlink::Errc;
namespace rdoor = shmlink::rdoor;
namespace rlayout = shmlink::rlayout;

constexpr std::uint32_t kEntries = 4;

/// An endpoint whose waiters sleep on its own eventfd; ring() records the peers it was asked to
/// ring and says that `gone_peer` left the server (as a host Peer's table would).
class FakePort final : public rdoor::Port {
 public:
  explicit FakePort(std::uint16_t self)
      : Port(self, 0, "fake peer " + std::to_string(self)), fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  FakePort(const FakePort&) = delete;
  FakePort& operator=(const FakePort&) = delete;
  ~FakePort() override {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ring(std::uint16_t peer, std::uint16_t) noexcept override {
    rung.push_back(peer);
    return peer != gone_peer;
  }
  int listener(bool& own) noexcept override {
    own = false;
    return fd_;
  }
  bool consume(int fd) noexcept override {
    std::uint64_t v = 0;
    return ::read(fd, &v, sizeof v) == sizeof v || errno == EAGAIN;
  }
  /// What a ring of this endpoint's vector does: makes its eventfd readable.
  void ring_self() const noexcept {
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  }

  std::vector<std::uint16_t> rung;
  int gone_peer = -1;

 private:
  int fd_;
};

/// A zeroed region directory of kEntries entries (the waiter table and counts included).
class RegionDoorbellWait : public ::testing::Test {
 protected:
  std::span<std::byte> memory() { return std::as_writable_bytes(std::span(words_)); }
  std::uint32_t count(std::uint32_t entry) {
    auto* c = reinterpret_cast<std::uint32_t*>(memory().data() + rlayout::waiter_count_offset(kEntries, entry));
    return std::atomic_ref(*c).load();
  }
  std::shared_ptr<shmlink::Doorbell> bell(const std::shared_ptr<FakePort>& port, std::uint32_t entry) {
    return rdoor::make_doorbell(port, memory(), kEntries, entry, nullptr);
  }

 private:
  std::vector<std::uint64_t> words_ = std::vector<std::uint64_t>(rlayout::directory_bytes(kEntries) / 8);
};

volatile sig_atomic_t g_signalled = 0;
void on_signal(int) { g_signalled = 1; }

// Every waiter of a peer shares its vector: rings meant for other channels end each sleep with
// a ring. The wait still asks gone() once a fallback period has passed, so a wait on a removed
// channel ends with replaced instead of running to its deadline.
TEST_F(RegionDoorbellWait, RingsForOtherChannelsDoNotKeepAWaitFromAskingGone) {
  auto port = std::make_shared<FakePort>(1);
  port->fallback_ns = 20'000'000;  // 20 ms
  auto b = bell(port, 0);
  ASSERT_NE(b, nullptr);
  int asked = 0;
  // Each look finds nothing and rings this endpoint again, as a busy neighbour would.
  const shmlink::Status s = b->wait_until(
      [&] {
        port->ring_self();
        return false;
      },
      shmlink::os::monotonic_ns() + 10'000'000'000, [&] { return ++asked > 0; });
  EXPECT_EQ(s.code(), Errc::replaced) << s.message();
  EXPECT_EQ(asked, 1);
  EXPECT_GE(port->wakes_by_ring.load(), 1U);
  EXPECT_EQ(port->wakes_by_timeout.load(), 0U);
  EXPECT_EQ(count(0), 0U);  // disarmed
}

// A signal ends the sleep; the condition it raced with came true meanwhile: the wait looks once
// more and reports ok, as a futex wait does, not interrupted.
TEST_F(RegionDoorbellWait, ASignalAfterThePublishEndsTheWaitWithOk) {
  auto port = std::make_shared<FakePort>(1);
  port->fallback_ns = 600'000'000'000;  // only the signal ends the sleep in time
  auto b = bell(port, 0);
  ASSERT_NE(b, nullptr);
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: ppoll fails with EINTR
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  g_signalled = 0;
  const pthread_t waiter = ::pthread_self();
  std::jthread signaller([waiter](std::stop_token stop) {
    // The publish happens (the handler sets the flag ready() reads) while the waiter sleeps.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!stop.stop_requested()) ::pthread_kill(waiter, SIGUSR1);
  });
  const shmlink::Status s =
      b->wait_until([] { return g_signalled != 0; }, shmlink::os::monotonic_ns() + 10'000'000'000, [] { return false; });
  signaller.request_stop();
  signaller.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(s.code(), Errc::ok) << s.message();
  EXPECT_EQ(count(0), 0U);
}

// Two waiters on one entry; a writer clears the first one's slot because its peer left (and
// counts it down). When that waiter disarms after all, its slot is not its own any more: the
// count must not move again, or the second waiter sits registered with a count of 0 and no
// writer rings it.
TEST_F(RegionDoorbellWait, ADisarmAfterAWriterClearedTheSlotKeepsTheOtherWaiterCounted) {
  auto p1 = std::make_shared<FakePort>(1);
  auto p2 = std::make_shared<FakePort>(2);
  auto pw = std::make_shared<FakePort>(3);
  pw->gone_peer = 1;
  auto b1 = bell(p1, 2);
  auto b2 = bell(p2, 2);
  auto bw = bell(pw, 2);
  ASSERT_TRUE(b1 && b2 && bw);
  shmlink::Doorbell::Ticket t1, t2;
  ASSERT_TRUE(b1->arm(t1));
  ASSERT_TRUE(b2->arm(t2));
  ASSERT_EQ(count(2), 2U);
  bw->notify();  // peer 1 "left": its slot is cleared and counted down
  ASSERT_EQ(count(2), 1U);
  b1->disarm(t1);
  EXPECT_EQ(count(2), 1U) << "the cleared slot was counted down twice";
  pw->rung.clear();
  bw->notify();
  EXPECT_EQ(pw->rung, std::vector<std::uint16_t>{2}) << "the remaining waiter was not rung";
  b2->disarm(t2);
  EXPECT_EQ(count(2), 0U);
}

}  // namespace
