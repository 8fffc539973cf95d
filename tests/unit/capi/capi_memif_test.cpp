// SPDX-License-Identifier: MIT
// GoogleTest cases for the memif part of the C API (include/shmlink.h), through the C API only:
// a master and a slave socket in one process connect on a private path (callbacks with their
// ctx), exchange packets both ways (chained ones included), count them, refill a full ring,
// refuse a wrong secret, disconnect and reconnect; every NULL and invalid argument gives its code
// and a message naming the interface. Suite names start with "capi" (`ctest -R capi`).
#include <shmlink.h>

#include <gtest/gtest.h>
#include <test_util.hpp>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

constexpr std::int64_t kMs = 1'000'000;      // ns per millisecond
constexpr std::int64_t kLong = 5'000 * kMs;  // a timeout that only expires when something is broken

std::string last_error() { return shmlink_last_error(); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct SocketDestroyer {
  void operator()(shmlink_memif_socket_t* s) const noexcept { shmlink_memif_socket_close(s); }
};
using Sock = std::unique_ptr<shmlink_memif_socket_t, SocketDestroyer>;

/// What the callbacks saw (ctx of each interface).
struct Events {
  int connects = 0;
  int disconnects = 0;
  int connected_inside = -1;  // shmlink_memif_is_connected() as seen inside on_connect
  shmlink_memif_t* iface = nullptr;
  std::string reason;
};

void on_connect(shmlink_memif_t* iface, void* ctx) {
  auto* e = static_cast<Events*>(ctx);
  ++e->connects;
  e->iface = iface;
  e->connected_inside = shmlink_memif_is_connected(iface);
}

void on_disconnect(shmlink_memif_t* iface, const char* reason, void* ctx) {
  auto* e = static_cast<Events*>(ctx);
  ++e->disconnects;
  e->iface = iface;
  e->reason = reason;
}

/// A private socket path and helpers to make both ends on it.
class capiMemif : public ::testing::Test {
 protected:
  shmlink::test::TempStreamDir dir_;
  std::string path_ = dir_.path() + "/memif.sock";
  Events master_events_, slave_events_;

  Sock make_socket(const char* app, const std::string& path = "") {
    shmlink_memif_socket_spec_t a;
    shmlink_memif_socket_spec_init(&a);
    const std::string& p = path.empty() ? path_ : path;
    a.path = p.c_str();
    a.app_name = app;
    a.reconnect_interval_ms = 20;
    shmlink_memif_socket_t* s = nullptr;
    EXPECT_EQ(shmlink_memif_socket_create(&a, &s), SHMLINK_OK) << last_error();
    return Sock(s);
  }

  shmlink_memif_spec_t spec_of(int role, const char* name, Events* events) {
    shmlink_memif_spec_t a;
    shmlink_memif_spec_init(&a);
    a.role = role;
    a.id = 3;
    a.name = name;
    a.secret = "s3cret";
    a.on_connect = on_connect;
    a.on_disconnect = on_disconnect;
    a.ctx = events;
    return a;
  }

  shmlink_memif_t* add(shmlink_memif_socket_t* s, const shmlink_memif_spec_t& a) {
    shmlink_memif_t* i = nullptr;
    EXPECT_EQ(shmlink_memif_create(s, &a, &i), SHMLINK_OK) << last_error();
    return i;
  }
};

/// Polls every socket (1 ms each) until `pred` holds or 20 s have passed; returns pred().
template <class Pred>
bool pump(std::initializer_list<shmlink_memif_socket_t*> socks, Pred pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    for (auto* s : socks) {
      const int rc = shmlink_memif_socket_poll(s, 1);
      EXPECT_TRUE(rc == SHMLINK_OK || rc == SHMLINK_E_TIMEOUT) << rc << ": " << last_error();
    }
  }
  return true;
}

bool both_up(shmlink_memif_t* a, shmlink_memif_t* b) {
  return shmlink_memif_is_connected(a) == 1 && shmlink_memif_is_connected(b) == 1;
}

/// Byte `i` of packet `seq`.
std::uint8_t pattern(std::uint32_t seq, std::size_t i) { return static_cast<std::uint8_t>(seq * 31 + i * 7); }

std::vector<std::uint8_t> make_packet(std::uint32_t seq, std::size_t size) {
  std::vector<std::uint8_t> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = pattern(seq, i);
  return p;
}

/// Sends one packet on queue `q`; returns the alloc code (the buffers used in `*used`).
int send_packet(shmlink_memif_t* iface, std::uint16_t q, const std::vector<std::uint8_t>& pkt,
                std::size_t* used = nullptr) {
  std::array<shmlink_memif_buffer_t, 16> bufs{};
  std::size_t n = 0;
  const int rc = shmlink_memif_alloc(iface, q, bufs.data(), bufs.size(), 1, static_cast<std::uint32_t>(pkt.size()), &n);
  if (rc != SHMLINK_OK) return rc;
  std::size_t off = 0;
  for (std::size_t k = 0; k < n; ++k) {
    EXPECT_EQ(bufs[k].len, std::min<std::size_t>(bufs[k].capacity, pkt.size() - off));
    EXPECT_EQ((bufs[k].flags & SHMLINK_MEMIF_BUFFER_NEXT) != 0, k + 1 < n);
    std::memcpy(bufs[k].data, pkt.data() + off, bufs[k].len);
    off += bufs[k].len;
  }
  EXPECT_EQ(off, pkt.size());
  std::size_t sent = 0;
  EXPECT_EQ(shmlink_memif_tx_burst(iface, q, bufs.data(), n, &sent), SHMLINK_OK) << last_error();
  EXPECT_EQ(sent, n);
  if (used != nullptr) *used = n;
  return SHMLINK_OK;
}

