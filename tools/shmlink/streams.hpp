// SPDX-License-Identifier: MIT
/// @file streams.hpp
/// @brief Streams for inspection: resolving names to files, opening without blocking or dying of
/// SIGBUS, waiting for frames, and a stream's geometry.
#pragma once

#include <shmlink/catalog.hpp>
#include <shmlink/stream.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

// ---- streams ---------------------------------------------------------------------------

/// The file of stream `name`: "PATH:NAME" (shmlink::split_region_locator()) is a stream in a
/// region, returned as given; a name containing '/' is a path used as given; otherwise
/// `<dir>/<name>.im.shm` when `dir` is non-empty, else shmlink::stream_path(name).
/// @throws Error invalid_argument (empty name), name_too_long (> 79 bytes).
std::string resolve_stream(const std::string& name, const std::string& dir);

/// The replica the bridge service of this host makes of stream `name` when no local file has
/// that name, as Stream::open asks for one (include/shmlink/remote.hpp): for "HOST:NAME" always,
/// for a plain name while remote::remote_open_enabled(). The service is not asked (nullopt) when
/// `dir` is given (the service serves its own directory), for a path or a region locator, or
/// when a stream or queue file of that name exists. Waits remote::open_timeout().
/// @return the replica file's path (an absolute path), or nullopt.
/// @throws Error the service's error (not_found at once when no service runs, timeout, ...),
///         its message prefixed by "stream 'NAME': FILE does not exist and ".
std::optional<std::string> replica_of_missing(const std::string& name, const std::string& dir);

/// Opens a stream for inspection: read-write when allowed, else read-only (another user's 0644
/// stream), so ls/info/cat/monitor work on streams they may not write. "PATH:NAME" opens the
/// stream NAME of the region PATH (Region::open_stream()). The path is first checked
/// with require_regular_file() (a FIFO, socket, device or symbolic link is refused at once instead
/// of blocking the open), and the open runs under the SIGBUS guard (shmlink::read_guarded()).
/// @throws Error layout for a non-regular file or a file that shrank while it was validated; the
///         open's own errors otherwise.
shmlink::Stream open_for_inspection(const std::string& path);

/// Refuses what is not a regular file at `path` without opening it (lstat(2): never blocks, never
/// follows a link): a FIFO, socket, device, directory or symbolic link named like a channel file
/// (any local user may put one in the stream directory) gives Errc::layout with a message naming
/// the file, its kind (`what`: "stream", "queue", ...) and what it is instead.
/// @throws Error layout as above; not_found, permission, system from lstat(2), naming the file.
void require_regular_file(const std::string& path, std::string_view what);

/// Runs `read` (reads of the mapping of `s`) under the library's SIGBUS guard
/// (shmlink::read_guarded()): should the file shrink under the mapping (truncated in place, as
/// DAO's re-creation does), the faulting reads see zeros instead of killing the process, and this
/// throws afterwards. Also throws when the file at the stream's
/// path was truncated or re-sized in place (its size is no longer the mapping's), so a caller never
/// trusts bytes read from such a mapping. Every CLI read of a stream mapping goes through here.
/// @throws Error layout naming the file: "stream file X shrank while it was read (truncated or
///         re-created in place)"; whatever `read` throws.
void guarded_read(const Stream& s, const std::function<void()>& read);

/// Stream::wait_futex for the CLI: waits until cnt0 differs from `last` or `timeout` passes, in
/// slices of at most 100 ms each run through guarded_read(), so a file truncated in place while we
/// wait ends the wait with an error (not SIGBUS), and a stream re-created under a new inode
/// (renamed over the path) ends it with Errc::replaced. EINTR is retried.
/// @return ok when a new frame came; timeout when `timeout` passed (kForever: never).
/// @throws Error layout (truncated in place) or replaced (re-created), naming the file.
Status wait_for_new_frame(const Stream& s, std::uint64_t last, std::chrono::nanoseconds timeout);


/// The directory to scan: `dir` when non-empty, else shmlink::stream_directory().
std::string resolve_directory(const std::string& dir);

/// Paths of the channel files of kind `kind` ("stream", "queue", "memif-status", ...: the kinds
/// of shmlink::list_channels()) in `dir`, files or links, sorted. Holders are not looked for.
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_channel_files(const std::string& dir, std::string_view kind);

/// Paths of the listings of kind `kind` in `listing` (one shmlink::list_channels() of a
/// directory, reused by a command that needs several kinds), in the listing's order (sorted).
std::vector<std::string> paths_of_kind(const std::vector<ChannelListing>& listing, std::string_view kind);

/// Paths of the stream files (`*.im.shm`, files or links) in `dir` and of the streams in the
/// directory's regions (`*.region.shm`) as PATH:NAME, sorted together (one listing).
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_stream_files(const std::string& dir);

/// The same from a listing already made (stream_paths(list_channels(dir, false)) is
/// list_stream_files(dir)).
std::vector<std::string> stream_paths(const std::vector<ChannelListing>& listing);

/// The stream name shown for a file path (basename without ".im.shm": shmlink::channel_file()).
std::string display_name(const std::string& path);

/// What stat(2) says about the file at a path.
struct FileId {
  bool exists = false;     ///< stat succeeded
  std::uint64_t ino = 0;   ///< inode
  std::uint64_t size = 0;  ///< size in bytes
  /// `path` was PATH:NAME: the identity is the region file's, whose size is not the channel's
  /// (a region entry's re-creation shows in Stream::replaced(), not in the file).
  bool in_region = false;
};

/// The identity of the file at `path` (following links); `exists` false when it cannot be
/// stat'ed. For "PATH:NAME" (shmlink::split_region_locator()), the region file PATH's; for a channel in an
/// ivshmem device's region ("ivshmem:...:NAME"), existing with inode and size 0 (no file to stat).
FileId file_id(const std::string& path);

/// The shape, element type and rolling depth of one stream file, remembered so that a
/// re-creation can be reported after the old file is gone.
struct StreamGeometry {
  std::vector<std::uint32_t> shape;        ///< the file's axes, ISIO order
  std::vector<std::uint32_t> frame_shape;  ///< one frame (shape without the depth axis)
  Dtype dtype = Dtype::f32;                ///< element type
  std::uint32_t depth = 1;                 ///< rolling-buffer slices, 1 for a plain stream
};

/// The geometry of an open stream.
StreamGeometry geometry_of(const Stream& s);

/// A geometry as text: "64x64 float32", or "64x64 float32, depth 8" for a rolling buffer.
std::string format_geometry(const StreamGeometry& g);

}  // namespace shmlink::cli
