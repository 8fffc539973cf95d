// SPDX-License-Identifier: MIT
// The C API (include/shmlink.h) over shmlink::Stream, shmlink::Queue and shmlink::Interface.
//
// Every entry point returns an int code equal to shmlink::Errc. Setup calls (create, open,
// remove, keywords) wrap the C++ call in `guarded()`, which turns exceptions into codes; hot-path
// calls (write, read, wait, semaphores) call noexcept C++ members and only format a message
// when the status is not ok. Messages go into a fixed thread-local buffer with vsnprintf, so
// reporting a failure never allocates and never throws (long paths are truncated at 1023 bytes).
#include <shmlink.h>

#include "capi/capi_internal.hpp"

#include <unistd.h>

#include <shmlink/error.hpp>
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstddef>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <span>
#include <string>
#include <utility>
#include <variant>

/// The opaque handle: owns one open stream. Closing the handle deletes it.
struct shmlink_stream {
  shmlink::Stream stream;
};

namespace {

using shmlink::Errc;

// The C constants are the C++ enumerators; pin them so neither side can drift.
static_assert(SHMLINK_OK == static_cast<int>(Errc::ok));
static_assert(SHMLINK_E_INVALID_ARGUMENT == static_cast<int>(Errc::invalid_argument));
static_assert(SHMLINK_E_NOT_FOUND == static_cast<int>(Errc::not_found));
static_assert(SHMLINK_E_EXISTS == static_cast<int>(Errc::exists));
static_assert(SHMLINK_E_PERMISSION == static_cast<int>(Errc::permission));
static_assert(SHMLINK_E_LAYOUT == static_cast<int>(Errc::layout));
static_assert(SHMLINK_E_NO_SPACE == static_cast<int>(Errc::no_space));
static_assert(SHMLINK_E_SYSTEM == static_cast<int>(Errc::system));
static_assert(SHMLINK_E_TIMEOUT == static_cast<int>(Errc::timeout));
static_assert(SHMLINK_E_INTERRUPTED == static_cast<int>(Errc::interrupted));
static_assert(SHMLINK_E_WOULD_BLOCK == static_cast<int>(Errc::would_block));
static_assert(SHMLINK_E_SIZE_MISMATCH == static_cast<int>(Errc::size_mismatch));
static_assert(SHMLINK_E_CLOSED == static_cast<int>(Errc::closed));
static_assert(SHMLINK_E_OUT_OF_RANGE == static_cast<int>(Errc::out_of_range));
static_assert(SHMLINK_E_NAME_TOO_LONG == static_cast<int>(Errc::name_too_long));
static_assert(SHMLINK_E_DTYPE_MISMATCH == static_cast<int>(Errc::dtype_mismatch));
static_assert(SHMLINK_E_BUSY == static_cast<int>(Errc::busy));
static_assert(SHMLINK_E_PEER_EXITED == static_cast<int>(Errc::peer_exited));
static_assert(SHMLINK_E_SHUT_DOWN == static_cast<int>(Errc::shut_down));
static_assert(SHMLINK_E_TORN == static_cast<int>(Errc::torn));
static_assert(SHMLINK_E_WRITER_ACTIVE == static_cast<int>(Errc::writer_active));
static_assert(SHMLINK_E_REPLACED == static_cast<int>(Errc::replaced));
static_assert(SHMLINK_E_OVERWRITTEN == static_cast<int>(Errc::overwritten));
static_assert(SHMLINK_E_INCOMPLETE == static_cast<int>(Errc::incomplete));
static_assert(SHMLINK_E_NOT_CONNECTED == static_cast<int>(Errc::not_connected));
static_assert(SHMLINK_E_PROTOCOL == static_cast<int>(Errc::protocol));
static_assert(SHMLINK_E_REFUSED == static_cast<int>(Errc::refused));

static_assert(SHMLINK_DTYPE_U8 == static_cast<int>(shmlink::Dtype::u8));
static_assert(SHMLINK_DTYPE_I8 == static_cast<int>(shmlink::Dtype::i8));
static_assert(SHMLINK_DTYPE_U16 == static_cast<int>(shmlink::Dtype::u16));
static_assert(SHMLINK_DTYPE_I16 == static_cast<int>(shmlink::Dtype::i16));
static_assert(SHMLINK_DTYPE_U32 == static_cast<int>(shmlink::Dtype::u32));
static_assert(SHMLINK_DTYPE_I32 == static_cast<int>(shmlink::Dtype::i32));
static_assert(SHMLINK_DTYPE_U64 == static_cast<int>(shmlink::Dtype::u64));
static_assert(SHMLINK_DTYPE_I64 == static_cast<int>(shmlink::Dtype::i64));
static_assert(SHMLINK_DTYPE_F32 == static_cast<int>(shmlink::Dtype::f32));
static_assert(SHMLINK_DTYPE_F64 == static_cast<int>(shmlink::Dtype::f64));
static_assert(SHMLINK_DTYPE_C64 == static_cast<int>(shmlink::Dtype::c64));
static_assert(SHMLINK_DTYPE_C128 == static_cast<int>(shmlink::Dtype::c128));
static_assert(SHMLINK_DTYPE_F16 == static_cast<int>(shmlink::Dtype::f16));

static_assert(SHMLINK_EXCLUSIVE_CREATE == static_cast<int>(shmlink::OpenMode::ExclusiveCreate));
static_assert(SHMLINK_PURGE_AND_CREATE == static_cast<int>(shmlink::OpenMode::PurgeAndCreate));
static_assert(SHMLINK_OPEN_OR_CREATE == static_cast<int>(shmlink::OpenMode::OpenOrCreate));
static_assert(SHMLINK_OPEN_EXISTING == static_cast<int>(shmlink::OpenMode::OpenExisting));

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

/// Negative timeouts wait forever (header convention).
std::chrono::nanoseconds to_timeout(std::int64_t ns) noexcept {
  return ns < 0 ? shmlink::kForever : std::chrono::nanoseconds(ns);
}

void to_c(const shmlink::FrameInfo& in, shmlink_frame_info_t* out) noexcept {
  out->cnt0 = in.cnt0;
  out->cnt1 = in.cnt1;
  out->cnt2 = in.cnt2;
  out->atime_ns = in.atime_ns;
  out->writetime_ns = in.writetime_ns;
}

/// Copies `src` into the fixed C field `dst`, truncating and always NUL-terminating.
template <std::size_t N>
void copy_field(char (&dst)[N], const std::string& src) noexcept {
  const std::size_t n = std::min(src.size(), N - 1);
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
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

// ---- the thread-local message (capi_internal.hpp) ------------------------------------------

namespace {
/// This thread's last failure message; zero-initialised, so "" before any failure.
thread_local char t_last_error[1024];
}  // namespace

int shmlink::capi::fail(int code, const char* fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
  va_end(ap);
  return code;
}

int shmlink::capi::null_arg(const char* function, const char* argument) noexcept {
  return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: %s is NULL", function, argument);
}

// ---- errors ---------------------------------------------------------------------------------

const char* shmlink_strerror(int code) {
  // shmlink::strerror returns "unknown error" for codes outside Errc; Errc's underlying type is
  // int, so every int is a valid value of it.
  return shmlink::strerror(static_cast<Errc>(code));
}

const char* shmlink_last_error(void) { return t_last_error; }

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

int shmlink_stream_create(const char* name, const shmlink_stream_spec_t* spec, int mode,
                          shmlink_stream_t** out) {
  if (out == nullptr) return null_arg("shmlink_stream_create", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_stream_create", "name");
  if (spec == nullptr) return null_arg("shmlink_stream_create", "spec");
  // naxis bounds the read of spec->shape, so it is checked here rather than by the core.
  if (spec->naxis < 1 || spec->naxis > 3)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "creating stream '%s': naxis is %" PRIu32 ", must be 1, 2 or 3", name,
                spec->naxis);
  if (!shmlink::dtype_valid(spec->dtype))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "creating stream '%s': dtype %u is not an ISIO datatype (1..13)", name,
                static_cast<unsigned>(spec->dtype));
  const auto m = static_cast<long long>(mode);
  if (m < SHMLINK_EXCLUSIVE_CREATE || m > SHMLINK_OPEN_EXISTING)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "creating stream '%s': open mode %lld is not a shmlink_open_mode_t",
                name, m);
  return guarded("creating stream", name, [&] {
    shmlink::StreamSpec cpp;
    cpp.shape.assign(spec->shape, spec->shape + spec->naxis);
    cpp.dtype = static_cast<shmlink::Dtype>(spec->dtype);
    cpp.keywords = spec->keywords;
    cpp.semaphores = spec->semaphores;
    cpp.imagetype = spec->imagetype;
    cpp.circular_buffer = spec->circular_buffer;
    cpp.permissions = static_cast<mode_t>(spec->permissions);
    if (spec->version != nullptr) cpp.version = spec->version;
    // The handle is allocated first so that an out-of-memory cannot strand a created file.
    auto handle = std::make_unique<shmlink_stream>();
    handle->stream = shmlink::Stream::create(name, cpp, static_cast<shmlink::OpenMode>(m));
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_stream_open(const char* name, shmlink_stream_t** out) {
  if (out == nullptr) return null_arg("shmlink_stream_open", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_stream_open", "name");
  return guarded("opening stream", name, [&] {
    auto handle = std::make_unique<shmlink_stream>();
    handle->stream = shmlink::Stream::open(name);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_stream_close(shmlink_stream_t* stream) {
  delete stream;  // ~Stream unmaps; the file stays. delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_stream_destroy(shmlink_stream_t* stream) {
  if (stream == nullptr) return null_arg("shmlink_stream_destroy", "stream");
  // The handle is released whatever happens to the file, so the caller never has to guess
  // whether it may still use it. The file is unlinked while the handle is still open (its
  // mapping stays valid), so the name used in messages outlives the call.
  std::unique_ptr<shmlink_stream> owned(stream);
  // Never unlink a file that is no longer ours: another process may have re-created the stream.
  if (owned->stream.valid() && owned->stream.replaced() && ::access(owned->stream.path().c_str(), F_OK) == 0)
    return fail(SHMLINK_E_REPLACED, "removing stream '%s': %s was re-created since it was opened; left as is",
                owned->stream.name().c_str(), owned->stream.path().c_str());
  return guarded("removing stream", owned->stream.name().c_str(), [&] {
    shmlink::Stream::remove(owned->stream.path());
    return SHMLINK_OK;
  });
}

int shmlink_stream_remove(const char* name) {
  if (name == nullptr) return null_arg("shmlink_stream_remove", "name");
  return guarded("removing stream", name, [&] {
    shmlink::Stream::remove(name);
    return SHMLINK_OK;
  });
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

// ==== sample queues ============================================================================

namespace {

using shmlink::QueueKind;
using shmlink::SignalType;
using shmlink::SignalValue;
using shmlink::WaitMode;

// The C constants and types are the C++ ones; pin them so neither side can drift.
static_assert(SHMLINK_SIGNAL_F64 == static_cast<int>(SignalType::f64));
static_assert(SHMLINK_SIGNAL_I64 == static_cast<int>(SignalType::i64));
static_assert(SHMLINK_SIGNAL_BOOL == static_cast<int>(SignalType::boolean));
static_assert(SHMLINK_SIGNAL_C64 == static_cast<int>(SignalType::c64));
static_assert(SHMLINK_QUEUE_SPSC == static_cast<int>(QueueKind::spsc));
static_assert(SHMLINK_QUEUE_MPMC == static_cast<int>(QueueKind::mpmc));
static_assert(SHMLINK_WAIT_POLLING == static_cast<int>(WaitMode::polling));
static_assert(SHMLINK_WAIT_FUTEX == static_cast<int>(WaitMode::futex));
static_assert(SHMLINK_WAIT_HYBRID == static_cast<int>(WaitMode::hybrid));
static_assert(SHMLINK_SAMPLE_HAS_TS_ORIGIN == shmlink::kSampleHasTsOrigin);
static_assert(SHMLINK_SAMPLE_HAS_TS_RECEIVED == shmlink::kSampleHasTsReceived);
static_assert(SHMLINK_SAMPLE_HAS_SEQUENCE == shmlink::kSampleHasSequence);
static_assert(SHMLINK_SAMPLE_HAS_DATA == shmlink::kSampleHasData);
static_assert(SHMLINK_SAMPLE_NEW_FRAME == shmlink::kSampleNewFrame);
static_assert(SHMLINK_SAMPLE_NEW_SIMULATION == shmlink::kSampleNewSimulation);
static_assert(SHMLINK_SIGNAL_NAME_MAX == shmlink::kMaxSignalName);
static_assert(SHMLINK_SIGNAL_UNIT_MAX == shmlink::kMaxSignalUnit);
static_assert(SHMLINK_MAX_SAMPLE_VALUES == shmlink::kMaxSampleValues);
static_assert(SHMLINK_MAX_QUEUE_CAPACITY == shmlink::kMaxQueueCapacity);
// Values are copied between the two unions with memcpy: same size, alignment and member places.
static_assert(sizeof(shmlink_value_t) == sizeof(SignalValue) && alignof(shmlink_value_t) == alignof(SignalValue));
static_assert(offsetof(shmlink_value_t, f) == offsetof(SignalValue, f) &&
              offsetof(shmlink_value_t, i) == offsetof(SignalValue, i) &&
              offsetof(shmlink_value_t, bits) == offsetof(SignalValue, bits) &&
              offsetof(shmlink_value_t, z) == offsetof(SignalValue, z));
static_assert(std::is_trivially_copyable_v<shmlink_value_t> && std::is_trivially_copyable_v<SignalValue>);
static_assert(sizeof(shmlink_signal_t{}.name) == shmlink::kMaxSignalName + 1);
static_assert(sizeof(shmlink_signal_t{}.unit) == shmlink::kMaxSignalUnit + 1);
// The C ABI of the queue and interface structs (see the stream structs above).
static_assert(sizeof(shmlink_value_t) == 8 && alignof(shmlink_value_t) == 8);
static_assert(offsetof(shmlink_value_t, f) == 0 && offsetof(shmlink_value_t, i) == 0 &&
              offsetof(shmlink_value_t, bits) == 0 && offsetof(shmlink_value_t, z) == 0);
static_assert(sizeof(shmlink_signal_t) == 64 && alignof(shmlink_signal_t) == 4);
static_assert(offsetof(shmlink_signal_t, index) == 0 && offsetof(shmlink_signal_t, name) == 4 &&
              offsetof(shmlink_signal_t, type) == 44 && offsetof(shmlink_signal_t, unit) == 45);
static_assert(sizeof(shmlink_sample_t) == 48 && alignof(shmlink_sample_t) == 8);
static_assert(offsetof(shmlink_sample_t, sequence) == 0 && offsetof(shmlink_sample_t, ts_origin_ns) == 8 &&
              offsetof(shmlink_sample_t, ts_received_ns) == 16 && offsetof(shmlink_sample_t, flags) == 24 &&
              offsetof(shmlink_sample_t, length) == 28 && offsetof(shmlink_sample_t, capacity) == 32 &&
              offsetof(shmlink_sample_t, values) == 40);
static_assert(sizeof(shmlink_queue_spec_t) == 32 && alignof(shmlink_queue_spec_t) == 8);
static_assert(offsetof(shmlink_queue_spec_t, capacity) == 0 && offsetof(shmlink_queue_spec_t, max_values) == 4 &&
              offsetof(shmlink_queue_spec_t, kind) == 8 && offsetof(shmlink_queue_spec_t, wait) == 9 &&
              offsetof(shmlink_queue_spec_t, permissions) == 12 && offsetof(shmlink_queue_spec_t, signals) == 16 &&
              offsetof(shmlink_queue_spec_t, signal_count) == 24);
static_assert(sizeof(shmlink_queue_expect_t) == 24 && alignof(shmlink_queue_expect_t) == 8);
static_assert(offsetof(shmlink_queue_expect_t, max_values) == 0 && offsetof(shmlink_queue_expect_t, kind) == 4 &&
              offsetof(shmlink_queue_expect_t, signals) == 8 &&
              offsetof(shmlink_queue_expect_t, signal_count) == 16 &&
              offsetof(shmlink_queue_expect_t, read_only) == 20);
static_assert(sizeof(shmlink_queue_info_t) == 64 && alignof(shmlink_queue_info_t) == 8);
static_assert(offsetof(shmlink_queue_info_t, version) == 0 && offsetof(shmlink_queue_info_t, kind) == 4 &&
              offsetof(shmlink_queue_info_t, wait) == 5 && offsetof(shmlink_queue_info_t, capacity) == 8 &&
              offsetof(shmlink_queue_info_t, max_values) == 12 &&
              offsetof(shmlink_queue_info_t, signal_count) == 16 &&
              offsetof(shmlink_queue_info_t, cell_bytes) == 20 && offsetof(shmlink_queue_info_t, file_bytes) == 24 &&
              offsetof(shmlink_queue_info_t, pushed) == 32 && offsetof(shmlink_queue_info_t, popped) == 40 &&
              offsetof(shmlink_queue_info_t, closed) == 48 && offsetof(shmlink_queue_info_t, creator_pid) == 52 &&
              offsetof(shmlink_queue_info_t, creation_time_ns) == 56);
static_assert(sizeof(shmlink_interface_spec_t) == 72 && alignof(shmlink_interface_spec_t) == 8);
static_assert(offsetof(shmlink_interface_spec_t, out) == 0 && offsetof(shmlink_interface_spec_t, in) == 8 &&
              offsetof(shmlink_interface_spec_t, capacity) == 16 &&
              offsetof(shmlink_interface_spec_t, max_values) == 20 &&
              offsetof(shmlink_interface_spec_t, kind) == 24 && offsetof(shmlink_interface_spec_t, wait) == 25 &&
              offsetof(shmlink_interface_spec_t, protocol) == 26 &&
              offsetof(shmlink_interface_spec_t, attach_timeout_ns) == 32 &&
              offsetof(shmlink_interface_spec_t, liveness_interval_ns) == 40 &&
              offsetof(shmlink_interface_spec_t, stop_timeout_ns) == 48 &&
              offsetof(shmlink_interface_spec_t, permissions) == 56 &&
              offsetof(shmlink_interface_spec_t, exec) == 64);
static_assert(sizeof(shmlink_peer_status_t) == 24 && alignof(shmlink_peer_status_t) == 4);
static_assert(offsetof(shmlink_peer_status_t, pid) == 0 && offsetof(shmlink_peer_status_t, launched) == 4 &&
              offsetof(shmlink_peer_status_t, exited) == 8 && offsetof(shmlink_peer_status_t, exit_code) == 12 &&
              offsetof(shmlink_peer_status_t, term_signal) == 16 && offsetof(shmlink_peer_status_t, closed) == 20);

bool kind_valid(unsigned k) noexcept { return k == SHMLINK_QUEUE_SPSC || k == SHMLINK_QUEUE_MPMC; }
bool wait_valid(unsigned w) noexcept { return w >= SHMLINK_WAIT_POLLING && w <= SHMLINK_WAIT_HYBRID; }
static_assert(SHMLINK_PROTOCOL_SHMLINK == static_cast<int>(shmlink::InterfaceProtocol::shmlink));
static_assert(SHMLINK_PROTOCOL_VILLAS == static_cast<int>(shmlink::InterfaceProtocol::villas));
bool protocol_valid(unsigned p) noexcept { return p == SHMLINK_PROTOCOL_SHMLINK || p == SHMLINK_PROTOCOL_VILLAS; }
bool signal_type_valid(long long t) noexcept { return t >= SHMLINK_SIGNAL_F64 && t <= SHMLINK_SIGNAL_C64; }

/// Converts a C signal table. Checks what C adds (NULL pointers, strings that lack their NUL,
/// absurd counts); the core checks the rest (indices, types, duplicates) and names the file.
int to_cpp_signals(const shmlink_signal_t* signals, std::uint32_t count, const char* action, const char* name,
                   std::vector<shmlink::Signal>& out) {
  if (count == 0) return SHMLINK_OK;
  if (signals == nullptr)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signals is NULL but signal_count is %" PRIu32, action, name,
                count);
  if (count > shmlink::kMaxSampleValues)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signal_count %" PRIu32 " exceeds %" PRIu32, action, name,
                count, shmlink::kMaxSampleValues);
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const shmlink_signal_t& c = signals[i];
    const std::size_t nlen = ::strnlen(c.name, sizeof c.name);
    const std::size_t ulen = ::strnlen(c.unit, sizeof c.unit);
    if (nlen == sizeof c.name)
      return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signal %" PRIu32 " (index %" PRIu32
                  "): name is not NUL-terminated within %zu bytes", action, name, i, c.index, sizeof c.name);
    if (ulen == sizeof c.unit)
      return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signal %" PRIu32 " (index %" PRIu32
                  "): unit is not NUL-terminated within %zu bytes", action, name, i, c.index, sizeof c.unit);
    out.push_back(shmlink::Signal{c.index, std::string(c.name, nlen), static_cast<SignalType>(c.type),
                                  std::string(c.unit, ulen)});
  }
  return SHMLINK_OK;
}

void to_c(const shmlink::Signal& in, shmlink_signal_t* out) noexcept {
  *out = shmlink_signal_t{};
  out->index = in.index;
  copy_field(out->name, in.name);
  out->type = static_cast<std::uint8_t>(in.type);
  copy_field(out->unit, in.unit);
}

void to_c(const shmlink::QueueInfo& in, shmlink_queue_info_t* out) noexcept {
  *out = shmlink_queue_info_t{};
  out->version = in.version;
  out->kind = static_cast<std::uint8_t>(in.kind);
  out->wait = static_cast<std::uint8_t>(in.wait);
  out->capacity = in.capacity;
  out->max_values = in.max_values;
  out->signal_count = static_cast<std::uint32_t>(in.signals.size());
  out->cell_bytes = in.cell_bytes;
  out->file_bytes = in.file_bytes;
  out->pushed = in.pushed;
  out->popped = in.popped;
  out->closed = in.closed ? 1 : 0;
  out->creator_pid = in.creator_pid;
  out->creation_time_ns = in.creation_time_ns;
}

/// Checks a sample to push: "shmlink_queue_push: sample is NULL".
int check_push_sample(const char* function, const shmlink_sample_t* s) noexcept {
  if (s == nullptr) return null_arg(function, "sample");
  if (s->values == nullptr && s->length != 0)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: sample values is NULL but its length is %" PRIu32, function,
                s->length);
  return SHMLINK_OK;
}

/// Checks a sample to pop into.
int check_pop_sample(const char* function, const shmlink_sample_t* s) noexcept {
  if (s == nullptr) return null_arg(function, "out");
  if (s->values == nullptr && s->capacity != 0)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: out values is NULL but its capacity is %" PRIu32, function,
                s->capacity);
  return SHMLINK_OK;
}

/// Copies a C sample into `dst`, whose values vector has capacity for `max_values` values and
/// `c.length <= max_values` was checked: no allocation.
void from_c(const shmlink_sample_t& c, shmlink::Sample& dst) noexcept {
  dst.sequence = c.sequence;
  dst.ts_origin_ns = c.ts_origin_ns;
  dst.ts_received_ns = c.ts_received_ns;
  dst.flags = c.flags;
  dst.values.resize(c.length);
  if (c.length != 0) std::memcpy(dst.values.data(), c.values, std::size_t{c.length} * sizeof(SignalValue));
}

/// Copies a popped sample out: at most `capacity` values, `length` the real length.
void to_c(const shmlink::Sample& src, shmlink_sample_t* out) noexcept {
  out->sequence = src.sequence;
  out->ts_origin_ns = src.ts_origin_ns;
  out->ts_received_ns = src.ts_received_ns;
  out->flags = src.flags;
  const auto length = static_cast<std::uint32_t>(src.values.size());
  const std::uint32_t n = std::min(length, out->capacity);
  if (n != 0) std::memcpy(out->values, src.values.data(), std::size_t{n} * sizeof(SignalValue));
  out->length = length;
}

}  // namespace

/// The opaque queue handle. Each direction has its own run of scratch samples (burst_chunk() of
/// them, each reserved to max_values at open, so that pushes and pops never allocate); single
/// pushes and pops use the first. On separate cache lines, as a pushing and a popping thread
/// write them concurrently.
struct shmlink_queue {
  shmlink::Queue queue;
  bool read_only = false;
  alignas(64) std::vector<shmlink::Sample> push_run;  // the pushing thread's
  alignas(64) std::vector<shmlink::Sample> pop_run;   // the popping thread's
};

namespace {

/// Message for a non-ok queue status: "pushing to queue 'q': timed out".
int status_fail(shmlink::Status st, const char* action, const shmlink::Queue& q) noexcept {
  return fail(static_cast<int>(st.code()), "%s queue '%s': %s", action, q.name().c_str(), st.message());
}

/// Samples a C burst hands to the core per call: up to 32 (the bench's and DPDK's usual burst),
/// fewer for long samples so that a handle's scratch stays within 128 KiB per direction.
std::size_t burst_chunk(std::uint32_t max_values) noexcept {
  return std::clamp<std::size_t>(std::size_t{16384} / std::max<std::uint32_t>(max_values, 1), 1, 32);
}

/// `n` scratch samples with room for `max_values` values each.
void reserve_run(std::vector<shmlink::Sample>& run, std::size_t n, std::uint32_t max_values) {
  run.resize(n);
  for (shmlink::Sample& s : run) s.values.reserve(max_values);
}

/// Wraps a freshly opened queue into a handle (reserving the scratch samples).
void adopt(std::unique_ptr<shmlink_queue>& handle, shmlink::Queue q, bool read_only) {
  reserve_run(handle->push_run, burst_chunk(q.max_values()), q.max_values());
  reserve_run(handle->pop_run, burst_chunk(q.max_values()), q.max_values());
  handle->queue = std::move(q);
  handle->read_only = read_only;
}

/// Checks a sample to push into `q`, and that its values fit a cell (before any copy: the
/// scratch samples hold max_values values).
int check_push_fits(const char* function, const shmlink_sample_t* s, const shmlink::Queue& q) noexcept {
  if (const int rc = check_push_sample(function, s); rc != SHMLINK_OK) return rc;
  if (s->length > q.max_values())
    return fail(SHMLINK_E_SIZE_MISMATCH, "pushing to queue '%s': sample has %" PRIu32 " values, at most %" PRIu32
                " allowed", q.name().c_str(), s->length, q.max_values());
  return SHMLINK_OK;
}

/// The C result of a push status (`timeout_ns`: the wait, for the message).
int push_result(shmlink::Status st, const shmlink::Queue& q, std::int64_t timeout_ns) noexcept {
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no room is not an error
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "pushing to queue '%s': still full after %" PRId64 " ns", q.name().c_str(),
                timeout_ns);
  if (st.code() == Errc::shut_down)
    return fail(SHMLINK_E_SHUT_DOWN, "pushing to queue '%s': the queue was shut down", q.name().c_str());
  if (st.code() == Errc::permission)
    return fail(SHMLINK_E_PERMISSION, "pushing to queue '%s': the handle was opened read-only", q.name().c_str());
  return status_fail(st, "pushing to", q);
}

/// A push of `s` (checked here) through the handle's push scratch: waiting up to `timeout_ns`
/// when `blocking`, else one try.
int queue_push(shmlink_queue_t* h, const shmlink_sample_t* s, const char* function, bool blocking,
               std::int64_t timeout_ns) noexcept {
  if (h == nullptr) return null_arg(function, "queue");
  auto& q = h->queue;
  if (const int rc = check_push_fits(function, s, q); rc != SHMLINK_OK) return rc;
  shmlink::Sample& one = h->push_run.front();
  from_c(*s, one);
  return push_result(blocking ? q.push(one, to_timeout(timeout_ns)) : q.try_push(one), q, timeout_ns);
}

/// The C result of a pop status (`timeout_ns`: the wait, for the message).
int pop_result(shmlink::Status st, const shmlink::Queue& q, std::int64_t timeout_ns) noexcept {
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no data is not an error
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "popping from queue '%s': still empty after %" PRId64 " ns", q.name().c_str(),
                timeout_ns);
  if (st.code() == Errc::shut_down)
    return fail(SHMLINK_E_SHUT_DOWN, "popping from queue '%s': the queue was shut down and is drained",
                q.name().c_str());
  if (st.code() == Errc::permission)
    return fail(SHMLINK_E_PERMISSION, "popping from queue '%s': the handle was opened read-only", q.name().c_str());
  return status_fail(st, "popping from", q);
}

/// A pop through the handle's pop scratch, copied out to `out` (checked first, so that a bad
/// buffer never costs a sample): waiting up to `timeout_ns` when `blocking`, else one try.
int queue_pop(shmlink_queue_t* h, shmlink_sample_t* out, const char* function, bool blocking,
              std::int64_t timeout_ns) noexcept {
  if (h == nullptr) return null_arg(function, "queue");
  if (const int rc = check_pop_sample(function, out); rc != SHMLINK_OK) return rc;
  auto& q = h->queue;
  shmlink::Sample& one = h->pop_run.front();
  const auto st = blocking ? q.pop(one, to_timeout(timeout_ns)) : q.try_pop(one);
  if (st.ok()) to_c(one, out);
  return pop_result(st, q, timeout_ns);
}

/// Clamps a burst count so that it can be returned as an int.
std::size_t burst_limit(std::size_t count) noexcept { return std::min<std::size_t>(count, INT_MAX); }

}  // namespace

void shmlink_queue_spec_init(shmlink_queue_spec_t* spec) {
  if (spec == nullptr) return;
  const shmlink::QueueSpec defaults;  // one source of truth for the defaults
  *spec = shmlink_queue_spec_t{};
  spec->capacity = defaults.capacity;
  spec->max_values = defaults.max_values;
  spec->kind = static_cast<std::uint8_t>(defaults.kind);
  spec->wait = static_cast<std::uint8_t>(defaults.wait);
  spec->permissions = static_cast<std::uint32_t>(defaults.permissions);
  spec->signals = nullptr;
  spec->signal_count = 0;
}

void shmlink_queue_expect_init(shmlink_queue_expect_t* expect) {
  if (expect == nullptr) return;
  *expect = shmlink_queue_expect_t{};
}

int shmlink_queue_create(const char* name, const shmlink_queue_spec_t* spec, int mode, shmlink_queue_t** out) {
  if (out == nullptr) return null_arg("shmlink_queue_create", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_queue_create", "name");
  if (spec == nullptr) return null_arg("shmlink_queue_create", "spec");
  const auto m = static_cast<long long>(mode);
  if (m < SHMLINK_EXCLUSIVE_CREATE || m > SHMLINK_OPEN_EXISTING)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "creating queue '%s': open mode %lld is not a shmlink_open_mode_t", name,
                m);
  return guarded("creating queue", name, [&] {
    shmlink::QueueSpec cpp;
    cpp.capacity = spec->capacity;
    cpp.max_values = spec->max_values;
    cpp.kind = static_cast<QueueKind>(spec->kind);  // the core rejects values outside the enum
    cpp.wait = static_cast<WaitMode>(spec->wait);
    cpp.permissions = static_cast<mode_t>(spec->permissions);
    if (const int rc = to_cpp_signals(spec->signals, spec->signal_count, "creating queue", name, cpp.signals);
        rc != SHMLINK_OK)
      return rc;
    // The handle and its scratch samples are allocated first so that an out-of-memory cannot
    // strand a created file (adopt() then only reserves more when an existing queue was opened).
    auto handle = std::make_unique<shmlink_queue>();
    const std::uint32_t room = std::min(cpp.max_values, shmlink::kMaxSampleValues);
    reserve_run(handle->push_run, burst_chunk(room), room);
    reserve_run(handle->pop_run, burst_chunk(room), room);
    adopt(handle, shmlink::Queue::create(name, cpp, static_cast<shmlink::OpenMode>(m)), false);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_queue_open(const char* name, const shmlink_queue_expect_t* expect, shmlink_queue_t** out) {
  if (out == nullptr) return null_arg("shmlink_queue_open", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_queue_open", "name");
  if (expect != nullptr && expect->kind != 0 && !kind_valid(expect->kind))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "opening queue '%s': expected kind %u is not 0, SPSC (1) or MPMC (2)",
                name, static_cast<unsigned>(expect->kind));
  return guarded("opening queue", name, [&] {
    shmlink::QueueExpect cpp;
    if (expect != nullptr) {
      if (expect->max_values != 0) cpp.max_values = expect->max_values;
      if (expect->kind != 0) cpp.kind = static_cast<QueueKind>(expect->kind);
      if (expect->signals != nullptr) {
        std::vector<shmlink::Signal> table;
        if (const int rc = to_cpp_signals(expect->signals, expect->signal_count, "opening queue", name, table);
            rc != SHMLINK_OK)
          return rc;
        cpp.signals = std::move(table);
      }
      cpp.writable = expect->read_only == 0;
    }
    auto handle = std::make_unique<shmlink_queue>();
    const bool read_only = !cpp.writable;
    shmlink::Queue q = shmlink::Queue::open(name, cpp);
    adopt(handle, std::move(q), read_only);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_queue_close(shmlink_queue_t* queue) {
  delete queue;  // ~Queue unmaps; the file stays. delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_queue_remove(const char* name) {
  if (name == nullptr) return null_arg("shmlink_queue_remove", "name");
  return guarded("removing queue", name, [&] {
    shmlink::Queue::remove(name);
    return SHMLINK_OK;
  });
}

int shmlink_queue_try_push(shmlink_queue_t* queue, const shmlink_sample_t* sample) {
  return queue_push(queue, sample, "shmlink_queue_try_push", false, 0);
}

int shmlink_queue_push(shmlink_queue_t* queue, const shmlink_sample_t* sample, int64_t timeout_ns) {
  return queue_push(queue, sample, "shmlink_queue_push", true, timeout_ns);
}

int shmlink_queue_try_push_burst(shmlink_queue_t* queue, const shmlink_sample_t* samples, size_t count) {
  constexpr const char* kFn = "shmlink_queue_try_push_burst";
  if (queue == nullptr) return null_arg(kFn, "queue");
  if (samples == nullptr && count != 0) return null_arg(kFn, "samples");
  auto& q = queue->queue;
  std::vector<shmlink::Sample>& run = queue->push_run;
  const std::size_t n = burst_limit(count);
  std::size_t done = 0;
  // Chunks of the scratch run, each one core burst (one wake-up check): the samples up to the
  // first bad one are copied in and pushed; the bad one is reported once it comes first.
  while (done < n) {
    const std::size_t want = std::min(run.size(), n - done);
    std::size_t ready = 0;
    int bad = SHMLINK_OK;
    for (; ready < want; ++ready) {
      if ((bad = check_push_fits(kFn, &samples[done + ready], q)) != SHMLINK_OK) break;
      from_c(samples[done + ready], run[ready]);
    }
    std::size_t pushed = 0;
    shmlink::Status st = Errc::ok;
    if (ready != 0) st = q.try_push_burst(std::span<const shmlink::Sample>(run.data(), ready), pushed);
    done += pushed;
    if (pushed < ready) return done > 0 ? static_cast<int>(done) : push_result(st, q, 0);
    if (bad != SHMLINK_OK) return done > 0 ? static_cast<int>(done) : bad;
  }
  return static_cast<int>(done);
}

int shmlink_queue_try_pop(shmlink_queue_t* queue, shmlink_sample_t* out) {
  return queue_pop(queue, out, "shmlink_queue_try_pop", false, 0);
}

int shmlink_queue_pop(shmlink_queue_t* queue, shmlink_sample_t* out, int64_t timeout_ns) {
  return queue_pop(queue, out, "shmlink_queue_pop", true, timeout_ns);
}

int shmlink_queue_try_pop_burst(shmlink_queue_t* queue, shmlink_sample_t* out, size_t count) {
  if (queue == nullptr) return null_arg("shmlink_queue_try_pop_burst", "queue");
  if (out == nullptr && count != 0) return null_arg("shmlink_queue_try_pop_burst", "out");
  const std::size_t n = burst_limit(count);
  for (std::size_t i = 0; i < n; ++i)  // all checked first: a bad entry must not lose a sample
    if (const int rc = check_pop_sample("shmlink_queue_try_pop_burst", &out[i]); rc != SHMLINK_OK) return rc;
  auto& q = queue->queue;
  std::vector<shmlink::Sample>& run = queue->pop_run;
  std::size_t done = 0;
  while (done < n) {  // chunks of the scratch run, each one core burst (one wake-up check)
    const std::size_t want = std::min(run.size(), n - done);
    std::size_t popped = 0;
    const shmlink::Status st = q.try_pop_burst(std::span<shmlink::Sample>(run.data(), want), popped);
    for (std::size_t i = 0; i < popped; ++i) to_c(run[i], &out[done + i]);
    done += popped;
    if (popped < want) return done > 0 ? static_cast<int>(done) : pop_result(st, q, 0);
  }
  return static_cast<int>(done);
}

int shmlink_queue_shutdown(shmlink_queue_t* queue) {
  if (queue == nullptr) return null_arg("shmlink_queue_shutdown", "queue");
  if (queue->read_only)  // Queue::shutdown() would silently do nothing
    return fail(SHMLINK_E_PERMISSION, "shutting down queue '%s': the handle was opened read-only",
                queue->queue.name().c_str());
  queue->queue.shutdown();
  return SHMLINK_OK;
}

int shmlink_queue_is_shut(const shmlink_queue_t* queue) {
  if (queue == nullptr) return null_arg("shmlink_queue_is_shut", "queue");
  return queue->queue.is_shut() ? 1 : 0;
}

uint64_t shmlink_queue_size_approx(const shmlink_queue_t* queue) {
  return queue != nullptr ? queue->queue.size() : 0;
}

int shmlink_queue_set_wait(shmlink_queue_t* queue, int wait) {
  if (queue == nullptr) return null_arg("shmlink_queue_set_wait", "queue");
  if (wait < SHMLINK_WAIT_POLLING || wait > SHMLINK_WAIT_HYBRID)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "setting the wait mode of queue '%s': %d is not a SHMLINK_WAIT_* mode",
                queue->queue.name().c_str(), wait);
  queue->queue.set_wait_mode(static_cast<WaitMode>(wait));
  return SHMLINK_OK;
}

int shmlink_queue_info(const shmlink_queue_t* queue, shmlink_queue_info_t* out) {
  if (queue == nullptr) return null_arg("shmlink_queue_info", "queue");
  if (out == nullptr) return null_arg("shmlink_queue_info", "out");
  return guarded("reading the header of queue", queue->queue.name().c_str(), [&] {
    to_c(queue->queue.info(), out);
    return SHMLINK_OK;
  });
}

const char* shmlink_queue_name(const shmlink_queue_t* queue) {
  return queue != nullptr ? queue->queue.name().c_str() : "";
}

const char* shmlink_queue_path(const shmlink_queue_t* queue) {
  return queue != nullptr ? queue->queue.path().c_str() : "";
}

int shmlink_queue_signal_count(const shmlink_queue_t* queue) {
  if (queue == nullptr) return null_arg("shmlink_queue_signal_count", "queue");
  return static_cast<int>(queue->queue.signals().size());  // at most kMaxSampleValues
}

int shmlink_queue_signal(const shmlink_queue_t* queue, uint32_t position, shmlink_signal_t* out) {
  if (queue == nullptr) return null_arg("shmlink_queue_signal", "queue");
  if (out == nullptr) return null_arg("shmlink_queue_signal", "out");
  const auto& table = queue->queue.signals();
  if (position >= table.size())
    return fail(SHMLINK_E_OUT_OF_RANGE, "reading signal %" PRIu32 " of queue '%s': the table has %zu entries",
                position, queue->queue.name().c_str(), table.size());
  to_c(table[position], out);
  return SHMLINK_OK;
}

// ==== the duplex co-simulation interface ========================================================

/// The opaque interface handle. The writing and the reading thread each have their own scratch
/// sample (reserved at open: write and read never allocate), on separate cache lines.
struct shmlink_interface {
  shmlink::Interface iface;
  alignas(64) shmlink::Sample write_scratch;  // the writing thread's
  alignas(64) shmlink::Sample read_scratch;   // the reading thread's
};

namespace {

/// "interface (out 'a2b', in 'b2a')" without allocating, for hot-path messages.
struct IfaceLabel {
  const char* out;
  const char* in;
};
IfaceLabel label_of(const shmlink::Interface& i) noexcept {
  return {i.spec().out.c_str(), i.spec().in.c_str()};
}

/// Describes the peer into `buf` without allocating (hot-path failures), as PeerStatus::describe.
void describe_peer(const shmlink::PeerStatus& p, char* buf, std::size_t size) noexcept {
  char who[160];
  if (p.command.empty()) std::snprintf(who, sizeof who, "peer");
  else std::snprintf(who, sizeof who, "peer '%s'", p.command.c_str());
  char pid[32] = "";
  if (p.pid > 0) std::snprintf(pid, sizeof pid, " (pid %d)", static_cast<int>(p.pid));
  if (p.term_signal != 0) std::snprintf(buf, size, "%s%s was killed by signal %d", who, pid, p.term_signal);
  else if (p.exit_code >= 0) std::snprintf(buf, size, "%s%s exited with status %d", who, pid, p.exit_code);
  else if (p.exited) std::snprintf(buf, size, "%s%s is gone (it ended without closing the interface)", who, pid);
  else if (p.closed) std::snprintf(buf, size, "%s%s closed the interface", who, pid);
  else std::snprintf(buf, size, "%s%s is not attached", who, pid);
}

/// Message for a non-ok interface status.
int status_fail(shmlink::Status st, const char* action, const shmlink::Interface& i, std::int64_t timeout_ns) noexcept {
  const IfaceLabel l = label_of(i);
  switch (st.code()) {
    case Errc::peer_exited: {
      char peer[256];
      describe_peer(i.peer(), peer, sizeof peer);
      return fail(SHMLINK_E_PEER_EXITED, "%s interface (out '%s', in '%s'): %s", action, l.out, l.in, peer);
    }
    case Errc::timeout:
      return fail(SHMLINK_E_TIMEOUT, "%s interface (out '%s', in '%s'): nothing moved within %" PRId64 " ns", action,
                  l.out, l.in, timeout_ns);
    case Errc::closed:
      return fail(SHMLINK_E_CLOSED, "%s interface (out '%s', in '%s'): the interface is not open", action, l.out,
                  l.in);
    case Errc::shut_down:
      return fail(SHMLINK_E_SHUT_DOWN, "%s interface (out '%s', in '%s'): the peer closed the interface", action,
                  l.out, l.in);
    default:
      return fail(static_cast<int>(st.code()), "%s interface (out '%s', in '%s'): %s", action, l.out, l.in,
                  st.message());
  }
}

/// A write of more values than the output queue takes (checked before the scratch is filled).
int too_many_values(shmlink::Interface& i, std::uint32_t count) noexcept {
  return fail(SHMLINK_E_SIZE_MISMATCH, "writing to interface (out '%s', in '%s'): %" PRIu32 " values, at most %" PRIu32
              " allowed", label_of(i).out, label_of(i).in, count, i.out_max_values());
}

/// The label for messages of setup calls that may allocate.
std::string label_string(const shmlink_interface_t* h) {
  const auto& s = h->iface.spec();
  return "interface (out '" + s.out + "', in '" + s.in + "')";
}

int register_signal(shmlink_interface_t* iface, const char* function, bool is_export, uint32_t index,
                    const char* name, int type, const char* unit) noexcept {
  if (iface == nullptr) return null_arg(function, "iface");
  if (!signal_type_valid(type))  // checked here: an int outside uint8_t must not wrap into range
    return fail(SHMLINK_E_INVALID_ARGUMENT,
                "%s: signal %" PRIu32 " of interface (out '%s', in '%s'): type %d is not a SHMLINK_SIGNAL_* value",
                function, index, label_of(iface->iface).out, label_of(iface->iface).in, type);
  const std::string_view n = name != nullptr ? name : "";
  const std::string_view u = unit != nullptr ? unit : "";
  return guarded(is_export ? "exporting a signal of" : "importing a signal of", label_of(iface->iface).out, [&] {
    try {
      if (is_export) iface->iface.export_signal(index, n, static_cast<SignalType>(type), u);
      else iface->iface.import_signal(index, n, static_cast<SignalType>(type), u);
    } catch (const shmlink::Error& e) {
      // The core's messages name the signal ("export 3: ..."); add which interface.
      const int code = static_cast<int>(e.errc()) < 0 ? static_cast<int>(e.errc()) : SHMLINK_E_SYSTEM;
      if (std::strncmp(e.what(), "interface (", 11) == 0) return fail(code, "%s", e.what());  // named already
      return fail(code, "%s: %s", label_string(iface).c_str(), e.what());
    }
    return SHMLINK_OK;
  });
}

int iface_info(const shmlink_interface_t* iface, shmlink_queue_info_t* out, bool in, const char* function) noexcept {
  if (iface == nullptr) return null_arg(function, "iface");
  if (out == nullptr) return null_arg(function, "out");
  auto& i = const_cast<shmlink::Interface&>(iface->iface);  // out_queue()/in_queue() are not const
  if (!i.is_open())
    return fail(SHMLINK_E_CLOSED, "%s: interface (out '%s', in '%s') is not open", function, label_of(i).out,
                label_of(i).in);
  if (i.spec().protocol == shmlink::InterfaceProtocol::villas) {  // no queue file: what is known
    *out = shmlink_queue_info_t{};
    out->kind = SHMLINK_QUEUE_MPMC;
    out->wait = static_cast<std::uint8_t>(i.spec().wait);
    out->capacity = i.spec().capacity;
    if (in) {  // the peer's region: its queuelen, and its mode (pthread: what HYBRID makes here)
      const auto peer = i.villas_peer_region();
      out->capacity = peer.queuelen;
      out->wait = peer.pthread_mode ? SHMLINK_WAIT_HYBRID : SHMLINK_WAIT_POLLING;
    }
    out->max_values = in ? i.in_max_values() : i.out_max_values();
    return SHMLINK_OK;
  }
  return guarded("reading the queue header of interface", label_of(i).out, [&] {
    to_c((in ? i.in_queue() : i.out_queue()).info(), out);
    return SHMLINK_OK;
  });
}

}  // namespace

void shmlink_interface_spec_init(shmlink_interface_spec_t* spec) {
  if (spec == nullptr) return;
  const shmlink::InterfaceSpec defaults;  // one source of truth for the defaults
  *spec = shmlink_interface_spec_t{};
  spec->out = nullptr;
  spec->in = nullptr;
  spec->capacity = defaults.capacity;
  spec->max_values = defaults.max_values;
  spec->kind = static_cast<std::uint8_t>(defaults.kind);
  spec->wait = static_cast<std::uint8_t>(defaults.wait);
  spec->protocol = static_cast<std::uint8_t>(defaults.protocol);
  spec->attach_timeout_ns = defaults.attach_timeout.count();
  spec->liveness_interval_ns = defaults.liveness_interval.count();
  spec->stop_timeout_ns = defaults.stop_timeout.count();
  spec->permissions = static_cast<std::uint32_t>(defaults.permissions);
  spec->exec = nullptr;
}

int shmlink_interface_new(const shmlink_interface_spec_t* spec, shmlink_interface_t** out) {
  if (out == nullptr) return null_arg("shmlink_interface_new", "out");
  *out = nullptr;
  if (spec == nullptr) return null_arg("shmlink_interface_new", "spec");
  if (spec->out == nullptr) return null_arg("shmlink_interface_new", "spec->out");
  if (spec->in == nullptr) return null_arg("shmlink_interface_new", "spec->in");
  if (!kind_valid(spec->kind))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): kind %u is not SPSC (1) or MPMC (2)",
                spec->out, spec->in, static_cast<unsigned>(spec->kind));
  if (!wait_valid(spec->wait))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): wait mode %u is not 1..3", spec->out,
                spec->in, static_cast<unsigned>(spec->wait));
  if (!protocol_valid(spec->protocol))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): protocol %u is not SHMLINK (0) or VILLAS (1)",
                spec->out, spec->in, static_cast<unsigned>(spec->protocol));
  if (spec->liveness_interval_ns < 0)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): liveness_interval_ns %" PRId64
                " is negative", spec->out, spec->in, spec->liveness_interval_ns);
  return guarded("setting up interface", spec->out, [&] {
    shmlink::InterfaceSpec cpp;
    cpp.out = spec->out;
    cpp.in = spec->in;
    cpp.capacity = spec->capacity;
    cpp.max_values = spec->max_values;
    cpp.kind = static_cast<QueueKind>(spec->kind);
    cpp.wait = static_cast<WaitMode>(spec->wait);
    cpp.protocol = static_cast<shmlink::InterfaceProtocol>(spec->protocol);
    cpp.attach_timeout = to_timeout(spec->attach_timeout_ns);
    cpp.liveness_interval = std::chrono::nanoseconds(spec->liveness_interval_ns);
    cpp.stop_timeout = to_timeout(spec->stop_timeout_ns);
    cpp.permissions = static_cast<mode_t>(spec->permissions);
    if (spec->exec != nullptr)
      for (const char* const* a = spec->exec; *a != nullptr; ++a) cpp.exec.emplace_back(*a);
    auto handle = std::make_unique<shmlink_interface>();
    handle->iface = shmlink::Interface(std::move(cpp));
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_interface_export_signal(shmlink_interface_t* iface, uint32_t index, const char* name, int type,
                                    const char* unit) {
  return register_signal(iface, "shmlink_interface_export_signal", true, index, name, type, unit);
}

int shmlink_interface_import_signal(shmlink_interface_t* iface, uint32_t index, const char* name, int type,
                                    const char* unit) {
  return register_signal(iface, "shmlink_interface_import_signal", false, index, name, type, unit);
}

int shmlink_interface_open(shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_open", "iface");
  return guarded("opening interface", label_of(iface->iface).out, [&] {
    auto& i = iface->iface;
    i.open();
    // Reserved once per open: write and read then never allocate.
    iface->write_scratch.values.reserve(i.out_max_values());
    iface->read_scratch.values.reserve(i.in_max_values());
    return SHMLINK_OK;
  });
}

int shmlink_interface_is_open(const shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_is_open", "iface");
  return iface->iface.is_open() ? 1 : 0;
}

int shmlink_interface_write_values(shmlink_interface_t* iface, const shmlink_value_t* values, uint32_t count,
                                   int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_write_values", "iface");
  if (values == nullptr && count != 0) return null_arg("shmlink_interface_write_values", "values");
  auto& i = iface->iface;
  if (!i.is_open()) return status_fail(Errc::closed, "writing to", i, timeout_ns);
  auto& scratch = iface->write_scratch.values;
  if (count > i.out_max_values()) return too_many_values(i, count);
  scratch.resize(count);  // capacity reserved at open: no allocation
  if (count != 0) std::memcpy(scratch.data(), values, std::size_t{count} * sizeof(SignalValue));
  const auto st = i.write(std::span<const SignalValue>(scratch), to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no room is not an error
  return status_fail(st, "writing to", i, timeout_ns);
}

int shmlink_interface_write(shmlink_interface_t* iface, const shmlink_sample_t* sample, int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_write", "iface");
  if (const int rc = check_push_sample("shmlink_interface_write", sample); rc != SHMLINK_OK) return rc;
  auto& i = iface->iface;
  if (!i.is_open()) return status_fail(Errc::closed, "writing to", i, timeout_ns);
  if (sample->length > i.out_max_values()) return too_many_values(i, sample->length);
  from_c(*sample, iface->write_scratch);
  const auto st = i.write(iface->write_scratch, to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;
  return status_fail(st, "writing to", i, timeout_ns);
}

int shmlink_interface_read(shmlink_interface_t* iface, shmlink_sample_t* out, int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_read", "iface");
  if (const int rc = check_pop_sample("shmlink_interface_read", out); rc != SHMLINK_OK) return rc;
  auto& i = iface->iface;
  const auto st = i.read(iface->read_scratch, to_timeout(timeout_ns));
  if (st.ok()) {
    to_c(iface->read_scratch, out);
    return SHMLINK_OK;
  }
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no data is not an error
  return status_fail(st, "reading from", i, timeout_ns);
}

int shmlink_interface_close(shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_close", "iface");
  iface->iface.close();
  return SHMLINK_OK;
}

int shmlink_interface_destroy(shmlink_interface_t* iface) {
  delete iface;  // ~Interface closes; delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_interface_peer(const shmlink_interface_t* iface, shmlink_peer_status_t* out) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer", "iface");
  if (out == nullptr) return null_arg("shmlink_interface_peer", "out");
  const auto& p = iface->iface.peer();
  *out = shmlink_peer_status_t{};
  out->pid = static_cast<std::int32_t>(p.pid);
  out->launched = p.launched ? 1 : 0;
  out->exited = p.exited ? 1 : 0;
  out->exit_code = p.exit_code;
  out->term_signal = p.term_signal;
  out->closed = p.closed ? 1 : 0;
  return SHMLINK_OK;
}

int shmlink_interface_peer_describe(const shmlink_interface_t* iface, char* buf, size_t size) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_describe", "iface");
  if (buf == nullptr && size != 0) return null_arg("shmlink_interface_peer_describe", "buf");
  return guarded("describing the peer of interface", label_of(iface->iface).out, [&] {
    const std::string line = iface->iface.peer().describe();
    if (size != 0) {
      const std::size_t n = std::min(line.size(), size - 1);
      std::memcpy(buf, line.data(), n);
      buf[n] = '\0';
    }
    return static_cast<int>(std::min<std::size_t>(line.size(), INT_MAX));
  });
}

int shmlink_interface_peer_alive(shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_alive", "iface");
  return iface->iface.peer_alive() ? 1 : 0;
}

uint64_t shmlink_interface_next_sequence(const shmlink_interface_t* iface) {
  return iface != nullptr ? iface->iface.next_sequence() : 0;
}

int shmlink_interface_out_info(const shmlink_interface_t* iface, shmlink_queue_info_t* out) {
  return iface_info(iface, out, false, "shmlink_interface_out_info");
}

int shmlink_interface_in_info(const shmlink_interface_t* iface, shmlink_queue_info_t* out) {
  return iface_info(iface, out, true, "shmlink_interface_in_info");
}

int shmlink_interface_peer_signal_count(const shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_signal_count", "iface");
  return static_cast<int>(iface->iface.peer_signals().size());
}

int shmlink_interface_peer_signal(const shmlink_interface_t* iface, uint32_t position, shmlink_signal_t* out) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_signal", "iface");
  if (out == nullptr) return null_arg("shmlink_interface_peer_signal", "out");
  const auto& table = iface->iface.peer_signals();
  if (position >= table.size())
    return fail(SHMLINK_E_OUT_OF_RANGE, "reading peer signal %" PRIu32 " of interface (out '%s', in '%s'): the "
                "table has %zu entries", position, label_of(iface->iface).out, label_of(iface->iface).in, table.size());
  to_c(table[position], out);
  return SHMLINK_OK;
}
