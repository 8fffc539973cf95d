// SPDX-License-Identifier: MIT
// memif 2.0 wire format: protocol constants, the 128-byte control messages, the shared ring header
// and descriptor (docs/reference/memif.md, sections 2, 5 and 9). Written from the
// reference's tables; offsets are for little-endian hosts and memif never converts byte order.
//
// Every layout is pinned by static_asserts on its size and on each absolute offset listed in the
// reference, so a change that would break interoperability with libmemif, VPP or DPDK fails to
// compile. The encode/decode helpers below are the only code that should touch message bytes:
// they zero what they send and never trust what they receive beyond the used fields.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace shmlink::memif::wire {

// ---- protocol constants (reference section 2) ------------------------------------------------

/// Written by the slave at offset 0 of every ring; a master rejects a ring without it (section 2, 9.2).
inline constexpr std::uint32_t kCookie = 0x3E31F20;
/// Protocol major version (section 2).
inline constexpr std::uint16_t kVersionMajor = 2;
/// Protocol minor version (section 2).
inline constexpr std::uint16_t kVersionMinor = 0;
/// `(major << 8) | minor` = 0x0200, carried in HELLO min/max_version and INIT version (section 2).
inline constexpr std::uint16_t kVersion = static_cast<std::uint16_t>((kVersionMajor << 8) | kVersionMinor);
static_assert(kVersion == 0x0200);

/// Every control message is one SOCK_SEQPACKET datagram of exactly this many bytes (sections 2, 4).
inline constexpr std::size_t kMessageSize = 128;
/// Bytes of the shared secret field in INIT (section 2).
inline constexpr std::size_t kSecretSize = 24;
/// Bytes of the application-name and interface-name fields (section 2).
inline constexpr std::size_t kNameSize = 32;
/// Bytes of the reason string in DISCONNECT (section 5).
inline constexpr std::size_t kDisconnectStringSize = 96;
/// The largest log2 ring size any peer accepts (2^14 slots; section 3). Advertised in HELLO.
inline constexpr std::uint8_t kMaxLog2RingSize = 14;

/// Control message types, the u16 at byte 0 of every message (section 2).
enum class MsgType : std::uint16_t {
  none = 0,        ///< never sent
  ack = 1,         ///< master: INIT/ADD_REGION/ADD_RING accepted
  hello = 2,       ///< master, right after accept
  init = 3,        ///< slave: version, interface id, mode, secret, app name
  add_region = 4,  ///< slave: a shared-memory region (+ its fd)
  add_ring = 5,    ///< slave: a ring (+ its interrupt eventfd)
  connect = 6,     ///< slave: all regions and rings announced
  connected = 7,   ///< master: link up
  disconnect = 8,  ///< either side, any time, then close
};

/// Ring direction (section 2). S2M: data flows slave -> master; M2S: master -> slave.
enum class RingType : std::uint8_t {
  s2m = 0,
  m2s = 1,
};

/// Interface mode, the u8 in INIT (section 2). VPP refuses punt_inject; DPDK supports ethernet only.
enum class Mode : std::uint8_t {
  ethernet = 0,
  ip = 1,
  punt_inject = 2,
};

/// ADD_RING `flags` bit 0: the ring is S2M; clear = M2S (section 2).
inline constexpr std::uint16_t kAddRingFlagS2m = 1u << 0;
/// Descriptor `flags` bit 0: the packet continues in the next descriptor (sections 2, 9.3, 11).
inline constexpr std::uint16_t kDescFlagNext = 1u << 0;
/// Ring header `flags` bit 0, set by the ring's receiver: "don't signal me, I poll" (sections 2, 12).
inline constexpr std::uint16_t kRingFlagMaskInt = 1u << 0;

