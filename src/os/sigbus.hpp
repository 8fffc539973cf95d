// SPDX-License-Identifier: MIT
// The SIGBUS guard: reads of a mapping whose file shrinks under them (truncated in place, as
// DAO's re-creation does) read zeros instead of killing the process (read_guarded() in
// include/shmlink/segment.hpp is its public face).
#pragma once

#include <cstdint>
#include <span>

namespace shmlink::os {

/// While alive, a SIGBUS from an access to the guarded addresses does not kill the process: the
/// faulting page is replaced by a private zero page, so the access is retried and reads zeros,
/// and faulted() turns true, so the caller discards what it read. Installs its handler on
/// construction and restores the previous action on destruction; a SIGBUS outside the range goes
/// to the previous action as if the guard did not exist. One guard at a time in a process (the
/// handler and its range are process-wide): read_guarded() serialises its callers. SIGBUS is
/// delivered to the faulting thread, so the guarded reads run on the constructing thread.
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
};

}  // namespace shmlink::os
