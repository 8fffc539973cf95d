// SPDX-License-Identifier: MIT
/// @file queue_link_common.hpp
/// @brief What both ends of a bridged queue share (src/bridge/queue_sender.cpp,
/// queue_receiver.cpp; docs/design/bridge.md, "Queues: exactly once"): the state-file field
/// accessors and their ordering, socket options and attachment, receiving and checking one
/// message, the guarded step and the counters another thread reads. Internal to shmlink_bridge.
#pragma once

#include <shmlink/bridge_queue.hpp>
#include <shmlink/queue.hpp>

#include <zmq.hpp>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "bridge/queue_state.hpp"
#include "bridge/queue_wire.hpp"
#include "bridge/security.hpp"

namespace shmlink::bridge::qlink {

using Clock = std::chrono::steady_clock;
namespace qw = queue_wire;

inline std::uint64_t realtime_ns() noexcept {
  struct timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t load(const std::uint64_t& field) noexcept {
  // SYNC POINT: none across processes (only the owning process maps a state file); acquire keeps
  // the slot writes this process made before the matching release store in order for a successor
  // that maps the file after a crash (the page cache is coherent).
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(field)).load(std::memory_order_acquire);
}
inline void store(std::uint64_t& field, std::uint64_t v) noexcept {
  // SYNC POINT: release, pairs with load() above in a restarted process: a slot written before
  // `end` moves past it is complete when the successor reads `end`.
  std::atomic_ref<std::uint64_t>(field).store(v, std::memory_order_release);
}

/// The channel name a queue travels under (the topic frame): the file's name without its suffix.
inline std::string topic_of(const std::string& queue_file) {
  std::string t = queue_file.substr(queue_file.find_last_of('/') + 1);
  if (t.ends_with(".queue.shm")) t.resize(t.size() - 10);
  return t;
}

inline void set_common_options(zmq::socket_t& s) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::reconnect_ivl, 50);
  s.set(zmq::sockopt::reconnect_ivl_max, 500);
  s.set(zmq::sockopt::heartbeat_ivl, 250);
  s.set(zmq::sockopt::heartbeat_timeout, 1500);
}

/// Binds or connects `s` to `endpoint`: a leading '@' binds, a leading '>' connects, else
/// `bind_by_default` decides (CZMQ's endpoint convention).
inline void attach(zmq::socket_t& s, const std::string& endpoint, bool bind_by_default, const std::string& topic) {
  bool bind = bind_by_default;
  std::string ep = endpoint;
  if (!ep.empty() && (ep[0] == '@' || ep[0] == '>')) {
    bind = ep[0] == '@';
    ep.erase(0, 1);
  }
  try {
    if (bind) s.bind(ep);
    else s.connect(ep);
  } catch (const zmq::error_t& e) {
    throw Error(e.num() == EADDRINUSE ? Errc::system : Errc::invalid_argument,
                "bridged queue " + topic + (bind ? ": binding '" : ": connecting to '") + ep + "': " + e.what());
  }
}

/// Sends [topic, header, payload?] without blocking, preceded by `to` (a peer's routing id) on a
/// ROUTER socket. False when ZeroMQ cannot take it now.
inline bool send_message(zmq::socket_t& s, const std::string& topic, const qw::Header& h, std::span<const std::byte> payload,
                  const std::string* to = nullptr) {
  const auto head = qw::encode_header(h);
  const auto more = zmq::send_flags::dontwait | zmq::send_flags::sndmore;
  // A ROUTER without ZMQ_ROUTER_MANDATORY drops a message to a routing id no longer connected:
  // an ack is lost like one lost in flight, which the protocol recovers from.
  if (to != nullptr && !s.send(zmq::const_buffer(to->data(), to->size()), more)) return false;
  // ZeroMQ sends a multipart message atomically: once the first part is queued, the rest are.
  if (!s.send(zmq::const_buffer(topic.data(), topic.size()), more)) return false;
  if (payload.empty()) return s.send(zmq::const_buffer(head.data(), head.size()), zmq::send_flags::dontwait).has_value();
  if (!s.send(zmq::const_buffer(head.data(), head.size()), more)) return false;
  return s.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::dontwait).has_value();
}

