// SPDX-License-Identifier: MIT
/// @file error.hpp
/// @brief Error codes, the error category and the `shmlink::Error` exception.
///
/// Setup calls (create, open, connect) throw `shmlink::Error`, a `std::system_error` whose
/// message names the resource (file, stream, socket, peer) and what was wrong. Hot-path calls
/// (write, read, wait) are `noexcept` and return a `shmlink::Status`. The numeric values of
/// `Errc` are the C API's return codes (include/shmlink.h) and are append-only.
#pragma once

#include <shmlink/export.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace shmlink {

/// Error conditions, shared by the C++ and C APIs. 0 is success, errors are negative and
/// grouped in bands: -1..-49 general, -100..-149 streams, -150..-199 memif. Append-only: never renumber.
enum class Errc : int {
  ok = 0,                 ///< success
  invalid_argument = -1,  ///< a caller-supplied argument is malformed (name, shape, dtype, size)
  not_found = -2,         ///< the named resource does not exist
  exists = -3,            ///< the resource exists and exclusive creation was asked for
  permission = -4,        ///< the OS refused access (EACCES/EPERM)
  layout = -5,            ///< a shared file has the wrong layout, version or size
  no_space = -6,          ///< the backing file system is full (ENOSPC) or memory is short
  system = -7,            ///< another OS error; the message carries errno's text
  timeout = -8,           ///< a wait reached its deadline; no data, not a failure of the channel
  interrupted = -9,       ///< a wait was interrupted by a signal (EINTR)
  would_block = -10,      ///< a try-operation found nothing to do ("no data yet")
  size_mismatch = -11,    ///< a buffer's size differs from the frame size
  closed = -12,           ///< the handle is closed or moved-from
  out_of_range = -13,     ///< an index (semaphore slot, keyword) is out of range
  name_too_long = -14,    ///< a name exceeds its field (stream names: 79 bytes)
  dtype_mismatch = -15,   ///< the element type differs from the stream's datatype
  busy = -16,             ///< every slot of a bounded resource (semaphore slots) is taken
  peer_exited = -17,      ///< the peer process of a channel died or exited (see its PeerStatus)
  shut_down = -18,        ///< the queue or interface was shut down: no more samples will come
  torn = -100,            ///< a validated read kept colliding with the writer and gave up
  writer_active = -101,   ///< the write flag stayed set (a writer may have died mid-write)
  replaced = -102,        ///< the channel (stream, queue) was re-created or removed, as a file or a region entry: re-open it by name
  overwritten = -103,     ///< a rolling-buffer reader was lapped: frames were lost (the newest was read)
  incomplete = -104,      ///< a packetised frame was published with packets missing
  not_connected = -150,   ///< memif: the interface's link is down (no connection yet, or lost)
  protocol = -151,        ///< a peer broke its protocol (memif, QEMU's ivshmem-server protocol): bad message, bad descriptor
  refused = -152,         ///< memif: the peer refused the handshake (DISCONNECT with a reason)
};

/// The `std::error_category` of `Errc` ("shmlink").
SHMLINK_EXPORT const std::error_category& error_category() noexcept;

/// Makes a `std::error_code` from an `Errc`, enabling `std::error_code ec = Errc::timeout`.
inline std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// A short, static description of a code ("timed out"); never null, never allocates.
SHMLINK_EXPORT const char* strerror(Errc e) noexcept;

/// Maps an errno value to the closest `Errc` (ENOENT -> not_found, EACCES -> permission, ...).
SHMLINK_EXPORT Errc errc_from_errno(int err) noexcept;

/// Exception thrown by setup calls. `code()` is an `Errc` in `error_category()`; `what()`
/// names the resource and the problem, e.g.
/// "opening /dev/shm/wfs.im.shm: version '1.04' is not '2.00'".
class SHMLINK_EXPORT Error : public std::system_error {
 public:
  /// @param code the condition; @param message full text naming the resource.
  Error(Errc code, const std::string& message);
  /// The condition as an `Errc`.
  [[nodiscard]] Errc errc() const noexcept { return static_cast<Errc>(code().value()); }
  /// The message exactly as given (std::system_error would append the category's text).
  [[nodiscard]] const char* what() const noexcept override { return message_.what(); }

 private:
  std::runtime_error message_;  // reference-counted: copying an Error never throws
};

/// Result of a hot-path call: `Errc::ok` or the reason it did not happen. Cheap to copy.
class [[nodiscard]] Status {
 public:
  constexpr Status() noexcept = default;
  constexpr Status(Errc e) noexcept : code_(e) {}  // NOLINT(google-explicit-constructor)
  /// True when the call succeeded.
  [[nodiscard]] constexpr bool ok() const noexcept { return code_ == Errc::ok; }
  constexpr explicit operator bool() const noexcept { return ok(); }
  /// The condition.
  [[nodiscard]] constexpr Errc code() const noexcept { return code_; }
  /// Static description of the condition.
  [[nodiscard]] const char* message() const noexcept { return shmlink::strerror(code_); }
  friend constexpr bool operator==(Status a, Status b) noexcept { return a.code_ == b.code_; }

 private:
  Errc code_ = Errc::ok;
};

}  // namespace shmlink

template <>
struct std::is_error_code_enum<shmlink::Errc> : std::true_type {};
