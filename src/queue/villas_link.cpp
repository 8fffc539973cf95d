// SPDX-License-Identifier: MIT
// The VILLASnode v1.x shmem handshake and data path of the Interface (src/queue/villas_link.hpp;
// docs/design/villas.md): villas-node's rendezvous, with a deadline on every wait, stale posts
// and regions refused, and the peer's processes found for liveness.
#include "queue/villas_link.hpp"

#include "os/clock.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"
#include "os/sys.hpp"
#include "queue/villas_layout.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace shmlink::villas {

namespace {

/// Where POSIX shared-memory objects (and named semaphores, as "sem.<name>") live.
constexpr const char* kShmDir = "/dev/shm";
/// Most peer processes watched (a peer plus a few inspecting tools).
constexpr std::size_t kMaxPeerPids = 16;
/// How long a region that fails validation is re-read before the failure is believed: a post
/// consumed while a new peer is still laying its region out (a stale post) meets a half-built one.
constexpr std::chrono::milliseconds kLayoutGrace{250};
/// Bound on draining stale posts of our own semaphore (a semaphore's value fits far below).
constexpr int kMaxDrain = 1 << 20;
/// How long attach waits, when no process visibly maps the peer's posted region, for the peer's
/// semaphore name to disappear (a live peer unlinks it right after mapping our region) before
/// the post is judged a dead peer's leftover; kMinUnlinkGrace even past attach_timeout.
constexpr std::chrono::milliseconds kUnlinkGrace{1000};
constexpr std::chrono::milliseconds kMinUnlinkGrace{100};

// Built by appends: g++ 12 at -O3 misreads `"'" + std::string(s)` as an overlapping memcpy
// (-Werror=restrict, a known false positive of its inlined std::string::insert).
std::string quote(std::string_view s) {
  std::string r;
  r.reserve(s.size() + 2);
  r += '\'';
  r.append(s);
  r += '\'';
  return r;
}

std::string shm_path(const std::string& object) { return std::string(kShmDir) + object; }

std::string sem_path(const std::string& object) { return std::string(kShmDir) + "/sem." + object.substr(1); }

std::string fmt_seconds(std::int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ns) / 1e9);
  return buf;
}

// ---- regions of this process, so that two sides in one process (threads) see each other ----
// A region only this process maps is otherwise taken for a dead peer's leftovers. Entries carry
// the pid that created them: a forked child inherits the list but not the regions (they are
// MADV_DONTFORK), so the parent's entries are not its own.
struct OwnEntry {
  pid_t pid;
  dev_t dev;
  ino_t ino;
};
std::mutex g_own_mutex;
std::vector<OwnEntry>& own_regions() {
  static std::vector<OwnEntry> list;
  return list;
}
void register_own(dev_t dev, ino_t ino) {
  const std::lock_guard lock(g_own_mutex);
  own_regions().push_back({os::current_pid(), dev, ino});
}
void unregister_own(dev_t dev, ino_t ino) noexcept {
  const std::lock_guard lock(g_own_mutex);
  const pid_t self = os::current_pid();
  auto& l = own_regions();
  const auto it = std::find_if(l.begin(), l.end(), [&](const OwnEntry& e) { return e.pid == self && e.dev == dev && e.ino == ino; });
  if (it != l.end()) l.erase(it);
}
bool is_own(dev_t dev, ino_t ino) noexcept {
  const std::lock_guard lock(g_own_mutex);
  const pid_t self = os::current_pid();
  const auto& l = own_regions();
  return std::any_of(l.begin(), l.end(), [&](const OwnEntry& e) { return e.pid == self && e.dev == dev && e.ino == ino; });
}

/// The path that names the file open on `fd` itself (stat follows it to that inode, whatever
/// the name now points at): a scan by it cannot meet another inode under the same name.
std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

/// Whether `path` now names another file than `st` (one we opened by that name earlier). A name
/// that is gone is not a replacement: its owner removed it when it closed.
bool replaced(const std::string& path, const struct stat& st) noexcept {
  struct stat now {};
  return ::stat(path.c_str(), &now) == 0 && (now.st_dev != st.st_dev || now.st_ino != st.st_ino);
}

