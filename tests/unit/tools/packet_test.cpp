// SPDX-License-Identifier: MIT
// Frames of `shmlink memif ping|responder` (<shmlink_tools/packet.hpp>, tools/support): address parsing, the RFC 1071
// checksum against known vectors, echo requests checked byte by byte at fixed offsets, malformed
// frames, jumbo frames, and the icmp_responder behaviour (reference section 17).
#include <shmlink_tools/packet.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace {

using namespace shmlink::cli::packet;
using Bytes = std::vector<std::uint8_t>;

const Mac kMacA{{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}};
const Mac kMacB{{0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa}};
const Ipv4 kIpA{0xc0a80102};  // 192.168.1.2
const Ipv4 kIpB{0xc0a80101};  // 192.168.1.1

std::uint16_t be16(const Bytes& f, std::size_t at) {
  return static_cast<std::uint16_t>((f[at] << 8) | f[at + 1]);
}

Bytes echo_request(std::size_t size, std::uint16_t id = 0x1234, std::uint16_t seq = 1) {
  Bytes f(size);
  EXPECT_EQ(build_icmp_echo_request(f, kMacA, kMacB, kIpA, kIpB, id, seq, size), size);
  return f;
}

Bytes arp_request(Ipv4 target) {
  Bytes f(kArpFrameSize);
  EXPECT_EQ(build_arp_request(f, kMacA, kIpA, target), kArpFrameSize);
  return f;
}

Bytes reply_to(const Bytes& in, std::size_t out_size = 70000) {
  Bytes out(out_size);
  const auto n = respond(in, out, kMacB, kIpB);
  EXPECT_TRUE(n.has_value());
  out.resize(n.value_or(0));
  return out;
}

// --- addresses ---------------------------------------------------------------------------------

TEST(PacketAddress, MacParsesAndFormatsRoundTrip) {
  const auto m = parse_mac("02:Ab:cD:00:ff:10");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Mac{{0x02, 0xab, 0xcd, 0x00, 0xff, 0x10}}));
  EXPECT_EQ(to_string(*m), "02:ab:cd:00:ff:10");
  EXPECT_EQ(parse_mac(to_string(kMacB)), kMacB);
}

TEST(PacketAddress, MacRejectsMalformedText) {
  for (const char* bad : {"", "02:ab:cd:00:ff", "02:ab:cd:00:ff:10:", "02-ab-cd-00-ff-10",
                          "02:ab:cd:00:ff:1g", "2:ab:cd:00:ff:100", " 02:ab:cd:00:ff:1",
                          "02:ab:cd:00:ff:10 "})
    EXPECT_FALSE(parse_mac(bad)) << bad;
}

TEST(PacketAddress, Ipv4ParsesToHostOrderAndFormats) {
  const auto ip = parse_ipv4("192.168.1.2");
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->value, 0xc0a80102u);
  EXPECT_EQ(to_string(*ip), "192.168.1.2");
  EXPECT_EQ(parse_ipv4("0.0.0.0")->value, 0u);
  EXPECT_EQ(parse_ipv4("255.255.255.255")->value, 0xffffffffu);
  EXPECT_EQ(to_string(Ipv4{0x0a000001}), "10.0.0.1");
}

TEST(PacketAddress, Ipv4RejectsMalformedText) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "01.2.3.4", "1..2.3",
                          " 1.2.3.4", "1.2.3.4 ", "1.2.3.4.", "a.b.c.d", "1.2.3.1000", "+1.2.3.4"})
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
}

// --- checksum ----------------------------------------------------------------------------------

