// SPDX-License-Identifier: MIT
// memif sockets and interfaces: the public Interface and Socket (include/shmlink/memif.hpp) over
// Socket::Impl (socket_impl.hpp), whose control-channel state machines (docs/reference/memif.md
// sections 6-8) are socket_core.cpp, master.cpp and slave.cpp.
#include "memif/socket_impl.hpp"
#include "os/clock.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::memif {

// The internal helpers of socket_impl.hpp, by their short names in this file.
using detail::Clock;
using detail::Connection;

namespace {


/// now + `timeout`; a negative timeout (wait forever) or one so long that the sum would overflow
/// gives Clock::time_point::max().
template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  const auto now = Clock::now();
  if (timeout.count() < 0) return Clock::time_point::max();
  // Compared in the caller's unit (a narrowing of `left`, never an overflow of `timeout`).
  if (timeout >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// The longest handshake_timeout accepted (larger values would overflow the deadline's sum).
constexpr std::chrono::hours kMaxHandshakeTimeout{1};

}  // namespace

// ---- Interface --------------------------------------------------------------------------------

Interface::Interface(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->self = this; }
Interface::~Interface() = default;

const InterfaceOptions& Interface::options() const noexcept { return impl_->opt; }
bool Interface::connected() const noexcept { return impl_->up; }
std::uint16_t Interface::tx_queues() const noexcept { return impl_->n_tx; }
std::uint16_t Interface::rx_queues() const noexcept { return impl_->n_rx; }
std::string Interface::last_disconnect() const { return impl_->last_disconnect; }

InterfaceDetails Interface::details() const {
  const Impl& i = *impl_;
  InterfaceDetails d;
  d.role = i.opt.role;
  d.id = i.opt.id;
  d.name = i.opt.name;
  d.peer_name = i.peer_name;
  d.peer_app = i.peer_app;
  d.socket = i.sock->addr.display;
  d.mode = i.opt.mode;
  d.connected = i.up;
  d.last_disconnect = i.last_disconnect;
  d.connects = i.connects;
  if (i.up) {
    for (std::size_t k = 0; k < i.views.size(); ++k) {
      RegionDetails r;
      r.index = static_cast<std::uint16_t>(k);
      r.size = i.views[k].size;
      r.fd = i.slave_mem ? i.slave_mem->regions[k].fd() : i.peer_regions[k].fd();
      d.regions.push_back(r);
    }
  }
  const bool slave = i.opt.role == Role::slave;
  auto fill = [&](const std::vector<std::unique_ptr<detail::RingQueue>>& qs, std::uint16_t n, bool transmit,
                  const std::vector<detail::RingPlacement>& places, std::vector<QueueDetails>& out) {
    for (std::uint16_t k = 0; k < qs.size(); ++k) {
      QueueDetails q;
      q.qid = k;
      q.transmit = transmit;
      q.s2m = transmit == slave;
      q.rx_mode = qs[k]->rx_mode();
      q.counters = qs[k]->counters();
      if (k < n && k < places.size()) {
        q.region = places[k].region;
        q.offset = places[k].offset;
        q.ring_size = 1U << places[k].log2;
        q.buffer_size = slave ? i.slave_mem->layout.buffer_size : 0;
        qs[k]->snapshot(q.head, q.tail, q.mask_int);
      }
      out.push_back(q);
    }
  };
  fill(i.tx, i.n_tx, true, slave ? i.s2m_placement : i.m2s_placement, d.tx_queues);
  fill(i.rx, i.n_rx, false, slave ? i.m2s_placement : i.s2m_placement, d.rx_queues);
  return d;
}

namespace {
/// The status of a call on a queue that does not exist now: out of range while up, else down.
Status queue_missing(bool up, std::size_t& count) noexcept {
  count = 0;
  return up ? Errc::out_of_range : Errc::not_connected;
}
}  // namespace

Status Interface::alloc(std::uint16_t qid, std::span<Buffer> bufs, std::size_t packets, std::uint32_t size,
                        std::size_t& count) noexcept {
  auto* q = impl_->txq(qid);
  if (q == nullptr) return queue_missing(impl_->up, count);
  return q->alloc(bufs, packets, size, count);
}

Status Interface::tx_burst(std::uint16_t qid, std::span<const Buffer> bufs, std::size_t& sent) noexcept {
  auto* q = impl_->txq(qid);
  if (q == nullptr) return queue_missing(impl_->up, sent);
  return q->tx_burst(bufs, sent);
}

Status Interface::rx_burst(std::uint16_t qid, std::span<Buffer> bufs, std::size_t& received) noexcept {
  auto* q = impl_->rxq(qid);
  if (q == nullptr) return queue_missing(impl_->up, received);
  return q->rx_burst(bufs, received);
}

Status Interface::refill(std::uint16_t qid, std::size_t count) noexcept {
  auto* q = impl_->rxq(qid);
  std::size_t dummy = 0;
  if (q == nullptr) return queue_missing(impl_->up, dummy);
  return q->refill(count);
}

Status Interface::set_rx_mode(std::uint16_t qid, RxMode mode) noexcept {
  if (qid >= impl_->rx.size()) return Errc::out_of_range;
  impl_->rx[qid]->set_rx_mode(mode);
  return Errc::ok;
}

int Interface::rx_fd(std::uint16_t qid) const noexcept {
  const Impl& i = *impl_;
  if (!i.up || qid >= i.n_rx) return -1;
  if (i.slave_mem) return i.slave_mem->m2s_eventfds[qid].get();
  // master: ring_eventfds holds S2M eventfds first, then M2S
  return i.ring_eventfds[qid].get();
}

Status Interface::wait_rx(std::uint16_t qid, std::chrono::nanoseconds timeout) noexcept {
  auto* q = impl_->rxq(qid);
  std::size_t dummy = 0;
  if (q == nullptr) return queue_missing(impl_->up, dummy);
  if (q->rx_pending()) return Errc::ok;
  const auto deadline = deadline_after(timeout);
  if (q->rx_mode() == RxMode::polling) {
    for (;;) {
      for (int k = 0; k < 64; ++k) {
        if (q->rx_pending()) return Errc::ok;
        os::cpu_relax();
      }
      if (Clock::now() >= deadline) return Errc::timeout;
    }
  }
  pollfd p{rx_fd(qid), POLLIN, 0};
  int ms = -1;
  if (timeout.count() >= 0) ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(timeout).count());
  const int r = ::poll(&p, 1, ms);
  if (r < 0) return errno == EINTR ? Errc::interrupted : errc_from_errno(errno);
  if (r == 0) return q->rx_pending() ? Errc::ok : Errc::timeout;
  return Errc::ok;
}

