// SPDX-License-Identifier: MIT
// DPDK testpmd with the net_memif PMD as a memif peer: used by the interop tests
// (tests/common/testpmd.hpp) and by `shmlink memif bench` (reference section 16).
//
// What testpmd does here (Debian 12, DPDK 22.11.11, no hugepages), as observed:
// * startup to "Configuring Port 0" takes ~0.2 s with --no-mlockall (1-2 s without it and with
//   -m 512); a client connects ~5 ms after its port is configured;
// * the link coming up is only visible in the PMD's log: "memif_connect(): Connected." (INFO),
//   so the harness runs it with --log-level=pmd.net.memif:debug (also "Memif listener socket ...
//   created.", "memif_disconnect(): Disconnected, id: N, role: R."); --print-event prints nothing;
// * testpmd drains its rx queues when forwarding starts, ~0.1 s after link-up when it is the
//   client (reference section 16.3 saw frames of the first 1-2 s lost), so the harness passes
//   --no-flush-rx; kForwarding marks the start of forwarding;
// * a client connects once, when its port starts: it never retries nor reconnects, so start the
//   server first; a server accepts a new client after a disconnect;
// * SIGINT or SIGTERM: stops forwarding within the --stats-period tick (up to 1 s), prints the
//   "Forward statistics" summary, closes the port (no DISCONNECT message: it just closes the
//   control socket), removes its filesystem socket and exits 0 ("Bye...");
// * a stale socket file makes the server's probe fail ("Address already in use", "vdev_probe():
//   failed to initialize net_memif0 device") but testpmd keeps running with no ports;
// * testpmd needs two lcores (main + forwarding); "-l 0" alone fails with "No cores defined for
//   forwarding". Both are pinned to one CPU here (--lcores=0@C,1@C): the forwarding lcore busy-polls
//   that CPU, the main lcore mostly sleeps;
// * the port counters (RX-packets/TX-packets) count from process start, but read 0 while the
//   link is down, so the final summary is 0 when the peer left first;
// * with --no-shconf --no-telemetry the EAL runtime directory (/var/run/dpdk/<prefix> as root,
//   $XDG_RUNTIME_DIR/dpdk/<prefix> or /tmp/dpdk/<prefix> otherwise) is left empty; the harness
//   removes it. --in-memory cannot be combined with --no-huge;
// * it runs as non-root too (mlockall would fail, hence --no-mlockall);
// * rarely (seen once in ~70 runs) the testpmd whose peer disconnects while it forwards dies of
//   SIGSEGV (likely the PMD unmapping the regions under the forwarding lcore).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shmlink::cli::testpmd {

namespace detail {

/// Waits for child `pid` at most `seconds`; kills it (SIGKILL) when it overstays. @return the
/// exit status, -SIGNAL when a signal killed it, -1000 when it had to be killed, -2000 when
/// waitpid failed.
inline int reap(pid_t pid, double seconds) {
  const long long limit = static_cast<long long>(seconds * 1000);
  for (long long waited = 0;; waited += 5) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    if (r < 0) return -2000;
    if (waited >= limit) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1000;
    }
    struct timespec ts {0, 5'000'000};
    ::nanosleep(&ts, nullptr);
  }
}

/// True while child `pid` has not exited (it is not reaped).
inline bool still_running(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == 0;
}

}  // namespace detail

