// SPDX-License-Identifier: MIT
// The guest side of ivshmem, part 1 (include/shmlink/ivshmem.hpp): finding the devices in sysfs
// and parsing `ivshmem:` locators. Sysfs is trusted only so far: every file is read whole with a
// size limit and parsed strictly; what is wrong is an error naming the file.
#include <shmlink/ivshmem.hpp>

#include <shmlink/channel.hpp>

#include "ivshmem/device_internal.hpp"
#include "os/sys.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace shmlink::ivshmem {

namespace detail {

tl::expected<std::string, Error> read_attribute(const std::string& path) {
  os::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    const int err = errno;
    return tl::make_unexpected(Error(errc_from_errno(err), "reading " + path + ": " + std::strerror(err)));
  }
  std::string text(kMaxAttributeBytes + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return tl::make_unexpected(Error(errc_from_errno(err), "reading " + path + ": " + std::strerror(err)));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > kMaxAttributeBytes)
    return tl::make_unexpected(
        Error(Errc::layout, "reading " + path + ": longer than " + std::to_string(kMaxAttributeBytes) +
                                " bytes, not a sysfs attribute"));
  text.resize(got);
  return text;
}

bool parse_hex(std::string_view text, std::uint64_t& out) noexcept {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty() || text.size() > 16) return false;
  std::uint64_t v = 0;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (!std::isxdigit(u)) return false;
    const int digit = std::isdigit(u) ? c - '0' : std::tolower(u) - 'a' + 10;
    v = v << 4 | static_cast<std::uint64_t>(digit);
  }
  out = v;
  return true;
}

tl::expected<std::vector<Resource>, Error> parse_resources(std::string_view text, const std::string& path) {
  std::vector<Resource> out;
  auto bad = [&path](std::size_t line, const std::string& what) {
    return tl::make_unexpected(
        Error(Errc::layout, "reading " + path + ": line " + std::to_string(line) + " " + what +
                                " (expected three hexadecimal numbers 0xSTART 0xEND 0xFLAGS per line)"));
  };
  std::size_t line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    std::uint64_t v[3] = {};
    for (std::uint64_t& field : v) {
      const std::size_t start = line.find_first_not_of(' ');
      if (start == std::string_view::npos) return bad(line_no, "has fewer than three numbers");
      line.remove_prefix(start);
      const std::size_t end = std::min(line.find(' '), line.size());
      if (!parse_hex(line.substr(0, end), field))
        return bad(line_no, "has '" + escape_name(line.substr(0, std::min<std::size_t>(end, 40))) + "'");
      line.remove_prefix(end);
    }
    if (line.find_first_not_of(' ') != std::string_view::npos) return bad(line_no, "has more than three numbers");
    const Resource r{v[0], v[1], v[2]};
    if (!(r.start == 0 && r.end == 0) && (r.end < r.start || r.end - r.start == UINT64_MAX))
      return bad(line_no, "ends before it starts");
    out.push_back(r);
  }
  if (out.size() < 3)
    return tl::make_unexpected(Error(Errc::layout, "reading " + path + ": " + std::to_string(out.size()) +
                                                       " lines, expected at least 3 (BAR0, BAR1, BAR2)"));
  return out;
}

bool is_pci_address(std::string_view t) noexcept {
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  return t.size() == 12 && hex(t[0]) && hex(t[1]) && hex(t[2]) && hex(t[3]) && t[4] == ':' && hex(t[5]) &&
         hex(t[6]) && t[7] == ':' && hex(t[8]) && hex(t[9]) && t[10] == '.' && t[11] >= '0' && t[11] <= '7';
}

}  // namespace detail

namespace {

constexpr std::string_view kPrefix = "ivshmem:";

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(fallback);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Vendor and device of the PCI function at `dir`; false when either cannot be read or parsed
/// (not an ivshmem device as far as we can tell: other devices are not ours to judge).
bool is_ivshmem(const std::string& dir) {
  std::uint64_t vendor = 0;
  std::uint64_t device = 0;
  const auto v = detail::read_attribute(dir + "/vendor");
  const auto d = detail::read_attribute(dir + "/device");
  return v && d && detail::parse_hex(*v, vendor) && detail::parse_hex(*d, device) && vendor == kVendorId &&
         device == kDeviceId;
}

/// The UIO device bound to the PCI function at `dir` ("uio0"), or "": of several (uio_ivshmem makes
/// one per MSI-X vector, in vector order) the lowest number, compared as a number (uio2 before
/// uio10). Names other than "uio" and decimal digits are ignored.
std::string uio_of(const std::string& dir) {
  std::error_code ec;
  std::string best;
  unsigned long long best_number = 0;
  for (std::filesystem::directory_iterator it(dir + "/uio", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() <= 3 || n.size() > 12 || !n.starts_with("uio")) continue;
    unsigned long long number = 0;
    const char* digits = n.c_str() + 3;
    const auto [rest, err] = std::from_chars(digits, n.c_str() + n.size(), number);
    if (err != std::errc() || rest != n.c_str() + n.size()) continue;
    if (best.empty() || number < best_number) {
      best = n;
      best_number = number;
    }
  }
  return best;
}

}  // namespace