/// Other processes than this one that map or hold the file open on `fd`.
std::vector<int> other_users(int fd, int* uninspectable) {
  std::vector<int> users = processes_using(fd_path(fd), uninspectable);
  std::erase(users, static_cast<int>(os::current_pid()));
  return users;
}

/// Makes a mapping not inherited by fork(): a child never holds our regions (so that it is not
/// taken for a peer, and cannot write into them by accident). @throws Error system naming `what`.
void dont_fork(const Mapping& m, const std::string& label, const std::string& what) {
  if (::madvise(m.data(), m.size(), MADV_DONTFORK) != 0) os::throw_errno(errno, label + ": madvise(MADV_DONTFORK) on", what);
}

int pidfd_open(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // O_CLOEXEC by default
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

std::string object_name(std::string_view name, std::string_view role) {
  const std::string what = std::string(role) + " name " + quote(name);
  if (name.empty()) throw Error(Errc::invalid_argument, "VILLAS shmem " + std::string(role) + " name is empty");
  std::string n;
  if (name.front() != '/') n += '/';  // appends, not "/" + string: see quote()
  n.append(name);
  if (n == "/" || n == "/." || n == "/..")
    throw Error(Errc::invalid_argument, "VILLAS shmem " + what + " does not name a shared-memory object");
  if (n.find('/', 1) != std::string::npos)
    throw Error(Errc::invalid_argument, "VILLAS shmem " + what +
                                            ": a POSIX shared-memory name has no '/' after the leading one");
  for (const char c : n)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw Error(Errc::invalid_argument, "VILLAS shmem " + std::string(role) + " name has a control character");
  if (n.size() > kMaxObjectName)
    throw Error(Errc::name_too_long, "VILLAS shmem " + what + " is over " + std::to_string(kMaxObjectName) + " bytes");
  return n;
}

Link::Link(LinkSpec spec) : spec_(std::move(spec)) { loopback_ = spec_.out == spec_.in; }

Link::~Link() { unmap(); }

std::string Link::in_path() const { return shm_path(spec_.in); }

void Link::take_over_stale(const std::string& path, const std::string& where) {
  // Open the existing file, then judge THAT inode: a scan by name could meet another file put
  // under the name meanwhile.
  os::UniqueFd old(::shm_open(spec_.out.c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (!old) {
    if (errno == ENOENT) return;  // gone meanwhile: create again
    os::throw_errno(errno, spec_.label + ": opening the existing VILLAS region", quote(path));
  }
  struct stat st {};
  if (::fstat(old.get(), &st) != 0) os::throw_errno(errno, spec_.label + ": examining", quote(path));
  if (is_own(st.st_dev, st.st_ino))
    throw Error(Errc::exists, where + " is the output of another open interface of this process");
  int uninspectable = 0;
  const std::vector<std::string> paths = {fd_path(old.get()), shm_path(spec_.in)};
  std::vector<std::vector<int>> each = processes_using_each(paths, &uninspectable);
  const int self = static_cast<int>(os::current_pid());
  std::erase(each[0], self);
  if (!each[0].empty()) {
    // A process that maps this region and the peer's is a peer (a villas-node) that attached to
    // the region an earlier, killed run of this side left behind: it reads a dead region and,
    // being villas-node, will never notice. Only restarting it helps.
    if (!loopback_)
      for (const int p : each[0])
        if (p != self && std::find(each[1].begin(), each[1].end(), p) != each[1].end())
          throw Error(Errc::exists, where + ": the peer (process " + std::to_string(p) + ", which also maps " +
                                        quote(shm_path(spec_.in)) +
                                        ") attached to this stale region of an earlier run of this side; restart the peer");
    throw Error(Errc::exists, where + " exists and process " + std::to_string(each[0].front()) +
                                  " maps or holds it (another live side owns this name)");
  }
  // Remove the name only while it still names the inode judged stale.
  struct stat now {};
  if (::stat(path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) return;
  if (::shm_unlink(spec_.out.c_str()) != 0 && errno != ENOENT)
    os::throw_errno(errno, spec_.label + ": removing the stale VILLAS region", quote(path));
}

void Link::open_semaphores() {
  const mode_t sem_mode = spec_.permissions & 0666;
  // Ours: the name is ours now (we created the region exclusively), so its mode is set as asked
  // (sem_open's mode passes through the umask).
  sem_out_ = ::sem_open(spec_.out.c_str(), O_CREAT, sem_mode, 0);
  if (sem_out_ == SEM_FAILED) os::throw_errno(errno, spec_.label + ": opening semaphore", quote(sem_path(spec_.out)));
  owns_sem_ = true;
  if (::chmod(sem_path(spec_.out).c_str(), sem_mode) != 0)
    os::throw_errno(errno, spec_.label + ": setting permissions of semaphore", quote(sem_path(spec_.out)));
  // The peer's: exclusively first, to know whether we created it (then it is ours to remove if
  // the open fails before a peer came).
  sem_in_ = ::sem_open(spec_.in.c_str(), O_CREAT | O_EXCL, sem_mode, 0);
  if (sem_in_ != SEM_FAILED) {
    created_sem_in_ = true;
    if (::chmod(sem_path(spec_.in).c_str(), sem_mode) != 0)
      os::throw_errno(errno, spec_.label + ": setting permissions of semaphore", quote(sem_path(spec_.in)));
  } else if (errno == EEXIST) {
    sem_in_ = ::sem_open(spec_.in.c_str(), 0);
  }
  if (sem_in_ == SEM_FAILED) os::throw_errno(errno, spec_.label + ": opening semaphore", quote(sem_path(spec_.in)));
  struct stat sst {};
  if (::stat(sem_path(spec_.in).c_str(), &sst) == 0) sem_in_ino_ = sst.st_ino;
}

void Link::create() {
  const std::string path = shm_path(spec_.out);
  const std::string where = spec_.label + ": VILLAS region " + quote(path);
  creator_pid_ = os::current_pid();
  try {
    // 1. Our region, exclusively; a stale one (nobody maps or holds it) is replaced; one a live
    // process maps is refused, and nothing of that owner (its semaphore's posts) is touched.
    // The semaphores come after: a refused open leaves nothing behind.
    os::UniqueFd fd;
    for (int attempt = 0;; ++attempt) {
      fd.reset(::shm_open(spec_.out.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, spec_.permissions));
      if (fd) break;
      const int e = errno;
      if (e != EEXIST) os::throw_errno(e, spec_.label + ": creating VILLAS region", quote(path));
      if (attempt == 8) throw Error(Errc::exists, where + ": other processes keep creating it");
      take_over_stale(path, where);
    }
    created_ = true;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, spec_.label + ": examining", quote(path));
    own_dev_ = st.st_dev;
    own_ino_ = st.st_ino;
    register_own(own_dev_, own_ino_);
    registered_ = true;
    // 2. Both semaphores (named as the objects), created when absent, as villas-node does.
    open_semaphores();
    // 3. Posts left on our semaphore by a killed earlier incarnation would tell the peer our
    // region is ready before it is. Only the owner of the name posts it, and that is us now, so
    // everything there is stale.
    for (int i = 0; i < kMaxDrain && ::sem_trywait(sem_out_) == 0; ++i) {
    }
    if (::fchmod(fd.get(), spec_.permissions) != 0) os::throw_errno(errno, spec_.label + ": setting permissions of", quote(path));
    const std::uint64_t size = region_size(spec_.queuelen, spec_.samplelen);
    if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size)); err != 0) {
      if (err != EOPNOTSUPP && err != EINVAL)
        throw Error(errc_from_errno(err), where + ": sizing it to " + std::to_string(size) + " bytes: " + std::strerror(err));
      if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) os::throw_errno(errno, spec_.label + ": sizing", quote(path));
    }
    own_map_ = Mapping(fd.get(), static_cast<std::size_t>(size), true, path);
    dont_fork(own_map_, spec_.label, quote(path));
    own_.emplace(OwnRegion::init(own_map_.bytes(), spec_.queuelen, spec_.samplelen, spec_.pthread_mode, path));
    // 4. Tell the peer our region is ready.
    if (::sem_post(sem_out_) != 0) os::throw_errno(errno, spec_.label + ": posting semaphore", quote(sem_path(spec_.out)));
  } catch (...) {
    abandon();
    throw;
  }
}

