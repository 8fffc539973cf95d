// SPDX-License-Identifier: MIT
// The Interface over VILLASnode's shmem protocol (InterfaceProtocol::villas; docs/design/villas.md)
// between shmlink processes: a loopback, two processes in both region modes with either side
// first, `exec`, a SIGKILLed side (its samples drained, then peer_exited; its leftover semaphore
// post and region never attached to; a new pair connects), a live owner of our name (exists), the
// close drain (a reader that stops at STOPPED, as villas-node's does, still gets every sample),
// and an attach timeout that leaves nothing of ours in /dev/shm.
#include "interface_helpers.hpp"

#include <shmlink/interface.hpp>
#include <shmlink/villas.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#ifndef INTERFACE_PEER_PATH
#error "INTERFACE_PEER_PATH must name the interface_peer binary"
#endif

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::echo;
using test::exchange;
using test::make_side;
const auto spawn = test::spawn_tied;

/// Offset of the data queue's `state` (i32: 1 initialized, 5 stopped) in a VILLAS v1.x region
/// on x86_64: ShmemShared at 80, its CQueueSignalled at +8, the CQueue's state at +0.
constexpr std::size_t kQueueStateOffset = 88;
constexpr std::int32_t kStateStopped = 5;

bool shm_exists(const std::string& object) {
  struct stat st {};
  return ::stat(("/dev/shm" + object).c_str(), &st) == 0;
}
bool sem_exists(const std::string& object) {
  struct stat st {};
  return ::stat(("/dev/shm/sem." + object.substr(1)).c_str(), &st) == 0;
}

class VillasInterfaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    prefix_ = "shmlink-vt" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    remove_ours();
  }
  void TearDown() override { remove_ours(); }

  /// A POSIX shared-memory name of this test ("/shmlink-vt<pid>-<n>-<tag>").
  std::string name(const char* tag) const { return "/" + prefix_ + "-" + tag; }

  InterfaceSpec spec(const char* out, const char* in, WaitMode wait = WaitMode::hybrid) const {
    InterfaceSpec s;
    s.protocol = InterfaceProtocol::villas;
    s.out = name(out);
    s.in = name(in);
    s.wait = wait;
    s.capacity = 64;
    s.attach_timeout = 10s;
    return s;
  }

  /// The objects of this test still in /dev/shm (regions and semaphores).
  std::vector<std::string> leftovers() const {
    std::vector<std::string> found;
    if (DIR* d = ::opendir("/dev/shm")) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n.starts_with(prefix_) || n.starts_with("sem." + prefix_)) found.push_back(n);
      }
      ::closedir(d);
    }
    return found;
  }

  static std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + " ";
    return s;
  }

 private:
  void remove_ours() const {
    for (const auto& n : leftovers()) ::unlink(("/dev/shm/" + n).c_str());
  }
  std::string prefix_;
};

TEST_F(VillasInterfaceTest, LoopbackReadsWhatItWrites) {
  InterfaceSpec s = spec("loop", "loop");
  s.in = s.in.substr(1);  // "x" names the same object as "/x"
  Interface i(s);
  i.export_signal(0, "a", SignalType::f64);
  i.export_signal(2, "n", SignalType::i64);
  i.import_signal(2, "n", SignalType::i64);
  i.open();
  ASSERT_TRUE(i.is_open());
  EXPECT_EQ(i.out_max_values(), 3U);
  EXPECT_GE(i.in_max_values(), 3U);
  EXPECT_FALSE(i.out_queue().valid()) << "no queue file backs a villas interface";
  EXPECT_TRUE(i.peer_signals().empty());
  EXPECT_TRUE(shm_exists(name("loop")));
  EXPECT_FALSE(sem_exists(name("loop"))) << "the semaphore is unlinked once attached";
  for (int k = 0; k < 5; ++k) {
    const SignalValue v[3] = {SignalValue::of(1.5 * k), SignalValue::of(0.0), SignalValue::of(std::int64_t{k})};
    ASSERT_EQ(i.write(v, 1s), Status(Errc::ok));
  }
  EXPECT_EQ(i.next_sequence(), 5U);
  Sample s2;
  for (int k = 0; k < 5; ++k) {
    ASSERT_EQ(i.read(s2, 1s), Status(Errc::ok));
    EXPECT_EQ(s2.sequence, static_cast<std::uint64_t>(k));
    ASSERT_EQ(s2.values.size(), 3U);
    EXPECT_EQ(s2.values[0].f, 1.5 * k);
    EXPECT_EQ(s2.values[2].i, k);
    EXPECT_NE(s2.flags & kSampleHasTsOrigin, 0U);
    EXPECT_NE(s2.flags & kSampleHasTsReceived, 0U);
    EXPECT_GT(s2.ts_origin_ns, 0);
  }
  EXPECT_EQ(i.read(s2, 0ns), Status(Errc::would_block));
  EXPECT_EQ(i.read(s2, 20ms), Status(Errc::timeout));
  const SignalValue too_many[4] = {};
  EXPECT_EQ(i.write(too_many, 0ns), Status(Errc::size_mismatch));
  i.close();
  EXPECT_FALSE(i.is_open());
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
  EXPECT_EQ(i.read(s2, 0ns), Status(Errc::closed));
}

