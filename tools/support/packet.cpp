// SPDX-License-Identifier: MIT
// Ethernet/ARP/IPv4/ICMP frames for `shmlink memif ping|responder` (see packet.hpp).
#include <shmlink_tools/packet.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace shmlink::cli::packet {
namespace {

// Offsets inside the Ethernet header.
constexpr std::size_t kEthDst = 0, kEthSrc = 6, kEthType = 12;
// Offsets inside an ARP message (from its start, kEthHeaderSize into the frame).
constexpr std::size_t kArpHtype = 0, kArpPtype = 2, kArpHlen = 4, kArpPlen = 5, kArpOper = 6,
                      kArpSha = 8, kArpSpa = 14, kArpTha = 18, kArpTpa = 24;
// Offsets inside an IPv4 header.
constexpr std::size_t kIpVerIhl = 0, kIpTotalLen = 2, kIpId = 4, kIpFrag = 6, kIpTtl = 8,
                      kIpProto = 9, kIpCsum = 10, kIpSrc = 12, kIpDst = 16;
// Offsets inside an ICMP echo message.
constexpr std::size_t kIcmpType = 0, kIcmpCode = 1, kIcmpCsum = 2, kIcmpId = 4, kIcmpSeq = 6;

constexpr std::uint16_t kArpOpRequest = 1, kArpOpReply = 2;
constexpr std::uint8_t kIpProtoIcmp = 1;
constexpr std::uint8_t kIcmpEchoReply = 0, kIcmpEchoRequest = 8;
constexpr std::uint16_t kIpFlagMf = 0x2000, kIpFlagDf = 0x4000, kIpFragOffsetMask = 0x1fff;

std::uint16_t load16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t load32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
void store16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void store32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
Mac load_mac(const std::uint8_t* p) noexcept {
  Mac m;
  std::memcpy(m.b.data(), p, m.b.size());
  return m;
}
void store_mac(std::uint8_t* p, const Mac& m) noexcept { std::memcpy(p, m.b.data(), m.b.size()); }

void write_eth(std::uint8_t* f, const Mac& dst, const Mac& src, std::uint16_t type) noexcept {
  store_mac(f + kEthDst, dst);
  store_mac(f + kEthSrc, src);
  store16(f + kEthType, type);
}

/// Writes the ARP message (frame offset 14..41) of an Ethernet/IPv4 ARP frame.
void write_arp(std::uint8_t* a, std::uint16_t oper, const Mac& sha, Ipv4 spa, const Mac& tha,
               Ipv4 tpa) noexcept {
  store16(a + kArpHtype, 1);
  store16(a + kArpPtype, kEthertypeIpv4);
  a[kArpHlen] = 6;
  a[kArpPlen] = 4;
  store16(a + kArpOper, oper);
  store_mac(a + kArpSha, sha);
  store32(a + kArpSpa, spa.value);
  store_mac(a + kArpTha, tha);
  store32(a + kArpTpa, tpa.value);
}

/// Sets the IPv4 header checksum of the `header_size`-byte header at `ip`.
void fix_ipv4_checksum(std::uint8_t* ip, std::size_t header_size) noexcept {
  store16(ip + kIpCsum, 0);
  store16(ip + kIpCsum, internet_checksum({ip, header_size}));
}

/// Sets the ICMP checksum of the `size`-byte ICMP message at `icmp`.
void fix_icmp_checksum(std::uint8_t* icmp, std::size_t size) noexcept {
  store16(icmp + kIcmpCsum, 0);
  store16(icmp + kIcmpCsum, internet_checksum({icmp, size}));
}

/// Swaps the two MACs of the Ethernet header at `f`.
void swap_macs(std::uint8_t* f) noexcept {
  std::swap_ranges(f + kEthDst, f + kEthDst + 6, f + kEthSrc);
}

/// Parses a decimal octet 0..255 of 1..3 digits without a leading zero.
std::optional<std::uint8_t> parse_octet(std::string_view s) {
  if (s.empty() || s.size() > 3) return std::nullopt;
  if (s.size() > 1 && s.front() == '0') return std::nullopt;
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (ec != std::errc{} || ptr != s.data() + s.size() || v > 255) return std::nullopt;
  return static_cast<std::uint8_t>(v);
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<Mac> parse_mac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  Mac m;
  for (std::size_t i = 0; i < 6; ++i) {
    const std::size_t at = 3 * i;
    if (i > 0 && text[at - 1] != ':') return std::nullopt;
    const int hi = hex_digit(text[at]), lo = hex_digit(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    m.b[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return m;
}

std::optional<Ipv4> parse_ipv4(std::string_view text) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const std::size_t dot = text.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return std::nullopt;
    const auto octet = parse_octet(text.substr(0, dot));
    if (!octet) return std::nullopt;
    v = (v << 8) | *octet;
    text = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  }
  return Ipv4{v};
}

std::string to_string(const Mac& mac) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(17);
  for (std::size_t i = 0; i < mac.b.size(); ++i) {
    if (i > 0) s += ':';
    s += kHex[mac.b[i] >> 4];
    s += kHex[mac.b[i] & 0xf];
  }
  return s;
}

std::string to_string(Ipv4 ip) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (shift != 24) s += '.';
    s += std::to_string((ip.value >> shift) & 0xff);
  }
  return s;
}

