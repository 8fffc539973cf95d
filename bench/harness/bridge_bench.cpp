// SPDX-License-Identifier: MIT
// `shmlink bench bridge` (bridge_bench.hpp; docs/bench.md "Bridge"): the owner process (this
// one: source stream, Publisher, the raw ZeroMQ sender, the local-hop stream) and a forked
// subscriber process (Replica, a reader woken by futex on the replica, a reader of the local-hop
// stream, the raw ZeroMQ receiver). They talk over two pipes: commands one way, replies, acks and
// reports the other. Every frame carries its sequence number and the CLOCK_REALTIME time taken
// just before it was handed over (Stream::write or zmq_send), in its first 16 bytes.
#include "harness/bridge_bench.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <zmq.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <thread>

namespace shmlink::bench {

namespace {

using namespace std::chrono_literals;

/// Bytes at the start of every frame: sequence number, then the send time (ns, CLOCK_REALTIME).
constexpr std::size_t kStampBytes = 16;
/// How long the owner waits for any answer of the subscriber before it gives up.
constexpr int kAnswerMs = 10000;
/// Skipped fraction a rate step may reach and still pass (the "under 1 % skipped").
constexpr double kSkippedLimit = 0.01;

/// What the pipes carry. Commands go owner -> subscriber; everything else the other way.
enum class Op : std::uint32_t {
  start = 1,    ///< command: the two endpoints in text[0] and text[1]
  ready,        ///< reply: set up, first frame on the replica
  cpu,          ///< command / reply: v[0] = the subscriber's CPU time, ns
  stats,        ///< command / reply: the replica's counters (see stats_reply)
  acks,         ///< command (v[0] = 1 on, 0 off) / reply
  park,         ///< command (v[0] = 1 park the readers, 0 let them wait again) / reply
  stop,         ///< command / reply: threads stopped, v[0] = reader duplicates
  ack_bridge,   ///< reader of the replica: v[0] seq, v[1] service ns, v[2] reader ns
  ack_hop,      ///< reader of the local-hop stream: v[0] seq, v[2] hop ns
  ack_zmq,      ///< raw ZeroMQ receiver: v[0] seq, v[2] one-way ns
  zmq_report,   ///< raw ZeroMQ receiver after a bulk transfer: v[0] messages, v[1] ns first -> last
  error,        ///< the subscriber failed: text
};

/// One pipe message; under PIPE_BUF, so writes from several threads never interleave.
struct Message {
  Op op = Op::error;
  std::uint32_t pad = 0;
  std::int64_t v[6] = {};
  char text[2][160] = {};
};
static_assert(sizeof(Message) <= PIPE_BUF);

/// Wait slice of the subscriber's own threads: long, so that the idle span measures the bridge's
/// threads, not the benchmark's; shutdown() interrupts the waits with kWakeSignal.
constexpr auto kHelperSlice = std::chrono::seconds(1);
/// Interrupts the subscriber's reader threads at shutdown (a no-op handler, no SA_RESTART).
constexpr int kWakeSignal = SIGUSR1;

/// Marks a raw ZeroMQ message of a bulk transfer (not to be acknowledged).
constexpr std::uint64_t kBulk = std::uint64_t{1} << 62;

std::int64_t realtime_now() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void put_stamp(std::byte* p, std::uint64_t seq, std::int64_t t) noexcept {
  std::memcpy(p, &seq, 8);
  std::memcpy(p + 8, &t, 8);
}
void get_stamp(const std::byte* p, std::uint64_t& seq, std::int64_t& t) noexcept {
  std::memcpy(&seq, p, 8);
  std::memcpy(&t, p + 8, 8);
}

bool write_all(int fd, const Message& m) noexcept {
  for (;;) {
    const ssize_t n = ::write(fd, &m, sizeof m);
    if (n == static_cast<ssize_t>(sizeof m)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

void set_text(Message& m, int i, const std::string& s) noexcept {
  const std::size_t n = std::min(s.size(), sizeof m.text[0] - 1);
  std::memcpy(m.text[i], s.data(), n);
  m.text[i][n] = '\0';
}

// ---- the subscriber process ------------------------------------------------------------------

/// The forked subscriber: everything it runs, from the start command to _exit.
class Subscriber {
 public:
  Subscriber(int cmd_fd, int rep_fd, std::size_t frame_bytes, std::string source, std::string replica_path,
             std::string hop_path)
      : cmd_(cmd_fd), rep_(rep_fd), bytes_(frame_bytes), source_(std::move(source)),
        replica_path_(std::move(replica_path)), hop_path_(std::move(hop_path)) {}

  /// Runs until the stop command (or the owner is gone). @return the exit status.
  int run() noexcept {
    try {
      Message m;
      if (!read_command(m) || m.op != Op::start) return 1;
      setup(m.text[0], m.text[1]);
      reply(Op::ready);
      while (read_command(m)) {
        switch (m.op) {
          case Op::cpu: reply(Op::cpu, {process_cpu_ns()}); break;
          case Op::stats: stats_reply(); break;
          case Op::acks:
            acks_.store(m.v[0] != 0, std::memory_order_release);
            reply(Op::acks);
            break;
          case Op::park: park(m.v[0] != 0); break;
          case Op::stop:
            shutdown();
            reply(Op::stop, {static_cast<std::int64_t>(reader_dups_.load())});
            return 0;
          default: break;
        }
      }
      shutdown();
      return 0;
    } catch (const std::exception& e) {
      fail(e.what());
      shutdown();
      return 1;
    }
  }

 private:
  bool read_command(Message& m) noexcept {
    for (;;) {
      const ssize_t n = ::read(cmd_, &m, sizeof m);
      if (n == static_cast<ssize_t>(sizeof m)) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;  // the owner closed its end (or died)
    }
  }
  void reply(Op op, std::initializer_list<std::int64_t> v = {}) noexcept {
    Message m;
    m.op = op;
    std::size_t i = 0;
    for (std::int64_t x : v) m.v[i++] = x;
    (void)write_all(rep_, m);
  }
  void fail(const std::string& why) noexcept {
    Message m;
    m.op = Op::error;
    set_text(m, 0, why);
    (void)write_all(rep_, m);
  }

  void setup(const std::string& bridge_endpoint, const std::string& zmq_endpoint) {
    bridge::ReplicaOptions ro;
    ro.local_name = replica_path_;
    ro.origin = "bench";
    replica_ = std::make_unique<bridge::Replica>(source_, bridge_endpoint, ro);
    if (!replica_->wait_first_frame(std::chrono::milliseconds(kAnswerMs)))
      throw Error(Errc::timeout, "no first frame on replica " + replica_path_ + " within 10 s: " + replica_->last_error());
    replica_stream_ = Stream::open(replica_path_);
    hop_stream_ = Stream::open(hop_path_);
    zctx_ = ::zmq_ctx_new();
    zsock_ = ::zmq_socket(zctx_, ZMQ_PAIR);
    if (zsock_ == nullptr) throw Error(Errc::system, std::string("raw ZeroMQ socket: ") + ::zmq_strerror(::zmq_errno()));
    const int hwm = hwm_for(bytes_);
    const int slice = static_cast<int>(std::chrono::milliseconds(kHelperSlice).count());
    const int zero = 0;
    ::zmq_setsockopt(zsock_, ZMQ_RCVHWM, &hwm, sizeof hwm);
    ::zmq_setsockopt(zsock_, ZMQ_RCVTIMEO, &slice, sizeof slice);
    ::zmq_setsockopt(zsock_, ZMQ_LINGER, &zero, sizeof zero);
    if (::zmq_connect(zsock_, zmq_endpoint.c_str()) != 0)
      throw Error(Errc::system, "raw ZeroMQ: connecting to " + zmq_endpoint + ": " + ::zmq_strerror(::zmq_errno()));
    struct sigaction wake {};
    wake.sa_handler = [](int) {};
    ::sigaction(kWakeSignal, &wake, nullptr);
    // The counters the readers start from, read before `ready` is sent: a thread that starts late
    // (a busy machine) must not take a frame written after `ready` for one it has seen.
    const std::uint64_t replica0 = replica_stream_.cnt0();
    const std::uint64_t hop0 = hop_stream_.cnt0();
    threads_.emplace_back([this, replica0] {
      read_stream(replica_stream_, replica0, Op::ack_bridge, true);
      finished_.fetch_add(1, std::memory_order_release);
    });
    threads_.emplace_back([this, hop0] {
      read_stream(hop_stream_, hop0, Op::ack_hop, false);
      finished_.fetch_add(1, std::memory_order_release);
    });
    threads_.emplace_back([this] {
      receive_zmq();
      finished_.fetch_add(1, std::memory_order_release);
    });
  }

  void shutdown() noexcept {
    {
      std::lock_guard lock(park_mutex_);
      stop_.store(true, std::memory_order_release);
    }
    park_cv_.notify_all();
    if (zctx_ != nullptr) ::zmq_ctx_shutdown(zctx_);  // the receiver's zmq_msg_recv returns ETERM
    // A signal that lands just before a futex wait starts is lost: send it until every thread ended.
    while (finished_.load(std::memory_order_acquire) < threads_.size()) {
      for (std::thread& t : threads_) ::pthread_kill(t.native_handle(), kWakeSignal);
      std::this_thread::sleep_for(10ms);
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    if (zsock_ != nullptr) ::zmq_close(zsock_);
    if (zctx_ != nullptr) ::zmq_ctx_term(zctx_);
    zsock_ = zctx_ = nullptr;
    if (replica_) replica_->stop();
  }

  /// Parks the two readers (they leave their futex waits, interrupted by kWakeSignal, and sleep
  /// on a condition variable) or lets them wait again: the idle span then measures the bridge's
  /// threads alone, not the benchmark's readers, whose futex waits wake every 10 ms.
  void park(bool on) noexcept {
    {
      std::lock_guard lock(park_mutex_);
      park_ = on;
    }
    park_cv_.notify_all();
    if (on) {
      while (parked_.load(std::memory_order_acquire) < 2) {
        for (std::size_t i = 0; i < 2 && i < threads_.size(); ++i) ::pthread_kill(threads_[i].native_handle(), kWakeSignal);
        std::this_thread::sleep_for(1ms);
      }
    }
    reply(Op::park);
  }

  /// Called by a reader between waits: sleeps while parked. @return false when stopping.
  bool wait_unparked() noexcept {
    std::unique_lock lock(park_mutex_);
    if (!park_) return !stop_.load(std::memory_order_acquire);
    parked_.fetch_add(1, std::memory_order_release);
    park_cv_.wait(lock, [&] { return !park_ || stop_.load(std::memory_order_acquire); });
    parked_.fetch_sub(1, std::memory_order_release);
    return !stop_.load(std::memory_order_acquire);
  }

  void stats_reply() noexcept {
    const bridge::ReplicaStats s = replica_->stats();
    Message m;
    m.op = Op::stats;
    set_text(m, 0, replica_->last_error());
    m.v[5] = s.link_up ? 1 : 0;
    const std::int64_t v[] = {static_cast<std::int64_t>(s.frames_published), static_cast<std::int64_t>(s.source_cnt0),
                      static_cast<std::int64_t>(replica_stream_.cnt0()), static_cast<std::int64_t>(s.duplicates_dropped),
                      static_cast<std::int64_t>(reader_dups_.load())};
    std::copy(std::begin(v), std::end(v), m.v);
    (void)write_all(rep_, m);
  }

  /// A reader woken by futex on `s`, from the frame after cnt0 `last`: stamps the wake-up, copies
  /// the frame (seqlock-validated), acknowledges it while acks are on, counts sequences that do
  /// not move forward.
  void read_stream(Stream& s, std::uint64_t last, Op ack, bool count_dups) noexcept {
    std::vector<std::byte> buf(s.frame_bytes());
    std::uint64_t last_seq = 0;
    while (wait_unparked()) {
      std::uint64_t c = 0;
      const Status st = s.wait_futex(last, kHelperSlice, &c);
      if (!st.ok()) {
        if (st.code() == Errc::timeout || st.code() == Errc::interrupted) continue;
        fail(fmt::format("waiting on {}: {}", s.name(), st.message()));
        return;
      }
      const std::int64_t woken = realtime_now();
      FrameInfo info;
      if (!s.read_copy(buf, &info).ok()) {
        // A writer preempted between its cnt0 increment and clearing the write flag outlasts
        // read_copy's attempts on a busy machine: read again (cnt0 is still above `last`, so the
        // wait returns at once), never dropping the frame.
        std::this_thread::sleep_for(100us);
        continue;
      }
      // The copy may be of a newer frame than the one that woke us: wait past it, so that no
      // frame is read twice and a sequence that does not move forward is a duplicate publication.
      last = std::max(c, info.cnt0);
      std::uint64_t seq = 0;
      std::int64_t sent = 0;
      get_stamp(buf.data(), seq, sent);
      if (count_dups && seq <= last_seq) reader_dups_.fetch_add(1, std::memory_order_relaxed);
      last_seq = std::max(last_seq, seq);
      if (acks_.load(std::memory_order_acquire)) reply(ack, {static_cast<std::int64_t>(seq), info.writetime_ns - sent, woken - sent});
    }
  }

  /// The raw ZeroMQ receiver: acknowledges single frames, counts bulk transfers.
  void receive_zmq() noexcept {
    std::int64_t count = 0, first = 0, lastt = 0;
    while (!stop_.load(std::memory_order_acquire)) {
      zmq_msg_t msg;
      ::zmq_msg_init(&msg);
      if (::zmq_msg_recv(&msg, zsock_, 0) < 0) {
        ::zmq_msg_close(&msg);
        if (::zmq_errno() == EAGAIN || ::zmq_errno() == EINTR) continue;
        return;  // the context is closing
      }
      const std::int64_t now = realtime_now();
      const std::size_t size = ::zmq_msg_size(&msg);
      std::uint64_t seq = 0;
      std::int64_t sent = 0;
      if (size >= kStampBytes) get_stamp(static_cast<const std::byte*>(::zmq_msg_data(&msg)), seq, sent);
      ::zmq_msg_close(&msg);
      if (size < kStampBytes) {  // the end of a bulk transfer
        reply(Op::zmq_report, {count, lastt - first});
        count = 0;
        continue;
      }
      if ((seq & kBulk) != 0) {
        if (count++ == 0) first = now;
        lastt = now;
      } else {
        reply(Op::ack_zmq, {static_cast<std::int64_t>(seq), 0, now - sent});
      }
    }
  }

 public:
  /// ZeroMQ high-water mark for `bytes`-byte messages: about 32 MiB queued, 2..1000 messages.
  static int hwm_for(std::size_t bytes) noexcept {
    return static_cast<int>(std::clamp<std::size_t>((std::size_t{32} << 20) / bytes, 2, 1000));
  }

 private:
  int cmd_, rep_;
  std::size_t bytes_;
  std::string source_, replica_path_, hop_path_;
  std::unique_ptr<bridge::Replica> replica_;
  Stream replica_stream_, hop_stream_;
  void* zctx_ = nullptr;
  void* zsock_ = nullptr;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> acks_{false};
  std::atomic<std::uint64_t> reader_dups_{0};
  std::atomic<std::size_t> finished_{0};  // helper threads that returned
  std::mutex park_mutex_;
  std::condition_variable park_cv_;
  bool park_ = false;                   // under park_mutex_
  std::atomic<int> parked_{0};          // readers asleep in wait_unparked()
};

// ---- the owner process -------------------------------------------------------------------

/// The forked subscriber's pid: killed and reaped on destruction unless finish() reaped it.
struct ChildGuard {
  pid_t pid = -1;
  ChildGuard() = default;
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

/// A file descriptor, closed on destruction.
struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// A ZeroMQ context and one socket in it, closed (linger 0) and terminated on destruction.
struct ZmqEnd {
  void* ctx = nullptr;
  void* sock = nullptr;
  ZmqEnd() = default;
  ZmqEnd(const ZmqEnd&) = delete;
  ZmqEnd& operator=(const ZmqEnd&) = delete;
  ~ZmqEnd() {
    if (sock != nullptr) ::zmq_close(sock);
    if (ctx != nullptr) ::zmq_ctx_term(ctx);
  }
};

/// The owner's side of one frame size: the forked subscriber, the pipes, the streams, the
/// Publisher and the raw ZeroMQ socket.
class Owner {
 public:
  Owner(const BridgeBenchConfig& cfg, std::size_t bytes) : cfg_(cfg), bytes_(bytes), frame_(bytes) {
    const std::string tag = std::to_string(bytes);
    const std::string src = cfg.scratch_dir + "/bsrc" + tag + ".im.shm";
    const std::string hop = cfg.scratch_dir + "/bhop" + tag + ".im.shm";
    const std::string rep = cfg.scratch_dir + "/brep" + tag + ".im.shm";
    StreamSpec spec;
    spec.shape = {static_cast<std::uint32_t>(bytes)};
    spec.dtype = Dtype::u8;
    source_ = Stream::create(src, spec, OpenMode::PurgeAndCreate);
    hop_ = Stream::create(hop, spec, OpenMode::PurgeAndCreate);
    put_stamp(frame_.data(), 0, realtime_now());
    (void)source_.write(frame_);  // the replica's first frame
    int cmd[2], rep_pipe[2];
    if (::pipe2(cmd, O_CLOEXEC) != 0 || ::pipe2(rep_pipe, O_CLOEXEC) != 0)
      throw Error(errc_from_errno(errno), "bench bridge: pipe2");
    // Fork before any thread exists here (the Publisher and ZeroMQ come after): the child starts
    // from a process with one thread.
    child_.pid = ::fork();
    if (child_.pid < 0) throw Error(errc_from_errno(errno), "bench bridge: fork");
    if (child_.pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(cmd[1]);
      ::close(rep_pipe[0]);
      Subscriber sub(cmd[0], rep_pipe[1], bytes, "bsrc" + tag, rep, hop);
      ::_exit(sub.run());
    }
    ::close(cmd[0]);
    ::close(rep_pipe[1]);
    cmd_.fd = cmd[1];
    rep_.fd = rep_pipe[0];
    bridge::PublisherOptions po;
    publisher_ = std::make_unique<bridge::Publisher>(src, "tcp://127.0.0.1:*", po);
    zmq_.ctx = ::zmq_ctx_new();
    zsock_ = zmq_.sock = zmq_.ctx != nullptr ? ::zmq_socket(zmq_.ctx, ZMQ_PAIR) : nullptr;
    if (zsock_ == nullptr) throw Error(Errc::system, std::string("bench bridge: raw ZeroMQ socket: ") + ::zmq_strerror(::zmq_errno()));
    const int hwm = Subscriber::hwm_for(bytes);
    const int timeout = kAnswerMs;
    const int zero = 0;
    ::zmq_setsockopt(zsock_, ZMQ_SNDHWM, &hwm, sizeof hwm);
    ::zmq_setsockopt(zsock_, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    ::zmq_setsockopt(zsock_, ZMQ_LINGER, &zero, sizeof zero);
    if (::zmq_bind(zsock_, "tcp://127.0.0.1:*") != 0)
      throw Error(Errc::system, std::string("bench bridge: binding the raw ZeroMQ socket: ") + ::zmq_strerror(::zmq_errno()));
    char ep[256] = {};
    std::size_t len = sizeof ep;
    ::zmq_getsockopt(zsock_, ZMQ_LAST_ENDPOINT, ep, &len);
    Message m;
    m.op = Op::start;
    set_text(m, 0, publisher_->endpoint());
    set_text(m, 1, ep);
    command(m);
    (void)expect(Op::ready, "setting up the replica");
  }

  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;

  /// CPU of both processes over `seconds` with nothing written (the replica subscribed).
  void idle(double seconds, BridgeBenchResult& out) {
    std::this_thread::sleep_for(200ms);  // the first frame's traffic settles
    (void)ask(Op::park, "parking its readers", 1);
    const Span s = begin_span();
    sleep_interruptible(seconds);
    end_span(s, out.idle_owner_cpu, out.idle_replica_cpu);
    (void)ask(Op::park, "unparking its readers", 0);
    out.idle_seconds = seconds;
  }

  /// Frame-by-frame latency of the three paths, interleaved.
  void latency(BridgeSizeResult& r) {
    set_acks(true);
    for (std::int64_t i = 0; i < cfg_.warmup + cfg_.frames; ++i) {
      check_stop();
      const bool timed = i >= cfg_.warmup;
      // bridge
      const std::uint64_t s = seq_++;
      put_stamp(frame_.data(), s, realtime_now());
      write_source();
      const Message b = wait_ack(Op::ack_bridge, s);
      if (timed) {
        r.service_ns.push_back(b.v[1]);
        r.reader_ns.push_back(b.v[2]);
      }
      // local hop
      put_stamp(frame_.data(), s, realtime_now());
      if (const Status st = hop_.write(frame_); !st.ok())
        throw Error(st.code(), "bench bridge: writing the local-hop stream: " + std::string(st.message()));
      const Message h = wait_ack(Op::ack_hop, s);
      if (timed) r.hop_ns.push_back(h.v[2]);
      // raw ZeroMQ
      put_stamp(frame_.data(), s, realtime_now());
      send_zmq();
      const Message z = wait_ack(Op::ack_zmq, s);
      if (timed) r.zmq_ns.push_back(z.v[2]);
    }
    set_acks(false);
  }

  /// Raw ZeroMQ, back-to-back sends for duration_s.
  void zmq_throughput(BridgeSizeResult& r) {
    const Span s = begin_span();
    const std::int64_t end = mono_ns() + static_cast<std::int64_t>(cfg_.duration_s * 1e9);
    std::uint64_t n = 0;
    while (mono_ns() < end) {
      put_stamp(frame_.data(), kBulk | n++, 0);
      send_zmq();
      if ((n & 63) == 0) check_stop();
    }
    const char end_marker = 0;
    if (::zmq_send(zsock_, &end_marker, 1, 0) != 1) throw zmq_error();
    const Message rep = expect(Op::zmq_report, "the raw ZeroMQ transfer");
    end_span(s, r.zmq_owner_cpu, r.zmq_replica_cpu);
    if (rep.v[0] > 1 && rep.v[1] > 0) r.zmq_frames_per_s = static_cast<double>(rep.v[0] - 1) * 1e9 / static_cast<double>(rep.v[1]);
  }

  /// The rate search (see run_bridge_bench()).
  void rates(BridgeSizeResult& r) {
    const double base = r.reader_ns.empty() ? 1000.0 : 1e9 / std::max(1.0, median(r.reader_ns));
    r.probe_frames_per_s = base;
    double pass = 0, fail = 0;
    // Below the first pace while it skips too much (a busy machine), at most 5 halvings.
    for (double f = 0.5; f > 0.5 / 33; f /= 2) {
      const BridgeRateStep st = step(base * f);
      r.steps.push_back(st);
      if (st.skipped_fraction <= kSkippedLimit) {
        pass = st.target_frames_per_s;
        break;
      }
      fail = st.target_frames_per_s;
    }
    if (pass <= 0) return;
    for (double f = pass / base * std::sqrt(2.0); fail <= 0 && f <= 8.01; f *= std::sqrt(2.0)) {
      const BridgeRateStep st = step(base * f);
      r.steps.push_back(st);
      if (st.skipped_fraction > kSkippedLimit) {
        fail = st.target_frames_per_s;
        break;
      }
      pass = st.target_frames_per_s;
      if (st.offered_frames_per_s < 0.8 * st.target_frames_per_s) return;  // the writer's pace is the limit
    }
    if (pass <= 0 || fail <= 0) return;
    for (int i = 0; i < 2; ++i) {  // two bisections, geometric: about 9 % resolution
      const BridgeRateStep st = step(std::sqrt(pass * fail));
      r.steps.push_back(st);
      (st.skipped_fraction > kSkippedLimit ? fail : pass) = st.target_frames_per_s;
    }
  }

  /// Stops the subscriber and collects the run's totals into `r`.
  void finish(BridgeSizeResult& r) {
    // The replica counts a frame as published just before its Stream::write: wait (2 s at most)
    // until the last write is done, so that a frame under way does not pass for a duplicate.
    Message s = stats();
    const std::int64_t deadline = mono_ns() + 2'000'000'000;
    while (static_cast<std::uint64_t>(s.v[2]) - first_replica_cnt0_ != static_cast<std::uint64_t>(s.v[0]) - first_published_ &&
           mono_ns() < deadline) {
      std::this_thread::sleep_for(2ms);
      s = stats();
    }
    r.source_frames = source_.cnt0() - 1;  // the first frame was written before the replica existed
    r.distinct_published = static_cast<std::uint64_t>(s.v[0]) - first_published_;
    r.replica_publications = static_cast<std::uint64_t>(s.v[2]) - first_replica_cnt0_;
    r.duplicates_dropped = static_cast<std::uint64_t>(s.v[3]);
    const Message st = ask(Op::stop, "stopping the subscriber");
    r.reader_duplicates = static_cast<std::uint64_t>(st.v[0]);
    int status = 0;
    const std::int64_t reap_by = mono_ns() + 5'000'000'000;
    while (::waitpid(child_.pid, &status, WNOHANG) == 0) {
      if (mono_ns() > reap_by) return;  // ChildGuard kills it
      std::this_thread::sleep_for(5ms);
    }
    child_.pid = -1;
  }

  /// Takes the replica's counters after its first frame: the totals of finish() count from here.
  void mark_start() {
    const Message s = stats();
    first_published_ = static_cast<std::uint64_t>(s.v[0]);
    first_replica_cnt0_ = static_cast<std::uint64_t>(s.v[2]);
  }

 private:
  struct Span {
    std::int64_t wall, own, child;
  };

  static double median(std::vector<std::int64_t> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : static_cast<double>(v[v.size() / 2]);
  }

  static void check_stop() {
    if (stop_requested()) throw Error(Errc::interrupted, "bench bridge: stopped by a signal");
  }

  static void sleep_interruptible(double seconds) {
    const std::int64_t end = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (mono_ns() < end) {
      check_stop();
      std::this_thread::sleep_for(std::min<std::int64_t>(end - mono_ns(), 50'000'000) * 1ns);
    }
  }

  Error zmq_error() const {
    return Error(Errc::system, std::string("bench bridge: raw ZeroMQ send of a ") + std::to_string(bytes_) +
                                   "-byte message: " + ::zmq_strerror(::zmq_errno()));
  }

  void send_zmq() {
    while (::zmq_send(zsock_, frame_.data(), frame_.size(), 0) < 0) {
      if (::zmq_errno() == EINTR) {
        check_stop();
        continue;
      }
      throw zmq_error();
    }
  }

  void write_source() {
    if (const Status st = source_.write(frame_); !st.ok())
      throw Error(st.code(), "bench bridge: writing the source stream " + source_.path() + ": " + st.message());
  }

  void command(const Message& m) {
    if (!write_all(cmd_.fd, m)) throw Error(Errc::system, "bench bridge: the subscriber process is gone (command pipe)");
  }

  /// The next message of the subscriber that is `want` (stale acks are skipped).
  Message expect(Op want, const char* what) {
    const std::int64_t deadline = mono_ns() + std::int64_t{kAnswerMs} * 1'000'000;
    for (;;) {
      pollfd p{rep_.fd, POLLIN, 0};
      const int left = static_cast<int>(std::max<std::int64_t>(0, (deadline - mono_ns()) / 1'000'000));
      const int n = ::poll(&p, 1, std::min(left, 200));
      check_stop();
      if (n == 0) {
        if (left == 0)
          throw Error(Errc::timeout, fmt::format("bench bridge ({} B frames): the subscriber did not answer within {} s while {}",
                                                 bytes_, kAnswerMs / 1000, what));
        continue;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(errc_from_errno(errno), "bench bridge: poll on the reply pipe");
      }
      Message m;
      const ssize_t got = ::read(rep_.fd, &m, sizeof m);
      if (got < 0 && errno == EINTR) continue;
      if (got != static_cast<ssize_t>(sizeof m))
        throw Error(Errc::system, fmt::format("bench bridge ({} B frames): the subscriber process ended while {}", bytes_, what));
      if (m.op == Op::error)
        throw Error(Errc::system, fmt::format("bench bridge ({} B frames): the subscriber failed while {}: {}", bytes_, what, m.text[0]));
      if (m.op == want) return m;
    }
  }

  Message wait_ack(Op op, std::uint64_t seq) {
    const std::string what = fmt::format("waiting for frame {} {}", seq,
                                         op == Op::ack_bridge ? "on the replica"
                                         : op == Op::ack_hop  ? "of the local hop"
                                                              : "over raw ZeroMQ");
    try {
      for (;;) {
        const Message m = expect(op, what.c_str());
        if (static_cast<std::uint64_t>(m.v[0]) == seq) return m;
      }
    } catch (const Error& e) {
      if (e.errc() != Errc::timeout || op != Op::ack_bridge) throw;
      // Say what each end saw: a frame lost by the bridge is a finding, not a benchmark failure.
      const bridge::PublisherStats p = publisher_->stats();
      const Message r = stats();
      throw Error(Errc::timeout,
                  fmt::format("{} (source cnt0 {}; publisher: {} frames sent, {} subscribers, last error '{}'; replica: "
                              "{} published, source cnt0 {}, cnt0 {}, link {}, last error '{}')",
                              e.what(), source_.cnt0(), p.frames_sent, p.subscribers, publisher_->last_error(), r.v[0],
                              r.v[1], r.v[2], r.v[5] != 0 ? "up" : "down", r.text[0]));
    }
  }

  /// Sends command `op` (argument `v0`) and returns the subscriber's answer to it.
  Message ask(Op op, const char* what, std::int64_t v0 = 0) {
    Message m;
    m.op = op;
    m.v[0] = v0;
    command(m);
    return expect(op, what);
  }

  Message stats() { return ask(Op::stats, "reading the replica's counters"); }

  void set_acks(bool on) { (void)ask(Op::acks, "switching acknowledgements", on ? 1 : 0); }

  Span begin_span() {
    const std::int64_t child = ask(Op::cpu, "reading its CPU time").v[0];
    return {mono_ns(), process_cpu_ns(), child};
  }
  void end_span(const Span& s, double& own, double& child) {
    const std::int64_t own_now = process_cpu_ns();
    const std::int64_t wall = mono_ns() - s.wall;
    const std::int64_t child_now = ask(Op::cpu, "reading its CPU time").v[0];
    own = wall > 0 ? static_cast<double>(own_now - s.own) / static_cast<double>(wall) : 0.0;
    child = wall > 0 ? static_cast<double>(child_now - s.child) / static_cast<double>(wall) : 0.0;
  }

  /// One paced step: writes at `rate` frames/s for duration_s, then lets the replica catch up.
  BridgeRateStep step(double rate) {
    BridgeRateStep st;
    st.target_frames_per_s = rate;
    const std::int64_t published0 = stats().v[0];
    const std::uint64_t cnt0 = source_.cnt0();
    const auto period = static_cast<std::int64_t>(1e9 / rate);
    const Span span = begin_span();
    const std::int64_t t0 = mono_ns();
    const std::int64_t end = t0 + static_cast<std::int64_t>(cfg_.duration_s * 1e9);
    std::int64_t next = t0;
    while (next < end) {
      std::int64_t now = mono_ns();
      if (now < next) {
        const timespec ts{static_cast<time_t>(next / 1'000'000'000), static_cast<long>(next % 1'000'000'000)};
        while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) check_stop();
      } else if (now - next > period) {
        next = now;  // late by more than a period: no burst to catch up, the offered rate shows it
      }
      put_stamp(frame_.data(), seq_++, realtime_now());
      write_source();
      next += period;
      ++st.written;
    }
    const std::int64_t wall = mono_ns() - t0;
    end_span(span, st.owner_cpu, st.replica_cpu);
    // The newest frame always arrives (latest value): wait for it, so that frames in flight are
    // not counted as skipped.
    const std::uint64_t last = source_.cnt0();
    const std::int64_t deadline = mono_ns() + 5'000'000'000;
    Message s = stats();
    while (static_cast<std::uint64_t>(s.v[1]) < last && mono_ns() < deadline) {
      std::this_thread::sleep_for(2ms);
      s = stats();
    }
    st.written = last - cnt0;
    st.published = static_cast<std::uint64_t>(s.v[0] - published0);
    st.offered_frames_per_s = wall > 0 ? static_cast<double>(st.written) * 1e9 / static_cast<double>(wall) : 0.0;
    st.skipped_fraction = st.written > 0 ? 1.0 - static_cast<double>(st.published) / static_cast<double>(st.written) : 0.0;
    return st;
  }

  const BridgeBenchConfig& cfg_;
  std::size_t bytes_;
  std::vector<std::byte> frame_;
  Stream source_, hop_;
  // Destroyed in reverse order: the sockets and the Publisher first, then the pipes (the
  // subscriber sees its command pipe close), then the child is killed if it is still there.
  ChildGuard child_;
  Fd cmd_, rep_;
  std::unique_ptr<bridge::Publisher> publisher_;
  ZmqEnd zmq_;
  void* zsock_ = nullptr;  // zmq_.sock
  std::uint64_t seq_ = 1;
  std::uint64_t first_replica_cnt0_ = 0;
  std::uint64_t first_published_ = 0;
};

}  // namespace

BridgeBenchResult run_bridge_bench(const BridgeBenchConfig& cfg, std::vector<std::string>& notes) {
  BridgeBenchResult out;
  // A subscriber that died must be an error, not SIGPIPE; paced writes want a fine timer slack
  // (50 us by default). Both are put back at the end.
  struct Restore {
    struct sigaction pipe_action {};
    int slack = -1;
    Restore() {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      ::sigaction(SIGPIPE, &ign, &pipe_action);
      slack = ::prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
      ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    }
    ~Restore() {
      ::sigaction(SIGPIPE, &pipe_action, nullptr);
      if (slack > 0) ::prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(slack), 0, 0, 0);
    }
    Restore(const Restore&) = delete;
    Restore& operator=(const Restore&) = delete;
  } restore;
  for (std::size_t bytes : cfg.frame_sizes) {
    if (bytes < kStampBytes)
      throw Error(Errc::invalid_argument, fmt::format("bench bridge: a frame of {} bytes cannot carry its {}-byte stamp", bytes, kStampBytes));
  }
  for (std::size_t i = 0; i < cfg.frame_sizes.size(); ++i) {
    const std::size_t bytes = cfg.frame_sizes[i];
    const std::string label = fmt::format("{} B frames", bytes);
    auto progress = [&](const char* part) {
      if (cfg.progress) cfg.progress(label + ": " + part);
    };
    BridgeSizeResult r;
    r.frame_bytes = bytes;
    progress("setting up");
    Owner owner(cfg, bytes);
    owner.mark_start();
    if (i == 0) {
      progress("idle CPU");
      owner.idle(cfg.duration_s, out);
    }
    progress("latency");
    owner.latency(r);
    progress("raw ZeroMQ throughput");
    owner.zmq_throughput(r);
    progress("bridge rate search");
    owner.rates(r);
    owner.finish(r);
    out.sizes.push_back(std::move(r));
  }
  notes.push_back("the two processes run unpinned (each has several threads: the writer or reader, the bridge's "
                  "socket and watcher threads, ZeroMQ's I/O thread)");
  return out;
}

}  // namespace shmlink::bench
