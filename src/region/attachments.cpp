// SPDX-License-Identifier: MIT
// Who is attached to a region entry (docs/design/region.md, "Removing a channel"): the last
// page of every entry holds one slot per writable handle, so that a removed entry's bytes are
// not reused while a live process may still write them (region_internal.hpp).
#include "region/region_internal.hpp"

#include <atomic>
#include <string>

namespace shmlink::rdir {

namespace {
std::atomic_ref<std::uint64_t> at(std::uint64_t& field) noexcept { return std::atomic_ref<std::uint64_t>(field); }
std::uint64_t entry_field(std::span<std::byte> bytes, std::uint32_t i, std::size_t off) noexcept {
  // SYNC POINT: relaxed: under the lock, or checked against the generation by the caller.
  return at(*reinterpret_cast<std::uint64_t*>(bytes.data() + rlayout::entry_offset(i) + off)).load(std::memory_order_relaxed);
}
}  // namespace

rlayout::AttachSlot* Directory::attach_page(std::uint32_t i) const noexcept {
  if (i >= header_.max_entries) return nullptr;
  const std::uint64_t offset = entry_field(bytes_, i, offsetof(rlayout::RegionEntry, offset));
  const std::uint64_t size = entry_field(bytes_, i, offsetof(rlayout::RegionEntry, size));
  // A peer wrote these: the page must lie inside the channel space (the trust rule).
  if (offset % rlayout::kEntryAlign != 0 || size % rlayout::kEntryAlign != 0 || size < rlayout::kAttachBytes ||
      offset < header_.directory_bytes || offset > header_.region_size || size > header_.region_size - offset)
    return nullptr;
  return reinterpret_cast<rlayout::AttachSlot*>(bytes_.data() + offset + size - rlayout::kAttachBytes);
}

std::uint32_t Directory::attachments(std::uint32_t i, std::uint64_t lock) const {
  rlayout::AttachSlot* page = attach_page(i);
  if (page == nullptr) return 0;
  std::uint32_t live = 0;
  for (std::uint32_t k = 0; k < rlayout::kAttachSlots; ++k) {
    // SYNC POINT: acquire: pairs with detach()'s release CAS (the holder's last accesses to the
    // channel happen before the entry is freed and reused).
    std::uint64_t token = at(page[k].token).load(std::memory_order_acquire);
    if (token == 0) continue;
    if (holder_dead(token, at(page[k].start).load(std::memory_order_relaxed))) {
      // A crashed holder: its slot is cleared (only the lock holder clears others' slots, and
      // only while the lock is still its own).
      still_holding(lock, "clearing a dead process's attachment");
      at(page[k].token).compare_exchange_strong(token, 0, std::memory_order_relaxed);
      continue;
    }
    ++live;
  }
  return live;
}

std::uint32_t Directory::attach_locked(const Slot& slot, std::uint64_t lock) const {
  rlayout::AttachSlot* page = attach_page(slot.index);
  if (page == nullptr)
    throw Error(Errc::layout, "region " + what_ + ": entry " + std::to_string(slot.index) + " ('" +
                                  escape_name(slot.entry.name) + "') has no room for its attachment page");
  const std::uint64_t me = holder_token();
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t k = 0; k < rlayout::kAttachSlots; ++k) {
      std::uint64_t expected = 0;
      // SYNC POINT: relaxed: a look for a free slot; the CAS below decides.
      if (at(page[k].token).load(std::memory_order_relaxed) != 0) continue;
      still_holding(lock, "attaching to an entry");
      // SYNC POINT: relaxed: under the lock (no other attach runs; detach only clears its own
      // slot), published to the next holder by the lock's release.
      if (at(page[k].token).compare_exchange_strong(expected, me, std::memory_order_relaxed)) {
        at(page[k].start).store(process_start(), std::memory_order_relaxed);
        return k;
      }
    }
    (void)attachments(slot.index, lock);  // clears the slots of dead processes, then one more look
  }
  throw Error(Errc::no_space, "region " + what_ + ": opening '" + escape_name(slot.entry.name) + "': all " +
                                  std::to_string(rlayout::kAttachSlots) + " attachment slots are held by live handles");
}

void Directory::detach(const Slot& slot, std::uint32_t a) const noexcept {
  if (a >= rlayout::kAttachSlots || slot.index >= header_.max_entries) return;
  const std::uint64_t ks = entry_field(bytes_, slot.index, offsetof(rlayout::RegionEntry, kind));
  const std::uint64_t gen = entry_field(bytes_, slot.index, offsetof(rlayout::RegionEntry, generation));
  const auto state = static_cast<std::uint32_t>(ks >> 32);
  // Still this entry (open, or removed and kept for us): the page is ours to clear. Otherwise it
  // was freed by force (Region::remove_entry) and its bytes may be another channel's.
  const bool ours = (gen == slot.entry.generation &&
                     (state == rlayout::kStateCreating || state == rlayout::kStateReady)) ||
                    (gen == slot.entry.generation + 1 && state == rlayout::kStateRemoving);
  rlayout::AttachSlot* page = ours ? attach_page(slot.index) : nullptr;
  if (page == nullptr) return;
  std::uint64_t expected = holder_token();
  // SYNC POINT: release: this handle's accesses to the channel come first; pairs with the
  // acquire load in attachments() of the lock holder that frees the entry.
  at(page[a].token).compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed);
}

}  // namespace shmlink::rdir
