// SPDX-License-Identifier: MIT
// memif: the data path of one queue (src/memif/ring.hpp; docs/reference/memif.md sections 9-12
// and 19). The connection's memory (regions, ring placement) is memory.cpp.
//
// Everything the peer can write is read exactly once into a local copy (relaxed atomic loads of
// the descriptor fields, acquire loads of its index), checked, and only the copy is used: a peer
// racing on a descriptor after we validated it changes nothing we touch. Every loop is bounded by
// the ring size or the caller's span, never by a value from shared memory alone.
#include "memif/ring.hpp"

#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <concepts>
#include <string_view>
#include <utility>

namespace shmlink::memif::detail {

namespace {

constexpr std::uint16_t u16(std::uint32_t v) noexcept { return static_cast<std::uint16_t>(v); }

// Ring header field offsets (section 9.2); tail is at cache_line.
constexpr std::size_t kFlagsOffset = offsetof(wire::RingHeader<64>, flags);
constexpr std::size_t kHeadOffset = offsetof(wire::RingHeader<64>, head);
static_assert(offsetof(wire::RingHeader<128>, flags) == kFlagsOffset);
static_assert(offsetof(wire::RingHeader<128>, head) == kHeadOffset);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

/// Shared u16 at `p` (2-aligned: rings are 8-aligned, see locate_ring).
std::atomic_ref<std::uint16_t> u16_at(std::uint8_t* p) noexcept {
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p));
}
/// Shared u32 at `p` (4-aligned).
std::atomic_ref<std::uint32_t> u32_at(std::uint8_t* p) noexcept {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p));
}

/// Shared u64 at `p` (8-aligned: descriptors start at the ring's cache line, rings are 8-aligned).
std::atomic_ref<std::uint64_t> u64_at(std::uint8_t* p) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p));
}

// A descriptor as two little-endian 64-bit words (x86-64, asserted in wire.hpp): word 0 = flags |
// region << 16 | length << 32, word 1 = offset | metadata << 32.
static_assert(offsetof(wire::Descriptor, flags) == 0 && offsetof(wire::Descriptor, region) == 2 &&
              offsetof(wire::Descriptor, length) == 4 && offsetof(wire::Descriptor, offset) == 8 &&
              offsetof(wire::Descriptor, metadata) == 12 && sizeof(wire::Descriptor) == 16);

/// One fetch of a descriptor the peer may be writing concurrently: two relaxed 64-bit loads, so
/// each field is loaded exactly once (the acquire load of the peer's index that made the slot
/// ours orders these loads). The result is the only copy that gets validated and used (no double
/// fetch). A peer's narrower stores racing with it give some mix of old and new fields, each of
/// which is checked like any other value.
wire::Descriptor load_desc(std::uint8_t* d) noexcept {
  const std::uint64_t w0 = u64_at(d).load(std::memory_order_relaxed);
  const std::uint64_t w1 = u64_at(d + 8).load(std::memory_order_relaxed);
  wire::Descriptor x{};
  x.flags = static_cast<std::uint16_t>(w0);
  x.region = static_cast<std::uint16_t>(w0 >> 16);
  x.length = static_cast<std::uint32_t>(w0 >> 32);
  x.offset = static_cast<std::uint32_t>(w1);
  x.metadata = static_cast<std::uint32_t>(w1 >> 32);
  return x;
}

/// Writes a whole descriptor (slave: it owns every field) as two relaxed 64-bit stores: published
/// by the release store of the index that follows.
void store_desc(std::uint8_t* d, const wire::Descriptor& x) noexcept {
  u64_at(d).store(std::uint64_t{x.flags} | std::uint64_t{x.region} << 16 | std::uint64_t{x.length} << 32,
                  std::memory_order_relaxed);
  u64_at(d + 8).store(std::uint64_t{x.offset} | std::uint64_t{x.metadata} << 32, std::memory_order_relaxed);
}

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(alignof(QueueCounters) >= std::atomic_ref<std::uint64_t>::required_alignment);

/// Adds `n` to a counter of counters_. Only the queue's own thread writes it; the control thread
/// reads it (RingQueue::counters(), for the status file) while the data path runs. Relaxed
/// load + store on one writer: the same instructions as `+=` on x86-64, without a data race;
/// nothing is published through a counter.
void bump(std::uint64_t& counter, std::uint64_t n = 1) noexcept {
  std::atomic_ref<std::uint64_t> c(counter);
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// A relaxed load of a counter written by bump().
std::uint64_t load_counter(const std::uint64_t& counter) noexcept {
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(counter)).load(std::memory_order_relaxed);
}

