// SPDX-License-Identifier: MIT
// A malicious memif slave (a raw program of ours speaking the control protocol by hand) posts
// descriptors outside its region, zero lengths and huge head jumps. The shmlink master counts and
// drops them, keeps running, delivers the good packets around them and disconnects the peer with
// the reason (issue 6; reference memif.md sections 10, 11, 19). Raw peers of protocol 1.0, a slave
// and a master, are refused with "Incompatible memif version", visible on both sides.
//
// Hostile peers (issue 17, items 1-4): a slave whose region is not sealed and shrinks after the
// handshake (refused up front, or SIGBUS), blocking eventfds whose O_NONBLOCK the peer clears
// and whose counter it fills (the master must not freeze), handshakes that stall after INIT or
// before it (cut at the deadline, the id freed), and a connection flood past RLIMIT_NOFILE (the
// master backs off, logs a few lines, and its connected interface keeps passing packets).
// Follow-ups: handshakes that trickle valid messages just inside each stage's deadline (cut at
// twice the timeout, both roles), a pipe passed as an interrupt fd (refused), and an fd that
// cannot be made non-blocking (refused, naming what failed), and a ring cookie spoiled between
// ADD_RING and CONNECT (refused at CONNECT with "Wrong cookie", issue 20).
#include "memif/control.hpp"
#include "memif/ring.hpp"
#include "memif/wire.hpp"
#include "test_util.hpp"

#include <shmlink/log.hpp>
#include <shmlink/memif.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <chrono>
#include <string>
#include <vector>

namespace shmlink::test {
namespace {

using namespace std::chrono_literals;
namespace mw = memif::wire;

/// What the malicious child reports back.
struct Report {
  std::atomic<int> stage{0};  // 1 connected, 2 descriptors posted, 3 DISCONNECT received
  char reason[128]{};
  char reason2[128]{};           // a second connection's DISCONNECT reason
  std::atomic<int> packets{0};   // packets the master received
  std::atomic<int> log_lines{0}; // accept errors logged
  std::atomic<int> polls{0};     // Socket::poll calls that returned ok (something happened)
};

/// Receives one message, blocking; false on anything unexpected.
bool expect(int fd, mw::MsgType type, mw::Message& m) {
  memif::UniqueFd extra;
  auto r = memif::receive_message(fd, m, extra);
  return r.ok() && mw::message_type(m) == type;
}

enum class Attack { bad_descriptors, head_jump };

/// Connects a raw slave to `path` (retrying while the master is not up yet) and reads its
/// HELLO. Empty on failure.
memif::UniqueFd raw_connect(const std::string& path) {
  auto addr = memif::parse_socket_name(path);
  memif::ConnectResult c;
  for (int i = 0; i < 500 && !c; ++i) {
    c = memif::connect_seqpacket(addr);
    if (!c) ::usleep(10000);
  }
  mw::Message m;
  if (!c || !expect(c.fd.get(), mw::MsgType::hello, m)) return {};
  return std::move(c.fd);
}

/// What a raw slave sends in its handshake; -1 = the fd of `mem` (its sealed memfd, its
/// non-blocking eventfds).
struct RawFds {
  int region = -1;
  int s2m_eventfd = -1;
  int m2s_eventfd = -1;
};

/// The master's answer to an announcement: 0 for ACK (`want`: CONNECTED for CONNECT), 13 for
/// DISCONNECT (its reason in `refusal`), `failed` otherwise.
int ack_or_refusal(int fd, std::string* refusal, int failed, mw::MsgType want = mw::MsgType::ack) {
  mw::Message m;
  memif::UniqueFd extra;
  if (!memif::receive_message(fd, m, extra).ok()) return failed;
  if (mw::message_type(m) == mw::MsgType::disconnect) {
    if (refusal != nullptr) *refusal = mw::decode_disconnect(m).reason;
    return 13;
  }
  return mw::message_type(m) == want ? 0 : failed;
}

/// The slave's part of the handshake after HELLO, by hand: INIT (id 0), ADD_REGION 0, ADD_RING
/// S2M 0 and M2S 0, CONNECT, each acked, then CONNECTED. `before_connect`, if any, runs just
/// before CONNECT (to spoil the memory). Returns 0 when connected; 13 when the master answered
/// ADD_REGION, an ADD_RING or CONNECT with DISCONNECT (its reason in `refusal`); another code
/// >= 12 naming the step that failed otherwise.
int raw_handshake(int fd, const memif::detail::SlaveMemory& mem, RawFds fds, std::string* refusal = nullptr,
                  const std::function<void()>& before_connect = {}) {
  mw::Message m;
  mw::InitInfo init;
  init.name = "malicious";
  if (!memif::send_message(fd, mw::encode_init(init))) return 12;
  if (!expect(fd, mw::MsgType::ack, m)) return 14;
  const int region_fd = fds.region >= 0 ? fds.region : mem.regions[0].fd();
  if (!memif::send_message(fd, mw::encode_add_region({0, mem.regions[0].size()}), region_fd)) return 15;
  if (const int rc = ack_or_refusal(fd, refusal, 17); rc != 0) return rc;
  mw::AddRingInfo r;
  r.type = mw::RingType::s2m;
  r.region = mem.s2m[0].region;
  r.offset = mem.s2m[0].offset;
  r.log2_ring_size = mem.s2m[0].log2;
  const int s2m_fd = fds.s2m_eventfd >= 0 ? fds.s2m_eventfd : mem.s2m_eventfds[0].get();
  if (!memif::send_message(fd, mw::encode_add_ring(r), s2m_fd)) return 18;
  if (const int rc = ack_or_refusal(fd, refusal, 19); rc != 0) return rc;
  r.type = mw::RingType::m2s;
  r.offset = mem.m2s[0].offset;
  const int m2s_fd = fds.m2s_eventfd >= 0 ? fds.m2s_eventfd : mem.m2s_eventfds[0].get();
  if (!memif::send_message(fd, mw::encode_add_ring(r), m2s_fd)) return 20;
  if (const int rc = ack_or_refusal(fd, refusal, 21); rc != 0) return rc;
  if (before_connect) before_connect();
  if (!memif::send_message(fd, mw::encode_connect("evil0"))) return 22;
  return ack_or_refusal(fd, refusal, 23, mw::MsgType::connected);
}

/// The memory of a raw slave: one region, one ring each way of 64 slots.
memif::detail::SlaveMemory raw_memory() {
  memif::detail::SlaveLayout lay;
  lay.log2 = 6;
  return memif::detail::create_slave_memory(lay, "malicious");
}

/// The u16 of a ring header at byte `offset` (6 = head, 64 = tail for cache line 64, 4 = flags).
std::atomic_ref<std::uint16_t> ring_u16(std::uint8_t* ring, std::size_t offset) {
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring + offset));
}

