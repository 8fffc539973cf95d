// SPDX-License-Identifier: MIT
// The guest side of ivshmem, part 3 (include/shmlink/ivshmem.hpp): the region in a device's
// shared memory, opened (Region::open("ivshmem:...") lands here) or formatted by a guest.
#include <shmlink/ivshmem.hpp>

#include "ivshmem/device_internal.hpp"
#include "os/log_internal.hpp"
#include "region/region_access.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

namespace shmlink::ivshmem {

std::string vector_uio(const Device& device, unsigned vector) {
  std::error_code ec;
  std::vector<std::pair<unsigned long, std::string>> found;  // (N, "uioN"), sorted by N
  for (std::filesystem::directory_iterator it(device.sysfs_path + "/uio", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() <= 3 || n.size() > 12 || !n.starts_with("uio")) continue;
    if (!std::all_of(n.begin() + 3, n.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    found.emplace_back(std::stoul(n.substr(3)), n);
  }
  std::sort(found.begin(), found.end());
  const std::string want = "vector " + std::to_string(vector);
  for (const auto& [number, name] : found) {
    auto text = detail::read_attribute(device.sysfs_path + "/uio/" + name + "/version");
    if (!text) continue;
    std::string v = *text;
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    if (v == want) return name;
  }
  return {};
}

namespace {

/// A guest's doorbell endpoint (src/region/doorbell.hpp): rings through BAR0's Doorbell
/// register, sleeps on a fresh descriptor of the UIO device of its vector (each open counts
/// only the interrupts after it, so a wait that opens before it registers misses no ring).
class GuestPort final : public rdoor::Port {
 public:
  GuestPort(Bar bar, std::uint16_t self, std::uint16_t vector, std::string uio_path)
      : Port(self, vector, "ivshmem:" + bar.device().address + " vector " + std::to_string(vector) + " (" + uio_path + ")"),
        bar_(std::move(bar)), uio_path_(std::move(uio_path)) {}
  bool ring(std::uint16_t peer, std::uint16_t vector) noexcept override {
    bar_.ring(peer, vector);  // QEMU drops a ring for an unknown peer or vector silently
    return true;
  }
  int listener(bool& own) noexcept override {
    own = true;
    int fd;
    do fd = ::open(uio_path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    return fd;
  }
  bool consume(int fd) noexcept override {
    std::uint32_t count = 0;
    const ssize_t n = ::read(fd, &count, sizeof count);  // the interrupt count; resets readiness
    return n == sizeof count || (n < 0 && (errno == EAGAIN || errno == EINTR));
  }

 private:
  Bar bar_;
  std::string uio_path_;
};

/// The doorbell endpoint of `bar`'s device for vector 0, or null with `why` saying what is missing.
std::shared_ptr<rdoor::Port> guest_port(Bar& bar, const BarOptions& options, bool writable, std::string& why) {
  const Device& d = bar.device();
  if (!writable) why = "the region is opened read-only (a waiter writes the waiter table)";
  else if (!d.doorbell) why = "the device is ivshmem-plain (no interrupts: use ivshmem-doorbell with a server)";
  else if (d.uio.empty()) why = "no UIO driver is bound to it (load shmlink's uio_ivshmem)";
  else if (!bar.has_registers()) why = "its registers (BAR0) could not be mapped";
  if (!why.empty()) return nullptr;
  const std::string uio = vector_uio(d, 0);
  if (uio.empty()) {
    why = "its UIO devices have none for vector 0 (MSI-X not enabled?)";
    return nullptr;
  }
  const std::int32_t position = bar.iv_position();
  if (position < 0 || position > 65535) {
    why = "its IVPosition " + std::to_string(position) + " is not a peer id";
    return nullptr;
  }
  const std::string path = options.dev_root + "/" + uio;
  if (::access(path.c_str(), R_OK) != 0) {
    why = path + " cannot be opened for reading (" + std::error_code(errno, std::generic_category()).message() + ")";
    return nullptr;
  }
  return std::make_shared<GuestPort>(std::move(bar), static_cast<std::uint16_t>(position), std::uint16_t{0}, path);
}

/// Maps BAR2 of the device `locator` names (a channel name in it is ignored); throws Bar::open's error.
Bar map_memory(const std::string& locator, bool writable, BarOptions options) {
  options.writable = writable;
  options.registers = false;  // the region needs the shared memory only
  auto bar = Bar::open(locator, options);
  if (!bar) throw bar.error();
  return std::move(*bar);
}

}  // namespace

Region open_region(const std::string& locator, bool writable, const BarOptions& options) {
  // The registers too, when the region may wait on doorbells (falls back to BAR2 alone).
  BarOptions with_registers = options;
  with_registers.writable = writable;
  with_registers.registers = writable;
  auto opened = Bar::open(locator, with_registers);
  Bar bar = opened ? std::move(*opened) : map_memory(locator, writable, options);
  const std::string what = "ivshmem:" + bar.device().address;
  const std::span<std::byte> memory = bar.memory();
  const std::shared_ptr<const void> owner = bar.memory_owner();
  // Other VMs share BAR2: no futex or semaphore reaches them; channels wait on the doorbell
  // where the device has one and the driver is there, else they poll (and say so once).
  std::string why;
  std::shared_ptr<rdoor::Port> port = guest_port(bar, options, writable, why);
  Region r = shmlink::detail::RegionAccess::attach(memory, owner, what, false, writable, std::move(port));
  if (r.wait_mode() != RegionWaitMode::doorbell) {
    if (why.empty()) why = "the region has no doorbell endpoint";
    shmlink::detail::log(LogLevel::info, "region " + what + ": waits poll: " + why);
  }
  return r;
}

Region format_region(const std::string& locator, const RegionOptions& region_options, bool force,
                     const BarOptions& options) {
  const Bar bar = map_memory(locator, true, options);
  const std::string what = "ivshmem:" + bar.device().address;
  const std::span<std::byte> memory = bar.memory();
  bool valid = true;
  try {
    (void)Region::attach(memory, bar.memory_owner(), what, false);
  } catch (const Error&) {
    valid = false;
  }
  if (valid)
    throw Error(Errc::exists, "formatting region " + what + ": its shared memory already holds a valid region "
                                  "directory (the host's or another guest's); open it instead");
  const std::span<std::byte> head = memory.first(std::min<std::size_t>(memory.size(), rlayout::kEntryAlign));
  const bool zero = std::all_of(head.begin(), head.end(), [](std::byte b) { return b == std::byte{0}; });
  if (!zero && !force)
    throw Error(Errc::layout, "formatting region " + what + ": its shared memory is not zero and holds no valid "
                                  "region directory (another program's data?); formatting with force erases it");
  return Region::format(memory, bar.memory_owner(), what, false, region_options);
}

}  // namespace shmlink::ivshmem
