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

/// First byte of the guarded range (0 when none).
std::atomic<std::uintptr_t> g_guard_begin{0};
/// One past its last byte.
std::atomic<std::uintptr_t> g_guard_end{0};
/// SIGBUS faults absorbed so far.
std::atomic<unsigned> g_guard_faults{0};
/// The page size, read before the handler can run (sysconf is not async-signal-safe).
std::uintptr_t g_page_size = 4096;
/// The SIGBUS action in place before the guard's, restored for faults that are not ours.
struct sigaction g_previous_bus {};

/// The guard's SIGBUS handler. A fault inside the guarded range (its file shrank under the
/// mapping) gets a private zero page mapped over the faulting page, so the access is retried and
/// reads zeros, and is counted. Any other fault restores the previous action, which the retried
/// access then triggers as if this handler had never existed. (mmap(2) is not on POSIX's
/// async-signal-safe list, but on Linux it is a bare system call.)
extern "C" void on_guarded_sigbus(int sig, siginfo_t* info, void* /*context*/) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  // SYNC POINT G (handler side): runs on the thread that set the range (pairs with the signal
  // fences of SigbusGuard), so relaxed loads see it.
  if (addr >= g_guard_begin.load(std::memory_order_relaxed) && addr < g_guard_end.load(std::memory_order_relaxed)) {
    void* page = reinterpret_cast<void*>(addr & ~(g_page_size - 1));
    if (::mmap(page, g_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      g_guard_faults.fetch_add(1, std::memory_order_relaxed);  // read back on this thread only
      return;
    }
  }
  ::sigaction(sig, &g_previous_bus, nullptr);
}

/// Serialises read_guarded(): one guarded range at a time in the process (recursive: a nested
/// call, which the inner range then governs, does not deadlock).
std::recursive_mutex g_guard_mutex;

}  // namespace

SigbusGuard::SigbusGuard(std::span<const std::byte> mapping) noexcept
    : SigbusGuard(reinterpret_cast<std::uintptr_t>(mapping.data()),
                  reinterpret_cast<std::uintptr_t>(mapping.data()) + mapping.size()) {}

SigbusGuard::SigbusGuard(std::uintptr_t begin, std::uintptr_t end) noexcept {
  g_page_size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  faults_ = g_guard_faults.load(std::memory_order_relaxed);
  g_guard_begin.store(begin, std::memory_order_relaxed);
  g_guard_end.store(end, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_sigaction = on_guarded_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, &g_previous_bus);
  // SYNC POINT G: the range is in place before the guarded reads (pairs with the handler's
  // loads, which run on this thread).
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

SigbusGuard::~SigbusGuard() {
  // SYNC POINT G': the guarded reads are done before the range is cleared (pairs with the
  // handler's loads, which run on this thread).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  ::sigaction(SIGBUS, &g_previous_bus, nullptr);
  g_guard_begin.store(0, std::memory_order_relaxed);
  g_guard_end.store(0, std::memory_order_relaxed);
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
