// SPDX-License-Identifier: MIT
/// @file fake_control_server.hpp
/// @brief Test support: a fake bridge service on the control socket (src/remote/control_protocol.hpp):
/// a thread that accepts each connection, reads one request, asks a handler for the reply
/// datagram and sends it. Tests of the client (shmlink::remote, Stream::open("host:x"), the
/// `shmlink bridge` clients) use it instead of a real service.
#pragma once

#include "remote/control_protocol.hpp"  // tests using this add src/ to their include path

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shmlink::test {

/// A fake bridge service listening on `path` (an AF_UNIX SOCK_SEQPACKET socket), one thread.
class FakeControlServer {
 public:
  /// Gets the request's fields after the magic (empty when the magic was wrong) and returns the
  /// whole reply datagram (use ok() / err() for well-formed ones), or kNoReply.
  using Handler = std::function<std::string(const std::vector<std::string>&)>;

  /// A handler result: keep the connection open without answering (the client times out).
  static inline const std::string kNoReply = std::string("\x01no-reply", 9);

  /// A well-formed "OK" reply carrying `fields`.
  static std::string ok(std::vector<std::string> fields = {}) {
    fields.insert(fields.begin(), "OK");
    return control::encode(fields);
  }
  /// A well-formed "ERR" reply.
  static std::string err(Errc e, const std::string& message) {
    return control::encode({"ERR", std::string(control::errc_name(e)), message});
  }

  /// Binds and listens on `path` (an old file there is removed first), then serves in a thread.
  /// @throws std::runtime_error when the socket cannot be set up.
  FakeControlServer(std::string path, Handler handler) : path_(std::move(path)), handler_(std::move(handler)) {
    fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path_.size() >= sizeof(addr.sun_path)) throw std::runtime_error("fake control server: socket");
    path_.copy(addr.sun_path, path_.size());
    ::unlink(path_.c_str());
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0) {
      ::close(fd_);
      throw std::runtime_error("fake control server: cannot bind " + path_);
    }
    if (::pipe2(stop_, O_CLOEXEC) != 0) {
      ::close(fd_);
      throw std::runtime_error("fake control server: pipe");
    }
    thread_ = std::thread([this] { serve(); });
  }
  FakeControlServer(const FakeControlServer&) = delete;
  FakeControlServer& operator=(const FakeControlServer&) = delete;
  /// Stops the thread, closes the socket and removes its file.
  ~FakeControlServer() {
    const char b = 1;
    (void)!::write(stop_[1], &b, 1);
    thread_.join();
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
    ::unlink(path_.c_str());
  }

  /// The socket's path.
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Requests served so far.
  [[nodiscard]] int requests() const { return requests_.load(); }
  /// The fields of the last request.
  [[nodiscard]] std::vector<std::string> last() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_;
  }

 private:
  void serve() {
    std::vector<int> silent;  // connections held open without a reply (kNoReply)
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents != 0) break;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const int big = 4 << 20;  // replies over 1 MiB (the oversized-reply test); root lifts wmem_max
      if (::setsockopt(c, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) != 0)
        (void)::setsockopt(c, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
      std::string buf(control::kMaxDatagram, '\0');
      pollfd q{c, POLLIN, 0};
      const ssize_t n = ::poll(&q, 1, 5000) == 1 ? ::recv(c, buf.data(), buf.size(), 0) : -1;
      std::vector<std::string> fields;
      if (n > 0) fields = control::decode(std::string_view(buf.data(), static_cast<std::size_t>(n))).value_or(fields);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        last_ = fields;
      }
      const std::string reply = handler_(fields);
      ++requests_;
      if (reply == kNoReply) {
        silent.push_back(c);
        continue;
      }
      (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    }
    for (const int c : silent) ::close(c);
  }

  std::string path_;
  Handler handler_;
  int fd_ = -1;
  int stop_[2] = {-1, -1};
  std::atomic<int> requests_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> last_;
  std::thread thread_;
};

}  // namespace shmlink::test
