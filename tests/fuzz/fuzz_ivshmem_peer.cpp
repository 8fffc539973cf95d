// SPDX-License-Identifier: MIT
// libFuzzer target: the messages a hostile ivshmem server sends to a host peer (issue 21). The
// input is a script of reads as a peer's socket delivers them: each record is one byte (bits 0-2:
// the read's length - 1, clipped to what the current message still misses; bits 3-4: how many
// descriptors come with it, 0-3) followed by that many data bytes. Descriptors are fresh eventfds.
// The bytes are assembled into messages and applied to the peer table exactly as
// shmlink::ivshmem::Peer does; Errc::protocol ends a script (the peer closes the connection
// then). Nothing may crash, leak a descriptor, or keep more than kMaxVectors per peer.
// The server has no parser to fuzz: any byte from a client is that client's departure.
#include "ivshmem/peer_protocol.hpp"

#include <shmlink/ivshmem_server.hpp>

#include <sys/eventfd.h>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace proto = shmlink::ivshmem::proto;
  proto::Assembler assembler;
  proto::PeerTable table("ivshmem server fuzz");
  std::size_t i = 0;
  try {
    while (i < size) {
      const std::uint8_t head = data[i++];
      std::size_t len = static_cast<std::size_t>(head & 7U) + 1;
      if (len > assembler.read_size()) len = assembler.read_size();
      if (len > size - i) len = size - i;
      std::vector<shmlink::os::UniqueFd> fds;
      for (unsigned k = 0; k < ((head >> 3) & 3U); ++k) fds.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      auto m = assembler.feed({reinterpret_cast<const std::byte*>(data + i), len}, std::move(fds));
      i += len;
      if (m) (void)table.apply(std::move(*m));
      if (table.own_vectors().size() > shmlink::ivshmem::kMaxVectors) std::abort();
      for (const auto& [id, v] : table.peers())
        if (v.size() > shmlink::ivshmem::kMaxVectors || static_cast<std::int64_t>(id) == table.own_id()) std::abort();
    }
  } catch (const shmlink::Error& e) {
    if (e.errc() != shmlink::Errc::protocol) std::abort();
  }
  return 0;
}
