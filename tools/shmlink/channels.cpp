// SPDX-License-Identifier: MIT
// Queues and memif status files for the CLI (channels.hpp).
#include "channels.hpp"

#include "output.hpp"
#include "rows.hpp"
#include "streams.hpp"

#include <shmlink/catalog.hpp>
#include <shmlink/region.hpp>
#include <shmlink/segment.hpp>

#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

namespace shmlink::cli {

namespace {

/// True when something is at `path` (lstat(2), so a dangling link counts) or when that cannot
/// be decided (EACCES and the like): only ENOENT and ENOTDIR mean absent.
bool present(const std::string& path) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return true;
  return errno != ENOENT && errno != ENOTDIR;
}

}  // namespace

std::string_view channel_kind_name(ChannelKind kind) noexcept {
  switch (kind) {
    case ChannelKind::stream: return "stream";
    case ChannelKind::queue: return "queue";
    case ChannelKind::memif: return "memif";
    case ChannelKind::villas: return "villas";
    case ChannelKind::region: return "region";
  }
  return "unknown";
}

std::string_view wait_mode_name(WaitMode mode) noexcept {
  switch (mode) {
    case WaitMode::polling: return "polling";
    case WaitMode::futex: return "futex";
    case WaitMode::hybrid: return "hybrid";
  }
  return "unknown";
}

bool is_stream_file_name(const std::string& path) { return channel_file(path).kind == "stream"; }

bool is_queue_file_name(const std::string& path) { return channel_file(path).kind == "queue"; }

std::string resolve_queue(const std::string& name, const std::string& dir) {
  if (name.empty()) throw Error(Errc::invalid_argument, "queue name is empty");
  if (name.find('/') != std::string::npos) return shmlink::queue_path(name);
  // queue_path() drops a trailing ".queue.shm" and checks the length of the bare name.
  const std::string in_default_dir = shmlink::queue_path(name);
  if (dir.empty()) return in_default_dir;
  return dir + "/" + std::filesystem::path(in_default_dir).filename().string();
}

std::vector<std::string> list_queue_files(const std::string& dir) { return list_channel_files(dir, "queue"); }

std::string queue_display_name(const std::string& path) {
  if (split_region_locator(path)) return path;  // PATH:NAME, as info and cat take it
  ChannelListing file = channel_file(path);
  return file.kind == "queue" ? std::move(file.name) : std::filesystem::path(path).filename().string();
}

ResolvedChannel resolve_channel(const std::string& name, const std::string& dir, bool force_queue) {
  if (const auto locator = split_region_locator(name)) {
    // PATH:NAME: the entry's kind says which (--queue insists on a queue).
    require_regular_file(locator->first, "region");
    const Region region = Region::open(locator->first, false);
    for (const RegionEntry& e : region.entries()) {
      if (e.name != locator->second || e.state != EntryState::ready) continue;
      const bool queue = e.kind == shmlink::ChannelKind::queue;
      if (force_queue && !queue)
        throw Error(Errc::layout, fmt::format("{} is a stream, not a queue", shown(name)));
      return {queue ? ChannelKind::queue : ChannelKind::stream, name, std::nullopt};
    }
    throw Error(Errc::not_found, fmt::format("no channel named '{}' in region {} ({})", shown(locator->second),
                                             shown(locator->first), shown(name)));
  }
  if (force_queue || is_queue_file_name(name)) return {ChannelKind::queue, resolve_queue(name, dir), std::nullopt};
  const std::string stream = resolve_stream(name, dir);
  if (name.find('/') != std::string::npos || is_stream_file_name(name)) {
    return {ChannelKind::stream, stream, std::nullopt};
  }
  const std::string queue = resolve_queue(name, dir);
  if (present(stream)) {
    return {ChannelKind::stream, stream, present(queue) ? std::optional<std::string>(queue) : std::nullopt};
  }
  if (present(queue)) return {ChannelKind::queue, queue, std::nullopt};
  throw Error(Errc::not_found,
              fmt::format("no stream or queue named '{}': neither {} nor {} exists", name, stream, queue));
}

QueueRow inspect_queue(const std::string& path) {
  QueueRow row;
  row.path = path;
  row.name = queue_display_name(path);
  try {
    const auto locator = split_region_locator(path);  // PATH:NAME, a queue in a region
    require_regular_file(locator ? locator->first : path, locator ? "region" : "queue");
    std::optional<QueueInfo> info;
    // Every address (an empty range): the mapping is not known before open() returns.
    const bool faulted = read_guarded({}, [&] {
      if (locator) {
        Region region = Region::open(locator->first, false);
        const Queue q = region.open_queue(locator->second, QueueExpect{.writable = false});
        row.pids_of_this_kernel = region.same_kernel() && region.created_by_this_kernel();  // as pids_of_this_kernel()
        info = q.info();
      } else {
        info = Queue::open(path, QueueExpect{.writable = false}).info();
      }
    });
    if (faulted) {
      row.error = fmt::format("queue file {} shrank while it was read (truncated or re-created in place)", shown(path));
      row.error_code = Errc::layout;
      return row;
    }
    row.info = std::move(info);
  } catch (const Error& e) {
    row.error = e.what();
    row.error_code = e.errc();
  } catch (const std::exception& e) {
    row.error = fmt::format("opening queue {}: {}", path, e.what());
    row.error_code = Errc::system;
  }
  return row;
}


std::uint64_t queue_size(const QueueInfo& info) noexcept {
  if (info.pushed <= info.popped) return 0;
  return std::min<std::uint64_t>(info.pushed - info.popped, info.capacity);
}

