// SPDX-License-Identifier: MIT
/// @file common.hpp
/// @brief Helpers shared by the `shmlink` subcommands: exit codes, argument parsing (shape,
/// dtype, permissions), stream discovery and sampling, pid liveness, tables, times and JSON.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/memif.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>
#include <shmlink/villas.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

/// JSON object type used for all output (keys keep their insertion order).
using Json = nlohmann::ordered_json;

/// Version of the JSON documents the CLI prints (`schema_version` key).
inline constexpr int kSchemaVersion = 1;

/// Process exit codes (documented in `--help` and docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,          ///< success
  kExitFailure = 1,     ///< any other failure (exists, no space, torn read, I/O error)
  kExitUsage = 2,       ///< bad command line (unknown option, bad shape/dtype, name too long)
  kExitNotFound = 3,    ///< the stream or directory does not exist
  kExitPermission = 4,  ///< the OS refused access
  kExitLayout = 5,      ///< the file is not a valid ImageStreamIO 2.00 stream
  kExitTimeout = 124,   ///< a wait reached its deadline (as timeout(1))
  kExitInterrupted = 130,  ///< `bench stream` stopped by SIGINT/SIGTERM after printing what was done (128 + SIGINT)
};

/// The exit code for a library error condition.
int exit_code_for(Errc e) noexcept;

/// The exit-code table shown in the footer of the top-level `--help` (only there) and docs/cli.md.
std::string exit_code_help();

/// What the top-level `--help` says shmlink is: the channel kinds and where they live.
std::string program_description();

/// The one-line footer of every subcommand's `--help`: where the exit codes are described.
std::string subcommand_footer();

/// A parsed subcommand: the CLI11 sub-app and the function that runs it after parsing.
struct Command {
  CLI::App* app = nullptr;          ///< the subcommand (owned by the parent App)
  std::function<int()> run;          ///< runs the command; returns the exit code
};

/// Registers `ls`. @return the subcommand and its runner.
Command add_ls_command(CLI::App& app);
/// Registers `info`.
Command add_info_command(CLI::App& app);
/// Registers `create`.
Command add_create_command(CLI::App& app);
/// Registers `rm`.
Command add_rm_command(CLI::App& app);
/// Registers `monitor`.
Command add_monitor_command(CLI::App& app);
/// Registers `cat`.
Command add_cat_command(CLI::App& app);
/// Registers `gc`.
Command add_gc_command(CLI::App& app);
/// Registers `bench` (`bench stream`: docs/bench.md).
Command add_bench_command(CLI::App& app);
/// Registers `memif` (`memif responder`, `memif ping`: docs/cli.md).
Command add_memif_command(CLI::App& app);

// ---- argument parsing ------------------------------------------------------------------

/// Parses a shape in ISIO order, fastest axis first: "W", "WxH" or "WxHxD" (also 'X' or ','
/// as separators); each axis 1..2^32-1. @return nullopt and sets `why` when malformed.
std::optional<std::vector<std::uint32_t>> parse_shape(std::string_view text, std::string* why = nullptr);

/// Formats a shape as "WxHxD" (ISIO order).
std::string format_shape(const std::vector<std::uint32_t>& shape);

/// Parses permission bits written in octal ("0660", "660"); at most 07777.
std::optional<mode_t> parse_permissions(std::string_view text) noexcept;

/// CLI11 validator accepting what parse_shape() accepts.
CLI::Validator shape_validator();
/// CLI11 validator accepting what shmlink::parse_dtype() accepts.
CLI::Validator dtype_validator();
/// CLI11 validator accepting what parse_permissions() accepts.
CLI::Validator permissions_validator();
/// CLI11 validator for a duration in seconds: a finite number in [min_s, max_s].
CLI::Validator seconds_validator(double min_s, double max_s);

// ---- streams ---------------------------------------------------------------------------

/// The file of stream `name`: a name containing '/' is a path used as given; otherwise
/// `<dir>/<name>.im.shm` when `dir` is non-empty, else shmlink::stream_path(name).
/// @throws Error invalid_argument (empty name), name_too_long (> 79 bytes).
std::string resolve_stream(const std::string& name, const std::string& dir);

