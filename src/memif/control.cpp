// SPDX-License-Identifier: MIT
// memif control channel transport (src/memif/control.hpp; docs/reference/memif.md sections 4 and 13).
#include "memif/control.hpp"

#include "os/fd_passing.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>
#include <utility>

namespace shmlink::memif {
namespace {

/// Room in sun_path for a name: 108 bytes, one of them taken by the NUL (filesystem) or by the
/// leading '\0' (abstract).
constexpr std::size_t kMaxName = sizeof(sockaddr_un::sun_path) - 1;

/// Most fds one receive can take in before MSG_CTRUNC. memif sends one; the room for more lets us
/// close extras instead of relying on the kernel dropping them.
constexpr std::size_t kMaxReceivedFds = 16;

/// `s` with bytes outside printable ASCII written as \xNN.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out;
}

bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }

MessageResult failure(Errc code, int err) noexcept {
  MessageResult r;
  r.code = code;
  r.sys_errno = err;
  return r;
}

MessageResult from_errno(int err) noexcept { return failure(errc_from_errno(err), err); }

int connect_retrying(int fd, const SocketAddress& addr) noexcept {
  for (;;) {
    if (::connect(fd, addr.sockaddr_ptr(), addr.length) == 0) return 0;
    const int err = errno;
    if (err == EISCONN) return 0;  // an interrupted attempt completed meanwhile
    if (err != EINTR) return err;
  }
}

/// VPP's stale-socket rule (section 13.3) for an existing path: a socket file nobody listens on
/// (connect refused) is unlinked; an answer means an active listener. Throws otherwise.
void remove_stale_socket(const SocketAddress& addr) {
  struct stat st{};
  if (::lstat(addr.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    os::throw_errno(errno, "checking memif socket path", addr.display);
  }
  if (!S_ISSOCK(st.st_mode))
    throw Error(Errc::exists, "creating memif socket " + addr.display + ": the path exists and is not a socket");
  UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) os::throw_errno(errno, "creating a probe socket for", addr.display);
  const int err = connect_retrying(probe.get(), addr);
  if (err == 0 || would_block(err) || err == EINPROGRESS)
    throw Error(Errc::exists, "creating memif socket " + addr.display + ": active listener on " + addr.display);
  if (err == EPROTOTYPE)
    throw Error(Errc::exists, "creating memif socket " + addr.display + ": active listener on " + addr.display +
                                  " (not SOCK_SEQPACKET)");
  if (err == ENOENT) return;  // removed meanwhile
  if (err != ECONNREFUSED) os::throw_errno(err, "probing memif socket", addr.display);
  if (::unlink(addr.path.c_str()) != 0 && errno != ENOENT)
    os::throw_errno(errno, "removing stale memif socket", addr.display);
}

}  // namespace

// ---- addresses ---------------------------------------------------------------------------------

SocketAddress parse_socket_name(std::string_view name) {
  if (name.empty()) throw Error(Errc::invalid_argument, "memif socket name is empty");
  SocketAddress a;
  a.addr.sun_family = AF_UNIX;
  if (name.front() == '@' || name.front() == '\0') {
    const std::string_view n = name.substr(1);
    a.display = printable(n);
    a.display.insert(a.display.begin(), '@');  // not "@" + s: g++ 12 -O3 warns (-Wrestrict, a false positive)
    if (n.empty()) throw Error(Errc::invalid_argument, "memif socket name '@': the abstract name is empty");
    if (n.size() > kMaxName)
      throw Error(Errc::name_too_long, "memif socket name " + a.display + ": abstract name is " +
                                           std::to_string(n.size()) + " bytes, at most " + std::to_string(kMaxName));
    a.addr.sun_path[0] = '\0';
    std::memcpy(a.addr.sun_path + 1, n.data(), n.size());
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n.size());
    a.abstract = true;
    return a;
  }
  a.display = printable(name);
  if (name.find('\0') != std::string_view::npos)
    throw Error(Errc::invalid_argument, "memif socket path " + a.display + " contains a NUL byte");
  if (name.size() > kMaxName)
    throw Error(Errc::name_too_long, "memif socket path " + a.display + " is " + std::to_string(name.size()) +
                                         " bytes, at most " + std::to_string(kMaxName));
  std::memcpy(a.addr.sun_path, name.data(), name.size());
  a.addr.sun_path[name.size()] = '\0';
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  a.path = std::string(name);
  return a;
}

