// SPDX-License-Identifier: MIT
// The C API (include/shmlink.h) over shmlink::Stream.
//
// Every entry point returns an int code equal to shmlink::Errc. Setup calls (create, open,
// remove, keywords) wrap the C++ call in `guarded()`, which turns exceptions into codes; hot-path
// calls (write, read, wait, semaphores) call noexcept C++ members and only format a message
// when the status is not ok. Messages go into a fixed thread-local buffer with vsnprintf, so
// reporting a failure never allocates and never throws (long paths are truncated at 1023 bytes).
#include <shmlink.h>

#include <unistd.h>

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <algorithm>
#include <cinttypes>
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
static_assert(SHMLINK_E_TORN == static_cast<int>(Errc::torn));
static_assert(SHMLINK_E_WRITER_ACTIVE == static_cast<int>(Errc::writer_active));
static_assert(SHMLINK_E_REPLACED == static_cast<int>(Errc::replaced));
static_assert(SHMLINK_E_OVERWRITTEN == static_cast<int>(Errc::overwritten));
static_assert(SHMLINK_E_INCOMPLETE == static_cast<int>(Errc::incomplete));

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
static_assert(sizeof(shmlink_keyword_t{}.name) == 16 && sizeof(shmlink_keyword_t{}.s) == 16);
static_assert(sizeof(shmlink_keyword_t{}.comment) == 80);

/// This thread's last failure message; zero-initialised, so "" before any failure.
thread_local char t_last_error[1024];

/// Records a message for this thread and returns `code`. Never allocates.
[[gnu::format(printf, 2, 3)]] int fail(int code, const char* fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
  va_end(ap);
  return code;
}

/// A NULL argument: "shmlink_stream_write: data is NULL".
int null_arg(const char* function, const char* argument) noexcept {
  return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: %s is NULL", function, argument);
}

/// Runs `body` (which returns an int code), turning any exception into a code and a message.
/// `action` and `resource` only serve messages for exceptions that do not name the resource
/// themselves (shmlink::Error always does).
template <class Body>
int guarded(const char* action, const char* resource, Body&& body) noexcept {
  try {
    return std::forward<Body>(body)();
  } catch (const shmlink::Error& e) {
    const int code = static_cast<int>(e.errc());
    return fail(code < 0 ? code : SHMLINK_E_SYSTEM, "%s", e.what());
  } catch (const std::bad_alloc&) {
    return fail(SHMLINK_E_NO_SPACE, "%s '%s': out of memory", action, resource);
  } catch (const std::exception& e) {
    return fail(SHMLINK_E_SYSTEM, "%s '%s': %s", action, resource, e.what());
  } catch (...) {
    return fail(SHMLINK_E_SYSTEM, "%s '%s': unknown exception", action, resource);
  }
}

/// Message for a non-ok hot-path status: "writing stream 'wfs': timed out".
int status_fail(shmlink::Status st, const char* action, const shmlink::Stream& s) noexcept {
  return fail(static_cast<int>(st.code()), "%s stream '%s': %s", action, s.name().c_str(), st.message());
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
  return fail(SHMLINK_E_BUSY, "claiming a semaphore of stream '%s': all %d slots are held by live processes",
              s.name().c_str(), s.semaphore_count());
}

int shmlink_stream_sem_wait(const shmlink_stream_t* stream, int index, int64_t timeout_ns) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_wait", "stream");
  const auto& s = stream->stream;
  const auto st = s.sem_wait(index, to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::out_of_range)
    return fail(SHMLINK_E_OUT_OF_RANGE, "waiting on semaphore %d of stream '%s': the stream has %d slots", index,
                s.name().c_str(), s.semaphore_count());
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
    return fail(SHMLINK_E_OUT_OF_RANGE, "flushing semaphore %d of stream '%s': the stream has %d slots", index,
                s.name().c_str(), s.semaphore_count());
  const int removed = s.sem_flush(index);
  if (removed >= 0) return removed;
  return fail(SHMLINK_E_SYSTEM, "flushing semaphore %d of stream '%s': sem_trywait failed", index, s.name().c_str());
}

int shmlink_stream_release_semaphore(shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_release_semaphore", "stream");
  auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "releasing a semaphore of", s);
  if (index < 0 || index >= s.semaphore_count())
    return fail(SHMLINK_E_OUT_OF_RANGE, "releasing semaphore %d of stream '%s': the stream has %d slots", index,
                s.name().c_str(), s.semaphore_count());
  s.release_semaphore(index);
  return SHMLINK_OK;
}

int shmlink_stream_sem_trywait(const shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_trywait", "stream");
  const auto& s = stream->stream;
  const auto st = s.sem_trywait(index);
  if (st.ok() || st.code() == Errc::would_block) return static_cast<int>(st.code());  // no data is not an error
  return status_fail(st, "trying a semaphore of", s);
}

int shmlink_stream_sem_post(shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_post", "stream");
  auto& s = stream->stream;
  const auto st = s.sem_post(index);
  if (st.ok()) return SHMLINK_OK;
  return status_fail(st, "posting a semaphore of", s);
}

int shmlink_stream_sem_value(const shmlink_stream_t* stream, int index) {
  if (stream == nullptr) return null_arg("shmlink_stream_sem_value", "stream");
  const auto& s = stream->stream;
  if (!s.valid()) return status_fail(Errc::closed, "reading a semaphore of", s);
  const int v = s.sem_value(index);
  if (v >= 0) return v;
  return fail(SHMLINK_E_OUT_OF_RANGE, "reading semaphore %d of stream '%s': the stream has %d slots", index,
              s.name().c_str(), s.semaphore_count());
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
