// SPDX-License-Identifier: MIT
/// @file ivshmem.hpp
/// @brief The guest side of QEMU's ivshmem device: finding the devices in sysfs, mapping their
/// shared memory (BAR2) and registers (BAR0), ringing doorbells, and the `ivshmem:` locator that
/// opens the region in a device's shared memory (docs/vm.md "In the guest"; docs/design/region.md).
///
/// An ivshmem device is a PCI function with vendor 0x1af4 and device 0x1110. Its BAR0 is a
/// 256-byte block of 32-bit registers (IntrMask at 0, IntrStatus at 4, IVPosition at 8, Doorbell
/// at 12: QEMU's ivshmem specification, "Device Registers"), its BAR1 holds the MSI-X table of the
/// `ivshmem-doorbell` variant (absent on `ivshmem-plain`), and its BAR2 is the memory shared with
/// the host and the other guests. Linux shows the BARs as `/sys/bus/pci/devices/<address>/resourceN`
/// files that root can mmap; a UIO driver bound to the device exposes them as maps of `/dev/uioN`
/// instead (readable by whoever the udev rules allow).
///
/// Locators: `ivshmem:` (the first device, by address), `ivshmem:0000:00:02.0` or `ivshmem:00:02.0`
/// (that device); followed by `:NAME` they name the channel NAME of the device's region
/// (`ivshmem:wfs`, `ivshmem:0000:00:02.0:wfs`). `Region::open()` and split_region_locator() accept
/// them, so every tool that takes a region or `PATH:NAME` takes them too.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>
#include <shmlink/region.hpp>

#include <tl/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmlink::ivshmem {

/// PCI vendor id of ivshmem devices (Red Hat / virtio).
inline constexpr std::uint16_t kVendorId = 0x1af4;
/// PCI device id of ivshmem devices.
inline constexpr std::uint16_t kDeviceId = 0x1110;
/// BAR0 register offsets in bytes (32-bit registers, 32-bit accesses only).
inline constexpr std::size_t kRegIntrMask = 0;
inline constexpr std::size_t kRegIntrStatus = 4;
inline constexpr std::size_t kRegIvPosition = 8;
inline constexpr std::size_t kRegDoorbell = 12;
/// Bytes of BAR0 the registers need (the BAR is 256 bytes; the rest is reserved).
inline constexpr std::size_t kRegisterBytes = 16;

/// One ivshmem device as sysfs shows it.
struct Device {
  std::string address;     ///< PCI address "DDDD:BB:SS.F", e.g. "0000:00:02.0"
  std::string sysfs_path;  ///< `<sysfs_root>/bus/pci/devices/<address>`
  std::uint64_t bar2_bytes = 0;  ///< size of the shared memory (BAR2), from the `resource` file
  bool doorbell = false;   ///< true for `ivshmem-doorbell` (it has BAR1, the MSI-X table); false for `ivshmem-plain`
  std::string uio;         ///< "uio0" when a UIO driver is bound to the device, else ""
};

/// Where sysfs is: `$SHMLINK_SYSFS_ROOT` when set and not empty (tests build a fake tree), else "/sys".
SHMLINK_EXPORT std::string default_sysfs_root();
/// Where device nodes are: `$SHMLINK_DEV_ROOT` when set and not empty, else "/dev".
SHMLINK_EXPORT std::string default_dev_root();

/// Every ivshmem device (vendor 0x1af4, device 0x1110) under `<sysfs_root>/bus/pci/devices`,
/// sorted by address. Devices are read defensively: a `vendor`, `device` or `resource` file
/// that cannot be read or parsed is an error naming the file, never a crash.
/// @return the devices (empty when there are none), or Error: not_found (no PCI bus directory
///         under sysfs_root), permission / system (a directory that cannot be listed), layout (a
///         malformed `resource` file of an ivshmem device), each naming the path.
SHMLINK_EXPORT tl::expected<std::vector<Device>, Error> list_devices(const std::string& sysfs_root = default_sysfs_root());