// ---- control messages (reference section 5) --------------------------------------------------
//
// One message, 128 bytes, packed, absolute offsets:
//
//    0               1               2               3
//    0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//   +-------------------------------+-------------------------------+
//   |          type (u16)           |   payload (union, 126 bytes)  |  0
//   +-------------------------------+                               +
//   |                              ...                              |
//   +---------------------------------------------------------------+ 128
//
// The payload structs below start at byte 2; their fields' offsets inside the message are given
// in each struct's comments and checked with static_asserts after the Message definition. Bytes
// after a payload's last field are padding: zeroed by us, ignored on receipt (peers send garbage).

/// HELLO payload (type 2, master -> slave, right after accept; section 5). 43 bytes.
///
///   @2  name[32]            application name of the master
///   @34 min_version u16     @36 max_version u16
///   @38 max_region u16      @40 max_m2s_ring u16   @42 max_s2m_ring u16  (maximum *indices*)
///   @44 max_log2_ring_size u8
struct [[gnu::packed]] Hello {
  char name[kNameSize];
  std::uint16_t min_version;
  std::uint16_t max_version;
  std::uint16_t max_region;
  std::uint16_t max_m2s_ring;
  std::uint16_t max_s2m_ring;
  std::uint8_t max_log2_ring_size;
};

/// INIT payload (type 3, slave -> master; section 5). 63 bytes.
///
///   @2 version u16   @4 id u32   @8 mode u8   @9 secret[24]   @33 name[32] (application name)
struct [[gnu::packed]] Init {
  std::uint16_t version;
  std::uint32_t id;
  std::uint8_t mode;
  char secret[kSecretSize];
  char name[kNameSize];
};

/// ADD_REGION payload (type 4, slave -> master, with the region's memory fd; section 5). 10 bytes.
///
///   @2 index u16   @4 size u64
struct [[gnu::packed]] AddRegion {
  std::uint16_t index;
  std::uint64_t size;
};

/// ADD_RING payload (type 5, slave -> master, with the ring's interrupt eventfd; section 5). 13 bytes.
///
///   @2 flags u16 (bit 0 = S2M)   @4 index u16   @6 region u16   @8 offset u32 (inside the region)
///   @12 log2_ring_size u8        @13 private_hdr_size u16 (must be 0)
struct [[gnu::packed]] AddRing {
  std::uint16_t flags;
  std::uint16_t index;
  std::uint16_t region;
  std::uint32_t offset;
  std::uint8_t log2_ring_size;
  std::uint16_t private_hdr_size;
};

/// CONNECT payload (type 6, slave -> master; section 5). 32 bytes: @2 if_name[32] (interface name).
struct [[gnu::packed]] Connect {
  char if_name[kNameSize];
};

/// CONNECTED payload (type 7, master -> slave; section 5). 32 bytes: @2 if_name[32].
struct [[gnu::packed]] Connected {
  char if_name[kNameSize];
};

/// DISCONNECT payload (type 8, either side; section 5). 100 bytes: @2 code u32, @6 string[96].
/// Every observed code is 0; the reason is in the string.
struct [[gnu::packed]] Disconnect {
  std::uint32_t code;
  char string[kDisconnectStringSize];
};

/// The 126 bytes after `type`: one of the payloads, or raw bytes. `raw` comes first so that
/// value-initialisation (`Message{}`) zeroes all of it.
union [[gnu::packed]] Payload {
  std::uint8_t raw[kMessageSize - 2];
  Hello hello;
  Init init;
  AddRegion add_region;
  AddRing add_ring;
  Connect connect;
  Connected connected;
  Disconnect disconnect;
};

/// One control message exactly as it travels in one datagram (sections 4, 5): `type` (a MsgType
/// value) at byte 0, the payload from byte 2, 128 bytes in all. Trivially copyable; read the
/// payload through the decode_* functions, which copy bytes out instead of punning the union.
struct [[gnu::packed]] Message {
  std::uint16_t type;
  Payload payload;
};

