// SPDX-License-Identifier: MIT
/// @file tuning.hpp
/// @brief Process-wide testing knobs of the stream readers' waits, for bindings and test programs.
///
/// Not for programs: the defaults are what production wants. A wait that nothing wakes still
/// looks at a stream's cnt0 again now and then (so that writers which cannot wake it are seen);
/// a test that checks that a post or a futex wake really ends a wait raises that re-check slice
/// so that a lost wake-up makes the wait run into its bound (docs/testing.md "Testing knobs for
/// waits"). The Python package exposes it as `shmlink._shmlink._set_foreign_writer_poll_ns`.
#pragma once

#include <shmlink/export.h>

#include <cstdint>

namespace shmlink::tuning {

/// Sets the longest slice (ns) Stream::wait_futex sleeps before it looks at cnt0 again without a
/// wake-up (default 10 ms; values below 1 ms count as 1 ms) and returns the previous value.
/// Process-wide; stored with relaxed ordering (each wait reads it with relaxed ordering at each
/// slice: a wait already sleeping finishes its current slice).
SHMLINK_EXPORT std::int64_t exchange_foreign_writer_poll_ns(std::int64_t ns) noexcept;

}  // namespace shmlink::tuning
