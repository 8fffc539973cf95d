// SPDX-License-Identifier: MIT
// The public form of the stream readers' testing knobs (include/shmlink/tuning.hpp) over the
// internal ones (stream/tuning.hpp).
#include <shmlink/tuning.hpp>

#include "stream/tuning.hpp"

#include <atomic>

namespace shmlink::tuning {

std::int64_t exchange_foreign_writer_poll_ns(std::int64_t ns) noexcept {
  return detail::foreign_writer_poll_ns().exchange(ns, std::memory_order_relaxed);
}

}  // namespace shmlink::tuning
