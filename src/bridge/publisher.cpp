// SPDX-License-Identifier: MIT
// The owner's side of a bridged stream (include/shmlink/bridge.hpp; docs/design/bridge.md,
// "Message flow" and "Latest value, no duplicates").
#include "bridge/link.hpp"
#include "bridge/security.hpp"

#include <shmlink/bridge.hpp>

#include <zmq.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

namespace shmlink::bridge {

using detail::realtime_ns;
using Clock = std::chrono::steady_clock;

namespace {

/// A subscriber's routing id as hex, for messages.
std::string peer_name(std::span<const std::byte> id) {
  std::string out = "peer ";
  char b[3];
  for (std::byte x : id) {
    std::snprintf(b, sizeof b, "%02x", std::to_integer<unsigned>(x));
    out += b;
  }
  return out;
}

/// A routing id's bytes. (Ids are map keys as strings: g++ 12 -O3 warns, wrongly, on the
/// memcmp of std::vector<std::byte>'s ordering.)
std::span<const std::byte> id_bytes(const std::string& id) noexcept { return std::as_bytes(std::span(id)); }

/// The incarnation of a stream file: its creation time (ns), or its inode when a foreign tool
/// left the creation time 0. Never 0.
std::uint64_t generation_of(const Stream& s) noexcept {
  const auto t = static_cast<std::uint64_t>(s.creation_time_ns());
  if (t != 0) return t;
  return s.inode() != 0 ? s.inode() : 1;
}

/// Most subscribers of one Publisher: a heartbeat(want) from one more connection is refused
/// (counted, described) until one leaves, so that connections cannot grow the table unbounded.
constexpr std::size_t kMaxSubscribers = 1024;

}  // namespace

struct Publisher::Impl {
  struct Subscriber {
    std::uint64_t last_sent = 0;   // source cnt0 last sent in meta_gen (0: none)
    std::uint64_t meta_gen = 0;    // generation whose stream_meta it got
    std::uint64_t echo_cnt0 = 0;   // source cnt0 its own stream_write produced
    bool ready = false;            // holds a credit
    Clock::time_point heard, told;
    // Every-frame mode (docs/design/bridge.md, "Every-frame mode").
    bool asks_every = false;       // its heartbeats ask for every-frame mode
    bool every = false;            // served every frame in meta_gen (decided at its stream_meta)
    std::uint32_t window = 1;      // frames in flight it accepts
    std::uint64_t acked = 0;       // source cnt0 it acknowledged in acked_gen
    std::uint64_t acked_gen = 0;
    std::uint64_t next = 0;        // source cnt0 to send next
    std::uint64_t lost = 0;        // frames lost since the last one sent (the next header's skipped)
  };

  std::string name;  // topic: the stream's name
  std::string path;
  PublisherOptions opt;
  std::unique_ptr<detail::Context> ctx;  // none when the caller's socket was adopted
  detail::Socket router;
  std::string endpoint;
  Stream source;
  std::uint64_t generation = 0;
  // The newest copied frame, sent without another copy (zero-copy: ZeroMQ reads it in place);
  // a frame still queued keeps its buffer, and the next frame is copied into another one.
  detail::FramePool frames;
  std::shared_ptr<detail::FrameBuffer> frame;
  std::vector<std::byte> history_frame;  // every-frame mode: the frame being sent
  std::uint64_t frame_cnt0 = 0;  // its source cnt0 (0: none)
  FrameInfo frame_info;
  std::map<std::string, Subscriber> subs;  // by routing id (bytes held in a string)
  Clock::time_point last_recheck;

  std::atomic<bool> stop{false};
  std::mutex stop_mutex;
  // Held by whichever thread runs step(): the socket thread, or the watcher's at a new frame.
  // Guards the socket and everything above; `watcher_parts` is the watcher thread's buffer.
  std::mutex mutex;
  detail::Parts watcher_parts;
  std::thread thread;
  std::unique_ptr<detail::Watcher> watcher;

