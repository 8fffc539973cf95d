// SPDX-License-Identifier: MIT
// The bridge service's review fixes (issue 22): release messages, two-way peer learning, the
// peer table's cap and expiry, concurrent opens and stops, replica files removed by a user,
// open answers from the peer asked only, and the control server (large replies, no thread for
// a request, no umask change, JSON of non-UTF-8 names). Services run in the test process on
// ephemeral loopback ports, each with its own stream directory; fake peers are raw ZeroMQ
// ROUTER sockets.
#include "bridge/control_server.hpp"
#include "bridge/wire.hpp"
#include "service_util.hpp"
#include "test_util.hpp"

#include <shmlink/bridge_service.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlink::Dtype;
using shmlink::Stream;
using shmlink::test::ask_control;
using shmlink::test::frame_of;
using shmlink::test::HostDir;
using shmlink::test::ramp;
using shmlink::test::wait_until;
namespace bridge = shmlink::bridge;
namespace wire = shmlink::bridge::wire;

/// Heartbeats every 50 ms; a link is down after 2 s without a message (a busy machine's stall
/// does not flap it).
constexpr bridge::LinkTiming kSteady{std::chrono::milliseconds(50), std::chrono::milliseconds(2000)};

bridge::ServiceOptions options(const std::string& node, const HostDir& dir, bridge::LinkTiming timing = kSteady) {
  bridge::ServiceOptions o;
  o.name = node;
  o.port = 0;
  o.bind = "127.0.0.1";
  o.multicast = false;
  o.directory = dir.path();
  o.timing = timing;
  return o;
}

std::string listed(const bridge::Service& s) { return "127.0.0.1:" + std::to_string(s.port()); }

/// Options of service "alpha" serving `dir` that lists `owner` as its peer.
bridge::ServiceOptions requester(const HostDir& dir, const bridge::Service& owner) {
  auto o = options("alpha", dir);
  o.peers = {listed(owner)};
  return o;
}

/// A 4x3 f32 stream `name` in `dir` holding ramp(12, base).
Stream source(const HostDir& dir, const std::string& name, float base) {
  Stream s = Stream::create(dir.stream(name), shmlink::test::spec_of({4, 3}, Dtype::f32));
  EXPECT_TRUE(s.write(std::span<const float>(ramp(12, base))).ok());
  return s;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

bool offers(const bridge::Service& s, const std::string& node, const std::string& name) {
  for (const auto& c : s.catalogue())
    if (c.node == node && c.name == name) return true;
  return false;
}

bool linked(const bridge::Service& s, const std::string& node) {
  for (const auto& p : s.peers())
    if (p.node == node && p.link_up) return true;
  return false;
}

TEST(ServiceReview, ADroppedReplicaSendsReleaseAndTheOwnerStopsItsPublisherAtOnce) {
  HostDir a, b;
  Stream src = source(b, "wfs", 1);
  // The owner's link timeout is long: without the release, its Publisher would stay 2 of them (20 s).
  bridge::Service beta(options("beta", b, {std::chrono::milliseconds(50), std::chrono::milliseconds(10000)}));
  auto oa = requester(a, beta);
  oa.idle = 200ms;
  bridge::Service alpha(oa);
  ASSERT_TRUE(wait_until([&] { return offers(alpha, "beta", "wfs") && linked(alpha, "beta"); }, 10));
  const std::string path = alpha.open("stream", "beta", "wfs", 5000ms, false);
  EXPECT_EQ(frame_of(path), ramp(12, 1));
  EXPECT_EQ(beta.stats().publishers, 1U);
  // No other process maps the replica: it is dropped when idle, and beta hears so.
  ASSERT_TRUE(wait_until([&] { return !exists(path); }, 10));
  EXPECT_TRUE(wait_until([&] { return beta.stats().publishers == 0; }, 8)) << "no release reached beta";
}

TEST(ServiceReview, AServiceOnlyListedByItsPeerLearnsItOpensItsChannelsAndForgetsItWhenSilent) {
  HostDir a, b;
  Stream dm = source(a, "dm", 3);  // alpha's own stream
  bridge::Service beta(options("beta", b, {std::chrono::milliseconds(50), std::chrono::milliseconds(500)}));
  auto alpha = std::make_unique<bridge::Service>(requester(a, beta));  // alpha lists beta; beta lists nobody
  ASSERT_TRUE(wait_until([&] { return offers(beta, "alpha", "dm") && linked(beta, "alpha"); }, 10))
      << "beta learns alpha from its hello; " << beta.last_error();
  const std::string path = beta.open("stream", "alpha", "dm", 5000ms, true);
  EXPECT_EQ(path, b.stream("dm"));
  EXPECT_EQ(frame_of(path), ramp(12, 3));
  EXPECT_EQ(beta.peers().size(), 1U) << "one link to alpha, not one per hello";
  alpha.reset();  // alpha stops: silent, the learned peer is forgotten (a listed one would stay)
  EXPECT_TRUE(wait_until([&] { return beta.peers().empty(); }, 10));
}

// Discovered and learned peers go through the same door as listed ones (add_peer): 256 at most.
TEST(ServiceReview, ThePeerTableIsCapped) {
  HostDir d;
  auto o = options("delta", d);
  for (int i = 0; i < 257; ++i) o.peers.push_back("127.0.0.1:" + std::to_string(40000 + i));  // nobody there
  try {
    bridge::Service svc(o);
    FAIL() << "257 peers taken";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), shmlink::Errc::no_space) << e.what();
    EXPECT_NE(std::string(e.what()).find("256 peers"), std::string::npos) << e.what();
  }
  o.peers.pop_back();
  bridge::Service svc(o);
  EXPECT_EQ(svc.peers().size(), 256U);
}

