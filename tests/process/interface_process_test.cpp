// SPDX-License-Identifier: MIT
// The duplex Interface (include/shmlink/interface.hpp) between threads, forked processes and
// launched peers: either side first, lockstep exchange with sequence numbers, signal-table
// checks at attach, stale and owned outputs, a peer SIGKILLed mid-run (the other side gets
// Errc::peer_exited within its timeout, after everything the peer wrote), a clean close
// (drain, then closed), and `exec` (exit status, not found, never attaching, stubborn peers).
#include "interface_helpers.hpp"

#include <shmlink/interface.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
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
using test::ChildReport;
using test::echo;
using test::exchange;
using test::make_side;
const auto spawn = test::spawn_tied;
using test::Shared;

InterfaceSpec pair_spec(const char* out, const char* in, WaitMode wait = WaitMode::hybrid) {
  InterfaceSpec s;
  s.out = out;
  s.in = in;
  s.wait = wait;
  s.capacity = 64;
  s.attach_timeout = 10s;
  return s;
}

class InterfaceTest : public ::testing::Test {
 protected:
  test::TempStreamDir dir;
};

TEST_F(InterfaceTest, LoopbackReadsWhatItWrites) {
  InterfaceSpec spec = pair_spec("loop", "loop");
  Interface i(spec);
  i.export_signal(0, "a", SignalType::f64);
  i.export_signal(2, "n", SignalType::i64);
  i.import_signal(2, "n", SignalType::i64);
  i.open();
  ASSERT_TRUE(i.is_open());
  EXPECT_EQ(i.out_queue().max_values(), 3U);
  for (int k = 0; k < 5; ++k) {
    const SignalValue v[3] = {SignalValue::of(1.5 * k), SignalValue::of(0.0), SignalValue::of(std::int64_t{k})};
    ASSERT_EQ(i.write(v, 1s), Status(Errc::ok));
  }
  EXPECT_EQ(i.next_sequence(), 5U);
  Sample s;
  for (int k = 0; k < 5; ++k) {
    ASSERT_EQ(i.read(s, 1s), Status(Errc::ok));
    EXPECT_EQ(s.sequence, static_cast<std::uint64_t>(k));
    EXPECT_EQ(s.values[0].f, 1.5 * k);
    EXPECT_EQ(s.values[2].i, k);
    EXPECT_NE(s.flags & kSampleHasTsOrigin, 0U);
  }
  EXPECT_EQ(i.read(s, 0ns), Status(Errc::would_block));
  EXPECT_EQ(i.read(s, 20ms), Status(Errc::timeout));
  i.close();
  EXPECT_FALSE(i.is_open());
  EXPECT_EQ(dir.entries(), 0) << "close() removes the output queue";
  EXPECT_EQ(i.read(s, 0ns), Status(Errc::closed));
}

TEST_F(InterfaceTest, EitherSideMayStartFirstInThreads) {
  for (const bool a_first : {true, false}) {
    SCOPED_TRACE(a_first ? "A first" : "B first");
    std::atomic<int> echo_rc{-1};
    std::thread b([&] {
      if (a_first) std::this_thread::sleep_for(100ms);
      Interface side = make_side(pair_spec("b2a", "a2b"), false);
      side.open();
      echo_rc = echo(side);
    });
    if (!a_first) std::this_thread::sleep_for(100ms);
    Interface a = make_side(pair_spec("a2b", "b2a"), true);
    a.open();
    ASSERT_EQ(a.peer_signals().size(), 1U);
    EXPECT_EQ(a.peer_signals()[0].name, "y");
    EXPECT_EQ(a.peer().pid, ::getpid());
    exchange(a, 500);
    a.close();
    b.join();
    EXPECT_EQ(echo_rc.load(), 0) << "the echo side reads `closed` after draining";
    EXPECT_EQ(dir.entries(), 0);
  }
}

