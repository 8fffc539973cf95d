// SPDX-License-Identifier: MIT
// Multicast discovery of bridge services (issue 22; docs/design/bridge.md "Discovery"): the
// beacon's encoding and every refusal on raw bytes, then Discovery objects on loopback (127.0.0.1
// as the interface) in two processes, other domains, forgetting, and hostile datagrams the test
// sends itself. Each test uses its own UDP port and domain, so parallel tests never hear each
// other.
#include "bridge/discovery.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
using shmlink::test::Shared;
using shmlink::test::spawn;
using shmlink::test::wait_until;

// ---------------------------------------------------------------- beacons on raw bytes

bridge::Beacon sample_beacon() {
  bridge::Beacon b;
  b.port = 7710;
  b.incarnation = 0x1122334455667788ULL;
  b.catalogue_generation = 42;
  b.domain = "lab";
  b.node = "rtc1";
  return b;
}

std::vector<std::byte> bytes_of(const bridge::Beacon& b) {
  const auto a = bridge::encode_beacon(b);
  return {a.begin(), a.end()};
}

TEST(BridgeBeacon, EncodesTheDocumentedLayoutAndParsesBack) {
  const auto bytes = bytes_of(sample_beacon());
  ASSERT_EQ(bytes.size(), 128U);
  EXPECT_EQ(std::memcmp(bytes.data(), "SHLD", 4), 0);
  EXPECT_EQ(std::to_integer<int>(bytes[4]), 1);  // version, little-endian
  EXPECT_EQ(std::to_integer<int>(bytes[8]) | (std::to_integer<int>(bytes[9]) << 8), 7710);
  EXPECT_EQ(std::to_integer<int>(bytes[16]), 0x88);  // incarnation, little-endian
  EXPECT_EQ(std::to_integer<int>(bytes[24]), 42);
  EXPECT_EQ(std::memcmp(bytes.data() + 32, "lab", 4), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 64, "rtc1", 5), 0);
  std::string why;
  const auto b = bridge::parse_beacon(bytes, &why);
  ASSERT_TRUE(b) << why;
  EXPECT_EQ(b->port, 7710);
  EXPECT_EQ(b->incarnation, 0x1122334455667788ULL);
  EXPECT_EQ(b->catalogue_generation, 42U);
  EXPECT_EQ(b->domain, "lab");
  EXPECT_EQ(b->node, "rtc1");
  EXPECT_EQ(b->flags, 0);
  auto leaving = sample_beacon();
  leaving.flags = bridge::kBeaconLeaving;
  leaving.node = std::string(63, 'n');  // the longest node name
  leaving.domain = std::string(31, 'd');
  const auto l = bridge::parse_beacon(bytes_of(leaving), &why);
  ASSERT_TRUE(l) << why;
  EXPECT_EQ(l->flags, bridge::kBeaconLeaving);
  EXPECT_EQ(l->node, leaving.node);
  EXPECT_EQ(l->domain, leaving.domain);
}

TEST(BridgeBeacon, EveryRefusalIsNamed) {
  struct Case {
    const char* what;
    std::function<void(std::vector<std::byte>&)> mutate;
    const char* expected;
  };
  auto put = [](std::vector<std::byte>& b, std::size_t at, const void* v, std::size_t n) {
    std::memcpy(b.data() + at, v, n);
  };
  const std::vector<Case> cases = {
      {"short", [](auto& b) { b.resize(127); }, "size is 127 bytes, not 128"},
      {"long", [](auto& b) { b.resize(129); }, "size is 129 bytes, not 128"},
      {"empty", [](auto& b) { b.clear(); }, "size is 0 bytes"},
      {"magic", [&](auto& b) { put(b, 0, "SHLB", 4); }, "magic"},
      {"version", [&](auto& b) { const std::uint16_t v = 2; put(b, 4, &v, 2); }, "version is 2"},
      {"flags", [&](auto& b) { const std::uint16_t v = 2; put(b, 6, &v, 2); }, "flags 2 are not defined"},
      {"pad0", [](auto& b) { b[10] = std::byte{1}; }, "pad bytes"},
      {"pad1", [](auto& b) { b[15] = std::byte{1}; }, "pad bytes"},
      {"port", [&](auto& b) { const std::uint16_t v = 0; put(b, 8, &v, 2); }, "service port is 0"},
      {"incarnation", [&](auto& b) { const std::uint64_t v = 0; put(b, 16, &v, 8); }, "incarnation is 0"},
      {"domain empty", [](auto& b) { b[32] = std::byte{0}; }, "domain is empty"},
      {"domain unterminated", [](auto& b) { std::fill(b.begin() + 32, b.begin() + 64, std::byte{'x'}); },
       "domain is not NUL-terminated"},
      {"domain trailing", [](auto& b) { b[40] = std::byte{'x'}; }, "domain has non-zero bytes after"},
      {"domain control", [](auto& b) { b[33] = std::byte{'\t'}; }, "domain holds a control character"},
      {"node empty", [](auto& b) { std::fill(b.begin() + 64, b.end(), std::byte{0}); }, "node name is empty"},
      {"node unterminated", [](auto& b) { std::fill(b.begin() + 64, b.end(), std::byte{'x'}); },
       "node name is not NUL-terminated"},
      {"node trailing", [](auto& b) { b[127] = std::byte{'x'}; }, "node name has non-zero bytes after"},
      {"node colon", [](auto& b) { b[65] = std::byte{':'}; }, "node name holds a control character, a space or ':'"},
      {"node space", [](auto& b) { b[65] = std::byte{' '}; }, "node name holds"},
      {"node DEL", [](auto& b) { b[65] = std::byte{0x7F}; }, "node name holds"},
  };
  for (const auto& c : cases) {
    auto bytes = bytes_of(sample_beacon());
    c.mutate(bytes);
    std::string why;
    EXPECT_FALSE(bridge::parse_beacon(bytes, &why)) << c.what;
    EXPECT_NE(why.find(c.expected), std::string::npos) << c.what << ": " << why;
  }
  EXPECT_FALSE(bridge::parse_beacon({}, nullptr));  // no `why` wanted: still refused, no crash
}

