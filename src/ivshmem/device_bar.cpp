// SPDX-License-Identifier: MIT
// The guest side of ivshmem, part 2 (include/shmlink/ivshmem.hpp): mapping BAR2 (shared memory)
// and BAR0 (registers) through a UIO device node or sysfs `resourceN`, and the registers.
//
// UIO exposes a device's memory regions as maps: /sys/.../uio/uioN/maps/mapK/{addr,size,offset}
// and `mmap(/dev/uioN, offset = K * page size)` maps map K. Which map is which BAR depends on the
// driver, so a BAR's map is the one whose `addr` is the BAR's bus address in the `resource` file.
#include <shmlink/ivshmem.hpp>

#include <shmlink/channel.hpp>

#include "ivshmem/device_internal.hpp"
#include "os/sys.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace shmlink::ivshmem {

/// One mmap'ed BAR; unmapped when the last owner goes.
struct Bar::Mapping {
  Mapping(void* a, std::size_t n) noexcept : addr(a), length(n) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (addr != nullptr) ::munmap(addr, length);
  }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte*>(addr), length}; }
  void* addr = nullptr;
  std::size_t length = 0;
};

namespace {

using Mapped = tl::expected<std::shared_ptr<Bar::Mapping>, Error>;

/// Maps `length` bytes of `file` at `offset` (MAP_SHARED). `who` names the device in errors.
Mapped map_file(const std::string& file, std::size_t length, off_t offset, bool writable, bool check_size,
                const std::string& who) {
  os::UniqueFd fd(::open(file.c_str(), (writable ? O_RDWR : O_RDONLY) | O_SYNC | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    const int err = errno;
    std::string hint;
    if (err == EACCES || err == EPERM)
      hint = " (mapping a PCI BAR needs root, or a UIO driver whose /dev/uioN you may open)";
    return tl::make_unexpected(
        Error(errc_from_errno(err), who + ": opening " + file + ": " + std::strerror(err) + hint));
  }
  if (check_size) {  // sysfs gives resourceN the BAR's size
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
      const int err = errno;
      return tl::make_unexpected(Error(errc_from_errno(err), who + ": inspecting " + file + ": " + std::strerror(err)));
    }
    if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) != length)
      return tl::make_unexpected(Error(Errc::layout, who + ": " + file + " has " + std::to_string(st.st_size) +
                                                         " bytes, the device's resource table says " +
                                                         std::to_string(length)));
  }
  void* p = ::mmap(nullptr, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd.get(), offset);
  if (p == MAP_FAILED) {
    const int err = errno;
    return tl::make_unexpected(Error(errc_from_errno(err), who + ": mapping " + std::to_string(length) +
                                                               " bytes of " + file + ": " + std::strerror(err)));
  }
  return std::make_shared<Bar::Mapping>(p, length);
}

/// The UIO map index of the BAR at bus address `start` of `size` bytes, or -1 (no such map, or
/// its attributes do not read as numbers: then sysfs resourceN is used). A map may be the BAR
/// rounded up to whole pages (UIO maps pages: drivers/uio_ivshmem offers BAR0's 256 bytes as a
/// 4096-byte map).
int uio_map_of(const Device& d, std::uint64_t start, std::uint64_t size) {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t rounded = (size + page - 1) / page * page;
  for (int k = 0; k < 5; ++k) {  // UIO has at most 5 maps (MAX_UIO_MAPS)
    const std::string dir = d.sysfs_path + "/uio/" + d.uio + "/maps/map" + std::to_string(k);
    const auto addr = detail::read_attribute(dir + "/addr");
    const auto len = detail::read_attribute(dir + "/size");
    std::uint64_t a = 0;
    std::uint64_t n = 0;
    if (!addr || !len || !detail::parse_hex(*addr, a) || !detail::parse_hex(*len, n)) continue;
    if (a == start && (n == size || n == rounded)) return k;
  }
  return -1;
}

