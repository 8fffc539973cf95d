// SPDX-License-Identifier: MIT
/// @file bridge.hpp
/// @brief Latest-value stream replication over ZeroMQ (issue 22; docs/design/bridge.md): a
/// `Publisher` at the stream's owner and a `Replica` at each subscriber. The replica is an
/// ordinary ISIO stream file of the same name in the subscriber's stream directory, published
/// frame by frame as a local write (write flag, seqlock, cnt0, futex wake, semaphores), so every
/// reader of streams reads it unchanged. Writes made on the replica go back to the owner.
///
/// Messages follow the bridge's wire format (src/bridge/wire.hpp, docs/design/bridge.md "Wire
/// format"): ZeroMQ multipart [topic = stream name, 128-byte header, payload]. The owner binds a
/// ROUTER socket, each replica connects a DEALER; a replica's heartbeat is its subscription and
/// its credit, so the owner sends a subscriber the newest frame only when that subscriber has
/// taken the previous one (latest-value: a slow link skips frames, counted, and never queues).
/// A replica may ask for every frame instead (ReplicationMode::every_frame, for recorders): it
/// then gets a rolling-buffer source's frames in order, a window of them in flight, and counts
/// those overwritten before they could be sent.
///
/// Both objects run their own threads (one for the socket, one waiting on the stream by futex, or
/// by spinning when asked, which wakes the first through an eventfd) from construction until stop() or destruction. Setup throws
/// shmlink::Error naming the stream and the endpoint; afterwards nothing throws and nothing a
/// peer sends can crash them: refused messages are counted and the last reason kept.
#pragma once

#include <shmlink/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace shmlink::bridge {

class Security;  // CURVE keys and ZAP handlers (shmlink/bridge_security.hpp)

/// Heartbeats and link loss, shared by both ends (docs/design/bridge.md, "A lost link").
struct LinkTiming {
  /// A message is sent at least this often on an idle link (a replica's heartbeat renews its
  /// subscription; an owner's says it is alive and gives the source's cnt0).
  std::chrono::milliseconds heartbeat{1000};
  /// No message for this long: the link is down (a replica keeps its last frame and marks
  /// BR_LINK = 0; an owner forgets the subscriber).
  std::chrono::milliseconds link_timeout{4000};
};

/// How a replica follows its source (docs/design/bridge.md, "Every-frame mode").
enum class ReplicationMode : std::uint8_t {
  /// The newest frame, one in flight: a slow link or reader skips frames (counted in
  /// BR_SKIPPED) instead of queueing latency. The replica is a plain stream of the frame's shape.
  latest,
  /// Every source frame in cnt0 order, up to ReplicaOptions::window in flight, for recorders: a
  /// rolling-buffer source's history is sent slice by slice, and the replica is a rolling buffer
  /// of the source's depth. Frames overwritten at the owner before they could be sent are lost
  /// and counted (BR_LOST, ReplicaStats::lost); none is sent twice. A plain source's frames
  /// travel as the owner sees them: every cnt0 it catches, the others lost.
  every_frame,
};

/// Largest window of frames in flight a replica may ask for in every-frame mode.
inline constexpr std::uint32_t kMaxEveryFrameWindow = 1024;
/// Window of frames in flight of an every-frame replica when the asker names none.
inline constexpr std::uint32_t kDefaultEveryFrameWindow = 64;
/// Most bytes of frames an owner keeps in flight to one every-frame subscriber: a window that
/// would exceed it is narrowed to what fits (at least one frame), so that a 1024-frame window of
/// 16 MiB frames cannot make the owner queue 16 GiB.
inline constexpr std::uint64_t kMaxEveryFrameBytesInFlight = std::uint64_t{256} << 20;

