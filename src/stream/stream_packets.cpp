// SPDX-License-Identifier: MIT
// Streams: partial (packetised) writes and their companion `<name>_pkt` (reference 17.6).
#include "stream/stream_impl.hpp"

namespace shmlink {

// ---- partial writes ---------------------------------------------------------------------------

namespace {
/// The companion record (kPktRecord u64) of slice `sl` in the companion's data area.
std::uint64_t* packet_record(const Stream::Impl& companion, std::uint32_t sl) noexcept {
  return reinterpret_cast<std::uint64_t*>(companion.data) + std::uint64_t{sl} * kPktRecord;
}
}  // namespace

bool Stream::Impl::fits_companion(const Stream& c) const noexcept {
  return c.dtype() == Dtype::u64 && c.shape().size() == 2 && c.shape()[0] == kPktRecord &&
         c.nelement() == std::uint64_t{kPktRecord} * depth;
}

std::uint64_t Stream::Impl::companion_owner() const noexcept {
  return file ? where.ino : static_cast<std::uint64_t>(load_timespec(md->creationtime));
}

std::string Stream::Impl::companion_name() const { return (where.name.empty() ? name : where.name) + "_pkt"; }

std::unique_ptr<Stream> Stream::Impl::open_companion() const {
  if (file) return std::make_unique<Stream>(Stream::open(companion_path(path), OpenOptions{.writable = writable}));
  if (!where.sibling) return nullptr;
  const std::optional<Placement> cp = where.sibling(companion_name(), 0);
  if (!cp) return nullptr;
  return std::make_unique<Stream>(Stream::open_in(*cp, OpenOptions{.writable = writable && cp->writable}));
}

Status Stream::Impl::init_companion() noexcept {
  try {
    StreamSpec spec;
    spec.shape = {kPktRecord, depth};
    spec.dtype = Dtype::u64;
    spec.semaphores = 1;
    if (file) {
      // A file next to ours, created afresh so that no stale record survives, but never over a
      // stream of the same name that is not a companion.
      const std::string cpath = companion_path(path);
      if (::access(cpath.c_str(), F_OK) == 0 && !is_companion(cpath, std::nullopt)) {
        if (detail::log_enabled(LogLevel::error))
          detail::log(LogLevel::error, "partial write to " + path + ": " + cpath +
                                           " exists and is not a partial-write companion; left alone");
        return Errc::exists;
      }
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) spec.permissions = st.st_mode & 07777;
      pkt = std::make_unique<Stream>(Stream::create(cpath, spec, OpenMode::PurgeAndCreate));
      // The companion names the file it belongs to (its cnt2 = our inode), so that a companion
      // left by an earlier incarnation of the stream is never believed.
      pkt->set_cnt2(companion_owner());
      return Errc::ok;
    }
    // A placed stream keeps its companion next to it in its container (a region entry).
    if (!where.sibling) {
      if (detail::log_enabled(LogLevel::error))
        detail::log(LogLevel::error, "partial write to " + path + ": its placement has no room for the companion " +
                                         companion_name() + " (no siblings)");
      return Errc::invalid_argument;
    }
    if (std::optional<Placement> cp = where.sibling(companion_name(), 0)) {
      // One exists (ours from an earlier handle, or an earlier incarnation's): reused with every
      // record cleared (a stale packet entry could otherwise match a new frame's cnt0), but only
      // when it is a companion of our depth.
      std::unique_ptr<Stream> c;
      try {
        c = std::make_unique<Stream>(Stream::open_in(*cp));
      } catch (const Error&) {
        c.reset();
      }
      if (!c || !fits_companion(*c)) {
        if (detail::log_enabled(LogLevel::error))
          detail::log(LogLevel::error, "partial write to " + path + ": " + cp->path +
                                           " exists and is not this stream's partial-write companion; left alone");
        return Errc::exists;
      }
      for (std::uint32_t sl = 0; sl < depth; ++sl) {
        std::uint64_t* rec = packet_record(*c->impl_, sl);
        for (std::uint32_t i = 0; i < kPktRecord; ++i) aref(rec[i]).store(0, std::memory_order_relaxed);
      }
      c->set_cnt2(companion_owner());  // release: the cleared records are visible with it
      pkt = std::move(c);
      return Errc::ok;
    }
    std::optional<Placement> cp = where.sibling(companion_name(), Stream::bytes_for(spec));
    if (!cp) return Errc::no_space;
    auto c = std::make_unique<Stream>(Stream::create_in(*cp, spec));
    c->set_cnt2(companion_owner());
    if (cp->publish) cp->publish();  // visible to others only once complete
    pkt = std::move(c);
    return Errc::ok;
  } catch (const Error& e) {
    if (detail::log_enabled(LogLevel::error)) detail::log(LogLevel::error, e.what());
    return e.errc();
  } catch (...) {
    return Errc::no_space;  // std::bad_alloc
  }
}

