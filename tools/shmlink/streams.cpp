// SPDX-License-Identifier: MIT
// Streams for inspection (streams.hpp).
#include "streams.hpp"

#include "args.hpp"
#include "output.hpp"

#include <shmlink/catalog.hpp>
#include <shmlink/ivshmem.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/remote.hpp>
#include <shmlink/segment.hpp>

#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <optional>
#include <utility>

namespace shmlink::cli {

// ---- streams ---------------------------------------------------------------------------

std::string resolve_stream(const std::string& name, const std::string& dir) {
  if (name.empty()) throw Error(Errc::invalid_argument, "stream name is empty");
  if (split_region_locator(name)) return name;  // PATH:NAME, a stream in a region
  if (name.find('/') != std::string::npos) return shmlink::stream_path(name);
  // Accept "cam.im.shm" as the stream "cam", as listed by `ls /dev/shm`.
  const ChannelListing file = channel_file(name);
  const std::string bare = file.kind == "stream" ? file.name : name;
  const std::string path = shmlink::stream_path(bare);  // checks the name; <stream_directory()>/<bare>.im.shm
  if (dir.empty()) return path;
  return shmlink::stream_path(dir + "/" + std::filesystem::path(path).filename().string());
}

std::optional<std::string> replica_of_missing(const std::string& name, const std::string& dir) {
  if (!dir.empty() || name.find('/') != std::string::npos || split_region_locator(name)) return std::nullopt;
  std::string local;
  try {
    local = resolve_stream(name, dir);
  } catch (const Error&) {  // no stream's name ("x.queue.shm", too long): the caller's resolution says why
    return std::nullopt;
  }
  struct stat st {};
  if (::lstat(local.c_str(), &st) == 0 || errno != ENOENT) return std::nullopt;
  if (::lstat(shmlink::queue_path(name).c_str(), &st) == 0 || errno != ENOENT) return std::nullopt;
  std::string_view bare = name;  // "rtc1:wfs.im.shm" is "rtc1:wfs", as the library reads it
  if (bare.size() > 7 && bare.ends_with(".im.shm")) bare.remove_suffix(7);
  std::pair<std::string, std::string> target;
  if (auto split = remote::split_remote_name(bare)) target = std::move(*split);
  else if (remote::remote_open_enabled()) target = {"", std::string(bare)};
  else return std::nullopt;
  try {
    return remote::remote_open("stream", target.first, target.second, remote::open_timeout(), false);
  } catch (const Error& e) {
    throw Error(e.errc(), fmt::format("stream '{}': {} does not exist and {}", shown(name), shown(local), e.what()));
  }
}

std::string resolve_directory(const std::string& dir) {
  return dir.empty() ? shmlink::stream_directory() : dir;
}

std::vector<std::string> paths_of_kind(const std::vector<ChannelListing>& listing, std::string_view kind) {
  std::vector<std::string> out;
  for (const ChannelListing& l : listing) {
    if (l.kind == kind) out.push_back(l.path);
  }
  return out;
}

std::vector<std::string> list_channel_files(const std::string& dir, std::string_view kind) {
  return paths_of_kind(list_channels(dir, false), kind);
}

std::vector<std::string> stream_paths(const std::vector<ChannelListing>& listing) {
  std::vector<std::string> out;
  for (const ChannelListing& l : listing) {
    if (l.kind == "stream" || l.kind == "region-stream") out.push_back(l.path);  // PATH:NAME for the latter
  }
  std::sort(out.begin(), out.end());  // StreamSampler merges by path
  return out;
}

std::vector<std::string> list_stream_files(const std::string& dir) { return stream_paths(list_channels(dir, false)); }

std::string display_name(const std::string& path) {
  if (split_region_locator(path)) return path;  // PATH:NAME, as info and cat take it
  ChannelListing file = channel_file(path);
  return file.kind == "stream" ? std::move(file.name) : std::filesystem::path(path).filename().string();
}

FileId file_id(const std::string& path) {
  const auto locator = split_region_locator(path);
  if (locator && ivshmem::is_locator(locator->first)) return {true, 0, 0, true};  // a device: no file to stat
  struct stat st {};
  if (::stat(locator ? locator->first.c_str() : path.c_str(), &st) != 0) return {};
  return {true, static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_size), locator.has_value()};
}

