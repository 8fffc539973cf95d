// SPDX-License-Identifier: MIT
// Reliable queues across hosts: QueueSender and QueueReceiver (include/shmlink/bridge_queue.hpp;
// docs/design/bridge.md, "Queues: exactly once").
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

namespace shmlink::bridge {
namespace {

using Clock = std::chrono::steady_clock;
namespace qw = queue_wire;

std::uint64_t realtime_ns() noexcept {
  struct timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t load(const std::uint64_t& field) noexcept {
  // SYNC POINT: none across processes (only the owning process maps a state file); acquire keeps
  // the slot writes this process made before the matching release store in order for a successor
  // that maps the file after a crash (the page cache is coherent).
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(field)).load(std::memory_order_acquire);
}
void store(std::uint64_t& field, std::uint64_t v) noexcept {
  // SYNC POINT: release, pairs with load() above in a restarted process: a slot written before
  // `end` moves past it is complete when the successor reads `end`.
  std::atomic_ref<std::uint64_t>(field).store(v, std::memory_order_release);
}

/// The channel name a queue travels under (the topic frame): the file's name without its suffix.
std::string topic_of(const std::string& queue_file) {
  std::string t = queue_file.substr(queue_file.find_last_of('/') + 1);
  if (t.ends_with(".queue.shm")) t.resize(t.size() - 10);
  return t;
}

void set_common_options(zmq::socket_t& s) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::reconnect_ivl, 50);
  s.set(zmq::sockopt::reconnect_ivl_max, 500);
  s.set(zmq::sockopt::heartbeat_ivl, 250);
  s.set(zmq::sockopt::heartbeat_timeout, 1500);
}

