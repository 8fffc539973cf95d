// SPDX-License-Identifier: MIT
// The region directory: identity, header, the lock without a shared kernel, the seqlock copy of
// the table, the trust rule and the first-fit allocator (region_internal.hpp;
// docs/design/region.md).
#include "region/region_internal.hpp"

#include "os/clock.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace shmlink::rdir {

using rlayout::RegionEntry;
using rlayout::RegionHeader;

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);

namespace {

// ---- shared words ---------------------------------------------------------------------------

/// The 64-bit word at byte `off` of the region (8-aligned: the region is 64-byte aligned).
std::atomic_ref<std::uint64_t> word(std::span<std::byte> bytes, std::uint64_t off) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(bytes.data() + off));
}
std::atomic_ref<std::uint64_t> entry_word(std::span<std::byte> bytes, std::uint32_t i, std::size_t w) noexcept {
  return word(bytes, rlayout::entry_offset(i) + 8 * w);
}
std::atomic_ref<std::uint64_t> lock_word(std::span<std::byte> bytes) noexcept {
  return word(bytes, offsetof(RegionHeader, lock));
}
std::atomic_ref<std::uint64_t> count_word(std::span<std::byte> bytes) noexcept {
  return word(bytes, offsetof(RegionHeader, lock_count));
}
std::atomic_ref<std::uint64_t> start_word(std::span<std::byte> bytes) noexcept {
  return word(bytes, offsetof(RegionHeader, lock_start));
}

/// Copies entry `i` word by word (relaxed: inside the readers' seqlock, or under the lock).
RegionEntry load_entry(std::span<std::byte> bytes, std::uint32_t i) noexcept {
  std::uint64_t w[rlayout::kEntryWords];
  for (std::size_t k = 0; k < rlayout::kEntryWords; ++k) w[k] = entry_word(bytes, i, k).load(std::memory_order_relaxed);
  RegionEntry e;
  std::memcpy(&e, w, sizeof e);
  return e;
}

std::uint32_t state_of(std::uint64_t kind_state) noexcept { return static_cast<std::uint32_t>(kind_state >> 32); }

std::string quote_name(std::string_view name) { return "'" + escape_name(name) + "'"; }

// ---- holders --------------------------------------------------------------------------------

/// The low 22 bits of a lock token: the holder's thread id (Linux pids stay below 2^22).
constexpr std::uint64_t kTidMask = (std::uint64_t{1} << 22) - 1;

/// A token (lock word or entry owner) of this kernel and pid namespace (its ids are ours to check).
bool local_holder(std::uint64_t token) noexcept {
  return static_cast<std::uint32_t>(token >> 32) == local_identity().token_hash && (token & kTidMask) != 0;
}

/// What a waiter knows of the lock holder `lock` (local) with lock_start `start_word`: the
/// start word is this acquisition's only when it carries the token's low half (written right
/// after the CAS; until then it is an earlier holder's, and the thread is judged by id alone).
Liveness judge_thread(std::uint64_t lock, std::uint64_t start_word) {
  const bool ours = (start_word >> 32) == (lock & 0xffffffffU);
  return thread_liveness(lock & kTidMask, ours ? start_word & 0xffffffffU : 0);
}

/// This thread's id and start time (read again when the tid changed, a forked child, or while
/// /proc could not say: a failed read is not cached).
struct Me {
  std::uint64_t tid = 0;
  std::uint64_t start = 0;
};
const Me& me() {
  thread_local Me m;
  const auto tid = static_cast<std::uint64_t>(::gettid());
  if (m.tid != tid || m.start == 0) {
    m.tid = tid;
    m.start = thread_start();
  }
  return m;
}
/// The token of this thread's acquisition in progress (0: it holds no directory lock). A lock
/// word naming this thread with another token is stale: an acquisition of ours never released.
thread_local std::uint64_t t_held = 0;
/// Acquisitions by this thread (folded into the token: a release or takeover CAS matches one
/// acquisition, not every acquisition of the thread). Starts at a random value (getrandom), so
/// two threads or processes given one tid in turn do not count through the same tokens.
std::uint32_t next_seq() noexcept {
  thread_local std::uint32_t seq = static_cast<std::uint32_t>(random_u64());
  return ++seq & 0x3ffU;
}

std::string token_text(std::uint64_t token) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(token));
  return buf;
}

/// Judges the holder of a taken lock word for a waiter (the recovery rule): a holder of this
/// kernel that is gone may be taken over at once; a holder of another kernel (another VM) once the
/// lock word and its count have not changed for the lock timeout, measured on the waiter's
/// CLOCK_MONOTONIC; a local holder alive or of unknown liveness past the timeout is
/// Errc::timeout. In a region other kernels share, "gone" by this kernel's /proc only allows the
/// progress rule (a VM cloned from this one's snapshot has the same boot_id and pids). Nobody waits
/// more than five timeouts in all (a peer that keeps rewriting the word cannot hold us forever).
class Watch {
 public:
  Watch(const std::string& what, bool other_kernels)
      : what_(what), other_kernels_(other_kernels), start_(os::monotonic_ns()) {}

