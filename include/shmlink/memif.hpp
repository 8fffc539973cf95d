// SPDX-License-Identifier: MIT
/// @file memif.hpp
/// @brief memif: the shared-memory packet interface of VPP, DPDK and libmemif, protocol 2.0,
/// both roles (docs/design/memif.md; every section number below is in docs/reference/memif.md).
///
/// A `memif::Socket` is one control socket (a filesystem path or an abstract `@name`) with the
/// interfaces on it, selected by id. An interface is a *master* (it listens; the peer's memory is
/// mapped) or a *slave* (it connects; it creates the regions, rings and buffers, section 6). Each
/// interface has queues: a slave transmits on S2M rings and receives on M2S rings, a master the
/// other way round; queue `qid` of either direction is ring `qid` of that direction.
///
/// Threads (libmemif's model, section 11): `Socket::poll` runs every control channel and must
/// not run concurrently with queue calls of its interfaces, because a disconnect unmaps the
/// rings. Different queues may be used from different threads while nothing polls; one queue is
/// never used by two threads at once. Setup calls throw `shmlink::Error`; queue calls are
/// `noexcept` and return a `Status` ("no buffers" and "nothing received" are `would_block`).
///
/// Safety against a lying peer: every descriptor the peer wrote is checked (region index, offset
/// + length inside the mapping, length non-zero and within the buffer) before a byte is touched;
/// index jumps larger than the ring are clamped. Bad descriptors are counted and dropped, and the
/// peer is then disconnected with the reason (section 10, 19). A master accepts only regions
/// sealed against shrinking (unless InterfaceOptions::allow_unsealed_regions) and only eventfds as
/// interrupt fds, never blocks reading a peer's eventfd (writing one, only in a narrow race a
/// hostile peer must win, and then only the tx_burst caller), cuts handshakes that stall or
/// trickle (SocketOptions::handshake_timeout) and backs off when accept() fails;
/// docs/design/memif.md "Trust rules" lists what a peer can and cannot do.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::memif {

/// The socket libmemif and VPP use when none is named (section 3).
inline constexpr std::string_view kDefaultSocket = "/run/vpp/memif.sock";
/// memif protocol version spoken: 2.0 = (2 << 8) | 0 (section 2).
inline constexpr std::uint16_t kProtocolVersion = 0x0200;
/// Largest ring, as log2 of its slots; every peer caps at 14 (section 3).
inline constexpr std::uint8_t kMaxLog2RingSize = 14;
/// Largest secret, bytes (section 5, INIT).
inline constexpr std::size_t kMaxSecret = 24;
/// Largest interface or application name, bytes without the terminating NUL (section 5).
inline constexpr std::size_t kMaxName = 31;

/// Which end of the protocol an interface is (section 6).
enum class Role : std::uint8_t {
  master,  ///< server: listens, maps the slave's memory, writes `tail` (libmemif `is_master`)
  slave,   ///< client: connects, owns regions, rings and buffers, writes `head`
};

/// Interface mode carried in INIT (section 2). DPDK supports only ethernet.
enum class InterfaceMode : std::uint8_t {
  ethernet = 0,
  ip = 1,
  punt_inject = 2,
};

/// How a queue learns of received packets (section 12).
enum class RxMode : std::uint8_t {
  interrupt,  ///< the peer writes the ring's eventfd after publishing (MASK_INT clear)
  polling,    ///< the peer does not signal (this side sets MASK_INT on its receive ring)
};

/// `Buffer::flags` bit: the packet continues in the next buffer (descriptor flag NEXT, section 9.3).
inline constexpr std::uint16_t kBufferNext = 1;

