// SPDX-License-Identifier: MIT
// `shmlink monitor`: a live table of the streams in a directory with their update rates,
// writer and reader processes and semaphore values, in the spirit of milk's streamCTRL.
#include "common.hpp"

#include <fmt/format.h>

#include <signal.h>

#include <csignal>
#include <ctime>
#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Set by SIGINT/SIGTERM; polled by the refresh loop.
volatile std::sig_atomic_t g_stop = 0;

/// Signal handler: asks the loop to stop (async-signal-safe).
extern "C" void on_stop_signal(int /*sig*/) { g_stop = 1; }

/// Installs on_stop_signal for SIGINT and SIGTERM, restoring the old handlers on destruction.
class StopSignals {
 public:
  /// Installs the handlers.
  StopSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  /// Restores the previous handlers.
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

/// Options of `monitor`.
struct MonitorOptions {
  std::string dir;        ///< directory override
  double interval = 1.0;  ///< refresh period (and rate window) in seconds
  bool once = false;      ///< print one table and exit
  int count = 0;          ///< number of refreshes before exiting (0 = until interrupted)
  bool json = false;      ///< JSON output
};

/// Semaphore values as "0 3 10" (at most 8 shown, then "+N").
std::string sem_values_text(const StreamInfo& info) {
  std::string out;
  constexpr std::size_t kShown = 8;
  for (std::size_t i = 0; i < info.sem_values.size() && i < kShown; ++i) {
    if (i != 0) out += ' ';
    out += std::to_string(info.sem_values[i]);
  }
  if (info.sem_values.size() > kShown) out += fmt::format(" +{}", info.sem_values.size() - kShown);
  return out.empty() ? "-" : out;
}

/// Live reader pids as "123,456" ("-" when none).
std::string readers_text(const StreamInfo& info) {
  const std::vector<std::int32_t> readers = live_readers(info);
  return readers.empty() ? std::string("-") : fmt::format("{}", fmt::join(readers, ","));
}

/// The streamCTRL-like table of `rows`.
Table make_monitor_table(const std::vector<StreamRow>& rows, bool colour) {
  Table t;
  t.headers = {"NAME", "SHAPE", "DTYPE", "CNT0", "RATE_HZ", "W", "WRITER", "READERS", "SEMS", "SEMVALS"};
  t.right_aligned = {false, false, false, true, true, false, false, false, true, false};
  for (const StreamRow& row : rows) {
    if (!row.info) {
      // The error goes last, where its length does not widen the other columns.
      t.rows.push_back({{row.name, colour ? "33" : nullptr}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"},
                        {row.error, colour ? "33" : nullptr}});
      continue;
    }
    const StreamInfo& info = *row.info;
    const std::int32_t wpid = writer_pid(info);
    const bool alive = pid_alive(wpid);
    t.rows.push_back({
        {row.name},
        {format_shape(info.shape)},
        {std::string(dtype_short_name(info.dtype))},
        {std::to_string(info.frame.cnt0)},
        {format_rate(row.rate_hz), row.rate_hz && *row.rate_hz > 0 ? "32" : nullptr},
        {info.write_flag ? "1" : "0"},
        {fmt::format("{} ({})", wpid, alive ? "alive" : "dead"), alive ? nullptr : "31"},
        {readers_text(info)},
        {std::to_string(info.semaphores)},
        {sem_values_text(info)},
    });
  }
  return t;
}

/// The JSON document of one refresh.
Json monitor_json(const std::string& dir, double interval, const std::vector<StreamRow>& rows) {
  Json j;
  j["schema_version"] = kSchemaVersion;
  j["directory"] = dir;
  j["interval_s"] = interval;
  j["time_ns"] = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  Json streams = Json::array();
  for (const StreamRow& row : rows) streams.push_back(row_to_json(row));
  j["streams"] = std::move(streams);
  return j;
}

/// The title line above the table ("shmlink monitor  /dev/shm  12:00:01  3 streams").
std::string title_line(const std::string& dir, std::size_t n, double interval, bool live) {
  const std::time_t now = std::time(nullptr);
  struct tm tm {};
  ::localtime_r(&now, &tm);
  return fmt::format("shmlink monitor  {}  {:02d}:{:02d}:{:02d}  {} stream{}  (every {:g} s{})\n", dir, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, n, n == 1 ? "" : "s", interval, live ? ", Ctrl-C to quit" : "");
}

/// Runs `monitor`: refreshes every `interval` until interrupted, `count` refreshes are shown,
/// or once (`--once`, rates measured over one interval).
int run_monitor(const MonitorOptions& opt) {
  StopSignals signals;
  g_stop = 0;
  auto keep_running = [] { return g_stop == 0; };
  const auto period =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.interval));
  const bool tty = is_tty(1);
  const bool colour = colour_enabled(1);

  StreamSampler sampler(resolve_directory(opt.dir));
  std::vector<StreamRow> rows = sampler.refresh();

  if (opt.once) {
    sleep_while(period, keep_running);
    rows = sampler.refresh();
    if (opt.json) {
      print_json(monitor_json(sampler.directory(), opt.interval, rows));
    } else {
      std::cout << title_line(sampler.directory(), rows.size(), opt.interval, false)
                << make_monitor_table(rows, colour).render(colour) << std::flush;
    }
    return kExitOk;
  }

  int shown = 0;
  while (true) {
    if (opt.json) {
      // One compact document per line (NDJSON) so a pipe can consume refreshes as they come.
      std::cout << monitor_json(sampler.directory(), opt.interval, rows)
                       .dump(-1, ' ', false, Json::error_handler_t::replace)
                << '\n'
                << std::flush;
    } else {
      std::string screen;
      if (tty) screen += "\x1b[H\x1b[2J";  // cursor home, clear screen
      screen += title_line(sampler.directory(), rows.size(), opt.interval, true);
      screen += make_monitor_table(rows, colour).render(colour);
      if (!tty) screen += '\n';
      std::cout << screen << std::flush;
    }
    ++shown;
    if (opt.count > 0 && shown >= opt.count) break;
    if (!sleep_while(period, keep_running)) break;
    rows = sampler.refresh();
  }
  return kExitOk;
}

}  // namespace

Command add_monitor_command(CLI::App& app) {
  auto opt = std::make_shared<MonitorOptions>();
  CLI::App* sub = app.add_subcommand(
      "monitor", "Live table of streams with update rates, writer/reader pids and semaphores (like milk-streamCTRL)");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--interval", opt->interval, "Refresh period in seconds; rates are measured over it")
      ->check(seconds_validator(0.01, 3600.0))
      ->capture_default_str();
  sub->add_flag("--once", opt->once, "Measure over one interval, print one table and exit (for scripts)");
  sub->add_option("--count", opt->count, "Exit after this many refreshes (0: run until Ctrl-C)")
      ->check(CLI::Range(0, 1000000000))
      ->capture_default_str();
  sub->add_flag("--json", opt->json,
                "Print JSON: one document with --once, else one compact document per line per refresh");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_monitor(*opt); }};
}

}  // namespace shmlink::cli
