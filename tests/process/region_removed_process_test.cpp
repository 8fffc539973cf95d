// SPDX-License-Identifier: MIT
// Channels whose region entry another process removes (issue 20; docs/design/region.md,
// "Removing a channel"): attached producers, consumers and stream writers get Errc::replaced,
// the removed bytes stay reserved while a live process is attached, and the channel created
// after the removal is never touched by the old handles.
#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace shmlink {
namespace {

using namespace std::chrono_literals;
using test::TempStreamDir;

constexpr std::size_t k1M = 1024 * 1024;

QueueSpec small_queue() {
  QueueSpec q;
  q.capacity = 16;
  q.max_values = 2;
  return q;
}

std::optional<RegionEntry> entry_named(const Region& r, const std::string& name, EntryState state) {
  for (const RegionEntry& e : r.entries())
    if (e.name == name && e.state == state) return e;
  return std::nullopt;
}

struct QueueFlags {
  std::atomic<int> attached{0};
  std::atomic<int> pushed{0};
  std::atomic<int> popped{0};
};

TEST(RegionRemoved, AProducerAndAConsumerOfARemovedQueueGetReplacedAndTheNextChannelIsUntouched) {
  TempStreamDir dir;
  test::Shared<QueueFlags> flags;
  test::Shared<test::ChildReport> report;
  Region r = Region::create("rmq", k1M);
  (void)r.create_queue("old", small_queue());
  const auto until = [](auto deadline) { return std::chrono::steady_clock::now() < deadline; };
  const pid_t producer = test::spawn([&]() -> int {
    Region mine = Region::open("rmq");
    Queue q = mine.open_queue("old");
    flags->attached.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (std::uint64_t i = 0; until(deadline);) {
      Sample m;
      m.sequence = i;
      m.values = {SignalValue::of(static_cast<double>(i)), SignalValue::of(1.0)};
      const Status st = q.push(m, 50ms);
      if (st.code() == Errc::replaced) return q.replaced() ? 0 : 2;
      SHMLINK_CHILD_CHECK(report, st.ok() || st.code() == Errc::timeout, static_cast<int>(st.code()));
      if (st.ok()) flags->pushed.store(static_cast<int>(++i));
    }
    SHMLINK_CHILD_CHECK(report, false, flags->pushed.load());  // never told the queue was removed
    return 1;
  });
  const pid_t consumer = test::spawn([&]() -> int {
    Region mine = Region::open("rmq");
    Queue q = mine.open_queue("old");
    flags->attached.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (std::uint64_t want = 0; until(deadline);) {
      Sample m;
      const Status st = q.pop(m, 50ms);
      if (st.code() == Errc::replaced) return q.replaced() ? 0 : 2;
      SHMLINK_CHILD_CHECK(report, st.ok() || st.code() == Errc::timeout, static_cast<int>(st.code()));
      if (!st.ok()) continue;
      SHMLINK_CHILD_CHECK(report, m.sequence == want, m.sequence);
      flags->popped.store(static_cast<int>(++want));
    }
    SHMLINK_CHILD_CHECK(report, false, flags->popped.load());
    return 1;
  });
  ASSERT_TRUE(test::wait_until([&] { return flags->attached.load() == 2 && flags->popped.load() >= 20; }, 20))
      << report->describe();
  r.remove("old");
  // A new channel right away, while the old handles may still be running.
  Queue next = r.create_queue("next", small_queue());
  EXPECT_EQ(test::reap(producer, 30), 0) << report->describe();
  EXPECT_EQ(test::reap(consumer, 30), 0) << report->describe();
  Sample s;
  EXPECT_EQ(next.try_pop(s).code(), Errc::would_block) << "the old producer wrote into the new queue";
  EXPECT_EQ(r.open_queue("next").info().pushed, 0U);
  // Both holders are gone: the next allocation reclaims the removed entry.
  (void)r.create_queue("third", small_queue());
  EXPECT_FALSE(entry_named(r, "old", EntryState::removing)) << "the removed entry was kept after its holders left";
}

TEST(RegionRemoved, ARemovedEntryKeepsItsBytesWhileAProcessIsAttachedAndReturnsThemWhenItDies) {
  TempStreamDir dir;
  test::Shared<QueueFlags> flags;
  Region r = Region::create("hold", k1M);
  (void)r.create_queue("held", small_queue());
  const std::uint64_t held_at = r.entries().at(0).offset;
  const pid_t holder = test::spawn([&]() -> int {
    Region mine = Region::open("hold");
    Queue q = mine.open_queue("held");
    flags->attached.store(1);
    for (;;) ::pause();  // attached until killed (a crashed holder)
  });
  // Killed and reaped however the test ends (a failed ASSERT returns early).
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) (void)test::reap(pid, 30);
    }
  } reaper{holder};
  ASSERT_TRUE(test::wait_until([&] { return flags->attached.load() == 1; }, 20));
  r.remove("held");
  const std::optional<RegionEntry> kept = entry_named(r, "held", EntryState::removing);
  ASSERT_TRUE(kept) << "a removed entry with a live holder must keep its bytes";
  EXPECT_EQ(kept->offset, held_at);
  try {
    (void)r.open_queue("held");
    ADD_FAILURE() << "a removed entry was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found) << e.what();
  }
  // New channels go elsewhere, the name included.
  Queue again = r.create_queue("held", small_queue());
  Queue other = r.create_queue("other", small_queue());
  for (const RegionEntry& e : r.entries()) {
    if (e.state == EntryState::ready) {
      EXPECT_NE(e.offset, held_at) << e.name << " got the removed bytes";
    }
  }
  EXPECT_TRUE(entry_named(r, "held", EntryState::removing));
  // The holder dies without detaching: the next allocation judges it dead and frees the bytes.
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  reaper.pid = 0;
  EXPECT_EQ(test::reap(holder, 30), -SIGKILL);
  (void)r.create_queue("after", small_queue());
  EXPECT_FALSE(entry_named(r, "held", EntryState::removing));
  EXPECT_EQ(entry_named(r, "after", EntryState::ready)->offset, held_at) << "the freed bytes, reused";
}

