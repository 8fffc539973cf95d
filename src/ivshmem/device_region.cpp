// SPDX-License-Identifier: MIT
// The guest side of ivshmem, part 3 (include/shmlink/ivshmem.hpp): the region in a device's
// shared memory, opened (Region::open("ivshmem:...") lands here) or formatted by a guest.
#include <shmlink/ivshmem.hpp>

#include "region/region_access.hpp"

#include <algorithm>

namespace shmlink::ivshmem {

namespace {

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
  const Bar bar = map_memory(locator, writable, options);
  // Other VMs share BAR2: no futex or semaphore reaches them, channels poll.
  return shmlink::detail::RegionAccess::attach(bar.memory(), bar.memory_owner(), "ivshmem:" + bar.device().address,
                                               false, writable);
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
