// SPDX-License-Identifier: MIT
// Sending bytes with a file descriptor attached (SCM_RIGHTS), for the control sockets of memif
// (src/memif/control.cpp) and of QEMU's ivshmem server protocol (src/ivshmem/peer_protocol.cpp).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>

namespace shmlink::os {

/// Sends `bytes` in one sendmsg(2) on `socket` with, when `fd >= 0`, that descriptor attached as
/// one SCM_RIGHTS control message (the receiver gets its own copy; the caller keeps `fd`).
/// MSG_NOSIGNAL always (a closed peer gives EPIPE, never SIGPIPE), plus `flags` (MSG_DONTWAIT for
/// a non-blocking send on a blocking socket); retried on EINTR. A stream socket may send fewer
/// bytes than asked (the descriptor goes with the first byte); a SOCK_SEQPACKET socket sends all
/// or nothing.
/// @return the number of bytes sent, or -errno (-EAGAIN/-EWOULDBLOCK: the socket is full;
///         -EPIPE, -ECONNRESET, -ENOTCONN: the peer is gone).
ssize_t send_with_fd(int socket, std::span<const std::byte> bytes, int fd, int flags) noexcept;

}  // namespace shmlink::os
