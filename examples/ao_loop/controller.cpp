// SPDX-License-Identifier: MIT
/// @file controller.cpp
/// @brief The controller process: camera frames in, slopes out, acquisition time passed along.
#include "ao_loop.hpp"

namespace ao_loop {

int run_controller(const RoleOptions& options) {
  const Reporter reporter(options.report_fd);
  const std::int64_t deadline_ns = monotonic_ns() + static_cast<std::int64_t>(options.timeout_s * 1e9);
  // Output first: started by hand, the recorder can attach while we wait for the camera.
  const std::unique_ptr<FrameWriter> out = open_writer(options, slopes_spec());
  const std::unique_ptr<FrameReader> in = open_reader(options, camera_spec(), deadline_ns);
  reporter.ready();

  std::vector<std::uint16_t> frame(std::size_t{kFrameSide} * kFrameSide);
  std::vector<float> slopes(kSlopes);
  std::vector<std::int64_t> hops_ns;  // camera atime -> frame in our hands: the transport's share
  hops_ns.reserve(static_cast<std::size_t>(options.seconds * options.rate_hz) + 1024);
  std::uint64_t processed = 0;
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  int status = 0;
  for (;;) {
    FrameMeta meta;
    const ReadResult got = in->next(std::as_writable_bytes(std::span(frame)), meta, deadline_ns);
    if (got == ReadResult::end) break;
    if (got != ReadResult::frame) {
      if (got == ReadResult::timeout) log_error("the camera did not end its run before the timeout");
      status = 1;
      break;
    }
    hops_ns.push_back(realtime_ns() - meta.atime_ns);
    compute_slopes(frame, slopes);
    // The slopes carry the camera frame's id and acquisition time, not their own.
    if (!out->publish(std::as_bytes(std::span(slopes)), meta.frame_id, meta.atime_ns)) {
      status = 1;
      break;
    }
    last_ns = monotonic_ns();
    if (processed++ == 0) first_ns = last_ns;
  }
  out->finish();  // always, so that the recorder stops too

  const double span_s = static_cast<double>(last_ns - first_ns) * 1e-9;
  std::map<std::string, std::string> result{
      {"frames", std::to_string(processed)},
      {"skipped", std::to_string(in->skipped())},
      {"rate_hz", std::to_string(processed > 1 ? static_cast<double>(processed - 1) / span_s : 0.0)}};
  add_latency_report(result, "hop", hops_ns);
  reporter.result(result);
  return status;
}

}  // namespace ao_loop
