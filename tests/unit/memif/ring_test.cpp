// SPDX-License-Identifier: MIT
// memif shared memory and ring data path (src/memif/ring.hpp), both sides in one process over
// real memfds: the slave's memory as created, the master's as mapped from dup'ed fds.
#include "memif/ring.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace shmlink::memif::detail {
namespace {

using Bytes = std::vector<std::uint8_t>;

/// True when `fd` is readable right now.
bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/// A packet whose content encodes its sequence number and size.
Bytes make_packet(std::uint32_t seq, std::uint32_t size) {
  Bytes b(size);
  for (std::uint32_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>((seq * 131u + i * 7u + (i >> 8)) & 0xFF);
  if (size >= 4) std::memcpy(b.data(), &seq, 4);
  return b;
}

/// One connection's memory and the four kinds of queue, built like the real connect sequence:
/// the slave creates its memory, the master maps every region from a dup'ed fd and locates the
/// rings at the announced placements; master queues attach first, then the slave's.
struct Link {
  SlaveMemory mem;
  std::vector<RegionView> slave_views;
  std::vector<Segment> master_segments;
  std::vector<RegionView> master_views;
  std::vector<os::UniqueFd> master_efds;
  // index = ring index; slave transmits on S2M and receives on M2S, the master the other way.
  std::deque<RingQueue> slave_tx, slave_rx, master_tx, master_rx;

  explicit Link(const SlaveLayout& layout, RxMode mode = RxMode::interrupt) {
    mem = create_slave_memory(layout, "ring-test");
    slave_views = mem.views();
    for (std::size_t i = 0; i < mem.regions.size(); ++i) {
      master_segments.push_back(map_peer_region(os::UniqueFd(::dup(mem.regions[i].fd())), mem.regions[i].size(),
                                                "test region " + std::to_string(i)));
      master_views.push_back(
          {reinterpret_cast<std::uint8_t*>(master_segments.back().data()), mem.regions[i].size()});
    }
    for (std::uint16_t i = 0; i < layout.num_s2m; ++i) {
      master_efds.emplace_back(::dup(mem.s2m_eventfds[i].get()));
      master_rx.emplace_back().attach(config(false, false, mem.s2m[i], master_views, master_efds.back().get(), i, mode));
    }
    for (std::uint16_t i = 0; i < layout.num_m2s; ++i) {
      master_efds.emplace_back(::dup(mem.m2s_eventfds[i].get()));
      master_tx.emplace_back().attach(config(false, true, mem.m2s[i], master_views, master_efds.back().get(), i, mode));
    }
    for (std::uint16_t i = 0; i < layout.num_s2m; ++i)
      slave_tx.emplace_back().attach(config(true, true, mem.s2m[i], slave_views, mem.s2m_eventfds[i].get(), i, mode));
    for (std::uint16_t i = 0; i < layout.num_m2s; ++i)
      slave_rx.emplace_back().attach(config(true, false, mem.m2s[i], slave_views, mem.m2s_eventfds[i].get(), i, mode));
  }

  RingQueue::Config config(bool slave, bool transmit, const RingPlacement& p, const std::vector<RegionView>& views,
                           int efd, std::uint16_t index, RxMode mode) const {
    RingQueue::Config c;
    c.slave = slave;
    c.transmit = transmit;
    c.ring = locate_ring(views[p.region], p.offset, p.log2, mem.layout.cache_line);
    EXPECT_NE(c.ring, nullptr);
    c.log2 = p.log2;
    c.cache_line = mem.layout.cache_line;
    c.regions = views;
    c.eventfd = efd;
    c.slave_memory = slave ? &mem : nullptr;
    c.ring_index = index;
    c.rx_mode = mode;
    return c;
  }

  /// The S2M (s2m = true) or M2S ring header as the master sees it.
  std::uint8_t* ring(bool s2m, std::uint16_t i = 0) const {
    const RingPlacement& p = s2m ? mem.s2m[i] : mem.m2s[i];
    return master_views[p.region].base + p.offset;
  }
  wire::Descriptor* desc(bool s2m, std::uint32_t slot, std::uint16_t i = 0) const {
    return reinterpret_cast<wire::Descriptor*>(ring(s2m, i) + wire::ring_desc_offset(mem.layout.cache_line) +
                                               std::uint64_t{slot} * sizeof(wire::Descriptor));
  }
  /// Writes S2M descriptor `slot` of ring 0 as a slave (or a lying one) would.
  void write_s2m(std::uint32_t slot, std::uint16_t flags, std::uint16_t region, std::uint32_t length,
                 std::uint32_t offset) const {
    wire::Descriptor* d = desc(true, slot);
    d->flags = flags;
    d->region = region;
    d->length = length;
    d->offset = offset;
  }
  std::atomic_ref<std::uint16_t> head(bool s2m, std::uint16_t i = 0) const {
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring(s2m, i) + 6));
  }
  std::atomic_ref<std::uint16_t> tail(bool s2m, std::uint16_t i = 0) const {
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring(s2m, i) + mem.layout.cache_line));
  }
  /// Is [p, p + n) inside one of the master's views?
  bool in_master_region(const std::uint8_t* p, std::size_t n) const {
    return std::any_of(master_views.begin(), master_views.end(),
                       [&](const RegionView& v) { return p >= v.base && p + n <= v.base + v.size; });
  }
};

/// Reserves, fills and publishes one packet; false if it did not fit.
bool send(RingQueue& tx, const Bytes& payload, std::size_t max_bufs = 64) {
  std::vector<Buffer> bufs(max_bufs);
  std::size_t n = 0;
  Status st = tx.alloc(std::span(bufs).first(max_bufs), SIZE_MAX, static_cast<std::uint32_t>(payload.size()), n);
  if (st.code() == Errc::would_block) return false;
  EXPECT_TRUE(st.ok()) << st.message();
  if (!st.ok()) return false;
  // alloc returns whole packets; send only the first.
  std::size_t first = 0;
  while (first < n && (bufs[first].flags & kBufferNext) != 0) ++first;
  ++first;
  std::size_t off = 0;
  for (std::size_t i = 0; i < first; ++i) {
    const std::size_t len = std::min<std::size_t>(bufs[i].capacity, payload.size() - off);
    std::memcpy(bufs[i].data, payload.data() + off, len);
    bufs[i].len = static_cast<std::uint32_t>(len);
    off += len;
  }
  EXPECT_EQ(off, payload.size());
  std::size_t sent = 0;
  EXPECT_TRUE(tx.tx_burst(std::span(bufs).first(first), sent).ok());
  EXPECT_EQ(sent, first);
  // Unsent reservations of further packets stay reserved and must go out in order: publish them
  // as well (they carry garbage) only if any were made. Callers pass max_bufs to avoid that.
  EXPECT_EQ(n, first) << "send() helper reserved more than one packet";
  return true;
}

