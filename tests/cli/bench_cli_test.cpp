// SPDX-License-Identifier: MIT
// Tests of `shmlink bench stream`, `bench queue` and `memif bench` (docs/bench.md): a short
// --json run must produce the documented schema with consistent numbers. Speeds are never asserted (no timed tests): only
// shapes, orderings and that each ratio is the quotient it claims to be.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testpmd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef SHMLINK_CLI_PATH
#error "SHMLINK_CLI_PATH must name the shmlink binary"
#endif

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

/// What a finished CLI run left behind.
struct RunResult {
  int code = -1;    ///< exit status, or 128 + signal
  std::string out;  ///< stdout
  std::string err;  ///< stderr
  pid_t pid = -1;   ///< the CLI's process id (names of its Boost message queues)
};

/// A pseudo-terminal for the CLI's stderr (openpty).
struct Terminal {
  int master = -1;  ///< our side: what the CLI writes to its stderr
  int slave = -1;   ///< the CLI's stderr
};

/// Runs the CLI with `args` and `SHMLINK_DIR=dir`, collecting stdout and stderr; kills it after
/// `limit`. `watch`, when given, is called with the CLI's pid and the stderr read so far each
/// time more output came (to signal the CLI at a given point of its run). With `terminal`, the
/// CLI's stderr is that terminal instead of a pipe (both its fds are closed here).
RunResult run_cli(const std::vector<std::string>& args, const std::string& dir,
                  std::chrono::milliseconds limit = 120s,
                  const std::function<void(pid_t, const std::string&)>& watch = {},
                  std::optional<Terminal> terminal = std::nullopt) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(terminal ? terminal->slave : err[1], 2);
    ::setenv("SHMLINK_DIR", dir.c_str(), 1);
    std::string exe = SHMLINK_CLI_PATH;
    std::vector<std::string> copy = args;
    std::vector<char*> argv{exe.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  if (terminal) {  // read the terminal instead; it reports EIO once the CLI and its children closed it
    ::close(err[0]);
    ::close(terminal->slave);
    err[0] = terminal->master;
  }
  RunResult r;
  r.pid = pid;
  std::array<int, 2> fds{out[0], err[0]};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  bool killed = false;
  while (fds[0] >= 0 || fds[1] >= 0) {
    std::array<pollfd, 2> p{{{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}}};
    if (::poll(p.data(), p.size(), 100) < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i].fd < 0 || (p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(p[i].fd, buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
        if (watch) watch(pid, r.err);
      } else {
        ::close(p[i].fd);
        fds[i] = -1;
      }
    }
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

/// A private stream directory under /dev/shm, removed at the end.
class ScratchStreamDir {
 public:
  ScratchStreamDir() {
    std::string tmpl = "/dev/shm/shmlink-bench-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~ScratchStreamDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchStreamDir(const ScratchStreamDir&) = delete;
  ScratchStreamDir& operator=(const ScratchStreamDir&) = delete;
  /// The directory.
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Entries left in it.
  [[nodiscard]] int entries() const {
    int n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(path_)) ++n;
    return n;
  }

 private:
  std::string path_;
};

/// `a / b` equals `ratio` up to rounding.
void expect_ratio(const json& ratio, double a, double b, const std::string& what) {
  ASSERT_TRUE(ratio.is_number()) << what;
  ASSERT_GT(b, 0) << what;
  const double want = a / b;
  EXPECT_GT(ratio.get<double>(), 0) << what;
  EXPECT_NEAR(ratio.get<double>(), want, 1e-9 * std::max(1.0, want)) << what;
}

TEST(BenchCli, QuickJsonRunFollowsTheDocumentedSchema) {
  ScratchStreamDir dir;
  const RunResult r = run_cli({"bench", "stream", "--quick", "--json"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);

  EXPECT_EQ(doc.at("schema_version"), 1);
  EXPECT_EQ(doc.at("schema"), "shmlink-bench-stream/1");
  const json& m = doc.at("machine");
  EXPECT_TRUE(m.at("cpu_model").is_string());
  EXPECT_GE(m.at("cores_online").get<int>(), 1);
  EXPECT_TRUE(m.at("cpus_allowed").is_array());
  EXPECT_TRUE(m.at("kernel").is_string());
  EXPECT_TRUE(m.at("virtual_machine").is_boolean());
  EXPECT_TRUE(m.at("clocksource").is_string());
  const bool pinned = m.at("pinned_cores").is_array();
  if (pinned) {
    EXPECT_EQ(m.at("pinned_cores").size(), 2u);
    EXPECT_NE(m.at("pinned_cores")[0], m.at("pinned_cores")[1]);
  } else {
    EXPECT_TRUE(m.at("pinned_cores").is_null());
  }
  const json& c = doc.at("config");
  EXPECT_EQ(c.at("quick"), true);
  EXPECT_GT(c.at("samples").get<int>(), 0);
  EXPECT_TRUE(c.at("frame_sizes").is_array());
  EXPECT_TRUE(c.at("post_semaphores").is_boolean());

  // Latency: every mode once, floors and candidates with their floor, consistent numbers.
  const std::map<std::string, std::string> floor_of = {
      {"cacheline", ""}, {"cacheline_payload", ""}, {"futex_raw", ""}, {"pipe", ""}, {"spin", "cacheline"},
      {"hybrid", "cacheline"}, {"futex", "futex_raw"}, {"semaphore", "futex_raw"}};
  const std::map<std::string, double> targets = {{"spin", 1.5}, {"futex", 1.1}};
  std::map<std::string, json> by_mode;
  for (const json& e : doc.at("latency")) by_mode[e.at("mode").get<std::string>()] = e;
  ASSERT_EQ(by_mode.size(), floor_of.size());
  ASSERT_EQ(doc.at("latency").size(), floor_of.size());
  for (const auto& [mode, floor] : floor_of) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(by_mode.count(mode));
    const json& e = by_mode[mode];
    EXPECT_EQ(e.at("kind"), floor.empty() ? "floor" : "candidate");
    if (floor.empty()) {
      EXPECT_TRUE(e.at("floor").is_null());
      EXPECT_TRUE(e.at("ratio_p50").is_null());
      EXPECT_TRUE(e.at("ratio_p99").is_null());
      EXPECT_TRUE(e.at("target").is_null());
    } else {
      EXPECT_EQ(e.at("floor"), floor);
    }
    EXPECT_TRUE(e.at("description").is_string());
    if (!e.at("skipped").is_null()) {
      // Only the spinning modes may be skipped, and only when there is one CPU.
      EXPECT_FALSE(pinned);
      EXPECT_TRUE(mode == "cacheline" || mode == "cacheline_payload" || mode == "spin");
      EXPECT_TRUE(e.at("one_way_ns").is_null());
      continue;
    }
    EXPECT_GT(e.at("samples").get<int>(), 0);
    EXPECT_GT(e.at("runs").get<int>(), 0);
    const json& p = e.at("one_way_ns");
    const std::vector<double> ordered = {p.at("min"), p.at("p50"), p.at("p90"), p.at("p99"), p.at("p999"), p.at("max")};
    EXPECT_GT(ordered.front(), 0);
    for (std::size_t i = 1; i < ordered.size(); ++i) EXPECT_LE(ordered[i - 1], ordered[i]) << "percentile " << i;
    const json& cpu = e.at("cpu_ns_per_message");
    EXPECT_GE(cpu.at("initiator").get<double>(), 0);
    EXPECT_GE(cpu.at("responder").get<double>(), 0);
    EXPECT_NEAR(cpu.at("total").get<double>(), cpu.at("initiator").get<double>() + cpu.at("responder").get<double>(),
                1e-6 * std::max(1.0, cpu.at("total").get<double>()));
    EXPECT_GE(e.at("involuntary_switches").get<std::int64_t>(), 0);
    if (!floor.empty() && by_mode[floor].at("skipped").is_null()) {
      const json& f = by_mode[floor].at("one_way_ns");
      expect_ratio(e.at("ratio_p50"), p.at("p50"), f.at("p50"), "ratio_p50");
      expect_ratio(e.at("ratio_p99"), p.at("p99"), f.at("p99"), "ratio_p99");
      expect_ratio(e.at("ratio_p999"), p.at("p999"), f.at("p999"), "ratio_p999");
    }
    if (mode != "pipe") {
      expect_ratio(e.at("ratio_vs_pipe_p50"), p.at("p50"), by_mode["pipe"].at("one_way_ns").at("p50"), "vs pipe");
    }
    if (targets.count(mode) && e.at("ratio_p50").is_number()) {
      EXPECT_EQ(e.at("target").get<double>(), targets.at(mode));
      EXPECT_EQ(e.at("meets_target").get<bool>(), e.at("ratio_p50").get<double>() <= targets.at(mode));
    } else if (!targets.count(mode)) {
      EXPECT_TRUE(e.at("target").is_null());
      EXPECT_TRUE(e.at("meets_target").is_null());
    }
  }

  // Bandwidth: one entry per configured size, in order, ratios against memcpy.
  const json& sizes = c.at("frame_sizes");
  const json& bw = doc.at("bandwidth");
  ASSERT_EQ(bw.size(), sizes.size());
  for (std::size_t i = 0; i < bw.size(); ++i) {
    const json& e = bw[i];
    SCOPED_TRACE(e.dump());
    EXPECT_EQ(e.at("frame_bytes"), sizes[i]);
    const double memcpy_gbps = e.at("memcpy_gb_per_s");
    for (const char* k : {"memcpy_gb_per_s", "memcpy_chain_gb_per_s", "write_gb_per_s", "read_copy_gb_per_s",
                          "write_read_gb_per_s"})
      EXPECT_GT(e.at(k).get<double>(), 0) << k;
    expect_ratio(e.at("ratio_write"), e.at("write_gb_per_s"), memcpy_gbps, "ratio_write");
    expect_ratio(e.at("ratio_read_copy"), e.at("read_copy_gb_per_s"), memcpy_gbps, "ratio_read_copy");
    expect_ratio(e.at("ratio_write_read"), e.at("write_read_gb_per_s"), memcpy_gbps, "ratio_write_read");
    expect_ratio(e.at("ratio_write_read_vs_chain"), e.at("write_read_gb_per_s"), e.at("memcpy_chain_gb_per_s"),
                 "ratio_write_read_vs_chain");
    // write+read moves every byte twice: its rate counts 2 * frame_bytes per frame.
    const json& ns = e.at("ns_per_frame");
    const double s = e.at("frame_bytes").get<double>();
    EXPECT_NEAR(e.at("write_read_gb_per_s").get<double>(), 2 * s / ns.at("write_read").get<double>(), 1e-9 * s);
    EXPECT_NEAR(memcpy_gbps, s / ns.at("memcpy").get<double>(), 1e-9 * s);
    EXPECT_NEAR(e.at("memcpy_chain_gb_per_s").get<double>(), 2 * s / ns.at("memcpy_chain").get<double>(), 1e-9 * s);
    if (e.at("frame_bytes").get<std::size_t>() >= (std::size_t{4} << 20)) {
      EXPECT_EQ(e.at("target").get<double>(), 0.8);
      EXPECT_EQ(e.at("meets_target").get<bool>(), e.at("ratio_write_read").get<double>() >= 0.8);
    } else {
      EXPECT_TRUE(e.at("target").is_null());
    }
  }

  const json& w = doc.at("write_cost");
  EXPECT_EQ(w.at("frame_bytes"), 64);
  for (const char* k : {"raw_publish_ns", "write_ns", "write_post_semaphores_ns", "syscall_ns", "clock_gettime_ns"})
    EXPECT_GT(w.at(k).get<double>(), 0) << k;
  expect_ratio(w.at("ratio_write"), w.at("write_ns"), w.at("raw_publish_ns"), "write_cost ratio_write");
  expect_ratio(w.at("ratio_write_post_semaphores"), w.at("write_post_semaphores_ns"), w.at("raw_publish_ns"),
               "write_cost ratio_write_post_semaphores");
  EXPECT_EQ(w.at("target"), "no_syscall");
  EXPECT_TRUE(w.at("meets_target").is_boolean());

  EXPECT_TRUE(doc.at("load").is_object());
  for (const json& n : doc.at("notes")) EXPECT_TRUE(n.is_string());
  EXPECT_EQ(dir.entries(), 0) << "the benchmark left files in the stream directory";
}

TEST(BenchCli, BadCoresOrSizesAreUsageErrors) {
  ScratchStreamDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "stream", "--cores", "0,0"},
        std::vector<std::string>{"bench", "stream", "--cores", "zero"},
        std::vector<std::string>{"bench", "stream", "--cores", "0,100000"},
        std::vector<std::string>{"bench", "stream", "--sizes", "4K,lots"},
        std::vector<std::string>{"bench", "stream", "--samples", "0"},
        std::vector<std::string>{"bench"}}) {
    const RunResult r = run_cli(args, dir.path(), 30s);
    EXPECT_EQ(r.code, 2) << args.back() << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(dir.entries(), 0);
}

