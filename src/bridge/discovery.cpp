// SPDX-License-Identifier: MIT
// Multicast discovery of bridge services (docs/design/bridge.md, "Discovery"): the beacon's
// encoding and checks, and the thread that sends ours and listens for the others'.
#include "bridge/discovery.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

namespace shmlink::bridge {

namespace {

bool valid_text(std::string_view s, std::size_t field) noexcept {
  if (s.empty() || s.size() >= field) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7F || c == ':';
  });
}

/// Reads a NUL-padded text field: nullopt (with `why`) unless it holds 1..field-1 bytes of valid
/// text, a NUL, and only NULs after it.
std::optional<std::string> read_field(const char* field, std::size_t size, const char* what, std::string* why) {
  const void* nul = std::memchr(field, 0, size);
  auto fail = [&](const std::string& text) -> std::optional<std::string> {
    if (why != nullptr) *why = std::string(what) + " " + text;
    return std::nullopt;
  };
  if (nul == nullptr) return fail("is not NUL-terminated within its " + std::to_string(size) + " bytes");
  const auto len = static_cast<std::size_t>(static_cast<const char*>(nul) - field);
  if (len == 0) return fail("is empty");
  for (std::size_t i = len; i < size; ++i)
    if (field[i] != 0) return fail("has non-zero bytes after its terminating NUL");
  std::string text(field, len);
  if (!valid_text(text, size)) return fail("holds a control character, a space or ':'");
  return text;
}

std::string errno_text(int err) { return std::strerror(err); }

std::string address_text(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return buf;
}

/// A random, non-zero incarnation: the random device mixed with the realtime clock (two services
/// started in the same nanosecond still differ by the device).
std::uint64_t new_incarnation() {
  std::random_device rd;
  std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd();
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  v ^= static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
  return v == 0 ? 1 : v;
}

[[noreturn]] void fail_option(const std::string& what) {
  throw Error(Errc::invalid_argument, "bridge discovery: " + what);
}

}  // namespace

bool valid_node_name(std::string_view name) noexcept { return valid_text(name, kBeaconNodeField); }
bool valid_domain(std::string_view domain) noexcept { return valid_text(domain, kBeaconDomainField); }

std::array<std::byte, kBeaconBytes> encode_beacon(const Beacon& b) noexcept {
  BeaconWire w{};
  w.magic = kBeaconMagic;
  w.version = kBeaconVersion;
  w.flags = b.flags;
  w.port = b.port;
  w.incarnation = b.incarnation;
  w.catalogue_generation = b.catalogue_generation;
  std::memcpy(w.domain, b.domain.data(), std::min(b.domain.size(), kBeaconDomainField - 1));
  std::memcpy(w.node, b.node.data(), std::min(b.node.size(), kBeaconNodeField - 1));
  std::array<std::byte, kBeaconBytes> out{};
  std::memcpy(out.data(), &w, sizeof w);
  return out;
}

std::optional<Beacon> parse_beacon(std::span<const std::byte> datagram, std::string* why) {
  auto fail = [&](const std::string& text) -> std::optional<Beacon> {
    if (why != nullptr) *why = text;
    return std::nullopt;
  };
  if (datagram.size() != kBeaconBytes)
    return fail("size is " + std::to_string(datagram.size()) + " bytes, not " + std::to_string(kBeaconBytes));
  BeaconWire w{};
  std::memcpy(&w, datagram.data(), sizeof w);
  if (w.magic != kBeaconMagic) return fail("magic is not 0x444C4853 (\"SHLD\")");
  if (w.version != kBeaconVersion)
    return fail("version is " + std::to_string(w.version) + ", not " + std::to_string(kBeaconVersion));
  if ((w.flags & ~kBeaconLeaving) != 0) return fail("flags " + std::to_string(w.flags) + " are not defined");
  if (w.pad0 != 0 || w.pad1 != 0) return fail("pad bytes (offsets 10..15) are not 0");
  if (w.port == 0) return fail("service port is 0");
  if (w.incarnation == 0) return fail("incarnation is 0");
  Beacon b;
  b.flags = w.flags;
  b.port = w.port;
  b.incarnation = w.incarnation;
  b.catalogue_generation = w.catalogue_generation;
  auto domain = read_field(w.domain, kBeaconDomainField, "domain", why);
  if (!domain) return std::nullopt;
  auto node = read_field(w.node, kBeaconNodeField, "node name", why);
  if (!node) return std::nullopt;
  b.domain = std::move(*domain);
  b.node = std::move(*node);
  return b;
}

// ---- Discovery ----

