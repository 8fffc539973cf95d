// SPDX-License-Identifier: MIT
/// @file peers.hpp
/// @brief The message transports `shmlink bench queue` compares shmlink with (docs/bench.md):
/// Boost.Interprocess message_queue and ZeroMQ PAIR sockets over ipc://. Both move whole
/// messages (or batches of them) as datagrams, so one channel (DatagramChannel) runs the
/// ping-pong and producer/consumer loops over either transport.
#pragma once

#include "harness/channels.hpp"
#include "harness/pingpong.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shmlink::bench {

/// A run whose peers are named resources: Boost message_queues (in /dev/shm) and a ZeroMQ
/// ipc:// endpoint. The parent's destructor removes them.
struct PeerRun : Run {
  std::string mq_to_child;   ///< Boost message_queue name the parent sends to (latency)
  std::string mq_to_parent;  ///< Boost message_queue name the child sends to
  std::string endpoint;      ///< ZeroMQ ipc:// endpoint (the parent binds, the child connects)

  using Run::Run;
  /// Removes the message queues and the endpoint's socket file.
  ~PeerRun();
};

/// Creates the Boost message_queue `name` (in /dev/shm) of `messages` messages of up to
/// `message_bytes` each, replacing an old one. @throws Error naming it.
void make_mq(const std::string& name, std::size_t messages, std::size_t message_bytes);

/// A fresh ipc:// endpoint in `dir` for every run: a child connecting to the previous run's
/// socket file (unlinked by ZeroMQ's I/O thread some time after the close) would lose messages.
std::string zmq_endpoint(const std::string& dir);

/// Boost.Interprocess message_queue (a mutex and two condition variables in shared memory;
/// POSIX process-shared pthread objects on Linux): this side's queues of the run.
class BoostTransport {
 public:
  /// Opens the run's queues of this side. @throws Error naming a queue that cannot be opened.
  BoostTransport(PeerRun& run, Side side);
  ~BoostTransport();
  BoostTransport(const BoostTransport&) = delete;
  BoostTransport& operator=(const BoostTransport&) = delete;
  /// Sends `size` bytes as one message (blocks while the queue is full). @return false on error
  /// (the reason in `error`).
  bool send(const std::byte* p, std::size_t size, std::string& error) noexcept;
  /// Receives one message into `p` (up to `size` bytes), waiting at most about a second.
  /// @return its size, 0 when the wait passed, -1 on error (the reason in `error`).
  std::int64_t receive(std::byte* p, std::size_t size, std::string& error) noexcept;
  /// "message_queue", for messages.
  static constexpr const char* kName = "message_queue";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// ZeroMQ PAIR socket over ipc:// (a unix socket served by each side's ZeroMQ I/O thread). The
/// parent binds, the child connects; each makes its own context after the fork.
class ZmqTransport {
 public:
  /// Binds (parent) or connects (child) to the run's endpoint. @throws Error naming it.
  ZmqTransport(PeerRun& run, Side side);
  /// Closes the socket and the context (the child's linger -1 waits until its messages left).
  ~ZmqTransport();
  ZmqTransport(const ZmqTransport&) = delete;
  ZmqTransport& operator=(const ZmqTransport&) = delete;
  /// Sends `size` bytes as one message. @return false on error (the reason in `error`).
  bool send(const std::byte* p, std::size_t size, std::string& error) noexcept;
  /// Receives one message into `p` (up to `size` bytes). @return its size, 0 when the wait
  /// slice passed (or a signal came), -1 on error or a message larger than `size`.
  std::int64_t receive(std::byte* p, std::size_t size, std::string& error) noexcept;
  /// "zmq", for messages.
  static constexpr const char* kName = "zmq";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A peer channel over a datagram transport: one message per hop (latency), `run.batch`
/// messages per datagram (throughput), every sequence number checked.
template <class Transport>
struct DatagramChannel {
  PeerRun& run;
  Transport t;
  std::vector<std::byte> msg;  ///< the message (latency: received and echoed)
  std::vector<std::byte> buf;  ///< throughput: a batch of messages

  DatagramChannel(PeerRun& r, Side side) : run(r), t(r, side), msg(r.message) {}

  Fail a_send(std::uint64_t seq) noexcept {
    put_seq(msg.data(), seq);
    return t.send(msg.data(), msg.size(), run.error) ? Fail::none : Fail::error;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    std::int64_t deadline = 0;
    for (;;) {
      const std::int64_t got = t.receive(msg.data(), msg.size(), run.error);
      if (got < 0) return Fail::error;
      if (got > 0) {
        if (static_cast<std::size_t>(got) == msg.size() && get_seq(msg.data()) == seq) return Fail::none;
        run.error = order_error(get_seq(msg.data()), seq);
        return Fail::error;
      }
      if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const std::int64_t got = t.receive(msg.data(), msg.size(), run.error);
      if (got < 0) return false;
      if (got == 0) continue;  // the parent kills us when it is done
      *seq = get_seq(msg.data());
      return true;
    }
  }
  bool b_send(std::uint64_t /*seq*/) noexcept { return t.send(msg.data(), msg.size(), run.error); }

  /// Child: sends messages `first` .. `first + n - 1`, `batch` per datagram.
  bool produce(std::uint64_t first, std::int64_t n) noexcept {
    return produce_batches(run.batch, msg, buf, first, n,
                           [this](const std::byte* b, std::size_t size) { return t.send(b, size, run.error); });
  }
  /// Parent: receives messages `first` .. `first + n - 1`, checking their order.
  Fail consume(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) buf.resize(run.batch * bytes);
    const auto end = first + static_cast<std::uint64_t>(n);
    std::uint64_t want = first;
    std::int64_t deadline = 0;
    while (want < end) {
      const std::int64_t got = t.receive(buf.data(), buf.size(), run.error);
      if (got < 0) return Fail::error;
      if (got == 0) {
        if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
        continue;
      }
      deadline = 0;
      const auto size = static_cast<std::size_t>(got);
      if (size % bytes != 0) {
        run.error = std::string(Transport::kName) + " delivered " + std::to_string(size) +
                    " bytes, not a multiple of " + std::to_string(bytes);
        return Fail::error;
      }
      for (std::size_t off = 0; off < size; off += bytes, ++want) {
        if (get_seq(buf.data() + off) != want) {
          run.error = order_error(get_seq(buf.data() + off), want);
          return Fail::error;
        }
      }
    }
    return Fail::none;
  }
};

/// Peer: Boost.Interprocess message_queue.
using BoostChannel = DatagramChannel<BoostTransport>;
/// Peer: ZeroMQ PAIR over ipc://.
using ZmqChannel = DatagramChannel<ZmqTransport>;

}  // namespace shmlink::bench
