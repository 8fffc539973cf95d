// SPDX-License-Identifier: MIT
// Sampling and watching stream files: StreamSampler, StreamWatcher and their events (rows.hpp,
// watch.hpp).
#include "watch.hpp"

#include "args.hpp"
#include "output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace shmlink::cli {

// ---- sampler ---------------------------------------------------------------------------

namespace detail {


/// Nanoseconds since the epoch, now.
std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// One stream file watched by StreamSampler or StreamWatcher.
struct FileState {
  std::string path;                        ///< file path
  std::optional<Stream> stream;            ///< open handle, when the file validated
  std::optional<StreamGeometry> geometry;  ///< the open stream's geometry
  FileId seen;                             ///< the path's identity at the previous update
  bool known = false;                      ///< updated at least once
  std::uint64_t last_cnt0 = 0;             ///< cnt0 at the previous sample
  std::chrono::steady_clock::time_point last_time{};  ///< time of that sample
  bool sampled = false;                    ///< last_cnt0/last_time are set
  std::string error;                       ///< why the file is not open
  Errc error_code = Errc::ok;              ///< its condition
  bool pids_of_this_kernel = true;         ///< judged at each open (pids_of_this_kernel())

  /// Drops the handle (the file stays) and forgets the error and the rate sample.
  void close() noexcept {
    stream.reset();
    geometry.reset();
    sampled = false;
    error.clear();
    error_code = Errc::ok;
  }

  /// (Re)opens the file, recording its geometry, or the error when it fails (open_for_inspection:
  /// a non-regular file, or one truncated while it is validated, fails to open instead of
  /// blocking or killing the process).
  void open() {
    close();
    try {
      stream.emplace(open_for_inspection(path));
      geometry = geometry_of(*stream);
      pids_of_this_kernel = cli::pids_of_this_kernel(path);
    } catch (const Error& e) {
      stream.reset();
      error = e.what();
      error_code = e.errc();
    } catch (const std::exception& e) {
      stream.reset();
      error = fmt::format("opening {}: {}", path, e.what());
      error_code = Errc::system;
    }
  }

  /// True when the open handle no longer maps the file at the path: it was re-created (new
  /// inode) or removed (Stream::replaced()), or the file's size is not the mapping's any more
  /// (re-sized in place, as DAO's re-creation does).
  [[nodiscard]] bool stale(const FileId& now) const noexcept {
    return stream && (stream->replaced() || (!now.in_region && now.size != stream->file_bytes().size()));
  }
};

/// An event of `kind` about `e`, stamped now.
StreamEvent make_event(StreamEvent::Kind kind, const FileState& e) {
  StreamEvent ev;
  ev.kind = kind;
  ev.name = display_name(e.path);
  ev.path = e.path;
  ev.time_ns = now_ns();
  return ev;
}

/// Fills the new-file side of `ev` from `e`, just (re)opened: its geometry, or its error.
void set_after(StreamEvent& ev, const FileState& e) {
  if (e.geometry) {
    ev.after = *e.geometry;
  } else {
    ev.error = e.error;
    ev.error_code = e.error_code;
  }
}

/// Brings `e` up to date with the file at its path: opens a file seen for the first time or
/// again, re-opens a re-created one, retries one that failed to open. Appends what happened to
/// `events` when non-null; a file's first sighting is no event (the caller decides).
/// @param waiting the watcher keeps the path when its file is removed (named streams).
void update(FileState& e, std::vector<StreamEvent>* events, bool waiting) {
  const FileId now = file_id(e.path);
  const bool was_there = e.known && e.seen.exists;
  if (!now.exists) {
    if (was_there && events != nullptr) {
      StreamEvent ev = make_event(StreamEvent::Kind::removed, e);
      ev.before = e.geometry;
      ev.waiting = waiting;
      events->push_back(std::move(ev));
    }
    e.close();
    e.error = fmt::format("stream file {} does not exist{}", e.path, waiting ? "; waiting for it" : "");
    e.error_code = Errc::not_found;
  } else if (!was_there) {
    e.open();
    if (e.known && events != nullptr) {  // it was absent at the previous update: it came (back)
      StreamEvent ev = make_event(StreamEvent::Kind::created, e);
      set_after(ev, e);
      events->push_back(std::move(ev));
    }
  } else if (e.stream) {
    if (e.stale(now)) {
      std::optional<StreamGeometry> before = e.geometry;
      e.open();
      if (events != nullptr) {
        StreamEvent ev = make_event(StreamEvent::Kind::recreated, e);
        ev.before = std::move(before);
        set_after(ev, e);
        events->push_back(std::move(ev));
      }
    }
  } else {
    // The last open failed: retry. Another inode is another file, i.e. a re-creation.
    e.open();
    if (now.ino != e.seen.ino && events != nullptr) {
      StreamEvent ev = make_event(StreamEvent::Kind::recreated, e);
      set_after(ev, e);
      events->push_back(std::move(ev));
    }
  }
  e.seen = now;
  e.known = true;
}

/// The row of `e`: metadata and update rate when its stream is open, else its error. The reads
/// run under the SIGBUS guard (guarded_read()); when one faults (the file shrank under the mapping) the handle is
/// closed, the row carries the error, and a re-creation is appended to `events` (when non-null).
StreamRow sample(FileState& e, std::vector<StreamEvent>* events) {
  StreamRow row;
  row.path = e.path;
  row.name = display_name(e.path);
  row.pids_of_this_kernel = e.pids_of_this_kernel;
  if (e.stream) {
    std::optional<StreamInfo> info;
    std::uint64_t cnt0 = 0;
    std::string shrank;
    try {
      guarded_read(*e.stream, [&] {
        cnt0 = e.stream->cnt0();
        try {
          info = e.stream->info();
          row.bridge = bridge_freshness(e.stream->keywords());
        } catch (const Error& err) {
          row.error = err.what();
          row.error_code = err.errc();
        }
      });
    } catch (const Error& err) {
      shrank = err.what();
    }
    if (!shrank.empty()) {
      std::optional<StreamGeometry> before = e.geometry;
      e.close();
      e.error = shrank;
      e.error_code = Errc::layout;
      if (events != nullptr) {
        StreamEvent ev = make_event(StreamEvent::Kind::recreated, e);
        ev.before = std::move(before);
        set_after(ev, e);
        events->push_back(std::move(ev));
      }
    } else {
      const auto now = std::chrono::steady_clock::now();
      if (e.sampled) {
        const double dt = std::chrono::duration<double>(now - e.last_time).count();
        const double dc = cnt0 >= e.last_cnt0 ? static_cast<double>(cnt0 - e.last_cnt0) : 0.0;
        if (dt > 0) row.rate_hz = dc / dt;
      }
      e.last_cnt0 = cnt0;
      e.last_time = now;
      e.sampled = true;
      if (info) row.info = std::move(info);
      return row;
    }
  }
  row.error = e.error;
  row.error_code = e.error_code;
  return row;
}

}  // namespace detail


