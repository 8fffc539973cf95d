// SPDX-License-Identifier: MIT
// The VM harness itself (issue 21): a guest boots, runs its command with its environment, and its
// exit status comes back, zero or not.
#include "guest_vm.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace {

using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

#define SKIP_WITHOUT_GUESTS()                                                        \
  do {                                                                               \
    if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

// The command's output and environment reach the serial log, and its non-zero status comes back
// as is (status 0 comes back in every VmStream test: one boot fewer for the suite).
TEST(GuestVm, RunsTheCommandWithItsEnvironmentAndReturnsItsExitStatus) {
  SKIP_WITHOUT_GUESTS();
  GuestSpec spec;
  spec.name = "boot";
  // Spaces, quotes and a newline survive the trip (the command travels base64-encoded).
  spec.command =
      "echo \"role is $role, 'quoted' words\"\n"
      "test -r /proc/cpuinfo && test -d /sys/bus/pci/devices && test -d /dev/shm || exit 8\n"
      "shmlink --version || exit 9\n"
      "exit $((role_code + 40))";
  spec.env = {{"role", "reader"}, {"role_code", "2"}};
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  EXPECT_EQ(guest->wait(), 42) << guest->log();
  EXPECT_NE(guest->log().find("role is reader, 'quoted' words"), std::string::npos) << guest->log();
  EXPECT_NE(guest->log().find("shmlink 0."), std::string::npos) << guest->log();
}

// The harness's hard limit: a guest that does not finish is killed at its timeout, and wait()
// says -1 with the reason in the log (1 s: QEMU is killed while the kernel still boots).
TEST(GuestVm, KillsAGuestAtItsTimeoutAndSaysSo) {
  SKIP_WITHOUT_GUESTS();
  GuestSpec spec;
  spec.name = "hangs";
  spec.command = "sleep 600";
  spec.timeout = std::chrono::seconds(1);
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  EXPECT_EQ(guest->wait(), -1) << guest->log();
  EXPECT_FALSE(guest->running());
  EXPECT_NE(guest->log().find("killed at its timeout of 1 s"), std::string::npos) << guest->log();
  EXPECT_EQ(guest->wait(), -1);  // asking again gives the same answer
}

TEST(GuestVm, RejectsEnvironmentWordsTheKernelCannotCarry) {
  GuestSpec spec;
  spec.command = "true";
  spec.env = {{"key", "two words"}};
  auto guest = GuestVm::start(spec);
  ASSERT_FALSE(guest);
  if (shmlink::testvm::vm_unavailable_reason().empty()) {
    EXPECT_NE(guest.error().find("env value of 'key'"), std::string::npos) << guest.error();
  }
}

}  // namespace