/// Options of a Publisher.
struct PublisherOptions {
  LinkTiming timing;
  /// Wait for source frames by spinning on cnt0 (a core busy while subscribers exist) instead of
  /// a futex wait.
  bool spin = false;
  /// Refuse writes sent back by replicas (stream_write): counted in writes_refused.
  bool read_only = false;
  /// Serve replicas that ask for ReplicationMode::every_frame in that mode. When false they are
  /// served the latest value, and their stream_meta says so (the replica falls back, reports it
  /// in last_error() and ReplicaStats::mode).
  bool accept_every_frame = true;
  /// CURVE (shmlink/bridge_security.hpp): the socket becomes a CURVE server with these keys and
  /// the Publisher's context gets a ZAP handler that lets in trusted clients only. Null: plain
  /// TCP. Not used by the constructor that adopts a caller's socket (that socket stays as given).
  std::shared_ptr<Security> security;
};

/// Counters of a Publisher (each a racy snapshot).
struct PublisherStats {
  std::uint64_t frames_sent = 0;     ///< stream_frame messages with a payload
  std::uint64_t echoes_sent = 0;     ///< stream_frame echoes (a subscriber's own write, no payload)
  std::uint64_t frames_skipped = 0;  ///< source frames a subscriber did not get (slow link), summed
  std::uint64_t frames_lost = 0;     ///< every-frame mode: frames overwritten before they were sent, summed
  std::uint64_t metas_sent = 0;      ///< stream_meta messages
  std::uint64_t writes_applied = 0;  ///< stream_write messages written into the source
  std::uint64_t writes_refused = 0;  ///< stream_write messages refused (read-only, shape, generation)
  std::uint64_t refused = 0;         ///< messages refused by the wire checks or for their topic
  std::uint64_t generation = 0;      ///< the source's current incarnation (0: source missing)
  std::uint32_t subscribers = 0;     ///< subscribers heard within link_timeout
};

