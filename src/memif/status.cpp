// SPDX-License-Identifier: MIT
// The memif status segment: the writer a Socket uses (status.hpp) and the public readers
// (include/shmlink/memif.hpp "Status"; layout and seqlock protocol: status_layout.hpp).
#include "memif/status.hpp"
#include "os/clock.hpp"

#include "os/log_internal.hpp"
#include "os/sys.hpp"

#include <shmlink/memif.hpp>
#include <shmlink/channel.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

namespace shmlink::memif {

namespace {

using status::InterfaceRecord;
using status::StatusHeader;

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint8_t>::is_always_lock_free);

/// Shared u32 / u64 / u8 at `p` (naturally aligned: the mapping is page aligned, the header
/// 512 bytes and every record 384 bytes long, and the fields sit at their own alignment).
std::atomic_ref<std::uint32_t> u32_at(const std::uint8_t* p) noexcept {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(const_cast<std::uint8_t*>(p)));
}
std::atomic_ref<std::uint64_t> u64_at(const std::uint8_t* p) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(const_cast<std::uint8_t*>(p)));
}
std::atomic_ref<std::uint8_t> u8_at(const std::uint8_t* p) noexcept {
  return std::atomic_ref<std::uint8_t>(*const_cast<std::uint8_t*>(p));
}

/// This process's start time in clock ticks after boot (/proc/self/stat field 22); 0 if unknown.
std::uint64_t self_start_time() noexcept {
  try {
    std::ifstream f("/proc/self/stat");
    std::string line;
    if (!std::getline(f, line)) return 0;
    // Field 2 (comm) is parenthesised and may hold spaces: count fields after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(line.substr(close + 1));
    std::string field;
    for (int k = 3; k <= 22; ++k) {
      if (!(rest >> field)) return 0;
    }
    return std::stoull(field);
  } catch (...) {
    return 0;
  }
}

/// Logs why no status file could be created: warn the first time in this process, debug after.
void log_no_status(const std::string& why) noexcept {
  static std::atomic<bool> warned{false};
  const LogLevel level = warned.exchange(true) ? LogLevel::debug : LogLevel::warn;
  shmlink::detail::log(level, why);
}

/// The NUL-terminated text of a fixed field of at most `size` bytes.
std::string field_text(const char* p, std::size_t size) { return std::string(p, strnlen(p, size)); }

/// A header field that is written once before `version` (a plain copy).
template <class T>
T plain_at(const std::uint8_t* base, std::size_t offset) noexcept {
  T v;
  std::memcpy(&v, base + offset, sizeof v);
  return v;
}

}  // namespace

// ---- writer -----------------------------------------------------------------------------------

