// SPDX-License-Identifier: MIT
// `shmlink bench queue` (docs/bench.md "bench queue"): options, the JSON document (schema
// "shmlink-bench-queue/1") and the human or Markdown report of the measurements made by
// bench_queue.cpp: shmlink queue latency and throughput next to the raw floors and to pipes,
// unix sockets, Boost.Interprocess message_queue and ZeroMQ ipc://, in one run.
#include "bench_common.hpp"
#include "harness/queue_compare.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
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
constexpr const char* kQueueBenchSchema = "shmlink-bench-queue/1";
/// Bytes of one queue cell's header (src/queue/queue_layout.hpp CellHeader).
constexpr std::size_t kCellHeaderBytes = 48;

/// Options of `bench queue`.
struct BenchQueueOptions {
  std::int64_t samples = 100000;              ///< latency round trips per mode
  std::int64_t throughput_samples = 2000000;  ///< samples per throughput mode
  int rounds = 5;                             ///< interleaved rounds
  std::int64_t warmup = 1000;                 ///< untimed round trips / samples per run
  double max_seconds = 10.0;                  ///< latency time budget per mode, s
  std::string cores;                          ///< "A,B"
  std::uint32_t values = 8;                   ///< values per sample
  std::uint32_t batch = 32;                   ///< samples per bulk call / write / send / zmq message
  std::uint32_t capacity = 1024;              ///< cells of the throughput queues
  std::string dir;                            ///< base directory of the scratch directory
  bool quick = false;                         ///< short run
  bool json = false;                          ///< JSON on stdout
  bool markdown = false;                      ///< Markdown tables on stdout
  std::string save;                           ///< also write the JSON document to this file
  std::string region;                         ///< --region [PATH]: "" = a region in the scratch directory
  CLI::App* app = nullptr;                    ///< the subcommand, to tell given options from defaults
};

/// One-way percentiles of a latency result, when it ran.
std::optional<Percentiles> one_way(const QueueLatencyResult& r) {
  if (!r.skipped.empty() || r.round_trips_ns.empty()) return std::nullopt;
  std::vector<std::int64_t> copy = r.round_trips_ns;
  return percentiles_of(copy, 0.5);
}

/// Bytes one hop of a latency mode carries.
std::size_t hop_bytes(QueueLatencyMode m, std::size_t message_bytes) {
  if (m == QueueLatencyMode::cacheline) return 8;
  if (m == QueueLatencyMode::futex_raw) return 4;
  return message_bytes;
}

/// The JSON entry of one latency mode. `floor`: cacheline's percentiles; `futex`: futex_raw's.
Json latency_entry(const QueueLatencyResult& r, const std::optional<Percentiles>& p,
                   const std::optional<Percentiles>& floor, const std::optional<Percentiles>& futex,
                   std::size_t message_bytes) {
  const bool is_floor = r.mode == QueueLatencyMode::cacheline || r.mode == QueueLatencyMode::futex_raw;
  Json j;
  j["mode"] = queue_result_name(r);
  if (!r.placement.empty()) j["placement"] = r.placement;
  j["kind"] = queue_latency_mode_kind(r.mode);
  j["floor"] = is_floor ? Json(nullptr) : Json("cacheline");
  j["description"] = queue_latency_mode_description(r.mode);
  j["skipped"] = r.skipped.empty() ? Json(nullptr) : Json(r.skipped);
  j["samples"] = r.round_trips_ns.size();
  j["runs"] = r.runs;
  j["message_bytes"] = hop_bytes(r.mode, message_bytes);
  if (p) {
    j["one_way_ns"] = Json{{"min", p->min}, {"p50", p->p50}, {"p90", p->p90},
                           {"p99", p->p99}, {"p999", p->p999}, {"max", p->max}};
    const double msgs = 2.0 * static_cast<double>(r.round_trips_ns.size());
    const double a = static_cast<double>(r.initiator_cpu_ns) / msgs;
    const double b = static_cast<double>(r.responder_cpu_ns) / msgs;
    j["cpu_ns_per_message"] = Json{{"initiator", a}, {"responder", b}, {"total", a + b}};
    j["cpu_busy_fraction"] =
        r.wall_ns > 0
            ? Json(static_cast<double>(r.initiator_cpu_ns + r.responder_cpu_ns) / (2.0 * static_cast<double>(r.wall_ns)))
            : Json(nullptr);
  } else {
    j["one_way_ns"] = nullptr;
    j["cpu_ns_per_message"] = nullptr;
    j["cpu_busy_fraction"] = nullptr;
  }
  j["involuntary_switches"] = r.involuntary_switches;
  std::optional<double> r50, r99, r999, rf;
  if (p && floor && !is_floor) {
    r50 = quotient(p->p50, floor->p50);
    r99 = quotient(p->p99, floor->p99);
    r999 = quotient(p->p999, floor->p999);
  }
  if (p && futex && !is_floor) rf = quotient(p->p50, futex->p50);
  j["ratio_p50"] = number_or_null(r50);
  j["ratio_p99"] = number_or_null(r99);
  j["ratio_p999"] = number_or_null(r999);
  j["ratio_vs_futex_raw_p50"] = number_or_null(rf);
  const std::optional<double> target = queue_latency_mode_target(r.mode);
  j["target"] = number_or_null(target);
  j["meets_target"] = target && r50 ? Json(*r50 <= *target) : Json(nullptr);
  return j;
}

