// SPDX-License-Identifier: MIT
// Streams: the read path: counters, views, the seqlock-validated copies and rolling-buffer history
// (reference section 12; docs/design/streams.md "Reader protocols", "Rolling buffers").
#include "stream/stream_impl.hpp"

namespace shmlink {

// ---- reading --------------------------------------------------------------------------------

std::uint64_t Stream::cnt0() const noexcept {
  return impl_ ? aref(impl_->md->cnt0).load(std::memory_order_acquire) : 0;
}
std::uint64_t Stream::cnt1() const noexcept {
  return impl_ ? aref(impl_->md->cnt1).load(std::memory_order_acquire) : 0;
}
std::uint64_t Stream::cnt2() const noexcept {
  return impl_ ? aref(impl_->md->cnt2).load(std::memory_order_acquire) : 0;
}
void Stream::set_cnt2(std::uint64_t value) noexcept {
  if (impl_ && impl_->writable) aref(impl_->md->cnt2).store(value, std::memory_order_release);
}
bool Stream::write_flag() const noexcept {
  return impl_ && aref(impl_->md->write).load(std::memory_order_acquire) != 0;
}
std::int64_t Stream::creation_time_ns() const noexcept { return impl_ ? load_timespec(impl_->md->creationtime) : 0; }
std::int64_t Stream::atime_ns() const noexcept { return impl_ ? load_timespec(impl_->md->atime) : 0; }
std::int64_t Stream::writetime_ns() const noexcept { return impl_ ? load_timespec(impl_->md->writetime) : 0; }

FrameInfo Stream::frame_info() const noexcept {
  FrameInfo f;
  if (!impl_) return f;
  const Metadata* md = impl_->md;
  f.cnt0 = aref(md->cnt0).load(std::memory_order_acquire);
  f.cnt1 = aref(md->cnt1).load(std::memory_order_relaxed);
  f.cnt2 = aref(md->cnt2).load(std::memory_order_relaxed);
  f.atime_ns = load_timespec(md->atime);
  f.writetime_ns = load_timespec(md->writetime);
  return f;
}

std::span<const std::byte> Stream::view() const noexcept {
  if (!impl_) return {};
  if (!impl_->rolling) return {impl_->data, impl_->frame_bytes};
  const std::uint64_t newest = cnt1();
  if (newest >= impl_->depth) return {};  // cnt1 names no slice: no slice is the newest frame
  return view_slice(static_cast<std::uint32_t>(newest));
}

std::string Stream::rolling_layout_error() const {
  if (!impl_ || !impl_->rolling) return {};
  const std::uint64_t newest = cnt1();
  if (newest < impl_->depth) return {};
  return "stream '" + escape_name(impl_->name) + "': cnt1 is " + std::to_string(newest) + ", outside the " +
         std::to_string(impl_->depth) + " slices of its rolling buffer (the newest frame's slice is unknown)";
}

std::span<const std::byte> Stream::view_slice(std::uint32_t slice) const noexcept {
  if (!impl_) return {};
  return {impl_->slice_data(slice % impl_->depth), impl_->frame_bytes};
}

namespace {

/// cnt0 of the frame slice `sl` holds in a rolling buffer without per-slice arrays, when the
/// newest frame is `c` in slice `s` (ISIO's writer fills slices in order: frame c - d is in slice
/// s - d); 0 when the slice was never written.
std::uint64_t derived_frame(std::uint64_t c, std::uint32_t s, std::uint32_t sl, std::uint32_t depth) noexcept {
  const std::uint64_t d = (std::uint64_t{s} + depth - sl) % depth;
  return c > d ? c - d : 0;
}

}  // namespace

FrameInfo Stream::slice_info(std::uint32_t slice) const noexcept {
  if (!impl_ || !impl_->rolling) return frame_info();
  const Impl& m = *impl_;
  const std::uint32_t sl = slice % m.depth;
  FrameInfo f;
  if (!m.temporal) {  // no per-slice record: derived from cnt0 and cnt1 (racy, as documented)
    const std::uint64_t c = aref(m.md->cnt0).load(std::memory_order_acquire);
    const std::uint64_t newest = aref(m.md->cnt1).load(std::memory_order_acquire);
    f.cnt1 = sl;
    if (newest >= m.depth) return f;  // cnt1 names no slice: nothing can be placed
    f.cnt0 = derived_frame(c, static_cast<std::uint32_t>(newest), sl, m.depth);
    if (f.cnt0 != 0 && f.cnt0 == c) {
      f.cnt2 = aref(m.md->cnt2).load(std::memory_order_relaxed);
      f.atime_ns = load_timespec(m.md->atime);
      f.writetime_ns = load_timespec(m.md->writetime);
    }
    return f;
  }
  f.cnt0 = aref(m.cntarray[sl]).load(std::memory_order_acquire);
  f.cnt1 = sl;
  f.atime_ns = load_timespec(m.atimearray[sl]);
  f.writetime_ns = load_timespec(m.writetimearray[sl]);
  if (f.cnt0 != 0 && f.cnt0 == aref(m.md->cnt0).load(std::memory_order_relaxed))
    f.cnt2 = aref(m.md->cnt2).load(std::memory_order_relaxed);  // cnt2 exists for the newest frame only
  return f;
}

std::atomic<std::int64_t>& detail::writer_grace_ns() noexcept {
  static std::atomic<std::int64_t> grace{200'000'000};
  return grace;
}

namespace {

/// Waits politely while a writer is inside a write. The writer is presumed dead mid-write
/// (writer_active) when the write flag stays set while cnt0 does not move for
/// detail::writer_grace_ns() (200 ms); a live writer that never leaves a gap (back-to-back
/// writes) makes the read give up with torn after 5 times that.
struct WriterPatience {
  std::int64_t start = 0;
  std::int64_t since = 0;
  std::uint64_t seen_cnt0 = 0;
  std::uint32_t spins = 0;
  /// One wait step while the flag is set and cnt0 is `c`: ok to retry, or why to give up.
  Errc wait(std::uint64_t c) noexcept {
    if (++spins % 1024 != 0) {
      os::cpu_relax();
      return Errc::ok;
    }
    const std::int64_t now = os::monotonic_ns();
    if (start == 0) start = now;
    if (since == 0 || c != seen_cnt0) {
      since = now;
      seen_cnt0 = c;
    }
    const std::int64_t grace = detail::writer_grace_ns().load(std::memory_order_relaxed);
    if (now - since > grace) return Errc::writer_active;
    if (now - start > 5 * grace) return Errc::torn;
    ::sched_yield();
    return Errc::ok;
  }
  /// The flag was seen clear: the writer is not stuck.
  void clear() noexcept { since = 0; }
};

}  // namespace

/// Validated copy of one slice of a rolling buffer (docs/design/streams.md "Rolling buffers").
/// `expect` = 0 accepts whatever published frame the slice holds; otherwise the slice must hold
/// frame `expect` (else overwritten). The copy of frame k from slice s is valid when, after it,
/// the slice still holds k and no write into s has begun: the write of frame k + depth into s
/// starts (write = 1, release fence) while cnt0 == k + depth - 1, so after an acquire fence
/// `cnt0 + write < k + depth` proves the copy saw none of its stores.
static Status copy_slice(const Stream::Impl& m, std::uint32_t sl, std::uint64_t expect, std::span<std::byte> out,
                         FrameInfo* info, int max_attempts) noexcept {
  const Metadata* md = m.md;
  WriterPatience patience;
  int attempts = 0;
  while (attempts < std::max(max_attempts, 1)) {
    // SYNC POINT A (acquire): frames up to c1 are completely visible.
    const std::uint64_t c1 = aref(md->cnt0).load(std::memory_order_acquire);
    const std::uint64_t k = aref(m.cntarray[sl]).load(std::memory_order_acquire);
    if (expect != 0 && k != expect) return Errc::overwritten;
    if (k > c1 || (k == 0 && c1 != 0)) {
      // Frame k is being committed right now (its entry precedes the cnt0 increment), or the
      // slice was never written while others were.
      if (k == 0) return Errc::would_block;
      if (const Errc e = patience.wait(c1); e != Errc::ok) return e;
      continue;
    }
    std::memcpy(out.data(), m.slice_data(sl), m.frame_bytes);
    FrameInfo f;
    f.cnt0 = k;
    f.cnt1 = sl;
    f.cnt2 = k == c1 ? aref(md->cnt2).load(std::memory_order_relaxed) : 0;
    f.atime_ns = load_timespec(m.atimearray[sl]);
    f.writetime_ns = load_timespec(m.writetimearray[sl]);
    // SYNC POINT C (acquire fence): if the copy saw any store of a later write into this slice,
    // that write's write = 1 and the cnt0 before it are visible to the loads below.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t w2 = aref(md->write).load(std::memory_order_acquire) != 0 ? 1 : 0;
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_relaxed);
    const std::uint64_t k2 = aref(m.cntarray[sl]).load(std::memory_order_relaxed);
    if (k2 == k && c2 + w2 < k + m.depth) {
      if (info != nullptr) *info = f;
      return Errc::ok;
    }
    ++attempts;
    os::cpu_relax();
  }
  return expect != 0 ? Errc::overwritten : Errc::torn;
}

