// SPDX-License-Identifier: MIT
// ImageStreamIO 2.00 streams (include/shmlink/stream.hpp).
// Layout: src/stream/isio_layout.hpp. Protocols: docs/reference/imagestreamio.md sections 9-12
// and docs/design/streams.md.
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
namespace {

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
const std::uint32_t* cnt0_futex_word(const Metadata* md) noexcept {
  return reinterpret_cast<const std::uint32_t*>(&md->cnt0);
}

void store_timespec(const timespec& field, std::int64_t ns) noexcept {
  const timespec ts = os::to_timespec(ns);
  aref(field.tv_sec).store(ts.tv_sec, std::memory_order_relaxed);
  aref(field.tv_nsec).store(ts.tv_nsec, std::memory_order_relaxed);
}

/// A timestamp field in ns since the epoch, saturated to the int64 range: the fields are
/// peer-written, and a corrupted tv_sec (or tv_nsec outside 0..999999999) must not overflow.
std::int64_t load_timespec(const timespec& field) noexcept {
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
std::optional<std::string> fixed_string(const char* field, std::size_t size) {
  const void* nul = std::memchr(field, '\0', size);
  if (nul == nullptr) return std::nullopt;
  return std::string(field, static_cast<const char*>(nul));
}

/// `shape` as "AxBxC". Appends piece by piece: g++ 12 at -O3 reports a false -Wrestrict overlap
/// in `const char* + std::string&&` (its inlined insert-at-0) when that temporary was built here.
std::string shape_text(std::span<const std::uint32_t> shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s;
}

bool slot_free(std::int32_t pid) noexcept { return pid == 0 || pid == -1 || !os::pid_alive(pid); }

/// The wake stamp of frame `cnt0` (the low 32 bits, as stored in Metadata::shmlink_wake_stamp).
constexpr std::uint32_t wake_stamp_of(std::uint64_t cnt0) noexcept { return static_cast<std::uint32_t>(cnt0); }

/// The semaphore slots this process holds for wait_futex, by owner pid, stream identity (the
/// Impl's key_dev, key_ino, key_offset: two streams in one region share a device and inode) and
/// slot: claim_semaphore() and release_semaphore() leave them alone, so that a slot claimed
/// for waiting is never handed out again for someone's own semaphore reads in this process (its
/// semReadPID is this process's pid, which claim_semaphore() would otherwise call "ours"). The
/// owner pid is part of the key because a forked child inherits a copy of the registry: the
/// parent's entries must not make the child's own claims of those slots look like wait slots.
struct WaitSlotRegistry {
  std::mutex mu;
  std::set<std::tuple<pid_t, std::uint64_t, std::uint64_t, std::uint64_t, int>> slots;
  std::atomic<int> size{0};  ///< slots.size(), read without the lock to skip the common case
};
WaitSlotRegistry& wait_slot_registry() noexcept {
  static WaitSlotRegistry r;
  return r;
}

/// The partial-write companion of the stream file `path`: `<dir>/<name>_pkt.im.shm`.
std::string companion_path(const std::string& path) {
  constexpr std::string_view kSuffix = ".im.shm";
  if (path.size() > kSuffix.size() && path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0)
    return path.substr(0, path.size() - kSuffix.size()) + "_pkt" + std::string(kSuffix);
  return path + "_pkt";
}

/// Companion record of one slice (u64 each): frame cnt0 (0 = none or being assembled),
/// packet_total, element offset and element count of the last packet written, then the cnt0 of
/// the frame each packet last arrived for.
constexpr std::uint32_t kPktFrame = 0, kPktTotal = 1, kPktLastPos = 2, kPktLastNb = 3, kPktHeader = 4;
constexpr std::uint32_t kPktRecord = kPktHeader + kMaxPackets;

}  // namespace

struct Stream::Impl {
  /// Where the stream lives; `where.owner` keeps the mapping alive.
  Placement where;
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
  static Stream bind_placed(const Placement& where, const isio::Layout& l, bool writable, bool file);
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
    if (where.dev != 0 || where.ino != 0 || where.offset != 0) {
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
  [[nodiscard]] NewestWriter newest_writer() const noexcept {
    for (int attempt = 0; attempt < 4; ++attempt) {
      // SYNC POINT W (acquire): pairs with the writer's release increment of cnt0 (SYNC POINT A),
      // which follows its stamp store: a shmlink writer's stamp of frame c is visible here.
      const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);
      if (c == 0) return NewestWriter::unknown;  // nothing written yet: any writer may come
      // Acquire, so that the re-load of cnt0 below cannot be satisfied before it.
      const std::uint32_t stamp = aref(md->shmlink_wake_stamp).load(std::memory_order_acquire);
      if (aref(md->cnt0).load(std::memory_order_relaxed) != c) continue;  // a frame came meanwhile
      // The stamp of frame c, or of frame c + 1 whose shmlink writer stamped it and has not
      // incremented cnt0 yet.
      return stamp == wake_stamp_of(c) || stamp == wake_stamp_of(c + 1) ? NewestWriter::shmlink : NewestWriter::legacy;
    }
    return NewestWriter::unknown;  // cnt0 keeps moving: judged at the next wait
  }

  /// Whether wait_futex should also wait on a semaphore slot: the handle may claim one (mapped
  /// writable, the stream has slots), and either a frame without the wake stamp was seen (then
  /// until close), or the newest frame lacks it, or nothing was written yet. After a stamped
  /// frame (a shmlink writer) and no unstamped one, slots held from the wait for the first frame
  /// are given back.
  bool wants_semaphore() noexcept {
    if (!writable || nsem == 0) return false;
    if (legacy_writer_seen.load(std::memory_order_relaxed)) return true;
    switch (newest_writer()) {
      case NewestWriter::shmlink:
        if (wait_slots_held.load(std::memory_order_relaxed) != 0) release_wait_slots(false);
        return false;
      case NewestWriter::legacy: legacy_writer_seen.store(true, std::memory_order_relaxed); return true;
      case NewestWriter::unknown: return true;
    }
    return true;
  }

  /// A slot for one waiting thread: one this handle holds and no other thread waits on, else a
  /// newly claimed one (CAS of semReadPID from a free value to our pid, from the last slot down:
  /// milk programs tend to use fixed low indices), flushed of old posts. -1 when every slot is
  /// taken (then not retried for 100 ms, so that a waiter does not scan the slots on every call).
  int acquire_wait_slot(SlotBook* book) noexcept {
    try {
      const std::lock_guard<std::mutex> lock(wait_mu);
      const pid_t me = os::current_pid();
      if (wait_slots_pid != me) {  // a forked child: the parent's claims stay the parent's
        for (const WaitSlot& w : wait_slots) forget_wait_slot(wait_slots_pid, w.index);  // the copy's entries
        wait_slots.clear();
        wait_slots_held.store(0, std::memory_order_relaxed);
        wait_slots_pid = me;
      }
      for (auto it = wait_slots.begin(); it != wait_slots.end(); ++it) {
        if (it->busy) continue;
        // Relaxed: only this process writes our pid there, and we look for our own store.
        if (aref(read_pid[it->index]).load(std::memory_order_relaxed) == me) {
          it->busy = true;
          *book = it->book;
          return it->index;
        }
        // Someone rewrote semReadPID (no shmlink process does for a live owner): not ours any more.
        forget_wait_slot(me, it->index);
        wait_slots.erase(it);
        wait_slots_held.store(static_cast<int>(wait_slots.size()), std::memory_order_relaxed);
        break;  // the iterator is gone; the next wait looks again
      }
      const std::int64_t failed = wait_claim_failed_ns.load(std::memory_order_relaxed);
      const std::int64_t now = os::monotonic_ns();
      if (failed >= 0 && now - failed < 100'000'000) return -1;
      // Room for the new entry before any claim, so that nothing can throw between the CAS and
      // the bookkeeping but the registry's insertion, which gives the slot back when it fails.
      wait_slots.reserve(wait_slots.size() + 1);
      for (int i = nsem - 1; i >= 0; --i) {
        auto slot = aref(read_pid[i]);
        std::int32_t seen = slot.load(std::memory_order_relaxed);
        // CAS from the exact value judged free, as claim_semaphore() does: never two owners.
        // SYNC POINT R (acq_rel): one RMW order on semReadPID with every other claimer's and
        // gc's CAS, so exactly one of them wins a free slot.
        if (!slot_free(seen) || !slot.compare_exchange_strong(seen, me, std::memory_order_acq_rel)) continue;
        try {
          WaitSlotRegistry& reg = wait_slot_registry();
          const std::lock_guard<std::mutex> rlock(reg.mu);
          reg.slots.emplace(me, key_dev, key_ino, key_offset, i);
          reg.size.store(static_cast<int>(reg.slots.size()), std::memory_order_relaxed);
        } catch (...) {
          std::int32_t mine = me;
          // SYNC POINT R (acq_rel): given back at once, from our own pid only.
          slot.compare_exchange_strong(mine, -1, std::memory_order_acq_rel);
          return -1;
        }
        // Posts made before the claim are not for us (ISIO's readers flush once, ref 12.2);
        // SYNC POINT S (acquire CAS inside flush). Frames up to the cnt0 read after it have
        // had their posts taken (ISIO posts after its increment): nothing is owed for them.
        (void)os::gsem::flush(&sems[i]);
        const std::uint64_t now_cnt0 = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
        const SlotBook fresh{0, now_cnt0, now_cnt0};
        wait_slots.push_back({i, true, fresh});  // no allocation: reserved above
        *book = fresh;
        wait_slots_held.store(static_cast<int>(wait_slots.size()), std::memory_order_relaxed);
        wait_claim_failed_ns.store(-1, std::memory_order_relaxed);
        return i;
      }
      wait_claim_failed_ns.store(now, std::memory_order_relaxed);
      return -1;
    } catch (...) {  // std::mutex::lock or the registry's allocation failed: wait without a slot
      return -1;
    }
  }

  /// The waiting thread is done with slot `index` (still held by the handle); `book` is the
  /// slot's bookkeeping as that thread left it.
  void end_wait_on_slot(int index, const SlotBook& book) noexcept {
    try {
      const std::lock_guard<std::mutex> lock(wait_mu);
      for (WaitSlot& w : wait_slots)
        if (w.index == index) {
          w.busy = false;
          w.book = book;
        }
    } catch (...) {
      // the slot stays marked busy: a later wait claims another one
    }
  }

  /// Removes slot `index` of this stream, claimed by process `owner`, from the process-wide registry.
  void forget_wait_slot(pid_t owner, int index) noexcept {
    WaitSlotRegistry& reg = wait_slot_registry();
    try {
      const std::lock_guard<std::mutex> rlock(reg.mu);
      reg.slots.erase({owner, key_dev, key_ino, key_offset, index});
      reg.size.store(static_cast<int>(reg.slots.size()), std::memory_order_relaxed);
    } catch (...) {
      // left registered: claim_semaphore() then skips a slot it could have used, nothing worse
    }
  }