/// Opens a stream for inspection: read-write when allowed, else read-only (another user's 0644
/// stream), so ls/info/cat/monitor work on streams they may not write. The path is first checked
/// with require_regular_file() (a FIFO, socket, device or symbolic link is refused at once instead
/// of blocking the open), and the open runs under the SIGBUS guard (guarded_read()).
/// @throws Error layout for a non-regular file or a file that shrank while it was validated; the
///         open's own errors otherwise.
shmlink::Stream open_for_inspection(const std::string& path);

/// Refuses what is not a regular file at `path` without opening it (lstat(2): never blocks, never
/// follows a link): a FIFO, socket, device, directory or symbolic link named like a channel file
/// (any local user may put one in the stream directory) gives Errc::layout with a message naming
/// the file, its kind (`what`: "stream", "queue", ...) and what it is instead.
/// @throws Error layout as above; not_found, permission, system from lstat(2), naming the file.
void require_regular_file(const std::string& path, std::string_view what);

/// Runs `read` (reads of the mapping of `s`) under a SIGBUS guard: should the file shrink under the
/// mapping (truncated in place, as DAO's re-creation does), the faulting reads see zeros instead
/// of killing the process, and this throws afterwards. Also throws when the file at the stream's
/// path was truncated or re-sized in place (its size is no longer the mapping's), so a caller never
/// trusts bytes read from such a mapping. Every CLI read of a stream mapping goes through here.
/// @throws Error layout naming the file: "stream file X shrank while it was read (truncated or
///         re-created in place)"; whatever `read` throws.
void guarded_read(const Stream& s, const std::function<void()>& read);

/// Stream::wait_futex for the CLI: waits until cnt0 differs from `last` or `timeout` passes, in
/// slices of at most 100 ms each run through guarded_read(), so a file truncated in place while we
/// wait ends the wait with an error (not SIGBUS), and a stream re-created under a new inode
/// (renamed over the path) ends it with Errc::replaced. EINTR is retried.
/// @return ok when a new frame came; timeout when `timeout` passed (kForever: never).
/// @throws Error layout (truncated in place) or replaced (re-created), naming the file.
Status wait_for_new_frame(const Stream& s, std::uint64_t last, std::chrono::nanoseconds timeout);

/// A channel name (or any text from a file or the command line) as it is printed: terminal control
/// characters, newlines and bytes that are not UTF-8 shown as escapes (shmlink::escape_name()), so
/// a hostile name can neither drive the terminal nor forge output lines.
std::string shown(std::string_view name);

/// A message as it is printed: like shown(), but backslashes are kept as they are, because
/// messages from the library already show names escaped (a second pass would double them).
/// Used for error messages and for table cells, which mix names and messages.
std::string shown_message(std::string_view text);

/// The directory to scan: `dir` when non-empty, else shmlink::stream_directory().
std::string resolve_directory(const std::string& dir);

/// Paths of the `*.im.shm` entries (files or links) in `dir`, sorted by name.
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_stream_files(const std::string& dir);

/// The stream name shown for a file path (basename without ".im.shm").
std::string display_name(const std::string& path);

/// True when process `pid` exists (kill(pid, 0) succeeds or fails with EPERM); false for
/// pid <= 0 or ESRCH.
bool pid_alive(std::int32_t pid) noexcept;

/// The writer of a stream: the last slot's semWritePID that is not -1/0, else creatorPID.
std::int32_t writer_pid(const StreamInfo& info) noexcept;

/// A process reading a stream, and how it waits as far as the file tells.
struct StreamReader {
  std::int32_t pid = 0;  ///< the process
  int semaphore = -1;    ///< the semaphore slot it holds (its pid in semReadPID), -1 when none
};

/// How a reader waits: "semaphore N" when it holds slot N; else "mapped" (it has the stream
/// mapped or open; whether it waits by futex, spins or only looks is not recorded per process).
std::string reader_wait_text(const StreamReader& r);

/// The readers of a stream: every live process holding one of its semaphore slots, and every
/// other process in `holders` (those with the file mapped or open: processes_using()) except the
/// writer (writer_pid()) and this process. A slot's pid that is not among `holders` although its
/// /proc entries can be read (an unrelated process that reuses the pid of a reader that died
/// without releasing its slot) is left out. Ascending pid.
std::vector<StreamReader> stream_readers(const StreamInfo& info, const std::vector<int>& holders);