  /// wait; or take the lock over now: its holder is gone (dead) or did nothing for the timeout.
  enum class Verdict { wait, dead, silent };
  /// The verdict on the holder `lock` (non-zero, lock_start `start`).
  Verdict judge(std::uint64_t lock, std::uint64_t count, std::uint64_t start) {
    const std::int64_t now = os::monotonic_ns();
    // SYNC POINT: relaxed: a setting (tests change it between operations), no data published.
    const std::int64_t limit = g_lock_timeout_ns.load(std::memory_order_relaxed);
    if (!seen_ || lock != lock_ || count != count_) {
      seen_ = true, lock_ = lock, count_ = count, since_ = now;
    }
    const bool unchanged = now - since_ >= limit;
    if (!local_holder(lock)) return unchanged ? Verdict::silent : Verdict::wait;
    // A token naming this thread but not its acquisition in progress: one of ours never released.
    const bool own_stale = (lock & kTidMask) == me().tid && lock != t_held;
    const Liveness v = own_stale ? Liveness::gone : judge_thread(lock, start);
    if (v == Liveness::gone) {
      if (!other_kernels_) return Verdict::dead;
      return unchanged ? Verdict::silent : Verdict::wait;
    }
    if (unchanged)
      throw Error(Errc::timeout, "region " + what_ + ": the directory lock is held by thread " +
                                     std::to_string(lock & kTidMask) + " of this host, which did not release it within " +
                                     std::to_string(limit / 1'000'000) + " ms" +
                                     (v == Liveness::unknown ? " (its liveness cannot be read here: taken as alive)" : ""));
    return Verdict::wait;
  }
  /// Throws timeout once five lock timeouts have passed since the wait began.
  void check_overall(std::int64_t now, std::int64_t limit) const {
    if (now - start_ >= 5 * limit)
      throw Error(Errc::timeout, "region " + what_ + ": the directory kept changing for " +
                                     std::to_string((now - start_) / 1'000'000) + " ms (lock word " +
                                     token_text(lock_) + ")");
  }
  /// One step of the wait: spin a little, then sleep in growing slices up to 1 ms.
  void pause() noexcept {
    if (++rounds_ < 64) {
      os::cpu_relax();
      return;
    }
    const long ns = std::min<long>(1'000'000, 1'000L << std::min<unsigned>(rounds_ - 64, 10));
    timespec ts{0, ns};
    ::nanosleep(&ts, nullptr);
  }

 private:
  const std::string& what_;
  bool other_kernels_;
  std::int64_t start_;
  std::int64_t since_ = 0;
  std::uint64_t lock_ = 0, count_ = 0;
  bool seen_ = false;
  unsigned rounds_ = 0;
};

}  // namespace

bool holder_dead(std::uint64_t token, std::uint64_t start) {
  return local_holder(token) && process_liveness(token & 0xffffffffU, start) == Liveness::gone;
}

// ---- identity -------------------------------------------------------------------------------

std::string format_boot_id(const std::uint8_t (&id)[16]) {
  std::string out;
  char buf[4];
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    std::snprintf(buf, sizeof buf, "%02x", id[i]);
    out += buf;
  }
  return out;
}

const char* name_problem(std::string_view name) noexcept {
  if (name.empty()) return "the name is empty";
  if (name.size() > rlayout::kMaxName) return "the name is longer than 79 bytes";
  if (name == "." || name == "..") return "the name is '.' or '..'";
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '/') return "the name contains '/'";
    if (c == ':') return "the name contains ':' (it separates a region from a channel in PATH:NAME)";
    if (c < 0x20 || c == 0x7f) return "the name contains a control character";
  }
  return nullptr;
}

// ---- header ---------------------------------------------------------------------------------

void format(std::span<std::byte> bytes, std::uint32_t max_entries, const std::string& what, std::uint32_t flags) {
  const std::string who = "formatting region " + what;
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % rlayout::kCacheLine != 0)
    throw Error(Errc::invalid_argument, who + ": the memory is not 64-byte aligned");
  if (bytes.size() < rlayout::kMinRegionSize || bytes.size() % rlayout::kEntryAlign != 0)
    throw Error(Errc::invalid_argument, who + ": size " + std::to_string(bytes.size()) +
                                            " is not a multiple of 4096 of at least 65536 bytes");
  if (max_entries < 1 || max_entries > rlayout::kMaxEntries)
    throw Error(Errc::invalid_argument, who + ": max_entries " + std::to_string(max_entries) + " is outside 1..16384");
  const std::uint64_t dir = rlayout::directory_bytes(max_entries);
  if (dir + rlayout::kEntryAlign > bytes.size())
    throw Error(Errc::invalid_argument, who + ": a directory of " + std::to_string(max_entries) + " entries (" +
                                            std::to_string(dir) + " bytes) leaves no room in " +
                                            std::to_string(bytes.size()) + " bytes");
  auto* h = reinterpret_cast<RegionHeader*>(bytes.data());
  // Hide the old directory first (readers check the version), then rebuild it.
  // SYNC POINT: relaxed: formatting memory nobody may use meanwhile (the creator's, or a server's
  // before it hands the memory out); the release store of the version below publishes it.
  std::atomic_ref<std::uint32_t>(h->version).store(0, std::memory_order_relaxed);
  std::memset(bytes.data(), 0, dir);
  std::memcpy(h->magic, rlayout::kMagic, sizeof h->magic);
  h->header_bytes = sizeof(RegionHeader);
  h->region_size = bytes.size();
  h->directory_bytes = dir;
  h->max_entries = max_entries;
  h->entry_bytes = sizeof(RegionEntry);
  h->created_ns = os::now_ns(CLOCK_REALTIME);
  h->creator_pid = os::current_pid();
  h->flags = flags;
  const Identity& me = local_identity();
  std::memcpy(h->boot_id, me.boot_id.data(), sizeof h->boot_id);
  std::memcpy(h->host_name, me.host_name.data(), std::min(me.host_name.size(), sizeof h->host_name - 1));
  // SYNC POINT: the version, stored last, publishes the directory; pairs with read_header's acquire.
  std::atomic_ref<std::uint32_t>(h->version).store(rlayout::kVersion, std::memory_order_release);
}

