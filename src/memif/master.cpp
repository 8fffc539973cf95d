// SPDX-License-Identifier: MIT
// memif master role (docs/reference/memif.md sections 6-7): the listener with its accept
// back-off, and the master's handshake: HELLO, INIT checks, ADD_REGION / ADD_RING checks, CONNECT
// (map the slave's regions, attach the queues), CONNECTED. Socket::Impl lives in socket_impl.hpp.
#include "memif/socket_impl.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::memif {

// The internal helpers of socket_impl.hpp, by their short names in this file.
using detail::AnnouncedRing;
using detail::Clock;
using detail::Connection;
using detail::Phase;
using detail::impl_of;
using detail::log_warn;
using detail::version_text;

namespace {

/// How long the master stops watching its listener after accept() failed (EMFILE, ENFILE,
/// ENOMEM, ...): a failed accept leaves the connection queued, so the listener stays readable
/// and retrying at once would spin.
constexpr std::chrono::milliseconds kAcceptBackoff{100};
/// One log line per distinct accept error per this interval; the others are counted.
constexpr std::chrono::seconds kAcceptLogInterval{5};

}  // namespace

void Socket::Impl::accept_all() {
  for (;;) {
    os::UniqueFd fd;
    auto r = listener.accept(fd, true);
    if (r.code == Errc::would_block) return;
    if (!r) {
      log_accept_error(r.describe());
      pause_accepting();
      return;
    }
    auto c = std::make_unique<Connection>();
    c->fd = std::move(fd);
    c->phase = Phase::master_wait_init;
    Connection* cp = c.get();
    conns.push_back(std::move(c));
    watch(cp->fd.get());
    touch(cp);
    wire::HelloInfo h;
    h.name = opt.app_name;
    if (!send(cp, wire::encode_hello(h))) continue;
  }
}

void Socket::Impl::log_accept_error(const std::string& why) {
  const auto now = Clock::now();
  if (why == accept_log.reason && now - accept_log.logged < kAcceptLogInterval) {
    ++accept_log.suppressed;
    return;
  }
  std::string m = "memif socket " + addr.display + ": accept: " + why + "; not accepting for " +
                  std::to_string(kAcceptBackoff.count()) + " ms (connected interfaces keep running)";
  if (accept_log.suppressed != 0)
    m += "; " + std::to_string(accept_log.suppressed) + " earlier accept errors were not logged";
  log_warn(m);
  accept_log.reason = why;
  accept_log.logged = now;
  accept_log.suppressed = 0;
}

void Socket::Impl::pause_accepting() noexcept {
  itimerspec its{};
  its.it_value.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(kAcceptBackoff).count();
  if (::timerfd_settime(accept_timer.get(), 0, &its, nullptr) != 0) return;  // keep watching: no timer
  unwatch(listener.fd());
  accept_paused = true;
}

void Socket::Impl::accept_tick() {
  std::uint64_t ticks;
  while (::read(accept_timer.get(), &ticks, sizeof ticks) > 0) {
  }
  if (!accept_paused) return;
  accept_paused = false;
  if (!listener.is_open()) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener.fd();
  if (::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, listener.fd(), &ev) != 0 && errno != EEXIST) {
    log_accept_error(std::string("watching the listener again: ") + std::strerror(errno));
    pause_accepting();
    return;
  }
  accept_all();
}

