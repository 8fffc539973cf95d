// SPDX-License-Identifier: MIT
// memif shared memory of one connection (src/memif/memory.hpp; docs/reference/memif.md sections
// 9-10): the slave's regions and rings, the master's checks and mapping of what it receives, and
// attaching one side's queues to the rings.
#include "memif/memory.hpp"

#include "memif/ring.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace shmlink::memif::detail {

namespace {

// Ring header field offset (section 9.2): the cookie opens the header for both cache lines.
constexpr std::size_t kCookieOffset = offsetof(wire::RingHeader<64>, cookie);
static_assert(offsetof(wire::RingHeader<128>, cookie) == kCookieOffset);

}  // namespace

// ---- slave memory ----------------------------------------------------------------------------

std::uint64_t SlaveMemory::buffer_offset(bool to_master, std::uint16_t ring, std::uint32_t slot) const noexcept {
  const std::uint64_t k = std::uint64_t{ring} + (to_master ? 0u : layout.num_s2m);
  return buffer_base + ((k << layout.log2) + slot) * layout.buffer_size;
}

std::vector<RegionView> SlaveMemory::views() const {
  std::vector<RegionView> v;
  v.reserve(regions.size());
  for (const Segment& s : regions)
    v.push_back(RegionView{reinterpret_cast<std::uint8_t*>(s.data()), static_cast<std::uint64_t>(s.size())});
  return v;
}

SlaveMemory create_slave_memory(const SlaveLayout& layout, std::string_view name) {
  const std::string who = "memif " + std::string(name);
  auto refuse = [&](const std::string& what) { throw Error(Errc::invalid_argument, who + ": " + what); };
  if (layout.num_s2m < 1 || layout.num_s2m > 255)
    refuse("S2M ring count " + std::to_string(layout.num_s2m) + " is outside 1..255");
  if (layout.num_m2s < 1 || layout.num_m2s > 255)
    refuse("M2S ring count " + std::to_string(layout.num_m2s) + " is outside 1..255");
  if (layout.log2 < 1 || layout.log2 > wire::kMaxLog2RingSize)
    refuse("log2 ring size " + std::to_string(layout.log2) + " is outside 1.." +
           std::to_string(wire::kMaxLog2RingSize));
  if (layout.buffer_size < 64) refuse("buffer size " + std::to_string(layout.buffer_size) + " is below 64 bytes");
  if (layout.cache_line != 64 && layout.cache_line != 128)
    refuse("cache line " + std::to_string(layout.cache_line) + " is neither 64 nor 128");

  const std::uint64_t rings = std::uint64_t{layout.num_s2m} + layout.num_m2s;
  const std::uint64_t slots = std::uint64_t{1} << layout.log2;
  const std::uint64_t ring_size = wire::ring_bytes(layout.cache_line, layout.log2);
  const std::uint64_t ring_area = rings * ring_size;
  const std::uint64_t buffer_area = rings * slots * layout.buffer_size;

  SlaveMemory mem;
  mem.layout = layout;
  std::vector<std::uint64_t> sizes;
  if (layout.separate_buffer_region) {
    mem.buffer_region = 1;
    mem.buffer_base = 0;
    sizes = {ring_area, buffer_area};
  } else {
    mem.buffer_region = 0;
    mem.buffer_base = (ring_area + 63) & ~std::uint64_t{63};  // buffers start on a cache line
    sizes = {mem.buffer_base + buffer_area};
  }
  // Descriptor and ADD_RING offsets are u32 (section 9.1): every region must fit in 4 GiB.
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] > (std::uint64_t{1} << 32))
      refuse("region " + std::to_string(i) + " would need " + std::to_string(sizes[i]) +
             " bytes; memif offsets are 32-bit, so a region holds at most 4 GiB");
  }

  const std::string base_name = std::string(name.substr(0, 200));
  for (std::size_t i = 0; i < sizes.size(); ++i)
    mem.regions.push_back(Segment::create_memfd(base_name + " region " + std::to_string(i), sizes[i]));

  // Rings: region 0, S2M[0..n) then M2S[0..m) (section 9.4). The memfd is zero-filled, so
  // flags, head and tail are already 0; nobody else sees this memory yet, plain writes suffice.
  auto* region0 = reinterpret_cast<std::uint8_t*>(mem.regions[0].data());
  for (std::uint64_t k = 0; k < rings; ++k) {
    std::uint8_t* ring = region0 + k * ring_size;
    std::memcpy(ring + kCookieOffset, &wire::kCookie, sizeof wire::kCookie);
    const bool is_s2m = k < layout.num_s2m;
    const auto index = static_cast<std::uint16_t>(is_s2m ? k : k - layout.num_s2m);
    for (std::uint32_t j = 0; j < slots; ++j) {
      wire::Descriptor d{};
      d.region = mem.buffer_region;
      d.length = layout.buffer_size;
      d.offset = static_cast<std::uint32_t>(mem.buffer_offset(is_s2m, index, j));
      std::memcpy(ring + wire::ring_desc_offset(layout.cache_line) + std::uint64_t{j} * sizeof d, &d, sizeof d);
    }
    const RingPlacement p{0, static_cast<std::uint32_t>(k * ring_size), layout.log2};
    (is_s2m ? mem.s2m : mem.m2s).push_back(p);
  }

  for (std::uint64_t k = 0; k < rings; ++k) {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) os::throw_errno(errno, "creating an eventfd for", who);
    (k < layout.num_s2m ? mem.s2m_eventfds : mem.m2s_eventfds).emplace_back(fd);
  }
  return mem;
}

