// SPDX-License-Identifier: MIT
// Streams: waiting (spin, futex, wait_futex's semaphore slots) and the in-file semaphores
// (reference sections 10 and 12; docs/design/streams.md "Waiting").
#include "stream/stream_impl.hpp"

#include "os/backoff.hpp"

namespace shmlink {

/// The process-wide registry of wait_futex's semaphore slots (see WaitSlotRegistry).
WaitSlotRegistry& wait_slot_registry() noexcept {
  static WaitSlotRegistry r;
  return r;
}

std::atomic<std::int64_t>& detail::sem_recheck_ns() noexcept {
  static std::atomic<std::int64_t> slice{100'000'000};
  return slice;
}

std::atomic<std::int64_t>& detail::foreign_writer_poll_ns() noexcept {
  static std::atomic<std::int64_t> slice{10'000'000};
  return slice;
}

// ---- wait_futex's semaphore slots (Stream::Impl) -------------------------------------------

Stream::Impl::NewestWriter Stream::Impl::newest_writer() const noexcept {
  for (int attempt = 0; attempt < 4; ++attempt) {
    // SYNC POINT W (acquire): pairs with the writer's release increment of cnt0 (SYNC POINT A),
    // which follows its stamp store: a shmlink writer's stamp of frame c is visible here.
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);
    if (c == 0) return NewestWriter::unknown;  // nothing written yet: any writer may come
    // Acquire, so that the re-load of cnt0 below cannot be satisfied before it.
    const std::uint32_t stamp = aref(md->shmlink_wake_stamp).load(std::memory_order_acquire);
    if (aref(md->cnt0).load(std::memory_order_relaxed) != c) continue;  // a frame came meanwhile
    // The stamp of frame c, or of frame c + 1 whose shmlink writer stamped it and has not
    // incremented cnt0 yet.
    return stamp == wake_stamp_of(c) || stamp == wake_stamp_of(c + 1) ? NewestWriter::shmlink : NewestWriter::legacy;
  }
  return NewestWriter::unknown;  // cnt0 keeps moving: judged at the next wait
}

bool Stream::Impl::wants_semaphore() noexcept {
  // Shared with other kernels: a slot's wake-ups would not cross them either; the wait polls cnt0.
  if (!writable || nsem == 0 || !where.same_kernel) return false;
  if (legacy_writer_seen.load(std::memory_order_relaxed)) return true;
  switch (newest_writer()) {
    case NewestWriter::shmlink:
      if (wait_slots_held.load(std::memory_order_relaxed) != 0) release_wait_slots(false);
      return false;
    case NewestWriter::legacy: legacy_writer_seen.store(true, std::memory_order_relaxed); return true;
    case NewestWriter::unknown: return true;
  }
  return true;
}