/// Readers as text: "123 (semaphore 0), 456 (mapped)"; "-" when none.
std::string readers_text(const std::vector<StreamReader>& readers);

/// Adds "readers" (count), "reader_pids" and "reader_waits" ([{"pid", "wait": "semaphore" or
/// "mapped", "semaphore": N or null}]) to a JSON object, and "readers_uninspectable" (processes
/// whose /proc entries could not be read, so they may be readers too).
void add_readers_json(Json& j, const std::vector<StreamReader>& readers, int uninspectable);

/// One row of `ls`/`monitor`: a stream's metadata and its measured update rate, or the error
/// that kept the file from opening.
struct StreamRow {
  std::string path;                ///< file path
  std::string name;                ///< the file's own name (display_name(path)); info->name is the stored one
  std::optional<StreamInfo> info;  ///< metadata when the file opened and validated
  std::optional<double> rate_hz;   ///< cnt0 delta / seconds, when measured
  std::string error;               ///< the open error's message, when it failed
  Errc error_code = Errc::ok;      ///< the open error's condition
  std::vector<StreamReader> readers;  ///< its readers (stream_readers()), when info is set
  int readers_uninspectable = 0;      ///< processes the /proc scan could not inspect
};

/// Orders of stream rows in `ls` and `monitor`.
enum class RowOrder {
  name,     ///< by stream name, byte order ("wfs" before "wfs-frames")
  rate,     ///< highest update rate first (unknown rates and failed files last), then by name
  cnt0,     ///< most frames written first, then by name
  readers,  ///< most readers first, then by name
};

/// The names `--sort` accepts, in RowOrder order: "name", "rate", "cnt0", "readers".
const std::vector<std::string>& row_order_names();

/// The RowOrder named `name` (one of row_order_names()); name for anything else.
RowOrder row_order_from_name(std::string_view name) noexcept;

/// Sorts `rows` stably in `order`; ties and rows without metadata go by name.
void sort_rows(std::vector<StreamRow>& rows, RowOrder order);

/// How long `monitor` reuses a /proc scan (ReaderCache): reading /proc/PID/maps takes the
/// target's mmap_lock, which a real-time loop feels, so a monitor refreshing every 10 ms must
/// not scan every process 100 times a second.
inline constexpr std::chrono::seconds kReaderScanMaxAge{2};

/// The result of the last /proc scan of a StreamWatcher (find_readers()), reused while it is
/// younger than kReaderScanMaxAge, no stream file appeared and no semaphore slot changed hands.
struct ReaderCache {
  bool valid = false;                                   ///< a scan was made
  std::chrono::steady_clock::time_point when;           ///< when it was made
  std::vector<std::string> paths;                       ///< files scanned, in row order
  std::vector<std::uint64_t> inodes;                    ///< their inodes then
  std::vector<std::vector<std::int32_t>> claimants;     ///< their semReadPID arrays then
  std::vector<std::vector<int>> holders;                ///< their holders (processes_using_each())
  int uninspectable = 0;                                ///< processes the scan could not inspect
};

/// How a refresh of StreamSampler or StreamWatcher finds readers.
enum class ReaderScan {
  none,    ///< not at all (a first sample whose rows are only a starting point for rates)
  fresh,   ///< one /proc scan now
  cached,  ///< the watcher's ReaderCache while valid, else a fresh scan that refills it
};

/// Fills `readers` and `readers_uninspectable` of every row that has metadata, with one scan of
/// /proc for all of them (processes_using_each()); with `cache`, reuses its scan instead while
/// it is younger than kReaderScanMaxAge and covers the same files (same inodes, same semaphore
/// claimants), and stores a new scan in it otherwise.
void find_readers(std::vector<StreamRow>& rows, ReaderCache* cache = nullptr);

/// Keeps streams of one directory open between refreshes and measures their update rates
/// from cnt0 deltas over steady-clock time, as milk's streamCTRL does. Files that appear are
/// opened, files that vanish are dropped, a file whose inode changed (re-created stream) is
/// re-opened, and files that fail to open are retried on every refresh.
class StreamSampler {
 public:
  /// @param dir the directory to scan (already resolved).
  explicit StreamSampler(std::string dir);
  StreamSampler(StreamSampler&&) noexcept;
  StreamSampler& operator=(StreamSampler&&) noexcept;
  ~StreamSampler();

