// SPDX-License-Identifier: MIT
// libFuzzer target: a bridge message as a hostile peer sends it (issue 22). The input is the
// header part (its first 128 bytes, or fewer when the input is shorter) followed by the payload
// part. decode() must refuse anything inconsistent without reading outside the parts; what it
// accepts must re-encode to the same bytes, agree with the payload's size, and (stream_meta)
// parse as keyword records or be refused by decode_keywords(); a catalogue's records that
// decode_catalogue() accepts re-encode to the same payload.
#include "bridge/wire.hpp"

#include <cstdlib>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wire = shmlink::bridge::wire;
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  const std::size_t head = size < wire::kHeaderBytes ? size : wire::kHeaderBytes;
  const std::span<const std::byte> header(bytes, head);
  const std::span<const std::byte> payload(bytes + head, size - head);
  wire::Header h;
  const wire::DecodeError e = wire::decode(header, payload.size(), h);
  if (wire::describe(e) == nullptr) std::abort();
  if (e != wire::DecodeError::ok) return 0;
  if (h.payload_bytes != payload.size()) std::abort();
  const auto again = wire::encode(h);
  if (std::memcmp(again.data(), data, wire::kHeaderBytes) != 0) std::abort();
  if (h.kind == static_cast<std::uint16_t>(wire::Kind::stream_meta)) {
    const auto kws = wire::decode_keywords(payload);
    if (kws && kws->size() != h.keyword_count) std::abort();
  }
  if (h.kind == static_cast<std::uint16_t>(wire::Kind::catalogue)) {
    // What decode_catalogue() accepts is every record, and re-encodes to the same bytes.
    const auto recs = wire::decode_catalogue(payload);
    if (recs) {
      if (recs->size() != h.keyword_count) std::abort();
      const auto bytes_again = wire::encode_catalogue(*recs);
      // (memcmp of 0 bytes is still undefined with a null pointer: an empty catalogue has none)
      if (bytes_again.size() != payload.size() ||
          (!payload.empty() && std::memcmp(bytes_again.data(), payload.data(), payload.size()) != 0))
        std::abort();
    }
  }
  if (h.kind == static_cast<std::uint16_t>(wire::Kind::stream_frame) && (h.flags & wire::kFrameEcho) == 0) {
    const auto esize = shmlink::dtype_size(static_cast<shmlink::Dtype>(h.dtype));
    if (wire::shape_elements(h) * esize != payload.size()) std::abort();
  }
  return 0;
}
