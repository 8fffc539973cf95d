// SPDX-License-Identifier: MIT
// Queues through the bridge service (docs/design/bridge.md, "Queues through the service"): the
// owner's side (a QueueSender draining a local queue for the one node that asked), the asker's
// side (a QueueReceiver into a local replica, its marker file, re-asking a restarted owner,
// resuming after our own restart, the idle rule), and choosing the peer to ask.
#include "bridge/queue_state.hpp"
#include "bridge/service_impl.hpp"

#include <shmlink/queue.hpp>

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace shmlink::bridge {

namespace svc {

namespace {
constexpr std::string_view kMarkerMagic = "shmlink-bridge-queue 1";
constexpr std::string_view kMarkerSuffix = ".bridge-origin";
}  // namespace

std::string marker_path(const std::string& queue_file) { return state_path(queue_file, ".bridge-origin"); }

std::optional<QueueMarker> read_marker(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string magic, held, keep;
  QueueMarker m;
  if (!std::getline(in, magic) || magic != kMarkerMagic || !std::getline(in, m.node) || !std::getline(in, m.name) ||
      !std::getline(in, held) || !std::getline(in, keep))
    return std::nullopt;
  if ((held != "0" && held != "1") || (keep != "0" && keep != "1") || !detail::node_name_ok(m.node)) return std::nullopt;
  try {
    check_channel_name("queue", m.name, m.name, kMaxQueueName);
  } catch (const Error&) {
    return std::nullopt;
  }
  m.held = held == "1";
  m.keep = keep == "1";
  return m;
}

void write_marker(const std::string& path, const QueueMarker& m) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kMarkerMagic << '\n' << m.node << '\n' << m.name << '\n' << (m.held ? 1 : 0) << '\n' << (m.keep ? 1 : 0) << '\n';
    out.flush();
    if (!out) throw Error(Errc::system, "bridge queue marker " + tmp + ": cannot be written");
  }
  ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error(Errc::system, "bridge queue marker " + path + ": cannot be renamed into place");
  }
}

}  // namespace svc

std::size_t Service::Impl::pick_peer(bool queue, std::string& node, const std::string& channel) const {
  const std::string kind = queue ? "queue" : "stream";
  std::size_t pi = peers.size();
  std::vector<std::size_t> offering;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const Peer& p = *peers[i];
    if (!node.empty()) {
      if (p.node == node && (pi == peers.size() || !peers[pi]->up)) pi = i;  // a listed and a learned link: the live one
      continue;
    }
    const bool again = std::any_of(offering.begin(), offering.end(), [&](std::size_t o) { return peers[o]->node == p.node; });
    if (!again &&
        std::any_of(p.catalogue.begin(), p.catalogue.end(), [&](const auto& r) { return r.queue == queue && r.name == channel; }))
      offering.push_back(i);
  }
  if (!node.empty()) {
    if (pi == peers.size())
      throw Error(Errc::not_found, kind + " '" + node + ":" + channel + "': node '" + node + "' is not a peer of '" + name + "'");
    return pi;
  }
  if (offering.size() > 1)
    throw Error(Errc::invalid_argument, kind + " '" + channel + "' is offered by nodes '" + peers[offering[0]]->node + "' and '" +
                                            peers[offering[1]]->node + "': name one (NODE:" + channel + ")");
  if (offering.empty()) {
    std::string heard;
    for (const auto& p : peers) heard += (heard.empty() ? "" : ", ") + (p->node.empty() ? p->endpoint : p->node);
    throw Error(Errc::not_found, kind + " '" + channel + "': no peer of node '" + name + "' offers it (peers: " +
                                     (heard.empty() ? "none" : heard) + ")");
  }
  node = peers[offering[0]]->node;
  return offering[0];
}

// ---------------------------------------------------------------- the owner's side (network thread)

QueueSender Service::Impl::start_queue_sender(const std::string& file, const std::string& channel) {
  QueueSenderOptions so;
  so.queue = file;
  // The sender binds (a port of its own); the asker's receiver connects to it.
  if (opt.data_port_first == 0) {
    so.endpoint = "@tcp://" + opt.bind + ":*";
    return QueueSender::open(so);
  }
  for (unsigned p = opt.data_port_first; p <= opt.data_port_last; ++p) {
    bool taken = false;
    for (const auto& [n, o] : offers) taken = taken || endpoint_port(o.publisher->endpoint()) == p;
    for (const auto& [n, o] : queue_offers) taken = taken || endpoint_port(o.sender->endpoint) == p;
    if (taken) continue;
    so.endpoint = "@tcp://" + opt.bind + ":" + std::to_string(p);
    try {
      return QueueSender::open(so);
    } catch (const Error& e) {
      if (e.errc() != Errc::system) throw;  // the queue's own errors; a bind failure tries the next port
    }
  }
  throw Error(Errc::busy, "node '" + name + "': no free data port in " + std::to_string(opt.data_port_first) + "-" +
                              std::to_string(opt.data_port_last) + " for queue '" + channel + "'");
}

