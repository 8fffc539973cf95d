// SPDX-License-Identifier: MIT
// memif sockets, the core both roles share (docs/reference/memif.md sections 6-8): the status
// file, teardown and refusals, handshake deadlines, dispatch of control messages to the role's
// state machine (master.cpp, slave.cpp), data-path faults, and attaching an interface's queues to
// the rings of its connection. Socket::Impl lives in socket_impl.hpp.
#include "memif/socket_impl.hpp"
#include "os/clock.hpp"

#include <shmlink/channel.hpp>

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::memif {

// The internal helpers of socket_impl.hpp, by their short names in this file.
using detail::Clock;
using detail::Connection;
using detail::Phase;
using detail::impl_of;
using detail::log_info;
using detail::log_warn;
using detail::warn_once;

namespace {

/// Distinct refusal messages remembered per interface or socket (a peer choosing its reasons
/// must not grow the set without bound; the oldest is forgotten and may be logged again).
constexpr std::size_t kWarnedReasonsMax = 32;

/// What a connection in `p` waits for, for the handshake deadline's reason.
const char* awaited(Phase p) noexcept {
  switch (p) {
    case Phase::master_wait_init: return "INIT";
    case Phase::master_wait_setup: return "ADD_REGION, ADD_RING or CONNECT";
    case Phase::slave_wait_hello: return "HELLO";
    case Phase::slave_wait_ack: return "ACK";
    case Phase::slave_wait_connected: return "CONNECTED";
    case Phase::up: break;
  }
  return "a message";
}

/// A whole handshake, counted from the connection's start (accept or connect), must be done
/// within this many handshake_timeouts, however promptly each message comes: a peer that
/// trickles valid messages just inside the per-stage deadline holds an id (and the fds it sent)
/// for this long at most.
constexpr int kHandshakeTotalFactor = 2;

}  // namespace

void detail::warn_once(std::deque<std::string>& seen, const std::string& key, const std::string& m) {
  if (std::find(seen.begin(), seen.end(), key) != seen.end()) return log_info(m);
  if (seen.size() == kWarnedReasonsMax) seen.pop_front();
  seen.push_back(key);
  log_warn(m);
}

void detail::warn_once(std::deque<std::string>& seen, const std::string& m) { warn_once(seen, m, m); }

void Socket::Impl::open_status() {
  if (status_tried || !opt.publish_status) return;
  status_tried = true;
  std::string display = addr.display;
  if (!addr.abstract && !display.empty() && display.front() != '/') {
    // Relative path: publish it absolute, so that readers in other directories can match it.
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) display = std::string(cwd) + "/" + display;
  }
  std::string dir;
  try {
    dir = stream_directory();
  } catch (...) {
    return;
  }
  // The first interface decides the socket's role (one role per socket): in the header before
  // the file is visible, so no reader sees a listed socket without a role.
  const std::uint8_t role = ifaces.empty()                                             ? status::kRoleNone
                            : InterfaceAccess::of(*ifaces.front()).opt.role == Role::master ? status::kRoleMaster
                                                                                          : status::kRoleSlave;
  if (!status.open(dir, display, opt.app_name, role)) return;
  status_timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (status_timer) {
    try {
      watch(status_timer.get());
    } catch (const Error&) {
      status_timer.reset();
    }
  }
}

std::uint8_t Socket::Impl::link_state(const Interface::Impl& i) const noexcept {
  if (i.up) return status::kStateConnected;
  if (i.conn != nullptr) return status::kStateHandshake;
  if (i.opt.role == Role::master) return listener.is_open() ? status::kStateListening : status::kStateIdle;
  return opt.reconnect_interval.count() > 0 ? status::kStateConnecting : status::kStateIdle;
}

