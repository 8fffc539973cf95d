// SPDX-License-Identifier: MIT
// shmlink._shmlink: the pybind11 core of the Python package (python/shmlink/__init__.py adds the
// pure-Python parts). Streams as numpy arrays: the axis convention, dtype mapping and error
// mapping are documented in python/shmlink/__init__.py and docs/python.md. Queues are in
// queue.cpp, samples and signal tables in signals.cpp, the co-simulation Interface in
// interface.cpp; common.hpp holds the error mapping and the one wait loop they share.
#include "common.hpp"
#include "signals.hpp"  // register_samples

#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <shmlink/tuning.hpp>  // the testing knob _set_foreign_writer_poll_ns

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Python.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace shmlink;
using namespace shmlink::python;

namespace {

/// The numpy dtype of a stream dtype ("uint16", "float16", "complex64", ...), native byte order.
py::dtype np_dtype(Dtype t) { return py::dtype(std::string(dtype_name(t))); }

/// The stream dtype of a numpy dtype, or nullopt (non-native byte order, unsupported kind).
std::optional<Dtype> dtype_from_np(const py::dtype& d) {
  for (int code = 1; code <= 13; ++code) {
    const auto t = static_cast<Dtype>(code);
    if (d.equal(np_dtype(t))) return t;
  }
  return std::nullopt;
}

/// "(4, 5)" as numpy prints shapes.
std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

/// One stream handle as Python sees it. Calls that run with the GIL released (write, read,
/// wait, read_next) hold a reference to the Stream (held()), so a close() from another thread
/// never unmaps under them: the mapping goes when the last of them returns, and a waiter
/// notices the close within a slice (ClosedError).
class PyStream {
 public:
  explicit PyStream(Stream s) : s_(std::make_shared<Stream>(std::move(s))) {
    name_ = s_->name();
    last_ = s_->cnt0();
  }

  /// The stream, for calls that keep the GIL; raises ClosedError when closed.
  Stream& s() { return *held(); }
  /// A reference to the stream that keeps it mapped (for calls that release the GIL); raises
  /// ClosedError when closed.
  std::shared_ptr<Stream> held() const {
    if (!s_) raise_code(Errc::closed, "stream '" + name_ + "' is closed");
    return s_;
  }
  /// Between wait slices: ClosedError when another thread closed this handle meanwhile.
  void check_open(const char* what) const {
    if (!s_) raise_code(Errc::closed, std::string(what) + " stream '" + name_ + "': the handle was closed meanwhile");
  }

  /// Frame shape in numpy order (slowest axis first).
  std::vector<py::ssize_t> np_shape() {
    auto fs = s().frame_shape();
    return std::vector<py::ssize_t>(fs.rbegin(), fs.rend());
  }

  /// A new, uninitialised array of one frame.
  py::array new_frame() { return py::array(np_dtype(s().dtype()), np_shape()); }

  /// Raises for a failed hot-path Status, naming the stream.
  [[noreturn]] void fail(Status st, const std::string& what) {
    if (st.code() == Errc::layout) {  // a rolling buffer whose cnt1 names no slice: say so with the values
      if (const std::string why = s_ ? s_->rolling_layout_error() : std::string(); !why.empty())
        raise_code(st.code(), what + " " + why);
    }
    raise_code(st.code(), what + " stream '" + name_ + "': " + st.message());
  }

  /// Checks `obj` against the frame: dtype exactly, shape exactly; returns a C-contiguous array.
  py::array checked_frame(const py::handle& obj, const char* what) {
    py::array arr = py::array::ensure(obj);
    if (!arr) raise_code(Errc::invalid_argument, std::string(what) + " stream '" + name_ + "': not an array");
    const py::dtype want = np_dtype(s().dtype());
    const auto want_shape = np_shape();
    std::vector<py::ssize_t> got_shape(arr.shape(), arr.shape() + arr.ndim());
    if (!arr.dtype().equal(want) || got_shape != want_shape) {
      raise_code(arr.dtype().equal(want) ? Errc::size_mismatch : Errc::dtype_mismatch,
                 std::string(what) + " stream '" + name_ + "': expected " + std::string(dtype_name(s().dtype())) +
                     " " + shape_text(want_shape) + ", got " + str_of(arr.dtype()) + " " +
                     shape_text(got_shape));
    }
    if (!(arr.flags() & py::array::c_style))  // a C-order copy, same dtype
      arr = py::module_::import("numpy").attr("ascontiguousarray")(arr).cast<py::array>();
    return arr;
  }