namespace detail {

void copy_field(char* dst, std::size_t size, std::string_view text) noexcept {
  const std::size_t n = std::min(text.size(), size - 1);
  std::memcpy(dst, text.data(), n);
  std::memset(dst + n, 0, size - n);
}

StatusWriter::~StatusWriter() { close(); }

bool StatusWriter::open(const std::string& directory, std::string_view socket, std::string_view app,
                        std::uint8_t role) noexcept {
  close();
  static std::atomic<unsigned> counter{0};
  std::string path;
  try {
    const pid_t pid = ::getpid();
    const std::uint64_t start = self_start_time();
    const std::int64_t now = os::now_ns(CLOCK_REALTIME);
    // A name can be taken by a stale file of an earlier process that had our pid (or by a
    // process of another pid namespace sharing the directory): skip to the next k.
    for (int attempt = 0;; ++attempt) {
      path = directory + "/" + std::to_string(pid) + "-" + std::to_string(counter.fetch_add(1)) + status::kSuffix;
      try {
        seg_ = Segment::create_file(path, status::file_bytes(status::kCapacity), OpenMode::ExclusiveCreate, 0644,
                                    [&](Segment& fresh) {
          // The lock is taken before the file is linked under its name, so a reader never
          // finds a published file of a live owner unlocked.
          if (::flock(fresh.fd(), LOCK_EX | LOCK_NB) != 0) os::throw_errno(errno, "locking", path);
          auto* base = reinterpret_cast<std::uint8_t*>(fresh.data());
          auto* h = reinterpret_cast<StatusHeader*>(base);  // zero-filled, invisible to others
          std::memcpy(h->magic, status::kMagic, sizeof h->magic);
          h->header_bytes = sizeof(StatusHeader);
          h->record_bytes = sizeof(InterfaceRecord);
          h->capacity = status::kCapacity;
          h->pid = static_cast<std::int32_t>(pid);
          h->role = role;
          h->start_time_ticks = start;
          h->created_ns = now;
          copy_field(h->socket, sizeof h->socket, socket);
          copy_field(h->app_name, sizeof h->app_name, app);
          // SYNC POINT: release; pairs with the reader's acquire load of version in
          // read_socket_status(): the header above is complete once version reads 1.
          u32_at(base + offsetof(StatusHeader, version)).store(status::kVersion, std::memory_order_release);
        });
        break;
      } catch (const Error& e) {
        if (e.errc() != Errc::exists || attempt >= 63) throw;
      }
    }
    path_ = path;
    owner_ = pid;
    taken_.assign(status::kCapacity, false);
    return true;
  } catch (const std::exception& e) {
    seg_.close();
    path_.clear();
    try {
      log_no_status("memif socket " + std::string(socket) +
                    ": no status file, so `shmlink ls` will not show it: " + e.what());
    } catch (...) {
      // out of memory for the message: the socket works on without a status file all the same
    }
    return false;
  } catch (...) {
    seg_.close();
    path_.clear();
    return false;
  }
}

void StatusWriter::close() noexcept {
  if (!seg_.valid()) return;
  // Unlink first, then drop the lock (closing the fd): a reader that opened the file before the
  // unlink may then see it unlocked, which is right: its socket is gone.
  if (::getpid() == owner_) ::unlink(path_.c_str());
  seg_.close();
  path_.clear();
  taken_.clear();
}

std::uint8_t* StatusWriter::record_at(int slot) const noexcept {
  return reinterpret_cast<std::uint8_t*>(seg_.data()) + sizeof(StatusHeader) +
         static_cast<std::size_t>(slot) * sizeof(InterfaceRecord);
}

void StatusWriter::set_role(std::uint8_t role) noexcept {
  if (!is_open()) return;
  // Relaxed: a display value; nothing is read through it.
  u8_at(reinterpret_cast<std::uint8_t*>(seg_.data()) + offsetof(StatusHeader, role)).store(role, std::memory_order_relaxed);
}

void StatusWriter::set_overflow(std::uint32_t count) noexcept {
  if (!is_open()) return;
  u32_at(reinterpret_cast<std::uint8_t*>(seg_.data()) + offsetof(StatusHeader, overflow))
      .store(count, std::memory_order_relaxed);
}

int StatusWriter::acquire() noexcept {
  if (!is_open()) return -1;
  for (std::size_t k = 0; k < taken_.size(); ++k) {
    if (!taken_[k]) {
      taken_[k] = true;
      return static_cast<int>(k);
    }
  }
  return -1;
}

void StatusWriter::release(int slot) noexcept {
  if (!is_open() || slot < 0 || static_cast<std::size_t>(slot) >= taken_.size()) return;
  InterfaceRecord free_record{};
  free_record.updated_ns = os::now_ns(CLOCK_REALTIME);
  write(slot, free_record);
  taken_[static_cast<std::size_t>(slot)] = false;
}

void StatusWriter::write(int slot, const InterfaceRecord& record) noexcept {
  if (!is_open() || slot < 0 || static_cast<std::size_t>(slot) >= taken_.size()) return;
  std::uint8_t* p = record_at(slot);
  auto seq = u32_at(p + offsetof(InterfaceRecord, seq));
  const std::uint32_t s = seq.load(std::memory_order_relaxed);  // only this thread writes it
  seq.store(s + 1, std::memory_order_relaxed);                   // odd: being written
  // SYNC POINT: release fence; pairs with the reader's acquire fence after its payload loads: a
  // reader that sees any of the stores below sees the odd seq in its second load (and retries).
  std::atomic_thread_fence(std::memory_order_release);
  const auto* src = reinterpret_cast<const std::uint8_t*>(&record);
  for (std::size_t w = 0; w < status::kPayloadWords; ++w) {
    const std::size_t off = status::kPayloadOffset + 8 * w;
    std::uint64_t v;
    std::memcpy(&v, src + off, sizeof v);
    u64_at(p + off).store(v, std::memory_order_relaxed);
  }
  // SYNC POINT: release; pairs with the reader's acquire load of seq: a reader that loads this
  // even value sees the whole payload above.
  seq.store(s + 2, std::memory_order_release);
  auto used = u32_at(reinterpret_cast<std::uint8_t*>(seg_.data()) + offsetof(StatusHeader, used));
  const auto need = static_cast<std::uint32_t>(slot + 1);
  // SYNC POINT: release; pairs with the reader's acquire load of used: records below it were
  // written at least once (a reader still checks each record's seq and in_use).
  if (used.load(std::memory_order_relaxed) < need) used.store(need, std::memory_order_release);
}

}  // namespace detail

