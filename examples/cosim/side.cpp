// SPDX-License-Identifier: MIT
/// @file side.cpp
/// @brief **The shmlink part**: one half of the circuit coupled to its peer through a
/// shmlink::Interface, in lockstep, checking every sequence number it receives.
///
/// Per step k: compute this half's value at t_k (from its state and the peer's values up to
/// t_{k-1}), `Interface::write` it (sequence k, stamped ts_origin), `Interface::read` the peer's
/// sample for step k and check that its sequence is exactly k.
#include "cosim.hpp"

#include <shmlink/interface.hpp>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <numeric>
#include <span>

namespace cosim {
namespace {

/// Set by SIGINT/SIGTERM: finish the current step, close the interface (which removes this
/// side's queue) and exit.
volatile std::sig_atomic_t g_stop = 0;

/// Signal handler: only records the request.
extern "C" void on_side_stop_signal(int /*signal*/) { g_stop = 1; }

/// How long one read waits before looking at g_stop again.
constexpr auto kStopPoll = std::chrono::milliseconds(100);
/// How long close() lets a launched load side finish (write its files) before SIGTERM.
constexpr auto kStopTimeout = std::chrono::seconds(10);
/// Cells of each queue: the sides run in lockstep, so at most two samples are ever in flight
/// (three with the duplicate-step fault); a few more cost nothing.
constexpr std::uint32_t kQueueCapacity = 16;

/// What one side observed.
struct SideResult {
  std::int64_t steps_done = 0;           ///< steps whose peer sample arrived
  std::int64_t lost = 0;                 ///< peer steps 0..steps-1 never received
  std::int64_t duplicated = 0;           ///< samples received with a sequence already seen
  std::int64_t out_of_step = 0;          ///< steps k at which the sample read was not sequence k
  std::int64_t wall_ns = 0;              ///< the whole stepping loop
  std::vector<std::int64_t> step_ns;     ///< wall time of each step: compute, write, wait, read
  std::vector<std::int64_t> latency_ns;  ///< ts_received - ts_origin of each sample read
  std::vector<double> trajectory;        ///< this side's value at each step
  std::string error;                     ///< why the run stopped early or failed, "" if not
  std::string peer;                      ///< PeerStatus::describe() at the end
  std::string peer_channel;              ///< what the peer is known by: its queue file or VILLAS region, or its command line
  int peer_exit_code = -1;               ///< exit code of a launched peer
};

/// CLOCK_REALTIME in ns (the clock of Sample::ts_origin_ns).
std::int64_t realtime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

/// `seconds` as a std::chrono::nanoseconds timeout.
std::chrono::nanoseconds to_ns(double seconds) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
}

/// Sends this side's value for step `k`. Normally through write(values), whose automatic
/// sequence number is k (one sample per step). With a fault option, the sample is built by hand
/// (sequence k, ts_origin now) so that a dropped or repeated step shows in the numbering.
shmlink::Status send(shmlink::Interface& iface, std::int64_t k, double value, const SideOptions& options,
                     shmlink::Sample& scratch) {
  const shmlink::SignalValue values[1] = {shmlink::SignalValue::of(value)};
  const std::chrono::nanoseconds timeout = to_ns(options.timeout_s);
  if (options.drop_step < 0 && options.duplicate_step < 0) {
    if (iface.next_sequence() != static_cast<std::uint64_t>(k)) return shmlink::Errc::out_of_range;
    return iface.write(std::span<const shmlink::SignalValue>(values), timeout);
  }
  if (k == options.drop_step) return shmlink::Errc::ok;  // fault: this step's sample is lost
  scratch.sequence = static_cast<std::uint64_t>(k);
  scratch.ts_origin_ns = realtime_ns();
  scratch.flags = shmlink::kSampleHasSequence | shmlink::kSampleHasData | shmlink::kSampleHasTsOrigin;
  scratch.values.assign(std::begin(values), std::end(values));
  shmlink::Status status = iface.write(scratch, timeout);
  if (status.ok() && k == options.duplicate_step) status = iface.write(scratch, timeout);  // fault
  return status;
}

/// Reads the peer's next sample, waiting up to `timeout_s` in slices of kStopPoll so that a
/// SIGINT/SIGTERM is honoured. Returns what Interface::read returned last.
shmlink::Status receive(shmlink::Interface& iface, shmlink::Sample& sample, double timeout_s) {
  const std::int64_t deadline_ns = monotonic_ns() + static_cast<std::int64_t>(timeout_s * 1e9);
  for (;;) {
    const shmlink::Status status = iface.read(sample, kStopPoll);
    if (status.code() != shmlink::Errc::timeout || g_stop != 0 || monotonic_ns() >= deadline_ns) return status;
  }
}

/// Why a read or write at step `k` failed, in words.
std::string failure(const char* what, std::int64_t k, shmlink::Status status, const shmlink::Interface& iface,
                    double timeout_s) {
  const std::string at = std::string(what) + " step " + std::to_string(k) + ": ";
  switch (status.code()) {
    case shmlink::Errc::shut_down: return at + "the peer closed the interface";
    case shmlink::Errc::peer_exited: return at + iface.peer().describe();
    case shmlink::Errc::timeout:
      if (g_stop != 0) return at + "stopped by a signal";
      return at + "nothing from the peer for " + json_number(timeout_s) + " s";
    case shmlink::Errc::out_of_range: return at + "the interface's next sequence is not the step number";
    default: return at + status.message();
  }
}

/// Opens the interface, runs the steps, closes it. Set-up errors propagate as shmlink::Error.
SideResult simulate(const SideOptions& options) {
  shmlink::InterfaceSpec spec;
  spec.out = options.out;
  spec.in = options.in;
  spec.protocol = options.protocol;
  spec.capacity = kQueueCapacity;
  spec.wait = options.wait;
  spec.attach_timeout = to_ns(options.timeout_s);
  spec.exec = options.exec;
  spec.stop_timeout = kStopTimeout;
  shmlink::Interface iface(spec);
  // Value 0 of each side's samples, as DPsim registers its attributes by index.
  if (options.role == Role::source) {
    iface.export_signal(0, "i_line", shmlink::SignalType::f64, "A");
    iface.import_signal(0, "v_load", shmlink::SignalType::f64, "V");
  } else {
    iface.export_signal(0, "v_load", shmlink::SignalType::f64, "V");
    iface.import_signal(0, "i_line", shmlink::SignalType::f64, "A");
  }
  iface.open();

  SideResult r;
  const auto steps = static_cast<std::size_t>(options.steps);
  r.trajectory.reserve(steps);
  r.step_ns.reserve(steps);
  r.latency_ns.reserve(steps);
  std::vector<bool> seen(steps, false);
  SourceHalf source(options.circuit);
  LoadHalf load(options.circuit);
  PeerEstimate peer(options.predictor);
  shmlink::Sample sample;
  shmlink::Sample scratch;
  sample.values.reserve(shmlink::kMaxSampleValues);  // read() then never allocates

  const std::int64_t start_ns = monotonic_ns();
  for (std::int64_t k = 0; k < options.steps; ++k) {
    if (g_stop != 0) {
      r.error = "stopped by a signal before step " + std::to_string(k);
      break;
    }
    const std::int64_t step_start_ns = monotonic_ns();
    const double value = options.role == Role::source ? source.step(k, peer.predict()) : load.step(k, peer.predict());
    r.trajectory.push_back(value);
    if (const shmlink::Status status = send(iface, k, value, options, scratch); !status.ok()) {
      r.error = failure("writing", k, status, iface, options.timeout_s);
      break;
    }
    if (const shmlink::Status status = receive(iface, sample, options.timeout_s); !status.ok()) {
      r.error = failure("reading", k, status, iface, options.timeout_s);
      break;
    }
    r.step_ns.push_back(monotonic_ns() - step_start_ns);
    r.latency_ns.push_back(sample.ts_received_ns - sample.ts_origin_ns);
    // The check: the sample read at step k must be the peer's step k, each exactly once.
    if (sample.sequence != static_cast<std::uint64_t>(k)) ++r.out_of_step;
    if (sample.sequence < steps) {
      if (seen[sample.sequence]) ++r.duplicated;
      seen[sample.sequence] = true;
    }
    if (sample.values.empty()) {
      r.error = "step " + std::to_string(k) + ": the peer's sample has no value";
      break;
    }
    peer.push(sample.values[0].f);
    r.steps_done = k + 1;
  }
  r.wall_ns = monotonic_ns() - start_ns;
  r.lost = std::count(seen.begin(), seen.end(), false);

  iface.close();  // removes our queue; with exec, also waits for the load side and reaps it
  r.peer = iface.peer().describe();
  r.peer_channel = iface.peer().command;
  r.peer_exit_code = iface.peer().exit_code;
  if (const shmlink::PeerStatus& p = iface.peer(); r.error.empty() && p.launched && p.exit_code != 0) {
    r.error = "the side it launched (pid " + std::to_string(p.pid) + ") " +
              (p.exit_code > 0 ? "exited with status " + std::to_string(p.exit_code)
               : p.term_signal != 0 ? "was killed by signal " + std::to_string(p.term_signal)
                                    : "did not exit normally");
  }
  return r;
}

/// Writes `r` as key=value lines to `path`, or as one summary line to stdout when `path` is "".
bool write_report(const SideOptions& options, SideResult& r, bool ok) {
  std::sort(r.step_ns.begin(), r.step_ns.end());
  std::sort(r.latency_ns.begin(), r.latency_ns.end());
  const double step_mean_ns =
      r.step_ns.empty() ? 0
                        : std::accumulate(r.step_ns.begin(), r.step_ns.end(), 0.0) / static_cast<double>(r.step_ns.size());
  if (options.report_path.empty()) {
    std::printf("cosim side %s: %s; %lld of %lld steps, lost %lld, duplicated %lld, out of step %lld;"
                " step p50 %.1f us, p99 %.1f us; write->read p50 %.1f us, p99 %.1f us\n",
                role_name(options.role), ok ? "ok" : "FAILED", static_cast<long long>(r.steps_done),
                static_cast<long long>(options.steps), static_cast<long long>(r.lost),
                static_cast<long long>(r.duplicated), static_cast<long long>(r.out_of_step),
                static_cast<double>(percentile(r.step_ns, 0.50)) / 1e3,
                static_cast<double>(percentile(r.step_ns, 0.99)) / 1e3,
                static_cast<double>(percentile(r.latency_ns, 0.50)) / 1e3,
                static_cast<double>(percentile(r.latency_ns, 0.99)) / 1e3);
    return true;
  }
  std::ofstream file(options.report_path);
  file << "role=" << role_name(options.role) << "\nok=" << (ok ? 1 : 0) << "\nsteps=" << options.steps
       << "\nsteps_done=" << r.steps_done << "\nlost=" << r.lost << "\nduplicated=" << r.duplicated
       << "\nout_of_step=" << r.out_of_step << "\nwall_ns=" << r.wall_ns
       << "\nstep_mean_ns=" << static_cast<std::int64_t>(step_mean_ns)
       << "\nstep_p50_ns=" << percentile(r.step_ns, 0.50) << "\nstep_p99_ns=" << percentile(r.step_ns, 0.99)
       << "\nstep_max_ns=" << percentile(r.step_ns, 1.0) << "\nlatency_p50_ns=" << percentile(r.latency_ns, 0.50)
       << "\nlatency_p99_ns=" << percentile(r.latency_ns, 0.99) << "\nlatency_max_ns=" << percentile(r.latency_ns, 1.0)
       << "\npeer_exit_code=" << r.peer_exit_code << "\npeer=" << r.peer << "\npeer_channel=" << r.peer_channel
       << "\nerror=" << r.error << "\n";
  file.close();
  if (!file) log_error(role_name(options.role), "cannot write " + options.report_path);
  return static_cast<bool>(file);
}

}  // namespace

const char* role_name(Role r) noexcept { return r == Role::source ? "source" : "load"; }

int run_side(const SideOptions& options) {
  struct sigaction action {};
  action.sa_handler = on_side_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  SideResult r;
  try {
    r = simulate(options);
  } catch (const std::exception& e) {  // open(): no peer, bad names, layout mismatch, exec failed
    r.error = e.what();
  }
  const bool clean = r.error.empty() && r.steps_done == options.steps && r.lost == 0 && r.duplicated == 0 &&
                     r.out_of_step == 0;
  if (!r.error.empty()) log_error(role_name(options.role), r.error);
  bool ok = clean;
  if (!options.trajectory_path.empty()) {
    ok = write_trajectory(options.trajectory_path, options.role == Role::source ? "i_A" : "v_V",
                          options.circuit, r.trajectory) &&
         ok;
  }
  ok = write_report(options, r, clean) && ok;
  return ok ? 0 : 1;
}

}  // namespace cosim
