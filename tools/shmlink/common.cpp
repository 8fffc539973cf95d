// SPDX-License-Identifier: MIT
// Helpers shared by the shmlink subcommands (common.hpp).
#include "common.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <thread>
#include <utility>

namespace shmlink::cli {

namespace {

constexpr std::string_view kSuffix = ".im.shm";
constexpr std::string_view kQueueSuffix = ".queue.shm";

/// True when `s` ends with `suffix`.
bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// Paths of the entries of `dir` whose names end in `suffix` (longer than it), directories
/// excepted, sorted. @throws Error naming the directory when it cannot be listed.
std::vector<std::string> list_files_with_suffix(const std::string& dir, std::string_view suffix) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    throw Error(errc_from_errno(ec.value()), fmt::format("listing stream directory {}: {}", dir, ec.message()));
  }
  std::vector<std::string> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string file = it->path().filename().string();
    if (file.size() <= suffix.size() || !ends_with(file, suffix)) continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    out.push_back(it->path().string());
  }
  if (ec) {
    throw Error(errc_from_errno(ec.value()), fmt::format("listing stream directory {}: {}", dir, ec.message()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// ---- exit codes ------------------------------------------------------------------------

int exit_code_for(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return kExitOk;
    case Errc::invalid_argument:
    case Errc::name_too_long: return kExitUsage;
    case Errc::not_found: return kExitNotFound;
    case Errc::permission: return kExitPermission;
    case Errc::layout: return kExitLayout;
    case Errc::timeout: return kExitTimeout;
    // Not Errc::interrupted: an error ends a command with nothing to show. 130 says "stopped,
    // here is what was done", which only `bench stream` returns itself (cmd_bench.cpp).
    default: return kExitFailure;
  }
}

std::string exit_code_help() {
  return "Exit codes:\n"
         "  0    success\n"
         "  1    failure (stream exists: add --force to replace it; no space, I/O error, torn read, an output file\n"
         "       that cannot be written, ...)\n"
         "  2    usage error (bad option, shape, dtype or name; name longer than 79 bytes)\n"
         "  3    stream, queue, memif socket, VILLAS region or directory not found\n"
         "  4    permission denied\n"
         "  5    layout mismatch (not a valid ImageStreamIO 2.00 stream, shmlink queue file or VILLAS region)\n"
         "  124  timed out waiting\n"
         "  130  bench stream interrupted by Ctrl-C, after printing the rows measured so far\n"
         "\n"
         "Streams and queues live in $SHMLINK_DIR, else $MILK_SHM_DIR, else /milk/shm if it exists, else /dev/shm.\n"
         "--json output is one JSON document on stdout with a \"schema_version\" key; diagnostics go to stderr.";
}

std::string program_description() {
  return "shmlink: move data between processes through shared memory, and see what is moving.\n"
         "Three kinds of channel, all found in the stream directory:\n"
         "  streams  ImageStreamIO 2.00 files (NAME.im.shm) that milk, cacao and pyMilk share: the latest frame\n"
         "           or a rolling buffer of frames, keywords, semaphores (ls, info, create, rm, monitor, cat, gc)\n"
         "  queues   lock-free sample queues (NAME.queue.shm; one or many producers) between simulators and\n"
         "           controllers (ls, info, rm, gc)\n"
         "  memif    packet interfaces speaking the memif protocol of VPP, DPDK and libmemif; running processes\n"
         "           publish their state in PID-K.memif.shm (memif responder/ping/bench; ls, info --memif, gc)\n"
         "Also, read-only: the VILLASnode v1.x shmem regions in /dev/shm that villas-node and Interfaces with\n"
         "the villas protocol share (ls, info).\n"
         "bench measures streams, queues and memif against raw floors in one run.\n";
}

std::string subcommand_footer() { return "Exit codes and the stream directory: see `shmlink --help`."; }

// ---- argument parsing ------------------------------------------------------------------

std::optional<std::vector<std::uint32_t>> parse_shape(std::string_view text, std::string* why) {
  auto fail = [why](std::string msg) -> std::optional<std::vector<std::uint32_t>> {
    if (why != nullptr) *why = std::move(msg);
    return std::nullopt;
  };
  if (text.empty()) return fail("empty shape");
  std::vector<std::uint32_t> shape;
  std::size_t pos = 0;
  while (true) {
    std::size_t end = text.find_first_of("xX,", pos);
    std::string_view part = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (part.empty()) return fail(fmt::format("empty axis in shape '{}'", text));
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && value > 0xFFFFFFFFu)) {
      return fail(fmt::format("axis '{}' of shape '{}' is too large (at most 4294967295)", part, text));
    }
    if (ec != std::errc() || ptr != part.data() + part.size()) {
      return fail(fmt::format("axis '{}' of shape '{}' is not a number", part, text));
    }
    if (value == 0) return fail(fmt::format("axis of shape '{}' is 0 (each axis must be >= 1)", text));
    shape.push_back(static_cast<std::uint32_t>(value));
    if (shape.size() > 3) return fail(fmt::format("shape '{}' has more than 3 axes", text));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return shape;
}

std::string format_shape(const std::vector<std::uint32_t>& shape) {
  std::string out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) out += 'x';
    out += std::to_string(shape[i]);
  }
  return out;
}

std::optional<mode_t> parse_permissions(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > 07777u) return std::nullopt;
  return static_cast<mode_t>(value);
}

CLI::Validator shape_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        std::string why;
        if (!parse_shape(value, &why)) return why + " (expected W, WxH or WxHxD, fastest axis first)";
        return {};
      },
      "WxHxD");
}

CLI::Validator dtype_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!shmlink::parse_dtype(value)) {
          return fmt::format(
              "unknown dtype '{}' (expected u8 i8 u16 i16 u32 i32 u64 i64 f16 f32 f64 c64 c128 "
              "or numpy names such as uint16, float32, complex64)",
              value);
        }
        return {};
      },
      "DTYPE");
}

