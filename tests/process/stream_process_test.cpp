// SPDX-License-Identifier: MIT
// Streams between real processes: a full-speed writer and several validating readers, futex,
// spin and semaphore wake-ups across processes, and a milk-style reader that knows nothing of
// shmlink (raw mmap + sem_timedwait at the ISIO offsets) woken by our writer.
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstring>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

using test::spec_of;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Frame k (cnt0 = k after it is published) has every element equal to k. A reader that gets a
// frame whose elements differ, or differ from the cnt0 read_copy reports, accepted a torn frame.
TEST(StreamProcesses, FullSpeedWriterSeveralReadersNoTornFrameAccepted) {
  test::TempStreamDir dir;
  constexpr std::uint32_t kElems = 32 * 1024;  // 256 KiB of u64: long copies, many collisions
  auto s = Stream::create("torn", spec_of({kElems}, Dtype::u64));
  auto shared = Segment::create_memfd("torn-results", 4096);  // per-reader results
  struct Result {
    std::uint64_t accepted, torn, gap_errors, skipped, last;
  };
  auto* results = reinterpret_cast<Result*>(shared.data());
  constexpr int kReaders = 3;
  constexpr std::int64_t kRunMs = 1500;

  std::vector<pid_t> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.push_back(test::spawn([&, r] {
      auto in = Stream::open("torn");
      std::vector<std::uint64_t> frame(kElems);
      Result res{};
      std::uint64_t last = 0;
      const std::int64_t end = now_ms() + kRunMs + 500;
      while (now_ms() < end) {
        FrameInfo info;
        Status st = in.read_copy(std::as_writable_bytes(std::span(frame)), &info);
        if (st.code() == Errc::torn) continue;  // gave up on this attempt: allowed, nothing accepted
        if (!st.ok()) return 10;
        bool consistent = true;
        for (auto v : frame) consistent &= (v == info.cnt0);
        if (!consistent) ++res.torn;
        if (info.cnt0 != last) {
          if (info.cnt0 < last) ++res.gap_errors;  // counters never go back
          else res.skipped += info.cnt0 - last - 1;  // the frames this reader did not see
          ++res.accepted;
          last = info.cnt0;
        }
      }
      res.last = last;
      results[r] = res;
      return 0;
    }));
  }
  pid_t writer = test::spawn([&] {
    auto out = Stream::open("torn");
    std::vector<std::uint64_t> frame(kElems);
    const std::int64_t end = now_ms() + kRunMs;
    for (std::uint64_t k = 1; now_ms() < end; ++k) {
      std::fill(frame.begin(), frame.end(), k);
      if (!out.write(std::span<const std::uint64_t>(frame)).ok()) return 1;
    }
    return 0;
  });
  EXPECT_EQ(test::reap(writer, 30), 0);
  const std::uint64_t written = s.cnt0();
  for (int r = 0; r < kReaders; ++r) {
    EXPECT_EQ(test::reap(readers[r], 30), 0) << "reader " << r;
    SCOPED_TRACE("reader " + std::to_string(r));
    EXPECT_EQ(results[r].torn, 0u);
    EXPECT_EQ(results[r].gap_errors, 0u);
    EXPECT_GT(results[r].accepted, 10u);
    EXPECT_EQ(results[r].last, written);  // each reader ends on the final frame
    // Frames seen plus frames skipped account for every frame up to the last one seen.
    EXPECT_EQ(results[r].accepted + results[r].skipped, results[r].last);
  }
  EXPECT_GT(written, 100u);
}

TEST(StreamProcesses, FutexWaitersInOtherProcessesAllWake) {
  test::TempStreamDir dir;
  auto s = Stream::create("fx", spec_of({16}, Dtype::f32));
  std::vector<pid_t> kids;
  for (int i = 0; i < 4; ++i) {
    kids.push_back(test::spawn([] {
      auto in = Stream::open("fx");
      std::uint64_t c = 0;
      // No re-check slice is needed: a shmlink writer wakes us (the 10 s bound only guards the test).
      if (!in.wait_futex(0, 10s, &c, 0ns).ok()) return 1;
      std::vector<float> f(16);
      if (!in.read_copy(std::as_writable_bytes(std::span(f))).ok()) return 2;
      return (c == 1 && f[3] == 3.5f) ? 0 : 3;
    }));
  }
  std::this_thread::sleep_for(100ms);
  std::vector<float> frame(16, 3.5f);
  ASSERT_TRUE(s.write(std::span<const float>(frame)).ok());
  for (pid_t k : kids) EXPECT_EQ(test::reap(k, 15), 0);
}

TEST(StreamProcesses, FutexWaitTimesOutWhenNoWriteComes) {
  test::TempStreamDir dir;
  auto s = Stream::create("fxt", spec_of({4}, Dtype::u8));
  pid_t kid = test::spawn([] {
    auto in = Stream::open("fxt");
    return in.wait_futex(0, 50ms).code() == Errc::timeout ? 0 : 1;
  });
  EXPECT_EQ(test::reap(kid, 10), 0);
}

TEST(StreamProcesses, SpinWaiterWakesOnWriteFromAnotherProcess) {
  test::TempStreamDir dir;
  auto s = Stream::create("sp", spec_of({4}, Dtype::u32));
  pid_t kid = test::spawn([] {
    auto in = Stream::open("sp");
    std::uint64_t c = 0;
    if (!in.wait_spin(0, 10s, &c).ok()) return 1;
    return in.view_as<std::uint32_t>()[0] == 99 && c == 1 ? 0 : 2;
  });
  std::this_thread::sleep_for(50ms);
  const std::uint32_t f[4] = {99, 99, 99, 99};
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(f)).ok());
  EXPECT_EQ(test::reap(kid, 15), 0);
}

