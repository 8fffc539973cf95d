// SPDX-License-Identifier: MIT
// The stream part of the C API (include/shmlink.h) over shmlink::Stream: lifecycle, geometry,
// frames, waits, semaphores and keywords. Conventions: capi_common.cpp.
#include <shmlink.h>

#include "capi/capi_handles.hpp"
#include "capi/capi_internal.hpp"

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>

namespace {

using shmlink::Errc;

// Field sizes of shmlink_keyword_t against the ISIO limits the core enforces.
// A string value holds kMaxKeywordString (16, ISIO's valstr) bytes plus the NUL.
static_assert(sizeof(shmlink_keyword_t{}.name) == 16 && sizeof(shmlink_keyword_t{}.s) == shmlink::kMaxKeywordString + 1);
static_assert(sizeof(shmlink_keyword_t{}.comment) == 80);

// The C ABI: size, alignment and every field offset of each public struct of include/shmlink.h
// (x86-64 / aarch64, LP64). A change here breaks programs built against the previous header:
// bump the library's SOVERSION (the project version, src/CMakeLists.txt), update these numbers
// and say what changed in docs/c-api.md ("ABI"). Streams:
static_assert(sizeof(shmlink_stream_spec_t) == 48 && alignof(shmlink_stream_spec_t) == 8);
static_assert(offsetof(shmlink_stream_spec_t, naxis) == 0 && offsetof(shmlink_stream_spec_t, shape) == 4 &&
              offsetof(shmlink_stream_spec_t, dtype) == 16 && offsetof(shmlink_stream_spec_t, keywords) == 18 &&
              offsetof(shmlink_stream_spec_t, semaphores) == 20 &&
              offsetof(shmlink_stream_spec_t, imagetype) == 24 &&
              offsetof(shmlink_stream_spec_t, circular_buffer) == 32 &&
              offsetof(shmlink_stream_spec_t, permissions) == 36 && offsetof(shmlink_stream_spec_t, version) == 40);
static_assert(sizeof(shmlink_frame_info_t) == 40 && alignof(shmlink_frame_info_t) == 8);
static_assert(offsetof(shmlink_frame_info_t, cnt0) == 0 && offsetof(shmlink_frame_info_t, cnt1) == 8 &&
              offsetof(shmlink_frame_info_t, cnt2) == 16 && offsetof(shmlink_frame_info_t, atime_ns) == 24 &&
              offsetof(shmlink_frame_info_t, writetime_ns) == 32);
static_assert(sizeof(shmlink_stream_geometry_t) == 48 && alignof(shmlink_stream_geometry_t) == 8);
static_assert(offsetof(shmlink_stream_geometry_t, naxis) == 0 && offsetof(shmlink_stream_geometry_t, shape) == 4 &&
              offsetof(shmlink_stream_geometry_t, dtype) == 16 &&
              offsetof(shmlink_stream_geometry_t, nelement) == 24 &&
              offsetof(shmlink_stream_geometry_t, frame_bytes) == 32 &&
              offsetof(shmlink_stream_geometry_t, semaphores) == 40 &&
              offsetof(shmlink_stream_geometry_t, keyword_slots) == 44);
static_assert(sizeof(shmlink_keyword_t) == 144 && alignof(shmlink_keyword_t) == 8);
static_assert(offsetof(shmlink_keyword_t, name) == 0 && offsetof(shmlink_keyword_t, type) == 16 &&
              offsetof(shmlink_keyword_t, i) == 24 && offsetof(shmlink_keyword_t, d) == 32 &&
              offsetof(shmlink_keyword_t, s) == 40 && offsetof(shmlink_keyword_t, comment) == 57);

using shmlink::capi::fail;
using shmlink::capi::guarded;
using shmlink::capi::null_arg;
using shmlink::capi::copy_field;
using shmlink::capi::to_timeout;
using shmlink::capi::check_open_mode;
using shmlink::capi::check_stream_spec;
using shmlink::capi::to_cpp;

/// Message for a non-ok hot-path status: "writing stream 'wfs': timed out".
int status_fail(shmlink::Status st, const char* action, const shmlink::Stream& s) noexcept {
  if (st.code() == Errc::layout) {  // a rolling buffer whose cnt1 names no slice: say so with the values
    try {
      if (const std::string why = s.rolling_layout_error(); !why.empty())
        return fail(static_cast<int>(st.code()), "%s %s", action, why.c_str());
    } catch (...) {  // std::bad_alloc: the generic message below still names the stream
    }
  }
  return fail(static_cast<int>(st.code()), "%s stream '%s': %s", action, s.name().c_str(), st.message());
}

/// Message for a semaphore index the stream does not have: "waiting on a semaphore: semaphore 12
/// is outside 0..9 of stream 'wfs'", or "...: stream 'wfs' has no semaphores".
int semaphore_out_of_range(const char* action, int index, const shmlink::Stream& s) noexcept {
  try {
    return fail(SHMLINK_E_OUT_OF_RANGE, "%s: %s", action,
                shmlink::semaphore_index_error(index, s.semaphore_count(), s.name()).c_str());
  } catch (...) {  // std::bad_alloc: the code still tells
    return fail(SHMLINK_E_OUT_OF_RANGE, "%s: semaphore %d is out of range", action, index);
  }
}

void to_c(const shmlink::FrameInfo& in, shmlink_frame_info_t* out) noexcept {
  out->cnt0 = in.cnt0;
  out->cnt1 = in.cnt1;
  out->cnt2 = in.cnt2;
  out->atime_ns = in.atime_ns;
  out->writetime_ns = in.writetime_ns;
}

/// Sets keyword `name` to the `I`th alternative of KeywordValue built from `value`. The value is
/// built inside the guard: a string alternative may allocate.
template <std::size_t I, class T>
int set_keyword(shmlink_stream_t* stream, const char* name, const T& value, const char* comment) noexcept {
  auto& s = stream->stream;
  return guarded("setting a keyword of stream", s.name().c_str(), [&] {
    s.set_keyword(name, shmlink::KeywordValue(std::in_place_index<I>, value), comment != nullptr ? comment : "");
    return SHMLINK_OK;
  });
}

}  // namespace

