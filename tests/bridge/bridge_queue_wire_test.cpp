// SPDX-License-Identifier: MIT
// The queue kinds of the bridge wire format: what is encoded decodes to the same fields, and what
// a peer could send wrong is refused with a reason, never trusted (docs/design/bridge.md); and the
// queue position a restarted receiver trusts.
#include <shmlink/queue.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "bridge/queue_wire.hpp"
#include "test_util.hpp"

namespace qw = shmlink::bridge::queue_wire;

namespace {

qw::Header samples_header(std::uint32_t count, std::uint32_t max_values) {
  qw::Header h;
  h.kind = qw::Kind::samples;
  h.sequence = 41;
  h.ack = 7;
  h.sample_bytes = max_values * 8;
  h.capacity = 64;
  h.count = count;
  h.payload_bytes = count * qw::record_bytes(max_values);
  return h;
}

std::span<const std::byte> span_of(const std::array<std::byte, qw::kHeaderBytes>& a) { return {a.data(), a.size()}; }

}  // namespace

TEST(BridgeQueueWire, SamplesRoundTrip) {
  const qw::Header h = samples_header(2, 3);
  const auto head = qw::encode_header(h);
  std::uint32_t magic = 0;
  std::memcpy(&magic, head.data(), 4);
  EXPECT_EQ(magic, 0x424C4853U);
  EXPECT_EQ(std::memcmp(head.data(), "SHLB", 4), 0);
  std::string why;
  auto d = qw::decode_header(span_of(head), h.payload_bytes, why);
  ASSERT_TRUE(d) << why;
  EXPECT_EQ(d->sequence, 41U);
  EXPECT_EQ(d->ack, 7U);
  EXPECT_EQ(d->count, 2U);

  std::vector<std::byte> payload(h.payload_bytes);
  const shmlink::SignalValue vals[2] = {shmlink::SignalValue::of(1.25), shmlink::SignalValue::of(std::int64_t{-3})};
  shmlink::SampleView v;
  v.sequence = 9;
  v.ts_origin_ns = 123;
  v.flags = shmlink::kSampleHasData;
  v.values = vals;
  qw::encode_record(v, 3, std::span(payload).subspan(qw::record_bytes(3), qw::record_bytes(3)));
  shmlink::SampleView out;
  std::vector<shmlink::SignalValue> buf;
  ASSERT_TRUE(qw::decode_record(payload, 3, 1, out, buf, why)) << why;
  EXPECT_EQ(out.sequence, 9U);
  EXPECT_EQ(out.ts_origin_ns, 123);
  ASSERT_EQ(out.values.size(), 2U);
  EXPECT_EQ(out.values[0].f, 1.25);
  EXPECT_EQ(out.values[1].i, -3);
}

TEST(BridgeQueueWire, RefusesWrongMagicVersionSizesAndKinds) {
  const qw::Header h = samples_header(2, 3);
  std::string why;
  auto head = qw::encode_header(h);
  EXPECT_FALSE(qw::decode_header(span_of(head), h.payload_bytes - 1, why));  // payload disagrees
  EXPECT_NE(why.find("payload"), std::string::npos) << why;
  EXPECT_FALSE(qw::decode_header(std::span(head).first(127), h.payload_bytes, why));
  auto bad = head;
  bad[0] = std::byte{'X'};
  EXPECT_FALSE(qw::decode_header(span_of(bad), h.payload_bytes, why));
  EXPECT_NE(why.find("magic"), std::string::npos);
  bad = head;
  bad[4] = std::byte{2};
  EXPECT_FALSE(qw::decode_header(span_of(bad), h.payload_bytes, why));
  bad = head;
  bad[12] = std::byte{64};
  EXPECT_FALSE(qw::decode_header(span_of(bad), h.payload_bytes, why));
  bad = head;
  bad[6] = std::byte{2};  // stream_frame: not a queue kind
  EXPECT_FALSE(qw::decode_header(span_of(bad), h.payload_bytes, why));
  // count and payload_bytes that agree with each other but not with the record size
  qw::Header lie = samples_header(2, 3);
  lie.payload_bytes += 8;
  EXPECT_FALSE(qw::decode_header(span_of(qw::encode_header(lie)), lie.payload_bytes, why));
  qw::Header zero = samples_header(0, 3);
  EXPECT_FALSE(qw::decode_header(span_of(qw::encode_header(zero)), 0, why));
  qw::Header odd = samples_header(1, 3);
  odd.sample_bytes = 20;
  EXPECT_FALSE(qw::decode_header(span_of(qw::encode_header(odd)), odd.payload_bytes, why));
  qw::Header ack;
  ack.kind = qw::Kind::ack;
  ack.payload_bytes = 8;
  EXPECT_FALSE(qw::decode_header(span_of(qw::encode_header(ack)), 8, why));
  qw::Header hello;
  hello.kind = qw::Kind::hello;
  hello.sample_bytes = 8;
  hello.capacity = 48;  // not a power of two
  EXPECT_FALSE(qw::decode_header(span_of(qw::encode_header(hello)), 0, why));
}