static_assert(sizeof(Hello) == 43);
static_assert(sizeof(Init) == 63);
static_assert(sizeof(AddRegion) == 10);
static_assert(sizeof(AddRing) == 13);
static_assert(sizeof(Connect) == 32);
static_assert(sizeof(Connected) == 32);
static_assert(sizeof(Disconnect) == 100);
static_assert(sizeof(Payload) == 126);
static_assert(sizeof(Message) == kMessageSize);
static_assert(std::is_trivially_copyable_v<Message> && std::is_standard_layout_v<Message>);

/// Offset of the payload union inside a message (section 5: "the payload union starts at byte 2").
inline constexpr std::size_t kPayloadOffset = offsetof(Message, payload);
static_assert(offsetof(Message, type) == 0);
static_assert(kPayloadOffset == 2);
// Absolute offsets, one per row of the table in section 5.
static_assert(kPayloadOffset + offsetof(Hello, name) == 2);
static_assert(kPayloadOffset + offsetof(Hello, min_version) == 34);
static_assert(kPayloadOffset + offsetof(Hello, max_version) == 36);
static_assert(kPayloadOffset + offsetof(Hello, max_region) == 38);
static_assert(kPayloadOffset + offsetof(Hello, max_m2s_ring) == 40);
static_assert(kPayloadOffset + offsetof(Hello, max_s2m_ring) == 42);
static_assert(kPayloadOffset + offsetof(Hello, max_log2_ring_size) == 44);
static_assert(kPayloadOffset + offsetof(Init, version) == 2);
static_assert(kPayloadOffset + offsetof(Init, id) == 4);
static_assert(kPayloadOffset + offsetof(Init, mode) == 8);
static_assert(kPayloadOffset + offsetof(Init, secret) == 9);
static_assert(kPayloadOffset + offsetof(Init, name) == 33);
static_assert(kPayloadOffset + offsetof(AddRegion, index) == 2);
static_assert(kPayloadOffset + offsetof(AddRegion, size) == 4);
static_assert(kPayloadOffset + offsetof(AddRing, flags) == 2);
static_assert(kPayloadOffset + offsetof(AddRing, index) == 4);
static_assert(kPayloadOffset + offsetof(AddRing, region) == 6);
static_assert(kPayloadOffset + offsetof(AddRing, offset) == 8);
static_assert(kPayloadOffset + offsetof(AddRing, log2_ring_size) == 12);
static_assert(kPayloadOffset + offsetof(AddRing, private_hdr_size) == 13);
static_assert(kPayloadOffset + offsetof(Connect, if_name) == 2);
static_assert(kPayloadOffset + offsetof(Connected, if_name) == 2);
static_assert(kPayloadOffset + offsetof(Disconnect, code) == 2);
static_assert(kPayloadOffset + offsetof(Disconnect, string) == 6);

// ---- shared memory: descriptor and ring header (reference section 9) --------------------------

/// One ring slot (`memif_desc_t`, section 9.3), 16 bytes:
///
///    0               1               2               3
///   +-------------------------------+-------------------------------+
///   |          flags (u16)          |          region (u16)         |  0
///   +-------------------------------+-------------------------------+
///   |                          length (u32)                         |  4
///   +---------------------------------------------------------------+
///   |                          offset (u32)                         |  8
///   +---------------------------------------------------------------+
///   |                         metadata (u32)                        | 12
///   +---------------------------------------------------------------+
///
/// flags: bit 0 NEXT (chain continues); region: index of the region holding the buffer; length:
/// S2M bytes of data, M2S capacity when posted by the slave and bytes of data once the master
/// filled it; offset: buffer offset from the start of the region; metadata: unused by all peers.
/// The C original is packed; this one has no padding either way, so it keeps its natural
/// 4-byte alignment (descriptors start at 2 * CL inside a ring, always aligned).
struct Descriptor {
  std::uint16_t flags;
  std::uint16_t region;
  std::uint32_t length;
  std::uint32_t offset;
  std::uint32_t metadata;
};
static_assert(sizeof(Descriptor) == 16);
static_assert(offsetof(Descriptor, flags) == 0);
static_assert(offsetof(Descriptor, region) == 2);
static_assert(offsetof(Descriptor, length) == 4);
static_assert(offsetof(Descriptor, offset) == 8);
static_assert(offsetof(Descriptor, metadata) == 12);