Header read_header(std::span<const std::byte> bytes, const std::string& what, std::uint64_t whole) {
  const std::string who = "opening region " + what;
  if (whole == 0) whole = bytes.size();
  if (whole < rlayout::kMinRegionSize || bytes.size() < sizeof(RegionHeader))
    throw Error(Errc::layout, who + ": " + std::to_string(whole) + " bytes is smaller than a region (65536)");
  auto* h = reinterpret_cast<const RegionHeader*>(bytes.data());
  if (std::memcmp(h->magic, rlayout::kMagic, sizeof h->magic) != 0)
    throw Error(Errc::layout, who + ": not a region (no SHMLREG magic)");
  // SYNC POINT: pairs with format()'s release store of the version.
  const std::uint32_t version =
      std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(h->version)).load(std::memory_order_acquire);
  if (version == 0) throw Error(Errc::layout, who + ": the directory is not formatted yet (version 0)");
  if (version != rlayout::kVersion)
    throw Error(Errc::layout, who + ": directory version " + std::to_string(version) + " is not " +
                                  std::to_string(rlayout::kVersion));
  // One copy, then only the copy is checked and used. It stops before the lock line: those words
  // are changed by compare-and-swap at any time (only atomic accesses may read them) and a handle
  // has no use for them.
  RegionHeader c{};
  static_assert(offsetof(RegionHeader, lock) == 3 * rlayout::kCacheLine);
  std::memcpy(&c, h, offsetof(RegionHeader, lock));
  if (c.header_bytes != sizeof(RegionHeader) || c.entry_bytes != sizeof(RegionEntry))
    throw Error(Errc::layout, who + ": header_bytes " + std::to_string(c.header_bytes) + " / entry_bytes " +
                                  std::to_string(c.entry_bytes) + " are not 256 / 128");
  if (c.max_entries < 1 || c.max_entries > rlayout::kMaxEntries)
    throw Error(Errc::layout, who + ": max_entries " + std::to_string(c.max_entries) + " is outside 1..16384");
  if (c.directory_bytes != rlayout::directory_bytes(c.max_entries))
    throw Error(Errc::layout, who + ": directory_bytes " + std::to_string(c.directory_bytes) + " does not match " +
                                  std::to_string(c.max_entries) + " entries");
  if (c.region_size < rlayout::kMinRegionSize || c.region_size % rlayout::kEntryAlign != 0 ||
      c.region_size > whole || c.directory_bytes >= c.region_size)
    throw Error(Errc::layout, who + ": region_size " + std::to_string(c.region_size) + " does not fit the " +
                                  std::to_string(whole) + " bytes mapped (or the directory)");
  Header r;
  r.region_size = c.region_size;
  r.directory_bytes = c.directory_bytes;
  r.max_entries = c.max_entries;
  std::memcpy(r.boot_id, c.boot_id, sizeof r.boot_id);
  r.host_name.assign(c.host_name, ::strnlen(c.host_name, sizeof c.host_name));
  r.creator_pid = c.creator_pid;
  r.flags = c.flags;
  r.created_ns = c.created_ns;
  return r;
}

// ---- the trust rule -------------------------------------------------------------------------