/// Services beta and gamma serving `b` and `g`, and alpha (serving `a`) listing both; once alpha
/// sees `name` offered by both, it opens beta's and gamma's `kind` `name` from two threads
/// released together. @return {beta's path, gamma's path}; fails the test when an open fails.
std::pair<std::string, std::string> open_from_two_nodes_at_once(const HostDir& a, const HostDir& b, const HostDir& g,
                                                                const char* kind, const std::string& name) {
  bridge::Service beta(options("beta", b)), gamma(options("gamma", g));
  auto oa = options("alpha", a);
  oa.peers = {listed(beta), listed(gamma)};
  bridge::Service alpha(oa);
  EXPECT_TRUE(wait_until([&] { return offers(alpha, "beta", name) && offers(alpha, "gamma", name); }, 10));
  std::string pb, pg, eb, eg;
  std::atomic<int> go{0};
  const auto open = [&](const char* node, std::string& path, std::string& error) {
    while (go.load() == 0) std::this_thread::yield();
    try {
      path = alpha.open(kind, node, name, 5000ms, false);
    } catch (const shmlink::Error& e) {
      error = e.what();
    }
  };
  std::thread tb(open, "beta", std::ref(pb), std::ref(eb)), tg(open, "gamma", std::ref(pg), std::ref(eg));
  go = 1;
  tb.join();
  tg.join();
  EXPECT_TRUE(eb.empty() && eg.empty()) << eb << " / " << eg;
  // The replicas' frames are read while the services still run.
  if (std::string_view(kind) == "stream") {
    EXPECT_EQ(frame_of(pb), ramp(12, 1));
    EXPECT_EQ(frame_of(pg), ramp(12, 300));
  }
  return {pb, pg};
}

TEST(ServiceReview, TwoConcurrentOpensOfOneNameFromTwoNodesTakeTwoFiles) {
  HostDir a, b, g;
  Stream sb = source(b, "wfs", 1), sg = source(g, "wfs", 300);
  const auto [pb, pg] = open_from_two_nodes_at_once(a, b, g, "stream", "wfs");
  EXPECT_NE(pb, pg) << "both replicas in one file";
  EXPECT_TRUE(pb == a.stream("wfs") || pb == a.stream("beta:wfs")) << pb;
  EXPECT_TRUE(pg == a.stream("wfs") || pg == a.stream("gamma:wfs")) << pg;
}

