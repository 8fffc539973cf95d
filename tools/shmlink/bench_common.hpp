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

#include <shmlink/region.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace shmlink::cli::bench {

using namespace shmlink::bench;  // NOLINT(google-build-using-namespace): the harness is this layer's engine

/// Parses a comma-separated list of frame sizes: "4096", "4K", "64KiB", "1M", "16MiB" (K and M
/// are binary), each at most 2^32 - 1 bytes (one u8 axis of a stream).
/// @throws Error(invalid_argument) naming the list when an entry is malformed or 0.
std::vector<std::size_t> parse_sizes(const std::string& text);

/// "4 KiB", "16 MiB", "1000 B".
std::string size_text(std::size_t bytes);

/// Renders a table as GitHub Markdown (header row, alignment row, one row per table row;
/// colours dropped), for the `--markdown` reports that go into README.md.
std::string markdown_table(const Table& t);

/// The region of a `--region` run: created for the run (never an existing one) and removed
/// with its file when the run ends. The channels placed in it share its mapping, which the
/// forked children inherit.
class BenchRegion {
 public:
  /// Creates the region file: `path` as `region_path()` resolves it (a name without '/' lands
  /// in the stream directory as `<name>.region.shm`), or `<scratch>/bench.region.shm` when
  /// `path` is empty; `size` is rounded up to a power of two of at least 4 MiB (a multiple of
  /// the 2 MiB huge page, for hugetlbfs). @throws Error naming the file (it exists, no space,
  /// a bad size for its file system).
  BenchRegion(const std::string& path, const std::string& scratch, std::size_t size);
  /// Removes the region file.
  ~BenchRegion();
  BenchRegion(const BenchRegion&) = delete;
  BenchRegion& operator=(const BenchRegion&) = delete;
  /// The region.
  [[nodiscard]] Region& region() noexcept { return *region_; }
  /// Its file.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  std::shared_ptr<Region> region_;
};

/// The StreamPlace of `bench stream --region`: streams created in `r` (purging an old entry).
StreamPlace stream_place(const std::shared_ptr<BenchRegion>& r);
/// The QueuePlace of `bench queue --region`: queues created, opened and removed in `r`.
QueuePlace queue_place(const std::shared_ptr<BenchRegion>& r);

/// Registers `bench queue` under the `bench` subcommand (options, JSON schema
/// "shmlink-bench-queue/1", report). @return the subcommand and its runner.
Command add_bench_queue_command(CLI::App& bench);

/// Registers `bench bridge` under the `bench` subcommand (options, JSON schema
/// "shmlink-bench-bridge/1", report). @return the subcommand and its runner.
Command add_bench_bridge_command(CLI::App& bench);

}  // namespace shmlink::cli::bench
