// SPDX-License-Identifier: MIT
// The shmlink and reference ends of `shmlink memif bench` (memif_ends.hpp): forked children that
// send frames through one memif queue or receive them, check their sequence numbers and measure
// the rate; the reference end is a libmemif-style loop over the same ring layout.
#include "harness/memif_ends.hpp"

#include "harness/machine.hpp"
#include "harness/pingpong.hpp"

#include <shmlink/error.hpp>
#include <shmlink/memif.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <span>
#include <string>
#include <vector>

namespace shmlink::bench {

namespace {

using namespace std::chrono_literals;

// ---- the shmlink and reference ends (forked children) ----------------------------------------

/// The marker a child writes once its interface exists (a master is then listening).
constexpr char kReady = 'R';

std::atomic<bool> g_child_stop{false};
void child_stop(int) { g_child_stop.store(true); }

/// Writes all of `len` bytes (a pipe to the parent); false on error.
bool write_all(int fd, const void* p, std::size_t len) {
  const char* c = static_cast<const char*>(p);
  while (len > 0) {
    const ssize_t n = ::write(fd, c, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    c += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Sends `r` (with `error` set from `what`) and leaves.
[[noreturn]] void child_fail(int fd, const std::string& what) {
  MemifReport r;
  std::snprintf(r.error, sizeof r.error, "%s", what.c_str());
  (void)write_all(fd, &r, sizeof r);
  ::_exit(1);
}

/// The frame a sender sends: broadcast Ethernet header, IPv4 ethertype, a byte pattern after it;
/// each copy carries its sequence number at kSeqOffset.
std::vector<std::uint8_t> make_frame(std::uint32_t size) {
  std::vector<std::uint8_t> frame(size);
  for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::uint8_t>(i * 7 + 1);
  std::fill_n(frame.begin(), 6, 0xff);
  const std::uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  std::copy_n(src, 6, frame.begin() + 6);
  frame[12] = 0x08;
  frame[13] = 0x00;
  return frame;
}

/// Where the sequence number sits in a frame (after the Ethernet header; every size >= 60 holds it).
constexpr std::size_t kSeqOffset = 14;

/// The receiver's side of a run, the same for shmlink and the reference: copies every buffer out,
/// checks each packet's sequence number, and measures the rate. The window opens `warmup` after
/// the first packet, at the end of a burst, and closes at the end of the first burst `duration`
/// later; it counts the packets completed in between.
class RxMeter {
 public:
  explicit RxMeter(const MemifEndConfig& c)
      : warmup_ns_(static_cast<std::int64_t>(c.warmup * 1e9)), window_ns_(static_cast<std::int64_t>(c.duration * 1e9)),
        scratch_(std::size_t{65536} + c.buffer_size), check_seq_(c.check_seq) {}

  /// One received buffer: copied out; a packet's first buffer has its sequence number checked.
  void buffer(const std::uint8_t* data, std::uint32_t len, bool next) noexcept {
    const std::size_t n = std::min<std::size_t>(len, scratch_.size() - off_);
    std::memcpy(scratch_.data() + off_, data, n);
    if (check_seq_ && off_ == 0 && n >= kSeqOffset + sizeof(std::uint64_t)) {
      std::uint64_t seq = 0;
      std::memcpy(&seq, scratch_.data() + kSeqOffset, sizeof seq);
      if (seq != expected_ && bad_seq_ == 0) bad_seq_ = expected_ + 1;  // report the first break
      expected_ = seq + 1;
    }
    if (next) {
      off_ += n;
    } else {
      off_ = 0;
      ++done_;
    }
  }

  /// After each burst that received something. @return true when the window is complete.
  bool burst_done() noexcept {
    keep(scratch_.data());
    const std::int64_t now = mono_ns();
    const std::uint64_t done = done_;
    done_ = 0;
    if (open_at_ < 0) {
      open_at_ = now + warmup_ns_;
    } else if (start_ < 0) {
      if (now >= open_at_) start_ = now;
    } else {
      packets_ += done;
      if (now - start_ >= window_ns_) {
        end_ = now;
        return true;
      }
    }
    return false;
  }

  /// True once a packet arrived.
  [[nodiscard]] bool started() const noexcept { return open_at_ >= 0; }

  /// The report of a completed window; an error when a sequence number was out of order.
  [[nodiscard]] MemifReport report() const noexcept {
    MemifReport r;
    r.packets = packets_;
    r.ns = end_ - start_;
    r.pps = r.ns > 0 ? static_cast<double>(packets_) * 1e9 / static_cast<double>(r.ns) : 0;
    if (bad_seq_ != 0)
      std::snprintf(r.error, sizeof r.error, "receiver: packet sequence broken after packet %llu (lost, repeated or "
                    "reordered)", static_cast<unsigned long long>(bad_seq_ - 1));
    return r;
  }

 private:
  std::int64_t warmup_ns_, window_ns_;
  std::vector<std::uint8_t> scratch_;
  bool check_seq_;
  std::size_t off_ = 0;
  std::uint64_t expected_ = 0, bad_seq_ = 0, done_ = 0, packets_ = 0;
  std::int64_t open_at_ = -1, start_ = -1, end_ = -1;
};

/// Copies `frame` with sequence number `seq` into one packet's buffers [first, first + count).
void fill_packet(std::span<memif::Buffer> bufs, const std::vector<std::uint8_t>& frame, std::uint64_t seq) noexcept {
  std::size_t off = 0;
  for (memif::Buffer& b : bufs) {
    std::memcpy(b.data, frame.data() + off, b.len);
    if (off == 0) std::memcpy(b.data + kSeqOffset, &seq, sizeof seq);
    off += b.len;
  }
}

/// The body of a shmlink end: connects, then sends until SIGTERM, or receives, measures and
/// reports. Never returns (children leave with _exit, so no destructor of the parent's objects
/// runs twice).
[[noreturn]] void run_shmlink_child(const MemifEndConfig& c, int fd) {
  try {
    memif::SocketOptions so;
    so.path = c.socket;
    so.app_name = "shmlink-bench";
    so.reconnect_interval = 100ms;
    so.publish_status = false;  // the child leaves with _exit; and no status refresh in the timing
    memif::Socket sock(so);
    memif::InterfaceOptions io;
    io.role = c.role;
    io.name = c.sender ? "bench-tx" : "bench-rx";
    io.log2_ring_size = static_cast<std::uint8_t>(c.log2_ring);
    io.buffer_size = c.buffer_size;
    io.rx_mode = memif::RxMode::polling;
    memif::Interface& ifc = sock.add_interface(io);
    if (!write_all(fd, &kReady, 1)) ::_exit(1);

    const std::int64_t link_deadline = mono_ns() + static_cast<std::int64_t>(c.link_timeout * 1e9);
    while (!ifc.connected()) {
      if (g_child_stop.load()) ::_exit(0);
      if (mono_ns() > link_deadline)
        child_fail(fd, fmt::format("{}: no link within {} s{}", sock.name(), c.link_timeout,
                                   ifc.last_disconnect().empty() ? "" : ": " + ifc.last_disconnect()));
      (void)sock.poll(20ms);
    }
    const std::size_t chain = (c.size + c.buffer_size - 1) / c.buffer_size;
    std::vector<memif::Buffer> bufs(static_cast<std::size_t>(c.burst) * chain);

    if (c.sender) {
      const std::vector<std::uint8_t> frame = make_frame(c.size);
      std::uint64_t loops = 0, seq = 0;
      while (!g_child_stop.load(std::memory_order_relaxed)) {
        if ((++loops & 4095) == 0) (void)sock.poll(0ms);
        std::size_t n = 0;
        const Status st = ifc.alloc(0, bufs, c.burst, c.size, n);
        if (st.code() == Errc::would_block) continue;
        if (st.code() == Errc::not_connected) {  // the receiver left: wait for the parent's SIGTERM
          (void)sock.poll(20ms);
          continue;
        }
        if (!st.ok()) child_fail(fd, fmt::format("{}: alloc: {}", sock.name(), st.message()));
        for (std::size_t k = 0; k < n; k += chain) fill_packet(std::span(bufs).subspan(k, chain), frame, seq++);
        std::size_t sent = 0;
        (void)ifc.tx_burst(0, std::span<const memif::Buffer>(bufs.data(), n), sent);
      }
      ::_exit(0);
    }

    RxMeter meter(c);
    std::uint64_t loops = 0;
    const std::int64_t first_deadline = mono_ns() + static_cast<std::int64_t>(c.link_timeout * 1e9);
    for (;;) {
      if (g_child_stop.load(std::memory_order_relaxed)) ::_exit(0);
      if ((++loops & 4095) == 0) {
        (void)sock.poll(0ms);
        if (!ifc.connected()) child_fail(fd, fmt::format("{}: link went down: {}", sock.name(), ifc.last_disconnect()));
        if (!meter.started() && mono_ns() > first_deadline)
          child_fail(fd, fmt::format("{}: no packet within {} s of the link", sock.name(), c.link_timeout));
      }
      std::size_t n = 0;
      const Status st = ifc.rx_burst(0, bufs, n);
      if (st.code() == Errc::would_block) continue;
      if (!st.ok()) child_fail(fd, fmt::format("{}: rx_burst: {}", sock.name(), st.message()));
      for (std::size_t k = 0; k < n; ++k)
        meter.buffer(bufs[k].data, bufs[k].len, (bufs[k].flags & memif::kBufferNext) != 0);
      (void)ifc.refill(0, n);
      if (meter.burst_done()) {
        const MemifReport r = meter.report();
        (void)write_all(fd, &r, sizeof r);
        ::_exit(0);
      }
    }
  } catch (const std::exception& e) {
    child_fail(fd, e.what());
  }
}

// ---- the reference: a libmemif-style queue -------------------------------------------------
//
// Written for this bench (our own code) after libmemif 4.0's data path as the protocol notes
// describe it, with the same four calls and the same buffer records an application uses:
// memif_buffer_alloc (reserve slots, hand out {data, len, flags, desc_index}), memif_tx_burst
// (write each descriptor's length and flags, store the own index once, release), memif_rx_burst
// (load the peer's index once, acquire; one record per descriptor, the address taken from the
// descriptor's region and offset with no check at all; a slave writes the buffer size back into
// the descriptor's length as it reads) and memif_refill_queue (slave: re-post the slots and store
// head; master: store tail). The calls are not inlined into the loop, as a shared library's are
// not. It is the floor shmlink is measured against: the same API shape and memory work, without
// the checks a lying peer must not get past (descriptor bounds, index clamps, chain limits) and
// without counters. It has no control channel: both ends are forked from this process and share
// one anonymous mapping laid out as a memif slave lays out one ring: the header (cookie, flags,
// head at byte 6, tail at byte 64), the descriptors from byte 128, then the buffers (slot j at
// j * buffer_size), all in "region 0".

/// One memif descriptor (the wire layout: flags, region, length, offset, metadata).
struct RefDesc {
  std::uint16_t flags;
  std::uint16_t region;
  std::uint32_t length;
  std::uint32_t offset;
  std::uint32_t metadata;
};
static_assert(sizeof(RefDesc) == 16 && offsetof(RefDesc, region) == 2 && offsetof(RefDesc, length) == 4 &&
              offsetof(RefDesc, offset) == 8);
constexpr std::size_t kRefHeadOffset = 6, kRefTailOffset = 64, kRefDescOffset = 128;
constexpr std::uint16_t kRefNext = 1;

/// Bytes of the reference mapping for 2^log2 slots of `buffer_size` bytes.
}  // namespace

std::size_t memif_reference_bytes(unsigned log2, std::uint32_t buffer_size) {
  return kRefDescOffset + (std::size_t{sizeof(RefDesc)} << log2) + (std::size_t{buffer_size} << log2);
}

namespace {

// The descriptor fields go through relaxed atomic_refs (plain moves on x86-64, like libmemif's
// volatile fields); the indices carry the ordering.
template <class T>
T ref_load(T& field) noexcept { return std::atomic_ref<T>(field).load(std::memory_order_relaxed); }
template <class T>
void ref_store(T& field, T v) noexcept { std::atomic_ref<T>(field).store(v, std::memory_order_relaxed); }

/// One side's queue on the shared ring, as libmemif keeps it (memif_queue_t: the ring, its
/// size, the last index seen or reserved, the region table).
struct RefQueue {
  std::uint8_t* ring;
  std::uint8_t* regions[1];  ///< memif_get_buffer: regions[desc.region] + desc.offset
  std::uint16_t mask;
  std::uint32_t slots;
  std::uint32_t buffer_size;
  std::uint32_t buffers;  ///< offset of slot 0's buffer in region 0
  bool slave;
  std::uint16_t next_alloc = 0;  ///< transmit: next slot to reserve
  std::uint16_t last = 0;        ///< transmit: own index as stored; receive: next slot to read
  std::uint16_t posted = 0;      ///< slave receive: head (buffers posted)

  std::atomic_ref<std::uint16_t> head() const noexcept {
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring + kRefHeadOffset));
  }
  std::atomic_ref<std::uint16_t> tail() const noexcept {
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(ring + kRefTailOffset));
  }
  RefDesc& desc(std::uint16_t index) const noexcept {
    return reinterpret_cast<RefDesc*>(ring + kRefDescOffset)[index & mask];
  }
  std::uint32_t buffer_offset(std::uint16_t index) const noexcept {
    return buffers + static_cast<std::uint32_t>(index & mask) * buffer_size;
  }
};

/// memif_buffer_alloc: up to `count` buffers of `size` bytes (chains for larger packets), whole
/// packets only. A slave resets each descriptor's region and offset to its buffer. @return buffers.
[[gnu::noinline]] std::size_t ref_alloc(RefQueue& q, memif::Buffer* bufs, std::size_t count, std::uint32_t size) noexcept {
  // SYNC POINT: acquire; pairs with the receiver's release of its index (refill).
  const std::uint16_t peer = q.slave ? q.tail().load(std::memory_order_acquire) : q.head().load(std::memory_order_acquire);
  // slave: free slots = R - (head - tail); master: posted slots = head - tail.
  const std::uint32_t room = q.slave ? q.slots - static_cast<std::uint16_t>(q.next_alloc - peer)
                                     : static_cast<std::uint16_t>(peer - q.next_alloc);
  const std::uint32_t chain = (size + q.buffer_size - 1) / q.buffer_size;
  const std::size_t packets = std::min<std::size_t>(count / chain, room / chain);
  std::size_t n = 0;
  for (std::size_t p = 0; p < packets; ++p) {
    std::uint32_t left = size;
    for (std::uint32_t k = 0; k < chain; ++k, ++n, ++q.next_alloc) {
      RefDesc& d = q.desc(q.next_alloc);
      if (q.slave) {
        ref_store(d.region, std::uint16_t{0});
        ref_store(d.offset, q.buffer_offset(q.next_alloc));
      }
      memif::Buffer& b = bufs[n];
      b.data = q.regions[ref_load(d.region)] + ref_load(d.offset);
      b.len = std::min(left, q.buffer_size);
      b.capacity = q.buffer_size;
      left -= b.len;
      b.flags = left != 0 ? memif::kBufferNext : std::uint16_t{0};
      b.desc_index = q.next_alloc;
    }
  }
  return n;
}

/// memif_tx_burst: writes length and flags of each reserved descriptor, then the own index once.
[[gnu::noinline]] void ref_tx_burst(RefQueue& q, const memif::Buffer* bufs, std::size_t count) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    RefDesc& d = q.desc(bufs[i].desc_index);
    ref_store(d.length, bufs[i].len);
    ref_store(d.flags, (bufs[i].flags & memif::kBufferNext) != 0 ? kRefNext : std::uint16_t{0});
  }
  q.last = static_cast<std::uint16_t>(q.last + count);
  // SYNC POINT: release; the receiver's acquire load of this index sees buffers and descriptors.
  (q.slave ? q.head() : q.tail()).store(q.last, std::memory_order_release);
}

