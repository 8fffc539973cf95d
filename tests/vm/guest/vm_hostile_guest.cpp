// SPDX-License-Identifier: MIT
// Guest side of the hostile-guest VM tests (tests/vm/vm_hostile_test.cpp), run inside a QEMU
// guest as /bin/shmlink_vm_hostile_guest on the region the host formatted in the first ivshmem
// device's BAR2:
//
//   shmlink_vm_hostile_guest scribble SEED
//       a hostile guest: writes the patterns of tests/common/hostile_region.hpp into the region
//       (header, directory, the stream "wfs", the queue "q") through its raw BAR2 mapping, one
//       after the other, in step with the host through a mailbox in the region's last 4096
//       bytes (little-endian u64s, atomic): for pattern k the guest waits until the host stores
//       host_step (offset 0) = k + 1 (the host restored the region), writes the pattern and
//       stores guest_step (offset 8) = k + 1. The last pattern keeps rewriting the channels
//       until host_step moves on.
//   shmlink_vm_hostile_guest write-then-stall FRAMES QUEUE K
//       a writer that will be killed mid-write: opens the host's stream FRAMES and SPSC queue
//       QUEUE, writes frames 0..K-1 (frame_value()) and pushes samples 0..K-1 (sample i:
//       sequence i, values {i, 3i + 1}), then opens frame K (begin_write: the write flag set),
//       fills half of it, and from then on only pushes samples K, K+1, ... as fast as the
//       queue takes them, until the host kills the guest.
//
// Exit status: 0 done (scribble); 2 setup failed; 4 a bounded wait (60 s) ran out. Each failure
// prints why.
#include <shmlink/error.hpp>
#include <shmlink/ivshmem.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include "hostile_region.hpp"
#include "vm_frames.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace hostile = shmlink::test::hostile;
constexpr auto kWaitLimit = std::chrono::seconds(60);

std::uint64_t load(std::byte* word) {
  // SYNC POINT: pairs with the host's release store of host_step after it restored the region.
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(word)).load(std::memory_order_acquire);
}

void store(std::byte* word, std::uint64_t v) {
  // SYNC POINT: pairs with the host's acquire load of guest_step: the pattern is written.
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(word)).store(v, std::memory_order_release);
}

int scribble(std::uint64_t seed) {
  hostile::Target t;
  {
    shmlink::Region region = shmlink::Region::open("ivshmem:");
    const auto entries = region.entries();  // a fresh region: "wfs" and "q" are entries 0 and 1
    for (std::uint32_t i = 0; i < entries.size(); ++i) {
      if (entries[i].name == "wfs") t.stream_index = i, t.stream_offset = entries[i].offset, t.stream_size = entries[i].size;
      if (entries[i].name == "q") t.queue_index = i, t.queue_offset = entries[i].offset, t.queue_size = entries[i].size;
    }
    if (t.stream_offset == 0 || t.queue_offset == 0) {
      std::printf("guest: the region has no stream 'wfs' and queue 'q'\n");
      return 2;
    }
  }
  shmlink::ivshmem::BarOptions options;
  options.registers = false;
  auto bar = shmlink::ivshmem::Bar::open("ivshmem:", options);
  if (!bar) {
    std::printf("guest: %s\n", bar.error().what());
    return 2;
  }
  t.region = bar->memory();
  t.table_end = hostile::kHeaderBytes + hostile::kEntryBytes * 256;
  std::byte* host_step = t.region.data() + t.region.size() - 4096;
  std::byte* guest_step = host_step + 8;
  for (int k = 0; k < hostile::kPatternCount; ++k) {
    const auto step = static_cast<std::uint64_t>(k + 1);
    const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
    while (load(host_step) != step) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::printf("guest: the host never asked for pattern %d\n", k);
        return 4;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (k + 1 < hostile::kPatternCount) {
      hostile::apply(k, t, seed);
      store(guest_step, step);
      std::printf("guest: wrote '%s'\n", hostile::kPatternNames[k]);
      continue;
    }
    store(guest_step, step);
    std::mt19937_64 rng(seed);
    std::uint64_t passes = 0;
    while (load(host_step) == step && std::chrono::steady_clock::now() < deadline) {
      hostile::scribble_channels(t, rng);
      ++passes;
    }
    std::printf("guest: '%s': %llu passes\n", hostile::kPatternNames[k], static_cast<unsigned long long>(passes));
  }
  return 0;
}

int write_then_stall(const std::string& frames_name, const std::string& queue_name, std::uint64_t k) {
  shmlink::Region region = shmlink::Region::open("ivshmem:");
  shmlink::Stream frames = region.open_stream(frames_name);
  shmlink::Queue queue = region.open_queue(queue_name);
  std::vector<std::uint32_t> frame(frames.frame_bytes() / sizeof(std::uint32_t));
  shmlink::Sample s;
  s.values.resize(2);
  auto push = [&](std::uint64_t i) {
    s.sequence = i;
    s.values[0] = shmlink::SignalValue::of(static_cast<std::int64_t>(i));
    s.values[1] = shmlink::SignalValue::of(static_cast<std::int64_t>(3 * i + 1));
    const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
    while (!queue.try_push(s)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
    return true;
  };
  for (std::uint64_t i = 0; i < k; ++i) {
    for (std::size_t j = 0; j < frame.size(); ++j) frame[j] = shmlink::testvm::frame_value(i, j);
    if (auto st = frames.write(std::span<const std::uint32_t>(frame)); !st) {
      std::printf("guest: writing frame %llu: %s\n", static_cast<unsigned long long>(i), st.message());
      return 2;
    }
    if (!push(i)) {
      std::printf("guest: sample %llu found the queue full for 60 s\n", static_cast<unsigned long long>(i));
      return 4;
    }
  }
  std::span<std::byte> open = frames.begin_write();
  if (open.empty()) {
    std::printf("guest: begin_write gave no frame\n");
    return 2;
  }
  std::memset(open.data(), 0xAB, open.size() / 2);  // half of frame k: the rest is frame k - 1's
  std::printf("guest: frame %llu is open, half written; pushing until killed\n", static_cast<unsigned long long>(k));
  std::fflush(stdout);
  for (std::uint64_t i = k;; ++i) {
    if (!push(i)) {
      std::printf("guest: sample %llu found the queue full for 60 s\n", static_cast<unsigned long long>(i));
      return 4;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::strcmp(argv[1], "scribble") == 0) return scribble(std::stoull(argv[2]));
    if (argc == 5 && std::strcmp(argv[1], "write-then-stall") == 0)
      return write_then_stall(argv[2], argv[3], std::stoull(argv[4]));
  } catch (const std::exception& e) {
    std::printf("guest: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: shmlink_vm_hostile_guest scribble SEED | write-then-stall FRAMES QUEUE K\n");
  return 2;
}