void Link::wait_post(std::int64_t deadline_ns, const std::function<void()>& check, const std::string& last) {
  const auto throw_interrupted = [this] {
    throw Error(Errc::interrupted, spec_.label + ": waiting for the peer's VILLAS region " + quote(in_path()) +
                                       " on semaphore " + quote(sem_path(spec_.in)) + ": interrupted by a signal");
  };
  for (;;) {
    if (check) check();
    // A post already there is taken even when the deadline has passed (attach_timeout 0).
    // SYNC POINT: sem_post(R) by the peer after it laid its region out; the semaphore's
    // post/wait pair orders its initialisation before our mapping of it.
    if (::sem_trywait(sem_in_) == 0) return;
    if (errno == EINTR) throw_interrupted();
    if (errno != EAGAIN) os::throw_errno(errno, spec_.label + ": waiting on semaphore", quote(sem_path(spec_.in)));
    const std::int64_t now = os::monotonic_ns();
    if (now >= deadline_ns)
      throw Error(Errc::timeout, spec_.label + ": no peer attached within " +
                                     fmt_seconds(spec_.attach_timeout.count()) +
                                     ": the peer's VILLAS region " + quote(in_path()) + ": " + last);
    const std::int64_t step = std::max<std::int64_t>(spec_.slice.count(), 1'000'000);
    const std::int64_t until = deadline_ns - now > step ? now + step : deadline_ns;
    const timespec ts = os::to_timespec(until);
    // SYNC POINT: as the sem_trywait above.
    if (::sem_clockwait(sem_in_, CLOCK_MONOTONIC, &ts) == 0) return;
    const int e = errno;
    // A signal gives up the wait (as read and write do): the caller's handler decides what next.
    if (e == EINTR) throw_interrupted();
    if (e != ETIMEDOUT) os::throw_errno(e, spec_.label + ": waiting on semaphore", quote(sem_path(spec_.in)));
  }
}

