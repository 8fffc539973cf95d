// SPDX-License-Identifier: MIT
// Helpers shared by the shmlink subcommands (common.hpp).
#include "common.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>
#include <utility>

namespace shmlink::cli {

namespace {

constexpr std::string_view kSuffix = ".im.shm";

/// True when `s` ends with `suffix`.
bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// Inode of `path` (following links), or 0 when it cannot be stat'ed.
std::uint64_t inode_of(const std::string& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_ino);
}

}  // namespace

// ---- exit codes ------------------------------------------------------------------------

int exit_code_for(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return kExitOk;
    case Errc::invalid_argument:
    case Errc::name_too_long: return kExitUsage;
    case Errc::not_found: return kExitNotFound;
    case Errc::permission: return kExitPermission;
    case Errc::layout: return kExitLayout;
    case Errc::timeout: return kExitTimeout;
    default: return kExitFailure;
  }
}

std::string exit_code_help() {
  return "Exit codes:\n"
         "  0    success\n"
         "  1    failure (stream exists, no space, I/O error, torn read, ...)\n"
         "  2    usage error (bad option, shape, dtype or name; name longer than 79 bytes)\n"
         "  3    stream or directory not found\n"
         "  4    permission denied\n"
         "  5    layout mismatch (not a valid ImageStreamIO 2.00 stream file)\n"
         "  124  timed out waiting\n"
         "\n"
         "Streams live in $SHMLINK_DIR, else $MILK_SHM_DIR, else /milk/shm if it exists, else /dev/shm.\n"
         "--json output is one JSON document on stdout with a \"schema_version\" key; diagnostics go to stderr.";
}

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

// ---- streams ---------------------------------------------------------------------------

std::string resolve_stream(const std::string& name, const std::string& dir) {
  if (name.empty()) throw Error(Errc::invalid_argument, "stream name is empty");
  if (name.find('/') != std::string::npos) return shmlink::stream_path(name);
  // Accept "cam.im.shm" as the stream "cam", as listed by `ls /dev/shm`.
  std::string bare = ends_with(name, kSuffix) && name.size() > kSuffix.size()
                         ? name.substr(0, name.size() - kSuffix.size())
                         : name;
  if (dir.empty()) return shmlink::stream_path(bare);
  return shmlink::stream_path(dir + "/" + bare + std::string(kSuffix));
}

std::string resolve_directory(const std::string& dir) {
  return dir.empty() ? shmlink::stream_directory() : dir;
}

