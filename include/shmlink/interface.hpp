// SPDX-License-Identifier: MIT
/// @file interface.hpp
/// @brief The duplex co-simulation Interface: two sample queues between two peers, as
/// VILLASnode's shmem node and DPsim use them (docs/reference/villas-shmem.md sections
/// 2.1, 3 and 4; docs/design/queues.md).
///
/// Each side creates and owns the queue it writes (`InterfaceSpec::out`) and reads the queue its
/// peer owns (`InterfaceSpec::in`); the peer opens the same pair with the names swapped. Either
/// side may start first: `open()` creates the output and waits, up to `attach_timeout`, for the
/// peer's output to appear. Values are registered by index, the way DPsim registers its sources
/// and exported quantities: `export_signal()` fills the signal table of the output queue,
/// `import_signal()` states what this side expects in the peer's table, checked at attach time.
///
/// Peer liveness: each side holds an open-file-description lock (F_OFD_SETLK, write lock on the
/// first byte) on its output queue file for as long as the Interface is open. The kernel drops it
/// when the process dies however it dies, so the other side's reads and writes see a dead peer
/// within `liveness_interval` (Errc::peer_exited) instead of waiting forever; a stale output
/// file whose lock nobody holds is replaced at open. A peer started with `exec` is also watched
/// with waitpid(), which gives its exit status.
///
/// With `InterfaceSpec::protocol = InterfaceProtocol::villas` the same API speaks VILLASnode's
/// own shmem protocol (v1.0 to v1.2, x86_64 glibc; docs/design/villas.md): a real villas-node
/// configured with `type = shmem` and the names swapped is the peer. There the regions are
/// POSIX shared-memory objects laid out as villas-node lays them out, the rendezvous is
/// villas-node's pair of named semaphores (waited on with a timeout), and liveness is that of
/// the processes that map the peer's region (unknown when none is visible: another pid
/// namespace).
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>
#include <shmlink/queue.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace shmlink {

/// What an Interface speaks on shared memory.
enum class InterfaceProtocol : std::uint8_t {
  /// shmlink's own queue files (docs/design/queues.md "Interface"): signal tables checked at
  /// attach, liveness by OFD lock, samples in the cells. Both sides must be shmlink.
  shmlink = 0,
  /// VILLASnode v1.x's shmem node, byte for byte (docs/design/villas.md): a villas-node (or
  /// DPsim, or another shmlink side with this protocol) is the peer. No signal table travels:
  /// imports are checked only against the peer's values per sample.
  villas = 1,
};

