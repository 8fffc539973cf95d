// SPDX-License-Identifier: MIT
/// @file bridge_service.hpp
/// @brief The per-host bridge service (`shmlink bridge serve`): finds the services of other hosts,
/// exchanges catalogues of their channels, and keeps a same-name replica of any remote stream a
/// local program opens (docs/design/bridge.md, "The service"; docs/bridge.md).
///
/// One Service per host and stream directory. It listens on TCP `port` (ZeroMQ ROUTER) for other
/// services, connects to listed peers and to peers its Discovery finds by multicast beacons,
/// answers local programs on its control socket (src/remote/control_protocol.hpp), publishes a
/// local stream to a peer only while that peer has a replica of it in use, and drops a replica no
/// process uses for `idle` unless kept.
#pragma once

#include <shmlink/bridge.hpp>
#include <shmlink/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shmlink::bridge {

/// CURVE key material of a service (docs/bridge.md, "Keys"; docs/design/bridge.md, "Threat
/// model"). Empty: no encryption.
///
/// With a directory, the service loads `<directory>/<node>.key` (its key pair, mode 0600) and
/// `<directory>/peers/*.pub` (the keys it trusts, each named by its node) once, at start, and
/// every socket it makes is CURVE: its ROUTER and the Publishers it starts are servers that let in
/// trusted keys only (ZAP); its links to peers and its Replicas are clients that expect the
/// peer's own key, `peers/<peer>.pub`. A listed peer given as `NODE@HOST:PORT` and a peer found by
/// its beacon (which carries its node name) get that node's key; a listed `HOST:PORT` is tried
/// with each trusted key in turn (one per link timeout) until one answers, and stays bound to it.
struct ServiceKeys {
  /// Directory holding `<node>.key` (this service's secret key) and `peers/*.pub` (the public
  /// keys of the services and clients it trusts); empty: CURVE off.
  std::string directory;
};

/// What a Service is told (the options of `shmlink bridge serve`).
struct ServiceOptions {
  /// This service's node name (at most 63 bytes, no TAB/control characters); empty: the host name.
  std::string name;
  /// TCP port of the service's ROUTER (peers connect here); 0: an ephemeral port (see port()).
  std::uint16_t port = 7710;
  /// Address to bind (TCP and the published streams): "0.0.0.0" (all), or one interface's address.
  std::string bind = "0.0.0.0";
  /// Listed peers, "HOST:PORT" or "NODE@HOST:PORT" (their service port), connected to directly (no
  /// beacon needed). NODE names the peer's key in `peers/NODE.pub` when keys are used (and the node
  /// its hello must name).
  std::vector<std::string> peers;
  /// Multicast discovery: on when true (UDP beacons within `domain`).
  bool multicast = true;
  /// Discovery domain: services answer only beacons of their own domain.
  std::string domain = "default";
  /// UDP port of the multicast beacons (shared by every service of the domain).
  std::uint16_t discovery_port = 7711;
  /// Name prefixes of the local channels offered to peers; empty: every channel.
  std::vector<std::string> allow;
  /// Refuse writes from peers into local sources, and refuse to bridge local queues (their
  /// sender would consume their samples).
  bool read_only = false;
  /// CURVE keys.
  ServiceKeys keys;
  /// Stream threads spin instead of futex waits (lower latency, one core each).
  bool spin = false;
  /// Stream directory served; empty: stream_directory().
  std::string directory;
  /// Control socket path; empty: control::control_socket_path() for `directory`.
  std::string control_socket;
  /// A replica no process maps for this long is dropped (unless kept).
  std::chrono::milliseconds idle{30000};
  /// Heartbeats and beacons.
  LinkTiming timing;
  /// TCP ports of the streams' publishers and the queues' senders (each stream or queue a peer
  /// opens gets one, bound at `bind`):
  /// {0, 0}: ephemeral ports; else the first free port of [first, last] (for a firewall rule).
  std::uint16_t data_port_first = 0;
  std::uint16_t data_port_last = 0;
  /// How long a pending OPEN from the control socket may take at most, whatever the caller asked.
  std::chrono::milliseconds max_open_timeout{60000};
};

/// One channel of some node, as `bridge ls` shows it.
struct CatalogueEntry {
  std::string node;          ///< owner node
  std::string kind;          ///< "stream" or "queue"
  std::string name;          ///< channel name on its node
  std::uint32_t dtype = 0;   ///< stream: ISIO datatype code; queue: bytes per sample
  std::vector<std::uint32_t> shape;  ///< stream: axes; queue: {capacity}
};

/// One peer service, as `bridge status` shows it.
struct PeerStatus {
  std::string node;      ///< its node name
  std::string endpoint;  ///< "tcp://HOST:PORT"
  bool link_up = false;  ///< heard within link_timeout
  std::uint64_t channels = 0;  ///< entries in its catalogue
  /// Why the link is not up, when its connection says so: the last handshake failure (the peer
  /// refused our key, uses no CURVE or another key than expected, ...); empty once a handshake
  /// succeeds.
  std::string problem;
};

/// One replica held by this service, as `bridge status` shows it.
struct ReplicaStatus {
  std::string node;   ///< owner
  std::string name;   ///< remote name
  std::string path;   ///< local file
  bool kept = false;  ///< `want --keep`
  ReplicaStats stats; ///< counters, link
  std::int64_t age_us = -1;  ///< BR_AGE_US of the newest frame (its age when it arrived); -1 unknown
  std::string endpoint;      ///< the owner's data endpoint it follows, "tcp://HOST:PORT"
};

