// SPDX-License-Identifier: MIT
/// @file camera.cpp
/// @brief The camera process: renders Shack-Hartmann frames and publishes them at a fixed rate.
#include "ao_loop.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <ctime>

namespace ao_loop {
namespace {

/// Sleeps until `when_ns` on CLOCK_MONOTONIC (an absolute deadline: no drift from tick to tick).
void sleep_until(std::int64_t when_ns) noexcept {
  const timespec when{static_cast<time_t>(when_ns / 1'000'000'000), static_cast<long>(when_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, nullptr) == EINTR) {
  }
}

}  // namespace

int run_camera(const RoleOptions& options) {
  const Reporter reporter(options.report_fd);
  const std::unique_ptr<FrameWriter> out = open_writer(options, camera_spec());
  reporter.ready();

  const auto period_ns = static_cast<std::int64_t>(std::llround(1e9 / options.rate_hz));
  const auto ticks = static_cast<std::uint64_t>(std::llround(options.seconds * options.rate_hz));
  std::vector<std::uint16_t> frame(std::size_t{kFrameSide} * kFrameSide);

  const std::int64_t start_ns = monotonic_ns() + period_ns;  // tick 0 is one period from now
  std::uint64_t written = 0;
  std::uint64_t missed = 0;
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  int status = 0;
  for (std::uint64_t tick = 0; tick < ticks; ++tick) {
    // "Expose and read out" ahead of the tick, so that publication happens right on it.
    render_frame(tick, frame);
    sleep_until(start_ns + static_cast<std::int64_t>(tick) * period_ns);
    const std::int64_t atime_ns = realtime_ns();  // acquisition time: taken just before publishing
    if (!out->publish(std::as_bytes(std::span(frame)), tick, atime_ns)) {
      status = 1;
      break;
    }
    last_ns = monotonic_ns();
    if (written++ == 0) first_ns = last_ns;
    // A camera runs on its own clock: if publishing took us past the next tick (a full pipe,
    // a preempted process), the frames of the ticks that went by are never taken.
    const auto due = std::min(static_cast<std::uint64_t>((last_ns - start_ns) / period_ns), ticks);
    if (due > tick + 1) {
      missed += due - tick - 1;
      tick = due - 1;
    }
  }
  // End the run one period after the last frame, as the next frame would have come.
  sleep_until(last_ns + period_ns);
  out->finish();

  const double span_s = static_cast<double>(last_ns - first_ns) * 1e-9;
  reporter.result({{"frames", std::to_string(written)},
                   {"ticks_missed", std::to_string(missed)},
                   {"rate_hz", std::to_string(written > 1 ? static_cast<double>(written - 1) / span_s : 0.0)}});
  return status;
}

}  // namespace ao_loop
