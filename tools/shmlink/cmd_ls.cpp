// SPDX-License-Identifier: MIT
// `shmlink ls`: one line per stream file in the stream directory, then one per queue file, then
// one per memif interface that a process publishes (memif status files), then one per VILLASnode
// shmem region in /dev/shm.
#include "common.hpp"

#include <shmlink/ivshmem.hpp>
#include <shmlink/region.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <system_error>

namespace shmlink::cli {

namespace {

/// Options of `ls`.
struct LsOptions {
  std::string dir;        ///< directory override (--dir)
  std::string where;      ///< the positional WHERE: a directory or an ivshmem locator, as --dir
  double interval = 0.2;  ///< rate sampling interval in seconds
  bool json = false;      ///< print JSON
};

/// The NAME cell of a stream row: the file's own name (PATH:NAME for a stream in a region), and,
/// when the name stored in the stream differs from it (from NAME in a region), that one too:
/// "cam (stores 'other')" (Table::render escapes both).
std::string stream_name_cell(const StreamRow& row) {
  const auto locator = split_region_locator(row.name);  // a region's entry stores its NAME
  if (!row.info || row.info->name == (locator ? locator->second : row.name)) return row.name;
  return fmt::format("{} (stores '{}')", row.name, row.info->name);
}

/// The text table of `rows`. A DEPTH column (rolling-buffer slices) appears only when some
/// stream is a rolling buffer, a BRIDGE column ("ORIGIN up|down", red when down) only when some
/// stream is a bridge replica, and an ERROR column only when some file failed to open; all go
/// after the fixed columns so those keep their positions.
Table make_ls_table(const std::vector<StreamRow>& rows, bool colour) {
  Table t;
  t.headers = {"NAME", "SHAPE", "DTYPE", "CNT0", "RATE_HZ", "WRITER", "READERS"};
  t.right_aligned = {false, false, false, true, true, false, true};
  const bool with_depth =
      std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return r.info && r.info->depth > 1; });
  const bool with_error = std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return !r.info; });
  const bool with_bridge = std::any_of(rows.begin(), rows.end(), [](const StreamRow& r) { return r.bridge.has_value(); });
  if (with_depth) {
    t.headers.push_back("DEPTH");
    t.right_aligned.push_back(true);
  }
  if (with_bridge) {  // a replica's origin node and link state (its freshness keywords)
    t.headers.push_back("BRIDGE");
    t.right_aligned.push_back(false);
  }
  if (with_error) {
    t.headers.push_back("ERROR");
    t.right_aligned.push_back(false);
  }
  for (const StreamRow& row : rows) {
    if (!row.info) {
      std::vector<Cell> cells = {{row.name, colour ? "33" : nullptr}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}, {"-"}};
      if (with_depth) cells.push_back({"-"});
      if (with_bridge) cells.push_back({"-"});
      cells.push_back({row.error, colour ? "33" : nullptr});
      t.rows.push_back(std::move(cells));
      continue;
    }
    const StreamInfo& info = *row.info;
    const std::int32_t wpid = writer_pid(info);
    const bool dead = pid_liveness(wpid, row.pids_of_this_kernel) == PidLiveness::dead;
    std::vector<Cell> cells = {
        {stream_name_cell(row), row.info->name == row.name ? nullptr : (colour ? "33" : nullptr)},
        {format_shape(info.shape)},
        {std::string(dtype_name(info.dtype))},
        {std::to_string(info.frame.cnt0)},
        {format_rate(row.rate_hz), row.rate_hz && *row.rate_hz > 0 ? "32" : nullptr},
        {pid_cell_text(wpid, row.pids_of_this_kernel), dead ? "31" : nullptr},
        {std::to_string(row.readers.size())},
    };
    if (with_depth) cells.push_back({info.depth > 1 ? std::to_string(info.depth) : std::string("-")});
    if (with_bridge) {
      const bool down = row.bridge && row.bridge->link_up == false;
      cells.push_back({row.bridge ? bridge_cell(*row.bridge) : std::string("-"), down ? "31" : nullptr});
    }
    t.rows.push_back(std::move(cells));
  }
  return t;
}

