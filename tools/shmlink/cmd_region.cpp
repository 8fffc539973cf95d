// SPDX-License-Identifier: MIT
// `shmlink region create|ls|rm`: regions, one mapping holding a directory of named streams and
// queues (include/shmlink/region.hpp, docs/regions.md).
#include "common.hpp"

#include <shmlink/region.hpp>

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

namespace {

/// Options of `region create`.
struct RegionCreateOptions {
  std::string path;                   ///< region path or name
  std::string size;                   ///< "64M", "1G", "65536"
  std::string permissions = "0600";   ///< octal mode bits
  std::size_t max_entries = 256;      ///< directory entries
  bool force = false;                 ///< replace an existing region (PurgeAndCreate)
  bool json = false;                  ///< print JSON
};

/// Options of `region ls`.
struct RegionLsOptions {
  std::string path;   ///< region path or name
  bool json = false;  ///< print JSON
};

/// Options of `region rm`.
struct RegionRmOptions {
  std::string path;                ///< region path or name
  std::vector<std::string> names;  ///< entries to remove
};

/// "stream" / "queue".
std::string_view entry_kind_name(shmlink::ChannelKind kind) noexcept {
  switch (kind) {
    case shmlink::ChannelKind::stream: return "stream";
    case shmlink::ChannelKind::queue: return "queue";
  }
  return "unknown";
}

/// "free" / "creating" / "ready" / "removing".
std::string_view entry_state_name(EntryState state) noexcept {
  switch (state) {
    case EntryState::free: return "free";
    case EntryState::creating: return "creating";
    case EntryState::ready: return "ready";
    case EntryState::removing: return "removing";
  }
  return "unknown";
}

/// A size for people: "64 MiB", "4 KiB", "1000 bytes".
std::string format_bytes(std::uint64_t n) {
  constexpr std::array<std::string_view, 4> kUnits = {"KiB", "MiB", "GiB", "TiB"};
  std::string_view unit = "bytes";
  std::uint64_t shown_value = n;
  for (std::size_t i = 0; i < kUnits.size() && shown_value >= 1024 && shown_value % 1024 == 0; ++i) {
    shown_value /= 1024;
    unit = kUnits[i];
  }
  return fmt::format("{} {}", shown_value, unit);
}

/// Runs `region create`.
int run_region_create(const RegionCreateOptions& opt) {
  const std::optional<std::uint64_t> size = parse_size(opt.size);
  if (!size) throw Error(Errc::invalid_argument, "--size: '" + opt.size + "' is not a size");
  const std::optional<mode_t> mode = parse_permissions(opt.permissions);
  if (!mode) throw Error(Errc::invalid_argument, "--mode: '" + opt.permissions + "' is not octal");
  RegionOptions options;
  options.permissions = *mode;
  options.max_entries = opt.max_entries;
  const std::string path = region_path(opt.path);
  Region r = [&] {
    try {
      return Region::create(path, static_cast<std::size_t>(*size),
                            opt.force ? OpenMode::PurgeAndCreate : OpenMode::ExclusiveCreate, options);
    } catch (const Error& e) {
      if (e.errc() != Errc::exists || opt.force) throw;
      throw Error(e.errc(), fmt::format("{}; add --force to replace it (a new file: programs that have it open keep "
                                        "the old one until they re-open it)",
                                        e.what()));
    }
  }();
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["path"] = r.path();
    j["size"] = r.size();
    j["max_entries"] = opt.max_entries;
    j["permissions"] = format_mode(*mode);
    j["boot_id"] = r.boot_id();
    j["host"] = r.host_name();
    print_json(j);
  } else {
    std::cout << fmt::format("created region {} ({}, {} entries)\n", shown(r.path()), format_bytes(r.size()),
                             opt.max_entries);
  }
  return kExitOk;
}

