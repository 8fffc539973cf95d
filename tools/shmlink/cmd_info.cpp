// SPDX-License-Identifier: MIT
// `shmlink info NAME`: every metadata field of one stream, its semaphores and keywords; or every
// header field of one queue, its counters and its signal table.
#include "common.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>
#include <optional>
#include <variant>

namespace shmlink::cli {

namespace {

/// Options of `info`.
struct InfoOptions {
  std::string name;    ///< stream or queue name, or path
  std::string dir;     ///< directory override
  bool queue = false;  ///< NAME is a queue (--queue), even when a stream of that name exists
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

/// Appends "key: value" to `out`, keys padded to one column (the layout of `info`'s text).
void add_line(std::string& out, std::string_view key, const std::string& value) {
  out += fmt::format("{:<18}{}\n", fmt::format("{}:", key), value);
}

/// Prints a queue's header, counters and signal table as text or JSON.
/// @throws Error (not_found, permission, layout, ...) from opening the queue file, naming it.
int run_queue_info(const std::string& path, bool json) {
  const QueueRow row = inspect_queue(path);
  if (!row.info) throw Error(row.error_code, row.error);
  const QueueInfo& info = *row.info;
  const std::optional<FileOwner> owner = file_owner(info.path);
  const bool creator_alive = pid_alive(info.creator_pid);

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
    j["closed"] = info.closed;
    j["creator_pid"] = info.creator_pid;
    j["creator_alive"] = creator_alive;
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
  if (owner) {
    add_line(out, "mode", format_mode(owner->mode));
    add_line(out, "file owner",
             fmt::format("{} ({}), group {} ({})", owner->uid, owner->user.empty() ? "?" : owner->user, owner->gid,
                         owner->group.empty() ? "?" : owner->group));
  }
  add_line(out, "size", fmt::format("{} (pushed - popped)", queue_size(info)));
  add_line(out, "pushed", std::to_string(info.pushed));
  add_line(out, "popped", std::to_string(info.popped));
  add_line(out, "state", info.closed ? "closed (shut down: no more pushes; consumers drain it)" : "open");
  add_line(out, "creator pid", fmt::format("{} ({})", info.creator_pid, creator_alive ? "alive" : "dead"));
  if (info.consumer_pid != 0)
    add_line(out, "reader pid", fmt::format("{} ({}; attached through an interface)", info.consumer_pid,
                                            pid_alive(info.consumer_pid) ? "alive" : "dead"));
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

/// Runs `info`: resolves NAME to a stream or a queue (resolve_channel()) and prints its
/// metadata as text or JSON. A queue shadowed by a stream of the same name is mentioned on
/// stderr.
int run_info(const InfoOptions& opt) {
  const ResolvedChannel target = resolve_channel(opt.name, opt.dir, opt.queue);
  if (target.kind == ChannelKind::queue) return run_queue_info(target.path, opt.json);
  if (target.other_queue) {
    spdlog::warn("a queue named '{}' exists too ({}); showing the stream, use --queue for the queue", opt.name,
                 *target.other_queue);
  }
  const std::string& path = target.path;
  Stream s = open_for_inspection(path);
  const StreamInfo info = s.info();
  const std::vector<Keyword> keywords = s.keywords();
  const std::int32_t wpid = writer_pid(info);
  const std::vector<std::uint32_t> frame_shape(s.frame_shape().begin(), s.frame_shape().end());
  // stat(2) of the path (the library keeps no descriptor we could fstat): should the stream be
  // re-created between the open and this call, mode and owner are the new file's.
  const std::optional<FileOwner> owner = file_owner(s.path());

  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["kind"] = std::string(channel_kind_name(ChannelKind::stream));
    j["name"] = info.name;
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
    j["writer_alive"] = pid_alive(wpid);
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
      e["read_pid_alive"] = pid_alive(rpid);
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
    print_json(j);
    return kExitOk;
  }

  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out += fmt::format("{:<18}{}\n", fmt::format("{}:", key), value);
  };
  std::vector<std::uint32_t> numpy_shape(info.shape.rbegin(), info.shape.rend());
  line("name", info.name);
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
  if (owner) {
    line("mode", format_mode(owner->mode));
    line("file owner", fmt::format("{} ({}), group {} ({})", owner->uid, owner->user.empty() ? "?" : owner->user,
                              owner->gid, owner->group.empty() ? "?" : owner->group));
  }
  line("imagetype", fmt::format("{:#x} ({})", info.imagetype, imagetype_names(info.imagetype)));
  line("circular buffer", std::to_string(info.circular_buffer));
  line("creator pid", fmt::format("{} ({})", info.creator_pid, pid_alive(info.creator_pid) ? "alive" : "dead"));
  line("owner pid", std::to_string(info.owner_pid));
  line("writer pid", fmt::format("{} ({})", wpid, pid_alive(wpid) ? "alive" : "dead"));
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
  std::cout << out;

  Table sems;
  sems.headers = {"SEM", "VALUE", "READ_PID", "WRITE_PID"};
  sems.right_aligned = {true, true, true, true};
  for (std::size_t i = 0; i < info.semaphores; ++i) {
    const std::int32_t rpid = i < info.sem_read_pids.size() ? info.sem_read_pids[i] : -1;
    std::string rtext = std::to_string(rpid);
    if (rpid > 0) rtext += pid_alive(rpid) ? " (alive)" : " (dead)";
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
      "info", "Show all metadata, semaphores and keywords of a stream, or the header, counters and signals of a queue");
  sub->add_option("name", opt->name,
                  "Stream or queue name, or a path to a .im.shm or .queue.shm file (a stream wins when both exist)")
      ->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_flag("--queue", opt->queue, "NAME is a queue (<NAME>.queue.shm), even when a stream of that name exists");
  sub->add_flag("--json", opt->json, "Print JSON");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_info(*opt); }};
}

}  // namespace shmlink::cli
