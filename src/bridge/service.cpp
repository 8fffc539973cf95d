// SPDX-License-Identifier: MIT
// The per-host bridge service's public API (include/shmlink/bridge_service.hpp), opening a replica
// and the control socket's verbs (docs/design/bridge.md, "The service", "The control socket"); its
// state and threads are in service_impl.hpp.
#include "bridge/service_impl.hpp"

namespace shmlink::bridge {

std::string Service::Impl::open_stream(std::string node, const std::string& channel, std::chrono::milliseconds timeout,
                                       bool keep, ReplicationMode mode, std::uint32_t window) {
  check_channel_name("stream", channel, channel, kMaxStreamName);
  const auto deadline = Clock::now() + timeout;
  std::size_t pi = 0;
  std::string host, peer_endpoint;
  std::unique_ptr<Replica> stale;  // a held replica whose file a user removed: re-created below
  std::string upgrade;  // the path of a latest-value replica asked again in every-frame mode
  {
    std::unique_lock lock(mutex);
    pi = pick_peer(false, node, channel);
    const auto key = std::make_pair(node, channel);
    // One open per replica at a time: a second asker waits for the first.
    while (opening.count(key) != 0) {
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout)
        throw Error(Errc::timeout, "stream '" + node + ":" + channel + "': another open of it did not finish in time");
      // The network thread may have added or forgotten peers meanwhile: find the node again.
      pi = peers.size();
      for (std::size_t i = 0; i < peers.size(); ++i)
        if (peers[i]->node == node && (pi == peers.size() || !peers[pi]->up)) pi = i;
      if (pi == peers.size())
        throw Error(Errc::not_found, "stream '" + node + ":" + channel + "': node '" + node + "' is no longer a peer of '" + name + "'");
    }
    if (auto it = held.find(key); it != held.end()) {
      if (::access(it->second.path.c_str(), F_OK) == 0) {
        it->second.keep = it->second.keep || keep;
        it->second.last_used = Clock::now();
        // An every-frame replica serves latest-value readers too; a latest-value one asked for
        // every frame is replaced by an every-frame one on the same file (re-created as a
        // rolling buffer: its readers re-attach, as for a re-created source).
        // A replica being replaced (null) is answered as it is.
        if (mode == ReplicationMode::latest || it->second.mode == ReplicationMode::every_frame || !it->second.replica)
          return it->second.path;
        keep = keep || it->second.keep;
        upgrade = it->second.path;
      } else {
        keep = keep || it->second.keep;
        stale = std::move(it->second.replica);
        held.erase(it);
      }
    }
    if (!peers[pi]->up)
      throw Error(Errc::not_connected, "stream '" + node + ":" + channel + "': the link to node '" + node + "' (" +
                                           peers[pi]->endpoint + ") is down");
    opening.insert(key);
    host = peers[pi]->host;
    peer_endpoint = peers[pi]->endpoint;
  }
  const auto key = std::make_pair(node, channel);
  struct Done {
    Impl& i;
    std::pair<std::string, std::string> key;
    std::string path;  // claimed by claim_path()
    ~Done() {
      std::lock_guard lock(i.mutex);
      i.opening.erase(key);
      if (!path.empty()) i.claimed.erase(path);
      i.cv.notify_all();
    }
  } done{*this, key, {}};
  if (stale) stale->stop();  // before a new replica takes its path
  const Answer a = ask(peer_endpoint, node, channel, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  if (a.refused) throw Error(answer_errc(a), answer_message(a));
  const std::string endpoint = "tcp://" + host + ":" + std::to_string(a.port);
  if (!upgrade.empty()) {  // the latest-value replica stops before the new one takes its file
    std::unique_ptr<Replica> old;
    {
      std::lock_guard lock(mutex);
      if (auto it = held.find(key); it != held.end()) old = std::move(it->second.replica);  // null: being replaced
    }
    if (old) old->stop();
  }
  const std::string path = upgrade.empty() ? claim_path(node, channel) : upgrade;
  if (upgrade.empty()) done.path = path;
  std::unique_ptr<Replica> replica;
  try {
    replica = make_replica(node, channel, endpoint, path, mode, window);
    if (!wait_first(*replica, deadline)) {
      const std::string why = replica->last_error();
      replica->stop();
      throw Error(Errc::timeout, "stream '" + node + ":" + channel + "': no first frame from " + endpoint + " within " +
                                     std::to_string(timeout.count()) + " ms" + (why.empty() ? "" : " (" + why + ")"));
    }
  } catch (...) {
    std::lock_guard lock(mutex);  // an upgrade that failed leaves no replica: forget it
    if (auto it = held.find(key); it != held.end() && !it->second.replica) held.erase(it);
    // The file is ours (claimed: new, or a replica of this node; or the upgraded replica's): once
    // in neither `held` nor `claimed`, a file left here would be listed as our own stream.
    ::unlink(path.c_str());
    throw;
  }
  std::lock_guard lock(mutex);
  Held h{node, channel, path, endpoint, std::move(replica), keep, Clock::now(), Clock::now(), mode, window};
  held.insert_or_assign(key, std::move(h));
  return path;  // Done then releases the claim: the path is in `held` from here on
}

std::vector<std::string> Service::Impl::control_quick(const std::vector<std::string>& f, Service& self) {
  const std::string& verb = f[0];
  if (verb == "PING" && f.size() == 1) return {"OK", name};
  if (verb == "RELEASE" && f.size() == 4) {
    try {
      self.release(f[1], f[2], f[3]);
      return {"OK"};
    } catch (const Error& e) {
      return {"ERR", std::string(control::errc_name(e.errc())), e.what()};
    }
  }
  if (verb == "LS" && f.size() == 1) {
    std::string j = "{\"schema_version\":1,\"node\":" + detail::json_string(name) + ",\"channels\":[";
    bool first = true;
    for (const CatalogueEntry& c : self.catalogue()) {
      j += first ? "" : ",";
      first = false;
      j += "{\"node\":" + detail::json_string(c.node) + ",\"kind\":" + detail::json_string(c.kind) +
           ",\"name\":" + detail::json_string(c.name) + ",\"dtype\":" + std::to_string(c.dtype) + ",\"shape\":[";
      for (std::size_t i = 0; i < c.shape.size(); ++i) j += (i ? "," : "") + std::to_string(c.shape[i]);
      j += "]}";
    }
    return {"OK", j + "]}"};
  }
  if (verb == "STATUS" && f.size() == 1) {
    const ServiceStats s = self.stats();
    std::string j = "{\"schema_version\":1,\"node\":" + detail::json_string(name) + ",\"port\":" + std::to_string(port) +
                    ",\"curve\":" + (s.curve ? "true" : "false") + ",\"handshakes_refused\":" + std::to_string(s.handshakes_refused) +
                    ",\"handshakes_failed\":" + std::to_string(s.handshakes_failed) + ",\"last_refusal\":" +
                    detail::json_string(s.last_refusal) + ",\"last_error\":" + detail::json_string(self.last_error()) + ",\"peers\":[";
    bool first = true;
    for (const PeerStatus& p : self.peers()) {
      j += first ? "" : ",";
      first = false;
      j += "{\"node\":" + detail::json_string(p.node) + ",\"endpoint\":" + detail::json_string(p.endpoint) +
           ",\"link_up\":" + (p.link_up ? "true" : "false") + ",\"channels\":" + std::to_string(p.channels) +
           ",\"problem\":" + detail::json_string(p.problem) + "}";
    }
    j += "],\"replicas\":[";
    first = true;
    for (const ReplicaStatus& r : self.replicas()) {
      j += first ? "" : ",";
      first = false;
      j += "{\"node\":" + detail::json_string(r.node) + ",\"name\":" + detail::json_string(r.name) + ",\"path\":" +
           detail::json_string(r.path) + ",\"kept\":" + (r.kept ? "true" : "false") + ",\"link_up\":" +
           (r.stats.link_up ? "true" : "false") + ",\"frames_published\":" + std::to_string(r.stats.frames_published) +
           ",\"skipped\":" + std::to_string(r.stats.skipped) + ",\"lost\":" + std::to_string(r.stats.lost) +
           ",\"mode\":" + (r.stats.mode == ReplicationMode::every_frame ? "\"every_frame\"" : "\"latest\"") +
           ",\"age_us\":" + std::to_string(r.age_us) + "}";
    }
    return {"OK", j + "],\"queues\":" + queues_json() + "}"};
  }
  return {"ERR", "invalid_argument", "control socket '" + control_path + "': '" + verb + "' with " + std::to_string(f.size() - 1) +
                                         " fields is not a request (PING, OPEN, RELEASE, LS, STATUS)"};
}

std::vector<std::string> Service::Impl::control_open(const std::vector<std::string>& f, Service& self) {
  const auto digits = [](const std::string& t) {
    return !t.empty() && t.size() <= 9 && t.find_first_not_of("0123456789") == std::string::npos;
  };
  if ((f.size() != 6 && f.size() != 8) || (f[5] != "0" && f[5] != "1") || !digits(f[4]))
    return {"ERR", "invalid_argument",
            "control socket '" + control_path + "': OPEN takes kind, host, name, timeout_ms, keep (0/1) [, mode, window]"};
  // The optional pair (docs/design/bridge.md, "The control socket"): "latest" or "every_frame",
  // and the every-frame window 1..kMaxEveryFrameWindow.
  ReplicationMode mode = ReplicationMode::latest;
  std::uint32_t window = kDefaultEveryFrameWindow;
  if (f.size() == 8) {
    if ((f[6] != "latest" && f[6] != "every_frame") || !digits(f[7]) || std::stoul(f[7]) < 1 ||
        std::stoul(f[7]) > kMaxEveryFrameWindow)
      return {"ERR", "invalid_argument",
              "control socket '" + control_path + "': OPEN's mode '" + f[6] + "' and window '" + f[7] +
                  "' are not 'latest' or 'every_frame' and 1.." + std::to_string(kMaxEveryFrameWindow)};
    mode = f[6] == "every_frame" ? ReplicationMode::every_frame : ReplicationMode::latest;
    window = static_cast<std::uint32_t>(std::stoul(f[7]));
  }
  const auto ms = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(std::stol(f[4])), opt.max_open_timeout);
  try {
    return {"OK", self.open(f[1], f[2], f[3], ms, f[5] == "1", mode, window)};
  } catch (const Error& e) {
    return {"ERR", std::string(control::errc_name(e.errc())), e.what()};
  }
}