/// Writes the DISCONNECT reason the master sends next into `rep` (stage 3); false if none came.
bool await_disconnect(int fd, Report* rep) {
  mw::Message m;
  if (!expect(fd, mw::MsgType::disconnect, m)) return false;
  std::strncpy(rep->reason, mw::decode_disconnect(m).reason.c_str(), sizeof rep->reason - 1);
  rep->stage = 3;
  return true;
}

/// The malicious slave: a correct handshake, then lies in the S2M ring.
int malicious_slave(const std::string& path, Attack attack, Report* rep) {
  auto conn = raw_connect(path);
  if (!conn) return 10;
  const int fd = conn.get();
  auto mem = raw_memory();
  if (const int rc = raw_handshake(fd, mem, {}); rc != 0) return rc;
  rep->stage = 1;

  auto views = mem.views();
  std::uint8_t* ring = memif::detail::locate_ring(views[0], mem.s2m[0].offset, 6, 64);
  auto* desc = reinterpret_cast<mw::Descriptor*>(ring + mw::ring_desc_offset(64));
  auto good = [&](std::uint16_t slot, const char* text) {
    const auto off = mem.buffer_offset(true, 0, slot);
    std::memcpy(views[0].base + off, text, std::strlen(text));
    desc[slot] = mw::Descriptor{0, 0, static_cast<std::uint32_t>(std::strlen(text)), static_cast<std::uint32_t>(off), 0};
  };
  std::uint16_t head = 0;
  if (attack == Attack::bad_descriptors) {
    good(0, "good-1");
    desc[1] = mw::Descriptor{0, 9, 64, 0, 0};                                                  // no region 9
    desc[2] = mw::Descriptor{0, 0, 4096, static_cast<std::uint32_t>(views[0].size - 100), 0};  // past the end
    desc[3] = mw::Descriptor{0, 0, 0, static_cast<std::uint32_t>(mem.buffer_offset(true, 0, 3)), 0};  // length 0
    desc[4] = mw::Descriptor{0, 0, 0xFFFFFFF0u, 0xFFFFFFF0u, 0};                               // wraps 32 bits
    good(5, "good-2");
    head = 6;
  } else {
    good(0, "good-1");
    head = 40000;  // far beyond a 64-slot ring
  }
  ring_u16(ring, 6).store(head, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!::write(mem.s2m_eventfds[0].get(), &one, sizeof one);
  rep->stage = 2;
  return await_disconnect(fd, rep) ? 0 : 30;
}

/// The target of an attack: a master interface on a fresh socket in a temporary directory.
struct Victim {
  explicit Victim(const char* name = "victim", std::chrono::milliseconds handshake_timeout = 5s,
                  bool allow_unsealed = false)
      : path(dir.path() + "/memif.sock"), s(socket_options(path, handshake_timeout)),
        m(s.add_interface(interface_options(name, allow_unsealed))) {}

  static memif::SocketOptions socket_options(const std::string& path, std::chrono::milliseconds handshake_timeout) {
    memif::SocketOptions so;
    so.path = path;
    so.handshake_timeout = handshake_timeout;
    return so;
  }
  static memif::InterfaceOptions interface_options(const char* name, bool allow_unsealed) {
    memif::InterfaceOptions o;
    o.role = memif::Role::master;
    o.name = name;
    o.allow_unsealed_regions = allow_unsealed;
    return o;
  }

  /// Polls the master until the attacker's report reaches `stage`; false after 10 s.
  bool poll_until(const Report& rep, int stage) {
    return wait_until([&] {
      (void)s.poll(2ms);
      return rep.stage.load() == stage;
    }, 10);
  }

  /// True when a well-behaved slave (another socket in this process) connects to the master
  /// within 10 s; it is closed again on return.
  bool honest_slave_connects() {
    memif::SocketOptions so;
    so.path = path;
    memif::Socket s2(so);
    memif::InterfaceOptions o;
    o.name = "honest";
    auto& sl = s2.add_interface(o);
    return wait_until([&] {
      (void)s.poll(0ms);
      (void)s2.poll(1ms);
      return sl.connected() && m.connected();
    }, 10);
  }

  TempStreamDir dir;
  std::string path;
  memif::Socket s;
  memif::Interface& m;
};

/// A slave interface on a fresh socket whose master is the test itself (a raw listener): one
/// connect attempt, no reconnect in between.
struct SlaveVictim {
  explicit SlaveVictim(const char* name, std::chrono::milliseconds handshake_timeout = 5s)
      : path(dir.path() + "/memif.sock"), listener(memif::listen_seqpacket(memif::parse_socket_name(path))),
        s(socket_options(path, handshake_timeout)), sl(s.add_interface(interface_options(name))) {}

  static memif::SocketOptions socket_options(const std::string& path, std::chrono::milliseconds handshake_timeout) {
    memif::SocketOptions so;
    so.path = path;
    so.reconnect_interval = std::chrono::milliseconds(0);
    so.handshake_timeout = handshake_timeout;
    return so;
  }
  static memif::InterfaceOptions interface_options(const char* name) {
    memif::InterfaceOptions o;
    o.name = name;
    return o;
  }
  /// Accepts the slave's connection into `conn` (blocking socket); false after 10 s.
  bool accepted() {
    return wait_until([&] {
      (void)s.poll(1ms);
      return listener.accept(conn, false).ok();
    }, 10);
  }

  TempStreamDir dir;
  std::string path;
  memif::SeqpacketListener listener;
  memif::Socket s;
  memif::Interface& sl;
  memif::UniqueFd conn;
};

class MemifMalicious : public testing::TestWithParam<Attack> {};

TEST_P(MemifMalicious, MasterCountsDropsAndDisconnectsTheLiar) {
  Victim v;
  const std::string& path = v.path;
  auto& s = v.s;
  auto& m = v.m;
  Shared<Report> rep;
  const Attack attack = GetParam();
  const pid_t child = spawn([&] { return malicious_slave(path, attack, &*rep); });

  std::vector<std::string> got;
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(2ms);
    if (m.connected()) {
      std::array<memif::Buffer, 16> bufs{};
      std::size_t n = 0;
      while (m.rx_burst(0, bufs, n).ok()) {
        for (std::size_t k = 0; k < n; ++k) got.emplace_back(reinterpret_cast<char*>(bufs[k].data), bufs[k].len);
        EXPECT_TRUE(m.refill(0, n).ok());
      }
    }
    return rep->stage.load() == 3;
  }, 20)) << "stage " << rep->stage.load() << ", last disconnect: " << m.last_disconnect();
  EXPECT_EQ(reap(child), 0);
  EXPECT_FALSE(m.connected());
  EXPECT_NE(m.last_disconnect().find("bad descriptor"), std::string::npos) << m.last_disconnect();
  EXPECT_NE(std::string(rep->reason).find("bad descriptor"), std::string::npos) << rep->reason;
  const auto d = m.details();
  ASSERT_EQ(d.rx_queues.size(), 1U);
  const auto& cnt = d.rx_queues[0].counters;
  if (attack == Attack::bad_descriptors) {
    EXPECT_EQ(got, (std::vector<std::string>{"good-1", "good-2"}));
    EXPECT_EQ(cnt.bad_descriptors, 4U);
    EXPECT_EQ(cnt.dropped_packets, 4U);
    EXPECT_EQ(cnt.packets, 2U);
  } else {
    EXPECT_GE(cnt.clamped_jumps, 1U);
  }
  // the master keeps serving: a well-behaved slave connects afterwards
  EXPECT_TRUE(v.honest_slave_connects()) << m.last_disconnect();
}