std::vector<std::string> list_stream_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    throw Error(errc_from_errno(ec.value()), fmt::format("listing stream directory {}: {}", dir, ec.message()));
  }
  std::vector<std::string> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string file = it->path().filename().string();
    if (file.size() <= kSuffix.size() || !ends_with(file, kSuffix)) continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    out.push_back(it->path().string());
  }
  if (ec) {
    throw Error(errc_from_errno(ec.value()), fmt::format("listing stream directory {}: {}", dir, ec.message()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string display_name(const std::string& path) {
  std::string base = std::filesystem::path(path).filename().string();
  if (ends_with(base, kSuffix)) base.resize(base.size() - kSuffix.size());
  return base;
}

bool pid_alive(std::int32_t pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;  // exists, owned by someone else; ESRCH = gone
}

std::int32_t writer_pid(const StreamInfo& info) noexcept {
  std::int32_t pid = 0;
  for (std::int32_t p : info.sem_write_pids) {
    if (p > 0) pid = p;
  }
  return pid > 0 ? pid : info.creator_pid;
}

std::vector<std::int32_t> live_readers(const StreamInfo& info) {
  std::vector<std::int32_t> out;
  for (std::int32_t p : info.sem_read_pids) {
    if (p > 0 && pid_alive(p)) out.push_back(p);
  }
  return out;
}

// ---- sampler ---------------------------------------------------------------------------

/// One file the sampler watches.
struct StreamSampler::Entry {
  std::string path;             ///< file path
  std::optional<Stream> stream; ///< open handle, when the file validated
  std::uint64_t inode = 0;      ///< inode of the file we mapped
  std::uint64_t last_cnt0 = 0;  ///< cnt0 at the previous refresh
  std::chrono::steady_clock::time_point last_time{};  ///< time of that sample
  bool sampled = false;         ///< last_cnt0/last_time are set
  std::string error;            ///< why the last open failed
  Errc error_code = Errc::ok;   ///< its condition

  /// (Re)opens the file, remembering its inode; records the error when it fails.
  void open() {
    stream.reset();
    sampled = false;
    error.clear();
    error_code = Errc::ok;
    const std::uint64_t before = inode_of(path);
    try {
      stream.emplace(open_for_inspection(path));
    } catch (const Error& e) {
      error = e.what();
      error_code = e.errc();
      return;
    } catch (const std::exception& e) {
      error = fmt::format("opening {}: {}", path, e.what());
      error_code = Errc::system;
      return;
    }
    const std::uint64_t after = inode_of(path);
    // If the file was replaced while we opened it, use the metadata's inode, so the next
    // refresh notices the mismatch and re-opens.
    inode = (before == after) ? after : stream->inode();
  }
};

StreamSampler::StreamSampler(std::string dir) : dir_(std::move(dir)) {}
StreamSampler::StreamSampler(StreamSampler&&) noexcept = default;
StreamSampler& StreamSampler::operator=(StreamSampler&&) noexcept = default;
StreamSampler::~StreamSampler() = default;

std::vector<StreamRow> StreamSampler::refresh() {
  const std::vector<std::string> paths = list_stream_files(dir_);

  // Merge the sorted listing with the sorted entries: keep, add, drop.
  std::vector<std::unique_ptr<Entry>> next;
  next.reserve(paths.size());
  auto old = entries_.begin();
  for (const std::string& path : paths) {
    while (old != entries_.end() && (*old)->path < path) ++old;
    if (old != entries_.end() && (*old)->path == path) {
      next.push_back(std::move(*old));
      ++old;
    } else {
      auto e = std::make_unique<Entry>();
      e->path = path;
      next.push_back(std::move(e));
    }
  }
  entries_ = std::move(next);

  std::vector<StreamRow> rows;
  rows.reserve(entries_.size());
  for (auto& e : entries_) {
    if (!e->stream || inode_of(e->path) != e->inode) e->open();
    StreamRow row;
    row.path = e->path;
    row.name = display_name(e->path);
    if (!e->stream) {
      row.error = e->error;
      row.error_code = e->error_code;
      rows.push_back(std::move(row));
      continue;
    }
    const std::uint64_t cnt0 = e->stream->cnt0();
    const auto now = std::chrono::steady_clock::now();
    if (e->sampled) {
      const double dt = std::chrono::duration<double>(now - e->last_time).count();
      const double dc = cnt0 >= e->last_cnt0 ? static_cast<double>(cnt0 - e->last_cnt0) : 0.0;
      if (dt > 0) row.rate_hz = dc / dt;
    }
    e->last_cnt0 = cnt0;
    e->last_time = now;
    e->sampled = true;
    try {
      row.info = e->stream->info();
      row.name = row.info->name.empty() ? row.name : row.info->name;
    } catch (const Error& err) {
      row.error = err.what();
      row.error_code = err.errc();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Json row_to_json(const StreamRow& row) {
  Json j;
  j["name"] = row.name;
  j["path"] = row.path;
  if (!row.info) {
    j["error"] = row.error;
    j["error_code"] = std::string(shmlink::strerror(row.error_code));
    j["exit_code"] = exit_code_for(row.error_code);
    return j;
  }
  const StreamInfo& info = *row.info;
  j["shape"] = info.shape;
  j["dtype"] = std::string(dtype_name(info.dtype));
  j["cnt0"] = info.frame.cnt0;
  if (row.rate_hz) {
    j["rate_hz"] = *row.rate_hz;
  } else {
    j["rate_hz"] = nullptr;
  }
  const std::int32_t wpid = writer_pid(info);
  j["writer_pid"] = wpid;
  j["writer_alive"] = pid_alive(wpid);
  const std::vector<std::int32_t> readers = live_readers(info);
  j["readers"] = readers.size();
  j["reader_pids"] = readers;
  j["semaphores"] = info.semaphores;
  j["sem_values"] = info.sem_values;
  j["write_flag"] = info.write_flag;
  j["atime_ns"] = info.frame.atime_ns;
  return j;
}

// ---- output ----------------------------------------------------------------------------

std::string Table::render(bool colour) const {
  const std::size_t ncol = headers.size();
  std::vector<std::size_t> width(ncol, 0);
  for (std::size_t c = 0; c < ncol; ++c) width[c] = headers[c].size();
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < ncol && c < row.size(); ++c) width[c] = std::max(width[c], row[c].text.size());
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
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < ncol; ++c) {
      if (c < row.size()) {
        emit(out, c, row[c].text, row[c].colour);
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

void print_json(const Json& j) {
  std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << '\n' << std::flush;
}

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

int report_error(const Error& e) {
  spdlog::error("{}", e.what());
  return exit_code_for(e.errc());
}

}  // namespace shmlink::cli

namespace shmlink::cli {

Stream open_for_inspection(const std::string& path) {
  try {
    return Stream::open(path);
  } catch (const Error& e) {
    if (e.errc() != Errc::permission) throw;
    OpenOptions ro;
    ro.writable = false;
    return Stream::open(path, ro);
  }
}

}  // namespace shmlink::cli
