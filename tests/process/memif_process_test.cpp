// SPDX-License-Identifier: MIT
// memif between processes: a shmlink master and a shmlink slave in two processes exchange
// packets (1 and 4 queues, ring sizes 2^6..2^14, 64 B to 9000 B chained packets, interrupt and
// polling modes), handshake refusals carry their reason, and a peer killed with SIGKILL is
// reported and replaced (issue 6; reference memif.md sections 6-12).
#include "test_util.hpp"

#include <shmlink/memif.hpp>

#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

namespace shmlink::test {
namespace {

using namespace std::chrono_literals;
using memif::Buffer;
using memif::Interface;
using memif::InterfaceOptions;
using memif::Role;
using memif::RxMode;
using memif::Socket;
using memif::SocketOptions;

constexpr std::uint32_t kMagic = 0x5348'4c4b;  // "SHLK"

/// Byte `i` of packet `seq` on queue `q` (bytes 0..19 are the header).
std::uint8_t pattern(std::uint16_t q, std::uint64_t seq, std::size_t i) {
  return static_cast<std::uint8_t>(seq * 31 + i * 7 + q * 13);
}

/// A test packet: magic, queue, seq, size, then the pattern.
std::vector<std::uint8_t> make_packet(std::uint16_t q, std::uint64_t seq, std::size_t size) {
  std::vector<std::uint8_t> p(size);
  const std::uint32_t qq = q, sz = static_cast<std::uint32_t>(size);
  std::memcpy(p.data(), &kMagic, 4);
  std::memcpy(p.data() + 4, &qq, 4);
  std::memcpy(p.data() + 8, &seq, 8);
  std::memcpy(p.data() + 16, &sz, 4);
  for (std::size_t i = 20; i < size; ++i) p[i] = pattern(q, seq, i);
  return p;
}

/// Sizes cycled through: one buffer, an Ethernet MTU, a jumbo frame (chained), odd sizes.
std::size_t size_of(std::uint64_t seq) {
  static constexpr std::array<std::size_t, 7> kSizes{64, 1500, 9000, 60, 2048, 2049, 4097};
  return kSizes[seq % kSizes.size()];
}

/// Sends one packet (possibly chained) on `q`; false when the ring has no room now.
bool send_packet(Interface& ifc, std::uint16_t q, const std::vector<std::uint8_t>& pkt) {
  std::array<Buffer, 64> bufs{};
  std::size_t n = 0;
  if (!ifc.alloc(q, bufs, 1, static_cast<std::uint32_t>(pkt.size()), n)) return false;
  std::size_t off = 0;
  for (std::size_t k = 0; k < n; ++k) {
    EXPECT_EQ(bufs[k].len, std::min<std::size_t>(bufs[k].capacity, pkt.size() - off));
    std::memcpy(bufs[k].data, pkt.data() + off, bufs[k].len);
    off += bufs[k].len;
  }
  EXPECT_EQ(off, pkt.size());
  std::size_t sent = 0;
  EXPECT_TRUE(ifc.tx_burst(q, std::span<const Buffer>(bufs.data(), n), sent).ok());
  EXPECT_EQ(sent, n);
  return true;
}

/// Receives whole packets from `q` into `out`; returns how many.
std::size_t receive_packets(Interface& ifc, std::uint16_t q, std::vector<std::uint8_t>& partial,
                            std::vector<std::vector<std::uint8_t>>& out) {
  std::array<Buffer, 64> bufs{};
  std::size_t n = 0, packets = 0;
  while (ifc.rx_burst(q, bufs, n).ok()) {
    for (std::size_t k = 0; k < n; ++k) {
      partial.insert(partial.end(), bufs[k].data, bufs[k].data + bufs[k].len);
      if ((bufs[k].flags & memif::kBufferNext) == 0) {
        out.push_back(std::move(partial));
        partial.clear();
        ++packets;
      }
    }
    EXPECT_TRUE(ifc.refill(q, n).ok());
  }
  return packets;
}

/// Run parameters of an exchange.
struct Params {
  Role tester = Role::slave;  // role of the side in the test process; the echo peer has the other
  std::uint8_t queues = 1;
  std::uint8_t log2 = 10;
  RxMode mode = RxMode::interrupt;
  bool separate_region = false;
  std::uint32_t buffer_size = 2048;
  std::uint64_t packets_per_queue = 300;
};

std::string name_of(const testing::TestParamInfo<Params>& info) {
  const Params& p = info.param;
  return std::string(p.tester == Role::slave ? "Slave" : "Master") + "Tests_" + std::to_string(p.queues) + "q_log2_" +
         std::to_string(p.log2) + (p.mode == RxMode::interrupt ? "_interrupt" : "_polling") +
         (p.separate_region ? "_tworegions" : "") + "_bs" + std::to_string(p.buffer_size);
}

InterfaceOptions options_for(Role role, const Params& p) {
  InterfaceOptions o;
  o.role = role;
  o.id = 3;
  o.name = role == Role::master ? "test-master" : "test-slave";
  o.secret = "s3cret";
  o.num_s2m_rings = p.queues;
  o.num_m2s_rings = p.queues;
  o.log2_ring_size = p.log2;
  o.buffer_size = p.buffer_size;
  o.separate_buffer_region = p.separate_region;
  o.rx_mode = p.mode;
  return o;
}

/// Waits for control or data work: the socket fd plus the rx eventfds in interrupt mode.
void wait_for_work(Socket& s, Interface& ifc, RxMode mode) {
  if (mode == RxMode::polling || !ifc.connected()) {
    (void)s.poll(mode == RxMode::polling ? 0ms : 5ms);
    return;
  }
  std::vector<pollfd> fds{{s.fd(), POLLIN, 0}};
  for (std::uint16_t q = 0; q < ifc.rx_queues(); ++q) fds.push_back({ifc.rx_fd(q), POLLIN, 0});
  (void)::poll(fds.data(), fds.size(), 5);
  if ((fds[0].revents & POLLIN) != 0) (void)s.poll(0ms);
}

/// The echo peer: returns every packet on the queue it came from, until killed.
int run_echo(const std::string& path, Role role, const Params& p) {
  SocketOptions so;
  so.path = path;
  so.app_name = "echo-peer";
  so.reconnect_interval = 20ms;
  Socket s(so);
  Interface& ifc = s.add_interface(options_for(role, p));
  std::vector<std::vector<std::uint8_t>> partial(p.queues);
  std::vector<std::deque<std::vector<std::uint8_t>>> pending(p.queues);
  for (;;) {
    wait_for_work(s, ifc, p.mode);
    if (p.mode == RxMode::polling) (void)s.poll(0ms);
    if (!ifc.connected()) continue;
    for (std::uint16_t q = 0; q < ifc.rx_queues(); ++q) {
      while (!pending[q].empty() && send_packet(ifc, q, pending[q].front())) pending[q].pop_front();
      if (!pending[q].empty()) continue;
      std::vector<std::vector<std::uint8_t>> got;
      receive_packets(ifc, q, partial[q], got);
      for (auto& g : got) {
        if (pending[q].empty() && send_packet(ifc, q, g)) continue;
        pending[q].push_back(std::move(g));
      }
    }
  }
}

/// Checks one echoed packet; returns "" or what is wrong.
std::string check_packet(const std::vector<std::uint8_t>& p, std::uint16_t q, std::uint64_t expect_seq) {
  if (p.size() < 20) return "short packet of " + std::to_string(p.size()) + " bytes";
  std::uint32_t magic, qq, sz;
  std::uint64_t seq;
  std::memcpy(&magic, p.data(), 4);
  std::memcpy(&qq, p.data() + 4, 4);
  std::memcpy(&seq, p.data() + 8, 8);
  std::memcpy(&sz, p.data() + 16, 4);
  if (magic != kMagic) return "bad magic";
  if (qq != q) return "packet of queue " + std::to_string(qq) + " on queue " + std::to_string(q);
  if (seq != expect_seq) return "seq " + std::to_string(seq) + ", expected " + std::to_string(expect_seq);
  if (sz != p.size() || sz != size_of(seq)) return "size " + std::to_string(p.size()) + " for seq " + std::to_string(seq);
  for (std::size_t i = 20; i < p.size(); ++i)
    if (p[i] != pattern(q, seq, i)) return "byte " + std::to_string(i) + " of seq " + std::to_string(seq) + " differs";
  return "";
}

/// The tester: sends packets_per_queue packets on every queue and checks each echo arrives
/// once, in order and intact.
void exchange(Socket& s, Interface& ifc, const Params& p) {
  ASSERT_TRUE(wait_until([&] {
    wait_for_work(s, ifc, p.mode);
    return ifc.connected();
  }, 30)) << "never connected: " << ifc.last_disconnect();
  ASSERT_EQ(ifc.tx_queues(), p.queues);
  ASSERT_EQ(ifc.rx_queues(), p.queues);
  std::vector<std::uint64_t> next_send(p.queues, 0), next_recv(p.queues, 0);
  const auto before = ifc.details();  // counters add up over connections
  std::vector<std::vector<std::uint8_t>> partial(p.queues);
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  auto done = [&] {
    for (std::uint16_t q = 0; q < p.queues; ++q)
      if (next_recv[q] < p.packets_per_queue) return false;
    return true;
  };
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "exchange stalled";
    ASSERT_TRUE(ifc.connected()) << ifc.last_disconnect();
    for (std::uint16_t q = 0; q < p.queues; ++q) {
      // keep a bounded number in flight so neither side's rings deadlock
      while (next_send[q] < p.packets_per_queue && next_send[q] - next_recv[q] < 8 &&
             send_packet(ifc, q, make_packet(q, next_send[q], size_of(next_send[q]))))
        ++next_send[q];
      std::vector<std::vector<std::uint8_t>> got;
      receive_packets(ifc, q, partial[q], got);
      for (auto& g : got) {
        ASSERT_EQ(check_packet(g, q, next_recv[q]), "") << "queue " << q;
        ++next_recv[q];
      }
    }
    wait_for_work(s, ifc, p.mode);
  }
  for (std::uint16_t q = 0; q < p.queues; ++q) {
    const auto d = ifc.details();
    EXPECT_EQ(d.rx_queues[q].counters.packets - before.rx_queues[q].counters.packets, p.packets_per_queue);
    EXPECT_EQ(d.tx_queues[q].counters.packets - before.tx_queues[q].counters.packets, p.packets_per_queue);
    EXPECT_EQ(d.rx_queues[q].counters.bad_descriptors, 0U);
  }
}

class MemifExchange : public testing::TestWithParam<Params> {};

TEST_P(MemifExchange, EveryPacketEchoedOnceInOrderAndIntact) {
  const Params p = GetParam();
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  const Role echo_role = p.tester == Role::master ? Role::slave : Role::master;
  SocketOptions so;
  so.path = path;
  so.app_name = "tester";
  so.reconnect_interval = 20ms;
  std::optional<Socket> s;
  if (p.tester == Role::master) s.emplace(so);  // listen before the echo peer connects
  Interface* ifc = p.tester == Role::master ? &s->add_interface(options_for(Role::master, p)) : nullptr;
  const pid_t echo = spawn([&] { return run_echo(path, echo_role, p); });
  if (p.tester == Role::slave) {
    s.emplace(so);
    ifc = &s->add_interface(options_for(Role::slave, p));
  }
  exchange(*s, *ifc, p);
  const auto d = ifc->details();
  EXPECT_EQ(d.peer_app, "echo-peer");
  EXPECT_EQ(d.peer_name, p.tester == Role::master ? "test-slave" : "test-master");
  EXPECT_EQ(d.regions.size(), p.separate_region ? 2U : 1U);
  if (p.tester == Role::slave) {
    EXPECT_EQ(d.tx_queues[0].ring_size, 1U << p.log2);
  }
  ::kill(echo, SIGKILL);
  EXPECT_EQ(reap(echo), -SIGKILL);
}

INSTANTIATE_TEST_SUITE_P(
    Memif, MemifExchange,
    testing::Values(Params{Role::slave, 1, 6, RxMode::interrupt, false, 2048, 300},
                    Params{Role::master, 1, 6, RxMode::polling, false, 2048, 300},
                    Params{Role::slave, 4, 10, RxMode::polling, false, 2048, 200},
                    Params{Role::master, 4, 10, RxMode::interrupt, true, 1024, 200},
                    Params{Role::slave, 1, 14, RxMode::polling, true, 2048, 300},
                    Params{Role::master, 1, 14, RxMode::interrupt, false, 9216, 300},
                    Params{Role::slave, 4, 8, RxMode::interrupt, false, 512, 100}),
    name_of);

// ---- handshake refusals ----------------------------------------------------------------------

/// Polls both sockets until `pred` or 10 s.
template <class Pred>
bool pump(Socket& a, Socket& b, Pred pred) {
  return wait_until([&] {
    (void)a.poll(0ms);
    (void)b.poll(0ms);
    return pred();
  }, 10);
}

struct Pair {
  TempStreamDir dir;
  std::string path = dir.path() + "/memif.sock";
  Socket master{make_opts("m")};
  Socket slave{make_opts("s")};
  SocketOptions make_opts(const char* app) {
    SocketOptions so;
    so.path = path;
    so.app_name = app;
    so.reconnect_interval = 50ms;
    return so;
  }
};

InterfaceOptions plain(Role r, std::uint32_t id = 0) {
  InterfaceOptions o;
  o.role = r;
  o.id = id;
  o.name = r == Role::master ? "m0" : "s0";
  return o;
}

TEST(MemifHandshake, ConnectsAndReportsPeerNames) {
  Pair p;
  auto& m = p.master.add_interface(plain(Role::master));
  auto& s = p.slave.add_interface(plain(Role::slave));
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return m.connected() && s.connected(); }));
  EXPECT_EQ(m.details().peer_name, "s0");
  EXPECT_EQ(m.details().peer_app, "s");
  EXPECT_EQ(s.details().peer_name, "m0");
  EXPECT_EQ(s.details().peer_app, "m");
}

