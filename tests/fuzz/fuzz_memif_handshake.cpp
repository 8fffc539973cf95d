// SPDX-License-Identifier: MIT
// libFuzzer target: the memif handshake state machines fed mutated message sequences (issue 17,
// "Keep it fixed"). A real memif::Socket (master or slave, picked by the first byte) on a
// private abstract socket talks to the input, which plays the peer: each record is a control
// byte and a 128-byte message; the control byte attaches nothing, a region fd (a slave's real,
// sealed region 0 with initialised rings, or an unsealed memfd), or an eventfd (blocking, as a
// hostile peer would send it). After each message the socket is polled until idle and its
// answers are read, so the sequence goes as deep as the input's lies allow; an interface that
// came up then receives and transmits once.
//
//   input = role byte, then records of 1 + 128 bytes (a shorter tail is ignored)
#include "memif/control.hpp"
#include "memif_fuzz.hpp"

#include <shmlink/memif.hpp>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

namespace {

namespace sm = shmlink::memif;
namespace mw = shmlink::memif::wire;
using namespace std::chrono_literals;

/// The fds an input can attach, made once.
struct Fds {
  sm::detail::SlaveMemory mem;  // handshake_layout(): region 0 with rings and buffers, sealed
  sm::UniqueFd unsealed;        // 64 KiB memfd without seals
  sm::UniqueFd blocking_efd;    // eventfd without EFD_NONBLOCK
  Fds() {
    mem = sm::detail::create_slave_memory(shmlink::fuzz::handshake_layout(), "fuzz");
    unsealed.reset(::memfd_create("fuzz-unsealed", MFD_CLOEXEC));
    if (unsealed) (void)!::ftruncate(unsealed.get(), 65536);
    blocking_efd.reset(::eventfd(0, EFD_CLOEXEC));
  }
  [[nodiscard]] int pick(std::uint8_t ctl) const {
    switch (static_cast<shmlink::fuzz::AttachedFd>(ctl % 4)) {
      case shmlink::fuzz::AttachedFd::sealed_region: return mem.regions[0].fd();
      case shmlink::fuzz::AttachedFd::unsealed_memfd: return unsealed.get();
      case shmlink::fuzz::AttachedFd::blocking_eventfd: return blocking_efd.get();
      case shmlink::fuzz::AttachedFd::none: break;
    }
    return -1;
  }
};

/// Polls until nothing more happens (bounded).
void settle(sm::Socket& s) {
  for (int k = 0; k < 16; ++k)
    if (s.poll(0ms) != shmlink::Errc::ok) return;
}

/// Reads every answer queued on `fd`; false once the other side closed.
bool drain(int fd) {
  for (;;) {
    mw::Message m;
    sm::UniqueFd extra;
    const auto r = sm::receive_message(fd, m, extra);
    if (r.code == shmlink::Errc::would_block) return true;
    if (r.code == shmlink::Errc::closed) return false;
  }
}

/// One receive and one transmit on a connected interface. They take microseconds; one that
/// takes seconds blocked on a peer's fd (issue 17 item 2) and is a finding. libFuzzer's
/// -timeout cannot see it: its SIGALRM interrupts the blocked read(), which then returns EINTR
/// before the unit has run long enough to be reported, so this watchdog traps instead.
void use(sm::Interface& i) {
  if (!i.connected()) return;
  const auto start = std::chrono::steady_clock::now();
  std::array<sm::Buffer, 4> bufs{};
  std::size_t n = 0;
  if (i.rx_burst(0, bufs, n).ok()) (void)i.refill(0, n);
  if (i.alloc(0, bufs, 1, 64, n).ok() && n == 1) {
    bufs[0].len = 64;
    std::size_t sent = 0;
    (void)i.tx_burst(0, std::span<const sm::Buffer>(bufs.data(), 1), sent);
  }
  if (std::chrono::steady_clock::now() - start > 2s) __builtin_trap();
}

/// Sends the input's records to `peer_fd`, letting `s` answer each.
void play(const std::uint8_t* data, std::size_t size, const Fds& fds, sm::Socket& s, sm::Interface& i, int peer_fd) {
  constexpr std::size_t kRecord = 1 + mw::kMessageSize;
  settle(s);
  for (std::size_t at = 0; at + kRecord <= size; at += kRecord) {
    if (!drain(peer_fd)) break;
    mw::Message m;
    std::memcpy(&m, data + at + 1, sizeof m);
    if (!sm::send_message(peer_fd, m, fds.pick(data[at])).ok()) break;
    settle(s);
  }
  use(i);
}

std::string next_name() {
  static unsigned counter = 0;
  return "@shmlink-fuzz-handshake-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Fds fds;
  if (size < 1) return 0;
  const bool master = (data[0] & 1) == 0;
  sm::SocketOptions so;
  so.path = next_name();
  so.app_name = "fuzz";
  so.publish_status = false;
  so.reconnect_interval = 0ms;
  try {
    if (master) {
      sm::Socket s(so);
      sm::InterfaceOptions o;
      o.role = sm::Role::master;
      o.name = "fuzz-master";
      o.num_s2m_rings = 2;
      o.num_m2s_rings = 2;
      auto& i = s.add_interface(o);
      auto c = sm::connect_seqpacket(sm::parse_socket_name(so.path), true);
      if (!c) return 0;
      play(data + 1, size - 1, fds, s, i, c.fd.get());
    } else {
      auto listener = sm::listen_seqpacket(sm::parse_socket_name(so.path));
      sm::Socket s(so);
      sm::InterfaceOptions o;
      o.name = "fuzz-slave";
      o.log2_ring_size = shmlink::fuzz::handshake_layout().log2;
      o.buffer_size = shmlink::fuzz::handshake_layout().buffer_size;
      auto& i = s.add_interface(o);  // connects at once
      sm::UniqueFd conn;
      if (!listener.accept(conn, true).ok()) return 0;
      play(data + 1, size - 1, fds, s, i, conn.get());
    }
  } catch (const shmlink::Error&) {
  }
  return 0;
}
