// SPDX-License-Identifier: MIT
// Guest side of the doorbell tests (tests/vm/vm_doorbell_test.cpp), run inside a QEMU guest as
// /bin/shmlink_vm_doorbell_guest. It opens the region in the first ivshmem device
// (Region::open("ivshmem:"): an ivshmem-doorbell device of shmlink's ivshmem server, with the
// uio_ivshmem driver bound) and plays one role:
//
//   shmlink_vm_doorbell_guest wait-stream NAME N
//       for i in 1..N: Stream::wait_futex until stream NAME holds frame i (its cnt0 reaches i),
//       each wait bounded by 30 s, the doorbell fallback set to 10 minutes: a wait that ends in
//       time was ended by a ring (or found the frame before sleeping), never by the fallback.
//   shmlink_vm_doorbell_guest pop NAME N
//       the same with Queue::pop of N samples from queue NAME (sample i has sequence i).
//   shmlink_vm_doorbell_guest write-stream NAME N
//       for i in 1..N: waits (polling, 1 ms sleeps) until somebody is registered as waiting on
//       stream NAME (its waiter count in the region's waiter table is not zero), then writes
//       frame i, which rings the waiter (frames may coalesce: a waiter takes the newest).
//
// Every role first requires Region::wait_mode() doorbell (exit 10 otherwise, printing why the
// region polls) and prints "doorbell: rings R wakes_by_ring W wakes_by_timeout T" at the end.
// Exit status: 0 done, with no sleep ended by the fallback and (waiting roles) at least one
// wake-up by a ring; 2 setup failed; 4 a bounded wait ran out; 5 wrong data; 6 a sleep ended by
// the fallback timeout or no ring woke a waiter; 10 no doorbell.
#include <shmlink/doorbell.hpp>
#include <shmlink/error.hpp>
#include <shmlink/ivshmem.hpp>
#include <shmlink/log.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include "region/region_layout.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <thread>

namespace {

using namespace std::chrono_literals;
constexpr auto kWaitLimit = 30s;

template <class Open>
auto open_with_retry(Open open) -> decltype(open()) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  for (;;) {
    try {
      return open();
    } catch (const shmlink::Error&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
    }
    std::this_thread::sleep_for(5ms);
  }
}

int report(const shmlink::Region& region, bool waited) {
  const shmlink::DoorbellStats s = region.doorbell_stats();
  std::printf("doorbell: rings %llu wakes_by_ring %llu wakes_by_timeout %llu unregistered %llu\n",
              static_cast<unsigned long long>(s.rings), static_cast<unsigned long long>(s.wakes_by_ring),
              static_cast<unsigned long long>(s.wakes_by_timeout), static_cast<unsigned long long>(s.unregistered));
  if (s.wakes_by_timeout != 0 || s.unregistered != 0 || (waited && s.wakes_by_ring == 0)) return 6;
  return 0;
}

int wait_stream(shmlink::Region& region, const std::string& name, std::uint64_t n) {
  shmlink::Stream stream = open_with_retry([&] { return region.open_stream(name); });
  for (std::uint64_t i = 1; i <= n; ++i) {
    std::uint64_t cnt0 = 0;
    while (cnt0 < i) {
      const shmlink::Status st = stream.wait_futex(cnt0, kWaitLimit, &cnt0);
      if (!st) {
        std::printf("guest: waiting for frame %llu of %s: %s\n", static_cast<unsigned long long>(i), name.c_str(),
                    st.message());
        return 4;
      }
    }
    std::array<std::uint32_t, 16> frame{};
    if (auto st = stream.read_copy(std::as_writable_bytes(std::span(frame))); !st || frame[0] < i) {
      std::printf("guest: frame %llu holds %u\n", static_cast<unsigned long long>(i), frame[0]);
      return 5;
    }
  }
  return report(region, true);
}

int pop(shmlink::Region& region, const std::string& name, std::uint64_t n) {
  shmlink::Queue queue = open_with_retry([&] { return region.open_queue(name); });
  for (std::uint64_t i = 1; i <= n; ++i) {
    shmlink::Sample s;
    if (auto st = queue.pop(s, kWaitLimit); !st) {
      std::printf("guest: popping sample %llu of %s: %s\n", static_cast<unsigned long long>(i), name.c_str(),
                  st.message());
      return 4;
    }
    if (s.sequence != i) {
      std::printf("guest: sample %llu has sequence %llu\n", static_cast<unsigned long long>(i),
                  static_cast<unsigned long long>(s.sequence));
      return 5;
    }
  }
  return report(region, true);
}

int write_stream(shmlink::Region& region, const std::string& name, std::uint64_t n) {
  shmlink::Stream stream = open_with_retry([&] { return region.open_stream(name); });
  // The stream's waiter count in the waiter table (the region's first 256 entries).
  std::uint32_t index = 0;
  const auto entries = region.entries();
  while (index < entries.size() && entries[index].name != name) ++index;
  auto bar = shmlink::ivshmem::Bar::open("ivshmem:", {.registers = false});
  if (!bar || index == entries.size()) return 2;
  const auto* count = reinterpret_cast<const std::uint32_t*>(
      bar->memory().data() + shmlink::rlayout::waiter_count_offset(256, index));
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
    while (std::atomic_ref<const std::uint32_t>(*count).load(std::memory_order_acquire) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::printf("guest: nobody waited on %s for frame %llu\n", name.c_str(), static_cast<unsigned long long>(i));
        return 4;
      }
      std::this_thread::sleep_for(1ms);
    }
    std::array<std::uint32_t, 16> frame{};
    frame[0] = static_cast<std::uint32_t>(i);
    if (auto st = stream.write(std::span<const std::uint32_t>(frame)); !st) {
      std::printf("guest: writing frame %llu: %s\n", static_cast<unsigned long long>(i), st.message());
      return 2;
    }
  }
  return report(region, false);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::printf("usage: %s wait-stream|pop|write-stream NAME N\n", argv[0]);
    return 2;
  }
  const std::string_view role = argv[1];
  const std::string name = argv[2];
  const std::uint64_t n = std::strtoull(argv[3], nullptr, 10);
  shmlink::set_log_level(shmlink::LogLevel::info);  // "waits poll: ..." when there is no doorbell
  try {
    shmlink::Region region = open_with_retry([] { return shmlink::Region::open("ivshmem:"); });
    if (region.wait_mode() != shmlink::RegionWaitMode::doorbell) {
      std::printf("guest: the region does not wait on doorbells\n");
      return 10;
    }
    region.set_doorbell_fallback(std::chrono::minutes(10));
    if (role == "wait-stream") return wait_stream(region, name, n);
    if (role == "pop") return pop(region, name, n);
    if (role == "write-stream") return write_stream(region, name, n);
  } catch (const shmlink::Error& e) {
    std::printf("guest: %s\n", e.what());
    return 2;
  }
  std::printf("guest: unknown role %s\n", argv[1]);
  return 2;
}