/// How an Interface is set up.
struct InterfaceSpec {
  /// The queue this side creates, owns and writes (VILLASnode's `out.name`): a name in the
  /// stream directory or a path containing '/' (see queue_path()). With protocol villas: a POSIX
  /// shared-memory name as villas-node's `out.name` ("/villas-peer-out"; "x" means "/x"; no other
  /// '/', else Errc::invalid_argument), the region then lives in /dev/shm, not in the stream
  /// directory. A region channel locator ("PATH:NAME", "ivshmem:NAME"; split_region_locator())
  /// places the queue as entry NAME of that region instead (`in` must then name the same region
  /// the same way): no file, no OFD lock; the peer's clean close is seen by its shut output, its
  /// death only when it runs on this kernel (docs/design/queues.md "Interface in a region").
  std::string out;
  /// The queue this side reads: the peer's `out` (VILLASnode's `in.name`). The same name as
  /// `out` gives a loopback interface (this process reads what it writes).
  std::string in;
  /// Cells of the output queue; a power of two (VILLASnode's queuelen, default 512). With
  /// protocol villas also the number of pool blocks of the region, so at most `capacity`
  /// samples are in flight (queued, or taken by the peer and not yet given back).
  std::uint32_t capacity = 512;
  /// Values per sample of the output queue; 0 means the highest exported index + 1 (at least 1).
  /// With protocol villas: VILLASnode's samplelen (the values each pool block holds).
  std::uint32_t max_values = 0;
  /// Kind of the output queue (one writer per Interface, so SPSC unless others also push).
  /// Ignored with protocol villas (VILLAS queues are MPMC).
  QueueKind kind = QueueKind::spsc;
  /// How this side waits, on both queues (polling: spin; futex: sleep; hybrid: spin, then
  /// sleep); also the output queue's recorded mode. "Polling or blocking per interface".
  /// With protocol villas: polling makes our region's mode `polling`, hybrid and futex make it
  /// `pthread` (we broadcast its condition variable for a villas-node reader); this side never
  /// sleeps on the peer's condition variable: it spins (polling), or spins for a few
  /// microseconds and then sleeps with a back-off from 2 us to 500 us (hybrid; futex sleeps at
  /// once), which bounds how late a sample is seen while waiting.
  WaitMode wait = WaitMode::hybrid;
  /// The protocol (shmlink's queues, or VILLASnode's shmem regions).
  InterfaceProtocol protocol = InterfaceProtocol::shmlink;
  /// How long open() waits for the peer's output queue (and, with `exec`, for the peer).
  std::chrono::nanoseconds attach_timeout = std::chrono::seconds(10);
  /// How often, at most, a waiting read or write checks that the peer is alive (one fcntl, and
  /// one waitpid with `exec`; with protocol villas, one poll of a pidfd per peer process); it
  /// bounds how late a dead peer is noticed.
  std::chrono::nanoseconds liveness_interval = std::chrono::milliseconds(20);
  /// When not empty, open() launches this command line (argv[0] looked up in PATH) after
  /// creating the output queue, with SHMLINK_INTERFACE_IN = `out` and SHMLINK_INTERFACE_OUT =
  /// `in` added to its environment (the names the peer must use), no signal blocked or ignored,
  /// in a process group of its own. close() stops and reaps it (signals go to its group).
  std::vector<std::string> exec;
  /// On close(), how long a launched peer gets to exit by itself after this side's output was
  /// shut, before SIGTERM (and, after as long again, SIGKILL). With protocol villas also how
  /// long close() waits, before it marks the output stopped, for the peer to take the samples
  /// still queued (villas-node drops what is queued once it sees the queue stopped).
  std::chrono::nanoseconds stop_timeout = std::chrono::seconds(2);
  /// Permission bits of the output queue file (with protocol villas: of the region, of our
  /// semaphore, and of the peer's semaphore when this side creates it).
  mode_t permissions = 0600;
};

/// What became of the peer, as far as this side knows.
struct SHMLINK_EXPORT PeerStatus {
  /// Pid of the peer: the launched child with `exec`, else the creator recorded in the peer's
  /// queue header (protocol villas: the first other process found mapping the peer's region;
  /// 0 before attach, or when none could be found).
  pid_t pid = 0;
  /// The launched command line (`exec`), else the peer's queue file (protocol villas: its
  /// region, /dev/shm/<name>).
  std::string command;
  /// True when this side launched the peer (`exec`).
  bool launched = false;
  /// The peer's output lock was seen released (protocol villas: every process found mapping its
  /// region at attach ended), or the launched child was reaped.
  bool exited = false;
  /// Exit code of a launched peer that exited normally, else -1.
  int exit_code = -1;
  /// Signal that killed a launched peer, else 0.
  int term_signal = 0;
  /// The peer shut its output queue (a clean close) and this side drained it.
  bool closed = false;
  /// One line for people, e.g. "peer 'cosim side load' (pid 4242) was killed by signal 9 (Killed)".
  [[nodiscard]] std::string describe() const;
};

/// A duplex co-simulation link between this process and one peer. Move-only.
///
/// fork(): a child process inherits a copy that is not open there: its descriptors of the
/// locks are closed at fork (so the peer still sees this process die), and close() in the child
/// only unmaps (it never shuts, removes or stops what the parent uses).
///
/// Thread safety: one thread writes and one thread reads (they may differ; both may find the
/// peer dead at once, and peer() may be called from any thread); setup (export, import, open,
/// close) from one thread while neither runs.
///
/// Memory ordering: that of Queue (a read that returns ok sees the whole sample the peer wrote).
class SHMLINK_EXPORT Interface {
 public:
  Interface() noexcept;
  /// Keeps `spec`; nothing is created before open().
  explicit Interface(InterfaceSpec spec);
  Interface(Interface&&) noexcept;
  Interface& operator=(Interface&&) noexcept;
  Interface(const Interface&) = delete;
  Interface& operator=(const Interface&) = delete;
  /// close().
  ~Interface();

