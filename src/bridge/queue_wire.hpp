// SPDX-License-Identifier: MIT
/// @file queue_wire.hpp
/// @brief The queue kinds of the bridge's wire format: queue_samples (16), queue_ack (17) and
/// queue_hello (18) in the 128-byte little-endian bridge header (docs/design/bridge.md, "Queues:
/// exactly once"), encoded and decoded without trusting a byte of the peer's message.
///
/// Built on the bridge header of wire.hpp (wire::Header, wire::encode/decode: magic "SHLB",
/// version 1, header_bytes 128, zero padding, payload size); the queue kinds use these fields:
///
///   off  field          queue_samples            queue_ack              queue_hello
///   24   sequence       first sample's number    0                      sender's first unacked
///   32   write_time_ns  first sample's origin    0                      0
///   40   send_time_ns   CLOCK_REALTIME at send   same                   same
///   48   ack            sender's acked point     receiver's next expected  sender's next number
///   64   generation     source queue's creation_time_ns (all three)
///   72   sample bytes   max_values * 8           0                      max_values * 8
///   80   size[0]        capacity                 0                      capacity
///   84   size[1]        records in the payload   0                      signals in the payload
///
/// A queue_samples payload is `count` records of kRecordHead + sample bytes each:
///
///    0        8        16       24     28     32
///   +--------+--------+--------+------+------+------------------------------+
///   |sequence|ts_orig |ts_recv |flags |length| values: max_values x 8 bytes |
///   +--------+--------+--------+------+------+------------------------------+
///
/// (the sample's own fields; the bridge's numbering is the header's sequence plus the record's
/// index). A queue_hello payload is the signal table, kSignalBytes per signal:
/// u32 index, u8 type, 3 pad, 40 bytes name (NUL-padded), 16 bytes unit.
#pragma once

#include <shmlink/queue.hpp>

#include "bridge/wire.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shmlink::bridge::queue_wire {

inline constexpr std::size_t kHeaderBytes = wire::kHeaderBytes;
inline constexpr std::size_t kRecordHead = 32;
inline constexpr std::size_t kSignalBytes = 64;

/// The queue message kinds (contract: 16..18).
enum class Kind : std::uint16_t { samples = 16, ack = 17, hello = 18 };

/// queue_ack flags.
inline constexpr std::uint32_t kAckReply = 1U << 0;      ///< the answer to a queue_hello
inline constexpr std::uint32_t kAckGap = 1U << 1;        ///< a sample after a missing one arrived: resend from ack
inline constexpr std::uint32_t kAckBusy = 1U << 2;       ///< alive, but the local queue is full
inline constexpr std::uint32_t kAckNeedHello = 1U << 3;  ///< the receiver has no queue yet: say hello

/// The header fields the queue kinds use, decoded.
struct Header {
  Kind kind = Kind::ack;
  std::uint32_t flags = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t sequence = 0;
  std::uint64_t write_time_ns = 0;
  std::uint64_t send_time_ns = 0;
  std::uint64_t ack = 0;
  std::uint64_t generation = 0;
  std::uint32_t sample_bytes = 0;  ///< max_values * 8
  std::uint32_t capacity = 0;
  std::uint32_t count = 0;  ///< records (samples) or signals (hello)
};

/// The bytes of one record for queues of `max_values` values.
constexpr std::size_t record_bytes(std::uint32_t max_values) noexcept {
  return kRecordHead + std::size_t{max_values} * 8;
}

/// Most records in one queue_samples message (a sender's batch): with the largest record
/// (kMaxSampleValues values) a payload part stays below 135 MB, the bound a receiver's socket
/// sets on a message part (ZMQ_MAXMSGSIZE) before it binds.
inline constexpr std::uint32_t kMaxBatch = 4096;

/// The largest legal message part a receiver of samples of `max_values` values can be sent (a
/// full batch of records, or a hello's signal table, or a header): its ZMQ_MAXMSGSIZE.
constexpr std::size_t max_receiver_part(std::uint32_t max_values) noexcept {
  const std::size_t batch = std::size_t{kMaxBatch} * record_bytes(max_values);
  const std::size_t hello = std::size_t{kMaxSampleValues} * kSignalBytes;
  return std::max({batch, hello, kHeaderBytes});
}

/// Writes `h` as the 128-byte bridge header (wire::encode; the fields queue kinds do not use 0).
std::array<std::byte, kHeaderBytes> encode_header(const Header& h) noexcept;

/// Decodes and checks a header frame and the size of the payload frame that came with it
/// (`payload_size`: 0 when absent). Refuses (nullopt, `why` says what) whatever wire::decode()
/// refuses (size, magic, version, header_bytes, padding, a payload size that disagrees with
/// payload_bytes), a kind that is not a queue kind, and a payload against the kind's rule (samples: 1 .. kMaxBatch records of
/// record_bytes(sample_bytes / 8), sample_bytes a multiple of 8 in 8 .. kMaxSampleValues * 8;
/// ack: no payload; hello: count signals of kSignalBytes, capacity a power of two in
/// 2 .. kMaxQueueCapacity, count at most kMaxSampleValues).
std::optional<Header> decode_header(std::span<const std::byte> frame, std::size_t payload_size, std::string& why);

/// Writes the record of `s` (values beyond its length zero) into `out` (record_bytes(max_values)).
/// `s.values.size()` must be at most max_values.
void encode_record(const SampleView& s, std::uint32_t max_values, std::span<std::byte> out) noexcept;

/// Reads record `index` of a checked queue_samples payload into `out`, its values copied into
/// `values` (resized to max_values). False (and `why`) when the record's length exceeds max_values.
bool decode_record(std::span<const std::byte> payload, std::uint32_t max_values, std::size_t index, SampleView& out,
                   std::vector<SignalValue>& values, std::string& why);

/// The hello payload of a signal table.
std::vector<std::byte> encode_signals(const std::vector<Signal>& signals);

/// Reads a checked hello payload; nullopt (and `why`) for a signal whose index is not below
/// `max_values`, a repeated index, a type that is not a SignalType, or a name or unit that is not
/// NUL-terminated within its field, or non-zero padding (bytes 5..7, and the bytes after the
/// name's and the unit's NUL).
std::optional<std::vector<Signal>> decode_signals(std::span<const std::byte> payload, std::uint32_t max_values,
                                                  std::string& why);

}  // namespace shmlink::bridge::queue_wire
