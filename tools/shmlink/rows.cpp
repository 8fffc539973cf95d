// SPDX-License-Identifier: MIT
// Stream rows of `ls` and `monitor`: writer, readers, order, JSON (rows.hpp).
#include "rows.hpp"

#include "channels.hpp"
#include "output.hpp"

#include <shmlink/region.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace shmlink::cli {

bool pid_alive(std::int32_t pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;  // exists, owned by someone else; ESRCH = gone
}

bool pids_of_this_kernel(const std::string& path) {
  const auto locator = split_region_locator(path);
  if (!locator) return true;
  try {
    const Region region = Region::open(locator->first, false);
    return region.same_kernel() && region.created_by_this_kernel();
  } catch (const std::exception&) {
    return true;  // the channel's own open says what is wrong
  }
}

PidLiveness pid_liveness(std::int32_t pid, bool this_kernel) noexcept {
  if (!this_kernel && pid > 0) return PidLiveness::unknown;
  return pid_alive(pid) ? PidLiveness::alive : PidLiveness::dead;
}

std::string_view liveness_text(PidLiveness l) noexcept {
  switch (l) {
    case PidLiveness::alive: return "alive";
    case PidLiveness::dead: return "dead";
    case PidLiveness::unknown: break;
  }
  return "other kernel?";
}

std::string pid_cell_text(std::int32_t pid, bool this_kernel) {
  return fmt::format("{} ({})", pid, liveness_text(pid_liveness(pid, this_kernel)));
}

Json liveness_json(std::int32_t pid, bool this_kernel) {
  const PidLiveness l = pid_liveness(pid, this_kernel);
  if (l == PidLiveness::unknown) return nullptr;
  return l == PidLiveness::alive;
}

std::int32_t writer_pid(const StreamInfo& info) noexcept {
  std::int32_t pid = 0;
  for (std::int32_t p : info.sem_write_pids) {
    if (p > 0) pid = p;
  }
  return pid > 0 ? pid : info.creator_pid;
}

std::string reader_wait_text(const StreamReader& r) {
  return r.semaphore >= 0 ? fmt::format("semaphore {}", r.semaphore) : std::string("mapped");
}

namespace {

/// True when this process may read /proc/PID/fd and /proc/PID/maps, so that a /proc scan that
/// did not find `pid` holding a file means it holds neither a descriptor nor a mapping of it.
/// Opens both without reading them (reading maps would take the process's mmap_lock).
bool proc_inspectable(std::int32_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  const int dir = ::open((base + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return false;
  ::close(dir);
  const int maps = ::open((base + "/maps").c_str(), O_RDONLY | O_CLOEXEC);
  if (maps < 0) return false;
  ::close(maps);
  return true;
}

}  // namespace

std::vector<StreamReader> stream_readers(const StreamInfo& info, const std::vector<int>& holders,
                                         bool this_kernel) {
  std::vector<StreamReader> out;
  for (std::size_t i = 0; i < info.sem_read_pids.size(); ++i) {
    const std::int32_t p = info.sem_read_pids[i];
    if (p <= 0 || (this_kernel && !pid_alive(p))) continue;
    // A live pid that neither maps nor opens the file is not its reader: a reader that died
    // without releasing the slot, its pid since reused by an unrelated process.
    if (this_kernel && std::find(holders.begin(), holders.end(), p) == holders.end() && proc_inspectable(p)) continue;
    if (std::none_of(out.begin(), out.end(), [p](const StreamReader& r) { return r.pid == p; }))
      out.push_back({p, static_cast<int>(i)});
  }
  const std::int32_t writer = writer_pid(info);
  const auto self = static_cast<std::int32_t>(::getpid());
  for (int p : holders) {
    if (p == writer || p == self) continue;
    if (std::none_of(out.begin(), out.end(), [p](const StreamReader& r) { return r.pid == p; }))
      out.push_back({p, -1});
  }
  std::sort(out.begin(), out.end(), [](const StreamReader& a, const StreamReader& b) { return a.pid < b.pid; });
  return out;
}

std::string readers_text(const std::vector<StreamReader>& readers) {
  std::string out;
  for (const StreamReader& r : readers) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} ({})", r.pid, reader_wait_text(r));
  }
  return out.empty() ? std::string("-") : out;
}