/// Receives every whole packet waiting on queue `q`, then refills (unless told not to).
std::vector<std::vector<std::uint8_t>> receive_all(shmlink_memif_t* iface, std::uint16_t q, bool refill = true,
                                                   std::size_t* buffers = nullptr) {
  std::vector<std::vector<std::uint8_t>> out;
  std::vector<std::uint8_t> partial;
  std::array<shmlink_memif_buffer_t, 8> bufs{};  // small: chains are split over calls
  std::size_t n = 0, total = 0;
  int rc;
  while ((rc = shmlink_memif_rx_burst(iface, q, bufs.data(), bufs.size(), &n)) == SHMLINK_OK) {
    EXPECT_GT(n, 0U);
    total += n;
    for (std::size_t k = 0; k < n; ++k) {
      EXPECT_EQ(bufs[k].capacity, bufs[k].len);
      partial.insert(partial.end(), bufs[k].data, bufs[k].data + bufs[k].len);
      if ((bufs[k].flags & SHMLINK_MEMIF_BUFFER_NEXT) == 0) out.push_back(std::move(partial)), partial.clear();
    }
  }
  EXPECT_EQ(rc, SHMLINK_E_WOULD_BLOCK) << last_error();
  EXPECT_EQ(n, 0U);
  EXPECT_TRUE(partial.empty());
  if (refill) {
    EXPECT_EQ(shmlink_memif_refill(iface, q, SIZE_MAX), SHMLINK_OK) << last_error();
  }
  if (buffers != nullptr) *buffers = total;
  return out;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 5000) == 1 && (p.revents & POLLIN) != 0;
}

TEST(capiMemifArgs, InitFillsTheCppDefaults) {
  shmlink_memif_socket_spec_t s;
  std::memset(&s, 0xff, sizeof s);
  shmlink_memif_socket_spec_init(&s);
  EXPECT_STREQ(s.path, "/run/vpp/memif.sock");
  EXPECT_STREQ(s.app_name, "shmlink");
  EXPECT_EQ(s.reconnect_interval_ms, 2000U);
  EXPECT_EQ(s.cache_line, 64U);

  shmlink_memif_spec_t a;
  std::memset(&a, 0xff, sizeof a);
  shmlink_memif_spec_init(&a);
  EXPECT_EQ(a.role, SHMLINK_MEMIF_SLAVE);
  EXPECT_EQ(a.id, 0U);
  EXPECT_STREQ(a.name, "shmlink0");
  EXPECT_EQ(a.secret, nullptr);
  EXPECT_EQ(a.mode, SHMLINK_MEMIF_MODE_ETHERNET);
  EXPECT_EQ(a.num_s2m_rings, 1);
  EXPECT_EQ(a.num_m2s_rings, 1);
  EXPECT_EQ(a.log2_ring_size, 10);
  EXPECT_EQ(a.buffer_size, 2048U);
  EXPECT_EQ(a.separate_buffer_region, 0);
  EXPECT_EQ(a.rx_mode, SHMLINK_MEMIF_RX_INTERRUPT);
  EXPECT_EQ(a.on_connect, nullptr);
  EXPECT_EQ(a.on_disconnect, nullptr);
  EXPECT_EQ(a.ctx, nullptr);

  shmlink_memif_socket_spec_init(nullptr);  // accepted
  shmlink_memif_spec_init(nullptr);
}

TEST(capiMemifArgs, StrerrorCoversTheMemifCodes) {
  for (int code : {SHMLINK_E_NOT_CONNECTED, SHMLINK_E_PROTOCOL, SHMLINK_E_REFUSED}) {
    const std::string s = shmlink_strerror(code);
    EXPECT_FALSE(s.empty()) << code;
    EXPECT_NE(s, shmlink_strerror(-12345)) << code << " has no text of its own";
  }
}

