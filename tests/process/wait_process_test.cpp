// SPDX-License-Identifier: MIT
// Stream::wait_futex and read_next against writers that only post the in-file semaphores, as
// ImageStreamIO's UpdateIm (milk) does, between real processes (issue 18 item 1; reference
// sections 10 and 11.1): every frame wakes the reader, a semaphore slot is claimed for that and
// only for that, is never handed out twice in the process, and is given back on close. Also:
// shmlink writers still need no slot, whatever the number of readers.
//
// The readers raise detail::foreign_writer_poll_ns() (the re-check slice of a wait that nothing
// wakes, 10 ms) to 30 s, so that only a real wake-up can end their waits in time: without one, a
// wait runs into its bound (2 to 5 s) and the test fails, never by a timing assertion.
//
// Convention: the frame whose cnt0 is k has every element equal to k.
#include "os/futex.hpp"
#include "stream/tuning.hpp"
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::ChildReport;
using test::Shared;
using test::spec_of;

// ISIO 2.00 metadata offsets (reference section 2), independent of the library's struct.
constexpr std::size_t kOffAtime = 184, kOffWritetime = 200, kOffCnt0 = 264, kOffCnt1 = 272,
                      kOffWrite = 288, kOffFutexWaiters = 300;

/// Raises the re-check slice of waits nothing wakes to 30 s in this (reader) process.
void only_real_wakeups() { detail::foreign_writer_poll_ns().store(30'000'000'000); }

/// A writer that follows ImageStreamIO's UpdateIm order exactly (reference 11.1, milk's
/// convention): write = 1, copy the frame (a rolling buffer: into slice (cnt1 + 1) % depth, its
/// temporal entries, then cnt1), atime and writetime, cnt0 += 1 (release), write = 0, then
/// glibc's sem_post on every slot whose sem_getvalue is below 10, then semlog. No futex wake and
/// no shmlink wake stamp: written from the file layout, not through the library.
class IsioWriter {
 public:
  /// Maps the stream file `path` (u32 elements; `frame_elems` per frame, `depth` slices, 1 for a
  /// plain stream) with `nsem` semaphores and no keywords.
  IsioWriter(const std::string& path, std::size_t frame_elems, std::uint32_t depth, int nsem)
      : frame_bytes_(frame_elems * 4), depth_(depth), nsem_(nsem),
        o_(test::isio_offsets(frame_bytes_ * depth, 0, static_cast<std::size_t>(nsem), depth, depth > 1)) {
    const int fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) throw std::runtime_error("opening " + path);
    void* p = ::mmap(nullptr, o_.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("mapping " + path);
    base_ = static_cast<std::byte*>(p);
  }
  IsioWriter(const IsioWriter&) = delete;
  IsioWriter& operator=(const IsioWriter&) = delete;
  ~IsioWriter() { ::munmap(base_, o_.file_size); }

  /// Writes the next frame (every element = the new cnt0).
  void write() {
    const std::uint64_t next = ref<std::uint64_t>(kOffCnt0).load(std::memory_order_relaxed) + 1;
    ref<std::uint8_t>(kOffWrite).store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::uint32_t slice = 0;
    if (depth_ > 1) {
      const std::uint64_t cnt1 = ref<std::uint64_t>(kOffCnt1).load(std::memory_order_relaxed);
      slice = static_cast<std::uint32_t>((cnt1 + 1) % depth_);
    }
    std::vector<std::uint32_t> frame(frame_bytes_ / 4, static_cast<std::uint32_t>(next));
    std::memcpy(base_ + o_.data + slice * frame_bytes_, frame.data(), frame_bytes_);
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    if (depth_ > 1) {  // a temporal rolling buffer's per-slice entries, then cnt1
      std::memcpy(base_ + o_.atimearray + slice * 16, &now, 16);
      std::memcpy(base_ + o_.writetimearray + slice * 16, &now, 16);
      ref<std::uint64_t>(o_.cntarray + slice * 8).store(next, std::memory_order_relaxed);
      ref<std::uint64_t>(kOffCnt1).store(slice, std::memory_order_relaxed);
    }
    std::memcpy(base_ + kOffAtime, &now, 16);
    std::memcpy(base_ + kOffWritetime, &now, 16);
    ref<std::uint64_t>(kOffCnt0).fetch_add(1, std::memory_order_release);
    ref<std::uint8_t>(kOffWrite).store(0, std::memory_order_release);
    post_all();
  }

  /// Sets the write flag, as milk programs do when their compute step starts (write = 1;
  /// compute; cnt0 += 1; write = 0; post): the flag stays set between frames.
  void begin_compute() { ref<std::uint8_t>(kOffWrite).store(1, std::memory_order_release); }

  /// ImageStreamIO_sempost(img, -1): every slot below 10, then semlog once.
  void post_all() {
    for (int i = 0; i < nsem_; ++i) post(sem(i));
    post(reinterpret_cast<sem_t*>(base_ + o_.semlog));
  }

  sem_t* sem(int i) { return reinterpret_cast<sem_t*>(base_ + o_.semaphores + 32 * static_cast<std::size_t>(i)); }
  /// The waiter half of slot i's glibc data word (a reader registered to sleep on it).
  std::uint32_t sem_waiters(int i) {
    return static_cast<std::uint32_t>(std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(sem(i)))
                                          .load(std::memory_order_relaxed) >> 32);
  }
  /// shmlink's count of futex waiters (metadata padding at offset 300).
  std::uint32_t futex_waiters() { return ref<std::uint32_t>(kOffFutexWaiters).load(std::memory_order_relaxed); }
  std::int32_t read_pid(int i) { return ref<std::int32_t>(o_.sem_read_pid + 4 * static_cast<std::size_t>(i)).load(); }

 private:
  template <class T>
  std::atomic_ref<T> ref(std::size_t off) {
    return std::atomic_ref<T>(*reinterpret_cast<T*>(base_ + off));
  }
  static void post(sem_t* s) {
    int v = 0;
    if (::sem_getvalue(s, &v) == 0 && v < 10) ::sem_post(s);
  }

  std::size_t frame_bytes_;
  std::uint32_t depth_;
  int nsem_;
  test::IsioOffsets o_;
  std::byte* base_ = nullptr;
};

/// CPU time this thread has used, ns.
std::int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

struct RollCtl {
  ChildReport rep;
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> consumed{0};  // cnt0 of the last frame the reader got
  std::atomic<int> got{0}, lost{0};
};

// Issue 18 item 1: an ISIO writer at about 1 kHz into a depth-8 rolling buffer and a shmlink
// read_next(timeout) reader: every one of 100 frames arrives, none is overwritten. The writer
// never laps the reader (it waits, bounded, while 7 frames are unread), so the count holds on a
// loaded machine; what is tested is that each semaphore post wakes the reader. Before the fix
// the reader's wait was never woken (12 to 41 of 100 with the 10 ms re-check; none here).
TEST(WaitProcesses, ReadNextGetsEveryFrameOfAnIsioWriterIntoARollingBuffer) {
  test::TempStreamDir dir;
  constexpr int kFrames = 100;
  constexpr std::uint32_t kDepth = 8;
  StreamSpec spec = spec_of({16}, Dtype::u32);
  spec.depth = kDepth;
  auto s = Stream::create("isio_roll", spec);
  Shared<RollCtl> ctl;
  const pid_t reader = test::spawn([&] {
    only_real_wakeups();
    auto in = Stream::open("isio_roll");
    std::vector<std::uint32_t> out(16);
    ctl->ready.store(1);
    while (ctl->got.load() + ctl->lost.load() < kFrames) {
      FrameInfo info;
      std::uint64_t skipped = 0;
      // A bound longer than the writer's patience below: a reader that is not woken makes the
      // writer give up first (a reader woken only when its timeout ends would still get all).
      const Status st = in.read_next(std::as_writable_bytes(std::span(out)), &info, &skipped, 20s);
      SHMLINK_CHILD_CHECK(&ctl->rep, st.ok() || st.code() == Errc::overwritten, static_cast<int>(st.code()));
      const bool uniform = std::all_of(out.begin(), out.end(), [&](std::uint32_t v) { return v == info.cnt0; });
      SHMLINK_CHILD_CHECK(&ctl->rep, uniform, info.cnt0);
      ctl->lost.fetch_add(static_cast<int>(skipped));
      ctl->got.fetch_add(1);
      ctl->consumed.store(info.cnt0);
    }
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == 1; }));
  IsioWriter w(s.path(), 16, kDepth, 10);
  bool stalled = false;
  for (std::uint64_t k = 1; k <= kFrames && !stalled; ++k) {
    // Frame k overwrites frame k - 8: write it only once the reader has frame k - 7.
    stalled = !test::wait_until([&] { return ctl->consumed.load() + kDepth - 1 >= k; }, 3);
    w.write();
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(test::reap(reader, 5), 0) << ctl->rep.describe();
  EXPECT_FALSE(stalled) << "the reader stopped reading: got " << ctl->got.load();
  EXPECT_EQ(ctl->got.load(), kFrames);
  EXPECT_EQ(ctl->lost.load(), 0);
}

struct PlainCtl {
  ChildReport rep;
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> seen{0};     // cnt0 the reader last woke for
  std::atomic<int> wakeups{0};
  std::atomic<int> stale_posted{0};       // the writer posted without a new frame
  std::atomic<std::int64_t> idle_cpu_ns{-1};
  std::atomic<int> idle_result{-1};
};

// Plain stream: N frames from an ISIO writer, each written once the reader has woken for the
// previous one and sleeps again: the reader wakes once per frame, for exactly that frame (no
// coalescing). Then the writer posts every slot 5 times without a new frame (stale posts, as a
// milk writer leaves after a pause): the reader's next wait drains them and sleeps until its
// timeout instead of spinning on a non-zero semaphore (its CPU time stays far below the wait).
TEST(WaitProcesses, WaitFutexWakesOncePerFrameOfAnIsioWriterAndDrainsStalePosts) {
  test::TempStreamDir dir;
  constexpr int kFrames = 40;
  auto s = Stream::create("isio_plain", spec_of({4}, Dtype::u32));
  Shared<PlainCtl> ctl;
  const pid_t reader = test::spawn([&] {
    only_real_wakeups();
    auto in = Stream::open("isio_plain");
    ctl->ready.store(1);
    std::uint64_t last = 0;
    for (int i = 0; i < kFrames; ++i) {
      std::uint64_t c = 0;
      // Longer than the writer's patience below: only a wake-up by the frame's post counts.
      const Status st = in.wait_futex(last, 20s, &c);
      SHMLINK_CHILD_CHECK(&ctl->rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(&ctl->rep, c == last + 1, c);
      last = c;
      ctl->wakeups.fetch_add(1);
      ctl->seen.store(c);
    }
    SHMLINK_CHILD_CHECK(&ctl->rep, test::wait_until([&] { return ctl->stale_posted.load() == 1; }), 0);
    const std::int64_t cpu0 = thread_cpu_ns();
    const Status idle = in.wait_futex(last, 400ms, nullptr, 0ns);
    ctl->idle_cpu_ns.store(thread_cpu_ns() - cpu0);
    ctl->idle_result.store(static_cast<int>(idle.code()));
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == 1; }));
  IsioWriter w(s.path(), 4, 1, 10);
  int not_asleep = 0;
  for (std::uint64_t k = 1; k <= kFrames; ++k) {
    if (!test::wait_until([&] { return ctl->seen.load() == k - 1; }, 3)) break;
    // The small gap: the reader is registered to sleep (futex waiter count or a slot's waiter
    // half) before the frame comes.
    if (!test::wait_until([&] {
          if (w.futex_waiters() != 0) return true;
          for (int i = 0; i < 10; ++i)
            if (w.sem_waiters(i) != 0) return true;
          return false;
        }, 5))
      ++not_asleep;
    w.write();
  }
  EXPECT_TRUE(test::wait_until([&] { return ctl->seen.load() == kFrames; }, 3)) << ctl->rep.describe();
  for (int round = 0; round < 5; ++round) w.post_all();
  ctl->stale_posted.store(1);
  EXPECT_EQ(test::reap(reader, 5), 0) << ctl->rep.describe();
  EXPECT_EQ(ctl->wakeups.load(), kFrames);
  EXPECT_EQ(not_asleep, 0);
  EXPECT_EQ(ctl->idle_result.load(), static_cast<int>(Errc::timeout));
  // A reader that spun on the stale posts would have used most of the 400 ms (tens of ms even
  // on a loaded machine); one that sleeps uses well under a millisecond.
  EXPECT_LT(ctl->idle_cpu_ns.load(), 40'000'000) << "the idle wait used CPU: it spun";
}

struct ManyCtl {
  ChildReport rep;
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> seen[8];
};

// shmlink writers wake futex waiters, so their readers need no semaphore slot: five readers of a
// stream with two slots all wake for every frame, and while they sleep no slot is claimed.
TEST(WaitProcesses, ShmlinkWriterServesMoreReadersThanSlotsWithoutClaimingAny) {
  test::TempStreamDir dir;
  constexpr int kReaders = 5;
  constexpr int kFrames = 20;
  StreamSpec spec = spec_of({4}, Dtype::u32);
  spec.semaphores = 2;
  auto s = Stream::create("many", spec);
  std::vector<std::uint32_t> frame(4, 1);
  ASSERT_TRUE(s.write(std::as_bytes(std::span(frame))).ok());  // a shmlink frame: the writer is known
  Shared<ManyCtl> ctl;
  std::vector<pid_t> kids;
  for (int r = 0; r < kReaders; ++r) {
    kids.push_back(test::spawn([&, r] {
      only_real_wakeups();
      auto in = Stream::open("many");
      std::uint64_t last = in.cnt0();
      ctl->seen[r].store(last);
      ctl->ready.fetch_add(1);
      for (int i = 0; i < kFrames; ++i) {
        std::uint64_t c = 0;
        const Status st = in.wait_futex(last, 5s, &c, 0ns);
        SHMLINK_CHILD_CHECK(&ctl->rep, st.ok(), static_cast<int>(st.code()));
        SHMLINK_CHILD_CHECK(&ctl->rep, c == last + 1, c);
        last = c;
        ctl->seen[r].store(c);
      }
      return 0;
    }));
  }
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == kReaders; }));
  auto* waiters = reinterpret_cast<std::uint32_t*>(const_cast<std::byte*>(s.file_bytes().data()) + kOffFutexWaiters);
  int claimed_while_asleep = 0;
  for (std::uint64_t k = 2; k <= kFrames + 1; ++k) {
    bool all = test::wait_until([&] {
      for (int r = 0; r < kReaders; ++r)
        if (ctl->seen[r].load() != k - 1) return false;
      return std::atomic_ref<std::uint32_t>(*waiters).load() == kReaders;  // all asleep
    }, 5);
    if (!all) break;
    for (std::int32_t pid : s.info().sem_read_pids) claimed_while_asleep += pid != -1;
    frame.assign(4, static_cast<std::uint32_t>(k));
    ASSERT_TRUE(s.write(std::as_bytes(std::span(frame))).ok());
  }
  for (pid_t k : kids) EXPECT_EQ(test::reap(k, 10), 0) << ctl->rep.describe();
  EXPECT_EQ(claimed_while_asleep, 0);
  for (int r = 0; r < kReaders; ++r) EXPECT_EQ(ctl->seen[r].load(), kFrames + 1u) << "reader " << r;
}