/// Counters of a Service (racy snapshot).
struct ServiceStats {
  std::uint64_t refused = 0;         ///< messages from peers refused (wire checks, unknown sender, ...)
  std::uint64_t opens_answered = 0;  ///< open requests of peers answered with an endpoint
  std::uint64_t opens_refused = 0;   ///< open requests of peers refused (not found, not allowed, ...)
  std::uint32_t publishers = 0;      ///< local streams published to peers now
  bool curve = false;                ///< CURVE on (options.keys.directory given)
  /// Connections refused by our ZAP handlers (an untrusted key, a plaintext client), on the
  /// service port and on every data port.
  std::uint64_t handshakes_refused = 0;
  /// Handshakes that failed on the service's own sockets (its port and its links to peers): keys
  /// refused by a peer, a peer without CURVE (or with it when we have none), another key.
  std::uint64_t handshakes_failed = 0;
  /// The latest ZAP refusal: the peer's address and why; empty if none.
  std::string last_refusal;
};

/// The service. Threads start in the constructor; stop() or the destructor ends them.
class Service {
 public:
  /// Binds the TCP port and the control socket, starts discovery and the peers' links.
  /// @throws Error invalid_argument (bad option: the message names it), system (a port or the
  ///         control socket could not be bound: naming it and why; another service already
  ///         listens on the control socket: exists; libzmq without CURVE), and with keys, naming
  ///         the file: not_found (no `<node>.key`; a listed NODE@ peer without
  ///         `peers/NODE.pub`; no trusted key at all), permission (a secret key file group or
  ///         others can read, or one the OS refused), layout (a malformed key file).
  explicit Service(const ServiceOptions& options);
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service();
  /// The node name in use.
  [[nodiscard]] const std::string& name() const noexcept;
  /// The TCP port bound (the real one when options.port was 0).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The control socket's path.
  [[nodiscard]] const std::string& control_socket() const noexcept;
  /// Every channel of every peer heard, and this node's own.
  [[nodiscard]] std::vector<CatalogueEntry> catalogue() const;
  /// Peers and their links.
  [[nodiscard]] std::vector<PeerStatus> peers() const;
  /// Replicas held.
  [[nodiscard]] std::vector<ReplicaStatus> replicas() const;
  /// Makes (or finds) the replica of remote channel `name` (on `node`, or any peer that has it
  /// when empty) and waits for its first frame (or its file, when the source was never
  /// written), at most `timeout`. Returns the local path: the
  /// remote name in the served directory, or "NODE:NAME" when a local stream of that name exists
  /// that is not a replica of that node (its BR_ORIGIN keyword). A second open of a replica held
  /// returns at once (keep = true sets its keep flag). Thread-safe; opens of other channels run
  /// concurrently.
  /// Kind "queue": the owner's service becomes the consumer of its queue and moves every sample,
  /// once and in order, into a local replica queue whose consumer is the caller's program; the
  /// wait is for the owner's first hello (the replica's file and state file exist then); the
  /// replica is "NODE:NAME" when a local queue of that name is not a replica of that node
  /// (docs/design/bridge.md, "Queues through the service").
  /// @param mode ReplicationMode::every_frame makes the replica a rolling buffer of the source's
  ///        depth that receives every source frame in order, `window` (1..kMaxEveryFrameWindow)
  ///        of them in flight, and counts in BR_LOST those overwritten at the owner before they
  ///        could be sent (docs/design/bridge.md, "Every-frame mode"). A replica held in the
  ///        latest mode and asked for every frame is replaced by an every-frame one on the same
  ///        file; one held in every-frame mode serves latest-mode askers as it is (its window
  ///        stays the first asker's). Streams only (invalid_argument for a queue).
  /// @throws Error invalid_argument (kind not "stream" or "queue"; a window outside
  ///         1..kMaxEveryFrameWindow; every-frame mode for a queue; a name offered by two peers
  ///         and no node given: naming both), not_found (no peer offers it, or the owner has no
  ///         such channel), not_connected (the peer's link is down), timeout (no answer or no
  ///         first frame within `timeout`), permission (the owner's allow-list refuses it; a
  ///         queue of a read-only owner), busy (a queue bridged to another node already), or the
  ///         owner's other refusals.
  std::string open(std::string_view kind, std::string_view node, std::string_view name,
                   std::chrono::milliseconds timeout, bool keep, ReplicationMode mode = ReplicationMode::latest,
                   std::uint32_t window = kDefaultEveryFrameWindow);
  /// Counters.
  [[nodiscard]] ServiceStats stats() const;
  /// The last refused message or failure, naming the peer and what was wrong; empty if none.
  [[nodiscard]] std::string last_error() const;
  /// Clears `keep` of a replica (it is then dropped once unused for `idle`; a queue replica then
  /// stops travelling, its file and unread samples stay for the next open).
  /// @throws Error not_found (no such replica).
  void release(std::string_view kind, std::string_view node, std::string_view name);
  /// Stops every thread, closes every socket, removes the control socket. Replica files stay.
  /// Idempotent.
  void stop() noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmlink::bridge