TEST(BridgeBeacon, NodeNamesAndDomainsFollowTheBeaconsRules) {
  EXPECT_TRUE(bridge::valid_node_name("rtc1"));
  EXPECT_TRUE(bridge::valid_node_name("wfs-host.example.org"));
  EXPECT_TRUE(bridge::valid_node_name(std::string(63, 'a')));
  EXPECT_FALSE(bridge::valid_node_name(std::string(64, 'a')));
  EXPECT_FALSE(bridge::valid_node_name(""));
  EXPECT_FALSE(bridge::valid_node_name("a:b"));
  EXPECT_FALSE(bridge::valid_node_name("a b"));
  EXPECT_FALSE(bridge::valid_node_name("a\tb"));
  EXPECT_TRUE(bridge::valid_domain(std::string(31, 'd')));
  EXPECT_FALSE(bridge::valid_domain(std::string(32, 'd')));
  EXPECT_FALSE(bridge::valid_domain(""));
}

TEST(BridgeDiscovery, BadOptionsAreRefusedNamingThem) {
  auto refused = [](bridge::DiscoveryOptions o, const char* expected) {
    try {
      bridge::Discovery d(o);
      ADD_FAILURE() << "accepted; expected a refusal naming " << expected;
    } catch (const shmlink::Error& e) {
      EXPECT_EQ(e.errc(), shmlink::Errc::invalid_argument) << e.what();
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  bridge::DiscoveryOptions ok;
  ok.node = "a";
  ok.service_port = 7710;
  auto o = ok;
  o.node = "a:b";
  refused(o, "node name 'a:b'");
  o = ok;
  o.domain = "";
  refused(o, "domain ''");
  o = ok;
  o.service_port = 0;
  refused(o, "service port 0");
  o = ok;
  o.group = "10.0.0.1";
  refused(o, "group '10.0.0.1'");
  o = ok;
  o.interface_address = "eth0";
  refused(o, "interface address 'eth0'");
  o = ok;
  o.interval = 0ms;
  refused(o, "interval");
}

// ---------------------------------------------------------------- Discovery on loopback

/// Options of a test's Discovery: loopback, its own port and domain, fast beacons.
bridge::DiscoveryOptions loopback(const std::string& node, std::uint16_t service_port, std::uint16_t udp_port,
                                  const std::string& domain) {
  bridge::DiscoveryOptions o;
  o.node = node;
  o.domain = domain;
  o.service_port = service_port;
  o.discovery_port = udp_port;
  o.interface_address = "127.0.0.1";
  o.interval = 50ms;
  o.forget_after = 300ms;
  return o;
}

/// A UDP port for one test (20000..59999), and a domain no other test process uses.
std::uint16_t test_port() {
  std::random_device rd;
  return static_cast<std::uint16_t>(20000 + (rd() ^ static_cast<unsigned>(::getpid())) % 40000);
}
std::string test_domain() { return "t" + std::to_string(::getpid()); }

/// Sends `bytes` to the group on `port` over loopback, as a hostile peer would.
void send_raw(std::uint16_t port, const void* bytes, std::size_t n) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  in_addr lo{};
  ::inet_pton(AF_INET, "127.0.0.1", &lo);
  ASSERT_EQ(::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo), 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "239.255.77.11", &to.sin_addr);
  EXPECT_EQ(::sendto(fd, bytes, n, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to), static_cast<ssize_t>(n));
  ::close(fd);
}

