// SPDX-License-Identifier: MIT
/// @file wire.hpp
/// @brief The bridge's wire format: every message is a ZeroMQ multipart message
/// [topic, header, payload] whose header is this fixed 128-byte little-endian struct
/// (docs/design/bridge.md, "Wire format"). Encoding is a copy of the struct; decoding validates
/// every field before a byte of payload is trusted, and says what was wrong.
///
/// ```
///  0               1               2               3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------------------------------------------------------+
/// |                     magic 0x424C4853 "SHLB"                   |  0
/// +-------------------------------+-------------------------------+
/// |          version (1)          |             kind              |  4
/// +-------------------------------+-------------------------------+
/// |                      flags (per kind)                         |  8
/// +---------------------------------------------------------------+
/// |                      header_bytes (128)                       | 12
/// +---------------------------------------------------------------+
/// |                   payload_bytes (u64)                         | 16
/// |   sequence (u64): stream source cnt0 / queue sample number    | 24
/// |   write_time_ns (u64, CLOCK_REALTIME)                         | 32
/// |   send_time_ns (u64, CLOCK_REALTIME)                          | 40
/// |   cnt1 (stream) / ack (queue)                                 | 48
/// |   skipped (u64): source frames not sent since the previous   | 56
/// |   generation (u64): channel incarnation                       | 64
/// +---------------------------------------------------------------+
/// |          dtype (ISIO code) / queue sample bytes (u32)         | 72
/// +---------------+-----------------------------------------------+
/// |     naxis     |              pad (0, 3 bytes)                 | 76
/// +---------------+-----------------------------------------------+
/// |            size[0], size[1], size[2] (u32 each)               | 80
/// |                     keyword_count (u32)                       | 92
/// |                     reserved (0, 32 bytes)                    | 96
/// +---------------------------------------------------------------+ 128
/// ```
#pragma once

#include <shmlink/stream.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace shmlink::bridge::wire {

static_assert(std::endian::native == std::endian::little, "the bridge's wire format is little-endian");

inline constexpr std::uint32_t kMagic = 0x424C4853;  ///< bytes "SHLB" in little-endian order
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::uint32_t kHeaderBytes = 128;
/// Largest payload a receiver accepts (4 GiB): a header announcing more is refused before any
/// allocation.
inline constexpr std::uint64_t kMaxPayloadBytes = std::uint64_t{1} << 32;
/// Smallest ZMQ_MAXMSGSIZE any bridge socket sets, in bytes, however small its largest legal
/// message: libzmq applies the limit to the security handshake's commands too (CURVE's WELCOME is
/// 168 bytes, its INITIATE and READY carry metadata), so a tighter limit drops every CURVE
/// connection before its first message.
inline constexpr std::uint64_t kMinPartLimit = 4096;
/// Bytes of one keyword record in a stream_meta payload (see encode_keywords()).
inline constexpr std::size_t kKeywordRecordBytes = 128;

/// Message kinds (header offset 6). 32 and above are reserved for the service.
enum class Kind : std::uint16_t {
  stream_meta = 1,    ///< owner -> replica: shape, dtype, generation; payload = keyword records
  stream_frame = 2,   ///< owner -> replica: one source frame (payload = the frame, C order)
  stream_write = 3,   ///< replica -> owner: a frame written locally on the replica
  heartbeat = 4,      ///< either way, when idle; a replica's also says "want" and "ready"
  queue_samples = 16, ///< queue bridge (i22-queue)
  queue_ack = 17,     ///< queue bridge (i22-queue)
  queue_hello = 18,   ///< queue bridge (i22-queue)
  // ---- between services (docs/design/bridge.md, "The service"); topic = the sender's node ----
  service_hello = 32,     ///< either way, every heartbeat: sequence = incarnation, generation =
                          ///< catalogue generation, size[0] = service port; no payload
  catalogue_request = 33, ///< "send me your catalogue"; no payload
  catalogue = 34,         ///< the answer: keyword_count records of kCatalogueRecordBytes
  open_request = 35,      ///< sequence = request id; flags kServiceQueue; payload = channel name
  open_answer = 36,       ///< sequence = request id; payload = endpoint, or (kAnswerRefused)
                          ///< "errc_name TAB message"; size[0] = the publisher's port
  release = 37,           ///< "my replica of this channel is gone"; payload = channel name
};

/// True for the kinds this version knows (1..4, 16..18, 32..37).
constexpr bool kind_known(std::uint16_t k) noexcept {
  return (k >= 1 && k <= 4) || (k >= 16 && k <= 18) || (k >= 32 && k <= 37);
}

/// True for the service's kinds (32..47; 32..37 defined).
constexpr bool is_service_kind(std::uint16_t k) noexcept { return k >= 32 && k <= 47; }