std::vector<Slot> validate(std::span<const RegionEntry> table, const Header& h, const std::string& what) {
  std::vector<Slot> out;
  for (std::uint32_t i = 0; i < table.size(); ++i) {
    const RegionEntry& e = table[i];
    if (e.state == rlayout::kStateFree) continue;
    const std::size_t len = ::strnlen(e.name, sizeof e.name);
    const std::string_view name(e.name, len);
    auto bad = [&](const std::string& why) -> Error {
      return Error(Errc::layout, "region " + what + ": entry " + std::to_string(i) + " (" + quote_name(name) + "): " + why);
    };
    if (len == sizeof e.name) throw bad("the name is not NUL-terminated");
    if (const char* p = name_problem(name)) throw bad(p);
    if (e.state > rlayout::kStateRemoving) throw bad("unknown state " + std::to_string(e.state));
    if (e.kind != rlayout::kKindStream && e.kind != rlayout::kKindQueue) throw bad("unknown kind " + std::to_string(e.kind));
    if (e.offset % rlayout::kEntryAlign != 0 || e.size % rlayout::kEntryAlign != 0 || e.size == 0)
      throw bad("offset " + std::to_string(e.offset) + " / size " + std::to_string(e.size) +
                " are not non-zero multiples of 4096");
    if (e.offset < h.directory_bytes || e.offset > h.region_size || e.size > h.region_size - e.offset)
      throw bad("bytes " + std::to_string(e.offset) + ".." + std::to_string(e.offset + e.size) +
                " are outside the channel space " + std::to_string(h.directory_bytes) + ".." +
                std::to_string(h.region_size));
    Slot s;
    s.index = i;
    s.entry.name = std::string(name);
    s.entry.kind = static_cast<ChannelKind>(e.kind);
    s.entry.state = static_cast<EntryState>(e.state);
    s.entry.offset = e.offset;
    s.entry.size = e.size;
    s.entry.generation = e.generation;
    s.entry.owner = e.owner;
    out.push_back(std::move(s));
  }
  std::vector<const Slot*> by_offset;
  by_offset.reserve(out.size());
  for (const Slot& s : out) by_offset.push_back(&s);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Slot* a, const Slot* b) {
              return a->entry.offset != b->entry.offset ? a->entry.offset < b->entry.offset : a->index < b->index;
            });
  for (std::size_t k = 1; k < by_offset.size(); ++k) {
    const Slot& a = *by_offset[k - 1];
    const Slot& b = *by_offset[k];
    if (a.entry.offset + a.entry.size > b.entry.offset)
      throw Error(Errc::layout, "region " + what + ": entry " + std::to_string(b.index) + " (" + quote_name(b.entry.name) +
                                    ") overlaps entry " + std::to_string(a.index) + " (" + quote_name(a.entry.name) + ")");
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const Slot* a, const Slot* b) {
    return a->entry.name != b->entry.name ? a->entry.name < b->entry.name : a->index < b->index;
  });
  // A removed entry still held by attached handles (removing) may share its name with the
  // channel created after it.
  std::erase_if(by_offset, [](const Slot* s) { return s->entry.state == EntryState::removing; });
  for (std::size_t k = 1; k < by_offset.size(); ++k)
    if (by_offset[k - 1]->entry.name == by_offset[k]->entry.name)
      throw Error(Errc::layout, "region " + what + ": entry " + std::to_string(by_offset[k]->index) + " (" +
                                    quote_name(by_offset[k]->entry.name) + ") has the name of entry " +
                                    std::to_string(by_offset[k - 1]->index));
  return out;
}

// ---- the lock -------------------------------------------------------------------------------

void Directory::still_holding(std::uint64_t lock, const char* doing) const {
  // SYNC POINT: acquire: pairs with a taker's acquire CAS only for ordering of this read.
  const std::uint64_t now = lock_word(bytes_).load(std::memory_order_acquire);
  if (now != lock)
    throw Error(Errc::timeout, "region " + what_ + ": " + doing + ": the directory lock was taken over (now " +
                                   token_text(now) + ") after this holder stalled past the lock timeout; nothing more written");
}

/// Holds the directory lock for its lifetime; recovers what a dead holder left on the way in.
class Directory::Lock {
  /// The acquisition itself, constructed first: its destructor releases the lock even when the
  /// Lock's constructor throws after acquiring (recover()).
  class Hold {
   public:
    explicit Hold(const Directory& d);
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold();
    const Directory& d_;
    std::uint64_t mine_;
  };

