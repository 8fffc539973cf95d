// SPDX-License-Identifier: MIT
// `shmlink create NAME --shape WxH --dtype u16`: creates an ImageStreamIO 2.00 stream.
#include "common.hpp"

#include <shmlink/region.hpp>

#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `create`.
struct CreateOptions {
  std::string name;                 ///< stream name or path
  std::string dir;                  ///< directory override
  std::string shape;                ///< "WxHxD", ISIO order
  std::string dtype = "f32";        ///< numpy or short name
  std::uint16_t keywords = 0;       ///< keyword slots
  std::uint16_t semaphores = 10;    ///< semaphore slots
  std::uint32_t depth = 0;          ///< rolling-buffer depth (0/1: plain stream)
  std::string permissions = "0600"; ///< octal mode bits
  std::string group;                ///< group name or gid to give the file (empty: the caller's)
  bool force = false;               ///< replace an existing stream (PurgeAndCreate)
  bool json = false;                ///< print JSON
};

/// Gives the new stream file `path` the group `gid` (chown(path, -1, gid)); the mode has no
/// set-user/group-ID bits for chown(2) to clear (the library refuses them). On failure the stream just created
/// is removed again (when the path still is that file, inode `inode`), so a failed `create`
/// leaves no stream with the wrong group behind.
/// @throws Error permission (the caller is not in the group and not root) or system, naming
///         the file and the group.
void set_group(const std::string& path, std::uint64_t inode, gid_t gid, const std::string& group) {
  if (::chown(path.c_str(), static_cast<uid_t>(-1), gid) == 0) return;
  const int err = errno;
  struct stat st {};
  bool removed = false;
  if (::stat(path.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == inode) {
    try {
      Stream::remove(path);
      removed = true;
    } catch (const Error&) {
      // Reported below: the stream stays with the caller's group.
    }
  }
  throw Error(errc_from_errno(err),
              fmt::format("setting the group of {} to '{}' (gid {}): {} (the caller must belong to the group; "
                          "root may use any); {}",
                          path, group, gid, std::strerror(err),
                          removed ? "the stream was removed again" : "the stream keeps the caller's group"));
}

/// Runs `create`: builds the StreamSpec from the options and creates the file.
int run_create(const CreateOptions& opt) {
  // The validators already accepted these; parse again for the values.
  std::string why;
  const auto shape = parse_shape(opt.shape, &why);
  if (!shape) throw Error(Errc::invalid_argument, "--shape: " + why);
  const auto dtype = shmlink::parse_dtype(opt.dtype);
  if (!dtype) throw Error(Errc::invalid_argument, "--dtype: unknown dtype '" + opt.dtype + "'");
  const auto mode = parse_permissions(opt.permissions);
  if (!mode) throw Error(Errc::invalid_argument, "--permissions: '" + opt.permissions + "' is not octal");

  const std::string path = resolve_stream(opt.name, opt.dir);
  const auto locator = split_region_locator(path);  // PATH:NAME: a stream in a region
  if (locator && !opt.group.empty())
    throw Error(Errc::invalid_argument, fmt::format("creating {}: --group applies to files; a stream in a region has "
                                                    "the region file's group",
                                                    shown(path)));
  // Resolve the group before creating anything, so an unknown group leaves no file behind.
  std::optional<gid_t> gid;
  if (!opt.group.empty()) {
    try {
      gid = resolve_group(opt.group);
    } catch (const Error& e) {
      throw Error(e.errc(), fmt::format("creating {}: {}", path, e.what()));
    }
  }

  StreamSpec spec;
  spec.shape = *shape;
  spec.dtype = *dtype;
  spec.keywords = opt.keywords;
  spec.semaphores = opt.semaphores;
  spec.depth = opt.depth;
  spec.permissions = *mode;

  Stream s = [&] {
    try {
      const OpenMode mode_of_create = opt.force ? OpenMode::PurgeAndCreate : OpenMode::ExclusiveCreate;
      if (locator) return Region::open(locator->first, true).create_stream(locator->second, spec, mode_of_create);
      return Stream::create(path, spec, mode_of_create);
    } catch (const Error& e) {
      if (e.errc() != Errc::exists || opt.force) throw;
      throw Error(e.errc(), fmt::format("{}; add --force to replace it (a new file: programs that have it open keep "
                                        "the old one until they re-open it)",
                                        e.what()));
    }
  }();
  if (gid) set_group(path, s.inode(), *gid, opt.group);
  const StreamInfo info = s.info();
  const std::vector<std::uint32_t> frame_shape(s.frame_shape().begin(), s.frame_shape().end());
  const std::optional<FileOwner> owner = file_owner(path);
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["name"] = info.name;
    j["path"] = info.path;
    j["shape"] = info.shape;
    j["dtype"] = std::string(dtype_name(info.dtype));
    j["depth"] = info.depth;
    j["frame_shape"] = frame_shape;
    j["frame_bytes"] = info.frame_bytes;
    j["data_bytes"] = info.data_bytes;
    j["file_bytes"] = info.file_bytes;
    j["semaphores"] = info.semaphores;
    j["keyword_slots"] = info.keyword_slots;
    j["permissions"] = format_mode(*mode);
    if (owner) add_owner_json(j, *owner);
    print_json(j);
  } else {
    std::string extra;
    if (info.depth > 1) extra += fmt::format(", rolling buffer of {} frames", info.depth);
    if (gid) extra += fmt::format(", group {}", owner && !owner->group.empty() ? owner->group : std::to_string(*gid));
    std::cout << fmt::format("created {} ({} {}{}, {} bytes)\n", info.path, format_shape(frame_shape),
                             dtype_name(info.dtype), extra, info.file_bytes);
  }
  return kExitOk;
}

}  // namespace

