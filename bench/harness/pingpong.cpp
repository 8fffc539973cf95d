// SPDX-License-Identifier: MIT
// The two-process engine of the bench harness (pingpong.hpp): the shared block, the child watch,
// the child's fork and reaping, and the descriptors made before the fork.
#include "harness/pingpong.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <new>

namespace shmlink::bench {

namespace {

/// The Shared block the SIGCHLD handler marks (set while a child runs).
std::atomic<Shared*> g_watch{nullptr};
/// Set by SIGCHLD.
volatile std::sig_atomic_t g_child_exited = 0;
/// When the parent first saw g_child_exited (monotonic ns; 0: not yet).
std::int64_t g_child_exit_seen_ns = 0;
/// How long data may still arrive after the child exited.
constexpr std::int64_t kChildExitGraceNs = 1'000'000'000;

/// SIGCHLD handler: flags the exit and writes kDead into the floors' reply words. Lock-free
/// atomic stores are async-signal-safe.
extern "C" void on_bench_child_exit(int /*sig*/) {
  g_child_exited = 1;
  Shared* sh = g_watch.load(std::memory_order_relaxed);
  if (sh == nullptr) return;
  sh->pong.value.store(kDead, std::memory_order_release);
  sh->fpong.value.store(static_cast<std::uint32_t>(kDead), std::memory_order_release);
}

/// Installs `handler` for `sig` with `flags` (never SA_RESTART), saving the old one in `old`.
void install(int sig, void (*handler)(int), int flags, struct sigaction* old) noexcept {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = flags;
  ::sigaction(sig, &sa, old);
}

}  // namespace

SharedMapping::SharedMapping(std::size_t message_bytes)
    : stride_((message_bytes + 63) / 64 * 64), size_(sizeof(Shared) + 2 * stride_) {
  addr_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (addr_ == MAP_FAILED) {
    const int err = errno;
    throw Error(errc_from_errno(err), "bench: mmap of the shared block failed: " + std::string(std::strerror(err)));
  }
  new (addr_) Shared();
}

SharedMapping::~SharedMapping() { ::munmap(addr_, size_); }

void futex_wait(std::atomic<std::uint32_t>& w, std::uint32_t expected) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& w) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

ChildWatch::ChildWatch() {
  install(SIGCHLD, on_bench_child_exit, SA_NOCLDSTOP, &old_chld_);
  install(SIGPIPE, SIG_IGN, 0, &old_pipe_);
}

ChildWatch::~ChildWatch() {
  g_watch.store(nullptr);
  ::sigaction(SIGPIPE, &old_pipe_, nullptr);
  ::sigaction(SIGCHLD, &old_chld_, nullptr);
}

void watch_child(Shared* sh) noexcept {
  g_child_exited = 0;
  g_child_exit_seen_ns = 0;
  g_watch.store(sh);
}

bool child_exited() noexcept { return g_child_exited != 0; }

Fail after_empty_slice(std::int64_t& deadline) noexcept {
  if (stop_requested()) return Fail::stopped;
  const std::int64_t now = mono_ns();
  if (g_child_exited != 0) {
    // What the child sent just before it exited may still be in flight (ZeroMQ's I/O thread
    // delivers it after the sender is gone): the child counts as gone only after a grace time.
    if (g_child_exit_seen_ns == 0) g_child_exit_seen_ns = now;
    return now - g_child_exit_seen_ns > kChildExitGraceNs ? Fail::peer_gone : Fail::none;
  }
  if (deadline == 0) deadline = now + kNoProgressNs;
  return now > deadline ? Fail::timed_out : Fail::none;
}

std::int64_t involuntary_switches() noexcept {
  rusage self{};
  rusage children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  return self.ru_nivcsw + children.ru_nivcsw;
}

int reap(pid_t pid, std::int64_t grace_ns) noexcept {
  const std::int64_t deadline = mono_ns() + grace_ns;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (mono_ns() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    ::usleep(200);
  }
}

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

Run::~Run() {
  // A socketpair uses one descriptor for both directions of a side.
  if (parent_out == parent_in) parent_out = -1;
  if (child_out == child_in) child_out = -1;
  close_fd(parent_in);
  close_fd(parent_out);
  close_fd(child_in);
  close_fd(child_out);
}

