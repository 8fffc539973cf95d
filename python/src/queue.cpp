// SPDX-License-Identifier: MIT
// shmlink._shmlink, part two: sample queues (shmlink.Queue, shmlink.Sample) and the duplex
// co-simulation link (shmlink.Interface). module.cpp calls register_queues().
//
// Values travel as 8-byte SignalValues whose meaning is the signal table's business. Python
// values are encoded per index by the table (f64, i64, bool, c64) and samples are decoded by
// the table of the queue they came from. An index without a table entry is f64 both ways (the
// default type of a Signal, and how C++ peers read it), so push([k]) then pop()[0] == k holds
// on a queue without a table.
// The rules are spelled out in docs/python.md "Queues and co-simulation".
//
// Every blocking call waits in 50 ms slices with the GIL released and checks for signals
// between them (Ctrl-C raises KeyboardInterrupt), as Stream.wait does.
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Python.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <complex>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace shmlink;

void register_queues(py::module_& m);

namespace {

using std::chrono::nanoseconds;

/// Raises the exception class shmlink.errors maps `code` to, with `message`; `peer`, when
/// given, becomes the exception's `peer` attribute (a PeerStatus).
[[noreturn]] void raise_code(Errc code, const std::string& message, const py::object& peer = py::object()) {
  py::object exc = py::module_::import("shmlink.errors").attr("from_code")(static_cast<int>(code), message);
  if (peer) exc.attr("peer") = peer;
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

[[noreturn]] void raise_type(const std::string& message) { throw py::type_error(message); }

/// Seconds (float, None = forever) to nanoseconds.
nanoseconds to_ns(const std::optional<double>& seconds) {
  if (!seconds) return kForever;
  if (std::isnan(*seconds)) raise_code(Errc::invalid_argument, "a timeout is NaN");
  if (*seconds <= 0) return nanoseconds::zero();
  if (*seconds > 1e9) return kForever;
  return nanoseconds(static_cast<std::int64_t>(*seconds * 1e9));
}

/// "0.25 s" for messages.
std::string seconds_text(const std::optional<double>& s) {
  if (!s) return "forever";
  return py::repr(py::float_(*s)).cast<std::string>() + " s";
}

/// repr(obj).
std::string repr_of(const py::handle& h) { return py::repr(h).cast<std::string>(); }

/// The current time as the library stamps samples: CLOCK_REALTIME, ns since the epoch.
std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// ---- the namedtuples (created in register_queues, alive as long as the process) ----------

PyObject* g_signal_class = nullptr;       // shmlink.Signal
PyObject* g_peer_status_class = nullptr;  // shmlink.PeerStatus
PyObject* g_np_bool = nullptr;            // numpy.bool_
PyObject* g_np_complex = nullptr;         // numpy.complexfloating

// ---- signal types and tables ------------------------------------------------------------

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

std::string kind_name(QueueKind k) { return k == QueueKind::mpmc ? "mpmc" : "spsc"; }

InterfaceProtocol parse_protocol(const std::string& p) {
  if (p == "shmlink") return InterfaceProtocol::shmlink;
  if (p == "villas") return InterfaceProtocol::villas;
  raise_code(Errc::invalid_argument, "protocol '" + p + "' is not 'shmlink' or 'villas'");
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

/// The open mode names of Queue.create (those of Stream.create).
OpenMode parse_mode(const std::string& m) {
  if (m == "exclusive") return OpenMode::ExclusiveCreate;
  if (m == "purge" || m == "replace") return OpenMode::PurgeAndCreate;
  if (m == "open_or_create") return OpenMode::OpenOrCreate;
  if (m == "open") return OpenMode::OpenExisting;
  raise_code(Errc::invalid_argument,
             "mode '" + m + "' is not one of 'exclusive', 'purge' ('replace'), 'open_or_create', 'open'");
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

/// What each index of a queue's samples means: the signal table spread out by index.
struct Table {
  std::vector<SignalType> types;  ///< by index; invalid = no entry
  std::vector<std::string> names;
  std::vector<Signal> signals;
  bool complex = false;  ///< a c64 signal exists: Sample.values is complex128

  SignalType at(std::size_t i) const { return i < types.size() ? types[i] : SignalType::invalid; }
  /// " (signal 'v', i64)" or "" for messages.
  std::string about(std::size_t i) const {
    if (at(i) == SignalType::invalid) return "";
    return " (signal '" + names[i] + "', " + type_name(types[i]) + ")";
  }
};
using TablePtr = std::shared_ptr<const Table>;

/// The table of `primary` (a queue's own), completed by `extra` for indices it lacks.
TablePtr make_table(const std::vector<Signal>& primary, std::uint32_t max_values,
                    const std::vector<Signal>& extra = {}) {
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

// ---- encoding Python values -------------------------------------------------------------

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

/// A received sample and the table it is decoded by.
class PySample {
 public:
  PySample(TablePtr t, std::uint32_t max_values) : t_(std::move(t)) { s.values.reserve(max_values); }

  Sample s;

  const Table& table() const { return *t_; }
  std::size_t size() const { return s.values.size(); }

  std::size_t index(py::ssize_t i) const {
    const auto n = static_cast<py::ssize_t>(size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw py::index_error("sample value index out of range");
    return static_cast<std::size_t>(i);
  }

  py::object value(py::ssize_t i, const py::object& type) const {
    const std::size_t k = index(i);
    return decode(s.values[k], type.is_none() ? t_->at(k) : parse_type(type));
  }

  py::list tolist() const {
    py::list l;
    for (std::size_t i = 0; i < size(); ++i) l.append(decode(s.values[i], t_->at(i)));
    return l;
  }

  py::dict asdict() const {
    py::dict d;
    for (const auto& sig : t_->signals)
      if (sig.index < size()) d[py::str(sig.name)] = decode(s.values[sig.index], sig.type);
    return d;
  }

  /// float64 (complex128 when the table has a c64 signal), one element per value.
  py::array values() const {
    const std::size_t n = size();
    if (t_->complex) {
      py::array_t<std::complex<double>> a(static_cast<py::ssize_t>(n));
      auto* d = a.mutable_data();
      for (std::size_t i = 0; i < n; ++i) d[i] = as_complex(i);
      return a;
    }
    py::array_t<double> a(static_cast<py::ssize_t>(n));
    auto* d = a.mutable_data();
    for (std::size_t i = 0; i < n; ++i) d[i] = as_double(i);
    return a;
  }

  py::array raw() const {
    py::array_t<std::uint64_t> a(static_cast<py::ssize_t>(size()));
    auto* d = a.mutable_data();
    for (std::size_t i = 0; i < size(); ++i) d[i] = s.values[i].bits;
    return a;
  }

  std::string repr() const {
    std::string v = repr_of(tolist());
    return "Sample(sequence=" + std::to_string(s.sequence) + ", ts_origin=" + std::to_string(s.ts_origin_ns) +
           ", flags=" + std::to_string(s.flags) + ", values=" + v + ")";
  }

 private:
  double as_double(std::size_t i) const {
    const SignalValue v = s.values[i];
    switch (t_->at(i)) {
      case SignalType::i64: return static_cast<double>(v.i);
      case SignalType::boolean: return v.bits != 0 ? 1.0 : 0.0;
      case SignalType::c64: return static_cast<double>(v.z[0]);
      case SignalType::f64:
      case SignalType::invalid: break;
    }
    return v.f;
  }
  std::complex<double> as_complex(std::size_t i) const {
    const SignalValue v = s.values[i];
    if (t_->at(i) == SignalType::c64) return {static_cast<double>(v.z[0]), static_cast<double>(v.z[1])};
    return {as_double(i), 0.0};
  }

  TablePtr t_;
};

// ---- blocking calls in slices -----------------------------------------------------------

constexpr nanoseconds kSlice = std::chrono::milliseconds(50);

/// Runs `op(slice)` (GIL released) until it returns something other than timeout, interrupted
/// or would_block, or until `timeout` passed (then Errc::timeout). Between slices: Ctrl-C
/// (KeyboardInterrupt) and `check()` (which may raise, e.g. when the handle was closed).
template <class Op, class Check>
Status sliced(const std::optional<double>& timeout, Op&& op, Check&& check) {
  const nanoseconds total = to_ns(timeout);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    nanoseconds left = kForever;
    if (total != kForever)
      left = std::max<nanoseconds>(total - (std::chrono::steady_clock::now() - start), nanoseconds::zero());
    const nanoseconds slice = std::min(left, kSlice);
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

constexpr std::uint32_t kDefaultFlags = kSampleHasSequence | kSampleHasData | kSampleHasTsOrigin;

// ---- Queue ------------------------------------------------------------------------------

/// One queue handle as Python sees it. Blocking calls hold a reference to the Queue, so a
/// close() from another thread never unmaps under them (they notice within a slice).
class PyQueue {
 public:
  explicit PyQueue(Queue q) : q_(std::make_shared<Queue>(std::move(q))) {
    name_ = q_->name();
    max_values_ = q_->max_values();
    table_ = make_table(q_->signals(), max_values_);
  }

  std::shared_ptr<Queue> q() const {
    if (!q_) raise_code(Errc::closed, "queue '" + name_ + "' is closed");
    return q_;
  }
  void check_open(const char* what) const {
    if (!q_) raise_code(Errc::closed, std::string(what) + " queue '" + name_ + "': the handle was closed meanwhile");
  }

  /// Raises for a failed Status, naming the queue.
  [[noreturn]] void fail(Status st, const std::string& what, const std::optional<double>& timeout = std::nullopt) const {
    std::string msg = what + " queue '" + name_ + "': ";
    switch (st.code()) {
      case Errc::timeout: msg += "timed out after " + seconds_text(timeout); break;
      case Errc::closed: msg += what.starts_with("pop") ? "it was shut down and is drained" : "it was shut down"; break;
      case Errc::permission: msg += "the handle is read-only (opened with writable=False)"; break;
      default: msg += st.message();
    }
    raise_code(st.code(), msg);
  }

  /// The sample `values` make, stamped as push() documents (the caller sets the sequence).
  Sample make(const py::handle& values, std::optional<std::uint64_t> sequence, std::optional<std::int64_t> ts_origin,
              std::optional<std::uint32_t> flags, const std::string& ctx) const {
    Sample s;
    encode(values, *table_, max_values_, ctx, s.values);
    s.sequence = sequence.value_or(0);
    s.ts_origin_ns = ts_origin ? *ts_origin : realtime_ns();
    s.flags = flags.value_or(kDefaultFlags);
    return s;
  }

  /// Reserves a sequence number (the given one, or the next of this handle).
  std::uint64_t take_sequence(std::optional<std::uint64_t> given) {
    const std::uint64_t seq = given.value_or(next_seq_);
    next_seq_ = seq + 1;
    return seq;
  }
  void give_back_sequence(std::uint64_t seq, std::uint64_t before) {
    if (next_seq_ == seq + 1) next_seq_ = before;  // nobody took one since
  }

  void push(const py::handle& values, const std::optional<double>& timeout, std::optional<std::uint64_t> sequence,
            std::optional<std::int64_t> ts_origin, std::optional<std::uint32_t> flags) {
    auto q = this->q();
    Sample s = make(values, sequence, ts_origin, flags, "pushing to queue '" + name_ + "'");
    const std::uint64_t before = next_seq_;
    s.sequence = take_sequence(sequence);
    const Status st = sliced(timeout, [&](nanoseconds sl) { return q->push(s, sl); }, [&] { check_open("pushing to"); });
    if (!st.ok()) {
      give_back_sequence(s.sequence, before);
      fail(st, "pushing to", timeout);
    }
  }

  bool try_push(const py::handle& values, std::optional<std::uint64_t> sequence, std::optional<std::int64_t> ts_origin,
                std::optional<std::uint32_t> flags) {
    auto q = this->q();
    Sample s = make(values, sequence, ts_origin, flags, "pushing to queue '" + name_ + "'");
    const std::uint64_t before = next_seq_;
    s.sequence = take_sequence(sequence);
    const Status st = q->try_push(s);
    if (st.ok()) return true;
    give_back_sequence(s.sequence, before);
    if (st.code() == Errc::would_block) return false;
    fail(st, "pushing to");
  }

  std::size_t push_many(const py::handle& rows, const std::optional<double>& timeout) {
    auto q = this->q();
    if (py::isinstance<py::str>(rows) || !PySequence_Check(rows.ptr()))
      raise_type("pushing to queue '" + name_ + "': rows must be a sequence of samples' values or a 2-D array");
    const std::string ctx = "pushing to queue '" + name_ + "'";
    std::vector<Sample> samples;
    std::size_t r = 0;
    for (const auto& row : py::reinterpret_borrow<py::sequence>(rows))
      samples.push_back(make(row, std::nullopt, std::nullopt, std::nullopt, ctx + ", row " + std::to_string(r++)));
    const nanoseconds total = to_ns(timeout);
    const auto start = std::chrono::steady_clock::now();
    std::size_t pushed = 0;
    for (Sample& s : samples) {
      std::optional<double> left;
      if (total != kForever)
        left = std::max(0.0, std::chrono::duration<double>(total - (std::chrono::steady_clock::now() - start)).count());
      const std::uint64_t before = next_seq_;
      s.sequence = take_sequence(std::nullopt);
      s.ts_origin_ns = realtime_ns();
      const Status st = sliced(left, [&](nanoseconds sl) { return q->push(s, sl); }, [&] { check_open("pushing to"); });
      if (st.ok()) {
        ++pushed;
        continue;
      }
      give_back_sequence(s.sequence, before);
      if (st.code() == Errc::timeout || st.code() == Errc::would_block) break;
      raise_code(st.code(), "pushing to queue '" + name_ + "': " +
                                (st.code() == Errc::closed ? std::string("it was shut down") : std::string(st.message())) +
                                " after " + std::to_string(pushed) + " of " + std::to_string(samples.size()) + " samples");
    }
    return pushed;
  }

  PySample* new_sample() const { return new PySample(table_, max_values_); }

  py::object pop(const std::optional<double>& timeout) {
    auto q = this->q();
    std::unique_ptr<PySample> out(new_sample());
    const Status st = sliced(timeout, [&](nanoseconds sl) { return q->pop(out->s, sl); }, [&] { check_open("popping from"); });
    if (!st.ok()) fail(st, "popping from", timeout);
    return py::cast(out.release(), py::return_value_policy::take_ownership);
  }

  py::object try_pop() {
    auto q = this->q();
    std::unique_ptr<PySample> out(new_sample());
    const Status st = q->try_pop(out->s);
    if (st.code() == Errc::would_block) return py::none();
    if (!st.ok()) fail(st, "popping from");
    return py::cast(out.release(), py::return_value_policy::take_ownership);
  }

  py::list pop_many(std::size_t n, const std::optional<double>& timeout) {
    auto q = this->q();
    py::list l;
    if (n == 0) return l;
    std::unique_ptr<PySample> first(new_sample());
    Status st = q->try_pop(first->s);
    if (st.code() == Errc::would_block && to_ns(timeout) != nanoseconds::zero())
      st = sliced(timeout, [&](nanoseconds sl) { return q->pop(first->s, sl); }, [&] { check_open("popping from"); });
    if (st.code() == Errc::would_block || st.code() == Errc::timeout) return l;
    if (!st.ok()) fail(st, "popping from");
    l.append(py::cast(first.release(), py::return_value_policy::take_ownership));
    while (l.size() < n) {
      std::unique_ptr<PySample> s(new_sample());
      if (!q->try_pop(s->s).ok()) break;  // empty, or shut and drained: the next call says so
      l.append(py::cast(s.release(), py::return_value_policy::take_ownership));
    }
    return l;
  }

  void close() { q_.reset(); }
  bool closed() const { return !q_; }
  const std::string& name() const { return name_; }
  const TablePtr& table() const { return table_; }
  std::uint64_t& next_sequence() { return next_seq_; }

 private:
  std::shared_ptr<Queue> q_;
  std::string name_;
  std::uint32_t max_values_ = 0;
  TablePtr table_;
  std::uint64_t next_seq_ = 0;
};

py::dict info_dict(const QueueInfo& i) {
  py::dict d;
  d["name"] = i.name;
  d["path"] = i.path;
  d["version"] = i.version;
  d["kind"] = kind_name(i.kind);
  d["wait"] = wait_name(i.wait);
  d["capacity"] = i.capacity;
  d["max_values"] = i.max_values;
  d["cell_bytes"] = i.cell_bytes;
  d["file_bytes"] = i.file_bytes;
  d["pushed"] = i.pushed;
  d["popped"] = i.popped;
  d["shut"] = i.closed;
  d["creator_pid"] = i.creator_pid;
  d["consumer_pid"] = i.consumer_pid;
  d["creation_time_ns"] = i.creation_time_ns;
  d["signals"] = signals_to_py(i.signals);
  return d;
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
      case Errc::closed:
        if (i_.is_open() && i_.peer().closed)
          raise_code(st.code(), head + "the peer closed the interface (" + i_.peer().describe() + ")", peer());
        raise_code(st.code(), head + "it is not open");
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

/// The Signal namedtuple's docstring.
constexpr const char* kSignalDoc =
    "Signal(index, name, type='f64', unit=''): what value `index` of every sample means. type is "
    "'f64' (float), 'i64' (int), 'bool' or 'c64' (complex64: real and imaginary float32).";

constexpr const char* kPeerStatusDoc =
    "What became of an Interface's peer: pid (the launched child, else the creator of the peer's "
    "queue; 0 before attach), launched (started with exec=), exited (its lock was released, with protocol villas its processes ended, or the "
    "child reaped), exit_code (a launched peer's exit status, else -1), term_signal (the signal "
    "that killed a launched peer, else 0), closed (it shut its output cleanly and we drained it), "
    "command (the exec command line, else the peer's queue file), description (one line for people).";

}  // namespace

void register_queues(py::module_& m) {
  py::object namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object sig = namedtuple("Signal", py::make_tuple("index", "name", "type", "unit"),
                              py::arg("defaults") = py::make_tuple("f64", ""), py::arg("module") = "shmlink");
  sig.attr("__doc__") = kSignalDoc;
  m.attr("Signal") = sig;
  g_signal_class = sig.release().ptr();  // one reference kept for the process's lifetime
  py::object ps = namedtuple("PeerStatus",
                             py::make_tuple("pid", "launched", "exited", "exit_code", "term_signal", "closed",
                                            "command", "description"),
                             py::arg("module") = "shmlink");
  ps.attr("__doc__") = kPeerStatusDoc;
  m.attr("PeerStatus") = ps;
  g_peer_status_class = ps.release().ptr();
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

  py::class_<PyQueue>(m, "Queue", R"doc(A bounded, lock-free sample queue in shared memory (<dir>/<name>.queue.shm).

Nothing accepted is lost: a full queue refuses (try_push -> False) or blocks (push), never
overwrites. shutdown() stops new pushes; consumers drain what is left and then get ClosedError.
Values are stored by the signal table (see shmlink.Sample); timeouts are seconds, None = forever,
and blocking calls release the GIL (Ctrl-C raises KeyboardInterrupt).)doc")
      .def_static(
          "create",
          [](const std::string& name, std::uint32_t capacity, std::uint32_t max_values, const std::string& kind,
             const std::string& wait, const py::object& signals, const std::string& mode, int permissions) {
            QueueSpec spec;
            spec.capacity = capacity;
            spec.max_values = max_values;
            spec.kind = parse_kind(kind);
            spec.wait = parse_wait(wait);
            spec.signals = signals_from(signals);
            spec.permissions = static_cast<mode_t>(permissions);
            return std::make_unique<PyQueue>(Queue::create(name, spec, parse_mode(mode)));
          },
          py::arg("name"), py::kw_only(), py::arg("capacity") = 512, py::arg("max_values") = 64, py::arg("kind") = "spsc",
          py::arg("wait") = "hybrid", py::arg("signals") = py::none(), py::arg("mode") = "exclusive",
          py::arg("permissions") = 0600,
          "Create a queue. capacity: cells, a power of two; max_values: values per sample (1..4096); "
          "kind: 'spsc' or 'mpmc'; wait: 'polling', 'futex' or 'hybrid'; signals: Signal(index, name, "
          "type, unit) entries (or tuples); mode: 'exclusive' (FileExistsError if present), 'purge', "
          "'open_or_create' (open when it matches max_values, kind and signals), 'open'.")
      .def_static(
          "open",
          [](const std::string& name, std::optional<std::uint32_t> max_values, std::optional<std::string> kind,
             const py::object& signals, bool writable) {
            QueueExpect e;
            e.max_values = max_values;
            if (kind) e.kind = parse_kind(*kind);
            if (!signals.is_none()) e.signals = signals_from(signals);
            e.writable = writable;
            return std::make_unique<PyQueue>(Queue::open(name, e));
          },
          py::arg("name"), py::kw_only(), py::arg("max_values") = py::none(), py::arg("kind") = py::none(),
          py::arg("signals") = py::none(), py::arg("writable") = true,
          "Open an existing queue. max_values, kind and signals (the exact table, order included), "
          "when given, must match: LayoutError naming the queue and both sides otherwise. "
          "writable=False maps it read-only (for inspection: push/pop raise AccessError).")
      .def_static(
          "remove", [](const std::string& name) { Queue::remove(name); }, py::arg("name"),
          "Remove a queue's file (open handles keep their mapping).")
      .def("close", &PyQueue::close, "Unmap (the file stays). Idempotent.")
      .def_property_readonly("closed", &PyQueue::closed, "True once this handle was closed (see `shut` for the queue).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyQueue& q, py::args) { q.close(); })
      .def("push", &PyQueue::push, py::arg("values"), py::arg("timeout") = py::none(), py::kw_only(),
           py::arg("sequence") = py::none(), py::arg("ts_origin") = py::none(), py::arg("flags") = py::none(),
           "Push one sample, waiting while the queue is full (WaitTimeout after `timeout` seconds; "
           "None: forever). values: a 1-D sequence or array, stored by the signal table. sequence: "
           "default this handle's next_sequence; ts_origin: ns since the epoch, default now; flags: "
           "default SAMPLE_HAS_SEQUENCE | SAMPLE_HAS_DATA | SAMPLE_HAS_TS_ORIGIN. ClosedError once shut.")
      .def("try_push", &PyQueue::try_push, py::arg("values"), py::kw_only(), py::arg("sequence") = py::none(),
           py::arg("ts_origin") = py::none(), py::arg("flags") = py::none(),
           "Push one sample if a cell is free: True, or False when the queue is full. Never blocks.")
      .def("push_many", &PyQueue::push_many, py::arg("rows"), py::arg("timeout") = py::none(),
           "Push each row (a sequence of value sequences, or a 2-D array) in order, waiting while "
           "full for at most `timeout` seconds in all (None: forever; 0: as many as fit now). "
           "Returns how many were pushed. Every row is encoded before the first is pushed.")
      .def("pop", &PyQueue::pop, py::arg("timeout") = py::none(),
           "Pop the oldest sample, waiting while the queue is empty (WaitTimeout after `timeout` "
           "seconds; None: forever). ClosedError once the queue is shut and drained.")
      .def("try_pop", &PyQueue::try_pop, "Pop the oldest sample, or None when empty. ClosedError once shut and drained.")
      .def("pop_many", &PyQueue::pop_many, py::arg("n"), py::arg("timeout") = 0.0,
           "Up to n samples, oldest first: waits at most `timeout` seconds (None: forever) for the "
           "first, then takes what is there. [] when none came; ClosedError once shut and drained.")
      .def("shutdown", [](PyQueue& q) { q.q()->shutdown(); },
           "Shut the queue for every process: pushes raise ClosedError, consumers drain what is left, then get ClosedError.")
      .def_property_readonly("shut", [](PyQueue& q) { return q.q()->is_shut(); }, "True once any process shut the queue.")
      .def("__len__", [](PyQueue& q) { return q.q()->size(); }, "Samples in the queue now (an estimate while others push or pop).")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PyQueue& q) -> py::object {
             try {
               return q.pop(std::nullopt);
             } catch (py::error_already_set& e) {
               if (e.matches(py::module_::import("shmlink.errors").attr("ClosedError")) && !q.closed()) throw py::stop_iteration();
               throw;
             }
           },
           "Iterating pops until the queue is shut and drained.")
      .def("info", [](PyQueue& q) { return info_dict(q.q()->info()); }, "The header as a dict (a racy snapshot).")
      .def_property_readonly("signals", [](PyQueue& q) { return signals_to_py(q.q()->signals()); },
                             "The signal table, a list of Signal.")
      .def_property_readonly("name", [](PyQueue& q) { return q.q()->name(); })
      .def_property_readonly("path", [](PyQueue& q) { return q.q()->path(); })
      .def_property_readonly("capacity", [](PyQueue& q) { return q.q()->capacity(); })
      .def_property_readonly("max_values", [](PyQueue& q) { return q.q()->max_values(); })
      .def_property_readonly("kind", [](PyQueue& q) { return kind_name(q.q()->kind()); })
      .def_property(
          "wait", [](PyQueue& q) { return wait_name(q.q()->wait_mode()); },
          [](PyQueue& q, const std::string& w) { q.q()->set_wait_mode(parse_wait(w)); },
          "How this handle's blocking calls wait: 'polling', 'futex' or 'hybrid' (settable; the file keeps its mode).")
      .def_property(
          "next_sequence", [](PyQueue& q) { return q.next_sequence(); },
          [](PyQueue& q, std::uint64_t v) { q.next_sequence() = v; },
          "The sequence number the next push without sequence= carries (from 0; an explicit sequence=k sets it to k + 1).")
      .def("__repr__", [](PyQueue& q) {
        if (q.closed()) return "<shmlink.Queue '" + q.name() + "' (closed)>";
        auto h = q.q();
        return "<shmlink.Queue '" + q.name() + "' " + kind_name(h->kind()) + " capacity=" + std::to_string(h->capacity()) +
               " max_values=" + std::to_string(h->max_values()) + " size=" + std::to_string(h->size()) +
               (h->is_shut() ? " shut" : "") + ">";
      });

  py::class_<PyInterface>(m, "Interface", R"doc(A duplex co-simulation link to one peer (VILLASnode shmem / DPsim style).

This side creates and writes queue `out` and reads queue `in_`, the peer's `out`; the peer opens
the same pair swapped. Register signals by index before open(): export_signal() fills our output's
table, import_signal() states what we expect in the peer's (checked at open: LayoutError). With
exec=[argv...], open() launches the peer (SHMLINK_INTERFACE_IN/OUT in its environment) and
close() stops and reaps it. read() raises PeerExitedError when the peer died (after what it sent
was read) and ClosedError when it closed cleanly and was drained.)doc")
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
           "PeerExitedError when the peer is gone, ClosedError when it closed or we are not open.")
      .def("read", &PyInterface::read, py::arg("timeout") = py::none(),
           "Receive the peer's next sample (decoded by its signal table). WaitTimeout; "
           "PeerExitedError once the peer died and what it sent was read (message: what became of "
           "it; `peer` attribute: the PeerStatus); ClosedError once it closed and was drained.")
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
               if (e.matches(py::module_::import("shmlink.errors").attr("ClosedError")) && p.iface().peer().closed)
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
