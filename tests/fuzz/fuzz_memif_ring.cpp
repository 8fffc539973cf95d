// SPDX-License-Identifier: MIT
// libFuzzer target: memif descriptor validation over a mutated ring (issue 17, "Keep it fixed").
//
// The input plays the peer's part of the shared memory: it fills the regions, writes ring
// indices, descriptors and flags at any moment, while the queues of this side receive, refill,
// allocate and transmit through detail::RingQueue exactly as an Interface does. Both sides:
//   master: region bytes from the input (every descriptor is the slave's), two regions sized by
//           the input and allocated to the byte, so that ASan flags any access one byte past a
//           region that validation let through;
//   slave:  its own memory (create_slave_memory), in which the input writes what a hostile
//           master can write (tail, flags, M2S descriptors).
// Every buffer handed out is read (rx) or written (tx) over its whole length or capacity.
#include "memif/ring.hpp"
#include "memif/wire.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace {

namespace md = shmlink::memif::detail;
namespace mw = shmlink::memif::wire;
using shmlink::memif::Buffer;

constexpr std::uint8_t kLog2 = 4;  // 16 slots: wrap-around within a few operations
constexpr std::uint32_t kCacheLine = 64;
const std::uint64_t kRingBytes = mw::ring_bytes(kCacheLine, kLog2);

/// Bytes handed out: summed, so that every byte is really loaded.
volatile std::uint8_t g_sink;

void read_all(std::span<const Buffer> bufs) {
  std::uint8_t x = 0;
  for (const Buffer& b : bufs)
    for (std::uint32_t i = 0; i < b.len; ++i) x = static_cast<std::uint8_t>(x + b.data[i]);
  g_sink = x;
}

/// Writes a u16 of a ring header (head at 6, flags at 4, tail at the cache line).
void put16(std::uint8_t* ring, std::size_t offset, std::uint16_t v) { std::memcpy(ring + offset, &v, sizeof v); }

/// The operations both sides share, driven by the input until it runs out.
void run(FuzzedDataProvider& in, md::RingQueue& rx, md::RingQueue& tx, std::uint8_t* rx_ring, std::uint8_t* tx_ring,
         bool slave) {
  std::array<Buffer, 8> bufs{};
  // The peer's index: the slave writes head, the master tail.
  const std::size_t peer_index = slave ? mw::ring_tail_offset(kCacheLine) : 6;
  while (in.remaining_bytes() > 0) {
    std::size_t n = 0;
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: put16(rx_ring, peer_index, in.ConsumeIntegral<std::uint16_t>()); break;
      case 1: put16(tx_ring, peer_index, in.ConsumeIntegral<std::uint16_t>()); break;
      case 2:
      case 3: {  // the peer writes a whole descriptor of either ring
        std::uint8_t* ring = in.ConsumeBool() ? rx_ring : tx_ring;
        const auto slot = in.ConsumeIntegralInRange<std::uint32_t>(0, (1U << kLog2) - 1);
        auto bytes = in.ConsumeBytes<std::uint8_t>(sizeof(mw::Descriptor));
        if (!bytes.empty())
          std::memcpy(ring + mw::ring_desc_offset(kCacheLine) + slot * sizeof(mw::Descriptor), bytes.data(), bytes.size());
        break;
      }
      case 4: {
        const auto want = in.ConsumeIntegralInRange<std::size_t>(1, bufs.size());
        if (rx.rx_burst(std::span<Buffer>(bufs.data(), want), n).ok()) read_all(std::span<const Buffer>(bufs.data(), n));
        break;
      }
      case 5: (void)rx.refill(in.ConsumeIntegralInRange<std::size_t>(0, 20)); break;
      case 6: {
        const auto packets = in.ConsumeIntegralInRange<std::size_t>(1, 4);
        const auto bytes = in.ConsumeIntegralInRange<std::uint32_t>(0, 3000);
        if (!tx.alloc(bufs, packets, bytes, n).ok()) break;
        for (std::size_t k = 0; k < n; ++k) {
          std::memset(bufs[k].data, 0x5A, bufs[k].capacity);
          bufs[k].len = in.ConsumeIntegralInRange<std::uint32_t>(0, bufs[k].capacity + 1);
        }
        std::size_t sent = 0;
        (void)tx.tx_burst(std::span<const Buffer>(bufs.data(), in.ConsumeIntegralInRange<std::size_t>(0, n)), sent);
        break;
      }
      case 7: put16(in.ConsumeBool() ? rx_ring : tx_ring, 4, in.ConsumeIntegral<std::uint16_t>()); break;
    }
  }
}

md::RingQueue::Config config(bool slave, bool transmit, std::uint8_t* ring, std::span<const md::RegionView> views,
                             const md::SlaveMemory* mem) {
  md::RingQueue::Config c;
  c.slave = slave;
  c.transmit = transmit;
  c.ring = ring;
  c.log2 = kLog2;
  c.cache_line = kCacheLine;
  c.regions = views;
  c.slave_memory = mem;
  c.rx_mode = shmlink::memif::RxMode::polling;
  return c;
}

/// The master's queues over regions whose every byte comes from the input.
void master_side(FuzzedDataProvider& in) {
  // Region 0 holds both rings (S2M at 0, M2S after it); region 1 only buffers. Sizes in 8-byte
  // steps, allocated exactly (the rings are 8-aligned; ASan's granule is 8 bytes).
  const auto words0 = in.ConsumeIntegralInRange<std::size_t>(2 * kRingBytes / 8, 2048);
  const auto words1 = in.ConsumeIntegralInRange<std::size_t>(1, 2048);
  auto r0 = std::make_unique<std::uint64_t[]>(words0);
  auto r1 = std::make_unique<std::uint64_t[]>(words1);
  auto fill = in.ConsumeBytes<std::uint8_t>(words0 * 8);
  if (!fill.empty()) std::memcpy(r0.get(), fill.data(), fill.size());
  const std::array<md::RegionView, 2> views{{{reinterpret_cast<std::uint8_t*>(r0.get()), words0 * 8},
                                             {reinterpret_cast<std::uint8_t*>(r1.get()), words1 * 8}}};
  std::uint8_t* s2m = md::locate_ring(views[0], 0, kLog2, kCacheLine);
  std::uint8_t* m2s = md::locate_ring(views[0], static_cast<std::uint32_t>(kRingBytes), kLog2, kCacheLine);
  if (s2m == nullptr || m2s == nullptr) return;
  md::RingQueue rx, tx;
  rx.attach(config(false, false, s2m, views, nullptr));
  tx.attach(config(false, true, m2s, views, nullptr));
  run(in, rx, tx, s2m, m2s, false);
}

/// The slave's queues over its own memory, which the input scribbles on as a master may.
void slave_side(FuzzedDataProvider& in) {
  static const md::SlaveMemory mem = [] {
    md::SlaveLayout lay;
    lay.log2 = kLog2;
    lay.buffer_size = 256;
    return md::create_slave_memory(lay, "fuzz");
  }();
  static const std::vector<md::RegionView> views = mem.views();
  std::uint8_t* s2m = md::locate_ring(views[0], mem.s2m[0].offset, kLog2, kCacheLine);
  std::uint8_t* m2s = md::locate_ring(views[0], mem.m2s[0].offset, kLog2, kCacheLine);
  md::RingQueue rx, tx;
  tx.attach(config(true, true, s2m, views, &mem));
  rx.attach(config(true, false, m2s, views, &mem));
  run(in, rx, tx, m2s, s2m, true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeBool())
    slave_side(in);
  else
    master_side(in);
  return 0;
}