// ---- lifecycle -------------------------------------------------------------------------------

void shmlink_stream_spec_init(shmlink_stream_spec_t* spec) {
  if (spec == nullptr) return;
  const shmlink::StreamSpec defaults;  // one source of truth for the defaults
  *spec = shmlink_stream_spec_t{};
  spec->dtype = static_cast<std::uint8_t>(defaults.dtype);
  spec->keywords = defaults.keywords;
  spec->semaphores = defaults.semaphores;
  spec->imagetype = defaults.imagetype;
  spec->circular_buffer = defaults.circular_buffer;
  spec->permissions = static_cast<std::uint32_t>(defaults.permissions);
  spec->version = "2.00";
}

int shmlink::capi::check_stream_spec(const char* name, const shmlink_stream_spec_t* spec, int mode) noexcept {
  // naxis bounds the read of spec->shape, so it is checked here rather than by the core.
  if (spec->naxis < 1 || spec->naxis > 3)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "creating stream '%s': naxis is %" PRIu32 ", must be 1, 2 or 3", name,
                spec->naxis);
  if (!shmlink::dtype_valid(spec->dtype))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "creating stream '%s': dtype %u is not an ISIO datatype (1..13)", name,
                static_cast<unsigned>(spec->dtype));
  return check_open_mode("creating stream", name, mode);
}

int shmlink::capi::check_open_mode(const char* action, const char* name, int mode) noexcept {
  if (mode < SHMLINK_EXCLUSIVE_CREATE || mode > SHMLINK_OPEN_EXISTING)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': open mode %d is not a shmlink_open_mode_t", action, name, mode);
  return SHMLINK_OK;
}

shmlink::StreamSpec shmlink::capi::to_cpp(const shmlink_stream_spec_t& spec) {
  shmlink::StreamSpec cpp;
  cpp.shape.assign(spec.shape, spec.shape + spec.naxis);
  cpp.dtype = static_cast<shmlink::Dtype>(spec.dtype);
  cpp.keywords = spec.keywords;
  cpp.semaphores = spec.semaphores;
  cpp.imagetype = spec.imagetype;
  cpp.circular_buffer = spec.circular_buffer;
  cpp.permissions = static_cast<mode_t>(spec.permissions);
  if (spec.version != nullptr) cpp.version = spec.version;
  return cpp;
}

