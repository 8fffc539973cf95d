// SPDX-License-Identifier: MIT
// The command-line layer shared by the `shmlink bench` subcommands (bench_common.hpp).
#include "bench_common.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <system_error>

namespace shmlink::cli::bench {

namespace {

/// Parses "4096", "4K", "64KiB", "1M", "16MiB" (K and M are binary: 1024 and 1048576).
std::optional<std::size_t> parse_size(std::string_view text) {
  std::size_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || value == 0) return std::nullopt;
  std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
  std::size_t mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") mult = 1024;
  else if (unit == "M" || unit == "m" || unit == "MiB") mult = std::size_t{1} << 20;
  else if (!unit.empty() && unit != "B") return std::nullopt;
  if (value > (std::size_t{0xFFFFFFFFu} / mult)) return std::nullopt;  // one u8 axis of a stream
  return value * mult;
}

}  // namespace

std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    const auto v = parse_size(std::string_view(text).substr(pos, end - pos));
    if (!v) throw Error(Errc::invalid_argument, "bench: bad frame size list '" + text + "' (e.g. 4K,64K,1M)");
    out.push_back(*v);
    pos = end + 1;
  }
  return out;
}

std::string size_text(std::size_t bytes) {
  if (bytes % (std::size_t{1} << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes % 1024 == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

std::string markdown_table(const Table& t) {
  std::string out = "|";
  for (const auto& h : t.headers) out += " " + h + " |";
  out += "\n|";
  for (std::size_t c = 0; c < t.headers.size(); ++c)
    out += c < t.right_aligned.size() && t.right_aligned[c] ? "---:|" : "---|";
  out += '\n';
  for (const auto& row : t.rows) {
    out += "|";
    for (std::size_t c = 0; c < t.headers.size(); ++c) out += " " + (c < row.size() ? row[c].text : "") + " |";
    out += '\n';
  }
  return out;
}

BenchRegion::BenchRegion(const std::string& path, const std::string& scratch, std::size_t size)
    : path_(path.empty() ? scratch + "/bench.region.shm" : region_path(path)) {
  std::size_t bytes = std::size_t{4} << 20;
  while (bytes < size) bytes <<= 1;
  region_ = std::make_shared<Region>(Region::create(path_, bytes, OpenMode::ExclusiveCreate));
}

BenchRegion::~BenchRegion() {
  region_.reset();
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

StreamPlace stream_place(const std::shared_ptr<BenchRegion>& r) {
  StreamPlace p;
  p.label = "region";
  p.create = [r](const std::string& name, const StreamSpec& spec) {
    return r->region().create_stream(name, spec, OpenMode::PurgeAndCreate);
  };
  p.remove = [r](const std::string& name) { r->region().remove(name); };
  return p;
}

QueuePlace queue_place(const std::shared_ptr<BenchRegion>& r) {
  QueuePlace p;
  p.label = "region";
  p.create = [r](const std::string& name, const QueueSpec& spec) {
    return r->region().create_queue(name, spec, OpenMode::PurgeAndCreate);
  };
  p.open = [r](const std::string& name) { return r->region().open_queue(name); };
  p.remove = [r](const std::string& name) { r->region().remove(name); };
  return p;
}

}  // namespace shmlink::cli::bench