std::uint16_t internet_checksum(std::span<const std::uint8_t> data) noexcept {
  // 64-bit accumulator: no carry is lost for any frame size (2^48 words before overflow).
  std::uint64_t sum = 0;
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += load16(data.data() + i);
  if (i < data.size()) sum += std::uint64_t{data[i]} << 8;
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::uint8_t payload_byte(std::uint16_t seq, std::size_t index) noexcept {
  // A byte counter started at a per-seq offset; consecutive seqs differ in every byte (by 0x3b, or
  // by 0xa0 where the low byte of seq wraps). The index's second byte is mixed in so that the
  // pattern does not repeat every 256 bytes.
  const auto s = static_cast<std::uint32_t>(seq);
  const std::uint32_t offset = s * 0x3bu + (s >> 8) * 0x65u;
  const auto i = static_cast<std::uint32_t>(index);
  return static_cast<std::uint8_t>(offset + i + (i >> 8) * 7u);
}

std::size_t build_arp_request(std::span<std::uint8_t> out, const Mac& src_mac, Ipv4 src_ip,
                              Ipv4 target_ip) noexcept {
  if (out.size() < kArpFrameSize) return 0;
  std::uint8_t* f = out.data();
  write_eth(f, kBroadcastMac, src_mac, kEthertypeArp);
  write_arp(f + kEthHeaderSize, kArpOpRequest, src_mac, src_ip, Mac{}, target_ip);
  return kArpFrameSize;
}

std::size_t build_icmp_echo_request(std::span<std::uint8_t> out, const Mac& src, const Mac& dst,
                                    Ipv4 src_ip, Ipv4 dst_ip, std::uint16_t id, std::uint16_t seq,
                                    std::size_t frame_size) noexcept {
  if (frame_size < kMinEchoFrameSize || frame_size > kMaxEchoFrameSize || out.size() < frame_size)
    return 0;
  std::uint8_t* f = out.data();
  write_eth(f, dst, src, kEthertypeIpv4);

  std::uint8_t* ip = f + kEthHeaderSize;
  ip[kIpVerIhl] = 0x45;  // version 4, IHL 5 (20 bytes)
  ip[kIpVerIhl + 1] = 0;  // TOS
  store16(ip + kIpTotalLen, static_cast<std::uint16_t>(frame_size - kEthHeaderSize));
  store16(ip + kIpId, seq);
  store16(ip + kIpFrag, kIpFlagDf);
  ip[kIpTtl] = 64;
  ip[kIpProto] = kIpProtoIcmp;
  store32(ip + kIpSrc, src_ip.value);
  store32(ip + kIpDst, dst_ip.value);
  fix_ipv4_checksum(ip, kIpv4HeaderSize);

  std::uint8_t* icmp = ip + kIpv4HeaderSize;
  icmp[kIcmpType] = kIcmpEchoRequest;
  icmp[kIcmpCode] = 0;
  store16(icmp + kIcmpId, id);
  store16(icmp + kIcmpSeq, seq);
  std::uint8_t* payload = icmp + kIcmpEchoHeaderSize;
  const std::size_t payload_size = frame_size - kEchoOverhead;
  for (std::size_t i = 0; i < payload_size; ++i) payload[i] = payload_byte(seq, i);
  fix_icmp_checksum(icmp, kIcmpEchoHeaderSize + payload_size);
  return frame_size;
}

Parsed parse_frame(std::span<const std::uint8_t> frame) noexcept {
  Parsed p;
  if (frame.size() < kEthHeaderSize) return p;
  const std::uint8_t* f = frame.data();
  p.has_ethernet = true;
  p.eth_dst = load_mac(f + kEthDst);
  p.eth_src = load_mac(f + kEthSrc);
  p.ethertype = load16(f + kEthType);
  const std::size_t l3_size = frame.size() - kEthHeaderSize;
  const std::uint8_t* l3 = f + kEthHeaderSize;

  if (p.ethertype == kEthertypeArp) {
    if (l3_size < kArpSize) return p;
    if (load16(l3 + kArpHtype) != 1 || load16(l3 + kArpPtype) != kEthertypeIpv4 ||
        l3[kArpHlen] != 6 || l3[kArpPlen] != 4)
      return p;
    const std::uint16_t oper = load16(l3 + kArpOper);
    if (oper != kArpOpRequest && oper != kArpOpReply) return p;
    p.kind = oper == kArpOpRequest ? FrameKind::arp_request : FrameKind::arp_reply;
    p.arp_sender_mac = load_mac(l3 + kArpSha);
    p.arp_sender_ip = Ipv4{load32(l3 + kArpSpa)};
    p.arp_target_mac = load_mac(l3 + kArpTha);
    p.arp_target_ip = Ipv4{load32(l3 + kArpTpa)};
    return p;
  }

  if (p.ethertype != kEthertypeIpv4) return p;
  if (l3_size < kIpv4HeaderSize) return p;
  if ((l3[kIpVerIhl] >> 4) != 4) return p;
  const std::size_t ihl = static_cast<std::size_t>(l3[kIpVerIhl] & 0x0f) * 4;
  if (ihl < kIpv4HeaderSize || ihl > l3_size) return p;
  const std::size_t total = load16(l3 + kIpTotalLen);
  if (total < ihl + kIcmpEchoHeaderSize || total > l3_size) return p;
  if ((load16(l3 + kIpFrag) & (kIpFlagMf | kIpFragOffsetMask)) != 0) return p;
  if (l3[kIpProto] != kIpProtoIcmp) return p;
  const std::uint8_t* icmp = l3 + ihl;
  const std::uint8_t type = icmp[kIcmpType];
  if (icmp[kIcmpCode] != 0 || (type != kIcmpEchoRequest && type != kIcmpEchoReply)) return p;

  p.kind = type == kIcmpEchoRequest ? FrameKind::icmp_echo_request : FrameKind::icmp_echo_reply;
  p.ip_src = Ipv4{load32(l3 + kIpSrc)};
  p.ip_dst = Ipv4{load32(l3 + kIpDst)};
  p.ip_header_size = ihl;
  p.ip_total_length = total;
  p.icmp_id = load16(icmp + kIcmpId);
  p.icmp_seq = load16(icmp + kIcmpSeq);
  const std::size_t icmp_size = total - ihl;
  p.payload = frame.subspan(kEthHeaderSize + ihl + kIcmpEchoHeaderSize,
                            icmp_size - kIcmpEchoHeaderSize);
  p.ipv4_checksum_ok = internet_checksum({l3, ihl}) == 0;
  p.icmp_checksum_ok = internet_checksum({icmp, icmp_size}) == 0;
  return p;
}

bool verify_echo_reply(std::span<const std::uint8_t> frame, std::uint16_t id, std::uint16_t seq,
                       std::size_t expected_size) noexcept {
  if (frame.size() != expected_size) return false;
  const Parsed p = parse_frame(frame);
  if (p.kind != FrameKind::icmp_echo_reply || p.icmp_id != id || p.icmp_seq != seq ||
      !p.ipv4_checksum_ok)
    return false;
  // The whole frame must be the reply: no bytes after the IPv4 total length, no IP options.
  if (p.ip_header_size != kIpv4HeaderSize || expected_size < kEchoOverhead ||
      p.payload.size() != expected_size - kEchoOverhead)
    return false;
  for (std::size_t i = 0; i < p.payload.size(); ++i)
    if (p.payload[i] != payload_byte(seq, i)) return false;
  return true;
}

std::optional<std::size_t> respond(std::span<const std::uint8_t> in, std::span<std::uint8_t> out,
                                   const Mac& my_mac, Ipv4 my_ip) noexcept {
  if (in.size() < kEthHeaderSize) return std::nullopt;
  const Parsed p = parse_frame(in);

  if (p.kind == FrameKind::arp_request && p.arp_target_ip == my_ip) {
    if (out.size() < kArpFrameSize) return std::nullopt;
    std::uint8_t* f = out.data();
    write_eth(f, p.arp_sender_mac, my_mac, kEthertypeArp);
    write_arp(f + kEthHeaderSize, kArpOpReply, my_mac, my_ip, p.arp_sender_mac, p.arp_sender_ip);
    return kArpFrameSize;
  }

  if (out.size() < in.size()) return std::nullopt;
  std::uint8_t* f = out.data();
  std::memcpy(f, in.data(), in.size());
  swap_macs(f);
  if (p.kind == FrameKind::icmp_echo_request && p.ip_dst == my_ip) {
    std::uint8_t* ip = f + kEthHeaderSize;
    store32(ip + kIpSrc, p.ip_dst.value);
    store32(ip + kIpDst, p.ip_src.value);
    fix_ipv4_checksum(ip, p.ip_header_size);
    std::uint8_t* icmp = ip + p.ip_header_size;
    icmp[kIcmpType] = kIcmpEchoReply;
    fix_icmp_checksum(icmp, p.ip_total_length - p.ip_header_size);
  }
  return in.size();
}

}  // namespace shmlink::cli::packet
