// SPDX-License-Identifier: MIT
/// @file cosim.hpp
/// @brief Shared declarations of the `cosim` example: one electrical circuit split into two
/// processes coupled by the ideal transformer method over a shmlink::Interface (two sample
/// queues), as DPsim's distributed shared-memory example does (reference
/// docs/reference/villas-shmem.md section 4), plus the one-process reference and the launcher.
///
/// ```
///   source side (process 1)                      load side (process 2)
///      R_line     L_line   i ->                     i
///   +--/\/\/\----mmmmmm----+                    +--->---+--------+
///   |                      |                    |       |        |
///  (~) v_s                (=) v (from load)    (^) i   R_load   C_load
///   |                      |                    |       |        |
///   +----------------------+                    +-------+--------+
///
///   i  (line current, A)  --- queue "source" ---> load side: current source
///   v  (load voltage, V)  <--- queue "load" ----  source side: voltage source
/// ```
///
/// Each side integrates its half with the trapezoidal rule, 50 us per step. At step k each side
/// computes its value at t_k from its own state and the peer's values up to t_{k-1}, writes it
/// (sequence k), then reads the peer's value for t_k (sequence k).
#pragma once

#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>

#include <complex>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cosim {

// ---- the circuit (circuit.cpp) ------------------------------------------------------------

/// Parameters of the circuit and of the discretisation.
struct Circuit {
  double source_peak_v = 325.2691193458119;  ///< v_s peak: 230 V rms
  double frequency_hz = 50;                  ///< of v_s
  double r_line_ohm = 1.0;                   ///< line resistance
  double l_line_h = 10e-3;                   ///< line inductance (L/R = 10 ms = 200 steps)
  double r_load_ohm = 20.0;                  ///< load resistance
  double c_load_f = 100e-6;                  ///< load capacitance (R C = 2 ms = 40 steps)
  double dt_s = 50e-6;                       ///< time step

  /// Time of step `k`, s (t_k = k dt).
  [[nodiscard]] double time(std::int64_t k) const noexcept { return static_cast<double>(k) * dt_s; }
  /// The source voltage at step `k`: v_s(t_k) = peak sin(2 pi f t_k), V.
  [[nodiscard]] double source_voltage(std::int64_t k) const noexcept;
  /// Steady-state phasors (peak amplitude, phase against v_s) of the load voltage and the line
  /// current of the continuous circuit: v(t) = |V| sin(w t + arg V), i likewise.
  [[nodiscard]] std::complex<double> steady_state_voltage() const noexcept;
  /// See steady_state_voltage().
  [[nodiscard]] std::complex<double> steady_state_current() const noexcept;
};

/// How a side estimates the peer's value at t_k from the values it has received (for t_{k-1}
/// and t_{k-2}): the coupling delay is one step each way.
enum class Predictor {
  hold,    ///< p(t_k) = p(t_{k-1}): plain ITM, error O(dt)
  linear,  ///< p(t_k) = 2 p(t_{k-1}) - p(t_{k-2}): linear extrapolation, error O(dt^2) (default)
};

/// "hold" or "linear".
const char* predictor_name(Predictor p) noexcept;

/// Estimates the peer's next value from the values received so far (before the first, 0).
class PeerEstimate {
 public:
  /// An estimate that predicts by `kind`.
  explicit PeerEstimate(Predictor kind) noexcept : kind_(kind) {}
  /// Records the peer's value for the latest step.
  void push(double value) noexcept {
    previous_ = last_;
    last_ = value;
  }
  /// The peer's value at the step after the latest one pushed.
  [[nodiscard]] double predict() const noexcept { return kind_ == Predictor::hold ? last_ : 2 * last_ - previous_; }

 private:
  Predictor kind_;
  double last_ = 0;      ///< p(t_{k-1})
  double previous_ = 0;  ///< p(t_{k-2})
};

/// The source half: v_s behind R_line + L_line, closed by a controlled voltage source (the
/// load voltage). Trapezoidal rule on L di/dt = v_s - R_line i - v.
class SourceHalf {
 public:
  /// A de-energised half (i = 0) of `circuit`.
  explicit SourceHalf(const Circuit& circuit) noexcept : c_(circuit) {}
  /// Advances to step `k` with `v_end` the voltage at the line's end at t_k, and returns the
  /// line current i(t_k), A. Step 0 returns the initial current (0); steps must follow in order.
  double step(std::int64_t k, double v_end) noexcept;