  /// Gives back the slots held for waiting (semReadPID from our pid to -1 by CAS, so a slot
  /// someone else holds now stays theirs): the idle ones, or all (`all`, on close).
  void release_wait_slots(bool all) noexcept {
    try {
      const std::lock_guard<std::mutex> lock(wait_mu);
      if (wait_slots.empty()) return;
      const pid_t me = os::current_pid();
      // A forked child's copy releases nothing; nor does a handle whose file was truncated in
      // place (DAO-style re-creation): its semReadPID words are gone, touching them would fault.
      const bool ours = wait_slots_pid == me && intact();
      std::vector<WaitSlot> kept;
      for (const WaitSlot& w : wait_slots) {
        if (w.busy && !all) {
          kept.push_back(w);
          continue;
        }
        // The registry entry goes in every case (a stale one would make claim_semaphore() and
        // release_semaphore() treat the slot as a wait slot for ever); only the give-back needs
        // the slot to be ours and the file intact.
        forget_wait_slot(wait_slots_pid, w.index);
        if (!ours) continue;
        std::int32_t expected = me;
        // SYNC POINT R (acq_rel): only from our own pid, so a slot someone else holds stays theirs.
        if (writable) aref(read_pid[w.index]).compare_exchange_strong(expected, -1, std::memory_order_acq_rel);
      }
      wait_slots = std::move(kept);
      wait_slots_held.store(static_cast<int>(wait_slots.size()), std::memory_order_relaxed);
    } catch (...) {
      // kept until close; gc frees them once this process is gone
    }
  }

