// SPDX-License-Identifier: MIT
/// @file ivshmem_server.hpp
/// @brief The host side of QEMU's ivshmem-doorbell device: a doorbell server speaking QEMU's
/// ivshmem-server protocol (version 0) and a host process joining it as a peer.
///
/// The protocol (QEMU's docs/specs/ivshmem-spec, "ivshmem Client-Server Protocol"): the server
/// listens on a UNIX stream socket; every message it sends is one 8-byte little-endian signed
/// integer, alone or with one file descriptor (SCM_RIGHTS). A new client receives, in order: the
/// protocol version 0; its own id (0..65535); -1 with the shared-memory descriptor; for every
/// other client, that client's id once per vector with the eventfd that interrupts it on that
/// vector; its own id once per vector with the eventfds it is interrupted on. Later the server
/// announces a newcomer to everybody the same way (its id + one eventfd per vector) and a
/// departure as the id alone. Clients never send anything: any byte or end-of-file from a client
/// is its departure. To ring peer P on vector v, a client writes the 8-byte integer 1 to the
/// eventfd it received for (P, v). Design notes: docs/design/ivshmem-server.md; the user guide is
/// docs/vm.md ("The doorbell server") and docs/cli.md (`shmlink ivshmem-server`).
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>
#include <shmlink/region.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace shmlink::ivshmem {

/// The ivshmem-server protocol version spoken (QEMU >= 2.5).
inline constexpr std::int64_t kProtocolVersion = 0;
/// The largest peer id the protocol allows (QEMU rejects larger values).
inline constexpr std::int64_t kMaxPeerId = 65535;
/// Vectors per peer at most (QEMU's contrib server allows 64; eventfds beyond it are closed).
inline constexpr unsigned kMaxVectors = 64;
/// QEMU contrib's default socket path.
inline constexpr const char* kDefaultSocket = "/tmp/ivshmem_socket";

/// What a Server creates and how it serves.
struct ServerSpec {
  /// The listening UNIX stream socket. A stale socket file (nobody listening) is replaced; a
  /// live one is Errc::exists.
  std::string socket_path = kDefaultSocket;
  /// The shared-memory file, created by the server: "/dev/shm/NAME" for a POSIX shm object, or a
  /// file on hugetlbfs. It is a region file (shmlink::Region::open opens it).
  std::string shm_path;
  /// Bytes of shared memory: a power of two of at least 64 KiB (QEMU maps it as BAR2); on
  /// hugetlbfs also a multiple of the huge page size (the file takes whole huge pages).
  std::uint64_t bytes = 4ULL << 20;
  /// Eventfds (interrupt vectors) per peer, 1..kMaxVectors; QEMU's `vectors=` must match.
  unsigned vectors = 1;
  /// Peers served at once, 1..65536; a connection beyond it is closed at once.
  unsigned max_peers = 256;
  /// Mode bits of the shared-memory file and the socket (read/write bits only): 0660 by
  /// default, so that a QEMU running as another user of the file's group can map it and connect.
  mode_t permissions = 0660;
  /// Group of the shared-memory file and the socket; (gid_t)-1 keeps the creator's group.
  gid_t group = static_cast<gid_t>(-1);
  /// Replace an existing file at shm_path (a new inode: those who mapped the old keep it);
  /// false: an existing file is Errc::exists.
  bool replace = false;
  /// Leave the shared-memory file in place when the server stops (default: remove it).
  bool keep_shm = false;
  /// Entries of the region directory formatted into the shared memory.
  std::size_t max_entries = 256;
};

/// The doorbell server: creates the shared memory as a region (its directory formatted before
/// any peer is accepted, flagged as used by other kernels so no channel in it waits on a futex:
/// peers and guests with the driver wait on doorbells, other openers poll), listens
/// on the socket and serves peers (QEMU ivshmem-doorbell devices, shmlink::ivshmem::Peer) with
/// one poll loop on the thread that calls run().
///
/// Ids are the lowest id not in use (0 first); an id is reused only after its peer left and
/// the others were told. A client that sends anything, closes, or does not read its messages
/// (more than 65536 queued) is dropped and announced as gone; the others are not affected.
///
/// Thread safety: run() on one thread at a time; stop(), peer_count() and the accessors from
/// any thread. stop() is async-signal-safe. Move-only; do not move a running server.
class SHMLINK_EXPORT Server {
 public:
  /// Creates the shared memory, formats its region directory and listens on the socket.
  /// @throws Error invalid_argument (bytes not a power of two or under 64 KiB, or on hugetlbfs
  ///         not a multiple of the huge page size; vectors,
  ///         max_peers, permissions, a socket path over 107 bytes), exists (the shm file, or a
  ///         server already listening on the socket), permission, no_space, system; each naming
  ///         the file or socket.
  static Server start(const ServerSpec& spec);

  Server() noexcept;
  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// Stops serving: closes every connection, removes the socket file and (unless keep_shm)
  /// the shared-memory file. Peers that mapped the memory keep their mapping and eventfds.
  ~Server();

  /// Serves until stop() (from another thread or a signal handler); returns at once when stop()
  /// came first. May be called again after it returned.
  /// @throws Error system when poll or accept fail for a reason other than a client's.
  void run();
  /// Asks run() to return (writes to an eventfd; async-signal-safe, thread-safe, noexcept).
  void stop() noexcept;

