// SPDX-License-Identifier: MIT
// The per-host bridge service (issue 22), as two hosts on one machine: each service runs in a
// forked child with its own stream directory (SHMLINK_DIR), an ephemeral TCP port on loopback
// and its control socket in that directory; the requester lists the owner as its peer. The test
// process plays the local programs: it asks its service over the raw control socket
// (control::encode over AF_UNIX seqpacket, no client library) and reads and writes the files.
#include "bridge/wire.hpp"
#include "remote/control_protocol.hpp"
#include "service_util.hpp"
#include "stream_frames.hpp"
#include "test_util.hpp"

#include <shmlink/bridge_service.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlink::Dtype;
using shmlink::Stream;
using shmlink::test::frame_of;
using shmlink::test::HostDir;
using shmlink::test::ramp;
using shmlink::test::Shared;
using shmlink::test::spawn;
using shmlink::test::wait_until;
namespace bridge = shmlink::bridge;
namespace control = shmlink::control;

/// Heartbeats every 50 ms; a link is down after 2 s of silence, so a stall of a busy machine
/// never flaps it (and an owner's Publisher waits 2 link timeouts for its first subscriber).
constexpr bridge::LinkTiming kSteady{std::chrono::milliseconds(50), std::chrono::milliseconds(2000)};
/// For the test that waits for a link to go down: 500 ms of silence.
constexpr bridge::LinkTiming kQuickDown{std::chrono::milliseconds(50), std::chrono::milliseconds(500)};

/// What a service child shares with the test.
struct Ctl {
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};  // 1 running, -1 failed (error says why)
  std::atomic<int> port{0};
  char error[512] = {};
};

struct ServiceSetup {
  std::string node;
  std::uint16_t port = 0;
  std::vector<std::string> peers;
  std::vector<std::string> allow;
  std::chrono::milliseconds idle{30000};
  bridge::LinkTiming timing = kSteady;
  bool multicast = false;
  std::string domain;
  std::uint16_t discovery_port = 0;
};

/// Runs a Service in a child whose SHMLINK_DIR is `dir` until ctl->stop (or killed).
pid_t start_service(Ctl* ctl, const HostDir& dir, const ServiceSetup& s) {
  ctl->stop = 0;
  ctl->ready = 0;
  const std::string path = dir.path();
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test killed by its timeout
    ::setenv("SHMLINK_DIR", path.c_str(), 1);
    ::unsetenv("SHMLINK_BRIDGE_SOCKET");
    bridge::ServiceOptions o;
    o.name = s.node;
    o.port = s.port;
    o.bind = "127.0.0.1";
    o.peers = s.peers;
    o.allow = s.allow;
    o.multicast = s.multicast;
    if (s.multicast) {
      o.domain = s.domain;
      o.discovery_port = s.discovery_port;
    }
    o.idle = s.idle;
    o.timing = s.timing;
    try {
      bridge::Service svc(o);
      ctl->port = svc.port();
      ctl->ready = 1;
      while (ctl->stop.load() == 0) std::this_thread::sleep_for(2ms);
      svc.stop();
    } catch (const std::exception& e) {
      std::strncpy(ctl->error, e.what(), sizeof ctl->error - 1);
      ctl->ready = -1;
      return 1;
    }
    return 0;
  });
}

/// Options of a service in the test process itself, serving `dir` on an ephemeral loopback port.
bridge::ServiceOptions in_process(const std::string& node, const HostDir& dir) {
  bridge::ServiceOptions o;
  o.name = node;
  o.port = 0;
  o.bind = "127.0.0.1";
  o.multicast = false;
  o.directory = dir.path();
  o.timing = kSteady;
  return o;
}

/// Stops a child when a test ends (or fails early).
struct Running {
  Ctl* ctl;
  pid_t pid;
  Running(Ctl* c, pid_t p) : ctl(c), pid(p) {}
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  ~Running() {
    ctl->stop = 1;
    (void)shmlink::test::reap(pid, 10);
  }
};

/// One request over the control socket at `path`.
std::vector<std::string> ask(const std::string& path, const std::vector<std::string>& fields) {
  return shmlink::test::ask_control(path, fields);
}

std::string joined(const std::vector<std::string>& f) {
  std::string s;
  for (const auto& x : f) s += (s.empty() ? "" : " | ") + x;
  return s;
}

