// SPDX-License-Identifier: MIT
// The duplex co-simulation Interface (include/shmlink/interface.hpp; docs/design/queues.md
// "Interface"): VILLASnode's shmem open/close handshake (reference 12.1) and `exec` (13), with
// the peer watched through an OFD lock instead of a semaphore nobody can time out on.
#include <shmlink/interface.hpp>

#include "os/clock.hpp"
#include "os/log_internal.hpp"
#include "os/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
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

/// How long open() sleeps between looks for the peer's queue.
constexpr std::chrono::milliseconds kAttachPoll{2};

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

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

std::string PeerStatus::describe() const {
  std::string who = command.empty() ? std::string("peer") : "peer '" + command + "'";
  if (pid > 0) who += " (pid " + std::to_string(pid) + ")";
  if (term_signal != 0) return who + " was killed by signal " + std::to_string(term_signal) + " (" + ::strsignal(term_signal) + ")";
  if (exit_code >= 0) return who + " exited with status " + std::to_string(exit_code);
  if (exited) return who + " is gone (its queue lock was released)";
  if (closed) return who + " closed the interface";
  return who + (pid > 0 ? " is attached" : " is not attached");
}

struct Interface::Impl {
  InterfaceSpec spec;
  std::vector<Signal> exports;
  std::vector<Signal> imports;
  Queue out;
  Queue in;
  int lock_fd = -1;       ///< our output file, OFD-locked while open
  int peer_fd = -1;       ///< the peer's output file (the inode we mapped), for the liveness check
  bool loopback = false;  ///< in == out: this process is its own peer
  bool open = false;
  // What is known of the peer. The writing and the reading thread may both find it dead at
  // once: `peer` and `child` are guarded by `peer_mutex` (slow path only), and the hot path's
  // rate limit is an atomic.
  mutable std::mutex peer_mutex;
  pid_t child = 0;        ///< launched peer, not yet reaped
  PeerStatus peer;
  std::atomic<std::int64_t> next_check_ns{0};  ///< monotonic time of the next liveness check
  std::uint64_t sequence = 0;
  Sample scratch;                  ///< write(values) builds its sample here (no allocation per call)

  std::string label() const { return "interface (out " + quote(spec.out) + ", in " + quote(spec.in) + ")"; }

