// SPDX-License-Identifier: MIT
// `shmlink bench bridge` (docs/bench.md "Bridge"): options, the JSON document (schema
// "shmlink-bench-bridge/1") and the human or Markdown report of the measurements made by
// bench/harness/bridge_bench.cpp: a bridged stream's latency, rate, CPU and duplicates next to a
// raw ZeroMQ transfer of the same bytes and a local stream hop, in one run.
#include "bench_common.hpp"
#include "harness/bridge_bench.hpp"
#include "harness/queue_compare.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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

namespace shmlink::cli::bench {

namespace {

/// Name of the JSON document's schema (docs/bench.md).
constexpr const char* kBridgeBenchSchema = "shmlink-bench-bridge/1";
/// Reader latency p50 within this factor of raw ZeroMQ p50 + local hop p50.
constexpr double kLatencyTarget = 1.2;
/// Bridge MB/s (highest rate under 1 % skipped) at least this factor of raw ZeroMQ's.
constexpr double kThroughputTarget = 0.9;
/// "No CPU when idle": both processes together at most this fraction of one core.
constexpr double kIdleCpuTarget = 0.01;

/// Options of `bench bridge`.
struct BenchBridgeOptions {
  std::string sizes;            ///< "1K,64K,1M,16M"
  std::int64_t frames = 1000;   ///< timed latency frames per size and path
  std::int64_t warmup = 20;     ///< untimed latency frames first
  double duration = 1.0;        ///< seconds per rate step, raw ZeroMQ transfer, idle span
  std::string dir;              ///< base directory of the scratch directory
  bool json = false;            ///< JSON on stdout
  bool markdown = false;        ///< Markdown tables on stdout
  std::string save;             ///< also write the JSON document to this file
};

/// The percentiles object of a latency sample set (ns), or null when empty.
Json percentiles_json(std::vector<std::int64_t> v) {
  if (v.empty()) return nullptr;
  const Percentiles p = percentiles_of(v, 1.0);
  return Json{{"min", p.min}, {"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"p999", p.p999}, {"max", p.max}};
}

/// A number of `j` at `a`.`b`, or nullopt.
std::optional<double> at(const Json& j, const char* a, const char* b) {
  if (!j[a].is_object() || !j[a][b].is_number()) return std::nullopt;
  return j[a][b].get<double>();
}

/// The JSON entry of one frame size.
Json size_json(const BridgeSizeResult& r) {
  const double bytes = static_cast<double>(r.frame_bytes);
  Json j;
  j["frame_bytes"] = r.frame_bytes;
  Json lat;
  lat["samples"] = r.reader_ns.size();
  lat["service_ns"] = percentiles_json(r.service_ns);
  lat["reader_ns"] = percentiles_json(r.reader_ns);
  lat["zmq_ns"] = percentiles_json(r.zmq_ns);
  lat["local_hop_ns"] = percentiles_json(r.hop_ns);
  std::optional<double> ref50, ref99, r50, r99;
  const auto z50 = at(lat, "zmq_ns", "p50"), h50 = at(lat, "local_hop_ns", "p50");
  const auto z99 = at(lat, "zmq_ns", "p99"), h99 = at(lat, "local_hop_ns", "p99");
  if (z50 && h50) ref50 = *z50 + *h50;
  if (z99 && h99) ref99 = *z99 + *h99;
  if (const auto rd = at(lat, "reader_ns", "p50"); rd && ref50) r50 = quotient(*rd, *ref50);
  if (const auto rd = at(lat, "reader_ns", "p99"); rd && ref99) r99 = quotient(*rd, *ref99);
  lat["reference_p50_ns"] = number_or_null(ref50);
  lat["reference_p99_ns"] = number_or_null(ref99);
  lat["ratio_p50"] = number_or_null(r50);
  lat["ratio_p99"] = number_or_null(r99);
  const auto s50 = at(lat, "service_ns", "p50");
  lat["service_vs_zmq_p50"] = s50 && z50 ? number_or_null(quotient(*s50, *z50)) : Json(nullptr);
  lat["target"] = kLatencyTarget;
  lat["meets_target"] = r50 ? Json(*r50 <= kLatencyTarget) : Json(nullptr);
  j["latency"] = lat;

  Json tp;
  tp["zmq_frames_per_s"] = r.zmq_frames_per_s;
  tp["zmq_mb_per_s"] = r.zmq_frames_per_s * bytes / 1e6;
  tp["zmq_cpu"] = Json{{"owner", r.zmq_owner_cpu}, {"replica", r.zmq_replica_cpu}};
  tp["probe_frames_per_s"] = r.probe_frames_per_s;
  Json steps = Json::array();
  const BridgeRateStep* best = nullptr;
  for (const BridgeRateStep& s : r.steps) {
    const bool pass = s.skipped_fraction <= 0.01;
    steps.push_back(Json{{"target_frames_per_s", s.target_frames_per_s},
                         {"offered_frames_per_s", s.offered_frames_per_s},
                         {"written", s.written},
                         {"published", s.published},
                         {"skipped_fraction", s.skipped_fraction},
                         {"passed", pass},
                         {"cpu", Json{{"owner", s.owner_cpu}, {"replica", s.replica_cpu}}}});
    if (pass && (best == nullptr || s.offered_frames_per_s > best->offered_frames_per_s)) best = &s;
  }
  tp["steps"] = steps;
  std::optional<double> mbps, ratio;
  if (best != nullptr) {
    mbps = best->offered_frames_per_s * bytes / 1e6;
    ratio = quotient(best->offered_frames_per_s, r.zmq_frames_per_s);
  }
  tp["max_frames_per_s"] = best != nullptr ? Json(best->offered_frames_per_s) : Json(nullptr);
  tp["mb_per_s"] = number_or_null(mbps);
  tp["ratio_vs_zmq"] = number_or_null(ratio);
  tp["busy_cpu"] = best != nullptr ? Json{{"owner", best->owner_cpu}, {"replica", best->replica_cpu}} : Json(nullptr);
  tp["target"] = kThroughputTarget;
  tp["meets_target"] = ratio ? Json(*ratio >= kThroughputTarget) : Json(nullptr);
  j["throughput"] = tp;

  const std::uint64_t extra =
      r.replica_publications > r.distinct_published ? r.replica_publications - r.distinct_published : 0;
  Json d;
  d["source_frames"] = r.source_frames;
  d["replica_publications"] = r.replica_publications;
  d["distinct_published"] = r.distinct_published;
  d["reader_duplicates"] = r.reader_duplicates;
  d["dropped_by_replica"] = r.duplicates_dropped;
  d["duplicates"] = extra + r.reader_duplicates;
  d["meets_target"] = extra + r.reader_duplicates == 0;
  j["duplicates"] = d;
  return j;
}

/// "12.3" us from ns.
std::string us_cell(const Json& p, const char* k) {
  if (!p.is_object()) return "-";
  return fmt::format("{:.1f}", p[k].get<double>() / 1000.0);
}

/// A ratio cell, or "-".
std::string ratio_cell(const Json& v) { return v.is_number() ? fmt::format("{:.2f}", v.get<double>()) : "-"; }

/// A target cell: "<=1.2 ok" green or "MISSED" red, "-" without a verdict.
Cell verdict_cell(const Json& e, const char* prefix) {
  if (!e["meets_target"].is_boolean()) return {"-", nullptr};
  const bool ok = e["meets_target"].get<bool>();
  return {fmt::format("{}{} {}", prefix, e["target"].is_number() ? fmt::format("{:.2g}", e["target"].get<double>()) : "",
                      ok ? "ok" : "MISSED"),
          ok ? "32" : "31"};
}

/// "45%" of one core.
std::string cpu_cell(const Json& c) {
  if (!c.is_object()) return "-";
  return fmt::format("{:.0f}% / {:.0f}%", 100 * c["owner"].get<double>(), 100 * c["replica"].get<double>());
}

/// Prints the human (or Markdown) report of a finished run from its JSON document.
void print_bridge_report(const Json& doc, bool markdown, bool colour) {
  const Json& m = doc["machine"];
  const Json& c = doc["config"];
  const std::string machine_line =
      fmt::format("{}, {} CPUs online{}, {}, clocksource {}", m["cpu_model"].get<std::string>(),
                  m["cores_online"].get<int>(), m["virtual_machine"].get<bool>() ? " (virtual machine)" : "",
                  m["kernel"].get<std::string>(), m["clocksource"].get<std::string>());
  const std::string run_line = fmt::format(
      "two processes over {} (unpinned); {} timed frames per size and path after {} untimed; {} s per rate step",
      c["transport"].get<std::string>(), c["frames"].get<std::int64_t>(), c["warmup"].get<std::int64_t>(),
      c["duration_s"].get<double>());
  auto section = [&](const std::string& title, const Table& t) {
    if (markdown) {
      std::cout << "\n**" << title << "**\n\n" << markdown_table(t);
    } else {
      std::cout << '\n' << title << '\n' << t.render(colour);
    }
  };
  std::cout << (markdown ? "**shmlink bench bridge**: " : "shmlink bench bridge: ") << machine_line
            << (markdown ? "\n\n" : "\n") << run_line << '\n';

  Table lat;
  lat.headers = {"frame", "service p50", "p99", "reader p50", "p99", "zmq p50", "p99", "hop p50", "p99", "x p50", "x p99",
                 "target"};
  lat.right_aligned = {true, true, true, true, true, true, true, true, true, true, true, false};
  for (const Json& e : doc["sizes"]) {
    const Json& l = e["latency"];
    lat.rows.push_back({{size_text(e["frame_bytes"].get<std::size_t>())},
                        {us_cell(l["service_ns"], "p50")},
                        {us_cell(l["service_ns"], "p99")},
                        {us_cell(l["reader_ns"], "p50")},
                        {us_cell(l["reader_ns"], "p99")},
                        {us_cell(l["zmq_ns"], "p50")},
                        {us_cell(l["zmq_ns"], "p99")},
                        {us_cell(l["local_hop_ns"], "p50")},
                        {us_cell(l["local_hop_ns"], "p99")},
                        {ratio_cell(l["ratio_p50"])},
                        {ratio_cell(l["ratio_p99"])},
                        verdict_cell(l, "<=")});
  }
  section("Latency, us: service = source publication -> replica publication, reader = -> a reader woken on the replica; "
          "x = reader / (raw zmq + local hop)",
          lat);

  Table tp;
  tp.headers = {"frame", "frames/s <1% skipped", "MB/s", "zmq frames/s", "zmq MB/s", "x", "target", "cpu busy",
                "cpu zmq"};
  tp.right_aligned = {true, true, true, true, true, true, false, true, true};
  for (const Json& e : doc["sizes"]) {
    const Json& t = e["throughput"];
    tp.rows.push_back({{size_text(e["frame_bytes"].get<std::size_t>())},
                       {t["max_frames_per_s"].is_number() ? fmt::format("{:.0f}", t["max_frames_per_s"].get<double>()) : "-"},
                       {t["mb_per_s"].is_number() ? fmt::format("{:.0f}", t["mb_per_s"].get<double>()) : "-"},
                       {fmt::format("{:.0f}", t["zmq_frames_per_s"].get<double>())},
                       {fmt::format("{:.0f}", t["zmq_mb_per_s"].get<double>())},
                       {ratio_cell(t["ratio_vs_zmq"])},
                       verdict_cell(t, ">="),
                       {cpu_cell(t["busy_cpu"])},
                       {cpu_cell(t["zmq_cpu"])}});
  }
  section("Throughput: the highest paced rate with under 1 % of source frames skipped, next to raw ZeroMQ back-to-back; "
          "cpu = owner / subscriber process, % of one core",
          tp);

  Table du;
  du.headers = {"frame", "source frames", "replica publications", "distinct", "reader saw twice", "caught by replica",
                "duplicates"};
  du.right_aligned = {true, true, true, true, true, true, false};
  for (const Json& e : doc["sizes"]) {
    const Json& d = e["duplicates"];
    const bool ok = d["meets_target"].get<bool>();
    du.rows.push_back({{size_text(e["frame_bytes"].get<std::size_t>())},
                       {std::to_string(d["source_frames"].get<std::uint64_t>())},
                       {std::to_string(d["replica_publications"].get<std::uint64_t>())},
                       {std::to_string(d["distinct_published"].get<std::uint64_t>())},
                       {std::to_string(d["reader_duplicates"].get<std::uint64_t>())},
                       {std::to_string(d["dropped_by_replica"].get<std::uint64_t>())},
                       {fmt::format("{} {}", d["duplicates"].get<std::uint64_t>(), ok ? "ok" : "MISSED"), ok ? "32" : "31"}});
  }
  section("Duplicates: replica publications vs distinct source frames (target 0)", du);

  const Json& idle = doc["idle"];
  const bool ok = idle["meets_target"].get<bool>();
  std::cout << (markdown ? "\n" : "\n")
            << fmt::format("Idle ({:.1f} s, a subscribed replica, no writes): owner {:.2f}%, subscriber {:.2f}% of one core "
                           "(target: together <= {:.0f}%: {})",
                           idle["seconds"].get<double>(), 100 * idle["owner_cpu"].get<double>(),
                           100 * idle["replica_cpu"].get<double>(), 100 * kIdleCpuTarget, ok ? "ok" : "MISSED")
            << '\n';
  if (!doc["notes"].empty()) {
    std::cout << (markdown ? "\nNotes:\n\n" : "\nNotes:\n");
    for (const Json& n : doc["notes"]) std::cout << "- " << n.get<std::string>() << '\n';
  }
}

/// Runs `bench bridge`.
int run_bench_bridge(const BenchBridgeOptions& opt) {
  BridgeBenchConfig cfg;
  cfg.frame_sizes = opt.sizes.empty() ? std::vector<std::size_t>{1024, 65536, std::size_t{1} << 20, std::size_t{16} << 20}
                                      : parse_sizes(opt.sizes);
  cfg.frames = opt.frames;
  cfg.warmup = opt.warmup;
  cfg.duration_s = opt.duration;
  const bool tty = is_tty(2);
  if (tty) {
    cfg.progress = [](const std::string& what) {
      std::fprintf(stderr, "\r\x1b[Kshmlink bench bridge: %s", what.c_str());
      std::fflush(stderr);
    };
  }
  const MachineInfo machine = describe_machine();
  std::vector<std::string> notes;
  StopSignals signals;
  ScratchDir scratch(resolve_directory(opt.dir));
  cfg.scratch_dir = scratch.path();
  const LoadMeter load_meter;
  // Ctrl-C or SIGTERM ends the run with an error (exit 1), as for `bench queue`.
  const BridgeBenchResult res = run_bridge_bench(cfg, notes);
  if (tty) std::fprintf(stderr, "\r\x1b[K");
  const Json load = load_meter.finish(notes);
  notes.push_back("latencies are CLOCK_REALTIME differences between the two processes of this machine: the time "
                  "stamped just before Stream::write (bridge, local hop) or zmq_send (raw ZeroMQ) -> the replica's "
                  "write time (service) or the moment a reader's futex wait returned (reader, local hop) or the raw "
                  "message was received whole");
  notes.push_back("the reader copies every frame it is woken for (read_copy); the raw ZeroMQ receiver keeps the "
                  "message in ZeroMQ's buffer");

  Json doc;
  doc["schema_version"] = kSchemaVersion;
  doc["schema"] = kBridgeBenchSchema;
  doc["shmlink_version"] = SHMLINK_CLI_VERSION;
  Json mj = machine_json(machine);
  mj["pinned_cores"] = nullptr;
  doc["machine"] = mj;
  Json cj;
  cj["frame_sizes"] = cfg.frame_sizes;
  cj["frames"] = cfg.frames;
  cj["warmup"] = cfg.warmup;
  cj["duration_s"] = cfg.duration_s;
  cj["transport"] = "tcp://127.0.0.1";
  cj["skipped_limit"] = 0.01;
  doc["config"] = cj;
  Json idle;
  idle["seconds"] = res.idle_seconds;
  idle["owner_cpu"] = res.idle_owner_cpu;
  idle["replica_cpu"] = res.idle_replica_cpu;
  idle["target"] = kIdleCpuTarget;
  idle["meets_target"] = res.idle_owner_cpu + res.idle_replica_cpu <= kIdleCpuTarget;
  doc["idle"] = idle;
  Json sj = Json::array();
  for (const BridgeSizeResult& r : res.sizes) sj.push_back(size_json(r));
  doc["sizes"] = sj;
  doc["load"] = load;
  doc["notes"] = notes;

  if (!opt.save.empty()) {
    std::ofstream f(opt.save);
    f << json_text(doc) << "\n";
    if (!f) {
      spdlog::error("bench bridge: cannot write {}: {}", opt.save, std::strerror(errno));
      return kExitFailure;
    }
  }
  if (opt.json) {
    print_json(doc);
  } else {
    print_bridge_report(doc, opt.markdown, !opt.markdown && colour_enabled(1));
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

Command add_bench_bridge_command(CLI::App& bench) {
  auto opt = std::make_shared<BenchBridgeOptions>();
  CLI::App* sub = bench.add_subcommand(
      "bridge",
      "A bridged stream (Publisher -> Replica over loopback TCP, a reader woken by futex on the replica) next to a raw "
      "ZeroMQ transfer of the same bytes between the same two processes and a local stream hop: service and reader "
      "latency p50/p99, the highest rate with under 1 % skipped, MB/s, CPU idle and busy, duplicates; one run");
  sub->add_option("--sizes", opt->sizes, "Frame sizes (default 1K,64K,1M,16M; K/M = KiB/MiB; at least 16 bytes)");
  sub->add_option("--frames", opt->frames, "Timed latency frames per size and path (default 1000)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000}));
  sub->add_option("--warmup", opt->warmup, "Untimed latency frames per size and path, first (default 20)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}));
  sub->add_option("--duration", opt->duration,
                  "Seconds of each rate step, of the raw ZeroMQ transfer and of the idle span (default 1)")
      ->check(CLI::Range(0.01, 3600.0));
  sub->add_option("--dir", opt->dir,
                  "Where to make the scratch directory for the source, replica and hop streams (default: the stream "
                  "directory)");
  sub->add_flag("--json", opt->json, "JSON output (schema shmlink-bench-bridge/1, docs/bench.md)");
  sub->add_flag("--markdown", opt->markdown, "Markdown tables (for docs/bench.md)");
  sub->add_option("--save", opt->save, "Also write the JSON document to FILE");
  return {sub, [opt] { return run_bench_bridge(*opt); }};
}

}  // namespace shmlink::cli::bench
