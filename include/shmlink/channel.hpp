// SPDX-License-Identifier: MIT
/// @file channel.hpp
/// @brief What every channel kind (stream, queue, memif status file, region entry) shares: the
/// directory channel files live in, the one name rule, the one permission rule, name limits,
/// the "wait for ever" timeout and the escaping of names for messages.
///
/// Part of the core (src/os/channel.cpp): no channel includes another channel's header for
/// these. Included by segment.hpp, so every channel header (and stream.hpp, as before) provides
/// them.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace shmlink {

/// Longest accepted channel name in bytes, for every kind (ISIO's `name` field is char[80]; a
/// queue's and a region entry's name fields hold as many).
inline constexpr std::size_t kMaxChannelName = 79;
/// Longest accepted stream name in bytes (= kMaxChannelName; ISIO's `name` field is char[80]).
inline constexpr std::size_t kMaxStreamName = kMaxChannelName;

/// A wait that never times out.
inline constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();

/// The directory channel files live in (streams, queues, memif status files, regions named
/// without '/'): `$SHMLINK_DIR`, else `$MILK_SHM_DIR`, else `/milk/shm` if it is a directory,
/// else `/dev/shm`. Trailing '/' of the variables are dropped. Evaluated on every call (no
/// process-wide cache).
SHMLINK_EXPORT std::string stream_directory();

/// `text` made safe to print on a terminal and in one line: printable ASCII and valid UTF-8
/// sequences pass (except U+0080..U+009F, the C1 controls), a backslash becomes `\\`, ESC
/// `\e`, newline `\n`, carriage return `\r`, tab `\t`, and every other byte (other control
/// characters, DEL, NUL, bytes that are not valid UTF-8) `\xNN` (two lower-case hex digits).
/// The result is valid UTF-8. Used for every channel name in error messages and CLI output.
SHMLINK_EXPORT std::string escape_name(std::string_view text);

/// The one name rule of every channel kind (stream_path(), queue_path(); memif status files are
/// named by shmlink, `<pid>-<k>`): `name` (the bare name, without directory and kind suffix) must
/// be 1 to `max_bytes` bytes long, not "." or "..", without '/', NUL or another control character
/// (below 0x20, DEL). Names from paths (DAO style, "/tmp/x.im.shm") are checked by their basename.
/// @param kind "stream", "queue", ... (for the message); @param given what the caller passed
/// (shown escaped in the message).
/// @throws Error invalid_argument (empty, ".", "..", '/', control character) or name_too_long
///         (over `max_bytes`), its message naming `given` escaped (escape_name()).
SHMLINK_EXPORT void check_channel_name(std::string_view kind, std::string_view name, std::string_view given,
                                       std::size_t max_bytes);

/// What the file type bits of `mode` (st_mode) say, for messages that refuse a channel file that
/// is not a regular file: "a FIFO (named pipe)", "a socket", "a character device", "a block
/// device", "a directory", "a symbolic link", or "a regular file".
SHMLINK_EXPORT const char* file_type_name(mode_t mode) noexcept;

/// The one permission rule of every channel file: read and write bits only (a subset of 0666).
/// Set-user-ID, set-group-ID, sticky and execute bits are refused: a data file is never a program.
/// @param resource the file being created (for the message).
/// @throws Error invalid_argument naming `resource`, the mode and the refused bits.
SHMLINK_EXPORT void check_channel_permissions(mode_t permissions, std::string_view resource);

}  // namespace shmlink