/// Cache-line size that lays out the ring header (section 9.2). It is a build-time constant on
/// both sides and is NOT negotiated: x86_64 peers (libmemif, VPP, DPDK) use 64, but libmemif
/// built for aarch64 uses 128 (its CMake default there), and peers with different values see
/// `tail` and the descriptors at different offsets. Pass 128 to RingHeader/ring_bytes for such
/// peers.
inline constexpr std::uint32_t kCacheLine = 64;

/// Ring header (`memif_ring_t`, section 9.2) for a cache line of `CL` bytes: two lines, `tail`
/// alone on the second, descriptors from the third. Shown for CL = 64 (CL = 128: tail @128,
/// descriptors @256):
///
///    0               1               2               3
///   +---------------------------------------------------------------+
///   |                 cookie (u32) = 0x3E31F20, slave               |  0
///   +-------------------------------+-------------------------------+
///   |  flags (u16), ring's receiver |      head (u16), slave only   |  4
///   +-------------------------------+-------------------------------+
///   |                     padding to the line end                   |  8..CL-1
///   +-------------------------------+-------------------------------+
///   |    tail (u16), master only    |        padding                |  CL
///   +-------------------------------+-------------------------------+
///   |                   Descriptor[2^log2] follow                   |  2*CL
///
/// head and tail are free-running u16 counters, slot = index & (2^log2 - 1) (section 11); they are
/// shared with the peer and must be accessed through std::atomic_ref (acquire the peer's index,
/// release your own).
template <std::uint32_t CL>
struct RingHeader {
  static_assert(CL >= 16 && (CL & (CL - 1)) == 0, "cache line must be a power of two >= 16");
  std::uint32_t cookie;             // 0   kCookie, written by the slave at init
  std::uint16_t flags;              // 4   kRingFlagMaskInt, written by the ring's receiver
  std::uint16_t head;               // 6   written only by the slave
  std::uint8_t pad0[CL - 8];        // the rest of line 0
  std::uint16_t tail;               // CL  written only by the master, alone on its line
  std::uint8_t pad1[CL - 2];        // the rest of line 1
};
static_assert(std::atomic_ref<std::uint16_t>::is_always_lock_free);

/// Offset of `tail` in a ring header for cache line `cl` (section 9.2).
constexpr std::uint64_t ring_tail_offset(std::uint32_t cl) noexcept { return cl; }
/// Offset of descriptor 0 in a ring for cache line `cl` (section 9.2).
constexpr std::uint64_t ring_desc_offset(std::uint32_t cl) noexcept { return std::uint64_t{2} * cl; }
/// Bytes of one ring, header plus 2^log2 descriptors: 2 * cl + 16 << log2 (section 9.2).
/// @param cl cache-line size (64, or 128 for aarch64 libmemif peers); @param log2 ring size log2 (<= 14).
constexpr std::uint64_t ring_bytes(std::uint32_t cl, std::uint32_t log2) noexcept {
  return ring_desc_offset(cl) + (std::uint64_t{sizeof(Descriptor)} << log2);
}