void Socket::Impl::master_message(Connection* c, const wire::Message& m, os::UniqueFd fd) {
  const auto type = wire::message_type(m);
  if (type == wire::MsgType::disconnect) {
    auto d = wire::decode_disconnect(m);
    fail(c, "peer disconnected: " + d.reason, false);
    return;
  }
  switch (c->phase) {
    case Phase::master_wait_init: {
      if (type != wire::MsgType::init) return refuse(c, "expected INIT");
      auto in = wire::decode_init(m);
      c->peer_app = in.name;
      Interface::Impl* target = nullptr;
      for (auto& i : ifaces)
        if (impl_of(i).opt.role == Role::master && impl_of(i).opt.id == in.id) target = &impl_of(i);
      if (in.version != wire::kVersion) {
        if (target != nullptr) {  // visible on the interface the slave asked for
          target->last_disconnect =
              "refused slave '" + in.name + "': incompatible memif version " + version_text(in.version);
          publish(*target);
        }
        return refuse(c, "Incompatible memif version");
      }
      if (target == nullptr) return refuse(c, "ID not found");
      if (target->conn != nullptr) return refuse(c, "Already connected");
      if (static_cast<std::uint8_t>(in.mode) != static_cast<std::uint8_t>(target->opt.mode)) {
        target->last_disconnect = "refused slave '" + in.name + "': mode mismatch";
        publish(*target);
        return refuse(c, "Mode mismatch");
      }
      if (!target->opt.secret.empty()) {
        const char* why = in.secret.empty() ? "Secret required" : in.secret != target->opt.secret ? "Incorrect secret" : nullptr;
        if (why != nullptr) {
          target->last_disconnect = "refused slave '" + in.name + "': " + why;
          publish(*target);
          return refuse(c, why);
        }
      }
      c->iface = target;
      target->conn = c;
      target->peer_app = in.name;
      c->phase = Phase::master_wait_setup;
      publish(*target);  // handshake
      send(c, wire::encode_ack());
      return;
    }
    case Phase::master_wait_setup: {
      Interface::Impl& i = *c->iface;
      if (type == wire::MsgType::add_region) {
        auto r = wire::decode_add_region(m);
        if (!fd) return fail(c, "Missing region fd");
        if (r.index != c->regions.size()) return fail(c, "Invalid region index " + std::to_string(r.index));
        if (r.index > 255) return fail(c, "too many regions");
        if (r.size == 0) return fail(c, "region " + std::to_string(r.index) + " has size 0");
        if (auto why = detail::check_peer_region(fd.get(), r.index, i.opt.allow_unsealed_regions); !why.empty())
          return fail(c, why);
        c->regions.emplace_back(std::move(fd), r.size);
        send(c, wire::encode_ack());
        return;
      }
      if (type == wire::MsgType::add_ring) {
        auto r = wire::decode_add_ring(m);
        if (!fd) return fail(c, "Missing interrupt fd");
        if (!detail::is_eventfd(fd.get())) return fail(c, "interrupt fd is not an eventfd");
        if (r.private_hdr_size != 0) return fail(c, "private headers not supported");
        const bool s2m = r.type == wire::RingType::s2m;
        auto& list = s2m ? c->s2m : c->m2s;
        const std::uint16_t limit = s2m ? i.opt.num_s2m_rings : i.opt.num_m2s_rings;
        const char* dir = s2m ? "S2M" : "M2S";
        if (r.index != list.size()) return fail(c, std::string("Invalid ring index: ") + dir + " " + std::to_string(r.index));
        if (r.index >= limit)
          return fail(c, std::string("Invalid ring index: ") + dir + " " + std::to_string(r.index) + ", at most " +
                             std::to_string(limit) + " rings");
        if (r.region >= c->regions.size()) return fail(c, "ring refers to unknown region " + std::to_string(r.region));
        if (r.log2_ring_size < 1 || r.log2_ring_size > wire::kMaxLog2RingSize)
          return fail(c, "ring size 2^" + std::to_string(r.log2_ring_size) + " out of range");
        list.push_back(AnnouncedRing{{r.region, r.offset, r.log2_ring_size}, std::move(fd)});
        send(c, wire::encode_ack());
        return;
      }
      if (type == wire::MsgType::connect) {
        i.peer_name = wire::decode_connect(m);
        master_connect(c);
        return;
      }
      return fail(c, "unexpected message type " + std::to_string(static_cast<unsigned>(type)));
    }
    case Phase::up:
      return fail(c, "unexpected message type " + std::to_string(static_cast<unsigned>(type)) + " on a connected link");
    default:
      return fail(c, "internal: bad phase");
  }
}

void Socket::Impl::master_connect(Connection* c) {
  Interface::Impl& i = *c->iface;
  if (c->s2m.empty() || c->m2s.empty()) return fail(c, "no rings announced");
  try {
    for (std::size_t k = 0; k < c->regions.size(); ++k)
      i.peer_regions.push_back(detail::map_peer_region(std::move(c->regions[k].first), c->regions[k].second,
                                                       i.label() + " region " + std::to_string(k)));
  } catch (const Error& e) {
    i.peer_regions.clear();
    return fail(c, e.what());
  }
  // Descriptors are checked against the size the slave announced (the mapping may be larger:
  // map_peer_region maps the whole file).
  for (std::size_t k = 0; k < i.peer_regions.size(); ++k)
    i.views.push_back(detail::RegionView{reinterpret_cast<std::uint8_t*>(i.peer_regions[k].data()), c->regions[k].second});
  c->regions.clear();
  auto rings = [](const std::vector<AnnouncedRing>& announced) {
    std::vector<detail::ConnectionRing> v;
    for (const AnnouncedRing& r : announced) v.push_back({r.placement, r.eventfd.get()});
    return v;
  };
  // Each ring inside its region, with the cookie; then the queues attach (master transmits on
  // M2S, receives on S2M).
  if (std::string why = attach(i, rings(c->s2m), rings(c->m2s)); !why.empty()) return fail(c, why);
  for (auto& r : c->s2m) i.ring_eventfds.push_back(std::move(r.eventfd));
  for (auto& r : c->m2s) i.ring_eventfds.push_back(std::move(r.eventfd));
  c->s2m.clear();
  c->m2s.clear();
  if (!send(c, wire::encode_connected(i.opt.name))) return;
  c->phase = Phase::up;
  go_up(i);
}

}  // namespace shmlink::memif