// A slot claimed for waiting on an ISIO writer's stream: it names the reader in semReadPID
// (from the last slot down), claim_semaphore() in the same process never returns it (the reader
// would lose posts to it) and release_semaphore() does not take it; close gives it back.
TEST(WaitProcesses, WaitSlotIsOwnedByTheWaiterAndReleasedOnClose) {
  test::TempStreamDir dir;
  auto s = Stream::create("owned", spec_of({4}, Dtype::u32));
  IsioWriter w(s.path(), 4, 1, 10);
  w.write();  // the newest frame lacks the wake stamp: readers need a slot
  auto r = Stream::open("owned");
  EXPECT_EQ(r.wait_futex(1, 20ms).code(), Errc::timeout);
  EXPECT_EQ(w.read_pid(9), ::getpid());
  for (int i = 0; i < 9; ++i) EXPECT_EQ(w.read_pid(i), -1) << "slot " << i;
  auto other = Stream::open("owned");
  EXPECT_EQ(other.claim_semaphore(9), 0);  // the wait's slot is neither free nor "ours" to read
  EXPECT_EQ(r.claim_semaphore(), 0);       // this process's own claim (one per process, as ISIO's)
  r.release_semaphore(9);
  other.release_semaphore(9);
  EXPECT_EQ(w.read_pid(9), ::getpid());
  // The slot stays held between waits.
  w.write();
  std::uint64_t c = 0;
  EXPECT_TRUE(r.wait_futex(1, 5s, &c).ok());
  EXPECT_EQ(c, 2u);
  EXPECT_EQ(w.read_pid(9), ::getpid());
  r.close();
  EXPECT_EQ(w.read_pid(9), -1);
  EXPECT_EQ(w.read_pid(0), ::getpid());  // claim_semaphore's claim is the caller's until released
}

