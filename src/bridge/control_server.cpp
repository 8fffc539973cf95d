// SPDX-License-Identifier: MIT
// The control socket's server (control_server.hpp; docs/design/bridge.md, "The control socket").
#include "bridge/control_server.hpp"

#include "remote/control_protocol.hpp"

#include <shmlink/error.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace shmlink::bridge::detail {

namespace {

/// Largest request read: requests are a verb and a few short fields.
constexpr std::size_t kMaxRequest = 64 * 1024;

sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    throw Error(Errc::invalid_argument, "control socket '" + path + "': a socket path must be 1.." +
                                            std::to_string(sizeof a.sun_path - 1) + " bytes");
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

std::string errno_text(int e) { return std::strerror(e); }

/// True when something accepts connections at `path` (another service's live socket).
bool someone_listens(const sockaddr_un& a) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return live;
}

/// Room a datagram needs in an AF_UNIX send buffer beyond its bytes (the kernel's skb overhead;
/// generous: the buffer only has to be at least this large, nothing is allocated up front).
constexpr std::size_t kSendOverhead = 64 * 1024;

/// Sends one reply datagram on `fd`. A SOCK_SEQPACKET datagram is sent whole or not at all (no
/// partial writes) and must fit the socket's send buffer, which is ~208 KiB by default: a larger
/// reply (LS or STATUS of a big network) first grows SO_SNDBUF to fit it (SO_SNDBUFFORCE when
/// privileged, else SO_SNDBUF, which the kernel caps at net.core.wmem_max). A reply that still
/// does not fit is replaced by "ERR no_space" naming its size and the limit, so the client never
/// waits for a reply that cannot come. The send waits at most 5 s for buffer space (a client
/// that does not read cannot hold the server thread).
void send_reply(int fd, const std::string& path, const std::vector<std::string>& fields) {
  std::string out = control::encode(fields);
  if (out.size() > control::kMaxDatagram)
    out = control::encode({"ERR", "no_space", "control socket '" + path + "': the reply of " + std::to_string(out.size()) +
                                                  " bytes is larger than the control protocol's 1 MiB datagram"});
  const timeval tv{5, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int have = 0;
  socklen_t len = sizeof have;
  const bool known = ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0;
  if (!known || static_cast<std::size_t>(have) < out.size() + kSendOverhead) {
    const int want = static_cast<int>(out.size() + kSendOverhead);
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0)
      (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) >= 0 || errno != EMSGSIZE) return;
  int got = 0;
  len = sizeof got;
  (void)::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len);
  const std::string small = control::encode(
      {"ERR", "no_space", "control socket '" + path + "': the reply of " + std::to_string(out.size()) +
                              " bytes does not fit the socket's send buffer of " + std::to_string(got) +
                              " bytes (raise net.core.wmem_max, or run the service with CAP_NET_ADMIN)"});
  (void)::send(fd, small.data(), small.size(), MSG_NOSIGNAL);
}

}  // namespace

