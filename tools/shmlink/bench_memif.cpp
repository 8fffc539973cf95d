// SPDX-License-Identifier: MIT
// `shmlink memif bench` (docs/bench.md "`shmlink memif bench`"): one-way packet rate through one
// memif queue, shmlink's implementation next to DPDK's memif PMD (dpdk-testpmd txonly/rxonly) in
// the same run.
//
// Every case is one sender and one receiver, each a process pinned to its own CPU, joined by one
// memif interface (one ring each way, abstract socket). The master side starts first (a DPDK
// client connects once and never retries). Both implementations do the same memory work per
// packet: the sender copies the whole frame into the ring's buffers (DPDK's PMD copies the mbuf
// into them), the receiver copies it out (DPDK's PMD copies into an mbuf); receive queues are in
// polling mode, so no eventfd is written (DPDK sets MASK_INT on its polled rings too).
//
// Rate: a shmlink receiver counts the packets it completed during `duration` seconds that start
// `warmup` seconds after its first packet; a testpmd receiver's rate is the median of the Rx-pps
// of its whole stats periods (--stats-period=1) after the warm-up.
#include "bench_memif.hpp"

#include "bench_common.hpp"
#include "common.hpp"
#include "testpmd.hpp"

#include <shmlink/memif.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#ifndef SHMLINK_CLI_VERSION
#define SHMLINK_CLI_VERSION "unknown"
#endif