/// Receives everything available as whole packets (chains reassembled), using bursts of `burst`
/// buffers, then refills all.
std::vector<Bytes> receive_all(RingQueue& rx, std::size_t burst = 32) {
  std::vector<Bytes> out;
  Bytes partial;
  std::vector<Buffer> bufs(burst);
  for (;;) {
    std::size_t n = 0;
    Status st = rx.rx_burst(bufs, n);
    if (st.code() == Errc::would_block) break;
    EXPECT_TRUE(st.ok()) << st.message();
    if (!st.ok()) break;
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(bufs[i].len, bufs[i].capacity);
      partial.insert(partial.end(), bufs[i].data, bufs[i].data + bufs[i].len);
      if ((bufs[i].flags & kBufferNext) == 0) out.push_back(std::exchange(partial, {}));
    }
  }
  EXPECT_TRUE(rx.refill(SIZE_MAX).ok());
  EXPECT_TRUE(partial.empty()) << "chain left incomplete";
  return out;
}

SlaveLayout layout_of(std::uint8_t log2, bool separate, std::uint32_t cl, std::uint32_t buffer_size = 2048) {
  SlaveLayout l;
  l.num_s2m = 1;
  l.num_m2s = 1;
  l.log2 = log2;
  l.buffer_size = buffer_size;
  l.separate_buffer_region = separate;
  l.cache_line = cl;
  return l;
}

// ---- create_slave_memory ---------------------------------------------------------------------

TEST(MemifSlaveMemory, OneRegionLayoutMatchesVppDpdk) {
  SlaveLayout l = layout_of(10, false, 64);
  l.num_s2m = 2;
  l.num_m2s = 3;
  SlaveMemory m = create_slave_memory(l, "layout");
  ASSERT_EQ(m.regions.size(), 1u);
  const std::uint64_t rb = wire::ring_bytes(64, 10);
  EXPECT_EQ(m.buffer_region, 0);
  EXPECT_EQ(m.buffer_base, 5 * rb);
  EXPECT_EQ(m.regions[0].size(), 5 * rb + 5ull * 1024 * 2048);
  ASSERT_EQ(m.s2m.size(), 2u);
  ASSERT_EQ(m.m2s.size(), 3u);
  EXPECT_EQ(m.s2m[1].offset, rb);
  EXPECT_EQ(m.m2s[0].offset, 2 * rb);
  EXPECT_EQ(m.m2s[2].offset, 4 * rb);
  EXPECT_EQ(m.m2s[2].log2, 10);
  EXPECT_EQ(m.buffer_offset(false, 1, 7), 5 * rb + ((2 + 1) * 1024 + 7) * 2048ull);
  ASSERT_EQ(m.s2m_eventfds.size(), 2u);
  ASSERT_EQ(m.m2s_eventfds.size(), 3u);
  // Eventfds are non-blocking: reading an empty one fails with EAGAIN.
  std::uint64_t v = 0;
  EXPECT_EQ(::read(m.m2s_eventfds[2].get(), &v, 8), -1);
  EXPECT_EQ(errno, EAGAIN);
  // Ring 3 (M2S 1): cookie, zero indices, descriptors pointing at its buffers.
  const auto* base = reinterpret_cast<const std::uint8_t*>(m.regions[0].data()) + m.m2s[1].offset;
  std::uint32_t cookie = 0;
  std::memcpy(&cookie, base, 4);
  EXPECT_EQ(cookie, wire::kCookie);
  wire::RingHeader<64> h;
  std::memcpy(&h, base, sizeof h);
  EXPECT_EQ(h.flags, 0);
  EXPECT_EQ(h.head, 0);
  EXPECT_EQ(h.tail, 0);
  for (std::uint32_t j : {0u, 1u, 1023u}) {
    wire::Descriptor d;
    std::memcpy(&d, base + 128 + 16 * j, 16);
    EXPECT_EQ(d.flags, 0);
    EXPECT_EQ(d.region, 0);
    EXPECT_EQ(d.length, 2048u);
    EXPECT_EQ(d.offset, m.buffer_offset(false, 1, j));
    EXPECT_EQ(d.metadata, 0u);
  }
}

TEST(MemifSlaveMemory, SeparateBufferRegionLayoutMatchesLibmemif) {
  SlaveMemory m = create_slave_memory(layout_of(10, true, 64), "layout");
  ASSERT_EQ(m.regions.size(), 2u);
  // Observed from libmemif: region 0 = 33 024 bytes, region 1 = 4 MiB for 1+1 rings of 1024 x 2048.
  EXPECT_EQ(m.regions[0].size(), 33024u);
  EXPECT_EQ(m.regions[1].size(), 4u << 20);
  EXPECT_EQ(m.buffer_region, 1);
  EXPECT_EQ(m.buffer_base, 0u);
  EXPECT_EQ(m.m2s[0].offset, 16512u);
  EXPECT_EQ(m.buffer_offset(false, 0, 3), (1024 + 3) * 2048ull);
  const auto v = m.views();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1].size, 4u << 20);
  EXPECT_EQ(v[1].base, reinterpret_cast<std::uint8_t*>(m.regions[1].data()));
}

TEST(MemifSlaveMemory, OneRegionBufferBaseIsCacheLineAligned) {
  // log2 = 1: ring_bytes(64, 1) = 160, two rings = 320 = 5 * 64 already; CL 64 + 3 rings = 480.
  SlaveLayout l = layout_of(1, false, 64);
  l.num_s2m = 2;
  SlaveMemory m = create_slave_memory(l, "tiny");
  EXPECT_EQ(m.buffer_base % 64, 0u);
  EXPECT_GE(m.buffer_base, 3 * wire::ring_bytes(64, 1));
}

TEST(MemifSlaveMemory, RejectsLayoutsOutOfRange) {
  auto code_of = [](SlaveLayout l) {
    try {
      (void)create_slave_memory(l, "bad");
    } catch (const Error& e) {
      return e.errc();
    }
    return Errc::ok;
  };
  SlaveLayout l = layout_of(10, false, 64);
  l.num_s2m = 0;
  EXPECT_EQ(code_of(l), Errc::invalid_argument);
  l = layout_of(10, false, 64);
  l.num_m2s = 256;
  EXPECT_EQ(code_of(l), Errc::invalid_argument);
  EXPECT_EQ(code_of(layout_of(0, false, 64)), Errc::invalid_argument);
  EXPECT_EQ(code_of(layout_of(15, false, 64)), Errc::invalid_argument);
  EXPECT_EQ(code_of(layout_of(10, false, 64, 32)), Errc::invalid_argument);
  EXPECT_EQ(code_of(layout_of(10, false, 96)), Errc::invalid_argument);
  // 255 + 255 rings x 16384 x 2048 bytes = 17 GB of buffers: beyond 32-bit offsets.
  l = layout_of(14, true, 64);
  l.num_s2m = l.num_m2s = 255;
  try {
    (void)create_slave_memory(l, "huge");
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("4 GiB"), std::string::npos) << e.what();
  }
}

// ---- map_peer_region / locate_ring -----------------------------------------------------------

TEST(MemifInterruptFd, OnlyEventfdsAreEventfds) {
  os::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  os::UniqueFd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  os::UniqueFd mfd(::memfd_create("not-an-eventfd", MFD_CLOEXEC));
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  os::UniqueFd r(p[0]), w(p[1]);
  EXPECT_TRUE(is_eventfd(efd.get()));
  EXPECT_FALSE(is_eventfd(tfd.get()));  // an anonymous inode too
  EXPECT_FALSE(is_eventfd(mfd.get()));
  EXPECT_FALSE(is_eventfd(r.get()));
  EXPECT_FALSE(is_eventfd(-1));
}