  /// True when this process holds slot `index` of this stream for wait_futex (in any handle).
  bool held_for_waiting(int index) noexcept {
    WaitSlotRegistry& reg = wait_slot_registry();
    if (reg.size.load(std::memory_order_relaxed) == 0) return false;
    try {
      const std::lock_guard<std::mutex> rlock(reg.mu);
      return reg.slots.count({os::current_pid(), key_dev, key_ino, key_offset, index}) != 0;
    } catch (...) {
      return false;
    }
  }
};

// ---- construction -----------------------------------------------------------------------

Stream::Stream() noexcept = default;
Stream::Stream(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;
void Stream::close() noexcept { impl_.reset(); }

namespace {

/// The spec as laid out in the file: a rolling-buffer depth N >= 2 appends an axis of N slices
/// (after a 1 for a 1-axis frame) and sets imagetype's low nibble and z-axis bits to
/// CIRCULAR_BUFFER | ZAXIS_TEMPORAL (reference 17.8).
StreamSpec effective_spec(const std::string& path, const StreamSpec& spec) {
  if (spec.depth < 2) return spec;
  if (spec.shape.empty() || spec.shape.size() > 2)
    throw Error(Errc::invalid_argument, "creating " + path + ": a rolling buffer (depth " + std::to_string(spec.depth) +
                                            ") needs a frame shape of 1 or 2 axes, got " +
                                            std::to_string(spec.shape.size()));
  StreamSpec e = spec;
  if (e.shape.size() == 1) e.shape.push_back(1);
  e.shape.push_back(spec.depth);
  e.imagetype = (spec.imagetype & ~std::uint64_t{0xF000F}) | kImagetypeCircularBuffer | kImagetypeZaxisTemporal;
  e.depth = 0;
  return e;
}

/// Checks a spec and returns its sizing inputs; throws invalid_argument naming the path.
isio::Geometry check_spec(const std::string& path, const StreamSpec& spec) {
  auto bad = [&](const std::string& what) { throw Error(Errc::invalid_argument, "creating " + path + ": " + what); };
  if (spec.shape.empty() || spec.shape.size() > 3)
    bad("shape has " + std::to_string(spec.shape.size()) + " axes, 1 to 3 allowed");
  std::uint64_t n = 1;
  for (std::size_t i = 0; i < spec.shape.size(); ++i) {
    if (spec.shape[i] == 0) bad("axis " + std::to_string(i) + " has length 0");
    n *= spec.shape[i];
  }
  if (n > isio::kMaxElements) bad(std::to_string(n) + " elements exceed ImageStreamIO's limit of 1e10");
  if (!dtype_valid(static_cast<std::uint8_t>(spec.dtype)))
    bad("datatype code " + std::to_string(static_cast<int>(spec.dtype)) + " is not 1..13");
  // Semaphores: any count ISIO's uint16 `sem` holds (0..kMaxSemaphores), as ImageStreamIO and
  // milk's tools create them; the layout below sizes their chunks.
  static_assert(kMaxSemaphores == std::numeric_limits<decltype(spec.semaphores)>::max());
  if ((spec.imagetype & 0xF000F) == kImagetypeCircularBuffer && spec.shape.size() != 3)
    bad("a circular-buffer imagetype needs 3 axes");
  if (isio::has_temporal_arrays(spec.imagetype) && spec.shape.size() != 3)
    bad("a temporal (CIRCULAR_BUFFER|ZAXIS_TEMPORAL) stream needs 3 axes");
  if (spec.version.empty() || spec.version.size() > 31)
    bad("version string '" + spec.version + "' must be 1 to 31 bytes");
  check_channel_permissions(spec.permissions, path);
  isio::Geometry g;
  g.imdatamemsize = n * dtype_size(spec.dtype);
  g.nbkw = spec.keywords;
  g.nbsem = spec.semaphores;
  g.size2 = spec.shape.size() == 3 ? spec.shape[2] : 0;
  g.imagetype = spec.imagetype;
  g.cbsize = spec.circular_buffer;
  if (spec.circular_buffer > 0 && g.imdatamemsize > (std::uint64_t{1} << 40) / spec.circular_buffer)
    bad("circular buffer of " + std::to_string(spec.circular_buffer) + " frames is too large");
  return g;
}

/// Fills fresh, zeroed bytes as ImageStreamIO_createIm_gpu fills a new file (reference section
/// 9), with the version written last (release) and semlog initialised process-shared.
/// @param base the stream's first byte (at least l.file_size zero bytes); @param inode stored in
/// md->inode; @param what names the stream in errors.
void lay_out(std::byte* base, std::uint64_t inode, const std::string& name, const StreamSpec& spec,
             const isio::Geometry& g, const isio::Layout& l, const std::string& what) {
  auto* md = reinterpret_cast<Metadata*>(base);
  std::memcpy(md->name, name.data(), name.size());
  md->naxis = static_cast<std::uint8_t>(spec.shape.size());
  std::uint64_t n = 1;
  for (std::size_t i = 0; i < spec.shape.size(); ++i) {
    md->size[i] = spec.shape[i];
    n *= spec.shape[i];
  }
  md->nelement = n;
  md->datatype = static_cast<std::uint8_t>(spec.dtype);
  md->imagetype = spec.imagetype;
  const timespec now = os::to_timespec(os::realtime_ns());
  md->creationtime = now;
  md->lastaccesstime = now;
  md->creatorPID = os::current_pid();
  md->ownerPID = 0;
  md->shared = 1;
  md->inode = inode;
  md->location = -1;
  md->sem = g.nbsem;
  md->NBproctrace = isio::kProcTraceEntries;
  md->NBkw = g.nbkw;
  md->CBsize = g.cbsize;
  md->imdatamemsize = g.imdatamemsize;

  auto* kw = reinterpret_cast<isio::Keyword*>(base + l.keywords);
  for (int i = 0; i < g.nbkw; ++i) kw[i].type = 'N';
  auto* sems = reinterpret_cast<sem_t*>(base + l.semaphores);
  auto* read_pid = reinterpret_cast<std::int32_t*>(base + l.sem_read_pid);
  auto* write_pid = reinterpret_cast<std::int32_t*>(base + l.sem_write_pid);
  for (int i = 0; i < g.nbsem; ++i) {
    if (::sem_init(&sems[i], 1, 0) != 0) os::throw_errno(errno, "initialising semaphores of", what);
    read_pid[i] = -1;
    write_pid[i] = -1;
  }
  if (::sem_init(reinterpret_cast<sem_t*>(base + l.semlog), 1, 0) != 0)
    os::throw_errno(errno, "initialising semlog of", what);
  auto* pt = reinterpret_cast<isio::ProcTrace*>(base + l.proctrace);
  for (int i = 0; i < isio::kProcTraceEntries; ++i) pt[i].trigsemindex = -1;

  // SYNC POINT V: the version is the readiness marker. Every byte but the first, then the first
  // with release ordering; open_in loads it with acquire.
  std::memcpy(md->version + 1, spec.version.data() + 1, spec.version.size() - 1);
  aref(md->version[0]).store(spec.version[0], std::memory_order_release);
}

/// The placement of a stream file: its whole mapping, kept alive by the handle. replaced() is
/// true once the path names another inode or nothing (re-created or removed), as before
/// placements existed.
Placement file_placement(Segment seg, const std::string& name, bool writable) {
  auto owner = std::make_shared<Segment>(std::move(seg));
  Placement p;
  p.bytes = std::span<std::byte>(owner->data(), owner->size());
  p.name = name;
  p.path = owner->path();
  struct stat st {};
  if (::fstat(owner->fd(), &st) == 0) p.dev = static_cast<std::uint64_t>(st.st_dev);
  p.ino = owner->inode();
  p.fd = owner->fd();
  p.writable = writable;
  p.still_current = [path = p.path, ino = p.ino]() noexcept {
    struct stat now {};
    return ::stat(path.c_str(), &now) == 0 && static_cast<std::uint64_t>(now.st_ino) == ino;
  };
  p.owner = std::move(owner);
  return p;
}

/// Stream bytes must start on a cache line: the atomics, futex words and sem_t inside the layout
/// are aligned relative to the stream's first byte.
void check_alignment(const Placement& where, const char* verb) {
  if (reinterpret_cast<std::uintptr_t>(where.bytes.data()) % 64 != 0)
    throw Error(Errc::invalid_argument, std::string(verb) + " " + where.path +
                                            ": the placed bytes do not start on a 64-byte boundary");
}

}  // namespace

static bool is_companion(const std::string& cpath, std::optional<std::uint64_t> owner_inode) noexcept;

Stream Stream::Impl::bind_placed(const Placement& where, const isio::Layout& l, bool writable, bool file) {
  auto impl = std::make_unique<Impl>();
  impl->where = where;
  impl->layout = l;
  impl->writable = writable;
  impl->file = file;
  Metadata snap;
  std::memcpy(&snap, where.bytes.data(), sizeof snap);
  impl->bind(snap);
  return Stream(std::move(impl));
}

std::size_t Stream::bytes_for(const StreamSpec& requested) {
  const std::string what = "a stream";
  const StreamSpec spec = effective_spec(what, requested);
  return static_cast<std::size_t>(isio::compute_layout(check_spec(what, spec)).file_size);
}

Stream Stream::create_in(const Placement& where, const StreamSpec& requested) {
  check_channel_name("stream", where.name, where.name, kMaxStreamName);
  const StreamSpec spec = effective_spec(where.path, requested);
  const isio::Geometry g = check_spec(where.path, spec);
  const isio::Layout l = isio::compute_layout(g);
  if (!where.writable) throw Error(Errc::permission, "creating " + where.path + ": its memory is mapped read-only");
  check_alignment(where, "creating");
  if (where.bytes.size() < l.file_size)
    throw Error(Errc::invalid_argument, "creating " + where.path + ": the stream needs " +
                                            std::to_string(l.file_size) + " bytes, its placement holds " +
                                            std::to_string(where.bytes.size()));
  lay_out(where.bytes.data(), where.ino, where.name, spec, g, l, where.path);
  return Impl::bind_placed(where, l, true, false);
}

Stream Stream::create(std::string_view name_or_path, const StreamSpec& requested, OpenMode mode) {
  const std::string path = stream_path(name_or_path);
  const std::string name = stream_name(name_or_path);
  if (mode == OpenMode::OpenExisting) return open(name_or_path);
  const StreamSpec spec = effective_spec(path, requested);
  const isio::Geometry g = check_spec(path, spec);
  const isio::Layout l = isio::compute_layout(g);

  if (mode == OpenMode::OpenOrCreate) {
    try {
      Stream s = open(name_or_path, OpenOptions{{spec.version}});
      auto shape = s.shape();
      if (!std::equal(shape.begin(), shape.end(), spec.shape.begin(), spec.shape.end()) || s.dtype() != spec.dtype)
        throw Error(Errc::layout, "opening " + path + ": exists as " + shape_text(shape) + " " +
                                      std::string(dtype_name(s.dtype())) + ", asked for " +
                                      shape_text(spec.shape) + " " + std::string(dtype_name(spec.dtype)));
      return s;
    } catch (const Error& e) {
      if (e.errc() != Errc::not_found) throw;
    }
    try {
      return create(name_or_path, requested, OpenMode::ExclusiveCreate);
    } catch (const Error& e) {
      if (e.errc() != Errc::exists) throw;
      return create(name_or_path, requested, OpenMode::OpenOrCreate);  // lost a creation race: open theirs
    }
  }

  // The file being replaced (if any, and if it is a valid stream): its waiters are told below.
  Stream old;
  if (mode == OpenMode::PurgeAndCreate) {
    try {
      old = open(name_or_path, OpenOptions{{spec.version}});
    } catch (const Error&) {
      // absent, foreign or broken: nobody of ours to wake
    }
  }
  // The fresh file is laid out as create_in() lays out any placement, before it gets its name.
  Segment seg = Segment::create_file(path, static_cast<std::size_t>(l.file_size), mode, spec.permissions,
                                     [&](Segment& fresh) { lay_out(fresh.data(), fresh.inode(), name, spec, g, l, fresh.path()); });
  // The partial-write companion of the replaced file describes frames of another file.
  if (old.valid() && is_companion(companion_path(path), old.inode())) ::unlink(companion_path(path).c_str());
  if (old.valid()) {
    // Courtesy to readers of the old file: futex waiters wake, see cnt0 unchanged and the path
    // pointing elsewhere, and return Errc::replaced; semaphore readers get one post.
    os::futex_wake(cnt0_futex_word(old.impl_->md));
    (void)old.sem_post(-1);
  }
  return Impl::bind_placed(file_placement(std::move(seg), name, true), l, true, true);
}

Stream Stream::open_in(const Placement& where, const OpenOptions& options) {
  return Impl::open_placed(where, options, false);
}

Stream Stream::open(std::string_view name_or_path, const OpenOptions& options) {
  const std::string path = stream_path(name_or_path);
  return Impl::open_placed(file_placement(Segment::open_file(path, options.writable), stream_name(name_or_path),
                                    options.writable),
                     options, true);
}

Stream Stream::Impl::open_placed(const Placement& where, const OpenOptions& options, bool file) {
  const std::string& path = where.path;
  const std::size_t size = where.bytes.size();
  auto fail = [&](const std::string& what) -> void { throw Error(Errc::layout, "opening " + path + ": " + what); };
  if (options.writable && !where.writable)
    throw Error(Errc::permission, "opening " + path + " read-write: its memory is mapped read-only");
  check_alignment(where, "opening");
  if (size < sizeof(Metadata))
    fail((file ? "file is " : "its placement holds ") + std::to_string(size) +
         " bytes, smaller than the 384-byte metadata");
  // SYNC POINT V (acquire): pairs with the creator's release store of version[0].
  if (aref(reinterpret_cast<const Metadata*>(where.bytes.data())->version[0]).load(std::memory_order_acquire) == '\0')
    fail("version is empty (stream not ready)");
  // Validate a private copy and bind from it: a peer changing the fields after this check can
  // cost frames, never make us size a pointer from a value we did not check.
  Metadata snap;
  std::memcpy(&snap, where.bytes.data(), sizeof snap);
  const Metadata* md = &snap;
  const auto version = fixed_string(md->version, sizeof(md->version));
  if (!version) fail("version field is not NUL-terminated");
  if (std::find(options.accepted_versions.begin(), options.accepted_versions.end(), *version) ==
      options.accepted_versions.end()) {
    std::string want;
    for (const auto& v : options.accepted_versions) want += (want.empty() ? "'" : " or '") + v + "'";
    fail("version '" + *version + "' is not " + want);
  }
  if (!fixed_string(md->name, sizeof(md->name))) fail("name field is not NUL-terminated");
  if (md->naxis < 1 || md->naxis > 3) fail("naxis is " + std::to_string(md->naxis) + ", not 1..3");
  std::uint64_t n = 1;
  for (int i = 0; i < md->naxis; ++i) {
    if (md->size[i] == 0) fail("size[" + std::to_string(i) + "] is 0");
    const auto p = os::checked_mul(n, md->size[i]);
    if (!p || *p > isio::kMaxElements)
      fail("sizes " + shape_text(std::span<const std::uint32_t>(md->size, md->naxis)) + " give more than 1e10 elements");
    n = *p;
  }
  for (int i = md->naxis; i < 3; ++i)
    if (md->size[i] != 0 && detail::log_enabled(LogLevel::warn))
      detail::log(LogLevel::warn, "opening " + path + ": size[" + std::to_string(i) + "] is " +
                                      std::to_string(md->size[i]) + " beyond naxis " + std::to_string(md->naxis) +
                                      " (ignored)");
  if (!dtype_valid(md->datatype)) fail("datatype is " + std::to_string(md->datatype) + ", not 1..13");
  if (md->nelement != n)
    fail("nelement is " + std::to_string(md->nelement) + " but the sizes give " + std::to_string(n));
  if (n > isio::kMaxElements) fail("nelement " + std::to_string(n) + " exceeds 1e10");
  if (md->imdatamemsize != n * isio::type_size(md->datatype))
    fail("imdatamemsize is " + std::to_string(md->imdatamemsize) + ", expected " +
         std::to_string(n * isio::type_size(md->datatype)));
  if (md->location != -1)
    fail("location is " + std::to_string(md->location) + " (GPU streams are not supported)");
  // sem: every value of the uint16 field is accepted (0..kMaxSemaphores, what ISIO accepts); the
  // file size check below proves the file holds that many slots and PID entries.
  static_assert(kMaxSemaphores == std::numeric_limits<decltype(md->sem)>::max());
  if (md->NBproctrace > 1024) fail("NBproctrace is " + std::to_string(md->NBproctrace));
  if (md->CBsize > 0 && md->imdatamemsize > (std::uint64_t{1} << 40) / md->CBsize)
    fail("CBsize " + std::to_string(md->CBsize) + " is implausible");
  if (md->CBsize > 0 && md->CBindex >= md->CBsize)
    fail("CBindex " + std::to_string(md->CBindex) + " is not below CBsize " + std::to_string(md->CBsize));
  if (isio::has_temporal_arrays(md->imagetype) && md->naxis != 3 && detail::log_enabled(LogLevel::warn))
    detail::log(LogLevel::warn, "opening " + path + ": temporal imagetype on a " + std::to_string(md->naxis) +
                                    "-axis stream");
  isio::Geometry g;
  g.imdatamemsize = md->imdatamemsize;
  g.nbkw = md->NBkw;
  g.nbsem = md->sem;
  g.nbproctrace = md->NBproctrace;
  g.size2 = md->size[2];
  g.imagetype = md->imagetype;
  g.cbsize = md->CBsize;
  g.location = md->location;
  const isio::Layout l = isio::compute_layout(g);
  if (!l.valid) fail("its metadata describes a file larger than 2^64 bytes");
  if (file && l.file_size != size)
    fail("file is " + std::to_string(size) + " bytes but its metadata describes " + std::to_string(l.file_size) +
         " bytes");
  if (l.file_size > size)
    fail("its metadata describes " + std::to_string(l.file_size) + " bytes, more than the " + std::to_string(size) +
         " bytes of its placement");
  return bind_placed(where, l, options.writable, file);
}

/// True when `cpath` is a partial-write companion (u64, 516 x depth), and, when `owner_inode`
/// is given, the companion of the stream file with that inode (its cnt2).
static bool is_companion(const std::string& cpath, std::optional<std::uint64_t> owner_inode) noexcept {
  try {
    const Stream c = Stream::open(cpath, OpenOptions{.writable = false});
    if (c.dtype() != Dtype::u64 || c.shape().size() != 2 || c.shape()[0] != kPktRecord) return false;
    return !owner_inode || c.cnt2() == *owner_inode;
  } catch (...) {
    return false;
  }
}

void Stream::remove(std::string_view name_or_path) {
  const std::string path = stream_path(name_or_path);
  struct stat st {};
  const bool known = ::stat(path.c_str(), &st) == 0;
  if (::unlink(path.c_str()) != 0) os::throw_errno(errno, "removing", path);
  const std::string pkt = companion_path(path);
  if (known && is_companion(pkt, static_cast<std::uint64_t>(st.st_ino)) && ::unlink(pkt.c_str()) != 0 && errno != ENOENT)
    os::throw_errno(errno, "removing", pkt);
}

// ---- geometry -----------------------------------------------------------------------------

namespace {
const std::string kEmpty;
}

const std::string& Stream::name() const noexcept { return impl_ ? impl_->name : kEmpty; }
const std::string& Stream::path() const noexcept { return impl_ ? impl_->path : kEmpty; }
std::span<const std::uint32_t> Stream::shape() const noexcept {
  return impl_ ? std::span<const std::uint32_t>(impl_->shape) : std::span<const std::uint32_t>();
}
Dtype Stream::dtype() const noexcept { return impl_ ? impl_->dtype : Dtype::f32; }
std::uint64_t Stream::nelement() const noexcept { return impl_ ? impl_->nelement : 0; }
std::size_t Stream::frame_bytes() const noexcept { return impl_ ? impl_->frame_bytes : 0; }
std::uint64_t Stream::frame_elements() const noexcept { return impl_ ? impl_->frame_elements : 0; }
std::size_t Stream::data_bytes() const noexcept { return impl_ ? impl_->data_bytes : 0; }
std::uint32_t Stream::depth() const noexcept { return impl_ ? impl_->depth : 1; }
bool Stream::rolling() const noexcept { return impl_ && impl_->rolling; }
std::span<const std::uint32_t> Stream::frame_shape() const noexcept {
  return impl_ ? std::span<const std::uint32_t>(impl_->frame_shape) : std::span<const std::uint32_t>();
}
int Stream::semaphore_count() const noexcept { return impl_ ? impl_->nsem : 0; }
int Stream::keyword_slots() const noexcept { return impl_ ? impl_->nkw : 0; }
std::uint64_t Stream::inode() const noexcept { return impl_ ? impl_->md->inode : 0; }
bool Stream::file_intact() const noexcept { return impl_ && impl_->intact(); }

bool Stream::replaced() const noexcept {
  // A file: its path names another inode or nothing (still_current of file_placement());
  // a region entry: removed or reused since it was opened.
  return impl_ && impl_->where.still_current && !impl_->where.still_current();
}

std::span<const std::byte> Stream::file_bytes() const noexcept {
  return impl_ ? std::span<const std::byte>(impl_->base, impl_->layout.file_size) : std::span<const std::byte>();
}

StreamInfo Stream::info() const {
  if (!impl_) throw Error(Errc::closed, "stream handle is closed");
  const Impl& m = *impl_;
  const Metadata* md = m.md;
  StreamInfo s;
  s.name = m.name;
  s.path = m.path;
  s.version = fixed_string(md->version, sizeof(md->version)).value_or("");
  s.shape = m.shape;
  s.dtype = m.dtype;
  s.nelement = m.nelement;
  s.frame_bytes = m.frame_bytes;
  s.data_bytes = m.data_bytes;
  s.depth = m.depth;
  s.rolling = m.rolling;
  s.file_bytes = m.layout.file_size;
  s.imagetype = md->imagetype;
  s.semaphores = md->sem;
  s.keyword_slots = md->NBkw;
  s.circular_buffer = md->CBsize;
  s.creator_pid = md->creatorPID;
  s.owner_pid = md->ownerPID;
  s.inode = md->inode;
  s.write_flag = write_flag();
  s.frame = frame_info();
  s.creation_time_ns = load_timespec(md->creationtime);
  s.last_access_time_ns = load_timespec(md->lastaccesstime);
  for (int i = 0; i < m.nsem; ++i) {
    s.sem_read_pids.push_back(aref(m.read_pid[i]).load(std::memory_order_relaxed));
    s.sem_write_pids.push_back(aref(m.write_pid[i]).load(std::memory_order_relaxed));
    s.sem_values.push_back(sem_value(i));
  }
  return s;
}

// ---- writing --------------------------------------------------------------------------------

std::span<std::byte> Stream::begin_write() noexcept {
  if (!impl_ || !impl_->writable) return {};
  Impl& m = *impl_;
  if (!m.writing) {
    Metadata* md = m.md;
    // Rolling buffer: the slice after the last one written (ISIO's ImageStreamIO_writeIndex).
    m.write_slice = m.rolling
                        ? static_cast<std::uint32_t>((aref(md->cnt1).load(std::memory_order_relaxed) + 1) % m.depth)
                        : 0;
    aref(md->write).store(1, std::memory_order_relaxed);
    // SYNC POINT C (release fence): no data store below may become visible before write = 1.
    // Pairs with the acquire fence after the copy in read_copy() / copy_slice().
    std::atomic_thread_fence(std::memory_order_release);
    m.writing = true;
  }
  return {m.slice_data(m.write_slice), m.frame_bytes};
}

Status Stream::commit_write(const WriteOptions& options) noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  Impl& m = *impl_;
  Metadata* md = m.md;
  if (!m.writing && m.rolling)  // data was changed through a pointer without begin_write()
    m.write_slice = static_cast<std::uint32_t>((aref(md->cnt1).load(std::memory_order_relaxed) + 1) % m.depth);
  // write() reads the clock before opening the seqlock, so that readers spinning on cnt0's
  // cache line see write = 1 for as short a time as possible.
  const std::int64_t now = m.write_now >= 0 ? m.write_now : os::realtime_ns();
  m.write_now = -1;
  const std::int64_t atime = options.atime_ns >= 0 ? options.atime_ns : now;
  store_timespec(md->writetime, now);
  store_timespec(md->atime, atime);
  if (options.frame_id) aref(md->cnt2).store(*options.frame_id, std::memory_order_relaxed);
  const std::uint64_t next = aref(md->cnt0).load(std::memory_order_relaxed) + 1;

  if (m.rolling) {  // reference 11.2 step 2: the slice's temporal entries (if any), then cnt1
    const std::uint32_t sl = m.write_slice;
    if (m.temporal) {
      store_timespec(m.atimearray[sl], atime);
      store_timespec(m.writetimearray[sl], now);
      aref(m.cntarray[sl]).store(next, std::memory_order_relaxed);
    }
    aref(md->cnt1).store(sl, std::memory_order_relaxed);
  }
  if (m.cbsize > 0) {  // ISIO's fast circular buffer: copy the whole data area into the next slot
    const std::uint32_t slot = (aref(md->CBindex).load(std::memory_order_relaxed) + 1) % m.cbsize;
    std::memcpy(m.cbdata + std::uint64_t{slot} * m.data_bytes, m.data, m.data_bytes);
    isio::CbFrameMd& f = m.cbmd[slot];
    aref(f.cnt0).store(next, std::memory_order_relaxed);
    aref(f.cnt1).store(aref(md->cnt1).load(std::memory_order_relaxed), std::memory_order_relaxed);
    store_timespec(f.atime, atime);
    store_timespec(f.writetime, now);
    aref(md->CBindex).store(slot, std::memory_order_relaxed);
    if (slot == 0) aref(md->CBcycle).fetch_add(1, std::memory_order_relaxed);
  }

  // The wake stamp: this writer wakes futex waiters (below), so readers need no semaphore slot
  // for its frames. Relaxed: published by the cnt0 increment that follows (SYNC POINT W).
  aref(md->shmlink_wake_stamp).store(wake_stamp_of(next), std::memory_order_relaxed);
  // SYNC POINT A: publish the frame. Release for readers' acquire loads of cnt0; seq_cst so
  // that it is ordered before the waiter-count load below (pairs with the waiter's seq_cst
  // increment then cnt0 load in wait_futex: one of the two always sees the other).
  aref(md->cnt0).fetch_add(1, std::memory_order_seq_cst);
  // SYNC POINT B: close the seqlock. Pairs with read_copy()'s acquire loads of write.
  aref(md->write).store(0, std::memory_order_release);
  m.writing = false;
  m.pkt_open = false;
  if (aref(md->shmlink_futex_waiters).load(std::memory_order_seq_cst) != 0) os::futex_wake(cnt0_futex_word(md));
  if (options.post_semaphores) m.post_all();
  return Errc::ok;
}

Status Stream::write(std::span<const std::byte> frame, const WriteOptions& options) noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  if (frame.size() != impl_->frame_bytes) return Errc::size_mismatch;
  impl_->write_now = os::realtime_ns();
  std::span<std::byte> dst = begin_write();
  std::memcpy(dst.data(), frame.data(), frame.size());
  return commit_write(options);
}

