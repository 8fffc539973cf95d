// SPDX-License-Identifier: MIT
// shmlink._shmlink: the duplex co-simulation link (shmlink.Interface, shmlink.PeerStatus).
// Values are encoded by our exports' table and samples decoded by the peer's (signals.hpp);
// read() and write() wait in sliced() (common.hpp). module.cpp calls register_interface().
#include "signals.hpp"

#include <shmlink/interface.hpp>

#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace shmlink::python {

namespace {

using std::chrono::nanoseconds;

PyObject* g_peer_status_class = nullptr;  // shmlink.PeerStatus, alive as long as the process

InterfaceProtocol parse_protocol(const std::string& p) {
  if (p == "shmlink") return InterfaceProtocol::shmlink;
  if (p == "villas") return InterfaceProtocol::villas;
  raise_code(Errc::invalid_argument, "protocol '" + p + "' is not 'shmlink' or 'villas'");
}

// ---- Interface --------------------------------------------------------------------------

/// An Interface as Python sees it. read() and write() may run in two threads at once (the C++
/// contract); close() from a third waits until they noticed (within a slice) and left.
class PyInterface {
 public:
  explicit PyInterface(InterfaceSpec spec) : i_(std::move(spec)) {}
  PyInterface(const PyInterface&) = delete;
  PyInterface& operator=(const PyInterface&) = delete;
  /// Closes without holding the GIL (a launched peer may take stop_timeout to stop); no read
  /// or write can be running: each holds a reference to this object.
  ~PyInterface() {
    if (!i_.is_open()) return;
#if PY_VERSION_HEX >= 0x030D0000
    const bool finalizing = Py_IsFinalizing() != 0;
#else
    const bool finalizing = _Py_IsFinalizing() != 0;
#endif
    if (finalizing || PyGILState_Check() == 0) {
      i_.close();
      return;
    }
    py::gil_scoped_release nogil;
    i_.close();
  }

  Interface& iface() { return i_; }

  std::string label() const {
    return "interface (out '" + i_.spec().out + "', in '" + i_.spec().in + "')";
  }

  /// Marks one read/write in progress; refuses when not open or closing.
  class Lease {
   public:
    Lease(PyInterface& p, const char* what) : p_(p) {
      if (p.closing_.load() || !p.i_.is_open()) raise_code(Errc::closed, std::string(what) + " " + p.label() + ": it is not open");
      std::lock_guard lk(p.mu_);
      ++p.busy_;
    }
    ~Lease() {
      std::lock_guard lk(p_.mu_);
      if (--p_.busy_ == 0) p_.cv_.notify_all();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    PyInterface& p_;
  };

  void check_closing(const char* what) const {
    if (closing_.load()) raise_code(Errc::closed, std::string(what) + " " + label() + ": it was closed meanwhile");
  }

  py::object peer() const {
    const PeerStatus& p = i_.peer();
    return py::reinterpret_borrow<py::object>(g_peer_status_class)(p.pid, p.launched, p.exited, p.exit_code,
                                                                     p.term_signal, p.closed, p.command, p.describe());
  }

  void open() {
    if (i_.is_open()) return;
    try {
      py::gil_scoped_release nogil;
      i_.open();
    } catch (const Error& e) {
      // A signal gave up the wait (protocol villas): Ctrl-C comes through as KeyboardInterrupt.
      if (e.errc() == Errc::interrupted && PyErr_CheckSignals() != 0) throw py::error_already_set();
      throw;
    }
    out_t_ = make_table(i_.exports(), i_.out_max_values());
    in_t_ = make_table(i_.peer_signals(), i_.in_max_values(), i_.imports());
    in_max_ = i_.in_max_values();
  }

  /// Raises for a failed read/write Status.
  [[noreturn]] void fail(Status st, const char* what, const std::optional<double>& timeout) {
    const std::string head = std::string(what) + " " + label() + ": ";
    switch (st.code()) {
      case Errc::timeout: raise_code(st.code(), head + "timed out after " + seconds_text(timeout));
      case Errc::peer_exited: raise_code(st.code(), head + i_.peer().describe(), peer());
      case Errc::shut_down:
        raise_code(st.code(), head + "the peer closed the interface (" + i_.peer().describe() + ")", peer());
      case Errc::closed: raise_code(st.code(), head + "it is not open");
      default: raise_code(st.code(), head + st.message());
    }
  }