  mutable std::mutex stats_mutex;
  PublisherStats st;
  std::string error;

  void fail(std::string message) {
    std::lock_guard lock(stats_mutex);
    error = std::move(message);
  }
  template <class F>
  void count(F f) {
    std::lock_guard lock(stats_mutex);
    f(st);
  }

  void open_source() {
    source = Stream::open(path);
    generation = generation_of(source);
    frame.reset();
    history_frame.assign(source.frame_bytes(), std::byte{0});
    frame_cnt0 = 0;
    count([&](PublisherStats& s) { s.generation = generation; });
  }

  /// Re-opens the source after the watcher saw it replaced (or missing); a new file is a new
  /// generation, which every subscriber learns by a fresh stream_meta.
  void recheck_source() {
    if (source.valid() && !source.replaced()) return;
    source.close();
    try {
      open_source();
    } catch (const Error& e) {
      generation = 0;
      count([&](PublisherStats& s) { s.generation = 0; });
      fail(e.what());
    }
  }

  wire::Header shaped(wire::Kind kind) const {
    wire::Header h = wire::make_header(kind);
    h.generation = generation;
    if (source.valid()) detail::put_shape(h, source);
    return h;
  }

  bool send_meta(const std::string& id, Subscriber& sub) {
    std::vector<std::byte> payload;
    std::uint32_t n = 0;
    try {
      const auto kws = source.keywords();
      payload = wire::encode_keywords(kws);
      n = static_cast<std::uint32_t>(kws.size());
    } catch (const Error& e) {
      fail(e.what());
    }
    wire::Header h = shaped(wire::Kind::stream_meta);
    h.keyword_count = n;
    h.sequence = source.cnt0();
    const bool every = sub.asks_every && opt.accept_every_frame;
    if (every) {
      h.flags = wire::kMetaEveryFrame;
      h.cnt1 = source.depth();
    }
    if (!detail::send_message(router.get(), id_bytes(id), name, h, payload)) return false;
    sub.meta_gen = generation;
    sub.last_sent = 0;
    sub.echo_cnt0 = 0;
    sub.every = every;
    if (every) start_every_frame(sub, h.sequence);
    sub.told = Clock::now();
    count([](PublisherStats& s) { ++s.metas_sent; });
    return true;
  }

  /// Copies the newest source frame once per new cnt0 (read_copy: seqlock-validated).
  bool refresh_frame() {
    if (!source.valid()) return false;
    const std::uint64_t c = source.cnt0();
    if (c == 0) return false;  // nothing written yet
    if (c == frame_cnt0) return true;
    FrameInfo info;
    frame = frames.acquire(source.frame_bytes());  // a buffer no queued message reads
    const Status r = source.read_copy(frame->bytes, &info);
    if (!r.ok()) {
      frame_cnt0 = 0;  // the buffer holds no whole frame: read again next time
      fail("stream '" + name + "': reading the newest frame failed: " + r.message());
      return false;
    }
    frame_cnt0 = info.cnt0;
    frame_info = info;
    return true;
  }

  /// Where an every-frame subscriber starts after its stream_meta: after the frame it
  /// acknowledged in this generation (a replica re-subscribing after a lost link resumes, the
  /// frames overwritten meanwhile counted lost), else, and when that acknowledgement is beyond
  /// the source's cnt0 `cnt0` (a peer that lies), at the newest frame.
  static void start_every_frame(Subscriber& sub, std::uint64_t cnt0) noexcept {
    const bool resume = sub.acked_gen == sub.meta_gen && sub.acked != 0 && sub.acked <= cnt0;
    sub.next = resume ? sub.acked + 1 : std::max<std::uint64_t>(cnt0, 1);
    sub.acked = sub.next - 1;
    sub.acked_gen = sub.meta_gen;
    sub.last_sent = sub.next - 1;
    sub.lost = 0;
  }