  /// Rescans the directory and samples every stream. Rates cover the time since the
  /// previous refresh, so the first refresh has none. `scan`: whether to look for readers
  /// (ReaderScan::cached scans like fresh: a sampler keeps no cache).
  /// @throws Error when the directory cannot be listed.
  std::vector<StreamRow> refresh(ReaderScan scan = ReaderScan::fresh);

  /// The directory scanned.
  [[nodiscard]] const std::string& directory() const noexcept { return dir_; }

 private:
  struct Entry;
  std::string dir_;
  std::vector<std::unique_ptr<Entry>> entries_;  // sorted by path
};

/// The JSON form of one row (shared by `ls --json` and `monitor --json`).
Json row_to_json(const StreamRow& row);

// ---- queues ----------------------------------------------------------------------------

/// The kinds of file `ls` handles (`gc` handles the first three, in the stream directory).
enum class ChannelKind {
  stream,  ///< `<name>.im.shm`, an ImageStreamIO 2.00 stream
  queue,   ///< `<name>.queue.shm`, a shmlink sample queue (include/shmlink/queue.hpp)
  memif,   ///< `<pid>-<k>.memif.shm`, the status file of a memif socket (memif::read_socket_status)
  villas,  ///< `/dev/shm/<name>`, a VILLASnode v1.x shmem region (include/shmlink/villas.hpp)
};

/// The kind's name in text and JSON ("stream", "queue", "memif", "villas").
std::string_view channel_kind_name(ChannelKind kind) noexcept;

// The name of a queue kind: shmlink::queue_kind_name() (include/shmlink/queue.hpp).

/// The name of a wait mode ("polling", "futex", "hybrid").
std::string_view wait_mode_name(WaitMode mode) noexcept;

/// True when `path` ends in ".im.shm" (a stream file name).
bool is_stream_file_name(std::string_view path) noexcept;

/// True when `path` ends in ".queue.shm" (a queue file name).
bool is_queue_file_name(std::string_view path) noexcept;

/// The file of queue `name`: a name containing '/' is a path used as given; otherwise
/// `<dir>/<name>.queue.shm` when `dir` is non-empty, else shmlink::queue_path(name). A trailing
/// ".queue.shm" in a bare name is accepted and dropped, as `ls /dev/shm` shows the files.
/// @throws Error invalid_argument (empty name), name_too_long (> 79 bytes), naming the queue.
std::string resolve_queue(const std::string& name, const std::string& dir);

/// Paths of the `*.queue.shm` entries (files or links) in `dir`, sorted by name.
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_queue_files(const std::string& dir);

/// The queue name shown for a file path (basename without ".queue.shm").
std::string queue_display_name(const std::string& path);

/// What a NAME given to `info` or `rm` means.
struct ResolvedChannel {
  ChannelKind kind = ChannelKind::stream;  ///< the channel chosen
  std::string path;                        ///< its file
  /// When a stream was chosen by default and a queue of the same name exists too: that
  /// queue's file (reach it with `--queue`).
  std::optional<std::string> other_queue;
};

/// Resolves NAME for `info` and `rm`. A queue when `force_queue` (`--queue`) is set or NAME ends
/// in ".queue.shm"; a stream when NAME ends in ".im.shm" or contains '/' (a path used as given).
/// Otherwise the stream `<dir>/<NAME>.im.shm` when that file exists (reporting a queue of the
/// same name in `other_queue`), else the queue `<dir>/<NAME>.queue.shm` when that one exists.
/// A file whose existence cannot be decided (EACCES on the directory) counts as existing, so
/// the open that follows reports the real error.
/// @throws Error not_found naming both files when neither exists; invalid_argument /
///         name_too_long for a bad name.
ResolvedChannel resolve_channel(const std::string& name, const std::string& dir, bool force_queue);

/// One queue row of `ls`: a queue's header snapshot, or the error that kept the file from
/// opening.
struct QueueRow {
  std::string path;               ///< file path
  std::string name;               ///< display name (the file name without ".queue.shm")
  std::optional<QueueInfo> info;  ///< header snapshot when the file opened and validated
  std::string error;              ///< the open error's message, when it failed
  Errc error_code = Errc::ok;     ///< the open error's condition
};