 public:
  explicit Lock(const Directory& d) : hold_(d), d_(d), mine_(hold_.mine_) { recover(); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock() = default;
  [[nodiscard]] std::uint64_t token() const noexcept { return mine_; }
  /// Throws when the lock is no longer this acquisition's (a waiter took it over after this
  /// holder stalled past the lock timeout), so that a stalled holder stops writing instead of
  /// racing the new one. Called right before every shared store (put()).
  void still_mine(const char* doing) const { d_.still_holding(mine_, doing); }
  /// Changes word `w` of entry `i` from `expected` (what this holder read under its lock) to
  /// `desired`: checks still_mine() right before, then stores by one compare-and-swap, so that
  /// a holder that stalled past the timeout and was taken over never overwrites what a newer
  /// holder wrote to that word (and a newer holder whose word a stalled one changed gives up
  /// instead of building on it). The window that remains: docs/design/region.md.
  /// @throws Error timeout naming the region, the entry and `doing`.
  void put(std::uint32_t i, std::size_t w, std::uint64_t expected, std::uint64_t desired, std::memory_order order,
           const char* doing) const {
    still_mine(doing);
    if (g_test_hook != nullptr) g_test_hook(HookPoint::storing);
    std::uint64_t cur = expected;
    // SYNC POINT: `order` as the caller says (release for the commit of an entry's state,
    // pairing with current()'s and snapshot()'s acquire; relaxed for fields not yet committed);
    // relaxed on failure (only the value is reported).
    if (!entry_word(d_.bytes_, i, w).compare_exchange_strong(cur, desired, order, std::memory_order_relaxed))
      throw Error(Errc::timeout, "region " + d_.what_ + ": " + doing + ": entry " + std::to_string(i) + " word " +
                                     std::to_string(w) + " changed under the lock (" + token_text(cur) + ", not " +
                                     token_text(expected) + "): another holder took the lock over; nothing more written");
  }
  /// Removes entry `i`: freed (release_slot) when no live process is attached to it, else left
  /// `removing` with generation + 1 (attached handles see replaced; recovery frees it once none
  /// is left), each store a put(). @return true when the entry was freed.
  bool retire_slot(std::uint32_t i, const char* doing) const {
    const std::uint32_t attached = d_.attachments(i, mine_);
    if (attached == 0) {
      release_slot(i, doing);
      return true;
    }
    // SYNC POINT: relaxed: under the lock (its acquire ordered the previous holders' stores).
    const std::uint64_t ks = entry_word(d_.bytes_, i, rlayout::kKindStateWord).load(std::memory_order_relaxed);
    const std::uint64_t gen = entry_word(d_.bytes_, i, rlayout::kGenerationWord).load(std::memory_order_relaxed);
    const auto kind = static_cast<std::uint32_t>(ks & 0xffffffffU);
    // SYNC POINT: `removing` relaxed (under the lock); the release store of the generation pairs
    // with current()'s acquire load (and Placement::word_current()'s relaxed hint).
    put(i, rlayout::kKindStateWord, ks, rlayout::kind_state(kind, rlayout::kStateRemoving), std::memory_order_relaxed,
        doing);
    put(i, rlayout::kGenerationWord, gen, gen + 1, std::memory_order_release, doing);
    return false;
  }
  /// Frees entry `i`: `removing`, generation + 1, `free`, each one put(). A holder dying between
  /// them leaves `removing`, which the next holder frees.
  void release_slot(std::uint32_t i, const char* doing) const {
    // SYNC POINT: relaxed: under the lock (its acquire ordered the previous holders' stores).
    const std::uint64_t ks = entry_word(d_.bytes_, i, rlayout::kKindStateWord).load(std::memory_order_relaxed);
    const std::uint64_t gen = entry_word(d_.bytes_, i, rlayout::kGenerationWord).load(std::memory_order_relaxed);
    const auto kind = static_cast<std::uint32_t>(ks & 0xffffffffU);
    const std::uint64_t removing = rlayout::kind_state(kind, rlayout::kStateRemoving);
    // SYNC POINT: `removing` relaxed (under the lock); the release stores of the generation and
    // then of `free` pair with current()'s acquire loads and the next holder's acquire of the lock.
    put(i, rlayout::kKindStateWord, ks, removing, std::memory_order_relaxed, doing);
    put(i, rlayout::kGenerationWord, gen, gen + 1, std::memory_order_release, doing);
    put(i, rlayout::kKindStateWord, removing, rlayout::kind_state(kind, rlayout::kStateFree), std::memory_order_release,
        doing);
  }

 private:
  /// The recovery rule: an entry left `removing` (removed while attached, or its remover died
  /// inside the lock) becomes free once no live process is attached to it; a `creating` entry
  /// whose creator is a process of this kernel that is gone becomes free (never in a region
  /// other kernels share: a clone's live creator could look gone here).
  void recover() {
    if (g_test_hook != nullptr) g_test_hook(HookPoint::recovering);
    for (std::uint32_t i = 0; i < d_.header_.max_entries; ++i) {
      // SYNC POINT: relaxed: under the lock (its acquire ordered the previous holders' stores).
      const std::uint64_t ks = entry_word(d_.bytes_, i, rlayout::kKindStateWord).load(std::memory_order_relaxed);
      const std::uint32_t st = state_of(ks);
      if ((st == rlayout::kStateRemoving && d_.attachments(i, mine_) == 0) ||
          (st == rlayout::kStateCreating && !d_.other_kernels_ && [&] {
            // SYNC POINT: relaxed: under the lock (the owner words were written by a holder).
            const std::uint64_t owner = entry_word(d_.bytes_, i, rlayout::kOwnerWord).load(std::memory_order_relaxed);
            const std::uint64_t start = entry_word(d_.bytes_, i, rlayout::kOwnerStartWord).load(std::memory_order_relaxed);
            return local_holder(owner) && process_liveness(owner & 0xffffffffU, start) == Liveness::gone;
          }())) {
        release_slot(i, "recovering an entry");
        detail::log(LogLevel::info, "region " + d_.what_ + ": entry " + std::to_string(i) + " left " +
                                        (st == rlayout::kStateRemoving ? "removing, no longer attached" : "creating by a dead process") +
                                        " was freed");
      }
    }
  }

  Hold hold_;
  const Directory& d_;
  std::uint64_t mine_;
};

Directory::Lock::Hold::Hold(const Directory& d) : d_(d) {
  if (!d.writable_) throw Error(Errc::permission, "region " + d.what_ + ": mapped read-only");
  // Without the boot_id, two kernels (VMs) could look like one and judge each other's pids.
  if (!local_identity().boot_id_read)
    throw Error(Errc::system, "region " + d.what_ + ": cannot lock the directory: " + kBootIdPath +
                                  " cannot be read (it tells this kernel's processes from other kernels')");
  const Me& self = me();
  if (self.tid == 0 || self.tid > kTidMask)
    throw Error(Errc::system, "region " + d.what_ + ": thread id " + std::to_string(self.tid) + " does not fit 22 bits");
  mine_ = (std::uint64_t{local_identity().token_hash} << 32) | (std::uint64_t{next_seq()} << 22) | self.tid;
  auto lock = lock_word(d.bytes_);
  auto count = count_word(d.bytes_);
  auto start = start_word(d.bytes_);
  Watch watch(d.what_, d.other_kernels_);
  for (;;) {
    watch.check_overall(os::monotonic_ns(), g_lock_timeout_ns.load(std::memory_order_relaxed));
    // SYNC POINT: pairs with the release CAS in ~Hold (the previous holder's table stores).
    std::uint64_t cur = lock.load(std::memory_order_acquire);
    if (cur == 0) {
      if (lock.compare_exchange_strong(cur, mine_, std::memory_order_acquire, std::memory_order_acquire)) break;
    } else if (const Watch::Verdict v = watch.judge(cur, count.load(std::memory_order_relaxed),
                                                    start.load(std::memory_order_relaxed));
               v != Watch::Verdict::wait) {
      // The CAS matches the one acquisition judged (its token carries its thread and sequence).
      if (lock.compare_exchange_strong(cur, mine_, std::memory_order_acquire, std::memory_order_acquire)) {
        detail::log(LogLevel::warn, "region " + d.what_ + ": took over the directory lock from holder " + token_text(cur) +
                                        (v == Watch::Verdict::dead ? " (its thread is gone)"
                                                                   : " (unchanged for the lock timeout)"));
        break;
      }
    }
    watch.pause();
  }
  t_held = mine_;
  // SYNC POINT: relaxed: read only to judge this holder; it carries this token's low half, so a
  // waiter never takes an earlier holder's start time for this acquisition's (judge_thread).
  start.store(lock_start_of(mine_, self.start), std::memory_order_relaxed);
  // Open the readers' seqlock: a reader whose copy sees any store below sees this count. One
  // atomic add: a holder taken over while it stalled here cannot undo the next holder's count.
  count.fetch_add(1, std::memory_order_relaxed);
  // SYNC POINT: orders the count before the table stores; pairs with snapshot()'s acquire fence.
  std::atomic_thread_fence(std::memory_order_release);
}

Directory::Lock::Hold::~Hold() {
  t_held = 0;
  std::uint64_t expected = mine_;
  // SYNC POINT: publishes this holder's table stores to the next holder's acquire load/CAS; the
  // CAS matches only this acquisition (a holder that took over keeps its lock).
  if (!lock_word(d_.bytes_).compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed))
    detail::log(LogLevel::warn, "region " + d_.what_ + ": the directory lock was taken over while held (now " +
                                    token_text(expected) + ")");
}

