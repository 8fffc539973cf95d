// SPDX-License-Identifier: MIT
// The region directory's lock judges holders by thread and start time (docs/design/region.md):
// a reused pid is not its dead holder, a zombie leader with running threads is alive, an
// acquisition of this thread that was never released is stale, and a throw inside the lock
// releases it.
#include "region/region_access.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "region_test_util.hpp"
#include "test_util.hpp"

namespace shmlink {
namespace {

using detail::RegionAccess;

using test::k1M;

rlayout::RegionHeader* header_of(const Region& r) {
  return reinterpret_cast<rlayout::RegionHeader*>(RegionAccess::state(r)->bytes.data());
}
std::atomic_ref<std::uint64_t> lock_of(const Region& r) { return std::atomic_ref<std::uint64_t>(header_of(r)->lock); }
rlayout::RegionEntry* entry_of(const Region& r, std::uint32_t i) {
  return reinterpret_cast<rlayout::RegionEntry*>(RegionAccess::state(r)->bytes.data() + rlayout::entry_offset(i));
}

/// Field 22 of /proc/PID/stat (start time in clock ticks).
std::uint64_t start_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream f(text.substr(text.rfind(')') + 2));
  std::string skip;
  for (int k = 3; k < 22; ++k) f >> skip;
  std::uint64_t start = 0;
  f >> start;
  return start;
}

/// A child that sleeps until killed (a live process of this host).
struct Sleeper {
  Sleeper() : pid(test::spawn([] {
    for (;;) ::pause();
    return 0;
  })) {}
  ~Sleeper() {
    ::kill(pid, SIGKILL);
    (void)test::reap(pid);
  }
  pid_t pid;
};

/// Sets the lock timeout for one test (long: "at once" must not mean "after the timeout").
struct LockTimeout {
  explicit LockTimeout(std::int64_t ns) : old(rdir::g_lock_timeout_ns.exchange(ns)) {}
  ~LockTimeout() { rdir::g_lock_timeout_ns.store(old); }
  std::int64_t old;
};
constexpr std::int64_t k10s = 10'000'000'000;

std::uint64_t hash_bits() { return rdir::holder_token() & 0xffffffff00000000ULL; }

/// Reserves and publishes `name`; returns the seconds it took.
double timed_put(Region& r, const std::string& name) {
  const auto t0 = std::chrono::steady_clock::now();
  auto res = RegionAccess::allocate(RegionAccess::state(r), name, ChannelKind::stream, 4096);
  RegionAccess::directory(r).publish(res.slot);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(RegionLockHolders, ALiveLocalHolderTimesOutNamingTheThread) {
  LockTimeout fast(100'000'000);
  Sleeper live;
  Region r = Region::create_memfd("live", k1M);
  lock_of(r).store(hash_bits() | static_cast<std::uint32_t>(live.pid));
  std::atomic_ref<std::uint64_t>(header_of(r)->lock_start)
      .store((std::uint64_t(live.pid) << 40) | start_of(live.pid));
  const Error e = test::error_of([&] { timed_put(r, "x"); });  // a live holder is not taken over
  EXPECT_EQ(e.errc(), Errc::timeout);
  EXPECT_NE(std::string(e.what()).find("memfd:live"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("thread " + std::to_string(live.pid)), std::string::npos) << e.what();
}

TEST(RegionLockHolders, AReusedPidIsNotTheHolder) {
  LockTimeout slow(k10s);
  Sleeper reused;  // alive, but started later than the holder the lock word names
  Region r = Region::create_memfd("reused", k1M);
  lock_of(r).store(hash_bits() | static_cast<std::uint32_t>(reused.pid));
  std::atomic_ref<std::uint64_t>(header_of(r)->lock_start)
      .store((std::uint64_t(reused.pid) << 40) | (start_of(reused.pid) - 1));
  EXPECT_LT(timed_put(r, "x"), 5.0);  // taken over at once, not after 10 s
  EXPECT_EQ(lock_of(r).load(), 0U);
  // A creating entry whose creator's pid now names another process is not "still creating".
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::queue, 4096);
  entry_of(r, res.slot.index)->owner = hash_bits() | static_cast<std::uint32_t>(reused.pid);
  entry_of(r, res.slot.index)->owner_start = start_of(reused.pid) - 1;
  (void)RegionAccess::directory(r).remove("half");  // the lock's recovery frees it first
  ASSERT_EQ(r.entries().size(), 1U);
  EXPECT_EQ(r.entries()[0].name, "x");
}

TEST(RegionLockHolders, ALeaderThatExitedWhileItsThreadsRunIsAlive) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t kid = test::spawn([&] {
    pthread_t t;
    ::pthread_create(&t, nullptr, [](void*) -> void* {
      for (;;) ::pause();
    }, nullptr);
    (void)::write(ready[1], "r", 1);
    ::syscall(SYS_exit, 0);  // the leader thread alone exits (shows Z); the process lives on
    return 0;
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(test::wait_until([&] {
    std::ifstream in("/proc/" + std::to_string(kid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find(") Z") != std::string::npos;
  }, 5));
  Region r = Region::create_memfd("leader", k1M);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::queue, 4096);
  entry_of(r, res.slot.index)->owner = hash_bits() | static_cast<std::uint32_t>(kid);
  entry_of(r, res.slot.index)->owner_start = start_of(kid);
  try {
    RegionAccess::directory(r).remove("half");
    ADD_FAILURE() << "the entry of a live process was removed";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::busy) << e.what();
  }
  ::kill(kid, SIGKILL);
  (void)test::reap(kid);
  (void)RegionAccess::directory(r).remove("half");  // dead now: recovered or removed
  EXPECT_TRUE(r.entries().empty());
}

TEST(RegionLockHolders, AnAcquisitionOfThisThreadNeverReleasedIsStale) {
  LockTimeout slow(k10s);
  Region r = Region::create_memfd("stale", k1M);
  lock_of(r).store(hash_bits() | static_cast<std::uint32_t>(::gettid()));  // not held: stale
  EXPECT_LT(timed_put(r, "x"), 5.0);
  EXPECT_EQ(lock_of(r).load(), 0U);
}

void throw_in_recovery(rdir::HookPoint p) {
  if (p == rdir::HookPoint::recovering) throw std::bad_alloc();
}

TEST(RegionLockHolders, AThrowWhileRecoveringReleasesTheLock) {
  Region r = Region::create_memfd("throw", k1M);
  rdir::g_test_hook = &throw_in_recovery;
  EXPECT_THROW(RegionAccess::allocate(RegionAccess::state(r), "x", ChannelKind::stream, 4096), std::bad_alloc);
  rdir::g_test_hook = nullptr;
  EXPECT_EQ(lock_of(r).load(), 0U);
}

/// The region whose lock the hook below steals, and the token it writes.
rlayout::RegionHeader* g_steal_from = nullptr;
constexpr std::uint64_t kThief = 0x0123456700000042ULL;  // another kernel's holder
void steal_lock(rdir::HookPoint p) {
  if (p == rdir::HookPoint::locked) std::atomic_ref<std::uint64_t>(g_steal_from->lock).store(kThief);
}

TEST(RegionLockHolders, AHolderWhoseLockWasTakenOverCommitsNothing) {
  Region r = Region::create_memfd("stolen", k1M);
  g_steal_from = header_of(r);
  rdir::g_test_hook = &steal_lock;  // as if this holder stalled and another took the lock over
  const Error e = test::error_of([&] { timed_put(r, "x"); });  // it must not commit
  EXPECT_EQ(e.errc(), Errc::timeout);
  EXPECT_NE(std::string(e.what()).find("memfd:stolen"), std::string::npos) << e.what();
  rdir::g_test_hook = nullptr;
  EXPECT_EQ(lock_of(r).load(), kThief);  // the new holder keeps its lock
  lock_of(r).store(0);
  EXPECT_TRUE(r.entries().empty());
}

}  // namespace
}  // namespace shmlink
