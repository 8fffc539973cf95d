// SPDX-License-Identifier: MIT
// Streams placed in a region: create (reserve, lay out with Stream::create_in, publish) and open
// by name (include/shmlink/region.hpp; docs/design/region.md "The allocator's protocol").
#include "region/region_channels.hpp"

#include <algorithm>

namespace shmlink {

using namespace rchan;

Stream Region::create_stream(std::string_view name, const StreamSpec& spec, OpenMode mode) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  check_name("stream", name, *st);
  if (mode == OpenMode::OpenExisting) return open_stream(name, OpenOptions{{spec.version}});
  if (mode == OpenMode::OpenOrCreate) {
    std::vector<std::uint32_t> want = spec.shape;
    if (spec.depth >= 2) want.push_back(spec.depth);
    return open_or_create(
        *st, name,
        [&] {
          Stream s = open_stream(name, OpenOptions{{spec.version}});
          if (!std::equal(s.shape().begin(), s.shape().end(), want.begin(), want.end()) || s.dtype() != spec.dtype)
            throw Error(Errc::layout, "opening " + locator(*st, name) + ": exists as " + shape_text(s.shape()) + " " +
                                          std::string(dtype_name(s.dtype())) + ", asked for " + shape_text(want) +
                                          " " + std::string(dtype_name(spec.dtype)));
          return s;
        },
        [&] { return create_stream(name, spec, OpenMode::ExclusiveCreate); });
  }
  if (mode == OpenMode::PurgeAndCreate) purge_companion(*this, name);
  const std::size_t bytes = Stream::bytes_for(spec);
  return create_entry(
      st, name, ChannelKind::stream, bytes, [&](const Placement& where) { return Stream::create_in(where, spec); },
      mode == OpenMode::PurgeAndCreate);
}

Stream Region::open_stream(std::string_view name, const OpenOptions& options) {
  const std::shared_ptr<State>& st = RegionAccess::state(*this);
  OpenOptions o = options;
  o.writable = o.writable && st->writable;
  return Stream::open_in(ready_entry(st, name, ChannelKind::stream, o.writable), o);
}

}  // namespace shmlink