/// The text table of the queue rows, printed under the stream table: the queue's kind (spsc,
/// mpmc), wait mode, capacity, values per sample, the samples in it now (SIZE = PUSHED -
/// POPPED), the counters, the signal count, the creator and whether it was shut. An ERROR column
/// appears only when some queue file failed to open.
Table make_queue_table(const std::vector<QueueRow>& rows, bool colour) {
  Table t;
  t.headers = {"QUEUE", "KIND", "WAIT", "CAPACITY", "VALUES", "SIZE", "PUSHED", "POPPED", "SIGNALS", "CREATOR",
               "STATE"};
  t.right_aligned = {false, false, false, true, true, true, true, true, true, false, false};
  const bool with_error = std::any_of(rows.begin(), rows.end(), [](const QueueRow& r) { return !r.info; });
  if (with_error) {
    t.headers.push_back("ERROR");
    t.right_aligned.push_back(false);
  }
  for (const QueueRow& row : rows) {
    if (!row.info) {
      std::vector<Cell> cells(t.headers.size() - 1, Cell{"-"});
      cells[0] = {row.name, colour ? "33" : nullptr};
      cells.push_back({row.error, colour ? "33" : nullptr});
      t.rows.push_back(std::move(cells));
      continue;
    }
    const QueueInfo& info = *row.info;
    const bool dead = pid_liveness(info.creator_pid, row.pids_of_this_kernel) == PidLiveness::dead;
    const std::uint64_t size = queue_size(info);
    t.rows.push_back({
        {row.name},
        {std::string(queue_kind_name(info.kind))},
        {std::string(wait_mode_name(info.wait))},
        {std::to_string(info.capacity)},
        {std::to_string(info.max_values)},
        {std::to_string(size), size == info.capacity ? "33" : nullptr},  // full: yellow
        {std::to_string(info.pushed)},
        {std::to_string(info.popped)},
        {std::to_string(info.signals.size())},
        {pid_cell_text(info.creator_pid, row.pids_of_this_kernel), dead ? "31" : nullptr},
        {info.closed ? "shut_down" : "open", info.closed ? "33" : nullptr},
    });
  }
  return t;
}

/// The "PEER" cell of a memif interface: "app/name", whichever of the two is known, or "-"
/// (also while the link is down: the names are then those of the last peer, `info` shows them).
std::string memif_peer(const memif::InterfaceStatus& i) {
  const bool linked = i.state == memif::LinkState::connected || i.state == memif::LinkState::handshake;
  if (!linked || (i.peer_app.empty() && i.peer_name.empty())) return "-";
  if (i.peer_app.empty()) return i.peer_name;
  if (i.peer_name.empty()) return i.peer_app;
  return i.peer_app + "/" + i.peer_name;
}

/// The text table of the memif status files, printed under the queue table: one row per
/// published interface (a socket without interfaces gets one row of dashes), PID with the
/// owner's liveness from the file lock. An ERROR column appears only when some file failed to
/// be read.
Table make_memif_table(const std::vector<memif::SocketStatus>& sockets, bool colour) {
  Table t;
  t.headers = {"SOCKET", "ROLE", "ID", "NAME", "STATE", "PEER", "QUEUES", "RING", "BUFFER", "TX_PKTS", "RX_PKTS",
               "BAD", "PID"};
  t.right_aligned = {false, false, true, false, false, false, false, true, true, true, true, true, false};
  const bool with_error =
      std::any_of(sockets.begin(), sockets.end(), [](const memif::SocketStatus& s) { return !s.error.empty(); });
  if (with_error) {
    t.headers.push_back("ERROR");
    t.right_aligned.push_back(false);
  }
  for (const memif::SocketStatus& s : sockets) {
    if (!s.error.empty()) {
      std::vector<Cell> cells(t.headers.size() - 1, Cell{"-"});
      cells[0] = {std::filesystem::path(s.file).filename().string(), colour ? "33" : nullptr};
      cells.push_back({s.error, colour ? "33" : nullptr});
      t.rows.push_back(std::move(cells));
      continue;
    }
    const Cell pid{fmt::format("{} ({})", s.pid, s.alive ? "alive" : "dead"), s.alive ? nullptr : "31"};
    if (s.interfaces.empty()) {
      std::vector<Cell> cells(t.headers.size(), Cell{"-"});
      cells[0] = {s.socket};
      if (s.role) cells[1] = {std::string(memif::role_name(*s.role))};
      cells[12] = pid;
      if (with_error) cells.pop_back();
      t.rows.push_back(std::move(cells));
      continue;
    }
    for (const memif::InterfaceStatus& i : s.interfaces) {
      const bool up = i.state == memif::LinkState::connected;
      t.rows.push_back({
          {s.socket},
          {std::string(memif::role_name(i.role))},
          {std::to_string(i.id)},
          {i.name},
          {memif::link_state_name(i.state), up ? "32" : nullptr},
          {memif_peer(i)},
          {up ? fmt::format("{}/{}", i.tx_queues, i.rx_queues) : std::string("-")},
          {i.ring_size != 0 ? std::to_string(i.ring_size) : std::string("-")},
          {i.buffer_size != 0 ? std::to_string(i.buffer_size) : std::string("-")},
          {std::to_string(i.tx_packets)},
          {std::to_string(i.rx_packets)},
          {std::to_string(i.bad_descriptors), i.bad_descriptors != 0 ? "31" : nullptr},
          pid,
      });
    }
  }
  return t;
}