/// One file the sampler watches.
struct StreamSampler::Entry : detail::FileState {};

StreamSampler::StreamSampler(std::string dir) : dir_(std::move(dir)) {}
StreamSampler::StreamSampler(StreamSampler&&) noexcept = default;
StreamSampler& StreamSampler::operator=(StreamSampler&&) noexcept = default;
StreamSampler::~StreamSampler() = default;

std::vector<StreamRow> StreamSampler::refresh(ReaderScan scan, const std::vector<ChannelListing>* listing) {
  const std::vector<std::string> paths = listing != nullptr ? stream_paths(*listing) : list_stream_files(dir_);

  // Merge the sorted listing with the sorted entries: keep, add, drop.
  std::vector<std::unique_ptr<Entry>> next;
  next.reserve(paths.size());
  auto old = entries_.begin();
  for (const std::string& path : paths) {
    while (old != entries_.end() && (*old)->path < path) ++old;
    if (old != entries_.end() && (*old)->path == path) {
      next.push_back(std::move(*old));
      ++old;
    } else {
      auto e = std::make_unique<Entry>();
      e->path = path;
      next.push_back(std::move(e));
    }
  }
  entries_ = std::move(next);

  std::vector<StreamRow> rows;
  rows.reserve(entries_.size());
  for (auto& e : entries_) {
    detail::update(*e, nullptr, false);
    if (!e->seen.exists) continue;  // removed since the listing
    rows.push_back(detail::sample(*e, nullptr));
  }
  if (scan != ReaderScan::none) find_readers(rows);
  return rows;
}

// ---- watcher ---------------------------------------------------------------------------

/// The files a StreamWatcher follows and the events not taken yet.
struct StreamWatcher::State {
  std::string dir;                                          ///< directory scanned or given
  std::vector<std::string> paths;                           ///< fixed paths; empty: scan dir
  std::vector<std::unique_ptr<detail::FileState>> entries;  ///< fixed order, or sorted by path
  std::vector<StreamEvent> events;                          ///< found, not taken yet
  bool started = false;                                     ///< refreshed at least once
  ReaderCache readers;                                      ///< the last /proc scan
};

StreamWatcher::StreamWatcher(std::string dir, std::vector<std::string> paths) : state_(std::make_unique<State>()) {
  state_->dir = std::move(dir);
  for (std::string& p : paths) {
    if (std::find(state_->paths.begin(), state_->paths.end(), p) != state_->paths.end()) continue;
    auto e = std::make_unique<detail::FileState>();
    e->path = p;
    state_->entries.push_back(std::move(e));
    state_->paths.push_back(std::move(p));
  }
}
StreamWatcher::StreamWatcher(StreamWatcher&&) noexcept = default;
StreamWatcher& StreamWatcher::operator=(StreamWatcher&&) noexcept = default;
StreamWatcher::~StreamWatcher() = default;

