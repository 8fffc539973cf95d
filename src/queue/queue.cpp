// SPDX-License-Identifier: MIT
// Sample queues (include/shmlink/queue.hpp). Layout: src/queue/queue_layout.hpp. Algorithms:
// a plain SPSC ring, and Dmitry Vyukov's bounded MPMC queue (docs/reference/villas-shmem.md
// 12.2) with per-cell turn numbers; docs/design/queues.md explains the orderings.
//
// Every atomic access names its SYNC POINT, the pair of accesses that orders it:
//   R  readiness: init()'s release store of version / validate()'s acquire (queue_layout.cpp)
//   P  publish:   a producer's release store of a cell's turn (pos + 1) / the consumer's acquire
//                 load of that turn, after which it reads the cell
//   F  free:      a consumer's release that hands cells back (MPMC: the turn pos + capacity;
//                 SPSC: head) / the producer's acquire load of that turn or of head, after which
//                 it overwrites the cells
//   W  wake:      a waker's seq_cst fence then waiter-count load / a sleeper's seq_cst waiter
//                 increment, fence, then its look at the queue (Dekker: one of them sees the other)
//   S  shutdown:  shutdown()'s seq_cst store of state / shut()'s acquire load
//   A  attach:    mark_consumer_attached()'s release stores / consumer_pid()/consumer_token()'s
//                 acquire loads
// Relaxed accesses say why no ordering is needed.
#include <shmlink/doorbell.hpp>
#include <shmlink/queue.hpp>

