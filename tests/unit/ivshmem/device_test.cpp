// SPDX-License-Identifier: MIT
// The guest side of ivshmem against a fake sysfs tree (include/shmlink/ivshmem.hpp): discovery,
// locators, BAR mappings and registers, the region in BAR2, and hostile sysfs files.
#include <shmlink/ivshmem.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "fake_sysfs.hpp"
#include "ivshmem/device_internal.hpp"
#include "test_util.hpp"

namespace shmlink::test {
namespace {

namespace iv = shmlink::ivshmem;

constexpr std::uint64_t k1M = 1024 * 1024;

iv::BarOptions options_of(const FakeSysfs& fs, bool writable = true) {
  iv::BarOptions o;
  o.sysfs_root = fs.sysfs();
  o.dev_root = fs.dev();
  o.writable = writable;
  return o;
}

/// Sets an environment variable for the test's lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(IvshmemDevices, ListsOnlyIvshmemFunctionsWithBar2SizeDoorbellAndUio) {
  FakeSysfs fs;
  fs.add_device("0000:00:01.0", 4096, false, "0x8086", "0x7000");  // a bridge: not ours
  fs.add_device("0000:00:03.0", 2 * k1M, true);                    // ivshmem-doorbell
  fs.add_device("0000:00:02.0", k1M, false);                       // ivshmem-plain
  fs.add_uio("0000:00:03.0", "uio0", 2 * k1M);
  std::filesystem::create_directories(fs.sysfs() + "/bus/pci/devices/not-an-address");
  const auto devices = iv::list_devices(fs.sysfs());
  ASSERT_TRUE(devices) << devices.error().what();
  ASSERT_EQ(devices->size(), 2u);
  EXPECT_EQ((*devices)[0].address, "0000:00:02.0");
  EXPECT_EQ((*devices)[0].sysfs_path, fs.device_dir("0000:00:02.0"));
  EXPECT_EQ((*devices)[0].bar2_bytes, k1M);
  EXPECT_FALSE((*devices)[0].doorbell);
  EXPECT_EQ((*devices)[0].uio, "");
  EXPECT_EQ((*devices)[1].address, "0000:00:03.0");
  EXPECT_EQ((*devices)[1].bar2_bytes, 2 * k1M);
  EXPECT_TRUE((*devices)[1].doorbell);
  EXPECT_EQ((*devices)[1].uio, "uio0");
}

TEST(IvshmemDevices, TheUioDeviceIsTheLowestNumberComparedAsANumber) {
  // uio_ivshmem makes one UIO device per MSI-X vector; uio10 sorts before uio2 as text, not as a
  // number. Found through $SHMLINK_SYSFS_ROOT, as a guest's tools find it.
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", k1M, true);
  for (const char* uio : {"uio10", "uio2", "uio11"}) fs.add_uio("0000:00:02.0", uio, k1M);
  std::filesystem::create_directories(fs.device_dir("0000:00:02.0") + "/uio/uiox");   // not a UIO name
  std::filesystem::create_directories(fs.device_dir("0000:00:02.0") + "/uio/uio1a");  // nor this
  const ScopedEnv sysfs("SHMLINK_SYSFS_ROOT", fs.sysfs());
  const auto devices = iv::list_devices();
  ASSERT_TRUE(devices) << devices.error().what();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].uio, "uio2");
}

TEST(IvshmemDevices, NoSysfsIsNotFoundNamingTheDirectory) {
  const auto devices = iv::list_devices("/nonexistent-sysfs");
  ASSERT_FALSE(devices);
  EXPECT_EQ(devices.error().errc(), Errc::not_found);
  EXPECT_NE(std::string(devices.error().what()).find("/nonexistent-sysfs/bus/pci/devices"), std::string::npos);
}