CLI::Validator permissions_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!parse_permissions(value)) return fmt::format("'{}' is not octal permission bits (e.g. 0660)", value);
        return {};
      },
      "OCTAL");
}

CLI::Validator seconds_validator(double min_s, double max_s) {
  return CLI::Validator(
      [min_s, max_s](std::string& value) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(value.c_str(), &end);
        if (value.empty() || end != value.c_str() + value.size() || errno != 0 || !std::isfinite(v) || v < min_s ||
            v > max_s) {
          return fmt::format("'{}' is not a number of seconds in [{:g}, {:g}]", value, min_s, max_s);
        }
        return {};
      },
      "SECONDS");
}

// ---- streams ---------------------------------------------------------------------------

std::string resolve_stream(const std::string& name, const std::string& dir) {
  if (name.empty()) throw Error(Errc::invalid_argument, "stream name is empty");
  if (name.find('/') != std::string::npos) return shmlink::stream_path(name);
  // Accept "cam.im.shm" as the stream "cam", as listed by `ls /dev/shm`.
  std::string bare = ends_with(name, kSuffix) && name.size() > kSuffix.size()
                         ? name.substr(0, name.size() - kSuffix.size())
                         : name;
  if (dir.empty()) return shmlink::stream_path(bare);
  return shmlink::stream_path(dir + "/" + bare + std::string(kSuffix));
}

std::string resolve_directory(const std::string& dir) {
  return dir.empty() ? shmlink::stream_directory() : dir;
}

std::vector<std::string> list_stream_files(const std::string& dir) { return list_files_with_suffix(dir, kSuffix); }

std::string display_name(const std::string& path) {
  std::string base = std::filesystem::path(path).filename().string();
  if (ends_with(base, kSuffix)) base.resize(base.size() - kSuffix.size());
  return base;
}

bool pid_alive(std::int32_t pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;  // exists, owned by someone else; ESRCH = gone
}

std::int32_t writer_pid(const StreamInfo& info) noexcept {
  std::int32_t pid = 0;
  for (std::int32_t p : info.sem_write_pids) {
    if (p > 0) pid = p;
  }
  return pid > 0 ? pid : info.creator_pid;
}

std::string reader_wait_text(const StreamReader& r) {
  return r.semaphore >= 0 ? fmt::format("semaphore {}", r.semaphore) : std::string("mapped");
}

namespace {

/// True when this process may read /proc/PID/fd and /proc/PID/maps, so that a /proc scan that
/// did not find `pid` holding a file means it holds neither a descriptor nor a mapping of it.
/// Opens both without reading them (reading maps would take the process's mmap_lock).
bool proc_inspectable(std::int32_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  const int dir = ::open((base + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return false;
  ::close(dir);
  const int maps = ::open((base + "/maps").c_str(), O_RDONLY | O_CLOEXEC);
  if (maps < 0) return false;
  ::close(maps);
  return true;
}

}  // namespace

std::vector<StreamReader> stream_readers(const StreamInfo& info, const std::vector<int>& holders) {
  std::vector<StreamReader> out;
  for (std::size_t i = 0; i < info.sem_read_pids.size(); ++i) {
    const std::int32_t p = info.sem_read_pids[i];
    if (p <= 0 || !pid_alive(p)) continue;
    // A live pid that neither maps nor opens the file is not its reader: a reader that died
    // without releasing the slot, its pid since reused by an unrelated process.
    if (std::find(holders.begin(), holders.end(), p) == holders.end() && proc_inspectable(p)) continue;
    if (std::none_of(out.begin(), out.end(), [p](const StreamReader& r) { return r.pid == p; }))
      out.push_back({p, static_cast<int>(i)});
  }
  const std::int32_t writer = writer_pid(info);
  const auto self = static_cast<std::int32_t>(::getpid());
  for (int p : holders) {
    if (p == writer || p == self) continue;
    if (std::none_of(out.begin(), out.end(), [p](const StreamReader& r) { return r.pid == p; }))
      out.push_back({p, -1});
  }
  std::sort(out.begin(), out.end(), [](const StreamReader& a, const StreamReader& b) { return a.pid < b.pid; });
  return out;
}

std::string readers_text(const std::vector<StreamReader>& readers) {
  std::string out;
  for (const StreamReader& r : readers) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} ({})", r.pid, reader_wait_text(r));
  }
  return out.empty() ? std::string("-") : out;
}

void add_readers_json(Json& j, const std::vector<StreamReader>& readers, int uninspectable) {
  std::vector<std::int32_t> pids;
  Json waits = Json::array();
  for (const StreamReader& r : readers) {
    pids.push_back(r.pid);
    waits.push_back(Json{{"pid", r.pid},
                         {"wait", r.semaphore >= 0 ? "semaphore" : "mapped"},
                         {"semaphore", r.semaphore >= 0 ? Json(r.semaphore) : Json(nullptr)}});
  }
  j["readers"] = readers.size();
  j["reader_pids"] = pids;
  j["reader_waits"] = std::move(waits);
  j["readers_uninspectable"] = uninspectable;
}

const std::vector<std::string>& row_order_names() {
  static const std::vector<std::string> names = {"name", "rate", "cnt0", "readers"};
  return names;
}

RowOrder row_order_from_name(std::string_view name) noexcept {
  if (name == "rate") return RowOrder::rate;
  if (name == "cnt0") return RowOrder::cnt0;
  if (name == "readers") return RowOrder::readers;
  return RowOrder::name;
}

void sort_rows(std::vector<StreamRow>& rows, RowOrder order) {
  // The key of a row, larger first; rows without metadata (or without a rate) rank below all.
  auto key = [order](const StreamRow& r) -> std::optional<double> {
    if (!r.info) return std::nullopt;
    switch (order) {
      case RowOrder::rate: return r.rate_hz;
      case RowOrder::cnt0: return static_cast<double>(r.info->frame.cnt0);
      case RowOrder::readers: return static_cast<double>(r.readers.size());
      case RowOrder::name: break;
    }
    return 0.0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const StreamRow& a, const StreamRow& b) {
    if (order != RowOrder::name) {
      const std::optional<double> ka = key(a);
      const std::optional<double> kb = key(b);
      if (ka != kb) return kb < ka;  // nullopt compares below every value
    }
    return a.name < b.name;
  });
}