TEST_F(InterfaceTest, PollingAndFutexModes) {
  for (const WaitMode w : {WaitMode::polling, WaitMode::futex}) {
    std::atomic<int> echo_rc{-1};
    std::thread b([&] {
      Interface side = make_side(pair_spec("b2a", "a2b", w), false);
      side.open();
      echo_rc = echo(side);
    });
    Interface a = make_side(pair_spec("a2b", "b2a", w), true);
    a.open();
    EXPECT_EQ(a.in_queue().wait_mode(), w);
    exchange(a, 300);
    a.close();
    b.join();
    EXPECT_EQ(echo_rc.load(), 0);
  }
}

TEST_F(InterfaceTest, NoPeerTimesOutNamingTheQueueAndLeavesNothing) {
  InterfaceSpec spec = pair_spec("lonely_out", "lonely_in");
  spec.attach_timeout = 150ms;
  Interface i(spec);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    i.open();
    FAIL() << "open() without a peer succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::timeout);
    EXPECT_NE(std::string(e.what()).find("lonely_in"), std::string::npos) << e.what();
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  EXPECT_FALSE(i.is_open());
  EXPECT_EQ(dir.entries(), 0) << "a failed open removes its output";
}

/// In a forked child: opens an interface (out, in) with a 300 ms attach_timeout and returns 0 when
/// open() fails with `code` and a message containing `text`, 1 when it succeeds, 2 otherwise.
int open_fails_with(const char* out, const char* in, Errc code, const std::string& text) {
  InterfaceSpec spec = pair_spec(out, in);
  spec.attach_timeout = 300ms;
  Interface i(spec);
  try {
    i.open();
    return 1;
  } catch (const Error& e) {
    return e.errc() == code && std::string(e.what()).find(text) != std::string::npos ? 0 : 2;
  }
}

// Issue 17 item 9: a FIFO under the peer's queue name (any co-user of the directory can make
// one) made open() block in open(2) for ever, ignoring attach_timeout. Now the name is opened
// non-blocking, found not to be a regular file, and open() times out saying so. In a child: a
// hang fails the test (-1000) instead of blocking the suite.
TEST_F(InterfaceTest, FifoAtThePeersQueueNameTimesOutInsteadOfHanging) {
  const std::string fifo = queue_path("fifo_in");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const pid_t child = test::spawn([] { return open_fails_with("fifo_out", "fifo_in", Errc::timeout, "not a regular file"); });
  EXPECT_EQ(test::reap(child, 20), 0) << "-1000: Interface::open() hung on the FIFO";
  struct stat st {};
  EXPECT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO is not ours to remove";
}

// A FIFO (or symbolic link) under our own output's name is not a stale queue of a dead owner:
// open() refuses with a message saying so and leaves it where it is.
TEST_F(InterfaceTest, NonRegularFileAtTheOutputNameIsRefusedAndLeftAlone) {
  const std::string fifo = queue_path("taken_out");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const pid_t child = test::spawn([] { return open_fails_with("taken_out", "taken_in", Errc::exists, "not a regular file"); });
  EXPECT_EQ(test::reap(child, 20), 0);
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0) << "the FIFO was removed";
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(InterfaceTest, MismatchedImportsAreLayoutErrorsAtAttach) {
  struct Case {
    SignalType type;
    const char* name;
    const char* unit;
    std::uint32_t index;
    const char* expect;  // in the message
  };
  const Case cases[] = {
      {SignalType::i64, "y", "", 0, "i64"},
      {SignalType::f64, "z", "", 0, "'y'"},
      {SignalType::f64, "y", "A", 0, "'A'"},
      {SignalType::f64, "w", "", 7, "values per sample"},
  };
  // Each case on its own pair of queues, all four side by side: every b waits out its attach
  // timeout (its a refuses b's layout and never attaches), so one after the other they took 4 x 3 s.
  const auto run_case = [](const Case& c, std::size_t k) {
    SCOPED_TRACE(c.expect);
    const std::string b2a = "b2a_" + std::to_string(k);
    const std::string a2b = "a2b_" + std::to_string(k);
    // b waits for a peer that never attaches: a short attach timeout keeps each case from
    // waiting out the default 10 s; a opens well within it.
    InterfaceSpec bspec = pair_spec(b2a.c_str(), a2b.c_str());
    bspec.attach_timeout = 3s;
    Interface b(bspec);
    b.export_signal(0, "y", SignalType::f64, "V");
    std::thread tb([&] {
      try {
        b.open();
      } catch (const Error&) {
      }
    });
    Interface a(pair_spec(a2b.c_str(), b2a.c_str()));
    a.export_signal(0, "x");
    a.import_signal(c.index, c.name, c.type, c.unit);
    try {
      a.open();
      ADD_FAILURE() << "a mismatched import attached";
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::layout);
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(b2a), std::string::npos) << e.what();
    }
    tb.join();
    b.close();
  };
  std::vector<std::thread> runs;
  for (std::size_t k = 0; k < std::size(cases); ++k) runs.emplace_back(run_case, std::cref(cases[k]), k);
  for (std::thread& t : runs) t.join();
}

