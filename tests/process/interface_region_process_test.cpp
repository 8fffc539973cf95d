// SPDX-License-Identifier: MIT
// The duplex Interface with both queues in a region (InterfaceSpec out/in "PATH:NAME"; issue 21:
// two VM guests co-simulating over one ivshmem region): the queues are entries of the region, not
// files; a forked echo peer exchanges every sample in lockstep and reads shut_down when this side
// closes; both entries are gone after both close; a peer of this kernel killed mid-run is seen
// gone by its pid. Once with a region of this kernel, once with a
// region formatted as shared with other kernels (what a guest's ivshmem BAR2 is: no futex, no
// pid, so the waits poll and a clean close is told by the shut output alone).
#include "interface_helpers.hpp"

#include <shmlink/interface.hpp>
#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

constexpr std::size_t kRegionBytes = 1 << 20;
constexpr int kSteps = 200;

/// A region file at `path` whose directory says whether only this kernel uses it.
void make_region(const std::string& path, bool same_kernel) {
  if (same_kernel) {
    (void)Region::create(path, kRegionBytes);
    return;
  }
  // As an ivshmem server formats the memory its guests share: the directory records other kernels.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, kRegionBytes), 0);
  void* p = ::mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(p, MAP_FAILED);
  std::shared_ptr<void> owner(p, [](void* q) { ::munmap(q, kRegionBytes); });
  (void)Region::format({static_cast<std::byte*>(p), kRegionBytes}, owner, path, false);
}

InterfaceSpec region_side(const std::string& region, const char* out, const char* in) {
  InterfaceSpec s;
  s.out = region + ":" + out;
  s.in = region + ":" + in;
  s.wait = WaitMode::hybrid;
  s.capacity = 16;
  s.attach_timeout = 10s;
  return s;
}

class InterfaceRegion : public ::testing::TestWithParam<bool> {
 protected:
  test::TempStreamDir dir;
};

TEST_P(InterfaceRegion, ForkedPeersExchangeEveryStepThroughQueuesInTheRegion) {
  const bool same_kernel = GetParam();
  const std::string path = dir.path() + "/cosim.region";
  ASSERT_NO_FATAL_FAILURE(make_region(path, same_kernel));

  const pid_t child = test::spawn_tied([&] {
    Interface peer = test::make_side(region_side(path, "b", "a"), false);
    peer.open();
    return test::echo(peer);  // 0 once this side closed (shut_down after the last sample)
  });
  {
    Interface side = test::make_side(region_side(path, "a", "b"), true);
    side.open();
    // The queues are the region's entries "a" and "b", not files named "PATH:a".
    EXPECT_EQ(side.out_queue().path(), path + ":a");
    EXPECT_EQ(side.in_queue().path(), path + ":b");
    EXPECT_FALSE(std::filesystem::exists(path + ":a"));
    EXPECT_FALSE(std::filesystem::exists(path + ":b"));
    Region region = Region::open(path);
    EXPECT_EQ(region.same_kernel(), same_kernel);
    EXPECT_EQ(region.entries().size(), 2U);
    ASSERT_NO_FATAL_FAILURE(test::exchange(side, kSteps));
    side.close();
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the echo peer's read after this side closed (10 + |Errc|)";
  // Each side's close removed its own output entry: the names are free (an entry still
  // `removing` gives its bytes back at the region's next create or remove).
  for (const RegionEntry& e : Region::open(path).entries())
    EXPECT_EQ(e.state, EntryState::removing) << "entry '" << e.name << "'";
}

INSTANTIATE_TEST_SUITE_P(Kernels, InterfaceRegion, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? "ThisKernel" : "SharedWithOtherKernels";
                         });

// A peer of this kernel that dies without closing: its entry's owner is a local process, so the
// other side sees it gone by its pid (peer_exited) instead of waiting out its timeout.
TEST(InterfaceRegionLiveness, APeerOfThisKernelKilledMidRunGivesPeerExited) {
  test::TempStreamDir dir;
  const std::string path = dir.path() + "/cosim.region";
  ASSERT_NO_FATAL_FAILURE(make_region(path, true));
  // The peer is a grandchild, reaped by its parent at once: a zombie child of ours would still
  // count as alive by its pid.
  const pid_t child = test::spawn_tied([&] {
    const pid_t peer_pid = test::spawn_tied([&] {
      Interface peer = test::make_side(region_side(path, "b", "a"), false);
      peer.open();
      return test::echo(peer, 5);  // SIGKILLs itself before its 6th read
    });
    int peer_status = 0;
    if (::waitpid(peer_pid, &peer_status, 0) != peer_pid) return 3;
    return WIFSIGNALED(peer_status) && WTERMSIG(peer_status) == SIGKILL ? 0 : 4;
  });
  Interface side = test::make_side(region_side(path, "a", "b"), true);
  side.open();
  Sample s;
  Status st = Errc::ok;
  for (int k = 0; k < 10 && st.ok(); ++k) {
    const SignalValue x = SignalValue::of(static_cast<double>(k));
    st = side.write(std::span(&x, 1), 5s);
    if (st.ok()) st = side.read(s, 5s);
  }
  EXPECT_EQ(st, Status(Errc::peer_exited)) << side.peer().describe();
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the peer was not killed as planned: " << status;
}

TEST(InterfaceRegionSpec, QueuesInTwoRegionsAreRefused) {
  test::TempStreamDir dir;
  InterfaceSpec s;
  s.out = dir.path() + "/one.region:a";
  s.in = "b";
  Interface i(s);
  try {
    i.open();
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::invalid_argument) << e.what();
    EXPECT_NE(std::string(e.what()).find("same region"), std::string::npos) << e.what();
  }
}

}  // namespace
