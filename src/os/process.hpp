// SPDX-License-Identifier: MIT
// Process identity and liveness.
#pragma once

#include <sys/types.h>

namespace shmlink::os {

/// getpid() without a syscall per call: cached, refreshed in fork children (pthread_atfork).
pid_t current_pid() noexcept;

/// True when `pid` (> 0) names a live process (kill(pid, 0) succeeds or fails with EPERM).
bool pid_alive(pid_t pid) noexcept;

}  // namespace shmlink::os
