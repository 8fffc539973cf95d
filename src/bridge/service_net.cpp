// SPDX-License-Identifier: MIT
// The bridge service's network thread (include/shmlink/bridge_service.hpp; docs/design/bridge.md,
// "The service"): its loop over the service port (a ROUTER), the peer links (DEALERs), their
// monitors and the command eventfd; the messages peers send on each; and the heartbeat's periodic
// work (rescanning the catalogue, forgetting silent peers, following discovery, hellos).
#include "bridge/service_impl.hpp"

namespace shmlink::bridge {

void Service::Impl::on_router(detail::Parts& m, const std::string& user) {
  if (m.parts.size() < 3 || m.parts.size() > 4) return refuse("a peer sent a message of " + std::to_string(m.parts.size()) + " parts (3 or 4 expected)");
  const auto& identity = m.parts[0];
  const std::string from = to_text(m.parts[1]);
  const std::span<const std::byte> payload = m.parts.size() == 4 ? std::span<const std::byte>(m.parts[3]) : std::span<const std::byte>();
  wire::Header h;
  const auto e = wire::decode(m.parts[2], payload.size(), h);
  if (e != wire::DecodeError::ok) return refuse("peer '" + detail::json_string(from) + "': " + wire::describe(e));
  if (!detail::node_name_ok(from)) return refuse("a peer's message names no valid node (topic " + detail::json_string(from) + ")");
  if (security && user != from)  // CURVE: a trusted key speaks only for its own node
    return refuse("a peer authenticated by the trusted key of node " + detail::json_string(user) + " sends as node '" +
                  from + "': refused");
  switch (static_cast<wire::Kind>(h.kind)) {
    case wire::Kind::service_hello:
      reply(identity, hello());
      learn_peer(from, m.peer_address, h.size[0]);
      return;
    case wire::Kind::catalogue_request: {
      std::vector<std::byte> body;
      wire::Header c = wire::make_header(wire::Kind::catalogue);
      {
        std::lock_guard lock(mutex);
        body = wire::encode_catalogue(local);
        c.generation = local_generation;
      }
      c.keyword_count = static_cast<std::uint32_t>(std::min<std::size_t>(body.size() / wire::kCatalogueRecordBytes, wire::kMaxCatalogueRecords));
      body.resize(std::size_t{c.keyword_count} * wire::kCatalogueRecordBytes);
      reply(identity, c, body);
      return;
    }
    case wire::Kind::open_request: return on_open_request(identity, from, h, to_text(payload));
    case wire::Kind::release: {
      if ((h.flags & wire::kServiceQueue) != 0) {  // a queue's sender stops now
        on_queue_release(from, to_text(payload));
        return;
      }
      // A stream's Publisher ends at the next housekeeping pass that finds no subscriber (a
      // replica of another peer keeps it), not after the 2 link timeouts of grace a silent
      // replica gets.
      auto it = offers.find(to_text(payload));
      if (it != offers.end()) it->second.released = true;
      return;
    }
    default: return refuse("peer '" + from + "': a " + std::to_string(h.kind) + " message is not for a service's port");
  }
}

void Service::Impl::on_dealer(Peer& p, detail::Parts& m) {
  if (m.parts.size() < 2 || m.parts.size() > 3) return refuse("peer " + p.endpoint + ": a message of " + std::to_string(m.parts.size()) + " parts (2 or 3 expected)");
  const std::string from = to_text(m.parts[0]);
  const std::span<const std::byte> payload = m.parts.size() == 3 ? std::span<const std::byte>(m.parts[2]) : std::span<const std::byte>();
  wire::Header h;
  const auto e = wire::decode(m.parts[1], payload.size(), h);
  if (e != wire::DecodeError::ok) return refuse("peer " + p.endpoint + ": " + wire::describe(e));
  if (!detail::node_name_ok(from)) return refuse("peer " + p.endpoint + ": the message names no valid node (topic " + detail::json_string(from) + ")");
  if (!p.key_node.empty() && from != p.key_node)  // CURVE: it holds the key of p.key_node
    return refuse("peer " + p.endpoint + " holds the key of node '" + p.key_node + "' but its messages say '" + from + "': refused");
  p.ever_heard = true;
  std::lock_guard lock(mutex);
  if (!p.node.empty() && p.node != from) {
    ++st.refused;
    error = "peer " + p.endpoint + ": it was node '" + p.node + "', now says '" + from + "' (catalogue dropped)";
    p.catalogue.clear();
    p.have_catalogue = false;
  }
  p.node = from;
  p.last_heard = Clock::now();
  p.up = true;
  switch (static_cast<wire::Kind>(h.kind)) {
    case wire::Kind::service_hello:
      if (h.sequence != p.incarnation) p.have_catalogue = false;  // a restarted service
      p.incarnation = h.sequence;
      if (!p.have_catalogue || p.catalogue_generation != h.generation)
        (void)detail::send_message(p.dealer.get(), {}, name, wire::make_header(wire::Kind::catalogue_request));
      return;
    case wire::Kind::catalogue: {
      auto recs = wire::decode_catalogue(payload);
      if (!recs) {
        ++st.refused;
        error = "peer '" + from + "' (" + p.endpoint + "): its catalogue has an invalid record";
        return;
      }
      p.catalogue = std::move(*recs);
      p.catalogue_generation = h.generation;
      p.have_catalogue = true;
      return;
    }
    case wire::Kind::open_answer: {
      auto it = answers.find(h.sequence);
      if (it == answers.end()) return;  // its asker gave up
      if (it->second.asked != p.endpoint) {
        ++st.refused;
        error = "peer '" + from + "' (" + p.endpoint + "): an open_answer to request " + std::to_string(h.sequence) +
                ", which was not sent to it, ignored";
        return;
      }
      it->second.done = true;
      it->second.refused = (h.flags & wire::kAnswerRefused) != 0;
      it->second.text = to_text(payload);
      it->second.port = static_cast<std::uint16_t>(std::min<std::uint32_t>(h.size[0], 65535));
      cv.notify_all();
      return;
    }
    default:
      ++st.refused;
      error = "peer '" + from + "' (" + p.endpoint + "): a " + std::to_string(h.kind) + " message is not an answer";
      return;
  }
}

void Service::Impl::periodic() {
  rescan();
  const auto now = Clock::now();
  forget_silent(now);
  follow_discovery();
  const wire::Header h = hello();
  for (auto& p : peers) {
    next_key(*p, now);
    (void)detail::send_message(p->dealer.get(), {}, name, h);
    std::lock_guard lock(mutex);
    if (p->up && now - p->last_heard > opt.timing.link_timeout) p->up = false;  // its catalogue stays
  }
  for (auto it = offers.begin(); it != offers.end();) {
    const bool subscribed = it->second.publisher->stats().subscribers > 0;
    if (subscribed) it->second.last_subscribed = now;
    // A release counts once no open was answered for a grace (an open answered to another peer
    // just before a release arrived must have time to subscribe).
    const auto grace = std::min(opt.timing.link_timeout, std::max(4 * opt.timing.heartbeat, std::chrono::milliseconds(1000)));
    const bool released = it->second.released && now - it->second.last_subscribed > grace;
    if ((!subscribed && released) || now - it->second.last_subscribed > 2 * opt.timing.link_timeout) {
      it->second.publisher->stop();
      it = offers.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard lock(mutex);
  st.publishers = static_cast<std::uint32_t>(offers.size());
}

void Service::Impl::run_net() {
  auto next = Clock::now();
  detail::Parts m;
  while (!stopping.load(std::memory_order_acquire)) {
    std::vector<zmq_pollitem_t> items;
    // A socket not made (a peer whose reconnect failed) is polled as fd -1, which poll(2)
    // ignores: a null socket with fd 0 would poll stdin.
    const auto item = [](void* s) { return zmq_pollitem_t{s, s != nullptr ? 0 : -1, ZMQ_POLLIN, 0}; };
    items.push_back(item(router.get()));
    items.push_back({nullptr, wake_fd, ZMQ_POLLIN, 0});
    for (auto& p : peers) items.push_back(item(p->dealer.get()));
    items.push_back(item(router_monitor.get()));
    for (auto& p : peers) items.push_back(item(p->monitor.get()));
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    (void)zmq_poll(items.data(), static_cast<int>(items.size()), std::max<long>(0, static_cast<long>(wait.count())));
    if ((items[1].revents & ZMQ_POLLIN) != 0) {
      std::uint64_t v = 0;
      (void)!::read(wake_fd, &v, sizeof v);
      std::deque<std::function<void()>> work;
      {
        std::lock_guard lock(cmd_mutex);
        work.swap(commands);
      }
      for (auto& f : work) f();
    }
    std::string user;  // the ZAP user id: the node of the trusted key that sent it
    for (int n = 0; n < 256 && detail::recv_parts(router.get(), m, &user); ++n) on_router(m, user);
    for (auto& p : peers)
      for (int n = 0; n < 256 && detail::recv_parts(p->dealer.get(), m); ++n) on_dealer(*p, m);
    on_router_events();
    for (auto& p : peers) on_peer_events(*p);
    if (Clock::now() >= next) {
      periodic();
      next = Clock::now() + opt.timing.heartbeat;
    }
  }
  for (auto& [n, o] : offers) o.publisher->stop();
  offers.clear();
  queue_offers.clear();  // halts each sender: its state file keeps what was not acknowledged
}

}  // namespace shmlink::bridge
