// SPDX-License-Identifier: MIT
// Streams between the host and a QEMU guest through an ivshmem-plain region (issue 21): the host
// makes a region file, the guest sees it as BAR2 of its ivshmem device (sysfs resource2) and
// attaches the same directory; frames go one way, acknowledgements the other, both polled.
#include "guest_vm.hpp"
#include "test_util.hpp"
#include "vm_frames.hpp"

#include <shmlink/error.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using shmlink::testvm::frame_value;
using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

constexpr std::size_t kRegionBytes = 1 << 20;  // a power of two, as ivshmem requires
constexpr std::uint64_t kFrames = 40;

#define SKIP_WITHOUT_GUESTS()                                                                   \
  do {                                                                                          \
    if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

shmlink::StreamSpec frame_spec() {
  return shmlink::test::spec_of({shmlink::testvm::kFrameWidth, shmlink::testvm::kFrameHeight},
                                shmlink::Dtype::u32);
}

shmlink::StreamSpec ack_spec() { return shmlink::test::spec_of({1}, shmlink::Dtype::u64); }

GuestSpec guest_on(const std::string& region_path, const std::string& name, const std::string& command) {
  GuestSpec spec;
  spec.name = name;
  spec.command = command;
  spec.plain_path = region_path;
  spec.plain_size = kRegionBytes;
  spec.timeout = std::chrono::seconds(120);
  return spec;
}

// Polls (2 ms sleeps: a host spin would take a core from the emulated guest) until `stream`'s
// cnt0 reaches `cnt0`; false when the guest ended first (its log says why; the guest's own
// waits are bounded, and the harness kills it at its timeout).
bool wait_for_cnt0(const shmlink::Stream& stream, std::uint64_t cnt0, GuestVm& guest) {
  while (stream.cnt0() < cnt0) {
    if (!guest.running()) return stream.cnt0() >= cnt0;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// A region file in a private stream directory, holding the acknowledgement stream "ack".
class VmStream : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GUESTS();
    region_ = shmlink::Region::create(path_, kRegionBytes);
    ack_ = region_.create_stream("ack", ack_spec());
  }

  shmlink::test::TempStreamDir dir_;
  const std::string path_ = dir_.path() + "/vm.region";
  shmlink::Region region_;
  shmlink::Stream ack_;
};

// Host writes frame i, the guest checks every element and acknowledges i, N times.
TEST_F(VmStream, HostWritesAStreamAGuestReadsEveryFrame) {
  const std::string& path = path_;
  shmlink::Stream& ack = ack_;
  shmlink::Stream frames = region_.create_stream("frames", frame_spec());

  auto guest = GuestVm::start(
      guest_on(path, "reader", "shmlink_vm_region_guest read frames ack " + std::to_string(kFrames)));
  ASSERT_TRUE(guest) << guest.error();
  std::vector<std::uint32_t> frame(frames.frame_bytes() / sizeof(std::uint32_t));
  std::array<std::uint64_t, 1> seen{};
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    for (std::size_t j = 0; j < frame.size(); ++j) frame[j] = frame_value(i, j);
    ASSERT_TRUE(frames.write(std::span<const std::uint32_t>(frame)));
    ASSERT_TRUE(wait_for_cnt0(ack, i + 1, *guest)) << "no acknowledgement of frame " << i << "\n" << guest->log();
    ASSERT_TRUE(ack.read_copy(std::as_writable_bytes(std::span(seen))));
    ASSERT_EQ(seen[0], i) << guest->log();
  }
  EXPECT_EQ(guest->wait(), 0) << guest->log();
}

// The guest creates a stream in the region and writes frame i, the host checks every element
// and acknowledges i, N times.
TEST_F(VmStream, GuestCreatesAndWritesAStreamTheHostReadsEveryFrame) {
  const std::string& path = path_;
  shmlink::Stream& ack = ack_;
  auto guest = GuestVm::start(
      guest_on(path, "writer", "shmlink_vm_region_guest write frames ack " + std::to_string(kFrames)));
  ASSERT_TRUE(guest) << guest.error();
  std::optional<shmlink::Stream> frames;
  while (!frames) {
    try {
      frames = region_.open_stream("frames");
    } catch (const shmlink::Error& e) {
      ASSERT_TRUE(e.code() == shmlink::Errc::not_found) << e.what();
      ASSERT_TRUE(guest->running()) << "the guest ended before creating its stream\n" << guest->log();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ASSERT_EQ(frames->frame_bytes(), std::size_t{shmlink::testvm::kFrameWidth} * shmlink::testvm::kFrameHeight * 4);
  std::vector<std::uint32_t> frame(frames->frame_bytes() / sizeof(std::uint32_t));
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    ASSERT_TRUE(wait_for_cnt0(*frames, i + 1, *guest)) << "frame " << i << " never came\n" << guest->log();
    shmlink::FrameInfo info;
    ASSERT_TRUE(frames->read_copy(std::as_writable_bytes(std::span(frame)), &info));
    ASSERT_EQ(info.cnt0, i + 1);
    for (std::size_t j = 0; j < frame.size(); ++j) {
      ASSERT_EQ(frame[j], frame_value(i, j)) << "frame " << i << " element " << j;
    }
    const std::array<std::uint64_t, 1> done{i};
    ASSERT_TRUE(ack.write(std::span<const std::uint64_t>(done)));
  }
  EXPECT_EQ(guest->wait(), 0) << guest->log();
}

}  // namespace
