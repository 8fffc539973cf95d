// SPDX-License-Identifier: MIT
// Measurements of `shmlink bench queue` (docs/bench.md "bench queue"): two processes pinned to
// two CPUs. Latency: a ping-pong of one message (sample header + values) per hop, timed per
// round trip by the initiator; one-way latency is half of it. Throughput: a child produces, this
// process consumes and times the transfer. The raw floors (cache-line and futex ping-pong), the
// shmlink queue modes and the peers (pipe, unix socket, Boost.Interprocess message_queue,
// ZeroMQ ipc://) run interleaved in rounds, one fresh child per run.
#include "bench_queue.hpp"

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <zmq.hpp>

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace shmlink::cli::bench {

namespace {

using namespace std::chrono_literals;
namespace bip = boost::interprocess;

/// Sequence number that tells the responder to finish.
constexpr std::uint64_t kStop = ~std::uint64_t{0};
/// Written by the SIGCHLD handler into the reply words of the floors: the child is gone.
constexpr std::uint64_t kDead = kStop - 1;
/// How long the parent waits without progress (a reply, a sample) before it gives up, in ns.
constexpr std::int64_t kNoProgressNs = 10'000'000'000;
/// Slices of the parent's blocking waits, so that stop requests and dead children are seen.
constexpr std::chrono::nanoseconds kWaitSlice = 200ms;
/// The same slice in ms (ZeroMQ's ZMQ_RCVTIMEO).
constexpr int kWaitSliceMs = 200;
/// Timeout of the child's waits (the parent kills it, or PDEATHSIG does, long before).
constexpr std::chrono::nanoseconds kChildTimeout = 60s;
/// Cells of the latency queues and messages of the latency message_queues (one is ever in flight).
constexpr std::uint32_t kLatencyQueueCells = 16;
/// Smallest read buffer of the byte-stream consumers, in bytes.
constexpr std::size_t kReadBufferBytes = 64 * 1024;

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
/// before any fork. Two message buffers of `stride` bytes each follow it (cacheline_message).
///
///   offset 0    ping   (cache-line floors, parent -> child)
///   offset 64   pong   (cache-line floors, child -> parent)
///   offset 128  fping  (futex floor, parent -> child)
///   offset 192  fpong  (futex floor, child -> parent)
///   offset 256  control: ready, parent_open, go, child CPU time, error text
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

/// The Shared block the SIGCHLD handler marks (set while a child runs).
std::atomic<Shared*> g_queue_watch{nullptr};
/// Set by SIGCHLD.
volatile std::sig_atomic_t g_queue_child_exited = 0;
/// When the parent first saw g_queue_child_exited (monotonic ns; 0: not yet).
std::int64_t g_child_exit_seen_ns = 0;
/// How long data may still arrive after the child exited.
constexpr std::int64_t kChildExitGraceNs = 1'000'000'000;

/// SIGCHLD handler: flags the exit and writes kDead into the floors' reply words, so that a
/// parent about to spin or sleep on them sees a changed value. Lock-free atomic stores are
/// async-signal-safe.
extern "C" void on_queue_bench_child_exit(int /*sig*/) {
  g_queue_child_exited = 1;
  Shared* sh = g_queue_watch.load(std::memory_order_relaxed);
  if (sh == nullptr) return;
  sh->pong.value.store(kDead, std::memory_order_release);
  sh->fpong.value.store(static_cast<std::uint32_t>(kDead), std::memory_order_release);
}

/// Installs a handler for one signal and restores the previous one on destruction.
class SignalHandlerGuard {
 public:
  /// Installs `handler` (a function or SIG_IGN) for `sig`, without SA_RESTART.
  SignalHandlerGuard(int sig, void (*handler)(int), int flags) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    ::sigaction(sig_, &sa, &old_);
  }
  /// Restores the previous handler.
  ~SignalHandlerGuard() { ::sigaction(sig_, &old_, nullptr); }
  SignalHandlerGuard(const SignalHandlerGuard&) = delete;
  SignalHandlerGuard& operator=(const SignalHandlerGuard&) = delete;

 private:
  int sig_;
  struct sigaction old_ {};
};

/// One spin-wait hint (x86 PAUSE, aarch64 YIELD).
inline void relax() noexcept {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// FUTEX_WAIT (shared, no timeout) while `*w == expected`.
inline void futex_wait(std::atomic<std::uint32_t>& w, std::uint32_t expected) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}
/// FUTEX_WAKE (shared) of one waiter.
inline void futex_wake(std::atomic<std::uint32_t>& w) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

/// Why a parent-side receive failed.
enum class Fail { none, peer_gone, stopped, timed_out, error };

/// Which process a channel end lives in.
enum class Side { parent, child };

// ---- messages -------------------------------------------------------------------------------

/// A message as the byte transports carry it: the header of a Sample (sequence, ts_origin_ns,
/// ts_received_ns, flags, length; 32 bytes, host order) followed by `values` 8-byte values.
std::vector<std::byte> make_message(std::uint32_t values) {
  std::vector<std::byte> m(kQueueMessageHeaderBytes + std::size_t{8} * values);
  const std::uint64_t seq = 0;
  const std::int64_t ts = 1;
  const std::uint32_t flags = kSampleHasSequence | kSampleHasData;
  std::memcpy(m.data(), &seq, 8);
  std::memcpy(m.data() + 8, &ts, 8);
  std::memcpy(m.data() + 16, &ts, 8);
  std::memcpy(m.data() + 24, &flags, 4);
  std::memcpy(m.data() + 28, &values, 4);
  for (std::uint32_t i = 0; i < values; ++i) {
    const double v = 0.5 * i;
    std::memcpy(m.data() + kQueueMessageHeaderBytes + std::size_t{8} * i, &v, 8);
  }
  return m;
}

/// The same message as a Sample.
Sample make_sample(std::uint32_t values) {
  Sample s;
  s.ts_origin_ns = 1;
  s.ts_received_ns = 1;
  s.flags = kSampleHasSequence | kSampleHasData;
  s.values.resize(values);
  for (std::uint32_t i = 0; i < values; ++i) s.values[i] = SignalValue::of(0.5 * i);
  return s;
}

/// Stores a sequence number into the first 8 bytes of a message.
inline void put_seq(std::byte* m, std::uint64_t seq) noexcept { std::memcpy(m, &seq, sizeof seq); }
/// The sequence number in the first 8 bytes of a message.
inline std::uint64_t get_seq(const std::byte* m) noexcept {
  std::uint64_t seq = 0;
  std::memcpy(&seq, m, sizeof seq);
  return seq;
}

/// "sample 12 arrived where 11 was expected".
std::string order_error(std::uint64_t got, std::uint64_t want) {
  return "sample " + std::to_string(got) + " arrived where " + std::to_string(want) + " was expected";
}

// ---- one run's resources ---------------------------------------------------------------------

/// Closes a descriptor if open and marks it closed.
void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

/// Everything one run of one mode needs: the configuration, the shared block, and what was
/// made before the fork (descriptors, queue files, message queue names, the ipc:// endpoint).
/// The parent's destructor closes and removes all of it; the child leaves with _exit and never
/// runs it.
struct Run {
  const QueueBenchConfig& cfg;
  Shared* sh = nullptr;
  std::byte* msg_to_child = nullptr;   ///< cacheline_message buffer, parent -> child
  std::byte* msg_to_parent = nullptr;  ///< cacheline_message buffer, child -> parent
  std::size_t bytes = 0;               ///< message bytes
  bool bulk = false;                   ///< throughput: the bulk calls of a shmlink queue
  std::size_t batch = 1;               ///< throughput: messages per call, write, send, zmq message
  // Descriptors: the parent reads parent_in and writes parent_out; the child the others.
  int parent_in = -1;
  int parent_out = -1;
  int child_in = -1;
  int child_out = -1;
  std::string queue_to_child;   ///< shmlink queue file the parent pushes to (latency)
  std::string queue_to_parent;  ///< shmlink queue file the child pushes to
  std::string mq_to_child;      ///< Boost message_queue name the parent sends to (latency)
  std::string mq_to_parent;     ///< Boost message_queue name the child sends to
  std::string endpoint;         ///< ZeroMQ ipc:// endpoint (the parent binds, the child connects)
  std::string error;            ///< this side's failure, for the report

  Run(const QueueBenchConfig& c, Shared* s, std::byte* to_child, std::byte* to_parent)
      : cfg(c), sh(s), msg_to_child(to_child), msg_to_parent(to_parent), bytes(c.message_bytes()) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  /// Closes the descriptors, removes the queue files and message queues (parent only).
  ~Run() {
    // A socketpair uses one descriptor for both directions of a side.
    if (parent_out == parent_in) parent_out = -1;
    if (child_out == child_in) child_out = -1;
    close_fd(parent_in);
    close_fd(parent_out);
    close_fd(child_in);
    close_fd(child_out);
    for (const std::string* q : {&queue_to_child, &queue_to_parent}) {
      if (q->empty()) continue;
      try {
        Queue::remove(*q);
      } catch (const Error&) {  // already gone: the scratch directory goes anyway
      }
    }
    for (const std::string* m : {&mq_to_child, &mq_to_parent})
      if (!m->empty()) bip::message_queue::remove(m->c_str());
    if (!endpoint.empty()) ::unlink(endpoint.substr(6).c_str());  // "ipc://" + path
  }
  /// Closes, in this process, the descriptors that belong to the other side.
  void close_other_side(Side side) noexcept {
    int& a = side == Side::parent ? child_in : parent_in;
    int& b = side == Side::parent ? child_out : parent_out;
    if (b == a) b = -1;
    close_fd(a);
    close_fd(b);
  }
};

/// Makes two pipes (latency) or one (throughput: child -> parent). @throws Error.
void make_pipes(Run& run, bool both_ways) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Error(errc_from_errno(errno), std::string("pipe2: ") + std::strerror(errno));
  run.parent_in = p[0];
  run.child_out = p[1];
  if (both_ways) {
    if (::pipe2(p, O_CLOEXEC) != 0) throw Error(errc_from_errno(errno), std::string("pipe2: ") + std::strerror(errno));
    run.child_in = p[0];
    run.parent_out = p[1];
  }
}