TEST(ServiceReview, TwoConcurrentQueueOpensOfOneNameFromTwoNodesTakeTwoFiles) {
  HostDir a, b, g;
  shmlink::QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 1;
  (void)shmlink::Queue::create(b.path() + "/q.queue.shm", spec, shmlink::OpenMode::ExclusiveCreate);
  (void)shmlink::Queue::create(g.path() + "/q.queue.shm", spec, shmlink::OpenMode::ExclusiveCreate);
  const auto [pb, pg] = open_from_two_nodes_at_once(a, b, g, "queue", "q");
  EXPECT_NE(pb, pg) << "both queue replicas in one file";
  EXPECT_TRUE(pb == a.path() + "/q.queue.shm" || pb == a.path() + "/beta:q.queue.shm") << pb;
  EXPECT_TRUE(pg == a.path() + "/q.queue.shm" || pg == a.path() + "/gamma:q.queue.shm") << pg;
}

TEST(ServiceReview, AReplicaFileRemovedByAUserIsRecreatedOnTheNextOpen) {
  HostDir a, b;
  Stream src = source(b, "wfs", 1);
  bridge::Service beta(options("beta", b));
  bridge::Service alpha(requester(a, beta));
  ASSERT_TRUE(wait_until([&] { return offers(alpha, "beta", "wfs") && linked(alpha, "beta"); }, 10));
  const std::string path = alpha.open("stream", "beta", "wfs", 5000ms, true);
  ASSERT_EQ(frame_of(path), ramp(12, 1));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_EQ(alpha.open("stream", "beta", "wfs", 5000ms, false), path);
  EXPECT_EQ(frame_of(path), ramp(12, 1)) << "the replica is made again";
  ASSERT_TRUE(src.write(std::span<const float>(ramp(12, 40))).ok());
  EXPECT_TRUE(wait_until([&] { return frame_of(path) == ramp(12, 40); }, 10)) << "and follows the source";
  ASSERT_EQ(alpha.replicas().size(), 1U);
  EXPECT_TRUE(alpha.replicas()[0].kept) << "a kept replica stays kept";
}

TEST(ServiceReview, AnOpenDuringTheIdleDropOfItsReplicaWaitsAndKeepsItsFile) {
  HostDir a, b;
  Stream src = source(b, "wfs", 1);
  bridge::Service beta(options("beta", b));
  auto oa = requester(a, beta);
  oa.idle = 1ms;  // dropped at the next housekeeping pass (50 ms)
  bridge::Service alpha(oa);
  ASSERT_TRUE(wait_until([&] { return offers(alpha, "beta", "wfs") && linked(alpha, "beta"); }, 10));
  const std::string path = alpha.open("stream", "beta", "wfs", 5000ms, false);
  // The drop has begun (no longer held) but its file is not removed yet (its Replica stops first).
  ASSERT_TRUE(wait_until([&] { return alpha.replicas().empty(); }, 10));
  ASSERT_TRUE(exists(path)) << "the drop was over before the test could see it";
  EXPECT_EQ(alpha.open("stream", "beta", "wfs", 5000ms, true), path);
  // Kept from here on: its file must stay (the drop removed the file of the replica it dropped,
  // never the new one's). Watched for a second.
  EXPECT_FALSE(wait_until([&] { return !exists(path); }, 1)) << "the drop removed the new replica's file";
  EXPECT_EQ(frame_of(path), ramp(12, 1));
}

TEST(ServiceReview, StopFromTwoThreadsReturnsOnlyOnceTheServiceStopped) {
  HostDir a, b;
  Stream src = source(b, "wfs", 1);
  bridge::Service beta(options("beta", b));
  bridge::Service alpha(requester(a, beta));
  ASSERT_TRUE(wait_until([&] { return offers(alpha, "beta", "wfs") && linked(alpha, "beta"); }, 10));
  (void)alpha.open("stream", "beta", "wfs", 5000ms, true);  // its Replica's stop is the last, slow step
  std::atomic<int> go{0};
  std::atomic<int> early{0};
  const auto stop = [&] {
    while (go.load() == 0) std::this_thread::yield();
    alpha.stop();
    if (exists(a.socket()) || !alpha.replicas().empty()) ++early;
  };
  std::thread t1(stop), t2(stop);
  go = 1;
  t1.join();
  t2.join();
  EXPECT_EQ(early.load(), 0) << "a stop() returned while the other was still stopping";
}