TEST_F(InterfaceTest, SignalRegistrationIsChecked) {
  Interface i(pair_spec("o", "i"));
  i.export_signal(1, "a");
  EXPECT_THROW(i.export_signal(1, "b"), Error);
  EXPECT_THROW(i.export_signal(kMaxSampleValues, "c"), Error);
  EXPECT_THROW(i.export_signal(2, std::string(40, 'n')), Error);
  EXPECT_THROW(i.export_signal(2, "u", SignalType::f64, std::string(16, 'u')), Error);
  EXPECT_THROW(i.import_signal(3, "t", SignalType::invalid), Error);
  InterfaceSpec bad = pair_spec("o", "");
  EXPECT_THROW(Interface(bad).open(), Error);
  InterfaceSpec small = pair_spec("o", "i");
  small.max_values = 1;
  Interface s(small);
  s.export_signal(4, "far");
  try {
    s.open();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::invalid_argument);
  }
  Interface loop(pair_spec("l", "l"));
  loop.open();
  EXPECT_THROW(loop.export_signal(0, "late"), Error);
  Interface empty;
  EXPECT_EQ(empty.read(*std::make_unique<Sample>(), 0ns), Status(Errc::closed));
}

TEST_F(InterfaceTest, AnOutputOwnedByALiveInterfaceIsRefusedAStaleOneReplaced) {
  Interface owner(pair_spec("shared_out", "shared_out"));
  owner.open();
  Interface second(pair_spec("shared_out", "somewhere"));
  try {
    second.open();
    FAIL() << "two interfaces own one output";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find("shared_out"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::filesystem::exists(queue_path("shared_out"))) << "the owner's file survives";
  owner.close();

  // A stale output: a queue file nobody holds the lock of (its process died).
  Queue::create("stale_out", QueueSpec{});
  const pid_t child = spawn([] {
    Interface i(pair_spec("stale_in", "stale_out"));
    i.open();  // must not take the stale file for a live peer
    return 0;
  });
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(test::still_running(child)) << "a stale file counted as an attached peer";
  Interface fresh(pair_spec("stale_out", "stale_in"));
  fresh.open();  // replaces the stale file, then the child attaches
  EXPECT_EQ(test::reap(child, 20), 0);
  fresh.close();
}

/// Forks the peer of the a2b/b2a pair: it exports value 0 as "y" (f64, "V"), writes 0..count-1,
/// then closes cleanly (`then_close`), or stores `count` into `*written` and waits to be killed.
pid_t spawn_writer(int count, bool then_close, Shared<std::atomic<int>>* written = nullptr) {
  return spawn([=]() -> int {
    Interface b(pair_spec("b2a", "a2b"));
    b.export_signal(0, "y", SignalType::f64, "V");
    b.open();
    for (int k = 0; k < count; ++k) {
      const SignalValue y = SignalValue::of(static_cast<double>(k));
      if (!b.write(std::span(&y, 1), 5s).ok()) return 2;
    }
    if (then_close) {
      b.close();
      return 0;
    }
    if (written != nullptr) (*written)->store(count);
    for (;;) ::pause();  // SIGKILLed here, holding its lock until the kernel drops it
  });
}

TEST_F(InterfaceTest, PeerKilledMidRunIsReportedAfterItsSamples) {
  Shared<std::atomic<int>> written;
  const pid_t child = spawn_writer(10, false, &written);
  Interface a(pair_spec("a2b", "b2a"));
  a.import_signal(0, "y", SignalType::f64);
  a.open();
  ASSERT_TRUE(test::wait_until([&] { return written->load() == 10; }));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  EXPECT_EQ(test::reap(child, 10), -SIGKILL);
  Sample s;
  for (int k = 0; k < 10; ++k) {
    ASSERT_EQ(a.read(s, 5s), Status(Errc::ok)) << "sample " << k << " written before the kill";
    EXPECT_EQ(s.values[0].f, k);
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(a.read(s, 30s), Status(Errc::peer_exited));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "noticed within the read, not at its timeout";
  EXPECT_TRUE(a.peer().exited);
  EXPECT_EQ(a.peer().pid, child);
  const SignalValue x = SignalValue::of(1.0);
  EXPECT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::peer_exited));
}

