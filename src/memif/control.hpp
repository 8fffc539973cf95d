// SPDX-License-Identifier: MIT
// memif control channel transport: AF_UNIX SOCK_SEQPACKET sockets carrying one 128-byte message
// per datagram and at most one fd per message (docs/reference/memif.md, sections 4
// and 13).
//
// Conventions (include/shmlink/error.hpp): setting a socket up (parse_socket_name,
// listen_seqpacket) throws shmlink::Error naming the socket; per-message calls (accept, send,
// receive) and connect, which a reconnect timer retries, are noexcept and return a result whose
// `code` is Errc::ok or the reason, with errno kept for system errors. "No message yet" is
// Errc::would_block, not a failure.
#pragma once

#include "memif/wire.hpp"
#include "os/sys.hpp"

#include <shmlink/error.hpp>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace shmlink::memif {

using os::UniqueFd;

/// A control-socket address (section 13): a filesystem path or an abstract name.
struct SocketAddress {
  sockaddr_un addr{};     ///< ready for bind/connect
  socklen_t length = 0;   ///< address length to pass with `addr`; abstract: no trailing NUL counted
  bool abstract = false;  ///< true for '@name'
  std::string path;       ///< the filesystem path; empty for abstract names
  std::string display;    ///< printable form for messages: the path, or '@' + name (odd bytes as \xNN)

  /// `addr` as the pointer type the socket calls take.
  [[nodiscard]] const sockaddr* sockaddr_ptr() const noexcept { return reinterpret_cast<const sockaddr*>(&addr); }
};

/// Parses a libmemif-style socket name (section 13). A name starting with '@' (or with a NUL
/// byte) is abstract: sun_path[0] = '\0', then the name after the first byte, and length =
/// offsetof(sockaddr_un, sun_path) + 1 + name length, with no trailing NUL counted (the rule
/// libmemif, VPP and DPDK share). Anything else is a filesystem path used as given, NUL-terminated.
/// @param name '@name' (1..107 bytes after '@') or a path (1..107 bytes, no NUL inside).
/// @throws Error invalid_argument (empty name, empty abstract name, NUL inside a path),
///         name_too_long (more than 107 bytes).
SocketAddress parse_socket_name(std::string_view name);

/// Result of one per-message operation (accept, send_message, receive_message). Cheap, no
/// allocation; describe() builds the text for a log line or an exception.
struct MessageResult {
  /// ok; would_block (EAGAIN on a non-blocking socket: nothing to do yet); closed (receive: EOF,
  /// the peer closed; send: EPIPE/ECONNRESET); layout (a malformed datagram: not 128 bytes, or
  /// its control data was truncated); otherwise errc_from_errno(sys_errno).
  Errc code = Errc::ok;
  int sys_errno = 0;                ///< errno behind a system error (and EAGAIN/EPIPE), else 0
  std::size_t bytes = 0;            ///< receive: the datagram's real length (also when malformed)
  unsigned fds_dropped = 0;         ///< receive: fds the peer sent that were closed (extra, or with a bad message)
  bool control_truncated = false;   ///< receive: MSG_CTRUNC (more fds than the control buffer holds)
  bool fd_not_made_nonblocking = false;  ///< receive: fcntl(O_NONBLOCK) failed on the received fd (sys_errno)

  /// True when the operation happened.
  [[nodiscard]] bool ok() const noexcept { return code == Errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
  /// "malformed message: 100 bytes", "peer closed the connection", "making the received
  /// region/interrupt fd non-blocking: Bad file descriptor", strerror(sys_errno), ...
  [[nodiscard]] std::string describe() const;
};

/// Result of connect_seqpacket: a connected socket, or the errno of the failure.
struct ConnectResult {
  UniqueFd fd;    ///< the connected socket (CLOEXEC); empty on failure
  /// 0, or errno: ECONNREFUSED (a socket file nobody listens on, or no listener on an abstract
  /// name), ENOENT (no such path), EAGAIN (non-blocking connect, listener's backlog full),
  /// EACCES, ENOTDIR, EPROTOTYPE (the listener is not SOCK_SEQPACKET), ...
  int error = 0;
  /// True when connected.
  explicit operator bool() const noexcept { return static_cast<bool>(fd); }
  /// errc_from_errno(error).
  [[nodiscard]] Errc errc() const noexcept { return errc_from_errno(error); }
};

/// A listening SOCK_SEQPACKET socket (the master's side, section 4). Non-blocking, CLOEXEC,
/// SO_PASSCRED set. Owns its filesystem path: close() and the destructor unlink it, but only
/// while the path still names the socket file this listener bound (same st_dev/st_ino), so a
/// listener that was replaced never removes its successor's socket. Move-only.
class SeqpacketListener {
 public:
  SeqpacketListener() noexcept = default;
  SeqpacketListener(SeqpacketListener&& o) noexcept;
  SeqpacketListener& operator=(SeqpacketListener&& o) noexcept;
  SeqpacketListener(const SeqpacketListener&) = delete;
  SeqpacketListener& operator=(const SeqpacketListener&) = delete;
  ~SeqpacketListener();

