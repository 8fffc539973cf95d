// SPDX-License-Identifier: MIT
/// @file cli.hpp
/// @brief The base of every `shmlink` subcommand: the JSON type, exit codes, help texts, the
/// Command registry and error reporting.
#pragma once

#include <shmlink/error.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace shmlink::cli {

/// JSON object type used for all output (keys keep their insertion order).
using Json = nlohmann::ordered_json;

/// Version of the JSON documents the CLI prints (`schema_version` key).
inline constexpr int kSchemaVersion = 1;

/// Process exit codes (documented in `--help` and docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,          ///< success
  kExitFailure = 1,     ///< any other failure (exists, no space, torn read, I/O error)
  kExitUsage = 2,       ///< bad command line (unknown option, bad shape/dtype, name too long)
  kExitNotFound = 3,    ///< the stream or directory does not exist
  kExitPermission = 4,  ///< the OS refused access
  kExitLayout = 5,      ///< the file is not a valid ImageStreamIO 2.00 stream
  kExitTimeout = 124,   ///< a wait reached its deadline (as timeout(1))
  kExitInterrupted = 130,  ///< `bench stream` stopped by SIGINT/SIGTERM after printing what was done (128 + SIGINT)
};

/// The exit code for a library error condition.
int exit_code_for(Errc e) noexcept;

/// The exit-code table shown in the footer of the top-level `--help` (only there) and docs/cli.md.
std::string exit_code_help();

/// What the top-level `--help` says shmlink is: the channel kinds and where they live.
std::string program_description();

/// The one-line footer of every subcommand's `--help`: where the exit codes are described.
std::string subcommand_footer();

/// A parsed subcommand: the CLI11 sub-app and the function that runs it after parsing.
struct Command {
  CLI::App* app = nullptr;          ///< the subcommand (owned by the parent App)
  std::function<int()> run;          ///< runs the command; returns the exit code
};

/// Registers `bridge` (cmd_bridge.cpp) and its subcommands.
Command add_bridge_command(CLI::App& app);
/// Registers `bridge serve` under `bridge` (cmd_bridge_serve.cpp).
Command add_bridge_serve_command(CLI::App& bridge);
/// Registers `bridge keygen` under `bridge` (cmd_bridge_keys.cpp).
Command add_bridge_keygen_command(CLI::App& bridge);
/// Registers `ls`. @return the subcommand and its runner.
Command add_ls_command(CLI::App& app);
/// Registers `info`.
Command add_info_command(CLI::App& app);
/// Registers `create`.
Command add_create_command(CLI::App& app);
/// Registers `rm`.
Command add_rm_command(CLI::App& app);
/// Registers `monitor`.
Command add_monitor_command(CLI::App& app);
/// Registers `cat`.
Command add_cat_command(CLI::App& app);
/// Registers `gc`.
Command add_gc_command(CLI::App& app);
/// Registers `bench` (`bench stream`: docs/bench.md).
Command add_bench_command(CLI::App& app);
/// Registers `memif` (`memif responder`, `memif ping`: docs/cli.md).
Command add_memif_command(CLI::App& app);
/// Registers `region` (`region create`, `region ls`, `region rm`: docs/cli.md).
Command add_region_command(CLI::App& app);
/// Registers `ivshmem-server` (QEMU's ivshmem-server protocol: docs/cli.md, docs/vm.md).
Command add_ivshmem_server_command(CLI::App& app);

/// code.
int report_error(const Error& e);

}  // namespace shmlink::cli
