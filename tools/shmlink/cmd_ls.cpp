// SPDX-License-Identifier: MIT
// `shmlink ls`: one line per stream file in the stream directory.
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

/// Runs `ls`: samples the directory twice `interval` apart and prints the table or JSON.
int run_ls(const LsOptions& opt) {
  StreamSampler sampler(resolve_directory(opt.dir));
  std::vector<StreamRow> rows = sampler.refresh();
  if (opt.interval > 0 && !rows.empty()) {
    sleep_while(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.interval)),
                {});
    rows = sampler.refresh();
  }
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["directory"] = sampler.directory();
    j["interval_s"] = opt.interval;
    Json streams = Json::array();
    for (const StreamRow& row : rows) streams.push_back(row_to_json(row));
    j["streams"] = std::move(streams);
    print_json(j);
    return kExitOk;
  }
  if (rows.empty()) {
    std::cout << "no streams in " << sampler.directory() << '\n';
    return kExitOk;
  }
  std::cout << make_ls_table(rows, colour_enabled(1)).render(colour_enabled(1)) << std::flush;
  return kExitOk;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto opt = std::make_shared<LsOptions>();
  CLI::App* sub = app.add_subcommand("ls", "List the streams in the stream directory with their update rates");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--interval", opt->interval, "Seconds over which update rates are measured (0: no rates)")
      ->check(seconds_validator(0.0, 3600.0))
      ->capture_default_str();
  sub->add_flag("--json", opt->json, "Print JSON ({\"schema_version\":1,\"streams\":[...]})");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_ls(*opt); }};
}

}  // namespace shmlink::cli
