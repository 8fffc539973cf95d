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
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
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
/// True once the named semaphore holds a post (a side laid its region out and posted).
bool posted(const std::string& object) {
  sem_t* s = ::sem_open(object.c_str(), 0);
  if (s == SEM_FAILED) return false;
  int v = 0;
  const bool yes = ::sem_getvalue(s, &v) == 0 && v >= 1;
  ::sem_close(s);
  return yes;
}
/// Waits (bounded) until a side posted its semaphore: it is then past its post, waiting.
bool wait_posted(const std::string& object) {
  return test::wait_until([&] { return posted(object); });
}
/// Mode bits of a file in /dev/shm.
mode_t shm_mode(const std::string& file) {
  struct stat st {};
  return ::stat(("/dev/shm/" + file).c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
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
  /// The /dev/shm file names of objects of this test: regions ("r:tag") and semaphores ("s:tag").
  std::vector<std::string> files(std::initializer_list<const char*> tags) const {
    std::vector<std::string> v;
    for (const char* t : tags) v.push_back((t[0] == 's' ? "sem." : "") + prefix_ + "-" + std::string(t + 2));
    std::sort(v.begin(), v.end());
    return v;
  }
  /// leftovers(), sorted.
  std::vector<std::string> left() const {
    auto v = leftovers();
    std::sort(v.begin(), v.end());
    return v;
  }

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
        if (a_first && !wait_posted(name("a2b"))) return 40;  // A posted first and waits
        Interface b = make_side(sb, false);
        b.open();
        return echo(b);
      });
      if (!a_first) {
        ASSERT_TRUE(wait_posted(name("b2a"))) << "B posted first and waits";
      }
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
    // A unlinks its semaphore once it mapped our region (and found this process mapping it).
    if (!test::wait_until([&] { return !sem_exists(name("a2b")); })) return 7;
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
    // The regions are not inherited (MADV_DONTFORK): the copy cannot touch them, nor is it
    // taken for a process that maps them.
    if (std::ifstream maps("/proc/self/maps"); maps) {
      for (std::string line; std::getline(maps, line);)
        if (line.find(name("a2b")) != std::string::npos || line.find(name("b2a")) != std::string::npos) return 2;
    }
    Sample r;
    if (a.read(r, 0ns).code() != Errc::closed) return 3;  // the copy's calls answer closed
    // The parent's regions are not the copy's own: an interface of the copy with the parent's
    // `out` is refused as a live other process's, not as one of its own.
    InterfaceSpec s = spec("a2b", "elsewhere");
    s.attach_timeout = 50ms;
    Interface mine(s);
    try {
      mine.open();
      return 4;
    } catch (const Error& e) {
      if (e.errc() != Errc::exists || std::string(e.what()).find("this process") != std::string::npos) return 5;
    }
    a.close();
    return a.is_open() ? 1 : 0;
  });
  EXPECT_EQ(test::reap(copy, 20), 0) << "2: the copy maps the regions; 3: a read did not answer closed; 4, 5: the "
                                        "parent's region was taken for the copy's own";
  EXPECT_TRUE(shm_exists(name("a2b"))) << "the copy removed the parent's region";
  Sample s;
  ASSERT_EQ(a.read(s, 10s), Status(Errc::ok)) << "the peer saw our queue stopped: " << a.peer().describe();
  EXPECT_EQ(s.values.at(0).f, 2.0);
  a.close();
  EXPECT_EQ(test::reap(peer, 20), 0);
  EXPECT_TRUE(leftovers().empty()) << joined(leftovers());
}

// A peer may complete its handshake with us, write and die before we even looked at its region
// (we were slow: here, stopped). Its post is then not stale (its semaphore name is gone): what
// it wrote is read. With no process mapping its region we cannot tell a dead peer from one in
// another pid namespace, so its liveness is unknown: a read then times out (no peer_exited).
TEST_F(VillasInterfaceTest, APeerThatAttachedWroteAndDiedBeforeWeMappedItIsDrainedWithLivenessUnknown) {
  const InterfaceSpec sa = spec("a2b", "b2a");
  const pid_t a = spawn([&] {
    Interface i = make_side(sa, true);
    i.open();
    Sample s;
    for (int k = 0; k < 5; ++k) {
      if (!i.read(s, 10s).ok()) return 10 + k;
      if (s.values.at(0).f != 10.0 + k) return 20 + k;
    }
    if (!i.peer_alive()) return 31;
    return i.read(s, 100ms).code() == Errc::timeout ? 0 : 30;
  });
  ASSERT_TRUE(wait_posted(name("a2b")));  // past its post, waiting for ours
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
  EXPECT_EQ(test::reap(a, 30), 0) << "10 + k: read k failed; 30: not a timeout after the samples; 31: taken for dead";
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
  ASSERT_TRUE(wait_posted(name("b2a")));  // past its sem_post
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
    // A failed open removes its region and its semaphore; the dead peer's objects stay (its
    // semaphore is the one a new peer opens and posts).
    EXPECT_EQ(left(), files({"r:b2a", "s:b2a"})) << joined(left());
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
  ASSERT_TRUE(wait_posted(name("b2a")));  // past its mmap and post
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
  // The owner's region and both its semaphores survive; nothing of the refused open stays.
  EXPECT_EQ(left(), files({"r:b2a", "s:a2b", "s:b2a"})) << joined(left());
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
      if (r.code() == Errc::shut_down) return k == kSamples ? 0 : 22;
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
  // Its region, its semaphore and the peer's semaphore it created: nothing stays.
  EXPECT_TRUE(left().empty()) << joined(left());
}