TEST_F(capiMemif, ConnectsAndExchangesPacketsBothWays) {
  Sock ms = make_socket("master-app");
  Sock ss = make_socket("slave-app");
  ASSERT_TRUE(ms && ss);
  EXPECT_GE(shmlink_memif_socket_fd(ms.get()), 0);
  shmlink_memif_spec_t ma = spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_);
  ma.num_s2m_rings = 2;  // a master accepts at most this many
  shmlink_memif_t* master = add(ms.get(), ma);
  shmlink_memif_spec_t sa = spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_);
  sa.num_s2m_rings = 2;
  sa.separate_buffer_region = 1;
  shmlink_memif_t* slave = add(ss.get(), sa);
  ASSERT_TRUE(master && slave);
  EXPECT_EQ(shmlink_memif_is_connected(slave), 0);

  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  EXPECT_EQ(master_events_.connects, 1);
  EXPECT_EQ(slave_events_.connects, 1);
  EXPECT_EQ(master_events_.iface, master);  // the callback gets the handle and its ctx
  EXPECT_EQ(slave_events_.iface, slave);
  EXPECT_EQ(master_events_.connected_inside, 1);
  EXPECT_EQ(slave_events_.disconnects, 0);

  shmlink_memif_details_t d;
  ASSERT_EQ(shmlink_memif_get_details(slave, &d), SHMLINK_OK) << last_error();
  EXPECT_EQ(d.role, SHMLINK_MEMIF_SLAVE);
  EXPECT_EQ(d.id, 3U);
  EXPECT_EQ(d.connected, 1);
  EXPECT_EQ(d.connects, 1U);
  EXPECT_EQ(d.tx_queues, 2);
  EXPECT_EQ(d.rx_queues, 1);
  EXPECT_EQ(d.tx_queues_configured, 2);
  EXPECT_EQ(d.rx_queues_configured, 1);
  EXPECT_EQ(d.regions, 2);  // separate buffer region
  EXPECT_STREQ(d.name, "s0");
  EXPECT_STREQ(d.peer_name, "m0");
  EXPECT_STREQ(d.peer_app, "master-app");
  EXPECT_EQ(std::string(d.socket), path_);
  ASSERT_EQ(shmlink_memif_get_details(master, &d), SHMLINK_OK) << last_error();
  EXPECT_EQ(d.role, SHMLINK_MEMIF_MASTER);
  EXPECT_EQ(d.tx_queues, 1);
  EXPECT_EQ(d.rx_queues, 2);
  EXPECT_STREQ(d.peer_name, "s0");
  EXPECT_STREQ(d.peer_app, "slave-app");

  shmlink_memif_region_details_t r;
  ASSERT_EQ(shmlink_memif_get_region(slave, 1, &r), SHMLINK_OK) << last_error();
  EXPECT_EQ(r.index, 1);
  EXPECT_GT(r.size, 0U);
  EXPECT_GE(r.fd, 0);

  // Slave -> master on both S2M queues, including a chained 5000-byte packet (2048-byte buffers).
  const std::vector<std::size_t> sizes{64, 5000, 1500, 2048, 2049};
  std::uint64_t bytes = 0;
  for (std::uint32_t seq = 0; seq < sizes.size(); ++seq) {
    std::size_t used = 0;
    ASSERT_EQ(send_packet(slave, 0, make_packet(seq, sizes[seq]), &used), SHMLINK_OK) << last_error();
    EXPECT_EQ(used, (sizes[seq] + 2047) / 2048);
    bytes += sizes[seq];
  }
  ASSERT_EQ(send_packet(slave, 1, make_packet(99, 300)), SHMLINK_OK) << last_error();

  int fd = -1;
  ASSERT_EQ(shmlink_memif_rx_fd(master, 0, &fd), SHMLINK_OK) << last_error();
  EXPECT_TRUE(readable(fd));  // interrupt mode: the slave wrote the eventfd
  EXPECT_EQ(shmlink_memif_wait_rx(master, 0, kLong), SHMLINK_OK) << last_error();
  std::size_t buffers = 0;
  auto got = receive_all(master, 0, true, &buffers);
  ASSERT_EQ(got.size(), sizes.size());
  EXPECT_EQ(buffers, 1U + 3U + 1U + 1U + 2U);
  for (std::uint32_t seq = 0; seq < sizes.size(); ++seq) EXPECT_EQ(got[seq], make_packet(seq, sizes[seq])) << seq;
  got = receive_all(master, 1);
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0], make_packet(99, 300));
  EXPECT_EQ(shmlink_memif_wait_rx(master, 0, 0), SHMLINK_E_TIMEOUT);  // drained
  EXPECT_TRUE(contains(last_error(), "m0"));

  // Master -> slave, a chained packet too; the master's buffers have the slave's capacity.
  ASSERT_EQ(send_packet(master, 0, make_packet(7, 5000)), SHMLINK_OK) << last_error();
  ASSERT_EQ(send_packet(master, 0, make_packet(8, 60)), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_memif_wait_rx(slave, 0, kLong), SHMLINK_OK) << last_error();
  got = receive_all(slave, 0);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0], make_packet(7, 5000));
  EXPECT_EQ(got[1], make_packet(8, 60));

  // Counters: both ends agree.
  shmlink_memif_queue_counters_t tx, rx;
  ASSERT_EQ(shmlink_memif_get_counters(slave, 1, 0, &tx), SHMLINK_OK) << last_error();
  ASSERT_EQ(shmlink_memif_get_counters(master, 0, 0, &rx), SHMLINK_OK) << last_error();
  EXPECT_EQ(tx.packets, sizes.size());
  EXPECT_EQ(tx.bytes, bytes);
  EXPECT_EQ(rx.packets, sizes.size());
  EXPECT_EQ(rx.bytes, bytes);
  EXPECT_EQ(rx.bad_descriptors, 0U);
  EXPECT_EQ(rx.dropped_packets, 0U);
  EXPECT_GE(tx.interrupts_sent, 1U);
  ASSERT_EQ(shmlink_memif_get_counters(master, 1, 0, &tx), SHMLINK_OK) << last_error();
  ASSERT_EQ(shmlink_memif_get_counters(slave, 0, 0, &rx), SHMLINK_OK) << last_error();
  EXPECT_EQ(tx.packets, 2U);
  EXPECT_EQ(tx.bytes, 5060U);
  EXPECT_EQ(rx.packets, 2U);
  EXPECT_EQ(rx.bytes, 5060U);

  // Queue details: ring geometry and direction.
  shmlink_memif_queue_details_t q;
  ASSERT_EQ(shmlink_memif_get_queue_details(slave, 1, 1, &q), SHMLINK_OK) << last_error();
  EXPECT_EQ(q.qid, 1);
  EXPECT_EQ(q.s2m, 1);
  EXPECT_EQ(q.transmit, 1);
  EXPECT_EQ(q.ring_size, 1024U);
  EXPECT_EQ(q.buffer_size, 2048U);
  EXPECT_EQ(q.counters.packets, 1U);
  ASSERT_EQ(shmlink_memif_get_queue_details(master, 0, 0, &q), SHMLINK_OK) << last_error();
  EXPECT_EQ(q.s2m, 1);
  EXPECT_EQ(q.transmit, 0);
  EXPECT_EQ(q.head, q.tail);  // everything refilled
}