INSTANTIATE_TEST_SUITE_P(Memif, MemifMalicious, testing::Values(Attack::bad_descriptors, Attack::head_jump),
                         [](const testing::TestParamInfo<Attack>& i) {
                           return i.param == Attack::bad_descriptors ? "BadDescriptors" : "HeadJump";
                         });

// ---- protocol version (issue 6: "Handshake failures ... wrong version") -------------------------

/// A raw slave of protocol 1.0: HELLO, then INIT with version 0x0100 for interface `id`; reports
/// the master's DISCONNECT reason.
int old_version_slave(const std::string& path, std::uint32_t id, Report* rep) {
  auto conn = raw_connect(path);
  if (!conn) return 10;
  mw::InitInfo init;
  init.version = 0x0100;
  init.id = id;
  init.name = "old-slave";
  if (!memif::send_message(conn.get(), mw::encode_init(init))) return 12;
  return await_disconnect(conn.get(), rep) ? 0 : 13;
}

TEST(MemifVersion, MasterRefusesASlaveOfAnotherVersionWithTheReason) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  memif::SocketOptions so;
  so.path = path;
  memif::Socket s(so);
  memif::InterfaceOptions o;
  o.role = memif::Role::master;
  o.id = 7;
  o.name = "v2-master";
  auto& m = s.add_interface(o);
  Shared<Report> rep;
  const pid_t child = spawn([&] { return old_version_slave(path, 7, &*rep); });
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(2ms);
    return rep->stage.load() == 3;
  }, 20)) << "last disconnect: " << m.last_disconnect();
  EXPECT_EQ(reap(child), 0);
  EXPECT_STREQ(rep->reason, "Incompatible memif version");  // DPDK's wording (section 7)
  EXPECT_FALSE(m.connected());
  EXPECT_EQ(m.last_disconnect(), "refused slave 'old-slave': incompatible memif version 1.0");
}