/// Makes one socketpair(AF_UNIX, SOCK_STREAM): one end per side, both directions. @throws Error.
void make_socketpair(Run& run) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(errc_from_errno(errno), std::string("socketpair(AF_UNIX, SOCK_STREAM): ") + std::strerror(errno));
  run.parent_in = run.parent_out = sv[0];
  run.child_in = run.child_out = sv[1];
}

/// Creates the shmlink queue file `path`. @throws Error naming the file.
void make_queue(const std::string& path, const QueueBenchConfig& cfg, QueueKind kind, WaitMode wait,
                std::uint32_t cells) {
  QueueSpec spec;
  spec.capacity = cells;
  spec.max_values = cfg.values;
  spec.kind = kind;
  spec.wait = wait;
  Queue::create(path, spec, OpenMode::PurgeAndCreate).close();
}

/// Creates the Boost message_queue `name` (in /dev/shm). @throws Error naming it.
void make_mq(const std::string& name, std::size_t messages, std::size_t message_bytes) {
  bip::message_queue::remove(name.c_str());
  try {
    bip::message_queue q(bip::create_only, name.c_str(), messages, message_bytes);
  } catch (const bip::interprocess_exception& e) {
    throw Error(Errc::system, "creating Boost message_queue /dev/shm/" + name + ": " + e.what());
  }
}

/// Opens the Boost message_queue `name`. @throws Error naming it.
std::unique_ptr<bip::message_queue> open_mq(const std::string& name) {
  try {
    return std::make_unique<bip::message_queue>(bip::open_only, name.c_str());
  } catch (const bip::interprocess_exception& e) {
    throw Error(Errc::system, "opening Boost message_queue /dev/shm/" + name + ": " + e.what());
  }
}

// ---- blocking byte I/O ---------------------------------------------------------------------

/// Writes all `n` bytes (retrying after EINTR and short writes). @return 0, or the errno.
int write_all(int fd, const std::byte* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

/// Result of read_exact.
enum class ReadResult { ok, eof, interrupted, error };

/// Reads exactly `n` bytes. With `stop_on_eintr`, an EINTR before the first byte returns
/// `interrupted` (the caller checks for stop requests); within a message it retries.
ReadResult read_exact(int fd, std::byte* p, std::size_t n, bool stop_on_eintr) noexcept {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, p + got, n - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r == 0) {
      return ReadResult::eof;
    } else if (errno == EINTR) {
      if (stop_on_eintr && got == 0) return ReadResult::interrupted;
    } else {
      return ReadResult::error;
    }
  }
  return ReadResult::ok;
}

/// What the parent does after a wait slice came back empty: stopped, peer gone, no progress
/// for too long, or keep waiting. `deadline` is set lazily (0 = not yet), so that the hot path
/// never reads the clock.
Fail after_empty_slice(std::int64_t& deadline) noexcept {
  if (stop_requested()) return Fail::stopped;
  const std::int64_t now = mono_ns();
  if (g_queue_child_exited != 0) {
    // What the child sent just before it exited may still be in flight (ZeroMQ's I/O thread
    // delivers it after the sender is gone): the child counts as gone only after a grace time.
    if (g_child_exit_seen_ns == 0) g_child_exit_seen_ns = now;
    return now - g_child_exit_seen_ns > kChildExitGraceNs ? Fail::peer_gone : Fail::none;
  }
  if (deadline == 0) deadline = now + kNoProgressNs;
  return now > deadline ? Fail::timed_out : Fail::none;
}

/// A fresh ipc:// endpoint in `dir` for every run: a child connecting to the previous run's
/// socket file (unlinked by ZeroMQ's I/O thread some time after the close) would lose messages.
std::string zmq_endpoint(const std::string& dir) {
  static unsigned counter = 0;
  return "ipc://" + dir + "/bench-zmq-" + std::to_string(counter++) + ".sock";
}

// ---- channels --------------------------------------------------------------------------------
//
// Latency: a_send / a_recv run in the parent (the initiator), b_recv / b_send in the child (the
// responder, which echoes). Throughput: produce runs in the child, consume in the parent.

/// Floor: cache-line ping-pong, both sides spinning with PAUSE on the other's line.
struct CachelineChannel {
  Shared* sh;
  std::uint64_t last = 0;  ///< responder: last value seen on ping

  CachelineChannel(Run& run, Side /*side*/) : sh(run.sh) {}
  /// Initiator: publish `seq` on ping.
  Fail a_send(std::uint64_t seq) noexcept {
    sh->ping.value.store(seq, std::memory_order_release);
    return Fail::none;
  }
  /// Initiator: spin until pong carries `seq`.
  Fail a_recv(std::uint64_t seq) noexcept {
    for (std::uint32_t i = 1;; ++i) {
      const std::uint64_t v = sh->pong.value.load(std::memory_order_acquire);
      if (v == seq) return Fail::none;
      if (v == kDead) return Fail::peer_gone;
      if (i % 65536 == 0 && stop_requested()) return Fail::stopped;
      relax();
    }
  }
  /// Responder: spin until ping changes.
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint64_t v;
    while ((v = sh->ping.value.load(std::memory_order_acquire)) == last) relax();
    last = v;
    *seq = v;
    return true;
  }
  /// Responder: echo `seq` on pong.
  bool b_send(std::uint64_t seq) noexcept {
    sh->pong.value.store(seq, std::memory_order_release);
    return true;
  }
};

/// Reference: the cache-line ping-pong carrying the whole message: the sender copies it into a
/// shared buffer, then publishes the sequence number (release); the receiver spins on the
/// number (acquire), then copies the message out and checks it. The least any shared-memory
/// transport of this message can cost.
struct MessageChannel {
  Shared* sh;
  std::byte* to_child;
  std::byte* to_parent;
  std::vector<std::byte> tx;  ///< outgoing message (private)
  std::vector<std::byte> rx;  ///< incoming message (private)
  std::uint64_t last = 0;     ///< responder: last value seen on ping