TEST(BenchCli, ProgressShowsOnOneLineWhenStderrIsATerminal) {
  ScratchStreamDir dir;
  Terminal tty;
  ASSERT_EQ(::openpty(&tty.master, &tty.slave, nullptr, nullptr, nullptr), 0) << std::strerror(errno);
  const RunResult r = run_cli({"bench", "stream", "--json", "--rounds", "1", "--samples", "8", "--warmup", "0",
                               "--sizes", "4K"},
                              dir.path(), 60s, {}, tty);
  EXPECT_EQ(r.code, 0) << r.err;
  // Each step rewrites the one line (carriage return, erase line), and the line is erased at the
  // end. The steps add no line of their own: the newlines there may be are those of unrelated
  // log lines (a loaded machine may make the library warn), far fewer than the steps.
  const std::string step = "\r\x1b[Kshmlink bench: ";
  EXPECT_NE(r.err.find(step + "latency round 1/1: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(step + "bandwidth"), std::string::npos) << r.err;
  std::size_t steps = 0;
  for (std::size_t at = r.err.find(step); at != std::string::npos; at = r.err.find(step, at + 1)) ++steps;
  const auto newlines = static_cast<std::size_t>(std::count(r.err.begin(), r.err.end(), '\n'));
  EXPECT_GE(steps, 3u) << r.err;
  EXPECT_LT(newlines, steps / 2) << r.err;
  const std::size_t last = r.err.rfind(step);
  ASSERT_NE(last, std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\r\x1b[K", last + 1), std::string::npos) << "the last step was not erased: " << r.err;
  EXPECT_FALSE(json::parse(r.out, nullptr, false).is_discarded()) << r.out;
}

TEST(BenchCli, CtrlCPrintsTheRowsMeasuredSoFarAndExits130) {
  ScratchStreamDir dir;
  // A run far longer than the test: a thousand rounds of every latency mode, a round trip or two
  // each. --progress reports every step on stderr (a pipe here, not a terminal); once the second
  // round starts, every mode has completed a run, and SIGINT stops the bench.
  bool sent = false;
  const RunResult r = run_cli(
      {"bench", "stream", "--progress", "--json", "--rounds", "1000", "--samples", "2000", "--warmup", "0", "--sizes",
       "4K"},
      dir.path(), 60s, [&sent](pid_t pid, const std::string& err) {
        if (!sent && err.find("shmlink bench: latency round 2/1000: ") != std::string::npos) {
          sent = ::kill(pid, SIGINT) == 0;
        }
      });
  ASSERT_TRUE(sent) << "no progress line for round 2: " << r.err;
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_NE(r.err.find("shmlink bench: latency round 1/1000: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
  const json doc = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  EXPECT_EQ(doc.at("interrupted"), true);
  ASSERT_EQ(doc.at("latency").size(), 8u);
  for (const json& e : doc.at("latency")) {
    SCOPED_TRACE(e.at("mode").get<std::string>());
    if (!e.at("skipped").is_null()) continue;  // spinning modes on a one-CPU machine
    EXPECT_GE(e.at("runs").get<int>(), 1);      // round 1 completed every mode
    EXPECT_LT(e.at("runs").get<int>(), 1000);
    EXPECT_GT(e.at("samples").get<int>(), 0);
    EXPECT_TRUE(e.at("one_way_ns").is_object());
  }
  EXPECT_TRUE(doc.at("bandwidth").empty());
  EXPECT_TRUE(doc.at("write_cost").is_null());
  bool noted = false;
  for (const json& n : doc.at("notes")) noted = noted || n.get<std::string>().find("interrupted") != std::string::npos;
  EXPECT_TRUE(noted) << doc.at("notes").dump();
  EXPECT_EQ(dir.entries(), 0) << "the benchmark left files in the stream directory";

  // The text report prints the same rows.
  sent = false;
  const RunResult text = run_cli(
      {"bench", "stream", "--progress", "--rounds", "1000", "--samples", "2000", "--warmup", "0", "--sizes", "4K"},
      dir.path(), 60s, [&sent](pid_t pid, const std::string& err) {
        if (!sent && err.find("latency round 2/1000: ") != std::string::npos) sent = ::kill(pid, SIGINT) == 0;
      });
  ASSERT_TRUE(sent) << text.err;
  EXPECT_EQ(text.code, 130) << text.err;
  EXPECT_NE(text.out.find("One-way latency"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("futex_raw"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("interrupted"), std::string::npos) << text.out;
}

// ---- bench queue -------------------------------------------------------------------------------

/// A number that is finite and > 0.
void expect_positive(const json& v, const std::string& what) {
  ASSERT_TRUE(v.is_number()) << what << ": " << v.dump();
  EXPECT_TRUE(std::isfinite(v.get<double>())) << what;
  EXPECT_GT(v.get<double>(), 0) << what;
}

/// `ratio` is shmlink / peer with its `ahead` flag (below 1 for latency, above 1 for throughput),
/// or both null when a side is missing.
void expect_comparison(const json& e, const char* ratio_key, const char* ahead_key, const json& ours,
                       const json& theirs, bool lower) {
  SCOPED_TRACE(ratio_key);
  if (!ours.is_number() || !theirs.is_number()) {
    EXPECT_TRUE(e.at(ratio_key).is_null());
    EXPECT_TRUE(e.at(ahead_key).is_null());
    return;
  }
  expect_ratio(e.at(ratio_key), ours.get<double>(), theirs.get<double>(), ratio_key);
  const double r = e.at(ratio_key).get<double>();
  EXPECT_EQ(e.at(ahead_key).get<bool>(), lower ? r < 1.0 : r > 1.0);
}

TEST(BenchCli, QueueQuickJsonRunFollowsTheDocumentedSchema) {
  ScratchStreamDir dir;
  const RunResult r = run_cli({"bench", "queue", "--quick", "--json"}, dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);

  EXPECT_EQ(doc.at("schema_version"), 1);
  EXPECT_EQ(doc.at("schema"), "shmlink-bench-queue/1");
  EXPECT_TRUE(doc.at("shmlink_version").is_string());
  const json& m = doc.at("machine");
  for (const char* k : {"cpu_model", "kernel", "clocksource"}) EXPECT_TRUE(m.at(k).is_string()) << k;
  EXPECT_TRUE(m.at("cpus_allowed").is_array());
  const bool pinned = m.at("pinned_cores").is_array();
  if (pinned) {
    EXPECT_NE(m.at("pinned_cores")[0], m.at("pinned_cores")[1]);
  }

  const json& c = doc.at("config");
  EXPECT_EQ(c.at("quick"), true);
  EXPECT_EQ(c.at("values"), 8);
  EXPECT_EQ(c.at("message_bytes"), 32 + 8 * 8);
  EXPECT_EQ(c.at("queue_cell_bytes"), 128);
  EXPECT_EQ(c.at("batch"), 32);
  EXPECT_EQ(c.at("capacity"), 1024);
  EXPECT_GT(c.at("samples").get<int>(), 0);
  EXPECT_GT(c.at("throughput_samples").get<int>(), 0);
  EXPECT_GT(c.at("rounds").get<int>(), 0);

  // Latency: every mode once, in the documented order, ratios against the cacheline floor.
  const std::vector<std::pair<std::string, std::string>> modes = {
      {"cacheline", "floor"},      {"cacheline_message", "reference"}, {"futex_raw", "floor"},
      {"spsc_polling", "shmlink"}, {"spsc_hybrid", "shmlink"},         {"spsc_futex", "shmlink"},
      {"mpmc_polling", "shmlink"}, {"mpmc_futex", "shmlink"},          {"pipe", "peer"},
      {"unix_socket", "peer"},     {"boost_mq", "peer"},               {"zmq_ipc", "peer"}};
  const json& lat = doc.at("latency");
  ASSERT_EQ(lat.size(), modes.size());
  std::map<std::string, json> by_mode;
  for (std::size_t i = 0; i < modes.size(); ++i) {
    const json& e = lat[i];
    const auto& [mode, kind] = modes[i];
    SCOPED_TRACE(mode);
    EXPECT_EQ(e.at("mode"), mode);
    EXPECT_EQ(e.at("kind"), kind);
    EXPECT_TRUE(e.at("description").is_string());
    by_mode[mode] = e;
    if (!e.at("skipped").is_null()) {
      // Only the spinning modes may be skipped, and only when there is one CPU.
      EXPECT_FALSE(pinned);
      EXPECT_TRUE(mode == "cacheline" || mode == "cacheline_message" || mode.ends_with("_polling"));
      EXPECT_TRUE(e.at("one_way_ns").is_null());
      continue;
    }
    EXPECT_GT(e.at("samples").get<int>(), 0);
    EXPECT_GT(e.at("runs").get<int>(), 0);
    EXPECT_EQ(e.at("message_bytes"), mode == "cacheline" ? 8 : mode == "futex_raw" ? 4 : 96);
    const json& p = e.at("one_way_ns");
    expect_positive(p.at("p50"), "p50");
    const std::vector<double> ordered = {p.at("min"), p.at("p50"), p.at("p90"), p.at("p99"), p.at("p999"), p.at("max")};
    for (std::size_t k = 1; k < ordered.size(); ++k) EXPECT_LE(ordered[k - 1], ordered[k]) << "percentile " << k;
    const json& cpu = e.at("cpu_ns_per_message");
    EXPECT_GE(cpu.at("initiator").get<double>(), 0);
    EXPECT_GE(cpu.at("responder").get<double>(), 0);
    EXPECT_GE(e.at("involuntary_switches").get<std::int64_t>(), 0);
  }
  const bool have_floor = by_mode["cacheline"].at("skipped").is_null();
  for (const auto& [mode, kind] : modes) {
    SCOPED_TRACE(mode);
    const json& e = by_mode[mode];
    if (kind == "floor") {
      EXPECT_TRUE(e.at("floor").is_null());
      EXPECT_TRUE(e.at("ratio_p50").is_null());
      EXPECT_TRUE(e.at("ratio_vs_futex_raw_p50").is_null());
    } else {
      EXPECT_EQ(e.at("floor"), "cacheline");
      for (const char* k : {"ratio_p50", "ratio_p99", "ratio_p999", "ratio_vs_futex_raw_p50"}) EXPECT_TRUE(e.contains(k)) << k;
      if (have_floor && e.at("skipped").is_null()) {
        const json& f = by_mode["cacheline"].at("one_way_ns");
        const json& p = e.at("one_way_ns");
        expect_ratio(e.at("ratio_p50"), p.at("p50"), f.at("p50"), "ratio_p50");
        expect_ratio(e.at("ratio_p99"), p.at("p99"), f.at("p99"), "ratio_p99");
        expect_ratio(e.at("ratio_p999"), p.at("p999"), f.at("p999"), "ratio_p999");
        expect_ratio(e.at("ratio_vs_futex_raw_p50"), p.at("p50"), by_mode["futex_raw"].at("one_way_ns").at("p50"),
                     "ratio_vs_futex_raw_p50");
      }
    }
    if (mode == "spsc_polling" && e.at("ratio_p50").is_number()) {
      EXPECT_EQ(e.at("target").get<double>(), 1.5);
      EXPECT_EQ(e.at("meets_target").get<bool>(), e.at("ratio_p50").get<double>() <= 1.5);
    } else if (mode != "spsc_polling") {
      EXPECT_TRUE(e.at("target").is_null());
      EXPECT_TRUE(e.at("meets_target").is_null());
    }
  }

  // Throughput: every mode once, in order, with a positive rate.
  const std::vector<std::string> tp_modes = {
      "spsc_single", "spsc_bulk", "mpmc_single", "mpmc_bulk", "pipe_single", "pipe_batch", "unix_socket_single",
      "unix_socket_batch", "boost_mq_single", "boost_mq_batch", "zmq_ipc_single", "zmq_ipc_batch"};
  const json& tp = doc.at("throughput");
  ASSERT_EQ(tp.size(), tp_modes.size());
  std::map<std::string, json> tp_by_mode;
  for (std::size_t i = 0; i < tp_modes.size(); ++i) {
    const json& e = tp[i];
    const std::string& mode = tp_modes[i];
    SCOPED_TRACE(mode);
    tp_by_mode[mode] = e;
    EXPECT_EQ(e.at("mode"), mode);
    EXPECT_EQ(e.at("kind"), mode.starts_with("spsc") || mode.starts_with("mpmc") ? "shmlink" : "peer");
    EXPECT_EQ(e.at("batch"), mode.ends_with("_single") ? 1 : 32);
    EXPECT_GT(e.at("samples").get<int>(), 0);
    EXPECT_GT(e.at("runs").get<int>(), 0);
    expect_positive(e.at("samples_per_s"), "samples_per_s");
    EXPECT_LE(e.at("samples_per_s_min").get<double>(), e.at("samples_per_s").get<double>());
    EXPECT_GE(e.at("samples_per_s_max").get<double>(), e.at("samples_per_s").get<double>());
    EXPECT_NEAR(e.at("mb_per_s").get<double>(), e.at("samples_per_s").get<double>() * 96 / 1e6,
                1e-9 * e.at("mb_per_s").get<double>());
    EXPECT_GE(e.at("cpu_ns_per_sample").at("total").get<double>(), 0);
  }

  // Comparison: shmlink's best against each peer, ratios and flags consistent with the numbers.
  const json& cmp = doc.at("comparison");
  for (const char* k : {"best_latency_mode", "best_sleeping_latency_mode", "best_throughput_mode",
                        "best_single_throughput_mode", "best_bulk_throughput_mode"})
    EXPECT_TRUE(cmp.at(k).is_string()) << k;
  double best_tp = 0;
  for (const char* m2 : {"spsc_single", "spsc_bulk", "mpmc_single", "mpmc_bulk"})
    best_tp = std::max(best_tp, tp_by_mode[m2].at("samples_per_s").get<double>());
  EXPECT_EQ(cmp.at("best_samples_per_s").get<double>(), best_tp);
  const std::vector<std::string> peers = {"pipe", "unix_socket", "boost_mq", "zmq_ipc"};
  ASSERT_EQ(cmp.at("peers").size(), peers.size());
  bool all_ahead = true;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const json& e = cmp.at("peers")[i];
    SCOPED_TRACE(peers[i]);
    EXPECT_EQ(e.at("peer"), peers[i]);
    EXPECT_EQ(e.at("latency_p50_ns"), by_mode[peers[i]].at("one_way_ns").at("p50"));
    const double single = tp_by_mode[peers[i] + "_single"].at("samples_per_s");
    const double batch = tp_by_mode[peers[i] + "_batch"].at("samples_per_s");
    EXPECT_EQ(e.at("samples_per_s").get<double>(), std::max(single, batch));
    expect_comparison(e, "latency_ratio", "latency_ahead", cmp.at("best_latency_p50_ns"), e.at("latency_p50_ns"), true);
    expect_comparison(e, "sleeping_latency_ratio", "sleeping_latency_ahead", cmp.at("best_sleeping_latency_p50_ns"),
                      e.at("latency_p50_ns"), true);
    expect_comparison(e, "throughput_ratio", "throughput_ahead", cmp.at("best_samples_per_s"), e.at("samples_per_s"),
                      false);
    expect_comparison(e, "single_throughput_ratio", "single_throughput_ahead", cmp.at("best_single_samples_per_s"),
                      e.at("single_samples_per_s"), false);
    expect_comparison(e, "batch_throughput_ratio", "batch_throughput_ahead", cmp.at("best_bulk_samples_per_s"),
                      e.at("batch_samples_per_s"), false);
    all_ahead = all_ahead && e.at("latency_ahead").get<bool>() && e.at("throughput_ahead").get<bool>();
  }
  EXPECT_EQ(cmp.at("ahead_of_all").get<bool>(), all_ahead);

  EXPECT_TRUE(doc.at("load").is_object());
  for (const json& n : doc.at("notes")) EXPECT_TRUE(n.is_string());
  // Queue files and ipc:// sockets lived in the scratch directory; the message queues in /dev/shm.
  EXPECT_EQ(dir.entries(), 0) << "the benchmark left files in the stream directory";
  for (const char* q : {"ping", "pong", "tp"}) {
    const std::string mq = "/dev/shm/shmlink-bench-" + std::to_string(r.pid) + "-" + q;
    EXPECT_FALSE(fs::exists(mq)) << mq << " was left behind";
  }
}

TEST(BenchCli, QueueBadOptionsAreUsageErrors) {
  ScratchStreamDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "queue", "--cores", "0,0"},
        std::vector<std::string>{"bench", "queue", "--capacity", "1000"},
        std::vector<std::string>{"bench", "queue", "--batch", "0"},
        std::vector<std::string>{"bench", "queue", "--batch", "2048", "--capacity", "1024"},
        std::vector<std::string>{"bench", "queue", "--values", "0"},
        std::vector<std::string>{"bench", "queue", "--samples", "0"}}) {
    const RunResult r = run_cli(args, dir.path(), 30s);
    EXPECT_EQ(r.code, 2) << args[2] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(dir.entries(), 0);
}

// ---- bench bridge ------------------------------------------------------------------------------

/// A {"min", "p50", "p90", "p99", "p999", "max"} object of ns, ordered.
void expect_percentiles(const json& p, const char* what) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(p.is_object()) << p.dump();
  double prev = 0;
  for (const char* k : {"min", "p50", "p90", "p99", "p999", "max"}) {
    ASSERT_TRUE(p.at(k).is_number()) << k;
    EXPECT_GE(p.at(k).get<double>(), prev) << k;
    prev = p.at(k).get<double>();
  }
}

TEST(BenchCli, BridgeJsonRunReportsLatencyRatesCpuAndDuplicates) {
  ScratchStreamDir dir;
  const RunResult r = run_cli({"bench", "bridge", "--sizes", "1k", "--frames", "200", "--warmup", "5", "--duration",
                               "0.05", "--json"},
                              dir.path(), 60s);
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc.at("schema_version"), 1);
  EXPECT_EQ(doc.at("schema"), "shmlink-bench-bridge/1");
  EXPECT_EQ(doc.at("config").at("frame_sizes"), json::array({1024}));
  EXPECT_EQ(doc.at("config").at("frames"), 200);
  const json& idle = doc.at("idle");
  EXPECT_GT(idle.at("seconds").get<double>(), 0);
  for (const char* k : {"owner_cpu", "replica_cpu"}) EXPECT_GE(idle.at(k).get<double>(), 0) << k;
  EXPECT_EQ(idle.at("meets_target").get<bool>(),
            idle.at("owner_cpu").get<double>() + idle.at("replica_cpu").get<double>() <= idle.at("target").get<double>());

  ASSERT_EQ(doc.at("sizes").size(), 1U);
  const json& s = doc.at("sizes")[0];
  EXPECT_EQ(s.at("frame_bytes"), 1024);
  const json& lat = s.at("latency");
  EXPECT_EQ(lat.at("samples"), 200);
  for (const char* k : {"service_ns", "reader_ns", "zmq_ns", "local_hop_ns"}) expect_percentiles(lat.at(k), k);
  // The reader is woken after the replica's publication.
  EXPECT_LE(lat.at("service_ns").at("min").get<double>(), lat.at("reader_ns").at("max").get<double>());
  const double ref50 = lat.at("zmq_ns").at("p50").get<double>() + lat.at("local_hop_ns").at("p50").get<double>();
  EXPECT_DOUBLE_EQ(lat.at("reference_p50_ns").get<double>(), ref50);
  expect_ratio(lat.at("ratio_p50"), lat.at("reader_ns").at("p50").get<double>(), ref50, "ratio_p50");
  EXPECT_EQ(lat.at("meets_target").get<bool>(), lat.at("ratio_p50").get<double>() <= lat.at("target").get<double>());

  const json& tp = s.at("throughput");
  expect_positive(tp.at("zmq_frames_per_s"), "zmq_frames_per_s");
  EXPECT_DOUBLE_EQ(tp.at("zmq_mb_per_s").get<double>(), tp.at("zmq_frames_per_s").get<double>() * 1024 / 1e6);
  ASSERT_FALSE(tp.at("steps").empty());
  double best = 0;
  for (const json& st : tp.at("steps")) {
    const auto written = st.at("written").get<std::uint64_t>();
    const auto published = st.at("published").get<std::uint64_t>();
    ASSERT_GT(written, 0U) << st.dump();
    EXPECT_LE(published, written) << "a step published more frames than were written: " << st.dump();
    EXPECT_NEAR(st.at("skipped_fraction").get<double>(), 1.0 - static_cast<double>(published) / static_cast<double>(written),
                1e-12);
    EXPECT_EQ(st.at("passed").get<bool>(), st.at("skipped_fraction").get<double>() <= 0.01);
    if (st.at("passed").get<bool>()) best = std::max(best, st.at("offered_frames_per_s").get<double>());
  }
  if (best > 0) {
    EXPECT_DOUBLE_EQ(tp.at("max_frames_per_s").get<double>(), best);
    EXPECT_DOUBLE_EQ(tp.at("mb_per_s").get<double>(), best * 1024 / 1e6);
    expect_ratio(tp.at("ratio_vs_zmq"), best, tp.at("zmq_frames_per_s").get<double>(), "ratio_vs_zmq");
    ASSERT_TRUE(tp.at("busy_cpu").is_object());
  } else {
    EXPECT_TRUE(tp.at("max_frames_per_s").is_null());
    EXPECT_TRUE(tp.at("meets_target").is_null());
  }

  // Every timed and untimed latency frame is a distinct source frame the replica published once.
  const json& d = s.at("duplicates");
  EXPECT_GE(d.at("source_frames").get<std::uint64_t>(), 205U);
  EXPECT_GE(d.at("distinct_published").get<std::uint64_t>(), 205U);
  EXPECT_LE(d.at("distinct_published").get<std::uint64_t>(), d.at("source_frames").get<std::uint64_t>());
  EXPECT_EQ(d.at("replica_publications"), d.at("distinct_published"));
  EXPECT_EQ(d.at("duplicates"), 0);
  EXPECT_TRUE(d.at("meets_target").get<bool>());
  EXPECT_EQ(dir.entries(), 0) << "the benchmark left files in the stream directory";
}

TEST(BenchCli, BridgeBadOptionsAreUsageErrors) {
  ScratchStreamDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "bridge", "--sizes", "8"},
        std::vector<std::string>{"bench", "bridge", "--sizes", "1K,lots"},
        std::vector<std::string>{"bench", "bridge", "--frames", "0"},
        std::vector<std::string>{"bench", "bridge", "--duration", "0"}}) {
    const RunResult r = run_cli(args, dir.path(), 30s);
    EXPECT_EQ(r.code, 2) << args[3] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    // A frame too small for the stamp is refused by `bench bridge` itself, saying why.
    if (args[3] == "8") {
      EXPECT_NE(r.err.find("a frame of 8 bytes cannot carry"), std::string::npos) << r.err;
    }
  }
  EXPECT_EQ(dir.entries(), 0);
}

