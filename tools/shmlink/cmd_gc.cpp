// SPDX-License-Identifier: MIT
// `shmlink gc`: removes stale streams and queues, those whose creator is dead and that no process
// has open, memif status files whose owner is gone (nobody holds their lock), plus temporaries
// left by creations that crashed before publishing.
#include "common.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `gc`.
struct GcOptions {
  std::string dir;       ///< directory override
  bool dry_run = false;  ///< list, do not remove
  bool strict = false;   ///< keep a stream when some process could not be inspected
  bool json = false;     ///< JSON on stdout
};

/// The verdict on one file.
struct Verdict {
  std::string name;    ///< display name
  std::string path;    ///< file path
  ChannelKind kind = ChannelKind::stream;  ///< what the file is (or, for a temporary, would be)
  bool remove = false; ///< stale
  std::string reason;  ///< why it is (or is not) removed
  bool temporary = false;  ///< a temporary of an interrupted creation
};

/// The creator pid recorded in the stream or queue file `path`; the handle is closed again
/// before returning, so the /proc scan that follows does not find this process.
/// @throws Error when the file does not open or validate as that kind.
std::int32_t creator_of(const std::string& path, ChannelKind kind) {
  if (kind == ChannelKind::queue) return Queue::open(path, QueueExpect{.writable = false}).info().creator_pid;
  return open_for_inspection(path).info().creator_pid;
}

/// Judges one stream or queue file: stale when its creator is dead and no process holds it.
Verdict judge(const std::string& path, ChannelKind kind, bool strict) {
  Verdict v{kind == ChannelKind::queue ? queue_display_name(path) : display_name(path), path, kind, false, {}, false};
  std::int32_t creator = 0;
  try {
    creator = creator_of(path, kind);
  } catch (const Error& e) {
    v.reason = fmt::format("not a valid {}, left alone: {}", channel_kind_name(kind), e.what());
    return v;
  }
  if (pid_alive(creator)) {
    v.reason = "creator " + std::to_string(creator) + " is alive";
    return v;
  }
  int hidden = 0;
  const std::vector<int> users = processes_using(path, &hidden);
  if (!users.empty()) {
    std::string list;
    for (int p : users) list += (list.empty() ? "" : ",") + std::to_string(p);
    v.reason = "creator " + std::to_string(creator) + " is dead but processes " + list + " have it open";
    return v;
  }
  if (strict && hidden > 0) {
    v.reason = std::to_string(hidden) + " processes could not be inspected (--strict; run as root)";
    return v;
  }
  v.remove = true;
  v.reason = "creator " + std::to_string(creator) + " is dead and no process has it open";
  return v;
}

/// Judges one memif status file: stale when nobody holds its lock (its owner is gone).
Verdict judge_memif(const std::string& path) {
  const memif::SocketStatus s = inspect_memif_status(path);
  Verdict v{std::filesystem::path(path).filename().string(), path, ChannelKind::memif, false, {}, false};
  if (!s.error.empty()) {
    v.reason = "not a valid memif status file, left alone: " + s.error;
    return v;
  }
  v.name = s.socket;
  if (s.alive) {
    v.reason = fmt::format("owner {} is alive (it holds the file's lock)", s.pid);
    return v;
  }
  v.remove = true;
  v.reason = fmt::format("owner {} is gone (nobody holds the file's lock)", s.pid);
  return v;
}

/// True when nobody holds a lock on the file at `path` (a shared lock is granted at once); false
/// when someone does or the file cannot be opened.
bool unlocked(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool nobody = ::flock(fd, LOCK_SH | LOCK_NB) == 0;
  ::close(fd);  // drops the shared lock too
  return nobody;
}