// ---- reading --------------------------------------------------------------------------------

std::vector<RegionEntry> Directory::raw_table() const {
  std::vector<RegionEntry> table(header_.max_entries);
  for (std::uint32_t i = 0; i < header_.max_entries; ++i) table[i] = load_entry(bytes_, i);
  return table;
}

std::vector<Slot> Directory::snapshot() const {
  auto lock = lock_word(bytes_);
  auto count = count_word(bytes_);
  Watch watch(what_, other_kernels_);
  std::vector<RegionEntry> table;
  for (;;) {
    // SYNC POINT: pairs with a holder's release fence after its count store (Lock).
    const std::uint64_t c1 = count.load(std::memory_order_acquire);
    const std::uint64_t l1 = lock.load(std::memory_order_acquire);
    const std::uint64_t s1 = start_word(bytes_).load(std::memory_order_relaxed);
    // A dead or silent holder changes nothing more: its table is read as it is (every change is
    // committed by one store of an entry's kind/state word, so it is consistent).
    if (l1 == 0 || watch.judge(l1, c1, s1) != Watch::Verdict::wait) {
      table = raw_table();
      // SYNC POINT: pairs with the holder's release fence: a copy that saw a store sees the count.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (count.load(std::memory_order_relaxed) == c1 && lock.load(std::memory_order_relaxed) == l1) break;
    }
    watch.check_overall(os::monotonic_ns(), g_lock_timeout_ns.load(std::memory_order_relaxed));
    watch.pause();
  }
  return validate(table, header_, what_);
}

std::optional<Slot> Directory::find(std::string_view name) const {
  for (Slot& s : snapshot())
    if (s.entry.name == name && s.entry.state != EntryState::removing) return std::move(s);
  return std::nullopt;
}