/// One packet buffer in shared memory, handed out by `alloc` (to fill) or `rx_burst` (to read).
/// A packet larger than one buffer is a chain: every buffer but the last has kBufferNext.
struct Buffer {
  std::uint8_t* data = nullptr;  ///< first byte, inside the mapped region; valid until sent/refilled
  std::uint32_t len = 0;         ///< bytes of packet data in this buffer (tx: set it before tx_burst)
  std::uint32_t capacity = 0;    ///< bytes this buffer can hold (tx: from the descriptor; rx: = len)
  std::uint16_t flags = 0;       ///< kBufferNext, or 0 for the last (or only) buffer of a packet
  std::uint16_t desc_index = 0;  ///< free-running ring index of its descriptor (tx_burst checks it)
};

/// Counters of one queue since the interface was created (all connections added up).
struct QueueCounters {
  std::uint64_t packets = 0;          ///< packets sent (tx queue) or received (rx queue)
  std::uint64_t bytes = 0;            ///< bytes of those packets
  std::uint64_t bad_descriptors = 0;  ///< descriptors the peer wrote that failed a check (dropped)
  std::uint64_t dropped_packets = 0;  ///< received packets dropped because a descriptor was bad
  std::uint64_t clamped_jumps = 0;    ///< peer index jumps larger than possible, clamped
  std::uint64_t interrupts_sent = 0;  ///< eventfd writes to the peer
  std::uint64_t ring_full = 0;        ///< alloc calls that found no free slot
};

/// Configuration of a socket (libmemif `memif_socket_args_t`, section 14).
struct SocketOptions {
  /// Filesystem path, or `@name` for an abstract socket (section 13); at most 107 bytes.
  std::string path{kDefaultSocket};
  /// Application name sent in HELLO (master) or INIT (slave); at most 31 bytes.
  std::string app_name = "shmlink";
  /// A disconnected slave retries its connect this often; zero = connect only on request.
  std::chrono::milliseconds reconnect_interval{2000};
  /// Cache-line size of the ring layout: 64, or 128 for libmemif built for aarch64 (section 9.2).
  std::uint32_t cache_line = 64;
  /// Publish this socket and its interfaces in a status file for `shmlink ls`/`info`/`gc`
  /// (`<stream_directory()>/<pid>-<k>.memif.shm`, created with the first interface, removed by
  /// the destructor; see "Status" below and docs/design/memif.md "Status segment"). When the
  /// directory is missing or not writable the socket works without one (logged once). With it,
  /// fd() also turns readable every 100 ms while an interface is up, so a loop that calls
  /// poll() only when fd() is readable keeps the published counters fresh. false = no file,
  /// no timer.
  bool publish_status = true;
  /// Longest wait for the peer's next handshake message (section 6), per stage: a master waits
  /// this long for INIT after HELLO, and again for each ADD_REGION / ADD_RING / CONNECT after its
  /// ACK; a slave for HELLO, each ACK and CONNECTED. A peer that stays silent longer is
  /// disconnected with the reason ("handshake timed out: no INIT within 5000 ms"), which lands in
  /// Interface::last_disconnect() when the connection was bound to an interface; a master's
  /// interface id is then free for the next slave, a slave reconnects after
  /// `reconnect_interval`. The whole handshake, from the connection's accept or connect, must
  /// also be done within twice this ("handshake timed out: not complete within 10000 ms"), so a
  /// peer that sends one valid message just inside each stage's deadline cannot hold an id for
  /// long. Checked by a timerfd in the socket's epoll set (fd() turns readable at a deadline).
  /// Zero = no deadline (a stalled peer holds an id for ever); negative or above one hour is
  /// refused by the Socket constructor (Errc::invalid_argument).
  std::chrono::milliseconds handshake_timeout{5000};
};

class Interface;