std::int64_t int_keyword(const std::string& path, const char* name) {
  try {
    const Stream s = Stream::open(path);
    const auto v = s.keyword(name);
    return v && std::holds_alternative<std::int64_t>(*v) ? std::get<std::int64_t>(*v) : -1;
  } catch (const shmlink::Error&) {
    return -2;
  }
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

/// Two hosts: "beta" owns the streams (directory b), "alpha" lists beta as its peer (directory a).
class ServiceTest : public ::testing::Test {
 protected:
  /// A source stream `name` in b, 4x3 f32, with keyword GAIN and one frame written.
  Stream source(const std::string& name, float base = 1) {
    auto spec = shmlink::test::spec_of({4, 3}, Dtype::f32);
    spec.keywords = 4;
    Stream s = Stream::create(b.stream(name), spec);
    s.set_keyword("GAIN", std::int64_t{7}, "loop gain");
    EXPECT_TRUE(s.write(std::span<const float>(ramp(12, base))).ok());
    return s;
  }
  void start(ServiceSetup owner, ServiceSetup requester) {
    owner.node = "beta";
    beta_pid = start_service(&*beta, b, owner);
    ASSERT_TRUE(wait_until([&] { return beta->ready.load() != 0; }, 10));
    ASSERT_EQ(beta->ready.load(), 1) << beta->error;
    requester.node = "alpha";
    if (!requester.multicast) requester.peers.insert(requester.peers.begin(), "127.0.0.1:" + std::to_string(beta->port.load()));
    alpha_pid = start_service(&*alpha, a, requester);
    ASSERT_TRUE(wait_until([&] { return alpha->ready.load() != 0; }, 10));
    ASSERT_EQ(alpha->ready.load(), 1) << alpha->error;
  }
  void TearDown() override {
    for (auto [ctl, pid] : {std::pair{&*alpha, alpha_pid}, std::pair{&*beta, beta_pid}}) {
      if (pid <= 0) continue;
      ctl->stop = 1;
      EXPECT_EQ(shmlink::test::reap(pid, 10), 0) << ctl->error;
    }
  }
  /// OPEN through alpha's control socket.
  std::vector<std::string> open(const std::string& host, const std::string& name, const std::string& keep = "0") {
    return ask(a.socket(), {"OPEN", "stream", host, name, "5000", keep});
  }
  /// Waits until alpha's catalogue (LS) shows beta's `name`.
  bool catalogue_shows(const std::string& name) {
    return wait_until(
        [&] {
          const auto r = ask(a.socket(), {"LS"});
          return r.size() == 2 && r[0] == "OK" &&
                 r[1].find("{\"node\":\"beta\",\"kind\":\"stream\",\"name\":\"" + name + "\",\"dtype\":9,\"shape\":[4,3]}") !=
                     std::string::npos;
        },
        10);
  }

  HostDir a, b;
  Shared<Ctl> alpha, beta;
  pid_t alpha_pid = -1, beta_pid = -1;
};

TEST_F(ServiceTest, CatalogueOpenDataWritesBackAndRefusals) {
  Stream src = source("wfs");
  Stream hidden = source("hidden");
  ServiceSetup owner;
  owner.allow = {"wfs"};
  ASSERT_NO_FATAL_FAILURE(start(owner, {}));
  const auto ping = ask(a.socket(), {"PING"});
  EXPECT_EQ(ping, (std::vector<std::string>{"OK", "alpha"}));
  ASSERT_TRUE(catalogue_shows("wfs")) << joined(ask(a.socket(), {"LS"}));
  EXPECT_EQ(joined(ask(a.socket(), {"LS"})).find("hidden"), std::string::npos) << "the allow-list hides 'hidden'";

  const auto r = open("", "wfs");
  ASSERT_EQ(r.size(), 2U) << joined(r);
  ASSERT_EQ(r[0], "OK") << joined(r);
  EXPECT_EQ(r[1], a.stream("wfs"));
  EXPECT_EQ(frame_of(r[1]), ramp(12, 1));
  {
    const Stream rep = Stream::open(r[1]);
    EXPECT_EQ(std::get<std::string>(rep.keyword(bridge::kKeywordOrigin).value_or(std::string())), "beta");
    EXPECT_EQ(int_keyword(r[1], "GAIN"), 7);
    EXPECT_EQ(int_keyword(r[1], bridge::kKeywordSourceCnt0), 1);
  }
  // The source's next frame follows, with its cnt0.
  ASSERT_TRUE(src.write(std::span<const float>(ramp(12, 50))).ok());
  EXPECT_TRUE(wait_until([&] { return frame_of(r[1]) == ramp(12, 50); }, 10));
  EXPECT_EQ(int_keyword(r[1], bridge::kKeywordSourceCnt0), 2);
  // A write on the replica by this (another) process reaches the source.
  {
    Stream rep = Stream::open(r[1]);
    ASSERT_TRUE(rep.write(std::span<const float>(ramp(12, 900))).ok());
  }
  EXPECT_TRUE(wait_until([&] { return frame_of(b.stream("wfs")) == ramp(12, 900); }, 10));
  // A second open returns the same replica.
  EXPECT_EQ(open("beta", "wfs"), r);

  const auto refused = open("", "hidden");
  ASSERT_GE(refused.size(), 3U);
  EXPECT_EQ(refused[0], "ERR");
  EXPECT_EQ(refused[1], "not_found") << "nobody offers it: " << joined(refused);
  const auto denied = open("beta", "hidden");
  ASSERT_GE(denied.size(), 3U);
  EXPECT_EQ(denied[1], "permission") << joined(denied);
  EXPECT_NE(denied[2].find("hidden"), std::string::npos) << denied[2];
  EXPECT_NE(denied[2].find("beta"), std::string::npos) << denied[2];
  EXPECT_FALSE(exists(a.stream("hidden")));
  const auto missing = open("beta", "wfs_missing");  // allowed, but no such stream
  ASSERT_GE(missing.size(), 3U);
  EXPECT_EQ(missing[1], "not_found") << joined(missing);
  const auto unlisted = open("beta", "nosuch");  // the allow-list answers first: nothing is disclosed
  ASSERT_GE(unlisted.size(), 3U);
  EXPECT_EQ(unlisted[1], "permission") << joined(unlisted);

  const auto status = ask(a.socket(), {"STATUS"});
  ASSERT_EQ(status.size(), 2U) << joined(status);
  EXPECT_NE(status[1].find("\"node\":\"alpha\""), std::string::npos) << status[1];
  EXPECT_NE(status[1].find("\"node\":\"beta\",\"endpoint\":"), std::string::npos) << status[1];
  EXPECT_NE(status[1].find("\"name\":\"wfs\",\"path\":\"" + a.stream("wfs") + "\",\"kept\":false,\"link_up\":true"),
            std::string::npos)
      << status[1];
}

TEST_F(ServiceTest, IdleReplicaIsDroppedWhileKeptAndMappedOnesStay) {
  Stream s1 = source("wfs"), s2 = source("dm"), s3 = source("ttm");
  ServiceSetup requester;
  requester.idle = 300ms;
  ASSERT_NO_FATAL_FAILURE(start({}, requester));
  ASSERT_TRUE(catalogue_shows("ttm"));
  ASSERT_EQ(open("", "wfs")[0], "OK");
  ASSERT_EQ(open("", "dm", "1")[0], "OK");
  // ttm is kept until a local reader maps it (opened plainly, a busy machine could let it idle
  // out before the reader comes), then released: only the reader keeps it.
  ASSERT_EQ(open("", "ttm", "1")[0], "OK");
  const Stream mapped = Stream::open(a.stream("ttm"));
  ASSERT_EQ(ask(a.socket(), {"RELEASE", "stream", "", "ttm"}), std::vector<std::string>{"OK"});
  EXPECT_TRUE(wait_until([&] { return !exists(a.stream("wfs")); }, 10)) << "an unused replica is dropped";
  EXPECT_TRUE(exists(a.stream("dm"))) << "a kept replica stays";
  EXPECT_TRUE(exists(a.stream("ttm"))) << "a mapped replica stays";
  EXPECT_EQ(ask(a.socket(), {"RELEASE", "stream", "", "dm"}), std::vector<std::string>{"OK"});
  EXPECT_TRUE(wait_until([&] { return !exists(a.stream("dm")); }, 10)) << "released, then dropped when idle";
  EXPECT_TRUE(exists(a.stream("ttm")));
  const auto again = ask(a.socket(), {"RELEASE", "stream", "", "dm"});
  ASSERT_GE(again.size(), 2U);
  EXPECT_EQ(again[1], "not_found");
}

TEST_F(ServiceTest, OwnerKilledMarksTheLinkDownAndItsRestartBringsItBack) {
  Stream src = source("wfs");
  ServiceSetup requester;
  requester.timing = kQuickDown;  // the link is seen down 500 ms after the owner dies
  ASSERT_NO_FATAL_FAILURE(start({}, requester));
  ASSERT_TRUE(catalogue_shows("wfs"));
  const auto r = open("", "wfs");
  ASSERT_EQ(r[0], "OK") << joined(r);
  const Stream mapped = Stream::open(r[1]);  // in use: never idle
  EXPECT_TRUE(wait_until([&] { return int_keyword(r[1], bridge::kKeywordLink) == 1; }, 10));
  const int port = beta->port.load();
  ::kill(beta_pid, SIGKILL);
  (void)shmlink::test::reap(beta_pid, 10);
  beta_pid = -1;
  EXPECT_TRUE(wait_until([&] { return int_keyword(r[1], bridge::kKeywordLink) == 0; }, 10));
  EXPECT_EQ(frame_of(r[1]), ramp(12, 1)) << "the last frame stays";

  ServiceSetup owner;
  owner.node = "beta";
  owner.port = static_cast<std::uint16_t>(port);
  beta_pid = start_service(&*beta, b, owner);
  ASSERT_TRUE(wait_until([&] { return beta->ready.load() != 0; }, 10));
  ASSERT_EQ(beta->ready.load(), 1) << beta->error;
  ASSERT_TRUE(src.write(std::span<const float>(ramp(12, 70))).ok());
  EXPECT_TRUE(wait_until([&] { return int_keyword(r[1], bridge::kKeywordLink) == 1 && frame_of(r[1]) == ramp(12, 70); }, 10))
      << joined(ask(a.socket(), {"STATUS"}));
}

TEST_F(ServiceTest, RecreatedSourceRecreatesTheReplica) {
  Stream src = source("wfs");
  ASSERT_NO_FATAL_FAILURE(start({}, {}));
  ASSERT_TRUE(catalogue_shows("wfs"));
  const auto r = open("", "wfs");
  ASSERT_EQ(r[0], "OK") << joined(r);
  src = Stream::create(b.stream("wfs"), shmlink::test::spec_of({5, 2}, Dtype::f32), shmlink::OpenMode::PurgeAndCreate);
  ASSERT_TRUE(src.write(std::span<const float>(ramp(10, 5))).ok());
  EXPECT_TRUE(wait_until([&] { return frame_of(r[1]) == ramp(10, 5); }, 10));
  const Stream rep = Stream::open(r[1]);
  ASSERT_EQ(rep.shape().size(), 2U);
  EXPECT_EQ(rep.shape()[0], 5U);
}

/// Frame k of the every-frame tests: 8 u32, element 0 is k, element i is k ^ i * 0x9E3779B9.
std::vector<std::uint32_t> numbered(std::uint64_t k) {
  std::vector<std::uint32_t> f(8);
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::uint32_t>(k) ^ static_cast<std::uint32_t>(i * 0x9E3779B9U);
  return f;
}
void write_numbered(Stream& s) { ASSERT_TRUE(s.write(std::span<const std::uint32_t>(numbered(s.cnt0() + 1))).ok()); }

/// Stops child `pid` (SIGSTOP) and returns once all its threads are stopped.
bool stop_child(pid_t pid) {
  int st = 0;
  return ::kill(pid, SIGSTOP) == 0 && ::waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st);
}