TEST_F(VillasInterfaceTest, NamesArePosixSharedMemoryNames) {
  for (const char* bad : {"", "/", "a/b", "/a/b", ".."}) {
    SCOPED_TRACE(bad);
    InterfaceSpec s = spec("o", "i");
    s.out = bad;
    Interface i(s);
    try {
      i.open();
      ADD_FAILURE() << "opened with out = '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::invalid_argument) << e.what();
    }
  }
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

TEST_F(VillasInterfaceTest, TwoProcessesInBothModesEitherSideFirst) {
  for (const WaitMode w : {WaitMode::polling, WaitMode::hybrid}) {
    for (const bool a_first : {true, false}) {
      SCOPED_TRACE(std::string(w == WaitMode::polling ? "polling" : "pthread") + (a_first ? ", A first" : ", B first"));
      const InterfaceSpec sb = spec("b2a", "a2b", w);
      const pid_t child = spawn([&] {
        if (a_first) std::this_thread::sleep_for(100ms);
        Interface b = make_side(sb, false);
        b.open();
        return echo(b);
      });
      if (!a_first) std::this_thread::sleep_for(100ms);
      Interface a = make_side(spec("a2b", "b2a", w), true);
      a.open();
      EXPECT_EQ(a.peer().pid, child);
      EXPECT_FALSE(a.peer().launched);
      EXPECT_TRUE(a.peer_alive());
      // wait polling -> a polling region, hybrid (and futex) -> pthread: what a villas-node reads.
      EXPECT_EQ(villas::inspect_file(name("a2b")).pthread_mode, w != WaitMode::polling);
      EXPECT_EQ(villas::inspect_file(name("b2a")).pthread_mode, w != WaitMode::polling);
      exchange(a, 100);
      a.close();
      EXPECT_EQ(test::reap(child, 20), 0) << "the echo side reads `closed` after draining";
      EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
    }
  }
}

TEST_F(VillasInterfaceTest, ExecLaunchesThePeer) {
  InterfaceSpec s = spec("a2b", "b2a");
  s.exec = {INTERFACE_PEER_PATH, "--villas", "echo"};
  Interface a = make_side(s, true);
  a.open();
  EXPECT_TRUE(a.peer().launched);
  exchange(a, 50);
  a.close();
  EXPECT_EQ(a.peer().exit_code, 0) << a.peer().describe();
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

TEST_F(VillasInterfaceTest, AKilledPeersSamplesAreReadThenPeerExitedAndANewPairConnects) {
  const InterfaceSpec sb = spec("b2a", "a2b");
  const pid_t child = spawn([&] {
    Interface b = make_side(sb, false);
    b.open();
    for (int k = 0; k < 5; ++k) {
      const SignalValue y = SignalValue::of(10.0 + k);
      if (!b.write(std::span(&y, 1), 5s).ok()) return 6;
    }
    ::raise(SIGKILL);  // no close: its region and queued samples stay behind
    return 1;
  });
  InterfaceSpec sa = spec("a2b", "b2a");
  sa.stop_timeout = 200ms;
  Interface a = make_side(sa, true);
  a.open();
  Sample s;
  for (int k = 0; k < 5; ++k) {
    ASSERT_EQ(a.read(s, 10s), Status(Errc::ok)) << "sample " << k << " of the dead peer";
    EXPECT_EQ(s.values.at(0).f, 10.0 + k);
  }
  EXPECT_EQ(a.read(s, 10s), Status(Errc::peer_exited));
  EXPECT_TRUE(a.peer().exited);
  const SignalValue x = SignalValue::of(1.0);
  EXPECT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::peer_exited));
  EXPECT_EQ(test::reap(child, 20), -SIGKILL);
  a.close();
  EXPECT_TRUE(shm_exists(name("b2a"))) << "the dead peer's region is not ours to remove";

  // A new pair on the same names: the dead one's region is replaced.
  const pid_t child2 = spawn([&] {
    Interface b = make_side(sb, false);
    b.open();
    return echo(b);
  });
  Interface a2 = make_side(spec("a2b", "b2a"), true);
  a2.open();
  exchange(a2, 20);
  a2.close();
  EXPECT_EQ(test::reap(child2, 20), 0);
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

// A forked copy of an open interface belongs to the parent: its close() only unmaps (no drain,
// no STOPPED, no unlink), and the parent's link goes on.
TEST_F(VillasInterfaceTest, AForkedChildsCloseOnlyUnmaps) {
  const InterfaceSpec sb = spec("b2a", "a2b");
  const pid_t peer = spawn([&] {
    Interface b = make_side(sb, false);
    b.open();
    return echo(b);
  });
  Interface a = make_side(spec("a2b", "b2a"), true);
  a.open();
  exchange(a, 5);
  const SignalValue x = SignalValue::of(1.0);
  ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));  // queued when the copy closes
  const pid_t copy = test::spawn([&] {
    a.close();
    return a.is_open() ? 1 : 0;
  });
  EXPECT_EQ(test::reap(copy, 20), 0);
  EXPECT_TRUE(shm_exists(name("a2b"))) << "the copy removed the parent's region";
  Sample s;
  ASSERT_EQ(a.read(s, 10s), Status(Errc::ok)) << "the peer saw our queue stopped: " << a.peer().describe();
  EXPECT_EQ(s.values.at(0).f, 2.0);
  a.close();
  EXPECT_EQ(test::reap(peer, 20), 0);
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

