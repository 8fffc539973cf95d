// SPDX-License-Identifier: MIT
// `shmlink`: inspect and manage the shared-memory channels (ImageStreamIO streams, sample queues,
// memif interfaces) in the stream directory, and benchmark them.
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

namespace shmlink::cli {
/// Registers `ivshmem-client` (cmd_ivshmem_server.cpp; a host peer of an ivshmem server: docs/cli.md).
/// Declared here rather than in cli.hpp, which every subcommand's source includes.
Command add_ivshmem_client_command(CLI::App& app);
}  // namespace shmlink::cli

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

/// Gives every subcommand (at any depth) the short footer that points at the top-level help,
/// where the exit codes are described once.
void set_subcommand_footers(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->footer(shmlink::cli::subcommand_footer());
    set_subcommand_footers(*sub);
  }
}

/// "shmlink memif ping": the program and the subcommands the command line chose, for the hint
/// after a usage error.
std::string command_path(CLI::App& app) {
  std::string path = app.get_name();
  for (CLI::App* sub = &app;;) {
    const std::vector<CLI::App*> chosen = sub->get_subcommands();
    if (chosen.empty()) break;
    sub = chosen.front();
    path += " " + sub->get_name();
  }
  return path;
}

/// Parses the command line and runs the chosen subcommand; returns the process exit code.
int run(int argc, char** argv) {
  using namespace shmlink::cli;

  CLI::App app{program_description(), "shmlink"};
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
  commands.push_back(add_region_command(app));
  commands.push_back(add_ivshmem_server_command(app));
  commands.push_back(add_ivshmem_client_command(app));
  commands.push_back(add_bridge_command(app));

  // The exit-code table is told once, in the top-level help; each subcommand's help points there.
  set_subcommand_footers(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own exit codes are 1xx; help and --version are 0 (CLI11 prints them), every other
    // parse error is a usage error (2), reported in the documented form.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(e);
      return kExitOk;
    }
    spdlog::error("{} (see `{} --help`)", shown_message(e.what()), command_path(app));
    return kExitUsage;
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
