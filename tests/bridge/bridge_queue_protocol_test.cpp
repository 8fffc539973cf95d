// SPDX-License-Identifier: MIT
// A QueueReceiver process faced with a hand-made sender (a raw ZeroMQ DEALER speaking the queue
// kinds): duplicates are dropped, a gap is answered by a resend request, and malformed messages
// are refused without harm (docs/design/bridge.md, "Queues: exactly once").
#include <shmlink/queue.hpp>

#include <gtest/gtest.h>

#include <zmq.hpp>

#include <filesystem>

#include "bridge/queue_wire.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
namespace qw = shmlink::bridge::queue_wire;

namespace {

constexpr std::uint32_t kValues = 2;

void send_parts(zmq::socket_t& s, const qw::Header& h, const std::vector<std::byte>& payload,
                const std::string& topic = "q") {
  const auto head = qw::encode_header(h);
  s.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  if (payload.empty()) {
    s.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::none);
  } else {
    s.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::sndmore);
    s.send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::none);
  }
}

void send_hello(zmq::socket_t& s, std::uint64_t acked) {
  qw::Header h;
  h.kind = qw::Kind::hello;
  h.sequence = acked;
  h.ack = acked;
  h.sample_bytes = kValues * 8;
  h.capacity = 64;
  send_parts(s, h, {});
}

/// Samples numbered first .. first+count-1, each carrying its number as value 0.
void send_samples(zmq::socket_t& s, std::uint64_t first, std::uint32_t count) {
  const std::size_t rec = qw::record_bytes(kValues);
  std::vector<std::byte> payload(rec * count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const shmlink::SignalValue v[1] = {shmlink::SignalValue::of(static_cast<std::int64_t>(first + i))};
    shmlink::SampleView view;
    view.sequence = first + i;
    view.values = v;
    qw::encode_record(view, kValues, std::span(payload).subspan(i * rec, rec));
  }
  qw::Header h;
  h.kind = qw::Kind::samples;
  h.sequence = first;
  h.sample_bytes = kValues * 8;
  h.capacity = 64;
  h.count = count;
  h.payload_bytes = payload.size();
  send_parts(s, h, payload);
}

/// Waits (10 s at most) for a queue_ack saying `value` with any of `flags` (0: any ack); skips
/// other acks. True when it came.
bool wait_ack(zmq::socket_t& s, std::uint64_t value, std::uint32_t flags,
              std::chrono::milliseconds within = 10s) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    std::vector<zmq::message_t> parts;
    zmq::message_t m;
    if (!s.recv(m, zmq::recv_flags::dontwait)) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    parts.push_back(std::move(m));
    while (parts.back().more()) {
      zmq::message_t more;
      (void)s.recv(more);
      parts.push_back(std::move(more));
    }
    std::string why;
    if (parts.size() != 2) continue;
    auto h = qw::decode_header({static_cast<const std::byte*>(parts[1].data()), parts[1].size()}, 0, why);
    if (h && h->kind == qw::Kind::ack && h->ack == value && (flags == 0 || (h->flags & flags) != 0)) return true;
  }
  return false;
}

