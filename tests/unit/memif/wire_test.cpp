// SPDX-License-Identifier: MIT
// memif wire format: sizes and byte offsets re-derived from the reference's tables (sections 5 and
// 9) as plain numbers, checked on raw bytes in both directions (encode -> bytes, bytes -> decode).
#include "memif/wire.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace shmlink::memif::wire;

using Bytes = std::array<std::uint8_t, 128>;

/// A 128-byte buffer of `fill` (garbage, as libmemif leaves after its used fields).
Bytes filled(std::uint8_t fill) {
  Bytes b;
  b.fill(fill);
  return b;
}
void put16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void put32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put64(Bytes& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_text(Bytes& b, std::size_t at, const std::string& s) { std::memcpy(b.data() + at, s.data(), s.size()); }
std::uint64_t get_le(const Bytes& b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[at + i];
  return v;
}
bool all_zero(const Bytes& b, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i)
    if (b[i] != 0) return false;
  return true;
}
Message from(const Bytes& b) { return message_from_bytes(std::span<const std::uint8_t, 128>(b)); }

TEST(MemifWire, ConstantsMatchTheReference) {
  EXPECT_EQ(kCookie, 0x3E31F20u);
  EXPECT_EQ(kVersion, 0x0200);
  EXPECT_EQ(kMessageSize, 128u);
  EXPECT_EQ(static_cast<int>(MsgType::none), 0);
  EXPECT_EQ(static_cast<int>(MsgType::ack), 1);
  EXPECT_EQ(static_cast<int>(MsgType::hello), 2);
  EXPECT_EQ(static_cast<int>(MsgType::init), 3);
  EXPECT_EQ(static_cast<int>(MsgType::add_region), 4);
  EXPECT_EQ(static_cast<int>(MsgType::add_ring), 5);
  EXPECT_EQ(static_cast<int>(MsgType::connect), 6);
  EXPECT_EQ(static_cast<int>(MsgType::connected), 7);
  EXPECT_EQ(static_cast<int>(MsgType::disconnect), 8);
  EXPECT_EQ(static_cast<int>(RingType::s2m), 0);
  EXPECT_EQ(static_cast<int>(RingType::m2s), 1);
  EXPECT_EQ(static_cast<int>(Mode::ethernet), 0);
  EXPECT_EQ(static_cast<int>(Mode::ip), 1);
  EXPECT_EQ(static_cast<int>(Mode::punt_inject), 2);
  EXPECT_EQ(kAddRingFlagS2m, 1);
  EXPECT_EQ(kDescFlagNext, 1);
  EXPECT_EQ(kRingFlagMaskInt, 1);
  EXPECT_EQ(kSecretSize, 24u);
  EXPECT_EQ(kNameSize, 32u);
  EXPECT_EQ(kDisconnectStringSize, 96u);
  EXPECT_EQ(kMaxLog2RingSize, 14);
  EXPECT_EQ(kCacheLine, 64u);
}

TEST(MemifWire, StructSizes) {
  EXPECT_EQ(sizeof(Message), 128u);
  EXPECT_EQ(sizeof(Hello), 43u);
  EXPECT_EQ(sizeof(Init), 63u);
  EXPECT_EQ(sizeof(AddRegion), 10u);
  EXPECT_EQ(sizeof(AddRing), 13u);
  EXPECT_EQ(sizeof(Connect), 32u);
  EXPECT_EQ(sizeof(Connected), 32u);
  EXPECT_EQ(sizeof(Disconnect), 100u);
  EXPECT_EQ(sizeof(Descriptor), 16u);
}

TEST(MemifWire, MakeMessageIsAllZeroButTheType) {
  const Bytes b = message_bytes(make_message(MsgType::connected));
  EXPECT_EQ(b[0], 7);
  EXPECT_EQ(b[1], 0);
  EXPECT_TRUE(all_zero(b, 2, 128));
  const Bytes a = message_bytes(encode_ack());
  EXPECT_EQ(a[0], 1);
  EXPECT_TRUE(all_zero(a, 1, 128));
}

TEST(MemifWire, HelloWithLibmemifLimitsHasTheReferenceBytes) {
  HelloInfo h;
  h.name = "libmemif-app";
  h.min_version = 0x0200;
  h.max_version = 0x0200;
  h.max_region = 255;
  h.max_m2s_ring = 255;
  h.max_s2m_ring = 255;
  h.max_log2_ring_size = 14;
  const Bytes b = message_bytes(encode_hello(h));
  EXPECT_EQ(b[0], 0x02);
  EXPECT_EQ(b[1], 0x00);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 2), 12), "libmemif-app");
  EXPECT_TRUE(all_zero(b, 14, 34));  // rest of name[32]
  const std::vector<std::uint8_t> at34(b.begin() + 34, b.begin() + 45);
  EXPECT_EQ(at34, (std::vector<std::uint8_t>{0x00, 0x02, 0x00, 0x02, 0xff, 0x00, 0xff, 0x00, 0xff, 0x00, 0x0e}));
  EXPECT_TRUE(all_zero(b, 45, 128));
}

