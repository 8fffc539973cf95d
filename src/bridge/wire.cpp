// SPDX-License-Identifier: MIT
// The bridge's wire header: encode, validating decode, keyword records (docs/design/bridge.md).
#include "bridge/wire.hpp"

#include <algorithm>
#include <cstring>

namespace shmlink::bridge::wire {

namespace {

bool all_zero(const std::uint8_t* p, std::size_t n) noexcept {
  return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0; });
}

bool is_stream_kind(std::uint16_t k) noexcept {
  return k == static_cast<std::uint16_t>(Kind::stream_meta) || k == static_cast<std::uint16_t>(Kind::stream_frame) ||
         k == static_cast<std::uint16_t>(Kind::stream_write);
}

/// Flags each stream kind defines; queue kinds (and the service's) define their own.
std::uint32_t defined_flags(std::uint16_t kind) noexcept {
  switch (static_cast<Kind>(kind)) {
    case Kind::stream_meta: return kMetaEveryFrame;
    case Kind::stream_frame: return kFrameEcho;
    case Kind::stream_write: return 0;
    case Kind::heartbeat:
      return kHeartbeatWant | kHeartbeatReady | kHeartbeatRelease | kHeartbeatSourceMissing | kHeartbeatEveryFrame;
    case Kind::service_hello: return 0;
    case Kind::catalogue_request: return 0;
    case Kind::catalogue: return 0;
    case Kind::open_request: return kServiceQueue;
    case Kind::open_answer: return kAnswerRefused;
    case Kind::release: return kServiceQueue;
    default: return ~std::uint32_t{0};
  }
}

// Keyword record layout (encode_keywords()).
constexpr std::size_t kKwName = 0, kKwNameBytes = 16, kKwType = 16, kKwValue = 24, kKwValueBytes = 16,
                      kKwComment = 40, kKwCommentBytes = 80, kKwTail = 120;
static_assert(kKwTail + 8 == kKeywordRecordBytes);

void put_text(std::byte* dst, std::size_t cap, std::string_view s) noexcept {
  std::memcpy(dst, s.data(), std::min(cap, s.size()));
}

std::string get_text(const std::byte* src, std::size_t cap) {
  const auto* c = reinterpret_cast<const char*>(src);
  return std::string(c, ::strnlen(c, cap));
}

}  // namespace

std::array<std::byte, kHeaderBytes> encode(const Header& h) noexcept {
  Header c = h;
  std::memset(c.pad, 0, sizeof c.pad);
  std::memset(c.reserved, 0, sizeof c.reserved);
  std::array<std::byte, kHeaderBytes> out{};
  std::memcpy(out.data(), &c, sizeof c);
  return out;
}

const char* describe(DecodeError e) noexcept {
  switch (e) {
    case DecodeError::ok: return "no error";
    case DecodeError::header_size: return "the header part is not 128 bytes";
    case DecodeError::magic: return "magic is not 0x424C4853 (\"SHLB\")";
    case DecodeError::version: return "version is not 1";
    case DecodeError::header_bytes: return "header_bytes is not 128";
    case DecodeError::kind: return "kind is unknown";
    case DecodeError::padding: return "pad or reserved bytes are not 0";
    case DecodeError::payload_size: return "payload_bytes disagrees with the payload part's size";
    case DecodeError::payload_too_large: return "payload_bytes is above 4 GiB";
    case DecodeError::dtype: return "dtype is not an ISIO datatype code (1..13)";
    case DecodeError::shape: return "the shape is invalid (naxis not 1..3, an axis of 0, or a size beyond naxis)";
    case DecodeError::frame_size: return "the frame's payload is not the shape's elements times the dtype's size";
    case DecodeError::keyword_size: return "stream_meta's payload is not keyword_count records of 128 bytes";
    case DecodeError::flags: return "flags has bits this kind does not define";
    case DecodeError::service_payload:
      return "a service message's payload is not what its kind allows (hello and catalogue_request: none; "
             "catalogue: keyword_count records of 128 bytes, at most 8192; open_request and release: a channel "
             "name of 1..79 bytes; open_answer: 1..4096 bytes)";
  }
  return "unknown decode error";
}

std::uint64_t shape_elements(const Header& h) noexcept {
  if (h.naxis < 1 || h.naxis > 3) return 0;
  std::uint64_t n = 1;
  for (unsigned i = 0; i < h.naxis; ++i) {
    if (h.size[i] == 0) return 0;
    if (__builtin_mul_overflow(n, std::uint64_t{h.size[i]}, &n) || n > (std::uint64_t{1} << 63)) return 0;
  }
  return n;
}