/// A fake peer service: a ROUTER on an ephemeral loopback port that answers hellos as node
/// `node`, records the open_request it gets, and sends what the test gives it (its own thread:
/// a ZeroMQ socket has one user).
class FakePeer {
 public:
  FakePeer(void* ctx, std::string node) : node_(std::move(node)) {
    sock_ = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock_, "tcp://127.0.0.1:*") != 0) throw std::runtime_error("bind");
    char ep[256] = {};
    std::size_t n = sizeof ep;
    zmq_getsockopt(sock_, ZMQ_LAST_ENDPOINT, ep, &n);
    endpoint_ = ep;
    thread_ = std::thread([this] { run(); });
  }
  ~FakePeer() {
    stop_ = true;
    thread_.join();
    zmq_close(sock_);
  }
  FakePeer(const FakePeer&) = delete;
  FakePeer& operator=(const FakePeer&) = delete;
  [[nodiscard]] std::string listed() const { return endpoint_.substr(endpoint_.find("//") + 2); }
  /// Plays a Publisher of a 4x3 f32 stream (the topic is `node`) whose source holds frames
  /// but never sends one: each heartbeat of a replica is answered with a stream_meta.
  void be_a_silent_publisher() {
    wire::Header h = wire::make_header(wire::Kind::stream_meta);
    h.generation = 7;
    h.dtype = 9;  // f32
    h.naxis = 2;
    h.size[0] = 4;
    h.size[1] = 3;
    h.sequence = 5;  // frames exist: the replica waits for one
    meta_ = h;
  }
  [[nodiscard]] std::uint16_t port() const { return static_cast<std::uint16_t>(std::stoi(endpoint_.substr(endpoint_.rfind(':') + 1))); }
  /// The id of the open_request received (0: none yet).
  std::uint64_t request() const { return request_.load(); }
  /// Sends an open_answer with id `id` to the service that said hello.
  void answer(std::uint64_t id, bool refused, std::uint32_t port, const std::string& text) {
    wire::Header h = wire::make_header(wire::Kind::open_answer);
    h.sequence = id;
    h.flags = refused ? wire::kAnswerRefused : 0;
    h.size[0] = port;
    h.payload_bytes = text.size();
    std::lock_guard lock(mutex_);
    out_.push_back({h, text});
  }

 private:
  void run() {
    std::vector<std::byte> identity;
    while (!stop_) {
      zmq_pollitem_t item{sock_, 0, ZMQ_POLLIN, 0};
      zmq_poll(&item, 1, 10);
      std::vector<std::vector<std::byte>> parts;
      while ((item.revents & ZMQ_POLLIN) != 0) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock_, ZMQ_DONTWAIT) < 0) {
          zmq_msg_close(&m);
          break;
        }
        const auto* p = static_cast<const std::byte*>(zmq_msg_data(&m));
        parts.emplace_back(p, p + zmq_msg_size(&m));
        const bool more = zmq_msg_more(&m) != 0;
        zmq_msg_close(&m);
        if (more) continue;
        if (parts.size() >= 3 && parts[2].size() == wire::kHeaderBytes) {
          wire::Header h;
          std::memcpy(&h, parts[2].data(), sizeof h);
          identity = parts[0];
          if (h.kind == static_cast<std::uint16_t>(wire::Kind::service_hello)) {
            wire::Header mine = wire::make_header(wire::Kind::service_hello);
            mine.sequence = 42;
            send(identity, mine, {});
          } else if (h.kind == static_cast<std::uint16_t>(wire::Kind::open_request)) {
            request_ = h.sequence;
          } else if (h.kind == static_cast<std::uint16_t>(wire::Kind::heartbeat) && meta_.kind != 0) {
            send(identity, meta_, {});  // a fake Publisher: the shape, never a frame
          }
        }
        parts.clear();
      }
      std::vector<std::pair<wire::Header, std::string>> todo;
      {
        std::lock_guard lock(mutex_);
        todo.swap(out_);
      }
      for (const auto& [h, text] : todo) send(identity, h, text);
    }
  }
  void send(const std::vector<std::byte>& identity, const wire::Header& h, const std::string& text) {
    const auto raw = wire::encode(h);
    zmq_send(sock_, identity.data(), identity.size(), ZMQ_SNDMORE);
    zmq_send(sock_, node_.data(), node_.size(), ZMQ_SNDMORE);
    zmq_send(sock_, raw.data(), raw.size(), text.empty() ? 0 : ZMQ_SNDMORE);
    if (!text.empty()) zmq_send(sock_, text.data(), text.size(), 0);
  }

  std::string node_, endpoint_;
  void* sock_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> request_{0};
  wire::Header meta_{};  // kind 0: not a Publisher (set before the first heartbeat arrives)
  std::mutex mutex_;
  std::vector<std::pair<wire::Header, std::string>> out_;
  std::thread thread_;
};

