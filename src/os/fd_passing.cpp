// SPDX-License-Identifier: MIT
// Bytes with a descriptor attached (fd_passing.hpp).
#include "os/fd_passing.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace shmlink::os {

ssize_t send_with_fd(int socket, std::span<const std::byte> bytes, int fd, int flags) noexcept {
  iovec iov{};
  iov.iov_base = const_cast<std::byte*>(bytes.data());  // sendmsg does not write through it
  iov.iov_len = bytes.size();
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int))]{};
  if (fd >= 0) {
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  for (;;) {
    const ssize_t n = ::sendmsg(socket, &mh, MSG_NOSIGNAL | flags);
    if (n >= 0) return n;
    if (errno != EINTR) return -static_cast<ssize_t>(errno);
  }
}

}  // namespace shmlink::os
