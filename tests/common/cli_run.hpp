// SPDX-License-Identifier: MIT
/// @file cli_run.hpp
/// @brief Test support: runs the shmlink CLI as a child process (stdout and stderr into a file)
/// and judges its answer about a damaged resource (tests/process/region_hostile_test.cpp,
/// tests/vm/vm_hostile_test.cpp).
#pragma once

#include "test_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace shmlink::test {

/// What a command printed and how it ended.
struct CliRun {
  int rc = 0;       ///< exit status; -SIGNAL when killed by a signal; -1000 when it overstayed 30 s
  std::string out;  ///< stdout and stderr together
};

/// For a forked child (test::spawn): stdout and stderr into the file `log`, then exec the
/// program `prog` (the shmlink CLI) with `args`. Returns only when that failed (126, 127).
inline int exec_cli(const std::string& prog, std::vector<std::string> args, const std::string& log) {
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) return 126;
  std::string p = prog;
  std::vector<char*> argv{p.data()};
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(p.c_str(), argv.data());
  return 127;
}

/// Runs `prog args...` (exec_cli) to its end (killed after 30 s: test::reap).
inline CliRun run_cli(const std::string& prog, const std::vector<std::string>& args, const std::string& log) {
  CliRun r;
  r.rc = shmlink::test::reap(shmlink::test::spawn([&] { return exec_cli(prog, args, log); }), 30);
  std::ifstream in(log);
  r.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

/// Runs `prog args...` (run_cli) and returns what went wrong: death by a signal, a hang, a
/// failure (exit status over 5, the CLI's last error code) or one whose output does not name
/// `path`. "" when it answered properly.
inline std::string cli_problem(const std::string& prog, const std::vector<std::string>& args, const std::string& path,
                               const std::string& log) {
  const CliRun r = run_cli(prog, args, log);
  std::string cmd = "shmlink";
  for (const auto& a : args) cmd += " " + a;
  if (r.rc == -1000) return cmd + ": did not end within 30 s: " + r.out;
  if (r.rc < 0) return cmd + ": died by signal " + std::to_string(-r.rc) + ": " + r.out;
  if (r.rc != 0 && (r.rc > 5 || r.out.find(path) == std::string::npos))
    return cmd + ": exit " + std::to_string(r.rc) + " without naming " + path + ": " + r.out;
  return "";
}

}  // namespace shmlink::test