ControlServer::ControlServer(std::string path, Handler quick, Handler slow, std::vector<std::string> slow_verbs)
    : path_(std::move(path)), quick_(std::move(quick)), slow_(std::move(slow)), slow_verbs_(std::move(slow_verbs)) {
  const sockaddr_un a = address_of(path_);
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw Error(Errc::exists, "control socket '" + path_ + "': the path exists and is not a socket (not replaced)");
    if (someone_listens(a))
      throw Error(Errc::exists, "control socket '" + path_ + "': another bridge service already listens there");
    ::unlink(path_.c_str());  // stale: its service is gone
  }
  listen_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw Error(Errc::system, "control socket '" + path_ + "': socket: " + errno_text(errno));
  // No umask change (it is process-wide: every thread's files would get it): the socket is bound
  // with the process's umask and set to 0600 before listen(); until listen() a connect is
  // refused (ECONNREFUSED), so no other user can connect while the mode is wider.
  const int rc = ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a);
  const int bind_errno = errno;
  if (rc != 0 || ::chmod(path_.c_str(), 0600) != 0 || ::listen(listen_fd_, 64) != 0) {
    const int e = rc != 0 ? bind_errno : errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    if (rc == 0) ::unlink(path_.c_str());
    throw Error(e == EADDRINUSE ? Errc::exists : Errc::system, "control socket '" + path_ + "': " + errno_text(e));
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    const int e = errno;
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    throw Error(Errc::system, "control socket '" + path_ + "': eventfd: " + errno_text(e));
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {  // no thread (EAGAIN): nothing of ours is left behind
    ::close(listen_fd_);
    ::close(stop_fd_);
    listen_fd_ = stop_fd_ = -1;
    ::unlink(path_.c_str());
    throw Error(Errc::system, "control socket '" + path_ + "': starting its thread: " + e.what());
  }
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() noexcept {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  workers_.clear();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(path_.c_str());
  }
  if (stop_fd_ >= 0) {
    ::close(stop_fd_);
    stop_fd_ = -1;
  }
}

void ControlServer::run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, 1000);
    // Finished workers are joined here, so their number stays bounded.
    workers_.remove_if([](const std::unique_ptr<Worker>& w) {
      if (!w->done.load(std::memory_order_acquire)) return false;
      w->thread.join();
      return true;
    });
    if (n < 0 && errno != EINTR) return;
    if (n <= 0) continue;
    if ((fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
  }
}

void ControlServer::serve(int fd) {
  // A client that connects and sends nothing costs at most this wait.
  timeval tv{1, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string buf(kMaxRequest, '\0');
  const ssize_t got = ::recv(fd, buf.data(), buf.size(), MSG_TRUNC);
  if (got <= 0) {
    ::close(fd);
    return;
  }
  if (static_cast<std::size_t>(got) > buf.size()) {
    send_reply(fd, path_, {"ERR", "invalid_argument", "the request is larger than " + std::to_string(kMaxRequest) + " bytes"});
    ::close(fd);
    return;
  }
  buf.resize(static_cast<std::size_t>(got));
  const auto fields = control::decode(buf);
  if (!fields || fields->empty()) {
    send_reply(fd, path_, {"ERR", "protocol",
                    "control socket '" + path_ + "': the request does not start with '" + std::string(control::kControlMagic) +
                        "' and a verb"});
    ::close(fd);
    return;
  }
  const bool slow = std::find(slow_verbs_.begin(), slow_verbs_.end(), fields->front()) != slow_verbs_.end();
  if (!slow) {
    std::vector<std::string> reply;
    try {
      reply = quick_(*fields);
    } catch (const std::exception& e) {
      reply = {"ERR", "system", e.what()};
    }
    send_reply(fd, path_, reply);
    ::close(fd);
    return;
  }
  if (workers_.size() >= kMaxWorkers) {
    send_reply(fd, path_, {"ERR", "busy",
                    "control socket '" + path_ + "': " + std::to_string(kMaxWorkers) + " requests are pending already"});
    ::close(fd);
    return;
  }
  auto w = std::make_unique<Worker>();
  Worker* raw = w.get();
  workers_.push_back(std::move(w));
  try {
    raw->thread = std::thread([this, raw, fd, request = *fields] {
      std::vector<std::string> reply;
      try {
        reply = slow_(request);
      } catch (const std::exception& e) {
        reply = {"ERR", "system", e.what()};
      }
      send_reply(fd, path_, reply);
      ::close(fd);
      raw->done.store(true, std::memory_order_release);
    });
  } catch (const std::system_error& e) {
    // No thread for it (EAGAIN: the process or user is at its thread limit): the worker slot and
    // the connection are given back at once, and the client hears why.
    workers_.pop_back();
    send_reply(fd, path_, {"ERR", "busy", "control socket '" + path_ + "': no thread for the request: " + e.what()});
    ::close(fd);
  }
}

}  // namespace shmlink::bridge::detail
