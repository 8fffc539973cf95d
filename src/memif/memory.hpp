// SPDX-License-Identifier: MIT
// memif shared memory of one connection (docs/reference/memif.md sections 9-10): the regions a
// slave creates, the checks and mapping of the regions a master receives, where each ring lies,
// and attaching one side's queues to the rings. Internal; the data path of one queue is
// ring.hpp, the public face include/shmlink/memif.hpp.
//
// Trust: the slave owns every region and lays out every ring itself; the master maps only what
// passes check_peer_region and map_peer_region, and uses a ring only where locate_ring found it
// inside its region and its cookie is right (attach_rings).
#pragma once

#include "memif/wire.hpp"
#include "os/sys.hpp"

#include <shmlink/error.hpp>
#include <shmlink/memif.hpp>
#include <shmlink/segment.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::memif::detail {

/// A region as mapped by this side: `size` bytes from `base`.
struct RegionView {
  std::uint8_t* base = nullptr;
  std::uint64_t size = 0;
};

/// Where one ring lives (ADD_RING fields, section 5).
struct RingPlacement {
  std::uint16_t region = 0;  ///< region index
  std::uint32_t offset = 0;  ///< byte offset of the ring header inside the region
  std::uint8_t log2 = 0;     ///< log2 of the ring's slots
};

/// What a slave asks for (section 6 step 3, section 10).
struct SlaveLayout {
  std::uint16_t num_s2m = 1;        ///< rings slave -> master (1..255)
  std::uint16_t num_m2s = 1;        ///< rings master -> slave (1..255)
  std::uint8_t log2 = 10;           ///< slots per ring, log2 (1..14)
  std::uint32_t buffer_size = 2048; ///< bytes per buffer (>= 64)
  bool separate_buffer_region = false;  ///< false: region 0 = rings then buffers; true: region 1 = buffers
  std::uint32_t cache_line = 64;    ///< ring header layout (64 or 128)
};

/// Memory a slave created for one connection: regions (sealed memfds), rings initialised
/// (cookie, flags 0, head = tail = 0, every descriptor {0, buffer region, buffer_size, offset,
/// 0}), and one non-blocking eventfd per ring.
///
/// Placement (what libmemif, VPP and DPDK do, section 9.4/10): rings in region 0, contiguous,
/// S2M[0..n) then M2S[0..m), ring k of type t at (k + t*n) * ring_bytes. Buffers: ring k of type t,
/// slot j has buffer ((k + t*n) * R + j) * buffer_size from the buffer base, where the buffer base
/// is (n+m)*ring_bytes rounded up to 64 bytes in region 0 (one region; the rounding only matters
/// for log2 = 1), or 0 in region 1 (separate region).
struct SlaveMemory {
  SlaveLayout layout;
  std::vector<Segment> regions;                 ///< regions[i].fd() goes with ADD_REGION i
  std::vector<RingPlacement> s2m, m2s;          ///< ADD_RING placements
  std::vector<os::UniqueFd> s2m_eventfds, m2s_eventfds;  ///< one per ring, EFD_NONBLOCK|EFD_CLOEXEC
  std::uint16_t buffer_region = 0;              ///< region index of the buffers
  std::uint64_t buffer_base = 0;                ///< offset of the first buffer in that region

  /// Offset in `buffer_region` of the buffer of ring (s2m ? S2M : M2S) `ring`, slot `slot`.
  [[nodiscard]] std::uint64_t buffer_offset(bool s2m, std::uint16_t ring, std::uint32_t slot) const noexcept;
  /// The region views of `regions`.
  [[nodiscard]] std::vector<RegionView> views() const;
};

/// Creates a slave's memory (section 6 step 3). Every region is a memfd named after `name`,
/// sealed against shrinking and growing. Every region offset a descriptor or ADD_RING carries is
/// u32 (section 9.1): a layout that needs a region over 4 GiB is refused.
/// @throws Error invalid_argument naming the field (ring counts outside 1..255, log2 outside
///         1..14, buffer_size below 64, cache_line not 64/128, a region over 4 GiB), no_space, system.
SlaveMemory create_slave_memory(const SlaveLayout& layout, std::string_view name);

/// Checks a region fd received with ADD_REGION before the master accepts it (section 9.1;
/// docs/design/memif.md "Trust rules"): it must be a regular file (a memfd, a shm or hugetlbfs
/// file) and, unless `allow_unsealed`, carry F_SEAL_SHRINK, because a slave that can shrink the
/// file after we checked its size could make any later access to the mapping raise SIGBUS.
/// @param index the region's index, for the reason.
/// @return "" when acceptable; else the DISCONNECT reason (at most 95 bytes), e.g. "region 0 is
///         not sealed against shrinking: refused; zero-copy peer? see allow_unsealed_regions".
std::string check_peer_region(int fd, std::uint16_t index, bool allow_unsealed);