Discovery::Discovery(const DiscoveryOptions& options) : options_(options), incarnation_(new_incarnation()) {
  const auto& o = options_;
  if (!valid_node_name(o.node))
    fail_option("node name '" + o.node + "' is not 1..63 bytes without control characters, spaces or ':'");
  if (!valid_domain(o.domain))
    fail_option("domain '" + o.domain + "' is not 1..31 bytes without control characters, spaces or ':'");
  if (o.service_port == 0) fail_option("service port 0 cannot be announced (give the bound TCP port)");
  if (o.discovery_port == 0) fail_option("discovery port is 0");
  if (o.interval.count() <= 0) fail_option("interval must be above 0 ms");
  if (o.forget_after.count() <= 0) fail_option("forget_after must be above 0 ms");
  in_addr group{};
  if (::inet_pton(AF_INET, o.group.c_str(), &group) != 1 || !IN_MULTICAST(ntohl(group.s_addr)))
    fail_option("group '" + o.group + "' is not an IPv4 multicast address (224.0.0.0/4)");
  group_be_ = group.s_addr;
  in_addr iface{};
  iface.s_addr = htonl(INADDR_ANY);
  if (!o.interface_address.empty() && ::inet_pton(AF_INET, o.interface_address.c_str(), &iface) != 1)
    fail_option("interface address '" + o.interface_address + "' is not an IPv4 address");

  const std::string where = "bridge discovery on udp " + o.group + ":" + std::to_string(o.discovery_port) +
                            " (interface " + (o.interface_address.empty() ? "default" : o.interface_address) + ")";
  auto close_all = [this] {
    for (int* fd : {&recv_fd_, &send_fd_, &wake_fd_})
      if (*fd >= 0) ::close(*fd), *fd = -1;
  };
  auto sys_fail = [&](const std::string& step) {
    const int err = errno;
    close_all();
    throw Error(Errc::system, where + ": " + step + ": " + errno_text(err));
  };
  auto setopt = [&](int fd, int level, int name, const void* value, socklen_t len, const char* what) {
    if (::setsockopt(fd, level, name, value, len) != 0) sys_fail(std::string("setting ") + what);
  };

  recv_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (recv_fd_ < 0) sys_fail("making the receiving socket");
  const int one = 1, zero = 0;
  setopt(recv_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one, "SO_REUSEADDR");
  // Only the group's datagrams: not those of other groups another socket of this host joined.
  setopt(recv_fd_, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero, "IP_MULTICAST_ALL 0");
  sockaddr_in bind_to{};
  bind_to.sin_family = AF_INET;
  bind_to.sin_port = htons(o.discovery_port);
  bind_to.sin_addr = group;  // the group itself: unicast datagrams to the port are not ours
  if (::bind(recv_fd_, reinterpret_cast<const sockaddr*>(&bind_to), sizeof bind_to) != 0)
    sys_fail("binding the receiving socket");
  ip_mreq join{};
  join.imr_multiaddr = group;
  join.imr_interface = iface;
  setopt(recv_fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof join, "IP_ADD_MEMBERSHIP (joining the group)");

  send_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (send_fd_ < 0) sys_fail("making the sending socket");
  const int ttl = o.ttl;
  setopt(send_fd_, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl, "IP_MULTICAST_TTL");
  setopt(send_fd_, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one, "IP_MULTICAST_LOOP");
  if (!o.interface_address.empty())
    setopt(send_fd_, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof iface, "IP_MULTICAST_IF");

  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) sys_fail("making the eventfd");
  thread_ = std::thread([this] { run(); });
}

