// SPDX-License-Identifier: MIT
// The C API (include/shmlink.h): what every object shares. The error codes, datatypes and open
// modes pinned to their C++ enumerators, the thread-local failure message (capi_internal.hpp)
// and shmlink_strerror / shmlink_last_error. Each object has its own file: capi_stream.cpp,
// capi_queue.cpp, capi_interface.cpp, capi_memif.cpp.
//
// Every entry point returns an int code equal to shmlink::Errc. Setup calls (create, open,
// remove, keywords) wrap the C++ call in `guarded()`, which turns exceptions into codes; hot-path
// calls (write, read, wait, push, pop) call noexcept C++ members and only format a message
// when the status is not ok. Messages go into a fixed thread-local buffer with vsnprintf, so
// reporting a failure never allocates and never throws (long paths are truncated at 1023 bytes).
#include <shmlink.h>

#include "capi/capi_internal.hpp"

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <cstdarg>
#include <cstdio>

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
