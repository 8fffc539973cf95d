// SPDX-License-Identifier: MIT
// Races, liveness and exec edge cases of the duplex Interface (include/shmlink/interface.hpp;
// docs/design/queues.md "Interface"): both sides starting at once, stale files from a SIGKILLed
// run, repeated open/close cycles, a side restarting while the other stays open, two openers
// racing for one stale name, files removed or replaced under an open Interface, descriptors and
// environment of a launched peer, SIGCHLD ignored by the application, signals during waits,
// exactly-once delivery in full duplex, and descriptor leaks over many cycles.
//
// Tests introduced by "BUG" comments reproduced a bug found in review (described there); all are
// fixed and enabled.
#include "test_util.hpp"

#include <shmlink/interface.hpp>

#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef INTERFACE_PEER_PATH
#error "INTERFACE_PEER_PATH must name the interface_peer binary"
#endif

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::Shared;

/// Exit code of a forked side for an Errc (100 + |code|), so the parent can name the failure.
int code_of(Errc e) { return 100 + (-static_cast<int>(e)) % 100; }

/// test::spawn with a child that dies with this process. Call from the main thread only
/// (PR_SET_PDEATHSIG fires when the forking *thread* ends).
pid_t spawn(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  return test::spawn([&body, parent] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) return 97;
    return body();
  });
}

InterfaceSpec pair_spec(const char* out, const char* in, std::chrono::nanoseconds attach = 5s) {
  InterfaceSpec s;
  s.out = out;
  s.in = in;
  s.capacity = 16;
  s.attach_timeout = attach;
  s.stop_timeout = 1s;
  return s;
}

/// Reads x, writes 2x until the other side closes. 0 on a clean close, else a code.
int echo(Interface& i) {
  Sample s;
  for (;;) {
    const Status st = i.read(s, 5s);
    if (st.code() == Errc::shut_down) return 0;
    if (!st.ok()) return code_of(st.code());
    const SignalValue y = SignalValue::of(2 * s.values.at(0).f);
    const Status w = i.write(std::span(&y, 1), 5s);
    if (!w.ok()) return 50 + (-static_cast<int>(w.code())) % 50;
  }
}

/// Sends k = 0..n-1 and checks each reply (2k, sequence k). 0 or a code.
int exchange(Interface& i, int n) {
  Sample s;
  for (int k = 0; k < n; ++k) {
    const SignalValue x = SignalValue::of(static_cast<double>(k));
    if (const Status w = i.write(std::span(&x, 1), 5s); !w.ok()) return 60 + (-static_cast<int>(w.code())) % 40;
    if (const Status r = i.read(s, 5s); !r.ok()) return code_of(r.code());
    if (s.sequence != static_cast<std::uint64_t>(k) || s.values.size() != 1 || s.values[0].f != 2.0 * k) return 40;
  }
  return 0;
}

/// Number of open descriptors of this process.
int open_fds() {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

/// Inode of `path`, 0 when it does not exist.
ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Simulates the file a SIGKILLed Interface leaves: a complete queue, nobody holding its lock,
/// with a reader recorded in it.
void leave_stale(const char* name) {
  QueueSpec qs;
  qs.capacity = 16;
  qs.max_values = 1;
  Queue q = Queue::create(name, qs, OpenMode::PurgeAndCreate);
  const SignalValue v = SignalValue::of(-1.0);
  Sample s;
  s.values.assign(&v, &v + 1);
  (void)q.try_push(s);  // a sample of the dead run: must never reach the new one
  q.mark_consumer_attached(12345);  // a mark of the dead run too
}

class InterfaceStressTest : public ::testing::Test {
 protected:
  test::TempStreamDir dir;
};

// ---- handshake races ------------------------------------------------------------------------

// Two processes released at the same instant, over and over, some rounds with stale files (and a
// stale sample) of a SIGKILLed run at both names: every round pairs and echoes.
TEST_F(InterfaceStressTest, BothSidesStartAtTheSameInstantOverStaleFiles) {
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (round % 2 == 1) {
      leave_stale("a2b");
      leave_stale("b2a");
    }
    Shared<std::atomic<int>> go;
    const pid_t b = spawn([&] {
      while (go->load() == 0) {
      }
      Interface side(pair_spec("b2a", "a2b"));
      side.export_signal(0, "y");
      side.import_signal(0, "x");
      try {
        side.open();
      } catch (const Error& e) {
        return code_of(e.errc());
      }
      return echo(side);
    });
    const pid_t a = spawn([&] {
      while (go->load() == 0) {
      }
      Interface side(pair_spec("a2b", "b2a"));
      side.export_signal(0, "x");
      side.import_signal(0, "y");
      try {
        side.open();
      } catch (const Error& e) {
        return code_of(e.errc());
      }
      if (side.peer().pid <= 0) return 41;
      const int rc = exchange(side, 20);
      side.close();
      return rc;
    });
    go->store(1);
    EXPECT_EQ(test::reap(a, 10), 0);
    EXPECT_EQ(test::reap(b, 10), 0);
    EXPECT_EQ(dir.entries(), 0) << "both outputs removed at close";
  }
}

