// SPDX-License-Identifier: MIT
// Latency part of `shmlink bench stream` (docs/bench.md "Latency"): two processes pinned to two
// CPUs play ping-pong; the initiator times every round trip with CLOCK_MONOTONIC and the
// one-way latency is half of it. Raw floors (cache-line ping-pong, futex ping-pong, pipe) and
// shmlink's waits (spin, hybrid, futex, semaphore) run interleaved in rounds.
#include "bench_common.hpp"

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace shmlink::cli::bench {

namespace {

using namespace std::chrono_literals;

/// Sequence number that tells the responder to finish.
constexpr std::uint64_t kStop = ~std::uint64_t{0};
/// Written by the SIGCHLD handler into the reply words: the responder is gone.
constexpr std::uint64_t kDead = kStop - 1;
/// How long the initiator waits for one reply before it gives up on the responder.
constexpr std::int64_t kReplyTimeoutNs = 10'000'000'000;
/// Slices of the initiator's stream waits, so that stop requests and dead children are seen.
constexpr std::chrono::nanoseconds kWaitSlice = 200ms;
/// Timeout of the responder's stream waits (it is killed by the parent or by PDEATHSIG before).
constexpr std::chrono::nanoseconds kResponderTimeout = 60s;

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

/// A 64-byte payload alone on its cache line.
struct alignas(64) Payload {
  std::byte bytes[64] = {};
};

/// State shared by initiator and responder: a MAP_SHARED anonymous mapping made before fork.
///
///   offset 0    ping   (cache-line floor, initiator -> responder)
///   offset 64   pong   (cache-line floor, responder -> initiator)
///   offset 128  fping  (futex floor, initiator -> responder)
///   offset 192  fpong  (futex floor, responder -> initiator)
///   offset 256  ping_data (cacheline_payload, initiator -> responder)
///   offset 320  pong_data (cacheline_payload, responder -> initiator)
///   offset 384  control: ready flag, responder CPU time, error text
struct Shared {
  Line ping;
  Line pong;
  Word fping;
  Word fpong;
  Payload ping_data;
  Payload pong_data;
  alignas(64) std::atomic<int> ready{0};  ///< 1: responder ready; -1: it failed (see error)
  std::atomic<std::int64_t> responder_cpu_ns{0};  ///< responder CPU time over the timed phase
  char error[256] = {};                   ///< responder's failure, NUL-terminated
};
static_assert(offsetof(Shared, pong) == 64 && offsetof(Shared, fping) == 128 && offsetof(Shared, fpong) == 192 &&
              offsetof(Shared, ping_data) == 256 && offsetof(Shared, pong_data) == 320);

/// The Shared block the SIGCHLD handler marks (set while a responder runs).
std::atomic<Shared*> g_watch{nullptr};
/// Set by SIGCHLD.
volatile std::sig_atomic_t g_child_exited = 0;

/// SIGCHLD handler: flags the exit and writes kDead into the reply words, so that an
/// initiator about to spin or sleep on them sees a changed value (closing the race between
/// its last check and FUTEX_WAIT). Lock-free atomic stores are async-signal-safe.
extern "C" void on_child_exit(int /*sig*/) {
  g_child_exited = 1;
  Shared* sh = g_watch.load(std::memory_order_relaxed);
  if (sh == nullptr) return;
  sh->pong.value.store(kDead, std::memory_order_release);
  sh->fpong.value.store(static_cast<std::uint32_t>(kDead), std::memory_order_release);
}

/// Installs on_child_exit for SIGCHLD (no SA_RESTART: blocking waits return EINTR) and
/// restores the previous handler on destruction.
class ChildWatch {
 public:
  /// Installs the handler.
  ChildWatch() {
    struct sigaction sa {};
    sa.sa_handler = on_child_exit;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    ::sigaction(SIGCHLD, &sa, &old_);
  }
  /// Restores the previous handler.
  ~ChildWatch() {
    g_watch.store(nullptr);
    ::sigaction(SIGCHLD, &old_, nullptr);
  }
  ChildWatch(const ChildWatch&) = delete;
  ChildWatch& operator=(const ChildWatch&) = delete;

 private:
  struct sigaction old_ {};
};

/// One spin-wait hint, as the library's (x86 PAUSE, aarch64 YIELD).
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

/// Why an initiator's receive failed.
enum class Fail { none, peer_gone, stopped, timed_out, error };

// ---- channels: a_* run in the initiator, b_* in the responder ------------------------------

/// Floor: cache-line ping-pong, both sides spinning with PAUSE on the other's line.
struct CachelineChannel {
  Shared* sh;
  std::uint64_t last = 0;  ///< responder: last value seen on ping

  /// Initiator: publish `seq` on ping.
  void a_send(std::uint64_t seq) noexcept { sh->ping.value.store(seq, std::memory_order_release); }
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
  /// Responder: spin until ping changes; returns the new value.
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint64_t v;
    while ((v = sh->ping.value.load(std::memory_order_acquire)) == last) relax();
    last = v;
    *seq = v;
    return true;
  }
  /// Responder: echo `seq` on pong.
  void b_send(std::uint64_t seq) noexcept { sh->pong.value.store(seq, std::memory_order_release); }
};

/// Reference: the cache-line ping-pong carrying a 64-byte payload on a line of its own, as a
/// frame does: the sender fills the payload, then publishes the sequence number (release); the
/// receiver spins on the number (acquire), then copies the payload out and checks it. Two
/// lines cross between the CPUs per hop instead of one.
struct PayloadChannel {
  Shared* sh;
  std::uint64_t last = 0;  ///< responder: last value seen on ping
  Payload tx;              ///< outgoing payload (private)
  Payload rx;              ///< incoming payload (private)

  /// Copies `seq` and the payload into `data`, then publishes `seq` on `flag`.
  void put(Payload& data, Line& flag, std::uint64_t seq) noexcept {
    std::memcpy(tx.bytes, &seq, sizeof seq);
    std::memcpy(data.bytes, tx.bytes, sizeof tx.bytes);
    flag.value.store(seq, std::memory_order_release);
  }
  /// Copies the payload out of `data`; returns the sequence number it carries.
  std::uint64_t take(const Payload& data) noexcept {
    std::memcpy(rx.bytes, data.bytes, sizeof rx.bytes);
    keep(rx.bytes);
    std::uint64_t v = 0;
    std::memcpy(&v, rx.bytes, sizeof v);
    return v;
  }
  /// Initiator: payload, then ping.
  void a_send(std::uint64_t seq) noexcept { put(sh->ping_data, sh->ping, seq); }
  /// Initiator: spin until pong carries `seq`, then copy the payload out.
  Fail a_recv(std::uint64_t seq) noexcept {
    for (std::uint32_t i = 1;; ++i) {
      const std::uint64_t v = sh->pong.value.load(std::memory_order_acquire);
      if (v == seq) return take(sh->pong_data) == seq ? Fail::none : Fail::error;
      if (v == kDead) return Fail::peer_gone;
      if (i % 65536 == 0 && stop_requested()) return Fail::stopped;
      relax();
    }
  }
  /// Responder: spin until ping changes, then copy the payload out.
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint64_t v;
    while ((v = sh->ping.value.load(std::memory_order_acquire)) == last) relax();
    last = v;
    *seq = v;
    return v == kStop || take(sh->ping_data) == v;
  }
  /// Responder: payload, then pong.
  void b_send(std::uint64_t seq) noexcept { put(sh->pong_data, sh->pong, seq); }
};

