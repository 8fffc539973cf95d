// SPDX-License-Identifier: MIT
// The client side of the bridge's control protocol (include/shmlink/remote.hpp,
// src/remote/control_protocol.hpp): one request, one reply, over AF_UNIX SOCK_SEQPACKET.
#include <shmlink/remote.hpp>

#include <shmlink/channel.hpp>

#include "os/log_internal.hpp"
#include "os/sys.hpp"
#include "remote/control_protocol.hpp"
#include "remote/remote_open.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace shmlink::remote {
namespace {

using Clock = std::chrono::steady_clock;

/// The request as messages show it: its fields joined by spaces, escaped ("OPEN stream rtc1 wfs").
std::string shown_request(const std::vector<std::string>& fields) {
  std::string out;
  for (const auto& f : fields) {
    if (!out.empty()) out += ' ';
    out += f.empty() ? "''" : escape_name(f);
  }
  return out;
}

/// Milliseconds left until `deadline` for poll(): rounded up, 0 when past.
int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
}

/// Waits for `events` on `fd` until `deadline`. @return false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline, const std::string& path) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) os::throw_errno(errno, "waiting on bridge service socket", path);
  }
}

/// Connects `fd` to `path`, refusing at once when no service listens.
void connect_to(int fd, const std::string& path, Clock::time_point deadline, const std::string& req) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    throw Error(Errc::invalid_argument, "bridge service socket " + escape_name(path) + ": path longer than " +
                                            std::to_string(sizeof(addr.sun_path) - 1) + " bytes (AF_UNIX limit)");
  path.copy(addr.sun_path, path.size());
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return;
    const int err = errno;
    if (err == EINTR) continue;
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTSOCK)
      throw Error(Errc::not_found, "no bridge service at " + escape_name(path) + " (start `shmlink bridge serve`)");
    if (err == EAGAIN) {  // the service's backlog is full: it is busy, try again until the deadline
      if (Clock::now() >= deadline)
        throw Error(Errc::timeout, "bridge service at " + escape_name(path) + " accepted no connection for " + req);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (err == EINPROGRESS) {
      if (!wait_for(fd, POLLOUT, deadline, path))
        throw Error(Errc::timeout, "bridge service at " + escape_name(path) + " accepted no connection for " + req);
      int so = 0;
      socklen_t len = sizeof so;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) != 0) so = errno;
      if (so == 0) return;
      if (so == ECONNREFUSED)
        throw Error(Errc::not_found, "no bridge service at " + escape_name(path) + " (start `shmlink bridge serve`)");
      os::throw_errno(so, "connecting to bridge service at", escape_name(path));
    }
    os::throw_errno(err, "connecting to bridge service at", escape_name(path));
  }
}

/// Trims blanks (space, tab, CR) at both ends.
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

void warn(const std::string& message) {
  if (detail::log_enabled(LogLevel::warn)) detail::log(LogLevel::warn, message);
}

/// The setting of config file `path`: true (auto), false (off or no setting line).
bool config_setting(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    warn(escape_name(path) + ": cannot be read; remote opening stays off");
    return false;
  }
  bool on = false;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string_view text = line;
    if (const auto hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
    text = trim(text);
    if (text.empty()) continue;
    const auto eq = text.find('=');
    const std::string_view key = trim(text.substr(0, eq));
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : trim(text.substr(eq + 1));
    if (eq != std::string_view::npos && key == "bridge" && (value == "auto" || value == "off")) {
      on = value == "auto";
      continue;
    }
    warn(escape_name(path) + ":" + std::to_string(number) + ": ignored '" + escape_name(text) +
         "' (expected `bridge = auto` or `bridge = off`)");
  }
  return on;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string control_socket_path() { return control::control_socket_path(); }

