// SPDX-License-Identifier: MIT
// Helpers of the region channel tests (region_queue_test.cpp, region_stream_test.cpp).
#pragma once

#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace shmlink::test {

inline constexpr std::size_t k1M = 1024 * 1024;

/// A small SPSC queue: 16 cells of 2 values.
inline QueueSpec queue_spec() {
  QueueSpec q;
  q.capacity = 16;
  q.max_values = 2;
  return q;
}

/// The Error `f` throws (a test failure when it throws none).
template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(Errc::ok, "");
}

}  // namespace shmlink::test