TEST(MemifVersion, SlaveRefusesAMasterOfAnotherVersionWithTheReason) {
  // A raw master of protocol 1.0 only: accepts, sends HELLO, reads the slave's answer.
  SlaveVictim v("v2-slave");
  auto& s = v.s;
  auto& sl = v.sl;
  auto& conn = v.conn;
  ASSERT_TRUE(v.accepted());
  mw::HelloInfo h;
  h.name = "old-master";
  h.min_version = 0x0100;
  h.max_version = 0x0100;
  ASSERT_TRUE(memif::send_message(conn.get(), mw::encode_hello(h)).ok());
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(2ms);
    return !sl.last_disconnect().empty();
  }, 10));
  EXPECT_FALSE(sl.connected());
  EXPECT_EQ(sl.last_disconnect(), "Incompatible memif version: master speaks 1.0..1.0, we speak 2.0");
  mw::Message m;
  ASSERT_TRUE(expect(conn.get(), mw::MsgType::disconnect, m));
  EXPECT_EQ(mw::decode_disconnect(m).reason, sl.last_disconnect());
}

// ---- hostile peers (issue 17) ------------------------------------------------------------------

/// A copy of region 0 of `mem` in a memfd nobody sealed (no MFD_ALLOW_SEALING).
memif::UniqueFd unsealed_copy(const memif::detail::SlaveMemory& mem) {
  memif::UniqueFd fd(::memfd_create("unsealed", MFD_CLOEXEC));
  const auto size = static_cast<std::size_t>(mem.regions[0].size());
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return {};
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return {};
  std::memcpy(p, mem.regions[0].data(), size);
  ::munmap(p, size);
  return fd;
}

/// Issue 17 item 1: a slave whose region is an unsealed memfd. If the master accepts it
/// (stage 1), the slave posts one packet, then, when `shrink`, truncates the region to 0 bytes
/// and rings the interrupt (stage 2): a master that touches the ring then dies of SIGBUS. A
/// master that refuses the region leaves its reason in `rep` (stage 3).
int shrinking_slave(const std::string& path, bool shrink, Report* rep) {
  auto conn = raw_connect(path);
  if (!conn) return 10;
  auto mem = raw_memory();
  auto region = unsealed_copy(mem);
  if (!region) return 11;
  std::string refusal;
  const int rc = raw_handshake(conn.get(), mem, {region.get(), -1, -1}, &refusal);
  if (rc == 13) {
    std::strncpy(rep->reason, refusal.c_str(), sizeof rep->reason - 1);
    rep->stage = 3;
    return 0;
  }
  if (rc != 0) return rc;
  rep->stage = 1;
  if (shrink) {
    const auto size = static_cast<std::size_t>(mem.regions[0].size());
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, region.get(), 0);
    if (p == MAP_FAILED) return 31;
    // Descriptor 0 holds a whole buffer since init: head = 1 posts it.
    ring_u16(static_cast<std::uint8_t*>(p) + mem.s2m[0].offset, 6).store(1, std::memory_order_release);
    ::munmap(p, size);
    if (::ftruncate(region.get(), 0) != 0) return 32;
    const std::uint64_t one = 1;
    (void)!::write(mem.s2m_eventfds[0].get(), &one, sizeof one);
    rep->stage = 2;
  }
  return await_disconnect(conn.get(), rep) ? 0 : 30;
}

/// A master on `path` with default options but `allow_unsealed`, receiving on queue 0 while it
/// polls; returns when `done` or after 20 s.
template <class Done>
bool run_master(memif::Socket& s, memif::Interface& m, Done done) {
  return wait_until([&] {
    (void)s.poll(2ms);
    if (m.connected()) {
      std::array<memif::Buffer, 16> bufs{};
      std::size_t n = 0;
      while (m.rx_burst(0, bufs, n).ok()) EXPECT_TRUE(m.refill(0, n).ok());
    }
    return done();
  }, 20);
}