TEST(MemifWire, HelloDecodesFromRawBytes) {
  Bytes b = filled(0xa5);
  put16(b, 0, 2);
  put_text(b, 2, std::string("VPP 24.02\0garbage", 17));
  put16(b, 34, 0x0100);
  put16(b, 36, 0x0200);
  put16(b, 38, 256);
  put16(b, 40, 7);
  put16(b, 42, 9);
  b[44] = 14;
  const Message m = from(b);
  EXPECT_EQ(message_type(m), MsgType::hello);
  const HelloInfo h = decode_hello(m);
  EXPECT_EQ(h.name, "VPP 24.02");
  EXPECT_EQ(h.min_version, 0x0100);
  EXPECT_EQ(h.max_version, 0x0200);
  EXPECT_EQ(h.max_region, 256);
  EXPECT_EQ(h.max_m2s_ring, 7);
  EXPECT_EQ(h.max_s2m_ring, 9);
  EXPECT_EQ(h.max_log2_ring_size, 14);
}

TEST(MemifWire, NameFillingItsFieldNeedsNoNul) {
  Bytes b = filled(0);
  put16(b, 0, 2);
  put_text(b, 2, std::string(32, 'N'));  // name[32] @2, no NUL; min_version follows at @34
  put16(b, 34, 0x0200);
  EXPECT_EQ(decode_hello(from(b)).name, std::string(32, 'N'));
}

TEST(MemifWire, InitOffsets) {
  InitInfo i;
  i.version = 0x0200;
  i.id = 0x11223344;
  i.mode = Mode::ip;
  i.secret = "s3cr3t";
  i.name = "app";
  const Bytes b = message_bytes(encode_init(i));
  EXPECT_EQ(get_le(b, 0, 2), 3u);
  EXPECT_EQ(get_le(b, 2, 2), 0x0200u);
  EXPECT_EQ(get_le(b, 4, 4), 0x11223344u);
  EXPECT_EQ(b[8], 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 9), 6), "s3cr3t");
  EXPECT_TRUE(all_zero(b, 15, 33));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 33), 3), "app");
  EXPECT_TRUE(all_zero(b, 36, 128));
}

TEST(MemifWire, InitSecretFillingItsFieldDoesNotRunIntoTheName) {
  Bytes b = filled(0xee);
  put16(b, 0, 3);
  put16(b, 2, 0x0200);
  put32(b, 4, 7);
  b[8] = 0;
  put_text(b, 9, std::string(24, 'S'));   // secret[24] @9..32, no NUL
  put_text(b, 33, std::string(32, 'A'));  // name[32] @33..64, no NUL; bytes after it are 0xee
  const InitInfo i = decode_init(from(b));
  EXPECT_EQ(i.version, 0x0200);
  EXPECT_EQ(i.id, 7u);
  EXPECT_EQ(i.mode, Mode::ethernet);
  EXPECT_EQ(i.secret, std::string(24, 'S'));
  EXPECT_EQ(i.name, std::string(32, 'A'));
}

// Names and reasons we send end in a NUL inside their field (a peer may strlen() them); the
// secret is a 24-byte field compared as bytes and may fill it.
TEST(MemifWire, EncodeTruncatesStringsToTheirField) {
  InitInfo i;
  i.secret = std::string(30, 'x');
  i.name = std::string(40, 'y');
  const Bytes b = message_bytes(encode_init(i));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 9), 24), std::string(24, 'x'));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 33), 31), std::string(31, 'y'));
  EXPECT_TRUE(all_zero(b, 64, 128));
  const InitInfo back = decode_init(from(b));
  EXPECT_EQ(back.secret, std::string(24, 'x'));
  EXPECT_EQ(back.name, std::string(31, 'y'));

  const Bytes c = message_bytes(encode_connect(std::string(33, 'c')));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(c.data() + 2), 31), std::string(31, 'c'));
  EXPECT_TRUE(all_zero(c, 33, 128));

  const Bytes d = message_bytes(encode_disconnect(0, std::string(200, 'd')));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(d.data() + 6), 95), std::string(95, 'd'));
  EXPECT_TRUE(all_zero(d, 101, 128));
}