void Socket::Impl::publish(Interface::Impl& i) noexcept {
  if (!status.is_open()) return;
  if (i.status_slot < 0) {
    i.status_slot = status.acquire();
    if (i.status_slot < 0) {
      update_overflow();
      return;
    }
    update_overflow();
  }
  status::InterfaceRecord r{};
  r.in_use = 1;
  r.id = i.opt.id;
  r.role = i.opt.role == Role::master ? status::kRoleMaster : status::kRoleSlave;
  r.mode = static_cast<std::uint8_t>(i.opt.mode);
  r.state = link_state(i);
  if (i.up) {
    r.tx_queues = i.n_tx;
    r.rx_queues = i.n_rx;
    if (i.slave_mem) {
      r.ring_size = 1U << i.slave_mem->layout.log2;
      r.buffer_size = i.slave_mem->layout.buffer_size;
    } else if (!i.s2m_placement.empty()) {
      r.ring_size = 1U << i.s2m_placement.front().log2;
    }
  }
  r.connects = i.connects;
  r.updated_ns = os::now_ns(CLOCK_REALTIME);
  // Packets and bytes per direction; the faults over both.
  auto add = [&r](const std::vector<std::unique_ptr<detail::RingQueue>>& queues, std::uint64_t& packets,
                  std::uint64_t& bytes) {
    for (const auto& q : queues) {
      const QueueCounters c = q->counters();
      packets += c.packets;
      bytes += c.bytes;
      r.bad_descriptors += c.bad_descriptors;
      r.dropped_packets += c.dropped_packets;
      r.clamped_jumps += c.clamped_jumps;
      r.ring_full += c.ring_full;
      r.interrupts_sent += c.interrupts_sent;
    }
  };
  add(i.tx, r.tx_packets, r.tx_bytes);
  add(i.rx, r.rx_packets, r.rx_bytes);
  detail::copy_field(r.name, sizeof r.name, i.opt.name);
  detail::copy_field(r.peer_name, sizeof r.peer_name, i.peer_name);
  detail::copy_field(r.peer_app, sizeof r.peer_app, i.peer_app);
  detail::copy_field(r.last_disconnect, sizeof r.last_disconnect, i.last_disconnect);
  status.write(i.status_slot, r);
}

void Socket::Impl::unpublish(Interface::Impl& i) noexcept {
  if (i.status_slot >= 0) status.release(i.status_slot);
  i.status_slot = -1;
}

void Socket::Impl::update_overflow() noexcept {
  if (!status.is_open()) return;
  std::uint32_t missing = 0;
  for (auto& ip : ifaces)
    if (InterfaceAccess::of(*ip).status_slot < 0) ++missing;
  status.set_overflow(missing);
  std::uint8_t role = status::kRoleNone;
  if (!ifaces.empty())
    role = InterfaceAccess::of(*ifaces.front()).opt.role == Role::master ? status::kRoleMaster : status::kRoleSlave;
  status.set_role(role);
}

void Socket::Impl::publish_all() noexcept {
  if (!status.is_open()) return;
  status_refreshed = Clock::now();
  for (auto& ip : ifaces) publish(InterfaceAccess::of(*ip));
  update_overflow();
  update_status_timer();
}

void Socket::Impl::maybe_publish_all() noexcept {
  if (status.is_open() && Clock::now() - status_refreshed >= std::chrono::milliseconds(100)) publish_all();
}

void Socket::Impl::update_status_timer() noexcept {
  if (!status_timer) return;
  const bool any_up = std::any_of(ifaces.begin(), ifaces.end(), [](auto& ip) { return InterfaceAccess::of(*ip).up; });
  if (any_up == status_timer_armed) return;
  itimerspec its{};
  if (any_up) {
    its.it_value.tv_nsec = 100'000'000;
    its.it_interval = its.it_value;
  }
  ::timerfd_settime(status_timer.get(), 0, &its, nullptr);
  status_timer_armed = any_up;
}

void Socket::Impl::status_tick() noexcept {
  std::uint64_t ticks;
  while (::read(status_timer.get(), &ticks, sizeof ticks) > 0) {
  }
  maybe_publish_all();
}

void Socket::Impl::watch(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) os::throw_errno(errno, "watching memif socket", addr.display);
}

void Socket::Impl::unwatch(int fd) noexcept {
  ::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, fd, nullptr);
}