  /// A heartbeat's every-frame fields: the mode asked, the window, the acknowledgement (only of
  /// the current generation: an older one says nothing about this source's frames).
  void note_every_frame(Subscriber& sub, const wire::Header& h) const noexcept {
    sub.asks_every = (h.flags & wire::kHeartbeatEveryFrame) != 0;
    if (!sub.asks_every) return;
    const std::uint64_t fit = kMaxEveryFrameBytesInFlight / std::max<std::uint64_t>(history_frame.size(), 1);
    sub.window = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(std::min(h.cnt1, fit), 1, kMaxEveryFrameWindow));
    if (h.generation == 0 || h.generation != generation) return;
    if (sub.acked_gen != generation) sub.acked = 0;
    sub.acked_gen = generation;
    // Served in this generation: an acknowledgement counts up to the last frame sent, no further
    // (a lie would open the window, and the queue at the socket, without bound).
    const bool serving = sub.every && sub.meta_gen == generation;
    sub.acked = std::max(sub.acked, serving ? std::min(h.sequence, sub.last_sent) : h.sequence);
  }

  /// Every-frame mode: sends `sub` the source frames from sub.next on, in cnt0 order, while
  /// fewer than its window are unacknowledged. A rolling buffer's history is read with
  /// read_frame() (validated by the slice's cntarray entry and cnt0: never torn); a frame no
  /// longer in the buffer (a plain stream: any frame but the newest) is lost, counted, and
  /// reported in the next frame's `skipped`. A refused send is retried on the next pass.
  void serve_every_frame(const std::string& id, Subscriber& sub) {
    const std::uint64_t depth = source.depth();
    const std::uint64_t c = source.cnt0();
    while (sub.next <= c) {
      if (sub.last_sent > sub.acked && sub.last_sent - sub.acked >= sub.window) break;  // window full
      if (c - sub.next >= depth) {  // already overwritten: skip to the oldest frame still there
        sub.lost += c - depth + 1 - sub.next;
        sub.next = c - depth + 1;
      }
      wire::Header h = shaped(wire::Kind::stream_frame);
      h.sequence = sub.next;
      h.skipped = sub.lost;
      const bool echo = sub.echo_cnt0 != 0 && sub.next == sub.echo_cnt0;  // its own write: it has the frame
      FrameInfo info;
      const Status r = source.read_frame(sub.next, history_frame, &info);
      if (echo) {
        h.flags = wire::kFrameEcho;
      } else if (r.code() == Errc::overwritten) {
        ++sub.lost, ++sub.next;
        continue;
      } else if (!r.ok()) {
        if (r.code() != Errc::would_block)
          fail("stream '" + name + "': reading frame " + std::to_string(sub.next) + " failed: " + r.message());
        break;
      }
      if (r.ok()) {
        h.write_time_ns = static_cast<std::uint64_t>(info.writetime_ns);
        h.cnt1 = info.cnt1;
      }
      if (!detail::send_message(router.get(), id_bytes(id), name, h, echo ? std::span<const std::byte>{} : history_frame)) break;
      count([&](PublisherStats& s) {
        ++(echo ? s.echoes_sent : s.frames_sent);
        s.frames_lost += sub.lost;
      });
      sub.last_sent = sub.next++;
      sub.lost = 0;
      sub.told = Clock::now();
    }
  }

  void serve_subscribers() {
    if (generation == 0 || !source.valid()) return;
    bool have = false, looked = false;
    for (auto& [id, sub] : subs) {
      const bool every = sub.every && sub.meta_gen == generation;  // needs no credit: its window
      if (!sub.ready && !every) continue;
      if (sub.meta_gen != generation && !send_meta(id, sub)) continue;
      if (sub.every) {
        serve_every_frame(id, sub);
        continue;
      }
      if (!looked) have = refresh_frame(), looked = true;
      if (!have || frame_cnt0 <= sub.last_sent) continue;
      wire::Header h = shaped(wire::Kind::stream_frame);
      h.sequence = frame_cnt0;
      h.write_time_ns = static_cast<std::uint64_t>(frame_info.writetime_ns);
      h.cnt1 = frame_info.cnt1;
      h.skipped = sub.last_sent == 0 ? 0 : frame_cnt0 - sub.last_sent - 1;
      const bool echo = frame_cnt0 == sub.echo_cnt0;
      if (echo) h.flags = wire::kFrameEcho;
      const bool sent = echo ? detail::send_message(router.get(), id_bytes(id), name, h)
                             : detail::send_message(router.get(), id_bytes(id), name, h, frame);
      if (!sent) continue;
      count([&](PublisherStats& s) {
        ++(echo ? s.echoes_sent : s.frames_sent);
        s.frames_skipped += h.skipped;
      });
      sub.last_sent = frame_cnt0;
      sub.ready = false;
      sub.told = Clock::now();
    }
  }

