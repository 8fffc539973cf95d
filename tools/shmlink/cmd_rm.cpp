// SPDX-License-Identifier: MIT
// `shmlink rm NAME...`: removes stream and queue files, and channels of regions (PATH:NAME).
#include "common.hpp"

#include <shmlink/region.hpp>

#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `rm`.
struct RmOptions {
  std::vector<std::string> names;  ///< stream or queue names, or paths
  std::string dir;                 ///< directory override
  bool queue = false;              ///< the names are queues (--queue)
  bool force = false;              ///< ignore names that do not exist
  bool verbose = false;            ///< print each removed path
};

/// Removes the stream or queue NAME resolves to (resolve_channel()), or the channel PATH:NAME of a
/// region (Region::remove(); the region file stays); a queue left behind because a stream of the
/// same name was chosen is mentioned on stderr.
/// @throws Error invalid_argument when the path is not a `.im.shm` / `.queue.shm` file (an
///         arbitrary file given as a path is never unlinked); not_found / permission naming it.
void remove_one(const std::string& name, const RmOptions& opt) {
  const ResolvedChannel target = resolve_channel(name, opt.dir, opt.queue);
  const std::string& path = target.path;
  if (const auto locator = split_region_locator(path)) {  // an entry of a region: the region stays
    Region::open(locator->first, true).remove(locator->second);
  } else if (target.kind == ChannelKind::queue) {
    if (!is_queue_file_name(path)) {
      throw Error(Errc::invalid_argument, "refusing to remove " + path + ": not a .queue.shm queue file");
    }
    Queue::remove(path);
  } else {
    if (!is_stream_file_name(path)) {
      throw Error(Errc::invalid_argument, "refusing to remove " + path + ": not a .im.shm stream file");
    }
    Stream::remove(path);
    if (target.other_queue) {
      spdlog::warn("removed the stream '{}'; the queue of that name ({}) stays (use --queue to remove it)", shown(name),
                   shown(*target.other_queue));
    }
  }
  if (opt.verbose) std::cout << "removed " << shown(path) << '\n';
}

/// Runs `rm`: removes every named stream or queue, continuing past failures; the exit code is
/// the first failure's (0 when all were removed).
int run_rm(const RmOptions& opt) {
  int rc = kExitOk;
  for (const std::string& name : opt.names) {
    try {
      remove_one(name, opt);
    } catch (const Error& e) {
      if (opt.force && e.errc() == Errc::not_found) continue;
      const int code = report_error(e);
      if (rc == kExitOk) rc = code;
    }
  }
  std::cout << std::flush;
  return rc;
}

}  // namespace

Command add_rm_command(CLI::App& app) {
  auto opt = std::make_shared<RmOptions>();
  CLI::App* sub = app.add_subcommand("rm", "Remove streams and queues (open handles keep their mapping)");
  sub->add_option("names", opt->names,
                  "Stream or queue names, paths to .im.shm / .queue.shm files (a stream wins when both exist), or "
                  "REGION:NAME for a channel inside a region (the region stays)")
      ->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_flag("--queue", opt->queue,
                "The names are queues (<NAME>.queue.shm), even when streams of those names exist");
  sub->add_flag("-f,--force", opt->force, "Ignore names that do not exist");
  sub->add_flag("--print", opt->verbose, "Print each removed path");
  return {sub, [opt] { return run_rm(*opt); }};
}

}  // namespace shmlink::cli
