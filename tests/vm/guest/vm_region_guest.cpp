// SPDX-License-Identifier: MIT
// Guest side of the VM stream tests (tests/vm/vm_stream_test.cpp), run inside a QEMU guest as
// /bin/shmlink_vm_region_guest. It opens the region the host formatted in the first ivshmem
// device's BAR2 (Region::open("ivshmem:"): sysfs resource2 of vendor 0x1af4, device 0x1110,
// same_kernel false since this is another kernel) and plays one role:
//
//   shmlink_vm_region_guest read FRAMES ACK N
//       for i in 0..N-1: waits (polling) until stream FRAMES (a fresh one) holds frame i, checks
//       every element against frame_value(i, j), then writes i into stream ACK (the host waits
//       for it before writing frame i + 1).
//   shmlink_vm_region_guest write FRAMES ACK N
//       creates stream FRAMES (u32, 64x16) in the region, then for i in 0..N-1 writes frame i and
//       waits (polling) until stream ACK (created fresh by the host) holds i.
//
// Exit status: 0 all frames exchanged and correct; 2 setup failed (no device, no region, no
// stream); 3 a frame had a wrong element; 4 a bounded wait ran out. Each failure prints why.
#include <shmlink/error.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include "vm_frames.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using shmlink::testvm::frame_value;
constexpr std::uint32_t kWidth = shmlink::testvm::kFrameWidth, kHeight = shmlink::testvm::kFrameHeight;
constexpr auto kWaitLimit = std::chrono::seconds(20);

// Polls (1 ms sleeps, so that the guest's only vCPU is not spun away) until `stream`'s cnt0
// reaches `cnt0`. False after kWaitLimit.
bool wait_for_cnt0(const shmlink::Stream& stream, std::uint64_t cnt0) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (stream.cnt0() < cnt0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

shmlink::Stream open_with_retry(shmlink::Region& region, const std::string& name) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  for (;;) {
    try {
      return region.open_stream(name);
    } catch (const shmlink::Error&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int read_role(shmlink::Region& region, const std::string& frames_name, const std::string& ack_name,
              std::uint64_t n) {
  shmlink::Stream frames = open_with_retry(region, frames_name);
  shmlink::Stream ack = open_with_retry(region, ack_name);
  const std::uint64_t base = 0;  // a fresh stream: frame i is its (i + 1)-th write
  std::vector<std::uint32_t> frame(kWidth * kHeight);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!wait_for_cnt0(frames, base + i + 1)) {
      std::printf("guest: frame %llu of %s did not arrive within 20 s (cnt0 %llu)\n",
                  static_cast<unsigned long long>(i), frames_name.c_str(),
                  static_cast<unsigned long long>(frames.cnt0()));
      return 4;
    }
    shmlink::FrameInfo info;
    if (auto st = frames.read_copy(std::as_writable_bytes(std::span(frame)), &info); !st) {
      std::printf("guest: read_copy of frame %llu: %s\n", static_cast<unsigned long long>(i), st.message());
      return 3;
    }
    if (info.cnt0 != base + i + 1) {
      std::printf("guest: expected cnt0 %llu, read %llu\n", static_cast<unsigned long long>(base + i + 1),
                  static_cast<unsigned long long>(info.cnt0));
      return 3;
    }
    for (std::size_t j = 0; j < frame.size(); ++j) {
      if (frame[j] != frame_value(i, j)) {
        std::printf("guest: frame %llu element %zu is %u, expected %u\n", static_cast<unsigned long long>(i), j,
                    frame[j], frame_value(i, j));
        return 3;
      }
    }
    const std::array<std::uint64_t, 1> seen{i};
    if (auto st = ack.write(std::span<const std::uint64_t>(seen)); !st) {
      std::printf("guest: writing ack %llu: %s\n", static_cast<unsigned long long>(i), st.message());
      return 2;
    }
  }
  std::printf("guest: read %llu frames of %s correctly\n", static_cast<unsigned long long>(n), frames_name.c_str());
  return 0;
}

int write_role(shmlink::Region& region, const std::string& frames_name, const std::string& ack_name,
               std::uint64_t n) {
  shmlink::StreamSpec spec;
  spec.shape = {kWidth, kHeight};
  spec.dtype = shmlink::Dtype::u32;
  shmlink::Stream frames = region.create_stream(frames_name, spec);
  shmlink::Stream ack = open_with_retry(region, ack_name);
  const std::uint64_t ack_base = 0;  // a fresh stream: ack i is its (i + 1)-th write
  std::vector<std::uint32_t> frame(kWidth * kHeight);
  std::array<std::uint64_t, 1> seen{};
  for (std::uint64_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < frame.size(); ++j) frame[j] = frame_value(i, j);
    if (auto st = frames.write(std::span<const std::uint32_t>(frame)); !st) {
      std::printf("guest: writing frame %llu: %s\n", static_cast<unsigned long long>(i), st.message());
      return 2;
    }
    if (!wait_for_cnt0(ack, ack_base + i + 1)) {
      std::printf("guest: no ack of frame %llu within 20 s\n", static_cast<unsigned long long>(i));
      return 4;
    }
    if (auto st = ack.read_copy(std::as_writable_bytes(std::span(seen))); !st || seen[0] != i) {
      std::printf("guest: ack of frame %llu reads %llu (%s)\n", static_cast<unsigned long long>(i),
                  static_cast<unsigned long long>(seen[0]), st.message());
      return 3;
    }
  }
  std::printf("guest: wrote %llu frames of %s, each acknowledged\n", static_cast<unsigned long long>(n),
              frames_name.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (std::strcmp(argv[1], "read") != 0 && std::strcmp(argv[1], "write") != 0)) {
    std::fprintf(stderr, "usage: shmlink_vm_region_guest read|write FRAMES ACK N\n");
    return 2;
  }
  try {
    // The first ivshmem device's BAR2 (sysfs resource2, or the UIO map), same_kernel false.
    shmlink::Region region = shmlink::Region::open("ivshmem:");
    const auto n = std::stoull(argv[4]);
    return std::strcmp(argv[1], "read") == 0 ? read_role(region, argv[2], argv[3], n)
                                             : write_role(region, argv[2], argv[3], n);
  } catch (const std::exception& e) {
    std::printf("guest: %s\n", e.what());
    return 2;
  }
}