// open/close cycles of a pair, each side waiting before it reopens until the file of the peer's
// previous incarnation is gone (the barrier the handshake needs today; see the DISABLED test
// below for the same loop without it).
TEST_F(InterfaceStressTest, OpenCloseCyclesWithABarrierAllPair) {
  constexpr int kCycles = 15;
  const pid_t b = spawn([&] {
    for (int c = 0; c < kCycles; ++c) {
      Interface side(pair_spec("b2a", "a2b", 3s));
      side.export_signal(0, "y");
      try {
        side.open();
      } catch (const Error& e) {
        return code_of(e.errc());
      }
      const ino_t peer_file = inode_of(side.in_queue().path());
      if (const int rc = echo(side); rc != 0) return rc;
      side.close();
      if (!test::wait_until([&] { return inode_of(queue_path("a2b")) != peer_file; }, 5)) return 42;
    }
    return 0;
  });
  for (int c = 0; c < kCycles; ++c) {
    SCOPED_TRACE("cycle " + std::to_string(c));
    Interface a(pair_spec("a2b", "b2a", 3s));
    a.export_signal(0, "x");
    ASSERT_NO_THROW(a.open());
    const ino_t peer_file = inode_of(a.in_queue().path());
    ASSERT_EQ(exchange(a, 5), 0);
    a.close();
    ASSERT_TRUE(test::wait_until([&] { return inode_of(queue_path("b2a")) != peer_file; }, 5));
  }
  EXPECT_EQ(test::reap(b, 10), 0);
}

// BUG (handshake, repeated cycles): the same loop as above without the barrier. A side that
// reopens at once attaches to the *previous* incarnation of the peer's output, still at its name
// and still locked because the peer has not finished its own close (it reads `closed`, then
// closes). If the peer's next incarnation marks our output within our 2 ms poll (the usual case
// here: 6 to 14 of 15 cycles), open() returns successfully bound to the old, shut, unlinked file,
// and the first write() returns `closed`; otherwise open() throws Errc::peer_exited ("the peer
// died before opening"), a code documented only for a launched peer, instead of waiting for the
// peer's next output within attach_timeout. Root cause: src/queue/interface.cpp attach()
// (:359-401) takes a peer output that is shut or about to go, and await_peer_reader()
// (:406-416) accepts *any* mark on our output without checking that `in` is still the live file
// at the peer's name, and throws on !alive() instead of going back to attach().
TEST_F(InterfaceStressTest, OpenCloseCyclesWithoutABarrierAllPair) {
  constexpr int kCycles = 15;
  Shared<std::atomic<int>> b_failures;
  const pid_t b = spawn([&] {
    for (int c = 0; c < kCycles; ++c) {
      Interface side(pair_spec("b2a", "a2b", 2s));
      side.export_signal(0, "y");
      try {
        side.open();
      } catch (const Error&) {
        b_failures->fetch_add(1);
        continue;
      }
      if (echo(side) != 0) b_failures->fetch_add(1);
    }
    return 0;
  });
  std::map<std::string, int> failures;  // what went wrong -> cycles
  for (int c = 0; c < kCycles; ++c) {
    Interface a(pair_spec("a2b", "b2a", 2s));
    a.export_signal(0, "x");
    try {
      a.open();
    } catch (const Error& e) {
      ++failures[std::string("open threw ") + shmlink::strerror(e.errc())];
      continue;
    }
    if (const int rc = exchange(a, 5); rc != 0)
      ++failures["open returned, then exchange failed with " + std::to_string(rc) + " (72: write closed)"];
  }
  std::string text;
  for (const auto& [k, n] : failures) text += "\n  " + k + ": " + std::to_string(n) + " of " + std::to_string(kCycles);
  EXPECT_TRUE(failures.empty()) << text;
  EXPECT_EQ(test::reap(b, 30), 0);
  EXPECT_EQ(b_failures->load(), 0);
}

