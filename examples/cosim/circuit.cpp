// SPDX-License-Identifier: MIT
/// @file circuit.cpp
/// @brief The circuit: the two halves the sides integrate, the one-process reference and the
/// phasor solution. No shmlink here: this is what DPsim would do.
///
/// Both halves and the reference use the trapezoidal rule (A-stable, second order, what DPsim
/// and EMTP use for their companion models). For dx/dt = f(x, u):
///   x_k = x_{k-1} + dt/2 (f(x_k, u_k) + f(x_{k-1}, u_{k-1})).
#include "cosim.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace cosim {

double Circuit::source_voltage(std::int64_t k) const noexcept {
  return source_peak_v * std::sin(2 * std::numbers::pi * frequency_hz * time(k));
}

std::complex<double> Circuit::steady_state_current() const noexcept {
  const double w = 2 * std::numbers::pi * frequency_hz;
  const std::complex<double> z_line(r_line_ohm, w * l_line_h);
  const std::complex<double> z_load = r_load_ohm / std::complex<double>(1, w * r_load_ohm * c_load_f);
  return source_peak_v / (z_line + z_load);
}

std::complex<double> Circuit::steady_state_voltage() const noexcept {
  const double w = 2 * std::numbers::pi * frequency_hz;
  const std::complex<double> z_load = r_load_ohm / std::complex<double>(1, w * r_load_ohm * c_load_f);
  return steady_state_current() * z_load;
}

const char* predictor_name(Predictor p) noexcept { return p == Predictor::hold ? "hold" : "linear"; }

double SourceHalf::step(std::int64_t k, double v_end) noexcept {
  if (k > 0) {
    // L di/dt = v_s - R i - v_end, trapezoidal:
    //   i_k (1 + a R) = i_{k-1} (1 - a R) + a (v_s,k + v_s,k-1 - v_end,k - v_end,k-1),  a = dt / 2L
    const double a = c_.dt_s / (2 * c_.l_line_h);
    const double drive = c_.source_voltage(k) + c_.source_voltage(k - 1) - v_end - v_end_;
    i_ = (i_ * (1 - a * c_.r_line_ohm) + a * drive) / (1 + a * c_.r_line_ohm);
  }
  v_end_ = v_end;
  return i_;
}

double LoadHalf::step(std::int64_t k, double i_in) noexcept {
  if (k > 0) {
    // C dv/dt = i_in - v / R, trapezoidal:
    //   v_k (1 + b / R) = v_{k-1} (1 - b / R) + b (i_in,k + i_in,k-1),  b = dt / 2C
    const double b = c_.dt_s / (2 * c_.c_load_f);
    v_ = (v_ * (1 - b / c_.r_load_ohm) + b * (i_in + i_in_)) / (1 + b / c_.r_load_ohm);
  }
  i_in_ = i_in;
  return v_;
}

std::vector<Point> solve_monolithic(const Circuit& c, std::int64_t steps) {
  // State (i, v): L di/dt = v_s - R_line i - v,  C dv/dt = i - v / R_load. Trapezoidal, with
  // a = dt / 2L and b = dt / 2C, gives per step the 2x2 system
  //   [1 + a R_line    a          ] [i_k]   [(1 - a R_line) i_{k-1} - a v_{k-1} + a (v_s,k + v_s,k-1)]
  //   [-b              1 + b/R_load] [v_k] = [b i_{k-1} + (1 - b/R_load) v_{k-1}                    ]
  // solved by Cramer's rule (the matrix is constant).
  const double a = c.dt_s / (2 * c.l_line_h);
  const double b = c.dt_s / (2 * c.c_load_f);
  const double m00 = 1 + a * c.r_line_ohm, m01 = a, m10 = -b, m11 = 1 + b / c.r_load_ohm;
  const double det = m00 * m11 - m01 * m10;
  std::vector<Point> out;
  out.reserve(static_cast<std::size_t>(std::max<std::int64_t>(steps, 0)));
  Point p;
  for (std::int64_t k = 0; k < steps; ++k) {
    if (k > 0) {
      const double r0 = (1 - a * c.r_line_ohm) * p.i - a * p.v + a * (c.source_voltage(k) + c.source_voltage(k - 1));
      const double r1 = b * p.i + (1 - b / c.r_load_ohm) * p.v;
      p = {(-m10 * r0 + m00 * r1) / det, (m11 * r0 - m01 * r1) / det};
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace cosim