  MessageChannel(Run& run, Side /*side*/)
      : sh(run.sh), to_child(run.msg_to_child), to_parent(run.msg_to_parent),
        tx(make_message(run.cfg.values)), rx(tx.size()) {}
  /// Copies the message carrying `seq` into `data`, then publishes `seq` on `flag`.
  void put(std::byte* data, Line& flag, std::uint64_t seq) noexcept {
    put_seq(tx.data(), seq);
    std::memcpy(data, tx.data(), tx.size());
    flag.value.store(seq, std::memory_order_release);
  }
  /// Copies the message out of `data`; returns its sequence number.
  std::uint64_t take(const std::byte* data) noexcept {
    std::memcpy(rx.data(), data, rx.size());
    keep(rx.data());
    return get_seq(rx.data());
  }
  Fail a_send(std::uint64_t seq) noexcept {
    put(to_child, sh->ping, seq);
    return Fail::none;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    for (std::uint32_t i = 1;; ++i) {
      const std::uint64_t v = sh->pong.value.load(std::memory_order_acquire);
      if (v == seq) return take(to_parent) == seq ? Fail::none : Fail::error;
      if (v == kDead) return Fail::peer_gone;
      if (i % 65536 == 0 && stop_requested()) return Fail::stopped;
      relax();
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint64_t v;
    while ((v = sh->ping.value.load(std::memory_order_acquire)) == last) relax();
    last = v;
    *seq = v;
    return v == kStop || take(to_child) == v;
  }
  bool b_send(std::uint64_t seq) noexcept {
    put(to_parent, sh->pong, seq);
    return true;
  }
};

/// Floor: futex ping-pong: store, FUTEX_WAKE; FUTEX_WAIT while unchanged; no spinning.
struct FutexChannel {
  Shared* sh;
  std::uint32_t last = 0;  ///< responder: last value seen on fping

  FutexChannel(Run& run, Side /*side*/) : sh(run.sh) {}
  Fail a_send(std::uint64_t seq) noexcept {
    sh->fping.value.store(static_cast<std::uint32_t>(seq), std::memory_order_release);
    futex_wake(sh->fping.value);
    return Fail::none;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    const auto want = static_cast<std::uint32_t>(seq);
    for (;;) {
      const std::uint32_t v = sh->fpong.value.load(std::memory_order_acquire);
      if (v == want) return Fail::none;
      if (v == static_cast<std::uint32_t>(kDead)) return Fail::peer_gone;
      if (stop_requested()) return Fail::stopped;
      futex_wait(sh->fpong.value, v);
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint32_t v;
    while ((v = sh->fping.value.load(std::memory_order_acquire)) == last) futex_wait(sh->fping.value, v);
    last = v;
    *seq = v == static_cast<std::uint32_t>(kStop) ? kStop : v;
    return true;
  }
  bool b_send(std::uint64_t seq) noexcept {
    sh->fpong.value.store(static_cast<std::uint32_t>(seq), std::memory_order_release);
    futex_wake(sh->fpong.value);
    return true;
  }
};

/// shmlink: Queue::push / Queue::pop (their waits are the queue's WaitMode), or the bulk calls.
struct QueueChannel {
  Run& run;
  Queue out;                 ///< the queue this side pushes to (invalid when none)
  Queue in;                  ///< the queue this side pops from (invalid when none)
  Sample tx;                 ///< outgoing sample
  Sample rx;                 ///< incoming sample
  std::vector<Sample> txs;   ///< bulk: outgoing samples
  std::vector<Sample> rxs;   ///< bulk: incoming samples

  QueueChannel(Run& r, Side side) : run(r), tx(make_sample(r.cfg.values)) {
    const std::string& out_path = side == Side::parent ? r.queue_to_child : r.queue_to_parent;
    const std::string& in_path = side == Side::parent ? r.queue_to_parent : r.queue_to_child;
    if (!out_path.empty()) out = Queue::open(out_path);
    if (!in_path.empty()) in = Queue::open(in_path);
    rx.values.reserve(r.cfg.values);
    if (r.bulk) {
      txs.assign(r.batch, tx);
      rxs.resize(r.batch);
      for (Sample& s : rxs) s.values.reserve(r.cfg.values);
    }
  }

  /// Records a failed call (for the report).
  void failed(const char* what, Status st) { run.error = std::string(what) + ": " + st.message(); }

  /// try_push, then push (which waits by the queue's WaitMode) only when the queue is full:
  /// push() reads the clock for its deadline before its first attempt.
  Status send(const Sample& s, std::chrono::nanoseconds timeout) noexcept {
    const Status st = out.try_push(s);
    return st.code() == Errc::would_block ? out.push(s, timeout) : st;
  }
  /// try_pop, then pop (which waits by the queue's WaitMode) only when the queue is empty.
  Status receive(Sample& s, std::chrono::nanoseconds timeout) noexcept {
    const Status st = in.try_pop(s);
    return st.code() == Errc::would_block ? in.pop(s, timeout) : st;
  }

  Fail a_send(std::uint64_t seq) noexcept {
    tx.sequence = seq;
    const Status st = send(tx, kWaitSlice);
    if (st) return Fail::none;
    failed("push", st);
    return Fail::error;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    std::int64_t deadline = 0;
    for (;;) {
      const Status st = receive(rx, kWaitSlice);
      if (st) {
        if (rx.sequence == seq) return Fail::none;
        run.error = order_error(rx.sequence, seq);
        return Fail::error;
      }
      if (st.code() != Errc::timeout && st.code() != Errc::interrupted) {
        failed("pop", st);
        return Fail::error;
      }
      if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const Status st = receive(rx, kChildTimeout);
      if (st.code() == Errc::interrupted) continue;
      if (!st) {
        failed("pop", st);
        return false;
      }
      *seq = rx.sequence;
      return true;
    }
  }
  bool b_send(std::uint64_t /*seq*/) noexcept {
    const Status st = send(rx, kChildTimeout);  // echo the sample as it came
    if (!st) failed("push", st);
    return st.ok();
  }

  /// Child: pushes samples `first` .. `first + n - 1`.
  bool produce(std::uint64_t first, std::int64_t n) noexcept {
    const auto end = first + static_cast<std::uint64_t>(n);
    if (!run.bulk) {
      for (std::uint64_t seq = first; seq < end; ++seq) {
        tx.sequence = seq;
        Status st;
        while ((st = send(tx, kChildTimeout)).code() == Errc::interrupted) {
        }
        if (!st) {
          failed("push", st);
          return false;
        }
      }
      return true;
    }
    for (std::uint64_t seq = first; seq < end;) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(txs.size(), end - seq));
      for (std::size_t i = 0; i < k; ++i) txs[i].sequence = seq + i;
      std::size_t done = 0;
      while (done < k) {
        std::size_t pushed = 0;
        const Status st = out.try_push_burst(std::span<const Sample>(txs.data() + done, k - done), pushed);
        done += pushed;
        if (st) continue;
        if (st.code() != Errc::would_block) {
          failed("try_push_burst", st);
          return false;
        }
        // Full: wait for a free cell with the queue's wait, pushing one sample.
        const Status w = out.push(txs[done], kChildTimeout);
        if (w) {
          ++done;
        } else if (w.code() != Errc::interrupted) {
          failed("push", w);
          return false;
        }
      }
      seq += k;
    }
    return true;
  }

  /// Parent: pops samples `first` .. `first + n - 1`, checking their order.
  Fail consume(std::uint64_t first, std::int64_t n) noexcept {
    const auto end = first + static_cast<std::uint64_t>(n);
    std::int64_t deadline = 0;
    std::uint64_t want = first;
    while (want < end) {
      std::size_t got = 0;
      Sample* batch = &rx;
      Status st;
      if (run.bulk) {
        const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(rxs.size(), end - want));
        st = in.try_pop_burst(std::span<Sample>(rxs.data(), k), got);
        batch = rxs.data();
        if (got == 0 && st.code() == Errc::would_block) {
          st = in.pop(rxs[0], kWaitSlice);  // empty: wait with the queue's wait
          got = st ? 1 : 0;
        }
      } else {
        st = receive(rx, kWaitSlice);
        got = st ? 1 : 0;
      }
      if (got == 0) {
        if (st.code() != Errc::timeout && st.code() != Errc::interrupted && st.code() != Errc::would_block) {
          failed("pop", st);
          return Fail::error;
        }
        if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
        continue;
      }
      deadline = 0;
      for (std::size_t i = 0; i < got; ++i, ++want) {
        if (batch[i].sequence != want) {
          run.error = order_error(batch[i].sequence, want);
          return Fail::error;
        }
      }
    }
    return Fail::none;
  }
};

