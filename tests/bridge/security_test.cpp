// SPDX-License-Identifier: MIT
// CURVE on the bridge (issue 22; docs/design/bridge.md, "Threat model"): key files and their
// modes (`shmlink bridge keygen`, load_keys), a Publisher and a Replica that trust each other
// replicate over CURVE, an untrusted key, a plaintext client or a wrong server key get nothing,
// a bridged queue delivers over CURVE, and hostile ZAP requests are refused without harm.
// Sockets are real (loopback TCP, a unix socket for the queue); both ends live in this process,
// each with its own ZeroMQ context, as two hosts would.
#include "bridge/security.hpp"
#include "cli_run.hpp"
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/bridge_queue.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>
#include <zmq.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
using shmlink::Dtype;
using shmlink::Errc;
using shmlink::Stream;
using shmlink::test::wait_until;

constexpr bridge::LinkTiming kFast{std::chrono::milliseconds(50), std::chrono::milliseconds(300)};
/// How long a refused client is given to get a first frame (it must not get one).
constexpr auto kNothingWithin = 400ms;

/// A private directory under /dev/shm (keys, streams, queues), removed at the end.
class TempDir : public shmlink::test::TempStreamDir {
 public:
  [[nodiscard]] std::string operator/(const std::string& rest) const { return path() + "/" + rest; }
};

unsigned mode_of(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return 07777;
  return static_cast<unsigned>(st.st_mode & 07777);
}

void copy_file(const std::string& from, const std::string& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

/// Key directories of two nodes, "owner" and "sub"; each trusts the other when `trust`.
struct TwoNodes {
  TempDir owner_dir, sub_dir;
  explicit TwoNodes(bool trust = true) {
    bridge::write_keys(owner_dir.path(), "owner", bridge::generate_keys());
    bridge::write_keys(sub_dir.path(), "sub", bridge::generate_keys());
    copy_file(owner_dir / "owner.pub", sub_dir / "peers/owner.pub");  // the client must know the server's key
    if (trust) copy_file(sub_dir / "sub.pub", owner_dir / "peers/sub.pub");
  }
  [[nodiscard]] std::shared_ptr<bridge::Security> owner() const {
    return bridge::make_security(nullptr, owner_dir.path(), "owner");
  }
  [[nodiscard]] std::shared_ptr<bridge::Security> sub() const {
    return bridge::make_security(nullptr, sub_dir.path(), "sub");
  }
};

std::vector<float> ramp(std::size_t n, float first) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = first + static_cast<float>(i);
  return v;
}

/// A source stream in `dir` written once, and a Publisher on it with `security`.
struct Owner {
  Stream src;
  bridge::Publisher pub;
  Owner(const TempDir& dir, std::shared_ptr<bridge::Security> security)
      : src(Stream::create(dir / "wfs.im.shm", shmlink::test::spec_of({8, 4}, Dtype::f32))),
        pub(dir / "wfs.im.shm", "tcp://127.0.0.1:*", options(std::move(security))) {
    if (!src.write(std::span<const float>(ramp(32, 1))).ok()) throw std::runtime_error("writing the source");
  }
  static bridge::PublisherOptions options(std::shared_ptr<bridge::Security> security) {
    bridge::PublisherOptions o;
    o.timing = kFast;
    o.security = std::move(security);
    return o;
  }
};

bridge::ReplicaOptions replica_options(const TempDir& dir, std::shared_ptr<bridge::Security> security,
                                       std::string server_key) {
  bridge::ReplicaOptions o;
  o.timing = kFast;
  o.local_name = dir / "wfs.im.shm";
  o.reconnect_min = 20ms;
  o.reconnect_max = 100ms;
  o.security = std::move(security);
  o.server_key = std::move(server_key);
  return o;
}

// ---- key files -------------------------------------------------------------------------------