static_assert(sizeof(RingHeader<64>) == 128);
static_assert(offsetof(RingHeader<64>, cookie) == 0);
static_assert(offsetof(RingHeader<64>, flags) == 4);
static_assert(offsetof(RingHeader<64>, head) == 6);
static_assert(offsetof(RingHeader<64>, tail) == 64);
static_assert(sizeof(RingHeader<128>) == 256);
static_assert(offsetof(RingHeader<128>, cookie) == 0);
static_assert(offsetof(RingHeader<128>, flags) == 4);
static_assert(offsetof(RingHeader<128>, head) == 6);
static_assert(offsetof(RingHeader<128>, tail) == 128);
static_assert(ring_tail_offset(64) == offsetof(RingHeader<64>, tail));
static_assert(ring_tail_offset(128) == offsetof(RingHeader<128>, tail));
static_assert(ring_desc_offset(64) == sizeof(RingHeader<64>));
static_assert(ring_desc_offset(128) == sizeof(RingHeader<128>));
// Worked examples from section 9.2/9.4: 1024 slots at CL 64 -> 16 512 bytes; at CL 128 -> 16 640.
static_assert(ring_bytes(64, 10) == 16512);
static_assert(ring_bytes(128, 10) == 16640);
static_assert(ring_bytes(64, kMaxLog2RingSize) == 128 + 16 * 16384);

// ---- building messages -----------------------------------------------------------------------

/// A message of `type` with all 126 payload bytes zero (section 4: "zero your own unused bytes").
/// ACK is exactly this.
inline Message make_message(MsgType type) noexcept {
  Message m;
  std::memset(&m, 0, sizeof m);
  m.type = static_cast<std::uint16_t>(type);
  return m;
}

/// The message's type field (bytes 0-1, section 5) as the enum; may hold a value outside MsgType
/// when a peer sends an unknown type (libmemif answers those with MEMIF_ERR_UNKNOWN_MSG, section 15).
constexpr MsgType message_type(const Message& m) noexcept { return static_cast<MsgType>(m.type); }

/// The 128 bytes of `m` as they go on the wire (section 5).
inline std::array<std::uint8_t, kMessageSize> message_bytes(const Message& m) noexcept {
  std::array<std::uint8_t, kMessageSize> out;
  std::memcpy(out.data(), &m, kMessageSize);
  return out;
}

/// A message from 128 raw bytes exactly as received (section 5). Nothing is validated.
inline Message message_from_bytes(std::span<const std::uint8_t, kMessageSize> bytes) noexcept {
  Message m;
  std::memcpy(&m, bytes.data(), kMessageSize);
  return m;
}

namespace detail {

/// Copies `s` into a fixed field of N bytes; the rest of the field is zeroed. Text fields (names,
/// the disconnect reason) keep at most N - 1 bytes, so what we send always ends in a NUL inside
/// its field: a peer reading it with strlen() stays in the message. Byte fields (the secret,
/// compared as 24 bytes) may fill all N. Received strings are read NUL- or field-bounded
/// (get_string; section 4).
template <std::size_t N>
void put_string(char (&field)[N], std::string_view s, bool text = true) noexcept {
  const std::size_t n = std::min(s.size(), text ? N - 1 : N);
  std::memset(field, 0, N);
  if (n != 0) std::memcpy(field, s.data(), n);
}

/// Reads a fixed field of N bytes up to its first NUL, or all N bytes when there is none
/// (section 4: never require a NUL, never look past the field).
template <std::size_t N>
std::string get_string(const char (&field)[N]) {
  const void* nul = std::memchr(field, '\0', N);
  const std::size_t n = nul == nullptr ? N : static_cast<std::size_t>(static_cast<const char*>(nul) - field);
  return std::string(field, n);
}

/// Copies the payload bytes of `m` into a payload struct (no union punning).
template <class P>
P read_payload(const Message& m) noexcept {
  P p;
  std::memcpy(&p, reinterpret_cast<const unsigned char*>(&m) + kPayloadOffset, sizeof p);
  return p;
}

/// Builds a zeroed message of `type` carrying payload `p`.
template <class P>
Message with_payload(MsgType type, const P& p) noexcept {
  Message m = make_message(type);
  std::memcpy(reinterpret_cast<unsigned char*>(&m) + kPayloadOffset, &p, sizeof p);
  return m;
}

}  // namespace detail

// ---- decoded forms (plain C++ values) and their encoders/decoders -----------------------------
//
// encode_*: a zero-padded 128-byte message; strings are truncated to their field (a string that
// fills the field is sent without a NUL). decode_*: reads the fields of the payload regardless of
// `type` (check message_type() first); strings stop at the first NUL or the field end; padding
// and bytes after the payload are never looked at.