void Link::find_peer_pids(int fd, bool& none_visible, bool& uninspectable) {
  for (const int pfd : pidfds_)
    if (pfd >= 0) ::close(pfd);
  pids_.clear();
  pidfds_.clear();
  int unseen = 0;
  std::vector<int> users = other_users(fd, &unseen);
  uninspectable = unseen != 0;
  if (users.size() > kMaxPeerPids) users.resize(kMaxPeerPids);
  // Pin each process with a pidfd, then scan again: a pid still mapping the region after its
  // pidfd was opened is that process (pid reuse cannot fool the pidfd from then on).
  std::vector<int> fds;
  std::vector<int> errs;
  for (const int p : users) {
    fds.push_back(pidfd_open(p));
    errs.push_back(fds.back() < 0 ? errno : 0);
  }
  const std::vector<int> again = users.empty() ? std::vector<int>{} : other_users(fd, nullptr);
  for (std::size_t i = 0; i < users.size(); ++i) {
    const bool still = std::find(again.begin(), again.end(), users[i]) != again.end();
    const bool gone = fds[i] < 0 && errs[i] == ESRCH;  // exited between the scans
    if (still && !gone) {
      pids_.push_back(users[i]);
      pidfds_.push_back(fds[i]);
    } else if (fds[i] >= 0) {
      ::close(fds[i]);
    }
  }
  none_visible = pids_.empty();
}

