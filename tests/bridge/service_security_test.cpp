// SPDX-License-Identifier: MIT
// CURVE inside the bridge service (issue 22; docs/bridge.md, "Keys"; docs/design/bridge.md,
// "Threat model"): services whose keys trust each other exchange catalogues and data; an
// untrusted key is refused (by the ZAP handler, counted) and gets nothing; a service without keys
// and one with keys never exchange anything and say why (PeerStatus::problem, STATUS); a replica
// data connection with a key the owner does not trust is refused; a trusted key cannot speak for
// another node; `shmlink bridge serve --keys`.
// Services run in this process, each with its own stream directory, key directory, ZeroMQ
// context and ephemeral loopback port, as hosts would; sockets, files and the CLI are real.
#include "bridge/link.hpp"
#include "cli_run.hpp"
#include "stream_frames.hpp"
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/bridge_security.hpp>
#include <shmlink/bridge_service.hpp>
#include <shmlink/remote.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <zmq.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
using shmlink::Dtype;
using shmlink::Stream;
using shmlink::test::frame_of;
using shmlink::test::wait_until;

constexpr bridge::LinkTiming kFast{std::chrono::milliseconds(50), std::chrono::milliseconds(300)};

/// A private directory under /dev/shm (a host's streams, or its keys), removed at the end.
class Dir : public shmlink::test::TempStreamDir {
 public:
  [[nodiscard]] std::string stream(const std::string& name) const { return path() + "/" + name + ".im.shm"; }
};

/// Makes node `node`'s key pair in `keys`; returns its public key.
std::string make_keys(const Dir& keys, const std::string& node) {
  const bridge::CurveKeys k = bridge::generate_keys();
  bridge::write_keys(keys.path(), node, k);
  return k.public_z85;
}

/// Makes `keys` trust `public_z85` as node `node` (peers/NODE.pub, as a copied NODE.pub).
void trust(const Dir& keys, const std::string& node, const std::string& public_z85) {
  const std::string path = keys.path() + "/peers/" + node + ".pub";
  std::ofstream(path) << "public " + public_z85 + "\n";
  ::chmod(path.c_str(), 0644);
}

/// Options of a service in this process serving `streams` on an ephemeral loopback port, with
/// the keys of `keys` (none when null).
bridge::ServiceOptions options(const std::string& node, const Dir& streams, const Dir* keys) {
  bridge::ServiceOptions o;
  o.name = node;
  o.port = 0;
  o.bind = "127.0.0.1";
  o.multicast = false;
  o.directory = streams.path();
  o.timing = kFast;
  if (keys != nullptr) o.keys.directory = keys->path();
  return o;
}

std::string at(const bridge::Service& s, const std::string& node = {}) {
  return (node.empty() ? "" : node + "@") + "127.0.0.1:" + std::to_string(s.port());
}

/// A frame of 12 floats first, first + 1, ...
std::vector<float> ramp(float first) { return shmlink::test::ramp(12, first); }

/// A 4x3 f32 source stream `name` in `dir` with one frame written.
Stream source(const Dir& dir, const std::string& name) {
  Stream s = Stream::create(dir.stream(name), shmlink::test::spec_of({4, 3}, Dtype::f32));
  EXPECT_TRUE(s.write(std::span<const float>(ramp(1))).ok());
  return s;
}

/// True when `s`'s catalogue holds a channel of `node`.
bool knows(const bridge::Service& s, const std::string& node) {
  for (const bridge::CatalogueEntry& c : s.catalogue())
    if (c.node == node) return true;
  return false;
}

/// The first peer's problem (empty when it has none).
std::string problem(const bridge::Service& s) {
  const auto p = s.peers();
  return p.empty() ? std::string() : p[0].problem;
}

/// STATUS of the service whose control socket is `socket`, through the library's client.
std::string status_of(const std::string& socket) {
  ::setenv("SHMLINK_BRIDGE_SOCKET", socket.c_str(), 1);
  std::string out;
  try {
    const auto r = shmlink::remote::request({"STATUS"}, 10s);
    out = r.empty() ? std::string() : r[0];
  } catch (const shmlink::Error& e) {
    out = e.what();
  }
  ::unsetenv("SHMLINK_BRIDGE_SOCKET");
  return out;
}