// The longest timeouts mean "no limit": now + nanoseconds::max() used to overflow (undefined
// behaviour, reported by UBSan in the asan preset) and put the deadline in the past, so both
// waits returned timeout at once.
TEST(MemifWaits, TheLongestTimeoutsWaitForTheEventInsteadOfOverflowing) {
  Pair p;
  auto& m = p.master.add_interface(plain(Role::master));
  auto& s = p.slave.add_interface(plain(Role::slave));
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return m.connected() && s.connected(); }));
  // Queue calls on distinct queues from two threads, and nobody polls meanwhile (memif.md "Threads").
  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(send_packet(s, 0, make_packet(0, 0, 64)));
  });
  EXPECT_TRUE(m.wait_rx(0, std::chrono::nanoseconds::max()).ok());
  sender.join();
  // The slave goes away a little later (its own socket, its own thread): the master's poll
  // must wait for that event rather than return timeout at once.
  std::thread leaver([&] {
    std::this_thread::sleep_for(50ms);
    p.slave.remove_interface(s);
  });
  EXPECT_TRUE(p.master.poll(std::chrono::milliseconds::max()).ok());
  leaver.join();
}

TEST(MemifHandshake, WrongSecretIsRefusedWithTheReasonOnBothSides) {
  Pair p;
  auto mo = plain(Role::master);
  mo.secret = "right";
  auto so = plain(Role::slave);
  so.secret = "wrong";
  auto& m = p.master.add_interface(mo);
  auto& s = p.slave.add_interface(so);
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return !s.last_disconnect().empty(); }));
  EXPECT_NE(s.last_disconnect().find("Incorrect secret"), std::string::npos) << s.last_disconnect();
  EXPECT_NE(m.last_disconnect().find("Incorrect secret"), std::string::npos) << m.last_disconnect();
  EXPECT_FALSE(s.connected());
  EXPECT_FALSE(m.connected());
}