// Every-frame mode through two services: a latest-value replica asked again with mode
// every_frame becomes a rolling buffer of the source's depth; a burst shorter than the depth
// arrives whole, in order, nothing lost; a burst written while the owner's service is stopped
// loses the overwritten frames, counted in BR_LOST, and the rest still arrive in order.
TEST_F(ServiceTest, EveryFrameOpenRecordsARollingSourceInOrderAndCountsWhatWasLost) {
  constexpr std::uint32_t kDepth = 16;
  auto spec = shmlink::test::spec_of({8}, Dtype::u32);
  spec.depth = kDepth;
  Stream src = Stream::create(b.stream("rec"), spec);
  write_numbered(src);
  ASSERT_NO_FATAL_FAILURE(start({}, {}));
  ASSERT_TRUE(wait_until([&] { return joined(ask(a.socket(), {"LS"})).find("\"name\":\"rec\"") != std::string::npos; }, 10));
  const auto latest = open("", "rec");
  ASSERT_EQ(latest, (std::vector<std::string>{"OK", a.stream("rec")}));
  EXPECT_FALSE(Stream::open(latest[1]).rolling());
  const auto bad = ask(a.socket(), {"OPEN", "stream", "", "rec", "5000", "0", "every", "8"});
  ASSERT_GE(bad.size(), 2U) << joined(bad);
  EXPECT_EQ(bad[1], "invalid_argument") << joined(bad);
  const auto every = ask(a.socket(), {"OPEN", "stream", "", "rec", "5000", "0", "every_frame", "64"});
  ASSERT_EQ(every, latest) << "the same file, now every frame";
  Stream rep;
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          rep = Stream::open(every[1]);  // re-created as a rolling buffer: open the new file
          return rep.rolling() && rep.depth() == kDepth && rep.cnt0() >= 1;
        } catch (const shmlink::Error&) {
          return false;
        }
      },
      10));
  rep.set_tail(0);
  std::vector<std::uint32_t> f(8);
  const auto next_frame = [&] {
    const auto st = rep.read_next(std::as_writable_bytes(std::span(f)), nullptr, nullptr, 10s);
    return st.ok() && f == numbered(f[0]) ? std::int64_t{f[0]} : std::int64_t{-1};
  };

  for (int i = 0; i < 12; ++i) write_numbered(src);  // a burst within the depth: nothing can be lost
  for (std::int64_t k = 1; k <= 13; ++k) ASSERT_EQ(next_frame(), k) << "whole, in order, once";
  EXPECT_EQ(int_keyword(every[1], bridge::kKeywordLost), 0);
  EXPECT_EQ(int_keyword(every[1], bridge::kKeywordSkipped), -1) << "no latest-value keyword on an every-frame replica";

  ASSERT_TRUE(stop_child(beta_pid));  // the owner cannot send: frames 14..93 overwrite its buffer
  for (std::uint32_t i = 0; i < 5 * kDepth; ++i) write_numbered(src);
  ASSERT_EQ(::kill(beta_pid, SIGCONT), 0);
  const auto last = static_cast<std::int64_t>(src.cnt0());
  ASSERT_TRUE(wait_until([&] { return int_keyword(every[1], bridge::kKeywordSourceCnt0) == last; }, 10))
      << joined(ask(a.socket(), {"STATUS"}));
  const std::int64_t lost = int_keyword(every[1], bridge::kKeywordLost);
  EXPECT_GE(lost, 4 * kDepth);
  EXPECT_EQ(static_cast<std::int64_t>(rep.cnt0()) + lost, last) << "each frame published once or counted lost";
  std::int64_t prev = 13;
  while (prev < last) {
    const std::int64_t k = next_frame();
    ASSERT_GT(k, prev) << "in order, never twice";
    prev = k;
  }
  const auto status = joined(ask(a.socket(), {"STATUS"}));
  EXPECT_NE(status.find("\"lost\":" + std::to_string(lost) + ",\"mode\":\"every_frame\""), std::string::npos) << status;
}

