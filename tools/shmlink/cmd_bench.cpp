// SPDX-License-Identifier: MIT
// `shmlink bench stream`: shmlink's stream paths next to the raw floors, in one run, as
// ratios (docs/bench.md, "How to measure"): one-way latency of spin, hybrid, futex
// and semaphore waits against a cache-line ping-pong, a futex ping-pong and a pipe between two
// pinned processes; write/read bandwidth against memcpy; the cost of a write nobody waits for.
#include "bench_common.hpp"
#include "common.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#ifndef SHMLINK_CLI_VERSION
#define SHMLINK_CLI_VERSION "unknown"
#endif

namespace shmlink::cli {

namespace {

using namespace bench;

/// Name of the JSON document's schema (docs/bench.md).
constexpr const char* kBenchSchema = "shmlink-bench-stream/1";
/// Bandwidth target: write + read_copy of large frames at >= 80% of memcpy.
constexpr double kBandwidthTarget = 0.8;
/// Frames at least this large carry the bandwidth target.
constexpr std::size_t kBandwidthTargetFrom = std::size_t{4} << 20;

/// Options of `bench stream`.
struct BenchStreamOptions {
  std::int64_t samples = 100000;  ///< round trips per mode
  int rounds = 5;                 ///< interleaved rounds
  std::int64_t warmup = 1000;     ///< untimed round trips per run
  double max_seconds = 30.0;      ///< time budget per latency mode
  std::string cores;              ///< "A,B"
  std::string sizes;              ///< "4K,64K,..."
  std::string dir;                ///< base directory of the scratch directory
  bool quick = false;             ///< short run
  bool json = false;              ///< JSON on stdout
  bool markdown = false;          ///< Markdown tables on stdout
  std::string save;               ///< also write the JSON document to this file
  std::string region;             ///< --region [PATH]: "" = a region in the scratch directory
  bool no_post_semaphores = false;  ///< spin/hybrid/futex writes skip the semaphore posts
  bool progress = false;          ///< progress lines on stderr even when it is not a terminal
  CLI::App* app = nullptr;        ///< the subcommand, to tell given options from defaults
};

/// A number, or null when absent.
Json num_or_null(std::optional<double> v) { return v ? Json(*v) : Json(nullptr); }

/// candidate / floor, or nullopt when the floor is 0.
std::optional<double> ratio(double candidate, double floor) {
  if (floor <= 0) return std::nullopt;
  return candidate / floor;
}

/// Everything a report needs, computed once.
struct LatencyRow {
  const LatencyResult* r = nullptr;
  Percentiles p;                    ///< one-way ns
  std::optional<Percentiles> floor; ///< the floor's one-way ns (candidates)
  std::optional<double> pipe_p50;   ///< the pipe's one-way p50
  std::optional<double> file_p50;   ///< a candidate run in a place: the same mode's p50 on files
};

/// The JSON entry of one latency mode.
Json latency_json(const LatencyRow& row) {
  const LatencyResult& r = *row.r;
  const bool floor = mode_is_floor(r.mode);
  const bool run = r.skipped.empty() && !r.round_trips_ns.empty();
  Json j;
  j["mode"] = result_name(r);
  if (!r.placement.empty()) j["placement"] = r.placement;
  j["kind"] = floor ? "floor" : "candidate";
  j["floor"] = floor ? Json(nullptr) : Json(mode_name(mode_floor(r.mode)));
  j["description"] = mode_description(r.mode);
  j["skipped"] = r.skipped.empty() ? Json(nullptr) : Json(r.skipped);
  j["samples"] = r.round_trips_ns.size();
  j["runs"] = r.runs;
  if (run) {
    j["one_way_ns"] = Json{{"min", row.p.min}, {"p50", row.p.p50}, {"p90", row.p.p90},
                           {"p99", row.p.p99}, {"p999", row.p.p999}, {"max", row.p.max}};
    const double msgs = 2.0 * static_cast<double>(r.round_trips_ns.size());
    const double a = static_cast<double>(r.initiator_cpu_ns) / msgs;
    const double b = static_cast<double>(r.responder_cpu_ns) / msgs;
    j["cpu_ns_per_message"] = Json{{"initiator", a}, {"responder", b}, {"total", a + b}};
    j["cpu_busy_fraction"] =
        r.wall_ns > 0 ? Json(static_cast<double>(r.initiator_cpu_ns + r.responder_cpu_ns) / (2.0 * static_cast<double>(r.wall_ns)))
                      : Json(nullptr);
  } else {
    j["one_way_ns"] = nullptr;
    j["cpu_ns_per_message"] = nullptr;
    j["cpu_busy_fraction"] = nullptr;
  }
  j["involuntary_switches"] = r.involuntary_switches;
  std::optional<double> r50, r99, r999;
  if (run && row.floor) {
    r50 = ratio(row.p.p50, row.floor->p50);
    r99 = ratio(row.p.p99, row.floor->p99);
    r999 = ratio(row.p.p999, row.floor->p999);
  }
  j["ratio_p50"] = num_or_null(r50);
  j["ratio_p99"] = num_or_null(r99);
  j["ratio_p999"] = num_or_null(r999);
  j["ratio_vs_pipe_p50"] = run && row.pipe_p50 && r.mode != LatencyMode::pipe ? num_or_null(ratio(row.p.p50, *row.pipe_p50))
                                                                              : Json(nullptr);
  if (!r.placement.empty()) j["ratio_vs_file_p50"] = run && row.file_p50 ? num_or_null(ratio(row.p.p50, *row.file_p50)) : Json(nullptr);
  const std::optional<double> target = mode_target(r.mode);
  j["target"] = num_or_null(target);
  j["meets_target"] = target && r50 ? Json(*r50 <= *target) : Json(nullptr);
  return j;
}

/// The JSON entry of one frame size.
Json bandwidth_json(const BandwidthResult& b) {
  const double s = static_cast<double>(b.frame_bytes);
  auto gbps = [](double bytes, double ns) { return ns > 0 ? bytes / ns : 0.0; };  // bytes/ns = GB/s
  const double memcpy_gbps = gbps(s, b.memcpy_ns);
  const double chain_gbps = gbps(2 * s, b.chain_ns);
  const double write_gbps = gbps(s, b.write_ns);
  const double read_gbps = gbps(s, b.read_copy_ns);
  const double wr_gbps = gbps(2 * s, b.write_read_ns);
  const std::optional<double> r_wr = ratio(wr_gbps, memcpy_gbps);
  const bool has_target = b.frame_bytes >= kBandwidthTargetFrom;
  Json j;
  j["frame_bytes"] = b.frame_bytes;
  j["memcpy_gb_per_s"] = memcpy_gbps;
  j["memcpy_chain_gb_per_s"] = chain_gbps;
  j["write_gb_per_s"] = write_gbps;
  j["read_copy_gb_per_s"] = read_gbps;
  j["write_read_gb_per_s"] = wr_gbps;
  j["ratio_write"] = num_or_null(ratio(write_gbps, memcpy_gbps));
  j["ratio_read_copy"] = num_or_null(ratio(read_gbps, memcpy_gbps));
  j["ratio_write_read"] = num_or_null(r_wr);
  j["ratio_write_read_vs_chain"] = num_or_null(ratio(wr_gbps, chain_gbps));
  j["target"] = has_target ? Json(kBandwidthTarget) : Json(nullptr);
  j["meets_target"] = has_target && r_wr ? Json(*r_wr >= kBandwidthTarget) : Json(nullptr);
  j["ns_per_frame"] = Json{{"memcpy", b.memcpy_ns}, {"memcpy_chain", b.chain_ns}, {"write", b.write_ns}, {"read_copy", b.read_copy_ns},
                           {"write_read", b.write_read_ns}};
  return j;
}

/// The JSON object of the write-cost measurement.
Json write_cost_json(const WriteCostResult& w) {
  Json j;
  j["frame_bytes"] = w.frame_bytes;
  j["semaphores"] = w.semaphores;
  j["raw_publish_ns"] = w.raw_publish_ns;
  j["write_ns"] = w.write_ns;
  j["write_post_semaphores_ns"] = w.write_post_ns;
  j["ratio_write"] = num_or_null(ratio(w.write_ns, w.raw_publish_ns));
  j["ratio_write_post_semaphores"] = num_or_null(ratio(w.write_post_ns, w.raw_publish_ns));
  j["syscall_ns"] = w.syscall_ns;
  j["clock_gettime_ns"] = w.clock_ns;
  j["target"] = "no_syscall";
  j["meets_target"] = w.write_ns < w.syscall_ns && w.write_post_ns < w.syscall_ns;
  return j;
}

/// "123" / "1.2k" style for ns in tables (one decimal below 100).
std::string ns_text(double ns) {
  if (ns < 100) return fmt::format("{:.1f}", ns);
  if (ns < 100000) return fmt::format("{:.0f}", ns);
  return fmt::format("{:.0f}k", ns / 1000);
}

/// A ratio cell, or "-".
std::string ratio_text(const Json& v) { return v.is_number() ? fmt::format("{:.2f}", v.get<double>()) : "-"; }

/// The target cell of an entry with "target" and "meets_target", coloured when it has one.
Cell target_cell(const Json& j, bool at_least) {
  if (!j["target"].is_number() || !j["meets_target"].is_boolean()) return {"-", nullptr};
  const bool ok = j["meets_target"].get<bool>();
  return {fmt::format("{}{:.2g} {}", at_least ? ">=" : "<=", j["target"].get<double>(), ok ? "ok" : "MISSED"),
          ok ? "32" : "31"};
}

/// The table of the write-cost entry `w` of a report.
Table write_cost_table(const Json& w) {
  Table wc;
  wc.headers = {"raw publish", "write", "write+posts", "x write", "x write+posts", "syscall", "clock_gettime", "target"};
  wc.right_aligned = {true, true, true, true, true, true, true, false};
  const bool ok = w["meets_target"].get<bool>();
  wc.rows.push_back({{ns_text(w["raw_publish_ns"].get<double>())},
                     {ns_text(w["write_ns"].get<double>())},
                     {ns_text(w["write_post_semaphores_ns"].get<double>())},
                     {ratio_text(w["ratio_write"])},
                     {ratio_text(w["ratio_write_post_semaphores"])},
                     {ns_text(w["syscall_ns"].get<double>())},
                     {ns_text(w["clock_gettime_ns"].get<double>())},
                     {ok ? "no syscall: ok" : "no syscall: MISSED", ok ? "32" : "31"}});
  return wc;
}

/// Prints the human (or Markdown) report of a finished (or interrupted) run from its JSON document.
void print_report(const Json& doc, bool markdown, bool colour) {
  const Json& m = doc["machine"];
  const Json& c = doc["config"];
  std::string cpus;
  if (m["pinned_cores"].is_array()) {
    cpus = fmt::format("initiator on CPU {}, responder on CPU {}", m["pinned_cores"][0].get<int>(),
                       m["pinned_cores"][1].get<int>());
  } else {
    cpus = "both processes unpinned (see notes)";
  }
  const std::string machine_line =
      fmt::format("{}, {} CPUs online{}, {}, clocksource {}", m["cpu_model"].get<std::string>(),
                  m["cores_online"].get<int>(), m["virtual_machine"].get<bool>() ? " (virtual machine)" : "",
                  m["kernel"].get<std::string>(), m["clocksource"].get<std::string>());
  const std::string run_line =
      fmt::format("{}; {} round trips per mode in {} interleaved rounds; {}-byte frames{}", cpus,
                  c["samples"].get<std::int64_t>(), c["rounds"].get<int>(), c["payload_bytes"].get<std::size_t>(),
                  c["post_semaphores"].get<bool>() ? "" : "; spin/hybrid/futex writes do not post semaphores");
  auto section = [&](const std::string& title, const Table& t) {
    if (markdown) {
      std::cout << "\n**" << title << "**\n\n" << markdown_table(t);
    } else {
      std::cout << '\n' << title << '\n' << t.render(colour);
    }
  };
  if (markdown) {
    std::cout << "**shmlink bench stream**: " << machine_line << "\n\n" << run_line << '\n';
  } else {
    std::cout << "shmlink bench stream: " << machine_line << '\n' << run_line << '\n';
  }

  Table lat;
  lat.headers = {"mode", "vs", "min", "p50", "p90", "p99", "p99.9", "max", "cpu/msg", "x p50", "x p99", "target"};
  lat.right_aligned = {false, false, true, true, true, true, true, true, true, true, true, false};
  for (const Json& e : doc["latency"]) {
    std::vector<Cell> row{{e["mode"].get<std::string>()}, {e["floor"].is_string() ? e["floor"].get<std::string>() : "-"}};
    if (e["one_way_ns"].is_object()) {
      const Json& p = e["one_way_ns"];
      for (const char* k : {"min", "p50", "p90", "p99", "p999", "max"}) row.push_back({ns_text(p[k].get<double>())});
      row.push_back({ns_text(e["cpu_ns_per_message"]["total"].get<double>())});
    } else {
      row.push_back({e["skipped"].is_string() ? "skipped" : "not run"});  // not run: interrupted first
      for (int i = 0; i < 6; ++i) row.push_back({"-"});
    }
    row.push_back({ratio_text(e["ratio_p50"])});
    row.push_back({ratio_text(e["ratio_p99"])});
    row.push_back(target_cell(e, false));
    lat.rows.push_back(std::move(row));
  }
  section("One-way latency, ns (round trip / 2); x = candidate / floor at the same percentile", lat);

  Table bw;
  bw.headers = {"frame", "memcpy", "2 memcpy", "write", "read_copy", "write+read", "x write", "x read", "x w+r",
                "x w+r/2 memcpy", "target"};
  bw.right_aligned = {true, true, true, true, true, true, true, true, true, true, false};
  for (const Json& e : doc["bandwidth"]) {
    bw.rows.push_back({{size_text(e["frame_bytes"].get<std::size_t>())},
                       {fmt::format("{:.2f}", e["memcpy_gb_per_s"].get<double>())},
                       {fmt::format("{:.2f}", e["memcpy_chain_gb_per_s"].get<double>())},
                       {fmt::format("{:.2f}", e["write_gb_per_s"].get<double>())},
                       {fmt::format("{:.2f}", e["read_copy_gb_per_s"].get<double>())},
                       {fmt::format("{:.2f}", e["write_read_gb_per_s"].get<double>())},
                       {ratio_text(e["ratio_write"])},
                       {ratio_text(e["ratio_read_copy"])},
                       {ratio_text(e["ratio_write_read"])},
                       {ratio_text(e["ratio_write_read_vs_chain"])},
                       target_cell(e, true)});
  }
  if (!bw.rows.empty()) {  // empty when the run was interrupted before the bandwidth part
    section("Bandwidth, GB/s of bytes copied (write+read and 2 memcpy copy every byte twice: src -> mid -> dst); "
            "x = / memcpy",
            bw);
  }

  const Json& w = doc["write_cost"];
  if (w.is_object()) {  // null when the run was interrupted before it
    section(fmt::format("Write with nobody waiting, ns per {}-byte frame ({} semaphores)", w["frame_bytes"].get<int>(),
                        w["semaphores"].get<int>()),
            write_cost_table(w));
  }

  if (!doc["notes"].empty()) {
    std::cout << (markdown ? "\nNotes:\n\n" : "\nNotes:\n");
    for (const Json& n : doc["notes"]) std::cout << "- " << n.get<std::string>() << '\n';
  }
}

/// Progress of a long bench on stderr: which part, mode and round runs now. On a terminal one
/// line is rewritten in place (and cleared when the run ends); with --progress and stderr not a
/// terminal, one line per step (for logs and tests); otherwise nothing.
class Progress {
 public:
  /// @param forced --progress: report even when stderr is not a terminal.
  explicit Progress(bool forced) : tty_(is_tty(2)), on_(tty_ || forced) {}
  ~Progress() { clear(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Reports the step starting now ("latency round 2/5: futex (5/9)").
  void step(const std::string& what) {
    if (!on_) return;
    if (tty_) {
      std::fprintf(stderr, "\r\x1b[Kshmlink bench: %s", what.c_str());
      shown_ = true;
    } else {
      std::fprintf(stderr, "shmlink bench: %s\n", what.c_str());
    }
    std::fflush(stderr);
  }

  /// Erases the terminal line, so the report starts on a clean screen.
  void clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  bool tty_ = false;
  bool on_ = false;
  bool shown_ = false;
};

/// Runs `bench stream`.
int run_bench_stream(BenchStreamOptions opt) {
  auto given = [&](const char* name) { return opt.app->count(name) > 0; };
  std::vector<std::size_t> sizes = {4096, 65536, std::size_t{1} << 20, std::size_t{4} << 20, std::size_t{16} << 20};
  int batches = 3 * opt.rounds;
  double batch_seconds = 0.02;
  if (opt.quick) {
    if (!given("--samples")) opt.samples = 5000;
    if (!given("--rounds")) opt.rounds = 2;
    if (!given("--warmup")) opt.warmup = 100;
    if (!given("--max-seconds")) opt.max_seconds = 1.0;
    sizes = {4096, 65536, std::size_t{4} << 20};
    batches = 2 * opt.rounds;
    batch_seconds = 0.004;
  }
  if (!opt.sizes.empty()) sizes = parse_sizes(opt.sizes);

  const MachineInfo machine = describe_machine();
  std::vector<std::string> notes;
  LatencyConfig lc;
  lc.samples = opt.samples;
  lc.rounds = opt.rounds;
  lc.warmup = opt.warmup;
  lc.max_seconds_per_mode = opt.max_seconds;
  lc.post_semaphores = !opt.no_post_semaphores;
  if (!opt.cores.empty()) {
    lc.cores = parse_core_pair(opt.cores, machine.cpus_allowed, "bench");
  } else if (machine.cpus_allowed.size() >= 2) {
    lc.cores = std::make_pair(machine.cpus_allowed[0], machine.cpus_allowed[1]);
  } else {
    notes.push_back("only one CPU is available: the two processes run unpinned on it, and the spinning modes "
                    "(cacheline, cacheline_payload, spin) are skipped");
  }

  StopSignals signals;
  AffinityGuard affinity;
  if (lc.cores && !(pin_to_cpu(lc.cores->second) && pin_to_cpu(lc.cores->first))) {
    notes.push_back(fmt::format("pinning to CPUs {} and {} failed ({}): the processes run unpinned",
                                lc.cores->first, lc.cores->second, std::strerror(errno)));
    lc.cores.reset();
    affinity.restore();
  }
  ScratchDir scratch(resolve_directory(opt.dir));
  lc.stream_dir = scratch.path();
  std::shared_ptr<BenchRegion> region;
  if (opt.app->count("--region") > 0) {
    // Two small streams (the ping/pong frames): a few pages each.
    region = std::make_shared<BenchRegion>(opt.region, scratch.path(), 4 * lc.payload_bytes + (std::size_t{1} << 20));
    lc.place = stream_place(region);
  }
  ThroughputConfig tc;
  tc.frame_sizes = sizes;
  tc.batches = batches;
  tc.batch_seconds = batch_seconds;
  tc.stream_dir = scratch.path();

  const LoadMeter load_meter;
  const double clock_ns = clock_overhead_ns();

  // Ctrl-C (or SIGTERM) ends the run where it is: the rows completed so far are reported, and
  // the exit code says the run was interrupted.
  Progress progress(opt.progress);
  lc.progress = [&progress](const std::string& what) { progress.step(what); };
  bool interrupted = false;
  const std::vector<LatencyResult> lat = run_latency(lc, notes, &interrupted);
  std::vector<BandwidthResult> bw;
  std::optional<WriteCostResult> wc;
  if (!interrupted) {
    progress.step("bandwidth");
    bw = run_bandwidth(tc, &interrupted);
  }
  if (!interrupted) {
    progress.step("write with nobody waiting");
    try {
      wc = run_write_cost(tc);
    } catch (const Error& e) {
      if (e.errc() != Errc::interrupted) throw;
      interrupted = true;
    }
  }
  progress.clear();
  if (interrupted) {
    std::size_t runs = 0;
    for (const LatencyResult& r : lat) runs += static_cast<std::size_t>(r.runs);
    notes.push_back(fmt::format("interrupted (Ctrl-C or SIGTERM): the report holds what was measured before: {} "
                                "latency runs, {} of {} bandwidth frame sizes, {} write cost",
                                runs, bw.size(), sizes.size(), wc ? "the" : "no"));
  }

  const Json load = load_meter.finish(notes);
  notes.push_back(fmt::format("every round trip is timed with two CLOCK_MONOTONIC reads; one read costs about {:.0f} ns "
                              "here and is included in floors and candidates alike",
                              clock_ns));

  // Percentiles of every mode first: ratios need the floors'.
  std::vector<LatencyRow> rows;
  for (const LatencyResult& r : lat) {
    LatencyRow row;
    row.r = &r;
    std::vector<std::int64_t> copy = r.round_trips_ns;
    row.p = percentiles_of(copy, 0.5);
    rows.push_back(row);
  }
  auto row_of = [&](LatencyMode m) -> const LatencyRow* {
    for (const LatencyRow& row : rows)
      if (row.r->mode == m && row.r->placement.empty() && row.r->skipped.empty() && !row.r->round_trips_ns.empty())
        return &row;
    return nullptr;
  };
  for (LatencyRow& row : rows) {
    if (!mode_is_floor(row.r->mode)) {
      if (const LatencyRow* f = row_of(mode_floor(row.r->mode))) row.floor = f->p;
    }
    if (const LatencyRow* p = row_of(LatencyMode::pipe)) row.pipe_p50 = p->p.p50;
    if (!row.r->placement.empty()) {
      if (const LatencyRow* f = row_of(row.r->mode)) row.file_p50 = f->p.p50;
    }
  }

  {
    const LatencyRow* spin = row_of(LatencyMode::spin);
    const LatencyRow* two_lines = row_of(LatencyMode::cacheline_payload);
    if (spin != nullptr && two_lines != nullptr && two_lines->p.p50 > 0) {
      notes.push_back(fmt::format("spin p50 is {:.2f}x cacheline_payload p50: a frame crosses at least two cache lines "
                                  "per hop (counter and data), the bare cacheline floor one",
                                  spin->p.p50 / two_lines->p.p50));
    }
  }

  Json doc;
  doc["schema_version"] = kSchemaVersion;
  doc["schema"] = kBenchSchema;
  doc["shmlink_version"] = SHMLINK_CLI_VERSION;
  Json mj = machine_json(machine);
  mj["pinned_cores"] = lc.cores ? Json::array({lc.cores->first, lc.cores->second}) : Json(nullptr);
  doc["machine"] = mj;
  Json cj;
  cj["quick"] = opt.quick;
  cj["samples"] = opt.samples;
  cj["rounds"] = opt.rounds;
  cj["warmup"] = opt.warmup;
  cj["max_seconds_per_mode"] = opt.max_seconds;
  cj["payload_bytes"] = lc.payload_bytes;
  cj["post_semaphores"] = lc.post_semaphores;
  cj["futex_spin_ns"] = std::chrono::nanoseconds(kDefaultSpin).count();
  cj["frame_sizes"] = sizes;
  cj["bandwidth_batches"] = batches;
  cj["batch_seconds"] = batch_seconds;
  cj["clock_overhead_ns"] = clock_ns;
  cj["region"] = region ? Json(region->path()) : Json(nullptr);
  doc["config"] = cj;
  Json lj = Json::array();
  for (const LatencyRow& row : rows) lj.push_back(latency_json(row));
  doc["latency"] = lj;
  Json bj = Json::array();
  for (const BandwidthResult& b : bw) bj.push_back(bandwidth_json(b));
  doc["bandwidth"] = bj;
  doc["write_cost"] = wc ? write_cost_json(*wc) : Json(nullptr);
  doc["load"] = load;
  doc["interrupted"] = interrupted;
  doc["notes"] = notes;

  if (!opt.save.empty()) {
    std::ofstream f(opt.save);
    f << json_text(doc) << "\n";
    if (!f) {
      spdlog::error("bench: cannot write {}: {}", opt.save, std::strerror(errno));
      return kExitFailure;
    }
  }
  if (opt.json) {
    print_json(doc);
  } else {
    print_report(doc, opt.markdown, !opt.markdown && colour_enabled(1));
  }
  std::cout << std::flush;
  return interrupted ? kExitInterrupted : kExitOk;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchStreamOptions>();
  CLI::App* sub = app.add_subcommand("bench", "Measure shmlink against raw floors (docs/bench.md)");
  sub->require_subcommand(1);
  CLI::App* stream = sub->add_subcommand(
      "stream",
      "Stream latency (spin, hybrid, futex, semaphore waits vs cache-line and futex ping-pong and a pipe, two pinned "
      "processes), write/read bandwidth vs memcpy, and the cost of a write nobody waits for; ratios in one run. "
      "Ctrl-C prints the rows measured so far and exits 130");
  opt->app = stream;
  stream->add_option("--samples", opt->samples, "Timed round trips per latency mode, over all rounds (default 100000)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
  stream->add_option("--rounds", opt->rounds, "Interleaved rounds (floor, candidate, floor, ...) (default 5)")
      ->check(CLI::Range(1, 1000));
  stream->add_option("--warmup", opt->warmup, "Untimed round trips at the start of every run (default 1000)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
  stream->add_option("--max-seconds", opt->max_seconds, "Time budget of one latency mode over all rounds (default 30)")
      ->check(CLI::Range(0.001, 86400.0));
  stream->add_option("--cores", opt->cores, "CPUs of the two processes, 'A,B' (default: the first two allowed)");
  stream->add_option("--sizes", opt->sizes, "Bandwidth frame sizes (default 4K,64K,1M,4M,16M; K/M = KiB/MiB)");
  stream->add_option("--dir", opt->dir,
                     "Where to make the scratch directory for the benchmark's streams (default: the stream directory)");
  stream->add_flag("--quick", opt->quick, "Short run: 5000 samples, 2 rounds, 4K/64K/4M frames, 1 s per mode");
  stream->add_flag("--json", opt->json, "JSON output (schema shmlink-bench-stream/1, docs/bench.md)");
  stream->add_flag("--markdown", opt->markdown, "Markdown tables (for README.md)");
  stream->add_option("--save", opt->save, "Also write the JSON document to FILE (for python3 -m shmlink.plot)");
  stream->add_option("--region", opt->region,
                     "Also run the stream modes with their streams in a region (rows MODE@region, "
                     "ratio_vs_file_p50): created for the run at PATH (a name without '/' is NAME.region.shm in the "
                     "stream directory; default: in the scratch directory) and removed afterwards")
      ->expected(0, 1)
      ->type_name("[PATH]");
  stream->add_flag("--progress", opt->progress,
                   "Report each step (part, mode, round) on stderr even when it is not a terminal (on a terminal "
                   "the step is always shown, on one line)");
  stream->add_flag("--no-post-semaphores", opt->no_post_semaphores,
                   "spin/hybrid/futex writes pass post_semaphores = false (the semaphore mode still posts)");
  const Command queue = bench::add_bench_queue_command(*sub);  // `bench queue` (bench_queue.hpp)
  const Command bridge = bench::add_bench_bridge_command(*sub);  // `bench bridge` (cmd_bench_bridge.cpp)
  return {sub, [opt, stream, queue, bridge] {
            if (queue.app->parsed()) return queue.run();
            if (bridge.app->parsed()) return bridge.run();
            if (!stream->parsed()) return static_cast<int>(kExitUsage);
            return run_bench_stream(*opt);
          }};
}

}  // namespace shmlink::cli