void append(std::string& s, std::string_view v) { s.append(v); }
template <std::integral T>
void append(std::string& s, T v) {
  s += std::to_string(v);
}

/// Concatenates message parts; "" if memory runs out (the fault flag is still raised).
template <class... Parts>
std::string cat(const Parts&... parts) noexcept {
  try {
    std::string s;
    (append(s, parts), ...);
    return s;
  } catch (...) {
    return {};
  }
}

/// Consumes an interrupt eventfd's count without ever blocking, whatever the O_NONBLOCK flag of
/// its open file description says now: the peer shares that description and may clear the flag
/// (control.cpp sets it at receipt). preadv2(RWF_NOWAIT) ignores the flag (eventfd supports it
/// since Linux 5.11); older kernels refuse the flag, and then a zero-timeout poll() decides
/// whether to read. Nothing pending, or an fd that is no eventfd at all, costs nothing.
void drain_eventfd(int fd) noexcept {
  std::uint64_t value = 0;
  iovec iov{&value, sizeof value};
  if (::preadv2(fd, &iov, 1, -1, RWF_NOWAIT) >= 0) return;
  if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS) return;  // EAGAIN: nothing pending
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) (void)!::read(fd, &value, sizeof value);
}

/// Adds 1 to an interrupt eventfd unless that could block: an eventfd write waits while the
/// count would pass 0xfffffffffffffffe (a peer can put it there), and O_NONBLOCK is not ours to
/// keep (see drain_eventfd). A zero-timeout poll() for POLLOUT first: not writable means the
/// count is already at its maximum, so the reader is signalled anyway. True when written.
/// pwritev2(RWF_NOWAIT), the write side's twin of drain_eventfd, is refused by eventfds
/// (EOPNOTSUPP, Linux 6.18), so a peer that clears O_NONBLOCK and fills the count between the
/// poll and the write can block this write: the residual risk docs/design/memif.md "Trust
/// rules" describes (the calling tx_burst thread only, never Socket::poll).
bool signal_eventfd(int fd) noexcept {
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 0) != 1 || (p.revents & POLLOUT) == 0) return false;
  const std::uint64_t one = 1;
  return ::write(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one);
}


/// Why a descriptor from the peer is unusable.
enum class Bad : std::uint8_t { none, region, zero_length, beyond_region, too_long };

/// The master's check of a slave-written descriptor against the regions it mapped
/// (section 10, VPP memif_validate_desc_data).
Bad check_master(const wire::Descriptor& d, std::span<const RegionView> regions) noexcept {
  if (d.region >= regions.size() || regions[d.region].base == nullptr) return Bad::region;
  if (d.length == 0) return Bad::zero_length;
  if (std::uint64_t{d.offset} + d.length > regions[d.region].size) return Bad::beyond_region;
  return Bad::none;
}

}  // namespace


// ---- RingQueue: plumbing -----------------------------------------------------------------------

void RingQueue::set_fault(std::string message) noexcept {
  if (fault_.empty()) fault_ = std::move(message);
  // SYNC POINT: release; pairs with the control thread's acquire load of fault_flag(), which
  // then reads fault_.
  faulted_.store(true, std::memory_order_release);
}

std::string RingQueue::ring_label() const { return cat(s2m() ? "S2M" : "M2S", " ring ", cfg_.ring_index); }

std::uint8_t* RingQueue::desc_at(std::uint16_t index) const noexcept {
  const std::uint64_t slot = index & mask_;
  return descs_ + slot * sizeof(wire::Descriptor);  // descs_ = ring + ring_desc_offset(cache line)
}

std::uint16_t RingQueue::load_peer(std::uint16_t hi) noexcept {
  // The peer's index: the master reads head, the slave reads tail (section 11).
  std::uint8_t* where = cfg_.slave ? ring_ + wire::ring_tail_offset(cfg_.cache_line) : ring_ + kHeadOffset;
  // SYNC POINT: acquire; pairs with the peer's release store of its index after it wrote the
  // descriptors and buffers (tx_burst) or finished with them (refill). Descriptor loads below
  // this line see at least what the peer wrote before that store.
  const std::uint16_t raw = u16_at(where).load(std::memory_order_acquire);
  // The peer's index never goes back and cannot pass `hi` (what it can possibly have): a value
  // outside [peer_seen_, hi] in ring order is a lie, clamped to hi (VPP's rx clamp, section 10).
  if (u16(raw - peer_seen_) > u16(hi - peer_seen_)) {
    if (!bad_peer_seen_ || raw != bad_peer_raw_) {
      bump(counters_.clamped_jumps);
      set_fault(cat(ring_label(), ": ", cfg_.slave ? "tail" : "head", " ", raw, " is outside ", peer_seen_, "..", hi,
                    " (the peer's index jumped); clamped to ", hi));
    }
    bad_peer_seen_ = true;
    bad_peer_raw_ = raw;
    peer_seen_ = hi;
    return hi;
  }
  peer_seen_ = raw;
  return raw;
}