DecodeError decode(std::span<const std::byte> header, std::uint64_t payload_size, Header& out) noexcept {
  if (header.size() != kHeaderBytes) return DecodeError::header_size;
  std::memcpy(&out, header.data(), kHeaderBytes);
  if (out.magic != kMagic) return DecodeError::magic;
  if (out.version != kVersion) return DecodeError::version;
  if (out.header_bytes != kHeaderBytes) return DecodeError::header_bytes;
  if (!kind_known(out.kind)) return DecodeError::kind;
  if (!all_zero(out.pad, sizeof out.pad) || !all_zero(out.reserved, sizeof out.reserved)) return DecodeError::padding;
  if (out.payload_bytes > kMaxPayloadBytes) return DecodeError::payload_too_large;
  if (out.payload_bytes != payload_size) return DecodeError::payload_size;
  if ((out.flags & ~defined_flags(out.kind)) != 0) return DecodeError::flags;

  if (is_stream_kind(out.kind)) {
    if (!dtype_valid(static_cast<std::uint8_t>(out.dtype)) || out.dtype > 255) return DecodeError::dtype;
    if (out.naxis < 1 || out.naxis > 3) return DecodeError::shape;
    for (unsigned i = 0; i < 3; ++i)
      if ((i < out.naxis) != (out.size[i] != 0)) return DecodeError::shape;
    const std::uint64_t elements = shape_elements(out);
    if (elements == 0) return DecodeError::shape;
    if (out.kind == static_cast<std::uint16_t>(Kind::stream_meta)) {
      if (out.payload_bytes != std::uint64_t{out.keyword_count} * kKeywordRecordBytes) return DecodeError::keyword_size;
    } else {
      std::uint64_t bytes = 0;
      const auto esize = dtype_size(static_cast<Dtype>(out.dtype));
      if (__builtin_mul_overflow(elements, std::uint64_t{esize}, &bytes)) return DecodeError::frame_size;
      const bool echo = (out.flags & kFrameEcho) != 0;
      if (out.payload_bytes != (echo ? 0 : bytes)) return DecodeError::frame_size;
    }
  } else if (out.kind == static_cast<std::uint16_t>(Kind::heartbeat)) {
    if (out.payload_bytes != 0) return DecodeError::payload_size;
  } else if (is_service_kind(out.kind)) {
    const std::uint64_t n = out.payload_bytes;
    bool fits = false;
    switch (static_cast<Kind>(out.kind)) {
      case Kind::service_hello:
      case Kind::catalogue_request: fits = n == 0; break;
      case Kind::catalogue:
        fits = out.keyword_count <= kMaxCatalogueRecords && n == std::uint64_t{out.keyword_count} * kCatalogueRecordBytes;
        break;
      case Kind::open_request:
      case Kind::release: fits = n >= 1 && n <= kMaxChannelName; break;
      case Kind::open_answer: fits = n >= 1 && n <= kMaxServiceText; break;
      default: break;
    }
    if (!fits) return DecodeError::service_payload;
  }
  return DecodeError::ok;
}

namespace {
// Catalogue record layout (encode_catalogue()).
constexpr std::size_t kCatKind = 0, kCatNaxis = 1, kCatPad0 = 2, kCatDtype = 4, kCatSize = 8, kCatPad1 = 20,
                      kCatName = 24, kCatNameBytes = 104;
static_assert(kCatName + kCatNameBytes == kCatalogueRecordBytes);
static_assert(kMaxChannelName < kCatNameBytes, "a record's name keeps a terminating NUL");

bool channel_name_ok(std::string_view n) noexcept {
  if (n.empty() || n.size() > kMaxChannelName || n == "." || n == "..") return false;
  return std::none_of(n.begin(), n.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '/' || c < 0x20 || c == 0x7f;
  });
}
}  // namespace

std::vector<std::byte> encode_catalogue(std::span<const CatalogueRecord> records) {
  std::vector<std::byte> out;
  out.reserve(records.size() * kCatalogueRecordBytes);
  for (const CatalogueRecord& r : records) {
    if (!channel_name_ok(r.name) || r.shape.size() > 3) continue;
    std::array<std::byte, kCatalogueRecordBytes> rec{};
    rec[kCatKind] = std::byte{static_cast<std::uint8_t>(r.queue ? 2 : 1)};
    rec[kCatNaxis] = std::byte{static_cast<std::uint8_t>(r.shape.size())};
    std::memcpy(rec.data() + kCatDtype, &r.dtype, 4);
    for (std::size_t i = 0; i < r.shape.size(); ++i) std::memcpy(rec.data() + kCatSize + 4 * i, &r.shape[i], 4);
    put_text(rec.data() + kCatName, kCatNameBytes, r.name);
    out.insert(out.end(), rec.begin(), rec.end());
  }
  return out;
}

