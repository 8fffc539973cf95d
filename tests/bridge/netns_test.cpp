// SPDX-License-Identifier: MIT
// The bridge between two network stacks (issue 22): two network namespaces joined by a veth pair
// (tests/common/netns.hpp) stand for two hosts on one link. Discovery finds the other side by
// multicast over the veth, and a Publisher in namespace A feeds a Replica in namespace B over TCP
// on the veth. Each "host" has its own stream directory; the test process (in the host's own
// namespace) writes the source and reads the replica as local programs would. Needs root and
// `ip netns`: skipped with the reason otherwise.
#include "bridge/discovery.hpp"

#include "netns.hpp"
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
namespace netns = shmlink::test::netns;
using shmlink::Stream;
using shmlink::test::Shared;
using shmlink::test::wait_until;

#define MAKE_PAIR_OR_SKIP(var)                 \
  std::string why_not_;                        \
  auto var = netns::make_pair(&why_not_);      \
  if (!var) GTEST_SKIP() << why_not_

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

/// 0 when a UDP socket of this namespace can bind `address` (it is one of its own), else errno.
int bind_error(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

TEST(Netns, PairGivesEachNamespaceItsAddressAndIsRemovedAfterwards) {
  // A namespace left by a process that no longer exists (a test killed by its timeout).
  const pid_t dead = shmlink::test::spawn([] { return 0; });
  ASSERT_EQ(shmlink::test::reap(dead, 5), 0);
  const std::string stale = "shl-" + std::to_string(dead) + "-a";
  if (::geteuid() == 0) netns::run_command({"ip", "netns", "add", stale});
  std::string ns_a, ns_b;
  {
    MAKE_PAIR_OR_SKIP(pair);
    EXPECT_FALSE(exists("/run/netns/" + stale)) << "the stale namespace was not removed";
    ns_a = pair->ns_a, ns_b = pair->ns_b;
    EXPECT_TRUE(exists("/run/netns/" + ns_a));
    EXPECT_TRUE(exists("/run/netns/" + ns_b));
    const auto a = pair->address_a, b = pair->address_b;
    // Each address lives in its own namespace only.
    EXPECT_EQ(netns::wait_child(netns::spawn_in(ns_a, [=] { return bind_error(a) == 0 && bind_error(b) != 0 ? 0 : 1; }),
                                5s),
              0);
    EXPECT_EQ(netns::wait_child(netns::spawn_in(ns_b, [=] { return bind_error(b) == 0 && bind_error(a) != 0 ? 0 : 1; }),
                                5s),
              0);
    EXPECT_EQ(netns::wait_child(netns::spawn_in("shl-no-such-namespace", [] { return 0; }), 5s), 96);
  }
  EXPECT_FALSE(exists("/run/netns/" + ns_a));
  EXPECT_FALSE(exists("/run/netns/" + ns_b));
}

/// What a child in a namespace reports.
struct Side {
  std::atomic<int> stop{0};
  std::atomic<int> saw{0};
  std::atomic<std::uint32_t> port{0};
  char address[32] = {};
  char last_error[256] = {};
};

/// Runs Discovery `node` in namespace `ns` until side->stop, reporting the first peer it hears.
pid_t discover_in(const std::string& ns, const std::string& node, const std::string& interface_address, Side* side) {
  return netns::spawn_in(ns, [=] {
    bridge::DiscoveryOptions o;
    o.node = node;
    o.service_port = 7710;
    o.interface_address = interface_address;  // empty: the route for 224.0.0.0/4 picks the veth
    o.interval = 50ms;
    o.forget_after = 1000ms;
    bridge::Discovery d(o);
    while (side->stop == 0) {
      const auto peers = d.peers();
      if (!peers.empty() && side->saw == 0) {
        std::strncpy(side->address, peers[0].address.c_str(), sizeof side->address - 1);
        side->port = peers[0].port;
        side->saw = 1;
      }
      std::strncpy(side->last_error, d.last_error().c_str(), sizeof side->last_error - 1);
      std::this_thread::sleep_for(2ms);
    }
    return d.refused() == 0 ? 0 : 3;  // (the other side may have left already)
  });
}

TEST(Netns, DiscoveryFindsThePeerOverTheVethByMulticast) {
  MAKE_PAIR_OR_SKIP(pair);
  Shared<Side> a, b;
  // One side names its interface, the other relies on the multicast route: both ways work.
  const pid_t pa = discover_in(pair->ns_a, "host-a", pair->address_a, &*a);
  const pid_t pb = discover_in(pair->ns_b, "host-b", "", &*b);
  const bool both = wait_until([&] { return a->saw == 1 && b->saw == 1; }, 5);
  a->stop = 1, b->stop = 1;
  EXPECT_EQ(netns::wait_child(pa, 5s), 0);
  EXPECT_EQ(netns::wait_child(pb, 5s), 0);
  ASSERT_TRUE(both) << "a: " << a->last_error << "; b: " << b->last_error;
  EXPECT_EQ(std::string(a->address), pair->address_b);
  EXPECT_EQ(std::string(b->address), pair->address_a);
  EXPECT_EQ(a->port.load(), 7710U);
}

struct Link {
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};
  char endpoint[128] = {};
  char last_error[256] = {};
};

