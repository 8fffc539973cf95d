// SPDX-License-Identifier: MIT
// In-file semaphores between real processes (reference section 10): concurrent slot claims,
// ISIO's getsemwaitindex rules, the post cap of 10, flush-then-wait, and DAO's SEMx / SPIN
// get_frame modes through Shm<T> (reference 16.3).
#include "test_util.hpp"

#include <shmlink/shm.hpp>
#include <shmlink/stream.hpp>

#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::ChildReport;
using test::Shared;
using test::spec_of;

constexpr int kMaxReaders = 16;

struct ClaimCtl {
  ChildReport rep;
  std::atomic<int> opened{0};   // children that opened the stream
  std::atomic<int> go{0};       // set once all have opened: claim now
  std::atomic<int> claimed{0};  // children that have claimed (or failed to)
  std::atomic<int> release{0};  // set when the parent has seen every claim
  std::atomic<int> slot[kMaxReaders];
};

// `n` reader processes open the stream, then claim a slot at the same moment (all released by
// one flag, all preferring slot 0), and hold what they got until every claim is done.
std::vector<int> concurrent_claims(const std::string& name, int n, ClaimCtl* ctl, std::string* why) {
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i) {
    ctl->slot[i].store(-100);
    kids.push_back(test::spawn([=] {
      auto in = Stream::open(name);
      ctl->opened.fetch_add(1);
      // Spin (not sleep) on the start flag, so that the claims really overlap.
      const auto give_up = std::chrono::steady_clock::now() + 20s;
      while (ctl->go.load() == 0) {
        SHMLINK_CHILD_CHECK(&ctl->rep, std::chrono::steady_clock::now() < give_up, i);
        std::this_thread::yield();
      }
      ctl->slot[i].store(in.claim_semaphore(0));
      ctl->claimed.fetch_add(1);
      SHMLINK_CHILD_CHECK(&ctl->rep, test::wait_until([&] { return ctl->release.load() == 1; }), i);
      return 0;
    }));
  }
  const bool all_open = test::wait_until([&] { return ctl->opened.load() == n; });
  ctl->go.store(1);
  const bool all_claimed = test::wait_until([&] { return ctl->claimed.load() == n; });
  std::vector<int> slots;
  for (int i = 0; i < n; ++i) slots.push_back(ctl->slot[i].load());
  ctl->release.store(1);
  int bad = 0;
  for (pid_t k : kids) bad += test::reap(k, 30) != 0;
  if (!all_open || !all_claimed || bad != 0)
    *why = "opened " + std::to_string(ctl->opened.load()) + ", claimed " + std::to_string(ctl->claimed.load()) +
           ", failed children " + std::to_string(bad) + "; " + ctl->rep.describe();
  return slots;
}

TEST(SemaphoreProcesses, SixConcurrentClaimsGetDistinctSlots) {
  test::TempStreamDir dir;
  auto s = Stream::create("six", spec_of({1}, Dtype::u8));
  Shared<ClaimCtl> ctl;
  std::string why;
  auto slots = concurrent_claims("six", 6, &*ctl, &why);
  EXPECT_TRUE(why.empty()) << why;
  std::sort(slots.begin(), slots.end());
  EXPECT_EQ(std::adjacent_find(slots.begin(), slots.end()), slots.end()) << "two processes share a slot";
  for (int sl : slots) {
    EXPECT_GE(sl, 0);
    EXPECT_LT(sl, 10);
  }
}