TEST(ServiceSecurity, TrustingServicesShareCatalogueOpenAndData) {
  Dir a, b, ka, kb;
  const std::string pa = make_keys(ka, "alpha"), pb = make_keys(kb, "beta");
  trust(ka, "beta", pb);
  trust(kb, "alpha", pa);
  Dir spare;  // a second trusted key, tried first (peers are sorted by name) and not beta's
  trust(ka, "aaa", make_keys(spare, "aaa"));
  Stream src = source(b, "wfs");
  bridge::Service beta(options("beta", b, &kb));
  auto oa = options("alpha", a, &ka);
  oa.peers = {at(beta)};  // no node: alpha tries its trusted keys in turn
  bridge::Service alpha(oa);

  ASSERT_TRUE(wait_until([&] { return knows(alpha, "beta"); }, 15)) << alpha.last_error();
  const std::string path = alpha.open("stream", "beta", "wfs", 5000ms, false);
  EXPECT_EQ(path, a.stream("wfs"));
  EXPECT_EQ(frame_of(path), ramp(1));
  ASSERT_TRUE(src.write(std::span<const float>(ramp(40))).ok());
  EXPECT_TRUE(wait_until([&] { return frame_of(path) == ramp(40); }, 10));
  {  // a write on the replica goes back to the source, over CURVE too
    Stream rep = Stream::open(path);
    ASSERT_TRUE(rep.write(std::span<const float>(ramp(900))).ok());
  }
  EXPECT_TRUE(wait_until([&] { return frame_of(b.stream("wfs")) == ramp(900); }, 10));

  const auto peers = alpha.peers();
  ASSERT_EQ(peers.size(), 1U);
  EXPECT_EQ(peers[0].node, "beta");
  EXPECT_TRUE(peers[0].link_up);
  EXPECT_EQ(peers[0].problem, "");
  EXPECT_TRUE(alpha.stats().curve);
  EXPECT_EQ(beta.stats().handshakes_refused, 0U) << "alpha's key is trusted: " << beta.stats().last_refusal;
  EXPECT_NE(status_of(alpha.control_socket()).find("\"curve\":true"), std::string::npos);
}

TEST(ServiceSecurity, AnUntrustedKeyIsRefusedAndGetsNothing) {
  Dir a, b, ka, kb, other;
  make_keys(ka, "alpha");
  const std::string pb = make_keys(kb, "beta");
  trust(ka, "beta", pb);
  trust(kb, "other", make_keys(other, "other"));  // beta trusts someone, not alpha
  Stream src = source(b, "wfs");
  bridge::Service beta(options("beta", b, &kb));
  auto oa = options("alpha", a, &ka);
  oa.peers = {at(beta, "beta")};
  bridge::Service alpha(oa);

  ASSERT_TRUE(wait_until([&] { return beta.stats().handshakes_refused > 0 && !problem(alpha).empty(); }, 15))
      << alpha.last_error();
  EXPECT_NE(problem(alpha).find("refused our key"), std::string::npos) << problem(alpha);
  EXPECT_NE(beta.stats().last_refusal.find("not trusted"), std::string::npos) << beta.stats().last_refusal;
  EXPECT_FALSE(alpha.peers()[0].link_up);
  EXPECT_FALSE(knows(alpha, "beta")) << "no catalogue";
  EXPECT_THROW((void)alpha.open("stream", "beta", "wfs", 300ms, false), shmlink::Error);
  EXPECT_FALSE(std::filesystem::exists(a.stream("wfs"))) << "no data";
  const std::string st = status_of(alpha.control_socket());
  EXPECT_NE(st.find("\"problem\":\"the peer refused our key"), std::string::npos) << st;
  EXPECT_EQ(status_of(beta.control_socket()).find("\"handshakes_refused\":0,"), std::string::npos);
}