/// memif_rx_burst: one record per received descriptor, at most `count`. @return records.
[[gnu::noinline]] std::size_t ref_rx_burst(RefQueue& q, memif::Buffer* bufs, std::size_t count) noexcept {
  // SYNC POINT: acquire; pairs with the sender's release store of its index.
  const std::uint16_t peer = q.slave ? q.tail().load(std::memory_order_acquire) : q.head().load(std::memory_order_acquire);
  const std::size_t n = std::min<std::size_t>(static_cast<std::uint16_t>(peer - q.last), count);
  for (std::size_t i = 0; i < n; ++i, ++q.last) {
    RefDesc& d = q.desc(q.last);
    memif::Buffer& b = bufs[i];
    b.desc_index = q.last;
    b.data = q.regions[ref_load(d.region)] + ref_load(d.offset);
    b.len = b.capacity = ref_load(d.length);
    b.flags = (ref_load(d.flags) & kRefNext) != 0 ? memif::kBufferNext : std::uint16_t{0};
    if (q.slave) ref_store(d.length, q.buffer_size);
  }
  return n;
}

/// memif_refill_queue: gives back `count` received buffers (slave: re-posts them, then head;
/// master: tail).
[[gnu::noinline]] void ref_refill(RefQueue& q, std::size_t count) noexcept {
  if (q.slave) {
    for (std::size_t i = 0; i < count; ++i, ++q.posted) {
      RefDesc& d = q.desc(q.posted);
      ref_store(d.region, std::uint16_t{0});
      ref_store(d.offset, q.buffer_offset(q.posted));
      ref_store(d.length, q.buffer_size);
    }
    q.head().store(q.posted, std::memory_order_release);  // SYNC POINT: pairs with the sender's acquire
  } else {
    q.tail().store(q.last, std::memory_order_release);  // SYNC POINT: pairs with the sender's acquire
  }
}

