// SPDX-License-Identifier: MIT
// Overflow-checked size arithmetic for sizes read from shared files (docs/design/streams.md and
// queues.md, "Trust rules"). Every product or sum of peer-written fields that sizes a mapping,
// an array or a copy goes through these, so a wrapped size can never pass validation.
#pragma once

#include <cstdint>
#include <optional>

namespace shmlink::os {

/// a x b, or nullopt when the product does not fit 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a + b, or nullopt when the sum does not fit 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// A running size that remembers whether any step overflowed (then value() is meaningless and
/// ok() false). For layouts built from several chunks: accumulate, then check once.
class CheckedSize {
 public:
  constexpr CheckedSize() noexcept = default;
  constexpr explicit CheckedSize(std::uint64_t v) noexcept : v_(v) {}
  /// Adds `n`.
  constexpr CheckedSize& add(std::uint64_t n) noexcept {
    ok_ = ok_ && !__builtin_add_overflow(v_, n, &v_);
    return *this;
  }
  /// Adds `count` x `each`.
  constexpr CheckedSize& add(std::uint64_t count, std::uint64_t each) noexcept {
    std::uint64_t p = 0;
    ok_ = ok_ && !__builtin_mul_overflow(count, each, &p);
    return add(p);
  }
  /// Adds `count` x `each` rounded up to a multiple of `align` (a power of two): one chunk of a
  /// layout whose chunks start aligned.
  constexpr CheckedSize& add_rounded(std::uint64_t count, std::uint64_t each, std::uint64_t align) noexcept {
    std::uint64_t p = 0;
    ok_ = ok_ && !__builtin_mul_overflow(count, each, &p) && !__builtin_add_overflow(p, align - 1, &p);
    return add(p & ~(align - 1));
  }
  [[nodiscard]] constexpr bool ok() const noexcept { return ok_; }
  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return v_; }

 private:
  std::uint64_t v_ = 0;
  bool ok_ = true;
};

}  // namespace shmlink::os