TEST(IvshmemDevices, MalformedResourceFilesAreLayoutErrorsNamingTheFile) {
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", k1M);
  const std::string file = fs.device_dir("0000:00:02.0") + "/resource";
  const std::vector<std::string> bad = {
      "",                                                        // empty
      "0x0 0x0 0x0\n0x0 0x0 0x0\n",                              // two lines: no BAR2
      "0x0 0x0 0x0\n0x0 0x0 0x0\n0xzz 0x1 0x0\n",                // not hexadecimal
      "0x0 0x0 0x0\n0x0 0x0 0x0\n0x2000 0x1000 0x0\n",           // ends before it starts
      "0x0 0x0 0x0\n0x0 0x0 0x0\n0x1000 0x1fff\n",               // two numbers
      "0x0 0x0 0x0\n0x0 0x0 0x0\n0x1000 0x1fff 0x0 0x5\n",       // four numbers
      "0x0 0x0 0x0\n0x0 0x0 0x0\n0x11112222333344445 0x1 0x0\n",  // 17 digits
      std::string(5000, '0'),                                    // longer than an attribute
  };
  for (const std::string& text : bad) {
    FakeSysfs::write(file, text);
    const auto devices = iv::list_devices(fs.sysfs());
    ASSERT_FALSE(devices) << "accepted: " << text.substr(0, 80);
    EXPECT_EQ(devices.error().errc(), Errc::layout) << devices.error().what();
    EXPECT_NE(std::string(devices.error().what()).find(file), std::string::npos) << devices.error().what();
  }
}

// Fuzz-ish: random bytes (and random mutations of a good table) in the resource file never crash
// and never give a device with a BAR2 the bytes do not describe; failures name the file.
TEST(IvshmemDevices, GarbageInTheResourceFileIsAClearErrorNotACrash) {
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", k1M);
  const std::string file = fs.device_dir("0000:00:02.0") + "/resource";
  const std::string good = FakeSysfs::resource_table(k1M, false);
  std::mt19937 rng(20211);
  int errors = 0;
  for (int round = 0; round < 300; ++round) {
    std::string text = good;
    if (round % 2 == 0) {
      text.resize(rng() % 900);
      for (char& c : text) c = static_cast<char>(rng());
    } else {
      for (int k = 0; k < 3; ++k) text[rng() % text.size()] = static_cast<char>(rng());
    }
    FakeSysfs::write(file, text);
    const auto devices = iv::list_devices(fs.sysfs());
    if (devices) {
      for (const iv::Device& d : *devices) EXPECT_EQ(d.address, "0000:00:02.0");
      continue;
    }
    ++errors;
    EXPECT_EQ(devices.error().errc(), Errc::layout);
    EXPECT_NE(std::string(devices.error().what()).find(file), std::string::npos) << devices.error().what();
  }
  EXPECT_GT(errors, 150);  // random bytes are (nearly) never a resource table
}

TEST(IvshmemLocator, ParsesFirstDeviceDevicesAndChannelNames) {
  struct Case {
    const char* text;
    const char* device;
    const char* name;
  };
  for (const Case& c : {Case{"ivshmem:", "", ""}, Case{"ivshmem:wfs", "", "wfs"},
                        Case{"ivshmem:0000:00:02.0", "0000:00:02.0", ""},
                        Case{"ivshmem:0000:00:1F.7:cmd", "0000:00:1f.7", "cmd"},
                        Case{"ivshmem:00:04.0", "0000:00:04.0", ""}, Case{"ivshmem:00:04.0:a.b", "0000:00:04.0", "a.b"}}) {
    const auto parsed = iv::parse_locator(c.text);
    ASSERT_TRUE(parsed) << c.text;
    ASSERT_TRUE(*parsed) << c.text << ": " << parsed->error().what();
    EXPECT_EQ((*parsed)->device, c.device) << c.text;
    EXPECT_EQ((*parsed)->name, c.name) << c.text;
  }
  EXPECT_FALSE(iv::parse_locator("/dev/shm/x.region.shm"));
  EXPECT_FALSE(iv::parse_locator("ivshmem"));
  for (const char* bad : {"ivshmem:0000:00:02.0:", "ivshmem:a/b", "ivshmem:00:02.0x", "ivshmem:0000:00:02.8:x"}) {
    const auto parsed = iv::parse_locator(bad);
    ASSERT_TRUE(parsed) << bad;
    ASSERT_FALSE(*parsed) << bad;
    EXPECT_EQ(parsed->error().errc(), Errc::invalid_argument);
    EXPECT_NE(std::string(parsed->error().what()).find(bad), std::string::npos) << parsed->error().what();
  }
  // The region locator splitter takes them too: the device's region, then the channel.
  const auto a = split_region_locator("ivshmem:wfs");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "ivshmem:");
  EXPECT_EQ(a->second, "wfs");
  const auto b = split_region_locator("ivshmem:00:02.0:wfs");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "ivshmem:0000:00:02.0");
  EXPECT_EQ(b->second, "wfs");
  EXPECT_FALSE(split_region_locator("ivshmem:"));
  EXPECT_FALSE(split_region_locator("ivshmem:0000:00:02.0"));
  EXPECT_EQ(region_path("ivshmem:"), "ivshmem:");
}