void Service::Impl::on_queue_open_request(std::span<const std::byte> identity, const std::string& from, const wire::Header& h,
                                          const std::string& channel) {
  // on_open_request checked the name and the allow-list.
  const std::string file = queue_file(channel);
  if (::access(file.c_str(), F_OK) != 0)
    return answer_refused(identity, h.sequence, Errc::not_found, "node '" + name + "' has no queue '" + channel + "' in " + directory);
  if (const auto m = read_marker(marker_path(file)))  // a second consumer of a replica would corrupt it
    return answer_refused(identity, h.sequence, Errc::invalid_argument,
                          "node '" + name + "': queue '" + channel + "' is its replica of queue '" + m->name + "' of node '" +
                              m->node + "': ask node '" + m->node + "'");
  if (opt.read_only)
    return answer_refused(identity, h.sequence, Errc::permission,
                          "node '" + name + "' is read-only: bridging queue '" + channel +
                              "' would consume its samples (its sender pops them), which --read-only forbids");
  auto it = queue_offers.find(channel);
  if (it != queue_offers.end() && it->second.sender->ended.load(std::memory_order_acquire)) {
    refuse("node '" + name + "': the sender of queue '" + channel + "' stopped (" + it->second.sender->stats().last_problem +
           "); starting it again");
    queue_offers.erase(it);  // halts its thread, unlocks its state file
    it = queue_offers.end();
  }
  if (it != queue_offers.end() && it->second.node != from)
    return answer_refused(identity, h.sequence, Errc::busy,
                          "node '" + name + "': queue '" + channel + "' is bridged to node '" + it->second.node +
                              "' already (a queue has one consumer)");
  if (it == queue_offers.end()) {
    try {
      QueueSender sender = start_queue_sender(file, channel);
      std::string ep = sender.endpoint();
      it = queue_offers.emplace(channel, QueueOffer{from, run_queue_end(std::move(sender), std::move(ep))}).first;
    } catch (const Error& e) {
      return answer_refused(identity, h.sequence, e.errc(), "node '" + name + "': " + e.what());
    }
  }
  answer_endpoint(identity, h.sequence, it->second.sender->endpoint);
}

void Service::Impl::on_queue_release(const std::string& from, const std::string& channel) {
  auto it = queue_offers.find(channel);
  if (it == queue_offers.end() || it->second.node != from) return;
  queue_offers.erase(it);  // its state file keeps every sample not acknowledged
}

// ---------------------------------------------------------------- the asker's side

std::string Service::Impl::claim_queue_path(const std::string& node, const std::string& channel) {
  const std::string plain = queue_file(channel);
  std::lock_guard lock(mutex);  // throughout: two opens of one name from two nodes never take one file
  bool other = claimed.count(plain) != 0;
  for (const auto& [key, q] : held_queues) other = other || (q.path == plain && key.first != node);
  if (!other && ::access(plain.c_str(), F_OK) == 0) {
    const auto m = read_marker(marker_path(plain));
    other = !m || m->node != node || m->name != channel;  // a local queue, or another node's replica
  }
  const std::string path = other ? queue_file(node + ":" + channel) : plain;
  claimed.insert(path);
  return path;
}

