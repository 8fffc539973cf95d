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

/// The text table of `rows`; files that failed to open show their error in an ERROR column.
Table make_ls_table(const std::vector<StreamRow>& rows, bool colour) {
  Table t;
  t.headers = {"NAME", "SHAPE", "DTYPE", "CNT0", "RATE_HZ", "WRITER", "READERS"};
  t.right_aligned = {false, false, false, true, true, false, true, false};
  // The ERROR column only appears when some file failed to open.
  if (std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return !r.info; })) t.headers.push_back("ERROR");
  for (const StreamRow& row : rows) {
    if (!row.info) {
      t.rows.push_back({{row.name, colour ? "33" : nullptr}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"},
                        {row.error, colour ? "33" : nullptr}});
      continue;
    }
    const StreamInfo& info = *row.info;
    const std::int32_t wpid = writer_pid(info);
    const bool alive = pid_alive(wpid);
    t.rows.push_back({
        {row.name},
        {format_shape(info.shape)},
        {std::string(dtype_name(info.dtype))},
        {std::to_string(info.frame.cnt0)},
        {format_rate(row.rate_hz), row.rate_hz && *row.rate_hz > 0 ? "32" : nullptr},
        {fmt::format("{} ({})", wpid, alive ? "alive" : "dead"), alive ? nullptr : "31"},
        {std::to_string(live_readers(info).size())},
    });
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