/// Floor: futex ping-pong, the bare mechanism: store, FUTEX_WAKE; FUTEX_WAIT while unchanged.
struct FutexChannel {
  Shared* sh;
  std::uint32_t last = 0;  ///< responder: last value seen on fping

  /// Initiator: store `seq` into fping and wake the responder.
  void a_send(std::uint64_t seq) noexcept {
    sh->fping.value.store(static_cast<std::uint32_t>(seq), std::memory_order_release);
    futex_wake(sh->fping.value);
  }
  /// Initiator: sleep on fpong until it carries `seq`.
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
  /// Responder: sleep on fping until it changes.
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint32_t v;
    while ((v = sh->fping.value.load(std::memory_order_acquire)) == last) futex_wait(sh->fping.value, v);
    last = v;
    *seq = v == static_cast<std::uint32_t>(kStop) ? kStop : v;
    return true;
  }
  /// Responder: store `seq` into fpong and wake the initiator.
  void b_send(std::uint64_t seq) noexcept {
    sh->fpong.value.store(static_cast<std::uint32_t>(seq), std::memory_order_release);
    futex_wake(sh->fpong.value);
  }
};

/// Reference: two pipes, one 8-byte message per hop, blocking read and write.
struct PipeChannel {
  int to_b = -1;    ///< write end, initiator -> responder
  int from_b = -1;  ///< read end, responder -> initiator
  int to_a = -1;    ///< write end, responder -> initiator
  int from_a = -1;  ///< read end, initiator -> responder