int shmlink_stream_create(const char* name, const shmlink_stream_spec_t* spec, int mode,
                          shmlink_stream_t** out) {
  if (out == nullptr) return null_arg("shmlink_stream_create", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_stream_create", "name");
  if (spec == nullptr) return null_arg("shmlink_stream_create", "spec");
  if (const int rc = check_stream_spec(name, spec, mode); rc != SHMLINK_OK) return rc;
  return guarded("creating stream", name, [&] {
    const shmlink::StreamSpec cpp = to_cpp(*spec);
    // The handle is allocated first so that an out-of-memory cannot strand a created file.
    auto handle = std::make_unique<shmlink_stream_s>();
    handle->stream = shmlink::Stream::create(name, cpp, static_cast<shmlink::OpenMode>(mode));
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_stream_open(const char* name, shmlink_stream_t** out) {
  if (out == nullptr) return null_arg("shmlink_stream_open", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_stream_open", "name");
  return guarded("opening stream", name, [&] {
    auto handle = std::make_unique<shmlink_stream_s>();
    handle->stream = shmlink::Stream::open(name);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_stream_close(shmlink_stream_t* stream) {
  delete stream;  // ~Stream unmaps; the file stays. delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_stream_destroy(const char* name) {
  if (name == nullptr) return null_arg("shmlink_stream_destroy", "name");
  return guarded("removing stream", name, [&] {
    shmlink::Stream::remove(name);
    return SHMLINK_OK;
  });
}

int shmlink_stream_remove(const char* name) {
  if (name == nullptr) return null_arg("shmlink_stream_remove", "name");
  return shmlink_stream_destroy(name);
}

// ---- geometry ---------------------------------------------------------------------------------

int shmlink_stream_geometry(const shmlink_stream_t* stream, shmlink_stream_geometry_t* out) {
  if (stream == nullptr) return null_arg("shmlink_stream_geometry", "stream");
  if (out == nullptr) return null_arg("shmlink_stream_geometry", "out");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "reading the geometry of", s);
  *out = shmlink_stream_geometry_t{};
  const auto shape = s.shape();
  out->naxis = static_cast<std::uint32_t>(std::min<std::size_t>(shape.size(), 3));
  for (std::size_t i = 0; i < out->naxis; ++i) out->shape[i] = shape[i];
  out->dtype = static_cast<std::uint8_t>(s.dtype());
  out->nelement = s.nelement();
  out->frame_bytes = s.frame_bytes();
  out->semaphores = s.semaphore_count();
  out->keyword_slots = s.keyword_slots();
  return SHMLINK_OK;
}

// ---- frames ---------------------------------------------------------------------------------

int shmlink_stream_write(shmlink_stream_t* stream, const void* data, size_t bytes, int64_t atime_ns) {
  if (stream == nullptr) return null_arg("shmlink_stream_write", "stream");
  if (data == nullptr) return null_arg("shmlink_stream_write", "data");
  auto& s = stream->stream;
  shmlink::WriteOptions options;
  options.atime_ns = atime_ns;  // negative = now, as in the header
  const auto st = s.write(std::span(static_cast<const std::byte*>(data), bytes), options);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::size_mismatch)
    return fail(SHMLINK_E_SIZE_MISMATCH, "writing stream '%s': buffer is %zu bytes, frame is %zu bytes",
                s.name().c_str(), bytes, s.frame_bytes());
  return status_fail(st, "writing", s);
}

int shmlink_stream_read_copy(const shmlink_stream_t* stream, void* out, size_t bytes, shmlink_frame_info_t* info) {
  if (stream == nullptr) return null_arg("shmlink_stream_read_copy", "stream");
  if (out == nullptr) return null_arg("shmlink_stream_read_copy", "out");
  const auto& s = stream->stream;
  shmlink::FrameInfo fi;
  const auto st = s.read_copy(std::span(static_cast<std::byte*>(out), bytes), info != nullptr ? &fi : nullptr);
  if (st.ok()) {
    if (info != nullptr) to_c(fi, info);
    return SHMLINK_OK;
  }
  if (st.code() == Errc::size_mismatch)
    return fail(SHMLINK_E_SIZE_MISMATCH, "reading stream '%s': buffer is %zu bytes, frame is %zu bytes",
                s.name().c_str(), bytes, s.frame_bytes());
  return status_fail(st, "reading", s);
}

int shmlink_stream_view(const shmlink_stream_t* stream, const void** data, size_t* bytes) {
  if (stream == nullptr) return null_arg("shmlink_stream_view", "stream");
  if (data == nullptr) return null_arg("shmlink_stream_view", "data");
  if (bytes == nullptr) return null_arg("shmlink_stream_view", "bytes");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "viewing", s);
  const auto v = s.view();
  if (v.empty()) return status_fail(Errc::layout, "viewing", s);  // cnt1 names no slice (Stream::view)
  *data = v.data();
  *bytes = v.size();
  return SHMLINK_OK;
}

int shmlink_stream_frame_info(const shmlink_stream_t* stream, shmlink_frame_info_t* info) {
  if (stream == nullptr) return null_arg("shmlink_stream_frame_info", "stream");
  if (info == nullptr) return null_arg("shmlink_stream_frame_info", "info");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "reading the counters of", s);
  to_c(s.frame_info(), info);
  return SHMLINK_OK;
}

uint64_t shmlink_stream_cnt0(const shmlink_stream_t* stream) {
  return stream != nullptr ? stream->stream.cnt0() : 0;
}

// ---- waiting ----------------------------------------------------------------------------------

int shmlink_stream_wait_futex(const shmlink_stream_t* stream, uint64_t last_cnt0, int64_t timeout_ns,
                              uint64_t* cnt0_out) {
  if (stream == nullptr) return null_arg("shmlink_stream_wait_futex", "stream");
  const auto& s = stream->stream;
  const auto st = s.wait_futex(last_cnt0, to_timeout(timeout_ns), cnt0_out);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "waiting on stream '%s' (futex): cnt0 still %" PRIu64 " after %" PRId64 " ns",
                s.name().c_str(), last_cnt0, timeout_ns);
  return status_fail(st, "waiting (futex) on", s);
}

int shmlink_stream_wait_spin(const shmlink_stream_t* stream, uint64_t last_cnt0, int64_t timeout_ns,
                             uint64_t* cnt0_out) {
  if (stream == nullptr) return null_arg("shmlink_stream_wait_spin", "stream");
  const auto& s = stream->stream;
  const auto st = s.wait_spin(last_cnt0, to_timeout(timeout_ns), cnt0_out);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "waiting on stream '%s' (spin): cnt0 still %" PRIu64 " after %" PRId64 " ns",
                s.name().c_str(), last_cnt0, timeout_ns);
  return status_fail(st, "waiting (spin) on", s);
}

// ---- semaphores ---------------------------------------------------------------------------------

int shmlink_stream_claim_semaphore(shmlink_stream_t* stream, int preferred) {
  if (stream == nullptr) return null_arg("shmlink_stream_claim_semaphore", "stream");
  auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "claiming a semaphore of", s);
  const int index = s.claim_semaphore(preferred);
  if (index >= 0) return index;
  // No slot to claim is not "every slot busy": the index range is empty (as sem_wait says).
  if (s.semaphore_count() == 0) return semaphore_out_of_range("claiming a semaphore", preferred, s);
  return fail(SHMLINK_E_BUSY, "claiming a semaphore of stream '%s': all %d slots are held by live processes",
              s.name().c_str(), s.semaphore_count());
}

int shmlink_stream_sem_wait(const shmlink_stream_t* stream, int index, int64_t timeout_ns) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_wait", "stream");
  const auto& s = stream->stream;
  const auto st = s.sem_wait(index, to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::out_of_range)
    return semaphore_out_of_range("waiting on a semaphore", index, s);
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "waiting on semaphore %d of stream '%s': no post after %" PRId64 " ns", index,
                s.name().c_str(), timeout_ns);
  return status_fail(st, "waiting on a semaphore of", s);
}