bool Link::try_map_peer(std::int64_t deadline_ns, std::string& why) {
  const std::string path = in_path();
  std::int64_t grace_end = 0;
  for (;;) {
    peer_.reset();
    peer_map_.reset();
    os::UniqueFd fd(::shm_open(spec_.in.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) {
      const int e = errno;
      if (e == ENOENT) {
        why = "its semaphore was posted but the region does not exist (the peer closed or was removed)";
        return false;
      }
      os::throw_errno(e, spec_.label + ": opening the peer's VILLAS region", quote(path));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, spec_.label + ": examining", quote(path));
    if (!S_ISREG(st.st_mode))
      throw Error(Errc::layout, spec_.label + ": the peer's VILLAS region " + quote(path) + " is not a regular file");
    const bool in_process = is_own(st.st_dev, st.st_ino);
    if (!loopback_ && !in_process) {
      // The processes that map THIS inode (the one we opened: never another file under the
      // name). Processes whose /proc entries we cannot read only count when the region belongs
      // to another user: its creator, of our uid, is always visible to us in our pid namespace.
      bool none = false;
      bool unseen = false;
      find_peer_pids(fd.get(), none, unseen);
      if (none && (!unseen || st.st_uid == ::geteuid()) && !peer_semaphore_gone(deadline_ns)) {
        // No visible mapper and the peer's semaphore name stays: a side unlinks that name right
        // after it mapped our region (it can, since we posted first), so a live peer, even one
        // we cannot see (another pid namespace), removes it within the grace. This post is a
        // killed peer's leftover. The semaphore is left alone: a new villas-node opens and posts
        // that same object.
        why = "its semaphore was posted but no live process maps the region (a killed peer's leftovers)";
        return false;
      }
      if (none && replaced(path, st)) {
        // A new peer that found a killed one's leftover under the name replaced it (unlink,
        // create) before it posted and unlinked its semaphore: the inode we opened is the
        // leftover, and the new peer's post is waiting on the semaphore we hold.
        why = "its semaphore was posted but the region we opened was replaced under its name (a killed peer's leftovers)";
        return false;
      }
      // Otherwise, with no visible mapper, the peer's liveness is unknown (pids_ empty): it is
      // in another pid namespace, or completed its handshake and died before we looked.
    }
    in_process_ = in_process && !loopback_;
    in_dev_ = st.st_dev;
    in_ino_ = st.st_ino;
    std::string failure;
    if (st.st_size <= 0) {
      failure = "it is empty";
    } else {
      peer_map_ = Mapping(fd.get(), static_cast<std::size_t>(st.st_size), true, path);
      dont_fork(peer_map_, spec_.label, quote(path));
      try {
        peer_.emplace(PeerRegion::attach(peer_map_.bytes(), path));
        const RegionInfo info = peer_->info();
        in_values_ = info.sample_capacity;
        in_queuelen_ = info.pool_blocks;
        in_pthread_ = info.pthread_mode;
        return true;
      } catch (const Error& e) {
        if (e.errc() != Errc::layout) throw;
        failure = e.what();
      }
    }
    // Maybe a new peer still laying its region out (we consumed a stale post): look again for
    // a moment before believing it.
    const std::int64_t now = os::monotonic_ns();
    if (grace_end == 0) grace_end = now + std::chrono::nanoseconds(kLayoutGrace).count();
    if (now >= grace_end) {
      peer_.reset();
      peer_map_.reset();
      if (failure.find(path) != std::string::npos) throw Error(Errc::layout, spec_.label + ": " + failure);
      throw Error(Errc::layout, spec_.label + ": the peer's VILLAS region " + quote(path) + ": " + failure);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool Link::peer_semaphore_gone(std::int64_t deadline_ns) const {
  const std::int64_t now = os::monotonic_ns();
  const std::int64_t grace = std::chrono::nanoseconds(kUnlinkGrace).count();
  // Up to kUnlinkGrace, within attach_timeout where it leaves at least kMinUnlinkGrace.
  const std::int64_t end =
      std::min(now + grace, std::max(deadline_ns, now + std::chrono::nanoseconds(kMinUnlinkGrace).count()));
  for (;;) {
    if (!peer_semaphore_named()) return true;
    if (os::monotonic_ns() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Link::attach(std::int64_t deadline_ns, const std::function<void()>& check) {
  std::string last = "nobody posted its semaphore " + quote(sem_path(spec_.in));
  for (;;) {
    wait_post(deadline_ns, check, last);
    if (try_map_peer(deadline_ns, last)) break;
  }
  // Both sides are connected once we mapped the peer: our semaphore's name is no longer needed
  // (the peer opened it before it posted its own).
  ::sem_unlink(spec_.out.c_str());
  sem_out_unlinked_ = true;
  created_sem_in_ = false;  // the peer's now: it unlinks it
  close_semaphores();
}

void Link::close_semaphores() noexcept {
  if (sem_out_ != SEM_FAILED) ::sem_close(sem_out_);
  if (sem_in_ != SEM_FAILED) ::sem_close(sem_in_);
  sem_out_ = sem_in_ = SEM_FAILED;
}

void Link::abandon() noexcept {
  // A peer may have attached to our region already (we posted before waiting): STOPPED tells
  // it, and wakes it, before the region goes.
  if (own_) own_->stop();
  remove_own_region();
  if (owns_sem_ && !sem_out_unlinked_) ::sem_unlink(spec_.out.c_str());
  sem_out_unlinked_ = true;
  remove_created_peer_semaphore();
  unmap();
}

void Link::remove_created_peer_semaphore() noexcept {
  if (!created_sem_in_ || loopback_) return;
  created_sem_in_ = false;
  try {
    // Only while the name is still the object we created and no other process holds it (a peer
    // that opened it is on its way and will use it); an own region under the peer's name means
    // a side in this process is mid-handshake with it.
    const std::string sp = sem_path(spec_.in);
    struct stat st {};
    if (::stat(sp.c_str(), &st) != 0 || st.st_ino != sem_in_ino_) return;
    struct stat rs {};
    if (::stat(in_path().c_str(), &rs) == 0 && is_own(rs.st_dev, rs.st_ino)) return;
    int unseen = 0;
    std::vector<int> users = processes_using(sp, &unseen);
    std::erase(users, static_cast<int>(os::current_pid()));
    if (!users.empty() || (unseen != 0 && st.st_uid != ::geteuid())) return;
    ::sem_unlink(spec_.in.c_str());
  } catch (...) {
  }
}

Status Link::try_pull(Sample& out) noexcept {
  if (!peer_) return Errc::closed;
  const Status st = peer_->try_pull(out);
  if (st.code() == Errc::layout && detail::log_enabled(LogLevel::warn)) {
    try {
      detail::log(LogLevel::warn, spec_.label + ": the peer's VILLAS region " + quote(in_path()) +
                                      ": a sample was skipped: " + peer_->error());
    } catch (...) {
    }
  }
  return st;
}

bool Link::peer_stopped() const noexcept {
  if (!peer_) return true;
  try {
    return peer_->info().stopped;
  } catch (...) {
    return false;
  }
}

bool Link::peer_semaphore_named() const noexcept {
  struct stat st {};
  return ::stat(sem_path(spec_.in).c_str(), &st) == 0 && st.st_ino == sem_in_ino_;
}

int Link::peer_alive() const noexcept {
  if (in_process_) return is_own(in_dev_, in_ino_) ? 1 : 0;
  if (pids_.empty()) return -1;
  bool unknown = false;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    if (i < pidfds_.size() && pidfds_[i] >= 0) {
      pollfd p{pidfds_[i], POLLIN, 0};
      const int r = ::poll(&p, 1, 0);
      if (r == 0) return 1;                                 // readable once the process has exited
      if (r < 0 || (p.revents & POLLIN) == 0) unknown = true;  // an error: cannot tell
      continue;
    }
    if (os::pid_alive(pids_[i])) return 1;
  }
  return unknown ? -1 : 0;
}

void Link::remove_own_region() noexcept {
  if (!created_) return;
  created_ = false;
  struct stat st {};
  const std::string path = shm_path(spec_.out);
  if (::stat(path.c_str(), &st) == 0 && st.st_dev == own_dev_ && st.st_ino == own_ino_) ::shm_unlink(spec_.out.c_str());
}

void Link::unmap() noexcept {
  if (registered_) unregister_own(own_dev_, own_ino_);
  registered_ = false;
  peer_.reset();
  own_.reset();
  if (creator_pid_ != 0 && creator_pid_ != os::current_pid()) {
    // A forked child: the regions are MADV_DONTFORK, so nothing is mapped at these addresses
    // here (or the child's own mappings are). Forget them without munmap: re-construct the
    // handles in place (their storage is reused without running the destructors).
    std::construct_at(&own_map_);
    std::construct_at(&peer_map_);
  } else {
    peer_map_.reset();
    own_map_.reset();
  }
  for (const int fd : pidfds_)
    if (fd >= 0) ::close(fd);
  pidfds_.clear();
  close_semaphores();
}

}  // namespace shmlink::villas
