// SPDX-License-Identifier: MIT
// Runs examples/ao_loop as the demo does (three processes per transport) and checks its JSON
// report: frames flow over both transports, the counts add up, every slopes frame is right and
// no stream file is left behind. No timing assertions: CI machines are small and shared, and
// this may run under ASan.
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

/// Runs ao_loop with `args` (in the test's SHMLINK_DIR) and returns its exit status, or a
/// negative value when it died by a signal or had to be killed after `limit_s` seconds.
int run_ao_loop(std::vector<std::string> args, double limit_s) {
  args.insert(args.begin(), AO_LOOP_PATH);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = shmlink::test::spawn([&argv] {
    ::execv(argv[0], argv.data());
    return 127;
  });
  return shmlink::test::reap(pid, limit_s);
}

/// A JSON file name outside the stream directory, removed at the end of the test.
class TempJsonFile {
 public:
  TempJsonFile()
      : path_(std::filesystem::temp_directory_path() / ("ao_loop_test_" + std::to_string(::getpid()) + ".json")) {}
  TempJsonFile(const TempJsonFile&) = delete;
  TempJsonFile& operator=(const TempJsonFile&) = delete;
  ~TempJsonFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  /// The file's path.
  [[nodiscard]] std::string path() const { return path_.string(); }
  /// Its parsed contents.
  [[nodiscard]] nlohmann::json read() const {
    std::ifstream file(path_);
    return nlohmann::json::parse(file);
  }

 private:
  std::filesystem::path path_;
};

TEST(AoLoop, BothTransportsDeliverCorrectSlopesAndConsistentCounts) {
  shmlink::test::TempStreamDir dir;
  TempJsonFile json_file;

  const int status = run_ao_loop({"run", "--seconds", "1", "--rate", "200", "--json", json_file.path()}, 120);
  ASSERT_EQ(status, 0) << "ao_loop run failed (its report is above)";

  const nlohmann::json report = json_file.read();
  EXPECT_EQ(report.at("schema_version"), 1);
  EXPECT_TRUE(report.at("ok").get<bool>());
  EXPECT_GE(report.at("machine").at("cores").get<int>(), 1);
  for (const char* transport : {"shm", "pipe"}) {
    SCOPED_TRACE(transport);
    const nlohmann::json& r = report.at("transports").at(transport);
    EXPECT_TRUE(r.at("ok").get<bool>()) << r.at("error").get<std::string>();
    const auto camera = r.at("camera_frames").get<std::int64_t>();
    const auto observed = r.at("slopes_observed").get<std::int64_t>();
    EXPECT_GT(camera, 100);
    EXPECT_GT(observed, 0);
    EXPECT_EQ(r.at("frames_lost").get<std::int64_t>(), camera - observed);
    EXPECT_GE(r.at("frames_lost").get<std::int64_t>(), 0);
    EXPECT_EQ(r.at("wrong_slopes").get<std::int64_t>(), 0);
    EXPECT_EQ(r.at("out_of_order").get<std::int64_t>(), 0);
    EXPECT_LT(r.at("max_slope_error_px").get<double>(), report.at("config").at("slope_tolerance_px").get<double>());

    const nlohmann::json& latency = r.at("latency_ns");
    const auto p50 = latency.at("p50").get<std::int64_t>();
    const auto p99 = latency.at("p99").get<std::int64_t>();
    const auto p999 = latency.at("p999").get<std::int64_t>();
    const auto max = latency.at("max").get<std::int64_t>();
    EXPECT_GT(p50, 0);
    EXPECT_LE(p50, p99);
    EXPECT_LE(p99, p999);
    EXPECT_LE(p999, max);

    // The controller's share (camera atime -> frame in its hands) is ordered the same way.
    const nlohmann::json& hop = r.at("hop_latency_ns");
    EXPECT_LE(hop.at("p50").get<std::int64_t>(), hop.at("p99").get<std::int64_t>());
    EXPECT_LE(hop.at("p99").get<std::int64_t>(), hop.at("max").get<std::int64_t>());
  }
  EXPECT_EQ(dir.entries(), 0) << "stream files left behind in " << dir.path();
}

TEST(AoLoop, RejectsBadOptionsWithUsageStatus) {
  EXPECT_EQ(run_ao_loop({"run", "--rate", "-5"}, 30), 2);
  EXPECT_EQ(run_ao_loop({"run", "--transport", "carrier-pigeon"}, 30), 2);
  EXPECT_EQ(run_ao_loop({"teleport"}, 30), 2);
}

TEST(AoLoop, ReaderWithoutWriterGivesUpAtItsTimeout) {
  shmlink::test::TempStreamDir dir;
  // The stream never appears: the recorder must fail on its own, well before the test's limit.
  EXPECT_EQ(run_ao_loop({"recorder", "--transport", "shm", "--in", "nobody-writes-this", "--timeout", "0.5"}, 30), 1);
  EXPECT_EQ(dir.entries(), 0);
}

}  // namespace