  /// Initiator: write `seq`.
  void a_send(std::uint64_t seq) noexcept { (void)!::write(to_b, &seq, sizeof seq); }
  /// Initiator: read until `seq` comes back.
  Fail a_recv(std::uint64_t seq) noexcept {
    for (;;) {
      std::uint64_t v = 0;
      const ssize_t n = ::read(from_b, &v, sizeof v);
      if (n == static_cast<ssize_t>(sizeof v)) {
        if (v == seq) return Fail::none;
        continue;
      }
      if (n == 0) return Fail::peer_gone;
      if (n < 0 && errno == EINTR) {
        if (stop_requested()) return Fail::stopped;
        continue;
      }
      return Fail::error;
    }
  }
  /// Responder: read the next message.
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const ssize_t n = ::read(from_a, seq, sizeof *seq);
      if (n == static_cast<ssize_t>(sizeof *seq)) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }
  /// Responder: write `seq` back.
  void b_send(std::uint64_t seq) noexcept { (void)!::write(to_a, &seq, sizeof seq); }
};

/// shmlink: the initiator writes "ping" frames and reads "pong" frames; the responder the
/// reverse. Every receive is a wait of the mode followed by a validated read_copy() of the
/// frame, whose first 8 bytes carry the sequence number.
struct StreamChannel {
  LatencyMode mode = LatencyMode::spin;
  Stream* out = nullptr;         ///< stream this side writes
  Stream* in = nullptr;          ///< stream this side reads
  std::vector<std::byte> tx;     ///< outgoing frame
  std::vector<std::byte> rx;     ///< incoming frame
  std::uint64_t last = 0;        ///< cnt0 of the last frame read from `in`
  int slot = -1;                 ///< semaphore slot claimed on `in` (semaphore mode)
  WriteOptions options;          ///< semaphores are posted unless --no-post-semaphores
  std::string error;             ///< what failed, for the report

  /// Writes one frame carrying `seq`.
  Status send(std::uint64_t seq) noexcept {
    std::memcpy(tx.data(), &seq, sizeof seq);
    return out->write(std::span<const std::byte>(tx), options);
  }
  /// Waits for a frame newer than `last` with the mode's wait, then copies it out.
  Status recv(std::uint64_t* seq, std::chrono::nanoseconds timeout) noexcept {
    Status st;
    std::uint64_t c = 0;
    switch (mode) {
      case LatencyMode::spin: st = in->wait_spin(last, timeout, &c); break;
      case LatencyMode::hybrid: st = in->wait_futex(last, timeout, &c, kDefaultSpin); break;
      case LatencyMode::futex: st = in->wait_futex(last, timeout, &c, 0ns); break;
      case LatencyMode::semaphore: st = in->sem_wait(slot, timeout); break;
      default: st = Errc::invalid_argument; break;
    }
    if (!st) return st;
    if (mode == LatencyMode::semaphore) c = in->cnt0();
    // A validated copy; the frame info (whose times sit on two more cache lines) is not needed:
    // in a ping-pong no newer frame can arrive before this one is answered.
    st = in->read_copy(std::span<std::byte>(rx));
    if (!st) return st;
    last = c;
    std::memcpy(seq, rx.data(), sizeof *seq);
    return Errc::ok;
  }