 private:
  Circuit c_;
  double i_ = 0;         ///< i(t_{k-1})
  double v_end_ = 0;     ///< v_end applied at t_{k-1}
};

/// The load half: R_load parallel C_load, fed by a controlled current source (the line
/// current). Trapezoidal rule on C dv/dt = i - v / R_load.
class LoadHalf {
 public:
  /// A de-energised half (v = 0) of `circuit`.
  explicit LoadHalf(const Circuit& circuit) noexcept : c_(circuit) {}
  /// Advances to step `k` with `i_in` the current fed at t_k, and returns the load voltage
  /// v(t_k), V. Step 0 returns the initial voltage (0); steps must follow in order.
  double step(std::int64_t k, double i_in) noexcept;

 private:
  Circuit c_;
  double v_ = 0;      ///< v(t_{k-1})
  double i_in_ = 0;   ///< i_in applied at t_{k-1}
};

/// One step of a trajectory: the load voltage and the line current at t_k.
struct Point {
  double v = 0;  ///< V
  double i = 0;  ///< A
};

/// Solves the whole circuit in one process (no coupling delay), trapezoidal rule on the state
/// (i, v), from the de-energised state: `steps` points, t_0 .. t_{steps-1}.
std::vector<Point> solve_monolithic(const Circuit& circuit, std::int64_t steps);

// ---- trajectories and reports (report.cpp) ------------------------------------------------

/// Writes a side's trajectory as CSV: a header "step,t_s,<name>" then one row per step
/// (values printed with 17 significant digits, so they read back exactly).
/// @return false (after logging) when the file cannot be written.
bool write_trajectory(const std::string& path, const char* name, const Circuit& circuit,
                      const std::vector<double>& values);
/// Reads a trajectory written by write_trajectory(): the values in step order.
/// @throws std::runtime_error naming the file and line on a missing file or a malformed or
///         out-of-order row.
std::vector<double> read_trajectory(const std::string& path);

/// Nearest-rank percentile `q` (0..1) of `sorted` (ascending); 0 when empty.
std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q) noexcept;

/// Reads a side's report file (key=value lines) into a map; empty when the file is absent.
std::map<std::string, std::string> read_report(const std::string& path);
/// A number from a report, or `fallback` when absent or not a number.
double report_number(const std::map<std::string, std::string>& report, const std::string& key,
                     double fallback = 0) noexcept;

/// "polling", "futex" or "hybrid".
const char* wait_name(shmlink::WaitMode mode) noexcept;
/// "shmlink" or "villas".
const char* protocol_name(shmlink::InterfaceProtocol protocol) noexcept;
/// The circuit's parameters as a JSON object (SI units: V, Hz, ohm, H, F, s).
std::string circuit_json(const Circuit& circuit);

/// Escapes `text` for a JSON string, quotes included.
std::string json_string(const std::string& text);
/// A JSON number (6 significant digits; integers exactly; null for NaN and infinities).
std::string json_number(double value);

// ---- one side over a shmlink::Interface (side.cpp) ----------------------------------------

/// Which half of the circuit a process simulates.
enum class Role { source, load };

/// "source" or "load".
const char* role_name(Role r) noexcept;

/// Options of `cosim side source|load`.
struct SideOptions {
  Role role = Role::source;            ///< which half
  std::string in;                      ///< queue read (peer's output); "" -> default, see main.cpp
  std::string out;                     ///< queue written (this side's output)
  /// shmlink queues, or VILLASnode shmem regions (`in`/`out` are then shm names, "/cosim-load")
  shmlink::InterfaceProtocol protocol = shmlink::InterfaceProtocol::shmlink;
  std::int64_t steps = 2000;           ///< steps to run (both sides must agree)
  shmlink::WaitMode wait = shmlink::WaitMode::hybrid;  ///< how both queues are waited on
  Predictor predictor = Predictor::linear;             ///< peer value extrapolation
  double timeout_s = 30;               ///< attach timeout, and the longest wait for one sample
  std::vector<std::string> exec;       ///< source only: command line of the load side to launch
  std::string trajectory_path;         ///< write the trajectory (CSV) here when not empty
  std::string report_path;             ///< write the report (key=value lines) here, else stdout
  Circuit circuit;                     ///< parameters (fixed; both sides use the defaults)
  // Fault injection, for the test that checks violations are detected (hidden options):
  std::int64_t drop_step = -1;         ///< do not send this step's sample
  std::int64_t duplicate_step = -1;    ///< send this step's sample twice
};