bool Directory::current(std::uint32_t index, std::uint64_t generation) const noexcept {
  if (index >= header_.max_entries) return false;
  // SYNC POINT: pairs with the release stores of release_slot() and reserve().
  const std::uint64_t ks = entry_word(bytes_, index, rlayout::kKindStateWord).load(std::memory_order_acquire);
  const std::uint64_t gen = entry_word(bytes_, index, rlayout::kGenerationWord).load(std::memory_order_acquire);
  const std::uint32_t st = state_of(ks);
  return gen == generation && (st == rlayout::kStateCreating || st == rlayout::kStateReady);
}

// ---- the allocator --------------------------------------------------------------------------

namespace {
/// The error when in-use entry `s` (raw copy `raw`) is being created by a process of this kernel
/// that is not gone (alive, or its liveness unknown), or std::nullopt.
std::optional<Error> live_creator(const Slot& s, const RegionEntry& raw, const std::string& who) {
  if (s.entry.state != EntryState::creating || !local_holder(s.entry.owner) ||
      process_liveness(s.entry.owner & 0xffffffffU, raw.owner_start) == Liveness::gone)
    return std::nullopt;
  return Error(Errc::busy, who + ": pid " + std::to_string(static_cast<std::uint32_t>(s.entry.owner)) +
                               " is still creating it");
}
}  // namespace

Slot Directory::reserve(std::string_view name, ChannelKind kind, std::uint64_t bytes, bool replace) {
  const std::string who = "region " + what_ + ": creating " + quote_name(name);
  if (const char* p = name_problem(name)) throw Error(Errc::invalid_argument, who + ": " + p);
  if (bytes == 0 || bytes > header_.region_size)
    throw Error(Errc::no_space, who + ": " + std::to_string(bytes) + " bytes do not fit a region of " +
                                    std::to_string(header_.region_size));
  const std::uint64_t size = rlayout::align_up(bytes);
  Slot slot;
  {
    Lock lk(*this);
    std::vector<RegionEntry> table = raw_table();
    std::vector<Slot> used = validate(table, header_, what_);
    for (auto it = used.begin(); it != used.end(); ++it) {
      if (it->entry.name != name || it->entry.state == EntryState::removing) continue;
      if (!replace)
        throw Error(Errc::exists, who + ": entry " + std::to_string(it->index) + " has that name (" +
                                      (it->entry.state == EntryState::creating ? "being created" : "ready") + ")");
      // PurgeAndCreate: the old entry is retired under this same lock, so no other process sees
      // the name missing (or takes it) between the removal and the new reservation. While
      // processes are attached to it, it stays `removing` and keeps its bytes (still in `used`).
      if (std::optional<Error> busy = live_creator(*it, table[it->index], who)) throw *busy;
      if (lk.retire_slot(it->index, "replacing an entry")) {
        table[it->index] = load_entry(bytes_, it->index);
        used.erase(it);
      }
      break;
    }
    std::uint32_t index = header_.max_entries;
    for (std::uint32_t i = 0; i < header_.max_entries && index == header_.max_entries; ++i)
      if (table[i].state == rlayout::kStateFree) index = i;
    if (index == header_.max_entries)
      throw Error(Errc::no_space, who + ": all " + std::to_string(header_.max_entries) + " entries are in use");
    // First fit: the gaps are the spaces between the entries in use, sorted by offset.
    std::sort(used.begin(), used.end(), [](const Slot& a, const Slot& b) { return a.entry.offset < b.entry.offset; });
    std::uint64_t cursor = header_.directory_bytes, largest = 0;
    bool found = false;
    for (const Slot& s : used) {
      const std::uint64_t gap = s.entry.offset - cursor;
      if (gap >= size) {
        found = true;
        break;
      }
      largest = std::max(largest, gap);
      cursor = s.entry.offset + s.entry.size;
    }
    if (!found) {
      const std::uint64_t gap = header_.region_size - cursor;
      if (gap < size)
        throw Error(Errc::no_space, who + ": no free gap of " + std::to_string(size) + " bytes (largest " +
                                        std::to_string(std::max(largest, gap)) + ")");
    }
    RegionEntry e{};
    std::memcpy(e.name, name.data(), name.size());
    e.kind = static_cast<std::uint32_t>(kind);
    e.state = rlayout::kStateFree;  // committed below
    e.offset = cursor;
    e.size = size;
    e.generation = table[index].generation + 1;
    e.owner = holder_token();
    e.owner_start = process_start();
    std::uint64_t w[rlayout::kEntryWords], was[rlayout::kEntryWords];
    std::memcpy(w, &e, sizeof w);
    std::memcpy(was, &table[index], sizeof was);
    // SYNC POINT: relaxed: the slot is free (its other words mean nothing) until the release
    // CAS of its state below commits them.
    for (std::size_t k = 0; k < rlayout::kEntryWords; ++k)
      if (k != rlayout::kKindStateWord) lk.put(index, k, was[k], w[k], std::memory_order_relaxed, "creating an entry");
    if (g_test_hook != nullptr) g_test_hook(HookPoint::locked);
    // SYNC POINT: commits the entry (release: its fields before its state); pairs with current().
    lk.put(index, rlayout::kKindStateWord, was[rlayout::kKindStateWord],
           rlayout::kind_state(e.kind, rlayout::kStateCreating), std::memory_order_release, "creating an entry");
    slot.index = index;
    slot.entry = shmlink::RegionEntry{};
    slot.entry.name = std::string(name);
    slot.entry.kind = kind;
    slot.entry.state = EntryState::creating;
    slot.entry.offset = e.offset;
    slot.entry.size = e.size;
    slot.entry.generation = e.generation;
    slot.entry.owner = e.owner;
  }
  if (g_test_hook != nullptr) g_test_hook(HookPoint::reserved);
  return slot;
}