TEST(PacketChecksum, MatchesRfc1071Example) {
  // RFC 1071 section 3: the one's complement sum of these bytes is 0xddf2.
  const Bytes b{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(internet_checksum(b), static_cast<std::uint16_t>(~0xddf2));
}

TEST(PacketChecksum, MatchesKnownIpv4Header) {
  // A widely quoted IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) with checksum 0xb861.
  Bytes h{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
          0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(internet_checksum(h), 0xb861);
  h[10] = 0xb8;
  h[11] = 0x61;
  EXPECT_EQ(internet_checksum(h), 0);
}

TEST(PacketChecksum, PadsOddLengthAndHandlesEmpty) {
  EXPECT_EQ(internet_checksum(Bytes{0x12, 0x34, 0x56}), static_cast<std::uint16_t>(~(0x1234 + 0x5600)));
  EXPECT_EQ(internet_checksum(Bytes{}), 0xffff);
}

TEST(PacketChecksum, FoldsCarriesOverLargeBuffers) {
  const Bytes ones(65536, 0xff);  // 32768 words of 0xffff: sum folds to 0xffff, checksum 0
  EXPECT_EQ(internet_checksum(ones), 0);
  const Bytes twos(4, 0x80);  // 0x8080 + 0x8080 = 0x10100 -> 0x0101
  EXPECT_EQ(internet_checksum(twos), static_cast<std::uint16_t>(~0x0101));
}

// --- building ----------------------------------------------------------------------------------

TEST(PacketBuild, ArpRequestHasFixedLayout) {
  const Bytes f = arp_request(kIpB);
  ASSERT_EQ(f.size(), 42u);
  const Bytes expect{
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x06,  // eth
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,                                      // hdr
      0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0xc0, 0xa8, 0x01, 0x02,                          // sender
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01};                         // target
  EXPECT_EQ(f, expect);
  Bytes small(41);
  EXPECT_EQ(build_arp_request(small, kMacA, kIpA, kIpB), 0u);
}

TEST(PacketBuild, EchoRequestHeadersAtFixedOffsets) {
  const Bytes f = echo_request(98, 0x1234, 1);
  // Ethernet
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(kMacB.b.begin(), kMacB.b.end()));
  EXPECT_EQ(Bytes(f.begin() + 6, f.begin() + 12), Bytes(kMacA.b.begin(), kMacA.b.end()));
  EXPECT_EQ(be16(f, 12), 0x0800);
  // IPv4: 4500 0054 0001 4000 4001 cksum c0a8 0102 c0a8 0101. By hand: the words sum to 0x248a9,
  // folded 0x48ab, complemented 0xb754.
  const Bytes ip{0x45, 0x00, 0x00, 0x54, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01,
                 0xb7, 0x54, 0xc0, 0xa8, 0x01, 0x02, 0xc0, 0xa8, 0x01, 0x01};
  EXPECT_EQ(Bytes(f.begin() + 14, f.begin() + 34), ip);
  // ICMP: type 8, code 0, id, seq; checksum over all 64 bytes of the message.
  EXPECT_EQ(f[34], 8);
  EXPECT_EQ(f[35], 0);
  EXPECT_EQ(be16(f, 38), 0x1234);
  EXPECT_EQ(be16(f, 40), 1);
  EXPECT_EQ(internet_checksum({f.data() + 34, 64}), 0);
  for (std::size_t i = 0; i < 56; ++i) ASSERT_EQ(f[42 + i], payload_byte(1, i)) << i;
}

TEST(PacketBuild, EchoRequestRejectsSizesOutOfRange) {
  Bytes big(kMaxEchoFrameSize + 1);
  EXPECT_EQ(build_icmp_echo_request(big, kMacA, kMacB, kIpA, kIpB, 1, 1, kMinEchoFrameSize - 1), 0u);
  EXPECT_EQ(build_icmp_echo_request(big, kMacA, kMacB, kIpA, kIpB, 1, 1, kMaxEchoFrameSize + 1), 0u);
  Bytes small(99);
  EXPECT_EQ(build_icmp_echo_request(small, kMacA, kMacB, kIpA, kIpB, 1, 1, 100), 0u);
  EXPECT_EQ(build_icmp_echo_request(small, kMacA, kMacB, kIpA, kIpB, 1, 1, 99), 99u);
}

TEST(PacketBuild, EchoRequestAtSizeLimitsHasConsistentLengths) {
  for (std::size_t size : {kMinEchoFrameSize, std::size_t{1514}, std::size_t{9000}, kMaxEchoFrameSize}) {
    const Bytes f = echo_request(size, 7, 65535);
    EXPECT_EQ(be16(f, 16), size - 14) << size;
    const Parsed p = parse_frame(f);
    ASSERT_EQ(p.kind, FrameKind::icmp_echo_request) << size;
    EXPECT_EQ(p.payload.size(), size - kEchoOverhead);
    EXPECT_TRUE(p.ipv4_checksum_ok);
    EXPECT_TRUE(p.icmp_checksum_ok);
  }
}

TEST(PacketBuild, PayloadPatternDependsOnSeqAndIsNotPeriodic) {
  for (std::uint32_t seq = 0; seq < 65536; ++seq) {
    const auto s = static_cast<std::uint16_t>(seq);
    const auto next = static_cast<std::uint16_t>(seq + 1);
    ASSERT_NE(payload_byte(s, 0), payload_byte(next, 0)) << seq;
  }
  for (std::size_t i = 0; i < 1024; ++i) ASSERT_NE(payload_byte(5, i), payload_byte(5, i + 256)) << i;
}

// --- parsing -----------------------------------------------------------------------------------

TEST(PacketParse, RoundTripsEchoRequest) {
  const Bytes f = echo_request(200, 0xbeef, 42);
  const Parsed p = parse_frame(f);
  ASSERT_EQ(p.kind, FrameKind::icmp_echo_request);
  EXPECT_TRUE(p.has_ethernet);
  EXPECT_EQ(p.eth_src, kMacA);
  EXPECT_EQ(p.eth_dst, kMacB);
  EXPECT_EQ(p.ethertype, kEthertypeIpv4);
  EXPECT_EQ(p.ip_src, kIpA);
  EXPECT_EQ(p.ip_dst, kIpB);
  EXPECT_EQ(p.ip_header_size, 20u);
  EXPECT_EQ(p.ip_total_length, 186u);
  EXPECT_EQ(p.icmp_id, 0xbeef);
  EXPECT_EQ(p.icmp_seq, 42);
  EXPECT_EQ(p.payload.data(), f.data() + 42);
  EXPECT_EQ(p.payload.size(), 158u);
  EXPECT_TRUE(p.ipv4_checksum_ok);
  EXPECT_TRUE(p.icmp_checksum_ok);
}

TEST(PacketParse, RoundTripsArpRequest) {
  const Parsed p = parse_frame(arp_request(kIpB));
  ASSERT_EQ(p.kind, FrameKind::arp_request);
  EXPECT_EQ(p.eth_dst, kBroadcastMac);
  EXPECT_EQ(p.arp_sender_mac, kMacA);
  EXPECT_EQ(p.arp_sender_ip, kIpA);
  EXPECT_EQ(p.arp_target_mac, Mac{});
  EXPECT_EQ(p.arp_target_ip, kIpB);
}

TEST(PacketParse, ReportsBadChecksumsWithoutRejecting) {
  Bytes f = echo_request(100);
  f[24] ^= 0x01;  // IPv4 checksum
  f[36] ^= 0x01;  // ICMP checksum
  const Parsed p = parse_frame(f);
  ASSERT_EQ(p.kind, FrameKind::icmp_echo_request);
  EXPECT_FALSE(p.ipv4_checksum_ok);
  EXPECT_FALSE(p.icmp_checksum_ok);
}

TEST(PacketParse, EveryTruncationOfAnEchoRequestIsOther) {
  const Bytes f = echo_request(120);
  for (std::size_t n = 0; n < f.size(); ++n) {
    const Parsed p = parse_frame(std::span(f.data(), n));
    EXPECT_EQ(p.kind, FrameKind::other) << n;
    EXPECT_EQ(p.has_ethernet, n >= 14) << n;
  }
}

TEST(PacketParse, EveryTruncationOfAnArpRequestIsOther) {
  const Bytes f = arp_request(kIpB);
  for (std::size_t n = 0; n < f.size(); ++n)
    EXPECT_EQ(parse_frame(std::span(f.data(), n)).kind, FrameKind::other) << n;
}

TEST(PacketParse, RejectsMalformedIpv4Headers) {
  auto kind_with = [](auto mutate) {
    Bytes f = echo_request(100);
    mutate(f);
    return parse_frame(f).kind;
  };
  EXPECT_EQ(kind_with([](Bytes& f) { f[14] = 0x44; }), FrameKind::other);  // IHL 4 < 5
  EXPECT_EQ(kind_with([](Bytes& f) { f[14] = 0x40; }), FrameKind::other);  // IHL 0
  EXPECT_EQ(kind_with([](Bytes& f) { f[14] = 0x4f; }), FrameKind::other);  // IHL 15: 60 > total
  EXPECT_EQ(kind_with([](Bytes& f) { f[14] = 0x65; }), FrameKind::other);  // version 6
  EXPECT_EQ(kind_with([](Bytes& f) { f[17] = 87; }), FrameKind::other);    // total > frame
  EXPECT_EQ(kind_with([](Bytes& f) { f[16] = 0xff; }), FrameKind::other);  // total >> frame
  EXPECT_EQ(kind_with([](Bytes& f) { f[17] = 27; }), FrameKind::other);    // total < 20 + 8
  EXPECT_EQ(kind_with([](Bytes& f) { f[20] |= 0x20; }), FrameKind::other);  // more fragments
  EXPECT_EQ(kind_with([](Bytes& f) { f[21] = 1; }), FrameKind::other);      // fragment offset
  EXPECT_EQ(kind_with([](Bytes& f) { f[23] = 17; }), FrameKind::other);     // UDP
  EXPECT_EQ(kind_with([](Bytes& f) { f[34] = 3; }), FrameKind::other);      // unreachable
  EXPECT_EQ(kind_with([](Bytes& f) { f[35] = 1; }), FrameKind::other);      // code 1
  EXPECT_EQ(kind_with([](Bytes& f) { f[12] = 0x86; }), FrameKind::other);  // ethertype 0x8600
  // Total length 28: an echo with no payload is still an echo.
  EXPECT_EQ(kind_with([](Bytes& f) { f[17] = 28; }), FrameKind::icmp_echo_request);
}

TEST(PacketParse, RejectsNonEthernetIpv4Arp) {
  auto kind_with = [](std::size_t at, std::uint8_t v) {
    Bytes f = arp_request(kIpB);
    f[at] = v;
    return parse_frame(f).kind;
  };
  EXPECT_EQ(kind_with(15, 6), FrameKind::other);   // htype 6
  EXPECT_EQ(kind_with(16, 0x86), FrameKind::other);  // ptype 0x8600
  EXPECT_EQ(kind_with(18, 8), FrameKind::other);   // hlen 8
  EXPECT_EQ(kind_with(19, 16), FrameKind::other);  // plen 16
  EXPECT_EQ(kind_with(21, 3), FrameKind::other);   // RARP request
  EXPECT_EQ(kind_with(21, 2), FrameKind::arp_reply);
}

TEST(PacketParse, IgnoresTrailingBytesAfterTotalLength) {
  Bytes f = echo_request(100);
  f.resize(160, 0xee);  // Ethernet padding or garbage after the datagram
  const Parsed p = parse_frame(f);
  ASSERT_EQ(p.kind, FrameKind::icmp_echo_request);
  EXPECT_EQ(p.payload.size(), 100 - kEchoOverhead);
  EXPECT_TRUE(p.icmp_checksum_ok);
}

TEST(PacketParse, SurvivesRandomFrames) {
  // Random bytes with a valid-looking prefix often enough to reach the deeper checks; ASan builds
  // catch any read outside the frame.
  std::mt19937 rng(12345);
  const Bytes seed = echo_request(120);
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes f(rng() % 140);
    for (auto& b : f) b = static_cast<std::uint8_t>(rng());
    const std::size_t keep = rng() % 40;
    for (std::size_t i = 0; i < keep && i < f.size(); ++i) f[i] = seed[i];
    const Parsed p = parse_frame(f);
    if (p.kind == FrameKind::icmp_echo_request || p.kind == FrameKind::icmp_echo_reply) {
      ASSERT_GE(p.payload.data(), f.data());
      ASSERT_LE(p.payload.data() + p.payload.size(), f.data() + f.size());
    }
    Bytes out(f.size() + 64);
    const auto n = respond(f, out, kMacB, kIpB);
    ASSERT_EQ(n.has_value(), f.size() >= 14);
  }
}

