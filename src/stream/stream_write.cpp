// SPDX-License-Identifier: MIT
// Streams: the write path (begin_write, commit_write, write; reference section 11.2).
#include "stream/stream_impl.hpp"

namespace shmlink {

// ---- writing --------------------------------------------------------------------------------

std::span<std::byte> Stream::begin_write() noexcept {
  if (!impl_ || !impl_->writable) return {};
  Impl& m = *impl_;
  if (!m.writing) {
    if (m.placement_gone()) return {};
    Metadata* md = m.md;
    // Rolling buffer: the slice after the last one written (ISIO's ImageStreamIO_writeIndex).
    m.write_slice = m.rolling
                        ? static_cast<std::uint32_t>((aref(md->cnt1).load(std::memory_order_relaxed) + 1) % m.depth)
                        : 0;
    aref(md->write).store(1, std::memory_order_relaxed);
    // SYNC POINT C (release fence): no data store below may become visible before write = 1.
    // Pairs with the acquire fence after the copy in read_copy() / copy_slice().
    std::atomic_thread_fence(std::memory_order_release);
    m.writing = true;
  }
  return {m.slice_data(m.write_slice), m.frame_bytes};
}

Status Stream::commit_write(const WriteOptions& options) noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  Impl& m = *impl_;
  Metadata* md = m.md;
  if (!m.writing && m.rolling)  // data was changed through a pointer without begin_write()
    m.write_slice = static_cast<std::uint32_t>((aref(md->cnt1).load(std::memory_order_relaxed) + 1) % m.depth);
  // write() reads the clock before opening the seqlock, so that readers spinning on cnt0's
  // cache line see write = 1 for as short a time as possible.
  const std::int64_t now = m.write_now >= 0 ? m.write_now : os::realtime_ns();
  m.write_now = -1;
  const std::int64_t atime = options.atime_ns >= 0 ? options.atime_ns : now;
  store_timespec(md->writetime, now);
  store_timespec(md->atime, atime);
  if (options.frame_id) aref(md->cnt2).store(*options.frame_id, std::memory_order_relaxed);
  const std::uint64_t next = aref(md->cnt0).load(std::memory_order_relaxed) + 1;

  if (m.rolling) {  // reference 11.2 step 2: the slice's temporal entries (if any), then cnt1
    const std::uint32_t sl = m.write_slice;
    if (m.temporal) {
      store_timespec(m.atimearray[sl], atime);
      store_timespec(m.writetimearray[sl], now);
      aref(m.cntarray[sl]).store(next, std::memory_order_relaxed);
    }
    aref(md->cnt1).store(sl, std::memory_order_relaxed);
  }
  if (m.cbsize > 0) {  // ISIO's fast circular buffer: copy the whole data area into the next slot
    const std::uint32_t slot = (aref(md->CBindex).load(std::memory_order_relaxed) + 1) % m.cbsize;
    std::memcpy(m.cbdata + std::uint64_t{slot} * m.data_bytes, m.data, m.data_bytes);
    isio::CbFrameMd& f = m.cbmd[slot];
    aref(f.cnt0).store(next, std::memory_order_relaxed);
    aref(f.cnt1).store(aref(md->cnt1).load(std::memory_order_relaxed), std::memory_order_relaxed);
    store_timespec(f.atime, atime);
    store_timespec(f.writetime, now);
    aref(md->CBindex).store(slot, std::memory_order_relaxed);
    if (slot == 0) aref(md->CBcycle).fetch_add(1, std::memory_order_relaxed);
  }

  // The wake stamp: this writer wakes futex waiters (below), so readers need no semaphore slot
  // for its frames. Relaxed: published by the cnt0 increment that follows (SYNC POINT W).
  aref(md->shmlink_wake_stamp).store(wake_stamp_of(next), std::memory_order_relaxed);
  // SYNC POINT A: publish the frame. Release for readers' acquire loads of cnt0; seq_cst so
  // that it is ordered before the waiter-count load below (pairs with the waiter's seq_cst
  // increment then cnt0 load in wait_futex: one of the two always sees the other).
  aref(md->cnt0).fetch_add(1, std::memory_order_seq_cst);
  // SYNC POINT B: close the seqlock. Pairs with read_copy()'s acquire loads of write.
  aref(md->write).store(0, std::memory_order_release);
  m.writing = false;
  m.pkt_open = false;
  if (aref(md->shmlink_futex_waiters).load(std::memory_order_seq_cst) != 0) os::futex_wake(cnt0_futex_word(md));
  // Waiters on other kernels that sleep on their ivshmem doorbell (SYNC POINT D: one fence and
  // one load of the entry's waiter count when nobody waits).
  if (m.where.doorbell) m.where.doorbell->notify();
  if (options.post_semaphores) m.post_all();
  return Errc::ok;
}

Status Stream::write(std::span<const std::byte> frame, const WriteOptions& options) noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  if (frame.size() != impl_->frame_bytes) return Errc::size_mismatch;
  if (impl_->placement_gone()) return Errc::replaced;
  impl_->write_now = os::realtime_ns();
  std::span<std::byte> dst = begin_write();
  std::memcpy(dst.data(), frame.data(), frame.size());
  return commit_write(options);
}

}  // namespace shmlink