/// Opens the queue file `path`, takes its header snapshot and closes it again. The open and the
/// reads run under the same SIGBUS guard as stream sampling, so a file truncated meanwhile gives
/// a row with an error instead of killing the process. Never throws for a bad file: failures go
/// to the row's `error` and `error_code`.
QueueRow inspect_queue(const std::string& path);

/// Samples stored in a queue now: `pushed - popped`, clamped to 0 .. capacity (the counters
/// are read one after the other while others may push and pop).
std::uint64_t queue_size(const QueueInfo& info) noexcept;

/// The JSON form of one queue row in `ls --json`: {"name", "kind": "queue", "path",
/// "queue_kind", "wait_mode", "capacity", "max_values", "cell_bytes", "file_bytes", "size",
/// "pushed", "popped", "closed", "signal_count", "creator_pid", "creator_alive",
/// "creation_time_ns"}, or {"name", "kind", "path", "error", "error_code", "exit_code"}.
Json queue_row_to_json(const QueueRow& row);

/// The JSON form of a queue's signal table: [{"index", "name", "type", "unit"}, ...].
Json signals_to_json(const std::vector<Signal>& signals);

// ---- memif status files ---------------------------------------------------------------

/// True when `path` ends in ".memif.shm" (a memif status file name).
bool is_memif_status_file_name(std::string_view path) noexcept;

/// Paths of the `*.memif.shm` entries in `dir`, sorted by name.
/// @throws Error not_found / permission / system naming the directory.
std::vector<std::string> list_memif_status_files(const std::string& dir);

/// Reads one memif status file (memif::read_socket_status) under the same SIGBUS guard as
/// inspect_queue(). Never throws for a bad file: failures go to the result's `error` and
/// `error_code`.
memif::SocketStatus inspect_memif_status(const std::string& path);

/// Every memif status file of `dir` through inspect_memif_status(), sorted by file name; files
/// removed between the listing and the read are skipped.
/// @throws Error when the directory cannot be listed.
std::vector<memif::SocketStatus> list_memif_status(const std::string& dir);

/// "master" / "slave".
std::string_view memif_role_name(memif::Role role) noexcept;

/// "ethernet" / "ip" / "punt-inject".
std::string_view memif_mode_name(memif::InterfaceMode mode) noexcept;

/// The JSON form of one published interface: {"id", "role", "name", "mode", "state",
/// "peer_name", "peer_app", "last_disconnect", "connects", "tx_queues", "rx_queues",
/// "ring_size", "buffer_size", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes",
/// "bad_descriptors", "dropped_packets", "clamped_jumps", "ring_full", "interrupts_sent",
/// "updated_ns", "torn"}.
Json memif_interface_to_json(const memif::InterfaceStatus& s);

/// The JSON form of one status file (`ls --json` "memif" rows, `info --memif`): {"socket",
/// "kind": "memif", "file", "pid", "alive", "start_time_ticks", "app_name", "role" (null before
/// the first interface), "created_ns", "overflow", "interfaces": [...]}, or {"socket": null,
/// "kind", "file", "error", "error_code", "exit_code"} for a file that could not be read.
Json memif_socket_to_json(const memif::SocketStatus& s);

// ---- VILLASnode shmem regions ----------------------------------------------------------

/// Where VILLASnode's `shmem` node puts its regions and rendezvous semaphores (shm_open(3) and
/// sem_open(3) objects), whatever the stream directory is.
inline constexpr std::string_view kVillasShmDir = "/dev/shm";

/// One VILLAS region row of `ls`: the region's summary (shmlink::villas::inspect()) or the
/// error that kept it from being summarised, and who holds it.
struct VillasRow {
  std::string path;  ///< the file, `/dev/shm/<name>`
  std::string name;  ///< the shm name as VILLASnode's `out.name` / `in.name` spell it: "/<name>"
  std::optional<villas::RegionInfo> info;  ///< the summary, when inspect() accepted the bytes read
  std::string error;                       ///< why not, otherwise
  Errc error_code = Errc::ok;              ///< that error's condition
  /// Processes that have the region mapped or open (processes_using_each(), this one excepted):
  /// its owner (the writer) and, once attached, the peer that reads it. None: stale.
  std::vector<int> holders;
  int holders_uninspectable = 0;  ///< processes whose /proc entries could not be read
  /// Some of those may hold the region: they are uninspectable, we are not root and the region
  /// is another user's (its owner's processes, of our uid, are visible to us, as the library's
  /// villas liveness assumes too).
  bool holders_may_be_hidden = false;
  /// `/dev/shm/sem.<name>` exists: the rendezvous semaphore of this region, which a side
  /// removes once both sides are connected. With holders: a side waits for its peer; without:
  /// left behind by a killed side.
  bool semaphore = false;
  std::string semaphore_path;          ///< `sem.<name>` next to the region (whether or not it exists)
  std::vector<int> semaphore_holders;  ///< processes that have that semaphore mapped or open
};