/// The testpmd binary: $SHMLINK_TESTPMD when set, else `dpdk-testpmd` on $PATH; "" when absent.
inline std::string testpmd_path() {
  if (const char* env = std::getenv("SHMLINK_TESTPMD"); env != nullptr && *env != '\0')
    return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const std::size_t colon = dirs.find(':');
    const std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    if (dir.empty()) continue;
    const std::string candidate = dir + "/dpdk-testpmd";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

/// Whether the net_memif PMD library (librte_net_memif.so*) is installed where DPDK's packages
/// put it: <libdir>[/<multiarch>][/dpdk/pmds-*]/ under /usr/lib, /usr/lib64, /usr/local/lib{,64}.
inline bool memif_pmd_installed() {
  namespace fs = std::filesystem;
  // Entries of `dir` (none when it cannot be read).
  auto entries = [](const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      out.push_back(it->path());
    return out;
  };
  auto has_pmd = [&entries](const fs::path& dir) {
    for (const fs::path& p : entries(dir))
      if (p.filename().string().starts_with("librte_net_memif.so")) return true;
    return false;
  };
  for (const char* libdir : {"/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/local/lib64"}) {
    std::vector<fs::path> dirs{libdir};
    for (const fs::path& p : entries(libdir))
      if (p.filename().string().find("-linux-") != std::string::npos) dirs.push_back(p);
    for (const fs::path& d : dirs) {
      if (has_pmd(d)) return true;
      for (const fs::path& p : entries(d / "dpdk"))
        if (p.filename().string().starts_with("pmds-") && has_pmd(p)) return true;
    }
  }
  return false;
}

/// Why testpmd cannot be used as a peer ("" when it can): for GTEST_SKIP messages.
/// With $SHMLINK_TESTPMD set, the PMD check is skipped (a custom build may link it statically).
inline std::string testpmd_unavailable_reason() {
  if (testpmd_path().empty())
    return "dpdk-testpmd not found on PATH (Debian: apt-get install --no-install-recommends dpdk-dev; "
           "or set SHMLINK_TESTPMD)";
  const char* env = std::getenv("SHMLINK_TESTPMD");
  if ((env == nullptr || *env == '\0') && !memif_pmd_installed())
    return "the DPDK net_memif PMD (librte_net_memif.so) is not installed (Debian: librte-net-memif23)";
  return {};
}

/// True when dpdk-testpmd and the net_memif PMD are installed.
inline bool testpmd_available() { return testpmd_unavailable_reason().empty(); }

/// CPUs this process may run on (sched_getaffinity), ascending; {0} if that fails.
inline std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

/// How many times `needle` occurs in `text` (non-overlapping).
inline std::size_t count_occurrences(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  if (needle.empty()) return 0;
  for (std::size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size()))
    ++n;
  return n;
}

/// How to run one testpmd with one net_memif port (`--vdev=net_memif0,...`).
struct TestpmdOptions {
  std::string role = "server";          ///< "server" (listens) or "client" (connects once, at start)
  std::string socket;                   ///< socket path, or the abstract name when `abstract`
  bool abstract = false;                ///< socket-abstract=yes: '\0' + socket
  std::uint32_t id = 0;                 ///< interface id (must match the peer's)
  int rsize = 10;                       ///< log2 of the ring size (1..14)
  int bsize = 2048;                     ///< packet buffer size, bytes
  std::string secret;                   ///< shared secret (<= 24 chars); "" for none
  std::string mac;                      ///< port MAC "aa:bb:..."; "" for the PMD's default
  std::string forward_mode = "macswap"; ///< io|mac|macswap|rxonly|txonly|icmpecho|...
  int cpu = -1;                         ///< CPU for all lcores; -1: the first of allowed_cpus()
  int nb_cores = 1;                     ///< forwarding lcores (each needs a stream: <= rxq)
  int rxq = 1;                          ///< rx queues (memif rings peer -> testpmd)
  int txq = 1;                          ///< tx queues (memif rings testpmd -> peer)
  std::string file_prefix;              ///< EAL --file-prefix; "" for a unique one
  int stats_period = 1;                 ///< seconds between stats blocks in the log (>= 1)
  int mem_mb = 128;                     ///< EAL -m, MiB (no hugepages)
  int total_num_mbufs = 8192;           ///< mbuf pool size (testpmd's default needs ~340 MB)
  bool no_flush_rx = true;              ///< --no-flush-rx: keep frames that arrive before forwarding
                                        ///< starts (else a client testpmd drops what a peer sends
                                        ///< right after link-up)
  std::vector<std::string> eal_args;    ///< extra EAL arguments (before `--`)
  std::vector<std::string> extra_args;  ///< extra testpmd arguments (after `--`), e.g. --txpkts=1500
};

