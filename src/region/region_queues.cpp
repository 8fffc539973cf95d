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
  if (mode == OpenMode::PurgeAndCreate && RegionAccess::find(st, name)) remove(name);
  const std::size_t bytes = Queue::bytes_for(spec);
  return create_entry(st, name, ChannelKind::queue, bytes,
                      [&](const Placement& where) { return Queue::create_in(where, spec); });
}

Queue Region::open_queue(std::string_view name, const QueueExpect& expect) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  QueueExpect e = expect;
  e.writable = e.writable && st->writable;
  return Queue::open_in(ready_entry(st, name, ChannelKind::queue), e);
}

void Region::remove(std::string_view name) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  std::optional<rdir::Slot> slot = RegionAccess::find(st, name);
  if (!slot || !st->dir.remove(name))
    throw Error(Errc::not_found, "removing " + locator(*st, name) + ": no such entry in the region");
  if (slot->entry.kind != ChannelKind::stream) return;
  // The stream's partial-write companion goes with it (as Stream::remove does for files).
  const std::string companion = std::string(name) + std::string(kCompanionSuffix);
  std::optional<rdir::Slot> pkt = RegionAccess::find(st, companion);
  if (pkt && pkt->entry.kind == ChannelKind::stream) (void)st->dir.remove(companion);
}

}  // namespace shmlink
