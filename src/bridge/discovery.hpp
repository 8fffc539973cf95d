// SPDX-License-Identifier: MIT
/// @file discovery.hpp
/// @brief Finding the bridge services of a network by UDP multicast beacons
/// (docs/design/bridge.md, "Discovery"). Each service sends one 128-byte little-endian beacon
/// every `interval` to an IPv4 multicast group (239.255.77.11:7711 by default) and listens to the
/// group; whoever it hears within `forget_after` is a peer, at the beacon's source address and
/// announced TCP port. Listed peers ("HOST:PORT") need no beacon: discovery only adds addresses.
///
/// ```
///  0               1               2               3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------------------------------------------------------+
/// |                     magic 0x444C4853 "SHLD"                   |  0
/// +-------------------------------+-------------------------------+
/// |          version (1)          |     flags (bit 0: leaving)    |  4
/// +-------------------------------+-------------------------------+
/// |     service TCP port (!= 0)   |           pad (0)             |  8
/// +-------------------------------+-------------------------------+
/// |                          pad (0)                              | 12
/// +---------------------------------------------------------------+
/// |           incarnation (u64, != 0, new at each start)          | 16
/// +---------------------------------------------------------------+
/// |           catalogue generation (u64)                          | 24
/// +---------------------------------------------------------------+
/// |     domain: 32 bytes, 1..31 bytes of text, NUL-padded         | 32
/// +---------------------------------------------------------------+
/// |     node: 64 bytes, 1..63 bytes of text, NUL-padded           | 64
/// +---------------------------------------------------------------+ 128
/// ```
#pragma once

#include <shmlink/error.hpp>

#include <atomic>
#include <bit>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace shmlink::bridge {

static_assert(std::endian::native == std::endian::little, "beacons are little-endian");

inline constexpr std::uint32_t kBeaconMagic = 0x444C4853;  ///< bytes "SHLD" in little-endian order
inline constexpr std::uint16_t kBeaconVersion = 1;
inline constexpr std::size_t kBeaconBytes = 128;            ///< every beacon is exactly this long
inline constexpr std::size_t kBeaconDomainField = 32;       ///< domain: at most 31 bytes of text
inline constexpr std::size_t kBeaconNodeField = 64;         ///< node: at most 63 bytes of text
/// Beacon flag: the sender is stopping; its peers forget it at once instead of after forget_after.
inline constexpr std::uint16_t kBeaconLeaving = 1U << 0;
/// Most peers one Discovery remembers: a beacon of a new node beyond this is refused (and counted),
/// so a flood of forged node names cannot grow memory without bound.
inline constexpr std::size_t kMaxDiscoveredPeers = 1024;

/// A beacon exactly as sent (little-endian, no implicit padding).
struct BeaconWire {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t flags;
  std::uint16_t port;
  std::uint16_t pad0;
  std::uint32_t pad1;
  std::uint64_t incarnation;
  std::uint64_t catalogue_generation;
  char domain[kBeaconDomainField];
  char node[kBeaconNodeField];
};
static_assert(sizeof(BeaconWire) == kBeaconBytes);
static_assert(offsetof(BeaconWire, magic) == 0);
static_assert(offsetof(BeaconWire, version) == 4);
static_assert(offsetof(BeaconWire, flags) == 6);
static_assert(offsetof(BeaconWire, port) == 8);
static_assert(offsetof(BeaconWire, pad0) == 10);
static_assert(offsetof(BeaconWire, pad1) == 12);
static_assert(offsetof(BeaconWire, incarnation) == 16);
static_assert(offsetof(BeaconWire, catalogue_generation) == 24);
static_assert(offsetof(BeaconWire, domain) == 32);
static_assert(offsetof(BeaconWire, node) == 64);
static_assert(std::is_trivially_copyable_v<BeaconWire>);

/// A beacon's content.
struct Beacon {
  std::uint16_t flags = 0;                   ///< kBeaconLeaving or 0
  std::uint16_t port = 0;                    ///< the sender's service TCP port
  std::uint64_t incarnation = 0;             ///< the sender's process start (random, never 0)
  std::uint64_t catalogue_generation = 0;    ///< changes whenever the sender's catalogue changes
  std::string domain;                        ///< services answer their own domain only
  std::string node;                          ///< the sender's node name
};

/// True when `name` can be a beacon's node name: 1..63 bytes, no control character (below 0x20,
/// 0x7F), no space and no ':' (a node name is the HOST of "host:name").
bool valid_node_name(std::string_view name) noexcept;
/// True when `domain` can be a beacon's domain: 1..31 bytes, the same characters as a node name.
bool valid_domain(std::string_view domain) noexcept;

/// The 128 bytes of `b` (pad bytes 0, text NUL-padded). Text longer than its field is cut (to 31
/// or 63 bytes); callers validate names first (valid_node_name, valid_domain).
std::array<std::byte, kBeaconBytes> encode_beacon(const Beacon& b) noexcept;

