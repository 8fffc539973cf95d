// SPDX-License-Identifier: MIT
/// @file pingpong.hpp
/// @brief The two-process engine every `shmlink bench` latency and throughput part runs on
/// (docs/bench.md): a shared control block made before the fork, a forked child pinned to the
/// second CPU, the ping-pong loops (the parent times, the child echoes), the producer/consumer
/// loop, and the watch that turns a dead child into an error instead of a hang.
///
/// A channel is a type with, for latency, `Fail a_send(seq)` / `Fail a_recv(seq)` (run in the
/// parent, the initiator) and `bool b_recv(uint64_t*)` / `bool b_send(seq)` (run in the child,
/// the responder, which echoes); for throughput, `bool produce(first, n)` (child) and
/// `Fail consume(first, n)` (parent). It is constructed as `Channel(run, Side)` in each process.
#pragma once

#include "harness/machine.hpp"

#include <shmlink/error.hpp>

#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::bench {

/// Sequence number that tells the responder to finish.
inline constexpr std::uint64_t kStop = ~std::uint64_t{0};
/// Written by the SIGCHLD handler into the floors' reply words: the child is gone.
inline constexpr std::uint64_t kDead = kStop - 1;
/// How long the parent waits without progress (a reply, a sample) before it gives up, in ns.
inline constexpr std::int64_t kNoProgressNs = 10'000'000'000;
/// Slices of the parent's blocking waits, so that stop requests and dead children are seen.
inline constexpr std::chrono::nanoseconds kWaitSlice = std::chrono::milliseconds(200);
/// The same slice in ms (ZeroMQ's ZMQ_RCVTIMEO).
inline constexpr int kWaitSliceMs = 200;
/// Timeout of the child's waits (the parent kills it, or PDEATHSIG does, long before).
inline constexpr std::chrono::nanoseconds kChildTimeout = std::chrono::seconds(60);

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "futex words are plain 32-bit words");

/// A 64-bit atomic alone on its 64-byte cache line.
struct alignas(64) Line {
  std::atomic<std::uint64_t> value{0};
};
/// A 32-bit futex word alone on its 64-byte cache line.
struct alignas(64) Word {
  std::atomic<std::uint32_t> value{0};
};

/// State shared by the two processes of a run: the front of a MAP_SHARED anonymous mapping made
/// before any fork (never a file: its layout is private to one bench process and its children).
/// Two message buffers of `stride` bytes each follow it (the cacheline_message/payload reference).
///
///   offset 0    ping   (cache-line floors, parent -> child)
///   offset 64   pong   (cache-line floors, child -> parent)
///   offset 128  fping  (futex floor, parent -> child)
///   offset 192  fpong  (futex floor, child -> parent)
///   offset 256  control: ready, parent_open, go, child CPU time, consumed, error text
///   sizeof(Shared)           message buffer parent -> child
///   sizeof(Shared) + stride  message buffer child -> parent
struct Shared {
  Line ping;
  Line pong;
  Word fping;
  Word fpong;
  alignas(64) std::atomic<int> ready{0};       ///< 1: the child is ready; -1: it failed (see error)
  std::atomic<int> parent_open{0};             ///< 1: the parent opened its side (binds, opens)
  std::atomic<int> go{0};                      ///< throughput: 1 starts the timed part
  std::atomic<std::int64_t> child_cpu_ns{0};   ///< the child's CPU time over its timed part, ns
  std::atomic<int> consumed{0};                ///< throughput: 1 once the parent received everything
  char error[256] = {};                        ///< the child's failure, NUL-terminated
};
static_assert(offsetof(Shared, pong) == 64 && offsetof(Shared, fping) == 128 && offsetof(Shared, fpong) == 192 &&
              offsetof(Shared, ready) == 256);
static_assert(sizeof(Shared) % 64 == 0);

/// The MAP_SHARED anonymous mapping of the Shared block and its two message buffers.
class SharedMapping {
 public:
  /// Maps and constructs the block, with message buffers of `message_bytes` each (rounded up to
  /// whole cache lines). @throws Error when mmap fails.
  explicit SharedMapping(std::size_t message_bytes);
  /// Unmaps it.
  ~SharedMapping();
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  /// The block.
  [[nodiscard]] Shared* shared() const noexcept { return static_cast<Shared*>(addr_); }
  /// Message buffer `i` (0: parent -> child, 1: child -> parent).
  [[nodiscard]] std::byte* message(int i) const noexcept {
    return static_cast<std::byte*>(addr_) + sizeof(Shared) + static_cast<std::size_t>(i) * stride_;
  }

