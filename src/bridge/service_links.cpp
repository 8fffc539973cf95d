// SPDX-License-Identifier: MIT
// The bridge service's links to its peers and CURVE on its sockets (include/shmlink/bridge_service.hpp,
// ServiceKeys; docs/design/bridge.md, "Threat model", "The service"): loading the key directory,
// making a peer's DEALER with the key it expects, trying the trusted keys in turn for a peer listed
// without its node, and reading the sockets' monitors so that a failed handshake is counted and
// shown (`bridge status`) instead of a link that stays down without a word.
#include "bridge/service_impl.hpp"

#include <cstdio>
#include <cstring>

namespace shmlink::bridge {

namespace {

/// The events the service's monitors ask for.
constexpr int kMonitorEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

/// One monitor event (libzmq's first frame: 16-bit event, 32-bit value, host order); false when
/// none is waiting. A malformed one comes back as event 0.
bool next_event(void* monitor, std::uint16_t& event, std::uint32_t& value) {
  detail::Parts m;
  if (monitor == nullptr || !detail::recv_parts(monitor, m)) return false;
  event = 0;
  value = 0;
  if (!m.parts.empty() && m.parts[0].size() == 6) {
    std::memcpy(&event, m.parts[0].data(), 2);
    std::memcpy(&value, m.parts[0].data() + 2, 4);
  }
  return true;
}

/// Why a handshake failed, in words (event and value of a HANDSHAKE_FAILED_* event).
std::string failure_text(std::uint16_t event, std::uint32_t value) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    return "the peer refused our key (ZAP status " + std::to_string(value) +
           "): our public key is not in its peers/ directory";
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
      return "the two ends use different security: one runs with --keys (CURVE), the other without";
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
      return "a CURVE handshake message could not be decrypted: the keys do not match";
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", value);
    return std::string("ZeroMQ protocol error ") + hex;
  }
  return std::string("the handshake failed: ") + ::zmq_strerror(static_cast<int>(value));
}

}  // namespace

void Service::Impl::load_security() {
  const std::string& dir = opt.keys.directory;
  try {
    security = make_security(ctx.get(), dir, name);
  } catch (const Error& e) {
    throw Error(e.errc(), "bridge service '" + name + "': keys directory " + dir + ": " + e.what());
  }
  if (security->trusted().empty())
    throw Error(Errc::not_found, "bridge service '" + name + "': keys directory " + dir + ": no trusted key in " + dir +
                                     "/peers (copy there the NODE.pub of each peer, and give each peer ours, " + name +
                                     ".pub)");
}

void Service::Impl::watch(void* socket, detail::Socket& monitor, const std::string& what) {
  const std::string ep = "inproc://shmlink-service-monitor-" + std::to_string(next_monitor++);
  if (::zmq_socket_monitor(socket, ep.c_str(), kMonitorEvents) != 0)
    throw Error(Errc::system, "monitoring " + what + ": " + ::zmq_strerror(::zmq_errno()));
  monitor = detail::Socket(ctx.get(), ZMQ_PAIR, "the monitor of " + what);
  monitor.attach(ep, true);
}

void Service::Impl::close_peer(Peer& p) noexcept {
  if (p.dealer.get() != nullptr) (void)::zmq_socket_monitor(p.dealer.get(), nullptr, 0);
  p.dealer = detail::Socket();
  p.monitor = detail::Socket();
}

void Service::Impl::connect_peer(Peer& p) {
  close_peer(p);
  const std::string what = "the link of node '" + name + "' to peer " + p.endpoint;
  std::string key;
  if (security) {  // the key the peer must hold: its own node's, or the trusted key tried now
    p.key_node = p.expect.empty() ? security->trusted()[p.key_index % security->trusted().size()].node : p.expect;
    try {
      key = peer_public_key(*security, p.key_node);
    } catch (const Error& e) {
      throw Error(e.errc(), what + ": no key to expect of node '" + p.key_node + "': " + e.what());
    }
  }
  p.dealer = detail::Socket(ctx.get(), ZMQ_DEALER, what);
  p.dealer.set(ZMQ_IMMEDIATE, 1);  // nothing queued for a peer that is not connected
  p.dealer.set(ZMQ_SNDHWM, 64);
  p.dealer.set(ZMQ_RECONNECT_IVL, 100);
  p.dealer.set(ZMQ_RECONNECT_IVL_MAX, static_cast<int>(std::max<long>(100, opt.timing.link_timeout.count())));
  p.dealer.limit_message_size(kServicePartLimit);
  if (security) apply_client(p.dealer.get(), *security, key, what);
  watch(p.dealer.get(), p.monitor, what);
  p.dealer.attach(p.endpoint, true);
  p.dealt = Clock::now();
  p.connecting = false;
}

void Service::Impl::next_key(Peer& p, Clock::time_point now) {
  if (!security || !p.expect.empty() || p.ever_heard || security->trusted().size() < 2 ||
      now - p.dealt < opt.timing.link_timeout)
    return;
  ++p.key_index;
  try {
    connect_peer(p);
  } catch (const Error& e) {
    refuse(e.what());
  }
}