TEST(StreamProcesses, WriterFromAnotherProcessWakesFutexWaiterHere) {
  test::TempStreamDir dir;
  auto s = Stream::create("rev", spec_of({4}, Dtype::u8));
  pid_t kid = test::spawn([] {
    std::this_thread::sleep_for(50ms);
    auto out = Stream::open("rev");
    const std::uint8_t f[4] = {1, 2, 3, 4};
    return out.write(std::span<const std::uint8_t>(f)).ok() ? 0 : 1;
  });
  std::uint64_t c = 0;
  EXPECT_TRUE(s.wait_futex(0, 10s, &c).ok());
  EXPECT_EQ(c, 1u);
  EXPECT_EQ(test::reap(kid, 10), 0);
}

// A reader written the way milk's are: no shmlink, just the file, the ISIO 2.00 offsets and
// sem_timedwait on its slot (reference sections 5.1 and 12.2). 64x64 float, 10 semaphores, no
// keywords: slot i at 16768 + 32 i, semlog at 17088, cnt0 at 264, write at 288.
int milk_style_reader(const std::string& path, int slot) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return 20;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size != 17920) return 21;
  auto* base = static_cast<char*>(::mmap(nullptr, 17920, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (base == MAP_FAILED) return 22;
  if (std::strcmp(base, "2.00") != 0) return 23;
  auto* sem = reinterpret_cast<sem_t*>(base + 16768 + 32 * slot);
  while (sem_trywait(sem) == 0) {
  }  // flush, as milk loops do
  timespec deadline{};
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  if (sem_timedwait(sem, &deadline) != 0) return 24;
  std::uint64_t cnt0 = 0;
  std::memcpy(&cnt0, base + 264, 8);
  const char write_flag = base[288];
  float first = 0;
  std::memcpy(&first, base + 384, 4);
  return (cnt0 >= 1 && write_flag == 0 && first == 2.5f) ? 0 : 25;
}

TEST(StreamProcesses, MilkStyleSemaphoreReaderIsWokenByOurWriter) {
  test::TempStreamDir dir;
  auto s = Stream::create("milk", spec_of({64, 64}, Dtype::f32));
  const std::string path = s.path();
  pid_t r0 = test::spawn([&] { return milk_style_reader(path, 0); });
  pid_t r5 = test::spawn([&] { return milk_style_reader(path, 5); });
  // semlog is process-shared in our files: a logger in another process wakes too.
  pid_t logger = test::spawn([&] {
    int fd = ::open(path.c_str(), O_RDWR);
    auto* base = static_cast<char*>(::mmap(nullptr, 17920, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    timespec deadline{};
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    return sem_timedwait(reinterpret_cast<sem_t*>(base + 17088), &deadline) == 0 ? 0 : 30;
  });
  // Write only once both readers sleep in sem_timedwait (glibc counts them in the nwaiters half,
  // the high 32 bits, of their slot's word): they flush first, and a reader still flushing
  // when the write posts would take that post away from itself and time out.
  auto waiting_on = [&](int slot) {
    std::uint64_t word = 0;
    std::memcpy(&word, s.file_bytes().data() + 16768 + 32 * slot, sizeof word);
    return (word >> 32) != 0;
  };
  ASSERT_TRUE(test::wait_until([&] { return waiting_on(0) && waiting_on(5); })) << "the readers never waited";
  std::vector<float> frame(64 * 64, 2.5f);
  ASSERT_TRUE(s.write(std::span<const float>(frame)).ok());
  EXPECT_EQ(test::reap(r0, 15), 0);
  EXPECT_EQ(test::reap(r5, 15), 0);
  EXPECT_EQ(test::reap(logger, 15), 0);
}

TEST(StreamProcesses, SemaphoreWaitInAnotherProcessWakesAndTimesOut) {
  test::TempStreamDir dir;
  auto s = Stream::create("semx", spec_of({4}, Dtype::u8));
  pid_t kid = test::spawn([] {
    auto in = Stream::open("semx");
    const int slot = in.claim_semaphore();
    if (slot < 0) return 1;
    in.sem_flush(slot);
    if (in.sem_wait(slot, 30ms).code() != Errc::timeout) return 2;
    if (!in.sem_wait(slot, 10s).ok()) return 3;
    return in.cnt0() == 1 ? 0 : 4;
  });
  std::this_thread::sleep_for(300ms);
  const std::uint8_t f[4] = {};
  ASSERT_TRUE(s.write(std::span<const std::uint8_t>(f)).ok());
  EXPECT_EQ(test::reap(kid, 15), 0);
}

TEST(StreamProcesses, ConcurrentClaimsGetDistinctSlots) {
  test::TempStreamDir dir;
  auto s = Stream::create("claims", spec_of({1}, Dtype::u8));
  auto shared = Segment::create_memfd("claims", 4096);
  auto* slots = reinterpret_cast<std::int32_t*>(shared.data());
  std::vector<pid_t> kids;
  for (int i = 0; i < 8; ++i) {
    kids.push_back(test::spawn([&, i] {
      auto in = Stream::open("claims");
      slots[i] = in.claim_semaphore(0);  // all prefer slot 0
      std::this_thread::sleep_for(200ms);  // hold it while the others claim
      return slots[i] >= 0 ? 0 : 1;
    }));
  }
  for (pid_t k : kids) EXPECT_EQ(test::reap(k, 15), 0);
  std::vector<std::int32_t> got(slots, slots + 8);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end()) << "two processes share a slot";
}

}  // namespace
