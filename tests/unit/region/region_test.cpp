// SPDX-License-Identifier: MIT
// Regions: the directory layout, the backings, the first-fit allocator, generations, the lock's
// recovery rule and the trust rule (docs/design/region.md).
#include "region/region_access.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "region_test_util.hpp"
#include "test_util.hpp"

namespace shmlink {
namespace {

using detail::RegionAccess;
using test::TempStreamDir;

constexpr std::size_t k64K = 64 * 1024;
constexpr std::size_t k1M = 1024 * 1024;

/// Reserves and publishes a raw entry of `bytes` (the allocator without a channel layout).
rdir::Slot put(Region& r, const std::string& name, std::size_t bytes, ChannelKind kind = ChannelKind::stream) {
  auto res = RegionAccess::allocate(RegionAccess::state(r), name, kind, bytes);
  RegionAccess::directory(r).publish(res.slot);
  return res.slot;
}

std::uint64_t offset_of(const Region& r, const std::string& name) {
  for (const RegionEntry& e : r.entries())
    if (e.name == name) return e.offset;
  ADD_FAILURE() << "no entry " << name;
  return 0;
}

/// The raw header/entry bytes of a region file, for tests that play a hostile peer.
std::byte* raw(const Region& r) { return RegionAccess::state(r)->bytes.data(); }
rlayout::RegionEntry* raw_entry(const Region& r, std::uint32_t i) {
  return reinterpret_cast<rlayout::RegionEntry*>(raw(r) + rlayout::entry_offset(i));
}
rlayout::RegionHeader* raw_header(const Region& r) { return reinterpret_cast<rlayout::RegionHeader*>(raw(r)); }

/// Shortens the lock timeout for one test.
struct LockTimeout {
  explicit LockTimeout(std::int64_t ns) : old(rdir::g_lock_timeout_ns.exchange(ns)) {}
  ~LockTimeout() { rdir::g_lock_timeout_ns.store(old); }
  std::int64_t old;
};

// ---- layout and backings ----------------------------------------------------------------------

TEST(RegionLayout, CreateWritesTheDirectoryHeader) {
  TempStreamDir dir;
  Region r = Region::create("ao", k1M);
  EXPECT_EQ(r.path(), dir.path() + "/ao.region.shm");
  EXPECT_EQ(r.size(), k1M);
  struct stat st {};
  ASSERT_EQ(::stat(r.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(k1M));
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const auto* h = raw_header(r);
  EXPECT_EQ(std::memcmp(h->magic, "SHMLREG", 8), 0);
  EXPECT_EQ(h->version, rlayout::kVersion);
  EXPECT_EQ(h->header_bytes, 256U);
  EXPECT_EQ(h->entry_bytes, 128U);
  EXPECT_EQ(h->region_size, k1M);
  EXPECT_EQ(h->max_entries, 256U);
  EXPECT_EQ(h->directory_bytes, 36864U);
  EXPECT_EQ(h->creator_pid, ::getpid());
  EXPECT_EQ(h->lock, 0U);
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot;
  std::getline(in, boot);
  EXPECT_EQ(r.boot_id(), boot);
  EXPECT_TRUE(r.created_by_this_kernel());
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(r.host_name(), host);
  EXPECT_TRUE(r.entries().empty());
}

TEST(RegionLayout, SizeMustBeAPowerOfTwoOfAtLeast64K) {
  TempStreamDir dir;
  for (std::size_t bad : {std::size_t{0}, std::size_t{32 * 1024}, std::size_t{96 * 1024}}) {
    try {
      (void)Region::create("bad", bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("bad.region.shm"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
    }
  }
  RegionOptions many;
  many.max_entries = 1024;  // 132 KiB of directory cannot fit 64 KiB
  EXPECT_THROW((void)Region::create("small", k64K, OpenMode::ExclusiveCreate, many), Error);
  EXPECT_EQ(dir.entries(), 0);  // nothing left behind
  (void)Region::create("ok", k64K);
}

TEST(RegionLayout, ModesAndOpen) {
  TempStreamDir dir;
  Region a = Region::create("m", k1M);
  put(a, "x", 4096);
  try {
    (void)Region::create("m", k1M);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
  }
  Region same = Region::create("m", k1M, OpenMode::OpenOrCreate);
  EXPECT_EQ(same.entries().size(), 1U);
  try {
    (void)Region::create("m", 2 * k1M, OpenMode::OpenOrCreate);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
  }
  Region fresh = Region::create("m", k1M, OpenMode::PurgeAndCreate);
  EXPECT_TRUE(fresh.entries().empty());
  EXPECT_EQ(a.entries().size(), 1U);  // the old handle keeps the old file
  EXPECT_EQ(Region::open("m").entries().size(), 0U);
  EXPECT_EQ(Region::open(dir.path() + "/m.region.shm", false).size(), k1M);
  try {
    (void)Region::open("absent");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("absent.region.shm"), std::string::npos);
  }
}

TEST(RegionLayout, OpenRefusesWhatIsNotARegion) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/junk.region.shm";
  {
    std::ofstream out(path, std::ios::binary);
    std::string zeros(k64K, '\0');
    out << zeros;
  }
  try {
    (void)Region::open(path);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  Region r = Region::create("v", k1M);
  std::atomic_ref<std::uint32_t>(raw_header(r)->version).store(0);
  try {
    (void)Region::open("v");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not formatted yet"), std::string::npos) << e.what();
  }
  raw_header(r)->version = rlayout::kVersion;
  raw_header(r)->region_size = 2 * k1M;  // lies about its size
  try {
    (void)Region::open("v");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find("region_size"), std::string::npos) << e.what();
  }
}

TEST(RegionLayout, MemfdAttachAndFormat) {
  Region m = Region::create_memfd("rm", k1M);
  EXPECT_EQ(m.path(), "memfd:rm");
  EXPECT_GE(m.fd(), 0);
  put(m, "a", 5000);
  // Another handle over the same memory (as a guest maps BAR2): sees the entry.
  auto st = RegionAccess::state(m);
  Region seen = Region::attach(st->bytes, st, "bar2", false);
  ASSERT_EQ(seen.entries().size(), 1U);
  EXPECT_EQ(seen.entries()[0].size, 8192U + rlayout::kAttachBytes);  // and its attachment page
  EXPECT_EQ(seen.fd(), -1);
  // A caller's buffer, formatted.
  auto buf = std::shared_ptr<std::byte>(static_cast<std::byte*>(std::aligned_alloc(4096, k64K)), std::free);
  Region f = Region::format({buf.get(), k64K}, buf, "buffer", true);
  EXPECT_EQ(f.size(), k64K);
  EXPECT_TRUE(f.entries().empty());
  EXPECT_THROW((void)Region::attach({buf.get() + 8, k64K - 64}, buf, "odd", true), Error);
}

TEST(RegionLayout, ARegionFormattedForOtherKernelsMakesEveryOpenerPoll) {
  TempStreamDir dir;
  Region file = Region::create("vm", k1M);
  EXPECT_TRUE(file.same_kernel());
  EXPECT_TRUE(Region::open("vm").same_kernel());
  // An ivshmem server formats the memory of the file it shares with guests.
  auto st = RegionAccess::state(file);
  Region server = Region::format(st->bytes, st, "ivshmem", false);
  EXPECT_FALSE(server.same_kernel());
  EXPECT_EQ(raw_header(file)->flags, rlayout::kFlagOtherKernels);
  // A host process opening the file afterwards, and one attaching "same kernel", both poll.
  Region host = Region::open("vm");
  EXPECT_FALSE(host.same_kernel());
  Region attached = Region::attach(st->bytes, st, "again", true);
  EXPECT_FALSE(attached.same_kernel());
  EXPECT_FALSE(RegionAccess::placement(RegionAccess::state(host), put(host, "q", 4096)).same_kernel);
}

TEST(RegionLayout, OpenOrCreateGivesUpOnAPathThatIsNeitherOpenableNorCreatable) {
  TempStreamDir dir;
  // A dangling symbolic link: opening finds nothing, creating finds the name taken.
  const std::string path = dir.path() + "/dangling.region.shm";
  ASSERT_EQ(::symlink((dir.path() + "/nowhere").c_str(), path.c_str()), 0);
  const Error e = test::error_of([&] { (void)Region::create(path, k1M, OpenMode::OpenOrCreate); });
  EXPECT_EQ(e.errc(), Errc::busy) << e.what();
  EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  ::unlink(path.c_str());
}

TEST(RegionLayout, Locator) {
  auto l = split_region_locator("/dev/hugepages/ao.region:wfs");
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->first, "/dev/hugepages/ao.region");
  EXPECT_EQ(l->second, "wfs");
  EXPECT_FALSE(split_region_locator("wfs").has_value());
  EXPECT_FALSE(split_region_locator("ao:wfs").has_value());
  EXPECT_FALSE(split_region_locator("/dev/shm/ao.region:").has_value());
  EXPECT_FALSE(split_region_locator("/dev/shm/a:b/c").has_value());
}

// ---- the allocator ----------------------------------------------------------------------------

TEST(RegionAllocator, FirstFitAndCoalescing) {
  Region r = Region::create_memfd("ff", k1M);
  const std::uint64_t base = 36864;  // directory of 256 entries
  const std::uint64_t page = rlayout::kAttachBytes;  // every entry's attachment page
  put(r, "a", 8192);
  put(r, "b", 4096);
  put(r, "c", 8000);  // rounded up to 8192
  put(r, "d", 4096);
  EXPECT_EQ(offset_of(r, "a"), base);
  EXPECT_EQ(offset_of(r, "b"), base + 8192 + page);
  EXPECT_EQ(offset_of(r, "c"), base + 12288 + 2 * page);
  EXPECT_EQ(offset_of(r, "d"), base + 20480 + 3 * page);
  // A hole of 4096 (b): a small entry fills it, a big one goes past the end.
  RegionAccess::directory(r).remove("b");
  put(r, "big", 8192);
  EXPECT_EQ(offset_of(r, "big"), base + 24576 + 4 * page);
  put(r, "small", 100);
  EXPECT_EQ(offset_of(r, "small"), base + 8192 + page);
  // a and small and c removed: one free run of 20480 (+ 3 pages) bytes from the start.
  RegionAccess::directory(r).remove("a");
  RegionAccess::directory(r).remove("small");
  RegionAccess::directory(r).remove("c");
  put(r, "joined", 20480 + 2 * page);
  EXPECT_EQ(offset_of(r, "joined"), base);
  ASSERT_EQ(r.entries().size(), 3U);
}

TEST(RegionAllocator, FullRegionAndFullTable) {
  Region r = Region::create_memfd("full", k64K);
  const std::uint64_t room = k64K - 36864 - rlayout::kAttachBytes;  // less the attachment page
  put(r, "all", room);
  try {
    put(r, "more", 4096);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::no_space);
    EXPECT_NE(std::string(e.what()).find("memfd:full"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'more'"), std::string::npos) << e.what();
  }
  RegionOptions two;
  two.max_entries = 2;
  Region t = Region::create_memfd("table", k64K, two);
  put(t, "x", 4096);
  put(t, "y", 4096);
  try {
    put(t, "z", 4096);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::no_space);
    EXPECT_NE(std::string(e.what()).find("all 2 entries"), std::string::npos) << e.what();
  }
  try {
    put(t, "x", 4096);
    ADD_FAILURE() << "a second 'x' was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
  }
}

TEST(RegionAllocator, GenerationsTellARemovedOrReusedEntry) {
  Region r = Region::create_memfd("gen", k1M);
  rdir::Slot s = put(r, "s", 4096);
  Placement p = RegionAccess::placement(RegionAccess::state(r), s);
  EXPECT_EQ(p.path, "memfd:gen:s");
  EXPECT_EQ(p.bytes.size(), 4096U);
  EXPECT_EQ(p.offset, s.entry.offset);
  ASSERT_TRUE(p.still_current);
  EXPECT_TRUE(p.still_current());
  EXPECT_TRUE(RegionAccess::directory(r).remove("s"));
  EXPECT_FALSE(p.still_current());
  rdir::Slot again = put(r, "s", 4096);  // same slot, same bytes, new generation
  EXPECT_EQ(again.index, s.index);
  EXPECT_EQ(again.entry.offset, s.entry.offset);
  EXPECT_EQ(again.entry.generation, s.entry.generation + 2);
  EXPECT_FALSE(p.still_current());
  EXPECT_FALSE(RegionAccess::directory(r).remove("absent"));
}

TEST(RegionAllocator, SiblingFindsOrReservesACompanion) {
  Region r = Region::create_memfd("sib", k1M);
  Placement p = RegionAccess::placement(RegionAccess::state(r), put(r, "wfs", 4096));
  EXPECT_FALSE(p.sibling("wfs_pkt", 0).has_value());
  std::optional<Placement> c = p.sibling("wfs_pkt", 10000);
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(c->publish);
  EXPECT_EQ(c->bytes.size(), 12288U);
  EXPECT_FALSE(p.sibling("wfs_pkt", 0).has_value());  // still being created
  c->publish();
  std::optional<Placement> found = p.sibling("wfs_pkt", 0);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->offset, c->offset);
  EXPECT_FALSE(found->publish);
}

TEST(RegionAllocator, RemovingAnEntryLeavesNamesakesThatAreNoCompanion) {
  Region r = Region::create_memfd("pkt", k1M);
  put(r, "wfs", 4096);
  put(r, "wfs_pkt", 4096);  // raw bytes, no stream: not a companion (the real one: region_stream_test)
  put(r, "cmd", 4096, ChannelKind::queue);
  put(r, "cmd_pkt", 4096);  // a stream that merely has such a name: not a queue's companion
  r.remove("wfs");
  r.remove("cmd");
  const auto left = r.entries();
  ASSERT_EQ(left.size(), 2U);
  EXPECT_EQ(left[0].name, "wfs_pkt");
  EXPECT_EQ(left[1].name, "cmd_pkt");
}

// ---- the trust rule ---------------------------------------------------------------------------

/// Corrupts entry 1 of a fresh region by `damage` and expects entries() to fail naming it.
void expect_corrupt(const std::function<void(rlayout::RegionEntry&, rlayout::RegionEntry&)>& damage,
                    const std::string& words) {
  Region r = Region::create_memfd("trust", k1M);
  put(r, "first", 4096);
  put(r, "second", 4096);
  damage(*raw_entry(r, 0), *raw_entry(r, 1));
  try {
    (void)r.entries();
    ADD_FAILURE() << "no error for " << words;
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout) << e.what();
    EXPECT_NE(std::string(e.what()).find("region memfd:trust: entry 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
  // The allocator refuses to work on it too, and so does an open by name.
  EXPECT_THROW((void)put(r, "third", 4096), Error);
  // Freeing the named entry by index is the way out.
  r.remove_entry(1);
  ASSERT_EQ(r.entries().size(), 1U);
  EXPECT_EQ(r.entries()[0].name, "first");
  EXPECT_EQ(test::error_of([&] { r.remove_entry(1); }).errc(), Errc::not_found);
  EXPECT_EQ(test::error_of([&] { r.remove_entry(1'000'000); }).errc(), Errc::invalid_argument);
}

/// Set by the hook below when, at any acquisition of the lock, no entry is named "q".
const Region* g_watched = nullptr;
bool g_name_missing = false;
void watch_name(rdir::HookPoint p) {
  if (p != rdir::HookPoint::recovering || g_watched == nullptr) return;
  bool present = false;
  for (const rlayout::RegionEntry& e : RegionAccess::directory(*g_watched).raw_table())
    present = present || (e.state != rlayout::kStateFree && std::string(e.name) == "q");
  g_name_missing = g_name_missing || !present;
}

TEST(RegionAllocator, PurgeAndCreateNeverLeavesTheNameMissing) {
  Region r = Region::create_memfd("purge", k1M);
  (void)r.create_queue("q", test::queue_spec());
  const std::uint64_t gen = r.entries()[0].generation;
  // Every other process takes the lock to create or remove: at none of its acquisitions may the
  // name be missing (another process could take it there), from the removal to the new entry.
  g_watched = &r;
  g_name_missing = false;
  rdir::g_test_hook = &watch_name;
  (void)r.create_queue("q", test::queue_spec(), OpenMode::PurgeAndCreate);
  rdir::g_test_hook = nullptr;
  g_watched = nullptr;
  EXPECT_FALSE(g_name_missing);
  ASSERT_EQ(r.entries().size(), 1U);
  EXPECT_EQ(r.entries()[0].state, EntryState::ready);
  EXPECT_EQ(r.entries()[0].generation, gen + 2);  // freed (+1), reserved again (+1)
}

TEST(RegionTrust, CorruptedEntriesAreLayoutErrorsNamingTheEntry) {
  using E = rlayout::RegionEntry;
  expect_corrupt([](E&, E& e) { std::memset(e.name, 'x', sizeof e.name); }, "not NUL-terminated");
  expect_corrupt([](E&, E& e) { std::strcpy(e.name, "a/b"); }, "'/'");
  expect_corrupt([](E&, E& e) { e.name[0] = '\0'; }, "empty");
  expect_corrupt([](E&, E& e) { e.state = 7; }, "unknown state 7");
  expect_corrupt([](E&, E& e) { e.kind = 9; }, "unknown kind 9");
  expect_corrupt([](E&, E& e) { e.offset += 8; }, "multiples of 4096");
  expect_corrupt([](E&, E& e) { e.offset = 4096; }, "outside the channel space");
  expect_corrupt([](E&, E& e) { e.size = ~std::uint64_t{0} - 4095; }, "outside the channel space");
  expect_corrupt([](E& a, E& e) { e.offset = a.offset; }, "overlaps entry 0");
  expect_corrupt([](E& a, E& e) { std::memcpy(e.name, a.name, sizeof e.name); }, "has the name of entry 0");
}

TEST(RegionTrust, FreeEntriesMayHoldAnything) {
  Region r = Region::create_memfd("free", k1M);
  std::memset(raw_entry(r, 3), 0xff, sizeof(rlayout::RegionEntry));
  raw_entry(r, 3)->state = rlayout::kStateFree;
  raw_entry(r, 3)->kind = 0xffffffff;
  EXPECT_TRUE(r.entries().empty());
  put(r, "ok", 4096);
  EXPECT_EQ(r.entries().size(), 1U);
}

// ---- the lock and recovery --------------------------------------------------------------------

TEST(RegionLock, ADeadLocalHolderIsTakenOverAtOnce) {
  Region r = Region::create_memfd("dead", k1M);
  const pid_t child = test::spawn([] { return 0; });
  ASSERT_EQ(test::reap(child), 0);
  const std::uint64_t dead = (rdir::holder_token() & 0xffffffff00000000ULL) | static_cast<std::uint32_t>(child);
  std::atomic_ref<std::uint64_t>(raw_header(r)->lock).store(dead);
  // Taking over a dead holder does not wait for the (10 s) timeout.
  LockTimeout slow(10'000'000'000);
  const auto t0 = std::chrono::steady_clock::now();
  put(r, "x", 4096);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(std::atomic_ref<std::uint64_t>(raw_header(r)->lock).load(), 0U);
  EXPECT_EQ(r.entries().size(), 1U);
}

TEST(RegionLock, AHolderOfAnotherKernelIsTakenOverWhenSilent) {
  LockTimeout fast(100'000'000);
  Region r = Region::create_memfd("foreign", k1M);
  const std::uint64_t other = ((rdir::holder_token() >> 32) ^ 0x5a5a5a5aULL) << 32 | 1234U;
  std::atomic_ref<std::uint64_t>(raw_header(r)->lock).store(other);
  put(r, "x", 4096);  // waits 100 ms of silence, then takes over
  EXPECT_EQ(std::atomic_ref<std::uint64_t>(raw_header(r)->lock).load(), 0U);
  EXPECT_EQ(r.entries().size(), 1U);
}

TEST(RegionLock, RecoveryFreesEntriesLeftByTheDead) {
  Region r = Region::create_memfd("rec", k1M);
  rdir::Slot a = put(r, "a", 4096);
  rdir::Slot b = put(r, "b", 4096);
  const pid_t child = test::spawn([] { return 0; });
  ASSERT_EQ(test::reap(child), 0);
  // a: left "creating" by a dead process of this host; b: left "removing" by a remover that died.
  raw_entry(r, a.index)->state = rlayout::kStateCreating;
  raw_entry(r, a.index)->owner = (rdir::holder_token() & 0xffffffff00000000ULL) | static_cast<std::uint32_t>(child);
  raw_entry(r, b.index)->state = rlayout::kStateRemoving;
  EXPECT_EQ(r.entries().size(), 2U);
  put(r, "c", 4096);  // the next allocator operation recovers both
  ASSERT_EQ(r.entries().size(), 1U);
  EXPECT_EQ(r.entries()[0].name, "c");
  EXPECT_EQ(r.entries()[0].offset, a.entry.offset);  // a's bytes were free again
  EXPECT_EQ(raw_entry(r, b.index)->generation, b.entry.generation + 1);
}

TEST(RegionLock, ACreatingEntryOfALiveProcessIsBusyToRemove) {
  Region r = Region::create_memfd("busy", k1M);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::queue, 4096);
  try {
    RegionAccess::directory(r).remove("half");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::busy);
  }
  RegionAccess::directory(r).abandon(res.slot);
  EXPECT_TRUE(r.entries().empty());
  EXPECT_THROW(RegionAccess::directory(r).publish(res.slot), Error);  // it is gone
}

TEST(RegionLock, ReadOnlyHandlesCannotAllocate) {
  TempStreamDir dir;
  Region w = Region::create("ro", k1M);
  put(w, "a", 4096);
  Region r = Region::open("ro", false);
  EXPECT_EQ(r.entries().size(), 1U);
  try {
    put(r, "b", 4096);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::permission);
  }
}

}  // namespace
}  // namespace shmlink
