// SPDX-License-Identifier: MIT
// What every `shmlink bench` subcommand measures with: clocks, signals, statistics, CPUs, the
// machine's description and load, and the private scratch directory (machine.hpp).
#include "harness/machine.hpp"

#include <shmlink/error.hpp>
#include <shmlink_tools/signals.hpp>

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace shmlink::bench {

namespace {

/// Set by SIGINT/SIGTERM while StopSignals is installed.
volatile std::sig_atomic_t g_stop = 0;

/// SIGINT/SIGTERM handler (async-signal-safe).
extern "C" void on_stop(int /*sig*/) { g_stop = 1; }

/// Reads the first line of a small file; empty when it cannot be read.
std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

std::int64_t mono_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t process_cpu_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double clock_overhead_ns() {
  std::vector<double> d;
  d.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    const std::int64_t a = mono_ns();
    const std::int64_t b = mono_ns();
    d.push_back(static_cast<double>(b - a));
  }
  return median_of(d);
}

bool stop_requested() noexcept { return g_stop != 0; }

StopSignals::StopSignals() {
  g_stop = 0;
  handlers_ = std::make_unique<tools::SignalHandlers>(on_stop, std::initializer_list<int>{SIGINT, SIGTERM});
}

StopSignals::~StopSignals() = default;

Percentiles percentiles_of(std::vector<std::int64_t>& values, double scale) {
  Percentiles p;
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  // Nearest rank: the smallest value with at least q * n values at or below it.
  auto at = [&](double q) {
    const double rank = std::ceil(q * static_cast<double>(n));
    const std::size_t idx = rank < 1 ? 0 : std::min(n - 1, static_cast<std::size_t>(rank) - 1);
    return static_cast<double>(values[idx]) * scale;
  };
  p.min = static_cast<double>(values.front()) * scale;
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = static_cast<double>(values.back()) * scale;
  return p;
}

double median_of(std::vector<double>& values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

bool pin_to_cpu(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    errno = EINVAL;
    return false;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

AffinityGuard::AffinityGuard() : cpus_(allowed_cpus()) {}

void AffinityGuard::restore() noexcept {
  if (cpus_.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus_) CPU_SET(c, &set);
  (void)::sched_setaffinity(0, sizeof set, &set);
}

MachineInfo describe_machine() {
  MachineInfo m;
  m.cpu_model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  bool have_model = false;
  bool have_flags = false;
  for (std::string line; std::getline(cpuinfo, line) && !(have_model && have_flags);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (!have_model && (key == "model name" || key == "Model" || key == "CPU part")) {
      m.cpu_model = value;
      have_model = key == "model name";
    } else if (!have_flags && (key == "flags" || key == "Features")) {
      m.virtual_machine = (" " + value + " ").find(" hypervisor ") != std::string::npos;
      have_flags = true;
    }
  }
  m.cores_online = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  m.cpus_allowed = allowed_cpus();
  utsname u{};
  if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m.clocksource = first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  return m;
}

CpuTimes read_cpu_times() {
  CpuTimes t;
  std::istringstream in(first_line("/proc/stat"));
  std::string cpu;
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return t;
  t.busy = user + nice + system + irq + softirq;
  t.steal = steal;
  t.total = t.busy + idle + iowait + steal;
  return t;
}

std::vector<double> read_loadavg() {
  std::istringstream in(first_line("/proc/loadavg"));
  std::vector<double> out(3);
  if (!(in >> out[0] >> out[1] >> out[2])) return {};
  return out;
}

std::int64_t own_cpu_ns() noexcept {
  auto ns = [](const timeval& tv) { return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000'000 + tv.tv_usec * 1000; };
  rusage self{};
  rusage children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  return ns(self.ru_utime) + ns(self.ru_stime) + ns(children.ru_utime) + ns(children.ru_stime);
}

ScratchDir::ScratchDir(const std::string& base) {
  std::string tmpl = base + "/shmlink-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    const int err = errno;
    throw Error(errc_from_errno(err), "creating a scratch directory in " + base + ": " + std::strerror(err));
  }
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Json machine_json(const MachineInfo& m) {
  Json j;
  j["cpu_model"] = m.cpu_model;
  j["cores_online"] = m.cores_online;
  j["cpus_allowed"] = m.cpus_allowed;
  j["kernel"] = m.kernel;
  j["virtual_machine"] = m.virtual_machine;
  j["clocksource"] = m.clocksource;
  return j;
}

std::pair<int, int> parse_core_pair(const std::string& text, const std::vector<int>& allowed,
                                    std::string_view command) {
  const std::string what(command);
  const auto comma = text.find(',');
  int a = -1;
  int b = -1;
  const char* end = text.data() + text.size();
  bool ok = comma != std::string::npos;
  if (ok) {
    const auto ra = std::from_chars(text.data(), text.data() + comma, a);
    const auto rb = std::from_chars(text.data() + comma + 1, end, b);
    ok = ra.ec == std::errc() && ra.ptr == text.data() + comma && rb.ec == std::errc() && rb.ptr == end;
  }
  if (!ok) throw Error(Errc::invalid_argument, what + ": --cores wants two CPU numbers 'A,B', got '" + text + "'");
  if (a == b) throw Error(Errc::invalid_argument, what + ": --cores needs two different CPUs");
  for (int c : {a, b}) {
    if (std::find(allowed.begin(), allowed.end(), c) == allowed.end())
      throw Error(Errc::invalid_argument,
                  what + ": CPU " + std::to_string(c) + " is not in this process's affinity mask");
  }
  return {a, b};
}

LoadMeter::LoadMeter() : load_before_(read_loadavg()), cpu_before_(read_cpu_times()), own_before_(own_cpu_ns()) {}

Json LoadMeter::finish(std::vector<std::string>& notes) const {
  const CpuTimes cpu_after = read_cpu_times();
  const std::int64_t own_after = own_cpu_ns();
  Json load;
  load["loadavg_before"] = load_before_;
  load["loadavg_after"] = read_loadavg();
  load["other_cpu_percent"] = nullptr;
  load["steal_percent"] = nullptr;
  load["busy"] = nullptr;
  if (cpu_after.total > cpu_before_.total) {
    const double tick_ns = 1e9 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double total_ns = static_cast<double>(cpu_after.total - cpu_before_.total) * tick_ns;
    const double busy_ns = static_cast<double>(cpu_after.busy - cpu_before_.busy) * tick_ns;
    const double other = std::max(0.0, busy_ns - static_cast<double>(own_after - own_before_)) / total_ns * 100;
    const double steal = static_cast<double>(cpu_after.steal - cpu_before_.steal) * tick_ns / total_ns * 100;
    const bool busy = other > 5 || steal > 2;
    load["other_cpu_percent"] = other;
    load["steal_percent"] = steal;
    load["busy"] = busy;
    if (busy) {
      char note[256];
      std::snprintf(note, sizeof note,
                    "the machine was busy: other processes used %.1f%% and the hypervisor stole %.1f%% "
                    "of the CPU time during the run; absolute numbers are inflated, ratios less so",
                    other, steal);
      notes.emplace_back(note);
    }
  }
  return load;
}

}  // namespace shmlink::bench
