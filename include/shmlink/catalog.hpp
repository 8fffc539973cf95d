// SPDX-License-Identifier: MIT
/// @file catalog.hpp
/// @brief What lives in a stream directory: every channel file by kind, name and path, and who
/// holds it, without opening a channel (docs/design/catalog.md).
///
/// The catalog is the one place that knows how each kind names its files:
///
/// | kind           | file                               | name          | path            |
/// |----------------|------------------------------------|---------------|-----------------|
/// | "stream"       | `<name>.im.shm`                    | `<name>`      | the file        |
/// | "queue"        | `<name>.queue.shm`                 | `<name>`      | the file        |
/// | "memif-status" | `<pid>-<k>.memif.shm`              | `<pid>-<k>`   | the file        |
/// | "region"       | `<name>.region.shm`                | `<name>`      | the file        |
/// | "region-stream", "region-queue" | an entry of a region | the entry's | `PATH:NAME`     |
/// | "villas"       | any regular file whose header is a VILLASnode v1.x shmem region | `/<file>` | the file |
/// | "temporary"    | `.<final>.XXXXXX` (is_temporary_name(): a creation not published yet) | `<final>` | the file |
///
/// Listing reads directory entries; for files no suffix names, their first 1024 bytes; for
/// region files, their header and entry table. It reads with pread(2) from files opened
/// O_NOFOLLOW | O_NONBLOCK (a symbolic link is listed by its name, never followed), never maps,
/// never writes, opens no channel and takes no lock: a region's table is copied under the
/// region's lock-free reader protocol (its lock_count seqlock), a few quick attempts, then the
/// region is reported busy (ChannelListing::problem) rather than waited for.
#pragma once

#include <shmlink/export.h>

#include <string>
#include <string_view>
#include <vector>

namespace shmlink {

/// One file (or one entry of a region) of a stream directory, as list_channels() finds it.
struct ChannelListing {
  /// "stream", "queue", "memif-status", "villas", "region", "region-stream", "region-queue" or
  /// "temporary" (the table at the top of this header); empty from channel_file() for a name no
  /// kind uses.
  std::string kind;
  /// The channel's name: the file name without its kind's suffix; "/<file>" for a VILLAS region
  /// (the shm name VILLASnode's configuration spells); for a temporary, the file name it will be
  /// published under ("wfs.im.shm" for ".wfs.im.shm.Ab3xZ9"); for a region entry, its name in the
  /// region.
  std::string name;
  /// The file's path (`<directory>/<file>`); for a region entry, `<region path>:<entry name>`.
  std::string path;
  /// Processes that have the file open or mapped (processes_using_each(): the calling process
  /// too when it holds the file), ascending; for a region entry, the holders of the region file.
  /// Empty when list_channels() was asked for no holders.
  std::vector<int> holders;
  /// Some processes' /proc entries could not be read (another user's, unless root), so
  /// `holders` may miss some: empty holders then do not mean "unused".
  bool holders_unknown = false;
  /// For a "region" whose entries are not listed, why: "busy: ..." (its directory lock stayed
  /// taken, or the directory kept changing, through the listing's few quick attempts: list
  /// again, or open the region, which waits for the lock), "a symbolic link (not followed)",
  /// "not a regular file", or the layout error that opening it would report. Empty otherwise.
  std::string problem;
};

/// Every channel file of `directory` (empty: stream_directory()), sorted by path: streams,
/// queues, memif status files, regions (and, once a region can be read, its ready entries right
/// after it; otherwise the region's `problem` says why not), VILLAS regions and temporaries of
/// creations not published yet (kinds and names in the table above). Directories are skipped;
/// symbolic links named like a channel file are listed (what they point to is not opened, nor
/// a linked region's entries read: callers that open one decide). Files removed while the
/// directory is read are simply missing. Never waits for a region's lock (see above).
/// `directory` may also be an ivshmem locator ("ivshmem:", "ivshmem:0000:00:02.0"): then the
/// ready entries of the region in that guest device's shared memory, named
/// "ivshmem:DDDD:BB:SS.F:NAME", without holders (processes of other VMs cannot be seen).
/// @param with_holders also find the holders of every file, in one scan of /proc
///        (processes_using_each()); that scan reads every process's maps, so leave it off when
///        the holders are not shown.
/// @throws Error not_found, permission or system naming the directory when it cannot be listed;
///         for an ivshmem locator Region::open's errors naming the device.
SHMLINK_EXPORT std::vector<ChannelListing> list_channels(const std::string& directory = {}, bool with_holders = true);

/// What the file at `path` is, as list_channels() would list it: kind, name and path (no
/// holders). By its name alone (nothing is read, the file need not exist) unless `look_inside`:
/// then a file no suffix names is read as list_channels() reads it (is it a VILLAS region?).
/// `kind` is empty for anything else.
SHMLINK_EXPORT ChannelListing channel_file(const std::string& path, bool look_inside = false);

}  // namespace shmlink