Service::Service(const ServiceOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.opt = options;
  i.name = options.name.empty() ? host_name() : options.name;
  if (!detail::node_name_ok(i.name))
    throw Error(Errc::invalid_argument, "bridge service: node name '" + i.name + "' must be 1..63 printable bytes without ':' or '/'");
  if ((options.data_port_first == 0) != (options.data_port_last == 0) || options.data_port_first > options.data_port_last)
    throw Error(Errc::invalid_argument, "bridge service '" + i.name + "': data ports " + std::to_string(options.data_port_first) +
                                            "-" + std::to_string(options.data_port_last) + " are not a range LO-HI");
  if (options.timing.heartbeat.count() <= 0 || options.timing.link_timeout <= options.timing.heartbeat)
    throw Error(Errc::invalid_argument, "bridge service '" + i.name + "': the heartbeat must be positive and shorter than the link timeout");
  i.directory = options.directory.empty() ? stream_directory() : options.directory;
  i.control_path = options.control_socket.empty()
                       ? (options.directory.empty() ? control::control_socket_path()
                                                    : i.directory + "/" + std::string(control::kSocketName))
                       : options.control_socket;
  i.incarnation = detail::realtime_ns();
  if (!options.keys.directory.empty()) i.load_security();  // once, before any socket
  for (const std::string& p : options.peers) {
    const auto at = p.find('@');  // NODE@HOST:PORT names the peer (its key, with CURVE)
    const std::string node = at == std::string::npos ? std::string() : p.substr(0, at);
    if (at != std::string::npos && !detail::node_name_ok(node))
      throw Error(Errc::invalid_argument, "bridge service: peer '" + p + "': '" + node + "' is not a node name");
    const auto [host, pport] = split_host_port(at == std::string::npos ? p : p.substr(at + 1));
    i.add_peer(host, pport, true, node);
  }
  i.router = detail::Socket(i.ctx.get(), ZMQ_ROUTER, "the service port of node '" + i.name + "'");
  i.router.set(ZMQ_ROUTER_MANDATORY, 0);
  i.router.limit_message_size(kServicePartLimit);
  if (i.security) apply_server(i.router.get(), *i.security, "the service port of node '" + i.name + "'");
  i.watch(i.router.get(), i.router_monitor, "the service port of node '" + i.name + "'");
  i.router.attach("tcp://" + options.bind + ":" + (options.port == 0 ? std::string("*") : std::to_string(options.port)), false);
  i.port = endpoint_port(i.router.last_endpoint());
  i.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (i.wake_fd < 0) throw Error(Errc::system, "bridge service '" + i.name + "': eventfd failed");
  i.resume_queues();
  i.rescan();
  if (options.multicast) {
    DiscoveryOptions d;
    d.node = i.name;
    d.domain = options.domain;
    d.service_port = i.port;
    d.discovery_port = options.discovery_port;
    if (options.bind != "0.0.0.0") d.interface_address = options.bind;
    d.interval = options.timing.heartbeat;
    d.forget_after = 6 * options.timing.heartbeat;
    try {
      i.discovery = std::make_unique<Discovery>(d);
    } catch (const Error& e) {
      // Listed peers still work; the reason is kept (last_error(), and `bridge serve` logs it).
      i.refuse(std::string("multicast discovery is off: ") + e.what());
    }
  }
  Service* self = this;
  i.control = std::make_unique<detail::ControlServer>(
      i.control_path, [self](const std::vector<std::string>& f) { return self->impl_->control_quick(f, *self); },
      [self](const std::vector<std::string>& f) { return self->impl_->control_open(f, *self); },
      std::vector<std::string>{"OPEN"});
  i.net_thread = std::thread([&i] { i.run_net(); });
  i.house_thread = std::thread([&i] { i.run_house(); });
}

