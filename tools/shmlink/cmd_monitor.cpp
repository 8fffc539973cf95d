// SPDX-License-Identifier: MIT
// `shmlink monitor`: a live table of the streams in a directory with their update rates,
// writer and reader processes and semaphore values, in the spirit of milk's streamCTRL.
#include "common.hpp"

#include <shmlink_tools/signals.hpp>

#include <fmt/format.h>

#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>

namespace shmlink::cli {

namespace {

/// Set by SIGINT/SIGTERM; polled by the refresh loop.
volatile std::sig_atomic_t g_stop = 0;

/// Signal handler: asks the loop to stop (async-signal-safe).
extern "C" void on_stop_signal(int /*sig*/) { g_stop = 1; }


/// The terminal settings KeyReader changed, for its SIGTSTP handler (only one KeyReader is
/// active at a time).
termios g_saved_terminal{};
/// Set while g_saved_terminal holds settings to restore.
volatile std::sig_atomic_t g_terminal_changed = 0;
/// Set by SIGCONT: the terminal's mode must be applied again (the shell may have reset it).
volatile std::sig_atomic_t g_continued = 0;

extern "C" void on_terminal_stop(int sig);

/// Installs on_terminal_stop for SIGTSTP (async-signal-safe: sigaction()).
void install_stop_handler() noexcept {
  struct sigaction sa {};
  sa.sa_handler = on_terminal_stop;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTSTP, &sa, nullptr);
}

/// SIGTSTP (Ctrl-Z): gives the terminal back its settings, then stops the way SIGTSTP stops by
/// default. SIGTSTP stays blocked while this runs, so the raise() takes effect on return.
extern "C" void on_terminal_stop(int /*sig*/) {
  const int saved_errno = errno;
  if (g_terminal_changed != 0 && ::tcgetpgrp(0) == ::getpgrp()) ::tcsetattr(0, TCSANOW, &g_saved_terminal);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGTSTP, &dfl, nullptr);
  ::raise(SIGTSTP);
  errno = saved_errno;
}

/// SIGCONT (`fg`, `bg`): the next key poll applies the mode again, and Ctrl-Z is handled again.
extern "C" void on_terminal_continue(int /*sig*/) {
  g_continued = 1;
  install_stop_handler();
}

/// Keys typed on the terminal while `monitor` runs live: puts stdin (when it is a terminal) in
/// non-canonical mode without echo, so single key presses arrive at once, and restores its
/// settings on destruction. Ctrl-C still raises SIGINT (ISIG stays on). Ctrl-Z restores the
/// settings before the process stops; after `fg` the mode is applied again, and while the
/// process runs in the background (`bg`) no key is read (a read would stop it with SIGTTIN).
class KeyReader {
 public:
  /// Switches stdin's terminal mode; does nothing when stdin is not a terminal or the process is
  /// not in the terminal's foreground.
  KeyReader() {
    // A monitor started in the background (`&`) leaves the terminal alone: changing its mode
    // from there would stop the process (SIGTTOU).
    if (::isatty(0) != 1 || ::tcgetpgrp(0) != ::getpgrp() || ::tcgetattr(0, &saved_) != 0) return;
    raw_ = saved_;
    raw_.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw_.c_cc[VMIN] = 0;  // read() returns at once, with or without a key
    raw_.c_cc[VTIME] = 0;
    g_saved_terminal = saved_;
    g_terminal_changed = 1;
    g_continued = 0;
    struct sigaction cont {};
    cont.sa_handler = on_terminal_continue;
    sigemptyset(&cont.sa_mask);
    ::sigaction(SIGCONT, &cont, &old_cont_);
    ::sigaction(SIGTSTP, nullptr, &old_tstp_);
    install_stop_handler();
    active_ = ::tcsetattr(0, TCSANOW, &raw_) == 0;
    if (!active_) restore_handlers();
  }
  /// Restores the terminal's settings.
  ~KeyReader() {
    if (!active_) return;
    restore_handlers();
    if (::tcgetpgrp(0) == ::getpgrp()) ::tcsetattr(0, TCSANOW, &saved_);
  }
  KeyReader(const KeyReader&) = delete;
  KeyReader& operator=(const KeyReader&) = delete;

