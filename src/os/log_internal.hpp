// SPDX-License-Identifier: MIT
// Internal logging entry point; the public hook is include/shmlink/log.hpp.
#pragma once

#include <shmlink/log.hpp>

#include <string>

namespace shmlink::detail {

/// True when messages of `level` reach the handler (cheap check before formatting).
bool log_enabled(LogLevel level) noexcept;

/// Sends one message to the handler. Never throws.
void log(LogLevel level, const std::string& message) noexcept;

}  // namespace shmlink::detail