#ifdef SHMLINK_CLI_PATH  // the CLI is not built in every preset (tsan builds only what its labels run)
TEST(BridgeSecurity, KeygenWritesKeyFilesWithTheirModesAndRefusesToOverwrite) {
  TempDir t;
  const std::string dir = t / "keys";
  const std::string log = t / "keygen.log";
  auto r = shmlink::test::run_cli(SHMLINK_CLI_PATH, {"bridge", "keygen", "--dir", dir, "--name", "rtc1"}, log);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(mode_of(dir), 0700U);
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/peers"));
  EXPECT_EQ(mode_of(dir + "/rtc1.key"), 0600U);
  EXPECT_EQ(mode_of(dir + "/rtc1.pub"), 0644U);
  EXPECT_NE(r.out.find(dir + "/peers"), std::string::npos) << "says where to copy the public key: " << r.out;
  const bridge::CurveKeys keys = bridge::load_keys(dir, "rtc1");
  EXPECT_EQ(keys.public_z85.size(), 40U);
  EXPECT_NE(r.out.find(keys.public_z85), std::string::npos) << r.out;
  std::ifstream pub(dir + "/rtc1.pub");
  std::string line;
  std::getline(pub, line);
  EXPECT_EQ(line, "public " + keys.public_z85);

  r = shmlink::test::run_cli(SHMLINK_CLI_PATH, {"bridge", "keygen", "--dir", dir, "--name", "rtc1"}, log);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find(dir + "/rtc1.key"), std::string::npos) << "names the file it refuses to replace: " << r.out;
  EXPECT_EQ(bridge::load_keys(dir, "rtc1").secret_z85, keys.secret_z85) << "the key pair was replaced";

  r = shmlink::test::run_cli(SHMLINK_CLI_PATH, {"bridge", "keygen", "--dir", dir, "--name", "rtc1", "--force"}, log);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(bridge::load_keys(dir, "rtc1").secret_z85, keys.secret_z85);
  EXPECT_EQ(mode_of(dir + "/rtc1.key"), 0600U);
}
#endif

TEST(BridgeSecurity, LoadKeysRefusesASecretKeyFileOthersCanRead) {
  TempDir t;
  bridge::write_keys(t.path(), "n1", bridge::generate_keys());
  ASSERT_EQ(::chmod((t / "n1.key").c_str(), 0644), 0);
  try {
    (void)bridge::load_keys(t.path(), "n1");
    FAIL() << "a 0644 secret key file was accepted";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::permission);
    EXPECT_NE(std::string(e.what()).find(t / "n1.key"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0644"), std::string::npos) << e.what();
  }
  ASSERT_EQ(::chmod((t / "n1.key").c_str(), 0600), 0);
  EXPECT_NO_THROW((void)bridge::load_keys(t.path(), "n1"));
}

TEST(BridgeSecurity, MalformedTrustedKeyFileIsRefusedNamingIt) {
  TempDir t;
  bridge::write_keys(t.path(), "n1", bridge::generate_keys());
  copy_file(t / "n1.pub", t / "peers/good.pub");
  EXPECT_EQ(bridge::load_trusted(t.path()).size(), 1U);
  std::ofstream(t / "peers/bad.pub") << "public not-a-key\n";
  try {
    (void)bridge::load_trusted(t.path());
    FAIL() << "a malformed peers/*.pub was accepted";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find(t / "peers/bad.pub"), std::string::npos) << e.what();
  }
}

// ---- streams over CURVE ------------------------------------------------------------------------

TEST(BridgeSecurity, TrustedReplicaReplicatesOverCurve) {
  TwoNodes n;
  TempDir a, b;
  auto owner_sec = n.owner();
  Owner o(a, owner_sec);
  auto sub_sec = n.sub();
  bridge::Replica r("wfs", o.pub.endpoint(),
                    replica_options(b, sub_sec, bridge::peer_public_key(*sub_sec, "owner")));
  ASSERT_TRUE(r.wait_first_frame(5s)) << r.last_error() << " / " << owner_sec->stats().last_refusal;
  Stream rep = Stream::open(b / "wfs.im.shm");
  std::vector<float> got(32);
  ASSERT_TRUE(rep.read_copy(std::as_writable_bytes(std::span<float>(got))).ok());
  EXPECT_EQ(got, ramp(32, 1));
  EXPECT_EQ(owner_sec->refused(), 0U);
  EXPECT_GE(owner_sec->stats().accepted, 1U);
}

TEST(BridgeSecurity, UntrustedReplicaGetsNothingAndIsCounted) {
  TwoNodes n(/*trust=*/false);
  TempDir a, b;
  auto owner_sec = n.owner();
  Owner o(a, owner_sec);
  auto sub_sec = n.sub();
  bridge::Replica r("wfs", o.pub.endpoint(),
                    replica_options(b, sub_sec, bridge::peer_public_key(*sub_sec, "owner")));
  EXPECT_FALSE(r.wait_first_frame(kNothingWithin));
  ASSERT_TRUE(wait_until([&] { return owner_sec->refused() >= 1; }, 5));
  EXPECT_NE(owner_sec->stats().last_refusal.find(sub_sec->keys().public_z85), std::string::npos)
      << owner_sec->stats().last_refusal;
  EXPECT_EQ(o.pub.stats().subscribers, 0U);
  EXPECT_EQ(o.pub.stats().frames_sent, 0U);
}

