// SPDX-License-Identifier: MIT
// Sample queues (include/shmlink/queue.hpp). Layout: src/queue/queue_layout.hpp. Algorithms:
// a plain SPSC ring, and Dmitry Vyukov's bounded MPMC queue (docs/reference/villas-shmem.md
// 12.2) with per-cell turn numbers; docs/design/queues.md explains the orderings.
#include <shmlink/queue.hpp>

#include "os/clock.hpp"
#include "os/futex.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"
#include "os/sys.hpp"
#include "queue/queue_layout.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <set>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shmlink {
namespace {

using qlayout::CellHeader;
using qlayout::QueueHeader;
using qlayout::SignalEntry;

template <class T>
std::atomic_ref<T> aref(T& field) noexcept {
  return std::atomic_ref<T>(field);
}

/// A NUL-terminated string in a fixed field, or nullopt when unterminated.
std::optional<std::string> fixed(const char* field, std::size_t size) {
  const void* nul = std::memchr(field, '\0', size);
  if (nul == nullptr) return std::nullopt;
  return std::string(field, static_cast<const char*>(nul));
}

std::string signals_text(const std::vector<Signal>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i].index) + ":" + v[i].name + "(" +
         std::string(signal_type_name(v[i].type)) + (v[i].unit.empty() ? "" : ", " + v[i].unit) + ")";
  return s + "]";
}

constexpr std::string_view kSuffix = ".queue.shm";

}  // namespace

std::string_view signal_type_name(SignalType t) noexcept {
  switch (t) {
    case SignalType::invalid: return "invalid";
    case SignalType::f64: return "f64";
    case SignalType::i64: return "i64";
    case SignalType::boolean: return "bool";
    case SignalType::c64: return "c64";
  }
  return "invalid";
}

std::string_view queue_kind_name(QueueKind kind) noexcept {
  switch (kind) {
    case QueueKind::spsc: return "spsc";
    case QueueKind::mpmc: return "mpmc";
  }
  return "unknown";
}

std::string queue_path(std::string_view name_or_path) {
  // The name part: the basename, without ".queue.shm"; checked by the rule every channel shares.
  std::string_view name = name_or_path.substr(name_or_path.rfind('/') + 1);
  if (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix)
    name.remove_suffix(kSuffix.size());
  check_channel_name("queue", name, name_or_path, kMaxQueueName);
  for (std::string_view other : {std::string_view(".im.shm"), std::string_view(".memif.shm")}) {
    if (name.size() >= other.size() && name.substr(name.size() - other.size()) == other)
      throw Error(Errc::invalid_argument, "queue '" + escape_name(name_or_path) + "': a file name ending in '" +
                                              std::string(other) + "' is not a queue's");
  }
  if (name_or_path.find('/') != std::string_view::npos) return std::string(name_or_path);
  return stream_directory() + "/" + std::string(name) + std::string(kSuffix);
}

/// Copies `n` 8-byte values with fixed-size moves the compiler inlines (32, 16 and 8 bytes), not
/// a call to memcpy for a size known only at run time: a sample is a few values, and the call
/// and its size dispatch cost more than the copy.
inline void copy_values(SignalValue* dst, const SignalValue* src, std::size_t n) noexcept {
  for (; n >= 4; n -= 4, dst += 4, src += 4) std::memcpy(dst, src, 4 * sizeof(SignalValue));
  if (n >= 2) {
    std::memcpy(dst, src, 2 * sizeof(SignalValue));
    dst += 2;
    src += 2;
    n -= 2;
  }
  if (n != 0) std::memcpy(dst, src, sizeof(SignalValue));
}

struct Queue::Impl {
  Segment seg;
  QueueHeader* h = nullptr;
  std::byte* cells = nullptr;
  std::uint64_t cell_bytes = 0;
  std::uint32_t capacity = 0;
  std::uint64_t mask = 0;
  std::uint32_t max_values = 0;
  QueueKind kind = QueueKind::spsc;
  WaitMode wait = WaitMode::hybrid;
  std::vector<Signal> signals;
  std::string name;
  std::string path;
  bool writable = true;  ///< false: mapped read-only; push/pop return Errc::permission

  CellHeader* cell(std::uint64_t pos) const noexcept {
    return reinterpret_cast<CellHeader*>(cells + (pos & mask) * cell_bytes);
  }
  static SignalValue* values(CellHeader* c) noexcept { return reinterpret_cast<SignalValue*>(c + 1); }

