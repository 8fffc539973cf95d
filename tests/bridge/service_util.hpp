// SPDX-License-Identifier: MIT
// What the bridge service's tests share: a private stream directory standing for one host, and
// one request over a service's raw control socket (control::encode over AF_UNIX seqpacket, no
// client library); with stream_frames.hpp, ramps of test values and the frame of a stream by path.
#pragma once

#include "remote/control_protocol.hpp"
#include "stream_frames.hpp"  // ramp(), frame_of()

#include <shmlink/stream.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace shmlink::test {

/// A private directory under /dev/shm standing for one host's stream directory; removed with
/// everything in it at the end.
class HostDir {
 public:
  HostDir() {
    std::string t = "/dev/shm/shmlink-service-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = t;
  }
  ~HostDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  HostDir(const HostDir&) = delete;
  HostDir& operator=(const HostDir&) = delete;
  [[nodiscard]] std::string stream(const std::string& name) const { return path_ + "/" + name + ".im.shm"; }
  [[nodiscard]] std::string socket() const { return path_ + "/" + std::string(control::kSocketName); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// One request over the control socket at `path`: the reply's fields (empty on a socket error or
/// no reply within 15 s).
inline std::vector<std::string> ask_control(const std::string& path, const std::vector<std::string>& fields) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  std::vector<std::string> out;
  timeval tv{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = control::encode(fields);
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::string buf(control::kMaxDatagram, '\0');
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n > 0) out = control::decode(std::string_view(buf.data(), static_cast<std::size_t>(n))).value_or(out);
    }
  }
  ::close(fd);
  return out;
}

}  // namespace shmlink::test