/// The file of a VILLAS region NAME: "/x" or "x" is `/dev/shm/x` (VILLASnode's name, with or
/// without its leading '/'); a NAME with another '/' is a path used as given.
/// @throws Error invalid_argument for an empty name or "/".
std::string resolve_villas(const std::string& name);

/// Reads at most `max_bytes` from the start of the regular file `path` with pread(2) (lstat(2)
/// first: anything but a regular file is not opened; then opened O_RDONLY | O_NOFOLLOW |
/// O_NONBLOCK, O_NOATIME when allowed; never mapped, never written, no lock taken) and returns
/// them (fewer when the file is shorter), with the file's size in `*file_size`.
/// @return nullopt when the file cannot be opened, is not a regular file, or cannot be read.
std::optional<std::vector<std::byte>> read_file_head(const std::string& path, std::uint64_t max_bytes,
                                                     std::uint64_t* file_size);

/// Every regular file directly in `/dev/shm` (any name) whose first 1024 bytes
/// villas::looks_like_region() accepts, as rows sorted by name: only those first bytes are read
/// (read_file_head(); never mapped, whatever the file's size) and summarised by
/// villas::inspect() of the header, then one /proc scan for the holders of every region and of its
/// `sem.<name>`. Files that cannot be read (another user's 0600 region) are left out: nothing
/// says they are regions.
/// No rows (and a debug log) when /dev/shm is missing or may not be listed.
/// @throws Error when listing /dev/shm fails otherwise (an I/O error).
std::vector<VillasRow> list_villas_regions();

/// Fills `holders`, `holders_uninspectable`, `semaphore`, `semaphore_path` and
/// `semaphore_holders` of every row with one /proc scan (processes_using_each()) for the regions
/// and their `sem.<name>` files (the file next to the region).
void find_villas_holders(std::vector<VillasRow>& rows);

/// villas::inspect_file() of the file `path` (read with pread(2), never mapped, so a region
/// truncated meanwhile gives an error, not SIGBUS), after require_regular_file() (a FIFO, device
/// or link is refused without being opened).
/// @throws Error as villas::inspect_file(); layout when the file is not a regular file or shrank
///         while it was read.
villas::RegionInfo inspect_villas_file(const std::string& path);

/// Whether the region of `row` is stale: false when it has holders, true when it has none and
/// no holder can be hidden from us, nullopt (unknown) when it has none but some processes could
/// not be inspected that may hold it (`holders_may_be_hidden`: the region may be live).
std::optional<bool> villas_stale(const VillasRow& row) noexcept;

/// "pthread" or "polling".
std::string_view villas_mode_name(const villas::RegionInfo& info) noexcept;

/// The liveness of a region as text: "4242, 4343" (the holders), "none (stale)" (no holder and
/// every process inspected), or "unknown (N processes not inspectable)" (no holder seen, but
/// some processes' /proc could not be read: villas_stale() is nullopt).
std::string villas_holders_text(const VillasRow& row);

/// What the rendezvous semaphore says, as text: "-" (none), "rendezvous pending" (it exists and
/// the region is held), "left behind" (it exists, the region is stale), "holders unknown" (it
/// exists, and whether the region is held could not be seen).
std::string villas_semaphore_text(const VillasRow& row);

/// Adds a region summary to a JSON object: "region_mode" ("mode" is the file's permission bits in
/// `info`), "stopped", "queued", "queue_cells",
/// "free_blocks", "pool_blocks", "block_size", "sample_capacity", "file_bytes".
void add_villas_info_json(Json& j, const villas::RegionInfo& info);