void Interface::disconnect(std::string_view reason) {
  Impl& i = *impl_;
  if (i.conn == nullptr && !i.up) return;
  i.sock->teardown(i, std::string(reason), true, true);
}

Socket& Interface::socket() const noexcept { return *impl_->sock->self; }

// ---- Socket -----------------------------------------------------------------------------------

Socket::Socket(SocketOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.self = this;
  if (options.app_name.size() > kMaxName)
    throw Error(Errc::invalid_argument, "memif socket " + options.path + ": application name longer than 31 bytes");
  if (options.cache_line != 64 && options.cache_line != 128)
    throw Error(Errc::invalid_argument, "memif socket " + options.path + ": cache line must be 64 or 128");
  s.addr = parse_socket_name(options.path);
  s.opt = std::move(options);
  s.epfd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!s.epfd) os::throw_errno(errno, "creating the epoll fd of memif socket", s.addr.display);
  s.timerfd.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!s.timerfd) os::throw_errno(errno, "creating the reconnect timer of memif socket", s.addr.display);
  s.watch(s.timerfd.get());
  if (s.opt.handshake_timeout.count() < 0)
    throw Error(Errc::invalid_argument, "memif socket " + s.addr.display + ": negative handshake timeout");
  if (s.opt.handshake_timeout > kMaxHandshakeTimeout)
    throw Error(Errc::invalid_argument, "memif socket " + s.addr.display + ": handshake timeout of " +
                                            std::to_string(s.opt.handshake_timeout.count()) +
                                            " ms is above the limit of 1 hour");
  s.handshake_timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!s.handshake_timer) os::throw_errno(errno, "creating the handshake timer of memif socket", s.addr.display);
  s.watch(s.handshake_timer.get());
  s.accept_timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!s.accept_timer) os::throw_errno(errno, "creating the accept timer of memif socket", s.addr.display);
  s.watch(s.accept_timer.get());
}

Socket::Socket(Socket&& o) noexcept : impl_(std::move(o.impl_)) {
  if (impl_) impl_->self = this;
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    Socket old(std::move(*this));
    impl_ = std::move(o.impl_);
    if (impl_) impl_->self = this;
  }
  return *this;
}

Socket::~Socket() {
  if (!impl_) return;
  Impl& s = *impl_;
  for (auto& i : s.ifaces) {
    auto& ii = *i->impl_;
    ii.opt.on_disconnect = nullptr;  // no callbacks from a destructor
    if (ii.conn != nullptr || ii.up) s.teardown(ii, "interface deleted", true, true);
  }
  s.conns.clear();
  s.ifaces.clear();
  s.listener.close();
  s.status.close();  // unlinks the status file
}