// A peer's semaphore that existed before the open (a peer's, or a killed one's) is not removed
// by a failed open; only what the open created goes.
TEST_F(VillasInterfaceTest, AFailedOpenLeavesThePeersSemaphoreItDidNotCreate) {
  sem_t* theirs = ::sem_open(name("in").c_str(), O_CREAT | O_EXCL, 0600, 0);
  ASSERT_NE(theirs, SEM_FAILED);
  ::sem_close(theirs);
  InterfaceSpec s = spec("out", "in");
  s.attach_timeout = 50ms;
  Interface i(s);
  EXPECT_THROW(i.open(), Error);
  EXPECT_EQ(left(), files({"s:in"})) << joined(left());
}

// attach_timeout 0 still takes a post that is already there.
TEST_F(VillasInterfaceTest, AttachTimeoutZeroTakesAPostAlreadyThere) {
  const InterfaceSpec sb = spec("b2a", "a2b");
  const pid_t child = spawn([&] {
    Interface b = make_side(sb, false);
    b.open();
    return echo(b);
  });
  ASSERT_TRUE(wait_posted(name("b2a")));
  InterfaceSpec sa = spec("a2b", "b2a");
  sa.attach_timeout = 0ns;
  Interface a = make_side(sa, true);
  a.open();
  exchange(a, 5);
  a.close();
  EXPECT_EQ(test::reap(child, 20), 0);
  EXPECT_TRUE(left().empty()) << joined(left());
}

// A failure after our post (here: no peer within attach_timeout, while a reader already mapped
// our region, as a villas-node that took our post does) marks our queue STOPPED before the
// region goes, so that reader stops instead of waiting for ever.
TEST_F(VillasInterfaceTest, AFailedOpenMarksOurQueueStoppedForAReaderThatAttached) {
  const std::string ours = name("out");
  std::atomic<int> seen{0};  // 1 mapped, 2 saw STOPPED
  std::thread reader([&] {
    if (!test::wait_until([&] { return posted(ours); }, 5)) return;  // laid out and posted
    const int fd = ::shm_open(ours.c_str(), O_RDONLY, 0);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return;
    seen = 1;
    const auto* state = reinterpret_cast<const std::int32_t*>(static_cast<const char*>(p) + kQueueStateOffset);
    if (test::wait_until([&] { return std::atomic_ref<const std::int32_t>(*state).load(std::memory_order_acquire) == kStateStopped; }, 5))
      seen = 2;
    ::munmap(p, 4096);
  });
  InterfaceSpec s = spec("out", "in");
  s.attach_timeout = 1s;  // the reader maps our region well within it (it polls every 1 ms)
  Interface i(s);
  try {
    i.open();
    ADD_FAILURE() << "opened without a peer";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::timeout) << e.what();
  }
  reader.join();
  EXPECT_EQ(seen.load(), 2) << "1: the reader mapped our region but never saw STOPPED; 0: it never mapped it";
  EXPECT_TRUE(left().empty()) << joined(left());
}

