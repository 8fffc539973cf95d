// SPDX-License-Identifier: MIT
// `shmlink memif responder|ping|bench`: a memif interface in either role that answers ARP and
// ICMP echo like libmemif's icmp_responder example, one that pings through it (docs/reference/memif.md
// section 17; docs/cli.md), and the packet-rate benchmark (bench_memif.cpp; docs/bench.md).
#include "bench_memif.hpp"
#include "common.hpp"
#include <shmlink_tools/packet.hpp>

#include <shmlink/memif.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shmlink::cli {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace pk = packet;

std::atomic<bool> g_stop{false};

void memif_stop_signal(int) { g_stop.store(true); }

/// Installs SIGINT/SIGTERM handlers that ask the loop to stop (no SA_RESTART: polls return).
void install_stop_handlers() {
  struct sigaction sa{};
  sa.sa_handler = memif_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

/// Options every `memif` subcommand shares (libmemif example defaults).
struct MemifCommon {
  std::string socket{memif::kDefaultSocket};
  std::string role = "slave";
  std::uint32_t id = 0;
  std::string secret;
  std::string ip;
  std::string mac;
  unsigned queues = 1;
  unsigned log2_ring = 10;
  std::uint32_t buffer_size = 2048;
  bool polling = false;
  bool allow_unsealed = false;
  double connect_timeout = 10;
};

void add_common(CLI::App* app, MemifCommon& o, const char* ip_help, const char* default_mac,
                const char* connect_timeout_help) {
  app->add_option("--socket", o.socket, "Control socket: a path, or @NAME for an abstract socket (default /run/vpp/memif.sock)");
  app->add_option("--role", o.role, "master (listens) or slave (connects) (default slave)")
      ->check(CLI::IsMember({"master", "slave"}));
  app->add_option("--id", o.id, "Interface id (default 0)");
  app->add_option("--secret", o.secret, "Shared secret, at most 24 bytes (default none)");
  app->add_option("--ip", o.ip, ip_help);
  app->add_option("--mac", o.mac, std::string("Our MAC address (default ") + default_mac + ")");
  app->add_option("--queues", o.queues, "Queues each way (default 1)")->check(CLI::Range(1, 255));
  app->add_option("--ring-size", o.log2_ring, "Slots per ring as log2, slave only (default 10)")->check(CLI::Range(1, 14));
  app->add_option("--buffer-size", o.buffer_size, "Bytes per buffer, slave only (default 2048)")
      ->check(CLI::Range(64, 65536));
  app->add_flag("--polling", o.polling, "Poll the receive rings instead of waiting for interrupts");
  app->add_flag("--allow-unsealed-regions", o.allow_unsealed,
                "Master: accept a slave's regions that are not sealed against shrinking (zero-copy VPP/DPDK "
                "slaves); such a slave can crash this process with SIGBUS by truncating them");
  app->add_option("--connect-timeout", o.connect_timeout, connect_timeout_help)->check(CLI::Range(0.0, 86400.0));
}

memif::InterfaceOptions interface_options(const MemifCommon& o, const char* name) {
  memif::InterfaceOptions io;
  io.role = o.role == "master" ? memif::Role::master : memif::Role::slave;
  io.id = o.id;
  io.name = name;
  io.secret = o.secret;
  io.num_s2m_rings = static_cast<std::uint8_t>(o.queues);
  io.num_m2s_rings = static_cast<std::uint8_t>(o.queues);
  io.log2_ring_size = static_cast<std::uint8_t>(o.log2_ring);
  io.buffer_size = o.buffer_size;
  io.rx_mode = o.polling ? memif::RxMode::polling : memif::RxMode::interrupt;
  io.allow_unsealed_regions = o.allow_unsealed;
  return io;
}

std::optional<pk::Mac> mac_or(const std::string& text, const char* fallback) {
  return pk::parse_mac(text.empty() ? std::string_view(fallback) : std::string_view(text));
}

/// Copies one packet into freshly reserved buffers of `qid` and sends it. @return ok when sent;
/// would_block when the ring has no room for it now (the peer has not returned enough buffers);
/// any other code when it cannot be sent at all (link down, a frame larger than the ring).
Status send_frame(memif::Interface& ifc, std::uint16_t qid, std::span<const std::uint8_t> frame) {
  std::array<memif::Buffer, 64> bufs{};
  std::size_t n = 0;
  if (const Status st = ifc.alloc(qid, bufs, 1, static_cast<std::uint32_t>(frame.size()), n); !st.ok()) return st;
  std::size_t off = 0;
  for (std::size_t k = 0; k < n; ++k) {
    std::memcpy(bufs[k].data, frame.data() + off, bufs[k].len);
    off += bufs[k].len;
  }
  std::size_t sent = 0;
  return ifc.tx_burst(qid, std::span<const memif::Buffer>(bufs.data(), n), sent);
}

/// Receives whole frames from `qid` (chains reassembled), calling `fn(frame)` for each. Every
/// burst is copied out and its buffers are returned to the peer (refill) before `fn` runs, so an
/// `fn` that waits for transmit space holds no receive buffer the peer may need to make progress.
/// `fn` may poll the socket: when the link went down meanwhile, the rest of the burst is dropped.
/// At most 64 bursts per call, so that a peer that never stops sending cannot keep the caller from
/// its own checks (--duration, signals).
template <class Fn>
void receive_frames(memif::Interface& ifc, std::uint16_t qid, std::vector<std::uint8_t>& partial, Fn&& fn) {
  std::array<memif::Buffer, 64> bufs{};
  std::vector<std::vector<std::uint8_t>> frames;
  std::size_t n = 0;
  for (int burst = 0; burst < 64 && ifc.rx_burst(qid, bufs, n).ok(); ++burst) {
    for (std::size_t k = 0; k < n; ++k) {
      partial.insert(partial.end(), bufs[k].data, bufs[k].data + bufs[k].len);
      if ((bufs[k].flags & memif::kBufferNext) == 0) {
        frames.push_back(std::move(partial));
        partial.clear();
      }
    }
    (void)ifc.refill(qid, n);
    for (const auto& f : frames) {
      fn(std::span<const std::uint8_t>(f));
      if (!ifc.connected()) return;
    }
    frames.clear();
  }
}

/// Waits up to `ms` for control or receive work on `ifc`.
void wait_for_work(memif::Socket& sock, memif::Interface& ifc, int ms) {
  std::vector<pollfd> fds{{sock.fd(), POLLIN, 0}};
  if (ifc.connected() && ifc.options().rx_mode == memif::RxMode::interrupt)
    for (std::uint16_t q = 0; q < ifc.rx_queues(); ++q) fds.push_back({ifc.rx_fd(q), POLLIN, 0});
  const bool spin = ifc.connected() && ifc.options().rx_mode == memif::RxMode::polling;
  (void)::poll(fds.data(), fds.size(), spin ? 0 : ms);
  if ((fds[0].revents & POLLIN) != 0 || spin) (void)sock.poll(0ms);
}

memif::SocketOptions socket_options(const MemifCommon& o, const char* app) {
  memif::SocketOptions so;
  so.path = o.socket;
  so.app_name = app;
  so.reconnect_interval = 500ms;
  return so;
}

/// Logs that `ifc` had no link within `seconds`, with the last refusal's reason.
void log_no_link(memif::Socket& sock, memif::Interface& ifc, double seconds) {
  spdlog::error("{}: no link within {} s{}", sock.name(), seconds,
                ifc.last_disconnect().empty() ? "" : ": " + ifc.last_disconnect());
}

/// Waits until `ifc` is connected; false on timeout or signal. `seconds` 0 means no limit (as the
/// responder's --connect-timeout 0). Each refusal is logged by the library (a warning once per
/// distinct reason), the timeout here.
bool wait_link(memif::Socket& sock, memif::Interface& ifc, double seconds) {
  const auto deadline =
      seconds > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds))
                  : Clock::time_point::max();
  while (!ifc.connected()) {
    if (g_stop.load()) return false;
    if (Clock::now() >= deadline) {
      log_no_link(sock, ifc, seconds);
      return false;
    }
    (void)sock.poll(50ms);
  }
  return true;
}