// ---- reading --------------------------------------------------------------------------------

std::uint64_t Stream::cnt0() const noexcept {
  return impl_ ? aref(impl_->md->cnt0).load(std::memory_order_acquire) : 0;
}
std::uint64_t Stream::cnt1() const noexcept {
  return impl_ ? aref(impl_->md->cnt1).load(std::memory_order_acquire) : 0;
}
std::uint64_t Stream::cnt2() const noexcept {
  return impl_ ? aref(impl_->md->cnt2).load(std::memory_order_acquire) : 0;
}
void Stream::set_cnt2(std::uint64_t value) noexcept {
  if (impl_ && impl_->writable) aref(impl_->md->cnt2).store(value, std::memory_order_release);
}
bool Stream::write_flag() const noexcept {
  return impl_ && aref(impl_->md->write).load(std::memory_order_acquire) != 0;
}
std::int64_t Stream::creation_time_ns() const noexcept { return impl_ ? load_timespec(impl_->md->creationtime) : 0; }
std::int64_t Stream::atime_ns() const noexcept { return impl_ ? load_timespec(impl_->md->atime) : 0; }
std::int64_t Stream::writetime_ns() const noexcept { return impl_ ? load_timespec(impl_->md->writetime) : 0; }

FrameInfo Stream::frame_info() const noexcept {
  FrameInfo f;
  if (!impl_) return f;
  const Metadata* md = impl_->md;
  f.cnt0 = aref(md->cnt0).load(std::memory_order_acquire);
  f.cnt1 = aref(md->cnt1).load(std::memory_order_relaxed);
  f.cnt2 = aref(md->cnt2).load(std::memory_order_relaxed);
  f.atime_ns = load_timespec(md->atime);
  f.writetime_ns = load_timespec(md->writetime);
  return f;
}

std::span<const std::byte> Stream::view() const noexcept {
  if (!impl_) return {};
  if (!impl_->rolling) return {impl_->data, impl_->frame_bytes};
  const std::uint64_t newest = cnt1();
  if (newest >= impl_->depth) return {};  // cnt1 names no slice: no slice is the newest frame
  return view_slice(static_cast<std::uint32_t>(newest));
}

std::string Stream::rolling_layout_error() const {
  if (!impl_ || !impl_->rolling) return {};
  const std::uint64_t newest = cnt1();
  if (newest < impl_->depth) return {};
  return "stream '" + escape_name(impl_->name) + "': cnt1 is " + std::to_string(newest) + ", outside the " +
         std::to_string(impl_->depth) + " slices of its rolling buffer (the newest frame's slice is unknown)";
}

std::span<const std::byte> Stream::view_slice(std::uint32_t slice) const noexcept {
  if (!impl_) return {};
  return {impl_->slice_data(slice % impl_->depth), impl_->frame_bytes};
}

namespace {

/// cnt0 of the frame slice `sl` holds in a rolling buffer without per-slice arrays, when the
/// newest frame is `c` in slice `s` (ISIO's writer fills slices in order: frame c - d is in slice
/// s - d); 0 when the slice was never written.
std::uint64_t derived_frame(std::uint64_t c, std::uint32_t s, std::uint32_t sl, std::uint32_t depth) noexcept {
  const std::uint64_t d = (std::uint64_t{s} + depth - sl) % depth;
  return c > d ? c - d : 0;
}

}  // namespace

FrameInfo Stream::slice_info(std::uint32_t slice) const noexcept {
  if (!impl_ || !impl_->rolling) return frame_info();
  const Impl& m = *impl_;
  const std::uint32_t sl = slice % m.depth;
  FrameInfo f;
  if (!m.temporal) {  // no per-slice record: derived from cnt0 and cnt1 (racy, as documented)
    const std::uint64_t c = aref(m.md->cnt0).load(std::memory_order_acquire);
    const std::uint64_t newest = aref(m.md->cnt1).load(std::memory_order_acquire);
    f.cnt1 = sl;
    if (newest >= m.depth) return f;  // cnt1 names no slice: nothing can be placed
    f.cnt0 = derived_frame(c, static_cast<std::uint32_t>(newest), sl, m.depth);
    if (f.cnt0 != 0 && f.cnt0 == c) {
      f.cnt2 = aref(m.md->cnt2).load(std::memory_order_relaxed);
      f.atime_ns = load_timespec(m.md->atime);
      f.writetime_ns = load_timespec(m.md->writetime);
    }
    return f;
  }
  f.cnt0 = aref(m.cntarray[sl]).load(std::memory_order_acquire);
  f.cnt1 = sl;
  f.atime_ns = load_timespec(m.atimearray[sl]);
  f.writetime_ns = load_timespec(m.writetimearray[sl]);
  if (f.cnt0 != 0 && f.cnt0 == aref(m.md->cnt0).load(std::memory_order_relaxed))
    f.cnt2 = aref(m.md->cnt2).load(std::memory_order_relaxed);  // cnt2 exists for the newest frame only
  return f;
}

