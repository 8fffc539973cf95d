// SPDX-License-Identifier: MIT
// The duplex co-simulation Interface (include/shmlink/interface.hpp; docs/design/queues.md
// "Interface"): VILLASnode's shmem open/close handshake (docs/reference/villas-shmem.md 2.1) and `exec` (3), with
// the peer watched through an OFD lock instead of a semaphore nobody can time out on. Protocol
// villas (docs/design/villas.md) goes through src/queue/villas_link.hpp for its regions and
// handshake; its waits, liveness and close are in interface_villas.cpp, exec and the rest here.
// Interface::Impl is declared in interface_impl.hpp.
#include <shmlink/interface.hpp>

#include "os/clock.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"
#include "queue/interface_impl.hpp"
#include "queue/villas_link.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

extern char** environ;

namespace shmlink {

namespace {

const std::vector<Signal> kNone;


/// The command line as one string, for messages.
std::string command_line(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

/// Takes an exclusive OFD lock on byte 0 of the file `fd` refers to. Returns 0 or errno.
int ofd_lock(int fd) noexcept {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}

/// True when some other open file description holds a lock on byte 0 of `fd`'s file (the
/// owner is alive); false when nobody does or the check failed.
bool ofd_locked_by_other(int fd) noexcept {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 1;
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return false;
  return fl.l_type != F_UNLCK;
}

/// Flags for every open() of a channel file here: never block (a FIFO under the name would
/// block open() for ever) and never follow a symbolic link (the inode locked and compared is the
/// one at the name). What was opened is then checked with is_regular() before any other use.
constexpr int kChannelOpenFlags = O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;

/// True when `fd` is a regular file.
bool is_regular(int fd) noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/// What remove_if_stale() found at the name.
enum class Stale { removed, live, foreign };

/// Removes the queue file at `path` if nobody holds its lock (its owner is gone), under our own
/// lock so that no live owner's file is ever removed. live: a live owner holds it; foreign: the
/// name is not a regular file (a FIFO, a symbolic link, ...), which is never ours to remove.
Stale remove_if_stale(const std::string& path) noexcept {
  const int fd = ::open(path.c_str(), O_RDWR | kChannelOpenFlags);
  if (fd < 0) return errno == ENOENT ? Stale::removed : Stale::foreign;
  if (!is_regular(fd)) {
    ::close(fd);
    return Stale::foreign;
  }
  if (ofd_lock(fd) != 0) {
    ::close(fd);
    return Stale::live;
  }
  struct stat a {}, b {};
  if (::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
    ::unlink(path.c_str());
  ::close(fd);
  return Stale::removed;
}

void check_signal_args(const char* what, std::uint32_t index, std::string_view name, SignalType type,
                       std::string_view unit) {
  const std::string w = std::string(what) + " " + std::to_string(index);
  if (index >= kMaxSampleValues)
    throw Error(Errc::invalid_argument, w + ": index is not below " + std::to_string(kMaxSampleValues));
  if (name.size() > kMaxSignalName)
    throw Error(Errc::invalid_argument, w + ": name " + quote(name) + " is over " + std::to_string(kMaxSignalName) + " bytes");
  if (unit.size() > kMaxSignalUnit)
    throw Error(Errc::invalid_argument, w + ": unit " + quote(unit) + " is over " + std::to_string(kMaxSignalUnit) + " bytes");
  if (type != SignalType::f64 && type != SignalType::i64 && type != SignalType::boolean && type != SignalType::c64)
    throw Error(Errc::invalid_argument, w + ": signal type " + std::to_string(static_cast<int>(type)) + " is not valid");
}

void add_signal(std::vector<Signal>& list, const char* what, std::uint32_t index, std::string_view name,
                SignalType type, std::string_view unit) {
  check_signal_args(what, index, name, type, unit);
  for (const auto& s : list)
    if (s.index == index)
      throw Error(Errc::invalid_argument,
                  std::string(what) + " " + std::to_string(index) + " is already registered (as " + quote(s.name) + ")");
  list.push_back(Signal{index, std::string(name), type, std::string(unit)});
  std::sort(list.begin(), list.end(), [](const Signal& a, const Signal& b) { return a.index < b.index; });
}

}  // namespace

// ---- open interfaces, for fork() ----------------------------------------------------------
// A forked child inherits the descriptors holding our OFD locks; were it to keep them, the lock
// would outlive this process and the peer would never see it die. The child's copies are
// closed at fork (the parent's lock is unaffected: it lives as long as any descriptor of the
// open file description does).
namespace {

std::mutex g_open_mutex;
std::vector<Interface::Impl*>& open_interfaces() {
  static std::vector<Interface::Impl*> list;
  return list;
}
void close_fds_in_child() noexcept;

void install_fork_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::pthread_atfork([] { g_open_mutex.lock(); }, [] { g_open_mutex.unlock(); },
                     [] {
                       close_fds_in_child();
                       g_open_mutex.unlock();
                     });
  });
}

}  // namespace