// BUG (handshake, restart): A is SIGKILLed and restarted at once; B, which stays open, reads
// peer_exited, closes and reopens (the natural recovery). The new A's open() came before B's
// reopen and attached to B's old output (still there, still locked by the old B). When the old B
// closes and the new B marks A's output within the new A's 2 ms poll, the new A's open() returns
// *successfully* bound to the old B's shut, unlinked file: its first write returns `closed`, and
// the new B's open() fails ("the peer died before opening"). Had the old B taken longer to
// reopen, the new A's open() would instead throw Errc::peer_exited, a code the header documents
// only for a launched peer, although B is back well within attach_timeout.
// Root cause: src/queue/interface.cpp attach() (:359-401) accepts a peer output without
// checking that it is not shut and that its owner is about to pair with us, and
// await_peer_reader() (:406-416) returns as soon as *anyone* marked our output, without checking
// that `in` is still the live file at the peer's name (and throws on !alive() instead of going
// back to attach()).
// Both A processes are forked before B opens, so that they share no descriptor of B's (a fork
// after B's open would inherit B's lock: see DISABLED_PeerDeathIsSeenEvenIfThePeerHadForked).
TEST_F(InterfaceStressTest, SideRestartedWhileTheOtherStaysOpenPairsAgain) {
  Shared<std::atomic<int>> a1_open, a2_go;
  const pid_t a1 = spawn([&]() -> int {
    Interface a(pair_spec("a2b", "b2a"));
    a.export_signal(0, "x");
    a.open();
    a1_open->store(1);
    for (;;) ::pause();
  });
  const pid_t a2 = spawn([&] {  // the restarted A
    while (a2_go->load() == 0) std::this_thread::sleep_for(1ms);
    Interface a(pair_spec("a2b", "b2a", 2s));
    a.export_signal(0, "x");
    try {
      a.open();
    } catch (const Error& e) {
      std::fprintf(stderr, "restarted A: open: %s\n", e.what());
      return code_of(e.errc());
    }
    const int rc = exchange(a, 5);
    if (rc != 0) std::fprintf(stderr, "restarted A: open ok, exchange %d, %s\n", rc, a.peer().describe().c_str());
    a.close();
    return rc;
  });
  Interface b1(pair_spec("b2a", "a2b"));
  b1.export_signal(0, "y");
  ASSERT_NO_THROW(b1.open());
  ASSERT_TRUE(test::wait_until([&] { return a1_open->load() == 1; }, 5));
  ASSERT_EQ(::kill(a1, SIGKILL), 0);
  EXPECT_EQ(test::reap(a1, 5), -SIGKILL);
  a2_go->store(1);  // A restarts at once

  // B notices, and (deterministically, for the test) the new A has already attached to B's old
  // output before B recovers.
  Sample s;
  EXPECT_EQ(b1.read(s, 5s), Status(Errc::peer_exited));
  ASSERT_TRUE(test::wait_until([&] { return b1.out_queue().consumer_pid() == a2; }, 5));
  b1.close();
  Interface b2(pair_spec("b2a", "a2b", 2s));
  b2.export_signal(0, "y");
  std::string b2_error;
  try {
    b2.open();
    EXPECT_EQ(echo(b2), 0);
  } catch (const Error& e) {
    b2_error = e.what();
  }
  EXPECT_EQ(b2_error, "") << "B's reopen failed";
  EXPECT_EQ(test::reap(a2, 10), 0) << "the restarted A (" << code_of(Errc::peer_exited)
                                   << " = open threw peer_exited, " << code_of(Errc::shut_down)
                                   << " = read closed, 72 = write closed)";
}

// A restarted side whose peer stays open and never reopens gets Errc::timeout within
// attach_timeout (no hang, no false success).
TEST_F(InterfaceStressTest, RestartedSideTimesOutWhenThePeerNeverReopens) {
  Interface b1(pair_spec("b2a", "a2b"));
  std::thread tb([&] { b1.open(); });
  {
    Interface a1(pair_spec("a2b", "b2a"));
    a1.open();
    tb.join();
  }  // a1 closed; b1 stays open
  Interface a2(pair_spec("a2b", "b2a", 300ms));
  const auto t0 = std::chrono::steady_clock::now();
  try {
    a2.open();
    ADD_FAILURE() << "paired with a peer that never reopened";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::timeout) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_FALSE(a2.is_open());
  Sample s;
  EXPECT_EQ(b1.read(s, 5s), Status(Errc::shut_down)) << "b1 still sees a1's clean close";
}

// BUG (two openers of one stale name): a stale output is there, and two processes with that
// `out` open at the same instant. The header promises one of them Errc::exists ("owned by another
// live Interface") and the other a working output. Observed per round instead: both get
// `exists` (most often); one gets `exists` and the other's output is shut or unlinked by the
// loser's cleanup; or *both* open successfully and one owns a file no longer at the name. Root
// cause: create_output() (src/queue/interface.cpp:254-276) decides "stale" on one inode, then
// PurgeAndCreate rename()s over whatever is at the name by then (possibly a live owner's new
// file), publishes before locking, and maps/locks by name; open()'s catch (:495-501) then shuts
// and unlinks the file at the name without checking that it ever held its lock.
TEST_F(InterfaceStressTest, TwoOpenersOfAStaleNameLeaveOneWorkingOwner) {
  std::map<std::string, int> outcomes;  // "r1,r2" -> rounds
  for (int round = 0; round < 40; ++round) {
    leave_stale("dup");
    struct Sync {
      std::atomic<int> go, done;
    };
    Shared<Sync> sync;
    auto body = [&]() -> int {
      while (sync->go.load() == 0) {
      }
      Interface i(pair_spec("dup", "dup"));  // loopback: no peer needed
      int rc = 0;
      try {
        i.open();
      } catch (const Error& e) {
        rc = e.errc() == Errc::exists ? 1 : code_of(e.errc());
      }
      sync->done.fetch_add(1);
      while (sync->done.load() < 2) {
      }
      std::this_thread::sleep_for(5ms);  // the loser's cleanup has run
      if (rc != 0) return rc;
      // The winner's output must be intact: its file, not shut, and it still carries samples.
      if (i.out_queue().is_shut()) return 2;
      try {
        const QueueInfo there = Queue::open(queue_path("dup"), QueueExpect{.writable = false}).info();
        if (there.creator_pid != ::getpid() || there.creation_time_ns != i.out_queue().info().creation_time_ns) return 3;
      } catch (const Error&) {
        return 4;  // its file was removed
      }
      const SignalValue v = SignalValue::of(7.0);
      Sample s;
      if (!i.write(std::span(&v, 1), 1s).ok() || !i.read(s, 1s).ok() || s.values.at(0).f != 7.0) return 5;
      return 0;
    };
    const pid_t p1 = spawn(body);
    const pid_t p2 = spawn(body);
    sync->go.store(1);
    int r[2] = {test::reap(p1, 10), test::reap(p2, 10)};
    if (r[0] > r[1]) std::swap(r[0], r[1]);
    ++outcomes[std::to_string(r[0]) + "," + std::to_string(r[1])];
    std::error_code ec;
    std::filesystem::remove(queue_path("dup"), ec);
  }
  std::string text;
  for (const auto& [k, n] : outcomes) text += " [" + k + "] x" + std::to_string(n);
  EXPECT_EQ(outcomes.size(), 1U) << "exit codes per round (expected only [0,1]: one winner, one `exists`):" << text
                                 << "\n  0 winner intact, 1 exists, 2 winner's queue shut, 3 the file at the name is not the"
                                    " winner's (two owners), 4 winner's file removed, "
                                 << code_of(Errc::not_found) << " not_found";
  EXPECT_EQ(outcomes.count("0,1"), 1U);
}

