// SPDX-License-Identifier: MIT
/// @file queue.hpp
/// @brief The measurements of `shmlink bench queue` (docs/bench.md "bench queue"): one-way latency and throughput of
/// shmlink sample queues between two pinned processes, next to the raw cache-line and futex
/// floors and to pipes, unix stream sockets, Boost.Interprocess message_queue and ZeroMQ ipc://,
/// all measured interleaved in one run.
#pragma once

#include "harness/machine.hpp"

#include <shmlink/queue.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::bench {

// ---- modes ----------------------------------------------------------------------------------

/// One ping-pong implementation of the queue latency part. Every mode but `cacheline` and
/// `futex_raw` carries the same message of QueueBenchConfig::message_bytes() bytes per hop.
enum class QueueLatencyMode {
  cacheline,          ///< floor: two atomics on separate cache lines, both sides spinning (PAUSE)
  cacheline_message,  ///< reference: as cacheline, plus the message copied through shared lines
  futex_raw,          ///< floor: two 32-bit words, FUTEX_WAIT / FUTEX_WAKE, no spinning
  spsc_polling,       ///< shmlink SPSC queue, WaitMode::polling: try_push / try_pop, pop(timeout) to wait
  spsc_hybrid,        ///< shmlink SPSC queue, WaitMode::hybrid
  spsc_futex,         ///< shmlink SPSC queue, WaitMode::futex
  mpmc_polling,       ///< shmlink MPMC queue, WaitMode::polling
  mpmc_futex,         ///< shmlink MPMC queue, WaitMode::futex
  pipe,               ///< peer: two pipes, blocking write / read of the message
  unix_socket,        ///< peer: socketpair(AF_UNIX, SOCK_STREAM), blocking write / read
  boost_mq,           ///< peer: two boost::interprocess::message_queue, send / timed_receive
  zmq_ipc,            ///< peer: ZeroMQ PAIR sockets over ipc://, send / recv
};

/// Every latency mode, in report order (floors, shmlink, peers).
inline constexpr QueueLatencyMode kAllQueueLatencyModes[] = {
    QueueLatencyMode::cacheline,    QueueLatencyMode::cacheline_message, QueueLatencyMode::futex_raw,
    QueueLatencyMode::spsc_polling, QueueLatencyMode::spsc_hybrid,       QueueLatencyMode::spsc_futex,
    QueueLatencyMode::mpmc_polling, QueueLatencyMode::mpmc_futex,        QueueLatencyMode::pipe,
    QueueLatencyMode::unix_socket,  QueueLatencyMode::boost_mq,          QueueLatencyMode::zmq_ipc,
};

/// One producer-to-consumer implementation of the queue throughput part. The peers run twice:
/// one message per call (`*_single`, as try_push/try_pop) and `batch` messages per call
/// (`*_batch`, as the bulk calls).
enum class QueueThroughputMode {
  spsc_single,         ///< shmlink SPSC queue (hybrid wait): try_push / try_pop, one sample per call
  spsc_bulk,           ///< shmlink SPSC queue: try_push_burst / try_pop_burst of `batch` samples
  mpmc_single,         ///< shmlink MPMC queue (hybrid wait): try_push / try_pop
  mpmc_bulk,           ///< shmlink MPMC queue: try_push_burst / try_pop_burst
  pipe_single,         ///< peer: one pipe, one message per write, reads of up to 64 KiB
  pipe_batch,          ///< peer: one pipe, `batch` messages per write
  unix_socket_single,  ///< peer: socketpair(AF_UNIX, SOCK_STREAM), one message per write
  unix_socket_batch,   ///< peer: socketpair(AF_UNIX, SOCK_STREAM), `batch` messages per write
  boost_mq_single,     ///< peer: boost::interprocess::message_queue, one message per send
  boost_mq_batch,      ///< peer: message_queue, `batch` messages per send
  zmq_ipc_single,      ///< peer: ZeroMQ PAIR over ipc://, one message per zmq message
  zmq_ipc_batch,       ///< peer: ZeroMQ PAIR over ipc://, `batch` messages per zmq message
};

