// SPDX-License-Identifier: MIT
// Attaching one side's queues to the rings of a connection (detail::attach_rings in
// src/memif/memory.hpp), the helper both roles' CONNECT steps use: both sides in one process over
// real memfds, the master's view mapped from dup'ed fds as a received region would be.
#include "memif/ring.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace shmlink::memif::detail {
namespace {

using Queues = std::vector<std::unique_ptr<RingQueue>>;

Queues make_queues(std::size_t n) {
  Queues q;
  for (std::size_t k = 0; k < n; ++k) q.push_back(std::make_unique<RingQueue>());
  return q;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

bool any_attached(const Queues& qs) {
  for (const auto& q : qs)
    if (q->attached()) return true;
  return false;
}

/// One connection's memory seen from both sides: the slave's memory as created, the master's
/// mapping of every region, and each side's list of rings (the master's with dup'ed eventfds,
/// as received with ADD_RING).
struct Sides {
  SlaveMemory mem;
  std::vector<RegionView> slave_views, master_views;
  std::vector<Segment> master_segments;
  std::vector<os::UniqueFd> master_efds;
  std::vector<ConnectionRing> slave_s2m, slave_m2s, master_s2m, master_m2s;

  explicit Sides(const SlaveLayout& layout) : mem(create_slave_memory(layout, "attach-test")) {
    slave_views = mem.views();
    for (std::size_t k = 0; k < mem.regions.size(); ++k) {
      master_segments.push_back(map_peer_region(os::UniqueFd(::dup(mem.regions[k].fd())), mem.regions[k].size(),
                                                "attach-test region " + std::to_string(k)));
      master_views.push_back({reinterpret_cast<std::uint8_t*>(master_segments.back().data()), mem.regions[k].size()});
    }
    for (std::size_t k = 0; k < mem.s2m.size(); ++k) {
      slave_s2m.push_back({mem.s2m[k], mem.s2m_eventfds[k].get()});
      master_efds.emplace_back(::dup(mem.s2m_eventfds[k].get()));
      master_s2m.push_back({mem.s2m[k], master_efds.back().get()});
    }
    for (std::size_t k = 0; k < mem.m2s.size(); ++k) {
      slave_m2s.push_back({mem.m2s[k], mem.m2s_eventfds[k].get()});
      master_efds.emplace_back(::dup(mem.m2s_eventfds[k].get()));
      master_m2s.push_back({mem.m2s[k], master_efds.back().get()});
    }
  }

  /// The rings as the slave (its own memory) or the master (its mapping) attaches them.
  ConnectionRings rings(bool slave_side) const {
    ConnectionRings r;
    r.regions = slave_side ? slave_views : master_views;
    r.s2m = slave_side ? slave_s2m : master_s2m;
    r.m2s = slave_side ? slave_m2s : master_m2s;
    r.cache_line = mem.layout.cache_line;
    r.slave_memory = slave_side ? &mem : nullptr;
    return r;
  }
  ConnectionRings slave() const { return rings(true); }
  ConnectionRings master() const { return rings(false); }
};

SlaveLayout two_s2m_one_m2s() {
  SlaveLayout l;
  l.num_s2m = 2;
  l.num_m2s = 1;
  l.log2 = 4;
  l.buffer_size = 256;
  return l;
}

/// Sends one packet of `text` on `tx`; true when it went out whole.
bool send_text(RingQueue& tx, const std::string& text) {
  Buffer b{};
  std::size_t n = 0;
  if (!tx.alloc(std::span(&b, 1), 1, static_cast<std::uint32_t>(text.size()), n).ok() || n != 1) return false;
  std::memcpy(b.data, text.data(), text.size());
  b.len = static_cast<std::uint32_t>(text.size());
  std::size_t sent = 0;
  return tx.tx_burst(std::span(&b, 1), sent).ok() && sent == 1;
}

/// The payload of the one packet waiting on `rx`, or "" when none.
std::string receive_text(RingQueue& rx) {
  Buffer b{};
  std::size_t n = 0;
  if (!rx.rx_burst(std::span(&b, 1), n).ok() || n != 1) return {};
  std::string s(reinterpret_cast<const char*>(b.data), b.len);
  EXPECT_TRUE(rx.refill(1).ok());
  return s;
}

TEST(MemifAttachRings, BothRolesAttachEachQueueToItsRingAndEventfd) {
  Sides sides(two_s2m_one_m2s());
  // Master: transmits on the one M2S ring, receives on both S2M rings; S2M 1 polls.
  Queues master_tx = make_queues(1), master_rx = make_queues(2);
  master_rx[1]->set_rx_mode(RxMode::polling);
  ASSERT_EQ(attach_rings(Role::master, sides.master(), master_tx, master_rx), "");
  // Slave: transmits on both S2M rings, receives on M2S.
  Queues slave_tx = make_queues(2), slave_rx = make_queues(1);
  ASSERT_EQ(attach_rings(Role::slave, sides.slave(), slave_tx, slave_rx), "");
  for (const Queues* qs : {&master_tx, &master_rx, &slave_tx, &slave_rx})
    for (const auto& q : *qs) EXPECT_TRUE(q->attached()) << q->fault();

  // Receive queues keep their mode: MASK_INT on S2M 1 only.
  std::uint16_t head = 0, tail = 0;
  bool mask = false;
  master_rx[1]->snapshot(head, tail, mask);
  EXPECT_TRUE(mask);
  master_rx[0]->snapshot(head, tail, mask);
  EXPECT_FALSE(mask);
  // The slave's receive ring is refilled at attach: every slot posted.
  slave_rx[0]->snapshot(head, tail, mask);
  EXPECT_EQ(head, 16);

  // Slave S2M ring k reaches master receive queue k, and interrupts on S2M k's eventfd only.
  ASSERT_TRUE(send_text(*slave_tx[0], "to master on S2M 0"));
  EXPECT_TRUE(readable(sides.mem.s2m_eventfds[0].get()));
  EXPECT_FALSE(readable(sides.mem.s2m_eventfds[1].get()));
  ASSERT_TRUE(send_text(*slave_tx[1], "to master on S2M 1"));
  EXPECT_FALSE(readable(sides.mem.s2m_eventfds[1].get()));  // polling: no interrupt
  EXPECT_EQ(receive_text(*master_rx[0]), "to master on S2M 0");
  EXPECT_EQ(receive_text(*master_rx[1]), "to master on S2M 1");
  // And the master's M2S ring reaches the slave, with its interrupt.
  ASSERT_TRUE(send_text(*master_tx[0], "to slave on M2S 0"));
  EXPECT_TRUE(readable(sides.mem.m2s_eventfds[0].get()));
  EXPECT_EQ(receive_text(*slave_rx[0]), "to slave on M2S 0");
}

TEST(MemifAttachRings, MasterRefusesAWrongCookieAndAttachesNothing) {
  Sides sides(two_s2m_one_m2s());
  // The slave (or anyone who can write its memory) spoils the cookie of M2S ring 0.
  const RingPlacement& p = sides.mem.m2s[0];
  std::memset(sides.master_views[p.region].base + p.offset, 0, sizeof wire::kCookie);
  Queues master_tx = make_queues(1), master_rx = make_queues(2);
  EXPECT_EQ(attach_rings(Role::master, sides.master(), master_tx, master_rx), "Wrong cookie on M2S ring 0");
  // The S2M rings passed, but nothing is attached unless every ring does.
  EXPECT_FALSE(any_attached(master_tx));
  EXPECT_FALSE(any_attached(master_rx));
  // The slave does not read back the cookies of memory it laid out itself.
  Queues slave_tx = make_queues(2), slave_rx = make_queues(1);
  EXPECT_EQ(attach_rings(Role::slave, sides.slave(), slave_tx, slave_rx), "");
}

TEST(MemifAttachRings, MasterRefusesARingOutsideItsRegion) {
  Sides sides(two_s2m_one_m2s());
  Queues tx = make_queues(1), rx = make_queues(2);
  // S2M ring 1 announced at the very end of region 0: the ring would run past it.
  sides.master_s2m[1].placement.offset = static_cast<std::uint32_t>(sides.master_views[0].size - 8);
  EXPECT_EQ(attach_rings(Role::master, sides.master(), tx, rx), "Wrong ring: S2M 1 does not fit in region 0");
  EXPECT_FALSE(any_attached(tx) || any_attached(rx));
  // A region the connection does not have.
  sides.master_s2m[1].placement = sides.mem.s2m[1];
  sides.master_m2s[0].placement.region = 3;
  EXPECT_EQ(attach_rings(Role::master, sides.master(), tx, rx), "Wrong ring: M2S 0 does not fit in region 3");
  EXPECT_FALSE(any_attached(tx) || any_attached(rx));
  // Put right, the same queues attach.
  sides.master_m2s[0].placement = sides.mem.m2s[0];
  EXPECT_EQ(attach_rings(Role::master, sides.master(), tx, rx), "");
  EXPECT_TRUE(tx[0]->attached() && rx[0]->attached() && rx[1]->attached());
}

TEST(MemifAttachRings, MoreRingsThanQueuesIsRefused) {
  Sides sides(two_s2m_one_m2s());
  Queues tx = make_queues(1), rx = make_queues(1);  // the master receives on two S2M rings
  const std::string why = attach_rings(Role::master, sides.master(), tx, rx);
  EXPECT_EQ(why.rfind("internal: ", 0), 0u) << why;
  EXPECT_FALSE(any_attached(tx) || any_attached(rx));
}

TEST(MemifAttachRings, TheRoleDecidesAndSlaveMemoryMustAgreeWithIt) {
  Sides sides(two_s2m_one_m2s());
  // A spoiled cookie that only a master checks.
  const RingPlacement& p = sides.mem.m2s[0];
  std::memset(sides.master_views[p.region].base + p.offset, 0, sizeof wire::kCookie);
  Queues tx = make_queues(2), rx = make_queues(2);
  // A master handed slave memory must not take the slave's path (and skip the cookie check).
  std::string why = attach_rings(Role::master, sides.slave(), tx, rx);
  EXPECT_EQ(why.rfind("internal: ", 0), 0u) << why;
  EXPECT_FALSE(any_attached(tx) || any_attached(rx));
  // A slave without its memory cannot attach either.
  why = attach_rings(Role::slave, sides.master(), tx, rx);
  EXPECT_EQ(why.rfind("internal: ", 0), 0u) << why;
  EXPECT_FALSE(any_attached(tx) || any_attached(rx));
}

}  // namespace
}  // namespace shmlink::memif::detail
