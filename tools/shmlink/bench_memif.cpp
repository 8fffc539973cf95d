// SPDX-License-Identifier: MIT
// `shmlink memif bench` (docs/bench.md "`shmlink memif bench`"): one-way packet rate through one
// memif queue, shmlink's implementation next to a libmemif-style reference loop (our own code, on
// the same ring layout) and DPDK's memif PMD (dpdk-testpmd txonly/rxonly), in the same run.
//
// Every case is one sender and one receiver, each a process pinned to its own CPU, joined by one
// memif interface (one ring each way, abstract socket). The master side starts first (a DPDK
// client connects once and never retries). Both implementations do the same memory work per
// packet: the sender copies the whole frame into the ring's buffers (DPDK's PMD copies the mbuf
// into them), the receiver copies it out (DPDK's PMD copies into an mbuf); receive queues are in
// polling mode, so no eventfd is written (DPDK sets MASK_INT on its polled rings too). The shmlink
// and reference ends also write a sequence number into each frame and check it on receipt.
//
// Rate: a shmlink receiver counts the packets it completed during `duration` seconds that start
// `warmup` seconds after its first packet; a testpmd receiver's rate is the median of the Rx-pps
// of its whole stats periods (--stats-period=1) after the warm-up.
#include "bench_memif.hpp"

#include "bench_common.hpp"
#include "harness/memif_ends.hpp"
#include "common.hpp"
#include <shmlink_tools/testpmd.hpp>

#include <shmlink/memif.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
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
constexpr const char* kMemifBenchSchema = "shmlink-bench-memif/2";
/// Target (issues 6 and 18): shmlink <-> shmlink at 64 B at least as fast as the libmemif-style
/// reference loop in the same run (the median of the per-round ratios) and, where testpmd ran in
/// this run, at least as fast as DPDK's PMD on both ends (the ratio of the medians): both are
/// judged, and a case that misses either misses the target.
constexpr double kTargetRatio = 1.0;
/// Packet size the target applies to, bytes.
constexpr std::uint32_t kTargetSize = 64;
/// 1-minute load average before the run at or above which the run is flagged busy.
constexpr double kBusyLoad = 1.0;

/// Which implementation runs one end of a case (memif_ends.hpp).
using Impl = MemifImpl;
/// What a receiving shmlink or reference end reports.
using ChildReport = MemifReport;
/// A shmlink or reference end (a forked child).
using ShmlinkSide = MemifEnd;

