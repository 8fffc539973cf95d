// SPDX-License-Identifier: MIT
// Reliable queues across hosts: the receiving end, QueueReceiver (include/shmlink/bridge_queue.hpp;
// docs/design/bridge.md, "Queues: exactly once"). Shared pieces: queue_link_common.hpp.
#include "bridge/queue_link_common.hpp"

namespace shmlink::bridge {
using namespace qlink;

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
  if (options.channel.size() > kMaxQueueName || options.channel.find('\0') != std::string::npos)
    throw Error(Errc::invalid_argument, "bridged queue " + m->queue_file + ": channel name of " + std::to_string(options.channel.size()) +
                                            " bytes is not a queue name (1.." + std::to_string(kMaxQueueName) + " bytes, no NUL)");
  m->topic = options.channel.empty() ? topic_of(m->queue_file) : options.channel;
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