/// HELLO's content (section 5). Limits are maximum *indices* (libmemif sends 255, VPP 256; section 3).
struct HelloInfo {
  std::string name;                            ///< master's application name, <= 32 bytes
  std::uint16_t min_version = kVersion;        ///< lowest protocol version spoken
  std::uint16_t max_version = kVersion;        ///< highest protocol version spoken
  std::uint16_t max_region = 255;              ///< highest region index accepted
  std::uint16_t max_m2s_ring = 255;            ///< highest M2S ring index accepted
  std::uint16_t max_s2m_ring = 255;            ///< highest S2M ring index accepted
  std::uint8_t max_log2_ring_size = kMaxLog2RingSize;  ///< largest log2 ring size accepted
};

/// INIT's content (section 5).
struct InitInfo {
  std::uint16_t version = kVersion;  ///< must be 0x0200 for any master
  std::uint32_t id = 0;              ///< interface id: selects the master interface on the socket
  Mode mode = Mode::ethernet;        ///< raw u8 on the wire; may be outside Mode when decoded
  std::string secret;                ///< <= 24 bytes; empty = none
  std::string name;                  ///< slave's application name, <= 32 bytes
};

/// ADD_REGION's content (section 5); the region fd travels beside the message.
struct AddRegionInfo {
  std::uint16_t index = 0;  ///< region index, announced in order 0, 1, 2, ...
  std::uint64_t size = 0;   ///< bytes to map from offset 0 of the region fd
};

/// ADD_RING's content (section 5); the ring's eventfd travels beside the message.
struct AddRingInfo {
  RingType type = RingType::s2m;     ///< from flags bit 0 (kAddRingFlagS2m)
  std::uint16_t flags = 0;           ///< the raw flags word (decode); ignored by encode, which derives it from `type`
  std::uint16_t index = 0;           ///< ring index within its direction, in order 0, 1, 2, ...
  std::uint16_t region = 0;          ///< region holding the ring
  std::uint32_t offset = 0;          ///< byte offset of the ring inside that region
  std::uint8_t log2_ring_size = 10;  ///< ring has 2^log2 slots
  std::uint16_t private_hdr_size = 0;  ///< must be 0 (masters reject anything else; section 7)
};

/// DISCONNECT's content (section 5).
struct DisconnectInfo {
  std::uint32_t code = 0;  ///< 0 in every observed peer
  std::string reason;      ///< <= 96 bytes
};

/// An ACK (type 1): no payload, all zero (section 5).
inline Message encode_ack() noexcept { return make_message(MsgType::ack); }

/// A HELLO (type 2) from `h` (section 5).
inline Message encode_hello(const HelloInfo& h) noexcept {
  Hello p{};
  detail::put_string(p.name, h.name);
  p.min_version = h.min_version;
  p.max_version = h.max_version;
  p.max_region = h.max_region;
  p.max_m2s_ring = h.max_m2s_ring;
  p.max_s2m_ring = h.max_s2m_ring;
  p.max_log2_ring_size = h.max_log2_ring_size;
  return detail::with_payload(MsgType::hello, p);
}

/// An INIT (type 3) from `i` (section 5).
inline Message encode_init(const InitInfo& i) noexcept {
  Init p{};
  p.version = i.version;
  p.id = i.id;
  p.mode = static_cast<std::uint8_t>(i.mode);
  detail::put_string(p.secret, i.secret, /*text=*/false);
  detail::put_string(p.name, i.name);
  return detail::with_payload(MsgType::init, p);
}

/// An ADD_REGION (type 4) from `r` (section 5). Send it with the region's fd.
inline Message encode_add_region(const AddRegionInfo& r) noexcept {
  AddRegion p{};
  p.index = r.index;
  p.size = r.size;
  return detail::with_payload(MsgType::add_region, p);
}