/// One received message: its parts (at most 3 kept; more is a refusal).
struct Incoming {
  zmq::message_t parts[3];
  std::size_t count = 0;
  bool too_many = false;
};

/// Receives one whole message without blocking. False when none waits. On a ROUTER socket
/// (`from` given) the routing id the socket prepends goes to `from`.
inline bool recv_message(zmq::socket_t& s, Incoming& in, std::string* from = nullptr) {
  in.count = 0;
  in.too_many = false;
  zmq::message_t scratch;
  if (from != nullptr) {
    if (!s.recv(scratch, zmq::recv_flags::dontwait)) return false;
    from->assign(static_cast<const char*>(scratch.data()), scratch.size());
    if (!scratch.more()) return true;  // a routing id alone: refused as a message of 0 parts
  }
  for (;;) {
    zmq::message_t& m = in.count < 3 ? in.parts[in.count] : scratch;
    if (!s.recv(m, zmq::recv_flags::dontwait)) return in.count != 0 || from != nullptr;  // parts arrive together
    if (in.count < 3) ++in.count;
    else in.too_many = true;
    if (!m.more()) return true;
  }
}

/// Checks the frames of a message against the queue kinds; the header on success.
inline std::optional<qw::Header> check_message(const Incoming& in, const std::string& topic, std::string& why) {
  if (in.too_many || in.count < 2) {
    why = "a message of " + std::string(in.too_many ? "more than 3" : std::to_string(in.count)) + " parts";
    return std::nullopt;
  }
  if (in.parts[0].to_string_view() != topic) {
    why = "a message for channel '" + std::string(in.parts[0].to_string_view().substr(0, 80)) + "', not '" + topic + "'";
    return std::nullopt;
  }
  const std::span<const std::byte> head(static_cast<const std::byte*>(in.parts[1].data()), in.parts[1].size());
  const std::size_t payload = in.count == 3 ? in.parts[2].size() : 0;
  auto h = qw::decode_header(head, payload, why);
  if (h && in.count == 3 && payload == 0) {
    why = "an empty payload part";
    return std::nullopt;
  }
  return h;
}

inline std::span<const std::byte> payload_of(const Incoming& in) {
  if (in.count < 3) return {};
  return {static_cast<const std::byte*>(in.parts[2].data()), in.parts[2].size()};
}

/// One step of either end: exceptions (socket errors, a queue that cannot be created) become a
/// status and the end's last_problem; EINTR becomes interrupted.
template <class Impl>
Status guarded_step(Impl* impl, std::chrono::milliseconds wait) noexcept {
  if (impl == nullptr) return Errc::closed;
  Status result = Errc::system;
  try {
    result = impl->step(wait);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) result = Errc::interrupted;  // a signal: the caller decides whether to go on
    else impl->problem(e.what());
  } catch (const std::exception& e) {
    impl->problem(e.what());
  }
  impl->publish_stats();
  return result;
}

/// The counters another thread may read (stats()) while one thread steps: a copy made by the
/// stepping thread after each step, under a mutex.
struct SharedStats {
  mutable std::mutex mutex;
  QueueLinkStats shown;
  void publish(const QueueLinkStats& s) {
    std::lock_guard lock(mutex);
    shown = s;
  }
  QueueLinkStats get() const {
    std::lock_guard lock(mutex);
    return shown;
  }
};

/// Steps `end` until `stop` is true; an interrupted step goes on.
template <class End>
Status run_until(End& end, const std::atomic<bool>& stop) noexcept {
  while (!stop.load(std::memory_order_acquire)) {
    const Status s = end.step(std::chrono::milliseconds(5));
    if (!s.ok() && s.code() != Errc::interrupted) return s;
  }
  return Errc::ok;
}

}  // namespace shmlink::bridge::qlink