/// A parsed `ivshmem:` locator.
struct Locator {
  std::string device;  ///< PCI address "DDDD:BB:SS.F" (domain added when omitted), or "" for the first device
  std::string name;    ///< the channel name after the device, or "" for the region itself
};

/// True when `text` starts with "ivshmem:" (whether or not the rest is valid).
SHMLINK_EXPORT bool is_locator(std::string_view text) noexcept;

/// Parses "ivshmem:[DEVICE][:NAME]" where DEVICE is "DDDD:BB:SS.F" or "BB:SS.F" (hexadecimal,
/// function 0-7) and NAME a channel name (no '/' or ':'). "ivshmem:wfs" is NAME "wfs" on the first
/// device. std::nullopt when `text` does not start with "ivshmem:".
/// @return the locator, or Error invalid_argument naming `text` (an empty NAME after a device,
///         a NAME containing '/' or ':').
SHMLINK_EXPORT std::optional<tl::expected<Locator, Error>> parse_locator(std::string_view text);

/// Splits "ivshmem:[DEVICE:]NAME" into the region's locator ("ivshmem:" or "ivshmem:DDDD:BB:SS.F",
/// the domain added when omitted) and NAME, as split_region_locator() does for "PATH:NAME".
/// std::nullopt when `text` has no NAME or is not a valid ivshmem locator.
SHMLINK_EXPORT std::optional<std::pair<std::string, std::string>> split_channel_locator(std::string_view text);

/// The device a locator's DEVICE part names among `devices` ("" = the first).
/// @return the device, or Error not_found naming the locator and listing what exists.
SHMLINK_EXPORT tl::expected<Device, Error> find_device(const std::vector<Device>& devices, const std::string& address,
                                                       const std::string& sysfs_root);

/// How Bar::open maps the device.
struct BarOptions {
  std::string sysfs_root = default_sysfs_root();  ///< where sysfs is
  std::string dev_root = default_dev_root();      ///< where /dev/uioN is
  bool writable = true;       ///< map BAR2 read-write (true) or read-only
  bool registers = true;      ///< also map BAR0 (iv_position(), ring()); false: BAR2 only
};

/// The mapped BARs of one ivshmem device. Move-only; unmaps on destruction.
///
/// BAR2 comes from `/dev/uioN` when a UIO driver is bound and its map for BAR2 (the map whose
/// `addr` is BAR2's bus address in the `resource` file) opens, else from sysfs `resource2`
/// (root only on a stock kernel). BAR0 likewise (the UIO map of BAR0's address, else `resource0`).
///
/// Thread safety: memory() and the registers may be used from any thread; the handle itself is
/// not synchronised (do not move it while others use it).
class SHMLINK_EXPORT Bar {
 public:
  Bar() noexcept;
  Bar(Bar&&) noexcept;
  Bar& operator=(Bar&&) noexcept;
  Bar(const Bar&) = delete;
  Bar& operator=(const Bar&) = delete;
  ~Bar();

  /// Maps the device a locator names: "" or "ivshmem:" (the first device), "ivshmem:0000:00:02.0".
  /// A locator with a channel name ("ivshmem:wfs") maps the device and ignores the name.
  /// @return the mapped device, or Error: invalid_argument (a malformed locator), not_found (no
  ///         such device), permission (EACCES on `resource2` / `/dev/uioN`: mapping needs root or
  ///         a UIO device node you may open), layout (a BAR of size 0, a `resource2` whose size is
  ///         not BAR2's), system; each naming the device and the file.
  static tl::expected<Bar, Error> open(const std::string& locator, const BarOptions& options = {});