std::optional<bridge::DiscoveredPeer> find(const bridge::Discovery& d, const std::string& node) {
  for (auto& p : d.peers())
    if (p.node == node) return p;
  return std::nullopt;
}

/// What the child process saw of the test's Discovery.
struct ChildView {
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};
  std::atomic<int> saw{0};
  std::atomic<std::uint32_t> port{0};
  std::atomic<std::uint64_t> generation{0};
  char address[32] = {};
};

/// A child process running Discovery "beta" (service port 2222) until view->stop, reporting what
/// it hears of "alpha"; exits 0 when it refused nothing.
pid_t spawn_beta(ChildView* view, std::uint16_t port, const std::string& domain) {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    bridge::Discovery d(loopback("beta", 2222, port, domain));
    view->ready = 1;
    while (view->stop == 0) {
      if (auto a = find(d, "alpha")) {
        std::strncpy(view->address, a->address.c_str(), sizeof view->address - 1);
        view->port = a->port;
        view->generation = a->catalogue_generation;
        view->saw = 1;
      }
      std::this_thread::sleep_for(2ms);
    }
    return d.refused() == 0 ? 0 : 3;
  });
}

TEST(BridgeDiscovery, TwoProcessesOnLoopbackFindEachOther) {
  const auto port = test_port();
  const auto domain = test_domain();
  Shared<ChildView> view;
  const pid_t child = spawn_beta(&*view, port, domain);
  bridge::Discovery d(loopback("alpha", 1111, port, domain));
  ASSERT_TRUE(wait_until([&] { return find(d, "beta").has_value(); }, 5)) << d.last_error();
  const auto beta = *find(d, "beta");
  EXPECT_EQ(beta.address, "127.0.0.1");
  EXPECT_EQ(beta.port, 2222);
  EXPECT_NE(beta.incarnation, 0U);
  EXPECT_NE(beta.incarnation, d.incarnation());
  EXPECT_EQ(d.peers().size(), 1U);  // never ourselves
  ASSERT_TRUE(wait_until([&] { return view->saw.load() == 1; }, 5));
  EXPECT_STREQ(view->address, "127.0.0.1");
  EXPECT_EQ(view->port.load(), 1111U);
  // A new catalogue generation reaches the peer (sent at once; the periodic beacons would too).
  d.set_catalogue_generation(7);
  EXPECT_TRUE(wait_until([&] { return view->generation.load() == 7; }, 5));
  view->stop = 1;
  EXPECT_EQ(shmlink::test::reap(child, 10), 0);
  EXPECT_EQ(d.refused(), 0U) << d.last_error();
}

TEST(BridgeDiscovery, OtherDomainsAreIgnored) {
  const auto port = test_port();
  const auto domain = test_domain();
  bridge::Discovery stranger(loopback("stranger", 3333, port, domain + "x"));
  bridge::Discovery a(loopback("a", 1111, port, domain));
  bridge::Discovery c(loopback("c", 4444, port, domain));
  ASSERT_TRUE(wait_until([&] { return find(a, "c") && find(c, "a"); }, 5)) << a.last_error();
  // The stranger started first and beacons every 50 ms: give it several periods to be (not) heard.
  std::this_thread::sleep_for(200ms);
  for (const auto* d : {&a, &c}) {
    EXPECT_FALSE(find(*d, "stranger"));
    EXPECT_EQ(d->peers().size(), 1U);
    EXPECT_EQ(d->refused(), 0U) << d->last_error();  // ignored, not refused
  }
  EXPECT_TRUE(stranger.peers().empty());
}

TEST(BridgeDiscovery, APeerThatFallsSilentIsForgottenAfterForgetAfter) {
  const auto port = test_port();
  const auto domain = test_domain();
  Shared<ChildView> view;
  const pid_t child = spawn_beta(&*view, port, domain);
  bridge::Discovery d(loopback("alpha", 1111, port, domain));
  ASSERT_TRUE(wait_until([&] { return find(d, "beta").has_value(); }, 5)) << d.last_error();
  ::kill(child, SIGKILL);  // no leaving beacon
  EXPECT_EQ(shmlink::test::reap(child, 5), -SIGKILL);
  // forget_after is 300 ms; a bounded wait, not a timing assertion.
  EXPECT_TRUE(wait_until([&] { return d.peers().empty(); }, 5));
}