void add_readers_json(Json& j, const std::vector<StreamReader>& readers, int uninspectable) {
  std::vector<std::int32_t> pids;
  Json waits = Json::array();
  for (const StreamReader& r : readers) {
    pids.push_back(r.pid);
    waits.push_back(Json{{"pid", r.pid},
                         {"wait", r.semaphore >= 0 ? "semaphore" : "mapped"},
                         {"semaphore", r.semaphore >= 0 ? Json(r.semaphore) : Json(nullptr)}});
  }
  j["readers"] = readers.size();
  j["reader_pids"] = pids;
  j["reader_waits"] = std::move(waits);
  j["readers_uninspectable"] = uninspectable;
}

const std::vector<std::string>& row_order_names() {
  static const std::vector<std::string> names = {"name", "rate", "cnt0", "readers"};
  return names;
}

RowOrder row_order_from_name(std::string_view name) noexcept {
  if (name == "rate") return RowOrder::rate;
  if (name == "cnt0") return RowOrder::cnt0;
  if (name == "readers") return RowOrder::readers;
  return RowOrder::name;
}

void sort_rows(std::vector<StreamRow>& rows, RowOrder order) {
  // The key of a row, larger first; rows without metadata (or without a rate) rank below all.
  auto key = [order](const StreamRow& r) -> std::optional<double> {
    if (!r.info) return std::nullopt;
    switch (order) {
      case RowOrder::rate: return r.rate_hz;
      case RowOrder::cnt0: return static_cast<double>(r.info->frame.cnt0);
      case RowOrder::readers: return static_cast<double>(r.readers.size());
      case RowOrder::name: break;
    }
    return 0.0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const StreamRow& a, const StreamRow& b) {
    if (order != RowOrder::name) {
      const std::optional<double> ka = key(a);
      const std::optional<double> kb = key(b);
      if (ka != kb) return kb < ka;  // nullopt compares below every value
    }
    return a.name < b.name;
  });
}

void find_readers(std::vector<StreamRow>& rows, ReaderCache* cache) {
  ReaderCache scan;
  std::vector<StreamRow*> with_info;
  for (StreamRow& row : rows) {
    if (!row.info) continue;
    scan.paths.push_back(row.path);
    scan.inodes.push_back(row.info->inode);
    scan.claimants.push_back(row.info->sem_read_pids);
    with_info.push_back(&row);
  }
  if (with_info.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  const bool reuse = cache != nullptr && cache->valid && now - cache->when < kReaderScanMaxAge &&
                     cache->paths == scan.paths && cache->inodes == scan.inodes &&
                     cache->claimants == scan.claimants;
  if (!reuse) {
    scan.holders = processes_using_each(scan.paths, &scan.uninspectable);
    scan.valid = true;
    scan.when = now;
    spdlog::debug("readers: scanned /proc for {} stream file{}; {} process{} could not be inspected",
                  scan.paths.size(), scan.paths.size() == 1 ? "" : "s", scan.uninspectable,
                  scan.uninspectable == 1 ? "" : "es");
    if (cache != nullptr) *cache = scan;
  }
  const ReaderCache& used = reuse ? *cache : scan;
  for (std::size_t i = 0; i < with_info.size(); ++i) {
    with_info[i]->readers =
        stream_readers(*with_info[i]->info, used.holders[i], with_info[i]->pids_of_this_kernel);
    with_info[i]->readers_uninspectable = used.uninspectable;
  }
}

Json row_to_json(const StreamRow& row) {
  Json j;
  j["name"] = row.name;
  j["kind"] = std::string(channel_kind_name(ChannelKind::stream));
  j["path"] = row.path;
  if (!row.info) {
    add_error_json(j, row.error, row.error_code);
    return j;
  }
  const StreamInfo& info = *row.info;
  // "name" is the file's own name; the one stored in the file may differ (a copied or forged file).
  j["stored_name"] = info.name;
  j["name_differs"] = info.name != row.name;
  j["shape"] = info.shape;
  j["dtype"] = std::string(dtype_name(info.dtype));
  j["depth"] = info.depth;
  j["cnt0"] = info.frame.cnt0;
  if (row.rate_hz) {
    j["rate_hz"] = *row.rate_hz;
  } else {
    j["rate_hz"] = nullptr;
  }
  const std::int32_t wpid = writer_pid(info);
  j["writer_pid"] = wpid;
  j["writer_alive"] = liveness_json(wpid, row.pids_of_this_kernel);
  add_readers_json(j, row.readers, row.readers_uninspectable);
  j["semaphores"] = info.semaphores;
  j["sem_values"] = info.sem_values;
  j["write_flag"] = info.write_flag;
  j["atime_ns"] = info.frame.atime_ns;
  j["bridge"] = bridge_json(row.bridge);
  return j;
}

}  // namespace shmlink::cli