/// Every throughput mode, in report order (shmlink, peers).
inline constexpr QueueThroughputMode kAllQueueThroughputModes[] = {
    QueueThroughputMode::spsc_single,        QueueThroughputMode::spsc_bulk,
    QueueThroughputMode::mpmc_single,        QueueThroughputMode::mpmc_bulk,
    QueueThroughputMode::pipe_single,        QueueThroughputMode::pipe_batch,
    QueueThroughputMode::unix_socket_single, QueueThroughputMode::unix_socket_batch,
    QueueThroughputMode::boost_mq_single,    QueueThroughputMode::boost_mq_batch,
    QueueThroughputMode::zmq_ipc_single,     QueueThroughputMode::zmq_ipc_batch,
};

/// The other transports every shmlink figure is compared with (docs/bench.md, "`shmlink bench queue`").
enum class QueuePeer { pipe, unix_socket, boost_mq, zmq_ipc };

/// Every peer, in report order.
inline constexpr QueuePeer kAllQueuePeers[] = {QueuePeer::pipe, QueuePeer::unix_socket, QueuePeer::boost_mq,
                                               QueuePeer::zmq_ipc};

/// The latency mode's name in tables and JSON ("cacheline", "spsc_polling", "zmq_ipc", ...).
const char* queue_latency_mode_name(QueueLatencyMode m) noexcept;
/// One line saying what a latency mode measures.
const char* queue_latency_mode_description(QueueLatencyMode m) noexcept;
/// "floor" (cacheline, futex_raw), "reference" (cacheline_message), "shmlink" or "peer".
const char* queue_latency_mode_kind(QueueLatencyMode m) noexcept;
/// True for the shmlink queue modes (spsc_*, mpmc_*).
bool queue_latency_mode_is_shmlink(QueueLatencyMode m) noexcept;
/// True for the modes whose two sides spin (cacheline, cacheline_message, *_polling): skipped
/// when only one CPU is available.
bool queue_latency_mode_spins(QueueLatencyMode m) noexcept;
/// The ratio (one-way p50 / cacheline p50) a mode should stay within (spsc_polling: 1.5).
std::optional<double> queue_latency_mode_target(QueueLatencyMode m) noexcept;

/// The throughput mode's name in tables and JSON ("spsc_single", "pipe", ...).
const char* queue_throughput_mode_name(QueueThroughputMode m) noexcept;
/// One line saying what a throughput mode measures.
const char* queue_throughput_mode_description(QueueThroughputMode m) noexcept;
/// True for the shmlink queue modes (spsc_*, mpmc_*).
bool queue_throughput_mode_is_shmlink(QueueThroughputMode m) noexcept;
/// True for the modes that move `batch` samples per call (*_bulk, *_batch).
bool queue_throughput_mode_is_batched(QueueThroughputMode m) noexcept;

/// The peer's name ("pipe", "unix_socket", "boost_mq", "zmq_ipc"), as its modes are named.
const char* queue_peer_name(QueuePeer p) noexcept;
/// The latency mode of a peer.
QueueLatencyMode queue_peer_latency_mode(QueuePeer p) noexcept;
/// The throughput mode of a peer: one message per call, or `batch` (`batched`).
QueueThroughputMode queue_peer_throughput_mode(QueuePeer p, bool batched) noexcept;

// ---- configuration and results -----------------------------------------------------------

/// Bytes of the message header every transport carries before the values: sequence (u64),
/// ts_origin_ns (i64), ts_received_ns (i64), flags (u32), length (u32), as Sample holds them.
inline constexpr std::size_t kQueueMessageHeaderBytes = 32;

/// Another place for the shmlink queues of a run than files in the scratch directory (a region:
/// `bench queue --region`). The shmlink modes then run a second time, their queues made here,
/// and their results carry `label` as their placement.
struct QueuePlace {
  std::string label;  ///< "region": names the place in results and messages
  /// Creates queue `name` (replacing an old one) and returns its handle. @throws Error.
  std::function<Queue(const std::string& name, const QueueSpec& spec)> create;
  /// Opens queue `name` (in the parent or the forked child). @throws Error.
  std::function<Queue(const std::string& name)> open;
  /// Removes queue `name`. @throws Error.
  std::function<void(const std::string& name)> remove;
};

