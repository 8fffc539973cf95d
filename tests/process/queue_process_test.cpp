// SPDX-License-Identifier: MIT
// Sample queues between real processes (include/shmlink/queue.hpp): MPMC with three producers
// and three consumers delivering every sample exactly once, SPSC order in every wait mode,
// backpressure while the consumer is stopped, timeouts, shutdown waking a blocked peer, and a
// producer SIGKILLed mid-run. Children report through Shared<> memory and exit codes only.
#include "test_util.hpp"

#include <shmlink/queue.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::ChildReport;
using test::Shared;

QueueSpec qspec(QueueKind kind, WaitMode wait, std::uint32_t capacity, std::uint32_t max_values) {
  QueueSpec s;
  s.kind = kind;
  s.wait = wait;
  s.capacity = capacity;
  s.max_values = max_values;
  return s;
}

const char* kind_text(QueueKind k) { return k == QueueKind::mpmc ? "mpmc" : "spsc"; }
const char* wait_text(WaitMode w) {
  return w == WaitMode::polling ? "polling" : w == WaitMode::futex ? "futex" : "hybrid";
}

/// test::spawn, with a child that dies with this process: a child stuck in a broken queue never
/// outlives a test binary that ctest killed.
pid_t spawn(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  return test::spawn([&body, parent] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) return 97;
    return body();
  });
}