  /// Initiator: write a ping frame.
  void a_send(std::uint64_t seq) noexcept { (void)send(seq); }
  /// Initiator: receive pong frames until one carries `seq`.
  Fail a_recv(std::uint64_t seq) noexcept {
    const std::int64_t deadline = mono_ns() + kReplyTimeoutNs;
    for (;;) {
      std::uint64_t v = 0;
      const Status st = recv(&v, kWaitSlice);
      if (st.ok()) {
        if (v == seq) return Fail::none;
        continue;  // a stale frame (or a stale semaphore post): keep waiting
      }
      if (stop_requested()) return Fail::stopped;
      if (g_child_exited != 0) return Fail::peer_gone;
      if (st.code() != Errc::timeout && st.code() != Errc::interrupted) {
        error = std::string("receiving: ") + st.message();
        return Fail::error;
      }
      if (mono_ns() > deadline) return Fail::timed_out;
    }
  }
  /// Responder: receive the next frame that carries a new sequence number.
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const std::uint64_t before = *seq;
      const Status st = recv(seq, kResponderTimeout);
      if (st.code() == Errc::interrupted) continue;
      if (!st) {
        error = std::string("receiving: ") + st.message();
        return false;
      }
      if (*seq != before) return true;
    }
  }
  /// Responder: write a pong frame.
  void b_send(std::uint64_t seq) noexcept { (void)send(seq); }
};

// ---- one run -----------------------------------------------------------------------------

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
    ch.b_send(seq);
  }
  if (cpu0 != 0) sh->responder_cpu_ns.store(process_cpu_ns() - cpu0);
  return 0;
}

/// What the initiator measured in one run.
struct RunOutcome {
  Fail fail = Fail::none;
  std::int64_t cpu_ns = 0;
  std::int64_t wall_ns = 0;
  bool budget_hit = false;
};

