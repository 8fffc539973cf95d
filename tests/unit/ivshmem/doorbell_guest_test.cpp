// SPDX-License-Identifier: MIT
// A guest's doorbell endpoint against a fake sysfs tree (include/shmlink/ivshmem.hpp,
// docs/design/doorbells.md): which UIO device is a vector's, when a guest's region waits on
// doorbells and when it polls (and says why, once), and a guest writer ringing a registered
// waiter through BAR0's Doorbell register. Real interrupts: tests/vm/vm_doorbell_test.cpp.
#include <shmlink/ivshmem.hpp>
#include <shmlink/log.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <mutex>
#include <string>
#include <vector>

#include "fake_sysfs.hpp"
#include "region/region_layout.hpp"
#include "test_util.hpp"

namespace shmlink::test {
namespace {

namespace iv = shmlink::ivshmem;

constexpr std::uint64_t k1M = 1024 * 1024;
constexpr const char* kAddress = "0000:00:02.0";

iv::BarOptions options_of(const FakeSysfs& fs) {
  iv::BarOptions o;
  o.sysfs_root = fs.sysfs();
  o.dev_root = fs.dev();
  return o;
}

/// Collects the library's log messages for the test's lifetime (at info level).
class LogCapture {
 public:
  LogCapture() : old_level_(log_level()) {
    set_log_handler([this](LogLevel, std::string_view m) {
      std::lock_guard lock(mu_);
      messages_.emplace_back(m);
    });
    set_log_level(LogLevel::info);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture() {
    set_log_handler({});
    set_log_level(old_level_);
  }
  /// The messages containing `part`.
  std::vector<std::string> with(const std::string& part) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& m : messages_)
      if (m.find(part) != std::string::npos) out.push_back(m);
    return out;
  }

 private:
  LogLevel old_level_;
  std::mutex mu_;
  std::vector<std::string> messages_;
};

void set_version(const FakeSysfs& fs, const std::string& uio, const std::string& version) {
  FakeSysfs::write(fs.device_dir(kAddress) + "/uio/" + uio + "/version", version + "\n");
}

TEST(IvshmemDoorbell, VectorUioIsTheDeviceWhoseVersionNamesTheVectorInNumericOrder) {
  FakeSysfs fs;
  fs.add_device(kAddress, 64 * 1024, true);
  for (const char* u : {"uio10", "uio2", "uio3"}) fs.add_uio(kAddress, u, 64 * 1024);
  set_version(fs, "uio10", "vector 0");  // first by name, but uio3 comes before uio10
  set_version(fs, "uio2", "vector 1");
  set_version(fs, "uio3", "vector 0");
  auto devices = iv::list_devices(fs.sysfs());
  ASSERT_TRUE(devices && devices->size() == 1);
  EXPECT_EQ(iv::vector_uio(devices->front(), 0), "uio3");
  EXPECT_EQ(iv::vector_uio(devices->front(), 1), "uio2");
  EXPECT_EQ(iv::vector_uio(devices->front(), 5), "");
}

// ivshmem-plain, then ivshmem-doorbell without the driver: the region polls, and each open says
// why in one log line; the property says polling.
TEST(IvshmemDoorbell, AGuestRegionWithoutDoorbellOrDriverPollsAndSaysWhyOnce) {
  for (const bool doorbell : {false, true}) {
    FakeSysfs fs;
    fs.add_device(kAddress, k1M, doorbell, "0x1af4", "0x1110", /*with_resource2=*/false);
    const std::string file = fs.device_dir(kAddress) + "/resource2";
    (void)Region::create(file, k1M);
    LogCapture log;
    const Region r = iv::open_region("ivshmem:", true, options_of(fs));
    EXPECT_EQ(r.wait_mode(), RegionWaitMode::polling);
    const auto said = log.with("waits poll");
    ASSERT_EQ(said.size(), 1U);
    EXPECT_NE(said[0].find("ivshmem:" + std::string(kAddress)), std::string::npos) << said[0];
    EXPECT_NE(said[0].find(doorbell ? "no UIO driver" : "ivshmem-plain"), std::string::npos) << said[0];
  }
}

// The driver is there (a UIO device of vector 0, BAR0 as its map0): the region waits on
// doorbells; a waiter registered for the stream's entry (peer 9, vector 0) is rung by the
// guest's write with one Doorbell register store, and a read-only open polls.
TEST(IvshmemDoorbell, AGuestWriterRingsARegisteredWaiterThroughTheDoorbellRegister) {
  FakeSysfs fs;
  fs.add_device(kAddress, k1M, true, "0x1af4", "0x1110", /*with_resource2=*/false);
  fs.add_uio(kAddress, "uio1", k1M);
  set_version(fs, "uio1", "vector 0");
  const std::string node = fs.dev() + "/uio1";
  FakeSysfs::put_word(node, iv::kRegIvPosition, 4);
  (void)iv::format_region("ivshmem:", {}, false, options_of(fs));
  {
    LogCapture log;
    EXPECT_EQ(iv::open_region("ivshmem:", false, options_of(fs)).wait_mode(), RegionWaitMode::polling);
    EXPECT_EQ(log.with("read-only").size(), 1U);
  }
  Region r = iv::open_region("ivshmem:", true, options_of(fs));
  ASSERT_EQ(r.wait_mode(), RegionWaitMode::doorbell);
  Stream s = r.create_stream("frames", spec_of({4}, Dtype::u32));
  const std::array<std::uint32_t, 4> frame{1, 2, 3, 4};
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(frame)).ok());
  EXPECT_EQ(r.doorbell_stats().rings, 0U);  // nobody waits: no ring
  EXPECT_EQ(FakeSysfs::word_at(node, iv::kRegDoorbell), 0U);
  // A waiter of peer 9 on entry 0 (BAR2 is map1 of the node, one page in).
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::uint64_t word = rlayout::waiter_word(0, 9, 0);
  FakeSysfs::put_word(node, page + static_cast<long>(rlayout::waiters_offset(256)), static_cast<std::uint32_t>(word));
  FakeSysfs::put_word(node, page + static_cast<long>(rlayout::waiters_offset(256)) + 4, static_cast<std::uint32_t>(word >> 32));
  FakeSysfs::put_word(node, page + static_cast<long>(rlayout::waiter_count_offset(256, 0)), 1);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(frame)).ok());
  EXPECT_EQ(r.doorbell_stats().rings, 1U);
  EXPECT_EQ(FakeSysfs::word_at(node, iv::kRegDoorbell), 9U << 16);
}

}  // namespace
}  // namespace shmlink::test
