// SPDX-License-Identifier: MIT
// Queues placed in a region: create, open by name, modes, remove, errors naming PATH:NAME
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

TEST(RegionQueues, AQueueIsCreatedAndOpenedByName) {
  TempStreamDir dir;
  Region r = Region::create("q", k1M);
  Queue p = r.create_queue("cmd", queue_spec());
  Queue c = r.open_queue("cmd");
  Sample s;
  s.sequence = 7;
  s.values = {SignalValue::of(1.5), SignalValue::of(2.5)};
  ASSERT_TRUE(p.try_push(s));
  Sample out;
  ASSERT_TRUE(c.try_pop(out));
  EXPECT_EQ(out.sequence, 7U);
  EXPECT_EQ(out.values.at(1).f, 2.5);
  EXPECT_EQ(r.entries().at(0).kind, ChannelKind::queue);
}

TEST(RegionQueues, ErrorsModesAndRemove) {
  TempStreamDir dir;
  Region r = Region::create("qerr", k1M);
  Queue q = r.create_queue("cmd", queue_spec());
  EXPECT_EQ(q.path(), r.path() + ":cmd");
  Error e = error_of([&] { (void)r.create_queue("cmd", queue_spec()); });
  EXPECT_EQ(e.errc(), Errc::exists);
  EXPECT_NE(std::string(e.what()).find("'cmd'"), std::string::npos) << e.what();
  Queue same = r.create_queue("cmd", queue_spec(), OpenMode::OpenOrCreate);
  EXPECT_EQ(same.capacity(), 16U);
  QueueSpec other = queue_spec();
  other.max_values = 3;
  EXPECT_EQ(error_of([&] { (void)r.create_queue("cmd", other, OpenMode::OpenOrCreate); }).errc(), Errc::layout);
  Queue purged = r.create_queue("cmd", other, OpenMode::PurgeAndCreate);
  EXPECT_EQ(r.open_queue("cmd").max_values(), 3U);
  e = error_of([&] { (void)r.open_queue("nope"); });
  EXPECT_EQ(e.errc(), Errc::not_found);
  EXPECT_NE(std::string(e.what()).find(r.path() + ":nope"), std::string::npos) << e.what();
  EXPECT_EQ(error_of([&] { (void)r.create_queue("a:b", queue_spec()); }).errc(), Errc::invalid_argument);
  EXPECT_EQ(error_of([&] { (void)r.create_queue(std::string(80, 'n'), queue_spec()); }).errc(), Errc::name_too_long);
  const std::uint64_t offset = r.entries().at(0).offset;
  // Closed handles: their entries' bytes are free once removed (open ones keep them reserved).
  q.close();
  same.close();
  purged.close();
  r.remove("cmd");
  EXPECT_TRUE(r.entries().empty());
  EXPECT_EQ(error_of([&] { r.remove("cmd"); }).errc(), Errc::not_found);
  (void)r.create_queue("next", queue_spec());
  EXPECT_EQ(r.entries().at(0).offset, offset);  // the freed bytes, reused
}

TEST(RegionQueues, AFullOrReadOnlyRegionLeavesNoEntryBehind) {
  TempStreamDir dir;
  {
    Region r = Region::create("qfull", 64 * 1024);
    QueueSpec big = queue_spec();
    big.capacity = 1024;
    big.max_values = 64;
    Error e = error_of([&] { (void)r.create_queue("big", big); });
    EXPECT_EQ(e.errc(), Errc::no_space);
    EXPECT_NE(std::string(e.what()).find("'big'"), std::string::npos) << e.what();
    EXPECT_TRUE(r.entries().empty());
    (void)r.create_queue("small", queue_spec());
  }
  Region ro = Region::open("qfull", false);
  Queue q = ro.open_queue("small");
  Sample s;
  s.values = {SignalValue::of(1.0)};
  EXPECT_EQ(q.try_push(s).code(), Errc::permission);
  EXPECT_EQ(error_of([&] { (void)ro.create_queue("q", queue_spec()); }).errc(), Errc::permission);
  EXPECT_EQ(error_of([&] { ro.remove("small"); }).errc(), Errc::permission);
}

TEST(RegionQueues, ACorruptChannelIsALayoutErrorNamingIt) {
  TempStreamDir dir;
  Region r = Region::create("bad", k1M);
  (void)r.create_queue("cmd", queue_spec());
  const RegionEntry e = r.entries().at(0);
  std::memset(detail::RegionAccess::state(r)->bytes.data() + e.offset, 0x5a, 64);  // the queue's header
  Error err = error_of([&] { (void)r.open_queue("cmd"); });
  EXPECT_EQ(err.errc(), Errc::layout);
  EXPECT_NE(std::string(err.what()).find(r.path() + ":cmd"), std::string::npos) << err.what();
}

}  // namespace
}  // namespace shmlink