/// Maps BAR `index`: through the UIO node when a driver is bound and has a map of it, else (or
/// when that fails) through sysfs resourceN.
Mapped map_bar(const Device& d, const detail::Resource& r, int index, bool writable, const BarOptions& options) {
  const std::string who = "ivshmem device " + d.address;
  const std::string bar = "BAR" + std::to_string(index);
  if (r.size() == 0)
    return tl::make_unexpected(Error(Errc::layout, who + ": " + bar + " has size 0 in " + d.sysfs_path + "/resource"));
  static_assert(sizeof(std::size_t) == sizeof(std::uint64_t), "64-bit only: a BAR size fits a size_t");
  const auto length = static_cast<std::size_t>(r.size());
  std::string uio_failure;
  if (!d.uio.empty()) {
    const int k = uio_map_of(d, r.start, r.size());
    if (k >= 0) {
      const long page = ::sysconf(_SC_PAGESIZE);
      Mapped m = map_file(options.dev_root + "/" + d.uio, length, static_cast<off_t>(k) * page, writable, false, who);
      if (m) return m;
      uio_failure = m.error().what();
    }
  }
  Mapped m = map_file(d.sysfs_path + "/resource" + std::to_string(index), length, 0, writable, true, who);
  if (!m && !uio_failure.empty())
    return tl::make_unexpected(Error(m.error().errc(), std::string(m.error().what()) + "; and " + uio_failure));
  return m;
}

}  // namespace

Bar::Bar() noexcept = default;
Bar::Bar(Bar&&) noexcept = default;
Bar& Bar::operator=(Bar&&) noexcept = default;
Bar::~Bar() = default;

tl::expected<Bar, Error> Bar::open(const std::string& locator, const BarOptions& options) {
  Locator loc;
  if (!locator.empty()) {
    auto parsed = parse_locator(locator);
    if (!parsed)
      return tl::make_unexpected(Error(Errc::invalid_argument, "ivshmem locator '" + escape_name(locator) +
                                                                   "' does not start with 'ivshmem:'"));
    if (!*parsed) return tl::make_unexpected(parsed->error());
    loc = std::move(**parsed);
  }
  auto devices = list_devices(options.sysfs_root);
  if (!devices) return tl::make_unexpected(devices.error());
  auto device = find_device(*devices, loc.device, options.sysfs_root);
  if (!device) return tl::make_unexpected(device.error());
  const std::string table = device->sysfs_path + "/resource";
  const auto text = detail::read_attribute(table);
  if (!text) return tl::make_unexpected(text.error());
  const auto res = detail::parse_resources(*text, table);
  if (!res) return tl::make_unexpected(res.error());
  Bar bar;
  bar.device_ = std::move(*device);
  bar.device_.bar2_bytes = (*res)[2].size();  // the table just read, not the listing's
  Mapped bar2 = map_bar(bar.device_, (*res)[2], 2, options.writable, options);
  if (!bar2) return tl::make_unexpected(bar2.error());
  bar.bar2_ = std::move(*bar2);
  if (options.registers) {
    if ((*res)[0].size() < kRegisterBytes)
      return tl::make_unexpected(Error(Errc::layout, "ivshmem device " + bar.device_.address + ": BAR0 has " +
                                                         std::to_string((*res)[0].size()) + " bytes in " + table +
                                                         ", the registers need " + std::to_string(kRegisterBytes)));
    Mapped bar0 = map_bar(bar.device_, (*res)[0], 0, true, options);
    if (!bar0) return tl::make_unexpected(bar0.error());
    bar.bar0_ = std::move(*bar0);
  }
  return bar;
}

std::span<std::byte> Bar::memory() const noexcept { return bar2_ ? bar2_->bytes() : std::span<std::byte>(); }
std::shared_ptr<const void> Bar::memory_owner() const noexcept { return bar2_; }
const Device& Bar::device() const noexcept { return device_; }
bool Bar::has_registers() const noexcept { return bar0_ != nullptr; }

namespace {
volatile std::uint32_t* reg(const std::shared_ptr<Bar::Mapping>& bar0, std::size_t offset) noexcept {
  return reinterpret_cast<volatile std::uint32_t*>(static_cast<std::byte*>(bar0->addr) + offset);
}
}  // namespace

std::int32_t Bar::iv_position() const noexcept {
  if (!bar0_) return -1;
  return static_cast<std::int32_t>(*reg(bar0_, kRegIvPosition));  // one 32-bit MMIO load
}

void Bar::ring(std::uint16_t peer, std::uint16_t vector) noexcept {
  if (!bar0_) return;
  // SYNC POINT: release fence before the doorbell store; pairs with the acquire the woken peer
  // performs on the shared counter it re-checks after its interrupt.
  std::atomic_thread_fence(std::memory_order_release);
  *reg(bar0_, kRegDoorbell) = static_cast<std::uint32_t>(peer) << 16 | vector;  // one 32-bit MMIO store
}

}  // namespace shmlink::ivshmem
