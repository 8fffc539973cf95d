// SPDX-License-Identifier: MIT
// memif slave role (docs/reference/memif.md section 6): connecting (and reconnecting on a timer),
// and the slave's handshake: HELLO -> create the memory and send INIT, then one announcement per
// ACK (regions, S2M rings, M2S rings, CONNECT), CONNECTED -> attach the queues. Socket::Impl
// lives in socket_impl.hpp.
#include "memif/socket_impl.hpp"

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
using detail::Connection;
using detail::Phase;
using detail::impl_of;
using detail::version_text;
using detail::warn_once;

void Socket::Impl::arm_timer() noexcept {
  if (opt.reconnect_interval.count() <= 0 || !timerfd) return;
  itimerspec its{};
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(opt.reconnect_interval).count();
  its.it_value.tv_sec = ns / 1000000000;
  its.it_value.tv_nsec = ns % 1000000000;
  its.it_interval = its.it_value;
  ::timerfd_settime(timerfd.get(), 0, &its, nullptr);
}

void Socket::Impl::slave_try_connect(Interface::Impl& i) {
  if (i.conn != nullptr) return;
  auto r = connect_seqpacket(addr, true);
  if (!r) {
    if (r.error != ECONNREFUSED && r.error != ENOENT && r.error != EAGAIN)
      warn_once(i.warned, i.label() + ": connecting to " + addr.display + ": " + std::strerror(r.error));
    publish(i);  // an attempt: the record's time says the slave is still trying
    return;
  }
  auto c = std::make_unique<Connection>();
  c->fd = std::move(r.fd);
  c->phase = Phase::slave_wait_hello;
  c->slave_side = true;
  c->iface = &i;
  i.conn = c.get();
  Connection* cp = c.get();
  conns.push_back(std::move(c));
  watch(cp->fd.get());
  touch(cp);
  publish(i);  // handshake
}

void Socket::Impl::slave_send_next(Connection* c) {
  Interface::Impl& i = *c->iface;
  auto& mem = *i.slave_mem;
  const std::size_t nreg = mem.regions.size();
  const std::size_t ns2m = mem.s2m.size();
  const std::size_t nm2s = mem.m2s.size();
  std::size_t k = c->step++;
  if (k < nreg) {
    send(c, wire::encode_add_region({static_cast<std::uint16_t>(k), static_cast<std::uint64_t>(mem.regions[k].size())}),
         mem.regions[k].fd());
    return;
  }
  k -= nreg;
  auto ring_msg = [](wire::RingType t, std::size_t idx, const detail::RingPlacement& p) {
    wire::AddRingInfo r;
    r.type = t;
    r.index = static_cast<std::uint16_t>(idx);
    r.region = p.region;
    r.offset = p.offset;
    r.log2_ring_size = p.log2;
    return wire::encode_add_ring(r);
  };
  if (k < ns2m) {
    send(c, ring_msg(wire::RingType::s2m, k, mem.s2m[k]), mem.s2m_eventfds[k].get());
    return;
  }
  k -= ns2m;
  if (k < nm2s) {
    send(c, ring_msg(wire::RingType::m2s, k, mem.m2s[k]), mem.m2s_eventfds[k].get());
    return;
  }
  c->phase = Phase::slave_wait_connected;
  send(c, wire::encode_connect(i.opt.name));
}

void Socket::Impl::slave_message(Connection* c, const wire::Message& m) {
  Interface::Impl& i = *c->iface;
  const auto type = wire::message_type(m);
  if (type == wire::MsgType::disconnect) {
    auto d = wire::decode_disconnect(m);
    const bool handshake = c->phase != Phase::up;
    fail(c, (handshake ? "refused by the master: " : "peer disconnected: ") + d.reason, false);
    return;
  }
  switch (c->phase) {
    case Phase::slave_wait_hello: {
      if (type != wire::MsgType::hello) return fail(c, "expected HELLO");
      auto h = wire::decode_hello(m);
      i.peer_app = h.name;
      if (!(h.min_version <= wire::kVersion && wire::kVersion <= h.max_version))
        return fail(c, "Incompatible memif version: master speaks " + version_text(h.min_version) + ".." +
                           version_text(h.max_version) + ", we speak " + version_text(wire::kVersion));
      detail::SlaveLayout lay;
      lay.num_s2m = static_cast<std::uint16_t>(std::min<unsigned>(h.max_s2m_ring + 1U, i.opt.num_s2m_rings));
      lay.num_m2s = static_cast<std::uint16_t>(std::min<unsigned>(h.max_m2s_ring + 1U, i.opt.num_m2s_rings));
      lay.log2 = std::min(h.max_log2_ring_size, i.opt.log2_ring_size);
      lay.buffer_size = i.opt.buffer_size;
      lay.separate_buffer_region = i.opt.separate_buffer_region;
      lay.cache_line = opt.cache_line;
      if (lay.log2 < 1) return fail(c, "master allows no ring size");
      try {
        i.slave_mem.emplace(detail::create_slave_memory(lay, "memif " + i.opt.name));
      } catch (const Error& e) {
        return fail(c, e.what());
      }
      wire::InitInfo in;
      in.id = i.opt.id;
      in.mode = static_cast<wire::Mode>(i.opt.mode);
      in.secret = i.opt.secret;
      in.name = opt.app_name;
      c->phase = Phase::slave_wait_ack;
      c->step = 0;
      send(c, wire::encode_init(in));
      return;
    }
    case Phase::slave_wait_ack:
      if (type != wire::MsgType::ack) return fail(c, "expected ACK");
      slave_send_next(c);
      return;
    case Phase::slave_wait_connected: {
      if (type != wire::MsgType::connected) return fail(c, "expected CONNECTED");
      i.peer_name = wire::decode_connected(m);
      auto& mem = *i.slave_mem;
      i.views = mem.views();
      auto rings = [](const std::vector<detail::RingPlacement>& placements, const std::vector<os::UniqueFd>& eventfds) {
        std::vector<detail::ConnectionRing> v;
        for (std::size_t k = 0; k < placements.size(); ++k) v.push_back({placements[k], eventfds[k].get()});
        return v;
      };
      // Rings in memory this side laid out: the queues attach (slave transmits on S2M, receives
      // on M2S).
      if (std::string why = attach(i, rings(mem.s2m, mem.s2m_eventfds), rings(mem.m2s, mem.m2s_eventfds));
          !why.empty())
        return fail(c, why);
      c->phase = Phase::up;
      go_up(i);
      return;
    }
    case Phase::up:
      return fail(c, "unexpected message type " + std::to_string(static_cast<unsigned>(type)) + " on a connected link");
    default:
      return fail(c, "internal: bad phase");
  }
}

void Socket::Impl::timer_tick() {
  std::uint64_t ticks;
  while (::read(timerfd.get(), &ticks, sizeof ticks) > 0) {
  }
  bool any_down = false;
  for (auto& ip : ifaces) {
    auto& i = impl_of(ip);
    if (i.opt.role != Role::slave || i.conn != nullptr) continue;
    slave_try_connect(i);
    if (i.conn == nullptr) any_down = true;
  }
  if (!any_down) {
    itimerspec off{};
    ::timerfd_settime(timerfd.get(), 0, &off, nullptr);
  }
}

}  // namespace shmlink::memif
