// SPDX-License-Identifier: MIT
#include "os/process.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace shmlink::os {
namespace {

std::atomic<pid_t> g_pid{0};

void refresh_pid() noexcept { g_pid.store(::getpid(), std::memory_order_relaxed); }

void install_once() noexcept {
  static const bool installed = [] {
    refresh_pid();
    ::pthread_atfork(nullptr, nullptr, &refresh_pid);
    return true;
  }();
  (void)installed;
}

}  // namespace

pid_t current_pid() noexcept {
  pid_t p = g_pid.load(std::memory_order_relaxed);
  if (p != 0) return p;
  install_once();
  return g_pid.load(std::memory_order_relaxed);
}

bool pid_alive(pid_t pid) noexcept {
  if (pid <= 0) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace shmlink::os
