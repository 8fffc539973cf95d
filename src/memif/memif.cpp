// SPDX-License-Identifier: MIT
// memif sockets and interfaces: the control-channel state machines of both roles (reference
// docs/reference/memif.md sections 6-8) over the transport in control.cpp and the data path in ring.cpp.
//
// One epoll fd per Socket watches the listener (masters), every control connection, a
// reconnect timerfd (slaves) and a status timerfd (armed while an interface is up and the socket
// publishes a status file). Everything here runs on the thread that calls Socket::poll,
// including every write to the status file (status.hpp): its records have one writer.
#include "memif/control.hpp"
#include "memif/ring.hpp"
#include "memif/status.hpp"
#include "memif/wire.hpp"
#include "os/log_internal.hpp"
#include "os/sys.hpp"

#include <shmlink/memif.hpp>
#include <shmlink/channel.hpp>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace shmlink::memif {

namespace {

using Clock = std::chrono::steady_clock;

/// now + `timeout`; a negative timeout (wait forever) or one so long that the sum would overflow
/// gives Clock::time_point::max().
template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  const auto now = Clock::now();
  if (timeout.count() < 0) return Clock::time_point::max();
  // Compared in the caller's unit (a narrowing of `left`, never an overflow of `timeout`).
  if (timeout >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// A memif protocol version as "major.minor" (section 2: major in the high byte).
std::string version_text(std::uint16_t v) {
  return std::to_string(v >> 8) + "." + std::to_string(v & 0xFF);
}

const char* role_name(Role r) noexcept { return r == Role::master ? "master" : "slave"; }

void log_info(const std::string& m) { shmlink::detail::log(LogLevel::info, m); }
void log_warn(const std::string& m) { shmlink::detail::log(LogLevel::warn, m); }

/// Distinct refusal messages remembered per interface or socket (a peer choosing its reasons
/// must not grow the set without bound; the oldest is forgotten and may be logged again).
constexpr std::size_t kWarnedReasonsMax = 32;

/// Logs `m` as a warning the first time `key` is seen in `seen`, at info level after that: a slave
/// retrying against a master that refuses it for the same reason warns once, not once per
/// attempt (docs/design/memif.md "Control"). `key` is the part of `m` that identifies the reason;
/// what a peer merely names (its app name) stays out of it, so a peer cannot buy a warning per
/// attempt by changing its name.
void warn_once(std::deque<std::string>& seen, const std::string& key, const std::string& m) {
  if (std::find(seen.begin(), seen.end(), key) != seen.end()) return log_info(m);
  if (seen.size() == kWarnedReasonsMax) seen.pop_front();
  seen.push_back(key);
  log_warn(m);
}

/// warn_once() keyed on the whole message.
void warn_once(std::deque<std::string>& seen, const std::string& m) { warn_once(seen, m, m); }

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

/// Where the control exchange of one connection stands (section 6).
enum class Phase {
  master_wait_init,      // HELLO sent
  master_wait_setup,     // INIT acked: ADD_REGION / ADD_RING / CONNECT expected
  slave_wait_hello,      // connected
  slave_wait_ack,        // a message sent; its ACK expected (then the next one is sent)
  slave_wait_connected,  // CONNECT sent
  up,                    // CONNECTED sent (master) or received (slave)
};

/// What a connection in `p` waits for, for the handshake deadline's reason.
const char* awaited(Phase p) noexcept {
  switch (p) {
    case Phase::master_wait_init: return "INIT";
    case Phase::master_wait_setup: return "ADD_REGION, ADD_RING or CONNECT";
    case Phase::slave_wait_hello: return "HELLO";
    case Phase::slave_wait_ack: return "ACK";
    case Phase::slave_wait_connected: return "CONNECTED";
    case Phase::up: break;
  }
  return "a message";
}

/// How long the master stops watching its listener after accept() failed (EMFILE, ENFILE,
/// ENOMEM, ...): a failed accept leaves the connection queued, so the listener stays readable
/// and retrying at once would spin.
constexpr std::chrono::milliseconds kAcceptBackoff{100};
/// One log line per distinct accept error per this interval; the others are counted.
constexpr std::chrono::seconds kAcceptLogInterval{5};
/// A whole handshake, counted from the connection's start (accept or connect), must be done
/// within this many handshake_timeouts, however promptly each message comes: a peer that
/// trickles valid messages just inside the per-stage deadline holds an id (and the fds it sent)
/// for this long at most.
constexpr int kHandshakeTotalFactor = 2;
/// The longest handshake_timeout accepted (larger values would overflow the deadline's sum).
constexpr std::chrono::hours kMaxHandshakeTimeout{1};

}  // namespace

/// A ring the slave announced (master side), before CONNECT maps it.
struct AnnouncedRing {
  detail::RingPlacement placement;
  os::UniqueFd eventfd;
};

/// One control connection (an accepted or a connected SOCK_SEQPACKET socket).
struct Connection {
  os::UniqueFd fd;
  Phase phase = Phase::master_wait_init;
  bool slave_side = false;           // this end is the slave (we connected)
  Interface::Impl* iface = nullptr;  // master: bound at INIT; slave: always
  std::string peer_app;
  // master: what the slave announced
  std::vector<std::pair<os::UniqueFd, std::uint64_t>> regions;
  std::vector<AnnouncedRing> s2m, m2s;
  // slave: position in the announcement sequence: 0 = INIT acked next is region 0, ...
  std::size_t step = 0;
  // handshake: the peer's next message is due by then (SocketOptions::handshake_timeout), and
  // the whole handshake by started + kHandshakeTotalFactor * handshake_timeout
  Clock::time_point started = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();
};

struct Interface::Impl {
  Socket::Impl* sock = nullptr;
  Interface* self = nullptr;
  InterfaceOptions opt;
  Connection* conn = nullptr;  // bound control connection (owned by the socket)
  bool up = false;
  std::string last_disconnect;
  std::uint64_t connects = 0;
  std::string peer_name, peer_app;
  // memory of the current connection
  std::optional<detail::SlaveMemory> slave_mem;  // slave
  std::vector<Segment> peer_regions;             // master
  std::vector<os::UniqueFd> ring_eventfds;       // master: received eventfds (kept while up)
  std::vector<detail::RegionView> views;
  std::vector<detail::RingPlacement> s2m_placement, m2s_placement;
  // queues, sized to the configured counts so that modes and counters outlive connections
  std::vector<std::unique_ptr<detail::RingQueue>> tx, rx;
  std::uint16_t n_tx = 0, n_rx = 0;  // in use while up
  int status_slot = -1;              // record in the socket's status file; -1 = none (not published)
  std::deque<std::string> warned;    // refusals already logged as warnings (warn_once); cleared when up

