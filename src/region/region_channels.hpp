// SPDX-License-Identifier: MIT
// What creating and opening channels in a region share (region_streams.cpp, region_queues.cpp):
// the name rule, PATH:NAME, ready entries as placements, reserve-lay out-publish, OpenOrCreate.
#pragma once

#include "region/region_access.hpp"

#include "os/clock.hpp"

#include <time.h>

#include <memory>
#include <string>
#include <string_view>

namespace shmlink::rchan {

using detail::RegionAccess;

/// Suffix of a stream's partial-write companion (`<name>_pkt`, as for files).
inline constexpr std::string_view kCompanionSuffix = "_pkt";
/// u64 words of one slice's record in a partial-write companion (its shape is this x depth).
inline constexpr std::uint32_t kPacketRecordWords = 516;

inline std::string locator(const Region::State& st, std::string_view name) { return st.path + ":" + std::string(name); }

/// The channel name rule, plus no ':' (it separates the region from the name in PATH:NAME).
inline void check_name(std::string_view kind, std::string_view name, const Region::State& st) {
  check_channel_name(kind, name, name, kMaxChannelName);
  if (name.find(':') != std::string_view::npos)
    throw Error(Errc::invalid_argument, std::string(kind) + " '" + escape_name(name) + "' in region " + st.path +
                                            ": a name must not contain ':'");
}

inline const char* kind_word(ChannelKind k) noexcept { return k == ChannelKind::stream ? "a stream" : "a queue"; }

/// The ready entry `name` of `kind`, as a placement; attached when `writable` (RegionAccess::attached).
/// @throws Error not_found (absent, not ready, or removed while being opened), layout (another kind).
inline Placement ready_entry(const std::shared_ptr<Region::State>& st, std::string_view name, ChannelKind kind,
                             bool writable) {
  const std::string who = "opening " + locator(*st, name);
  std::optional<rdir::Slot> slot = RegionAccess::find(st, name);
  if (!slot) throw Error(Errc::not_found, who + ": no such entry in the region");
  if (slot->entry.state != EntryState::ready)
    throw Error(Errc::not_found, who + ": the entry is not ready (being created or removed)");
  if (slot->entry.kind != kind)
    throw Error(Errc::layout, who + ": the entry is " + kind_word(slot->entry.kind) + ", not " + kind_word(kind));
  try {
    return RegionAccess::attached(st, *slot, writable);
  } catch (const Error& e) {
    if (e.errc() != Errc::replaced) throw;
    throw Error(Errc::not_found, who + ": the entry was removed while being opened");
  }
}

/// Reserves `bytes` for `name` (replacing an entry of that name when `replace`: PurgeAndCreate),
/// lays the channel out with `make(placement)` and publishes it; a failure frees the entry again.
template <class Make>
auto create_entry(const std::shared_ptr<Region::State>& st, std::string_view name, ChannelKind kind, std::size_t bytes,
                  Make&& make, bool replace = false) {
  detail::Reserved r = RegionAccess::allocate(st, name, kind, bytes, replace);
  try {
    auto channel = make(r.where);
    st->dir.publish(r.slot);
    return channel;
  } catch (...) {
    st->dir.abandon(r.slot);
    throw;
  }
}

/// PurgeAndCreate's first step: removes the partial-write companion of the stream `name` when
/// there is one (region_queues.cpp); the entry itself is replaced by create_entry(replace) in
/// one locked step, so that no other process sees the name missing.
void purge_companion(Region& r, std::string_view name);

/// OpenOrCreate: open when it is there, else create; a creator racing us wins and we open its
/// channel once it is ready (bounded by the lock timeout).
template <class Open, class Create>
auto open_or_create(const Region::State& st, std::string_view name, Open&& open, Create&& create) {
  const std::int64_t deadline = os::monotonic_ns() + rdir::g_lock_timeout_ns.load(std::memory_order_relaxed);
  for (;;) {
    try {
      return open();
    } catch (const Error& e) {
      if (e.errc() != Errc::not_found) throw;
    }
    try {
      return create();
    } catch (const Error& e) {
      if (e.errc() != Errc::exists) throw;
    }
    if (os::monotonic_ns() > deadline)
      throw Error(Errc::busy, "creating " + locator(st, name) + ": another process is still creating it");
    timespec ts{0, 1'000'000};
    ::nanosleep(&ts, nullptr);
  }
}

inline std::string shape_text(std::span<const std::uint32_t> shape) {
  std::string s;
  for (std::uint32_t v : shape) {  // appends: g++ 12 -O3 misreads `"x" + std::string` (-Wrestrict)
    if (!s.empty()) s += 'x';
    s += std::to_string(v);
  }
  return s;
}

}  // namespace shmlink::rchan