std::vector<std::string> request(const std::vector<std::string>& fields, std::chrono::milliseconds timeout) {
  const std::string path = control::control_socket_path();
  const std::string req = shown_request(fields);
  for (const auto& f : fields)
    if (f.find(control::kSep) != std::string::npos)
      throw Error(Errc::invalid_argument,
                  "request " + req + " to bridge service at " + escape_name(path) + ": a field holds a TAB");
  const std::string datagram = control::encode(fields);
  if (datagram.size() > control::kMaxDatagram)
    throw Error(Errc::invalid_argument, "request " + req.substr(0, 80) + "... to bridge service at " +
                                            escape_name(path) + ": larger than " +
                                            std::to_string(control::kMaxDatagram) + " bytes");
  const auto deadline = Clock::now() + (timeout.count() > 0 ? timeout : std::chrono::milliseconds(0));
  os::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) os::throw_errno(errno, "creating a socket for bridge service", escape_name(path));
  connect_to(fd.get(), path, deadline, req);
  // Trust only a service run by this user or by root: in a shared directory (/dev/shm is
  // world-writable) another user could listen on the socket name first and answer paths of its
  // choosing. SO_PEERCRED gives the credentials the service had when it called listen().
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0)
    os::throw_errno(errno, "reading the credentials of bridge service", escape_name(path));
  if (cred.uid != ::geteuid() && cred.uid != 0)
    throw Error(Errc::permission, "bridge service at " + escape_name(path) + " runs as uid " + std::to_string(cred.uid) +
                                      ", neither this user (uid " + std::to_string(::geteuid()) +
                                      ") nor root: not trusted, " + req + " not sent");
  const auto timed_out = [&] {
    return Error(Errc::timeout, "bridge service at " + escape_name(path) + " did not answer " + req + " within " +
                                    std::to_string(timeout.count()) + " ms");
  };
  for (;;) {
    const ssize_t n = ::send(fd.get(), datagram.data(), datagram.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(datagram.size())) break;
    if (n >= 0) throw Error(Errc::system, "sending " + req + " to bridge service at " + escape_name(path) + ": cut short");
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (!wait_for(fd.get(), POLLOUT, deadline, path)) throw timed_out();
      continue;
    }
    os::throw_errno(errno, "sending " + req + " to bridge service at", escape_name(path));
  }
  // One byte more than the largest reply, so that a larger one is seen as such (MSG_TRUNC too).
  std::string buf(control::kMaxDatagram + 1, '\0');
  ssize_t got = 0;
  int msg_flags = 0;
  for (;;) {
    if (!wait_for(fd.get(), POLLIN, deadline, path)) throw timed_out();
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    got = ::recvmsg(fd.get(), &msg, MSG_CMSG_CLOEXEC);
    if (got >= 0) {
      msg_flags = msg.msg_flags;
      break;
    }
    if (errno == EINTR || errno == EAGAIN) continue;
    os::throw_errno(errno, "receiving the answer to " + req + " from bridge service at", escape_name(path));
  }
  const std::string who = "bridge service at " + escape_name(path) + ", " + req + ": ";
  if (got == 0) throw Error(Errc::protocol, who + "the service closed the connection without answering");
  if ((msg_flags & MSG_TRUNC) != 0 || static_cast<std::size_t>(got) > control::kMaxDatagram)
    throw Error(Errc::protocol, who + "reply larger than " + std::to_string(control::kMaxDatagram) + " bytes");
  buf.resize(static_cast<std::size_t>(got));
  auto reply = control::decode(buf);
  if (!reply)
    throw Error(Errc::protocol, who + "reply without the '" + std::string(control::kControlMagic) +
                                    "' magic (not a shmlink bridge service, or another version)");
  if (reply->empty()) throw Error(Errc::protocol, who + "empty reply");
  if ((*reply)[0] == "OK") {
    reply->erase(reply->begin());
    return std::move(*reply);
  }
  if ((*reply)[0] == "ERR") {
    if (reply->size() < 3) throw Error(Errc::protocol, who + "ERR reply without an error name and message");
    std::string message = (*reply)[2];
    for (std::size_t i = 3; i < reply->size(); ++i) message += ' ' + (*reply)[i];
    throw Error(control::errc_from_name((*reply)[1]), who + message);
  }
  throw Error(Errc::protocol, who + "reply is neither OK nor ERR: '" + escape_name((*reply)[0]) + "'");
}

bool remote_open_enabled() noexcept {
  try {
    if (const char* v = std::getenv("SHMLINK_BRIDGE"); v != nullptr) {
      const std::string_view value = v;
      if (value == "auto") return true;
      if (value == "off") return false;
      warn("SHMLINK_BRIDGE='" + escape_name(value) + "' is neither 'auto' nor 'off' (ignored)");
    }
    std::string user;
    if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x != '\0') user = x;
    else if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') user = std::string(h) + "/.config";
    for (const std::string& file : {user.empty() ? std::string() : user + "/shmlink/shmlink.conf",
                                    std::string("/etc/shmlink/shmlink.conf")})
      if (!file.empty() && exists(file)) return config_setting(file);
    return false;
  } catch (...) {  // out of memory while reading a config file: stay off
    return false;
  }
}

