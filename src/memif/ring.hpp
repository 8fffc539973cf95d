// SPDX-License-Identifier: MIT
// memif: the data path of one queue over a ring (docs/reference/memif.md sections 9-12), and
// (through memory.hpp) the connection's memory it runs on. Internal; the public face is
// include/shmlink/memif.hpp.
//
// Ownership rules (section 11): `head` is written only by the slave, `tail` only by the master,
// on both ring types. The slave owns every buffer and every descriptor's region/offset; the
// master writes only `length` and `flags` of M2S descriptors. Peer indices are loaded with
// acquire, own indices stored with release.
//
// Trust: the slave never reads a buffer address back from shared memory: it keeps its own table
// of slot -> (region, offset) and rewrites both fields whenever it posts or sends a descriptor,
// so a master that scribbles over them changes nothing. The master validates every descriptor
// against the regions it mapped (region < n, length != 0, offset + length <= region size) and
// clamps the slave's head jumps to the ring size. One exception to "the master never writes S2M
// descriptors": it clears NEXT on the ones it returns, before storing tail (DPDK 22.11 leaves a
// stale NEXT on reused slots; see RingQueue::refill).
#pragma once

#include "memif/memory.hpp"
#include "memif/wire.hpp"

#include <shmlink/error.hpp>
#include <shmlink/memif.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace shmlink::memif::detail {

/// One queue's data path: a ring as one side uses it, plus that side's private bookkeeping.
/// Not thread-safe; one thread per queue (include/shmlink/memif.hpp). The public Interface
/// methods alloc/tx_burst/rx_burst/refill/set_rx_mode forward to it after checking the qid.
class RingQueue {
 public:
  /// How this side uses the ring.
  struct Config {
    bool slave = true;            ///< this side is the slave (writes head) or the master (writes tail)
    bool transmit = true;         ///< this side sends on the ring (slave: S2M, master: M2S)
    std::uint8_t* ring = nullptr; ///< ring header (from locate_ring or the slave's memory)
    std::uint8_t log2 = 10;       ///< slots, log2
    std::uint32_t cache_line = 64;
    std::span<const RegionView> regions;  ///< every region of the connection (stays valid while attached)
    int eventfd = -1;             ///< the ring's interrupt eventfd (not owned)
    /// Slave only: its buffer table; capacity of every buffer and where slot j's buffer is.
    const SlaveMemory* slave_memory = nullptr;
    std::uint16_t ring_index = 0; ///< which ring of its direction (for the slave's buffer table and messages)
    RxMode rx_mode = RxMode::interrupt;  ///< receive rings: initial MASK_INT (polling sets it)
  };

  RingQueue() = default;
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;

  /// Attaches to a ring at connect time and resets the local bookkeeping. The side that owns an
  /// index stores 0 into it (libmemif/DPDK connect-time reset, section 8). A slave receive ring
  /// (M2S) is then refilled completely: every slot posted with buffer_size capacity, head = R.
  /// Receive rings get MASK_INT per rx_mode: Config::rx_mode, unless set_rx_mode was called
  /// before, whose mode wins. Clears fault(). Counters are kept across attachments. A bad
  /// config (null ring, log2 > 14, cache line not a power of two, ring not 8-aligned, slave
  /// buffers outside its buffer region) leaves the queue detached with fault() saying why.
  void attach(const Config& config) noexcept;
  /// Detaches (link down): every later call returns not_connected. Counters are kept.
  void detach() noexcept;
  /// True between attach and detach.
  [[nodiscard]] bool attached() const noexcept { return ring_ != nullptr; }

  /// See Interface::alloc. Returns would_block when no slot is free (and counts ring_full);
  /// invalid_argument for size 0, an empty span, a receive ring, or a packet that needs more
  /// buffers than `bufs` holds (slave: or than the ring has); protocol (master) when the next
  /// posted descriptor is bad and nothing was reserved (counted once, fault() set).
  Status alloc(std::span<Buffer> bufs, std::size_t packets, std::uint32_t size, std::size_t& count) noexcept;
  /// See Interface::tx_burst. invalid_argument also on a receive ring.
  Status tx_burst(std::span<const Buffer> bufs, std::size_t& sent) noexcept;
  /// See Interface::rx_burst. invalid_argument on an empty span or a transmit ring. A dropped
  /// bad packet is not an error here (counted, fault() set): with nothing else it is would_block.
  Status rx_burst(std::span<Buffer> bufs, std::size_t& received) noexcept;
  /// See Interface::refill. invalid_argument on a transmit ring; count 0 is a no-op.
  Status refill(std::size_t count) noexcept;
  /// Sets MASK_INT on a receive ring (polling) or clears it (interrupt); remembered for attach.
  void set_rx_mode(RxMode mode) noexcept;
  /// True when a receive ring has something past what was handed out (racy; for wait_rx).
  [[nodiscard]] bool rx_pending() const noexcept;

  /// The first protocol violation seen since attach ("" if none), e.g. "M2S ring 0 slot 5:
  /// descriptor offset 4096 + length 2048 beyond region 1 (4096 bytes)". Set by the data path
  /// (same thread); the control side reads it after the queue's thread is done (see
  /// fault_flag()).
  [[nodiscard]] const std::string& fault() const noexcept { return fault_; }
  /// Becomes true (release) when fault() was set; the control thread may poll it (acquire).
  [[nodiscard]] const std::atomic<bool>& fault_flag() const noexcept { return faulted_; }

