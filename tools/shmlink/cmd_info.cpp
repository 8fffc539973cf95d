// SPDX-License-Identifier: MIT
// `shmlink info NAME`: every metadata field of one stream, its semaphores and keywords; or every
// header field of one queue, its counters and its signal table; or (`--memif`, a NAME starting
// with '@' or naming a socket file) what the processes serving a memif socket publish about it;
// or (`--villas`, "/NAME", or a name found only in /dev/shm) a VILLASnode shmem region, read-only.
#include "common.hpp"

#include <shmlink/catalog.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <variant>
#include <vector>

namespace shmlink::cli {

namespace {

/// Options of `info`.
struct InfoOptions {
  std::string name;    ///< stream or queue name, or path
  std::string dir;     ///< directory override
  bool queue = false;  ///< NAME is a queue (--queue), even when a stream of that name exists
  bool memif = false;  ///< NAME is a memif socket (--memif)
  bool villas = false; ///< NAME is a VILLASnode shmem region (--villas)
  bool json = false;   ///< print JSON
};

/// The ISIO keyword type letter of a value ('L', 'D' or 'S').
char keyword_type(const KeywordValue& v) noexcept {
  if (std::holds_alternative<std::int64_t>(v)) return 'L';
  if (std::holds_alternative<double>(v)) return 'D';
  return 'S';
}

/// A keyword value as text.
std::string keyword_text(const KeywordValue& v) {
  if (const auto* l = std::get_if<std::int64_t>(&v)) return std::to_string(*l);
  if (const auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  return fmt::format("'{}'", std::get<std::string>(v));
}

/// A keyword value as JSON (number or string).
Json keyword_json(const KeywordValue& v) {
  if (const auto* l = std::get_if<std::int64_t>(&v)) return *l;
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::get<std::string>(v);
}

/// The names of the imagetype bits set in `t` ("MATH_DATA|ZAXIS_TEMPORAL").
std::string imagetype_names(std::uint64_t t) {
  std::string out;
  auto add = [&out](const char* name) {
    if (!out.empty()) out += '|';
    out += name;
  };
  if ((t & kImagetypeCircularBuffer) != 0) add("CIRCULAR_BUFFER");
  if ((t & kImagetypeMathData) != 0) add("MATH_DATA");
  if ((t & kImagetypeReceived) != 0) add("IMG_RECV");
  if ((t & kImagetypeSent) != 0) add("IMG_SENT");
  switch (t & 0xF0000u) {
    case 0x10000: add("ZAXIS_SPACIAL"); break;
    case 0x20000: add("ZAXIS_TEMPORAL"); break;
    case 0x30000: add("ZAXIS_WAVELENGTH"); break;
    case 0x40000: add("ZAXIS_MAPPING"); break;
    default: break;
  }
  return out.empty() ? "-" : out;
}

/// Appends "key: value" to `out`, keys padded to one column (the layout of `info`'s text); the
/// value is escaped (shown()): names, paths and messages come from files.
void add_line(std::string& out, std::string_view key, const std::string& value) {
  out += fmt::format("{:<18}{}\n", fmt::format("{}:", key), shown(value));
}

/// Appends the "mode" and "file owner" lines of `owner` (the file's permission bits and owner).
void add_owner_lines(std::string& out, const FileOwner& owner) {
  add_line(out, "mode", format_mode(owner.mode));
  add_line(out, "file owner", fmt::format("{} ({}), group {} ({})", owner.uid, owner.user.empty() ? "?" : owner.user,
                                          owner.gid, owner.group.empty() ? "?" : owner.group));
}

/// Prints a queue's header, counters and signal table as text or JSON.
/// @throws Error (not_found, permission, layout, ...) from opening the queue file, naming it.
int run_queue_info(const std::string& path, bool json) {
  const QueueRow row = inspect_queue(path);
  if (!row.info) throw Error(row.error_code, row.error);
  const QueueInfo& info = *row.info;
  const std::optional<FileOwner> owner = file_owner(info.path);
  const bool local = row.pids_of_this_kernel;

  if (json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["kind"] = std::string(channel_kind_name(ChannelKind::queue));
    j["name"] = info.name;
    j["path"] = info.path;
    j["version"] = info.version;
    j["queue_kind"] = std::string(queue_kind_name(info.kind));
    j["wait_mode"] = std::string(wait_mode_name(info.wait));
    j["capacity"] = info.capacity;
    j["max_values"] = info.max_values;
    j["cell_bytes"] = info.cell_bytes;
    j["file_bytes"] = info.file_bytes;
    if (owner) add_owner_json(j, *owner);
    j["size"] = queue_size(info);
    j["pushed"] = info.pushed;
    j["popped"] = info.popped;
    j["shut_down"] = info.closed;
    j["creator_pid"] = info.creator_pid;
    j["creator_alive"] = liveness_json(info.creator_pid, local);
    j["consumer_pid"] = info.consumer_pid;
    j["creation_time_ns"] = info.creation_time_ns;
    j["signal_count"] = info.signals.size();
    j["signals"] = signals_to_json(info.signals);
    print_json(j);
    return kExitOk;
  }

  std::string out;
  add_line(out, "name", info.name);
  add_line(out, "kind", "queue");
  add_line(out, "path", info.path);
  add_line(out, "version", std::to_string(info.version));
  add_line(out, "queue kind", fmt::format("{} ({})", queue_kind_name(info.kind),
                                          info.kind == QueueKind::spsc ? "one producer, one consumer"
                                                                       : "many producers, many consumers"));
  add_line(out, "wait mode", std::string(wait_mode_name(info.wait)));
  add_line(out, "capacity", std::to_string(info.capacity));
  add_line(out, "max values", std::to_string(info.max_values));
  add_line(out, "cell bytes", std::to_string(info.cell_bytes));
  add_line(out, "file bytes", std::to_string(info.file_bytes));
  if (owner) add_owner_lines(out, *owner);
  add_line(out, "size", fmt::format("{} (pushed - popped)", queue_size(info)));
  add_line(out, "pushed", std::to_string(info.pushed));
  add_line(out, "popped", std::to_string(info.popped));
  add_line(out, "state", info.closed ? "shut_down (no more pushes; consumers drain it)" : "open");
  add_line(out, "creator pid", pid_cell_text(info.creator_pid, local));
  if (info.consumer_pid != 0)
    add_line(out, "reader pid", fmt::format("{} ({}; attached through an interface)", info.consumer_pid,
                                            liveness_text(pid_liveness(info.consumer_pid, local))));
  add_line(out, "creation time", format_time_ns(info.creation_time_ns));
  add_line(out, "signals", std::to_string(info.signals.size()));
  std::cout << out;

  if (info.signals.empty()) {
    std::cout << "\nno signal table\n";
  } else {
    Table st;
    st.headers = {"INDEX", "SIGNAL", "TYPE", "UNIT"};
    st.right_aligned = {true, false, false, false};
    for (const Signal& sig : info.signals) {
      st.rows.push_back({{std::to_string(sig.index)}, {sig.name}, {std::string(signal_type_name(sig.type))},
                         {sig.unit.empty() ? std::string("-") : sig.unit}});
    }
    std::cout << '\n' << st.render(false);
  }
  std::cout << std::flush;
  return kExitOk;
}

/// True when something is at `path` (lstat(2)) or when that cannot be decided (not ENOENT or
/// ENOTDIR), so the open that follows reports the real error.
bool exists(const std::string& path) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return true;
  return errno != ENOENT && errno != ENOTDIR;
}

/// True when the file `path`'s first bytes look like a VILLAS region (shmlink::channel_file()
/// looking inside: only a regular file, read-only, its first 1024 bytes).
bool looks_like_villas_file(const std::string& path) { return channel_file(path, true).kind == "villas"; }

/// The VILLAS region NAME means without --villas, if any:
/// - "/x" (VILLASnode's spelling: one '/', in front) is `/dev/shm/x` unless a file "/x" exists
///   and `/dev/shm/x` does not;
/// - a bare "x" is `/dev/shm/x` when neither the stream nor the queue of that name exists and
///   `/dev/shm/x` looks like a region (villas::looks_like_region(); any other file there, a
///   camera's `/dev/shm/cam`, leaves NAME to the "no stream or queue" error);
/// - another path (not ending in .im.shm or .queue.shm) is a region when its first bytes look
///   like one (villas::looks_like_region()).
std::optional<std::string> villas_target(const std::string& name, const std::string& dir) {
  if (name.empty() || name.front() == '@' || is_stream_file_name(name) || is_queue_file_name(name)) {
    return std::nullopt;
  }
  const std::size_t slash = name.find('/');
  if (slash == std::string::npos) {
    const std::string region = resolve_villas(name);
    if (!exists(region)) return std::nullopt;
    try {
      if (exists(resolve_stream(name, dir)) || exists(resolve_queue(name, dir))) {
        spdlog::warn("a file '{}' exists too in {}; showing the stream or queue, use --villas for the VILLAS region",
                     shown(name), kVillasShmDir);
        return std::nullopt;
      }
    } catch (const Error&) {  // not a channel name (too long, ...): only a region can be meant
    }
    if (!looks_like_villas_file(region)) return std::nullopt;
    return region;
  }
  if (slash == 0 && name.find('/', 1) == std::string::npos && name.size() > 1) {
    const std::string region = resolve_villas(name);
    if (exists(region) || !exists(name)) return region;
    return std::nullopt;
  }
  if (looks_like_villas_file(name)) return name;
  return std::nullopt;
}

/// Prints a VILLASnode shmem region (villas::inspect_file(): read with pread, never mapped, never
/// written, no lock taken) with its holders and rendezvous semaphore, as text or JSON.
/// @throws Error not_found, permission, layout (not a VILLAS v1.x region: the message names the
///         failed check and the supported versions), naming the file.
int run_villas_info(const std::string& path, bool json) {
  std::vector<VillasRow> rows(1);
  VillasRow& row = rows.front();
  row.path = path;
  row.name = path.rfind(std::string(kVillasShmDir) + "/", 0) == 0 ? path.substr(kVillasShmDir.size()) : path;
  row.info = inspect_villas_file(path);
  find_villas_holders(rows);  // inspect_file() closed the file: this process is not among them
  const villas::RegionInfo& info = *row.info;
  const std::optional<FileOwner> owner = file_owner(path);

  if (json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["kind"] = std::string(channel_kind_name(ChannelKind::villas));
    j["name"] = row.name;
    j["path"] = info.path;
    add_villas_info_json(j, info);
    if (owner) add_owner_json(j, *owner);
    add_villas_holders_json(j, row);
    print_json(j);
    return kExitOk;
  }

  std::string out;
  add_line(out, "name", row.name);
  add_line(out, "kind", "villas (VILLASnode v1.x shmem region)");
  add_line(out, "path", info.path);
  add_line(out, "file bytes", std::to_string(info.size));
  if (owner) add_owner_lines(out, *owner);
  add_line(out, "region mode", info.pthread_mode ? "pthread (its reader is woken through a process-shared condition "
                                                   "variable)"
                                                 : "polling (its reader spins)");
  add_line(out, "state", info.stopped ? "stopped (its owner closed it)" : "open");
  add_line(out, "queue cells", std::to_string(info.queue_cells));
  add_line(out, "queued", fmt::format("{} (samples its reader has not taken yet)", info.queued));
  add_line(out, "pool blocks", fmt::format("{} (the owner's queuelen)", info.pool_blocks));
  add_line(out, "free blocks", std::to_string(info.free_blocks));
  add_line(out, "block size", fmt::format("{} bytes", info.block_size));
  add_line(out, "sample capacity", fmt::format("{} values", info.sample_capacity));
  const std::optional<bool> stale = villas_stale(row);
  add_line(out, "holders",
           stale && *stale ? std::string("none (stale: no process maps it; a killed side left it behind)")
           : stale         ? fmt::format("{}: {}", row.holders.size(), villas_holders_text(row)) +
                         (row.holders_uninspectable > 0
                              ? fmt::format("; {} process{} could not be inspected", row.holders_uninspectable,
                                            row.holders_uninspectable == 1 ? "" : "es")
                              : std::string())
                           : villas_holders_text(row) + "; run as root to see every holder");
  add_line(out, "semaphore",
           row.semaphore ? fmt::format("{} ({})", row.semaphore_path, villas_semaphore_text(row)) : std::string("none"));
  std::cout << out << std::flush;
  return kExitOk;
}

/// True when NAME means a memif socket without --memif: an abstract name ('@...') or a path to
/// an existing socket file.
bool names_memif_socket(const std::string& name) {
  if (!name.empty() && name.front() == '@') return true;
  struct stat st {};
  return ::stat(name.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

/// A socket path in the form the status file holds it: absolute and lexically normal; symlinks
/// in it resolved when the path exists (weakly_canonical). '@' names are returned unchanged.
std::string memif_socket_key(const std::string& name) {
  if (name.empty() || name.front() == '@') return name;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(name), ec);
  if (ec) return name;
  const fs::path canon = fs::weakly_canonical(p, ec);
  return (ec ? p.lexically_normal() : canon).string();
}

/// Prints one status file's socket header and a block per interface (text).
void print_memif_socket(const memif::SocketStatus& s) {
  std::string out;
  add_line(out, "socket", s.socket);
  add_line(out, "kind", "memif");
  add_line(out, "status file", s.file);
  add_line(out, "pid", fmt::format("{} ({})", s.pid, s.alive ? "alive" : "dead: the status file is stale, `shmlink gc` removes it"));
  add_line(out, "start time", fmt::format("{} clock ticks after boot", s.start_time_ticks));
  add_line(out, "app name", s.app_name);
  add_line(out, "role", s.role ? std::string(memif::role_name(*s.role)) : std::string("none yet"));
  add_line(out, "created", format_time_ns(s.created_ns));
  add_line(out, "interfaces", s.overflow == 0 ? std::to_string(s.interfaces.size())
                                             : fmt::format("{} (and {} not published: a status file holds 64)",
                                                           s.interfaces.size(), s.overflow));
  for (const memif::InterfaceStatus& i : s.interfaces) {
    out += '\n';
    add_line(out, "interface", fmt::format("{} (id {}, {})", i.name, i.id, memif::role_name(i.role)));
    add_line(out, "mode", std::string(memif_mode_name(i.mode)));
    add_line(out, "state", memif::link_state_name(i.state));
    const bool linked = i.state == memif::LinkState::connected || i.state == memif::LinkState::handshake;
    add_line(out, linked ? "peer" : "last peer",
             i.peer_name.empty() && i.peer_app.empty()
                 ? std::string("-")
                 : fmt::format("'{}' of application '{}'", i.peer_name, i.peer_app));
    add_line(out, "last disconnect", i.last_disconnect.empty() ? std::string("-") : i.last_disconnect);
    add_line(out, "connects", std::to_string(i.connects));
    add_line(out, "queues", fmt::format("{} tx, {} rx", i.tx_queues, i.rx_queues));
    add_line(out, "ring size", i.ring_size != 0 ? fmt::format("{} slots", i.ring_size) : std::string("-"));
    add_line(out, "buffer size", i.buffer_size != 0 ? fmt::format("{} bytes", i.buffer_size) : std::string("-"));
    add_line(out, "tx", fmt::format("{} packets, {} bytes", i.tx_packets, i.tx_bytes));
    add_line(out, "rx", fmt::format("{} packets, {} bytes", i.rx_packets, i.rx_bytes));
    add_line(out, "bad descriptors", std::to_string(i.bad_descriptors));
    add_line(out, "dropped packets", std::to_string(i.dropped_packets));
    add_line(out, "clamped jumps", std::to_string(i.clamped_jumps));
    add_line(out, "ring full", std::to_string(i.ring_full));
    add_line(out, "interrupts sent", std::to_string(i.interrupts_sent));
    add_line(out, "updated", format_time_ns(i.updated_ns) + (i.torn ? " (torn: the owner died mid-update)" : ""));
  }
  std::cout << out;
}

/// Shows every status file that publishes the socket `name` (normally one; a stale file of a
/// dead process may stand next to the live one).
/// @throws Error not_found naming the socket and the directory when no file publishes it.
int run_memif_info(const std::string& name, const std::string& dir_option, bool json) {
  const std::string dir = resolve_directory(dir_option);
  const std::string key = memif_socket_key(name);
  std::vector<memif::SocketStatus> found;
  for (memif::SocketStatus& s : list_memif_status(dir)) {
    if (!s.error.empty()) continue;
    if (s.socket == name || s.socket == key || memif_socket_key(s.socket) == key) found.push_back(std::move(s));
  }
  if (found.empty()) {
    throw Error(Errc::not_found,
                fmt::format("no memif socket '{}' is published in {} (no *.memif.shm file names it; is its process "
                            "running with the same stream directory, and without publish_status = false?)",
                            name, dir));
  }
  if (json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["kind"] = std::string(channel_kind_name(ChannelKind::memif));
    j["socket"] = name;
    j["directory"] = dir;
    Json arr = Json::array();
    for (const memif::SocketStatus& s : found) arr.push_back(memif_socket_to_json(s));
    j["sockets"] = std::move(arr);
    print_json(j);
    return kExitOk;
  }
  for (std::size_t k = 0; k < found.size(); ++k) {
    if (k != 0) std::cout << '\n';
    print_memif_socket(found[k]);
  }
  std::cout << std::flush;
  return kExitOk;
}

/// Runs `info`: resolves NAME to a stream or a queue (resolve_channel()) and prints its
/// metadata as text or JSON. A queue shadowed by a stream of the same name is mentioned on
/// stderr.
int run_info(const InfoOptions& opt) {
  if (opt.villas) return run_villas_info(resolve_villas(opt.name), opt.json);
  if (!opt.queue && !opt.memif) {
    if (const std::optional<std::string> region = villas_target(opt.name, opt.dir)) {
      return run_villas_info(*region, opt.json);
    }
  }
  if (opt.memif || (!opt.queue && names_memif_socket(opt.name))) return run_memif_info(opt.name, opt.dir, opt.json);
  // A remote stream ("HOST:NAME") without a local file: the bridge service's replica.
  const std::optional<std::string> replica = opt.queue ? std::nullopt : replica_of_missing(opt.name, opt.dir);
  const ResolvedChannel target = resolve_channel(replica.value_or(opt.name), opt.dir, opt.queue);
  if (target.kind == ChannelKind::queue) return run_queue_info(target.path, opt.json);
  if (target.other_queue) {
    spdlog::warn("a queue named '{}' exists too ({}); showing the stream, use --queue for the queue", shown(opt.name),
                 shown(*target.other_queue));
  }
  const std::string& path = target.path;
  Stream s = open_for_inspection(path);
  StreamInfo info;
  std::vector<Keyword> keywords;
  guarded_read(s, [&] {
    info = s.info();
    keywords = s.keywords();
  });
  const std::int32_t wpid = writer_pid(info);
  const bool local = pids_of_this_kernel(path);
  int uninspectable = 0;
  const std::vector<StreamReader> readers = stream_readers(info, processes_using(s.path(), &uninspectable), local);
  const std::vector<std::uint32_t> frame_shape(s.frame_shape().begin(), s.frame_shape().end());
  // stat(2) of the path (the library keeps no descriptor we could fstat): should the stream be
  // re-created between the open and this call, mode and owner are the new file's.
  const std::optional<FileOwner> owner = file_owner(s.path());

  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["kind"] = std::string(channel_kind_name(ChannelKind::stream));
    j["name"] = display_name(path);
    j["stored_name"] = info.name;
    j["name_differs"] = info.name != display_name(path);
    j["path"] = info.path;
    j["version"] = info.version;
    j["shape"] = info.shape;
    std::vector<std::uint32_t> numpy_shape(info.shape.rbegin(), info.shape.rend());
    j["numpy_shape"] = numpy_shape;
    j["dtype"] = std::string(dtype_name(info.dtype));
    j["dtype_code"] = static_cast<int>(info.dtype);
    j["nelement"] = info.nelement;
    j["depth"] = info.depth;
    j["frame_shape"] = frame_shape;
    j["frame_bytes"] = info.frame_bytes;
    j["data_bytes"] = info.data_bytes;
    j["file_bytes"] = info.file_bytes;
    if (owner) add_owner_json(j, *owner);
    j["imagetype"] = info.imagetype;
    j["imagetype_names"] = imagetype_names(info.imagetype);
    j["semaphores"] = info.semaphores;
    j["keyword_slots"] = info.keyword_slots;
    j["circular_buffer"] = info.circular_buffer;
    j["creator_pid"] = info.creator_pid;
    j["owner_pid"] = info.owner_pid;
    j["writer_pid"] = wpid;
    j["writer_alive"] = liveness_json(wpid, local);
    add_readers_json(j, readers, uninspectable);
    j["inode"] = info.inode;
    j["write_flag"] = info.write_flag;
    j["cnt0"] = info.frame.cnt0;
    j["cnt1"] = info.frame.cnt1;
    j["cnt2"] = info.frame.cnt2;
    j["atime_ns"] = info.frame.atime_ns;
    j["writetime_ns"] = info.frame.writetime_ns;
    j["creation_time_ns"] = info.creation_time_ns;
    j["last_access_time_ns"] = info.last_access_time_ns;
    Json sems = Json::array();
    for (std::size_t i = 0; i < info.semaphores; ++i) {
      Json e;
      e["index"] = i;
      e["value"] = i < info.sem_values.size() ? info.sem_values[i] : -1;
      const std::int32_t rpid = i < info.sem_read_pids.size() ? info.sem_read_pids[i] : -1;
      e["read_pid"] = rpid;
      e["read_pid_alive"] = liveness_json(rpid, local);
      e["write_pid"] = i < info.sem_write_pids.size() ? info.sem_write_pids[i] : -1;
      sems.push_back(std::move(e));
    }
    j["semaphore_slots"] = std::move(sems);
    Json kws = Json::array();
    for (const Keyword& k : keywords) {
      Json e;
      e["name"] = k.name;
      e["type"] = std::string(1, keyword_type(k.value));
      e["value"] = keyword_json(k.value);
      e["comment"] = k.comment;
      e["count"] = k.count;
      kws.push_back(std::move(e));
    }
    j["keywords"] = std::move(kws);
    j["bridge"] = bridge_json(bridge_freshness(keywords));  // null: not a bridge replica
    print_json(j);
    return kExitOk;
  }

  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) { add_line(out, key, value); };
  std::vector<std::uint32_t> numpy_shape(info.shape.rbegin(), info.shape.rend());
  const std::string file_name = display_name(path);
  line("name", file_name);
  if (info.name != file_name) line("stored name", info.name + "  (differs from the file's name!)");
  line("path", info.path);
  line("version", info.version);
  line("shape", fmt::format("{} (numpy ({}))", format_shape(info.shape), fmt::join(numpy_shape, ", ")));
  line("dtype", fmt::format("{} ({}, code {})", dtype_name(info.dtype), dtype_short_name(info.dtype),
                            static_cast<int>(info.dtype)));
  line("nelement", std::to_string(info.nelement));
  line("depth", info.depth > 1 ? fmt::format("{} (rolling buffer; cnt1 = slice written last)", info.depth)
                               : std::string("1"));
  line("frame shape", format_shape(frame_shape));
  line("frame bytes", std::to_string(info.frame_bytes));
  line("data bytes", std::to_string(info.data_bytes));
  line("file bytes", std::to_string(info.file_bytes));
  if (owner) add_owner_lines(out, *owner);
  line("imagetype", fmt::format("{:#x} ({})", info.imagetype, imagetype_names(info.imagetype)));
  line("circular buffer", std::to_string(info.circular_buffer));
  line("creator pid", pid_cell_text(info.creator_pid, local));
  line("owner pid", std::to_string(info.owner_pid));
  line("writer pid", pid_cell_text(wpid, local));
  line("readers", readers.empty() ? std::string("0")
                                  : fmt::format("{}: {}", readers.size(), readers_text(readers)));
  line("inode", std::to_string(info.inode));
  line("write flag", info.write_flag ? "1" : "0");
  line("cnt0", std::to_string(info.frame.cnt0));
  line("cnt1", std::to_string(info.frame.cnt1));
  line("cnt2", std::to_string(info.frame.cnt2));
  line("atime", format_time_ns(info.frame.atime_ns));
  line("writetime", format_time_ns(info.frame.writetime_ns));
  line("creation time", format_time_ns(info.creation_time_ns));
  line("last access time", format_time_ns(info.last_access_time_ns));
  line("semaphores", std::to_string(info.semaphores));
  line("keyword slots", std::to_string(info.keyword_slots));
  if (const auto fresh = bridge_freshness(keywords)) {  // a bridge replica: where from, how fresh
    out += "\nbridge replica\n";
    for (const auto& [key, value] : bridge_lines(*fresh)) line(key, value);
  }
  std::cout << out;