/// Runs one side: opens the Interface (launching `exec` if given), steps, checks the peer's
/// sequence numbers, closes, writes the trajectory and the report.
/// @return 0 when every step completed with exactly the expected peer sample, else 1.
int run_side(const SideOptions& options);

// ---- the launcher (launcher.cpp) ----------------------------------------------------------

/// Options of `cosim run`.
struct RunOptions {
  std::int64_t steps = 2000;           ///< steps of 50 us
  bool exec = false;                   ///< the source side launches the load (InterfaceSpec::exec)
  shmlink::WaitMode wait = shmlink::WaitMode::hybrid;  ///< passed to both sides
  /// passed to both sides: shmlink queues in the scratch directory, or VILLASnode shmem regions
  /// in /dev/shm named after it
  shmlink::InterfaceProtocol protocol = shmlink::InterfaceProtocol::shmlink;
  Predictor predictor = Predictor::linear;             ///< passed to both sides
  double tolerance = 0.01;             ///< max |error| / peak allowed for v and for i
  double timeout_s = 30;               ///< passed to both sides
  bool json = false;                   ///< JSON on stdout (the summary goes to stderr)
  bool keep = false;                   ///< keep the scratch directory (trajectories, reports)
  Role fault_side = Role::load;        ///< which side gets the fault options below
  std::int64_t drop_step = -1;         ///< fault injection: see SideOptions
  std::int64_t duplicate_step = -1;    ///< fault injection: see SideOptions
};

/// Entry point of `cosim run`: runs both sides as processes, compares with the monolithic
/// solution, prints the summary (and JSON). Returns 0 on pass, 1 on fail, 130 when stopped.
int run_cosim(const RunOptions& options);

/// Entry point of `cosim monolithic`: solves the circuit in one process, prints the peaks and
/// the steady state against the phasor solution, optionally the trajectory (`csv_path`) and
/// JSON on stdout. Returns 0, or 1 when the CSV cannot be written.
int run_monolithic(std::int64_t steps, const std::string& csv_path, bool json);

/// The comparison of a co-simulation's trajectories with the monolithic solution.
struct Comparison {
  std::int64_t steps_compared = 0;  ///< steps present in both trajectories
  double v_peak = 0;                ///< max |v| of the reference, V
  double i_peak = 0;                ///< max |i| of the reference, A
  double v_error = 0;               ///< max |v - v_ref| / v_peak (NaN when no step compared)
  double i_error = 0;               ///< max |i - i_ref| / i_peak (NaN when no step compared)
  std::int64_t v_error_step = 0;    ///< where v_error occurred
  std::int64_t i_error_step = 0;    ///< where i_error occurred
};

/// Compares the source side's currents `i` and the load side's voltages `v` with the monolithic
/// solution of `circuit` over `steps` steps (shorter trajectories are compared where present).
Comparison compare(const Circuit& circuit, std::int64_t steps, const std::vector<double>& i,
                   const std::vector<double>& v);

/// Entry point of `cosim compare`: compares trajectories written by two sides run by hand
/// (`--trajectory`) with the monolithic solution; prints the errors (and JSON on stdout).
/// Returns 0 when both trajectories have the same length and both errors are within
/// `tolerance`, else 1.
int run_compare(const std::string& source_csv, const std::string& load_csv, double tolerance, bool json);

/// Prints "cosim[<label>]: <message>" on stderr.
void log_error(const std::string& label, const std::string& message);

/// CLOCK_MONOTONIC in ns.
std::int64_t monotonic_ns() noexcept;

}  // namespace cosim
