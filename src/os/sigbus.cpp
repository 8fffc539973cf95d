// SPDX-License-Identifier: MIT
// The SIGBUS guard (os/sigbus.hpp) and read_guarded() (include/shmlink/segment.hpp).
#include "os/sigbus.hpp"

#include <shmlink/segment.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <limits>
#include <mutex>

namespace shmlink::os {

namespace {

static_assert(std::atomic<std::uintptr_t>::is_always_lock_free, "the SIGBUS handler reads these");
static_assert(std::atomic<unsigned>::is_always_lock_free, "the SIGBUS handler increments this");
static_assert(std::atomic<pid_t>::is_always_lock_free, "the SIGBUS handler reads this");

/// The thread whose reads are guarded (its kernel thread id; 0 when no guard is armed). The
/// "armed" state belongs to that one thread: a fault on any other thread is not the guard's.
/// (A thread id compared in the handler rather than a thread_local flag: reading a thread_local
/// of a dlopen()ed library from a signal handler may allocate, which is not async-signal-safe.)
std::atomic<pid_t> g_guard_thread{0};
/// First byte of the guarded range (0 when none).
std::atomic<std::uintptr_t> g_guard_begin{0};
/// One past its last byte.
std::atomic<std::uintptr_t> g_guard_end{0};
/// SIGBUS faults absorbed so far.
std::atomic<unsigned> g_guard_faults{0};
/// The page size, read before the handler can run (sysconf is not async-signal-safe).
std::uintptr_t g_page_size = 4096;
/// The SIGBUS action in place before the guard's, for every fault that is not the guard's.
struct sigaction g_previous_bus {};
/// Guards alive (nested read_guarded() calls): the handler is installed by the first and the
/// previous action restored by the last, so a nested guard never takes the guard's own handler
/// for the previous action.
unsigned g_depth = 0;

/// Hands a SIGBUS that is not the guard's to the action in place before the guard: a handler is
/// called as the kernel would have called it; the default action (or SIG_IGN, which the kernel
/// overrides for a fault) is put back and the signal raised again: a fault by returning, so that
/// the access is retried under the old action, a signal sent by a process (kill, tgkill) by
/// raise(), delivered once this handler returns. The process then dies of SIGBUS as if the guard
/// did not exist.
void pass_on(int sig, siginfo_t* info, void* context) {
  const struct sigaction& old = g_previous_bus;
  if ((old.sa_flags & SA_SIGINFO) != 0 && old.sa_sigaction != nullptr) {
    old.sa_sigaction(sig, info, context);
    return;
  }
  if ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN &&
      old.sa_handler != nullptr) {
    old.sa_handler(sig);
    return;
  }
  ::sigaction(sig, &old, nullptr);
  if (info->si_code <= 0) ::raise(sig);  // SI_USER, SI_TKILL, SI_QUEUE: sent, not a fault
}

/// The guard's SIGBUS handler. Only a fault of the guarded thread (the one that armed the guard),
/// of code BUS_ADRERR (an access past the end of a file: the file shrank under the mapping) at an
/// address inside the guarded range is the guard's: a private zero page is mapped over the
/// faulting page, so the access is retried and reads zeros, and the fault is counted. Every other
/// SIGBUS (another thread's, a hardware memory error, one sent by kill(2), an address outside the
/// range) goes to the previous action (pass_on()). (mmap(2) is not on POSIX's async-signal-safe
/// list, but on Linux it is a bare system call.)
extern "C" void on_guarded_sigbus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  // SYNC POINT G (handler side): the thread check comes first; on the guarded thread the range
  // was set by that same thread (pairs with the signal fences of SigbusGuard), so relaxed loads
  // see it. On another thread the loads may see anything, and the thread check rejects it.
  if (info->si_code == BUS_ADRERR && ::gettid() == g_guard_thread.load(std::memory_order_relaxed) &&
      addr >= g_guard_begin.load(std::memory_order_relaxed) && addr < g_guard_end.load(std::memory_order_relaxed)) {
    void* page = reinterpret_cast<void*>(addr & ~(g_page_size - 1));
    if (::mmap(page, g_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      g_guard_faults.fetch_add(1, std::memory_order_relaxed);  // read back on this thread only
      return;
    }
  }
  pass_on(sig, info, context);
}

/// Serialises read_guarded(): one guarded thread at a time in the process (recursive: a nested
/// call, whose range then governs until it returns, does not deadlock).
std::recursive_mutex g_guard_mutex;

}  // namespace

SigbusGuard::SigbusGuard(std::span<const std::byte> mapping) noexcept
    : SigbusGuard(reinterpret_cast<std::uintptr_t>(mapping.data()),
                  reinterpret_cast<std::uintptr_t>(mapping.data()) + mapping.size()) {}

SigbusGuard::SigbusGuard(std::uintptr_t begin, std::uintptr_t end) noexcept
    : outer_begin_(g_guard_begin.load(std::memory_order_relaxed)),
      outer_end_(g_guard_end.load(std::memory_order_relaxed)),
      outer_thread_(g_guard_thread.load(std::memory_order_relaxed)) {
  g_page_size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  faults_ = g_guard_faults.load(std::memory_order_relaxed);
  g_guard_begin.store(begin, std::memory_order_relaxed);
  g_guard_end.store(end, std::memory_order_relaxed);
  g_guard_thread.store(::gettid(), std::memory_order_relaxed);
  if (g_depth++ == 0) {
    struct sigaction sa {};
    sa.sa_sigaction = on_guarded_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_bus);
  }
  // SYNC POINT G: the range and thread are in place before the guarded reads (pairs with the
  // handler's loads, which for a fault of ours run on this thread).
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

SigbusGuard::~SigbusGuard() {
  // SYNC POINT G': the guarded reads are done before the range is put back (pairs with the
  // handler's loads, which for a fault of ours run on this thread).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (--g_depth == 0) ::sigaction(SIGBUS, &g_previous_bus, nullptr);
  g_guard_thread.store(outer_thread_, std::memory_order_relaxed);
  g_guard_begin.store(outer_begin_, std::memory_order_relaxed);
  g_guard_end.store(outer_end_, std::memory_order_relaxed);
}

bool SigbusGuard::faulted() const noexcept {
  // Relaxed: the handler that counts ran on this thread.
  return g_guard_faults.load(std::memory_order_relaxed) != faults_;
}

}  // namespace shmlink::os

namespace shmlink {

bool read_guarded(std::span<const std::byte> range, const std::function<void()>& read) {
  const std::lock_guard<std::recursive_mutex> lock(os::g_guard_mutex);
  // An empty range guards every address: the mapping is made inside `read`.
  const auto begin = reinterpret_cast<std::uintptr_t>(range.data());
  const std::uintptr_t end = range.empty() ? std::numeric_limits<std::uintptr_t>::max() : begin + range.size();
  const os::SigbusGuard guard(range.empty() ? 0 : begin, end);
  if (read) read();
  return guard.faulted();
}

}  // namespace shmlink