TEST(IvshmemBar, MapsBar2AndTheRegistersReadsIvPositionAndRingsTheDoorbell) {
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", 64 * 1024);
  fs.add_device("0000:00:05.0", 128 * 1024, true);
  const std::string dir = fs.device_dir("0000:00:05.0");
  FakeSysfs::put_word(dir + "/resource0", iv::kRegIvPosition, 7);
  auto bar = iv::Bar::open("ivshmem:0000:00:05.0", options_of(fs));
  ASSERT_TRUE(bar) << bar.error().what();
  EXPECT_EQ(bar->device().address, "0000:00:05.0");
  EXPECT_TRUE(bar->device().doorbell);
  ASSERT_EQ(bar->memory().size(), 128 * 1024u);
  EXPECT_EQ(bar->iv_position(), 7);
  bar->ring(3, 1);
  EXPECT_EQ(FakeSysfs::word_at(dir + "/resource0", iv::kRegDoorbell), 3u << 16 | 1u);
  std::memcpy(bar->memory().data() + 4096, "host", 4);  // shared: the file sees it
  EXPECT_EQ(FakeSysfs::word_at(dir + "/resource2", 4096), 0x74736f68u);
  // "ivshmem:" is the first device by address.
  auto first = iv::Bar::open("ivshmem:", options_of(fs));
  ASSERT_TRUE(first) << first.error().what();
  EXPECT_EQ(first->device().address, "0000:00:02.0");
  EXPECT_EQ(first->iv_position(), 0);
}

TEST(IvshmemBar, MapsBar2ThroughTheUioDeviceWhenADriverIsBound) {
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", 64 * 1024, true, "0x1af4", "0x1110", /*with_resource2=*/false);
  fs.add_uio("0000:00:02.0", "uio1", 64 * 1024);
  const long page = ::sysconf(_SC_PAGESIZE);
  FakeSysfs::put_word(fs.dev() + "/uio1", page + 16, 0xfeedbeef);  // map1 (BAR2) starts one page in
  auto bar = iv::Bar::open("ivshmem:", options_of(fs));
  ASSERT_TRUE(bar) << bar.error().what();
  EXPECT_EQ(bar->device().uio, "uio1");
  ASSERT_EQ(bar->memory().size(), 64 * 1024u);
  std::uint32_t v = 0;
  std::memcpy(&v, bar->memory().data() + 16, 4);
  EXPECT_EQ(v, 0xfeedbeefu);
  bar->ring(1, 0);  // BAR0 is map0 of the same node
  EXPECT_EQ(FakeSysfs::word_at(fs.dev() + "/uio1", iv::kRegDoorbell), 1u << 16);
}

TEST(IvshmemBar, ErrorsNameTheDeviceAndWhatFailed) {
  FakeSysfs fs;
  auto none = iv::Bar::open("ivshmem:", options_of(fs));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().errc(), Errc::not_found);
  EXPECT_NE(std::string(none.error().what()).find("no ivshmem device"), std::string::npos) << none.error().what();
  fs.add_device("0000:00:02.0", k1M);
  auto other = iv::Bar::open("ivshmem:0000:00:09.0", options_of(fs));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().errc(), Errc::not_found);
  EXPECT_NE(std::string(other.error().what()).find("0000:00:02.0"), std::string::npos) << other.error().what();
  // resource2 of another size than the table says: layout, naming the file.
  FakeSysfs::sized(fs.device_dir("0000:00:02.0") + "/resource2", 4096);
  auto sized = iv::Bar::open("ivshmem:", options_of(fs));
  ASSERT_FALSE(sized);
  EXPECT_EQ(sized.error().errc(), Errc::layout);
  EXPECT_NE(std::string(sized.error().what()).find("ivshmem device 0000:00:02.0"), std::string::npos);
  EXPECT_NE(std::string(sized.error().what()).find("/resource2"), std::string::npos) << sized.error().what();
  // No resource2 at all (a device whose BAR2 sysfs does not offer).
  std::filesystem::remove(fs.device_dir("0000:00:02.0") + "/resource2");
  auto missing = iv::Bar::open("ivshmem:", options_of(fs));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errc(), Errc::not_found);
  EXPECT_NE(std::string(missing.error().what()).find("opening " + fs.device_dir("0000:00:02.0") + "/resource2"),
            std::string::npos)
      << missing.error().what();
  auto bad = iv::Bar::open("wfs", options_of(fs));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().errc(), Errc::invalid_argument);
}

