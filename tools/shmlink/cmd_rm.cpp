// SPDX-License-Identifier: MIT
// `shmlink rm NAME...`: removes stream files.
#include "common.hpp"

#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `rm`.
struct RmOptions {
  std::vector<std::string> names;  ///< stream names or paths
  std::string dir;                 ///< directory override
  bool force = false;              ///< ignore streams that do not exist
  bool verbose = false;            ///< print each removed path
};

/// Runs `rm`: removes every named stream, continuing past failures; the exit code is the
/// first failure's (0 when all were removed).
int run_rm(const RmOptions& opt) {
  int rc = kExitOk;
  for (const std::string& name : opt.names) {
    try {
      const std::string path = resolve_stream(name, opt.dir);
      // Refuse to unlink arbitrary files given as paths: only stream files.
      if (path.size() <= 7 || path.compare(path.size() - 7, 7, ".im.shm") != 0) {
        throw Error(Errc::invalid_argument, "refusing to remove " + path + ": not a .im.shm stream file");
      }
      Stream::remove(path);
      if (opt.verbose) std::cout << "removed " << path << '\n';
    } catch (const Error& e) {
      if (opt.force && e.errc() == Errc::not_found) continue;
      const int code = report_error(e);
      if (rc == kExitOk) rc = code;
    }
  }
  std::cout << std::flush;
  return rc;
}

}  // namespace

Command add_rm_command(CLI::App& app) {
  auto opt = std::make_shared<RmOptions>();
  CLI::App* sub = app.add_subcommand("rm", "Remove streams (open handles keep their mapping)");
  sub->add_option("names", opt->names, "Stream names or paths")->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_flag("-f,--force", opt->force, "Ignore streams that do not exist");
  sub->add_flag("--print", opt->verbose, "Print each removed path");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_rm(*opt); }};
}

}  // namespace shmlink::cli