TEST(MemifHandshake, MissingSecretIsRefused) {
  Pair p;
  auto mo = plain(Role::master);
  mo.secret = "right";
  p.master.add_interface(mo);
  auto& s = p.slave.add_interface(plain(Role::slave));
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return !s.last_disconnect().empty(); }));
  EXPECT_NE(s.last_disconnect().find("Secret required"), std::string::npos) << s.last_disconnect();
}

TEST(MemifHandshake, UnknownIdIsRefused) {
  Pair p;
  p.master.add_interface(plain(Role::master, 1));
  auto& s = p.slave.add_interface(plain(Role::slave, 7));
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return !s.last_disconnect().empty(); }));
  EXPECT_NE(s.last_disconnect().find("ID not found"), std::string::npos) << s.last_disconnect();
}

TEST(MemifHandshake, MoreQueuesThanTheMasterAllowsAreRefused) {
  Pair p;
  p.master.add_interface(plain(Role::master));  // 1 ring each way
  auto so = plain(Role::slave);
  so.num_s2m_rings = 2;
  auto& s = p.slave.add_interface(so);
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return !s.last_disconnect().empty(); }));
  EXPECT_NE(s.last_disconnect().find("Invalid ring index"), std::string::npos) << s.last_disconnect();
}

TEST(MemifHandshake, ModeMismatchIsRefused) {
  Pair p;
  p.master.add_interface(plain(Role::master));
  auto so = plain(Role::slave);
  so.mode = memif::InterfaceMode::ip;
  auto& s = p.slave.add_interface(so);
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return !s.last_disconnect().empty(); }));
  EXPECT_NE(s.last_disconnect().find("Mode mismatch"), std::string::npos) << s.last_disconnect();
}