/// Configuration of one interface (libmemif `memif_conn_args_t`, section 14).
struct InterfaceOptions {
  Role role = Role::slave;          ///< master or slave
  std::uint32_t id = 0;             ///< interface id, unique per socket (INIT `id`)
  std::string name = "shmlink0";    ///< interface name sent in CONNECT/CONNECTED; <= 31 bytes
  std::string secret;               ///< empty = none; <= 24 bytes; a master then requires it
  InterfaceMode mode = InterfaceMode::ethernet;  ///< sent by a slave; a master requires a match
  std::uint8_t num_s2m_rings = 1;   ///< slave: rings to create; master: most rings accepted (1..255)
  std::uint8_t num_m2s_rings = 1;   ///< the same for master-to-slave rings
  std::uint8_t log2_ring_size = 10; ///< slave: slots per ring, log2 (1..14); master: ignored
  std::uint32_t buffer_size = 2048; ///< slave: bytes per buffer (>= 64); master: ignored (from descriptors)
  /// Slave memory layout (section 10): false = one region, rings then buffers (VPP/DPDK style);
  /// true = rings in region 0, buffers in region 1 (libmemif style).
  bool separate_buffer_region = false;
  /// Master: accept region fds that are not sealed against shrinking (`F_SEAL_SHRINK`).
  /// By default a master refuses them ("region 0 is not sealed against shrinking: refused;
  /// zero-copy peer? see allow_unsealed_regions"): a slave that
  /// can shrink a region after the handshake makes every later access to it raise SIGBUS in
  /// this process. libmemif, DPDK (copy mode) and VPP (copy mode, region 0) seal their memfds;
  /// zero-copy slaves (VPP's default slave mode, DPDK `zero-copy=yes`) send hugepage files,
  /// which cannot be sealed. Set this only for such a peer that you trust not to truncate its
  /// memory: a truncated region then kills this process with SIGBUS. The fd must still be a
  /// regular file at least as large as announced. Slave: ignored.
  bool allow_unsealed_regions = false;
  RxMode rx_mode = RxMode::interrupt;  ///< initial mode of every receive queue
  /// Called by Socket::poll when the link comes up (after CONNECTED).
  std::function<void(Interface&)> on_connect;
  /// Called by Socket::poll when an established link goes down, with the reason (the peer's
  /// DISCONNECT text, "peer closed the control channel", or ours).
  std::function<void(Interface&, std::string_view reason)> on_disconnect;
};

/// A region as mapped by this side (for inspection).
struct RegionDetails {
  std::uint16_t index = 0;  ///< region index (ADD_REGION)
  std::uint64_t size = 0;   ///< bytes
  int fd = -1;              ///< the memfd (slave) or received fd (master)
};

/// One queue's state (for inspection; head/tail are a racy snapshot).
struct QueueDetails {
  std::uint16_t qid = 0;           ///< queue (= ring) index
  bool s2m = false;                ///< ring direction: slave-to-master
  bool transmit = false;           ///< this side sends on it
  std::uint16_t region = 0;        ///< region holding the ring
  std::uint32_t offset = 0;        ///< ring offset in that region, bytes
  std::uint32_t ring_size = 0;     ///< slots
  std::uint32_t buffer_size = 0;   ///< slave: bytes per buffer; master: 0 (not transmitted)
  std::uint16_t head = 0;          ///< ring head (slave-written)
  std::uint16_t tail = 0;          ///< ring tail (master-written)
  bool mask_int = false;           ///< MASK_INT set in the ring header
  RxMode rx_mode = RxMode::interrupt;  ///< receive queues: this side's mode
  QueueCounters counters;          ///< counters
};

/// An interface's state (libmemif `memif_details_t`, section 14).
struct InterfaceDetails {
  Role role = Role::slave;
  std::uint32_t id = 0;
  std::string name;              ///< our interface name
  std::string peer_name;         ///< the peer's interface name (CONNECT/CONNECTED), once connected
  std::string peer_app;          ///< the peer's application name (HELLO/INIT)
  std::string socket;            ///< socket display name (path or @name)
  InterfaceMode mode = InterfaceMode::ethernet;
  bool connected = false;        ///< link up
  std::string last_disconnect;   ///< reason of the last disconnect or refused handshake ("" if none)
  std::uint64_t connects = 0;    ///< number of times the link came up
  std::vector<RegionDetails> regions;  ///< while connected
  std::vector<QueueDetails> tx_queues; ///< while connected
  std::vector<QueueDetails> rx_queues; ///< while connected
};

