// SPDX-License-Identifier: MIT
/// @file queue.hpp
/// @brief Bounded, lock-free sample queues in shared memory (docs/design/queues.md; the job
/// VILLASnode's shmem node and DPsim do, docs/reference/villas-shmem.md).
///
/// A queue lives in a span of bytes (a Placement): by default one file `<dir>/<name>.queue.shm`
/// in the stream directory (stream_directory()), or an entry of a region, or any memory the caller
/// maps (Queue::create_in / Queue::open_in). Its layout is the same wherever it lives: a header (magic, layout version written last, slot size, capacity, producer and consumer
/// kinds, wait mode, signal table) and a power-of-two ring of fixed-size cells, each holding one
/// Sample. SPSC queues use a plain ring (one producer, one consumer); MPMC queues use Dmitry
/// Vyukov's per-cell sequence numbers, as VILLASnode's queue does. Only offsets live in shared
/// memory, so every process may map the bytes anywhere.
///
/// Nothing accepted is lost: a full queue refuses (`try_push` returns would_block) or blocks
/// (`push`), never overwrites; closing a queue stops new pushes but consumers still drain it.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>
#include <shmlink/channel.hpp>  // kForever, kMaxChannelName, stream_directory()
#include <shmlink/placement.hpp>
#include <shmlink/segment.hpp>

#include <sys/types.h>

#include <chrono>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace shmlink {

/// Type of one signal value (VILLASnode's SignalType numbering, docs/reference/villas-shmem.md section 2.5).
enum class SignalType : std::uint8_t {
  invalid = 0,  ///< unused slot
  f64 = 1,      ///< double ("float" in VILLASnode)
  i64 = 2,      ///< int64 ("integer")
  boolean = 3,  ///< bool, stored as 0/1 in 8 bytes
  c64 = 4,      ///< std::complex<float> ("complex"): real then imaginary, 4 bytes each
};

/// The name of a signal type ("f64", "i64", "bool", "c64", "invalid").
SHMLINK_EXPORT std::string_view signal_type_name(SignalType t) noexcept;

/// One 8-byte value of a sample (VILLASnode's SignalData union, host byte order). Which member
/// is meant is the signal table's business, never the value's.
union SignalValue {
  double f;
  std::int64_t i;
  std::uint64_t bits;  ///< the raw 8 bytes (bool: 0 or 1)
  float z[2];          ///< complex<float>: z[0] real, z[1] imaginary

  /// From a double.
  static SignalValue of(double v) noexcept { SignalValue s; s.f = v; return s; }
  /// From an int64.
  static SignalValue of(std::int64_t v) noexcept { SignalValue s; s.i = v; return s; }
  /// From a bool.
  static SignalValue of(bool v) noexcept { SignalValue s; s.bits = v ? 1 : 0; return s; }
  /// From a complex<float>.
  static SignalValue of(std::complex<float> v) noexcept {
    SignalValue s;
    s.z[0] = v.real();
    s.z[1] = v.imag();
    return s;
  }
  /// As a complex<float>.
  [[nodiscard]] std::complex<float> complex() const noexcept { return {z[0], z[1]}; }
};
static_assert(sizeof(SignalValue) == 8);

/// Sample flags (VILLASnode's SampleFlags values).
inline constexpr std::uint32_t kSampleHasTsOrigin = 1U << 0;
inline constexpr std::uint32_t kSampleHasTsReceived = 1U << 1;
inline constexpr std::uint32_t kSampleHasSequence = 1U << 3;
inline constexpr std::uint32_t kSampleHasData = 1U << 4;
inline constexpr std::uint32_t kSampleNewFrame = 1U << 16;
inline constexpr std::uint32_t kSampleNewSimulation = 1U << 17;

/// A sample as the caller holds it (process-local; the shared cell layout is in
/// src/queue/queue_layout.hpp). `values.size()` is the sample's length.
struct Sample {
  std::uint64_t sequence = 0;    ///< producer's sequence number
  std::int64_t ts_origin_ns = 0;    ///< when the values were sampled, ns since the epoch (CLOCK_REALTIME)
  std::int64_t ts_received_ns = 0;  ///< when the sample was received, ns since the epoch
  std::uint32_t flags = 0;       ///< kSample* bits
  std::vector<SignalValue> values;  ///< at most the queue's max_values
};