// ---- liveness --------------------------------------------------------------------------------

// The peer's file is unlinked and another file put at its name while both are open; our own
// output is replaced by a foreign file too. Nothing of this confuses liveness (the lock is on
// the inode), samples still flow, a clean close is still `closed`, and our close() does not
// remove the foreign file that now has our output's name.
TEST_F(InterfaceStressTest, FilesRemovedOrReplacedUnderOpenInterfaces) {
  Interface b(pair_spec("b2a", "a2b"));
  std::thread tb([&] { b.open(); });
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  tb.join();
  QueueSpec foreign;
  foreign.capacity = 4;
  foreign.max_values = 1;
  ASSERT_EQ(::unlink(queue_path("b2a").c_str()), 0);
  Queue::create("b2a", foreign);  // a foreign file at the peer's name
  Queue::create("a2b", foreign, OpenMode::PurgeAndCreate);  // and at ours
  EXPECT_TRUE(a.peer_alive());
  EXPECT_TRUE(b.peer_alive());
  for (int k = 0; k < 3; ++k) {
    const SignalValue y = SignalValue::of(static_cast<double>(k));
    ASSERT_EQ(b.write(std::span(&y, 1), 1s), Status(Errc::ok));
  }
  Sample s;
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(a.read(s, 1s), Status(Errc::ok));
    EXPECT_EQ(s.values.at(0).f, k);
  }
  b.close();
  EXPECT_EQ(a.read(s, 2s), Status(Errc::shut_down));
  EXPECT_TRUE(a.peer().closed);
  a.close();
  EXPECT_TRUE(std::filesystem::exists(queue_path("a2b"))) << "close() removed a file that is not its output";
  EXPECT_TRUE(std::filesystem::exists(queue_path("b2a")));
  EXPECT_EQ(dir.entries(), 2);
}

// A reading and a writing thread both blocked when the peer is SIGKILLed: both get
// Errc::peer_exited within their timeout; peer() is safe meanwhile from a third thread.
TEST_F(InterfaceStressTest, ReaderAndWriterThreadsBothSeeThePeerDie) {
  Shared<std::atomic<int>> ready;
  const pid_t child = spawn([&]() -> int {
    Interface b(pair_spec("b2a", "a2b"));
    b.open();
    ready->store(1);
    for (;;) ::pause();  // never reads, never writes
  });
  InterfaceSpec spec = pair_spec("a2b", "b2a");
  spec.capacity = 2;
  Interface a(spec);
  a.open();
  ASSERT_TRUE(test::wait_until([&] { return ready->load() == 1; }, 5));
  const SignalValue x = SignalValue::of(1.0);
  ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));
  ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));
  std::atomic<int> reader_rc{1}, writer_rc{1};
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    Sample s;
    reader_rc = static_cast<int>(a.read(s, 10s).code());
  });
  std::thread writer([&] { writer_rc = static_cast<int>(a.write(std::span(&x, 1), 10s).code()); });
  std::thread watcher([&] {
    while (!stop) {
      (void)a.peer().describe();
      std::this_thread::sleep_for(100us);
    }
  });
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(child, SIGKILL);
  reader.join();
  writer.join();
  stop = true;
  watcher.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(static_cast<Errc>(reader_rc.load()), Errc::peer_exited);
  EXPECT_EQ(static_cast<Errc>(writer_rc.load()), Errc::peer_exited);
  EXPECT_TRUE(a.peer().exited);
  EXPECT_FALSE(a.peer().closed);
  EXPECT_EQ(test::reap(child, 5), -SIGKILL);
}

// BUG (doc mismatch, liveness): "the kernel drops [the lock] when the process dies however it
// dies" is only true when no other process shares the open file description: the lock fd is
// O_CLOEXEC but not closed on fork(), so a child the peer forked (a helper, a multiprocessing
// worker) keeps the dead peer's lock and this side never sees peer_exited while it lives.
// src/queue/interface.cpp:263 (lock_fd) / :365 (peer_fd); fix: pthread_atfork child handler that
// closes every Interface's lock_fd and peer_fd (closing a copy does not drop the parent's lock),
// or document it.
TEST_F(InterfaceStressTest, PeerDeathIsSeenEvenIfThePeerHadForked) {
  Shared<std::atomic<int>> ready;
  const pid_t child = spawn([&]() -> int {
    Interface b(pair_spec("b2a", "a2b"));
    b.open();
    if (::fork() == 0) {  // e.g. a helper process; it never touches the interface
      std::this_thread::sleep_for(1500ms);
      ::_exit(0);
    }
    ready->store(1);
    for (;;) ::pause();
  });
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  ASSERT_TRUE(test::wait_until([&] { return ready->load() == 1; }, 5));
  ::kill(child, SIGKILL);
  EXPECT_EQ(test::reap(child, 5), -SIGKILL);
  Sample s;
  EXPECT_EQ(a.read(s, 1s), Status(Errc::peer_exited)) << "the peer is dead; only its forked helper lives";
}

