// SPDX-License-Identifier: MIT
// `shmlink ls`: one line per stream file in the stream directory, then one per queue file.
#include "common.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `ls`.
struct LsOptions {
  std::string dir;        ///< directory override (--dir)
  double interval = 0.2;  ///< rate sampling interval in seconds
  bool json = false;      ///< print JSON
};

/// The text table of `rows`. A DEPTH column (rolling-buffer slices) appears only when some
/// stream is a rolling buffer, and an ERROR column only when some file failed to open; both go
/// after the fixed columns so those keep their positions.
Table make_ls_table(const std::vector<StreamRow>& rows, bool colour) {
  Table t;
  t.headers = {"NAME", "SHAPE", "DTYPE", "CNT0", "RATE_HZ", "WRITER", "READERS"};
  t.right_aligned = {false, false, false, true, true, false, true};
  const bool with_depth =
      std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return r.info && r.info->depth > 1; });
  const bool with_error = std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return !r.info; });
  if (with_depth) {
    t.headers.push_back("DEPTH");
    t.right_aligned.push_back(true);
  }
  if (with_error) {
    t.headers.push_back("ERROR");
    t.right_aligned.push_back(false);
  }
  for (const StreamRow& row : rows) {
    if (!row.info) {
      std::vector<Cell> cells = {{row.name, colour ? "33" : nullptr}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}};
      if (with_depth) cells.push_back({"-"});
      cells.push_back({row.error, colour ? "33" : nullptr});
      t.rows.push_back(std::move(cells));
      continue;
    }
    const StreamInfo& info = *row.info;
    const std::int32_t wpid = writer_pid(info);
    const bool alive = pid_alive(wpid);
    std::vector<Cell> cells = {
        {row.name},
        {format_shape(info.shape)},
        {std::string(dtype_name(info.dtype))},
        {std::to_string(info.frame.cnt0)},
        {format_rate(row.rate_hz), row.rate_hz && *row.rate_hz > 0 ? "32" : nullptr},
        {fmt::format("{} ({})", wpid, alive ? "alive" : "dead"), alive ? nullptr : "31"},
        {std::to_string(live_readers(info).size())},
    };
    if (with_depth) cells.push_back({info.depth > 1 ? std::to_string(info.depth) : std::string("-")});
    t.rows.push_back(std::move(cells));
  }
  return t;
}

/// The text table of the queue rows, printed under the stream table: the queue's kind (spsc,
/// mpmc), wait mode, capacity, values per sample, the samples in it now (SIZE = PUSHED -
/// POPPED), the counters, the signal count, the creator and whether it was shut. An ERROR column
/// appears only when some queue file failed to open.
Table make_queue_table(const std::vector<QueueRow>& rows, bool colour) {
  Table t;
  t.headers = {"QUEUE", "KIND", "WAIT", "CAPACITY", "VALUES", "SIZE", "PUSHED", "POPPED", "SIGNALS", "CREATOR",
               "STATE"};
  t.right_aligned = {false, false, false, true, true, true, true, true, true, false, false};
  const bool with_error = std::any_of(rows.begin(), rows.end(), [](const QueueRow& r) { return !r.info; });
  if (with_error) {
    t.headers.push_back("ERROR");
    t.right_aligned.push_back(false);
  }
  for (const QueueRow& row : rows) {
    if (!row.info) {
      std::vector<Cell> cells(t.headers.size() - 1, Cell{"-"});
      cells[0] = {row.name, colour ? "33" : nullptr};
      cells.push_back({row.error, colour ? "33" : nullptr});
      t.rows.push_back(std::move(cells));
      continue;
    }
    const QueueInfo& info = *row.info;
    const bool alive = pid_alive(info.creator_pid);
    const std::uint64_t size = queue_size(info);
    t.rows.push_back({
        {row.name},
        {std::string(queue_kind_name(info.kind))},
        {std::string(wait_mode_name(info.wait))},
        {std::to_string(info.capacity)},
        {std::to_string(info.max_values)},
        {std::to_string(size), size == info.capacity ? "33" : nullptr},  // full: yellow
        {std::to_string(info.pushed)},
        {std::to_string(info.popped)},
        {std::to_string(info.signals.size())},
        {fmt::format("{} ({})", info.creator_pid, alive ? "alive" : "dead"), alive ? nullptr : "31"},
        {info.closed ? "closed" : "open", info.closed ? "33" : nullptr},
    });
  }
  return t;
}

/// Runs `ls`: samples the directory's streams twice `interval` apart, reads every queue's
/// header once, and prints the tables or JSON.
int run_ls(const LsOptions& opt) {
  StreamSampler sampler(resolve_directory(opt.dir));
  std::vector<StreamRow> rows = sampler.refresh();
  if (opt.interval > 0 && !rows.empty()) {
    sleep_while(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.interval)),
                {});
    rows = sampler.refresh();
  }
  std::vector<QueueRow> queues;
  for (const std::string& path : list_queue_files(sampler.directory())) queues.push_back(inspect_queue(path));
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["directory"] = sampler.directory();
    j["interval_s"] = opt.interval;
    Json streams = Json::array();
    for (const StreamRow& row : rows) streams.push_back(row_to_json(row));
    j["streams"] = std::move(streams);
    Json queue_rows = Json::array();
    for (const QueueRow& row : queues) queue_rows.push_back(queue_row_to_json(row));
    j["queues"] = std::move(queue_rows);
    print_json(j);
    return kExitOk;
  }
  if (rows.empty() && queues.empty()) {
    std::cout << "no streams or queues in " << sampler.directory() << '\n';
    return kExitOk;
  }
  const bool colour = colour_enabled(1);
  if (!rows.empty()) std::cout << make_ls_table(rows, colour).render(colour);
  if (!queues.empty()) std::cout << (rows.empty() ? "" : "\n") << make_queue_table(queues, colour).render(colour);
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto opt = std::make_shared<LsOptions>();
  CLI::App* sub = app.add_subcommand(
      "ls", "List the streams (with their update rates) and the queues in the stream directory");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--interval", opt->interval, "Seconds over which update rates are measured (0: no rates)")
      ->check(seconds_validator(0.0, 3600.0))
      ->capture_default_str();
  sub->add_flag("--json", opt->json, "Print JSON ({\"schema_version\":1,\"streams\":[...],\"queues\":[...]})");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_ls(*opt); }};
}

}  // namespace shmlink::cli