  /// Values that share the cell's first cache line with its header (and turn).
  static constexpr std::size_t kHeadValues = (qlayout::kCacheLine - sizeof(CellHeader)) / sizeof(SignalValue);
  /// Copies a sample into a claimed cell (not yet published). The cell's later lines first, then
  /// its first line (header, first values) in one run of stores ending next to the publishing
  /// turn: a consumer polling that turn can then take the line away at most once per sample.
  /// Within a line the stores go in address order and as few as possible (the header as two
  /// 16-byte stores built in registers; the compiler fences keep the compiler from reordering
  /// them): a producer that outruns its consumer waits for ownership of the lines it writes, and
  /// a Zen 4 here went from 48 to 57 M samples/s with 8-value bursts (docs/design/queues.md).
  void fill(CellHeader* c, const Sample& s) const noexcept {
    const std::size_t n = s.values.size();
    if (n > kHeadValues) copy_values(values(c) + kHeadValues, s.values.data() + kHeadValues, n - kHeadValues);
    std::atomic_signal_fence(std::memory_order_seq_cst);
#if defined(__SSE2__)
    static_assert(offsetof(CellHeader, ts_origin) == offsetof(CellHeader, sequence) + 8 &&
                  offsetof(CellHeader, ts_received) == offsetof(CellHeader, sequence) + 16 &&
                  offsetof(CellHeader, flags) == offsetof(CellHeader, sequence) + 24 &&
                  offsetof(CellHeader, length) == offsetof(CellHeader, flags) + 4,
                  "the header is stored as (sequence, ts_origin) and (ts_received, flags | length << 32)");
    const auto word4 = static_cast<long long>(std::uint64_t{s.flags} | std::uint64_t{static_cast<std::uint32_t>(n)} << 32);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&c->sequence), _mm_set_epi64x(s.ts_origin_ns, static_cast<long long>(s.sequence)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&c->ts_received), _mm_set_epi64x(word4, s.ts_received_ns));
#else
    c->sequence = s.sequence;
    c->ts_origin = s.ts_origin_ns;
    c->ts_received = s.ts_received_ns;
    c->flags = s.flags;
    c->length = static_cast<std::uint32_t>(n);