  /// The listening socket's path.
  [[nodiscard]] const std::string& socket_path() const noexcept;
  /// The shared-memory file's path.
  [[nodiscard]] const std::string& shm_path() const noexcept;
  /// The region in the shared memory (the server's own handle: channels may be created in it).
  [[nodiscard]] Region& region() noexcept;
  /// Peers connected now (racy observer: it may change right after).
  [[nodiscard]] std::size_t peer_count_approx() const noexcept;

  struct Impl;  ///< src/ivshmem/server.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

/// How Peer::connect joins a server.
struct PeerOptions {
  /// Own vectors (eventfds this peer is interrupted on) that connect waits for, 0..kMaxVectors;
  /// the server's `-n`. The server may send more; they are kept up to kMaxVectors.
  unsigned vectors = 1;
  /// How long connect waits for the server's first messages (and its own vectors).
  std::chrono::milliseconds timeout{5000};
  /// Map the shared memory read-write (else read-only).
  bool writable = true;
};

/// Another peer of the server as this peer knows it.
struct PeerInfo {
  std::uint16_t id = 0;  ///< its id (QEMU guests read it as IVPosition)
  unsigned vectors = 0;  ///< vectors announced so far (eventfds received for it)
};

/// A host process joined to an ivshmem server, like QEMU's contrib ivshmem-client: it gets an id,
/// the shared memory and eventfds, rings other peers' vectors and waits on its own.
///
/// Every message from the server is checked (hostile input): a wrong version, an id outside
/// 0..65535, a missing descriptor where one is required, a vector's descriptor that is not an
/// eventfd (checked through /proc when mounted) are Errc::protocol naming the socket;
/// descriptors that come where none is expected, or beyond kMaxVectors, are closed.
///
/// Thread safety: update() from one thread at a time; every other member from any thread, also
/// while update() runs (an internal mutex guards the peer table; neither update() nor wait()
/// holds it while sleeping). Move-only.
class SHMLINK_EXPORT Peer {
 public:
  /// Connects to the server at `socket_path` and reads the version, the id, the shared memory
  /// and the peers announced until `options.vectors` own eventfds have arrived.
  /// @throws Error not_found / permission (the socket), refused-style system errors, protocol
  ///         (the server's messages break the protocol), timeout (they did not come within
  ///         options.timeout), closed (the server hung up, e.g. it is full), layout (an empty
  ///         shared memory); each naming the socket.
  static Peer connect(const std::string& socket_path, const PeerOptions& options = {});

  Peer() noexcept;
  Peer(Peer&&) noexcept;
  Peer& operator=(Peer&&) noexcept;
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  /// Releases this handle. The connection (the server then announces this peer as gone and may
  /// give its id to the next peer), the memory and the eventfds go when no Region from region()
  /// holds them any more.
  ~Peer();

  /// This peer's id.
  [[nodiscard]] std::uint16_t id() const noexcept;
  /// The mapped shared memory (the whole server file).
  [[nodiscard]] std::span<std::byte> memory() const noexcept;
  /// The region in the shared memory, attached with same_kernel false (other peers are VMs).
  /// Its channels wait on doorbells (Region::wait_mode() doorbell): a waiter registers this
  /// peer's id and vector 0 in the region's waiter table and sleeps on fd(0); writers ring the
  /// registered peers through the server's eventfds (docs/vm.md "Waiting: polling and
  /// doorbells"). Without an own vector, or with read-only memory, they poll. The region keeps
  /// this peer alive after the Peer handle is destroyed (`auto r = Peer::connect(s).region();`
  /// works): the connection, and with it this peer's id at the server, its eventfds and memory
  /// stay until the last such Region is gone. Nothing reads the connection without a Peer
  /// handle, so such a region rings the peers known when the handle went.
  /// @throws Error layout when the memory holds no valid region directory.
  [[nodiscard]] Region region() const;
  /// The other peers known now, by ascending id.
  [[nodiscard]] std::vector<PeerInfo> peers() const;
  /// Processes the server's messages: waits up to `timeout` for the first, then takes all that
  /// are ready without waiting.
  /// @return ok (at least one message handled), timeout (none came), closed (the server hung
  ///         up; the known peers stay usable but no joins or leaves arrive any more).
  /// @throws Error protocol naming the socket when the server broke the protocol (the connection
  ///         is closed then; later calls return closed).
  Status update(std::chrono::milliseconds timeout);
  /// The socket to the server, for the caller's poll (readable: call update()); -1 once closed.
  [[nodiscard]] int socket_fd() const noexcept;

  /// Rings `peer` on `vector`: writes 1 to the eventfd the server gave for it.
  /// @return ok; not_found (no such peer); out_of_range (the peer has no such vector); system.
  Status ring(std::uint16_t peer, unsigned vector) noexcept;
  /// Waits up to `timeout` until this peer is rung on `vector`, then consumes every ring pending
  /// on it (several rings before the wait wake it once).
  /// @return ok; timeout; out_of_range (no such own vector); interrupted (a signal); system.
  Status wait(unsigned vector, std::chrono::milliseconds timeout) noexcept;
  /// The eventfd this peer is rung on for `vector` (readable when rung; read 8 bytes to clear),
  /// or -1 when there is no such vector.
  [[nodiscard]] int fd(unsigned vector) const noexcept;
  /// Own vectors received.
  [[nodiscard]] unsigned vectors() const noexcept;

  struct Impl;  ///< src/ivshmem/peer.cpp

 private:
  std::shared_ptr<Impl> impl_;  // shared with the doorbell of every Region from region()
};

}  // namespace shmlink::ivshmem