std::string check_peer_region(int fd, std::uint16_t index, bool allow_unsealed) {
  const std::string what = "region " + std::to_string(index);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return what + ": fstat failed: " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return what + " is not a regular file (no memory to map)";
  if (allow_unsealed) return {};
  // F_GET_SEALS fails (EINVAL) on files that cannot carry seals: hugetlbfs files, plain files.
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0)
    // At most 95 bytes (index 255), so DISCONNECT's 96-byte string keeps it whole with its NUL.
    // The hint: zero-copy VPP and DPDK slaves send unsealed hugepage regions.
    return what + " is not sealed against shrinking: refused; zero-copy peer? see allow_unsealed_regions";
  return {};
}

bool is_eventfd(int fd) noexcept {
  char link[32];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[64];
  const ssize_t n = ::readlink(link, target, sizeof target);
  if (n >= 0) return std::string_view(target, static_cast<std::size_t>(n)) == "anon_inode:[eventfd]";
  // No /proc (a bare container): every eventfd shares the anonymous inode of a fresh one.
  struct stat peer {}, own {};
  if (::fstat(fd, &peer) != 0) return false;
  os::UniqueFd mine(::eventfd(0, EFD_CLOEXEC));
  return mine && ::fstat(mine.get(), &own) == 0 && peer.st_dev == own.st_dev && peer.st_ino == own.st_ino;
}

Segment map_peer_region(os::UniqueFd fd, std::uint64_t announced_size, std::string_view what) {
  const std::string w(what);
  if (!fd) throw Error(Errc::invalid_argument, "mapping " + w + ": no descriptor");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting", w);
  const auto file_size = static_cast<std::uint64_t>(st.st_size < 0 ? 0 : st.st_size);
  if (announced_size == 0) throw Error(Errc::protocol, "mapping " + w + ": the peer announced a size of 0");
  if (announced_size > file_size)
    throw Error(Errc::protocol, "mapping " + w + ": the peer announced " + std::to_string(announced_size) +
                                    " bytes but the file has " + std::to_string(file_size) +
                                    " (touching beyond it would raise SIGBUS)");
  // Segment maps the whole file (it cannot be built from fd + length); the file is at least the
  // announced size, checked above and again below in case it shrank in between.
  Segment seg = Segment::adopt_fd(fd.release(), w, true);
  if (seg.size() < announced_size)
    throw Error(Errc::protocol, "mapping " + w + ": the file shrank below the announced " +
                                    std::to_string(announced_size) + " bytes");
  return seg;
}