/// The seqlock's opening: cnt0 (acquire, SYNC POINT A: pairs with the writer's cnt0 increment,
/// so the data of that update is visible) as soon as the write flag (acquire) reads clear, waiting
/// politely while a writer is inside a write; writer_active or torn when that lasts (WriterPatience).
static Errc open_seqlock(const Metadata* md, WriterPatience& patience, std::uint64_t* c1) noexcept {
  for (;;) {
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);
    if (aref(md->write).load(std::memory_order_acquire) == 0) {
      patience.clear();
      *c1 = c;
      return Errc::ok;
    }
    if (const Errc e = patience.wait(c); e != Errc::ok) return e;
  }
}

/// Validated copy from a rolling buffer WITHOUT per-slice arrays (a 3-axis CIRCULAR_BUFFER file
/// without ZAXIS_TEMPORAL, as ImageStreamIO and milk make them). Frames are placed by a
/// consistent (cnt0, cnt1) pair: the newest frame c is in slice cnt1, frame c - d in slice
/// cnt1 - d (ISIO's writer fills slices in order: slice (cnt1 + 1) % depth, then cnt1, then
/// cnt0 += 1, then write = 0). The pair is read under the plain seqlock (write flag clear before
/// and after, cnt0 unchanged), then the slice is copied and accepted, as in copy_slice(), when
/// `cnt0 + write < k + depth` after an acquire fence: no write into that slice has begun.
/// `expect` != 0: copy frame `expect` (would_block when not written yet, overwritten when gone);
/// otherwise copy slice `sl` whatever frame it holds (would_block when never written). A cnt1
/// outside the buffer places nothing: layout (ImageStreamIO_readBufferAt fails on it too).
static Status copy_derived(const Stream::Impl& m, std::uint32_t sl, std::uint64_t expect, std::span<std::byte> out,
                           FrameInfo* info, int max_attempts) noexcept {
  const Metadata* md = m.md;
  WriterPatience patience;
  int attempts = 0;
  while (attempts < std::max(max_attempts, 1)) {
    // Inside a write cnt1 may already name the slice being written: wait for the commit.
    std::uint64_t c1 = 0;
    if (const Errc e = open_seqlock(md, patience, &c1); e != Errc::ok) return e;
    const std::uint64_t newest = aref(md->cnt1).load(std::memory_order_acquire);
    // A writer only ever stores a slice index: cnt1 beyond the buffer is a scribble, not a race.
    if (newest >= m.depth) return Errc::layout;
    const auto s1 = static_cast<std::uint32_t>(newest);
    // SYNC POINT C (acquire fence): a cnt1 stored by a later write makes its write = 1 visible.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (aref(md->write).load(std::memory_order_acquire) != 0 || aref(md->cnt0).load(std::memory_order_relaxed) != c1) {
      ++attempts;
      continue;  // the pair (c1, s1) may be inconsistent
    }
    std::uint64_t k = 0;
    std::uint32_t slice = sl;
    if (expect != 0) {
      if (expect > c1) return Errc::would_block;
      if (c1 - expect >= m.depth) return Errc::overwritten;
      k = expect;
      slice = static_cast<std::uint32_t>((std::uint64_t{s1} + m.depth - (c1 - expect)) % m.depth);
    } else {
      k = derived_frame(c1, s1, sl, m.depth);
      if (k == 0) return Errc::would_block;
    }
    std::memcpy(out.data(), m.slice_data(slice), m.frame_bytes);
    FrameInfo f;
    f.cnt0 = k;
    f.cnt1 = slice;
    if (k == c1) {  // the metadata's times and cnt2 belong to the newest frame only
      f.cnt2 = aref(md->cnt2).load(std::memory_order_relaxed);
      f.atime_ns = load_timespec(md->atime);
      f.writetime_ns = load_timespec(md->writetime);
    }
    // SYNC POINT C (acquire fence): if the copy saw any store of a later write into this slice,
    // that write's write = 1 and the cnt0 before it are visible to the loads below.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t w2 = aref(md->write).load(std::memory_order_acquire) != 0 ? 1 : 0;
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_relaxed);
    // The newest frame's times were read from the metadata: valid only while no write began.
    const bool ok = k == c1 ? (w2 == 0 && c2 == c1) : (c2 + w2 < k + m.depth);
    if (ok) {
      if (info != nullptr) *info = f;
      return Errc::ok;
    }
    ++attempts;
    os::cpu_relax();
  }
  return expect != 0 ? Errc::overwritten : Errc::torn;
}