/// Starts a receiver process that connects to `endpoint` (our bound DEALER).
pid_t start_receiver(const std::string& endpoint) {
  const pid_t rx = ::fork();
  if (rx == 0) {
    ::execl(BRIDGE_QUEUE_PEER, BRIDGE_QUEUE_PEER, "recv", "q", (">" + endpoint).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return rx;
}

}  // namespace

TEST(BridgeQueueProtocol, ReceiverDropsDuplicatesAsksForGapsAndRefusesGarbage) {
  shmlink::test::TempStreamDir dir;  // the receiver's host; SHMLINK_DIR is inherited
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  const std::string endpoint = s.get(zmq::sockopt::last_endpoint);
  // The receiver normally binds; a leading '>' makes it connect to us instead.
  const pid_t rx = start_receiver(endpoint);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0) shmlink::test::reap(pid, 0);  // an early failed check: never leave it behind
    }
  } reaper{rx};
  send_hello(s, 0);
  ASSERT_TRUE(wait_ack(s, 0, qw::kAckReply));
  send_samples(s, 0, 10);
  ASSERT_TRUE(wait_ack(s, 10, 0));
  send_samples(s, 5, 10);  // 5..9 again, then 10..14
  ASSERT_TRUE(wait_ack(s, 15, 0));
  send_samples(s, 20, 3);  // 15..19 missing
  ASSERT_TRUE(wait_ack(s, 15, qw::kAckGap));
  // Garbage: wrong topic, a short header, a lying payload size, an unknown kind.
  qw::Header lie;
  lie.kind = qw::Kind::samples;
  lie.sequence = 15;
  lie.sample_bytes = kValues * 8;
  lie.count = 1000;
  lie.payload_bytes = 8;
  send_parts(s, lie, std::vector<std::byte>(8));
  send_parts(s, lie, std::vector<std::byte>(8), "other");
  s.send(zmq::buffer(std::string("q")), zmq::send_flags::sndmore);
  s.send(zmq::buffer(std::string("short")), zmq::send_flags::none);
  send_samples(s, 15, 5);
  ASSERT_TRUE(wait_ack(s, 20, 0));

  shmlink::Queue q = shmlink::Queue::open("q");
  shmlink::Sample out;
  for (std::int64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(q.try_pop(out).ok()) << i;
    EXPECT_EQ(out.values.at(0).i, i);
  }
  EXPECT_EQ(q.try_pop(out), shmlink::Status(shmlink::Errc::would_block)) << "a duplicate was pushed";
  ::kill(rx, SIGTERM);
  EXPECT_EQ(shmlink::test::reap(rx, 10), 0);
  reaper.pid = 0;
}

// Acknowledgements lost with a killed receiver: the sender still holds samples 0..9 as
// unacknowledged and resends them to the restarted receiver, which must know from queue B and
// its state file that they are already there.
TEST(BridgeQueueProtocol, ReceiverRestartedAfterLostAcksPushesNothingTwice) {
  shmlink::test::TempStreamDir dir;
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  const std::string endpoint = s.get(zmq::sockopt::last_endpoint);
  pid_t rx = start_receiver(endpoint);
  struct Reaper {
    pid_t& pid;
    ~Reaper() {
      if (pid > 0) shmlink::test::reap(pid, 0);
    }
  } reaper{rx};
  send_hello(s, 0);
  ASSERT_TRUE(wait_ack(s, 0, qw::kAckReply));
  send_samples(s, 0, 10);
  ASSERT_TRUE(wait_ack(s, 10, 0));  // pushed; this sender "loses" the ack (acked stays 0)
  ::kill(rx, SIGKILL);
  EXPECT_EQ(shmlink::test::reap(rx, 10), -SIGKILL);
  rx = start_receiver(endpoint);
  // Said again until answered, as a sender does: the first may go to the dead receiver's
  // connection before our socket notices it is gone.
  bool answered = false;
  for (int i = 0; i < 50 && !answered; ++i) {
    send_hello(s, 0);
    answered = wait_ack(s, 10, qw::kAckReply, 200ms);
  }
  ASSERT_TRUE(answered) << "the restarted receiver does not know what queue B holds";
  send_samples(s, 0, 15);  // the whole unacknowledged window again, and 5 new
  ASSERT_TRUE(wait_ack(s, 15, 0));
  shmlink::Queue q = shmlink::Queue::open("q");
  shmlink::Sample out;
  for (std::int64_t i = 0; i < 15; ++i) {
    ASSERT_TRUE(q.try_pop(out).ok()) << i;
    EXPECT_EQ(out.values.at(0).i, i);
  }
  EXPECT_EQ(q.try_pop(out), shmlink::Status(shmlink::Errc::would_block)) << "a sample was pushed twice";
  ::kill(rx, SIGTERM);
  EXPECT_EQ(shmlink::test::reap(rx, 10), 0);
  rx = 0;
}