int Stream::Impl::acquire_wait_slot(SlotBook* book) noexcept {
  try {
    const std::lock_guard<std::mutex> lock(wait_mu);
    const pid_t me = os::current_pid();
    if (wait_slots_pid != me) {  // a forked child: the parent's claims stay the parent's
      for (const WaitSlot& w : wait_slots) forget_wait_slot(wait_slots_pid, w.index);  // the copy's entries
      wait_slots.clear();
      wait_slots_held.store(0, std::memory_order_relaxed);
      wait_slots_pid = me;
    }
    for (auto it = wait_slots.begin(); it != wait_slots.end(); ++it) {
      if (it->busy) continue;
      // Relaxed: only this process writes our pid there, and we look for our own store.
      if (aref(read_pid[it->index]).load(std::memory_order_relaxed) == me) {
        it->busy = true;
        *book = it->book;
        return it->index;
      }
      // Someone rewrote semReadPID (no shmlink process does for a live owner): not ours any more.
      forget_wait_slot(me, it->index);
      wait_slots.erase(it);
      wait_slots_held.store(static_cast<int>(wait_slots.size()), std::memory_order_relaxed);
      break;  // the iterator is gone; the next wait looks again
    }
    const std::int64_t failed = wait_claim_failed_ns.load(std::memory_order_relaxed);
    const std::int64_t now = os::monotonic_ns();
    if (failed >= 0 && now - failed < 100'000'000) return -1;
    // Room for the new entry before any claim, so that nothing can throw between the CAS and
    // the bookkeeping but the registry's insertion, which gives the slot back when it fails.
    wait_slots.reserve(wait_slots.size() + 1);
    for (int i = nsem - 1; i >= 0; --i) {
      auto slot = aref(read_pid[i]);
      std::int32_t seen = slot.load(std::memory_order_relaxed);
      // CAS from the exact value judged free, as claim_semaphore() does: never two owners.
      // SYNC POINT R (acq_rel): one RMW order on semReadPID with every other claimer's and
      // gc's CAS, so exactly one of them wins a free slot.
      if (!slot_free(seen, where.same_kernel) || !slot.compare_exchange_strong(seen, me, std::memory_order_acq_rel))
        continue;
      try {
        WaitSlotRegistry& reg = wait_slot_registry();
        const std::lock_guard<std::mutex> rlock(reg.mu);
        reg.slots.emplace(me, key_dev, key_ino, key_offset, i);
        reg.size.store(static_cast<int>(reg.slots.size()), std::memory_order_relaxed);
      } catch (...) {
        std::int32_t mine = me;
        // SYNC POINT R (acq_rel): given back at once, from our own pid only.
        slot.compare_exchange_strong(mine, -1, std::memory_order_acq_rel);
        return -1;
      }
      // Posts made before the claim are not for us (ISIO's readers flush once, ref 12.2);
      // SYNC POINT S (acquire CAS inside flush). Frames up to the cnt0 read after it have
      // had their posts taken (ISIO posts after its increment): nothing is owed for them.
      (void)os::gsem::flush(&sems[i]);
      const std::uint64_t now_cnt0 = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
      const SlotBook fresh{0, now_cnt0, now_cnt0};
      wait_slots.push_back({i, true, fresh});  // no allocation: reserved above
      *book = fresh;
      wait_slots_held.store(static_cast<int>(wait_slots.size()), std::memory_order_relaxed);
      wait_claim_failed_ns.store(-1, std::memory_order_relaxed);
      return i;
    }
    wait_claim_failed_ns.store(now, std::memory_order_relaxed);
    return -1;
  } catch (...) {  // std::mutex::lock or the registry's allocation failed: wait without a slot
    return -1;
  }
}

void Stream::Impl::end_wait_on_slot(int index, const SlotBook& book) noexcept {
  try {
    const std::lock_guard<std::mutex> lock(wait_mu);
    for (WaitSlot& w : wait_slots)
      if (w.index == index) {
        w.busy = false;
        w.book = book;
      }
  } catch (...) {
    // the slot stays marked busy: a later wait claims another one
  }
}

void Stream::Impl::forget_wait_slot(pid_t owner, int index) noexcept {
  WaitSlotRegistry& reg = wait_slot_registry();
  try {
    const std::lock_guard<std::mutex> rlock(reg.mu);
    reg.slots.erase({owner, key_dev, key_ino, key_offset, index});
    reg.size.store(static_cast<int>(reg.slots.size()), std::memory_order_relaxed);
  } catch (...) {
    // left registered: claim_semaphore() then skips a slot it could have used, nothing worse
  }
}

void Stream::Impl::release_wait_slots(bool all) noexcept {
  try {
    const std::lock_guard<std::mutex> lock(wait_mu);
    if (wait_slots.empty()) return;
    const pid_t me = os::current_pid();
    // A forked child's copy releases nothing; nor does a handle whose file was truncated in
    // place (DAO-style re-creation): its semReadPID words are gone, touching them would fault.
    const bool ours = wait_slots_pid == me && intact();
    std::vector<WaitSlot> kept;
    for (const WaitSlot& w : wait_slots) {
      if (w.busy && !all) {
        kept.push_back(w);
        continue;
      }
      // The registry entry goes in every case (a stale one would make claim_semaphore() and
      // release_semaphore() treat the slot as a wait slot for ever); only the give-back needs
      // the slot to be ours and the file intact.
      forget_wait_slot(wait_slots_pid, w.index);
      if (!ours) continue;
      std::int32_t expected = me;
      // SYNC POINT R (acq_rel): only from our own pid, so a slot someone else holds stays theirs.
      if (writable) aref(read_pid[w.index]).compare_exchange_strong(expected, -1, std::memory_order_acq_rel);
    }
    wait_slots = std::move(kept);
    wait_slots_held.store(static_cast<int>(wait_slots.size()), std::memory_order_relaxed);
  } catch (...) {
    // kept until close; gc frees them once this process is gone
  }
}