// BUG (fork): a forked copy of a process with an open Interface that runs its destructor or
// close() (a worker that exit()s with the Interface in a static, an exception unwinding in the
// child, a Python object finalized in a forked worker) shuts and unlinks the *parent's* output:
// close() (interface.cpp:538-547) never checks that it runs in the process that opened. The
// parent is alive and open, yet its writes return `closed` and the peer reads `closed`. Fix:
// remember getpid() at open(); in another process, close() only unmaps and closes descriptors.
TEST_F(InterfaceStressTest, AForkedCopyClosingDoesNotCloseTheOriginal) {
  Shared<std::atomic<int>> written;
  const pid_t child = spawn([&]() -> int {
    Interface b(pair_spec("b2a", "a2b"));
    b.open();
    const pid_t helper = ::fork();
    if (helper == 0) {
      b.close();  // what ~Interface does when the helper's copy is destroyed
      ::_exit(0);
    }
    ::waitpid(helper, nullptr, 0);
    for (int k = 0; k < 3; ++k) {
      const SignalValue y = SignalValue::of(static_cast<double>(k));
      if (!b.write(std::span(&y, 1), 1s).ok()) return 10 + k;
    }
    written->store(1);
    for (;;) ::pause();
  });
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  ASSERT_TRUE(test::wait_until([&] { return written->load() == 1 || test::still_running(child) == false; }, 5));
  Sample s;
  EXPECT_EQ(a.read(s, 1s), Status(Errc::ok)) << "the peer is alive and open";
  EXPECT_TRUE(a.peer_alive());
  ::kill(child, SIGKILL);
  EXPECT_EQ(test::reap(child, 5), -SIGKILL) << "10: the peer's own write returned `closed`";
}

// BUG (minor, data loss): once this side *knows* the peer closed (read() returned `closed`), a
// write still returns ok when the rate limit says "not yet": the sample is accepted and never
// delivered, although peer().closed is already true. alive_lazily() (interface.cpp:169) returns
// true without looking at the known state; fix: return false at once when peer.exited/closed is
// set (an atomic flag), rate-limiting only the fcntl.
TEST_F(InterfaceStressTest, WriteAfterTheReaderSawACleanCloseIsNotAccepted) {
  InterfaceSpec sb = pair_spec("b2a", "a2b");
  Interface b(sb);
  std::thread tb([&] { b.open(); });
  InterfaceSpec sa = pair_spec("a2b", "b2a");
  sa.liveness_interval = 2s;
  Interface a(sa);
  a.open();
  tb.join();
  const SignalValue x = SignalValue::of(1.0);
  ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));  // checks liveness now, next in 2 s
  b.close();
  Sample s;
  ASSERT_EQ(a.read(s, 1s), Status(Errc::shut_down));
  ASSERT_TRUE(a.peer().closed);
  EXPECT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::shut_down)) << "accepted for a peer known to be gone";
}

// BUG (minor, cosmetic): a peer that closed cleanly is described as "is gone (its queue lock was
// released)": alive() sets `exited` together with `closed` (interface.cpp:156-162) and
// PeerStatus::describe() tests `exited` before `closed` (:104-105), so its "closed the interface"
// line is reached only before the next liveness check. Fix: test `closed` first.
TEST_F(InterfaceStressTest, ACleanCloseIsDescribedAsOne) {
  Interface b(pair_spec("b2a", "a2b"));
  std::thread tb([&] { b.open(); });
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  tb.join();
  b.close();
  Sample s;
  ASSERT_EQ(a.read(s, 1s), Status(Errc::shut_down));
  EXPECT_FALSE(a.peer_alive());
  EXPECT_TRUE(a.peer().closed);
  EXPECT_NE(a.peer().describe().find("closed"), std::string::npos) << a.peer().describe();
}

// ---- signals -----------------------------------------------------------------------------------

void on_usr1(int) {}

