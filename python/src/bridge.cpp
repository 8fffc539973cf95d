// SPDX-License-Identifier: MIT
// shmlink._shmlink: the bridge's latest-value stream replication (include/shmlink/bridge.hpp,
// docs/design/bridge.md) as shmlink.bridge.Publisher and shmlink.bridge.Replica (re-exported by
// python/shmlink/bridge.py). Both run their own C++ threads, which never take the GIL; the calls
// that may block (stop(), wait_first_frame(), the constructors, which bind or connect) release it.
#include "common.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/channel.hpp>
#include <shmlink/remote.hpp>

#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::python {

namespace {

using std::chrono::milliseconds;

/// LinkTiming from the keyword arguments (ms), checked: a heartbeat of at least 1 ms and a link
/// timeout above it.
bridge::LinkTiming link_timing(const std::string& what, std::int64_t heartbeat_ms, std::int64_t link_timeout_ms) {
  if (heartbeat_ms < 1 || heartbeat_ms > 3'600'000)
    raise_code(Errc::invalid_argument, what + ": heartbeat_ms " + std::to_string(heartbeat_ms) + " is not 1..3600000");
  if (link_timeout_ms <= heartbeat_ms || link_timeout_ms > 36'000'000)
    raise_code(Errc::invalid_argument, what + ": link_timeout_ms " + std::to_string(link_timeout_ms) +
                                           " is not above heartbeat_ms (" + std::to_string(heartbeat_ms) +
                                           ") and at most 36000000");
  return bridge::LinkTiming{milliseconds(heartbeat_ms), milliseconds(link_timeout_ms)};
}

/// An every-frame window from Python, checked: 1..kMaxEveryFrameWindow frames.
std::uint32_t checked_window(const std::string& what, std::int64_t window) {
  if (window < 1 || window > bridge::kMaxEveryFrameWindow)
    raise_code(Errc::invalid_argument, what + ": window " + std::to_string(window) + " is not 1.." +
                                           std::to_string(bridge::kMaxEveryFrameWindow));
  return static_cast<std::uint32_t>(window);
}

/// The port of "tcp://HOST:PORT", or None.
py::object endpoint_port(const std::string& ep) {
  const auto scheme = ep.find("://");
  const auto colon = ep.rfind(':');
  if (scheme == std::string::npos || colon == std::string::npos || colon <= scheme + 2 || colon + 1 == ep.size())
    return py::none();
  long port = 0;
  for (std::size_t i = colon + 1; i < ep.size(); ++i) {
    if (ep[i] < '0' || ep[i] > '9' || port > 65535) return py::none();
    port = port * 10 + (ep[i] - '0');
  }
  return port <= 65535 ? py::object(py::int_(port)) : py::object(py::none());
}

/// A running Publisher or Replica, shared by its Python object and the registry of live ones
/// (stop_all), so that neither frees it under the other; T::stop() is for one thread at a time.
template <class T>
struct Running {
  std::mutex stop_mutex;
  std::unique_ptr<T> obj;
  void stop() noexcept {
    std::lock_guard lock(stop_mutex);
    if (obj) obj->stop();  // null once a stopped Publisher was freed
  }
};

/// Every Publisher and Replica made and not yet freed (weakly), for stop_all().
struct Registry {
  std::mutex mutex;
  std::vector<std::pair<std::weak_ptr<void>, std::function<void()>>> live;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: the atexit hook may run late
  return *r;
}

template <class T>
std::shared_ptr<Running<T>> track(std::unique_ptr<T> obj) {
  auto run = std::make_shared<Running<T>>();
  run->obj = std::move(obj);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase_if(r.live, [](const auto& e) { return e.first.expired(); });
  r.live.emplace_back(run, [w = std::weak_ptr<Running<T>>(run)] {
    if (auto s = w.lock()) s->stop();
  });
  return run;
}

/// Stops every live Publisher and Replica (at the interpreter's exit: their threads must not
/// outlive it, even when a reference cycle keeps a Python object alive).
void stop_all() {
  std::vector<std::function<void()>> stops;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& e : r.live) stops.push_back(e.second);
  }
  for (auto& f : stops) f();
}