TEST(BridgeDiscovery, AStoppingPeerIsForgottenAtOnceByItsLeavingBeacon) {
  const auto port = test_port();
  const auto domain = test_domain();
  auto slow = loopback("alpha", 1111, port, domain);
  slow.forget_after = 60s;  // only the leaving beacon can make it forget within the test
  bridge::Discovery d(slow);
  bridge::Discovery beta(loopback("beta", 2222, port, domain));
  ASSERT_TRUE(wait_until([&] { return find(d, "beta").has_value(); }, 5)) << d.last_error();
  beta.stop();
  beta.stop();  // idempotent
  beta.set_catalogue_generation(3);  // after stop: harmless
  EXPECT_TRUE(wait_until([&] { return d.peers().empty(); }, 5));
}

TEST(BridgeDiscovery, HostileDatagramsAreRefusedCountedAndNamed) {
  const auto port = test_port();
  const auto domain = test_domain();
  bridge::Discovery d(loopback("alpha", 1111, port, domain));
  auto b = sample_beacon();
  b.domain = domain;
  b.node = "forged";
  auto bytes = bytes_of(b);
  // A well-formed beacon from anyone is a peer: discovery only ever adds an address to try.
  send_raw(port, bytes.data(), bytes.size());
  ASSERT_TRUE(wait_until([&] { return find(d, "forged").has_value(); }, 5)) << d.last_error();
  EXPECT_EQ(find(d, "forged")->address, "127.0.0.1");
  EXPECT_EQ(find(d, "forged")->port, 7710);

  std::uint64_t expected = 0;
  auto refused_with = [&](const std::vector<std::byte>& datagram, const std::string& reason) {
    send_raw(port, datagram.data(), datagram.size());
    ++expected;
    EXPECT_TRUE(wait_until([&] { return d.refused() == expected; }, 5)) << reason << ": " << d.last_error();
    const auto e = d.last_error();
    EXPECT_NE(e.find("beacon from 127.0.0.1:"), std::string::npos) << e;
    EXPECT_NE(e.find(reason), std::string::npos) << e;
  };
  refused_with(std::vector<std::byte>(3, std::byte{0xFF}), "size is 3 bytes");
  refused_with(std::vector<std::byte>(1500, std::byte{0x41}), "size is 1500 bytes");
  auto bad = bytes;
  bad[0] = std::byte{0};
  refused_with(bad, "magic");
  bad = bytes;
  std::fill(bad.begin() + 64, bad.end(), std::byte{'x'});
  refused_with(bad, "node name is not NUL-terminated");
  bad = bytes;
  bad[5] = std::byte{0x7F};
  refused_with(bad, "version");
  // Still alive and listening: the forged peer's next beacon still updates it.
  b.catalogue_generation = 99;
  bytes = bytes_of(b);
  send_raw(port, bytes.data(), bytes.size());
  EXPECT_TRUE(wait_until([&] { auto p = find(d, "forged"); return p && p->catalogue_generation == 99; }, 5));
  EXPECT_EQ(d.refused(), expected);
}

TEST(BridgeDiscovery, AFloodOfForgedNodesIsBoundedByThePeerTable) {
  const auto port = test_port();
  const auto domain = test_domain();
  auto o = loopback("alpha", 1111, port, domain);
  o.forget_after = 60s;
  bridge::Discovery d(o);
  auto b = sample_beacon();
  b.domain = domain;
  // In batches, each waited for, so that no datagram is lost to a full socket buffer.
  std::size_t sent = 0;
  const std::size_t total = bridge::kMaxDiscoveredPeers + 3;
  while (sent < total) {
    const std::size_t batch = std::min<std::size_t>(64, total - sent);
    for (std::size_t i = 0; i < batch; ++i, ++sent) {
      b.node = "n" + std::to_string(sent);
      const auto bytes = bytes_of(b);
      send_raw(port, bytes.data(), bytes.size());
    }
    ASSERT_TRUE(wait_until([&] { return d.peers().size() + d.refused() == sent; }, 5))
        << sent << " sent, " << d.peers().size() << " peers, " << d.refused() << " refused";
  }
  EXPECT_EQ(d.peers().size(), bridge::kMaxDiscoveredPeers);
  EXPECT_EQ(d.refused(), 3U);
  EXPECT_NE(d.last_error().find("peer table is full"), std::string::npos) << d.last_error();
}

}  // namespace
