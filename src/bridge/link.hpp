// SPDX-License-Identifier: MIT
// Pieces both ends of a bridged stream share: thin owners of libzmq contexts and sockets,
// multipart messages in the wire format, and the thread that waits on a local stream and wakes
// the socket thread through an eventfd (docs/design/bridge.md, "Threads").
#pragma once

#include "bridge/wire.hpp"

#include <shmlink/stream.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shmlink::bridge::detail {

/// CLOCK_REALTIME now, ns since the epoch.
std::uint64_t realtime_ns() noexcept;

/// A libzmq context with one I/O thread; terminated on destruction.
class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  [[nodiscard]] void* get() const noexcept { return ctx_; }

 private:
  void* ctx_ = nullptr;
};

/// A libzmq socket, closed on destruction (linger 0).
class Socket {
 public:
  Socket() = default;
  /// @throws Error system naming `what` when zmq_socket fails.
  Socket(void* context, int type, std::string_view what);
  /// Takes over a socket someone else created (closed here, linger 0).
  explicit Socket(void* adopted) noexcept;
  ~Socket();
  Socket(Socket&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Socket& operator=(Socket&& o) noexcept;
  [[nodiscard]] void* get() const noexcept { return s_; }
  /// zmq_setsockopt of an int; @throws Error system naming the option.
  void set(int option, int value);
  /// Refuses message parts above `most` bytes before they are received whole (ZMQ_MAXMSGSIZE;
  /// libzmq drops the connection that sent one): a peer cannot make us allocate more. Default:
  /// the wire format's limit (kMaxPayloadBytes + a header's worth). Call it before attach():
  /// libzmq copies options into a listener at bind and into a connection at connect.
  /// @throws Error system naming the option.
  void limit_message_size(std::uint64_t most = wire::kMaxPayloadBytes + wire::kHeaderBytes);
  /// Binds (connect = false) or connects; @throws Error system naming `endpoint` and the reason.
  void attach(const std::string& endpoint, bool connect);
  /// ZMQ_LAST_ENDPOINT.
  [[nodiscard]] std::string last_endpoint() const;

 private:
  void* s_ = nullptr;
};

/// One part of a received message: the libzmq message itself, so that its bytes are read where
/// libzmq received them (no copy; a frame's payload is copied once, into the stream). Move-only.
class Part {
 public:
  Part() noexcept;
  ~Part();
  Part(Part&& o) noexcept;
  Part& operator=(Part&& o) noexcept;
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;
  [[nodiscard]] const std::byte* data() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] const std::byte* begin() const noexcept { return data(); }
  [[nodiscard]] const std::byte* end() const noexcept { return data() + size(); }
  /// The libzmq message (for zmq_msg_recv).
  [[nodiscard]] void* msg() noexcept { return &msg_; }

 private:
  // zmq_msg_t's storage: 64 bytes, 8-aligned (libzmq's zmq.h; checked in link.cpp).
  struct alignas(8) Storage {
    unsigned char bytes[64];
  };
  mutable Storage msg_;  // libzmq's accessors take a non-const message
};

/// One received multipart message: its parts, owned until the next recv_parts() (or clear).
struct Parts {
  std::vector<Part> parts;
  /// The sender's IP address as libzmq tells it (the "Peer-Address" metadata of the first part
  /// that carries it: a ROUTER's identity part does not; dotted IPv4 or IPv6 text, over TCP);
  /// empty when libzmq knows none.
  std::string peer_address;
};

/// Receives one whole multipart message without blocking; false when none is waiting (or the
/// socket failed). The parts stay in libzmq's buffers (no copy), valid until `out` is reused.
/// `user_id`, when given, receives the message's ZAP user id (the "User-Id" property: with CURVE,
/// the node name of the trusted key that authenticated the sender; empty without one).
bool recv_parts(void* socket, Parts& out, std::string* user_id = nullptr);

/// Sends [identity (when not empty), topic, header, payload (when not empty)] without blocking.
/// The header's payload_bytes is set from `payload`. @return false when ZeroMQ refused (peer
/// gone, high-water mark reached): nothing was queued.
bool send_message(void* socket, std::span<const std::byte> identity, std::string_view topic, wire::Header h,
                  std::span<const std::byte> payload = {});

/// A frame buffer ZeroMQ may send from without copying it: every message made from it holds a
/// reference (to the buffer's owner, so that the buffer outlives a Publisher whose messages a
/// caller's context still holds) and counts itself in `in_flight` until libzmq frees it.
struct FrameBuffer {
  std::vector<std::byte> bytes;
  /// Messages made from `bytes` that libzmq has not freed yet.
  /// Memory ordering: libzmq's I/O thread decrements it (release) once it no longer reads the
  /// bytes; FramePool::acquire() reuses a buffer only after an acquire load of 0.
  std::atomic<std::uint32_t> in_flight{0};
};

