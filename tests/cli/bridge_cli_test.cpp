// SPDX-License-Identifier: MIT
// `shmlink bridge ping|ls|status|want|release`: the real CLI binary (SHMLINK_CLI_PATH) against a
// fake bridge service (tests/common/fake_control_server.hpp) in a private stream directory.
#include <shmlink/stream.hpp>

#include "cli_run.hpp"
#include "fake_control_server.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#ifndef SHMLINK_CLI_PATH
#error "SHMLINK_CLI_PATH must name the shmlink binary"
#endif

namespace {

using json = nlohmann::json;
using shmlink::Errc;
using shmlink::test::CliRun;
using shmlink::test::FakeControlServer;

class BridgeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SHMLINK_BRIDGE_SOCKET");
    ::unsetenv("SHMLINK_BRIDGE_TIMEOUT_MS");
  }
  CliRun run(std::vector<std::string> args) {
    args.insert(args.begin(), "bridge");
    return shmlink::test::run_cli(SHMLINK_CLI_PATH, args, dir_.path() + "/cli.log");
  }
  [[nodiscard]] std::string socket_path() const { return dir_.path() + "/.shmlink-bridge.sock"; }

  shmlink::test::TempStreamDir dir_;
};

const json kLs = {{"schema_version", 1},
                  {"node", "here"},
                  {"channels",
                   {{{"node", "rtc1"},
                     {"kind", "stream"},
                     {"name", "wfs"},
                     {"dtype", static_cast<int>(shmlink::Dtype::f32)},
                     {"shape", {120, 64}}},
                    {{"node", "sim2"}, {"kind", "queue"}, {"name", "samples"}, {"dtype", 536}, {"shape", {1024}}}}}};

const json kStatus = {
    {"schema_version", 1},
    {"node", "here"},
    {"peers", {{{"node", "rtc1"}, {"endpoint", "tcp://10.0.0.2:7710"}, {"link_up", true}, {"channels", 3}}}},
    {"replicas",
     {{{"node", "rtc1"},
       {"name", "wfs"},
       {"path", "/dev/shm/wfs.im.shm"},
       {"kept", true},
       {"link_up", false},
       {"frames_published", 4242},
       {"skipped", 7}}}}};

/// A fake service answering PING, LS and STATUS like a service of node "here".
FakeControlServer::Handler service() {
  return [](const std::vector<std::string>& f) {
    if (f == std::vector<std::string>{"PING"}) return FakeControlServer::ok({"here"});
    if (f == std::vector<std::string>{"LS"}) return FakeControlServer::ok({kLs.dump()});
    if (f == std::vector<std::string>{"STATUS"}) return FakeControlServer::ok({kStatus.dump()});
    if (!f.empty() && f[0] == "OPEN") {
      if (f[3] == "nowhere") return FakeControlServer::err(Errc::not_found, "no peer has stream 'nowhere'");
      return FakeControlServer::ok({"/dev/shm/replica-of-" + f[3]});
    }
    if (!f.empty() && f[0] == "RELEASE") return FakeControlServer::ok();
    return FakeControlServer::err(Errc::protocol, "unexpected request");
  };
}

TEST_F(BridgeCli, PingPrintsTheNodeName) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"ping"});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("here"), std::string::npos) << r.out;
  EXPECT_EQ(server.last(), std::vector<std::string>{"PING"});
}

TEST_F(BridgeCli, WithoutAServiceEveryClientFailsNotFoundNamingTheSocket) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"ping"}, {"ls"}, {"status", "--json"}, {"want", "rtc1:wfs"}}) {
    const CliRun r = run(args);
    EXPECT_EQ(r.rc, 3) << args[0] << ": " << r.out;
    EXPECT_NE(r.out.find(socket_path()), std::string::npos) << r.out;
  }
}

