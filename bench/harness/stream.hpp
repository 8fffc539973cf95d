// SPDX-License-Identifier: MIT
/// @file stream.hpp
/// @brief The measurements of `shmlink bench stream` (docs/bench.md): two-process latency of
/// the stream waits next to the raw cache-line and futex floors, bandwidth of write/read_copy
/// next to memcpy, and the cost of a write with nobody waiting.
#pragma once

#include "harness/machine.hpp"

#include <shmlink/stream.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::bench {

// ---- latency -------------------------------------------------------------------------------

/// One ping-pong implementation. Floors are bare mechanisms; the others are shmlink's waits.
enum class LatencyMode {
  cacheline,  ///< floor: two atomics on separate cache lines, both sides spinning (PAUSE)
  cacheline_payload,  ///< reference: as cacheline, plus a 64-byte payload on its own line
  futex_raw,  ///< floor: two 32-bit words, FUTEX_WAIT / FUTEX_WAKE (shared), no spinning
  pipe,       ///< reference: two pipes, 8-byte messages, blocking read/write
  spin,       ///< Stream::write + Stream::wait_spin + read_copy
  hybrid,     ///< Stream::write + Stream::wait_futex (kDefaultSpin) + read_copy
  futex,      ///< Stream::write + Stream::wait_futex (spin 0) + read_copy
  semaphore,  ///< Stream::write (posting) + claim_semaphore / sem_wait + read_copy
};

/// Every mode, in report order (floors first).
inline constexpr LatencyMode kAllLatencyModes[] = {
    LatencyMode::cacheline, LatencyMode::cacheline_payload, LatencyMode::futex_raw, LatencyMode::pipe,
    LatencyMode::spin,      LatencyMode::hybrid,            LatencyMode::futex,     LatencyMode::semaphore,
};

/// The mode's name in tables and JSON ("cacheline", "futex_raw", ...).
const char* mode_name(LatencyMode m) noexcept;
/// One line saying what the mode measures.
const char* mode_description(LatencyMode m) noexcept;
/// True for the raw floors and references (cacheline, cacheline_payload, futex_raw, pipe).
bool mode_is_floor(LatencyMode m) noexcept;
/// The floor a candidate is compared with (itself for floors).
LatencyMode mode_floor(LatencyMode m) noexcept;
/// The ratio (candidate p50 / floor p50) a candidate should stay within; nullopt when none.
std::optional<double> mode_target(LatencyMode m) noexcept;

/// Another place for the ping/pong streams than files in the stream directory (a region:
/// `bench stream --region`). The candidate modes then run a second time with their streams
/// made here, and their results carry `label` as their placement.
struct StreamPlace {
  std::string label;  ///< "region": names the place in results and messages
  /// Creates stream `name` (replacing an old one). @throws Error.
  std::function<Stream(const std::string& name, const StreamSpec& spec)> create;
  /// Removes stream `name`. @throws Error.
  std::function<void(const std::string& name)> remove;
};

/// How to run the latency part.
struct LatencyConfig {
  std::int64_t samples = 100000;       ///< round trips per mode, over all rounds
  int rounds = 5;                      ///< interleaved rounds
  std::int64_t warmup = 1000;          ///< untimed round trips at the start of every run
  double max_seconds_per_mode = 30.0;  ///< time budget of a mode over all rounds
  std::optional<std::pair<int, int>> cores;  ///< initiator and responder CPUs; none = unpinned
  std::size_t payload_bytes = 64;      ///< frame size of the stream modes (u8 frames)
  bool post_semaphores = true;         ///< WriteOptions::post_semaphores of spin/hybrid/futex writes
  std::string stream_dir;              ///< where the ping/pong streams are created
  std::optional<StreamPlace> place;    ///< set: the candidates also run with their streams there
  /// Called before each run with its place in the schedule ("round 2/5: futex (5/9)"), for
  /// progress reports; may be empty.
  std::function<void(const std::string&)> progress;
};