// A reader that dies holding a wait slot leaves its pid there; gc's reclaim frees it.
TEST(WaitProcesses, SlotOfADeadWaiterIsReclaimed) {
  test::TempStreamDir dir;
  auto s = Stream::create("dead", spec_of({4}, Dtype::u32));
  IsioWriter w(s.path(), 4, 1, 10);
  w.write();
  const pid_t reader = test::spawn([] {
    auto in = Stream::open("dead");
    (void)in.wait_futex(1, 30s);
    return 0;
  });
  const bool claimed = test::wait_until([&] { return w.read_pid(9) == reader; }, 5);
  ::kill(reader, SIGKILL);
  EXPECT_EQ(test::reap(reader, 5), -SIGKILL);
  ASSERT_TRUE(claimed) << "semReadPID[9] is " << w.read_pid(9);
  EXPECT_EQ(s.reclaim_semaphores(), 1);
  EXPECT_EQ(w.read_pid(9), -1);
}

// Every slot taken by live readers: the waiter falls back to re-checking cnt0 (10 ms slices by
// default) and still sees an ISIO writer's frame.
TEST(WaitProcesses, WithEverySlotTakenAWaiterFallsBackToPolling) {
  test::TempStreamDir dir;
  StreamSpec spec = spec_of({4}, Dtype::u32);
  spec.semaphores = 1;
  auto s = Stream::create("full", spec);
  ASSERT_EQ(s.claim_semaphore(), 0);  // this (live) process holds the only slot
  IsioWriter w(s.path(), 4, 1, 1);
  w.write();
  const pid_t reader = test::spawn([] {
    auto in = Stream::open("full");
    std::uint64_t c = 0;
    return in.wait_futex(1, 10s, &c).ok() && c == 2 ? 0 : 1;
  });
  ASSERT_TRUE(test::wait_until([&] { return w.futex_waiters() != 0; }));
  w.write();
  EXPECT_EQ(test::reap(reader, 15), 0);
  EXPECT_EQ(w.read_pid(0), ::getpid());
}