/// A sample as it lies in the queue: valid only during the handler call that receives it
/// (Queue::try_pop_burst with a handler), or a sample to push without building a Sample and its
/// std::vector (Queue::try_push(const SampleView&)). The same fields as Sample, by the same
/// names; `values` points into the queue's cell (pop) or at the caller's values (push).
struct SampleView {
  std::uint64_t sequence = 0;       ///< producer's sequence number
  std::int64_t ts_origin_ns = 0;    ///< when the values were sampled, ns since the epoch (CLOCK_REALTIME)
  std::int64_t ts_received_ns = 0;  ///< when the sample was received, ns since the epoch
  std::uint32_t flags = 0;          ///< kSample* bits
  std::span<const SignalValue> values;  ///< the sample's values; at most the queue's max_values
};

/// One entry of a queue's signal table: what value `index` of every sample means.
struct Signal {
  std::uint32_t index = 0;  ///< position in Sample::values
  std::string name;         ///< at most 39 bytes
  SignalType type = SignalType::f64;
  std::string unit;         ///< at most 15 bytes ("V", "A", "")
  friend bool operator==(const Signal&, const Signal&) = default;
};

/// Producers and consumers a queue allows.
enum class QueueKind : std::uint8_t {
  spsc = 1,  ///< one producer, one consumer (a plain ring: cheapest)
  mpmc = 2,  ///< any number of each (Vyukov's bounded MPMC queue)
};

/// The name of a queue kind: "spsc" or "mpmc"; "unknown" for a value that names no kind (e.g. a
/// byte read from a damaged file). The one spelling of the library, the C API, the CLI and Python.
SHMLINK_EXPORT std::string_view queue_kind_name(QueueKind kind) noexcept;

/// How blocking push/pop wait when the queue is full/empty.
enum class WaitMode : std::uint8_t {
  polling = 1,  ///< spin with a pause instruction (lowest latency; burns a core; works across VMs)
  futex = 2,    ///< sleep on a shared futex at once
  hybrid = 3,   ///< spin for a few microseconds, then sleep on the futex (default)
};

/// Longest signal name and unit in bytes.
inline constexpr std::size_t kMaxSignalName = 39;
inline constexpr std::size_t kMaxSignalUnit = 15;
/// Most values per sample and most signals per queue.
inline constexpr std::uint32_t kMaxSampleValues = 4096;
/// Largest queue capacity (cells).
inline constexpr std::uint32_t kMaxQueueCapacity = 1U << 24;

/// What a new queue looks like.
struct QueueSpec {
  /// Cells; a power of two, 2 .. kMaxQueueCapacity.
  std::uint32_t capacity = 512;
  /// Values per sample, 1 .. kMaxSampleValues (VILLASnode's samplelen; default 64).
  std::uint32_t max_values = 64;
  QueueKind kind = QueueKind::spsc;
  WaitMode wait = WaitMode::hybrid;
  /// The signal table; indices must be distinct and below max_values (may be empty).
  std::vector<Signal> signals;
  /// File permission bits: read and write bits only, a subset of 0666 (check_channel_permissions();
  /// create refuses others with invalid_argument).
  mode_t permissions = 0600;
};

/// What an opener expects; a mismatch is Errc::layout at open, naming both sides.
struct QueueExpect {
  std::optional<std::uint32_t> max_values;    ///< exact values per sample
  std::optional<std::vector<Signal>> signals;  ///< the exact signal table (order included)
  std::optional<QueueKind> kind;
  /// Map read-write (default; needed to push or pop) or read-only (tools inspecting other
  /// users' queues: push/pop/shutdown then return Errc::permission or do nothing).
  bool writable = true;
};

/// A snapshot of a queue's header, for tools.
struct QueueInfo {
  std::string name;
  std::string path;
  std::uint32_t version = 0;
  QueueKind kind = QueueKind::spsc;
  WaitMode wait = WaitMode::hybrid;
  std::uint32_t capacity = 0;
  std::uint32_t max_values = 0;
  std::uint32_t cell_bytes = 0;
  std::uint64_t file_bytes = 0;
  std::uint64_t pushed = 0;   ///< samples pushed so far (the producer index)
  std::uint64_t popped = 0;   ///< samples popped so far (the consumer index)
  bool closed = false;
  std::int32_t creator_pid = 0;
  /// Pid of the reader that attached through an Interface (mark_consumer_attached()); 0: none.
  std::int32_t consumer_pid = 0;
  std::int64_t creation_time_ns = 0;
  std::vector<Signal> signals;
};

/// Longest accepted queue name in bytes (the name part of the file name, without ".queue.shm";
/// the limit of every channel kind, kMaxChannelName).
inline constexpr std::size_t kMaxQueueName = kMaxChannelName;

