// SPDX-License-Identifier: MIT
/// @file rows.hpp
/// @brief Stream rows of `ls` and `monitor`: a stream's metadata, its update rate, its writer and
/// readers (found in /proc), their order, their JSON, and the StreamSampler that keeps them.
#pragma once

#include "cli.hpp"
#include "freshness.hpp"

#include <shmlink/stream.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

// ---- writer and readers ----------------------------------------------------------------

/// True when process `pid` exists (kill(pid, 0) succeeds or fails with EPERM); false for
/// pid <= 0 or ESRCH.
bool pid_alive(std::int32_t pid) noexcept;

/// True when the pids stored in the channel at `path` are this kernel's, so that kill(2) here
/// judges them: a channel file, or a channel "PATH:NAME" in a region that no other kernel uses
/// (Region::same_kernel()) and that this kernel formatted (Region::created_by_this_kernel()).
/// False for a channel in a guest's ivshmem device, in a region shared with VMs, or in a region
/// another kernel formatted: a pid there may be a process of another kernel, which this one can
/// neither see nor find dead (the library's own liveness rule treats it as unknown, never dead).
/// True when the region cannot be opened (the channel's own open reports that).
bool pids_of_this_kernel(const std::string& path);

/// The liveness of a pid stored in a channel, as `shmlink` shows it.
enum class PidLiveness {
  alive,    ///< a process of this kernel with that pid exists
  dead,     ///< no such process on this kernel (or pid <= 0)
  unknown,  ///< the pid may be another kernel's (pids_of_this_kernel() false): not judged
};
/// pid_alive(pid) when `this_kernel`, else unknown.
PidLiveness pid_liveness(std::int32_t pid, bool this_kernel) noexcept;
/// "alive", "dead" or "other kernel?" (unknown).
std::string_view liveness_text(PidLiveness l) noexcept;
/// "PID (alive)", "PID (dead)" or "PID (other kernel?)".
std::string pid_cell_text(std::int32_t pid, bool this_kernel);
/// The JSON value of a pid's liveness: true, false, or null (unknown: another kernel's pid).
Json liveness_json(std::int32_t pid, bool this_kernel);

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
/// without releasing its slot) is left out. With `this_kernel` false (pids_of_this_kernel()) every
/// slot's pid counts, unjudged: it may be a reader in another kernel. Ascending pid.
std::vector<StreamReader> stream_readers(const StreamInfo& info, const std::vector<int>& holders,
                                         bool this_kernel = true);

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
  bool pids_of_this_kernel = true;    ///< its pids are this kernel's (pids_of_this_kernel())
  std::optional<BridgeFreshness> bridge;  ///< a bridge replica's freshness keywords, when it is one
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

/// The JSON form of one row (shared by `ls --json` and `monitor --json`).
Json row_to_json(const StreamRow& row);

}  // namespace shmlink::cli
