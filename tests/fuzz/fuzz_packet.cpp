// SPDX-License-Identifier: MIT
// libFuzzer target: a frame received from a memif peer, as `shmlink memif responder` and
// `shmlink memif ping` take it apart (tools/support/packet.cpp): parse_frame, verify_echo_reply
// and respond must never read outside the frame or write outside the answer buffer, whatever the
// headers claim (IHL, total length, ARP sizes). The answer buffer is sized exactly to what
// respond() may need (a copy of the frame, or an ARP reply), so an overrun is an ASan report.
#include <algorithm>
#include <vector>

#include <shmlink_tools/packet.hpp>

namespace pkt = shmlink::cli::packet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Copies, so that ASan sees the exact bounds of each buffer.
  const std::vector<std::uint8_t> frame(data, data + size);
  const pkt::Parsed p = pkt::parse_frame(frame);
  if (!p.payload.empty() &&
      (p.payload.data() < frame.data() || p.payload.data() + p.payload.size() > frame.data() + frame.size()))
    __builtin_trap();
  (void)pkt::verify_echo_reply(frame, p.icmp_id, p.icmp_seq, frame.size());
  const pkt::Mac mac{0x02, 0, 0, 0, 0, 1};
  const pkt::Ipv4 ip = p.ip_dst;
  std::vector<std::uint8_t> out(std::max(frame.size(), pkt::kArpFrameSize));
  (void)pkt::respond(frame, out, mac, ip);
  std::vector<std::uint8_t> tiny(size / 2);
  (void)pkt::respond(frame, tiny, mac, p.arp_target_ip);
  return 0;
}