#endif
    std::atomic_signal_fence(std::memory_order_seq_cst);
    copy_values(values(c), s.values.data(), std::min(n, kHeadValues));
  }
  /// fill() of `k` samples into the cells from position `pos`.
  void fill_run(std::uint64_t pos, const Sample* in, std::size_t k) const noexcept {
    for (std::size_t j = 0; j < k; ++j) fill(cell(pos + j), in[j]);
  }
  /// Copies a published cell out (the cell is still ours until released). Lengths a peer wrote
  /// beyond max_values are clamped: a lying peer never makes us read past the cell.
  void drain(CellHeader* c, Sample& out) const noexcept {
    out.sequence = c->sequence;
    out.ts_origin_ns = c->ts_origin;
    out.ts_received_ns = c->ts_received;
    out.flags = c->flags;
    const std::uint32_t n = std::min(c->length, max_values);
    out.values.resize(n);  // no allocation once the caller's vector has grown to max_values
    copy_values(out.values.data(), values(c), n);
  }

  /// Takes ownership of the cache lines of the `n` drained cells from position `pos`, from byte
  /// `from` of each cell on: one store per line of the 8 bytes it already holds (a relaxed load
  /// and store of the same value, so a concurrent reader of the line sees nothing change). Done by
  /// a consumer between copying a run out and freeing it; the cells are still its own then, so no
  /// producer writes them (the protocol; a producer breaking it could lose its own sample, never
  /// make us touch memory outside the cell).
  ///
  /// Why: a line the consumer only read is left shared by both cores, and the producer's write a
  /// lap later must upgrade it, a wait that did not overlap well with the next lines' waits. A line
  /// the consumer wrote is modified in one cache, and the producer takes it over in one transfer.
  /// On the Zen 4 VM of README.md's table, 32-sample bursts of 8 values went from 58 to 98 M/s
  /// (SPSC) and 57 to 91 M/s (MPMC) (docs/design/queues.md, "Bursts"). Runs of one cell skip it:
  /// the wake-up fence after a pop waits for these stores' ownership requests, and with one cell
  /// there is nothing to overlap them with (single pops fell from 24 to 15 M/s with it).
  void own_lines(std::uint64_t pos, std::uint64_t n, std::uint64_t from) const noexcept {
    for (std::uint64_t i = 0; i < n; ++i) {
      std::byte* c = reinterpret_cast<std::byte*>(cell(pos + i));
      for (std::uint64_t o = from; o < cell_bytes; o += qlayout::kCacheLine) {
        auto word = aref(*reinterpret_cast<std::uint64_t*>(c + o));
        word.store(word.load(std::memory_order_relaxed), std::memory_order_relaxed);
      }
    }
  }

  /// After a push: wakes sleeping consumers (seq_cst pairs with their register-then-check).
  void notify_pushed() noexcept {
    // Full fence: the publishing store must be visible before the waiter count is read, or a
    // consumer registering at the same moment could miss both (Dekker; pairs with wait_for()).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (aref(h->pop_waiters).load(std::memory_order_seq_cst) != 0) {
      aref(h->not_empty).fetch_add(1, std::memory_order_seq_cst);
      os::futex_wake(&h->not_empty);
    }
  }
  /// After a pop: wakes sleeping producers.
  void notify_popped() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // as in notify_pushed()
    if (aref(h->push_waiters).load(std::memory_order_seq_cst) != 0) {
      aref(h->not_full).fetch_add(1, std::memory_order_seq_cst);
      os::futex_wake(&h->not_full);
    }
  }
  bool shut() const noexcept { return aref(h->state).load(std::memory_order_acquire) == qlayout::kStateShut; }

  // SPSC producer state of this handle. The consumer frees cells by storing head on its own line;
  // the producer reads that line only when its copy says the ring is full (Lamport's queue with a
  // cached index), so a pop costs the producer no cache-line transfer.
  std::uint64_t cached_head = 0;
  bool producer_synced = false;

  /// SPSC, a handle's first push: carries on after a producer that died between publishing a cell
  /// (its turn) and recording tail, so that a published cell is neither overwritten nor waited for.
  std::uint64_t sync_producer(std::uint64_t pos) noexcept {
    const std::uint64_t hd = aref(h->head).load(std::memory_order_acquire);
    if (static_cast<std::int64_t>(hd - pos) > 0) pos = hd;  // the consumer already took them
    for (std::uint32_t i = 0; i < capacity; ++i, ++pos)
      if (aref(cell(pos)->turn).load(std::memory_order_acquire) != pos + 1) break;
    aref(h->tail).store(pos, std::memory_order_relaxed);
    cached_head = hd;
    producer_synced = true;
    return pos;
  }

  /// MPMC: claims up to `want` consecutive ready cells from the index `index` (tail for pushes,
  /// head for pops), Vyukov's way extended to a run: a cell at position p is ready when its turn
  /// is p + `lag` (push: 0, its consumer is done with it; pop: 1, it is published), and one CAS
  /// of the index over the run claims them all. No other producer (consumer) can take a cell of
  /// the run without first moving the index off its start, which fails our CAS. The turn loads
  /// acquire the other side's release.
  ///
  /// Bounded on any file contents: a first cell whose turn is ahead of the index means another
  /// producer (consumer) claimed it, and its CAS moved the index past it before its release of
  /// the turn we acquired, so the index re-read must be past `pos`. If it is not, the index was
  /// written behind the cells (a corrupted or hostile file): that is Errc::layout, not a reason to
  /// retry for ever. CAS failures (other claimers) and moves of the index are retried
  /// kMaxClaimAttempts times, then the call reports would_block, sets `claim_exhausted`, and the
  /// caller's own deadline decides (wait_for() reads the clock after such a call, so a co-user
  /// rewriting the index in a tight loop delays a timeout by one call's attempts, about a
  /// millisecond, not by 64 of them).
  /// @return how many (0: see `why`: would_block for full / empty, layout for an impossible
  ///         index); `pos` the first.
  std::uint64_t claim_run(std::uint64_t& index, std::uint64_t lag, std::uint64_t& pos, std::uint64_t want,
                          Errc& why) noexcept {
    constexpr int kMaxClaimAttempts = 1024;
    why = Errc::would_block;
    pos = aref(index).load(std::memory_order_relaxed);
    for (int attempt = 0; attempt < kMaxClaimAttempts; ++attempt) {
      std::uint64_t n = 0;
      bool moved = false;
      for (; n < want; ++n) {
        const std::uint64_t turn = aref(cell(pos + n)->turn).load(std::memory_order_acquire);
        const auto diff = static_cast<std::int64_t>(turn - (pos + n + lag));
        if (diff != 0) {
          moved = diff > 0 && n == 0;  // another producer (consumer) took the first cell
          break;                       // diff < 0: full (push) or empty (pop) from here
        }
      }
      if (n != 0) {
        if (aref(index).compare_exchange_weak(pos, pos + n, std::memory_order_relaxed)) return n;
      } else if (!moved) {
        return 0;
      } else {
        const std::uint64_t now = aref(index).load(std::memory_order_relaxed);
        if (static_cast<std::int64_t>(now - pos) <= 0) {
          report_corrupt(&index == &h->tail ? "tail" : "head", pos);
          why = Errc::layout;
          return 0;
        }
        pos = now;
      }
    }
    claim_exhausted.store(true, std::memory_order_relaxed);
    return 0;
  }
  /// Set by claim_run() when it gave up after kMaxClaimAttempts; cleared by wait_for(). A hint
  /// shared by every thread of the handle (a pusher and a popper may run at once): relaxed, and
  /// a hint seen by the other thread only costs it one clock read.
  std::atomic<bool> claim_exhausted{false};

  /// Logs, once per handle, that the queue's index `what` (at `pos`) is behind a cell's turn.
  void report_corrupt(const char* what, std::uint64_t pos) noexcept {
    if (corrupt_reported || !detail::log_enabled(LogLevel::error)) return;
    corrupt_reported = true;
    try {
      detail::log(LogLevel::error, "queue " + path + ": " + what + " " + std::to_string(pos) +
                                       " is behind its cell's turn (the file is corrupted): push and pop "
                                       "return Errc::layout");
    } catch (...) {  // std::bad_alloc: the status still says it
    }
  }
  bool corrupt_reported = false;

  /// Non-blocking push of up to `in.size()` samples, in order; one wake-up check for all.
  /// @return ok with `done` >= 1 (or `in` empty); else why none went (done = 0).
  Status push_burst(std::span<const Sample> in, std::size_t& done) noexcept {
    done = 0;
    if (!writable) return Errc::permission;
    if (in.empty()) return Errc::ok;
    if (shut()) return Errc::closed;
    Status why = Errc::ok;
    if (kind == QueueKind::spsc) {
      // One producer: run a local position over the burst and record tail once at the end.
      std::uint64_t pos = aref(h->tail).load(std::memory_order_relaxed);
      if (!producer_synced) pos = sync_producer(pos);
      const std::uint64_t first = pos;
      // How many fit: a prefix of samples short enough, up to the cells known to be free.
      for (const Sample& s : in) {
        if (s.values.size() > max_values) {
          why = Errc::size_mismatch;
          break;
        }
        if (pos - cached_head >= capacity) {
          // Acquire: the consumer's release of head means it is done with the cell we reuse.
          cached_head = aref(h->head).load(std::memory_order_acquire);
          if (pos - cached_head >= capacity) {
            why = Errc::would_block;
            break;
          }
        }
        ++pos;
      }
      done = static_cast<std::size_t>(pos - first);
      fill_run(first, in.data(), done);
      // Publish the run in order (release; pairs with pop_burst's acquire). Filling every cell
      // first means a consumer polling the run's first turn finds the whole run ready at once
      // and never pulls away a line we are still writing.
      for (std::uint64_t p = first; p != pos; ++p) aref(cell(p)->turn).store(p + 1, std::memory_order_release);
      if (done != 0) aref(h->tail).store(pos, std::memory_order_relaxed);  // a record; nobody waits on it
    } else {
      // The run of samples that fit a cell; a too-long one ends the burst.
      std::size_t fit = 0;
      while (fit < in.size() && in[fit].values.size() <= max_values) ++fit;
      if (fit == 0) return Errc::size_mismatch;
      std::uint64_t pos = 0;
      Errc why_not = Errc::would_block;
      const std::uint64_t n = claim_run(h->tail, 0, pos, fit, why_not);
      if (n == 0) return why_not;
      fill_run(pos, in.data(), n);
      // Publish after filling the whole run, as for SPSC (release; pairs with claim_run's acquire).
      for (std::uint64_t i = 0; i < n; ++i) aref(cell(pos + i)->turn).store(pos + i + 1, std::memory_order_release);
      done = n;
    }
    if (done == 0) return why;
    notify_pushed();
    return Errc::ok;
  }
  /// Non-blocking pop of up to `out.size()` samples; one wake-up check for all.
  /// @return ok with `done` >= 1 (or `out` empty); else would_block, closed (shut and drained).
  Status pop_burst(std::span<Sample> out, std::size_t& done) noexcept {
    done = 0;
    if (!writable) return Errc::permission;
    if (out.empty()) return Errc::ok;
    Errc why = pop_run(out, done);
    if (done == 0 && why == Errc::would_block && shut()) {
      // Closed only when empty after the shutdown was seen: the emptiness found above may
      // predate samples pushed before the shutdown (the consumer lost the CPU between its look
      // and this load). shut()'s acquire pairs with shutdown()'s seq_cst store, so a second
      // look sees every push made before it.
      why = pop_run(out, done);
      if (done == 0 && why == Errc::would_block) return Errc::closed;
    }
    if (done == 0) return why;
    notify_popped();
    return Errc::ok;
  }
  /// pop_burst()'s copy-out, without the wake-up: @return ok with `done` >= 1, else would_block
  /// (empty) or layout.
  Errc pop_run(std::span<Sample> out, std::size_t& done) noexcept {
    if (kind == QueueKind::spsc) {
      // One consumer: run a local position over the burst and free the cells with one store of
      // head (release: our reads of them are done before the producer reuses them).
      const std::uint64_t first = aref(h->head).load(std::memory_order_relaxed);
      std::uint64_t pos = first;  // a local count: `done` is the caller's memory
      for (Sample& s : out) {
        CellHeader* c = cell(pos);
        if (aref(c->turn).load(std::memory_order_acquire) != pos + 1) break;  // empty
        drain(c, s);
        ++pos;
      }
      done = static_cast<std::size_t>(pos - first);
      if (done > 1) own_lines(first, done, 0);  // line 0 by its turn, which keeps its value
      if (done != 0) aref(h->head).store(pos, std::memory_order_release);
    } else {
      std::uint64_t pos = 0;
      Errc why_not = Errc::would_block;
      const std::uint64_t n = claim_run(h->head, 1, pos, out.size(), why_not);
      if (n == 0) return why_not;
      for (std::uint64_t i = 0; i < n; ++i) drain(cell(pos + i), out[i]);
      if (n > 1) own_lines(pos, n, qlayout::kCacheLine);  // line 0 is written by its turn below
      // Free the run for the next lap after copying all of it (release: our reads come first).
      for (std::uint64_t i = 0; i < n; ++i) aref(cell(pos + i)->turn).store(pos + i + capacity, std::memory_order_release);
      done = n;
    }
    return done == 0 ? Errc::would_block : Errc::ok;
  }
  Status try_push(const Sample& s) noexcept {
    std::size_t n = 0;
    return push_burst(std::span(&s, 1), n);
  }
  Status try_pop(Sample& out) noexcept {
    std::size_t n = 0;
    return pop_burst(std::span(&out, 1), n);
  }

  /// Waits for `ready()` by the queue's wait mode: spin (polling: until the deadline; hybrid: a
  /// few microseconds), then sleep on `word` registered in `waiters`.
  template <class Ready>
  Status wait_for(Ready ready, std::uint32_t* word, std::uint32_t* waiters, std::int64_t deadline) noexcept {
    const std::int64_t spin_end =
        wait == WaitMode::polling ? deadline
        : wait == WaitMode::hybrid ? std::min(deadline, os::deadline_after(std::chrono::microseconds(20)))
                                   : 0;
    for (std::uint32_t i = 0; spin_end != 0; ++i) {
      if (ready()) return Errc::ok;
      // The clock every 64 looks, or after a look that spent its claim attempts (contention):
      // a successful or plainly empty/full look costs no clock read.
      if ((i % 64 == 63 || (claim_exhausted.load(std::memory_order_relaxed) &&
                            claim_exhausted.exchange(false, std::memory_order_relaxed))) && os::monotonic_ns() >= spin_end) break;
      os::cpu_relax();
    }
    if (wait == WaitMode::polling) return ready() ? Status(Errc::ok) : Status(Errc::timeout);
    for (;;) {
      const std::uint32_t seen = aref(*word).load(std::memory_order_seq_cst);
      aref(*waiters).fetch_add(1, std::memory_order_seq_cst);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // registered before ready() looks
      if (ready()) {
        aref(*waiters).fetch_sub(1, std::memory_order_relaxed);
        return Errc::ok;
      }
      const std::int64_t now = os::monotonic_ns();
      if (now >= deadline) {
        aref(*waiters).fetch_sub(1, std::memory_order_relaxed);
        return Errc::timeout;
      }
      // At most 100 ms per sleep: a peer that died while counted as a waiter, or a shutdown,
      // is noticed without a wake-up.
      const timespec rel = os::to_timespec(std::min<std::int64_t>(deadline - now, 100'000'000));
      const os::FutexResult r = os::futex_wait(word, seen, &rel);
      aref(*waiters).fetch_sub(1, std::memory_order_relaxed);
      if (ready()) return Errc::ok;
      if (r == os::FutexResult::interrupted) return Errc::interrupted;
    }
  }
};

