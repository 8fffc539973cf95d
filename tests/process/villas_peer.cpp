// SPDX-License-Identifier: MIT
// villas_peer: an independent test peer that speaks VILLASnode v1.x's `shmem` interface (x86_64
// glibc) the way villas-node does: named-semaphore rendezvous, one POSIX shm region per direction
// that its writer owns, a Vyukov queue plus a block pool per region, pthread or polling mode.
//
// Written from docs/reference/villas-shmem.md (and the v1.x layout notes it summarises) only:
// it shares no code and no header with shmlink's own VILLAS layer, so that both cannot share one
// misunderstanding. It also reads the other side's region more strictly than villas-node does
// (every offset checked; exit 8 names the failed check), so a test sees a wrong layout at once.
//
// Command line (stable: other tests and the villas-node interoperability notes use it):
//   villas_peer [--out NAME] [--in NAME]   (default: $SHMLINK_INTERFACE_OUT / $SHMLINK_INTERFACE_IN)
//               [--mode pthread|polling] [--queuelen Q] [--samplelen L]
//               [--send N] [--recv N] [--echo N] [--values K] [--until-closed] [--drain-first]
//               [--seq-base S] [--origin-base-ns B] [--recv-delay-ms T] [--wait-stopped]
//               [--rendezvous-timeout-ms T] [--timeout-ms T] [--drain-timeout-ms T]
//               [--sigkill-after-send N] [--sigkill-in-rendezvous] [--close-without-drain]
//               [--v10-signals] [--hostile KIND] [--hostile-late] [--hostile-ms T] [--output FILE]
//
//   --send N     send N samples (from a thread of their own when --recv/--echo is also given):
//                sample n has sequence S+n, K values, value j = (S+n)*100 + j + 0.25 (doubles),
//                flags HAS_TS_ORIGIN|HAS_SEQUENCE|HAS_DATA, ts.origin = B+n ns (or now when B
//                is not given), ts.received = now.
//   --recv N     receive N samples; one line each on stdout:
//                  seq=<u64> len=<u32> flags=<i32> origin=<sec>.<9 digits ns> values=<v,...>
//                (values printed as doubles, %.17g). --until-closed: then keep reading until
//                the writer closes. --recv-delay-ms: sleep before the first read.
//                --wait-stopped: before the first read, wait until the writer has closed
//                (its queue is STOPPED), to see what a reader gets from a closed queue.
//   --echo N     N times: receive a sample and send it back with the same sequence, ts.origin and
//                flags and every value doubled (printed as for --recv; cut to the values this
//                side's blocks hold, with a line on stderr).
//   --drain-first  believe the peer's STOPPED state only once its queue is empty (villas-node
//                checks STOPPED before the cells, so by default a sample queued before the
//                writer closed is lost, as with villas-node).
//   --close-without-drain  close (STOPPED) at once after the last send, as villas-node does;
//                by default the peer first waits (--drain-timeout-ms) until its queue is empty.
//                Either way it first waits (bounded by --drain-timeout-ms, silently) until the
//                peer has unlinked its semaphore, i.e. has mapped this region (handshake step 4),
//                so that it never unlinks its region before the peer could open it.
//   --sigkill-after-send N  send N samples, then SIGKILL itself (no close, nothing unlinked), once
//                the peer has mapped this region (see --close-without-drain).
//   --sigkill-in-rendezvous  SIGKILL itself after posting its semaphore, before waiting on the
//                peer's (leaves a posted semaphore and an initialised region behind).
//   --v10-signals  fill the 16 `signals` bytes of its samples with garbage (as v1.0.x leaves a
//                live process-local shared_ptr there); by default they are zero.
//   --hostile KIND  corrupt its own region. Region kinds (written before the semaphore is
//                posted, or with --hostile-late once the peer has mapped the region, i.e. has
//                unlinked its semaphore; the peer's own writes keep using the right values):
//                bad-mask, cells-outside, pool-outside, freelist-outside, bad-mode. Sample kinds
//                (the first sample sent; the rest are sent correctly): huge-length,
//                huge-capacity, bad-sample-offset, misaligned-sample, bad-pool-off, v011 (the
//                v0.11 sample layout: refcnt at 32, pool_off at 40, ts at 48, data at 80).
//                moving-sequences: for --hostile-ms (default 2000) a thread keeps rewriting the
//                data queue's head, tail and cells so that cells look ready under a moving head,
//                with random or stale data offsets (use it without --send).
//                bad-free-block (against the other side's region): every block this peer is done
//                with goes back to the writer's free list as a wrong offset instead (outside the
//                region, into its header, 8 bytes off a block boundary, in turn).
//   --output FILE  write what goes to stdout to FILE instead (for a peer launched by `exec`).
//   The last line on stdout is a summary:
//     summary sent=<n> received=<n> closed=<0|1> mode=<pthread|polling> queuelen=<Q> samplelen=<L> size=<bytes>
//
// Exit codes: 0 done; 2 usage; 3 a system call failed; 4 the rendezvous timed out; 5 a receive
// timed out; 6 the peer closed (STOPPED) before the samples asked for arrived; 7 a send timed out
// (no free block, or the queue stayed full); 8 the peer's region or one of its samples failed a
// check (stderr says which); 9 the own queue was not drained within --drain-timeout-ms at close.
//
// What the reference leaves open, and what this peer does:
//  - Allocation gaps: each allocation after ShmemShared (data cells, pool buffer, free-list cells)
//    is a 32-byte Block header followed by its data; only the pool buffer is aligned (to 64), the
//    cells follow their header at once (8-aligned). That is what the size formula (4 Block headers
//    and 1024 bytes of slack) and the 64-aligned pool buffer imply, and it puts the cells, pool and
//    free list where section 5.4 of docs/reference/villas-shmem.md says a real villas-node v1.2.0
//    region has them (848, 1920, 10144 for Q=64, L=4). The alignment gap before the pool buffer is
//    counted in the pool's Block (for Q >= 4 it is 16 bytes). Readers follow the offsets, so the
//    exact gaps only matter for looking alike.
//  - Sample capacity = (blocksz - 88) / 8 (the block's whole room); the queuelen is rounded to a
//    power of two by the caller (the peer refuses other values).
//  - CQueueSignalled `flags` (@300): the reference gives no values; written as 0.
//  - Pool `state` is written as 1 (initialised), like the queues.
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

// ---- The v1.x layout (x86_64 glibc), as offsets from the reference's table ---------------------

constexpr std::size_t kTypeBytes = 48;     // memory::Type: process-local pointers, ignored by readers
constexpr std::size_t kBlockBytes = 32;    // memory::Block: prev, next (pointers), length, used
constexpr std::size_t kSharedAt = 80;      // ShmemShared, after the Type and its Block
constexpr std::size_t kSharedBytes = 736;
constexpr std::size_t kAlign = 64;

