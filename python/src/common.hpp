// SPDX-License-Identifier: MIT
// shmlink._shmlink: what every part of the module shares (module.cpp: streams, queue.cpp:
// queues, interface.cpp: the co-simulation Interface, signals.cpp: signal tables and samples).
// The error mapping, the open-mode names, timeouts in seconds, and the one loop in which every
// blocking call waits with the GIL released.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/segment.hpp>
#include <shmlink/stream.hpp>

#include <pybind11/pybind11.h>

#include <Python.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace shmlink::python {

namespace py = pybind11;

/// Raises the Python exception class that shmlink.errors maps `code` to, with `message` (the
/// class and its `code` attribute are chosen by shmlink.errors.from_code); `peer`, when given,
/// becomes the exception's `peer` attribute (a PeerStatus).
[[noreturn]] void raise_code(Errc code, const std::string& message, const py::object& peer = py::object());

/// Raises TypeError with `message`.
[[noreturn]] void raise_type(const std::string& message);

/// Seconds (float; None = forever) to nanoseconds: <= 0 is zero (do not wait), more than 1e9 s
/// is forever. NaN raises ArgumentError.
std::chrono::nanoseconds to_ns(const std::optional<double>& seconds);

/// "0.25 s" ("forever" for None), for messages.
std::string seconds_text(const std::optional<double>& seconds);

/// repr(obj) and str(obj) as Python prints them.
std::string repr_of(const py::handle& h);
std::string str_of(const py::handle& h);

/// The open-mode names of Stream.create, Queue.create and the Region's create calls:
/// 'exclusive', 'purge' (or 'replace'), 'open_or_create', 'open'; ArgumentError otherwise.
OpenMode parse_mode(const std::string& mode);

/// The longest slice (ns) a blocking call sleeps with the GIL released before it looks at
/// Python's signals (Ctrl-C) again: 50 ms. A testing knob (_set_wait_slice_ns) raises it so that
/// a lost wake-up is not hidden by the next slice. Read with relaxed ordering at each wait.
std::atomic<std::int64_t>& wait_slice_ns() noexcept;

/// The one wait loop of the module: runs `op(slice)` with the GIL released, in slices of at
/// most wait_slice_ns(), until it returns something other than timeout, interrupted or
/// would_block (that Status is returned), or until `timeout` seconds passed (None: forever;
/// then Errc::timeout). Between slices: Python's signals (Ctrl-C raises KeyboardInterrupt) and
/// `check()`, which may raise (e.g. when another thread closed the handle).
template <class Op, class Check>
Status sliced(const std::optional<double>& timeout, Op&& op, Check&& check) {
  using std::chrono::nanoseconds;
  const nanoseconds total = to_ns(timeout);
  const nanoseconds most{std::max<std::int64_t>(wait_slice_ns().load(std::memory_order_relaxed), 1)};
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    nanoseconds left = kForever;
    if (total != kForever)
      left = std::max<nanoseconds>(total - (std::chrono::steady_clock::now() - start), nanoseconds::zero());
    const nanoseconds slice = std::min(left, most);
    Status st;
    {
      py::gil_scoped_release nogil;
      st = op(slice);
    }
    if (st.code() != Errc::timeout && st.code() != Errc::interrupted && st.code() != Errc::would_block) return st;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    check();
    if (total != kForever && std::chrono::steady_clock::now() - start >= total) return Errc::timeout;
  }
}

/// sliced() with nothing to check between slices but Python's signals.
template <class Op>
Status sliced(const std::optional<double>& timeout, Op&& op) {
  return sliced(timeout, std::forward<Op>(op), [] {});
}

/// Runs `f()` with the GIL released (for setup calls that may block: a region's directory lock,
/// creating a file) and returns what it returns; its exceptions propagate with the GIL held again.
template <class F>
auto without_gil(F&& f) {
  py::gil_scoped_release nogil;
  return std::forward<F>(f)();
}

/// Queues (queue.cpp), the Interface with its PeerStatus (interface.cpp), Region (region.cpp),
/// the bridge's Publisher and Replica (bridge.cpp).
void register_queues(py::module_& m);
void register_interface(py::module_& m);
void register_region(py::module_& m);
void register_bridge(py::module_& m);

// ---- channels made elsewhere than by their own class (Region.create_stream, ...) -------------

/// A stream's spec from the arguments of Stream.create (shape in numpy order, or an array as
/// `shape` or `data` whose shape and dtype are taken), checked; `what` starts each message.
struct StreamArgs {
  StreamSpec spec;
  py::object data;        ///< the array to write once created (when has_data)
  bool has_data = false;
};
StreamArgs stream_args(const std::string& what, py::object shape, py::object dtype, py::object data,
                       std::uint32_t depth, std::uint16_t keywords, std::uint16_t semaphores, int permissions);
/// A shmlink.Stream of `s`; with `a`, its data (if any) written once.
py::object wrap_stream(Stream s);
py::object wrap_stream(Stream s, const StreamArgs& a);

/// A queue's spec from the arguments of Queue.create (kind, wait and signals parsed and checked).
QueueSpec queue_spec(std::uint32_t capacity, std::uint32_t max_values, const std::string& kind, const std::string& wait,
                     const py::object& signals, int permissions);
/// What Queue.open's arguments expect of the queue.
QueueExpect queue_expect(std::optional<std::uint32_t> max_values, const std::optional<std::string>& kind,
                         const py::object& signals, bool writable);
/// A shmlink.Queue of `q`.
py::object wrap_queue(Queue q);

}  // namespace shmlink::python