TEST(BridgeQueueWire, RefusesARecordLongerThanTheQueue) {
  const qw::Header h = samples_header(1, 2);
  std::vector<std::byte> payload(h.payload_bytes);
  const std::uint32_t length = 3;
  std::memcpy(payload.data() + 28, &length, 4);
  shmlink::SampleView out;
  std::vector<shmlink::SignalValue> buf;
  std::string why;
  EXPECT_FALSE(qw::decode_record(payload, 2, 0, out, buf, why));
  EXPECT_NE(why.find("3 values"), std::string::npos) << why;
}

TEST(BridgeQueueWire, SignalsRoundTripAndBadOnesAreRefused) {
  std::vector<shmlink::Signal> sig{{0, "v", shmlink::SignalType::f64, "V"}, {2, "i", shmlink::SignalType::i64, "A"}};
  auto bytes = qw::encode_signals(sig);
  std::string why;
  auto back = qw::decode_signals(bytes, 4, why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, sig);
  EXPECT_FALSE(qw::decode_signals(bytes, 2, why));  // index 2 is not below 2 values
  auto dup = bytes;
  dup[64] = std::byte{0};  // the second signal's index 0 again
  EXPECT_FALSE(qw::decode_signals(dup, 4, why));
  auto type = bytes;
  type[4] = std::byte{9};
  EXPECT_FALSE(qw::decode_signals(type, 4, why));
  auto name = bytes;
  std::memset(name.data() + 8, 'x', 40);  // no NUL within the name field
  EXPECT_FALSE(qw::decode_signals(name, 4, why));
}

// The receiver's next expected number rests on Queue::producer_position(): it must count cells a
// producer published before dying without recording them (tail rewound by hand, as such a death
// leaves it), or a restarted receiver would push those samples' numbers again.
TEST(BridgeQueueState, ProducerPositionCountsCellsADeadProducerPublished) {
  shmlink::test::TempStreamDir dir;
  shmlink::QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 1;
  shmlink::Queue first = shmlink::Queue::create("pp", spec);
  shmlink::Sample s;
  s.values = {shmlink::SignalValue::of(std::int64_t{0})};
  for (std::int64_t i = 0; i < 3; ++i) {
    s.values[0].i = i;
    ASSERT_TRUE(first.try_push(s).ok());
  }
  EXPECT_EQ(first.producer_position(), 3U);
  first.close();
  {
    // The producer index `tail` lives at offset 64 of the header (queue_layout.hpp).
    const int fd = ::open(shmlink::queue_path("pp").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const std::uint64_t stale = 1;
    ASSERT_EQ(::pwrite(fd, &stale, sizeof stale, 64), static_cast<ssize_t>(sizeof stale));
    ::close(fd);
  }
  shmlink::Queue next = shmlink::Queue::open("pp");
  EXPECT_EQ(next.info().pushed, 1U);
  EXPECT_EQ(next.producer_position(), 3U);
  s.values[0].i = 3;
  ASSERT_TRUE(next.try_push(s).ok());
  shmlink::Sample out;
  for (std::int64_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(next.try_pop(out).ok());
    EXPECT_EQ(out.values.at(0).i, i);
  }
}