bool Stream::Impl::held_for_waiting(int index) noexcept {
  WaitSlotRegistry& reg = wait_slot_registry();
  if (reg.size.load(std::memory_order_relaxed) == 0) return false;
  try {
    const std::lock_guard<std::mutex> rlock(reg.mu);
    return reg.slots.count({os::current_pid(), key_dev, key_ino, key_offset, index}) != 0;
  } catch (...) {
    return false;
  }
}

bool Stream::Impl::note_claim(int index) noexcept {
  WaitSlotRegistry& reg = wait_slot_registry();
  try {
    const std::lock_guard<std::mutex> rlock(reg.mu);
    reg.claims.emplace(os::current_pid(), key_dev, key_ino, key_offset, index);
    return true;
  } catch (...) {
    return false;
  }
}

bool Stream::Impl::claimed_here(int index) noexcept {
  WaitSlotRegistry& reg = wait_slot_registry();
  try {
    const std::lock_guard<std::mutex> rlock(reg.mu);
    return reg.claims.count({os::current_pid(), key_dev, key_ino, key_offset, index}) != 0;
  } catch (...) {
    return false;
  }
}

void Stream::Impl::forget_claim(int index) noexcept {
  WaitSlotRegistry& reg = wait_slot_registry();
  try {
    const std::lock_guard<std::mutex> rlock(reg.mu);
    reg.claims.erase({os::current_pid(), key_dev, key_ino, key_offset, index});
  } catch (...) {
    // kept: claim_semaphore() then returns a slot that is no longer ours only if our pid is
    // written there again, by a process of another kernel with our pid number
  }
}

void Stream::Impl::note_polling() noexcept {
  if (polling_noted.exchange(true, std::memory_order_relaxed) || !detail::log_enabled(LogLevel::debug)) return;
  try {
    detail::log(LogLevel::debug, "stream " + path +
                                     ": shared with other kernels (Placement::same_kernel is false): its waits "
                                     "poll (futex wake-ups do not cross kernels)");
  } catch (...) {
    // no message, nothing else lost
  }
}

// ---- waiting --------------------------------------------------------------------------------

namespace {

/// How often a polling wait checks that the stream is still there (file_intact(), replaced()).
constexpr std::int64_t kPollCheckNs = 10'000'000;

}  // namespace

Status Stream::wait_spin(std::uint64_t last_cnt0, std::chrono::nanoseconds timeout,
                         std::uint64_t* cnt0_out) const noexcept {
  if (!impl_) return Errc::closed;
  const Metadata* md = impl_->md;
  const std::int64_t deadline = os::deadline_after(timeout);
  for (std::uint32_t i = 0;; ++i) {
    // SYNC POINT A (acquire).
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);
    if (c != last_cnt0) {
      if (cnt0_out != nullptr) *cnt0_out = c;
      return Errc::ok;
    }
    if (i % 256 == 255 && os::monotonic_ns() >= deadline) return Errc::timeout;
    os::cpu_relax();
  }
}

