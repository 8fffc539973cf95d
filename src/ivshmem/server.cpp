// SPDX-License-Identifier: MIT
// The ivshmem doorbell server (include/shmlink/ivshmem_server.hpp): QEMU's ivshmem-server
// protocol version 0 over a UNIX stream socket, one poll loop, a region in the shared memory.
#include "ivshmem/peer_protocol.hpp"
#include "os/log_internal.hpp"
#include "os/sys.hpp"
#include "region/region_internal.hpp"

#include <shmlink/ivshmem_server.hpp>
#include <shmlink/segment.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>

namespace shmlink::ivshmem {

namespace {

/// Messages queued for one client at most; a client that reads nothing for that long is dropped.
constexpr std::size_t kMaxQueued = 65536;

using SharedFd = std::shared_ptr<const os::UniqueFd>;

/// A message waiting to be sent: the descriptor is shared with its owner, so it stays open
/// until sent even if its peer left meanwhile.
struct Outgoing {
  std::int64_t value = 0;
  SharedFd fd;
};

struct Client {
  os::UniqueFd socket;
  std::vector<SharedFd> vectors;  // eventfds interrupting this client, one per vector
  std::deque<Outgoing> queue;     // messages not yet sent (socket buffer full)
};

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    throw Error(Errc::invalid_argument, "ivshmem server socket " + path + ": a socket path must have 1..107 bytes");
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

/// Listens on `path`; a socket file nobody listens on is replaced, a live one is Errc::exists.
os::UniqueFd listen_on(const std::string& path, gid_t group, mode_t permissions) {
  const sockaddr_un addr = socket_address(path);
  os::UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) os::throw_errno(errno, "creating ivshmem server socket", path);
  struct stat sb {};
  if (::lstat(path.c_str(), &sb) == 0) {
    if (!S_ISSOCK(sb.st_mode))
      throw Error(Errc::exists, "ivshmem server socket " + path + ": the path exists and is not a socket");
    os::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
      throw Error(Errc::exists, "ivshmem server socket " + path + ": another server is listening on it");
    ::unlink(path.c_str());  // stale: its server is gone
  }
  // Bound and listening under a temporary name, then renamed: whoever sees the socket file
  // (a script, then QEMU) can connect at once. A path too long for a suffix is bound directly.
  std::string bound = path + ".tmp" + std::to_string(::getpid());
  if (bound.size() >= sizeof addr.sun_path) bound = path;
  const sockaddr_un tmp = socket_address(bound);
  ::unlink(bound.c_str());  // a leftover of a crashed start with our pid
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&tmp), sizeof tmp) != 0)
    os::throw_errno(errno, "binding ivshmem server socket", bound);
  auto fail = [&](const char* what) {
    const int err = errno;
    ::unlink(bound.c_str());
    os::throw_errno(err, what, path);
  };
  // Connecting needs write permission: the socket gets the shared memory's mode and group.
  if (::chmod(bound.c_str(), permissions) != 0 ||
      (group != static_cast<gid_t>(-1) && ::chown(bound.c_str(), static_cast<uid_t>(-1), group) != 0))
    fail("setting the mode and group of ivshmem server socket");
  if (::listen(s.get(), 64) != 0) fail("listening on ivshmem server socket");
  if (bound != path && ::rename(bound.c_str(), path.c_str()) != 0) fail("naming ivshmem server socket");
  return s;
}

void check_spec(const ServerSpec& spec) {
  const std::string who = "ivshmem server " + spec.socket_path;
  if (spec.shm_path.empty()) throw Error(Errc::invalid_argument, who + ": no shared-memory path given");
  if (spec.bytes < (64U << 10) || !std::has_single_bit(spec.bytes))
    throw Error(Errc::invalid_argument, who + ": shared memory " + spec.shm_path + " of " + std::to_string(spec.bytes) +
                                            " bytes: the size must be a power of two of at least 64 KiB (QEMU maps it as a BAR)");
  if (spec.vectors < 1 || spec.vectors > kMaxVectors)
    throw Error(Errc::invalid_argument, who + ": " + std::to_string(spec.vectors) + " vectors: allowed are 1..64");
  if (spec.max_peers < 1 || spec.max_peers > kMaxPeerId + 1)
    throw Error(Errc::invalid_argument, who + ": max_peers " + std::to_string(spec.max_peers) + " is outside 1..65536");
  // On hugetlbfs the file would take whole huge pages, longer than the directory formatted in it.
  rdir::check_hugetlbfs_size(spec.shm_path, spec.bytes, who + ": shared memory " + spec.shm_path);
}

}  // namespace

