// SPDX-License-Identifier: MIT
// The SIGBUS guard: reads of a mapping whose file shrinks under them (truncated in place, as
// DAO's re-creation does) read zeros instead of killing the process (read_guarded() in
// include/shmlink/segment.hpp is its public face).
#pragma once

#include <cstdint>
#include <span>

namespace shmlink::os {

/// While alive, a SIGBUS of the constructing thread from an access past the end of a file
/// (si_code BUS_ADRERR) at a guarded address does not kill the process: the faulting page is
/// replaced by a private zero page, so the access is retried and reads zeros, and faulted() turns
/// true, so the caller discards what it read. Only that thread is armed: a SIGBUS of another
/// thread, of another code (a hardware memory error, one sent by kill(2)) or outside the range
/// goes to the action in place before the guard (its handler is called, or the default action
/// kills the process) as if the guard did not exist. Installs its handler on construction and
/// restores the previous action on destruction (nested guards: the outermost). One armed thread
/// at a time in a process (the handler is process-wide): read_guarded() serialises its callers.
class SigbusGuard {
 public:
  /// Guards the addresses of `mapping`.
  explicit SigbusGuard(std::span<const std::byte> mapping) noexcept;
  /// Guards the addresses [begin, end).
  SigbusGuard(std::uintptr_t begin, std::uintptr_t end) noexcept;
  /// Restores the previous SIGBUS action.
  ~SigbusGuard();
  SigbusGuard(const SigbusGuard&) = delete;
  SigbusGuard& operator=(const SigbusGuard&) = delete;

  /// True when an access under this guard faulted (what was read is garbage).
  [[nodiscard]] bool faulted() const noexcept;

 private:
  unsigned faults_ = 0;
  std::uintptr_t outer_begin_;  ///< the range of an enclosing guard, put back on destruction
  std::uintptr_t outer_end_;
  int outer_thread_;  ///< the thread of an enclosing guard (0: none)
};

}  // namespace shmlink::os
