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
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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

/// Makes the lock of `r` look held by thread `tid` started at `start`, as its acquisition writes it.
void hold_as(const Region& r, pid_t tid, std::uint64_t start) {
  const std::uint64_t token = hash_bits() | static_cast<std::uint32_t>(tid);
  lock_of(r).store(token);
  std::atomic_ref<std::uint64_t>(header_of(r)->lock_start).store(rdir::lock_start_of(token, start));
}

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
  hold_as(r, live.pid, start_of(live.pid));
  const Error e = test::error_of([&] { timed_put(r, "x"); });  // a live holder is not taken over
  EXPECT_EQ(e.errc(), Errc::timeout);
  EXPECT_NE(std::string(e.what()).find("memfd:live"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("thread " + std::to_string(live.pid)), std::string::npos) << e.what();
}

TEST(RegionLockHolders, AReusedPidIsNotTheHolder) {
  LockTimeout slow(k10s);
  Sleeper reused;  // alive, but started later than the holder the lock word names
  Region r = Region::create_memfd("reused", k1M);
  hold_as(r, reused.pid, start_of(reused.pid) - 1);
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

void steal_lock_at_recovery(rdir::HookPoint p) {
  if (p == rdir::HookPoint::recovering) std::atomic_ref<std::uint64_t>(g_steal_from->lock).store(kThief);
}

TEST(RegionLockHolders, AHolderWhoseLockWasTakenOverClearsNoAttachment) {
  // Clearing a dead process's attachment slot is a store of the lock holder like those to the
  // table: it checks first that the lock is still its own.
  Region r = Region::create_memfd("attached", k1M);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "q", ChannelKind::queue, 4096);
  RegionAccess::directory(r).publish(res.slot);
  res.where = Placement{};  // this process detaches: its slot is free again
  const pid_t child = test::spawn([] { return 0; });
  ASSERT_EQ(test::reap(child), 0);
  const rlayout::RegionEntry* e = entry_of(r, res.slot.index);
  auto* page = reinterpret_cast<rlayout::AttachSlot*>(RegionAccess::state(r)->bytes.data() + e->offset + e->size -
                                                      rlayout::kAttachBytes);
  const std::uint64_t dead = hash_bits() | static_cast<std::uint32_t>(child);  // a dead local process
  std::atomic_ref<std::uint64_t>(page[0].token).store(dead);
  std::atomic_ref<std::uint64_t>(page[0].start).store(0);
  g_steal_from = header_of(r);
  rdir::g_test_hook = &steal_lock_at_recovery;  // as if this holder stalled and another took over
  const Error err = test::error_of([&] { (void)RegionAccess::directory(r).remove("q"); });
  rdir::g_test_hook = nullptr;
  EXPECT_EQ(err.errc(), Errc::timeout) << err.what();
  EXPECT_NE(std::string(err.what()).find("memfd:attached"), std::string::npos) << err.what();
  EXPECT_EQ(std::atomic_ref<std::uint64_t>(page[0].token).load(), dead) << "cleared under a lock taken over";
  EXPECT_EQ(lock_of(r).load(), kThief);
  lock_of(r).store(0);
  // Holding the lock, the remover clears the dead slot and frees the entry.
  EXPECT_TRUE(RegionAccess::directory(r).remove("q"));
  EXPECT_EQ(std::atomic_ref<std::uint64_t>(page[0].token).load(), 0U);
  EXPECT_TRUE(r.entries().empty());
}

/// Points the liveness rules at an empty folder for one test: a /proc that is not this pid
/// namespace's (another namespace's /proc, hidepid, an unreadable mount) says "no such task" of
/// every task, which must not make a live holder dead.
struct ForeignProc {
  ForeignProc() {
    std::string tmpl = "/tmp/shmlink-proc-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
    rdir::g_proc_root = path.c_str();
  }
  ~ForeignProc() {
    rdir::g_proc_root = "/proc";
    ::rmdir(path.c_str());
  }
  std::string path;
};