TEST(MemifHostile, MasterRefusesARegionNotSealedAgainstShrinking) {
  Victim v;
  const std::string& path = v.path;
  auto& s = v.s;
  auto& m = v.m;
  Shared<Report> rep;
  const pid_t child = spawn([&] { return shrinking_slave(path, true, &*rep); });
  // Without the seal check the master maps the region, the slave shrinks it, and the receive
  // below dies of SIGBUS.
  ASSERT_TRUE(run_master(s, m, [&] { return rep->stage.load() == 3; })) << "stage " << rep->stage.load();
  EXPECT_EQ(reap(child), 0);
  EXPECT_EQ(std::string(rep->reason),
            "region 0 is not sealed against shrinking: refused; zero-copy peer? see allow_unsealed_regions");
  EXPECT_FALSE(m.connected());
  EXPECT_NE(m.last_disconnect().find("not sealed against shrinking"), std::string::npos) << m.last_disconnect();
  EXPECT_EQ(m.details().connects, 0U);
}

TEST(MemifHostile, MasterAcceptsAnUnsealedRegionOnlyWhenAllowed) {
  Victim v("trusting", 5s, true);  // allow_unsealed_regions: a zero-copy peer's hugepages cannot be sealed
  const std::string& path = v.path;
  auto& s = v.s;
  auto& m = v.m;
  Shared<Report> rep;
  const pid_t child = spawn([&] { return shrinking_slave(path, false, &*rep); });
  ASSERT_TRUE(run_master(s, m, [&] { return m.connected(); })) << m.last_disconnect();
  m.disconnect("done");
  EXPECT_EQ(reap(child), 0);
  EXPECT_STREQ(rep->reason, "done");
}

/// Issue 17 item 2, the master's side: a master on `path` that receives one packet, sends one,
/// then receives (nothing) 50 more times, in at most 20 000 rounds. Exit 0 when it did all that
/// (so it never blocked), 40 otherwise. Runs in a child: a blocked master is killed by reap().
int counting_master(const std::string& path) {
  memif::SocketOptions so;
  so.path = path;
  so.publish_status = false;
  memif::Socket s(so);
  memif::InterfaceOptions o;
  o.role = memif::Role::master;
  o.name = "victim";
  auto& m = s.add_interface(o);
  std::size_t got = 0;
  int sent = 0, empty_after = 0;
  for (int k = 0; k < 20000 && !(got >= 1 && sent >= 1 && empty_after >= 50); ++k) {
    (void)s.poll(1ms);
    if (!m.connected()) continue;
    std::array<memif::Buffer, 8> bufs{};
    std::size_t n = 0;
    if (m.rx_burst(0, bufs, n).ok()) {
      got += n;
      (void)m.refill(0, n);
    } else if (got >= 1) {
      ++empty_after;
    }
    if (sent == 0 && m.alloc(0, bufs, 1, 60, n).ok() && n == 1) {
      bufs[0].len = 60;
      std::size_t out = 0;
      if (m.tx_burst(0, std::span<const memif::Buffer>(bufs.data(), 1), out).ok() && out == 1) sent = 1;
    }
  }
  return got >= 1 && sent >= 1 && empty_after >= 50 ? 0 : 40;
}

