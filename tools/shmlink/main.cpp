// SPDX-License-Identifier: MIT
// `shmlink`: inspect, create and remove ImageStreamIO 2.00 shared-memory streams.
#include "common.hpp"

#include <shmlink/log.hpp>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#ifndef SHMLINK_CLI_VERSION
#define SHMLINK_CLI_VERSION "unknown"
#endif

namespace {

/// Installs the stderr logger ("shmlink: error: ...") and routes the library's log callback
/// into it.
void setup_logging() {
  auto logger = spdlog::stderr_logger_mt("shmlink");
  logger->set_pattern("shmlink: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);
  shmlink::set_log_handler([](shmlink::LogLevel level, std::string_view message) {
    switch (level) {
      case shmlink::LogLevel::error: spdlog::error("{}", message); break;
      case shmlink::LogLevel::warn: spdlog::warn("{}", message); break;
      case shmlink::LogLevel::info: spdlog::info("{}", message); break;
      case shmlink::LogLevel::debug: spdlog::debug("{}", message); break;
      case shmlink::LogLevel::trace: spdlog::trace("{}", message); break;
      case shmlink::LogLevel::off: break;
    }
  });
}

/// Parses the command line and runs the chosen subcommand; returns the process exit code.
int run(int argc, char** argv) {
  using namespace shmlink::cli;

  CLI::App app{"shmlink: inspect, create and remove ImageStreamIO 2.00 (milk/cacao) shared-memory streams",
               "shmlink"};
  app.set_version_flag("--version", std::string("shmlink " SHMLINK_CLI_VERSION));
  app.require_subcommand(1);
  // Subcommands inherit this: options they do not know (-v) fall through to the parent, so
  // `shmlink ls -v` works like `shmlink -v ls`.
  app.fallthrough();
  app.footer(exit_code_help());
  int verbosity = 0;
  app.add_flag("-v,--verbose", verbosity, "More diagnostics on stderr (repeat for more)");

  std::vector<Command> commands;
  commands.push_back(add_ls_command(app));
  commands.push_back(add_info_command(app));
  commands.push_back(add_create_command(app));
  commands.push_back(add_rm_command(app));
  commands.push_back(add_monitor_command(app));
  commands.push_back(add_cat_command(app));
  commands.push_back(add_gc_command(app));
  commands.push_back(add_bench_command(app));
  commands.push_back(add_memif_command(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own exit codes are 1xx; help and --version are 0, every other parse error is
    // a usage error (2).
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (verbosity >= 2) {
    spdlog::set_level(spdlog::level::trace);
    shmlink::set_log_level(shmlink::LogLevel::trace);
  } else if (verbosity == 1) {
    spdlog::set_level(spdlog::level::debug);
    shmlink::set_log_level(shmlink::LogLevel::debug);
  }

  for (const Command& cmd : commands) {
    if (!cmd.app->parsed()) continue;
    try {
      return cmd.run();
    } catch (const shmlink::Error& e) {
      return report_error(e);
    }
  }
  spdlog::error("no subcommand given (see --help)");
  return kExitUsage;
}

}  // namespace

/// Entry point: runs the CLI and turns unexpected exceptions into exit code 1.
int main(int argc, char** argv) {
  try {
    setup_logging();
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "shmlink: error: " << e.what() << '\n';
    return shmlink::cli::kExitFailure;
  } catch (...) {
    std::cerr << "shmlink: error: unknown exception\n";
    return shmlink::cli::kExitFailure;
  }
}
