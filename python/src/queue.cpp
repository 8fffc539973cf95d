// SPDX-License-Identifier: MIT
// shmlink._shmlink: sample queues (shmlink.Queue). Values are encoded and samples decoded by the
// queue's signal table (signals.hpp); every blocking call waits in sliced() (common.hpp): GIL
// released, Ctrl-C raises KeyboardInterrupt. module.cpp calls register_queues().
#include "signals.hpp"

#include <shmlink/queue.hpp>

#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shmlink::python {

namespace {

using std::chrono::nanoseconds;

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
      case Errc::shut_down: msg += what.starts_with("pop") ? "it was shut down and is drained" : "it was shut down"; break;
      case Errc::closed: msg += "the handle is closed"; break;
      case Errc::permission: msg += "the handle is read-only (opened with writable=False)"; break;
      default: msg += st.message();
    }
    raise_code(st.code(), msg);
  }

  /// The sample `values` make, encoded into `storage` and stamped as push() documents (the
  /// caller sets the sequence): a view the queue copies straight into its cell (no Sample).
  SampleView make(const py::handle& values, std::optional<std::int64_t> ts_origin, std::optional<std::uint32_t> flags,
                  const std::string& ctx, std::vector<SignalValue>& storage) const {
    encode(values, *table_, max_values_, ctx, storage);
    SampleView s;
    s.ts_origin_ns = ts_origin ? *ts_origin : realtime_ns();
    s.flags = flags.value_or(kDefaultFlags);
    s.values = storage;
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
    std::vector<SignalValue> storage;
    SampleView s = make(values, ts_origin, flags, "pushing to queue '" + name_ + "'", storage);
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
    std::vector<SignalValue> storage;
    SampleView s = make(values, ts_origin, flags, "pushing to queue '" + name_ + "'", storage);
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
    const auto seq = py::reinterpret_borrow<py::sequence>(rows);
    std::vector<std::vector<SignalValue>> storage(seq.size());
    std::vector<SampleView> samples;
    samples.reserve(storage.size());
    std::size_t r = 0;
    for (const auto& row : seq) {
      samples.push_back(make(row, std::nullopt, std::nullopt, ctx + ", row " + std::to_string(r), storage.at(r)));
      ++r;
    }
    const nanoseconds total = to_ns(timeout);
    const auto start = std::chrono::steady_clock::now();
    std::size_t pushed = 0;
    for (SampleView& s : samples) {
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
                                (st.code() == Errc::shut_down ? std::string("it was shut down") : std::string(st.message())) +
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
    // Every sample is made before anything is popped into it (values reserved to max_values, so
    // the noexcept burst handler's copy neither allocates nor throws), in runs of at most kRun:
    // a huge n costs nothing up front, and a sample once popped is never dropped for want of memory.
    constexpr std::size_t kRun = 64;
    auto make_run = [&](std::size_t want) {
      std::vector<std::unique_ptr<PySample>> run(std::min(want, kRun));
      for (auto& s : run) s.reset(new_sample());
      return run;
    };
    std::unique_ptr<PySample> first(new_sample());
    auto run = make_run(n - 1);
    Status st = q->try_pop(first->s);
    if (st.code() == Errc::would_block && to_ns(timeout) != nanoseconds::zero())
      st = sliced(timeout, [&](nanoseconds sl) { return q->pop(first->s, sl); }, [&] { check_open("popping from"); });
    if (st.code() == Errc::would_block || st.code() == Errc::timeout) return l;
    if (!st.ok()) fail(st, "popping from");
    l.append(py::cast(first.release(), py::return_value_policy::take_ownership));
    // The rest in bursts straight from the cells; empty, or shut and drained: the next call says so.
    std::size_t left = n - 1;
    while (left > 0 && !run.empty()) {
      std::size_t seen = 0, popped = 0;
      (void)q->try_pop_burst(
          [&](const SampleView& v) noexcept {
            if (seen >= run.size()) return;  // never: the burst's limit is run.size()
            Sample& s = run[seen]->s;
            s.sequence = v.sequence;
            s.ts_origin_ns = v.ts_origin_ns;
            s.ts_received_ns = v.ts_received_ns;
            s.flags = v.flags;
            s.values.assign(v.values.begin(), v.values.end());
            ++seen;
          },
          run.size(), popped);
      const std::size_t got = std::min(seen, popped);
      for (std::size_t i = 0; i < got; ++i) l.append(py::cast(run[i].release(), py::return_value_policy::take_ownership));
      left -= got;
      if (got < run.size()) break;  // the queue is empty (for now)
      run = make_run(left);
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
  d["kind"] = std::string(queue_kind_name(i.kind));
  d["wait"] = wait_name(i.wait);
  d["capacity"] = i.capacity;
  d["max_values"] = i.max_values;
  d["cell_bytes"] = i.cell_bytes;
  d["file_bytes"] = i.file_bytes;
  d["pushed"] = i.pushed;
  d["popped"] = i.popped;
  d["shut_down"] = i.closed;
  d["shut"] = i.closed;  // the old name of shut_down, kept for compatibility
  d["creator_pid"] = i.creator_pid;
  d["consumer_pid"] = i.consumer_pid;
  d["creation_time_ns"] = i.creation_time_ns;
  d["signals"] = signals_to_py(i.signals);
  return d;
}

}  // namespace

QueueSpec queue_spec(std::uint32_t capacity, std::uint32_t max_values, const std::string& kind, const std::string& wait,
                     const py::object& signals, int permissions) {
  QueueSpec spec;
  spec.capacity = capacity;
  spec.max_values = max_values;
  spec.kind = parse_kind(kind);
  spec.wait = parse_wait(wait);
  spec.signals = signals_from(signals);
  spec.permissions = static_cast<mode_t>(permissions);
  return spec;
}

QueueExpect queue_expect(std::optional<std::uint32_t> max_values, const std::optional<std::string>& kind,
                         const py::object& signals, bool writable) {
  QueueExpect e;
  e.max_values = max_values;
  if (kind) e.kind = parse_kind(*kind);
  if (!signals.is_none()) e.signals = signals_from(signals);
  e.writable = writable;
  return e;
}

py::object wrap_queue(Queue q) { return py::cast(std::make_unique<PyQueue>(std::move(q))); }

void register_queues(py::module_& m) {

  py::class_<PyQueue>(m, "Queue", R"doc(A bounded, lock-free sample queue in shared memory (<dir>/<name>.queue.shm).

Nothing accepted is lost: a full queue refuses (try_push -> False) or blocks (push), never
overwrites. shutdown() stops new pushes; consumers drain what is left and then get ShutDownError
(a ClosedError). `closed` is this handle's state, `shut_down` the queue's.
Values are stored by the signal table (see shmlink.Sample); timeouts are seconds, None = forever,
and blocking calls release the GIL (Ctrl-C raises KeyboardInterrupt).)doc")
      .def_static(
          "create",
          [](const std::string& name, std::uint32_t capacity, std::uint32_t max_values, const std::string& kind,
             const std::string& wait, const py::object& signals, const std::string& mode, int permissions) {
            return wrap_queue(
                Queue::create(name, queue_spec(capacity, max_values, kind, wait, signals, permissions), parse_mode(mode)));
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
            return wrap_queue(Queue::open(name, queue_expect(max_values, kind, signals, writable)));
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
      .def_property_readonly("closed", &PyQueue::closed, "True once this handle was closed (see `shut_down` for the queue).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyQueue& q, py::args) { q.close(); })
      .def("push", &PyQueue::push, py::arg("values"), py::arg("timeout") = py::none(), py::kw_only(),
           py::arg("sequence") = py::none(), py::arg("ts_origin") = py::none(), py::arg("flags") = py::none(),
           "Push one sample, waiting while the queue is full (WaitTimeout after `timeout` seconds; "
           "None: forever). values: a 1-D sequence or array, stored by the signal table. sequence: "
           "default this handle's next_sequence; ts_origin: ns since the epoch, default now; flags: "
           "default SAMPLE_HAS_SEQUENCE | SAMPLE_HAS_DATA | SAMPLE_HAS_TS_ORIGIN. ShutDownError once shut.")
      .def("try_push", &PyQueue::try_push, py::arg("values"), py::kw_only(), py::arg("sequence") = py::none(),
           py::arg("ts_origin") = py::none(), py::arg("flags") = py::none(),
           "Push one sample if a cell is free: True, or False when the queue is full. Never blocks.")
      .def("push_many", &PyQueue::push_many, py::arg("rows"), py::arg("timeout") = py::none(),
           "Push each row (a sequence of value sequences, or a 2-D array) in order, waiting while "
           "full for at most `timeout` seconds in all (None: forever; 0: as many as fit now). "
           "Returns how many were pushed. Every row is encoded before the first is pushed.")
      .def("pop", &PyQueue::pop, py::arg("timeout") = py::none(),
           "Pop the oldest sample, waiting while the queue is empty (WaitTimeout after `timeout` "
           "seconds; None: forever). ShutDownError once the queue is shut and drained.")
      .def("try_pop", &PyQueue::try_pop, "Pop the oldest sample, or None when empty. ShutDownError once shut and drained.")
      .def("pop_many", &PyQueue::pop_many, py::arg("n"), py::arg("timeout") = 0.0,
           "Up to n samples, oldest first: waits at most `timeout` seconds (None: forever) for the "
           "first, then takes what is there. [] when none came; ShutDownError once shut and drained.")
      .def("shutdown", [](PyQueue& q) { q.q()->shutdown(); },
           "Shut the queue for every process: pushes raise ShutDownError, consumers drain what is left, then get "
           "ShutDownError (a subclass of ClosedError).")
      .def_property_readonly("shut_down", [](PyQueue& q) { return q.q()->is_shut(); }, "True once any process shut the queue down.")
      .def_property_readonly(
          "shut",
          [](PyQueue& q) {
            if (PyErr_WarnEx(PyExc_DeprecationWarning, "Queue.shut is deprecated: use Queue.shut_down", 1) != 0)
              throw py::error_already_set();
            return q.q()->is_shut();
          },
          "Deprecated alias of shut_down (warns DeprecationWarning).")
      .def("__len__", [](PyQueue& q) { return q.q()->size(); }, "Samples in the queue now (an estimate while others push or pop).")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PyQueue& q) -> py::object {
             try {
               return q.pop(std::nullopt);
             } catch (py::error_already_set& e) {
               if (e.matches(py::module_::import("shmlink.errors").attr("ShutDownError"))) throw py::stop_iteration();
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
      .def_property_readonly("kind", [](PyQueue& q) { return std::string(queue_kind_name(q.q()->kind())); })
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
        return "<shmlink.Queue '" + q.name() + "' " + std::string(queue_kind_name(h->kind())) + " capacity=" + std::to_string(h->capacity()) +
               " max_values=" + std::to_string(h->max_values()) + " size=" + std::to_string(h->size()) +
               (h->is_shut() ? " shut down" : "") + ">";
      });
}

}  // namespace shmlink::python