std::string PeerStatus::describe() const {
  std::string who = command.empty() ? std::string("peer") : "peer '" + command + "'";
  if (pid > 0) who += " (pid " + std::to_string(pid) + ")";
  if (term_signal != 0) return who + " was killed by signal " + std::to_string(term_signal) + " (" + ::strsignal(term_signal) + ")";
  if (exit_code >= 0) return who + " exited with status " + std::to_string(exit_code);
  if (closed) return who + " closed the interface";
  if (exited) return who + " is gone (it ended without closing the interface)";
  return who + (pid > 0 ? " is attached" : " is not attached");
}

std::string Interface::Impl::label() const { return "interface (out " + quote(spec.out) + ", in " + quote(spec.in) + ")"; }

bool Interface::Impl::reap(int flags) noexcept {
  if (child <= 0) return false;
  int st = 0;
  pid_t r;
  do r = ::waitpid(child, &st, flags);
  while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r == child) {
    if (WIFEXITED(st)) peer.exit_code = WEXITSTATUS(st);
    if (WIFSIGNALED(st)) peer.term_signal = WTERMSIG(st);
  }
  peer.exited = true;  // reaped, or (ECHILD) somebody else reaped it: it is gone either way
  child = 0;
  return true;
}

bool Interface::Impl::alive(bool may_wait) noexcept {
  if (loopback) return open;
  if (villas()) return alive_villas(may_wait);
  const std::lock_guard lock(peer_mutex);
  if (peer.exited) return false;
  if (peer.launched && reap(WNOHANG)) {
    peer_gone.store(true, std::memory_order_relaxed);
    return false;
  }
  if (in_region()) {
    // No lock file in a region: the peer closed when its output is shut. Its death is seen
    // only when it runs on this kernel, by its pid (the pid of another kernel's process means
    // nothing here: across VMs a dead peer is not detected, and reads time out).
    if (in.valid() && in.is_shut()) {
      peer.closed = true;
    } else if (peer.launched || peer.pid <= 0 || !peer_local || os::pid_alive(peer.pid)) {
      return true;
    }
    peer.exited = true;
    peer_gone.store(true, std::memory_order_relaxed);
    return false;
  }
  if (peer_fd >= 0 && !ofd_locked_by_other(peer_fd)) {
    if (in.is_shut()) peer.closed = true;  // it shut its output first: a clean close
    // The lock is gone: the peer died or closed. A launched child may still be exiting: give
    // it a moment so the status it exits with can be reported.
    if (peer.launched && child > 0) {
      for (int i = 0; i < 50 && !reap(WNOHANG); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    peer.exited = true;
    peer_gone.store(true, std::memory_order_relaxed);
    return false;
  }
  return true;
}

bool Interface::Impl::alive_lazily(bool may_wait) noexcept {
  if (peer_gone.load(std::memory_order_relaxed)) return false;
  const std::int64_t now = os::monotonic_ns();
  if (now < next_check_ns.load(std::memory_order_relaxed)) return true;
  next_check_ns.store(now + std::max<std::int64_t>(spec.liveness_interval.count(), 1'000'000),
                      std::memory_order_relaxed);
  return alive(may_wait);
}

std::chrono::nanoseconds Interface::Impl::slice(std::int64_t deadline) const noexcept {
  const std::int64_t left = deadline - os::monotonic_ns();
  return std::chrono::nanoseconds(std::clamp<std::int64_t>(left, 0, std::max<std::int64_t>(spec.liveness_interval.count(), 1'000'000)));
}

Status Interface::Impl::gone() const noexcept {
  const std::lock_guard lock(peer_mutex);
  return peer.closed ? Errc::shut_down : Errc::peer_exited;
}

Status Interface::Impl::push(const Sample& s, std::chrono::nanoseconds timeout) noexcept {
  if (!open || foreign()) return Errc::closed;
  if (!alive_lazily(timeout.count() > 0)) return gone();  // nobody would ever read it
  if (vl) return push_villas(s, timeout);
  Status st = out.try_push(s);
  if (st.code() != Errc::would_block) return st;
  if (timeout.count() <= 0) return Errc::would_block;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (;;) {
    st = out.push(s, slice(deadline));
    if (st.code() != Errc::timeout) return st;
    if (!alive()) return gone();
    if (os::monotonic_ns() >= deadline) return Errc::timeout;
  }
}

Status Interface::Impl::pop(Sample& s, std::chrono::nanoseconds timeout) noexcept {
  if (!open || foreign()) return Errc::closed;
  Status st = vl ? vl->try_pull(s) : in.try_pop(s);
  if (st.code() == Errc::would_block && vl) {
    st = pull_villas(s, timeout);
  } else if (st.code() == Errc::would_block) {
    if (timeout.count() <= 0) {
      if (alive_lazily()) return Errc::would_block;
      st = in.try_pop(s);  // what it wrote before dying is still delivered
      if (st.code() == Errc::would_block) return in_region() ? gone() : Status(Errc::peer_exited);
    } else {
      const std::int64_t deadline = os::deadline_after(timeout);
      for (;;) {
        st = in.pop(s, slice(deadline));
        // Region mode: a peer's clean close shuts its output and removes its entry, so a
        // drained input reads replaced; shut first, it is the peer's close (shut_down).
        if (st.code() == Errc::replaced && in_region() && in.is_shut()) break;
        // A replaced input queue is most often a peer that died and was restarted (it re-created
        // its output): that is the peer's exit, reported as such when its process is gone.
        if (st.code() != Errc::timeout && st.code() != Errc::replaced) break;
        if (!alive()) {
          st = in.try_pop(s);
          if (st.code() == Errc::would_block || st.code() == Errc::replaced) return Errc::peer_exited;
          break;
        }
        if (st.code() == Errc::replaced) break;
        if (os::monotonic_ns() >= deadline) return Errc::timeout;
      }
    }
  }
  if (st.code() == Errc::replaced && in_region() && in.is_shut()) st = Errc::shut_down;
  if (st.ok()) {
    s.ts_received_ns = os::realtime_ns();
    s.flags |= kSampleHasTsReceived;
  } else if (st.code() == Errc::shut_down) {
    note_shut_down();
  }
  return st;
}

void Interface::Impl::note_shut_down() noexcept {
  if (!open) return;
  const std::lock_guard lock(peer_mutex);
  peer.closed = true;
  peer_gone.store(true, std::memory_order_relaxed);
}

void Interface::Impl::create_output() {
  if (in_region()) return create_output_in_region();
  const QueueSpec qs = output_spec();
  out_path = queue_path(spec.out);

  // Built complete under a private name and locked there, then linked into place: link()
  // never replaces, so the name only ever shows a locked, complete queue. A file already at
  // the name is another live Interface's output (its lock is held: refuse) or a stale one
  // whose owner died (take its lock, then remove it: VILLASnode unlinks and retries, 12.1).
  static std::atomic<unsigned> counter{0};
  const std::string tmp = out_path + ".tmp" + std::to_string(os::current_pid()) + "." +
                          std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
  Queue fresh = Queue::create(tmp, qs, OpenMode::PurgeAndCreate);
  const int fd = ::open(tmp.c_str(), O_RDWR | kChannelOpenFlags);
  const int lock_err = fd < 0 ? errno : ofd_lock(fd);
  const auto fail = [&](Errc code, const std::string& why) {
    ::unlink(tmp.c_str());
    if (fd >= 0) ::close(fd);
    throw Error(code, label() + ": queue " + quote(out_path) + ": " + why);
  };
  if (lock_err != 0) fail(errc_from_errno(lock_err), std::string("locking it: ") + std::strerror(lock_err));
  for (int attempt = 0;; ++attempt) {
    if (::link(tmp.c_str(), out_path.c_str()) == 0) break;
    const int e = errno;
    if (e != EEXIST) fail(errc_from_errno(e), std::string("linking it into place: ") + std::strerror(e));
    if (attempt == 8) fail(Errc::exists, "other processes keep creating it");
    switch (remove_if_stale(out_path)) {
      case Stale::removed: break;
      case Stale::live: fail(Errc::exists, "it is the output of another open interface"); break;
      case Stale::foreign:
        fail(Errc::exists, "the name is taken by something that is not a regular file (left alone)");
        break;
    }
  }
  ::unlink(tmp.c_str());
  lock_fd = fd;
  // Map it again under its real name (for paths in messages and tools); the lock keeps the
  // name pointing at this inode.
  out = Queue::open(out_path);
  out.set_wait_mode(spec.wait);
}

void Interface::Impl::launch() {
  const auto& argv_s = spec.exec;
  std::vector<char*> argv;
  argv.reserve(argv_s.size() + 1);
  for (const auto& a : argv_s) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.starts_with("SHMLINK_INTERFACE_IN=") || v.starts_with("SHMLINK_INTERFACE_OUT=")) continue;
    env_s.emplace_back(v);
  }
  env_s.push_back("SHMLINK_INTERFACE_IN=" + spec.out);
  env_s.push_back("SHMLINK_INTERFACE_OUT=" + spec.in);
  std::vector<char*> envp;
  envp.reserve(env_s.size() + 1);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  // The peer starts clean: no signal blocked or ignored because this process blocks or
  // ignores it, and in a process group of its own, so that close() stops it together with
  // whatever it started (a wrapper script's child).
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), envp.data());
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw Error(rc == ENOENT ? Errc::not_found : errc_from_errno(rc),
                label() + ": starting peer " + quote(command_line(argv_s)) + ": " + std::strerror(rc));
  child = pid;
  peer = PeerStatus{};
  peer.pid = pid;
  peer.launched = true;
  peer.command = command_line(argv_s);
}