/// The slice holding frame `k` of a rolling buffer, from the newest slice and its frame; false
/// when k is not (or no longer) in the buffer. Without per-slice arrays the newest frame is
/// cnt0 (a racy pair: packet_status() validates by its record's frame field).
bool slice_of(const Stream::Impl& m, std::uint64_t k, std::uint32_t* sl) noexcept {
  const auto newest_slice = static_cast<std::uint32_t>(aref(m.md->cnt1).load(std::memory_order_acquire) % m.depth);
  const std::uint64_t kn = m.temporal ? aref(m.cntarray[newest_slice]).load(std::memory_order_acquire)
                                      : aref(m.md->cnt0).load(std::memory_order_acquire);
  if (kn < k || kn - k >= m.depth) return false;
  *sl = static_cast<std::uint32_t>((newest_slice + m.depth - (kn - k)) % m.depth);
  return true;
}

Status Stream::read_slice(std::uint32_t slice, std::span<std::byte> out, FrameInfo* info) const noexcept {
  if (!impl_) return Errc::closed;
  if (out.size() != impl_->frame_bytes) return Errc::size_mismatch;
  if (!impl_->rolling) return read_copy(out, info);
  const std::uint32_t sl = slice % impl_->depth;
  if (!impl_->temporal) return copy_derived(*impl_, sl, 0, out, info, 1000);
  if (aref(impl_->cntarray[sl]).load(std::memory_order_acquire) == 0) return Errc::would_block;
  return copy_slice(*impl_, sl, 0, out, info, 1000);
}

