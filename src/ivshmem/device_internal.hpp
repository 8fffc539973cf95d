// SPDX-License-Identifier: MIT
// Pieces of the guest side of ivshmem (include/shmlink/ivshmem.hpp) shared by its sources and
// the unit tests: reading small sysfs files defensively and parsing the PCI `resource` table.
#pragma once

#include <shmlink/error.hpp>

#include <tl/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::ivshmem::detail {

/// One line of a PCI device's sysfs `resource` file: "0xSTART 0xEND 0xFLAGS" (bus addresses).
struct Resource {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t flags = 0;
  /// Bytes of the BAR: 0 when unassigned (start and end 0), else end - start + 1.
  [[nodiscard]] std::uint64_t size() const noexcept { return start == 0 && end == 0 ? 0 : end - start + 1; }
};

/// Longest sysfs attribute file read (a `resource` file of 13 lines is about 750 bytes).
inline constexpr std::size_t kMaxAttributeBytes = 4096;

/// The whole of a small file (at most kMaxAttributeBytes; longer is Errc::layout), read with
/// read(2) (sysfs files are read whole, not mapped).
/// @return the text, or Error naming `path` (not_found, permission, layout, system).
tl::expected<std::string, Error> read_attribute(const std::string& path);

/// Parses "0x1af4" (optional "0x", 1..16 hexadecimal digits, optional trailing newline).
/// @return the value, or std::nullopt-like failure as false.
bool parse_hex(std::string_view text, std::uint64_t& out) noexcept;

/// Parses a `resource` file's text: at least 3 lines (BAR0..BAR2), each three hexadecimal
/// numbers with end >= start when assigned.
/// @return the lines, or Error layout naming `path` and the line that is wrong.
tl::expected<std::vector<Resource>, Error> parse_resources(std::string_view text, const std::string& path);

/// True for "DDDD:BB:SS.F" (lower- or upper-case hexadecimal, function 0-7).
bool is_pci_address(std::string_view text) noexcept;

}  // namespace shmlink::ivshmem::detail