  void apply_write(const std::string& id, const wire::Header& h, std::span<const std::byte> payload) {
    const std::string who = peer_name(id_bytes(id)) + ", stream '" + name + "'";
    wire::Header mine = shaped(wire::Kind::stream_write);
    const char* why = nullptr;
    if (opt.read_only) why = "the publisher is read-only";
    else if (!source.valid() || h.generation != generation) why = "the write is for another generation of the source";
    else if (h.dtype != mine.dtype || h.naxis != mine.naxis || !std::equal(h.size, h.size + 3, mine.size))
      why = "the write's shape or dtype differs from the source's";
    if (why == nullptr) {
      // The echo is the cnt0 increment of our write: read before it, since a local writer may
      // write again at once (read after, that frame would pass for the echo and never reach
      // this subscriber). One writer at a time is every stream's rule; this service's write
      // racing a local one is the case that rule leaves to the user.
      const std::uint64_t before = source.cnt0();
      const Status r = source.write(payload);
      if (r.ok()) {
        auto it = subs.find(id);
        if (it != subs.end()) it->second.echo_cnt0 = before + 1;
        count([](PublisherStats& s) { ++s.writes_applied; });
        return;
      }
      fail(who + ": writing the source failed: " + r.message());
    } else {
      fail(who + ": write refused: " + why);
    }
    count([](PublisherStats& s) { ++s.writes_refused; });
  }

  void handle(detail::Parts& m) {
    // [identity, topic, header, (payload)]
    if (m.parts.size() < 3 || m.parts.size() > 4) {
      count([](PublisherStats& s) { ++s.refused; });
      fail(std::string("a message of ") + std::to_string(m.parts.size()) + " parts, not 3 or 4, refused");
      return;
    }
    const std::string id(reinterpret_cast<const char*>(m.parts[0].data()), m.parts[0].size());
    const std::string topic(reinterpret_cast<const char*>(m.parts[1].data()), m.parts[1].size());
    const std::span<const std::byte> payload = m.parts.size() == 4 ? std::span<const std::byte>(m.parts[3]) : std::span<const std::byte>{};
    wire::Header h;
    const wire::DecodeError e = wire::decode(m.parts[2], payload.size(), h);
    const char* why = e != wire::DecodeError::ok ? wire::describe(e) : topic != name ? "its topic is not this stream" : nullptr;
    if (why == nullptr && h.kind != static_cast<std::uint16_t>(wire::Kind::heartbeat) &&
        h.kind != static_cast<std::uint16_t>(wire::Kind::stream_write))
      why = "a subscriber sends only heartbeat and stream_write";
    if (why != nullptr) {
      count([](PublisherStats& s) { ++s.refused; });
      fail(peer_name(id_bytes(id)) + ", stream '" + name + "': message refused: " + why);
      return;
    }
    if (h.kind == static_cast<std::uint16_t>(wire::Kind::stream_write)) {
      apply_write(id, h, payload);
      return;
    }
    if ((h.flags & wire::kHeartbeatRelease) != 0) {
      subs.erase(id);
      return;
    }
    if ((h.flags & wire::kHeartbeatWant) == 0) return;
    if (subs.size() >= kMaxSubscribers && subs.find(id) == subs.end()) {
      count([](PublisherStats& s) { ++s.refused; });
      fail(peer_name(id_bytes(id)) + ", stream '" + name + "': subscription refused: already " +
           std::to_string(kMaxSubscribers) + " subscribers");
      return;
    }
    auto [it, fresh] = subs.try_emplace(id);
    it->second.heard = Clock::now();
    if (fresh) it->second.told = it->second.heard;
    if ((h.flags & wire::kHeartbeatReady) != 0) it->second.ready = true;
    note_every_frame(it->second, h);
  }