std::vector<float> ramp(float base) {
  std::vector<float> v(32);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = base + static_cast<float>(i);
  return v;
}

std::int64_t int_keyword(const Stream& s, const char* name) {
  const auto v = s.keyword(name);
  return v && std::holds_alternative<std::int64_t>(*v) ? std::get<std::int64_t>(*v) : -1;
}

TEST(Netns, PublisherInOneNamespaceFeedsAReplicaInTheOtherOverTheVeth) {
  MAKE_PAIR_OR_SKIP(pair);
  shmlink::test::TempStreamDir dir_a, dir_b;  // one stream directory per "host"
  const bridge::LinkTiming fast{50ms, 400ms};
  Stream src = Stream::create(dir_a.path() + "/wfs.im.shm", shmlink::test::spec_of({8, 4}, shmlink::Dtype::f32));
  for (float base : {1.0F, 2.0F, 3.0F}) ASSERT_TRUE(src.write(std::span<const float>(ramp(base))).ok());

  Shared<Link> pub, rep;
  const std::string bind_to = "tcp://" + pair->address_a + ":*";
  const pid_t pp = netns::spawn_in(pair->ns_a, [&, bind_to] {
    ::setenv("SHMLINK_DIR", dir_a.path().c_str(), 1);
    bridge::PublisherOptions o;
    o.timing = fast;
    bridge::Publisher p("wfs", bind_to, o);
    std::strncpy(pub->endpoint, p.endpoint().c_str(), sizeof pub->endpoint - 1);
    pub->ready = 1;
    while (pub->stop == 0) std::this_thread::sleep_for(2ms);
    std::strncpy(pub->last_error, p.last_error().c_str(), sizeof pub->last_error - 1);
    return 0;
  });
  const bool published = wait_until([&] { return pub->ready == 1; }, 5);
  pid_t pr = -1;
  if (published) {
    const std::string endpoint = pub->endpoint;
    pr = netns::spawn_in(pair->ns_b, [&, endpoint] {
      ::setenv("SHMLINK_DIR", dir_b.path().c_str(), 1);
      bridge::ReplicaOptions o;
      o.timing = fast;
      bridge::Replica r("wfs", endpoint, o);
      rep->ready = 1;
      while (rep->stop == 0) {
        std::strncpy(rep->last_error, r.last_error().c_str(), sizeof rep->last_error - 1);
        std::this_thread::sleep_for(2ms);
      }
      return 0;
    });
  }
  // Reads the replica as a local program of host B would.
  Stream replica;
  auto replica_at = [&](std::uint64_t cnt0) {
    return wait_until(
        [&] {
          try {
            if (!replica.valid()) replica = Stream::open(dir_b.path() + "/wfs.im.shm");
            return replica.cnt0() >= cnt0;
          } catch (const shmlink::Error&) {
            return false;
          }
        },
        5);
  };
  const bool first = published && replica_at(1);
  std::vector<float> got(32);
  if (first) {
    EXPECT_TRUE(replica.read_copy(std::as_writable_bytes(std::span(got))).ok());
    EXPECT_EQ(got, ramp(3));  // latest value: the newest of the three
    EXPECT_EQ(replica.cnt0(), 1U);
    EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), 3);
    EXPECT_EQ(std::get<std::string>(replica.keyword(bridge::kKeywordOrigin).value_or(std::string())),
              pair->address_a);
    // A frame written now travels too.
    EXPECT_TRUE(src.write(std::span<const float>(ramp(100))).ok());
    EXPECT_TRUE(replica_at(2));
    EXPECT_TRUE(replica.read_copy(std::as_writable_bytes(std::span(got))).ok());
    EXPECT_EQ(got, ramp(100));
    EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), 4);
  }
  pub->stop = 1, rep->stop = 1;
  EXPECT_EQ(netns::wait_child(pp, 5s), 0);
  if (pr > 0) {
    EXPECT_EQ(netns::wait_child(pr, 5s), 0);
  }
  ASSERT_TRUE(published) << "the publisher did not bind " << bind_to;
  EXPECT_NE(std::string(pub->endpoint).find(pair->address_a), std::string::npos) << pub->endpoint;
  EXPECT_TRUE(first) << "no frame on the replica; publisher: " << pub->last_error << "; replica: " << rep->last_error;
}

}  // namespace
