// SPDX-License-Identifier: MIT
/// @file bridge_queue.hpp
/// @brief Reliable queues across hosts: a QueueSender pops a local queue and sends its samples
/// over ZeroMQ; a QueueReceiver pushes them into a same-name queue of its own host. Every sample
/// arrives once, in order, across link loss and restarts of either process
/// (docs/design/bridge.md, "Queues: exactly once").
///
/// The protocol (queue kinds of the bridge wire format: queue_hello, queue_samples, queue_ack):
/// the sender numbers each sample it pops (the source queue's consumer index plus an offset kept
/// in its state file), keeps every sample not yet acknowledged in a bounded resend window, and
/// sends them in batches; the receiver pushes the sample it expects next, drops a number below it
/// (a duplicate), answers a number above it (a gap) by asking for a resend, and acknowledges
/// what it pushed. The sender says hello after connecting and whenever the receiver went quiet
/// with samples unacknowledged; the answer tells it where to resend from. A full window stops the
/// popping, so the source queue fills and its pusher is back-pressured; a full receiving queue
/// stops the receiver reading, so the window fills. Nothing accepted is ever dropped.
///
/// State that outlives a process lives in small files next to the queue file, never in the queue
/// file (whose bytes other tools read): `<queue file without .shm>.bridge-tx` (the sender's window:
/// acknowledged point, end, numbering offset, the samples) and `.bridge-rx` (the receiver's
/// numbering base: next expected = base + the local queue's producer position).
///
/// Each state file is locked (flock) by the end that uses it: a second sender of one source
/// queue, or a second receiver of one receiving queue, is refused with busy.
///
/// Sockets: a ZeroMQ DEALER at the sender (it connects; ZeroMQ reconnects by itself), a ROUTER at
/// the receiver (it binds; each ack goes back to the connection the message it answers came
/// from). Each sets ZMQ_MAXMSGSIZE to its largest legal message part before connecting or
/// binding: libzmq drops a connection that sends more. The source queue's only consumer must be
/// its sender, and the receiving queue's only producer its receiver (an SPSC queue).
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace shmlink::bridge {

class Security;  // CURVE keys and ZAP handlers (shmlink/bridge_security.hpp)

/// Counters of one end of a bridged queue (process-local, since the object was made).
struct QueueLinkStats {
  std::uint64_t sent = 0;        ///< samples sent (resends included)
  std::uint64_t resent = 0;      ///< samples sent again after a gap, a hello answer or a restart
  std::uint64_t pushed = 0;      ///< receiver: samples pushed into the local queue
  std::uint64_t duplicates = 0;  ///< receiver: samples dropped because they were already pushed
  std::uint64_t refused = 0;     ///< messages refused (bad header, bad record, wrong queue)
  std::uint64_t acked = 0;       ///< the acknowledged point: every number below it was pushed remotely
  std::uint64_t end = 0;         ///< sender: the next number it will give; receiver: next expected
  std::string last_problem;      ///< the latest refused message or protocol problem, naming the peer
};

/// What a QueueSender needs.
struct QueueSenderOptions {
  /// The local source queue (a name in the stream directory, or a path); it must exist.
  std::string queue;
  /// The receiver's ZeroMQ endpoint, e.g. "tcp://10.0.0.2:7100" (connected to; a leading '@'
  /// binds it instead, a leading '>' connects explicitly).
  std::string endpoint;
  /// Samples kept for resending, at most kMaxQueueCapacity; 0: the source queue's capacity.
  /// Taken from the state file when one exists.
  std::uint32_t window = 0;
  /// Most samples in one queue_samples message: 1 .. 4096 (a receiver refuses more).
  std::uint32_t batch = 64;
  /// How long the receiver may stay silent, with samples unacknowledged, before a hello.
  std::chrono::milliseconds quiet_after{300};
  /// CURVE (shmlink/bridge_security.hpp): the sender is a CURVE client with these keys. Null:
  /// plain TCP.
  std::shared_ptr<Security> security;
  /// With `security`: the receiver's public key (Z85, 40 characters).
  std::string server_key;
};

/// The sending end: pops the source queue into a persisted window and sends it. Move-only.
/// Not thread-safe: one thread calls step()/run().
class SHMLINK_EXPORT QueueSender {
 public:
  /// Opens the source queue, its state file (creating it: 0600, its blocks allocated, window
  /// from `options`; locked while this sender lives) and the socket. A state file left by an
  /// earlier sender is carried on: samples it popped but was not told were received are sent
  /// again (the receiver drops what it already has), and a renumbering a crash interrupted is
  /// finished.
  /// @throws Error not_found (no source queue), layout (state file of another queue shape or
  ///         damaged, naming the file and the field: e.g. an offset that would skip samples still
  ///         in the queue), busy (another sender holds the state file), no_space (the file
  ///         system is full), invalid_argument (bad endpoint, batch or window), system.
  static QueueSender open(const QueueSenderOptions& options);
  QueueSender(QueueSender&&) noexcept;
  QueueSender& operator=(QueueSender&&) noexcept;
  ~QueueSender();

  /// One round: reads the receiver's messages (waiting at most `wait` for the first when there
  /// is nothing to send), follows a source queue re-created since (numbering goes on), pops what
  /// the window allows (nothing before the receiver first answered a hello: an empty window is
  /// renumbered to meet a receiver that is ahead), sends, says hello when due.
  /// @return ok; interrupted (a signal arrived while waiting); system (a socket error, see
  ///         stats().last_problem). A receiver's answer that cannot be followed (it claims samples
  ///         this sender never sent) is counted in stats().refused and described in last_problem.
  Status step(std::chrono::milliseconds wait) noexcept;
  /// step() until `stop` is true (checked every few milliseconds; an interrupted step goes on).
  /// Returns ok, or the first step that failed otherwise.
  Status run(const std::atomic<bool>& stop) noexcept;
  /// Counters as of the end of the last step() (a copy under a mutex: callable from any thread).
  [[nodiscard]] QueueLinkStats stats() const;
  /// The endpoint the socket is attached to: for a bound sender ("@tcp://HOST:*") the one libzmq
  /// chose, e.g. "tcp://127.0.0.1:40123", so a service can tell the receiver where to connect.
  [[nodiscard]] std::string endpoint() const;

  struct Impl;

 private:
  explicit QueueSender(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

/// What a QueueReceiver needs.
struct QueueReceiverOptions {
  /// The local queue to push into (a name in the stream directory, or a path). Created on the
  /// sender's first hello with the source's capacity, values per sample and signal table
  /// (SPSC, 0600) when absent; an existing one must be SPSC with the same values per sample.
  std::string queue;
  /// Where to bind, e.g. "tcp://0.0.0.0:7100" (a leading '>' connects to it instead, a leading
  /// '@' binds explicitly).
  std::string endpoint;
  /// The channel name the sender's messages carry (their topic frame: the name of the sender's
  /// queue file without its suffix). Empty: this receiver's own queue file's name, the usual
  /// case; the bridge service sets it when the replica is named NODE:NAME and the sender's NAME.
  std::string channel;
  /// CURVE (shmlink/bridge_security.hpp): the receiver is a CURVE server with these keys and
  /// lets in trusted senders only (a ZAP handler in its context). Null: plain TCP.
  std::shared_ptr<Security> security;
};

/// The receiving end: pushes received samples into the local queue, in order, once. Move-only.
/// Not thread-safe: one thread calls step()/run().
class SHMLINK_EXPORT QueueReceiver {
 public:
  /// Binds the socket; opens the local queue and its state file when both exist (a restart), or
  /// waits for the sender's hello to create them.
  /// @throws Error invalid_argument (bad endpoint), system (address in use), layout (state file
  ///         damaged, or an existing local queue that is MPMC: naming the file), busy (another
  ///         receiver holds the state file).
  static QueueReceiver open(const QueueReceiverOptions& options);
  QueueReceiver(QueueReceiver&&) noexcept;
  QueueReceiver& operator=(QueueReceiver&&) noexcept;
  ~QueueReceiver();

  /// One round: pushes what waits for room (while the local queue is full it reads nothing and
  /// tells the sender it is busy), else reads messages (waiting at most `wait` for the first),
  /// pushes and acknowledges. A local queue re-created or removed since is let go: the sender's
  /// next hello numbers on into the new one. A hello this end cannot follow (the existing local
  /// queue has another shape, or cannot be made) is counted in stats().refused and described in
  /// last_problem, like any refused message: it never ends run().
  /// @return ok; interrupted (a signal arrived while waiting); system (a socket error, or a
  ///         damaged state file met while following a re-created queue).
  Status step(std::chrono::milliseconds wait) noexcept;
  /// step() until `stop` is true (an interrupted step goes on). Returns ok, or the first step
  /// that failed otherwise.
  Status run(const std::atomic<bool>& stop) noexcept;
  /// Counters as of the end of the last step() (a copy under a mutex: callable from any thread).
  [[nodiscard]] QueueLinkStats stats() const;

  struct Impl;

 private:
  explicit QueueReceiver(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmlink::bridge
