// SPDX-License-Identifier: MIT
// The library's logging hook (include/shmlink/log.hpp).
#include "os/log_internal.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace shmlink {
namespace {

LogLevel level_from_env() noexcept {
  const char* v = std::getenv("SHMLINK_LOG_LEVEL");
  if (v == nullptr) return LogLevel::warn;
  static constexpr const char* kNames[] = {"error", "warn", "info", "debug", "trace", "off"};
  for (int i = 0; i < 6; ++i)
    if (std::strcmp(v, kNames[i]) == 0) return static_cast<LogLevel>(i);
  return LogLevel::warn;
}

std::atomic<int>& level_ref() noexcept {
  static std::atomic<int> level{static_cast<int>(level_from_env())};
  return level;
}

std::mutex& handler_mutex() noexcept {
  static std::mutex m;
  return m;
}

LogHandler& handler_ref() {
  static LogHandler h;
  return h;
}

}  // namespace

void set_log_handler(LogHandler handler) {
  std::lock_guard lock(handler_mutex());
  handler_ref() = std::move(handler);
}

void set_log_level(LogLevel level) noexcept { level_ref().store(static_cast<int>(level), std::memory_order_relaxed); }

LogLevel log_level() noexcept { return static_cast<LogLevel>(level_ref().load(std::memory_order_relaxed)); }

namespace detail {

bool log_enabled(LogLevel level) noexcept {
  return level != LogLevel::off && static_cast<int>(level) <= level_ref().load(std::memory_order_relaxed);
}

void log(LogLevel level, const std::string& message) noexcept {
  if (!log_enabled(level)) return;
  static constexpr const char* kNames[] = {"error", "warn", "info", "debug", "trace"};
  try {
    std::lock_guard lock(handler_mutex());
    if (handler_ref()) {
      handler_ref()(level, message);
      return;
    }
  } catch (...) {
    // A throwing handler must not take the library down; fall through to stderr.
  }
  std::fprintf(stderr, "shmlink %s: %s\n", kNames[static_cast<int>(level)], message.c_str());
}

}  // namespace detail
}  // namespace shmlink