std::atomic<std::int64_t>& detail::writer_grace_ns() noexcept {
  static std::atomic<std::int64_t> grace{200'000'000};
  return grace;
}

std::atomic<std::int64_t>& detail::sem_recheck_ns() noexcept {
  static std::atomic<std::int64_t> slice{100'000'000};
  return slice;
}

std::atomic<std::int64_t>& detail::foreign_writer_poll_ns() noexcept {
  static std::atomic<std::int64_t> slice{10'000'000};
  return slice;
}

namespace {

/// Waits politely while a writer is inside a write. The writer is presumed dead mid-write
/// (writer_active) when the write flag stays set while cnt0 does not move for
/// detail::writer_grace_ns() (200 ms); a live writer that never leaves a gap (back-to-back
/// writes) makes the read give up with torn after 5 times that.
struct WriterPatience {
  std::int64_t start = 0;
  std::int64_t since = 0;
  std::uint64_t seen_cnt0 = 0;
  std::uint32_t spins = 0;
  /// One wait step while the flag is set and cnt0 is `c`: ok to retry, or why to give up.
  Errc wait(std::uint64_t c) noexcept {
    if (++spins % 1024 != 0) {
      os::cpu_relax();
      return Errc::ok;
    }
    const std::int64_t now = os::monotonic_ns();
    if (start == 0) start = now;
    if (since == 0 || c != seen_cnt0) {
      since = now;
      seen_cnt0 = c;
    }
    const std::int64_t grace = detail::writer_grace_ns().load(std::memory_order_relaxed);
    if (now - since > grace) return Errc::writer_active;
    if (now - start > 5 * grace) return Errc::torn;
    ::sched_yield();
    return Errc::ok;
  }
  /// The flag was seen clear: the writer is not stuck.
  void clear() noexcept { since = 0; }
};

}  // namespace

/// Validated copy of one slice of a rolling buffer (docs/design/streams.md "Rolling buffers").
/// `expect` = 0 accepts whatever published frame the slice holds; otherwise the slice must hold
/// frame `expect` (else overwritten). The copy of frame k from slice s is valid when, after it,
/// the slice still holds k and no write into s has begun: the write of frame k + depth into s
/// starts (write = 1, release fence) while cnt0 == k + depth - 1, so after an acquire fence
/// `cnt0 + write < k + depth` proves the copy saw none of its stores.
static Status copy_slice(const Stream::Impl& m, std::uint32_t sl, std::uint64_t expect, std::span<std::byte> out,
                         FrameInfo* info, int max_attempts) noexcept {
  const Metadata* md = m.md;
  WriterPatience patience;
  int attempts = 0;
  while (attempts < std::max(max_attempts, 1)) {
    // SYNC POINT A (acquire): frames up to c1 are completely visible.
    const std::uint64_t c1 = aref(md->cnt0).load(std::memory_order_acquire);
    const std::uint64_t k = aref(m.cntarray[sl]).load(std::memory_order_acquire);
    if (expect != 0 && k != expect) return Errc::overwritten;
    if (k > c1 || (k == 0 && c1 != 0)) {
      // Frame k is being committed right now (its entry precedes the cnt0 increment), or the
      // slice was never written while others were.
      if (k == 0) return Errc::would_block;
      if (const Errc e = patience.wait(c1); e != Errc::ok) return e;
      continue;
    }
    std::memcpy(out.data(), m.slice_data(sl), m.frame_bytes);
    FrameInfo f;
    f.cnt0 = k;
    f.cnt1 = sl;
    f.cnt2 = k == c1 ? aref(md->cnt2).load(std::memory_order_relaxed) : 0;
    f.atime_ns = load_timespec(m.atimearray[sl]);
    f.writetime_ns = load_timespec(m.writetimearray[sl]);
    // SYNC POINT C (acquire fence): if the copy saw any store of a later write into this slice,
    // that write's write = 1 and the cnt0 before it are visible to the loads below.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t w2 = aref(md->write).load(std::memory_order_acquire) != 0 ? 1 : 0;
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_relaxed);
    const std::uint64_t k2 = aref(m.cntarray[sl]).load(std::memory_order_relaxed);
    if (k2 == k && c2 + w2 < k + m.depth) {
      if (info != nullptr) *info = f;
      return Errc::ok;
    }
    ++attempts;
    os::cpu_relax();
  }
  return expect != 0 ? Errc::overwritten : Errc::torn;
}

/// The seqlock's opening: cnt0 (acquire, SYNC POINT A: pairs with the writer's cnt0 increment,
/// so the data of that update is visible) as soon as the write flag (acquire) reads clear, waiting
/// politely while a writer is inside a write; writer_active or torn when that lasts (WriterPatience).
static Errc open_seqlock(const Metadata* md, WriterPatience& patience, std::uint64_t* c1) noexcept {
  for (;;) {
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);
    if (aref(md->write).load(std::memory_order_acquire) == 0) {
      patience.clear();
      *c1 = c;
      return Errc::ok;
    }
    if (const Errc e = patience.wait(c); e != Errc::ok) return e;
  }
}

/// Validated copy from a rolling buffer WITHOUT per-slice arrays (a 3-axis CIRCULAR_BUFFER file
/// without ZAXIS_TEMPORAL, as ImageStreamIO and milk make them). Frames are placed by a
/// consistent (cnt0, cnt1) pair: the newest frame c is in slice cnt1, frame c - d in slice
/// cnt1 - d (ISIO's writer fills slices in order: slice (cnt1 + 1) % depth, then cnt1, then
/// cnt0 += 1, then write = 0). The pair is read under the plain seqlock (write flag clear before
/// and after, cnt0 unchanged), then the slice is copied and accepted, as in copy_slice(), when
/// `cnt0 + write < k + depth` after an acquire fence: no write into that slice has begun.
/// `expect` != 0: copy frame `expect` (would_block when not written yet, overwritten when gone);
/// otherwise copy slice `sl` whatever frame it holds (would_block when never written). A cnt1
/// outside the buffer places nothing: layout (ImageStreamIO_readBufferAt fails on it too).
static Status copy_derived(const Stream::Impl& m, std::uint32_t sl, std::uint64_t expect, std::span<std::byte> out,
                           FrameInfo* info, int max_attempts) noexcept {
  const Metadata* md = m.md;
  WriterPatience patience;
  int attempts = 0;
  while (attempts < std::max(max_attempts, 1)) {
    // Inside a write cnt1 may already name the slice being written: wait for the commit.
    std::uint64_t c1 = 0;
    if (const Errc e = open_seqlock(md, patience, &c1); e != Errc::ok) return e;
    const std::uint64_t newest = aref(md->cnt1).load(std::memory_order_acquire);
    // A writer only ever stores a slice index: cnt1 beyond the buffer is a scribble, not a race.
    if (newest >= m.depth) return Errc::layout;
    const auto s1 = static_cast<std::uint32_t>(newest);
    // SYNC POINT C (acquire fence): a cnt1 stored by a later write makes its write = 1 visible.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (aref(md->write).load(std::memory_order_acquire) != 0 || aref(md->cnt0).load(std::memory_order_relaxed) != c1) {
      ++attempts;
      continue;  // the pair (c1, s1) may be inconsistent
    }
    std::uint64_t k = 0;
    std::uint32_t slice = sl;
    if (expect != 0) {
      if (expect > c1) return Errc::would_block;
      if (c1 - expect >= m.depth) return Errc::overwritten;
      k = expect;
      slice = static_cast<std::uint32_t>((std::uint64_t{s1} + m.depth - (c1 - expect)) % m.depth);
    } else {
      k = derived_frame(c1, s1, sl, m.depth);
      if (k == 0) return Errc::would_block;
    }
    std::memcpy(out.data(), m.slice_data(slice), m.frame_bytes);
    FrameInfo f;
    f.cnt0 = k;
    f.cnt1 = slice;
    if (k == c1) {  // the metadata's times and cnt2 belong to the newest frame only
      f.cnt2 = aref(md->cnt2).load(std::memory_order_relaxed);
      f.atime_ns = load_timespec(md->atime);
      f.writetime_ns = load_timespec(md->writetime);
    }
    // SYNC POINT C (acquire fence): if the copy saw any store of a later write into this slice,
    // that write's write = 1 and the cnt0 before it are visible to the loads below.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t w2 = aref(md->write).load(std::memory_order_acquire) != 0 ? 1 : 0;
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_relaxed);
    // The newest frame's times were read from the metadata: valid only while no write began.
    const bool ok = k == c1 ? (w2 == 0 && c2 == c1) : (c2 + w2 < k + m.depth);
    if (ok) {
      if (info != nullptr) *info = f;
      return Errc::ok;
    }
    ++attempts;
    os::cpu_relax();
  }
  return expect != 0 ? Errc::overwritten : Errc::torn;
}

/// The slice holding frame `k` of a rolling buffer, from the newest slice and its frame; false
/// when k is not (or no longer) in the buffer. Without per-slice arrays the newest frame is
/// cnt0 (a racy pair: packet_status() validates by its record's frame field).
static bool slice_of(const Stream::Impl& m, std::uint64_t k, std::uint32_t* sl) noexcept {
  const auto newest_slice = static_cast<std::uint32_t>(aref(m.md->cnt1).load(std::memory_order_acquire) % m.depth);
  const std::uint64_t kn = m.temporal ? aref(m.cntarray[newest_slice]).load(std::memory_order_acquire)
                                      : aref(m.md->cnt0).load(std::memory_order_acquire);
  if (kn < k || kn - k >= m.depth) return false;
  *sl = static_cast<std::uint32_t>((newest_slice + m.depth - (kn - k)) % m.depth);
  return true;
}

Status Stream::read_slice(std::uint32_t slice, std::span<std::byte> out, FrameInfo* info) const noexcept {
  if (!impl_) return Errc::closed;
  if (out.size() != impl_->frame_bytes) return Errc::size_mismatch;
  if (!impl_->rolling) return read_copy(out, info);
  const std::uint32_t sl = slice % impl_->depth;
  if (!impl_->temporal) return copy_derived(*impl_, sl, 0, out, info, 1000);
  if (aref(impl_->cntarray[sl]).load(std::memory_order_acquire) == 0) return Errc::would_block;
  return copy_slice(*impl_, sl, 0, out, info, 1000);
}

Status Stream::read_frame(std::uint64_t k, std::span<std::byte> out, FrameInfo* info) const noexcept {
  if (!impl_) return Errc::closed;
  const Impl& m = *impl_;
  if (out.size() != m.frame_bytes) return Errc::size_mismatch;
  const std::uint64_t c = cnt0();
  if (k == 0 || k > c) return Errc::would_block;
  if (!m.rolling) {
    if (k < c) return Errc::overwritten;
    FrameInfo f;
    const Status st = read_copy(out, &f);
    if (!st.ok()) return st;
    if (f.cnt0 != k) return Errc::overwritten;
    if (info != nullptr) *info = f;
    return Errc::ok;
  }
  if (c - k >= m.depth) return Errc::overwritten;
  if (!m.temporal) return copy_derived(m, 0, k, out, info, 1000);
  for (int tries = 0; tries < 1000; ++tries) {
    std::uint32_t sl = 0;
    if (!slice_of(m, k, &sl)) {
      // cnt1 may already name the slice of a frame being committed: let it finish.
      if (cnt0() - k >= m.depth) return Errc::overwritten;
      os::cpu_relax();
      continue;
    }
    return copy_slice(m, sl, k, out, info, 1000);
  }
  return Errc::torn;
}

