// SPDX-License-Identifier: MIT
/// @file bridge_bench.hpp
/// @brief The measurements of `shmlink bench bridge` (docs/bench.md "Bridge"): a bridged stream
/// (Publisher at the owner, Replica and a reader woken by futex at the subscriber) between two
/// processes over loopback TCP, next to a raw ZeroMQ transfer of the same bytes between the same
/// two processes and to one local hop (a stream write -> a reader woken by futex), in one run.
#pragma once

#include "harness/machine.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace shmlink::bench {

/// How to run `bench bridge`.
struct BridgeBenchConfig {
  std::vector<std::size_t> frame_sizes;  ///< bytes per frame (u8 streams of one axis)
  std::int64_t frames = 1000;            ///< timed latency frames per size and path
  std::int64_t warmup = 20;              ///< untimed latency frames per size and path, first
  double duration_s = 1.0;               ///< seconds of each rate step, of the raw ZeroMQ transfer and of the idle span
  std::string scratch_dir;               ///< where the streams are created (the replica included)
  /// Called before each part ("64 KiB: latency"), for progress reports; may be empty.
  std::function<void(const std::string&)> progress;
};

/// One step of the rate search: the owner writes at a fixed pace for duration_s.
struct BridgeRateStep {
  double target_frames_per_s = 0;   ///< the pace asked for
  double offered_frames_per_s = 0;  ///< frames written / seconds it took (below the target when writes lag)
  std::uint64_t written = 0;        ///< source frames written
  std::uint64_t published = 0;      ///< of these, published on the replica
  double skipped_fraction = 0;      ///< 1 - published / written
  double owner_cpu = 0;             ///< CPU of the owner process (writer, publisher, ZeroMQ), fraction of one core
  double replica_cpu = 0;           ///< CPU of the subscriber process (replica, reader, ZeroMQ), fraction of one core
};

/// Everything measured for one frame size.
struct BridgeSizeResult {
  std::size_t frame_bytes = 0;
  std::vector<std::int64_t> service_ns;  ///< source publication -> replica publication (its writetime), ns
  std::vector<std::int64_t> reader_ns;   ///< source publication -> the replica's reader woken, ns
  std::vector<std::int64_t> zmq_ns;      ///< raw ZeroMQ: before zmq_send -> the message received whole, ns
  std::vector<std::int64_t> hop_ns;      ///< local hop: before Stream::write -> a reader of it woken, ns
  double zmq_frames_per_s = 0;           ///< raw ZeroMQ, back-to-back sends, messages received per second
  double zmq_owner_cpu = 0;              ///< CPU of the sending process over that transfer, fraction of one core
  double zmq_replica_cpu = 0;            ///< CPU of the receiving process, fraction of one core
  double probe_frames_per_s = 0;         ///< replica publications/s with the owner writing back-to-back
  std::vector<BridgeRateStep> steps;     ///< the rate search, in order (it stops at the first over 1 % skipped)
  std::uint64_t source_frames = 0;       ///< source frames written over the whole size (latency + rates)
  std::uint64_t replica_publications = 0;  ///< replica cnt0 increments over the same
  std::uint64_t distinct_published = 0;  ///< source frames the replica published (ReplicaStats.frames_published)
  std::uint64_t reader_duplicates = 0;   ///< frames the woken reader saw twice (a source sequence not above the last)
  std::uint64_t duplicates_dropped = 0;  ///< duplicates the replica caught and did not publish
};

/// The whole run.
struct BridgeBenchResult {
  double idle_seconds = 0;     ///< length of the idle span (a subscribed replica, no writes)
  double idle_owner_cpu = 0;   ///< CPU of the owner process over it, fraction of one core
  double idle_replica_cpu = 0; ///< CPU of the subscriber process, fraction of one core
  std::vector<BridgeSizeResult> sizes;
};

/// Runs the bridge benchmark: per frame size, forks the subscriber process, then measures (1, for
/// the first size only) the idle CPU, (2) the latency of the three paths frame by frame,
/// interleaved (bridge, local hop, raw ZeroMQ), (3) raw ZeroMQ throughput, (4) the bridge's rate
/// search: back-to-back writes give a probe rate, then paced steps at 0.25..2x of it until more
/// than 1 % of the source frames are skipped.
/// @throws Error when a stream or socket cannot be made, the child cannot be forked, the child
///         fails or stops answering (the message says which part), or a stop was requested
///         (Errc::interrupted).
BridgeBenchResult run_bridge_bench(const BridgeBenchConfig& cfg, std::vector<std::string>& notes);

}  // namespace shmlink::bench
