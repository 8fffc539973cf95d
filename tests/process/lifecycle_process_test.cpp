// SPDX-License-Identifier: MIT
// Stream life cycle across processes: re-creation under a waiting reader, a reader killed while
// holding a semaphore slot, a writer killed mid-write (issue 3, "Life cycle and crashes").
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <signal.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::spec_of;

TEST(StreamLifecycle, RecreateWithAnotherShapeWakesWaiterWhichReattaches) {
  test::TempStreamDir dir;
  auto first = Stream::create("re", spec_of({64, 64}, Dtype::u16));
  pid_t reader = test::spawn([] {
    auto in = Stream::open("re");
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = in.wait_futex(0, 10s, nullptr, 0ns);
    if (st.code() != Errc::replaced) return 1;
    // Woken by the re-creation itself, not by a 10 ms poll slice long after.
    if (std::chrono::steady_clock::now() - t0 > 5s) return 2;
    in = Stream::open("re");  // re-attach: the new geometry
    if (in.shape().size() != 2 || in.shape()[0] != 8 || in.dtype() != Dtype::f32) return 3;
    std::uint64_t c = 0;
    if (!in.wait_futex(0, 10s, &c).ok()) return 4;
    std::vector<float> f(8 * 4);
    if (!in.read_copy(std::as_writable_bytes(std::span(f))).ok()) return 5;
    return f[0] == 1.5f ? 0 : 6;
  });
  std::this_thread::sleep_for(200ms);
  auto second = Stream::create("re", spec_of({8, 4}, Dtype::f32), OpenMode::PurgeAndCreate);
  EXPECT_TRUE(first.replaced());
  EXPECT_FALSE(second.replaced());
  // The old mapping is intact: reading it never faults (no SIGBUS, no truncation).
  std::vector<std::uint16_t> old(64 * 64);
  EXPECT_TRUE(first.read_copy(std::as_writable_bytes(std::span(old))).ok());
  std::this_thread::sleep_for(200ms);
  const std::vector<float> frame(32, 1.5f);
  ASSERT_TRUE(second.write(std::span<const float>(frame)).ok());
  EXPECT_EQ(test::reap(reader, 20), 0);
}

TEST(StreamLifecycle, SemaphoreWaiterOnReplacedFileIsPostedOnce) {
  test::TempStreamDir dir;
  auto first = Stream::create("rs", spec_of({4}, Dtype::u8));
  pid_t reader = test::spawn([] {
    auto in = Stream::open("rs");
    in.sem_flush(3);
    if (!in.sem_wait(3, 10s).ok()) return 1;
    return in.replaced() && in.cnt0() == 0 ? 0 : 2;
  });
  std::this_thread::sleep_for(200ms);
  auto second = Stream::create("rs", spec_of({4}, Dtype::u8), OpenMode::PurgeAndCreate);
  EXPECT_EQ(test::reap(reader, 20), 0);
}

TEST(StreamLifecycle, RemovedStreamIsReportedAsReplaced) {
  test::TempStreamDir dir;
  auto s = Stream::create("gone", spec_of({4}, Dtype::u8));
  EXPECT_FALSE(s.replaced());
  Stream::remove("gone");
  EXPECT_TRUE(s.replaced());
  EXPECT_EQ(s.wait_futex(0, 30ms).code(), Errc::replaced);
}

TEST(StreamLifecycle, KilledReadersSlotIsReclaimed) {
  test::TempStreamDir dir;
  auto s = Stream::create("slot", spec_of({1}, Dtype::u8));
  pid_t holder = test::spawn([] {
    auto in = Stream::open("slot");
    if (in.claim_semaphore(2) != 2) return 1;
    ::pause();  // hold the slot until killed
    return 0;
  });
  for (int i = 0; i < 400 && s.info().sem_read_pids[2] != holder; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.info().sem_read_pids[2], holder);
  // Another live process preferring slot 2 must not get it while the holder lives.
  pid_t rival = test::spawn([] { return Stream::open("slot").claim_semaphore(2) == 2 ? 1 : 0; });
  EXPECT_EQ(test::reap(rival, 10), 0);
  ::kill(holder, SIGKILL);
  EXPECT_EQ(test::reap(holder, 10), -SIGKILL);
  pid_t heir = test::spawn([] { return Stream::open("slot").claim_semaphore(2) == 2 ? 0 : 1; });
  EXPECT_EQ(test::reap(heir, 10), 0);
}

TEST(StreamLifecycle, WriterKilledMidWriteReadersTimeOutNewWriterRecovers) {
  test::TempStreamDir dir;
  auto s = Stream::create("crash", spec_of({1024}, Dtype::u32));
  const std::vector<std::uint32_t> good(1024, 5);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(good)).ok());
  pid_t writer = test::spawn([] {
    auto out = Stream::open("crash");
    auto buf = out.begin_write();  // write = 1 ...
    std::memset(buf.data(), 0xFF, buf.size() / 2);
    ::raise(SIGKILL);  // ... and die mid-write
    return 0;
  });
  EXPECT_EQ(test::reap(writer, 10), -SIGKILL);
  auto reader = Stream::open("crash");
  EXPECT_TRUE(reader.write_flag());
  std::vector<std::uint32_t> back(1024);
  EXPECT_EQ(reader.read_copy(std::as_writable_bytes(std::span(back))).code(), Errc::writer_active);
  EXPECT_EQ(reader.wait_futex(1, 30ms).code(), Errc::timeout);  // no frame was published
  // A new writer recovers the stream: a complete write clears the flag and publishes.
  auto fresh = Stream::open("crash");
  const std::vector<std::uint32_t> next(1024, 6);
  ASSERT_TRUE(fresh.write(std::span<const std::uint32_t>(next)).ok());
  FrameInfo info;
  ASSERT_TRUE(reader.read_copy(std::as_writable_bytes(std::span(back)), &info).ok());
  EXPECT_EQ(back, next);
  EXPECT_EQ(info.cnt0, 2u);
  EXPECT_FALSE(reader.write_flag());
}

}  // namespace
