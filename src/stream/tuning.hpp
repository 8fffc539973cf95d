// SPDX-License-Identifier: MIT
// Process-wide tuning of the stream readers, for tests and fuzz targets (not public API).
#pragma once

#include <atomic>
#include <cstdint>

namespace shmlink::detail {

/// How long (ns) a validated read waits while a stream's write flag stays set and cnt0 does not
/// move before it presumes the writer died mid-write and returns writer_active; a read gives up
/// with torn after 5 times this while a live writer never leaves a gap. Default 200 ms.
/// The fuzz targets lower it (a hostile file can hold the flag set for ever, and each such
/// input would otherwise cost 200 ms). Read with relaxed ordering at each wait step.
std::atomic<std::int64_t>& writer_grace_ns() noexcept;

}  // namespace shmlink::detail
