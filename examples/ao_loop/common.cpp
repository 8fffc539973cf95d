// SPDX-License-Identifier: MIT
/// @file common.cpp
/// @brief Small pieces the roles share: clocks, the choice of transport, the report line.
#include "ao_loop.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <ctime>
#include <stdexcept>

namespace ao_loop {
namespace {

/// Reads a clock in ns.
std::int64_t clock_ns(clockid_t clock) noexcept {
  timespec ts{};
  clock_gettime(clock, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

/// Parses a pipe fd number given on the command line.
int parse_fd(const std::string& text) {
  std::size_t used = 0;
  const int fd = std::stoi(text, &used);
  if (used != text.size() || fd < 0) throw std::invalid_argument("not a file descriptor: '" + text + "'");
  return fd;
}

/// The label of this process in error messages.
std::string& process_label() {
  static std::string label = "run";
  return label;
}

}  // namespace

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void set_process_label(const std::string& label) { process_label() = label; }

void log_error(const std::string& message) {
  std::fprintf(stderr, "ao_loop[%s]: %s\n", process_label().c_str(), message.c_str());
}

std::int64_t realtime_ns() noexcept { return clock_ns(CLOCK_REALTIME); }

std::int64_t monotonic_ns() noexcept { return clock_ns(CLOCK_MONOTONIC); }

std::size_t frame_bytes(const shmlink::StreamSpec& spec) noexcept {
  std::size_t bytes = shmlink::dtype_size(spec.dtype);
  for (const std::uint32_t n : spec.shape) bytes *= n;
  return bytes;
}

const char* transport_name(Transport t) noexcept { return t == Transport::shm ? "shm" : "pipe"; }

std::unique_ptr<FrameWriter> open_writer(const RoleOptions& options, const shmlink::StreamSpec& spec) {
  if (options.transport == Transport::shm) return make_shm_writer(options.out, spec);
  return make_pipe_writer(parse_fd(options.out), frame_bytes(spec));
}

std::unique_ptr<FrameReader> open_reader(const RoleOptions& options, const shmlink::StreamSpec& spec,
                                         std::int64_t deadline_ns) {
  if (options.transport == Transport::shm) return make_shm_reader(options.in, spec, deadline_ns);
  return make_pipe_reader(parse_fd(options.in));
}

void add_latency_report(std::map<std::string, std::string>& report, const std::string& prefix,
                        std::vector<std::int64_t>& samples_ns) {
  if (samples_ns.empty()) return;
  std::sort(samples_ns.begin(), samples_ns.end());
  const auto percentile = [&samples_ns](double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples_ns.size())));
    return samples_ns[std::clamp<std::size_t>(rank, 1, samples_ns.size()) - 1];
  };
  const double sum = std::accumulate(samples_ns.begin(), samples_ns.end(), 0.0);
  report[prefix + "_min_ns"] = std::to_string(samples_ns.front());
  report[prefix + "_mean_ns"] = std::to_string(std::llround(sum / static_cast<double>(samples_ns.size())));
  report[prefix + "_p50_ns"] = std::to_string(percentile(0.50));
  report[prefix + "_p99_ns"] = std::to_string(percentile(0.99));
  report[prefix + "_p999_ns"] = std::to_string(percentile(0.999));
  report[prefix + "_max_ns"] = std::to_string(samples_ns.back());
}

void Reporter::ready() const { send("ready\n"); }

void Reporter::result(const std::map<std::string, std::string>& values) const {
  std::string line = "result";
  for (const auto& [key, value] : values) line += " " + key + "=" + value;
  send(line + "\n");
}

void Reporter::send(const std::string& line) const {
  // One write() per line: lines up to PIPE_BUF bytes reach the launcher whole.
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the launcher is gone; nothing left to tell
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace ao_loop
