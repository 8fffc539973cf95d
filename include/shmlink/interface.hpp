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
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>
#include <shmlink/queue.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink {

/// How an Interface is set up.
struct InterfaceSpec {
  /// The queue this side creates, owns and writes (VILLASnode's `out.name`): a name in the
  /// stream directory or a path containing '/' (see queue_path()).
  std::string out;
  /// The queue this side reads: the peer's `out` (VILLASnode's `in.name`). The same name as
  /// `out` gives a loopback interface (this process reads what it writes).
  std::string in;
  /// Cells of the output queue; a power of two (VILLASnode's queuelen, default 512).
  std::uint32_t capacity = 512;
  /// Values per sample of the output queue; 0 means the highest exported index + 1 (at least 1).
  std::uint32_t max_values = 0;
  /// Kind of the output queue (one writer per Interface, so SPSC unless others also push).
  QueueKind kind = QueueKind::spsc;
  /// How this side waits, on both queues (polling: spin; futex: sleep; hybrid: spin, then
  /// sleep); also the output queue's recorded mode. "Polling or blocking per interface".
  WaitMode wait = WaitMode::hybrid;
  /// How long open() waits for the peer's output queue (and, with `exec`, for the peer).
  std::chrono::nanoseconds attach_timeout = std::chrono::seconds(10);
  /// How often, at most, a waiting read or write checks that the peer is alive (one fcntl, and
  /// one waitpid with `exec`); it bounds how late a dead peer is noticed.
  std::chrono::nanoseconds liveness_interval = std::chrono::milliseconds(20);
  /// When not empty, open() launches this command line (argv[0] looked up in PATH) after
  /// creating the output queue, with SHMLINK_INTERFACE_IN = `out` and SHMLINK_INTERFACE_OUT =
  /// `in` added to its environment (the names the peer must use), no signal blocked or ignored,
  /// in a process group of its own. close() stops and reaps it (signals go to its group).
  std::vector<std::string> exec;
  /// On close(), how long a launched peer gets to exit by itself after this side's output was
  /// shut, before SIGTERM (and, after as long again, SIGKILL).
  std::chrono::nanoseconds stop_timeout = std::chrono::seconds(2);
  /// Permission bits of the output queue file.
  mode_t permissions = 0600;
};

/// What became of the peer, as far as this side knows.
struct SHMLINK_EXPORT PeerStatus {
  /// Pid of the peer: the launched child with `exec`, else the creator recorded in the peer's
  /// queue header (0 before attach).
  pid_t pid = 0;
  /// The launched command line (`exec`), else the peer's queue file.
  std::string command;
  /// True when this side launched the peer (`exec`).
  bool launched = false;
  /// The peer's output lock was seen released, or the launched child was reaped.
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
  /// @throws Error invalid_argument (empty names, bad sizes), exists (`out` is owned by another
  ///         live Interface), timeout (no peer within attach_timeout; a launched peer is then
  ///         stopped), peer_exited (a launched peer exited before attaching: the message has its
  ///         status), layout (the peer's signal table does not match the imports: the message
  ///         names the index and both sides), not_found (exec: command not found), permission,
  ///         system.
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
  ///         closed (not open, or the peer closed cleanly); size_mismatch (more values than
  ///         max_values); interrupted (a signal arrived while waiting; nothing was sent).
  Status write(std::span<const SignalValue> values, std::chrono::nanoseconds timeout = kForever) noexcept;
  /// Sends `s` as given (sequence, timestamps and flags included); otherwise as write(values).
  Status write(const Sample& s, std::chrono::nanoseconds timeout = kForever) noexcept;
  /// Receives the next sample of the peer into `out`, stamping ts_received (CLOCK_REALTIME) and
  /// kSampleHasTsReceived. Samples the peer wrote before it died or closed are still returned.
  /// @param timeout relative; kForever waits without limit; 0 never waits.
  /// @return ok; timeout; would_block (timeout 0 and nothing there); closed (the peer closed
  ///         its output and everything in it was read, or this side is not open); peer_exited
  ///         (the peer died and everything it wrote was read; see peer()); interrupted (a
  ///         signal arrived while waiting).
  Status read(Sample& out, std::chrono::nanoseconds timeout = kForever) noexcept;

  /// Shuts the output queue (the peer drains it, then reads `closed`), removes the output queue
  /// file when it is still this side's, releases the lock, then stops and reaps a launched peer
  /// (it gets stop_timeout to exit by itself, then SIGTERM, then SIGKILL, each to its process
  /// group). Idempotent; never throws.
  void close() noexcept;

  /// The signals this side exports and imports, by index.
  [[nodiscard]] const std::vector<Signal>& exports() const noexcept;
  [[nodiscard]] const std::vector<Signal>& imports() const noexcept;
  /// The peer's signal table (after open()).
  [[nodiscard]] const std::vector<Signal>& peer_signals() const noexcept;
  /// What became of the peer (refreshed by reads, writes, peer_alive() and close()): a copy,
  /// safe to take from any thread while others read and write.
  [[nodiscard]] PeerStatus peer() const;
  /// Checks now whether the peer is alive (its lock held; a launched child not reaped).
  bool peer_alive() noexcept;
  /// The spec given at construction.
  [[nodiscard]] const InterfaceSpec& spec() const noexcept;
  /// The queues (valid after open()), for tools and bulk use.
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