  [[nodiscard]] std::string label() const {
    return "memif " + std::string(role_name(opt.role)) + " '" + opt.name + "' (id " + std::to_string(opt.id) + ")";
  }
  detail::RingQueue* txq(std::uint16_t q) noexcept { return q < n_tx ? tx[q].get() : nullptr; }
  detail::RingQueue* rxq(std::uint16_t q) noexcept { return q < n_rx ? rx[q].get() : nullptr; }
};

/// Reaches an Interface's Impl from Socket::Impl (friendship does not extend to nested classes).
struct InterfaceAccess {
  static Interface::Impl& of(const Interface& i) noexcept { return *i.impl_; }
};

namespace {
Interface::Impl& impl_of(const std::unique_ptr<Interface>& i) noexcept { return InterfaceAccess::of(*i); }
}  // namespace

struct Socket::Impl {
  SocketOptions opt;
  SocketAddress addr;
  os::UniqueFd epfd;
  os::UniqueFd timerfd;  // reconnect timer, armed while a slave is down
  SeqpacketListener listener;
  std::vector<std::unique_ptr<Interface>> ifaces;
  std::vector<std::unique_ptr<Connection>> conns;
  Socket* self = nullptr;
  // status file (SocketOptions::publish_status)
  detail::StatusWriter status;
  bool status_tried = false;        // open() was attempted (once per socket)
  os::UniqueFd status_timer;        // 100 ms ticks while an interface is up (counter refresh)
  bool status_timer_armed = false;
  Clock::time_point status_refreshed{};  // last refresh of every record
  os::UniqueFd handshake_timer;     // one-shot, armed at the earliest handshake deadline
  os::UniqueFd accept_timer;        // one-shot: end of an accept back-off (listener unwatched meanwhile)
  bool accept_paused = false;
  struct {
    std::string reason;            // last accept error logged
    Clock::time_point logged{};    // when
    std::uint64_t suppressed = 0;  // accept errors not logged since
  } accept_log;
  std::deque<std::string> warned;  // refusals of unbound peers already logged as warnings (warn_once)

  // --- status file -----------------------------------------------------------------------------

  /// Creates the status file at the first interface (once; a failure is logged by open()).
  void open_status() {
    if (status_tried || !opt.publish_status) return;
    status_tried = true;
    std::string display = addr.display;
    if (!addr.abstract && !display.empty() && display.front() != '/') {
      // Relative path: publish it absolute, so that readers in other directories can match it.
      char cwd[4096];
      if (::getcwd(cwd, sizeof cwd) != nullptr) display = std::string(cwd) + "/" + display;
    }
    std::string dir;
    try {
      dir = stream_directory();
    } catch (...) {
      return;
    }
    // The first interface decides the socket's role (one role per socket): in the header before
    // the file is visible, so no reader sees a listed socket without a role.
    const std::uint8_t role = ifaces.empty()                                             ? status::kRoleNone
                              : InterfaceAccess::of(*ifaces.front()).opt.role == Role::master ? status::kRoleMaster
                                                                                            : status::kRoleSlave;
    if (!status.open(dir, display, opt.app_name, role)) return;
    status_timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (status_timer) {
      try {
        watch(status_timer.get());
      } catch (const Error&) {
        status_timer.reset();
      }
    }
  }

  /// The published state of `i`.
  std::uint8_t link_state(const Interface::Impl& i) const noexcept {
    if (i.up) return status::kStateConnected;
    if (i.conn != nullptr) return status::kStateHandshake;
    if (i.opt.role == Role::master) return listener.is_open() ? status::kStateListening : status::kStateIdle;
    return opt.reconnect_interval.count() > 0 ? status::kStateConnecting : status::kStateIdle;
  }

  /// Writes the record of `i` (state, names, reason, geometry, counters). Interfaces without a
  /// record get one when one is free. No-op without a status file.
  void publish(Interface::Impl& i) noexcept {
    if (!status.is_open()) return;
    if (i.status_slot < 0) {
      i.status_slot = status.acquire();
      if (i.status_slot < 0) {
        update_overflow();
        return;
      }
      update_overflow();
    }
    status::InterfaceRecord r{};
    r.in_use = 1;
    r.id = i.opt.id;
    r.role = i.opt.role == Role::master ? status::kRoleMaster : status::kRoleSlave;
    r.mode = static_cast<std::uint8_t>(i.opt.mode);
    r.state = link_state(i);
    if (i.up) {
      r.tx_queues = i.n_tx;
      r.rx_queues = i.n_rx;
      if (i.slave_mem) {
        r.ring_size = 1U << i.slave_mem->layout.log2;
        r.buffer_size = i.slave_mem->layout.buffer_size;
      } else if (!i.s2m_placement.empty()) {
        r.ring_size = 1U << i.s2m_placement.front().log2;
      }
    }
    r.connects = i.connects;
    r.updated_ns = detail::realtime_ns();
    for (const auto& q : i.tx) {
      const QueueCounters c = q->counters();
      r.tx_packets += c.packets;
      r.tx_bytes += c.bytes;
      r.bad_descriptors += c.bad_descriptors;
      r.dropped_packets += c.dropped_packets;
      r.clamped_jumps += c.clamped_jumps;
      r.ring_full += c.ring_full;
      r.interrupts_sent += c.interrupts_sent;
    }
    for (const auto& q : i.rx) {
      const QueueCounters c = q->counters();
      r.rx_packets += c.packets;
      r.rx_bytes += c.bytes;
      r.bad_descriptors += c.bad_descriptors;
      r.dropped_packets += c.dropped_packets;
      r.clamped_jumps += c.clamped_jumps;
      r.ring_full += c.ring_full;
      r.interrupts_sent += c.interrupts_sent;
    }
    detail::copy_field(r.name, sizeof r.name, i.opt.name);
    detail::copy_field(r.peer_name, sizeof r.peer_name, i.peer_name);
    detail::copy_field(r.peer_app, sizeof r.peer_app, i.peer_app);
    detail::copy_field(r.last_disconnect, sizeof r.last_disconnect, i.last_disconnect);
    status.write(i.status_slot, r);
  }

  /// Frees the record of `i` (interface removed).
  void unpublish(Interface::Impl& i) noexcept {
    if (i.status_slot >= 0) status.release(i.status_slot);
    i.status_slot = -1;
  }

  /// Stores the socket's role and how many interfaces have no record.
  void update_overflow() noexcept {
    if (!status.is_open()) return;
    std::uint32_t missing = 0;
    for (auto& ip : ifaces)
      if (InterfaceAccess::of(*ip).status_slot < 0) ++missing;
    status.set_overflow(missing);
    std::uint8_t role = status::kRoleNone;
    if (!ifaces.empty())
      role = InterfaceAccess::of(*ifaces.front()).opt.role == Role::master ? status::kRoleMaster : status::kRoleSlave;
    status.set_role(role);
  }

  /// Refreshes every record (counters) and re-arms or stops the status timer.
  void publish_all() noexcept {
    if (!status.is_open()) return;
    status_refreshed = Clock::now();
    for (auto& ip : ifaces) publish(InterfaceAccess::of(*ip));
    update_overflow();
    update_status_timer();
  }