/// Peers: a pipe pair or a unix stream socket, blocking read / write of whole messages.
struct FdChannel {
  Run& run;
  int in = -1;                 ///< this side reads here
  int out = -1;                ///< this side writes here
  std::vector<std::byte> msg;  ///< the message (latency: received and echoed in place)
  std::vector<std::byte> buf;  ///< throughput: batch of messages, or the read buffer

  FdChannel(Run& r, Side side) : run(r), msg(make_message(r.cfg.values)) {
    run.close_other_side(side);
    in = side == Side::parent ? r.parent_in : r.child_in;
    out = side == Side::parent ? r.parent_out : r.child_out;
  }

  Fail a_send(std::uint64_t seq) noexcept {
    put_seq(msg.data(), seq);
    const int err = write_all(out, msg.data(), msg.size());
    if (err == 0) return Fail::none;
    if (err == EPIPE) return Fail::peer_gone;
    run.error = std::string("write: ") + std::strerror(err);
    return Fail::error;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    for (;;) {
      switch (read_exact(in, msg.data(), msg.size(), true)) {
        case ReadResult::ok:
          if (get_seq(msg.data()) == seq) return Fail::none;
          run.error = order_error(get_seq(msg.data()), seq);
          return Fail::error;
        case ReadResult::eof: return Fail::peer_gone;
        case ReadResult::interrupted:
          if (stop_requested()) return Fail::stopped;
          continue;
        case ReadResult::error: run.error = std::string("read: ") + std::strerror(errno); return Fail::error;
      }
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    if (read_exact(in, msg.data(), msg.size(), false) != ReadResult::ok) {
      run.error = "read: end of file or error";
      return false;
    }
    *seq = get_seq(msg.data());
    return true;
  }
  bool b_send(std::uint64_t /*seq*/) noexcept { return write_all(out, msg.data(), msg.size()) == 0; }

  /// Child: writes messages `first` .. `first + n - 1`, `batch` per write.
  bool produce(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) {
      buf.resize(run.batch * bytes);
      for (std::size_t i = 0; i < run.batch; ++i) std::memcpy(buf.data() + i * bytes, msg.data(), bytes);
    }
    const auto end = first + static_cast<std::uint64_t>(n);
    for (std::uint64_t seq = first; seq < end;) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(run.batch, end - seq));
      for (std::size_t i = 0; i < k; ++i) put_seq(buf.data() + i * bytes, seq + i);
      if (const int err = write_all(out, buf.data(), k * bytes); err != 0) {
        run.error = std::string("write: ") + std::strerror(err);
        return false;
      }
      seq += k;
    }
    return true;
  }

  /// Parent: reads messages `first` .. `first + n - 1` (reads of up to the buffer's size, at
  /// least 64 KiB), checking every message's sequence number.
  Fail consume(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) buf.resize(std::max(kReadBufferBytes, std::max<std::size_t>(2, run.batch) * bytes));
    const auto end = first + static_cast<std::uint64_t>(n);
    std::uint64_t want = first;
    std::size_t have = 0;  // bytes of a partial message kept at the front of buf
    while (want < end) {
      // Never read past the last expected message: the next run's data is not ours.
      const std::size_t room = std::min(buf.size() - have, static_cast<std::size_t>(end - want) * bytes - have);
      const ssize_t r = ::read(in, buf.data() + have, room);
      if (r == 0) return Fail::peer_gone;
      if (r < 0) {
        if (errno != EINTR) {
          run.error = std::string("read: ") + std::strerror(errno);
          return Fail::error;
        }
        if (stop_requested()) return Fail::stopped;
        continue;
      }
      have += static_cast<std::size_t>(r);
      std::size_t off = 0;
      for (; off + bytes <= have; off += bytes, ++want) {
        if (get_seq(buf.data() + off) != want) {
          run.error = order_error(get_seq(buf.data() + off), want);
          return Fail::error;
        }
      }
      if (off < have) std::memmove(buf.data(), buf.data() + off, have - off);
      have -= off;
    }
    return Fail::none;
  }
};

/// Peer: Boost.Interprocess message_queue (a mutex and two condition variables in shared
/// memory; POSIX process-shared pthread objects on Linux).
struct BoostChannel {
  Run& run;
  std::unique_ptr<bip::message_queue> out;  ///< the queue this side sends to
  std::unique_ptr<bip::message_queue> in;   ///< the queue this side receives from
  std::vector<std::byte> msg;               ///< the message (latency: received and echoed)
  std::vector<std::byte> buf;               ///< throughput: a batch of messages
  boost::posix_time::ptime deadline;        ///< absolute limit of timed_receive
  unsigned calls = 0;                       ///< receives since `deadline` was set

  BoostChannel(Run& r, Side side) : run(r), msg(make_message(r.cfg.values)) {
    const std::string& out_name = side == Side::parent ? r.mq_to_child : r.mq_to_parent;
    const std::string& in_name = side == Side::parent ? r.mq_to_parent : r.mq_to_child;
    if (!out_name.empty()) out = open_mq(out_name);
    if (!in_name.empty()) in = open_mq(in_name);
    refresh_deadline();
  }

  /// Sets `deadline` one wait slice ahead (done every 256 receives and after a timeout, so the
  /// clock is read rarely; a later deadline only delays noticing a dead child).
  void refresh_deadline() {
    deadline = boost::posix_time::microsec_clock::universal_time() +
               boost::posix_time::milliseconds(kWaitSliceMs * 5);
    calls = 0;
  }
  /// timed_receive into `p` (up to `size` bytes). @return bytes received, 0 on timeout, -1 on error.
  std::int64_t receive(std::byte* p, std::size_t size) noexcept {
    try {
      if (++calls == 256) refresh_deadline();
      bip::message_queue::size_type got = 0;
      unsigned prio = 0;
      if (in->timed_receive(p, size, got, prio, deadline)) return static_cast<std::int64_t>(got);
      refresh_deadline();
      return 0;
    } catch (const std::exception& e) {
      run.error = std::string("message_queue receive: ") + e.what();
      return -1;
    }
  }
  /// send of `size` bytes (blocks while the queue is full). @return false on error.
  bool send(const std::byte* p, std::size_t size) noexcept {
    try {
      out->send(p, size, 0);
      return true;
    } catch (const std::exception& e) {
      run.error = std::string("message_queue send: ") + e.what();
      return false;
    }
  }

  Fail a_send(std::uint64_t seq) noexcept {
    put_seq(msg.data(), seq);
    return send(msg.data(), msg.size()) ? Fail::none : Fail::error;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    std::int64_t no_progress = 0;
    for (;;) {
      const std::int64_t got = receive(msg.data(), msg.size());
      if (got < 0) return Fail::error;
      if (got > 0) {
        if (static_cast<std::size_t>(got) == msg.size() && get_seq(msg.data()) == seq) return Fail::none;
        run.error = order_error(get_seq(msg.data()), seq);
        return Fail::error;
      }
      if (const Fail f = after_empty_slice(no_progress); f != Fail::none) return f;
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const std::int64_t got = receive(msg.data(), msg.size());
      if (got < 0) return false;
      if (got == 0) continue;  // the parent kills us when it is done
      *seq = get_seq(msg.data());
      return true;
    }
  }
  bool b_send(std::uint64_t /*seq*/) noexcept { return send(msg.data(), msg.size()); }

