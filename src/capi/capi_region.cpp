// SPDX-License-Identifier: MIT
// The region part of the C API (include/shmlink.h) over shmlink::Region: the region handle, and
// stream and queue handles for the channels placed in it (the same handles as for files, see
// capi_handles.hpp). Conventions: capi_common.cpp.
#include <shmlink.h>

#include "capi/capi_handles.hpp"
#include "capi/capi_internal.hpp"

#include <unistd.h>

#include <shmlink/error.hpp>
#include <shmlink/region.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using shmlink::capi::adopt;
using shmlink::capi::check_open_mode;
using shmlink::capi::check_stream_spec;
using shmlink::capi::copy_field;
using shmlink::capi::fail;
using shmlink::capi::guarded;
using shmlink::capi::new_queue_handle;
using shmlink::capi::null_arg;
using shmlink::capi::to_cpp;

/// The opaque region handle: owns one shmlink::Region (the mapping is shared with the channel
/// handles made from it, which keep it mapped after the region handle is closed).
struct shmlink_region_s {
  shmlink::Region region;
};

namespace {

// The C constants are the C++ enumerators and limits; pin them so neither side can drift.
static_assert(SHMLINK_CHANNEL_STREAM == static_cast<int>(shmlink::ChannelKind::stream));
static_assert(SHMLINK_CHANNEL_QUEUE == static_cast<int>(shmlink::ChannelKind::queue));
static_assert(SHMLINK_ENTRY_CREATING == static_cast<int>(shmlink::EntryState::creating));
static_assert(SHMLINK_ENTRY_READY == static_cast<int>(shmlink::EntryState::ready));
static_assert(SHMLINK_ENTRY_REMOVING == static_cast<int>(shmlink::EntryState::removing));
static_assert(SHMLINK_CHANNEL_NAME_MAX == shmlink::kMaxStreamName);
static_assert(sizeof(shmlink_region_entry_t{}.name) == shmlink::kMaxStreamName + 1);

// The C ABI of the region structs (see the stream structs in capi_stream.cpp).
static_assert(sizeof(shmlink_region_spec_t) == 8 && alignof(shmlink_region_spec_t) == 4);
static_assert(offsetof(shmlink_region_spec_t, permissions) == 0 && offsetof(shmlink_region_spec_t, max_entries) == 4);
static_assert(sizeof(shmlink_region_entry_t) == 120 && alignof(shmlink_region_entry_t) == 8);
static_assert(offsetof(shmlink_region_entry_t, name) == 0 && offsetof(shmlink_region_entry_t, kind) == 80 &&
              offsetof(shmlink_region_entry_t, state) == 84 && offsetof(shmlink_region_entry_t, offset) == 88 &&
              offsetof(shmlink_region_entry_t, size) == 96 && offsetof(shmlink_region_entry_t, generation) == 104 &&
              offsetof(shmlink_region_entry_t, owner) == 112);

/// "PATH:NAME" of a channel in `r`, for messages of calls that fail before the core names it.
std::string locator(const shmlink_region_t* r, const char* name) { return r->region.path() + ":" + name; }

/// Checks the arguments every channel call shares (out first, so that it is NULL on any failure).
template <class Out>
int check_channel_args(const char* function, const shmlink_region_t* region, const char* name, Out** out) noexcept {
  if (out == nullptr) return null_arg(function, "out");
  *out = nullptr;
  if (region == nullptr) return null_arg(function, "region");
  if (name == nullptr) return null_arg(function, "name");
  return SHMLINK_OK;
}

}  // namespace

void shmlink_region_spec_init(shmlink_region_spec_t* spec) {
  if (spec == nullptr) return;
  const shmlink::RegionOptions defaults;  // one source of truth for the defaults
  *spec = shmlink_region_spec_t{};
  spec->permissions = static_cast<std::uint32_t>(defaults.permissions);
  spec->max_entries = static_cast<std::uint32_t>(defaults.max_entries);
}