namespace shmlink::cli::bench {

namespace {

using namespace std::chrono_literals;

/// Name of the JSON document's schema (docs/bench.md).
constexpr const char* kMemifBenchSchema = "shmlink-bench-memif/1";
/// Target of issue 6: shmlink <-> shmlink at 64 B at least as fast as DPDK's PMD on both ends.
constexpr double kTargetRatio = 1.0;
/// Packet size the target applies to, bytes.
constexpr std::uint32_t kTargetSize = 64;

/// Which implementation runs one end of a case.
enum class Impl { shmlink, dpdk };

const char* impl_name(Impl i) { return i == Impl::shmlink ? "shmlink" : "dpdk"; }
const char* role_name(memif::Role r) { return r == memif::Role::master ? "master" : "slave"; }
/// Ring direction when `sender` sends: a slave sends on S2M rings, a master on M2S rings.
const char* direction_name(memif::Role sender) { return sender == memif::Role::slave ? "s2m" : "m2s"; }

/// One measurement: who sends, who receives, what size.
struct CaseSpec {
  Impl sender = Impl::shmlink;
  Impl receiver = Impl::shmlink;
  memif::Role sender_role = memif::Role::slave;  ///< the receiver has the other role
  std::uint32_t size = 64;                       ///< frame bytes
};

/// What one case measured (medians over rounds).
struct CaseResult {
  CaseSpec spec;
  std::vector<double> pps;        ///< packets/s of each round that ran
  std::vector<std::string> notes; ///< why a round failed or was skipped
  std::string skipped;            ///< non-empty: the case did not run at all, and why
};

// ---- the shmlink end (a forked child) --------------------------------------------------------

/// What a shmlink receiver child reports through its pipe.
struct ChildReport {
  double pps = 0;            ///< packets per second over the measured window
  std::uint64_t packets = 0; ///< packets completed in the window
  std::int64_t ns = 0;       ///< window length, ns
  char error[240] = {};      ///< non-empty: what went wrong
};

/// The marker a child writes once its interface exists (a master is then listening).
constexpr char kReady = 'R';

std::atomic<bool> g_child_stop{false};
void child_stop(int) { g_child_stop.store(true); }

/// Configuration of a shmlink end.
struct SideConfig {
  memif::Role role = memif::Role::slave;
  bool sender = false;
  std::uint32_t size = 64;
  int cpu = 0;
  std::string socket;  ///< "@name"
  unsigned log2_ring = 10;
  std::uint32_t buffer_size = 2048;
  std::uint32_t burst = 32;
  double warmup = 0.5;
  double duration = 2.0;
  double link_timeout = 15.0;
};

/// Writes all of `len` bytes (a pipe to the parent); false on error.
bool write_all(int fd, const void* p, std::size_t len) {
  const char* c = static_cast<const char*>(p);
  while (len > 0) {
    const ssize_t n = ::write(fd, c, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    c += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Sends `r` (with `error` set from `what`) and leaves.
[[noreturn]] void child_fail(int fd, const std::string& what) {
  ChildReport r;
  std::snprintf(r.error, sizeof r.error, "%s", what.c_str());
  (void)write_all(fd, &r, sizeof r);
  ::_exit(1);
}

/// The body of a shmlink end: connects, then sends until SIGTERM, or receives, measures and
/// reports. Never returns (children leave with _exit, so no destructor of the parent's objects
/// runs twice).
[[noreturn]] void run_shmlink_child(const SideConfig& c, int fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  struct sigaction sa {};
  sa.sa_handler = child_stop;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  if (!pin_to_cpu(c.cpu)) child_fail(fd, fmt::format("cannot pin to CPU {}: {}", c.cpu, std::strerror(errno)));
  try {
    memif::SocketOptions so;
    so.path = c.socket;
    so.app_name = "shmlink-bench";
    so.reconnect_interval = 100ms;
    so.publish_status = false;  // the child leaves with _exit; and no status refresh in the timing
    memif::Socket sock(so);
    memif::InterfaceOptions io;
    io.role = c.role;
    io.name = c.sender ? "bench-tx" : "bench-rx";
    io.log2_ring_size = static_cast<std::uint8_t>(c.log2_ring);
    io.buffer_size = c.buffer_size;
    io.rx_mode = memif::RxMode::polling;
    memif::Interface& ifc = sock.add_interface(io);
    if (!write_all(fd, &kReady, 1)) ::_exit(1);

    const std::int64_t link_deadline = mono_ns() + static_cast<std::int64_t>(c.link_timeout * 1e9);
    while (!ifc.connected()) {
      if (g_child_stop.load()) ::_exit(0);
      if (mono_ns() > link_deadline)
        child_fail(fd, fmt::format("{}: no link within {} s{}", sock.name(), c.link_timeout,
                                   ifc.last_disconnect().empty() ? "" : ": " + ifc.last_disconnect()));
      (void)sock.poll(20ms);
    }
    const std::size_t chain = (c.size + c.buffer_size - 1) / c.buffer_size;
    std::vector<memif::Buffer> bufs(static_cast<std::size_t>(c.burst) * chain);

    if (c.sender) {
      // The frame: broadcast Ethernet header, IPv4 ethertype, a byte pattern after it.
      std::vector<std::uint8_t> frame(c.size);
      for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::uint8_t>(i * 7 + 1);
      std::fill_n(frame.begin(), 6, 0xff);
      const std::uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
      std::copy_n(src, 6, frame.begin() + 6);
      frame[12] = 0x08;
      frame[13] = 0x00;
      std::uint64_t loops = 0;
      while (!g_child_stop.load(std::memory_order_relaxed)) {
        if ((++loops & 4095) == 0) (void)sock.poll(0ms);
        std::size_t n = 0;
        const Status st = ifc.alloc(0, bufs, c.burst, c.size, n);
        if (st.code() == Errc::would_block) continue;
        if (st.code() == Errc::not_connected) {  // the receiver left: wait for the parent's SIGTERM
          (void)sock.poll(20ms);
          continue;
        }
        if (!st.ok()) child_fail(fd, fmt::format("{}: alloc: {}", sock.name(), st.message()));
        std::size_t off = 0;
        for (std::size_t k = 0; k < n; ++k) {
          std::memcpy(bufs[k].data, frame.data() + off, bufs[k].len);
          off = (bufs[k].flags & memif::kBufferNext) != 0 ? off + bufs[k].len : 0;
        }
        std::size_t sent = 0;
        (void)ifc.tx_burst(0, std::span<const memif::Buffer>(bufs.data(), n), sent);
      }
      ::_exit(0);
    }

    std::vector<std::uint8_t> scratch(std::size_t{65536} + c.buffer_size);
    // The window opens `warmup` after the first packet, at the end of a burst, and closes at the
    // end of the first burst `duration` later; it counts the packets completed in between.
    std::int64_t open_at = -1;
    std::int64_t start = -1;
    std::uint64_t packets = 0;
    std::uint64_t loops = 0;
    std::size_t off = 0;
    const std::int64_t first_deadline = mono_ns() + static_cast<std::int64_t>(c.link_timeout * 1e9);
    const auto window_ns = static_cast<std::int64_t>(c.duration * 1e9);
    for (;;) {
      if (g_child_stop.load(std::memory_order_relaxed)) ::_exit(0);
      if ((++loops & 4095) == 0) {
        (void)sock.poll(0ms);
        if (!ifc.connected()) child_fail(fd, fmt::format("{}: link went down: {}", sock.name(), ifc.last_disconnect()));
        if (open_at < 0 && mono_ns() > first_deadline)
          child_fail(fd, fmt::format("{}: no packet within {} s of the link", sock.name(), c.link_timeout));
      }
      std::size_t n = 0;
      const Status st = ifc.rx_burst(0, bufs, n);
      if (st.code() == Errc::would_block) continue;
      if (!st.ok()) child_fail(fd, fmt::format("{}: rx_burst: {}", sock.name(), st.message()));
      std::uint64_t done = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t len = std::min<std::size_t>(bufs[k].len, scratch.size() - off);
        std::memcpy(scratch.data() + off, bufs[k].data, len);
        if ((bufs[k].flags & memif::kBufferNext) != 0) {
          off += len;
        } else {
          off = 0;
          ++done;
        }
      }
      keep(scratch.data());
      (void)ifc.refill(0, n);
      const std::int64_t now = mono_ns();
      if (open_at < 0) {
        open_at = now + static_cast<std::int64_t>(c.warmup * 1e9);
      } else if (start < 0) {
        if (now >= open_at) start = now;
      } else {
        packets += done;
        if (now - start >= window_ns) {
          ChildReport r;
          r.packets = packets;
          r.ns = now - start;
          r.pps = static_cast<double>(packets) * 1e9 / static_cast<double>(r.ns);
          (void)write_all(fd, &r, sizeof r);
          ::_exit(0);
        }
      }
    }
  } catch (const std::exception& e) {
    child_fail(fd, e.what());
  }
}

/// A forked shmlink end with its report pipe.
class ShmlinkSide {
 public:
  /// Forks the child. @throws Error when pipe or fork fail.
  explicit ShmlinkSide(const SideConfig& c) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Error(Errc::system, std::string("memif bench: pipe: ") + std::strerror(errno));
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(Errc::system, std::string("memif bench: fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::close(p[0]);
      run_shmlink_child(c, p[1]);
    }
    ::close(p[1]);
    pid_ = pid;
    fd_ = p[0];
  }
  ShmlinkSide(const ShmlinkSide&) = delete;
  ShmlinkSide& operator=(const ShmlinkSide&) = delete;
  ~ShmlinkSide() {
    stop();
    if (fd_ >= 0) ::close(fd_);
  }

  /// Waits up to `seconds` for the ready marker; "" or what went wrong.
  std::string wait_ready(double seconds) {
    char c = 0;
    const std::string err = read_exact(&c, 1, seconds);
    if (!err.empty()) return err;
    if (c == kReady) return {};
    // A child that failed before its interface existed sent a report instead: its error.
    ChildReport r;
    auto* bytes = reinterpret_cast<char*>(&r);
    bytes[0] = c;
    const std::string err2 = read_exact(bytes + 1, sizeof r - 1, 2.0);
    if (!err2.empty()) return err2;
    r.error[sizeof r.error - 1] = '\0';
    return r.error[0] != '\0' ? std::string(r.error) : std::string("shmlink end: unexpected message");
  }

  /// Waits up to `seconds` for the receiver's report.
  std::string read_report(ChildReport& r, double seconds) {
    std::string err = read_exact(&r, sizeof r, seconds);
    if (!err.empty()) return err;
    r.error[sizeof r.error - 1] = '\0';
    return r.error;
  }

  /// SIGTERM, then reap (SIGKILL after 5 s). Idempotent.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    (void)testpmd::detail::reap(pid_, 5.0);
    pid_ = -1;
  }

 private:
  std::string read_exact(void* p, std::size_t len, double seconds) {
    char* c = static_cast<char*>(p);
    const std::int64_t deadline = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (len > 0) {
      const std::int64_t left = deadline - mono_ns();
      if (left <= 0) return fmt::format("shmlink end (pid {}): no answer within {} s", pid_, seconds);
      pollfd pfd{fd_, POLLIN, 0};
      const int r = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left / 1000000 + 1, 1000)));
      if (r < 0 && errno != EINTR) return std::string("poll: ") + std::strerror(errno);
      if (r <= 0) continue;
      const ssize_t n = ::read(fd_, c, len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fmt::format("shmlink end (pid {}) exited without a report", pid_);
      c += n;
      len -= static_cast<std::size_t>(n);
    }
    return {};
  }