// Two interfaces of one process with the same `out`: the second is refused (exists), and the
// first one's region is left alone.
TEST_F(VillasInterfaceTest, ASecondInterfaceOfThisProcessWithTheSameOutIsExists) {
  Interface first(spec("loop", "loop"));
  first.open();
  struct stat before {};
  ASSERT_EQ(::stat(("/dev/shm" + name("loop")).c_str(), &before), 0);
  InterfaceSpec s = spec("loop", "other");
  s.attach_timeout = 100ms;
  Interface second(s);
  try {
    second.open();
    FAIL() << "two interfaces own one region";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists) << e.what();
    EXPECT_NE(std::string(e.what()).find("this process"), std::string::npos) << e.what();
  }
  struct stat after {};
  ASSERT_EQ(::stat(("/dev/shm" + name("loop")).c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the first one's region was replaced";
  const SignalValue x = SignalValue::of(3.0);
  ASSERT_EQ(first.write(std::span(&x, 1), 1s), Status(Errc::ok));
  Sample r;
  ASSERT_EQ(first.read(r, 1s), Status(Errc::ok));
  EXPECT_EQ(r.values.at(0).f, 3.0);
  first.close();
  EXPECT_TRUE(left().empty()) << joined(left());
}

// Our semaphores get the mode asked for, whatever the umask (sem_open's mode passes through it).
TEST_F(VillasInterfaceTest, SemaphoresHaveThePermissionsAsked) {
  const mode_t old = ::umask(022);
  InterfaceSpec s = spec("out", "in");
  s.permissions = 0660;
  s.attach_timeout = 300ms;
  std::thread opener([&] {
    Interface i(s);
    try {
      i.open();
    } catch (const Error&) {
    }
  });
  const bool seen = wait_posted(name("out"));
  const mode_t out_mode = shm_mode(files({"s:out"})[0]);
  const mode_t in_mode = shm_mode(files({"s:in"})[0]);
  const mode_t region_mode = shm_mode(files({"r:out"})[0]);
  opener.join();
  ::umask(old);
  ASSERT_TRUE(seen);
  EXPECT_EQ(out_mode, 0660U);
  EXPECT_EQ(in_mode, 0660U);
  EXPECT_EQ(region_mode, 0660U);
}

// A killed run of this side left its region and post; a villas-node took them and attached to
// that dead region (it never notices). A new open must not replace the region under it silently
// nor just say "exists": it says the peer attached to a stale region and must be restarted.
TEST_F(VillasInterfaceTest, APeerAttachedToOurStaleRegionIsToldToRestart) {
  for (const char* tag : {"a2b", "b2a"}) {
    const int fd = ::shm_open(name(tag).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 4096), 0);
    ::close(fd);
  }
  test::Shared<std::atomic<int>> mapped;
  const pid_t node = spawn([&] {  // maps its own region and our stale one, as such a peer does
    for (const char* tag : {"a2b", "b2a"}) {
      const int fd = ::shm_open(name(tag).c_str(), O_RDWR, 0);
      if (fd < 0 || ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED) return 1;
      ::close(fd);
    }
    mapped->store(1);
    ::pause();
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return mapped->load() == 1; }));
  InterfaceSpec s = spec("a2b", "b2a");
  s.attach_timeout = 100ms;
  Interface a(s);
  try {
    a.open();
    ADD_FAILURE() << "opened over a region a live peer maps";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists) << e.what();
    EXPECT_NE(std::string(e.what()).find("stale region"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("restart the peer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(node)), std::string::npos) << e.what();
  }
  EXPECT_EQ(left(), files({"r:a2b", "r:b2a"})) << joined(left());
  ::kill(node, SIGKILL);
  test::reap(node, 20);
}

// A peer in another pid namespace (a container sharing /dev/shm) is invisible in our /proc: no
// process maps its region as far as we can see. It unlinks its semaphore name right after it
// mapped our region, so the side that cannot see it waits for that instead of taking the post
// for a dead peer's; it attaches with liveness unknown. Needs CAP_SYS_ADMIN (unshare); skipped
// otherwise.
TEST_F(VillasInterfaceTest, APeerInAnotherPidNamespaceIsAttachedTo) {
  const pid_t probe = test::spawn([] { return ::unshare(CLONE_NEWPID | CLONE_NEWNS) == 0 ? 0 : 1; });
  if (test::reap(probe, 20) != 0) GTEST_SKIP() << "unshare(CLONE_NEWPID | CLONE_NEWNS) is not permitted here";
  const InterfaceSpec sb = spec("b2a", "a2b");
  // B runs in a new pid namespace with its own /proc: it cannot see A; A sees B.
  const pid_t outer = spawn([&] {
    if (::unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) return 50;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 51;
    const pid_t inner = test::spawn([&] {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with `outer` (whose pid it cannot see: no spawn_tied)
      if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return 52;
      if (!wait_posted(name("a2b"))) return 53;  // A first: B meets A's post at once
      Interface b = make_side(sb, false);
      b.open();
      if (!b.peer_alive()) return 54;
      return echo(b);
    });
    return test::reap(inner, 60);
  });
  Interface a = make_side(spec("a2b", "b2a"), true);
  a.open();
  exchange(a, 10);
  a.close();
  EXPECT_EQ(test::reap(outer, 30), 0) << "5x: namespace setup; 10 + |Errc|: B's read failed (it took A's post for stale)";
  EXPECT_TRUE(left().empty()) << joined(left());
}

}  // namespace