// ---- memif bench -------------------------------------------------------------------------------

/// Checks a {"min", "median", "max"} spread: all null, or ordered numbers.
void expect_spread(const json& sp, const char* what) {
  SCOPED_TRACE(what);
  if (sp.at("median").is_null()) {
    EXPECT_TRUE(sp.at("min").is_null() && sp.at("max").is_null()) << sp.dump();
    return;
  }
  EXPECT_LE(sp.at("min").get<double>(), sp.at("median").get<double>()) << sp.dump();
  EXPECT_LE(sp.at("median").get<double>(), sp.at("max").get<double>()) << sp.dump();
}

/// Checks one `memif bench` document: every (size, direction, pairing) case once, rates and
/// Gbit/s consistent, each DPDK ratio the quotient over the DPDK <-> DPDK case of the same
/// direction and size, each reference ratio a median of per-round ratios with its spread, the
/// target only on shmlink <-> shmlink at 64 B, judged against the reference (never the speed
/// itself). `dpdk`: whether DPDK cases ran.
void check_memif_doc(const json& doc, const std::vector<std::uint32_t>& sizes, bool dpdk) {
  EXPECT_EQ(doc.at("schema"), "shmlink-bench-memif/2");
  EXPECT_TRUE(doc.at("machine").at("cpu_model").is_string());
  const json& cfg = doc.at("config");
  EXPECT_NE(cfg.at("sender_cpu"), cfg.at("receiver_cpu"));
  EXPECT_EQ(cfg.at("log2_ring_size"), 10);
  EXPECT_EQ(cfg.at("buffer_size"), 2048);
  EXPECT_EQ(cfg.at("dpdk").is_string(), dpdk);
  const json& load = doc.at("load");
  EXPECT_TRUE(load.at("loadavg_before").is_array() && load.at("loadavg_after").is_array()) << load.dump();
  EXPECT_TRUE(load.at("busy").is_boolean() || load.at("busy").is_null()) << load.dump();
  const json& cases = doc.at("cases");
  ASSERT_EQ(cases.size(), sizes.size() * 10);
  std::set<std::string> seen;
  // packets/s of the DPDK -> DPDK case per (direction, size).
  std::map<std::pair<std::string, std::uint32_t>, double> reference;
  for (const json& c : cases)
    if (c.at("sender").at("impl") == "dpdk" && c.at("receiver").at("impl") == "dpdk" && c.at("packets_per_s").is_number())
      reference[{c.at("direction").get<std::string>(), c.at("frame_bytes").get<std::uint32_t>()}] =
          c.at("packets_per_s").get<double>();
  for (const json& c : cases) {
    const std::string snd = c.at("sender").at("impl").get<std::string>();
    const std::string rcv = c.at("receiver").at("impl").get<std::string>();
    const std::string dir = c.at("direction").get<std::string>();
    const auto size = c.at("frame_bytes").get<std::uint32_t>();
    const std::string what = snd + "->" + rcv + " " + dir + " " + std::to_string(size);
    SCOPED_TRACE(what);
    EXPECT_TRUE(seen.insert(what).second) << "duplicate case";
    EXPECT_NE(std::find(sizes.begin(), sizes.end(), size), sizes.end());
    // Roles follow the direction: the slave sends on S2M rings, the master on M2S rings.
    EXPECT_EQ(c.at("sender").at("role"), dir == "s2m" ? "slave" : "master");
    EXPECT_EQ(c.at("receiver").at("role"), dir == "s2m" ? "master" : "slave");
    EXPECT_EQ(c.at("runs").get<std::size_t>(), c.at("runs_ok").get<std::size_t>() + c.at("errors").size());
    const bool uses_dpdk = snd == "dpdk" || rcv == "dpdk";
    if (uses_dpdk && !dpdk) {
      EXPECT_TRUE(c.at("skipped").is_string());
      EXPECT_TRUE(c.at("packets_per_s").is_null());
      continue;
    }
    ASSERT_TRUE(c.at("skipped").is_null());
    ASSERT_TRUE(c.at("errors").empty()) << c.at("errors").dump();
    expect_positive(c.at("packets_per_s"), "packets_per_s");
    const double pps = c.at("packets_per_s").get<double>();
    expect_spread(c.at("packets_per_s_spread"), "packets_per_s_spread");
    EXPECT_EQ(c.at("packets_per_s_spread").at("median").get<double>(), pps);
    // The reference pairs only with itself; every other case that ran has a ratio to it.
    EXPECT_EQ(snd == "reference", rcv == "reference");
    expect_spread(c.at("ratio_vs_reference_spread"), "ratio_vs_reference_spread");
    EXPECT_EQ(c.at("ratio_vs_reference"), c.at("ratio_vs_reference_spread").at("median"));
    if (snd == "reference")
      EXPECT_TRUE(c.at("ratio_vs_reference").is_null());
    else
      expect_positive(c.at("ratio_vs_reference"), "ratio_vs_reference");
    EXPECT_NEAR(c.at("gbit_per_s").get<double>(), pps * size * 8 / 1e9, 1e-9 * pps);
    const auto ref = reference.find({dir, size});
    if (snd == "dpdk" && rcv == "dpdk") {
      EXPECT_TRUE(c.at("ratio_vs_dpdk").is_null());
    } else if (ref == reference.end()) {
      EXPECT_TRUE(c.at("ratio_vs_dpdk").is_null());
    } else {
      expect_ratio(c.at("ratio_vs_dpdk"), pps, ref->second, "ratio_vs_dpdk");
    }
    const bool targeted = snd == "shmlink" && rcv == "shmlink" && size == 64;
    EXPECT_EQ(c.at("target").is_number(), targeted);
    // Judged on both the reference and, where testpmd ran, DPDK's PMD.
    if (targeted && c.at("ratio_vs_reference").is_number())
      EXPECT_EQ(c.at("meets_target").get<bool>(),
                c.at("ratio_vs_reference").get<double>() >= 1.0 &&
                    (c.at("ratio_vs_dpdk").is_null() || c.at("ratio_vs_dpdk").get<double>() >= 1.0));
    else
      EXPECT_TRUE(c.at("meets_target").is_null());
  }
}