Status Stream::read_frame(std::uint64_t k, std::span<std::byte> out, FrameInfo* info) const noexcept {
  if (!impl_) return Errc::closed;
  const Impl& m = *impl_;
  if (out.size() != m.frame_bytes) return Errc::size_mismatch;
  const std::uint64_t c = cnt0();
  if (k == 0 || k > c) return Errc::would_block;
  if (!m.rolling) {
    if (k < c) return Errc::overwritten;
    FrameInfo f;
    const Status st = read_copy(out, &f);
    if (!st.ok()) return st;
    if (f.cnt0 != k) return Errc::overwritten;
    if (info != nullptr) *info = f;
    return Errc::ok;
  }
  if (c - k >= m.depth) return Errc::overwritten;
  if (!m.temporal) return copy_derived(m, 0, k, out, info, 1000);
  for (int tries = 0; tries < 1000; ++tries) {
    std::uint32_t sl = 0;
    if (!slice_of(m, k, &sl)) {
      // cnt1 may already name the slice of a frame being committed: let it finish.
      if (cnt0() - k >= m.depth) return Errc::overwritten;
      os::cpu_relax();
      continue;
    }
    return copy_slice(m, sl, k, out, info, 1000);
  }
  return Errc::torn;
}

std::uint64_t Stream::tail() const noexcept { return impl_ ? impl_->tail : 0; }
std::uint64_t Stream::reset_tail() noexcept {
  if (!impl_) return 0;
  return impl_->tail = cnt0();
}
void Stream::set_tail(std::uint64_t value) noexcept {
  if (impl_) impl_->tail = value;
}