void Run::close_other_side(Side side) noexcept {
  int& a = side == Side::parent ? child_in : parent_in;
  int& b = side == Side::parent ? child_out : parent_out;
  if (b == a) b = -1;
  close_fd(a);
  close_fd(b);
}

void make_pipes(Run& run, bool both_ways) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Error(errc_from_errno(errno), std::string("pipe2: ") + std::strerror(errno));
  run.parent_in = p[0];
  run.child_out = p[1];
  if (both_ways) {
    if (::pipe2(p, O_CLOEXEC) != 0) throw Error(errc_from_errno(errno), std::string("pipe2: ") + std::strerror(errno));
    run.child_in = p[0];
    run.parent_out = p[1];
  }
}

void make_socketpair(Run& run) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(errc_from_errno(errno), std::string("socketpair(AF_UNIX, SOCK_STREAM): ") + std::strerror(errno));
  run.parent_in = run.parent_out = sv[0];
  run.child_in = run.child_out = sv[1];
}

void child_fail(Shared* sh, const std::string& why, int rc) {
  std::snprintf(sh->error, sizeof sh->error, "%s", why.c_str());
  sh->ready.store(-1);
  ::_exit(rc);
}

bool Child::start() {
  Shared* sh = run_.sh;
  sh->ping.value.store(0);
  sh->pong.value.store(0);  // the previous child's exit left kDead here
  sh->fping.value.store(0);
  sh->fpong.value.store(0);
  sh->ready.store(0);
  sh->parent_open.store(0);
  sh->go.store(0);
  sh->consumed.store(0);
  sh->child_cpu_ns.store(0);
  sh->error[0] = '\0';
  watch_child(sh);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    const int err = errno;
    watch_child(nullptr);
    throw Error(errc_from_errno(err), what_ + ": fork failed: " + std::strerror(err));
  }
  if (pid_ != 0) return true;
  // The child: only the body runs here; it leaves with _exit (no destructors of the parent's
  // objects, no atexit handlers).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  ::signal(SIGINT, SIG_IGN);  // the parent decides when to stop, and kills us
  if (run_.cores && !pin_to_cpu(run_.cores->second))
    child_fail(sh, std::string("pinning the ") + noun_ + " to CPU " + std::to_string(run_.cores->second) + ": " +
                       std::strerror(errno), 2);
  const std::int64_t deadline = mono_ns() + kNoProgressNs;
  while (sh->parent_open.load() == 0) {
    if (mono_ns() > deadline) child_fail(sh, "the parent did not open its side", 2);
    ::usleep(20);
  }
  return false;
}

Child::~Child() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    (void)reap(pid_, 1'000'000'000);
  }
  watch_child(nullptr);
}

void Child::wait_ready() {
  const std::int64_t deadline = mono_ns() + kNoProgressNs;
  while (run_.sh->ready.load() == 0) {
    if (stop_requested()) fail("interrupted", Errc::interrupted);
    if (child_exited() || mono_ns() > deadline) break;
    ::usleep(20);
  }
  if (run_.sh->ready.load() != 1) fail(child_error("did not start"), Errc::system);
}

void Child::check(Fail f) {
  switch (f) {
    case Fail::none: return;
    case Fail::stopped: fail("interrupted", Errc::interrupted);
    case Fail::timed_out: fail(std::string("the ") + noun_ + " stopped answering", Errc::timeout);
    case Fail::peer_gone: {
      const int status = reap(pid_, 1'000'000'000);
      reaped_ = true;
      std::string why = child_error("exited");
      if (status >= 0 && WIFSIGNALED(status)) why += " (signal " + std::to_string(WTERMSIG(status)) + ")";
      if (status >= 0 && WIFEXITED(status)) why += " (status " + std::to_string(WEXITSTATUS(status)) + ")";
      fail(why, Errc::system);
    }
    case Fail::error: fail(run_.error.empty() ? "I/O error" : run_.error, Errc::system);
  }
}

void Child::finish(std::int64_t grace_ns) {
  const int status = reap(pid_, grace_ns);
  reaped_ = true;
  if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) fail(child_error("failed"), Errc::system);
}

void Child::fail(const std::string& why, Errc code) const { throw Error(code, what_ + ": " + why); }

std::string Child::child_error(const char* fallback) const {
  return run_.sh->error[0] != '\0' ? std::string(run_.sh->error) : std::string("the ") + noun_ + " " + fallback;
}

}  // namespace shmlink::bench
