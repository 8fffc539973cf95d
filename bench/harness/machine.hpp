// SPDX-License-Identifier: MIT
/// @file machine.hpp
/// @brief What every `shmlink bench` subcommand measures with (docs/bench.md): clocks and stop
/// requests, sample statistics, CPU pinning, the machine's description and load over a run, and
/// the private scratch directory.
#pragma once

#include <signal.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace shmlink::tools {
class SignalHandlers;  // shmlink_tools/signals.hpp
}  // namespace shmlink::tools

namespace shmlink::bench {

/// The JSON documents of the bench reports (insertion order kept, as the CLI prints them).
using Json = nlohmann::ordered_json;

// ---- clocks and stop requests ----------------------------------------------------------

/// CLOCK_MONOTONIC in ns (vDSO: no syscall when the clocksource is tsc or kvm-clock).
std::int64_t mono_ns() noexcept;

/// CPU time consumed by this process so far (CLOCK_PROCESS_CPUTIME_ID), in ns.
std::int64_t process_cpu_ns() noexcept;

/// Median back-to-back difference of two CLOCK_MONOTONIC reads (10000 pairs), in ns: what
/// timing one round trip adds to it.
double clock_overhead_ns();

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
  std::unique_ptr<tools::SignalHandlers> handlers_;  // shmlink_tools/signals.hpp
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

/// The machine's load over a run: made before the measurement, finish() after it.
class LoadMeter {
 public:
  /// Samples the load averages, the machine's CPU times and this process's own CPU time.
  LoadMeter();
  /// The "load" object of the bench JSON documents (docs/bench.md): loadavg_before,
  /// loadavg_after, other_cpu_percent (CPU time other processes used, % of the machine's),
  /// steal_percent (time the hypervisor stole, %) and busy (other > 5 % or steal > 2 %; null
  /// when /proc/stat cannot be read). When busy, appends a note saying so to `notes`.
  Json finish(std::vector<std::string>& notes) const;

 private:
  std::vector<double> load_before_;
  CpuTimes cpu_before_;
  std::int64_t own_before_ = 0;
};

}  // namespace shmlink::bench
