// SPDX-License-Identifier: MIT
// The subscriber's side of a bridged stream (include/shmlink/bridge.hpp; docs/design/bridge.md,
// "Message flow", "Writes back", "A lost link").
#include "bridge/link.hpp"
#include "bridge/security.hpp"

#include <shmlink/bridge.hpp>

#include <zmq.h>

#include <algorithm>

namespace shmlink::bridge {

using detail::realtime_ns;
using Clock = std::chrono::steady_clock;

namespace {

/// The host of "tcp://HOST:PORT" (the whole endpoint for other transports).
std::string endpoint_host(std::string_view ep) {
  const auto scheme = ep.find("://");
  if (scheme != std::string_view::npos) ep.remove_prefix(scheme + 3);
  const auto colon = ep.rfind(':');
  if (colon != std::string_view::npos) ep = ep.substr(0, colon);
  return std::string(ep);
}

/// Keyword slots the replica adds to the source's: the seven freshness keywords, BR_SRC_GEN and
/// one spare.
constexpr std::uint16_t kOwnKeywords = 9;

/// Deepest rolling buffer an every-frame replica creates: a stream_meta asking more is refused.
constexpr std::uint64_t kMaxReplicaDepth = 65535;

/// True when `s` has the geometry `spec` asks (dtype, frame shape, plain or rolling of
/// spec.depth slices) and at least its keyword slots: the replica file can be kept.
bool geometry_fits(const Stream& s, const StreamSpec& spec) {
  const bool rolling = spec.depth >= 2;
  const auto shape = s.frame_shape();
  return s.dtype() == spec.dtype && s.rolling() == rolling && (!rolling || s.depth() == spec.depth) &&
         s.keyword_slots() >= spec.keywords && std::equal(spec.shape.begin(), spec.shape.end(), shape.begin(), shape.end());
}

/// 'L': the source generation that BR_SRC_CNT0 counts in (docs/design/bridge.md, "Freshness"), so
/// that a restarted replica keeping its file does not publish again a frame it already has.
constexpr const char* kKeywordSourceGeneration = "BR_SRC_GEN";

/// An integer keyword of `s`, or nullopt when absent or not an integer.
std::optional<std::int64_t> int_keyword(const Stream& s, const char* key) {
  try {
    const auto v = s.keyword(key);
    if (v) {
      if (const auto* i = std::get_if<std::int64_t>(&*v)) return *i;
    }
  } catch (const Error&) {
  }
  return std::nullopt;
}

}  // namespace

struct Replica::Impl {
  std::string name;  // topic: the remote stream's name
  std::string path;  // the local replica file
  ReplicaOptions opt;
  std::string peer;  // "publisher at <endpoint>" for messages
  detail::Context ctx;
  detail::Socket dealer;
  Stream replica;
  wire::Header meta{};            // the stream_meta in force (generation 0: none yet)
  std::uint64_t last_source = 0;  // source cnt0 last published (or echoed) in meta.generation
  std::uint64_t own_cnt0 = 0;     // replica cnt0 after our last publication
  std::uint64_t forwarded = 0;    // replica cnt0 of the last local write sent back
  std::vector<std::byte> local;   // buffer for local writes
  bool link = false;
  bool every = false;             // every-frame mode in force (asked, and granted by the stream_meta)
  std::uint32_t unacked = 0;      // every-frame mode: frames handled since the last acknowledgement
  Clock::time_point heard, told;

  std::atomic<bool> stop{false};
  std::mutex stop_mutex;
  std::thread thread;
  std::unique_ptr<detail::Watcher> watcher;

  mutable std::mutex mutex;
  mutable std::condition_variable first_cv;
  bool first_frame = false;
  ReplicaStats st;
  std::string error;

  void fail(std::string message) {
    std::lock_guard lock(mutex);
    error = std::move(message);
  }
  template <class F>
  void count(F f) {
    std::lock_guard lock(mutex);
    f(st);
  }

  void keyword(const char* key, const KeywordValue& v) {
    try {
      replica.set_keyword(key, v);
    } catch (const Error& e) {
      fail(e.what());
    }
  }

  void set_link(bool up) {
    if (link == up) return;
    link = up;
    count([&](ReplicaStats& s) { s.link_up = up; });
    if (replica.valid()) keyword(kKeywordLink, std::int64_t{up ? 1 : 0});
  }

