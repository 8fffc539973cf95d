// SPDX-License-Identifier: MIT
// Bridge replicas seen by `shmlink ls`, `info`, `monitor` and `cat` (issue 22, "Freshness,
// visible"): two real bridge services in this process stand for two hosts (each its own stream
// directory, loopback TCP); the CLI runs as a child in the asking host's directory.
#include <shmlink/bridge.hpp>
#include <shmlink/bridge_service.hpp>
#include <shmlink/stream.hpp>

#include "cli_run.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#ifndef SHMLINK_CLI_PATH
#error "SHMLINK_CLI_PATH must name the shmlink binary"
#endif

namespace {

using json = nlohmann::json;
using shmlink::Dtype;
using shmlink::Stream;
using shmlink::test::CliRun;
using shmlink::test::wait_until;
namespace bridge = shmlink::bridge;

/// A node name longer than the 16 bytes an ISIO keyword string holds.
const std::string kOwner = "observatory-rtc-main";

/// A private directory standing for one host's stream directory (TempStreamDir: its last one
/// made is SHMLINK_DIR until SetUp() picks this host's).
using HostDir = shmlink::test::TempStreamDir;

/// The file of stream `name` in `dir`.
std::string stream_in(const HostDir& dir, const std::string& name) { return dir.path() + "/" + name + ".im.shm"; }

bridge::ServiceOptions options(const std::string& node, const HostDir& dir) {
  bridge::ServiceOptions o;
  o.name = node;
  o.port = 0;
  o.bind = "127.0.0.1";
  o.multicast = false;
  o.directory = dir.path();
  o.timing = {std::chrono::milliseconds(50), std::chrono::milliseconds(1000)};
  return o;
}

class BridgeFreshnessCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SHMLINK_BRIDGE_SOCKET");
    ::unsetenv("SHMLINK_BRIDGE");
    ::setenv("SHMLINK_BRIDGE_TIMEOUT_MS", "10000", 1);
    ::setenv("SHMLINK_DIR", here_.path().c_str(), 1);  // the CLI (a child) runs on this host
  }
  void TearDown() override { ::unsetenv("SHMLINK_BRIDGE_TIMEOUT_MS"); }
  CliRun run(const std::vector<std::string>& args) {
    return shmlink::test::run_cli(SHMLINK_CLI_PATH, args, here_.path() + "/cli.log");
  }
  /// Starts the owner's service (with stream "wfs", one frame written) and this host's, which
  /// lists the owner as its peer, and waits until this host's catalogue has "wfs".
  void start() {
    Stream src = Stream::create(stream_in(there_, "wfs"), shmlink::test::spec_of({4, 3}, Dtype::f32));
    const std::vector<float> frame{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    ASSERT_TRUE(src.write(std::span<const float>(frame)).ok());
    owner_ = std::make_unique<bridge::Service>(options(kOwner, there_));
    auto o = options("here", here_);
    o.peers = {"127.0.0.1:" + std::to_string(owner_->port())};
    local_ = std::make_unique<bridge::Service>(o);
    ASSERT_TRUE(wait_until(
        [&] {
          for (const auto& c : local_->catalogue())
            if (c.node == kOwner && c.name == "wfs") return true;
          return false;
        },
        10));
  }

  HostDir here_, there_;
  std::unique_ptr<bridge::Service> owner_, local_;
};

TEST_F(BridgeFreshnessCli, InfoAndCatOfHostNameAskTheServiceAndLsInfoMonitorShowTheReplica) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string remote = kOwner + ":wfs";
  // No local file "observatory-rtc-main:wfs": info asks the service, which makes the replica.
  const CliRun info = run({"info", remote, "--json"});
  ASSERT_EQ(info.rc, 0) << info.out;
  const json doc = json::parse(info.out);
  EXPECT_EQ(doc["path"], stream_in(here_, "wfs"));
  ASSERT_TRUE(doc["bridge"].is_object()) << info.out;
  EXPECT_EQ(doc["bridge"]["origin"], kOwner) << "the whole node name, not its first 16 bytes";
  EXPECT_EQ(doc["bridge"]["link_up"], true);
  EXPECT_EQ(doc["bridge"]["mode"], "latest");
  EXPECT_EQ(doc["bridge"]["source_cnt0"], 1);
  EXPECT_EQ(doc["bridge"]["skipped"], 0);
  EXPECT_TRUE(doc["bridge"]["age_us"].is_number_integer()) << info.out;

  const CliRun cat = run({"cat", remote, "--json"});
  ASSERT_EQ(cat.rc, 0) << cat.out;
  EXPECT_NE(cat.out.find(stream_in(here_, "wfs")), std::string::npos) << cat.out;

  const CliRun text = run({"info", "wfs"});
  ASSERT_EQ(text.rc, 0) << text.out;
  EXPECT_NE(text.out.find("bridge replica"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(kOwner), std::string::npos) << text.out;

  const CliRun ls = run({"ls", "--interval", "0", "--json"});
  ASSERT_EQ(ls.rc, 0) << ls.out;
  const json streams = json::parse(ls.out)["streams"];
  ASSERT_EQ(streams.size(), 1U) << ls.out;
  EXPECT_EQ(streams[0]["bridge"]["origin"], kOwner);
  EXPECT_EQ(streams[0]["bridge"]["link_up"], true);
  const CliRun table = run({"ls", "--interval", "0"});
  EXPECT_NE(table.out.find("BRIDGE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(kOwner + " up"), std::string::npos) << table.out;
  const CliRun monitor = run({"monitor", "--once", "--interval", "0.01"});
  ASSERT_EQ(monitor.rc, 0) << monitor.out;
  for (const char* word : {"BRIDGE", "AGE_US", "SKIP/LOST"}) EXPECT_NE(monitor.out.find(word), std::string::npos) << monitor.out;
  EXPECT_NE(monitor.out.find(kOwner + " up"), std::string::npos) << monitor.out;

  // This host's service stops: its replica is no longer updated, and says so (BR_LINK 0).
  local_->stop();
  const CliRun down = run({"ls", "--interval", "0"});
  EXPECT_NE(down.out.find(kOwner + " down"), std::string::npos) << down.out;
  const CliRun down_json = run({"monitor", "--once", "--interval", "0.01", "--json"});
  ASSERT_EQ(down_json.rc, 0) << down_json.out;
  EXPECT_EQ(json::parse(down_json.out)["streams"][0]["bridge"]["link_up"], false) << down_json.out;
}

TEST_F(BridgeFreshnessCli, InfoOfHostNameWithoutAServiceFailsAtOnceNamingTheFileAndTheSocket) {
  const CliRun r = run({"info", "rtc1:wfs"});
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find(stream_in(here_, "rtc1:wfs")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(".shmlink-bridge.sock"), std::string::npos) << r.out;
  const CliRun cat = run({"cat", "rtc1:wfs"});
  EXPECT_EQ(cat.rc, 3) << cat.out;
  const CliRun plain = run({"ls", "--interval", "0", "--json"});
  ASSERT_EQ(plain.rc, 0) << plain.out;
  EXPECT_TRUE(json::parse(plain.out)["streams"].empty()) << plain.out;
}

}  // namespace
