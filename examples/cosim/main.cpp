// SPDX-License-Identifier: MIT
/// @file main.cpp
/// @brief `cosim`: command-line parsing and dispatch.
#include "cosim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>

namespace {

constexpr const char* kUsage = R"(usage:
  shmlink-cosim run [--steps N] [--exec] [--wait polling|futex|hybrid] [--predictor linear|hold]
                    [--protocol shmlink|villas] [--tolerance F] [--timeout S] [--json] [--keep]
      Runs the circuit split in two processes (source side, load side) for N steps of 50 us
      (default 20000 = 1 s), compares with the one-process solution and prints a summary (with
      --json: JSON on stdout, the summary on stderr). --exec: the source side launches the load
      side through its Interface (InterfaceSpec::exec) instead of the launcher starting both.
      --protocol villas: the sides exchange samples through VILLASnode shmem regions in /dev/shm
      (what villas-node's `shmem` node speaks) instead of shmlink queues. --tolerance: largest
      max|error|/peak allowed for v and i (default 0.01). --keep: keep the scratch directory
      (trajectories, reports). Exit status 0 on pass, 1 on fail.
  shmlink-cosim monolithic [--steps N] [--csv FILE] [--json]
      Solves the whole circuit in one process (the reference); --csv writes step,t_s,v_V,i_A.
  shmlink-cosim side source|load [--in QUEUE] [--out QUEUE] [--steps N] [--wait MODE]
                    [--predictor linear|hold] [--protocol shmlink|villas] [--timeout S]
                    [--trajectory FILE] [--report FILE] [--exec COMMAND ARGS...]
      One side, against any peer: QUEUE is a queue name in $SHMLINK_DIR (else /dev/shm), a
      path, or a channel of a region (PATH:NAME; ivshmem:NAME in a VM guest, both QUEUEs in the
      same region); with --protocol villas, a VILLASnode shm name ("/cosim-load", in /dev/shm), so the
      peer may be a villas-node whose shmem node has the names swapped. Defaults:
      $SHMLINK_INTERFACE_IN / $SHMLINK_INTERFACE_OUT when set (a side launched by --exec), else
      --out cosim-<this side> and --in cosim-<other side> ("/cosim-..." with villas). --exec
      (last) launches the peer with the rest of the line. --timeout S (default 30): how long to
      wait for the peer to attach and for each sample. --trajectory: CSV step,t_s,value.
  shmlink-cosim compare --source FILE --load FILE [--tolerance F] [--json]
      Compares the trajectories of two sides run by hand with the one-process solution.
)";

/// Exit status for a command-line mistake.
constexpr int kUsageError = 2;

/// A parsed command line: `--key value` pairs, `--switch`es, and what follows `--exec`.
struct Args {
  std::map<std::string, std::string, std::less<>> values;  ///< --key value
  std::set<std::string, std::less<>> switches;              ///< --switch (no value)
  std::vector<std::string> exec;                            ///< the words after --exec (sides)
};

/// Parses argv[first..]: names in `switches` take no value; with `exec_takes_rest`, `--exec`
/// takes every remaining word. Throws std::invalid_argument on anything else.
Args parse_args(int argc, char** argv, int first, std::initializer_list<std::string_view> switches,
                bool exec_takes_rest = false) {
  Args args;
  for (int i = first; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word.substr(0, 2) != "--") throw std::invalid_argument("expected an --option, got '" + std::string(word) + "'");
    const std::string key(word.substr(2));
    if (exec_takes_rest && key == "exec") {
      for (++i; i < argc; ++i) args.exec.emplace_back(argv[i]);
      if (args.exec.empty()) throw std::invalid_argument("--exec needs a command");
      break;
    }
    if (std::find(switches.begin(), switches.end(), key) != switches.end()) {
      args.switches.insert(key);
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument("--" + key + " needs a value");
    args.values[key] = argv[++i];
  }
  return args;
}

/// Removes option `key` from `args` and returns its value, or `fallback` when absent.
std::string take(Args& args, std::string_view key, const std::string& fallback = "") {
  const auto it = args.values.find(key);
  if (it == args.values.end()) return fallback;
  std::string value = it->second;
  args.values.erase(it);
  return value;
}

/// Removes switch `key` from `args`; true when it was given.
bool take_switch(Args& args, std::string_view key) {
  const auto it = args.switches.find(key);
  if (it == args.switches.end()) return false;
  args.switches.erase(it);
  return true;
}

/// Throws std::invalid_argument if options are left over.
void expect_empty(const Args& args) {
  if (!args.values.empty()) throw std::invalid_argument("unknown option --" + args.values.begin()->first);
  if (!args.switches.empty()) throw std::invalid_argument("unknown option --" + *args.switches.begin());
}

/// Parses a number in [low, high]; throws std::invalid_argument naming `what`.
double number(const std::string& text, const char* what, double low, double high) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value >= low && value <= high)) {
    throw std::invalid_argument(std::string(what) + " must be a number from " + cosim::json_number(low) + " to " +
                                cosim::json_number(high) + ", got '" + text + "'");
  }
  return value;
}

/// Parses a whole number in [low, high]; throws std::invalid_argument naming `what`.
std::int64_t whole(const std::string& text, const char* what, double low, double high) {
  const double value = number(text, what, low, high);
  if (value != std::floor(value)) throw std::invalid_argument(std::string(what) + " must be a whole number, got '" + text + "'");
  return static_cast<std::int64_t>(value);
}

/// Parses --steps (default 20000).
std::int64_t steps_option(Args& args) { return whole(take(args, "steps", "20000"), "--steps", 2, 1e8); }