/// The text table of the VILLASnode shmem regions, printed last: the region's shm name, its
/// mode, the samples queued for its reader, the free pool blocks, the values per sample, whether
/// its owner stopped it, the processes holding it (none: stale) and, when some region has one,
/// its rendezvous semaphore. An ERROR column appears only when some region could not be read.
Table make_villas_table(const std::vector<VillasRow>& rows, bool colour) {
  Table t;
  t.headers = {"VILLAS", "MODE", "QUEUED", "FREE", "VALUES", "STATE", "HOLDERS"};
  t.right_aligned = {false, false, true, true, true, false, false};
  const bool with_semaphore = std::any_of(rows.begin(), rows.end(), [](const VillasRow& r) { return r.semaphore; });
  const bool with_error = std::any_of(rows.begin(), rows.end(), [](const VillasRow& r) { return !r.info; });
  if (with_semaphore) {
    t.headers.push_back("SEMAPHORE");
    t.right_aligned.push_back(false);
  }
  if (with_error) {
    t.headers.push_back("ERROR");
    t.right_aligned.push_back(false);
  }
  for (const VillasRow& row : rows) {
    const bool stale = villas_stale(row).value_or(false);  // unknown is not painted stale
    std::vector<Cell> cells(7, Cell{"-"});
    cells[0] = {row.name, row.info ? nullptr : (colour ? "33" : nullptr)};
    if (row.info) {
      const villas::RegionInfo& info = *row.info;
      cells[1] = {std::string(villas_mode_name(info))};
      cells[2] = {fmt::format("{}/{}", info.queued, info.queue_cells), info.queued == info.queue_cells ? "33" : nullptr};
      cells[3] = {fmt::format("{}/{}", info.free_blocks, info.pool_blocks), info.free_blocks == 0 ? "33" : nullptr};
      cells[4] = {std::to_string(info.sample_capacity)};
      cells[5] = {info.stopped ? "stopped" : "open", info.stopped ? "33" : nullptr};
    }
    cells[6] = {villas_holders_text(row), stale ? "31" : nullptr};
    if (with_semaphore) cells.push_back({villas_semaphore_text(row), row.semaphore && stale ? "31" : nullptr});
    if (with_error) cells.push_back({row.info ? std::string("-") : row.error, row.info ? nullptr : (colour ? "33" : nullptr)});
    t.rows.push_back(std::move(cells));
  }
  return t;
}