TEST(BridgeSecurity, PlaintextReplicaAgainstACurvePublisherGetsNothing) {
  TwoNodes n;
  TempDir a, b;
  Owner o(a, n.owner());
  bridge::Replica r("wfs", o.pub.endpoint(), replica_options(b, nullptr, ""));
  EXPECT_FALSE(r.wait_first_frame(kNothingWithin));
  EXPECT_EQ(o.pub.stats().frames_sent, 0U);
  EXPECT_FALSE(std::filesystem::exists(b / "wfs.im.shm"));
}

TEST(BridgeSecurity, ClientWithAWrongServerKeyGetsNothing) {
  TwoNodes n;
  TempDir a, b;
  Owner o(a, n.owner());
  auto sub_sec = n.sub();
  const std::string impostor = bridge::generate_keys().public_z85;  // not the owner's
  bridge::Replica r("wfs", o.pub.endpoint(), replica_options(b, sub_sec, impostor));
  EXPECT_FALSE(r.wait_first_frame(kNothingWithin));
  EXPECT_EQ(o.pub.stats().frames_sent, 0U);
  try {
    bridge::Replica bad("wfs", o.pub.endpoint(), replica_options(b, sub_sec, "short"));
    ADD_FAILURE() << "a server key that is not Z85 was taken";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("stream 'wfs'"), std::string::npos) << e.what();
  }
  r.stop();
  // The same client with the owner's real key is let in: the key made the difference.
  bridge::Replica right("wfs", o.pub.endpoint(),
                        replica_options(b, sub_sec, bridge::peer_public_key(*sub_sec, "owner")));
  EXPECT_TRUE(right.wait_first_frame(5s)) << right.last_error();
}

// ---- a queue over CURVE ------------------------------------------------------------------------

TEST(BridgeSecurity, BridgedQueueDeliversOverCurve) {
  TwoNodes n;
  TempDir a, b;
  shmlink::QueueSpec spec;
  spec.capacity = 16;
  spec.max_values = 2;
  shmlink::Queue src = shmlink::Queue::create(a / "q.queue.shm", spec);
  constexpr std::int64_t kSamples = 20;  // more than the capacity: the link must carry them
  std::atomic<bool> stop{false};
  bridge::QueueReceiverOptions ro;
  ro.queue = b / "q.queue.shm";
  ro.endpoint = "ipc://" + (b / "q.sock");
  ro.security = n.owner();
  bridge::QueueSenderOptions so;
  so.queue = a / "q.queue.shm";
  so.endpoint = ro.endpoint;
  so.quiet_after = 100ms;
  so.security = n.sub();
  so.server_key = bridge::peer_public_key(*so.security, "owner");
  auto rx = bridge::QueueReceiver::open(ro);
  auto tx = bridge::QueueSender::open(so);
  std::thread rx_thread([&] { (void)rx.run(stop); });
  std::thread tx_thread([&] { (void)tx.run(stop); });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread &a, &b;
    ~Joiner() {
      stop = true;
      a.join();
      b.join();
    }
  } joiner{stop, rx_thread, tx_thread};
  std::int64_t pushed = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        shmlink::Sample s;
        s.flags = shmlink::kSampleHasData;
        s.values = {shmlink::SignalValue::of(pushed)};
        while (pushed < kSamples && src.try_push(s).ok()) s.values[0] = shmlink::SignalValue::of(++pushed);
        return pushed == kSamples;
      },
      10));
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(b / "q.queue.shm"); }, 10))
      << "no queue on the receiving side; refusals: " << ro.security->stats().last_refusal;
  shmlink::Queue dst = shmlink::Queue::open(b / "q.queue.shm");
  shmlink::Sample s;
  for (std::int64_t i = 0; i < kSamples; ++i) {
    ASSERT_TRUE(dst.pop(s, 10s).ok()) << "sample " << i;
    ASSERT_EQ(s.values.at(0).i, i);
  }
  EXPECT_EQ(ro.security->refused(), 0U);
}