  /// Refreshes every record when 100 ms passed since the last refresh.
  void maybe_publish_all() noexcept {
    if (status.is_open() && Clock::now() - status_refreshed >= std::chrono::milliseconds(100)) publish_all();
  }

  /// Arms the 100 ms status timer while some interface is up, stops it otherwise.
  void update_status_timer() noexcept {
    if (!status_timer) return;
    const bool any_up = std::any_of(ifaces.begin(), ifaces.end(), [](auto& ip) { return InterfaceAccess::of(*ip).up; });
    if (any_up == status_timer_armed) return;
    itimerspec its{};
    if (any_up) {
      its.it_value.tv_nsec = 100'000'000;
      its.it_interval = its.it_value;
    }
    ::timerfd_settime(status_timer.get(), 0, &its, nullptr);
    status_timer_armed = any_up;
  }

  /// Drains the status timer and refreshes when due.
  void status_tick() noexcept {
    std::uint64_t ticks;
    while (::read(status_timer.get(), &ticks, sizeof ticks) > 0) {
    }
    maybe_publish_all();
  }

  // --- helpers -------------------------------------------------------------------------------
  void watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) os::throw_errno(errno, "watching memif socket", addr.display);
  }
  void unwatch(int fd) noexcept { ::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, fd, nullptr); }

  Connection* find_conn(int fd) noexcept {
    for (auto& c : conns)
      if (c->fd.get() == fd) return c.get();
    return nullptr;
  }

  void close_conn(Connection* c) noexcept {
    unwatch(c->fd.get());
    auto it = std::find_if(conns.begin(), conns.end(), [&](auto& p) { return p.get() == c; });
    if (it != conns.end()) conns.erase(it);
  }

  bool has_role(Role r) const noexcept {
    return std::any_of(ifaces.begin(), ifaces.end(), [&](auto& i) { return impl_of(i).opt.role == r; });
  }

  void arm_timer() noexcept {
    if (opt.reconnect_interval.count() <= 0 || !timerfd) return;
    itimerspec its{};
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(opt.reconnect_interval).count();
    its.it_value.tv_sec = ns / 1000000000;
    its.it_value.tv_nsec = ns % 1000000000;
    its.it_interval = its.it_value;
    ::timerfd_settime(timerfd.get(), 0, &its, nullptr);
  }

  // --- teardown --------------------------------------------------------------------------------

  /// Ends iface's connection: optional DISCONNECT, close, detach queues, free memory, callback.
  /// A link that was up going down is logged at info level. A handshake that ends before the
  /// link came up (refused by either side, timed out, cut) is a warning with the reason, once per
  /// distinct reason until the link comes up (warn_once), unless `local` (this process removed
  /// the interface or called disconnect()).
  void teardown(Interface::Impl& i, const std::string& reason, bool send_disconnect, bool local = false) {
    const bool was_up = i.up;
    if (i.conn != nullptr) {
      if (send_disconnect) (void)send_message(i.conn->fd.get(), wire::encode_disconnect(0, reason));
      Connection* c = i.conn;
      i.conn = nullptr;
      close_conn(c);
    }
    for (auto& q : i.tx) q->detach();
    for (auto& q : i.rx) q->detach();
    i.n_tx = i.n_rx = 0;
    i.up = false;
    i.views.clear();
    i.peer_regions.clear();
    i.ring_eventfds.clear();
    i.slave_mem.reset();
    i.s2m_placement.clear();
    i.m2s_placement.clear();
    i.last_disconnect = reason;
    if (was_up || local)
      log_info(i.label() + ": disconnected: " + reason);
    else
      warn_once(i.warned, i.label() + ": not connected: " + reason);
    if (i.opt.role == Role::slave) arm_timer();
    publish(i);
    update_status_timer();
    if (was_up && i.opt.on_disconnect) i.opt.on_disconnect(*i.self, reason);
  }

  /// Refuses a connection not (yet) bound to an interface: DISCONNECT + close.
  void refuse(Connection* c, const std::string& reason) {
    if (c->iface != nullptr) {
      teardown(*c->iface, "refused slave: " + reason, true);
      return;
    }
    warn_once(warned, reason,
              "memif socket " + addr.display + ": refused a peer" +
                  (c->peer_app.empty() ? std::string() : " ('" + c->peer_app + "')") + ": " + reason);
    (void)send_message(c->fd.get(), wire::encode_disconnect(0, reason));
    close_conn(c);
  }

  /// Fails a connection wherever it is: bound -> teardown; unbound -> refuse.
  void fail(Connection* c, const std::string& reason, bool send_disconnect = true) {
    if (c->iface != nullptr)
      teardown(*c->iface, reason, send_disconnect);
    else if (send_disconnect)
      refuse(c, reason);
    else
      close_conn(c);
  }

  bool send(Connection* c, const wire::Message& m, int fd = -1) {
    auto r = send_message(c->fd.get(), m, fd);
    if (!r) {
      fail(c, "sending on the control channel: " + r.describe(), false);
      return false;
    }
    return true;
  }

  // --- master ----------------------------------------------------------------------------------

  void accept_all() {
    for (;;) {
      os::UniqueFd fd;
      auto r = listener.accept(fd, true);
      if (r.code == Errc::would_block) return;
      if (!r) {
        log_accept_error(r.describe());
        pause_accepting();
        return;
      }
      auto c = std::make_unique<Connection>();
      c->fd = std::move(fd);
      c->phase = Phase::master_wait_init;
      Connection* cp = c.get();
      conns.push_back(std::move(c));
      watch(cp->fd.get());
      touch(cp);
      wire::HelloInfo h;
      h.name = opt.app_name;
      if (!send(cp, wire::encode_hello(h))) continue;
    }
  }

  /// Logs an accept error, at most once per distinct reason per kAcceptLogInterval; the ones
  /// left out are counted and the count goes into the next line.
  void log_accept_error(const std::string& why) {
    const auto now = Clock::now();
    if (why == accept_log.reason && now - accept_log.logged < kAcceptLogInterval) {
      ++accept_log.suppressed;
      return;
    }
    std::string m = "memif socket " + addr.display + ": accept: " + why + "; not accepting for " +
                    std::to_string(kAcceptBackoff.count()) + " ms (connected interfaces keep running)";
    if (accept_log.suppressed != 0)
      m += "; " + std::to_string(accept_log.suppressed) + " earlier accept errors were not logged";
    log_warn(m);
    accept_log.reason = why;
    accept_log.logged = now;
    accept_log.suppressed = 0;
  }

  /// Stops watching the listener for kAcceptBackoff (the accept timer brings it back).
  void pause_accepting() noexcept {
    itimerspec its{};
    its.it_value.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(kAcceptBackoff).count();
    if (::timerfd_settime(accept_timer.get(), 0, &its, nullptr) != 0) return;  // keep watching: no timer
    unwatch(listener.fd());
    accept_paused = true;
  }

  /// The accept back-off is over: watch the listener again and take what is queued.
  void accept_tick() {
    std::uint64_t ticks;
    while (::read(accept_timer.get(), &ticks, sizeof ticks) > 0) {
    }
    if (!accept_paused) return;
    accept_paused = false;
    if (!listener.is_open()) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener.fd();
    if (::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, listener.fd(), &ev) != 0 && errno != EEXIST) {
      log_accept_error(std::string("watching the listener again: ") + std::strerror(errno));
      pause_accepting();
      return;
    }
    accept_all();
  }

  // --- handshake deadlines -------------------------------------------------------------------

  /// Starts the deadline for the peer's next handshake message on `c`: handshake_timeout from
  /// now, but no later than the whole handshake's cap (kHandshakeTotalFactor handshake_timeouts
  /// after the connection's start); none once up, or when handshake_timeout is 0. Re-arms the
  /// timer. handshake_timeout is at most kMaxHandshakeTimeout (Socket's constructor), so the
  /// sums cannot overflow.
  void touch(Connection* c) noexcept {
    if (c->phase == Phase::up || opt.handshake_timeout.count() <= 0)
      c->deadline = Clock::time_point::max();
    else
      c->deadline = std::min(Clock::now() + opt.handshake_timeout, handshake_cap(*c));
    arm_handshake_timer();
  }

  /// When the whole handshake on `c` must be done.
  Clock::time_point handshake_cap(const Connection& c) const noexcept {
    return c.started + kHandshakeTotalFactor * opt.handshake_timeout;
  }

  /// Arms the handshake timer at the earliest deadline, or stops it when none is pending.
  void arm_handshake_timer() noexcept {
    auto earliest = Clock::time_point::max();
    for (auto& c : conns)
      if (c->phase != Phase::up) earliest = std::min(earliest, c->deadline);
    itimerspec its{};
    if (earliest != Clock::time_point::max()) {
      const auto ns = std::max<long long>(
          1, std::chrono::duration_cast<std::chrono::nanoseconds>(earliest - Clock::now()).count());
      its.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
      its.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    ::timerfd_settime(handshake_timer.get(), 0, &its, nullptr);
  }

  /// Disconnects every peer whose handshake message is overdue, with the reason.
  void handshake_tick() {
    std::uint64_t ticks;
    while (::read(handshake_timer.get(), &ticks, sizeof ticks) > 0) {
    }
    const auto now = Clock::now();
    std::vector<Connection*> late;
    for (auto& c : conns)
      if (c->phase != Phase::up && c->deadline <= now) late.push_back(c.get());
    for (Connection* c : late) {
      if (std::none_of(conns.begin(), conns.end(), [&](auto& p) { return p.get() == c; })) continue;
      if (handshake_cap(*c) <= now)
        fail(c, "handshake timed out: not complete within " +
                    std::to_string((kHandshakeTotalFactor * opt.handshake_timeout).count()) + " ms");
      else
        fail(c, std::string("handshake timed out: no ") + awaited(c->phase) + " within " +
                    std::to_string(opt.handshake_timeout.count()) + " ms");
    }
    arm_handshake_timer();
  }

  void master_message(Connection* c, const wire::Message& m, os::UniqueFd fd) {
    const auto type = wire::message_type(m);
    if (type == wire::MsgType::disconnect) {
      auto d = wire::decode_disconnect(m);
      fail(c, "peer disconnected: " + d.reason, false);
      return;
    }
    switch (c->phase) {
      case Phase::master_wait_init: {
        if (type != wire::MsgType::init) return refuse(c, "expected INIT");
        auto in = wire::decode_init(m);
        c->peer_app = in.name;
        Interface::Impl* target = nullptr;
        for (auto& i : ifaces)
          if (impl_of(i).opt.role == Role::master && impl_of(i).opt.id == in.id) target = &impl_of(i);
        if (in.version != wire::kVersion) {
          if (target != nullptr) {  // visible on the interface the slave asked for
            target->last_disconnect =
                "refused slave '" + in.name + "': incompatible memif version " + version_text(in.version);
            publish(*target);
          }
          return refuse(c, "Incompatible memif version");
        }
        if (target == nullptr) return refuse(c, "ID not found");
        if (target->conn != nullptr) return refuse(c, "Already connected");
        if (static_cast<std::uint8_t>(in.mode) != static_cast<std::uint8_t>(target->opt.mode)) {
          target->last_disconnect = "refused slave '" + in.name + "': mode mismatch";
          publish(*target);
          return refuse(c, "Mode mismatch");
        }
        if (!target->opt.secret.empty()) {
          const char* why = in.secret.empty() ? "Secret required" : in.secret != target->opt.secret ? "Incorrect secret" : nullptr;
          if (why != nullptr) {
            target->last_disconnect = "refused slave '" + in.name + "': " + why;
            publish(*target);
            return refuse(c, why);
          }
        }
        c->iface = target;
        target->conn = c;
        target->peer_app = in.name;
        c->phase = Phase::master_wait_setup;
        publish(*target);  // handshake
        send(c, wire::encode_ack());
        return;
      }
      case Phase::master_wait_setup: {
        Interface::Impl& i = *c->iface;
        if (type == wire::MsgType::add_region) {
          auto r = wire::decode_add_region(m);
          if (!fd) return fail(c, "Missing region fd");
          if (r.index != c->regions.size()) return fail(c, "Invalid region index " + std::to_string(r.index));
          if (r.index > 255) return fail(c, "too many regions");
          if (r.size == 0) return fail(c, "region " + std::to_string(r.index) + " has size 0");
          if (auto why = detail::check_peer_region(fd.get(), r.index, i.opt.allow_unsealed_regions); !why.empty())
            return fail(c, why);
          c->regions.emplace_back(std::move(fd), r.size);
          send(c, wire::encode_ack());
          return;
        }
        if (type == wire::MsgType::add_ring) {
          auto r = wire::decode_add_ring(m);
          if (!fd) return fail(c, "Missing interrupt fd");
          if (!detail::is_eventfd(fd.get())) return fail(c, "interrupt fd is not an eventfd");
          if (r.private_hdr_size != 0) return fail(c, "private headers not supported");
          const bool s2m = r.type == wire::RingType::s2m;
          auto& list = s2m ? c->s2m : c->m2s;
          const std::uint16_t limit = s2m ? i.opt.num_s2m_rings : i.opt.num_m2s_rings;
          const char* dir = s2m ? "S2M" : "M2S";
          if (r.index != list.size()) return fail(c, std::string("Invalid ring index: ") + dir + " " + std::to_string(r.index));
          if (r.index >= limit)
            return fail(c, std::string("Invalid ring index: ") + dir + " " + std::to_string(r.index) + ", at most " +
                               std::to_string(limit) + " rings");
          if (r.region >= c->regions.size()) return fail(c, "ring refers to unknown region " + std::to_string(r.region));
          if (r.log2_ring_size < 1 || r.log2_ring_size > wire::kMaxLog2RingSize)
            return fail(c, "ring size 2^" + std::to_string(r.log2_ring_size) + " out of range");
          list.push_back(AnnouncedRing{{r.region, r.offset, r.log2_ring_size}, std::move(fd)});
          send(c, wire::encode_ack());
          return;
        }
        if (type == wire::MsgType::connect) {
          i.peer_name = wire::decode_connect(m);
          master_connect(c);
          return;
        }
        return fail(c, "unexpected message type " + std::to_string(static_cast<unsigned>(type)));
      }
      case Phase::up:
        return fail(c, "unexpected message type " + std::to_string(static_cast<unsigned>(type)) + " on a connected link");
      default:
        return fail(c, "internal: bad phase");
    }
  }

  /// CONNECT received: map, locate, check cookies, attach, CONNECTED (section 6 master step 5).
  void master_connect(Connection* c) {
    Interface::Impl& i = *c->iface;
    if (c->s2m.empty() || c->m2s.empty()) return fail(c, "no rings announced");
    try {
      for (std::size_t k = 0; k < c->regions.size(); ++k)
        i.peer_regions.push_back(detail::map_peer_region(std::move(c->regions[k].first), c->regions[k].second,
                                                         i.label() + " region " + std::to_string(k)));
    } catch (const Error& e) {
      i.peer_regions.clear();
      return fail(c, e.what());
    }
    // Descriptors are checked against the size the slave announced (the mapping may be larger:
    // map_peer_region maps the whole file).
    for (std::size_t k = 0; k < i.peer_regions.size(); ++k)
      i.views.push_back(detail::RegionView{reinterpret_cast<std::uint8_t*>(i.peer_regions[k].data()), c->regions[k].second});
    c->regions.clear();
    auto place = [&](std::vector<AnnouncedRing>& rings, const char* dir, std::vector<std::uint8_t*>& out) -> bool {
      for (std::size_t k = 0; k < rings.size(); ++k) {
        const auto& p = rings[k].placement;
        std::uint8_t* r = detail::locate_ring(i.views[p.region], p.offset, p.log2, opt.cache_line);
        if (r == nullptr) {
          fail(c, std::string("Wrong ring: ") + dir + " " + std::to_string(k) + " does not fit in region " +
                      std::to_string(p.region));
          return false;
        }
        std::uint32_t cookie;
        std::memcpy(&cookie, r, sizeof cookie);
        if (cookie != wire::kCookie) {
          fail(c, std::string("Wrong cookie on ") + dir + " ring " + std::to_string(k));
          return false;
        }
        out.push_back(r);
      }
      return true;
    };
    std::vector<std::uint8_t*> s2m_rings, m2s_rings;
    if (!place(c->s2m, "S2M", s2m_rings) || !place(c->m2s, "M2S", m2s_rings)) return;
    // master transmits on M2S, receives on S2M
    i.n_tx = static_cast<std::uint16_t>(m2s_rings.size());
    i.n_rx = static_cast<std::uint16_t>(s2m_rings.size());
    for (std::size_t k = 0; k < m2s_rings.size(); ++k) {
      detail::RingQueue::Config cfg;
      cfg.slave = false;
      cfg.transmit = true;
      cfg.ring = m2s_rings[k];
      cfg.log2 = c->m2s[k].placement.log2;
      cfg.cache_line = opt.cache_line;
      cfg.regions = i.views;
      cfg.eventfd = c->m2s[k].eventfd.get();
      cfg.ring_index = static_cast<std::uint16_t>(k);
      i.m2s_placement.push_back(c->m2s[k].placement);
      i.tx[k]->attach(cfg);
    }
    for (std::size_t k = 0; k < s2m_rings.size(); ++k) {
      detail::RingQueue::Config cfg;
      cfg.slave = false;
      cfg.transmit = false;
      cfg.ring = s2m_rings[k];
      cfg.log2 = c->s2m[k].placement.log2;
      cfg.cache_line = opt.cache_line;
      cfg.regions = i.views;
      cfg.eventfd = c->s2m[k].eventfd.get();
      cfg.ring_index = static_cast<std::uint16_t>(k);
      cfg.rx_mode = i.rx[k]->rx_mode();
      i.s2m_placement.push_back(c->s2m[k].placement);
      i.rx[k]->attach(cfg);
    }
    for (auto& r : c->s2m) i.ring_eventfds.push_back(std::move(r.eventfd));
    for (auto& r : c->m2s) i.ring_eventfds.push_back(std::move(r.eventfd));
    c->s2m.clear();
    c->m2s.clear();
    if (!send(c, wire::encode_connected(i.opt.name))) return;
    c->phase = Phase::up;
    go_up(i);
  }

  void go_up(Interface::Impl& i) {
    i.up = true;
    ++i.connects;
    i.last_disconnect.clear();
    i.warned.clear();  // a refusal after this link goes down is news again
    log_info(i.label() + ": connected to '" + i.peer_name + "' (" + i.peer_app + ") on " + addr.display);
    publish(i);
    update_status_timer();
    if (i.opt.on_connect) i.opt.on_connect(*i.self);
  }

  // --- slave -----------------------------------------------------------------------------------

  /// Tries to connect a down slave (section 6 slave step 1). A refused connect is not an error.
  void slave_try_connect(Interface::Impl& i) {
    if (i.conn != nullptr) return;
    auto r = connect_seqpacket(addr, true);
    if (!r) {
      if (r.error != ECONNREFUSED && r.error != ENOENT && r.error != EAGAIN)
        warn_once(i.warned, i.label() + ": connecting to " + addr.display + ": " + std::strerror(r.error));
      publish(i);  // an attempt: the record's time says the slave is still trying
      return;
    }
    auto c = std::make_unique<Connection>();
    c->fd = std::move(r.fd);
    c->phase = Phase::slave_wait_hello;
    c->slave_side = true;
    c->iface = &i;
    i.conn = c.get();
    Connection* cp = c.get();
    conns.push_back(std::move(c));
    watch(cp->fd.get());
    touch(cp);
    publish(i);  // handshake
  }

  /// Sends the slave's next announcement (INIT acked -> regions -> S2M rings -> M2S rings ->
  /// CONNECT), one per ACK (lock-step, section 4).
  void slave_send_next(Connection* c) {
    Interface::Impl& i = *c->iface;
    auto& mem = *i.slave_mem;
    const std::size_t nreg = mem.regions.size();
    const std::size_t ns2m = mem.s2m.size();
    const std::size_t nm2s = mem.m2s.size();
    std::size_t k = c->step++;
    if (k < nreg) {
      send(c, wire::encode_add_region({static_cast<std::uint16_t>(k), static_cast<std::uint64_t>(mem.regions[k].size())}),
           mem.regions[k].fd());
      return;
    }
    k -= nreg;
    auto ring_msg = [](wire::RingType t, std::size_t idx, const detail::RingPlacement& p) {
      wire::AddRingInfo r;
      r.type = t;
      r.index = static_cast<std::uint16_t>(idx);
      r.region = p.region;
      r.offset = p.offset;
      r.log2_ring_size = p.log2;
      return wire::encode_add_ring(r);
    };
    if (k < ns2m) {
      send(c, ring_msg(wire::RingType::s2m, k, mem.s2m[k]), mem.s2m_eventfds[k].get());
      return;
    }
    k -= ns2m;
    if (k < nm2s) {
      send(c, ring_msg(wire::RingType::m2s, k, mem.m2s[k]), mem.m2s_eventfds[k].get());
      return;
    }
    c->phase = Phase::slave_wait_connected;
    send(c, wire::encode_connect(i.opt.name));
  }

  void slave_message(Connection* c, const wire::Message& m) {
    Interface::Impl& i = *c->iface;
    const auto type = wire::message_type(m);
    if (type == wire::MsgType::disconnect) {
      auto d = wire::decode_disconnect(m);
      const bool handshake = c->phase != Phase::up;
      fail(c, (handshake ? "refused by the master: " : "peer disconnected: ") + d.reason, false);
      return;
    }
    switch (c->phase) {
      case Phase::slave_wait_hello: {
        if (type != wire::MsgType::hello) return fail(c, "expected HELLO");
        auto h = wire::decode_hello(m);
        i.peer_app = h.name;
        if (!(h.min_version <= wire::kVersion && wire::kVersion <= h.max_version))
          return fail(c, "Incompatible memif version: master speaks " + version_text(h.min_version) + ".." +
                             version_text(h.max_version) + ", we speak " + version_text(wire::kVersion));
        detail::SlaveLayout lay;
        lay.num_s2m = static_cast<std::uint16_t>(std::min<unsigned>(h.max_s2m_ring + 1U, i.opt.num_s2m_rings));
        lay.num_m2s = static_cast<std::uint16_t>(std::min<unsigned>(h.max_m2s_ring + 1U, i.opt.num_m2s_rings));
        lay.log2 = std::min(h.max_log2_ring_size, i.opt.log2_ring_size);
        lay.buffer_size = i.opt.buffer_size;
        lay.separate_buffer_region = i.opt.separate_buffer_region;
        lay.cache_line = opt.cache_line;
        if (lay.log2 < 1) return fail(c, "master allows no ring size");
        try {
          i.slave_mem.emplace(detail::create_slave_memory(lay, "memif " + i.opt.name));
        } catch (const Error& e) {
          return fail(c, e.what());
        }
        wire::InitInfo in;
        in.id = i.opt.id;
        in.mode = static_cast<wire::Mode>(i.opt.mode);
        in.secret = i.opt.secret;
        in.name = opt.app_name;
        c->phase = Phase::slave_wait_ack;
        c->step = 0;
        send(c, wire::encode_init(in));
        return;
      }
      case Phase::slave_wait_ack:
        if (type != wire::MsgType::ack) return fail(c, "expected ACK");
        slave_send_next(c);
        return;
      case Phase::slave_wait_connected: {
        if (type != wire::MsgType::connected) return fail(c, "expected CONNECTED");
        i.peer_name = wire::decode_connected(m);
        auto& mem = *i.slave_mem;
        i.views = mem.views();
        i.n_tx = static_cast<std::uint16_t>(mem.s2m.size());
        i.n_rx = static_cast<std::uint16_t>(mem.m2s.size());
        i.s2m_placement = mem.s2m;
        i.m2s_placement = mem.m2s;
        auto ring_ptr = [&](const detail::RingPlacement& p) {
          return detail::locate_ring(i.views[p.region], p.offset, p.log2, opt.cache_line);
        };
        for (std::uint16_t k = 0; k < i.n_tx; ++k) {
          detail::RingQueue::Config cfg;
          cfg.slave = true;
          cfg.transmit = true;
          cfg.ring = ring_ptr(mem.s2m[k]);
          cfg.log2 = mem.s2m[k].log2;
          cfg.cache_line = opt.cache_line;
          cfg.regions = i.views;
          cfg.eventfd = mem.s2m_eventfds[k].get();
          cfg.slave_memory = &mem;
          cfg.ring_index = k;
          i.tx[k]->attach(cfg);
        }
        for (std::uint16_t k = 0; k < i.n_rx; ++k) {
          detail::RingQueue::Config cfg;
          cfg.slave = true;
          cfg.transmit = false;
          cfg.ring = ring_ptr(mem.m2s[k]);
          cfg.log2 = mem.m2s[k].log2;
          cfg.cache_line = opt.cache_line;
          cfg.regions = i.views;
          cfg.eventfd = mem.m2s_eventfds[k].get();
          cfg.slave_memory = &mem;
          cfg.ring_index = k;
          cfg.rx_mode = i.rx[k]->rx_mode();
          i.rx[k]->attach(cfg);
        }
        c->phase = Phase::up;
        go_up(i);
        return;
      }
      case Phase::up:
        return fail(c, "unexpected message type " + std::to_string(static_cast<unsigned>(type)) + " on a connected link");
      default:
        return fail(c, "internal: bad phase");
    }
  }

  // --- dispatch --------------------------------------------------------------------------------

  void readable(Connection* c) {
    // Several messages may be queued; handle them all (each may close c).
    for (int n = 0; n < 64; ++n) {
      wire::Message m;
      os::UniqueFd fd;
      auto r = receive_message(c->fd.get(), m, fd);
      if (r.code == Errc::would_block) return;
      if (r.code == Errc::closed) return fail(c, "peer closed the control channel", false);
      if (r.fd_not_made_nonblocking) return fail(c, r.describe());  // the channel works: say why
      if (!r) return fail(c, "control channel: " + r.describe(), r.code == Errc::layout);
      const int fdnum = c->fd.get();
      if (c->slave_side)
        slave_message(c, m);
      else
        master_message(c, m, std::move(fd));
      if (find_conn(fdnum) != c) return;  // closed while handling
      touch(c);  // the next stage's deadline (none once up)
    }
  }

  void check_faults() {
    for (auto& ip : ifaces) {
      auto& i = impl_of(ip);
      if (!i.up) continue;
      for (std::uint16_t k = 0; k < i.n_tx; ++k)
        if (i.tx[k]->fault_flag().load(std::memory_order_acquire))
          return teardown(i, "bad descriptor: " + i.tx[k]->fault(), true);
      for (std::uint16_t k = 0; k < i.n_rx; ++k)
        if (i.rx[k]->fault_flag().load(std::memory_order_acquire))
          return teardown(i, "bad descriptor: " + i.rx[k]->fault(), true);
    }
  }

  void timer_tick() {
    std::uint64_t ticks;
    while (::read(timerfd.get(), &ticks, sizeof ticks) > 0) {
    }
    bool any_down = false;
    for (auto& ip : ifaces) {
      auto& i = impl_of(ip);
      if (i.opt.role != Role::slave || i.conn != nullptr) continue;
      slave_try_connect(i);
      if (i.conn == nullptr) any_down = true;
    }
    if (!any_down) {
      itimerspec off{};
      ::timerfd_settime(timerfd.get(), 0, &off, nullptr);
    }
  }
};