TEST(ServiceSecurity, ServicesWithAndWithoutKeysNeverTalkAndSayWhy) {
  Dir p, k, q, kk, stray;
  source(p, "plain_wfs");
  source(k, "keyed_wfs");
  make_keys(kk, "keyed");
  trust(kk, "plain", make_keys(stray, "plain"));  // the key it would expect of 'plain'
  bridge::Service plain(options("plain", p, nullptr));
  auto ok = options("keyed", k, &kk);
  ok.peers = {at(plain, "plain")};  // keys -> no keys
  bridge::Service keyed(ok);
  auto oq = options("query", q, nullptr);
  oq.peers = {at(keyed)};  // no keys -> keys
  bridge::Service query(oq);

  const auto mismatch = [](const std::string& why) { return why.find("different security") != std::string::npos; };
  ASSERT_TRUE(wait_until([&] { return mismatch(problem(keyed)) && mismatch(problem(query)); }, 15))
      << "keyed: " << problem(keyed) << "; query: " << problem(query);
  EXPECT_FALSE(knows(keyed, "plain"));
  EXPECT_FALSE(knows(query, "keyed"));
  EXPECT_FALSE(keyed.peers()[0].link_up);
  EXPECT_FALSE(query.peers()[0].link_up);
  EXPECT_THROW((void)query.open("stream", "", "keyed_wfs", 300ms, false), shmlink::Error);
  EXPECT_GT(keyed.stats().handshakes_failed, 0U);
  EXPECT_FALSE(plain.stats().curve);
#ifdef SHMLINK_CLI_PATH
  ::setenv("SHMLINK_BRIDGE_SOCKET", query.control_socket().c_str(), 1);
  const auto r = shmlink::test::run_cli(SHMLINK_CLI_PATH, {"bridge", "status"}, q.path() + "/status.log");
  ::unsetenv("SHMLINK_BRIDGE_SOCKET");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("different security"), std::string::npos) << "bridge status says why: " << r.out;
#endif
}

TEST(ServiceSecurity, AReplicaDataConnectionWithAnUntrustedKeyIsRefused) {
  Dir a, b, c, ka, kb, km;
  const std::string pa = make_keys(ka, "alpha"), pb = make_keys(kb, "beta");
  trust(ka, "beta", pb);
  trust(kb, "alpha", pa);
  make_keys(km, "mallory");
  trust(km, "beta", pb);  // mallory knows beta's public key, beta does not trust mallory
  Stream src = source(b, "wfs");
  bridge::Service beta(options("beta", b, &kb));
  auto oa = options("alpha", a, &ka);
  oa.peers = {at(beta, "beta")};
  bridge::Service alpha(oa);
  ASSERT_TRUE(wait_until([&] { return knows(alpha, "beta"); }, 15)) << alpha.last_error();
  const std::string path = alpha.open("stream", "beta", "wfs", 5000ms, true);
  const auto held = alpha.replicas();
  ASSERT_EQ(held.size(), 1U);
  ASSERT_FALSE(held[0].endpoint.empty());

  const auto before = beta.stats().handshakes_refused;
  bridge::ReplicaOptions ro;
  ro.timing = kFast;
  ro.local_name = c.stream("wfs");
  ro.origin = "beta";
  ro.security = bridge::make_security(nullptr, km.path(), "mallory");
  ro.server_key = pb;
  bridge::Replica stolen("wfs", held[0].endpoint, ro);  // the owner's data port, an untrusted key
  EXPECT_TRUE(wait_until([&] { return beta.stats().handshakes_refused > before; }, 15)) << beta.stats().last_refusal;
  ASSERT_TRUE(src.write(std::span<const float>(ramp(70))).ok());
  EXPECT_TRUE(wait_until([&] { return frame_of(path) == ramp(70); }, 10)) << "the trusted replica still follows";
  EXPECT_FALSE(stolen.wait_first_frame(0ms));
  EXPECT_EQ(stolen.stats().frames_published, 0U);
  stolen.stop();
}