int shmlink_region_create(const char* path, uint64_t size, const shmlink_region_spec_t* spec, int mode,
                          shmlink_region_t** out) {
  if (out == nullptr) return null_arg("shmlink_region_create", "out");
  *out = nullptr;
  if (path == nullptr) return null_arg("shmlink_region_create", "path");
  if (const int rc = check_open_mode("creating region", path, mode); rc != SHMLINK_OK) return rc;
  return guarded("creating region", path, [&] {
    shmlink::RegionOptions options;
    if (spec != nullptr) {
      options.permissions = static_cast<mode_t>(spec->permissions);
      options.max_entries = spec->max_entries;
    }
    auto handle = std::make_unique<shmlink_region_s>();
    handle->region = shmlink::Region::create(path, static_cast<std::size_t>(size),
                                             static_cast<shmlink::OpenMode>(mode), options);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_region_open(const char* path, shmlink_region_t** out) {
  if (out == nullptr) return null_arg("shmlink_region_open", "out");
  *out = nullptr;
  if (path == nullptr) return null_arg("shmlink_region_open", "path");
  return guarded("opening region", path, [&] {
    auto handle = std::make_unique<shmlink_region_s>();
    handle->region = shmlink::Region::open(path);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_region_close(shmlink_region_t* region) {
  delete region;  // ~Region unmaps unless a channel still holds the mapping; delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_region_destroy(const char* path) {
  if (path == nullptr) return null_arg("shmlink_region_destroy", "path");
  return guarded("removing region", path, [&] {
    const std::string file = shmlink::region_path(path);
    if (::unlink(file.c_str()) == 0) return SHMLINK_OK;
    const int err = errno;
    const int code = err == ENOENT                    ? SHMLINK_E_NOT_FOUND
                     : err == EACCES || err == EPERM  ? SHMLINK_E_PERMISSION
                     : err == ENAMETOOLONG            ? SHMLINK_E_NAME_TOO_LONG
                                                      : SHMLINK_E_SYSTEM;
    return fail(code, "removing region %s: %s", file.c_str(), std::strerror(err));
  });
}

int shmlink_region_create_stream(shmlink_region_t* region, const char* name, const shmlink_stream_spec_t* spec,
                                 int mode, shmlink_stream_t** out) {
  if (const int rc = check_channel_args("shmlink_region_create_stream", region, name, out); rc != SHMLINK_OK)
    return rc;
  if (spec == nullptr) return null_arg("shmlink_region_create_stream", "spec");
  return guarded("creating a stream in region", region->region.path().c_str(), [&] {
    if (const int rc = check_stream_spec(locator(region, name).c_str(), spec, mode); rc != SHMLINK_OK) return rc;
    const shmlink::StreamSpec cpp = to_cpp(*spec);
    // The handle is allocated first so that an out-of-memory cannot strand a created entry.
    auto handle = std::make_unique<shmlink_stream_s>();
    handle->stream = region->region.create_stream(name, cpp, static_cast<shmlink::OpenMode>(mode));
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_region_open_stream(shmlink_region_t* region, const char* name, shmlink_stream_t** out) {
  if (const int rc = check_channel_args("shmlink_region_open_stream", region, name, out); rc != SHMLINK_OK)
    return rc;
  return guarded("opening a stream in region", region->region.path().c_str(), [&] {
    auto handle = std::make_unique<shmlink_stream_s>();
    handle->stream = region->region.open_stream(name);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_region_create_queue(shmlink_region_t* region, const char* name, const shmlink_queue_spec_t* spec,
                                int mode, shmlink_queue_t** out) {
  if (const int rc = check_channel_args("shmlink_region_create_queue", region, name, out); rc != SHMLINK_OK)
    return rc;
  if (spec == nullptr) return null_arg("shmlink_region_create_queue", "spec");
  return guarded("creating a queue in region", region->region.path().c_str(), [&] {
    const std::string where = locator(region, name);
    if (const int rc = check_open_mode("creating queue", where.c_str(), mode); rc != SHMLINK_OK) return rc;
    shmlink::QueueSpec cpp;
    if (const int rc = to_cpp(*spec, "creating queue", where.c_str(), cpp); rc != SHMLINK_OK) return rc;
    auto handle = new_queue_handle(cpp.max_values);  // before the entry exists (out-of-memory)
    adopt(*handle, region->region.create_queue(name, cpp, static_cast<shmlink::OpenMode>(mode)), false);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_region_open_queue(shmlink_region_t* region, const char* name, const shmlink_queue_expect_t* expect,
                              shmlink_queue_t** out) {
  if (const int rc = check_channel_args("shmlink_region_open_queue", region, name, out); rc != SHMLINK_OK)
    return rc;
  return guarded("opening a queue in region", region->region.path().c_str(), [&] {
    shmlink::QueueExpect cpp;
    if (const int rc = to_cpp(expect, "opening queue", locator(region, name).c_str(), cpp); rc != SHMLINK_OK)
      return rc;
    auto handle = std::make_unique<shmlink_queue_s>();
    adopt(*handle, region->region.open_queue(name, cpp), !cpp.writable);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_region_remove(shmlink_region_t* region, const char* name) {
  if (region == nullptr) return null_arg("shmlink_region_remove", "region");
  if (name == nullptr) return null_arg("shmlink_region_remove", "name");
  return guarded("removing a channel of region", region->region.path().c_str(), [&] {
    region->region.remove(name);
    return SHMLINK_OK;
  });
}

int shmlink_region_entries(const shmlink_region_t* region, shmlink_region_entry_t* out, size_t capacity,
                           size_t* count) {
  if (region == nullptr) return null_arg("shmlink_region_entries", "region");
  if (count == nullptr) return null_arg("shmlink_region_entries", "count");
  if (out == nullptr && capacity != 0) return null_arg("shmlink_region_entries", "out");
  return guarded("listing region", region->region.path().c_str(), [&] {
    const std::vector<shmlink::RegionEntry> entries = region->region.entries();
    for (std::size_t i = 0; i < entries.size() && i < capacity; ++i) {
      const shmlink::RegionEntry& e = entries[i];
      shmlink_region_entry_t& c = out[i];
      c = shmlink_region_entry_t{};
      copy_field(c.name, e.name);
      c.kind = static_cast<std::uint32_t>(e.kind);
      c.state = static_cast<std::uint32_t>(e.state);
      c.offset = e.offset;
      c.size = e.size;
      c.generation = e.generation;
      c.owner = e.owner;
    }
    *count = entries.size();
    return SHMLINK_OK;
  });
}

const char* shmlink_region_path(const shmlink_region_t* region) {
  return region != nullptr ? region->region.path().c_str() : "";
}

uint64_t shmlink_region_size(const shmlink_region_t* region) {
  return region != nullptr ? region->region.size() : 0;
}