/// A "host" process lays a region out in the file a guest sees as resource2 (the same bytes, as
/// QEMU's memory-backend-file shares them) and writes a stream frame; the guest side opens it
/// through Region::open("ivshmem:...") and reads the frame, and what the guest creates the host
/// opens by name.
TEST(IvshmemRegion, AGuestOpensTheHostsRegionThroughResource2) {
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", k1M, false, "0x1af4", "0x1110", /*with_resource2=*/false);
  const std::string file = fs.device_dir("0000:00:02.0") + "/resource2";
  const pid_t host = spawn([&] {
    Region r = Region::create(file, k1M);
    Stream s = r.create_stream("wfs", spec_of({4, 2}, Dtype::u16));
    const std::vector<std::uint16_t> frame = {1, 2, 3, 4, 5, 6, 7, 8};
    return s.write(std::span<const std::uint16_t>(frame)).ok() ? 0 : 1;
  });
  ASSERT_EQ(reap(host), 0);
  const ScopedEnv sysfs("SHMLINK_SYSFS_ROOT", fs.sysfs());
  Region guest = Region::open("ivshmem:");
  EXPECT_EQ(guest.path(), "ivshmem:0000:00:02.0");
  EXPECT_FALSE(guest.same_kernel());
  EXPECT_EQ(guest.size(), k1M);
  Stream s = guest.open_stream("wfs");
  EXPECT_EQ(s.path(), "ivshmem:0000:00:02.0:wfs");
  std::vector<std::uint16_t> got(8);
  ASSERT_TRUE(s.read_copy(std::as_writable_bytes(std::span<std::uint16_t>(got))).ok());
  EXPECT_EQ(got, (std::vector<std::uint16_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  (void)guest.create_stream("fromguest", spec_of({2}, Dtype::f32));
  Region on_host = Region::open(file, false);
  OpenOptions read_only;
  read_only.writable = false;
  EXPECT_NO_THROW((void)on_host.open_stream("fromguest", read_only));
  // Read-only: the directory lists, nothing changes.
  const Region ro = Region::open("ivshmem:0000:00:02.0", false);
  EXPECT_EQ(ro.entries().size(), 2u);
  try {
    Region(Region::open("ivshmem:00:02.0", false)).remove("wfs");
    ADD_FAILURE() << "a read-only region removed an entry";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::permission) << e.what();
  }
  // No directory (the host has not formatted yet): layout naming the device.
  FakeSysfs::sized(fs.device_dir("0000:00:02.0") + "/resource2", 0);
  FakeSysfs::sized(fs.device_dir("0000:00:02.0") + "/resource2", k1M);
  try {
    (void)Region::open("ivshmem:");
    ADD_FAILURE() << "opened a region in zeroed memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout) << e.what();
    EXPECT_NE(std::string(e.what()).find("ivshmem:0000:00:02.0"), std::string::npos) << e.what();
  }
}

TEST(IvshmemRegion, AGuestFormatsFreshMemoryButNeverAValidDirectory) {
  FakeSysfs fs;
  fs.add_device("0000:00:02.0", k1M);
  const std::string file = fs.device_dir("0000:00:02.0") + "/resource2";
  {
    Region r = iv::format_region("ivshmem:", {}, false, options_of(fs));
    EXPECT_FALSE(r.same_kernel());
    (void)r.create_queue("q", QueueSpec{});
  }
  try {
    (void)iv::format_region("ivshmem:", {}, true, options_of(fs));
    ADD_FAILURE() << "formatted over a valid directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists) << e.what();
  }
  EXPECT_EQ(Region::open(file).entries().size(), 1u);  // still there, and the host sees it
  EXPECT_FALSE(Region::open(file).same_kernel());       // formatted for other kernels
  FakeSysfs::put_word(file, 0, 0xdeadbeef);             // not a directory, not zero
  try {
    (void)iv::format_region("ivshmem:", {}, false, options_of(fs));
    ADD_FAILURE() << "formatted over foreign data";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout) << e.what();
  }
  EXPECT_NO_THROW((void)iv::format_region("ivshmem:", {}, true, options_of(fs)));
}

}  // namespace
}  // namespace shmlink::test
