// SPDX-License-Identifier: MIT
/// @file launcher.cpp
/// @brief `ao_loop run`: starts camera, controller and recorder as separate processes (this
/// binary re-executed in each role), waits for them and collects their reports.
///
/// Start-up order is recorder, controller, camera, each one only once the previous one said
/// "ready", so no frame is published before its reader is attached. Nothing can hang: every
/// wait has a deadline and children still alive after the run plus a margin are killed.
#include "ao_loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sstream>
#include <system_error>

namespace ao_loop {
namespace {

/// Seconds a child may take to attach and say "ready" (generous: sanitizer builds start slowly).
constexpr double kReadyTimeoutS = 20;
/// Seconds beyond the run a reader waits before giving up on its writer.
constexpr double kRoleMarginS = 10;
/// Seconds beyond the run after which the launcher kills its children.
constexpr double kKillMarginS = kRoleMarginS + 5;
/// Size asked for the camera pipe's buffer: a few frames, like the kernel's default maximum.
constexpr int kCameraPipeBytes = 1 << 20;

/// Set by SIGINT/SIGTERM: stop, kill the children, clean up.
volatile std::sig_atomic_t g_stop = 0;

/// Signal handler: only records the request.
extern "C" void on_stop_signal(int /*signal*/) { g_stop = 1; }

/// Throws std::system_error for errno, naming `what`.
[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// A pipe whose two ends are close-on-exec: children inherit only the ends handed to them.
struct Pipe {
  UniqueFd read_end;   ///< read end
  UniqueFd write_end;  ///< write end
};

/// Creates a Pipe.
Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

/// This executable's path, to re-execute it in each role.
std::string self_path() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw_errno("readlink /proc/self/exe");
  return std::string(path, static_cast<std::size_t>(n));
}

/// One child process of a pipeline and what it has reported so far.
struct Child {
  std::string role;       ///< "camera", "controller", "recorder"
  pid_t pid = -1;         ///< its process id
  UniqueFd report;        ///< read end of its report pipe (non-blocking)
  std::string received;   ///< everything read from it so far
  bool running = false;   ///< started and not yet reaped
  int status = 0;         ///< waitpid() status once reaped
  bool killed = false;    ///< killed by us at the deadline

  /// A child not started yet, in role `name`.
  explicit Child(std::string name) : role(std::move(name)) {}

  /// Reads whatever the child has written so far (never blocks).
  void pump() {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(report.get(), buffer, sizeof buffer);
      if (n > 0) {
        received.append(buffer, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        return;  // EAGAIN (nothing more now) or EOF
      }
    }
  }

  /// Reaps the child if it has exited, reading its last words first.
  void reap_if_exited() {
    if (!running) return;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      running = false;
      pump();  // its write end is closed now: this reads everything it sent
    }
  }

  /// Kills the child (SIGKILL) if it is still running, and reaps it.
  void kill_now() {
    if (!running) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    running = false;
    killed = true;
    pump();
  }

  /// True once the child said "ready".
  [[nodiscard]] bool ready() const { return received.find("ready\n") != std::string::npos; }

  /// The key=value pairs of its "result" line (empty when it sent none).
  [[nodiscard]] std::map<std::string, std::string> result() const {
    std::map<std::string, std::string> values;
    const std::size_t at = received.find("result ");
    if (at == std::string::npos) return values;
    std::istringstream words(received.substr(at + 7, received.find('\n', at) - at - 7));
    for (std::string word; words >> word;) {
      const std::size_t eq = word.find('=');
      if (eq != std::string::npos) values[word.substr(0, eq)] = word.substr(eq + 1);
    }
    return values;
  }

  /// How it ended, for error messages: "" for exit status 0.
  [[nodiscard]] std::string failure() const {
    if (killed) return role + " did not finish in time and was killed";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    if (WIFEXITED(status)) return role + " exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return role + " died of signal " + std::to_string(WTERMSIG(status));
    return role + " ended abnormally";
  }
};

/// Waits up to `timeout_ms` for output from any running child, then reaps those that exited.
void poll_children(std::vector<Child*>& children, int timeout_ms) {
  std::vector<pollfd> fds;
  for (const Child* child : children) {
    if (child->running) fds.push_back({child->report.get(), POLLIN, 0});
  }
  if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) throw_errno("poll");
  for (Child* child : children) {
    if (child->running) child->pump();
    child->reap_if_exited();
  }
}