/// Reaps every child within one shared budget of `seconds`; returns how many did not exit 0.
int reap_all(const std::vector<pid_t>& pids, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int bad = 0;
  for (pid_t p : pids) {
    const double left = std::chrono::duration<double>(end - std::chrono::steady_clock::now()).count();
    bad += test::reap(p, left > 0.1 ? left : 0.1) != 0;
  }
  return bad;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Sample `n` of a stream: sequence n, values of every type derived from n.
void fill(Sample& s, std::uint64_t n) {
  s.sequence = n;
  s.ts_origin_ns = static_cast<std::int64_t>(n) * 3 + 1;
  s.ts_received_ns = -static_cast<std::int64_t>(n);
  s.flags = kSampleHasSequence | kSampleHasData | (n % 5 == 0 ? kSampleNewFrame : 0U);
  s.values.resize(1 + n % 4);  // lengths 1..4 of max_values 4
  s.values[0] = SignalValue::of(static_cast<std::int64_t>(n));
  if (s.values.size() > 1) s.values[1] = SignalValue::of(static_cast<double>(n) * 0.5);
  if (s.values.size() > 2) s.values[2] = SignalValue::of((n & 1) != 0);
  if (s.values.size() > 3)
    s.values[3] = SignalValue::of(std::complex<float>(static_cast<float>(n % 1000), -static_cast<float>(n % 7)));
}

/// True when `s` is exactly sample `n` as fill() makes it.
bool is_sample(const Sample& s, std::uint64_t n) {
  Sample want;
  fill(want, n);
  if (s.sequence != want.sequence || s.ts_origin_ns != want.ts_origin_ns || s.ts_received_ns != want.ts_received_ns ||
      s.flags != want.flags || s.values.size() != want.values.size())
    return false;
  for (std::size_t i = 0; i < want.values.size(); ++i)
    if (s.values[i].bits != want.values[i].bits) return false;
  return true;
}

// ===== MPMC: 3 producer processes x 3 consumer processes =======================================

constexpr int kProducers = 3;
constexpr int kConsumers = 3;

struct MpmcCtl {
  ChildReport rep;
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
  std::atomic<std::uint64_t> full_hits{0};  // pushes that found the queue full (backpressure seen)
  std::atomic<std::uint64_t> consumed[kConsumers];
  std::atomic<std::uint8_t> seen[kProducers][20000];  // deliveries of (producer, n)
};

/// Producer `p` pushes sequence (p << 32 | n) for n < count; consumers pop until shut_down and
/// check that each producer's samples reach them in increasing n.
void run_mpmc(WaitMode wait, std::uint32_t count) {
  test::TempStreamDir dir;
  ASSERT_LE(count, 20000u);
  auto q = Queue::create("mpmc", qspec(QueueKind::mpmc, wait, 64, 3));
  Shared<MpmcCtl> ctl;
  MpmcCtl* c = &*ctl;
  auto await_go = [c] {
    c->ready.fetch_add(1);
    return test::wait_until([c] { return c->go.load() == 1; });
  };
  std::vector<pid_t> consumers, producers;
  for (int k = 0; k < kConsumers; ++k) {
    consumers.push_back(spawn([=] {
      auto in = Queue::open("mpmc", QueueExpect{3, std::nullopt, QueueKind::mpmc});
      std::int64_t last[kProducers] = {-1, -1, -1};
      Sample s;
      SHMLINK_CHILD_CHECK(&c->rep, await_go(), k);
      for (;;) {
        const Status st = in.pop(s, 20s);
        if (st.code() == Errc::shut_down) break;
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
        const std::uint64_t p = s.sequence >> 32, n = s.sequence & 0xffffffffU;
        SHMLINK_CHILD_CHECK(&c->rep, p < kProducers && n < count, s.sequence);
        // FIFO per producer as one consumer sees it.
        SHMLINK_CHILD_CHECK(&c->rep, static_cast<std::int64_t>(n) > last[p], s.sequence);
        last[p] = static_cast<std::int64_t>(n);
        SHMLINK_CHILD_CHECK(&c->rep, s.values.size() == 3 && s.values[0].i == static_cast<std::int64_t>(p) &&
                                         s.values[1].bits == n * 2654435761U && s.values[2].f == -static_cast<double>(n),
                            s.sequence);
        SHMLINK_CHILD_CHECK(&c->rep, s.ts_origin_ns == static_cast<std::int64_t>(s.sequence), s.sequence);
        c->seen[p][n].fetch_add(1);
        c->consumed[k].fetch_add(1);
      }
      return 0;
    }));
  }
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(spawn([=] {
      auto out = Queue::open("mpmc");
      Sample s;
      s.values.resize(3);
      SHMLINK_CHILD_CHECK(&c->rep, await_go(), 100 + p);
      for (std::uint64_t n = 0; n < count; ++n) {
        s.sequence = static_cast<std::uint64_t>(p) << 32 | n;
        s.ts_origin_ns = static_cast<std::int64_t>(s.sequence);
        s.values[0] = SignalValue::of(static_cast<std::int64_t>(p));
        s.values[1].bits = n * 2654435761U;
        s.values[2] = SignalValue::of(-static_cast<double>(n));
        Status st = out.try_push(s);
        if (st.code() == Errc::would_block) {
          c->full_hits.fetch_add(1);
          st = out.push(s, 20s);
        }
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
      }
      return 0;
    }));
  }
  ASSERT_TRUE(test::wait_until([&] { return c->ready.load() == kProducers + kConsumers; }, 30)) << c->rep.describe();
  c->go.store(1);
  EXPECT_EQ(reap_all(producers, 60), 0) << "producers failed; " << c->rep.describe();
  q.shutdown();  // consumers drain what is left, then get shut_down
  EXPECT_EQ(reap_all(consumers, 30), 0) << "consumers failed; " << c->rep.describe();

  std::uint64_t missing = 0, duplicated = 0, total = 0;
  for (int p = 0; p < kProducers; ++p)
    for (std::uint32_t n = 0; n < count; ++n) {
      const int seen = c->seen[p][n].load();
      missing += seen == 0;
      duplicated += seen > 1;
    }
  for (int k = 0; k < kConsumers; ++k) total += c->consumed[k].load();
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(total, std::uint64_t{kProducers} * count);
  const QueueInfo info = q.info();
  EXPECT_EQ(info.pushed, std::uint64_t{kProducers} * count);
  EXPECT_EQ(info.popped, std::uint64_t{kProducers} * count);
  EXPECT_EQ(q.size(), 0u);
  std::printf("  [%s] per consumer %llu / %llu / %llu samples; pushes that found the queue full: %llu\n",
              wait_text(wait), static_cast<unsigned long long>(c->consumed[0].load()),
              static_cast<unsigned long long>(c->consumed[1].load()),
              static_cast<unsigned long long>(c->consumed[2].load()),
              static_cast<unsigned long long>(c->full_hits.load()));
}