TEST(MemifCheckPeerRegion, UnsealedReasonHintsAtZeroCopyAndFitsDisconnect) {
  os::UniqueFd mfd(::memfd_create("unsealed", MFD_CLOEXEC));
  ASSERT_TRUE(mfd);
  const std::string why = check_peer_region(mfd.get(), 255, false);
  EXPECT_NE(why.find("zero-copy peer? see allow_unsealed_regions"), std::string::npos) << why;
  EXPECT_LT(why.size(), wire::kDisconnectStringSize) << why;  // kept whole, NUL included
  EXPECT_EQ(check_peer_region(mfd.get(), 255, true), "");
}

TEST(MemifMapPeerRegion, RejectsSizeZeroOrBeyondTheFile) {
  Segment s = Segment::create_memfd("peer", 8192);
  try {
    (void)map_peer_region(os::UniqueFd(::dup(s.fd())), 8193, "r0");
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::protocol);
    EXPECT_NE(std::string(e.what()).find("r0"), std::string::npos);
  }
  try {
    (void)map_peer_region(os::UniqueFd(::dup(s.fd())), 0, "r0");
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::protocol);
  }
  // Smaller than the file is fine; the mapping covers at least the announced size and is shared.
  Segment m = map_peer_region(os::UniqueFd(::dup(s.fd())), 4096, "r0");
  ASSERT_GE(m.size(), 4096u);
  reinterpret_cast<std::uint8_t*>(m.data())[100] = 42;
  EXPECT_EQ(reinterpret_cast<std::uint8_t*>(s.data())[100], 42);
}

TEST(MemifLocateRing, ChecksBoundsAndAlignment) {
  std::vector<std::uint8_t> mem(1 << 16);
  // vector storage is at least 8-aligned (operator new alignment).
  RegionView v{mem.data(), mem.size()};
  const std::uint64_t rb = wire::ring_bytes(64, 10);
  EXPECT_EQ(locate_ring(v, 0, 10, 64), mem.data());
  EXPECT_EQ(locate_ring(v, 64, 10, 64), mem.data() + 64);
  EXPECT_EQ(locate_ring(v, static_cast<std::uint32_t>(mem.size() - rb), 10, 64), mem.data() + mem.size() - rb);
  EXPECT_EQ(locate_ring(v, static_cast<std::uint32_t>(mem.size() - rb + 8), 10, 64), nullptr);
  EXPECT_EQ(locate_ring(v, 4, 10, 64), nullptr);  // unaligned
  EXPECT_EQ(locate_ring(v, 0xFFFFFFF8u, 10, 64), nullptr);
  EXPECT_EQ(locate_ring(v, 0, 12, 64), nullptr);  // 64 KiB of descriptors + header > region
  EXPECT_EQ(locate_ring(v, 0, 15, 64), nullptr);
  EXPECT_EQ(locate_ring(RegionView{}, 0, 1, 64), nullptr);
  EXPECT_NE(locate_ring(v, 0, 10, 128), nullptr);
}

// ---- data path -------------------------------------------------------------------------------

TEST(MemifRingQueue, DetachedQueueIsNotConnected) {
  RingQueue q;
  EXPECT_FALSE(q.attached());
  std::vector<Buffer> bufs(4);
  std::size_t n = 99;
  EXPECT_EQ(q.alloc(bufs, SIZE_MAX, 100, n).code(), Errc::not_connected);
  EXPECT_EQ(n, 0u);
  n = 99;
  EXPECT_EQ(q.tx_burst(bufs, n).code(), Errc::not_connected);
  EXPECT_EQ(n, 0u);
  n = 99;
  EXPECT_EQ(q.rx_burst(bufs, n).code(), Errc::not_connected);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(q.refill(SIZE_MAX).code(), Errc::not_connected);
  EXPECT_FALSE(q.rx_pending());

  // Attached then detached: the same.
  Link link(layout_of(6, false, 64));
  link.master_rx[0].detach();
  EXPECT_EQ(link.master_rx[0].rx_burst(bufs, n).code(), Errc::not_connected);
  link.slave_tx[0].detach();
  EXPECT_EQ(link.slave_tx[0].alloc(bufs, SIZE_MAX, 100, n).code(), Errc::not_connected);
}

TEST(MemifRingQueue, AttachPostsEveryM2SSlotAndResetsIndices) {
  Link link(layout_of(6, false, 64));
  std::uint16_t head = 0, tail = 0;
  bool mask = true;
  link.slave_rx[0].snapshot(head, tail, mask);
  EXPECT_EQ(head, 64);
  EXPECT_EQ(tail, 0);
  EXPECT_FALSE(mask);
  link.master_rx[0].snapshot(head, tail, mask);
  EXPECT_EQ(head, 0);
  EXPECT_EQ(tail, 0);
  EXPECT_TRUE(link.master_rx[0].fault().empty());
}

TEST(MemifRingQueue, AttachRefusesBadConfig) {
  RingQueue q;
  RingQueue::Config c;
  q.attach(c);  // no ring
  EXPECT_FALSE(q.attached());
  EXPECT_FALSE(q.fault().empty());
  EXPECT_TRUE(q.fault_flag().load());
}

// Packets both ways, intact and in order, many times around the u16 index space.
class MemifTransfer : public ::testing::TestWithParam<std::tuple<int, bool, int>> {};

