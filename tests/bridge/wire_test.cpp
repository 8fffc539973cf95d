// SPDX-License-Identifier: MIT
// The bridge's wire header (docs/design/bridge.md, "Wire format"): offsets checked on raw bytes
// written independently of the struct, and every refusal of decode() with the field it names.
#include "bridge/wire.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace shmlink::bridge::wire;

using Raw = std::array<std::byte, 128>;

void put(Raw& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
}
std::uint64_t get(const Raw& b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(b[at + static_cast<std::size_t>(i)]);
  return v;
}

/// A valid stream_frame header of a 4x3 u16 frame (24 bytes), as raw bytes by the table.
Raw frame_bytes() {
  Raw b{};
  put(b, 0, 0x424C4853, 4);
  put(b, 4, 1, 2);
  put(b, 6, 2, 2);
  put(b, 12, 128, 4);
  put(b, 16, 24, 8);
  put(b, 24, 77, 8);   // sequence
  put(b, 32, 1111, 8); // write time
  put(b, 40, 2222, 8); // send time
  put(b, 48, 5, 8);    // cnt1
  put(b, 56, 3, 8);    // skipped
  put(b, 64, 9, 8);    // generation
  put(b, 72, 3, 4);    // dtype u16
  put(b, 76, 2, 1);    // naxis
  put(b, 80, 4, 4);
  put(b, 84, 3, 4);
  return b;
}

TEST(BridgeWire, MagicSpellsSHLB) {
  const auto b = encode(make_header(Kind::heartbeat));
  EXPECT_EQ(std::memcmp(b.data(), "SHLB", 4), 0);
  EXPECT_EQ(get(b, 4, 2), 1U);
  EXPECT_EQ(get(b, 6, 2), 4U);
  EXPECT_EQ(get(b, 12, 4), 128U);
}

TEST(BridgeWire, DecodesEveryFieldAtItsOffset) {
  const Raw b = frame_bytes();
  Header h;
  ASSERT_EQ(decode(b, 24, h), DecodeError::ok);
  EXPECT_EQ(h.kind, 2);
  EXPECT_EQ(h.payload_bytes, 24U);
  EXPECT_EQ(h.sequence, 77U);
  EXPECT_EQ(h.write_time_ns, 1111U);
  EXPECT_EQ(h.send_time_ns, 2222U);
  EXPECT_EQ(h.cnt1, 5U);
  EXPECT_EQ(h.skipped, 3U);
  EXPECT_EQ(h.generation, 9U);
  EXPECT_EQ(h.dtype, 3U);
  EXPECT_EQ(h.naxis, 2);
  EXPECT_EQ(h.size[0], 4U);
  EXPECT_EQ(h.size[1], 3U);
  EXPECT_EQ(h.size[2], 0U);
  EXPECT_EQ(encode(h), b);  // and back, byte for byte
}

TEST(BridgeWire, EncodeZeroesPadAndReserved) {
  Header h = make_header(Kind::heartbeat);
  h.pad[1] = 7;
  h.reserved[31] = 9;
  const auto b = encode(h);
  for (std::size_t i = 77; i < 80; ++i) EXPECT_EQ(b[i], std::byte{0});
  for (std::size_t i = 96; i < 128; ++i) EXPECT_EQ(b[i], std::byte{0});
}

TEST(BridgeWire, RefusesEachBadField) {
  struct Case {
    std::size_t at;
    std::uint64_t value;
    int n;
    std::uint64_t payload;
    DecodeError want;
  };
  const std::vector<Case> cases = {
      {0, 0x424C4854, 4, 24, DecodeError::magic},
      {4, 2, 2, 24, DecodeError::version},
      {12, 64, 4, 24, DecodeError::header_bytes},
      {6, 5, 2, 24, DecodeError::kind},
      {6, 38, 2, 24, DecodeError::kind},
      {78, 1, 1, 24, DecodeError::padding},
      {127, 1, 1, 24, DecodeError::padding},
      {16, 25, 8, 24, DecodeError::payload_size},
      {16, (std::uint64_t{1} << 32) + 1, 8, 24, DecodeError::payload_too_large},
      {72, 0, 4, 24, DecodeError::dtype},
      {72, 14, 4, 24, DecodeError::dtype},
      {72, 0x103, 4, 24, DecodeError::dtype},
      {76, 0, 1, 24, DecodeError::shape},
      {76, 4, 1, 24, DecodeError::shape},
      {84, 0, 4, 24, DecodeError::shape},
      {88, 1, 4, 24, DecodeError::shape},
      {80, 5, 4, 24, DecodeError::frame_size},
      {8, 2, 4, 24, DecodeError::flags},
  };
  for (const Case& c : cases) {
    Raw b = frame_bytes();
    put(b, c.at, c.value, c.n);
    Header h;
    EXPECT_EQ(decode(b, c.payload, h), c.want) << "offset " << c.at << " value " << c.value << ": "
                                               << describe(decode(b, c.payload, h));
  }
  Header h;
  const Raw whole = frame_bytes();
  EXPECT_EQ(decode(std::span(whole).first(127), 24, h), DecodeError::header_size);
}