std::optional<std::vector<CatalogueRecord>> decode_catalogue(std::span<const std::byte> payload) {
  if (payload.size() % kCatalogueRecordBytes != 0) return std::nullopt;
  std::vector<CatalogueRecord> out;
  out.reserve(payload.size() / kCatalogueRecordBytes);
  for (std::size_t at = 0; at < payload.size(); at += kCatalogueRecordBytes) {
    const std::byte* rec = payload.data() + at;
    const auto kind = std::to_integer<std::uint8_t>(rec[kCatKind]);
    const auto naxis = std::to_integer<std::uint8_t>(rec[kCatNaxis]);
    if ((kind != 1 && kind != 2) || naxis > 3) return std::nullopt;
    if (!all_zero(reinterpret_cast<const std::uint8_t*>(rec + kCatPad0), 2) ||
        !all_zero(reinterpret_cast<const std::uint8_t*>(rec + kCatPad1), 4))
      return std::nullopt;
    CatalogueRecord r;
    r.queue = kind == 2;
    std::memcpy(&r.dtype, rec + kCatDtype, 4);
    for (unsigned i = 0; i < 3; ++i) {
      std::uint32_t v = 0;
      std::memcpy(&v, rec + kCatSize + 4 * i, 4);
      if (i < naxis) r.shape.push_back(v);
      else if (v != 0) return std::nullopt;
    }
    const auto* name = reinterpret_cast<const char*>(rec + kCatName);
    const std::size_t len = ::strnlen(name, kCatNameBytes);
    if (len == kCatNameBytes || !all_zero(reinterpret_cast<const std::uint8_t*>(name + len), kCatNameBytes - len))
      return std::nullopt;
    r.name.assign(name, len);
    if (!channel_name_ok(r.name)) return std::nullopt;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::byte> encode_keywords(std::span<const Keyword> keywords) {
  std::vector<std::byte> out(keywords.size() * kKeywordRecordBytes);
  std::byte* rec = out.data();
  for (const Keyword& k : keywords) {
    put_text(rec + kKwName, kKwNameBytes, k.name);
    if (const auto* i = std::get_if<std::int64_t>(&k.value)) {
      rec[kKwType] = std::byte{'L'};
      std::memcpy(rec + kKwValue, i, sizeof *i);
    } else if (const auto* d = std::get_if<double>(&k.value)) {
      rec[kKwType] = std::byte{'D'};
      std::memcpy(rec + kKwValue, d, sizeof *d);
    } else {
      rec[kKwType] = std::byte{'S'};
      put_text(rec + kKwValue, kKwValueBytes, std::get<std::string>(k.value));
    }
    put_text(rec + kKwComment, kKwCommentBytes, k.comment);
    rec += kKeywordRecordBytes;
  }
  return out;
}

std::optional<std::vector<Keyword>> decode_keywords(std::span<const std::byte> payload) {
  if (payload.size() % kKeywordRecordBytes != 0) return std::nullopt;
  std::vector<Keyword> out;
  out.reserve(payload.size() / kKeywordRecordBytes);
  for (std::size_t off = 0; off < payload.size(); off += kKeywordRecordBytes) {
    const std::byte* rec = payload.data() + off;
    const auto* raw = reinterpret_cast<const std::uint8_t*>(rec);
    if (!all_zero(raw + kKwType + 1, kKwValue - kKwType - 1) || !all_zero(raw + kKwTail, 8)) return std::nullopt;
    Keyword k;
    k.name = get_text(rec + kKwName, kKwNameBytes);
    if (k.name.empty()) return std::nullopt;
    switch (raw[kKwType]) {
      case 'L': {
        std::int64_t v = 0;
        std::memcpy(&v, rec + kKwValue, sizeof v);
        k.value = v;
        break;
      }
      case 'D': {
        double v = 0;
        std::memcpy(&v, rec + kKwValue, sizeof v);
        k.value = v;
        break;
      }
      case 'S': k.value = get_text(rec + kKwValue, kKwValueBytes); break;
      default: return std::nullopt;
    }
    k.comment = get_text(rec + kKwComment, kKwCommentBytes);
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace shmlink::bridge::wire