Status Stream::wait_futex(std::uint64_t last_cnt0, std::chrono::nanoseconds timeout, std::uint64_t* cnt0_out,
                          std::chrono::nanoseconds spin) const noexcept {
  if (!impl_) return Errc::closed;
  Impl& m = *impl_;
  const Metadata* md = m.md;
  const std::int64_t deadline = os::deadline_after(timeout);
  auto done = [&](std::uint64_t c) {
    if (cnt0_out != nullptr) *cnt0_out = c;
    return Status(Errc::ok);
  };
  // Bounded spin first: cheap when the next frame is imminent.
  if (spin.count() > 0) {
    const std::int64_t spin_end = std::min(os::deadline_after(spin), deadline);
    for (std::uint32_t i = 0;; ++i) {
      const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
      if (c != last_cnt0) return done(c);
      if (i % 64 == 63 && os::monotonic_ns() >= spin_end) break;
      os::cpu_relax();
    }
  }
  if (!m.where.same_kernel && m.where.doorbell) {
    // Shared with other kernels, with a doorbell: register in the region's waiter table, look
    // again, sleep until a writer rings (every writer calls Doorbell::notify() after its cnt0
    // increment) or the fallback timeout passes, then check that the stream is still there.
    std::uint64_t c = last_cnt0;
    const Status s = m.where.doorbell->wait_until(
        [&] {
          c = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
          return c != last_cnt0;
        },
        deadline, [&] { return !file_intact() || replaced(); });
    if (s.ok()) return done(c);
    if (s.code() != Errc::would_block && s.code() != Errc::system) return s;
    // No waiter slot was free (or the doorbell failed): poll, as without one.
  }
  if (!m.where.same_kernel) {
    // Shared with other kernels (VMs): a writer there cannot wake our futex, nor post a slot's
    // futex here. Every writer increments cnt0, so look at it: pause, then sleeps growing to
    // 50 us (os::PollBackoff), checking every 10 ms that the stream is still there.
    m.note_polling();
    os::PollBackoff backoff;
    std::int64_t next_check = os::monotonic_ns() + kPollCheckNs;
    for (;;) {
      const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
      if (c != last_cnt0) return done(c);
      const std::int64_t now = os::monotonic_ns();
      if (now >= deadline) return Errc::timeout;
      if (now >= next_check) {
        // Before touching the mapping again, as the futex path does after a slice.
        if (!file_intact() || replaced()) return Errc::replaced;
        next_check = now + kPollCheckNs;
      }
      if (!backoff.pause(deadline)) return Errc::interrupted;
    }
  }
  // A writer that only posts the semaphores (ISIO's UpdateIm, milk) never wakes the cnt0 futex:
  // unless the newest frame carries a shmlink writer's wake stamp, wait on a semaphore slot too
  // (claimed once, held until close). Without a slot, such writers are noticed by re-checking
  // every foreign_writer_poll_ns() (10 ms).
  Impl::SlotBook book;
  const int slot = timeout.count() > 0 && m.wants_semaphore() ? m.acquire_wait_slot(&book) : -1;
  struct SlotUse {
    Impl& m;
    int slot;
    Impl::SlotBook& book;
    ~SlotUse() {
      if (slot >= 0) m.end_wait_on_slot(slot, book);
    }
  } slot_use{m, slot, book};
  if (slot >= 0 && last_cnt0 > book.seen_cnt0) {
    // The caller has seen the frames up to last_cnt0: their posts (one each, ISIO posts after
    // its increment) are owed to the slot, at most as many as a semaphore holds.
    const std::uint64_t fresh = last_cnt0 - book.seen_cnt0;
    book.owed = std::min<std::int64_t>(
        book.owed + static_cast<std::int64_t>(std::min<std::uint64_t>(fresh, kSemaphoreMaxValue)), kSemaphoreMaxValue);
    book.seen_cnt0 = last_cnt0;
    // Posts taken ahead pay only for the frames they announced: past those, what is left of
    // them was stale (posts without a frame), and is forgotten.
    if (book.owed < 0 && last_cnt0 >= book.prepaid_upto) book.owed = 0;
  }
  sem_t* sem = slot >= 0 ? &m.sems[slot] : nullptr;
  // Without futex_waitv (Linux < 5.16) a slot's waiter sleeps on the semaphore alone: shmlink
  // writers post it too, and a re-creation by PurgeAndCreate posts it once.
  const bool sem_only = sem != nullptr && os::futex_waitv_support().load(std::memory_order_relaxed) ==
                                               os::FutexWaitvSupport::no;
  const std::int64_t poll_ns =
      std::max<std::int64_t>(detail::foreign_writer_poll_ns().load(std::memory_order_relaxed), 1'000'000);
  auto waiters = aref(md->shmlink_futex_waiters);
  // A read-only mapping cannot register as a waiter (nor claim a slot): it sleeps in poll slices.
  const std::uint32_t reg = m.writable && !sem_only ? 1 : 0;
  for (;;) {
    if (sem != nullptr) {
      // Take what the slot holds: posts of frames already seen (a semaphore counts up to 10
      // while the reader is busy) must not end the sleep below at once, and new ones prove a
      // new frame, whose cnt0 increment precedes the post (ISIO order, ref 11.1).
      const int taken = os::gsem::flush(sem);  // SYNC POINT S (acquire): pairs with the post
      book.owed -= taken;
      if (taken > 0 && book.owed >= 0) {
        // Only posts of frames the caller has seen (the post that woke the previous wait, which
        // a wake-up leaves in the slot): nothing new, nothing to watch, sleep.
      } else if (taken > 0) {
        // More posts than seen frames: a writer that posts before its cnt0 increment (ISIO's
        // Python write(): post, write = 0, cnt0 += 1) increments without a wake-up just after:
        // watch cnt0 for a few microseconds, and for up to 1 ms while the write flag says that a
        // write is still under way.
        const std::int64_t ahead = -book.owed;
        // Until the watch finds them, the posts taken ahead pay for the next `ahead` frames
        // (a writer preempted between its post and its increment is seen later, by a wake-up
        // or the re-check; its frame must not be owed a post again).
        book.prepaid_upto = last_cnt0 + static_cast<std::uint64_t>(ahead);
        const std::int64_t until = std::min(deadline, os::monotonic_ns() + 1'000'000);
        for (std::uint32_t i = 0;; ++i) {
          const std::uint64_t c = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
          if (c != last_cnt0) {
            // The posts taken ahead pay for the frames this return shows the caller, which its
            // next wait counts as seen.
            book.owed = -std::min<std::int64_t>(ahead, static_cast<std::int64_t>(std::min<std::uint64_t>(
                                                           c - last_cnt0, kSemaphoreMaxValue)));
            book.prepaid_upto = c;
            return done(c);
          }
          if (i >= 64 && aref(md->write).load(std::memory_order_acquire) == 0) break;
          if (i % 64 == 63 && os::monotonic_ns() >= until) break;
          os::cpu_relax();
        }
        // Stale posts (a writer posting without a frame), or the one post of a PurgeAndCreate
        // that replaced the file (it also wakes the cnt0 futex, and this reader would otherwise
        // sleep on).
        if (replaced()) return Errc::replaced;
      }
      // Register in the slot's waiter count as glibc's sem_wait does, so that glibc's sem_post
      // wakes the value word. SYNC POINT S (acquire, as glibc's registration): the same word
      // as the value, so a post's CAS either precedes this RMW (the value is then non-zero and
      // the wait below returns at once) or follows it and sees the waiter (it then wakes us).
      os::gsem::data(sem).fetch_add(os::gsem::kOneWaiter, std::memory_order_acquire);
    }
    // Relaxed: leaving costs at most a poster's needless wake-up; nothing is published by it.
    auto unregister = [&] {
      if (reg != 0) waiters.fetch_sub(reg, std::memory_order_relaxed);
      if (sem != nullptr) os::gsem::data(sem).fetch_sub(os::gsem::kOneWaiter, std::memory_order_relaxed);
    };
    // Register before the final check (seq_cst pairs with the writer's cnt0 RMW and its
    // seq_cst load of the waiter count: either we see the new cnt0 or the writer sees us).
    if (reg != 0) waiters.fetch_add(reg, std::memory_order_seq_cst);
    const std::uint64_t c = aref(md->cnt0).load(std::memory_order_seq_cst);
    if (c != last_cnt0) {
      unregister();
      return done(c);
    }
    const std::int64_t now = os::monotonic_ns();
    if (now >= deadline) {
      unregister();
      return Errc::timeout;
    }
    const timespec rel = os::to_timespec(std::min(deadline - now, poll_ns));
    const auto* cnt0_word = cnt0_futex_word(md);
    const auto expected = static_cast<std::uint32_t>(last_cnt0 & 0xFFFFFFFFu);
    os::FutexResult r = os::FutexResult::woken;
    bool unsupported = sem_only;
    if (sem != nullptr && !sem_only)  // wakes for the cnt0 futex (shmlink writers) or the slot (posts)
      r = os::futex_wait_either(cnt0_word, expected, os::gsem::value_word(sem), 0, rel, &unsupported);
    if (unsupported) {
      r = os::futex_wait(os::gsem::value_word(sem), 0, &rel);
    } else if (sem == nullptr) {
      r = os::futex_wait(cnt0_word, expected, &rel);
    }
    // Not woken by a writer (a poll slice ended, or the page is gone): a foreign writer
    // may have re-created the file in place (ISIO/DAO truncate and re-size it). Check the file
    // still covers the mapping before touching it again, so that the common case of such a
    // re-creation ends in Errc::replaced instead of SIGBUS (a truncation between this check
    // and the loads below still faults: docs/design/streams.md, "Trust rules"). The waiter
    // counts are left as they are then: they live in the truncated pages (the re-created file
    // starts at 0). After a real wake-up there is no check: an fstat (about 2.3 us on a 2-CPU
    // VM) is a large share of a futex wake-up (6.5 us one way at best there), so that window
    // stays (documented).
    if (r != os::FutexResult::woken && r != os::FutexResult::value_changed && !file_intact()) return Errc::replaced;
    unregister();
    const std::uint64_t c2 = aref(md->cnt0).load(std::memory_order_acquire);  // SYNC POINT A
    if (c2 != last_cnt0) return done(c2);
    if (r == os::FutexResult::interrupted) return Errc::interrupted;
    // A post (the slot's value word changed): take it at the top of the loop.
    if (r == os::FutexResult::value_changed || (sem != nullptr && os::gsem::value(sem) != 0)) continue;
    // Woken (or a slice ended) with cnt0 unchanged: was the file re-created under us?
    if (replaced()) return Errc::replaced;
  }
}

