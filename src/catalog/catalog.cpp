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
#include "region/region_internal.hpp"
#include "region/region_layout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
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

/// errno's text, e.g. "Permission denied".
std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

/// A 64-bit word as "0x" and 16 hex digits.
std::string hex_word(std::uint64_t w) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(w));
  return buf;
}

/// Attempts of the lock-free directory copy before a region is reported busy (each waits at most
/// 1 ms: a region whose lock stays taken or whose directory keeps changing costs the listing
/// tens of milliseconds, never the lock timeout).
constexpr int kDirectoryAttempts = 16;

/// Reads exactly `n` bytes at `offset` of `fd` into `out` (pread(2), EINTR retried).
/// False on an error or a short file.
bool pread_all(int fd, void* out, std::size_t n, std::uint64_t offset) {
  auto* p = static_cast<char*>(out);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

/// The lock word and lock_count of a region's header (its readers' seqlock), copied by pread.
struct LockLine {
  std::uint64_t lock = 0;
  std::uint64_t count = 0;
};
bool read_lock_line(int fd, LockLine& out) {
  std::uint64_t w[2];
  if (!pread_all(fd, w, sizeof w, offsetof(rlayout::RegionHeader, lock))) return false;
  static_assert(offsetof(rlayout::RegionHeader, lock_count) == offsetof(rlayout::RegionHeader, lock) + 8);
  out.lock = w[0], out.count = w[1];
  return true;
}

/// The ready entries of the region file `region` (a "region" listing), as "region-stream" and
/// "region-queue" listings named `PATH:NAME`. Never maps the file and never waits for its lock:
/// the file is opened O_RDONLY | O_NOFOLLOW | O_NONBLOCK (a symbolic link is not followed; a FIFO
/// does not block), must be a regular file, and its header and table are copied with pread(2)
/// under the region's lock-free reader protocol (docs/design/region.md): lock_count and the lock
/// word, the table, the two again; the copy counts only when the lock was free and neither
/// changed. After kDirectoryAttempts failed attempts (the lock stays taken, by a live holder, a
/// dead one or a hostile peer, or the directory keeps changing) the region is reported busy. A
/// file that is not a readable, valid region lists no entries; `region.problem` says why.
std::vector<ChannelListing> region_entries(ChannelListing& region) {
  std::vector<ChannelListing> out;
  const std::string& path = region.path;
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  os::UniqueFd fd(::open(path.c_str(), kFlags | O_NOATIME));  // O_NOATIME: only on one's own files
  if (!fd && errno == EPERM) fd.reset(::open(path.c_str(), kFlags));
  if (!fd) {
    region.problem = errno == ELOOP ? "a symbolic link (not followed)" : "cannot be opened: " + errno_text(errno);
    return out;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) {
    region.problem = "not a regular file";
    return out;
  }
  try {
    std::array<std::byte, sizeof(rlayout::RegionHeader)> head{};
    if (!pread_all(fd.get(), head.data(), head.size(), 0)) {
      region.problem = "shorter than a region header";
      return out;
    }
    const rdir::Header h = rdir::read_header(head, path, static_cast<std::uint64_t>(st.st_size));
    std::vector<rlayout::RegionEntry> table(h.max_entries);  // max_entries <= 16384: 2 MiB at most
    const std::size_t table_bytes = table.size() * sizeof(rlayout::RegionEntry);
    LockLine before, after;
    bool copied = false;
    for (int attempt = 0; attempt < kDirectoryAttempts && !copied; ++attempt) {
      if (attempt > 0) {
        timespec ts{0, std::min<long>(1'000'000, 10'000L << attempt)};
        ::nanosleep(&ts, nullptr);
      }
      if (!read_lock_line(fd.get(), before)) break;
      if (before.lock != 0) continue;  // a holder may be writing the table
      // SYNC POINT: the count before the table (pairs with a holder's release fence after its
      // count store, Directory::Lock): a copy that saw any of its table stores sees the new count.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (!pread_all(fd.get(), table.data(), table_bytes, rlayout::entry_offset(0))) break;
      std::atomic_thread_fence(std::memory_order_acquire);
      if (!read_lock_line(fd.get(), after)) break;
      copied = after.lock == 0 && after.count == before.count;
    }
    if (!copied) {
      region.problem = before.lock != 0 ? "busy: its directory lock is held (lock word " + hex_word(before.lock) + ")"
                                        : "busy: its directory kept changing or could not be read";
      return out;
    }
    for (const rdir::Slot& s : rdir::validate(table, h, path)) {
      if (s.entry.state != EntryState::ready) continue;  // being created or removed: not openable
      ChannelListing l;
      l.kind = s.entry.kind == ChannelKind::queue ? "region-queue" : "region-stream";
      l.name = s.entry.name;
      l.path = region.path + ":" + s.entry.name;
      out.push_back(std::move(l));
    }
  } catch (const Error& e) {
    region.problem = e.what();  // not formatted yet, another version, a corrupt entry
    out.clear();
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
    // The device's memory is a mapping, not a file to pread: its ready entries come from the
    // region itself (errors name the device).
    const Region region = Region::open(directory, false);
    std::vector<ChannelListing> out;
    for (const RegionEntry& e : region.entries()) {
      if (e.state != EntryState::ready) continue;  // being created or removed: not openable
      ChannelListing l;
      l.kind = e.kind == ChannelKind::queue ? "region-queue" : "region-stream";
      l.name = e.name;
      l.path = region.path() + ":" + e.name;
      out.push_back(std::move(l));
    }
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