  void write(const py::handle& values, const std::optional<double>& timeout, std::optional<std::uint64_t> sequence,
             std::optional<std::int64_t> ts_origin, std::optional<std::uint32_t> flags) {
    Lease lease(*this, "writing to");
    const std::string ctx = "writing to " + label();
    Status st;
    if (!sequence && !ts_origin && !flags) {
      std::vector<SignalValue> v;
      encode(values, *out_t_, i_.out_max_values(), ctx, v);
      st = sliced(timeout, [&](nanoseconds sl) { return i_.write(std::span<const SignalValue>(v), sl); },
                  [&] { check_closing("writing to"); });
    } else {
      Sample s;
      encode(values, *out_t_, i_.out_max_values(), ctx, s.values);
      s.sequence = sequence.value_or(i_.next_sequence());
      s.ts_origin_ns = ts_origin ? *ts_origin : realtime_ns();
      s.flags = flags.value_or(kDefaultFlags);
      st = sliced(timeout, [&](nanoseconds sl) { return i_.write(s, sl); }, [&] { check_closing("writing to"); });
    }
    if (!st.ok()) fail(st, "writing to", timeout);
  }

  py::object read(const std::optional<double>& timeout) {
    Lease lease(*this, "reading from");
    std::unique_ptr<PySample> out(new PySample(in_t_, in_max_));
    const Status st = sliced(timeout, [&](nanoseconds sl) { return i_.read(out->s, sl); },
                             [&] { check_closing("reading from"); });
    if (!st.ok()) fail(st, "reading from", timeout);
    return py::cast(out.release(), py::return_value_policy::take_ownership);
  }

  bool peer_alive() { return i_.peer_alive(); }

  void close() {
    closing_.store(true);
    {
      py::gil_scoped_release nogil;
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return busy_ == 0; });
      i_.close();
    }
    closing_.store(false);
  }

 private:
  Interface i_;
  TablePtr out_t_;
  TablePtr in_t_;
  std::uint32_t in_max_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  int busy_ = 0;
  std::atomic<bool> closing_{false};
};


constexpr const char* kPeerStatusDoc =
    "What became of an Interface's peer: pid (the launched child, else the creator of the peer's "
    "queue; 0 before attach), launched (started with exec=), exited (its lock was released, with protocol villas its processes ended, or the "
    "child reaped), exit_code (a launched peer's exit status, else -1), term_signal (the signal "
    "that killed a launched peer, else 0), closed (it shut its output cleanly and we drained it), "
    "command (the exec command line, else the peer's queue file), description (one line for people).";

}  // namespace