/// Packet counts found in a testpmd log.
struct TestpmdTotals {
  std::uint64_t rx_packets = 0;  ///< packets received on all ports
  std::uint64_t tx_packets = 0;  ///< packets sent on all ports (TX-dropped excluded)
  bool summary = false;          ///< the final "Accumulated forward statistics" block was seen
};

/// Parses a testpmd log into packet totals: for each port the largest RX-/TX-packets of its
/// periodic "NIC statistics for port N" blocks, summed over ports, or the final "Accumulated
/// forward statistics for all ports" block when that is larger. The memif counters run from
/// process start but read 0 while the link is down, so this is a lower bound that is exact when
/// testpmd was stopped while its link was up (and otherwise misses at most one stats period).
/// Per-stream "Forward Stats for RX Port=" lines are ignored.
inline TestpmdTotals parse_testpmd_totals(std::string_view log) {
  auto number_after = [](std::string_view line, std::string_view key) -> std::uint64_t {
    const std::size_t at = line.find(key);
    if (at == std::string_view::npos) return 0;
    std::size_t p = at + key.size();
    while (p < line.size() && line[p] == ' ') ++p;
    std::uint64_t v = 0;
    std::from_chars(line.data() + p, line.data() + line.size(), v);
    return v;
  };
  enum class Block { none, nic, accumulated } block = Block::none;
  std::size_t port = 0;
  std::vector<std::uint64_t> nic_rx, nic_tx;
  TestpmdTotals t;
  std::uint64_t acc_rx = 0, acc_tx = 0;
  while (!log.empty()) {
    const std::size_t nl = log.find('\n');
    const std::string_view line = log.substr(0, nl);
    log = nl == std::string_view::npos ? std::string_view{} : log.substr(nl + 1);
    if (line.find("NIC statistics for port ") != std::string_view::npos) {
      block = Block::nic;
      port = static_cast<std::size_t>(number_after(line, "NIC statistics for port "));
      if (port >= 1024) {  // not a port number: ignore the block
        block = Block::none;
        continue;
      }
      if (nic_rx.size() <= port) {
        nic_rx.resize(port + 1);
        nic_tx.resize(port + 1);
      }
      continue;
    }
    if (line.find("Accumulated forward statistics for all ports") != std::string_view::npos) {
      block = Block::accumulated;
      t.summary = true;
      continue;
    }
    const auto has = [&line](std::string_view s) { return line.find(s) != std::string_view::npos; };
    if (has("Throughput") || has("----") || has("++++") || has("####")) {
      block = Block::none;
      continue;
    }
    if (block == Block::nic) {
      if (has("RX-packets:")) nic_rx[port] = std::max(nic_rx[port], number_after(line, "RX-packets:"));
      if (has("TX-packets:")) nic_tx[port] = std::max(nic_tx[port], number_after(line, "TX-packets:"));
    } else if (block == Block::accumulated) {
      if (has("RX-packets:")) acc_rx = number_after(line, "RX-packets:");
      if (has("TX-packets:")) acc_tx = number_after(line, "TX-packets:");
    }
  }
  for (std::uint64_t v : nic_rx) t.rx_packets += v;
  for (std::uint64_t v : nic_tx) t.tx_packets += v;
  t.rx_packets = std::max(t.rx_packets, acc_rx);
  t.tx_packets = std::max(t.tx_packets, acc_tx);
  return t;
}

/// One dpdk-testpmd process with a net_memif port, its stdout+stderr in `<log_dir>/<prefix>.log`.
///
/// The child gets its own process group, an empty signal mask, stdin from /dev/null, and
/// PR_SET_PDEATHSIG(SIGKILL), so it never outlives a crashed parent. PDEATHSIG fires when the
/// *thread* that forked exits: construct Testpmd on the main thread. The destructor stops
/// it and removes its EAL runtime directory.
class Testpmd {
 public:
  /// PMD log line when the memif link is up (both roles).
  static constexpr std::string_view kLinkUp = "memif_connect(): Connected.";
  /// PMD log line when the link goes down ("... Disconnected, id: N, role: server.").
  static constexpr std::string_view kDisconnected = "memif_disconnect(): Disconnected";
  /// PMD log line when a server's listener socket exists.
  static constexpr std::string_view kListening = "Memif listener socket";
  /// Log line when the vdev could not be created (bad arguments, socket in use).
  static constexpr std::string_view kProbeFailed = "failed to initialize net_memif";
  /// Log line printed just before the forwarding lcores start (after the port was configured and
  /// after the rx flush that --no-flush-rx turns off): "Logical Core 1 (socket 0) forwards packets
  /// on 1 streams:". When testpmd is the client this comes ~0.1 s after kLinkUp.
  static constexpr std::string_view kForwarding = "forwards packets on";