// ---- Interface --------------------------------------------------------------------------------

Interface::Interface(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->self = this; }
Interface::~Interface() = default;

const InterfaceOptions& Interface::options() const noexcept { return impl_->opt; }
bool Interface::connected() const noexcept { return impl_->up; }
std::uint16_t Interface::tx_queues() const noexcept { return impl_->n_tx; }
std::uint16_t Interface::rx_queues() const noexcept { return impl_->n_rx; }
std::string Interface::last_disconnect() const { return impl_->last_disconnect; }

InterfaceDetails Interface::details() const {
  const Impl& i = *impl_;
  InterfaceDetails d;
  d.role = i.opt.role;
  d.id = i.opt.id;
  d.name = i.opt.name;
  d.peer_name = i.peer_name;
  d.peer_app = i.peer_app;
  d.socket = i.sock->addr.display;
  d.mode = i.opt.mode;
  d.connected = i.up;
  d.last_disconnect = i.last_disconnect;
  d.connects = i.connects;
  if (i.up) {
    for (std::size_t k = 0; k < i.views.size(); ++k) {
      RegionDetails r;
      r.index = static_cast<std::uint16_t>(k);
      r.size = i.views[k].size;
      r.fd = i.slave_mem ? i.slave_mem->regions[k].fd() : i.peer_regions[k].fd();
      d.regions.push_back(r);
    }
  }
  const bool slave = i.opt.role == Role::slave;
  auto fill = [&](const std::vector<std::unique_ptr<detail::RingQueue>>& qs, std::uint16_t n, bool transmit,
                  const std::vector<detail::RingPlacement>& places, std::vector<QueueDetails>& out) {
    for (std::uint16_t k = 0; k < qs.size(); ++k) {
      QueueDetails q;
      q.qid = k;
      q.transmit = transmit;
      q.s2m = transmit == slave;
      q.rx_mode = qs[k]->rx_mode();
      q.counters = qs[k]->counters();
      if (k < n && k < places.size()) {
        q.region = places[k].region;
        q.offset = places[k].offset;
        q.ring_size = 1U << places[k].log2;
        q.buffer_size = slave ? i.slave_mem->layout.buffer_size : 0;
        qs[k]->snapshot(q.head, q.tail, q.mask_int);
      }
      out.push_back(q);
    }
  };
  fill(i.tx, i.n_tx, true, slave ? i.s2m_placement : i.m2s_placement, d.tx_queues);
  fill(i.rx, i.n_rx, false, slave ? i.m2s_placement : i.s2m_placement, d.rx_queues);
  return d;
}

