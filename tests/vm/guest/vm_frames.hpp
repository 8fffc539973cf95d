// SPDX-License-Identifier: MIT
// The frames the VM stream tests exchange (tests/vm/vm_stream_test.cpp on the host,
// guest/vm_region_guest.cpp in the guest): both sides compute the same pattern.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shmlink::testvm {

/// Frame shape of the stream tests: u32, 64 x 16 (ISIO order), 4 KiB.
inline constexpr std::uint32_t kFrameWidth = 64, kFrameHeight = 16;

/// Element j of frame i (frame i is the stream's (i + 1)-th write, cnt0 i + 1).
constexpr std::uint32_t frame_value(std::uint64_t i, std::size_t j) {
  return static_cast<std::uint32_t>(i * 2654435761U + j * 40503U + 7U);
}

}  // namespace shmlink::testvm