/// The three processes of one pipeline. The destructor kills whatever is still running.
struct Pipeline {
  Child recorder{"recorder"};
  Child controller{"controller"};
  Child camera{"camera"};

  Pipeline() = default;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline() {
    for (Child* child : all()) child->kill_now();
  }

  /// The children, in start-up order.
  std::vector<Child*> all() { return {&recorder, &controller, &camera}; }
};

/// Starts this binary as `child.role` with `args`; `inherit` are the fds it may keep (its
/// transport ends). A report pipe is added as `--report-fd`.
void spawn(Child& child, const std::string& exe, std::vector<std::string> args, const std::vector<int>& inherit) {
  Pipe report = make_pipe();
  if (::fcntl(report.read_end.get(), F_SETFL, O_NONBLOCK) != 0) throw_errno("fcntl");
  args.insert(args.begin(), {exe, child.role});
  args.insert(args.end(), {"--report-fd", std::to_string(report.write_end.get())});
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<int> keep = inherit;
  keep.push_back(report.write_end.get());

  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // In the child, until exec: async-signal-safe calls only. If the launcher dies (even by
    // SIGKILL), the kernel sends us SIGTERM; the check closes the race with an early death.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != launcher) ::_exit(1);
    // Every fd of ours is close-on-exec; clear the flag on the ones this role needs.
    for (const int fd : keep) ::fcntl(fd, F_SETFD, 0);
    ::execv(exe.c_str(), argv.data());
    static constexpr char kMessage[] = "ao_loop: exec of itself failed\n";
    [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(127);
  }
  child.pid = pid;
  child.running = true;
  child.report = std::move(report.read_end);
  // report.write_end closes here: the child holds the only copy, so its exit means EOF.
}

/// Waits until `child` said "ready"; false when it exited, timed out or we were stopped.
bool wait_ready(Pipeline& pipeline, Child& child) {
  std::vector<Child*> children = pipeline.all();
  const std::int64_t deadline_ns = monotonic_ns() + static_cast<std::int64_t>(kReadyTimeoutS * 1e9);
  while (!child.ready() && child.running && g_stop == 0 && monotonic_ns() < deadline_ns) {
    poll_children(children, 20);
  }
  return child.ready();
}

/// Removes the shm pipeline's streams when the run is over, whatever happened.
struct StreamFiles {
  std::vector<std::string> names;  ///< streams to remove

  StreamFiles() = default;
  StreamFiles(const StreamFiles&) = delete;
  StreamFiles& operator=(const StreamFiles&) = delete;
  ~StreamFiles() {
    for (const std::string& name : names) {
      try {
        shmlink::Stream::remove(name);
      } catch (const shmlink::Error& e) {
        if (e.errc() != shmlink::Errc::not_found) log_error(e.what());
      }
    }
  }
};

/// Turns a number into a command-line argument.
std::string arg(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

}  // namespace

double PipelineResult::number(const std::map<std::string, std::string>& report, const std::string& key,
                              double fallback) noexcept {
  const auto it = report.find(key);
  if (it == report.end()) return fallback;
  char* end = nullptr;
  const double value = std::strtod(it->second.c_str(), &end);
  return end != it->second.c_str() ? value : fallback;
}

std::int64_t PipelineResult::frames_lost() const noexcept {
  return static_cast<std::int64_t>(number(camera, "frames")) - static_cast<std::int64_t>(number(recorder, "frames"));
}

