// SPDX-License-Identifier: MIT
// The state of one Interface (include/shmlink/interface.hpp), shared by interface.cpp (protocol
// shmlink, exec, liveness, close) and interface_villas.cpp (protocol villas). Internal.
#pragma once

#include <shmlink/interface.hpp>
#include <shmlink/region.hpp>

#include "os/process.hpp"
#include "queue/villas_link.hpp"

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink {

/// How long Interface::open() sleeps between looks for the peer's queue (file or region entry).
inline constexpr std::chrono::milliseconds kAttachPoll{2};

/// `s` in single quotes, for the Interface's error messages.
inline std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

struct Interface::Impl {
  InterfaceSpec spec;
  std::vector<Signal> exports;
  std::vector<Signal> imports;
  Queue out;
  Queue in;
  std::unique_ptr<villas::Link> vl;  ///< protocol villas: both regions (null otherwise)
  std::string out_path;   ///< our output's file (region mode: its PATH:NAME)
  // Region mode (both names are region channel locators, PATH:NAME or ivshmem:[DEVICE:]NAME):
  // both queues are entries of one region; no files, no OFD locks (docs/design/queues.md,
  // "Interface in a region").
  std::string region_locator;  ///< the region of both queues; empty: queue files
  std::string out_entry;       ///< region mode: our output's entry name
  std::string in_entry;        ///< region mode: the peer's output's entry name
  Region region;               ///< region mode: the region, while open
  bool peer_local = false;     ///< region mode: the peer's entry was made by a process of this kernel
  std::uint64_t in_token = 0;  ///< creation time of the peer's output we read (handshake)
  pid_t owner_pid = 0;    ///< the process that opened this Interface (a forked copy is not it)
  int lock_fd = -1;       ///< our output file, OFD-locked while open
  int peer_fd = -1;       ///< the peer's output file (the inode we mapped), for the liveness check
  bool loopback = false;  ///< in == out: this process is its own peer
  bool open = false;
  // What is known of the peer. The writing and the reading thread may both find it dead at
  // once: `peer` and `child` are guarded by `peer_mutex` (slow path only), and the hot path's
  // rate limit is an atomic.
  mutable std::mutex peer_mutex;
  pid_t child = 0;        ///< launched peer, not yet reaped
  PeerStatus peer;
  std::atomic<std::int64_t> next_check_ns{0};  ///< monotonic time of the next liveness check
  std::atomic<bool> peer_gone{false};          ///< set once the peer was found dead or closed
  std::uint64_t sequence = 0;
  Sample scratch;                  ///< write(values) builds its sample here (no allocation per call)
  Sample read_scratch;             ///< read_burst() waits into it (reserved at open; the reading thread's)

  std::string label() const;

  /// Reaps the launched child if it has ended; records its status. True when it has ended.
  /// Caller holds peer_mutex (or is the only thread: setup and close).
  bool reap(int flags) noexcept;

  bool villas() const noexcept { return spec.protocol == InterfaceProtocol::villas; }

  /// Checks now whether the peer is alive; records what is known when it is not.
  /// @param may_wait whether a launched child that is dying may be waited for (briefly, without
  ///        holding peer_mutex, protocol villas) so its status can be reported: not in calls
  ///        with a zero timeout.
  bool alive(bool may_wait = true) noexcept;

  /// alive() for protocol villas: a launched child not reaped, the peer's queue not STOPPED (a
  /// clean close: `closed`), and one of the processes that mapped its region at attach alive
  /// (unknown when none could be found: then only the first two are known).
  bool alive_villas(bool may_wait) noexcept;

  /// Rate-limited alive(): checks at most once per liveness_interval.
  bool alive_lazily(bool may_wait = true) noexcept;

  /// The slice of a wait between two liveness checks.
  std::chrono::nanoseconds slice(std::int64_t deadline) const noexcept;

  /// Why the peer cannot take more: shut_down (it closed cleanly) or peer_exited.
  Status gone() const noexcept;

  /// The liveness interval in ns (at least 1 ms, as slice()).
  std::int64_t interval_ns() const noexcept { return std::max<std::int64_t>(spec.liveness_interval.count(), 1'000'000); }

  /// push() for protocol villas: try, then wait by Backoff, checking liveness every interval.
  Status push_villas(const Sample& s, std::chrono::nanoseconds timeout) noexcept;

  /// The waiting part of pop() for protocol villas (after a try_pull found nothing).
  Status pull_villas(Sample& s, std::chrono::nanoseconds timeout) noexcept;

  /// True in a forked copy of the process that opened (protocol villas: the regions are not
  /// mapped there, MADV_DONTFORK; every call on them answers `closed`).
  bool foreign() const noexcept { return vl && owner_pid != os::current_pid(); }

  Status push(const Sample& s, std::chrono::nanoseconds timeout) noexcept;

  Status pop(Sample& s, std::chrono::nanoseconds timeout) noexcept;
  /// Records that the peer shut its output (a pop answered shut_down while open).
  void note_shut_down() noexcept;

  /// open() for protocol shmlink.
  void open_shmlink();

  /// True when the queues are entries of a region (region_locator set at open()).
  bool in_region() const noexcept { return !region_locator.empty(); }

  /// The spec of our output queue (capacity, values, kind, wait, exports, permissions).
  QueueSpec output_spec() const;

  /// Creates (or replaces a stale) output queue and locks it.
  void create_output();

  /// Region mode: creates our output entry (replacing one of that name: a region shared with
  /// other kernels cannot tell a stale owner from a live one).
  void create_output_in_region();

  /// Takes `q` (the peer's live output) as our input: wait mode, the peer's pid and name (unless
  /// launched), then the imports' check. @throws Error layout, as check_imports().
  void take_input(Queue q);

  /// Region mode: waits for the peer's output entry (ready, not shut) and opens it.
  void attach_in_region(std::int64_t deadline);

  /// Starts the exec command with the queue names in its environment.
  void launch();

  /// Stops a launched child: waits `stop_timeout` for it to exit, then SIGTERM, then SIGKILL, to
  /// its whole process group. When it had to be signalled, stragglers of its group (a wrapper's
  /// children) get SIGKILL while the child is still an unreaped zombie, so the group id cannot
  /// have been reused.
  void stop_child() noexcept;

  /// Protocol villas: removes the peer's region when no process maps or holds it any more (a
  /// launched peer we had to kill could not). Its semaphore is left: villas-node reuses it.
  void remove_villas_if_stale() noexcept;

  /// Values per sample of our output / of the peer's (0 when not open).
  std::uint32_t out_max() const noexcept { return vl ? vl->out_values() : out.max_values(); }
  std::uint32_t in_max() const noexcept { return vl ? vl->in_values() : in.max_values(); }

  /// The highest exported index + 1 (at least 1), or max_values when given. @throws invalid_argument.
  std::uint32_t values_per_sample() const;

  /// open() for protocol villas (docs/design/villas.md "Handshake").
  void open_villas(std::int64_t deadline);

  /// close() for protocol villas, in the process that opened: drain, stop, remove, unmap.
  void close_villas() noexcept;

  /// Checks the peer's table against our imports. @throws Error layout.
  void check_imports() const;

  /// Waits for the peer's output queue with a live owner and opens it.
  void attach(std::int64_t deadline);

  /// Second half of the handshake: waits until the peer has opened our output too (it records
  /// its pid there), so that neither side returns from open() before both are attached: a peer
  /// that writes and closes at once is still seen.
  void await_peer_reader(std::int64_t deadline);

  /// Records us as the reader of the peer's output, naming our own output.
  void mark_input() noexcept;

  /// True while the peer's output we attached to is still its live, open queue at its name.
  bool peer_input_current() const noexcept;

  static std::string fmt_seconds(double s);

  /// In a forked child: closes this process's copies of the lock and peer descriptors.
  void forget_fds() noexcept;

  /// Releases everything (no peer handling).
  void release() noexcept;

  /// Removes our output file when it is still the inode we locked.
  void remove_output() noexcept;
};

}  // namespace shmlink
