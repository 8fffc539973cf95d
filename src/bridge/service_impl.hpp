// SPDX-License-Identifier: MIT
/// @file service_impl.hpp
/// @brief The state and threads of the per-host bridge service (include/shmlink/bridge_service.hpp;
/// docs/design/bridge.md, "The service"); service.cpp holds the public API, opening a replica and
/// the control socket's verbs. Internal to shmlink_bridge, included by service.cpp only. Threads:
// - the network thread owns every ZeroMQ socket of the service: the ROUTER peers connect to, one
//   DEALER per peer, and the Publishers it starts for peers; API threads hand it work through a
//   command queue and an eventfd it polls next to its sockets;
// - the housekeeping thread drops idle replicas and re-asks owners for replicas whose link is down;
// - the control server's thread and its OPEN workers (control_server.hpp).
#pragma once

#include "bridge/control_server.hpp"
#include "bridge/discovery.hpp"
#include "bridge/link.hpp"
#include "bridge/security.hpp"
#include "bridge/service_local.hpp"
#include "bridge/service_queue.hpp"
#include "bridge/wire.hpp"
#include "remote/control_protocol.hpp"

#include <shmlink/bridge_service.hpp>
#include <shmlink/stream.hpp>

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace shmlink::bridge {

namespace svc {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Largest message part the service's own sockets (its ROUTER, its links to peers) take, in
/// bytes: the largest catalogue decode() accepts (kMaxCatalogueRecords records). Without it a
/// peer could make the service buffer a 4 GiB part before any check.
constexpr std::uint64_t kServicePartLimit =
    (std::uint64_t{wire::kMaxCatalogueRecords} * wire::kCatalogueRecordBytes) + wire::kHeaderBytes;

inline std::string to_text(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
inline std::span<const std::byte> bytes_of(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

inline std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

/// "HOST:PORT" (HOST may be "[v6]") -> {host, port}; throws invalid_argument naming the option.
inline std::pair<std::string, std::uint16_t> split_host_port(const std::string& peer) {
  const auto colon = peer.rfind(':');
  unsigned long port = 0;
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < peer.size();
  if (ok) {
    const std::string digits = peer.substr(colon + 1);
    ok = digits.find_first_not_of("0123456789") == std::string::npos && digits.size() <= 5;
    if (ok) port = std::stoul(digits);
  }
  if (!ok || port == 0 || port > 65535)
    throw Error(Errc::invalid_argument, "bridge service: peer '" + peer + "' is not HOST:PORT (a port 1..65535)");
  return {peer.substr(0, colon), static_cast<std::uint16_t>(port)};
}

/// The port of an endpoint "tcp://HOST:PORT"; 0 when there is none.
inline std::uint16_t endpoint_port(const std::string& ep) {
  const auto colon = ep.rfind(':');
  if (colon == std::string::npos) return 0;
  const std::string d = ep.substr(colon + 1);
  if (d.empty() || d.size() > 5 || d.find_first_not_of("0123456789") != std::string::npos) return 0;
  const unsigned long v = std::stoul(d);
  return v <= 65535 ? static_cast<std::uint16_t>(v) : 0;
}

/// Most peers one service links to (listed, discovered and learned together): each costs a
/// DEALER and its reconnects, so a flood of forged beacons or hellos cannot grow them without
/// bound. Beyond it a new peer is refused (counted in ServiceStats::refused, named in last_error).
constexpr std::size_t kMaxServicePeers = 256;

/// A peer service: its DEALER and the DEALER's monitor (owned by the network thread) and what we
/// know of it (under the service's state mutex).
struct Peer {
  std::string endpoint;  // "tcp://HOST:PORT"
  std::string host;
  bool listed = false;   // from --peer: never forgotten; discovered or learned ones are, after a silence
  Clock::time_point added{};
  std::string expect;    // its node named beforehand (NODE@HOST:PORT, its beacon, its hello); empty: unknown
  std::string key_node;  // CURVE: the node whose key the DEALER expects; empty without keys
  std::size_t key_index = 0;  // CURVE, a HOST:PORT peer: the trusted key tried now
  Clock::time_point dealt{};  // when the DEALER was made (network thread)
  bool ever_heard = false;    // a message came over this DEALER (network thread)
  bool connecting = false;    // connected, handshake not finished (network thread)
  std::string problem;        // why the link is not up, from the monitor; empty once a handshake succeeds
  detail::Socket monitor;     // before `dealer`: destroyed after it (the events of its close arrive)
  detail::Socket dealer;
  std::string node;  // from its hello; empty until heard
  std::uint64_t incarnation = 0;
  std::uint64_t catalogue_generation = 0;  // of the catalogue we hold
  bool have_catalogue = false;
  Clock::time_point last_heard{};
  bool up = false;
  std::vector<wire::CatalogueRecord> catalogue;
};

/// A local stream published to peers, started by an open request.
struct Offer {
  std::unique_ptr<Publisher> publisher;
  Clock::time_point last_subscribed;
  bool released = false;  // a peer said its replica is gone: stopped once nobody subscribes
};

/// A replica this service holds.
struct Held {
  std::string node, name, path, endpoint;
  std::unique_ptr<Replica> replica;
  bool keep = false;
  Clock::time_point last_used;
  Clock::time_point last_reask;
  ReplicationMode mode = ReplicationMode::latest;  // what it asks its owner for
  std::uint32_t window = kDefaultEveryFrameWindow;  // every-frame mode: frames in flight
};

struct Answer {
  std::string asked;  // the endpoint of the peer asked: only its open_answer counts
  bool done = false;
  bool refused = false;
  std::string text;  // endpoint, or "errc TAB message"
  std::uint16_t port = 0;
};

}  // namespace svc
using namespace svc;

struct Service::Impl {
  ServiceOptions opt;
  std::string name;
  std::string directory;
  std::string control_path;
  std::uint16_t port = 0;
  std::uint64_t incarnation = 0;

  detail::Context ctx;
  std::shared_ptr<Security> security;  // CURVE (options.keys); null: plain TCP
  detail::Socket router_monitor;       // handshake failures on the service port
  detail::Socket router;
  int wake_fd = -1;
  std::uint64_t next_monitor = 1;            // inproc monitor endpoints (constructor, network thread)
  std::set<std::string> untrusted_discovered;  // discovered nodes without a trusted key, reported once

  mutable std::mutex mutex;  // peers' data, answers, stats, local catalogue, held, opening
  std::condition_variable cv;
  std::vector<std::unique_ptr<Peer>> peers;
  std::vector<wire::CatalogueRecord> local;
  std::uint64_t local_generation = 1;
  std::map<std::uint64_t, Answer> answers;
  std::uint64_t next_request = 1;
  std::map<std::pair<std::string, std::string>, Held> held;  // (node, name)
  // Replicas being opened or dropped: an open of the same (node, name) waits for it.
  std::set<std::pair<std::string, std::string>> opening;
  // Replica files being created or removed (not yet, or no longer, in `held`): no other open
  // takes one of these paths, and the catalogue never offers them as ours.
  std::set<std::string> claimed;
  std::map<std::pair<std::string, std::string>, HeldQueue> held_queues;  // (node, name): queue replicas
  std::set<std::pair<std::string, std::string>> opening_queues;
  ServiceStats st;
  std::string error;
  std::mutex stop_mutex;  // serialises Service::stop(): a second caller returns once it is done
  bool stopped = false;   // under stop_mutex

  std::mutex cmd_mutex;
  std::deque<std::function<void()>> commands;

  std::map<std::string, Offer> offers;  // network thread only
  std::map<std::string, QueueOffer> queue_offers;  // network thread only: local queues drained for a peer

  std::atomic<bool> stopping{false};
  std::thread net_thread, house_thread;
  std::mutex house_mutex;
  std::condition_variable house_cv;
  std::unique_ptr<detail::ControlServer> control;
  std::unique_ptr<Discovery> discovery;  // multicast beacons; null when off or unavailable

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  // ---------------------------------------------------------------- helpers (any thread)
  void refuse(const std::string& why) {
    std::lock_guard lock(mutex);
    ++st.refused;
    error = why;
  }

  std::string stream_file(const std::string& n) const { return directory + "/" + n + ".im.shm"; }

  void post(std::function<void()> f) {
    {
      std::lock_guard lock(cmd_mutex);
      commands.push_back(std::move(f));
    }
    const std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  std::chrono::milliseconds tick() const {
    return std::max<std::chrono::milliseconds>(std::chrono::milliseconds(10), opt.timing.heartbeat / 2);
  }

  /// A DEALER to the service at host:port, added to `peers` (under the mutex: API threads read
  /// the list; only the constructor and the network thread add to or remove from it). `listed`:
  /// a --peer, kept for ever; other peers are forgotten after a silence (forget_silent()).
  /// `node`: the peer's node when known beforehand (its key, with CURVE).
  /// @throws Error no_space when kMaxServicePeers peers are linked already; as connect_peer().
  void add_peer(const std::string& host, std::uint16_t pport, bool listed, const std::string& node = {});

  // ---------------------------------------------------------------- CURVE and links (service_links.cpp)
  /// Loads the keys of options.keys.directory and serves ZAP in `ctx`. @throws Error naming the file.
  void load_security();
  /// (Re)makes p's DEALER and its monitor, a CURVE client expecting the key of p.expect (or of
  /// the trusted key p.key_index) with keys, and connects it. Network thread or constructor.
  /// @throws Error not_found naming `peers/NODE.pub` when that key is missing, system.
  void connect_peer(Peer& p);
  /// Stops p's monitor and closes its sockets.
  static void close_peer(Peer& p) noexcept;
  /// Monitors `socket`'s connections and handshakes into `monitor` (a PAIR of ctx).
  void watch(void* socket, detail::Socket& monitor, const std::string& what);
  /// Reads p's monitor: keeps why its handshakes fail (p.problem, counted, last_error).
  void on_peer_events(Peer& p);
  /// Reads the service port's monitor: counts failed handshakes of connecting peers.
  void on_router_events();
  /// CURVE, a peer listed as HOST:PORT never heard: tries the next trusted key once the current
  /// one had a link timeout to answer.
  void next_key(Peer& p, Clock::time_point now);

  /// Connects to the services discovery heard that are not peers yet (by endpoint or node).
  void follow_discovery();

  /// Links back to a service that linked to us (its hello on our ROUTER, from `address`, names
  /// its node and service port): peer learning is two-way, so a service only listed by the other
  /// side still learns it and can open its channels. Nothing is done for a node or endpoint
  /// already linked, ourselves, or a hello without a port or a source address.
  void learn_peer(const std::string& node, const std::string& address, std::uint32_t pport);

  /// Forgets the peers that are not listed and were silent for 2 link timeouts (their link is
  /// down: a discovered service that left, a learned one that stopped), and a discovered or
  /// learned duplicate of a listed peer (the same node under another address). Network thread.
  void forget_silent(Clock::time_point now);

  // ---------------------------------------------------------------- network thread
  wire::Header hello() const {
    wire::Header h = wire::make_header(wire::Kind::service_hello);
    h.sequence = incarnation;
    h.send_time_ns = detail::realtime_ns();
    std::lock_guard lock(mutex);
    h.generation = local_generation;
    h.size[0] = port;
    return h;
  }

  void rescan() {
    std::set<std::string> skip;
    {
      std::lock_guard lock(mutex);
      for (const auto& [key, h] : held) skip.insert(h.path);
      skip.insert(claimed.begin(), claimed.end());  // replicas being created (waiting for a first frame) or removed
      for (const auto& [key, q] : held_queues) skip.insert(q.path);
    }
    std::vector<wire::CatalogueRecord> now;
    try {
      now = detail::scan_catalogue(directory, opt.allow, skip);
    } catch (const Error& e) {
      refuse(e.what());
      return;
    }
    std::lock_guard lock(mutex);
    const auto same = [](const wire::CatalogueRecord& a, const wire::CatalogueRecord& b) {
      return a.queue == b.queue && a.name == b.name && a.dtype == b.dtype && a.shape == b.shape;
    };
    if (!std::equal(now.begin(), now.end(), local.begin(), local.end(), same)) {
      local = std::move(now);
      ++local_generation;
    }
  }

  /// A reply to a peer's request on the ROUTER.
  void reply(std::span<const std::byte> identity, wire::Header h, std::span<const std::byte> payload = {}) {
    (void)detail::send_message(router.get(), identity, name, h, payload);
  }

  void answer_refused(std::span<const std::byte> identity, std::uint64_t id, Errc e, const std::string& message) {
    wire::Header h = wire::make_header(wire::Kind::open_answer);
    h.sequence = id;
    h.flags = wire::kAnswerRefused;
    std::string text = std::string(control::errc_name(e)) + "\t" + message;
    if (text.size() > wire::kMaxServiceText) text.resize(wire::kMaxServiceText);
    reply(identity, h, bytes_of(text));
    std::lock_guard lock(mutex);
    ++st.opens_refused;
  }

  /// Answers open request `id` with the data endpoint `ep` (its port in size[0]).
  void answer_endpoint(std::span<const std::byte> identity, std::uint64_t id, const std::string& ep) {
    wire::Header a = wire::make_header(wire::Kind::open_answer);
    a.sequence = id;
    a.size[0] = endpoint_port(ep);
    reply(identity, a, bytes_of(ep));
    std::lock_guard lock(mutex);
    ++st.opens_answered;
  }

  std::unique_ptr<Publisher> start_publisher(const std::string& stream) {
    PublisherOptions po;
    po.security = security;  // CURVE server: trusted replicas only
    po.timing = opt.timing;
    po.spin = opt.spin;
    po.read_only = opt.read_only;
    const std::string path = stream_file(stream);
    if (opt.data_port_first == 0) return std::make_unique<Publisher>(path, "tcp://" + opt.bind + ":*", po);
    for (unsigned p = opt.data_port_first; p <= opt.data_port_last; ++p) {
      bool taken = false;
      for (const auto& [n, o] : offers) taken = taken || endpoint_port(o.publisher->endpoint()) == p;
      if (taken) continue;
      try {
        return std::make_unique<Publisher>(path, "tcp://" + opt.bind + ":" + std::to_string(p), po);
      } catch (const Error& e) {
        if (e.errc() != Errc::system) throw;  // the stream's own errors; a bind failure tries the next port
      }
    }
    throw Error(Errc::busy, "node '" + name + "': no free data port in " + std::to_string(opt.data_port_first) + "-" +
                                std::to_string(opt.data_port_last) + " for stream '" + stream + "'");
  }

  void on_open_request(std::span<const std::byte> identity, const std::string& from, const wire::Header& h,
                       const std::string& channel) {
    const bool queue = (h.flags & wire::kServiceQueue) != 0;
    const std::string kind = queue ? "queue" : "stream";
    try {  // the name rule of every channel: no '/', ".", ".." (a path outside the directory)
      check_channel_name(kind, channel, channel, kMaxChannelName);  // one limit for every kind
    } catch (const Error& e) {
      return answer_refused(identity, h.sequence, Errc::invalid_argument, "node '" + name + "': " + e.what());
    }
    if (!detail::allowed(opt.allow, channel))
      return answer_refused(identity, h.sequence, Errc::permission,
                            "node '" + name + "' does not offer " + kind + " '" + channel + "' to '" + from + "' (not in its --allow list)");
    if (queue) return on_queue_open_request(identity, from, h, channel);
    auto it = offers.find(channel);
    if (it == offers.end()) {
      if (::access(stream_file(channel).c_str(), F_OK) != 0)
        return answer_refused(identity, h.sequence, Errc::not_found,
                              "node '" + name + "' has no stream '" + channel + "' in " + directory);
      try {
        it = offers.emplace(channel, Offer{start_publisher(channel), Clock::now()}).first;
      } catch (const Error& e) {
        return answer_refused(identity, h.sequence, e.errc(), "node '" + name + "': " + e.what());
      }
    }
    it->second.last_subscribed = std::max(it->second.last_subscribed, Clock::now());
    it->second.released = false;
    answer_endpoint(identity, h.sequence, it->second.publisher->endpoint());
    std::lock_guard lock(mutex);
    st.publishers = static_cast<std::uint32_t>(offers.size());
  }

  // ---------------------------------------------------------------- network thread (service_net.cpp)
  /// A message on the service port ([identity, node, header, payload?]) from a peer's DEALER;
  /// `user` is its ZAP user id (with CURVE, the node of the key that authenticated it). Every
  /// field is checked (wire::decode, node names); a bad message is refused and counted.
  void on_router(detail::Parts& m, const std::string& user);
  /// A message on our link to `p` ([node, header, payload?]): its hellos, catalogues, answers.
  void on_dealer(Peer& p, detail::Parts& m);
  /// The heartbeat's work: rescan our catalogue, forget silent peers, follow discovery, say hello.
  void periodic();
  /// The network thread's loop until `stopping`; then stops what it serves (Publishers, senders).
  void run_net();

  // ---------------------------------------------------------------- asking a peer
  /// The peer linked at `endpoint`, or null (it was forgotten). Under the mutex, or on the
  /// network thread (the only one that changes `peers`).
  Peer* peer_at(const std::string& endpoint) const {
    for (const auto& p : peers)
      if (p->endpoint == endpoint) return p.get();
    return nullptr;
  }

  /// Sends open_request for `channel` to the peer at `endpoint` (named `node` in messages) and
  /// waits for its answer at most `timeout`; only that peer's open_answer with this request's id
  /// counts (on_dealer).
  /// `flags`: wire::kServiceQueue for a queue.
  Answer ask(const std::string& endpoint, const std::string& node, const std::string& channel, std::chrono::milliseconds timeout,
             std::uint32_t flags = 0) {
    std::uint64_t id = 0;
    {
      std::lock_guard lock(mutex);
      id = next_request++;
      answers[id] = Answer{endpoint};
    }
    post([this, endpoint, node, id, channel, flags] {
      wire::Header h = wire::make_header(wire::Kind::open_request);
      h.sequence = id;
      h.flags = flags;
      Peer* p = peer_at(endpoint);
      if (p == nullptr || !detail::send_message(p->dealer.get(), {}, name, h, bytes_of(channel))) {
        std::lock_guard lock(mutex);
        auto it = answers.find(id);
        if (it == answers.end()) return;
        it->second = Answer{endpoint, true, true, "not_connected\tnode '" + node + "' (" + endpoint + ") is not connected", 0};
        cv.notify_all();
      }
    });
    std::unique_lock lock(mutex);
    cv.wait_for(lock, timeout, [&] { return answers[id].done || stopping.load(); });
    Answer a = answers[id];
    answers.erase(id);
    if (!a.done) {
      a.refused = true;
      a.text = "timeout\tnode '" + node + "' (" + endpoint + ") did not answer the open of '" + channel + "' within " +
               std::to_string(timeout.count()) + " ms";
    }
    return a;
  }

  static Errc answer_errc(const Answer& a) { return control::errc_from_name(a.text.substr(0, a.text.find('\t'))); }
  static std::string answer_message(const Answer& a) {
    const auto tab = a.text.find('\t');
    return tab == std::string::npos ? a.text : a.text.substr(tab + 1);
  }

  /// Where a replica of `node`:`channel` lives, claimed (added to `claimed`: the caller erases
  /// it once the replica is in `held` or given up): the remote name, unless a local stream of
  /// that name exists that is not a replica of `node`, or another node's replica is held or
  /// being opened or dropped there (then "node:channel"). Under the mutex throughout, so two
  /// opens of one name from two nodes never take the same file.
  std::string claim_path(const std::string& node, const std::string& channel) {
    const std::string plain = stream_file(channel);
    std::lock_guard lock(mutex);
    bool other = claimed.count(plain) != 0;
    for (const auto& [key, h] : held) other = other || (h.path == plain && key.first != node);
    if (!other && ::access(plain.c_str(), F_OK) == 0) {
      try {
        other = !detail::is_replica_of(Stream::open(plain), node);
      } catch (const Error&) {
        other = true;  // not ours to replace
      }
    }
    const std::string path = other ? stream_file(node + ":" + channel) : plain;
    claimed.insert(path);
    return path;
  }

  std::unique_ptr<Replica> make_replica(const std::string& node, const std::string& channel, const std::string& endpoint,
                                        const std::string& path, ReplicationMode mode, std::uint32_t window) {
    ReplicaOptions ro;
    ro.mode = mode;
    ro.window = window;
    ro.timing = opt.timing;
    ro.local_name = path;
    ro.origin = node;
    ro.spin = opt.spin;
    ro.reconnect_max = std::max<std::chrono::milliseconds>(ro.reconnect_min, opt.timing.link_timeout);
    if (security) {  // CURVE client of the owner's Publisher, which holds the owner service's key
      ro.security = security;
      ro.server_key = peer_public_key(*security, node);
    }
    return std::make_unique<Replica>(channel, endpoint, ro);
  }

  /// Waits for the first frame in slices, giving up early when the service stops.
  bool wait_first(const Replica& r, Clock::time_point deadline) const {
    while (!stopping.load()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return r.wait_first_frame(0ms);
      if (r.wait_first_frame(std::min<std::chrono::milliseconds>(left, 100ms))) return true;
    }
    return false;
  }

  /// Erases `key` from `set` (opening or opening_queues) at the end of its scope and wakes the
  /// openers waiting for it.
  struct OpeningMark {
    Impl& impl;
    std::set<std::pair<std::string, std::string>>& set;
    std::pair<std::string, std::string> key;
    OpeningMark(Impl& i, std::set<std::pair<std::string, std::string>>& s, std::pair<std::string, std::string> k)
        : impl(i), set(s), key(std::move(k)) {}
    OpeningMark(const OpeningMark&) = delete;
    OpeningMark& operator=(const OpeningMark&) = delete;
    ~OpeningMark() {
      std::lock_guard lock(impl.mutex);
      set.erase(key);
      impl.cv.notify_all();
    }
  };

  std::string open_stream(std::string node, const std::string& channel, std::chrono::milliseconds timeout, bool keep,
                          ReplicationMode mode, std::uint32_t window);

  /// The peer to ask for `channel` (under `mutex`): the one named `node`, or, when `node` is
  /// empty, the one whose catalogue has a channel of that kind and name (`node` is then set).
  /// @throws Error not_found (no such peer, nobody offers it), invalid_argument (two offer it).
  std::size_t pick_peer(bool queue, std::string& node, const std::string& channel) const;

  // ---------------------------------------------------------------- queues (service_queue.cpp)
  void on_queue_open_request(std::span<const std::byte> identity, const std::string& from, const wire::Header& h,
                             const std::string& channel);
  void on_queue_release(const std::string& from, const std::string& channel);
  QueueSender start_queue_sender(const std::string& file, const std::string& channel);
  std::string open_queue(std::string node, const std::string& channel, std::chrono::milliseconds timeout, bool keep);
  void release_queue(const std::string& node, const std::string& channel);
  std::string queue_file(const std::string& n) const { return directory + "/" + n + ".queue.shm"; }
  /// Where a queue replica of `node`:`channel` lives, claimed (added to `claimed` under the
  /// mutex; the caller erases it once the replica is in `held_queues` or the open failed): NAME,
  /// unless a local queue of that name is not a replica of that node, or another node's replica
  /// is held or being opened there (then "NODE:NAME").
  std::string claim_queue_path(const std::string& node, const std::string& channel);
  void connect_queue(const std::pair<std::string, std::string>& key, const std::string& peer_endpoint, Clock::time_point deadline);
  void resume_queues();
  void queues_house();
  void stop_queues() noexcept;
  /// STATUS's "queues": a JSON array of the queue replicas held, with their receivers' counters.
  std::string queues_json() const;

  // ---------------------------------------------------------------- housekeeping thread
  void run_house() {
    const auto period = std::clamp<std::chrono::milliseconds>(opt.idle / 3, 50ms, 1000ms);
    std::unique_lock lock(house_mutex);
    while (!stopping.load()) {
      house_cv.wait_for(lock, period, [&] { return stopping.load(); });
      if (stopping.load()) break;
      lock.unlock();
      drop_idle();
      reask_down();
      queues_house();
      lock.lock();
    }
  }

  /// The idle rule: takes out of `replicas` (held or held_queues) those not kept and not
  /// `busy(key)` (called under `mutex`) that no process but this one has mapped or open for
  /// `idle`, and notes the time of use of the others. One scan of /proc for all of them.
  /// `taken(key, replica)` is called under `mutex` for each replica taken out.
  template <class Map, class Busy, class Taken>
  std::vector<typename Map::mapped_type> take_idle(Map& replicas, Busy busy, Taken taken) {
    std::vector<typename Map::key_type> keys;
    std::vector<std::string> paths;
    std::vector<typename Map::mapped_type> gone;
    {
      std::lock_guard lock(mutex);
      for (const auto& [key, r] : replicas) {
        if (r.keep || busy(key)) continue;
        keys.push_back(key);
        paths.push_back(r.path);
      }
    }
    if (keys.empty()) return gone;
    const auto used = detail::used_by_others(paths);
    const auto now = Clock::now();
    std::lock_guard lock(mutex);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto it = replicas.find(keys[i]);
      if (it == replicas.end() || it->second.keep || busy(keys[i])) continue;
      if (used[i]) it->second.last_used = now;
      else if (now - it->second.last_used >= opt.idle) {
        taken(it->first, it->second);
        gone.push_back(std::move(it->second));
        replicas.erase(it);
      }
    }
    return gone;
  }

  void drop_idle() {
    // Until its file is gone, an OPEN of it waits and no other replica takes its path.
    // A replica being opened, upgraded or re-asked (in `opening`) is not idle.
    std::vector<Held> gone = take_idle(held, [this](const auto& k) { return opening.count(k) != 0; }, [this](const auto& key, const Held& h) {
      opening.insert(key);
      claimed.insert(h.path);
    });
    for (Held& h : gone) {
      if (h.replica) h.replica->stop();
      ::unlink(h.path.c_str());
      send_release(h.node, h.name);
      std::lock_guard lock(mutex);
      opening.erase({h.node, h.name});
      claimed.erase(h.path);
      cv.notify_all();
    }
  }

  /// Tells `node` that our replica of its stream `channel` is gone (wire kind release), so its
  /// Publisher stops as soon as no other replica subscribes. Any thread (posted to the network
  /// thread); nothing is sent when the node is no longer a peer or its link is down (its
  /// Publisher then ends after its grace).
  void send_release(const std::string& node, const std::string& channel) {
    post([this, node, channel] {
      for (const auto& p : peers)
        if (p->node == node)
          (void)detail::send_message(p->dealer.get(), {}, name, wire::make_header(wire::Kind::release), bytes_of(channel));
    });
  }

  /// A replica whose link is down while its owner's service is up: its Publisher is gone (the
  /// owner restarted, or stopped it): ask again, and follow a new endpoint.
  void reask_down() {
    struct Reask {
      std::pair<std::string, std::string> key;
      std::string peer, endpoint, host;
      ReplicationMode mode;
      std::uint32_t window;
    };
    std::vector<Reask> due;
    const auto now = Clock::now();
    {
      std::lock_guard lock(mutex);
      for (auto& [key, h] : held) {
        // An open (or upgrade) of it in progress owns it until done: no re-ask meanwhile.
        if (!h.replica || opening.count(key) != 0 || h.replica->stats().link_up || now - h.last_reask < opt.timing.link_timeout)
          continue;
        for (const auto& p : peers)
          if (p->node == key.first && p->up) {
            h.last_reask = now;
            opening.insert(key);  // an OPEN of it waits until this re-ask is done
            due.push_back({key, p->endpoint, h.endpoint, p->host, h.mode, h.window});
            break;  // one re-ask per replica, over one live link to its node
          }
      }
    }
    for (const Reask& t : due) {
      const OpeningMark mark{*this, opening, t.key};
      const Answer a = ask(t.peer, t.key.first, t.key.second, opt.timing.link_timeout);
      if (a.refused) {
        refuse("re-opening '" + t.key.first + ":" + t.key.second + "': " + answer_message(a));
        continue;
      }
      const std::string ep = "tcp://" + t.host + ":" + std::to_string(a.port);
      if (ep == t.endpoint) continue;
      std::unique_ptr<Replica> old;
      {
        std::lock_guard lock(mutex);
        auto it = held.find(t.key);
        if (it == held.end()) continue;
        old = std::move(it->second.replica);
      }
      if (!old) continue;
      old->stop();  // before the new one takes the same file
      std::string path;
      {
        std::lock_guard lock(mutex);
        auto it = held.find(t.key);
        if (it != held.end()) path = it->second.path;
      }
      std::unique_ptr<Replica> fresh;
      try {
        if (!path.empty()) fresh = make_replica(t.key.first, t.key.second, ep, path, t.mode, t.window);
      } catch (const Error& e) {
        refuse(e.what());
      }
      std::lock_guard lock(mutex);
      auto it = held.find(t.key);
      if (it == held.end()) continue;
      it->second.endpoint = ep;
      it->second.replica = fresh ? std::move(fresh) : std::move(old);
    }
  }

  // ---------------------------------------------------------------- control socket
  std::vector<std::string> control_quick(const std::vector<std::string>& f, Service& self);
  std::vector<std::string> control_open(const std::vector<std::string>& f, Service& self);
};

}  // namespace shmlink::bridge