TEST(QueueProcesses, MpmcThreeProducersThreeConsumersDeliverEachSampleExactlyOnce) { run_mpmc(WaitMode::hybrid, 20000); }

TEST(QueueProcesses, MpmcExactlyOnceWithFutexWaits) { run_mpmc(WaitMode::futex, 5000); }

// ===== SPSC order in every wait mode ===========================================================

class QueueProcessWaits : public ::testing::TestWithParam<WaitMode> {};

// 100000 samples through 64 cells, blocking push in one process and blocking pop in another.
TEST_P(QueueProcessWaits, SpscKeepsOrderAndValuesAcrossProcesses) {
  test::TempStreamDir dir;
  constexpr std::uint64_t kN = 100000;
  auto q = Queue::create("spsc", qspec(QueueKind::spsc, GetParam(), 64, 4));
  struct Ctl {
    ChildReport rep;
  };
  Shared<Ctl> ctl;
  pid_t producer = spawn([&] {
    auto out = Queue::open("spsc", QueueExpect{4, std::nullopt, QueueKind::spsc});
    Sample s;
    for (std::uint64_t n = 0; n < kN; ++n) {
      fill(s, n);
      const Status st = out.push(s, 20s);
      SHMLINK_CHILD_CHECK(&ctl->rep, st.ok(), n);
    }
    return 0;
  });
  Sample s;
  std::uint64_t n = 0;
  for (; n < kN; ++n) {
    const Status st = q.pop(s, 20s);
    if (!st.ok() || !is_sample(s, n)) {
      ADD_FAILURE() << "sample " << n << ": " << st.message() << ", got sequence " << s.sequence;
      break;
    }
  }
  q.shutdown();  // a failed consumer must not leave the producer blocked
  EXPECT_EQ(test::reap(producer, 60), 0) << ctl->rep.describe();
  EXPECT_EQ(n, kN);
  EXPECT_EQ(q.try_pop(s), Errc::shut_down) << "more samples than were pushed";
}

// A pop with a timeout returns timeout while the producer process, alive, sends nothing; the
// queue still works afterwards.
TEST_P(QueueProcessWaits, PopTimesOutWhileTheProducerSendsNothing) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    SCOPED_TRACE(kind_text(kind));
    test::TempStreamDir dir;
    auto q = Queue::create("idle", qspec(kind, GetParam(), 8, 4));
    struct Ctl {
      ChildReport rep;
      std::atomic<int> producer_open{0}, timed_out{0}, send{0};
    };
    Shared<Ctl> ctl;
    Ctl* c = &*ctl;
    pid_t producer = spawn([c] {
      auto out = Queue::open("idle");
      c->producer_open.store(1);
      SHMLINK_CHILD_CHECK(&c->rep, test::wait_until([c] { return c->send.load() == 1; }), 0);
      Sample s;
      fill(s, 7);
      const Status st = out.push(s, 20s);
      SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
      return 0;
    });
    pid_t consumer = spawn([c] {
      auto in = Queue::open("idle");
      SHMLINK_CHILD_CHECK(&c->rep, test::wait_until([c] { return c->producer_open.load() == 1; }), 0);
      Sample s;
      for (int i = 0; i < 2; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const Status st = in.pop(s, 150ms);
        SHMLINK_CHILD_CHECK(&c->rep, st.code() == Errc::timeout, static_cast<int>(st.code()));
        SHMLINK_CHILD_CHECK(&c->rep, seconds_since(t0) >= 0.15, seconds_since(t0) * 1e6);
      }
      c->timed_out.store(1);
      const Status st = in.pop(s, 20s);
      SHMLINK_CHILD_CHECK(&c->rep, st.ok() && is_sample(s, 7), static_cast<int>(st.code()));
      return 0;
    });
    EXPECT_TRUE(test::wait_until([&] { return c->timed_out.load() == 1 || !test::still_running(consumer); }));
    c->send.store(1);
    EXPECT_EQ(test::reap(consumer, 30), 0) << c->rep.describe();
    EXPECT_EQ(test::reap(producer, 30), 0) << c->rep.describe();
  }
}