  /// Child: sends messages `first` .. `first + n - 1`, `batch` per message_queue message.
  bool produce(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) {
      buf.resize(run.batch * bytes);
      for (std::size_t i = 0; i < run.batch; ++i) std::memcpy(buf.data() + i * bytes, msg.data(), bytes);
    }
    const auto end = first + static_cast<std::uint64_t>(n);
    for (std::uint64_t seq = first; seq < end;) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(run.batch, end - seq));
      for (std::size_t i = 0; i < k; ++i) put_seq(buf.data() + i * bytes, seq + i);
      if (!send(buf.data(), k * bytes)) return false;
      seq += k;
    }
    return true;
  }
  /// Parent: receives messages `first` .. `first + n - 1`, checking their order.
  Fail consume(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) buf.resize(run.batch * bytes);
    const auto end = first + static_cast<std::uint64_t>(n);
    std::uint64_t want = first;
    std::int64_t no_progress = 0;
    while (want < end) {
      const std::int64_t got = receive(buf.data(), buf.size());
      if (got < 0) return Fail::error;
      if (got == 0) {
        if (const Fail f = after_empty_slice(no_progress); f != Fail::none) return f;
        continue;
      }
      no_progress = 0;
      const auto size = static_cast<std::size_t>(got);
      if (size % bytes != 0) {
        run.error = "message_queue delivered " + std::to_string(size) + " bytes, not a multiple of " +
                    std::to_string(bytes);
        return Fail::error;
      }
      for (std::size_t off = 0; off < size; off += bytes, ++want) {
        if (get_seq(buf.data() + off) != want) {
          run.error = order_error(get_seq(buf.data() + off), want);
          return Fail::error;
        }
      }
    }
    return Fail::none;
  }
};

/// Peer: ZeroMQ PAIR sockets over ipc:// (a unix socket served by each side's ZeroMQ I/O
/// thread). The parent binds, the child connects; each makes its own context after the fork.
struct ZmqChannel {
  Run& run;
  zmq::context_t ctx;
  zmq::socket_t sock;
  std::vector<std::byte> msg;  ///< the message (latency: received and echoed)
  std::vector<std::byte> buf;  ///< throughput: a batch of messages

  ZmqChannel(Run& r, Side side)
      : run(r), ctx(1), sock(ctx, zmq::socket_type::pair), msg(make_message(r.cfg.values)) {
    try {
      if (side == Side::parent) {
        sock.set(zmq::sockopt::linger, 0);
        sock.set(zmq::sockopt::rcvtimeo, kWaitSliceMs);
        sock.bind(r.endpoint);
      } else {
        sock.set(zmq::sockopt::linger, -1);  // closing flushes what the producer sent
        sock.connect(r.endpoint);
      }
    } catch (const zmq::error_t& e) {
      throw Error(errc_from_errno(e.num()), std::string(side == Side::parent ? "binding " : "connecting ") +
                                                 r.endpoint + ": " + e.what());
    }
  }
  ZmqChannel(const ZmqChannel&) = delete;
  ZmqChannel& operator=(const ZmqChannel&) = delete;
  /// Closes the socket and the context (the child's linger -1 waits until its messages left).
  ~ZmqChannel() {
    sock.close();
    ctx.close();
  }

  /// Sends `size` bytes as one message. @return false on error.
  bool send(const std::byte* p, std::size_t size) noexcept {
    for (;;) {
      try {
        if (sock.send(zmq::const_buffer(p, size), zmq::send_flags::none)) return true;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        run.error = std::string("zmq send: ") + e.what();
        return false;
      }
    }
  }
  /// Receives one message into `p` (up to `size` bytes). @return its size, 0 when the wait
  /// slice passed (or a signal came), -1 on error or a message larger than `size`.
  std::int64_t receive(std::byte* p, std::size_t size) noexcept {
    try {
      const auto got = sock.recv(zmq::mutable_buffer(p, size), zmq::recv_flags::none);
      if (!got) return 0;
      if (got->untruncated_size > size) {
        run.error = "zmq delivered a message of " + std::to_string(got->untruncated_size) + " bytes";
        return -1;
      }
      return static_cast<std::int64_t>(got->size);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) return 0;
      run.error = std::string("zmq recv: ") + e.what();
      return -1;
    }
  }

  Fail a_send(std::uint64_t seq) noexcept {
    put_seq(msg.data(), seq);
    return send(msg.data(), msg.size()) ? Fail::none : Fail::error;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    std::int64_t deadline = 0;
    for (;;) {
      const std::int64_t got = receive(msg.data(), msg.size());
      if (got < 0) return Fail::error;
      if (got > 0) {
        if (static_cast<std::size_t>(got) == msg.size() && get_seq(msg.data()) == seq) return Fail::none;
        run.error = order_error(get_seq(msg.data()), seq);
        return Fail::error;
      }
      if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const std::int64_t got = receive(msg.data(), msg.size());
      if (got < 0) return false;
      if (got == 0) continue;
      *seq = get_seq(msg.data());
      return true;
    }
  }
  bool b_send(std::uint64_t /*seq*/) noexcept { return send(msg.data(), msg.size()); }

  /// Child: sends messages `first` .. `first + n - 1`, `batch` per ZeroMQ message.
  bool produce(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) {
      buf.resize(run.batch * bytes);
      for (std::size_t i = 0; i < run.batch; ++i) std::memcpy(buf.data() + i * bytes, msg.data(), bytes);
    }
    const auto end = first + static_cast<std::uint64_t>(n);
    for (std::uint64_t seq = first; seq < end;) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(run.batch, end - seq));
      for (std::size_t i = 0; i < k; ++i) put_seq(buf.data() + i * bytes, seq + i);
      if (!send(buf.data(), k * bytes)) return false;
      seq += k;
    }
    return true;
  }
  /// Parent: receives messages `first` .. `first + n - 1`, checking their order.
  Fail consume(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) buf.resize(run.batch * bytes);
    const auto end = first + static_cast<std::uint64_t>(n);
    std::uint64_t want = first;
    std::int64_t deadline = 0;
    while (want < end) {
      const std::int64_t got = receive(buf.data(), buf.size());
      if (got < 0) return Fail::error;
      if (got == 0) {
        if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
        continue;
      }
      deadline = 0;
      const auto size = static_cast<std::size_t>(got);
      if (size % bytes != 0) {
        run.error = "zmq delivered " + std::to_string(size) + " bytes, not a multiple of " + std::to_string(bytes);
        return Fail::error;
      }
      for (std::size_t off = 0; off < size; off += bytes, ++want) {
        if (get_seq(buf.data() + off) != want) {
          run.error = order_error(get_seq(buf.data() + off), want);
          return Fail::error;
        }
      }
    }
    return Fail::none;
  }
};

// ---- one run -----------------------------------------------------------------------------------

/// Responder loop: echo every sequence number until kStop; measures its own CPU time from the
/// first timed round trip on. @return the child's exit status.
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

/// Involuntary context switches of this process plus its reaped children.
std::int64_t involuntary_switches() noexcept {
  rusage self{};
  rusage children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  return self.ru_nivcsw + children.ru_nivcsw;
}

/// Reaps `pid`, killing it when it has not exited within `grace_ns`. @return its wait status.
int reap(pid_t pid, std::int64_t grace_ns) noexcept {
  const std::int64_t deadline = mono_ns() + grace_ns;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (mono_ns() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    ::usleep(200);
  }
}

/// Records a child's failure in the shared block and leaves.
[[noreturn]] void child_fail(Shared* sh, const std::string& why, int rc) {
  std::snprintf(sh->error, sizeof sh->error, "%s", why.c_str());
  sh->ready.store(-1);
  ::_exit(rc);
}