void RingQueue::store_own(std::uint16_t value) noexcept {
  std::uint8_t* where = cfg_.slave ? ring_ + kHeadOffset : ring_ + wire::ring_tail_offset(cfg_.cache_line);
  // SYNC POINT: release; pairs with the peer's acquire load in its load_peer(): every descriptor
  // and buffer byte written before this store is visible to it once it sees the new index.
  u16_at(where).store(value, std::memory_order_release);
}

std::uint8_t* RingQueue::slave_buffer(std::uint16_t index) const noexcept {
  // = regions[buffer_region].base + SlaveMemory::buffer_offset(ring, slot), from attach's cache.
  return buf0_ + std::size_t{static_cast<std::uint16_t>(index & mask_)} * buf_size_;
}

std::uint32_t RingQueue::slave_offset(std::uint16_t index) const noexcept {
  // Checked against 4 GiB by create_slave_memory.
  return buf0_offset_ + static_cast<std::uint32_t>(index & mask_) * buf_size_;
}

void RingQueue::post_slot(std::uint16_t index) noexcept {
  wire::Descriptor d{};
  d.region = buf_region_;
  d.length = buf_size_;
  d.offset = slave_offset(index);
  store_desc(desc_at(index), d);
}

void RingQueue::notify_peer() noexcept {
  if (cfg_.eventfd < 0) return;
  // flags is written by the peer (this ring's receiver). Relaxed: it is a hint that carries no
  // data; a receiver switching to interrupt mode looks at the ring itself before it blocks
  // (Interface::wait_rx, rx_burst's drain-and-recheck).
  const std::uint16_t flags = u16_at(ring_ + kFlagsOffset).load(std::memory_order_relaxed);
  if ((flags & wire::kRingFlagMaskInt) != 0) return;
  if (signal_eventfd(cfg_.eventfd)) bump(counters_.interrupts_sent);
}

// ---- RingQueue: attach / detach ----------------------------------------------------------------

void RingQueue::attach(const Config& config) noexcept {
  detach();
  fault_.clear();
  faulted_.store(false, std::memory_order_relaxed);
  bad_peer_seen_ = false;
  bad_tx_seen_ = false;
  cfg_ = config;

  const char* problem = nullptr;
  if (config.ring == nullptr) problem = "no ring";
  else if (config.log2 > wire::kMaxLog2RingSize) problem = "log2 ring size above 14";
  else if (!valid_cache_line(config.cache_line)) problem = "cache line is not a power of two in 16..4096";
  else if (reinterpret_cast<std::uintptr_t>(config.ring) % 8 != 0) problem = "ring is not 8-byte aligned";
  else if (config.slave) {
    const SlaveMemory* m = config.slave_memory;
    if (m == nullptr) problem = "slave without its memory";
    else if (m->buffer_region >= config.regions.size() || config.regions[m->buffer_region].base == nullptr)
      problem = "buffer region not mapped";
    else if (m->buffer_offset(config.slave == config.transmit, config.ring_index, (1u << config.log2) - 1) +
                 m->layout.buffer_size > config.regions[m->buffer_region].size)
      problem = "buffers beyond the buffer region";
  }
  if (problem != nullptr) {
    set_fault(cat(ring_label(), ": cannot attach: ", std::string_view(problem)));
    return;
  }

  size_ = std::uint32_t{1} << config.log2;
  mask_ = static_cast<std::uint16_t>(size_ - 1);
  if (config.slave) {
    // The slave's buffer table of this ring: slot j at buf0_ + j * buf_size_ (checked above to lie
    // inside the buffer region, and by create_slave_memory to need no more than 32-bit offsets).
    const SlaveMemory& m = *config.slave_memory;
    buf_region_ = m.buffer_region;
    buf_size_ = m.layout.buffer_size;
    buf0_offset_ = static_cast<std::uint32_t>(m.buffer_offset(config.slave == config.transmit, config.ring_index, 0));
    buf0_ = config.regions[buf_region_].base + buf0_offset_;
  }
  try {
    slots_.assign(size_, Buffer{});
    handed_out_.assign(size_, 0);
  } catch (...) {
    set_fault(cat(ring_label(), ": cannot attach: out of memory"));
    return;
  }
  next_alloc_ = next_send_ = next_read_ = released_ = 0;
  rx_next_seen_ = false;
  peer_seen_ = validated_until_ = 0;
  handed_head_ = handed_count_ = 0;
  if (!rx_mode_set_) rx_mode_ = config.rx_mode;
  ring_ = config.ring;
  descs_ = ring_ + wire::ring_desc_offset(config.cache_line);

  // Connect-time reset (section 8): the owner of an index stores 0 into it...
  if (config.slave && !config.transmit) {
    // ...except the slave's receive ring, which it refills at once: every slot posted empty with
    // buffer_size capacity, head = R (libmemif memif_refill_queue(-1) after connect, section 11).
    for (std::uint32_t i = 0; i < size_; ++i) post_slot(u16(i));
    released_ = 0;
    store_own(u16(size_));  // SYNC POINT inside: publishes the posted descriptors
  } else {
    store_own(0);
  }
  if (!config.transmit) {
    // flags belongs to the ring's receiver (section 12); see set_rx_mode for the ordering.
    u16_at(ring_ + kFlagsOffset)
        .store(rx_mode_ == RxMode::polling ? wire::kRingFlagMaskInt : std::uint16_t{0}, std::memory_order_relaxed);
  }
}