/// Initiator loop: `warmup` untimed round trips, then up to `n` timed ones (appended to
/// `out`), stopping early when `budget_ns` of timed wall time is spent; finally kStop.
template <class Channel>
RunOutcome drive(Channel& ch, std::int64_t warmup, std::int64_t n, std::int64_t budget_ns,
                 std::vector<std::int64_t>& out) {
  RunOutcome o;
  std::uint64_t seq = 0;
  for (std::int64_t i = 0; i < warmup; ++i) {
    ch.a_send(++seq);
    if ((o.fail = ch.a_recv(seq)) != Fail::none) return o;
  }
  out.reserve(out.size() + static_cast<std::size_t>(n));
  const std::int64_t cpu0 = process_cpu_ns();
  const std::int64_t start = mono_ns();
  std::int64_t t1 = start;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t t0 = mono_ns();
    ch.a_send(++seq);
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
  ch.a_send(kStop);
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

/// Closes a descriptor if open and marks it closed.
void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

/// Everything one run needs.
struct Bench {
  const LatencyConfig& cfg;
  Shared* sh = nullptr;
  Stream ping;          ///< initiator -> responder frames
  Stream pong;          ///< responder -> initiator frames
  int initiator_slot = -1;  ///< semaphore slot of the initiator on pong
};

/// Runs one mode once: forks a responder (pinned to the second CPU), drives `n` timed round
/// trips and merges them into `r`. @throws Error on any failure or a stop request.
void run_once(Bench& b, LatencyMode mode, std::int64_t n, std::int64_t budget_ns, LatencyResult& r) {
  Shared* sh = b.sh;
  sh->ping.value.store(0);
  sh->pong.value.store(0);
  sh->fping.value.store(0);
  sh->fpong.value.store(0);
  sh->ready.store(0);
  sh->responder_cpu_ns.store(0);
  sh->error[0] = '\0';

  PipeChannel pipes;
  if (mode == LatencyMode::pipe) {
    int ab[2];
    int ba[2];
    if (::pipe2(ab, O_CLOEXEC) != 0) throw Error(errc_from_errno(errno), "bench: pipe2 failed");
    if (::pipe2(ba, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(ab[0]);
      ::close(ab[1]);
      throw Error(errc_from_errno(err), "bench: pipe2 failed");
    }
    pipes.from_a = ab[0];
    pipes.to_b = ab[1];
    pipes.from_b = ba[0];
    pipes.to_a = ba[1];
  }
  auto close_pipes = [&] {
    close_fd(pipes.to_b);
    close_fd(pipes.from_b);
    close_fd(pipes.to_a);
    close_fd(pipes.from_a);
  };

  const bool stream_mode = !mode_is_floor(mode);
  StreamChannel a_stream;
  if (stream_mode) {
    a_stream.mode = mode;
    a_stream.out = &b.ping;
    a_stream.in = &b.pong;
    a_stream.tx.assign(b.cfg.payload_bytes, std::byte{0});
    a_stream.rx.assign(b.cfg.payload_bytes, std::byte{0});
    a_stream.last = b.pong.cnt0();
    a_stream.options.post_semaphores = b.cfg.post_semaphores || mode == LatencyMode::semaphore;
    if (mode == LatencyMode::semaphore) {
      if (b.initiator_slot < 0) b.initiator_slot = b.pong.claim_semaphore();
      if (b.initiator_slot < 0) throw Error(Errc::busy, "bench: no free semaphore slot in " + b.pong.path());
      a_stream.slot = b.initiator_slot;
      (void)b.pong.sem_flush(a_stream.slot);
    }
  }

  const std::int64_t switches0 = involuntary_switches();
  g_child_exited = 0;
  g_watch.store(sh);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    g_watch.store(nullptr);
    close_pipes();
    throw Error(errc_from_errno(err), std::string("bench: fork failed: ") + std::strerror(err));
  }
  if (pid == 0) {
    // Responder. Only this loop runs here; it leaves with _exit (no destructors, no atexit).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::signal(SIGINT, SIG_IGN);  // the parent decides when to stop, and kills us
    auto fail = [&](const std::string& why, int rc) {
      std::snprintf(sh->error, sizeof sh->error, "%s", why.c_str());
      sh->ready.store(-1);
      ::_exit(rc);
    };
    if (b.cfg.cores && !pin_to_cpu(b.cfg.cores->second))
      fail(std::string("pinning the responder to CPU ") + std::to_string(b.cfg.cores->second) + ": " +
               std::strerror(errno), 2);
    const std::int64_t warmup = b.cfg.warmup;
    int rc = 0;
    switch (mode) {
      case LatencyMode::cacheline: {
        CachelineChannel ch{sh};
        sh->ready.store(1);
        rc = respond(ch, sh, warmup);
        break;
      }
      case LatencyMode::cacheline_payload: {
        PayloadChannel ch{sh};
        sh->ready.store(1);
        rc = respond(ch, sh, warmup);
        break;
      }
      case LatencyMode::futex_raw: {
        FutexChannel ch{sh};
        sh->ready.store(1);
        rc = respond(ch, sh, warmup);
        break;
      }
      case LatencyMode::pipe: {
        close_fd(pipes.to_b);
        close_fd(pipes.from_b);
        sh->ready.store(1);
        rc = respond(pipes, sh, warmup);
        break;
      }
      default: {
        StreamChannel ch;
        ch.mode = mode;
        ch.out = &b.pong;
        ch.in = &b.ping;
        ch.tx.assign(b.cfg.payload_bytes, std::byte{0});
        ch.rx.assign(b.cfg.payload_bytes, std::byte{0});
        ch.last = b.ping.cnt0();
        ch.options.post_semaphores = b.cfg.post_semaphores || mode == LatencyMode::semaphore;
        if (mode == LatencyMode::semaphore) {
          ch.slot = b.ping.claim_semaphore();
          if (ch.slot < 0) fail("no free semaphore slot in " + b.ping.path(), 2);
          (void)b.ping.sem_flush(ch.slot);
        }
        sh->ready.store(1);
        rc = respond(ch, sh, warmup);
        if (rc != 0) std::snprintf(sh->error, sizeof sh->error, "%s", ch.error.c_str());
        if (ch.slot >= 0) b.ping.release_semaphore(ch.slot);
        break;
      }
    }
    ::_exit(rc);
  }

  // Initiator.
  if (mode == LatencyMode::pipe) {
    close_fd(pipes.to_a);
    close_fd(pipes.from_a);
  }
  bool reaped = false;  // once reaped, the pid may belong to someone else: never signal it again
  auto abort_run = [&](const std::string& why, Errc code) {
    if (!reaped) {
      ::kill(pid, SIGKILL);
      (void)reap(pid, 1'000'000'000);
    }
    g_watch.store(nullptr);
    close_pipes();
    throw Error(code, "bench " + std::string(mode_name(mode)) + ": " + why);
  };
  const std::int64_t ready_deadline = mono_ns() + kReplyTimeoutNs;
  while (sh->ready.load() == 0) {
    if (stop_requested()) abort_run("interrupted", Errc::interrupted);
    if (g_child_exited != 0 || mono_ns() > ready_deadline) break;
    ::usleep(50);
  }
  if (sh->ready.load() != 1) {
    const std::string why = sh->error[0] != '\0' ? std::string(sh->error) : "the responder did not start";
    abort_run(why, Errc::system);
  }

  RunOutcome o;
  switch (mode) {
    case LatencyMode::cacheline: {
      CachelineChannel ch{sh};
      o = drive(ch, b.cfg.warmup, n, budget_ns, r.round_trips_ns);
      break;
    }
    case LatencyMode::cacheline_payload: {
      PayloadChannel ch{sh};
      o = drive(ch, b.cfg.warmup, n, budget_ns, r.round_trips_ns);
      break;
    }
    case LatencyMode::futex_raw: {
      FutexChannel ch{sh};
      o = drive(ch, b.cfg.warmup, n, budget_ns, r.round_trips_ns);
      break;
    }
    case LatencyMode::pipe: o = drive(pipes, b.cfg.warmup, n, budget_ns, r.round_trips_ns); break;
    default: o = drive(a_stream, b.cfg.warmup, n, budget_ns, r.round_trips_ns); break;
  }
  switch (o.fail) {
    case Fail::none: break;
    case Fail::stopped: abort_run("interrupted", Errc::interrupted); break;
    case Fail::timed_out: abort_run("the responder stopped answering", Errc::timeout); break;
    case Fail::peer_gone: {
      const int status = reap(pid, 1'000'000'000);
      reaped = true;
      std::string why = sh->error[0] != '\0' ? std::string(sh->error) : "the responder exited";
      if (status >= 0 && WIFSIGNALED(status)) why += " (signal " + std::to_string(WTERMSIG(status)) + ")";
      abort_run(why, Errc::system);
      break;
    }
    case Fail::error: abort_run(a_stream.error.empty() ? "I/O error" : a_stream.error, Errc::system); break;
  }
  const int status = reap(pid, 5'000'000'000);
  g_watch.store(nullptr);
  close_pipes();
  if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string why = sh->error[0] != '\0' ? std::string(sh->error) : "the responder failed";
    throw Error(Errc::system, "bench " + std::string(mode_name(mode)) + ": " + why);
  }
  r.initiator_cpu_ns += o.cpu_ns;
  r.responder_cpu_ns += sh->responder_cpu_ns.load();
  r.wall_ns += o.wall_ns;
  r.involuntary_switches += involuntary_switches() - switches0;
  r.budget_hit = r.budget_hit || o.budget_hit;
  ++r.runs;
}

/// Unmaps the Shared block on scope exit.
struct SharedMapping {
  void* addr = MAP_FAILED;
  /// Maps and constructs the block. @throws Error when mmap fails.
  SharedMapping() {
    addr = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) throw Error(errc_from_errno(errno), "bench: mmap of the shared block failed");
    new (addr) Shared();
  }
  /// Unmaps it.
  ~SharedMapping() {
    if (addr != MAP_FAILED) ::munmap(addr, sizeof(Shared));
  }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  /// The block.
  [[nodiscard]] Shared* get() const noexcept { return static_cast<Shared*>(addr); }
};

}  // namespace

// ---- modes ----------------------------------------------------------------------------------

const char* mode_name(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::cacheline: return "cacheline";
    case LatencyMode::cacheline_payload: return "cacheline_payload";
    case LatencyMode::futex_raw: return "futex_raw";
    case LatencyMode::pipe: return "pipe";
    case LatencyMode::spin: return "spin";
    case LatencyMode::hybrid: return "hybrid";
    case LatencyMode::futex: return "futex";
    case LatencyMode::semaphore: return "semaphore";
  }
  return "?";
}