struct ThreadsCtl {
  ChildReport rep;
  std::atomic<int> woken{0};
};

// Two threads waiting on one handle at once each wait on a slot of their own (one slot would give
// the post to one of them only): one ISIO frame wakes both. Run once with futex_waitv and once as
// on kernels before 5.16 (the slots alone, no cnt0 futex).
void two_threads_wake_for_one_isio_frame(bool without_futex_waitv) {
  test::TempStreamDir dir;
  auto s = Stream::create("threads", spec_of({4}, Dtype::u32));
  IsioWriter w(s.path(), 4, 1, 10);
  Shared<ThreadsCtl> ctl;
  const pid_t reader = test::spawn([&] {
    only_real_wakeups();
    if (without_futex_waitv) os::futex_waitv_support().store(os::FutexWaitvSupport::no);
    auto in = Stream::open("threads");
    auto wait = [&] {
      std::uint64_t c = 0;
      if (in.wait_futex(0, 20s, &c).ok() && c == 1) ctl->woken.fetch_add(1);
    };
    std::thread a(wait), b(wait);
    a.join();
    b.join();
    return 0;
  });
  // Both threads registered to sleep, each on its own slot (the last two), then the frame.
  const bool asleep = test::wait_until([&] { return w.sem_waiters(9) == 1 && w.sem_waiters(8) == 1; }, 5);
  EXPECT_TRUE(asleep) << "slot waiters: " << w.sem_waiters(9) << ", " << w.sem_waiters(8);
  EXPECT_EQ(w.read_pid(9), reader);
  EXPECT_EQ(w.read_pid(8), reader);
  w.write();
  EXPECT_EQ(test::reap(reader, 10), 0) << ctl->rep.describe();
  EXPECT_EQ(ctl->woken.load(), 2);
}

