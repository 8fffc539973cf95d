// SPDX-License-Identifier: MIT
/// @file guest_vm.hpp
/// @brief Test support: boots a QEMU guest (Debian's kernel plus the initramfs the build makes
/// in tests/vm) that runs one busy-box shell command and reports its exit status, optionally
/// with ivshmem-plain / ivshmem-doorbell devices (docs/vm.md; the contract of issue 21).
///
/// Every guest is a `qemu-system-x86_64` child of the test process, with KVM when /dev/kvm works
/// (probed once per process with a short boot) and TCG otherwise, killed at its timeout, when
/// the GuestVm is destroyed, and by the kernel when the thread that started it ends
/// (PR_SET_PDEATHSIG): start guests from a thread that outlives them (the test's own thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <tl/expected.hpp>

namespace shmlink::testvm {

/// "" when guests can run here, else a sentence saying what is missing (no qemu-system-x86_64,
/// no kernel image or initramfs in the build tree, ...). Tests do
/// `if (auto why = vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;`.
std::string vm_unavailable_reason();

/// "" when the guests have the ivshmem UIO driver (drivers/uio_ivshmem, loaded by /init), else a
/// sentence: vm_unavailable_reason(), or what the build lacked to build the driver (the guest
/// kernel's headers, its uio.ko). Tests of the driver skip with it.
std::string vm_driver_unavailable_reason();

/// True when guests run under KVM (/dev/kvm opens and a short probe boot under KVM reported
/// its status), false for TCG. Probed once per process; calls vm_unavailable_reason() first.
bool vm_uses_kvm();

/// What to boot.
struct GuestSpec {
  /// Names the guest in messages and its serial log file (letters, digits, '-', '_').
  std::string name = "guest";
  /// A busybox sh command line, run by the guest's /init as root with /proc, /sys, /dev,
  /// /dev/shm and /tmp mounted and PATH=/bin (busybox, /bin/shmlink and every
  /// shmlink_vm_guest_binary()). It travels base64-encoded in one kernel command-line word, so
  /// any bytes are fine; the whole kernel command line is limited to 2047 bytes.
  std::string command;
  /// Environment of the command: each becomes a `key=value` word of the kernel command line.
  /// Keys: [A-Za-z_][A-Za-z0-9_]* (no '.', which the kernel takes for a module parameter);
  /// values: printable ASCII without spaces or quotes. At most 24 entries.
  std::map<std::string, std::string> env;
  /// Adds `-object memory-backend-file,mem-path=plain_path,size=plain_size,share=on -device
  /// ivshmem-plain` when not empty: the guest's BAR2 is that file. plain_size: bytes, a power of
  /// two (QEMU refuses others); 0 means the file's current size.
  std::string plain_path;
  std::uint64_t plain_size = 0;
  /// Adds `-chardev socket,path=doorbell_socket -device ivshmem-doorbell,vectors=vectors` when
  /// not empty: an ivshmem-server must be listening there before start().
  std::string doorbell_socket;
  unsigned vectors = 1;
  /// The guest is killed this long after start(); wait() then returns -1.
  std::chrono::seconds timeout{60};
};

/// A running (or finished) guest. Move-only; the destructor kills a guest that still runs and
/// removes its scratch directory (serial log, QEMU's stderr).
class GuestVm {
 public:
  /// Starts QEMU for `spec` and returns at once (the guest boots in the background).
  /// @return the guest, or a message: vm_unavailable_reason(), an invalid spec (name, env word,
  ///         command line too long, plain_size not a power of two), a failed fork/exec.
  static tl::expected<GuestVm, std::string> start(const GuestSpec& spec);

  GuestVm(GuestVm&& other) noexcept;
  GuestVm& operator=(GuestVm&& other) noexcept;
  GuestVm(const GuestVm&) = delete;
  GuestVm& operator=(const GuestVm&) = delete;
  ~GuestVm();

  /// Waits until QEMU exits (at most until the spec's timeout, then kills it) and returns the
  /// guest command's exit status (0..255) from the `SHMLINK-GUEST-EXIT <status>` line of the
  /// serial log, or -1 (timeout, QEMU failed, the guest crashed or powered off without a
  /// status) with log() saying why. Calling it again returns the same answer.
  int wait();
  /// True while QEMU runs (not yet reaped).
  bool running();
  /// The serial console so far (the command's stdout and stderr, the kernel's messages at
  /// `quiet` level), followed by the harness's notes (the QEMU command line, QEMU's own stderr,
  /// why wait() returned -1). For failure messages.
  [[nodiscard]] std::string log() const;
  /// Kills QEMU now (SIGKILL) and reaps it; wait() then returns -1 unless the status had
  /// already arrived.
  void kill();

 private:
  friend struct GuestVmAccess;  // the KVM probe (guest_vm.cpp)
  GuestVm() = default;
  static tl::expected<GuestVm, std::string> start_internal(const GuestSpec& spec, bool kvm);
  void reap(bool block_until_deadline);
  void release() noexcept;

  std::string name_;
  std::string scratch_;  // directory holding serial.log and qemu.stderr
  std::string command_line_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point deadline_{};
  std::chrono::seconds timeout_{0};
  bool finished_ = false;
  int status_ = -1;
  std::string note_;
};

}  // namespace shmlink::testvm
