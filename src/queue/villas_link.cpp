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

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string shm_path(const std::string& object) { return std::string(kShmDir) + object; }

std::string sem_path(const std::string& object) { return std::string(kShmDir) + "/sem." + object.substr(1); }

std::string fmt_seconds(std::int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ns) / 1e9);
  return buf;
}

// ---- regions of this process, so that two sides in one process (threads) see each other ----
// A region only this process maps is otherwise taken for a dead peer's leftovers.
std::mutex g_own_mutex;
std::vector<std::pair<dev_t, ino_t>>& own_regions() {
  static std::vector<std::pair<dev_t, ino_t>> list;
  return list;
}
void register_own(dev_t dev, ino_t ino) {
  const std::lock_guard lock(g_own_mutex);
  own_regions().emplace_back(dev, ino);
}
void unregister_own(dev_t dev, ino_t ino) noexcept {
  const std::lock_guard lock(g_own_mutex);
  auto& l = own_regions();
  const auto it = std::find(l.begin(), l.end(), std::make_pair(dev, ino));
  if (it != l.end()) l.erase(it);
}
bool is_own(dev_t dev, ino_t ino) noexcept {
  const std::lock_guard lock(g_own_mutex);
  const auto& l = own_regions();
  return std::find(l.begin(), l.end(), std::make_pair(dev, ino)) != l.end();
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
  std::string n = name.front() == '/' ? std::string(name) : "/" + std::string(name);
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

void Link::create() {
  const std::string path = shm_path(spec_.out);
  const std::string where = spec_.label + ": VILLAS region " + quote(path);
  try {
    // 1. Both semaphores (named as the objects), created when absent, as villas-node does.
    const mode_t sem_mode = spec_.permissions & 0666;
    sem_out_ = ::sem_open(spec_.out.c_str(), O_CREAT, sem_mode, 0);
    if (sem_out_ == SEM_FAILED) os::throw_errno(errno, spec_.label + ": opening semaphore", quote(sem_path(spec_.out)));
    sem_in_ = ::sem_open(spec_.in.c_str(), O_CREAT, sem_mode, 0);
    if (sem_in_ == SEM_FAILED) os::throw_errno(errno, spec_.label + ": opening semaphore", quote(sem_path(spec_.in)));
    struct stat sst {};
    if (::stat(sem_path(spec_.in).c_str(), &sst) == 0) sem_in_ino_ = sst.st_ino;
    // 2. Our region, exclusively; a stale one (nobody maps or holds it) is replaced; one a live
    // process maps is refused, and nothing of that owner (its semaphore's posts) is touched.
    os::UniqueFd fd;
    for (int attempt = 0;; ++attempt) {
      fd.reset(::shm_open(spec_.out.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, spec_.permissions));
      if (fd) break;
      const int e = errno;
      if (e != EEXIST) os::throw_errno(e, spec_.label + ": creating VILLAS region", quote(path));
      if (attempt == 8) throw Error(Errc::exists, where + ": other processes keep creating it");
      int uninspectable = 0;
      std::vector<int> users = processes_using(path, &uninspectable);
      std::erase(users, static_cast<int>(os::current_pid()));
      if (!users.empty())
        throw Error(Errc::exists, where + " exists and process " + std::to_string(users.front()) +
                                      " maps or holds it (another live side owns this name)");
      if (::shm_unlink(spec_.out.c_str()) != 0 && errno != ENOENT)
        os::throw_errno(errno, spec_.label + ": removing the stale VILLAS region", quote(path));
    }
    created_ = true;
    owns_sem_ = true;
    // 3. Posts left on our semaphore by a killed earlier incarnation would tell the peer our
    // region is ready before it is. Only the owner of the name posts it, and that is us now, so
    // everything there is stale.
    for (int i = 0; i < kMaxDrain && ::sem_trywait(sem_out_) == 0; ++i) {
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, spec_.label + ": examining", quote(path));
    own_dev_ = st.st_dev;
    own_ino_ = st.st_ino;
    if (::fchmod(fd.get(), spec_.permissions) != 0) os::throw_errno(errno, spec_.label + ": setting permissions of", quote(path));
    const std::uint64_t size = region_size(spec_.queuelen, spec_.samplelen);
    if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size)); err != 0) {
      if (err != EOPNOTSUPP && err != EINVAL)
        throw Error(errc_from_errno(err), where + ": sizing it to " + std::to_string(size) + " bytes: " + std::strerror(err));
      if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) os::throw_errno(errno, spec_.label + ": sizing", quote(path));
    }
    own_map_ = Mapping(fd.get(), static_cast<std::size_t>(size), true, path);
    own_.emplace(OwnRegion::init(own_map_.bytes(), spec_.queuelen, spec_.samplelen, spec_.pthread_mode, path));
    register_own(own_dev_, own_ino_);
    // 4. Tell the peer our region is ready.
    if (::sem_post(sem_out_) != 0) os::throw_errno(errno, spec_.label + ": posting semaphore", quote(sem_path(spec_.out)));
  } catch (...) {
    abandon();
    throw;
  }
}