PipelineResult run_pipeline(Transport transport, const RunOptions& options) {
  PipelineResult result;
  result.transport = transport;
  const std::string exe = self_path();
  const std::vector<std::string> common = {"--transport", transport_name(transport),
                                           "--seconds", arg(options.seconds),
                                           "--rate", arg(options.rate_hz),
                                           "--timeout", arg(options.seconds + kRoleMarginS)};
  const auto with = [&common](std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return extra;
  };

  StreamFiles streams;  // declared before the pipeline: children die before their streams go
  Pipeline pipeline;
  std::vector<std::string> errors;
  // Starts one role and waits for its "ready"; false (with the reason noted) when it fails.
  const auto start = [&](Child& child, const std::vector<std::string>& args, const std::vector<int>& inherit) {
    spawn(child, exe, with(args), inherit);
    if (wait_ready(pipeline, child)) return true;
    errors.push_back(child.role + " did not get ready");
    return false;
  };

  if (transport == Transport::shm) {
    // Unique names (the pid) in shmlink::stream_directory(), i.e. $SHMLINK_DIR or /dev/shm.
    const std::string tag = "ao_loop-" + std::to_string(::getpid());
    const std::string frames = tag + "-frames";
    const std::string slopes = tag + "-slopes";
    // The names are ours (our pid): a file left by a killed launcher of the same pid is replaced.
    shmlink::Stream::create(frames, camera_spec(), shmlink::OpenMode::PurgeAndCreate).close();
    streams.names.push_back(frames);
    shmlink::Stream::create(slopes, slopes_spec(), shmlink::OpenMode::PurgeAndCreate).close();
    streams.names.push_back(slopes);

    if (start(pipeline.recorder, {"--in", slopes}, {}) &&
        start(pipeline.controller, {"--in", frames, "--out", slopes}, {})) {
      start(pipeline.camera, {"--out", frames}, {});
    }
  } else {
    Pipe frames = make_pipe();
    Pipe slopes = make_pipe();
    // A bigger buffer lets the camera hand a whole frame over without waiting for the reader.
    // Failure is fine (the pipe keeps its 64 KiB default).
    ::fcntl(frames.write_end.get(), F_SETPIPE_SZ, kCameraPipeBytes);
    const auto fd = [](const UniqueFd& end) { return std::to_string(end.get()); };

    // Each of our pipe ends is closed as soon as the child that needs it holds it, so each
    // reader sees EOF when its writer ends.
    bool started = start(pipeline.recorder, {"--in", fd(slopes.read_end)}, {slopes.read_end.get()});
    slopes.read_end.reset();
    started = started && start(pipeline.controller, {"--in", fd(frames.read_end), "--out", fd(slopes.write_end)},
                               {frames.read_end.get(), slopes.write_end.get()});
    frames.read_end.reset();
    slopes.write_end.reset();
    if (started) start(pipeline.camera, {"--out", fd(frames.write_end)}, {frames.write_end.get()});
  }

  // Run, then wait for all three to finish; kill them at the deadline.
  std::vector<Child*> children = pipeline.all();
  const std::int64_t deadline_ns = monotonic_ns() + static_cast<std::int64_t>((options.seconds + kKillMarginS) * 1e9);
  for (;;) {
    bool any_running = false;
    for (const Child* child : children) any_running = any_running || child->running;
    if (!any_running) break;
    if (g_stop != 0 || monotonic_ns() > deadline_ns) {
      for (Child* child : children) child->kill_now();
      break;
    }
    poll_children(children, 50);
  }
  result.camera = pipeline.camera.result();
  result.controller = pipeline.controller.result();
  result.recorder = pipeline.recorder.result();
  if (g_stop != 0) {  // Ctrl-C: the children were stopped on purpose, no need to list how
    result.error = "interrupted";
    return result;
  }

  for (const Child* child : children) {
    if (child->pid < 0) continue;
    if (std::string failure = child->failure(); !failure.empty()) errors.push_back(failure);
  }

  // Behaviour checks on what the processes reported.
  const double observed = PipelineResult::number(result.recorder, "frames");
  if (observed <= 0) errors.push_back("no slopes frame went through");
  if (const double wrong = PipelineResult::number(result.recorder, "wrong"); wrong > 0) {
    errors.push_back(arg(wrong) + " slopes frames were wrong");
  }
  if (PipelineResult::number(result.recorder, "out_of_order") > 0) errors.push_back("slopes frames out of order");
  if (result.frames_lost() < 0) errors.push_back("more slopes frames than camera frames");

  for (const std::string& error : errors) result.error += (result.error.empty() ? "" : "; ") + error;
  result.ok = errors.empty();
  return result;
}

int run_demo(const RunOptions& options) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  std::vector<PipelineResult> results;
  for (const Transport transport : options.transports) {
    if (g_stop != 0) break;
    try {
      results.push_back(run_pipeline(transport, options));
    } catch (const std::exception& e) {  // set-up failed: streams, pipes, fork
      PipelineResult failed;
      failed.transport = transport;
      failed.error = e.what();
      results.push_back(failed);
    }
  }
  print_report(options, results);
  bool ok = !results.empty() && g_stop == 0;
  for (const PipelineResult& result : results) ok = ok && result.ok;
  if (!options.json_path.empty() && !write_json(options.json_path, options, results)) ok = false;
  if (g_stop != 0) return 130;
  return ok ? 0 : 1;
}

}  // namespace ao_loop