Discovery::~Discovery() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Discovery::set_catalogue_generation(std::uint64_t generation) noexcept {
  // SYNC POINT: relaxed is enough: the thread reads it after the eventfd wake-up below (a
  // syscall pair orders them); a beacon sent just before carries the old value, the next the new.
  if (generation_.exchange(generation, std::memory_order_relaxed) == generation) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

std::vector<DiscoveredPeer> Discovery::peers() const {
  const auto now = std::chrono::steady_clock::now();
  std::vector<DiscoveredPeer> out;
  std::lock_guard lock(mutex_);
  for (const auto& [node, peer] : peers_)
    if (now - peer.last_seen < options_.forget_after) out.push_back(peer);
  return out;  // std::map: already sorted by node name
}

std::uint64_t Discovery::refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

std::string Discovery::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

void Discovery::note_error(std::string message) {
  std::lock_guard lock(mutex_);
  last_error_ = std::move(message);
}

void Discovery::stop() noexcept {
  std::lock_guard guard(stop_mutex_);
  if (thread_.joinable()) {
    stopping_.store(true, std::memory_order_relaxed);
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  // The eventfd stays until destruction: set_catalogue_generation() may still write to it.
  for (int* fd : {&recv_fd_, &send_fd_})
    if (*fd >= 0) ::close(*fd), *fd = -1;
}

void Discovery::send_beacon(std::uint16_t flags) noexcept {
  Beacon b;
  b.flags = flags;
  b.port = options_.service_port;
  b.incarnation = incarnation_;
  b.catalogue_generation = generation_.load(std::memory_order_relaxed);
  b.domain = options_.domain;
  b.node = options_.node;
  const auto bytes = encode_beacon(b);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(options_.discovery_port);
  to.sin_addr.s_addr = group_be_;
  if (::sendto(send_fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) {
    const int err = errno;
    try {
      note_error("sending a beacon to " + options_.group + ":" + std::to_string(options_.discovery_port) + ": " +
                 errno_text(err));
    } catch (...) {  // out of memory for the message: the failure stays uncounted, nothing else
    }
  }
}

void Discovery::receive() noexcept {
  // One more byte than a beacon: a longer datagram shows as such (MSG_TRUNC gives its real size).
  std::array<std::byte, kBeaconBytes + 1> buf{};
  for (;;) {
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(recv_fd_, buf.data(), buf.size(), MSG_TRUNC, reinterpret_cast<sockaddr*>(&from),
                                 &from_len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      const int err = errno;
      try {
        note_error("receiving on udp " + options_.group + ":" + std::to_string(options_.discovery_port) + ": " +
                   errno_text(err));
      } catch (...) {
      }
      return;
    }
    try {
      const std::string sender = address_text(from) + ":" + std::to_string(ntohs(from.sin_port));
      std::string why;
      // n above the buffer (MSG_TRUNC): the size check refuses it without reading past the buffer.
      const auto size = static_cast<std::size_t>(n);
      std::optional<Beacon> b;
      if (size > kBeaconBytes) why = "size is " + std::to_string(size) + " bytes, not " + std::to_string(kBeaconBytes);
      else b = parse_beacon(std::span<const std::byte>(buf.data(), size), &why);
      if (!b) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        note_error("beacon from " + sender + " refused: " + why);
        continue;
      }
      if (b->domain != options_.domain) continue;
      if (b->node == options_.node && b->incarnation == incarnation_) continue;  // our own, looped back
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard lock(mutex_);
      if ((b->flags & kBeaconLeaving) != 0) {
        auto it = peers_.find(b->node);
        // Only the incarnation that said goodbye leaves (a late goodbye of an older run does not
        // remove its successor).
        if (it != peers_.end() && it->second.incarnation == b->incarnation) peers_.erase(it);
        continue;
      }
      auto it = peers_.find(b->node);
      if (it == peers_.end()) {
        if (peers_.size() >= kMaxDiscoveredPeers) {
          // Make room from the forgotten first; refuse only when every entry is live.
          std::erase_if(peers_, [&](const auto& kv) { return now - kv.second.last_seen >= options_.forget_after; });
          if (peers_.size() >= kMaxDiscoveredPeers) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            last_error_ = "beacon from " + sender + " refused: the peer table is full (" +
                          std::to_string(kMaxDiscoveredPeers) + " nodes heard within forget_after)";
            continue;
          }
        }
        it = peers_.emplace(b->node, DiscoveredPeer{}).first;
        it->second.node = b->node;
      }
      DiscoveredPeer& p = it->second;
      p.address = address_text(from);
      p.port = b->port;
      p.incarnation = b->incarnation;
      p.catalogue_generation = b->catalogue_generation;
      p.last_seen = now;
    } catch (...) {  // out of memory: this datagram is lost, the next one is read
      refused_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void Discovery::run() noexcept {
  using clock = std::chrono::steady_clock;
  send_beacon(0);
  auto next = clock::now() + options_.interval;
  while (!stopping_.load(std::memory_order_relaxed)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock::now());
    const int timeout = left.count() <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left.count() + 1, 60'000));
    pollfd fds[2] = {{recv_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int r = ::poll(fds, 2, timeout);
    if (r < 0 && errno != EINTR) {
      const int err = errno;
      try {
        note_error("bridge discovery: poll: " + errno_text(err));
      } catch (...) {
      }
      timespec pause{0, 10'000'000};  // do not spin on a persistent failure
      ::nanosleep(&pause, nullptr);
    }
    if (r > 0 && (fds[0].revents & POLLIN) != 0) receive();
    if (r > 0 && (fds[1].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] const auto n = ::read(wake_fd_, &count, sizeof count);
      if (stopping_.load(std::memory_order_relaxed)) break;
      send_beacon(0);  // the catalogue generation changed: say so now
      next = clock::now() + options_.interval;
    }
    if (clock::now() >= next) {
      send_beacon(0);
      next += options_.interval;
      if (next < clock::now()) next = clock::now() + options_.interval;  // after a long stall
    }
  }
  send_beacon(kBeaconLeaving);
}

}  // namespace shmlink::bridge