TEST(WaitProcesses, TwoThreadsWaitingOnOneHandleBothWakeForAnIsioFrame) { two_threads_wake_for_one_isio_frame(false); }

TEST(WaitProcesses, WithoutFutexWaitvTheSlotAloneWakesTheWaiters) { two_threads_wake_for_one_isio_frame(true); }

// Without futex_waitv a waiter on a fresh stream sleeps on its slot alone; a shmlink writer's
// frame still wakes it, through the post every shmlink write makes.
TEST(WaitProcesses, WithoutFutexWaitvAShmlinkWriterStillWakesASlotWaiter) {
  test::TempStreamDir dir;
  auto s = Stream::create("nowaitv", spec_of({4}, Dtype::u32));
  IsioWriter probe(s.path(), 4, 1, 10);
  const pid_t reader = test::spawn([] {
    only_real_wakeups();
    os::futex_waitv_support().store(os::FutexWaitvSupport::no);
    auto in = Stream::open("nowaitv");
    std::uint64_t c = 0;
    return in.wait_futex(0, 20s, &c).ok() && c == 1 ? 0 : 1;
  });
  const bool asleep = test::wait_until([&] { return probe.sem_waiters(9) == 1; }, 5);
  std::vector<std::uint32_t> frame(4, 1);
  ASSERT_TRUE(s.write(std::as_bytes(std::span(frame))).ok());
  EXPECT_TRUE(asleep);
  EXPECT_EQ(test::reap(reader, 10), 0);
}

