// SPDX-License-Identifier: MIT
// A host peer of an ivshmem server (include/shmlink/ivshmem_server.hpp), like QEMU's contrib
// ivshmem-client: every message of the server goes through proto::PeerTable's checks.
#include "ivshmem/peer_protocol.hpp"
#include "os/sys.hpp"
#include "region/region_access.hpp"

#include <shmlink/ivshmem_server.hpp>
#include <shmlink/segment.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

namespace shmlink::ivshmem {

namespace {
using Clock = std::chrono::steady_clock;

int poll_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > 1000000 ? 1000000 : static_cast<int>(left);
}
}  // namespace

struct Peer::Impl {
  std::string where;  // "ivshmem server PATH"
  mutable std::mutex mu;
  os::UniqueFd socket;  // closed with the Impl: when the Peer and every Region from region() are gone
  proto::Assembler assembler;
  proto::PeerTable table;
  std::shared_ptr<Segment> shm;
  bool writable = true;  // shm mapped read-write
  std::set<std::uint16_t> departed;  // ids announced as gone and not back since (guarded by mu)

  explicit Impl(std::string w) : where(w), table(std::move(w)) {}

  /// Reads at most one message's worth of bytes. Returns 1 (bytes read), 0 (nothing ready),
  /// -1 (the server hung up). Throws on a protocol violation or a socket error.
  int read_some() {
    std::byte buf[proto::kMessageBytes];
    iovec iov{buf, assembler.read_size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)]{};
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(socket.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    std::vector<os::UniqueFd> fds;
    if (n >= 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd = -1;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds.emplace_back(fd);  // owned now: closed unless the protocol wants it
          // Non-blocking, so that ring() and wait() never block on a descriptor a server chose.
          const int fl = ::fcntl(fd, F_GETFL);
          if (fl >= 0) (void)::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        }
      }
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      os::throw_errno(errno, "reading from", where);
    }
    if (n == 0) return -1;
    if (auto m = assembler.feed({buf, static_cast<std::size_t>(n)}, std::move(fds))) {
      const std::int64_t id = m->value;
      const proto::Event e = table.apply(std::move(*m));
      // Peers the server announced as gone, until their id comes back: a doorbell writer clears
      // waiter-table slots naming them (a peer merely not heard of yet keeps its slots).
      if (e == proto::Event::peer_left) departed.insert(static_cast<std::uint16_t>(id));
      if (e == proto::Event::peer_vector) departed.erase(static_cast<std::uint16_t>(id));
    }
    return 1;
  }

  void close_socket() noexcept { socket.reset(); }
};

namespace {

/// A host Peer as a region's doorbell endpoint (src/region/doorbell.hpp): rings other peers
/// through the eventfds the server gave (its own id through its own eventfd), sleeps on its own
/// eventfd of `vector`. Shares the Peer's state, so a region from Peer::region() keeps the peer
/// connected, ringing and rung after the Peer handle is gone (no update() reads the connection
/// then: the peers known at that time stay the ones it rings).
class PeerPort final : public rdoor::Port {
 public:
  PeerPort(std::shared_ptr<Peer::Impl> impl, std::uint16_t self, std::uint16_t vector, std::string what)
      : Port(self, vector, std::move(what)), impl_(std::move(impl)) {}

