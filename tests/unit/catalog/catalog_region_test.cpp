// SPDX-License-Identifier: MIT
// The catalog reads regions without their lock and without following links
// (include/shmlink/catalog.hpp): a region whose lock word a hostile peer holds is listed busy at
// once, however long the region's lock timeout; a symbolic link named like a region is listed by
// its name and never followed. Real region files in a private directory; the lock timeout is the
// region's internal setting (rdir::g_lock_timeout_ns).
#include <shmlink/catalog.hpp>
#include <shmlink/region.hpp>

#include "region/region_internal.hpp"
#include "region/region_layout.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace shmlink {
namespace {

using test::TempStreamDir;

/// The listing at `path` in `all`, or nullptr.
const ChannelListing* at(const std::vector<ChannelListing>& all, const std::string& path) {
  auto it = std::find_if(all.begin(), all.end(), [&](const ChannelListing& l) { return l.path == path; });
  return it == all.end() ? nullptr : &*it;
}

/// Stores `value` into the 64-bit word at `offset` of the file `path` through a shared mapping
/// (as a peer sharing the region would).
void poke(const std::string& path, std::size_t offset, std::uint64_t value) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED);
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(static_cast<char*>(p) + offset))
      .store(value, std::memory_order_release);
  ::munmap(p, 4096);
}

/// The 64-bit word at `offset` of the file `path` (pread).
std::uint64_t peek(const std::string& path, std::size_t offset) {
  std::uint64_t w = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && ::pread(fd, &w, sizeof w, static_cast<off_t>(offset)) != sizeof w) w = ~std::uint64_t{0};
  if (fd >= 0) ::close(fd);
  return w;
}

TEST(CatalogRegion, ARegionWhoseLockAHostilePeerHoldsIsListedBusyWithoutWaitingForTheLock) {
  TempStreamDir dir;
  const std::string file = dir.path() + "/ao.region.shm";
  {
    Region region = Region::create("ao", 64 * 1024);
    QueueSpec spec;
    spec.capacity = 8;
    spec.max_values = 4;
    (void)region.create_queue("ctl", spec);
  }
  // A lock word no process of this kernel owns (another VM's, or garbage), never released.
  const std::uint64_t hostile = 0xdeadbeef00c0ffeeULL;
  poke(file, offsetof(rlayout::RegionHeader, lock), hostile);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A lock timeout of an hour: whoever waits for the lock does not come back within the test.
    rdir::g_lock_timeout_ns.store(3600LL * 1'000'000'000, std::memory_order_relaxed);
    const std::vector<ChannelListing> all = list_channels(dir.path(), false);
    const ChannelListing* r = at(all, file);
    if (r == nullptr || r->kind != "region") ::_exit(10);
    if (r->problem.rfind("busy", 0) != 0) ::_exit(11);
    if (r->problem.find("0xdeadbeef00c0ffee") == std::string::npos) ::_exit(12);
    if (at(all, file + ":ctl") != nullptr) ::_exit(13);  // a copy under a held lock is not trusted
    ::_exit(0);
  }
  const int reaped = test::reap(pid, 30);
  ASSERT_NE(reaped, -1000) << "the listing did not come back (it waited for the region's lock)";
  EXPECT_EQ(reaped, 0) << "10: region not listed, 11: not reported busy, 12: the lock word not named, "
                                       "13: entries listed from a copy taken under the held lock";

  // Once the lock is free again the entries are listed, and the listing took no lock: the
  // readers' sequence (lock_count) did not move.
  poke(file, offsetof(rlayout::RegionHeader, lock), 0);
  const std::uint64_t count = peek(file, offsetof(rlayout::RegionHeader, lock_count));
  const std::vector<ChannelListing> all = list_channels(dir.path(), false);
  ASSERT_NE(at(all, file), nullptr);
  EXPECT_EQ(at(all, file)->problem, "");
  const ChannelListing* ctl = at(all, file + ":ctl");
  ASSERT_NE(ctl, nullptr);
  EXPECT_EQ(ctl->kind, "region-queue");
  EXPECT_EQ(peek(file, offsetof(rlayout::RegionHeader, lock_count)), count);
  EXPECT_EQ(peek(file, offsetof(rlayout::RegionHeader, lock)), 0u);
}

TEST(CatalogRegion, ASymlinkNamedLikeARegionIsListedButNotFollowed) {
  TempStreamDir elsewhere;  // the real region lives in another directory
  const std::string real = elsewhere.path() + "/real.region.shm";
  Region region = Region::create(real, 64 * 1024);
  QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 4;
  (void)region.create_queue("ctl", spec);
  TempStreamDir dir;
  const std::string link = dir.path() + "/link.region.shm";
  std::filesystem::create_symlink(real, link);

  const std::vector<ChannelListing> all = list_channels(dir.path(), false);
  const ChannelListing* l = at(all, link);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->kind, "region");
  EXPECT_EQ(l->problem, "a symbolic link (not followed)");
  EXPECT_EQ(at(all, link + ":ctl"), nullptr) << "the link was followed into the region it points to";
  EXPECT_EQ(all.size(), 1u);
  // The region itself, listed in its own directory, shows its entry.
  const std::vector<ChannelListing> own = list_channels(elsewhere.path(), false);
  EXPECT_NE(at(own, real + ":ctl"), nullptr);
}

}  // namespace
}  // namespace shmlink
