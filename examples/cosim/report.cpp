// SPDX-License-Identifier: MIT
/// @file report.cpp
/// @brief Trajectory files, side reports, the comparison with the reference, JSON helpers.
#include "cosim.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace cosim {

bool write_trajectory(const std::string& path, const char* name, const Circuit& circuit,
                      const std::vector<double>& values) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    log_error("trajectory", "cannot write " + path);
    return false;
  }
  std::fprintf(file, "step,t_s,%s\n", name);
  for (std::size_t k = 0; k < values.size(); ++k) {
    std::fprintf(file, "%zu,%.9g,%.17g\n", k, circuit.time(static_cast<std::int64_t>(k)), values[k]);
  }
  const bool ok = std::ferror(file) == 0;
  if (std::fclose(file) != 0 || !ok) {
    log_error("trajectory", "cannot write " + path);
    return false;
  }
  return true;
}

std::vector<double> read_trajectory(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot read trajectory " + path);
  std::vector<double> values;
  std::string line;
  std::getline(file, line);  // header
  for (std::size_t row = 0; std::getline(file, line); ++row) {
    const char* text = line.c_str();
    char* end = nullptr;
    const long long step = std::strtoll(text, &end, 10);
    bool ok = end != text && *end == ',' && step == static_cast<long long>(row);
    if (ok) {
      text = end + 1;
      std::strtod(text, &end);  // t_s: implied by the step
      ok = end != text && *end == ',';
    }
    double value = 0;
    if (ok) {
      text = end + 1;
      value = std::strtod(text, &end);
      ok = end != text && *end == '\0';
    }
    if (!ok) throw std::runtime_error(path + ":" + std::to_string(row + 2) + ": expected 'step,t_s,value' with step " +
                                      std::to_string(row) + ", got '" + line + "'");
    values.push_back(value);
  }
  return values;
}