// ---- the ZAP handler ---------------------------------------------------------------------------

/// Sends `frames` on a REQ socket and returns the reply's frames (empty after 5 s without one).
std::vector<std::string> zap_call(void* req, const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i)
    ::zmq_send(req, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0);
  std::vector<std::string> out;
  zmq_pollitem_t item{req, 0, ZMQ_POLLIN, 0};
  if (::zmq_poll(&item, 1, 5000) <= 0) return out;
  int more = 1;
  while (more != 0) {
    zmq_msg_t m;
    ::zmq_msg_init(&m);
    if (::zmq_msg_recv(&m, req, 0) < 0) break;
    out.emplace_back(static_cast<const char*>(::zmq_msg_data(&m)), ::zmq_msg_size(&m));
    more = ::zmq_msg_more(&m);
    ::zmq_msg_close(&m);
  }
  return out;
}

TEST(BridgeSecurity, HostileZapRequestsAreRefusedAndTheHandlerKeepsAnswering) {
  TwoNodes n;
  void* ctx = ::zmq_ctx_new();
  {
    auto sec = bridge::make_security(ctx, n.owner_dir.path(), "owner");  // serves ZAP in ctx
    void* req = ::zmq_socket(ctx, ZMQ_REQ);
    const int zero = 0;
    ::zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
    ASSERT_EQ(::zmq_connect(req, "inproc://zeromq.zap.01"), 0);
    std::string trusted(32, '\0');
    ASSERT_NE(::zmq_z85_decode(reinterpret_cast<std::uint8_t*>(trusted.data()),
                               bridge::load_keys(n.sub_dir.path(), "sub").public_z85.c_str()),
              nullptr);
    const std::string unknown(32, 'x');
    const std::vector<std::vector<std::string>> hostile = {
        {"garbage"},
        {"1.0", "id"},
        {"9.9", "id", "shmlink", "10.0.0.9", "", "CURVE", trusted},
        {"1.0", "id", "shmlink", "10.0.0.9", "", "CURVE", "short"},
        {"1.0", "id", "shmlink", "10.0.0.9", "", "CURVE", unknown},
        {"1.0", "id", "shmlink", "10.0.0.9", "", "CURVE"},
        {"1.0", "id", "shmlink", "10.0.0.9", "", "NULL"},
        {"1.0", "id", "shmlink", "10.0.0.9", "", "PLAIN", "user", "password"},
        {"1.0", "id", "shmlink", "10.0.0.9", "", "CURVE", trusted, "extra"},
        std::vector<std::string>(40, "1.0"),
        {"1.0", "id", "shmlink", std::string(5000, '\x01'), "", "CURVE", trusted},
    };
    for (std::size_t i = 0; i < hostile.size(); ++i) {
      const auto reply = zap_call(req, hostile[i]);
      ASSERT_EQ(reply.size(), 6U) << "request " << i << " got no proper reply";
      EXPECT_EQ(reply[0], "1.0");
      EXPECT_EQ(reply[2], "400") << "request " << i << " was accepted: " << reply[3];
    }
    EXPECT_EQ(sec->refused(), hostile.size());
    EXPECT_NE(sec->stats().last_refusal.find("peer "), std::string::npos);
    const auto ok = zap_call(req, {"1.0", "7", "shmlink", "127.0.0.1", "", "CURVE", trusted});
    ASSERT_EQ(ok.size(), 6U);
    EXPECT_EQ(ok[1], "7");
    EXPECT_EQ(ok[2], "200");
    EXPECT_EQ(ok[4], "sub") << "the user id is the peer's node name";
    EXPECT_EQ(sec->stats().accepted, 1U);
    ::zmq_close(req);
  }
  EXPECT_EQ(::zmq_ctx_term(ctx), 0);
}

TEST(BridgeSecurity, ZapHandlerEndsWithItsContext) {
  TwoNodes n;
  auto sec = n.owner();
  void* ctx = ::zmq_ctx_new();
  sec->serve(ctx);
  sec->serve(ctx);  // idempotent
  EXPECT_EQ(::zmq_ctx_term(ctx), 0) << "the handler closed its socket when the context ended";
  void* again = ::zmq_ctx_new();
  EXPECT_NO_THROW(sec->serve(again));
  EXPECT_EQ(::zmq_ctx_term(again), 0);
}

}  // namespace