  /// The listening fd (for epoll), or -1 when closed.
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  /// True until close().
  [[nodiscard]] bool is_open() const noexcept { return static_cast<bool>(fd_); }
  /// The address it listens on.
  [[nodiscard]] const SocketAddress& address() const noexcept { return addr_; }

  /// Accepts one pending connection into `out` (CLOEXEC; non-blocking when `nonblocking`).
  /// EINTR is retried. @return ok; would_block when none is pending (or it was aborted before
  /// being accepted); closed when the listener is closed; a system error (EMFILE, ENFILE, ...).
  MessageResult accept(UniqueFd& out, bool nonblocking = true) noexcept;

  /// Unlinks the path if it still is this listener's socket file, then closes the fd. Idempotent.
  void close() noexcept;

 private:
  friend SeqpacketListener listen_seqpacket(const SocketAddress& addr, int backlog);
  UniqueFd fd_;
  SocketAddress addr_;
  bool owns_path_ = false;  // addr_.path was bound by us and is unlinked on close
  dev_t dev_ = 0;           // identity of the socket file we bound
  ino_t ino_ = 0;
};

/// Creates a listening socket on `addr` (section 4: socket, SO_PASSCRED, bind, listen; section
/// 13.3: stale files). For a filesystem path that exists: if it is a socket, probe it with a
/// connect; refused (ECONNREFUSED) means stale, so unlink it and bind; an answer means an active
/// listener. An abstract name in use is an active listener too.
/// @param backlog listen() backlog; values < 1 are raised to 1.
/// @throws Error exists ("active listener on PATH", or "PATH exists and is not a socket"),
///         not_found (directory missing), permission, or another errno mapping; the message
///         names the socket.
SeqpacketListener listen_seqpacket(const SocketAddress& addr, int backlog = 8);

/// Connects a CLOEXEC SOCK_SEQPACKET socket to `addr` (the slave's side, section 4). EINTR is
/// retried. Never throws: a reconnect timer tells "nobody listens yet" (ECONNREFUSED, ENOENT)
/// from real failures through `error`.
/// @param nonblocking create the socket non-blocking (connect then fails with EAGAIN instead of
///        waiting when the listener's backlog is full); the socket stays non-blocking.
ConnectResult connect_seqpacket(const SocketAddress& addr, bool nonblocking = false) noexcept;

/// Sends `msg` as one 128-byte datagram (section 4), with `fd_to_pass` (when >= 0) as the only
/// fd of an SCM_RIGHTS control message; the caller keeps its own copy of that fd. MSG_NOSIGNAL
/// (a closed peer gives `closed`, not SIGPIPE); EINTR is retried.
/// @return ok; would_block (non-blocking socket, peer's queue full); closed (EPIPE, ECONNRESET,
///         ENOTCONN); a system error.
MessageResult send_message(int fd, const wire::Message& msg, int fd_to_pass = -1) noexcept;

/// Receives one datagram (section 4) into `msg` and its fd, if any, into `received_fd` (which is
/// reset first, and holds -1 when the message carried none). Received fds are CLOEXEC and made
/// O_NONBLOCK (on the open file description the peer shares, so the peer sees it too). At most
/// one fd is kept: any further ones, and all fds of a datagram that is rejected, are closed and
/// counted in `fds_dropped` (a peer can never leak fds into this process). SCM_CREDENTIALS is
/// ignored. EINTR is retried. `msg` is written only on success.
/// @return ok; would_block (non-blocking socket, nothing queued); closed (EOF: the peer closed,
///         0 bytes; also ECONNRESET); layout ("malformed message: N bytes" when the datagram is
///         not exactly 128 bytes, N being its real length; or control data truncated); a
///         system error (also when the received fd could not be made non-blocking: it is
///         closed and counted in `fds_dropped`, and `fd_not_made_nonblocking` is set).
MessageResult receive_message(int fd, wire::Message& msg, UniqueFd& received_fd) noexcept;

}  // namespace shmlink::memif