void Service::Impl::connect_queue(const std::pair<std::string, std::string>& key, const std::string& peer_endpoint,
                                  Clock::time_point deadline) {
  const auto& [node, channel] = key;
  std::string host;
  std::uint64_t owner = 0;  // the incarnation of the owner's service asked
  {
    std::lock_guard lock(mutex);
    const Peer* p = peer_at(peer_endpoint);
    if (p == nullptr)
      throw Error(Errc::not_found, "queue '" + node + ":" + channel + "': the link to node '" + node + "' (" + peer_endpoint +
                                       ") is gone");
    host = p->host;
    owner = p->incarnation;
  }
  const auto left = [&] {
    return std::max(1ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  const Answer a = ask(peer_endpoint, node, channel, left(), wire::kServiceQueue);
  if (a.refused) throw Error(answer_errc(a), answer_message(a));
  const std::string endpoint = "tcp://" + host + ":" + std::to_string(a.port);
  std::string path;
  bool keep = false;
  std::unique_ptr<QueueEndThread> old;
  {
    std::lock_guard lock(mutex);
    if (auto it = held_queues.find(key); it != held_queues.end()) {
      path = it->second.path;
      keep = it->second.keep;
      if (it->second.receiver && !it->second.receiver->ended.load() && it->second.receiver->endpoint == endpoint) {
        it->second.owner_incarnation = owner;  // the same sender: nothing to change
        return;
      }
      old = std::move(it->second.receiver);
    }
  }
  if (old) old->halt();  // before the new receiver takes the state file
  const bool fresh = path.empty();
  if (fresh) path = claim_queue_path(node, channel);
  struct Unclaim {  // once the replica is in held_queues, or the open failed
    Impl& i;
    std::string path;
    ~Unclaim() {
      if (path.empty()) return;
      std::lock_guard lock(i.mutex);
      i.claimed.erase(path);
    }
  } const unclaim{*this, fresh ? path : std::string()};
  write_marker(marker_path(path), QueueMarker{node, channel, true, keep});
  std::unique_ptr<QueueEndThread> rx;
  std::string why;
  try {
    QueueReceiverOptions ro;
    ro.queue = path;
    ro.endpoint = ">" + endpoint;
    ro.channel = channel;  // the owner's name for it: the replica's file may be NODE:NAME
    rx = run_queue_end(QueueReceiver::open(ro), endpoint);
    // Ready once the receiver has its queue and state file (at once on a restart; else at the
    // sender's first hello): the state file is linked into place whole.
    const std::string state = state_path(path, ".bridge-rx");
    while (::access(state.c_str(), F_OK) != 0 && Clock::now() < deadline && !stopping.load() && !rx->ended.load())
      std::this_thread::sleep_for(5ms);
    if (::access(state.c_str(), F_OK) != 0) {
      why = rx->stats().last_problem;
      rx->halt();
      rx.reset();
    }
  } catch (const Error& e) {
    why = e.what();
  }
  if (!rx) {
    if (fresh) {  // nothing was held: leave no marker of a replica that never was
      if (::access(path.c_str(), F_OK) != 0) ::unlink(marker_path(path).c_str());
      else write_marker(marker_path(path), QueueMarker{node, channel, false, keep});
    }
    throw Error(Errc::timeout, "queue '" + node + ":" + channel + "': no hello from the sender at " + endpoint +
                                   (why.empty() ? "" : " (" + why + ")"));
  }
  std::lock_guard lock(mutex);
  HeldQueue& q = held_queues[key];
  q.node = node;
  q.name = channel;
  q.path = path;
  q.receiver = std::move(rx);
  q.owner_incarnation = owner;
  q.last_used = q.last_reask = Clock::now();
}

std::string Service::Impl::open_queue(std::string node, const std::string& channel, std::chrono::milliseconds timeout, bool keep) {
  check_channel_name("queue", channel, channel, kMaxQueueName);
  const auto deadline = Clock::now() + timeout;
  std::string peer_endpoint;
  std::pair<std::string, std::string> key;
  {
    std::unique_lock lock(mutex);
    std::size_t pi = pick_peer(true, node, channel);
    key = std::make_pair(node, channel);
    // One open per replica at a time (the housekeeping thread's re-asks included).
    while (opening_queues.count(key) != 0)
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout)
        throw Error(Errc::timeout, "queue '" + node + ":" + channel + "': another open of it did not finish in time");
    pi = pick_peer(true, node, channel);  // the network thread may have added or forgotten peers meanwhile
    auto it = held_queues.find(key);
    if (it != held_queues.end() && keep && !it->second.keep) {
      it->second.keep = true;
      write_marker(marker_path(it->second.path), QueueMarker{node, channel, true, true});
    }
    if (it != held_queues.end() && it->second.receiver && !it->second.receiver->ended.load()) {
      it->second.last_used = Clock::now();
      return it->second.path;
    }
    if (it != held_queues.end()) it->second.keep = it->second.keep || keep;
    if (!peers[pi]->up)
      throw Error(Errc::not_connected, "queue '" + node + ":" + channel + "': the link to node '" + node + "' (" +
                                           peers[pi]->endpoint + ") is down");
    opening_queues.insert(key);
    peer_endpoint = peers[pi]->endpoint;
  }
  const OpeningMark done{*this, opening_queues, key};
  if (keep) {
    std::lock_guard lock(mutex);
    if (auto it = held_queues.find(key); it != held_queues.end()) it->second.keep = true;
  }
  connect_queue(key, peer_endpoint, deadline);
  std::lock_guard lock(mutex);
  HeldQueue& q = held_queues.at(key);
  if (keep && !q.keep) {
    q.keep = true;
    write_marker(marker_path(q.path), QueueMarker{node, channel, true, true});
  }
  return q.path;
}

void Service::Impl::release_queue(const std::string& node, const std::string& channel) {
  std::lock_guard lock(mutex);
  bool found = false;
  for (auto& [key, q] : held_queues)
    if (key.second == channel && (node.empty() || key.first == node)) {
      found = true;
      q.last_used = Clock::now();
      if (!q.keep) continue;
      q.keep = false;
      try {
        write_marker(marker_path(q.path), QueueMarker{key.first, key.second, true, false});
      } catch (const Error& e) {
        error = e.what();
      }
    }
  if (!found)
    throw Error(Errc::not_found, "bridge service '" + name + "': no replica of queue '" + (node.empty() ? "" : node + ":") + channel + "'");
}

void Service::Impl::resume_queues() {
  DIR* d = ::opendir(directory.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string file = e->d_name;
    if (!file.ends_with(std::string(".queue") + std::string(kMarkerSuffix))) continue;
    const std::string marker = directory + "/" + file;
    const auto m = read_marker(marker);
    if (!m || !m->held) continue;
    HeldQueue q;
    q.node = m->node;
    q.name = m->name;
    q.path = marker.substr(0, marker.size() - kMarkerSuffix.size()) + ".shm";
    q.keep = m->keep;
    q.last_used = Clock::now();
    std::lock_guard lock(mutex);
    held_queues.emplace(std::make_pair(m->node, m->name), std::move(q));
  }
  ::closedir(d);
}

void Service::Impl::queues_house() {
  const auto now = Clock::now();
  // The idle rule: a replica no other process maps or holds open for `idle`, not kept, stops
  // travelling: its receiver ends and the owner's sender is released. Its file, its samples and
  // its state file stay (the consumer's place: an open later resumes exactly there).
  std::vector<HeldQueue> gone = take_idle(
      held_queues, [this](const auto& key) { return opening_queues.count(key) != 0; }, [](const auto&, const auto&) {});
  for (HeldQueue& q : gone) {
    if (q.receiver) q.receiver->halt();
    try {
      write_marker(marker_path(q.path), QueueMarker{q.node, q.name, false, false});
    } catch (const Error& e) {
      refuse(e.what());
    }
    post([this, node = q.node, channel = q.name] {
      wire::Header h = wire::make_header(wire::Kind::release);
      h.flags = wire::kServiceQueue;
      for (auto& p : peers)
        if (p->node == node) (void)detail::send_message(p->dealer.get(), {}, name, h, bytes_of(channel));
    });
  }
  // Ask again when the receiver is missing (a restart of ours) or ended, or the owner's service
  // restarted (its sender is new: another port); at most once per link_timeout each.
  struct Due {
    std::pair<std::string, std::string> key;
    std::string peer;  // its endpoint
  };
  std::vector<Due> due;
  {
    std::lock_guard lock(mutex);
    for (auto& [key, q] : held_queues) {
      if (opening_queues.count(key) != 0 || now - q.last_reask < opt.timing.link_timeout) continue;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        const Peer& p = *peers[i];
        if (p.node != key.first || !p.up) continue;
        const bool lost = !q.receiver || q.receiver->ended.load() || p.incarnation != q.owner_incarnation;
        if (!lost) continue;
        q.last_reask = now;
        opening_queues.insert(key);
        due.push_back({key, p.endpoint});
        break;  // one re-ask per replica, over one live link to its node
      }
    }
  }
  for (const Due& t : due) {
    const OpeningMark done{*this, opening_queues, t.key};
    try {
      connect_queue(t.key, t.peer, Clock::now() + std::max(opt.timing.link_timeout, std::chrono::milliseconds(2000)));
    } catch (const Error& e) {
      refuse("re-opening queue '" + t.key.first + ":" + t.key.second + "': " + e.what());
    }
  }
}