TEST_P(MemifTransfer, PacketsBothDirectionsWrapIndices) {
  const auto [log2, separate, cl] = GetParam();
  Link link(layout_of(static_cast<std::uint8_t>(log2), separate, static_cast<std::uint32_t>(cl), 256));
  struct Dir {
    RingQueue* tx;
    RingQueue* rx;
  };
  for (Dir d : {Dir{&link.slave_tx[0], &link.master_rx[0]}, Dir{&link.master_tx[0], &link.slave_rx[0]}}) {
    const std::uint32_t total = 70000;  // > 65536: the indices wrap
    std::vector<std::uint32_t> sizes;   // size of packet seq
    std::uint32_t received = 0;
    std::vector<Buffer> bufs(16);
    while (received < total) {
      if (sizes.size() < total) {
        // A burst of equal-size packets (1..400 bytes: one or two 256-byte buffers).
        const auto size = static_cast<std::uint32_t>(1 + (sizes.size() * 37) % 400);
        std::size_t n = 0;
        Status st = d.tx->alloc(bufs, SIZE_MAX, size, n);
        if (st.ok()) {
          std::size_t i = 0;
          while (i < n) {
            const Bytes p = make_packet(static_cast<std::uint32_t>(sizes.size()), size);
            sizes.push_back(size);
            std::size_t off = 0;
            for (;;) {
              ASSERT_LE(bufs[i].len, bufs[i].capacity);
              std::memcpy(bufs[i].data, p.data() + off, bufs[i].len);
              off += bufs[i].len;
              if ((bufs[i++].flags & kBufferNext) == 0) break;
            }
            ASSERT_EQ(off, size);
          }
          std::size_t out = 0;
          ASSERT_TRUE(d.tx->tx_burst(std::span(bufs).first(n), out).ok());
          ASSERT_EQ(out, n);
        } else {
          ASSERT_EQ(st.code(), Errc::would_block) << st.message();
        }
      }
      for (const Bytes& p : receive_all(*d.rx, 7)) {
        ASSERT_LT(received, sizes.size());
        ASSERT_EQ(p, make_packet(received, sizes[received])) << "packet " << received;
        ++received;
      }
    }
    EXPECT_EQ(received, sizes.size());
    EXPECT_TRUE(d.tx->fault().empty()) << d.tx->fault();
    EXPECT_TRUE(d.rx->fault().empty()) << d.rx->fault();
    EXPECT_GE(d.rx->counters().packets, total);
    EXPECT_EQ(d.rx->counters().bytes, d.tx->counters().bytes);
    EXPECT_EQ(d.rx->counters().packets, d.tx->counters().packets);
    EXPECT_EQ(d.rx->counters().bad_descriptors + d.rx->counters().clamped_jumps + d.tx->counters().clamped_jumps, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, MemifTransfer,
                         ::testing::Combine(::testing::Values(6, 10, 14), ::testing::Bool(), ::testing::Values(64, 128)),
                         [](const ::testing::TestParamInfo<MemifTransfer::ParamType>& p) {
                           return "log2_" + std::to_string(std::get<0>(p.param)) +
                                  (std::get<1>(p.param) ? "_separate" : "_oneregion") + "_cl" +
                                  std::to_string(std::get<2>(p.param));
                         });

TEST(MemifRingQueue, JumboChainsSplitAcrossRxBursts) {
  Link link(layout_of(6, false, 64, 2048));
  for (bool s2m : {true, false}) {
    RingQueue& tx = s2m ? link.slave_tx[0] : link.master_tx[0];
    RingQueue& rx = s2m ? link.master_rx[0] : link.slave_rx[0];
    for (int round = 0; round < 40; ++round) {  // 40 x 5 slots = 200 > 64: wraps the ring
      const Bytes p = make_packet(static_cast<std::uint32_t>(round), 9000);
      std::vector<Buffer> bufs(8);
      std::size_t n = 0;
      ASSERT_TRUE(tx.alloc(std::span(bufs).first(5), SIZE_MAX, 9000, n).ok());
      ASSERT_EQ(n, 5u);
      for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(bufs[i].flags, kBufferNext);
        EXPECT_EQ(bufs[i].len, 2048u);
      }
      EXPECT_EQ(bufs[4].flags, 0);
      EXPECT_EQ(bufs[4].len, 9000u - 4 * 2048);
      std::size_t off = 0;
      for (std::size_t i = 0; i < 5; ++i) {
        std::memcpy(bufs[i].data, p.data() + off, bufs[i].len);
        off += bufs[i].len;
      }
      std::size_t sent = 0;
      ASSERT_TRUE(tx.tx_burst(std::span(bufs).first(5), sent).ok());
      // Receive with a 2-buffer span: 2 + 2 + 1.
      Bytes got;
      std::vector<std::size_t> burst_sizes;
      std::vector<Buffer> rb(2);
      for (;;) {
        std::size_t r = 0;
        Status st = rx.rx_burst(rb, r);
        if (!st.ok()) {
          ASSERT_EQ(st.code(), Errc::would_block);
          break;
        }
        burst_sizes.push_back(r);
        for (std::size_t i = 0; i < r; ++i) got.insert(got.end(), rb[i].data, rb[i].data + rb[i].len);
      }
      EXPECT_EQ(burst_sizes, (std::vector<std::size_t>{2, 2, 1}));
      EXPECT_EQ(got, p);
      ASSERT_TRUE(rx.refill(SIZE_MAX).ok());
    }
    EXPECT_EQ(rx.counters().packets, 40u);
    EXPECT_EQ(rx.counters().bytes, 40u * 9000);
  }
}

TEST(MemifRingQueue, AllocReturnsWholePacketsOnly) {
  Link link(layout_of(4, false, 64, 2048));  // 16 slots
  std::vector<Buffer> bufs(16);
  std::size_t n = 0;
  // 3 buffers per packet, 7 bufs: two packets (6 buffers).
  ASSERT_TRUE(link.slave_tx[0].alloc(std::span(bufs).first(7), SIZE_MAX, 5000, n).ok());
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(bufs[2].flags, 0);
  EXPECT_EQ(bufs[5].flags, 0);
  EXPECT_EQ(bufs[5].desc_index, 5);
  // A packet that needs more buffers than the span can hold.
  EXPECT_EQ(link.slave_tx[0].alloc(std::span(bufs).first(2), SIZE_MAX, 5000, n).code(), Errc::invalid_argument);
  EXPECT_EQ(link.slave_tx[0].alloc(bufs, SIZE_MAX, 0, n).code(), Errc::invalid_argument);
  // 10 slots left: three more 3-buffer packets, then the ring is full for that size.
  ASSERT_TRUE(link.slave_tx[0].alloc(bufs, SIZE_MAX, 5000, n).ok());
  EXPECT_EQ(n, 9u);
  EXPECT_EQ(link.slave_tx[0].alloc(bufs, SIZE_MAX, 5000, n).code(), Errc::would_block);
  EXPECT_EQ(link.slave_tx[0].counters().ring_full, 1u);
  ASSERT_TRUE(link.slave_tx[0].alloc(bufs, SIZE_MAX, 100, n).ok());  // one slot still fits one buffer
  EXPECT_EQ(n, 1u);
}

TEST(MemifRingQueue, PartialRefillReturnsOldestFirst) {
  for (bool s2m : {true, false}) {
    Link link(layout_of(4, false, 64, 256));
    RingQueue& tx = s2m ? link.slave_tx[0] : link.master_tx[0];
    RingQueue& rx = s2m ? link.master_rx[0] : link.slave_rx[0];
    for (std::uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(send(tx, make_packet(i, 100), 1));
    std::vector<Buffer> bufs(10);
    std::size_t n = 0;
    ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
    ASSERT_EQ(n, 10u);
    auto released = [&] {
      std::uint16_t head = 0, tail = 0;
      bool mask = false;
      rx.snapshot(head, tail, mask);
      // Master: tail = release point. Slave: head = release point + R.
      return s2m ? tail : static_cast<std::uint16_t>(head - 16);
    };
    EXPECT_EQ(released(), 0);
    ASSERT_TRUE(rx.refill(0).ok());
    EXPECT_EQ(released(), 0);
    ASSERT_TRUE(rx.refill(3).ok());
    EXPECT_EQ(released(), 3);
    // Buffers 3..9 are still valid and intact.
    for (std::uint32_t i = 3; i < 10; ++i) EXPECT_EQ(Bytes(bufs[i].data, bufs[i].data + 100), make_packet(i, 100));
    ASSERT_TRUE(rx.refill(4).ok());
    EXPECT_EQ(released(), 7);
    ASSERT_TRUE(rx.refill(SIZE_MAX).ok());
    EXPECT_EQ(released(), 10);
    ASSERT_TRUE(rx.refill(SIZE_MAX).ok());  // nothing out: no-op
    EXPECT_EQ(released(), 10);
    // The sender can use the released slots again: 16 - 10 + 10 = 16 free.
    std::vector<Buffer> tb(16);
    ASSERT_TRUE(tx.alloc(tb, SIZE_MAX, 100, n).ok());
    EXPECT_EQ(n, 16u);
  }
}

TEST(MemifRingQueue, TxBurstChecksOrderAndLength) {
  for (bool slave : {true, false}) {
    Link link(layout_of(4, false, 64, 256));
    RingQueue& tx = slave ? link.slave_tx[0] : link.master_tx[0];
    RingQueue& rx = slave ? link.master_rx[0] : link.slave_rx[0];
    std::vector<Buffer> bufs(6);
    std::size_t n = 0;
    ASSERT_TRUE(tx.alloc(bufs, SIZE_MAX, 10, n).ok());
    ASSERT_EQ(n, 6u);
    for (auto& b : bufs) std::memset(b.data, 0xAB, b.len);
    std::size_t sent = 99;
    // Skipping buffer 1: buffer 0 is published, then invalid_argument.
    std::vector<Buffer> skip{bufs[0], bufs[2]};
    EXPECT_EQ(tx.tx_burst(skip, sent).code(), Errc::invalid_argument);
    EXPECT_EQ(sent, 1u);
    // Not starting at the oldest unsent one.
    EXPECT_EQ(tx.tx_burst(std::span(bufs).subspan(2, 1), sent).code(), Errc::invalid_argument);
    EXPECT_EQ(sent, 0u);
    // len 0 and len > capacity (the caller's capacity is not trusted).
    Buffer zero = bufs[1];
    zero.len = 0;
    EXPECT_EQ(tx.tx_burst(std::span(&zero, 1), sent).code(), Errc::invalid_argument);
    Buffer big = bufs[1];
    big.len = 257;
    big.capacity = 100000;
    EXPECT_EQ(tx.tx_burst(std::span(&big, 1), sent).code(), Errc::invalid_argument);
    EXPECT_EQ(sent, 0u);
    // Buffers 1..5 in order, but an unreserved 7th index after them: 1..5 go out.
    std::vector<Buffer> rest(bufs.begin() + 1, bufs.end());
    Buffer extra = bufs[5];
    extra.desc_index = static_cast<std::uint16_t>(extra.desc_index + 1);
    rest.push_back(extra);
    EXPECT_EQ(tx.tx_burst(rest, sent).code(), Errc::invalid_argument);
    EXPECT_EQ(sent, 5u);
    const auto got = receive_all(rx);
    ASSERT_EQ(got.size(), 6u);
    for (const auto& p : got) EXPECT_EQ(p, Bytes(10, 0xAB));
    EXPECT_EQ(tx.counters().packets, 6u);
    EXPECT_EQ(tx.counters().bytes, 60u);
    // Empty burst: nothing to do.
    EXPECT_TRUE(tx.tx_burst({}, sent).ok());
    EXPECT_EQ(sent, 0u);
  }
}

TEST(MemifRingQueue, FullRingWouldBlockUntilRefilled) {
  Link link(layout_of(3, false, 64, 256));  // 8 slots
  // Slave -> master.
  for (std::uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(send(link.slave_tx[0], make_packet(i, 50), 1));
  EXPECT_FALSE(send(link.slave_tx[0], make_packet(8, 50), 1));
  EXPECT_EQ(link.slave_tx[0].counters().ring_full, 1u);
  EXPECT_EQ(receive_all(link.master_rx[0]).size(), 8u);
  EXPECT_TRUE(send(link.slave_tx[0], make_packet(8, 50), 1));
  // Master -> slave: 8 posted buffers, then nothing until the slave refills.
  for (std::uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(send(link.master_tx[0], make_packet(i, 50), 1));
  EXPECT_FALSE(send(link.master_tx[0], make_packet(8, 50), 1));
  EXPECT_EQ(link.master_tx[0].counters().ring_full, 1u);
  std::vector<Buffer> bufs(8);
  std::size_t n = 0;
  ASSERT_TRUE(link.slave_rx[0].rx_burst(bufs, n).ok());
  EXPECT_EQ(n, 8u);
  EXPECT_FALSE(send(link.master_tx[0], make_packet(8, 50), 1));  // received but not refilled yet
  ASSERT_TRUE(link.slave_rx[0].refill(2).ok());
  EXPECT_TRUE(send(link.master_tx[0], make_packet(8, 50), 1));
  EXPECT_TRUE(send(link.master_tx[0], make_packet(9, 50), 1));
  EXPECT_FALSE(send(link.master_tx[0], make_packet(10, 50), 1));
}

TEST(MemifRingQueue, MasterTxWithoutPostedBuffersWouldBlock) {
  Link link(layout_of(4, false, 64));
  // Before the slave attaches its receive ring (fresh memory, head = 0) nothing is posted.
  link.slave_rx[0].detach();
  link.head(false).store(0);
  link.master_tx[0].attach(link.config(false, true, link.mem.m2s[0], link.master_views, link.master_efds[1].get(), 0,
                                       RxMode::interrupt));
  std::vector<Buffer> bufs(4);
  std::size_t n = 0;
  EXPECT_EQ(link.master_tx[0].alloc(bufs, SIZE_MAX, 100, n).code(), Errc::would_block);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(link.master_tx[0].counters().ring_full, 1u);
}

TEST(MemifRingQueue, InterruptsFollowMaskInt) {
  Link link(layout_of(4, false, 64, 256));
  const int s2m_fd = link.mem.s2m_eventfds[0].get();
  const int m2s_fd = link.mem.m2s_eventfds[0].get();
  EXPECT_FALSE(readable(s2m_fd));
  ASSERT_TRUE(send(link.slave_tx[0], make_packet(1, 10), 1));
  EXPECT_TRUE(readable(s2m_fd));
  EXPECT_EQ(link.slave_tx[0].counters().interrupts_sent, 1u);
  // Receiving leaves the signal (not empty); the next, empty rx_burst drains it.
  std::vector<Buffer> bufs(4);
  std::size_t n = 0;
  ASSERT_TRUE(link.master_rx[0].rx_burst(bufs, n).ok());
  EXPECT_EQ(n, 1u);
  EXPECT_TRUE(link.master_rx[0].rx_pending() == false);
  EXPECT_EQ(link.master_rx[0].rx_burst(bufs, n).code(), Errc::would_block);
  EXPECT_FALSE(readable(s2m_fd));
  // The master polls: MASK_INT set, the slave stops signalling.
  link.master_rx[0].set_rx_mode(RxMode::polling);
  EXPECT_EQ(link.master_rx[0].rx_mode(), RxMode::polling);
  std::uint16_t h = 0, t = 0;
  bool mask = false;
  link.master_rx[0].snapshot(h, t, mask);
  EXPECT_TRUE(mask);
  ASSERT_TRUE(send(link.slave_tx[0], make_packet(2, 10), 1));
  EXPECT_FALSE(readable(s2m_fd));
  EXPECT_EQ(link.slave_tx[0].counters().interrupts_sent, 1u);
  EXPECT_TRUE(link.master_rx[0].rx_pending());
  EXPECT_EQ(receive_all(link.master_rx[0]).size(), 1u);
  // Back to interrupts; and the mode set explicitly survives a re-attach.
  link.master_rx[0].set_rx_mode(RxMode::interrupt);
  ASSERT_TRUE(send(link.slave_tx[0], make_packet(3, 10), 1));
  EXPECT_TRUE(readable(s2m_fd));
  EXPECT_EQ(receive_all(link.master_rx[0]).size(), 1u);
  EXPECT_FALSE(readable(s2m_fd));
  // Master -> slave, slave polling from the start (Config::rx_mode).
  Link polling(layout_of(4, false, 64, 256), RxMode::polling);
  ASSERT_TRUE(send(polling.master_tx[0], make_packet(1, 10), 1));
  EXPECT_FALSE(readable(polling.mem.m2s_eventfds[0].get()));
  EXPECT_EQ(polling.master_tx[0].counters().interrupts_sent, 0u);
  ASSERT_TRUE(send(link.master_tx[0], make_packet(1, 10), 1));
  EXPECT_TRUE(readable(m2s_fd));
}

TEST(MemifRingQueue, RxModeSetExplicitlySurvivesReattach) {
  Link link(layout_of(4, false, 64, 256));
  link.master_rx[0].set_rx_mode(RxMode::polling);
  link.master_rx[0].attach(link.config(false, false, link.mem.s2m[0], link.master_views, link.master_efds[0].get(), 0,
                                       RxMode::interrupt));
  EXPECT_EQ(link.master_rx[0].rx_mode(), RxMode::polling);
  std::uint16_t h = 0, t = 0;
  bool mask = false;
  link.master_rx[0].snapshot(h, t, mask);
  EXPECT_TRUE(mask);
}

// ---- a lying slave -----------------------------------------------------------------------------

TEST(MemifRingQueue, MasterDropsBadSlaveDescriptors) {
  for (bool separate : {false, true}) {
    Link link(layout_of(4, separate, 64, 256));
    const RegionView& buf_region = link.master_views[link.mem.buffer_region];
    auto write = [&](std::uint32_t slot, std::uint16_t flags, std::uint16_t region, std::uint32_t length,
                     std::uint32_t offset) { link.write_s2m(slot, flags, region, length, offset); };
    auto good = [&](std::uint32_t slot, std::uint8_t fill, std::uint16_t flags = 0) {
      const auto off = static_cast<std::uint32_t>(link.mem.buffer_offset(true, 0, slot));
      std::memset(buf_region.base + off, fill, 64);
      write(slot, flags, link.mem.buffer_region, 64, off);
    };
    const auto region_size = static_cast<std::uint32_t>(buf_region.size);
    good(0, 0xA0);
    write(1, 0, 9, 64, 0);                                      // region out of range
    good(2, 0xA2);
    write(3, 0, link.mem.buffer_region, 128, region_size - 64);  // offset + length past the end
    good(4, 0xA4);
    write(5, 0, link.mem.buffer_region, 0, 0);                  // length 0
    good(6, 0xA6);
    good(7, 0xA7, wire::kDescFlagNext);                         // chain of 2 with a bad second
    write(8, 0, link.mem.buffer_region, 64, 0xFFFFFFF0u);       // offset + length overflows u32
    good(9, 0xA9);
    link.head(true).store(10, std::memory_order_release);

    RingQueue& rx = link.master_rx[0];
    std::vector<Buffer> bufs(16);
    std::size_t n = 0;
    ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
    ASSERT_EQ(n, 5u);
    const std::uint8_t want[] = {0xA0, 0xA2, 0xA4, 0xA6, 0xA9};
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(bufs[i].len, 64u);
      EXPECT_EQ(bufs[i].data[0], want[i]);
      EXPECT_EQ(bufs[i].flags, 0);
      EXPECT_TRUE(link.in_master_region(bufs[i].data, bufs[i].len));
    }
    EXPECT_EQ(rx.counters().bad_descriptors, 4u);
    EXPECT_EQ(rx.counters().dropped_packets, 4u);
    EXPECT_EQ(rx.counters().packets, 5u);
    EXPECT_TRUE(rx.fault_flag().load(std::memory_order_acquire));
    EXPECT_NE(rx.fault().find("S2M ring 0 slot 1"), std::string::npos) << rx.fault();
    EXPECT_NE(rx.fault().find("region 9"), std::string::npos) << rx.fault();
    // Refill returns everything, dropped slots included.
    ASSERT_TRUE(rx.refill(SIZE_MAX).ok());
    EXPECT_EQ(link.tail(true).load(), 10);
  }
}

/// The master clears NEXT on the S2M descriptors it returns that it read with NEXT (DPDK 22.11
/// leaves a stale NEXT on reused slots), and writes nothing into the descriptors of one-buffer
/// packets: no store, so no descriptor line is taken back from the slave per packet (issue 18
/// item 10). A flag bit the master does not know shows which descriptors were written.
TEST(MemifRingQueue, MasterClearsNextOnlyOnReturnedChainSlots) {
  Link link(layout_of(4, false, 64, 256));
  constexpr std::uint16_t kOther = 0x0100;  // not NEXT: a write of flags = 0 would clear it
  auto write = [&](std::uint32_t slot, std::uint16_t flags) {
    link.write_s2m(slot, flags, link.mem.buffer_region, 64,
                   static_cast<std::uint32_t>(link.mem.buffer_offset(true, 0, slot)));
  };
  write(0, kOther);                          // one-buffer packet
  write(1, kOther | wire::kDescFlagNext);    // chain of two
  write(2, kOther);
  write(3, kOther);                          // one-buffer packet
  link.head(true).store(4, std::memory_order_release);
  RingQueue& rx = link.master_rx[0];
  std::vector<Buffer> bufs(8);
  std::size_t n = 0;
  ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
  ASSERT_EQ(n, 4u);
  EXPECT_EQ(bufs[0].flags, 0);
  EXPECT_EQ(bufs[1].flags, kBufferNext);
  EXPECT_EQ(bufs[2].flags, 0);
  EXPECT_EQ(bufs[3].flags, 0);
  EXPECT_EQ(rx.counters().packets, 3u);
  ASSERT_TRUE(rx.refill(n).ok());
  EXPECT_EQ(link.tail(true).load(std::memory_order_acquire), 4);
  EXPECT_EQ(link.desc(true, 1)->flags & wire::kDescFlagNext, 0) << "NEXT left on a returned chain slot";
  EXPECT_EQ(link.desc(true, 0)->flags, kOther) << "a one-buffer packet's descriptor was written";
  EXPECT_EQ(link.desc(true, 2)->flags, kOther);
  EXPECT_EQ(link.desc(true, 3)->flags, kOther);

  // The next lap: one-buffer packets only; none of their descriptors is written either.
  for (std::uint32_t slot = 4; slot < 8; ++slot) write(slot, kOther);
  link.head(true).store(8, std::memory_order_release);
  ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
  ASSERT_EQ(n, 4u);
  ASSERT_TRUE(rx.refill(n).ok());
  for (std::uint32_t slot = 4; slot < 8; ++slot) EXPECT_EQ(link.desc(true, slot)->flags, kOther) << slot;
}

/// A zero-copy slave (VPP style) points each descriptor wherever its buffer is this time: another
/// offset, another length, after every refill. The master must take region and offset from the
/// descriptor at each read, never from a layout it assumed (issue 6: "accept every layout real
/// slaves produce ... zero-copy layouts with per-refill offsets").
TEST(MemifRingQueue, MasterFollowsPerRefillOffsets) {
  for (bool separate : {false, true}) {
    SCOPED_TRACE(separate ? "two regions" : "one region");
    Link link(layout_of(4, separate, 64, 256));  // 16 slots of 256-byte buffers
    const RegionView& region = link.master_views[link.mem.buffer_region];
    RingQueue& rx = link.master_rx[0];
    std::uint16_t head = 0;
    for (std::uint32_t lap = 0; lap < 3; ++lap) {
      // Slot i of this lap uses the buffer of slot (i * 5 + lap * 3) % 16, at an odd offset
      // inside it, with a length that changes per lap.
      for (std::uint32_t i = 0; i < 16; ++i) {
        const auto buffer = static_cast<std::uint32_t>(link.mem.buffer_offset(true, 0, (i * 5 + lap * 3) % 16));
        const std::uint32_t off = buffer + 1 + lap * 7;
        const std::uint32_t len = 40 + i + lap * 50;
        std::memset(region.base + off, static_cast<int>(lap * 16 + i), len);
        wire::Descriptor* d = link.desc(true, (head + i) & 15);
        d->flags = 0;
        d->region = link.mem.buffer_region;
        d->length = len;
        d->offset = off;
      }
      head = static_cast<std::uint16_t>(head + 16);
      link.head(true).store(head, std::memory_order_release);
      std::vector<Buffer> bufs(16);
      std::size_t n = 0;
      ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
      ASSERT_EQ(n, 16u);
      for (std::uint32_t i = 0; i < 16; ++i) {
        const auto buffer = static_cast<std::uint32_t>(link.mem.buffer_offset(true, 0, (i * 5 + lap * 3) % 16));
        EXPECT_EQ(bufs[i].data, region.base + buffer + 1 + lap * 7) << "lap " << lap << " slot " << i;
        ASSERT_EQ(bufs[i].len, 40 + i + lap * 50);
        for (std::uint32_t b = 0; b < bufs[i].len; ++b)
          ASSERT_EQ(bufs[i].data[b], static_cast<std::uint8_t>(lap * 16 + i)) << "lap " << lap << " slot " << i;
      }
      ASSERT_TRUE(rx.refill(SIZE_MAX).ok());
      EXPECT_EQ(link.tail(true).load(), head);
    }
    EXPECT_EQ(rx.counters().packets, 48u);
    EXPECT_EQ(rx.counters().bad_descriptors, 0u);
  }
}

TEST(MemifRingQueue, MasterClampsHeadJump) {
  Link link(layout_of(4, false, 64, 256));
  RingQueue& rx = link.master_rx[0];
  ASSERT_TRUE(send(link.slave_tx[0], make_packet(0, 30), 1));
  ASSERT_TRUE(send(link.slave_tx[0], make_packet(1, 30), 1));
  // A jump of 40000 slots.
  link.head(true).store(static_cast<std::uint16_t>(2 + 40000), std::memory_order_release);
  std::vector<Buffer> bufs(64);
  std::size_t n = 0;
  ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
  EXPECT_EQ(n, 16u);  // clamped to the ring: 16 slots
  EXPECT_EQ(Bytes(bufs[0].data, bufs[0].data + 30), make_packet(0, 30));
  EXPECT_EQ(Bytes(bufs[1].data, bufs[1].data + 30), make_packet(1, 30));
  for (std::size_t i = 0; i < n; ++i) EXPECT_TRUE(link.in_master_region(bufs[i].data, bufs[i].len));
  EXPECT_EQ(rx.counters().clamped_jumps, 1u);
  EXPECT_NE(rx.fault().find("S2M ring 0"), std::string::npos) << rx.fault();
  EXPECT_NE(rx.fault().find("head"), std::string::npos) << rx.fault();
  // Counted once for the same lie, and nothing more than the ring can hold comes out.
  ASSERT_TRUE(rx.refill(SIZE_MAX).ok());
  ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
  EXPECT_LE(n, 16u);
  EXPECT_EQ(rx.counters().clamped_jumps, 1u);
}

TEST(MemifRingQueue, MasterDropsChainThatNeverEnds) {
  Link link(layout_of(3, false, 64, 256));
  for (std::uint32_t s = 0; s < 8; ++s) link.desc(true, s)->flags = wire::kDescFlagNext;
  link.head(true).store(5, std::memory_order_release);
  std::vector<Buffer> bufs(16);
  std::size_t n = 0;
  // Incomplete chain: wait for more, nothing dropped.
  EXPECT_EQ(link.master_rx[0].rx_burst(bufs, n).code(), Errc::would_block);
  EXPECT_EQ(link.master_rx[0].counters().dropped_packets, 0u);
  EXPECT_TRUE(link.master_rx[0].fault().empty());
  // Completes: one 6-buffer chain.
  link.desc(true, 5)->flags = 0;
  link.head(true).store(6, std::memory_order_release);
  ASSERT_TRUE(link.master_rx[0].rx_burst(bufs, n).ok());
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(link.master_rx[0].counters().packets, 1u);
  ASSERT_TRUE(link.master_rx[0].refill(SIZE_MAX).ok());
  // A chain over all 8 slots of the ring can never end: dropped.
  for (std::uint32_t s = 0; s < 8; ++s) link.desc(true, s)->flags = wire::kDescFlagNext;
  link.head(true).store(14, std::memory_order_release);
  EXPECT_EQ(link.master_rx[0].rx_burst(bufs, n).code(), Errc::would_block);
  EXPECT_EQ(link.master_rx[0].counters().dropped_packets, 1u);
  EXPECT_NE(link.master_rx[0].fault().find("without an end"), std::string::npos) << link.master_rx[0].fault();
  ASSERT_TRUE(link.master_rx[0].refill(SIZE_MAX).ok());
  EXPECT_EQ(link.tail(true).load(), 14);
}

TEST(MemifRingQueue, MasterTxRefusesBadPostedDescriptor) {
  Link link(layout_of(4, false, 64, 256));
  // The slave "posted" a descriptor pointing past its region in slot 1.
  link.desc(false, 1)->offset = static_cast<std::uint32_t>(link.master_views[0].size - 100);
  std::vector<Buffer> bufs(4);
  std::size_t n = 0;
  ASSERT_TRUE(link.master_tx[0].alloc(bufs, SIZE_MAX, 100, n).ok());  // slot 0 only
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(link.master_tx[0].counters().bad_descriptors, 1u);
  EXPECT_NE(link.master_tx[0].fault().find("M2S ring 0 slot 1"), std::string::npos) << link.master_tx[0].fault();
  std::size_t sent = 0;
  bufs[0].len = 1;
  ASSERT_TRUE(link.master_tx[0].tx_burst(std::span(bufs).first(1), sent).ok());
  EXPECT_EQ(link.master_tx[0].alloc(bufs, SIZE_MAX, 100, n).code(), Errc::protocol);
  EXPECT_EQ(link.master_tx[0].counters().bad_descriptors, 1u);  // the same slot is counted once
  // Length 0 posted.
  Link l2(layout_of(4, false, 64, 256));
  l2.desc(false, 0)->length = 0;
  EXPECT_EQ(l2.master_tx[0].alloc(bufs, SIZE_MAX, 100, n).code(), Errc::protocol);
  EXPECT_NE(l2.master_tx[0].fault().find("length"), std::string::npos);
}

TEST(MemifRingQueue, MasterTxUsesPostedCapacities) {
  Link link(layout_of(4, false, 64, 2048));
  // A slave that posts smaller buffers (e.g. headroom): capacity comes from desc.length.
  for (std::uint32_t s = 0; s < 16; ++s) link.desc(false, s)->length = 1000;
  std::vector<Buffer> bufs(8);
  std::size_t n = 0;
  ASSERT_TRUE(link.master_tx[0].alloc(bufs, SIZE_MAX, 2500, n).ok());
  ASSERT_EQ(n, 6u);  // two packets of 3 x 1000
  EXPECT_EQ(bufs[0].capacity, 1000u);
  EXPECT_EQ(bufs[2].len, 500u);
  EXPECT_EQ(bufs[2].flags, 0);
  bufs[0].len = 1001;  // over the posted capacity
  std::size_t sent = 0;
  EXPECT_EQ(link.master_tx[0].tx_burst(bufs, sent).code(), Errc::invalid_argument);
  EXPECT_EQ(sent, 0u);
}

// ---- a lying master ----------------------------------------------------------------------------

TEST(MemifRingQueue, SlaveDropsBadMasterDescriptors) {
  Link link(layout_of(4, true, 64, 256));
  RingQueue& rx = link.slave_rx[0];
  // Master fills slots 0..3 by hand: 0 good, 1 length > buffer_size, 2 length 0, 3 good but with
  // scribbled region/offset (ignored: the slave reads its own buffer).
  const auto buf = [&](std::uint32_t slot) {
    return link.slave_views[link.mem.buffer_region].base + link.mem.buffer_offset(false, 0, slot);
  };
  std::memset(buf(0), 0x10, 100);
  link.desc(false, 0)->length = 100;
  link.desc(false, 1)->length = 257;
  link.desc(false, 2)->length = 0;
  std::memset(buf(3), 0x13, 200);
  link.desc(false, 3)->length = 200;
  link.desc(false, 3)->region = 77;
  link.desc(false, 3)->offset = 0xFFFFFF00u;
  link.tail(false).store(4, std::memory_order_release);
  std::vector<Buffer> bufs(8);
  std::size_t n = 0;
  ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(bufs[0].data, buf(0));
  EXPECT_EQ(bufs[0].len, 100u);
  EXPECT_EQ(bufs[0].data[99], 0x10);
  EXPECT_EQ(bufs[1].data, buf(3));
  EXPECT_EQ(bufs[1].len, 200u);
  EXPECT_EQ(bufs[1].data[199], 0x13);
  EXPECT_EQ(rx.counters().bad_descriptors, 2u);
  EXPECT_EQ(rx.counters().dropped_packets, 2u);
  EXPECT_NE(rx.fault().find("M2S ring 0 slot 1"), std::string::npos) << rx.fault();
  EXPECT_NE(rx.fault().find("257"), std::string::npos) << rx.fault();
  // Refill re-posts from the slave's own table, whatever the master wrote.
  ASSERT_TRUE(rx.refill(SIZE_MAX).ok());
  EXPECT_EQ(link.head(false).load(), 4 + 16);
  EXPECT_EQ(link.desc(false, 3)->region, link.mem.buffer_region);
  EXPECT_EQ(link.desc(false, 3)->offset, link.mem.buffer_offset(false, 0, 3));
  EXPECT_EQ(link.desc(false, 3)->length, 256u);
}

TEST(MemifRingQueue, SlaveClampsTailJump) {
  Link link(layout_of(4, false, 64, 256));
  RingQueue& rx = link.slave_rx[0];
  // Posted: [0, 16). The master claims tail = 1000.
  link.tail(false).store(1000, std::memory_order_release);
  std::vector<Buffer> bufs(64);
  std::size_t n = 0;
  ASSERT_TRUE(rx.rx_burst(bufs, n).ok());
  EXPECT_EQ(n, 16u);  // clamped to the posted range
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(bufs[i].data, link.slave_views[0].base + link.mem.buffer_offset(false, 0, static_cast<std::uint32_t>(i)));
    EXPECT_LE(bufs[i].len, 256u);
  }
  EXPECT_EQ(rx.counters().clamped_jumps, 1u);
  EXPECT_NE(rx.fault().find("M2S ring 0"), std::string::npos) << rx.fault();
  EXPECT_NE(rx.fault().find("tail"), std::string::npos) << rx.fault();
  // The slave's S2M tx also clamps a master tail beyond what it published.
  link.tail(true).store(500, std::memory_order_release);
  std::vector<Buffer> tb(4);
  ASSERT_TRUE(link.slave_tx[0].alloc(tb, SIZE_MAX, 10, n).ok());
  EXPECT_EQ(link.slave_tx[0].counters().clamped_jumps, 1u);
  EXPECT_NE(link.slave_tx[0].fault().find("S2M ring 0"), std::string::npos) << link.slave_tx[0].fault();
}

// ---- two threads -----------------------------------------------------------------------------

TEST(MemifRingQueue, ConcurrentProducerConsumer) {
  Link link(layout_of(8, false, 64, 512));
  constexpr std::uint32_t kPackets = 100000;
  for (bool s2m : {true, false}) {
    RingQueue& tx = s2m ? link.slave_tx[0] : link.master_tx[0];
    RingQueue& rx = s2m ? link.master_rx[0] : link.slave_rx[0];
    std::atomic<bool> stop{false};
    std::thread producer([&] {
      std::vector<Buffer> bufs(8);
      std::uint32_t seq = 0;
      while (seq < kPackets && !stop.load()) {
        const std::uint32_t size = 8 + (seq % 1200);  // up to 3 buffers of 512
        const std::size_t need = (size + 511) / 512;  // exactly one packet's buffers
        std::size_t n = 0;
        Status st = tx.alloc(std::span(bufs).first(need), SIZE_MAX, size, n);
        if (st.code() == Errc::would_block) {
          std::this_thread::yield();
          continue;
        }
        if (!st.ok() || n != need) {
          ADD_FAILURE() << "alloc: " << st.message() << ", " << n << " buffers";
          break;
        }
        const Bytes p = make_packet(seq, size);
        std::size_t off = 0;
        for (std::size_t i = 0; i < n; ++i) {
          std::memcpy(bufs[i].data, p.data() + off, bufs[i].len);
          off += bufs[i].len;
        }
        std::size_t sent = 0;
        if (off != size || !tx.tx_burst(std::span(bufs).first(n), sent).ok() || sent != n) {
          ADD_FAILURE() << "tx_burst of packet " << seq;
          break;
        }
        ++seq;
      }
    });
    std::uint32_t got = 0;
    Bytes partial;
    std::vector<Buffer> bufs(5);
    while (got < kPackets) {
      std::size_t n = 0;
      Status st = rx.rx_burst(bufs, n);
      if (st.code() == Errc::would_block) {
        std::this_thread::yield();
        continue;
      }
      if (!st.ok()) {
        ADD_FAILURE() << "rx_burst: " << st.message();
        break;
      }
      bool bad = false;
      for (std::size_t i = 0; i < n && !bad; ++i) {
        partial.insert(partial.end(), bufs[i].data, bufs[i].data + bufs[i].len);
        if ((bufs[i].flags & kBufferNext) == 0) {
          if (partial != make_packet(got, 8 + (got % 1200))) {
            ADD_FAILURE() << "packet " << got << " differs";
            bad = true;
          }
          partial.clear();
          ++got;
        }
      }
      if (bad || !rx.refill(n).ok()) break;
    }
    stop.store(true);
    producer.join();
    EXPECT_TRUE(rx.fault().empty()) << rx.fault();
    EXPECT_TRUE(tx.fault().empty()) << tx.fault();
  }
}

}  // namespace
}  // namespace shmlink::memif::detail
