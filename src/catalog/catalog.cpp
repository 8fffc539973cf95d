// SPDX-License-Identifier: MIT
// The catalog (include/shmlink/catalog.hpp): the channel files of a stream directory by kind,
// name and path, and their holders. A layer above the channels: it knows every kind's file
// names and reads VILLAS headers through the villas inspection, nothing else.
#include <shmlink/catalog.hpp>

#include <shmlink/error.hpp>
#include <shmlink/ivshmem.hpp>
#include <shmlink/region.hpp>
#include <shmlink/segment.hpp>
#include <shmlink/stream.hpp>
#include <shmlink/villas.hpp>

#include "os/sys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <utility>

namespace shmlink {

namespace {

/// A kind named by its file suffix.
struct SuffixKind {
  std::string_view suffix;  ///< what the file name ends in
  std::string_view kind;    ///< ChannelListing::kind
};

/// The suffix of every kind whose files a suffix names (stream_path(), queue_path(),
/// memif status files, regions: each kind's own code builds its names with the same suffix).
constexpr std::array<SuffixKind, 4> kSuffixKinds = {{
    {".im.shm", "stream"},
    {".queue.shm", "queue"},
    {".memif.shm", "memif-status"},
    {".region.shm", "region"},
}};

/// Bytes of a file's start that villas::looks_like_region() wants to see.
constexpr std::size_t kVillasHeadBytes = 1024;

/// Whether the regular file `path` (not a link, lstat(2) first) starts like a VILLAS region.
/// Reads at most its first kVillasHeadBytes with pread(2): opened O_RDONLY | O_NOFOLLOW |
/// O_NONBLOCK (O_NOATIME where allowed: not even the access time changes), never mapped, never
/// written, no lock taken. False for anything that cannot be opened or read.
bool villas_region_file(const std::string& path) {
  struct stat before {};
  if (::lstat(path.c_str(), &before) != 0 || !S_ISREG(before.st_mode)) return false;
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  os::UniqueFd fd(::open(path.c_str(), kFlags | O_NOATIME));  // O_NOATIME: only on one's own files
  if (!fd && errno == EPERM) fd.reset(::open(path.c_str(), kFlags));
  if (!fd) return false;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) return false;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::vector<std::byte> head(static_cast<std::size_t>(std::min<std::uint64_t>(size, kVillasHeadBytes)));
  std::size_t got = 0;
  while (got < head.size()) {
    const ssize_t n = ::pread(fd.get(), head.data() + got, head.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;  // the file shrank: what was read is judged
    got += static_cast<std::size_t>(n);
  }
  head.resize(got);
  return villas::looks_like_region(std::span<const std::byte>(head), size);
}

/// The listing of the file `file` (a name) in `dir`, by its name alone: kind empty when no
/// suffix (and no temporary's pattern) names it.
ChannelListing by_name(const std::string& dir, const std::string& file) {
  ChannelListing l;
  l.path = dir.empty() ? file : (dir.back() == '/' ? dir + file : dir + "/" + file);
  if (is_temporary_name(file)) {
    l.kind = "temporary";
    l.name = file.substr(1, file.rfind('.') - 1);  // ".<final>.XXXXXX" -> "<final>"
    return l;
  }
  for (const SuffixKind& k : kSuffixKinds) {
    if (file.size() > k.suffix.size() && file.ends_with(k.suffix)) {
      l.kind = std::string(k.kind);
      l.name = file.substr(0, file.size() - k.suffix.size());
      return l;
    }
  }
  return l;
}

/// Classifies `file` in `dir` as list_channels() does: by name, else by content (VILLAS).
ChannelListing classify(const std::string& dir, const std::string& file) {
  ChannelListing l = by_name(dir, file);
  if (l.kind.empty() && villas_region_file(l.path)) {
    l.kind = "villas";
    l.name = "/" + file;
  }
  return l;
}

/// The ready entries of the region `region` (a "region" listing), as "region-stream" and
/// "region-queue" listings named `PATH:NAME`. A region that does not open or validate (another
/// user's, not formatted yet, corrupt, truncated while read) lists none: whoever opens it
/// reports why. Read under the SIGBUS guard: a region file truncated in place costs its entries,
/// not the process.
std::vector<ChannelListing> region_entries(const ChannelListing& region) {
  std::vector<ChannelListing> out;
  std::vector<RegionEntry> entries;
  try {
    const bool faulted = read_guarded({}, [&] { entries = Region::open(region.path, false).entries(); });
    if (faulted) return out;
    for (const RegionEntry& e : entries) {
      if (e.state != EntryState::ready) continue;  // being created or removed: not openable
      ChannelListing l;
      l.kind = e.kind == ChannelKind::queue ? "region-queue" : "region-stream";
      l.name = e.name;
      l.path = region.path + ":" + e.name;
      out.push_back(std::move(l));
    }
  } catch (const Error&) {
  }
  return out;
}

}  // namespace

ChannelListing channel_file(const std::string& path, bool look_inside) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string() : path.substr(0, slash == 0 ? 1 : slash);
  const std::string file = slash == std::string::npos ? path : path.substr(slash + 1);
  return look_inside ? classify(dir, file) : by_name(dir, file);
}

std::vector<ChannelListing> list_channels(const std::string& directory, bool with_holders) {
  namespace fs = std::filesystem;
  if (ivshmem::is_locator(directory)) {  // a guest's ivshmem region: its ready entries, no holders
    ChannelListing region;
    region.path = Region::open(directory, false).path();  // errors name the device
    std::vector<ChannelListing> out = region_entries(region);
    std::sort(out.begin(), out.end(), [](const ChannelListing& a, const ChannelListing& b) { return a.path < b.path; });
    return out;
  }
  const std::string dir = directory.empty() ? stream_directory() : directory;
  auto fail = [&dir](const std::error_code& ec) {
    return Error(errc_from_errno(ec.value()), "listing stream directory " + escape_name(dir) + ": " + ec.message());
  };
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw fail(ec);
  std::vector<ChannelListing> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;  // follows a link: a link to a directory is skipped too
    ChannelListing l = classify(dir, it->path().filename().string());
    if (!l.kind.empty()) out.push_back(std::move(l));
  }
  if (ec) throw fail(ec);
  std::sort(out.begin(), out.end(), [](const ChannelListing& a, const ChannelListing& b) { return a.path < b.path; });
  // Each region's ready entries right after it; their holders are the region file's.
  std::vector<std::size_t> file_of;  // index into `out` of the file each listing lives in
  {
    std::vector<ChannelListing> with_entries;
    for (ChannelListing& l : out) {
      const bool region = l.kind == "region";
      std::vector<ChannelListing> entries = region ? region_entries(l) : std::vector<ChannelListing>{};
      const std::size_t file = with_entries.size();
      with_entries.push_back(std::move(l));
      file_of.push_back(file);
      for (ChannelListing& e : entries) {
        with_entries.push_back(std::move(e));
        file_of.push_back(file);
      }
    }
    out = std::move(with_entries);
  }
  if (with_holders && !out.empty()) {
    std::vector<std::string> paths;
    paths.reserve(out.size());
    for (std::size_t i = 0; i < out.size(); ++i) paths.push_back(out[file_of[i]].path);
    int uninspectable = 0;
    std::vector<std::vector<int>> holders = processes_using_each(paths, &uninspectable);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i].holders = std::move(holders[i]);
      out[i].holders_unknown = uninspectable > 0;
    }
  }
  return out;
}

}  // namespace shmlink
