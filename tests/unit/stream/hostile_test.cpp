// SPDX-License-Identifier: MIT
// Streams against hostile files (issue 17): sizes whose product wraps, scribbled in-file
// semaphores, huge semaphore values, corrupted timestamps, FIFOs and in-place truncation under
// a stream's name. A bad file is an error (or costs its own slot), never a crash or a hang.
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include "stream/tuning.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

using test::spec_of;

/// Writes `n` bytes at `offset` of `path` (as a co-user of the directory can).
void poke(const std::string& path, std::size_t offset, const void* bytes, std::size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  ::close(fd);
}

template <class T>
void poke_value(const std::string& path, std::size_t offset, T v) {
  poke(path, offset, &v, sizeof v);
}

/// Offset of in-file semaphore `slot` of a stream with `data_bytes` of data, no keywords.
std::size_t sem_offset(std::size_t data_bytes, std::size_t nsem, int slot) {
  return test::isio_offsets(data_bytes, 0, nsem, 0, false).semaphores + 32 * static_cast<std::size_t>(slot);
}

// Item 5: 2147549185 x 2147418113 x 4 is 2^64 + 4, which wraps to 4 in 64 bits: a file that
// says nelement 4 and 4 bytes of data matched the wrapped product and was opened, and every
// size derived from the axes then lied (Python's view() was a 4.6e18-byte array).
TEST(HostileStreamFile, AxisSizesWhoseProductWrapsAreRefusedNamingTheFile) {
  test::TempStreamDir dir;
  std::string path;
  {
    auto s = Stream::create("wrap", spec_of({4, 1, 1}, Dtype::u8));  // nelement 4, 4 data bytes
    path = s.path();
  }
  const std::uint32_t sizes[3] = {2147549185u, 2147418113u, 4u};
  poke(path, 116, sizes, sizeof sizes);
  try {
    (void)Stream::open("wrap");
    ADD_FAILURE() << "a file whose axes multiply past 2^64 was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2147549185x2147418113x4"), std::string::npos) << e.what();
  }
}

// Item 6: any bytes in the semaphore area. The 8 bytes written at each 4-byte position
// of the first slots (over the value/waiter word, the `private` word, the unused tail) made
// glibc's sem_post abort the writer ("The futex facility returned an unexpected error code")
// when they put a non-zero waiter count next to a garbage `private` word. The writer runs in a
// child so that an abort fails the test instead of killing it.
TEST(HostileStreamFile, ScribbledSemaphoresNeverAbortTheWriterOrAReader) {
  test::TempStreamDir dir;
  auto s = Stream::create("scrib", spec_of({64, 32}, Dtype::u16));
  const std::string path = s.path();
  const std::size_t data_bytes = 64 * 32 * 2;
  const unsigned char bytes[8] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00};
  for (int slot = 0; slot < 7; ++slot) poke(path, sem_offset(data_bytes, 10, slot) + 4 * slot, bytes, sizeof bytes);
  const pid_t writer = test::spawn([&] {
    auto w = Stream::open("scrib");
    std::vector<std::byte> frame(w.frame_bytes(), std::byte{7});
    for (int i = 0; i < 3; ++i)
      if (!w.write(frame).ok()) return 1;
    return w.sem_post(4).ok() ? 0 : 2;
  });
  EXPECT_EQ(test::reap(writer), 0) << "the writer died (-6: SIGABRT in glibc's sem_post)";
  EXPECT_EQ(s.cnt0(), 3u);
  // Slots the scribble left sane still count posts (capped at 10).
  EXPECT_EQ(s.sem_value(9), 3);
  // A reader waiting on a scribbled slot: a bounded wait that ends (no abort, no endless spin).
  const pid_t reader = test::spawn([&] {
    auto r = Stream::open("scrib");
    for (int slot = 0; slot < 7; ++slot) {
      (void)r.sem_flush(slot);
      const Status st = r.sem_wait(slot, 20ms);
      if (st.code() != Errc::timeout && st.code() != Errc::ok) return 10 + slot;
    }
    return 0;
  });
  EXPECT_EQ(test::reap(reader), 0) << "the reader died (-6: SIGABRT in glibc's sem_timedwait)";
}