// BUG (C++ header contract): a signal handled by the application (any handler, even with
// SA_RESTART: FUTEX_WAIT with a timeout is never restarted) that hits a thread waiting in read()
// or write() makes it return Errc::interrupted, a code include/shmlink/interface.hpp does not list
// for either (read: ok, timeout, would_block, closed, peer_exited). The C API documents it
// (include/shmlink.h, shmlink_interface_write_values/read: INTERRUPTED) and the Python binding
// loops on it; the Interface passes Queue's `interrupted` through (interface.cpp:197-198,
// :215-216). Fix: either list `interrupted` in interface.hpp (then flip the two expectations
// below to Errc::interrupted and enable the test), or keep waiting until the deadline.
// Decision: interrupted is part of the contract (as for Queue and the C API).
TEST_F(InterfaceStressTest, ASignalEndsAWaitingReadOrWriteWithInterrupted) {
  struct sigaction sa {}, old {};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  ::sigemptyset(&sa.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  InterfaceSpec sb = pair_spec("b2a", "a2b");
  sb.wait = WaitMode::futex;
  Interface b(sb);
  std::thread tb([&] { b.open(); });
  InterfaceSpec spec = pair_spec("a2b", "b2a");
  spec.wait = WaitMode::futex;
  spec.capacity = 2;
  Interface a(spec);
  a.open();
  tb.join();
  const pthread_t me = ::pthread_self();
  std::atomic<bool> stop{false};
  std::thread pinger([&] {
    while (!stop) {
      std::this_thread::sleep_for(30ms);
      ::pthread_kill(me, SIGUSR1);
    }
  });
  Sample s;
  const Status r = a.read(s, 300ms);
  const SignalValue x = SignalValue::of(1.0);
  (void)a.write(std::span(&x, 1), 0ns);
  (void)a.write(std::span(&x, 1), 0ns);
  const Status w = a.write(std::span(&x, 1), 300ms);
  stop = true;
  pinger.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(r, Status(Errc::interrupted));
  EXPECT_EQ(w, Status(Errc::interrupted));
}

// ---- exec ----------------------------------------------------------------------------------------

InterfaceSpec exec_spec(std::vector<std::string> argv) {
  InterfaceSpec s = pair_spec("host2peer", "peer2host");
  s.exec = std::move(argv);
  return s;
}

/// A private scratch directory outside the stream directory.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string t = "/tmp/shmlink-stress-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path = t;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// What a launched peer gets: the two names (replacing stale values of this process's
// environment, once each), the rest of the environment, and no descriptor of ours (in
// particular not the lock of an unrelated open Interface, which would outlive us in the child).
// The command here is a shell that records all that and exits 5: open() reports peer_exited
// with the status and leaves nothing behind.
TEST_F(InterfaceStressTest, ExecPeerGetsTheNamesAndNoDescriptors) {
  ScratchDir scratch;
  Interface unrelated(pair_spec("unrelated", "unrelated"));  // holds a lock fd and a mapping
  unrelated.open();
  ::setenv("SHMLINK_INTERFACE_IN", "stale_in", 1);
  ::setenv("SHMLINK_STRESS_MARK", "kept", 1);
  const std::string script = "env > " + scratch.path + "/env; ls -l /proc/$$/fd > " + scratch.path + "/fds; exit 5";
  Interface a(exec_spec({"sh", "-c", script}));
  try {
    a.open();
    ADD_FAILURE() << "attached to a shell";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::peer_exited) << e.what();
    EXPECT_NE(std::string(e.what()).find("status 5"), std::string::npos) << e.what();
  }
  ::unsetenv("SHMLINK_INTERFACE_IN");
  ::unsetenv("SHMLINK_STRESS_MARK");
  EXPECT_EQ(a.peer().exit_code, 5);
  const std::string env = slurp(scratch.path + "/env");
  EXPECT_NE(env.find("SHMLINK_INTERFACE_IN=host2peer\n"), std::string::npos) << env;
  EXPECT_NE(env.find("SHMLINK_INTERFACE_OUT=peer2host\n"), std::string::npos) << env;
  EXPECT_EQ(env.find("stale_in"), std::string::npos) << "the caller's own value must be replaced";
  EXPECT_NE(env.find("SHMLINK_STRESS_MARK=kept"), std::string::npos);
  EXPECT_NE(env.find("SHMLINK_DIR=" + dir.path()), std::string::npos) << "the child must find the same directory";
  const std::string fds = slurp(scratch.path + "/fds");
  EXPECT_FALSE(fds.empty());
  EXPECT_EQ(fds.find(dir.path()), std::string::npos) << "descriptors leaked into the child:\n" << fds;
  EXPECT_EQ(fds.find("queue.shm"), std::string::npos) << fds;
  unrelated.close();
  EXPECT_EQ(dir.entries(), 0);
}

// BUG (exec): the peer is launched with posix_spawnp() and no attributes, so it inherits the
// caller's signal mask (and ignored dispositions). An application that blocks SIGTERM/SIGINT in
// its threads (to take them through sigwait/signalfd, as simulators do) launches a peer that
// close() cannot stop with SIGTERM: it waits stop_timeout twice and SIGKILLs it.
// src/queue/interface.cpp:299; fix: posix_spawnattr with POSIX_SPAWN_SETSIGMASK (empty mask) and
// POSIX_SPAWN_SETSIGDEF (all signals to SIG_DFL).
TEST_F(InterfaceStressTest, ExecPeerDoesNotInheritTheCallersBlockedSignals) {
  sigset_t term, old;
  ::sigemptyset(&term);
  ::sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  InterfaceSpec spec = exec_spec({INTERFACE_PEER_PATH, "sleep"});  // never attaches
  spec.attach_timeout = 200ms;
  spec.stop_timeout = 100ms;
  Interface a(spec);
  EXPECT_THROW(a.open(), Error);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_TRUE(a.peer().exited);
  EXPECT_EQ(a.peer().term_signal, SIGTERM) << a.peer().describe();
}