// ---- readers ----------------------------------------------------------------------------------

const char* role_name(Role role) noexcept { return role == Role::master ? "master" : "slave"; }

const char* link_state_name(LinkState state) noexcept {
  switch (state) {
    case LinkState::idle: return "idle";
    case LinkState::listening: return "listening";
    case LinkState::connecting: return "connecting";
    case LinkState::handshake: return "handshake";
    case LinkState::connected: return "connected";
  }
  return "unknown";
}

namespace {

/// Copies record `rec` under its seqlock into `out`; false when it stayed mid-update for every
/// try (the last copy is in `out` then).
bool copy_record(const std::uint8_t* rec, InterfaceRecord& out) noexcept {
  auto* dst = reinterpret_cast<std::uint8_t*>(&out);
  const auto seq = u32_at(rec + offsetof(InterfaceRecord, seq));
  for (int attempt = 0; attempt < 2000; ++attempt) {
    if (attempt > 1000) {
      timespec ts{0, 10'000};  // the writer may be descheduled inside: give it time (<= ~20 ms)
      ::nanosleep(&ts, nullptr);
    } else if (attempt > 16) {
      ::sched_yield();
    }
    // SYNC POINT: acquire; pairs with the writer's release store of the even seq.
    const std::uint32_t s1 = seq.load(std::memory_order_acquire);
    for (std::size_t w = 0; w < status::kPayloadWords; ++w) {
      const std::size_t off = status::kPayloadOffset + 8 * w;
      const std::uint64_t v = u64_at(rec + off).load(std::memory_order_relaxed);
      std::memcpy(dst + off, &v, sizeof v);
    }
    // SYNC POINT: acquire fence; pairs with the writer's release fence after its odd store.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint32_t s2 = seq.load(std::memory_order_relaxed);
    if (s1 == s2 && (s1 & 1U) == 0) return true;
  }
  return false;
}

/// Converts a validated record; throws layout naming the file and record for bad codes.
InterfaceStatus to_status(const InterfaceRecord& r, const std::string& file, std::uint32_t index) {
  auto bad = [&](const char* field, unsigned value) {
    return Error(Errc::layout, "reading memif status file " + file + ": record " + std::to_string(index) + " has " +
                                   field + " " + std::to_string(value) + ", which is not a known value");
  };
  InterfaceStatus s;
  s.id = r.id;
  if (r.role == status::kRoleMaster) s.role = Role::master;
  else if (r.role == status::kRoleSlave) s.role = Role::slave;
  else throw bad("role", r.role);
  if (r.mode > 2) throw bad("mode", r.mode);
  s.mode = static_cast<InterfaceMode>(r.mode);
  if (r.state > status::kStateConnected) throw bad("state", r.state);
  s.state = static_cast<LinkState>(r.state);
  s.name = field_text(r.name, sizeof r.name);
  s.peer_name = field_text(r.peer_name, sizeof r.peer_name);
  s.peer_app = field_text(r.peer_app, sizeof r.peer_app);
  s.last_disconnect = field_text(r.last_disconnect, sizeof r.last_disconnect);
  s.connects = r.connects;
  s.tx_queues = r.tx_queues;
  s.rx_queues = r.rx_queues;
  s.ring_size = r.ring_size;
  s.buffer_size = r.buffer_size;
  s.tx_packets = r.tx_packets;
  s.tx_bytes = r.tx_bytes;
  s.rx_packets = r.rx_packets;
  s.rx_bytes = r.rx_bytes;
  s.bad_descriptors = r.bad_descriptors;
  s.dropped_packets = r.dropped_packets;
  s.clamped_jumps = r.clamped_jumps;
  s.ring_full = r.ring_full;
  s.interrupts_sent = r.interrupts_sent;
  s.updated_ns = r.updated_ns;
  return s;
}

/// True when `name` is a status file name: longer than the suffix, ending in it, no leading
/// dot (temporaries are `.<name>.memif.shm.XXXXXX` and never end in the suffix anyway).
bool is_status_name(const std::string& name) noexcept {
  const std::string_view suffix = status::kSuffix;
  return name.size() > suffix.size() && name[0] != '.' &&
         std::string_view(name).substr(name.size() - suffix.size()) == suffix;
}

/// The status files of `directory` (resolved), sorted. @throws Error naming the directory.
std::vector<std::string> status_files(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(directory, ec);
  auto fail = [&] {
    return Error(errc_from_errno(ec.value()), "listing memif status files in " + directory + ": " + ec.message());
  };
  if (ec) throw fail();
  std::vector<std::string> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!is_status_name(it->path().filename().string())) continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    out.push_back(it->path().string());
  }
  if (ec) throw fail();
  std::sort(out.begin(), out.end());
  return out;
}