/// Also: the rounds alternate the order of the cases (odd rounds in reverse), so the reference
/// does not always run right before shmlink; the progress lines on stderr show the order.
TEST(BenchCli, QueueRegionRunReportsRegionRowsBesideTheFileOnesAndRemovesTheRegion) {
  ScratchStreamDir dir;
  // A region named without '/' lands in the stream directory as NAME.region.shm.
  const RunResult r = run_cli({"bench", "queue", "--quick", "--json", "--rounds", "1", "--samples", "300",
                               "--throughput-samples", "3000", "--region", "benchq"},
                              dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc.at("config").at("region"), dir.path() + "/benchq.region.shm");
  std::map<std::string, json> lat;
  for (const json& e : doc.at("latency")) lat[e.at("mode").get<std::string>()] = e;
  for (const char* mode : {"spsc_polling", "spsc_hybrid", "spsc_futex", "mpmc_polling", "mpmc_futex"}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(lat.count(mode));
    EXPECT_FALSE(lat[mode].contains("placement"));
    const std::string placed = std::string(mode) + "@region";
    ASSERT_TRUE(lat.count(placed));
    const json& e = lat[placed];
    EXPECT_EQ(e.at("placement"), "region");
    EXPECT_EQ(e.at("kind"), "shmlink");
    if (!e.at("skipped").is_null()) continue;  // a spinning mode on one CPU
    EXPECT_GT(e.at("runs").get<int>(), 0);
    expect_ratio(e.at("ratio_vs_file"), e.at("one_way_ns").at("p50"), lat[mode].at("one_way_ns").at("p50"),
                 "ratio_vs_file");
  }
  EXPECT_EQ(lat.count("pipe@region"), 0U) << "only shmlink modes run in the region";
  std::map<std::string, json> tp;
  for (const json& e : doc.at("throughput")) tp[e.at("mode").get<std::string>()] = e;
  for (const char* mode : {"spsc_single", "spsc_bulk", "mpmc_single", "mpmc_bulk"}) {
    SCOPED_TRACE(mode);
    const std::string placed = std::string(mode) + "@region";
    ASSERT_TRUE(tp.count(placed));
    EXPECT_EQ(tp[placed].at("placement"), "region");
    EXPECT_GT(tp[placed].at("runs").get<int>(), 0);
    expect_ratio(tp[placed].at("ratio_vs_file"), tp[placed].at("samples_per_s"), tp[mode].at("samples_per_s"),
                 "ratio_vs_file");
  }
  EXPECT_EQ(tp.size(), 12U + 4U);
  EXPECT_EQ(dir.entries(), 0) << "the region file (or a queue) was left in the stream directory";
}