TEST_F(ServiceTest, MulticastDiscoveryFindsAnUnlistedPeer) {
  Stream src = source("wfs");
  // Its own UDP port and domain, so parallel tests never hear each other (loopback multicast).
  std::random_device rd;
  ServiceSetup s;
  s.multicast = true;
  s.domain = "svc" + std::to_string(::getpid());
  s.discovery_port = static_cast<std::uint16_t>(20000 + (rd() ^ static_cast<unsigned>(::getpid())) % 40000);
  ASSERT_NO_FATAL_FAILURE(start(s, s));
  ASSERT_TRUE(catalogue_shows("wfs")) << "alpha lists no peer: beta is found by its beacons; "
                                      << joined(ask(a.socket(), {"STATUS"}));
  const auto r = open("beta", "wfs");
  ASSERT_EQ(r[0], "OK") << joined(r);
  EXPECT_EQ(frame_of(r[1]), ramp(12, 1));
}

TEST_F(ServiceTest, ANameOnTwoPeersNeedsANodeAndTheSecondReplicaIsNodeColonName) {
  Stream src = source("wfs");
  HostDir g;  // a third host, "gamma", with its own "wfs"
  auto spec = shmlink::test::spec_of({4, 3}, Dtype::f32);
  Stream other = Stream::create(g.stream("wfs"), spec);
  ASSERT_TRUE(other.write(std::span<const float>(ramp(12, 300))).ok());
  Shared<Ctl> gamma;
  ServiceSetup gs;
  gs.node = "gamma";
  const pid_t gamma_pid = start_service(&*gamma, g, gs);
  const Running gamma_guard{&*gamma, gamma_pid};
  ASSERT_TRUE(wait_until([&] { return gamma->ready.load() != 0; }, 10));
  ASSERT_EQ(gamma->ready.load(), 1) << gamma->error;
  ServiceSetup requester;
  requester.peers = {"127.0.0.1:" + std::to_string(gamma->port.load())};
  ASSERT_NO_FATAL_FAILURE(start({}, requester));
  ASSERT_TRUE(wait_until([&] { return joined(ask(a.socket(), {"LS"})).find("\"node\":\"gamma\"") != std::string::npos; }, 10));
  ASSERT_TRUE(catalogue_shows("wfs"));

  const auto both = open("", "wfs");
  ASSERT_GE(both.size(), 3U) << joined(both);
  EXPECT_EQ(both[1], "invalid_argument");
  EXPECT_NE(both[2].find("beta"), std::string::npos) << both[2];
  EXPECT_NE(both[2].find("gamma"), std::string::npos) << both[2];

  const auto from_gamma = open("gamma", "wfs");
  ASSERT_EQ(from_gamma, (std::vector<std::string>{"OK", a.stream("wfs")}));
  EXPECT_EQ(frame_of(from_gamma[1]), ramp(12, 300));
  // "wfs" here is gamma's replica: beta's goes to "beta:wfs".
  const auto from_beta = open("beta", "wfs");
  ASSERT_EQ(from_beta, (std::vector<std::string>{"OK", a.stream("beta:wfs")}));
  EXPECT_EQ(frame_of(from_beta[1]), ramp(12, 1));
  EXPECT_EQ(frame_of(from_gamma[1]), ramp(12, 300));
}

