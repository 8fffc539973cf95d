// SPDX-License-Identifier: MIT
// Stream::Impl and the helpers the stream's source files share (internal, never installed).
// Layout: src/stream/isio_layout.hpp. Protocols: docs/reference/imagestreamio.md sections 9-12
// and docs/design/streams.md. The files: stream_create.cpp (construction, validation, geometry,
// info), stream_write.cpp (write path), stream_read.cpp (read path, seqlock, rolling buffers),
// stream_packets.cpp (partial writes), stream_wait.cpp (futex waits, semaphores, wait slots),
// stream_keywords.cpp (keywords).
#pragma once

#include <shmlink/doorbell.hpp>
#include <shmlink/stream.hpp>

#include "os/checked.hpp"
#include "os/clock.hpp"
#include "os/futex.hpp"
#include "os/glibc_sem.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"
#include "os/sys.hpp"
#include "stream/isio_layout.hpp"
#include "stream/tuning.hpp"

#include <semaphore.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>

namespace shmlink {

using isio::Metadata;

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint8_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::int32_t>::is_always_lock_free);
static_assert(std::atomic_ref<time_t>::is_always_lock_free);

/// Atomic access to a field of the mapping (C++20 atomic_ref; the fields stay plain data so
/// the layout is ISIO's). Readers map the file writable, so casting away const is sound.
template <class T>
std::atomic_ref<T> aref(const T& field) noexcept {
  return std::atomic_ref<T>(const_cast<T&>(field));
}

/// Futex word: the low 32 bits of cnt0 (little-endian, offset 264; reference 12.3).
inline const std::uint32_t* cnt0_futex_word(const Metadata* md) noexcept {
  return reinterpret_cast<const std::uint32_t*>(&md->cnt0);
}

inline void store_timespec(const timespec& field, std::int64_t ns) noexcept {
  const timespec ts = os::to_timespec(ns);
  aref(field.tv_sec).store(ts.tv_sec, std::memory_order_relaxed);
  aref(field.tv_nsec).store(ts.tv_nsec, std::memory_order_relaxed);
}