struct Server::Impl {
  ServerSpec spec;
  std::shared_ptr<Segment> shm;  // the shared memory (its fd goes to every peer)
  Region region;
  os::UniqueFd listener;
  os::UniqueFd wake;  // stop(): an eventfd the loop polls
  std::map<std::uint16_t, Client> clients;
  std::atomic<std::size_t> count{0};
  bool socket_bound = false;
  bool refusing = false;  // at max_peers: logged once until a peer leaves

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  // Here, not in ~Server: a moved-over Server destroys its Impl without ~Server.
  ~Impl() {
    clients.clear();
    listener.reset();
    if (socket_bound) ::unlink(spec.socket_path.c_str());
    if (!spec.keep_shm && shm) ::unlink(spec.shm_path.c_str());
  }

  std::string name(std::uint16_t id) const {
    return "ivshmem server " + spec.socket_path + ": peer " + std::to_string(id);
  }

  /// Queues a message for `c` and sends what its socket takes now; false when the client must go.
  bool post(Client& c, std::int64_t value, SharedFd fd) {
    c.queue.push_back(Outgoing{value, std::move(fd)});
    if (c.queue.size() > kMaxQueued) return false;
    return flush(c);
  }

  /// Sends queued messages until the socket is full; false when the client must go.
  static bool flush(Client& c) {
    while (!c.queue.empty()) {
      const Outgoing& o = c.queue.front();
      switch (proto::send_message(c.socket.get(), o.value, o.fd ? o.fd->get() : -1)) {
        case proto::SendResult::sent:
          c.queue.pop_front();
          break;
        case proto::SendResult::would_block:
          return true;
        case proto::SendResult::failed:
          return false;
      }
    }
    return true;
  }

  /// The lowest id not in use, or -1 when every id is taken.
  std::int64_t free_id() const {
    std::int64_t next = 0;
    for (const auto& [id, c] : clients) {
      if (id != next) break;
      ++next;
    }
    return next > kMaxPeerId ? -1 : next;
  }

  /// Drops client `id` and every client that fails while told about it; announces each departure.
  void drop(std::uint16_t first, const char* why) {
    std::vector<std::uint16_t> gone{first};
    detail::log(LogLevel::info, name(first) + " left (" + why + ")");
    while (!gone.empty()) {
      const std::uint16_t id = gone.back();
      gone.pop_back();
      if (clients.erase(id) == 0) continue;
      for (auto& [other, c] : clients)
        if (!post(c, id, nullptr) && std::find(gone.begin(), gone.end(), other) == gone.end()) {
          detail::log(LogLevel::info, name(other) + " left (its socket failed)");
          gone.push_back(other);
        }
    }
    count.store(clients.size(), std::memory_order_relaxed);  // an observer's figure: no ordering needed
    refusing = false;
  }

  void accept_one() {
    os::UniqueFd s(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!s) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        detail::log(LogLevel::warn, "ivshmem server " + spec.socket_path + ": cannot accept a peer: " + std::strerror(errno));
        return;
      }
      os::throw_errno(errno, "accepting on ivshmem server socket", spec.socket_path);
    }
    const std::int64_t id = clients.size() >= spec.max_peers ? -1 : free_id();
    if (id < 0) {
      // Once per full period: a flood of connections must not flood the log.
      detail::log(refusing ? LogLevel::debug : LogLevel::warn,
                  "ivshmem server " + spec.socket_path + ": refused a peer: " + std::to_string(spec.max_peers) +
                      " peers are connected already");
      refusing = true;
      return;  // closing the socket tells the client
    }
    Client c;
    c.socket = std::move(s);
    for (unsigned v = 0; v < spec.vectors; ++v) {
      os::UniqueFd e(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!e) {
        detail::log(LogLevel::warn, "ivshmem server " + spec.socket_path + ": refused a peer: eventfd: " + std::strerror(errno));
        return;
      }
      c.vectors.push_back(std::make_shared<const os::UniqueFd>(std::move(e)));
    }
    const auto me = static_cast<std::uint16_t>(id);
    // Steps 1-3 at once: QEMU reads them synchronously while it realizes the device.
    auto shm_fd = std::make_shared<const os::UniqueFd>(::dup(shm->fd()));
    if (!*shm_fd || !post(c, kProtocolVersion, nullptr) || !post(c, id, nullptr) || !post(c, -1, shm_fd)) {
      detail::log(LogLevel::warn, name(me) + ": could not send the first messages");
      return;
    }
    // Tell the others about the newcomer, the newcomer about the others, then its own vectors.
    std::vector<std::uint16_t> failed;
    for (auto& [other, o] : clients) {
      bool ok = true;
      for (const SharedFd& f : c.vectors) ok = ok && post(o, id, f);
      if (!ok) failed.push_back(other);
      for (const SharedFd& f : o.vectors) post(c, other, f);
    }
    bool ok = true;
    for (const SharedFd& f : c.vectors) ok = ok && post(c, id, f);
    if (!ok) {
      detail::log(LogLevel::info, name(me) + " left at once (its socket failed)");
      clients.emplace(me, std::move(c));
      failed.push_back(me);
    } else {
      clients.emplace(me, std::move(c));
      detail::log(LogLevel::info, name(me) + " joined");
    }
    count.store(clients.size(), std::memory_order_relaxed);  // an observer's figure: no ordering needed
    for (std::uint16_t f : failed) drop(f, "its socket failed");
  }
};

