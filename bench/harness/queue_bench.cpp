// SPDX-License-Identifier: MIT
// Measurements of `shmlink bench queue` (docs/bench.md "bench queue"): two processes pinned to
// two CPUs. Latency: a ping-pong of one message (sample header + values) per hop, timed per
// round trip by the initiator; one-way latency is half of it. Throughput: a child produces, this
// process consumes and times the transfer. The raw floors (cache-line and futex ping-pong), the
// shmlink queue modes and the peers (pipe, unix socket, Boost.Interprocess message_queue,
// ZeroMQ ipc://) run interleaved in rounds, one fresh child per run (pingpong.hpp).
#include "harness/channels.hpp"
#include "harness/peers.hpp"
#include "harness/pingpong.hpp"
#include "harness/queue.hpp"

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::bench {

namespace {

/// Cells of the latency queues and messages of the latency message_queues (one is ever in flight).
constexpr std::uint32_t kLatencyQueueCells = 16;

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

// ---- one run's resources ---------------------------------------------------------------------

/// Everything one run of one mode needs beyond the peers' resources: the configuration and the
/// shmlink queues (removed by the parent's destructor; the child never runs it).
struct QueueRun : PeerRun {
  const QueueBenchConfig& cfg;
  const QueuePlace* place = nullptr;  ///< where the queues are; nullptr: files in the scratch directory
  bool bulk = false;            ///< throughput: the bulk calls of a shmlink queue
  std::string queue_to_child;   ///< shmlink queue (file path or name in `place`) the parent pushes to (latency)
  std::string queue_to_parent;  ///< shmlink queue the child pushes to

  QueueRun(const QueueBenchConfig& c, const SharedMapping& m, const QueuePlace* p)
      : PeerRun(m, c.cores, make_message(c.values)), cfg(c), place(p) {}
  /// Removes the queues.
  ~QueueRun() {
    for (const std::string* q : {&queue_to_child, &queue_to_parent}) {
      if (q->empty()) continue;
      try {
        if (place != nullptr) {
          place->remove(*q);
        } else {
          Queue::remove(*q);
        }
      } catch (const Error&) {  // already gone: the scratch directory (or region) goes anyway
      }
    }
  }
  /// Opens queue `q` (a file path, or a name in `place`).
  [[nodiscard]] Queue open(const std::string& q) const { return place != nullptr ? place->open(q) : Queue::open(q); }
};

/// Creates the shmlink queue `q`: the file `q`, or the queue named `q` in `run.place`.
/// @throws Error naming it.
void make_queue(const QueueRun& run, const std::string& q, QueueKind kind, WaitMode wait, std::uint32_t cells) {
  QueueSpec spec;
  spec.capacity = cells;
  spec.max_values = run.cfg.values;
  spec.kind = kind;
  spec.wait = wait;
  if (run.place != nullptr) {
    run.place->create(q, spec).close();
  } else {
    Queue::create(q, spec, OpenMode::PurgeAndCreate).close();
  }
}

// ---- the shmlink channel ----------------------------------------------------------------------

/// shmlink: Queue::push / Queue::pop (their waits are the queue's WaitMode), or the bulk calls.
struct QueueChannel {
  QueueRun& run;
  Queue out;                 ///< the queue this side pushes to (invalid when none)
  Queue in;                  ///< the queue this side pops from (invalid when none)
  Sample tx;                 ///< outgoing sample
  Sample rx;                 ///< incoming sample
  std::vector<Sample> txs;   ///< bulk: outgoing samples
  std::vector<Sample> rxs;   ///< bulk: incoming samples

  QueueChannel(QueueRun& r, Side side) : run(r), tx(make_sample(r.cfg.values)) {
    const std::string& out_path = side == Side::parent ? r.queue_to_child : r.queue_to_parent;
    const std::string& in_path = side == Side::parent ? r.queue_to_parent : r.queue_to_child;
    if (!out_path.empty()) out = r.open(out_path);
    if (!in_path.empty()) in = r.open(in_path);
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

// ---- one run ------------------------------------------------------------------------------------

/// One latency run of `Channel`: `n` timed round trips (within `budget_ns`) merged into `r`.
template <class Channel>
void queue_latency_run(QueueRun& run, std::int64_t n, std::int64_t budget_ns, QueueLatencyResult& r) {
  latency_run<Channel>(run, "bench queue " + queue_result_name(r), "child", run.cfg.warmup, n, budget_ns, r);
}

/// One throughput run of `Channel`: `warm` untimed and `n` timed samples, merged into `r`.
template <class Channel>
void queue_throughput_run(QueueRun& run, std::int64_t warm, std::int64_t n, QueueThroughputResult& r) {
  const ThroughputOutcome o =
      throughput_run<Channel>(run, "bench queue " + queue_result_name(r), warm, n);
  r.samples_per_s.push_back(static_cast<double>(n) * 1e9 / static_cast<double>(o.wall_ns));
  r.samples += n;
  r.wall_ns += o.wall_ns;
  r.consumer_cpu_ns += o.consumer_cpu_ns;
  r.producer_cpu_ns += o.producer_cpu_ns;
  r.involuntary_switches += o.involuntary_switches;
  ++r.runs;
}

/// Everything the rounds share.
struct Bench {
  const QueueBenchConfig& cfg;
  SharedMapping& mapping;
  std::string mq_prefix;  ///< "shmlink-bench-<pid>-": Boost message_queue names (they live in /dev/shm)

  /// A fresh run for one mode, its shmlink queues in `place` (nullptr: files).
  [[nodiscard]] std::unique_ptr<QueueRun> run(const QueuePlace* place) const {
    return std::make_unique<QueueRun>(cfg, mapping, place);
  }
  /// The place of a result's queues.
  [[nodiscard]] const QueuePlace* place_of(const std::string& placement) const {
    return placement.empty() || !cfg.place ? nullptr : &*cfg.place;
  }
  /// Where queue `name` of a run in `place` is: a file in the scratch directory, or the name.
  [[nodiscard]] std::string queue(const QueuePlace* place, const std::string& name) const {
    return place != nullptr ? name : cfg.scratch_dir + "/" + name + ".queue.shm";
  }
};

/// One latency run of `mode`. @throws Error.
void latency_mode(const Bench& b, std::int64_t n, std::int64_t budget_ns, QueueLatencyResult& r) {
  const QueuePlace* place = b.place_of(r.placement);
  const std::unique_ptr<QueueRun> run = b.run(place);
  const std::string& dir = b.cfg.scratch_dir;
  auto queues = [&](QueueKind kind, WaitMode wait) {
    run->queue_to_child = b.queue(place, "bench-q-ping");
    run->queue_to_parent = b.queue(place, "bench-q-pong");
    make_queue(*run, run->queue_to_child, kind, wait, kLatencyQueueCells);
    make_queue(*run, run->queue_to_parent, kind, wait, kLatencyQueueCells);
  };
  try {
    switch (r.mode) {
      case QueueLatencyMode::cacheline: queue_latency_run<CachelineChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::cacheline_message: queue_latency_run<MessageChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::futex_raw: queue_latency_run<FutexChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::spsc_polling: queues(QueueKind::spsc, WaitMode::polling); break;
      case QueueLatencyMode::spsc_hybrid: queues(QueueKind::spsc, WaitMode::hybrid); break;
      case QueueLatencyMode::spsc_futex: queues(QueueKind::spsc, WaitMode::futex); break;
      case QueueLatencyMode::mpmc_polling: queues(QueueKind::mpmc, WaitMode::polling); break;
      case QueueLatencyMode::mpmc_futex: queues(QueueKind::mpmc, WaitMode::futex); break;
      case QueueLatencyMode::pipe: make_pipes(*run, true); queue_latency_run<FdChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::unix_socket: make_socketpair(*run); queue_latency_run<FdChannel>(*run, n, budget_ns, r); return;
      case QueueLatencyMode::boost_mq:
        run->mq_to_child = b.mq_prefix + "ping";
        run->mq_to_parent = b.mq_prefix + "pong";
        make_mq(run->mq_to_child, kLatencyQueueCells, run->message.size());
        make_mq(run->mq_to_parent, kLatencyQueueCells, run->message.size());
        queue_latency_run<BoostChannel>(*run, n, budget_ns, r);
        return;
      case QueueLatencyMode::zmq_ipc:
        run->endpoint = zmq_endpoint(dir);
        queue_latency_run<ZmqChannel>(*run, n, budget_ns, r);
        return;
    }
    queue_latency_run<QueueChannel>(*run, n, budget_ns, r);
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with("bench queue ")) throw;
    throw Error(e.errc(), "bench queue " + queue_result_name(r) + ": " + e.what());
  }
}

/// One throughput run of `mode`. @throws Error.
void throughput_mode(const Bench& b, std::int64_t warm, std::int64_t n, QueueThroughputResult& r) {
  const QueuePlace* place = b.place_of(r.placement);
  const std::unique_ptr<QueueRun> run = b.run(place);
  const std::string& dir = b.cfg.scratch_dir;
  run->batch = b.cfg.batch;
  auto queue = [&](QueueKind kind, bool bulk) {
    run->bulk = bulk;
    run->queue_to_parent = b.queue(place, "bench-q-tp");
    make_queue(*run, run->queue_to_parent, kind, WaitMode::hybrid, b.cfg.capacity);
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
        queue_throughput_run<FdChannel>(*run, warm, n, r);
        return;
      case QueueThroughputMode::unix_socket_single:
      case QueueThroughputMode::unix_socket_batch:
        make_socketpair(*run);
        queue_throughput_run<FdChannel>(*run, warm, n, r);
        return;
      case QueueThroughputMode::boost_mq_single:
      case QueueThroughputMode::boost_mq_batch: {
        // The same bytes in flight as a shmlink queue of `capacity` cells.
        run->mq_to_parent = b.mq_prefix + "tp";
        const std::size_t messages = std::max<std::size_t>(1, b.cfg.capacity / run->batch);
        make_mq(run->mq_to_parent, messages, run->batch * run->message.size());
        queue_throughput_run<BoostChannel>(*run, warm, n, r);
        return;
      }
      case QueueThroughputMode::zmq_ipc_single:
      case QueueThroughputMode::zmq_ipc_batch:
        run->endpoint = zmq_endpoint(dir);
        queue_throughput_run<ZmqChannel>(*run, warm, n, r);
        return;
    }
    queue_throughput_run<QueueChannel>(*run, warm, n, r);
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with("bench queue ")) throw;
    throw Error(e.errc(), "bench queue " + queue_result_name(r) + ": " + e.what());
  }
}

}  // namespace