std::uint8_t* locate_ring(const RegionView& region, std::uint32_t offset, std::uint8_t log2, std::uint32_t cl) noexcept {
  if (region.base == nullptr || log2 > wire::kMaxLog2RingSize || !valid_cache_line(cl)) return nullptr;
  // 8-aligned: the u16 head/tail/flags and the u32 descriptor fields are then naturally aligned
  // for std::atomic_ref (region bases are page aligned).
  if (offset % 8 != 0) return nullptr;
  if (std::uint64_t{offset} + wire::ring_bytes(cl, log2) > region.size) return nullptr;
  return region.base + offset;
}


// ---- attaching the queues -----------------------------------------------------------------------

std::string attach_rings(Role role, const ConnectionRings& rings, std::span<const std::unique_ptr<RingQueue>> tx,
                         std::span<const std::unique_ptr<RingQueue>> rx) {
  // The role decides; slave memory on a master would otherwise skip the cookie check silently.
  const bool slave = role == Role::slave;
  if (slave != (rings.slave_memory != nullptr))
    return std::string("internal: a ") + (slave ? "slave" : "master") + (slave ? " without" : " with") +
           " slave memory attaching its rings";
  // This side transmits on S2M (slave) or M2S (master) and receives on the other direction.
  const std::span<const ConnectionRing> sending = slave ? rings.s2m : rings.m2s;
  const std::span<const ConnectionRing> receiving = slave ? rings.m2s : rings.s2m;
  if (sending.size() > tx.size() || receiving.size() > rx.size())
    return "internal: " + std::to_string(sending.size()) + " transmit and " + std::to_string(receiving.size()) +
           " receive rings for " + std::to_string(tx.size()) + " and " + std::to_string(rx.size()) + " queues";
  // Locate (and on the master check) every ring before attaching any queue.
  auto locate = [&](std::span<const ConnectionRing> list, const char* dir, std::vector<std::uint8_t*>& out) {
    for (std::size_t k = 0; k < list.size(); ++k) {
      const RingPlacement& p = list[k].placement;
      std::uint8_t* r = p.region < rings.regions.size()
                            ? locate_ring(rings.regions[p.region], p.offset, p.log2, rings.cache_line)
                            : nullptr;
      if (r == nullptr)
        return std::string("Wrong ring: ") + dir + " " + std::to_string(k) + " does not fit in region " +
               std::to_string(p.region);
      if (!slave) {
        std::uint32_t cookie;  // the slave may still write its memory: one plain read, checked once
        std::memcpy(&cookie, r + kCookieOffset, sizeof cookie);
        if (cookie != wire::kCookie) return std::string("Wrong cookie on ") + dir + " ring " + std::to_string(k);
      }
      out.push_back(r);
    }
    return std::string();
  };
  std::vector<std::uint8_t*> s2m_rings, m2s_rings;
  if (std::string why = locate(rings.s2m, "S2M", s2m_rings); !why.empty()) return why;
  if (std::string why = locate(rings.m2s, "M2S", m2s_rings); !why.empty()) return why;
  auto attach = [&](std::span<const std::unique_ptr<RingQueue>> queues, std::span<const ConnectionRing> list,
                    const std::vector<std::uint8_t*>& located, bool transmit) {
    for (std::size_t k = 0; k < list.size(); ++k) {
      RingQueue::Config cfg;
      cfg.slave = slave;
      cfg.transmit = transmit;
      cfg.ring = located[k];
      cfg.log2 = list[k].placement.log2;
      cfg.cache_line = rings.cache_line;
      cfg.regions = rings.regions;
      cfg.eventfd = list[k].eventfd;
      cfg.slave_memory = rings.slave_memory;
      cfg.ring_index = static_cast<std::uint16_t>(k);
      if (!transmit) cfg.rx_mode = queues[k]->rx_mode();
      queues[k]->attach(cfg);
    }
  };
  attach(tx, sending, slave ? s2m_rings : m2s_rings, true);
  attach(rx, receiving, slave ? m2s_rings : s2m_rings, false);
  return {};
}

}  // namespace shmlink::memif::detail