TEST_F(capiMemif, PollingModeMasksInterruptsAndStillDelivers) {
  Sock ms = make_socket("m");
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_spec_t sa = spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_);
  sa.rx_mode = SHMLINK_MEMIF_RX_POLLING;
  shmlink_memif_t* slave = add(ss.get(), sa);
  ASSERT_TRUE(master && slave);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  EXPECT_EQ(shmlink_memif_set_rx_mode(master, 0, SHMLINK_MEMIF_RX_POLLING), SHMLINK_OK) << last_error();

  shmlink_memif_queue_details_t q;
  ASSERT_EQ(shmlink_memif_get_queue_details(slave, 0, 0, &q), SHMLINK_OK) << last_error();
  EXPECT_EQ(q.rx_mode, SHMLINK_MEMIF_RX_POLLING);
  EXPECT_EQ(q.mask_int, 1);

  ASSERT_EQ(send_packet(master, 0, make_packet(1, 100)), SHMLINK_OK) << last_error();
  ASSERT_EQ(send_packet(slave, 0, make_packet(2, 100)), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_memif_wait_rx(slave, 0, kLong), SHMLINK_OK) << last_error();  // spins
  EXPECT_EQ(shmlink_memif_wait_rx(master, 0, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(receive_all(slave, 0).size(), 1U);
  EXPECT_EQ(receive_all(master, 0).size(), 1U);
  shmlink_memif_queue_counters_t c;
  ASSERT_EQ(shmlink_memif_get_counters(master, 1, 0, &c), SHMLINK_OK);
  EXPECT_EQ(c.interrupts_sent, 0U);  // the slave masked them
  ASSERT_EQ(shmlink_memif_get_counters(slave, 1, 0, &c), SHMLINK_OK);
  EXPECT_EQ(c.interrupts_sent, 0U);
}

TEST_F(capiMemif, FullRingWouldBlockUntilThePeerRefills) {
  Sock ms = make_socket("m");
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_spec_t sa = spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_);
  sa.log2_ring_size = 4;  // 16 slots
  sa.buffer_size = 256;
  shmlink_memif_t* slave = add(ss.get(), sa);
  ASSERT_TRUE(master && slave);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();

  std::array<shmlink_memif_buffer_t, 32> bufs{};
  std::size_t n = 0, sent = 0;
  ASSERT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 100, 64, &n), SHMLINK_OK) << last_error();
  ASSERT_EQ(n, 16U);  // the ring, not the 100 packets or 32 buffers, was the limit
  for (std::size_t k = 0; k < n; ++k) {
    EXPECT_EQ(bufs[k].capacity, 256U);
    std::memset(bufs[k].data, static_cast<int>(k), bufs[k].len);
  }
  ASSERT_EQ(shmlink_memif_tx_burst(slave, 0, bufs.data(), n, &sent), SHMLINK_OK) << last_error();
  ASSERT_EQ(sent, 16U);

  (void)shmlink_memif_socket_poll(nullptr, 0);  // leaves a message behind
  const std::string before = last_error();
  std::size_t none = 99;
  EXPECT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 1, 64, &none), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(none, 0U);
  EXPECT_EQ(last_error(), before);  // a full ring is not a failure: no message

  // Received but not refilled: still full.
  std::array<shmlink_memif_buffer_t, 32> in{};
  ASSERT_EQ(shmlink_memif_rx_burst(master, 0, in.data(), in.size(), &n), SHMLINK_OK) << last_error();
  ASSERT_EQ(n, 16U);
  for (std::size_t k = 0; k < n; ++k) EXPECT_EQ(in[k].data[0], static_cast<std::uint8_t>(k));
  EXPECT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 1, 64, &none), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(shmlink_memif_rx_burst(master, 0, in.data(), in.size(), &n), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(last_error(), before);  // nothing received is not a failure either

  // A partial refill frees that many slots; the rest follow with SIZE_MAX.
  ASSERT_EQ(shmlink_memif_refill(master, 0, 5), SHMLINK_OK) << last_error();
  ASSERT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 100, 64, &n), SHMLINK_OK) << last_error();
  EXPECT_EQ(n, 5U);
  ASSERT_EQ(shmlink_memif_tx_burst(slave, 0, bufs.data(), n, &sent), SHMLINK_OK) << last_error();
  ASSERT_EQ(shmlink_memif_refill(master, 0, SIZE_MAX), SHMLINK_OK) << last_error();
  EXPECT_EQ(receive_all(master, 0).size(), 5U);

  shmlink_memif_queue_counters_t c;
  ASSERT_EQ(shmlink_memif_get_counters(slave, 1, 0, &c), SHMLINK_OK);
  EXPECT_EQ(c.packets, 21U);
  EXPECT_EQ(c.bytes, 21U * 64U);
  EXPECT_GE(c.ring_full, 2U);

  // Over and over: refill keeps the 16-slot ring going for many more packets than it holds.
  for (std::uint32_t seq = 0; seq < 100; ++seq) {
    ASSERT_EQ(send_packet(slave, 0, make_packet(seq, 700)), SHMLINK_OK) << seq << ": " << last_error();
    auto got = receive_all(master, 0);
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0], make_packet(seq, 700));
  }
}