// The other direction of the glibc protocol: a legacy (ISIO) poster using glibc's sem_post wakes
// a shmlink reader sleeping on the slot, because the reader counts itself in the waiter half of
// the word as glibc's waiters do. The reader's re-check slice is raised to 30 s (it is 100 ms)
// and it waits up to 30 s, so only the FUTEX_WAKE can end the wait within reap's 5 s bound:
// checked by making shmlink's wait sleep on another word of the sem_t, which glibc's wake does
// not reach (the reader was then killed at the bound).
TEST(HostileStreamFile, GlibcSemPostWakesAShmlinkSemWait) {
  test::TempStreamDir dir;
  auto s = Stream::create("gpost", spec_of({8}, Dtype::f32));
  auto* sem = reinterpret_cast<sem_t*>(const_cast<std::byte*>(s.file_bytes().data() + sem_offset(32, 10, 3)));
  const pid_t reader = test::spawn([&] {
    detail::sem_recheck_ns().store(30'000'000'000);
    auto r = Stream::open("gpost");
    return r.sem_wait(3, 30s).ok() ? 0 : 1;
  });
  // Wait until the reader is registered as a waiter (the high half of the data word), then post.
  std::uint64_t word = 0;
  ASSERT_TRUE(test::wait_until([&] {
    std::memcpy(&word, sem, sizeof word);
    return (word >> 32) != 0;
  })) << "the reader never registered as a waiter";
  ASSERT_EQ(::sem_post(sem), 0);
  EXPECT_EQ(test::reap(reader, 5), 0) << "-1000: the reader slept through glibc's wake-up";
  EXPECT_EQ(s.sem_value(3), 0);
}

// Item 7: sem_flush sets the value to 0 in one step. Four slots at 2^31-1 took one sem_trywait
// per post (7.6 s each) and the total wrapped the int; now the total saturates at INT_MAX.
TEST(HostileStreamFile, FlushOfHugeSemaphoreValuesIsOneStepAndSaturates) {
  test::TempStreamDir dir;
  auto s = Stream::create("flush", spec_of({8}, Dtype::f32));
  for (int slot = 0; slot < 4; ++slot) poke_value(s.path(), sem_offset(32, 10, slot), std::uint64_t{0x7FFF'FFFF});
  EXPECT_EQ(s.sem_value(0), INT_MAX);
  EXPECT_EQ(s.sem_flush(0), INT_MAX);
  EXPECT_EQ(s.sem_value(0), 0);
  EXPECT_EQ(s.sem_flush(-1), INT_MAX);  // 3 x (2^31 - 1): saturated, not wrapped
  for (int slot = 0; slot < 10; ++slot) EXPECT_EQ(s.sem_value(slot), 0) << "slot " << slot;
  // A value word above INT_MAX (only a scribble makes one) reads as INT_MAX and flushes to 0.
  poke_value(s.path(), sem_offset(32, 10, 5), std::uint64_t{0xFFFF'FFFF});
  EXPECT_EQ(s.sem_value(5), INT_MAX);
  EXPECT_EQ(s.sem_flush(5), INT_MAX);
  EXPECT_EQ(s.sem_value(5), 0);
}

// Item 11: timestamps are peer-written; tv_sec * 1e9 overflowed int64 (UBSan: signed overflow
// in load_timespec). Now the value saturates. Run under the asan preset to see the difference.
TEST(HostileStreamFile, CorruptedTimestampsSaturateInsteadOfOverflowing) {
  test::TempStreamDir dir;
  auto s = Stream::create("ts", spec_of({8}, Dtype::f32));
  const std::int64_t big[2] = {std::numeric_limits<std::int64_t>::max() / 2, 999'999'999};
  const std::int64_t small[2] = {std::numeric_limits<std::int64_t>::min() / 2, 0};
  const std::int64_t nsec_only[2] = {9'223'372'036, std::numeric_limits<std::int64_t>::max()};
  poke(s.path(), 184, big, sizeof big);           // atime
  poke(s.path(), 200, small, sizeof small);       // writetime
  poke(s.path(), 152, nsec_only, sizeof nsec_only);  // creationtime: tv_nsec overflows the sum
  const FrameInfo f = s.frame_info();
  EXPECT_EQ(f.atime_ns, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(f.writetime_ns, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(s.creation_time_ns(), std::numeric_limits<std::int64_t>::max());
  EXPECT_NO_THROW((void)s.info());
}

// Item 9: a FIFO under a stream's name: a read-only open(2) blocked for ever without O_NONBLOCK
// (a read-write one does not block on Linux, but both must refuse it). It is refused as not a
// regular file, naming the file and what it is. In a child so that a hang fails the test.
TEST(HostileStreamFile, FifoUnderTheNameIsRefusedWithoutBlocking) {
  test::TempStreamDir dir;
  const std::string path = stream_path("fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const pid_t child = test::spawn([&] {
    for (const bool writable : {false, true}) {
      try {
        (void)Stream::open("fifo", OpenOptions{.writable = writable});
        return 1;
      } catch (const Error& e) {
        const std::string m = e.what();
        if (e.errc() != Errc::layout || m.find(path) == std::string::npos || m.find("FIFO") == std::string::npos) return 2;
      }
    }
    return 0;
  });
  EXPECT_EQ(test::reap(child, 10), 0) << "-1000: Stream::open blocked on the FIFO";
}

// Item 10: a foreign re-creation truncates the file in place. A reader in wait_futex notices it
// after its poll slice, before touching the mapping again, and returns replaced instead of
// dying with SIGBUS. The reader is a child so that a SIGBUS fails the test instead of killing it.
TEST(HostileStreamFile, InPlaceTruncationEndsAWaitWithReplacedNotSigbus) {
  test::TempStreamDir dir;
  auto s = Stream::create("trunc", spec_of({64}, Dtype::f32));
  EXPECT_TRUE(s.file_intact());
  test::Shared<std::atomic<int>> waiting;
  const pid_t reader = test::spawn([&] {
    auto r = Stream::open("trunc");
    waiting->store(1);
    const Status st = r.wait_futex(r.cnt0(), 10s);
    return st.code() == Errc::replaced && !r.file_intact() ? 0 : 1;
  });
  ASSERT_TRUE(test::wait_until([&] { return waiting->load() == 1; }));
  // Truncate only while the reader is asleep in the futex: registered as a waiter (the count at
  // byte 300 of the metadata) and in state S. The reader touches the mapping between its
  // waiting=1 and its sleep, and for a few microseconds after each 10 ms slice (between its size
  // check and its loads: the documented window, docs/design/streams.md "Trust rules"); a
  // truncation there is not this case: it kills the reader with SIGBUS.
  const std::string stat_path = "/proc/" + std::to_string(reader) + "/stat";
  auto asleep_in_wait = [&] {
    std::uint32_t waiters = 0;
    std::memcpy(&waiters, s.file_bytes().data() + 300, sizeof waiters);
    if (waiters == 0) return false;
    const int fd = ::open(stat_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[512] = {};
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return false;
    const char* end = std::strrchr(buf, ')');  // "pid (comm) S ...": the state follows the name
    return end != nullptr && end[1] == ' ' && end[2] == 'S';
  };
  ASSERT_TRUE(test::wait_until(asleep_in_wait)) << "the reader never slept in wait_futex";
  ASSERT_EQ(::truncate(s.path().c_str(), 0), 0);  // as ISIO's re-creation does first
  EXPECT_EQ(test::reap(reader, 10), 0) << "-7: the reader died of SIGBUS";
  EXPECT_FALSE(s.file_intact());
}

}  // namespace
