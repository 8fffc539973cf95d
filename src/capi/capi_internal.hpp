// SPDX-License-Identifier: MIT
// Helpers shared by the C API's translation units (capi_common.cpp, capi_stream.cpp,
// capi_queue.cpp, capi_interface.cpp, capi_memif.cpp): the thread-local failure message, the
// exception guard and fixed-size string fields. Internal: not installed, not exported (the library is
// built with -fvisibility=hidden).
#pragma once

#include <shmlink.h>

#include <shmlink/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <string_view>
#include <utility>

namespace shmlink::capi {

/// Records a printf-style message as this thread's last error (shmlink_last_error) and returns
/// `code`. Never allocates, never throws (the message is cut at 1023 bytes).
[[gnu::format(printf, 2, 3)]] int fail(int code, const char* fmt, ...) noexcept;

/// A NULL argument: "shmlink_stream_write: data is NULL"; returns SHMLINK_E_INVALID_ARGUMENT.
int null_arg(const char* function, const char* argument) noexcept;

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

/// Copies `src` into the fixed C field `dst`, truncating and always NUL-terminating.
template <std::size_t N>
void copy_field(char (&dst)[N], std::string_view src) noexcept {
  const std::size_t n = std::min(src.size(), N - 1);
  if (n != 0) std::memcpy(dst, src.data(), n);  // an empty view may have a NULL data()
  dst[n] = '\0';
}

}  // namespace shmlink::capi