  /// True when keys are read.
  [[nodiscard]] bool active() const noexcept { return active_; }

  /// The next key typed, or -1 when none is waiting (or the process is not in the terminal's
  /// foreground).
  int next() noexcept {
    if (!active_) return -1;
    if (g_continued != 0) {
      g_continued = 0;
      mode_lost_ = true;
    }
    if (::tcgetpgrp(0) != ::getpgrp()) return -1;
    if (mode_lost_) mode_lost_ = ::tcsetattr(0, TCSANOW, &raw_) != 0;
    // Only read what is there: should the mode be canonical again (restored on Ctrl-Z, and the
    // stop ignored, as in an orphaned process group), a read would wait for a whole line.
    pollfd p{0, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & POLLIN) == 0) return -1;
    unsigned char c = 0;
    return ::read(0, &c, 1) == 1 ? c : -1;
  }

 private:
  /// Puts back the SIGTSTP and SIGCONT actions found at construction.
  void restore_handlers() noexcept {
    g_terminal_changed = 0;
    ::sigaction(SIGTSTP, &old_tstp_, nullptr);
    ::sigaction(SIGCONT, &old_cont_, nullptr);
  }

  termios saved_{};
  termios raw_{};
  struct sigaction old_tstp_ {};
  struct sigaction old_cont_ {};
  bool active_ = false;
  bool mode_lost_ = false;
};

/// The order after `o` when the 's' key is pressed (name, rate, cnt0, readers, name, ...).
RowOrder next_row_order(RowOrder o) noexcept {
  switch (o) {
    case RowOrder::name: return RowOrder::rate;
    case RowOrder::rate: return RowOrder::cnt0;
    case RowOrder::cnt0: return RowOrder::readers;
    case RowOrder::readers: return RowOrder::name;
  }
  return RowOrder::name;
}

/// The `--sort` name of `o`.
std::string_view row_order_name(RowOrder o) noexcept {
  return row_order_names()[static_cast<std::size_t>(o)];
}

/// Options of `monitor`.
struct MonitorOptions {
  std::vector<std::string> names;  ///< streams to follow (empty: every stream of the directory)
  std::string dir;        ///< directory override
  double interval = 1.0;  ///< refresh period (and rate window) in seconds
  bool once = false;      ///< print one table and exit
  int count = 0;          ///< number of refreshes before exiting (0 = until interrupted)
  bool json = false;      ///< JSON output
  std::string sort = "name";  ///< row order (row_order_names())
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

/// The streamCTRL-like table of `rows`. When some stream is a bridge replica, three columns
/// come before SEMVALS: BRIDGE ("ORIGIN up|down", red when down), AGE_US (its newest frame's age
/// when it arrived) and SKIP/LOST (frames skipped by a latest-value replica, or lost by an
/// every-frame one, "N lost"); SEMVALS (or a file's error) stays last.
Table make_monitor_table(const std::vector<StreamRow>& rows, bool colour) {
  Table t;
  t.headers = {"NAME", "SHAPE", "DTYPE", "CNT0", "RATE_HZ", "W", "WRITER", "READERS", "SEMS", "SEMVALS"};
  t.right_aligned = {false, false, false, true, true, false, false, false, true, false};
  const bool with_bridge = std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return r.bridge.has_value(); });
  if (with_bridge) {
    t.headers.insert(t.headers.end() - 1, {"BRIDGE", "AGE_US", "SKIP/LOST"});
    t.right_aligned.insert(t.right_aligned.end() - 1, {false, true, true});
  }
  for (const StreamRow& row : rows) {
    if (!row.info) {
      // The error goes last, where its length does not widen the other columns.
      std::vector<Cell> cells(t.headers.size() - 1, Cell{"-"});
      cells[0] = {row.name, colour ? "33" : nullptr};
      cells.push_back({row.error, colour ? "33" : nullptr});
      t.rows.push_back(std::move(cells));
      continue;
    }
    const StreamInfo& info = *row.info;
    const std::int32_t wpid = writer_pid(info);
    const bool dead = pid_liveness(wpid, row.pids_of_this_kernel) == PidLiveness::dead;
    std::vector<Cell> cells{
        {row.name},
        {format_shape(info.shape)},
        {std::string(dtype_short_name(info.dtype))},
        {std::to_string(info.frame.cnt0)},
        {format_rate(row.rate_hz), row.rate_hz && *row.rate_hz > 0 ? "32" : nullptr},
        {info.write_flag ? "1" : "0"},
        {pid_cell_text(wpid, row.pids_of_this_kernel), dead ? "31" : nullptr},
        {readers_text(row.readers)},
        {std::to_string(info.semaphores)},
    };
    if (with_bridge && row.bridge) {
      const BridgeFreshness& f = *row.bridge;
      const auto number = [](const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : std::string("-"); };
      const std::optional<std::int64_t>& missed = f.lost ? f.lost : f.skipped;
      cells.push_back({bridge_cell(f), f.link_up == false ? "31" : nullptr});
      cells.push_back({number(f.age_us)});
      cells.push_back({number(missed) + (f.lost ? " lost" : ""), missed.value_or(0) > 0 ? "33" : nullptr});
    } else if (with_bridge) {
      cells.insert(cells.end(), {Cell{"-"}, Cell{"-"}, Cell{"-"}});
    }
    cells.push_back({sem_values_text(info)});
    t.rows.push_back(std::move(cells));
  }
  return t;
}