struct StreamFlags {
  std::atomic<int> written{0};
};

TEST(RegionRemoved, AStreamWriterWhoseEntryWasRemovedGetsReplacedAndNeverWritesTheNextStream) {
  TempStreamDir dir;
  test::Shared<StreamFlags> flags;
  test::Shared<test::ChildReport> report;
  Region r = Region::create("rms", k1M);
  (void)r.create_stream("wfs", test::spec_of({4, 4}, Dtype::f32));
  const pid_t writer = test::spawn([&]() -> int {
    Region mine = Region::open("rms");
    Stream s = mine.open_stream("wfs");
    std::vector<float> frame(16, 1.0F);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      const Status st = s.write(std::span<const float>(frame));
      if (st.code() == Errc::replaced) {
        SHMLINK_CHILD_CHECK(report, s.replaced(), 0);
        SHMLINK_CHILD_CHECK(report, s.begin_write().empty(), 0);
        return 0;
      }
      SHMLINK_CHILD_CHECK(report, st.ok(), static_cast<int>(st.code()));
      flags->written.fetch_add(1);
      std::this_thread::sleep_for(1ms);
    }
    SHMLINK_CHILD_CHECK(report, false, flags->written.load());  // never told the stream was removed
    return 1;
  });
  ASSERT_TRUE(test::wait_until([&] { return flags->written.load() >= 3; }, 20)) << report->describe();
  r.remove("wfs");
  Stream next = r.create_stream("wfs", test::spec_of({4, 4}, Dtype::f32));  // the same name, a new stream
  EXPECT_EQ(test::reap(writer, 30), 0) << report->describe();
  EXPECT_EQ(next.cnt0(), 0U) << "the old writer wrote into the new stream";
}

}  // namespace
}  // namespace shmlink