std::chrono::milliseconds open_timeout() noexcept {
  const std::chrono::milliseconds fallback(control::kDefaultOpenTimeoutMs);
  const char* v = std::getenv("SHMLINK_BRIDGE_TIMEOUT_MS");
  if (v == nullptr || *v == '\0') return fallback;
  const std::string_view text = v;
  long ms = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec != std::errc() || end != text.data() + text.size() || ms <= 0) {
    try {
      warn("SHMLINK_BRIDGE_TIMEOUT_MS='" + escape_name(text) + "' is not a positive number of ms (using " +
           std::to_string(fallback.count()) + ")");
    } catch (...) {
    }
    return fallback;
  }
  return std::chrono::milliseconds(ms);
}

std::string remote_open(std::string_view kind, std::string_view host, std::string_view name,
                        std::chrono::milliseconds timeout, bool keep, std::uint32_t every_frame_window) {
  std::vector<std::string> fields{"OPEN",           std::string(kind), std::string(host), std::string(name),
                                  std::to_string(timeout.count()), keep ? "1" : "0"};
  if (every_frame_window != 0) {  // the optional pair: a latest-value open stays what old services know
    fields.emplace_back(control::kModeEveryFrame);
    fields.push_back(std::to_string(every_frame_window));
  }
  // The service answers its own timeout; our wait adds a second for that answer to arrive.
  const auto reply = request(fields, timeout + std::chrono::seconds(1));
  // An absolute path: opening it never asks the service again.
  if (reply.empty() || !reply[0].starts_with('/'))
    throw Error(Errc::protocol, "bridge service at " + escape_name(control::control_socket_path()) + ", " +
                                    shown_request(fields) + ": OK reply without an absolute path");
  return reply[0];
}

std::optional<std::pair<std::string, std::string>> split_remote_name(std::string_view text) {
  if (text.find('/') != std::string_view::npos) return std::nullopt;
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 63) return std::nullopt;
  const std::string_view host = text.substr(0, colon);
  const std::string_view name = text.substr(colon + 1);
  for (const char c : host) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return std::nullopt;
  }
  if (host == "ivshmem") return std::nullopt;
  try {
    check_channel_name("channel", name, text, kMaxChannelName);
  } catch (const Error&) {
    return std::nullopt;
  }
  return std::pair<std::string, std::string>(host, name);
}

std::optional<std::string> open_missing(std::string_view kind, std::string_view name_or_path,
                                        std::string_view local_path) {
  if (name_or_path.find('/') != std::string_view::npos) return std::nullopt;  // a path is only a path
  struct stat st {};
  if (::lstat(std::string(local_path).c_str(), &st) == 0 || errno != ENOENT) return std::nullopt;  // not ENOENT
  std::string_view bare = name_or_path;
  const std::string_view suffix = kind == "queue" ? ".queue.shm" : ".im.shm";
  if (bare.size() > suffix.size() && bare.ends_with(suffix)) bare.remove_suffix(suffix.size());
  std::string host, name;
  if (auto split = split_remote_name(bare)) {
    host = std::move(split->first);
    name = std::move(split->second);
  } else if (remote_open_enabled()) {
    name = bare;
  } else {
    return std::nullopt;
  }
  try {
    return remote_open(kind, host, name, open_timeout(), false);
  } catch (const Error& e) {
    throw Error(e.errc(), "opening " + std::string(kind) + " '" + escape_name(name_or_path) + "': " +
                              escape_name(local_path) + " does not exist and " + e.what());
  }
}

Segment open_file_or_replica(std::string_view kind, std::string_view name_or_path, std::string& path,
                             bool writable) {
  try {
    return Segment::open_file(path, writable);
  } catch (const Error& e) {
    if (e.errc() != Errc::not_found) throw;
    auto replica = open_missing(kind, name_or_path, path);
    if (!replica) throw;
    path = std::move(*replica);
  }
  return Segment::open_file(path, writable);
}

}  // namespace shmlink::remote
