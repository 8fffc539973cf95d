// SPDX-License-Identifier: MIT
// libFuzzer target: a discovery beacon as any host of the link may send it (issue 22; a UDP
// datagram to the group, docs/design/bridge.md "Discovery"). parse_beacon() must refuse anything
// malformed with a reason and without reading outside the datagram; what it accepts must hold
// valid names and re-encode to exactly the same 128 bytes.
#include "bridge/discovery.hpp"

#include <cstdlib>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace bridge = shmlink::bridge;
  const std::span<const std::byte> datagram(reinterpret_cast<const std::byte*>(data), size);
  std::string why;
  const auto b = bridge::parse_beacon(datagram, &why);
  if (!b) {
    if (why.empty()) std::abort();  // every refusal is named
    return 0;
  }
  if (size != bridge::kBeaconBytes) std::abort();
  if (!bridge::valid_node_name(b->node) || !bridge::valid_domain(b->domain)) std::abort();
  if (b->port == 0 || b->incarnation == 0 || (b->flags & ~bridge::kBeaconLeaving) != 0) std::abort();
  const auto again = bridge::encode_beacon(*b);
  if (std::memcmp(again.data(), data, bridge::kBeaconBytes) != 0) std::abort();
  return 0;
}