void find_readers(std::vector<StreamRow>& rows, ReaderCache* cache) {
  ReaderCache scan;
  std::vector<StreamRow*> with_info;
  for (StreamRow& row : rows) {
    if (!row.info) continue;
    scan.paths.push_back(row.path);
    scan.inodes.push_back(row.info->inode);
    scan.claimants.push_back(row.info->sem_read_pids);
    with_info.push_back(&row);
  }
  if (with_info.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  const bool reuse = cache != nullptr && cache->valid && now - cache->when < kReaderScanMaxAge &&
                     cache->paths == scan.paths && cache->inodes == scan.inodes &&
                     cache->claimants == scan.claimants;
  if (!reuse) {
    scan.holders = processes_using_each(scan.paths, &scan.uninspectable);
    scan.valid = true;
    scan.when = now;
    spdlog::debug("readers: scanned /proc for {} stream file{}; {} process{} could not be inspected",
                  scan.paths.size(), scan.paths.size() == 1 ? "" : "s", scan.uninspectable,
                  scan.uninspectable == 1 ? "" : "es");
    if (cache != nullptr) *cache = scan;
  }
  const ReaderCache& used = reuse ? *cache : scan;
  for (std::size_t i = 0; i < with_info.size(); ++i) {
    with_info[i]->readers = stream_readers(*with_info[i]->info, used.holders[i]);
    with_info[i]->readers_uninspectable = used.uninspectable;
  }
}

// ---- sampler ---------------------------------------------------------------------------

namespace detail {

/// What stat(2) says about the file at a path.
struct FileId {
  bool exists = false;     ///< stat succeeded
  std::uint64_t ino = 0;   ///< inode
  std::uint64_t size = 0;  ///< size in bytes
};

/// The identity of the file at `path` (following links); `exists` false when it cannot be
/// stat'ed.
FileId file_id(const std::string& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_size)};
}

static_assert(std::atomic<std::uintptr_t>::is_always_lock_free, "the SIGBUS handler reads these");
static_assert(std::atomic<unsigned>::is_always_lock_free, "the SIGBUS handler increments this");

/// First byte of the mapping a MappingGuard protects (0 when none).
std::atomic<std::uintptr_t> g_guard_begin{0};
/// One past its last byte.
std::atomic<std::uintptr_t> g_guard_end{0};
/// SIGBUS faults absorbed so far.
std::atomic<unsigned> g_guard_faults{0};
/// The page size, read by MappingGuard before its handler can run (sysconf is not
/// async-signal-safe).
std::uintptr_t g_page_size = 4096;
/// The SIGBUS action in place before MappingGuard's, restored for faults that are not ours.
struct sigaction g_previous_bus {};