TEST(BenchCli, StreamRegionRunReportsRegionRowsBesideTheFileOnes) {
  ScratchStreamDir dir;
  const RunResult r = run_cli({"bench", "stream", "--quick", "--json", "--rounds", "1", "--samples", "400",
                               "--sizes", "4K", "--region"},
                              dir.path());
  if (r.code != 0 && r.err.find("does not have yet") != std::string::npos)
    GTEST_SKIP() << "this build places no streams in regions yet: " << r.err;
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_TRUE(doc.at("config").at("region").is_string());
  std::map<std::string, json> lat;
  for (const json& e : doc.at("latency")) lat[e.at("mode").get<std::string>()] = e;
  EXPECT_EQ(lat.size(), 8U + 4U);
  for (const char* mode : {"spin", "hybrid", "futex", "semaphore"}) {
    SCOPED_TRACE(mode);
    const std::string placed = std::string(mode) + "@region";
    ASSERT_TRUE(lat.count(placed));
    const json& e = lat[placed];
    EXPECT_EQ(e.at("placement"), "region");
    EXPECT_EQ(e.at("kind"), "candidate");
    EXPECT_EQ(e.at("floor"), lat[mode].at("floor"));
    if (!e.at("skipped").is_null()) continue;  // spin on one CPU
    expect_ratio(e.at("ratio_vs_file_p50"), e.at("one_way_ns").at("p50"), lat[mode].at("one_way_ns").at("p50"),
                 "ratio_vs_file_p50");
  }
  EXPECT_EQ(dir.entries(), 0) << "the benchmark left files in the stream directory";
}