Connection* Socket::Impl::find_conn(int fd) noexcept {
  for (auto& c : conns)
    if (c->fd.get() == fd) return c.get();
  return nullptr;
}

void Socket::Impl::close_conn(Connection* c) noexcept {
  unwatch(c->fd.get());
  auto it = std::find_if(conns.begin(), conns.end(), [&](auto& p) { return p.get() == c; });
  if (it != conns.end()) conns.erase(it);
}

bool Socket::Impl::has_role(Role r) const noexcept {
  return std::any_of(ifaces.begin(), ifaces.end(), [&](auto& i) { return impl_of(i).opt.role == r; });
}

void Socket::Impl::teardown(Interface::Impl& i, const std::string& reason, bool send_disconnect, bool local) {
  const bool was_up = i.up;
  if (i.conn != nullptr) {
    if (send_disconnect) (void)send_message(i.conn->fd.get(), wire::encode_disconnect(0, reason));
    Connection* c = i.conn;
    i.conn = nullptr;
    close_conn(c);
  }
  for (auto& q : i.tx) q->detach();
  for (auto& q : i.rx) q->detach();
  i.n_tx = i.n_rx = 0;
  i.up = false;
  i.views.clear();
  i.peer_regions.clear();
  i.ring_eventfds.clear();
  i.slave_mem.reset();
  i.s2m_placement.clear();
  i.m2s_placement.clear();
  i.last_disconnect = reason;
  if (was_up || local)
    log_info(i.label() + ": disconnected: " + reason);
  else
    warn_once(i.warned, i.label() + ": not connected: " + reason);
  if (i.opt.role == Role::slave) arm_timer();
  publish(i);
  update_status_timer();
  if (was_up && i.opt.on_disconnect) i.opt.on_disconnect(*i.self, reason);
}

void Socket::Impl::refuse(Connection* c, const std::string& reason) {
  if (c->iface != nullptr) {
    teardown(*c->iface, "refused slave: " + reason, true);
    return;
  }
  warn_once(warned, reason,
            "memif socket " + addr.display + ": refused a peer" +
                (c->peer_app.empty() ? std::string() : " ('" + c->peer_app + "')") + ": " + reason);
  (void)send_message(c->fd.get(), wire::encode_disconnect(0, reason));
  close_conn(c);
}

void Socket::Impl::fail(Connection* c, const std::string& reason, bool send_disconnect) {
  if (c->iface != nullptr)
    teardown(*c->iface, reason, send_disconnect);
  else if (send_disconnect)
    refuse(c, reason);
  else
    close_conn(c);
}

bool Socket::Impl::send(Connection* c, const wire::Message& m, int fd) {
  auto r = send_message(c->fd.get(), m, fd);
  if (!r) {
    fail(c, "sending on the control channel: " + r.describe(), false);
    return false;
  }
  return true;
}

void Socket::Impl::touch(Connection* c) noexcept {
  if (c->phase == Phase::up || opt.handshake_timeout.count() <= 0)
    c->deadline = Clock::time_point::max();
  else
    c->deadline = std::min(Clock::now() + opt.handshake_timeout, handshake_cap(*c));
  arm_handshake_timer();
}

Clock::time_point Socket::Impl::handshake_cap(const Connection& c) const noexcept {
  return c.started + kHandshakeTotalFactor * opt.handshake_timeout;
}

void Socket::Impl::arm_handshake_timer() noexcept {
  auto earliest = Clock::time_point::max();
  for (auto& c : conns)
    if (c->phase != Phase::up) earliest = std::min(earliest, c->deadline);
  itimerspec its{};
  if (earliest != Clock::time_point::max()) {
    const auto ns = std::max<long long>(
        1, std::chrono::duration_cast<std::chrono::nanoseconds>(earliest - Clock::now()).count());
    its.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
    its.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  }
  ::timerfd_settime(handshake_timer.get(), 0, &its, nullptr);
}