Service::~Service() { stop(); }

const std::string& Service::name() const noexcept { return impl_->name; }
std::uint16_t Service::port() const noexcept { return impl_->port; }
const std::string& Service::control_socket() const noexcept { return impl_->control_path; }

std::vector<CatalogueEntry> Service::catalogue() const {
  const Impl& i = *impl_;
  std::vector<CatalogueEntry> out;
  std::lock_guard lock(i.mutex);
  const auto add = [&](const std::string& node, const wire::CatalogueRecord& r) {
    out.push_back({node, r.queue ? "queue" : "stream", r.name, r.dtype, r.shape});
  };
  for (const auto& r : i.local) add(i.name, r);
  for (const auto& p : i.peers)
    for (const auto& r : p->catalogue) add(p->node, r);
  return out;
}

std::vector<PeerStatus> Service::peers() const {
  const Impl& i = *impl_;
  std::vector<PeerStatus> out;
  std::lock_guard lock(i.mutex);
  for (const auto& p : i.peers) out.push_back({p->node, p->endpoint, p->up, p->catalogue.size(), p->up ? std::string() : p->problem});
  return out;
}

std::vector<ReplicaStatus> Service::replicas() const {
  const Impl& i = *impl_;
  std::vector<ReplicaStatus> out;
  {
    std::lock_guard lock(i.mutex);
    for (const auto& [key, h] : i.held)
      if (h.replica) out.push_back({h.node, h.name, h.path, h.keep, h.replica->stats(), -1, h.endpoint});  // null: being replaced
  }
  for (ReplicaStatus& r : out) {
    try {
      const Stream s = Stream::open(r.path);
      if (const auto age = s.keyword(kKeywordAge); age && std::holds_alternative<std::int64_t>(*age))
        r.age_us = std::get<std::int64_t>(*age);
    } catch (const Error&) {
    }
  }
  return out;
}