/// The file of a queue: `<stream_directory()>/<name>.queue.shm`, or a path containing '/' as given.
/// The name part (basename without ".queue.shm") follows the rule every channel kind shares
/// (check_channel_name()); a basename ending in ".im.shm" or ".memif.shm" (another kind's file)
/// is refused.
/// @throws Error invalid_argument (empty, ".", "..", control characters, another kind's file
///         name), name_too_long (over kMaxQueueName bytes); the message shows the name escaped.
SHMLINK_EXPORT std::string queue_path(std::string_view name_or_path);

/// A handle on one queue file. Move-only; destruction unmaps, never removes the file.
///
/// Thread safety: an SPSC queue allows one pushing thread and one popping thread (across all
/// processes); an MPMC queue any number of each. Other members are safe from any thread.
///
/// Memory ordering: a push fills the cell, then publishes it with a release store of the cell's
/// turn (both kinds; Vyukov's per-cell sequence); a pop that observes it with an acquire load sees
/// the whole sample. The pop frees the cell with a release store of its turn that the next push of
/// that cell acquires. The fast path moves only cell lines between cores: the indices and waiter
/// counts sit on lines of their own. Waiter counts and futex words use seq_cst, as stream waits do
/// (docs/design/queues.md).
class SHMLINK_EXPORT Queue {
 public:
  Queue() noexcept;
  Queue(Queue&&) noexcept;
  Queue& operator=(Queue&&) noexcept;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue();

  /// Creates a queue file, complete before it becomes visible (temp file + rename; the header's
  /// version is written last with release ordering).
  /// @param mode ExclusiveCreate (default), PurgeAndCreate, OpenOrCreate (open when it exists
  ///        and matches the spec's max_values, kind and signals, else Errc::layout), OpenExisting.
  /// @throws Error invalid_argument (capacity not a power of two, bad sizes, duplicate or
  ///         out-of-range signal index, names too long), exists, permission, no_space, system.
  static Queue create(std::string_view name_or_path, const QueueSpec& spec,
                      OpenMode mode = OpenMode::ExclusiveCreate);
  /// Opens and validates a queue file: magic, version, sizes against the file size, capacity a
  /// power of two, the signal table; then checks `expect`.
  /// A missing local file of a remote name ("HOST:NAME", or a plain name while
  /// remote::remote_open_enabled()) asks the bridge service for a replica, as Stream::open does
  /// (docs/bridge.md "Opening remote channels", "Queues across machines": the owner's service
  /// then moves the queue's samples into the local replica, whose consumer is the caller); the
  /// service's errors are passed on.
  /// @throws Error not_found, permission, layout (naming the file and the field or mismatch);
  ///         for a remote name the service's error, naming the missing file and the socket.
  static Queue open(std::string_view name_or_path, const QueueExpect& expect = {});

  /// The exact byte count create_in() lays out for `spec` (the file size of a queue file):
  /// header, signal table and cells (src/queue/queue_layout.hpp).
  /// @throws Error invalid_argument, as create() does for a bad spec.
  static std::size_t bytes_for(const QueueSpec& spec);
  /// Lays a queue out in `where.bytes` (zero-filled, invisible to others, 64-byte aligned, at
  /// least bytes_for(spec) bytes) and writes its version last (release; an open_in() that sees
  /// it acquires every other field). The queue's name is `where.name`; errors name `where.path`.
  /// A placement that is not same_kernel gives a handle that waits by polling.
  /// @throws Error invalid_argument (bad spec, span too small or misaligned), permission (the
  ///         placement is read-only).
  static Queue create_in(const Placement& where, const QueueSpec& spec);
  /// Opens the queue laid out in `where.bytes` with every check open() does, each header field
  /// bounded by `where.bytes.size()`: the layout the header describes must fit in the span (a
  /// file's must fill it exactly). The handle pushes and pops only when both `where.writable`
  /// and `expect.writable` are true (else Errc::permission). Keeps `where.owner` alive; waits by
  /// polling when `where.same_kernel` is false (futex wake-ups do not cross kernels).
  /// @throws Error layout naming `where.path` and the field; invalid_argument (misaligned span).
  static Queue open_in(const Placement& where, const QueueExpect& expect = {});
  /// Removes the queue file. @throws Error not_found / permission naming the file.
  static void remove(std::string_view name_or_path);

