// SPDX-License-Identifier: MIT
// Regions: backings (a file on /dev/shm or hugetlbfs, a memfd, the caller's memory), the handle,
// entries and the PATH:NAME locator (include/shmlink/region.hpp; docs/design/region.md).
// Channels placed in a region: region_channels.cpp.
#include "region/region_access.hpp"

#include <shmlink/ivshmem.hpp>

#include "os/sys.hpp"

#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

namespace shmlink {

namespace {

constexpr long kHugetlbfsMagic = 0x958458f6;  // statfs f_type of hugetlbfs (linux/magic.h)
constexpr std::string_view kRegionSuffix = ".region.shm";

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// Size rules of a new region file or memfd.
void check_size(std::size_t size, const RegionOptions& options, const std::string& who) {
  if (size < rlayout::kMinRegionSize || !std::has_single_bit(size))
    throw Error(Errc::invalid_argument, who + ": size " + std::to_string(size) +
                                            " is not a power of two of at least 65536 bytes (QEMU's ivshmem needs a power of two)");
  if (options.max_entries < 1 || options.max_entries > rlayout::kMaxEntries)
    throw Error(Errc::invalid_argument, who + ": max_entries " + std::to_string(options.max_entries) +
                                            " is outside 1..16384");
  const std::uint64_t dir = rlayout::directory_bytes(static_cast<std::uint32_t>(options.max_entries));
  if (dir + rlayout::kEntryAlign > size)
    throw Error(Errc::invalid_argument, who + ": a directory of " + std::to_string(options.max_entries) +
                                            " entries (" + std::to_string(dir) + " bytes) leaves no room in " +
                                            std::to_string(size) + " bytes");
}

std::shared_ptr<Region::State> state_of_segment(Segment seg, std::string path, bool writable) {
  auto st = std::make_shared<Region::State>();
  struct stat sb {};
  if (::fstat(seg.fd(), &sb) != 0) os::throw_errno(errno, "inspecting region", path);
  st->dev = static_cast<std::uint64_t>(sb.st_dev);
  st->ino = static_cast<std::uint64_t>(sb.st_ino);
  st->fd = seg.fd();
  st->bytes = std::span<std::byte>(seg.data(), seg.size());
  st->segment = std::move(seg);
  st->path = std::move(path);
  st->writable = writable;
  st->same_kernel = true;
  return st;
}

void attach_directory(Region::State& st) {
  rdir::Header h = rdir::read_header(st.bytes, st.path);
  // A region that other kernels use (its formatter said so) makes every channel in it poll.
  if ((h.flags & rlayout::kFlagOtherKernels) != 0) st.same_kernel = false;
  st.dir = rdir::Directory(st.bytes.first(h.region_size), std::move(h), st.path, st.writable, !st.same_kernel);
}

}  // namespace

std::string region_path(std::string_view name_or_path) {
  if (ivshmem::is_locator(name_or_path)) return std::string(name_or_path);  // a device, not a file
  if (name_or_path.find('/') != std::string_view::npos) return std::string(name_or_path);
  std::string_view name = name_or_path;
  if (name.size() > kRegionSuffix.size() && name.substr(name.size() - kRegionSuffix.size()) == kRegionSuffix)
    name.remove_suffix(kRegionSuffix.size());
  check_channel_name("region", name, name_or_path, kMaxChannelName);
  return stream_directory() + "/" + std::string(name) + std::string(kRegionSuffix);
}

std::optional<std::pair<std::string, std::string>> split_region_locator(std::string_view text) {
  if (ivshmem::is_locator(text)) return ivshmem::split_channel_locator(text);  // "ivshmem:[DEVICE:]NAME"
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view path = text.substr(0, colon);
  const std::string_view name = text.substr(colon + 1);
  if (path.find('/') == std::string_view::npos || name.empty() || name.find('/') != std::string_view::npos)
    return std::nullopt;
  return std::make_pair(std::string(path), std::string(name));
}

// ---- the handle -----------------------------------------------------------------------------

Region::Region() noexcept = default;
Region::Region(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
Region::Region(Region&&) noexcept = default;
Region& Region::operator=(Region&&) noexcept = default;
Region::~Region() = default;

Region Region::create(const std::string& path_in, std::size_t size, OpenMode mode, const RegionOptions& options) {
  const std::string path = region_path(path_in);
  if (mode == OpenMode::OpenExisting) return open(path);
  if (mode == OpenMode::OpenOrCreate) {
    // Open, else create; a creator racing us wins and we open theirs. A file that keeps
    // appearing and vanishing (or a path that cannot be opened yet exists, such as a dangling
    // symbolic link) ends the loop after kOpenOrCreateTries rounds with an error.
    constexpr int kOpenOrCreateTries = 16;
    for (int round = 0; round < kOpenOrCreateTries; ++round) {
      try {
        Region r = open(path);
        if (r.size() != size)
          throw Error(Errc::layout, "opening region " + path + ": exists with " + std::to_string(r.size()) +
                                        " bytes, asked for " + std::to_string(size));
        return r;
      } catch (const Error& e) {
        if (e.errc() != Errc::not_found) throw;
      }
      try {
        return create(path, size, OpenMode::ExclusiveCreate, options);
      } catch (const Error& e) {
        if (e.errc() != Errc::exists) throw;
      }
    }
    throw Error(Errc::busy, "opening or creating region " + path + ": it was absent when opened and present when created, " +
                                std::to_string(kOpenOrCreateTries) + " times in a row (a dangling symbolic link, or "
                                "another process creating and removing it)");
  }
  const std::string who = "creating region " + path;
  check_channel_permissions(options.permissions, path);
  check_size(size, options, who);
  rdir::check_hugetlbfs_size(path, size, who);
  Segment seg = Segment::create_file(path, size, mode, options.permissions, [&](Segment& fresh) {
    rdir::format({fresh.data(), fresh.size()}, static_cast<std::uint32_t>(options.max_entries), path);
  });
  auto st = state_of_segment(std::move(seg), path, true);
  attach_directory(*st);
  return Region(std::move(st));
}

Region Region::create_memfd(const std::string& name, std::size_t size, const RegionOptions& options) {
  const std::string what = "memfd:" + name;
  check_size(size, options, "creating region " + what);
  Segment seg = Segment::create_memfd(name, size);
  rdir::format({seg.data(), seg.size()}, static_cast<std::uint32_t>(options.max_entries), what);
  auto st = state_of_segment(std::move(seg), what, true);
  attach_directory(*st);
  return Region(std::move(st));
}

Region Region::open(const std::string& path_in, bool writable) {
  if (ivshmem::is_locator(path_in)) return ivshmem::open_region(path_in, writable);  // a guest's BAR2 (src/ivshmem)
  const std::string path = region_path(path_in);
  Segment seg = Segment::open_file(path, writable);
  const std::size_t file_size = seg.size();
  auto st = state_of_segment(std::move(seg), path, writable);
  attach_directory(*st);
  if (st->dir.header().region_size != file_size)
    throw Error(Errc::layout, "opening region " + path + ": the file has " + std::to_string(file_size) +
                                  " bytes, its directory says " + std::to_string(st->dir.header().region_size));
  return Region(std::move(st));
}

Region Region::attach(std::span<std::byte> bytes, std::shared_ptr<const void> owner, std::string what,
                      bool same_kernel) {
  return detail::RegionAccess::attach(bytes, std::move(owner), std::move(what), same_kernel, true);
}

Region Region::format(std::span<std::byte> bytes, std::shared_ptr<const void> owner, std::string what,
                      bool same_kernel, const RegionOptions& options) {
  if (options.max_entries < 1 || options.max_entries > rlayout::kMaxEntries)
    throw Error(Errc::invalid_argument, "formatting region " + what + ": max_entries " +
                                            std::to_string(options.max_entries) + " is outside 1..16384");
  rdir::format(bytes, static_cast<std::uint32_t>(options.max_entries), what,
               same_kernel ? 0 : rlayout::kFlagOtherKernels);
  return attach(bytes, std::move(owner), std::move(what), same_kernel);
}

namespace {
const std::string kEmpty;
Region::State& need(const std::shared_ptr<Region::State>& st) {
  if (!st) throw Error(Errc::closed, "region: the handle is closed or moved-from");
  return *st;
}
}  // namespace

const std::string& Region::path() const noexcept { return state_ ? state_->path : kEmpty; }
std::size_t Region::size() const noexcept { return state_ ? state_->dir.header().region_size : 0; }
int Region::fd() const noexcept { return state_ ? state_->fd : -1; }
bool Region::same_kernel() const noexcept { return state_ ? state_->same_kernel : true; }

RegionWaitMode Region::wait_mode() const noexcept {
  if (!state_ || state_->same_kernel) return RegionWaitMode::futex;
  return state_->port ? RegionWaitMode::doorbell : RegionWaitMode::polling;
}

DoorbellStats Region::doorbell_stats() const noexcept {
  DoorbellStats s;
  if (!state_ || !state_->port) return s;
  const rdoor::Port& p = *state_->port;
  // Relaxed: racy counters, nothing is published through them.
  s.rings = p.rings.load(std::memory_order_relaxed);
  s.wakes_by_ring = p.wakes_by_ring.load(std::memory_order_relaxed);
  s.wakes_by_timeout = p.wakes_by_timeout.load(std::memory_order_relaxed);
  s.unregistered = p.unregistered.load(std::memory_order_relaxed);
  return s;
}

void Region::set_doorbell_fallback(std::chrono::milliseconds fallback) noexcept {
  if (!state_ || !state_->port) return;
  const std::int64_t ms = std::clamp<std::int64_t>(fallback.count(), 1, 3'600'000);
  state_->port->fallback_ns.store(ms * 1'000'000, std::memory_order_relaxed);  // relaxed: a setting
}

std::string Region::boot_id() const { return rdir::format_boot_id(need(state_).dir.header().boot_id); }
std::string Region::host_name() const { return need(state_).dir.header().host_name; }
bool Region::created_by_this_kernel() const noexcept {
  if (!state_) return false;
  return std::memcmp(state_->dir.header().boot_id, rdir::local_identity().boot_id.data(), 16) == 0;
}

bool Region::owner_is_local(const RegionEntry& entry) {
  return static_cast<std::uint32_t>(entry.owner >> 32) == rdir::local_identity().token_hash &&
         static_cast<std::uint32_t>(entry.owner) != 0;
}

std::vector<RegionEntry> Region::entries() const {
  std::vector<RegionEntry> out;
  for (rdir::Slot& s : need(state_).dir.snapshot()) out.push_back(std::move(s.entry));
  return out;
}

// ---- placements -----------------------------------------------------------------------------

namespace detail {

rdir::Directory& RegionAccess::directory(const Region& r) { return need(r.state_).dir; }
Region RegionAccess::attach(std::span<std::byte> bytes, std::shared_ptr<const void> owner, std::string what,
                            bool same_kernel, bool writable, std::shared_ptr<rdoor::Port> port) {
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % rlayout::kCacheLine != 0)
    throw Error(Errc::invalid_argument, "attaching region " + what + ": the memory is not 64-byte aligned");
  auto st = std::make_shared<Region::State>();
  st->owner = std::move(owner);
  st->bytes = bytes;
  st->path = std::move(what);
  st->writable = writable;
  st->same_kernel = same_kernel;
  attach_directory(*st);
  if (!st->same_kernel && st->writable) st->port = std::move(port);
  return Region(std::move(st));
}
const std::shared_ptr<Region::State>& RegionAccess::state(const Region& r) {
  need(r.state_);
  return r.state_;
}

namespace {
/// A writable handle's attachment to an entry (Directory::attach): detached when the last copy
/// of its placement goes, so that a removed entry's bytes return to the region only then.
struct Attachment {
  Attachment(std::shared_ptr<Region::State> state, rdir::Slot s, std::uint32_t a) : st(std::move(state)), slot(std::move(s)), index(a) {}
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;
  ~Attachment() { st->dir.detach(slot, index); }
  std::shared_ptr<Region::State> st;
  rdir::Slot slot;
  std::uint32_t index;
};

/// A companion entry reserved through Placement::sibling: abandoned on destruction unless published.
struct PendingEntry {
  PendingEntry(std::shared_ptr<Region::State> state, rdir::Slot reserved) : st(std::move(state)), slot(std::move(reserved)) {}
  PendingEntry(const PendingEntry&) = delete;
  PendingEntry& operator=(const PendingEntry&) = delete;
  ~PendingEntry() {
    if (!published.load(std::memory_order_relaxed)) st->dir.abandon(slot);
  }
  std::shared_ptr<Region::State> st;
  rdir::Slot slot;
  std::atomic<bool> published{false};
  std::shared_ptr<const void> attachment;  ///< the reserving handle's (allocate())
};
}  // namespace

Placement RegionAccess::placement(const std::shared_ptr<Region::State>& st, const rdir::Slot& slot) {
  Placement p;
  // The entry's last page is its attachment page, not the channel's (validate() keeps sizes
  // non-zero multiples of it).
  p.bytes = st->bytes.subspan(slot.entry.offset, slot.entry.size - rlayout::kAttachBytes);
  p.owner = st;
  p.name = slot.entry.name;
  p.path = st->path + ":" + slot.entry.name;
  p.dev = st->dev;
  p.ino = st->ino;
  p.offset = slot.entry.offset;
  p.fd = st->fd;
  p.writable = st->writable;
  p.same_kernel = st->same_kernel;
  p.still_current = [st, index = slot.index, gen = slot.entry.generation]() noexcept {
    return st->dir.current(index, gen);
  };
  // The entry's generation word: removing the entry (or reusing its slot) changes it.
  p.current_word = reinterpret_cast<std::uint64_t*>(st->bytes.data() + rlayout::entry_offset(slot.index) +
                                                    offsetof(rlayout::RegionEntry, generation));
  p.current_value = slot.entry.generation;
  if (st->port) p.doorbell = rdoor::make_doorbell(st->port, st->bytes, st->dir.header().max_entries, slot.index, st);
  p.sibling = [st](const std::string& name, std::size_t create_bytes) -> std::optional<Placement> {
    if (std::optional<rdir::Slot> found = st->dir.find(name)) {
      if (found->entry.state != EntryState::ready) return std::nullopt;
      if (found->entry.kind != ChannelKind::stream)
        throw Error(Errc::layout, "region " + st->path + ": entry '" + escape_name(name) + "' is not a stream");
      return attached(st, *found, true);
    }
    if (create_bytes == 0) return std::nullopt;
    Reserved r = allocate(st, name, ChannelKind::stream, create_bytes);
    // The reservation frees itself when the last copy of the placement goes (the channel laid
    // out in it closed, or its creation threw) unless publish ran.
    auto pending = std::make_shared<PendingEntry>(st, r.slot);
    pending->attachment = std::move(r.where.owner);
    r.where.owner = pending;
    r.where.publish = [pending] {
      pending->st->dir.publish(pending->slot);
      pending->published.store(true, std::memory_order_relaxed);  // SYNC POINT: relaxed: read by the last owner's destructor
    };
    return std::move(r.where);
  };
  return p;
}

Reserved RegionAccess::allocate(const std::shared_ptr<Region::State>& st, std::string_view name, ChannelKind kind,
                                std::size_t bytes, bool replace) {
  Reserved r;
  r.slot = st->dir.reserve(name, kind, bytes + rlayout::kAttachBytes, replace);  // and the attachment page
  // Zero the entry (it may hold a removed channel) outside the lock: only its creator sees it.
  std::memset(st->bytes.data() + r.slot.entry.offset, 0, r.slot.entry.size);
  try {
    r.where = attached(st, r.slot, true);
  } catch (...) {
    st->dir.abandon(r.slot);
    throw;
  }
  return r;
}

Placement RegionAccess::attached(const std::shared_ptr<Region::State>& st, const rdir::Slot& slot, bool writable) {
  Placement p = placement(st, slot);
  // Read-only handles never write, so they keep no bytes reserved (and cannot take the lock).
  if (!writable || !st->writable) return p;
  const std::uint32_t a = st->dir.attach(slot);
  p.owner = std::make_shared<Attachment>(st, slot, a);
  return p;
}

std::optional<rdir::Slot> RegionAccess::find(const std::shared_ptr<Region::State>& st, std::string_view name) {
  return st->dir.find(name);
}

}  // namespace detail

namespace rdir {

void check_hugetlbfs_size(const std::string& path, std::size_t size, const std::string& who) {
  struct statfs fs {};
  if (::statfs(dir_of(path).c_str(), &fs) != 0 || static_cast<long>(fs.f_type) != kHugetlbfsMagic) return;
  const auto page = static_cast<std::size_t>(fs.f_bsize);
  if (page == 0 || size % page != 0)
    throw Error(Errc::invalid_argument, who + ": size " + std::to_string(size) +
                                            " is not a multiple of the huge page size " + std::to_string(page) +
                                            " of this hugetlbfs");
}

}  // namespace rdir

}  // namespace shmlink