/// Buffers for zero-copy sends: acquire() returns one that no message uses any more (filled
/// anew by the caller), keeping at most kMaxPooled of them; past that, a fresh one that lives
/// until its last message is freed.
class FramePool {
 public:
  static constexpr std::size_t kMaxPooled = 4;
  /// A buffer of `bytes` bytes that no queued message reads (contents unspecified).
  std::shared_ptr<FrameBuffer> acquire(std::size_t bytes);

 private:
  std::vector<std::shared_ptr<FrameBuffer>> pool_;
};

/// As send_message(), the payload sent from `payload->bytes` without a copy (zmq_msg_init_data):
/// the buffer must not change until its in_flight count is back to 0.
bool send_message(void* socket, std::span<const std::byte> identity, std::string_view topic, wire::Header h,
                  const std::shared_ptr<FrameBuffer>& payload);

/// Waits on a local stream in its own thread and makes an eventfd readable each time its cnt0
/// moves (or the file is replaced or missing); the socket thread polls that fd next to its socket
/// (zmq_poll takes plain fds) and reads it (woken()) before it looks at the stream. An eventfd
/// is a counter: wake-ups coalesce and none is ever dropped. Waits only while armed. Opens the
/// stream by `path` itself (and again after it was replaced or before it exists).
/// How it notices a write, without polling (docs/design/bridge.md, "Threads"): it claims the
/// stream's last free semaphore slot (only when the stream has two or more) and sleeps on it;
/// every writer that posts the semaphores (shmlink's Stream::write by default, ISIO's UpdateIm,
/// milk) wakes it, and an idle stream costs one look at cnt0 every 100 ms. A frame that arrives
/// without a post (a writer that posts no semaphores) is found at that look, and from then on the
/// handle waits with wait_futex() (futex wake-ups of shmlink writers; 10 ms re-checks), as it
/// does without a free slot and in spin mode (wait_spin()).
class Watcher {
 public:
  /// @param on_change when set, called on the watcher's own thread at each change instead of
  ///        making the eventfd readable (the caller then does the work there: one thread
  ///        wake-up less between a write and its send). It must not call set_path().
  /// @throws Error system when no eventfd can be made.
  Watcher(std::string path, bool spin, std::function<void()> on_change = {});
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;
  /// The eventfd to poll for POLLIN.
  [[nodiscard]] int fd() const noexcept { return efd_; }
  /// Starts or pauses waiting (a paused watcher costs nothing).
  void arm(bool on);
  /// Follows another file (the replica re-created under another path; same path: re-opens).
  void set_path(std::string path);
  /// True once since the last call when the watched file was replaced or could not be opened.
  bool take_replaced() noexcept { return replaced_.exchange(false, std::memory_order_acq_rel); }
  /// Resets the eventfd. Call it before looking at the stream: a change after that look makes the
  /// fd readable again.
  /// Memory ordering: the watcher loads the new cnt0 (acquire) before its write(2) to the eventfd;
  /// this read(2) of it comes after, so the caller's next load of cnt0 sees that change.
  void woken() noexcept;

 private:
  void run();
  void notify() noexcept;
  int efd_ = -1;
  std::string path_;
  bool spin_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool stop_ = false;
  bool path_changed_ = false;
  std::atomic<bool> replaced_{false};
  std::function<void()> on_change_;
  std::thread thread_;
};

/// The stream's frame geometry as a header's dtype / naxis / size fields.
void put_shape(wire::Header& h, const Stream& s) noexcept;

/// Sets BR_ORIGIN on replica `s` (docs/design/bridge.md, "Freshness"): the value holds the first
/// kMaxKeywordString (16) bytes of `origin`, as ISIO keyword strings do, and the comment the
/// whole name (up to 79 bytes), so that tools show it and two origins sharing a 16-byte prefix
/// are told apart. @throws Error as Stream::set_keyword.
void set_origin(Stream& s, const std::string& origin);

/// True when stream `s` is a replica of `origin` by its BR_ORIGIN keyword: the comment names
/// `origin` whole, or (a file from before the comment held it) the comment is empty and the
/// value is origin's first 16 bytes. False without BR_ORIGIN or when it cannot be read.
bool is_replica_of(const Stream& s, const std::string& origin) noexcept;

}  // namespace shmlink::bridge::detail