/// How long the responder waits for transmit space without any answer going out before it drops
/// answers (the peer stopped returning buffers, or a frame needs more buffers than it posted).
constexpr auto kAnswerPatience = 1s;
/// `stalled_since` of send_answer() while answers go out.
constexpr Clock::time_point kNotStalled = Clock::time_point::min();

/// Sends one answer on `qid`, waiting for ring space while the peer has not yet returned enough
/// buffers (libmemif's echo retries the same way) rather than dropping it at once. The wait ends
/// at `end` (--duration), on a stop signal, when the link goes down or the frame can never be sent,
/// and when no answer went out for kAnswerPatience (`stalled_since` holds when the current stall
/// began, across answers; kNotStalled again after each answer sent). Retries spin briefly, then sleep with a
/// back-off from 50 us to 1 ms. @return true when sent, false when the answer is dropped.
bool send_answer(memif::Socket& sock, memif::Interface& ifc, std::uint16_t qid, std::span<const std::uint8_t> frame,
                 Clock::time_point end, Clock::time_point& stalled_since) {
  long sleep_us = 25;
  for (unsigned tries = 0;; ++tries) {
    const Status st = send_frame(ifc, qid, frame);
    if (st.ok()) {
      stalled_since = kNotStalled;
      return true;
    }
    if (st.code() != Errc::would_block || g_stop.load()) return false;
    const auto now = Clock::now();
    if (stalled_since == kNotStalled) stalled_since = now;
    if (now >= end) return false;
    if (now - stalled_since >= kAnswerPatience) {
      if (tries == 0) return false;  // still the same stall: drop at once until an answer goes out
      spdlog::warn("memif responder: {}: no transmit space on queue {} for {} s (the peer returns no buffers): "
                   "dropping answers until it does",
                   sock.name(), qid, std::chrono::duration<double>(kAnswerPatience).count());
      return false;
    }
    // The control channel keeps being served meanwhile (a disconnect ends the wait).
    (void)sock.poll(0ms);
    if (!ifc.connected()) return false;
    if (tries >= 64) {
      sleep_us = std::min(2 * sleep_us, 1000L);
      ::usleep(static_cast<useconds_t>(sleep_us));
    }
  }
}