void RingQueue::detach() noexcept {
  ring_ = nullptr;
  handed_head_ = handed_count_ = 0;
}

// ---- RingQueue: transmit -----------------------------------------------------------------------

Status RingQueue::alloc(std::span<Buffer> bufs, std::size_t packets, std::uint32_t size, std::size_t& count) noexcept {
  count = 0;
  if (!attached()) return Errc::not_connected;
  if (!cfg_.transmit || size == 0 || bufs.empty() || packets == 0) return Errc::invalid_argument;
  return cfg_.slave ? alloc_slave(bufs, packets, size, count) : alloc_master(bufs, packets, size, count);
}

Status RingQueue::alloc_slave(std::span<Buffer> bufs, std::size_t packets, std::uint32_t size,
                              std::size_t& count) noexcept {
  const std::uint32_t cap = buf_size_;
  // Buffers per packet (no division for the common one-buffer packet).
  const std::uint64_t per = size <= cap ? 1 : (std::uint64_t{size} + cap - 1) / cap;
  if (per > size_ || per > bufs.size()) return Errc::invalid_argument;  // could never fit
  // The master's tail can only release what was published: [last tail, next_send_].
  const std::uint16_t tail = load_peer(next_send_);  // SYNC POINT inside (acquire)
  const std::uint32_t room = size_ - u16(next_alloc_ - tail);
  // Whole packets only: as many as were asked for, fit the span and fit the free slots.
  const std::size_t fit = per == 1 ? std::min<std::size_t>({packets, bufs.size(), room})
                                    : std::min<std::size_t>({packets, bufs.size() / per, room / per});
  const auto last_len = static_cast<std::uint32_t>(size - (per - 1) * cap);  // 1..cap
  std::uint16_t index = next_alloc_;
  Buffer* out = bufs.data();
  Buffer* const slots = slots_.data();
  for (std::size_t p = 0; p < fit; ++p) {
    for (std::uint64_t k = 0; k < per; ++k, ++out, index = u16(index + 1)) {
      std::uint8_t* data = slave_buffer(index);
      __builtin_prefetch(data, 1, 3);  // the caller writes it next: start the line's RFO now
      const bool last = k + 1 == per;
      out->data = data;
      out->capacity = cap;
      out->len = last ? last_len : cap;
      out->flags = last ? std::uint16_t{0} : kBufferNext;
      out->desc_index = index;
      slots[index & mask_].capacity = cap;
    }
  }
  count = fit * per;
  next_alloc_ = index;
  if (count == 0) {
    bump(counters_.ring_full);
    return Errc::would_block;
  }
  return Errc::ok;
}

