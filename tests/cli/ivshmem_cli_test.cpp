// SPDX-License-Identifier: MIT
// `shmlink` in a VM guest, against a fake sysfs tree (SHMLINK_SYSFS_ROOT): ls, info, cat, create
// and region create with `ivshmem:` locators, on a region a "host" laid out in the file the guest
// sees as the device's resource2 (the same bytes, as QEMU's memory-backend-file shares them).
#include <shmlink/region.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <array>
#include <fstream>
#include <cstdio>
#include <string>
#include <vector>

#include "fake_sysfs.hpp"
#include "test_util.hpp"

namespace shmlink::test {
namespace {

constexpr std::uint64_t k1M = 1024 * 1024;

struct CliRun {
  int code = -1;
  std::string out;  ///< stdout and stderr
};

/// Runs the CLI with `args` (no shell quoting needed: the tests' arguments have no spaces).
CliRun shmlink_cli(const std::string& args) {
  CliRun r;
  const std::string cmd = std::string(SHMLINK_CLI_PATH) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class IvshmemCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("SHMLINK_SYSFS_ROOT", fs_.sysfs().c_str(), 1);
    ::setenv("NO_COLOR", "1", 1);
  }
  void TearDown() override { ::unsetenv("SHMLINK_SYSFS_ROOT"); }
  TempStreamDir dir_;  // the guest's own stream directory stays empty
  FakeSysfs fs_;
};

TEST_F(IvshmemCli, LsInfoCatCreateAndRegionCreateWorkOnTheDevicesRegion) {
  fs_.add_device("0000:00:02.0", k1M, false, "0x1af4", "0x1110", /*with_resource2=*/false);
  const std::string file = fs_.device_dir("0000:00:02.0") + "/resource2";
  {
    Region host = Region::create(file, k1M);  // the host's backing file, as the guest's BAR2
    Stream s = host.create_stream("wfs", spec_of({3}, Dtype::i32));
    const std::vector<std::int32_t> frame = {5, 6, 7};
    ASSERT_TRUE(s.write(std::span<const std::int32_t>(frame)).ok());
    QueueSpec q;
    q.capacity = 8;
    q.max_values = 2;
    (void)host.create_queue("cmd", q);
  }
  CliRun r = shmlink_cli("ls ivshmem: --interval 0 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.at("streams").size(), 1u) << r.out;
  EXPECT_EQ(j.at("streams").at(0).at("name"), "ivshmem:0000:00:02.0:wfs");
  EXPECT_EQ(j.at("streams").at(0).at("cnt0"), 1);
  ASSERT_EQ(j.at("queues").size(), 1u) << r.out;
  EXPECT_EQ(j.at("queues").at(0).at("name"), "ivshmem:0000:00:02.0:cmd");
  EXPECT_TRUE(j.at("villas").empty());
  r = shmlink_cli("ls ivshmem:00:02.0 --interval 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ivshmem:0000:00:02.0:wfs"), std::string::npos) << r.out;

  r = shmlink_cli("info ivshmem:wfs --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("wfs"), std::string::npos) << r.out;
  const std::string npy = dir_.path() + "/wfs.npy";
  r = shmlink_cli("cat ivshmem:0000:00:02.0:wfs --npy " + npy);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(npy));

  r = shmlink_cli("create ivshmem:result --shape 4x4 --dtype f32");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NO_THROW((void)Region::open(file, false).open_stream("result"));  // the host opens it by name
  EXPECT_EQ(dir_.entries(), 1);  // only wfs.npy: nothing went to the guest's stream directory

  // The region is there: region create never formats over it.
  r = shmlink_cli("region create ivshmem:");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("open it instead"), std::string::npos) << r.out;
  EXPECT_EQ(Region::open(file, false).entries().size(), 3u);
  // A second, fresh device: formatted, then listed empty.
  fs_.add_device("0000:00:03.0", k1M);
  r = shmlink_cli("region create ivshmem:0000:00:03.0 --size 1M");
  EXPECT_EQ(r.code, 2) << r.out;  // the device's memory has its own size
  r = shmlink_cli("region create ivshmem:0000:00:03.0");
  ASSERT_EQ(r.code, 0) << r.out;
  r = shmlink_cli("ls ivshmem:0000:00:03.0 --interval 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("no streams or queues in ivshmem:0000:00:03.0"), std::string::npos) << r.out;
}

/// Creates, in a child process that then exits (its pid is dead on this kernel), the stream "wfs"
/// and the queue "cmd" in a new region at `file`.
void create_channels_in_a_child(const std::string& file) {
  const pid_t creator = spawn([&file] {
    Region r = Region::create(file, k1M);
    (void)r.create_stream("wfs", spec_of({2}, Dtype::u8));
    QueueSpec q;
    q.capacity = 8;
    q.max_values = 2;
    (void)r.create_queue("cmd", q);
    return 0;
  });
  ASSERT_EQ(reap(creator), 0);
}

/// Expects `ls`, `info` (text and --json) on the channels "wfs" and "cmd" of region `where` to
/// show their creator's pid as another kernel's: "(other kernel?)", never "(dead)", and null
/// liveness in JSON.
void expect_pids_not_judged(const std::string& where, const std::string& ls_args) {
  CliRun r = shmlink_cli("ls " + ls_args + " --interval 0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("(dead)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(other kernel?)"), std::string::npos) << r.out;
  r = shmlink_cli("ls " + ls_args + " --interval 0 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.at("streams").size(), 1u) << r.out;
  EXPECT_TRUE(j.at("streams").at(0).at("writer_alive").is_null()) << r.out;
  ASSERT_EQ(j.at("queues").size(), 1u) << r.out;
  EXPECT_TRUE(j.at("queues").at(0).at("creator_alive").is_null()) << r.out;
  for (const std::string& channel : {where + ":wfs", where + ":cmd"}) {
    r = shmlink_cli("info " + channel);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find("(dead)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(other kernel?)"), std::string::npos) << r.out;
  }
  r = shmlink_cli("info " + where + ":wfs --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(nlohmann::json::parse(r.out).at("writer_alive").is_null()) << r.out;
}

TEST_F(IvshmemCli, PidsInARegionAnotherKernelFormattedAreNotCalledDead) {
  const std::string file = dir_.path() + "/vm.region.shm";
  create_channels_in_a_child(file);
  // Formatted by this kernel: the creator's pid is judged here, and it is dead.
  CliRun r = shmlink_cli("info " + file + ":wfs");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(dead)"), std::string::npos) << r.out;
  // The same region as another kernel (a VM) formatted it: its boot_id (directory offset 64) is
  // not ours, so its pids may be that kernel's processes.
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    std::array<char, 16> boot{};
    f.seekg(64);
    f.read(boot.data(), boot.size());
    for (char& c : boot) c = static_cast<char>(~c);
    f.seekp(64);
    f.write(boot.data(), boot.size());
    ASSERT_TRUE(f.good());
  }
  ASSERT_FALSE(Region::open(file, false).created_by_this_kernel());
  expect_pids_not_judged(file, "");
}

TEST_F(IvshmemCli, PidsInAGuestsDeviceRegionAreNotCalledDead) {
  fs_.add_device("0000:00:02.0", k1M, false, "0x1af4", "0x1110", /*with_resource2=*/false);
  create_channels_in_a_child(fs_.device_dir("0000:00:02.0") + "/resource2");
  expect_pids_not_judged("ivshmem:0000:00:02.0", "ivshmem:");
}

TEST_F(IvshmemCli, AGuestWithoutTheDeviceOrARegionGetsExitCodesNamingIt) {
  CliRun r = shmlink_cli("ls ivshmem:");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("no ivshmem device"), std::string::npos) << r.out;
  fs_.add_device("0000:00:02.0", k1M);  // zeroed memory: nobody formatted it
  r = shmlink_cli("info ivshmem:wfs");
  EXPECT_EQ(r.code, 5) << r.out;
  EXPECT_NE(r.out.find("ivshmem:0000:00:02.0"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace shmlink::test