  bool ring(std::uint16_t peer, std::uint16_t vector) noexcept override {
    std::lock_guard lock(impl_->mu);  // held while writing: an update() cannot close the fd under us
    int fd = -1;
    if (peer == self()) {
      const auto& own = impl_->table.own_vectors();
      if (vector < own.size()) fd = own[vector].get();
    } else {
      const auto& peers = impl_->table.peers();
      const auto it = peers.find(peer);
      // Announced as gone: the caller clears its slots. Not heard of yet: keep them.
      if (it == peers.end()) return impl_->departed.count(peer) == 0;
      if (vector < it->second.size()) fd = it->second[vector].get();
    }
    if (fd < 0) return true;  // no such vector: nothing to ring, as QEMU ignores it
    const std::uint64_t one = 1;
    ssize_t n;
    do n = ::write(fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
    return true;  // EAGAIN: the counter is saturated, still rung
  }
  int listener(bool& own) noexcept override {
    own = false;
    std::lock_guard lock(impl_->mu);
    const auto& v = impl_->table.own_vectors();
    return vector() < v.size() ? v[vector()].get() : -1;  // own eventfds stay open while impl_ lives
  }
  bool consume(int fd) noexcept override {
    std::uint64_t v = 0;
    const ssize_t n = ::read(fd, &v, sizeof v);  // non-blocking: clears the count
    // EAGAIN: another waiter of this process took the count first; both re-check.
    return n == sizeof v || (n < 0 && (errno == EAGAIN || errno == EINTR));
  }

 private:
  std::shared_ptr<Peer::Impl> impl_;
};

}  // namespace

Peer::Peer() noexcept = default;
Peer::Peer(Peer&&) noexcept = default;
// The connection closes with the Impl (its socket), when its last owner goes: this handle or a
// Region from region(). Closing it earlier would free our id at the server while the region
// still registers it in the waiter table (rings for us would reach the id's next holder).
Peer& Peer::operator=(Peer&& other) noexcept = default;
Peer::~Peer() = default;

Peer Peer::connect(const std::string& socket_path, const PeerOptions& options) {
  const std::string where = "ivshmem server " + socket_path;
  if (options.vectors > kMaxVectors)
    throw Error(Errc::invalid_argument, where + ": " + std::to_string(options.vectors) + " vectors: allowed are 0..64");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path)
    throw Error(Errc::invalid_argument, where + ": a socket path must have 1..107 bytes");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  auto impl = std::make_shared<Impl>(where);
  impl->writable = options.writable;
  impl->socket.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!impl->socket) os::throw_errno(errno, "creating a socket for", where);
  if (::connect(impl->socket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    os::throw_errno(errno, "connecting to", where);

  const Clock::time_point deadline = Clock::now() + options.timeout;
  while (!impl->table.ready() || impl->table.own_vectors().size() < options.vectors) {
    pollfd p{impl->socket.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0 && errno != EINTR) os::throw_errno(errno, "polling", where);
    if (r == 0)
      throw Error(Errc::timeout, where + ": " +
                                     (impl->table.ready() ? "got " + std::to_string(impl->table.own_vectors().size()) +
                                                                " of the " + std::to_string(options.vectors) + " own vectors"
                                                          : std::string("the version, id and shared memory did not all come")) +
                                     " within " + std::to_string(options.timeout.count()) + " ms");
    if (r < 0) continue;
    while (true) {
      const int got = impl->read_some();
      if (got < 0)
        throw Error(Errc::closed, where + ": the server closed the connection before this peer was set up (is it full?)");
      if (got == 0) break;
    }
  }
  impl->shm = std::make_shared<Segment>(
      Segment::adopt_fd(impl->table.shared_memory().release(), where + ": shared memory", options.writable));
  Peer p;
  p.impl_ = std::move(impl);
  return p;
}

std::uint16_t Peer::id() const noexcept {
  return impl_ ? static_cast<std::uint16_t>(impl_->table.own_id()) : 0;
}

std::span<std::byte> Peer::memory() const noexcept {
  if (!impl_ || !impl_->shm) return {};
  return {impl_->shm->data(), impl_->shm->size()};
}

Region Peer::region() const {
  if (!impl_) throw Error(Errc::closed, "ivshmem peer: the handle is closed or moved-from");
  // Waits of its channels sleep on this peer's vector 0 and are rung through the server's
  // eventfds (a read-only mapping cannot register in the waiter table: those poll).
  auto port = std::make_shared<PeerPort>(impl_, id(), std::uint16_t{0}, impl_->where + " peer " + std::to_string(id()));
  return shmlink::detail::RegionAccess::attach(memory(), impl_->shm, impl_->where + ": shared memory", false, impl_->writable,
                                      vectors() > 0 ? std::move(port) : nullptr);
}

std::vector<PeerInfo> Peer::peers() const {
  std::vector<PeerInfo> out;
  if (!impl_) return out;
  std::lock_guard lock(impl_->mu);
  for (const auto& [id, v] : impl_->table.peers()) out.push_back({id, static_cast<unsigned>(v.size())});
  return out;
}

Status Peer::update(std::chrono::milliseconds timeout) {
  if (!impl_) return Errc::closed;
  const int s = socket_fd();  // only update() (one thread at a time) closes it
  if (s < 0) return Errc::closed;
  pollfd p{s, POLLIN, 0};
  const auto ms = timeout.count() < 0 ? 0 : (timeout.count() > 1000000 ? 1000000 : static_cast<int>(timeout.count()));
  const int r = ::poll(&p, 1, ms);  // without the lock: ring() and wait() go on meanwhile
  if (r < 0) return errno == EINTR ? Errc::interrupted : Errc::system;
  if (r == 0) return Errc::timeout;
  std::lock_guard lock(impl_->mu);
  try {
    for (;;) {
      const int got = impl_->read_some();
      if (got < 0) {
        impl_->close_socket();
        return Errc::closed;
      }
      if (got == 0) return Errc::ok;
    }
  } catch (...) {
    impl_->close_socket();  // the stream cannot be trusted any more
    throw;
  }
}

int Peer::socket_fd() const noexcept {
  if (!impl_) return -1;
  std::lock_guard lock(impl_->mu);
  return impl_->socket.get();
}

Status Peer::ring(std::uint16_t peer, unsigned vector) noexcept {
  if (!impl_) return Errc::closed;
  std::lock_guard lock(impl_->mu);  // held while writing: an update() cannot close the fd under us
  const auto& peers = impl_->table.peers();
  const auto it = peers.find(peer);
  if (it == peers.end()) return Errc::not_found;
  if (vector >= it->second.size()) return Errc::out_of_range;
  const std::uint64_t one = 1;
  ssize_t n;
  do n = ::write(it->second[vector].get(), &one, sizeof one);
  while (n < 0 && errno == EINTR);
  if (n == sizeof one || (n < 0 && errno == EAGAIN)) return Errc::ok;  // EAGAIN: the counter is saturated, still rung
  return Errc::system;
}

int Peer::fd(unsigned vector) const noexcept {
  if (!impl_) return -1;
  std::lock_guard lock(impl_->mu);
  const auto& own = impl_->table.own_vectors();
  return vector < own.size() ? own[vector].get() : -1;
}

unsigned Peer::vectors() const noexcept {
  if (!impl_) return 0;
  std::lock_guard lock(impl_->mu);
  return static_cast<unsigned>(impl_->table.own_vectors().size());
}

Status Peer::wait(unsigned vector, std::chrono::milliseconds timeout) noexcept {
  const int f = fd(vector);  // own eventfds stay open as long as the Peer lives
  if (f < 0) return impl_ ? Errc::out_of_range : Errc::closed;
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    pollfd p{f, POLLIN, 0};
    const int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0) return errno == EINTR ? Errc::interrupted : Errc::system;
    if (r == 0) return Errc::timeout;
    std::uint64_t v = 0;
    const ssize_t n = ::read(f, &v, sizeof v);  // non-blocking (the server made it so): clears the count
    if (n == sizeof v) return Errc::ok;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Errc::system;
    // EAGAIN: another reader took it first; wait on until the deadline
  }
}

}  // namespace shmlink::ivshmem