TEST_F(InterfaceTest, WriterBlockedOnAFullQueueSeesThePeerDie) {
  const pid_t child = spawn([&]() -> int {
    Interface b(pair_spec("b2a", "a2b"));
    b.open();
    for (;;) ::pause();  // never reads
  });
  InterfaceSpec spec = pair_spec("a2b", "b2a");
  spec.capacity = 4;
  Interface a(spec);
  a.open();
  const SignalValue x = SignalValue::of(1.0);
  for (int k = 0; k < 4; ++k) ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));
  EXPECT_EQ(a.write(std::span(&x, 1), 0ns), Status(Errc::would_block));
  EXPECT_EQ(a.write(std::span(&x, 1), 50ms), Status(Errc::timeout));
  std::thread killer([&] {
    std::this_thread::sleep_for(100ms);
    ::kill(child, SIGKILL);
  });
  EXPECT_EQ(a.write(std::span(&x, 1), 30s), Status(Errc::peer_exited));
  killer.join();
  EXPECT_EQ(test::reap(child, 10), -SIGKILL);
}

TEST_F(InterfaceTest, CleanCloseIsDrainedThenClosed) {
  const pid_t child = spawn_writer(20, true);
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  EXPECT_EQ(test::reap(child, 20), 0);
  Sample s;
  for (int k = 0; k < 20; ++k) ASSERT_EQ(a.read(s, 5s), Status(Errc::ok)) << k;
  EXPECT_EQ(a.read(s, 5s), Status(Errc::shut_down));
  EXPECT_TRUE(a.peer().closed);
  const SignalValue x = SignalValue::of(1.0);
  EXPECT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::shut_down)) << "nobody will read it";
}

// ---- read_burst ------------------------------------------------------------------------

/// What a read_burst handler saw of one sample.
struct Seen {
  std::uint64_t sequence = 0;
  double value = 0;
  std::uint32_t flags = 0;
  std::int64_t ts_received_ns = 0;
  const SignalValue* where = nullptr;
};

/// read_burst into a vector of Seen.
Status burst(Interface& i, std::size_t limit, std::vector<Seen>& seen, std::chrono::nanoseconds timeout) {
  seen.clear();
  std::size_t received = 0;
  const Status st = i.read_burst(
      [&](const SampleView& v) noexcept {
        seen.push_back({v.sequence, v.values.empty() ? -1.0 : v.values[0].f, v.flags, v.ts_received_ns, v.values.data()});
      },
      limit, received, timeout);
  EXPECT_EQ(received, seen.size());
  return st;
}