Status Stream::read_next(std::span<std::byte> out, FrameInfo* info, std::uint64_t* skipped,
                         std::chrono::nanoseconds timeout) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  if (out.size() != m.frame_bytes) return Errc::size_mismatch;
  if (skipped != nullptr) *skipped = 0;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (;;) {
    const std::uint64_t c = cnt0();
    if (c < m.tail) m.tail = c;  // the stream restarted (cnt0 went back): follow it
    if (c == m.tail) {
      const std::int64_t now = os::monotonic_ns();
      if (timeout.count() <= 0) return Errc::would_block;
      if (now >= deadline) return Errc::timeout;
      const Status w = wait_futex(c, std::chrono::nanoseconds(deadline - now));
      if (!w.ok()) return w;
      continue;
    }
    const std::uint64_t k = m.tail + 1;
    FrameInfo f;
    Status st = m.rolling ? read_frame(k, out, &f) : read_copy(out, &f);
    if (st.code() == Errc::overwritten) st = read_copy(out, &f);  // lapped: take the newest
    if (!st.ok()) return st;
    if (f.cnt0 < k) {  // cannot happen with one writer; never move the tail backwards
      m.tail = f.cnt0;
      continue;
    }
    const std::uint64_t lost = f.cnt0 - k;
    m.tail = f.cnt0;
    if (info != nullptr) *info = f;
    if (skipped != nullptr) *skipped = lost;
    return lost == 0 ? Errc::ok : Errc::overwritten;
  }
}

Status Stream::read_copy(std::span<std::byte> out, FrameInfo* info, int max_attempts) const noexcept {
  if (!impl_) return Errc::closed;
  const Impl& m = *impl_;
  if (out.size() != m.frame_bytes) return Errc::size_mismatch;
  const Metadata* md = m.md;
  if (m.temporal) {
    // The newest slice, validated by its cntarray entry. A stream nothing was written to yet,
    // or whose writer does not fill cntarray (ISIO's UpdateIm does not), or that has no
    // cntarray (no ZAXIS_TEMPORAL), takes the plain seqlock path below on the slice cnt1 names.
    // cnt1 beyond the buffer names no slice: the newest frame is unknown (ImageStreamIO's
    // readLastWroteBuffer fails too), and no other slice is returned in its place.
    const std::uint64_t newest = aref(md->cnt1).load(std::memory_order_acquire);
    if (newest >= m.depth) return Errc::layout;
    const auto sl = static_cast<std::uint32_t>(newest);
    if (aref(m.cntarray[sl]).load(std::memory_order_acquire) != 0) {
      return copy_slice(m, sl, 0, out, info, max_attempts);
    }
  }
  WriterPatience patience;
  int attempts = 0;
  while (attempts < std::max(max_attempts, 1)) {
    std::uint64_t c1 = 0;
    if (const Errc e = open_seqlock(md, patience, &c1); e != Errc::ok) return e;
    const std::uint64_t c1_slice = aref(md->cnt1).load(std::memory_order_relaxed);
    // A writer only ever stores a slice index: cnt1 beyond the buffer is a scribble (as above).
    if (m.rolling && c1_slice >= m.depth) return Errc::layout;
    std::memcpy(out.data(), m.rolling ? m.slice_data(static_cast<std::uint32_t>(c1_slice)) : m.data,
                m.frame_bytes);
    FrameInfo f;
    f.cnt0 = c1;
    f.cnt1 = c1_slice;
    f.cnt2 = aref(md->cnt2).load(std::memory_order_relaxed);
    if (info != nullptr) {  // the times live on two other cache lines: fetch them only on demand
      f.atime_ns = load_timespec(md->atime);
      f.writetime_ns = load_timespec(md->writetime);
    }
    // SYNC POINT C (acquire fence): if the copy saw any store of a later write, that write's
    // write = 1 (before its release fence) is visible to the loads below.
    std::atomic_thread_fence(std::memory_order_acquire);
    // SYNC POINT B (acquire): seeing a later write = 0 implies seeing its cnt0 increment.
    const bool writing = aref(md->write).load(std::memory_order_acquire) != 0;
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_relaxed);
    if (!writing && c1 == c2) {
      if (info != nullptr) *info = f;
      return Errc::ok;
    }
    ++attempts;
    os::cpu_relax();
  }
  return Errc::torn;
}

}  // namespace shmlink