  /// Reaps the launched child if it has ended; records its status. True when it has ended.
  /// Caller holds peer_mutex (or is the only thread: setup and close).
  bool reap(int flags) noexcept {
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

  /// Checks now whether the peer is alive; records what is known when it is not.
  bool alive() noexcept {
    if (loopback) return open;
    const std::lock_guard lock(peer_mutex);
    if (peer.exited) return false;
    if (peer.launched && reap(WNOHANG)) return false;
    if (peer_fd >= 0 && !ofd_locked_by_other(peer_fd)) {
      if (in.is_shut()) peer.closed = true;  // it shut its output first: a clean close
      // The lock is gone: the peer died or closed. A launched child may still be exiting: give
      // it a moment so the status it exits with can be reported.
      if (peer.launched && child > 0) {
        for (int i = 0; i < 50 && !reap(WNOHANG); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      peer.exited = true;
      return false;
    }
    return true;
  }

  /// Rate-limited alive(): checks at most once per liveness_interval.
  bool alive_lazily() noexcept {
    const std::int64_t now = os::monotonic_ns();
    if (now < next_check_ns.load(std::memory_order_relaxed)) return true;
    next_check_ns.store(now + std::max<std::int64_t>(spec.liveness_interval.count(), 1'000'000),
                        std::memory_order_relaxed);
    return alive();
  }

  /// The slice of a wait between two liveness checks.
  std::chrono::nanoseconds slice(std::int64_t deadline) const noexcept {
    const std::int64_t left = deadline - os::monotonic_ns();
    return std::chrono::nanoseconds(std::clamp<std::int64_t>(left, 0, std::max<std::int64_t>(spec.liveness_interval.count(), 1'000'000)));
  }

  /// Why the peer cannot take more: closed (it closed cleanly) or peer_exited.
  Status gone() const noexcept {
    const std::lock_guard lock(peer_mutex);
    return peer.closed ? Errc::closed : Errc::peer_exited;
  }

  Status push(const Sample& s, std::chrono::nanoseconds timeout) noexcept {
    if (!open) return Errc::closed;
    if (!alive_lazily()) return gone();  // nobody would ever read it
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

  Status pop(Sample& s, std::chrono::nanoseconds timeout) noexcept {
    if (!open) return Errc::closed;
    Status st = in.try_pop(s);
    if (st.code() == Errc::would_block) {
      if (timeout.count() <= 0) {
        if (alive_lazily()) return Errc::would_block;
        st = in.try_pop(s);  // what it wrote before dying is still delivered
        if (st.code() == Errc::would_block) return Errc::peer_exited;
      } else {
        const std::int64_t deadline = os::deadline_after(timeout);
        for (;;) {
          st = in.pop(s, slice(deadline));
          if (st.code() != Errc::timeout) break;
          if (!alive()) {
            st = in.try_pop(s);
            if (st.code() == Errc::would_block) return Errc::peer_exited;
            break;
          }
          if (os::monotonic_ns() >= deadline) return Errc::timeout;
        }
      }
    }
    if (st.ok()) {
      s.ts_received_ns = os::realtime_ns();
      s.flags |= kSampleHasTsReceived;
    } else if (st.code() == Errc::closed && open) {
      const std::lock_guard lock(peer_mutex);
      peer.closed = true;
    }
    return st;
  }

  /// Creates (or replaces a stale) output queue and locks it.
  void create_output() {
    QueueSpec qs;
    qs.capacity = spec.capacity;
    std::uint32_t needed = 1;
    for (const auto& s : exports) needed = std::max(needed, s.index + 1);
    if (spec.max_values != 0 && spec.max_values < needed)
      throw Error(Errc::invalid_argument, label() + ": max_values " + std::to_string(spec.max_values) +
                                              " is too small for exported index " + std::to_string(needed - 1));
    qs.max_values = spec.max_values != 0 ? spec.max_values : needed;
    qs.kind = spec.kind;
    qs.wait = spec.wait;
    qs.signals = exports;
    qs.permissions = spec.permissions;
    const std::string path = queue_path(spec.out);

    // A file already there is either another live Interface's output (refuse) or a stale one
    // from a process that died (replace it: VILLASnode unlinks and retries, reference 12.1).
    const int old = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (old >= 0) {
      const bool owned = ofd_locked_by_other(old);
      ::close(old);
      if (owned)
        throw Error(Errc::exists, label() + ": queue " + quote(path) + " is the output of another open interface");
    }
    out = Queue::create(spec.out, qs, old >= 0 ? OpenMode::PurgeAndCreate : OpenMode::ExclusiveCreate);
    out.set_wait_mode(spec.wait);
    lock_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (lock_fd < 0) {
      const int e = errno;
      throw Error(errc_from_errno(e), label() + ": opening " + quote(path) + " to lock it: " + std::strerror(e));
    }
    // Lock the inode we created, and make sure the name still points at it (a racing creator
    // could have renamed its own file over ours in between).
    struct stat a {}, b {};
    if (const int e = ofd_lock(lock_fd); e != 0)
      throw Error(e == EAGAIN || e == EACCES ? Errc::exists : errc_from_errno(e),
                  label() + ": locking " + quote(path) + ": " + (e == EAGAIN || e == EACCES ? std::string("another interface owns it") : std::strerror(e)));
    if (::fstat(lock_fd, &a) != 0 || ::stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev ||
        out.info().creator_pid != os::current_pid())
      throw Error(Errc::exists, label() + ": queue " + quote(path) + " was replaced by another interface while opening");
  }

  /// Starts the exec command with the queue names in its environment.
  void launch() {
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
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data());
    if (rc != 0)
      throw Error(rc == ENOENT ? Errc::not_found : errc_from_errno(rc),
                  label() + ": starting peer " + quote(command_line(argv_s)) + ": " + std::strerror(rc));
    child = pid;
    peer = PeerStatus{};
    peer.pid = pid;
    peer.launched = true;
    peer.command = command_line(argv_s);
  }

  /// Stops a launched child: waits `stop_timeout` for it to exit, then SIGTERM, then SIGKILL.
  void stop_child() noexcept {
    const auto reap_locked = [&](int flags) {
      const std::lock_guard lock(peer_mutex);
      return reap(flags);
    };
    if (child <= 0) return;
    const auto wait_for = [&](std::chrono::nanoseconds d) {
      const std::int64_t deadline = os::deadline_after(d);
      while (!reap_locked(WNOHANG)) {
        if (os::monotonic_ns() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      return true;
    };
    if (wait_for(spec.stop_timeout)) return;
    ::kill(child, SIGTERM);
    if (wait_for(spec.stop_timeout)) return;
    ::kill(child, SIGKILL);
    reap_locked(0);
  }

  /// Checks the peer's table against our imports. @throws Error layout.
  void check_imports() const {
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

  /// Waits for the peer's output queue with a live owner and opens it.
  void attach(std::int64_t deadline) {
    const std::string path = queue_path(spec.in);
    std::string last = "it does not exist";
    for (;;) {
      if (peer.launched && reap(WNOHANG))
        throw Error(Errc::peer_exited, label() + ": " + peer.describe() + " before attaching");
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (ofd_locked_by_other(fd)) {
          try {
            Queue q = Queue::open(spec.in);
            struct stat a {}, b {};
            if (::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino) {
              in = std::move(q);
              peer_fd = fd;
              in.set_wait_mode(spec.wait);
              if (!peer.launched) {
                peer.pid = in.info().creator_pid;
                peer.command = in.path();
              }
              check_imports();
              return;
            }
            last = "it was being replaced";
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

  /// Second half of the handshake: waits until the peer has opened our output too (it records
  /// its pid there), so that neither side returns from open() before both are attached: a peer
  /// that writes and closes at once is still seen.
  void await_peer_reader(std::int64_t deadline) {
    while (out.consumer_pid() == 0) {
      if (!alive())
        throw Error(Errc::peer_exited, label() + ": the peer died before opening " + quote(out.path()) + ": " + peer.describe());
      if (os::monotonic_ns() >= deadline) {
        const double s = static_cast<double>(spec.attach_timeout.count()) / 1e9;
        throw Error(Errc::timeout, label() + ": the peer did not open " + quote(out.path()) + " within " + fmt_seconds(s));
      }
      std::this_thread::sleep_for(kAttachPoll);
    }
  }

  static std::string fmt_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", s);
    return buf;
  }

  /// Releases everything (no peer handling).
  void release() noexcept {
    in.close();
    out.close();
    if (peer_fd >= 0) ::close(peer_fd);
    peer_fd = -1;
    if (lock_fd >= 0) ::close(lock_fd);  // drops the OFD lock
    lock_fd = -1;
  }

  /// Removes our output file when it is still the inode we locked.
  void remove_output() noexcept {
    if (lock_fd < 0 || out.path().empty()) return;
    struct stat a {}, b {};
    if (::fstat(lock_fd, &a) == 0 && ::stat(out.path().c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
      ::unlink(out.path().c_str());
  }
};

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
  m.loopback = queue_path(m.spec.out) == queue_path(m.spec.in);
  if (m.loopback && !m.spec.exec.empty())
    throw Error(Errc::invalid_argument, m.label() + ": a loopback interface (out == in) cannot launch a peer");
  m.peer = PeerStatus{};
  m.sequence = 0;
  const std::int64_t deadline = os::deadline_after(m.spec.attach_timeout);
  try {
    m.create_output();
    if (!m.spec.exec.empty()) m.launch();
    if (m.loopback) {
      m.in = Queue::open(m.spec.in);
      m.in.set_wait_mode(m.spec.wait);
      m.peer.pid = os::current_pid();
      m.check_imports();
      m.in.mark_consumer_attached();
    } else {
      m.attach(deadline);
      m.in.mark_consumer_attached();
      m.await_peer_reader(deadline);
    }
  } catch (...) {
    // Let go first (shut, remove, unlock): a launched peer waiting in its own handshake then
    // sees this side gone and exits by itself instead of waiting for SIGTERM.
    m.out.shutdown();
    m.remove_output();
    m.release();
    m.stop_child();
    throw;
  }
  m.scratch.values.reserve(m.out.max_values());
  m.open = true;
  m.next_check_ns.store(0, std::memory_order_relaxed);
}

bool Interface::is_open() const noexcept { return impl_ && impl_->open; }

Status Interface::write(std::span<const SignalValue> values, std::chrono::nanoseconds timeout) noexcept {
  if (!impl_ || !impl_->open) return Errc::closed;
  Impl& m = *impl_;
  if (values.size() > m.out.max_values()) return Errc::size_mismatch;
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
  m.out.shutdown();  // the peer drains what we wrote, then reads `closed`
  m.stop_child();
  m.remove_output();
  m.release();
}

const std::vector<Signal>& Interface::exports() const noexcept { return impl_ ? impl_->exports : kNone; }
const std::vector<Signal>& Interface::imports() const noexcept { return impl_ ? impl_->imports : kNone; }
const std::vector<Signal>& Interface::peer_signals() const noexcept { return impl_ ? impl_->in.signals() : kNone; }

PeerStatus Interface::peer() const {
  if (!impl_) return {};
  const std::lock_guard lock(impl_->peer_mutex);
  return impl_->peer;
}

bool Interface::peer_alive() noexcept { return impl_ && impl_->open && impl_->alive(); }

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

}  // namespace shmlink