/// A reference end: the slave sends on S2M (writes head) and receives on M2S (posts buffers,
/// reads tail); the master the other way round. The loops are the shmlink end's, call for call.
/// Never returns.
[[noreturn]] void run_reference_child(const MemifEndConfig& c, int fd) {
  if (!write_all(fd, &kReady, 1)) ::_exit(1);
  RefQueue q{c.ref_memory, {c.ref_memory}, static_cast<std::uint16_t>((1u << c.log2_ring) - 1), 1u << c.log2_ring,
             c.buffer_size, static_cast<std::uint32_t>(kRefDescOffset + (sizeof(RefDesc) << c.log2_ring)),
             c.role == memif::Role::slave};
  const std::size_t chain = (c.size + c.buffer_size - 1) / c.buffer_size;
  std::vector<memif::Buffer> bufs(static_cast<std::size_t>(c.burst) * chain);

  if (c.sender) {
    const std::vector<std::uint8_t> frame = make_frame(c.size);
    std::uint64_t seq = 0;
    while (!g_child_stop.load(std::memory_order_relaxed)) {
      const std::size_t n = ref_alloc(q, bufs.data(), bufs.size(), c.size);
      if (n == 0) continue;
      for (std::size_t k = 0; k < n; k += chain) fill_packet(std::span(bufs).subspan(k, chain), frame, seq++);
      ref_tx_burst(q, bufs.data(), n);
    }
    ::_exit(0);
  }

  if (q.slave) ref_refill(q, q.slots);  // memif_refill_queue(-1) after connect: post every slot
  RxMeter meter(c);
  for (;;) {
    if (g_child_stop.load(std::memory_order_relaxed)) ::_exit(0);
    const std::size_t n = ref_rx_burst(q, bufs.data(), bufs.size());
    if (n == 0) continue;
    for (std::size_t k = 0; k < n; ++k)
      meter.buffer(bufs[k].data, bufs[k].len, (bufs[k].flags & memif::kBufferNext) != 0);
    ref_refill(q, n);
    if (meter.burst_done()) {
      const MemifReport r = meter.report();
      (void)write_all(fd, &r, sizeof r);
      ::_exit(0);
    }
  }
}