/// Merged result of one mode over all its runs.
struct LatencyResult {
  LatencyMode mode = LatencyMode::cacheline;
  std::string placement;               ///< "": files in the stream directory; else StreamPlace::label
  std::vector<std::int64_t> round_trips_ns;  ///< every timed round trip
  std::int64_t initiator_cpu_ns = 0;  ///< CPU time of the timing side during timed round trips
  std::int64_t responder_cpu_ns = 0;  ///< CPU time of the echoing side during the same
  std::int64_t wall_ns = 0;           ///< wall time of the timed round trips
  std::int64_t involuntary_switches = 0;  ///< preemptions of both sides (getrusage), all runs
  int runs = 0;                        ///< runs merged
  bool budget_hit = false;             ///< some run stopped at its time budget
  std::string skipped;                 ///< non-empty: why the mode was not run
};

/// "spin", or "spin@region" for a result of the mode run in a StreamPlace.
std::string result_name(const LatencyResult& r);

/// Runs every mode (the candidates also in `cfg.place` when set: those results follow the
/// kAllLatencyModes ones, in the same order) in interleaved rounds (floor, candidate, floor, candidate, ...; the order of
/// each pair alternates between rounds), forking one responder per run.
/// @param interrupted when non-null, a stop request (SIGINT/SIGTERM) ends the measurement
///        instead of throwing: the run it interrupted is discarded, the runs completed before it
///        are returned, and `*interrupted` is set (it is cleared otherwise).
/// @throws Error when a stream cannot be created, a child cannot be forked, a peer stops
///         answering, or a stop was requested (Errc::interrupted) and `interrupted` is null.
std::vector<LatencyResult> run_latency(const LatencyConfig& cfg, std::vector<std::string>& notes,
                                       bool* interrupted = nullptr);

// ---- bandwidth and write cost --------------------------------------------------------------

/// How to run the single-process measurements.
struct ThroughputConfig {
  std::vector<std::size_t> frame_sizes;  ///< bytes per frame
  int batches = 15;                      ///< timed batches per size and kind (interleaved)
  double batch_seconds = 0.02;           ///< target duration of one batch
  std::string stream_dir;                ///< where the streams are created
};

/// Bandwidth of one frame size: median ns per operation of each kind.
struct BandwidthResult {
  std::size_t frame_bytes = 0;
  double memcpy_ns = 0;      ///< memcpy(dst, src, S)
  double chain_ns = 0;       ///< memcpy(mid, src, S) then memcpy(dst, mid, S): three buffers, as write+read
  double write_ns = 0;       ///< Stream::write of S bytes (default options)
  double read_copy_ns = 0;   ///< Stream::read_copy of S bytes
  double write_read_ns = 0;  ///< write then read_copy (2S bytes moved)
};

/// Measures memcpy, two chained memcpys, write, read_copy and write+read for every frame size,
/// interleaved.
/// @param interrupted as run_latency()'s: when non-null, a stop request returns the frame sizes
///        completed before it and sets `*interrupted`.
/// @throws Error when a stream cannot be created or a write/read fails, or on a stop request
///         when `interrupted` is null.
std::vector<BandwidthResult> run_bandwidth(const ThroughputConfig& cfg, bool* interrupted = nullptr);

/// Cost of publishing a small frame when no reader waits: median ns per operation.
struct WriteCostResult {
  std::size_t frame_bytes = 64;
  int semaphores = 10;            ///< semaphore slots of the stream (ISIO default)
  double raw_publish_ns = 0;      ///< floor: seqlock publish of the frame in a shared mapping
  double write_ns = 0;            ///< Stream::write, post_semaphores = false
  double write_post_ns = 0;       ///< Stream::write, post_semaphores = true (the default)
  double syscall_ns = 0;          ///< reference: syscall(SYS_getppid)
  double clock_ns = 0;            ///< reference: clock_gettime(CLOCK_REALTIME), as write() reads
};

/// Measures the write cost batches (floor, write, write with posts, references) interleaved.
/// @throws Error when the stream cannot be created, or on a stop request.
WriteCostResult run_write_cost(const ThroughputConfig& cfg);

}  // namespace shmlink::bench