TEST_F(InterfaceTest, ReadBurstHandsOverWhatIsThereFromTheCellsAndWaitsOnlyForTheFirst) {
  Interface i(pair_spec("loop", "loop"));
  i.export_signal(0, "a", SignalType::f64);
  i.open();
  for (int k = 0; k < 5; ++k) {
    const SignalValue v = SignalValue::of(1.5 * k);
    ASSERT_EQ(i.write(std::span(&v, 1), 1s), Status(Errc::ok));
  }
  std::vector<Seen> seen;
  ASSERT_EQ(burst(i, 3, seen, 0ns), Status(Errc::ok));
  ASSERT_EQ(seen.size(), 3U) << "at most `limit`";
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(seen[k].sequence, k);
    EXPECT_EQ(seen[k].value, 1.5 * static_cast<double>(k));
    EXPECT_NE(seen[k].flags & kSampleHasTsReceived, 0U) << "stamped as read() stamps";
    EXPECT_GT(seen[k].ts_received_ns, 0);
  }
  EXPECT_NE(seen[0].where, seen[1].where) << "each view points into its own cell, not one scratch sample";
  ASSERT_EQ(burst(i, 10, seen, 0ns), Status(Errc::ok));
  ASSERT_EQ(seen.size(), 2U) << "as many as are there";
  EXPECT_EQ(seen[1].sequence, 4U);
  EXPECT_EQ(burst(i, 10, seen, 0ns), Status(Errc::would_block));
  EXPECT_EQ(burst(i, 10, seen, 20ms), Status(Errc::timeout));
  EXPECT_TRUE(seen.empty());
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    const SignalValue v = SignalValue::of(7.0);
    EXPECT_EQ(i.write(std::span(&v, 1), 1s), Status(Errc::ok));
  });
  const Status waited = burst(i, 10, seen, 10s);
  writer.join();
  ASSERT_EQ(waited, Status(Errc::ok));
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].value, 7.0);
  EXPECT_NE(seen[0].flags & kSampleHasTsReceived, 0U);
  std::size_t received = 9;
  EXPECT_EQ(i.read_burst([](const SampleView&) noexcept {}, 0, received, 0ns), Status(Errc::ok));
  EXPECT_EQ(received, 0U);
  i.close();
  EXPECT_EQ(burst(i, 10, seen, 0ns), Status(Errc::closed));
}

TEST_F(InterfaceTest, ReadBurstDrainsACleanlyClosedPeerThenAnswersShutDown) {
  const pid_t child = spawn_writer(20, true);
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  EXPECT_EQ(test::reap(child, 20), 0);
  std::vector<Seen> seen;
  std::vector<double> got;
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(burst(a, 8, seen, 5s), Status(Errc::ok)) << round;
    for (const Seen& x : seen) got.push_back(x.value);
  }
  ASSERT_EQ(got.size(), 20U) << "8 + 8 + 4";
  for (std::size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], static_cast<double>(k));
  EXPECT_EQ(burst(a, 8, seen, 5s), Status(Errc::shut_down));
  EXPECT_TRUE(a.peer().closed);
}

TEST_F(InterfaceTest, ReadBurstDeliversWhatAKilledPeerWroteThenPeerExited) {
  Shared<std::atomic<int>> written;
  const pid_t child = spawn_writer(6, false, &written);
  Interface a(pair_spec("a2b", "b2a"));
  a.open();
  ASSERT_TRUE(test::wait_until([&] { return written->load() == 6; }));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  EXPECT_EQ(test::reap(child, 10), -SIGKILL);
  std::vector<Seen> seen;
  ASSERT_EQ(burst(a, 100, seen, 5s), Status(Errc::ok));
  EXPECT_EQ(seen.size(), 6U);
  EXPECT_EQ(burst(a, 100, seen, 30s), Status(Errc::peer_exited));
  EXPECT_TRUE(a.peer().exited);
}

// ---- exec ------------------------------------------------------------------------------

InterfaceSpec exec_spec(std::vector<std::string> argv) {
  InterfaceSpec s = pair_spec("host2peer", "peer2host");
  s.exec = std::move(argv);
  return s;
}

