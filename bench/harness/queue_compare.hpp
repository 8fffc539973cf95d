// SPDX-License-Identifier: MIT
/// @file queue_compare.hpp
/// @brief The "comparison" object of `shmlink bench queue` (docs/bench.md "Comparison") and the
/// small JSON number helpers its entries share.
#pragma once

#include "harness/machine.hpp"

#include <optional>

namespace shmlink::bench {

/// A number, or null when absent.
Json number_or_null(std::optional<double> v);

/// a / b, or nullopt when b is not positive.
std::optional<double> quotient(double a, double b);

/// The "comparison" object of a queue bench document: shmlink's best latency and throughput
/// modes (best, sleeping: the *_futex modes, single, bulk) against each peer's latency and
/// throughput entries, with ratios (shmlink / peer) and "ahead" flags. Like is compared with
/// like: shmlink's best is taken among its rows of channels in their own files (no
/// "placement"), as each peer makes its own channel; `MODE@region` rows never stand for
/// shmlink here (their ratio_vs_file compares them with their file twin).
/// @param latency the document's "latency" entries ({"mode", "kind", "one_way_ns": {"p50"}, ...})
/// @param throughput its "throughput" entries ({"mode", "kind", "batch", "runs", "samples_per_s"})
Json comparison_json(const Json& latency, const Json& throughput);

}  // namespace shmlink::bench
