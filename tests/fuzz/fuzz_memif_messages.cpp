// SPDX-License-Identifier: MIT
// libFuzzer target: memif control messages as a hostile peer sends them (issue 17, "Keep it
// fixed"). The input is one datagram of any length, sent with 0..3 fds over a real
// SOCK_SEQPACKET socketpair and taken in by receive_message (length check, fd bookkeeping,
// O_NONBLOCK on the fd kept); its first 128 bytes also go through every decoder, whatever the
// type field says, since the state machines decode by type and a lie about the type must not
// matter.
#include "memif/control.hpp"
#include "memif/wire.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace {

namespace sm = shmlink::memif;
namespace mw = shmlink::memif::wire;

/// Every decoder over `m`; the strings are touched so that nothing is optimised away.
void decode_all(const mw::Message& m) {
  std::size_t total = 0;
  (void)mw::message_type(m);
  total += mw::decode_hello(m).name.size();
  const auto init = mw::decode_init(m);
  total += init.name.size() + init.secret.size();
  (void)mw::decode_add_region(m);
  (void)mw::decode_add_ring(m);
  total += mw::decode_connect(m).size();
  total += mw::decode_connected(m).size();
  total += mw::decode_disconnect(m).reason.size();
  if (total > 4 * mw::kMessageSize) __builtin_trap();  // names are bounded by their fields
}

/// A datagram of `size` bytes with `nfds` copies of `fd` attached (SCM_RIGHTS).
void send_raw(int sock, const std::uint8_t* data, std::size_t size, int nfds, int fd) {
  iovec iov{const_cast<std::uint8_t*>(data), size};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(3 * sizeof(int))]{};
  if (nfds > 0) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(static_cast<std::size_t>(nfds) * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(static_cast<std::size_t>(nfds) * sizeof(int));
    for (int k = 0; k < nfds; ++k) std::memcpy(CMSG_DATA(c) + k * sizeof(int), &fd, sizeof(int));
  }
  (void)::sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static int sp[2] = {-1, -1};
  static const int efd = ::eventfd(0, EFD_CLOEXEC);  // blocking: receive_message must fix that
  if (sp[0] < 0 && ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) != 0) return 0;

  mw::Message m{};
  std::memcpy(&m, data, std::min(size, sizeof m));
  decode_all(m);

  const int nfds = size > 0 ? data[size - 1] % 4 : 0;
  send_raw(sp[0], data, std::min<std::size_t>(size, 4096), nfds, efd);
  for (;;) {
    sm::UniqueFd fd;
    const auto r = sm::receive_message(sp[1], m, fd);
    if (r.code == shmlink::Errc::would_block) break;
    if (r.ok()) {
      decode_all(m);
      if (fd && (::fcntl(fd.get(), F_GETFL) & O_NONBLOCK) == 0) __builtin_trap();  // kept fds never block
    } else if (fd) {
      __builtin_trap();  // a rejected datagram keeps no fd
    }
  }
  return 0;
}