/// The JSON document of one refresh; `events`, when given, become its "events" array.
Json monitor_json(const std::string& dir, double interval, const std::string& sort, const std::vector<StreamRow>& rows,
                  const std::vector<StreamEvent>* events = nullptr) {
  Json j;
  j["schema_version"] = kSchemaVersion;
  j["directory"] = dir;
  j["interval_s"] = interval;
  j["sort"] = sort;
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

/// The title line above the table ("shmlink monitor  /dev/shm  12:00:01  3 streams  (every 1 s,
/// sorted by name, ...)"); `keys`: the s and q keys work (KeyReader).
std::string title_line(const std::string& dir, std::size_t n, double interval, const std::string& sort, bool live,
                       bool keys = false) {
  const std::time_t now = std::time(nullptr);
  struct tm tm {};
  ::localtime_r(&now, &tm);
  return fmt::format("shmlink monitor  {}  {:02d}:{:02d}:{:02d}  {} stream{}  (every {:g} s, sorted by {}{}{})\n", dir,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, n, n == 1 ? "" : "s", interval, sort,
                     keys ? ", s: change order, q: quit" : "", live ? ", Ctrl-C to quit" : "");
}

/// Runs `monitor`: refreshes every `interval` until interrupted, `count` refreshes are shown,
/// or once (`--once`, rates measured over one interval). Re-created, removed and new stream
/// files are reported as events (text lines, or NDJSON objects with an "event" key) and
/// followed: a re-created file is re-opened, a named stream that is removed is waited for.
int run_monitor(const MonitorOptions& opt) {
  const tools::SignalHandlers signals(on_stop_signal, {SIGINT, SIGTERM});  // restored when monitor returns
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
  RowOrder order = row_order_from_name(opt.sort);
  // Readers come from a /proc scan, which reads every process's maps (taking its mmap_lock):
  // --once scans once, for the table it prints; a live monitor reuses a scan for up to
  // kReaderScanMaxAge (sooner when a stream appears or a semaphore slot changes hands).
  auto refresh = [&watcher, &order](ReaderScan scan) {
    std::vector<StreamRow> r = watcher.refresh(scan);
    sort_rows(r, order);
    return r;
  };
  std::vector<StreamRow> rows = refresh(opt.once ? ReaderScan::none : ReaderScan::cached);

  if (opt.once) {
    sleep_while(period, keep_running);
    rows = refresh(ReaderScan::fresh);
    const std::vector<StreamEvent> events = watcher.take_events();
    if (opt.json) {
      print_json(monitor_json(watcher.directory(), opt.interval, opt.sort, rows, &events));
    } else {
      std::string out;
      for (const StreamEvent& e : events) out += event_line(e);
      out += title_line(watcher.directory(), rows.size(), opt.interval, opt.sort, false);
      out += make_monitor_table(rows, colour).render(colour);
      std::cout << out << std::flush;
    }
    return kExitOk;
  }

  // On a terminal the screen is redrawn, so the latest events stay listed under the table, and
  // the 's' key changes the order at once (KeyReader).
  constexpr std::size_t kRecentEvents = 5;
  std::deque<StreamEvent> recent;
  std::optional<KeyReader> keys;
  if (tty && !opt.json) keys.emplace();
  bool resort = false;
  auto keep_running_live = [&] {
    for (int k = keys ? keys->next() : -1; k >= 0; k = keys->next()) {
      if (k == 's') {
        order = next_row_order(order);
        resort = true;
      } else if (k == 'q') {
        g_stop = 1;
      }
    }
    return g_stop == 0 && !resort;
  };
  auto draw = [&](const std::vector<StreamEvent>& events) {
    const std::string sort(row_order_name(order));
    if (opt.json) {
      // One compact document per line (NDJSON) so a pipe can consume refreshes as they come;
      // events come first, each on its own line, told apart by their "event" key.
      std::string out;
      for (const StreamEvent& e : events) out += event_json_line(e) + '\n';
      out += json_text(monitor_json(watcher.directory(), opt.interval, sort, rows), -1);
      out += '\n';
      std::cout << out << std::flush;
      return;
    }
    std::string screen;
    if (tty) {
      screen += "\x1b[H\x1b[2J";  // cursor home, clear screen
    } else {
      for (const StreamEvent& e : events) screen += event_line(e);
    }
    screen += title_line(watcher.directory(), rows.size(), opt.interval, sort, true, keys && keys->active());
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
  };
  int shown = 0;
  while (true) {
    draw(watcher.take_events());
    ++shown;
    if (opt.count > 0 && shown >= opt.count) break;
    // A key that changes the order redraws the rows at once; the next refresh then comes a
    // whole interval later (rates are measured over the real time between refreshes).
    while (!sleep_while(period, keep_running_live) && g_stop == 0) {
      resort = false;
      sort_rows(rows, order);
      draw({});
    }
    if (g_stop != 0) break;
    rows = refresh(ReaderScan::cached);
  }
  return kExitOk;
}

}  // namespace

