// SPDX-License-Identifier: MIT
// What the CLI prints: escaped text, tables, times, rates, JSON (output.hpp).
#include "output.hpp"

#include <shmlink/stream.hpp>

#include <fmt/format.h>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace shmlink::cli {

// ---- names and messages ----------------------------------------------------------------

std::string shown(std::string_view name) { return shmlink::escape_name(name); }

std::string shown_message(std::string_view text) {
  std::string safe;
  for (std::size_t pos = 0;;) {
    const std::size_t slash = text.find('\\', pos);
    safe += shown(text.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
    if (slash == std::string_view::npos) break;
    safe += '\\';
    pos = slash + 1;
  }
  return safe;
}

void add_error_json(Json& j, const std::string& error, Errc code) {
  j["error"] = error;
  j["error_code"] = std::string(shmlink::strerror(code));
  j["exit_code"] = exit_code_for(code);
}

// ---- output ----------------------------------------------------------------------------

std::string Table::render(bool colour) const {
  const std::size_t ncol = headers.size();
  // Cells hold names and messages from files: escaped here, once, for every table.
  std::vector<std::vector<std::string>> texts(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (const Cell& cell : rows[r]) texts[r].push_back(shown_message(cell.text));
  }
  std::vector<std::size_t> width(ncol, 0);
  for (std::size_t c = 0; c < ncol; ++c) width[c] = headers[c].size();
  for (const auto& row : texts) {
    for (std::size_t c = 0; c < ncol && c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  auto emit = [&](std::string& out, std::size_t c, const std::string& text, const char* sgr) {
    const bool right = c < right_aligned.size() && right_aligned[c];
    const bool last = c + 1 == ncol;
    const std::size_t pad = width[c] - std::min(width[c], text.size());
    std::string cell;
    if (right) cell.append(pad, ' ');
    cell += text;
    if (colour && sgr != nullptr) cell = fmt::format("\x1b[{}m{}\x1b[0m", sgr, cell);
    out += cell;
    if (!right && !last) out.append(pad, ' ');
    if (!last) out += "  ";
  };
  std::string out;
  for (std::size_t c = 0; c < ncol; ++c) emit(out, c, headers[c], colour ? "1" : nullptr);
  out += '\n';
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    for (std::size_t c = 0; c < ncol; ++c) {
      if (c < row.size()) {
        emit(out, c, texts[r][c], row[c].colour);
      } else {
        emit(out, c, "", nullptr);
      }
    }
    // Drop trailing blanks left by empty last cells.
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

bool is_tty(int fd) noexcept { return ::isatty(fd) == 1; }

bool colour_enabled(int fd) noexcept {
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour != nullptr && no_colour[0] != '\0') return false;
  return is_tty(fd);
}

std::string format_time_ns(std::int64_t ns) {
  if (ns == 0) return "-";
  std::int64_t sec = ns / 1'000'000'000;
  std::int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    sec -= 1;
  }
  const time_t t = static_cast<time_t>(sec);
  struct tm tm {};
  if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(ns);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:09d}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

std::string format_rate(std::optional<double> hz) {
  if (!hz) return "-";
  if (*hz == 0.0) return "0";
  if (*hz >= 100.0) return fmt::format("{:.0f}", *hz);
  return fmt::format("{:.1f}", *hz);
}

void print_json(const Json& j) { std::cout << json_text(j) << '\n' << std::flush; }

bool sleep_while(std::chrono::nanoseconds duration, const std::function<bool()>& keep_running) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + duration;
  constexpr auto kStep = std::chrono::milliseconds(20);
  while (true) {
    if (keep_running && !keep_running()) return false;
    const auto now = clock::now();
    if (now >= deadline) return true;
    std::this_thread::sleep_for(std::min<clock::duration>(deadline - now, kStep));
  }
}

std::string json_text(const Json& j, int indent) { return j.dump(indent, ' ', false, Json::error_handler_t::replace); }

}  // namespace shmlink::cli