TEST_F(InterfaceTest, ExecLaunchesTheEchoPeerAndReapsIt) {
  Interface a = make_side(exec_spec({INTERFACE_PEER_PATH, "echo"}), true);
  a.open();
  EXPECT_TRUE(a.peer().launched);
  EXPECT_GT(a.peer().pid, 0);
  exchange(a, 200);
  a.close();
  EXPECT_TRUE(a.peer().exited);
  EXPECT_EQ(a.peer().exit_code, 0) << a.peer().describe();
  EXPECT_EQ(a.peer().term_signal, 0);
  EXPECT_EQ(dir.entries(), 0);
}

TEST_F(InterfaceTest, ExecPeerThatExitsBeforeAttachingIsAnErrorWithItsStatus) {
  Interface a(exec_spec({INTERFACE_PEER_PATH, "exit", "3"}));
  try {
    a.open();
    FAIL() << "attached to a peer that exited";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::peer_exited);
    EXPECT_NE(std::string(e.what()).find("status 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a.peer().exit_code, 3);
  EXPECT_EQ(dir.entries(), 0);
}

TEST_F(InterfaceTest, ExecPeerOfAFailedAttachIsStoppedAndLeavesNoFile) {
  // The launched peer attached, then this side refused its table: the peer waits for another
  // incarnation of this side (either side may restart), so close() must stop it, and remove
  // the output it could not remove itself.
  InterfaceSpec spec = exec_spec({INTERFACE_PEER_PATH, "echo"});
  spec.stop_timeout = 100ms;
  Interface a(spec);
  a.export_signal(0, "x");
  a.import_signal(0, "y", SignalType::i64);  // the peer exports an f64
  try {
    a.open();
    FAIL() << "attached despite the type mismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout) << e.what();
  }
  EXPECT_TRUE(a.peer().exited);
  EXPECT_EQ(a.peer().term_signal, SIGTERM) << a.peer().describe();
  EXPECT_EQ(dir.entries(), 0);
}

TEST_F(InterfaceTest, ExecCommandNotFound) {
  Interface a(exec_spec({"/nonexistent/shmlink-peer"}));
  try {
    a.open();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/shmlink-peer"), std::string::npos) << e.what();
  }
}

TEST_F(InterfaceTest, ExecPeerThatNeverAttachesIsStoppedAtTheTimeout) {
  InterfaceSpec spec = exec_spec({INTERFACE_PEER_PATH, "sleep"});
  spec.attach_timeout = 300ms;
  spec.stop_timeout = 100ms;
  Interface a(spec);
  EXPECT_THROW(a.open(), Error);
  EXPECT_TRUE(a.peer().exited) << "the launched peer was stopped and reaped";
  EXPECT_EQ(a.peer().term_signal, SIGTERM);
  EXPECT_NE(::kill(a.peer().pid, 0), 0) << "no process (and no zombie) is left";
}

TEST_F(InterfaceTest, ExecPeerKilledMidRunGivesPeerExitedWithTheSignal) {
  Interface a = make_side(exec_spec({INTERFACE_PEER_PATH, "crash", "50"}), true);
  a.open();
  exchange(a, 50);
  const SignalValue x = SignalValue::of(0.0);
  ASSERT_EQ(a.write(std::span(&x, 1), 1s), Status(Errc::ok));
  Sample s;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(a.read(s, 30s), Status(Errc::peer_exited));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(a.peer().term_signal, SIGKILL) << a.peer().describe();
  EXPECT_NE(a.peer().describe().find("signal 9"), std::string::npos) << a.peer().describe();
  a.close();
}

TEST_F(InterfaceTest, StubbornExecPeerIsKilledOnClose) {
  InterfaceSpec spec = exec_spec({INTERFACE_PEER_PATH, "stubborn"});
  spec.stop_timeout = 100ms;
  Interface a = make_side(spec, true);
  a.open();
  a.close();
  EXPECT_TRUE(a.peer().exited);
  EXPECT_EQ(a.peer().term_signal, SIGKILL) << a.peer().describe();
}

}  // namespace