TEST(ServiceReview, AnOpenAnswerCountsOnlyFromThePeerAsked) {
  void* ctx = zmq_ctx_new();
  {
    FakePeer x1(ctx, "x1"), x2(ctx, "x2");
    HostDir a;
    auto oa = options("alpha", a);
    oa.peers = {x1.listed(), x2.listed()};
    bridge::Service alpha(oa);
    ASSERT_TRUE(wait_until([&] { return linked(alpha, "x1") && linked(alpha, "x2"); }, 10));
    shmlink::Errc errc = shmlink::Errc::system;
    std::string message;
    std::thread opener([&] {
      try {
        (void)alpha.open("stream", "x1", "wfs", 8000ms, false);
      } catch (const shmlink::Error& e) {
        errc = e.errc();
        message = e.what();
      }
    });
    ASSERT_TRUE(wait_until([&] { return x1.request() != 0; }, 10));
    // x2 answers the request sent to x1 (as if it had guessed the id): ignored.
    x2.answer(x1.request(), false, 1, "tcp://127.0.0.1:1");
    EXPECT_TRUE(wait_until([&] { return alpha.last_error().find("not sent to it") != std::string::npos; }, 10))
        << alpha.last_error();
    x1.answer(x1.request(), true, 0, "not_found\tx1 has no wfs");
    opener.join();
    EXPECT_EQ(errc, shmlink::Errc::not_found) << message;
    EXPECT_NE(message.find("x1 has no wfs"), std::string::npos) << message;
  }
  zmq_ctx_term(ctx);
}

TEST(ServiceReview, AReplicaBeingOpenedIsNeverOfferedAsOurOwnNorLeftBehindWhenTheOpenFails) {
  void* ctx = zmq_ctx_new();
  {
    FakePeer x1(ctx, "x1"), publisher(ctx, "wfs");
    publisher.be_a_silent_publisher();
    HostDir a;
    auto oa = options("alpha", a);
    oa.peers = {x1.listed()};
    auto alpha = std::make_unique<bridge::Service>(oa);
    ASSERT_TRUE(wait_until([&] { return linked(*alpha, "x1"); }, 10));
    std::string message;
    std::thread opener([&] {
      try {
        (void)alpha->open("stream", "x1", "wfs", 20000ms, false);
      } catch (const shmlink::Error& e) {
        message = e.what();
      }
    });
    ASSERT_TRUE(wait_until([&] { return x1.request() != 0; }, 10));
    x1.answer(x1.request(), false, publisher.port(), "tcp://127.0.0.1:" + std::to_string(publisher.port()));
    ASSERT_TRUE(wait_until([&] { return exists(a.stream("wfs")); }, 10)) << "the replica file is made at the stream_meta";
    // A stream made after it is listed by the next rescan: by then the replica file was seen too.
    Stream marker = source(a, "marker", 0);
    ASSERT_TRUE(wait_until([&] { return offers(*alpha, "alpha", "marker"); }, 10));
    EXPECT_FALSE(offers(*alpha, "alpha", "wfs")) << "x1's stream offered as alpha's";
    alpha->stop();  // the open gives up waiting for its first frame
    opener.join();
    EXPECT_NE(message.find("no first frame"), std::string::npos) << message;
    EXPECT_FALSE(exists(a.stream("wfs"))) << "a failed open leaves no replica file to be offered later";
  }
  zmq_ctx_term(ctx);
}

TEST(ServiceReview, LsNamesTheNodeAndKeepsNonUtf8NamesValidJson) {
  HostDir d;
  Stream odd = source(d, "w\xff" "x", 1);  // a name is bytes: not UTF-8 here
  Stream fine = source(d, "caf\xc3\xa9", 2);  // UTF-8 "café"
  bridge::Service svc(options("delta", d));
  std::string json;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto r = ask_control(svc.control_socket(), {"LS"});
        json = r.size() == 2 ? r[1] : "";
        return json.find("caf") != std::string::npos && json.find("\"w") != std::string::npos;
      },
      10))
      << json;
  EXPECT_EQ(json.rfind("{\"schema_version\":1,\"node\":\"delta\",\"channels\":[", 0), 0U) << json;
  EXPECT_NE(json.find("\"name\":\"w\\ufffdx\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"caf\xc3\xa9\""), std::string::npos) << json;
  EXPECT_EQ(json.find('\xff'), std::string::npos) << "no byte that is not UTF-8";
}