Status RingQueue::alloc_master(std::span<Buffer> bufs, std::size_t packets, std::uint32_t size,
                               std::size_t& count) noexcept {
  // The slave posts buffers [tail, head); head can be at most tail + R.
  const std::uint16_t head = load_peer(u16(next_send_ + size_));  // SYNC POINT inside (acquire)
  // Fast path: packets that fit the buffer posted for them, one descriptor each, checked like
  // below with the ring's regions loaded once. The first slot whose posted length is too short
  // (a chain) or that fails a check is left to the general loop, which reads it again, chains
  // it or reports it.
  {
    const std::span<const RegionView> regions = cfg_.regions;
    Buffer* const slots = slots_.data();
    std::uint16_t index = next_alloc_;
    const std::size_t n = std::min<std::size_t>({packets, bufs.size(), u16(head - index)});
    std::size_t k = 0;
    for (; k < n; ++k, index = u16(index + 1)) {
      // SYNC POINT: ordered after the acquire load of head in load_peer() above.
      const wire::Descriptor d = load_desc(desc_at(index));  // one fetch; only `d` is used
      if (d.length < size || check_master(d, regions) != Bad::none) break;
      std::uint8_t* data = regions[d.region].base + d.offset;
      __builtin_prefetch(data, 1, 3);  // the caller writes it next: start the line's RFO now
      Buffer& b = bufs[k];
      b.data = data;
      b.capacity = d.length;  // capacity comes from the posted length only (section 11)
      b.len = size;
      b.flags = 0;
      b.desc_index = index;
      slots[index & mask_].capacity = d.length;
    }
    count = k;
    next_alloc_ = index;
    packets -= k;
    if (packets == 0 || count == bufs.size()) return Errc::ok;  // count != 0: both need k >= 1
  }
  bool bad = false;
  bool out_of_bufs = false;
  for (;;) {
    const std::uint32_t avail = u16(head - next_alloc_);
    std::uint32_t left = size;
    std::uint32_t k = 0;
    while (left != 0) {
      if (k >= avail) break;
      if (count + k >= bufs.size()) {
        out_of_bufs = true;
        break;
      }
      const auto index = u16(next_alloc_ + k);
      const wire::Descriptor d = load_desc(desc_at(index));  // one fetch; only `d` is used
      const Bad why = check_master(d, cfg_.regions);
      if (why != Bad::none) {
        if (!bad_tx_seen_ || bad_tx_index_ != index) {
          bump(counters_.bad_descriptors);
          const std::string_view field = why == Bad::region        ? "region"
                                         : why == Bad::zero_length ? "length"
                                                                   : "offset + length";
          set_fault(cat(ring_label(), " slot ", index & mask_, ": posted descriptor ", field, " bad (region ", d.region,
                        ", offset ", d.offset, ", length ", d.length, ", ", cfg_.regions.size(), " regions)"));
        }
        bad_tx_seen_ = true;
        bad_tx_index_ = index;
        bad = true;
        break;
      }
      Buffer& b = bufs[count + k];
      b.data = cfg_.regions[d.region].base + d.offset;
      __builtin_prefetch(b.data, 1, 3);  // the caller writes it next: start the line's RFO now
      b.capacity = d.length;  // capacity comes from the posted length only (section 11)
      b.len = std::min(left, d.length);
      left -= b.len;
      b.flags = left != 0 ? kBufferNext : std::uint16_t{0};
      b.desc_index = index;
      slots_[index & mask_].capacity = d.length;
      ++k;
    }
    if (left != 0) break;  // this packet does not fit (or hit a bad descriptor): stop
    count += k;
    next_alloc_ = u16(next_alloc_ + k);
    if (count == bufs.size() || --packets == 0) break;
  }
  if (count != 0) return Errc::ok;
  if (bad) return Errc::protocol;
  if (out_of_bufs) return Errc::invalid_argument;
  bump(counters_.ring_full);
  return Errc::would_block;
}

Status RingQueue::tx_burst(std::span<const Buffer> bufs, std::size_t& sent) noexcept {
  sent = 0;
  if (!attached()) return Errc::not_connected;
  if (!cfg_.transmit) return Errc::invalid_argument;
  const std::uint32_t reserved = u16(next_alloc_ - next_send_);
  Status status = Errc::ok;
  std::uint32_t n = 0;
  std::uint64_t bytes = 0, packets = 0;  // counted once per burst
  // Loaded once per burst (the stores below are to shared memory and the caller's records
  // are read-only here, but the compiler cannot prove they alias none of these members).
  const std::uint16_t first = next_send_;
  const Buffer* const slots = slots_.data();
  const bool slave = cfg_.slave;
  const std::uint16_t region = buf_region_;
  for (const Buffer& b : bufs) {
    const auto index = u16(first + n);
    // In reservation order, and only what was reserved.
    if (n >= reserved || b.desc_index != index) {
      status = Errc::invalid_argument;
      break;
    }
    // Capacity from our own bookkeeping, not from the caller's Buffer.
    if (b.len == 0 || b.len > slots[index & mask_].capacity) {
      status = Errc::invalid_argument;
      break;
    }
    std::uint8_t* d = desc_at(index);
    const std::uint16_t flags = b.flags & kBufferNext;
    if (slave) {
      // The slave owns the whole descriptor: region/offset come from its table (section 11).
      wire::Descriptor x{};
      x.flags = flags;
      x.region = region;
      x.length = b.len;
      x.offset = slave_offset(index);
      store_desc(d, x);
    } else {
      // The master writes only length and flags of M2S descriptors (section 11).
      u32_at(d + offsetof(wire::Descriptor, length)).store(b.len, std::memory_order_relaxed);
      u16_at(d + offsetof(wire::Descriptor, flags)).store(flags, std::memory_order_relaxed);
    }
    bytes += b.len;
    packets += flags == 0 ? 1 : 0;
    ++n;
  }
  if (n != 0) {
    bump(counters_.bytes, bytes);
    bump(counters_.packets, packets);
    next_send_ = u16(next_send_ + n);
    store_own(next_send_);  // SYNC POINT inside (release): buffers + descriptors before the index
    notify_peer();
  }
  sent = n;
  return status;
}

