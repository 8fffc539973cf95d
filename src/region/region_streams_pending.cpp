// SPDX-License-Identifier: MIT
// Streams in a region need the stream placement (Stream::bytes_for / create_in / open_in, issue
// 20). Built only while include/shmlink/stream.hpp does not declare it yet (src/CMakeLists.txt):
// these definitions say so by name, and region_streams.cpp takes their place once it does.
#include "region/region_channels.hpp"

namespace shmlink {

using namespace rchan;

namespace {
[[noreturn]] void no_stream_placement(const Region& r, std::string_view action, std::string_view name) {
  throw Error(Errc::invalid_argument, std::string(action) + " " + locator(*RegionAccess::state(r), name) +
                                          ": streams in regions need Stream::create_in/open_in, which this build "
                                          "does not have yet");
}
}  // namespace

Stream Region::create_stream(std::string_view name, const StreamSpec&, OpenMode) {
  no_stream_placement(*this, "creating", name);
}

Stream Region::open_stream(std::string_view name, const OpenOptions&) { no_stream_placement(*this, "opening", name); }

}  // namespace shmlink
