// SPDX-License-Identifier: MIT
// The command-line layer shared by the `shmlink bench` subcommands (bench_common.hpp).
#include "bench_common.hpp"

#include <filesystem>
#include <system_error>

namespace shmlink::cli::bench {

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