/// The JSON entry of one throughput mode.
Json throughput_entry(const QueueThroughputResult& r, std::uint32_t batch, std::size_t message_bytes) {
  const bool shm = queue_throughput_mode_is_shmlink(r.mode);
  Json j;
  j["mode"] = queue_result_name(r);
  if (!r.placement.empty()) j["placement"] = r.placement;
  j["kind"] = shm ? "shmlink" : "peer";
  j["description"] = queue_throughput_mode_description(r.mode);
  j["batch"] = queue_throughput_mode_is_batched(r.mode) ? batch : 1U;
  j["samples"] = r.samples;
  j["runs"] = r.runs;
  std::vector<double> rates = r.samples_per_s;
  const double median = median_of(rates);
  j["samples_per_s"] = median;
  j["samples_per_s_min"] = rates.empty() ? 0.0 : rates.front();
  j["samples_per_s_max"] = rates.empty() ? 0.0 : rates.back();
  j["mb_per_s"] = median * static_cast<double>(message_bytes) / 1e6;
  if (r.samples > 0) {
    const double n = static_cast<double>(r.samples);
    const double prod = static_cast<double>(r.producer_cpu_ns) / n;
    const double cons = static_cast<double>(r.consumer_cpu_ns) / n;
    j["cpu_ns_per_sample"] = Json{{"producer", prod}, {"consumer", cons}, {"total", prod + cons}};
  } else {
    j["cpu_ns_per_sample"] = nullptr;
  }
  j["involuntary_switches"] = r.involuntary_switches;
  return j;
}

/// Adds "ratio_vs_file" to every entry of `list` run in a place (it has "placement"): its
/// `figure` (one-way p50, samples/s) over the same mode's on files; null when either is missing.
template <class Figure>
void add_ratio_vs_file(Json& list, Figure figure) {
  for (Json& e : list) {
    if (!e.contains("placement")) continue;
    const std::string mode = e["mode"].get<std::string>();
    const std::string file_mode = mode.substr(0, mode.find('@'));
    std::optional<double> r;
    for (const Json& f : list) {
      if (f["mode"] != file_mode) continue;
      const std::optional<double> ours = figure(e);
      const std::optional<double> theirs = figure(f);
      if (ours && theirs) r = quotient(*ours, *theirs);
    }
    e["ratio_vs_file"] = number_or_null(r);
  }
}

/// "123" / "12.3" / "45k" style for ns in tables.
std::string ns_cell(double ns) {
  if (ns < 100) return fmt::format("{:.1f}", ns);
  if (ns < 100000) return fmt::format("{:.0f}", ns);
  return fmt::format("{:.0f}k", ns / 1000);
}

/// "12.3M" / "456k" style for samples/s.
std::string rate_cell(double rate) {
  if (rate >= 1e6) return fmt::format("{:.2f}M", rate / 1e6);
  if (rate >= 1e3) return fmt::format("{:.1f}k", rate / 1e3);
  return fmt::format("{:.0f}", rate);
}

/// A ratio cell, or "-".
std::string ratio_cell(const Json& v) { return v.is_number() ? fmt::format("{:.2f}", v.get<double>()) : "-"; }

/// A yes/no cell coloured green/red, or "-".
Cell ahead_cell(const Json& v) {
  if (!v.is_boolean()) return {"-", nullptr};
  return v.get<bool>() ? Cell{"yes", "32"} : Cell{"NO", "31"};
}