/// A timestamp field in ns since the epoch, saturated to the int64 range: the fields are
/// peer-written, and a corrupted tv_sec (or tv_nsec outside 0..999999999) must not overflow.
inline std::int64_t load_timespec(const timespec& field) noexcept {
  const time_t s = aref(field.tv_sec).load(std::memory_order_relaxed);
  const long ns = aref(field.tv_nsec).load(std::memory_order_relaxed);
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  std::int64_t r = 0;
  if (__builtin_mul_overflow(static_cast<std::int64_t>(s), std::int64_t{1'000'000'000}, &r)) return s < 0 ? kMin : kMax;
  if (__builtin_add_overflow(r, static_cast<std::int64_t>(ns), &r)) return ns < 0 ? kMin : kMax;
  return r;
}

/// A NUL-terminated string inside a fixed field, or nullopt when it is not terminated.
inline std::optional<std::string> fixed_string(const char* field, std::size_t size) {
  const void* nul = std::memchr(field, '\0', size);
  if (nul == nullptr) return std::nullopt;
  return std::string(field, static_cast<const char*>(nul));
}

/// `shape` as "AxBxC". Appends piece by piece: g++ 12 at -O3 reports a false -Wrestrict overlap
/// in `const char* + std::string&&` (its inlined insert-at-0) when that temporary was built here.
inline std::string shape_text(std::span<const std::uint32_t> shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s;
}

/// Whether a semaphore slot whose semReadPID is `pid` may be claimed: 0 or -1 (never claimed,
/// given back), or, when every user of the stream shares this kernel (`same_kernel`), a pid that
/// names no live process here. In memory shared with other kernels (VMs) a pid may be another
/// kernel's and cannot be checked: any other value counts as a live holder.
inline bool slot_free(std::int32_t pid, bool same_kernel) noexcept {
  return pid == 0 || pid == -1 || (same_kernel && !os::pid_alive(pid));
}

/// The wake stamp of frame `cnt0` (the low 32 bits, as stored in Metadata::shmlink_wake_stamp).
constexpr std::uint32_t wake_stamp_of(std::uint64_t cnt0) noexcept { return static_cast<std::uint32_t>(cnt0); }

/// The semaphore slots this process holds for wait_futex, by owner pid, stream identity (the
/// Impl's key_dev, key_ino, key_offset: two streams in one region share a device and inode) and
/// slot: claim_semaphore() and release_semaphore() leave them alone, so that a slot claimed
/// for waiting is never handed out again for someone's own semaphore reads in this process (its
/// semReadPID is this process's pid, which claim_semaphore() would otherwise call "ours"). The
/// owner pid is part of the key because a forked child inherits a copy of the registry: the
/// parent's entries must not make the child's own claims of those slots look like wait slots.
///
/// `claims` holds, for streams shared with other kernels only, the slots claim_semaphore()
/// claimed in this process: there a semReadPID equal to getpid() may be another kernel's process
/// with the same pid number, so "ours" means "claimed here", never "holds our pid".
struct WaitSlotRegistry {
  using Key = std::tuple<pid_t, std::uint64_t, std::uint64_t, std::uint64_t, int>;
  std::mutex mu;
  std::set<Key> slots;
  std::atomic<int> size{0};  ///< slots.size(), read without the lock to skip the common case
  std::set<Key> claims;      ///< claim_semaphore()'s claims on streams shared with other kernels
};
/// The process's one registry (stream_wait.cpp).
WaitSlotRegistry& wait_slot_registry() noexcept;

/// The partial-write companion of the stream file `path`: `<dir>/<name>_pkt.im.shm`.
inline std::string companion_path(const std::string& path) {
  constexpr std::string_view kSuffix = ".im.shm";
  if (path.size() > kSuffix.size() && path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0)
    return path.substr(0, path.size() - kSuffix.size()) + "_pkt" + std::string(kSuffix);
  return path + "_pkt";
}

/// Companion record of one slice (u64 each): frame cnt0 (0 = none or being assembled),
/// packet_total, element offset and element count of the last packet written, then the cnt0 of
/// the frame each packet last arrived for.
inline constexpr std::uint32_t kPktFrame = 0, kPktTotal = 1, kPktLastPos = 2, kPktLastNb = 3, kPktHeader = 4;
inline constexpr std::uint32_t kPktRecord = kPktHeader + kMaxPackets;

struct Stream::Impl {
  /// Where the stream lives; `where.owner` keeps the mapping alive.
  Placement where;
  /// True when the placement's hot-path word says the bytes are no longer this stream's.
  bool placement_gone() const noexcept { return !where.word_current(); }
  /// A file of its own (Stream::create/open): the companion is a file next to it, and
  /// file_bytes() / the size checks are the file's.
  bool file = false;
  /// Process-wide identity of the stream's bytes for the wait-slot registry: the placement's
  /// (dev, ino, offset), or (0, 0, address of the bytes) when the placement does not know them.
  std::uint64_t key_dev = 0, key_ino = 0, key_offset = 0;
  isio::Layout layout;
  Metadata* md = nullptr;
  std::byte* base = nullptr;
  std::byte* data = nullptr;
  isio::Keyword* kw = nullptr;
  sem_t* sems = nullptr;
  sem_t* semlog = nullptr;
  std::int32_t* read_pid = nullptr;
  std::int32_t* write_pid = nullptr;
  isio::CbFrameMd* cbmd = nullptr;
  std::byte* cbdata = nullptr;
  timespec* atimearray = nullptr;      ///< per-slice acquisition times (rolling buffers)
  timespec* writetimearray = nullptr;  ///< per-slice write times
  std::uint64_t* cntarray = nullptr;   ///< per-slice cnt0
  std::string name;
  std::string path;
  std::vector<std::uint32_t> shape;
  std::vector<std::uint32_t> frame_shape;
  Dtype dtype = Dtype::f32;
  std::uint64_t nelement = 0;
  std::uint64_t frame_elements = 0;
  std::size_t frame_bytes = 0;  ///< one frame (one slice of a rolling buffer)
  std::size_t data_bytes = 0;   ///< imdatamemsize
  std::uint32_t depth = 1;      ///< slices of a rolling buffer, else 1
  bool rolling = false;         ///< is_rolling_buffer(naxis, imagetype)
  bool temporal = false;        ///< rolling, with the per-slice arrays (cntarray, times)
  int nsem = 0;
  int nkw = 0;
  std::uint32_t cbsize = 0;
  bool writable = true;  ///< false: mapped PROT_READ, every mutating call returns Errc::permission

  // Writer state (process-local).
  bool writing = false;           ///< between begin_write() and commit_write()
  std::int64_t write_now = -1;    ///< write(): the clock read before the seqlock opens
  std::uint32_t write_slice = 0;  ///< slice being written
  // Sequential reader state (process-local): cnt0 of the last frame read_next() returned.
  std::uint64_t tail = 0;
  // Partial writes (process-local), and the companion stream `<name>_pkt`.
  bool pkt_open = false;
  std::uint32_t pkt_total = 0;
  std::vector<bool> pkt_have;
  bool pkt_initialised = false;  ///< this handle created/re-initialised the companion
  mutable std::unique_ptr<Stream> pkt;
  // wait_futex's semaphore slots (process-local; docs/design/streams.md "Waiting"): claimed
  // when the newest frame's writer does not wake futexes, held until close.
  /// The bookkeeping of one slot's posts, carried by the thread that waits on it.
  struct SlotBook {
    /// Posts the slot still owes for frames wait_futex's callers have seen (positive), or posts
    /// taken ahead of their frame's cnt0 increment (negative), so that a flush can tell old posts
    /// (nothing to watch) from a post made before its increment (ISIO's Python write()).
    std::int64_t owed = 0;
    std::uint64_t seen_cnt0 = 0;     ///< the highest last_cnt0 counted into `owed`
    std::uint64_t prepaid_upto = 0;  ///< a negative `owed` pays for frames up to this cnt0 only
  };
  struct WaitSlot {
    int index = -1;
    bool busy = false;  ///< a thread is waiting on it now
    SlotBook book;
  };
  std::mutex wait_mu;                      ///< guards the four fields below
  std::vector<WaitSlot> wait_slots;        ///< slots this handle holds for waiting
  pid_t wait_slots_pid = 0;                ///< the process that claimed them (a forked child holds none)
  std::atomic<int> wait_slots_held{0};     ///< wait_slots.size(), read without the lock
  std::atomic<bool> legacy_writer_seen{false};        ///< a frame without the wake stamp was seen
  std::atomic<std::int64_t> wait_claim_failed_ns{-1};  ///< when every slot was last found taken

  ~Impl() { release_wait_slots(true); }

  /// A handle on a stream laid out (create) or validated (open) in `where`, with layout `l`.
  static Stream bind_placed(const Placement& where, const isio::Layout& l, const Metadata& checked, bool writable,
                            bool file);
  /// Creates (a file, or a placed stream's sibling) or re-initialises the partial-write companion
  /// `pkt` at this handle's first packet. ok, or the error write_packet() returns.
  Status init_companion() noexcept;
  /// Opens the companion for reading its records (nullptr when a placed stream has none).
  /// @throws Error as Stream::open / open_in do.
  [[nodiscard]] std::unique_ptr<Stream> open_companion() const;
  /// True when `c` has the shape of our companion: u64, kPktRecord x depth.
  [[nodiscard]] bool fits_companion(const Stream& c) const noexcept;
  /// What a companion records in its cnt2 to name the stream it belongs to: the file's inode, or
  /// (placed streams, whose placements share one inode) the stream's creation time in ns.
  [[nodiscard]] std::uint64_t companion_owner() const noexcept;
  /// The companion's name in the placement's container: `<name>_pkt`.
  [[nodiscard]] std::string companion_name() const;
  /// open_in(), and open() of a file (`file`: the file's size must be the layout's exactly, as
  /// ImageStreamIO sizes it; any other placement may hold more bytes than the layout uses).
  static Stream open_placed(const Placement& where, const OpenOptions& options, bool file);

  /// Slice `s` of the data area.
  [[nodiscard]] std::byte* slice_data(std::uint32_t s) const noexcept {
    return data + std::uint64_t{s} * frame_bytes;
  }

  /// True while the backing still covers the placement (one fstat(2) of the placement's
  /// descriptor): false once a file was truncated in place (DAO-style re-creation), when every
  /// access to the mapping would raise SIGBUS. Always true without a descriptor.
  [[nodiscard]] bool intact() const noexcept {
    if (where.fd < 0) return true;
    struct stat st {};
    return ::fstat(where.fd, &st) == 0 && st.st_size >= 0 &&
           static_cast<std::uint64_t>(st.st_size) >= where.offset + where.bytes.size();
  }

  /// Points every chunk pointer into the mapping from a validated layout and `snap`, the copy of
  /// the metadata that was validated (never the live fields, which a peer may change meanwhile).
  void bind(const Metadata& snap) {
    base = where.bytes.data();
    if (where.dev != 0 || where.ino != 0) {  // a backing known by identity (offset alone is not: two attached regions)
      key_dev = where.dev;
      key_ino = where.ino;
      key_offset = where.offset;
    } else {
      key_offset = reinterpret_cast<std::uintptr_t>(base);
    }
    md = reinterpret_cast<Metadata*>(base);
    data = base + layout.data;
    kw = reinterpret_cast<isio::Keyword*>(base + layout.keywords);
    sems = reinterpret_cast<sem_t*>(base + layout.semaphores);
    semlog = reinterpret_cast<sem_t*>(base + layout.semlog);
    read_pid = reinterpret_cast<std::int32_t*>(base + layout.sem_read_pid);
    write_pid = reinterpret_cast<std::int32_t*>(base + layout.sem_write_pid);
    cbmd = reinterpret_cast<isio::CbFrameMd*>(base + layout.cbframemd);
    cbdata = base + layout.cbdata;
    nsem = snap.sem;
    nkw = snap.NBkw;
    cbsize = snap.CBsize;
    dtype = static_cast<Dtype>(snap.datatype);
    nelement = snap.nelement;
    data_bytes = static_cast<std::size_t>(snap.imdatamemsize);
    shape.assign(snap.size, snap.size + snap.naxis);
    // ISIO's rule (is_rolling_buffer): 3 axes and CIRCULAR_BUFFER in imagetype's low nibble.
    // The per-slice arrays exist only with ZAXIS_TEMPORAL too (the layout sized them so).
    rolling = is_rolling_buffer(snap.naxis, snap.imagetype);
    temporal = rolling && isio::has_temporal_arrays(snap.imagetype);
    depth = rolling ? snap.size[2] : 1;
    if (temporal) {
      atimearray = reinterpret_cast<timespec*>(base + layout.atimearray);
      writetimearray = reinterpret_cast<timespec*>(base + layout.writetimearray);
      cntarray = reinterpret_cast<std::uint64_t*>(base + layout.cntarray);
    }
    if (rolling) {
      // A frame of one row is a 1-axis frame (StreamSpec{.shape = {n}, .depth = N} -> n x 1 x N).
      frame_shape.assign(shape.begin(), shape.begin() + (shape[1] == 1 ? 1 : 2));
    } else {
      frame_shape = shape;
    }
    frame_bytes = data_bytes / depth;
    frame_elements = nelement / depth;
    name = fixed_string(snap.name, sizeof(snap.name)).value_or(std::string());
    if (name.empty()) name = where.name;
    path = where.path;
    tail = aref(md->cnt0).load(std::memory_order_acquire);
  }

  /// Posts slot `i` if below the cap (recording semWritePID), through shmlink's own operation on
  /// the glibc sem_t words (os/glibc_sem.hpp): any bytes in the slot cost that slot, never the
  /// process (glibc's sem_post aborts on some).
  void post_slot(int i, pid_t pid) noexcept {
    if (os::gsem::post(&sems[i], kSemaphoreMaxValue)) aref(write_pid[i]).store(pid, std::memory_order_relaxed);
  }
  /// Posts every slot below the cap, then semlog once, as ImageStreamIO_sempost(img, -1) does
  /// (reference section 10).
  void post_all() noexcept {
    const pid_t pid = os::current_pid();
    for (int i = 0; i < nsem; ++i) post_slot(i, pid);
    (void)os::gsem::post(semlog, kSemaphoreMaxValue);
  }

  // ---- wait_futex's semaphore slots ----

  /// Who published the newest frame, judged by the wake stamp.
  enum class NewestWriter { shmlink, legacy, unknown };
  [[nodiscard]] NewestWriter newest_writer() const noexcept;

  /// Whether wait_futex should also wait on a semaphore slot: the handle may claim one (mapped
  /// writable, the stream has slots, all its users share this kernel), and either a frame without the wake stamp was seen (then
  /// until close), or the newest frame lacks it, or nothing was written yet. After a stamped
  /// frame (a shmlink writer) and no unstamped one, slots held from the wait for the first frame
  /// are given back.
  bool wants_semaphore() noexcept;

  /// A slot for one waiting thread: one this handle holds and no other thread waits on, else a
  /// newly claimed one (CAS of semReadPID from a free value to our pid, from the last slot down:
  /// milk programs tend to use fixed low indices), flushed of old posts. -1 when every slot is
  /// taken (then not retried for 100 ms, so that a waiter does not scan the slots on every call).
  int acquire_wait_slot(SlotBook* book) noexcept;

  /// The waiting thread is done with slot `index` (still held by the handle); `book` is the
  /// slot's bookkeeping as that thread left it.
  void end_wait_on_slot(int index, const SlotBook& book) noexcept;

  /// Removes slot `index` of this stream, claimed by process `owner`, from the process-wide registry.
  void forget_wait_slot(pid_t owner, int index) noexcept;

  /// Gives back the slots held for waiting (semReadPID from our pid to -1 by CAS, so a slot
  /// someone else holds now stays theirs): the idle ones, or all (`all`, on close).
  void release_wait_slots(bool all) noexcept;

  /// True when this process holds slot `index` of this stream for wait_futex (in any handle).
  bool held_for_waiting(int index) noexcept;

  // ---- streams shared with other kernels (where.same_kernel false) ----

  /// Records that this process claimed slot `index` (claim_semaphore()). false when the registry
  /// could not take it (allocation failure): the caller gives the slot back.
  bool note_claim(int index) noexcept;
  /// True when this process claimed slot `index` (a claim_semaphore() not yet released).
  bool claimed_here(int index) noexcept;
  /// Forgets this process's claim of slot `index`.
  void forget_claim(int index) noexcept;
  /// Logs once per handle, at debug level, that its waits poll (futexes do not cross kernels).
  void note_polling() noexcept;
  std::atomic<bool> polling_noted{false};  ///< note_polling() has logged
};

/// True when `cpath` is a partial-write companion (u64, 516 x depth), and, when `owner_inode`
/// is given, the companion of the stream file with that inode (its cnt2). (stream_create.cpp)
bool is_companion(const std::string& cpath, std::optional<std::uint64_t> owner_inode) noexcept;

/// The slice holding frame `k` of a rolling buffer (stream_read.cpp).
bool slice_of(const Stream::Impl& m, std::uint64_t k, std::uint32_t* sl) noexcept;

}  // namespace shmlink