// ---- results -----------------------------------------------------------------------------------

std::string MessageResult::describe() const {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::would_block: return "no message yet (would block)";
    case Errc::closed: return sys_errno != 0 ? std::string("peer closed the connection (") + std::strerror(sys_errno) + ")"
                                             : std::string("peer closed the connection");
    case Errc::layout:
      if (control_truncated) return "malformed message: control data truncated (more than " +
                                    std::to_string(kMaxReceivedFds) + " fds)";
      return "malformed message: " + std::to_string(bytes) + " bytes";
    default: break;
  }
  if (fd_not_made_nonblocking)
    return std::string("making the received region/interrupt fd non-blocking: ") + std::strerror(sys_errno);
  return sys_errno != 0 ? std::string(std::strerror(sys_errno)) : std::string(shmlink::strerror(code));
}

// ---- listener ----------------------------------------------------------------------------------

SeqpacketListener::SeqpacketListener(SeqpacketListener&& o) noexcept
    : fd_(std::move(o.fd_)), addr_(std::move(o.addr_)), owns_path_(std::exchange(o.owns_path_, false)),
      dev_(o.dev_), ino_(o.ino_) {}

SeqpacketListener& SeqpacketListener::operator=(SeqpacketListener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::move(o.fd_);
    addr_ = std::move(o.addr_);
    owns_path_ = std::exchange(o.owns_path_, false);
    dev_ = o.dev_;
    ino_ = o.ino_;
  }
  return *this;
}

SeqpacketListener::~SeqpacketListener() { close(); }

void SeqpacketListener::close() noexcept {
  // Unlink before closing, so the path never names a socket nobody will answer on.
  if (owns_path_) {
    struct stat st{};
    if (::lstat(addr_.path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
      ::unlink(addr_.path.c_str());
    owns_path_ = false;
  }
  fd_.reset();
}

MessageResult SeqpacketListener::accept(UniqueFd& out, bool nonblocking) noexcept {
  if (!fd_) return failure(Errc::closed, 0);
  const int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  for (;;) {
    const int c = ::accept4(fd_.get(), nullptr, nullptr, flags);
    if (c >= 0) {
      out.reset(c);
      return {};
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (would_block(err) || err == ECONNABORTED) return failure(Errc::would_block, err);
    return from_errno(err);
  }
}

SeqpacketListener listen_seqpacket(const SocketAddress& addr, int backlog) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) os::throw_errno(errno, "creating memif socket", addr.display);
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0)
    os::throw_errno(errno, "setting SO_PASSCRED on memif socket", addr.display);
  if (!addr.abstract) remove_stale_socket(addr);
  if (::bind(fd.get(), addr.sockaddr_ptr(), addr.length) != 0) {
    const int err = errno;
    if (err == EADDRINUSE)
      throw Error(Errc::exists, "binding memif socket " + addr.display + ": active listener on " + addr.display);
    os::throw_errno(err, "binding memif socket", addr.display);
  }
  SeqpacketListener l;
  l.fd_ = std::move(fd);
  l.addr_ = addr;
  if (!addr.abstract) {
    struct stat st{};
    if (::lstat(addr.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      l.owns_path_ = true;
      l.dev_ = st.st_dev;
      l.ino_ = st.st_ino;
    }
  }
  // From here on `l` unlinks its path if listen() fails and we throw.
  if (::listen(l.fd_.get(), std::max(backlog, 1)) != 0) os::throw_errno(errno, "listening on memif socket", addr.display);
  return l;
}

// ---- connect, send, receive ----------------------------------------------------------------------

ConnectResult connect_seqpacket(const SocketAddress& addr, bool nonblocking) noexcept {
  ConnectResult r;
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
  if (!fd) {
    r.error = errno;
    return r;
  }
  const int err = connect_retrying(fd.get(), addr);
  if (err != 0) {
    r.error = err;
    return r;
  }
  r.fd = std::move(fd);
  return r;
}

MessageResult send_message(int fd, const wire::Message& msg, int fd_to_pass) noexcept {
  const ssize_t n = os::send_with_fd(fd, std::as_bytes(std::span(&msg, 1)), fd_to_pass, 0);
  if (n >= 0) {
    // SOCK_SEQPACKET sends a datagram whole or not at all.
    if (static_cast<std::size_t>(n) != wire::kMessageSize) return failure(Errc::system, EMSGSIZE);
    return {};
  }
  const int err = static_cast<int>(-n);
  if (would_block(err)) return failure(Errc::would_block, err);
  if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) return failure(Errc::closed, err);
  return from_errno(err);
}