  bool send(wire::Kind kind, std::uint32_t flags = 0) {
    wire::Header h = wire::make_header(kind);
    h.flags = flags;
    h.generation = meta.generation;
    h.sequence = last_source;  // every-frame mode: the acknowledgement
    if ((flags & wire::kHeartbeatEveryFrame) != 0) h.cnt1 = opt.window;
    const bool ok = detail::send_message(dealer.get(), {}, name, h);
    if (ok) told = Clock::now();
    return ok;
  }
  void credit() {
    std::uint32_t flags = wire::kHeartbeatWant | wire::kHeartbeatReady;
    if (opt.mode == ReplicationMode::every_frame) flags |= wire::kHeartbeatEveryFrame;
    if (send(wire::Kind::heartbeat, flags)) unacked = 0;
  }
  /// After a frame: latest mode gives one credit; every-frame mode acknowledges in batches of a
  /// quarter window (and whenever the socket is drained, in run()), so frames keep flowing.
  void frame_handled() {
    if (!every || ++unacked >= std::max<std::uint32_t>(opt.window / 4, 1)) credit();
  }

  /// Creates the replica for `h` (or keeps the file there when its geometry fits), copies the
  /// source's keywords and sets the freshness ones.
  void apply_meta(const wire::Header& h, const std::vector<Keyword>& kws) {
    if (h.generation == meta.generation) forward_local_write();  // before the counters are reset
    StreamSpec spec;
    spec.shape.assign(h.size, h.size + h.naxis);
    spec.dtype = static_cast<Dtype>(h.dtype);
    spec.semaphores = opt.semaphores;
    spec.keywords = static_cast<std::uint16_t>(std::min<std::size_t>(kws.size() + kOwnKeywords, 65535));
    if (!every_frame_geometry(h, spec)) return;
    const bool fits = replica.valid() && geometry_fits(replica, spec);
    bool earlier = false;  // a file left by an earlier run, kept
    if (!fits) {
      replica.close();
      try {
        replica = Stream::open(path);  // a replica left by an earlier run: keep it if it fits
      } catch (const Error& e) {
        if (e.errc() != Errc::not_found) {
          // Something else sits there (another kind of file, a damaged stream): never replaced.
          refuse_meta("the local file " + path + " cannot be opened as a stream (" + e.what() + "): not replaced");
          return;
        }
      }
      if (replica.valid()) {
        // Only a replica of this origin is ever kept or re-created: a local stream of the same
        // name (no BR_ORIGIN, or another origin's) belongs to someone else.
        if (!opt.take_over_local && !detail::is_replica_of(replica, opt.origin)) {
          std::string origin;
          try {
            if (const auto v = replica.keyword(kKeywordOrigin)) {
              if (const auto* str = std::get_if<std::string>(&*v)) origin = *str;
            }
          } catch (const Error&) {
          }
          replica.close();
          refuse_meta("the local stream " + path + " is not a replica of " + opt.origin + " (BR_ORIGIN '" + origin +
                      "'): not replaced");
          return;
        }
        earlier = true;
        if (!geometry_fits(replica, spec)) {
          replica.close();
          earlier = false;
        }
      }
      if (!replica.valid()) {
        try {
          replica = Stream::create(path, spec, OpenMode::PurgeAndCreate);
        } catch (const Error& e) {
          fail(e.what());
          return;
        }
        count([](ReplicaStats& s) { ++s.recreated; });
      }
      watcher->set_path(path);
      watcher->arm(true);
    }
    local.assign(replica.frame_bytes(), std::byte{0});
    for (const Keyword& k : kws) {
      if (k.name.rfind("BR_", 0) == 0) continue;  // a replica of a replica: ours win
      try {
        replica.set_keyword(k.name, k.value, k.comment);
      } catch (const Error& e) {
        fail(e.what());
      }
    }
    try {
      detail::set_origin(replica, opt.origin);
    } catch (const Error& e) {
      fail(e.what());
    }
    keyword(kKeywordLink, std::int64_t{1});
    if (every) keyword(kKeywordLost, static_cast<std::int64_t>(stats_lost()));
    if (h.generation != meta.generation) last_source = 0;
    const auto gen = static_cast<std::int64_t>(h.generation);
    bool holds_newest = false;  // the kept file already holds the source's newest frame
    if (earlier && int_keyword(replica, kKeywordSourceGeneration) == gen) {
      // Our file already holds frames of this generation, up to BR_SRC_CNT0: not published again.
      last_source = static_cast<std::uint64_t>(int_keyword(replica, kKeywordSourceCnt0).value_or(0));
      holds_newest = last_source >= h.sequence;
    } else if (int_keyword(replica, kKeywordSourceGeneration) != gen) {
      keyword(kKeywordSourceCnt0, std::int64_t{0});  // first: a crash in between leaves a count of 0
      keyword(kKeywordSourceGeneration, gen);
    }
    meta = h;
    own_cnt0 = forwarded = replica.cnt0();
    count([](ReplicaStats& s) { ++s.metas; });
    // A source never written has no frame to wait for, and a kept file of this generation may
    // already hold the newest one (whose resend is dropped as a duplicate): the replica is ready.
    if (h.sequence == 0 || holds_newest) {
      std::lock_guard lock(mutex);
      first_frame = true;
      first_cv.notify_all();
    }
  }