/// Parses one received datagram. Refuses, in this order: a size other than 128 bytes, a wrong
/// magic, version not 1, flags other than kBeaconLeaving, non-zero pad bytes, port 0,
/// incarnation 0, a domain or node that is empty, not NUL-terminated inside its field, followed
/// by non-NUL bytes after its end, or holding a character valid_node_name() refuses. Never reads
/// outside `datagram`; never throws.
/// @param why when not null, set to a sentence naming the field and what was wrong.
/// @return the beacon, or nullopt when refused. What it accepts re-encodes to the same bytes.
std::optional<Beacon> parse_beacon(std::span<const std::byte> datagram, std::string* why);

/// What a Discovery is told.
struct DiscoveryOptions {
  std::string node;                          ///< our node name (valid_node_name())
  std::string domain = "default";            ///< only beacons of this domain count (valid_domain())
  std::uint16_t service_port = 0;            ///< TCP port announced in the beacon (must not be 0)
  std::uint16_t discovery_port = 7711;       ///< UDP port of the group (must not be 0)
  std::string group = "239.255.77.11";       ///< IPv4 multicast group (224.0.0.0/4)
  std::string interface_address;             ///< IPv4 address of the interface to use; empty: default route
  std::chrono::milliseconds interval{1000};  ///< beacon period (> 0)
  std::chrono::milliseconds forget_after{6000};  ///< a peer silent this long is forgotten (> 0)
  /// IP_MULTICAST_TTL of the beacons: 1 keeps them on the local link (routers do not forward them).
  std::uint8_t ttl = 1;
};

/// One peer heard.
struct DiscoveredPeer {
  std::string node;             ///< its node name
  std::string address;          ///< the beacon's source IPv4 address, dotted ("10.1.0.2")
  std::uint16_t port = 0;       ///< its service TCP port
  std::uint64_t incarnation = 0;            ///< its process start (changes when it restarts)
  std::uint64_t catalogue_generation = 0;   ///< its catalogue's generation, as last announced
  std::chrono::steady_clock::time_point last_seen;  ///< when its last beacon arrived
};

/// Sends our beacons and listens for those of the other services of the domain, in one thread.
///
/// Sockets: a receiving UDP socket bound to group:discovery_port with SO_REUSEADDR (several
/// services of one host share the port) and IP_ADD_MEMBERSHIP on the interface, and a sending
/// one with IP_MULTICAST_TTL `ttl`, IP_MULTICAST_LOOP on (two services of one host hear each
/// other) and IP_MULTICAST_IF when interface_address is set. The thread sends a beacon at start,
/// every `interval`, and at once when the catalogue generation changes; it polls with a timeout
/// and stop() wakes it through an eventfd. Our own beacons (our node name and incarnation) and
/// those of other domains are ignored; a malformed one is counted (refused()) and described
/// (last_error(), naming the sender), never fatal. A beacon with our node name but another
/// incarnation is a peer like any other (a previous run of ours that still sends, or a second
/// service misnamed): the name conflict shows in peers(). A peer's newest beacon replaces what
/// was known of it; a leaving beacon forgets it at once.
class Discovery {
 public:
  /// Validates the options, opens and joins the sockets, starts the thread.
  /// @throws Error invalid_argument (an option: the message names it), system (a socket could not
  ///         be made, bound or joined: the message names the group, port, interface and reason).
  explicit Discovery(const DiscoveryOptions& options);
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;
  /// Stops (as stop()).
  ~Discovery();
  /// Sets the catalogue generation our beacons announce; a change is announced at once. May be
  /// called from any thread, also after stop() (then nothing is sent).
  void set_catalogue_generation(std::uint64_t generation) noexcept;
  /// The peers heard within forget_after (never ourselves), sorted by node name.
  [[nodiscard]] std::vector<DiscoveredPeer> peers() const;
  /// Datagrams refused (malformed beacons, a full peer table), in total.
  [[nodiscard]] std::uint64_t refused() const noexcept;
  /// The last refused datagram or failure (naming the sender or the socket); empty if none.
  [[nodiscard]] std::string last_error() const;
  /// Our incarnation (announced in every beacon).
  [[nodiscard]] std::uint64_t incarnation() const noexcept { return incarnation_; }
  /// Sends a leaving beacon, stops the thread, closes the sockets. Idempotent.
  void stop() noexcept;

 private:
  void run() noexcept;
  void send_beacon(std::uint16_t flags) noexcept;
  void receive() noexcept;
  void note_error(std::string message);

  DiscoveryOptions options_;
  std::uint64_t incarnation_ = 0;
  int recv_fd_ = -1;
  int send_fd_ = -1;
  int wake_fd_ = -1;
  std::uint32_t group_be_ = 0;  ///< the group, network byte order
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;  ///< guards peers_, last_error_
  std::map<std::string, DiscoveredPeer, std::less<>> peers_;
  std::string last_error_;
  std::mutex stop_mutex_;  ///< serialises stop()
  std::thread thread_;
};

}  // namespace shmlink::bridge