/// How to run `bench queue`.
struct QueueBenchConfig {
  std::int64_t samples = 100000;               ///< latency round trips per mode, over all rounds
  std::int64_t throughput_samples = 2000000;   ///< samples per throughput mode, over all rounds
  int rounds = 5;                              ///< interleaved rounds
  std::int64_t warmup = 1000;                  ///< untimed round trips (or samples) at the start of every run
  double max_seconds_per_mode = 10.0;          ///< latency time budget of a mode over all rounds, in s
  std::optional<std::pair<int, int>> cores;    ///< CPUs of this process and of the child; none = unpinned
  std::uint32_t values = 8;                    ///< values per sample (8 bytes each)
  std::uint32_t batch = 32;                    ///< samples per bulk call, write, send or zmq message
  std::uint32_t capacity = 1024;               ///< cells of every shmlink queue (a power of two)
  std::string scratch_dir;                     ///< where queue files and ipc:// sockets are made
  std::optional<QueuePlace> place;             ///< set: the shmlink modes also run with their queues there

  /// Bytes of one message: kQueueMessageHeaderBytes + 8 * values.
  [[nodiscard]] std::size_t message_bytes() const noexcept {
    return kQueueMessageHeaderBytes + std::size_t{8} * values;
  }
};

/// Merged result of one latency mode over all its runs.
struct QueueLatencyResult {
  QueueLatencyMode mode = QueueLatencyMode::cacheline;
  std::string placement;                     ///< "": files in the scratch directory; else QueuePlace::label
  std::vector<std::int64_t> round_trips_ns;  ///< every timed round trip, ns
  std::int64_t initiator_cpu_ns = 0;         ///< CPU time of the timing side during timed round trips, ns
  std::int64_t responder_cpu_ns = 0;         ///< CPU time of the echoing side during the same, ns
  std::int64_t wall_ns = 0;                  ///< wall time of the timed round trips, ns
  std::int64_t involuntary_switches = 0;     ///< preemptions of both sides (getrusage), all runs
  int runs = 0;                              ///< runs merged
  bool budget_hit = false;                   ///< some run stopped at its time budget
  std::string skipped;                       ///< non-empty: why the mode was not run
};

/// Merged result of one throughput mode over all its runs.
struct QueueThroughputResult {
  QueueThroughputMode mode = QueueThroughputMode::spsc_single;
  std::string placement;               ///< "": files in the scratch directory; else QueuePlace::label
  std::vector<double> samples_per_s;   ///< rate of every run, samples/s (timed samples / wall time)
  std::int64_t samples = 0;            ///< timed samples, all runs
  std::int64_t wall_ns = 0;            ///< wall time of the timed parts, all runs, ns
  std::int64_t producer_cpu_ns = 0;    ///< CPU time of the producing process over its timed part, ns
  std::int64_t consumer_cpu_ns = 0;    ///< CPU time of the consuming process over its timed part, ns
  std::int64_t involuntary_switches = 0;  ///< preemptions of both sides (getrusage), all runs
  int runs = 0;                        ///< runs merged
};

/// Everything one `bench queue` run measured.
struct QueueBenchResults {
  /// One per kAllQueueLatencyModes entry, same order; then, with QueueBenchConfig::place, one
  /// per shmlink mode run there (same order).
  std::vector<QueueLatencyResult> latency;
  /// One per kAllQueueThroughputModes entry, same order; then the shmlink modes run in the place.
  std::vector<QueueThroughputResult> throughput;
};

/// "spsc_polling", or "spsc_polling@region" for a result of the mode run in a QueuePlace.
std::string queue_result_name(const QueueLatencyResult& r);
/// "spsc_bulk", or "spsc_bulk@region".
std::string queue_result_name(const QueueThroughputResult& r);

/// Runs every latency and throughput mode in `cfg.rounds` interleaved rounds (each round: the
/// latency modes, then the throughput modes; the order reversed on odd rounds; a shmlink mode's
/// run in `cfg.place` right after its run on files), forking one child per run. This process must already be pinned to `cfg.cores->first` when cores are given.
/// @throws Error when a queue file, pipe, socket, message queue or ipc:// endpoint cannot be
///         made (naming it), a child cannot be forked, a peer stops answering or returns other
///         data, or a stop was requested (Errc::interrupted).
QueueBenchResults run_queue_bench(const QueueBenchConfig& cfg, std::vector<std::string>& notes);

}  // namespace shmlink::bench