TEST(MemifWire, AddRegionOffsets) {
  const Bytes b = message_bytes(encode_add_region({3, 0x0000000123456789ull}));
  EXPECT_EQ(get_le(b, 0, 2), 4u);
  EXPECT_EQ(get_le(b, 2, 2), 3u);
  EXPECT_EQ(get_le(b, 4, 8), 0x0000000123456789ull);
  EXPECT_TRUE(all_zero(b, 12, 128));

  Bytes r = filled(0x77);
  put16(r, 0, 4);
  put16(r, 2, 1);
  put64(r, 4, 4ull << 30);  // a 4 GiB region
  const AddRegionInfo a = decode_add_region(from(r));
  EXPECT_EQ(a.index, 1);
  EXPECT_EQ(a.size, 4ull << 30);
}

TEST(MemifWire, AddRingOffsets) {
  AddRingInfo r;
  r.type = RingType::s2m;
  r.index = 2;
  r.region = 1;
  r.offset = 16512;
  r.log2_ring_size = 10;
  const Bytes b = message_bytes(encode_add_ring(r));
  EXPECT_EQ(get_le(b, 0, 2), 5u);
  EXPECT_EQ(get_le(b, 2, 2), 1u);  // flags: S2M
  EXPECT_EQ(get_le(b, 4, 2), 2u);
  EXPECT_EQ(get_le(b, 6, 2), 1u);
  EXPECT_EQ(get_le(b, 8, 4), 16512u);
  EXPECT_EQ(b[12], 10);
  EXPECT_EQ(get_le(b, 13, 2), 0u);
  EXPECT_TRUE(all_zero(b, 15, 128));

  r.type = RingType::m2s;
  EXPECT_EQ(get_le(message_bytes(encode_add_ring(r)), 2, 2), 0u);  // flags: M2S

  Bytes raw = filled(0x5a);
  put16(raw, 0, 5);
  put16(raw, 2, 0);  // M2S
  put16(raw, 4, 3);
  put16(raw, 6, 0);
  put32(raw, 8, 0x00abcdef);
  raw[12] = 14;
  put16(raw, 13, 64);
  const AddRingInfo d = decode_add_ring(from(raw));
  EXPECT_EQ(d.type, RingType::m2s);
  EXPECT_EQ(d.flags, 0);
  EXPECT_EQ(d.index, 3);
  EXPECT_EQ(d.region, 0);
  EXPECT_EQ(d.offset, 0x00abcdefu);
  EXPECT_EQ(d.log2_ring_size, 14);
  EXPECT_EQ(d.private_hdr_size, 64);
  put16(raw, 2, 0x8001);  // S2M plus an unknown bit
  EXPECT_EQ(decode_add_ring(from(raw)).type, RingType::s2m);
  EXPECT_EQ(decode_add_ring(from(raw)).flags, 0x8001);
}

TEST(MemifWire, ConnectAndConnectedOffsets) {
  const Bytes c = message_bytes(encode_connect("memif0/0"));
  EXPECT_EQ(get_le(c, 0, 2), 6u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(c.data() + 2), 8), "memif0/0");
  EXPECT_TRUE(all_zero(c, 10, 128));
  const Bytes d = message_bytes(encode_connected("net_memif0"));
  EXPECT_EQ(get_le(d, 0, 2), 7u);
  EXPECT_EQ(decode_connected(from(d)), "net_memif0");
  EXPECT_EQ(decode_connect(from(c)), "memif0/0");
}

TEST(MemifWire, GarbageInPaddingIsIgnored) {
  // libmemif's CONNECTED: name, NUL, then heap garbage to the end (section 4).
  Bytes b = filled(0xcd);
  put16(b, 0, 7);
  put_text(b, 2, std::string("memif_connection\0", 17));
  EXPECT_EQ(message_type(from(b)), MsgType::connected);
  EXPECT_EQ(decode_connected(from(b)), "memif_connection");

  // An ACK full of garbage is still just an ACK.
  Bytes a = filled(0xff);
  put16(a, 0, 1);
  EXPECT_EQ(message_type(from(a)), MsgType::ack);
}

TEST(MemifWire, DisconnectOffsetsAndFullReason) {
  const Bytes b = message_bytes(encode_disconnect(0, "Incorrect secret"));
  EXPECT_EQ(get_le(b, 0, 2), 8u);
  EXPECT_EQ(get_le(b, 2, 4), 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 6), 16), "Incorrect secret");
  EXPECT_TRUE(all_zero(b, 22, 128));

  Bytes r = filled(0x41);  // 'A' everywhere: the reason has no NUL, then 26 more bytes of 'A'
  put16(r, 0, 8);
  put32(r, 2, 5);
  put_text(r, 6, std::string(96, 'R'));
  const DisconnectInfo d = decode_disconnect(from(r));
  EXPECT_EQ(d.code, 5u);
  EXPECT_EQ(d.reason, std::string(96, 'R'));
}