TEST(RegionLockHolders, AHolderWhoseProcEntryCannotBeReadIsNotTakenOver) {
  LockTimeout fast(100'000'000);
  Sleeper live;
  Region r = Region::create_memfd("foreign", k1M);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::queue, 4096);
  entry_of(r, res.slot.index)->owner = hash_bits() | static_cast<std::uint32_t>(live.pid);
  entry_of(r, res.slot.index)->owner_start = start_of(live.pid);
  hold_as(r, live.pid, start_of(live.pid));
  ForeignProc foreign;
  // Unknown liveness is taken as alive: after the timeout, an error naming the thread.
  const Error e = test::error_of([&] { timed_put(r, "x"); });
  EXPECT_EQ(e.errc(), Errc::timeout) << e.what();
  EXPECT_NE(std::string(e.what()).find("thread " + std::to_string(live.pid)), std::string::npos) << e.what();
  EXPECT_EQ(lock_of(r).load(), hash_bits() | static_cast<std::uint32_t>(live.pid));
  // Nor is its entry in creation freed by the lock's recovery, nor removable.
  lock_of(r).store(0);
  const Error busy = test::error_of([&] { (void)RegionAccess::directory(r).remove("half"); });
  EXPECT_EQ(busy.errc(), Errc::busy) << busy.what();
  EXPECT_EQ(r.entries().size(), 1U);
}

TEST(RegionLockHolders, AZombieLeaderSeenInAForeignProcIsNotGone) {
  Sleeper live;
  Region r = Region::create_memfd("zombie", k1M);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::queue, 4096);
  entry_of(r, res.slot.index)->owner = hash_bits() | static_cast<std::uint32_t>(live.pid);
  entry_of(r, res.slot.index)->owner_start = 777;
  ForeignProc foreign;  // another namespace's /proc where that pid is a zombie leader, no threads
  const std::string dir = foreign.path + "/" + std::to_string(live.pid);
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir + "/task").c_str(), 0700), 0);
  {
    std::ofstream stat(dir + "/stat");
    stat << live.pid << " (x) Z";
    for (int k = 4; k < 22; ++k) stat << " 0";
    stat << " 777\n";
  }
  const Error busy = test::error_of([&] { (void)RegionAccess::directory(r).remove("half"); });
  EXPECT_EQ(busy.errc(), Errc::busy) << busy.what();
  ::unlink((dir + "/stat").c_str());
  ::rmdir((dir + "/task").c_str());
  ::rmdir(dir.c_str());
}

TEST(RegionLockHolders, ALockStartLeftByAnEarlierAcquisitionDoesNotJudgeTheHolder) {
  LockTimeout fast(100'000'000);
  Sleeper live;  // took the lock (token seq 5) but has not stored its lock_start yet
  Region r = Region::create_memfd("window", k1M);
  const std::uint64_t now = hash_bits() | (std::uint64_t{5} << 22) | static_cast<std::uint32_t>(live.pid);
  const std::uint64_t before = hash_bits() | (std::uint64_t{4} << 22) | static_cast<std::uint32_t>(live.pid);
  lock_of(r).store(now);
  // An earlier thread with the same id (another start time) held the lock before it.
  std::atomic_ref<std::uint64_t>(header_of(r)->lock_start).store(rdir::lock_start_of(before, start_of(live.pid) - 1));
  const Error e = test::error_of([&] { timed_put(r, "x"); });
  EXPECT_EQ(e.errc(), Errc::timeout) << e.what();
  EXPECT_EQ(lock_of(r).load(), now);
  lock_of(r).store(0);
}

/// The word that the hook below changes as a newer holder would have, right after the holder
/// under test checked that the lock was still its own.
std::uint64_t* g_clobber = nullptr;
constexpr std::uint64_t kNewer = 0x4141414141414141ULL;
void clobber_once(rdir::HookPoint p) {
  if (p != rdir::HookPoint::storing || g_clobber == nullptr) return;
  std::atomic_ref<std::uint64_t>(*g_clobber).store(kNewer);
  g_clobber = nullptr;
}

