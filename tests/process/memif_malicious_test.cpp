// SPDX-License-Identifier: MIT
// A malicious memif slave (a raw program of ours speaking the control protocol by hand) posts
// descriptors outside its region, zero lengths and huge head jumps. The shmlink master counts and
// drops them, keeps running, delivers the good packets around them and disconnects the peer with
// the reason (issue 6; reference memif.md sections 10, 11, 19). Raw peers of protocol 1.0, a slave
// and a master, are refused with "Incompatible memif version", visible on both sides.
#include "memif/control.hpp"
#include "memif/ring.hpp"
#include "memif/wire.hpp"
#include "test_util.hpp"

#include <shmlink/memif.hpp>

#include <gtest/gtest.h>

#include <sys/eventfd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <chrono>
#include <string>

namespace shmlink::test {
namespace {

using namespace std::chrono_literals;
namespace mw = memif::wire;

/// What the malicious child reports back.
struct Report {
  std::atomic<int> stage{0};  // 1 connected, 2 descriptors posted, 3 DISCONNECT received
  char reason[128]{};
};

/// Receives one message, blocking; false on anything unexpected.
bool expect(int fd, mw::MsgType type, mw::Message& m) {
  memif::UniqueFd extra;
  auto r = memif::receive_message(fd, m, extra);
  return r.ok() && mw::message_type(m) == type;
}

enum class Attack { bad_descriptors, head_jump };

/// The malicious slave: a correct handshake, then lies in the S2M ring.
int malicious_slave(const std::string& path, Attack attack, Report* rep) {
  auto addr = memif::parse_socket_name(path);
  memif::ConnectResult c;
  for (int i = 0; i < 500 && !c; ++i) {
    c = memif::connect_seqpacket(addr);
    if (!c) ::usleep(10000);
  }
  if (!c) return 10;
  const int fd = c.fd.get();
  mw::Message m;
  if (!expect(fd, mw::MsgType::hello, m)) return 11;
  memif::detail::SlaveLayout lay;
  lay.log2 = 6;
  auto mem = memif::detail::create_slave_memory(lay, "malicious");
  mw::InitInfo init;
  init.name = "malicious";
  if (!memif::send_message(fd, mw::encode_init(init))) return 12;
  if (!expect(fd, mw::MsgType::ack, m)) return 13;
  if (!memif::send_message(fd, mw::encode_add_region({0, mem.regions[0].size()}), mem.regions[0].fd())) return 14;
  if (!expect(fd, mw::MsgType::ack, m)) return 15;
  mw::AddRingInfo r;
  r.type = mw::RingType::s2m;
  r.region = mem.s2m[0].region;
  r.offset = mem.s2m[0].offset;
  r.log2_ring_size = mem.s2m[0].log2;
  if (!memif::send_message(fd, mw::encode_add_ring(r), mem.s2m_eventfds[0].get())) return 16;
  if (!expect(fd, mw::MsgType::ack, m)) return 17;
  r.type = mw::RingType::m2s;
  r.offset = mem.m2s[0].offset;
  if (!memif::send_message(fd, mw::encode_add_ring(r), mem.m2s_eventfds[0].get())) return 18;
  if (!expect(fd, mw::MsgType::ack, m)) return 19;
  if (!memif::send_message(fd, mw::encode_connect("evil0"))) return 20;
  if (!expect(fd, mw::MsgType::connected, m)) return 21;
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
  std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring + 6)).store(head, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!::write(mem.s2m_eventfds[0].get(), &one, sizeof one);
  rep->stage = 2;
  // wait for the master's DISCONNECT
  memif::UniqueFd extra;
  auto rr = memif::receive_message(fd, m, extra);
  if (rr.ok() && mw::message_type(m) == mw::MsgType::disconnect) {
    auto d = mw::decode_disconnect(m);
    std::strncpy(rep->reason, d.reason.c_str(), sizeof rep->reason - 1);
    rep->stage = 3;
    return 0;
  }
  return 22;
}

class MemifMalicious : public testing::TestWithParam<Attack> {};

TEST_P(MemifMalicious, MasterCountsDropsAndDisconnectsTheLiar) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  memif::SocketOptions so;
  so.path = path;
  memif::Socket s(so);
  memif::InterfaceOptions o;
  o.role = memif::Role::master;
  o.name = "victim";
  auto& m = s.add_interface(o);
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
  memif::SocketOptions so2;
  so2.path = path;
  memif::Socket s2(so2);
  memif::InterfaceOptions o2;
  o2.name = "honest";
  auto& sl = s2.add_interface(o2);
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(0ms);
    (void)s2.poll(1ms);
    return sl.connected() && m.connected();
  }, 10)) << m.last_disconnect();
}

INSTANTIATE_TEST_SUITE_P(Memif, MemifMalicious, testing::Values(Attack::bad_descriptors, Attack::head_jump),
                         [](const testing::TestParamInfo<Attack>& i) {
                           return i.param == Attack::bad_descriptors ? "BadDescriptors" : "HeadJump";
                         });

// ---- protocol version (issue 6: "Handshake failures ... wrong version") -------------------------

/// A raw slave of protocol 1.0: HELLO, then INIT with version 0x0100 for interface `id`; reports
/// the master's DISCONNECT reason.
int old_version_slave(const std::string& path, std::uint32_t id, Report* rep) {
  auto addr = memif::parse_socket_name(path);
  memif::ConnectResult c;
  for (int i = 0; i < 500 && !c; ++i) {
    c = memif::connect_seqpacket(addr);
    if (!c) ::usleep(10000);
  }
  if (!c) return 10;
  mw::Message m;
  if (!expect(c.fd.get(), mw::MsgType::hello, m)) return 11;
  mw::InitInfo init;
  init.version = 0x0100;
  init.id = id;
  init.name = "old-slave";
  if (!memif::send_message(c.fd.get(), mw::encode_init(init))) return 12;
  if (!expect(c.fd.get(), mw::MsgType::disconnect, m)) return 13;
  const auto d = mw::decode_disconnect(m);
  std::strncpy(rep->reason, d.reason.c_str(), sizeof rep->reason - 1);
  rep->stage = 3;
  return 0;
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
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  // A raw master of protocol 1.0 only: accepts, sends HELLO, reads the slave's answer.
  auto listener = memif::listen_seqpacket(memif::parse_socket_name(path));
  memif::SocketOptions so;
  so.path = path;
  so.reconnect_interval = std::chrono::milliseconds(0);  // one attempt: no reconnect in between
  memif::Socket s(so);
  memif::InterfaceOptions o;
  o.name = "v2-slave";
  auto& sl = s.add_interface(o);
  memif::UniqueFd conn;
  ASSERT_TRUE(wait_until([&] {
    (void)s.poll(1ms);
    return listener.accept(conn, false).ok();
  }, 10));
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

}  // namespace
}  // namespace shmlink::test