/// Adds a row's holders and semaphore to a JSON object: "holders" (count), "holder_pids",
/// "holders_uninspectable", "stale" (no holder), "semaphore" (it exists), "semaphore_path",
/// "semaphore_holder_pids".
void add_villas_holders_json(Json& j, const VillasRow& row);

/// The JSON form of one VILLAS row of `ls --json`: {"name", "kind": "villas", "path", the keys of
/// add_villas_info_json(), "holders", "holder_pids", "holders_uninspectable", "stale",
/// "semaphore", "semaphore_path", "semaphore_holder_pids"}; a region that could not be
/// summarised has "error", "error_code" and "exit_code" instead of add_villas_info_json()'s keys.
Json villas_row_to_json(const VillasRow& row);

/// The fields of a row that could not be read: "error" (message), "error_code" (the condition's
/// name) and "exit_code".
void add_error_json(Json& j, const std::string& error, Errc code);

// ---- output ----------------------------------------------------------------------------

/// One table cell: text and an optional ANSI SGR colour code ("32" = green) applied after
/// padding so alignment is unaffected.
struct Cell {
  std::string text;     ///< the visible text
  const char* colour = nullptr;  ///< SGR parameters, or nullptr for none
};

/// A plain text table with a header row; numeric columns can be right-aligned.
struct Table {
  std::vector<std::string> headers;  ///< column titles
  std::vector<bool> right_aligned;   ///< per column; missing entries mean left-aligned
  std::vector<std::vector<Cell>> rows;  ///< cells, one vector per row

  /// Renders the table, two spaces between columns; colours only when `colour` is true. Cell
  /// texts are escaped (shown_message()): control characters and non-UTF-8 bytes cannot reach the
  /// terminal.
  [[nodiscard]] std::string render(bool colour) const;
};

/// True when `fd` is a terminal.
bool is_tty(int fd) noexcept;

/// True when colour output is wanted on `fd`: a terminal and NO_COLOR unset (or empty).
bool colour_enabled(int fd) noexcept;

/// Formats ns since the epoch as ISO 8601 UTC with nanoseconds ("2024-05-01T12:00:00.000000001Z");
/// "-" for 0.
std::string format_time_ns(std::int64_t ns);

/// Formats an update rate for tables ("1234.5", "0", "-" when unknown).
std::string format_rate(std::optional<double> hz);

/// A JSON document as text (`indent` as nlohmann's dump(): -1 for one line). Never throws for the
/// text in it: bytes that are not UTF-8 (names are bytes in files) become U+FFFD, so a document
/// describes work already done even when a name holds such bytes; names are otherwise kept as
/// they are (JSON escapes control characters itself).
std::string json_text(const Json& j, int indent = 2);

/// Prints a JSON document (json_text(), 2-space indent) and a newline on stdout.
void print_json(const Json& j);

/// Sleeps `duration`, in short steps, returning early (false) when `keep_running` says so.
bool sleep_while(std::chrono::nanoseconds duration, const std::function<bool()>& keep_running);

/// Logs an error for a failed command on stderr (escaped by shown_message()) and returns its exit
/// code.
int report_error(const Error& e);

/// Parses a duration: a non-negative number followed by a unit, `s`, `m`, `h` or `d` ("0s",
/// "90s", "10m", "2h", "1.5d"); a bare number is seconds. @return nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) noexcept;

/// CLI11 validator accepting what parse_duration() accepts.
CLI::Validator duration_validator();

// ---- files, groups, re-creation events ------------------------------------------------

/// Permission bits and owner of a file, from stat(2).
struct FileOwner {
  mode_t mode = 0;     ///< permission bits (st_mode & 07777)
  uid_t uid = 0;       ///< owner
  gid_t gid = 0;       ///< group
  std::string user;    ///< the owner's name, empty when the user database has none
  std::string group;   ///< the group's name, empty when the group database has none
};

/// The permission bits and owner of `path` (following links); nullopt when it cannot be stat'ed.
std::optional<FileOwner> file_owner(const std::string& path);

/// Permission bits as four octal digits ("0660").
std::string format_mode(mode_t mode);

/// Adds "mode", "uid", "user", "gid", "group" (names null when unknown) to a JSON object.
void add_owner_json(Json& j, const FileOwner& owner);

