// SPDX-License-Identifier: MIT
/// @file report.cpp
/// @brief The comparison table on stdout and the JSON file of `ao_loop run`.
#include "ao_loop.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>

namespace ao_loop {
namespace {

/// What the report says about the machine, since the numbers depend on it.
struct Machine {
  long cores = 0;          ///< online CPUs
  std::string cpu;         ///< model name from /proc/cpuinfo ("" when unknown)
  std::string kernel;      ///< "Linux 6.1.0-18-amd64"
  double load_1min = -1;   ///< 1-minute load average when the report is written, -1 if unknown
};

/// Looks the machine up.
Machine machine() {
  Machine m;
  m.cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      m.cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname names{};
  if (::uname(&names) == 0) m.kernel = std::string(names.sysname) + " " + names.release;
  double load[1];
  if (::getloadavg(load, 1) == 1) m.load_1min = load[0];
  return m;
}

/// Escapes `text` for a JSON string (quotes, backslashes, control characters).
std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

/// A JSON number: integers without a fraction, others with 6 significant digits, null for
/// NaN and infinities (which JSON cannot carry).
std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  if (value == std::floor(value) && std::fabs(value) < 9e15) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else {
    std::snprintf(text, sizeof text, "%.6g", value);
  }
  return text;
}

/// One row of the table: a label and how to get its value out of a pipeline's result.
struct Row {
  const char* label;                                    ///< left column
  std::function<std::string(const PipelineResult&)> value;  ///< one cell per transport
};

/// Formats `value` with `decimals` digits after the point, or "-" when absent (NaN).
std::string cell(double value, int decimals) {
  if (std::isnan(value)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

/// A value from a report, NaN when absent (shown as "-").
double get(const std::map<std::string, std::string>& report, const char* key) {
  return PipelineResult::number(report, key, NAN);
}

}  // namespace

void print_report(const RunOptions& options, const std::vector<PipelineResult>& results) {
  const Machine m = machine();
  std::printf("\nao_loop: camera (256x256 u16) -> controller (16x16 subaperture centroids) -> slopes (512 f32)\n");
  std::printf("  %.0f Hz for %g s per transport; streams in %s\n", options.rate_hz, options.seconds,
              shmlink::stream_directory().c_str());
  std::printf("  machine: %ld cores%s%s, %s, load average %.2f\n", m.cores, m.cpu.empty() ? "" : ", ",
              m.cpu.c_str(), m.kernel.c_str(), m.load_1min);
  std::printf("  Timings vary on a loaded or shared machine: compare the columns of one run.\n\n");

  // A latency cell in microseconds, from the recorder's (end to end) or controller's (hop) report.
  const auto us = [](const char* key) {
    return [key](const PipelineResult& r) { return cell(get(r.recorder, key) / 1e3, 1); };
  };
  const auto hop_us = [](const char* key) {
    return [key](const PipelineResult& r) { return cell(get(r.controller, key) / 1e3, 1); };
  };
  const std::vector<Row> rows = {
      {"camera frames written", [](const PipelineResult& r) { return cell(get(r.camera, "frames"), 0); }},
      {"camera rate (Hz)", [](const PipelineResult& r) { return cell(get(r.camera, "rate_hz"), 1); }},
      {"camera ticks missed", [](const PipelineResult& r) { return cell(get(r.camera, "ticks_missed"), 0); }},
      {"controller frames", [](const PipelineResult& r) { return cell(get(r.controller, "frames"), 0); }},
      {"controller frames skipped", [](const PipelineResult& r) { return cell(get(r.controller, "skipped"), 0); }},
      {"slopes frames observed", [](const PipelineResult& r) { return cell(get(r.recorder, "frames"), 0); }},
      {"slopes rate (Hz)", [](const PipelineResult& r) { return cell(get(r.recorder, "rate_hz"), 1); }},
      {"frames lost", [](const PipelineResult& r) { return std::to_string(r.frames_lost()); }},
      {"wrong slopes frames", [](const PipelineResult& r) { return cell(get(r.recorder, "wrong"), 0); }},
      {"max slope error (px)", [](const PipelineResult& r) { return cell(get(r.recorder, "max_error_px"), 3); }},
      {"latency p50 (us)", us("latency_p50_ns")},
      {"latency p99 (us)", us("latency_p99_ns")},
      {"latency p99.9 (us)", us("latency_p999_ns")},
      {"latency max (us)", us("latency_max_ns")},
      {"frame hop p50 (us)", hop_us("hop_p50_ns")},
      {"frame hop p99 (us)", hop_us("hop_p99_ns")},
      {"frame hop max (us)", hop_us("hop_max_ns")},
      {"result", [](const PipelineResult& r) { return std::string(r.ok ? "ok" : "FAILED"); }},
  };

  std::printf("  %-28s", "");
  for (const PipelineResult& r : results) std::printf("%14s", r.transport == Transport::shm ? "shm stream" : "pipe");
  std::printf("\n");
  for (const Row& row : rows) {
    std::printf("  %-28s", row.label);
    for (const PipelineResult& r : results) std::printf("%14s", row.value(r).c_str());
    std::printf("\n");
  }
  std::printf("\n  latency: camera atime -> slopes published (the slopes frame's writetime): the\n"
              "  camera->controller hop, the centroiding and the slopes write.\n"
              "  frame hop: camera atime -> frame copied out in the controller (the transport's share).\n"
              "  frames lost = camera frames written - slopes frames observed by the recorder.\n"
              "  wrong: slopes further than %.2f px from the spot positions of their frame id.\n",
              kSlopeTolerancePx);
  for (const PipelineResult& r : results) {
    if (!r.ok) std::printf("  %s FAILED: %s\n", transport_name(r.transport), r.error.c_str());
  }
  std::fflush(stdout);
}

bool write_json(const std::string& path, const RunOptions& options, const std::vector<PipelineResult>& results) {
  const Machine m = machine();
  bool ok = !results.empty();
  for (const PipelineResult& r : results) ok = ok && r.ok;

  std::string json = "{\n  \"schema_version\": 1,\n  \"ok\": " + std::string(ok ? "true" : "false") + ",\n";
  json += "  \"machine\": {\"cores\": " + std::to_string(m.cores) + ", \"cpu\": " + json_string(m.cpu) +
          ", \"kernel\": " + json_string(m.kernel) + ", \"load_1min\": " + json_number(m.load_1min) + "},\n";
  json += "  \"config\": {\"seconds\": " + json_number(options.seconds) + ", \"rate_hz\": " +
          json_number(options.rate_hz) + ", \"frame_shape\": [" + std::to_string(kFrameSide) + ", " +
          std::to_string(kFrameSide) + "], \"subapertures\": " + std::to_string(kSubaps) +
          ", \"slope_tolerance_px\": " + json_number(kSlopeTolerancePx) + ", \"stream_directory\": " +
          json_string(shmlink::stream_directory()) + "},\n";
  json += "  \"transports\": {";
  const char* separator = "\n";
  for (const PipelineResult& r : results) {
    const auto n = [](const std::map<std::string, std::string>& report, const char* key) {
      return json_number(get(report, key));
    };
    // {"min": ..., "max": ...} from the <prefix>_*_ns values of a report.
    const auto latency = [](const std::map<std::string, std::string>& report, const std::string& prefix) {
      std::string object = "{";
      for (const std::string stat : {"min", "mean", "p50", "p99", "p999", "max"}) {
        if (stat != "min") object += ", ";
        object += "\"" + stat + "\": " + json_number(PipelineResult::number(report, prefix + "_" + stat + "_ns", NAN));
      }
      return object + "}";
    };
    json += separator;
    separator = ",\n";
    json += "    " + json_string(transport_name(r.transport)) + ": {\"ok\": " + (r.ok ? "true" : "false") +
            ", \"error\": " + json_string(r.error) + ",\n";
    json += "      \"camera_frames\": " + n(r.camera, "frames") + ", \"camera_rate_hz\": " + n(r.camera, "rate_hz") +
            ", \"camera_ticks_missed\": " + n(r.camera, "ticks_missed") + ",\n";
    json += "      \"controller_frames\": " + n(r.controller, "frames") + ", \"controller_skipped\": " +
            n(r.controller, "skipped") + ", \"controller_rate_hz\": " + n(r.controller, "rate_hz") + ",\n";
    json += "      \"slopes_observed\": " + n(r.recorder, "frames") + ", \"slopes_rate_hz\": " + n(r.recorder, "rate_hz") +
            ", \"frames_lost\": " + std::to_string(r.frames_lost()) + ", \"wrong_slopes\": " + n(r.recorder, "wrong") +
            ", \"out_of_order\": " + n(r.recorder, "out_of_order") + ", \"max_slope_error_px\": " +
            n(r.recorder, "max_error_px") + ",\n";
    json += "      \"latency_ns\": " + latency(r.recorder, "latency") + ",\n";
    json += "      \"hop_latency_ns\": " + latency(r.controller, "hop") + "}";
  }
  json += "\n  }\n}\n";

  std::ofstream file(path);
  file << json;
  file.close();
  if (!file) log_error("cannot write " + path);
  return static_cast<bool>(file);
}

}  // namespace ao_loop