// A peer may complete its handshake with us, write and die before we even looked at its region
// (we were slow: here, stopped). Its post is then not stale: what it wrote is read, then
// peer_exited, instead of waiting for a peer that will never come.
TEST_F(VillasInterfaceTest, APeerThatAttachedWroteAndDiedBeforeWeMappedItIsDrainedThenPeerExited) {
  const InterfaceSpec sa = spec("a2b", "b2a");
  const pid_t a = spawn([&] {
    Interface i = make_side(sa, true);
    i.open();
    Sample s;
    for (int k = 0; k < 5; ++k) {
      if (!i.read(s, 10s).ok()) return 10 + k;
      if (s.values.at(0).f != 10.0 + k) return 20 + k;
    }
    return i.read(s, 10s).code() == Errc::peer_exited ? 0 : 30;
  });
  ASSERT_TRUE(test::wait_until([&] { return shm_exists(name("a2b")); }));
  std::this_thread::sleep_for(50ms);  // past its post, waiting for ours
  ::kill(a, SIGSTOP);
  const InterfaceSpec sb = spec("b2a", "a2b");
  const pid_t b = spawn([&] {
    Interface i = make_side(sb, false);
    i.open();
    for (int k = 0; k < 5; ++k) {
      const SignalValue y = SignalValue::of(10.0 + k);
      if (!i.write(std::span(&y, 1), 5s).ok()) return 6;
    }
    ::raise(SIGKILL);
    return 1;
  });
  EXPECT_EQ(test::reap(b, 20), -SIGKILL);
  ::kill(a, SIGCONT);
  EXPECT_EQ(test::reap(a, 30), 0) << "10 + k: read k failed; 30: not peer_exited after the samples";
}