  /// The mode a stream_meta grants (docs/design/bridge.md, "Every-frame mode"): asked and
  /// granted, the replica is a rolling buffer of the source's depth (`cnt1`; a plain stream for
  /// depth 1); asked and not granted, the replica falls back to the latest value and says so.
  /// @return false when the meta is refused (a depth of 0 or above kMaxReplicaDepth; depth x frame
  /// bytes above wire::kMaxPayloadBytes).
  bool every_frame_geometry(const wire::Header& h, StreamSpec& spec) {
    const bool asked = opt.mode == ReplicationMode::every_frame;
    const bool granted = asked && (h.flags & wire::kMetaEveryFrame) != 0;
    if (granted && (h.cnt1 == 0 || h.cnt1 > kMaxReplicaDepth)) {
      count([](ReplicaStats& s) { ++s.refused; });
      fail("stream '" + name + "': stream_meta from the " + peer + " refused: a rolling-buffer depth of " +
           std::to_string(h.cnt1) + " is outside 1.." + std::to_string(kMaxReplicaDepth));
      return false;
    }
    // The rolling buffer is depth x frame bytes of /dev/shm: an owner (or, without CURVE, anyone
    // on the path) must not make us reserve more than the wire's largest frame, 4 GiB, in all.
    const std::uint64_t frame_bytes = wire::shape_elements(h) * std::uint64_t{dtype_size(static_cast<Dtype>(h.dtype))};
    std::uint64_t total = 0;
    if (granted && (__builtin_mul_overflow(frame_bytes, h.cnt1, &total) || total > wire::kMaxPayloadBytes)) {
      count([](ReplicaStats& s) { ++s.refused; });
      fail("stream '" + name + "': stream_meta from the " + peer + " refused: a rolling buffer of " + std::to_string(h.cnt1) +
           " frames of " + std::to_string(frame_bytes) + " bytes is above the limit of 4 GiB in all");
      return false;
    }
    if (asked && !granted)
      fail("stream '" + name + "': the " + peer +
           " does not accept every-frame mode: the replica follows the latest value instead");
    spec.depth = granted && h.cnt1 >= 2 ? static_cast<std::uint32_t>(h.cnt1) : 0;
    every = granted;
    count([&](ReplicaStats& s) { s.mode = granted ? ReplicationMode::every_frame : ReplicationMode::latest; });
    return true;
  }
  std::uint64_t stats_lost() {
    std::lock_guard lock(mutex);
    return st.lost;
  }

  /// Refuses a stream_meta this replica cannot follow (counted, described; the link goes on).
  void refuse_meta(const std::string& why) {
    count([](ReplicaStats& s) { ++s.refused; });
    fail("stream '" + name + "': stream_meta from the " + peer + " refused: " + why);
  }

  /// A frame written on the replica by a local process since our last publication goes back to
  /// the owner (docs/design/bridge.md, "Writes back").
  void forward_local_write() {
    if (!replica.valid() || meta.generation == 0) return;
    const std::uint64_t c = replica.cnt0();
    if (c == own_cnt0 || c == forwarded) return;
    FrameInfo info;
    if (!replica.read_copy(local, &info).ok() || info.cnt0 == own_cnt0) return;
    wire::Header h = wire::make_header(wire::Kind::stream_write);
    h.generation = meta.generation;
    h.dtype = meta.dtype;
    h.naxis = meta.naxis;
    std::copy(meta.size, meta.size + 3, h.size);
    h.sequence = info.cnt0;
    h.write_time_ns = static_cast<std::uint64_t>(info.writetime_ns);
    h.cnt1 = info.cnt1;
    if (detail::send_message(dealer.get(), {}, name, h, local)) {
      told = Clock::now();
      count([](ReplicaStats& s) { ++s.writes_sent; });
    } else {
      fail("stream '" + name + "': a local write could not be sent to the " + peer + " (link down): dropped");
    }
    forwarded = info.cnt0;
  }