TEST(BridgeWire, OverflowingShapeIsRefused) {
  Raw b = frame_bytes();
  put(b, 76, 3, 1);
  put(b, 80, 0xFFFFFFFF, 4);
  put(b, 84, 0xFFFFFFFF, 4);
  put(b, 88, 0xFFFFFFFF, 4);
  Header h;
  EXPECT_EQ(decode(b, 24, h), DecodeError::shape);
}

TEST(BridgeWire, EchoFrameHasNoPayload) {
  Raw b = frame_bytes();
  put(b, 8, kFrameEcho, 4);
  put(b, 16, 0, 8);
  Header h;
  EXPECT_EQ(decode(b, 0, h), DecodeError::ok);
  put(b, 16, 24, 8);
  EXPECT_EQ(decode(b, 24, h), DecodeError::frame_size);
}

TEST(BridgeWire, HeartbeatCarriesNoPayload) {
  Header hb = make_header(Kind::heartbeat);
  hb.flags = kHeartbeatWant | kHeartbeatReady;
  Header h;
  EXPECT_EQ(decode(encode(hb), 0, h), DecodeError::ok);
  hb.payload_bytes = 8;
  EXPECT_EQ(decode(encode(hb), 8, h), DecodeError::payload_size);
}

TEST(BridgeWire, MetaPayloadIsKeywordRecords) {
  std::vector<shmlink::Keyword> kws = {{"GAIN", std::int64_t{-3}, "loop gain", 0},
                                       {"EXPTIME", 0.25, "", 0},
                                       {"MODE", std::string("closed-loop-long"), "16 bytes, no NUL", 0}};
  const auto payload = encode_keywords(kws);
  ASSERT_EQ(payload.size(), 3 * kKeywordRecordBytes);
  EXPECT_EQ(std::to_integer<char>(payload[16]), 'L');
  Header meta = make_header(Kind::stream_meta);
  meta.dtype = 9;
  meta.naxis = 1;
  meta.size[0] = 8;
  meta.keyword_count = 3;
  meta.payload_bytes = payload.size();
  Header h;
  EXPECT_EQ(decode(encode(meta), payload.size(), h), DecodeError::ok);
  EXPECT_EQ(decode(encode(meta), payload.size() - 128, h), DecodeError::payload_size);
  meta.keyword_count = 2;
  EXPECT_EQ(decode(encode(meta), payload.size(), h), DecodeError::keyword_size);

  const auto back = decode_keywords(payload);
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 3U);
  EXPECT_EQ((*back)[0].name, "GAIN");
  EXPECT_EQ(std::get<std::int64_t>((*back)[0].value), -3);
  EXPECT_EQ((*back)[0].comment, "loop gain");
  EXPECT_EQ(std::get<double>((*back)[1].value), 0.25);
  EXPECT_EQ(std::get<std::string>((*back)[2].value), "closed-loop-long");

  auto bad = payload;
  bad[16] = std::byte{'X'};
  EXPECT_FALSE(decode_keywords(bad).has_value());
  bad = payload;
  bad[0] = std::byte{0};
  EXPECT_FALSE(decode_keywords(bad).has_value());
  EXPECT_FALSE(decode_keywords(std::span(payload).first(100)).has_value());
}

TEST(BridgeWire, EveryErrorHasASentence) {
  for (int e = 0; e <= static_cast<int>(DecodeError::service_payload); ++e)
    EXPECT_STRNE(describe(static_cast<DecodeError>(e)), "unknown decode error") << e;
}