Interface& Socket::add_interface(InterfaceOptions o) {
  Impl& s = *impl_;
  const std::string what = "memif " + std::string(role_name(o.role)) + " '" + o.name + "' (id " + std::to_string(o.id) +
                           ") on " + s.addr.display;
  if (o.name.empty() || o.name.size() > kMaxName)
    throw Error(Errc::invalid_argument, what + ": the interface name must be 1..31 bytes");
  if (o.secret.size() > kMaxSecret) throw Error(Errc::invalid_argument, what + ": the secret is longer than 24 bytes");
  if (o.num_s2m_rings < 1 || o.num_m2s_rings < 1) throw Error(Errc::invalid_argument, what + ": at least one ring each way");
  if (o.role == Role::slave) {
    if (o.log2_ring_size < 1 || o.log2_ring_size > kMaxLog2RingSize)
      throw Error(Errc::invalid_argument, what + ": log2 ring size must be 1..14");
    if (o.buffer_size < 64 || o.buffer_size % 8 != 0)
      throw Error(Errc::invalid_argument, what + ": buffer size must be a multiple of 8, at least 64 bytes");
  }
  if (static_cast<unsigned>(o.mode) > 2) throw Error(Errc::invalid_argument, what + ": unknown interface mode");
  const Role other = o.role == Role::master ? Role::slave : Role::master;
  if (s.has_role(other))
    throw Error(Errc::invalid_argument, what + ": a socket serves masters or slaves, not both (DPDK's rule too)");
  for (auto& i : s.ifaces)
    if (i->impl_->opt.id == o.id) throw Error(Errc::exists, what + ": id " + std::to_string(o.id) + " already used on this socket");
  if (o.role == Role::master && !s.listener.is_open()) {
    s.listener = listen_seqpacket(s.addr, 8);
    s.watch(s.listener.fd());
  }
  auto impl = std::make_unique<Interface::Impl>();
  impl->sock = &s;
  const std::uint16_t ntx = o.role == Role::slave ? o.num_s2m_rings : o.num_m2s_rings;
  const std::uint16_t nrx = o.role == Role::slave ? o.num_m2s_rings : o.num_s2m_rings;
  for (std::uint16_t k = 0; k < ntx; ++k) impl->tx.push_back(std::make_unique<detail::RingQueue>());
  for (std::uint16_t k = 0; k < nrx; ++k) {
    impl->rx.push_back(std::make_unique<detail::RingQueue>());
    impl->rx.back()->set_rx_mode(o.rx_mode);
  }
  impl->opt = std::move(o);
  s.ifaces.push_back(std::unique_ptr<Interface>(new Interface(std::move(impl))));
  Interface& iface = *s.ifaces.back();
  s.open_status();  // the first time: with this interface's role in the header
  s.publish(*iface.impl_);  // before the connect: readers see the interface from its start
  if (iface.impl_->opt.role == Role::slave) {
    s.slave_try_connect(*iface.impl_);
    if (iface.impl_->conn == nullptr) s.arm_timer();
  }
  s.update_overflow();
  return iface;
}

void Socket::remove_interface(Interface& iface) {
  Impl& s = *impl_;
  auto it = std::find_if(s.ifaces.begin(), s.ifaces.end(), [&](auto& p) { return p.get() == &iface; });
  if (it == s.ifaces.end()) return;
  auto& ii = *iface.impl_;
  ii.opt.on_disconnect = nullptr;
  if (ii.conn != nullptr || ii.up) s.teardown(ii, "interface deleted", true, true);
  s.unpublish(ii);
  s.ifaces.erase(it);
  if (!s.has_role(Role::master) && s.listener.is_open()) {
    s.unwatch(s.listener.fd());
    s.listener.close();
  }
  s.publish_all();  // a freed record goes to an interface that had none; role, timer
}

Status Socket::poll(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  s.check_faults();
  s.maybe_publish_all();
  const auto deadline = deadline_after(timeout);
  for (;;) {
    // Wait in slices of at most 100 ms so that faults reported by data-path threads are seen.
    int ms = 100;
    if (timeout.count() >= 0) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      ms = static_cast<int>(std::clamp<long long>(left, 0, 100));
    }
    epoll_event evs[16];
    const int n = ::epoll_wait(s.epfd.get(), evs, 16, ms);
    if (n < 0) {
      if (errno == EINTR) return Errc::interrupted;
      return errc_from_errno(errno);
    }
    int handled = 0;  // events other than the status timer's ticks
    for (int k = 0; k < n; ++k) {
      const int fd = evs[k].data.fd;
      if (s.status_timer && fd == s.status_timer.get()) {
        s.status_tick();
        continue;
      }
      ++handled;
      if (fd == s.timerfd.get()) {
        s.timer_tick();
      } else if (fd == s.handshake_timer.get()) {
        s.handshake_tick();
      } else if (fd == s.accept_timer.get()) {
        s.accept_tick();
      } else if (s.listener.is_open() && fd == s.listener.fd()) {
        s.accept_all();
      } else if (Connection* c = s.find_conn(fd)) {
        s.readable(c);
      }
    }
    s.check_faults();
    s.maybe_publish_all();
    if (handled > 0) return Errc::ok;
    if (timeout.count() >= 0 && Clock::now() >= deadline) return Errc::timeout;
  }
}

int Socket::fd() const noexcept { return impl_->epfd.get(); }
std::string Socket::name() const { return impl_->addr.display; }
const SocketOptions& Socket::options() const noexcept { return impl_->opt; }
std::string Socket::status_file() const { return impl_->status.path(); }

std::vector<Interface*> Socket::interfaces() const {
  std::vector<Interface*> v;
  for (auto& i : impl_->ifaces) v.push_back(i.get());
  return v;
}

}  // namespace shmlink::memif