  void apply_frame(const wire::Header& h, std::span<const std::byte> payload) {
    if (!replica.valid() || h.generation != meta.generation || h.dtype != meta.dtype || h.naxis != meta.naxis ||
        !std::equal(h.size, h.size + 3, meta.size)) {
      credit();  // a frame of another generation: the new stream_meta is on its way
      return;
    }
    const std::uint64_t now = realtime_ns();
    const bool echo = (h.flags & wire::kFrameEcho) != 0;
    if (h.sequence <= last_source) {
      count([](ReplicaStats& s) { ++s.duplicates_dropped; });
      credit();
      return;
    }
    forward_local_write();
    std::uint64_t skipped_total = 0;
    count([&](ReplicaStats& s) {
      // every-frame mode: the frames between were overwritten at the owner (lost), not skipped
      std::uint64_t& total = every ? s.lost : s.skipped;
      total += h.skipped;
      s.source_cnt0 = h.sequence;
      skipped_total = total;
      ++(echo ? s.echoes : s.frames_published);
    });
    keyword(kKeywordSourceCnt0, static_cast<std::int64_t>(h.sequence));
    keyword(kKeywordSourceTime, static_cast<std::int64_t>(h.write_time_ns));
    keyword(kKeywordAge, now > h.write_time_ns ? static_cast<std::int64_t>((now - h.write_time_ns) / 1000) : std::int64_t{0});
    keyword(every ? kKeywordLost : kKeywordSkipped, static_cast<std::int64_t>(skipped_total));
    last_source = h.sequence;
    if (!echo) {
      // Our publication is the cnt0 increment after c0: read before the write, since a local
      // write may follow ours at once (read after it, that write would pass for ours and never
      // go back). One writer at a time is the rule of every stream; a local write landing in
      // the instant between this load and our write's start is the one case left uncovered.
      std::uint64_t c0 = replica.cnt0();
      if (c0 != own_cnt0 && c0 != forwarded) {
        forward_local_write();
        c0 = replica.cnt0();
      }
      const Status r = replica.write(payload);
      if (!r.ok()) fail("stream '" + name + "': publishing a frame on replica " + path + " failed: " + r.message());
      own_cnt0 = r.ok() ? c0 + 1 : c0;
      std::lock_guard lock(mutex);
      first_frame = true;
      first_cv.notify_all();
    }
    frame_handled();
  }

  void handle(detail::Parts& m) {
    if (m.parts.size() < 2 || m.parts.size() > 3) {
      count([](ReplicaStats& s) { ++s.refused; });
      fail("stream '" + name + "': a message of " + std::to_string(m.parts.size()) + " parts from the " + peer + " refused");
      return;
    }
    const std::span<const std::byte> payload = m.parts.size() == 3 ? std::span<const std::byte>(m.parts[2]) : std::span<const std::byte>{};
    wire::Header h;
    const wire::DecodeError e = wire::decode(m.parts[1], payload.size(), h);
    const std::string_view topic(reinterpret_cast<const char*>(m.parts[0].data()), m.parts[0].size());
    const char* why = e != wire::DecodeError::ok ? wire::describe(e) : topic != name ? "its topic is not this stream" : nullptr;
    std::optional<std::vector<Keyword>> kws;
    if (why == nullptr && h.kind == static_cast<std::uint16_t>(wire::Kind::stream_meta) &&
        !(kws = wire::decode_keywords(payload)))
      why = "stream_meta's keyword records are malformed";
    if (why == nullptr && h.kind == static_cast<std::uint16_t>(wire::Kind::stream_write)) why = "an owner never sends stream_write";
    std::uint64_t frame_bytes = 0;
    if (why == nullptr && h.kind == static_cast<std::uint16_t>(wire::Kind::stream_meta) &&
        (__builtin_mul_overflow(wire::shape_elements(h), std::uint64_t{dtype_size(static_cast<Dtype>(h.dtype))},
                                &frame_bytes) ||
         frame_bytes > wire::kMaxPayloadBytes))
      why = "stream_meta announces a frame above the wire format's limit of 4 GiB";
    if (why != nullptr) {
      count([](ReplicaStats& s) { ++s.refused; });
      fail("stream '" + name + "': message from the " + peer + " refused: " + why);
      return;
    }
    heard = Clock::now();
    set_link(true);
    switch (static_cast<wire::Kind>(h.kind)) {
      case wire::Kind::stream_meta: apply_meta(h, *kws); break;
      case wire::Kind::stream_frame: apply_frame(h, payload); break;
      default: break;  // heartbeats (and queue kinds, not ours) only prove the link alive
    }
  }

