// SPDX-License-Identifier: MIT
/// @file villas_rows.hpp
/// @brief VILLASnode shmem regions for `ls` and `info`: found in /dev/shm by fingerprint, read without
/// mapping or writing a byte, and who holds them.
#pragma once

#include "cli.hpp"

#include <shmlink/catalog.hpp>
#include <shmlink/villas.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::cli {

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

/// Every VILLAS region in `/dev/shm` (shmlink::list_channels() of kind "villas": regular files,
/// any name, whose first 1024 bytes look like a region; never mapped, whatever the file's size),
/// as rows sorted by name, each summarised by villas::inspect_file() (the header alone, read with
/// pread), then one /proc scan for the holders of every region and of its `sem.<name>`. Files
/// that cannot be read (another user's 0600 region) are left out: nothing says they are regions.
/// No rows (and a debug log) when /dev/shm is missing or may not be listed.
/// @param dev_shm a shmlink::list_channels() of /dev/shm the caller made already (e.g. `ls` of
///        the default stream directory), reused instead of listing /dev/shm again; null: list it.
/// @throws Error when listing /dev/shm fails otherwise (an I/O error).
std::vector<VillasRow> list_villas_regions(const std::vector<ChannelListing>* dev_shm = nullptr);

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

}  // namespace shmlink::cli