// ShmemShared members (relative to ShmemShared)
constexpr std::size_t kPollingAt = 0;      // i32: 1 polling, 0 pthread
constexpr std::size_t kSignalledAt = 8;    // CQueueSignalled
constexpr std::size_t kPoolAt = 400;       // Pool
// CQueue (296 bytes; the first member of CQueueSignalled and of the Pool's free list)
constexpr std::size_t kQState = 0;         // i32: 1 initialised, 5 stopped
constexpr std::size_t kQMask = 72;         // u64 buffer_mask
constexpr std::size_t kQBufferOff = 80;    // i64 cells, relative to the CQueue
constexpr std::size_t kQTail = 152;        // u64
constexpr std::size_t kQHead = 224;        // u64
constexpr std::size_t kQBytes = 296;
// CQueueSignalled after its CQueue
constexpr std::size_t kSigMode = 296;      // i32: 1 pthread, 2 polling
constexpr std::size_t kSigFlags = 300;     // i32
constexpr std::size_t kSigCond = 304;      // pthread_cond_t (48)
constexpr std::size_t kSigMutex = 352;     // pthread_mutex_t (40)
constexpr std::size_t kSigBytes = 392;
// Pool (336 bytes)
constexpr std::size_t kPState = 0;         // i32
constexpr std::size_t kPBufferOff = 8;     // i64 block buffer, relative to the Pool
constexpr std::size_t kPLen = 16;          // u64 bytes of the block buffer
constexpr std::size_t kPBlocksz = 24;      // u64
constexpr std::size_t kPAlignment = 32;    // u64 (64)
constexpr std::size_t kPQueue = 40;        // CQueue of free blocks
constexpr std::size_t kPBytes = 336;
// CQueue cell (16 bytes)
constexpr std::size_t kCellSeq = 0;        // u64 sequence
constexpr std::size_t kCellData = 8;       // i64 data_off, relative to the owning CQueue
constexpr std::size_t kCellBytes = 16;
// Sample header (88 bytes), values after it
constexpr std::size_t kSSeq = 0;           // u64
constexpr std::size_t kSLength = 8;        // u32
constexpr std::size_t kSCapacity = 12;     // u32
constexpr std::size_t kSFlags = 16;        // i32
constexpr std::size_t kSSignals = 24;      // 16 bytes: a process-local shared_ptr (v1.0: live garbage)
constexpr std::size_t kSRefcnt = 40;       // atomic i32
constexpr std::size_t kSPoolOff = 48;      // i64, Pool relative to the sample
constexpr std::size_t kSOrigin = 56;       // timespec
constexpr std::size_t kSReceived = 72;     // timespec
constexpr std::size_t kSData = 88;

// Absolute positions in a region.
constexpr std::size_t kDataQueue = kSharedAt + kSignalledAt;  // 88
constexpr std::size_t kPool = kSharedAt + kPoolAt;            // 480
constexpr std::size_t kFreeQueue = kPool + kPQueue;           // 520

static_assert(kSignalledAt + kSigBytes == kPoolAt, "CQueueSignalled ends where the Pool begins");
static_assert(kPoolAt + kPBytes == kSharedBytes, "the Pool ends ShmemShared");
static_assert(kPQueue + kQBytes == kPBytes, "the free list ends the Pool");
static_assert(kTypeBytes + kBlockBytes == kSharedAt, "ShmemShared follows the Type and a Block");
static_assert(sizeof(pthread_cond_t) == kSigMutex - kSigCond, "x86_64 glibc pthread_cond_t is 48 bytes");
static_assert(sizeof(pthread_mutex_t) == kSigBytes - kSigMutex, "x86_64 glibc pthread_mutex_t is 40 bytes");
static_assert(sizeof(timespec) == 16 && sizeof(void*) == 8, "x86_64 (LP64) only");
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free && std::atomic_ref<std::int32_t>::is_always_lock_free);

constexpr std::int32_t kStateInitialized = 1;
constexpr std::int32_t kStateStopped = 5;
constexpr std::int32_t kModePthread = 1;
constexpr std::int32_t kModePolling = 2;
constexpr std::int32_t kFlagTsOrigin = 1 << 0;
constexpr std::int32_t kFlagSequence = 1 << 3;
constexpr std::int32_t kFlagData = 1 << 4;

constexpr std::uint64_t block_bytes(std::uint32_t samplelen) {
  return (kSData + 8ULL * samplelen + kAlign - 1) / kAlign * kAlign;
}
/// The reference's region size: 48 + 736 + Q*32 + Q*blocksz + 128 + 1024.
constexpr std::uint64_t region_bytes(std::uint32_t q, std::uint32_t samplelen) {
  return kTypeBytes + kSharedBytes + 32ULL * q + q * block_bytes(samplelen) + 4 * kBlockBytes + 1024;
}
static_assert(region_bytes(64, 4) == 12176 && region_bytes(512, 64) == 346000, "the reference's examples");

// Exit codes (see the header).
constexpr int kExitUsage = 2, kExitSystem = 3, kExitRendezvous = 4, kExitRecvTimeout = 5,
              kExitClosedEarly = 6, kExitSendTimeout = 7, kExitBadRegion = 8, kExitDrain = 9;

/// The peer's mutex while this thread holds it (so that dying on a bad sample does not leave the
/// writer's non-robust mutex locked for ever, as a crashing villas-node would).
thread_local pthread_mutex_t* t_held = nullptr;

/// Ends the process with `code` after one line on stderr.
[[noreturn]] void die(int code, const std::string& msg) {
  if (t_held != nullptr) ::pthread_mutex_unlock(t_held);
  std::fprintf(stderr, "villas_peer: %s\n", msg.c_str());
  std::fflush(stdout);
  std::_Exit(code);
}
[[noreturn]] void die_errno(const std::string& what) {
  die(kExitSystem, what + ": " + std::strerror(errno));
}

// ---- Access to mapped fields --------------------------------------------------------------------

