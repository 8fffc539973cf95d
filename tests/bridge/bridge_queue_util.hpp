// SPDX-License-Identifier: MIT
// Helpers of the bridged-queue tests: a stream directory per "host" and loopback TCP endpoints.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace shmlink::test {

/// A stream directory of its own under /dev/shm: one "host". Removed with everything in it.
class HostDir {
 public:
  HostDir() {
    std::string tmpl = "/dev/shm/shmlink-bridge-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  HostDir(const HostDir&) = delete;
  HostDir& operator=(const HostDir&) = delete;
  ~HostDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  /// The file of queue `name` in this directory.
  std::string queue(const std::string& name = "q") const { return path_ + "/" + name + ".queue.shm"; }

 private:
  std::string path_;
};

/// A TCP port nobody listens on now (the kernel's choice; a later bind may race, rarely).
inline std::uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(s);
  if (!ok) throw std::runtime_error("no free port");
  return ntohs(a.sin_port);
}

/// "tcp://127.0.0.1:PORT".
inline std::string tcp(std::uint16_t port) { return "tcp://127.0.0.1:" + std::to_string(port); }

}  // namespace shmlink::test