// ---- flags (header offset 8), per kind ----
/// stream_frame: the echo of a write this very replica sent back (stream_write); carries no
/// payload; the replica records the source counters and publishes nothing.
inline constexpr std::uint32_t kFrameEcho = 1U << 0;
/// heartbeat from a replica: it wants the stream's frames (a subscription, renewed by every
/// heartbeat; none for link_timeout ends it).
inline constexpr std::uint32_t kHeartbeatWant = 1U << 0;
/// heartbeat from a replica: it is ready for the next frame (one credit).
inline constexpr std::uint32_t kHeartbeatReady = 1U << 1;
/// heartbeat from a replica: it no longer wants the stream (sent when it closes).
inline constexpr std::uint32_t kHeartbeatRelease = 1U << 2;
/// heartbeat from an owner: the source stream is missing (removed, not re-created yet).
inline constexpr std::uint32_t kHeartbeatSourceMissing = 1U << 3;
/// heartbeat from a replica: it asks for every-frame mode (docs/design/bridge.md, "Every-frame
/// mode"); `cnt1` is then its window (frames in flight it accepts) and `sequence` its
/// acknowledgement (the source cnt0 it published last in `generation`).
inline constexpr std::uint32_t kHeartbeatEveryFrame = 1U << 4;
/// stream_meta: the owner serves this subscriber every frame; `cnt1` is then the source's
/// rolling-buffer depth (1 for a plain stream), the depth the replica is created with. Absent
/// from an owner that serves the latest value (a replica asking every-frame then falls back).
inline constexpr std::uint32_t kMetaEveryFrame = 1U << 0;

/// open_request / release: the channel is a queue (else a stream).
inline constexpr std::uint32_t kServiceQueue = 1U << 0;
/// open_answer: refused; the payload is "errc_name TAB message".
inline constexpr std::uint32_t kAnswerRefused = 1U << 0;
/// Largest payload of open_request / release (a channel name) and of open_answer, in bytes.
inline constexpr std::uint64_t kMaxServiceText = 4096;
/// Bytes of one catalogue record (see encode_catalogue()).
inline constexpr std::size_t kCatalogueRecordBytes = 128;
/// Largest number of records in one catalogue message (1 MiB of records).
inline constexpr std::uint32_t kMaxCatalogueRecords = 8192;

/// The header, exactly as on the wire (little-endian, no implicit padding).
struct Header {
  std::uint32_t magic = kMagic;
  std::uint16_t version = kVersion;
  std::uint16_t kind = 0;
  std::uint32_t flags = 0;
  std::uint32_t header_bytes = kHeaderBytes;
  std::uint64_t payload_bytes = 0;
  std::uint64_t sequence = 0;       ///< stream: source cnt0; queue: sample sequence number
  std::uint64_t write_time_ns = 0;  ///< source write time, CLOCK_REALTIME ns
  std::uint64_t send_time_ns = 0;   ///< CLOCK_REALTIME ns at send
  std::uint64_t cnt1 = 0;           ///< stream: source cnt1; queue: ack
  std::uint64_t skipped = 0;        ///< stream: source frames not sent since the previous message
  std::uint64_t generation = 0;     ///< channel incarnation (changes when the source is re-created)
  std::uint32_t dtype = 0;          ///< ISIO datatype code, or queue sample bytes
  std::uint8_t naxis = 0;
  std::uint8_t pad[3] = {};
  std::uint32_t size[3] = {};       ///< ISIO axes; queue: capacity, sample count, 0
  std::uint32_t keyword_count = 0;
  std::uint8_t reserved[32] = {};
};
static_assert(sizeof(Header) == kHeaderBytes);
static_assert(offsetof(Header, magic) == 0);
static_assert(offsetof(Header, version) == 4);
static_assert(offsetof(Header, kind) == 6);
static_assert(offsetof(Header, flags) == 8);
static_assert(offsetof(Header, header_bytes) == 12);
static_assert(offsetof(Header, payload_bytes) == 16);
static_assert(offsetof(Header, sequence) == 24);
static_assert(offsetof(Header, write_time_ns) == 32);
static_assert(offsetof(Header, send_time_ns) == 40);
static_assert(offsetof(Header, cnt1) == 48);
static_assert(offsetof(Header, skipped) == 56);
static_assert(offsetof(Header, generation) == 64);
static_assert(offsetof(Header, dtype) == 72);
static_assert(offsetof(Header, naxis) == 76);
static_assert(offsetof(Header, pad) == 77);
static_assert(offsetof(Header, size) == 80);
static_assert(offsetof(Header, keyword_count) == 92);
static_assert(offsetof(Header, reserved) == 96);
static_assert(std::is_trivially_copyable_v<Header>);