/// One interface on a Socket. Created by Socket::add_interface, owned by the socket; the
/// reference stays valid until the socket is destroyed or remove_interface is called.
class SHMLINK_EXPORT Interface {
 public:
  Interface(const Interface&) = delete;
  Interface& operator=(const Interface&) = delete;
  ~Interface();

  /// Its configuration.
  [[nodiscard]] const InterfaceOptions& options() const noexcept;
  /// True while the link is up (after CONNECTED until a disconnect).
  [[nodiscard]] bool connected() const noexcept;
  /// Queues this side transmits on (0 while down): slave = S2M rings, master = M2S rings.
  [[nodiscard]] std::uint16_t tx_queues() const noexcept;
  /// Queues this side receives on (0 while down).
  [[nodiscard]] std::uint16_t rx_queues() const noexcept;
  /// The last disconnect reason, or "" (also set by a refused handshake).
  [[nodiscard]] std::string last_disconnect() const;
  /// A snapshot for inspection (regions, rings, counters).
  [[nodiscard]] InterfaceDetails details() const;

  /// Reserves transmit buffers for up to `packets` packets of `size` bytes each (libmemif
  /// `memif_buffer_alloc`): as many whole packets as fit in `bufs`, in the ring and in `packets`.
  /// A packet larger than one buffer takes several consecutive buffers, all but the last flagged
  /// kBufferNext; each buffer's `len` is preset to the bytes it should carry. Reserved buffers
  /// must be passed to tx_burst in reservation order; reserved ones not yet sent stay reserved.
  /// @param qid transmit queue; @param packets most packets to reserve (>= 1);
  /// @param size bytes per packet (>= 1; a master takes each buffer's capacity from the
  ///        descriptor the slave posted, section 11).
  /// @param[out] count buffers written to `bufs` (0 when none).
  /// @return ok (count > 0); would_block (ring full: no space event exists, retry, section 12);
  ///         not_connected; out_of_range (qid); invalid_argument (size or packets 0, or one
  ///         packet needs more buffers than `bufs` holds); protocol (the peer posted a bad
  ///         descriptor: it is being disconnected).
  Status alloc(std::uint16_t qid, std::span<Buffer> bufs, std::size_t packets, std::uint32_t size,
               std::size_t& count) noexcept;

  /// Publishes reserved buffers (libmemif `memif_tx_burst`): `bufs` must start with the oldest
  /// reserved, unsent buffer and follow reservation order (desc_index). Each buffer's `len`
  /// (1..capacity) and kBufferNext are written to its descriptor, then the ring index is stored
  /// with release ordering, and the peer's eventfd is written unless it masked interrupts (a
  /// write skipped when the eventfd is full; a hostile peer that clears its O_NONBLOCK and fills
  /// it in the instant between that check and the write blocks this call until it reads it:
  /// docs/design/memif.md "Trust rules").
  /// Memory ordering: every byte written to the buffers before this call happens-before the
  /// peer's rx_burst that returns them (release store of head/tail here, acquire load there).
  /// @param[out] sent buffers published (a prefix of `bufs`).
  /// @return ok; invalid_argument (out of order, or a len of 0 or over capacity: nothing from
  ///         that buffer on is sent); not_connected; out_of_range.
  Status tx_burst(std::uint16_t qid, std::span<const Buffer> bufs, std::size_t& sent) noexcept;

  /// Receives buffers (libmemif `memif_rx_burst`): one Buffer per descriptor, a chain's buffers
  /// flagged kBufferNext; a chain may be split over calls. Each descriptor is validated first;
  /// a packet with a bad descriptor is dropped whole and counted. When it finds nothing in
  /// interrupt mode, it drains the queue's eventfd and looks once more, so epoll on rx_fd() never
  /// misses a packet; in polling mode it makes no syscall.
  /// Received buffers stay valid until refill() returns them.
  /// Memory ordering: pairs with the peer's release store of head (S2M) or tail (M2S).
  /// @param[out] received buffers written.
  /// @return ok (received > 0); would_block (nothing); not_connected; out_of_range; protocol.
  Status rx_burst(std::uint16_t qid, std::span<Buffer> bufs, std::size_t& received) noexcept;