TEST(MemifHandshake, OneSocketServesInterfacesById) {
  Pair p;
  auto& m1 = p.master.add_interface(plain(Role::master, 1));
  auto& m2 = p.master.add_interface(plain(Role::master, 2));
  auto& s2 = p.slave.add_interface(plain(Role::slave, 2));
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return s2.connected() && m2.connected(); }));
  EXPECT_FALSE(m1.connected());
}

TEST(MemifHandshake, BothRolesOnOneSocketAreRejected) {
  Pair p;
  p.master.add_interface(plain(Role::master, 1));
  EXPECT_THROW(p.master.add_interface(plain(Role::slave, 2)), Error);
  EXPECT_THROW(p.master.add_interface(plain(Role::master, 1)), Error);
}

TEST(MemifHandshake, AbstractSocketWorks) {
  TempStreamDir dir;  // unique name source
  SocketOptions mo, so;
  mo.path = so.path = "@shmlink-test" + dir.path();
  so.reconnect_interval = 20ms;
  Socket ms(mo), ss(so);
  auto& m = ms.add_interface(plain(Role::master));
  auto& s = ss.add_interface(plain(Role::slave));
  ASSERT_TRUE(pump(ms, ss, [&] { return m.connected() && s.connected(); }));
}

TEST(MemifHandshake, DisconnectCarriesTheReasonToThePeer) {
  Pair p;
  auto& m = p.master.add_interface(plain(Role::master));
  std::string seen;
  auto so = plain(Role::slave);
  so.on_disconnect = [&](Interface&, std::string_view why) { seen = why; };
  auto& s = p.slave.add_interface(so);
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return m.connected() && s.connected(); }));
  m.disconnect("maintenance");
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return !seen.empty(); }));
  EXPECT_NE(seen.find("maintenance"), std::string::npos) << seen;
  // the slave reconnects on its timer
  ASSERT_TRUE(pump(p.master, p.slave, [&] { return m.connected() && s.connected(); }));
  EXPECT_EQ(s.details().connects, 2U);
}

