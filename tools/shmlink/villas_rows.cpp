// SPDX-License-Identifier: MIT
// VILLASnode shmem regions for `ls` and `info`: finding them in /dev/shm by fingerprint, reading
// them without mapping or writing a byte, and who holds them (common.hpp, "VILLASnode shmem
// regions").
#include "common.hpp"

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

/// Bytes looks_like_region() wants to see: the allocator headers and the whole ShmemShared.
constexpr std::uint64_t kVillasHeadBytes = 1024;

/// The holders of a file as found by the scan, this process left out.
std::vector<int> others(std::vector<int> pids) {
  const int self = static_cast<int>(::getpid());
  pids.erase(std::remove(pids.begin(), pids.end(), self), pids.end());
  return pids;
}

/// Summarises into `row` the region whose first bytes are `head` and whose file is `size`
/// bytes long (villas::inspect() of the header alone: nothing else of the file is read, whatever
/// its size); a failure goes to the row's error.
void summarise(VillasRow& row, std::span<const std::byte> head, std::uint64_t size) {
  try {
    row.info = villas::inspect(head, size, row.path);
  } catch (const Error& e) {
    row.error = e.what();
    row.error_code = e.errc();
  }
}

}  // namespace

std::string resolve_villas(const std::string& name) {
  if (name.empty() || name == "/") throw Error(Errc::invalid_argument, "VILLAS region name is empty");
  const std::string bare = name.front() == '/' ? name.substr(1) : name;
  if (bare.find('/') != std::string::npos) return name;  // a path, used as given
  return std::string(kVillasShmDir) + "/" + bare;
}

std::optional<std::vector<std::byte>> read_file_head(const std::string& path, std::uint64_t max_bytes,
                                                     std::uint64_t* file_size) {
  // O_NOATIME (not even the access time changes) is only allowed on one's own files.
  // Only a regular file is opened (a device's open may act, a FIFO's block).
  struct stat before {};
  if (::lstat(path.c_str(), &before) != 0 || !S_ISREG(before.st_mode)) return std::nullopt;
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  int fd = ::open(path.c_str(), kFlags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), kFlags);
  if (fd < 0) return std::nullopt;
  std::optional<std::vector<std::byte>> out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (file_size != nullptr) *file_size = size;
    std::vector<std::byte> bytes(static_cast<std::size_t>(std::min(size, max_bytes)));
    std::size_t got = 0;
    bool failed = false;
    while (got < bytes.size()) {
      const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) failed = true;
      if (n <= 0) break;  // an error, or the file shrank: what was read is kept
      got += static_cast<std::size_t>(n);
    }
    if (!failed) {
      bytes.resize(got);
      out = std::move(bytes);
    }
  }
  ::close(fd);
  return out;
}

std::vector<VillasRow> list_villas_regions() {
  namespace fs = std::filesystem;
  const std::string dir(kVillasShmDir);
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  std::vector<VillasRow> rows;
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::permission_denied ||
      ec == std::errc::not_a_directory) {
    // A container without /dev/shm, or one this user may not list: no VILLAS region can be seen.
    spdlog::debug("villas regions: {} cannot be listed ({}); no VILLAS regions shown", dir, ec.message());
    return rows;
  }
  if (ec) throw Error(errc_from_errno(ec.value()), fmt::format("listing {}: {}", dir, ec.message()));
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || it->is_symlink(type_ec)) continue;  // never follows a link
    const std::string path = it->path().string();
    std::uint64_t size = 0;
    const std::optional<std::vector<std::byte>> head = read_file_head(path, kVillasHeadBytes, &size);
    if (!head || !villas::looks_like_region(std::span<const std::byte>(*head), size)) continue;
    VillasRow row;
    row.path = path;
    row.name = "/" + it->path().filename().string();
    summarise(row, std::span<const std::byte>(*head), size);
    rows.push_back(std::move(row));
  }
  if (ec) throw Error(errc_from_errno(ec.value()), fmt::format("listing {}: {}", dir, ec.message()));
  std::sort(rows.begin(), rows.end(), [](const VillasRow& a, const VillasRow& b) { return a.name < b.name; });
  find_villas_holders(rows);
  return rows;
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
