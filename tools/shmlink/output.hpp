// SPDX-License-Identifier: MIT
/// @file output.hpp
/// @brief What the CLI prints: escaped names and messages, tables, times, rates and JSON.
#pragma once

#include "cli.hpp"

#include <shmlink/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

// ---- names and messages ----------------------------------------------------------------

/// A channel name (or any text from a file or the command line) as it is printed: terminal control
/// characters, newlines and bytes that are not UTF-8 shown as escapes (shmlink::escape_name()), so
/// a hostile name can neither drive the terminal nor forge output lines.
std::string shown(std::string_view name);

/// A message as it is printed: like shown(), but backslashes are kept as they are, because
/// messages from the library already show names escaped (a second pass would double them).
/// Used for error messages and for table cells, which mix names and messages.
std::string shown_message(std::string_view text);

/// The fields of a row that could not be read: "error" (message), "error_code" (the condition's
/// name) and "exit_code".
void add_error_json(Json& j, const std::string& error, Errc code);

// ---- output ----------------------------------------------------------------------------

/// One table cell: text and an optional ANSI SGR colour code ("32" = green) applied after
/// padding so alignment is unaffected.
struct Cell {
  std::string text;     ///< the visible text
  const char* colour = nullptr;  ///< SGR parameters, or nullptr for none
};

/// A plain text table with a header row; numeric columns can be right-aligned.
struct Table {
  std::vector<std::string> headers;  ///< column titles
  std::vector<bool> right_aligned;   ///< per column; missing entries mean left-aligned
  std::vector<std::vector<Cell>> rows;  ///< cells, one vector per row

  /// Renders the table, two spaces between columns; colours only when `colour` is true. Cell
  /// texts are escaped (shown_message()): control characters and non-UTF-8 bytes cannot reach the
  /// terminal.
  [[nodiscard]] std::string render(bool colour) const;
};

/// True when `fd` is a terminal.
bool is_tty(int fd) noexcept;

/// True when colour output is wanted on `fd`: a terminal and NO_COLOR unset (or empty).
bool colour_enabled(int fd) noexcept;

/// Formats ns since the epoch as ISO 8601 UTC with nanoseconds ("2024-05-01T12:00:00.000000001Z");
/// "-" for 0.
std::string format_time_ns(std::int64_t ns);

/// Formats an update rate for tables ("1234.5", "0", "-" when unknown).
std::string format_rate(std::optional<double> hz);

/// A JSON document as text (`indent` as nlohmann's dump(): -1 for one line). Never throws for the
/// text in it: bytes that are not UTF-8 (names are bytes in files) become U+FFFD, so a document
/// describes work already done even when a name holds such bytes; names are otherwise kept as
/// they are (JSON escapes control characters itself).
std::string json_text(const Json& j, int indent = 2);

/// Prints a JSON document (json_text(), 2-space indent) and a newline on stdout.
void print_json(const Json& j);

/// Sleeps `duration`, in short steps, returning early (false) when `keep_running` says so.
bool sleep_while(std::chrono::nanoseconds duration, const std::function<bool()>& keep_running);

}  // namespace shmlink::cli