const char* mode_description(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::cacheline: return "raw: atomic store / PAUSE spin on separate cache lines";
    case LatencyMode::cacheline_payload: return "raw: as cacheline, plus a 64-byte payload on its own cache line";
    case LatencyMode::futex_raw: return "raw: store + FUTEX_WAKE / FUTEX_WAIT, no spinning";
    case LatencyMode::pipe: return "raw: 8-byte write / blocking read on two pipes";
    case LatencyMode::spin: return "Stream::write / wait_spin + read_copy";
    case LatencyMode::hybrid: return "Stream::write / wait_futex (2 us spin, then futex) + read_copy";
    case LatencyMode::futex: return "Stream::write / wait_futex (spin 0) + read_copy";
    case LatencyMode::semaphore: return "Stream::write (posts) / sem_wait on a claimed slot + read_copy";
  }
  return "";
}

bool mode_is_floor(LatencyMode m) noexcept {
  return m == LatencyMode::cacheline || m == LatencyMode::cacheline_payload || m == LatencyMode::futex_raw ||
         m == LatencyMode::pipe;
}

LatencyMode mode_floor(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::spin:
    case LatencyMode::hybrid: return LatencyMode::cacheline;
    case LatencyMode::futex:
    case LatencyMode::semaphore: return LatencyMode::futex_raw;
    default: return m;
  }
}