std::uint64_t Stream::tail() const noexcept { return impl_ ? impl_->tail : 0; }
std::uint64_t Stream::reset_tail() noexcept {
  if (!impl_) return 0;
  return impl_->tail = cnt0();
}
void Stream::set_tail(std::uint64_t value) noexcept {
  if (impl_) impl_->tail = value;
}

Status Stream::read_next(std::span<std::byte> out, FrameInfo* info, std::uint64_t* skipped,
                         std::chrono::nanoseconds timeout) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  if (out.size() != m.frame_bytes) return Errc::size_mismatch;
  if (skipped != nullptr) *skipped = 0;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (;;) {
    const std::uint64_t c = cnt0();
    if (c < m.tail) m.tail = c;  // the stream restarted (cnt0 went back): follow it
    if (c == m.tail) {
      const std::int64_t now = os::monotonic_ns();
      if (timeout.count() <= 0) return Errc::would_block;
      if (now >= deadline) return Errc::timeout;
      const Status w = wait_futex(c, std::chrono::nanoseconds(deadline - now));
      if (!w.ok()) return w;
      continue;
    }
    const std::uint64_t k = m.tail + 1;
    FrameInfo f;
    Status st = m.rolling ? read_frame(k, out, &f) : read_copy(out, &f);
    if (st.code() == Errc::overwritten) st = read_copy(out, &f);  // lapped: take the newest
    if (!st.ok()) return st;
    if (f.cnt0 < k) {  // cannot happen with one writer; never move the tail backwards
      m.tail = f.cnt0;
      continue;
    }
    const std::uint64_t lost = f.cnt0 - k;
    m.tail = f.cnt0;
    if (info != nullptr) *info = f;
    if (skipped != nullptr) *skipped = lost;
    return lost == 0 ? Errc::ok : Errc::overwritten;
  }
}

Status Stream::read_copy(std::span<std::byte> out, FrameInfo* info, int max_attempts) const noexcept {
  if (!impl_) return Errc::closed;
  const Impl& m = *impl_;
  if (out.size() != m.frame_bytes) return Errc::size_mismatch;
  const Metadata* md = m.md;
  if (m.temporal) {
    // The newest slice, validated by its cntarray entry. A stream nothing was written to yet,
    // or whose writer does not fill cntarray (ISIO's UpdateIm does not), or that has no
    // cntarray (no ZAXIS_TEMPORAL), takes the plain seqlock path below on the slice cnt1 names.
    // cnt1 beyond the buffer names no slice: the newest frame is unknown (ImageStreamIO's
    // readLastWroteBuffer fails too), and no other slice is returned in its place.
    const std::uint64_t newest = aref(md->cnt1).load(std::memory_order_acquire);
    if (newest >= m.depth) return Errc::layout;
    const auto sl = static_cast<std::uint32_t>(newest);
    if (aref(m.cntarray[sl]).load(std::memory_order_acquire) != 0) {
      return copy_slice(m, sl, 0, out, info, max_attempts);
    }
  }
  WriterPatience patience;
  int attempts = 0;
  while (attempts < std::max(max_attempts, 1)) {
    std::uint64_t c1 = 0;
    if (const Errc e = open_seqlock(md, patience, &c1); e != Errc::ok) return e;
    const std::uint64_t c1_slice = aref(md->cnt1).load(std::memory_order_relaxed);
    // A writer only ever stores a slice index: cnt1 beyond the buffer is a scribble (as above).
    if (m.rolling && c1_slice >= m.depth) return Errc::layout;
    std::memcpy(out.data(), m.rolling ? m.slice_data(static_cast<std::uint32_t>(c1_slice)) : m.data,
                m.frame_bytes);
    FrameInfo f;
    f.cnt0 = c1;
    f.cnt1 = c1_slice;
    f.cnt2 = aref(md->cnt2).load(std::memory_order_relaxed);
    if (info != nullptr) {  // the times live on two other cache lines: fetch them only on demand
      f.atime_ns = load_timespec(md->atime);
      f.writetime_ns = load_timespec(md->writetime);
    }
    // SYNC POINT C (acquire fence): if the copy saw any store of a later write, that write's
    // write = 1 (before its release fence) is visible to the loads below.
    std::atomic_thread_fence(std::memory_order_acquire);
    // SYNC POINT B (acquire): seeing a later write = 0 implies seeing its cnt0 increment.
    const bool writing = aref(md->write).load(std::memory_order_acquire) != 0;
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_relaxed);
    if (!writing && c1 == c2) {
      if (info != nullptr) *info = f;
      return Errc::ok;
    }
    ++attempts;
    os::cpu_relax();
  }
  return Errc::torn;
}

// ---- partial writes ---------------------------------------------------------------------------

namespace {
/// The companion record (kPktRecord u64) of slice `sl` in the companion's data area.
std::uint64_t* packet_record(const Stream::Impl& companion, std::uint32_t sl) noexcept {
  return reinterpret_cast<std::uint64_t*>(companion.data) + std::uint64_t{sl} * kPktRecord;
}
}  // namespace

bool Stream::Impl::fits_companion(const Stream& c) const noexcept {
  return c.dtype() == Dtype::u64 && c.shape().size() == 2 && c.shape()[0] == kPktRecord &&
         c.nelement() == std::uint64_t{kPktRecord} * depth;
}

std::uint64_t Stream::Impl::companion_owner() const noexcept {
  return file ? where.ino : static_cast<std::uint64_t>(load_timespec(md->creationtime));
}

std::string Stream::Impl::companion_name() const { return (where.name.empty() ? name : where.name) + "_pkt"; }

std::unique_ptr<Stream> Stream::Impl::open_companion() const {
  if (file) return std::make_unique<Stream>(Stream::open(companion_path(path), OpenOptions{.writable = writable}));
  if (!where.sibling) return nullptr;
  const std::optional<Placement> cp = where.sibling(companion_name(), 0);
  if (!cp) return nullptr;
  return std::make_unique<Stream>(Stream::open_in(*cp, OpenOptions{.writable = writable && cp->writable}));
}

Status Stream::Impl::init_companion() noexcept {
  try {
    StreamSpec spec;
    spec.shape = {kPktRecord, depth};
    spec.dtype = Dtype::u64;
    spec.semaphores = 1;
    if (file) {
      // A file next to ours, created afresh so that no stale record survives, but never over a
      // stream of the same name that is not a companion.
      const std::string cpath = companion_path(path);
      if (::access(cpath.c_str(), F_OK) == 0 && !is_companion(cpath, std::nullopt)) {
        if (detail::log_enabled(LogLevel::error))
          detail::log(LogLevel::error, "partial write to " + path + ": " + cpath +
                                           " exists and is not a partial-write companion; left alone");
        return Errc::exists;
      }
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) spec.permissions = st.st_mode & 07777;
      pkt = std::make_unique<Stream>(Stream::create(cpath, spec, OpenMode::PurgeAndCreate));
      // The companion names the file it belongs to (its cnt2 = our inode), so that a companion
      // left by an earlier incarnation of the stream is never believed.
      pkt->set_cnt2(companion_owner());
      return Errc::ok;
    }
    // A placed stream keeps its companion next to it in its container (a region entry).
    if (!where.sibling) {
      if (detail::log_enabled(LogLevel::error))
        detail::log(LogLevel::error, "partial write to " + path + ": its placement has no room for the companion " +
                                         companion_name() + " (no siblings)");
      return Errc::invalid_argument;
    }
    if (std::optional<Placement> cp = where.sibling(companion_name(), 0)) {
      // One exists (ours from an earlier handle, or an earlier incarnation's): reused with every
      // record cleared (a stale packet entry could otherwise match a new frame's cnt0), but only
      // when it is a companion of our depth.
      std::unique_ptr<Stream> c;
      try {
        c = std::make_unique<Stream>(Stream::open_in(*cp));
      } catch (const Error&) {
        c.reset();
      }
      if (!c || !fits_companion(*c)) {
        if (detail::log_enabled(LogLevel::error))
          detail::log(LogLevel::error, "partial write to " + path + ": " + cp->path +
                                           " exists and is not this stream's partial-write companion; left alone");
        return Errc::exists;
      }
      for (std::uint32_t sl = 0; sl < depth; ++sl) {
        std::uint64_t* rec = packet_record(*c->impl_, sl);
        for (std::uint32_t i = 0; i < kPktRecord; ++i) aref(rec[i]).store(0, std::memory_order_relaxed);
      }
      c->set_cnt2(companion_owner());  // release: the cleared records are visible with it
      pkt = std::move(c);
      return Errc::ok;
    }
    std::optional<Placement> cp = where.sibling(companion_name(), Stream::bytes_for(spec));
    if (!cp) return Errc::no_space;
    auto c = std::make_unique<Stream>(Stream::create_in(*cp, spec));
    c->set_cnt2(companion_owner());
    if (cp->publish) cp->publish();  // visible to others only once complete
    pkt = std::move(c);
    return Errc::ok;
  } catch (const Error& e) {
    if (detail::log_enabled(LogLevel::error)) detail::log(LogLevel::error, e.what());
    return e.errc();
  } catch (...) {
    return Errc::no_space;  // std::bad_alloc
  }
}

Status Stream::write_packet(std::uint32_t packet_id, std::uint32_t packet_total, std::uint64_t element_offset,
                            std::span<const std::byte> data) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  if (!m.writable) return Errc::permission;
  if (packet_total == 0 || packet_total > kMaxPackets || packet_id >= packet_total) return Errc::invalid_argument;
  if (m.pkt_open && packet_total != m.pkt_total) return Errc::invalid_argument;
  const std::size_t esize = dtype_size(m.dtype);
  if (data.size() % esize != 0) return Errc::invalid_argument;
  const std::uint64_t count = data.size() / esize;
  if (element_offset > m.frame_elements || count > m.frame_elements - element_offset) return Errc::out_of_range;
  if (!m.pkt_initialised) {
    if (const Status st = m.init_companion(); !st.ok()) return st;
    m.pkt_initialised = true;
  }
  std::uint64_t* rec = nullptr;
  if (!m.pkt_open) {
    (void)begin_write();
    rec = packet_record(*m.pkt->impl_, m.write_slice);
    // The record is invalid (frame 0) until finalize_packets() publishes it.
    aref(rec[kPktFrame]).store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    m.pkt_open = true;
    m.pkt_total = packet_total;
    m.pkt_have.assign(packet_total, false);
  } else {
    rec = packet_record(*m.pkt->impl_, m.write_slice);
  }
  std::memcpy(m.slice_data(m.write_slice) + element_offset * esize, data.data(), data.size());
  const std::uint64_t frame = aref(m.md->cnt0).load(std::memory_order_relaxed) + 1;
  aref(rec[kPktHeader + packet_id]).store(frame, std::memory_order_relaxed);
  aref(rec[kPktLastPos]).store(element_offset, std::memory_order_relaxed);
  aref(rec[kPktLastNb]).store(count, std::memory_order_relaxed);
  m.pkt_have[packet_id] = true;
  return Errc::ok;
}

