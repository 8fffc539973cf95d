// SPDX-License-Identifier: MIT
// The guests' ivshmem UIO driver (drivers/uio_ivshmem, issue 21): /init loads it, it binds the
// ivshmem-plain device, and Bar::open maps BAR2 through the UIO device's map; with
// ivshmem-doorbell it gives one UIO device per MSI-X vector, and a guest reading vector 1's device
// wakes when a host peer rings it through shmlink's ivshmem server.
#include "guest_vm.hpp"
#include "test_util.hpp"

#include <shmlink/ivshmem_server.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

namespace {

using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

constexpr std::size_t kBarBytes = 1 << 20;  // a power of two, as ivshmem requires

// The start of each guest command: $d is the ivshmem device's sysfs directory, and the guest
// exits with status 10 unless uio_ivshmem is bound to it.
constexpr const char* kRequireDriver =
      "d=/sys/bus/pci/devices/0000:00:02.0\n"
      "drv=$(readlink $d/driver); echo \"driver: $drv\"\n"
      "case \"$drv\" in */uio_ivshmem) ;; *) exit 10 ;; esac\n";

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
  spec.command = std::string(kRequireDriver) +
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

// Two vectors: two UIO devices, versions "vector 0" and "vector 1". The guest blocks in a read of
// vector 1's device; the host joins the server as a peer and rings the guest's vector 1 until the
// guest has finished (a ring before the guest enabled MSI-X or opened the device is lost, so it
// rings again every 20 ms). Without the driver the guest has no driver link (exit 10).
TEST(VmUio, AGuestReadingAVectorsUioDeviceWakesWhenAHostPeerRingsIt) {
  if (auto why = shmlink::testvm::vm_driver_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  namespace iv = shmlink::ivshmem;
  shmlink::test::TempStreamDir dir;
  iv::ServerSpec server_spec;
  server_spec.socket_path = dir.path() + "/ivshmem.sock";
  server_spec.shm_path = dir.path() + "/ivshmem.shm";
  server_spec.bytes = kBarBytes;
  server_spec.vectors = 2;
  iv::Server server = iv::Server::start(server_spec);
  std::thread serving([&server] { server.run(); });
  struct Stop {
    iv::Server& server;
    std::thread& thread;
    ~Stop() {
      server.stop();
      thread.join();
    }
  } stop{server, serving};
  iv::Peer host = iv::Peer::connect(server_spec.socket_path, {.vectors = 2});

  GuestSpec spec;
  spec.name = "uio-doorbell";
  spec.doorbell_socket = server_spec.socket_path;
  spec.vectors = 2;
  spec.timeout = std::chrono::seconds(120);
  spec.command = std::string(kRequireDriver) +
      "v1=\n"
      "for u in $d/uio/uio*; do\n"
      "  echo \"$(basename $u): $(cat $u/version)\"\n"
      "  [ \"$(cat $u/version)\" = 'vector 1' ] && v1=$(basename $u)\n"
      "done\n"
      "[ \"$(ls $d/uio | wc -l)\" = 2 ] || exit 11\n"
      "[ -n \"$v1\" ] && test -c /dev/$v1 || exit 12\n"
      "echo \"waiting on /dev/$v1\"\n"
      "count=$(dd if=/dev/$v1 bs=4 count=1 2>/dev/null | od -An -tu4 | tr -d ' ')\n"
      "echo \"woken by vector 1, interrupt count $count\"\n"
      "[ \"${count:-0}\" -ge 1 ] || exit 13\n";
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  // Bounded by the guest's own timeout: running() does not kill it, wait() below does.
  const auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  while (guest->running() && std::chrono::steady_clock::now() < deadline) {
    (void)host.update(std::chrono::milliseconds(20));  // the guest's join, once QEMU connected
    for (const iv::PeerInfo& peer : host.peers()) {
      if (peer.vectors >= 2) (void)host.ring(peer.id, 1);
    }
  }
  ASSERT_EQ(guest->wait(), 0) << guest->log();
  EXPECT_NE(guest->log().find(": vector 0"), std::string::npos) << guest->log();
  EXPECT_NE(guest->log().find("woken by vector 1"), std::string::npos) << guest->log();
}

}  // namespace
