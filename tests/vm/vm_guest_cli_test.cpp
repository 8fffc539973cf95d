// SPDX-License-Identifier: MIT
// The guest side of ivshmem in a real QEMU guest (issue 21): the host lays out a region in the file
// that backs the guest's ivshmem-plain device and writes a stream; inside the guest, `shmlink ls
// ivshmem:` lists it, `shmlink cat ivshmem:wfs` reads its frame through Region::open("ivshmem:")
// (BAR2 through sysfs resource2), and a stream the guest creates is opened by the host by name.
#include "guest_vm.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace shmlink::test {
namespace {

constexpr std::size_t k1M = 1024 * 1024;

TEST(VmGuestCli, LsCatAndCreateInAGuestWorkOnTheHostsRegion) {
  if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  const std::string path = "/dev/shm/shmlink-vm-guest-cli-" + std::to_string(::getpid()) + ".region";
  Region host = Region::create(path, k1M, OpenMode::PurgeAndCreate);
  Stream wfs = host.create_stream("wfs", spec_of({3}, Dtype::i32));
  const std::vector<std::int32_t> frame = {5, 6, 7};
  ASSERT_TRUE(wfs.write(std::span<const std::int32_t>(frame)).ok());

  testvm::GuestSpec spec;
  spec.name = "guest-cli";
  spec.plain_path = path;
  spec.plain_size = k1M;
  spec.command =
      "shmlink ls ivshmem: --interval 0 > /tmp/ls.txt 2>&1; cat /tmp/ls.txt\n"
      "grep -q 'ivshmem:.*:wfs' /tmp/ls.txt || exit 3\n"
      "shmlink cat ivshmem:wfs --npy /tmp/wfs.npy || exit 4\n"
      "tail -c 12 /tmp/wfs.npy | od -An -tu4 | tee /tmp/v.txt\n"
      "grep -q '5 *6 *7' /tmp/v.txt || exit 5\n"
      "shmlink create ivshmem:fromguest --shape 2 --dtype f32 || exit 6";
  auto guest = testvm::GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  EXPECT_EQ(guest->wait(), 0) << guest->log();
  EXPECT_NO_THROW((void)host.open_stream("fromguest"));
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

}  // namespace
}  // namespace shmlink::test