Server::Server() noexcept = default;
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;

Server::~Server() = default;

Server Server::start(const ServerSpec& spec) {
  check_spec(spec);
  auto impl = std::make_unique<Impl>();
  impl->spec = spec;
  impl->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->wake) os::throw_errno(errno, "creating the stop eventfd of ivshmem server", spec.socket_path);
  (void)socket_address(spec.socket_path);  // a bad path fails before anything is created

  // The region's directory is formatted while the file is still invisible, flagged as used by
  // other kernels (guests): every channel in it polls.
  RegionOptions ro;
  ro.permissions = spec.permissions;
  ro.max_entries = spec.max_entries;
  if ((spec.permissions & ~static_cast<mode_t>(0666)) != 0)
    throw Error(Errc::invalid_argument, "ivshmem server shared memory " + spec.shm_path + ": permissions " +
                                            std::to_string(spec.permissions) + " may hold read/write bits only");
  Segment seg = Segment::create_file(spec.shm_path, spec.bytes,
                                     spec.replace ? OpenMode::PurgeAndCreate : OpenMode::ExclusiveCreate,
                                     spec.permissions, [&](Segment& fresh) {
                                       (void)Region::format({fresh.data(), fresh.size()}, nullptr, spec.shm_path,
                                                            false, ro);
                                       if (spec.group != static_cast<gid_t>(-1) &&
                                           ::fchown(fresh.fd(), static_cast<uid_t>(-1), spec.group) != 0)
                                         os::throw_errno(errno, "setting the group of", spec.shm_path);
                                     });
  impl->shm = std::make_shared<Segment>(std::move(seg));
  try {
    impl->region = Region::attach({impl->shm->data(), impl->shm->size()}, impl->shm, spec.shm_path, false);
    impl->listener = listen_on(spec.socket_path, spec.group, spec.permissions);
    impl->socket_bound = true;
  } catch (...) {
    if (!spec.keep_shm) ::unlink(spec.shm_path.c_str());
    throw;
  }
  detail::log(LogLevel::info, "ivshmem server " + spec.socket_path + ": serving " + spec.shm_path + " (" +
                                  std::to_string(spec.bytes) + " bytes, " + std::to_string(spec.vectors) + " vectors)");
  Server s;
  s.impl_ = std::move(impl);
  return s;
}

void Server::run() {
  if (!impl_) throw Error(Errc::closed, "ivshmem server: the handle is closed or moved-from");
  Impl& m = *impl_;
  std::vector<pollfd> fds;
  std::vector<std::uint16_t> ids;
  for (;;) {
    fds.clear();
    ids.clear();
    fds.push_back({m.wake.get(), POLLIN, 0});
    fds.push_back({m.listener.get(), POLLIN, 0});
    for (const auto& [id, c] : m.clients) {
      // Clients never send: any byte, end-of-file or error is the client's departure.
      fds.push_back({c.socket.get(), static_cast<short>(POLLIN | (c.queue.empty() ? 0 : POLLOUT)), 0});
      ids.push_back(id);
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      os::throw_errno(errno, "polling ivshmem server socket", m.spec.socket_path);
    }
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t v = 0;
      while (::read(m.wake.get(), &v, sizeof v) > 0) {
      }
      return;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      auto it = m.clients.find(ids[i]);
      if (it == m.clients.end()) continue;  // dropped while another was handled
      if ((ev & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0) {
        m.drop(ids[i], (ev & POLLIN) != 0 ? "it sent data or closed" : "its connection broke");
      } else if ((ev & POLLOUT) != 0 && !Impl::flush(it->second)) {
        m.drop(ids[i], "its socket failed");
      }
    }
    if ((fds[1].revents & POLLIN) != 0) m.accept_one();
  }
}

void Server::stop() noexcept {
  if (!impl_) return;
  const std::uint64_t one = 1;
  const ssize_t n = ::write(impl_->wake.get(), &one, sizeof one);  // async-signal-safe
  (void)n;
}

const std::string& Server::socket_path() const noexcept {
  static const std::string empty;
  return impl_ ? impl_->spec.socket_path : empty;
}
const std::string& Server::shm_path() const noexcept {
  static const std::string empty;
  return impl_ ? impl_->spec.shm_path : empty;
}
Region& Server::region() noexcept {
  static Region none;
  return impl_ ? impl_->region : none;
}
std::size_t Server::peer_count_approx() const noexcept {
  return impl_ ? impl_->count.load(std::memory_order_relaxed) : 0;
}

}  // namespace shmlink::ivshmem