TEST_F(capiMemif, WrongSecretIsRefusedWithItsReason) {
  Sock ms = make_socket("m");
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_spec_t sa = spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_);
  sa.secret = "wrong";
  shmlink_memif_t* slave = add(ss.get(), sa);
  ASSERT_TRUE(master && slave);

  char reason[256] = "";
  ASSERT_EQ(shmlink_memif_last_disconnect(slave, reason, sizeof reason), 0);  // none yet
  EXPECT_STREQ(reason, "");
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] {
    return shmlink_memif_last_disconnect(slave, reason, sizeof reason) > 0 &&
           shmlink_memif_last_disconnect(master, nullptr, 0) > 0;
  }));
  EXPECT_TRUE(contains(reason, "Incorrect secret")) << reason;
  const int len = shmlink_memif_last_disconnect(master, reason, sizeof reason);
  EXPECT_EQ(len, static_cast<int>(std::strlen(reason)));
  EXPECT_TRUE(contains(reason, "Incorrect secret")) << reason;
  EXPECT_TRUE(contains(reason, "refused slave 's'")) << reason;  // the slave's app name

  // snprintf-style: cut and NUL-terminated, the full length returned.
  char small[8];
  std::memset(small, 'x', sizeof small);
  EXPECT_EQ(shmlink_memif_last_disconnect(master, small, sizeof small), len);
  EXPECT_EQ(std::strlen(small), sizeof small - 1);
  EXPECT_EQ(std::string(small), std::string(reason).substr(0, sizeof small - 1));

  EXPECT_EQ(master_events_.connects, 0);
  EXPECT_EQ(slave_events_.connects, 0);
  EXPECT_EQ(slave_events_.disconnects, 0);  // never up, so no on_disconnect
  EXPECT_EQ(shmlink_memif_is_connected(slave), 0);
}

TEST_F(capiMemif, DisconnectRunsCallbacksAndTheSlaveReconnects) {
  Sock ms = make_socket("m");
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_t* slave = add(ss.get(), spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_));
  ASSERT_TRUE(master && slave);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  ASSERT_EQ(send_packet(slave, 0, make_packet(1, 64)), SHMLINK_OK);

  ASSERT_EQ(shmlink_memif_disconnect(master, "maintenance window"), SHMLINK_OK) << last_error();
  EXPECT_EQ(master_events_.disconnects, 1);  // inside disconnect
  EXPECT_EQ(master_events_.reason, "maintenance window");
  EXPECT_EQ(shmlink_memif_is_connected(master), 0);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return slave_events_.disconnects == 1; }));
  EXPECT_TRUE(contains(slave_events_.reason, "maintenance window")) << slave_events_.reason;
  EXPECT_EQ(slave_events_.iface, slave);
  EXPECT_EQ(shmlink_memif_disconnect(master, nullptr), SHMLINK_OK);  // down already: nothing happens

  // Counters survive the disconnect, and the slave comes back on its 20 ms timer.
  shmlink_memif_queue_counters_t c;
  ASSERT_EQ(shmlink_memif_get_counters(slave, 1, 0, &c), SHMLINK_OK) << last_error();
  EXPECT_EQ(c.packets, 1U);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  EXPECT_EQ(slave_events_.connects, 2);
  EXPECT_EQ(master_events_.connects, 2);
  shmlink_memif_details_t d;
  ASSERT_EQ(shmlink_memif_get_details(slave, &d), SHMLINK_OK);
  EXPECT_EQ(d.connects, 2U);
  ASSERT_EQ(send_packet(slave, 0, make_packet(2, 64)), SHMLINK_OK) << last_error();
  auto got = receive_all(master, 0);
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0], make_packet(2, 64));
}

TEST_F(capiMemif, ClosingAnInterfaceOrSocketDisconnectsThePeer) {
  Sock ms = make_socket("m");
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_t* slave = add(ss.get(), spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_));
  ASSERT_TRUE(master && slave);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();

  ASSERT_EQ(shmlink_memif_close(master), SHMLINK_OK) << last_error();
  EXPECT_EQ(master_events_.disconnects, 0);  // no callback from close
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return slave_events_.disconnects == 1; }));
  EXPECT_TRUE(contains(slave_events_.reason, "interface deleted")) << slave_events_.reason;
  EXPECT_EQ(shmlink_memif_close(nullptr), SHMLINK_OK);

  // A new master with the same id on the same socket takes the slave back.
  master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m1", &master_events_));
  ASSERT_TRUE(master);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();

  // Closing the master's socket removes its socket file and disconnects the slave.
  ms.reset();
  EXPECT_EQ(::access(path_.c_str(), F_OK), -1);
  ASSERT_TRUE(pump({ss.get()}, [&] { return slave_events_.disconnects == 2; }));
  EXPECT_EQ(shmlink_memif_is_connected(slave), 0);
  EXPECT_EQ(shmlink_memif_socket_close(nullptr), SHMLINK_OK);
}