std::optional<double> mode_target(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::spin: return 1.5;
    case LatencyMode::futex: return 1.1;
    default: return std::nullopt;
  }
}

std::vector<LatencyResult> run_latency(const LatencyConfig& cfg, std::vector<std::string>& notes, bool* interrupted) {
  if (interrupted != nullptr) *interrupted = false;
  std::vector<LatencyResult> results;
  for (LatencyMode m : kAllLatencyModes) results.push_back(LatencyResult{m, {}, 0, 0, 0, 0, 0, false, {}});
  auto result_of = [&](LatencyMode m) -> LatencyResult& {
    return *std::find_if(results.begin(), results.end(), [m](const LatencyResult& r) { return r.mode == m; });
  };

  // Spinning against a process on the same CPU only progresses at scheduler ticks.
  const bool can_spin = cfg.cores.has_value() || allowed_cpus().size() >= 2;
  if (!can_spin) {
    for (LatencyMode m : {LatencyMode::cacheline, LatencyMode::cacheline_payload, LatencyMode::spin})
      result_of(m).skipped = "one CPU available: spinning against a peer on the same CPU measures the scheduler";
  }

  // One round: each floor/candidate pair back to back (order alternating between rounds), the
  // cacheline_payload reference after the spin pair, then the pipe reference. Floors shared by two pairs run twice per round with half the samples.
  struct Pair {
    LatencyMode floor;
    LatencyMode candidate;
  };
  const Pair pairs[] = {{LatencyMode::cacheline, LatencyMode::spin},
                        {LatencyMode::cacheline, LatencyMode::hybrid},
                        {LatencyMode::futex_raw, LatencyMode::futex},
                        {LatencyMode::futex_raw, LatencyMode::semaphore}};
  auto schedule = [&](int round) {
    std::vector<LatencyMode> order;
    for (const Pair& p : pairs) {
      if (round % 2 == 0) {
        order.push_back(p.floor);
        order.push_back(p.candidate);
      } else {
        order.push_back(p.candidate);
        order.push_back(p.floor);
      }
      if (p.candidate == LatencyMode::spin) order.push_back(LatencyMode::cacheline_payload);
    }
    order.push_back(LatencyMode::pipe);
    std::erase_if(order, [&](LatencyMode m) { return !result_of(m).skipped.empty(); });
    return order;
  };
  const std::vector<LatencyMode> first = schedule(0);
  auto occurrences = [&](LatencyMode m) { return std::count(first.begin(), first.end(), m); };

  SharedMapping mapping;
  StreamSpec spec;
  spec.shape = {static_cast<std::uint32_t>(cfg.payload_bytes)};
  spec.dtype = Dtype::u8;
  Bench b{cfg, mapping.get(), Stream::create(cfg.stream_dir + "/bench-ping.im.shm", spec),
          Stream::create(cfg.stream_dir + "/bench-pong.im.shm", spec), -1};
  ChildWatch watch;
  if (cfg.cores && !pin_to_cpu(cfg.cores->first)) {
    throw Error(errc_from_errno(errno), "bench: pinning to CPU " + std::to_string(cfg.cores->first) + ": " +
                                            std::strerror(errno));
  }

  const int rounds = std::max(cfg.rounds, 1);
  bool stopped = false;
  for (int round = 0; round < rounds && !stopped; ++round) {
    const std::vector<LatencyMode> order = schedule(round);
    for (std::size_t step = 0; step < order.size() && !stopped; ++step) {
      const LatencyMode m = order[step];
      const auto parts = static_cast<std::int64_t>(rounds) * occurrences(m);
      const std::int64_t n = std::max<std::int64_t>(1, (cfg.samples + parts - 1) / parts);
      const auto budget_ns = static_cast<std::int64_t>(cfg.max_seconds_per_mode * 1e9 / static_cast<double>(parts));
      if (cfg.progress) {
        cfg.progress("latency round " + std::to_string(round + 1) + "/" + std::to_string(rounds) + ": " +
                     mode_name(m) + " (" + std::to_string(step + 1) + "/" + std::to_string(order.size()) + ")");
      }
      LatencyResult& r = result_of(m);
      const LatencyResult before = r;
      try {
        if (interrupted != nullptr && stop_requested()) throw Error(Errc::interrupted, "bench: interrupted");
        run_once(b, m, n, budget_ns, r);
      } catch (const Error& e) {
        if (e.errc() != Errc::interrupted || interrupted == nullptr) throw;
        r = before;  // the interrupted run's samples are partial: keep only whole runs
        stopped = true;
        *interrupted = true;
      }
    }
  }
  if (b.initiator_slot >= 0) b.pong.release_semaphore(b.initiator_slot);
  for (const LatencyResult& r : results) {
    if (r.budget_hit) {
      notes.push_back(std::string(mode_name(r.mode)) + ": the time budget (--max-seconds) ended some runs early; " +
                      std::to_string(r.round_trips_ns.size()) + " round trips measured");
    }
  }
  return results;
}

}  // namespace shmlink::cli::bench
