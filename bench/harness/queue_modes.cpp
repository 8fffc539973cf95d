// SPDX-License-Identifier: MIT
// Names, descriptions and kinds of the `shmlink bench queue` modes (queue.hpp).
#include "harness/queue.hpp"

#include <string>

namespace shmlink::bench {

// ---- modes -------------------------------------------------------------------------------------

const char* queue_latency_mode_name(QueueLatencyMode m) noexcept {
  switch (m) {
    case QueueLatencyMode::cacheline: return "cacheline";
    case QueueLatencyMode::cacheline_message: return "cacheline_message";
    case QueueLatencyMode::futex_raw: return "futex_raw";
    case QueueLatencyMode::spsc_polling: return "spsc_polling";
    case QueueLatencyMode::spsc_hybrid: return "spsc_hybrid";
    case QueueLatencyMode::spsc_futex: return "spsc_futex";
    case QueueLatencyMode::mpmc_polling: return "mpmc_polling";
    case QueueLatencyMode::mpmc_futex: return "mpmc_futex";
    case QueueLatencyMode::pipe: return "pipe";
    case QueueLatencyMode::unix_socket: return "unix_socket";
    case QueueLatencyMode::boost_mq: return "boost_mq";
    case QueueLatencyMode::zmq_ipc: return "zmq_ipc";
  }
  return "?";
}

const char* queue_latency_mode_description(QueueLatencyMode m) noexcept {
  switch (m) {
    case QueueLatencyMode::cacheline: return "raw: atomic store / PAUSE spin on separate cache lines (8 bytes)";
    case QueueLatencyMode::cacheline_message: return "raw: the message copied through shared lines, then a cacheline flag";
    case QueueLatencyMode::futex_raw: return "raw: store + FUTEX_WAKE / FUTEX_WAIT, no spinning (4 bytes)";
    case QueueLatencyMode::spsc_polling: return "shmlink SPSC queue, polling wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::spsc_hybrid: return "shmlink SPSC queue, hybrid wait (20 us spin, then futex): try_push / try_pop, pop";
    case QueueLatencyMode::spsc_futex: return "shmlink SPSC queue, futex wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::mpmc_polling: return "shmlink MPMC queue, polling wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::mpmc_futex: return "shmlink MPMC queue, futex wait: try_push / try_pop, then pop to wait";
    case QueueLatencyMode::pipe: return "two pipes: write / blocking read of the message";
    case QueueLatencyMode::unix_socket: return "socketpair(AF_UNIX, SOCK_STREAM): write / blocking read";
    case QueueLatencyMode::boost_mq: return "two Boost.Interprocess message_queues: send / timed_receive";
    case QueueLatencyMode::zmq_ipc: return "ZeroMQ PAIR sockets over ipc://: send / recv";
  }
  return "";
}

const char* queue_latency_mode_kind(QueueLatencyMode m) noexcept {
  switch (m) {
    case QueueLatencyMode::cacheline:
    case QueueLatencyMode::futex_raw: return "floor";
    case QueueLatencyMode::cacheline_message: return "reference";
    case QueueLatencyMode::pipe:
    case QueueLatencyMode::unix_socket:
    case QueueLatencyMode::boost_mq:
    case QueueLatencyMode::zmq_ipc: return "peer";
    default: return "shmlink";
  }
}

bool queue_latency_mode_is_shmlink(QueueLatencyMode m) noexcept {
  return std::string_view(queue_latency_mode_kind(m)) == "shmlink";
}

bool queue_latency_mode_spins(QueueLatencyMode m) noexcept {
  return m == QueueLatencyMode::cacheline || m == QueueLatencyMode::cacheline_message ||
         m == QueueLatencyMode::spsc_polling || m == QueueLatencyMode::mpmc_polling;
}

std::optional<double> queue_latency_mode_target(QueueLatencyMode m) noexcept {
  if (m == QueueLatencyMode::spsc_polling) return 1.5;
  return std::nullopt;
}

const char* queue_throughput_mode_name(QueueThroughputMode m) noexcept {
  switch (m) {
    case QueueThroughputMode::spsc_single: return "spsc_single";
    case QueueThroughputMode::spsc_bulk: return "spsc_bulk";
    case QueueThroughputMode::mpmc_single: return "mpmc_single";
    case QueueThroughputMode::mpmc_bulk: return "mpmc_bulk";
    case QueueThroughputMode::pipe_single: return "pipe_single";
    case QueueThroughputMode::pipe_batch: return "pipe_batch";
    case QueueThroughputMode::unix_socket_single: return "unix_socket_single";
    case QueueThroughputMode::unix_socket_batch: return "unix_socket_batch";
    case QueueThroughputMode::boost_mq_single: return "boost_mq_single";
    case QueueThroughputMode::boost_mq_batch: return "boost_mq_batch";
    case QueueThroughputMode::zmq_ipc_single: return "zmq_ipc_single";
    case QueueThroughputMode::zmq_ipc_batch: return "zmq_ipc_batch";
  }
  return "?";
}

const char* queue_throughput_mode_description(QueueThroughputMode m) noexcept {
  switch (m) {
    case QueueThroughputMode::spsc_single: return "shmlink SPSC queue, hybrid wait: try_push / try_pop (push / pop to wait)";
    case QueueThroughputMode::spsc_bulk: return "shmlink SPSC queue: try_push_burst / try_pop_burst of batch samples";
    case QueueThroughputMode::mpmc_single: return "shmlink MPMC queue, hybrid wait: try_push / try_pop (push / pop to wait)";
    case QueueThroughputMode::mpmc_bulk: return "shmlink MPMC queue: try_push_burst / try_pop_burst of batch samples";
    case QueueThroughputMode::pipe_single: return "one pipe: one message per write, reads of up to 64 KiB";
    case QueueThroughputMode::pipe_batch: return "one pipe: batch messages per write, reads of up to 64 KiB";
    case QueueThroughputMode::unix_socket_single: return "socketpair(AF_UNIX, SOCK_STREAM): one message per write";
    case QueueThroughputMode::unix_socket_batch: return "socketpair(AF_UNIX, SOCK_STREAM): batch messages per write";
    case QueueThroughputMode::boost_mq_single: return "Boost.Interprocess message_queue: one message per send";
    case QueueThroughputMode::boost_mq_batch: return "Boost.Interprocess message_queue: batch messages per send";
    case QueueThroughputMode::zmq_ipc_single: return "ZeroMQ PAIR over ipc://: one message per zmq message";
    case QueueThroughputMode::zmq_ipc_batch: return "ZeroMQ PAIR over ipc://: batch messages per zmq message";
  }
  return "";
}

bool queue_throughput_mode_is_shmlink(QueueThroughputMode m) noexcept {
  return m == QueueThroughputMode::spsc_single || m == QueueThroughputMode::spsc_bulk ||
         m == QueueThroughputMode::mpmc_single || m == QueueThroughputMode::mpmc_bulk;
}

bool queue_throughput_mode_is_batched(QueueThroughputMode m) noexcept {
  switch (m) {
    case QueueThroughputMode::spsc_bulk:
    case QueueThroughputMode::mpmc_bulk:
    case QueueThroughputMode::pipe_batch:
    case QueueThroughputMode::unix_socket_batch:
    case QueueThroughputMode::boost_mq_batch:
    case QueueThroughputMode::zmq_ipc_batch: return true;
    default: return false;
  }
}

const char* queue_peer_name(QueuePeer p) noexcept { return queue_latency_mode_name(queue_peer_latency_mode(p)); }

QueueLatencyMode queue_peer_latency_mode(QueuePeer p) noexcept {
  switch (p) {
    case QueuePeer::pipe: return QueueLatencyMode::pipe;
    case QueuePeer::unix_socket: return QueueLatencyMode::unix_socket;
    case QueuePeer::boost_mq: return QueueLatencyMode::boost_mq;
    case QueuePeer::zmq_ipc: return QueueLatencyMode::zmq_ipc;
  }
  return QueueLatencyMode::pipe;
}

QueueThroughputMode queue_peer_throughput_mode(QueuePeer p, bool batched) noexcept {
  switch (p) {
    case QueuePeer::pipe: return batched ? QueueThroughputMode::pipe_batch : QueueThroughputMode::pipe_single;
    case QueuePeer::unix_socket:
      return batched ? QueueThroughputMode::unix_socket_batch : QueueThroughputMode::unix_socket_single;
    case QueuePeer::boost_mq: return batched ? QueueThroughputMode::boost_mq_batch : QueueThroughputMode::boost_mq_single;
    case QueuePeer::zmq_ipc: return batched ? QueueThroughputMode::zmq_ipc_batch : QueueThroughputMode::zmq_ipc_single;
  }
  return QueueThroughputMode::pipe_single;
}

std::string queue_result_name(const QueueLatencyResult& r) {
  const std::string name = queue_latency_mode_name(r.mode);
  return r.placement.empty() ? name : name + "@" + r.placement;
}

std::string queue_result_name(const QueueThroughputResult& r) {
  const std::string name = queue_throughput_mode_name(r.mode);
  return r.placement.empty() ? name : name + "@" + r.placement;
}

}  // namespace shmlink::bench