// --- echo replies ------------------------------------------------------------------------------

TEST(PacketVerify, AcceptsResponderReplyAndRejectsMismatches) {
  const Bytes reply = reply_to(echo_request(300, 9, 77));
  EXPECT_TRUE(verify_echo_reply(reply, 9, 77, 300));
  EXPECT_FALSE(verify_echo_reply(reply, 10, 77, 300));  // id
  EXPECT_FALSE(verify_echo_reply(reply, 9, 78, 300));   // seq
  EXPECT_FALSE(verify_echo_reply(reply, 9, 77, 299));   // size
  EXPECT_FALSE(verify_echo_reply(echo_request(300, 9, 77), 9, 77, 300));  // a request
}

TEST(PacketVerify, RejectsCorruptedPayloadAndIpv4Checksum) {
  const Bytes reply = reply_to(echo_request(300, 9, 77));
  for (std::size_t at : {std::size_t{42}, std::size_t{150}, std::size_t{299}}) {
    Bytes bad = reply;
    bad[at] ^= 0x40;
    EXPECT_FALSE(verify_echo_reply(bad, 9, 77, 300)) << at;
  }
  Bytes bad = reply;
  bad[24] ^= 0x01;
  EXPECT_FALSE(verify_echo_reply(bad, 9, 77, 300));
  // A stale buffer from the previous sequence number fails too.
  Bytes stale = reply_to(echo_request(300, 9, 76));
  stale[40] = 0;
  stale[41] = 77;
  EXPECT_FALSE(verify_echo_reply(stale, 9, 77, 300));
}