// ---- semaphores -----------------------------------------------------------------------------

int Stream::claim_semaphore(int preferred) noexcept {
  if (!impl_ || !impl_->writable) return -1;
  Impl& m = *impl_;
  const pid_t me = os::current_pid();
  const bool same_kernel = m.where.same_kernel;
  // Ours: holds our pid, and (shared with other kernels, where another kernel's process can have
  // our pid number) was claimed here. A slot held by wait_futex is not the caller's to read.
  for (int i = 0; i < m.nsem; ++i)
    if (aref(m.read_pid[i]).load(std::memory_order_relaxed) == me && !m.held_for_waiting(i) &&
        (same_kernel || m.claimed_here(i)))
      return i;
  auto try_claim = [&](int i) {
    auto slot = aref(m.read_pid[i]);
    std::int32_t seen = slot.load(std::memory_order_relaxed);
    // CAS from the exact value judged free: a racing claimer makes it fail, never both win.
    // SYNC POINT R (acq_rel), as in acquire_wait_slot().
    if (!slot_free(seen, same_kernel) || !slot.compare_exchange_strong(seen, me, std::memory_order_acq_rel))
      return false;
    if (same_kernel || m.note_claim(i)) return true;
    std::int32_t mine = me;  // not recorded: give it back at once (SYNC POINT R)
    slot.compare_exchange_strong(mine, -1, std::memory_order_acq_rel);
    return false;
  };
  if (preferred >= 0 && preferred < m.nsem && try_claim(preferred)) return preferred;
  for (int i = 0; i < m.nsem; ++i)
    if (try_claim(i)) return i;
  return -1;
}