// A producer blocked in push in another process is woken by shutdown() and gets shut_down; what it
// had pushed before still drains.
TEST_P(QueueProcessWaits, ShutdownWakesAProducerBlockedInAnotherProcess) {
  test::TempStreamDir dir;
  auto q = Queue::create("shutp", qspec(QueueKind::mpmc, GetParam(), 4, 4));
  struct Ctl {
    ChildReport rep;
    std::atomic<int> pushed{0};
  };
  Shared<Ctl> ctl;
  pid_t producer = spawn([&] {
    auto out = Queue::open("shutp");
    Sample s;
    for (std::uint64_t n = 0;; ++n) {
      fill(s, n);
      const Status st = out.push(s, kForever);
      if (st.code() == Errc::shut_down) break;
      SHMLINK_CHILD_CHECK(&ctl->rep, st.ok(), static_cast<int>(st.code()));
      ctl->pushed.fetch_add(1);
    }
    return ctl->pushed.load() == 4 ? 0 : 2;
  });
  ASSERT_TRUE(test::wait_until([&] { return q.size() == 4 || !test::still_running(producer); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(test::still_running(producer)) << "push(kForever) returned on a full queue";
  q.shutdown();
  EXPECT_EQ(test::reap(producer, 20), 0) << "-1000: still blocked after shutdown; " << ctl->rep.describe();
  Sample s;
  for (std::uint64_t n = 0; n < 4; ++n) {
    ASSERT_EQ(q.pop(s, 1s), Errc::ok);
    EXPECT_TRUE(is_sample(s, n)) << n;
  }
  EXPECT_EQ(q.pop(s, 1s), Errc::shut_down);
}

INSTANTIATE_TEST_SUITE_P(Modes, QueueProcessWaits,
                         ::testing::Values(WaitMode::polling, WaitMode::futex, WaitMode::hybrid),
                         [](const auto& p) { return std::string(wait_text(p.param)); });

// ===== shutdown wakes consumers blocked in another process =====================================

class QueueProcessShutdown : public ::testing::TestWithParam<std::tuple<QueueKind, WaitMode>> {};

// Consumers block in pop(kForever) in their own processes; 3 more samples and shutdown() arrive
// together: the consumers drain all 5 samples, then every one of them returns shut_down.
TEST_P(QueueProcessShutdown, BlockedConsumersDrainThenReturnClosed) {
  const auto [kind, wait] = GetParam();
  test::TempStreamDir dir;
  auto q = Queue::create("shut", qspec(kind, wait, 8, 4));
  const int n = kind == QueueKind::mpmc ? 2 : 1;
  struct Ctl {
    ChildReport rep;
    std::atomic<int> got{0};
    std::atomic<int> closed{0};
    std::atomic<std::uint8_t> seen[5];
  };
  Shared<Ctl> ctl;
  Ctl* c = &*ctl;
  std::vector<pid_t> kids;
  for (int k = 0; k < n; ++k) {
    kids.push_back(spawn([c] {
      auto in = Queue::open("shut");
      Sample s;
      for (;;) {
        const Status st = in.pop(s, kForever);
        if (st.code() == Errc::shut_down) break;
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
        SHMLINK_CHILD_CHECK(&c->rep, s.sequence < 5 && is_sample(s, s.sequence), s.sequence);
        c->seen[s.sequence].fetch_add(1);
        c->got.fetch_add(1);
      }
      c->closed.fetch_add(1);
      return 0;
    }));
  }
  Sample s;
  for (std::uint64_t i = 0; i < 2; ++i) {
    fill(s, i);
    ASSERT_EQ(q.try_push(s), Errc::ok);
  }
  ASSERT_TRUE(test::wait_until([&] { return c->got.load() == 2; })) << c->rep.describe();
  std::this_thread::sleep_for(50ms);  // the consumers are asleep in pop by now (or spinning)
  EXPECT_EQ(c->closed.load(), 0);
  for (std::uint64_t i = 2; i < 5; ++i) {
    fill(s, i);
    ASSERT_EQ(q.try_push(s), Errc::ok);
  }
  q.shutdown();
  EXPECT_EQ(reap_all(kids, 20), 0) << "a consumer failed or stayed blocked after shutdown; " << c->rep.describe();
  EXPECT_EQ(c->got.load(), 5);
  EXPECT_EQ(c->closed.load(), n);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c->seen[i].load(), 1) << "sample " << i;
}

INSTANTIATE_TEST_SUITE_P(
    KindsAndModes, QueueProcessShutdown,
    ::testing::Combine(::testing::Values(QueueKind::spsc, QueueKind::mpmc),
                       ::testing::Values(WaitMode::polling, WaitMode::futex, WaitMode::hybrid)),
    [](const auto& p) {
      return std::string(kind_text(std::get<0>(p.param))) + "_" + wait_text(std::get<1>(p.param));
    });

// ===== backpressure =============================================================================

// The consumer process stops itself (SIGSTOP) after 100 samples: the producer fills the 8 cells
// and then stays blocked in push (nothing is overwritten, nothing dropped); after SIGCONT both
// finish and the consumer has every sample in order.
TEST(QueueProcesses, FullQueueBlocksTheProducerWhileTheConsumerIsStopped) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    SCOPED_TRACE(kind_text(kind));
    test::TempStreamDir dir;
    constexpr std::uint64_t kN = 3000;
    constexpr std::uint32_t kCap = 8;
    constexpr std::uint64_t kPauseAt = 100;
    auto q = Queue::create("bp", qspec(kind, WaitMode::hybrid, kCap, 4));
    struct Ctl {
      ChildReport rep;
      std::atomic<std::uint64_t> pushed{0}, consumed{0};
    };
    Shared<Ctl> ctl;
    Ctl* c = &*ctl;
    pid_t consumer = spawn([c] {
      auto in = Queue::open("bp");
      Sample s;
      for (std::uint64_t n = 0; n < kN; ++n) {
        const Status st = in.pop(s, 30s);
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
        SHMLINK_CHILD_CHECK(&c->rep, is_sample(s, n), s.sequence);
        if (c->consumed.fetch_add(1) + 1 == kPauseAt) ::raise(SIGSTOP);
      }
      return 0;
    });
    pid_t producer = spawn([c] {
      auto out = Queue::open("bp");
      Sample s;
      for (std::uint64_t n = 0; n < kN; ++n) {
        fill(s, n);
        const Status st = out.push(s, 30s);
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
        c->pushed.fetch_add(1);
      }
      return 0;
    });
    int st = 0;
    ASSERT_EQ(::waitpid(consumer, &st, WUNTRACED), consumer);
    ASSERT_TRUE(WIFSTOPPED(st)) << "the consumer exited (status " << st << ") before pausing; " << c->rep.describe();
    EXPECT_EQ(c->consumed.load(), kPauseAt);
    // The producer fills the queue, then its push blocks.
    const bool filled = test::wait_until([&] { return q.size() == kCap && c->pushed.load() == q.info().pushed; });
    const QueueInfo before = q.info();
    std::this_thread::sleep_for(200ms);
    const QueueInfo after = q.info();
    const bool producer_alive = test::still_running(producer);
    const std::uint64_t pushed_while_stopped = c->pushed.load();
    ::kill(consumer, SIGCONT);
    EXPECT_TRUE(filled) << "queue size " << q.size() << ", producer pushed " << c->pushed.load();
    EXPECT_TRUE(producer_alive);
    EXPECT_LT(pushed_while_stopped, kN);
    EXPECT_EQ(after.pushed, before.pushed) << "pushed into a full queue";
    EXPECT_EQ(after.popped, before.popped);
    EXPECT_EQ(after.popped, kPauseAt);
    EXPECT_EQ(after.pushed, kPauseAt + kCap);
    EXPECT_EQ(pushed_while_stopped, kPauseAt + kCap);
    EXPECT_EQ(test::reap(consumer, 60), 0) << c->rep.describe();
    EXPECT_EQ(test::reap(producer, 60), 0) << c->rep.describe();
    EXPECT_EQ(c->consumed.load(), kN);
    EXPECT_EQ(q.size(), 0u);
  }
}