std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q) noexcept {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::map<std::string, std::string> read_report(const std::string& path) {
  std::map<std::string, std::string> report;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) {
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) report[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return report;
}

double report_number(const std::map<std::string, std::string>& report, const std::string& key,
                     double fallback) noexcept {
  const auto it = report.find(key);
  if (it == report.end()) return fallback;
  char* end = nullptr;
  const double value = std::strtod(it->second.c_str(), &end);
  return end != it->second.c_str() ? value : fallback;
}

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

Comparison compare(const Circuit& circuit, std::int64_t steps, const std::vector<double>& i,
                   const std::vector<double>& v) {
  const std::vector<Point> reference = solve_monolithic(circuit, steps);
  Comparison c;
  for (const Point& p : reference) {
    c.v_peak = std::max(c.v_peak, std::fabs(p.v));
    c.i_peak = std::max(c.i_peak, std::fabs(p.i));
  }
  c.steps_compared = static_cast<std::int64_t>(std::min({reference.size(), i.size(), v.size()}));
  if (c.steps_compared == 0) c.v_error = c.i_error = NAN;  // nothing to compare
  for (std::int64_t k = 0; k < c.steps_compared; ++k) {
    const auto at = static_cast<std::size_t>(k);
    const double v_error = std::fabs(v[at] - reference[at].v) / c.v_peak;
    const double i_error = std::fabs(i[at] - reference[at].i) / c.i_peak;
    if (v_error > c.v_error) {
      c.v_error = v_error;
      c.v_error_step = k;
    }
    if (i_error > c.i_error) {
      c.i_error = i_error;
      c.i_error_step = k;
    }
  }
  return c;
}

const char* wait_name(shmlink::WaitMode mode) noexcept {
  switch (mode) {
    case shmlink::WaitMode::polling: return "polling";
    case shmlink::WaitMode::futex: return "futex";
    case shmlink::WaitMode::hybrid: return "hybrid";
  }
  return "?";
}

const char* protocol_name(shmlink::InterfaceProtocol protocol) noexcept {
  switch (protocol) {
    case shmlink::InterfaceProtocol::shmlink: return "shmlink";
    case shmlink::InterfaceProtocol::villas: return "villas";
  }
  return "?";
}

std::string circuit_json(const Circuit& c) {
  // Full precision: readers may recompute the solution from these.
  char text[320];
  std::snprintf(text, sizeof text,
                "{\"source_peak_v\": %.17g, \"frequency_hz\": %.17g, \"r_line_ohm\": %.17g, \"l_line_h\": %.17g, "
                "\"r_load_ohm\": %.17g, \"c_load_f\": %.17g, \"dt_s\": %.17g}",
                c.source_peak_v, c.frequency_hz, c.r_line_ohm, c.l_line_h, c.r_load_ohm, c.c_load_f, c.dt_s);
  return text;
}

int run_monolithic(std::int64_t steps, const std::string& csv_path, bool json) {
  const Circuit c;
  const std::vector<Point> points = solve_monolithic(c, steps);
  double v_peak = 0;
  double i_peak = 0;
  for (const Point& p : points) {
    v_peak = std::max(v_peak, std::fabs(p.v));
    i_peak = std::max(i_peak, std::fabs(p.i));
  }
  // Amplitudes over the last cycle, once the start-up transient (time constant 1/300 s) is gone.
  const auto cycle = static_cast<std::int64_t>(std::lround(1 / (c.frequency_hz * c.dt_s)));
  double v_last = NAN;
  double i_last = NAN;
  if (steps >= 3 * cycle) {
    v_last = 0;
    i_last = 0;
    for (std::int64_t k = steps - cycle; k < steps; ++k) {
      v_last = std::max(v_last, std::fabs(points[static_cast<std::size_t>(k)].v));
      i_last = std::max(i_last, std::fabs(points[static_cast<std::size_t>(k)].i));
    }
  }
  const std::complex<double> v_ss = c.steady_state_voltage();
  const std::complex<double> i_ss = c.steady_state_current();

  bool ok = true;
  if (!csv_path.empty()) {
    std::FILE* file = std::fopen(csv_path.c_str(), "w");
    if (file != nullptr) {
      std::fprintf(file, "step,t_s,v_V,i_A\n");
      for (std::size_t k = 0; k < points.size(); ++k) {
        std::fprintf(file, "%zu,%.9g,%.17g,%.17g\n", k, c.time(static_cast<std::int64_t>(k)), points[k].v, points[k].i);
      }
      ok = std::ferror(file) == 0;
      ok = std::fclose(file) == 0 && ok;
    } else {
      ok = false;
    }
    if (!ok) log_error("monolithic", "cannot write " + csv_path);
  }

  std::FILE* out = json ? stderr : stdout;
  std::fprintf(out, "cosim monolithic: %lld steps of %g us, trapezoidal rule on (i, v), no coupling delay\n",
               static_cast<long long>(steps), c.dt_s * 1e6);
  std::fprintf(out, "  peak |v| %.2f V, peak |i| %.3f A\n", v_peak, i_peak);
  if (!std::isnan(v_last)) {
    std::fprintf(out, "  last cycle: |v| %.2f V (phasor %.2f V, %+.4f %%), |i| %.3f A (phasor %.3f A, %+.4f %%)\n",
                 v_last, std::abs(v_ss), 100 * (v_last / std::abs(v_ss) - 1), i_last, std::abs(i_ss),
                 100 * (i_last / std::abs(i_ss) - 1));
  }
  if (json) {
    std::printf("{\n  \"schema_version\": 1,\n  \"steps\": %lld,\n  \"circuit\": %s,\n  \"v_peak\": %s,\n"
                "  \"i_peak\": %s,\n  \"last_cycle\": {\"v_amplitude\": %s, \"i_amplitude\": %s},\n"
                "  \"phasor\": {\"v_amplitude\": %s, \"v_phase_rad\": %s, \"i_amplitude\": %s, \"i_phase_rad\": %s}\n}\n",
                static_cast<long long>(steps), circuit_json(c).c_str(), json_number(v_peak).c_str(),
                json_number(i_peak).c_str(), json_number(v_last).c_str(), json_number(i_last).c_str(),
                json_number(std::abs(v_ss)).c_str(), json_number(std::arg(v_ss)).c_str(),
                json_number(std::abs(i_ss)).c_str(), json_number(std::arg(i_ss)).c_str());
  }
  std::fflush(nullptr);
  return ok ? 0 : 1;
}

int run_compare(const std::string& source_csv, const std::string& load_csv, double tolerance, bool json) {
  const Circuit circuit;
  const std::vector<double> i = read_trajectory(source_csv);
  const std::vector<double> v = read_trajectory(load_csv);
  const auto steps = static_cast<std::int64_t>(std::max(i.size(), v.size()));
  const Comparison c = compare(circuit, steps, i, v);
  const bool pass = i.size() == v.size() && steps >= 2 && c.v_error <= tolerance && c.i_error <= tolerance;
  std::FILE* out = json ? stderr : stdout;
  std::fprintf(out, "cosim compare: %zu source steps, %zu load steps; max error vs one-process solution:"
               " v %.3f %% of %.1f V peak, i %.3f %% of %.2f A peak (tolerance %g %%): %s\n",
               i.size(), v.size(), 100 * c.v_error, c.v_peak, 100 * c.i_error, c.i_peak, 100 * tolerance,
               pass ? "PASS" : "FAIL");
  if (json) {
    std::printf("{\"schema_version\": 1, \"pass\": %s, \"source_steps\": %zu, \"load_steps\": %zu, "
                "\"max_rel_error_v\": %s, \"max_rel_error_i\": %s, \"tolerance\": %s}\n",
                pass ? "true" : "false", i.size(), v.size(), json_number(c.v_error).c_str(),
                json_number(c.i_error).c_str(), json_number(tolerance).c_str());
  }
  std::fflush(nullptr);
  return pass ? 0 : 1;
}

void log_error(const std::string& label, const std::string& message) {
  std::fprintf(stderr, "cosim[%s]: %s\n", label.c_str(), message.c_str());
}

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace cosim