/// SIGBUS handler of MappingGuard. A fault inside the guarded mapping (its file shrank under
/// it: truncated in place) gets a private zero page mapped over the faulting page, so the
/// access is retried and reads zeros, and is counted. Any other fault restores the previous
/// action, which the retried access then triggers as if this handler had never existed.
/// (mmap(2) is not on POSIX's async-signal-safe list, but on Linux it is a bare system call.)
extern "C" void on_guarded_sigbus(int sig, siginfo_t* info, void* /*context*/) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (addr >= g_guard_begin.load(std::memory_order_relaxed) && addr < g_guard_end.load(std::memory_order_relaxed)) {
    void* page = reinterpret_cast<void*>(addr & ~(g_page_size - 1));
    if (::mmap(page, g_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      g_guard_faults.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  ::sigaction(sig, &g_previous_bus, nullptr);
}

/// While alive, a SIGBUS from reading `mapping` (a stream file truncated in place, as DAO's
/// re-creation does, while we read it) does not kill the process: the faulting page reads as
/// zeros and faulted() turns true, so the caller discards what it read. Installs its handler on
/// construction and restores the previous one on destruction. One at a time: the CLI reads
/// streams from one thread, and SIGBUS is delivered to the faulting thread.
class MappingGuard {
 public:
  /// Guards reads of `mapping` (a stream's whole mapped file).
  explicit MappingGuard(std::span<const std::byte> mapping)
      : MappingGuard(reinterpret_cast<std::uintptr_t>(mapping.data()),
                     reinterpret_cast<std::uintptr_t>(mapping.data()) + mapping.size()) {}
  /// Guards reads of the addresses [begin, end).
  MappingGuard(std::uintptr_t begin, std::uintptr_t end) {
    g_page_size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    faults_ = g_guard_faults.load(std::memory_order_relaxed);
    g_guard_begin.store(begin, std::memory_order_relaxed);
    g_guard_end.store(end, std::memory_order_relaxed);
    struct sigaction sa {};
    sa.sa_sigaction = on_guarded_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_bus);
    // SYNC POINT G: the range is in place before the guarded reads (pairs with the handler's
    // loads, which run on this thread).
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  /// Restores the previous SIGBUS action.
  ~MappingGuard() {
    // SYNC POINT G': the guarded reads are done before the range is cleared.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    ::sigaction(SIGBUS, &g_previous_bus, nullptr);
    g_guard_begin.store(0, std::memory_order_relaxed);
    g_guard_end.store(0, std::memory_order_relaxed);
  }
  MappingGuard(const MappingGuard&) = delete;
  MappingGuard& operator=(const MappingGuard&) = delete;

  /// True when a read under this guard faulted (what was read is garbage).
  [[nodiscard]] bool faulted() const noexcept { return g_guard_faults.load(std::memory_order_relaxed) != faults_; }

 private:
  unsigned faults_ = 0;
};

/// Nanoseconds since the epoch, now.
std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// One stream file watched by StreamSampler or StreamWatcher.
struct FileState {
  std::string path;                        ///< file path
  std::optional<Stream> stream;            ///< open handle, when the file validated
  std::optional<StreamGeometry> geometry;  ///< the open stream's geometry
  FileId seen;                             ///< the path's identity at the previous update
  bool known = false;                      ///< updated at least once
  std::uint64_t last_cnt0 = 0;             ///< cnt0 at the previous sample
  std::chrono::steady_clock::time_point last_time{};  ///< time of that sample
  bool sampled = false;                    ///< last_cnt0/last_time are set
  std::string error;                       ///< why the file is not open
  Errc error_code = Errc::ok;              ///< its condition

  /// Drops the handle (the file stays) and forgets the error and the rate sample.
  void close() noexcept {
    stream.reset();
    geometry.reset();
    sampled = false;
    error.clear();
    error_code = Errc::ok;
  }

  /// (Re)opens the file, recording its geometry, or the error when it fails (open_for_inspection:
  /// a non-regular file, or one truncated while it is validated, fails to open instead of
  /// blocking or killing the process).
  void open() {
    close();
    try {
      stream.emplace(open_for_inspection(path));
      geometry = geometry_of(*stream);
    } catch (const Error& e) {
      stream.reset();
      error = e.what();
      error_code = e.errc();
    } catch (const std::exception& e) {
      stream.reset();
      error = fmt::format("opening {}: {}", path, e.what());
      error_code = Errc::system;
    }
  }

  /// True when the open handle no longer maps the file at the path: it was re-created (new
  /// inode) or removed (Stream::replaced()), or the file's size is not the mapping's any more
  /// (re-sized in place, as DAO's re-creation does).
  [[nodiscard]] bool stale(const FileId& now) const noexcept {
    return stream && (stream->replaced() || now.size != stream->file_bytes().size());
  }
};

/// An event of `kind` about `e`, stamped now.
StreamEvent make_event(StreamEvent::Kind kind, const FileState& e) {
  StreamEvent ev;
  ev.kind = kind;
  ev.name = display_name(e.path);
  ev.path = e.path;
  ev.time_ns = now_ns();
  return ev;
}

/// Fills the new-file side of `ev` from `e`, just (re)opened: its geometry, or its error.
void set_after(StreamEvent& ev, const FileState& e) {
  if (e.geometry) {
    ev.after = *e.geometry;
  } else {
    ev.error = e.error;
    ev.error_code = e.error_code;
  }
}

/// Brings `e` up to date with the file at its path: opens a file seen for the first time or
/// again, re-opens a re-created one, retries one that failed to open. Appends what happened to
/// `events` when non-null; a file's first sighting is no event (the caller decides).
/// @param waiting the watcher keeps the path when its file is removed (named streams).
void update(FileState& e, std::vector<StreamEvent>* events, bool waiting) {
  const FileId now = file_id(e.path);
  const bool was_there = e.known && e.seen.exists;
  if (!now.exists) {
    if (was_there && events != nullptr) {
      StreamEvent ev = make_event(StreamEvent::Kind::removed, e);
      ev.before = e.geometry;
      ev.waiting = waiting;
      events->push_back(std::move(ev));
    }
    e.close();
    e.error = fmt::format("stream file {} does not exist{}", e.path, waiting ? "; waiting for it" : "");
    e.error_code = Errc::not_found;
  } else if (!was_there) {
    e.open();
    if (e.known && events != nullptr) {  // it was absent at the previous update: it came (back)
      StreamEvent ev = make_event(StreamEvent::Kind::created, e);
      set_after(ev, e);
      events->push_back(std::move(ev));
    }
  } else if (e.stream) {
    if (e.stale(now)) {
      std::optional<StreamGeometry> before = e.geometry;
      e.open();
      if (events != nullptr) {
        StreamEvent ev = make_event(StreamEvent::Kind::recreated, e);
        ev.before = std::move(before);
        set_after(ev, e);
        events->push_back(std::move(ev));
      }
    }
  } else {
    // The last open failed: retry. Another inode is another file, i.e. a re-creation.
    e.open();
    if (now.ino != e.seen.ino && events != nullptr) {
      StreamEvent ev = make_event(StreamEvent::Kind::recreated, e);
      set_after(ev, e);
      events->push_back(std::move(ev));
    }
  }
  e.seen = now;
  e.known = true;
}

/// The row of `e`: metadata and update rate when its stream is open, else its error. The reads
/// run under a MappingGuard; when one faults (the file shrank under the mapping) the handle is
/// closed, the row carries the error, and a re-creation is appended to `events` (when non-null).
StreamRow sample(FileState& e, std::vector<StreamEvent>* events) {
  StreamRow row;
  row.path = e.path;
  row.name = display_name(e.path);
  if (e.stream) {
    std::optional<StreamInfo> info;
    std::uint64_t cnt0 = 0;
    std::string shrank;
    try {
      guarded_read(*e.stream, [&] {
        cnt0 = e.stream->cnt0();
        try {
          info = e.stream->info();
        } catch (const Error& err) {
          row.error = err.what();
          row.error_code = err.errc();
        }
      });
    } catch (const Error& err) {
      shrank = err.what();
    }
    if (!shrank.empty()) {
      std::optional<StreamGeometry> before = e.geometry;
      e.close();
      e.error = shrank;
      e.error_code = Errc::layout;
      if (events != nullptr) {
        StreamEvent ev = make_event(StreamEvent::Kind::recreated, e);
        ev.before = std::move(before);
        set_after(ev, e);
        events->push_back(std::move(ev));
      }
    } else {
      const auto now = std::chrono::steady_clock::now();
      if (e.sampled) {
        const double dt = std::chrono::duration<double>(now - e.last_time).count();
        const double dc = cnt0 >= e.last_cnt0 ? static_cast<double>(cnt0 - e.last_cnt0) : 0.0;
        if (dt > 0) row.rate_hz = dc / dt;
      }
      e.last_cnt0 = cnt0;
      e.last_time = now;
      e.sampled = true;
      if (info) row.info = std::move(info);
      return row;
    }
  }
  row.error = e.error;
  row.error_code = e.error_code;
  return row;
}

}  // namespace detail

void guarded_read(const Stream& s, const std::function<void()>& read) {
  bool faulted = false;
  {
    detail::MappingGuard guard(s.file_bytes());
    read();
    faulted = guard.faulted();
  }
  // A file re-created under a new inode leaves our mapping intact; one re-sized in place does not.
  const detail::FileId now = detail::file_id(s.path());
  const bool resized = now.exists && now.size != s.file_bytes().size() && !s.replaced();
  if (faulted || resized) {
    throw Error(Errc::layout, fmt::format("stream file {} shrank while it was read (truncated or re-created in "
                                          "place); what was read is discarded",
                                          shown(s.path())));
  }
}

Status wait_for_new_frame(const Stream& s, std::uint64_t last, std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  constexpr std::chrono::nanoseconds kSlice = std::chrono::milliseconds(100);
  const auto start = clock::now();
  while (true) {
    std::chrono::nanoseconds slice = kSlice;
    if (timeout != kForever) {
      const auto left = timeout - std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start);
      if (left <= std::chrono::nanoseconds::zero()) return Errc::timeout;
      slice = std::min(slice, left);
    }
    Status st;
    guarded_read(s, [&] { st = s.wait_futex(last, slice); });
    if (st.code() == Errc::replaced) {
      throw Error(Errc::replaced, fmt::format("stream file {} was re-created (a new file) or removed while waiting "
                                              "for a frame; run again to read the new stream",
                                              shown(s.path())));
    }
    if (st.code() == Errc::timeout || st.code() == Errc::interrupted) continue;
    return st;
  }
}