/// Runs `region ls`: the region's entries, in table order.
int run_region_ls(const RegionLsOptions& opt) {
  const Region r = Region::open(region_path(opt.path), false);
  const std::vector<RegionEntry> entries = r.entries();
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["path"] = r.path();
    j["size"] = r.size();
    j["boot_id"] = r.boot_id();
    j["host"] = r.host_name();
    j["same_kernel"] = r.created_by_this_kernel();
    Json rows = Json::array();
    for (const RegionEntry& e : entries) {
      rows.push_back(Json{{"name", e.name},
                          {"kind", std::string(entry_kind_name(e.kind))},
                          {"state", std::string(entry_state_name(e.state))},
                          {"offset", e.offset},
                          {"size", e.size},
                          {"generation", e.generation},
                          {"locator", r.path() + ":" + e.name}});
    }
    j["entries"] = std::move(rows);
    print_json(j);
    return kExitOk;
  }
  if (entries.empty()) {
    std::cout << fmt::format("no channels in region {} ({})\n", shown(r.path()), format_bytes(r.size()));
    return kExitOk;
  }
  const bool colour = colour_enabled(1);
  Table t;
  t.headers = {"NAME", "KIND", "STATE", "OFFSET", "SIZE", "GENERATION"};
  t.right_aligned = {false, false, false, true, true, true};
  for (const RegionEntry& e : entries) {
    const bool ready = e.state == EntryState::ready;
    t.rows.push_back({{e.name},
                      {std::string(entry_kind_name(e.kind))},
                      {std::string(entry_state_name(e.state)), ready ? nullptr : "33"},
                      {std::to_string(e.offset)},
                      {std::to_string(e.size)},
                      {std::to_string(e.generation)}});
  }
  std::cout << t.render(colour) << std::flush;
  return kExitOk;
}

/// Runs `region rm`: removes each entry named; goes on after a failure, exit code of the first.
int run_region_rm(const RegionRmOptions& opt) {
  Region r = Region::open(region_path(opt.path), true);
  int rc = kExitOk;
  for (const std::string& name : opt.names) {
    try {
      r.remove(name);
      std::cout << fmt::format("removed {}:{}\n", shown(r.path()), shown(name));
    } catch (const Error& e) {
      const int code = report_error(e);
      if (rc == kExitOk) rc = code;
    }
  }
  std::cout << std::flush;
  return rc;
}

}  // namespace

Command add_region_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "region",
      "Regions: one shared mapping (a file on /dev/shm or hugetlbfs) holding a directory of named streams and "
      "queues, reached as PATH:NAME by ls, info, monitor, cat and create");
  sub->require_subcommand(1);
  const std::string path_help =
      "Region file: a path (containing '/') used as given, e.g. /dev/hugepages/ao.region, or a name, "
      "<stream dir>/NAME.region.shm";

  auto create_opt = std::make_shared<RegionCreateOptions>();
  CLI::App* create = sub->add_subcommand("create", "Create a region file and its directory of channels");
  create->add_option("path", create_opt->path, path_help)->required();
  create->add_option("--size", create_opt->size,
                     "Bytes, with K, M, G or T (binary units): a power of two (QEMU's ivshmem requires it), at "
                     "least 64K; on hugetlbfs a multiple of the huge page size")
      ->required()
      ->check(size_validator());
  create->add_option("--mode", create_opt->permissions,
                     "File mode in octal, applied exactly whatever the umask; read and write bits only (0600; "
                     "0660 for a group, e.g. the user QEMU runs as)")
      ->check(permissions_validator())
      ->capture_default_str();
  create->add_option("--max-entries", create_opt->max_entries, "Channels the directory can hold (1-16384)")
      ->check(CLI::Range(1, 16384))
      ->capture_default_str();
  create->add_flag("-f,--force", create_opt->force,
                   "Replace an existing region (a new file: programs that have it open keep the old one)");
  create->add_flag("--json", create_opt->json, "Print the created region as JSON");

  auto ls_opt = std::make_shared<RegionLsOptions>();
  CLI::App* ls = sub->add_subcommand("ls", "List the channels of a region: name, kind, state, offset, size, generation");
  ls->add_option("path", ls_opt->path, path_help)->required();
  ls->add_flag("--json", ls_opt->json,
               "Print JSON ({\"schema_version\":1,\"path\",\"size\",\"boot_id\",\"host\",\"same_kernel\","
               "\"entries\":[{\"name\",\"kind\",\"state\",\"offset\",\"size\",\"generation\",\"locator\"}]})");

  auto rm_opt = std::make_shared<RegionRmOptions>();
  CLI::App* rm = sub->add_subcommand(
      "rm", "Remove channels from a region (a stream's partial-write companion NAME_pkt goes with it); its "
            "bytes are free for the next channel, programs that have it open see it replaced");
  rm->add_option("path", rm_opt->path, path_help)->required();
  rm->add_option("names", rm_opt->names, "Channel names in the region")->required();

  return {sub, [create, ls, create_opt, ls_opt, rm_opt]() -> int {
            if (create->parsed()) return run_region_create(*create_opt);
            if (ls->parsed()) return run_region_ls(*ls_opt);
            return run_region_rm(*rm_opt);
          }};
}

}  // namespace shmlink::cli