// ---- responder --------------------------------------------------------------------------------

int run_responder(const MemifCommon& o, double duration) {
  const auto ip = pk::parse_ipv4(o.ip.empty() ? "192.168.1.1" : o.ip);
  const auto mac = mac_or(o.mac, "aa:aa:aa:aa:aa:aa");
  if (!ip || !mac) {
    spdlog::error("memif responder: bad --ip or --mac");
    return kExitUsage;
  }
  install_stop_handlers();
  memif::Socket sock(socket_options(o, "shmlink-responder"));
  auto io = interface_options(o, "responder");
  io.on_connect = [&](memif::Interface& i) {
    spdlog::info("memif responder: link up ({} {} '{}', id {}), answering for {}", o.role == "master" ? "slave" : "master",
                 i.details().peer_app, i.details().peer_name, o.id, pk::to_string(*ip));
  };
  io.on_disconnect = [](memif::Interface&, std::string_view why) { spdlog::info("memif responder: link down: {}", why); };
  memif::Interface& ifc = sock.add_interface(io);
  std::vector<std::vector<std::uint8_t>> partial(o.queues);
  std::vector<std::uint8_t> out(70000);
  std::uint64_t answered = 0, dropped = 0;
  Clock::time_point stalled_since = kNotStalled;
  const auto start = Clock::now();
  const auto end = duration > 0 ? start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration))
                                : Clock::time_point::max();
  // --connect-timeout: the first link must come within it (0: no limit).
  const auto link_deadline =
      o.connect_timeout > 0
          ? start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.connect_timeout))
          : Clock::time_point::max();
  bool linked = false;
  while (!g_stop.load() && Clock::now() < end) {
    wait_for_work(sock, ifc, 100);
    if (!ifc.connected()) {
      if (!linked && Clock::now() >= link_deadline) {
        log_no_link(sock, ifc, o.connect_timeout);
        return kExitTimeout;
      }
      continue;
    }
    linked = true;
    for (std::uint16_t q = 0; q < ifc.rx_queues(); ++q) {
      const auto tq = static_cast<std::uint16_t>(q % std::max<std::uint16_t>(1, ifc.tx_queues()));
      receive_frames(ifc, q, partial[q], [&](std::span<const std::uint8_t> frame) {
        const auto len = pk::respond(frame, out, *mac, *ip);
        if (!len) return;
        if (send_answer(sock, ifc, tq, std::span(out.data(), *len), end, stalled_since))
          ++answered;
        else
          ++dropped;
      });
    }
  }
  spdlog::info("memif responder: answered {} frames", answered);
  if (dropped != 0)
    spdlog::warn("memif responder: {} answers not sent (link down, stopped, or no transmit space for {} s)", dropped,
                 std::chrono::duration<double>(kAnswerPatience).count());
  return kExitOk;
}