/// An ADD_RING (type 5) from `r` (section 5); flags = kAddRingFlagS2m for S2M rings, else 0.
/// Send it with the ring's eventfd.
inline Message encode_add_ring(const AddRingInfo& r) noexcept {
  AddRing p{};
  p.flags = r.type == RingType::s2m ? kAddRingFlagS2m : std::uint16_t{0};
  p.index = r.index;
  p.region = r.region;
  p.offset = r.offset;
  p.log2_ring_size = r.log2_ring_size;
  p.private_hdr_size = r.private_hdr_size;
  return detail::with_payload(MsgType::add_ring, p);
}

/// A CONNECT (type 6) carrying the slave's interface name (section 5).
inline Message encode_connect(std::string_view if_name) noexcept {
  Connect p{};
  detail::put_string(p.if_name, if_name);
  return detail::with_payload(MsgType::connect, p);
}

/// A CONNECTED (type 7) carrying the master's interface name (section 5).
inline Message encode_connected(std::string_view if_name) noexcept {
  Connected p{};
  detail::put_string(p.if_name, if_name);
  return detail::with_payload(MsgType::connected, p);
}

/// A DISCONNECT (type 8) with `code` (use 0) and a reason, truncated to 96 bytes (section 5).
inline Message encode_disconnect(std::uint32_t code, std::string_view reason) noexcept {
  Disconnect p{};
  p.code = code;
  detail::put_string(p.string, reason);
  return detail::with_payload(MsgType::disconnect, p);
}

/// HELLO fields of `m` (section 5).
inline HelloInfo decode_hello(const Message& m) {
  const auto p = detail::read_payload<Hello>(m);
  HelloInfo h;
  h.name = detail::get_string(p.name);
  h.min_version = p.min_version;
  h.max_version = p.max_version;
  h.max_region = p.max_region;
  h.max_m2s_ring = p.max_m2s_ring;
  h.max_s2m_ring = p.max_s2m_ring;
  h.max_log2_ring_size = p.max_log2_ring_size;
  return h;
}

/// INIT fields of `m` (section 5).
inline InitInfo decode_init(const Message& m) {
  const auto p = detail::read_payload<Init>(m);
  InitInfo i;
  i.version = p.version;
  i.id = p.id;
  i.mode = static_cast<Mode>(p.mode);
  i.secret = detail::get_string(p.secret);
  i.name = detail::get_string(p.name);
  return i;
}

/// ADD_REGION fields of `m` (section 5).
inline AddRegionInfo decode_add_region(const Message& m) noexcept {
  const auto p = detail::read_payload<AddRegion>(m);
  return AddRegionInfo{p.index, p.size};
}

/// ADD_RING fields of `m` (section 5); `type` from flags bit 0, `flags` as received.
inline AddRingInfo decode_add_ring(const Message& m) noexcept {
  const auto p = detail::read_payload<AddRing>(m);
  AddRingInfo r;
  r.flags = p.flags;
  r.type = (p.flags & kAddRingFlagS2m) != 0 ? RingType::s2m : RingType::m2s;
  r.index = p.index;
  r.region = p.region;
  r.offset = p.offset;
  r.log2_ring_size = p.log2_ring_size;
  r.private_hdr_size = p.private_hdr_size;
  return r;
}

/// The interface name of a CONNECT (section 5).
inline std::string decode_connect(const Message& m) { return detail::get_string(detail::read_payload<Connect>(m).if_name); }

/// The interface name of a CONNECTED (section 5).
inline std::string decode_connected(const Message& m) {
  return detail::get_string(detail::read_payload<Connected>(m).if_name);
}

/// DISCONNECT fields of `m` (section 5).
inline DisconnectInfo decode_disconnect(const Message& m) {
  const auto p = detail::read_payload<Disconnect>(m);
  return DisconnectInfo{p.code, detail::get_string(p.string)};
}

}  // namespace shmlink::memif::wire