TEST(SemaphoreProcesses, TwelveClaimsOnTenSlotsExactlyTenSucceed) {
  test::TempStreamDir dir;
  auto s = Stream::create("twelve", spec_of({1}, Dtype::u8));
  Shared<ClaimCtl> ctl;
  std::string why;
  auto slots = concurrent_claims("twelve", 12, &*ctl, &why);
  EXPECT_TRUE(why.empty()) << why;
  std::vector<int> won;
  int refused = 0;
  for (int sl : slots) {
    if (sl >= 0) won.push_back(sl);
    else refused += sl == -1;
  }
  std::sort(won.begin(), won.end());
  EXPECT_EQ(won, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(refused, 2);
}

// ISIO's getsemwaitindex rules, with the holders in other live (or dead) processes.
TEST(SemaphoreProcesses, ClaimFollowsGetsemwaitindexRules) {
  test::TempStreamDir dir;
  auto s = Stream::create("gswi", spec_of({1}, Dtype::u8));
  // No preference, or one out of range: the first free slot.
  EXPECT_EQ(s.claim_semaphore(50), 0);
  s.release_semaphore(0);
  EXPECT_EQ(s.claim_semaphore(-1), 0);
  s.release_semaphore(0);
  EXPECT_EQ(s.info().sem_read_pids[0], -1);
  // Preferred and free: granted.
  EXPECT_EQ(s.claim_semaphore(4), 4);
  EXPECT_EQ(s.info().sem_read_pids[4], ::getpid());
  // Already holding a slot: that slot, whatever is preferred.
  EXPECT_EQ(s.claim_semaphore(6), 4);
  EXPECT_EQ(s.claim_semaphore(), 4);
  EXPECT_EQ(s.info().sem_read_pids[6], -1);
  // Another handle in the same process is the same pid.
  EXPECT_EQ(Stream::open("gswi").claim_semaphore(2), 4);
  s.release_semaphore(4);
  EXPECT_EQ(s.info().sem_read_pids[4], -1);

  // Preferred slot held by a live process: the first free slot instead.
  struct Ctl {
    ChildReport rep;
    std::atomic<int> held{0}, done{0};
  };
  Shared<Ctl> ctl;
  pid_t holder = test::spawn([&] {
    auto in = Stream::open("gswi");
    SHMLINK_CHILD_CHECK(&ctl->rep, in.claim_semaphore(2) == 2, 0);
    const int again = in.claim_semaphore(0);  // already holds 2: stays 2
    SHMLINK_CHILD_CHECK(&ctl->rep, again == 2, again);
    ctl->held.store(1);
    SHMLINK_CHILD_CHECK(&ctl->rep, test::wait_until([&] { return ctl->done.load() == 1; }), 0);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->held.load() == 1 || !test::still_running(holder); }));
  ASSERT_EQ(s.info().sem_read_pids[2], holder);
  EXPECT_EQ(s.info().sem_read_pids[0], -1) << "a process holding a slot claimed a second one";
  pid_t rival = test::spawn([] { return Stream::open("gswi").claim_semaphore(2); });
  EXPECT_EQ(test::reap(rival, 20), 0);  // slot 0: the first free one
  // The rival exited: its slot 0 is free again (dead pid), and slot 2 is still the holder's.
  pid_t second = test::spawn([] { return Stream::open("gswi").claim_semaphore(2); });
  EXPECT_EQ(test::reap(second, 20), 0);
  // Releasing a slot one does not hold changes nothing.
  s.release_semaphore(2);
  pid_t stranger = test::spawn([] {
    Stream::open("gswi").release_semaphore(2);
    return 0;
  });
  EXPECT_EQ(test::reap(stranger, 20), 0);
  EXPECT_EQ(s.info().sem_read_pids[2], holder);
  ctl->done.store(1);
  EXPECT_EQ(test::reap(holder, 20), 0) << ctl->rep.describe();

  // Owner SIGKILLed: its slot is reclaimed by a process that prefers it.
  struct Ctl2 {
    std::atomic<int> held{0};
  };
  Shared<Ctl2> ctl2;
  pid_t victim = test::spawn([&] {
    auto in = Stream::open("gswi");
    if (in.claim_semaphore(7) != 7) return 1;
    ctl2->held.store(1);
    ::pause();
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl2->held.load() == 1 || !test::still_running(victim); }));
  ASSERT_EQ(s.info().sem_read_pids[7], victim);
  pid_t blocked = test::spawn([] { return Stream::open("gswi").claim_semaphore(7) == 7 ? 1 : 0; });
  EXPECT_EQ(test::reap(blocked, 20), 0) << "got slot 7 while its owner lives";
  ::kill(victim, SIGKILL);
  EXPECT_EQ(test::reap(victim, 20), -SIGKILL);
  pid_t heir = test::spawn([] { return Stream::open("gswi").claim_semaphore(7) == 7 ? 0 : 1; });
  EXPECT_EQ(test::reap(heir, 20), 0);

  // Bad indices.
  EXPECT_EQ(s.sem_value(10), -1);
  EXPECT_EQ(s.sem_value(-2), -1);
  EXPECT_EQ(s.sem_post(10).code(), Errc::out_of_range);
  EXPECT_EQ(s.sem_wait(10, 1ms).code(), Errc::out_of_range);
  EXPECT_EQ(s.sem_trywait(10).code(), Errc::out_of_range);
}

