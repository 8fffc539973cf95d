// SPDX-License-Identifier: MIT
// shmlink._shmlink: regions (shmlink.Region): one mapping holding a directory of named streams
// and queues. The channels it creates and opens are the ordinary shmlink.Stream and
// shmlink.Queue (numpy views, waits, errors as for files); they keep the region mapped after the
// Region handle is closed. Calls that may wait on the directory lock run with the GIL released
// (without_gil), holding the Region by shared ownership so that a close() from another thread
// never pulls it from under them. module.cpp calls register_region().
#include "common.hpp"

#include <shmlink/region.hpp>

#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::python {

namespace {

/// One region handle as Python sees it.
class PyRegion {
 public:
  explicit PyRegion(Region r) : r_(std::make_shared<Region>(std::move(r))), path_(r_->path()) {}

  /// The region, kept alive by the caller's reference (calls that release the GIL use it while
  /// another thread may close this handle); ClosedError once closed.
  std::shared_ptr<Region> r() const {
    if (!r_) raise_code(Errc::closed, "region '" + path_ + "' is closed");
    return r_;
  }
  void close() { r_.reset(); }
  bool closed() const { return !r_; }
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<Region> r_;  ///< null once closed
  std::string path_;
};

/// Holds a Python buffer (an mmap, a numpy array, a bytearray) for as long as a region placed in
/// it lives: the exporter cannot resize or close it meanwhile (mmap.close() raises BufferError).
/// Released with the GIL, from whichever thread drops the last reference.
class HeldBuffer {
 public:
  HeldBuffer() = default;
  HeldBuffer(const HeldBuffer&) = delete;
  HeldBuffer& operator=(const HeldBuffer&) = delete;
  ~HeldBuffer() {
    if (!held_) return;
#if PY_VERSION_HEX >= 0x030D0000
    if (!Py_IsInitialized() || Py_IsFinalizing()) return;  // the interpreter is going: leave it
#else
    if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
#endif
    py::gil_scoped_acquire gil;
    PyBuffer_Release(&view_);
  }
  Py_buffer view_{};
  bool held_ = false;
};

/// The writable, C-contiguous bytes of `obj`, kept by the returned owner; ArgumentError naming
/// `what` when `obj` has none.
std::pair<std::span<std::byte>, std::shared_ptr<const void>> writable_bytes(const py::object& obj, const std::string& what) {
  auto hold = std::make_shared<HeldBuffer>();
  if (PyObject_GetBuffer(obj.ptr(), &hold->view_, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
    const std::string why = py::error_already_set().what();  // fetches and clears the Python error
    raise_code(Errc::invalid_argument, what + ": the memory must be a writable, contiguous buffer (an mmap, a "
                                              "numpy array, a bytearray): " + why);
  }
  hold->held_ = true;
  auto* p = static_cast<std::byte*>(hold->view_.buf);
  const auto n = static_cast<std::size_t>(hold->view_.len);
  return {std::span<std::byte>(p, n), std::shared_ptr<const void>(hold, hold.get())};
}

const char* kind_text(ChannelKind k) {
  switch (k) {
    case ChannelKind::stream: return "stream";
    case ChannelKind::queue: return "queue";
  }
  return "unknown";
}

const char* state_text(EntryState s) {
  switch (s) {
    case EntryState::free: return "free";
    case EntryState::creating: return "creating";
    case EntryState::ready: return "ready";
    case EntryState::removing: return "removing";
  }
  return "unknown";
}

py::dict entry_dict(const RegionEntry& e) {
  py::dict d;
  d["name"] = e.name;
  d["kind"] = kind_text(e.kind);
  d["state"] = state_text(e.state);
  d["offset"] = e.offset;
  d["size"] = e.size;
  d["generation"] = e.generation;
  d["owner"] = e.owner;
  return d;
}

}  // namespace

void register_region(py::module_& m) {
  py::class_<PyRegion>(m, "Region", R"doc(A region: one shared mapping (a file on /dev/shm or hugetlbfs, a memfd,
or memory you map yourself, e.g. a QEMU guest's ivshmem BAR2) holding a directory of named
streams and queues.

Region(path) opens an existing region; Region.create(path, size) makes one; Region.create_memfd
makes one in anonymous memory; Region.attach(buffer) and Region.format(buffer) use memory you
mapped (an mmap, a numpy array), which the Region keeps alive. A path without '/' means
<stream_directory()>/<name>.region.shm. create_stream/open_stream and create_queue/open_queue
return the ordinary shmlink.Stream and shmlink.Queue (numpy views, waits and errors as for files),
found by other processes by name; they stay usable after the Region is closed. Calls that may
wait on the directory's lock release the GIL. Errors map to the built-in exceptions as
everywhere (FileNotFoundError, FileExistsError, PermissionError, ...).)doc")
      .def(py::init([](const std::string& path, bool writable) {
             return std::make_unique<PyRegion>(without_gil([&] { return Region::open(path, writable); }));
           }),
           py::arg("path"), py::kw_only(), py::arg("writable") = true,
           "Open an existing region (its directory validated). writable=False maps it read-only: "
           "channels can be opened read-only, nothing created or removed.")
      .def_static(
          "create",
          [](const std::string& path, std::uint64_t size, const std::string& mode, int permissions,
             std::uint64_t max_entries) {
            RegionOptions o;
            o.permissions = static_cast<mode_t>(permissions);
            o.max_entries = static_cast<std::size_t>(max_entries);
            const OpenMode om = parse_mode(mode);
            return std::make_unique<PyRegion>(
                without_gil([&] { return Region::create(path, static_cast<std::size_t>(size), om, o); }));
          },
          py::arg("path"), py::arg("size"), py::kw_only(), py::arg("mode") = "exclusive", py::arg("permissions") = 0600,
          py::arg("max_entries") = 256,
          "Create a region of `size` bytes (a power of two, at least 64 KiB; on hugetlbfs a multiple of "
          "the huge page size) with room for max_entries channels. mode: 'exclusive' (FileExistsError if "
          "present), 'purge' (a new file replaces the old), 'open_or_create' (opens one of the same size), 'open'.")
      .def_static(
          "create_memfd",
          [](const std::string& name, std::uint64_t size, std::uint64_t max_entries) {
            RegionOptions o;
            o.max_entries = static_cast<std::size_t>(max_entries);
            return std::make_unique<PyRegion>(
                without_gil([&] { return Region::create_memfd(name, static_cast<std::size_t>(size), o); }));
          },
          py::arg("name"), py::arg("size"), py::kw_only(), py::arg("max_entries") = 256,
          "Create a region in an anonymous memfd (sealed against resizing; path 'memfd:NAME'), size as "
          "create. Share `fd` with other processes (e.g. socket.send_fds, or inheritance) and map it "
          "there with mmap.mmap(fd, size), then Region.attach.")
      .def_static(
          "attach",
          [](const py::object& memory, const std::string& what, bool same_kernel) {
            auto [bytes, owner] = writable_bytes(memory, "attaching region '" + what + "'");
            return std::make_unique<PyRegion>(without_gil(
                [&, b = bytes, o = owner] { return Region::attach(b, o, what, same_kernel); }));
          },
          py::arg("memory"), py::kw_only(), py::arg("what") = "buffer", py::arg("same_kernel") = true,
          "Use an already formatted region in `memory`: any writable, contiguous buffer (an mmap of a "
          "region file, a memfd or a guest's ivshmem BAR2; a numpy array), 64-byte aligned, kept alive "
          "(and unclosable) while this Region or a channel of it lives. `what` names it in messages and "
          "`path`. same_kernel=False: processes on other kernels (VMs) share it, so its channels wait "
          "by polling. LayoutError when no valid directory is there.")
      .def_static(
          "format",
          [](const py::object& memory, const std::string& what, bool same_kernel, std::uint64_t max_entries) {
            RegionOptions o;
            o.max_entries = static_cast<std::size_t>(max_entries);
            auto [bytes, owner] = writable_bytes(memory, "formatting region '" + what + "'");
            return std::make_unique<PyRegion>(without_gil(
                [&, b = bytes, ow = owner] { return Region::format(b, ow, what, same_kernel, o); }));
          },
          py::arg("memory"), py::kw_only(), py::arg("what") = "buffer", py::arg("same_kernel") = true,
          py::arg("max_entries") = 256,
          "Format a new, empty directory in `memory` (as attach; its size a multiple of 4096 and at least "
          "64 KiB), erasing whatever directory was there, and return it attached. same_kernel=False "
          "records in the directory that other kernels (VMs) use the region: every process that opens "
          "or attaches it later places its channels to wait by polling.")
      .def("close", &PyRegion::close, "Unmap this handle (channels opened from it keep the mapping). Idempotent.")
      .def_property_readonly("closed", &PyRegion::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyRegion& r, py::args) { r.close(); })
      .def(
          "create_stream",
          [](PyRegion& r, const std::string& name, py::object shape, py::object dtype, py::object data,
             std::uint32_t depth, std::uint16_t keywords, std::uint16_t semaphores, const std::string& mode) {
            const auto region = r.r();
            const StreamArgs a = stream_args("creating stream '" + name + "' in region " + r.path(), std::move(shape),
                                             std::move(dtype), std::move(data), depth, keywords, semaphores, 0600);
            const OpenMode om = parse_mode(mode);
            return wrap_stream(without_gil([&] { return region->create_stream(name, a.spec, om); }), a);
          },
          py::arg("name"), py::arg("shape") = py::none(), py::arg("dtype") = py::none(), py::kw_only(),
          py::arg("data") = py::none(), py::arg("depth") = 0, py::arg("keywords") = 0, py::arg("semaphores") = 10,
          py::arg("mode") = "exclusive",
          "Create a stream in the region, arguments as Stream.create: create_stream(name, shape=(h, w), "
          "dtype='float32') or create_stream(name, array). mode 'open_or_create' opens an existing one of the "
          "same shape and dtype. NoSpaceError when no gap or entry is left.")
      .def(
          "open_stream",
          [](PyRegion& r, const std::string& name, bool writable) {
            const auto region = r.r();
            OpenOptions o;
            o.writable = writable;
            return wrap_stream(without_gil([&] { return region->open_stream(name, o); }));
          },
          py::arg("name"), py::kw_only(), py::arg("writable") = true,
          "Open the stream `name` of the region (validated as Stream.open). NotFoundError when absent, "
          "LayoutError when `name` is a queue.")
      .def(
          "create_queue",
          [](PyRegion& r, const std::string& name, std::uint32_t capacity, std::uint32_t max_values,
             const std::string& kind, const std::string& wait, const py::object& signals, const std::string& mode) {
            const auto region = r.r();
            const QueueSpec spec = queue_spec(capacity, max_values, kind, wait, signals, 0600);
            const OpenMode om = parse_mode(mode);
            return wrap_queue(without_gil([&] { return region->create_queue(name, spec, om); }));
          },
          py::arg("name"), py::kw_only(), py::arg("capacity") = 512, py::arg("max_values") = 64,
          py::arg("kind") = "spsc", py::arg("wait") = "hybrid", py::arg("signals") = py::none(),
          py::arg("mode") = "exclusive", "Create a queue in the region, arguments as Queue.create.")
      .def(
          "open_queue",
          [](PyRegion& r, const std::string& name, std::optional<std::uint32_t> max_values,
             std::optional<std::string> kind, const py::object& signals, bool writable) {
            const auto region = r.r();
            const QueueExpect expect = queue_expect(max_values, kind, signals, writable);
            return wrap_queue(without_gil([&] { return region->open_queue(name, expect); }));
          },
          py::arg("name"), py::kw_only(), py::arg("max_values") = py::none(), py::arg("kind") = py::none(),
          py::arg("signals") = py::none(), py::arg("writable") = true,
          "Open the queue `name` of the region, arguments as Queue.open. NotFoundError when absent, "
          "LayoutError when `name` is a stream or differs from what is expected.")
      .def(
          "remove",
          [](PyRegion& r, const std::string& name) {
            const auto region = r.r();
            without_gil([&] { region->remove(name); });
          },
          py::arg("name"),
          "Remove the channel `name`. Handles still open on it see replaced() and raise ReplacedError on "
          "write, push and (once drained) pop; its bytes return to the region when the last writable one closes.")
      .def(
          "remove_entry",
          [](PyRegion& r, std::uint32_t index) {
            const auto region = r.r();
            without_gil([&] { region->remove_entry(index); });
          },
          py::arg("index"),
          "Free directory entry `index` whatever it holds: the last resort for a corrupt entry (which "
          "makes entries() and lookups raise LayoutError naming 'entry INDEX') or one stuck in a state "
          "nobody clears. No check that its creator is done; handles still open on it see replaced(). "
          "ArgumentError when index >= max_entries, NotFoundError when the entry is free.")
      .def(
          "entries",
          [](PyRegion& r) {
            const auto region = r.r();
            const std::vector<RegionEntry> entries = without_gil([&] { return region->entries(); });
            py::list l;
            for (const RegionEntry& e : entries) l.append(entry_dict(e));
            return l;
          },
          "The channels of the region, in table order: dicts with name, kind ('stream', 'queue'), state "
          "('creating', 'ready', 'removing'), offset and size (bytes), generation and owner.")
      .def_property_readonly("path", &PyRegion::path, "The region's file, 'memfd:NAME', or the `what` of attach/format.")
      .def_property_readonly("size", [](PyRegion& r) { return r.r()->size(); }, "Bytes of the region.")
      .def_property_readonly("fd", [](PyRegion& r) { return r.r()->fd(); },
                             "The backing's descriptor, owned by the region (-1 for attached memory).")
      .def_property_readonly("same_kernel", [](PyRegion& r) { return r.r()->same_kernel(); },
                             "False when processes of other kernels (VMs) may use the region: its channels poll.")
      .def_property_readonly("boot_id", [](PyRegion& r) { return r.r()->boot_id(); },
                             "The boot identity of the kernel that created the region.")
      .def_property_readonly("host_name", [](PyRegion& r) { return r.r()->host_name(); },
                             "The host name of the region's creator.")
      .def("__repr__", [](PyRegion& r) {
        if (r.closed()) return "<shmlink.Region '" + r.path() + "' (closed)>";
        const auto region = r.r();
        const std::size_t n = without_gil([&] { return region->entries().size(); });
        return "<shmlink.Region '" + r.path() + "' size=" + std::to_string(region->size()) + " entries=" +
               std::to_string(n) + ">";
      });
  m.def("region_path", [](const std::string& n) { return region_path(n); }, py::arg("name"),
        "The file of a region: <stream_directory()>/<name>.region.shm, or a path containing '/' as given.");
}

}  // namespace shmlink::python
