// SPDX-License-Identifier: MIT
// `shmlink monitor`: a live table of the streams in a directory with their update rates,
// writer and reader processes and semaphore values, in the spirit of milk's streamCTRL.
#include "common.hpp"

#include <fmt/format.h>

#include <signal.h>

#include <csignal>
#include <ctime>
#include <deque>
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
  std::vector<std::string> names;  ///< streams to follow (empty: every stream of the directory)
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

/// The JSON document of one refresh; `events`, when given, become its "events" array.
Json monitor_json(const std::string& dir, double interval, const std::vector<StreamRow>& rows,
                  const std::vector<StreamEvent>* events = nullptr) {
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
  if (events != nullptr) {
    Json list = Json::array();
    for (const StreamEvent& e : *events) list.push_back(event_to_json(e));
    j["events"] = std::move(list);
  }
  return j;
}

/// One NDJSON line for an event: its JSON form with "schema_version" first.
std::string event_json_line(const StreamEvent& e) {
  Json j;
  j["schema_version"] = kSchemaVersion;
  j.update(event_to_json(e));
  return json_text(j, -1);
}

/// Local wall-clock time of `ns` since the epoch as "HH:MM:SS".
std::string clock_text(std::int64_t ns) {
  const std::time_t t = static_cast<std::time_t>(ns / 1'000'000'000);
  struct tm tm {};
  ::localtime_r(&t, &tm);
  return fmt::format("{:02d}:{:02d}:{:02d}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/// An event as one text line: "12:00:01 stream 'cam' re-created: 64x64 float32 -> 32x32 uint16".
std::string event_line(const StreamEvent& e) {
  return fmt::format("{} {}\n", clock_text(e.time_ns), shown_message(event_text(e)));
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
/// or once (`--once`, rates measured over one interval). Re-created, removed and new stream
/// files are reported as events (text lines, or NDJSON objects with an "event" key) and
/// followed: a re-created file is re-opened, a named stream that is removed is waited for.
int run_monitor(const MonitorOptions& opt) {
  StopSignals signals;
  g_stop = 0;
  auto keep_running = [] { return g_stop == 0; };
  const auto period =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.interval));
  const bool tty = is_tty(1);
  const bool colour = colour_enabled(1);

  std::vector<std::string> paths;
  paths.reserve(opt.names.size());
  for (const std::string& name : opt.names) paths.push_back(resolve_stream(name, opt.dir));
  StreamWatcher watcher(resolve_directory(opt.dir), std::move(paths));
  std::vector<StreamRow> rows = watcher.refresh();

  if (opt.once) {
    sleep_while(period, keep_running);
    rows = watcher.refresh();
    const std::vector<StreamEvent> events = watcher.take_events();
    if (opt.json) {
      print_json(monitor_json(watcher.directory(), opt.interval, rows, &events));
    } else {
      std::string out;
      for (const StreamEvent& e : events) out += event_line(e);
      out += title_line(watcher.directory(), rows.size(), opt.interval, false);
      out += make_monitor_table(rows, colour).render(colour);
      std::cout << out << std::flush;
    }
    return kExitOk;
  }

  // On a terminal the screen is redrawn, so the latest events stay listed under the table.
  constexpr std::size_t kRecentEvents = 5;
  std::deque<StreamEvent> recent;
  int shown = 0;
  while (true) {
    const std::vector<StreamEvent> events = watcher.take_events();
    if (opt.json) {
      // One compact document per line (NDJSON) so a pipe can consume refreshes as they come;
      // events come first, each on its own line, told apart by their "event" key.
      std::string out;
      for (const StreamEvent& e : events) out += event_json_line(e) + '\n';
      out += json_text(monitor_json(watcher.directory(), opt.interval, rows), -1);
      out += '\n';
      std::cout << out << std::flush;
    } else {
      std::string screen;
      if (tty) {
        screen += "\x1b[H\x1b[2J";  // cursor home, clear screen
      } else {
        for (const StreamEvent& e : events) screen += event_line(e);
      }
      screen += title_line(watcher.directory(), rows.size(), opt.interval, true);
      screen += make_monitor_table(rows, colour).render(colour);
      if (tty) {
        for (const StreamEvent& e : events) {
          recent.push_back(e);
          if (recent.size() > kRecentEvents) recent.pop_front();
        }
        if (!recent.empty()) {
          screen += "\nRecent events:\n";
          for (const StreamEvent& e : recent) screen += event_line(e);
        }
      } else {
        screen += '\n';
      }
      std::cout << screen << std::flush;
    }
    ++shown;
    if (opt.count > 0 && shown >= opt.count) break;
    if (!sleep_while(period, keep_running)) break;
    rows = watcher.refresh();
  }
  return kExitOk;
}

}  // namespace

Command add_monitor_command(CLI::App& app) {
  auto opt = std::make_shared<MonitorOptions>();
  CLI::App* sub = app.add_subcommand(
      "monitor", "Live table of streams with update rates, writer/reader pids and semaphores (like milk-streamCTRL)");
  sub->add_option("names", opt->names,
                  "Streams to follow (names or paths); a missing one is waited for. Default: every stream "
                  "of the directory");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--interval", opt->interval, "Refresh period in seconds; rates are measured over it")
      ->check(seconds_validator(0.01, 3600.0))
      ->capture_default_str();
  sub->add_flag("--once", opt->once, "Measure over one interval, print one table and exit (for scripts)");
  sub->add_option("--count", opt->count, "Exit after this many refreshes (0: run until Ctrl-C)")
      ->check(CLI::Range(0, 1000000000))
      ->capture_default_str();
  sub->add_flag("--json", opt->json,
                "Print JSON: one document with --once, else one compact document per line per refresh, "
                "preceded by one line per event ({\"event\": \"recreated\", ...})");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_monitor(*opt); }};
}

}  // namespace shmlink::cli