  pid_t pid_ = -1;
  int fd_ = -1;
};

// ---- the DPDK end ------------------------------------------------------------------------------

/// Rx-pps values of the "NIC statistics" blocks in a testpmd log, in order.
std::vector<double> rx_pps_values(std::string_view log) {
  std::vector<double> out;
  constexpr std::string_view key = "Rx-pps:";
  for (std::size_t at = log.find(key); at != std::string_view::npos; at = log.find(key, at + key.size())) {
    std::size_t p = at + key.size();
    while (p < log.size() && log[p] == ' ') ++p;
    std::uint64_t v = 0;
    std::from_chars(log.data() + p, log.data() + log.size(), v);
    out.push_back(static_cast<double>(v));
  }
  return out;
}

/// testpmd's --txpkts for a frame of `size` bytes: segments of at most 2048 bytes (the default
/// mbuf data room).
std::string txpkts(std::uint32_t size) {
  std::string s;
  for (std::uint32_t left = size; left > 0;) {
    const std::uint32_t seg = std::min<std::uint32_t>(left, 2048);
    s += (s.empty() ? "" : ",") + std::to_string(seg);
    left -= seg;
  }
  return s;
}

/// testpmd options of a DPDK end.
testpmd::TestpmdOptions dpdk_options(const CaseSpec& spec, bool sender, int cpu, const std::string& socket_name,
                                     const MemifBenchOptions& o) {
  testpmd::TestpmdOptions t;
  const memif::Role role = sender ? spec.sender_role
                                  : (spec.sender_role == memif::Role::master ? memif::Role::slave : memif::Role::master);
  t.role = role == memif::Role::master ? "server" : "client";
  t.socket = socket_name;
  t.abstract = true;
  t.rsize = static_cast<int>(o.log2_ring);
  t.bsize = static_cast<int>(o.buffer_size);
  t.forward_mode = sender ? "txonly" : "rxonly";
  t.cpu = cpu;
  t.mem_mb = 256;
  t.extra_args.push_back("--burst=" + std::to_string(o.burst));
  if (sender) t.extra_args.push_back("--txpkts=" + txpkts(spec.size));
  return t;
}

/// Runs one case once. @return packets/s, or an error text.
std::pair<double, std::string> run_case_once(const CaseSpec& spec, const MemifBenchOptions& o, int send_cpu,
                                             int recv_cpu, const std::string& log_dir, int serial) {
  const std::string name = fmt::format("shmlink-bench-{}-{}", ::getpid(), serial);
  const memif::Role recv_role = spec.sender_role == memif::Role::master ? memif::Role::slave : memif::Role::master;
  const bool master_sends = spec.sender_role == memif::Role::master;

  std::optional<ShmlinkSide> shm_send, shm_recv;
  std::optional<testpmd::Testpmd> dpdk_send, dpdk_recv;

  // Starts one end; "" or the error.
  auto start = [&](bool sender) -> std::string {
    const Impl impl = sender ? spec.sender : spec.receiver;
    const int cpu = sender ? send_cpu : recv_cpu;
    if (impl == Impl::shmlink) {
      SideConfig c;
      c.role = sender ? spec.sender_role : recv_role;
      c.sender = sender;
      c.size = spec.size;
      c.cpu = cpu;
      c.socket = "@" + name;
      c.log2_ring = o.log2_ring;
      c.buffer_size = o.buffer_size;
      c.burst = o.burst;
      c.warmup = o.warmup;
      c.duration = o.duration;
      c.link_timeout = o.link_timeout;
      auto& side = sender ? shm_send : shm_recv;
      side.emplace(c);
      return side->wait_ready(10.0);
    }
    auto& side = sender ? dpdk_send : dpdk_recv;
    side.emplace(dpdk_options(spec, sender, cpu, name, o), log_dir);
    const bool master = (sender ? spec.sender_role : recv_role) == memif::Role::master;
    if (master && !side->wait_for_log(testpmd::Testpmd::kListening, 15s))
      return "testpmd server did not listen:\n" + side->describe(15);
    return {};
  };

  // The master first: a DPDK client connects once, when its port starts.
  std::string err = start(master_sends);
  if (err.empty()) err = start(!master_sends);
  if (!err.empty()) return {0, err};

  const double budget = o.link_timeout + o.warmup + o.duration + 10.0;
  double pps = 0;
  if (spec.receiver == Impl::shmlink) {
    ChildReport r;
    err = shm_recv->read_report(r, budget);
    if (err.empty()) pps = r.pps;
  } else {
    testpmd::Testpmd& tp = *dpdk_recv;
    if (!tp.wait_for_link(std::chrono::milliseconds(static_cast<int>(o.link_timeout * 1000)))) {
      err = "testpmd receiver: no link:\n" + tp.describe(15);
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
      const std::size_t n0 = rx_pps_values(tp.log()).size();
      const std::size_t periods = static_cast<std::size_t>(std::max(1.0, std::round(o.duration)));
      // Skip the period in progress at n0 (it may include the warm-up), then take whole ones.
      const std::int64_t deadline = mono_ns() + static_cast<std::int64_t>((o.duration + 5.0) * 1e9);
      std::vector<double> v;
      while (mono_ns() < deadline && tp.running()) {
        v = rx_pps_values(tp.log());
        if (v.size() >= n0 + 1 + periods) break;
        std::this_thread::sleep_for(50ms);
      }
      if (v.size() < n0 + 1 + periods) {
        err = "testpmd receiver: too few stats periods:\n" + tp.describe(15);
      } else {
        std::vector<double> window(v.begin() + static_cast<std::ptrdiff_t>(n0 + 1),
                                   v.begin() + static_cast<std::ptrdiff_t>(n0 + 1 + periods));
        pps = median_of(window);
        if (pps <= 0) err = "testpmd receiver: received nothing:\n" + tp.describe(15);
      }
    }
  }
  // The sender stops first, so that no end sees its peer vanish while it still forwards.
  if (shm_send) shm_send->stop();
  if (dpdk_send) (void)dpdk_send->stop();
  if (shm_recv) shm_recv->stop();
  if (dpdk_recv) (void)dpdk_recv->stop();
  return {pps, err};
}

/// A case's label, e.g. "shmlink slave -> dpdk master".
std::string case_label(const CaseSpec& s) {
  const memif::Role rr = s.sender_role == memif::Role::master ? memif::Role::slave : memif::Role::master;
  return fmt::format("{} {} -> {} {}", impl_name(s.sender), role_name(s.sender_role), impl_name(s.receiver),
                     role_name(rr));
}

/// The DPDK <-> DPDK result for the same direction and size, when it ran.
std::optional<double> dpdk_reference(const std::vector<CaseResult>& all, const CaseSpec& s) {
  for (const CaseResult& r : all) {
    if (r.spec.sender == Impl::dpdk && r.spec.receiver == Impl::dpdk && r.spec.sender_role == s.sender_role &&
        r.spec.size == s.size && !r.pps.empty()) {
      std::vector<double> v = r.pps;
      return median_of(v);
    }
  }
  return std::nullopt;
}

Json number_or_null(std::optional<double> v) { return v ? Json(*v) : Json(nullptr); }

}  // namespace

