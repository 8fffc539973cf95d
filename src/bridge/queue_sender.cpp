// SPDX-License-Identifier: MIT
// Reliable queues across hosts: the sending end, QueueSender (include/shmlink/bridge_queue.hpp;
// docs/design/bridge.md, "Queues: exactly once"). Shared pieces: queue_link_common.hpp.
#include "bridge/queue_link_common.hpp"

namespace shmlink::bridge {
using namespace qlink;

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
  std::string bound;  // the socket's last endpoint (the port libzmq chose for "tcp://HOST:*")

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
  m->bound = m->sock.get(zmq::sockopt::last_endpoint);
  return QueueSender(std::move(m));
}

Status QueueSender::step(std::chrono::milliseconds wait) noexcept { return guarded_step(impl_.get(), wait); }

Status QueueSender::run(const std::atomic<bool>& stop) noexcept { return run_until(*this, stop); }

QueueLinkStats QueueSender::stats() const {
  if (!impl_) return {};
  return impl_->shared.get();
}

std::string QueueSender::endpoint() const { return impl_ ? impl_->bound : std::string(); }

}  // namespace shmlink::bridge