 private:
  std::size_t stride_;
  std::size_t size_;
  void* addr_;
};

/// One spin-wait hint (x86 PAUSE, aarch64 YIELD), as the library's.
inline void relax() noexcept {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// FUTEX_WAIT (shared, no timeout) while `*w == expected`.
void futex_wait(std::atomic<std::uint32_t>& w, std::uint32_t expected) noexcept;
/// FUTEX_WAKE (shared) of one waiter.
void futex_wake(std::atomic<std::uint32_t>& w) noexcept;

/// Why a parent-side receive failed.
enum class Fail { none, peer_gone, stopped, timed_out, error };

/// Which process a channel end lives in.
enum class Side { parent, child };

// ---- the child watch ----------------------------------------------------------------------

/// While it lives: SIGCHLD marks the watched Shared block (kDead in the floors' reply words, so
/// that a parent about to spin or sleep on them sees a changed value) and child_exited(); SIGPIPE
/// is ignored (a dead reader is EPIPE, not death). Restores both handlers on destruction.
class ChildWatch {
 public:
  /// Installs the handlers (no SA_RESTART: blocking waits return EINTR).
  ChildWatch();
  /// Restores the previous handlers.
  ~ChildWatch();
  ChildWatch(const ChildWatch&) = delete;
  ChildWatch& operator=(const ChildWatch&) = delete;

 private:
  struct sigaction old_chld_ {};
  struct sigaction old_pipe_ {};
};

/// Starts watching `sh` for the next child (clears child_exited()); nullptr stops watching.
void watch_child(Shared* sh) noexcept;
/// True once the watched child exited (SIGCHLD arrived since watch_child()).
bool child_exited() noexcept;

/// What the parent does after a wait slice came back empty: stopped, peer gone (one second
/// after the child exited: what it sent just before may still be in flight), no progress for
/// kNoProgressNs, or keep waiting (Fail::none). `deadline` is set lazily (0 = not yet), so the
/// hot path never reads the clock.
Fail after_empty_slice(std::int64_t& deadline) noexcept;

/// Involuntary context switches of this process plus its reaped children (getrusage).
std::int64_t involuntary_switches() noexcept;

/// Reaps `pid`, killing it when it has not exited within `grace_ns`. @return its wait status
/// (-1 when waitpid failed).
int reap(pid_t pid, std::int64_t grace_ns) noexcept;

/// Closes a descriptor if open and marks it closed.
void close_fd(int& fd) noexcept;

// ---- one run's resources ------------------------------------------------------------------

/// What one run of one mode shares between its two processes: the shared block, the message
/// the transports carry, descriptors made before the fork, and this side's failure text. A
/// bench derives its own run (queue files, endpoints) from it. The parent's destructor closes
/// the descriptors; the child leaves with _exit and never runs it.
struct Run {
  Shared* sh = nullptr;
  std::byte* msg_to_child = nullptr;   ///< message buffer, parent -> child
  std::byte* msg_to_parent = nullptr;  ///< message buffer, child -> parent
  std::optional<std::pair<int, int>> cores;  ///< CPUs of the parent and of the child; none = unpinned
  std::vector<std::byte> message;      ///< the message every hop carries (its first 8 bytes: the sequence)
  std::size_t batch = 1;               ///< throughput: messages per call, write, send
  // Descriptors: the parent reads parent_in and writes parent_out; the child the others.
  int parent_in = -1;
  int parent_out = -1;
  int child_in = -1;
  int child_out = -1;
  std::string error;                   ///< this side's failure, for the report

  Run(const SharedMapping& m, std::optional<std::pair<int, int>> cpus, std::vector<std::byte> msg)
      : sh(m.shared()), msg_to_child(m.message(0)), msg_to_parent(m.message(1)), cores(cpus), message(std::move(msg)) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  /// Closes the descriptors.
  ~Run();
  /// Closes, in this process, the descriptors that belong to the other side.
  void close_other_side(Side side) noexcept;
};

/// Makes two pipes (latency) or one (throughput: child -> parent) into `run`'s descriptors.
/// @throws Error when pipe2 fails.
void make_pipes(Run& run, bool both_ways);
/// Makes one socketpair(AF_UNIX, SOCK_STREAM): one end per side, both directions. @throws Error.
void make_socketpair(Run& run);

// ---- the child ----------------------------------------------------------------------------

/// Records a child's failure in the shared block and leaves with _exit(rc).
[[noreturn]] void child_fail(Shared* sh, const std::string& why, int rc);

/// The child of one run, seen from the parent: forks it (pinned to the second CPU, waiting
/// until the parent opened its side, then running `body`), and kills and reaps it when the run
/// ends early. watch_child() covers the shared block meanwhile. Errors read "<what>: <why>"
/// ("bench queue spsc_polling: the child exited (signal 9)").
class Child {
 public:
  /// Forks; the child runs `body` (returning its exit status) and leaves with _exit. `noun`
  /// names the child in messages ("child", "responder"). @throws Error when fork fails.
  template <class Body>
  Child(Run& run, std::string what, const char* noun, Body body) : run_(run), what_(std::move(what)), noun_(noun) {
    if (start()) return;
    int rc = 0;
    try {
      rc = body();
    } catch (const std::exception& e) {
      child_fail(run.sh, e.what(), 2);
    } catch (...) {
      child_fail(run.sh, "unknown exception", 2);
    }
    if (rc != 0 && run.sh->error[0] == '\0')
      std::snprintf(run.sh->error, sizeof run.sh->error, "%s", run.error.empty() ? "failed" : run.error.c_str());
    ::_exit(rc);
  }
  /// Kills and reaps the child unless finish() did.
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// Waits until the child said it is ready (after the parent set parent_open).
  /// @throws Error with the child's message when it failed or did not start.
  void wait_ready();
  /// Turns a failed receive into an Error (killing the child first). Returns on Fail::none.
  void check(Fail f);
  /// Reaps the child (killing it after `grace_ns`). @throws Error when it did not exit with 0.
  void finish(std::int64_t grace_ns);
  /// Throws Error(code) naming the mode (the destructor kills the child).
  [[noreturn]] void fail(const std::string& why, Errc code) const;

 private:
  /// Resets the shared block and forks. @return true in the parent; in the child, false after
  /// pinning it and waiting for parent_open.
  bool start();
  /// The child's error text, or "the <noun> <fallback>".
  [[nodiscard]] std::string child_error(const char* fallback) const;

  Run& run_;
  std::string what_;
  const char* noun_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// ---- the loops ----------------------------------------------------------------------------

/// Responder loop: echo every sequence number until kStop; measures its own CPU time from the
/// first timed round trip on (into Shared::child_cpu_ns). @return the child's exit status.
template <class Channel>
int respond(Channel& ch, Shared* sh, std::int64_t warmup) {
  std::int64_t cpu0 = 0;
  std::uint64_t seq = 0;
  for (;;) {
    if (!ch.b_recv(&seq)) return 3;
    if (seq == kStop) break;
    if (seq == static_cast<std::uint64_t>(warmup) + 1) cpu0 = process_cpu_ns();
    if (!ch.b_send(seq)) return 3;
  }
  if (cpu0 != 0) sh->child_cpu_ns.store(process_cpu_ns() - cpu0);
  return 0;
}

/// What the initiator measured in one latency run.
struct RunOutcome {
  Fail fail = Fail::none;
  std::int64_t cpu_ns = 0;
  std::int64_t wall_ns = 0;
  bool budget_hit = false;
};

/// Initiator loop: `warmup` untimed round trips, then up to `n` timed ones (appended to `out`),
/// stopping early once `budget_ns` of timed wall time is spent; finally kStop.
template <class Channel>
RunOutcome drive(Channel& ch, std::int64_t warmup, std::int64_t n, std::int64_t budget_ns,
                 std::vector<std::int64_t>& out) {
  RunOutcome o;
  std::uint64_t seq = 0;
  for (std::int64_t i = 0; i < warmup; ++i) {
    if ((o.fail = ch.a_send(++seq)) != Fail::none) return o;
    if ((o.fail = ch.a_recv(seq)) != Fail::none) return o;
  }
  out.reserve(out.size() + static_cast<std::size_t>(n));
  const std::int64_t cpu0 = process_cpu_ns();
  const std::int64_t start = mono_ns();
  std::int64_t t1 = start;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t t0 = mono_ns();
    if ((o.fail = ch.a_send(++seq)) != Fail::none) return o;
    if ((o.fail = ch.a_recv(seq)) != Fail::none) return o;
    t1 = mono_ns();
    out.push_back(t1 - t0);
    if (t1 - start > budget_ns) {
      o.budget_hit = i + 1 < n;
      break;
    }
    if (stop_requested()) {
      o.fail = Fail::stopped;
      return o;
    }
  }
  o.wall_ns = t1 - start;
  o.cpu_ns = process_cpu_ns() - cpu0;
  (void)ch.a_send(kStop);
  return o;
}

/// One latency run of `Channel` over `run`: forks the responder, `warmup` untimed and `n` timed
/// round trips (within `budget_ns`), merged into `r` (round_trips_ns, initiator_cpu_ns,
/// responder_cpu_ns, wall_ns, involuntary_switches, budget_hit, runs). @throws Error.
template <class Channel, class RunT, class Result>
void latency_run(RunT& run, const std::string& what, const char* noun, std::int64_t warmup, std::int64_t n,
                 std::int64_t budget_ns, Result& r) {
  const std::int64_t switches0 = involuntary_switches();
  Child child(run, what, noun, [&] {
    Channel ch(run, Side::child);
    run.sh->ready.store(1);
    return respond(ch, run.sh, warmup);
  });
  std::unique_ptr<Channel> ch;
  try {
    ch = std::make_unique<Channel>(run, Side::parent);
  } catch (const std::exception& e) {
    child.fail(e.what(), Errc::system);
  }
  run.sh->parent_open.store(1);
  child.wait_ready();
  const RunOutcome o = drive(*ch, warmup, n, budget_ns, r.round_trips_ns);
  child.check(o.fail);
  child.finish(5'000'000'000);
  r.initiator_cpu_ns += o.cpu_ns;
  r.responder_cpu_ns += run.sh->child_cpu_ns.load();
  r.wall_ns += o.wall_ns;
  r.involuntary_switches += involuntary_switches() - switches0;
  r.budget_hit = r.budget_hit || o.budget_hit;
  ++r.runs;
}

/// What one throughput run measured.
struct ThroughputOutcome {
  std::int64_t wall_ns = 0;          ///< wall time of the timed part, ns (at least 1)
  std::int64_t consumer_cpu_ns = 0;  ///< CPU time of the consuming parent over it, ns
  std::int64_t producer_cpu_ns = 0;  ///< CPU time of the producing child over its timed part, ns
  std::int64_t involuntary_switches = 0;  ///< preemptions of both sides during the run
};

/// One throughput run of `Channel` over `run`: the child produces `warm` untimed and then `n`
/// timed samples; this process consumes them and times the second part. @throws Error.
template <class Channel, class RunT>
ThroughputOutcome throughput_run(RunT& run, const std::string& what, std::int64_t warm, std::int64_t n) {
  const std::int64_t switches0 = involuntary_switches();
  Shared* sh = run.sh;
  Child child(run, what, "child", [&] {
    Channel ch(run, Side::child);
    if (!ch.produce(1, warm)) return 3;
    sh->ready.store(1);
    for (std::uint32_t i = 1; sh->go.load(std::memory_order_acquire) == 0; ++i) {
      relax();
      if (i % 1024 == 0) ::sched_yield();  // a single CPU: let the parent run
    }
    const std::int64_t cpu0 = process_cpu_ns();
    if (!ch.produce(static_cast<std::uint64_t>(warm) + 1, n)) return 3;
    sh->child_cpu_ns.store(process_cpu_ns() - cpu0);
    // Stay connected until the parent has everything: ZeroMQ was seen to lose the last
    // messages of a PAIR socket whose peer exited right after sending them, linger or not.
    for (int i = 0; sh->consumed.load(std::memory_order_acquire) == 0 && i < 200'000; ++i) ::usleep(50);
    return 0;
  });
  std::unique_ptr<Channel> ch;
  try {
    ch = std::make_unique<Channel>(run, Side::parent);
  } catch (const std::exception& e) {
    child.fail(e.what(), Errc::system);
  }
  sh->parent_open.store(1);
  child.check(ch->consume(1, warm));
  child.wait_ready();
  const std::int64_t cpu0 = process_cpu_ns();
  const std::int64_t t0 = mono_ns();
  sh->go.store(1, std::memory_order_release);
  const Fail consumed = ch->consume(static_cast<std::uint64_t>(warm) + 1, n);
  const std::int64_t t1 = mono_ns();
  const std::int64_t cpu1 = process_cpu_ns();
  sh->consumed.store(1, std::memory_order_release);
  child.check(consumed);
  child.finish(10'000'000'000);
  ThroughputOutcome o;
  o.wall_ns = std::max<std::int64_t>(t1 - t0, 1);
  o.consumer_cpu_ns = cpu1 - cpu0;
  o.producer_cpu_ns = sh->child_cpu_ns.load();
  o.involuntary_switches = involuntary_switches() - switches0;
  return o;
}

}  // namespace shmlink::bench