/// Parses --wait (default hybrid, the Interface's default).
shmlink::WaitMode wait_option(Args& args) {
  const std::string text = take(args, "wait", "hybrid");
  if (text == "polling") return shmlink::WaitMode::polling;
  if (text == "futex") return shmlink::WaitMode::futex;
  if (text == "hybrid") return shmlink::WaitMode::hybrid;
  throw std::invalid_argument("--wait must be polling, futex or hybrid, got '" + text + "'");
}

/// Parses --predictor (default linear).
cosim::Predictor predictor_option(Args& args) {
  const std::string text = take(args, "predictor", "linear");
  if (text == "linear") return cosim::Predictor::linear;
  if (text == "hold") return cosim::Predictor::hold;
  throw std::invalid_argument("--predictor must be linear or hold, got '" + text + "'");
}

/// Parses --protocol (default shmlink).
shmlink::InterfaceProtocol protocol_option(Args& args) {
  const std::string text = take(args, "protocol", "shmlink");
  if (text == "shmlink") return shmlink::InterfaceProtocol::shmlink;
  if (text == "villas") return shmlink::InterfaceProtocol::villas;
  throw std::invalid_argument("--protocol must be shmlink or villas, got '" + text + "'");
}

/// Parses a role name.
cosim::Role role_of(const std::string& text, const char* what) {
  if (text == "source") return cosim::Role::source;
  if (text == "load") return cosim::Role::load;
  throw std::invalid_argument(std::string(what) + " must be source or load, got '" + text + "'");
}

/// The value of environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

/// `cosim run ...`
int main_run(Args args) {
  cosim::RunOptions o;
  o.steps = steps_option(args);
  o.exec = take_switch(args, "exec");
  o.json = take_switch(args, "json");
  o.keep = take_switch(args, "keep");
  o.wait = wait_option(args);
  o.predictor = predictor_option(args);
  o.protocol = protocol_option(args);
  o.tolerance = number(take(args, "tolerance", "0.01"), "--tolerance", 0, 1);
  o.timeout_s = number(take(args, "timeout", "30"), "--timeout", 0.1, 3600);
  // Fault injection (not in the usage text: for the test that checks violations are caught).
  o.fault_side = role_of(take(args, "fault-side", "load"), "--fault-side");
  o.drop_step = whole(take(args, "drop-step", "-1"), "--drop-step", -1, 1e8);
  o.duplicate_step = whole(take(args, "duplicate-step", "-1"), "--duplicate-step", -1, 1e8);
  expect_empty(args);
  return cosim::run_cosim(o);
}

/// `cosim monolithic ...`
int main_monolithic(Args args) {
  const std::int64_t steps = steps_option(args);
  const std::string csv = take(args, "csv");
  const bool json = take_switch(args, "json");
  expect_empty(args);
  return cosim::run_monolithic(steps, csv, json);
}

/// `cosim side source|load ...`
int main_side(const std::string& role, Args args) {
  cosim::SideOptions o;
  o.role = role_of(role, "the side");
  const std::string self = cosim::role_name(o.role);
  const std::string other = cosim::role_name(o.role == cosim::Role::source ? cosim::Role::load : cosim::Role::source);
  o.protocol = protocol_option(args);
  // VILLAS names are shm names: "/cosim-load".
  const std::string prefix = o.protocol == shmlink::InterfaceProtocol::villas ? "/cosim-" : "cosim-";
  o.in = take(args, "in", env_or("SHMLINK_INTERFACE_IN", prefix + other));
  o.out = take(args, "out", env_or("SHMLINK_INTERFACE_OUT", prefix + self));
  o.steps = steps_option(args);
  o.wait = wait_option(args);
  o.predictor = predictor_option(args);
  o.timeout_s = number(take(args, "timeout", "30"), "--timeout", 0.1, 3600);
  o.trajectory_path = take(args, "trajectory");
  o.report_path = take(args, "report");
  o.exec = args.exec;
  // Fault injection (not in the usage text).
  o.drop_step = whole(take(args, "drop-step", "-1"), "--drop-step", -1, 1e8);
  o.duplicate_step = whole(take(args, "duplicate-step", "-1"), "--duplicate-step", -1, 1e8);
  expect_empty(args);
  return cosim::run_side(o);
}

/// `cosim compare ...`
int main_compare(Args args) {
  const std::string source = take(args, "source");
  const std::string load = take(args, "load");
  const double tolerance = number(take(args, "tolerance", "0.01"), "--tolerance", 0, 1);
  const bool json = take_switch(args, "json");
  expect_empty(args);
  if (source.empty() || load.empty()) throw std::invalid_argument("compare needs --source and --load");
  return cosim::run_compare(source, load, tolerance, json);
}

}  // namespace

/// Dispatches to a subcommand.
int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "-h" || command == "--help" || command == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (command == "run") return main_run(parse_args(argc, argv, 2, {"exec", "json", "keep"}));
    if (command == "monolithic") return main_monolithic(parse_args(argc, argv, 2, {"json"}));
    if (command == "compare") return main_compare(parse_args(argc, argv, 2, {"json"}));
    if (command == "side") {
      if (argc < 3) throw std::invalid_argument("side needs source or load");
      return main_side(argv[2], parse_args(argc, argv, 3, {}, true));
    }
    throw std::invalid_argument(command.empty() ? "no command" : "unknown command '" + command + "'");
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "cosim: %s\n\n%s", e.what(), kUsage);
    return kUsageError;
  } catch (const std::exception& e) {  // files, fork, the scratch directory
    cosim::log_error(command, e.what());
    return 1;
  }
}