  void write(const py::handle& obj, std::optional<std::int64_t> atime_ns, std::optional<std::uint64_t> frame_id) {
    py::array arr = checked_frame(obj, "writing");
    WriteOptions o;
    if (atime_ns) o.atime_ns = *atime_ns;
    o.frame_id = frame_id;
    const auto* p = static_cast<const std::byte*>(arr.data());
    const std::size_t n = static_cast<std::size_t>(arr.nbytes());
    const auto stream = held();
    Status st;
    {
      py::gil_scoped_release nogil;
      st = stream->write(std::span<const std::byte>(p, n), o);
    }
    if (!st.ok()) fail(st, "writing");
  }

  py::array read() {
    py::array out = new_frame();
    FrameInfo info;
    Status st;
    auto* p = static_cast<std::byte*>(out.mutable_data());
    const std::size_t n = static_cast<std::size_t>(out.nbytes());
    const auto stream = held();
    {
      py::gil_scoped_release nogil;
      st = stream->read_copy(std::span<std::byte>(p, n), &info);
    }
    if (!st.ok()) fail(st, "reading");
    last_ = info.cnt0;
    return out;
  }

  /// Waits for a frame newer than the last one this handle read or waited for, in sliced()
  /// (GIL released, Ctrl-C raises KeyboardInterrupt within a slice). False on timeout.
  bool wait(std::optional<double> timeout, std::optional<int> sem, bool spin) {
    const auto stream = held();
    Stream& st = *stream;
    if (sem && (*sem < 0 || *sem >= st.semaphore_count()))
      raise_code(Errc::out_of_range, "waiting: " + semaphore_index_error(*sem, st.semaphore_count(), name_));
    std::uint64_t c = 0;
    const std::uint64_t since = last_;
    const Status r = sliced(
        timeout,
        [&](std::chrono::nanoseconds slice) {
          if (sem) {
            const Status w = slice.count() == 0 ? st.sem_trywait(*sem) : st.sem_wait(*sem, slice);
            c = st.cnt0();
            return w;
          }
          return spin ? st.wait_spin(since, slice, &c) : st.wait_futex(since, slice, &c);
        },
        [&] { check_open("waiting on"); });
    if (r.ok()) {
      last_ = c;
      return true;
    }
    if (r.code() != Errc::timeout) fail(r, "waiting on");
    return false;
  }

  /// A read-only, zero-copy view of `bytes` whose base keeps this handle open.
  py::array view_of(std::span<const std::byte> bytes, const py::object& self);

  void close() {
    if (exports_ > 0)
      throw py::buffer_error("cannot close stream '" + name_ + "': " + std::to_string(exports_) +
                             " view(s) of it still exist");
    s_.reset();  // unmapped now, or when the last call still using it returns
  }

  bool closed() const { return !s_; }
  std::uint64_t& last() { return last_; }
  const std::string& name() const { return name_; }
  int& exports() { return exports_; }

 private:
  std::shared_ptr<Stream> s_;  ///< null once closed
  std::string name_;
  std::uint64_t last_ = 0;
  int exports_ = 0;
};

/// Keeps a stream handle open while numpy views of its mapping exist (the views' base).
class ViewGuard {
 public:
  explicit ViewGuard(py::object owner) : owner_(std::move(owner)) { ++owner_.cast<PyStream&>().exports(); }
  ~ViewGuard() {
    py::gil_scoped_acquire gil;
    --owner_.cast<PyStream&>().exports();
  }
  ViewGuard(const ViewGuard&) = delete;
  ViewGuard& operator=(const ViewGuard&) = delete;

 private:
  py::object owner_;
};

py::array PyStream::view_of(std::span<const std::byte> bytes, const py::object& self) {
  auto shape = np_shape();
  // The array must never reach past the bytes it views (a lying file could otherwise make
  // numpy read beyond the mapping): its size is checked against the span, overflow included.
  std::uint64_t elements = 1;
  for (const py::ssize_t n : shape)
    if (n < 0 || __builtin_mul_overflow(elements, static_cast<std::uint64_t>(n), &elements))
      raise_code(Errc::layout, "viewing stream '" + name_ + "': its shape overflows");
  std::uint64_t view_bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<std::uint64_t>(dtype_size(s().dtype())), &view_bytes) ||
      view_bytes != bytes.size())
    raise_code(Errc::layout, "viewing stream '" + name_ + "': its shape does not match the " +
                                 std::to_string(bytes.size()) + "-byte frame");
  py::object guard = py::cast(new ViewGuard(self), py::return_value_policy::take_ownership);
  py::array a(np_dtype(s().dtype()), shape, {}, bytes.data(), guard);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