  /// Registers value `index` of this side's samples (DPsim's exportAttribute(attr, idx, ...)).
  /// Before open() only.
  /// @throws Error invalid_argument (index >= kMaxSampleValues, already exported, name over 39
  ///         or unit over 15 bytes, type invalid), closed (already open).
  void export_signal(std::uint32_t index, std::string_view name, SignalType type = SignalType::f64,
                     std::string_view unit = {});
  /// States that value `index` of the peer's samples is `name` of `type` (DPsim's
  /// importAttribute(attr, idx, ...)). At attach, the peer's table must hold that index with
  /// the same type, and the same name and unit where these are given (non-empty).
  /// @throws Error invalid_argument, closed (already open), as export_signal.
  void import_signal(std::uint32_t index, std::string_view name, SignalType type = SignalType::f64,
                     std::string_view unit = {});

  /// Creates the output queue (replacing a stale one whose owner is gone), launches `exec` if
  /// given, and waits for the peer's output queue to appear with a live owner.
  ///
  /// Protocol villas (docs/design/villas.md "Handshake"): opens the semaphores sem.<out> and
  /// sem.<in>, drains stale posts of ours, creates /dev/shm/<out> exclusively (a stale one that
  /// no process maps is replaced; one a live process maps is Errc::exists naming that pid), lays
  /// the region out, posts ours, waits on the peer's (up to attach_timeout, in slices that notice
  /// a launched peer's exit), maps and validates the peer's region (a post whose region no live
  /// process maps is a dead peer's: waited past), and unlinks our semaphore. The imports are
  /// checked only against the values the peer's samples can hold (layout). On failure our
  /// region and semaphore are removed, never the peer's objects.
  /// @throws Error invalid_argument (empty names, bad sizes, `out` and `in` not in one region), exists (`out` is owned by another
  ///         live Interface), timeout (no peer within attach_timeout; a launched peer is then
  ///         stopped), peer_exited (a launched peer exited before attaching: the message has its
  ///         status), layout (the peer's signal table does not match the imports: the message
  ///         names the index and both sides), not_found (exec: command not found), permission,
  ///         interrupted (protocol villas: a signal arrived while waiting for the peer's
  ///         semaphore; our region and semaphore are removed, a launched peer is stopped, as for
  ///         any failure), system.
  void open();
  /// True between a successful open() and close().
  [[nodiscard]] bool is_open() const noexcept;

  /// Sends one sample of `values` (index i = value i): sequence = the next number (from 0),
  /// ts_origin = now (CLOCK_REALTIME, ns), flags HAS_SEQUENCE | HAS_DATA | HAS_TS_ORIGIN.
  /// Waits (by `wait`) while the output queue is full.
  /// @param timeout relative; kForever waits without limit; 0 never waits.
  /// @return ok; timeout (full; nothing was sent); would_block (timeout 0 and full);
  ///         peer_exited (the peer is gone, so nothing was sent: see peer(); checked at most
  ///         every liveness_interval while the queue has room, at every wait slice when full);
  ///         shut_down (the peer closed cleanly); closed (not open); size_mismatch (more values than
  ///         max_values); interrupted (a signal arrived while waiting; nothing was sent).
  ///         Protocol villas: full means no free pool block or a full data queue.
  Status write(std::span<const SignalValue> values, std::chrono::nanoseconds timeout = kForever) noexcept;
  /// Sends `s` as given (sequence, timestamps and flags included); otherwise as write(values).
  Status write(const Sample& s, std::chrono::nanoseconds timeout = kForever) noexcept;
  /// Receives the next sample of the peer into `out`, stamping ts_received (CLOCK_REALTIME) and
  /// kSampleHasTsReceived. Samples the peer wrote before it died or closed are still returned.
  /// @param timeout relative; kForever waits without limit; 0 never waits.
  /// @return ok; timeout; would_block (timeout 0 and nothing there); shut_down (the peer closed
  ///         its output and everything in it was read); closed (this side is not open); peer_exited
  ///         (the peer died and everything it wrote was read; see peer()); interrupted (a
  ///         signal arrived while waiting). Protocol villas also: layout (a sample of the peer
  ///         failed a bounds check and was skipped; logged with the check; the next read goes
  ///         on with the next sample). Values beyond the imports are delivered as they came.
  Status read(Sample& out, std::chrono::nanoseconds timeout = kForever) noexcept;