void Service::Impl::on_peer_events(Peer& p) {
  std::uint16_t event = 0;
  std::uint32_t value = 0;
  for (int n = 0; n < 64 && next_event(p.monitor.get(), event, value); ++n) {
    std::string why;
    switch (event) {
      case ZMQ_EVENT_CONNECTED: p.connecting = true; continue;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: {
        p.connecting = false;
        std::lock_guard lock(mutex);
        p.problem.clear();
        continue;
      }
      case ZMQ_EVENT_DISCONNECTED:
        if (!p.connecting) continue;  // a link lost after its handshake: the heartbeats say so
        why = security ? "the connection closed during the CURVE handshake: the peer does not hold the key of node '" +
                             p.key_node + "' (peers/" + p.key_node + ".pub), or it refused ours"
                       : "the connection closed during the handshake (does the peer require CURVE, --keys?)";
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: why = failure_text(event, value); break;
      default: continue;
    }
    p.connecting = false;
    std::lock_guard lock(mutex);
    ++st.handshakes_failed;
    p.problem = why;
    error = "peer " + p.endpoint + (p.key_node.empty() ? "" : " (expected node '" + p.key_node + "')") + ": " + why;
  }
}

void Service::Impl::on_router_events() {
  std::uint16_t event = 0;
  std::uint32_t value = 0;
  for (int n = 0; n < 64 && next_event(router_monitor.get(), event, value); ++n) {
    if (event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
      continue;
    std::string why = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? std::string("its key is not trusted (not in our peers/)")
                                                                : failure_text(event, value);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && security) why += ": " + security->stats().last_refusal;
    std::lock_guard lock(mutex);
    ++st.handshakes_failed;
    error = "a peer connecting to the service port of node '" + name + "' failed its handshake: " + why;
  }
}

// ---------------------------------------------------------------- the peer list

void Service::Impl::add_peer(const std::string& host, std::uint16_t pport, bool listed, const std::string& node) {
  {
    std::lock_guard lock(mutex);
    if (peers.size() >= kMaxServicePeers)
      throw Error(Errc::no_space, "node '" + name + "' links to " + std::to_string(kMaxServicePeers) +
                                      " peers already: " + host + ":" + std::to_string(pport) + " not added");
  }
  auto peer = std::make_unique<Peer>();
  // An IPv6 address (a learned peer's Peer-Address) goes in brackets in an endpoint.
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  peer->host = v6 ? "[" + host + "]" : host;
  peer->listed = listed;
  peer->added = Clock::now();
  peer->endpoint = "tcp://" + peer->host + ":" + std::to_string(pport);
  peer->expect = node;
  connect_peer(*peer);
  std::lock_guard lock(mutex);
  peers.push_back(std::move(peer));
}

void Service::Impl::follow_discovery() {
  if (!discovery) return;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex);
    generation = local_generation;
  }
  discovery->set_catalogue_generation(generation);
  for (const DiscoveredPeer& d : discovery->peers()) {
    const std::string ep = "tcp://" + d.address + ":" + std::to_string(d.port);
    bool known = false;
    {
      std::lock_guard lock(mutex);
        for (const auto& p : peers) known = known || p->endpoint == ep || p->node == d.node || p->expect == d.node;
    }
    if (known || d.node == name || untrusted_discovered.count(d.node) != 0) continue;
    try {
      add_peer(d.address, d.port, false, d.node);
    } catch (const Error& e) {
      // Its key is missing: said once (a bounded set: forged beacons may invent any name).
      if (security && e.errc() == Errc::not_found && untrusted_discovered.size() < kMaxServicePeers)
        untrusted_discovered.insert(d.node);
      refuse("discovered node '" + d.node + "': " + e.what());
    }
  }
}

void Service::Impl::learn_peer(const std::string& node, const std::string& address, std::uint32_t pport) {
  if (node == name || address.empty() || pport == 0 || pport > 65535) return;
  const bool v6 = address.find(':') != std::string::npos;
  const std::string ep = "tcp://" + (v6 ? "[" + address + "]" : address) + ":" + std::to_string(pport);
  {
    std::lock_guard lock(mutex);
    for (const auto& p : peers)
      if (p->node == node || p->expect == node || p->endpoint == ep) return;
  }
  try {
    add_peer(address, static_cast<std::uint16_t>(pport), false, node);
  } catch (const Error& e) {
    refuse("node '" + node + "' (" + ep + ") linked to us: " + e.what());
  }
}

void Service::Impl::forget_silent(Clock::time_point now) {
  std::vector<std::unique_ptr<Peer>> gone;  // their DEALERs close outside the mutex
  std::lock_guard lock(mutex);
  for (auto it = peers.begin(); it != peers.end();) {
    const Peer& p = **it;
    const auto heard = std::max(p.last_heard, p.added);
    const bool duplicate = !p.listed && !p.node.empty() &&
                           std::any_of(peers.begin(), peers.end(), [&](const auto& q) { return q->listed && q->node == p.node; });
    if (!p.listed && (duplicate || (!p.up && now - heard > 2 * opt.timing.link_timeout))) {
      close_peer(**it);
      gone.push_back(std::move(*it));
      it = peers.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace shmlink::bridge