/// The Python value of a keyword.
py::object keyword_value(const KeywordValue& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return py::int_(*i);
  if (auto* d = std::get_if<double>(&v)) return py::float_(*d);
  return py::str(std::get<std::string>(v));
}

/// Translates shmlink::Error thrown by setup calls.
void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const Error& e) {
    try {
      raise_code(e.errc(), e.what());
    } catch (py::error_already_set& err) {
      err.restore();
    }
  }
}

}  // namespace

namespace shmlink::python {

StreamArgs stream_args(const std::string& what, py::object shape, py::object dtype, py::object data,
                       std::uint32_t depth, std::uint16_t keywords, std::uint16_t semaphores, int permissions) {
  if (!shape.is_none() && py::isinstance<py::array>(shape) && data.is_none()) {  // create(name, array)
    data = shape;
    shape = py::none();
  }
  py::array arr;
  if (!data.is_none()) {
    arr = py::array::ensure(data);
    if (!arr) raise_code(Errc::invalid_argument, what + ": data is not an array");
    if (shape.is_none()) shape = py::tuple(py::cast(std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim())));
    if (dtype.is_none()) dtype = arr.dtype();
  }
  if (shape.is_none()) raise_code(Errc::invalid_argument, what + ": give shape= or an array");
  StreamSpec spec;
  std::vector<std::int64_t> dims;
  if (py::isinstance<py::int_>(shape)) {
    dims.push_back(shape.cast<std::int64_t>());
  } else {
    for (auto d : shape) dims.push_back(d.cast<std::int64_t>());
  }
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
    if (*it < 1 || *it > std::numeric_limits<std::uint32_t>::max())
      raise_code(Errc::invalid_argument, what + ": axis length " + std::to_string(*it) + " is not 1..2^32-1");
    spec.shape.push_back(static_cast<std::uint32_t>(*it));
  }
  const py::dtype dt = dtype.is_none() ? py::dtype("float32") : py::dtype::from_args(dtype);
  const auto t = dtype_from_np(dt);
  if (!t)
    raise_code(Errc::dtype_mismatch, what + ": dtype " + str_of(dt) +
                                         " has no ImageStreamIO datatype (uint8..uint64, int8..int64, "
                                         "float16/32/64, complex64/128, native byte order)");
  spec.dtype = *t;
  spec.depth = depth;
  spec.keywords = keywords;
  spec.semaphores = semaphores;
  spec.permissions = static_cast<mode_t>(permissions);
  return StreamArgs{spec, arr, !data.is_none()};
}

py::object wrap_stream(Stream s, const StreamArgs& a) {
  auto ps = std::make_unique<PyStream>(std::move(s));
  if (a.has_data) ps->write(a.data, std::nullopt, std::nullopt);
  return py::cast(std::move(ps));
}

py::object wrap_stream(Stream s) { return py::cast(std::make_unique<PyStream>(std::move(s))); }

}  // namespace shmlink::python