// BUG (exec, close): close() keeps this side's lock until the launched peer has exited
// (interface.cpp:543-546: shutdown, stop_child, *then* remove_output and release). A peer that is
// blocked in write() because this side stopped reading (a full queue) cannot see the shutdown of
// a queue it is not reading, and its liveness check finds the lock still held: it is always
// SIGTERMed after stop_timeout instead of exiting by itself ("how long a launched peer gets to
// exit by itself after this side's output was shut"). open()'s failure path already lets go
// first (:495-501); fix: the same order in close() (shutdown, remove_output, release, then
// stop_child), and/or make a write return `closed` once the peer's own output is shut.
TEST_F(InterfaceStressTest, ExecPeerBlockedInWriteExitsByItselfOnClose) {
  InterfaceSpec spec = exec_spec({INTERFACE_PEER_PATH, "echo"});
  spec.stop_timeout = 300ms;
  Interface a(spec);
  a.export_signal(0, "x");
  a.import_signal(0, "y");
  a.open();
  // Never read the replies: the peer's output (512 cells) fills, the peer blocks in write(),
  // stops reading, and then ours fills too.
  const SignalValue x = SignalValue::of(1.0);
  int sent = 0;
  while (sent < 2000 && a.write(std::span(&x, 1), 200ms).ok()) ++sent;
  ASSERT_LT(sent, 2000) << "the peer never blocked";
  a.close();
  EXPECT_TRUE(a.peer().exited);
  EXPECT_EQ(a.peer().term_signal, 0) << "it had to be stopped: " << a.peer().describe();
}

// BUG (exec, close): the peer is signalled by pid only, so when `exec` is a wrapper (a shell
// running the real peer as its child, as in {"sh", "-c", "setup; peer"}), close() stops the
// wrapper and the real peer outlives close(), orphaned (here: one that ignores SIGTERM and never
// reads). interface.cpp:299 and :326-329; fix: POSIX_SPAWN_SETPGROUP (own process group) and
// kill(-pgid, ...) in stop_child(), or document that exec must not be a wrapper.
TEST_F(InterfaceStressTest, ExecPeerStartedThroughAWrapperDoesNotOutliveClose) {
  InterfaceSpec spec = exec_spec({"sh", "-c", std::string(INTERFACE_PEER_PATH) + " stubborn; exit 0"});
  spec.stop_timeout = 100ms;
  Interface a(spec);
  a.export_signal(0, "x");
  a.import_signal(0, "y");
  a.open();
  const pid_t real_peer = a.in_queue().info().creator_pid;  // the shell's child
  ASSERT_NE(real_peer, a.peer().pid);
  a.close();
  EXPECT_TRUE(a.peer().exited);
  // Gone, or a zombie waiting for whoever adopted it to reap it.
  const auto gone = [&] {
    if (::kill(real_peer, 0) != 0) return true;
    std::ifstream stat("/proc/" + std::to_string(real_peer) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto paren = text.rfind(')');
    return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
  };
  const bool orphan = !test::wait_until(gone, 5);
  if (orphan) ::kill(real_peer, SIGKILL);  // do not leave it behind
  EXPECT_FALSE(orphan) << "the real peer (pid " << real_peer << ") outlived close()";
}

// An application that ignores SIGCHLD (children reaped by the kernel): nothing hangs, no zombie
// is left, exits and deaths are still reported (without a status: it is gone), close() of a
// stubborn peer still returns.
TEST_F(InterfaceStressTest, SigchldIgnoredByTheApplication) {
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  ::sigemptyset(&ign.sa_mask);
  ASSERT_EQ(::sigaction(SIGCHLD, &ign, &old), 0);
  const auto t0 = std::chrono::steady_clock::now();
  {
    Interface a(exec_spec({INTERFACE_PEER_PATH, "echo"}));
    a.export_signal(0, "x");
    a.import_signal(0, "y");
    ASSERT_NO_THROW(a.open());
    EXPECT_EQ(exchange(a, 20), 0);
    const pid_t pid = a.peer().pid;
    a.close();
    EXPECT_TRUE(a.peer().exited) << a.peer().describe();
    EXPECT_NE(::kill(pid, 0), 0) << "no process (and no zombie) is left";
  }
  {
    Interface a(exec_spec({INTERFACE_PEER_PATH, "exit", "3"}));
    try {
      a.open();
      ADD_FAILURE() << "attached to a peer that exited";
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::peer_exited) << e.what();
    }
  }
  {
    InterfaceSpec spec = exec_spec({INTERFACE_PEER_PATH, "stubborn"});
    spec.stop_timeout = 100ms;
    Interface a(spec);
    a.export_signal(0, "x");
    a.import_signal(0, "y");
    ASSERT_NO_THROW(a.open());
    const pid_t pid = a.peer().pid;
    a.close();
    EXPECT_TRUE(a.peer().exited);
    EXPECT_NE(::kill(pid, 0), 0);
  }
  ::sigaction(SIGCHLD, &old, nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename(), "peer2host.queue.shm") << "only the SIGKILLed stubborn peer's output is left (stale)";
}

// Every way open() can fail with a launched peer leaves no process, no zombie and no file.
TEST_F(InterfaceStressTest, FailedExecOpensLeaveNoZombieAndNoFile) {
  const std::vector<std::vector<std::string>> cmds = {
      {"/nonexistent/peer"}, {INTERFACE_PEER_PATH, "exit", "0"}, {INTERFACE_PEER_PATH, "sleep"}};
  for (const auto& cmd : cmds) {
    SCOPED_TRACE(cmd.back());
    InterfaceSpec spec = exec_spec(cmd);
    spec.attach_timeout = 150ms;
    spec.stop_timeout = 100ms;
    Interface a(spec);
    EXPECT_THROW(a.open(), Error);
    if (a.peer().pid > 0) {
      errno = 0;
      EXPECT_EQ(::waitpid(a.peer().pid, nullptr, WNOHANG), -1) << "not reaped";
      EXPECT_EQ(errno, ECHILD);
    }
    EXPECT_EQ(dir.entries(), 0);
  }
}

