// SPDX-License-Identifier: MIT
// The VM harness itself (issue 21): a guest boots, runs its command with its environment, and its
// exit status comes back, zero or not.
#include "guest_vm.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

#define SKIP_WITHOUT_GUESTS()                                                        \
  do {                                                                               \
    if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

// One boot checks both directions of the status: the command's output and environment reach the
// serial log, and a non-zero status (from the shmlink CLI inside the guest) comes back as is.
TEST(GuestVm, RunsTheCommandWithItsEnvironmentAndReturnsItsExitStatus) {
  SKIP_WITHOUT_GUESTS();
  GuestSpec spec;
  spec.name = "boot";
  // Spaces, quotes and a newline survive the trip (the command travels base64-encoded).
  spec.command = "echo \"role is $role, 'quoted' words\"\nshmlink --version || exit 9\nexit $((role_code + 40))";
  spec.env = {{"role", "reader"}, {"role_code", "2"}};
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  EXPECT_EQ(guest->wait(), 42) << guest->log();
  EXPECT_NE(guest->log().find("role is reader, 'quoted' words"), std::string::npos) << guest->log();
  EXPECT_NE(guest->log().find("shmlink 0."), std::string::npos) << guest->log();
}

TEST(GuestVm, ReportsZeroForACommandThatSucceeds) {
  SKIP_WITHOUT_GUESTS();
  GuestSpec spec;
  spec.name = "ok";
  spec.command = "test -r /proc/cpuinfo && test -d /sys/bus/pci/devices && test -x /bin/shmlink";
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  EXPECT_EQ(guest->wait(), 0) << guest->log();
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