// ---- the rounds ----------------------------------------------------------------------------------

QueueBenchResults run_queue_bench(const QueueBenchConfig& cfg, std::vector<std::string>& notes) {
  if (cfg.values < 1 || cfg.values > kMaxSampleValues)
    throw Error(Errc::invalid_argument, "bench queue: --values must be 1.." + std::to_string(kMaxSampleValues));
  if (cfg.capacity < 2 || (cfg.capacity & (cfg.capacity - 1)) != 0 || cfg.capacity > kMaxQueueCapacity)
    throw Error(Errc::invalid_argument, "bench queue: the queue capacity must be a power of two");
  if (cfg.batch < 1 || cfg.batch > cfg.capacity)
    throw Error(Errc::invalid_argument, "bench queue: --batch must be 1..capacity (" + std::to_string(cfg.capacity) + ")");

  QueueBenchResults res;
  // The files' results first (report order), then the shmlink modes run in cfg.place.
  const std::string place = cfg.place ? cfg.place->label : std::string();
  for (QueueLatencyMode m : kAllQueueLatencyModes) res.latency.push_back(QueueLatencyResult{m, {}, {}, 0, 0, 0, 0, 0, false, {}});
  for (QueueThroughputMode m : kAllQueueThroughputModes) res.throughput.push_back(QueueThroughputResult{m, {}, {}, 0, 0, 0, 0, 0, 0});
  if (cfg.place) {
    for (QueueLatencyMode m : kAllQueueLatencyModes)
      if (queue_latency_mode_is_shmlink(m)) res.latency.push_back(QueueLatencyResult{m, place, {}, 0, 0, 0, 0, 0, false, {}});
    for (QueueThroughputMode m : kAllQueueThroughputModes)
      if (queue_throughput_mode_is_shmlink(m)) res.throughput.push_back(QueueThroughputResult{m, place, {}, 0, 0, 0, 0, 0, 0});
  }
  // Every result of a mode: on files, then in the place.
  auto latency_of = [&](QueueLatencyMode m) {
    std::vector<QueueLatencyResult*> out;
    for (QueueLatencyResult& r : res.latency)
      if (r.mode == m) out.push_back(&r);
    return out;
  };
  auto throughput_of = [&](QueueThroughputMode m) {
    std::vector<QueueThroughputResult*> out;
    for (QueueThroughputResult& r : res.throughput)
      if (r.mode == m) out.push_back(&r);
    return out;
  };

  // Spinning against a process on the same CPU only progresses at scheduler ticks.
  const bool can_spin = cfg.cores.has_value() || allowed_cpus().size() >= 2;
  if (!can_spin) {
    for (QueueLatencyResult& r : res.latency)
      if (queue_latency_mode_spins(r.mode))
        r.skipped = "one CPU available: spinning against a peer on the same CPU measures the scheduler";
  }

  SharedMapping mapping(cfg.message_bytes());
  const ChildWatch child_watch;  // SIGCHLD marks the shared block; a dead reader is EPIPE, not death
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
      for (QueueLatencyResult* r : latency_of(m))
        if (r->skipped.empty()) latency_mode(bench, lat_n, budget_ns, *r);
    }
    for (QueueThroughputMode m : tp) {
      for (QueueThroughputResult* r : throughput_of(m)) throughput_mode(bench, tp_warm, tp_n, *r);
    }
  }
  for (const QueueLatencyResult& r : res.latency) {
    if (r.budget_hit) {
      notes.push_back(queue_result_name(r) + ": the time budget (--max-seconds) ended some runs early; " +
                      std::to_string(r.round_trips_ns.size()) + " round trips measured");
    }
  }
  return res;
}

}  // namespace shmlink::bench