/// Prints the human (or Markdown) report of a finished run from its JSON document.
void print_queue_report(const Json& doc, bool markdown, bool colour) {
  const Json& m = doc["machine"];
  const Json& c = doc["config"];
  const std::string cpus =
      m["pinned_cores"].is_array()
          ? fmt::format("this process on CPU {}, the child on CPU {}", m["pinned_cores"][0].get<int>(),
                        m["pinned_cores"][1].get<int>())
          : std::string("both processes unpinned (see notes)");
  const std::string machine_line =
      fmt::format("{}, {} CPUs online{}, {}, clocksource {}", m["cpu_model"].get<std::string>(),
                  m["cores_online"].get<int>(), m["virtual_machine"].get<bool>() ? " (virtual machine)" : "",
                  m["kernel"].get<std::string>(), m["clocksource"].get<std::string>());
  const std::string run_line = fmt::format(
      "{}; {} round trips per latency mode and {} samples per throughput mode in {} interleaved rounds; "
      "{} values per sample = {}-byte messages; batch {}; queue capacity {}",
      cpus, c["samples"].get<std::int64_t>(), c["throughput_samples"].get<std::int64_t>(), c["rounds"].get<int>(),
      c["values"].get<int>(), c["message_bytes"].get<int>(), c["batch"].get<int>(), c["capacity"].get<int>());
  auto section = [&](const std::string& title, const Table& t) {
    if (markdown) {
      std::cout << "\n**" << title << "**\n\n" << markdown_table(t);
    } else {
      std::cout << '\n' << title << '\n' << t.render(colour);
    }
  };
  if (markdown) {
    std::cout << "**shmlink bench queue**: " << machine_line << "\n\n" << run_line << '\n';
  } else {
    std::cout << "shmlink bench queue: " << machine_line << '\n' << run_line << '\n';
  }

  Table lat;
  lat.headers = {"mode", "kind", "min", "p50", "p90", "p99", "p99.9", "max", "cpu/msg", "x p50", "x p99", "x futex", "target"};
  lat.right_aligned = {false, false, true, true, true, true, true, true, true, true, true, true, false};
  for (const Json& e : doc["latency"]) {
    std::vector<Cell> row{{e["mode"].get<std::string>()}, {e["kind"].get<std::string>()}};
    if (e["one_way_ns"].is_object()) {
      const Json& p = e["one_way_ns"];
      for (const char* k : {"min", "p50", "p90", "p99", "p999", "max"}) row.push_back({ns_cell(p[k].get<double>())});
      row.push_back({ns_cell(e["cpu_ns_per_message"]["total"].get<double>())});
    } else {
      row.push_back({"skipped"});
      for (int i = 0; i < 6; ++i) row.push_back({"-"});
    }
    row.push_back({ratio_cell(e["ratio_p50"])});
    row.push_back({ratio_cell(e["ratio_p99"])});
    row.push_back({ratio_cell(e["ratio_vs_futex_raw_p50"])});
    if (e["target"].is_number() && e["meets_target"].is_boolean()) {
      const bool ok = e["meets_target"].get<bool>();
      row.push_back({fmt::format("<={:.2g} {}", e["target"].get<double>(), ok ? "ok" : "MISSED"), ok ? "32" : "31"});
    } else {
      row.push_back({"-"});
    }
    lat.rows.push_back(std::move(row));
  }
  section("One-way latency, ns (round trip / 2); x = / cacheline at the same percentile, x futex = p50 / futex_raw p50",
          lat);

  Table tp;
  tp.headers = {"mode", "kind", "batch", "samples/s", "min", "max", "MB/s", "cpu ns/sample"};
  tp.right_aligned = {false, false, true, true, true, true, true, true};
  for (const Json& e : doc["throughput"]) {
    tp.rows.push_back({{e["mode"].get<std::string>()},
                       {e["kind"].get<std::string>()},
                       {std::to_string(e["batch"].get<int>())},
                       {rate_cell(e["samples_per_s"].get<double>())},
                       {rate_cell(e["samples_per_s_min"].get<double>())},
                       {rate_cell(e["samples_per_s_max"].get<double>())},
                       {fmt::format("{:.0f}", e["mb_per_s"].get<double>())},
                       {e["cpu_ns_per_sample"].is_object() ? ns_cell(e["cpu_ns_per_sample"]["total"].get<double>())
                                                           : std::string("-")}});
  }
  section("Throughput, one producer process -> one consumer process (median of the runs; cpu = both sides)", tp);

  const Json& cmp = doc["comparison"];
  auto best_text = [&](const char* mode_key, const char* value_key, bool rate) {
    if (!cmp[mode_key].is_string()) return std::string("-");
    const double v = cmp[value_key].get<double>();
    return fmt::format("{} ({})", cmp[mode_key].get<std::string>(), rate ? rate_cell(v) + "/s" : ns_cell(v) + " ns");
  };
  Table vs;
  vs.headers = {"peer", "p50 ns", "x best", "ahead", "x futex", "ahead", "samples/s", "x best", "ahead",
                "x single", "ahead", "x batch", "ahead"};
  vs.right_aligned = {false, true, true, false, true, false, true, true, false, true, false, true, false};
  for (const Json& e : cmp["peers"]) {
    vs.rows.push_back({{e["peer"].get<std::string>()},
                       {e["latency_p50_ns"].is_number() ? ns_cell(e["latency_p50_ns"].get<double>()) : "-"},
                       {ratio_cell(e["latency_ratio"])},
                       ahead_cell(e["latency_ahead"]),
                       {ratio_cell(e["sleeping_latency_ratio"])},
                       ahead_cell(e["sleeping_latency_ahead"]),
                       {e["samples_per_s"].is_number() ? rate_cell(e["samples_per_s"].get<double>()) : "-"},
                       {ratio_cell(e["throughput_ratio"])},
                       ahead_cell(e["throughput_ahead"]),
                       {ratio_cell(e["single_throughput_ratio"])},
                       ahead_cell(e["single_throughput_ahead"]),
                       {ratio_cell(e["batch_throughput_ratio"])},
                       ahead_cell(e["batch_throughput_ahead"])});
  }
  section(fmt::format("shmlink vs the other transports, x = shmlink / peer (latency: below 1 is ahead; throughput: above "
                      "1 is ahead). Latency: best {}, futex {}. Throughput: best {}, single {}, batch {} (peer's "
                      "samples/s: the better of its single and batch modes)",
                      best_text("best_latency_mode", "best_latency_p50_ns", false),
                      best_text("best_sleeping_latency_mode", "best_sleeping_latency_p50_ns", false),
                      best_text("best_throughput_mode", "best_samples_per_s", true),
                      best_text("best_single_throughput_mode", "best_single_samples_per_s", true),
                      best_text("best_bulk_throughput_mode", "best_bulk_samples_per_s", true)),
          vs);

  if (!doc["notes"].empty()) {
    std::cout << (markdown ? "\nNotes:\n\n" : "\nNotes:\n");
    for (const Json& n : doc["notes"]) std::cout << "- " << n.get<std::string>() << '\n';
  }
}