// 25 writes from another process with no reader: every slot and semlog sit at the cap of 10,
// semWritePID names the writer; a count below the cap is exact.
TEST(SemaphoreProcesses, PostsAreCappedAtTen) {
  test::TempStreamDir dir;
  auto s = Stream::create("cap", spec_of({4}, Dtype::u8));
  const auto o = test::isio_offsets(4, 0, 10, 0, false);
  ASSERT_EQ(s.file_bytes().size(), o.file_size);
  auto semlog_value = [&] {
    int v = -1;
    ::sem_getvalue(reinterpret_cast<sem_t*>(const_cast<std::byte*>(s.file_bytes().data() + o.semlog)), &v);
    return v;
  };
  EXPECT_EQ(semlog_value(), 0);
  auto writes = [](int n) {
    return test::spawn([n] {
      auto out = Stream::open("cap");
      const std::uint8_t f[4] = {};
      for (int i = 0; i < n; ++i)
        if (!out.write(std::span<const std::uint8_t>(f)).ok()) return 1;
      return 0;
    });
  };
  pid_t w3 = writes(3);
  EXPECT_EQ(test::reap(w3, 20), 0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sem_value(i), 3) << "slot " << i;
  EXPECT_EQ(semlog_value(), 3);
  pid_t w22 = writes(22);
  EXPECT_EQ(test::reap(w22, 20), 0);
  EXPECT_EQ(s.cnt0(), 25u);
  const auto info = s.info();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(s.sem_value(i), kSemaphoreMaxValue) << "slot " << i;
    EXPECT_EQ(info.sem_write_pids[static_cast<std::size_t>(i)], w22) << "slot " << i;
    EXPECT_EQ(info.sem_values[static_cast<std::size_t>(i)], 10) << "slot " << i;
  }
  EXPECT_EQ(semlog_value(), 10);
  // A post without a write is capped too.
  EXPECT_TRUE(s.sem_post(3).ok());
  EXPECT_EQ(s.sem_value(3), 10);
  EXPECT_EQ(s.sem_flush(3), 10);
  EXPECT_EQ(s.sem_value(3), 0);
  EXPECT_TRUE(s.sem_post(3).ok());
  EXPECT_EQ(s.sem_value(3), 1);
  EXPECT_EQ(s.info().sem_write_pids[3], ::getpid());
}

// A reader that flushes its slot sees exactly the next frame: stale posts are gone, one write
// gives one wake-up whose cnt0 is the previous + 1, and no second post follows.
TEST(SemaphoreProcesses, FlushThenWaitSeesExactlyTheNextFrame) {
  test::TempStreamDir dir;
  auto s = Stream::create("flush", spec_of({8}, Dtype::u32));
  struct Ctl {
    ChildReport rep;
    std::atomic<int> slot{-100}, flushed{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    auto in = Stream::open("flush");
    const int slot = in.claim_semaphore();
    SHMLINK_CHILD_CHECK(rep, slot >= 0, slot);
    ctl->slot.store(slot);
    SHMLINK_CHILD_CHECK(rep, test::wait_until([&] { return in.cnt0() == 5; }), in.cnt0());
    SHMLINK_CHILD_CHECK(rep, in.sem_value(slot) == 5, in.sem_value(slot));
    SHMLINK_CHILD_CHECK(rep, in.sem_flush(slot) == 5, 0);
    SHMLINK_CHILD_CHECK(rep, in.sem_value(slot) == 0, in.sem_value(slot));
    const std::uint64_t before = in.cnt0();
    ctl->flushed.store(1);
    const Status st = in.sem_wait(slot, 20s);
    SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
    SHMLINK_CHILD_CHECK(rep, in.cnt0() == before + 1, in.cnt0());
    std::vector<std::uint32_t> f(8);
    FrameInfo info;
    SHMLINK_CHILD_CHECK(rep, in.read_copy(std::as_writable_bytes(std::span(f)), &info).ok(), 0);
    SHMLINK_CHILD_CHECK(rep, info.cnt0 == 6 && f[7] == 6, f[7]);
    const Status again = in.sem_trywait(slot);
    SHMLINK_CHILD_CHECK(rep, again.code() == Errc::would_block, static_cast<int>(again.code()));
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->slot.load() != -100 || !test::still_running(reader); }));
  for (std::uint32_t k = 1; k <= 5; ++k) {  // stale posts
    const std::vector<std::uint32_t> f(8, k);
    ASSERT_TRUE(s.write(std::span<const std::uint32_t>(f)).ok());
  }
  ASSERT_TRUE(test::wait_until([&] { return ctl->flushed.load() == 1 || !test::still_running(reader); }));
  const std::vector<std::uint32_t> f(8, 6);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(f)).ok());
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
}