#include "os/backoff.hpp"
#include "os/clock.hpp"
#include "os/futex.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"
#include "os/sys.hpp"
#include "queue/queue_layout.hpp"
#include "remote/remote_open.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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
// Every type this file accesses atomically in the mapping: lock-free, so processes that map the
// queue share the same atomics (a lock-based atomic_ref would lock a process-local table).
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);  // turn, tail, head, consumer_token
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);  // version, waiters, futex words, state
static_assert(std::atomic_ref<std::int32_t>::is_always_lock_free);   // consumer_pid
static_assert(std::atomic<bool>::is_always_lock_free);               // claim_exhausted (process-local)

}  // namespace

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
  Placement where;  ///< the queue's bytes; `where.owner` keeps them mapped
  std::uint64_t bytes = 0;  ///< bytes the layout uses (<= where.bytes.size())
  QueueHeader* h = nullptr;
  std::byte* cells = nullptr;
  std::uint64_t cell_bytes = 0;
  std::uint32_t capacity = 0;
  std::uint64_t mask = 0;
  std::uint32_t max_values = 0;
  QueueKind kind = QueueKind::spsc;
  WaitMode wait = WaitMode::hybrid;
  bool backoff = false;  ///< polling forced by other kernels (futex/hybrid asked): wait_for sleeps too
  std::vector<Signal> signals;
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
  /// them): a producer that outruns its consumer waits for ownership of the lines it writes
  /// (docs/design/queues.md, "Algorithms", has the measurements).
  /// `S` is Sample or SampleView (the same field names; `values` has size() and data()).
  template <class S>
  void fill(CellHeader* c, const S& s) const noexcept {
    const std::size_t n = s.values.size();
    if (n > kHeadValues) copy_values(values(c) + kHeadValues, s.values.data() + kHeadValues, n - kHeadValues);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // compiler-only: no reordering across, no pair
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
    std::atomic_signal_fence(std::memory_order_seq_cst);  // compiler-only: no reordering across, no pair
    copy_values(values(c), s.values.data(), std::min(n, kHeadValues));
  }
  /// fill() of `k` samples into the cells from position `pos`.
  template <class S>
  void fill_run(std::uint64_t pos, const S* in, std::size_t k) const noexcept {
    for (std::size_t j = 0; j < k; ++j) fill(cell(pos + j), in[j]);
  }
  /// Copies a published cell out (the cell is still ours until released). Lengths a peer wrote
  /// beyond max_values are clamped: a lying peer never makes us read past the cell.
  void drain(CellHeader* c, Sample& out) const noexcept {
    out.sequence = c->sequence;
    out.ts_origin_ns = c->ts_origin;
    out.ts_received_ns = c->ts_received;
    out.flags = c->flags;
    const std::uint32_t n = std::min(peer_length(c), max_values);
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
  /// Runs of one cell skip it: the wake-up fence after a pop waits for these stores' ownership
  /// requests, and with one cell there is nothing to overlap them with (docs/design/queues.md,
  /// "Algorithms", has the measurements).
  void own_lines(std::uint64_t pos, std::uint64_t n, std::uint64_t from) const noexcept {
    for (std::uint64_t i = 0; i < n; ++i) {
      std::byte* c = reinterpret_cast<std::byte*>(cell(pos + i));
      for (std::uint64_t o = from; o < cell_bytes; o += qlayout::kCacheLine) {
        auto word = aref(*reinterpret_cast<std::uint64_t*>(c + o));
        // Relaxed: no pair. The same value goes back; only the line's ownership changes, and
        // the release that frees the cells (SYNC POINT F) comes after.
        word.store(word.load(std::memory_order_relaxed), std::memory_order_relaxed);
      }
    }
  }

  /// After a push: wakes sleeping consumers (seq_cst pairs with their register-then-check).
  void notify_pushed() noexcept {
    // SYNC POINT W (seq_cst fence, waker side): the publishing store must be visible before the
    // waiter count is read, or a consumer registering at the same moment could miss both
    // (Dekker; pairs with wait_for()'s increment and fence).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (aref(h->pop_waiters).load(std::memory_order_seq_cst) != 0) {  // SYNC POINT W
      // SYNC POINT W: the word moves before the wake, so a sleeper that read the old value
      // either sees the new one (futex_wait returns at once) or is woken.
      aref(h->not_empty).fetch_add(1, std::memory_order_seq_cst);
      os::futex_wake(&h->not_empty);
    }
    if (where.doorbell) where.doorbell->notify();  // poppers on other kernels (SYNC POINT D)
  }
  /// After a pop: wakes sleeping producers.
  void notify_popped() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // SYNC POINT W, as in notify_pushed()
    if (aref(h->push_waiters).load(std::memory_order_seq_cst) != 0) {  // SYNC POINT W
      aref(h->not_full).fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT W
      os::futex_wake(&h->not_full);
    }
    if (where.doorbell) where.doorbell->notify();  // pushers on other kernels (SYNC POINT D)
  }
  /// SYNC POINT S (acquire): pairs with shutdown()'s seq_cst store of state; a pop that sees
  /// the state shut then sees every push made before the shutdown.
  bool shut() const noexcept { return aref(h->state).load(std::memory_order_acquire) == qlayout::kStateShut; }

  // SPSC producer state of this handle. The consumer frees cells by storing head on its own line;
  // the producer reads that line only when its copy says the ring is full (Lamport's queue with a
  // cached index), so a pop costs the producer no cache-line transfer.
  std::uint64_t cached_head = 0;
  bool producer_synced = false;

  /// SPSC, a handle's first push: carries on after a producer that died between publishing a cell
  /// (its turn) and recording tail, so that a published cell is neither overwritten nor waited for.
  std::uint64_t sync_producer(std::uint64_t pos) noexcept {
    // SYNC POINT F (acquire): pairs with the consumer's release store of head in pop_run().
    const std::uint64_t hd = aref(h->head).load(std::memory_order_acquire);
    if (static_cast<std::int64_t>(hd - pos) > 0) pos = hd;  // the consumer already took them
    for (std::uint32_t i = 0; i < capacity; ++i, ++pos)  // SYNC POINT P (acquire): the dead producer's release
      if (aref(cell(pos)->turn).load(std::memory_order_acquire) != pos + 1) break;
    aref(h->tail).store(pos, std::memory_order_relaxed);  // relaxed: a record for observers, no pair
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
    // Relaxed: the index is only a hint of where to look; the turns (acquire) decide, and the
    // CAS below fails if the index moved meanwhile.
    pos = aref(index).load(std::memory_order_relaxed);
    for (int attempt = 0; attempt < kMaxClaimAttempts; ++attempt) {
      std::uint64_t n = 0;
      bool moved = false;
      for (; n < want; ++n) {
        // SYNC POINT P (pop, lag 1: pairs with push_burst()'s release of the turn) or
        // SYNC POINT F (push, lag 0: pairs with pop_run()'s release of the turn).
        const std::uint64_t turn = aref(cell(pos + n)->turn).load(std::memory_order_acquire);
        const auto diff = static_cast<std::int64_t>(turn - (pos + n + lag));
        if (diff != 0) {
          moved = diff > 0 && n == 0;  // another producer (consumer) took the first cell
          break;                       // diff < 0: full (push) or empty (pop) from here
        }
      }
      if (n != 0) {
        // Relaxed CAS: it only claims the run among claimers; the cells' contents were ordered
        // by the turn loads above (P or F), and the release of the turns we store later orders
        // our writes or reads of them.
        if (aref(index).compare_exchange_weak(pos, pos + n, std::memory_order_relaxed)) return n;
      } else if (!moved) {
        return 0;
      } else {
        const std::uint64_t now = aref(index).load(std::memory_order_relaxed);  // a hint, as above
        if (static_cast<std::int64_t>(now - pos) <= 0) {
          report_corrupt(&index == &h->tail ? "tail" : "head", pos);
          why = Errc::layout;
          return 0;
        }
        pos = now;
      }
    }
    claim_exhausted.store(true, std::memory_order_relaxed);  // a process-local hint, no pair
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
      detail::log(LogLevel::error, "queue " + where.path + ": " + what + " " + std::to_string(pos) +
                                       " is behind its cell's turn (the file is corrupted): push and pop "
                                       "return Errc::layout");
    } catch (...) {  // std::bad_alloc: the status still says it
    }
  }
  bool corrupt_reported = false;

  /// Non-blocking push of up to `in.size()` samples, in order; one wake-up check for all.
  /// @return ok with `done` >= 1 (or `in` empty); else why none went (done = 0).
  template <class S>
  Status push_burst(std::span<const S> in, std::size_t& done) noexcept {
    done = 0;
    if (!writable) return Errc::permission;
    if (in.empty()) return Errc::ok;
    if (!where.word_current()) return Errc::replaced;  // its region entry was removed: push nothing
    if (shut()) return Errc::shut_down;
    Status why = Errc::ok;
    if (kind == QueueKind::spsc) {
      // One producer: run a local position over the burst and record tail once at the end.
      // Relaxed: tail is written by this (the only) producer; a record, not a sync point.
      std::uint64_t pos = aref(h->tail).load(std::memory_order_relaxed);
      if (!producer_synced) pos = sync_producer(pos);
      const std::uint64_t first = pos;
      // How many fit: a prefix of samples short enough, up to the cells known to be free.
      for (const S& s : in) {
        if (s.values.size() > max_values) {
          why = Errc::size_mismatch;
          break;
        }
        if (pos - cached_head >= capacity) {
          // SYNC POINT F (acquire): pairs with pop_run()'s release store of head: the consumer
          // is done with the cell we reuse.
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
      // SYNC POINT P (release): publish the run in order; pairs with pop_run()'s acquire load
      // of each turn (and claim_run()'s for MPMC below). Filling every cell
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
      // SYNC POINT P (release): publish after filling the whole run, as for SPSC; pairs with
      // claim_run()'s acquire load of the turn in a consumer.
      for (std::uint64_t i = 0; i < n; ++i) aref(cell(pos + i)->turn).store(pos + i + 1, std::memory_order_release);
      done = n;
    }
    if (done == 0) return why;
    notify_pushed();
    return Errc::ok;
  }
  /// Non-blocking pop of up to `out.size()` samples; one wake-up check for all.
  /// @return ok with `done` >= 1 (or `out` empty); else would_block, closed (shut and drained).
  /// `take(cell, i)` consumes the i-th cell of the run (a published cell, still ours: copied out
  /// into a Sample, or shown to a handler as a SampleView) before the run is freed.
  template <class Take>
  Status pop_burst(std::size_t want, Take&& take, std::size_t& done) noexcept {
    done = 0;
    if (!writable) return Errc::permission;
    if (want == 0) return Errc::ok;
    Errc why = pop_run(want, take, done);
    // Empty and its region entry removed: nothing more will come (what was pushed was taken).
    if (done == 0 && why == Errc::would_block && !where.word_current()) return Errc::replaced;
    if (done == 0 && why == Errc::would_block && shut()) {
      // Shut down only when empty after the shutdown was seen: the emptiness found above may
      // predate samples pushed before the shutdown (the consumer lost the CPU between its look
      // and this load). shut()'s acquire pairs with shutdown()'s seq_cst store, so a second
      // look sees every push made before it.
      why = pop_run(want, take, done);
      if (done == 0 && why == Errc::would_block) return Errc::shut_down;
    }
    if (done == 0) return why;
    notify_popped();
    return Errc::ok;
  }
  /// pop_burst()'s copy-out, without the wake-up: @return ok with `done` >= 1, else would_block
  /// (empty) or layout.
  template <class Take>
  Errc pop_run(std::size_t want, Take& take, std::size_t& done) noexcept {
    if (kind == QueueKind::spsc) {
      // One consumer: run a local position over the burst and free the cells with one store of
      // head (release: our reads of them are done before the producer reuses them).
      // Relaxed: head is written by this (the only) consumer.
      const std::uint64_t first = aref(h->head).load(std::memory_order_relaxed);
      std::uint64_t pos = first;  // a local count: `done` is the caller's memory
      for (std::size_t i = 0; i < want; ++i, ++pos) {
        CellHeader* c = cell(pos);
        // SYNC POINT P (acquire): pairs with push_burst()'s release store of the turn.
        if (aref(c->turn).load(std::memory_order_acquire) != pos + 1) break;  // empty
        take(c, i);
      }
      done = static_cast<std::size_t>(pos - first);
      if (done > 1) own_lines(first, done, 0);  // line 0 by its turn, which keeps its value
      // SYNC POINT F (release): our reads of the cells come first; pairs with the producer's
      // acquire loads of head (push_burst(), sync_producer()).
      if (done != 0) aref(h->head).store(pos, std::memory_order_release);
    } else {
      std::uint64_t pos = 0;
      Errc why_not = Errc::would_block;
      const std::uint64_t n = claim_run(h->head, 1, pos, want, why_not);
      if (n == 0) return why_not;
      for (std::uint64_t i = 0; i < n; ++i) take(cell(pos + i), static_cast<std::size_t>(i));
      if (n > 1) own_lines(pos, n, qlayout::kCacheLine);  // line 0 is written by its turn below
      // SYNC POINT F (release): free the run for the next lap after copying all of it (our
      // reads come first); pairs with claim_run()'s acquire load of the turn in a producer.
      for (std::uint64_t i = 0; i < n; ++i) aref(cell(pos + i)->turn).store(pos + i + capacity, std::memory_order_release);
      done = n;
    }
    return done == 0 ? Errc::would_block : Errc::ok;
  }
  template <class S>
  Status try_push(const S& s) noexcept {
    std::size_t n = 0;
    return push_burst(std::span<const S>(&s, 1), n);
  }
  /// A blocking push of a Sample or SampleView (Queue::push).
  template <class S>
  Status push_wait(const S& s, std::chrono::nanoseconds timeout) noexcept {
    const std::int64_t deadline = os::deadline_after(timeout);
    for (;;) {
      const Status st = try_push(s);
      if (st.code() != Errc::would_block) return st;
      if (os::monotonic_ns() >= deadline) return Errc::timeout;
      // The wait's readiness test is the push itself: when a cell frees, the sample goes in at
      // once, without a second look at the cell.
      Status done = Errc::would_block;
      const Status w = wait_for(
          [&] {
            done = try_push(s);
            return done.code() != Errc::would_block;
          },
          &h->not_full, &h->push_waiters, deadline);
      if (!w.ok()) return w;
      if (done.code() != Errc::would_block) return done;
    }
  }
  Status pop_burst(std::span<Sample> out, std::size_t& done) noexcept {
    return pop_burst(out.size(), [&](CellHeader* c, std::size_t i) { drain(c, out[i]); }, done);
  }
  /// The length a peer wrote in cell `c`, read exactly once (a local copy): the clamp and the copy
  /// then use the same value, whatever the peer writes meanwhile. Relaxed: the cell's contents are
  /// ordered by SYNC POINT P (the acquire of the cell's sequence before the caller reads it).
  static std::uint32_t peer_length(CellHeader* c) noexcept {
    return std::atomic_ref<std::uint32_t>(c->length).load(std::memory_order_relaxed);
  }

  /// The view of a published cell that is still ours; its length clamped as drain() clamps it.
  SampleView view(CellHeader* c) const noexcept {
    SampleView v;
    v.sequence = c->sequence;
    v.ts_origin_ns = c->ts_origin;
    v.ts_received_ns = c->ts_received;
    v.flags = c->flags;
    v.values = {values(c), std::min(peer_length(c), max_values)};
    return v;
  }
  Status try_pop(Sample& out) noexcept {
    std::size_t n = 0;
    return pop_burst(std::span(&out, 1), n);
  }

  /// Queue::replaced(): the hot-path word, then the placement's own test (a file: one stat).
  bool replaced() const noexcept { return !where.word_current() || (where.still_current && !where.still_current()); }

  /// Waits for `ready()` by the queue's wait mode: spin (polling: until the deadline, `backoff`: with
  /// os::PollBackoff's sleeps; hybrid: a few microseconds), then sleep on `word` registered in `waiters`.
  template <class Ready>
  Status wait_for(Ready ready, std::uint32_t* word, std::uint32_t* waiters, std::int64_t deadline) noexcept {
    const std::int64_t spin_end =
        wait == WaitMode::polling ? deadline
        : wait == WaitMode::hybrid ? std::min(deadline, os::deadline_after(std::chrono::microseconds(20)))
                                   : 0;
    if (backoff && where.doorbell) {
      // Shared with other kernels, with a doorbell: sleep on it (every push, pop and shutdown
      // calls Doorbell::notify()); no free waiter slot (or a failed doorbell): poll, as without.
      const Status s = where.doorbell->wait_until(ready, deadline, [this] { return replaced(); });
      if (s.code() != Errc::would_block && s.code() != Errc::system) return s;
    }
    os::PollBackoff pause;  // `backoff`: a few pause instructions, then sleeps growing to 50 us
    for (std::uint32_t i = 0; spin_end != 0; ++i) {
      if (ready()) return Errc::ok;
      // The clock every 64 looks, or after a look that spent its claim attempts (contention):
      // a successful or plainly empty/full look costs no clock read. Relaxed: a local hint.
      if ((i % 64 == 63 || (claim_exhausted.load(std::memory_order_relaxed) &&
                            claim_exhausted.exchange(false, std::memory_order_relaxed))) && os::monotonic_ns() >= spin_end) break;
      if (!backoff) os::cpu_relax();
      else if (!pause.pause(spin_end)) return Errc::interrupted;
    }
    if (wait == WaitMode::polling) return ready() ? Status(Errc::ok) : Status(Errc::timeout);
    for (;;) {
      // SYNC POINT W (sleeper side): read the word, register, fence, then look; pairs with
      // notify_pushed()/notify_popped()'s fence and waiter-count load.
      const std::uint32_t seen = aref(*word).load(std::memory_order_seq_cst);
      aref(*waiters).fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT W
      std::atomic_thread_fence(std::memory_order_seq_cst);  // SYNC POINT W; registered before ready() looks
      if (ready()) {
        // Relaxed: leaving costs a waker at most one needless wake-up; nothing is published.
        aref(*waiters).fetch_sub(1, std::memory_order_relaxed);
        return Errc::ok;
      }
      const std::int64_t now = os::monotonic_ns();
      if (now >= deadline) {
        aref(*waiters).fetch_sub(1, std::memory_order_relaxed);  // relaxed, as above
        return Errc::timeout;
      }
      // At most 100 ms per sleep: a peer that died while counted as a waiter, or a shutdown,
      // is noticed without a wake-up.
      const timespec rel = os::to_timespec(std::min<std::int64_t>(deadline - now, 100'000'000));
      const os::FutexResult r = os::futex_wait(word, seen, &rel);
      aref(*waiters).fetch_sub(1, std::memory_order_relaxed);  // relaxed, as above
      if (ready()) return Errc::ok;
      if (r == os::FutexResult::interrupted) return Errc::interrupted;
      // A quiet slice: the placement may be gone (a file re-created or removed: one stat; a
      // region entry is seen by ready() already). Not per wake-up: no syscall on the busy path.
      if (r == os::FutexResult::timed_out && replaced()) return Errc::replaced;
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

/// Refuses a placement whose first byte is not 64-byte aligned (cells and their atomic turns
/// are laid out from it in cache lines).
void check_aligned(const Placement& where, const char* doing) {
  if (reinterpret_cast<std::uintptr_t>(where.bytes.data()) % qlayout::kCacheLine != 0)
    throw Error(Errc::invalid_argument, std::string(doing) + " queue " + where.path +
                                            ": the placement's bytes do not start on a 64-byte boundary");
}

/// Validates the queue in `where` and binds a handle from the checked values, never from the
/// header again: a peer may change it after the checks. `exact_size`: the layout must fill the
/// bytes (a file), else fit in them (a placement).
std::unique_ptr<Queue::Impl> bind_queue(Placement where, bool exact_size, const QueueExpect& expect) {
  check_aligned(where, "opening");
  qlayout::Checked c = qlayout::validate(where.bytes, where.path, exact_size, expect);
  auto impl = std::make_unique<Queue::Impl>();
  impl->h = reinterpret_cast<QueueHeader*>(where.bytes.data());
  impl->cells = where.bytes.data() + qlayout::header_bytes(c.signal_count);
  impl->bytes = c.bytes;
  impl->cell_bytes = qlayout::cell_bytes(c.max_values);
  impl->capacity = c.capacity;
  impl->mask = c.capacity - 1;
  impl->max_values = c.max_values;
  impl->kind = c.kind;
  impl->wait = where.same_kernel ? c.wait : WaitMode::polling;  // futexes reach one kernel: elsewhere poll
  impl->backoff = impl->wait != c.wait;  // polling only because other kernels share it
  impl->signals = std::move(c.signals);
  impl->writable = expect.writable && where.writable;
  impl->where = std::move(where);
  return impl;
}

}  // namespace

std::size_t Queue::bytes_for(const QueueSpec& spec) {
  qlayout::check_spec({}, spec);
  return static_cast<std::size_t>(qlayout::bytes_for(spec));
}

Queue Queue::create_in(const Placement& where, const QueueSpec& spec) {
  qlayout::check_spec(where.path, spec);
  check_aligned(where, "creating");
  if (!where.writable) throw Error(Errc::permission, "creating queue " + where.path + ": the placement is read-only");
  const std::uint64_t need = qlayout::bytes_for(spec);
  if (where.bytes.size() < need)
    throw Error(Errc::invalid_argument, "creating queue " + where.path + ": the placement holds " +
                                            std::to_string(where.bytes.size()) + " bytes, the queue needs " +
                                            std::to_string(need));
  qlayout::init(where.bytes, spec);
  return Queue(bind_queue(where, false, {}));
}

Queue Queue::open_in(const Placement& where, const QueueExpect& expect) {
  return Queue(bind_queue(where, false, expect));
}

Queue Queue::create(std::string_view name_or_path, const QueueSpec& spec, OpenMode mode) {
  const std::string path = queue_path(name_or_path);
  if (mode == OpenMode::OpenExisting) return open(name_or_path);
  qlayout::check_spec(path, spec);
  if (mode == OpenMode::OpenOrCreate) {
    try {
      return open(path, QueueExpect{spec.max_values, spec.signals, spec.kind});  // by path: never the bridge
    } catch (const Error& e) {
      if (e.errc() != Errc::not_found) throw;
    }
    try {
      return create(name_or_path, spec, OpenMode::ExclusiveCreate);
    } catch (const Error& e) {
      if (e.errc() != Errc::exists) throw;
      return open(path, QueueExpect{spec.max_values, spec.signals, spec.kind});  // by path: never the bridge
    }
  }
  // The file is laid out by create_in over its (still invisible) mapping, then re-opened
  // through the validating path: one way to bind a mapping.
  Segment seg = Segment::create_file(path, bytes_for(spec), mode, spec.permissions, [&](Segment& fresh) {
    Placement where;
    where.bytes = {fresh.data(), fresh.size()};
    where.name = qlayout::file_name(path);
    where.path = path;
    (void)create_in(where, spec);
  });
  seg = Segment();
  return open(path);
}

Queue Queue::open(std::string_view name_or_path, const QueueExpect& expect) {
  std::string path = queue_path(name_or_path);  // the replica's when the bridge answers for a missing file
  Segment seg = remote::open_file_or_replica("queue", name_or_path, path, expect.writable);
  return Queue(bind_queue(qlayout::file_placement(std::move(seg), path, expect.writable), true, expect));
}

void Queue::remove(std::string_view name_or_path) {
  const std::string path = queue_path(name_or_path);
  if (::unlink(path.c_str()) != 0) os::throw_errno(errno, "removing queue", path);
}

namespace {
const std::string kNone;
const std::vector<Signal> kNoSignals;
}  // namespace

const std::string& Queue::name() const noexcept { return impl_ ? impl_->where.name : kNone; }
const std::string& Queue::path() const noexcept { return impl_ ? impl_->where.path : kNone; }
std::uint32_t Queue::capacity() const noexcept { return impl_ ? impl_->capacity : 0; }
std::uint32_t Queue::max_values() const noexcept { return impl_ ? impl_->max_values : 0; }
QueueKind Queue::kind() const noexcept { return impl_ ? impl_->kind : QueueKind::spsc; }
WaitMode Queue::wait_mode() const noexcept { return impl_ ? impl_->wait : WaitMode::hybrid; }

void Queue::mark_consumer_attached(std::uint64_t token) noexcept {
  if (!impl_ || !impl_->writable) return;
  // SYNC POINT A (release): pid, then token; pairs with consumer_token()/consumer_pid()'s
  // acquire loads (a writer that sees the token sees the pid stored before it).
  aref(impl_->h->consumer_pid).store(os::current_pid(), std::memory_order_release);
  aref(impl_->h->consumer_token).store(token, std::memory_order_release);  // SYNC POINT A
}

std::uint64_t Queue::consumer_token() const noexcept {
  return impl_ ? aref(impl_->h->consumer_token).load(std::memory_order_acquire) : 0;  // SYNC POINT A
}

pid_t Queue::consumer_pid() const noexcept {
  return impl_ ? aref(impl_->h->consumer_pid).load(std::memory_order_acquire) : 0;  // SYNC POINT A
}

void Queue::set_wait_mode(WaitMode mode) noexcept {
  if (!impl_ || (mode != WaitMode::polling && mode != WaitMode::futex && mode != WaitMode::hybrid)) return;
  impl_->wait = impl_->where.same_kernel ? mode : WaitMode::polling;  // futexes stop at the kernel
  impl_->backoff = impl_->wait != mode;  // polling only because other kernels share it
}
const std::vector<Signal>& Queue::signals() const noexcept { return impl_ ? impl_->signals : kNoSignals; }

std::uint64_t Queue::size() const noexcept {
  if (!impl_) return 0;
  // No sync point: a racy estimate (acquire only keeps the two loads in this order).
  const std::uint64_t hd = aref(impl_->h->head).load(std::memory_order_acquire);
  const std::uint64_t tl = aref(impl_->h->tail).load(std::memory_order_acquire);  // no pair (racy estimate)
  return tl > hd ? std::min<std::uint64_t>(tl - hd, impl_->capacity) : 0;
}

std::uint64_t Queue::producer_position() noexcept {
  if (!impl_) return 0;
  Impl& m = *impl_;
  // SPSC: the sync a handle's first push does (a producer that died between publishing cells and
  // recording tail is carried on from), so the position counts every published cell.
  if (m.kind == QueueKind::spsc && m.writable && !m.producer_synced)
    return m.sync_producer(aref(m.h->tail).load(std::memory_order_relaxed));
  // SYNC POINT (acquire): no pair needed for this handle's own pushes; for others a snapshot.
  return aref(m.h->tail).load(std::memory_order_acquire);
}

QueueInfo Queue::info() const {
  if (!impl_) throw Error(Errc::closed, "queue handle is closed");
  const Impl& m = *impl_;
  QueueInfo i;
  i.name = m.where.name;
  i.path = m.where.path;
  i.version = aref(m.h->version).load(std::memory_order_acquire);  // SYNC POINT R
  i.kind = m.kind;
  i.wait = static_cast<WaitMode>(m.h->wait);  // the recorded mode, not this handle's
  i.capacity = m.capacity;
  i.max_values = m.max_values;
  i.cell_bytes = static_cast<std::uint32_t>(m.cell_bytes);
  i.file_bytes = m.bytes;
  // Counters and state: a racy snapshot for tools, no pair beyond A for consumer_pid.
  i.pushed = aref(m.h->tail).load(std::memory_order_acquire);
  i.popped = aref(m.h->head).load(std::memory_order_acquire);  // no pair (snapshot)
  i.closed = m.shut();
  i.creator_pid = m.h->creator_pid;
  i.consumer_pid = aref(m.h->consumer_pid).load(std::memory_order_acquire);  // SYNC POINT A
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
  return impl_->push_wait(s, timeout);
}

Status Queue::push(const SampleView& s, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_) return Errc::closed;
  return impl_->push_wait(s, timeout);
}

Status Queue::try_push(const SampleView& s) noexcept {
  if (!impl_) return Errc::closed;
  return impl_->try_push(s);
}

Status Queue::try_push_burst(std::span<const SampleView> samples, std::size_t& pushed) noexcept {
  pushed = 0;
  if (!impl_) return Errc::closed;
  return impl_->push_burst(samples, pushed);
}

Status Queue::try_pop_burst_with(SampleHandlerFn fn, void* ctx, std::size_t limit, std::size_t& popped) noexcept {
  popped = 0;
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  return m.pop_burst(limit, [&](CellHeader* c, std::size_t) { fn(ctx, m.view(c)); }, popped);
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
  // SYNC POINT S (seq_cst store): pairs with shut()'s acquire load; seq_cst so it is ordered
  // before the futex words' increments (SYNC POINT W) that wake every sleeper.
  aref(h->state).store(qlayout::kStateShut, std::memory_order_seq_cst);
  aref(h->not_empty).fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT W
  aref(h->not_full).fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT W
  os::futex_wake(&h->not_empty);
  os::futex_wake(&h->not_full);
  if (impl_->where.doorbell) impl_->where.doorbell->notify();  // sleepers on other kernels
}

bool Queue::is_shut() const noexcept { return impl_ && impl_->shut(); }
bool Queue::replaced() const noexcept { return impl_ && impl_->replaced(); }

}  // namespace shmlink