/// What PyPublisher and PyReplica share: the running object (shared with the registry), its
/// stop() with the GIL released, and the state Python reads after it (stats stay readable).
template <class T>
class PyBridgeObject {
 public:
  bool stopped() const noexcept { return stopped_; }
  std::string last_error() const { return run_->obj->last_error(); }
  void stop() {
    std::shared_ptr<Running<T>> r = run_;  // alive until stop() returns, whoever drops the object
    without_gil([&] { r->stop(); });
    stopped_ = true;
  }

 protected:
  T& obj() const noexcept { return *run_->obj; }
  std::shared_ptr<Running<T>> run_;

 private:
  bool stopped_ = false;
};

/// A Publisher as Python holds it. stop() frees the C++ Publisher once its counters are copied:
/// its ZeroMQ context is terminated, and only that waits until libzmq's I/O thread has closed the
/// listening socket, so the port is free when stop() returns (zmq_close alone does not promise
/// it). Every other call keeps the GIL, so none runs while the object goes.
class PyPublisher : public PyBridgeObject<bridge::Publisher> {
 public:
  PyPublisher(const std::string& stream, const std::string& endpoint, std::int64_t heartbeat_ms,
              std::int64_t link_timeout_ms, bool read_only, bool spin)
      : stream_(stream) {
    bridge::PublisherOptions o;
    o.timing = link_timing("publishing stream '" + stream + "'", heartbeat_ms, link_timeout_ms);
    o.read_only = read_only;
    o.spin = spin;
    run_ = track(without_gil([&] { return std::make_unique<bridge::Publisher>(stream, endpoint, o); }));
    endpoint_ = obj().endpoint();
  }
  const std::string& stream() const noexcept { return stream_; }
  const std::string& endpoint() const noexcept { return endpoint_; }
  py::dict stats() const {
    const bridge::PublisherStats s = run_->obj ? obj().stats() : final_stats_;
    return py::dict(py::arg("frames_sent") = s.frames_sent, py::arg("echoes_sent") = s.echoes_sent,
                    py::arg("frames_skipped") = s.frames_skipped, py::arg("metas_sent") = s.metas_sent,
                    py::arg("writes_applied") = s.writes_applied, py::arg("writes_refused") = s.writes_refused,
                    py::arg("refused") = s.refused, py::arg("generation") = s.generation,
                    py::arg("subscribers") = s.subscribers);
  }
  std::string last_error() const { return run_->obj ? obj().last_error() : final_error_; }
  void stop() {
    PyBridgeObject::stop();  // the threads, with the GIL released
    std::unique_ptr<bridge::Publisher> gone;
    {
      std::lock_guard lock(run_->stop_mutex);
      if (!run_->obj) return;  // freed by another thread's stop()
      final_stats_ = run_->obj->stats();
      final_error_ = run_->obj->last_error();
      gone = std::move(run_->obj);
    }
    without_gil([&] { gone.reset(); });
  }

 private:
  std::string stream_, endpoint_;
  bridge::PublisherStats final_stats_;
  std::string final_error_;
};

