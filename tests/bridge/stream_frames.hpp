// SPDX-License-Identifier: MIT
// Helpers of the bridge service tests: f32 test frames and the frame a stream file holds now.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace shmlink::test {

/// `n` floats base, base + 1, ... (a frame told apart by its base).
inline std::vector<float> ramp(std::size_t n, float base) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  return v;
}

/// The frame of the f32 stream at `path` (re-opened each time: a replica may be re-created), or
/// empty when it cannot be read.
inline std::vector<float> frame_of(const std::string& path) {
  try {
    const Stream s = Stream::open(path);
    std::vector<float> v(s.frame_elements());
    if (!s.read_copy(std::as_writable_bytes(std::span(v))).ok()) return {};
    return v;
  } catch (const Error&) {
    return {};
  }
}

}  // namespace shmlink::test