  /// Returns the oldest `count` received buffers to the peer (libmemif `memif_refill_queue`):
  /// a slave re-posts them as empty buffers, a master advances `tail`. SIZE_MAX = all received.
  /// Dropped bad descriptors are returned along with the buffers around them.
  /// @return ok; not_connected; out_of_range.
  Status refill(std::uint16_t qid, std::size_t count = SIZE_MAX) noexcept;

  /// Sets a receive queue's mode (libmemif `memif_set_rx_mode`): polling sets MASK_INT in the
  /// ring, so the peer stops writing the eventfd. Kept across reconnects.
  /// @return ok; out_of_range (qid beyond num rings configured).
  Status set_rx_mode(std::uint16_t qid, RxMode mode) noexcept;

  /// The eventfd of receive queue `qid` (readable when the peer signalled), for the caller's own
  /// epoll; -1 while down or out of range. It changes on every connection.
  [[nodiscard]] int rx_fd(std::uint16_t qid) const noexcept;

  /// Waits until receive queue `qid` may have packets: returns at once when the ring is not
  /// empty, else blocks on its eventfd (interrupt mode) or spins (polling mode).
  /// @param timeout ns; negative = forever (so is any timeout too long to add to the clock, e.g. nanoseconds::max()).
  /// @return ok; timeout; interrupted (EINTR); not_connected; out_of_range.
  Status wait_rx(std::uint16_t qid, std::chrono::nanoseconds timeout) noexcept;

  /// Sends DISCONNECT with `reason` and closes the connection (a slave reconnects on its timer).
  void disconnect(std::string_view reason = "disconnected by the application");

  /// The socket this interface belongs to.
  [[nodiscard]] class Socket& socket() const noexcept;

  struct Impl;

 private:
  friend class Socket;
  friend struct InterfaceAccess;
  explicit Interface(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// A memif control socket with its interfaces (libmemif `memif_socket_handle_t`, section 14).
/// Move-only, not thread-safe (see the file comment). Destroying it disconnects every interface
/// (DISCONNECT sent), unmaps all regions and removes a filesystem listener it created and its
/// status file (SocketOptions::publish_status).
class SHMLINK_EXPORT Socket {
 public:
  /// Creates the socket object; no fd is opened until an interface needs one.
  /// @throws Error invalid_argument (bad path, app name too long, cache line not 64 or 128,
  /// handshake_timeout negative or above one hour).
  explicit Socket(SocketOptions options);
  Socket(Socket&&) noexcept;
  Socket& operator=(Socket&&) noexcept;
  ~Socket();

  /// Adds an interface. A master interface makes the socket listen (VPP's stale-file probe,
  /// section 13.3); a slave interface starts connecting at once (a refused connect is not an
  /// error: it is retried every reconnect_interval). The first interface also creates the
  /// socket's status file (SocketOptions::publish_status; failing to create it is not an error).
  /// @throws Error invalid_argument (options out of range, names too long, both roles on one
  ///         socket), exists (id already used here, or an active listener on the path),
  ///         not_found (directory missing), permission.
  Interface& add_interface(InterfaceOptions options);

  /// Disconnects and destroys an interface of this socket.
  void remove_interface(Interface& iface);

  /// Runs control processing once (libmemif `memif_poll_event`): accepts, handshakes, messages,
  /// reconnect timers, faults reported by the data path. Waits up to `timeout` for an event.
  /// Callbacks run inside. Errors of one connection disconnect that connection; they are not
  /// thrown.
  /// @param timeout negative = wait forever (so is any timeout too long to add to the clock, e.g.
  ///        milliseconds::max()); zero = do not wait.
  /// @return ok (something was processed); timeout (nothing happened); interrupted (EINTR).
  Status poll(std::chrono::milliseconds timeout);

  /// An fd that is readable whenever poll() has work (an epoll fd over every control fd), for
  /// the caller's own event loop.
  [[nodiscard]] int fd() const noexcept;

  /// Socket display name: the path, or @name.
  [[nodiscard]] std::string name() const;
  /// Its configuration.
  [[nodiscard]] const SocketOptions& options() const noexcept;
  /// Its interfaces, in creation order.
  [[nodiscard]] std::vector<Interface*> interfaces() const;
  /// The status file this socket publishes, or "" when none (publish_status false, no
  /// interface added yet, or the directory was not writable).
  [[nodiscard]] std::string status_file() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- Status: what `shmlink ls`/`info`/`gc` show ------------------------------------------------
//
// Every Socket (unless SocketOptions::publish_status is false) publishes itself and its
// interfaces in a small file of shmlink's own format in the stream directory,
// `<dir>/<pid>-<k>.memif.shm` (docs/design/memif.md "Status segment"). The owning process holds
// flock(LOCK_EX) on it for the socket's whole life, so a reader tells a live owner from a dead
// one (SIGKILL leaves the file behind) without trusting pids. Records are refreshed at every state
// change and their counters at most every 100 ms, by the thread that calls Socket::poll. A file
// holds at most 64 interfaces; further interfaces of one socket are counted in `overflow` and
// not published. These functions only read such files (and remove stale ones); they never touch
// a socket.

/// What an interface's link is doing.
enum class LinkState : std::uint8_t {
  idle,        ///< down and not trying: a slave with reconnect_interval 0, or a master not listening
  listening,   ///< a master waiting for its slave
  connecting,  ///< a slave that is down and retries its connect every reconnect_interval
  handshake,   ///< a control connection exists and the handshake runs (or was just refused)
  connected,   ///< the link is up
};

/// "idle", "listening", "connecting", "handshake", "connected" ("unknown" for other values).
SHMLINK_EXPORT const char* link_state_name(LinkState state) noexcept;

/// "master" for Role::master, "slave" for every other value (the names the memif protocol and
/// libmemif use); a static string.
SHMLINK_EXPORT const char* role_name(Role role) noexcept;

/// One published interface (a record of a status file).
struct InterfaceStatus {
  std::uint32_t id = 0;                          ///< interface id
  Role role = Role::slave;                       ///< master or slave
  InterfaceMode mode = InterfaceMode::ethernet;  ///< interface mode
  LinkState state = LinkState::idle;             ///< the link's state at the last update
  std::string name;             ///< our interface name
  std::string peer_name;        ///< the peer's interface name ("" before the link came up)
  std::string peer_app;         ///< the peer's application name ("" before the handshake)
  std::string last_disconnect;  ///< reason of the last disconnect or refusal ("" if none), at most 127 bytes
  std::uint64_t connects = 0;   ///< times the link came up
  std::uint16_t tx_queues = 0;  ///< queues this side transmits on (0 while down)
  std::uint16_t rx_queues = 0;  ///< queues this side receives on (0 while down)
  std::uint32_t ring_size = 0;  ///< slots per ring of the current connection (0 while down)
  std::uint32_t buffer_size = 0;  ///< bytes per buffer (slave; 0 for a master, which is never told)
  std::uint64_t tx_packets = 0;       ///< packets sent, all tx queues and connections added up
  std::uint64_t tx_bytes = 0;         ///< bytes of those packets
  std::uint64_t rx_packets = 0;       ///< packets received, all rx queues and connections added up
  std::uint64_t rx_bytes = 0;         ///< bytes of those packets
  std::uint64_t bad_descriptors = 0;  ///< descriptors from the peer that failed a check (dropped)
  std::uint64_t dropped_packets = 0;  ///< received packets dropped because of a bad descriptor
  std::uint64_t clamped_jumps = 0;    ///< peer index jumps larger than possible, clamped
  std::uint64_t ring_full = 0;        ///< alloc calls that found no free slot
  std::uint64_t interrupts_sent = 0;  ///< eventfd writes to the peer
  std::int64_t updated_ns = 0;  ///< when the owner last wrote the record, ns since the epoch
  /// The record stayed mid-update for every retry (an owner killed while writing it): the
  /// fields may mix two updates.
  bool torn = false;
};

/// One status file: a socket of some process, or why the file could not be read.
struct SocketStatus {
  std::string file;            ///< the status file's path
  std::string error;           ///< why the file could not be read ("" when it was); the rest is then empty
  Errc error_code = Errc::ok;  ///< that error's condition (layout for a bad file)
  std::int32_t pid = 0;        ///< the owning process, as its own pid namespace numbers it
  std::uint64_t start_time_ticks = 0;  ///< the owner's start time, clock ticks after boot (/proc/PID/stat field 22)
  /// True while the owner holds the file's lock (it is running; a forked child that did not
  /// exec holds it too); false once it is gone, also after SIGKILL (a stale file).
  bool alive = false;
  std::string socket;          ///< socket display name: an absolute path, or @name
  std::string app_name;        ///< the socket's application name
  std::optional<Role> role;    ///< the socket's role; empty before its first interface
  std::int64_t created_ns = 0; ///< when the file was created, ns since the epoch
  std::uint32_t overflow = 0;  ///< interfaces of the socket not published (records full)
  std::vector<InterfaceStatus> interfaces;  ///< published interfaces, in record order
};

/// Reads one status file. Maps it read-only, checks it (magic, layout version, header and
/// record sizes, capacity against the file size) before reading a record, probes the owner's
/// lock (flock LOCK_SH|LOCK_NB, released at once), and copies every record in use under its
/// seqlock.
/// Memory ordering: the acquire load of `version` pairs with the creator's release store (the
/// header is complete); each record copy is validated by the seqlock (acquire load of `seq`,
/// relaxed payload loads, acquire fence, second load; pairs with the writer's release fence
/// and release store), so a record is never a mix of two updates unless `torn` says so.
/// @param file path of a `*.memif.shm` file.
/// @throws Error naming the file: not_found / permission / system (open, fstat, mmap); layout
///         (not a regular file, smaller than the header, no "SHMLMIF" magic, version not 1,
///         header or record size not this layout's, capacity over 4096, file shorter than its
///         header describes).
SHMLINK_EXPORT SocketStatus read_socket_status(const std::string& file);

/// Reads every `*.memif.shm` file of `directory` (empty = stream_directory()), sorted by file
/// name. A file that cannot be read is listed with `error` and `error_code` set instead of
/// failing the call; a file removed between the listing and the read is skipped.
/// @throws Error naming the directory when it cannot be listed (not_found, permission, system).
SHMLINK_EXPORT std::vector<SocketStatus> list_socket_status(const std::string& directory = {});

/// Removes the status file `file` when its owner is gone (nobody holds its lock); the file's
/// identity is checked again just before the unlink, so a file that replaced it meanwhile stays.
/// A file that is not a valid status file is left alone.
/// @return true when removed; false when the owner is alive, the file is not a status file, or
///         it vanished meanwhile.
/// @throws Error naming the file when the unlink fails (permission, system).
SHMLINK_EXPORT bool remove_socket_status_if_stale(const std::string& file);

/// remove_socket_status_if_stale() on every `*.memif.shm` file of `directory` (empty =
/// stream_directory()). @return how many were removed.
/// @throws Error naming the directory or file (listing, unlink).
SHMLINK_EXPORT std::size_t remove_stale_socket_status(const std::string& directory = {});

/// Short static description of a memif condition; same as shmlink::strerror.
inline const char* strerror(Errc e) noexcept { return shmlink::strerror(e); }

}  // namespace shmlink::memif
