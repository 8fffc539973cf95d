// SPDX-License-Identifier: MIT
/// @file launcher.cpp
/// @brief `cosim run`: runs the two sides as processes (this binary re-executed), then compares
/// their trajectories with the one-process solution and reports.
///
/// Everything a run creates (both queues, both trajectories, both reports) lives in a scratch
/// directory `<stream directory>/cosim-<pid>-XXXXXX`, removed at the end whatever happened, so
/// a failed or interrupted run leaves nothing behind. With `--protocol villas` the two regions
/// are POSIX shm objects `/cosim-<pid>-XXXXXX-{source,load}` in /dev/shm instead (and their
/// rendezvous semaphores `sem.<name>`): what a side that died leaves of them is removed too, and
/// reported. Nothing can hang: each side gives up on a
/// silent peer after `--timeout`, and the launcher stops children that outlive a deadline.
#include "cosim.hpp"

#include <shmlink/stream.hpp>  // stream_directory()

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <system_error>

namespace cosim {
namespace {

/// Set by SIGINT/SIGTERM: stop the sides, clean up.
volatile std::sig_atomic_t g_stop = 0;

/// Signal handler: only records the request.
extern "C" void on_run_stop_signal(int /*signal*/) { g_stop = 1; }

/// Seconds a stopped child gets to clean up after SIGTERM before SIGKILL.
constexpr double kTermGraceS = 3;

/// Throws std::system_error for errno, naming `what`.
[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// This executable's path, to re-execute it as each side.
std::string self_path() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw_errno("readlink /proc/self/exe");
  return std::string(path, static_cast<std::size_t>(n));
}

/// Sleeps `ms` milliseconds.
void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
  ::nanosleep(&ts, nullptr);
}

/// A directory created for one run, removed with its contents on destruction unless kept.
class ScratchDir {
 public:
  /// Creates `<stream directory>/cosim-<pid>-XXXXXX`.
  ScratchDir() {
    std::string path = shmlink::stream_directory() + "/cosim-" + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) throw_errno("creating a scratch directory " + path);
    path_ = path;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    if (keep_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  /// `<dir>/<name>`.
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// The directory.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Leaves the directory in place at destruction.
  void keep() noexcept { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

/// One side started by the launcher. The destructor kills it if it still runs.
struct Child {
  std::string role;      ///< "source" or "load"
  pid_t pid = -1;        ///< its process id
  bool running = false;  ///< started and not reaped
  int status = 0;        ///< waitpid() status once reaped
  bool killed = false;   ///< stopped by us

  /// A child not started yet.
  explicit Child(std::string name) : role(std::move(name)) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  /// Reaps the child if it has exited.
  void reap_if_exited() {
    if (running && ::waitpid(pid, &status, WNOHANG) == pid) running = false;
  }

  /// Stops a running child: SIGTERM (the side closes its interface, which removes its queue
  /// and, with exec, stops the load it launched), then SIGKILL after kTermGraceS.
  void stop() {
    if (!running) return;
    killed = true;
    ::kill(pid, SIGTERM);
    for (int waited_ms = 0; running && waited_ms < kTermGraceS * 1000; waited_ms += 5) {
      sleep_ms(5);
      reap_if_exited();
    }
    if (!running) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    running = false;
  }

  /// How it ended, for the report: "" for exit status 0.
  [[nodiscard]] std::string failure() const {
    if (pid < 0) return "";
    if (killed) return role + " side did not finish in time and was stopped";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    if (WIFEXITED(status)) return role + " side exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return role + " side died of signal " + std::to_string(WTERMSIG(status));
    return role + " side ended abnormally";
  }
};

/// Starts `exe args...` as `child`. Its stdout goes to our stderr (stdout is for the summary
/// or the JSON); if we die, even by SIGKILL, the kernel sends it SIGTERM.
void spawn(Child& child, const std::string& exe, std::vector<std::string> args) {
  args.insert(args.begin(), exe);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t launcher = ::getpid();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // In the child, until exec: async-signal-safe calls only.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != launcher) ::_exit(1);
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    ::execv(exe.c_str(), argv.data());
    static constexpr char kMessage[] = "cosim: exec of itself failed\n";
    [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(127);
  }
  child.pid = pid;
  child.running = true;
}

/// The objects a side may leave behind for channel `name` (what its Interface creates): the
/// queue file with the shmlink protocol; the region and the rendezvous semaphore in /dev/shm
/// with villas.
std::vector<std::string> channel_files(const std::string& name, shmlink::InterfaceProtocol protocol) {
  if (protocol == shmlink::InterfaceProtocol::shmlink) return {name};
  return {"/dev/shm" + name, "/dev/shm/sem." + name.substr(1)};
}

/// Removes what the sides left of `names` once both have ended (a side's close() removes its own
/// channel; a side that died does not) and returns the files it had to remove.
std::vector<std::string> remove_left_behind(const std::vector<std::string>& names,
                                            shmlink::InterfaceProtocol protocol) {
  std::vector<std::string> removed;
  for (const std::string& name : names) {
    for (const std::string& file : channel_files(name, protocol)) {
      std::error_code ec;
      if (std::filesystem::remove(file, ec)) removed.push_back(file);
    }
  }
  return removed;
}

/// Formats a number for a command line (integers without a fraction).
std::string arg(double value) { return json_number(value); }

/// Distribution `<prefix>_{p50,p99,max}_ns` of a side's report, as a JSON object in us.
std::string us_json(const std::map<std::string, std::string>& report, const std::string& prefix) {
  std::string out = "{";
  const char* separator = "";
  for (const char* stat : {"mean", "p50", "p99", "max"}) {
    const double ns = report_number(report, prefix + "_" + stat + "_ns", NAN);
    if (std::string(stat) == "mean" && std::isnan(ns)) continue;
    out += separator + std::string("\"") + stat + "\": " + json_number(std::round(ns / 10) / 100);
    separator = ", ";
  }
  return out + "}";
}

/// A side's counters as a JSON object.
std::string side_json(const std::map<std::string, std::string>& report, const Child& child) {
  // A counter of the report as a JSON number (null when absent).
  const auto n = [&report](const char* key) { return json_number(report_number(report, key, NAN)); };
  const auto found = report.find("error");
  const auto peer_channel = report.find("peer_channel");
  const std::string failure = child.failure();
  std::string error = found != report.end() ? found->second : "";
  if (error.empty()) error = failure;
  return "{\"steps_done\": " + n("steps_done") + ", \"lost\": " + n("lost") + ", \"duplicated\": " +
         n("duplicated") + ", \"out_of_step\": " + n("out_of_step") + ", \"ok\": " +
         (failure.empty() && report_number(report, "ok") == 1 ? "true" : "false") + ", \"error\": " +
         json_string(error) + ", \"peer_channel\": " +
         json_string(peer_channel != report.end() ? peer_channel->second : "") + ", \"step_wall_us\": " + us_json(report, "step") + ", \"write_to_read_us\": " +
         us_json(report, "latency") + "}";
}

}  // namespace

int run_cosim(const RunOptions& options) {
  struct sigaction action {};
  action.sa_handler = on_run_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  const Circuit circuit;
  const std::string exe = self_path();
  ScratchDir dir;
  // The channels: queue files in the scratch directory, or shm names made unique by its name.
  const bool villas = options.protocol == shmlink::InterfaceProtocol::villas;
  // Appended, not "/" + string: g++ 12 at -O3 reports a false -Wrestrict overlap on that form.
  std::string villas_stem(1, '/');
  villas_stem += std::filesystem::path(dir.path()).filename().string();
  const std::string source_queue = villas ? villas_stem + "-source" : dir.file("source.queue.shm");
  const std::string load_queue = villas ? villas_stem + "-load" : dir.file("load.queue.shm");
  const std::vector<std::string> common = {"--steps", arg(static_cast<double>(options.steps)),
                                           "--wait", wait_name(options.wait),
                                           "--predictor", predictor_name(options.predictor),
                                           "--protocol", protocol_name(options.protocol),
                                           "--timeout", arg(options.timeout_s)};
  // The arguments of side `role`: the common ones, its files, and the faults if it is the faulty side.
  const auto side_args = [&](Role role) {
    std::vector<std::string> args = {"side", role_name(role)};
    args.insert(args.end(), common.begin(), common.end());
    const std::string name = role_name(role);
    args.insert(args.end(), {"--trajectory", dir.file(name + ".csv"), "--report", dir.file(name + ".report")});
    if (role == options.fault_side && options.drop_step >= 0) {
      args.insert(args.end(), {"--drop-step", arg(static_cast<double>(options.drop_step))});
    }
    if (role == options.fault_side && options.duplicate_step >= 0) {
      args.insert(args.end(), {"--duplicate-step", arg(static_cast<double>(options.duplicate_step))});
    }
    return args;
  };

  Child source("source");
  Child load("load");
  const std::int64_t start_ns = monotonic_ns();
  std::vector<std::string> source_args = side_args(Role::source);
  source_args.insert(source_args.end(), {"--in", load_queue, "--out", source_queue});
  if (options.exec) {
    // "One launching the other": the source side's Interface starts the load side, which finds
    // its queue names in SHMLINK_INTERFACE_IN / SHMLINK_INTERFACE_OUT.
    std::vector<std::string> load_args = side_args(Role::load);
    source_args.push_back("--exec");
    source_args.push_back(exe);
    source_args.insert(source_args.end(), load_args.begin(), load_args.end());
    spawn(source, exe, source_args);
  } else {
    std::vector<std::string> load_args = side_args(Role::load);
    load_args.insert(load_args.end(), {"--in", source_queue, "--out", load_queue});
    spawn(source, exe, source_args);
    spawn(load, exe, load_args);
  }

  // Wait for the sides; each gives up on a silent peer by itself, this is the last resort.
  const double limit_s = 2 * options.timeout_s + 30 + 1e-3 * static_cast<double>(options.steps);
  const std::int64_t deadline_ns = start_ns + static_cast<std::int64_t>(limit_s * 1e9);
  for (;;) {
    source.reap_if_exited();
    load.reap_if_exited();
    if (!source.running && !load.running) break;
    if (g_stop != 0 || monotonic_ns() > deadline_ns) {
      source.stop();
      load.stop();
      break;
    }
    sleep_ms(1);
  }
  const double wall_s = static_cast<double>(monotonic_ns() - start_ns) / 1e9;
  // Both sides have ended: whatever is left of their channels was left by a side that died.
  const std::vector<std::string> left_behind = remove_left_behind({source_queue, load_queue}, options.protocol);
  if (g_stop != 0) {
    log_error("run", "interrupted; removing " + dir.path());
    return 130;
  }

  // Collect what the sides wrote.
  std::vector<std::string> errors;
  const std::map<std::string, std::string> source_report = read_report(dir.file("source.report"));
  const std::map<std::string, std::string> load_report = read_report(dir.file("load.report"));
  for (const Child* child : {&source, &load}) {
    if (std::string failure = child->failure(); !failure.empty()) errors.push_back(failure);
  }
  for (const auto* report : {&source_report, &load_report}) {
    const std::string role = report == &source_report ? "source" : "load";
    if (report->empty()) {
      errors.push_back(role + " side wrote no report");
    } else if (const auto it = report->find("error"); it != report->end() && !it->second.empty()) {
      errors.push_back(role + ": " + it->second);
    }
  }
  std::vector<double> i;
  std::vector<double> v;
  for (const auto& [file, values] : {std::pair{"source.csv", &i}, std::pair{"load.csv", &v}}) {
    try {
      *values = read_trajectory(dir.file(file));
    } catch (const std::exception& e) {
      errors.emplace_back(e.what());
    }
  }
  const Comparison c = compare(circuit, options.steps, i, v);
  if (c.steps_compared < options.steps) {
    errors.push_back("only " + std::to_string(c.steps_compared) + " of " + std::to_string(options.steps) +
                     " steps were simulated by both sides");
  }
  // A counter summed over both sides' reports.
  const auto total = [&](const char* key) {
    return static_cast<std::int64_t>(report_number(source_report, key) + report_number(load_report, key));
  };
  const std::int64_t lost = total("lost");
  const std::int64_t duplicated = total("duplicated");
  const std::int64_t out_of_step = total("out_of_step");
  if (lost > 0) errors.push_back(std::to_string(lost) + " steps lost");
  if (duplicated > 0) errors.push_back(std::to_string(duplicated) + " steps duplicated");
  if (out_of_step > 0) errors.push_back(std::to_string(out_of_step) + " samples read at the wrong step");
  if (c.v_error > options.tolerance) errors.push_back("load voltage error above the tolerance");
  if (c.i_error > options.tolerance) errors.push_back("line current error above the tolerance");
  for (const std::string& file : left_behind) errors.push_back("left behind by a side, removed: " + file);
  const bool pass = errors.empty();

  // The summary: on stdout, or on stderr when stdout carries the JSON.
  std::FILE* out = options.json ? stderr : stdout;
  const double simulated_s = circuit.time(options.steps);
  // A `<key>` of a report (ns) in us, NaN when absent.
  const auto us = [](const std::map<std::string, std::string>& report, const char* key) {
    return report_number(report, key, NAN) / 1e3;
  };
  std::fprintf(out, "cosim: one circuit split in two processes (ideal transformer), %lld steps of %g us = %g s simulated\n",
               static_cast<long long>(options.steps), circuit.dt_s * 1e6, simulated_s);
  std::fprintf(out, "  %s; %s; wait %s, predictor %s\n",
               options.exec ? "the source side launches the load side (InterfaceSpec::exec)"
                            : "the launcher starts both sides",
               villas ? "over VILLASnode shmem regions" : "over shmlink queues", wait_name(options.wait),
               predictor_name(options.predictor));
  if (c.steps_compared > 0) {
    std::fprintf(out, "  max error vs one-process solution: v %.3f %% of %.1f V peak, i %.3f %% of %.2f A peak"
                 " (tolerance %g %%)\n", 100 * c.v_error, c.v_peak, 100 * c.i_error, c.i_peak, 100 * options.tolerance);
  } else {
    std::fprintf(out, "  max error vs one-process solution: no trajectory to compare\n");
  }
  std::fprintf(out, "  steps lost %lld, duplicated %lld, read at the wrong step %lld\n", static_cast<long long>(lost),
               static_cast<long long>(duplicated), static_cast<long long>(out_of_step));
  std::fprintf(out, "  wall time per step (us): p50 %.1f, p99 %.1f, max %.1f (source side); "
               "write->read p50 %.1f, p99 %.1f\n", us(source_report, "step_p50_ns"), us(source_report, "step_p99_ns"),
               us(source_report, "step_max_ns"), us(source_report, "latency_p50_ns"), us(source_report, "latency_p99_ns"));
  double load_average[1] = {NAN};
  ::getloadavg(load_average, 1);
  std::fprintf(out, "  %.3f s wall in all (start-up included), %.2fx real time; %ld cores, load average %.2f\n",
               wall_s, simulated_s / wall_s, ::sysconf(_SC_NPROCESSORS_ONLN), load_average[0]);
  std::fprintf(out, "  %s\n", pass ? "PASS" : "FAIL");
  for (const std::string& error : errors) std::fprintf(out, "    %s\n", error.c_str());
  std::fflush(out);

  if (options.json) {
    // A JSON array of strings.
    const auto strings_json = [](const std::vector<std::string>& texts) {
      std::string out_json = "[";
      for (std::size_t n = 0; n < texts.size(); ++n) out_json += (n > 0 ? ", " : "") + json_string(texts[n]);
      return out_json + "]";
    };
    const std::string errors_json = strings_json(errors);
    const std::string channels_json = "{\"source\": " + json_string(source_queue) + ", \"load\": " +
                                      json_string(load_queue) + "}";
    std::printf(
        "{\n  \"schema_version\": 1,\n  \"pass\": %s,\n  \"mode\": %s,\n  \"steps\": %lld,\n  \"dt_us\": %s,\n"
        "  \"protocol\": %s,\n  \"channels\": %s,\n  \"left_behind\": %s,\n  \"wait\": %s,\n  \"predictor\": %s,\n  \"tolerance\": %s,\n  \"max_rel_error_v\": %s,\n"
        "  \"max_rel_error_i\": %s,\n  \"max_error_step_v\": %lld,\n  \"max_error_step_i\": %lld,\n"
        "  \"v_peak\": %s,\n  \"i_peak\": %s,\n  \"steps_compared\": %lld,\n  \"lost_steps\": %lld,\n"
        "  \"duplicated_steps\": %lld,\n  \"out_of_step\": %lld,\n  \"step_wall_us\": %s,\n  \"wall_s\": %s,\n"
        "  \"cores\": %ld,\n  \"load_1min\": %s,\n  \"sides\": {\n    \"source\": %s,\n    \"load\": %s\n  },\n  \"circuit\": %s,\n"
        "  \"errors\": %s\n}\n",
        pass ? "true" : "false", options.exec ? "\"exec\"" : "\"fork\"", static_cast<long long>(options.steps),
        json_number(circuit.dt_s * 1e6).c_str(), json_string(protocol_name(options.protocol)).c_str(),
        channels_json.c_str(), strings_json(left_behind).c_str(), json_string(wait_name(options.wait)).c_str(),
        json_string(predictor_name(options.predictor)).c_str(), json_number(options.tolerance).c_str(),
        json_number(c.v_error).c_str(), json_number(c.i_error).c_str(), static_cast<long long>(c.v_error_step),
        static_cast<long long>(c.i_error_step), json_number(c.v_peak).c_str(), json_number(c.i_peak).c_str(),
        static_cast<long long>(c.steps_compared), static_cast<long long>(lost), static_cast<long long>(duplicated),
        static_cast<long long>(out_of_step), us_json(source_report, "step").c_str(), json_number(wall_s).c_str(),
        ::sysconf(_SC_NPROCESSORS_ONLN), json_number(load_average[0]).c_str(), side_json(source_report, source).c_str(),
        side_json(load_report, load).c_str(), circuit_json(circuit).c_str(), errors_json.c_str());
    std::fflush(stdout);
  }
  if (options.keep) {
    dir.keep();
    std::fprintf(stderr, "cosim: kept %s (trajectories *.csv, side reports *.report)\n", dir.path().c_str());
  }
  return pass ? 0 : 1;
}

}  // namespace cosim