// The partial-write companion `<name>_pkt` is written by shmlink too: its counter's increment is
// stamped and wakes futex waiters, so its readers need no semaphore slot.
TEST(WaitProcesses, PacketCompanionReadersAreWokenWithoutASlot) {
  test::TempStreamDir dir;
  auto s = Stream::create("pk", spec_of({4}, Dtype::u32));
  const std::vector<std::uint32_t> half(2, 7);
  auto frame = [&] {
    return s.write_packet(0, 2, 0, std::as_bytes(std::span(half))).ok() &&
           s.write_packet(1, 2, 2, std::as_bytes(std::span(half))).ok() && s.finalize_packets().ok();
  };
  ASSERT_TRUE(frame());  // creates the companion, whose counter is now 1
  const pid_t reader = test::spawn([] {
    only_real_wakeups();
    auto c = Stream::open("pk_pkt");
    std::uint64_t n = 0;
    return c.wait_futex(1, 20s, &n).ok() && n == 2 ? 0 : 1;
  });
  auto companion = Stream::open("pk_pkt");
  auto* waiters =
      reinterpret_cast<std::uint32_t*>(const_cast<std::byte*>(companion.file_bytes().data()) + kOffFutexWaiters);
  const bool asleep = test::wait_until([&] { return std::atomic_ref<std::uint32_t>(*waiters).load() == 1; }, 5);
  EXPECT_TRUE(asleep);
  EXPECT_EQ(companion.info().sem_read_pids, std::vector<std::int32_t>{-1});
  ASSERT_TRUE(frame());
  EXPECT_EQ(test::reap(reader, 10), 0);
}

// Without futex_waitv, the first wait on a fresh partial-write companion (cnt0 = 0: either
// kind of writer may come) sleeps on a semaphore slot alone; the companion's counter moves with
// a post too, so finalize_packets() wakes it.
TEST(WaitProcesses, WithoutFutexWaitvAFreshPacketCompanionWakesItsFirstWaiter) {
  test::TempStreamDir dir;
  auto s = Stream::create("pkf", spec_of({4}, Dtype::u32));
  const std::vector<std::uint32_t> half(2, 7);
  ASSERT_TRUE(s.write_packet(0, 2, 0, std::as_bytes(std::span(half))).ok());  // creates the companion
  auto companion = Stream::open("pkf_pkt");
  ASSERT_EQ(companion.cnt0(), 0u);
  const pid_t reader = test::spawn([] {
    only_real_wakeups();
    os::futex_waitv_support().store(os::FutexWaitvSupport::no);
    auto c = Stream::open("pkf_pkt");
    std::uint64_t n = 0;
    return c.wait_futex(0, 20s, &n, 0ns).ok() && n == 1 ? 0 : 1;
  });
  // Asleep on its slot: the slot's glibc data word has a waiter (high half).
  const test::IsioOffsets o = test::isio_offsets(companion.data_bytes(), 0, 1, 1, false);
  auto* word = reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(companion.file_bytes().data()) + o.semaphores);
  const bool asleep =
      test::wait_until([&] { return (std::atomic_ref<std::uint64_t>(*word).load() >> 32) == 1; }, 5);
  EXPECT_TRUE(asleep);
  ASSERT_TRUE(s.write_packet(1, 2, 2, std::as_bytes(std::span(half))).ok());
  EXPECT_TRUE(s.finalize_packets().ok());
  // Well within the reader's 20 s bound: a reader that was not woken is still waiting.
  const bool woken = test::wait_until([&] { return !test::still_running(reader); }, 5);
  EXPECT_TRUE(woken) << "finalize_packets() did not wake the companion's first waiter";
  EXPECT_EQ(test::reap(reader, 25), 0);
}

