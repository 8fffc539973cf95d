// SPDX-License-Identifier: MIT
// shmlink memif against Debian's DPDK (dpdk-testpmd with the net_memif PMD), in both roles:
// testpmd forwards (macswap) what shmlink sends, and shmlink checks that every frame comes back
// once, in order and intact with its MAC addresses swapped, 64 B to 9000 B (chained) (issue 6;
// reference memif.md section 16.3).
#include "test_util.hpp"
#include "testpmd.hpp"

#include <shmlink/memif.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace shmlink::test {
namespace {

using namespace std::chrono_literals;
using memif::Buffer;

/// Frame `seq`: destination MAC, source MAC, ethertype 0x88b5 (local experimental), seq, pattern.
std::vector<std::uint8_t> frame_of(std::uint32_t seq, std::size_t size) {
  std::vector<std::uint8_t> f(size);
  const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  std::memcpy(f.data() + 14, &seq, 4);
  for (std::size_t i = 18; i < size; ++i) f[i] = static_cast<std::uint8_t>(seq * 7 + i * 13);
  return f;
}

std::size_t size_of(std::uint32_t seq) {
  static constexpr std::array<std::size_t, 6> kSizes{64, 1500, 9000, 60, 2049, 4000};
  return kSizes[seq % kSizes.size()];
}

bool send_frame(memif::Interface& ifc, const std::vector<std::uint8_t>& f) {
  std::array<Buffer, 16> bufs{};
  std::size_t n = 0;
  if (!ifc.alloc(0, bufs, 1, static_cast<std::uint32_t>(f.size()), n)) return false;
  std::size_t off = 0;
  for (std::size_t k = 0; k < n; ++k) {
    std::memcpy(bufs[k].data, f.data() + off, bufs[k].len);
    off += bufs[k].len;
  }
  std::size_t sent = 0;
  return ifc.tx_burst(0, std::span<const Buffer>(bufs.data(), n), sent).ok() && sent == n;
}

void receive_frames(memif::Interface& ifc, std::vector<std::uint8_t>& partial, std::vector<std::vector<std::uint8_t>>& out) {
  std::array<Buffer, 64> bufs{};
  std::size_t n = 0;
  while (ifc.rx_burst(0, bufs, n).ok()) {
    for (std::size_t k = 0; k < n; ++k) {
      partial.insert(partial.end(), bufs[k].data, bufs[k].data + bufs[k].len);
      if ((bufs[k].flags & memif::kBufferNext) == 0) {
        out.push_back(std::move(partial));
        partial.clear();
      }
    }
    (void)ifc.refill(0, n);
  }
}

/// What came back must be frame `seq` with its MACs swapped (testpmd macswap).
std::string check_echo(const std::vector<std::uint8_t>& got, std::uint32_t seq) {
  auto want = frame_of(seq, size_of(seq));
  std::swap_ranges(want.begin(), want.begin() + 6, want.begin() + 6);
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
  if (got != want) return "content differs";
  return "";
}

/// Sends `count` frames with a bounded window and checks every echo. A warm-up frame (seq
/// 0xFFFFFFFF, repeated) runs first so that frames testpmd drops while it starts are not counted.
void bounce(memif::Socket& sock, memif::Interface& ifc, std::uint32_t count) {
  ASSERT_TRUE(wait_until([&] {
    (void)sock.poll(5ms);
    return ifc.connected();
  }, 30)) << "no link: " << ifc.last_disconnect();
  std::vector<std::uint8_t> partial;
  std::vector<std::vector<std::uint8_t>> got;
  // warm-up
  bool warm = false;
  const auto warm_deadline = std::chrono::steady_clock::now() + 20s;
  while (!warm && std::chrono::steady_clock::now() < warm_deadline) {
    auto f = frame_of(0xFFFFFFFFu, 64);
    (void)send_frame(ifc, f);
    const auto until = std::chrono::steady_clock::now() + 100ms;
    while (!warm && std::chrono::steady_clock::now() < until) {
      (void)sock.poll(0ms);
      receive_frames(ifc, partial, got);
      for (auto& g : got) {
        std::uint32_t s;
        std::memcpy(&s, g.data() + 14, 4);
        if (s == 0xFFFFFFFFu) warm = true;
      }
      got.clear();
    }
  }
  ASSERT_TRUE(warm) << "testpmd never echoed the warm-up frame";
  // drain late warm-up echoes
  const auto quiet = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < quiet) {
    receive_frames(ifc, partial, got);
    got.clear();
  }
  std::uint32_t next_send = 0, next_recv = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (next_recv < count) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "stalled at " << next_recv << " of " << count;
    ASSERT_TRUE(ifc.connected()) << ifc.last_disconnect();
    while (next_send < count && next_send - next_recv < 16 && send_frame(ifc, frame_of(next_send, size_of(next_send))))
      ++next_send;
    receive_frames(ifc, partial, got);
    for (auto& g : got) {
      ASSERT_EQ(check_echo(g, next_recv), "") << "frame " << next_recv;
      ++next_recv;
    }
    got.clear();
    (void)sock.poll(0ms);
  }
  EXPECT_EQ(ifc.details().rx_queues[0].counters.bad_descriptors, 0U);
}