  void housekeeping() {
    const auto now = Clock::now();
    for (auto it = subs.begin(); it != subs.end();) {
      if (now - it->second.heard > opt.timing.link_timeout) {
        it = subs.erase(it);
        continue;
      }
      if (now - it->second.told >= opt.timing.heartbeat) {
        wire::Header h = wire::make_header(wire::Kind::heartbeat);
        h.generation = generation;
        h.sequence = source.valid() ? source.cnt0() : 0;
        if (!source.valid()) h.flags = wire::kHeartbeatSourceMissing;
        if (detail::send_message(router.get(), id_bytes(it->first), name, h)) it->second.told = now;
      }
      ++it;
    }
    count([&](PublisherStats& s) { s.subscribers = static_cast<std::uint32_t>(subs.size()); });
    watcher->arm(!subs.empty());
  }

  void open(std::string_view stream, const PublisherOptions& options) {
    path = stream_path(stream);
    opt = options;
    open_source();
    name = source.name();
  }

  /// Options, endpoint, watcher and thread, once `router` is bound.
  void start() {
    router.set(ZMQ_ROUTER_MANDATORY, 1);  // a gone subscriber is an error, not a silent drop
    endpoint = router.last_endpoint();
    // The watcher serves a new frame on its own thread (under `mutex`): no hand-off to the
    // socket thread between the source's write and the send.
    watcher = std::make_unique<detail::Watcher>(path, opt.spin, [this] { on_source_change(); });
    last_recheck = Clock::now();
    thread = std::thread([this] {
      try {
        run();
      } catch (const std::exception& e) {
        fail("stream '" + name + "': the publisher's thread stopped: " + e.what());
      }
    });
  }

  /// True while the socket has a message to receive (ZMQ_EVENTS; also processes libzmq's
  /// pending commands, which is why every pass that touched the socket ends by asking it).
  bool readable() const {
    int events = 0;
    std::size_t len = sizeof events;
    return ::zmq_getsockopt(router.get(), ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN) != 0;
  }

  /// One pass over everything, under `mutex`, by whichever thread holds it: the messages
  /// waiting, a replaced source, new frames for subscribers holding credit, heartbeats and
  /// forgetting. Repeated until the socket has nothing to receive, because the socket thread
  /// sleeps in poll(2) on ZMQ_FD, which only signals a change: a send here may have consumed
  /// the signal of a message that arrived meanwhile, so this pass receives it itself.
  void step(detail::Parts& m) {
    do {
      while (recv_parts(router.get(), m)) handle(m);
      const auto now = Clock::now();
      if (watcher->take_replaced() || !source.valid() || now - last_recheck >= opt.timing.heartbeat) {
        recheck_source();
        last_recheck = now;
      }
      serve_subscribers();
      housekeeping();
    } while (!stop.load(std::memory_order_acquire) && readable());
  }

  /// The watcher's call at a change of the source (its thread).
  void on_source_change() noexcept {
    std::lock_guard lock(mutex);
    if (stop.load(std::memory_order_acquire)) return;
    try {
      step(watcher_parts);
    } catch (const std::exception& e) {
      fail("stream '" + name + "': serving a new frame failed: " + e.what());
    }
  }