/// Binds or connects `s` to `endpoint`: a leading '@' binds, a leading '>' connects, else
/// `bind_by_default` decides (CZMQ's endpoint convention).
void attach(zmq::socket_t& s, const std::string& endpoint, bool bind_by_default, const std::string& topic) {
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
bool send_message(zmq::socket_t& s, const std::string& topic, const qw::Header& h, std::span<const std::byte> payload,
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
bool recv_message(zmq::socket_t& s, Incoming& in, std::string* from = nullptr) {
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
std::optional<qw::Header> check_message(const Incoming& in, const std::string& topic, std::string& why) {
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

std::span<const std::byte> payload_of(const Incoming& in) {
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

}  // namespace

// =====================================================================================
// Sender
// =====================================================================================

struct QueueSender::Impl {
  QueueSenderOptions opt;
  Queue q;
  std::string topic, queue_file;
  StateFile state;
  TxStateHeader* h = nullptr;
  std::byte* slots = nullptr;
  std::uint32_t window = 0, max_values = 0, capacity = 0;
  std::size_t rec = 0;
  std::vector<Signal> signals;
  std::int64_t generation = 0;
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  std::uint64_t popped = 0;     // the source queue's consumer index (this is its only consumer)
  std::uint64_t next_send = 0;  // the next number to transmit
  bool handshaken = false;
  Clock::time_point last_heard{}, last_hello{};
  QueueLinkStats stats;
  SharedStats shared;
  std::vector<std::byte> buf;

  void publish_stats() {
    QueueLinkStats s = stats;
    s.acked = load(h->acked);
    s.end = load(h->end);
    shared.publish(s);
  }

  std::byte* slot(std::uint64_t n) const noexcept { return slots + (n % window) * rec; }

  void problem(std::string what) {
    stats.last_problem = "bridged queue " + topic + " (sending to " + opt.endpoint + "): " + std::move(what);
  }

  /// Finishes a renumbering a crash interrupted (TxStateHeader: written ahead), else nothing.
  void finish_renumbering() noexcept {
    const std::uint64_t to_end = load(h->renumber_end);
    if (to_end == 0) return;
    store(h->offset, load(h->renumber_offset));
    store(h->end, to_end);
    store(h->acked, to_end);
    store(h->renumber_end, 0);  // done: the three fields hold the new numbering
  }

  /// Moves an empty window (acked == end) to `to` > end: every later number shifts by the same.
  void renumber(std::uint64_t to) noexcept {
    const std::uint64_t end = load(h->end);
    store(h->renumber_offset, load(h->offset) + (to - end));
    store(h->renumber_end, to);  // the commit point: from here a restart finishes the change
    finish_renumbering();
  }

  void open_state() {
    const std::string path = state_path(queue_file, ".bridge-tx");
    StateFile f = StateFile::open_existing(path);
    const std::uint64_t head_now = q.info().popped;
    if (f.valid()) {
      auto* fh = reinterpret_cast<TxStateHeader*>(f.bytes().data());
      // SYNC POINT: acquire, pairs with the release store of magic at creation.
      const std::uint32_t magic = std::atomic_ref<std::uint32_t>(fh->magic).load(std::memory_order_acquire);
      const std::uint32_t w = fh->window;
      if (magic != kTxMagic || fh->version != kStateVersion)
        throw Error(Errc::layout, "bridge state file " + path + ": not a sender state file of version 1");
      if (fh->max_values != max_values)
        throw Error(Errc::layout, "bridge state file " + path + ": max_values " + std::to_string(fh->max_values) +
                                      ", the queue " + queue_file + " has " + std::to_string(max_values));
      if (w == 0 || f.bytes().size() != sizeof(TxStateHeader) + std::size_t{w} * rec)
        throw Error(Errc::layout, "bridge state file " + path + ": window " + std::to_string(w) +
                                      " does not match its size " + std::to_string(f.bytes().size()));
      h = fh;
      if (const std::uint64_t to = load(fh->renumber_end); to != 0 && to < load(fh->end))
        throw Error(Errc::layout, "bridge state file " + path + ": renumber_end " + std::to_string(to) +
                                      " is below end " + std::to_string(load(fh->end)) +
                                      " (a renumbering only moves numbers up)");
      finish_renumbering();
      const std::uint64_t a = load(fh->acked), e = load(fh->end);
      if (e - a > w)
        throw Error(Errc::layout, "bridge state file " + path + ": acked " + std::to_string(a) + " and end " +
                                      std::to_string(e) + " are not within a window of " + std::to_string(w));
      window = w;
    } else {
      window = opt.window != 0 ? opt.window : capacity;
      const std::int64_t created = generation;
      f = StateFile::create(path, sizeof(TxStateHeader) + std::size_t{window} * rec, false, [&](std::span<std::byte> b) {
        auto* nh = reinterpret_cast<TxStateHeader*>(b.data());
        nh->version = kStateVersion;
        nh->max_values = max_values;
        nh->window = window;
        nh->source_created_ns = created;
        nh->acked = head_now;  // numbering starts at the source's consumer index, offset 0
        nh->end = head_now;
        nh->offset = 0;
        // SYNC POINT: release, pairs with the acquire load of magic above (a later opener).
        std::atomic_ref<std::uint32_t>(nh->magic).store(kTxMagic, std::memory_order_release);
      });
    }
    state = std::move(f);
    h = reinterpret_cast<TxStateHeader*>(state.bytes().data());
    slots = state.bytes().data() + sizeof(TxStateHeader);
    popped = head_now;
    const std::uint64_t end = load(h->end);
    if (h->source_created_ns != generation) {
      // The source queue was re-created: its consumer index restarted; keep numbering on from end.
      // (A crash between the two stores repeats this at the next start: the same result.)
      store(h->offset, end - popped);
      h->source_created_ns = generation;
    } else if (const std::uint64_t numbered = load(h->offset) + popped; numbered < end) {
      // Numbers in [numbered, end) belong to samples a killed predecessor copied into the window
      // but did not free: they are still in the source queue, and pop() skips them. More of them
      // than the window holds, or than the queue holds now, is a damaged offset that would skip
      // real samples: refuse rather than lose them.
      const std::uint64_t replay = end - numbered;
      if (replay > window || replay > q.size())
        throw Error(Errc::layout, "bridge state file " + path + ": offset " + std::to_string(load(h->offset)) +
                                      " with end " + std::to_string(end) + " and the queue's consumer index " +
                                      std::to_string(popped) + " means " + std::to_string(replay) +
                                      " samples popped but not freed; the queue " + queue_file + " holds " +
                                      std::to_string(q.size()) + " (window " + std::to_string(window) + ")");
    } else if (numbered > end) {
      // Someone else popped the source while no sender ran: those samples never entered the
      // window and are not ours to send. Carry on numbering from the window's end.
      problem(std::to_string(load(h->offset) + popped - end) +
              " samples were popped from the source queue by another consumer; numbering continues");
      store(h->offset, end - popped);
    }
    next_send = load(h->acked);
  }

  void send_hello() {
    const auto payload = qw::encode_signals(signals);
    qw::Header hh;
    hh.kind = qw::Kind::hello;
    hh.payload_bytes = payload.size();
    hh.sequence = load(h->acked);
    hh.ack = load(h->end);
    hh.send_time_ns = realtime_ns();
    hh.generation = static_cast<std::uint64_t>(generation);
    hh.sample_bytes = max_values * 8;
    hh.capacity = capacity;
    hh.count = static_cast<std::uint32_t>(signals.size());
    (void)send_message(sock, topic, hh, payload);  // not taken (not connected yet): said again when due
    last_hello = Clock::now();
  }

  void on_ack(const qw::Header& a) {
    last_heard = Clock::now();
    if ((a.flags & qw::kAckNeedHello) != 0) {
      handshaken = false;
      return;
    }
    const std::uint64_t acked = load(h->acked), end = load(h->end);
    if (a.ack > end) {
      if (acked == end && (a.flags & qw::kAckReply) != 0) {
        // A fresh (or reset) window meets a receiver that already has more: number on from it.
        renumber(a.ack);
        next_send = a.ack;
        handshaken = true;
        return;
      }
      ++stats.refused;
      problem("the receiver acknowledges " + std::to_string(a.ack) + " but only numbers below " +
              std::to_string(end) + " were sent");
      return;
    }
    if (a.ack < acked) {
      if ((a.flags & qw::kAckReply) != 0) {
        ++stats.refused;
        problem("the receiver expects " + std::to_string(a.ack) + ", below the acknowledged point " +
                std::to_string(acked) + ": it lost samples it had acknowledged");
      }
    } else {
      store(h->acked, a.ack);
    }
    const std::uint64_t now_acked = load(h->acked);
    if ((a.flags & (qw::kAckReply | qw::kAckGap)) != 0) {
      if (next_send > now_acked) stats.resent += next_send - now_acked;
      next_send = now_acked;  // go back: resend everything not acknowledged
      if ((a.flags & qw::kAckReply) != 0) handshaken = true;
    }
    if (next_send < now_acked) next_send = now_acked;
  }

  /// Reads every waiting message. True when at least one came.
  bool drain() {
    Incoming in;
    bool any = false;
    while (recv_message(sock, in)) {
      any = true;
      std::string why;
      auto m = check_message(in, topic, why);
      if (!m || m->kind != qw::Kind::ack) {
        ++stats.refused;
        problem(m ? "a message of kind " + std::to_string(static_cast<int>(m->kind)) + " where acks are expected"
                  : "refused a message: " + why);
        continue;
      }
      on_ack(*m);
    }
    return any;
  }

  /// Pops into the window what fits. The number of samples popped.
  std::size_t pop() noexcept {
    const std::uint64_t acked = load(h->acked), end = load(h->end), offset = load(h->offset);
    const std::uint64_t replay = end - (offset + popped);  // popped by a killed predecessor, not freed
    const std::uint64_t room = window - (end - acked) + replay;
    const std::size_t limit = static_cast<std::size_t>(std::min<std::uint64_t>(room, opt.batch));
    if (limit == 0) return 0;
    std::size_t n = 0;
    auto handler = [&](const SampleView& v) {
      const std::uint64_t number = offset + popped;
      ++popped;
      if (number < load(h->end)) return;  // already in the window (written before a crash)
      qw::encode_record(v, max_values, std::span<std::byte>(slot(number), rec));
      store(h->end, number + 1);  // after the slot: a successor sees the slot whole
    };
    // The cell stays ours until the handler returns: a kill inside it leaves the sample in the
    // source queue, and a successor pops it again (and skips it, its number being below end).
    (void)q.try_pop_burst(handler, limit, n);
    return n;
  }

  std::size_t send() {
    std::size_t total = 0;
    const std::uint64_t end = load(h->end);
    while (handshaken && next_send < end) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(end - next_send, opt.batch));
      buf.resize(std::size_t{n} * rec);
      for (std::uint32_t i = 0; i < n; ++i) std::memcpy(buf.data() + std::size_t{i} * rec, slot(next_send + i), rec);
      qw::Header sh;
      sh.kind = qw::Kind::samples;
      sh.payload_bytes = buf.size();
      sh.sequence = next_send;
      std::int64_t origin = 0;
      std::memcpy(&origin, buf.data() + 8, sizeof origin);
      sh.write_time_ns = static_cast<std::uint64_t>(origin);
      sh.send_time_ns = realtime_ns();
      sh.ack = load(h->acked);
      sh.generation = static_cast<std::uint64_t>(generation);
      sh.sample_bytes = max_values * 8;
      sh.capacity = capacity;
      sh.count = n;
      if (!send_message(sock, topic, sh, buf)) break;  // not connected or full: later
      next_send += n;
      stats.sent += n;
      total += n;
    }
    return total;
  }

  /// Follows a source queue re-created (or removed and created again) while running: the new
  /// file's consumer index restarts, so numbering goes on from the window's end. A removed queue
  /// not yet back is looked for again next round.
  void follow_source() {
    if (!q.replaced()) return;
    Queue fresh;
    try {
      fresh = Queue::open(queue_file);
    } catch (const Error& e) {
      if (e.errc() == Errc::not_found) return;
      throw;
    }
    const QueueInfo info = fresh.info();
    if (info.max_values != max_values)
      throw Error(Errc::layout, "the source queue " + queue_file + " was re-created with " +
                                    std::to_string(info.max_values) + " values per sample, the bridge carries " +
                                    std::to_string(max_values));
    q = std::move(fresh);
    capacity = info.capacity;
    signals = info.signals;
    generation = info.creation_time_ns;
    popped = info.popped;
    // A crash between the two stores repeats this at the next start (open_state): same result.
    store(h->offset, load(h->end) - popped);
    h->source_created_ns = generation;
    problem("the source queue " + queue_file + " was re-created; numbering continues");
  }

  Status step(std::chrono::milliseconds wait) {
    bool busy = drain();
    follow_source();
    // Nothing is popped before the receiver first answered: an empty window can still be
    // renumbered to meet a receiver that is ahead (a fresh state file, a re-created source).
    if (handshaken) busy = pop() != 0 || busy;
    busy = send() != 0 || busy;
    const auto now = Clock::now();
    const auto quiet = opt.quiet_after;
    if (!handshaken) {
      if (now - last_hello >= quiet / 3) send_hello();
    } else if (load(h->end) != load(h->acked) && now - last_heard >= quiet && now - last_hello >= quiet) {
      send_hello();  // the receiver went quiet: its answer says where to resend from
    }
    if (!busy && wait.count() > 0) {
      zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
      const long ms = std::min<long>(static_cast<long>(wait.count()), 5);  // the source is polled too
      (void)zmq::poll(&item, 1, std::chrono::milliseconds(ms));
    }
    return Errc::ok;
  }
};

QueueSender::QueueSender(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
QueueSender::QueueSender(QueueSender&&) noexcept = default;
QueueSender& QueueSender::operator=(QueueSender&&) noexcept = default;
QueueSender::~QueueSender() = default;

QueueSender QueueSender::open(const QueueSenderOptions& options) {
  if (options.batch == 0 || options.batch > qw::kMaxBatch)
    throw Error(Errc::invalid_argument, "bridged queue " + options.queue + ": batch of " +
                                            std::to_string(options.batch) + " samples, not 1 .. " +
                                            std::to_string(qw::kMaxBatch));
  if (options.window > kMaxQueueCapacity)
    throw Error(Errc::invalid_argument, "bridged queue " + options.queue + ": window of " +
                                            std::to_string(options.window) + " samples, above " +
                                            std::to_string(kMaxQueueCapacity));
  auto m = std::make_unique<Impl>();
  m->opt = options;
  m->queue_file = queue_path(options.queue);
  m->topic = topic_of(m->queue_file);
  m->q = Queue::open(m->queue_file);
  const QueueInfo info = m->q.info();
  m->max_values = info.max_values;
  m->capacity = info.capacity;
  m->signals = info.signals;
  m->generation = info.creation_time_ns;
  m->rec = qw::record_bytes(m->max_values);
  m->open_state();
  m->publish_stats();
  set_common_options(m->sock);
  m->sock.set(zmq::sockopt::immediate, 1);  // queue nothing for a peer that is not connected
  // Before connecting (libzmq copies options into a connection when it is made): the receiver
  // sends only acks, [topic, header].
  m->sock.set(zmq::sockopt::maxmsgsize,
              static_cast<std::int64_t>(std::max<std::uint64_t>({m->topic.size(), qw::kHeaderBytes, wire::kMinPartLimit})));
  if (options.security)  // CURVE client
    apply_client(m->sock.handle(), *options.security, options.server_key, "bridged queue " + m->topic + " (sender)");
  attach(m->sock, options.endpoint, false, m->topic);
  return QueueSender(std::move(m));
}

Status QueueSender::step(std::chrono::milliseconds wait) noexcept { return guarded_step(impl_.get(), wait); }

Status QueueSender::run(const std::atomic<bool>& stop) noexcept { return run_until(*this, stop); }

QueueLinkStats QueueSender::stats() const {
  if (!impl_) return {};
  return impl_->shared.get();
}

// =====================================================================================
// Receiver
// =====================================================================================

struct QueueReceiver::Impl {
  QueueReceiverOptions opt;
  std::string topic, queue_file, state_file;
  Queue q;
  StateFile state;
  RxStateHeader* h = nullptr;
  zmq::context_t ctx{1};
  // ROUTER: every ack goes back to the connection the message it answers came from (a DEALER
  // would deal acks round-robin between connected senders: a stale one would steal them).
  zmq::socket_t sock{ctx, zmq::socket_type::router};
  std::string peer;  // routing id of the sender of the message being handled
  QueueLinkStats stats;
  SharedStats shared;
  // A queue_samples message not wholly pushed yet (the local queue was full).
  std::vector<std::byte> pending;
  qw::Header pending_header;
  std::size_t pending_index = 0;
  bool has_pending = false;
  std::vector<SignalValue> values;
  Clock::time_point last_busy{}, last_gap{}, last_need_hello{};
  std::uint64_t last_gap_at = ~std::uint64_t{0};

  void problem(std::string what) {
    stats.last_problem = "bridged queue " + topic + " (receiving on " + opt.endpoint + "): " + std::move(what);
  }

  bool ready() const noexcept { return q.valid() && h != nullptr; }

  void publish_stats() {
    QueueLinkStats s = stats;
    if (ready()) s.acked = s.end = next_expected();
    shared.publish(s);
  }
  std::uint64_t next_expected() noexcept { return load(h->base) + q.producer_position(); }

  /// Refuses a receiving queue this end cannot be the only producer of by construction.
  static void check_receiving_queue(const Queue& local) {
    if (local.kind() != QueueKind::spsc)
      throw Error(Errc::layout, "the receiving queue " + local.path() + " is " +
                                    std::string(queue_kind_name(local.kind())) +
                                    ": a bridge receiver pushes into an SPSC queue (its only producer)");
  }

  /// A restart: both the queue and its state file exist and belong together.
  void try_resume() {
    StateFile f = StateFile::open_existing(state_file);
    if (!f.valid()) return;
    auto* fh = reinterpret_cast<RxStateHeader*>(f.bytes().data());
    // SYNC POINT: acquire, pairs with the release store of magic at creation.
    if (std::atomic_ref<std::uint32_t>(fh->magic).load(std::memory_order_acquire) != kRxMagic ||
        fh->version != kStateVersion)
      throw Error(Errc::layout, "bridge state file " + state_file + ": not a receiver state file of version 1");
    Queue local;
    try {
      local = Queue::open(queue_file);
    } catch (const Error& e) {
      if (e.errc() == Errc::not_found) return;  // the queue went away: a hello makes both again
      throw;
    }
    check_receiving_queue(local);
    if (local.info().creation_time_ns != fh->queue_created_ns) return;  // another queue now: hello decides
    q = std::move(local);
    state = std::move(f);
    h = reinterpret_cast<RxStateHeader*>(state.bytes().data());
  }

  void write_state(std::uint64_t base, std::uint64_t generation) {
    const std::int64_t created = q.info().creation_time_ns;
    const StateFile old = StateFile::open_existing(state_file);  // locked while replaced: busy if another end holds it
    state = StateFile::create(state_file, sizeof(RxStateHeader), old.valid(), [&](std::span<std::byte> b) {
      auto* nh = reinterpret_cast<RxStateHeader*>(b.data());
      nh->version = kStateVersion;
      nh->base = base;
      nh->queue_created_ns = created;
      nh->source_generation = generation;
      // SYNC POINT: release, pairs with the acquire load of magic in try_resume().
      std::atomic_ref<std::uint32_t>(nh->magic).store(kRxMagic, std::memory_order_release);
    });
    h = reinterpret_cast<RxStateHeader*>(state.bytes().data());
  }

  void send_ack(std::uint32_t flags) {
    qw::Header a;
    a.kind = qw::Kind::ack;
    a.flags = flags;
    a.ack = ready() ? next_expected() : 0;
    a.send_time_ns = realtime_ns();
    a.generation = h != nullptr ? h->source_generation : 0;
    (void)send_message(sock, topic, a, {}, &peer);  // not taken: the sender asks again (hello) when it needs it
  }

  /// A hello this end cannot follow (a queue that cannot be made, or one of another shape) is
  /// counted and described, never the end of run(): the next hello may come from a sender that
  /// fits (a misconfigured or hostile peer must not stop the bridge of the right one).
  void on_hello(const qw::Header& hh, std::span<const std::byte> payload) {
    try {
      accept_hello(hh, payload);
    } catch (const Error& e) {
      ++stats.refused;
      problem(std::string("refused a hello: ") + e.what());
    }
  }

  void accept_hello(const qw::Header& hh, std::span<const std::byte> payload) {
    const std::uint32_t max_values = hh.sample_bytes / 8;
    std::string why;
    auto signals = qw::decode_signals(payload, max_values, why);
    if (!signals) throw Error(Errc::layout, why);
    if (!q.valid()) {
      QueueSpec spec;
      spec.capacity = hh.capacity;
      spec.max_values = max_values;
      spec.signals = std::move(*signals);
      Queue made = Queue::create(queue_file, spec, OpenMode::OpenOrCreate);
      check_receiving_queue(made);
      q = std::move(made);
    }
    if (q.max_values() != max_values)
      throw Error(Errc::layout, "the local queue " + queue_file + " has " + std::to_string(q.max_values()) +
                                    " values per sample, the source " + std::to_string(max_values));
    if (h == nullptr) {
      // A new pair (or a queue whose state was lost): number on from the sender's acknowledged point.
      write_state(hh.sequence - q.producer_position(), hh.generation);
    } else if (hh.sequence > next_expected()) {
      problem("the sender's acknowledged point " + std::to_string(hh.sequence) + " is past the next expected " +
              std::to_string(next_expected()) + ": samples were lost before this receiver's state");
      store(h->base, load(h->base) + (hh.sequence - next_expected()));
    }
    h->source_generation = hh.generation;
    send_ack(qw::kAckReply);
  }

  /// Follows a local queue re-created (or removed) while running: samples not pushed were not
  /// acknowledged, so the sender still holds them; the next hello numbers on into the new queue.
  void follow_queue() {
    if (!q.valid() || !q.replaced()) return;
    problem("the local queue " + queue_file + " was re-created or removed; waiting for the sender's hello");
    q = Queue();
    state = StateFile();
    h = nullptr;
    has_pending = false;
    try_resume();
  }

  /// Pushes records of `hs` from `index` on. Returns the index it stopped at (== count: all done);
  /// sets `blocked` when the local queue is full.
  std::size_t push_records(const qw::Header& hs, std::span<const std::byte> payload, std::size_t index,
                           bool& blocked, std::chrono::milliseconds wait) {
    blocked = false;
    const std::uint32_t max_values = q.max_values();
    for (; index < hs.count; ++index) {
      const std::uint64_t number = hs.sequence + index, next = next_expected();
      if (number < next) {
        ++stats.duplicates;
        continue;
      }
      if (number > next) {
        const auto now = Clock::now();
        if (next != last_gap_at || now - last_gap >= std::chrono::milliseconds(100)) {
          send_ack(qw::kAckGap);
          last_gap_at = next;
          last_gap = now;
        }
        return hs.count;  // the rest follows the gap: dropped, resent from `next`
      }
      SampleView v;
      std::string why;
      if (!qw::decode_record(payload, max_values, index, v, values, why)) {
        ++stats.refused;
        problem("refused a sample: " + why);
        return hs.count;
      }
      const Status s = wait.count() > 0 ? q.push(v, wait) : q.try_push(v);
      if (s.ok()) {
        ++stats.pushed;
        continue;
      }
      if (s.code() != Errc::would_block && s.code() != Errc::timeout) problem(std::string("pushing: ") + s.message());
      blocked = true;
      return index;
    }
    return index;
  }

  void on_samples(const qw::Header& hs, std::span<const std::byte> payload) {
    if (hs.sample_bytes / 8 != q.max_values()) {
      ++stats.refused;
      problem("samples of " + std::to_string(hs.sample_bytes / 8) + " values for a queue of " +
              std::to_string(q.max_values()));
      return;
    }
    bool blocked = false;
    const std::size_t at = push_records(hs, payload, 0, blocked, std::chrono::milliseconds(0));
    if (blocked) {
      pending.assign(payload.begin(), payload.end());
      pending_header = hs;
      pending_index = at;
      has_pending = true;
    }
  }

  Status step(std::chrono::milliseconds wait) {
    follow_queue();
    if (has_pending) {
      bool blocked = false;
      const auto slice = std::min(wait, std::chrono::milliseconds(50));
      pending_index = push_records(pending_header, pending, pending_index, blocked, slice);
      if (blocked) {
        const auto now = Clock::now();
        if (now - last_busy >= std::chrono::milliseconds(100)) {
          send_ack(qw::kAckBusy);  // alive: the sender must not take the silence for a lost link
          last_busy = now;
        }
        return Errc::ok;  // read nothing more until there is room: back-pressure
      }
      has_pending = false;
      send_ack(0);
    }
    zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) == 0) return Errc::ok;
    Incoming in;
    bool progressed = false;
    std::string samples_from;  // the connection the samples came from: it gets the ack
    while (!has_pending && recv_message(sock, in, &peer)) {
      std::string why;
      auto m = check_message(in, topic, why);
      if (!m) {
        ++stats.refused;
        problem("refused a message: " + why);
        continue;
      }
      if (m->kind == qw::Kind::hello) {
        on_hello(*m, payload_of(in));
      } else if (m->kind == qw::Kind::samples) {
        if (!ready()) {
          const auto now = Clock::now();
          if (now - last_need_hello >= std::chrono::milliseconds(100)) {
            send_ack(qw::kAckNeedHello);
            last_need_hello = now;
          }
          continue;
        }
        on_samples(*m, payload_of(in));
        samples_from = peer;
        progressed = true;
      } else {
        ++stats.refused;
        problem("a queue_ack where samples are expected");
      }
    }
    if (progressed && !has_pending) {
      peer = samples_from;  // not whoever sent the round's last (perhaps refused) message
      send_ack(0);
    }
    return Errc::ok;
  }
};

QueueReceiver::QueueReceiver(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
QueueReceiver::QueueReceiver(QueueReceiver&&) noexcept = default;
QueueReceiver& QueueReceiver::operator=(QueueReceiver&&) noexcept = default;
QueueReceiver::~QueueReceiver() = default;

QueueReceiver QueueReceiver::open(const QueueReceiverOptions& options) {
  auto m = std::make_unique<Impl>();
  m->opt = options;
  m->queue_file = queue_path(options.queue);
  m->topic = topic_of(m->queue_file);
  m->state_file = state_path(m->queue_file, ".bridge-rx");
  m->try_resume();
  std::uint32_t max_values = kMaxSampleValues;  // the queue's shape, when it exists, bounds messages
  if (m->q.valid()) {
    max_values = m->q.max_values();
  } else if (::access(m->queue_file.c_str(), F_OK) == 0) {
    const Queue existing = Queue::open(m->queue_file);
    Impl::check_receiving_queue(existing);
    max_values = existing.max_values();
  }
  set_common_options(m->sock);
  // Before binding (libzmq copies options into each connection a listener accepts): no part
  // above the largest legal one; a peer sending more is disconnected by libzmq.
  m->sock.set(zmq::sockopt::maxmsgsize,
              static_cast<std::int64_t>(std::max<std::uint64_t>({qw::max_receiver_part(max_values), m->topic.size(), wire::kMinPartLimit})));
  if (options.security) {  // CURVE server; its ZAP handler lives in our context
    options.security->serve(m->ctx.handle());
    apply_server(m->sock.handle(), *options.security, "bridged queue " + m->topic + " (receiver)");
  }
  attach(m->sock, options.endpoint, true, m->topic);
  m->publish_stats();
  return QueueReceiver(std::move(m));
}

Status QueueReceiver::step(std::chrono::milliseconds wait) noexcept { return guarded_step(impl_.get(), wait); }

Status QueueReceiver::run(const std::atomic<bool>& stop) noexcept { return run_until(*this, stop); }

QueueLinkStats QueueReceiver::stats() const {
  if (!impl_) return {};
  return impl_->shared.get();
}

}  // namespace shmlink::bridge