int shmlink_stream_sem_flush(const shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_flush", "stream");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "flushing a semaphore of", s);
  // Checked here: Stream::sem_flush returns a count and has no error channel.
  if (index < -1 || index >= s.semaphore_count())
    return semaphore_out_of_range("flushing a semaphore", index, s);
  const int removed = s.sem_flush(index);
  if (removed >= 0) return removed;
  return fail(SHMLINK_E_SYSTEM, "flushing semaphore %d of stream '%s': sem_trywait failed", index, s.name().c_str());
}

int shmlink_stream_release_semaphore(shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_release_semaphore", "stream");
  auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "releasing a semaphore of", s);
  if (index < 0 || index >= s.semaphore_count())
    return semaphore_out_of_range("releasing a semaphore", index, s);
  s.release_semaphore(index);
  return SHMLINK_OK;
}

int shmlink_stream_sem_trywait(const shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_trywait", "stream");
  const auto& s = stream->stream;
  const auto st = s.sem_trywait(index);
  if (st.ok() || st.code() == Errc::would_block) return static_cast<int>(st.code());  // no data is not an error
  if (st.code() == Errc::out_of_range) return semaphore_out_of_range("trying a semaphore", index, s);
  return status_fail(st, "trying a semaphore of", s);
}

int shmlink_stream_sem_post(shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_post", "stream");
  auto& s = stream->stream;
  const auto st = s.sem_post(index);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::out_of_range) return semaphore_out_of_range("posting a semaphore", index, s);
  return status_fail(st, "posting a semaphore of", s);
}