/// The child of one run, seen from the parent: forks it (pinned to the second CPU, waiting
/// until the parent opened its side, then running `body`), and kills and reaps it when the run
/// ends early. The SIGCHLD handler watches the shared block meanwhile.
class Child {
 public:
  /// Forks; the child runs `body` (returning its exit status) and leaves with _exit.
  /// @throws Error when fork fails.
  template <class Body>
  Child(Run& run, const char* mode, Body body) : run_(run), mode_(mode) {
    Shared* sh = run.sh;
    sh->ping.value.store(0);
    sh->pong.value.store(0);  // the previous child's exit left kDead here
    sh->fping.value.store(0);
    sh->fpong.value.store(0);
    sh->ready.store(0);
    sh->parent_open.store(0);
    sh->go.store(0);
    sh->consumed.store(0);
    sh->child_cpu_ns.store(0);
    sh->error[0] = '\0';
    g_queue_child_exited = 0;
    g_child_exit_seen_ns = 0;
    g_queue_watch.store(sh);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      const int err = errno;
      g_queue_watch.store(nullptr);
      throw Error(errc_from_errno(err), std::string("bench queue: fork failed: ") + std::strerror(err));
    }
    if (pid_ != 0) return;
    // The child: only this runs here; it leaves with _exit (no destructors of the parent's
    // objects, no atexit handlers).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::signal(SIGINT, SIG_IGN);  // the parent decides when to stop, and kills us
    int rc = 0;
    try {
      if (run.cfg.cores && !pin_to_cpu(run.cfg.cores->second))
        child_fail(sh, "pinning the child to CPU " + std::to_string(run.cfg.cores->second) + ": " +
                           std::strerror(errno), 2);
      const std::int64_t deadline = mono_ns() + kNoProgressNs;
      while (sh->parent_open.load() == 0) {
        if (mono_ns() > deadline) child_fail(sh, "the parent did not open its side", 2);
        ::usleep(20);
      }
      rc = body();
    } catch (const std::exception& e) {
      child_fail(sh, e.what(), 2);
    } catch (...) {
      child_fail(sh, "unknown exception", 2);
    }
    if (rc != 0 && sh->error[0] == '\0')
      std::snprintf(sh->error, sizeof sh->error, "%s", run.error.empty() ? "failed" : run.error.c_str());
    ::_exit(rc);
  }
  /// Kills and reaps the child unless finish() did.
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      (void)reap(pid_, 1'000'000'000);
    }
    g_queue_watch.store(nullptr);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// Waits until the child said it is ready (after the parent set parent_open).
  /// @throws Error with the child's message when it failed or did not start.
  void wait_ready() {
    const std::int64_t deadline = mono_ns() + kNoProgressNs;
    while (run_.sh->ready.load() == 0) {
      if (stop_requested()) fail("interrupted", Errc::interrupted);
      if (g_queue_child_exited != 0 || mono_ns() > deadline) break;
      ::usleep(20);
    }
    if (run_.sh->ready.load() != 1) fail(child_error("the child did not start"), Errc::system);
  }
  /// Turns a failed receive into an Error (killing the child first). Returns on Fail::none.
  void check(Fail f) {
    switch (f) {
      case Fail::none: return;
      case Fail::stopped: fail("interrupted", Errc::interrupted);
      case Fail::timed_out: fail("the child stopped answering", Errc::timeout);
      case Fail::peer_gone: {
        const int status = reap(pid_, 1'000'000'000);
        reaped_ = true;
        std::string why = child_error("the child exited");
        if (status >= 0 && WIFSIGNALED(status)) why += " (signal " + std::to_string(WTERMSIG(status)) + ")";
        if (status >= 0 && WIFEXITED(status)) why += " (status " + std::to_string(WEXITSTATUS(status)) + ")";
        fail(why, Errc::system);
      }
      case Fail::error: fail(run_.error.empty() ? "I/O error" : run_.error, Errc::system);
    }
  }
  /// Reaps the child (killing it after `grace_ns`). @throws Error when it did not exit with 0.
  void finish(std::int64_t grace_ns) {
    const int status = reap(pid_, grace_ns);
    reaped_ = true;
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) fail(child_error("the child failed"), Errc::system);
  }
  /// Throws Error(code) naming the mode (the destructor kills the child).
  [[noreturn]] void fail(const std::string& why, Errc code) const {
    throw Error(code, std::string("bench queue ") + mode_ + ": " + why);
  }

 private:
  /// The child's error text, or `fallback`.
  [[nodiscard]] std::string child_error(const char* fallback) const {
    return run_.sh->error[0] != '\0' ? std::string(run_.sh->error) : std::string(fallback);
  }

  Run& run_;
  const char* mode_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

