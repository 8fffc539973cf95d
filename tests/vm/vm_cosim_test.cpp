// SPDX-License-Identifier: MIT
// Two QEMU guests co-simulating over one ivshmem region (issue 21): the host creates the region
// file, both guests get an ivshmem-plain device on it, and each runs one side of the cosim example
// (examples/cosim, /bin/shmlink-cosim) with its Interface's queues in the region
// (`--in ivshmem:cosim-load --out ivshmem:cosim-source` and the mirror). The cosim example's check:
// each side reports every step received exactly once at its own step (none lost, duplicated or
// read out of step), and the two trajectories, printed on the guests' consoles, are within the
// example's tolerance of the one-process solution (`shmlink-cosim compare` on the host).
#include "guest_vm.hpp"
#include "test_util.hpp"

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#ifndef COSIM_PATH
#error "COSIM_PATH must name the shmlink-cosim example program"
#endif

namespace {

using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;

constexpr std::size_t kRegionBytes = 1 << 20;  // a power of two, as ivshmem requires
/// Steps of 50 us: past the start-up transient where the coupling error peaks (steps 99, 127).
constexpr int kSteps = 400;

/// The busybox command of one side: run it, print its trajectory between markers, exit with the
/// side's status.
std::string side_command(const char* role, const char* self, const char* other) {
  const std::string csv = std::string("/tmp/") + role + ".csv";
  return std::string("shmlink-cosim side ") + role + " --in ivshmem:cosim-" + other + " --out ivshmem:cosim-" +
         self + " --steps " + std::to_string(kSteps) + " --timeout 45 --trajectory " + csv +
         "\nrc=$?\necho COSIM-CSV-BEGIN\ncat " + csv + "\necho COSIM-CSV-END\nexit $rc";
}

/// The lines between the markers in a guest's console log (carriage returns dropped), or "".
std::string csv_of(const std::string& log) {
  const std::string begin = "COSIM-CSV-BEGIN", end = "COSIM-CSV-END";
  const auto b = log.find(begin);
  if (b == std::string::npos) return {};
  const auto e = log.find(end, b);
  if (e == std::string::npos) return {};
  std::string out;
  for (char c : log.substr(b + begin.size(), e - b - begin.size()))
    if (c != '\r') out += c;
  const auto first = out.find_first_not_of('\n');
  return first == std::string::npos ? std::string() : out.substr(first);
}

TEST(VmCosim, TwoGuestsCoSimulateOverQueuesInOneIvshmemRegion) {
  if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  shmlink::test::TempStreamDir dir;
  const std::string path = dir.path() + "/cosim.region";
  (void)shmlink::Region::create(path, kRegionBytes);

  const auto guest_spec = [&](const char* name, std::string command) {
    GuestSpec spec;
    spec.name = name;
    spec.command = std::move(command);
    spec.plain_path = path;
    spec.plain_size = kRegionBytes;
    spec.timeout = std::chrono::seconds(150);
    return spec;
  };
  auto source = GuestVm::start(guest_spec("cosim-source", side_command("source", "source", "load")));
  ASSERT_TRUE(source) << source.error();
  auto load = GuestVm::start(guest_spec("cosim-load", side_command("load", "load", "source")));
  ASSERT_TRUE(load) << load.error();
  const int source_status = source->wait();
  const int load_status = load->wait();
  ASSERT_EQ(source_status, 0) << "source side:\n" << source->log() << "\nload side:\n" << load->log();
  ASSERT_EQ(load_status, 0) << "load side:\n" << load->log() << "\nsource side:\n" << source->log();

  // Each side's own check, as `shmlink-cosim run` reads it: every step, none lost, duplicated
  // or read out of step.
  const std::string every = "ok; " + std::to_string(kSteps) + " of " + std::to_string(kSteps) +
                            " steps, lost 0, duplicated 0, out of step 0;";
  EXPECT_NE(source->log().find("cosim side source: " + every), std::string::npos) << source->log();
  EXPECT_NE(load->log().find("cosim side load: " + every), std::string::npos) << load->log();

  // The values: both trajectories against the one-process solution, within the tolerance.
  const std::string source_csv = dir.path() + "/source.csv", load_csv = dir.path() + "/load.csv";
  std::ofstream(source_csv) << csv_of(source->log());
  std::ofstream(load_csv) << csv_of(load->log());
  const std::string compare = std::string(COSIM_PATH) + " compare --source " + source_csv + " --load " + load_csv +
                              " --tolerance 0.01";
  const int rc = std::system(compare.c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << compare;
  EXPECT_EQ(WEXITSTATUS(rc), 0) << compare << "\nsource side:\n" << source->log() << "\nload side:\n" << load->log();
}

}  // namespace