int shmlink_stream_sem_value(const shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_value", "stream");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "reading a semaphore of", s);
  const int v = s.sem_value(index);
  if (v >= 0) return v;
  return semaphore_out_of_range("reading a semaphore", index, s);
}

// ---- keywords ---------------------------------------------------------------------------------

int shmlink_stream_set_keyword_int(shmlink_stream_t* stream, const char* name, int64_t value, const char* comment) {
  if (stream == nullptr) return null_arg("shmlink_stream_set_keyword_int", "stream");
  if (name == nullptr) return null_arg("shmlink_stream_set_keyword_int", "name");
  return set_keyword<0>(stream, name, value, comment);
}

int shmlink_stream_set_keyword_double(shmlink_stream_t* stream, const char* name, double value, const char* comment) {
  if (stream == nullptr) return null_arg("shmlink_stream_set_keyword_double", "stream");
  if (name == nullptr) return null_arg("shmlink_stream_set_keyword_double", "name");
  return set_keyword<1>(stream, name, value, comment);
}

int shmlink_stream_set_keyword_string(shmlink_stream_t* stream, const char* name, const char* value,
                                      const char* comment) {
  if (stream == nullptr) return null_arg("shmlink_stream_set_keyword_string", "stream");
  if (name == nullptr) return null_arg("shmlink_stream_set_keyword_string", "name");
  if (value == nullptr) return null_arg("shmlink_stream_set_keyword_string", "value");
  return set_keyword<2>(stream, name, value, comment);
}

int shmlink_stream_get_keyword(const shmlink_stream_t* stream, const char* name, shmlink_keyword_t* out) {
  if (stream == nullptr) return null_arg("shmlink_stream_get_keyword", "stream");
  if (name == nullptr) return null_arg("shmlink_stream_get_keyword", "name");
  if (out == nullptr) return null_arg("shmlink_stream_get_keyword", "out");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "reading a keyword of", s);
  return guarded("reading a keyword of stream", s.name().c_str(), [&] {
    // keywords() rather than keyword(): the C struct also carries the comment.
    for (const auto& kw : s.keywords()) {
      if (kw.name != name) continue;
      *out = shmlink_keyword_t{};
      copy_field(out->name, kw.name);
      copy_field(out->comment, kw.comment);
      if (const auto* i = std::get_if<std::int64_t>(&kw.value)) {
        out->type = SHMLINK_KW_INT;
        out->i = *i;
      } else if (const auto* d = std::get_if<double>(&kw.value)) {
        out->type = SHMLINK_KW_DOUBLE;
        out->d = *d;
      } else if (const auto* str = std::get_if<std::string>(&kw.value)) {
        out->type = SHMLINK_KW_STRING;
        copy_field(out->s, *str);
      }
      return SHMLINK_OK;
    }
    return fail(SHMLINK_E_NOT_FOUND, "stream '%s' has no keyword '%s'", s.name().c_str(), name);
  });
}