/// A header of `kind` with magic, version and header_bytes set, everything else 0.
constexpr Header make_header(Kind kind) noexcept {
  Header h;
  h.kind = static_cast<std::uint16_t>(kind);
  return h;
}

/// The 128 bytes of `h` as sent (pad and reserved bytes are sent as 0 whatever `h` holds).
std::array<std::byte, kHeaderBytes> encode(const Header& h) noexcept;

/// What decode() found wrong (Ok: nothing).
enum class DecodeError : std::uint8_t {
  ok = 0,
  header_size,       ///< the header part is not exactly 128 bytes
  magic,             ///< magic is not 0x424C4853 ("SHLB")
  version,           ///< version is not 1
  header_bytes,      ///< header_bytes is not 128
  kind,              ///< unknown kind
  padding,           ///< pad or reserved bytes are not 0
  payload_size,      ///< payload_bytes disagrees with the payload part's size
  payload_too_large, ///< payload_bytes above kMaxPayloadBytes
  dtype,             ///< a stream message's dtype is not an ISIO code 1..13
  shape,             ///< naxis not 1..3, an axis of 0, or a size beyond naxis not 0
  frame_size,        ///< a frame's payload is not product(size) * dtype size
  keyword_size,      ///< stream_meta's payload is not keyword_count * 128 bytes
  flags,             ///< flags this kind does not define
  service_payload,   ///< a service message's payload is not what its kind allows
};

/// A sentence naming the field and what it must be ("magic is not 0x424C4853 (\"SHLB\")").
/// Never null; a string literal.
const char* describe(DecodeError e) noexcept;

/// Validates a received header part (`header`, its exact bytes) against the size of the payload
/// part that came with it (`payload_size`; 0 when the message had no payload part) and copies it
/// into `out`. Checks, in order: header part size, magic, version, header_bytes, kind, zero pad
/// and reserved, payload_bytes against kMaxPayloadBytes and `payload_size`, then per kind:
/// stream_meta / stream_frame / stream_write: dtype 1..13, naxis 1..3, size[i] >= 1 below naxis
/// and 0 above; a frame's payload = product(size) * dtype_size (or 0 for an echo frame);
/// stream_meta's = keyword_count * kKeywordRecordBytes; heartbeat: no payload. Queue kinds are
/// checked for the common fields only (their owners check the rest). Flags a kind does not
/// define are refused. Never reads outside `header`; never throws.
/// @return ok, or the first thing wrong (`out` is then unspecified).
DecodeError decode(std::span<const std::byte> header, std::uint64_t payload_size, Header& out) noexcept;

/// One channel of a catalogue message: kind, name, dtype and shape as the file's header says.
struct CatalogueRecord {
  bool queue = false;                ///< a queue (else a stream)
  std::string name;                  ///< 1..kMaxChannelName bytes, no control characters, no '/'
  std::uint32_t dtype = 0;           ///< stream: ISIO datatype code; queue: bytes per sample
  std::vector<std::uint32_t> shape;  ///< stream: 1..3 axes; queue: {capacity}
};

/// The records as catalogue's payload: one 128-byte record each: kind u8 (1 stream, 2 queue),
/// naxis u8 (0..3), pad u16 (0), dtype u32, size[3] u32 (0 beyond naxis), pad u32 (0),
/// name[104] (NUL-padded). Names longer than kMaxChannelName bytes, or shapes of more than 3
/// axes, are left out (they are not channels).
std::vector<std::byte> encode_catalogue(std::span<const CatalogueRecord> records);

/// Parses catalogue's payload (a multiple of 128 bytes); nullopt when a record has an unknown
/// kind, a naxis above 3, a size beyond naxis, non-zero padding, or a name that is empty, longer
/// than kMaxChannelName, unterminated, or holds '/' or a control character. Never reads outside
/// `payload`.
std::optional<std::vector<CatalogueRecord>> decode_catalogue(std::span<const std::byte> payload);

/// Elements of a stream message's shape (product of size[0..naxis)); 0 when the shape is
/// invalid or the product overflows 2^63.
std::uint64_t shape_elements(const Header& h) noexcept;

/// The keywords of a stream as stream_meta's payload: one 128-byte record per keyword:
/// name[16] (NUL-padded), type u8 ('L', 'D' or 'S'), pad[7] (0), value[16] (int64 LE, double LE,
/// or the string NUL-padded), comment[80] (NUL-padded), pad[8] (0). Names, strings and comments
/// longer than their fields are cut.
std::vector<std::byte> encode_keywords(std::span<const Keyword> keywords);

/// Parses stream_meta's payload (a multiple of 128 bytes); nullopt when a record has an unknown
/// type, a name that is empty, or non-zero padding. Never reads outside `payload`.
std::optional<std::vector<Keyword>> decode_keywords(std::span<const std::byte> payload);

}  // namespace shmlink::bridge::wire
