// SPDX-License-Identifier: MIT
/// @file service_queue.hpp
/// @brief Queues through the bridge service (docs/design/bridge.md, "Queues through the service"):
/// the owner's service runs a QueueSender that drains its queue, the asker's service a
/// QueueReceiver into a local replica; each end steps on a thread of its own. Internal to
/// shmlink_bridge; the service's members that use these are in service_queue.cpp.
#pragma once

#include <shmlink/bridge_queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace shmlink::bridge::svc {

/// A QueueSender or QueueReceiver stepping on a thread of its own until halted (or until its
/// run() fails: `ended` is then true and `problem` says why). Not copyable; halting joins.
struct QueueEndThread {
  std::atomic<bool> stop{false};
  std::atomic<bool> ended{false};
  std::thread thread;
  std::function<QueueLinkStats()> stats;
  std::string endpoint;  ///< the sender's bound endpoint, or the one the receiver connects to

  QueueEndThread() = default;
  QueueEndThread(const QueueEndThread&) = delete;
  QueueEndThread& operator=(const QueueEndThread&) = delete;
  ~QueueEndThread() { halt(); }
  /// Stops the end and waits for its thread (its socket and state file are closed then).
  void halt() noexcept {
    stop.store(true, std::memory_order_release);
    if (thread.joinable()) thread.join();
  }
};

/// Moves `end` (a QueueSender or QueueReceiver) onto a thread of its own.
template <class End>
std::unique_ptr<QueueEndThread> run_queue_end(End end, std::string endpoint) {
  auto t = std::make_unique<QueueEndThread>();
  auto shared = std::make_shared<End>(std::move(end));
  t->stats = [shared] { return shared->stats(); };
  t->endpoint = std::move(endpoint);
  QueueEndThread* raw = t.get();
  t->thread = std::thread([shared, raw] {
    (void)shared->run(raw->stop);  // a failure is in stats().last_problem
    raw->ended.store(true, std::memory_order_release);
  });
  return t;
}

/// The owner's side: a queue of this host drained by a QueueSender for one asking node.
struct QueueOffer {
  std::string node;  ///< the node whose replica it feeds (a queue has one consumer)
  std::unique_ptr<QueueEndThread> sender;
};

/// The asker's side: a replica of a remote queue this service holds (its receiver may be absent
/// while the owner is asked again, or after a restart before the owner answered).
struct HeldQueue {
  std::string node, name, path;
  std::unique_ptr<QueueEndThread> receiver;
  bool keep = false;
  std::uint64_t owner_incarnation = 0;  ///< of the owner's service that answered; 0: not asked yet
  std::chrono::steady_clock::time_point last_used{}, last_reask{};
};

/// What the marker file next to a queue replica says: `<dir>/<local>.queue.bridge-origin`, text
/// lines "shmlink-bridge-queue 1", node, remote name, held (0/1), keep (0/1). It outlives the
/// service, so a restarted service resumes the replicas it held, and an open finds which local
/// queue is whose replica.
struct QueueMarker {
  std::string node, name;
  bool held = false;
  bool keep = false;
};

/// The marker file of replica `queue_file` ("<dir>/x.queue.shm" -> "<dir>/x.queue.bridge-origin").
std::string marker_path(const std::string& queue_file);
/// Reads a marker; nullopt when absent or not a marker (a damaged one is not trusted).
std::optional<QueueMarker> read_marker(const std::string& path);
/// Writes a marker whole (a temporary file renamed over the path, 0600).
/// @throws Error system naming the file.
void write_marker(const std::string& path, const QueueMarker& m);

}  // namespace shmlink::bridge::svc