void register_interface(py::module_& m) {
  py::object namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object ps = namedtuple("PeerStatus",
                             py::make_tuple("pid", "launched", "exited", "exit_code", "term_signal", "closed",
                                            "command", "description"),
                             py::arg("module") = "shmlink");
  ps.attr("__doc__") = kPeerStatusDoc;
  m.attr("PeerStatus") = ps;
  g_peer_status_class = ps.release().ptr();

  py::class_<PyInterface>(m, "Interface", R"doc(A duplex co-simulation link to one peer (VILLASnode shmem / DPsim style).

This side creates and writes queue `out` and reads queue `in_`, the peer's `out`; the peer opens
the same pair swapped. Register signals by index before open(): export_signal() fills our output's
table, import_signal() states what we expect in the peer's (checked at open: LayoutError). With
exec=[argv...], open() launches the peer (SHMLINK_INTERFACE_IN/OUT in its environment) and
close() stops and reaps it. read() raises PeerExitedError when the peer died (after what it sent
was read) and ShutDownError (a ClosedError) when it closed cleanly and was drained; ClosedError
alone means this side is not open.)doc")
      .def(py::init([](const std::string& out, const std::string& in, std::uint32_t capacity, std::uint32_t max_values,
                       const std::string& kind, const std::string& wait, std::optional<double> attach_timeout,
                       const py::object& exec, double stop_timeout, double liveness_interval, int permissions,
                       const py::object& exports, const py::object& imports, const std::string& protocol) {
             InterfaceSpec spec;
             spec.out = out;
             spec.in = in;
             spec.capacity = capacity;
             spec.max_values = max_values;
             spec.kind = parse_kind(kind);
             spec.wait = parse_wait(wait);
             spec.protocol = parse_protocol(protocol);
             spec.attach_timeout = to_ns(attach_timeout);
             spec.stop_timeout = to_ns(stop_timeout);
             spec.liveness_interval = to_ns(liveness_interval);
             spec.permissions = static_cast<mode_t>(permissions);
             if (!exec.is_none()) {
               if (py::isinstance<py::str>(exec) || !PySequence_Check(exec.ptr()))
                 raise_type("exec must be a list of str (the peer's argv), not " + repr_of(exec));
               for (const auto& a : py::reinterpret_borrow<py::sequence>(exec)) spec.exec.push_back(py::str(a).cast<std::string>());
               if (spec.exec.empty()) raise_code(Errc::invalid_argument, "exec is an empty command line");
             }
             auto p = std::make_unique<PyInterface>(std::move(spec));
             for (const Signal& s : signals_from(exports)) p->iface().export_signal(s.index, s.name, s.type, s.unit);
             for (const Signal& s : signals_from(imports)) p->iface().import_signal(s.index, s.name, s.type, s.unit);
             return p;
           }),
           py::arg("out"), py::arg("in_"), py::kw_only(), py::arg("capacity") = 512, py::arg("max_values") = 0,
           py::arg("kind") = "spsc", py::arg("wait") = "hybrid", py::arg("attach_timeout") = 10.0,
           py::arg("exec") = py::none(), py::arg("stop_timeout") = 2.0, py::arg("liveness_interval") = 0.02,
           py::arg("permissions") = 0600, py::arg("exports") = py::none(), py::arg("imports") = py::none(),
           py::arg("protocol") = "shmlink",
           "Keep the settings; nothing is created before open(). max_values 0: the highest exported "
           "index + 1. attach_timeout None: wait for the peer forever. exports/imports: Signal lists, "
           "the same as calling export_signal/import_signal for each. protocol: 'shmlink' (our queue "
           "files) or 'villas' (VILLASnode v1.x shmem regions: out/in_ are POSIX shared-memory names "
           "such as '/villas-peer-out', a villas-node is the peer, no signal table travels, so reads "
           "are decoded by the imports; wait 'polling' makes our region polling, the others pthread).")
      .def(
          "export_signal",
          [](PyInterface& p, std::uint32_t index, const std::string& name, const py::object& type, const std::string& unit) {
            p.iface().export_signal(index, name, parse_type(type), unit);
          },
          py::arg("index"), py::arg("name"), py::arg("type") = "f64", py::arg("unit") = "",
          "Register value `index` of the samples we write (before open()).")
      .def(
          "import_signal",
          [](PyInterface& p, std::uint32_t index, const std::string& name, const py::object& type, const std::string& unit) {
            p.iface().import_signal(index, name, parse_type(type), unit);
          },
          py::arg("index"), py::arg("name"), py::arg("type") = "f64", py::arg("unit") = "",
          "State that value `index` of the peer's samples is `name` of `type` (checked at open(); "
          "an empty name or unit is not compared).")
      .def("open", &PyInterface::open,
           "Create our output, launch `exec`, and wait (GIL released) up to attach_timeout for the "
           "peer. WaitTimeout, PeerExitedError (a launched peer ended first), LayoutError (imports "
           "differ from the peer's table), ExistsError (our output is another live interface's).")
      .def_property_readonly("is_open", [](PyInterface& p) { return p.iface().is_open(); })
      .def("write", &PyInterface::write, py::arg("values"), py::arg("timeout") = py::none(), py::kw_only(),
           py::arg("sequence") = py::none(), py::arg("ts_origin") = py::none(), py::arg("flags") = py::none(),
           "Send one sample (values stored by our exports' types), waiting while our output is full "
           "(WaitTimeout; None: forever). Stamps the next sequence and ts_origin = now unless given. "
           "PeerExitedError when the peer is gone, ShutDownError when it closed, ClosedError when we are not open.")
      .def("read", &PyInterface::read, py::arg("timeout") = py::none(),
           "Receive the peer's next sample (decoded by its signal table). WaitTimeout; "
           "PeerExitedError once the peer died and what it sent was read (message: what became of "
           "it; `peer` attribute: the PeerStatus); ShutDownError once it closed and was drained.")
      .def("close", &PyInterface::close,
           "Shut our output, stop and reap a launched peer (stop_timeout, then SIGTERM, then SIGKILL), "
           "remove our output file. Idempotent; a read or write in another thread raises ClosedError.")
      .def("__enter__",
           [](py::object self) {
             self.cast<PyInterface&>().open();
             return self;
           })
      .def("__exit__", [](PyInterface& p, py::args) { p.close(); })
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PyInterface& p) -> py::object {
             try {
               return p.read(std::nullopt);
             } catch (py::error_already_set& e) {
               if (e.matches(py::module_::import("shmlink.errors").attr("ShutDownError")))
                 throw py::stop_iteration();
               throw;
             }
           },
           "Iterating reads until the peer closes (PeerExitedError if it dies).")
      .def_property_readonly("peer", &PyInterface::peer, "A PeerStatus: what became of the peer.")
      .def("peer_alive", &PyInterface::peer_alive, "Check now whether the peer is alive.")
      .def_property_readonly("exports", [](PyInterface& p) { return signals_to_py(p.iface().exports()); })
      .def_property_readonly("imports", [](PyInterface& p) { return signals_to_py(p.iface().imports()); })
      .def_property_readonly("peer_signals", [](PyInterface& p) { return signals_to_py(p.iface().peer_signals()); },
                             "The peer's signal table (after open()).")
      .def_property_readonly("next_sequence", [](PyInterface& p) { return p.iface().next_sequence(); },
                             "The sequence number the next write() carries.")
      .def_property_readonly("out", [](PyInterface& p) { return p.iface().spec().out; })
      .def_property_readonly("in_", [](PyInterface& p) { return p.iface().spec().in; })
      .def("__repr__", [](PyInterface& p) {
        return "<shmlink.Interface out='" + p.iface().spec().out + "' in='" + p.iface().spec().in + "' " +
               (p.iface().is_open() ? "open" : "not open") + ">";
      });
}

}  // namespace shmlink::python
