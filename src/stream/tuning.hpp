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

/// The longest slice (ns) Stream::sem_wait sleeps on a semaphore's futex before it looks at the
/// value again without a wake-up (a post whose wake-up went astray, e.g. a scribbled `private`
/// word made a glibc poster wake a process-private futex, is seen after at most this long).
/// Default 100 ms. Tests raise it so that only a real FUTEX_WAKE can end a wait in time.
/// Read with relaxed ordering when a wait starts; values below 1 ms count as 1 ms.
std::atomic<std::int64_t>& sem_recheck_ns() noexcept;

/// The longest slice (ns) Stream::wait_futex sleeps before it looks at cnt0 again without a
/// wake-up: a writer that neither wakes futexes nor reaches the waiter's semaphore slot (every
/// slot taken, a read-only handle, a stream without slots, the first frame of such a writer
/// after a shmlink writer's) is noticed after at most this long. Default 10 ms. Tests raise it
/// so that only a real wake-up can end a wait in time. Read with relaxed ordering at each
/// slice; values below 1 ms count as 1 ms.
std::atomic<std::int64_t>& foreign_writer_poll_ns() noexcept;

}  // namespace shmlink::detail