Command add_create_command(CLI::App& app) {
  auto opt = std::make_shared<CreateOptions>();
  CLI::App* sub = app.add_subcommand("create", "Create a stream (ImageStreamIO 2.00 layout)");
  sub->add_option("name", opt->name,
                  "Stream name (at most 79 bytes), a path ending in .im.shm, or REGION:NAME for a stream inside a "
                  "region (`shmlink region create`)")
      ->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--shape", opt->shape, "Axis lengths, fastest first (ISIO order): W, WxH or WxHxD")
      ->required()
      ->check(shape_validator());
  sub->add_option("--dtype", opt->dtype,
                  "Element type: u8 i8 u16 i16 u32 i32 u64 i64 f16 f32 f64 c64 c128, or numpy names "
                  "(uint16, float32, complex64, ...)")
      ->check(dtype_validator())
      ->capture_default_str();
  sub->add_option("--keywords", opt->keywords, "Keyword slots (0-65535)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  sub->add_option("--semaphores", opt->semaphores,
                  "Semaphore slots, one per milk/ISIO semaphore reader (0-65535, as ImageStreamIO and milk "
                  "accept; 0: readers wait by futex or spin only)")
      ->check(CLI::Range(0, static_cast<int>(kMaxSemaphores)))
      ->capture_default_str();
  sub->add_option("--depth", opt->depth,
                  "Rolling buffer of this many frames (2 or more; --shape is then one frame, W or WxH, "
                  "and the file gets a third axis of DEPTH slices). 0 or 1: a plain stream")
      ->capture_default_str();
  sub->add_option("--permissions", opt->permissions,
                  "File mode in octal, applied exactly whatever the umask (0600; 0660 or 0666 for "
                  "shared set-ups); read and write bits only: set-user-ID, set-group-ID, sticky and execute "
                  "bits are refused")
      ->check(permissions_validator())
      ->capture_default_str();
  sub->add_option("--group", opt->group,
                  "Give the file this group (name or gid); the caller must belong to it (root may use any)");
  sub->add_flag("-f,--force", opt->force, "Replace an existing stream (new file; attached readers keep the old one)");
  sub->add_flag("--json", opt->json, "Print the created stream as JSON");
  return {sub, [opt] { return run_create(*opt); }};
}

}  // namespace shmlink::cli
