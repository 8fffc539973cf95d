// SPDX-License-Identifier: MIT
/// @file bench_common.hpp
/// @brief The command-line layer of `shmlink bench` (docs/bench.md): the measurements come from
/// the bench harness (bench/harness, namespace shmlink::bench); this adds what only the CLI
/// needs (Markdown tables, the `bench queue` subcommand's registration).
#pragma once

#include "common.hpp"
#include "harness/machine.hpp"
#include "harness/queue.hpp"
#include "harness/stream.hpp"

#include <string>

namespace shmlink::cli::bench {

using namespace shmlink::bench;  // NOLINT(google-build-using-namespace): the harness is this layer's engine

/// Renders a table as GitHub Markdown (header row, alignment row, one row per table row;
/// colours dropped), for the `--markdown` reports that go into README.md.
std::string markdown_table(const Table& t);

/// Registers `bench queue` under the `bench` subcommand (options, JSON schema
/// "shmlink-bench-queue/1", report). @return the subcommand and its runner.
Command add_bench_queue_command(CLI::App& bench);

}  // namespace shmlink::cli::bench
