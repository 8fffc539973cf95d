// SPDX-License-Identifier: MIT
// The queue kinds of the bridge wire format (queue_wire.hpp). Little-endian x86-64 only, as every
// shmlink layout: fields are copied with memcpy at their offsets, never through a cast pointer.
#include "bridge/queue_wire.hpp"

#include "bridge/wire.hpp"

#include <bit>
#include <cstring>
#include <set>

static_assert(std::endian::native == std::endian::little, "the bridge wire format is little-endian");

namespace shmlink::bridge::queue_wire {
namespace {

template <class T>
void put(std::span<std::byte> out, std::size_t off, T v) noexcept {
  std::memcpy(out.data() + off, &v, sizeof v);
}
template <class T>
T get(std::span<const std::byte> in, std::size_t off) noexcept {
  T v{};
  std::memcpy(&v, in.data() + off, sizeof v);
  return v;
}

}  // namespace

std::array<std::byte, kHeaderBytes> encode_header(const Header& h) noexcept {
  wire::Header w = wire::make_header(static_cast<wire::Kind>(h.kind));
  w.flags = h.flags;
  w.payload_bytes = h.payload_bytes;
  w.sequence = h.sequence;
  w.write_time_ns = h.write_time_ns;
  w.send_time_ns = h.send_time_ns;
  w.cnt1 = h.ack;
  w.generation = h.generation;
  w.dtype = h.sample_bytes;
  w.size[0] = h.capacity;
  w.size[1] = h.count;
  return wire::encode(w);
}

std::optional<Header> decode_header(std::span<const std::byte> frame, std::size_t payload_size, std::string& why) {
  // The rules every kind shares (size, magic, version, header_bytes, known kind, zero padding,
  // payload size) are the wire header's own.
  wire::Header w;
  if (const wire::DecodeError e = wire::decode(frame, payload_size, w); e != wire::DecodeError::ok) {
    why = wire::describe(e);
    return std::nullopt;
  }
  if (w.kind != 16 && w.kind != 17 && w.kind != 18) {
    why = "kind " + std::to_string(w.kind) + " is not a queue kind";
    return std::nullopt;
  }
  Header h;
  h.kind = static_cast<Kind>(w.kind);
  h.flags = w.flags;
  h.payload_bytes = w.payload_bytes;
  h.sequence = w.sequence;
  h.write_time_ns = w.write_time_ns;
  h.send_time_ns = w.send_time_ns;
  h.ack = w.cnt1;
  h.generation = w.generation;
  h.sample_bytes = w.dtype;
  h.capacity = w.size[0];
  h.count = w.size[1];
  auto sample_bytes_ok = [&] {
    if (h.sample_bytes % 8 == 0 && h.sample_bytes >= 8 && h.sample_bytes <= kMaxSampleValues * 8) return true;
    why = "sample bytes " + std::to_string(h.sample_bytes) + " is not 8 .. " + std::to_string(kMaxSampleValues * 8) +
          " in steps of 8";
    return false;
  };
  switch (h.kind) {
    case Kind::samples: {
      if (!sample_bytes_ok()) return std::nullopt;
      const std::size_t rec = record_bytes(h.sample_bytes / 8);
      // count <= 2^32 and rec <= 32 + 32768: the product fits in 64 bits.
      if (h.count == 0 || h.count > kMaxBatch || std::uint64_t{h.count} * rec != h.payload_bytes) {
        why = std::to_string(h.count) + " records of " + std::to_string(rec) + " bytes do not make " +
              std::to_string(h.payload_bytes) + " payload bytes";
        return std::nullopt;
      }
      break;
    }
    case Kind::ack:
      if (h.payload_bytes != 0) {
        why = "queue_ack with a payload of " + std::to_string(h.payload_bytes) + " bytes";
        return std::nullopt;
      }
      break;
    case Kind::hello:
      if (!sample_bytes_ok()) return std::nullopt;
      if (h.capacity < 2 || h.capacity > kMaxQueueCapacity || !std::has_single_bit(h.capacity)) {
        why = "capacity " + std::to_string(h.capacity) + " is not a power of two in 2 .. " +
              std::to_string(kMaxQueueCapacity);
        return std::nullopt;
      }
      if (h.count > kMaxSampleValues || std::uint64_t{h.count} * kSignalBytes != h.payload_bytes) {
        why = std::to_string(h.count) + " signals do not make " + std::to_string(h.payload_bytes) + " payload bytes";
        return std::nullopt;
      }
      break;
  }
  return h;
}

void encode_record(const SampleView& s, std::uint32_t max_values, std::span<std::byte> out) noexcept {
  std::memset(out.data(), 0, record_bytes(max_values));
  put(out, 0, s.sequence);
  put(out, 8, s.ts_origin_ns);
  put(out, 16, s.ts_received_ns);
  put(out, 24, s.flags);
  put(out, 28, static_cast<std::uint32_t>(s.values.size()));
  if (!s.values.empty()) std::memcpy(out.data() + kRecordHead, s.values.data(), s.values.size() * 8);
}

bool decode_record(std::span<const std::byte> payload, std::uint32_t max_values, std::size_t index, SampleView& out,
                   std::vector<SignalValue>& values, std::string& why) {
  const std::size_t rec = record_bytes(max_values);
  const std::span<const std::byte> r = payload.subspan(index * rec, rec);
  const auto length = get<std::uint32_t>(r, 28);
  if (length > max_values) {
    why = "record " + std::to_string(index) + " has " + std::to_string(length) + " values, more than " +
          std::to_string(max_values);
    return false;
  }
  values.resize(max_values);
  if (length != 0) std::memcpy(values.data(), r.data() + kRecordHead, std::size_t{length} * 8);
  out.sequence = get<std::uint64_t>(r, 0);
  out.ts_origin_ns = get<std::int64_t>(r, 8);
  out.ts_received_ns = get<std::int64_t>(r, 16);
  out.flags = get<std::uint32_t>(r, 24);
  out.values = std::span<const SignalValue>(values.data(), length);
  return true;
}

std::vector<std::byte> encode_signals(const std::vector<Signal>& signals) {
  std::vector<std::byte> b(signals.size() * kSignalBytes);
  std::span<std::byte> o(b);
  for (std::size_t i = 0; i < signals.size(); ++i) {
    auto r = o.subspan(i * kSignalBytes, kSignalBytes);
    put(r, 0, signals[i].index);
    put(r, 4, static_cast<std::uint8_t>(signals[i].type));
    // Queue signal names and units are at most 39 and 15 bytes: they fit with their NUL.
    std::memcpy(r.data() + 8, signals[i].name.data(), std::min<std::size_t>(signals[i].name.size(), 39));
    std::memcpy(r.data() + 48, signals[i].unit.data(), std::min<std::size_t>(signals[i].unit.size(), 15));
  }
  return b;
}

std::optional<std::vector<Signal>> decode_signals(std::span<const std::byte> payload, std::uint32_t max_values,
                                                  std::string& why) {
  std::vector<Signal> out;
  std::set<std::uint32_t> seen;
  for (std::size_t i = 0; i < payload.size() / kSignalBytes; ++i) {
    const auto r = payload.subspan(i * kSignalBytes, kSignalBytes);
    Signal s;
    s.index = get<std::uint32_t>(r, 0);
    const auto type = get<std::uint8_t>(r, 4);
    const char* name = reinterpret_cast<const char*>(r.data() + 8);
    const char* unit = reinterpret_cast<const char*>(r.data() + 48);
    const std::size_t name_len = ::strnlen(name, 40), unit_len = ::strnlen(unit, 16);
    if (s.index >= max_values || !seen.insert(s.index).second) {
      why = "signal " + std::to_string(i) + " has index " + std::to_string(s.index) + " (repeated or not below " +
            std::to_string(max_values) + ")";
      return std::nullopt;
    }
    if (type < 1 || type > 4) {
      why = "signal " + std::to_string(i) + " has type " + std::to_string(type);
      return std::nullopt;
    }
    if (name_len == 40 || unit_len == 16) {
      why = "signal " + std::to_string(i) + " has a name or unit without its NUL";
      return std::nullopt;
    }
    // Padding (bytes 5..7) and whatever follows each NUL are zero, as encode_signals writes
    // them: a record decodes one way only, and nothing unread travels in it.
    const auto zero = [&](std::size_t from, std::size_t to) {
      for (std::size_t k = from; k < to; ++k)
        if (r[k] != std::byte{0}) return false;
      return true;
    };
    if (!zero(5, 8) || !zero(8 + name_len, 48) || !zero(48 + unit_len, 64)) {
      why = "signal " + std::to_string(i) + " has non-zero padding";
      return std::nullopt;
    }
    s.type = static_cast<SignalType>(type);
    s.name.assign(name, name_len);
    s.unit.assign(unit, unit_len);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace shmlink::bridge::queue_wire