std::vector<std::uint32_t> Stream::missing_packets() const {
  std::vector<std::uint32_t> out;
  if (!impl_ || !impl_->pkt_open) return out;
  for (std::uint32_t p = 0; p < impl_->pkt_total; ++p)
    if (!impl_->pkt_have[p]) out.push_back(p);
  return out;
}

Status Stream::finalize_packets(const WriteOptions& options) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  if (!m.writable) return Errc::permission;
  if (!m.pkt_open) return Errc::would_block;
  const bool complete = std::find(m.pkt_have.begin(), m.pkt_have.end(), false) == m.pkt_have.end();
  std::uint64_t* rec = packet_record(*m.pkt->impl_, m.write_slice);
  const std::uint64_t frame = aref(m.md->cnt0).load(std::memory_order_relaxed) + 1;
  aref(rec[kPktTotal]).store(m.pkt_total, std::memory_order_relaxed);
  // Publishes the record (pairs with packet_status()'s acquire load); readers see it no later
  // than the frame itself, whose cnt0 increment follows.
  aref(rec[kPktFrame]).store(frame, std::memory_order_release);
  const Status st = commit_write(options);
  if (!st.ok()) return st;
  // The companion's own counter moves too, so that its readers can wait on it: stamped, woken
  // and posted as commit_write() does (SYNC POINTs W and A), so that they need no semaphore
  // slot after its first frame, and a first waiter that sleeps on a slot alone (no
  // futex_waitv) is woken by the post.
  Metadata* cmd = m.pkt->impl_->md;
  const std::uint64_t cnext = aref(cmd->cnt0).load(std::memory_order_relaxed) + 1;
  aref(cmd->shmlink_wake_stamp).store(wake_stamp_of(cnext), std::memory_order_relaxed);
  aref(cmd->cnt0).fetch_add(1, std::memory_order_seq_cst);
  if (aref(cmd->shmlink_futex_waiters).load(std::memory_order_seq_cst) != 0) os::futex_wake(cnt0_futex_word(cmd));
  if (options.post_semaphores) m.pkt->impl_->post_all();
  return complete ? Errc::ok : Errc::incomplete;
}

std::optional<Stream::PacketStatus> Stream::packet_status(std::uint64_t k) const {
  if (!impl_) return std::nullopt;
  const Impl& m = *impl_;
  if (k == 0) k = cnt0();
  if (k == 0) return std::nullopt;
  if (!m.pkt || m.pkt->replaced()) {
    try {
      std::unique_ptr<Stream> c = m.open_companion();
      if (!c || !m.fits_companion(*c)) return std::nullopt;
      if (c->cnt2() != m.companion_owner()) return std::nullopt;  // stale: from an earlier incarnation
      m.pkt = std::move(c);
    } catch (const Error&) {
      return std::nullopt;
    }
  }
  std::uint32_t sl = 0;
  if (m.rolling) {
    if (!slice_of(m, k, &sl)) return std::nullopt;
  } else if (k != cnt0()) {
    return std::nullopt;
  }
  const std::uint64_t* rec = packet_record(*m.pkt->impl_, sl);
  // A seqlock on the record's frame field: it reads 0 while the slice is being re-assembled.
  if (aref(rec[kPktFrame]).load(std::memory_order_acquire) != k) return std::nullopt;
  PacketStatus ps;
  ps.cnt0 = k;
  ps.total = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(aref(rec[kPktTotal]).load(std::memory_order_relaxed), kMaxPackets));
  for (std::uint32_t p = 0; p < ps.total; ++p)
    if (aref(rec[kPktHeader + p]).load(std::memory_order_relaxed) != k) ps.missing.push_back(p);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (aref(rec[kPktFrame]).load(std::memory_order_relaxed) != k) return std::nullopt;
  return ps;
}

// ---- waiting --------------------------------------------------------------------------------

Status Stream::wait_spin(std::uint64_t last_cnt0, std::chrono::nanoseconds timeout,
                         std::uint64_t* cnt0_out) const noexcept {
  if (!impl_) return Errc::closed;
  const Metadata* md = impl_->md;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (std::uint32_t i = 0;; ++i) {
    // SYNC POINT A (acquire).
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);
    if (c != last_cnt0) {
      if (cnt0_out != nullptr) *cnt0_out = c;
      return Errc::ok;
    }
    if (i % 256 == 255 && os::monotonic_ns() >= deadline) return Errc::timeout;
    os::cpu_relax();
  }
}

Status Stream::wait_futex(std::uint64_t last_cnt0, std::chrono::nanoseconds timeout, std::uint64_t* cnt0_out,
                          std::chrono::nanoseconds spin) const noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  const Metadata* md = m.md;
  const std::int64_t deadline = os::deadline_after(timeout);
  auto done = [&](std::uint64_t c) {
    if (cnt0_out != nullptr) *cnt0_out = c;
    return Status(Errc::ok);
  };
  // Bounded spin first: cheap when the next frame is imminent.
  if (spin.count() > 0) {
    const std::int64_t spin_end = std::min(os::deadline_after(spin), deadline);
    for (std::uint32_t i = 0;; ++i) {
      const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
      if (c != last_cnt0) return done(c);
      if (i % 64 == 63 && os::monotonic_ns() >= spin_end) break;
      os::cpu_relax();
    }
  }
  // A writer that only posts the semaphores (ISIO's UpdateIm, milk) never wakes the cnt0 futex:
  // unless the newest frame carries a shmlink writer's wake stamp, wait on a semaphore slot too
  // (claimed once, held until close). Without a slot, such writers are noticed by re-checking
  // every foreign_writer_poll_ns() (10 ms).
  Impl::SlotBook book;
  const int slot = timeout.count() > 0 && m.wants_semaphore() ? m.acquire_wait_slot(&book) : -1;
  struct SlotUse {
    Impl& m;
    int slot;
    Impl::SlotBook& book;
    ~SlotUse() {
      if (slot >= 0) m.end_wait_on_slot(slot, book);
    }
  } slot_use{m, slot, book};
  if (slot >= 0 && last_cnt0 > book.seen_cnt0) {
    // The caller has seen the frames up to last_cnt0: their posts (one each, ISIO posts after
    // its increment) are owed to the slot, at most as many as a semaphore holds.
    const std::uint64_t fresh = last_cnt0 - book.seen_cnt0;
    book.owed = std::min<std::int64_t>(
        book.owed + static_cast<std::int64_t>(std::min<std::uint64_t>(fresh, kSemaphoreMaxValue)), kSemaphoreMaxValue);
    book.seen_cnt0 = last_cnt0;
    // Posts taken ahead pay only for the frames they announced: past those, what is left of
    // them was stale (posts without a frame), and is forgotten.
    if (book.owed < 0 && last_cnt0 >= book.prepaid_upto) book.owed = 0;
  }
  sem_t* sem = slot >= 0 ? &m.sems[slot] : nullptr;
  // Without futex_waitv (Linux < 5.16) a slot's waiter sleeps on the semaphore alone: shmlink
  // writers post it too, and a re-creation by PurgeAndCreate posts it once.
  const bool sem_only = sem != nullptr && os::futex_waitv_support().load(std::memory_order_relaxed) ==
                                               os::FutexWaitvSupport::no;
  const std::int64_t poll_ns =
      std::max<std::int64_t>(detail::foreign_writer_poll_ns().load(std::memory_order_relaxed), 1'000'000);
  auto waiters = aref(md->shmlink_futex_waiters);
  // A read-only mapping cannot register as a waiter (nor claim a slot): it sleeps in poll slices.
  const std::uint32_t reg = m.writable && !sem_only ? 1 : 0;
  for (;;) {
    if (sem != nullptr) {
      // Take what the slot holds: posts of frames already seen (a semaphore counts up to 10
      // while the reader is busy) must not end the sleep below at once, and new ones prove a
      // new frame, whose cnt0 increment precedes the post (ISIO order, ref 11.1).
      const int taken = os::gsem::flush(sem);  // SYNC POINT S (acquire): pairs with the post
      book.owed -= taken;
      if (taken > 0 && book.owed >= 0) {
        // Only posts of frames the caller has seen (the post that woke the previous wait, which
        // a wake-up leaves in the slot): nothing new, nothing to watch, sleep.
      } else if (taken > 0) {
        // More posts than seen frames: a writer that posts before its cnt0 increment (ISIO's
        // Python write(): post, write = 0, cnt0 += 1) increments without a wake-up just after:
        // watch cnt0 for a few microseconds, and for up to 1 ms while the write flag says that a
        // write is still under way.
        const std::int64_t ahead = -book.owed;
        // Until the watch finds them, the posts taken ahead pay for the next `ahead` frames
        // (a writer preempted between its post and its increment is seen later, by a wake-up
        // or the re-check; its frame must not be owed a post again).
        book.prepaid_upto = last_cnt0 + static_cast<std::uint64_t>(ahead);
        const std::int64_t until = std::min(deadline, os::monotonic_ns() + 1'000'000);
        for (std::uint32_t i = 0;; ++i) {
          const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
          if (c != last_cnt0) {
            // The posts taken ahead pay for the frames this return shows the caller, which its
            // next wait counts as seen.
            book.owed = -std::min<std::int64_t>(ahead, static_cast<std::int64_t>(std::min<std::uint64_t>(
                                                           c - last_cnt0, kSemaphoreMaxValue)));
            book.prepaid_upto = c;
            return done(c);
          }
          if (i >= 64 && aref(md->write).load(std::memory_order_acquire) == 0) break;
          if (i % 64 == 63 && os::monotonic_ns() >= until) break;
          os::cpu_relax();
        }
        // Stale posts (a writer posting without a frame), or the one post of a PurgeAndCreate
        // that replaced the file (it also wakes the cnt0 futex, and this reader would otherwise
        // sleep on).
        if (replaced()) return Errc::replaced;
      }
      // Register in the slot's waiter count as glibc's sem_wait does, so that glibc's sem_post
      // wakes the value word. SYNC POINT S (acquire, as glibc's registration): the same word
      // as the value, so a post's CAS either precedes this RMW (the value is then non-zero and
      // the wait below returns at once) or follows it and sees the waiter (it then wakes us).
      os::gsem::data(sem).fetch_add(os::gsem::kOneWaiter, std::memory_order_acquire);
    }
    // Relaxed: leaving costs at most a poster's needless wake-up; nothing is published by it.
    auto unregister = [&] {
      if (reg != 0) waiters.fetch_sub(reg, std::memory_order_relaxed);
      if (sem != nullptr) os::gsem::data(sem).fetch_sub(os::gsem::kOneWaiter, std::memory_order_relaxed);
    };
    // Register before the final check (seq_cst pairs with the writer's cnt0 RMW and its
    // seq_cst load of the waiter count: either we see the new cnt0 or the writer sees us).
    if (reg != 0) waiters.fetch_add(reg, std::memory_order_seq_cst);
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_seq_cst);
    if (c != last_cnt0) {
      unregister();
      return done(c);
    }
    const std::int64_t now = os::monotonic_ns();
    if (now >= deadline) {
      unregister();
      return Errc::timeout;
    }
    const timespec rel = os::to_timespec(std::min(deadline - now, poll_ns));
    const auto* cnt0_word = cnt0_futex_word(md);
    const auto expected = static_cast<std::uint32_t>(last_cnt0 & 0xFFFFFFFFu);
    os::FutexResult r = os::FutexResult::woken;
    bool unsupported = sem_only;
    if (sem != nullptr && !sem_only)  // wakes for the cnt0 futex (shmlink writers) or the slot (posts)
      r = os::futex_wait_either(cnt0_word, expected, os::gsem::value_word(sem), 0, rel, &unsupported);
    if (unsupported) {
      r = os::futex_wait(os::gsem::value_word(sem), 0, &rel);
    } else if (sem == nullptr) {
      r = os::futex_wait(cnt0_word, expected, &rel);
    }
    // Not woken by a writer (a poll slice ended, or the page is gone): a foreign writer
    // may have re-created the file in place (ISIO/DAO truncate and re-size it). Check the file
    // still covers the mapping before touching it again, so that the common case of such a
    // re-creation ends in Errc::replaced instead of SIGBUS (a truncation between this check
    // and the loads below still faults: docs/design/streams.md, "Trust rules"). The waiter
    // counts are left as they are then: they live in the truncated pages (the re-created file
    // starts at 0). After a real wake-up there is no check: an fstat (about 2.3 us on a 2-CPU
    // VM) is a large share of a futex wake-up (6.5 us one way at best there), so that window
    // stays (documented).
    if (r != os::FutexResult::woken && r != os::FutexResult::value_changed && !file_intact()) return Errc::replaced;
    unregister();
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
    if (c2 != last_cnt0) return done(c2);
    if (r == os::FutexResult::interrupted) return Errc::interrupted;
    // A post (the slot's value word changed): take it at the top of the loop.
    if (r == os::FutexResult::value_changed || (sem != nullptr && os::gsem::value(sem) != 0)) continue;
    // Woken (or a slice ended) with cnt0 unchanged: was the file re-created under us?
    if (replaced()) return Errc::replaced;
  }
}