std::string default_sysfs_root() { return env_or("SHMLINK_SYSFS_ROOT", "/sys"); }
std::string default_dev_root() { return env_or("SHMLINK_DEV_ROOT", "/dev"); }

tl::expected<std::vector<Device>, Error> list_devices(const std::string& sysfs_root) {
  const std::string bus = sysfs_root + "/bus/pci/devices";
  std::error_code ec;
  std::filesystem::directory_iterator it(bus, ec);
  if (ec)
    return tl::make_unexpected(Error(errc_from_errno(ec.value()), "listing PCI devices in " + bus + ": " +
                                                                      ec.message() + " (is sysfs mounted?)"));
  std::vector<Device> out;
  for (std::filesystem::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string address = it->path().filename().string();
    if (!detail::is_pci_address(address)) continue;
    const std::string dir = bus + "/" + address;
    if (!is_ivshmem(dir)) continue;
    const auto text = detail::read_attribute(dir + "/resource");
    if (!text) return tl::make_unexpected(text.error());
    const auto res = detail::parse_resources(*text, dir + "/resource");
    if (!res) return tl::make_unexpected(res.error());
    Device d;
    d.address = lower(address);
    d.sysfs_path = dir;
    d.bar2_bytes = (*res)[2].size();
    d.doorbell = (*res)[1].size() != 0;  // BAR1 holds the MSI-X table of ivshmem-doorbell
    d.uio = uio_of(dir);
    out.push_back(std::move(d));
  }
  if (ec)
    return tl::make_unexpected(
        Error(errc_from_errno(ec.value()), "listing PCI devices in " + bus + ": " + ec.message()));
  std::sort(out.begin(), out.end(), [](const Device& a, const Device& b) { return a.address < b.address; });
  return out;
}

bool is_locator(std::string_view text) noexcept { return text.starts_with(kPrefix); }

std::optional<tl::expected<Locator, Error>> parse_locator(std::string_view text) {
  if (!is_locator(text)) return std::nullopt;
  std::string_view rest = text.substr(kPrefix.size());
  Locator loc;
  auto device_prefix = [&rest](std::size_t len) {
    return rest.size() >= len && (rest.size() == len || rest[len] == ':');
  };
  if (device_prefix(12) && detail::is_pci_address(rest.substr(0, 12))) {
    loc.device = lower(rest.substr(0, 12));
    rest.remove_prefix(12);
  } else if (device_prefix(7) && detail::is_pci_address("0000:" + std::string(rest.substr(0, 7)))) {
    loc.device = "0000:" + lower(rest.substr(0, 7));
    rest.remove_prefix(7);
  }
  if (!loc.device.empty() && !rest.empty()) {
    rest.remove_prefix(1);  // the ':' before NAME
    if (rest.empty())
      return tl::expected<Locator, Error>(tl::make_unexpected(
          Error(Errc::invalid_argument,
                "ivshmem locator '" + escape_name(text) + "': the channel name after '" + loc.device + ":' is empty")));
  }
  if (rest.find_first_of("/:") != std::string_view::npos)
    return tl::expected<Locator, Error>(tl::make_unexpected(
        Error(Errc::invalid_argument, "ivshmem locator '" + escape_name(text) +
                                          "': expected ivshmem:[DDDD:BB:SS.F][:NAME], and a channel name has no "
                                          "'/' or ':'")));
  loc.name = std::string(rest);
  return tl::expected<Locator, Error>(std::move(loc));
}

std::optional<std::pair<std::string, std::string>> split_channel_locator(std::string_view text) {
  const auto parsed = parse_locator(text);
  if (!parsed || !*parsed || (*parsed)->name.empty()) return std::nullopt;
  return std::make_pair(std::string(kPrefix) + (*parsed)->device, (*parsed)->name);
}

tl::expected<Device, Error> find_device(const std::vector<Device>& devices, const std::string& address,
                                        const std::string& sysfs_root) {
  for (const Device& d : devices) {
    if (address.empty() || d.address == address) return d;
  }
  std::string seen;
  for (const Device& d : devices) seen += (seen.empty() ? "" : ", ") + d.address;
  const std::string which = address.empty() ? "no ivshmem device (PCI 1af4:1110)" : "no ivshmem device " + address;
  return tl::make_unexpected(Error(
      Errc::not_found, which + " in " + sysfs_root + "/bus/pci/devices" +
                           (seen.empty() ? std::string(" (the guest has none: is the VM started with -device "
                                                       "ivshmem-plain or ivshmem-doorbell?)")
                                         : " (ivshmem devices: " + seen + ")")));
}

}  // namespace shmlink::ivshmem