/// One file the sampler watches.
struct StreamSampler::Entry : detail::FileState {};

StreamSampler::StreamSampler(std::string dir) : dir_(std::move(dir)) {}
StreamSampler::StreamSampler(StreamSampler&&) noexcept = default;
StreamSampler& StreamSampler::operator=(StreamSampler&&) noexcept = default;
StreamSampler::~StreamSampler() = default;

std::vector<StreamRow> StreamSampler::refresh(ReaderScan scan) {
  const std::vector<std::string> paths = list_stream_files(dir_);

  // Merge the sorted listing with the sorted entries: keep, add, drop.
  std::vector<std::unique_ptr<Entry>> next;
  next.reserve(paths.size());
  auto old = entries_.begin();
  for (const std::string& path : paths) {
    while (old != entries_.end() && (*old)->path < path) ++old;
    if (old != entries_.end() && (*old)->path == path) {
      next.push_back(std::move(*old));
      ++old;
    } else {
      auto e = std::make_unique<Entry>();
      e->path = path;
      next.push_back(std::move(e));
    }
  }
  entries_ = std::move(next);

  std::vector<StreamRow> rows;
  rows.reserve(entries_.size());
  for (auto& e : entries_) {
    detail::update(*e, nullptr, false);
    if (!e->seen.exists) continue;  // removed since the listing
    rows.push_back(detail::sample(*e, nullptr));
  }
  if (scan != ReaderScan::none) find_readers(rows);
  return rows;
}

// ---- watcher ---------------------------------------------------------------------------

/// The files a StreamWatcher follows and the events not taken yet.
struct StreamWatcher::State {
  std::string dir;                                          ///< directory scanned or given
  std::vector<std::string> paths;                           ///< fixed paths; empty: scan dir
  std::vector<std::unique_ptr<detail::FileState>> entries;  ///< fixed order, or sorted by path
  std::vector<StreamEvent> events;                          ///< found, not taken yet
  bool started = false;                                     ///< refreshed at least once
  ReaderCache readers;                                      ///< the last /proc scan
};

StreamWatcher::StreamWatcher(std::string dir, std::vector<std::string> paths) : state_(std::make_unique<State>()) {
  state_->dir = std::move(dir);
  for (std::string& p : paths) {
    if (std::find(state_->paths.begin(), state_->paths.end(), p) != state_->paths.end()) continue;
    auto e = std::make_unique<detail::FileState>();
    e->path = p;
    state_->entries.push_back(std::move(e));
    state_->paths.push_back(std::move(p));
  }
}
StreamWatcher::StreamWatcher(StreamWatcher&&) noexcept = default;
StreamWatcher& StreamWatcher::operator=(StreamWatcher&&) noexcept = default;
StreamWatcher::~StreamWatcher() = default;

const std::string& StreamWatcher::directory() const noexcept { return state_->dir; }
bool StreamWatcher::fixed_paths() const noexcept { return !state_->paths.empty(); }

std::vector<StreamEvent> StreamWatcher::take_events() { return std::exchange(state_->events, {}); }

std::vector<StreamRow> StreamWatcher::refresh(ReaderScan scan) {
  State& st = *state_;
  auto readers = [&](std::vector<StreamRow>& rows) {
    if (scan != ReaderScan::none) find_readers(rows, scan == ReaderScan::cached ? &st.readers : nullptr);
  };
  std::vector<StreamRow> rows;
  if (!st.paths.empty()) {
    for (auto& e : st.entries) {
      detail::update(*e, &st.events, true);
      rows.push_back(detail::sample(*e, &st.events));
    }
    st.started = true;
    readers(rows);
    return rows;
  }

  const std::vector<std::string> paths = list_stream_files(st.dir);
  // Merge the sorted listing with the sorted entries; entries missing from it were removed.
  auto drop = [&st](const detail::FileState& e) {
    if (!e.known || !e.seen.exists) return;  // already reported
    StreamEvent ev = detail::make_event(StreamEvent::Kind::removed, e);
    ev.before = e.geometry;
    st.events.push_back(std::move(ev));
  };
  std::vector<std::unique_ptr<detail::FileState>> next;
  next.reserve(paths.size());
  auto old = st.entries.begin();
  for (const std::string& path : paths) {
    for (; old != st.entries.end() && (*old)->path < path; ++old) drop(**old);
    if (old != st.entries.end() && (*old)->path == path) {
      next.push_back(std::move(*old));
      ++old;
    } else {
      auto e = std::make_unique<detail::FileState>();
      e->path = path;
      next.push_back(std::move(e));
    }
  }
  for (; old != st.entries.end(); ++old) drop(**old);
  st.entries = std::move(next);

  rows.reserve(st.entries.size());
  for (auto& e : st.entries) {
    const bool fresh = !e->known;
    detail::update(*e, &st.events, false);
    if (!e->seen.exists) continue;  // removed since the listing (reported by update)
    if (fresh && st.started) {
      StreamEvent ev = detail::make_event(StreamEvent::Kind::created, *e);
      detail::set_after(ev, *e);
      st.events.push_back(std::move(ev));
    }
    rows.push_back(detail::sample(*e, &st.events));
  }
  st.started = true;
  readers(rows);
  return rows;
}

