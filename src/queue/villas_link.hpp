// SPDX-License-Identifier: MIT
// The VILLASnode v1.x shmem protocol of the Interface (InterfaceProtocol::villas;
// docs/design/villas.md): the named-semaphore rendezvous with timeouts and stale-object handling,
// this side's region (OwnRegion) and the peer's (PeerRegion), and the liveness of the processes
// that map the peer's region. Waiting (back-off, liveness slices, exec children) is the
// Interface's business (src/queue/interface.cpp); this layer never blocks without a deadline.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/segment.hpp>

#include "queue/villas_region.hpp"

#include <semaphore.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::villas {

/// The POSIX shared-memory object name for `name` as VILLASnode's `out.name`/`in.name` take it:
/// "/x" as given, "x" becomes "/x".
/// @param role "out" or "in", for the message.
/// @throws Error invalid_argument (empty, "/", ".", "..", a '/' after the first byte, a control
///         character), name_too_long (over kMaxObjectName bytes with the '/').
std::string object_name(std::string_view name, std::string_view role);

/// Longest object name accepted, '/' included: the semaphore's file is "sem." + name without the
/// '/', which must fit NAME_MAX (255).
inline constexpr std::size_t kMaxObjectName = 252;

/// What a Link is built from.
struct LinkSpec {
  std::string out;              ///< our object name ("/x"), from object_name()
  std::string in;               ///< the peer's object name
  std::uint32_t queuelen = 0;   ///< cells and pool blocks of our region
  std::uint32_t samplelen = 0;  ///< values per sample of our region
  bool pthread_mode = true;     ///< our region's mode (the reader's wake-up method)
  mode_t permissions = 0600;    ///< our region's file mode
  /// How often attach() calls its `check` (and re-tests a stale post).
  std::chrono::nanoseconds slice = std::chrono::milliseconds(20);
  std::chrono::nanoseconds attach_timeout{0};  ///< for the timeout message
  std::string label;            ///< "interface (out '...', in '...')" for messages
};

/// One side of a VILLASnode shmem pair. Setup throws Error naming the object; the data path is
/// noexcept and bounded whatever the peer wrote. Not thread-safe for setup; try_push from one
/// thread and try_pull from another may run at once (they touch different regions).
class Link {
 public:
  explicit Link(LinkSpec spec);
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  /// unmap(): never removes anything.
  ~Link();

  /// Handshake, first half (docs/design/villas.md "Handshake"): creates our region exclusively
  /// (a stale one nobody maps is replaced; one a live process maps is Errc::exists naming the
  /// pid, or saying that the peer attached to a stale region of ours and must be restarted; the
  /// output of another open interface of this process is Errc::exists), then opens both
  /// semaphores (mode `permissions`), drains stale posts of ours, lays the region out
  /// (MADV_DONTFORK), posts ours.
  /// On failure, removes what it created (region, semaphores: abandon()) and rethrows.
  void create();
  /// Handshake, second half: waits on the peer's semaphore (CLOCK_MONOTONIC, in slices of
  /// `slice`, calling `check` between them: it may throw, e.g. when a launched peer exited; a
  /// post already there is taken even past the deadline), maps the peer's region, refuses a
  /// stale post (no visible process maps the region and the peer's semaphore name stays for
  /// kUnlinkGrace: waits again), validates it (PeerRegion::attach, retried briefly while the
  /// peer may still be laying it out), records the peer's pids (pidfds opened, then re-checked
  /// that they still map it), and unlinks our semaphore.
  /// @throws Error timeout (naming the peer's object and the last thing seen), layout, system,
  ///         or whatever `check` throws. The caller then calls abandon().
  void attach(std::int64_t deadline_ns, const std::function<void()>& check);
  /// After a failed open: marks our queue STOPPED and wakes its readers (a peer may have attached
  /// already), removes our region (when the name is still our inode) and our semaphore, and the
  /// peer's semaphore when we created it and no other process holds it; closes the semaphores,
  /// unmaps. Never the peer's region.
  void abandon() noexcept;