TEST(MemifHostile, MasterNeverBlocksOnThePeersEventfds) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  const pid_t child = spawn([&] { return counting_master(path); });
  // This test is the hostile slave: plain blocking eventfds (no EFD_NONBLOCK) for both rings.
  auto conn = raw_connect(path);
  ASSERT_TRUE(conn);
  auto mem = raw_memory();
  memif::UniqueFd s2m_efd(::eventfd(0, EFD_CLOEXEC)), m2s_efd(::eventfd(0, EFD_CLOEXEC));
  ASSERT_EQ(raw_handshake(conn.get(), mem, {-1, s2m_efd.get(), m2s_efd.get()}), 0);
  // The master made them non-blocking when it received them; the open file description is
  // shared, so we see it, and undo it, as a hostile peer would.
  EXPECT_NE(::fcntl(s2m_efd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(m2s_efd.get(), F_GETFL) & O_NONBLOCK, 0);
  ASSERT_EQ(::fcntl(s2m_efd.get(), F_SETFL, 0), 0);
  ASSERT_EQ(::fcntl(m2s_efd.get(), F_SETFL, 0), 0);
  // M2S: the counter at its maximum (any write of 1 would block), then every slot posted.
  const std::uint64_t most = 0xfffffffffffffffeULL, one = 1;
  ASSERT_EQ(::write(m2s_efd.get(), &most, sizeof most), static_cast<ssize_t>(sizeof most));
  auto views = mem.views();
  ring_u16(views[0].base + mem.m2s[0].offset, 6).store(64, std::memory_order_release);
  // S2M: one packet (descriptor 0 holds a whole buffer since init) and its interrupt; once the
  // master drained it, a blocking read of the eventfd would wait for ever.
  ring_u16(views[0].base + mem.s2m[0].offset, 6).store(1, std::memory_order_release);
  ASSERT_EQ(::write(s2m_efd.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  EXPECT_EQ(reap(child, 20), 0) << "-1000: the master hung on a read or write of our eventfds";
}

/// Issue 17 item 3: two clients that stall the master's handshake: one sends INIT and then
/// nothing, one sends nothing at all. Their DISCONNECT reasons land in `rep` (stage 3).
int stalling_clients(const std::string& path, Report* rep) {
  auto a = raw_connect(path);
  if (!a) return 10;
  mw::InitInfo init;
  init.name = "staller";
  if (!memif::send_message(a.get(), mw::encode_init(init))) return 11;
  auto b = raw_connect(path);
  if (!b) return 12;
  rep->stage = 1;
  mw::Message m;
  if (!expect(a.get(), mw::MsgType::ack, m)) return 13;
  if (!await_disconnect(a.get(), rep)) return 14;
  if (!expect(b.get(), mw::MsgType::disconnect, m)) return 15;
  std::strncpy(rep->reason2, mw::decode_disconnect(m).reason.c_str(), sizeof rep->reason2 - 1);
  rep->stage = 4;
  return 0;
}

TEST(MemifHostile, MasterDisconnectsAStalledHandshakeAndFreesTheId) {
  Victim v("victim", 300ms);
  const std::string& path = v.path;
  auto& s = v.s;
  auto& m = v.m;
  Shared<Report> rep;
  const pid_t child = spawn([&] { return stalling_clients(path, &*rep); });
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(2ms);
    return rep->stage.load() == 4;
  }, 10)) << "stage " << rep->stage.load() << ", last disconnect: " << m.last_disconnect();
  EXPECT_EQ(reap(child), 0);
  EXPECT_STREQ(rep->reason, "handshake timed out: no ADD_REGION, ADD_RING or CONNECT within 300 ms");
  EXPECT_STREQ(rep->reason2, "handshake timed out: no INIT within 300 ms");
  EXPECT_EQ(m.last_disconnect(), "handshake timed out: no ADD_REGION, ADD_RING or CONNECT within 300 ms");
  // id 0 is free again: a real slave connects ("Already connected" without the deadline)
  EXPECT_TRUE(v.honest_slave_connects()) << m.last_disconnect();
}

TEST(MemifHostile, SlaveDisconnectsAMasterThatNeverSaysHello) {
  SlaveVictim v("patient", 200ms);
  auto& s = v.s;
  auto& sl = v.sl;
  auto& conn = v.conn;
  ASSERT_TRUE(v.accepted());
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(2ms);
    return !sl.last_disconnect().empty();
  }, 10));
  EXPECT_EQ(sl.last_disconnect(), "handshake timed out: no HELLO within 200 ms");
  mw::Message m;
  ASSERT_TRUE(expect(conn.get(), mw::MsgType::disconnect, m));
  EXPECT_EQ(mw::decode_disconnect(m).reason, sl.last_disconnect());
}

/// Issue 17 follow-up: a slave that sends one valid message every 100 ms, each well inside the
/// master's per-stage deadline: INIT, then ADD_REGION 0, 1, 2, ... (the same sealed region) up
/// to 16 of them. Counts the ACKs (in `packets`) and stores the DISCONNECT reason (stage 3).
int trickling_slave(const std::string& path, Report* rep) {
  auto conn = raw_connect(path);
  if (!conn) return 10;
  const int fd = conn.get();
  auto mem = raw_memory();
  mw::Message m;
  mw::InitInfo init;
  init.name = "trickler";
  if (!memif::send_message(fd, mw::encode_init(init))) return 11;
  if (!expect(fd, mw::MsgType::ack, m)) return 12;
  for (std::uint16_t k = 0; k < 16; ++k) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 0) break;  // the master spoke first: its DISCONNECT
    if (!memif::send_message(fd, mw::encode_add_region({k, mem.regions[0].size()}), mem.regions[0].fd())) return 13;
    std::string refusal;
    const int rc = ack_or_refusal(fd, &refusal, 14);
    if (rc == 13) {
      std::strncpy(rep->reason, refusal.c_str(), sizeof rep->reason - 1);
      rep->stage = 3;
      return 0;
    }
    if (rc != 0) return rc;
    rep->packets.fetch_add(1);
  }
  return await_disconnect(fd, rep) ? 0 : 15;
}

TEST(MemifHostile, MasterCutsAHandshakeThatTricklesPastTwiceTheTimeout) {
  Victim v("victim", 400ms);
  auto& m = v.m;
  Shared<Report> rep;
  const pid_t child = spawn([&] { return trickling_slave(v.path, &*rep); });
  ASSERT_TRUE(v.poll_until(*rep, 3)) << "stage " << rep->stage.load() << ", last disconnect: " << m.last_disconnect();
  EXPECT_EQ(reap(child), 0);
  // Without the cap every ADD_REGION is acked (each came within 400 ms of the last), and the
  // slave is cut only when it stops: "no ADD_REGION, ADD_RING or CONNECT within 400 ms".
  EXPECT_STREQ(rep->reason, "handshake timed out: not complete within 800 ms");
  EXPECT_LT(rep->packets.load(), 16);
  EXPECT_EQ(m.last_disconnect(), "handshake timed out: not complete within 800 ms");
  EXPECT_TRUE(v.honest_slave_connects()) << m.last_disconnect();
}