int run_memif_bench(const MemifBenchOptions& o) {
  for (std::uint32_t s : o.sizes)
    if (s < 60 || s > 65535) {
      spdlog::error("memif bench: packet size {} is outside 60..65535 bytes", s);
      return kExitUsage;
    }
  if (o.buffer_size < 128 || o.log2_ring < 1 || o.log2_ring > 14 || o.burst < 1 || o.duration <= 0) {
    spdlog::error("memif bench: bad --buffer-size, --ring-size, --burst or --duration");
    return kExitUsage;
  }
  const MachineInfo machine = describe_machine();
  std::pair<int, int> cores{0, 0};
  try {
    if (!o.cores.empty()) {
      cores = parse_core_pair(o.cores, machine.cpus_allowed, "memif bench");
    } else if (machine.cpus_allowed.size() >= 2) {
      cores = {machine.cpus_allowed[0], machine.cpus_allowed[1]};
    } else {
      spdlog::error("memif bench: needs two CPUs (sender and receiver busy-poll), this process may use {}",
                    machine.cpus_allowed.size());
      return kExitUsage;
    }
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return kExitUsage;
  }
  const std::string dpdk_missing = o.testpmd ? testpmd::testpmd_unavailable_reason() : std::string("--no-testpmd");

  std::vector<CaseResult> results;
  for (std::uint32_t size : o.sizes)
    for (memif::Role sender_role : {memif::Role::slave, memif::Role::master})
      for (auto [snd, rcv] : {std::pair{Impl::dpdk, Impl::dpdk}, std::pair{Impl::shmlink, Impl::shmlink},
                              std::pair{Impl::shmlink, Impl::dpdk}, std::pair{Impl::dpdk, Impl::shmlink}}) {
        const bool uses_dpdk = snd == Impl::dpdk || rcv == Impl::dpdk;
        const bool is_mixed = snd != rcv;
        CaseResult r;
        r.spec = {snd, rcv, sender_role, size};
        if (uses_dpdk && !dpdk_missing.empty()) r.skipped = dpdk_missing;
        else if (is_mixed && !o.mixed) r.skipped = "--no-mixed";
        results.push_back(std::move(r));
      }

  char tmpl[] = "/tmp/shmlink-memif-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    spdlog::error("memif bench: mkdtemp /tmp: {}", std::strerror(errno));
    return kExitFailure;
  }
  const std::string log_dir = tmpl;
  StopSignals signals;
  int serial = 0;
  const int rounds = std::max(1, o.rounds);
  const auto t0 = mono_ns();
  for (int round = 0; round < rounds && !stop_requested(); ++round) {
    for (CaseResult& r : results) {
      if (!r.skipped.empty() || stop_requested()) continue;
      if (!o.json && !o.markdown)
        std::cerr << fmt::format("{:<34} {:>5} B ...", case_label(r.spec), r.spec.size) << std::flush;
      auto [pps, err] = run_case_once(r.spec, o, cores.first, cores.second, log_dir, serial++);
      if (err.empty()) {
        r.pps.push_back(pps);
        if (!o.json && !o.markdown) std::cerr << fmt::format(" {:.3f} Mpps\n", pps / 1e6);
      } else {
        r.notes.push_back(err);
        if (!o.json && !o.markdown) std::cerr << " failed\n";
        spdlog::warn("memif bench: {} {} B: {}", case_label(r.spec), r.spec.size, err);
      }
    }
  }
  const double wall_s = static_cast<double>(mono_ns() - t0) / 1e9;
  std::error_code ec;
  std::filesystem::remove_all(log_dir, ec);

  // ---- the document ----
  Json doc;
  doc["schema"] = kMemifBenchSchema;
  doc["shmlink_version"] = SHMLINK_CLI_VERSION;
  doc["machine"] = machine_json(machine);
  doc["config"] = Json{{"sender_cpu", cores.first},
                       {"receiver_cpu", cores.second},
                       {"log2_ring_size", o.log2_ring},
                       {"buffer_size", o.buffer_size},
                       {"burst", o.burst},
                       {"warmup_s", o.warmup},
                       {"duration_s", o.duration},
                       {"rounds", rounds},
                       {"wall_s", wall_s},
                       {"dpdk", dpdk_missing.empty() ? Json(testpmd::testpmd_path()) : Json(nullptr)},
                       {"dpdk_skipped", dpdk_missing.empty() ? Json(nullptr) : Json(dpdk_missing)}};
  Json cases = Json::array();
  bool shmlink_failed = false;
  std::vector<std::string> missed;
  for (const CaseResult& r : results) {
    Json c;
    c["sender"] = Json{{"impl", impl_name(r.spec.sender)}, {"role", role_name(r.spec.sender_role)}};
    c["receiver"] = Json{{"impl", impl_name(r.spec.receiver)},
                         {"role", role_name(r.spec.sender_role == memif::Role::master ? memif::Role::slave
                                                                                     : memif::Role::master)}};
    c["direction"] = direction_name(r.spec.sender_role);
    c["frame_bytes"] = r.spec.size;
    c["skipped"] = r.skipped.empty() ? Json(nullptr) : Json(r.skipped);
    c["runs"] = r.pps.size() + r.notes.size();
    c["runs_ok"] = r.pps.size();
    c["errors"] = r.notes;
    std::optional<double> pps;
    if (!r.pps.empty()) {
      std::vector<double> v = r.pps;
      pps = median_of(v);
    }
    if (!pps && r.skipped.empty() && r.spec.sender == Impl::shmlink && r.spec.receiver == Impl::shmlink)
      shmlink_failed = true;
    c["packets_per_s"] = number_or_null(pps);
    c["gbit_per_s"] = number_or_null(pps ? std::optional<double>(*pps * r.spec.size * 8 / 1e9) : std::nullopt);
    const std::optional<double> ref = dpdk_reference(results, r.spec);
    std::optional<double> ratio;
    if (pps && ref && *ref > 0 && !(r.spec.sender == Impl::dpdk && r.spec.receiver == Impl::dpdk)) ratio = *pps / *ref;
    c["ratio_vs_dpdk"] = number_or_null(ratio);
    const bool targeted = r.spec.sender == Impl::shmlink && r.spec.receiver == Impl::shmlink && r.spec.size == kTargetSize;
    c["target"] = targeted ? Json(kTargetRatio) : Json(nullptr);
    c["meets_target"] = targeted && ratio ? Json(*ratio >= kTargetRatio) : Json(nullptr);
    if (targeted && ratio && *ratio < kTargetRatio) missed.push_back(case_label(r.spec));
    cases.push_back(std::move(c));
  }
  doc["cases"] = std::move(cases);

  if (!o.save.empty()) {
    std::ofstream out(o.save);
    out << json_text(doc) << '\n';
    if (!out) spdlog::error("memif bench: cannot write {}", o.save);
  }
  if (o.json) {
    print_json(doc);
    return shmlink_failed ? kExitFailure : kExitOk;
  }

  // ---- the table ----
  const bool md = o.markdown;
  const std::string machine_line =
      fmt::format("{}, {} CPUs online{}, {}", machine.cpu_model, machine.cores_online,
                  machine.virtual_machine ? " (virtual machine)" : "", machine.kernel);
  const std::string run_line = fmt::format(
      "sender on CPU {}, receiver on CPU {} (one core each, busy-polling); one queue, {} slots, {}-byte buffers, "
      "bursts of {}; {} s measured after {} s of warm-up per case",
      cores.first, cores.second, 1u << o.log2_ring, o.buffer_size, o.burst, o.duration, o.warmup);
  std::cout << (md ? "**shmlink memif bench**: " : "shmlink memif bench: ") << machine_line << (md ? "\n\n" : "\n")
            << run_line << (md ? "\n\n" : "\n\n");
  if (!dpdk_missing.empty()) std::cout << "DPDK cases skipped: " << dpdk_missing << (md ? "\n\n" : "\n\n");
  Table t;
  t.headers = {"sender", "receiver", "ring", "frame B", "Mpps", "Gbit/s", "x dpdk", "runs ok", "target"};
  t.right_aligned = {false, false, false, true, true, true, true, true, false};
  for (const Json& c : doc["cases"]) {
    if (c["skipped"].is_string() && c["skipped"].get<std::string>() == dpdk_missing && !dpdk_missing.empty()) continue;
    const auto cell_num = [](const Json& v, const char* f) { return v.is_number() ? fmt::format(fmt::runtime(f), v.get<double>()) : std::string("-"); };
    std::string target = "-";
    if (c["target"].is_number())
      target = c["meets_target"].is_boolean() ? fmt::format(">={:.1f} {}", c["target"].get<double>(),
                                                            c["meets_target"].get<bool>() ? "ok" : "MISSED")
                                              : fmt::format(">={:.1f} ?", c["target"].get<double>());
    std::string mpps = c["packets_per_s"].is_number() ? fmt::format("{:.3f}", c["packets_per_s"].get<double>() / 1e6)
                                                      : (c["skipped"].is_string() ? "skipped" : "failed");
    t.rows.push_back({{fmt::format("{} {}", c["sender"]["impl"].get<std::string>(), c["sender"]["role"].get<std::string>())},
                      {fmt::format("{} {}", c["receiver"]["impl"].get<std::string>(), c["receiver"]["role"].get<std::string>())},
                      {c["direction"].get<std::string>() == "s2m" ? "S2M" : "M2S"},
                      {std::to_string(c["frame_bytes"].get<std::uint32_t>())},
                      {mpps},
                      {cell_num(c["gbit_per_s"], "{:.2f}")},
                      {cell_num(c["ratio_vs_dpdk"], "{:.2f}")},
                      {fmt::format("{}/{}", c["runs_ok"].get<std::size_t>(), c["runs"].get<std::size_t>())},
                      {target}});
  }
  std::cout << (md ? markdown_table(t) : t.render(false));
  std::cout << "\nGbit/s counts frame bytes only (no preamble, FCS or gap); x dpdk = rate / the DPDK -> DPDK rate "
               "of the same ring direction and size; Mpps is the median of the runs that completed.\n";
  bool failures = false;
  for (const Json& c : doc["cases"]) failures = failures || !c["errors"].empty();
  if (failures) {
    std::cout << (md ? "\nFailed runs:\n\n" : "\nFailed runs:\n");
    for (const Json& c : doc["cases"])
      for (const Json& e : c["errors"]) {
        std::string text = e.get<std::string>();
        if (const auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);  // first line only
        std::cout << fmt::format("- {} {} -> {} {}, {} B: {}\n", c["sender"]["impl"].get<std::string>(),
                                 c["sender"]["role"].get<std::string>(), c["receiver"]["impl"].get<std::string>(),
                                 c["receiver"]["role"].get<std::string>(), c["frame_bytes"].get<std::uint32_t>(), text);
      }
  }
  if (!missed.empty()) std::cout << "target missed: " << fmt::format("{}", fmt::join(missed, "; ")) << '\n';
  return shmlink_failed ? kExitFailure : kExitOk;
}

}  // namespace shmlink::cli::bench