  void run() {
    // Not zmq_poll: the socket is also used by the watcher's thread (under `mutex`), and
    // zmq_poll would touch it outside the lock. ZMQ_FD is libzmq's signal that the socket's
    // state changed; step() then asks ZMQ_EVENTS under the lock.
    int zfd = -1;
    std::size_t len = sizeof zfd;
    if (::zmq_getsockopt(router.get(), ZMQ_FD, &zfd, &len) != 0)
      throw Error(Errc::system, "stream '" + name + "': ZMQ_FD of the publisher's socket: " + ::zmq_strerror(::zmq_errno()));
    detail::Parts m;
    const int slice = static_cast<int>(std::clamp<long>(static_cast<long>(opt.timing.heartbeat.count()) / 2, 1, 100));
    while (!stop.load(std::memory_order_acquire)) {
      {
        std::lock_guard lock(mutex);
        step(m);
      }
      pollfd p{zfd, POLLIN, 0};
      if (::poll(&p, 1, slice) < 0 && errno != EINTR) {
        fail(std::string("stream '") + name + "': poll failed: " + std::strerror(errno));
        break;
      }
    }
  }
};

Publisher::Publisher(std::string_view stream, std::string_view endpoint, const PublisherOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.open(stream, options);
  i.ctx = std::make_unique<detail::Context>();
  i.router = detail::Socket(i.ctx->get(), ZMQ_ROUTER, "the publisher of stream '" + i.name + "'");
  // Latest value: credits keep at most ~2 frames per subscriber queued. Every-frame mode: the
  // window bounds what is queued (note_every_frame()), so the high-water mark must not: the
  // largest window of this source's frames (kMaxEveryFrameBytesInFlight, at most
  // kMaxEveryFrameWindow frames) plus heartbeats and a meta fit under it. It also bounds what a
  // subscriber that acknowledges frames without reading them can make us queue.
  const std::uint64_t fit = kMaxEveryFrameBytesInFlight / std::max<std::uint64_t>(i.source.frame_bytes(), 1);
  i.router.set(ZMQ_SNDHWM, static_cast<int>(std::clamp<std::uint64_t>(fit, 16, kMaxEveryFrameWindow)) + 16);
  i.router.set(ZMQ_RCVHWM, 64);
  // Before binding: libzmq copies a socket's options into its listener at bind, and every
  // connection accepted there gets the listener's copy. A read-only publisher takes only
  // heartbeats ([topic, header]); a writable one also takes stream_write frames, whose size may
  // grow when the source is re-created, so it keeps the wire format's limit.
  i.router.limit_message_size(options.read_only ? std::max<std::uint64_t>(wire::kHeaderBytes, i.name.size())
                                                : wire::kMaxPayloadBytes + wire::kHeaderBytes);
  if (options.security) {  // CURVE server; its ZAP handler lives in our context
    options.security->serve(i.ctx->get());
    apply_server(i.router.get(), *options.security, "the publisher of stream '" + i.name + "'");
  }
  i.router.attach(std::string(endpoint), false);
  i.start();
}

Publisher::Publisher(std::string_view stream, void* router_socket, const PublisherOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.router = detail::Socket(router_socket);  // ours from here on, even if the rest throws
  int type = 0;
  std::size_t len = sizeof type;
  if (router_socket == nullptr || ::zmq_getsockopt(router_socket, ZMQ_TYPE, &type, &len) != 0 || type != ZMQ_ROUTER)
    throw Error(Errc::invalid_argument, "publishing stream '" + std::string(stream) + "': the socket given is not a ZeroMQ ROUTER socket");
  i.open(stream, options);
  i.start();
}

Publisher::~Publisher() { stop(); }

const std::string& Publisher::endpoint() const noexcept { return impl_->endpoint; }

PublisherStats Publisher::stats() const noexcept {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->st;
}

std::string Publisher::last_error() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->error;
}

void Publisher::stop() noexcept {
  Impl& i = *impl_;
  std::lock_guard lock(i.stop_mutex);  // stop() from two threads: one joins, the other waits
  if (!i.thread.joinable()) return;
  i.stop.store(true, std::memory_order_release);
  i.thread.join();
  i.watcher.reset();
  i.router = detail::Socket();
}

}  // namespace shmlink::bridge