TEST_F(ServiceTest, ASecondServiceOnTheSameControlSocketIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start({}, {}));
  try {
    bridge::Service second(in_process("gamma", a));
    FAIL() << "a second service took " << a.socket();
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), shmlink::Errc::exists) << e.what();
    EXPECT_NE(std::string(e.what()).find(a.socket()), std::string::npos) << e.what();
  }
  EXPECT_EQ(ask(a.socket(), {"PING"}), (std::vector<std::string>{"OK", "alpha"})) << "the first one still serves";
}

/// Sends one multipart message of `parts` on a raw ZeroMQ socket.
void send_raw(void* sock, const std::vector<std::vector<std::byte>>& parts) {
  for (std::size_t i = 0; i < parts.size(); ++i)
    ASSERT_GE(zmq_send(sock, parts[i].data(), parts[i].size(), i + 1 < parts.size() ? ZMQ_SNDMORE : 0), 0);
}

std::vector<std::byte> bytes(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::vector<std::byte> header(bridge::wire::Header h) {
  const auto raw = bridge::wire::encode(h);
  return {raw.begin(), raw.end()};
}

TEST(ServiceHostile, RefusesMalformedPeerMessagesAndKeepsServing) {
  HostDir d;
  bridge::Service svc(in_process("delta", d));
  void* ctx = zmq_ctx_new();
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  int linger = 0, rcvtimeo = 5000;
  zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
  ASSERT_EQ(zmq_connect(dealer, ("tcp://127.0.0.1:" + std::to_string(svc.port())).c_str()), 0);
  namespace wire = bridge::wire;
  auto bad_hello = header(wire::make_header(wire::Kind::service_hello));
  bad_hello[0] = std::byte{0};  // magic
  auto lying_open = wire::make_header(wire::Kind::open_request);
  lying_open.payload_bytes = 1000;  // says 1000, carries 3
  send_raw(dealer, {bytes("mallory")});                                                       // one part
  send_raw(dealer, {bytes("mallory"), bad_hello});                                            // bad magic
  send_raw(dealer, {bytes("mallory"), header(lying_open), bytes("wfs")});                     // payload size
  send_raw(dealer, {bytes("bad\tnode"), header(wire::make_header(wire::Kind::service_hello))});  // topic
  send_raw(dealer, {bytes("mallory"), header(wire::make_header(wire::Kind::stream_frame))});  // not a service kind
  ASSERT_TRUE(wait_until([&] { return svc.stats().refused >= 5; }, 10)) << svc.last_error();
  EXPECT_NE(svc.last_error().find("mallory"), std::string::npos) << svc.last_error();
  // Still serving: a proper hello is answered with delta's own.
  send_raw(dealer, {bytes("mallory"), header(wire::make_header(wire::Kind::service_hello))});
  std::vector<std::string> got;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, dealer, 0) < 0) break;
    got.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    const bool more = zmq_msg_more(&m) != 0;
    zmq_msg_close(&m);
    if (!more) break;
  }
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0], "delta");
  zmq_close(dealer);
  zmq_ctx_term(ctx);
  svc.stop();
}