Status Stream::write_packet(std::uint32_t packet_id, std::uint32_t packet_total, std::uint64_t element_offset,
                            std::span<const std::byte> data) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  if (!m.writable) return Errc::permission;
  if (!m.pkt_open && m.placement_gone()) return Errc::replaced;
  if (packet_total == 0 || packet_total > kMaxPackets || packet_id >= packet_total) return Errc::invalid_argument;
  if (m.pkt_open && packet_total != m.pkt_total) return Errc::invalid_argument;
  const std::size_t esize = dtype_size(m.dtype);
  if (data.size() % esize != 0) return Errc::invalid_argument;
  const std::uint64_t count = data.size() / esize;
  if (element_offset > m.frame_elements || count > m.frame_elements - element_offset) return Errc::out_of_range;
  if (!m.pkt_initialised) {
    if (const Status st = m.init_companion(); !st.ok()) return st;
    m.pkt_initialised = true;
  }
  std::uint64_t* rec = nullptr;
  if (!m.pkt_open) {
    (void)begin_write();
    rec = packet_record(*m.pkt->impl_, m.write_slice);
    // The record is invalid (frame 0) until finalize_packets() publishes it.
    aref(rec[kPktFrame]).store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    m.pkt_open = true;
    m.pkt_total = packet_total;
    m.pkt_have.assign(packet_total, false);
  } else {
    rec = packet_record(*m.pkt->impl_, m.write_slice);
  }
  std::memcpy(m.slice_data(m.write_slice) + element_offset * esize, data.data(), data.size());
  const std::uint64_t frame = aref(m.md->cnt0).load(std::memory_order_relaxed) + 1;
  aref(rec[kPktHeader + packet_id]).store(frame, std::memory_order_relaxed);
  aref(rec[kPktLastPos]).store(element_offset, std::memory_order_relaxed);
  aref(rec[kPktLastNb]).store(count, std::memory_order_relaxed);
  m.pkt_have[packet_id] = true;
  return Errc::ok;
}

std::vector<std::uint32_t> Stream::missing_packets() const {
  std::vector<std::uint32_t> out;
  if (!impl_ || !impl_->pkt_open) return out;
  for (std::uint32_t p = 0; p < impl_->pkt_total; ++p)
    if (!impl_->pkt_have[p]) out.push_back(p);
  return out;
}

Status Stream::finalize_packets(const WriteOptions& options) noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  if (!m.writable) return Errc::permission;
  if (!m.pkt_open) return Errc::would_block;
  const bool complete = std::find(m.pkt_have.begin(), m.pkt_have.end(), false) == m.pkt_have.end();
  std::uint64_t* rec = packet_record(*m.pkt->impl_, m.write_slice);
  const std::uint64_t frame = aref(m.md->cnt0).load(std::memory_order_relaxed) + 1;
  aref(rec[kPktTotal]).store(m.pkt_total, std::memory_order_relaxed);
  // Publishes the record (pairs with packet_status()'s acquire load); readers see it no later
  // than the frame itself, whose cnt0 increment follows.
  aref(rec[kPktFrame]).store(frame, std::memory_order_release);
  const Status st = commit_write(options);
  if (!st.ok()) return st;
  // The companion's own counter moves too, so that its readers can wait on it: stamped, woken
  // and posted as commit_write() does (SYNC POINTs W and A), so that they need no semaphore
  // slot after its first frame, and a first waiter that sleeps on a slot alone (no
  // futex_waitv) is woken by the post.
  Metadata* cmd = m.pkt->impl_->md;
  const std::uint64_t cnext = aref(cmd->cnt0).load(std::memory_order_relaxed) + 1;
  aref(cmd->shmlink_wake_stamp).store(wake_stamp_of(cnext), std::memory_order_relaxed);
  aref(cmd->cnt0).fetch_add(1, std::memory_order_seq_cst);
  if (aref(cmd->shmlink_futex_waiters).load(std::memory_order_seq_cst) != 0) os::futex_wake(cnt0_futex_word(cmd));
  if (m.pkt->impl_->where.doorbell) m.pkt->impl_->where.doorbell->notify();  // SYNC POINT D, as commit_write()
  if (options.post_semaphores) m.pkt->impl_->post_all();
  return complete ? Errc::ok : Errc::incomplete;
}

std::optional<Stream::PacketStatus> Stream::packet_status(std::uint64_t k) const {
  if (!impl_) return std::nullopt;
  const Impl& m = *impl_;
  if (k == 0) k = cnt0();
  if (k == 0) return std::nullopt;
  if (!m.pkt || m.pkt->replaced()) {
    try {
      std::unique_ptr<Stream> c = m.open_companion();
      if (!c || !m.fits_companion(*c)) return std::nullopt;
      if (c->cnt2() != m.companion_owner()) return std::nullopt;  // stale: from an earlier incarnation
      m.pkt = std::move(c);
    } catch (const Error&) {
      return std::nullopt;
    }
  }
  std::uint32_t sl = 0;
  if (m.rolling) {
    if (!slice_of(m, k, &sl)) return std::nullopt;
  } else if (k != cnt0()) {
    return std::nullopt;
  }
  const std::uint64_t* rec = packet_record(*m.pkt->impl_, sl);
  // A seqlock on the record's frame field: it reads 0 while the slice is being re-assembled.
  if (aref(rec[kPktFrame]).load(std::memory_order_acquire) != k) return std::nullopt;
  PacketStatus ps;
  ps.cnt0 = k;
  ps.total = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(aref(rec[kPktTotal]).load(std::memory_order_relaxed), kMaxPackets));
  for (std::uint32_t p = 0; p < ps.total; ++p)
    if (aref(rec[kPktHeader + p]).load(std::memory_order_relaxed) != k) ps.missing.push_back(p);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (aref(rec[kPktFrame]).load(std::memory_order_relaxed) != k) return std::nullopt;
  return ps;
}

}  // namespace shmlink
