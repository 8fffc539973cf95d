// SPDX-License-Identifier: MIT
// shmlink._shmlink: signal tables, Python values <-> 8-byte SignalValues, and received samples
// (shmlink.Signal, shmlink.Sample), shared by queue.cpp and interface.cpp.
//
// Values travel as 8-byte SignalValues whose meaning is the signal table's business. Python
// values are encoded per index by the table (f64, i64, bool, c64) and samples are decoded by
// the table of the queue they came from. An index without a table entry is f64 both ways (the
// default type of a Signal, and how C++ peers read it), so push([k]) then pop()[0] == k holds
// on a queue without a table.
// The rules are spelled out in docs/python.md "Queues and co-simulation".
#pragma once

#include "common.hpp"

#include <shmlink/queue.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <complex>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shmlink::python {

/// The flags a pushed sample carries unless flags= says otherwise.
inline constexpr std::uint32_t kDefaultFlags = kSampleHasSequence | kSampleHasData | kSampleHasTsOrigin;

/// The current time as the library stamps samples: CLOCK_REALTIME, ns since the epoch.
std::int64_t realtime_ns();

/// "f64", "i64", "bool", "c64".
std::string type_name(SignalType t);

/// "f64", "i64", "bool", "c64" (and "float", "int", "boolean", "complex", or the Python types
/// float, int, bool, complex) to a SignalType; ArgumentError otherwise.
SignalType parse_type(const py::handle& t);

/// 'spsc' or 'mpmc' to a QueueKind; ArgumentError otherwise.
/// (queue_kind_name() of the library is the way back.)
QueueKind parse_kind(const std::string& k);

/// 'polling', 'futex' or 'hybrid' to a WaitMode, and back; ArgumentError otherwise.
WaitMode parse_wait(const std::string& w);
std::string wait_name(WaitMode w);

/// A Signal from a shmlink.Signal or any (index, name[, type[, unit]]) sequence (TypeError or
/// ArgumentError otherwise); signals_from() takes a sequence of them (None: none).
Signal signal_from(const py::handle& obj);
std::vector<Signal> signals_from(const py::handle& obj);

/// shmlink.Signal namedtuples.
py::object signal_to_py(const Signal& s);
py::list signals_to_py(const std::vector<Signal>& v);

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
                    const std::vector<Signal>& extra = {});

/// Encodes `values` (a 1-D sequence or ndarray of numbers, at most `max_values`) into `out` by
/// table `t`; `ctx` starts every message ("pushing to queue 'q'"). TypeError for what is not a
/// number, ArgumentError for a value its signal's type cannot hold, ArgumentError (size) for too
/// many values.
void encode(const py::handle& values, const Table& t, std::uint32_t max_values, const std::string& ctx,
            std::vector<SignalValue>& out);

/// One value as type `t` says (an untyped index reads as float).
py::object decode(SignalValue v, SignalType t);

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

/// shmlink.Signal, the SAMPLE_* flags, MAX_SAMPLE_VALUES and shmlink.Sample.
void register_samples(py::module_& m);

}  // namespace shmlink::python