TEST(BenchCli, MemifShmlinkOnlyRunFollowsTheDocumentedSchema) {
  if (shmlink::test::allowed_cpus().size() < 2) GTEST_SKIP() << "memif bench needs two CPUs";
  ScratchStreamDir dir;
  const std::string saved = dir.path() + "/memif.json";
  const RunResult r = run_cli({"memif", "bench", "--no-testpmd", "--sizes", "64,9000", "--duration", "0.2",
                               "--warmup", "0.05", "--rounds", "2", "--save", saved},
                              dir.path(), 120s);
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(saved);
  const json doc = json::parse(in);
  check_memif_doc(doc, {64, 9000}, false);
  EXPECT_EQ(doc.at("config").at("dpdk_skipped"), "--no-testpmd");
  // Where the S2M reference and shmlink cases at 64 B stand in each round's progress lines.
  const auto at = [&](const std::string& round, const std::string& label) {
    const std::size_t start = r.err.find("round " + round + "/2:");
    const std::size_t end = r.err.find("round " + std::to_string(std::stoi(round) + 1) + "/2:");
    // As the bench prints it: the label padded to 38 columns, then the size in 5.
    const std::size_t pos = r.err.find(label + std::string(38 - label.size(), ' ') + "    64 B", start);
    return start != std::string::npos && pos < end ? pos : std::string::npos;
  };
  const std::string ref = "reference slave -> reference master", shm = "shmlink slave -> shmlink master";
  for (const char* round : {"1", "2"}) {
    ASSERT_NE(at(round, ref), std::string::npos) << round << "\n" << r.err;
    ASSERT_NE(at(round, shm), std::string::npos) << round << "\n" << r.err;
  }
  EXPECT_LT(at("1", ref), at("1", shm)) << r.err;
  EXPECT_GT(at("2", ref), at("2", shm)) << "round 2 ran in the same order as round 1\n" << r.err;
}