/// Temporaries of interrupted creations: ".<name>.im.shm.XXXXXX" (streams),
/// ".<name>.queue.shm.XXXXXX" (queues) and ".<pid>-<k>.memif.shm.XXXXXX" (memif status files),
/// over a minute old and unused: no process has a stream or queue temporary open; nobody holds
/// the lock of a memif one (its creator locks it before filling it).
std::vector<Verdict> judge_temporaries(const std::string& dir) {
  std::vector<Verdict> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string base = e.path().filename().string();
    if (base.size() < 16 || base[0] != '.') continue;
    const bool stream = base.find(".im.shm.") != std::string::npos;
    const bool queue = base.find(".queue.shm.") != std::string::npos;
    const bool memif = base.find(".memif.shm.") != std::string::npos;
    if (!stream && !queue && !memif) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0 || std::time(nullptr) - st.st_mtime < 60) continue;
    if (memif ? !unlocked(e.path().string()) : !processes_using(e.path().string()).empty()) continue;
    const ChannelKind kind = memif ? ChannelKind::memif : queue ? ChannelKind::queue : ChannelKind::stream;
    out.push_back({base, e.path().string(), kind, true, "temporary of an interrupted creation", true});
  }
  return out;
}

/// The name of `v` in gc's text output: "cam" for a stream, "q (queue)" for a queue,
/// "@sock (memif status file 123-0.memif.shm)" for a memif status file.
std::string verdict_label(const Verdict& v) {
  if (v.kind == ChannelKind::queue && !v.temporary) return v.name + " (queue)";
  if (v.kind == ChannelKind::memif && !v.temporary)
    return fmt::format("{} (memif status file {})", v.name, std::filesystem::path(v.path).filename().string());
  return v.name;
}

/// Runs `gc`.
int run_gc(const GcOptions& opt) {
  const std::string dir = resolve_directory(opt.dir);
  std::vector<Verdict> verdicts;
  for (const std::string& path : list_stream_files(dir)) {
    verdicts.push_back(judge(path, ChannelKind::stream, opt.strict));
  }
  for (const std::string& path : list_queue_files(dir)) {
    verdicts.push_back(judge(path, ChannelKind::queue, opt.strict));
  }
  for (const std::string& path : list_memif_status_files(dir)) verdicts.push_back(judge_memif(path));
  for (Verdict& t : judge_temporaries(dir)) verdicts.push_back(std::move(t));
  int rc = kExitOk;
  Json removed = Json::array(), kept = Json::array();
  for (Verdict& v : verdicts) {
    if (v.remove && !opt.dry_run && v.kind == ChannelKind::memif && !v.temporary) {
      // Re-checks the lock and the file's identity right before the unlink.
      try {
        if (!memif::remove_socket_status_if_stale(v.path)) {
          v.remove = false;
          v.reason = "its lock is held again or the file changed meanwhile; left alone";
        }
      } catch (const Error& e) {
        const int code = report_error(e);
        if (rc == kExitOk) rc = code;
        continue;
      }
    } else if (v.remove && !opt.dry_run && ::unlink(v.path.c_str()) != 0) {
      const int code = report_error(Error(errc_from_errno(errno), "removing " + v.path + ": " + std::strerror(errno)));
      if (rc == kExitOk) rc = code;
      continue;
    }
    (v.remove ? removed : kept)
        .push_back(Json{{"name", v.name},
                        {"kind", std::string(channel_kind_name(v.kind))},
                        {"path", v.path},
                        {"reason", v.reason},
                        {"temporary", v.temporary}});
    if (!opt.json && v.remove)
      std::cout << (opt.dry_run ? "would remove " : "removed ") << verdict_label(v) << ": " << v.reason << '\n';
  }
  if (opt.json) {
    Json doc{{"schema_version", 1}, {"directory", dir}, {"dry_run", opt.dry_run}, {"removed", removed}, {"kept", kept}};
    std::cout << doc.dump(2) << '\n';
  } else if (removed.empty()) {
    std::cout << "nothing to remove in " << dir << '\n';
  }
  std::cout << std::flush;
  return rc;
}

}  // namespace

Command add_gc_command(CLI::App& app) {
  auto opt = std::make_shared<GcOptions>();
  CLI::App* sub = app.add_subcommand(
      "gc",
      "Remove stale streams and queues (creator dead and no process has the file open or mapped) and memif status "
      "files whose process is gone");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_flag("-n,--dry-run", opt->dry_run, "List what would be removed, remove nothing");
  sub->add_flag("--strict", opt->strict, "Keep streams and queues when some process's /proc entries cannot be read");
  sub->add_flag("--json", opt->json, "JSON output (schema_version 1)");
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_gc(*opt); }};
}

}  // namespace shmlink::cli
