// SPDX-License-Identifier: MIT
/// @file bench_memif.hpp
/// @brief `shmlink memif bench` (docs/bench.md "`shmlink memif bench`"): one-way packet rate of
/// shmlink's memif next to a libmemif-style reference loop on the same ring layout and DPDK's
/// memif PMD (dpdk-testpmd txonly/rxonly) in the same run, for each packet size, both directions
/// (slave-to-master and master-to-slave rings), interleaved rounds, medians and spreads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shmlink::cli::bench {

/// Options of `shmlink memif bench`.
struct MemifBenchOptions {
  std::vector<std::uint32_t> sizes{64, 1500, 9000};  ///< Ethernet frame bytes (no FCS), 60..65535
  double duration = 1.0;           ///< measured seconds per case
  double warmup = 0.5;             ///< seconds of traffic before measuring
  int rounds = 5;                  ///< interleaved runs of every case; medians and spreads are reported
  std::string cores;               ///< "A,B": sender on A, receiver on B ("" = first two allowed)
  unsigned log2_ring = 10;         ///< slots per ring, log2 (both implementations)
  std::uint32_t buffer_size = 2048;  ///< bytes per memif buffer (both implementations)
  std::uint32_t burst = 32;        ///< packets per alloc/tx_burst and per rx_burst (testpmd: --burst)
  bool testpmd = true;             ///< run the DPDK cases (false: shmlink <-> shmlink only)
  bool mixed = true;               ///< run shmlink <-> DPDK pairs too
  double link_timeout = 15.0;      ///< seconds to wait for a link
  bool json = false;               ///< JSON on stdout
  bool markdown = false;           ///< Markdown table on stdout
  std::string save;                ///< also write the JSON document to this file
};

/// Runs the benchmark and prints the report. @return a CLI exit code (0 when every case ran or
/// was skipped with a reason; 1 when a shmlink <-> shmlink or reference case failed).
int run_memif_bench(const MemifBenchOptions& options);

}  // namespace shmlink::cli::bench