// villas-node posts its semaphore and then waits; SIGKILLed there it leaves its region and the
// post behind. A later side must not take them for a peer (it would read a dead region for
// ever); a new peer on the same names then connects.
TEST_F(VillasInterfaceTest, AStalePostAndRegionAreNotAttachedToAndANewPeerConnects) {
  const InterfaceSpec sb = spec("b2a", "a2b");
  const pid_t stale = spawn([&] {
    InterfaceSpec s = sb;
    s.attach_timeout = 30s;
    Interface b = make_side(s, false);
    b.open();  // killed while waiting here, after its post
    return 1;
  });
  ASSERT_TRUE(test::wait_until([&] { return shm_exists(name("b2a")); }));
  std::this_thread::sleep_for(50ms);  // past its sem_post
  ::kill(stale, SIGKILL);
  EXPECT_EQ(test::reap(stale, 20), -SIGKILL);
  ASSERT_TRUE(shm_exists(name("b2a")));
  ASSERT_TRUE(sem_exists(name("b2a")));

  InterfaceSpec sa = spec("a2b", "b2a");
  sa.attach_timeout = 300ms;
  {
    Interface a = make_side(sa, true);
    try {
      a.open();
      FAIL() << "attached to a dead peer's region";
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::timeout) << e.what();
      EXPECT_NE(std::string(e.what()).find("no live process maps"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(shm_exists(name("a2b"))) << "a failed open removes its region";
    EXPECT_FALSE(sem_exists(name("a2b"))) << "and its semaphore";
  }

  const pid_t fresh = spawn([&] {
    Interface b = make_side(sb, false);
    b.open();
    return echo(b);
  });
  Interface a = make_side(spec("a2b", "b2a"), true);
  a.open();
  EXPECT_EQ(a.peer().pid, fresh);
  exchange(a, 20);
  a.close();
  EXPECT_EQ(test::reap(fresh, 20), 0);
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

TEST_F(VillasInterfaceTest, ARegionMappedByALiveProcessIsExistsNamingIt) {
  const InterfaceSpec sb = spec("b2a", "a2b");
  const pid_t owner = spawn([&] {
    InterfaceSpec s = sb;
    s.attach_timeout = 30s;
    Interface b = make_side(s, false);
    b.open();
    return 1;
  });
  ASSERT_TRUE(test::wait_until([&] { return shm_exists(name("b2a")); }));
  std::this_thread::sleep_for(20ms);  // past its mmap
  InterfaceSpec s = spec("b2a", "elsewhere");
  s.attach_timeout = 200ms;
  Interface second(s);
  try {
    second.open();
    FAIL() << "two sides own one region";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists) << e.what();
    EXPECT_NE(std::string(e.what()).find(name("b2a")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(owner)), std::string::npos) << e.what();
  }
  EXPECT_TRUE(shm_exists(name("b2a"))) << "the owner's region survives";
  ::kill(owner, SIGKILL);
  test::reap(owner, 20);
}

// villas-node's reader gives up at STOPPED even with samples queued. close() must therefore wait
// until the peer took them all before it marks the queue stopped. The child reads slowly and
// looks at our region's state the way villas-node does (before each read).
TEST_F(VillasInterfaceTest, CloseWaitsUntilThePeerTookEverySampleBeforeStopping) {
  constexpr int kSamples = 20;
  const InterfaceSpec sb = spec("b2a", "a2b");
  const std::string a_region = name("a2b");
  test::Shared<std::atomic<int>> mapped;
  const pid_t child = spawn([&] {
    Interface b = make_side(sb, false);
    b.open();
    const int fd = ::shm_open(a_region.c_str(), O_RDONLY, 0);
    if (fd < 0) return 20;
    void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return 21;
    mapped->store(1);
    const auto* state = reinterpret_cast<const std::int32_t*>(static_cast<const char*>(p) + kQueueStateOffset);
    Sample s;
    for (int k = 0;; ++k) {
      std::this_thread::sleep_for(10ms);
      const std::int32_t st = std::atomic_ref<const std::int32_t>(*state).load(std::memory_order_acquire);
      if (st == kStateStopped && k < kSamples) return 30 + k;  // villas-node would lose the rest
      const Status r = b.read(s, 10s);
      if (r.code() == Errc::closed) return k == kSamples ? 0 : 22;
      if (!r.ok()) return 23;
      if (s.sequence != static_cast<std::uint64_t>(k)) return 24;
    }
  });
  Interface a = make_side(spec("a2b", "b2a"), true);
  a.open();
  ASSERT_TRUE(test::wait_until([&] { return mapped->load() == 1; }));
  for (int k = 0; k < kSamples; ++k) {
    const SignalValue x = SignalValue::of(static_cast<double>(k));
    ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));
  }
  a.close();
  EXPECT_EQ(test::reap(child, 20), 0) << "30 + k: the queue was stopped with samples from k on still queued";
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

TEST_F(VillasInterfaceTest, NoPeerTimesOutNamingItsRegionAndLeavesNothingOfOurs) {
  InterfaceSpec s = spec("lonely_out", "lonely_in");
  s.attach_timeout = 150ms;
  Interface i(s);
  try {
    i.open();
    FAIL() << "open() without a peer succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::timeout);
    EXPECT_NE(std::string(e.what()).find(name("lonely_in")), std::string::npos) << e.what();
  }
  EXPECT_FALSE(i.is_open());
  EXPECT_FALSE(shm_exists(name("lonely_out"))) << "a failed open removes its region";
  EXPECT_FALSE(sem_exists(name("lonely_out"))) << "and its semaphore";
}

}  // namespace