// ---- ping -------------------------------------------------------------------------------------

int run_ping(const MemifCommon& o, const std::string& src_ip_text, unsigned count, double interval, double timeout,
             std::size_t size, bool arp) {
  const auto dst_ip = pk::parse_ipv4(o.ip.empty() ? "192.168.1.1" : o.ip);
  const auto src_ip = pk::parse_ipv4(src_ip_text);
  const auto mac = mac_or(o.mac, "02:fe:00:00:00:01");
  if (!dst_ip || !src_ip || !mac) {
    spdlog::error("memif ping: bad --ip, --src-ip or --mac");
    return kExitUsage;
  }
  if (size < pk::kMinEchoFrameSize || size > pk::kMaxEchoFrameSize) {
    spdlog::error("memif ping: --size must be {}..{} bytes", pk::kMinEchoFrameSize, pk::kMaxEchoFrameSize);
    return kExitUsage;
  }
  install_stop_handlers();
  memif::Socket sock(socket_options(o, "shmlink-ping"));
  memif::Interface& ifc = sock.add_interface(interface_options(o, "ping"));
  if (!wait_link(sock, ifc, o.connect_timeout)) return g_stop.load() ? kExitFailure : kExitTimeout;
  const auto d = ifc.details();
  std::cout << fmt::format("link up: {} '{}' ({}) on {}\n", o.role == "master" ? "slave" : "master", d.peer_name,
                           d.peer_app, sock.name());
  std::vector<std::uint8_t> partial, frame(size + 64);
  pk::Mac dst_mac = pk::kBroadcastMac;
  if (arp) {  // resolve the peer's MAC; retried, since a peer may drop the first frames after link-up
    bool resolved = false;
    // ARP is retried for --connect-timeout seconds, or the default 10 s when that is 0 (no limit
    // on the link): a peer that never answers ARP still gets pinged.
    const double arp_seconds = o.connect_timeout > 0 ? o.connect_timeout : 10.0;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arp_seconds));
    while (!resolved && !g_stop.load() && Clock::now() < deadline && ifc.connected()) {
      const std::size_t n = pk::build_arp_request(frame, *mac, *src_ip, *dst_ip);
      (void)send_frame(ifc, 0, std::span(frame.data(), n));  // a full ring: the next try sends
      const auto until = Clock::now() + 100ms;
      while (!resolved && Clock::now() < until) {
        wait_for_work(sock, ifc, 10);
        if (!ifc.connected()) break;
        receive_frames(ifc, 0, partial, [&](std::span<const std::uint8_t> f) {
          const auto p = pk::parse_frame(f);
          if (p.kind == pk::FrameKind::arp_reply && p.arp_sender_ip.value == dst_ip->value) {
            dst_mac = p.arp_sender_mac;
            resolved = true;
          }
        });
      }
    }
    if (!resolved) {
      std::cout << fmt::format("no ARP reply from {}: pinging the broadcast MAC\n", pk::to_string(*dst_ip));
    } else {
      std::cout << fmt::format("{} is at {}\n", pk::to_string(*dst_ip), pk::to_string(dst_mac));
    }
  }
  const auto id = static_cast<std::uint16_t>(::getpid());
  unsigned received = 0, bad = 0;
  std::vector<double> rtts;
  for (unsigned seq = 1; seq <= count && !g_stop.load(); ++seq) {
    const auto s16 = static_cast<std::uint16_t>(seq);
    const std::size_t n = pk::build_icmp_echo_request(frame, *mac, dst_mac, *src_ip, *dst_ip, id, s16, size);
    const auto t0 = Clock::now();
    bool sent = false;
    while (!sent && ifc.connected() && Clock::now() - t0 < 1s) sent = send_frame(ifc, 0, std::span(frame.data(), n)).ok();
    bool got = false;
    const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    while (sent && !got && !g_stop.load() && Clock::now() < deadline && ifc.connected()) {
      for (std::uint16_t q = 0; q < ifc.rx_queues() && !got; ++q)
        receive_frames(ifc, q, partial, [&](std::span<const std::uint8_t> f) {
          const auto p = pk::parse_frame(f);
          if (p.kind != pk::FrameKind::icmp_echo_reply || p.icmp_id != id || p.icmp_seq != s16) return;
          const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
          if (!pk::verify_echo_reply(f, id, s16, size)) {
            ++bad;
            std::cout << fmt::format("{} bytes from {}: icmp_seq={} CORRUPTED\n", f.size(), pk::to_string(p.ip_src), seq);
            got = true;
            return;
          }
          got = true;
          ++received;
          rtts.push_back(us);
          std::cout << fmt::format("{} bytes from {}: icmp_seq={} time={:.1f} us\n", f.size(), pk::to_string(p.ip_src),
                                   seq, us);
        });
      if (!got) wait_for_work(sock, ifc, 1);
    }
    if (!got) std::cout << fmt::format("no reply for icmp_seq={}{}\n", seq, ifc.connected() ? "" : " (link down)");
    const auto next = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
    while (!g_stop.load() && Clock::now() < next) wait_for_work(sock, ifc, 1);
  }
  const double loss = count == 0 ? 0.0 : 100.0 * (count - received) / count;
  std::cout << fmt::format("--- {} memif ping statistics ---\n{} packets transmitted, {} received, {} corrupted, {:.0f}% packet loss\n",
                           pk::to_string(*dst_ip), count, received, bad, loss);
  if (!rtts.empty()) {
    const auto [mn, mx] = std::minmax_element(rtts.begin(), rtts.end());
    double sum = 0;
    for (double r : rtts) sum += r;
    std::cout << fmt::format("rtt min/avg/max = {:.1f}/{:.1f}/{:.1f} us\n", *mn, sum / static_cast<double>(rtts.size()), *mx);
  }
  return received == count && bad == 0 ? kExitOk : kExitFailure;
}

}  // namespace