namespace {
/// The status of a call on a queue that does not exist now: out of range while up, else down.
Status queue_missing(bool up, std::size_t& count) noexcept {
  count = 0;
  return up ? Errc::out_of_range : Errc::not_connected;
}
}  // namespace

Status Interface::alloc(std::uint16_t qid, std::span<Buffer> bufs, std::size_t packets, std::uint32_t size,
                        std::size_t& count) noexcept {
  auto* q = impl_->txq(qid);
  if (q == nullptr) return queue_missing(impl_->up, count);
  return q->alloc(bufs, packets, size, count);
}

Status Interface::tx_burst(std::uint16_t qid, std::span<const Buffer> bufs, std::size_t& sent) noexcept {
  auto* q = impl_->txq(qid);
  if (q == nullptr) return queue_missing(impl_->up, sent);
  return q->tx_burst(bufs, sent);
}

Status Interface::rx_burst(std::uint16_t qid, std::span<Buffer> bufs, std::size_t& received) noexcept {
  auto* q = impl_->rxq(qid);
  if (q == nullptr) return queue_missing(impl_->up, received);
  return q->rx_burst(bufs, received);
}

Status Interface::refill(std::uint16_t qid, std::size_t count) noexcept {
  auto* q = impl_->rxq(qid);
  std::size_t dummy = 0;
  if (q == nullptr) return queue_missing(impl_->up, dummy);
  return q->refill(count);
}

