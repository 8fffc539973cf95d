// SPDX-License-Identifier: MIT
/// @file watch.hpp
/// @brief Sampling and watching the stream files of a directory: the StreamSampler of `ls`, what
/// happens to watched files between refreshes (created, re-created, removed) and the
/// StreamWatcher of `monitor` that reports it.
#pragma once

#include "cli.hpp"
#include "rows.hpp"
#include "streams.hpp"

#include <shmlink/error.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

/// Keeps streams of one directory open between refreshes and measures their update rates
/// from cnt0 deltas over steady-clock time, as milk's streamCTRL does. Files that appear are
/// opened, files that vanish are dropped, a file whose inode changed (re-created stream) is
/// re-opened, and files that fail to open are retried on every refresh.
class StreamSampler {
 public:
  /// @param dir the directory to scan (already resolved).
  explicit StreamSampler(std::string dir);
  StreamSampler(StreamSampler&&) noexcept;
  StreamSampler& operator=(StreamSampler&&) noexcept;
  ~StreamSampler();

  /// Rescans the directory and samples every stream. Rates cover the time since the
  /// previous refresh, so the first refresh has none. `scan`: whether to look for readers
  /// (ReaderScan::cached scans like fresh: a sampler keeps no cache). `listing`: a
  /// shmlink::list_channels() of the directory the caller made already (its streams are
  /// sampled; the directory is not listed again); null: list it now.
  /// @throws Error when the directory cannot be listed.
  std::vector<StreamRow> refresh(ReaderScan scan = ReaderScan::fresh,
                                 const std::vector<ChannelListing>* listing = nullptr);

  /// The directory scanned.
  [[nodiscard]] const std::string& directory() const noexcept { return dir_; }

 private:
  struct Entry;
  std::string dir_;
  std::vector<std::unique_ptr<Entry>> entries_;  // sorted by path
};

/// Something that happened to a watched stream file between two refreshes of a StreamWatcher.
struct StreamEvent {
  /// What happened.
  enum class Kind {
    created,    ///< a file appeared (a new stream, or a removed one came back)
    recreated,  ///< the file at the path is another file now (new inode, or truncated in place)
    removed,    ///< the file is gone
  };
  Kind kind = Kind::created;              ///< what happened
  std::string name;                       ///< stream name (the file name without ".im.shm")
  std::string path;                       ///< file path
  std::optional<StreamGeometry> before;   ///< the file that was open (recreated, removed)
  std::optional<StreamGeometry> after;    ///< the new file, when it opened (created, recreated)
  std::string error;                      ///< why the new file did not open, when it did not
  Errc error_code = Errc::ok;             ///< that error's condition
  bool waiting = false;                   ///< removed, and the watcher keeps waiting for it
  std::int64_t time_ns = 0;               ///< when it was noticed, ns since the epoch
};

/// The event's name in JSON ("created", "recreated", "removed").
std::string_view event_kind_name(StreamEvent::Kind kind) noexcept;

/// One line describing an event: "stream 'cam' re-created: 64x64 float32 -> 32x32 uint16",
/// "stream 'cam' removed; waiting for it to come back".
std::string event_text(const StreamEvent& e);

/// The JSON form of an event: {"event", "time_ns", "name", "path", "old_shape", "old_dtype",
/// "old_depth", "new_shape", "new_dtype", "new_depth", "new_error", "waiting"} (keys of an
/// absent side left out).
Json event_to_json(const StreamEvent& e);

/// Like StreamSampler, and also reports what happened to the files between refreshes
/// (take_events()), for `monitor`. Watches either every stream of a directory or a fixed list
/// of paths; a listed path whose file is absent is kept as a row with a not_found error and is
/// picked up when the file appears. A re-created file (Stream::replaced(): new inode; or a size
/// that no longer matches the mapping: truncated in place) is re-opened. Reads of a mapping
/// whose file shrank under it are absorbed (SIGBUS guard) and reported as a re-creation instead
/// of killing the process.
class StreamWatcher {
 public:
  /// @param dir the directory to scan (already resolved).
  /// @param paths stream files to watch instead of scanning `dir` (already resolved); empty:
  ///        every `*.im.shm` file of `dir`.
  explicit StreamWatcher(std::string dir, std::vector<std::string> paths = {});
  StreamWatcher(StreamWatcher&&) noexcept;
  StreamWatcher& operator=(StreamWatcher&&) noexcept;
  ~StreamWatcher();

  /// Re-examines every file and samples every open stream; rates cover the time since the
  /// previous refresh. Events found are queued for take_events(). `scan`: how readers are found
  /// (ReaderScan::cached: the watcher's own ReaderCache).
  /// @throws Error when the directory cannot be listed (directory mode only).
  std::vector<StreamRow> refresh(ReaderScan scan = ReaderScan::cached);

  /// The events found by the refreshes since the previous call, oldest first.
  std::vector<StreamEvent> take_events();

  /// The directory scanned (directory mode) or given.
  [[nodiscard]] const std::string& directory() const noexcept;

  /// True when watching a fixed list of paths.
  [[nodiscard]] bool fixed_paths() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shmlink::cli
