// SPDX-License-Identifier: MIT
// A Publisher seen from a raw ZeroMQ DEALER (issue 22): nothing travels without a subscriber,
// a heartbeat subscribes and gets stream_meta then the newest frame once per credit, and hostile
// or wrong messages are refused, counted and named, without stopping the publisher.
#include "bridge/wire.hpp"
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>
#include <zmq.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
namespace wire = shmlink::bridge::wire;
using shmlink::test::wait_until;

/// A raw DEALER connected to a publisher, for sending hand-made messages.
class RawPeer {
 public:
  explicit RawPeer(const std::string& endpoint) : ctx_(::zmq_ctx_new()), s_(::zmq_socket(ctx_, ZMQ_DEALER)) {
    const int zero = 0;
    ::zmq_setsockopt(s_, ZMQ_LINGER, &zero, sizeof zero);
    ::zmq_connect(s_, endpoint.c_str());
  }
  ~RawPeer() {
    ::zmq_close(s_);
    ::zmq_ctx_term(ctx_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  /// Sends the parts as one message.
  void send(const std::vector<std::vector<std::byte>>& parts) {
    for (std::size_t i = 0; i < parts.size(); ++i)
      ::zmq_send(s_, parts[i].data(), parts[i].size(), i + 1 < parts.size() ? ZMQ_SNDMORE : 0);
  }
  void send(std::string_view topic, wire::Header h, std::vector<std::byte> payload = {}) {
    h.payload_bytes = payload.size();
    const auto head = wire::encode(h);
    std::vector<std::vector<std::byte>> parts{bytes(topic), {head.begin(), head.end()}};
    if (!payload.empty()) parts.push_back(std::move(payload));
    send(parts);
  }
  /// Receives one message within `timeout`; empty when none came.
  std::vector<std::vector<std::byte>> recv(std::chrono::milliseconds timeout = 5s) {
    std::vector<std::vector<std::byte>> parts;
    zmq_pollitem_t item{s_, 0, ZMQ_POLLIN, 0};
    if (::zmq_poll(&item, 1, static_cast<long>(timeout.count())) <= 0) return parts;
    int more = 1;
    while (more != 0) {
      zmq_msg_t m;
      ::zmq_msg_init(&m);
      if (::zmq_msg_recv(&m, s_, 0) < 0) break;
      const auto* p = static_cast<const std::byte*>(::zmq_msg_data(&m));
      parts.emplace_back(p, p + ::zmq_msg_size(&m));
      more = ::zmq_msg_more(&m);
      ::zmq_msg_close(&m);
    }
    return parts;
  }
  static std::vector<std::byte> bytes(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
  }

 private:
  void* ctx_;
  void* s_;
};

wire::Header heartbeat(std::uint32_t flags) {
  wire::Header h = wire::make_header(wire::Kind::heartbeat);
  h.flags = flags;
  return h;
}

/// Receives until a message of `kind` (skipping heartbeats); its decoded header in `out`.
bool recv_kind(RawPeer& peer, wire::Kind kind, wire::Header& out, std::vector<std::byte>* payload = nullptr) {
  for (int i = 0; i < 50; ++i) {
    auto parts = peer.recv();
    if (parts.size() < 2) return false;
    const std::uint64_t size = parts.size() == 3 ? parts[2].size() : 0;
    if (wire::decode(parts[1], size, out) != wire::DecodeError::ok) return false;
    if (out.kind == static_cast<std::uint16_t>(kind)) {
      if (payload != nullptr) *payload = parts.size() == 3 ? parts[2] : std::vector<std::byte>{};
      return true;
    }
  }
  return false;
}

TEST(BridgePublisher, SendsOnlyToSubscribersOnceEachFrameAndRefusesHostileMessages) {
  shmlink::test::TempStreamDir dir;
  auto src = shmlink::Stream::create("ao", shmlink::test::spec_of({4}, shmlink::Dtype::u32));
  const std::vector<std::uint32_t> one{1, 2, 3, 4}, two{5, 6, 7, 8};
  ASSERT_TRUE(src.write(std::span<const std::uint32_t>(one)).ok());

  bridge::PublisherOptions o;
  o.timing = {std::chrono::milliseconds(50), std::chrono::milliseconds(2000)};
  bridge::Publisher pub("ao", "tcp://127.0.0.1:*", o);
  ASSERT_EQ(pub.endpoint().rfind("tcp://127.0.0.1:", 0), 0U) << pub.endpoint();
  // Nobody subscribed: frames are written, none is sent.
  ASSERT_TRUE(src.write(std::span<const std::uint32_t>(two)).ok());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(pub.stats().frames_sent, 0U);
  EXPECT_EQ(pub.stats().subscribers, 0U);

  RawPeer peer(pub.endpoint());
  // Hostile messages first: each refused and named, the publisher carries on.
  auto bad = wire::encode(heartbeat(wire::kHeartbeatWant));
  bad[0] = std::byte{0};
  peer.send({RawPeer::bytes("ao"), {bad.begin(), bad.end()}});
  peer.send({RawPeer::bytes("ao")});                                   // 1 part
  peer.send("other", heartbeat(wire::kHeartbeatWant));                 // wrong topic
  wire::Header frame = wire::make_header(wire::Kind::stream_frame);   // not a subscriber's kind
  frame.dtype = 5;
  frame.naxis = 1;
  frame.size[0] = 4;
  peer.send("ao", frame, std::vector<std::byte>(16));
  ASSERT_TRUE(wait_until([&] { return pub.stats().refused == 4; }, 10)) << pub.stats().refused;
  EXPECT_NE(pub.last_error().find("stream 'ao'"), std::string::npos) << pub.last_error();
  EXPECT_NE(pub.last_error().find("a subscriber sends only heartbeat and stream_write"), std::string::npos) << pub.last_error();

  // A heartbeat with want + ready subscribes: stream_meta, then the newest frame (cnt0 2).
  peer.send("ao", heartbeat(wire::kHeartbeatWant | wire::kHeartbeatReady));
  wire::Header h;
  std::vector<std::byte> payload;
  ASSERT_TRUE(recv_kind(peer, wire::Kind::stream_meta, h));
  EXPECT_EQ(h.dtype, 5U);
  EXPECT_EQ(h.naxis, 1);
  EXPECT_EQ(h.size[0], 4U);
  const std::uint64_t generation = h.generation;
  EXPECT_NE(generation, 0U);
  ASSERT_TRUE(recv_kind(peer, wire::Kind::stream_frame, h, &payload));
  EXPECT_EQ(h.sequence, 2U);
  ASSERT_EQ(payload.size(), 16U);
  EXPECT_EQ(std::memcmp(payload.data(), two.data(), 16), 0);

  // Another credit without a new frame brings nothing but heartbeats; a new frame comes once.
  peer.send("ao", heartbeat(wire::kHeartbeatWant | wire::kHeartbeatReady));
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(pub.stats().frames_sent, 1U);
  ASSERT_TRUE(src.write(std::span<const std::uint32_t>(one)).ok());
  ASSERT_TRUE(recv_kind(peer, wire::Kind::stream_frame, h, &payload));
  EXPECT_EQ(h.sequence, 3U);
  EXPECT_TRUE(wait_until([&] { return pub.stats().frames_sent == 2; }, 10)) << pub.stats().frames_sent;  // counted after the send

  // A write back for another generation is refused and named; the right one is applied.
  wire::Header w = wire::make_header(wire::Kind::stream_write);
  w.dtype = 5;
  w.naxis = 1;
  w.size[0] = 4;
  w.generation = generation + 1;
  std::vector<std::byte> data(16, std::byte{9});
  peer.send("ao", w, data);
  ASSERT_TRUE(wait_until([&] { return pub.stats().writes_refused == 1; }, 10)) << pub.last_error();
  EXPECT_NE(pub.last_error().find("another generation"), std::string::npos) << pub.last_error();
  w.generation = generation;
  peer.send("ao", w, data);
  ASSERT_TRUE(wait_until([&] { return src.cnt0() == 4; }, 10));
  EXPECT_EQ(src.view()[0], std::byte{9});
  // Its frame comes back to the writer as an echo without payload.
  peer.send("ao", heartbeat(wire::kHeartbeatWant | wire::kHeartbeatReady));
  ASSERT_TRUE(recv_kind(peer, wire::Kind::stream_frame, h, &payload));
  EXPECT_EQ(h.sequence, 4U);
  EXPECT_EQ(h.flags, wire::kFrameEcho);
  EXPECT_TRUE(payload.empty());

  // Release ends the subscription at once.
  peer.send("ao", heartbeat(wire::kHeartbeatRelease));
  EXPECT_TRUE(wait_until([&] { return pub.stats().subscribers == 0; }, 10));
  pub.stop();
}

TEST(BridgePublisher, AdoptsARouterSocketTheCallerBound) {
  shmlink::test::TempStreamDir dir;
  auto src = shmlink::Stream::create("tt", shmlink::test::spec_of({2}, shmlink::Dtype::f64));
  const std::vector<double> v{1.5, -2.5};
  ASSERT_TRUE(src.write(std::span<const double>(v)).ok());
  void* ctx = ::zmq_ctx_new();
  {
    void* dealer = ::zmq_socket(ctx, ZMQ_DEALER);
    try {
      bridge::Publisher wrong("tt", dealer);
      ADD_FAILURE() << "a DEALER socket was accepted";
    } catch (const shmlink::Error& e) {
      EXPECT_EQ(e.errc(), shmlink::Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("'tt'"), std::string::npos) << e.what();
    }
    void* router = ::zmq_socket(ctx, ZMQ_ROUTER);
    ASSERT_EQ(::zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    bridge::Publisher pub("tt", router);
    RawPeer peer(pub.endpoint());
    peer.send("tt", heartbeat(wire::kHeartbeatWant | wire::kHeartbeatReady));
    wire::Header h;
    std::vector<std::byte> payload;
    ASSERT_TRUE(recv_kind(peer, wire::Kind::stream_frame, h, &payload));
    ASSERT_EQ(payload.size(), 16U);
    EXPECT_EQ(std::memcmp(payload.data(), v.data(), 16), 0);
  }  // both sockets closed by their publishers: the context terminates
  EXPECT_EQ(::zmq_ctx_term(ctx), 0);
}

}  // namespace