Status Interface::set_rx_mode(std::uint16_t qid, RxMode mode) noexcept {
  if (qid >= impl_->rx.size()) return Errc::out_of_range;
  impl_->rx[qid]->set_rx_mode(mode);
  return Errc::ok;
}

int Interface::rx_fd(std::uint16_t qid) const noexcept {
  const Impl& i = *impl_;
  if (!i.up || qid >= i.n_rx) return -1;
  if (i.slave_mem) return i.slave_mem->m2s_eventfds[qid].get();
  // master: ring_eventfds holds S2M eventfds first, then M2S
  return i.ring_eventfds[qid].get();
}

Status Interface::wait_rx(std::uint16_t qid, std::chrono::nanoseconds timeout) noexcept {
  auto* q = impl_->rxq(qid);
  std::size_t dummy = 0;
  if (q == nullptr) return queue_missing(impl_->up, dummy);
  if (q->rx_pending()) return Errc::ok;
  const auto deadline = deadline_after(timeout);
  if (q->rx_mode() == RxMode::polling) {
    for (;;) {
      for (int k = 0; k < 64; ++k) {
        if (q->rx_pending()) return Errc::ok;
        cpu_relax();
      }
      if (Clock::now() >= deadline) return Errc::timeout;
    }
  }
  pollfd p{rx_fd(qid), POLLIN, 0};
  int ms = -1;
  if (timeout.count() >= 0) ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(timeout).count());
  const int r = ::poll(&p, 1, ms);
  if (r < 0) return errno == EINTR ? Errc::interrupted : errc_from_errno(errno);
  if (r == 0) return q->rx_pending() ? Errc::ok : Errc::timeout;
  return Errc::ok;
}