void Socket::Impl::handshake_tick() {
  std::uint64_t ticks;
  while (::read(handshake_timer.get(), &ticks, sizeof ticks) > 0) {
  }
  const auto now = Clock::now();
  std::vector<Connection*> late;
  for (auto& c : conns)
    if (c->phase != Phase::up && c->deadline <= now) late.push_back(c.get());
  for (Connection* c : late) {
    if (std::none_of(conns.begin(), conns.end(), [&](auto& p) { return p.get() == c; })) continue;
    if (handshake_cap(*c) <= now)
      fail(c, "handshake timed out: not complete within " +
                  std::to_string((kHandshakeTotalFactor * opt.handshake_timeout).count()) + " ms");
    else
      fail(c, std::string("handshake timed out: no ") + awaited(c->phase) + " within " +
                  std::to_string(opt.handshake_timeout.count()) + " ms");
  }
  arm_handshake_timer();
}

void Socket::Impl::go_up(Interface::Impl& i) {
  i.up = true;
  ++i.connects;
  i.last_disconnect.clear();
  i.warned.clear();  // a refusal after this link goes down is news again
  log_info(i.label() + ": connected to '" + i.peer_name + "' (" + i.peer_app + ") on " + addr.display);
  publish(i);
  update_status_timer();
  if (i.opt.on_connect) i.opt.on_connect(*i.self);
}

void Socket::Impl::readable(Connection* c) {
  // Several messages may be queued; handle them all (each may close c).
  for (int n = 0; n < 64; ++n) {
    wire::Message m;
    os::UniqueFd fd;
    auto r = receive_message(c->fd.get(), m, fd);
    if (r.code == Errc::would_block) return;
    if (r.code == Errc::closed) return fail(c, "peer closed the control channel", false);
    if (r.fd_not_made_nonblocking) return fail(c, r.describe());  // the channel works: say why
    if (!r) return fail(c, "control channel: " + r.describe(), r.code == Errc::layout);
    const int fdnum = c->fd.get();
    if (c->slave_side)
      slave_message(c, m);
    else
      master_message(c, m, std::move(fd));
    if (find_conn(fdnum) != c) return;  // closed while handling
    touch(c);  // the next stage's deadline (none once up)
  }
}

void Socket::Impl::check_faults() {
  for (auto& ip : ifaces) {
    auto& i = impl_of(ip);
    if (!i.up) continue;
    // SYNC POINT: acquire; pairs with the release store of the flag in RingQueue::set_fault()
    // (the data path's thread), so fault() is complete when read here.
    for (std::uint16_t k = 0; k < i.n_tx; ++k)
      if (i.tx[k]->fault_flag().load(std::memory_order_acquire))
        return teardown(i, "bad descriptor: " + i.tx[k]->fault(), true);
    for (std::uint16_t k = 0; k < i.n_rx; ++k)
      if (i.rx[k]->fault_flag().load(std::memory_order_acquire))
        return teardown(i, "bad descriptor: " + i.rx[k]->fault(), true);
  }
}

std::string Socket::Impl::attach(Interface::Impl& i, std::span<const detail::ConnectionRing> s2m,
                                 std::span<const detail::ConnectionRing> m2s) {
  detail::ConnectionRings rings;
  rings.regions = i.views;
  rings.s2m = s2m;
  rings.m2s = m2s;
  rings.cache_line = opt.cache_line;
  rings.slave_memory = i.slave_mem ? &*i.slave_mem : nullptr;  // must agree with the role
  if (std::string why = detail::attach_rings(i.opt.role, rings, i.tx, i.rx); !why.empty()) return why;
  const bool slave = i.opt.role == Role::slave;
  i.n_tx = static_cast<std::uint16_t>((slave ? s2m : m2s).size());
  i.n_rx = static_cast<std::uint16_t>((slave ? m2s : s2m).size());
  i.s2m_placement.clear();
  i.m2s_placement.clear();
  for (const auto& r : s2m) i.s2m_placement.push_back(r.placement);
  for (const auto& r : m2s) i.m2s_placement.push_back(r.placement);
  return {};
}

}  // namespace shmlink::memif