// ===== a producer SIGKILLed mid-run ============================================================

// The consumer drains every sample the producer had pushed, in order, and then its pop times
// out cleanly: no hang, no crash. The file still opens and describes the same counts.
TEST(QueueProcesses, ProducerKilledMidRunLeavesADrainableQueue) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    SCOPED_TRACE(kind_text(kind));
    test::TempStreamDir dir;
    auto q = Queue::create("kill", qspec(kind, WaitMode::hybrid, 64, 4));
    struct Ctl {
      ChildReport rep;
      std::atomic<std::uint64_t> pushed{0}, consumed{0};
      std::atomic<int> timed_out{0}, killed{0};
    };
    Shared<Ctl> ctl;
    Ctl* c = &*ctl;
    pid_t producer = spawn([c] {
      auto out = Queue::open("kill");
      Sample s;
      for (std::uint64_t n = 0;; ++n) {
        fill(s, n);
        const Status st = out.push(s, 30s);
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
        c->pushed.store(n + 1);
      }
    });
    pid_t consumer = spawn([c] {
      auto in = Queue::open("kill");
      Sample s;
      for (std::uint64_t n = 0;; ++n) {
        Status st = in.pop(s, 300ms);
        // A timeout before the kill is a slow producer on a busy machine: wait on.
        while (st.code() == Errc::timeout && c->killed.load() == 0) st = in.pop(s, 300ms);
        if (st.code() == Errc::timeout) break;
        SHMLINK_CHILD_CHECK(&c->rep, st.ok(), static_cast<int>(st.code()));
        SHMLINK_CHILD_CHECK(&c->rep, is_sample(s, n), s.sequence);
        c->consumed.store(n + 1);
      }
      c->timed_out.store(1);
      return 0;
    });
    ASSERT_TRUE(test::wait_until([&] { return c->consumed.load() >= 3000 || !test::still_running(consumer); }));
    ::kill(producer, SIGKILL);
    EXPECT_EQ(test::reap(producer, 20), -SIGKILL) << c->rep.describe();
    c->killed.store(1);
    const std::uint64_t confirmed = c->pushed.load();
    const int consumer_rc = test::reap(consumer, 15);
    EXPECT_EQ(consumer_rc, 0) << "-1000: the consumer hung after the producer died; " << c->rep.describe();
    EXPECT_EQ(c->timed_out.load(), 1);
    // Every push that returned ok was popped; at most one more (killed after its push returned,
    // before it counted it).
    EXPECT_GE(c->consumed.load(), confirmed);
    EXPECT_LE(c->consumed.load(), confirmed + 1);
    auto again = Queue::open("kill");
    const QueueInfo info = again.info();
    EXPECT_EQ(info.popped, c->consumed.load());
    // An MPMC push killed between claiming its cell and publishing it leaves that one cell
    // claimed for ever; an SPSC push publishes in one store, so nothing is left.
    EXPECT_LE(info.pushed - info.popped, kind == QueueKind::mpmc ? 1u : 0u);
    EXPECT_FALSE(info.closed);
    if (kind == QueueKind::spsc && consumer_rc == 0) {
      // A new producer carries on where the dead one stopped.
      Sample s;
      fill(s, c->consumed.load());
      EXPECT_EQ(again.try_push(s), Errc::ok);
      Sample out;
      EXPECT_EQ(q.pop(out, 1s), Errc::ok);
      EXPECT_TRUE(is_sample(out, c->consumed.load()));
    }
  }
}

}  // namespace