Command add_memif_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("memif", "memif interfaces (VPP, DPDK, libmemif): responder, ping, bench");
  sub->require_subcommand(1);
  auto resp = std::make_shared<MemifCommon>();
  auto duration = std::make_shared<double>(0.0);
  CLI::App* r = sub->add_subcommand("responder", "Answer ARP and ICMP echo on a memif interface (libmemif icmp_responder); "
                                                 "other frames are returned with MACs swapped");
  resp->connect_timeout = 0;  // a responder waits for its peer for ever unless told otherwise
  add_common(r, *resp, "Address to answer for (default 192.168.1.1)", "aa:aa:aa:aa:aa:aa",
             "Seconds to wait for the first link; exit 124 when none came (default 0: no limit)");
  r->add_option("--duration", *duration, "Stop after SECONDS (default: run until SIGINT/SIGTERM)");
  r->footer(exit_code_help());

  auto ping = std::make_shared<MemifCommon>();
  auto src_ip = std::make_shared<std::string>("192.168.1.2");
  auto count = std::make_shared<unsigned>(5);
  auto interval = std::make_shared<double>(1.0);
  auto timeout = std::make_shared<double>(1.0);
  auto size = std::make_shared<std::size_t>(98);
  auto no_arp = std::make_shared<bool>(false);
  CLI::App* p = sub->add_subcommand("ping", "Send ICMP echo requests over a memif interface; RTT per packet and a "
                                            "summary; exit 0 only when every reply came back intact");
  add_common(p, *ping, "Address to ping (default 192.168.1.1)", "02:fe:00:00:00:01",
             "Seconds to wait for the link; exit 124 when none came (default 10; 0: no limit)");
  p->add_option("--src-ip", *src_ip, "Our address (default 192.168.1.2)");
  p->add_option("--count,-c", *count, "Echo requests to send (default 5)")->check(CLI::Range(1u, 100000000u));
  p->add_option("--interval,-i", *interval, "Seconds between requests (default 1)")->check(CLI::Range(0.0, 3600.0));
  p->add_option("--timeout,-W", *timeout, "Seconds to wait for each reply (default 1)")->check(CLI::Range(0.0, 3600.0));
  p->add_option("--size,-s", *size, "Whole Ethernet frame in bytes, 50..65549; > buffer size means chained buffers (default 98)");
  p->add_flag("--no-arp", *no_arp, "Do not resolve the MAC with ARP first (send to the broadcast MAC)");
  p->footer(exit_code_help());

  auto bo = std::make_shared<bench::MemifBenchOptions>();
  auto no_testpmd = std::make_shared<bool>(false);
  auto no_mixed = std::make_shared<bool>(false);
  CLI::App* b = sub->add_subcommand(
      "bench", "Packets/s and Gbit/s through one memif queue, both ring directions, shmlink next to a libmemif-style "
               "reference loop and DPDK's memif PMD (dpdk-testpmd txonly/rxonly) in the same run (docs/bench.md)");
  b->add_option("--sizes", bo->sizes, "Frame sizes in bytes, 60..65535 (default 64,1500,9000)")->delimiter(',');
  b->add_option("--duration", bo->duration, "Seconds measured per case (default 1)")->check(CLI::Range(0.1, 600.0));
  b->add_option("--warmup", bo->warmup, "Seconds of traffic before measuring (default 0.5)")->check(CLI::Range(0.0, 60.0));
  b->add_option("--rounds", bo->rounds,
                "Runs of every case, interleaved (odd rounds in reverse order); medians and min..max are reported "
                "(default 5)")
      ->check(CLI::Range(1, 100));
  b->add_option("--cores", bo->cores, "Sender and receiver CPUs 'A,B' (default: the first two allowed)");
  b->add_option("--ring-size", bo->log2_ring, "Slots per ring as log2 (default 10)")->check(CLI::Range(1, 14));
  b->add_option("--buffer-size", bo->buffer_size, "Bytes per memif buffer (default 2048)")->check(CLI::Range(128u, 65535u));
  b->add_option("--burst", bo->burst, "Packets per burst, both implementations (default 32)")->check(CLI::Range(1u, 512u));
  b->add_flag("--no-testpmd", *no_testpmd, "shmlink <-> shmlink only (no DPDK reference)");
  b->add_flag("--no-mixed", *no_mixed, "Skip the shmlink <-> DPDK pairs");
  b->add_flag("--json", bo->json, "Print the JSON document (schema shmlink-bench-memif/2)");
  b->add_flag("--markdown", bo->markdown, "Markdown table (for README.md)");
  b->add_option("--save", bo->save, "Also write the JSON document to FILE");
  b->footer(exit_code_help());
  sub->footer(exit_code_help());
  return {sub, [=] {
            if (r->parsed()) return run_responder(*resp, *duration);
            if (p->parsed()) return run_ping(*ping, *src_ip, *count, *interval, *timeout, *size, !*no_arp);
            if (b->parsed()) {
              bo->testpmd = !*no_testpmd;
              bo->mixed = !*no_mixed;
              return bench::run_memif_bench(*bo);
            }
            return static_cast<int>(kExitUsage);
          }};
}

}  // namespace shmlink::cli