TEST(PacketVerify, ToleratesIcmpChecksumOverHeaderOnly) {
  // libmemif's icmp_responder sums only the 8-byte ICMP header (reference section 17).
  Bytes reply = reply_to(echo_request(300, 9, 77));
  reply[36] = reply[37] = 0;
  const std::uint16_t header_only = internet_checksum({reply.data() + 34, 8});
  reply[36] = static_cast<std::uint8_t>(header_only >> 8);
  reply[37] = static_cast<std::uint8_t>(header_only);
  EXPECT_FALSE(parse_frame(reply).icmp_checksum_ok);
  EXPECT_TRUE(verify_echo_reply(reply, 9, 77, 300));
}

TEST(PacketVerify, JumboFrameRoundTrips) {
  const Bytes req = echo_request(9000, 3, 4);
  const Bytes reply = reply_to(req);
  ASSERT_EQ(reply.size(), 9000u);
  EXPECT_TRUE(verify_echo_reply(reply, 3, 4, 9000));
  const Bytes max_reply = reply_to(echo_request(kMaxEchoFrameSize, 3, 5));
  EXPECT_TRUE(verify_echo_reply(max_reply, 3, 5, kMaxEchoFrameSize));
}

// --- responder ---------------------------------------------------------------------------------

TEST(PacketRespond, AnswersArpRequestForItsAddress) {
  const Bytes reply = reply_to(arp_request(kIpB));
  ASSERT_EQ(reply.size(), kArpFrameSize);
  const Parsed p = parse_frame(reply);
  ASSERT_EQ(p.kind, FrameKind::arp_reply);
  EXPECT_EQ(p.eth_dst, kMacA);
  EXPECT_EQ(p.eth_src, kMacB);
  EXPECT_EQ(p.arp_sender_mac, kMacB);
  EXPECT_EQ(p.arp_sender_ip, kIpB);
  EXPECT_EQ(p.arp_target_mac, kMacA);
  EXPECT_EQ(p.arp_target_ip, kIpA);
}