/// A Replica as Python holds it.
class PyReplica : public PyBridgeObject<bridge::Replica> {
 public:
  PyReplica(const std::string& stream, const std::string& endpoint, const std::optional<std::string>& local_name,
            const std::optional<std::string>& origin, std::int64_t heartbeat_ms, std::int64_t link_timeout_ms,
            int semaphores, bool spin, bool take_over_local, bool every_frame, std::int64_t window)
      : stream_(stream), endpoint_(endpoint) {
    const std::string what = "replicating stream '" + stream + "' from " + endpoint;
    bridge::ReplicaOptions o;
    o.timing = link_timing(what, heartbeat_ms, link_timeout_ms);
    o.local_name = local_name.value_or("");
    o.origin = origin.value_or("");
    if (semaphores < 1 || semaphores > 1000)
      raise_code(Errc::invalid_argument, what + ": semaphores " + std::to_string(semaphores) + " is not 1..1000");
    o.semaphores = static_cast<std::uint16_t>(semaphores);
    o.spin = spin;
    o.take_over_local = take_over_local;
    o.mode = every_frame ? bridge::ReplicationMode::every_frame : bridge::ReplicationMode::latest;
    o.window = checked_window(what, window);
    run_ = track(without_gil([&] { return std::make_unique<bridge::Replica>(stream, endpoint, o); }));
  }
  const std::string& stream() const noexcept { return stream_; }
  const std::string& endpoint() const noexcept { return endpoint_; }
  const std::string& path() const noexcept { return obj().path(); }
  bool wait_first_frame(const std::optional<double>& timeout) {
    std::shared_ptr<Running<bridge::Replica>> r = run_;
    const Status st = sliced(timeout, [&](std::chrono::nanoseconds slice) {
      const auto ms = std::chrono::ceil<milliseconds>(slice);
      return r->obj->wait_first_frame(ms) ? Status() : Status(Errc::timeout);
    });
    return st.ok();
  }
  py::dict stats() const {
    const bridge::ReplicaStats s = obj().stats();
    return py::dict(py::arg("frames_published") = s.frames_published,
                    py::arg("duplicates_dropped") = s.duplicates_dropped, py::arg("echoes") = s.echoes,
                    py::arg("writes_sent") = s.writes_sent, py::arg("metas") = s.metas,
                    py::arg("recreated") = s.recreated, py::arg("skipped") = s.skipped,
                    py::arg("refused") = s.refused, py::arg("source_cnt0") = s.source_cnt0,
                    py::arg("link_up") = s.link_up, py::arg("lost") = s.lost,
                    py::arg("mode") = s.mode == bridge::ReplicationMode::every_frame ? "every_frame" : "latest");
  }

 private:
  std::string stream_, endpoint_;
};

/// shmlink.bridge.want(): the control protocol's OPEN of a stream (include/shmlink/remote.hpp).
std::string want(const std::string& name, bool every_frame, std::int64_t window, bool keep,
                 const std::optional<double>& timeout) {
  const std::string what = "bridge want of stream '" + name + "'";
  std::pair<std::string, std::string> target{"", name};
  if (auto split = remote::split_remote_name(name)) target = *split;
  else check_channel_name("stream", name, name, kMaxStreamName);
  const std::uint32_t w = checked_window(what, window);
  const milliseconds wait =
      timeout ? std::chrono::ceil<milliseconds>(to_ns(timeout)) : remote::open_timeout();
  py::gil_scoped_release nogil;  // the service may take `timeout` to answer
  return remote::remote_open("stream", target.first, target.second, std::max(wait, milliseconds(1)), keep,
                             every_frame ? w : 0);
}

}  // namespace