void Stream::release_semaphore(int index) noexcept {
  if (!impl_ || !impl_->writable || index < 0 || index >= impl_->nsem) return;
  if (impl_->held_for_waiting(index)) return;  // wait_futex's, given back on close
  if (!impl_->where.same_kernel) {
    // Our pid number there may be another kernel's process: only a claim made here is ours.
    if (!impl_->claimed_here(index)) return;
    impl_->forget_claim(index);
  }
  std::int32_t me = os::current_pid();
  // SYNC POINT R (acq_rel): only from our own pid, so a slot someone else holds stays theirs.
  aref(impl_->read_pid[index]).compare_exchange_strong(me, -1, std::memory_order_acq_rel);
}

int Stream::reclaim_semaphores(bool count_only) noexcept {
  if (!impl_) return 0;
  Impl& m = *impl_;
  // Shared with other kernels: a pid here may be another kernel's live reader; nothing is dead.
  if (!m.where.same_kernel) return 0;
  int dead = 0;
  for (int i = 0; i < m.nsem; ++i) {
    auto slot = aref(m.read_pid[i]);
    std::int32_t seen = slot.load(std::memory_order_relaxed);
    if (seen == 0 || seen == -1 || !slot_free(seen, true)) continue;  // free already, or a live reader
    if (count_only || !m.writable) {
      ++dead;
      continue;
    }
    // CAS from the exact pid judged dead: a reader that claimed the slot meanwhile keeps it.
    if (slot.compare_exchange_strong(seen, -1, std::memory_order_acq_rel)) ++dead;
  }
  return dead;
}