  /// The device's shared memory (BAR2), mapped MAP_SHARED; empty for a default-constructed Bar.
  [[nodiscard]] std::span<std::byte> memory() const noexcept;
  /// Keeps the BAR2 mapping alive for as long as any copy lives (for Region::attach and
  /// channels placed in it): the mapping outlives this handle while the pointer is held.
  [[nodiscard]] std::shared_ptr<const void> memory_owner() const noexcept;
  /// The device as found in sysfs.
  [[nodiscard]] const Device& device() const noexcept;
  /// True when BAR0 is mapped (BarOptions::registers).
  [[nodiscard]] bool has_registers() const noexcept;
  /// This guest's peer id from the IVPosition register (a 32-bit volatile load): the id the
  /// ivshmem server gave it, 0 without a server (so 0 is ambiguous), -1 without registers.
  [[nodiscard]] std::int32_t iv_position() const noexcept;
  /// Rings `vector` of peer `peer`: one 32-bit volatile store of `peer << 16 | vector` to the
  /// Doorbell register. QEMU uses only the low 8 bits of the vector and ignores doorbells to
  /// unknown peers or vectors silently; a doorbell rung before the peer enabled its interrupts
  /// is lost (keep a counter in shared memory and re-check it on a timeout). No-op without
  /// registers.
  /// Memory ordering: a release fence precedes the store, so the peer that wakes sees every
  /// write to shared memory made before ring().
  void ring(std::uint16_t peer, std::uint16_t vector) noexcept;

  struct Mapping;  ///< one mmap'ed BAR (src/ivshmem)

 private:
  Device device_;
  std::shared_ptr<Mapping> bar2_;
  std::shared_ptr<Mapping> bar0_;
};

/// The UIO device ("uio3") that shmlink's driver (drivers/uio_ivshmem) made for MSI-X vector
/// `vector` of `device`: the entry of `<sysfs_path>/uio/` whose `version` file reads
/// "vector V", looking at uioN in ascending N. "" when there is none (no driver, ivshmem-plain,
/// MSI-X not enabled). Its /dev node is readable when the vector fired since the last read.
SHMLINK_EXPORT std::string vector_uio(const Device& device, unsigned vector);

/// Opens the region in the shared memory of the device `locator` names (the region part:
/// "ivshmem:" or "ivshmem:DEVICE"; a channel name is ignored), as Region::open("ivshmem:...")
/// does: BAR2 mapped (read-write or read-only), the directory validated, same_kernel false
/// (other VMs share the memory). Its channels wait on doorbells (Region::wait_mode() doorbell)
/// when the region is writable, the device is `ivshmem-doorbell`, shmlink's UIO driver is bound
/// and gives a UIO device for vector 0, and BAR0 maps (IVPosition, Doorbell): a waiter
/// registers IVPosition and vector 0 in the region's waiter table and sleeps on that UIO device;
/// writers ring through the Doorbell register. Otherwise they poll, and the library logs once
/// (info level, through the log handler) why: "region ivshmem:...: waits poll: <reason>". The region's path() is
/// "ivshmem:DDDD:BB:SS.F"; its channels are named "ivshmem:DDDD:BB:SS.F:NAME".
/// @throws Error as Bar::open, and layout (no valid directory in BAR2: the host has not
///         formatted it yet, or it is corrupt) naming the device.
SHMLINK_EXPORT Region open_region(const std::string& locator, bool writable = true, const BarOptions& options = {});

/// Formats a new region directory in the device's shared memory, for a guest that is first
/// (`shmlink region create ivshmem:`): only when BAR2 holds no valid directory. With `force`
/// false the first 4096 bytes must be all zero (fresh memory); with `force` an invalid
/// directory is overwritten too. A valid directory is never overwritten.
/// @throws Error exists (a valid directory is there: open it instead), layout (the memory is
///         not zero and `force` is false), invalid_argument (BAR2 too small: at least 64 KiB,
///         a multiple of 4096), and Bar::open's errors; each naming the device.
SHMLINK_EXPORT Region format_region(const std::string& locator, const RegionOptions& region_options = {},
                                    bool force = false, const BarOptions& options = {});

}  // namespace shmlink::ivshmem