TEST(PacketRespond, AnswersEchoRequestToItsAddress) {
  const Bytes req = echo_request(98, 0x1234, 1);
  const Bytes reply = reply_to(req);
  ASSERT_EQ(reply.size(), req.size());
  const Parsed p = parse_frame(reply);
  ASSERT_EQ(p.kind, FrameKind::icmp_echo_reply);
  EXPECT_EQ(p.eth_src, kMacB);
  EXPECT_EQ(p.eth_dst, kMacA);
  EXPECT_EQ(p.ip_src, kIpB);
  EXPECT_EQ(p.ip_dst, kIpA);
  EXPECT_EQ(p.icmp_id, 0x1234);
  EXPECT_EQ(p.icmp_seq, 1);
  EXPECT_TRUE(p.ipv4_checksum_ok);
  EXPECT_TRUE(p.icmp_checksum_ok);
  // Everything but MACs, IPs, type and checksums is unchanged (TTL, id, payload).
  for (std::size_t i = 14; i < req.size(); ++i) {
    if ((i >= 24 && i < 34) || i == 34 || i == 36 || i == 37) continue;
    EXPECT_EQ(reply[i], req[i]) << i;
  }
}

TEST(PacketRespond, AnswersEchoRequestWithIpOptions) {
  // IHL 6: a 4-byte option (NOP x4) between the IPv4 header and ICMP.
  const Bytes plain = echo_request(100, 1, 2);
  Bytes f(plain.begin(), plain.begin() + 34);
  f.insert(f.end(), {0x01, 0x01, 0x01, 0x01});
  f.insert(f.end(), plain.begin() + 34, plain.end());
  f[14] = 0x46;
  f[17] = static_cast<std::uint8_t>(f[17] + 4);
  f[24] = f[25] = 0;
  const std::uint16_t c = internet_checksum({f.data() + 14, 24});
  f[24] = static_cast<std::uint8_t>(c >> 8);
  f[25] = static_cast<std::uint8_t>(c);
  const Parsed req = parse_frame(f);
  ASSERT_EQ(req.kind, FrameKind::icmp_echo_request);
  EXPECT_EQ(req.ip_header_size, 24u);
  EXPECT_TRUE(req.ipv4_checksum_ok);
  EXPECT_TRUE(req.icmp_checksum_ok);
  const Parsed rep = parse_frame(reply_to(f));
  ASSERT_EQ(rep.kind, FrameKind::icmp_echo_reply);
  EXPECT_TRUE(rep.ipv4_checksum_ok);
  EXPECT_TRUE(rep.icmp_checksum_ok);
  EXPECT_EQ(rep.payload.size(), 100 - kEchoOverhead);
}