// ---- data ----------------------------------------------------------------------------------------

// Full duplex between two processes, a writing and a reading thread on each side, a small queue
// (writers block often): every sample arrives once, in order, with its values; then the clean
// close is seen. Hybrid, futex and polling waits.
TEST_F(InterfaceStressTest, FullDuplexDeliversEverySampleExactlyOnce) {
  constexpr int kSamples = 20000;
  for (const WaitMode w : {WaitMode::hybrid, WaitMode::futex, WaitMode::polling}) {
    SCOPED_TRACE(static_cast<int>(w));
    auto side = [w](const char* out, const char* in, bool closes_first) -> int {
      InterfaceSpec spec = pair_spec(out, in);
      spec.capacity = 8;
      spec.max_values = 2;
      spec.wait = w;
      Interface i(spec);
      try {
        i.open();
      } catch (const Error& e) {
        return code_of(e.errc());
      }
      std::atomic<int> wrc{0};
      std::thread writer([&] {
        for (int k = 0; k < kSamples; ++k) {
          const SignalValue v[2] = {SignalValue::of(static_cast<std::int64_t>(k)), SignalValue::of(-1.0 * k)};
          if (!i.write(v, 5s).ok()) {
            wrc = 1;
            return;
          }
        }
      });
      Sample s;
      int rc = 0;
      for (int k = 0; k < kSamples && rc == 0; ++k) {
        const Status st = i.read(s, 5s);
        if (!st.ok()) rc = code_of(st.code());
        else if (s.sequence != static_cast<std::uint64_t>(k) || s.values.size() != 2 || s.values[0].i != k ||
                 s.values[1].f != -1.0 * k)
          rc = 2;
      }
      writer.join();
      if (rc != 0) return rc;
      if (wrc != 0) return 3;
      if (i.next_sequence() != static_cast<std::uint64_t>(kSamples)) return 5;
      if (!closes_first && i.read(s, 5s).code() != Errc::shut_down) return 4;
      return 0;
    };
    const pid_t b = spawn([&] { return side("b2a", "a2b", false); });
    EXPECT_EQ(side("a2b", "b2a", true), 0);
    EXPECT_EQ(test::reap(b, 20), 0);
  }
  EXPECT_EQ(dir.entries(), 0);
}

// Samples written just before a close are all drained by the peer before it reads `closed`,
// also when the writer blocked on a full queue for most of them.
TEST_F(InterfaceStressTest, EverythingWrittenBeforeCloseIsDrained) {
  constexpr int kSamples = 500;
  Shared<std::atomic<int>> got;
  const pid_t b = spawn([&] {
    Interface i(pair_spec("b2a", "a2b"));
    i.open();
    Sample s;
    for (;;) {
      const Status st = i.read(s, 5s);
      if (st.code() == Errc::shut_down) return got->load() == kSamples ? 0 : 1;
      if (!st.ok()) return code_of(st.code());
      if (s.sequence != static_cast<std::uint64_t>(got->load())) return 2;
      got->fetch_add(1);
    }
  });
  {
    InterfaceSpec spec = pair_spec("a2b", "b2a");
    spec.capacity = 4;
    Interface a(spec);
    a.open();
    const SignalValue x = SignalValue::of(0.5);
    for (int k = 0; k < kSamples; ++k) ASSERT_EQ(a.write(std::span(&x, 1), 5s), Status(Errc::ok)) << k;
  }  // ~Interface closes at once
  EXPECT_EQ(test::reap(b, 10), 0) << got->load() << " of " << kSamples;
}

// ---- resources -----------------------------------------------------------------------------------

// Many open/close cycles (paired, loopback and failed opens) leak no descriptor and no file.
TEST_F(InterfaceStressTest, ManyCyclesLeakNoDescriptorsOrFiles) {
  auto cycle = [&] {
    std::atomic<int> rc{-1};
    std::thread tb([&] {
      Interface b(pair_spec("b2a", "a2b"));
      b.export_signal(0, "y");
      b.open();
      rc = echo(b);
    });
    Interface a(pair_spec("a2b", "b2a"));
    a.export_signal(0, "x");
    a.open();
    EXPECT_EQ(exchange(a, 3), 0);
    a.close();
    tb.join();
    EXPECT_EQ(rc.load(), 0);
    Interface loop(pair_spec("loop", "loop"));
    loop.open();
    loop.close();
    Interface lonely(pair_spec("lonely", "nobody", 5ms));
    EXPECT_THROW(lonely.open(), Error);
    Interface owner(pair_spec("taken", "taken"));
    owner.open();
    Interface second(pair_spec("taken", "x"));
    EXPECT_THROW(second.open(), Error);
  };
  cycle();  // warm up (gtest, allocator)
  const int before = open_fds();
  for (int k = 0; k < 25; ++k) cycle();
  EXPECT_EQ(open_fds(), before);
  EXPECT_EQ(dir.entries(), 0);
}

}  // namespace