Command add_monitor_command(CLI::App& app) {
  auto opt = std::make_shared<MonitorOptions>();
  CLI::App* sub = app.add_subcommand(
      "monitor", "Live table of streams with update rates, writer/reader pids and semaphores (like milk-streamCTRL)");
  sub->add_option("names", opt->names,
                  "Streams to follow (names, paths or REGION:NAME); a missing one is waited for. Default: every "
                  "stream of the directory and of its regions (*.region.shm)");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--interval", opt->interval, "Refresh period in seconds; rates are measured over it")
      ->check(seconds_validator(0.01, 3600.0))
      ->capture_default_str();
  sub->add_option("--sort", opt->sort,
                  "Row order: name (byte order: wfs before wfs-frames), rate (fastest first), cnt0 (most frames "
                  "first) or readers (most first); ties go by name. On a terminal the s key switches to the next "
                  "order and q quits")
      ->check(CLI::IsMember(row_order_names()))
      ->capture_default_str();
  sub->add_flag("--once", opt->once, "Measure over one interval, print one table and exit (for scripts)");
  sub->add_option("--count", opt->count, "Exit after this many refreshes (0: run until Ctrl-C)")
      ->check(CLI::Range(0, 1000000000))
      ->capture_default_str();
  sub->add_flag("--json", opt->json,
                "Print JSON: one document with --once, else one compact document per line per refresh, "
                "preceded by one line per event ({\"event\": \"recreated\", ...})");
  return {sub, [opt] { return run_monitor(*opt); }};
}

}  // namespace shmlink::cli
