// SPDX-License-Identifier: MIT
/// @file packet.hpp
/// @brief Ethernet/ARP/IPv4/ICMP frames for `shmlink memif ping` and `shmlink memif responder`:
/// building ARP and ICMP echo requests, parsing frames bounds-safely, checking echo replies, and
/// answering frames the way libmemif's `icmp_responder` example does (reference section 17).
///
/// Conventions: every size and offset is in bytes. Fields in frames are in network byte order
/// (big-endian) on the wire; `Ipv4::value`, ids, sequence numbers and ethertypes in the structs
/// below are in host order. Frames carry no FCS and no minimum-size padding (memif has neither):
/// an ARP frame is 42 bytes.
///
/// Frame layouts built and parsed here (offsets from the start of the frame):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------------------------------------------------------+
/// |                  destination MAC (0..5)                       |
/// +                               +-------------------------------+
/// |                               |                               |
/// +-------------------------------+                               +
/// |                    source MAC (6..11)                         |
/// +-------------------------------+-------------------------------+
/// |    ethertype (12..13)         |   payload (14..): ARP or IPv4 |
/// +-------------------------------+-------------------------------+
///
/// ARP (ethertype 0x0806), at 14:            IPv4 (ethertype 0x0800), at 14:
///   +0  htype = 1       +2  ptype = 0x0800     +0 version/IHL  +1 TOS  +2 total length
///   +4  hlen = 6        +5  plen = 4           +4 id  +6 flags/fragment  +8 TTL  +9 protocol
///   +6  oper (1 request, 2 reply)              +10 header checksum  +12 source  +16 destination
///   +8  sender MAC     +14 sender IPv4         ICMP (protocol 1), at 14 + 4 * IHL:
///   +18 target MAC     +24 target IPv4           +0 type  +1 code  +2 checksum
///   (28 bytes)                                    +4 identifier  +6 sequence  +8 payload
/// ```
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shmlink::cli::packet {

/// Size of an Ethernet II header (two MACs and the ethertype), bytes.
inline constexpr std::size_t kEthHeaderSize = 14;
/// Size of an Ethernet/IPv4 ARP message, bytes.
inline constexpr std::size_t kArpSize = 28;
/// Size of an ARP frame as built here (no padding to 60), bytes.
inline constexpr std::size_t kArpFrameSize = kEthHeaderSize + kArpSize;
/// Size of an IPv4 header without options, bytes.
inline constexpr std::size_t kIpv4HeaderSize = 20;
/// Size of the ICMP echo header (type, code, checksum, identifier, sequence), bytes.
inline constexpr std::size_t kIcmpEchoHeaderSize = 8;
/// Bytes of an echo frame before its payload (Ethernet + IPv4 without options + ICMP echo).
inline constexpr std::size_t kEchoOverhead = kEthHeaderSize + kIpv4HeaderSize + kIcmpEchoHeaderSize;
/// Smallest echo request build_icmp_echo_request() makes: 8 bytes of payload, so that every frame
/// carries some of the pattern.
inline constexpr std::size_t kMinEchoFrameSize = kEchoOverhead + 8;
/// Largest echo request: the IPv4 total length (16 bits) is at most 65535.
inline constexpr std::size_t kMaxEchoFrameSize = kEthHeaderSize + 65535;

/// Ethertype of IPv4 (host order).
inline constexpr std::uint16_t kEthertypeIpv4 = 0x0800;
/// Ethertype of ARP (host order).
inline constexpr std::uint16_t kEthertypeArp = 0x0806;

/// An Ethernet MAC address, bytes in wire order (`b[0]` is sent first).
struct Mac {
  std::array<std::uint8_t, 6> b{};  ///< the six bytes, wire order
  friend bool operator==(const Mac&, const Mac&) = default;
};

/// The broadcast address ff:ff:ff:ff:ff:ff.
inline constexpr Mac kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

/// An IPv4 address in host byte order (192.168.1.1 is 0xc0a80101).
struct Ipv4 {
  std::uint32_t value = 0;  ///< host order
  friend bool operator==(const Ipv4&, const Ipv4&) = default;
};

/// Parses "aa:bb:cc:dd:ee:ff" (exactly six pairs of hex digits, either case, ':' separated).
/// @return the address, or nullopt for anything else.
std::optional<Mac> parse_mac(std::string_view text);

/// Parses dotted-quad "A.B.C.D": four decimal numbers 0..255 of 1 to 3 digits each, without
/// leading zeros (so "010" is not silently read as octal or decimal).
/// @return the address, or nullopt for anything else.
std::optional<Ipv4> parse_ipv4(std::string_view text);

/// "aa:bb:cc:dd:ee:ff", lower case.
std::string to_string(const Mac& mac);

/// "A.B.C.D".
std::string to_string(Ipv4 ip);

/// The Internet checksum (RFC 1071) of `data`: the one's complement of the one's complement sum
/// of its big-endian 16-bit words (an odd last byte is padded with a zero byte).
///
/// Store the result big-endian in the checksum field (which must be zero while summing). Summing
/// a block whose checksum field is correct yields 0.
/// @param data the bytes, any length (0 gives 0xffff)
/// @return the checksum in host order
std::uint16_t internet_checksum(std::span<const std::uint8_t> data) noexcept;

/// Byte `index` of the payload of echo request `seq`: the pattern build_icmp_echo_request()
/// writes and verify_echo_reply() checks. It differs between consecutive sequence numbers and
/// along the payload (not periodic with 256), so swapped, shifted or stale buffers are caught.
std::uint8_t payload_byte(std::uint16_t seq, std::size_t index) noexcept;

/// Writes a broadcast ARP request "who has `target_ip`? tell `src_ip`" into `out`.
/// @param out at least kArpFrameSize bytes
/// @return the frame length (kArpFrameSize), or 0 when `out` is too small
std::size_t build_arp_request(std::span<std::uint8_t> out, const Mac& src_mac, Ipv4 src_ip,
                              Ipv4 target_ip) noexcept;

/// Writes an ICMP echo request frame of exactly `frame_size` bytes into `out`: Ethernet II
/// (`src` → `dst`), IPv4 without options (TTL 64, DF, IP id = `seq`, valid header checksum) and
/// ICMP echo (type 8) with `id`, `seq`, a payload of `frame_size - kEchoOverhead` bytes filled
/// with payload_byte(seq, i), and a checksum over the whole ICMP message.
/// Frames above 1514 bytes are fine (memif has no MTU).
/// @param frame_size whole Ethernet frame, kMinEchoFrameSize..kMaxEchoFrameSize bytes
/// @return `frame_size`, or 0 when `frame_size` is out of range or `out` is smaller
std::size_t build_icmp_echo_request(std::span<std::uint8_t> out, const Mac& src, const Mac& dst,
                                    Ipv4 src_ip, Ipv4 dst_ip, std::uint16_t id, std::uint16_t seq,
                                    std::size_t frame_size) noexcept;

/// What a frame is, as far as ping and the responder care.
enum class FrameKind {
  other,              ///< anything else, including malformed and truncated frames
  arp_request,        ///< ARP (Ethernet/IPv4) operation 1
  arp_reply,          ///< ARP (Ethernet/IPv4) operation 2
  icmp_echo_request,  ///< IPv4 (unfragmented) ICMP type 8 code 0
  icmp_echo_reply,    ///< IPv4 (unfragmented) ICMP type 0 code 0
};

/// A frame taken apart by parse_frame(). Fields that do not apply to `kind` stay zero/empty.
struct Parsed {
  FrameKind kind = FrameKind::other;  ///< what the frame is
  bool has_ethernet = false;          ///< the frame holds a whole Ethernet header
  Mac eth_dst;                        ///< Ethernet destination (when has_ethernet)
  Mac eth_src;                        ///< Ethernet source (when has_ethernet)
  std::uint16_t ethertype = 0;        ///< host order (when has_ethernet)

  // ARP request/reply
  Mac arp_sender_mac;   ///< sender hardware address
  Ipv4 arp_sender_ip;   ///< sender protocol address
  Mac arp_target_mac;   ///< target hardware address
  Ipv4 arp_target_ip;   ///< target protocol address

  // ICMP echo request/reply
  Ipv4 ip_src;                               ///< IPv4 source
  Ipv4 ip_dst;                               ///< IPv4 destination
  std::size_t ip_header_size = 0;            ///< 4 * IHL, bytes
  std::size_t ip_total_length = 0;           ///< IPv4 total length field, bytes
  std::uint16_t icmp_id = 0;                 ///< echo identifier
  std::uint16_t icmp_seq = 0;                ///< echo sequence number
  std::span<const std::uint8_t> payload;     ///< echo data, inside the parsed frame
  bool ipv4_checksum_ok = false;             ///< the IPv4 header checksum verifies
  bool icmp_checksum_ok = false;             ///< the ICMP checksum over the message verifies
};

/// Classifies `frame` and extracts its fields. Never reads outside `frame`: truncated headers,
/// IHL < 5, a total length beyond the frame or below the headers, non-Ethernet/IPv4 ARP, and
/// fragments all give FrameKind::other (trailing bytes after the IPv4 total length are ignored).
/// Checksums are reported, not required. The returned payload span points into `frame`.
Parsed parse_frame(std::span<const std::uint8_t> frame) noexcept;

/// Whether `frame` is the intact echo reply to build_icmp_echo_request(..., id, seq,
/// expected_size): an ICMP echo reply of exactly `expected_size` bytes with that id and seq, a
/// valid IPv4 header checksum, and payload_byte(seq, i) throughout its payload. The ICMP checksum
/// is deliberately not required: libmemif's icmp_responder computes it over the 8-byte header only
/// (reference section 17); parse_frame() reports it.
bool verify_echo_reply(std::span<const std::uint8_t> frame, std::uint16_t id, std::uint16_t seq,
                       std::size_t expected_size) noexcept;

/// Answers `in` like libmemif's icmp_responder (reference section 17), writing the answer to `out`:
/// * an ARP request for `my_ip` → an ARP reply (kArpFrameSize bytes) from `my_mac` to the sender;
/// * an ICMP echo request to `my_ip` → the same frame with MACs and IPs swapped, type 0 and both
///   checksums recomputed (the request's checksums are not checked, as icmp_responder does not);
/// * any other frame of at least an Ethernet header → a copy with the MACs swapped.
/// @param out where the answer goes; must not overlap `in`
/// @return the answer's length, or nullopt when `in` is shorter than an Ethernet header or `out`
///         is too small for the answer
std::optional<std::size_t> respond(std::span<const std::uint8_t> in, std::span<std::uint8_t> out,
                                   const Mac& my_mac, Ipv4 my_ip) noexcept;

}  // namespace shmlink::cli::packet