std::string resolve(const std::string& directory) { return directory.empty() ? stream_directory() : directory; }

}  // namespace

namespace {

/// Opens a status file for reading without ever blocking or following a link: O_NONBLOCK (a
/// FIFO put in the directory under a status file's name returns at once instead of waiting for
/// a writer) and O_NOFOLLOW; then refuses anything but a regular file.
/// @return the descriptor, or an invalid one when the file is absent and `absent_ok`.
/// @throws Error layout naming the file for a link or a non-regular file; the errno's
///         condition for other failures.
os::UniqueFd open_status_file(const std::string& file, struct stat& st, bool absent_ok) {
  const int raw = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
  if (raw < 0) {
    const int err = errno;
    if (err == ENOENT && absent_ok) return os::UniqueFd();
    if (err == ELOOP)
      throw Error(Errc::layout, "opening memif status file " + file + ": it is a symbolic link, which is not followed");
    os::throw_errno(err, "opening memif status file", file);
  }
  os::UniqueFd fd(raw);
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting memif status file", file);
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::layout, "reading memif status file " + file + ": it is " + file_type_name(st.st_mode) +
                                  ", not a regular file");
  return fd;
}

}  // namespace

std::optional<std::uint64_t> status::checked_file_bytes(std::uint64_t header_bytes, std::uint64_t record_bytes,
                                                        std::uint64_t capacity) noexcept {
  std::uint64_t records = 0;
  std::uint64_t total = 0;
  if (__builtin_mul_overflow(record_bytes, capacity, &records) || __builtin_add_overflow(records, header_bytes, &total))
    return std::nullopt;
  return total;
}

SocketStatus read_socket_status(const std::string& file) {
  const std::string what = "reading memif status file " + file;
  struct stat st {};
  const os::UniqueFd fd = open_status_file(file, st, false);
  const auto size = static_cast<std::uint64_t>(st.st_size < 0 ? 0 : st.st_size);
  if (size < sizeof(StatusHeader))
    throw Error(Errc::layout, what + ": the file is " + std::to_string(size) + " bytes, smaller than the " +
                                  std::to_string(sizeof(StatusHeader)) + "-byte header");
  const Mapping map(fd.get(), static_cast<std::size_t>(size), false, file);
  const auto* base = reinterpret_cast<const std::uint8_t*>(map.data());
  if (std::memcmp(base, status::kMagic, sizeof status::kMagic) != 0)
    throw Error(Errc::layout, what + ": no SHMLMIF magic (not a shmlink memif status file)");
  // SYNC POINT: acquire; pairs with the creator's release store of version (StatusWriter::open):
  // every header field written before it is visible.
  const std::uint32_t version = u32_at(base + offsetof(StatusHeader, version)).load(std::memory_order_acquire);
  if (version != status::kVersion)
    throw Error(Errc::layout, what + ": layout version " + std::to_string(version) + " is not " +
                                  std::to_string(status::kVersion));
  // Written once before version: plain copies (role, used and overflow change: atomics below).
  StatusHeader h{};
  h.header_bytes = plain_at<std::uint32_t>(base, offsetof(StatusHeader, header_bytes));
  h.record_bytes = plain_at<std::uint32_t>(base, offsetof(StatusHeader, record_bytes));
  h.capacity = plain_at<std::uint32_t>(base, offsetof(StatusHeader, capacity));
  h.pid = plain_at<std::int32_t>(base, offsetof(StatusHeader, pid));
  h.start_time_ticks = plain_at<std::uint64_t>(base, offsetof(StatusHeader, start_time_ticks));
  h.created_ns = plain_at<std::int64_t>(base, offsetof(StatusHeader, created_ns));
  std::memcpy(h.socket, base + offsetof(StatusHeader, socket), sizeof h.socket);
  std::memcpy(h.app_name, base + offsetof(StatusHeader, app_name), sizeof h.app_name);
  if (h.header_bytes != sizeof(StatusHeader) || h.record_bytes != sizeof(InterfaceRecord))
    throw Error(Errc::layout, what + ": header/record sizes " + std::to_string(h.header_bytes) + "/" +
                                  std::to_string(h.record_bytes) + " are not " + std::to_string(sizeof(StatusHeader)) +
                                  "/" + std::to_string(sizeof(InterfaceRecord)));
  if (h.capacity > status::kMaxCapacity)
    throw Error(Errc::layout, what + ": capacity " + std::to_string(h.capacity) + " is over " +
                                  std::to_string(status::kMaxCapacity) + " records");
  // Checked arithmetic on the file's own fields (not the constants they were compared with):
  // what is mapped and read below must lie inside the file whatever the fields say.
  const std::optional<std::uint64_t> need = status::checked_file_bytes(h.header_bytes, h.record_bytes, h.capacity);
  if (!need || size < *need)
    throw Error(Errc::layout, what + ": the file is " + std::to_string(size) + " bytes but its header describes " +
                                  (need ? std::to_string(*need) : std::string("more than 2^64")) + " (" +
                                  std::to_string(h.capacity) + " records of " + std::to_string(h.record_bytes) +
                                  " bytes after a " + std::to_string(h.header_bytes) + "-byte header)");
  const std::uint8_t role = u8_at(base + offsetof(StatusHeader, role)).load(std::memory_order_relaxed);
  if (role > status::kRoleSlave)
    throw Error(Errc::layout, what + ": socket role " + std::to_string(role) + " is not 0, 1 or 2");

  SocketStatus s;
  s.file = file;
  // The owner holds LOCK_EX for its whole life: a shared lock granted now means it is gone.
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    s.alive = false;
    ::flock(fd.get(), LOCK_UN);
  } else {
    // EWOULDBLOCK: the owner holds it. Any other failure (ENOLCK, ...) cannot tell: call it
    // alive, so that nothing removes the file on a guess.
    s.alive = true;
  }
  s.pid = h.pid;
  s.start_time_ticks = h.start_time_ticks;
  s.socket = field_text(h.socket, sizeof h.socket);
  s.app_name = field_text(h.app_name, sizeof h.app_name);
  if (role == status::kRoleMaster) s.role = Role::master;
  else if (role == status::kRoleSlave) s.role = Role::slave;
  s.created_ns = h.created_ns;
  s.overflow = u32_at(base + offsetof(StatusHeader, overflow)).load(std::memory_order_relaxed);
  // SYNC POINT: acquire; pairs with the writer's release store of used.
  const std::uint32_t used =
      std::min(u32_at(base + offsetof(StatusHeader, used)).load(std::memory_order_acquire), h.capacity);
  for (std::uint32_t k = 0; k < used; ++k) {
    InterfaceRecord r{};
    const bool whole = copy_record(base + sizeof(StatusHeader) + std::uint64_t{k} * sizeof(InterfaceRecord), r);
    if (r.in_use == 0) continue;
    InterfaceStatus is = to_status(r, file, k);
    is.torn = !whole;
    s.interfaces.push_back(std::move(is));
  }
  return s;
}