Queue::Queue() noexcept = default;
Queue::Queue(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Queue::Queue(Queue&&) noexcept = default;
Queue& Queue::operator=(Queue&&) noexcept = default;
Queue::~Queue() = default;
void Queue::close() noexcept { impl_.reset(); }

namespace {

void check_spec(const std::string& path, const QueueSpec& spec) {
  auto bad = [&](const std::string& what) { throw Error(Errc::invalid_argument, "creating queue " + path + ": " + what); };
  if (spec.capacity < 2 || spec.capacity > kMaxQueueCapacity || !std::has_single_bit(spec.capacity))
    bad("capacity " + std::to_string(spec.capacity) + " is not a power of two in 2.." + std::to_string(kMaxQueueCapacity));
  if (spec.max_values < 1 || spec.max_values > kMaxSampleValues)
    bad("max_values " + std::to_string(spec.max_values) + " is not 1.." + std::to_string(kMaxSampleValues));
  if (spec.kind != QueueKind::spsc && spec.kind != QueueKind::mpmc) bad("unknown queue kind");
  if (spec.wait != WaitMode::polling && spec.wait != WaitMode::futex && spec.wait != WaitMode::hybrid)
    bad("unknown wait mode");
  if (spec.signals.size() > spec.max_values)
    bad(std::to_string(spec.signals.size()) + " signals but only " + std::to_string(spec.max_values) + " values per sample");
  std::set<std::uint32_t> seen;
  for (const Signal& s : spec.signals) {
    if (s.index >= spec.max_values)
      bad("signal '" + s.name + "' has index " + std::to_string(s.index) + ", not below max_values " +
          std::to_string(spec.max_values));
    if (!seen.insert(s.index).second) bad("two signals have index " + std::to_string(s.index));
    if (s.name.size() > kMaxSignalName) bad("signal name '" + s.name + "' exceeds 39 bytes");
    if (s.unit.size() > kMaxSignalUnit) bad("unit '" + s.unit + "' of signal '" + s.name + "' exceeds 15 bytes");
    if (s.type != SignalType::f64 && s.type != SignalType::i64 && s.type != SignalType::boolean &&
        s.type != SignalType::c64)
      bad("signal '" + s.name + "' has type " + std::to_string(static_cast<int>(s.type)));
  }
  check_channel_permissions(spec.permissions, path);
}

void init_file(Segment& seg, const QueueSpec& spec) {
  auto* h = reinterpret_cast<QueueHeader*>(seg.data());
  const auto nsig = static_cast<std::uint32_t>(spec.signals.size());
  std::memcpy(h->magic, qlayout::kMagic, sizeof h->magic);
  h->header_bytes = static_cast<std::uint32_t>(qlayout::header_bytes(nsig));
  h->cell_bytes = static_cast<std::uint32_t>(qlayout::cell_bytes(spec.max_values));
  h->capacity = spec.capacity;
  h->max_values = spec.max_values;
  h->kind = static_cast<std::uint8_t>(spec.kind);
  h->wait = static_cast<std::uint8_t>(spec.wait);
  h->signal_count = static_cast<std::uint16_t>(nsig);
  h->creator_pid = os::current_pid();
  h->creation_time_ns = os::realtime_ns();
  h->state = qlayout::kStateOpen;
  auto* table = reinterpret_cast<SignalEntry*>(seg.data() + sizeof(QueueHeader));
  for (std::uint32_t i = 0; i < nsig; ++i) {
    const Signal& s = spec.signals[i];
    table[i].index = s.index;
    table[i].type = static_cast<std::uint8_t>(s.type);
    std::memcpy(table[i].name, s.name.data(), s.name.size());
    std::memcpy(table[i].unit, s.unit.data(), s.unit.size());
  }
  std::byte* cells = seg.data() + h->header_bytes;
  for (std::uint32_t i = 0; i < spec.capacity; ++i)  // Vyukov: cell i starts at turn i
    reinterpret_cast<CellHeader*>(cells + std::uint64_t{i} * h->cell_bytes)->turn = i;
  // The readiness marker, last (Queue::open loads it with acquire).
  std::atomic_ref<std::uint32_t>(h->version).store(qlayout::kVersion, std::memory_order_release);
}

}  // namespace

// Every size Queue::open computes from checked header fields (capacity <= kMaxQueueCapacity,
// max_values <= kMaxSampleValues, signal_count <= max_values) fits 64 bits with room to spare, so
// no header can wrap the expected file size.
static_assert(qlayout::file_bytes(kMaxSampleValues, kMaxSampleValues, kMaxQueueCapacity) < (std::uint64_t{1} << 40));

Queue Queue::create(std::string_view name_or_path, const QueueSpec& spec, OpenMode mode) {
  const std::string path = queue_path(name_or_path);
  if (mode == OpenMode::OpenExisting) return open(name_or_path);
  check_spec(path, spec);
  if (mode == OpenMode::OpenOrCreate) {
    try {
      return open(name_or_path, QueueExpect{spec.max_values, spec.signals, spec.kind});
    } catch (const Error& e) {
      if (e.errc() != Errc::not_found) throw;
    }
    try {
      return create(name_or_path, spec, OpenMode::ExclusiveCreate);
    } catch (const Error& e) {
      if (e.errc() != Errc::exists) throw;
      return open(name_or_path, QueueExpect{spec.max_values, spec.signals, spec.kind});
    }
  }
  const auto size = qlayout::file_bytes(static_cast<std::uint32_t>(spec.signals.size()), spec.max_values, spec.capacity);
  Segment seg = Segment::create_file(path, static_cast<std::size_t>(size), mode, spec.permissions,
                                     [&](Segment& fresh) { init_file(fresh, spec); });
  seg = Segment();  // re-open through the validating path: one way to bind a mapping
  return open(path);
}

Queue Queue::open(std::string_view name_or_path, const QueueExpect& expect) {
  const std::string path = queue_path(name_or_path);
  Segment seg = Segment::open_file(path, expect.writable);
  auto fail = [&](const std::string& what) { throw Error(Errc::layout, "opening queue " + path + ": " + what); };
  if (seg.size() < qlayout::kCacheLine)
    fail("file is " + std::to_string(seg.size()) + " bytes, smaller than a queue header's first 64 bytes");
  auto* h = reinterpret_cast<QueueHeader*>(seg.data());
  if (std::memcmp(h->magic, qlayout::kMagic, sizeof h->magic) != 0) fail("no SHMLINKQ magic (not a shmlink queue)");
  const std::uint32_t version = std::atomic_ref<std::uint32_t>(h->version).load(std::memory_order_acquire);
  if (version == 0) fail("version is 0 (queue not ready)");
  if (version != qlayout::kVersion)
    fail("layout version " + std::to_string(version) + ", this shmlink reads version " + std::to_string(qlayout::kVersion));
  if (seg.size() < sizeof(QueueHeader))
    fail("file is " + std::to_string(seg.size()) + " bytes, smaller than the " + std::to_string(sizeof(QueueHeader)) +
         "-byte header");
  // One read of each geometry field, checked, then used: the limits below bound every size
  // computed from them (see the static_assert after the namespace: no product can wrap).
  const std::uint32_t cap = h->capacity, maxv = h->max_values, nsig = h->signal_count;
  const std::uint8_t kind_code = h->kind, wait_code = h->wait;
  if (cap < 2 || cap > kMaxQueueCapacity || !std::has_single_bit(cap))
    fail("capacity " + std::to_string(cap) + " is not a power of two in 2.." + std::to_string(kMaxQueueCapacity));
  if (maxv < 1 || maxv > kMaxSampleValues) fail("max_values " + std::to_string(maxv) + " is out of range");
  if (nsig > maxv) fail(std::to_string(nsig) + " signals exceed max_values " + std::to_string(maxv));
  if (kind_code != static_cast<std::uint8_t>(QueueKind::spsc) && kind_code != static_cast<std::uint8_t>(QueueKind::mpmc))
    fail("kind " + std::to_string(kind_code) + " is not spsc (1) or mpmc (2)");
  if (wait_code < 1 || wait_code > 3) fail("wait mode " + std::to_string(wait_code) + " is not 1..3");
  if (h->header_bytes != qlayout::header_bytes(nsig))
    fail("header_bytes is " + std::to_string(h->header_bytes) + ", expected " + std::to_string(qlayout::header_bytes(nsig)));
  if (h->cell_bytes != qlayout::cell_bytes(maxv))
    fail("cell_bytes is " + std::to_string(h->cell_bytes) + ", expected " + std::to_string(qlayout::cell_bytes(maxv)));
  if (qlayout::file_bytes(nsig, maxv, cap) != seg.size())
    fail("file is " + std::to_string(seg.size()) + " bytes but its header describes " +
         std::to_string(qlayout::file_bytes(nsig, maxv, cap)));
  std::vector<Signal> signals;
  const auto* table = reinterpret_cast<const SignalEntry*>(seg.data() + sizeof(QueueHeader));
  for (std::uint32_t i = 0; i < nsig; ++i) {
    Signal s;
    s.index = table[i].index;
    s.type = static_cast<SignalType>(table[i].type);
    auto name = fixed(table[i].name, sizeof table[i].name);
    auto unit = fixed(table[i].unit, sizeof table[i].unit);
    if (!name || !unit) fail("signal " + std::to_string(i) + ": name or unit is not NUL-terminated");
    s.name = *name;
    s.unit = *unit;
    if (s.index >= maxv) fail("signal '" + s.name + "' index " + std::to_string(s.index) + " is not below max_values");
    if (s.type != SignalType::f64 && s.type != SignalType::i64 && s.type != SignalType::boolean &&
        s.type != SignalType::c64)
      fail("signal '" + s.name + "' has type " + std::to_string(table[i].type) + ", not 1..4");
    for (const Signal& prev : signals)
      if (prev.index == s.index)
        fail("signals '" + prev.name + "' and '" + s.name + "' both have index " + std::to_string(s.index));
    signals.push_back(std::move(s));
  }
  if (expect.max_values && *expect.max_values != maxv)
    fail("it has " + std::to_string(maxv) + " values per sample, expected " + std::to_string(*expect.max_values));
  if (expect.kind && static_cast<std::uint8_t>(*expect.kind) != kind_code)
    fail("it is " + std::string(queue_kind_name(static_cast<QueueKind>(kind_code))) + ", expected " +
         std::string(queue_kind_name(*expect.kind)));
  if (expect.signals && *expect.signals != signals)
    fail("signal table " + signals_text(signals) + " differs from the expected " + signals_text(*expect.signals));

  // Bind from the values checked above, never from the header again: a peer may change it
  // after the checks.
  const auto kind = static_cast<QueueKind>(kind_code);
  const auto wait = static_cast<WaitMode>(wait_code);
  auto impl = std::make_unique<Impl>();
  impl->seg = std::move(seg);
  impl->h = reinterpret_cast<QueueHeader*>(impl->seg.data());
  impl->cells = impl->seg.data() + qlayout::header_bytes(nsig);
  impl->cell_bytes = qlayout::cell_bytes(maxv);
  impl->capacity = cap;
  impl->mask = cap - 1;
  impl->max_values = maxv;
  impl->kind = kind;
  impl->wait = wait;
  impl->signals = std::move(signals);
  impl->path = path;
  impl->writable = expect.writable;
  const std::string base = path.substr(path.rfind('/') + 1);
  impl->name = base.size() > kSuffix.size() && base.ends_with(kSuffix) ? base.substr(0, base.size() - kSuffix.size()) : base;
  return Queue(std::move(impl));
}

void Queue::remove(std::string_view name_or_path) {
  const std::string path = queue_path(name_or_path);
  if (::unlink(path.c_str()) != 0) os::throw_errno(errno, "removing queue", path);
}

namespace {
const std::string kNone;
const std::vector<Signal> kNoSignals;
}  // namespace

const std::string& Queue::name() const noexcept { return impl_ ? impl_->name : kNone; }
const std::string& Queue::path() const noexcept { return impl_ ? impl_->path : kNone; }
std::uint32_t Queue::capacity() const noexcept { return impl_ ? impl_->capacity : 0; }
std::uint32_t Queue::max_values() const noexcept { return impl_ ? impl_->max_values : 0; }
QueueKind Queue::kind() const noexcept { return impl_ ? impl_->kind : QueueKind::spsc; }
WaitMode Queue::wait_mode() const noexcept { return impl_ ? impl_->wait : WaitMode::hybrid; }

void Queue::mark_consumer_attached(std::uint64_t token) noexcept {
  if (!impl_ || !impl_->writable) return;
  aref(impl_->h->consumer_pid).store(os::current_pid(), std::memory_order_release);
  aref(impl_->h->consumer_token).store(token, std::memory_order_release);
}

std::uint64_t Queue::consumer_token() const noexcept {
  return impl_ ? aref(impl_->h->consumer_token).load(std::memory_order_acquire) : 0;
}

pid_t Queue::consumer_pid() const noexcept {
  return impl_ ? aref(impl_->h->consumer_pid).load(std::memory_order_acquire) : 0;
}

void Queue::set_wait_mode(WaitMode mode) noexcept {
  if (impl_ && (mode == WaitMode::polling || mode == WaitMode::futex || mode == WaitMode::hybrid))
    impl_->wait = mode;
}
const std::vector<Signal>& Queue::signals() const noexcept { return impl_ ? impl_->signals : kNoSignals; }

std::uint64_t Queue::size() const noexcept {
  if (!impl_) return 0;
  const std::uint64_t hd = aref(impl_->h->head).load(std::memory_order_acquire);
  const std::uint64_t tl = aref(impl_->h->tail).load(std::memory_order_acquire);
  return tl > hd ? std::min<std::uint64_t>(tl - hd, impl_->capacity) : 0;
}

QueueInfo Queue::info() const {
  if (!impl_) throw Error(Errc::closed, "queue handle is closed");
  const Impl& m = *impl_;
  QueueInfo i;
  i.name = m.name;
  i.path = m.path;
  i.version = aref(m.h->version).load(std::memory_order_acquire);
  i.kind = m.kind;
  i.wait = static_cast<WaitMode>(m.h->wait);  // the recorded mode, not this handle's
  i.capacity = m.capacity;
  i.max_values = m.max_values;
  i.cell_bytes = static_cast<std::uint32_t>(m.cell_bytes);
  i.file_bytes = m.seg.size();
  i.pushed = aref(m.h->tail).load(std::memory_order_acquire);
  i.popped = aref(m.h->head).load(std::memory_order_acquire);
  i.closed = m.shut();
  i.creator_pid = m.h->creator_pid;
  i.consumer_pid = aref(m.h->consumer_pid).load(std::memory_order_acquire);
  i.creation_time_ns = m.h->creation_time_ns;
  i.signals = m.signals;
  return i;
}

Status Queue::try_push(const Sample& s) noexcept {
  if (!impl_) return Errc::closed;
  return impl_->try_push(s);
}

Status Queue::try_push_burst(std::span<const Sample> samples, std::size_t& pushed) noexcept {
  pushed = 0;
  if (!impl_) return Errc::closed;
  return impl_->push_burst(samples, pushed);
}

Status Queue::push(const Sample& s, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (;;) {
    const Status st = m.try_push(s);
    if (st.code() != Errc::would_block) return st;
    if (os::monotonic_ns() >= deadline) return Errc::timeout;
    // The wait's readiness test is the push itself: when a cell frees, the sample goes in at
    // once, without a second look at the cell.
    Status done = Errc::would_block;
    const Status w = m.wait_for(
        [&] {
          done = m.try_push(s);
          return done.code() != Errc::would_block;
        },
        &m.h->not_full, &m.h->push_waiters, deadline);
    if (!w.ok()) return w;
    if (done.code() != Errc::would_block) return done;
  }
}

Status Queue::try_pop(Sample& out) noexcept {
  if (!impl_) return Errc::closed;
  return impl_->try_pop(out);
}

Status Queue::try_pop_burst(std::span<Sample> out, std::size_t& popped) noexcept {
  popped = 0;
  if (!impl_) return Errc::closed;
  return impl_->pop_burst(out, popped);
}

Status Queue::pop(Sample& out, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (;;) {
    const Status st = m.try_pop(out);
    if (st.code() != Errc::would_block) return st;
    if (os::monotonic_ns() >= deadline) return Errc::timeout;
    // The wait's readiness test is the pop itself (see push()).
    Status done = Errc::would_block;
    const Status w = m.wait_for(
        [&] {
          done = m.try_pop(out);
          return done.code() != Errc::would_block;
        },
        &m.h->not_empty, &m.h->pop_waiters, deadline);
    if (!w.ok()) return w;
    if (done.code() != Errc::would_block) return done;
  }
}

void Queue::shutdown() noexcept {
  if (!impl_ || !impl_->writable) return;
  QueueHeader* h = impl_->h;
  aref(h->state).store(qlayout::kStateShut, std::memory_order_seq_cst);
  aref(h->not_empty).fetch_add(1, std::memory_order_seq_cst);
  aref(h->not_full).fetch_add(1, std::memory_order_seq_cst);
  os::futex_wake(&h->not_empty);
  os::futex_wake(&h->not_full);
}

bool Queue::is_shut() const noexcept { return impl_ && impl_->shut(); }

}  // namespace shmlink