TEST(PacketRespond, ReflectsOtherFramesWithMacsSwapped) {
  Bytes udp = echo_request(100);
  udp[23] = 17;
  const Bytes foreign_echo = [] {
    Bytes f(100);
    build_icmp_echo_request(f, kMacA, kMacB, kIpA, Ipv4{0x0a000001}, 1, 1, 100);
    return f;
  }();
  const Bytes foreign_arp = arp_request(Ipv4{0x0a000001});
  const Bytes arp_reply = [] {
    Bytes f = arp_request(kIpB);
    f[21] = 2;
    return f;
  }();
  const Bytes short_eth{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xb5};
  for (const Bytes& in : {udp, foreign_echo, foreign_arp, arp_reply, short_eth}) {
    const Bytes out = reply_to(in, in.size());
    ASSERT_EQ(out.size(), in.size());
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + 6, in.begin() + 6));
    EXPECT_TRUE(std::equal(out.begin() + 6, out.begin() + 12, in.begin()));
    EXPECT_TRUE(std::equal(out.begin() + 12, out.end(), in.begin() + 12));
  }
}

TEST(PacketRespond, RefusesShortInputAndSmallOutput) {
  Bytes out(100);
  EXPECT_FALSE(respond(Bytes(13), out, kMacB, kIpB));
  EXPECT_FALSE(respond(Bytes{}, out, kMacB, kIpB));
  const Bytes req = echo_request(101);
  EXPECT_FALSE(respond(req, out, kMacB, kIpB));
  Bytes arp_out(41);
  EXPECT_FALSE(respond(arp_request(kIpB), arp_out, kMacB, kIpB));
  arp_out.resize(42);
  EXPECT_EQ(respond(arp_request(kIpB), arp_out, kMacB, kIpB), 42u);
}

}  // namespace