// ---- semaphores -----------------------------------------------------------------------------

int Stream::claim_semaphore(int preferred) noexcept {
  if (!impl_ || !impl_->writable) return -1;
  Impl& m = *impl_;
  const pid_t me = os::current_pid();
  for (int i = 0; i < m.nsem; ++i)  // a slot held by wait_futex is not the caller's to read
    if (aref(m.read_pid[i]).load(std::memory_order_relaxed) == me && !m.held_for_waiting(i)) return i;
  auto try_claim = [&](int i) {
    auto slot = aref(m.read_pid[i]);
    std::int32_t seen = slot.load(std::memory_order_relaxed);
    // CAS from the exact value judged free: a racing claimer makes it fail, never both win.
    return slot_free(seen) && slot.compare_exchange_strong(seen, me, std::memory_order_acq_rel);
  };
  if (preferred >= 0 && preferred < m.nsem && try_claim(preferred)) return preferred;
  for (int i = 0; i < m.nsem; ++i)
    if (try_claim(i)) return i;
  return -1;
}

void Stream::release_semaphore(int index) noexcept {
  if (!impl_ || !impl_->writable || index < 0 || index >= impl_->nsem) return;
  if (impl_->held_for_waiting(index)) return;  // wait_futex's, given back on close
  std::int32_t me = os::current_pid();
  aref(impl_->read_pid[index]).compare_exchange_strong(me, -1, std::memory_order_acq_rel);
}

int Stream::reclaim_semaphores(bool count_only) noexcept {
  if (!impl_) return 0;
  Impl& m = *impl_;
  int dead = 0;
  for (int i = 0; i < m.nsem; ++i) {
    auto slot = aref(m.read_pid[i]);
    std::int32_t seen = slot.load(std::memory_order_relaxed);
    if (seen == 0 || seen == -1 || !slot_free(seen)) continue;  // free already, or a live reader
    if (count_only || !m.writable) {
      ++dead;
      continue;
    }
    // CAS from the exact pid judged dead: a reader that claimed the slot meanwhile keeps it.
    if (slot.compare_exchange_strong(seen, -1, std::memory_order_acq_rel)) ++dead;
  }
  return dead;
}

Status Stream::sem_wait(int index, std::chrono::nanoseconds timeout) const noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  if (index < 0 || index >= impl_->nsem) return Errc::out_of_range;
  sem_t* s = &impl_->sems[index];
  if (timeout.count() <= 0) return os::gsem::trywait(s) ? Status(Errc::ok) : Status(Errc::timeout);
  // shmlink's own wait on the glibc words, CLOCK_MONOTONIC (immune to wall-clock steps): glibc's
  // sem_wait aborts on some scribbled slots, and interoperates with this one both ways.
  const std::int64_t deadline =
      timeout == kForever ? std::numeric_limits<std::int64_t>::max() : os::deadline_after(timeout);
  const std::int64_t slice = std::max<std::int64_t>(detail::sem_recheck_ns().load(std::memory_order_relaxed), 1'000'000);
  switch (os::gsem::wait(s, deadline, slice)) {
    case os::gsem::WaitResult::taken: return Errc::ok;
    case os::gsem::WaitResult::timed_out: return Errc::timeout;
    case os::gsem::WaitResult::interrupted: return Errc::interrupted;
  }
  return Errc::system;
}

Status Stream::sem_trywait(int index) const noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  if (index < 0 || index >= impl_->nsem) return Errc::out_of_range;
  return os::gsem::trywait(&impl_->sems[index]) ? Status(Errc::ok) : Status(Errc::would_block);
}

int Stream::sem_flush(int index) const noexcept {
  if (!impl_ || !impl_->writable) return 0;
  if (index < 0) {
    int total = 0;
    for (int i = 0; i < impl_->nsem; ++i) {
      const int n = sem_flush(i);
      total = n > std::numeric_limits<int>::max() - total ? std::numeric_limits<int>::max() : total + n;
    }
    return total;
  }
  if (index >= impl_->nsem) return 0;
  return os::gsem::flush(&impl_->sems[index]);  // one CAS, whatever the value
}

int Stream::sem_value(int index) const noexcept {
  if (!impl_ || index < 0 || index >= impl_->nsem) return -1;
  return os::gsem::value(&impl_->sems[index]);
}

Status Stream::sem_post(int index) noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  Impl& m = *impl_;
  if (index < 0) {
    m.post_all();
    return Errc::ok;
  }
  if (index >= m.nsem) return Errc::out_of_range;
  m.post_slot(index, os::current_pid());
  (void)os::gsem::post(m.semlog, kSemaphoreMaxValue);
  return Errc::ok;
}

// ---- keywords -------------------------------------------------------------------------------

std::vector<Keyword> Stream::keywords() const {
  std::vector<Keyword> out;
  if (!impl_) return out;
  for (int i = 0; i < impl_->nkw; ++i) {
    const isio::Keyword& k = impl_->kw[i];
    Keyword r;
    switch (k.type) {
      case 'L': r.value = k.value.numl; break;
      case 'D': r.value = k.value.numf; break;
      case 'S': r.value = std::string(k.value.valstr, strnlen(k.value.valstr, sizeof(k.value.valstr))); break;
      default: continue;  // 'N' (unused) or garbage: skip
    }
    r.name.assign(k.name, strnlen(k.name, sizeof(k.name)));
    r.comment.assign(k.comment, strnlen(k.comment, sizeof(k.comment)));
    r.count = k.cnt;
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<KeywordValue> Stream::keyword(std::string_view name) const {
  for (auto& k : keywords())
    if (k.name == name) return k.value;
  return std::nullopt;
}

void Stream::set_keyword(std::string_view name, const KeywordValue& value, std::string_view comment) {
  if (!impl_) throw Error(Errc::closed, "setting keyword: stream handle is closed");
  if (!impl_->writable)
    throw Error(Errc::permission, "setting keyword '" + std::string(name) + "' of " + impl_->path + ": opened read-only");
  const std::string where = "setting keyword '" + std::string(name) + "' of " + impl_->path;
  if (name.empty()) throw Error(Errc::invalid_argument, where + ": name is empty");
  if (name.size() > 15) throw Error(Errc::name_too_long, where + ": name must be 1 to 15 bytes");
  if (comment.size() > 79) throw Error(Errc::name_too_long, where + ": comment exceeds 79 bytes");
  // ISIO's valstr is char[16]: a 16-byte value fills it without a terminating NUL (reference
  // 4.1); keywords() reads at most 16 bytes back.
  static_assert(sizeof(isio::Keyword{}.value.valstr) == kMaxKeywordString);
  if (auto* s = std::get_if<std::string>(&value); s != nullptr && s->size() > kMaxKeywordString)
    throw Error(Errc::name_too_long, where + ": string value is " + std::to_string(s->size()) + " bytes, at most " +
                                         std::to_string(kMaxKeywordString) + " fit");
  isio::Keyword* slot = nullptr;
  for (int i = 0; i < impl_->nkw && slot == nullptr; ++i) {
    isio::Keyword& k = impl_->kw[i];
    if (k.type != 'N' && strnlen(k.name, sizeof(k.name)) == name.size() &&
        std::memcmp(k.name, name.data(), name.size()) == 0)
      slot = &k;
  }
  for (int i = 0; i < impl_->nkw && slot == nullptr; ++i)
    if (impl_->kw[i].type != 'L' && impl_->kw[i].type != 'D' && impl_->kw[i].type != 'S') slot = &impl_->kw[i];
  if (slot == nullptr)
    throw Error(Errc::out_of_range, where + ": all " + std::to_string(impl_->nkw) + " keyword slots are used");
  std::memset(slot->name, 0, sizeof(slot->name));
  std::memcpy(slot->name, name.data(), name.size());
  std::memset(&slot->value, 0, sizeof(slot->value));
  if (auto* i = std::get_if<std::int64_t>(&value)) {
    slot->value.numl = *i;
    slot->type = 'L';
  } else if (auto* d = std::get_if<double>(&value)) {
    slot->value.numf = *d;
    slot->type = 'D';
  } else {
    const auto& s = std::get<std::string>(value);
    if (!s.empty()) std::memcpy(slot->value.valstr, s.data(), s.size());
    slot->type = 'S';
  }
  std::memset(slot->comment, 0, sizeof(slot->comment));
  if (!comment.empty()) std::memcpy(slot->comment, comment.data(), comment.size());
  aref(slot->cnt).fetch_add(1, std::memory_order_release);
}

bool Stream::erase_keyword(std::string_view name) {
  if (!impl_) throw Error(Errc::closed, "erasing keyword: stream handle is closed");
  if (!impl_->writable)
    throw Error(Errc::permission, "erasing keyword '" + std::string(name) + "' of " + impl_->path + ": opened read-only");
  for (int i = 0; i < impl_->nkw; ++i) {
    isio::Keyword& k = impl_->kw[i];
    if ((k.type == 'L' || k.type == 'D' || k.type == 'S') && strnlen(k.name, sizeof(k.name)) == name.size() &&
        std::memcmp(k.name, name.data(), name.size()) == 0) {
      k.type = 'N';
      aref(k.cnt).fetch_add(1, std::memory_order_release);
      return true;
    }
  }
  return false;
}

}  // namespace shmlink