  void run() {
    zmq_pollitem_t items[2] = {{dealer.get(), 0, ZMQ_POLLIN, 0}, {nullptr, watcher->fd(), ZMQ_POLLIN, 0}};
    detail::Parts m;
    const long slice = std::clamp<long>(static_cast<long>(opt.timing.heartbeat.count()) / 2, 1, 100);
    credit();
    while (!stop.load(std::memory_order_acquire)) {
      if (::zmq_poll(items, 2, slice) < 0 && ::zmq_errno() != EINTR) {
        fail("stream '" + name + "': zmq_poll failed: " + ::zmq_strerror(::zmq_errno()));
        break;
      }
      if ((items[1].revents & ZMQ_POLLIN) != 0) {
        watcher->woken();
        (void)watcher->take_replaced();
        forward_local_write();
      }
      while (detail::recv_parts(dealer.get(), m)) handle(m);
      if (unacked > 0) credit();  // every-frame mode: the socket is drained, acknowledge
      const auto now = Clock::now();
      if (link && now - heard > opt.timing.link_timeout) set_link(false);
      if (now - told >= opt.timing.heartbeat) credit();
    }
    send(wire::Kind::heartbeat, wire::kHeartbeatRelease);
  }
};

Replica::Replica(std::string_view stream, std::string_view endpoint, const ReplicaOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.opt = options;
  i.opt.window = std::clamp<std::uint32_t>(options.window, 1, kMaxEveryFrameWindow);
  i.name = stream_name(stream);
  i.path = stream_path(options.local_name.empty() ? std::string_view(i.name) : std::string_view(options.local_name));
  if (i.opt.origin.empty()) i.opt.origin = endpoint_host(endpoint);
  i.peer = "publisher at " + std::string(endpoint);
  i.dealer = detail::Socket(i.ctx.get(), ZMQ_DEALER, "the replica of stream '" + i.name + "'");
  i.dealer.set(ZMQ_IMMEDIATE, 1);  // queue nothing for a connection not yet made
  i.dealer.limit_message_size();
  i.dealer.set(ZMQ_SNDHWM, 16);
  i.dealer.set(ZMQ_RCVHWM, static_cast<int>(i.opt.window) + 16);  // every-frame: a whole window
  i.dealer.set(ZMQ_RECONNECT_IVL, static_cast<int>(options.reconnect_min.count()));
  i.dealer.set(ZMQ_RECONNECT_IVL_MAX, static_cast<int>(options.reconnect_max.count()));
  if (options.security)  // CURVE client
    apply_client(i.dealer.get(), *options.security, options.server_key, "the replica of stream '" + i.name + "'");
  i.dealer.attach(std::string(endpoint), true);
  i.watcher = std::make_unique<detail::Watcher>(i.path, options.spin);
  i.heard = i.told = Clock::now();
  i.thread = std::thread([&i] {
    try {
      i.run();
    } catch (const std::exception& e) {
      i.fail(std::string("stream '") + i.name + "': the replica's thread stopped: " + e.what());
    }
  });
}

Replica::~Replica() { stop(); }

const std::string& Replica::path() const noexcept { return impl_->path; }

bool Replica::wait_first_frame(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->first_cv.wait_for(lock, timeout, [&] { return impl_->first_frame; });
}

ReplicaStats Replica::stats() const noexcept {
  std::lock_guard lock(impl_->mutex);
  return impl_->st;
}

std::string Replica::last_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->error;
}

void Replica::stop() noexcept {
  Impl& i = *impl_;
  std::lock_guard lock(i.stop_mutex);  // stop() from two threads: one joins, the other waits
  if (!i.thread.joinable()) return;
  i.stop.store(true, std::memory_order_release);
  i.thread.join();
  i.watcher.reset();
  // Nobody updates the replica any more: BR_LINK says so (the file stays).
  i.link = false;
  i.count([](ReplicaStats& s) { s.link_up = false; });
  if (i.replica.valid()) i.keyword(kKeywordLink, std::int64_t{0});
  // The thread's last act queued the release heartbeat: give it a moment to leave (linger) so
  // that the owner forgets us at once instead of after link_timeout.
  const int linger = 100;
  (void)::zmq_setsockopt(i.dealer.get(), ZMQ_LINGER, &linger, sizeof linger);
  i.dealer = detail::Socket();
}

}  // namespace shmlink::bridge
