// SPDX-License-Identifier: MIT
// `shmlink create NAME --shape WxH --dtype u16`: creates an ImageStreamIO 2.00 stream.
#include "common.hpp"

#include <fmt/format.h>

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
  std::string permissions = "0600"; ///< octal mode bits
  bool force = false;               ///< replace an existing stream (PurgeAndCreate)
  bool json = false;                ///< print JSON
};

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

  StreamSpec spec;
  spec.shape = *shape;
  spec.dtype = *dtype;
  spec.keywords = opt.keywords;
  spec.semaphores = opt.semaphores;
  spec.permissions = *mode;

  const std::string path = resolve_stream(opt.name, opt.dir);
  Stream s = Stream::create(path, spec, opt.force ? OpenMode::PurgeAndCreate : OpenMode::ExclusiveCreate);
  const StreamInfo info = s.info();
  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["name"] = info.name;
    j["path"] = info.path;
    j["shape"] = info.shape;
    j["dtype"] = std::string(dtype_name(info.dtype));
    j["file_bytes"] = info.file_bytes;
    j["semaphores"] = info.semaphores;
    j["keyword_slots"] = info.keyword_slots;
    j["permissions"] = fmt::format("{:04o}", static_cast<unsigned>(*mode));
    print_json(j);
  } else {
    std::cout << fmt::format("created {} ({} {}, {} bytes)\n", info.path, format_shape(info.shape),
                             dtype_name(info.dtype), info.file_bytes);
  }
  return kExitOk;
}

}  // namespace

Command add_create_command(CLI::App& app) {
  auto opt = std::make_shared<CreateOptions>();
  CLI::App* sub = app.add_subcommand("create", "Create a stream (ImageStreamIO 2.00 layout)");
  sub->add_option("name", opt->name, "Stream name (at most 79 bytes), or a path ending in .im.shm")->required();
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
  sub->add_option("--semaphores", opt->semaphores, "Semaphore slots, one per reader (1-128)")
      ->check(CLI::Range(1, static_cast<int>(kMaxSemaphores)))
      ->capture_default_str();
  sub->add_option("--permissions", opt->permissions, "File mode in octal (0600; 0660 or 0666 for shared set-ups)")
      ->check(permissions_validator())
      ->capture_default_str();
  sub->add_flag("-f,--force", opt->force, "Replace an existing stream (new file; attached readers keep the old one)");
  sub->add_flag("--json", opt->json, "Print the created stream as JSON");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_create(*opt); }};
}

}  // namespace shmlink::cli
