// SPDX-License-Identifier: MIT
/// @file args.hpp
/// @brief Parsing command-line values: shapes, permission bits, seconds and durations, and the
/// CLI11 validators that accept them.
#pragma once

#include <CLI/CLI.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

// ---- argument parsing ------------------------------------------------------------------

/// Parses a shape in ISIO order, fastest axis first: "W", "WxH" or "WxHxD" (also 'X' or ','
/// as separators); each axis 1..2^32-1. @return nullopt and sets `why` when malformed.
std::optional<std::vector<std::uint32_t>> parse_shape(std::string_view text, std::string* why = nullptr);

/// Formats a shape as "WxHxD" (ISIO order).
std::string format_shape(const std::vector<std::uint32_t>& shape);

/// Parses permission bits written in octal ("0660", "660"); at most 07777.
std::optional<mode_t> parse_permissions(std::string_view text) noexcept;

/// Parses a byte count: a number with an optional binary unit K, M, G or T (KiB, MiB, GiB, TiB;
/// "KiB" and "K" alike, case-insensitive): "64M" = 67108864. @return nullopt when malformed or
/// over 2^63.
std::optional<std::uint64_t> parse_size(std::string_view text) noexcept;
/// CLI11 validator accepting what parse_size() accepts ("SIZE").
CLI::Validator size_validator();

/// CLI11 validator accepting what parse_shape() accepts.
CLI::Validator shape_validator();
/// CLI11 validator accepting what shmlink::parse_dtype() accepts.
CLI::Validator dtype_validator();
/// CLI11 validator accepting what parse_permissions() accepts.
CLI::Validator permissions_validator();
/// CLI11 validator for a duration in seconds: a finite number in [min_s, max_s].
CLI::Validator seconds_validator(double min_s, double max_s);

/// Parses a duration: a non-negative number followed by a unit, `s`, `m`, `h` or `d` ("0s",
/// "90s", "10m", "2h", "1.5d"); a bare number is seconds. @return nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) noexcept;

/// CLI11 validator accepting what parse_duration() accepts.
CLI::Validator duration_validator();

}  // namespace shmlink::cli