void Link::wait_post(std::int64_t deadline_ns, const std::function<void()>& check, const std::string& last) {
  for (;;) {
    if (check) check();
    const std::int64_t now = os::monotonic_ns();
    if (now >= deadline_ns)
      throw Error(Errc::timeout, spec_.label + ": no peer attached within " +
                                     fmt_seconds(spec_.attach_timeout.count()) +
                                     ": the peer's VILLAS region " + quote(in_path()) + ": " + last);
    const std::int64_t step = std::max<std::int64_t>(spec_.slice.count(), 1'000'000);
    const std::int64_t until = deadline_ns - now > step ? now + step : deadline_ns;
    const timespec ts = os::to_timespec(until);
    // SYNC POINT: sem_post(R) by the peer after it laid its region out; the semaphore's
    // post/wait pair orders its initialisation before our mapping of it.
    if (::sem_clockwait(sem_in_, CLOCK_MONOTONIC, &ts) == 0) return;
    const int e = errno;
    if (e != ETIMEDOUT && e != EINTR) os::throw_errno(e, spec_.label + ": waiting on semaphore", quote(sem_path(spec_.in)));
  }
}

bool Link::try_map_peer(std::string& why) {
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
      // A post whose region no live process maps came from a peer that died after posting (its
      // semaphore and region stay behind): not a peer. The semaphore is left alone: a new
      // villas-node opens and posts that same object. Processes whose /proc entries we cannot
      // read only count when the region belongs to another user: its creator, of our uid, is
      // always visible to us (a sandbox's init or another user's processes are not).
      int uninspectable = 0;
      std::vector<int> users = processes_using(path, &uninspectable);
      std::erase(users, static_cast<int>(os::current_pid()));
      pids_.clear();
      peer_gone_at_attach_ = false;
      if (users.empty() && (uninspectable == 0 || st.st_uid == ::geteuid())) {
        // Dead: before or after its handshake? A side unlinks its semaphore's name right after
        // it mapped our region, so a name still there (the object we opened) means it died
        // before: its post is stale. Otherwise it attached to us, maybe wrote, and died: attach
        // and drain what it wrote; it is known dead.
        if (peer_semaphore_named()) {
          why = "its semaphore was posted but no live process maps the region (a killed peer's leftovers)";
          return false;
        }
        peer_gone_at_attach_ = true;
      }
      for (const int p : users)
        if (pids_.size() < kMaxPeerPids) pids_.push_back(p);
    }
    in_process_ = in_process && !loopback_;
    in_dev_ = st.st_dev;
    in_ino_ = st.st_ino;
    std::string failure;
    if (st.st_size <= 0) {
      failure = "it is empty";
    } else {
      peer_map_ = Mapping(fd.get(), static_cast<std::size_t>(st.st_size), true, path);
      try {
        peer_.emplace(PeerRegion::attach(peer_map_.bytes(), path));
        in_values_ = peer_->info().sample_capacity;
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

void Link::attach(std::int64_t deadline_ns, const std::function<void()>& check) {
  std::string last = "nobody posted its semaphore " + quote(sem_path(spec_.in));
  for (;;) {
    wait_post(deadline_ns, check, last);
    if (try_map_peer(last)) break;
  }
  for (const pid_t p : pids_) pidfds_.push_back(pidfd_open(p));
  // Both sides are connected once we mapped the peer: our semaphore's name is no longer needed
  // (the peer opened it before it posted its own).
  ::sem_unlink(spec_.out.c_str());
  sem_out_unlinked_ = true;
  close_semaphores();
}

void Link::close_semaphores() noexcept {
  if (sem_out_ != SEM_FAILED) ::sem_close(sem_out_);
  if (sem_in_ != SEM_FAILED) ::sem_close(sem_in_);
  sem_out_ = sem_in_ = SEM_FAILED;
}

void Link::abandon() noexcept {
  remove_own_region();
  if (owns_sem_ && !sem_out_unlinked_) ::sem_unlink(spec_.out.c_str());
  sem_out_unlinked_ = true;
  unmap();
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
  if (peer_gone_at_attach_) return 0;
  if (in_process_) return is_own(in_dev_, in_ino_) ? 1 : 0;
  if (pids_.empty()) return -1;
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    if (i < pidfds_.size() && pidfds_[i] >= 0) {
      pollfd p{pidfds_[i], POLLIN, 0};
      if (::poll(&p, 1, 0) == 0) return 1;  // readable once the process has exited
      continue;
    }
    if (os::pid_alive(pids_[i])) return 1;
  }
  return 0;
}

void Link::remove_own_region() noexcept {
  if (!created_) return;
  created_ = false;
  struct stat st {};
  const std::string path = shm_path(spec_.out);
  if (::stat(path.c_str(), &st) == 0 && st.st_dev == own_dev_ && st.st_ino == own_ino_) ::shm_unlink(spec_.out.c_str());
}

void Link::unmap() noexcept {
  if (own_) unregister_own(own_dev_, own_ino_);
  peer_.reset();
  own_.reset();
  peer_map_.reset();
  own_map_.reset();
  for (const int fd : pidfds_)
    if (fd >= 0) ::close(fd);
  pidfds_.clear();
  close_semaphores();
}

}  // namespace shmlink::villas
