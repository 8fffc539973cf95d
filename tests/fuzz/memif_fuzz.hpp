// SPDX-License-Identifier: MIT
// What the memif fuzz targets and their seed writer agree on (tests/fuzz, issue 17).
#pragma once

#include "memif/ring.hpp"
#include "memif/wire.hpp"

#include <filesystem>

namespace shmlink::fuzz {

/// The memory of the slave whose region 0 fuzz_memif_handshake can attach to a message: one ring
/// each way of 16 slots, 256-byte buffers, one region. ADD_REGION / ADD_RING seeds use its sizes
/// and offsets, so that a seed reaches CONNECTED.
inline memif::detail::SlaveLayout handshake_layout() {
  memif::detail::SlaveLayout lay;
  lay.log2 = 4;
  lay.buffer_size = 256;
  return lay;
}

/// Control byte of a fuzz_memif_handshake record: which fd goes with the message.
enum class AttachedFd : std::uint8_t { none = 0, sealed_region = 1, unsealed_memfd = 2, blocking_eventfd = 3 };

/// Writes the seeds of fuzz_memif_messages (one file per message type, as the library encodes
/// them) and fuzz_memif_handshake (a master's and a slave's correct exchange) into
/// `out`/memif_messages and `out`/memif_handshake.
void write_memif_seeds(const std::filesystem::path& out);

}  // namespace shmlink::fuzz
