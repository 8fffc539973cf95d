// SPDX-License-Identifier: MIT
// Parsing command-line values (args.hpp).
#include "args.hpp"

#include <shmlink/stream.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace shmlink::cli {

// ---- argument parsing ------------------------------------------------------------------

std::optional<std::vector<std::uint32_t>> parse_shape(std::string_view text, std::string* why) {
  auto fail = [why](std::string msg) -> std::optional<std::vector<std::uint32_t>> {
    if (why != nullptr) *why = std::move(msg);
    return std::nullopt;
  };
  if (text.empty()) return fail("empty shape");
  std::vector<std::uint32_t> shape;
  std::size_t pos = 0;
  while (true) {
    std::size_t end = text.find_first_of("xX,", pos);
    std::string_view part = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (part.empty()) return fail(fmt::format("empty axis in shape '{}'", text));
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && value > 0xFFFFFFFFu)) {
      return fail(fmt::format("axis '{}' of shape '{}' is too large (at most 4294967295)", part, text));
    }
    if (ec != std::errc() || ptr != part.data() + part.size()) {
      return fail(fmt::format("axis '{}' of shape '{}' is not a number", part, text));
    }
    if (value == 0) return fail(fmt::format("axis of shape '{}' is 0 (each axis must be >= 1)", text));
    shape.push_back(static_cast<std::uint32_t>(value));
    if (shape.size() > 3) return fail(fmt::format("shape '{}' has more than 3 axes", text));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return shape;
}

std::string format_shape(const std::vector<std::uint32_t>& shape) {
  std::string out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) out += 'x';
    out += std::to_string(shape[i]);
  }
  return out;
}

std::optional<mode_t> parse_permissions(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > 07777u) return std::nullopt;
  return static_cast<mode_t>(value);
}

CLI::Validator shape_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        std::string why;
        if (!parse_shape(value, &why)) return why + " (expected W, WxH or WxHxD, fastest axis first)";
        return {};
      },
      "WxHxD");
}

CLI::Validator dtype_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!shmlink::parse_dtype(value)) {
          return fmt::format(
              "unknown dtype '{}' (expected u8 i8 u16 i16 u32 i32 u64 i64 f16 f32 f64 c64 c128 "
              "or numpy names such as uint16, float32, complex64)",
              value);
        }
        return {};
      },
      "DTYPE");
}

CLI::Validator permissions_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!parse_permissions(value)) return fmt::format("'{}' is not octal permission bits (e.g. 0660)", value);
        return {};
      },
      "OCTAL");
}

CLI::Validator seconds_validator(double min_s, double max_s) {
  return CLI::Validator(
      [min_s, max_s](std::string& value) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(value.c_str(), &end);
        if (value.empty() || end != value.c_str() + value.size() || errno != 0 || !std::isfinite(v) || v < min_s ||
            v > max_s) {
          return fmt::format("'{}' is not a number of seconds in [{:g}, {:g}]", value, min_s, max_s);
        }
        return {};
      },
      "SECONDS");
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  double unit = 1.0;
  switch (text.back()) {
    case 's': unit = 1.0; text.remove_suffix(1); break;
    case 'm': unit = 60.0; text.remove_suffix(1); break;
    case 'h': unit = 3600.0; text.remove_suffix(1); break;
    case 'd': unit = 86400.0; text.remove_suffix(1); break;
    default: break;
  }
  if (text.empty() || text.front() == '-' || text.front() == '+') return std::nullopt;
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value) || value < 0) return std::nullopt;
  const double ns = value * unit * 1e9;
  if (ns > 1e18) return std::nullopt;  // about 31 years: beyond any age a file can have
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!parse_duration(value)) {
          return fmt::format("'{}' is not a duration (a number and a unit: 0s, 90s, 10m, 2h, 1.5d)", value);
        }
        return {};
      },
      "DURATION");
}


/// Parses a byte count: a number with an optional binary unit K, M, G or T (KiB, MiB, GiB, TiB;
/// "KiB" and "K" alike, case-insensitive): "64M" = 67108864. @return nullopt when malformed or
/// over 2^63.
std::optional<std::uint64_t> parse_size(std::string_view text) noexcept {
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) return std::nullopt;
  std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
  if (unit.size() == 3 && (unit.substr(1) == "iB" || unit.substr(1) == "ib")) unit = unit.substr(0, 1);
  unsigned shift = 0;
  if (unit.empty() || unit == "B" || unit == "b") {
    shift = 0;
  } else if (unit.size() == 1) {
    switch (unit[0]) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      default: return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (value > (std::uint64_t{1} << 63) >> shift) return std::nullopt;
  return value << shift;
}

/// CLI11 validator accepting what parse_size() accepts.
CLI::Validator size_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!parse_size(value)) return fmt::format("'{}' is not a size (a number and K, M, G or T: 64M, 1G)", value);
        return {};
      },
      "SIZE");
}

}  // namespace shmlink::cli