// ---- events ----------------------------------------------------------------------------

StreamGeometry geometry_of(const Stream& s) {
  StreamGeometry g;
  g.shape.assign(s.shape().begin(), s.shape().end());
  g.frame_shape.assign(s.frame_shape().begin(), s.frame_shape().end());
  g.dtype = s.dtype();
  g.depth = s.depth();
  return g;
}

std::string format_geometry(const StreamGeometry& g) {
  std::string out = fmt::format("{} {}", format_shape(g.frame_shape), dtype_name(g.dtype));
  if (g.depth > 1) out += fmt::format(", depth {}", g.depth);
  return out;
}

std::string_view event_kind_name(StreamEvent::Kind kind) noexcept {
  switch (kind) {
    case StreamEvent::Kind::created: return "created";
    case StreamEvent::Kind::recreated: return "recreated";
    case StreamEvent::Kind::removed: return "removed";
  }
  return "unknown";
}

std::string event_text(const StreamEvent& e) {
  switch (e.kind) {
    case StreamEvent::Kind::created:
      if (e.after) return fmt::format("stream '{}' created: {}", e.name, format_geometry(*e.after));
      return fmt::format("stream '{}' created, but it does not open: {}", e.name, e.error);
    case StreamEvent::Kind::recreated: {
      const std::string from = e.before ? format_geometry(*e.before) : std::string("an invalid file");
      if (e.after) return fmt::format("stream '{}' re-created: {} -> {}", e.name, from, format_geometry(*e.after));
      return fmt::format("stream '{}' re-created: {} -> a file that does not open: {}", e.name, from, e.error);
    }
    case StreamEvent::Kind::removed:
      return fmt::format("stream '{}' removed{}", e.name, e.waiting ? "; waiting for it to come back" : "");
  }
  return fmt::format("stream '{}': unknown event", e.name);
}

Json event_to_json(const StreamEvent& e) {
  Json j;
  j["event"] = std::string(event_kind_name(e.kind));
  j["time_ns"] = e.time_ns;
  j["name"] = e.name;
  j["path"] = e.path;
  if (e.before) {
    j["old_shape"] = e.before->shape;
    j["old_dtype"] = std::string(dtype_name(e.before->dtype));
    j["old_depth"] = e.before->depth;
  }
  if (e.after) {
    j["new_shape"] = e.after->shape;
    j["new_dtype"] = std::string(dtype_name(e.after->dtype));
    j["new_depth"] = e.after->depth;
  }
  if (!e.error.empty()) {
    j["new_error"] = e.error;
    j["new_error_code"] = std::string(shmlink::strerror(e.error_code));
  }
  if (e.kind == StreamEvent::Kind::removed) j["waiting"] = e.waiting;
  return j;
}

// ---- files and groups ------------------------------------------------------------------

namespace {

/// A buffer size for the reentrant user/group database calls.
std::size_t nss_buffer_size(int name) noexcept {
  const long n = ::sysconf(name);
  return n > 0 ? static_cast<std::size_t>(n) : 4096;
}

/// The name of user `uid`, empty when the user database has none.
std::string user_name(uid_t uid) {
  std::vector<char> buf(nss_buffer_size(_SC_GETPW_R_SIZE_MAX));
  while (true) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    const int rc = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return (rc == 0 && found != nullptr) ? std::string(found->pw_name) : std::string();
  }
}

/// Looks a group up by gid (`name` null) or by name; nullopt when there is no such group.
/// @throws Error system when the group database fails.
std::optional<std::pair<gid_t, std::string>> find_group(const char* name, gid_t gid) {
  std::vector<char> buf(nss_buffer_size(_SC_GETGR_R_SIZE_MAX));
  while (true) {
    struct group gr {};
    struct group* found = nullptr;
    const int rc = name != nullptr ? ::getgrnam_r(name, &gr, buf.data(), buf.size(), &found)
                                   : ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (found != nullptr) return std::make_pair(found->gr_gid, std::string(found->gr_name));
    // getgrnam_r reports "no such group" as 0 or, depending on the NSS module, ENOENT, ESRCH,
    // EBADF or EPERM.
    if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) return std::nullopt;
    throw Error(errc_from_errno(rc), fmt::format("looking up group '{}': {}",
                                                 name != nullptr ? std::string(name) : std::to_string(gid),
                                                 std::strerror(rc)));
  }
}

}  // namespace

std::optional<FileOwner> file_owner(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileOwner o;
  o.mode = st.st_mode & 07777;
  o.uid = st.st_uid;
  o.gid = st.st_gid;
  o.user = user_name(st.st_uid);
  try {
    if (auto g = find_group(nullptr, st.st_gid)) o.group = g->second;
  } catch (const Error&) {
    // No name for the group: the gid alone is shown.
  }
  return o;
}

std::string format_mode(mode_t mode) { return fmt::format("{:04o}", static_cast<unsigned>(mode & 07777)); }

void add_owner_json(Json& j, const FileOwner& owner) {
  j["mode"] = format_mode(owner.mode);
  j["uid"] = owner.uid;
  j["user"] = owner.user.empty() ? Json(nullptr) : Json(owner.user);
  j["gid"] = owner.gid;
  j["group"] = owner.group.empty() ? Json(nullptr) : Json(owner.group);
}