void Service::Impl::stop_queues() noexcept {
  std::vector<std::unique_ptr<QueueEndThread>> ends;
  {
    std::lock_guard lock(mutex);
    for (auto& [key, q] : held_queues)
      if (q.receiver) ends.push_back(std::move(q.receiver));
  }
  for (auto& e : ends) e->halt();  // markers stay: a restarted service resumes these replicas
}

std::string Service::Impl::queues_json() const {
  std::string j = "[";
  std::lock_guard lock(mutex);
  for (const auto& [key, q] : held_queues) {
    const bool travelling = q.receiver && !q.receiver->ended.load();
    const QueueLinkStats s = q.receiver ? q.receiver->stats() : QueueLinkStats{};
    j += (j.size() > 1 ? "," : "");
    j += "{\"node\":" + detail::json_string(q.node) + ",\"name\":" + detail::json_string(q.name) +
         ",\"path\":" + detail::json_string(q.path) + ",\"kept\":" + (q.keep ? "true" : "false") +
         ",\"travelling\":" + (travelling ? "true" : "false") + ",\"pushed\":" + std::to_string(s.pushed) +
         ",\"duplicates\":" + std::to_string(s.duplicates) + ",\"next\":" + std::to_string(s.end) +
         ",\"last_problem\":" + detail::json_string(s.last_problem) + "}";
  }
  return j + "]";
}

}  // namespace shmlink::bridge
