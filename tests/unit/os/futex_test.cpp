// SPDX-License-Identifier: MIT
// Shared futexes between processes mapping the same memfd.
#include "os/futex.hpp"
#include "test_util.hpp"

#include <shmlink/segment.hpp>

#include <atomic>

namespace {

using namespace shmlink;

TEST(Futex, WaitTimesOutAndSeesValueChange) {
  auto m = Segment::create_memfd("futex", 4096);
  auto* word = reinterpret_cast<std::uint32_t*>(m.data());
  timespec rel{0, 20'000'000};
  EXPECT_EQ(os::futex_wait(word, 0, &rel), os::FutexResult::timed_out);
  EXPECT_EQ(os::futex_wait(word, 5, &rel), os::FutexResult::value_changed);
  EXPECT_EQ(os::futex_wake(word), 0);  // nobody waits
}

TEST(Futex, WakeCrossesProcesses) {
  auto m = Segment::create_memfd("futex2", 4096);
  auto* word = reinterpret_cast<std::uint32_t*>(m.data());
  pid_t child = test::spawn([&] {
    timespec rel{5, 0};
    while (std::atomic_ref<std::uint32_t>(*word).load() == 0) os::futex_wait(word, 0, &rel);
    return std::atomic_ref<std::uint32_t>(*word).load() == 7 ? 0 : 1;
  });
  timespec pause{0, 30'000'000};
  nanosleep(&pause, nullptr);
  std::atomic_ref<std::uint32_t>(*word).store(7);
  os::futex_wake(word);
  EXPECT_EQ(test::reap(child, 10), 0);
}

}  // namespace