void guarded_read(const Stream& s, const std::function<void()>& read) {
  const bool faulted = read_guarded(s.file_bytes(), read);
  // A file re-created under a new inode leaves our mapping intact; one re-sized in place does not.
  const FileId now = file_id(s.path());
  const bool resized = now.exists && !now.in_region && now.size != s.file_bytes().size() && !s.replaced();
  if (faulted || resized) {
    throw Error(Errc::layout, fmt::format("stream file {} shrank while it was read (truncated or re-created in "
                                          "place); what was read is discarded",
                                          shown(s.path())));
  }
}

Status wait_for_new_frame(const Stream& s, std::uint64_t last, std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  constexpr std::chrono::nanoseconds kSlice = std::chrono::milliseconds(100);
  const auto start = clock::now();
  while (true) {
    std::chrono::nanoseconds slice = kSlice;
    if (timeout != kForever) {
      const auto left = timeout - std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start);
      if (left <= std::chrono::nanoseconds::zero()) return Errc::timeout;
      slice = std::min(slice, left);
    }
    Status st;
    guarded_read(s, [&] { st = s.wait_futex(last, slice); });
    if (st.code() == Errc::replaced) {
      throw Error(Errc::replaced, fmt::format("stream file {} was re-created (a new file) or removed while waiting "
                                              "for a frame; run again to read the new stream",
                                              shown(s.path())));
    }
    if (st.code() == Errc::timeout || st.code() == Errc::interrupted) continue;
    return st;
  }
}

void require_regular_file(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    // Absent or not inspectable: the open that follows reports it in its own words.
    if (errno == ENOENT || errno == EACCES || errno == ENOTDIR) return;
    const int err = errno;
    throw Error(errc_from_errno(err), fmt::format("inspecting {} file {}: {}", what, shown(path), std::strerror(err)));
  }
  if (S_ISREG(st.st_mode)) return;
  throw Error(Errc::layout, fmt::format("{} file {} is {}{}, not a regular file; left alone", what, shown(path),
                                        shmlink::file_type_name(st.st_mode),
                                        S_ISLNK(st.st_mode) ? " (links to channel files are not followed)" : ""));
}

Stream open_for_inspection(const std::string& path) {
  const auto locator = split_region_locator(path);  // PATH:NAME, a stream in a region
  require_regular_file(locator ? locator->first : path, locator ? "region" : "stream");
  auto open = [&path, &locator]() -> Stream {
    OpenOptions ro;
    ro.writable = false;
    if (locator) {
      try {
        return Region::open(locator->first, true).open_stream(locator->second);
      } catch (const Error& e) {
        if (e.errc() != Errc::permission) throw;
        return Region::open(locator->first, false).open_stream(locator->second, ro);
      }
    }
    try {
      return Stream::open(path);
    } catch (const Error& e) {
      if (e.errc() != Errc::permission) throw;
      return Stream::open(path, ro);
    }
  };
  std::optional<Stream> s;
  // Every address (an empty range): the mapping is not known before open() returns.
  if (read_guarded({}, [&] { s.emplace(open()); })) {
    throw Error(Errc::layout, fmt::format("stream file {} shrank while it was opened (truncated or re-created in "
                                          "place)",
                                          shown(path)));
  }
  return std::move(*s);
}

// ---- geometry ----------------------------------------------------------------------------

StreamGeometry geometry_of(const Stream& s) {
  StreamGeometry g;
  g.shape.assign(s.shape().begin(), s.shape().end());
  g.frame_shape.assign(s.frame_shape().begin(), s.frame_shape().end());
  g.dtype = s.dtype();
  g.depth = s.depth();
  return g;
}

std::string format_geometry(const StreamGeometry& g) {
  std::string out = fmt::format("{} {}", format_shape(g.frame_shape), dtype_name(g.dtype));
  if (g.depth > 1) out += fmt::format(", depth {}", g.depth);
  return out;
}

}  // namespace shmlink::cli
