// SPDX-License-Identifier: MIT
/// @file log.hpp
/// @brief The library's logging hook. The library never prints on its own except through this
/// callback; the default handler writes to stderr messages at or above the level taken from
/// `SHMLINK_LOG_LEVEL` (error, warn, info, debug, trace, off; default warn).
#pragma once

#include <shmlink/export.h>

#include <functional>
#include <string_view>

namespace shmlink {

/// Severity of a log message, most severe first.
enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3, trace = 4, off = 5 };

/// A log sink. Called from any thread that logs; must be thread-safe and must not call back
/// into shmlink.
using LogHandler = std::function<void(LogLevel, std::string_view)>;

/// Replaces the process-wide log handler; an empty handler restores the stderr default.
/// Thread-safe.
SHMLINK_EXPORT void set_log_handler(LogHandler handler);

/// Sets the most verbose level that reaches the handler. Thread-safe.
SHMLINK_EXPORT void set_log_level(LogLevel level) noexcept;

/// The current level (initially from `SHMLINK_LOG_LEVEL`).
SHMLINK_EXPORT LogLevel log_level() noexcept;

}  // namespace shmlink