TEST(ControlServerReview, AReplyLargerThanTheDefaultSocketBufferArrivesWhole) {
  HostDir d;
  const std::string big(600 * 1024, 'j');  // the default AF_UNIX send buffer holds ~208 KiB
  shmlink::bridge::detail::ControlServer server(
      d.socket(), [&](const std::vector<std::string>&) { return std::vector<std::string>{"OK", big}; },
      [](const std::vector<std::string>&) { return std::vector<std::string>{"OK"}; }, {"OPEN"});
  const auto r = ask_control(d.socket(), {"LS"});
  ASSERT_GE(r.size(), 2U) << "no reply";
  if (::geteuid() != 0 && r[0] == "ERR") {  // unprivileged, SO_SNDBUF stops at net.core.wmem_max
    EXPECT_EQ(r[1], "no_space") << r[2];
    return;
  }
  ASSERT_EQ(r.size(), 2U);
  EXPECT_EQ(r[1].size(), big.size());
}

TEST(ControlServerReview, ARequestWithoutAThreadIsAnsweredBusyAndServingGoesOn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the server runs as nobody under RLIMIT_NPROC";
  HostDir d;
  ASSERT_EQ(::chmod(d.path().c_str(), 0777), 0);
  shmlink::test::Shared<std::atomic<int>> state;  // 1 serving, 2 stop, <0 setup failed
  const std::string path = d.socket();
  const pid_t pid = shmlink::test::spawn([&] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 3;
    shmlink::bridge::detail::ControlServer server(
        path, [](const std::vector<std::string>&) { return std::vector<std::string>{"OK", "pong"}; },
        [](const std::vector<std::string>&) { return std::vector<std::string>{"OK", "opened"}; }, {"OPEN"});
    const rlimit none{1, 1};  // nobody already runs 2 threads here: no new one
    if (::setrlimit(RLIMIT_NPROC, &none) != 0) return 4;
    *state = 1;
    while (state->load() != 2) ::usleep(2000);
    server.stop();
    return 0;
  });
  ASSERT_TRUE(wait_until([&] { return state->load() != 0; }, 10));
  const auto r = ask_control(path, {"OPEN", "stream", "", "wfs", "100", "0"});
  ASSERT_GE(r.size(), 3U) << "no reply: the server died";
  EXPECT_EQ(r[0], "ERR");
  EXPECT_EQ(r[1], "busy") << r[2];
  EXPECT_EQ(ask_control(path, {"PING"}), (std::vector<std::string>{"OK", "pong"})) << "still serving";
  *state = 2;
  EXPECT_EQ(shmlink::test::reap(pid, 10), 0);
}

TEST(ControlServerReview, BindingNeverChangesTheProcessUmask) {
  // In a child: its umask is 0 and another thread makes files while servers bind; a umask
  // changed around bind(2) would show in their modes.
  const pid_t pid = shmlink::test::spawn([] {
    HostDir d;
    ::umask(0);
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0};
    std::thread maker([&] {
      const std::string f = d.path() + "/probe";
      while (!done.load()) {
        const int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0) continue;
        struct stat st{};
        if (::fstat(fd, &st) == 0 && (st.st_mode & 0777) != 0666) ++wrong;
        ::close(fd);
        ::unlink(f.c_str());
      }
    });
    for (int i = 0; i < 300 && wrong.load() == 0; ++i) {
      shmlink::bridge::detail::ControlServer server(
          d.socket(), [](const std::vector<std::string>&) { return std::vector<std::string>{"OK"}; },
          [](const std::vector<std::string>&) { return std::vector<std::string>{"OK"}; }, {"OPEN"});
    }
    done = true;
    maker.join();
    return wrong.load() == 0 ? 0 : 1;
  });
  EXPECT_EQ(shmlink::test::reap(pid, 30), 0) << "a file was made under another umask";
}

}  // namespace