void Interface::disconnect(std::string_view reason) {
  Impl& i = *impl_;
  if (i.conn == nullptr && !i.up) return;
  i.sock->teardown(i, std::string(reason), true, true);
}

Socket& Interface::socket() const noexcept { return *impl_->sock->self; }

// ---- Socket -----------------------------------------------------------------------------------

Socket::Socket(SocketOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.self = this;
  if (options.app_name.size() > kMaxName)
    throw Error(Errc::invalid_argument, "memif socket " + options.path + ": application name longer than 31 bytes");
  if (options.cache_line != 64 && options.cache_line != 128)
    throw Error(Errc::invalid_argument, "memif socket " + options.path + ": cache line must be 64 or 128");
  s.addr = parse_socket_name(options.path);
  s.opt = std::move(options);
  s.epfd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!s.epfd) os::throw_errno(errno, "creating the epoll fd of memif socket", s.addr.display);
  s.timerfd.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!s.timerfd) os::throw_errno(errno, "creating the reconnect timer of memif socket", s.addr.display);
  s.watch(s.timerfd.get());
  if (s.opt.handshake_timeout.count() < 0)
    throw Error(Errc::invalid_argument, "memif socket " + s.addr.display + ": negative handshake timeout");
  if (s.opt.handshake_timeout > kMaxHandshakeTimeout)
    throw Error(Errc::invalid_argument, "memif socket " + s.addr.display + ": handshake timeout of " +
                                            std::to_string(s.opt.handshake_timeout.count()) +
                                            " ms is above the limit of 1 hour");
  s.handshake_timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!s.handshake_timer) os::throw_errno(errno, "creating the handshake timer of memif socket", s.addr.display);
  s.watch(s.handshake_timer.get());
  s.accept_timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!s.accept_timer) os::throw_errno(errno, "creating the accept timer of memif socket", s.addr.display);
  s.watch(s.accept_timer.get());
}