void add_error_json(Json& j, const std::string& error, Errc code) {
  j["error"] = error;
  j["error_code"] = std::string(shmlink::strerror(code));
  j["exit_code"] = exit_code_for(code);
}

gid_t resolve_group(const std::string& text) {
  if (text.empty()) throw Error(Errc::invalid_argument, "--group: empty group name");
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    // (gid_t)-1 means "leave unchanged" to chown(2): not a usable gid.
    if (ec != std::errc() || ptr != text.data() + text.size() || value >= 0xFFFFFFFFu) {
      throw Error(Errc::invalid_argument, fmt::format("--group: gid '{}' is out of range", text));
    }
    return static_cast<gid_t>(value);
  }
  if (auto g = find_group(text.c_str(), 0)) return g->first;
  throw Error(Errc::invalid_argument, fmt::format("--group: no group named '{}' (see `getent group`)", text));
}

Json row_to_json(const StreamRow& row) {
  Json j;
  j["name"] = row.name;
  j["kind"] = std::string(channel_kind_name(ChannelKind::stream));
  j["path"] = row.path;
  if (!row.info) {
    add_error_json(j, row.error, row.error_code);
    return j;
  }
  const StreamInfo& info = *row.info;
  // "name" is the file's own name; the one stored in the file may differ (a copied or forged file).
  j["stored_name"] = info.name;
  j["name_differs"] = info.name != row.name;
  j["shape"] = info.shape;
  j["dtype"] = std::string(dtype_name(info.dtype));
  j["depth"] = info.depth;
  j["cnt0"] = info.frame.cnt0;
  if (row.rate_hz) {
    j["rate_hz"] = *row.rate_hz;
  } else {
    j["rate_hz"] = nullptr;
  }
  const std::int32_t wpid = writer_pid(info);
  j["writer_pid"] = wpid;
  j["writer_alive"] = pid_alive(wpid);
  add_readers_json(j, row.readers, row.readers_uninspectable);
  j["semaphores"] = info.semaphores;
  j["sem_values"] = info.sem_values;
  j["write_flag"] = info.write_flag;
  j["atime_ns"] = info.frame.atime_ns;
  return j;
}

// ---- output ----------------------------------------------------------------------------

std::string Table::render(bool colour) const {
  const std::size_t ncol = headers.size();
  // Cells hold names and messages from files: escaped here, once, for every table.
  std::vector<std::vector<std::string>> texts(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (const Cell& cell : rows[r]) texts[r].push_back(shown_message(cell.text));
  }
  std::vector<std::size_t> width(ncol, 0);
  for (std::size_t c = 0; c < ncol; ++c) width[c] = headers[c].size();
  for (const auto& row : texts) {
    for (std::size_t c = 0; c < ncol && c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  auto emit = [&](std::string& out, std::size_t c, const std::string& text, const char* sgr) {
    const bool right = c < right_aligned.size() && right_aligned[c];
    const bool last = c + 1 == ncol;
    const std::size_t pad = width[c] - std::min(width[c], text.size());
    std::string cell;
    if (right) cell.append(pad, ' ');
    cell += text;
    if (colour && sgr != nullptr) cell = fmt::format("\x1b[{}m{}\x1b[0m", sgr, cell);
    out += cell;
    if (!right && !last) out.append(pad, ' ');
    if (!last) out += "  ";
  };
  std::string out;
  for (std::size_t c = 0; c < ncol; ++c) emit(out, c, headers[c], colour ? "1" : nullptr);
  out += '\n';
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    for (std::size_t c = 0; c < ncol; ++c) {
      if (c < row.size()) {
        emit(out, c, texts[r][c], row[c].colour);
      } else {
        emit(out, c, "", nullptr);
      }
    }
    // Drop trailing blanks left by empty last cells.
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

bool is_tty(int fd) noexcept { return ::isatty(fd) == 1; }

bool colour_enabled(int fd) noexcept {
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour != nullptr && no_colour[0] != '\0') return false;
  return is_tty(fd);
}

std::string format_time_ns(std::int64_t ns) {
  if (ns == 0) return "-";
  std::int64_t sec = ns / 1'000'000'000;
  std::int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    sec -= 1;
  }
  const time_t t = static_cast<time_t>(sec);
  struct tm tm {};
  if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(ns);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:09d}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

std::string format_rate(std::optional<double> hz) {
  if (!hz) return "-";
  if (*hz == 0.0) return "0";
  if (*hz >= 100.0) return fmt::format("{:.0f}", *hz);
  return fmt::format("{:.1f}", *hz);
}

void print_json(const Json& j) { std::cout << json_text(j) << '\n' << std::flush; }

bool sleep_while(std::chrono::nanoseconds duration, const std::function<bool()>& keep_running) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + duration;
  constexpr auto kStep = std::chrono::milliseconds(20);
  while (true) {
    if (keep_running && !keep_running()) return false;
    const auto now = clock::now();
    if (now >= deadline) return true;
    std::this_thread::sleep_for(std::min<clock::duration>(deadline - now, kStep));
  }
}

std::string shown_message(std::string_view text) {
  std::string safe;
  for (std::size_t pos = 0;;) {
    const std::size_t slash = text.find('\\', pos);
    safe += shown(text.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
    if (slash == std::string_view::npos) break;
    safe += '\\';
    pos = slash + 1;
  }
  return safe;
}

int report_error(const Error& e) {
  spdlog::error("{}", shown_message(e.what()));
  return exit_code_for(e.errc());
}

}  // namespace shmlink::cli

// ---- queues ----------------------------------------------------------------------------

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

bool is_stream_file_name(std::string_view path) noexcept {
  return path.size() > kSuffix.size() && ends_with(path, kSuffix);
}

bool is_queue_file_name(std::string_view path) noexcept {
  return path.size() > kQueueSuffix.size() && ends_with(path, kQueueSuffix);
}