TEST_F(capiMemif, OlderNamesKeepTheirMeaning) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  // The _args_ initialisers fill what the _spec_ ones fill.
  shmlink_memif_socket_spec_t sa, sb;
  std::memset(&sa, 0x5a, sizeof sa);
  std::memset(&sb, 0x5a, sizeof sb);
  shmlink_memif_socket_spec_init(&sa);
  shmlink_memif_socket_args_init(&sb);
  EXPECT_EQ(std::memcmp(&sa, &sb, sizeof sa), 0);
  shmlink_memif_spec_t ia, ib;
  std::memset(&ia, 0x5a, sizeof ia);
  std::memset(&ib, 0x5a, sizeof ib);
  shmlink_memif_spec_init(&ia);
  shmlink_memif_args_init(&ib);
  EXPECT_EQ(std::memcmp(&ia, &ib, sizeof ia), 0);
  shmlink_memif_socket_args_init(nullptr);
  shmlink_memif_args_init(nullptr);
  // The old types are the new ones.
  static_assert(std::is_same_v<shmlink_memif_socket_args_t, shmlink_memif_socket_spec_t>);
  static_assert(std::is_same_v<shmlink_memif_args_t, shmlink_memif_spec_t>);

  // _destroy closes: the master's DISCONNECT reaches the slave; the socket file goes.
  shmlink_memif_socket_t* ms = make_socket("m").release();
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms, spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_t* slave = add(ss.get(), spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_));
  ASSERT_TRUE(master && slave);
  ASSERT_TRUE(pump({ms, ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  ASSERT_EQ(shmlink_memif_destroy(master), SHMLINK_OK) << last_error();
  ASSERT_TRUE(pump({ms, ss.get()}, [&] { return slave_events_.disconnects == 1; }));
  EXPECT_TRUE(contains(slave_events_.reason, "interface deleted")) << slave_events_.reason;
  EXPECT_EQ(shmlink_memif_destroy(nullptr), SHMLINK_OK);
  master = add(ms, spec_of(SHMLINK_MEMIF_MASTER, "m1", &master_events_));
  ASSERT_TRUE(master);
  EXPECT_EQ(::access(path_.c_str(), F_OK), 0);
  EXPECT_EQ(shmlink_memif_socket_destroy(ms), SHMLINK_OK);
  EXPECT_EQ(::access(path_.c_str(), F_OK), -1) << "the socket file is removed";
  EXPECT_EQ(shmlink_memif_socket_destroy(nullptr), SHMLINK_OK);
#pragma GCC diagnostic pop
}

TEST_F(capiMemif, AbstractSocketsWork) {
  const std::string name = "@shmlink-capi-memif-" + std::to_string(::getpid());
  Sock ms = make_socket("m", name);
  Sock ss = make_socket("s", name);
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_t* slave = add(ss.get(), spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_));
  ASSERT_TRUE(master && slave);
  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  shmlink_memif_details_t d;
  ASSERT_EQ(shmlink_memif_get_details(master, &d), SHMLINK_OK);
  EXPECT_EQ(std::string(d.socket), name);
}

TEST_F(capiMemif, QueueCallsWhileDownOrOutOfRange) {
  Sock ms = make_socket("m");
  Sock ss = make_socket("s");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  shmlink_memif_t* slave = add(ss.get(), spec_of(SHMLINK_MEMIF_SLAVE, "s0", &slave_events_));
  ASSERT_TRUE(master && slave);
  std::array<shmlink_memif_buffer_t, 4> bufs{};
  std::size_t n = 99;
  int fd = 99;

  // Down: no queues.
  EXPECT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 1, 64, &n), SHMLINK_E_NOT_CONNECTED);
  EXPECT_EQ(n, 0U);
  EXPECT_TRUE(contains(last_error(), "slave 's0' (id 3)")) << last_error();
  EXPECT_TRUE(contains(last_error(), path_)) << last_error();
  EXPECT_EQ(shmlink_memif_tx_burst(slave, 0, bufs.data(), 1, &n), SHMLINK_E_NOT_CONNECTED);
  EXPECT_EQ(shmlink_memif_rx_burst(slave, 0, bufs.data(), bufs.size(), &n), SHMLINK_E_NOT_CONNECTED);
  EXPECT_EQ(shmlink_memif_refill(slave, 0, SIZE_MAX), SHMLINK_E_NOT_CONNECTED);
  EXPECT_EQ(shmlink_memif_rx_fd(slave, 0, &fd), SHMLINK_E_NOT_CONNECTED);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(shmlink_memif_wait_rx(slave, 0, 0), SHMLINK_E_NOT_CONNECTED);
  shmlink_memif_region_details_t r;
  EXPECT_EQ(shmlink_memif_get_region(slave, 0, &r), SHMLINK_E_OUT_OF_RANGE);
  // Allowed while down: rx mode and counters of the configured queues.
  EXPECT_EQ(shmlink_memif_set_rx_mode(slave, 0, SHMLINK_MEMIF_RX_POLLING), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_memif_set_rx_mode(slave, 0, SHMLINK_MEMIF_RX_INTERRUPT), SHMLINK_OK) << last_error();
  shmlink_memif_queue_counters_t c;
  EXPECT_EQ(shmlink_memif_get_counters(slave, 1, 0, &c), SHMLINK_OK) << last_error();
  EXPECT_EQ(c.packets, 0U);

  ASSERT_TRUE(pump({ms.get(), ss.get()}, [&] { return both_up(master, slave); })) << last_error();
  // Up, but beyond the single ring each way.
  EXPECT_EQ(shmlink_memif_alloc(slave, 1, bufs.data(), bufs.size(), 1, 64, &n), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_TRUE(contains(last_error(), "tx queue 1")) << last_error();
  EXPECT_EQ(shmlink_memif_tx_burst(master, 5, bufs.data(), 1, &n), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_EQ(shmlink_memif_rx_burst(master, 1, bufs.data(), bufs.size(), &n), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_TRUE(contains(last_error(), "master 'm0'")) << last_error();
  EXPECT_EQ(shmlink_memif_refill(slave, 65535, 1), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_EQ(shmlink_memif_rx_fd(slave, 1, &fd), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_EQ(shmlink_memif_wait_rx(slave, 1, 0), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_EQ(shmlink_memif_set_rx_mode(slave, 1, SHMLINK_MEMIF_RX_POLLING), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_TRUE(contains(last_error(), "rx queue 1")) << last_error();
  EXPECT_EQ(shmlink_memif_get_counters(slave, 0, 1, &c), SHMLINK_E_OUT_OF_RANGE);
  shmlink_memif_queue_details_t q;
  EXPECT_EQ(shmlink_memif_get_queue_details(slave, 1, 2, &q), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_EQ(shmlink_memif_get_region(slave, 1, &r), SHMLINK_E_OUT_OF_RANGE);  // one region
  EXPECT_EQ(shmlink_memif_get_region(slave, 0, &r), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_memif_rx_fd(slave, 0, &fd), SHMLINK_OK) << last_error();
  EXPECT_GE(fd, 0);

  // Bad requests on a good queue.
  EXPECT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 1, 0, &n), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 0, 64, &n), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), 2, 1, 5000, &n), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "5000 bytes in 2 buffer(s)")) << last_error();
  EXPECT_EQ(shmlink_memif_rx_burst(slave, 0, bufs.data(), 0, &n), SHMLINK_E_INVALID_ARGUMENT);
  ASSERT_EQ(shmlink_memif_alloc(slave, 0, bufs.data(), bufs.size(), 1, 64, &n), SHMLINK_OK) << last_error();
  ASSERT_EQ(n, 1U);
  shmlink_memif_buffer_t bad = bufs[0];
  bad.len = 0;
  EXPECT_EQ(shmlink_memif_tx_burst(slave, 0, &bad, 1, &n), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(n, 0U);
  EXPECT_TRUE(contains(last_error(), "len 0")) << last_error();
  bad.len = bad.capacity + 1;
  EXPECT_EQ(shmlink_memif_tx_burst(slave, 0, &bad, 1, &n), SHMLINK_E_INVALID_ARGUMENT);
  bad = bufs[0];
  bad.desc_index = static_cast<std::uint16_t>(bad.desc_index + 1);  // not the oldest reserved
  EXPECT_EQ(shmlink_memif_tx_burst(slave, 0, &bad, 1, &n), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_memif_set_rx_mode(slave, 0, 2), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_memif_tx_burst(slave, 0, bufs.data(), 1, &n), SHMLINK_OK) << last_error();  // still sendable
  EXPECT_EQ(n, 1U);
}

TEST_F(capiMemif, NullArgumentsAreRejected) {
  Sock ms = make_socket("m");
  shmlink_memif_t* master = add(ms.get(), spec_of(SHMLINK_MEMIF_MASTER, "m0", &master_events_));
  ASSERT_TRUE(master);
  shmlink_memif_spec_t a = spec_of(SHMLINK_MEMIF_MASTER, "m9", nullptr);
  shmlink_memif_t* i = master;
  shmlink_memif_buffer_t b{};
  std::size_t n = 0;
  int fd = 0;
  char text[16];
  shmlink_memif_details_t d;
  shmlink_memif_queue_counters_t c;
  shmlink_memif_queue_details_t q;
  shmlink_memif_region_details_t r;

  auto null = [](int rc, const char* function, const char* argument) {
    EXPECT_EQ(rc, SHMLINK_E_INVALID_ARGUMENT) << function;
    EXPECT_EQ(last_error(), std::string(function) + ": " + argument + " is NULL");
  };
  null(shmlink_memif_socket_create(nullptr, nullptr), "shmlink_memif_socket_create", "out");
  null(shmlink_memif_socket_poll(nullptr, 0), "shmlink_memif_socket_poll", "sock");
  null(shmlink_memif_socket_fd(nullptr), "shmlink_memif_socket_fd", "sock");
  null(shmlink_memif_create(ms.get(), &a, nullptr), "shmlink_memif_create", "out");
  null(shmlink_memif_create(nullptr, &a, &i), "shmlink_memif_create", "sock");
  EXPECT_EQ(i, nullptr);  // reset on failure
  null(shmlink_memif_create(ms.get(), nullptr, &i), "shmlink_memif_create", "spec");
  null(shmlink_memif_is_connected(nullptr), "shmlink_memif_is_connected", "iface");
  null(shmlink_memif_alloc(nullptr, 0, &b, 1, 1, 64, &n), "shmlink_memif_alloc", "iface");
  null(shmlink_memif_alloc(master, 0, &b, 1, 1, 64, nullptr), "shmlink_memif_alloc", "out_count");
  null(shmlink_memif_alloc(master, 0, nullptr, 1, 1, 64, &n), "shmlink_memif_alloc", "bufs");
  null(shmlink_memif_tx_burst(nullptr, 0, &b, 1, &n), "shmlink_memif_tx_burst", "iface");
  null(shmlink_memif_tx_burst(master, 0, &b, 1, nullptr), "shmlink_memif_tx_burst", "sent");
  null(shmlink_memif_tx_burst(master, 0, nullptr, 1, &n), "shmlink_memif_tx_burst", "bufs");
  null(shmlink_memif_rx_burst(nullptr, 0, &b, 1, &n), "shmlink_memif_rx_burst", "iface");
  null(shmlink_memif_rx_burst(master, 0, &b, 1, nullptr), "shmlink_memif_rx_burst", "received");
  null(shmlink_memif_rx_burst(master, 0, nullptr, 1, &n), "shmlink_memif_rx_burst", "bufs");
  null(shmlink_memif_refill(nullptr, 0, 1), "shmlink_memif_refill", "iface");
  null(shmlink_memif_set_rx_mode(nullptr, 0, 0), "shmlink_memif_set_rx_mode", "iface");
  null(shmlink_memif_rx_fd(nullptr, 0, &fd), "shmlink_memif_rx_fd", "iface");
  null(shmlink_memif_rx_fd(master, 0, nullptr), "shmlink_memif_rx_fd", "fd");
  null(shmlink_memif_wait_rx(nullptr, 0, 0), "shmlink_memif_wait_rx", "iface");
  null(shmlink_memif_disconnect(nullptr, "x"), "shmlink_memif_disconnect", "iface");
  null(shmlink_memif_last_disconnect(nullptr, text, sizeof text), "shmlink_memif_last_disconnect", "iface");
  null(shmlink_memif_last_disconnect(master, nullptr, sizeof text), "shmlink_memif_last_disconnect", "buf");
  null(shmlink_memif_get_details(nullptr, &d), "shmlink_memif_get_details", "iface");
  null(shmlink_memif_get_details(master, nullptr), "shmlink_memif_get_details", "out");
  null(shmlink_memif_get_counters(nullptr, 1, 0, &c), "shmlink_memif_get_counters", "iface");
  null(shmlink_memif_get_counters(master, 1, 0, nullptr), "shmlink_memif_get_counters", "out");
  null(shmlink_memif_get_queue_details(nullptr, 1, 0, &q), "shmlink_memif_get_queue_details", "iface");
  null(shmlink_memif_get_queue_details(master, 1, 0, nullptr), "shmlink_memif_get_queue_details", "out");
  null(shmlink_memif_get_region(nullptr, 0, &r), "shmlink_memif_get_region", "iface");
  null(shmlink_memif_get_region(master, 0, nullptr), "shmlink_memif_get_region", "out");

  // Zero-length calls with NULL arrays are fine where the C++ call accepts them.
  EXPECT_EQ(shmlink_memif_last_disconnect(master, nullptr, 0), 0);
}

TEST_F(capiMemif, InvalidArgumentsGiveCodesAndMessages) {
  // Socket arguments.
  shmlink_memif_socket_spec_t sa;
  shmlink_memif_socket_spec_init(&sa);
  shmlink_memif_socket_t* s = reinterpret_cast<shmlink_memif_socket_t*>(&sa);  // must be reset
  sa.path = path_.c_str();
  sa.app_name = "an application name over 31 bytes";
  EXPECT_EQ(shmlink_memif_socket_create(&sa, &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(s, nullptr);
  EXPECT_TRUE(contains(last_error(), "application name")) << last_error();
  EXPECT_TRUE(contains(last_error(), path_)) << last_error();
  sa.app_name = nullptr;
  sa.cache_line = 96;
  EXPECT_EQ(shmlink_memif_socket_create(&sa, &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "cache line")) << last_error();
  sa.cache_line = 0;
  const std::string long_path = "/tmp/" + std::string(110, 'p');
  sa.path = long_path.c_str();
  EXPECT_EQ(shmlink_memif_socket_create(&sa, &s), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_FALSE(last_error().empty());
  sa.path = "@";
  EXPECT_EQ(shmlink_memif_socket_create(&sa, &s), SHMLINK_E_INVALID_ARGUMENT);

  // A zeroed socket spec and a NULL spec both mean every default (the path is not touched yet).
  shmlink_memif_socket_spec_t zero;
  std::memset(&zero, 0, sizeof zero);
  ASSERT_EQ(shmlink_memif_socket_create(&zero, &s), SHMLINK_OK) << last_error();
  shmlink_memif_socket_close(s);
  ASSERT_EQ(shmlink_memif_socket_create(nullptr, &s), SHMLINK_OK) << last_error();
  shmlink_memif_socket_close(s);

  // Interface arguments.
  Sock ss = make_socket("s");
  ASSERT_TRUE(ss);
  shmlink_memif_t* i = nullptr;
  auto bad = [&](shmlink_memif_spec_t a, int code, const char* what) {
    shmlink_memif_t* out = reinterpret_cast<shmlink_memif_t*>(&a);
    EXPECT_EQ(shmlink_memif_create(ss.get(), &a, &out), code) << what;
    EXPECT_EQ(out, nullptr) << what;
    EXPECT_TRUE(contains(last_error(), what)) << last_error();
    EXPECT_TRUE(contains(last_error(), path_)) << last_error();
  };
  shmlink_memif_spec_t a = spec_of(SHMLINK_MEMIF_SLAVE, "s0", nullptr);
  a.log2_ring_size = 15;
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "log2 ring size");
  a = spec_of(7, "s0", nullptr);
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "role 7");
  a = spec_of(SHMLINK_MEMIF_SLAVE, "s0", nullptr);
  a.rx_mode = 9;
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "rx_mode 9");
  a = spec_of(SHMLINK_MEMIF_SLAVE, "s0", nullptr);
  a.mode = 3;
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "interface mode");
  a = spec_of(SHMLINK_MEMIF_SLAVE, "s0", nullptr);
  a.buffer_size = 100;
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "buffer size");
  a = spec_of(SHMLINK_MEMIF_SLAVE, "an interface name well over 31 bytes", nullptr);
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "interface name");
  a = spec_of(SHMLINK_MEMIF_SLAVE, "s0", nullptr);
  a.secret = "a secret that is longer than 24 bytes";
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "secret");

  // Zeroed fields take the defaults: a memset struct with only a role is a valid slave.
  shmlink_memif_spec_t z;
  std::memset(&z, 0, sizeof z);
  z.role = SHMLINK_MEMIF_SLAVE;
  ASSERT_EQ(shmlink_memif_create(ss.get(), &z, &i), SHMLINK_OK) << last_error();
  shmlink_memif_details_t d;
  ASSERT_EQ(shmlink_memif_get_details(i, &d), SHMLINK_OK);
  EXPECT_STREQ(d.name, "shmlink0");
  EXPECT_EQ(d.id, 0U);
  EXPECT_EQ(d.tx_queues_configured, 1);
  EXPECT_EQ(d.rx_queues_configured, 1);
  // The same id again, and a master on a slave socket.
  bad(z, SHMLINK_E_EXISTS, "id 0 already used");
  a = spec_of(SHMLINK_MEMIF_MASTER, "m0", nullptr);
  bad(a, SHMLINK_E_INVALID_ARGUMENT, "not both");
  EXPECT_EQ(shmlink_memif_close(i), SHMLINK_OK);
  ASSERT_EQ(shmlink_memif_create(ss.get(), &z, &i), SHMLINK_OK) << last_error();  // the id is free again
}

}  // namespace
