// SPDX-License-Identifier: MIT
// The server side of the local control protocol (src/remote/control_protocol.hpp;
// docs/design/bridge.md, "The control socket"): an AF_UNIX SOCK_SEQPACKET socket, one request
// and one reply datagram per connection, served by one thread; requests that may wait (OPEN)
// run on a worker thread each, at most kMaxWorkers at once.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace shmlink::bridge::detail {

class ControlServer {
 public:
  /// Answers one request's fields (after the magic) with the reply's fields (after the magic).
  using Handler = std::function<std::vector<std::string>(const std::vector<std::string>& request)>;

  /// Most OPEN requests pending at once; the next one is answered "ERR busy" at once, as is one
  /// for which no worker thread can be started (the process or user at its thread limit).
  static constexpr std::size_t kMaxWorkers = 16;

  /// Binds `path` (mode 0600, set before listen(); the process umask is never changed), replacing
  /// a stale socket file nobody listens on, and starts the thread. `quick` answers every verb but
  /// those in `slow_verbs`, on the server thread; `slow` answers those, each on a worker thread.
  /// A reply larger than the socket's send buffer grows it (or is answered "ERR no_space").
  /// @throws Error exists (a live server already listens at `path`, or `path` is not a socket),
  ///         invalid_argument (path longer than a socket address holds), system (socket, bind,
  ///         listen, chmod), each naming `path`.
  ControlServer(std::string path, Handler quick, Handler slow, std::vector<std::string> slow_verbs);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  /// Stops accepting, waits for the workers (their handlers must return soon), removes the
  /// socket file. Idempotent.
  void stop() noexcept;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void run();
  void serve(int fd);
  std::string path_;
  Handler quick_, slow_;
  std::vector<std::string> slow_verbs_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  std::thread thread_;
  std::list<std::unique_ptr<Worker>> workers_;
};

}  // namespace shmlink::bridge::detail