// A peer asking for a name that leaves the served directory ("../x") is refused by the name rule
// before any file is looked at, even though the file it points to exists and is a stream.
TEST(ServiceHostile, OpenRequestOfAPathOutsideTheDirectoryIsRefused) {
  HostDir d;
  const std::string outside = "svc-outside-" + std::to_string(::getpid());
  const std::string outside_file = std::filesystem::path(d.path()).parent_path().string() + "/" + outside + ".im.shm";
  shmlink::Stream::create(outside_file, shmlink::test::spec_of({4}, shmlink::Dtype::f32));
  bridge::Service svc(in_process("delta", d));
  void* ctx = zmq_ctx_new();
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  int linger = 0, rcvtimeo = 5000;
  zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
  ASSERT_EQ(zmq_connect(dealer, ("tcp://127.0.0.1:" + std::to_string(svc.port())).c_str()), 0);
  namespace wire = bridge::wire;
  const std::string name = "../" + outside;
  auto open = wire::make_header(wire::Kind::open_request);
  open.sequence = 7;
  open.payload_bytes = name.size();
  send_raw(dealer, {bytes("mallory"), header(open), bytes(name)});
  std::vector<std::string> got;
  bool refused = false;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, dealer, 0) < 0) break;
    got.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    const bool more = zmq_msg_more(&m) != 0;
    zmq_msg_close(&m);
    if (!more) {
      wire::Header h;
      if (got.size() >= 2 && got[1].size() == wire::kHeaderBytes) {
        std::memcpy(&h, got[1].data(), sizeof h);
        if (h.kind == static_cast<std::uint16_t>(wire::Kind::open_answer)) {
          refused = (h.flags & wire::kAnswerRefused) != 0;
          break;
        }
      }
      got.clear();  // a hello or another message: read on
    }
  }
  ::unlink(outside_file.c_str());
  ASSERT_GE(got.size(), 3U) << "no open_answer";
  EXPECT_TRUE(refused) << got[2];
  EXPECT_EQ(got[2].rfind("invalid_argument", 0), 0U) << got[2];
  zmq_close(dealer);
  zmq_ctx_term(ctx);
  svc.stop();
}

#ifdef SHMLINK_CLI_PATH
TEST(BridgeServeCli, RunsUntilSigtermAndExitsZero) {
  HostDir d;
  const std::string log = d.path() + "/serve.log";
  const std::string dir = d.path();
  const pid_t pid = spawn([&] {
    ::setenv("SHMLINK_DIR", dir.c_str(), 1);
    ::unsetenv("SHMLINK_BRIDGE_SOCKET");
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) return 126;
    ::execl(SHMLINK_CLI_PATH, "shmlink", "bridge", "serve", "--name", "gamma", "--port", "0", "--bind", "127.0.0.1",
            "--no-multicast", "--heartbeat-ms", "50", static_cast<char*>(nullptr));
    return 127;
  });
  const bool up = wait_until([&] { return ask(d.socket(), {"PING"}) == std::vector<std::string>{"OK", "gamma"}; }, 10);
  ::kill(pid, SIGTERM);
  const int rc = shmlink::test::reap(pid, 10);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(up) << text;
  EXPECT_EQ(rc, 0) << text;
  EXPECT_FALSE(exists(d.socket())) << "the control socket is removed at exit";
}
#endif

}  // namespace