TEST(ServiceSecurity, ATrustedKeySpeaksOnlyForItsOwnNode) {
  Dir b, ka, kb;
  const std::string pa = make_keys(ka, "alpha"), pb = make_keys(kb, "beta");
  trust(ka, "beta", pb);
  trust(kb, "alpha", pa);
  trust(kb, "gamma", make_keys(ka, "gamma"));  // gamma is trusted too, with a key alpha does not hold
  bridge::Service beta(options("beta", b, &kb));
  const auto alpha_keys = bridge::make_security(nullptr, ka.path(), "alpha");
  void* ctx = zmq_ctx_new();
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  int linger = 0, rcvtimeo = 10000;
  zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
  bridge::apply_client(dealer, *alpha_keys, pb, "the test's dealer");
  ASSERT_EQ(zmq_connect(dealer, ("tcp://" + at(beta)).c_str()), 0);
  namespace wire = bridge::wire;
  // Alpha's key, speaking as alpha: answered with beta's hello.
  ASSERT_TRUE(bridge::detail::send_message(dealer, {}, "alpha", wire::make_header(wire::Kind::service_hello)));
  char topic[16] = {};
  const int n = zmq_recv(dealer, topic, sizeof topic - 1, 0);
  EXPECT_EQ(std::string(topic, n > 0 ? static_cast<std::size_t>(n) : 0U), "beta");
  // Alpha's key, speaking as gamma: refused and counted.
  ASSERT_TRUE(bridge::detail::send_message(dealer, {}, "gamma", wire::make_header(wire::Kind::catalogue_request)));
  EXPECT_TRUE(wait_until([&] { return beta.last_error().find("sends as node 'gamma'") != std::string::npos; }, 10))
      << beta.last_error();
  EXPECT_GE(beta.stats().refused, 1U);
  zmq_close(dealer);
  zmq_ctx_term(ctx);
}

#ifdef SHMLINK_CLI_PATH
TEST(BridgeServeCli, KeysServeATrustingPeerAndABadKeyFileIsNamed) {
  Dir g, d, kg, kd;
  const std::string pg = make_keys(kg, "gamma"), pd = make_keys(kd, "delta");
  trust(kg, "delta", pd);
  trust(kd, "gamma", pg);
  source(g, "wfs");
  const std::string log = g.path() + "/serve.log";
  const std::vector<std::string> args{"bridge", "serve", "--name", "gamma", "--port", "0", "--bind", "127.0.0.1",
                                      "--no-multicast", "--heartbeat-ms", "50", "--keys", kg.path(), "--dir", g.path()};
  const pid_t pid = shmlink::test::spawn([&] { return shmlink::test::exec_cli(SHMLINK_CLI_PATH, args, log); });
  const std::string socket = g.path() + "/.shmlink-bridge.sock";
  std::string st;
  const bool up = wait_until([&] { return (st = status_of(socket)).find("\"curve\":true") != std::string::npos; }, 15);
  std::string text;
  if (up) {
    const auto colon = st.find("\"port\":");
    auto od = options("delta", d, &kd);
    od.peers = {"gamma@127.0.0.1:" + std::to_string(std::stoi(st.substr(colon + 7)))};
    bridge::Service delta(od);
    EXPECT_TRUE(wait_until([&] { return knows(delta, "gamma"); }, 15)) << delta.last_error();
    if (knows(delta, "gamma")) {
      EXPECT_EQ(frame_of(delta.open("stream", "gamma", "wfs", 5000ms, false)), ramp(1));
    }
  }
  ::kill(pid, SIGTERM);
  const int rc = shmlink::test::reap(pid, 10);
  std::ifstream in(log);
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  ASSERT_TRUE(up) << st << "\n" << text;
  EXPECT_EQ(rc, 0) << text;

  // A secret key file others can read: refused before anything is bound (exit 4, naming it).
  ::chmod((kg.path() + "/gamma.key").c_str(), 0644);
  const auto bad = shmlink::test::run_cli(SHMLINK_CLI_PATH, args, log);
  EXPECT_EQ(bad.rc, 4) << bad.out;
  EXPECT_NE(bad.out.find(kg.path() + "/gamma.key"), std::string::npos) << bad.out;
  // No key pair for that node: not found (exit 3), naming the file.
  auto other = args;
  other[3] = "epsilon";
  const auto missing = shmlink::test::run_cli(SHMLINK_CLI_PATH, other, log);
  EXPECT_EQ(missing.rc, 3) << missing.out;
  EXPECT_NE(missing.out.find(kg.path() + "/epsilon.key"), std::string::npos) << missing.out;
}
#endif

}  // namespace