std::vector<SocketStatus> list_socket_status(const std::string& directory) {
  std::vector<SocketStatus> out;
  for (const std::string& file : status_files(resolve(directory))) {
    try {
      out.push_back(read_socket_status(file));
    } catch (const Error& e) {
      if (e.errc() == Errc::not_found) continue;  // removed since the listing
      SocketStatus s;
      s.file = file;
      s.error = e.what();
      s.error_code = e.errc();
      out.push_back(std::move(s));
    } catch (const std::exception& e) {
      SocketStatus s;
      s.file = file;
      s.error = "reading memif status file " + file + ": " + e.what();
      s.error_code = Errc::system;
      out.push_back(std::move(s));
    }
  }
  return out;
}

bool remove_socket_status_if_stale(const std::string& file) {
  struct stat st {};
  os::UniqueFd fd;
  try {
    fd = open_status_file(file, st, true);
  } catch (const Error& e) {
    if (e.errc() == Errc::layout) return false;  // a link or not a regular file: left alone
    throw;
  }
  if (!fd) return false;  // gone already
  char magic[sizeof status::kMagic] = {};
  if (::pread(fd.get(), magic, sizeof magic, 0) != static_cast<ssize_t>(sizeof magic) ||
      std::memcmp(magic, status::kMagic, sizeof magic) != 0)
    return false;  // not a status file: left alone
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) return false;  // the owner holds it (or unknown)
  // Still the same file at that name? (A new file under the same name would be a new owner's.)
  struct stat now {};
  if (::stat(file.c_str(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) return false;
  if (::unlink(file.c_str()) != 0) {
    if (errno == ENOENT) return false;
    os::throw_errno(errno, "removing stale memif status file", file);
  }
  return true;
}

std::size_t remove_stale_socket_status(const std::string& directory) {
  std::size_t n = 0;
  for (const std::string& file : status_files(resolve(directory)))
    if (remove_socket_status_if_stale(file)) ++n;
  return n;
}

}  // namespace shmlink::memif