TEST(MemifHostile, SlaveCutsAMasterThatAcksTooSlowlyOverall) {
  SlaveVictim v("patient", 500ms);
  ASSERT_TRUE(v.accepted());
  mw::HelloInfo h;
  h.name = "slowpoke";
  ASSERT_TRUE(memif::send_message(v.conn.get(), mw::encode_hello(h)));
  // The test is the master: it answers INIT, ADD_REGION, ADD_RING x2 and CONNECT 300 ms after
  // each (inside the slave's 500 ms per-stage deadline), CONNECTED after 1.5 s in all.
  using Clock = std::chrono::steady_clock;
  auto due = Clock::time_point::max();
  bool connect_seen = false;
  ASSERT_TRUE(wait_until([&] {
    (void)v.s.poll(2ms);
    pollfd p{v.conn.get(), POLLIN, 0};
    if (due == Clock::time_point::max() && ::poll(&p, 1, 0) == 1) {
      mw::Message msg;
      memif::UniqueFd extra;
      if (!memif::receive_message(v.conn.get(), msg, extra).ok()) return true;  // closed
      if (mw::message_type(msg) == mw::MsgType::disconnect) return true;
      connect_seen = mw::message_type(msg) == mw::MsgType::connect;
      due = Clock::now() + 300ms;
    }
    if (Clock::now() >= due) {
      (void)memif::send_message(v.conn.get(), connect_seen ? mw::encode_connected("slowpoke0") : mw::encode_ack());
      due = Clock::time_point::max();
    }
    return v.sl.connected() || !v.sl.last_disconnect().empty();
  }, 10));
  EXPECT_FALSE(v.sl.connected());
  // Without the cap the slave connects after 1.5 s.
  EXPECT_EQ(v.sl.last_disconnect(), "handshake timed out: not complete within 1000 ms");
}

/// A raw slave (a child) handshakes with `v`'s master passing `fds` (made before the fork, so
/// the child inherits them), calling `spoil` on its memory before CONNECT if given; returns the
/// master's DISCONNECT reason, or "" when it connected.
std::string raw_slave_refusal(Victim& v, RawFds fds,
                              const std::function<void(const memif::detail::SlaveMemory&)>& spoil = {}) {
  Shared<Report> rep;
  const pid_t child = spawn([&] {
    auto conn = raw_connect(v.path);
    if (!conn) return 10;
    auto mem = raw_memory();
    std::string refusal;
    const int rc = raw_handshake(conn.get(), mem, fds, &refusal, [&] {
      if (spoil) spoil(mem);
    });
    std::strncpy(rep->reason, refusal.c_str(), sizeof rep->reason - 1);
    rep->stage = 3;
    return rc == 13 || rc == 0 ? 0 : rc;
  });
  EXPECT_TRUE(v.poll_until(*rep, 3));
  EXPECT_EQ(reap(child), 0);
  return rep->reason;
}

TEST(MemifHostile, MasterRefusesAnInterruptFdThatIsNotAnEventfd) {
  Victim v;
  // A pipe's read end as the S2M interrupt fd: reading it would race with the slave, its owner.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  memif::UniqueFd r(p[0]), w(p[1]);
  EXPECT_EQ(raw_slave_refusal(v, {-1, r.get(), -1}), "interrupt fd is not an eventfd") << "'': it connected";
  EXPECT_FALSE(v.m.connected());
  EXPECT_EQ(v.m.last_disconnect(), "interrupt fd is not an eventfd");
}

TEST(MemifHostile, MasterNamesARegionFdItCannotMakeNonBlocking) {
  Victim v;
  // An O_PATH fd travels by SCM_RIGHTS, but fcntl(F_SETFL, O_NONBLOCK) on it fails (EBADF).
  memif::UniqueFd path_only(::open("/", O_PATH | O_CLOEXEC));
  ASSERT_TRUE(path_only);
  const std::string want = std::string("making the received region/interrupt fd non-blocking: ") + std::strerror(EBADF);
  EXPECT_EQ(raw_slave_refusal(v, {path_only.get(), -1, -1}), want);
  EXPECT_EQ(v.m.last_disconnect(), want);
}