void Interface::Impl::stop_child() noexcept {
  if (child <= 0) return;
  const auto ended = [&] {  // exited, not yet reaped (WNOWAIT)
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != 0;
  };
  const auto wait_for = [&](std::chrono::nanoseconds d) {
    const std::int64_t deadline = os::deadline_after(d);
    while (!ended()) {
      if (os::monotonic_ns() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  };
  const auto signal_group = [&](int sig) {
    if (::kill(-child, sig) != 0) ::kill(child, sig);  // not a group leader (it called setsid)
  };
  bool signalled = false;
  if (!wait_for(spec.stop_timeout)) {
    signalled = true;
    signal_group(SIGTERM);
    if (!wait_for(spec.stop_timeout)) signal_group(SIGKILL);
    wait_for(std::chrono::seconds(10));
  }
  if (signalled) ::kill(-child, SIGKILL);
  {
    const std::lock_guard lock(peer_mutex);
    reap(0);
  }
  // A peer that had to be killed could not remove its output: do it for it (only if nobody
  // holds its lock, i.e. no other process took the name over).
  if (signalled && !loopback) {
    if (villas()) remove_villas_if_stale();
    else if (!in_region()) remove_if_stale(queue_path(spec.in));
  }
}

std::uint32_t Interface::Impl::values_per_sample() const {
  std::uint32_t needed = 1;
  for (const auto& s : exports) needed = std::max(needed, s.index + 1);
  if (spec.max_values != 0 && spec.max_values < needed)
    throw Error(Errc::invalid_argument, label() + ": max_values " + std::to_string(spec.max_values) +
                                            " is too small for exported index " + std::to_string(needed - 1));
  return spec.max_values != 0 ? spec.max_values : needed;
}

void Interface::Impl::check_imports() const {
  const auto& theirs = in.signals();
  for (const auto& want : imports) {
    const auto it = std::find_if(theirs.begin(), theirs.end(), [&](const Signal& s) { return s.index == want.index; });
    const std::string where = label() + ": import " + std::to_string(want.index) + " " + quote(want.name);
    if (it == theirs.end()) {
      if (want.index >= in.max_values())
        throw Error(Errc::layout, where + ": the peer's queue " + quote(in.path()) + " has only " +
                                      std::to_string(in.max_values()) + " values per sample");
      if (!theirs.empty())
        throw Error(Errc::layout, where + ": the peer's queue " + quote(in.path()) + " exports no signal at that index");
      continue;  // the peer declared no table at all: accept by position, as VILLASnode does
    }
    if (it->type != want.type)
      throw Error(Errc::layout, where + " is " + std::string(signal_type_name(want.type)) + " here but " +
                                    std::string(signal_type_name(it->type)) + " in the peer's queue " + quote(in.path()) +
                                    " (" + quote(it->name) + ")");
    if (!want.name.empty() && it->name != want.name)
      throw Error(Errc::layout, where + ": the peer's queue " + quote(in.path()) + " calls it " + quote(it->name));
    if (!want.unit.empty() && it->unit != want.unit)
      throw Error(Errc::layout, where + " is in " + quote(want.unit) + " here but in " + quote(it->unit) +
                                    " in the peer's queue " + quote(in.path()));
  }
}

void Interface::Impl::attach(std::int64_t deadline) {
  if (in_region()) return attach_in_region(deadline);
  const std::string path = queue_path(spec.in);
  std::string last = "it does not exist";
  for (;;) {
    if (peer.launched && reap(WNOHANG))
      throw Error(Errc::peer_exited, label() + ": " + peer.describe() + " before attaching");
    const int fd = ::open(path.c_str(), O_RDONLY | kChannelOpenFlags);
    if (fd < 0 && errno == ELOOP) last = "it is a symbolic link (not followed)";
    if (fd >= 0) {
      if (!is_regular(fd)) {
        last = "it is not a regular file (a FIFO or device under the queue's name?)";
      } else if (ofd_locked_by_other(fd)) {
        try {
          Queue q = Queue::open(spec.in);
          struct stat a {}, b {};
          if (q.is_shut()) {
            last = "it is shut (its owner is closing)";
          } else if (::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino) {
            // peer_fd only once the input is taken: a check_imports() that throws leaves fd to
            // the catch below, and release() must not close that number a second time (another
            // thread may own it by then).
            take_input(std::move(q));
            peer_fd = fd;
            return;
          } else {
            last = "it was being replaced";
          }
        } catch (const Error& e) {
          if (e.errc() != Errc::not_found) {
            ::close(fd);
            throw;
          }
        }
      } else {
        last = "it exists but no live interface owns it (stale)";
      }
      ::close(fd);
    }
    if (os::monotonic_ns() >= deadline) {
      const double s = static_cast<double>(spec.attach_timeout.count()) / 1e9;
      throw Error(Errc::timeout, label() + ": no peer attached within " + fmt_seconds(s) + ": the peer's queue " +
                                     quote(path) + ": " + last);
    }
    std::this_thread::sleep_for(kAttachPoll);
  }
}

void Interface::Impl::await_peer_reader(std::int64_t deadline) {
  for (;;) {
    if (peer.launched && reap(WNOHANG))
      throw Error(Errc::peer_exited, label() + ": " + peer.describe() + " before attaching");
    // Done when the incarnation whose output we read has opened ours (its token is its
    // output's creation time). It may already have written and closed: that is fine.
    if (out.consumer_token() == in_token) return;
    if (!peer_input_current()) {
      // The file we attached to was closed, replaced or abandoned before its owner opened
      // ours (a peer closing while we opened, or restarting): attach to the next one.
      in.close();
      if (peer_fd >= 0) ::close(peer_fd);
      peer_fd = -1;
      attach(deadline);
      mark_input();
      continue;
    }
    if (os::monotonic_ns() >= deadline) {
      const double s = static_cast<double>(spec.attach_timeout.count()) / 1e9;
      throw Error(Errc::timeout, label() + ": the peer did not open " + quote(out_path) + " within " + fmt_seconds(s));
    }
    std::this_thread::sleep_for(kAttachPoll);
  }
}

void Interface::Impl::mark_input() noexcept {
  in_token = static_cast<std::uint64_t>(in.info().creation_time_ns);
  in.mark_consumer_attached(static_cast<std::uint64_t>(out.info().creation_time_ns));
}

bool Interface::Impl::peer_input_current() const noexcept {
  if (in_region()) return in.valid() && !in.is_shut() && !in.replaced();
  if (peer_fd < 0 || !in.valid() || in.is_shut() || !ofd_locked_by_other(peer_fd)) return false;
  struct stat a {}, b {};
  return ::fstat(peer_fd, &a) == 0 && ::lstat(in.path().c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

std::string Interface::Impl::fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

void Interface::Impl::forget_fds() noexcept {
  if (lock_fd >= 0) ::close(lock_fd);
  if (peer_fd >= 0) ::close(peer_fd);
  lock_fd = peer_fd = -1;
}

void Interface::Impl::release() noexcept {
  in.close();
  out.close();
  region = Region();
  if (peer_fd >= 0) ::close(peer_fd);
  peer_fd = -1;
  if (lock_fd >= 0) ::close(lock_fd);  // drops the OFD lock
  lock_fd = -1;
}

namespace {

void register_open(Interface::Impl* m) {
  install_fork_handler();
  const std::lock_guard lock(g_open_mutex);
  open_interfaces().push_back(m);
}

void unregister_open(Interface::Impl* m) noexcept {
  const std::lock_guard lock(g_open_mutex);
  auto& list = open_interfaces();
  list.erase(std::remove(list.begin(), list.end(), m), list.end());
}

void close_fds_in_child() noexcept {
  for (Interface::Impl* m : open_interfaces()) m->forget_fds();
}

}  // namespace

Interface::Interface() noexcept = default;
Interface::Interface(InterfaceSpec spec) : impl_(std::make_unique<Impl>()) { impl_->spec = std::move(spec); }
Interface::Interface(Interface&&) noexcept = default;
Interface& Interface::operator=(Interface&& o) noexcept {
  if (this != &o) {
    close();
    impl_ = std::move(o.impl_);
  }
  return *this;
}
Interface::~Interface() { close(); }

void Interface::export_signal(std::uint32_t index, std::string_view name, SignalType type, std::string_view unit) {
  if (!impl_) throw Error(Errc::closed, "interface handle is empty");
  if (impl_->open) throw Error(Errc::closed, impl_->label() + ": export_signal after open()");
  add_signal(impl_->exports, "export", index, name, type, unit);
}

void Interface::import_signal(std::uint32_t index, std::string_view name, SignalType type, std::string_view unit) {
  if (!impl_) throw Error(Errc::closed, "interface handle is empty");
  if (impl_->open) throw Error(Errc::closed, impl_->label() + ": import_signal after open()");
  add_signal(impl_->imports, "import", index, name, type, unit);
}

void Interface::open() {
  if (!impl_) throw Error(Errc::closed, "interface handle is empty");
  Impl& m = *impl_;
  if (m.open) return;
  if (m.spec.out.empty() || m.spec.in.empty())
    throw Error(Errc::invalid_argument, m.label() + ": both the out and the in queue must be named");
  if (m.spec.attach_timeout.count() < 0)
    throw Error(Errc::invalid_argument, m.label() + ": attach_timeout is negative");
  if (m.spec.protocol != InterfaceProtocol::shmlink && m.spec.protocol != InterfaceProtocol::villas)
    throw Error(Errc::invalid_argument, m.label() + ": protocol " + std::to_string(static_cast<int>(m.spec.protocol)) +
                                            " is not shmlink (0) or villas (1)");
  m.peer = PeerStatus{};
  m.sequence = 0;
  if (m.villas()) {
    const std::int64_t deadline = os::deadline_after(m.spec.attach_timeout);
    try {
      m.open_villas(deadline);
    } catch (...) {
      // Our region and semaphore go first: a launched peer then fails its own handshake.
      if (m.vl) m.vl->abandon();
      m.vl.reset();
      m.stop_child();
      throw;
    }
  } else {
    m.region_locator.clear();
    const auto out_at = split_region_locator(m.spec.out);
    const auto in_at = split_region_locator(m.spec.in);
    if (out_at || in_at) {
      if (!out_at || !in_at || out_at->first != in_at->first)
        throw Error(Errc::invalid_argument, m.label() + ": both queues must be channels of the same region (PATH:NAME)");
      m.region_locator = out_at->first;
      m.out_entry = out_at->second;
      m.in_entry = in_at->second;
      m.loopback = m.out_entry == m.in_entry;
    } else {
      m.loopback = queue_path(m.spec.out) == queue_path(m.spec.in);
    }
    if (m.loopback && !m.spec.exec.empty())
      throw Error(Errc::invalid_argument, m.label() + ": a loopback interface (out == in) cannot launch a peer");
    m.open_shmlink();
  }
  m.scratch.values.reserve(m.out_max());
  m.read_scratch.values.reserve(m.in_max());
  m.owner_pid = os::current_pid();
  m.open = true;
  register_open(&m);
  m.next_check_ns.store(0, std::memory_order_relaxed);
}

void Interface::Impl::open_shmlink() {
  const std::int64_t deadline = os::deadline_after(spec.attach_timeout);
  if (in_region()) region = Region::open(region_locator);
  try {
    create_output();
    if (!spec.exec.empty()) launch();
    if (loopback) {
      in = in_region() ? region.open_queue(in_entry) : Queue::open(spec.in);
      in.set_wait_mode(spec.wait);
      peer.pid = os::current_pid();
      check_imports();
      mark_input();
    } else {
      attach(deadline);
      mark_input();
      await_peer_reader(deadline);
    }
  } catch (...) {
    // Let go first (shut, remove, unlock): a launched peer waiting in its own handshake then
    // sees this side gone and exits by itself instead of waiting for SIGTERM.
    out.shutdown();
    remove_output();
    release();
    stop_child();
    throw;
  }
}

bool Interface::is_open() const noexcept { return impl_ && impl_->open; }

Status Interface::write(std::span<const SignalValue> values, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_ || !impl_->open) return Errc::closed;
  Impl& m = *impl_;
  if (values.size() > m.out_max()) return Errc::size_mismatch;
  Sample& s = m.scratch;
  s.values.assign(values.begin(), values.end());  // capacity reserved at open: no allocation
  s.sequence = m.sequence;
  s.ts_origin_ns = os::realtime_ns();
  s.ts_received_ns = 0;
  s.flags = kSampleHasSequence | kSampleHasData | kSampleHasTsOrigin;
  const Status st = m.push(s, timeout);
  if (st.ok()) ++m.sequence;
  return st;
}

Status Interface::write(const Sample& s, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_ || !impl_->open) return Errc::closed;
  const Status st = impl_->push(s, timeout);
  if (st.ok()) impl_->sequence = s.sequence + 1;
  return st;
}

Status Interface::read(Sample& out, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_) return Errc::closed;
  return impl_->pop(out, timeout);
}

void Interface::close() noexcept {
  if (!impl_) return;
  Impl& m = *impl_;
  if (!m.open) return;
  m.open = false;
  unregister_open(&m);
  if (os::current_pid() != m.owner_pid) {
    // A forked copy: the interface belongs to the parent. Unmap only; never shut, remove or
    // stop what the parent still uses.
    m.vl.reset();
    m.release();
    return;
  }
  if (m.vl) {
    m.close_villas();
    m.stop_child();
    return;
  }
  // Let go first (shut, remove, unlock): the peer drains what we wrote and reads `closed`,
  // and a peer blocked writing to us sees our lock gone, so a launched one exits by itself.
  m.out.shutdown();
  m.remove_output();
  m.release();
  m.stop_child();
}

const std::vector<Signal>& Interface::exports() const noexcept { return impl_ ? impl_->exports : kNone; }
const std::vector<Signal>& Interface::imports() const noexcept { return impl_ ? impl_->imports : kNone; }
const std::vector<Signal>& Interface::peer_signals() const noexcept { return impl_ ? impl_->in.signals() : kNone; }

PeerStatus Interface::peer() const {
  if (!impl_) return {};
  const std::lock_guard lock(impl_->peer_mutex);
  return impl_->peer;
}

bool Interface::peer_alive() noexcept { return impl_ && impl_->open && !impl_->foreign() && impl_->alive(); }

const InterfaceSpec& Interface::spec() const noexcept {
  static const InterfaceSpec none;
  return impl_ ? impl_->spec : none;
}

Queue& Interface::out_queue() noexcept {
  static Queue none;
  return impl_ ? impl_->out : none;
}

Queue& Interface::in_queue() noexcept {
  static Queue none;
  return impl_ ? impl_->in : none;
}

const Queue& Interface::out_queue() const noexcept { return const_cast<Interface*>(this)->out_queue(); }
const Queue& Interface::in_queue() const noexcept { return const_cast<Interface*>(this)->in_queue(); }

std::uint64_t Interface::next_sequence() const noexcept { return impl_ ? impl_->sequence : 0; }

std::uint32_t Interface::out_max_values() const noexcept { return impl_ && impl_->open ? impl_->out_max() : 0; }
std::uint32_t Interface::in_max_values() const noexcept { return impl_ && impl_->open ? impl_->in_max() : 0; }

Interface::VillasPeerRegion Interface::villas_peer_region() const noexcept {
  if (!impl_ || !impl_->open || !impl_->vl) return {};
  return {impl_->vl->in_queuelen(), impl_->vl->in_pthread_mode()};
}

}  // namespace shmlink