std::string resolve_queue(const std::string& name, const std::string& dir) {
  if (name.empty()) throw Error(Errc::invalid_argument, "queue name is empty");
  if (name.find('/') != std::string::npos) return shmlink::queue_path(name);
  // queue_path() drops a trailing ".queue.shm" and checks the length of the bare name.
  const std::string in_default_dir = shmlink::queue_path(name);
  if (dir.empty()) return in_default_dir;
  return dir + "/" + std::filesystem::path(in_default_dir).filename().string();
}

std::vector<std::string> list_queue_files(const std::string& dir) { return list_files_with_suffix(dir, kQueueSuffix); }

std::string queue_display_name(const std::string& path) {
  std::string base = std::filesystem::path(path).filename().string();
  if (is_queue_file_name(base)) base.resize(base.size() - kQueueSuffix.size());
  return base;
}

ResolvedChannel resolve_channel(const std::string& name, const std::string& dir, bool force_queue) {
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
    require_regular_file(path, "queue");
    std::optional<QueueInfo> info;
    bool faulted = false;
    {
      // Every address: the mapping is not known before open() returns (as FileState::open).
      detail::MappingGuard guard(0, std::numeric_limits<std::uintptr_t>::max());
      const Queue q = Queue::open(path, QueueExpect{.writable = false});
      info = q.info();
      faulted = guard.faulted();
    }
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

villas::RegionInfo inspect_villas_file(const std::string& path) {
  require_regular_file(path, "VILLAS region");
  return villas::inspect_file(path);  // pread, never mapped: a file that shrinks cannot raise SIGBUS
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
  j["closed"] = info.closed;
  j["signal_count"] = info.signals.size();
  j["creator_pid"] = info.creator_pid;
  j["creator_alive"] = pid_alive(info.creator_pid);
  j["consumer_pid"] = info.consumer_pid;
  j["creation_time_ns"] = info.creation_time_ns;
  return j;
}

// ---- memif status files ---------------------------------------------------------------

namespace {
constexpr std::string_view kMemifSuffix = ".memif.shm";
}  // namespace

bool is_memif_status_file_name(std::string_view path) noexcept {
  return path.size() > kMemifSuffix.size() && ends_with(path, kMemifSuffix);
}

std::vector<std::string> list_memif_status_files(const std::string& dir) {
  return list_files_with_suffix(dir, kMemifSuffix);
}

memif::SocketStatus inspect_memif_status(const std::string& path) {
  memif::SocketStatus s;
  try {
    bool faulted = false;
    {
      // Every address: the mapping is made inside read_socket_status (as inspect_queue).
      detail::MappingGuard guard(0, std::numeric_limits<std::uintptr_t>::max());
      s = memif::read_socket_status(path);
      faulted = guard.faulted();
    }
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
  std::vector<memif::SocketStatus> out;
  for (const std::string& path : list_memif_status_files(dir)) {
    memif::SocketStatus s = inspect_memif_status(path);
    if (!s.error.empty() && s.error_code == Errc::not_found) continue;  // its socket closed meanwhile
    out.push_back(std::move(s));
  }
  return out;
}

std::string_view memif_role_name(memif::Role role) noexcept {
  return role == memif::Role::master ? "master" : "slave";
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
  j["role"] = std::string(memif_role_name(s.role));
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
  j["role"] = s.role ? Json(std::string(memif_role_name(*s.role))) : Json(nullptr);
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

namespace shmlink::cli {

void require_regular_file(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    // Absent or not inspectable: the open that follows reports it in its own words.
    if (errno == ENOENT || errno == EACCES || errno == ENOTDIR) return;
    const int err = errno;
    throw Error(errc_from_errno(err), fmt::format("inspecting {} file {}: {}", what, shown(path), std::strerror(err)));
  }
  if (S_ISREG(st.st_mode)) return;
  throw Error(Errc::layout, fmt::format("{} file {} is {}{}, not a regular file; left alone", what, shown(path),
                                        shmlink::file_type_name(st.st_mode),
                                        S_ISLNK(st.st_mode) ? " (links to channel files are not followed)" : ""));
}

Stream open_for_inspection(const std::string& path) {
  require_regular_file(path, "stream");
  auto open = [&path]() -> Stream {
    try {
      return Stream::open(path);
    } catch (const Error& e) {
      if (e.errc() != Errc::permission) throw;
      OpenOptions ro;
      ro.writable = false;
      return Stream::open(path, ro);
    }
  };
  std::optional<Stream> s;
  bool faulted = false;
  {
    // Every address: the mapping is not known before open() returns.
    detail::MappingGuard guard(0, std::numeric_limits<std::uintptr_t>::max());
    s.emplace(open());
    faulted = guard.faulted();
  }
  if (faulted) {
    throw Error(Errc::layout, fmt::format("stream file {} shrank while it was opened (truncated or re-created in "
                                          "place)",
                                          shown(path)));
  }
  return std::move(*s);
}

std::string shown(std::string_view name) { return shmlink::escape_name(name); }

std::string json_text(const Json& j, int indent) { return j.dump(indent, ' ', false, Json::error_handler_t::replace); }

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  double unit = 1.0;
  switch (text.back()) {
    case 's': unit = 1.0; text.remove_suffix(1); break;
    case 'm': unit = 60.0; text.remove_suffix(1); break;
    case 'h': unit = 3600.0; text.remove_suffix(1); break;
    case 'd': unit = 86400.0; text.remove_suffix(1); break;
    default: break;
  }
  if (text.empty() || text.front() == '-' || text.front() == '+') return std::nullopt;
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value) || value < 0) return std::nullopt;
  const double ns = value * unit * 1e9;
  if (ns > 1e18) return std::nullopt;  // about 31 years: beyond any age a file can have
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!parse_duration(value)) {
          return fmt::format("'{}' is not a duration (a number and a unit: 0s, 90s, 10m, 2h, 1.5d)", value);
        }
        return {};
      },
      "DURATION");
}

}  // namespace shmlink::cli