template <class T>
std::atomic_ref<T> field(std::byte* base, std::size_t at) {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(base + at));
}
template <class T>
T get(const std::byte* base, std::size_t at) {
  T v;
  std::memcpy(&v, base + at, sizeof v);
  return v;
}
template <class T>
void put(std::byte* base, std::size_t at, T v) {
  std::memcpy(base + at, &v, sizeof v);
}

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}
void put_ts(std::byte* base, std::size_t at, std::int64_t ns) {
  put<std::int64_t>(base, at, ns / 1'000'000'000);
  put<std::int64_t>(base, at + 8, ns % 1'000'000'000);
}

using Clock = std::chrono::steady_clock;

/// A deadline `ms` milliseconds away (ms < 0: none).
struct Deadline {
  std::optional<Clock::time_point> at;
  explicit Deadline(long ms) {
    if (ms >= 0) at = Clock::now() + std::chrono::milliseconds(ms);
  }
  [[nodiscard]] bool passed() const { return at && Clock::now() >= *at; }
  /// The same instant on `clock` (an hour away when none): CLOCK_MONOTONIC for
  /// pthread_cond_clockwait, CLOCK_REALTIME for pthread_mutex_timedlock (not clocklock, which
  /// ThreadSanitizer 14 does not intercept).
  [[nodiscard]] timespec on(clockid_t clock) const {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    const long long add_ns = at ? std::chrono::duration_cast<std::chrono::nanoseconds>(*at - Clock::now()).count()
                                : 3600LL * 1'000'000'000;
    const long long total = ts.tv_nsec + (add_ns > 0 ? add_ns : 0);
    ts.tv_sec += static_cast<time_t>(total / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(total % 1'000'000'000);
    return ts;
  }
};

/// Back-off of a spinning wait: pause a while, then sleep 50 us per round (2 cores are shared).
void backoff(unsigned& round) {
  if (++round < 64) {
    __builtin_ia32_pause();
  } else {
    timespec ts{0, 50'000};
    ::nanosleep(&ts, nullptr);
  }
}

// ---- A CQueue (Vyukov's bounded MPMC queue) at a fixed place in a mapping -------------------------

/// Local copies of a queue's geometry (read once; the cells were checked to lie in the mapping).
struct QueueView {
  std::byte* base = nullptr;   // the mapping
  std::size_t at = 0;          // the CQueue's offset in the mapping
  std::size_t cells = 0;       // offset of cell 0 in the mapping
  std::uint64_t mask = 0;

  std::atomic_ref<std::int32_t> state() const { return field<std::int32_t>(base, at + kQState); }
  std::atomic_ref<std::uint64_t> tail() const { return field<std::uint64_t>(base, at + kQTail); }
  std::atomic_ref<std::uint64_t> head() const { return field<std::uint64_t>(base, at + kQHead); }
  std::atomic_ref<std::uint64_t> seq(std::uint64_t pos) const {
    return field<std::uint64_t>(base, cells + (pos & mask) * kCellBytes + kCellSeq);
  }
  std::byte* data(std::uint64_t pos) const { return base + cells + (pos & mask) * kCellBytes + kCellData; }

  /// Pushes `data_off` (relative to the CQueue). False when full. The CAS loop is bounded (a
  /// peer rewriting our free list's cells cannot hold us).
  bool push(std::int64_t data_off) const {
    std::uint64_t pos = tail().load(std::memory_order_relaxed);
    for (int tries = 0;; ++tries) {
      if (tries > 100000) return false;
      // SYNC POINT: pairs with the release store of the consumer that freed this cell.
      const std::uint64_t s = seq(pos).load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(s - pos);
      if (diff == 0) {
        if (tail().compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return false;
      } else {
        pos = tail().load(std::memory_order_relaxed);
      }
    }
    std::memcpy(data(pos), &data_off, sizeof data_off);
    // SYNC POINT: publishes data_off (and the sample written before); pairs with pop()'s acquire.
    seq(pos).store(pos + 1, std::memory_order_release);
    return true;
  }
  /// Pops a data_off (relative to the CQueue); nullopt when empty.
  std::optional<std::int64_t> pop() const {
    std::uint64_t pos = head().load(std::memory_order_relaxed);
    for (int tries = 0;; ++tries) {
      if (tries > 100000) return std::nullopt;
      // SYNC POINT: pairs with push()'s release store of the sequence.
      const std::uint64_t s = seq(pos).load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(s - (pos + 1));
      if (diff == 0) {
        if (head().compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {
        return std::nullopt;
      } else {
        pos = head().load(std::memory_order_relaxed);
      }
    }
    std::int64_t off = 0;
    std::memcpy(&off, data(pos), sizeof off);
    // SYNC POINT: frees the cell for the producer's acquire in push().
    seq(pos).store(pos + mask + 1, std::memory_order_release);
    return off;
  }
  /// Samples queued now (racy).
  [[nodiscard]] std::uint64_t size_approx() const {
    return tail().load(std::memory_order_acquire) - head().load(std::memory_order_acquire);
  }
};

// ---- Options ----------------------------------------------------------------------------------------

struct Options {
  std::string out, in;
  bool pthread_mode = true;
  std::uint32_t queuelen = 64, samplelen = 4;
  long send = 0, recv = 0, echo = 0;
  long values = -1;
  bool until_closed = false, drain_first = false;
  std::uint64_t seq_base = 0;
  std::optional<std::int64_t> origin_base;
  long recv_delay_ms = 0;
  bool wait_stopped = false;
  long rendezvous_timeout_ms = 30000, timeout_ms = 20000, drain_timeout_ms = 10000;
  long sigkill_after_send = -1;
  bool sigkill_in_rendezvous = false, close_without_drain = false, v10_signals = false;
  std::string hostile;
  bool hostile_late = false;
  long hostile_ms = 2000;
  std::string output;
};

[[noreturn]] void usage(const std::string& why) {
  die(kExitUsage, why + " (see the comment at the top of tests/process/villas_peer.cpp)");
}

long number(std::string_view opt, const char* text) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 0);
  if (errno != 0 || end == text || *end != '\0') usage(std::string(opt) + ": not a number: " + text);
  return static_cast<long>(v);
}

bool is_region_kind(const std::string& k) {
  return k == "bad-mask" || k == "cells-outside" || k == "pool-outside" || k == "freelist-outside" ||
         k == "bad-mode";
}
bool is_sample_kind(const std::string& k) {
  return k == "huge-length" || k == "huge-capacity" || k == "bad-sample-offset" || k == "misaligned-sample" ||
         k == "bad-pool-off" || k == "v011";
}

std::string shm_name(std::string n) {
  if (n.empty() || n[0] != '/') n.insert(n.begin(), '/');
  return n;
}

Options parse(int argc, char** argv) {
  Options o;
  if (const char* e = std::getenv("SHMLINK_INTERFACE_OUT")) o.out = e;
  if (const char* e = std::getenv("SHMLINK_INTERFACE_IN")) o.in = e;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto arg = [&]() -> const char* {
      if (i + 1 >= argc) usage(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--out") o.out = arg();
    else if (a == "--in") o.in = arg();
    else if (a == "--mode") {
      const std::string m = arg();
      if (m == "pthread") o.pthread_mode = true;
      else if (m == "polling") o.pthread_mode = false;
      else usage("--mode: pthread or polling, not " + m);
    } else if (a == "--queuelen") o.queuelen = static_cast<std::uint32_t>(number(a, arg()));
    else if (a == "--samplelen") o.samplelen = static_cast<std::uint32_t>(number(a, arg()));
    else if (a == "--send") o.send = number(a, arg());
    else if (a == "--recv") o.recv = number(a, arg());
    else if (a == "--echo") o.echo = number(a, arg());
    else if (a == "--values") o.values = number(a, arg());
    else if (a == "--until-closed") o.until_closed = true;
    else if (a == "--drain-first") o.drain_first = true;
    else if (a == "--seq-base") o.seq_base = static_cast<std::uint64_t>(number(a, arg()));
    else if (a == "--origin-base-ns") o.origin_base = number(a, arg());
    else if (a == "--recv-delay-ms") o.recv_delay_ms = number(a, arg());
    else if (a == "--wait-stopped") o.wait_stopped = true;
    else if (a == "--rendezvous-timeout-ms") o.rendezvous_timeout_ms = number(a, arg());
    else if (a == "--timeout-ms") o.timeout_ms = number(a, arg());
    else if (a == "--drain-timeout-ms") o.drain_timeout_ms = number(a, arg());
    else if (a == "--sigkill-after-send") o.sigkill_after_send = number(a, arg());
    else if (a == "--sigkill-in-rendezvous") o.sigkill_in_rendezvous = true;
    else if (a == "--close-without-drain") o.close_without_drain = true;
    else if (a == "--v10-signals") o.v10_signals = true;
    else if (a == "--hostile") o.hostile = arg();
    else if (a == "--hostile-late") o.hostile_late = true;
    else if (a == "--hostile-ms") o.hostile_ms = number(a, arg());
    else if (a == "--output") o.output = arg();
    else usage("unknown option " + std::string(a));
  }
  if (o.out.empty() || o.in.empty()) usage("--out and --in (or SHMLINK_INTERFACE_OUT/IN) are required");
  o.out = shm_name(o.out);
  o.in = shm_name(o.in);
  if (o.queuelen < 2 || (o.queuelen & (o.queuelen - 1)) != 0 || o.queuelen > (1U << 20))
    usage("--queuelen must be a power of two in [2, 2^20]");
  if (o.samplelen < 1 || o.samplelen > 4096) usage("--samplelen must be in [1, 4096]");
  const long cap = static_cast<long>((block_bytes(o.samplelen) - kSData) / 8);
  if (o.values < 0) o.values = o.samplelen;
  if (o.values > cap) usage("--values exceeds the sample capacity");
  if (o.sigkill_after_send >= 0) o.send = o.sigkill_after_send;
  if (!o.hostile.empty() && !is_region_kind(o.hostile) && !is_sample_kind(o.hostile) &&
      o.hostile != "moving-sequences" && o.hostile != "bad-free-block")
    usage("--hostile: unknown kind " + o.hostile);
  if (o.send < 0 || o.recv < 0 || o.echo < 0) usage("counts must not be negative");
  return o;
}

// ---- The own region ---------------------------------------------------------------------------------

/// The region this process owns and writes (its output), laid out as villas-node lays out its own.
struct OwnRegion {
  std::byte* base = nullptr;
  std::size_t size = 0;
  QueueView data, free_list;
  std::size_t pool_buffer = 0;  // offset of block 0
  std::uint64_t blocksz = 0;
  std::uint32_t blocks = 0;
  bool pthread_mode = true;

  pthread_mutex_t* mutex() const { return reinterpret_cast<pthread_mutex_t*>(base + kDataQueue + kSigMutex); }
  pthread_cond_t* cond() const { return reinterpret_cast<pthread_cond_t*>(base + kDataQueue + kSigCond); }
};

/// Writes a Block header at `at` (prev/next are this process's addresses, as in villas-node).
void put_block(std::byte* base, std::size_t at, std::size_t prev, std::size_t next, std::uint64_t length,
               bool used) {
  put<std::uint64_t>(base, at + 0, prev == 0 ? 0 : reinterpret_cast<std::uintptr_t>(base + prev));
  put<std::uint64_t>(base, at + 8, next == 0 ? 0 : reinterpret_cast<std::uintptr_t>(base + next));
  put<std::uint64_t>(base, at + 16, length);
  put<std::uint64_t>(base, at + 24, used ? 1 : 0);
}

std::size_t align_up(std::size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

/// Lays out a CQueue at `at` with `n` cells at `cells`, each cell i with sequence i.
QueueView init_queue(std::byte* base, std::size_t at, std::size_t cells, std::uint32_t n) {
  put<std::int32_t>(base, at + kQState, kStateInitialized);
  put<std::uint64_t>(base, at + kQMask, n - 1ULL);
  put<std::int64_t>(base, at + kQBufferOff, static_cast<std::int64_t>(cells) - static_cast<std::int64_t>(at));
  put<std::uint64_t>(base, at + kQTail, 0);
  put<std::uint64_t>(base, at + kQHead, 0);
  for (std::uint32_t i = 0; i < n; ++i) {
    put<std::uint64_t>(base, cells + i * kCellBytes + kCellSeq, i);
    put<std::int64_t>(base, cells + i * kCellBytes + kCellData, 0);
  }
  return QueueView{base, at, cells, n - 1ULL};
}

void init_own(OwnRegion& r, const Options& o) {
  std::byte* b = r.base;
  std::memset(b, 0, r.size);
  // memory::Type: the creator's own pointers and sizes; non-zero on purpose (readers must ignore them).
  for (std::size_t i = 0; i < kTypeBytes; i += 8)
    put<std::uint64_t>(b, i, 0x00007f5e1a550000ULL + i * 0x1111);
  const std::size_t q = o.queuelen;
  r.blocksz = block_bytes(o.samplelen);
  r.blocks = o.queuelen;
  // Allocations after ShmemShared: a Block header, then the data (the pool buffer 64-aligned).
  const std::size_t blk1 = kSharedAt + kSharedBytes;  // 816
  const std::size_t cells = blk1 + kBlockBytes;
  const std::size_t blk2 = cells + q * kCellBytes;
  r.pool_buffer = align_up(blk2 + kBlockBytes);
  const std::size_t blk3 = r.pool_buffer + q * r.blocksz;
  const std::size_t free_cells = blk3 + kBlockBytes;
  const std::size_t blk4 = free_cells + q * kCellBytes;
  if (blk4 + kBlockBytes > r.size) die(kExitSystem, "internal: the region formula leaves too little room");
  put_block(b, kTypeBytes, 0, blk1, kSharedBytes, true);
  put_block(b, blk1, kTypeBytes, blk2, blk2 - blk1 - kBlockBytes, true);
  put_block(b, blk2, blk1, blk3, blk3 - blk2 - kBlockBytes, true);
  put_block(b, blk3, blk2, blk4, blk4 - blk3 - kBlockBytes, true);
  put_block(b, blk4, blk3, 0, r.size - blk4 - kBlockBytes, false);

  put<std::int32_t>(b, kSharedAt + kPollingAt, o.pthread_mode ? 0 : 1);
  r.data = init_queue(b, kDataQueue, cells, o.queuelen);
  put<std::int32_t>(b, kDataQueue + kSigMode, o.pthread_mode ? kModePthread : kModePolling);
  put<std::int32_t>(b, kDataQueue + kSigFlags, 0);
  r.pthread_mode = o.pthread_mode;
  if (o.pthread_mode) {
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    ::pthread_mutexattr_init(&ma);
    ::pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    ::pthread_condattr_init(&ca);
    ::pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    if (::pthread_mutex_init(r.mutex(), &ma) != 0 || ::pthread_cond_init(r.cond(), &ca) != 0)
      die(kExitSystem, "pthread_mutex_init/pthread_cond_init failed");
    ::pthread_mutexattr_destroy(&ma);
    ::pthread_condattr_destroy(&ca);
  }
  put<std::int32_t>(b, kPool + kPState, kStateInitialized);
  put<std::int64_t>(b, kPool + kPBufferOff, static_cast<std::int64_t>(r.pool_buffer - kPool));
  put<std::uint64_t>(b, kPool + kPLen, q * r.blocksz);
  put<std::uint64_t>(b, kPool + kPBlocksz, r.blocksz);
  put<std::uint64_t>(b, kPool + kPAlignment, kAlign);
  r.free_list = init_queue(b, kFreeQueue, free_cells, o.queuelen);
  for (std::uint32_t i = 0; i < o.queuelen; ++i) {
    const std::size_t block = r.pool_buffer + i * r.blocksz;
    if (!r.free_list.push(static_cast<std::int64_t>(block) - static_cast<std::int64_t>(kFreeQueue)))
      die(kExitSystem, "internal: the free list is full while filling it");
  }
}

/// Region kinds of --hostile: corrupts the published header fields (the peer's own local copies
/// stay right, so it keeps writing correct samples).
void corrupt_region(OwnRegion& r, const std::string& kind) {
  std::byte* b = r.base;
  if (kind == "bad-mask") put<std::uint64_t>(b, kDataQueue + kQMask, 62);  // not 2^k - 1
  else if (kind == "cells-outside")
    put<std::int64_t>(b, kDataQueue + kQBufferOff, static_cast<std::int64_t>(r.size) + 4096);
  else if (kind == "pool-outside") put<std::uint64_t>(b, kPool + kPLen, 1ULL << 40);
  else if (kind == "freelist-outside")
    put<std::int64_t>(b, kFreeQueue + kQBufferOff, -static_cast<std::int64_t>(1ULL << 30));
  else if (kind == "bad-mode") put<std::int32_t>(b, kDataQueue + kSigMode, 7);
}

// ---- The peer's region ------------------------------------------------------------------------------

/// The region the peer owns and this process reads; every offset checked once at attach.
struct PeerRegion {
  std::string name;
  std::byte* base = nullptr;
  std::size_t size = 0;
  QueueView data, free_list;
  std::size_t pool_buffer = 0;
  std::uint64_t pool_len = 0, blocksz = 0;
  bool pthread_mode = true;

  pthread_mutex_t* mutex() const { return reinterpret_cast<pthread_mutex_t*>(base + kDataQueue + kSigMutex); }
  pthread_cond_t* cond() const { return reinterpret_cast<pthread_cond_t*>(base + kDataQueue + kSigCond); }
  [[noreturn]] void bad(const std::string& what) const { die(kExitBadRegion, name + ": " + what); }
};

/// `base + off` as an offset in a mapping of `size` bytes, or -1 when it overflows or is outside
/// [0, size) (offsets written by the peer can be anything).
std::int64_t inside(std::size_t base, std::int64_t off, std::size_t size) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(static_cast<std::int64_t>(base), off, &r) || r < 0 ||
      static_cast<std::uint64_t>(r) >= size)
    return -1;
  return r;
}

/// Checks a CQueue's mask and cells against the mapping.
QueueView check_queue(const PeerRegion& p, std::size_t at, const char* which) {
  const auto mask = get<std::uint64_t>(p.base, at + kQMask);
  const auto off = get<std::int64_t>(p.base, at + kQBufferOff);
  if (mask == 0 || mask > (1ULL << 24) || (mask & (mask + 1)) != 0)
    p.bad(std::string(which) + ": buffer_mask " + std::to_string(mask) + " is not 2^k - 1");
  const std::int64_t cells = inside(at, off, p.size);
  const std::uint64_t bytes = (mask + 1) * kCellBytes;
  if (cells < 0 || cells % 8 != 0 || static_cast<std::uint64_t>(cells) + bytes > p.size)
    p.bad(std::string(which) + ": cells at offset " + std::to_string(off) + " from " + std::to_string(at) +
          " are outside the region");
  const auto state = get<std::int32_t>(p.base, at + kQState);
  if (state != kStateInitialized && state != kStateStopped)
    p.bad(std::string(which) + ": state " + std::to_string(state) + " is neither 1 nor 5");
  return QueueView{p.base, at, static_cast<std::size_t>(cells), mask};
}

void check_peer(PeerRegion& p) {
  if (p.size < kSharedAt + kSharedBytes) p.bad("only " + std::to_string(p.size) + " bytes");
  const auto mode = get<std::int32_t>(p.base, kDataQueue + kSigMode);
  const auto polling = get<std::int32_t>(p.base, kSharedAt + kPollingAt);
  if (mode != kModePthread && mode != kModePolling) p.bad("mode " + std::to_string(mode) + " is neither 1 nor 2");
  // The reference names ShmemShared.polling but not its values: a disagreement is reported, not
  // refused (the queue's mode decides how to wait, as the region's owner set it).
  if ((mode == kModePolling) != (polling != 0))
    std::fprintf(stderr, "villas_peer: %s: ShmemShared.polling %d but mode %d (going by the mode)\n", p.name.c_str(),
                 polling, mode);
  p.pthread_mode = mode == kModePthread;
  p.data = check_queue(p, kDataQueue, "data queue");
  p.free_list = check_queue(p, kFreeQueue, "free list");
  const auto buf = get<std::int64_t>(p.base, kPool + kPBufferOff);
  p.pool_len = get<std::uint64_t>(p.base, kPool + kPLen);
  p.blocksz = get<std::uint64_t>(p.base, kPool + kPBlocksz);
  const auto alignment = get<std::uint64_t>(p.base, kPool + kPAlignment);
  if (p.blocksz < kSData + 8 || p.blocksz % 8 != 0 || p.blocksz > (1ULL << 24))
    p.bad("pool blocksz " + std::to_string(p.blocksz));
  if (alignment != kAlign) p.bad("pool alignment " + std::to_string(alignment) + " is not 64");
  const std::int64_t start = inside(kPool, buf, p.size);
  if (start < 0 || start % static_cast<std::int64_t>(kAlign) != 0 ||
      p.pool_len > p.size || static_cast<std::uint64_t>(start) + p.pool_len > p.size ||
      p.pool_len % p.blocksz != 0 || p.pool_len == 0)
    p.bad("pool buffer at " + std::to_string(start) + " (" + std::to_string(p.pool_len) +
          " bytes) is not 64-aligned blocks inside the region");
  p.pool_buffer = static_cast<std::size_t>(start);
}

/// --hostile bad-free-block: the blocks of received samples go back to the writer's free list as
/// wrong offsets (outside the region, into its header, off a block boundary, in turn).
bool g_bad_free = false;
std::uint64_t g_bad_free_count = 0;

/// A sample taken from the peer (values as raw 8-byte words).
struct Got {
  std::uint64_t seq = 0;
  std::uint32_t length = 0;
  std::int32_t flags = 0;
  std::int64_t origin_sec = 0, origin_nsec = 0;
  std::vector<double> values;
};

/// Checks the sample at `data_off` (relative to the data queue), copies it, releases it.
Got take_sample(const PeerRegion& p, std::int64_t data_off) {
  const std::int64_t at = inside(kDataQueue, data_off, p.size);
  if (at < static_cast<std::int64_t>(p.pool_buffer) || static_cast<std::uint64_t>(at) + p.blocksz > p.pool_buffer + p.pool_len)
    p.bad("sample at offset " + std::to_string(data_off) + " from the queue is outside the pool buffer");
  const auto s = static_cast<std::size_t>(at);
  if ((s - p.pool_buffer) % p.blocksz != 0) p.bad("sample at " + std::to_string(at) + " is not on a block boundary");
  Got g;
  g.seq = get<std::uint64_t>(p.base, s + kSSeq);
  g.length = get<std::uint32_t>(p.base, s + kSLength);
  const auto capacity = get<std::uint32_t>(p.base, s + kSCapacity);
  g.flags = get<std::int32_t>(p.base, s + kSFlags);
  const auto pool_off = get<std::int64_t>(p.base, s + kSPoolOff);
  if (pool_off != static_cast<std::int64_t>(kPool) - at)
    p.bad("sample at " + std::to_string(at) + ": pool_off " + std::to_string(pool_off) + " does not point at the Pool");
  if (kSData + 8ULL * capacity > p.blocksz)
    p.bad("sample at " + std::to_string(at) + ": capacity " + std::to_string(capacity) + " exceeds the block");
  if (g.length > capacity)
    p.bad("sample at " + std::to_string(at) + ": length " + std::to_string(g.length) + " exceeds capacity " +
          std::to_string(capacity));
  g.origin_sec = get<std::int64_t>(p.base, s + kSOrigin);
  g.origin_nsec = get<std::int64_t>(p.base, s + kSOrigin + 8);
  for (std::uint32_t j = 0; j < g.length; ++j) g.values.push_back(get<double>(p.base, s + kSData + 8ULL * j));
  // Drop our reference; the last one returns the block to the writer's free list.
  // SYNC POINT: acq_rel so that our copy above happens before the writer reuses the block.
  const std::int32_t before = field<std::int32_t>(p.base, s + kSRefcnt).fetch_sub(1, std::memory_order_acq_rel);
  std::int64_t back = at - static_cast<std::int64_t>(kFreeQueue);
  if (g_bad_free) {
    const std::int64_t wrong[] = {static_cast<std::int64_t>(1) << 40, static_cast<std::int64_t>(kDataQueue) -
                                  static_cast<std::int64_t>(kFreeQueue), back + 8};
    back = wrong[g_bad_free_count++ % 3];
  }
  if (before == 1 && !p.free_list.push(back))
    p.bad("the free list is full: the block of sample " + std::to_string(g.seq) + " cannot go back");
  if (before < 1) p.bad("sample " + std::to_string(g.seq) + ": refcnt was " + std::to_string(before));
  return g;
}

/// One pull as villas-node's queue pull does it: STOPPED first (unless `drain_first`), then the cells.
/// @return 1 with `out` set, 0 empty, -1 stopped.
int pull(const PeerRegion& p, bool drain_first, Got& out) {
  // SYNC POINT: acquire pairs with the writer's release of STOPPED (after its last push).
  const bool stopped = p.data.state().load(std::memory_order_acquire) == kStateStopped;
  if (stopped && !drain_first) return -1;
  if (auto off = p.data.pop()) {
    out = take_sample(p, *off);
    return 1;
  }
  return stopped ? -1 : 0;
}

/// Receives one sample: pthread mode locks the peer's mutex and waits on its condition variable
/// (bounded by the deadline, where villas-node waits for ever); polling spins.
/// @return 1 got one, -1 the peer closed, 0 timed out.
int receive(const PeerRegion& p, const Options& o, Got& out) {
  const Deadline dl(o.timeout_ms);
  if (p.pthread_mode) {
    const timespec until = dl.on(CLOCK_MONOTONIC), lock_until = dl.on(CLOCK_REALTIME);
    if (::pthread_mutex_timedlock(p.mutex(), &lock_until) != 0) return 0;
    t_held = p.mutex();
    int r = 0;
    for (;;) {
      r = pull(p, o.drain_first, out);
      if (r != 0) break;
      if (::pthread_cond_clockwait(p.cond(), p.mutex(), CLOCK_MONOTONIC, &until) == ETIMEDOUT) {
        r = pull(p, o.drain_first, out);
        break;
      }
    }
    t_held = nullptr;
    ::pthread_mutex_unlock(p.mutex());
    return r;
  }
  for (unsigned round = 0;;) {
    const int r = pull(p, o.drain_first, out);
    if (r != 0 || dl.passed()) return r;
    backoff(round);
  }
}

// ---- Writing ----------------------------------------------------------------------------------------

struct Outgoing {
  std::uint64_t seq = 0;
  std::int32_t flags = 0;
  std::int64_t origin_ns = 0;
  std::vector<double> values;
};

std::atomic<long> g_sent{0};
/// Serialises this process's sends (the sender thread and --echo). Not needed by the queue (it is
/// MPMC), but a block one thread wrote comes back through the peer process before the other thread
/// reuses it: a happens-before that ThreadSanitizer cannot see across processes.
std::mutex g_send_mu;

/// Takes a block, fills it, pushes it and signals, as villas-node's write does. `hostile`: a sample
/// kind of --hostile to apply to this sample (empty: none).
void send(OwnRegion& r, const Options& o, const Outgoing& m, const std::string& hostile) {
  const std::lock_guard<std::mutex> serial(g_send_mu);
  const Deadline dl(o.timeout_ms);
  std::optional<std::int64_t> got;
  for (unsigned round = 0; !(got = r.free_list.pop());) {
    if (dl.passed()) die(kExitSendTimeout, "no free block in " + o.out + " (the reader keeps them all)");
    backoff(round);
  }
  const std::int64_t at = inside(kFreeQueue, *got, r.size);
  if (at < static_cast<std::int64_t>(r.pool_buffer) ||
      static_cast<std::uint64_t>(at) >= r.pool_buffer + r.blocks * r.blocksz ||
      (static_cast<std::uint64_t>(at) - r.pool_buffer) % r.blocksz != 0)
    die(kExitBadRegion, o.out + ": the reader returned a block at " + std::to_string(at) + " that is not ours");
  const auto s = static_cast<std::size_t>(at);
  std::byte* b = r.base;
  const auto capacity = static_cast<std::uint32_t>((r.blocksz - kSData) / 8);
  std::size_t n = m.values.size();
  if (n > capacity) {  // an echo of a longer sample than our blocks hold: cut, never overrun
    std::fprintf(stderr, "villas_peer: sample %" PRIu64 " cut from %zu to %u values (--samplelen)\n", m.seq, n,
                 capacity);
    n = capacity;
  }
  std::memset(b + s, 0, kSData);
  put<std::uint64_t>(b, s + kSSeq, m.seq);
  put<std::uint32_t>(b, s + kSLength, static_cast<std::uint32_t>(n));
  put<std::uint32_t>(b, s + kSCapacity, capacity);
  put<std::int32_t>(b, s + kSFlags, m.flags);
  if (o.v10_signals) {  // a v1.0.x writer leaves a live shared_ptr here: two process-local pointers
    put<std::uint64_t>(b, s + kSSignals, 0x000055d00badc0deULL);
    put<std::uint64_t>(b, s + kSSignals + 8, 0x000055d00badf00dULL);
  }
  put<std::int32_t>(b, s + kSRefcnt, 1);
  put<std::int64_t>(b, s + kSPoolOff, static_cast<std::int64_t>(kPool) - at);
  put_ts(b, s + kSOrigin, m.origin_ns);
  put_ts(b, s + kSReceived, now_ns());
  for (std::size_t j = 0; j < n; ++j) put<double>(b, s + kSData + 8 * j, m.values[j]);
  std::int64_t data_off = at - static_cast<std::int64_t>(kDataQueue);
  if (hostile == "huge-length") put<std::uint32_t>(b, s + kSLength, 0xFFFFFFF0U);
  else if (hostile == "huge-capacity") put<std::uint32_t>(b, s + kSCapacity, 1U << 24);
  else if (hostile == "bad-sample-offset") data_off = static_cast<std::int64_t>(1ULL << 40);
  else if (hostile == "misaligned-sample") data_off += 8;
  else if (hostile == "bad-pool-off") put<std::int64_t>(b, s + kSPoolOff, static_cast<std::int64_t>(kPool) - at + 64);
  else if (hostile == "v011") {  // v0.11: 8-byte signals pointer, refcnt @32, pool_off @40, ts @48, data @80
    std::memset(b + s + 16, 0, kSData - 16 + 8 * n);
    put<std::int32_t>(b, s + 16, m.flags);
    put<std::uint64_t>(b, s + 24, 0x000055d00badc0deULL);
    put<std::int32_t>(b, s + 32, 1);
    put<std::int64_t>(b, s + 40, static_cast<std::int64_t>(kPool) - at);
    put_ts(b, s + 48, m.origin_ns);
    put_ts(b, s + 64, now_ns());
    for (std::size_t j = 0; j < n; ++j) put<double>(b, s + 80 + 8 * j, m.values[j]);
  }
  for (unsigned round = 0; !r.data.push(data_off);) {
    if (dl.passed()) die(kExitSendTimeout, o.out + ": the data queue stayed full");
    backoff(round);
  }
  if (r.pthread_mode) {
    const timespec until = dl.on(CLOCK_REALTIME);
    if (::pthread_mutex_timedlock(r.mutex(), &until) != 0)
      die(kExitSendTimeout, o.out + ": own mutex not acquired");
    ::pthread_cond_broadcast(r.cond());
    ::pthread_mutex_unlock(r.mutex());
  }
  g_sent.fetch_add(1, std::memory_order_relaxed);
}

/// Waits (bounded by --drain-timeout-ms, silently) until the peer has mapped our region, which it
/// shows by unlinking its own semaphore after mapping (handshake step 4). So a peer that closes or
/// dies right after the handshake never takes its region away before the other side opened it.
void wait_peer_attached(const Options& o) {
  const std::string peer_sem = "/dev/shm/sem." + o.in.substr(1);
  const Deadline dl(o.drain_timeout_ms);
  for (unsigned round = 0; ::access(peer_sem.c_str(), F_OK) == 0 && !dl.passed();) backoff(round);
}

void send_all(OwnRegion& r, const Options& o) {
  for (long n = 0; n < o.send; ++n) {
    Outgoing m;
    m.seq = o.seq_base + static_cast<std::uint64_t>(n);
    m.flags = kFlagTsOrigin | kFlagSequence | kFlagData;
    m.origin_ns = o.origin_base ? *o.origin_base + n : now_ns();
    for (long j = 0; j < o.values; ++j) m.values.push_back(static_cast<double>(m.seq) * 100 + static_cast<double>(j) + 0.25);
    send(r, o, m, n == 0 && is_sample_kind(o.hostile) ? o.hostile : std::string());
  }
  if (o.sigkill_after_send >= 0) {
    wait_peer_attached(o);
    std::fflush(stdout);
    ::raise(SIGKILL);
  }
}

void print(const Got& g) {
  std::string line = "seq=" + std::to_string(g.seq) + " len=" + std::to_string(g.length) +
                     " flags=" + std::to_string(g.flags);
  char ts[64];
  std::snprintf(ts, sizeof ts, " origin=%" PRId64 ".%09" PRId64 " values=", g.origin_sec, g.origin_nsec);
  line += ts;
  for (std::size_t j = 0; j < g.values.size(); ++j) {
    char v[40];
    std::snprintf(v, sizeof v, "%s%.17g", j == 0 ? "" : ",", g.values[j]);
    line += v;
  }
  std::printf("%s\n", line.c_str());
}

/// The moving-sequences hostile: keeps rewriting the data queue's head, tail and cells so that
/// cells look ready (sequence = position + 1) under a head that moves, with data offsets that are
/// random or point at (stale) blocks, and some sequences random: a reader's CAS loops and its
/// checks both get work, and none of it may make it crash or hang.
void scramble(const OwnRegion& r, long ms) {
  std::mt19937_64 rng(42);
  const Deadline dl(ms);
  while (!dl.passed()) {
    const std::uint64_t h = r.data.head().load(std::memory_order_relaxed) + rng() % 3 - 1;
    r.data.head().store(h, std::memory_order_relaxed);
    for (std::uint64_t k = 0; k <= r.data.mask; ++k) {
      const std::uint64_t pos = h + k;
      const std::int64_t block = static_cast<std::int64_t>(r.pool_buffer + (rng() % r.blocks) * r.blocksz);
      const std::int64_t off = rng() % 2 == 0 ? static_cast<std::int64_t>(rng()) : block - static_cast<std::int64_t>(kDataQueue);
      std::memcpy(r.data.data(pos), &off, sizeof off);
      r.data.seq(pos).store(rng() % 4 == 0 ? rng() : pos + 1, std::memory_order_release);
    }
    r.data.tail().store(h + 1 + rng() % (r.data.mask + 1), std::memory_order_release);
    if (r.pthread_mode && ::pthread_mutex_trylock(r.mutex()) == 0) {
      ::pthread_cond_broadcast(r.cond());
      ::pthread_mutex_unlock(r.mutex());
    }
    std::this_thread::yield();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.output.empty() && std::freopen(o.output.c_str(), "w", stdout) == nullptr) die_errno("opening " + o.output);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  // 1. The two semaphores, named as the regions (sem.<name> in /dev/shm).
  sem_t* sem_w = ::sem_open(o.out.c_str(), O_CREAT, 0600, 0);
  if (sem_w == SEM_FAILED) die_errno("sem_open " + o.out);
  sem_t* sem_r = ::sem_open(o.in.c_str(), O_CREAT, 0600, 0);
  if (sem_r == SEM_FAILED) die_errno("sem_open " + o.in);

  // 2. The own region, created exclusively (a stale one is unlinked and the creation retried).
  OwnRegion own;
  own.size = region_bytes(o.queuelen, o.samplelen);
  int fd = -1;
  for (int tries = 0; fd < 0; ++tries) {
    fd = ::shm_open(o.out.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 && errno == EEXIST && tries < 10) {
      ::shm_unlink(o.out.c_str());
      continue;
    }
    if (fd < 0) die_errno("shm_open " + o.out);
  }
  if (::ftruncate(fd, static_cast<off_t>(own.size)) != 0) die_errno("ftruncate " + o.out);
  void* m = ::mmap(nullptr, own.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) die_errno("mmap " + o.out);
  ::close(fd);
  own.base = static_cast<std::byte*>(m);
  init_own(own, o);
  if (is_region_kind(o.hostile) && !o.hostile_late) corrupt_region(own, o.hostile);

  // 3. Post our semaphore; wait for the peer's.
  if (::sem_post(sem_w) != 0) die_errno("sem_post " + o.out);
  if (o.sigkill_in_rendezvous) ::raise(SIGKILL);
  if (o.rendezvous_timeout_ms == 0) {  // as villas-node: no timeout
    while (::sem_wait(sem_r) != 0)
      if (errno != EINTR) die_errno("sem_wait " + o.in);
  } else {
    timespec until{};
    ::clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += o.rendezvous_timeout_ms / 1000;
    until.tv_nsec += (o.rendezvous_timeout_ms % 1000) * 1'000'000;
    if (until.tv_nsec >= 1'000'000'000) until.tv_sec += 1, until.tv_nsec -= 1'000'000'000;
    while (::sem_timedwait(sem_r, &until) != 0) {
      if (errno == ETIMEDOUT) {
        ::shm_unlink(o.out.c_str());
        ::sem_unlink(o.out.c_str());
        die(kExitRendezvous, "no peer posted " + o.in + " within " + std::to_string(o.rendezvous_timeout_ms) + " ms");
      }
      if (errno != EINTR) die_errno("sem_timedwait " + o.in);
    }
  }

  // 4. Map the peer's region; unlink our semaphore.
  PeerRegion peer;
  peer.name = o.in;
  const int pfd = ::shm_open(o.in.c_str(), O_RDWR, 0);
  if (pfd < 0) die_errno("shm_open " + o.in);
  struct stat st{};
  if (::fstat(pfd, &st) != 0) die_errno("fstat " + o.in);
  peer.size = static_cast<std::size_t>(st.st_size);
  if (peer.size == 0) peer.bad("the region is empty");
  void* pm = ::mmap(nullptr, peer.size, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
  if (pm == MAP_FAILED) die_errno("mmap " + o.in);
  ::close(pfd);
  peer.base = static_cast<std::byte*>(pm);
  if (::sem_unlink(o.out.c_str()) != 0 && errno != ENOENT) die_errno("sem_unlink " + o.out);
  ::sem_close(sem_w);
  ::sem_close(sem_r);
  check_peer(peer);
  if (is_region_kind(o.hostile) && o.hostile_late) {
    wait_peer_attached(o);  // the peer has mapped and checked the region as it was
    corrupt_region(own, o.hostile);
  }

  // 5. Exchange.
  g_bad_free = o.hostile == "bad-free-block";
  std::thread hostile_thread;
  if (o.hostile == "moving-sequences") hostile_thread = std::thread([&] { scramble(own, o.hostile_ms); });
  std::thread sender;
  const bool reads = o.recv > 0 || o.echo > 0 || o.until_closed;
  if (o.send > 0) {
    if (reads) sender = std::thread([&] { send_all(own, o); });
    else send_all(own, o);
  }
  if (o.recv_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.recv_delay_ms));
  if (o.wait_stopped) {
    const Deadline dl(o.timeout_ms);
    for (unsigned round = 0; peer.data.state().load(std::memory_order_acquire) != kStateStopped;) {
      if (dl.passed()) die(kExitRecvTimeout, o.in + " was not closed within " + std::to_string(o.timeout_ms) + " ms");
      backoff(round);
    }
  }
  long received = 0;
  bool closed = false;
  int rc = 0;
  const long want = o.recv + o.echo;
  for (long n = 0; rc == 0 && (n < want || (o.until_closed && !closed)); ++n) {
    Got g;
    const int r = receive(peer, o, g);
    if (r < 0) {
      closed = true;
      if (n < want) {
        std::fprintf(stderr, "villas_peer: %s closed after %ld of %ld samples\n", o.in.c_str(), received, want);
        rc = kExitClosedEarly;
      }
      break;
    }
    if (r == 0) {
      std::fprintf(stderr, "villas_peer: no sample from %s within %ld ms (%ld received)\n", o.in.c_str(),
                   o.timeout_ms, received);
      rc = kExitRecvTimeout;
      break;
    }
    ++received;
    print(g);
    if (n < o.echo) {
      Outgoing e;
      e.seq = g.seq;
      e.flags = g.flags;
      e.origin_ns = g.origin_sec * 1'000'000'000 + g.origin_nsec;
      for (double v : g.values) e.values.push_back(2 * v);
      send(own, o, e, std::string());
    }
  }
  if (sender.joinable()) sender.join();
  if (hostile_thread.joinable()) hostile_thread.join();

  // 6. Close. First (a test convenience, bounded, never an error) until the peer has mapped us.
  wait_peer_attached(o);
  // Then drain (unless told not to), STOPPED under the mutex, wake the reader, unlink, unmap.
  if (!o.close_without_drain) {
    const Deadline dl(o.drain_timeout_ms);
    for (unsigned round = 0; own.data.size_approx() != 0 && o.hostile != "moving-sequences";) {
      if (dl.passed()) {
        std::fprintf(stderr, "villas_peer: %s: %" PRIu64 " samples not taken within %ld ms\n", o.out.c_str(),
                     own.data.size_approx(), o.drain_timeout_ms);
        if (rc == 0) rc = kExitDrain;
        break;
      }
      backoff(round);
    }
  }
  if (own.pthread_mode) {
    const timespec until = Deadline(o.timeout_ms).on(CLOCK_REALTIME);
    const bool locked = ::pthread_mutex_timedlock(own.mutex(), &until) == 0;
    std::int32_t expect = kStateInitialized;
    // SYNC POINT: release pairs with the reader's acquire of the state in its pull.
    own.data.state().compare_exchange_strong(expect, kStateStopped, std::memory_order_release);
    ::pthread_cond_broadcast(own.cond());
    if (locked) ::pthread_mutex_unlock(own.mutex());
  } else {
    std::int32_t expect = kStateInitialized;
    own.data.state().compare_exchange_strong(expect, kStateStopped, std::memory_order_release);
  }
  ::shm_unlink(o.out.c_str());
  ::munmap(own.base, own.size);
  ::munmap(peer.base, peer.size);
  std::printf("summary sent=%ld received=%ld closed=%d mode=%s queuelen=%u samplelen=%u size=%zu\n",
              g_sent.load(), received, closed ? 1 : 0, o.pthread_mode ? "pthread" : "polling", o.queuelen,
              o.samplelen, own.size);
  return rc;
}