// ---- a peer killed with SIGKILL ---------------------------------------------------------------

TEST(MemifPeerDeath, MasterSeesSlaveKilledAndAcceptsANewOne) {
  TempStreamDir dir;
  Params p;
  p.packets_per_queue = 50;
  const std::string path = dir.path() + "/memif.sock";
  SocketOptions so;
  so.path = path;
  Socket s(so);
  int downs = 0;
  auto mo = options_for(Role::master, p);
  mo.on_disconnect = [&](Interface&, std::string_view) { ++downs; };
  Interface& m = s.add_interface(mo);
  for (int round = 0; round < 2; ++round) {
    const pid_t echo = spawn([&] { return run_echo(path, Role::slave, p); });
    exchange(s, m, p);
    ::kill(echo, SIGKILL);
    EXPECT_EQ(reap(echo), -SIGKILL);
    ASSERT_TRUE(wait_until([&] {
      (void)s.poll(5ms);
      return !m.connected();
    }, 10));
    EXPECT_EQ(downs, round + 1);
    EXPECT_NE(m.last_disconnect().find("closed"), std::string::npos) << m.last_disconnect();
  }
}

TEST(MemifPeerDeath, SlaveSeesMasterKilledAndReconnectsToTheNextOne) {
  TempStreamDir dir;
  Params p;
  p.packets_per_queue = 50;
  const std::string path = dir.path() + "/memif.sock";
  SocketOptions so;
  so.path = path;
  so.reconnect_interval = 20ms;
  Socket s(so);
  int downs = 0;
  auto o = options_for(Role::slave, p);
  o.on_disconnect = [&](Interface&, std::string_view) { ++downs; };
  Interface& sl = s.add_interface(o);
  for (int round = 0; round < 2; ++round) {
    const pid_t echo = spawn([&] { return run_echo(path, Role::master, p); });
    exchange(s, sl, p);
    ::kill(echo, SIGKILL);
    EXPECT_EQ(reap(echo), -SIGKILL);
    ASSERT_TRUE(wait_until([&] {
      (void)s.poll(5ms);
      return !sl.connected();
    }, 10));
    EXPECT_EQ(downs, round + 1);
    // the dead master's socket file is stale: the next master must replace it (VPP's probe)
  }
}

}  // namespace
}  // namespace shmlink::test
