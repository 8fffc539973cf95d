// SPDX-License-Identifier: MIT
/// @file bench_common.hpp
/// @brief Pieces of `shmlink bench stream` (docs/bench.md): sample statistics, clocks, CPU
/// pinning, machine description and load sampling, the private stream directory, and the three
/// measurements (two-process latency, bandwidth, cost of a write with nobody waiting).
#pragma once

#include <signal.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"

namespace shmlink::cli::bench {

/// Renders a table as GitHub Markdown (header row, alignment row, one row per table row;
/// colours dropped), for the `--markdown` reports that go into README.md.
std::string markdown_table(const Table& t);

// ---- clocks and stop requests ----------------------------------------------------------

/// CLOCK_MONOTONIC in ns (vDSO: no syscall when the clocksource is tsc or kvm-clock).
std::int64_t mono_ns() noexcept;

/// CPU time consumed by this process so far (CLOCK_PROCESS_CPUTIME_ID), in ns.
std::int64_t process_cpu_ns() noexcept;

/// Keeps the compiler from discarding stores to, or reads of, the memory at `p`.
inline void keep(const void* p) noexcept { asm volatile("" : : "r"(p) : "memory"); }

/// True once SIGINT or SIGTERM arrived while a StopSignals was installed.
bool stop_requested() noexcept;

/// Installs SIGINT/SIGTERM handlers that set stop_requested() (without SA_RESTART, so that
/// blocking reads and futex waits return EINTR and the loops notice); restores the previous
/// handlers on destruction.
class StopSignals {
 public:
  /// Installs the handlers and clears the flag.
  StopSignals();
  /// Restores the previous handlers.
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// ---- statistics --------------------------------------------------------------------------

/// Order statistics of a set of samples, in the samples' unit times a scale.
struct Percentiles {
  double min = 0;   ///< smallest sample
  double p50 = 0;   ///< median (nearest rank)
  double p90 = 0;   ///< 90th percentile
  double p99 = 0;   ///< 99th percentile
  double p999 = 0;  ///< 99.9th percentile
  double max = 0;   ///< largest sample
};

/// Sorts `values` and returns their nearest-rank percentiles times `scale` (0.5 turns round
/// trips into one-way times). All zero when `values` is empty.
Percentiles percentiles_of(std::vector<std::int64_t>& values, double scale);

/// Median of `values` (sorted in place); 0 when empty.
double median_of(std::vector<double>& values);

// ---- CPUs and the machine ----------------------------------------------------------------

/// CPUs this process may run on (sched_getaffinity), ascending.
std::vector<int> allowed_cpus();

/// Pins the calling process to `cpu`. @return false (errno set) when the kernel refuses.
bool pin_to_cpu(int cpu) noexcept;

/// Restores the affinity mask a process had when this object was made.
class AffinityGuard {
 public:
  /// Saves the current mask.
  AffinityGuard();
  /// Restores it.
  ~AffinityGuard() { restore(); }
  /// Restores the saved mask now.
  void restore() noexcept;
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;

 private:
  std::vector<int> cpus_;
};

/// What the benchmark ran on.
struct MachineInfo {
  std::string cpu_model;           ///< "model name" of /proc/cpuinfo (or "unknown")
  int cores_online = 0;            ///< sysconf(_SC_NPROCESSORS_ONLN)
  std::vector<int> cpus_allowed;   ///< the affinity mask at start
  std::string kernel;              ///< "Linux 6.1.0 x86_64" (uname)
  bool virtual_machine = false;    ///< the CPU reports the "hypervisor" flag
  std::string clocksource;         ///< current clocksource ("tsc", "kvm-clock", ...)
};

/// Reads /proc/cpuinfo, uname, the affinity mask and the clocksource.
MachineInfo describe_machine();

/// The "machine" object of the bench JSON documents: cpu_model, cores_online, cpus_allowed,
/// kernel, virtual_machine, clocksource (docs/bench.md).
Json machine_json(const MachineInfo& m);

/// Parses a "--cores A,B" value against the CPUs this process may use; `command` prefixes the
/// messages ("bench queue"). @throws Error(invalid_argument) when it is not two different
/// numbers in `allowed`.
std::pair<int, int> parse_core_pair(const std::string& text, const std::vector<int>& allowed, std::string_view command);

/// Cumulative CPU jiffies of the whole machine, from the first line of /proc/stat.
struct CpuTimes {
  std::uint64_t busy = 0;   ///< user + nice + system + irq + softirq
  std::uint64_t steal = 0;  ///< time the hypervisor gave to others
  std::uint64_t total = 0;  ///< busy + idle + iowait + steal
};

/// Reads /proc/stat (all zero when unreadable).
CpuTimes read_cpu_times();

/// The three load averages of /proc/loadavg (empty when unreadable).
std::vector<double> read_loadavg();

/// CPU time (user + system) of this process and of its reaped children, in ns (getrusage).
std::int64_t own_cpu_ns() noexcept;

// ---- private stream directory ------------------------------------------------------------

/// A fresh directory `<base>/shmlink-bench-XXXXXX` for the benchmark's streams, removed with
/// its contents on destruction (never in a forked child: children leave with _exit).
class ScratchDir {
 public:
  /// Makes the directory. @throws Error naming `base` when mkdtemp fails.
  explicit ScratchDir(const std::string& base);
  /// Removes the directory and everything in it.
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  /// The directory.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// The file of stream `name` inside it (`<path>/<name>.im.shm`).
  [[nodiscard]] std::string stream(const std::string& name) const { return path_ + "/" + name + ".im.shm"; }

 private:
  std::string path_;
};

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
  /// Called before each run with its place in the schedule ("round 2/5: futex (5/9)"), for
  /// progress reports; may be empty.
  std::function<void(const std::string&)> progress;
};

/// Merged result of one mode over all its runs.
struct LatencyResult {
  LatencyMode mode = LatencyMode::cacheline;
  std::vector<std::int64_t> round_trips_ns;  ///< every timed round trip
  std::int64_t initiator_cpu_ns = 0;  ///< CPU time of the timing side during timed round trips
  std::int64_t responder_cpu_ns = 0;  ///< CPU time of the echoing side during the same
  std::int64_t wall_ns = 0;           ///< wall time of the timed round trips
  std::int64_t involuntary_switches = 0;  ///< preemptions of both sides (getrusage), all runs
  int runs = 0;                        ///< runs merged
  bool budget_hit = false;             ///< some run stopped at its time budget
  std::string skipped;                 ///< non-empty: why the mode was not run
};

/// Runs every mode in interleaved rounds (floor, candidate, floor, candidate, ...; the order of
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

}  // namespace shmlink::cli::bench