TEST(BenchCli, MemifRunAgainstTestpmdFollowsTheDocumentedSchema) {
  // Under ASan this repeats MemifShmlinkOnlyRun's shmlink ends and the interop tests' shmlink
  // against testpmd (both run under ASan) around uninstrumented testpmds, for many seconds.
  if (shmlink::test::kBuiltWithAsan) GTEST_SKIP() << "testpmd peers ASan cannot see; runs in the dev preset";
  if (shmlink::test::allowed_cpus().size() < 2) GTEST_SKIP() << "memif bench needs two CPUs";
  if (!shmlink::test::testpmd_available()) GTEST_SKIP() << shmlink::test::testpmd_unavailable_reason();
  ScratchStreamDir dir;
  // 1500-byte frames, one buffer each: DPDK 22.11's memif tx overruns the ring when a chain meets
  // its last free slot (docs/bench.md), which shmlink then rightly reports as a protocol error;
  // chains are covered by the shmlink-only run above and by the testpmd interop test.
  const RunResult r =
      run_cli({"memif", "bench", "--sizes", "1500", "--duration", "0.5", "--warmup", "0.1", "--rounds", "1", "--json"},
              dir.path(), 240s);
  ASSERT_EQ(r.code, 0) << r.err;
  check_memif_doc(json::parse(r.out), {1500}, true);
}

TEST(BenchCli, MemifBadOptionsAreUsageErrors) {
  ScratchStreamDir dir;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"memif", "bench", "--cores", "0,0"},
        std::vector<std::string>{"memif", "bench", "--cores", "0,100000"},
        std::vector<std::string>{"memif", "bench", "--sizes", "32"},
        std::vector<std::string>{"memif", "bench", "--sizes", "64,lots"},
        std::vector<std::string>{"memif", "bench", "--burst", "0"}}) {
    const RunResult r = run_cli(args, dir.path(), 30s);
    EXPECT_EQ(r.code, 2) << args.back() << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

}  // namespace