  /// The non-template form of the handler of read_burst(): `fn(ctx, view)` per sample.
  using SampleHandlerFn = Queue::SampleHandlerFn;
  /// Receives up to `limit` samples of the peer, oldest first, calling `handler(const
  /// SampleView&)` for each (Queue::try_pop_burst's shape, Aeron's `read(handler, limit)`);
  /// waits up to `timeout` only while nothing is there. Samples already queued are handed over
  /// zero-copy: the view points into the cell and is valid only during the handler call.
  /// Each view carries ts_received_ns (CLOCK_REALTIME, one stamp per burst) and
  /// kSampleHasTsReceived, as read() stamps them; its values are clamped to in_max_values(). A
  /// sample that had to be waited for, and every sample of protocol villas, comes through this
  /// side's read scratch (reserved at open: no allocation) and is handed over as a view of it.
  /// The handler must not throw and must not read from this interface.
  /// @param received receives how many samples the handler saw.
  /// @param timeout as read(): relative; kForever waits without limit; 0 never waits.
  /// @return ok when at least one sample was received (or `limit` is 0); otherwise as read():
  ///         timeout, would_block, shut_down, closed, peer_exited, interrupted, layout (villas).
  ///
  /// Memory ordering: that of Queue::try_pop_burst (each cell acquired before its handler call,
  /// freed with release after the run).
  template <class Handler>
  Status read_burst(Handler&& handler, std::size_t limit, std::size_t& received,
                    std::chrono::nanoseconds timeout = kForever) noexcept {
    using H = std::remove_reference_t<Handler>;
    return read_burst_with([](void* ctx, const SampleView& v) { (*static_cast<H*>(ctx))(v); },
                           const_cast<void*>(static_cast<const void*>(std::addressof(handler))), limit, received,
                           timeout);
  }
  /// read_burst() with a plain function and context pointer (what the template forwards to).
  Status read_burst_with(SampleHandlerFn fn, void* ctx, std::size_t limit, std::size_t& received,
                         std::chrono::nanoseconds timeout = kForever) noexcept;

  /// Shuts the output queue (the peer drains it, then reads `shut_down`), removes the output queue
  /// file when it is still this side's, releases the lock, then stops and reaps a launched peer
  /// (it gets stop_timeout to exit by itself, then SIGTERM, then SIGKILL, each to its process
  /// group). Idempotent; never throws.
  ///
  /// Protocol villas: first waits (up to stop_timeout, less when the peer dies or closes) until
  /// the peer took every sample still queued, then marks our queue STOPPED, removes
  /// /dev/shm/<out> when it is still our region, unmaps both regions, then handles a launched
  /// peer as above.
  void close() noexcept;

  /// The signals this side exports and imports, by index.
  [[nodiscard]] const std::vector<Signal>& exports() const noexcept;
  [[nodiscard]] const std::vector<Signal>& imports() const noexcept;
  /// The peer's signal table (after open(); always empty with protocol villas).
  [[nodiscard]] const std::vector<Signal>& peer_signals() const noexcept;
  /// What became of the peer (refreshed by reads, writes, peer_alive() and close()): a copy,
  /// safe to take from any thread while others read and write.
  [[nodiscard]] PeerStatus peer() const;
  /// Checks now whether the peer is alive (its lock held; a launched child not reaped).
  bool peer_alive() noexcept;
  /// The spec given at construction.
  [[nodiscard]] const InterfaceSpec& spec() const noexcept;
  /// Values per sample of our output (after open(); 0 when not open): the output queue's
  /// max_values, or the villas region's samplelen.
  [[nodiscard]] std::uint32_t out_max_values() const noexcept;
  /// Values per sample the peer's output can carry (after open(); 0 when not open): a read
  /// never returns more.
  [[nodiscard]] std::uint32_t in_max_values() const noexcept;
  /// Protocol villas: the peer's region as validated at attach (since 0.3.0). Zeros when not
  /// open or with protocol shmlink.
  struct VillasPeerRegion {
    std::uint32_t queuelen = 0;  ///< the peer's pool blocks (its villas-node `queuelen`)
    bool pthread_mode = false;   ///< the region's mode: pthread (true) or polling (false)
  };
  [[nodiscard]] VillasPeerRegion villas_peer_region() const noexcept;
  /// The queues (valid after open()), for tools and bulk use. With protocol villas there are no
  /// queue files: both return an invalid Queue (valid() false; its calls report Errc::closed).
  [[nodiscard]] Queue& out_queue() noexcept;
  [[nodiscard]] Queue& in_queue() noexcept;
  [[nodiscard]] const Queue& out_queue() const noexcept;
  [[nodiscard]] const Queue& in_queue() const noexcept;
  /// Sequence number the next write(values) will carry.
  [[nodiscard]] std::uint64_t next_sequence() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmlink
