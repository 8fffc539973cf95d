// SPDX-License-Identifier: MIT
// examples/vm_pingpong in real QEMU guests (issue 21): round trips host <-> guest and guest <->
// guest through a queue pair in one ivshmem region, by polling, with a small count; every round
// must carry the right values (the example checks sequence, round and tag on both sides and
// prints "rounds R of N, wrong W"). The figures are printed, never asserted: under TCG they
// measure QEMU's emulator (the example says so in a guest; vm_uses_kvm() tells which it was).
#include "guest_vm.hpp"
#include "test_util.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <stdio.h>
#include <sys/wait.h>

#include <chrono>
#include <iostream>
#include <string>

#ifndef PINGPONG_PATH
#error "PINGPONG_PATH must name the shmlink-vm-pingpong example program"
#endif

namespace {

using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

constexpr std::size_t kRegionBytes = 1 << 20;  // a power of two, as ivshmem requires
constexpr int kRounds = 200;
const std::string kEvery = "rounds " + std::to_string(kRounds) + " of " + std::to_string(kRounds) + ", wrong 0";

std::string side(const char* role) {
  return std::string("shmlink-vm-pingpong ") + role + " ivshmem: --rounds " + std::to_string(kRounds) + " --timeout 60";
}

GuestSpec guest_on(const std::string& path, const char* name, std::string command) {
  GuestSpec spec;
  spec.name = name;
  spec.command = std::move(command);
  spec.plain_path = path;
  spec.plain_size = kRegionBytes;
  spec.timeout = std::chrono::seconds(150);
  return spec;
}

const char* accel() { return shmlink::testvm::vm_uses_kvm() ? "KVM" : "TCG emulation"; }

class VmPingpong : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    (void)shmlink::Region::create(path_, kRegionBytes);
  }
  shmlink::test::TempStreamDir dir_;
  const std::string path_ = dir_.path() + "/pingpong.region";
};

TEST_F(VmPingpong, HostAndGuestRoundTripsCarryEveryValue) {
  auto guest = GuestVm::start(guest_on(path_, "pong", side("pong")));
  ASSERT_TRUE(guest) << guest.error();
  // The host side: the example itself, on the region's file.
  const std::string ping = std::string(PINGPONG_PATH) + " ping " + path_ + " --rounds " + std::to_string(kRounds) +
                           " --timeout 60 2>&1";
  FILE* out = ::popen(ping.c_str(), "r");
  ASSERT_NE(out, nullptr) << ping;
  std::string host;
  char buf[512];
  while (std::fgets(buf, sizeof buf, out) != nullptr) host += buf;
  const int rc = ::pclose(out);
  ASSERT_EQ(guest->wait(), 0) << "host:\n" << host << "\nguest:\n" << guest->log();
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << host << "\nguest:\n" << guest->log();
  EXPECT_NE(host.find("vm_pingpong ping: " + kEvery + ";"), std::string::npos) << host;
  EXPECT_NE(guest->log().find("vm_pingpong pong: " + kEvery), std::string::npos) << guest->log();
  std::cout << "host <-> guest (" << accel() << "): " << host;
}

TEST_F(VmPingpong, TwoGuestsRoundTripsCarryEveryValue) {
  auto ping = GuestVm::start(guest_on(path_, "ping", side("ping")));
  ASSERT_TRUE(ping) << ping.error();
  auto pong = GuestVm::start(guest_on(path_, "pong", side("pong")));
  ASSERT_TRUE(pong) << pong.error();
  const int ping_status = ping->wait();
  const int pong_status = pong->wait();
  ASSERT_EQ(ping_status, 0) << "ping:\n" << ping->log() << "\npong:\n" << pong->log();
  ASSERT_EQ(pong_status, 0) << "pong:\n" << pong->log() << "\nping:\n" << ping->log();
  const std::string log = ping->log();
  const auto line = log.find("vm_pingpong ping: " + kEvery + ";");
  ASSERT_NE(line, std::string::npos) << log;
  EXPECT_NE(pong->log().find("vm_pingpong pong: " + kEvery), std::string::npos) << pong->log();
  // In a guest the example says its figures are the guest's (emulation under TCG).
  EXPECT_NE(log.find("(in a VM guest: emulation under TCG)", line), std::string::npos) << log;
  std::cout << "guest <-> guest (" << accel() << "): " << log.substr(line, log.find('\n', line) - line) << "\n";
}

}  // namespace