TEST(MemifTestpmd, ShmlinkSlaveAgainstTestpmdServerOnAFilesystemSocket) {
  if (!testpmd_available()) GTEST_SKIP() << testpmd_unavailable_reason();
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  TestpmdOptions o;
  o.role = "server";
  o.socket = path;
  o.id = 4;
  o.forward_mode = "macswap";
  o.cpu = allowed_cpus().back();
  Testpmd pmd(o, dir.path());
  ASSERT_TRUE(pmd.wait_for_log(Testpmd::kListening, 20s)) << pmd.describe();
  memif::SocketOptions so;
  so.path = path;
  so.reconnect_interval = 100ms;
  memif::Socket sock(so);
  memif::InterfaceOptions io;
  io.id = 4;
  io.role = memif::Role::slave;
  io.rx_mode = memif::RxMode::polling;
  memif::Interface& ifc = sock.add_interface(io);
  bounce(sock, ifc, 600);
  EXPECT_EQ(ifc.details().peer_app.rfind("DPDK", 0), 0U) << ifc.details().peer_app;
}

TEST(MemifTestpmd, ShmlinkMasterAgainstTestpmdClientOnAnAbstractSocket) {
  if (!testpmd_available()) GTEST_SKIP() << testpmd_unavailable_reason();
  TempStreamDir dir;
  const std::string name = dir.path() + "/abstract";
  memif::SocketOptions so;
  so.path = "@" + name;  // DPDK socket=NAME with socket-abstract=yes is libmemif's @NAME
  memif::Socket sock(so);
  memif::InterfaceOptions io;
  io.id = 5;
  io.role = memif::Role::master;
  io.secret = "sesame";
  memif::Interface& ifc = sock.add_interface(io);
  TestpmdOptions o;
  o.role = "client";
  o.socket = name;
  o.abstract = true;
  o.id = 5;
  o.secret = "sesame";
  o.forward_mode = "macswap";
  o.cpu = allowed_cpus().back();
  Testpmd pmd(o, dir.path());
  bounce(sock, ifc, 600);
  EXPECT_EQ(ifc.details().peer_app.rfind("DPDK", 0), 0U) << ifc.details().peer_app;
}

TEST(MemifTestpmd, TestpmdWithTheWrongSecretIsRefusedWithTheReason) {
  if (!testpmd_available()) GTEST_SKIP() << testpmd_unavailable_reason();
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  memif::SocketOptions so;
  so.path = path;
  memif::Socket sock(so);
  memif::InterfaceOptions io;
  io.role = memif::Role::master;
  io.secret = "right";
  memif::Interface& ifc = sock.add_interface(io);
  TestpmdOptions o;
  o.role = "client";
  o.socket = path;
  o.secret = "wrong";
  o.forward_mode = "macswap";
  o.cpu = allowed_cpus().back();
  Testpmd pmd(o, dir.path());
  ASSERT_TRUE(wait_until([&] {
    (void)sock.poll(5ms);
    return !ifc.last_disconnect().empty();
  }, 30)) << pmd.describe();
  EXPECT_NE(ifc.last_disconnect().find("Incorrect secret"), std::string::npos) << ifc.last_disconnect();
  EXPECT_FALSE(ifc.connected());
}

}  // namespace
}  // namespace shmlink::test