/// The owner's side: watches a local stream and sends its newest frames to the replicas that want
/// them, over a ZeroMQ ROUTER socket it binds.
///
/// Behaviour (docs/design/bridge.md, "Message flow"):
/// - a subscriber (a replica's DEALER) exists while its heartbeats arrive; frames travel only
///   while at least one exists, and the stream is not even waited on without one; at most 1024
///   at once (a heartbeat from one more connection is refused, counted in `refused`);
/// - each subscriber first gets stream_meta (shape, dtype, keywords, generation), again whenever
///   the source was re-created (a new generation: its creation time);
/// - then, one per credit (a heartbeat with the ready flag), the newest source frame copied with
///   read_copy() (the seqlock: never torn), only if its cnt0 is above the last one sent to that
///   subscriber (never the same frame twice), with `skipped` = source frames it missed;
/// - a stream_write from a subscriber is written into the source (same generation, shape and
///   dtype only); that subscriber then gets the resulting frame as an echo without payload;
/// - heartbeats go to each subscriber idle for timing.heartbeat;
/// - a subscriber asking ReplicationMode::every_frame (when accept_every_frame) is told so in its
///   stream_meta (with the source's depth) and then gets every source frame from the newest one
///   on, in cnt0 order, up to its window unacknowledged: a rolling buffer's history is read slice
///   by slice with read_frame() (validated, never torn); frames overwritten before they could be
///   sent are counted (`skipped` of the next frame, stats().frames_lost). A subscriber that
///   resubscribes in the same generation resumes after the frame it acknowledged last. Its
///   window is narrowed to kMaxEveryFrameBytesInFlight bytes of frames, and an acknowledgement
///   of a frame not yet sent counts only up to the last one sent (a lying subscriber cannot
///   open the window without bound). The socket's send high-water mark (kMaxEveryFrameWindow
///   plus room for heartbeats and metas) is never what limits a window.
class Publisher {
 public:
  /// Opens stream `stream` (a name in stream_directory(), or a path) and binds a ROUTER socket to
  /// `endpoint` (e.g. "tcp://127.0.0.1:*" for an ephemeral port; see endpoint()).
  /// @throws Error not_found / layout / permission (the stream, as Stream::open), system (the
  ///         endpoint could not be bound: the message names it and ZeroMQ's reason).
  Publisher(std::string_view stream, std::string_view endpoint, const PublisherOptions& options = {});
  /// Publishes `stream` on a ROUTER socket the caller created with libzmq's zmq_socket() and
  /// bound (e.g. a service sharing one context among its streams). The Publisher owns it from
  /// this call on, even when the
  /// call throws, and closes it at stop(); its context must outlive the Publisher. Sets
  /// ZMQ_ROUTER_MANDATORY and ZMQ_LINGER 0 on it. ZMQ_MAXMSGSIZE is the caller's to set, before
  /// binding (libzmq copies it into the listener at bind; set later it has no effect there).
  /// @throws Error invalid_argument (null or not a ROUTER socket), and as the other constructor.
  Publisher(std::string_view stream, void* router_socket, const PublisherOptions& options = {});
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  /// Stops (as stop()).
  ~Publisher();
  /// The endpoint last bound (ZMQ_LAST_ENDPOINT: "tcp://127.0.0.1:41234").
  [[nodiscard]] const std::string& endpoint() const noexcept;
  /// Counters so far.
  [[nodiscard]] PublisherStats stats() const noexcept;
  /// The last refused message or failure, naming the peer and what was wrong; empty if none.
  [[nodiscard]] std::string last_error() const;
  /// Stops the threads and closes the socket (linger 0: frames not yet sent are dropped, as
  /// latest-value allows). Idempotent, and safe from several threads at once (one stops, the
  /// others wait for it).
  void stop() noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Options of a Replica.
struct ReplicaOptions {
  LinkTiming timing;
  /// Name or path of the local replica; empty: the remote stream's name in stream_directory().
  std::string local_name;
  /// Value of the BR_ORIGIN keyword (at most 16 bytes kept); empty: the endpoint's host.
  std::string origin;
  /// ZeroMQ's reconnection back-off after a lost connection: first wait, doubling up to the max.
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{2000};
  /// Semaphore slots of the replica file.
  std::uint16_t semaphores = 10;
  /// Wait for local writes by spinning on the replica's cnt0 instead of a futex wait.
  bool spin = false;
  /// A local stream already at the replica's path that is not a replica of this origin (no
  /// BR_ORIGIN keyword, or another origin's) is refused by default (it belongs to someone
  /// else). True: the caller makes that stream a mirror on purpose (DAO's `subThread` on a
  /// stream it created): it is kept when it fits, re-created otherwise, and written.
  bool take_over_local = false;
  /// What the replica asks the owner for. every_frame makes the replica a rolling buffer of the
  /// source's depth that receives every source frame in order (or counts it lost); an owner
  /// that does not accept it (PublisherOptions::accept_every_frame) serves the latest value
  /// instead, which stats().mode and last_error() report.
  ReplicationMode mode = ReplicationMode::latest;
  /// every_frame: source frames in flight (sent, not yet acknowledged), 1..kMaxEveryFrameWindow
  /// (values outside are clamped). Larger windows carry more frames per round trip.
  std::uint32_t window = kDefaultEveryFrameWindow;
  /// CURVE (shmlink/bridge_security.hpp): connect as a CURVE client with these keys. Null: plain
  /// TCP.
  std::shared_ptr<Security> security;
  /// With `security`: the owner's public key (Z85, 40 characters; peer_public_key()); a
  /// publisher holding another key is never talked to.
  std::string server_key;
};

/// Counters and state of a Replica (racy snapshot).
struct ReplicaStats {
  std::uint64_t frames_published = 0;  ///< source frames published on the replica
  std::uint64_t duplicates_dropped = 0;///< frames whose source cnt0 was already published
  std::uint64_t echoes = 0;            ///< echoes of our own writes (not published)
  std::uint64_t writes_sent = 0;       ///< local writes sent back to the owner
  std::uint64_t metas = 0;             ///< stream_meta messages applied
  std::uint64_t recreated = 0;         ///< times the replica file was (re-)created
  std::uint64_t skipped = 0;           ///< source frames skipped by the owner (slow link), summed
  std::uint64_t refused = 0;           ///< messages refused by the wire checks
  std::uint64_t source_cnt0 = 0;       ///< source cnt0 of the newest frame received
  std::uint64_t lost = 0;              ///< every-frame mode: source frames overwritten before they were sent
  bool link_up = false;                ///< a message arrived within link_timeout
  /// The mode in force: the one asked for once the owner's stream_meta granted it; latest before
  /// the first stream_meta and when the owner refused every_frame.
  ReplicationMode mode = ReplicationMode::latest;
};

/// Freshness keywords on every replica (docs/design/bridge.md, "Freshness").
inline constexpr const char* kKeywordOrigin = "BR_ORIGIN";      ///< 'S': origin host
inline constexpr const char* kKeywordLink = "BR_LINK";          ///< 'L': 1 link up, 0 down
inline constexpr const char* kKeywordAge = "BR_AGE_US";         ///< 'L': frame age on arrival, us
inline constexpr const char* kKeywordSkipped = "BR_SKIPPED";    ///< 'L': source frames skipped, total
inline constexpr const char* kKeywordSourceCnt0 = "BR_SRC_CNT0"; ///< 'L': source cnt0 of the frame
inline constexpr const char* kKeywordSourceTime = "BR_SRC_WTIME";///< 'L': source write time, ns
inline constexpr const char* kKeywordLost = "BR_LOST";          ///< 'L': every-frame mode: frames lost, total

/// The subscriber's side: connects a DEALER to an owner's Publisher and keeps a same-name
/// replica of its stream (created at the first stream_meta; re-created, with PurgeAndCreate, when
/// the source's shape or dtype changes). A file already there is kept or replaced only when it
/// is a replica of the same origin (its BR_ORIGIN keyword); any other local stream of that name
/// is left alone and the stream_meta refused (counted, naming the file), as is one announcing a
/// frame above the wire format's 4 GiB.
///
/// Each frame received is published as a local write (Stream::write), so `read_copy` on the
/// replica never returns a torn frame and `wait_futex` / semaphore readers wake as for any
/// writer. A source frame is published at most once (its cnt0 must be above the last published
/// one of that generation; a restarted replica keeping its file reads it from the file's
/// BR_SRC_CNT0 when BR_SRC_GEN names the same generation). A frame written on the replica by another local process is sent back
/// to the owner (stream_write); the owner's echo of it is not published again. Freshness
/// keywords (kKeyword*) are set before each publication. In every-frame mode
/// (ReplicaOptions::mode) the replica is a rolling buffer of the source's depth, each source
/// frame it receives is one write in cnt0 order (so read_next() on it records them in order), and
/// frames lost at the owner are counted in BR_LOST instead of BR_SKIPPED; it acknowledges the
/// frames it published in its heartbeats. A lost link (nothing for link_timeout)
/// keeps the last frame and sets BR_LINK = 0; ZeroMQ reconnects with back-off and the
/// subscription resumes by itself.
class Replica {
 public:
  /// Connects to `endpoint` (e.g. "tcp://10.0.0.2:7710") for remote stream `stream`.
  /// @throws Error invalid_argument (a stream name that is not a valid name), system (ZeroMQ
  ///         refused the endpoint: the message names it and the reason).
  Replica(std::string_view stream, std::string_view endpoint, const ReplicaOptions& options = {});
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;
  /// Stops (as stop()).
  ~Replica();
  /// Path of the local replica file.
  [[nodiscard]] const std::string& path() const noexcept;
  /// Waits until the replica exists and holds its first frame (or exists and the source has
  /// never been written: cnt0 0 at the owner), at most `timeout`.
  /// @return true when it does.
  bool wait_first_frame(std::chrono::milliseconds timeout) const;
  /// Counters and link state.
  [[nodiscard]] ReplicaStats stats() const noexcept;
  /// The last refused message or failure, naming the peer and what was wrong; empty if none.
  [[nodiscard]] std::string last_error() const;
  /// Tells the owner it no longer wants the stream (the release heartbeat gets 100 ms to leave),
  /// stops the threads and closes the socket. The replica file stays. Idempotent, and safe from
  /// several threads at once.
  void stop() noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmlink::bridge