/// The body of a forked end: signals, CPU, then the implementation's loop. Never returns.
[[noreturn]] void run_child(const MemifEndConfig& c, int fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  struct sigaction sa {};
  sa.sa_handler = child_stop;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  if (!pin_to_cpu(c.cpu)) child_fail(fd, fmt::format("cannot pin to CPU {}: {}", c.cpu, std::strerror(errno)));
  if (c.impl == MemifImpl::reference) run_reference_child(c, fd);
  run_shmlink_child(c, fd);
}

}  // namespace

MemifEnd::MemifEnd(const MemifEndConfig& c) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Error(Errc::system, std::string("memif bench: pipe: ") + std::strerror(errno));
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(Errc::system, std::string("memif bench: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(p[0]);
    run_child(c, p[1]);
  }
  ::close(p[1]);
  pid_ = pid;
  fd_ = p[0];
}

MemifEnd::~MemifEnd() {
  stop();
  if (fd_ >= 0) ::close(fd_);
}

std::string MemifEnd::wait_ready(double seconds) {
  char c = 0;
  const std::string err = read_exact(&c, 1, seconds);
  if (!err.empty()) return err;
  if (c == kReady) return {};
  // A child that failed before its interface existed sent a report instead: its error.
  MemifReport r;
  auto* bytes = reinterpret_cast<char*>(&r);
  bytes[0] = c;
  const std::string err2 = read_exact(bytes + 1, sizeof r - 1, 2.0);
  if (!err2.empty()) return err2;
  r.error[sizeof r.error - 1] = '\0';
  return r.error[0] != '\0' ? std::string(r.error) : std::string("shmlink end: unexpected message");
}

std::string MemifEnd::read_report(MemifReport& r, double seconds) {
  std::string err = read_exact(&r, sizeof r, seconds);
  if (!err.empty()) return err;
  r.error[sizeof r.error - 1] = '\0';
  return r.error;
}

void MemifEnd::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  (void)reap(pid_, 5'000'000'000);
  pid_ = -1;
}

std::string MemifEnd::read_exact(void* p, std::size_t len, double seconds) {
  char* c = static_cast<char*>(p);
  const std::int64_t deadline = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
  while (len > 0) {
    const std::int64_t left = deadline - mono_ns();
    if (left <= 0) return fmt::format("shmlink end (pid {}): no answer within {} s", pid_, seconds);
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left / 1000000 + 1, 1000)));
    if (r < 0 && errno != EINTR) return std::string("poll: ") + std::strerror(errno);
    if (r <= 0) continue;
    const ssize_t n = ::read(fd_, c, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fmt::format("shmlink end (pid {}) exited without a report", pid_);
    c += n;
    len -= static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace shmlink::bench