// ---- RingQueue: receive ------------------------------------------------------------------------

bool RingQueue::validate_chain(std::uint16_t end) noexcept {
  const std::uint16_t start = next_read_;
  const std::uint32_t avail = u16(end - start);  // <= R: end <= released_ + R, start >= released_
  std::uint32_t bad = 0;
  std::string first_bad;
  const std::uint32_t buffer_size = cfg_.slave ? cfg_.slave_memory->layout.buffer_size : 0;
  for (std::uint32_t i = 0; i < avail; ++i) {
    const auto index = u16(start + i);
    // SYNC POINT: these relaxed loads are ordered after the acquire load of the peer's index in
    // load_peer() (called by collect() before this).
    const wire::Descriptor d = load_desc(desc_at(index));  // one fetch; only `d` is used
    Buffer& b = slots_[index & mask_];
    Bad why = Bad::none;
    if (cfg_.slave) {
      // M2S as the slave: the buffer is ours; only length and NEXT come from the master.
      if (d.length == 0 || d.length > buffer_size) why = Bad::too_long;
      b.data = slave_buffer(index);
    } else {
      why = check_master(d, cfg_.regions);
      if (why == Bad::none) b.data = cfg_.regions[d.region].base + d.offset;
    }
    // The caller reads the buffer next: fetch its first line while the rest is validated.
    if (why == Bad::none) __builtin_prefetch(b.data, 0, 3);
    b.len = b.capacity = d.length;
    b.flags = d.flags & wire::kDescFlagNext;
    if (b.flags != 0) rx_next_seen_ = true;  // refill must clear it (master)
    b.desc_index = index;
    if (why != Bad::none) {
      if (bad++ == 0) {
        const std::string where = cat(ring_label(), " slot ", index & mask_, ": descriptor ");
        switch (why) {
          case Bad::region:
            first_bad = cat(where, "region ", d.region, " out of range (", cfg_.regions.size(), " regions)");
            break;
          case Bad::zero_length: first_bad = cat(where, "length 0"); break;
          case Bad::beyond_region:
            first_bad = cat(where, "offset ", d.offset, " + length ", d.length, " beyond region ", d.region, " (",
                            cfg_.regions[d.region].size, " bytes)");
            break;
          default: first_bad = cat(where, "length ", d.length, " outside 1..", buffer_size, " (buffer size)"); break;
        }
      }
    }
    if ((d.flags & wire::kDescFlagNext) == 0) {
      const auto chain_end = u16(start + i + 1);
      if (bad != 0) {
        // Drop the whole packet: its slots are skipped and go back with the next refill.
        bump(counters_.bad_descriptors, bad);
        bump(counters_.dropped_packets);
        set_fault(std::move(first_bad));
        next_read_ = chain_end;
      }
      validated_until_ = chain_end;
      return true;
    }
  }
  if (avail < size_) return false;  // incomplete chain: wait for the rest
  // NEXT on every slot of the ring: the chain can never end. Drop all of it.
  bump(counters_.bad_descriptors, bad == 0 ? 1 : bad);
  bump(counters_.dropped_packets);
  set_fault(bad != 0 ? std::move(first_bad)
                     : cat(ring_label(), " slot ", start & mask_, ": chain of ", avail,
                           " descriptors without an end (NEXT on every slot of the ring)"));
  next_read_ = validated_until_ = end;
  return true;
}