TEST(MemifHostile, MasterRefusesARingWithAWrongCookieAtConnect) {
  Victim v;
  // The slave announces its rings correctly, then overwrites the cookie of S2M ring 0 before
  // CONNECT: the master checks it when it maps the rings and answers CONNECT with DISCONNECT.
  const std::string reason = raw_slave_refusal(v, {}, [](const memif::detail::SlaveMemory& mem) {
    const auto views = mem.views();
    std::uint8_t* ring = memif::detail::locate_ring(views[mem.s2m[0].region], mem.s2m[0].offset, mem.s2m[0].log2, 64);
    if (ring != nullptr) std::memset(ring + offsetof(mw::RingHeader<64>, cookie), 0xA5, sizeof mw::kCookie);
  });
  EXPECT_EQ(reason, "Wrong cookie on S2M ring 0") << "'': it connected";
  EXPECT_FALSE(v.m.connected());
  EXPECT_EQ(v.m.last_disconnect(), "Wrong cookie on S2M ring 0");
  // The master keeps serving: a well-behaved slave connects afterwards.
  EXPECT_TRUE(v.honest_slave_connects()) << v.m.last_disconnect();
}

/// The highest fd number open in this process.
int highest_fd() {
  int high = 2;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 1024;
  const int own = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    const int fd = std::atoi(e->d_name);
    if (fd != own) high = std::max(high, fd);
  }
  ::closedir(d);
  return high;
}

/// Issue 17 item 4, the master's side: waits for the honest slave, leaves itself two free fds
/// under RLIMIT_NOFILE (stage 1), then polls and receives for at least 1 s and until 5
/// packets came (at most 10 s), counting accept errors logged and polls that found work.
int fd_starved_master(const std::string& path, Report* rep) {
  std::atomic<int>* lines = &rep->log_lines;
  shmlink::set_log_handler([lines](LogLevel, std::string_view msg) {
    if (msg.find(": accept: ") != std::string_view::npos) lines->fetch_add(1);
  });
  memif::SocketOptions so;
  so.path = path;
  so.publish_status = false;
  so.handshake_timeout = 60s;  // the flood's connections stay for the whole test
  memif::Socket s(so);
  memif::InterfaceOptions o;
  o.role = memif::Role::master;
  o.name = "starved";
  auto& m = s.add_interface(o);
  if (!wait_until([&] {
        (void)s.poll(5ms);
        return m.connected();
      }, 10))
    return 50;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 51;
  rl.rlim_cur = static_cast<rlim_t>(highest_fd() + 1);
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 52;
  // Fill the gaps below the limit, then free two: room for exactly two more fds.
  std::vector<int> fillers;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  for (int k = 0; k < 2 && !fillers.empty(); ++k) {
    ::close(fillers.back());
    fillers.pop_back();
  }
  rep->stage = 1;
  const auto start = std::chrono::steady_clock::now();
  int got = 0;
  for (;;) {
    if (s.poll(10ms).ok()) rep->polls.fetch_add(1);
    std::array<memif::Buffer, 8> bufs{};
    std::size_t n = 0;
    while (m.rx_burst(0, bufs, n).ok()) {
      got += static_cast<int>(n);
      (void)m.refill(0, n);
    }
    const auto t = std::chrono::steady_clock::now() - start;
    if ((t >= 1s && got >= 5) || t >= 10s) break;
  }
  rep->packets = got;
  rep->stage = 2;
  shmlink::set_log_handler({});
  return 0;
}

TEST(MemifHostile, MasterOutOfFdsBacksOffAndKeepsServing) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  Shared<Report> rep;
  const pid_t child = spawn([&] { return fd_starved_master(path, &*rep); });
  memif::SocketOptions so;
  so.path = path;
  so.publish_status = false;
  so.reconnect_interval = 20ms;  // the child may not listen yet
  memif::Socket s(so);
  memif::InterfaceOptions o;
  o.name = "honest";
  auto& sl = s.add_interface(o);
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(1ms);
    return sl.connected() && rep->stage.load() == 1;
  }, 10)) << sl.last_disconnect();
  // The flood: more connections than the master has fds for (it accepts two, then EMFILE).
  std::vector<memif::UniqueFd> flood;
  const auto addr = memif::parse_socket_name(path);
  for (int k = 0; k < 40; ++k)
    if (auto c = memif::connect_seqpacket(addr, true)) flood.push_back(std::move(c.fd));
  EXPECT_GE(flood.size(), 3U);
  // The interface that was up keeps passing packets.
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(wait_until([&] {
      (void)s.poll(0ms);
      std::array<memif::Buffer, 1> b{};
      std::size_t n = 0;
      if (!sl.alloc(0, b, 1, 64, n).ok() || n != 1) return false;
      b[0].len = 64;
      std::size_t out = 0;
      return sl.tx_burst(0, std::span<const memif::Buffer>(b.data(), 1), out).ok() && out == 1;
    }, 10));
  }
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(1ms);
    return rep->stage.load() == 2;
  }, 20));
  EXPECT_EQ(reap(child), 0);
  EXPECT_EQ(rep->packets.load(), 5);
  // It did run out of fds, said so, and did not spin: with a 100 ms back-off and one line per
  // reason per 5 s, a 1..10 s window holds a few lines and at most ~100 wake-ups; a master that
  // retries accept() at once logs thousands of lines (and polls as often).
  EXPECT_GE(rep->log_lines.load(), 1);
  EXPECT_LE(rep->log_lines.load(), 3);
  EXPECT_LT(rep->polls.load(), 300);
}

}  // namespace
}  // namespace shmlink::test