/// True when `fd` is an eventfd (the only interrupt fd the master accepts with ADD_RING, section
/// 9.2; docs/design/memif.md "Trust rules"): a pipe, pty or socket in its place would make the
/// drain fall back to poll()+read(), which a peer reading the same object could block. Decided
/// by the fd's `/proc/self/fd/N` link ("anon_inode:[eventfd]"); without /proc, by comparing its
/// inode with an eventfd of our own (anonymous-inode files share one inode, so a timerfd or
/// signalfd would pass that fallback too; none of them blocks a non-blocking read).
bool is_eventfd(int fd) noexcept;

/// Maps a region fd received with ADD_REGION (master side, section 9.1), read-write, shared,
/// `announced_size` bytes from offset 0. Takes ownership of `fd` even when it throws.
/// @param what names the region in messages ("memif0 region 1").
/// The returned Segment maps the whole file (Segment cannot map part of one), so its size() is
/// the file size, >= announced_size: build the RegionView from announced_size, which is what
/// descriptors are validated against.
/// @throws Error protocol when the size is 0 or larger than the fd's file (fstat), because
///         touching beyond the file would raise SIGBUS; invalid_argument (no fd); system when
///         fstat or mmap fails.
Segment map_peer_region(os::UniqueFd fd, std::uint64_t announced_size, std::string_view what);

/// True for a ring header layout this side can address: a power of two in 16..4096 (the
/// protocol's 64 and 128 among them; section 9.2 puts tail at the cache line).
inline bool valid_cache_line(std::uint32_t cl) noexcept { return cl >= 16 && cl <= 4096 && (cl & (cl - 1)) == 0; }

/// The ring header at `region.base + offset` for cache line `cl`, or nullptr when the whole
/// ring (ring_bytes(cl, log2)) does not lie inside the region or the offset is not 8-aligned.
std::uint8_t* locate_ring(const RegionView& region, std::uint32_t offset, std::uint8_t log2, std::uint32_t cl) noexcept;

class RingQueue;

/// One ring of a connection as a side attaches to it: where it lies and its interrupt eventfd.
struct ConnectionRing {
  RingPlacement placement;  ///< ADD_RING's region, offset and log2 (section 5)
  int eventfd = -1;         ///< the ring's interrupt eventfd (not owned; kept open while attached)
};

/// The rings of one connection, as one side attaches its queues to them (section 8).
struct ConnectionRings {
  std::span<const RegionView> regions;       ///< every region of the connection (valid while attached)
  std::span<const ConnectionRing> s2m, m2s;  ///< the rings of each direction, by ring index
  std::uint32_t cache_line = 64;             ///< ring header layout (64 or 128)
  /// The slave's own memory (buffer table): set exactly when the attaching side is the slave.
  const SlaveMemory* slave_memory = nullptr;
};

/// Attaches one side's queues to the rings of a connection, for both roles (section 8): the
/// slave transmits on S2M and receives on M2S, the master the other way round; queue k of a
/// direction gets ring k. Receive queues keep their mode (RingQueue::rx_mode()).
/// Every ring is located first (locate_ring: inside its region, 8-aligned). On the master the
/// rings lie in the slave's memory, so each must also carry the cookie (section 9.2); a slave's
/// rings lie in memory it laid out itself (create_slave_memory), whose cookies it does not read
/// back. Nothing is attached unless every ring passes (S2M rings are checked first).
/// @param role the attaching side's role (InterfaceOptions::role): it alone decides the
///        directions and whether cookies are checked; `rings.slave_memory` must agree with it.
/// @param tx, rx this side's transmit and receive queues, at least as many as its rings in each
///        direction (the configured counts; see Interface::Impl).
/// @return "" once every queue was handed its ring, else the DISCONNECT reason and nothing
///         attached: "Wrong ring: S2M 1 does not fit in region 0", "Wrong cookie on M2S ring 0",
///         or "internal: ..." when a direction has more rings than queues or the presence of
///         `rings.slave_memory` disagrees with `role`. "" does not promise that every queue
///         attached: RingQueue::attach() may still refuse its config (e.g. slave buffers outside
///         the buffer region, no memory for its bookkeeping) and leave that queue detached with
///         fault() set. The caller brings the link up anyway; the socket's next poll
///         (Socket::Impl::check_faults) sees the fault flag and tears the link down with
///         DISCONNECT "bad descriptor: " + fault().
std::string attach_rings(Role role, const ConnectionRings& rings, std::span<const std::unique_ptr<RingQueue>> tx,
                         std::span<const std::unique_ptr<RingQueue>> rx);

}  // namespace shmlink::memif::detail