Socket::Socket(Socket&& o) noexcept : impl_(std::move(o.impl_)) {
  if (impl_) impl_->self = this;
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    Socket old(std::move(*this));
    impl_ = std::move(o.impl_);
    if (impl_) impl_->self = this;
  }
  return *this;
}

Socket::~Socket() {
  if (!impl_) return;
  Impl& s = *impl_;
  for (auto& i : s.ifaces) {
    auto& ii = *i->impl_;
    ii.opt.on_disconnect = nullptr;  // no callbacks from a destructor
    if (ii.conn != nullptr || ii.up) s.teardown(ii, "interface deleted", true, true);
  }
  s.conns.clear();
  s.ifaces.clear();
  s.listener.close();
  s.status.close();  // unlinks the status file
}

Interface& Socket::add_interface(InterfaceOptions o) {
  Impl& s = *impl_;
  const std::string what = "memif " + std::string(role_name(o.role)) + " '" + o.name + "' (id " + std::to_string(o.id) +
                           ") on " + s.addr.display;
  if (o.name.empty() || o.name.size() > kMaxName)
    throw Error(Errc::invalid_argument, what + ": the interface name must be 1..31 bytes");
  if (o.secret.size() > kMaxSecret) throw Error(Errc::invalid_argument, what + ": the secret is longer than 24 bytes");
  if (o.num_s2m_rings < 1 || o.num_m2s_rings < 1) throw Error(Errc::invalid_argument, what + ": at least one ring each way");
  if (o.role == Role::slave) {
    if (o.log2_ring_size < 1 || o.log2_ring_size > kMaxLog2RingSize)
      throw Error(Errc::invalid_argument, what + ": log2 ring size must be 1..14");
    if (o.buffer_size < 64 || o.buffer_size % 8 != 0)
      throw Error(Errc::invalid_argument, what + ": buffer size must be a multiple of 8, at least 64 bytes");
  }
  if (static_cast<unsigned>(o.mode) > 2) throw Error(Errc::invalid_argument, what + ": unknown interface mode");
  const Role other = o.role == Role::master ? Role::slave : Role::master;
  if (s.has_role(other))
    throw Error(Errc::invalid_argument, what + ": a socket serves masters or slaves, not both (DPDK's rule too)");
  for (auto& i : s.ifaces)
    if (i->impl_->opt.id == o.id) throw Error(Errc::exists, what + ": id " + std::to_string(o.id) + " already used on this socket");
  if (o.role == Role::master && !s.listener.is_open()) {
    s.listener = listen_seqpacket(s.addr, 8);
    s.watch(s.listener.fd());
  }
  auto impl = std::make_unique<Interface::Impl>();
  impl->sock = &s;
  const std::uint16_t ntx = o.role == Role::slave ? o.num_s2m_rings : o.num_m2s_rings;
  const std::uint16_t nrx = o.role == Role::slave ? o.num_m2s_rings : o.num_s2m_rings;
  for (std::uint16_t k = 0; k < ntx; ++k) impl->tx.push_back(std::make_unique<detail::RingQueue>());
  for (std::uint16_t k = 0; k < nrx; ++k) {
    impl->rx.push_back(std::make_unique<detail::RingQueue>());
    impl->rx.back()->set_rx_mode(o.rx_mode);
  }
  impl->opt = std::move(o);
  s.ifaces.push_back(std::unique_ptr<Interface>(new Interface(std::move(impl))));
  Interface& iface = *s.ifaces.back();
  s.open_status();  // the first time: with this interface's role in the header
  s.publish(*iface.impl_);  // before the connect: readers see the interface from its start
  if (iface.impl_->opt.role == Role::slave) {
    s.slave_try_connect(*iface.impl_);
    if (iface.impl_->conn == nullptr) s.arm_timer();
  }
  s.update_overflow();
  return iface;
}

void Socket::remove_interface(Interface& iface) {
  Impl& s = *impl_;
  auto it = std::find_if(s.ifaces.begin(), s.ifaces.end(), [&](auto& p) { return p.get() == &iface; });
  if (it == s.ifaces.end()) return;
  auto& ii = *iface.impl_;
  ii.opt.on_disconnect = nullptr;
  if (ii.conn != nullptr || ii.up) s.teardown(ii, "interface deleted", true, true);
  s.unpublish(ii);
  s.ifaces.erase(it);
  if (!s.has_role(Role::master) && s.listener.is_open()) {
    s.unwatch(s.listener.fd());
    s.listener.close();
  }
  s.publish_all();  // a freed record goes to an interface that had none; role, timer
}

Status Socket::poll(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  s.check_faults();
  s.maybe_publish_all();
  const auto deadline = deadline_after(timeout);
  for (;;) {
    // Wait in slices of at most 100 ms so that faults reported by data-path threads are seen.
    int ms = 100;
    if (timeout.count() >= 0) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      ms = static_cast<int>(std::clamp<long long>(left, 0, 100));
    }
    epoll_event evs[16];
    const int n = ::epoll_wait(s.epfd.get(), evs, 16, ms);
    if (n < 0) {
      if (errno == EINTR) return Errc::interrupted;
      return errc_from_errno(errno);
    }
    int handled = 0;  // events other than the status timer's ticks
    for (int k = 0; k < n; ++k) {
      const int fd = evs[k].data.fd;
      if (s.status_timer && fd == s.status_timer.get()) {
        s.status_tick();
        continue;
      }
      ++handled;
      if (fd == s.timerfd.get()) {
        s.timer_tick();
      } else if (fd == s.handshake_timer.get()) {
        s.handshake_tick();
      } else if (fd == s.accept_timer.get()) {
        s.accept_tick();
      } else if (s.listener.is_open() && fd == s.listener.fd()) {
        s.accept_all();
      } else if (Connection* c = s.find_conn(fd)) {
        s.readable(c);
      }
    }
    s.check_faults();
    s.maybe_publish_all();
    if (handled > 0) return Errc::ok;
    if (timeout.count() >= 0 && Clock::now() >= deadline) return Errc::timeout;
  }
}

int Socket::fd() const noexcept { return impl_->epfd.get(); }
std::string Socket::name() const { return impl_->addr.display; }
const SocketOptions& Socket::options() const noexcept { return impl_->opt; }
std::string Socket::status_file() const { return impl_->status.path(); }

std::vector<Interface*> Socket::interfaces() const {
  std::vector<Interface*> v;
  for (auto& i : impl_->ifaces) v.push_back(i.get());
  return v;
}

}  // namespace shmlink::memif