TEST(MemifWire, RoundTripsEveryType) {
  HelloInfo h{"h", 0x0200, 0x0200, 1, 2, 3, 12};
  const HelloInfo h2 = decode_hello(encode_hello(h));
  EXPECT_EQ(h2.name, "h");
  EXPECT_EQ(h2.max_region, 1);
  EXPECT_EQ(h2.max_m2s_ring, 2);
  EXPECT_EQ(h2.max_s2m_ring, 3);
  EXPECT_EQ(h2.max_log2_ring_size, 12);
  InitInfo i{0x0200, 42, Mode::ethernet, "", "slave"};
  const InitInfo i2 = decode_init(encode_init(i));
  EXPECT_EQ(i2.id, 42u);
  EXPECT_EQ(i2.secret, "");
  EXPECT_EQ(i2.name, "slave");
  EXPECT_EQ(decode_disconnect(encode_disconnect(0, "bye")).reason, "bye");
  EXPECT_EQ(message_type(encode_add_region({})), MsgType::add_region);
}

TEST(MemifWire, DescriptorOffsets) {
  Descriptor d{};
  d.flags = kDescFlagNext;
  d.region = 0x0102;
  d.length = 0x03040506;
  d.offset = 0x0708090a;
  d.metadata = 0x0b0c0d0e;
  unsigned char raw[16];
  std::memcpy(raw, &d, 16);
  const unsigned char expect[16] = {0x01, 0x00, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03,
                                    0x0a, 0x09, 0x08, 0x07, 0x0e, 0x0d, 0x0c, 0x0b};
  EXPECT_EQ(std::memcmp(raw, expect, 16), 0);
}

TEST(MemifWire, RingHeaderLayoutForBothCacheLines) {
  EXPECT_EQ(sizeof(RingHeader<64>), 128u);
  EXPECT_EQ(offsetof(RingHeader<64>, cookie), 0u);
  EXPECT_EQ(offsetof(RingHeader<64>, flags), 4u);
  EXPECT_EQ(offsetof(RingHeader<64>, head), 6u);
  EXPECT_EQ(offsetof(RingHeader<64>, tail), 64u);
  EXPECT_EQ(sizeof(RingHeader<128>), 256u);
  EXPECT_EQ(offsetof(RingHeader<128>, tail), 128u);
  EXPECT_EQ(ring_tail_offset(64), 64u);
  EXPECT_EQ(ring_desc_offset(64), 128u);
  EXPECT_EQ(ring_tail_offset(128), 128u);
  EXPECT_EQ(ring_desc_offset(128), 256u);

  // A ring header written field by field lands at the reference's offsets.
  RingHeader<64> r{};
  r.cookie = kCookie;
  r.flags = kRingFlagMaskInt;
  r.head = 0x1234;
  r.tail = 0xabcd;
  unsigned char raw[128];
  std::memcpy(raw, &r, 128);
  EXPECT_EQ(raw[0], 0x20);  // 0x03E31F20 little-endian: 20 1f e3 03
  EXPECT_EQ(raw[1], 0x1f);
  EXPECT_EQ(raw[2], 0xe3);
  EXPECT_EQ(raw[3], 0x03);
  EXPECT_EQ(raw[4], 0x01);
  EXPECT_EQ(raw[6], 0x34);
  EXPECT_EQ(raw[7], 0x12);
  EXPECT_EQ(raw[64], 0xcd);
  EXPECT_EQ(raw[65], 0xab);
}

TEST(MemifWire, RingBytes) {
  EXPECT_EQ(ring_bytes(64, 10), 16512u);   // 2*64 + 16*1024 (section 9.2)
  EXPECT_EQ(ring_bytes(128, 10), 16640u);  // 2*128 + 16*1024
  EXPECT_EQ(ring_bytes(64, 0), 144u);
  EXPECT_EQ(ring_bytes(64, 14), 262272u);  // 128 + 16*16384
  EXPECT_EQ(ring_bytes(128, 14), 262400u);
  // libmemif's region 0 for 1 + 1 rings of 1024 (section 10): 33 024 bytes.
  EXPECT_EQ(2 * ring_bytes(64, 10), 33024u);
}

}  // namespace
