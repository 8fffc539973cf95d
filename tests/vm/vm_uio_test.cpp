// SPDX-License-Identifier: MIT
// The guests' ivshmem UIO driver (drivers/uio_ivshmem, issue 21): /init loads it, it binds the
// ivshmem-plain device, and Bar::open maps BAR2 through the UIO device's map.
#include "guest_vm.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

namespace {

using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

constexpr std::size_t kBarBytes = 1 << 20;  // a power of two, as ivshmem requires

// Without the driver the device has no driver link (exit 10) and no /dev/uio0 (11). The test
// hides sysfs resource2 under /dev/null, so Bar::open cannot fall back to it: the mapping it
// returns comes from the UIO map (map1 = BAR2).
TEST(VmUio, DriverBindsThePlainDeviceAndBarOpenMapsBar2ThroughUio) {
  if (auto why = shmlink::testvm::vm_driver_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  shmlink::test::TempStreamDir dir;
  const std::string path = dir.path() + "/uio.bar2";
  const std::string text = "host-wrote-" + std::to_string(::getpid());
  const std::string reply = "guest-replied";
  {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ASSERT_EQ(::ftruncate(fd, kBarBytes), 0);
    ASSERT_EQ(::pwrite(fd, text.data(), text.size(), 0), static_cast<ssize_t>(text.size()));
    ASSERT_EQ(::pwrite(fd, text.data(), text.size(), static_cast<off_t>(kBarBytes - text.size())),
              static_cast<ssize_t>(text.size()));
    ::close(fd);
  }
  GuestSpec spec;
  spec.name = "uio-plain";
  spec.plain_path = path;
  spec.plain_size = kBarBytes;
  spec.timeout = std::chrono::seconds(120);
  spec.env = {{"text", text}, {"reply", reply}};
  spec.command =
      "d=/sys/bus/pci/devices/0000:00:02.0\n"
      "drv=$(readlink $d/driver); echo \"driver: $drv\"\n"
      "case \"$drv\" in */uio_ivshmem) ;; *) exit 10 ;; esac\n"
      "test -c /dev/uio0 || exit 11\n"
      "echo \"uio0: $(cat /sys/class/uio/uio0/name), $(cat /sys/class/uio/uio0/version)\"\n"
      "test \"$(cat /sys/class/uio/uio0/maps/map1/size)\" = 0x0000000000100000 || exit 12\n"
      "mount --bind /dev/null $d/resource2 || exit 13\n"
      "shmlink_vm_bar_guest \"$text\" \"$reply\" || exit $((20 + $?))\n";
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  ASSERT_EQ(guest->wait(), 0) << guest->log();
  EXPECT_NE(guest->log().find("uio0: uio_ivshmem, no interrupts"), std::string::npos) << guest->log();
  std::string got(reply.size(), '\0');
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, got.data(), got.size(), 4096), static_cast<ssize_t>(got.size()));
  ::close(fd);
  EXPECT_EQ(got, reply);
}

}  // namespace