// DAO's SEMx: get_frame(SEM7) in another process waits on slot 7 only; SEM is SEM0.
TEST(ShmSyncProcesses, SemModesWaitOnTheirOwnSlot) {
  test::TempStreamDir dir;
  const std::vector<float> init(6, 1.5f);
  Shm<float> w("dao", Shape{2, 3}, init.data());
  struct Ctl {
    ChildReport rep;
    std::atomic<int> waiting{0}, woke{0};
  };
  for (ShmSync mode : {ShmSync::SEM7, ShmSync::SEM}) {
    const int slot = mode == ShmSync::SEM ? 0 : 7;
    const int other = mode == ShmSync::SEM ? 1 : 3;
    SCOPED_TRACE("slot " + std::to_string(slot));
    Shared<Ctl> ctl;
    w.stream().sem_flush(-1);
    pid_t reader = test::spawn([&] {
      ChildReport* rep = &ctl->rep;
      Shm<float> r("dao");
      ctl->waiting.store(1);
      // SEM (no timeout argument) for SEM7; SEM with a generous 20 s bound for SEM.
      const float* p = mode == ShmSync::SEM ? r.get_frame(mode, 20) : r.get_frame(mode);
      ctl->woke.store(1);
      SHMLINK_CHILD_CHECK(rep, p != nullptr && p[5] == 1.5f, 0);
      return 0;
    });
    ASSERT_TRUE(test::wait_until([&] { return ctl->waiting.load() == 1; }));
    ASSERT_TRUE(w.stream().sem_post(other).ok());
    std::this_thread::sleep_for(300ms);  // would be plenty for a wrong wake-up to show
    EXPECT_EQ(ctl->woke.load(), 0) << "a post to slot " << other << " woke a slot-" << slot << " waiter";
    EXPECT_TRUE(test::still_running(reader));
    EXPECT_EQ(w.stream().sem_value(other), 1);  // nobody took the other slot's post
    ASSERT_TRUE(w.stream().sem_post(slot).ok());
    EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
    EXPECT_EQ(ctl->woke.load(), 1);
    EXPECT_EQ(w.stream().sem_value(slot), 0);  // the waiter consumed its post
  }
}

// get_frame(SEMx, seconds) gives up after the timeout with nullptr; with a post it returns.
TEST(ShmSyncProcesses, SemWithTimeoutReturnsNullptrWhenNothingArrives) {
  test::TempStreamDir dir;
  Shm<std::uint16_t> w("daot", Shape{4, 4});
  w.stream().sem_flush(-1);
  pid_t reader = test::spawn([] {
    Shm<std::uint16_t> r("daot");
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint16_t* p = r.get_frame(ShmSync::SEM2, 1);
    const auto waited = std::chrono::steady_clock::now() - t0;
    if (p != nullptr) return 1;
    if (waited < 900ms) return 2;
    return 0;
  });
  EXPECT_EQ(test::reap(reader, 30), 0);
  ASSERT_TRUE(w.stream().sem_post(2).ok());
  EXPECT_NE(w.get_frame(ShmSync::SEM2, 1), nullptr);
  EXPECT_EQ(w.get_frame(ShmSync::NONE), w.stream().view_as<std::uint16_t>().data());
}

// SPIN with a target returns only once cnt0 >= target, the frames coming from another process;
// SPIN without one returns at the next frame.
TEST(ShmSyncProcesses, SpinWithTargetWaitsForTheCounter) {
  test::TempStreamDir dir;
  Shm<std::int32_t> w("spin", Shape{2, 2});
  struct Ctl {
    ChildReport rep;
    std::atomic<int> waiting{0};
    std::atomic<std::uint64_t> seen{0}, seen_next{0};
  };
  Shared<Ctl> ctl;
  pid_t reader = test::spawn([&] {
    ChildReport* rep = &ctl->rep;
    Shm<std::int32_t> r("spin");
    ctl->waiting.store(1);
    const std::int32_t* p = r.get_frame(ShmSync::SPIN, 5);
    SHMLINK_CHILD_CHECK(rep, p != nullptr, 0);
    ctl->seen.store(r.get_counter());
    SHMLINK_CHILD_CHECK(rep, r.get_counter() >= 5, r.get_counter());
    const std::uint64_t c = r.get_counter();
    SHMLINK_CHILD_CHECK(rep, r.get_frame(ShmSync::SPIN) != nullptr, 0);
    ctl->seen_next.store(r.get_counter());
    SHMLINK_CHILD_CHECK(rep, r.get_counter() > c, r.get_counter());
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->waiting.load() == 1; }));
  for (std::int32_t k = 1; k <= 4; ++k) {
    const std::vector<std::int32_t> f(4, k);
    w.set_frame(f.data());
    std::this_thread::sleep_for(30ms);
  }
  EXPECT_EQ(ctl->seen.load(), 0u) << "SPIN with target 5 returned at cnt0 " << ctl->seen.load();
  const std::vector<std::int32_t> f5(4, 5);
  w.set_frame(f5.data());
  ASSERT_TRUE(test::wait_until([&] { return ctl->seen.load() != 0 || !test::still_running(reader); }));
  EXPECT_EQ(ctl->seen.load(), 5u);
  // Plain SPIN waits for the next frame after the call: keep writing until the reader has one.
  for (std::int32_t k = 6; ctl->seen_next.load() == 0 && test::still_running(reader) && k < 2000; ++k) {
    const std::vector<std::int32_t> f(4, k);
    w.set_frame(f.data());
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(test::reap(reader, 30), 0) << ctl->rep.describe();
  EXPECT_GT(ctl->seen_next.load(), 5u);
}

}  // namespace