const char* impl_name(Impl i) { return i == Impl::shmlink ? "shmlink" : i == Impl::dpdk ? "dpdk" : "reference"; }
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
  std::vector<int> pps_round;     ///< the round of each pps entry (pairs cases of one round)
  std::vector<std::string> notes; ///< why a round failed or was skipped
  std::string skipped;            ///< non-empty: the case did not run at all, and why
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
  // The reference's ring, mapped before its ends are forked (both inherit it); unmapped on return.
  std::uint8_t* ref_memory = nullptr;
  const std::size_t ref_size = memif_reference_bytes(o.log2_ring, o.buffer_size);
  struct Unmap {
    std::uint8_t*& p;
    std::size_t n;
    ~Unmap() {
      if (p != nullptr) ::munmap(p, n);
    }
  } unmap{ref_memory, ref_size};
  if (spec.sender == Impl::reference) {
    void* m = ::mmap(nullptr, ref_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return {0, fmt::format("reference ring: mmap {} bytes: {}", ref_size, std::strerror(errno))};
    ref_memory = static_cast<std::uint8_t*>(m);
  }

  // Starts one end; "" or the error.
  auto start = [&](bool sender) -> std::string {
    const Impl impl = sender ? spec.sender : spec.receiver;
    const int cpu = sender ? send_cpu : recv_cpu;
    if (impl != Impl::dpdk) {
      MemifEndConfig c;
      c.impl = impl;
      c.ref_memory = ref_memory;
      c.check_seq = spec.sender != Impl::dpdk;
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
  if (spec.receiver != Impl::dpdk) {
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
  return fmt::format("{} {} -> {} {}", impl_name(s.sender), memif::role_name(s.sender_role), impl_name(s.receiver),
                     memif::role_name(rr));
}

/// The `impl` <-> `impl` case of the same direction and size as `s`, when it ran.
const CaseResult* same_kind(const std::vector<CaseResult>& all, const CaseSpec& s, Impl impl) {
  for (const CaseResult& r : all)
    if (r.spec.sender == impl && r.spec.receiver == impl && r.spec.sender_role == s.sender_role &&
        r.spec.size == s.size && !r.pps.empty())
      return &r;
  return nullptr;
}

/// The median rate of the `impl` <-> `impl` case of the same direction and size, when it ran.
std::optional<double> median_rate(const std::vector<CaseResult>& all, const CaseSpec& s, Impl impl) {
  const CaseResult* r = same_kind(all, s, impl);
  if (r == nullptr) return std::nullopt;
  std::vector<double> v = r->pps;
  return median_of(v);
}

/// Per-round ratios of `r` over `ref`: each round's rate over the same round's rate of `ref`
/// (rounds interleave the cases, so a pair shares the machine's state of that moment).
std::vector<double> paired_ratios(const CaseResult& r, const CaseResult& ref) {
  std::vector<double> out;
  for (std::size_t i = 0; i < r.pps.size(); ++i)
    for (std::size_t j = 0; j < ref.pps.size(); ++j)
      if (r.pps_round[i] == ref.pps_round[j] && ref.pps[j] > 0) out.push_back(r.pps[i] / ref.pps[j]);
  return out;
}

/// {"min", "median", "max"} of `v` (nulls when empty).
Json spread_json(std::vector<double> v) {
  if (v.empty()) return Json{{"min", nullptr}, {"median", nullptr}, {"max", nullptr}};
  const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  const double lo = *mn, hi = *mx;
  return Json{{"min", lo}, {"median", median_of(v)}, {"max", hi}};
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
      for (auto [snd, rcv] : {std::pair{Impl::dpdk, Impl::dpdk}, std::pair{Impl::reference, Impl::reference},
                              std::pair{Impl::shmlink, Impl::shmlink}, std::pair{Impl::shmlink, Impl::dpdk},
                              std::pair{Impl::dpdk, Impl::shmlink}}) {
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
  const std::vector<double> load_before = read_loadavg();
  int serial = 0;
  const int rounds = std::max(1, o.rounds);
  const auto t0 = mono_ns();
  for (int round = 0; round < rounds && !stop_requested(); ++round) {
    // Odd rounds run the cases in reverse order, so that no case always runs right after the
    // same other one (the reference before shmlink in even rounds, after it in odd ones).
    for (std::size_t i = 0; i < results.size(); ++i) {
      CaseResult& r = results[round % 2 == 0 ? i : results.size() - 1 - i];
      if (!r.skipped.empty() || stop_requested()) continue;
      if (!o.json && !o.markdown)
        std::cerr << fmt::format("round {}/{}: {:<38} {:>5} B ...", round + 1, rounds, case_label(r.spec), r.spec.size)
                  << std::flush;
      auto [pps, err] = run_case_once(r.spec, o, cores.first, cores.second, log_dir, serial++);
      if (err.empty()) {
        r.pps.push_back(pps);
        r.pps_round.push_back(round);
        if (!o.json && !o.markdown) std::cerr << fmt::format(" {:.3f} Mpps\n", pps / 1e6);
      } else {
        r.notes.push_back(err);
        if (!o.json && !o.markdown) std::cerr << " failed\n";
        spdlog::warn("memif bench: {} {} B: {}", case_label(r.spec), r.spec.size, err);
      }
    }
  }
  const double wall_s = static_cast<double>(mono_ns() - t0) / 1e9;
  const std::vector<double> load_after = read_loadavg();
  // Busy: other processes kept at least one CPU's worth of runnable work on average over the
  // minute before the run (the 1-minute load average, read before our own ends started).
  const bool busy = !load_before.empty() && load_before[0] >= kBusyLoad;
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
  doc["load"] = Json{{"loadavg_before", load_before}, {"loadavg_after", load_after},
                     {"busy", load_before.empty() ? Json(nullptr) : Json(busy)}};
  Json cases = Json::array();
  bool shmlink_failed = false;
  std::vector<std::string> missed;
  for (const CaseResult& r : results) {
    Json c;
    c["sender"] = Json{{"impl", impl_name(r.spec.sender)}, {"role", memif::role_name(r.spec.sender_role)}};
    c["receiver"] = Json{{"impl", impl_name(r.spec.receiver)},
                         {"role", memif::role_name(r.spec.sender_role == memif::Role::master ? memif::Role::slave
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
    if (!pps && r.skipped.empty() && r.spec.sender != Impl::dpdk && r.spec.receiver != Impl::dpdk)
      shmlink_failed = true;
    c["packets_per_s"] = number_or_null(pps);
    c["packets_per_s_spread"] = spread_json(r.pps);
    c["gbit_per_s"] = number_or_null(pps ? std::optional<double>(*pps * r.spec.size * 8 / 1e9) : std::nullopt);
    const std::optional<double> ref = median_rate(results, r.spec, Impl::dpdk);
    std::optional<double> ratio;
    if (pps && ref && *ref > 0 && !(r.spec.sender == Impl::dpdk && r.spec.receiver == Impl::dpdk)) ratio = *pps / *ref;
    c["ratio_vs_dpdk"] = number_or_null(ratio);
    // Against the reference loop: the median and spread of the per-round ratios.
    std::vector<double> ref_ratios;
    if (const CaseResult* rr = same_kind(results, r.spec, Impl::reference);
        rr != nullptr && !(r.spec.sender == Impl::reference && r.spec.receiver == Impl::reference))
      ref_ratios = paired_ratios(r, *rr);
    const Json ref_spread = spread_json(ref_ratios);
    c["ratio_vs_reference"] = ref_spread["median"];
    c["ratio_vs_reference_spread"] = ref_spread;
    const bool targeted = r.spec.sender == Impl::shmlink && r.spec.receiver == Impl::shmlink && r.spec.size == kTargetSize;
    c["target"] = targeted ? Json(kTargetRatio) : Json(nullptr);
    const bool judged = targeted && ref_spread["median"].is_number();
    const bool met = judged && ref_spread["median"].get<double>() >= kTargetRatio && (!ratio || *ratio >= kTargetRatio);
    c["meets_target"] = judged ? Json(met) : Json(nullptr);
    if (judged && !met) missed.push_back(case_label(r.spec));
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
  if (busy)
    std::cout << fmt::format("The machine was busy: load average {:.1f} before the run on {} allowed CPUs. Each end "
                             "busy-polls its own CPU, so the rates follow the scheduler more than the code, and the "
                             "ratios swing between rounds: compare runs on an idle machine.\n\n",
                             load_before[0], machine.cpus_allowed.size());
  Table t;
  t.headers = {"sender", "receiver", "ring", "frame B", "Mpps", "min..max", "Gbit/s", "x ref", "x ref min..max",
               "x dpdk", "runs ok", "target"};
  t.right_aligned = {false, false, false, true, true, true, true, true, true, true, true, false};
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
    const auto range = [](const Json& sp, double scale, const char* f) {
      if (!sp["min"].is_number()) return std::string("-");
      return fmt::format(fmt::runtime(f), sp["min"].get<double>() / scale, sp["max"].get<double>() / scale);
    };
    t.rows.push_back({{fmt::format("{} {}", c["sender"]["impl"].get<std::string>(), c["sender"]["role"].get<std::string>())},
                      {fmt::format("{} {}", c["receiver"]["impl"].get<std::string>(), c["receiver"]["role"].get<std::string>())},
                      {c["direction"].get<std::string>() == "s2m" ? "S2M" : "M2S"},
                      {std::to_string(c["frame_bytes"].get<std::uint32_t>())},
                      {mpps},
                      {range(c["packets_per_s_spread"], 1e6, "{:.2f}..{:.2f}")},
                      {cell_num(c["gbit_per_s"], "{:.2f}")},
                      {cell_num(c["ratio_vs_reference"], "{:.2f}")},
                      {range(c["ratio_vs_reference_spread"], 1.0, "{:.2f}..{:.2f}")},
                      {cell_num(c["ratio_vs_dpdk"], "{:.2f}")},
                      {fmt::format("{}/{}", c["runs_ok"].get<std::size_t>(), c["runs"].get<std::size_t>())},
                      {target}});
  }
  std::cout << (md ? markdown_table(t) : t.render(false));
  std::cout << "\nMpps is the median of the runs that completed (min..max beside it); Gbit/s counts frame bytes only "
               "(no preamble, FCS or gap); x ref = the median over rounds of rate / the reference -> reference rate "
               "of the same round, ring direction and size (the reference is a libmemif-style loop on the same ring "
               "layout, without the checks; min..max over rounds beside it); x dpdk = median rate / the DPDK -> DPDK "
               "median rate. The target (shmlink -> shmlink, 64 B) needs x ref >= 1.0 and, where DPDK ran, x dpdk "
               ">= 1.0.\n";
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
