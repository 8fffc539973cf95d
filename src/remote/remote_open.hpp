// SPDX-License-Identifier: MIT
// How Stream::open and Queue::open reach remote channels (include/shmlink/remote.hpp): when the
// local file is missing, a remote name is asked of the bridge service and its replica opened.
#pragma once

#include <shmlink/segment.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace shmlink::remote {

/// What to do with a name whose local file `local_path` is missing: nullopt when the bridge is
/// not to be asked (the file exists or lstat fails otherwise than ENOENT, a path with '/', a name
/// that is not "HOST:NAME" while remote_open_enabled() is false); else the absolute path of the
/// replica remote_open() answered (timeout: open_timeout()).
/// @param kind "stream" or "queue"; @param name_or_path what the caller passed (its ".im.shm" or
///        ".queue.shm" suffix is dropped before splitting).
/// @throws Error the remote_open() error, its message prefixed by "opening KIND 'NAME':
///         <local_path> does not exist and ", so both facts are named.
std::optional<std::string> open_missing(std::string_view kind, std::string_view name_or_path,
                                        std::string_view local_path);

/// Segment::open_file(path, writable); when that finds no file and open_missing() answers a
/// replica, `path` becomes the replica's path and that file is opened instead.
/// @throws Error as Segment::open_file (the local file's error when the bridge is not asked) or
///         open_missing().
Segment open_file_or_replica(std::string_view kind, std::string_view name_or_path, std::string& path,
                             bool writable);

}  // namespace shmlink::remote