Json queue_row_to_json(const QueueRow& row) {
  Json j;
  j["name"] = row.name;
  j["kind"] = std::string(channel_kind_name(ChannelKind::queue));
  j["path"] = row.path;
  if (!row.info) {
    add_error_json(j, row.error, row.error_code);
    return j;
  }
  const QueueInfo& info = *row.info;
  j["queue_kind"] = std::string(queue_kind_name(info.kind));
  j["wait_mode"] = std::string(wait_mode_name(info.wait));
  j["capacity"] = info.capacity;
  j["max_values"] = info.max_values;
  j["cell_bytes"] = info.cell_bytes;
  j["file_bytes"] = info.file_bytes;
  j["size"] = queue_size(info);
  j["pushed"] = info.pushed;
  j["popped"] = info.popped;
  j["shut_down"] = info.closed;
  j["signal_count"] = info.signals.size();
  j["creator_pid"] = info.creator_pid;
  j["creator_alive"] = liveness_json(info.creator_pid, row.pids_of_this_kernel);
  j["consumer_pid"] = info.consumer_pid;
  j["creation_time_ns"] = info.creation_time_ns;
  return j;
}

// ---- memif status files ---------------------------------------------------------------

std::vector<std::string> list_memif_status_files(const std::string& dir) {
  return list_channel_files(dir, "memif-status");
}

memif::SocketStatus inspect_memif_status(const std::string& path) {
  memif::SocketStatus s;
  try {
    // Every address (an empty range): the mapping is made inside read_socket_status.
    const bool faulted = read_guarded({}, [&] { s = memif::read_socket_status(path); });
    if (faulted) {
      s = memif::SocketStatus{};
      s.file = path;
      s.error = fmt::format("memif status file {} shrank while it was read (truncated in place)", path);
      s.error_code = Errc::layout;
    }
  } catch (const Error& e) {
    s = memif::SocketStatus{};
    s.file = path;
    s.error = e.what();
    s.error_code = e.errc();
  } catch (const std::exception& e) {
    s = memif::SocketStatus{};
    s.file = path;
    s.error = fmt::format("reading memif status file {}: {}", path, e.what());
    s.error_code = Errc::system;
  }
  return s;
}

std::vector<memif::SocketStatus> list_memif_status(const std::string& dir) {
  return inspect_memif_status_files(list_memif_status_files(dir));
}

std::vector<memif::SocketStatus> inspect_memif_status_files(const std::vector<std::string>& paths) {
  std::vector<memif::SocketStatus> out;
  for (const std::string& path : paths) {
    memif::SocketStatus s = inspect_memif_status(path);
    if (!s.error.empty() && s.error_code == Errc::not_found) continue;  // its socket closed meanwhile
    out.push_back(std::move(s));
  }
  return out;
}

std::string_view memif_mode_name(memif::InterfaceMode mode) noexcept {
  switch (mode) {
    case memif::InterfaceMode::ethernet: return "ethernet";
    case memif::InterfaceMode::ip: return "ip";
    case memif::InterfaceMode::punt_inject: return "punt-inject";
  }
  return "unknown";
}

Json memif_interface_to_json(const memif::InterfaceStatus& s) {
  Json j;
  j["id"] = s.id;
  j["role"] = std::string(memif::role_name(s.role));
  j["name"] = s.name;
  j["mode"] = std::string(memif_mode_name(s.mode));
  j["state"] = std::string(memif::link_state_name(s.state));
  j["peer_name"] = s.peer_name;
  j["peer_app"] = s.peer_app;
  j["last_disconnect"] = s.last_disconnect;
  j["connects"] = s.connects;
  j["tx_queues"] = s.tx_queues;
  j["rx_queues"] = s.rx_queues;
  j["ring_size"] = s.ring_size;
  j["buffer_size"] = s.buffer_size;
  j["tx_packets"] = s.tx_packets;
  j["tx_bytes"] = s.tx_bytes;
  j["rx_packets"] = s.rx_packets;
  j["rx_bytes"] = s.rx_bytes;
  j["bad_descriptors"] = s.bad_descriptors;
  j["dropped_packets"] = s.dropped_packets;
  j["clamped_jumps"] = s.clamped_jumps;
  j["ring_full"] = s.ring_full;
  j["interrupts_sent"] = s.interrupts_sent;
  j["updated_ns"] = s.updated_ns;
  j["torn"] = s.torn;
  return j;
}

Json memif_socket_to_json(const memif::SocketStatus& s) {
  Json j;
  if (!s.error.empty()) {
    j["socket"] = nullptr;
    j["kind"] = std::string(channel_kind_name(ChannelKind::memif));
    j["file"] = s.file;
    add_error_json(j, s.error, s.error_code);
    return j;
  }
  j["socket"] = s.socket;
  j["kind"] = std::string(channel_kind_name(ChannelKind::memif));
  j["file"] = s.file;
  j["pid"] = s.pid;
  j["alive"] = s.alive;
  j["start_time_ticks"] = s.start_time_ticks;
  j["app_name"] = s.app_name;
  j["role"] = s.role ? Json(std::string(memif::role_name(*s.role))) : Json(nullptr);
  j["created_ns"] = s.created_ns;
  j["overflow"] = s.overflow;
  Json ifs = Json::array();
  for (const memif::InterfaceStatus& i : s.interfaces) ifs.push_back(memif_interface_to_json(i));
  j["interfaces"] = std::move(ifs);
  return j;
}

Json signals_to_json(const std::vector<Signal>& signals) {
  Json out = Json::array();
  for (const Signal& s : signals) {
    Json e;
    e["index"] = s.index;
    e["name"] = s.name;
    e["type"] = std::string(signal_type_name(s.type));
    e["unit"] = s.unit;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace shmlink::cli