/// A service message of `kind` with `payload` as decode() sees it.
DecodeError decode_service(Kind kind, std::size_t payload, std::uint32_t flags = 0, std::uint32_t records = 0) {
  Header h = make_header(kind);
  h.flags = flags;
  h.payload_bytes = payload;
  h.keyword_count = records;
  const auto raw = encode(h);
  Header out;
  return decode(raw, payload, out);
}

TEST(BridgeWire, ServiceKindsCheckTheirPayloadAndFlags) {
  EXPECT_EQ(decode_service(Kind::service_hello, 0), DecodeError::ok);
  EXPECT_EQ(decode_service(Kind::service_hello, 1), DecodeError::service_payload);
  EXPECT_EQ(decode_service(Kind::catalogue_request, 0), DecodeError::ok);
  EXPECT_EQ(decode_service(Kind::catalogue, 256, 0, 2), DecodeError::ok);
  EXPECT_EQ(decode_service(Kind::catalogue, 255, 0, 2), DecodeError::service_payload);
  EXPECT_EQ(decode_service(Kind::catalogue, 128 * std::size_t{kMaxCatalogueRecords + 1}, 0, kMaxCatalogueRecords + 1),
            DecodeError::service_payload);
  EXPECT_EQ(decode_service(Kind::open_request, 3, kServiceQueue), DecodeError::ok);
  EXPECT_EQ(decode_service(Kind::open_request, 0), DecodeError::service_payload);
  EXPECT_EQ(decode_service(Kind::open_request, shmlink::kMaxChannelName + 1), DecodeError::service_payload);
  EXPECT_EQ(decode_service(Kind::open_request, 3, 2), DecodeError::flags);
  EXPECT_EQ(decode_service(Kind::open_answer, 20, kAnswerRefused), DecodeError::ok);
  EXPECT_EQ(decode_service(Kind::open_answer, kMaxServiceText + 1), DecodeError::service_payload);
  EXPECT_EQ(decode_service(Kind::release, 3), DecodeError::ok);
  EXPECT_EQ(decode_service(Kind::catalogue_request, 0, 1), DecodeError::flags);
  Header h = make_header(Kind::service_hello);
  h.kind = 38;  // reserved for the service, not defined
  Header out;
  EXPECT_EQ(decode(encode(h), 0, out), DecodeError::kind);
}

TEST(BridgeWire, CatalogueRecordsRoundTripAndHostileOnesAreRefused) {
  const std::vector<CatalogueRecord> recs{{false, "wfs", 9, {64, 64}}, {true, "samples", 72, {512}}};
  const auto payload = encode_catalogue(recs);
  ASSERT_EQ(payload.size(), 2 * kCatalogueRecordBytes);
  EXPECT_EQ(std::to_integer<int>(payload[0]), 1);
  EXPECT_EQ(std::to_integer<int>(payload[1]), 2);
  EXPECT_EQ(std::to_integer<int>(payload[24]), 'w');
  const auto back = decode_catalogue(payload);
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 2U);
  EXPECT_EQ((*back)[0].name, "wfs");
  EXPECT_EQ((*back)[0].shape, (std::vector<std::uint32_t>{64, 64}));
  EXPECT_TRUE((*back)[1].queue);
  EXPECT_EQ((*back)[1].dtype, 72U);
  // Names that are not channel names never go out.
  EXPECT_TRUE(encode_catalogue(std::vector<CatalogueRecord>{{false, "a/b", 9, {1}}, {false, "", 9, {1}}}).empty());
  auto bad = payload;
  bad[0] = std::byte{3};  // unknown kind
  EXPECT_FALSE(decode_catalogue(bad).has_value());
  bad = payload;
  bad[1] = std::byte{4};  // naxis 4
  EXPECT_FALSE(decode_catalogue(bad).has_value());
  bad = payload;
  bad[16] = std::byte{1};  // size[2] beyond naxis 2
  EXPECT_FALSE(decode_catalogue(bad).has_value());
  bad = payload;
  bad[25] = std::byte{'/'};
  EXPECT_FALSE(decode_catalogue(bad).has_value());
  bad = payload;
  for (std::size_t i = 24; i < 128; ++i) bad[i] = std::byte{'x'};  // no terminating NUL
  EXPECT_FALSE(decode_catalogue(bad).has_value());
  bad = payload;
  bad[30] = std::byte{'x'};  // bytes after the name's NUL
  EXPECT_FALSE(decode_catalogue(bad).has_value());
  EXPECT_FALSE(decode_catalogue(std::span(payload).first(100)).has_value());
}

}  // namespace