namespace {
/// True when entry `s.index` is still the reservation `s` (creating, same generation).
bool same_reservation(std::span<std::byte> bytes, const Slot& s) noexcept {
  // SYNC POINT: relaxed: called under the lock, whose acquisition (acquire) ordered the previous
  // holders' stores before these loads.
  const std::uint64_t ks = entry_word(bytes, s.index, rlayout::kKindStateWord).load(std::memory_order_relaxed);
  const std::uint64_t gen = entry_word(bytes, s.index, rlayout::kGenerationWord).load(std::memory_order_relaxed);
  return ks == rlayout::kind_state(static_cast<std::uint32_t>(s.entry.kind), rlayout::kStateCreating) &&
         gen == s.entry.generation;
}
}  // namespace

void Directory::publish(const Slot& slot) {
  Lock lk(*this);
  if (!same_reservation(bytes_, slot))
    throw Error(Errc::replaced, "region " + what_ + ": entry " + std::to_string(slot.index) + " (" +
                                    quote_name(slot.entry.name) + ") was freed while being created");
  const auto kind = static_cast<std::uint32_t>(slot.entry.kind);
  // SYNC POINT: the channel's bytes (laid out before this call) happen-before an opener that
  // finds the entry ready (its snapshot's acquire fence and the channel's own version acquire).
  lk.put(slot.index, rlayout::kKindStateWord, rlayout::kind_state(kind, rlayout::kStateCreating),
         rlayout::kind_state(kind, rlayout::kStateReady), std::memory_order_release, "publishing an entry");
}

void Directory::abandon(const Slot& slot) noexcept {
  try {
    Lock lk(*this);
    // SYNC POINT: relaxed: under the lock (its acquire ordered the previous holders' stores).
    const std::uint64_t owner = entry_word(bytes_, slot.index, rlayout::kOwnerWord).load(std::memory_order_relaxed);
    if (!same_reservation(bytes_, slot)) return;
    if (owner != holder_token()) {  // a forked child's copy of its parent's reservation
      detail::log(LogLevel::warn, "region " + what_ + ": not abandoning entry " + std::to_string(slot.index) + " (" +
                                      quote_name(slot.entry.name) + "): it was reserved by " + token_text(owner) +
                                      ", not by this process (" + token_text(holder_token()) + ")");
      return;
    }
    lk.release_slot(slot.index, "abandoning an entry");
  } catch (const std::exception& e) {
    detail::log(LogLevel::warn, std::string(e.what()) + " (leaving the entry to recovery)");
  } catch (...) {
    detail::log(LogLevel::warn, "region " + what_ + ": abandoning entry " + std::to_string(slot.index) +
                                    " failed (leaving it to recovery)");
  }
}

bool Directory::remove(std::string_view name) {
  Lock lk(*this);
  std::vector<RegionEntry> table = raw_table();
  for (const Slot& s : validate(table, header_, what_)) {
    if (s.entry.name != name || s.entry.state == EntryState::removing) continue;
    if (std::optional<Error> busy = live_creator(s, table[s.index], "region " + what_ + ": removing " + quote_name(name)))
      throw *busy;
    if (!lk.retire_slot(s.index, "removing an entry"))
      detail::log(LogLevel::info, "region " + what_ + ": " + quote_name(name) +
                                      " removed; its bytes stay reserved while processes are attached");
    return true;
  }
  return false;
}

std::uint32_t Directory::attach(const Slot& slot) {
  Lock lk(*this);
  if (!current(slot.index, slot.entry.generation))
    throw Error(Errc::replaced, "region " + what_ + ": opening " + quote_name(slot.entry.name) +
                                    ": the entry was removed or reused meanwhile");
  return attach_locked(slot, lk.token());
}

bool Directory::remove_index(std::uint32_t index) {
  if (index >= header_.max_entries)
    throw Error(Errc::invalid_argument, "region " + what_ + ": removing entry " + std::to_string(index) +
                                            ": the table has " + std::to_string(header_.max_entries) + " entries");
  Lock lk(*this);
  // SYNC POINT: relaxed: under the lock (its acquire ordered the previous holders' stores).
  const std::uint64_t ks = entry_word(bytes_, index, rlayout::kKindStateWord).load(std::memory_order_relaxed);
  if (state_of(ks) == rlayout::kStateFree) return false;
  lk.release_slot(index, "removing an entry by index");
  detail::log(LogLevel::warn, "region " + what_ + ": entry " + std::to_string(index) + " freed by index");
  return true;
}

}  // namespace shmlink::rdir