/// Runs `bench queue`.
int run_bench_queue(BenchQueueOptions opt) {
  auto given = [&](const char* name) { return opt.app->count(name) > 0; };
  if (opt.quick) {
    if (!given("--samples")) opt.samples = 2000;
    if (!given("--throughput-samples")) opt.throughput_samples = 40000;
    if (!given("--rounds")) opt.rounds = 2;
    if (!given("--warmup")) opt.warmup = 100;
    if (!given("--max-seconds")) opt.max_seconds = 0.4;
  }
  if (opt.capacity < 2 || (opt.capacity & (opt.capacity - 1)) != 0)
    throw Error(Errc::invalid_argument, "bench queue: --capacity must be a power of two, got " + std::to_string(opt.capacity));
  if (opt.batch > opt.capacity)
    throw Error(Errc::invalid_argument, fmt::format("bench queue: --batch {} is larger than --capacity {}", opt.batch,
                                                    opt.capacity));

  const MachineInfo machine = describe_machine();
  std::vector<std::string> notes;
  QueueBenchConfig cfg;
  cfg.samples = opt.samples;
  cfg.throughput_samples = opt.throughput_samples;
  cfg.rounds = opt.rounds;
  cfg.warmup = opt.warmup;
  cfg.max_seconds_per_mode = opt.max_seconds;
  cfg.values = opt.values;
  cfg.batch = opt.batch;
  cfg.capacity = opt.capacity;
  if (!opt.cores.empty()) {
    cfg.cores = parse_core_pair(opt.cores, machine.cpus_allowed, "bench queue");
  } else if (machine.cpus_allowed.size() >= 2) {
    cfg.cores = std::make_pair(machine.cpus_allowed[0], machine.cpus_allowed[1]);
  } else {
    notes.push_back("only one CPU is available: the two processes run unpinned on it, and the spinning latency "
                    "modes (cacheline, cacheline_message, spsc_polling, mpmc_polling) are skipped");
  }

  StopSignals signals;
  AffinityGuard affinity;
  if (cfg.cores && !(pin_to_cpu(cfg.cores->second) && pin_to_cpu(cfg.cores->first))) {
    notes.push_back(fmt::format("pinning to CPUs {} and {} failed ({}): the processes run unpinned", cfg.cores->first,
                                cfg.cores->second, std::strerror(errno)));
    cfg.cores.reset();
    affinity.restore();
  }
  ScratchDir scratch(resolve_directory(opt.dir));
  cfg.scratch_dir = scratch.path();
  std::shared_ptr<BenchRegion> region;
  if (given("--region")) {
    // Room for the largest run's two queues (latency ping/pong, or the throughput queue), twice.
    QueueSpec big;
    big.capacity = std::max(cfg.capacity, std::uint32_t{16});
    big.max_values = cfg.values;
    region = std::make_shared<BenchRegion>(opt.region, scratch.path(), 4 * Queue::bytes_for(big) + (std::size_t{1} << 20));
    cfg.place = queue_place(region);
  }

  const LoadMeter load_meter;
  const double clock_ns = clock_overhead_ns();
  if (is_tty(2)) {
    std::fprintf(stderr, "shmlink bench queue: %d rounds of %zu latency and %zu throughput modes\n", cfg.rounds,
                 std::size(kAllQueueLatencyModes), std::size(kAllQueueThroughputModes));
  }
  const std::int64_t wall0 = mono_ns();
  const QueueBenchResults res = run_queue_bench(cfg, notes);
  const double wall_s = static_cast<double>(mono_ns() - wall0) / 1e9;
  const Json load = load_meter.finish(notes);
  notes.push_back(fmt::format("every round trip is timed with two CLOCK_MONOTONIC reads; one read costs about {:.0f} ns "
                              "here and is included in floors and candidates alike",
                              clock_ns));
  notes.push_back(fmt::format("throughput: the *_batch peer modes send {0} messages per write/send/zmq message, as the "
                              "shmlink bulk modes push {0} samples per call; the *_single modes and every latency mode "
                              "move one message per call",
                              cfg.batch));

  // Percentiles of the floors first: the ratios need them.
  std::vector<std::optional<Percentiles>> pct;
  std::optional<Percentiles> floor_p;
  std::optional<Percentiles> futex_p;
  for (const QueueLatencyResult& r : res.latency) {
    pct.push_back(one_way(r));
    if (r.mode == QueueLatencyMode::cacheline) floor_p = pct.back();
    if (r.mode == QueueLatencyMode::futex_raw) futex_p = pct.back();
  }

  Json doc;
  doc["schema_version"] = kSchemaVersion;
  doc["schema"] = kQueueBenchSchema;
  doc["shmlink_version"] = SHMLINK_CLI_VERSION;
  Json mj = machine_json(machine);
  mj["pinned_cores"] = cfg.cores ? Json::array({cfg.cores->first, cfg.cores->second}) : Json(nullptr);
  doc["machine"] = mj;
  Json cj;
  cj["quick"] = opt.quick;
  cj["samples"] = cfg.samples;
  cj["throughput_samples"] = cfg.throughput_samples;
  cj["rounds"] = cfg.rounds;
  cj["warmup"] = cfg.warmup;
  cj["max_seconds_per_mode"] = cfg.max_seconds_per_mode;
  cj["values"] = cfg.values;
  cj["message_bytes"] = cfg.message_bytes();
  cj["queue_cell_bytes"] = (kCellHeaderBytes + std::size_t{8} * cfg.values + 63) / 64 * 64;
  cj["batch"] = cfg.batch;
  cj["capacity"] = cfg.capacity;
  cj["throughput_wait"] = "hybrid";
  cj["clock_overhead_ns"] = clock_ns;
  cj["wall_seconds"] = wall_s;
  cj["region"] = region ? Json(region->path()) : Json(nullptr);
  doc["config"] = cj;
  Json lj = Json::array();
  for (std::size_t i = 0; i < res.latency.size(); ++i)
    lj.push_back(latency_entry(res.latency[i], pct[i], floor_p, futex_p, cfg.message_bytes()));
  add_ratio_vs_file(lj, [](const Json& e) -> std::optional<double> {
    if (!e["one_way_ns"].is_object()) return std::nullopt;
    return e["one_way_ns"]["p50"].get<double>();
  });
  doc["latency"] = lj;
  Json tj = Json::array();
  for (const QueueThroughputResult& r : res.throughput) tj.push_back(throughput_entry(r, cfg.batch, cfg.message_bytes()));
  add_ratio_vs_file(tj, [](const Json& e) -> std::optional<double> {
    if (e["runs"].get<int>() == 0) return std::nullopt;
    return e["samples_per_s"].get<double>();
  });
  doc["throughput"] = tj;
  doc["comparison"] = comparison_json(lj, tj);
  doc["load"] = load;
  doc["notes"] = notes;

  if (!opt.save.empty()) {
    std::ofstream f(opt.save);
    f << json_text(doc) << "\n";
    if (!f) {
      spdlog::error("bench queue: cannot write {}: {}", opt.save, std::strerror(errno));
      return kExitFailure;
    }
  }
  if (opt.json) {
    print_json(doc);
  } else {
    print_queue_report(doc, opt.markdown, !opt.markdown && colour_enabled(1));
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

Command add_bench_queue_command(CLI::App& bench) {
  auto opt = std::make_shared<BenchQueueOptions>();
  CLI::App* sub = bench.add_subcommand(
      "queue",
      "Queue latency (SPSC polling/hybrid/futex, MPMC polling/futex vs cache-line and futex ping-pong) and throughput "
      "(push/pop and bulk), next to pipes, unix sockets, Boost message_queue and ZeroMQ ipc://; two pinned processes, "
      "one run");
  opt->app = sub;
  sub->add_option("--samples", opt->samples, "Timed round trips per latency mode, over all rounds (default 100000)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
  sub->add_option("--throughput-samples", opt->throughput_samples,
                  "Samples per throughput mode, over all rounds (default 2000000)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000'000}));
  sub->add_option("--rounds", opt->rounds, "Interleaved rounds (default 5)")->check(CLI::Range(1, 1000));
  sub->add_option("--warmup", opt->warmup, "Untimed round trips (latency) or samples (throughput) per run (default 1000)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
  sub->add_option("--max-seconds", opt->max_seconds, "Time budget of one latency mode over all rounds (default 10)")
      ->check(CLI::Range(0.001, 86400.0));
  sub->add_option("--cores", opt->cores, "CPUs of the two processes, 'A,B' (default: the first two allowed)");
  sub->add_option("--values", opt->values, "Values per sample, 8 bytes each (default 8: 96-byte messages)")
      ->check(CLI::Range(std::uint32_t{1}, kMaxSampleValues));
  sub->add_option("--batch", opt->batch,
                  "Samples per bulk call, and messages per write/send/zmq message of the other transports (default 32)")
      ->check(CLI::Range(std::uint32_t{1}, kMaxQueueCapacity));
  sub->add_option("--capacity", opt->capacity, "Cells of the throughput queues, a power of two (default 1024)")
      ->check(CLI::Range(std::uint32_t{2}, kMaxQueueCapacity));
  sub->add_option("--dir", opt->dir,
                  "Where to make the scratch directory for the queue files and ipc:// sockets (default: the stream "
                  "directory)");
  sub->add_flag("--quick", opt->quick,
                "Short run (a few seconds): 2000 round trips and 40000 samples per mode, 2 rounds, 0.4 s per latency mode");
  sub->add_flag("--json", opt->json, "JSON output (schema shmlink-bench-queue/1, docs/bench.md)");
  sub->add_flag("--markdown", opt->markdown, "Markdown tables (for README.md)");
  sub->add_option("--save", opt->save, "Also write the JSON document to FILE");
  sub->add_option("--region", opt->region,
                  "Also run the shmlink modes with their queues in a region (rows MODE@region, ratio_vs_file): "
                  "created for the run at PATH (a name without '/' is NAME.region.shm in the stream directory; "
                  "default: in the scratch directory) and removed afterwards")
      ->expected(0, 1)
      ->type_name("[PATH]");
  return {sub, [opt] { return run_bench_queue(*opt); }};
}

}  // namespace shmlink::cli::bench
