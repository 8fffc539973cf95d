// SPDX-License-Identifier: MIT
// Runs examples/cosim as a user would and checks its JSON: the circuit split in two processes
// matches the one-process solution within the stated tolerance with no step lost or repeated
// (the launcher starting both sides, and the source side launching the load through
// InterfaceSpec::exec); the one-process reference matches the phasor solution; the sides coupled
// through VILLASnode shmem regions (--protocol villas) give exactly the result of shmlink queues;
// and a wrong coupling (a dropped or repeated step, or no extrapolation) is reported as a failure. No timing
// assertions: CI machines are small and shared, and this may run under ASan.
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <complex>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

namespace {

/// What a cosim process left behind.
struct Outcome {
  int status = -1;     ///< exit status, or negative (see shmlink::test::reap)
  std::string out;     ///< everything it wrote to stdout
};

/// Runs cosim with `args` (in the test's SHMLINK_DIR), collecting its stdout; kills it after
/// `limit_s` seconds.
Outcome run_cosim(std::vector<std::string> args, double limit_s = 120) {
  args.insert(args.begin(), COSIM_PATH);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  const pid_t pid = shmlink::test::spawn([&argv, &fds] {
    ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears close-on-exec on the copy
    ::execv(argv[0], argv.data());
    return 127;
  });
  ::close(fds[1]);
  Outcome outcome;
  char buffer[4096];
  // Until EOF (it and everything it started closed stdout) or the limit (then reap() kills it).
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (std::chrono::steady_clock::now() < end) {
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n > 0) {
      outcome.out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  outcome.status = shmlink::test::reap(pid, limit_s);
  return outcome;
}

/// Parses the JSON document a cosim command printed (a failure, not an exception, if absent).
nlohmann::json parse(const Outcome& outcome) {
  const nlohmann::json json = nlohmann::json::parse(outcome.out, nullptr, false);
  EXPECT_FALSE(json.is_discarded()) << "not JSON: '" << outcome.out << "'";
  return json.is_discarded() ? nlohmann::json::object() : json;
}

/// Checks a passing `cosim run --json` report.
void expect_clean_pass(const Outcome& outcome, const char* mode) {
  ASSERT_EQ(outcome.status, 0) << "cosim run failed (its summary is above)";
  const nlohmann::json r = parse(outcome);
  EXPECT_EQ(r.value("schema_version", 0), 1);
  EXPECT_TRUE(r.value("pass", false));
  EXPECT_EQ(r.value("mode", ""), mode);
  EXPECT_EQ(r.value("steps", 0), 2000);
  EXPECT_EQ(r.value("steps_compared", 0), 2000);
  EXPECT_EQ(r.value("lost_steps", -1), 0);
  EXPECT_EQ(r.value("duplicated_steps", -1), 0);
  EXPECT_EQ(r.value("out_of_step", -1), 0);
  // Each side's close() removed its own channel: the launcher found nothing to clean up.
  EXPECT_EQ(r.value("left_behind", nlohmann::json::array()), nlohmann::json::array());
  // The stated tolerance is the README's 1 %, not something looser.
  const double tolerance = r.value("tolerance", 1.0);
  EXPECT_LE(tolerance, 0.01);
  for (const char* key : {"max_rel_error_v", "max_rel_error_i"}) {
    SCOPED_TRACE(key);
    const double error = r.value(key, 1.0);
    EXPECT_LE(error, tolerance);
    // The one-step coupling delay leaves a small but non-zero error: the sides really
    // exchanged their values instead of reproducing the one-process solution.
    EXPECT_GT(error, 1e-5);
  }
  for (const char* side : {"source", "load"}) {
    SCOPED_TRACE(side);
    const nlohmann::json& s = r.at("sides").at(side);
    EXPECT_TRUE(s.value("ok", false)) << s.value("error", "");
    EXPECT_EQ(s.value("steps_done", 0), 2000);
    const nlohmann::json& wall = s.at("step_wall_us");
    EXPECT_GT(wall.value("p50", 0.0), 0.0);
    EXPECT_LE(wall.value("p50", 0.0), wall.value("p99", 0.0));
    EXPECT_LE(wall.value("p99", 0.0), wall.value("max", 0.0));
  }
}

/// A file name outside the stream directory, removed at the end of the test.
class TempFile {
 public:
  /// `cosim_test_<pid>_<suffix>` in the temporary directory.
  explicit TempFile(const std::string& suffix)
      : path_(std::filesystem::temp_directory_path() / ("cosim_test_" + std::to_string(::getpid()) + "_" + suffix)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  /// The file's path.
  [[nodiscard]] std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(Cosim, TwoProcessesMatchTheOneProcessSolution) {
  shmlink::test::TempStreamDir dir;
  expect_clean_pass(run_cosim({"run", "--steps", "2000", "--json"}), "fork");
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

TEST(Cosim, SourceLaunchingTheLoadThroughExecMatchesTheOneProcessSolution) {
  shmlink::test::TempStreamDir dir;
  expect_clean_pass(run_cosim({"run", "--steps", "2000", "--exec", "--json"}), "exec");
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

/// Checks that nothing of a VILLAS channel `name` ("/cosim-...") is left in /dev/shm: neither
/// the region nor its rendezvous semaphore.
void expect_no_villas_objects(const std::string& name) {
  ASSERT_EQ(name.rfind("/cosim-", 0), 0U) << name;
  EXPECT_FALSE(std::filesystem::exists("/dev/shm" + name)) << name;
  EXPECT_FALSE(std::filesystem::exists("/dev/shm/sem." + name.substr(1))) << name;
}

TEST(Cosim, VillasProtocolGivesExactlyTheResultOfShmlinkQueues) {
  shmlink::test::TempStreamDir dir;
  const Outcome queues = run_cosim({"run", "--steps", "2000", "--json"});
  expect_clean_pass(queues, "fork");
  const Outcome villas = run_cosim({"run", "--steps", "2000", "--protocol", "villas", "--json"});
  expect_clean_pass(villas, "fork");
  const nlohmann::json q = parse(queues);
  const nlohmann::json v = parse(villas);
  EXPECT_EQ(q.value("protocol", ""), "shmlink");
  EXPECT_EQ(v.value("protocol", ""), "villas");
  // The co-simulation is deterministic: the same values crossed, whatever carried them.
  for (const char* key : {"max_rel_error_v", "max_rel_error_i", "max_error_step_v", "max_error_step_i"}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(v.at(key), q.at(key));
  }
  // Each side's Interface read the other's VILLAS region in /dev/shm (with the shmlink protocol
  // the peer is its queue file).
  EXPECT_EQ(v.at("sides").at("load").value("peer_channel", ""), "/dev/shm" + v.at("channels").value("source", ""));
  EXPECT_EQ(v.at("sides").at("source").value("peer_channel", ""), "/dev/shm" + v.at("channels").value("load", ""));
  EXPECT_EQ(q.at("sides").at("load").value("peer_channel", ""), q.at("channels").value("source", ""));
  for (const char* side : {"source", "load"}) expect_no_villas_objects(v.at("channels").value(side, ""));
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

TEST(Cosim, VillasProtocolWithTheSourceLaunchingTheLoadThroughExec) {
  shmlink::test::TempStreamDir dir;
  const Outcome outcome = run_cosim({"run", "--steps", "2000", "--exec", "--protocol", "villas", "--json"});
  expect_clean_pass(outcome, "exec");
  const nlohmann::json r = parse(outcome);
  EXPECT_EQ(r.value("protocol", ""), "villas");
  // The launched load side read the source side's VILLAS region.
  EXPECT_EQ(r.at("sides").at("load").value("peer_channel", ""), "/dev/shm" + r.at("channels").value("source", ""));
  for (const char* side : {"source", "load"}) expect_no_villas_objects(r.at("channels").value(side, ""));
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

TEST(Cosim, MonolithicReferenceMatchesThePhasorSteadyState) {
  TempFile csv("monolithic.csv");
  const Outcome outcome = run_cosim({"monolithic", "--steps", "2000", "--csv", csv.path(), "--json"});
  ASSERT_EQ(outcome.status, 0);
  const nlohmann::json c = parse(outcome).at("circuit");

  // The steady state of the continuous circuit, computed here from the parameters alone:
  // v_s = Vp sin(w t) behind Z_line = R + jwL, feeding Z_load = R_load || C_load.
  const double w = 2 * std::numbers::pi * c.at("frequency_hz").get<double>();
  const double dt = c.at("dt_s").get<double>();
  const std::complex<double> z_line(c.at("r_line_ohm").get<double>(), w * c.at("l_line_h").get<double>());
  const double r_load = c.at("r_load_ohm").get<double>();
  const std::complex<double> z_load = r_load / std::complex<double>(1, w * r_load * c.at("c_load_f").get<double>());
  const std::complex<double> i_phasor = c.at("source_peak_v").get<double>() / (z_line + z_load);
  const std::complex<double> v_phasor = i_phasor * z_load;

  // Over the last cycle (the start-up transient decays as exp(-300 t): gone after 100 ms),
  // the trajectory must be that sinusoid: amplitude and phase.
  std::ifstream file(csv.path());
  std::string line;
  std::getline(file, line);
  ASSERT_EQ(line, "step,t_s,v_V,i_A");
  const auto cycle = static_cast<int>(std::lround(1 / (c.at("frequency_hz").get<double>() * dt)));
  double v_error = 0;
  double i_error = 0;
  int rows = 0;
  for (; std::getline(file, line); ++rows) {
    std::istringstream fields(line);
    std::string step, t, v, i;
    std::getline(fields, step, ',');
    std::getline(fields, t, ',');
    std::getline(fields, v, ',');
    std::getline(fields, i, ',');
    ASSERT_EQ(std::stoi(step), rows);
    if (rows < 2000 - cycle) continue;
    const double tk = rows * dt;
    v_error = std::max(v_error, std::fabs(std::stod(v) - std::abs(v_phasor) * std::sin(w * tk + std::arg(v_phasor))));
    i_error = std::max(i_error, std::fabs(std::stod(i) - std::abs(i_phasor) * std::sin(w * tk + std::arg(i_phasor))));
  }
  EXPECT_EQ(rows, 2000);
  // The trapezoidal rule's own error at 400 steps per cycle is ~1e-5; 0.1 % leaves margin
  // and still catches a wrong sign, factor or time base.
  EXPECT_LT(v_error, 1e-3 * std::abs(v_phasor));
  EXPECT_LT(i_error, 1e-3 * std::abs(i_phasor));
}

TEST(Cosim, DroppedStepIsReportedAsLostAndFails) {
  shmlink::test::TempStreamDir dir;
  const Outcome outcome = run_cosim({"run", "--steps", "2000", "--drop-step", "500", "--json"});
  EXPECT_EQ(outcome.status, 1);
  const nlohmann::json r = parse(outcome);
  EXPECT_FALSE(r.value("pass", true));
  EXPECT_GE(r.value("lost_steps", 0), 1);
  EXPECT_GE(r.value("out_of_step", 0), 1);
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

TEST(Cosim, RepeatedStepIsReportedAsDuplicatedAndFails) {
  shmlink::test::TempStreamDir dir;
  const Outcome outcome =
      run_cosim({"run", "--steps", "2000", "--exec", "--fault-side", "source", "--duplicate-step", "500", "--json"});
  EXPECT_EQ(outcome.status, 1);
  const nlohmann::json r = parse(outcome);
  EXPECT_FALSE(r.value("pass", true));
  EXPECT_GE(r.value("duplicated_steps", 0), 1);
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

TEST(Cosim, CouplingWithoutExtrapolationExceedsTheTolerance) {
  // Holding the peer's last value (plain ITM) lags each exchanged value by a step: a clean
  // exchange, but an error the tolerance must reject.
  shmlink::test::TempStreamDir dir;
  const Outcome outcome = run_cosim({"run", "--steps", "2000", "--predictor", "hold", "--json"});
  EXPECT_EQ(outcome.status, 1);
  const nlohmann::json r = parse(outcome);
  EXPECT_FALSE(r.value("pass", true));
  EXPECT_EQ(r.value("lost_steps", -1), 0);
  EXPECT_EQ(r.value("duplicated_steps", -1), 0);
  EXPECT_GT(r.value("max_rel_error_i", 0.0), r.value("tolerance", 1.0));
}

TEST(Cosim, RejectsBadOptionsWithUsageStatus) {
  EXPECT_EQ(run_cosim({"run", "--steps", "-5"}, 30).status, 2);
  EXPECT_EQ(run_cosim({"run", "--wait", "carrier-pigeon"}, 30).status, 2);
  EXPECT_EQ(run_cosim({"run", "--protocol", "smoke-signals"}, 30).status, 2);
  EXPECT_EQ(run_cosim({"side", "middle"}, 30).status, 2);
  EXPECT_EQ(run_cosim({"teleport"}, 30).status, 2);
}

TEST(Cosim, SideWithoutPeerGivesUpAtItsTimeout) {
  shmlink::test::TempStreamDir dir;
  EXPECT_EQ(run_cosim({"side", "load", "--in", "nobody-writes-this", "--out", "cosim-test-load", "--timeout", "0.5"}, 30)
                .status,
            1);
  EXPECT_EQ(dir.entries(), 0) << "files left behind in " << dir.path();
}

}  // namespace
