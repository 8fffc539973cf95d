// SPDX-License-Identifier: MIT
// shmlink._shmlink: regions (shmlink.Region): one mapping holding a directory of named streams
// and queues. The channels it creates and opens are the ordinary shmlink.Stream and
// shmlink.Queue (numpy views, waits, errors as for files); they keep the region mapped after the
// Region handle is closed. module.cpp calls register_region().
#include "common.hpp"

#include <shmlink/region.hpp>

#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace shmlink::python {

namespace {

/// One region handle as Python sees it.
class PyRegion {
 public:
  explicit PyRegion(Region r) : r_(std::move(r)), path_(r_.path()) {}

  /// The region; ClosedError once closed.
  Region& r() {
    if (!r_.valid()) raise_code(Errc::closed, "region '" + path_ + "' is closed");
    return r_;
  }
  void close() { r_ = Region(); }
  bool closed() const { return !r_.valid(); }
  const std::string& path() const { return path_; }

 private:
  Region r_;
  std::string path_;
};

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
  py::class_<PyRegion>(m, "Region", R"doc(A region: one shared mapping (a file on /dev/shm or hugetlbfs) holding a
directory of named streams and queues, e.g. for QEMU ivshmem.

Region(path) opens an existing region; Region.create(path, size) makes one. A path without '/'
means <stream_directory()>/<name>.region.shm. create_stream/open_stream and create_queue/open_queue
return the ordinary shmlink.Stream and shmlink.Queue (numpy views, waits and errors as for files),
found by other processes by name; they stay usable after the Region is closed. Errors map to the
built-in exceptions as everywhere (FileNotFoundError, FileExistsError, PermissionError, ...).)doc")
      .def(py::init([](const std::string& path, bool writable) {
             return std::make_unique<PyRegion>(Region::open(path, writable));
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
            return std::make_unique<PyRegion>(Region::create(path, static_cast<std::size_t>(size), parse_mode(mode), o));
          },
          py::arg("path"), py::arg("size"), py::kw_only(), py::arg("mode") = "exclusive", py::arg("permissions") = 0600,
          py::arg("max_entries") = 256,
          "Create a region of `size` bytes (a power of two, at least 64 KiB; on hugetlbfs a multiple of "
          "the huge page size) with room for max_entries channels. mode: 'exclusive' (FileExistsError if "
          "present), 'purge' (a new file replaces the old), 'open_or_create' (opens one of the same size), 'open'.")
      .def("close", &PyRegion::close, "Unmap this handle (channels opened from it keep the mapping). Idempotent.")
      .def_property_readonly("closed", &PyRegion::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyRegion& r, py::args) { r.close(); })
      .def(
          "create_stream",
          [](PyRegion& r, const std::string& name, py::object shape, py::object dtype, py::object data,
             std::uint32_t depth, std::uint16_t keywords, std::uint16_t semaphores, const std::string& mode) {
            Region& region = r.r();
            const StreamArgs a = stream_args("creating stream '" + name + "' in region " + r.path(), std::move(shape),
                                             std::move(dtype), std::move(data), depth, keywords, semaphores, 0600);
            return wrap_stream(region.create_stream(name, a.spec, parse_mode(mode)), a);
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
            OpenOptions o;
            o.writable = writable;
            return wrap_stream(r.r().open_stream(name, o));
          },
          py::arg("name"), py::kw_only(), py::arg("writable") = true,
          "Open the stream `name` of the region (validated as Stream.open). NotFoundError when absent, "
          "LayoutError when `name` is a queue.")
      .def(
          "create_queue",
          [](PyRegion& r, const std::string& name, std::uint32_t capacity, std::uint32_t max_values,
             const std::string& kind, const std::string& wait, const py::object& signals, const std::string& mode) {
            Region& region = r.r();
            return wrap_queue(
                region.create_queue(name, queue_spec(capacity, max_values, kind, wait, signals, 0600), parse_mode(mode)));
          },
          py::arg("name"), py::kw_only(), py::arg("capacity") = 512, py::arg("max_values") = 64,
          py::arg("kind") = "spsc", py::arg("wait") = "hybrid", py::arg("signals") = py::none(),
          py::arg("mode") = "exclusive", "Create a queue in the region, arguments as Queue.create.")
      .def(
          "open_queue",
          [](PyRegion& r, const std::string& name, std::optional<std::uint32_t> max_values,
             std::optional<std::string> kind, const py::object& signals, bool writable) {
            Region& region = r.r();
            return wrap_queue(region.open_queue(name, queue_expect(max_values, kind, signals, writable)));
          },
          py::arg("name"), py::kw_only(), py::arg("max_values") = py::none(), py::arg("kind") = py::none(),
          py::arg("signals") = py::none(), py::arg("writable") = true,
          "Open the queue `name` of the region, arguments as Queue.open. NotFoundError when absent, "
          "LayoutError when `name` is a stream or differs from what is expected.")
      .def(
          "remove", [](PyRegion& r, const std::string& name) { r.r().remove(name); }, py::arg("name"),
          "Remove the channel `name`. Handles still open on it see replaced() and raise ReplacedError on "
          "write, push and (once drained) pop; its bytes return to the region when the last writable one closes.")
      .def(
          "entries",
          [](PyRegion& r) {
            py::list l;
            for (const RegionEntry& e : r.r().entries()) l.append(entry_dict(e));
            return l;
          },
          "The channels of the region, in table order: dicts with name, kind ('stream', 'queue'), state "
          "('creating', 'ready', 'removing'), offset and size (bytes), generation and owner.")
      .def_property_readonly("path", &PyRegion::path, "The region's file.")
      .def_property_readonly("size", [](PyRegion& r) { return r.r().size(); }, "Bytes of the region.")
      .def_property_readonly("boot_id", [](PyRegion& r) { return r.r().boot_id(); },
                             "The boot identity of the kernel that created the region.")
      .def_property_readonly("host_name", [](PyRegion& r) { return r.r().host_name(); },
                             "The host name of the region's creator.")
      .def("__repr__", [](PyRegion& r) {
        if (r.closed()) return "<shmlink.Region '" + r.path() + "' (closed)>";
        return "<shmlink.Region '" + r.path() + "' size=" + std::to_string(r.r().size()) + " entries=" +
               std::to_string(r.r().entries().size()) + ">";
      });
  m.def("region_path", [](const std::string& n) { return region_path(n); }, py::arg("name"),
        "The file of a region: <stream_directory()>/<name>.region.shm, or a path containing '/' as given.");
}

}  // namespace shmlink::python