  /// Counters (kept across connections): a snapshot, each field loaded relaxed. The queue's
  /// thread is their only writer (relaxed load + store); the control thread may call this while
  /// the data path runs (the status file's refresh), so the fields of one snapshot may be from
  /// slightly different moments.
  [[nodiscard]] QueueCounters counters() const noexcept;
  /// Racy snapshot of the ring header for inspection: head, tail, MASK_INT.
  void snapshot(std::uint16_t& head, std::uint16_t& tail, bool& mask_int) const noexcept;
  /// The receive mode set.
  [[nodiscard]] RxMode rx_mode() const noexcept { return rx_mode_; }

 private:
  // Implementation state and helpers; see ring.cpp.
  void set_fault(std::string message) noexcept;
  /// "S2M ring 3" / "M2S ring 0", for messages.
  [[nodiscard]] std::string ring_label() const;
  /// True when the ring carries data slave -> master.
  [[nodiscard]] bool s2m() const noexcept { return cfg_.slave == cfg_.transmit; }
  /// Descriptor of free-running index `index`.
  [[nodiscard]] std::uint8_t* desc_at(std::uint16_t index) const noexcept;
  /// Loads the peer's index (acquire) and clamps it to [peer_seen_, hi]; updates peer_seen_.
  std::uint16_t load_peer(std::uint16_t hi) noexcept;
  /// Stores this side's index (release).
  void store_own(std::uint16_t value) noexcept;
  /// Slave: address and region offset of the buffer of free-running index `index` (own table).
  [[nodiscard]] std::uint8_t* slave_buffer(std::uint16_t index) const noexcept;
  [[nodiscard]] std::uint32_t slave_offset(std::uint16_t index) const noexcept;
  /// Slave receive ring: writes the empty descriptor of `index` (buffer_size capacity).
  void post_slot(std::uint16_t index) noexcept;
  Status alloc_slave(std::span<Buffer> bufs, std::size_t packets, std::uint32_t size, std::size_t& count) noexcept;
  Status alloc_master(std::span<Buffer> bufs, std::size_t packets, std::uint32_t size, std::size_t& count) noexcept;
  /// Receive: hands out validated buffers into `bufs`; returns how many.
  std::size_t collect(std::span<Buffer> bufs) noexcept;
  /// Receive, fast path of collect(): one-buffer packets from next_read_ up to peer index `end`,
  /// validated straight into `bufs`, until the first chain or bad descriptor (left to the
  /// general path); returns how many.
  std::size_t collect_single(std::span<Buffer> bufs, std::uint16_t end) noexcept;
  /// Receive: validates the chain starting at next_read_ (peer index `end`); false = incomplete.
  bool validate_chain(std::uint16_t end) noexcept;
  /// Writes 1 to the eventfd unless the receiver set MASK_INT.
  void notify_peer() noexcept;

  Config cfg_{};
  std::uint8_t* ring_ = nullptr;
  std::uint8_t* descs_ = nullptr;  // descriptor 0 of ring_ (set with ring_ at attach)
  std::uint32_t size_ = 0;   // slots
  std::uint16_t mask_ = 0;
  RxMode rx_mode_ = RxMode::interrupt;
  bool rx_mode_set_ = false;  // set_rx_mode was called: its mode wins over Config::rx_mode
  // Local indices (free-running u16):
  //  transmit: next_alloc_ = next slot to reserve; next_send_ = next reserved slot to publish
  //            (= this side's index as last stored).
  //  receive: next_read_ = next slot to hand out; released_ = how far buffers were returned
  //           (master: = tail as stored; slave: head = released_ + R).
  std::uint16_t next_alloc_ = 0;
  std::uint16_t next_send_ = 0;
  std::uint16_t next_read_ = 0;
  std::uint16_t released_ = 0;
  std::uint16_t peer_seen_ = 0;       // last peer index accepted (after clamping); never goes back
  std::uint16_t validated_until_ = 0; // receive: [next_read_, validated_until_) = validated, not handed out
  std::uint16_t bad_peer_raw_ = 0;    // last out-of-range peer index (counted once, not per call)
  bool bad_peer_seen_ = false;
  std::uint16_t bad_tx_index_ = 0;    // master transmit: bad posted descriptor already reported
  bool bad_tx_seen_ = false;
  bool rx_next_seen_ = false;         // master receive: a copy in slots_ may hold NEXT (refill clears it)
  // Per slot (index & mask_): transmit = capacity recorded at alloc; receive = the validated
  // copy of the descriptor as a Buffer (never re-read from shared memory after validation).
  std::vector<Buffer> slots_;
  std::vector<std::uint16_t> handed_out_;  // receive: ring FIFO (R entries) of handed-out indices
  std::uint32_t handed_head_ = 0;          // position of the oldest live entry in handed_out_
  std::uint32_t handed_count_ = 0;         // live entries
  // Slave: this ring's buffer table, cached at attach (slot j at buf0_ + j * buf_size_, region
  // offset buf0_offset_ + j * buf_size_ in region buf_region_).
  std::uint8_t* buf0_ = nullptr;
  std::uint32_t buf0_offset_ = 0;
  std::uint32_t buf_size_ = 0;
  std::uint16_t buf_region_ = 0;
  std::string fault_;
  std::atomic<bool> faulted_{false};
  QueueCounters counters_{};  // written by the queue's thread through bump() (ring.cpp), read by counters()
};

}  // namespace shmlink::memif::detail
