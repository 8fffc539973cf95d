// SPDX-License-Identifier: MIT
/// @file main.cpp
/// @brief `ao_loop`: command-line parsing and dispatch to the launcher or one of the roles.
#include "ao_loop.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string_view>

namespace {

constexpr const char* kUsage = R"(usage:
  shmlink-ao-loop [run] [--seconds S] [--rate HZ] [--transport shm|pipe|both] [--json FILE]
      Runs the camera -> controller -> recorder pipeline over shmlink streams and over pipes,
      S seconds each (default: $SHMLINK_DEMO_SECONDS, else 10) at HZ frames per second
      (default 1000), and prints the comparison. Exit status 0 when every check passed.
  shmlink-ao-loop camera     [--transport shm|pipe] --out STREAM|FD             [common options]
  shmlink-ao-loop controller [--transport shm|pipe] --in STREAM|FD --out STREAM|FD [common options]
  shmlink-ao-loop recorder   [--transport shm|pipe] --in STREAM|FD               [common options]
      common options: [--seconds S] [--rate HZ] [--timeout S] [--report-fd FD]
      One process of the pipeline (what `run` starts). STREAM is a stream name in
      $SHMLINK_DIR (else /dev/shm), FD an inherited pipe end (default transport: shm).
      Readers give up --timeout seconds after they start (default S + 10).
)";

/// Exit status for a command-line mistake.
constexpr int kUsageError = 2;

/// `--key value` pairs of a command line.
using Flags = std::map<std::string, std::string, std::less<>>;

/// Collects `--key value` pairs from argv[first..]; throws std::invalid_argument on anything else.
Flags parse_flags(int argc, char** argv, int first) {
  Flags flags;
  for (int i = first; i < argc; i += 2) {
    const std::string_view key = argv[i];
    if (key.substr(0, 2) != "--" || i + 1 >= argc) throw std::invalid_argument("expected --option value, got '" + std::string(key) + "'");
    flags[std::string(key.substr(2))] = argv[i + 1];
  }
  return flags;
}

/// Removes flag `key` from `flags` and returns its value, or `fallback` when absent.
std::string take(Flags& flags, std::string_view key, const std::string& fallback = "") {
  const auto it = flags.find(key);
  if (it == flags.end()) return fallback;
  std::string value = it->second;
  flags.erase(it);
  return value;
}

/// Parses a positive number; throws std::invalid_argument naming `what`.
double positive(const std::string& text, const char* what) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value > 0) || value > 1e7) {
    throw std::invalid_argument(std::string(what) + " must be a positive number, got '" + text + "'");
  }
  return value;
}

/// Parses "shm" or "pipe".
ao_loop::Transport parse_transport(const std::string& text) {
  if (text == "shm") return ao_loop::Transport::shm;
  if (text == "pipe") return ao_loop::Transport::pipe;
  throw std::invalid_argument("--transport must be shm or pipe, got '" + text + "'");
}

/// Throws std::invalid_argument if options are left over.
void expect_empty(const Flags& flags) {
  if (!flags.empty()) throw std::invalid_argument("unknown option --" + flags.begin()->first);
}

/// The run time: --seconds, else $SHMLINK_DEMO_SECONDS, else 10.
std::string default_seconds() {
  const char* env = std::getenv("SHMLINK_DEMO_SECONDS");
  return env != nullptr && *env != '\0' ? env : "10";
}

/// `ao_loop run ...`
int main_run(Flags flags) {
  ao_loop::RunOptions options;
  options.seconds = positive(take(flags, "seconds", default_seconds()), "--seconds");
  options.rate_hz = positive(take(flags, "rate", "1000"), "--rate");
  options.json_path = take(flags, "json");
  const std::string transport = take(flags, "transport", "both");
  if (transport == "both") {
    options.transports = {ao_loop::Transport::shm, ao_loop::Transport::pipe};
  } else {
    options.transports = {parse_transport(transport)};
  }
  expect_empty(flags);
  return ao_loop::run_demo(options);
}

/// `ao_loop camera|controller|recorder ...`
int main_role(const std::string& role, Flags flags) {
  ao_loop::RoleOptions options;
  options.transport = parse_transport(take(flags, "transport", "shm"));
  options.in = take(flags, "in");
  options.out = take(flags, "out");
  options.seconds = positive(take(flags, "seconds", default_seconds()), "--seconds");
  options.rate_hz = positive(take(flags, "rate", "1000"), "--rate");
  options.timeout_s = positive(take(flags, "timeout", std::to_string(options.seconds + 10)), "--timeout");
  options.report_fd = static_cast<int>(positive(take(flags, "report-fd", "1"), "--report-fd"));
  expect_empty(flags);
  if ((role != "camera" && options.in.empty()) || (role != "recorder" && options.out.empty())) {
    throw std::invalid_argument(role + " needs " + (role == "camera" ? "--out" : role == "recorder" ? "--in" : "--in and --out"));
  }

  ao_loop::set_process_label(role + "/" + ao_loop::transport_name(options.transport));
  std::signal(SIGPIPE, SIG_IGN);  // a vanished reader is an EPIPE error, not a silent death
  if (role == "camera") return ao_loop::run_camera(options);
  if (role == "controller") return ao_loop::run_controller(options);
  return ao_loop::run_recorder(options);
}

}  // namespace

/// Dispatches to `run` (the default) or to one role.
int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "run";
  const bool explicit_command = argc > 1 && std::string_view(argv[1]).substr(0, 2) != "--";
  try {
    if (command == "-h" || command == "--help" || command == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!explicit_command) return main_run(parse_flags(argc, argv, 1));
    if (command == "run") return main_run(parse_flags(argc, argv, 2));
    if (command == "camera" || command == "controller" || command == "recorder") {
      return main_role(command, parse_flags(argc, argv, 2));
    }
    throw std::invalid_argument("unknown command '" + command + "'");
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "ao_loop: %s\n\n%s", e.what(), kUsage);
    return kUsageError;
  } catch (const std::exception& e) {  // shmlink::Error from opening streams, system errors
    ao_loop::log_error(e.what());
    return 1;
  }
}
