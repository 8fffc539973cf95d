// SPDX-License-Identifier: MIT
// A fake sysfs (and /dev) tree for the ivshmem guest-side tests: PCI devices as directories with
// `vendor`, `device`, `resource` files and `resource0` / `resource2` as regular files (which mmap
// like the real ones), optionally a UIO device with its maps.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace shmlink::test {

/// A temporary directory holding `sys/` and `dev/`, removed at the end.
class FakeSysfs {
 public:
  FakeSysfs() {
    std::string tmpl = "/dev/shm/shmlink-sysfs-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    std::filesystem::create_directories(sysfs() + "/bus/pci/devices");
    std::filesystem::create_directories(dev());
  }
  FakeSysfs(const FakeSysfs&) = delete;
  FakeSysfs& operator=(const FakeSysfs&) = delete;
  ~FakeSysfs() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  [[nodiscard]] std::string sysfs() const { return root_ + "/sys"; }
  [[nodiscard]] std::string dev() const { return root_ + "/dev"; }
  [[nodiscard]] std::string device_dir(const std::string& address) const {
    return sysfs() + "/bus/pci/devices/" + address;
  }

  /// Bus address of BAR2 in the fake `resource` files (BAR0 at 0xfebf1000, BAR1 at 0xfebf2000).
  static constexpr std::uint64_t kBar2Start = 0xfe000000;
  static constexpr std::uint64_t kBar0Start = 0xfebf1000;
  static constexpr std::uint64_t kBar1Start = 0xfebf2000;

  /// A PCI function: vendor/device ids, a `resource` table with BAR0 256 bytes, BAR1 4096 bytes
  /// when `doorbell`, BAR2 `bar2_bytes`; `resource0` (256 zero bytes) and, when `with_resource2`,
  /// `resource2` (bar2_bytes zero bytes).
  void add_device(const std::string& address, std::uint64_t bar2_bytes, bool doorbell = false,
                  const std::string& vendor = "0x1af4", const std::string& device = "0x1110",
                  bool with_resource2 = true) const {
    const std::string dir = device_dir(address);
    std::filesystem::create_directories(dir);
    write(dir + "/vendor", vendor + "\n");
    write(dir + "/device", device + "\n");
    write(dir + "/resource", resource_table(bar2_bytes, doorbell));
    sized(dir + "/resource0", 256);
    if (with_resource2) sized(dir + "/resource2", bar2_bytes);
  }

  /// The `resource` file's text for those BARs (7 lines as Linux writes for a PCI function).
  static std::string resource_table(std::uint64_t bar2_bytes, bool doorbell) {
    std::string t = line(kBar0Start, kBar0Start + 255, 0x40200);
    t += doorbell ? line(kBar1Start, kBar1Start + 4095, 0x40200) : line(0, 0, 0);
    t += line(kBar2Start, kBar2Start + bar2_bytes - 1, 0x14220c);
    for (int i = 0; i < 4; ++i) t += line(0, 0, 0);
    return t;
  }

  /// Binds a fake UIO device "uioN" to `address`: map0 = BAR0, map1 = BAR2 (as pscom's
  /// uio_ivshmem lays them out) and `<dev>/uioN`, a file holding map0 at 0 and map1 at one page.
  void add_uio(const std::string& address, const std::string& uio, std::uint64_t bar2_bytes) const {
    const std::string maps = device_dir(address) + "/uio/" + uio + "/maps";
    auto map = [&](int k, std::uint64_t addr, std::uint64_t size) {
      const std::string m = maps + "/map" + std::to_string(k);
      std::filesystem::create_directories(m);
      char text[32];
      std::snprintf(text, sizeof text, "0x%016llx\n", static_cast<unsigned long long>(addr));
      write(m + "/addr", text);
      std::snprintf(text, sizeof text, "0x%016llx\n", static_cast<unsigned long long>(size));
      write(m + "/size", text);
      write(m + "/offset", "0x0\n");
    };
    map(0, kBar0Start, static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));  // BAR0's 256 bytes as the page uio_ivshmem maps
    map(1, kBar2Start, bar2_bytes);
    sized(dev() + "/" + uio, static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) + bar2_bytes);
  }

  /// Writes `text` to `path` (replacing it).
  static void write(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw std::runtime_error("writing " + path);
  }
  /// Makes `path` a file of `bytes` zero bytes.
  static void sized(const std::string& path, std::uint64_t bytes) {
    std::filesystem::remove(path);
    write(path, "");
    std::filesystem::resize_file(path, bytes);
  }
  /// The 32-bit word at `offset` of the file `path`.
  static std::uint32_t word_at(const std::string& path, long offset) {
    std::uint32_t v = 0;
    std::ifstream f(path, std::ios::binary);
    f.seekg(offset);
    f.read(reinterpret_cast<char*>(&v), sizeof v);
    return v;
  }
  /// Writes the 32-bit word `v` at `offset` of the file `path`.
  static void put_word(const std::string& path, long offset, std::uint32_t v) {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(offset);
    f.write(reinterpret_cast<const char*>(&v), sizeof v);
  }

 private:
  static std::string line(std::uint64_t start, std::uint64_t end, std::uint64_t flags) {
    char buf[80];
    std::snprintf(buf, sizeof buf, "0x%016llx 0x%016llx 0x%016llx\n", static_cast<unsigned long long>(start),
                  static_cast<unsigned long long>(end), static_cast<unsigned long long>(flags));
    return buf;
  }
  std::string root_;
};

}  // namespace shmlink::test