Status Stream::sem_wait(int index, std::chrono::nanoseconds timeout) const noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  if (index < 0 || index >= impl_->nsem) return Errc::out_of_range;
  sem_t* s = &impl_->sems[index];
  if (timeout.count() <= 0) return os::gsem::trywait(s) ? Status(Errc::ok) : Status(Errc::timeout);
  // shmlink's own wait on the glibc words, CLOCK_MONOTONIC (immune to wall-clock steps): glibc's
  // sem_wait aborts on some scribbled slots, and interoperates with this one both ways.
  const std::int64_t deadline =
      timeout == kForever ? std::numeric_limits<std::int64_t>::max() : os::deadline_after(timeout);
  if (!impl_->where.same_kernel) {
    // Shared with other kernels: a poster there cannot wake us; poll the value (no registration).
    impl_->note_polling();
    switch (os::gsem::poll_wait(s, deadline)) {
      case os::gsem::WaitResult::taken: return Errc::ok;
      case os::gsem::WaitResult::timed_out: return Errc::timeout;
      case os::gsem::WaitResult::interrupted: return Errc::interrupted;
    }
    return Errc::system;
  }
  const std::int64_t slice = std::max<std::int64_t>(detail::sem_recheck_ns().load(std::memory_order_relaxed), 1'000'000);
  switch (os::gsem::wait(s, deadline, slice)) {
    case os::gsem::WaitResult::taken: return Errc::ok;
    case os::gsem::WaitResult::timed_out: return Errc::timeout;
    case os::gsem::WaitResult::interrupted: return Errc::interrupted;
  }
  return Errc::system;
}

Status Stream::sem_trywait(int index) const noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  if (index < 0 || index >= impl_->nsem) return Errc::out_of_range;
  return os::gsem::trywait(&impl_->sems[index]) ? Status(Errc::ok) : Status(Errc::would_block);
}

int Stream::sem_flush(int index) const noexcept {
  if (!impl_ || !impl_->writable) return 0;
  if (index < 0) {
    int total = 0;
    for (int i = 0; i < impl_->nsem; ++i) {
      const int n = sem_flush(i);
      total = n > std::numeric_limits<int>::max() - total ? std::numeric_limits<int>::max() : total + n;
    }
    return total;
  }
  if (index >= impl_->nsem) return 0;
  return os::gsem::flush(&impl_->sems[index]);  // one CAS, whatever the value
}

int Stream::sem_value(int index) const noexcept {
  if (!impl_ || index < 0 || index >= impl_->nsem) return -1;
  return os::gsem::value(&impl_->sems[index]);
}

Status Stream::sem_post(int index) noexcept {
  if (!impl_) return Errc::closed;
  if (!impl_->writable) return Errc::permission;
  Impl& m = *impl_;
  if (index < 0) {
    m.post_all();
    return Errc::ok;
  }
  if (index >= m.nsem) return Errc::out_of_range;
  m.post_slot(index, os::current_pid());
  (void)os::gsem::post(m.semlog, kSemaphoreMaxValue);
  return Errc::ok;
}

}  // namespace shmlink