  /// OwnRegion::try_push; size_mismatch for more than samplelen values (a block may hold a few
  /// more: blocks are whole cache lines).
  Status try_push(const Sample& s) noexcept {
    if (s.values.size() > spec_.samplelen) return Errc::size_mismatch;
    return own_->try_push(s);
  }
  /// PeerRegion::try_pull; a sample that fails a check is logged (naming the peer's object and
  /// the check) and reported as Errc::layout.
  Status try_pull(Sample& out) noexcept;
  /// Samples in our data queue the peer has not taken yet.
  std::uint64_t queued() const noexcept { return own_ ? own_->queued() : 0; }
  /// Marks our data queue STOPPED (OwnRegion::stop).
  void stop() noexcept {
    if (own_) own_->stop();
  }
  /// True once the peer's data queue is STOPPED (it closed).
  bool peer_stopped() const noexcept;
  /// Whether a process of the peer is alive: 1 yes, 0 all of them are gone, -1 unknown (no pid
  /// could be found at attach: another pid namespace, an unreadable /proc, a peer that died
  /// before we looked; or poll() on a pidfd failed).
  int peer_alive() const noexcept;
  /// The first peer pid found at attach (0: none).
  pid_t peer_pid() const noexcept { return pids_.empty() ? 0 : pids_.front(); }
  /// Values per sample: ours (the samplelen asked for; write refuses more) and the most the
  /// peer's blocks hold.
  std::uint32_t out_values() const noexcept { return own_ ? spec_.samplelen : 0; }
  std::uint32_t in_values() const noexcept { return in_values_; }
  /// The peer's pool blocks (its queuelen) and region mode, as validated at attach (0/false before).
  std::uint32_t in_queuelen() const noexcept { return in_queuelen_; }
  bool in_pthread_mode() const noexcept { return in_pthread_; }
  /// /dev/shm path of the peer's region.
  std::string in_path() const;
  /// Removes our region's name when it is still the inode we created (close).
  void remove_own_region() noexcept;
  /// Unmaps both regions and closes descriptors (after close). In a forked child (the regions are
  /// MADV_DONTFORK, so not mapped there) it only forgets them.
  void unmap() noexcept;

 private:
  void wait_post(std::int64_t deadline_ns, const std::function<void()>& check, const std::string& last);
  bool try_map_peer(std::int64_t deadline_ns, std::string& why);
  /// create(): the name exists; removes it when no other process maps or holds that inode.
  /// @throws Error exists (a live owner, a peer attached to it, or an own region), system.
  void take_over_stale(const std::string& path, const std::string& where);
  /// create(): sem_open of ours and the peer's (exclusively first: created_sem_in_).
  void open_semaphores();
  /// Fills pids_/pidfds_ with the other processes that map the file open on `fd`.
  void find_peer_pids(int fd, bool& none_visible, bool& uninspectable);
  /// Waits, up to kUnlinkGrace (at least kMinUnlinkGrace, else not past `deadline_ns`), for the
  /// peer's semaphore name to stop naming the object we opened. True when it did.
  bool peer_semaphore_gone(std::int64_t deadline_ns) const;
  /// abandon(): sem_unlink of the peer's name when we created it and nobody else holds it.
  void remove_created_peer_semaphore() noexcept;
  void close_semaphores() noexcept;
  /// True while the peer's semaphore name still shows the object we opened (the peer has not
  /// completed its handshake: it unlinks that name once it mapped our region).
  bool peer_semaphore_named() const noexcept;

  LinkSpec spec_;
  bool loopback_ = false;
  sem_t* sem_out_ = SEM_FAILED;  ///< ours (we post it)
  sem_t* sem_in_ = SEM_FAILED;   ///< the peer's (we wait on it)
  bool sem_out_unlinked_ = false;
  bool created_ = false;         ///< our region's name was created by us (and is still to remove)
  bool owns_sem_ = false;        ///< we own the name: our semaphore is ours to drain and unlink
  dev_t own_dev_ = 0;
  ino_t own_ino_ = 0;
  Mapping own_map_;
  Mapping peer_map_;
  std::optional<OwnRegion> own_;
  std::optional<PeerRegion> peer_;
  std::uint32_t in_values_ = 0;
  std::uint32_t in_queuelen_ = 0;
  bool in_pthread_ = false;
  std::vector<pid_t> pids_;   ///< the peer's processes (those that mapped its region at attach)
  std::vector<int> pidfds_;   ///< pidfds of pids_ (-1 where pidfd_open failed: kill(pid, 0) then)
  bool in_process_ = false;   ///< the peer is another Interface of this process (threads)
  bool created_sem_in_ = false;  ///< we created the peer's semaphore (abandon may remove it)
  bool registered_ = false;   ///< our region is in this process's list of own regions
  pid_t creator_pid_ = 0;     ///< the process that created our region (a forked child is not it)
  ino_t sem_in_ino_ = 0;      ///< the peer's semaphore object we opened
  dev_t in_dev_ = 0;          ///< the peer's region we mapped
  ino_t in_ino_ = 0;
};

}  // namespace shmlink::villas