/// A `--group` argument resolved to a gid: a numeric gid is used as given, anything else is
/// looked up as a group name.
/// @throws Error invalid_argument naming the group when no group has that name.
gid_t resolve_group(const std::string& text);

/// The shape, element type and rolling depth of one stream file, remembered so that a
/// re-creation can be reported after the old file is gone.
struct StreamGeometry {
  std::vector<std::uint32_t> shape;        ///< the file's axes, ISIO order
  std::vector<std::uint32_t> frame_shape;  ///< one frame (shape without the depth axis)
  Dtype dtype = Dtype::f32;                ///< element type
  std::uint32_t depth = 1;                 ///< rolling-buffer slices, 1 for a plain stream
};

/// The geometry of an open stream.
StreamGeometry geometry_of(const Stream& s);

/// A geometry as text: "64x64 float32", or "64x64 float32, depth 8" for a rolling buffer.
std::string format_geometry(const StreamGeometry& g);

/// Something that happened to a watched stream file between two refreshes of a StreamWatcher.
struct StreamEvent {
  /// What happened.
  enum class Kind {
    created,    ///< a file appeared (a new stream, or a removed one came back)
    recreated,  ///< the file at the path is another file now (new inode, or truncated in place)
    removed,    ///< the file is gone
  };
  Kind kind = Kind::created;              ///< what happened
  std::string name;                       ///< stream name (the file name without ".im.shm")
  std::string path;                       ///< file path
  std::optional<StreamGeometry> before;   ///< the file that was open (recreated, removed)
  std::optional<StreamGeometry> after;    ///< the new file, when it opened (created, recreated)
  std::string error;                      ///< why the new file did not open, when it did not
  Errc error_code = Errc::ok;             ///< that error's condition
  bool waiting = false;                   ///< removed, and the watcher keeps waiting for it
  std::int64_t time_ns = 0;               ///< when it was noticed, ns since the epoch
};

/// The event's name in JSON ("created", "recreated", "removed").
std::string_view event_kind_name(StreamEvent::Kind kind) noexcept;

/// One line describing an event: "stream 'cam' re-created: 64x64 float32 -> 32x32 uint16",
/// "stream 'cam' removed; waiting for it to come back".
std::string event_text(const StreamEvent& e);

/// The JSON form of an event: {"event", "time_ns", "name", "path", "old_shape", "old_dtype",
/// "old_depth", "new_shape", "new_dtype", "new_depth", "new_error", "waiting"} (keys of an
/// absent side left out).
Json event_to_json(const StreamEvent& e);

/// Like StreamSampler, and also reports what happened to the files between refreshes
/// (take_events()), for `monitor`. Watches either every stream of a directory or a fixed list
/// of paths; a listed path whose file is absent is kept as a row with a not_found error and is
/// picked up when the file appears. A re-created file (Stream::replaced(): new inode; or a size
/// that no longer matches the mapping: truncated in place) is re-opened. Reads of a mapping
/// whose file shrank under it are absorbed (SIGBUS guard) and reported as a re-creation instead
/// of killing the process.
class StreamWatcher {
 public:
  /// @param dir the directory to scan (already resolved).
  /// @param paths stream files to watch instead of scanning `dir` (already resolved); empty:
  ///        every `*.im.shm` file of `dir`.
  explicit StreamWatcher(std::string dir, std::vector<std::string> paths = {});
  StreamWatcher(StreamWatcher&&) noexcept;
  StreamWatcher& operator=(StreamWatcher&&) noexcept;
  ~StreamWatcher();

  /// Re-examines every file and samples every open stream; rates cover the time since the
  /// previous refresh. Events found are queued for take_events(). `scan`: how readers are found
  /// (ReaderScan::cached: the watcher's own ReaderCache).
  /// @throws Error when the directory cannot be listed (directory mode only).
  std::vector<StreamRow> refresh(ReaderScan scan = ReaderScan::cached);

  /// The events found by the refreshes since the previous call, oldest first.
  std::vector<StreamEvent> take_events();

  /// The directory scanned (directory mode) or given.
  [[nodiscard]] const std::string& directory() const noexcept;

  /// True when watching a fixed list of paths.
  [[nodiscard]] bool fixed_paths() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shmlink::cli