const std::string& StreamWatcher::directory() const noexcept { return state_->dir; }
bool StreamWatcher::fixed_paths() const noexcept { return !state_->paths.empty(); }

std::vector<StreamEvent> StreamWatcher::take_events() { return std::exchange(state_->events, {}); }

std::vector<StreamRow> StreamWatcher::refresh(ReaderScan scan) {
  State& st = *state_;
  auto readers = [&](std::vector<StreamRow>& rows) {
    if (scan != ReaderScan::none) find_readers(rows, scan == ReaderScan::cached ? &st.readers : nullptr);
  };
  std::vector<StreamRow> rows;
  if (!st.paths.empty()) {
    for (auto& e : st.entries) {
      detail::update(*e, &st.events, true);
      rows.push_back(detail::sample(*e, &st.events));
    }
    st.started = true;
    readers(rows);
    return rows;
  }

  const std::vector<std::string> paths = list_stream_files(st.dir);
  // Merge the sorted listing with the sorted entries; entries missing from it were removed.
  auto drop = [&st](const detail::FileState& e) {
    if (!e.known || !e.seen.exists) return;  // already reported
    StreamEvent ev = detail::make_event(StreamEvent::Kind::removed, e);
    ev.before = e.geometry;
    st.events.push_back(std::move(ev));
  };
  std::vector<std::unique_ptr<detail::FileState>> next;
  next.reserve(paths.size());
  auto old = st.entries.begin();
  for (const std::string& path : paths) {
    for (; old != st.entries.end() && (*old)->path < path; ++old) drop(**old);
    if (old != st.entries.end() && (*old)->path == path) {
      next.push_back(std::move(*old));
      ++old;
    } else {
      auto e = std::make_unique<detail::FileState>();
      e->path = path;
      next.push_back(std::move(e));
    }
  }
  for (; old != st.entries.end(); ++old) drop(**old);
  st.entries = std::move(next);

  rows.reserve(st.entries.size());
  for (auto& e : st.entries) {
    const bool fresh = !e->known;
    detail::update(*e, &st.events, false);
    if (!e->seen.exists) continue;  // removed since the listing (reported by update)
    if (fresh && st.started) {
      StreamEvent ev = detail::make_event(StreamEvent::Kind::created, *e);
      detail::set_after(ev, *e);
      st.events.push_back(std::move(ev));
    }
    rows.push_back(detail::sample(*e, &st.events));
  }
  st.started = true;
  readers(rows);
  return rows;
}


std::string_view event_kind_name(StreamEvent::Kind kind) noexcept {
  switch (kind) {
    case StreamEvent::Kind::created: return "created";
    case StreamEvent::Kind::recreated: return "recreated";
    case StreamEvent::Kind::removed: return "removed";
  }
  return "unknown";
}

std::string event_text(const StreamEvent& e) {
  switch (e.kind) {
    case StreamEvent::Kind::created:
      if (e.after) return fmt::format("stream '{}' created: {}", e.name, format_geometry(*e.after));
      return fmt::format("stream '{}' created, but it does not open: {}", e.name, e.error);
    case StreamEvent::Kind::recreated: {
      const std::string from = e.before ? format_geometry(*e.before) : std::string("an invalid file");
      if (e.after) return fmt::format("stream '{}' re-created: {} -> {}", e.name, from, format_geometry(*e.after));
      return fmt::format("stream '{}' re-created: {} -> a file that does not open: {}", e.name, from, e.error);
    }
    case StreamEvent::Kind::removed:
      return fmt::format("stream '{}' removed{}", e.name, e.waiting ? "; waiting for it to come back" : "");
  }
  return fmt::format("stream '{}': unknown event", e.name);
}

Json event_to_json(const StreamEvent& e) {
  Json j;
  j["event"] = std::string(event_kind_name(e.kind));
  j["time_ns"] = e.time_ns;
  j["name"] = e.name;
  j["path"] = e.path;
  if (e.before) {
    j["old_shape"] = e.before->shape;
    j["old_dtype"] = std::string(dtype_name(e.before->dtype));
    j["old_depth"] = e.before->depth;
  }
  if (e.after) {
    j["new_shape"] = e.after->shape;
    j["new_dtype"] = std::string(dtype_name(e.after->dtype));
    j["new_depth"] = e.after->depth;
  }
  if (!e.error.empty()) {
    j["new_error"] = e.error;
    j["new_error_code"] = std::string(shmlink::strerror(e.error_code));
  }
  if (e.kind == StreamEvent::Kind::removed) j["waiting"] = e.waiting;
  return j;
}

}  // namespace shmlink::cli