std::size_t RingQueue::collect_single(std::span<Buffer> bufs, std::uint16_t end) noexcept {
  // Only while nothing validated waits (validate_chain's copies in slots_ come first), and only
  // descriptors without NEXT that pass every check: anything else stops here and goes to the
  // general path, which drops, reports and reassembles. The same checks as validate_chain,
  // hoisted per burst: this ring's regions, mask and (slave) buffer table are loaded once.
  if (next_read_ != validated_until_) return 0;
  const std::uint16_t start = next_read_;
  const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(bufs.size(), u16(end - start)));  // <= R
  const std::span<const RegionView> regions = cfg_.regions;
  const bool slave = cfg_.slave;
  const std::uint32_t buffer_size = buf_size_;  // slave only
  std::uint16_t* const fifo = handed_out_.data();
  const std::uint32_t fifo_at = handed_head_ + handed_count_;
  std::uint64_t bytes = 0;
  std::uint32_t k = 0;
  for (; k < n; ++k) {
    const auto index = u16(start + k);
    // SYNC POINT: ordered after the acquire load of the peer's index in load_peer() (collect).
    const wire::Descriptor d = load_desc(desc_at(index));  // one fetch; only `d` is used
    if ((d.flags & wire::kDescFlagNext) != 0) break;
    std::uint8_t* data;
    if (slave) {
      // M2S as the slave: the buffer is ours; only the length comes from the master.
      if (d.length == 0 || d.length > buffer_size) break;
      data = slave_buffer(index);
    } else {
      if (check_master(d, regions) != Bad::none) break;
      data = regions[d.region].base + d.offset;
    }
    __builtin_prefetch(data, 0, 3);  // the caller reads it next
    Buffer& b = bufs[k];
    b.data = data;
    b.len = b.capacity = d.length;
    b.flags = 0;
    b.desc_index = index;
    fifo[(fifo_at + k) & mask_] = index;
    bytes += d.length;
  }
  next_read_ = validated_until_ = u16(start + k);
  handed_count_ += k;
  if (k != 0) {
    bump(counters_.packets, k);
    bump(counters_.bytes, bytes);
  }
  return k;
}

std::size_t RingQueue::collect(std::span<Buffer> bufs) noexcept {
  // Slots the peer can have filled: at most R past what we released.
  const std::uint16_t end = load_peer(u16(released_ + size_));  // SYNC POINT inside (acquire)
  // One-buffer packets first, without the general path's per-chain bookkeeping.
  std::size_t got = collect_single(bufs, end);
  while (got < bufs.size()) {
    if (next_read_ == validated_until_) {
      if (next_read_ == end) break;
      if (!validate_chain(end)) break;  // incomplete chain
      continue;                         // validated a chain, or dropped a bad one
    }
    const std::uint16_t index = next_read_;
    const Buffer& b = slots_[index & mask_];
    bufs[got++] = b;
    handed_out_[(handed_head_ + handed_count_) & mask_] = index;
    ++handed_count_;
    next_read_ = u16(index + 1);
    bump(counters_.bytes, b.len);
    if ((b.flags & kBufferNext) == 0) bump(counters_.packets);
    // A chain done: one-buffer packets may follow.
    if (next_read_ == validated_until_ && got < bufs.size()) got += collect_single(bufs.subspan(got), end);
  }
  return got;
}

Status RingQueue::rx_burst(std::span<Buffer> bufs, std::size_t& received) noexcept {
  received = 0;
  if (!attached()) return Errc::not_connected;
  if (cfg_.transmit || bufs.empty()) return Errc::invalid_argument;
  std::size_t got = collect(bufs);
  // Polling mode: the peer does not signal (MASK_INT), so there is nothing to drain, and a read()
  // per empty poll would put a syscall into every idle spin of the caller's loop. A signal left
  // from before the switch to polling stays in the eventfd (one spurious wake-up later at most).
  if (got == 0 && cfg_.eventfd >= 0 && rx_mode_ != RxMode::polling) {
    // Nothing: drain the eventfd, then look once more. Draining first means a signal that
    // arrives after the first look is either seen by the second look (the peer published
    // before writing the eventfd) or stays in the eventfd after our read, so a caller that
    // waits on the fd after would_block never misses a packet.
    drain_eventfd(cfg_.eventfd);  // never blocks, even on a peer's blocking eventfd
    got = collect(bufs);
  }
  received = got;
  if (got != 0) return Errc::ok;
  return Errc::would_block;
}