ServiceStats Service::stats() const {
  ServiceStats out;
  {
    std::lock_guard lock(impl_->mutex);
    out = impl_->st;
  }
  if (impl_->security) {
    const SecurityStats s = impl_->security->stats();
    out.curve = true;
    out.handshakes_refused = s.refused;
    out.last_refusal = s.last_refusal;
  }
  return out;
}

std::string Service::last_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->error;
}

std::string Service::open(std::string_view kind, std::string_view node, std::string_view name,
                          std::chrono::milliseconds timeout, bool keep, ReplicationMode mode, std::uint32_t window) {
  if (kind != "stream" && kind != "queue")
    throw Error(Errc::invalid_argument, "bridge open of '" + std::string(name) + "': kind '" + std::string(kind) + "' is not stream or queue");
  if (impl_->stopping.load()) throw Error(Errc::not_connected, "bridge service '" + impl_->name + "' is stopping");
  if (kind == "queue") {
    if (mode != ReplicationMode::latest)
      throw Error(Errc::invalid_argument, "bridge open of queue '" + std::string(name) + "': every-frame mode is for streams (a queue carries every sample)");
    return impl_->open_queue(std::string(node), std::string(name), timeout, keep);
  }
  if (window < 1 || window > kMaxEveryFrameWindow)
    throw Error(Errc::invalid_argument, "bridge open of stream '" + std::string(name) + "': window " + std::to_string(window) +
                                            " is not 1.." + std::to_string(kMaxEveryFrameWindow));
  return impl_->open_stream(std::string(node), std::string(name), timeout, keep, mode, window);
}