TEST(RegionLockHolders, AStalledHolderNeverOverwritesANewerHoldersStore) {
  Region r = Region::create_memfd("clobber", k1M);
  g_clobber = reinterpret_cast<std::uint64_t*>(entry_of(r, 0));  // the first word it writes: entry 0's name
  rdir::g_test_hook = &clobber_once;
  const Error e = test::error_of([&] { timed_put(r, "x"); });
  rdir::g_test_hook = nullptr;
  EXPECT_EQ(e.errc(), Errc::timeout) << e.what();
  EXPECT_NE(std::string(e.what()).find("memfd:clobber"), std::string::npos) << e.what();
  EXPECT_EQ(std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(entry_of(r, 0))).load(), kNewer);
  EXPECT_EQ(lock_of(r).load(), 0U);
  EXPECT_TRUE(r.entries().empty());
}

TEST(RegionLockHolders, LockCountIsAddedToAtomically) {
  RegionOptions one;
  one.max_entries = 1;
  Region r = Region::create_memfd("count", k1M, one);
  auto count = std::atomic_ref<std::uint64_t>(header_of(r)->lock_count);
  constexpr int kRounds = 20000;
  std::atomic<bool> done{false};
  std::uint64_t other = 0;
  // Another writer of the count (a holder taken over while it stalled) adds at the same time.
  std::thread t([&] {
    while (!done.load(std::memory_order_relaxed) || other < 100) {
      count.fetch_add(1);
      ++other;
    }
  });
  for (int i = 0; i < kRounds; ++i) EXPECT_FALSE(RegionAccess::directory(r).remove_index(0));
  done = true;
  t.join();
  EXPECT_EQ(count.load(), kRounds + other);
}

/// Tokens of the acquisitions the hook below saw.
std::mutex g_tokens_mutex;
std::vector<std::uint64_t> g_tokens;
rlayout::RegionHeader* g_token_of = nullptr;
void record_token(rdir::HookPoint p) {
  if (p != rdir::HookPoint::recovering) return;
  std::lock_guard<std::mutex> g(g_tokens_mutex);
  g_tokens.push_back(std::atomic_ref<std::uint64_t>(g_token_of->lock).load());
}

TEST(RegionLockHolders, EachThreadStartsItsTokenSequenceAtRandom) {
  Region r = Region::create_memfd("seq", k1M);
  g_token_of = header_of(r);
  g_tokens.clear();
  rdir::g_test_hook = &record_token;
  for (int k = 0; k < 6; ++k) std::thread([&] { (void)RegionAccess::directory(r).remove_index(0); }).join();
  rdir::g_test_hook = nullptr;
  ASSERT_EQ(g_tokens.size(), 6U);
  std::set<std::uint64_t> seqs;
  for (std::uint64_t t : g_tokens) seqs.insert((t >> 22) & 0x3ff);
  EXPECT_GT(seqs.size(), 1U) << "every new thread's first token has sequence " << *seqs.begin();
}

TEST(RegionLockHolders, InARegionOtherKernelsShareAGoneLocalCreatorIsNotReclaimed) {
  // A VM cloned from this one's snapshot has the same boot_id and pids: a creator that looks
  // gone here may run there. Only a user's remove frees its entry.
  std::shared_ptr<void> mem(std::aligned_alloc(4096, k1M), &std::free);
  ASSERT_NE(mem, nullptr);
  Region r = Region::format({static_cast<std::byte*>(mem.get()), k1M}, mem, "bar2", false);
  const pid_t child = test::spawn([] { return 0; });
  ASSERT_EQ(test::reap(child), 0);
  auto res = RegionAccess::allocate(RegionAccess::state(r), "half", ChannelKind::queue, 4096);
  entry_of(r, res.slot.index)->owner = hash_bits() | static_cast<std::uint32_t>(child);
  entry_of(r, res.slot.index)->owner_start = 0;
  res.where = Placement{};  // this process is not attached (a remove would keep the bytes)
  (void)timed_put(r, "x");  // the lock's recovery runs
  ASSERT_EQ(r.entries().size(), 2U);
  EXPECT_TRUE(RegionAccess::directory(r).remove("half"));
  EXPECT_EQ(r.entries().size(), 1U);
}

}  // namespace
}  // namespace shmlink