Status RingQueue::refill(std::size_t count) noexcept {
  if (!attached()) return Errc::not_connected;
  if (cfg_.transmit) return Errc::invalid_argument;
  if (count == 0) return Errc::ok;
  const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::size_t>(count, handed_count_));
  std::uint16_t point = next_read_;
  if (n != 0) {
    const std::uint16_t last = handed_out_[(handed_head_ + n - 1) & mask_];
    handed_head_ = (handed_head_ + n) & mask_;
    handed_count_ -= n;
    // With buffers still out, release up to just after the last one returned; with none out,
    // everything read so far, including slots of dropped packets.
    if (handed_count_ != 0) point = u16(last + 1);
  }
  if (point == released_) return Errc::ok;
  if (cfg_.slave) {
    // Re-post the released slots as empty buffers from our own table (never trusting what the
    // master left in region/offset), then publish them: head = release point + R.
    for (auto i = released_; i != point; i = u16(i + 1)) post_slot(i);
    released_ = point;
    store_own(u16(point + size_));  // SYNC POINT inside (release): descriptors before head
  } else {
    // Interop: clear NEXT on the descriptors we hand back. DPDK 22.11's memif tx never clears
    // the flags of the first descriptor of a packet (only of the chain's later ones), so a slot
    // that once held a chain keeps a stale NEXT when reused for a one-buffer packet, and that
    // packet would be glued to the next one. Harmless for slaves that write every flag. The
    // stores come before the release of tail, so they never race with the slave's reuse.
    // Only slots read with NEXT need it (their validated copies in slots_ say so; one-buffer
    // packets never set it there): no write, and no cache line taken from the slave, for the rest;
    // and no loop at all while no chain was read since everything validated was released.
    if (rx_next_seen_) {
      for (auto i = released_; i != point; i = u16(i + 1)) {
        Buffer& copy = slots_[i & mask_];
        if ((copy.flags & kBufferNext) == 0) continue;
        copy.flags = 0;
        u16_at(desc_at(i) + offsetof(wire::Descriptor, flags)).store(0, std::memory_order_relaxed);
      }
      // Slots beyond validated_until_ are validated again before they are handed out.
      if (point == validated_until_) rx_next_seen_ = false;
    }
    released_ = point;
    store_own(point);  // SYNC POINT inside (release): we are done with the buffers before tail
  }
  return Errc::ok;
}

void RingQueue::set_rx_mode(RxMode mode) noexcept {
  rx_mode_ = mode;
  rx_mode_set_ = true;
  if (attached() && !cfg_.transmit) {
    // Relaxed: MASK_INT is a hint with no data behind it. The sender reads it after publishing;
    // a change racing with a burst costs at most one extra or one missing eventfd write, and a
    // receiver that goes back to interrupts checks the ring before blocking (wait_rx).
    u16_at(ring_ + kFlagsOffset)
        .store(mode == RxMode::polling ? wire::kRingFlagMaskInt : std::uint16_t{0}, std::memory_order_relaxed);
  }
}

bool RingQueue::rx_pending() const noexcept {
  if (!attached() || cfg_.transmit) return false;
  if (validated_until_ != next_read_) return true;
  std::uint8_t* where = cfg_.slave ? ring_ + wire::ring_tail_offset(cfg_.cache_line) : ring_ + kHeadOffset;
  // SYNC POINT: acquire; pairs with the peer's release store of its index (racy observer: the
  // caller follows up with rx_burst, which loads it again).
  return u16_at(where).load(std::memory_order_acquire) != next_read_;
}

QueueCounters RingQueue::counters() const noexcept {
  QueueCounters c;
  c.packets = load_counter(counters_.packets);
  c.bytes = load_counter(counters_.bytes);
  c.bad_descriptors = load_counter(counters_.bad_descriptors);
  c.dropped_packets = load_counter(counters_.dropped_packets);
  c.clamped_jumps = load_counter(counters_.clamped_jumps);
  c.interrupts_sent = load_counter(counters_.interrupts_sent);
  c.ring_full = load_counter(counters_.ring_full);
  return c;
}

void RingQueue::snapshot(std::uint16_t& head, std::uint16_t& tail, bool& mask_int) const noexcept {
  head = tail = 0;
  mask_int = false;
  if (!attached()) return;
  // Relaxed: an inspection snapshot, nothing is read through these values.
  head = u16_at(ring_ + kHeadOffset).load(std::memory_order_relaxed);
  tail = u16_at(ring_ + wire::ring_tail_offset(cfg_.cache_line)).load(std::memory_order_relaxed);
  mask_int = (u16_at(ring_ + kFlagsOffset).load(std::memory_order_relaxed) & wire::kRingFlagMaskInt) != 0;
}

}  // namespace shmlink::memif::detail
