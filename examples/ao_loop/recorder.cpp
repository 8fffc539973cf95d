// SPDX-License-Identifier: MIT
/// @file recorder.cpp
/// @brief The recorder process: checks every slopes frame and measures its latency.
///
/// Latency here is the slopes frame's writetime minus its atime: from the camera's acquisition
/// (just before the camera published) to the controller publishing the slopes. It spans the
/// camera-to-controller hop, the centroiding and the slopes write.
#include "ao_loop.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>

namespace ao_loop {
int run_recorder(const RoleOptions& options) {
  const Reporter reporter(options.report_fd);
  const std::int64_t deadline_ns = monotonic_ns() + static_cast<std::int64_t>(options.timeout_s * 1e9);
  const std::unique_ptr<FrameReader> in = open_reader(options, slopes_spec(), deadline_ns);
  reporter.ready();

  std::vector<float> slopes(kSlopes);
  std::vector<std::int64_t> latencies_ns;
  latencies_ns.reserve(static_cast<std::size_t>(options.seconds * options.rate_hz) + 1024);
  std::uint64_t wrong = 0;
  std::uint64_t out_of_order = 0;
  double max_error_px = 0;
  std::optional<std::uint64_t> last_id;
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  int status = 0;
  for (;;) {
    FrameMeta meta;
    const ReadResult got = in->next(std::as_writable_bytes(std::span(slopes)), meta, deadline_ns);
    if (got == ReadResult::end) break;
    if (got != ReadResult::frame) {
      if (got == ReadResult::timeout) log_error("the controller did not end its run before the timeout");
      status = 1;
      break;
    }
    last_ns = monotonic_ns();
    if (latencies_ns.empty()) first_ns = last_ns;
    latencies_ns.push_back(meta.writetime_ns - meta.atime_ns);

    // Behaviour check: the slopes must be those of the camera frame named by the frame id.
    const double error_px = slope_error(meta.frame_id, slopes);
    max_error_px = std::max(max_error_px, error_px);
    if (error_px > kSlopeTolerancePx && ++wrong <= 5) {
      char line[128];
      std::snprintf(line, sizeof line, "frame %llu: slopes off by %.3f px (tolerance %.2f px)",
                    static_cast<unsigned long long>(meta.frame_id), error_px, kSlopeTolerancePx);
      log_error(line);
    }
    if (last_id && meta.frame_id <= *last_id) ++out_of_order;
    last_id = meta.frame_id;
  }

  const std::size_t frames = latencies_ns.size();
  std::map<std::string, std::string> result{
      {"frames", std::to_string(frames)},
      {"skipped", std::to_string(in->skipped())},
      {"wrong", std::to_string(wrong)},
      {"out_of_order", std::to_string(out_of_order)},
      {"max_error_px", std::to_string(max_error_px)},
      {"rate_hz", std::to_string(frames > 1 ? static_cast<double>(frames - 1) * 1e9 /
                                                  static_cast<double>(last_ns - first_ns)
                                            : 0.0)}};
  add_latency_report(result, "latency", latencies_ns);
  reporter.result(result);
  return status;
}

}  // namespace ao_loop