// `shmlink cat --wait` waits like any reader: on an ISIO writer's stream it claims the last slot
// and the writer's post ends its wait (its 100 ms wait slices each re-use the slot).
TEST(WaitProcesses, CatWaitWaitsOnASlotForAnIsioWriter) {
#ifndef SHMLINK_CLI_PATH
  GTEST_SKIP() << "the shmlink CLI is not built";
#else
  test::TempStreamDir dir;
  auto s = Stream::create("catwait", spec_of({4}, Dtype::u32));
  IsioWriter w(s.path(), 4, 1, 10);
  w.write();  // an unstamped frame: cat knows the writer does not wake futexes
  const pid_t cat = ::fork();
  if (cat == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, 1);
    ::execl(SHMLINK_CLI_PATH, "shmlink", "cat", "catwait", "--wait", "--timeout", "20", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const bool waiting = test::wait_until([&] { return w.read_pid(9) == cat && w.sem_waiters(9) == 1; }, 10);
  EXPECT_TRUE(waiting) << "semReadPID[9] " << w.read_pid(9) << ", cat " << cat;
  w.write();
  EXPECT_EQ(test::reap(cat, 10), 0);
  EXPECT_EQ(w.read_pid(9), -1);  // given back when cat closed the stream
#endif
}


struct ComputeCtl {
  ChildReport rep;
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> seen{0};
  std::atomic<std::int64_t> cpu_ns{-1};
};

// A milk writer sets the write flag when its compute step starts, so the flag stays set between
// frames (ISIO's order otherwise). The post that woke the reader for frame k is still in its
// slot at its next wait: that post is old (the frame was returned) and must not start the watch
// for a writer that posts before its cnt0 increment, which spins while the write flag is set
// (up to 1 ms per frame before the fix, about the whole run here). The reader's CPU time over
// the frames stays far below one such spin per frame.
TEST(WaitProcesses, WaitFutexDoesNotSpinOnTheOldPostWhileAMilkWriterComputes) {
  test::TempStreamDir dir;
  constexpr int kFrames = 60;
  auto s = Stream::create("compute", spec_of({4}, Dtype::u32));
  Shared<ComputeCtl> ctl;
  const pid_t reader = test::spawn([&] {
    only_real_wakeups();
    auto in = Stream::open("compute");
    ctl->ready.store(1);
    std::uint64_t last = 0;
    const std::int64_t cpu0 = thread_cpu_ns();
    for (int i = 0; i < kFrames; ++i) {
      std::uint64_t c = 0;
      const Status st = in.wait_futex(last, 20s, &c, 0ns);
      SHMLINK_CHILD_CHECK(&ctl->rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(&ctl->rep, c == last + 1, c);
      last = c;
      ctl->seen.store(c);
    }
    ctl->cpu_ns.store(thread_cpu_ns() - cpu0);
    return 0;
  });
  ASSERT_TRUE(test::wait_until([&] { return ctl->ready.load() == 1; }));
  IsioWriter w(s.path(), 4, 1, 10);
  int not_asleep = 0;
  for (std::uint64_t k = 1; k <= kFrames; ++k) {
    if (!test::wait_until([&] { return ctl->seen.load() == k - 1; }, 5)) break;
    // The reader is back asleep on its slot (after any spin) before the next frame comes.
    if (!test::wait_until([&] { return w.sem_waiters(9) == 1; }, 5)) ++not_asleep;
    w.write();
    w.begin_compute();  // the next frame's compute starts at once: write = 1 until its write
  }
  EXPECT_EQ(test::reap(reader, 10), 0) << ctl->rep.describe();
  EXPECT_EQ(ctl->seen.load(), static_cast<std::uint64_t>(kFrames));
  EXPECT_EQ(not_asleep, 0);
  // Spinning 1 ms per frame costs about 60 ms; sleeping costs tens of microseconds per frame.
  EXPECT_LT(ctl->cpu_ns.load(), 20'000'000) << "the reader spun between frames";
}

#if defined(SYS_futex_waitv) && defined(__x86_64__)
/// Makes futex_waitv fail with EPERM in this process, as a container's seccomp profile that
/// predates it does (no privilege needed with no_new_privs).
bool refuse_futex_waitv() {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(offsetof(seccomp_data, arch))),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(offsetof(seccomp_data, nr))),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(SYS_futex_waitv), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

struct SeccompCtl {
  ChildReport rep;
  std::atomic<int> phase{0};  // 1: the idle wait is over, the reader waits for a frame
  std::atomic<std::int64_t> idle_cpu_ns{-1};
};

// Under a seccomp filter that refuses futex_waitv with EPERM, a slot waiter falls back to
// sleeping on its slot alone (as on kernels before 5.16): an idle wait sleeps instead of spinning
// on the error for its whole timeout, and an ISIO writer's post still wakes the next wait.
TEST(WaitProcesses, WhenSeccompRefusesFutexWaitvTheWaiterSleepsOnItsSlot) {
  test::TempStreamDir dir;
  auto s = Stream::create("seccomp", spec_of({4}, Dtype::u32));
  IsioWriter w(s.path(), 4, 1, 10);
  w.write();  // unstamped: the reader waits on a slot
  Shared<SeccompCtl> ctl;
  const pid_t reader = test::spawn([&] {
    only_real_wakeups();
    SHMLINK_CHILD_CHECK(&ctl->rep, refuse_futex_waitv(), errno);
    os::futex_waitv_support().store(os::FutexWaitvSupport::unknown);  // as a fresh process
    auto in = Stream::open("seccomp");
    const std::int64_t cpu0 = thread_cpu_ns();
    const Status idle = in.wait_futex(1, 300ms, nullptr, 0ns);
    ctl->idle_cpu_ns.store(thread_cpu_ns() - cpu0);
    SHMLINK_CHILD_CHECK(&ctl->rep, idle.code() == Errc::timeout, static_cast<int>(idle.code()));
    SHMLINK_CHILD_CHECK(&ctl->rep, os::futex_waitv_support().load() == os::FutexWaitvSupport::no, 0);
    ctl->phase.store(1);
    std::uint64_t c = 0;
    const Status st = in.wait_futex(1, 20s, &c, 0ns);
    SHMLINK_CHILD_CHECK(&ctl->rep, st.ok(), static_cast<int>(st.code()));
    SHMLINK_CHILD_CHECK(&ctl->rep, c == 2, c);
    return 0;
  });
  const bool asleep = test::wait_until([&] { return ctl->phase.load() == 1 && w.sem_waiters(9) == 1; }, 10);
  w.write();
  EXPECT_EQ(test::reap(reader, 10), 0) << ctl->rep.describe();
  EXPECT_TRUE(asleep);
  // Spinning on EPERM uses most of the 300 ms; sleeping uses well under a millisecond.
  EXPECT_LT(ctl->idle_cpu_ns.load(), 100'000'000) << "the idle wait spun on futex_waitv's error";
}
#endif

struct ForkCtl {
  ChildReport rep;
  std::atomic<int> released{0};
};

// A child forked while its parent holds a wait slot inherits a copy of the parent's wait-slot
// registry; those entries are the parent's: once the parent gives the slot back, the child can
// claim that slot for its own semaphore reads, find it again as its own, and release it.
TEST(WaitProcesses, AForkedChildDoesNotTakeItsParentsWaitSlotsForItsOwn) {
  test::TempStreamDir dir;
  auto s = Stream::create("forked", spec_of({4}, Dtype::u32));
  IsioWriter w(s.path(), 4, 1, 10);
  w.write();
  auto r = Stream::open("forked");
  ASSERT_EQ(r.wait_futex(1, 20ms).code(), Errc::timeout);
  ASSERT_EQ(w.read_pid(9), ::getpid());  // the parent's wait slot
  Shared<ForkCtl> ctl;
  const pid_t child = test::spawn([&] {
    SHMLINK_CHILD_CHECK(&ctl->rep, test::wait_until([&] { return ctl->released.load() == 1; }, 10), 0);
    auto mine = Stream::open("forked");
    SHMLINK_CHILD_CHECK(&ctl->rep, mine.claim_semaphore(9) == 9, 0);
    const int again = mine.claim_semaphore();  // the caller's own slot, found again
    SHMLINK_CHILD_CHECK(&ctl->rep, again == 9, again);
    mine.release_semaphore(9);
    SHMLINK_CHILD_CHECK(&ctl->rep, w.read_pid(9) == -1, w.read_pid(9));
    return 0;
  });
  r.close();  // gives slot 9 back
  EXPECT_EQ(w.read_pid(9), -1);
  ctl->released.store(1);
  EXPECT_EQ(test::reap(child, 10), 0) << ctl->rep.describe();
}

// A handle closed while its file is truncated in place cannot give its wait slot back (the
// words are gone), but it forgets it: when the same file (same inode) gets its bytes back, the
// process's own claim of that slot is found as its own and can be released.
TEST(WaitProcesses, AWaitSlotIsForgottenWhenItsFileWasTruncatedAtClose) {
  test::TempStreamDir dir;
  auto s = Stream::create("trunc", spec_of({4}, Dtype::u32));
  const std::string path = s.path();
  {
    IsioWriter w(path, 4, 1, 10);
    w.write();
  }
  const pid_t child = test::spawn([&] {  // a process of its own: its registry starts empty
    auto r = Stream::open("trunc");
    if (r.wait_futex(1, 20ms).code() != Errc::timeout) return 2;
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.empty() || ::truncate(path.c_str(), 0) != 0) return 3;
    r.close();  // the file no longer covers the mapping: nothing is touched
    const int fd = ::open(path.c_str(), O_WRONLY);  // the same inode gets its bytes back
    if (fd < 0 || ::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) return 4;
    ::close(fd);
    auto again = Stream::open("trunc");
    // Slot 9 names this process (the bytes were copied while it held it): its own slot now.
    const int got = again.claim_semaphore();
    if (got != 9) return 10 + got;
    again.release_semaphore(9);
    return again.info().sem_read_pids[9] == -1 ? 0 : 5;
  });
  EXPECT_EQ(test::reap(child, 10), 0);
}

}  // namespace
