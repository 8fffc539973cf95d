// SPDX-License-Identifier: MIT
// Streams placed in a region: create, open by name, modes, remove, errors naming PATH:NAME
// (include/shmlink/region.hpp).
#include "region/region_access.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "region_test_util.hpp"

namespace shmlink {
namespace {

using test::error_of;
using test::k1M;
using test::queue_spec;
using test::TempStreamDir;

StreamSpec spec_4x4() { return test::spec_of({4, 4}, Dtype::f32); }

TEST(RegionStreams, AStreamIsCreatedWrittenAndOpenedByName) {
  TempStreamDir dir;
  Region r = Region::create("ch", k1M);
  Stream w = r.create_stream("wfs", spec_4x4());
  EXPECT_EQ(w.path(), r.path() + ":wfs");
  EXPECT_EQ(w.name(), "wfs");
  std::vector<float> frame(16, 1.25f);
  ASSERT_TRUE(w.write(std::span<const float>(frame)));
  Stream rd = Region::open("ch").open_stream("wfs");  // the Region handle may go first
  std::vector<float> got(16);
  ASSERT_TRUE(rd.read_copy(std::as_writable_bytes(std::span<float>(got))));
  EXPECT_EQ(got, frame);
  EXPECT_FALSE(rd.replaced());
  const auto e = r.entries();
  ASSERT_EQ(e.size(), 1U);
  EXPECT_EQ(e[0].kind, ChannelKind::stream);
  EXPECT_EQ(e[0].state, EntryState::ready);
  EXPECT_EQ(e[0].size % 4096, 0U);
  EXPECT_GE(e[0].size, Stream::bytes_for(spec_4x4()));
}

TEST(RegionStreams, ErrorsNameTheChannel) {
  TempStreamDir dir;
  Region r = Region::create("err", k1M);
  (void)r.create_stream("wfs", spec_4x4());
  Error e = error_of([&] { (void)r.open_queue("wfs"); });
  EXPECT_EQ(e.errc(), Errc::layout);
  EXPECT_NE(std::string(e.what()).find(r.path() + ":wfs"), std::string::npos) << e.what();
  e = error_of([&] { (void)r.open_stream("nope"); });
  EXPECT_EQ(e.errc(), Errc::not_found);
  EXPECT_NE(std::string(e.what()).find(r.path() + ":nope"), std::string::npos) << e.what();
  e = error_of([&] { (void)r.create_stream("wfs", spec_4x4()); });
  EXPECT_EQ(e.errc(), Errc::exists);
  e = error_of([&] { (void)r.create_stream("a:b", spec_4x4()); });
  EXPECT_EQ(e.errc(), Errc::invalid_argument);
  e = error_of([&] { (void)r.create_stream(std::string(80, 'n'), spec_4x4()); });
  EXPECT_EQ(e.errc(), Errc::name_too_long);
  e = error_of([&] { (void)r.remove("nope"); });
  EXPECT_EQ(e.errc(), Errc::not_found);
}

TEST(RegionStreams, ModesOpenReplaceAndRefuse) {
  TempStreamDir dir;
  Region r = Region::create("modes", k1M);
  Stream first = r.create_stream("wfs", spec_4x4());
  Stream same = r.create_stream("wfs", spec_4x4(), OpenMode::OpenOrCreate);
  EXPECT_EQ(same.path(), first.path());
  Error e = error_of([&] { (void)r.create_stream("wfs", test::spec_of({8}, Dtype::u8), OpenMode::OpenOrCreate); });
  EXPECT_EQ(e.errc(), Errc::layout);
  Stream created = r.create_stream("new", spec_4x4(), OpenMode::OpenOrCreate);
  EXPECT_EQ(r.entries().size(), 2U);
  Stream purged = r.create_stream("wfs", test::spec_of({8}, Dtype::u8), OpenMode::PurgeAndCreate);
  EXPECT_TRUE(first.replaced());
  EXPECT_FALSE(purged.replaced());
  EXPECT_EQ(r.open_stream("wfs").dtype(), Dtype::u8);
  e = error_of([&] { (void)r.create_queue("absent", queue_spec(), OpenMode::OpenExisting); });
  EXPECT_EQ(e.errc(), Errc::not_found);
}

TEST(RegionStreams, RemoveKeepsTheBytesWhileAHandleIsOpenAndOldHandlesSeeReplaced) {
  TempStreamDir dir;
  Region r = Region::create("rm", k1M);
  Stream s = r.create_stream("wfs", spec_4x4());
  const std::uint64_t offset = r.entries().at(0).offset;
  r.remove("wfs");
  EXPECT_TRUE(s.replaced());
  std::vector<float> frame(16, 1.0F);
  EXPECT_EQ(s.write(std::span<const float>(frame)).code(), Errc::replaced);
  ASSERT_EQ(r.entries().size(), 1U);
  EXPECT_EQ(r.entries().at(0).state, EntryState::removing);  // `s` is still attached
  EXPECT_EQ(error_of([&] { (void)r.open_stream("wfs"); }).errc(), Errc::not_found);
  Queue q = r.create_queue("cmd", queue_spec());
  EXPECT_NE(q.path(), "");
  for (const RegionEntry& e : r.entries()) {
    if (e.name == "cmd") {
      EXPECT_NE(e.offset, offset);  // not the bytes `s` may still write
    }
  }
  s.close();
  Stream next = r.create_stream("next", spec_4x4());  // the lock's recovery frees them first
  for (const RegionEntry& e : r.entries()) {
    EXPECT_NE(e.state, EntryState::removing) << e.name;
    if (e.name == "next") {
      EXPECT_EQ(e.offset, offset);  // the same bytes, reused
    }
  }
}

TEST(RegionStreams, AFullRegionLeavesNoEntryBehind) {
  TempStreamDir dir;
  Region r = Region::create("full", 64 * 1024);
  Error e = error_of([&] { (void)r.create_stream("big", test::spec_of({256, 256}, Dtype::f64)); });
  EXPECT_EQ(e.errc(), Errc::no_space);
  EXPECT_NE(std::string(e.what()).find("'big'"), std::string::npos) << e.what();
  EXPECT_TRUE(r.entries().empty());
}

TEST(RegionStreams, AReadOnlyRegionOpensChannelsReadOnly) {
  TempStreamDir dir;
  {
    Region w = Region::create("ro", k1M);
    (void)w.create_stream("wfs", spec_4x4());
  }
  Region r = Region::open("ro", false);
  Stream s = r.open_stream("wfs");
  std::vector<float> frame(16, 1.0f);
  EXPECT_EQ(s.write(std::span<const float>(frame)).code(), Errc::permission);
  EXPECT_EQ(error_of([&] { (void)r.create_queue("q", queue_spec()); }).errc(), Errc::permission);
}

TEST(RegionStreams, PartialWritesKeepTheirCompanionInTheRegion) {
  TempStreamDir dir;
  Region r = Region::create("pkt", k1M);
  Stream w = r.create_stream("wfs", test::spec_of({8}, Dtype::u16));
  const std::vector<std::uint16_t> half(4, 7);
  ASSERT_TRUE(w.write_packet(0, 2, 0, std::span<const std::uint16_t>(half)).ok());
  ASSERT_EQ(w.finalize_packets().code(), Errc::incomplete);
  auto entries = r.entries();
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(entries[1].name, "wfs_pkt");
  EXPECT_EQ(entries[1].state, EntryState::ready);
  EXPECT_EQ(dir.entries(), 1) << "only the region file: no companion file";
  // Another process's view, by name: the packet record is found through the region.
  const auto ps = Region::open("pkt").open_stream("wfs").packet_status();
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->missing, std::vector<std::uint32_t>{1});
  w.close();  // an open writer would keep both entries' bytes reserved
  r.remove("wfs");  // the companion goes with it
  EXPECT_TRUE(r.entries().empty());
}

TEST(RegionStreams, ACompanionReservedButNeverPublishedIsFreedWithItsPlacement) {
  Region r = Region::create_memfd("sib", k1M);
  (void)r.create_stream("wfs", spec_4x4());
  const auto& st = detail::RegionAccess::state(r);
  const std::optional<rdir::Slot> slot = detail::RegionAccess::find(st, "wfs");
  ASSERT_TRUE(slot.has_value());
  const Placement p = detail::RegionAccess::placement(st, *slot);
  {
    // As a stream's partial write does before Stream::create_in, which then throws.
    const std::optional<Placement> c = p.sibling("wfs_pkt", 4096);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(r.entries().size(), 2U);
  }
  ASSERT_EQ(r.entries().size(), 1U) << "the unpublished companion entry was left creating";
  {
    const std::optional<Placement> c = p.sibling("wfs_pkt", 4096);
    ASSERT_TRUE(c.has_value());
    c->publish();
  }
  const auto entries = r.entries();
  ASSERT_EQ(entries.size(), 2U);  // a published companion stays
  EXPECT_EQ(entries[1].state, EntryState::ready);
}

TEST(RegionStreams, RemoveLeavesAStreamNamedLikeACompanionThatIsNotOne) {
  Region r = Region::create_memfd("notpkt", k1M);
  (void)r.create_stream("wfs", spec_4x4());
  (void)r.create_stream("wfs_pkt", spec_4x4());  // a user's own stream, not a companion
  r.remove("wfs");
  auto entries = r.entries();
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].name, "wfs_pkt");
}

}  // namespace
}  // namespace shmlink