/// Runs `ls`: lists the directory once (shmlink::list_channels(): streams, queues, regions'
/// entries, memif status files, and VILLAS regions when it is /dev/shm), samples its streams
/// twice `interval` apart, reads every queue's header once, and prints the tables or JSON. A
/// region whose directory could not be read is a warning on stderr naming it and the problem.
int run_ls(const LsOptions& opt) {
  if (!opt.where.empty() && !opt.dir.empty() && opt.where != opt.dir)
    throw Error(Errc::invalid_argument, "ls: give WHERE or --dir, not both");
  // "ivshmem:[DEVICE]": the channels of the region in a guest's ivshmem device (nothing else).
  const bool device = ivshmem::is_locator(opt.where.empty() ? opt.dir : opt.where);
  StreamSampler sampler(resolve_directory(opt.where.empty() ? opt.dir : opt.where));
  const std::vector<ChannelListing> listing = list_channels(sampler.directory(), false);
  // A region whose directory cannot be read (damaged by a peer, busy, not formatted) lists no
  // channels: say so on stderr, naming it, rather than leave its channels out in silence.
  for (const ChannelListing& l : listing) {
    if (l.kind != "region" || l.problem.empty()) continue;
    const bool named = l.problem.find(l.path) != std::string::npos;  // the library's errors name it
    spdlog::warn("{}{}", named ? "" : fmt::format("region {}: ", shown(l.path)), shown_message(l.problem));
  }
  // Readers are looked for once, in the sample that is shown (the first one only starts the
  // rates): the /proc scan reads every process's maps.
  std::vector<StreamRow> rows = sampler.refresh(opt.interval > 0 ? ReaderScan::none : ReaderScan::fresh, &listing);
  if (opt.interval > 0 && !rows.empty()) {
    sleep_while(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.interval)),
                {});
    rows = sampler.refresh(ReaderScan::fresh, &listing);
    // A stream removed during the interval is gone, as a second listing would have said.
    std::erase_if(rows, [](const StreamRow& r) { return r.error_code == Errc::not_found; });
  }
  sort_rows(rows, RowOrder::name);
  std::vector<QueueRow> queues;
  for (const std::string& path : paths_of_kind(listing, "queue")) queues.push_back(inspect_queue(path));
  // Queues in the regions of the directory (`<name>.region.shm`), as PATH:NAME.
  for (const std::string& path : paths_of_kind(listing, "region-queue")) queues.push_back(inspect_queue(path));
  const std::vector<memif::SocketStatus> memifs = inspect_memif_status_files(paths_of_kind(listing, "memif-status"));
  std::error_code same_ec;  // an error: not /dev/shm, which is then listed on its own
  const bool dev_shm = !device && std::filesystem::equivalent(sampler.directory(), std::string(kVillasShmDir), same_ec);
  const std::vector<VillasRow> villas_rows =
      device ? std::vector<VillasRow>{} : list_villas_regions(dev_shm ? &listing : nullptr);
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["directory"] = sampler.directory();
    j["interval_s"] = opt.interval;
    Json streams = Json::array();
    for (const StreamRow& row : rows) streams.push_back(row_to_json(row));
    j["streams"] = std::move(streams);
    Json queue_rows = Json::array();
    for (const QueueRow& row : queues) queue_rows.push_back(queue_row_to_json(row));
    j["queues"] = std::move(queue_rows);
    Json memif_rows = Json::array();
    for (const memif::SocketStatus& m : memifs) memif_rows.push_back(memif_socket_to_json(m));
    j["memif"] = std::move(memif_rows);
    Json villas_json = Json::array();
    for (const VillasRow& row : villas_rows) villas_json.push_back(villas_row_to_json(row));
    j["villas"] = std::move(villas_json);
    print_json(j);
    return kExitOk;
  }
  const bool colour = colour_enabled(1);
  if (device && rows.empty() && queues.empty()) {
    std::cout << "no streams or queues in " << shown(sampler.directory()) << "\n" << std::flush;
    return kExitOk;
  }
  if (rows.empty() && queues.empty() && memifs.empty()) {
    // VILLAS regions are machine-wide (/dev/shm), the rest is per stream directory: an empty
    // directory is said so even when regions follow.
    std::cout << "no streams or queues in " << shown(sampler.directory()) << ", and no memif sockets"
              << (villas_rows.empty() ? fmt::format("; no VILLAS regions in {}", kVillasShmDir) : std::string())
              << "\n";
    if (!villas_rows.empty()) std::cout << '\n' << make_villas_table(villas_rows, colour).render(colour);
    std::cout << std::flush;
    return kExitOk;
  }
  if (!rows.empty()) std::cout << make_ls_table(rows, colour).render(colour);
  if (!queues.empty()) std::cout << (rows.empty() ? "" : "\n") << make_queue_table(queues, colour).render(colour);
  if (!memifs.empty()) {
    std::cout << (rows.empty() && queues.empty() ? "" : "\n") << make_memif_table(memifs, colour).render(colour);
    for (const memif::SocketStatus& m : memifs) {
      if (m.error.empty() && m.overflow != 0)
        std::cout << fmt::format("{}: {} more interfaces not published (a status file holds 64)\n", shown(m.socket),
                                 m.overflow);
    }
  }
  if (!villas_rows.empty()) std::cout << '\n' << make_villas_table(villas_rows, colour).render(colour);
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto opt = std::make_shared<LsOptions>();
  CLI::App* sub = app.add_subcommand(
      "ls",
      "List the streams (with their update rates), the queues and the memif interfaces in the stream directory (the "
      "channels of its regions as REGION:NAME), and the VILLASnode shmem regions in /dev/shm");
  sub->add_option("where", opt->where,
                  "What to list, as --dir: a stream directory, or in a VM guest 'ivshmem:' (the region in the first "
                  "ivshmem device's shared memory) or 'ivshmem:DDDD:BB:SS.F' (that device)");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--interval", opt->interval, "Seconds over which update rates are measured (0: no rates)")
      ->check(seconds_validator(0.0, 3600.0))
      ->capture_default_str();
  sub->add_flag("--json", opt->json,
                "Print JSON ({\"schema_version\":1,\"streams\":[...],\"queues\":[...],\"memif\":[...],\"villas\":[...]})");
  return {sub, [opt] { return run_ls(*opt); }};
}

}  // namespace shmlink::cli