  /// Starts testpmd. @throws std::runtime_error when the log cannot be created or fork fails
  /// (an exec failure shows up in the log and as exit status 127).
  Testpmd(const TestpmdOptions& options, const std::string& log_dir) {
    static std::atomic<int> counter{0};
    prefix_ = options.file_prefix.empty()
                  ? "shmlink-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)
                  : options.file_prefix;
    log_path_ = log_dir + "/" + prefix_ + ".log";
    argv_ = build_argv(options);

    const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot create " + log_path_);
    std::vector<char*> args;
    for (std::string& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(97);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      const int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execv(args[0], args.data());
      static constexpr char kMsg[] = "testpmd harness: execv failed\n";
      [[maybe_unused]] auto n = ::write(2, kMsg, sizeof kMsg - 1);
      ::_exit(127);
    }
    ::close(log_fd);
    if (pid < 0) throw std::runtime_error("fork failed");
    ::setpgid(pid, pid);  // also in the child: whichever runs first
    pid_ = pid;
  }
  Testpmd(const Testpmd&) = delete;
  Testpmd& operator=(const Testpmd&) = delete;
  ~Testpmd() { stop(); }

  /// The process id (its process group id too).
  [[nodiscard]] pid_t pid() const { return pid_; }
  /// The --file-prefix it runs with.
  [[nodiscard]] const std::string& file_prefix() const { return prefix_; }
  /// Where its stdout and stderr go.
  [[nodiscard]] const std::string& log_path() const { return log_path_; }
  /// Its command line.
  [[nodiscard]] const std::vector<std::string>& argv() const { return argv_; }

