// SPDX-License-Identifier: MIT
// VILLASnode shmem regions for `ls` and `info`: finding them in /dev/shm by fingerprint, reading
// them without mapping or writing a byte, and who holds them (villas_rows.hpp).
#include "villas_rows.hpp"

#include "channels.hpp"
#include "output.hpp"
#include "rows.hpp"
#include "streams.hpp"

#include <shmlink/catalog.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

namespace shmlink::cli {

namespace {

/// The holders of a file as found by the scan, this process left out.
std::vector<int> others(std::vector<int> pids) {
  const int self = static_cast<int>(::getpid());
  pids.erase(std::remove(pids.begin(), pids.end(), self), pids.end());
  return pids;
}

}  // namespace

std::string resolve_villas(const std::string& name) {
  if (name.empty() || name == "/") throw Error(Errc::invalid_argument, "VILLAS region name is empty");
  const std::string bare = name.front() == '/' ? name.substr(1) : name;
  if (bare.find('/') != std::string::npos) return name;  // a path, used as given
  return std::string(kVillasShmDir) + "/" + bare;
}

std::vector<VillasRow> list_villas_regions(const std::vector<ChannelListing>* dev_shm) {
  const std::string dir(kVillasShmDir);
  std::vector<ChannelListing> files;
  try {
    if (dev_shm != nullptr)
      files = *dev_shm;
    else
      files = list_channels(dir, false);  // VILLAS regions are found by their first bytes
  } catch (const Error& e) {
    if (e.errc() != Errc::not_found && e.errc() != Errc::permission) throw;
    // A container without /dev/shm, or one this user may not list: no VILLAS region can be seen.
    spdlog::debug("villas regions: {} cannot be listed ({}); no VILLAS regions shown", dir, e.what());
    return {};
  }
  std::vector<VillasRow> rows;
  for (const ChannelListing& file : files) {
    if (file.kind != "villas") continue;
    VillasRow row;
    row.path = file.path;
    row.name = file.name;
    try {
      // The header alone is read (pread, never mapped), whatever the file's size.
      row.info = villas::inspect_file(file.path);
    } catch (const Error& e) {
      if (e.errc() == Errc::not_found) continue;  // removed since the listing
      row.error = e.what();
      row.error_code = e.errc();
    }
    rows.push_back(std::move(row));
  }
  find_villas_holders(rows);
  return rows;
}

villas::RegionInfo inspect_villas_file(const std::string& path) {
  require_regular_file(path, "VILLAS region");
  return villas::inspect_file(path);  // pread, never mapped: a file that shrinks cannot raise SIGBUS
}

void find_villas_holders(std::vector<VillasRow>& rows) {
  if (rows.empty()) return;
  // One /proc scan for every region and its rendezvous semaphore (sem_open's file).
  std::vector<std::string> paths;
  for (const VillasRow& row : rows) paths.push_back(row.path);
  for (const VillasRow& row : rows) {
    const std::filesystem::path p(row.path);
    paths.push_back((p.parent_path() / ("sem." + p.filename().string())).string());
  }
  int uninspectable = 0;
  const std::vector<std::vector<int>> holders = processes_using_each(paths, &uninspectable);
  spdlog::debug("villas regions: scanned /proc for {} region{}; {} process{} could not be inspected", rows.size(),
                rows.size() == 1 ? "" : "s", uninspectable, uninspectable == 1 ? "" : "es");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    rows[i].holders = others(holders[i]);
    rows[i].holders_uninspectable = uninspectable;
    struct stat st {};
    const uid_t self = ::geteuid();
    rows[i].holders_may_be_hidden =
        uninspectable > 0 && self != 0 && (::stat(rows[i].path.c_str(), &st) != 0 || st.st_uid != self);
    rows[i].semaphore_path = paths[rows.size() + i];
    rows[i].semaphore = ::lstat(rows[i].semaphore_path.c_str(), &st) == 0;
    rows[i].semaphore_holders = others(holders[rows.size() + i]);
  }
}

std::string_view villas_mode_name(const villas::RegionInfo& info) noexcept {
  return info.pthread_mode ? "pthread" : "polling";
}

std::optional<bool> villas_stale(const VillasRow& row) noexcept {
  if (!row.holders.empty()) return false;
  if (row.holders_may_be_hidden) return std::nullopt;  // a holder may be among those not seen
  return true;
}

std::string villas_holders_text(const VillasRow& row) {
  const std::optional<bool> stale = villas_stale(row);
  if (!stale) {
    return fmt::format("unknown ({} process{} not inspectable)", row.holders_uninspectable,
                       row.holders_uninspectable == 1 ? "" : "es");
  }
  if (*stale) return "none (stale)";
  return fmt::format("{}", fmt::join(row.holders, ", "));
}

std::string villas_semaphore_text(const VillasRow& row) {
  if (!row.semaphore) return "-";
  const std::optional<bool> stale = villas_stale(row);
  if (!stale) return "holders unknown";
  return *stale ? "left behind" : "rendezvous pending";
}

void add_villas_info_json(Json& j, const villas::RegionInfo& info) {
  j["region_mode"] = std::string(villas_mode_name(info));
  j["stopped"] = info.stopped;
  j["queued"] = info.queued;
  j["queue_cells"] = info.queue_cells;
  j["free_blocks"] = info.free_blocks;
  j["pool_blocks"] = info.pool_blocks;
  j["block_size"] = info.block_size;
  j["sample_capacity"] = info.sample_capacity;
  j["file_bytes"] = info.size;
}

Json villas_row_to_json(const VillasRow& row) {
  Json j;
  j["name"] = row.name;
  j["kind"] = std::string(channel_kind_name(ChannelKind::villas));
  j["path"] = row.path;
  if (row.info) {
    add_villas_info_json(j, *row.info);
  } else {
    add_error_json(j, row.error, row.error_code);
  }
  add_villas_holders_json(j, row);
  return j;
}

void add_villas_holders_json(Json& j, const VillasRow& row) {
  j["holders"] = row.holders.size();
  j["holder_pids"] = row.holders;
  j["holders_uninspectable"] = row.holders_uninspectable;
  const std::optional<bool> stale = villas_stale(row);
  j["stale"] = stale ? Json(*stale) : Json(nullptr);
  j["semaphore"] = row.semaphore;
  j["semaphore_path"] = row.semaphore_path;
  j["semaphore_holder_pids"] = row.semaphore_holders;
}

}  // namespace shmlink::cli
