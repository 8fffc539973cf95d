// SPDX-License-Identifier: MIT
// shmlink._shmlink: the helpers every part of the module shares (common.hpp).
#include "common.hpp"

#include <cmath>

namespace shmlink::python {

void raise_code(Errc code, const std::string& message, const py::object& peer) {
  py::object exc = py::module_::import("shmlink.errors").attr("from_code")(static_cast<int>(code), message);
  if (peer) exc.attr("peer") = peer;
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

void raise_type(const std::string& message) { throw py::type_error(message); }

std::chrono::nanoseconds to_ns(const std::optional<double>& seconds) {
  if (!seconds) return kForever;
  if (std::isnan(*seconds)) raise_code(Errc::invalid_argument, "a timeout is NaN");
  if (*seconds <= 0) return std::chrono::nanoseconds::zero();
  if (*seconds > 1e9) return kForever;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(*seconds * 1e9));
}

std::string seconds_text(const std::optional<double>& seconds) {
  if (!seconds) return "forever";
  return repr_of(py::float_(*seconds)) + " s";
}

std::string repr_of(const py::handle& h) { return py::repr(h).cast<std::string>(); }

std::string str_of(const py::handle& h) {
  py::object s = py::reinterpret_steal<py::object>(PyObject_Str(h.ptr()));
  if (!s) throw py::error_already_set();
  return s.cast<std::string>();
}

OpenMode parse_mode(const std::string& m) {
  if (m == "exclusive") return OpenMode::ExclusiveCreate;
  if (m == "purge" || m == "replace") return OpenMode::PurgeAndCreate;
  if (m == "open_or_create") return OpenMode::OpenOrCreate;
  if (m == "open") return OpenMode::OpenExisting;
  raise_code(Errc::invalid_argument,
             "mode '" + m + "' is not one of 'exclusive', 'purge' ('replace'), 'open_or_create', 'open'");
}

std::atomic<std::int64_t>& wait_slice_ns() noexcept {
  static std::atomic<std::int64_t> slice{50'000'000};
  return slice;
}

}  // namespace shmlink::python