  /// The log so far.
  [[nodiscard]] std::string log() const {
    std::ifstream in(log_path_, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  /// How many times `needle` occurs in the log so far.
  [[nodiscard]] std::size_t log_count(std::string_view needle) const {
    return count_occurrences(log(), needle);
  }

  /// Whether it has not exited yet.
  [[nodiscard]] bool running() const { return status_ == kRunning && detail::still_running(pid_); }

  /// Polls the log every 10 ms until `needle` occurs `count` times. Gives up early when the
  /// process has exited. @return whether it did within `timeout`.
  bool wait_for_log(std::string_view needle, std::chrono::milliseconds timeout, std::size_t count = 1) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const bool alive = running();  // sampled before the log: a last line is not missed
      if (log_count(needle) >= count) return true;
      if (!alive || std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  /// Waits until the memif link has come up `count` times (kLinkUp); gives up early when the
  /// vdev probe failed or the process exited.
  bool wait_for_link(std::chrono::milliseconds timeout, std::size_t count = 1) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const bool alive = running();
      const std::string text = log();
      if (count_occurrences(text, kLinkUp) >= count) return true;
      if (!alive || count_occurrences(text, kProbeFailed) > 0 ||
          std::chrono::steady_clock::now() > end)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  /// Waits until the log's stats show at least `rx` received packets (they appear once per
  /// stats period). @return whether they did within `timeout`.
  bool wait_for_rx(std::uint64_t rx, std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const bool alive = running();
      if (rx_tx_totals().rx_packets >= rx) return true;
      if (!alive || std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// Packet totals from the log (see parse_testpmd_totals(); exact after stop() when the link
  /// was still up at that time).
  [[nodiscard]] TestpmdTotals rx_tx_totals() const { return parse_testpmd_totals(log()); }

  /// Stops it: SIGINT, then SIGKILL to its process group after `timeout`; then removes its EAL
  /// runtime directory. Idempotent.
  /// @return the exit status (0 for a clean exit), -SIGNAL when a signal killed it, or -1000 when
  ///         it had to be killed after `timeout`.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (status_ != kRunning) return status_;
    ::kill(pid_, SIGINT);
    status_ = detail::reap(pid_, std::chrono::duration<double>(timeout).count());
    if (status_ == -1000) ::kill(-pid_, SIGKILL);  // anything left in its group
    remove_runtime_dir();
    return status_;
  }

  /// The command line and the log's last `lines` lines, for failure messages.
  [[nodiscard]] std::string describe(std::size_t lines = 40) const {
    std::string cmd;
    for (const std::string& a : argv_) cmd += (cmd.empty() ? "" : " ") + a;
    const std::string text = log();
    std::size_t start = text.size();
    for (std::size_t n = 0; start > 0 && n <= lines; --start)
      if (text[start - 1] == '\n') ++n;
    return "testpmd pid " + std::to_string(pid_) + ": " + cmd + "\n--- " + log_path_ + " (tail) ---\n" +
           text.substr(start);
  }

  /// The EAL runtime directory for `prefix`, as DPDK 22.11 chooses it.
  [[nodiscard]] static std::string runtime_dir(const std::string& prefix) {
    std::string base = "/var/run";
    if (::getuid() != 0) {
      const char* xdg = std::getenv("XDG_RUNTIME_DIR");
      base = xdg != nullptr && *xdg != '\0' ? xdg : "/tmp";
    }
    return base + "/dpdk/" + prefix;
  }

 private:
  static constexpr int kRunning = -1'000'000;

  std::vector<std::string> build_argv(const TestpmdOptions& o) const {
    const int cpu = o.cpu >= 0 ? o.cpu : allowed_cpus().front();
    const int cores = std::max(1, o.nb_cores);
    std::string lcores = "--lcores=";
    for (int l = 0; l <= cores; ++l)
      lcores += (l == 0 ? "" : ",") + std::to_string(l) + "@" + std::to_string(cpu);
    std::string vdev = "--vdev=net_memif0,role=" + o.role + ",id=" + std::to_string(o.id) +
                       ",rsize=" + std::to_string(o.rsize) + ",bsize=" + std::to_string(o.bsize) +
                       ",socket-abstract=" + (o.abstract ? "yes" : "no");
    if (!o.socket.empty()) vdev += ",socket=" + o.socket;
    if (!o.secret.empty()) vdev += ",secret=" + o.secret;
    if (!o.mac.empty()) vdev += ",mac=" + o.mac;
    std::vector<std::string> a{testpmd_path(),
                               "--no-huge",
                               "-m",
                               std::to_string(o.mem_mb),
                               "--no-pci",
                               "--no-shconf",
                               "--no-telemetry",
                               "--file-prefix=" + prefix_,
                               lcores,
                               "--log-level=pmd.net.memif:debug"};
    a.insert(a.end(), o.eal_args.begin(), o.eal_args.end());
    a.push_back(vdev);
    a.push_back("--");
    a.push_back("--forward-mode=" + o.forward_mode);
    a.push_back("--auto-start");
    a.push_back("--stats-period=" + std::to_string(std::max(1, o.stats_period)));
    a.push_back("--total-num-mbufs=" + std::to_string(o.total_num_mbufs));
    a.push_back("--no-mlockall");
    if (o.no_flush_rx) a.push_back("--no-flush-rx");
    if (o.rxq != 1 || o.txq != 1) {
      a.push_back("--rxq=" + std::to_string(o.rxq));
      a.push_back("--txq=" + std::to_string(o.txq));
    }
    if (cores > 1) a.push_back("--nb-cores=" + std::to_string(cores));
    a.insert(a.end(), o.extra_args.begin(), o.extra_args.end());
    return a;
  }

  void remove_runtime_dir() const {
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir(prefix_), ec);
  }

  pid_t pid_ = -1;
  int status_ = kRunning;
  std::string prefix_, log_path_;
  std::vector<std::string> argv_;
};

}  // namespace shmlink::cli::testpmd