  [[nodiscard]] bool valid() const noexcept { return impl_ != nullptr; }
  /// Unmaps (the file stays). Idempotent.
  void close() noexcept;

  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] const std::string& path() const noexcept;
  [[nodiscard]] std::uint32_t capacity() const noexcept;
  [[nodiscard]] std::uint32_t max_values() const noexcept;
  [[nodiscard]] QueueKind kind() const noexcept;
  /// How this handle's blocking push/pop wait: the queue's recorded mode unless
  /// set_wait_mode() changed it.
  [[nodiscard]] WaitMode wait_mode() const noexcept;
  /// Makes this handle's blocking push/pop wait by `mode` (the file is unchanged; wakers wake
  /// whoever sleeps, whatever mode the queue records). A handle placed in memory shared with other
  /// kernels (Placement::same_kernel false) always polls: futex wake-ups never cross a kernel;
  /// asked for futex or hybrid there, it polls with pauses growing to 50 us sleeps. No
  /// effect on an invalid handle. Not
  /// while a push or pop runs on this handle (it is a plain field of the handle).
  void set_wait_mode(WaitMode mode) noexcept;
  /// The signal table.
  [[nodiscard]] const std::vector<Signal>& signals() const noexcept;
  /// Samples in the queue now (an estimate while others push or pop).
  [[nodiscard]] std::uint64_t size() const noexcept;
  /// How many samples were ever pushed into the queue (the producer index). For the producer of
  /// an SPSC queue this is exact even after a previous producer died between publishing cells and
  /// recording them: a writable SPSC handle first carries on from such cells, as its first push
  /// would (it may store the corrected index; no sample moves). Elsewhere a snapshot (acquire
  /// load). A bridge receiver derives its next expected sequence number from it
  /// (docs/design/bridge.md, "Queues: exactly once"). 0 for an invalid handle.
  [[nodiscard]] std::uint64_t producer_position() noexcept;
  /// Header snapshot.
  [[nodiscard]] QueueInfo info() const;

  // ---- producing ----------------------------------------------------------------------
  /// Pushes one sample if a cell is free. Never blocks, never allocates. A queue placed in a
  /// region entry that was removed (Placement::current_word changed: one relaxed load per
  /// burst) takes nothing: replaced. (A removed region queue's bytes stay reserved while a
  /// handle is attached, so no push ever lands in another channel: docs/design/region.md.)
  /// @return ok; would_block (full); replaced (its region entry was removed: re-open it by
  ///         name); size_mismatch (more values than max_values); shut_down
  ///         (the queue was shut: see shutdown()); closed (closed or moved-from handle); permission (opened read-only); layout (MPMC: the
  ///         file's tail index is behind a cell's turn, a state no correct producer leaves: the
  ///         file is corrupted; logged once per handle, naming the queue). Never loops without
  ///         bound, whatever the file holds.
  Status try_push(const Sample& s) noexcept;
  /// Pushes up to `samples.size()` samples, in order, without blocking (a burst, as DPDK's
  /// tx_burst): stops at the first that does not fit (full) or is too long. One wake-up check
  /// (fence) for the whole burst. Never allocates.
  /// @param pushed receives how many were pushed (a prefix of `samples`).
  /// @return ok when at least one was pushed (or `samples` is empty); otherwise why none was:
  ///         would_block (full), replaced, size_mismatch (the first sample is too long), shut_down, closed,
  ///         permission, layout (as try_push).
  Status try_push_burst(std::span<const Sample> samples, std::size_t& pushed) noexcept;
  /// Pushes, waiting (by the queue's wait mode) while it is full.
  /// @param timeout relative (CLOCK_MONOTONIC); kForever waits without limit.
  /// @return ok, timeout, interrupted, replaced (the region entry was removed, or, checked after
  ///         each quiet futex slice of at most 100 ms, the file was re-created or removed), shut_down, closed,
  ///         size_mismatch, layout (as try_push). The timeout is honoured whatever the file holds.
  Status push(const Sample& s, std::chrono::nanoseconds timeout) noexcept;
  /// try_push() of a SampleView: the values are copied from `s.values` straight into the
  /// cell (no Sample, no std::vector). Statuses as try_push(const Sample&).
  Status try_push(const SampleView& s) noexcept;
  /// try_push_burst() of SampleViews (the C API's and Python's bursts, without scratch copies).
  Status try_push_burst(std::span<const SampleView> samples, std::size_t& pushed) noexcept;
  /// push() of a SampleView. Statuses as push(const Sample&).
  Status push(const SampleView& s, std::chrono::nanoseconds timeout) noexcept;

  // ---- consuming ----------------------------------------------------------------------
  /// Pops the oldest sample into `out` (its values vector is resized to the sample's length;
  /// it allocates only when that exceeds its capacity).
  /// @return ok; would_block (empty); replaced (empty, and its region entry was removed: the
  ///         samples pushed before the removal are still popped first); shut_down (shut and
  ///         drained); closed (closed handle); permission (read-only);
  ///         layout (MPMC: the head index is behind a cell's turn, the file is corrupted; as
  ///         try_push).
  Status try_pop(Sample& out) noexcept;
  /// Pops up to `out.size()` samples, oldest first, without blocking (a burst, as rx_burst);
  /// `popped` receives how many (into out[0..popped)). One wake-up check for the whole burst.
  /// Before freeing a run of two or more cells it stores back into each of their cache lines
  /// the bytes already there (relaxed), taking the lines over so that the producer's next write
  /// moves each in one transfer; the cells' contents do not change (docs/design/queues.md,
  /// "Bursts").
  /// @return ok when at least one was popped (or `out` is empty); otherwise would_block (empty),
  ///         replaced, shut_down (shut and drained), closed, permission, layout (as try_pop).
  Status try_pop_burst(std::span<Sample> out, std::size_t& popped) noexcept;
  /// Pops, waiting (by the queue's wait mode) while it is empty.
  /// @return ok, timeout, interrupted, replaced (as push()), shut_down (shut and drained), closed,
  ///         layout (as try_pop). The timeout is honoured whatever the file holds.
  Status pop(Sample& out, std::chrono::nanoseconds timeout) noexcept;

  /// The non-template form of the handler burst: `fn(ctx, view)` per sample.
  using SampleHandlerFn = void (*)(void* ctx, const SampleView& sample);
  /// Pops up to `limit` samples, oldest first, without blocking, calling `handler(const
  /// SampleView&)` for each (Aeron's `read(handler, limit)` shape): zero-copy, the view points
  /// into the queue's cell, which stays the consumer's until the handler returns and the run is
  /// freed. Each view's length is the cell's, clamped to max_values as try_pop() clamps it (a
  /// lying peer never makes the view reach past its cell). One wake-up check for the burst.
  /// The handler must not throw (this call is noexcept) and must not pop from this queue.
  /// @param popped receives how many samples the handler saw.
  /// @return as try_pop_burst(std::span<Sample>, ...): ok when at least one was popped (or
  ///         `limit` is 0); would_block (empty), replaced, shut_down (shut and drained), closed
  ///         (closed handle), permission, layout.
  ///
  /// Memory ordering: each cell's turn is loaded with acquire (pairing with the producer's
  /// release that published it) before the handler sees it; the handler's reads happen before
  /// the release that frees the cell for the producer's next lap.
  template <class Handler>
  Status try_pop_burst(Handler&& handler, std::size_t limit, std::size_t& popped) noexcept {
    using H = std::remove_reference_t<Handler>;
    return try_pop_burst_with([](void* ctx, const SampleView& v) { (*static_cast<H*>(ctx))(v); },
                              const_cast<void*>(static_cast<const void*>(std::addressof(handler))), limit, popped);
  }
  /// try_pop_burst() with a plain function and context pointer (what the template forwards to).
  Status try_pop_burst_with(SampleHandlerFn fn, void* ctx, std::size_t limit, std::size_t& popped) noexcept;

  /// Shuts the queue: pushes then fail with Errc::shut_down, consumers drain what is left and
  /// then get Errc::shut_down; every waiter is woken. (Release store of the state.)
  void shutdown() noexcept;
  /// True once shutdown() was called by any process.
  [[nodiscard]] bool is_shut() const noexcept;
  /// True when the queue's placement no longer holds this queue: a file whose path now names
  /// another inode or none (re-created or removed; costs one stat(2)), or a region entry that was
  /// removed (its generation changed or it is no longer ready). The handle stays usable on its
  /// own bytes; re-open by name to follow the queue. Cheap enough for slow paths, not for every
  /// sample. False for a closed handle.
  [[nodiscard]] bool replaced() const noexcept;

  /// Records this process as the queue's attached reader: its pid, then `token` (release
  /// store). The Interface handshake: `token` names the reader's own output queue (its
  /// creation_time_ns), so the writer can tell which incarnation of its peer attached.
  /// No effect on a read-only handle.
  void mark_consumer_attached(std::uint64_t token) noexcept;
  /// The pid recorded by mark_consumer_attached() (acquire load); 0 when nobody attached.
  [[nodiscard]] pid_t consumer_pid() const noexcept;
  /// The token recorded by mark_consumer_attached() (acquire load); 0 when nobody attached.
  [[nodiscard]] std::uint64_t consumer_token() const noexcept;

  struct Impl;

 private:
  explicit Queue(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmlink
