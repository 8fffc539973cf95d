// SPDX-License-Identifier: MIT
// memif sockets and interfaces, inside: the state of a Socket and its Interfaces, shared by the
// two roles' control-channel state machines (docs/reference/memif.md sections 6-8). Internal; the
// public face is include/shmlink/memif.hpp.
//
// One epoll fd per Socket watches the listener (masters), every control connection, a
// reconnect timerfd (slaves) and a status timerfd (armed while an interface is up and the socket
// publishes a status file). Everything here runs on the thread that calls Socket::poll,
// including every write to the status file (status.hpp): its records have one writer.
//
// Where Socket::Impl's members live: socket_core.cpp (the status file, teardown and refusals,
// handshake deadlines, dispatch, attaching the queues to the rings for both roles), master.cpp
// (the listener and the master's handshake), slave.cpp (connecting, the slave's handshake and
// reconnect timer), memif.cpp (the public Interface and Socket). The transport is control.cpp,
// the connection's memory memory.cpp, the data path ring.cpp.
#pragma once

#include "memif/control.hpp"
#include "memif/ring.hpp"
#include "memif/status.hpp"
#include "memif/wire.hpp"
#include "os/log_internal.hpp"
#include "os/sys.hpp"

#include <shmlink/memif.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

// The helpers and per-connection state below are internal: they live in detail, not in the
// public namespace shmlink::memif. Only the Impl structs of the public classes (and
// InterfaceAccess, which Interface names as a friend) are declared there.
namespace shmlink::memif::detail {

using Clock = std::chrono::steady_clock;

/// A memif protocol version as "major.minor" (section 2: major in the high byte).
inline std::string version_text(std::uint16_t v) {
  return std::to_string(v >> 8) + "." + std::to_string(v & 0xFF);
}

inline void log_info(const std::string& m) { shmlink::detail::log(LogLevel::info, m); }
inline void log_warn(const std::string& m) { shmlink::detail::log(LogLevel::warn, m); }

/// Logs `m` as a warning the first time `key` is seen in `seen`, at info level after that: a slave
/// retrying against a master that refuses it for the same reason warns once, not once per
/// attempt (docs/design/memif.md "Control"). `key` is the part of `m` that identifies the reason;
/// what a peer merely names (its app name) stays out of it, so a peer cannot buy a warning per
/// attempt by changing its name. `seen` holds at most 32 keys; the oldest is forgotten.
void warn_once(std::deque<std::string>& seen, const std::string& key, const std::string& m);

/// warn_once() keyed on the whole message.
void warn_once(std::deque<std::string>& seen, const std::string& m);

/// Where the control exchange of one connection stands (section 6).
enum class Phase {
  master_wait_init,      // HELLO sent
  master_wait_setup,     // INIT acked: ADD_REGION / ADD_RING / CONNECT expected
  slave_wait_hello,      // connected
  slave_wait_ack,        // a message sent; its ACK expected (then the next one is sent)
  slave_wait_connected,  // CONNECT sent
  up,                    // CONNECTED sent (master) or received (slave)
};

/// A ring the slave announced (master side), before CONNECT maps it.
struct AnnouncedRing {
  RingPlacement placement;
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

}  // namespace shmlink::memif::detail

namespace shmlink::memif {

/// An Interface's state: options, link, the memory and queues of its connection.
struct Interface::Impl {
  Socket::Impl* sock = nullptr;
  Interface* self = nullptr;
  InterfaceOptions opt;
  detail::Connection* conn = nullptr;  // bound control connection (owned by the socket)
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

}  // namespace shmlink::memif

namespace shmlink::memif::detail {

/// The Impl of an interface the socket owns.
inline Interface::Impl& impl_of(const std::unique_ptr<Interface>& i) noexcept { return InterfaceAccess::of(*i); }

}  // namespace shmlink::memif::detail

namespace shmlink::memif {

/// A Socket's state and both roles' state machines (see the file comment for where each part lives).
struct Socket::Impl {
  SocketOptions opt;
  SocketAddress addr;
  os::UniqueFd epfd;
  os::UniqueFd timerfd;  // reconnect timer, armed while a slave is down
  SeqpacketListener listener;
  std::vector<std::unique_ptr<Interface>> ifaces;
  std::vector<std::unique_ptr<detail::Connection>> conns;
  Socket* self = nullptr;
  // status file (SocketOptions::publish_status)
  detail::StatusWriter status;
  bool status_tried = false;        // open() was attempted (once per socket)
  os::UniqueFd status_timer;        // 100 ms ticks while an interface is up (counter refresh)
  bool status_timer_armed = false;
  detail::Clock::time_point status_refreshed{};  // last refresh of every record
  os::UniqueFd handshake_timer;     // one-shot, armed at the earliest handshake deadline
  os::UniqueFd accept_timer;        // one-shot: end of an accept back-off (listener unwatched meanwhile)
  bool accept_paused = false;
  struct {
    std::string reason;            // last accept error logged
    detail::Clock::time_point logged{};    // when
    std::uint64_t suppressed = 0;  // accept errors not logged since
  } accept_log;
  std::deque<std::string> warned;  // refusals of unbound peers already logged as warnings (warn_once)

  // --- shared core (socket_core.cpp) ----------------------------------------------------------
  /// Creates the status file at the first interface (once; a failure is logged by open()).
  void open_status();
  /// The published state of `i`.
  std::uint8_t link_state(const Interface::Impl& i) const noexcept;
  /// Writes the record of `i` (state, names, reason, geometry, counters). Interfaces without a
  /// record get one when one is free. No-op without a status file.
  void publish(Interface::Impl& i) noexcept;
  /// Frees the record of `i` (interface removed).
  void unpublish(Interface::Impl& i) noexcept;
  /// Stores the socket's role and how many interfaces have no record.
  void update_overflow() noexcept;
  /// Refreshes every record (counters) and re-arms or stops the status timer.
  void publish_all() noexcept;
  /// Refreshes every record when 100 ms passed since the last refresh.
  void maybe_publish_all() noexcept;
  /// Arms the 100 ms status timer while some interface is up, stops it otherwise.
  void update_status_timer() noexcept;
  /// Drains the status timer and refreshes when due.
  void status_tick() noexcept;
  /// Adds `fd` to the socket's epoll set (readable).
  /// @throws Error naming the socket when epoll_ctl fails.
  void watch(int fd);
  /// Removes `fd` from the epoll set (no-op when absent).
  void unwatch(int fd) noexcept;
  /// The connection whose control fd is `fd`, or nullptr.
  detail::Connection* find_conn(int fd) noexcept;
  /// Closes and frees `c` (unwatched first); the caller unbinds its interface.
  void close_conn(detail::Connection* c) noexcept;
  /// True when some interface of this socket has role `r`.
  bool has_role(Role r) const noexcept;
  /// Ends iface's connection: optional DISCONNECT, close, detach queues, free memory, callback.
  /// A link that was up going down is logged at info level. A handshake that ends before the
  /// link came up (refused by either side, timed out, cut) is a warning with the reason, once per
  /// distinct reason until the link comes up (warn_once), unless `local` (this process removed
  /// the interface or called disconnect()).
  void teardown(Interface::Impl& i, const std::string& reason, bool send_disconnect, bool local = false);
  /// Refuses a connection not (yet) bound to an interface: DISCONNECT + close.
  void refuse(detail::Connection* c, const std::string& reason);
  /// Fails a connection wherever it is: bound -> teardown; unbound -> refuse.
  void fail(detail::Connection* c, const std::string& reason, bool send_disconnect = true);
  /// Sends `m` (with `fd`, if any) on `c`; on failure fails `c` (no DISCONNECT) and returns false.
  bool send(detail::Connection* c, const wire::Message& m, int fd = -1);
  /// Starts the deadline for the peer's next handshake message on `c`: handshake_timeout from
  /// now, but no later than the whole handshake's cap (kHandshakeTotalFactor handshake_timeouts
  /// after the connection's start); none once up, or when handshake_timeout is 0. Re-arms the
  /// timer. handshake_timeout is at most kMaxHandshakeTimeout (Socket's constructor), so the
  /// sums cannot overflow.
  void touch(detail::Connection* c) noexcept;
  /// When the whole handshake on `c` must be done.
  detail::Clock::time_point handshake_cap(const detail::Connection& c) const noexcept;
  /// Arms the handshake timer at the earliest deadline, or stops it when none is pending.
  void arm_handshake_timer() noexcept;
  /// Disconnects every peer whose handshake message is overdue, with the reason.
  void handshake_tick();
  /// The handshake of `i` is complete (section 6): link up, logged, published, on_connect.
  void go_up(Interface::Impl& i);
  /// Handles every message queued on `c` (up to 64 per call) with its role's state machine;
  /// each may close `c`.
  void readable(detail::Connection* c);
  /// Tears down every link whose data path reported a protocol violation (RingQueue::fault()).
  void check_faults();
  /// Attaches the queues of `i` to the rings of its connection, for both roles
  /// (detail::attach_rings over `i.views` with the role `i.opt.role`; a slave passes its own
  /// memory, a master none), and records the queues in use and the rings' placements (details(),
  /// the status file).
  /// @param s2m, m2s the rings of each direction by index, with their interrupt eventfds.
  /// @return "" when attached (a queue whose RingQueue::attach faulted is caught by check_faults
  ///         on the next poll, see detail::attach_rings); else the DISCONNECT reason, nothing
  ///         attached: "internal: ..." among them when `i.slave_mem` is present on a master or
  ///         missing on a slave.
  std::string attach(Interface::Impl& i, std::span<const detail::ConnectionRing> s2m,
                     std::span<const detail::ConnectionRing> m2s);

  // --- master (master.cpp) --------------------------------------------------------------------
  /// Accepts every queued connection and sends each its HELLO (section 6 master step 1).
  void accept_all();
  /// Logs an accept error, at most once per distinct reason per kAcceptLogInterval; the ones
  /// left out are counted and the count goes into the next line.
  void log_accept_error(const std::string& why);
  /// Stops watching the listener for kAcceptBackoff (the accept timer brings it back).
  void pause_accepting() noexcept;
  /// The accept back-off is over: watch the listener again and take what is queued.
  void accept_tick();
  /// The master's state machine (section 6): one message from the slave on `c`, with the fd it
  /// carried (ADD_REGION, ADD_RING); every check of section 7, DISCONNECT with the reason.
  void master_message(detail::Connection* c, const wire::Message& m, os::UniqueFd fd);
  /// CONNECT received: map, locate, check cookies, attach, CONNECTED (section 6 master step 5).
  void master_connect(detail::Connection* c);

  // --- slave (slave.cpp) ----------------------------------------------------------------------
  /// Arms the reconnect timer (every reconnect_interval) while a slave is down.
  void arm_timer() noexcept;
  /// Tries to connect a down slave (section 6 slave step 1). A refused connect is not an error.
  void slave_try_connect(Interface::Impl& i);
  /// Sends the slave's next announcement (INIT acked -> regions -> S2M rings -> M2S rings ->
  /// CONNECT), one per ACK (lock-step, section 4).
  void slave_send_next(detail::Connection* c);
  /// The slave's state machine (section 6): one message from the master on `c` (a slave takes
  /// no fds).
  void slave_message(detail::Connection* c, const wire::Message& m);
  /// The reconnect timer fired: every down slave tries again; the timer stops when none is down.
  void timer_tick();
};

}  // namespace shmlink::memif
