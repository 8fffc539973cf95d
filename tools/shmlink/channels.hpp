// SPDX-License-Identifier: MIT
/// @file channels.hpp
/// @brief Queues and memif status files for `ls`, `info`, `rm` and `gc`: resolving names, reading
/// headers under the SIGBUS guard, and their JSON.
#pragma once

#include "cli.hpp"

#include <shmlink/memif.hpp>
#include <shmlink/queue.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

// ---- queues ----------------------------------------------------------------------------

/// The kinds of file `ls` handles (`gc` handles the first three, in the stream directory).
enum class ChannelKind {
  stream,  ///< `<name>.im.shm`, an ImageStreamIO 2.00 stream
  queue,   ///< `<name>.queue.shm`, a shmlink sample queue (include/shmlink/queue.hpp)
  memif,   ///< `<pid>-<k>.memif.shm`, the status file of a memif socket (memif::read_socket_status)
  villas,  ///< `/dev/shm/<name>`, a VILLASnode v1.x shmem region (include/shmlink/villas.hpp)
  region,  ///< `<name>.region.shm`, a region of named channels (gc: its temporaries)
};

/// The kind's name in text and JSON ("stream", "queue", "memif", "villas", "region").
std::string_view channel_kind_name(ChannelKind kind) noexcept;

// The name of a queue kind: shmlink::queue_kind_name() (include/shmlink/queue.hpp).

/// The name of a wait mode ("polling", "futex", "hybrid").
std::string_view wait_mode_name(WaitMode mode) noexcept;

/// True when the name of `path` is a stream file's (it ends in ".im.shm": shmlink::channel_file()).
bool is_stream_file_name(const std::string& path);

/// True when the name of `path` is a queue file's (it ends in ".queue.shm": shmlink::channel_file()).
bool is_queue_file_name(const std::string& path);

/// The file of queue `name`: a name containing '/' is a path used as given; otherwise
/// `<dir>/<name>.queue.shm` when `dir` is non-empty, else shmlink::queue_path(name). A trailing
/// ".queue.shm" in a bare name is accepted and dropped, as `ls /dev/shm` shows the files.
/// @throws Error invalid_argument (empty name), name_too_long (> 79 bytes), naming the queue.
std::string resolve_queue(const std::string& name, const std::string& dir);

/// Paths of the `*.queue.shm` entries (files or links) in `dir`, sorted by name.
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_queue_files(const std::string& dir);

/// The queue name shown for a file path (basename without ".queue.shm").
std::string queue_display_name(const std::string& path);

/// What a NAME given to `info` or `rm` means.
struct ResolvedChannel {
  ChannelKind kind = ChannelKind::stream;  ///< the channel chosen
  std::string path;                        ///< its file
  /// When a stream was chosen by default and a queue of the same name exists too: that
  /// queue's file (reach it with `--queue`).
  std::optional<std::string> other_queue;
};

/// Resolves NAME for `info` and `rm`. "PATH:NAME" (shmlink::split_region_locator()) is the ready
/// entry NAME of the region PATH, a stream or a queue as the entry says (path: NAME as given;
/// not_found naming both when there is none; layout for a stream with `force_queue`). A queue when `force_queue` (`--queue`) is set or NAME ends
/// in ".queue.shm"; a stream when NAME ends in ".im.shm" or contains '/' (a path used as given).
/// Otherwise the stream `<dir>/<NAME>.im.shm` when that file exists (reporting a queue of the
/// same name in `other_queue`), else the queue `<dir>/<NAME>.queue.shm` when that one exists.
/// A file whose existence cannot be decided (EACCES on the directory) counts as existing, so
/// the open that follows reports the real error.
/// @throws Error not_found naming both files when neither exists; invalid_argument /
///         name_too_long for a bad name.
ResolvedChannel resolve_channel(const std::string& name, const std::string& dir, bool force_queue);

/// One queue row of `ls`: a queue's header snapshot, or the error that kept the file from
/// opening.
struct QueueRow {
  std::string path;               ///< file path
  std::string name;               ///< display name (the file name without ".queue.shm")
  std::optional<QueueInfo> info;  ///< header snapshot when the file opened and validated
  std::string error;              ///< the open error's message, when it failed
  Errc error_code = Errc::ok;     ///< the open error's condition
  bool pids_of_this_kernel = true;  ///< its pids are this kernel's (pids_of_this_kernel(), rows.hpp)
};

/// Opens the queue file `path`, takes its header snapshot and closes it again. The open and the
/// reads run under the same SIGBUS guard as stream sampling, so a file truncated meanwhile gives
/// a row with an error instead of killing the process. Never throws for a bad file: failures go
/// to the row's `error` and `error_code`.
QueueRow inspect_queue(const std::string& path);

/// Samples stored in a queue now: `pushed - popped`, clamped to 0 .. capacity (the counters
/// are read one after the other while others may push and pop).
std::uint64_t queue_size(const QueueInfo& info) noexcept;

/// The JSON form of one queue row in `ls --json`: {"name", "kind": "queue", "path",
/// "queue_kind", "wait_mode", "capacity", "max_values", "cell_bytes", "file_bytes", "size",
/// "pushed", "popped", "shut_down", "signal_count", "creator_pid", "creator_alive",
/// "creation_time_ns"}, or {"name", "kind", "path", "error", "error_code", "exit_code"}.
Json queue_row_to_json(const QueueRow& row);

/// The JSON form of a queue's signal table: [{"index", "name", "type", "unit"}, ...].
Json signals_to_json(const std::vector<Signal>& signals);

// ---- memif status files ---------------------------------------------------------------

/// Paths of the `*.memif.shm` entries in `dir`, sorted by name.
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_memif_status_files(const std::string& dir);

/// Reads one memif status file (memif::read_socket_status) under the same SIGBUS guard as
/// inspect_queue(). Never throws for a bad file: failures go to the result's `error` and
/// `error_code`.
memif::SocketStatus inspect_memif_status(const std::string& path);

/// Every memif status file of `dir` through inspect_memif_status(), sorted by file name; files
/// removed between the listing and the read are skipped.
/// @throws Error when the directory cannot be listed.
std::vector<memif::SocketStatus> list_memif_status(const std::string& dir);
/// The same for the status files `paths` (those of a listing already made).
std::vector<memif::SocketStatus> inspect_memif_status_files(const std::vector<std::string>& paths);

/// "ethernet" / "ip" / "punt-inject".
std::string_view memif_mode_name(memif::InterfaceMode mode) noexcept;

/// The JSON form of one published interface: {"id", "role", "name", "mode", "state",
/// "peer_name", "peer_app", "last_disconnect", "connects", "tx_queues", "rx_queues",
/// "ring_size", "buffer_size", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes",
/// "bad_descriptors", "dropped_packets", "clamped_jumps", "ring_full", "interrupts_sent",
/// "updated_ns", "torn"}.
Json memif_interface_to_json(const memif::InterfaceStatus& s);

/// The JSON form of one status file (`ls --json` "memif" rows, `info --memif`): {"socket",
/// "kind": "memif", "file", "pid", "alive", "start_time_ticks", "app_name", "role" (null before
/// the first interface), "created_ns", "overflow", "interfaces": [...]}, or {"socket": null,
/// "kind", "file", "error", "error_code", "exit_code"} for a file that could not be read.
Json memif_socket_to_json(const memif::SocketStatus& s);

}  // namespace shmlink::cli