  Table sems;
  sems.headers = {"SEM", "VALUE", "READ_PID", "WRITE_PID"};
  sems.right_aligned = {true, true, true, true};
  for (std::size_t i = 0; i < info.semaphores; ++i) {
    const std::int32_t rpid = i < info.sem_read_pids.size() ? info.sem_read_pids[i] : -1;
    std::string rtext = std::to_string(rpid);
    if (rpid > 0) rtext += fmt::format(" ({})", liveness_text(pid_liveness(rpid, local)));
    sems.rows.push_back({{std::to_string(i)},
                         {std::to_string(i < info.sem_values.size() ? info.sem_values[i] : -1)},
                         {rtext},
                         {std::to_string(i < info.sem_write_pids.size() ? info.sem_write_pids[i] : -1)}});
  }
  std::cout << '\n' << sems.render(false);

  if (keywords.empty()) {
    std::cout << "\nno keywords\n";
  } else {
    Table kt;
    kt.headers = {"KEYWORD", "TYPE", "VALUE", "COUNT", "COMMENT"};
    kt.right_aligned = {false, false, false, true, false};
    for (const Keyword& k : keywords) {
      kt.rows.push_back({{k.name}, {std::string(1, keyword_type(k.value))}, {keyword_text(k.value)},
                         {std::to_string(k.count)}, {k.comment}});
    }
    std::cout << '\n' << kt.render(false);
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

Command add_info_command(CLI::App& app) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Show all metadata, semaphores and keywords of a stream, the header, counters and signals of a queue, the "
      "interfaces of a memif socket, or the state of a VILLASnode shmem region");
  sub->add_option("name", opt->name,
                  "Stream or queue name, or a path to a .im.shm or .queue.shm file (a stream wins when both exist); "
                  "or a memif socket: @NAME, a socket file, or any name with --memif; or a VILLASnode shmem region: "
                  "/NAME (as VILLASnode names it, in /dev/shm), a name found only in /dev/shm, a path, or any name "
                  "with --villas")
      ->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  CLI::Option* queue_flag =
      sub->add_flag("--queue", opt->queue, "NAME is a queue (<NAME>.queue.shm), even when a stream of that name exists");
  CLI::Option* memif_flag =
      sub->add_flag("--memif", opt->memif,
                    "NAME is a memif socket (a path or @NAME) served by a running process: show what it publishes")
          ->excludes(queue_flag);
  sub->add_flag("--villas", opt->villas,
                "NAME is a VILLASnode shmem region (/NAME or NAME in /dev/shm, or a path): show it, read-only")
      ->excludes(queue_flag)
      ->excludes(memif_flag);
  sub->add_flag("--json", opt->json, "Print JSON");
  return {sub, [opt] { return run_info(*opt); }};
}

}  // namespace shmlink::cli
