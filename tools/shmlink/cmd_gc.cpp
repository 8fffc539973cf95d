// SPDX-License-Identifier: MIT
// `shmlink gc`: removes what is certainly garbage in the stream directory: temporaries left by
// creations that crashed before publishing, memif status files whose owner is gone, unused
// partial-write companions (`<name>_pkt.im.shm`) whose stream is gone, and the semaphore slots
// that dead readers still hold in the streams it keeps. With
// --streams it also removes streams and queues whose creator is dead and that no process has open
// (optionally only those unused for --older-than). A file is removed only if the path still names
// the very file that was judged (rename to a trash name, check the inode, then unlink). Inside the
// directory's regions it reports the entries nobody will finish (left `removing`, or `creating`
// by a dead process of this kernel) and, with --streams, has the region's own recovery free them.
#include "common.hpp"

#include <shmlink/catalog.hpp>
#include <shmlink/region.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string_view>

namespace shmlink::cli {

namespace {

/// Options of `gc`.
struct GcOptions {
  std::string dir;                 ///< directory override
  bool dry_run = false;            ///< list, do not remove
  bool strict = false;             ///< keep a stream when some process could not be inspected
  bool json = false;               ///< JSON on stdout
  bool streams = false;            ///< also remove unused streams and queues of dead creators
  std::string older_than = "0s";   ///< with --streams: only those unused for at least this long
};

/// The verdict on one file.
struct Verdict {
  std::string name;    ///< display name
  std::string path;    ///< file path
  ChannelKind kind = ChannelKind::stream;  ///< what the file is (or, for a temporary, would be)
  bool remove = false; ///< to be removed
  std::string reason;  ///< why it is (or is not) removed
  bool temporary = false;  ///< a temporary of an interrupted creation
  bool stale = false;  ///< a stream or queue nobody uses (removed only with --streams)
  dev_t dev = 0;       ///< the judged file's device (streams, queues, temporaries)
  ino_t ino = 0;       ///< the judged file's inode: only this file is ever removed
  int dead_slots = 0;  ///< semaphore slots held by dead readers, freed (or, dry run, to free)
  std::string region;  ///< for an entry of a region: the region file (name: the entry's name)
};

/// Frees the semaphore slots of dead readers in the kept stream `v` (counts them in a dry run).
/// A file gc cannot open writable (another user's) or that no longer validates is skipped.
void reclaim_slots(Verdict& v, bool dry_run) {
  if (v.kind != ChannelKind::stream || v.temporary || v.remove || v.ino == 0) return;
  try {
    // Whatever file the path names now: freeing a dead reader's slot is right in any stream.
    Stream s = Stream::open(v.path);
    guarded_read(s, [&] { v.dead_slots = s.reclaim_semaphores(dry_run); });
  } catch (const Error&) {
  }
}

/// ns since the epoch of a stat(2) time.
std::int64_t ns_of(const timespec& t) noexcept { return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; }

/// "3h", "12m", "40s": an age for messages.
std::string age_text(std::int64_t ns) {
  const std::int64_t s = ns / 1'000'000'000;
  if (s >= 2 * 86400) return fmt::format("{}d", s / 86400);
  if (s >= 2 * 3600) return fmt::format("{}h", s / 3600);
  if (s >= 120) return fmt::format("{}m", s / 60);
  return fmt::format("{}s", s);
}

/// What gc reads from a stream or queue file.
struct FileFacts {
  std::int32_t creator = 0;  ///< creator pid
  std::int64_t used_ns = 0;  ///< last use as the file says (newest frame, creation), ns since the epoch
  bool orphan_companion = false;  ///< a partial-write companion whose stream is gone
};

/// Records per slice in a partial-write companion `<name>_pkt.im.shm` (u64, this x depth:
/// docs/design/streams.md "Partial writes").
constexpr std::uint32_t kCompanionRecord = 516;

/// The facts gc judges the stream or queue file `path` by. The handle is closed again before
/// returning, so the /proc scan that follows does not find this process through it.
/// @throws Error when the file does not open or validate as that kind.
FileFacts facts_of(const std::string& path, ChannelKind kind) {
  if (kind == ChannelKind::queue) {
    const QueueRow row = inspect_queue(path);
    if (!row.info) throw Error(row.error_code, row.error);
    return {row.info->creator_pid, row.info->creation_time_ns, false};
  }
  const Stream s = open_for_inspection(path);
  StreamInfo info;
  guarded_read(s, [&] { info = s.info(); });
  FileFacts f{info.creator_pid,
              std::max({info.frame.writetime_ns, info.frame.atime_ns, info.creation_time_ns, info.last_access_time_ns}),
              false};
  constexpr std::string_view kCompanion = "_pkt.im.shm";
  if (path.size() > kCompanion.size() && path.ends_with(kCompanion) && info.dtype == Dtype::u64 &&
      info.shape.size() == 2 && info.shape[0] == kCompanionRecord) {
    const std::string owner = path.substr(0, path.size() - kCompanion.size()) + ".im.shm";
    struct stat st {};
    f.orphan_companion = ::lstat(owner.c_str(), &st) != 0 && errno == ENOENT;
  }
  return f;
}

/// Judges one stream or queue file: stale when its creator is dead and no process holds it;
/// removed only with --streams, and then only when unused for --older-than.
Verdict judge(const std::string& path, ChannelKind kind, const GcOptions& opt, std::chrono::nanoseconds older_than) {
  Verdict v;
  v.name = kind == ChannelKind::queue ? queue_display_name(path) : display_name(path);
  v.path = path;
  v.kind = kind;
  // Pin the file judged: its inode is what may be removed, whatever the path names later.
  // O_NONBLOCK: a FIFO does not block us; O_NOFOLLOW: a link is not followed.
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
  struct stat st {};
  if (raw < 0 || ::fstat(raw, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    if (raw >= 0) ::close(raw);
    try {
      require_regular_file(path, channel_kind_name(kind));
      v.reason = fmt::format("cannot be inspected ({}), left alone", raw < 0 ? std::strerror(err) : "fstat failed");
    } catch (const Error& e) {
      v.reason = std::string(e.what());
    }
    return v;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{raw};
  v.dev = st.st_dev;
  v.ino = st.st_ino;
  FileFacts facts;
  try {
    facts = facts_of(path, kind);
  } catch (const Error& e) {
    v.reason = fmt::format("not a valid {}, left alone: {}", channel_kind_name(kind), e.what());
    return v;
  }
  struct stat again {};
  if (::lstat(path.c_str(), &again) != 0 || again.st_ino != st.st_ino || again.st_dev != st.st_dev) {
    v.reason = "re-created or removed while it was judged, left alone";
    return v;
  }
  const std::int32_t creator = facts.creator;
  if (pid_alive(creator)) {
    v.reason = "creator " + std::to_string(creator) + " is alive";
    return v;
  }
  int hidden = 0;
  // Users of the judged inode (through our descriptor's /proc link), not of whatever the path
  // names now; this process holds that descriptor, so it is not counted.
  std::vector<int> users = processes_using(fmt::format("/proc/self/fd/{}", raw), &hidden);
  std::erase(users, static_cast<int>(::getpid()));
  if (!users.empty()) {
    std::string list;
    for (int p : users) list += (list.empty() ? "" : ",") + std::to_string(p);
    v.reason = "creator " + std::to_string(creator) + " is dead but processes " + list + " have it open";
    return v;
  }
  if (opt.strict && hidden > 0) {
    v.reason = std::to_string(hidden) + " processes could not be inspected (--strict; run as root)";
    return v;
  }
  v.stale = true;
  if (facts.orphan_companion) {
    v.remove = true;
    v.reason = fmt::format("partial-write companion whose stream is gone; creator {} is dead and no process has "
                           "it open",
                           creator);
    return v;
  }
  if (!opt.streams) {
    v.reason = fmt::format("creator {} is dead and no process has it open; {}s are removed only with --streams",
                           creator, channel_kind_name(kind));
    return v;
  }
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::int64_t last = std::max({facts.used_ns, ns_of(st.st_mtim), ns_of(st.st_ctim)});
  const std::int64_t age = std::max<std::int64_t>(0, now - last);
  if (age < older_than.count()) {
    v.reason = fmt::format("creator {} is dead and no process has it open, but it was used {} ago (--older-than {})",
                           creator, age_text(age), opt.older_than);
    return v;
  }
  v.remove = true;
  v.reason = fmt::format("creator {} is dead and no process has it open (unused for {})", creator, age_text(age));
  return v;
}

/// Judges one memif status file: stale when nobody holds its lock (its owner is gone).
Verdict judge_memif(const std::string& path) {
  const memif::SocketStatus s = inspect_memif_status(path);
  Verdict v;
  v.name = std::filesystem::path(path).filename().string();
  v.path = path;
  v.kind = ChannelKind::memif;
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

/// Judges the entries of the region file `file` (a "region" listing) that nobody will finish:
/// one left `removing` (its remover died inside the region's lock) and one `creating` whose
/// creator is a dead process of this kernel (Region::owner_is_local(), pid gone). Ready entries
/// and those of a live creator or of another kernel (a VM's: its liveness cannot be known;
/// `region rm` clears it) are no finding, the latter said so. Such entries are freed by the
/// region's own recovery rule, which runs in whoever takes its lock (remove_region_entry()); they
/// are stale, removed only with --streams. A region that does not open or read is skipped: the
/// listing (`ls`) and `region ls` report it.
std::vector<Verdict> judge_region(const ChannelListing& file, const GcOptions& opt) {
  std::vector<Verdict> out;
  if (!file.problem.empty()) return out;  // a link (not followed), busy, or not a valid region
  std::vector<RegionEntry> entries;
  try {
    entries = Region::open(file.path, false).entries();
  } catch (const Error&) {
    return out;
  }
  for (const RegionEntry& e : entries) {
    if (e.state != EntryState::creating && e.state != EntryState::removing) continue;
    Verdict v;
    v.name = file.path + ":" + e.name;
    v.path = v.name;
    v.region = file.path;
    v.kind = e.kind == shmlink::ChannelKind::queue ? ChannelKind::queue : ChannelKind::stream;
    const auto pid = static_cast<std::int32_t>(e.owner & 0xffffffffU);
    if (e.state == EntryState::creating) {
      if (!Region::owner_is_local(e)) {
        v.reason = "being created by a process of another kernel or pid namespace, whose liveness cannot be known; "
                   "left alone (`shmlink region rm` clears it)";
        out.push_back(std::move(v));
        continue;
      }
      if (pid_alive(pid)) continue;  // being created now: no finding
    }
    v.stale = true;
    const std::string what = e.state == EntryState::removing ? "left 'removing' by a remover that died inside the lock"
                                                              : fmt::format("left 'creating' by pid {}, which is dead", pid);
    v.remove = opt.streams;
    v.reason = opt.streams ? what : what + "; region entries are freed only with --streams";
    out.push_back(std::move(v));
  }
  return out;
}

/// Frees the region entry `v` judged by judge_region() through the region's recovery rule: it
/// takes the region's lock (Region::remove(name)), whose holder frees every entry left
/// `removing` and every `creating` one of a dead local process, then finds the name gone
/// (not_found: freed). An entry whose creator the region judges alive (a reused pid is told by
/// its start time) is refused with busy and kept.
/// @return false, with `v.reason` saying why, when the entry was kept.
/// @throws Error naming the region for any other failure (permission, timeout, layout).
bool remove_region_entry(Verdict& v) {
  Region r = Region::open(v.region, true);
  const std::string name = v.name.substr(v.region.size() + 1);
  try {
    r.remove(name);  // recovery did not free it, and the region let it be removed: it was stale
  } catch (const Error& e) {
    if (e.errc() == Errc::not_found) return true;  // freed by the recovery rule (or by someone else)
    if (e.errc() != Errc::busy) throw;
    v.reason = std::string(e.what()) + "; left alone";
    return false;
  }
  return true;
}

/// True when nobody holds a lock on the regular file `fd` (a shared lock is granted at once).
bool unlocked(int fd) {
  const bool nobody = ::flock(fd, LOCK_SH | LOCK_NB) == 0;
  if (nobody) ::flock(fd, LOCK_UN);
  return nobody;
}

/// Judges a temporary of an interrupted creation (list_channels() kind "temporary":
/// ".<final>.XXXXXX", is_temporary_name(); also the trash remove_judged() could not put back):
/// removed when it is a regular file over a minute old and unused: no process has it open (a
/// stream, queue or region temporary), nobody holds its lock (a memif status file's: its creator
/// locks it before filling it). Anything else is left out (nullopt): a temporary is no finding.
std::optional<Verdict> judge_temporary(const ChannelListing& file) {
  const std::string& path = file.path;
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
  if (raw < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{raw};
  struct stat st {};
  if (::fstat(raw, &st) != 0 || !S_ISREG(st.st_mode) || std::time(nullptr) - st.st_mtime < 60) return std::nullopt;
  // The kind of the file it would have been published as ("cam.im.shm": a stream).
  const std::string final_kind = channel_file(file.name).kind;
  const bool memif = final_kind == "memif-status";
  if (memif ? !unlocked(raw) : [&] {
        std::vector<int> users = processes_using(fmt::format("/proc/self/fd/{}", raw));
        std::erase(users, static_cast<int>(::getpid()));
        return !users.empty();
      }())
    return std::nullopt;
  Verdict v;
  v.name = std::filesystem::path(path).filename().string();
  v.path = path;
  v.kind = memif                       ? ChannelKind::memif
           : final_kind == "queue"     ? ChannelKind::queue
           : final_kind == "region"    ? ChannelKind::region
                                       : ChannelKind::stream;
  v.remove = true;
  v.reason = "temporary of an interrupted creation";
  v.temporary = true;
  v.dev = st.st_dev;
  v.ino = st.st_ino;
  return v;
}

/// A trash name for `path` in its directory: "." + its file name + "." + six random letters or
/// digits, the shape of Segment::create_file's temporaries, so that a trash file left behind
/// (remove_judged() could not put it back) is a temporary to a later gc.
std::string trash_name(const std::filesystem::path& path) {
  static constexpr std::string_view kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string tail(6, 'x');
  for (char& c : tail) c = kChars[static_cast<std::size_t>(rng() % kChars.size())];
  return (path.parent_path() / ("." + path.filename().string() + "." + tail)).string();
}

/// The outcome of remove_judged().
enum class Removal { removed, gone, changed };

/// Removes the file at `v.path` only if it still is the file judged (v.dev, v.ino). The path is
/// first renamed to a trash name in the same directory (atomic: what the path named at that
/// instant is what moves), the moved file's identity is checked, and only then is it unlinked.
/// When another file had taken the path meanwhile (a stream re-created by PurgeAndCreate, whose
/// rename can land between our judgement and our rename), that file is renamed back at once
/// (without replacing a yet newer one) and left alone. Two gc runs at once: the second finds the
/// path gone, or a new file it puts back.
/// @throws Error naming the file when a rename or the unlink fails for another reason.
Removal remove_judged(const Verdict& v) {
  std::string trash = trash_name(v.path);
  int tries = 0;
  while (::renameat2(AT_FDCWD, v.path.c_str(), AT_FDCWD, trash.c_str(), RENAME_NOREPLACE) != 0) {
    const int err = errno;
    if (err == EEXIST && ++tries < 16) {  // the random name is taken: draw another
      trash = trash_name(v.path);
      continue;
    }
    if (err == ENOENT) return Removal::gone;
    throw Error(errc_from_errno(err), fmt::format("removing {}: renaming it to {}: {}", shown(v.path), shown(trash),
                                                  std::strerror(err)));
  }
  struct stat st {};
  if (::lstat(trash.c_str(), &st) == 0 && st.st_dev == v.dev && st.st_ino == v.ino) {
    if (::unlink(trash.c_str()) != 0 && errno != ENOENT) {
      const int err = errno;
      throw Error(errc_from_errno(err), fmt::format("removing {} (renamed to {}): {}", shown(v.path), shown(trash),
                                                    std::strerror(err)));
    }
    return Removal::removed;
  }
  // Not the file judged: put it back. If a newer one took the path already, the moved one is a
  // file its creator replaced anyway; it stays under the trash name (trash_name(): a temporary's
  // shape, so a later gc removes it once it is unused and a minute old).
  (void)::renameat2(AT_FDCWD, trash.c_str(), AT_FDCWD, v.path.c_str(), RENAME_NOREPLACE);
  return Removal::changed;
}

/// The name of `v` in gc's text output: "cam" for a stream, "q (queue)" for a queue,
/// "@sock (memif status file 123-0.memif.shm)" for a memif status file; escaped for the terminal.
std::string verdict_label(const Verdict& v) {
  if (v.kind == ChannelKind::queue && !v.temporary) return shown(v.name) + " (queue)";
  if (v.kind == ChannelKind::memif && !v.temporary)
    return fmt::format("{} (memif status file {})", shown(v.name),
                       shown(std::filesystem::path(v.path).filename().string()));
  return shown(v.name);
}

/// Runs `gc`.
int run_gc(const GcOptions& opt) {
  const std::string dir = resolve_directory(opt.dir);
  const std::chrono::nanoseconds older_than = parse_duration(opt.older_than).value_or(std::chrono::nanoseconds(0));
  // One listing (the library's catalog), judged kind by kind: streams, queues, memif status
  // files, temporaries, then the entries of regions. Holders are looked for per file, on the
  // pinned inode.
  const std::vector<ChannelListing> files = list_channels(dir, false);
  std::vector<Verdict> verdicts;
  for (const ChannelListing& f : files) {
    if (f.kind == "stream") verdicts.push_back(judge(f.path, ChannelKind::stream, opt, older_than));
  }
  for (const ChannelListing& f : files) {
    if (f.kind == "queue") verdicts.push_back(judge(f.path, ChannelKind::queue, opt, older_than));
  }
  for (const ChannelListing& f : files) {
    if (f.kind == "memif-status") verdicts.push_back(judge_memif(f.path));
  }
  for (const ChannelListing& f : files) {
    if (f.kind != "temporary") continue;
    if (std::optional<Verdict> t = judge_temporary(f)) verdicts.push_back(std::move(*t));
  }
  for (const ChannelListing& f : files) {
    if (f.kind != "region") continue;
    for (Verdict& v : judge_region(f, opt)) verdicts.push_back(std::move(v));
  }
  int rc = kExitOk;
  Json removed = Json::array(), kept = Json::array();
  for (Verdict& v : verdicts) {
    if (v.remove && !opt.dry_run) {
      try {
        if (!v.region.empty()) {
          v.remove = remove_region_entry(v);
        } else if (v.kind == ChannelKind::memif && !v.temporary) {
          // Re-checks the lock and the file's identity right before the unlink.
          if (!memif::remove_socket_status_if_stale(v.path)) {
            v.remove = false;
            v.reason = "its lock is held again or the file changed meanwhile; left alone";
          }
        } else {
          switch (remove_judged(v)) {
            case Removal::removed: break;
            case Removal::gone:
              v.remove = false;
              v.reason = "removed by someone else meanwhile";
              break;
            case Removal::changed:
              v.remove = false;
              v.reason = "re-created meanwhile (another file has the name now); left alone";
              break;
          }
        }
      } catch (const Error& e) {
        const int code = report_error(e);
        if (rc == kExitOk) rc = code;
        continue;
      }
    }
    reclaim_slots(v, opt.dry_run);
    if (!opt.json && v.dead_slots > 0)
      std::cout << fmt::format("{} {} semaphore slot(s) of dead readers in {}\n", opt.dry_run ? "would free" : "freed",
                               v.dead_slots, verdict_label(v));
    (v.remove ? removed : kept)
        .push_back(Json{{"name", v.name},
                        {"kind", std::string(channel_kind_name(v.kind))},
                        {"path", v.path},
                        {"reason", v.reason},
                        {"temporary", v.temporary},
                        {"stale", v.stale},
                        {"semaphore_slots_freed", v.dead_slots}});
    if (!opt.json && v.remove)
      std::cout << (opt.dry_run ? "would remove " : "removed ") << verdict_label(v) << ": " << shown_message(v.reason) << '\n';
  }
  if (opt.json) {
    Json doc{{"schema_version", kSchemaVersion},
             {"directory", dir},
             {"dry_run", opt.dry_run},
             {"streams", opt.streams},
             {"older_than", opt.streams ? Json(opt.older_than) : Json(nullptr)},
             {"removed", removed},
             {"kept", kept}};
    print_json(doc);
  } else {
    const bool freed_any = std::any_of(verdicts.begin(), verdicts.end(), [](const Verdict& v) { return v.dead_slots > 0; });
    if (removed.empty() && !freed_any) std::cout << "nothing to remove in " << shown(dir) << '\n';
    if (!opt.streams) {
      const auto stale = static_cast<std::size_t>(
          std::count_if(verdicts.begin(), verdicts.end(), [](const Verdict& v) { return v.stale; }));
      if (stale != 0)
        std::cout << fmt::format("{} unused stream(s)/queue(s) of dead creators kept (gc --streams removes them; "
                                 "gc --streams --dry-run lists them)\n",
                                 stale);
    }
  }
  std::cout << std::flush;
  return rc;
}

}  // namespace

Command add_gc_command(CLI::App& app) {
  auto opt = std::make_shared<GcOptions>();
  CLI::App* sub = app.add_subcommand(
      "gc",
      "Remove what is certainly garbage: temporaries of interrupted creations, memif status files whose process "
      "is gone, semaphore slots held by dead readers; with --streams also streams and queues whose creator is dead and that no process has open, "
      "and region entries nobody will finish (left 'removing', or 'creating' by a dead process of this host)");
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_flag("-n,--dry-run", opt->dry_run, "List what would be removed, remove nothing");
  CLI::Option* streams = sub->add_flag(
      "--streams", opt->streams,
      "Also remove streams and queues whose creator is dead and that no process has open or mapped (streams made "
      "by `shmlink create` are meant to outlive it: they are kept without this flag), and free the entries of "
      "regions that nobody will finish (the region's own recovery frees them)");
  sub->add_option("--older-than", opt->older_than,
                  "With --streams: only those unused (no frame written, file unchanged) for at least DURATION "
                  "(0s, 90s, 10m, 2h, 1d)")
      ->check(duration_validator())
      ->needs(streams)
      ->capture_default_str();
  sub->add_flag("--strict", opt->strict, "Keep streams and queues when some process's /proc entries cannot be read");
  sub->add_flag("--json", opt->json, "JSON output (schema_version 1)");
  return {sub, [opt] { return run_gc(*opt); }};
}

}  // namespace shmlink::cli
