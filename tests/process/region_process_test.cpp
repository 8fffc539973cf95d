// SPDX-License-Identifier: MIT
// Regions between processes (issue 20): the allocator's crash recovery with a process killed while
// it holds the directory lock and one killed mid-creation; channels created by one process and
// used by others by name.
#include "region/region_access.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace shmlink {
namespace {

using detail::RegionAccess;
using test::TempStreamDir;

constexpr std::size_t k1M = 1024 * 1024;

/// Sets the lock timeout for one test.
struct LockTimeout {
  explicit LockTimeout(std::int64_t ns) : old(rdir::g_lock_timeout_ns.exchange(ns)) {}
  ~LockTimeout() { rdir::g_lock_timeout_ns.store(old); }
  std::int64_t old;
};

/// Where the child under test stops itself (SIGSTOP) so that the parent can kill it there.
rdir::HookPoint g_stop_at = rdir::HookPoint::locked;
void stop_here(rdir::HookPoint p) {
  if (p == g_stop_at) ::raise(SIGSTOP);
}

/// Forks a child that opens region `name` and reserves entry `entry`, stopping at `where`;
/// returns once the child is stopped there, then kills and reaps it.
void kill_child_at(const std::string& name, const std::string& entry, rdir::HookPoint where) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      g_stop_at = where;
      rdir::g_test_hook = &stop_here;
      Region r = Region::open(name);
      (void)RegionAccess::allocate(RegionAccess::state(r), entry, ChannelKind::stream, 8192);
    } catch (...) {
      ::_exit(98);
    }
    ::_exit(97);  // never reached: killed while stopped
  }
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(st)) << "the child did not reach the hook (status " << st << ")";
  ::kill(child, SIGKILL);
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFSIGNALED(st));
}

TEST(RegionRecovery, AProcessKilledHoldingTheLockIsTakenOverAtOnce) {
  TempStreamDir dir;
  LockTimeout slow(10'000'000'000);
  Region r = Region::create("crash", k1M);
  kill_child_at("crash", "half", rdir::HookPoint::locked);
  // The dead child still holds the lock, with an entry written but not committed.
  const auto* h = reinterpret_cast<const rlayout::RegionHeader*>(RegionAccess::state(r)->bytes.data());
  EXPECT_NE(std::atomic_ref<const std::uint64_t>(h->lock).load(), 0U);
  EXPECT_TRUE(r.entries().empty());  // readers read past a dead holder
  // The next allocator operation takes over at once: well before the 10 s lock timeout.
  const auto t0 = std::chrono::steady_clock::now();
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::stream, 8192);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  RegionAccess::directory(r).publish(res.slot);
  ASSERT_EQ(r.entries().size(), 1U);
  EXPECT_EQ(r.entries()[0].name, "half");
  EXPECT_EQ(r.entries()[0].state, EntryState::ready);
  EXPECT_EQ(std::atomic_ref<const std::uint64_t>(h->lock).load(), 0U);
}

TEST(RegionRecovery, AnEntryLeftCreatingByAKilledProcessIsReclaimed) {
  TempStreamDir dir;
  Region r = Region::create("midway", k1M);
  kill_child_at("midway", "wfs", rdir::HookPoint::reserved);
  auto left = r.entries();
  ASSERT_EQ(left.size(), 1U);
  EXPECT_EQ(left[0].state, EntryState::creating);
  EXPECT_EQ(left[0].name, "wfs");
  // Another process (this one) creates the same name: the dead creator's entry is reclaimed first.
  auto res = RegionAccess::allocate(RegionAccess::state(r), "wfs", ChannelKind::stream, 8192);
  RegionAccess::directory(r).publish(res.slot);
  auto now = r.entries();
  ASSERT_EQ(now.size(), 1U);
  EXPECT_EQ(now[0].state, EntryState::ready);
  EXPECT_EQ(now[0].offset, left[0].offset);
  EXPECT_EQ(now[0].generation, left[0].generation + 2);  // freed (+1), reserved again (+1)
  EXPECT_EQ(now[0].owner, rdir::holder_token());
}

TEST(RegionRecovery, AForkedChildCannotAbandonItsParentsReservation) {
  TempStreamDir dir;
  Region r = Region::create("forked", k1M);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "mine", ChannelKind::stream, 8192);
  // The child inherits the handle and the reservation's Slot (as a fork after reserve would).
  const pid_t kid = test::spawn([&]() -> int {
    RegionAccess::directory(r).abandon(res.slot);
    return 0;
  });
  ASSERT_EQ(test::reap(kid, 10), 0);
  auto left = r.entries();
  ASSERT_EQ(left.size(), 1U);
  EXPECT_EQ(left[0].state, EntryState::creating);
  EXPECT_EQ(left[0].generation, res.slot.entry.generation);
  RegionAccess::directory(r).abandon(res.slot);  // its owner may
  EXPECT_TRUE(r.entries().empty());
}

TEST(RegionRecovery, ProcessesAllocatingAtOnceGetDisjointEntries) {
  TempStreamDir dir;
  Region r = Region::create("busy", 4 * k1M);
  // A live holder descheduled on a saturated machine must not be taken for a stuck one.
  LockTimeout patient(20'000'000'000);
  test::Shared<test::ChildReport> report;
  std::vector<pid_t> kids;
  for (int k = 0; k < 3; ++k)
    kids.push_back(test::spawn([&, k]() -> int {
      Region mine = Region::open("busy");
      for (int i = 0; i < 20; ++i) {
        const std::string name = "p" + std::to_string(k) + "_" + std::to_string(i);
        {
          auto res = RegionAccess::allocate(RegionAccess::state(mine), name, ChannelKind::queue, 4096 * (1 + i % 3));
          RegionAccess::directory(mine).publish(res.slot);
        }  // detached: a remove frees the entry at once
        if (i % 4 == 3) SHMLINK_CHILD_CHECK(report, RegionAccess::directory(mine).remove(name), i);
      }
      return 0;
    }));
  for (pid_t kid : kids) EXPECT_EQ(test::reap(kid, 30), 0) << report->describe();
  // 3 x (20 - 5 removed); entries() validates that no two overlap and names are unique.
  const auto entries = r.entries();
  EXPECT_EQ(entries.size(), 45U);
  for (const RegionEntry& e : entries) EXPECT_EQ(e.state, EntryState::ready) << e.name;
}

}  // namespace
}  // namespace shmlink