void Service::release(std::string_view kind, std::string_view node, std::string_view name) {
  Impl& i = *impl_;
  if (kind == "queue") return i.release_queue(std::string(node), std::string(name));
  if (kind != "stream")
    throw Error(Errc::not_found, "bridge release of " + std::string(kind) + " '" + std::string(name) + "': no such replica");
  std::lock_guard lock(i.mutex);
  bool found = false;
  for (auto& [key, h] : i.held)
    if (key.second == name && (node.empty() || key.first == node)) {
      h.keep = false;
      h.last_used = Clock::now();
      found = true;
    }
  if (!found)
    throw Error(Errc::not_found, "bridge service '" + i.name + "': no replica of stream '" +
                                     (node.empty() ? "" : std::string(node) + ":") + std::string(name) + "'");
}

void Service::stop() noexcept {
  Impl& i = *impl_;
  // A second caller (another thread, or the destructor) waits until the first one is done.
  std::lock_guard stop_lock(i.stop_mutex);
  if (i.stopped) return;
  i.stopped = true;
  i.stopping.store(true);
  {
    std::lock_guard lock(i.mutex);
    i.cv.notify_all();
  }
  {
    std::lock_guard lock(i.house_mutex);
    i.house_cv.notify_all();
  }
  if (i.control) i.control->stop();
  if (i.discovery) i.discovery->stop();
  const std::uint64_t one = 1;
  if (i.wake_fd >= 0) (void)!::write(i.wake_fd, &one, sizeof one);
  if (i.house_thread.joinable()) i.house_thread.join();
  if (i.net_thread.joinable()) i.net_thread.join();
  std::map<std::pair<std::string, std::string>, Held> held;
  {
    std::lock_guard lock(i.mutex);
    held.swap(i.held);
  }
  for (auto& [key, h] : held)
    if (h.replica) h.replica->stop();
  i.stop_queues();
  for (auto& p : i.peers) Impl::close_peer(*p);
  if (i.router.get() != nullptr) (void)::zmq_socket_monitor(i.router.get(), nullptr, 0);
  i.router = detail::Socket();
  i.router_monitor = detail::Socket();
}

}  // namespace shmlink::bridge