void register_bridge(py::module_& m) {
  m.def("bridge_want", &want, py::arg("name"), py::kw_only(), py::arg("every_frame") = false,
        py::arg("window") = bridge::kDefaultEveryFrameWindow, py::arg("keep") = false, py::arg("timeout") = py::none(),
        R"doc(Ask the bridge service of this host for a replica of stream `name` ("NAME", or "HOST:NAME" for
node HOST's) and return the replica file's path once it holds its first frame (the service's OPEN,
as `shmlink bridge want`). every_frame=True asks for every source frame in order: the replica is a
rolling buffer of the source's depth, `window` frames (1..1024) in flight, frames lost at the owner
counted in its BR_LOST keyword. keep=True keeps the replica while no process uses it. timeout:
seconds (None: $SHMLINK_BRIDGE_TIMEOUT_MS, else 5). Raises NotFoundError (no service, or no peer
offers the stream), TimeoutError, AccessError (the owner refused), ArgumentError.)doc");
  // The interpreter's exit stops what is still running (registered once, at import).
  py::module_::import("atexit").attr("register")(py::cpp_function([] {
    py::gil_scoped_release nogil;
    stop_all();
  }));
  py::class_<PyPublisher, std::shared_ptr<PyPublisher>>(m, "Publisher", R"doc(The owner's side of a bridged stream.

Publisher(stream, endpoint, heartbeat_ms=1000, link_timeout_ms=4000, read_only=False, spin=False)
opens the local stream `stream` (a name in the stream directory, or a path) and binds a ZeroMQ
ROUTER socket at `endpoint` ("tcp://*:5555" all interfaces, "tcp://127.0.0.1:0" an ephemeral port
on loopback; `endpoint` says which was bound). Each Replica that connects gets the stream's shape,
dtype and keywords, then its newest frames, one per credit (latest value: a slow link skips
frames, counted, and never queues them). Frames travel as the bridge's wire format (a 128-byte
little-endian header and the raw bytes; never pickle). Writes that replicas send back are
written into the stream unless `read_only`. Nothing travels while no replica is connected.

Runs its own threads (no GIL) until stop(), the end of a `with` block, or destruction.
Raises NotFoundError / LayoutError / AccessError (the stream), ArgumentError (timings),
SystemFailure (the endpoint could not be bound: the message names it and ZeroMQ's reason).)doc")
      .def(py::init<const std::string&, const std::string&, std::int64_t, std::int64_t, bool, bool>(), py::arg("stream"),
           py::arg("endpoint"), py::kw_only(), py::arg("heartbeat_ms") = 1000, py::arg("link_timeout_ms") = 4000,
           py::arg("read_only") = false, py::arg("spin") = false)
      .def_property_readonly("stream", &PyPublisher::stream, "The stream as given.")
      .def_property_readonly("endpoint", &PyPublisher::endpoint,
                             "The endpoint bound, with the actual port (\"tcp://127.0.0.1:41234\").")
      .def_property_readonly("port", [](const PyPublisher& p) { return endpoint_port(p.endpoint()); },
                             "The TCP port bound (None for an endpoint without one, e.g. ipc://).")
      .def_property_readonly("stopped", [](const PyPublisher& x) { return x.stopped(); }, "True after stop().")
      .def("stats", &PyPublisher::stats,
           "Counters (a racy snapshot) as a dict: frames_sent, echoes_sent, frames_skipped, metas_sent, "
           "writes_applied, writes_refused, refused, generation, subscribers.")
      .def_property_readonly("last_error", &PyPublisher::last_error,
                             "The last refused message or failure, naming the peer and what was wrong; '' if none.")
      .def("stop", &PyPublisher::stop,
           "Stops the threads and closes the socket (the port is free again). Idempotent; stats() stays readable.")
      .def("__enter__", [](std::shared_ptr<PyPublisher> p) { return p; })
      .def("__exit__", [](PyPublisher& p, const py::args&) { p.stop(); })
      .def("__repr__", [](const PyPublisher& p) {
        return "<shmlink.bridge.Publisher '" + p.stream() + "' at " + p.endpoint() + (p.stopped() ? " (stopped)>" : ">");
      });

  py::class_<PyReplica, std::shared_ptr<PyReplica>>(m, "Replica", R"doc(The subscriber's side of a bridged stream.

Replica(stream, endpoint, local_name=None, origin=None, heartbeat_ms=1000, link_timeout_ms=4000,
semaphores=10, spin=False, take_over_local=False, every_frame=False, window=64) connects a ZeroMQ DEALER to the Publisher at `endpoint`
("tcp://HOST:PORT") and keeps a local replica of its stream `stream` (the remote stream's name):
an ordinary stream file named `local_name` (a name or a path; default the remote name in the
stream directory), created at the first message with the source's shape, dtype and keywords, and
written frame by frame as a local writer does (cnt0, semaphores, futex wake-ups), so every reader
of streams reads it. Keywords BR_ORIGIN (`origin`, default the endpoint's host), BR_LINK,
BR_AGE_US, BR_SKIPPED, BR_SRC_CNT0, BR_SRC_WTIME say how fresh it is. A frame written on the
replica by a local process goes back to the owner. A local stream already named `local_name`
that is not a replica of this origin is left alone (the replica says why in last_error) unless
take_over_local=True makes it the mirror on purpose. every_frame=True asks for every source
frame in order (for recorders): the replica is a rolling buffer of the source's depth, `window`
frames (1..1024) travel unacknowledged, and frames overwritten at the owner before they could be
sent are counted in BR_LOST and stats()['lost'] (an owner that does not accept the mode serves the
latest value: stats()['mode'] says which is in force).

Connecting does not wait: a wrong host or port shows as wait_first_frame() returning False and
stats()['link_up'] staying False. ZeroMQ reconnects by itself after a lost link.
Runs its own threads (no GIL) until stop(), the end of a `with` block, or destruction; the
replica file stays. Raises ArgumentError (a bad stream name, timings), SystemFailure (ZeroMQ
refused the endpoint).)doc")
      .def(py::init<const std::string&, const std::string&, const std::optional<std::string>&,
                    const std::optional<std::string>&, std::int64_t, std::int64_t, int, bool, bool, bool, std::int64_t>(),
           py::arg("stream"), py::arg("endpoint"), py::kw_only(), py::arg("local_name") = py::none(),
           py::arg("origin") = py::none(), py::arg("heartbeat_ms") = 1000, py::arg("link_timeout_ms") = 4000,
           py::arg("semaphores") = 10, py::arg("spin") = false, py::arg("take_over_local") = false,
           py::arg("every_frame") = false, py::arg("window") = bridge::kDefaultEveryFrameWindow)
      .def_property_readonly("stream", &PyReplica::stream, "The remote stream's name as given.")
      .def_property_readonly("endpoint", &PyReplica::endpoint, "The publisher's endpoint as given.")
      .def_property_readonly("path", &PyReplica::path, "The local replica file.")
      .def_property_readonly("stopped", [](const PyReplica& x) { return x.stopped(); }, "True after stop().")
      .def("wait_first_frame", &PyReplica::wait_first_frame, py::arg("timeout") = py::none(),
           "Waits (GIL released; Ctrl-C interrupts) until the replica exists and holds its first frame, at most "
           "`timeout` seconds (None: forever). Returns True when it does, False when the time passed.")
      .def("stats", &PyReplica::stats,
           "Counters and link state (a racy snapshot) as a dict: frames_published, duplicates_dropped, echoes, "
           "writes_sent, metas, recreated, skipped, refused, source_cnt0, link_up, lost (every-frame mode: frames "
           "overwritten at the owner), mode ('latest' or 'every_frame': the mode in force).")
      .def_property_readonly("last_error", [](const PyReplica& x) { return x.last_error(); },
                             "The last refused message or failure, naming the peer and what was wrong; '' if none.")
      .def("stop", &PyReplica::stop,
           "Tells the owner it no longer wants the stream, stops the threads and closes the socket. The replica "
           "file stays. Idempotent; stats() stays readable.")
      .def("__enter__", [](std::shared_ptr<PyReplica> r) { return r; })
      .def("__exit__", [](PyReplica& r, const py::args&) { r.stop(); })
      .def("__repr__", [](const PyReplica& r) {
        return "<shmlink.bridge.Replica '" + r.stream() + "' from " + r.endpoint() + " at " + r.path() +
               (r.stopped() ? " (stopped)>" : ">");
      });
}

}  // namespace shmlink::python