TEST_F(BridgeCli, LsShowsATableOfTheNetworkChannels) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"ls"});
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const char* word : {"NODE", "KIND", "NAME", "DTYPE", "SHAPE", "rtc1", "wfs", "120x64", "sim2", "samples",
                           "536 B/sample", "1024"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing in: " << r.out;
  EXPECT_NE(r.out.find(std::string(shmlink::dtype_name(shmlink::Dtype::f32))), std::string::npos) << r.out;
}

TEST_F(BridgeCli, LsAndStatusJsonPassTheServiceDocumentOn) {
  FakeControlServer server(socket_path(), service());
  const CliRun ls = run({"ls", "--json"});
  ASSERT_EQ(ls.rc, 0) << ls.out;
  EXPECT_EQ(json::parse(ls.out), kLs);
  const CliRun st = run({"status", "--json"});
  ASSERT_EQ(st.rc, 0) << st.out;
  EXPECT_EQ(json::parse(st.out), kStatus);
}

TEST_F(BridgeCli, StatusShowsPeersThenReplicas) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"status"});
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto peer = r.out.find("tcp://10.0.0.2:7710");
  const auto replica = r.out.find("/dev/shm/wfs.im.shm");
  ASSERT_NE(peer, std::string::npos) << r.out;
  ASSERT_NE(replica, std::string::npos) << r.out;
  EXPECT_LT(peer, replica) << r.out;
  for (const char* word : {"up", "down", "4242", "7"}) EXPECT_NE(r.out.find(word), std::string::npos) << word;
}

TEST_F(BridgeCli, LsRefusesAnAnswerThatIsNotJson) {
  FakeControlServer server(socket_path(), [](const auto&) { return FakeControlServer::ok({"{not json"}); });
  const CliRun r = run({"ls"});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("JSON"), std::string::npos) << r.out;
}

TEST_F(BridgeCli, WantAsksForTheReplicaAndPrintsItsPath) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"want", "rtc1:wfs", "--keep", "--timeout", "2.5"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "/dev/shm/replica-of-wfs\n");
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "stream", "rtc1", "wfs", "2500", "1"}));
  const CliRun q = run({"want", "samples", "--queue"});
  ASSERT_EQ(q.rc, 0) << q.out;
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "queue", "", "samples", "5000", "0"}));
}

TEST_F(BridgeCli, WantEveryFrameSendsTheModeAndWindowOnlyWhenAsked) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"want", "rtc1:rec", "--every-frame", "--window", "8"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "stream", "rtc1", "rec", "5000", "0", "every_frame", "8"}));
  const CliRun d = run({"want", "rec", "--every-frame"});
  ASSERT_EQ(d.rc, 0) << d.out;
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "stream", "", "rec", "5000", "0", "every_frame", "64"}));
  for (const auto& args : std::vector<std::vector<std::string>>{{"want", "rec", "--window", "8"},  // needs --every-frame
                                                                 {"want", "rec", "--every-frame", "--window", "0"},
                                                                 {"want", "rec", "--every-frame", "--window", "1025"},
                                                                 {"want", "q", "--queue", "--every-frame"}}) {
    const CliRun bad = run(args);
    EXPECT_EQ(bad.rc, 2) << args.back() << ": " << bad.out;
  }
}

TEST_F(BridgeCli, WantPassesTheServiceErrorOnWithItsExitCode) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"want", "nowhere"});
  EXPECT_EQ(r.rc, 3) << r.out;
  EXPECT_NE(r.out.find("no peer has stream 'nowhere'"), std::string::npos) << r.out;
  const CliRun bad = run({"want", "a\x01" "b"});
  EXPECT_EQ(bad.rc, 2) << bad.out;
}

TEST_F(BridgeCli, ReleaseSendsRelease) {
  FakeControlServer server(socket_path(), service());
  const CliRun r = run({"release", "rtc1:wfs"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(server.last(), (std::vector<std::string>{"RELEASE", "stream", "rtc1", "wfs"}));
}

}  // namespace
