// SPDX-License-Identifier: MIT
// shmlink._shmlink: signal tables, encoding and decoding of values, shmlink.Sample (signals.hpp).
#include "signals.hpp"

#include <cmath>
#include <ctime>
#include <limits>

namespace shmlink::python {

namespace {

// The classes made in register_samples(), alive as long as the process.
PyObject* g_signal_class = nullptr;  // shmlink.Signal
PyObject* g_np_bool = nullptr;       // numpy.bool_
PyObject* g_np_complex = nullptr;    // numpy.complexfloating

/// The Signal namedtuple's docstring.
constexpr const char* kSignalDoc =
    "Signal(index, name, type='f64', unit=''): what value `index` of every sample means. type is "
    "'f64' (float), 'i64' (int), 'bool' or 'c64' (complex64: real and imaginary float32).";

/// One number as Python gave it.
struct Num {
  enum class Kind { boolean, integer, real, complex } kind = Kind::real;
  std::int64_t i = 0;
  double f = 0;
  std::complex<double> c;
};

std::string num_text(const Num& n) {
  switch (n.kind) {
    case Num::Kind::boolean: return n.i ? "True" : "False";
    case Num::Kind::integer: return std::to_string(n.i);
    case Num::Kind::real: return repr_of(py::float_(n.f));
    case Num::Kind::complex:
      return repr_of(py::reinterpret_steal<py::object>(PyComplex_FromDoubles(n.c.real(), n.c.imag())));
  }
  return "?";
}

/// Classifies one Python object (int, float, bool, complex or their numpy scalars).
Num num_of(const py::handle& o, std::size_t i, const std::string& ctx) {
  PyObject* p = o.ptr();
  Num n;
  if (PyBool_Check(p) || PyObject_IsInstance(p, g_np_bool) == 1) {
    n.kind = Num::Kind::boolean;
    n.i = PyObject_IsTrue(p) == 1 ? 1 : 0;
    return n;
  }
  if (PyComplex_Check(p) || PyObject_IsInstance(p, g_np_complex) == 1) {  // before floats: numpy
    const Py_complex c = PyComplex_AsCComplex(p);                          // complex has __float__
    if (c.real == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    n.kind = Num::Kind::complex;
    n.c = {c.real, c.imag};
    return n;
  }
  if (PyLong_Check(p) || (PyIndex_Check(p) && !PyFloat_Check(p))) {  // int and numpy integers
    py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(p));
    if (!idx) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
    if (overflow != 0)
      raise_code(Errc::invalid_argument, ctx + ": value " + repr_of(o) + " at index " + std::to_string(i) +
                                             " does not fit in 64 bits");
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    n.kind = Num::Kind::integer;
    n.i = v;
    return n;
  }
  if (!py::isinstance<py::str>(o) && !py::isinstance<py::bytes>(o)) {  // float, numpy floats, __float__
    const double d = PyFloat_AsDouble(p);
    if (!(d == -1.0 && PyErr_Occurred())) {
      n.kind = Num::Kind::real;
      n.f = d;
      return n;
    }
    PyErr_Clear();
  }
  raise_type(ctx + ": value " + repr_of(o) + " at index " + std::to_string(i) + " is not a number");
}

/// One value stored as the table's type for index `i` says (or as its own kind, untyped).
/// One value stored as the table's type for index `i` says (or as its own kind, untyped).
SignalValue encode_one(const Num& n, std::size_t i, const Table& t, const std::string& ctx) {
  const SignalType type = t.at(i);
  auto refuse = [&](const std::string& why) -> SignalValue {
    raise_code(Errc::invalid_argument, ctx + ": value " + num_text(n) + " at index " + std::to_string(i) + t.about(i) + " " + why);
  };
  using K = Num::Kind;
  switch (type) {
    case SignalType::invalid:  // no table entry: f64, Signal's default type (as C++ peers read it)
      if (n.kind == K::complex) return refuse("is complex: an index without a signal needs a c64 signal for that");
      return SignalValue::of(n.kind == K::real ? n.f : static_cast<double>(n.i));
    case SignalType::f64:
      if (n.kind == K::complex) return refuse("is complex");
      return SignalValue::of(n.kind == K::real ? n.f : static_cast<double>(n.i));
    case SignalType::i64:
      if (n.kind == K::complex) return refuse("is complex");
      if (n.kind == K::real) {
        // 2^63 is exact in double; -2^63 is the smallest int64
        if (!std::isfinite(n.f) || n.f != std::trunc(n.f) || n.f < -9223372036854775808.0 || n.f >= 9223372036854775808.0)
          return refuse("is not an integer that fits in 64 bits");
        return SignalValue::of(static_cast<std::int64_t>(n.f));
      }
      return SignalValue::of(n.i);
    case SignalType::boolean:
      if (n.kind == K::complex) return refuse("is complex");
      if (n.kind == K::real) {
        if (std::isnan(n.f)) return refuse("is NaN");
        return SignalValue::of(n.f != 0.0);
      }
      return SignalValue::of(n.i != 0);
    case SignalType::c64: {
      const std::complex<double> c = n.kind == K::complex ? n.c
                                     : n.kind == K::real  ? std::complex<double>(n.f, 0.0)
                                                          : std::complex<double>(static_cast<double>(n.i), 0.0);
      return SignalValue::of(std::complex<float>(static_cast<float>(c.real()), static_cast<float>(c.imag())));
    }
  }
  return SignalValue::of(n.f);
}

}  // namespace

/// Encodes `values` (a 1-D sequence or ndarray of numbers) into `out` by table `t`.
void encode(const py::handle& values, const Table& t, std::uint32_t max_values, const std::string& ctx,
            std::vector<SignalValue>& out) {
  out.clear();
  auto check_size = [&](std::size_t n) {
    if (n > max_values)
      raise_code(Errc::size_mismatch, ctx + ": " + std::to_string(n) + " values, at most " +
                                          std::to_string(max_values) + " per sample");
    out.reserve(n);
  };
  if (py::isinstance<py::str>(values) || py::isinstance<py::bytes>(values))
    raise_type(ctx + ": values must be a sequence of numbers, not " + std::string(py::str(values.get_type().attr("__name__"))));
  if (py::isinstance<py::array>(values)) {
    const py::array a = py::reinterpret_borrow<py::array>(values);
    if (a.ndim() != 1)
      raise_code(Errc::size_mismatch, ctx + ": values must be 1-D, got an array of shape " +
                                          repr_of(py::tuple(a.attr("shape"))));
    const char kind = a.dtype().kind();
    const auto n = static_cast<std::size_t>(a.shape(0));
    if (kind != 'O') check_size(n);
    Num num;
    if (kind == 'b' || kind == 'i' || kind == 'u') {
      if (kind == 'u' && a.itemsize() == 8 && n > 0 &&
          a.attr("max")().cast<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        raise_code(Errc::invalid_argument, ctx + ": a uint64 value does not fit in int64");
      const auto v = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(values);
      if (!v) throw py::error_already_set();
      num.kind = kind == 'b' ? Num::Kind::boolean : Num::Kind::integer;
      for (std::size_t i = 0; i < n; ++i) {
        num.i = v.data()[i];
        out.push_back(encode_one(num, i, t, ctx));
      }
      return;
    }
    if (kind == 'f') {
      const auto v = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(values);
      if (!v) throw py::error_already_set();
      num.kind = Num::Kind::real;
      for (std::size_t i = 0; i < n; ++i) {
        num.f = v.data()[i];
        out.push_back(encode_one(num, i, t, ctx));
      }
      return;
    }
    if (kind == 'c') {
      const auto v = py::array_t<std::complex<double>, py::array::c_style | py::array::forcecast>::ensure(values);
      if (!v) throw py::error_already_set();
      num.kind = Num::Kind::complex;
      for (std::size_t i = 0; i < n; ++i) {
        num.c = v.data()[i];
        out.push_back(encode_one(num, i, t, ctx));
      }
      return;
    }
    if (kind != 'O')
      raise_type(ctx + ": values of dtype " + std::string(py::str(a.dtype())) + " are not numbers");
    // object arrays: element by element, below
  }
  py::object seq = py::reinterpret_steal<py::object>(PySequence_Fast(values.ptr(), "values must be a sequence of numbers"));
  if (!seq) {
    PyErr_Clear();
    raise_type(ctx + ": values must be a sequence of numbers, not " + std::string(py::str(values.get_type().attr("__name__"))));
  }
  const auto n = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(seq.ptr()));
  check_size(n);
  PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
  for (std::size_t i = 0; i < n; ++i) out.push_back(encode_one(num_of(items[i], i, ctx), i, t, ctx));
}


/// The current time as the library stamps samples: CLOCK_REALTIME, ns since the epoch.
std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string type_name(SignalType t) { return std::string(signal_type_name(t)); }

/// "f64", "i64", "bool", "c64" (and "float", "int", "boolean", "complex", or the Python types
/// float, int, bool, complex) to a SignalType.
SignalType parse_type(const py::handle& t) {
  PyObject* p = t.ptr();
  if (p == reinterpret_cast<PyObject*>(&PyFloat_Type)) return SignalType::f64;
  if (p == reinterpret_cast<PyObject*>(&PyLong_Type)) return SignalType::i64;
  if (p == reinterpret_cast<PyObject*>(&PyBool_Type)) return SignalType::boolean;
  if (p == reinterpret_cast<PyObject*>(&PyComplex_Type)) return SignalType::c64;
  if (py::isinstance<py::str>(t)) {
    const auto s = t.cast<std::string>();
    if (s == "f64" || s == "float" || s == "double") return SignalType::f64;
    if (s == "i64" || s == "int" || s == "integer") return SignalType::i64;
    if (s == "bool" || s == "boolean") return SignalType::boolean;
    if (s == "c64" || s == "complex") return SignalType::c64;
  }
  raise_code(Errc::invalid_argument,
             "signal type " + repr_of(t) + " is not one of 'f64', 'i64', 'bool', 'c64' (or float, int, bool, complex)");
}

QueueKind parse_kind(const std::string& k) {
  if (k == "spsc") return QueueKind::spsc;
  if (k == "mpmc") return QueueKind::mpmc;
  raise_code(Errc::invalid_argument, "queue kind '" + k + "' is not 'spsc' or 'mpmc'");
}

WaitMode parse_wait(const std::string& w) {
  if (w == "polling") return WaitMode::polling;
  if (w == "futex") return WaitMode::futex;
  if (w == "hybrid") return WaitMode::hybrid;
  raise_code(Errc::invalid_argument, "wait mode '" + w + "' is not 'polling', 'futex' or 'hybrid'");
}

std::string wait_name(WaitMode w) {
  switch (w) {
    case WaitMode::polling: return "polling";
    case WaitMode::futex: return "futex";
    case WaitMode::hybrid: return "hybrid";
  }
  return "hybrid";
}


/// A Signal from a shmlink.Signal or any (index, name[, type[, unit]]) sequence.
Signal signal_from(const py::handle& obj) {
  if (py::isinstance<py::str>(obj) || !PySequence_Check(obj.ptr()))
    raise_type("a signal is a shmlink.Signal or an (index, name[, type[, unit]]) tuple, not " + repr_of(obj));
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  const auto n = seq.size();
  if (n < 2 || n > 4)
    raise_type("a signal is a shmlink.Signal or an (index, name[, type[, unit]]) tuple, not " + repr_of(obj));
  Signal s;
  const auto index = seq[0].cast<std::int64_t>();
  if (index < 0 || index >= static_cast<std::int64_t>(kMaxSampleValues))
    raise_code(Errc::invalid_argument, "signal " + repr_of(obj) + ": index " + std::to_string(index) +
                                           " is not 0.." + std::to_string(kMaxSampleValues - 1));
  s.index = static_cast<std::uint32_t>(index);
  s.name = seq[1].cast<std::string>();
  s.type = n >= 3 ? parse_type(seq[2]) : SignalType::f64;
  s.unit = n >= 4 ? seq[3].cast<std::string>() : std::string();
  return s;
}

std::vector<Signal> signals_from(const py::handle& obj) {
  std::vector<Signal> out;
  if (obj.is_none()) return out;
  if (py::isinstance<py::str>(obj) || !PySequence_Check(obj.ptr()))
    raise_type("signals must be a sequence of shmlink.Signal or (index, name[, type[, unit]]) tuples");
  for (const auto& item : py::reinterpret_borrow<py::sequence>(obj)) out.push_back(signal_from(item));
  return out;
}

py::object signal_to_py(const Signal& s) {
  return py::reinterpret_borrow<py::object>(g_signal_class)(s.index, s.name, type_name(s.type), s.unit);
}

py::list signals_to_py(const std::vector<Signal>& v) {
  py::list l;
  for (const auto& s : v) l.append(signal_to_py(s));
  return l;
}



/// The table of `primary` (a queue's own), completed by `extra` for indices it lacks.
TablePtr make_table(const std::vector<Signal>& primary, std::uint32_t max_values,
                    const std::vector<Signal>& extra) {
  auto t = std::make_shared<Table>();
  t->types.assign(max_values, SignalType::invalid);
  t->names.assign(max_values, std::string());
  auto add = [&](const Signal& s) {
    if (s.index >= max_values || t->types[s.index] != SignalType::invalid) return;
    t->types[s.index] = s.type;
    t->names[s.index] = s.name;
    t->signals.push_back(s);
    if (s.type == SignalType::c64) t->complex = true;
  };
  for (const auto& s : primary) add(s);
  for (const auto& s : extra) add(s);
  return t;
}

// ---- decoding -------------------------------------------------------------------------

py::object decode(SignalValue v, SignalType t) {
  switch (t) {
    case SignalType::i64: return py::int_(v.i);
    case SignalType::boolean: return py::bool_(v.bits != 0);
    case SignalType::c64:
      return py::reinterpret_steal<py::object>(PyComplex_FromDoubles(static_cast<double>(v.z[0]), static_cast<double>(v.z[1])));
    case SignalType::f64:
    case SignalType::invalid: break;
  }
  return py::float_(v.f);
}


void register_samples(py::module_& m) {
  py::object namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object sig = namedtuple("Signal", py::make_tuple("index", "name", "type", "unit"),
                              py::arg("defaults") = py::make_tuple("f64", ""), py::arg("module") = "shmlink");
  sig.attr("__doc__") = kSignalDoc;
  m.attr("Signal") = sig;
  g_signal_class = sig.release().ptr();  // one reference kept for the process's lifetime
  py::module_ np = py::module_::import("numpy");
  g_np_bool = py::object(np.attr("bool_")).release().ptr();
  g_np_complex = py::object(np.attr("complexfloating")).release().ptr();

  m.attr("SAMPLE_HAS_TS_ORIGIN") = kSampleHasTsOrigin;
  m.attr("SAMPLE_HAS_TS_RECEIVED") = kSampleHasTsReceived;
  m.attr("SAMPLE_HAS_SEQUENCE") = kSampleHasSequence;
  m.attr("SAMPLE_HAS_DATA") = kSampleHasData;
  m.attr("SAMPLE_NEW_FRAME") = kSampleNewFrame;
  m.attr("SAMPLE_NEW_SIMULATION") = kSampleNewSimulation;
  m.attr("MAX_SAMPLE_VALUES") = kMaxSampleValues;

  py::class_<PySample>(m, "Sample", R"doc(One sample received from a Queue or an Interface (a copy).

Values are decoded by the signal table of the queue the sample came from: `sample[i]` and
`value(i)` give float (f64), int (i64), bool (bool) or complex (c64); an index without a table
entry reads as float. `values` is a float64 array (complex128 when the table has a c64 signal)
with ints and bools converted; `raw` is the 8-byte values as uint64, bit for bit.)doc")
      .def_property_readonly("sequence", [](const PySample& s) { return s.s.sequence; }, "The producer's sequence number.")
      .def_property_readonly("ts_origin", [](const PySample& s) { return s.s.ts_origin_ns; },
                             "When the values were sampled: ns since the epoch (CLOCK_REALTIME).")
      .def_property_readonly("ts_received", [](const PySample& s) { return s.s.ts_received_ns; },
                             "When the sample was received (Interface.read stamps it): ns since the epoch; 0 if not.")
      .def_property_readonly("flags", [](const PySample& s) { return s.s.flags; }, "SAMPLE_* bits (shmlink.SampleFlag).")
      .def_property_readonly("values", &PySample::values,
                             "The values as a new float64 array (complex128 when the table has a c64 signal).")
      .def_property_readonly("raw", &PySample::raw, "The 8-byte values bit for bit, as a new uint64 array.")
      .def("value", &PySample::value, py::arg("index"), py::arg("type") = py::none(),
           "Value `index` as its signal type says (float, int, bool, complex), or as `type` "
           "('f64', 'i64', 'bool', 'c64') when given; untyped indices read as float.")
      .def("tolist", &PySample::tolist, "Every value, typed as value(i) types it.")
      .def("asdict", &PySample::asdict, "{signal name: typed value} for the table's signals this sample holds.")
      .def("__len__", &PySample::size)
      .def("__getitem__", [](const PySample& s, py::ssize_t i) { return s.value(i, py::none()); })
      .def("__iter__", [](const PySample& s) { return py::iter(s.tolist()); })
      .def("__repr__", &PySample::repr);
}

}  // namespace shmlink::python