PYBIND11_MODULE(_shmlink, m) {
  m.doc() = "shmlink core (C++): streams byte-compatible with milk ImageStreamIO 2.00, sample queues, co-simulation interfaces";
  py::register_exception_translator(&translate);

  py::class_<ViewGuard>(m, "_ViewGuard");

  // Testing knobs, not API (docs/testing.md): the longest slice the library's wait sleeps
  // before it re-checks cnt0 without a wake-up (10 ms), and the slice blocking calls
  // (Stream.wait(), Queue.pop(), ...) sleep between looks at Python's signals (50 ms). Tests raise both so that only a real wake-up can
  // end a wait in time. Each returns the previous value.
  m.def(
      "_set_foreign_writer_poll_ns",
      [](std::int64_t ns) { return tuning::exchange_foreign_writer_poll_ns(ns); },
      py::arg("ns"), "Testing knob: the re-check slice (ns) of waits nothing wakes; returns the previous value.");
  m.def(
      "_set_wait_slice_ns",
      [](std::int64_t ns) { return wait_slice_ns().exchange(ns, std::memory_order_relaxed); },
      py::arg("ns"), "Testing knob: the slice (ns) blocking calls sleep between signal checks; returns the previous value.");

  py::class_<PyStream>(m, "Stream", R"doc(A shared-memory stream (an ImageStreamIO 2.00 file).

Shapes are numpy's, slowest axis first: an array of shape (z, y, x) in C order is stored with
ISIO size[0] = x (the fastest axis), so an image written from C++ as {width, height} reads in
Python as (height, width), not transposed. For a rolling (FIFO) buffer, `shape` is one frame's.)doc")
      .def_static(
          "create",
          [](const std::string& name, py::object shape, py::object dtype, py::object data, std::uint32_t depth,
             std::uint16_t keywords, std::uint16_t semaphores, int permissions, const std::string& mode) {
            const StreamArgs a = stream_args("creating stream '" + name + "'", std::move(shape), std::move(dtype),
                                             std::move(data), depth, keywords, semaphores, permissions);
            return wrap_stream(Stream::create(name, a.spec, parse_mode(mode)), a);
          },
          py::arg("name"), py::arg("shape") = py::none(), py::arg("dtype") = py::none(), py::kw_only(),
          py::arg("data") = py::none(), py::arg("depth") = 0, py::arg("keywords") = 0, py::arg("semaphores") = 10,
          py::arg("permissions") = 0600, py::arg("mode") = "exclusive",
          "Create a stream: create(name, shape=(h, w), dtype='float32') or create(name, array) "
          "(then written once). depth >= 2 makes a rolling buffer of that many frames. mode: 'exclusive' "
          "(FileExistsError if present), 'purge' (replace atomically: a new file), 'open_or_create', 'open'.")
      .def_static(
          "open",
          [](const std::string& name, bool writable) {
            OpenOptions o;
            o.writable = writable;
            return std::make_unique<PyStream>(Stream::open(name, o));
          },
          py::arg("name"), py::kw_only(), py::arg("writable") = true,
          "Open an existing stream (validated). writable=False maps it read-only (no semaphores, no writes).")
      .def_static(
          "remove", [](const std::string& name) { Stream::remove(name); }, py::arg("name"),
          "Remove a stream's file (open handles keep their mapping).")
      .def("close", &PyStream::close,
           "Unmap; raises BufferError while views of the stream exist. A wait or read still running in another "
           "thread keeps the mapping until it returns, and a waiter raises ClosedError within a slice.")
      .def_property_readonly("closed", &PyStream::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyStream& s, py::args) { s.close(); })
      .def(
          "write", &PyStream::write, py::arg("array"), py::kw_only(), py::arg("atime_ns") = py::none(),
          py::arg("frame_id") = py::none(),
          "Publish one frame: dtype and shape must match exactly (ValueError naming the stream, "
          "expected and got). atime_ns: acquisition time (default now); frame_id: stored in cnt2.")
      .def("read", &PyStream::read, "A seqlock-validated copy of the newest frame (never torn).")
      .def(
          "view", [](py::object self) {
            PyStream& ps = self.cast<PyStream&>();
            const auto bytes = ps.s().view();
            if (bytes.empty()) ps.fail(Errc::layout, "viewing");  // cnt1 names no slice (Stream::view)
            return ps.view_of(bytes, self);
          },
          "A zero-copy, read-only ndarray of the newest frame, NOT validated (the writer may change "
          "it while you read). Its base keeps the stream open: close() raises BufferError meanwhile. "
          "Never larger than the frame (LayoutError otherwise). Reading it after another program "
          "truncated the file in place (an ImageStreamIO/DAO re-creation) raises SIGBUS.")
      .def("wait", &PyStream::wait, py::arg("timeout") = py::none(), py::arg("sem") = py::none(),
           py::arg("spin") = false,
           "Wait for a frame newer than the last one read or waited for. timeout in seconds (None: "
           "forever). sem=i waits on semaphore slot i (milk style) instead of the futex; spin=True "
           "polls cnt0. Releases the GIL; Ctrl-C raises KeyboardInterrupt. Returns False on timeout.")
      .def(
          "claim_semaphore", [](PyStream& p, int preferred) { return p.s().claim_semaphore(preferred); },
          py::arg("preferred") = -1, "Claim a semaphore slot for this process (ISIO getsemwaitindex); -1 if none.")
      .def(
          "sem_flush", [](PyStream& p, int i) { return p.s().sem_flush(i); }, py::arg("index") = -1,
          "Drain semaphore slot index (all when -1) in one atomic step; returns the posts removed "
          "(at most 2**31-1).")
      .def(
          "sem_post", [](PyStream& p, int i) {
            const Status st = p.s().sem_post(i);
            if (!st.ok()) p.fail(st, "posting");
          },
          py::arg("index") = -1)
      .def(
          "sem_value", [](PyStream& p, int i) { return p.s().sem_value(i); }, py::arg("index"))
      // ---- rolling buffers ----
      .def(
          "read_next",
          [](PyStream& p, double timeout) -> py::object {
            py::array out = p.new_frame();
            FrameInfo info;
            std::uint64_t skipped = 0;
            auto* d = static_cast<std::byte*>(out.mutable_data());
            const auto n = static_cast<std::size_t>(out.nbytes());
            const auto s = p.held();  // a close() from another thread cannot unmap under the read
            const Status st = sliced(
                timeout,
                [&](std::chrono::nanoseconds slice) {
                  return s->read_next(std::span<std::byte>(d, n), &info, &skipped, slice);
                },
                [&] { p.check_open("reading"); });
            if (st.code() == Errc::timeout) return py::none();
            if (!st.ok() && st.code() != Errc::overwritten) p.fail(st, "reading");
            p.last() = info.cnt0;
            return py::make_tuple(out, info.cnt0, skipped);
          },
          py::arg("timeout") = 0.0,
          "Sequential reading (DAO's get_data_next): (array, cnt0, skipped) for the frame after the "
          "tail, or None when nothing new came within timeout seconds. skipped > 0: the reader was "
          "lapped and got the newest frame; that many frames were lost.")
      .def_property_readonly("tail", [](PyStream& p) { return p.s().tail(); })
      .def("reset_tail", [](PyStream& p) { return p.s().reset_tail(); })
      .def("set_tail", [](PyStream& p, std::uint64_t c) { p.s().set_tail(c); }, py::arg("cnt0"))
      .def(
          "read_frame",
          [](PyStream& p, std::uint64_t k) {
            py::array out = p.new_frame();
            const Status st = p.s().read_frame(
                k, std::span<std::byte>(static_cast<std::byte*>(out.mutable_data()), static_cast<std::size_t>(out.nbytes())));
            if (!st.ok()) p.fail(st, "reading frame " + std::to_string(k) + " of");
            return out;
          },
          py::arg("cnt0"), "Frame cnt0 from the rolling buffer's history (Error when gone or not yet written).")
      .def(
          "read_slice",
          [](PyStream& p, std::uint32_t i) {
            py::array out = p.new_frame();
            const Status st = p.s().read_slice(
                i, std::span<std::byte>(static_cast<std::byte*>(out.mutable_data()), static_cast<std::size_t>(out.nbytes())));
            if (!st.ok()) p.fail(st, "reading slice " + std::to_string(i) + " of");
            return out;
          },
          py::arg("index"), "Slice index % depth of a rolling buffer (DAO's get_data_arbitrary), validated.")
      .def(
          "slice_info",
          [](PyStream& p, std::uint32_t i) {
            const FrameInfo f = p.s().slice_info(i);
            py::dict d;
            d["cnt0"] = f.cnt0;
            d["slice"] = f.cnt1;
            d["atime_ns"] = f.atime_ns;
            d["writetime_ns"] = f.writetime_ns;
            return d;
          },
          py::arg("index"))
      // ---- properties ----
      .def_property_readonly("name", [](PyStream& p) { return p.s().name(); })
      .def_property_readonly("path", [](PyStream& p) { return p.s().path(); })
      .def_property_readonly("shape", [](PyStream& p) { return py::tuple(py::cast(p.np_shape())); },
                             "Frame shape, numpy order (slowest axis first).")
      .def_property_readonly("dtype", [](PyStream& p) { return np_dtype(p.s().dtype()); })
      .def_property_readonly("depth", [](PyStream& p) { return p.s().depth(); })
      .def_property_readonly("nbytes", [](PyStream& p) { return p.s().frame_bytes(); })
      .def_property_readonly("isio_size", [](PyStream& p) {
        auto sh = p.s().shape();
        return std::vector<std::uint32_t>(sh.begin(), sh.end());
      })
      .def_property_readonly("cnt0", [](PyStream& p) { return p.s().cnt0(); })
      .def_property_readonly("cnt1", [](PyStream& p) { return p.s().cnt1(); })
      .def_property(
          "cnt2", [](PyStream& p) { return p.s().cnt2(); }, [](PyStream& p, std::uint64_t v) { p.s().set_cnt2(v); })
      .def_property_readonly("write_flag", [](PyStream& p) { return p.s().write_flag(); })
      .def_property_readonly("last_cnt0", [](PyStream& p) { return p.last(); },
                             "cnt0 of the last frame this handle read or waited for.")
      .def_property_readonly("atime_ns", [](PyStream& p) { return p.s().atime_ns(); })
      .def_property_readonly("writetime_ns", [](PyStream& p) { return p.s().writetime_ns(); })
      .def_property_readonly("creation_time_ns", [](PyStream& p) { return p.s().creation_time_ns(); })
      .def_property_readonly("semaphores", [](PyStream& p) { return p.s().semaphore_count(); })
      .def("replaced", [](PyStream& p) { return p.s().replaced(); },
           "True when the name now points to a re-created stream (or none): open it again.")
      .def(
          "info",
          [](PyStream& p) {
            const StreamInfo i = p.s().info();
            py::dict d;
            d["name"] = i.name;
            d["path"] = i.path;
            d["version"] = i.version;
            d["shape"] = py::tuple(py::cast(p.np_shape()));
            d["isio_size"] = i.shape;
            d["dtype"] = std::string(dtype_name(i.dtype));
            d["depth"] = i.depth;
            d["nelement"] = i.nelement;
            d["frame_bytes"] = i.frame_bytes;
            d["data_bytes"] = i.data_bytes;
            d["file_bytes"] = i.file_bytes;
            d["imagetype"] = i.imagetype;
            d["semaphores"] = i.semaphores;
            d["keyword_slots"] = i.keyword_slots;
            d["circular_buffer"] = i.circular_buffer;
            d["creator_pid"] = i.creator_pid;
            d["owner_pid"] = i.owner_pid;
            d["inode"] = i.inode;
            d["write_flag"] = i.write_flag;
            d["cnt0"] = i.frame.cnt0;
            d["cnt1"] = i.frame.cnt1;
            d["cnt2"] = i.frame.cnt2;
            d["atime_ns"] = i.frame.atime_ns;
            d["writetime_ns"] = i.frame.writetime_ns;
            d["creation_time_ns"] = i.creation_time_ns;
            d["last_access_time_ns"] = i.last_access_time_ns;
            d["sem_read_pids"] = i.sem_read_pids;
            d["sem_write_pids"] = i.sem_write_pids;
            d["sem_values"] = i.sem_values;
            return d;
          },
          "All metadata as a dict (a racy snapshot).")
      // ---- keywords (the mutable mapping lives in shmlink/__init__.py) ----
      .def("_keywords",
           [](PyStream& p) {
             py::dict d;
             for (const auto& k : p.s().keywords()) d[py::str(k.name)] = keyword_value(k.value);
             return d;
           })
      .def("_set_keyword",
           [](PyStream& p, const std::string& name, const py::object& v, const std::string& comment) {
             if (py::isinstance<py::bool_>(v) || py::isinstance<py::int_>(v)) {
               p.s().set_keyword(name, v.cast<std::int64_t>(), comment);
             } else if (py::isinstance<py::float_>(v)) {
               p.s().set_keyword(name, v.cast<double>(), comment);
             } else if (py::isinstance<py::str>(v)) {
               p.s().set_keyword(name, v.cast<std::string>(), comment);
             } else {
               throw py::type_error("keyword '" + name + "' of stream '" + p.name() +
                                    "': value must be int, float or str, not " +
                                    str_of(v.get_type().attr("__name__")));
             }
           })
      .def("_erase_keyword", [](PyStream& p, const std::string& name) { return p.s().erase_keyword(name); })
      .def("__repr__", [](PyStream& p) {
        if (p.closed()) return "<shmlink.Stream '" + p.name() + "' (closed)>";
        std::vector<py::ssize_t> sh = p.np_shape();
        return "<shmlink.Stream '" + p.name() + "' " + std::string(dtype_name(p.s().dtype())) + " " +
               shape_text(sh) + (p.s().depth() > 1 ? " depth " + std::to_string(p.s().depth()) : "") +
               " cnt0=" + std::to_string(p.s().cnt0()) + ">";
      });

  m.def("stream_directory", &stream_directory, "The directory streams live in ($SHMLINK_DIR, $MILK_SHM_DIR, ...).");
  m.def("stream_path", [](const std::string& n) { return stream_path(n); }, py::arg("name"));
  m.def("queue_path", [](const std::string& n) { return queue_path(n); }, py::arg("name"),
        "The file of a queue: <stream_directory()>/<name>.queue.shm, or a path containing '/' as given.");

  register_samples(m);
  register_queues(m);
  register_interface(m);
  register_region(m);
  register_bridge(m);
}
