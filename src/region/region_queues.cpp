// SPDX-License-Identifier: MIT
// Queues placed in a region (create with Queue::create_in, open by name) and removing entries
// (include/shmlink/region.hpp; docs/design/region.md "The allocator's protocol").
#include "region/region_channels.hpp"

namespace shmlink {

using namespace rchan;

Queue Region::create_queue(std::string_view name, const QueueSpec& spec, OpenMode mode) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  check_name("queue", name, *st);
  QueueExpect expect;
  expect.max_values = spec.max_values;
  expect.signals = spec.signals;
  expect.kind = spec.kind;
  if (mode == OpenMode::OpenExisting) return open_queue(name);
  if (mode == OpenMode::OpenOrCreate)
    return open_or_create(
        *st, name, [&] { return open_queue(name, expect); },
        [&] { return create_queue(name, spec, OpenMode::ExclusiveCreate); });
  if (mode == OpenMode::PurgeAndCreate) purge_companion(*this, name);
  const std::size_t bytes = Queue::bytes_for(spec);
  return create_entry(
      st, name, ChannelKind::queue, bytes, [&](const Placement& where) { return Queue::create_in(where, spec); },
      mode == OpenMode::PurgeAndCreate);
}

Queue Region::open_queue(std::string_view name, const QueueExpect& expect) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  QueueExpect e = expect;
  e.writable = e.writable && st->writable;
  return Queue::open_in(ready_entry(st, name, ChannelKind::queue, e.writable), e);
}

namespace {
/// The companion's owner identity a ready stream entry gives its partial-write companion (its
/// creation time, as Stream writes it into the companion's cnt2), or nullopt.
std::optional<std::uint64_t> companion_owner(Region& r, const rdir::Slot& slot) {
  if (slot.entry.kind != ChannelKind::stream || slot.entry.state != EntryState::ready) return std::nullopt;
  try {
    return static_cast<std::uint64_t>(r.open_stream(slot.entry.name, OpenOptions{.writable = false}).creation_time_ns());
  } catch (const Error&) {
    return std::nullopt;  // not a stream we can read: no companion of it is believed
  }
}
/// True when `slot` holds the partial-write companion of the stream whose identity is `owner`:
/// u64, 516 x depth, cnt2 = owner (as Stream::remove checks a companion file).
bool is_companion(const std::shared_ptr<Region::State>& st, const rdir::Slot& slot, std::uint64_t owner) {
  if (slot.entry.kind != ChannelKind::stream || slot.entry.state != EntryState::ready) return false;
  try {
    const Stream c = Stream::open_in(RegionAccess::placement(st, slot), OpenOptions{.writable = false});
    return c.dtype() == Dtype::u64 && c.shape().size() == 2 && c.shape()[0] == kPacketRecordWords && c.cnt2() == owner;
  } catch (const Error&) {
    return false;
  }
}

/// Removes the partial-write companion of the stream whose identity is `owner` (from
/// companion_owner(), taken before the stream went).
void remove_companion(const std::shared_ptr<Region::State>& st, std::string_view name, std::uint64_t owner) {
  // The stream's partial-write companion goes with it (as Stream::remove does for files), but
  // only a real one: an unrelated stream that happens to be called NAME_pkt stays.
  const std::string companion = std::string(name) + std::string(kCompanionSuffix);
  std::optional<rdir::Slot> pkt = RegionAccess::find(st, companion);
  if (!pkt || !is_companion(st, *pkt, owner)) return;
  try {
    (void)st->dir.remove(companion);
  } catch (const Error& e) {
    // The stream goes anyway; a companion still being created is left to its creator.
    if (e.errc() != Errc::busy) throw;
  }
}
}  // namespace

void rchan::purge_companion(Region& r, std::string_view name) {
  const std::shared_ptr<Region::State>& st = RegionAccess::state(r);
  std::optional<rdir::Slot> slot = RegionAccess::find(st, name);
  if (const std::optional<std::uint64_t> owner = slot ? companion_owner(r, *slot) : std::nullopt)
    remove_companion(st, name, *owner);
}

void Region::remove(std::string_view name) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  std::optional<rdir::Slot> slot = RegionAccess::find(st, name);
  const std::optional<std::uint64_t> owner = slot ? companion_owner(*this, *slot) : std::nullopt;
  if (!slot || !st->dir.remove(name))
    throw Error(Errc::not_found, "removing " + locator(*st, name) + ": no such entry in the region");
  if (owner) remove_companion(st, name, *owner);
}

void Region::remove_entry(std::uint32_t index) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  if (!st->dir.remove_index(index))
    throw Error(Errc::not_found, "removing entry " + std::to_string(index) + " of region " + st->path + ": it is free");
}

}  // namespace shmlink