MessageResult receive_message(int fd, wire::Message& msg, UniqueFd& received_fd) noexcept {
  received_fd.reset();
  unsigned char buf[wire::kMessageSize];
  iovec iov{};
  iov.iov_base = buf;
  iov.iov_len = sizeof buf;
  // Room for kMaxReceivedFds fds plus the SCM_CREDENTIALS a SO_PASSCRED socket always gets.
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * kMaxReceivedFds) + CMSG_SPACE(sizeof(ucred))];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  ssize_t n = 0;
  for (;;) {
    // MSG_TRUNC: return the datagram's real length even when it exceeds the buffer (Linux >= 3.4).
    n = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n >= 0) break;
    const int err = errno;
    if (err == EINTR) continue;
    if (would_block(err)) return failure(Errc::would_block, err);
    if (err == ECONNRESET) return failure(Errc::closed, err);
    return from_errno(err);
  }

  // Take every fd out of the control data first: whatever happens next, each is kept or closed.
  UniqueFd kept;
  unsigned dropped = 0;
  if (mh.msg_controllen >= sizeof(cmsghdr)) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;  // SCM_CREDENTIALS: ignored
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* data = CMSG_DATA(c);
      for (std::size_t i = 0; i < count; ++i) {
        int f = -1;
        std::memcpy(&f, data + i * sizeof(int), sizeof(int));
        if (f < 0) continue;
        if (!kept) {
          kept.reset(f);
        } else {
          ::close(f);
          ++dropped;
        }
      }
    }
  }

  MessageResult r;
  r.bytes = static_cast<std::size_t>(n);
  r.fds_dropped = dropped;
  const bool malformed = n == 0 || static_cast<std::size_t>(n) != wire::kMessageSize ||
                         (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  if (malformed) {
    if (kept) ++r.fds_dropped;  // `kept` closes it on return
    if (n == 0) {
      r.code = Errc::closed;  // EOF: SOCK_SEQPACKET reports the peer's close as a 0-byte read
    } else {
      r.code = Errc::layout;
      r.control_truncated = (mh.msg_flags & MSG_CTRUNC) != 0;
    }
    return r;
  }
  if (kept) {
    // A peer's fd must never block us (its eventfd may come without EFD_NONBLOCK). O_NONBLOCK
    // lives on the open file description, which the peer shares: it sees the change, and may
    // undo it; ring.cpp therefore reads eventfds with RWF_NOWAIT and polls before writing.
    const int fl = ::fcntl(kept.get(), F_GETFL);
    if (fl < 0 || ((fl & O_NONBLOCK) == 0 && ::fcntl(kept.get(), F_SETFL, fl | O_NONBLOCK) != 0)) {
      const int err = errno;
      ++r.fds_dropped;  // `kept` closes it on return
      r.code = errc_from_errno(err);
      r.sys_errno = err;
      r.fd_not_made_nonblocking = true;
      return r;
    }
  }
  std::memcpy(&msg, buf, wire::kMessageSize);
  received_fd = std::move(kept);
  return r;
}

}  // namespace shmlink::memif