/// One latency run of `Channel`: `n` timed round trips (within `budget_ns`) merged into `r`.
template <class Channel>
void latency_run(Run& run, std::int64_t n, std::int64_t budget_ns, QueueLatencyResult& r) {
  const char* name = queue_latency_mode_name(r.mode);
  const std::int64_t switches0 = involuntary_switches();
  const std::int64_t warmup = run.cfg.warmup;
  Child child(run, name, [&] {
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

/// One throughput run of `Channel`: the child produces `warm` untimed and then `n` timed
/// samples; this process consumes them and times the second part. Merged into `r`.
template <class Channel>
void throughput_run(Run& run, std::int64_t warm, std::int64_t n, QueueThroughputResult& r) {
  const char* name = queue_throughput_mode_name(r.mode);
  const std::int64_t switches0 = involuntary_switches();
  Shared* sh = run.sh;
  Child child(run, name, [&] {
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
  const std::int64_t wall = std::max<std::int64_t>(t1 - t0, 1);
  r.samples_per_s.push_back(static_cast<double>(n) * 1e9 / static_cast<double>(wall));
  r.samples += n;
  r.wall_ns += wall;
  r.consumer_cpu_ns += cpu1 - cpu0;
  r.producer_cpu_ns += sh->child_cpu_ns.load();
  r.involuntary_switches += involuntary_switches() - switches0;
  ++r.runs;
}

/// The MAP_SHARED anonymous mapping of the Shared block and the two message buffers.
class SharedMapping {
 public:
  /// Maps and constructs the block, with message buffers of `message_bytes` each.
  /// @throws Error when mmap fails.
  explicit SharedMapping(std::size_t message_bytes)
      : stride_((message_bytes + 63) / 64 * 64), size_(sizeof(Shared) + 2 * stride_) {
    addr_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (addr_ == MAP_FAILED)
      throw Error(errc_from_errno(errno), "bench queue: mmap of the shared block failed: " + std::string(std::strerror(errno)));
    new (addr_) Shared();
  }
  /// Unmaps it.
  ~SharedMapping() { ::munmap(addr_, size_); }
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
  void* addr_ = MAP_FAILED;
};

/// Everything the rounds share.
struct Bench {
  const QueueBenchConfig& cfg;
  SharedMapping& mapping;
  std::string mq_prefix;  ///< "shmlink-bench-<pid>-": Boost message_queue names (they live in /dev/shm)

  /// A fresh Run for one mode.
  std::unique_ptr<Run> run() const {
    return std::make_unique<Run>(cfg, mapping.shared(), mapping.message(0), mapping.message(1));
  }
};

/// One latency run of `mode`. @throws Error.
void latency_mode(const Bench& b, std::int64_t n, std::int64_t budget_ns, QueueLatencyResult& r) {
  const std::unique_ptr<Run> run = b.run();
  const std::string& dir = b.cfg.scratch_dir;
  auto queues = [&](QueueKind kind, WaitMode wait) {
    run->queue_to_child = dir + "/bench-q-ping.queue.shm";
    run->queue_to_parent = dir + "/bench-q-pong.queue.shm";
    make_queue(run->queue_to_child, b.cfg, kind, wait, kLatencyQueueCells);
    make_queue(run->queue_to_parent, b.cfg, kind, wait, kLatencyQueueCells);
  };
  try {
    switch (r.mode) {
      case QueueLatencyMode::cacheline: latency_run<CachelineChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::cacheline_message: latency_run<MessageChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::futex_raw: latency_run<FutexChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::spsc_polling: queues(QueueKind::spsc, WaitMode::polling); break;
      case QueueLatencyMode::spsc_hybrid: queues(QueueKind::spsc, WaitMode::hybrid); break;
      case QueueLatencyMode::spsc_futex: queues(QueueKind::spsc, WaitMode::futex); break;
      case QueueLatencyMode::mpmc_polling: queues(QueueKind::mpmc, WaitMode::polling); break;
      case QueueLatencyMode::mpmc_futex: queues(QueueKind::mpmc, WaitMode::futex); break;
      case QueueLatencyMode::pipe: make_pipes(*run, true); latency_run<FdChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::unix_socket: make_socketpair(*run); latency_run<FdChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::boost_mq:
        run->mq_to_child = b.mq_prefix + "ping";
        run->mq_to_parent = b.mq_prefix + "pong";
        make_mq(run->mq_to_child, kLatencyQueueCells, run->bytes);
        make_mq(run->mq_to_parent, kLatencyQueueCells, run->bytes);
        latency_run<BoostChannel>(*run, n, budget_ns, r);
        return;
      case QueueLatencyMode::zmq_ipc:
        run->endpoint = zmq_endpoint(dir);
        latency_run<ZmqChannel>(*run, n, budget_ns, r);
        return;
    }
    latency_run<QueueChannel>(*run, n, budget_ns, r);
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with("bench queue ")) throw;
    throw Error(e.errc(), std::string("bench queue ") + queue_latency_mode_name(r.mode) + ": " + e.what());
  }
}

/// One throughput run of `mode`. @throws Error.
void throughput_mode(const Bench& b, std::int64_t warm, std::int64_t n, QueueThroughputResult& r) {
  const std::unique_ptr<Run> run = b.run();
  const std::string& dir = b.cfg.scratch_dir;
  run->batch = b.cfg.batch;
  auto queue = [&](QueueKind kind, bool bulk) {
    run->bulk = bulk;
    run->queue_to_parent = dir + "/bench-q-tp.queue.shm";
    make_queue(run->queue_to_parent, b.cfg, kind, WaitMode::hybrid, b.cfg.capacity);
  };
  if (!queue_throughput_mode_is_batched(r.mode)) run->batch = 1;
  try {
    switch (r.mode) {
      case QueueThroughputMode::spsc_single: queue(QueueKind::spsc, false); break;
      case QueueThroughputMode::spsc_bulk: queue(QueueKind::spsc, true); break;
      case QueueThroughputMode::mpmc_single: queue(QueueKind::mpmc, false); break;
      case QueueThroughputMode::mpmc_bulk: queue(QueueKind::mpmc, true); break;
      case QueueThroughputMode::pipe_single:
      case QueueThroughputMode::pipe_batch:
        make_pipes(*run, false);
        throughput_run<FdChannel>(*run, warm, n, r);
        return;
      case QueueThroughputMode::unix_socket_single:
      case QueueThroughputMode::unix_socket_batch:
        make_socketpair(*run);
        throughput_run<FdChannel>(*run, warm, n, r);
        return;
      case QueueThroughputMode::boost_mq_single:
      case QueueThroughputMode::boost_mq_batch: {
        // The same bytes in flight as a shmlink queue of `capacity` cells.
        run->mq_to_parent = b.mq_prefix + "tp";
        const std::size_t messages = std::max<std::size_t>(1, b.cfg.capacity / run->batch);
        make_mq(run->mq_to_parent, messages, run->batch * run->bytes);
        throughput_run<BoostChannel>(*run, warm, n, r);
        return;
      }
      case QueueThroughputMode::zmq_ipc_single:
      case QueueThroughputMode::zmq_ipc_batch:
        run->endpoint = zmq_endpoint(dir);
        throughput_run<ZmqChannel>(*run, warm, n, r);
        return;
    }
    throughput_run<QueueChannel>(*run, warm, n, r);
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with("bench queue ")) throw;
    throw Error(e.errc(), std::string("bench queue ") + queue_throughput_mode_name(r.mode) + ": " + e.what());
  }
}

}  // namespace

// ---- modes -------------------------------------------------------------------------------------

const char* queue_latency_mode_name(QueueLatencyMode m) noexcept {
  switch (m) {
    case QueueLatencyMode::cacheline: return "cacheline";
    case QueueLatencyMode::cacheline_message: return "cacheline_message";
    case QueueLatencyMode::futex_raw: return "futex_raw";
    case QueueLatencyMode::spsc_polling: return "spsc_polling";
    case QueueLatencyMode::spsc_hybrid: return "spsc_hybrid";
    case QueueLatencyMode::spsc_futex: return "spsc_futex";
    case QueueLatencyMode::mpmc_polling: return "mpmc_polling";
    case QueueLatencyMode::mpmc_futex: return "mpmc_futex";
    case QueueLatencyMode::pipe: return "pipe";
    case QueueLatencyMode::unix_socket: return "unix_socket";
    case QueueLatencyMode::boost_mq: return "boost_mq";
    case QueueLatencyMode::zmq_ipc: return "zmq_ipc";
  }
  return "?";
}

const char* queue_latency_mode_description(QueueLatencyMode m) noexcept {
  switch (m) {
    case QueueLatencyMode::cacheline: return "raw: atomic store / PAUSE spin on separate cache lines (8 bytes)";
    case QueueLatencyMode::cacheline_message: return "raw: the message copied through shared lines, then a cacheline flag";
    case QueueLatencyMode::futex_raw: return "raw: store + FUTEX_WAKE / FUTEX_WAIT, no spinning (4 bytes)";
    case QueueLatencyMode::spsc_polling: return "shmlink SPSC queue, polling wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::spsc_hybrid: return "shmlink SPSC queue, hybrid wait (20 us spin, then futex): try_push / try_pop, pop";
    case QueueLatencyMode::spsc_futex: return "shmlink SPSC queue, futex wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::mpmc_polling: return "shmlink MPMC queue, polling wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::mpmc_futex: return "shmlink MPMC queue, futex wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::pipe: return "two pipes: write / blocking read of the message";
    case QueueLatencyMode::unix_socket: return "socketpair(AF_UNIX, SOCK_STREAM): write / blocking read";
    case QueueLatencyMode::boost_mq: return "two Boost.Interprocess message_queues: send / timed_receive";
    case QueueLatencyMode::zmq_ipc: return "ZeroMQ PAIR sockets over ipc://: send / recv";
  }
  return "";
}

const char* queue_latency_mode_kind(QueueLatencyMode m) noexcept {
  switch (m) {
    case QueueLatencyMode::cacheline:
    case QueueLatencyMode::futex_raw: return "floor";
    case QueueLatencyMode::cacheline_message: return "reference";
    case QueueLatencyMode::pipe:
    case QueueLatencyMode::unix_socket:
    case QueueLatencyMode::boost_mq:
    case QueueLatencyMode::zmq_ipc: return "peer";
    default: return "shmlink";
  }
}

bool queue_latency_mode_is_shmlink(QueueLatencyMode m) noexcept {
  return std::string_view(queue_latency_mode_kind(m)) == "shmlink";
}

bool queue_latency_mode_spins(QueueLatencyMode m) noexcept {
  return m == QueueLatencyMode::cacheline || m == QueueLatencyMode::cacheline_message ||
         m == QueueLatencyMode::spsc_polling || m == QueueLatencyMode::mpmc_polling;
}

std::optional<double> queue_latency_mode_target(QueueLatencyMode m) noexcept {
  if (m == QueueLatencyMode::spsc_polling) return 1.5;
  return std::nullopt;
}

const char* queue_throughput_mode_name(QueueThroughputMode m) noexcept {
  switch (m) {
    case QueueThroughputMode::spsc_single: return "spsc_single";
    case QueueThroughputMode::spsc_bulk: return "spsc_bulk";
    case QueueThroughputMode::mpmc_single: return "mpmc_single";
    case QueueThroughputMode::mpmc_bulk: return "mpmc_bulk";
    case QueueThroughputMode::pipe_single: return "pipe_single";
    case QueueThroughputMode::pipe_batch: return "pipe_batch";
    case QueueThroughputMode::unix_socket_single: return "unix_socket_single";
    case QueueThroughputMode::unix_socket_batch: return "unix_socket_batch";
    case QueueThroughputMode::boost_mq_single: return "boost_mq_single";
    case QueueThroughputMode::boost_mq_batch: return "boost_mq_batch";
    case QueueThroughputMode::zmq_ipc_single: return "zmq_ipc_single";
    case QueueThroughputMode::zmq_ipc_batch: return "zmq_ipc_batch";
  }
  return "?";
}

const char* queue_throughput_mode_description(QueueThroughputMode m) noexcept {
  switch (m) {
    case QueueThroughputMode::spsc_single: return "shmlink SPSC queue, hybrid wait: try_push / try_pop (push / pop to wait)";
    case QueueThroughputMode::spsc_bulk: return "shmlink SPSC queue: try_push_burst / try_pop_burst of batch samples";
    case QueueThroughputMode::mpmc_single: return "shmlink MPMC queue, hybrid wait: try_push / try_pop (push / pop to wait)";
    case QueueThroughputMode::mpmc_bulk: return "shmlink MPMC queue: try_push_burst / try_pop_burst of batch samples";
    case QueueThroughputMode::pipe_single: return "one pipe: one message per write, reads of up to 64 KiB";
    case QueueThroughputMode::pipe_batch: return "one pipe: batch messages per write, reads of up to 64 KiB";
    case QueueThroughputMode::unix_socket_single: return "socketpair(AF_UNIX, SOCK_STREAM): one message per write";
    case QueueThroughputMode::unix_socket_batch: return "socketpair(AF_UNIX, SOCK_STREAM): batch messages per write";
    case QueueThroughputMode::boost_mq_single: return "Boost.Interprocess message_queue: one message per send";
    case QueueThroughputMode::boost_mq_batch: return "Boost.Interprocess message_queue: batch messages per send";
    case QueueThroughputMode::zmq_ipc_single: return "ZeroMQ PAIR over ipc://: one message per zmq message";
    case QueueThroughputMode::zmq_ipc_batch: return "ZeroMQ PAIR over ipc://: batch messages per zmq message";
  }
  return "";
}

bool queue_throughput_mode_is_shmlink(QueueThroughputMode m) noexcept {
  return m == QueueThroughputMode::spsc_single || m == QueueThroughputMode::spsc_bulk ||
         m == QueueThroughputMode::mpmc_single || m == QueueThroughputMode::mpmc_bulk;
}

bool queue_throughput_mode_is_batched(QueueThroughputMode m) noexcept {
  switch (m) {
    case QueueThroughputMode::spsc_bulk:
    case QueueThroughputMode::mpmc_bulk:
    case QueueThroughputMode::pipe_batch:
    case QueueThroughputMode::unix_socket_batch:
    case QueueThroughputMode::boost_mq_batch:
    case QueueThroughputMode::zmq_ipc_batch: return true;
    default: return false;
  }
}

const char* queue_peer_name(QueuePeer p) noexcept { return queue_latency_mode_name(queue_peer_latency_mode(p)); }

QueueLatencyMode queue_peer_latency_mode(QueuePeer p) noexcept {
  switch (p) {
    case QueuePeer::pipe: return QueueLatencyMode::pipe;
    case QueuePeer::unix_socket: return QueueLatencyMode::unix_socket;
    case QueuePeer::boost_mq: return QueueLatencyMode::boost_mq;
    case QueuePeer::zmq_ipc: return QueueLatencyMode::zmq_ipc;
  }
  return QueueLatencyMode::pipe;
}

QueueThroughputMode queue_peer_throughput_mode(QueuePeer p, bool batched) noexcept {
  switch (p) {
    case QueuePeer::pipe: return batched ? QueueThroughputMode::pipe_batch : QueueThroughputMode::pipe_single;
    case QueuePeer::unix_socket:
      return batched ? QueueThroughputMode::unix_socket_batch : QueueThroughputMode::unix_socket_single;
    case QueuePeer::boost_mq: return batched ? QueueThroughputMode::boost_mq_batch : QueueThroughputMode::boost_mq_single;
    case QueuePeer::zmq_ipc: return batched ? QueueThroughputMode::zmq_ipc_batch : QueueThroughputMode::zmq_ipc_single;
  }
  return QueueThroughputMode::pipe_single;
}

// ---- the rounds ----------------------------------------------------------------------------------

QueueBenchResults run_queue_bench(const QueueBenchConfig& cfg, std::vector<std::string>& notes) {
  if (cfg.values < 1 || cfg.values > kMaxSampleValues)
    throw Error(Errc::invalid_argument, "bench queue: --values must be 1.." + std::to_string(kMaxSampleValues));
  if (cfg.capacity < 2 || (cfg.capacity & (cfg.capacity - 1)) != 0 || cfg.capacity > kMaxQueueCapacity)
    throw Error(Errc::invalid_argument, "bench queue: the queue capacity must be a power of two");
  if (cfg.batch < 1 || cfg.batch > cfg.capacity)
    throw Error(Errc::invalid_argument, "bench queue: --batch must be 1..capacity (" + std::to_string(cfg.capacity) + ")");

  QueueBenchResults res;
  for (QueueLatencyMode m : kAllQueueLatencyModes) res.latency.push_back(QueueLatencyResult{m, {}, 0, 0, 0, 0, 0, false, {}});
  for (QueueThroughputMode m : kAllQueueThroughputModes) res.throughput.push_back(QueueThroughputResult{m, {}, 0, 0, 0, 0, 0, 0});
  auto latency_of = [&](QueueLatencyMode m) -> QueueLatencyResult& {
    return *std::find_if(res.latency.begin(), res.latency.end(), [m](const QueueLatencyResult& r) { return r.mode == m; });
  };
  auto throughput_of = [&](QueueThroughputMode m) -> QueueThroughputResult& {
    return *std::find_if(res.throughput.begin(), res.throughput.end(),
                         [m](const QueueThroughputResult& r) { return r.mode == m; });
  };

  // Spinning against a process on the same CPU only progresses at scheduler ticks.
  const bool can_spin = cfg.cores.has_value() || allowed_cpus().size() >= 2;
  if (!can_spin) {
    for (QueueLatencyResult& r : res.latency)
      if (queue_latency_mode_spins(r.mode))
        r.skipped = "one CPU available: spinning against a peer on the same CPU measures the scheduler";
  }

  SharedMapping mapping(cfg.message_bytes());
  const SignalHandlerGuard child_watch(SIGCHLD, on_queue_bench_child_exit, SA_NOCLDSTOP);
  const SignalHandlerGuard no_sigpipe(SIGPIPE, SIG_IGN, 0);  // a dead reader is EPIPE, not death
  const Bench bench{cfg, mapping, "shmlink-bench-" + std::to_string(::getpid()) + "-"};

  const int rounds = std::max(cfg.rounds, 1);
  const std::int64_t lat_n = std::max<std::int64_t>(1, (cfg.samples + rounds - 1) / rounds);
  const auto budget_ns = static_cast<std::int64_t>(cfg.max_seconds_per_mode * 1e9 / rounds);
  const std::int64_t tp_n = std::max<std::int64_t>(1, (cfg.throughput_samples + rounds - 1) / rounds);
  const std::int64_t tp_warm = std::min<std::int64_t>(cfg.warmup, cfg.capacity);
  for (int round = 0; round < rounds; ++round) {
    std::vector<QueueLatencyMode> lat(std::begin(kAllQueueLatencyModes), std::end(kAllQueueLatencyModes));
    std::vector<QueueThroughputMode> tp(std::begin(kAllQueueThroughputModes), std::end(kAllQueueThroughputModes));
    if (round % 2 == 1) {
      std::reverse(lat.begin(), lat.end());
      std::reverse(tp.begin(), tp.end());
    }
    for (QueueLatencyMode m : lat) {
      QueueLatencyResult& r = latency_of(m);
      if (r.skipped.empty()) latency_mode(bench, lat_n, budget_ns, r);
    }
    for (QueueThroughputMode m : tp) throughput_mode(bench, tp_warm, tp_n, throughput_of(m));
  }
  for (const QueueLatencyResult& r : res.latency) {
    if (r.budget_hit) {
      notes.push_back(std::string(queue_latency_mode_name(r.mode)) +
                      ": the time budget (--max-seconds) ended some runs early; " +
                      std::to_string(r.round_trips_ns.size()) + " round trips measured");
    }
  }
  return res;
}

}  // namespace shmlink::cli::bench
