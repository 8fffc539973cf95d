/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink/c/memif.h
 * @brief The shmlink C API, memif packet interfaces, both roles (shmlink::memif). A part of
 * shmlink.h: programs include <shmlink.h>, whose top states the conventions every call follows
 * (verbs, return codes, messages, timeouts, thread safety); this part also compiles on its own.
 */
#ifndef SHMLINK_C_MEMIF_H
#define SHMLINK_C_MEMIF_H

#include <shmlink/c/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== memif: the shared-memory packet interface (shmlink::memif, include/shmlink/memif.hpp)
 *
 * memif protocol 2.0, as spoken by VPP, DPDK's memif PMD and libmemif, in both roles. The shapes
 * follow libmemif 4.0 (docs/reference/memif.md section 14): a socket object holds interfaces; an
 * interface is a master (listens; maps the peer's memory) or a slave (connects; owns the
 * regions, rings and buffers); packets move through buffers reserved with alloc, published with
 * tx_burst, received with rx_burst and handed back with refill.
 *
 * Queues: a slave transmits on S2M rings and receives on M2S rings, a master the other way
 * round; transmit queue `qid` and receive queue `qid` are ring `qid` of their direction. While
 * the link is down there are no queues: queue calls fail with NOT_CONNECTED; a qid beyond the
 * rings of the connection gives OUT_OF_RANGE.
 *
 * Event loop: shmlink_memif_socket_poll() runs every control channel of the socket (accepts,
 * handshakes, DISCONNECT, reconnect timers) and calls on_connect / on_disconnect. Call it
 * whenever shmlink_memif_socket_fd() is readable, or in a loop with a timeout. Received packets
 * are signalled on each receive queue's eventfd (shmlink_memif_rx_fd) in interrupt mode.
 *
 * Thread safety (as the C++ API, libmemif's model, reference section 11):
 * - shmlink_memif_socket_poll(), shmlink_memif_create/close, shmlink_memif_disconnect and
 *   shmlink_memif_socket_close must not run concurrently with each other or with queue calls
 *   (alloc, tx_burst, rx_burst, refill, set_rx_mode, rx_fd, wait_rx) of the socket's interfaces:
 *   a disconnect unmaps the rings.
 * - While nothing polls, different queues may be used from different threads at once; one queue
 *   (one direction and qid) is never used by two threads at once.
 * - Inspection calls (is_connected, get_details, get_counters, get_queue_details, get_region,
 *   last_disconnect) follow the same rule as poll: not concurrently with poll.
 * - shmlink_last_error() is per thread, as everywhere in this API.
 *
 * Callbacks run inside shmlink_memif_socket_poll() (and on_disconnect also inside
 * shmlink_memif_disconnect()), on the calling thread. They may use the interface's queues and
 * inspection calls, but must not poll, destroy the interface or its socket, and must not throw or
 * longjmp (an exception escaping a callback terminates the process).
 *
 * Memory ordering: every byte written into buffers before shmlink_memif_tx_burst() is visible to
 * the peer's shmlink_memif_rx_burst() that returns those buffers (release store of the ring
 * index in tx_burst, acquire load in rx_burst).
 */

/** A memif control socket with its interfaces (libmemif memif_socket_handle_t). */
typedef struct shmlink_memif_socket_s shmlink_memif_socket_t;
/** One memif interface; owned by its socket (libmemif memif_conn_handle_t). */
typedef struct shmlink_memif_s shmlink_memif_t;

/* ---- roles, modes, flags (equal to shmlink::memif's enumerators) --------------------------- */
#define SHMLINK_MEMIF_MASTER 0 /**< listens; maps the slave's memory (libmemif is_master = 1) */
#define SHMLINK_MEMIF_SLAVE 1  /**< connects; creates regions, rings and buffers */

#define SHMLINK_MEMIF_MODE_ETHERNET 0    /**< interface mode ethernet (the default; DPDK's only one) */
#define SHMLINK_MEMIF_MODE_IP 1          /**< interface mode ip */
#define SHMLINK_MEMIF_MODE_PUNT_INJECT 2 /**< interface mode punt/inject */

#define SHMLINK_MEMIF_RX_INTERRUPT 0 /**< the peer writes the queue's eventfd after publishing */
#define SHMLINK_MEMIF_RX_POLLING 1   /**< the peer does not signal (MASK_INT set on the ring) */

/** shmlink_memif_buffer_t.flags bit: the packet continues in the next buffer (descriptor NEXT). */
#define SHMLINK_MEMIF_BUFFER_NEXT 1

/** shmlink_memif_socket_spec_t.reconnect_interval_ms: never retry a refused or lost connection. */
#define SHMLINK_MEMIF_NO_RECONNECT UINT32_MAX

/* ---- limits (reference section 3 and 5) ------------------------------------------------------ */
#define SHMLINK_MEMIF_NAME_MAX 31      /**< longest interface or application name, bytes */
#define SHMLINK_MEMIF_SECRET_MAX 24    /**< longest secret, bytes */
#define SHMLINK_MEMIF_PATH_MAX 107     /**< longest socket path or abstract name, bytes */
#define SHMLINK_MEMIF_MAX_LOG2_RING 14 /**< largest ring: 2^14 slots */

/** Configuration of a socket (libmemif memif_socket_args_t). Zero / NULL fields take the
 *  defaults given per field, so a zeroed struct is valid; shmlink_memif_socket_spec_init() fills
 *  the defaults in explicitly. The strings are copied by shmlink_memif_socket_create(). */
typedef struct shmlink_memif_socket_spec_s {
  const char *path;      /**< filesystem path, or "@name" for an abstract socket; at most
                              SHMLINK_MEMIF_PATH_MAX bytes; NULL or "" = "/run/vpp/memif.sock" */
  const char *app_name;  /**< sent in HELLO (master) or INIT (slave); at most
                              SHMLINK_MEMIF_NAME_MAX bytes; NULL or "" = "shmlink" */
  uint32_t reconnect_interval_ms; /**< a disconnected slave retries its connect this often, ms;
                                       0 = 2000; SHMLINK_MEMIF_NO_RECONNECT = never */
  uint32_t cache_line;   /**< ring layout cache line: 64, or 128 for a libmemif built for
                              aarch64 (reference 9.2); 0 = 64 */
} shmlink_memif_socket_spec_t;
/** The older name of shmlink_memif_socket_spec_t. */
typedef shmlink_memif_socket_spec_t shmlink_memif_socket_args_t;

/** Configuration of one interface (libmemif memif_conn_args_t). Zero / NULL fields take the
 *  defaults given per field, except `role`: 0 is SHMLINK_MEMIF_MASTER.
 *  shmlink_memif_spec_init() fills the C++ defaults (role SLAVE included). The strings are copied
 *  by shmlink_memif_create(). */
typedef struct shmlink_memif_spec_s {
  int role;                   /**< SHMLINK_MEMIF_MASTER (0) or SHMLINK_MEMIF_SLAVE (1) */
  uint32_t id;                /**< interface id, unique per socket (INIT id); 0 is valid */
  const char *name;           /**< interface name, 1..SHMLINK_MEMIF_NAME_MAX bytes; NULL or "" =
                                   "shmlink0" */
  const char *secret;         /**< at most SHMLINK_MEMIF_SECRET_MAX bytes; NULL or "" = none (a
                                   master with a secret refuses slaves without the same one) */
  uint8_t mode;               /**< SHMLINK_MEMIF_MODE_*; 0 = ethernet. A master requires a match */
  uint8_t num_s2m_rings;      /**< slave: S2M rings to create; master: most accepted; 0 = 1 */
  uint8_t num_m2s_rings;      /**< the same for M2S rings; 0 = 1 */
  uint8_t log2_ring_size;     /**< slave: slots per ring as log2, 1..14; 0 = 10 (1024 slots);
                                   master: ignored (the slave decides) */
  uint32_t buffer_size;       /**< slave: bytes per buffer, a multiple of 8, >= 64; 0 = 2048;
                                   master: ignored (taken from the slave's descriptors) */
  int separate_buffer_region; /**< slave: 0 = one region, rings then buffers (VPP/DPDK layout);
                                   non-zero = rings in region 0, buffers in region 1 (libmemif) */
  int rx_mode;                /**< initial mode of every receive queue: SHMLINK_MEMIF_RX_*;
                                   0 = interrupt */
  /** Called inside shmlink_memif_socket_poll() when the link comes up (after CONNECTED); NULL =
   *  none. */
  void (*on_connect)(shmlink_memif_t *iface, void *ctx);
  /** Called when an established link goes down, with the reason (the peer's DISCONNECT text,
   *  "peer closed the control channel", or ours; NUL-terminated, valid during the call); NULL =
   *  none. Not called when the interface or its socket is destroyed. */
  void (*on_disconnect)(shmlink_memif_t *iface, const char *reason, void *ctx);
  void *ctx; /**< passed to both callbacks as is */
} shmlink_memif_spec_t;
/** The older name of shmlink_memif_spec_t. */
typedef shmlink_memif_spec_t shmlink_memif_args_t;

/** One packet buffer in shared memory, from shmlink_memif_alloc (to fill) or
 *  shmlink_memif_rx_burst (to read); layout-identical to shmlink::memif::Buffer (libmemif
 *  memif_buffer_t). A packet larger than one buffer is a chain: every buffer but the last has
 *  SHMLINK_MEMIF_BUFFER_NEXT. */
typedef struct shmlink_memif_buffer_s {
  uint8_t *data;       /**< first byte, in the mapped region; valid until sent (tx) or refilled (rx) */
  uint32_t len;        /**< bytes of packet data in this buffer (tx: preset by alloc; may be
                            lowered, 1..capacity, before tx_burst) */
  uint32_t capacity;   /**< bytes this buffer can hold (tx: from the descriptor; rx: = len) */
  uint16_t flags;      /**< SHMLINK_MEMIF_BUFFER_NEXT, or 0 for the last (or only) buffer */
  uint16_t desc_index; /**< free-running ring index of its descriptor (tx_burst checks it) */
} shmlink_memif_buffer_t;

/** Counters of one queue since the interface was created (all connections added up). */
typedef struct shmlink_memif_queue_counters_s {
  uint64_t packets;         /**< packets sent (transmit queue) or received (receive queue) */
  uint64_t bytes;           /**< bytes of those packets */
  uint64_t bad_descriptors; /**< descriptors the peer wrote that failed a check (dropped) */
  uint64_t dropped_packets; /**< received packets dropped because a descriptor was bad */
  uint64_t clamped_jumps;   /**< peer index jumps larger than possible, clamped */
  uint64_t interrupts_sent; /**< eventfd writes to the peer */
  uint64_t ring_full;       /**< alloc calls that found no free slot */
} shmlink_memif_queue_counters_t;

/** One queue's state (head and tail are a racy snapshot). */
typedef struct shmlink_memif_queue_details_s {
  uint16_t qid;         /**< queue (= ring) index */
  int s2m;              /**< 1: an S2M ring (slave-to-master), 0: M2S */
  int transmit;         /**< 1: this side sends on it */
  uint16_t region;      /**< region holding the ring (while connected) */
  uint32_t offset;      /**< ring offset in that region, bytes (while connected) */
  uint32_t ring_size;   /**< slots; 0 while down */
  uint32_t buffer_size; /**< slave: bytes per buffer; master: 0 (not transmitted); 0 while down */
  uint16_t head;        /**< ring head (slave-written) */
  uint16_t tail;        /**< ring tail (master-written) */
  int mask_int;         /**< 1: MASK_INT set in the ring header */
  int rx_mode;          /**< receive queues: this side's SHMLINK_MEMIF_RX_* */
  shmlink_memif_queue_counters_t counters; /**< counters */
} shmlink_memif_queue_details_t;

/** A mapped region (while connected). */
typedef struct shmlink_memif_region_details_s {
  uint16_t index; /**< region index (ADD_REGION) */
  uint64_t size;  /**< bytes */
  int fd;         /**< the memfd (slave) or the received fd (master); owned by the library */
} shmlink_memif_region_details_t;

/** An interface's state (libmemif memif_details_t). Strings are NUL-terminated, cut to fit. */
typedef struct shmlink_memif_details_s {
  int role;           /**< SHMLINK_MEMIF_MASTER or SHMLINK_MEMIF_SLAVE */
  uint32_t id;        /**< interface id */
  uint8_t mode;       /**< SHMLINK_MEMIF_MODE_* */
  int connected;      /**< 1 while the link is up */
  uint64_t connects;  /**< times the link came up */
  uint16_t tx_queues; /**< queues this side transmits on now (0 while down) */
  uint16_t rx_queues; /**< queues this side receives on now (0 while down) */
  uint16_t tx_queues_configured; /**< transmit queues with counters (get_counters' qid range) */
  uint16_t rx_queues_configured; /**< receive queues with counters and an rx mode */
  uint16_t regions;   /**< regions mapped now (0 while down) */
  char name[32];      /**< our interface name */
  char peer_name[32]; /**< the peer's interface name, once connected */
  char peer_app[32];  /**< the peer's application name */
  char socket[128];   /**< the socket: path or @name */
} shmlink_memif_details_t;

/** Fills `spec` with the defaults: path "/run/vpp/memif.sock", app_name "shmlink", reconnect
 *  every 2000 ms, cache line 64. NULL is accepted. */
SHMLINK_EXPORT void shmlink_memif_socket_spec_init(shmlink_memif_socket_spec_t *spec);
/** The older name of shmlink_memif_socket_spec_init. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_memif_socket_spec_init") void shmlink_memif_socket_args_init(
    shmlink_memif_socket_spec_t *spec);
/** Fills `spec` with the C++ defaults: role SLAVE, id 0, name "shmlink0", no secret, ethernet,
 *  one ring each way, 2^10 slots, 2048-byte buffers, one region, interrupt mode, no callbacks.
 *  NULL is accepted. */
SHMLINK_EXPORT void shmlink_memif_spec_init(shmlink_memif_spec_t *spec);
/** The older name of shmlink_memif_spec_init. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_memif_spec_init") void shmlink_memif_args_init(shmlink_memif_spec_t *spec);

/** Creates a socket object (libmemif memif_create_socket); no fd is opened for the path until an
 *  interface needs it. `*out` is set on success, NULL on failure.
 *  @param spec NULL = every default.
 *  @return 0; INVALID_ARGUMENT (NULL out; app name longer than 31 bytes; cache line not 64 or
 *          128; empty abstract name); NAME_TOO_LONG (path over 107 bytes); NO_SPACE; SYSTEM. */
SHMLINK_EXPORT int shmlink_memif_socket_create(const shmlink_memif_socket_spec_t *spec,
                                               shmlink_memif_socket_t **out);
/** Closes a socket and every interface on it, and frees them (libmemif memif_delete_socket,
 *  but also deleting the interfaces): each connected interface sends DISCONNECT "interface
 *  deleted", all regions are unmapped and a listener file it created is removed. No callback
 *  runs. Every shmlink_memif_t of the socket becomes invalid. NULL is accepted. @return 0. */
SHMLINK_EXPORT int shmlink_memif_socket_close(shmlink_memif_socket_t *sock);
/** The older name of shmlink_memif_socket_close. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_memif_socket_close") int shmlink_memif_socket_destroy(
    shmlink_memif_socket_t *sock);
/** Runs control processing once (libmemif memif_poll_event): accepts, handshakes, messages,
 *  reconnect timers, faults reported by the data path; waits up to `timeout_ms` for an event.
 *  Callbacks run inside. Errors of one connection disconnect that connection (see
 *  shmlink_memif_last_disconnect); they are not returned.
 *  @param timeout_ms milliseconds; negative = wait forever; 0 = do not wait.
 *  @return 0 (something was processed); TIMEOUT (nothing happened: not a failure, no message is
 *          recorded); INTERRUPTED (EINTR); INVALID_ARGUMENT (NULL); NO_SPACE; SYSTEM. */
SHMLINK_EXPORT int shmlink_memif_socket_poll(shmlink_memif_socket_t *sock, int timeout_ms);
/** An fd (epoll) that is readable whenever shmlink_memif_socket_poll() has work, for the
 *  caller's own event loop; owned by the socket.
 *  @return the fd (>= 0), or INVALID_ARGUMENT (NULL). */
SHMLINK_EXPORT int shmlink_memif_socket_fd(const shmlink_memif_socket_t *sock);

/** Adds an interface to `sock` (libmemif memif_create). A master makes the socket listen
 *  (replacing a stale socket file, reference 13.3); a slave starts connecting at once, and a
 *  refused connect is not an error: it is retried every reconnect interval. `*out` is set on
 *  success, NULL on failure.
 *  @return 0; INVALID_ARGUMENT (NULL sock, spec or out; role, mode or rx_mode out of range; name
 *          longer than 31 bytes; secret longer than 24; log2_ring_size above 14; buffer_size
 *          below 64 or not a multiple of 8; a master and a slave on one socket); EXISTS (id
 *          already used on this socket, or another process listens on the path); NOT_FOUND (the
 *          path's directory is missing); PERMISSION; NO_SPACE; SYSTEM. */
SHMLINK_EXPORT int shmlink_memif_create(shmlink_memif_socket_t *sock, const shmlink_memif_spec_t *spec,
                                        shmlink_memif_t **out);
/** Disconnects (DISCONNECT "interface deleted"), removes the interface from its socket and frees
 *  it (libmemif memif_delete); on_disconnect is not called. NULL is accepted.
 *  @return 0; NO_SPACE or SYSTEM when the disconnect failed: then, unlike every other close,
 *          the handle stays valid (close it again, or close its socket). */
SHMLINK_EXPORT int shmlink_memif_close(shmlink_memif_t *iface);
/** The older name of shmlink_memif_close. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_memif_close") int shmlink_memif_destroy(shmlink_memif_t *iface);
/** @return 1 while the link is up (after CONNECTED until a disconnect), 0 otherwise,
 *          INVALID_ARGUMENT for NULL. */
SHMLINK_EXPORT int shmlink_memif_is_connected(const shmlink_memif_t *iface);

/** Reserves transmit buffers for up to `packets` packets of `size` bytes each (libmemif
 *  memif_buffer_alloc): as many whole packets as fit in bufs[0..count_bufs), in the ring and in
 *  `packets`. A packet larger than one buffer takes consecutive buffers, all but the last flagged
 *  SHMLINK_MEMIF_BUFFER_NEXT; each buffer's len is preset to the bytes it should carry. Pass the
 *  reserved buffers to shmlink_memif_tx_burst in reservation order; unsent ones stay reserved.
 *  @param qid transmit queue; @param packets most packets (>= 1); @param size bytes per packet
 *         (>= 1; a master's buffers have the capacity the slave posted).
 *  @param[out] out_count buffers written to bufs (0 on failure).
 *  @return 0 (*out_count > 0); WOULD_BLOCK (ring full: no message recorded; retry after the peer
 *          refills, there is no space event, reference 12); NOT_CONNECTED; OUT_OF_RANGE (qid);
 *          INVALID_ARGUMENT (NULL iface or out_count, NULL bufs with count_bufs > 0, size or
 *          packets 0, one packet needs more than count_bufs buffers); PROTOCOL (the peer posted a
 *          bad descriptor: it is being disconnected). */
SHMLINK_EXPORT int shmlink_memif_alloc(shmlink_memif_t *iface, uint16_t qid, shmlink_memif_buffer_t *bufs,
                                       size_t count_bufs, size_t packets, uint32_t size, size_t *out_count);
/** Publishes reserved buffers (libmemif memif_tx_burst): bufs[0] must be the oldest reserved,
 *  unsent buffer and the rest follow in reservation order (desc_index). Each buffer's len
 *  (1..capacity) and NEXT flag go to its descriptor; then the ring index is stored (release) and
 *  the peer's eventfd written unless it masked interrupts.
 *  @param[out] sent buffers published (a prefix of bufs).
 *  @return 0; INVALID_ARGUMENT (NULL iface or sent, NULL bufs with count > 0, a buffer out of
 *          order or with len 0 or over capacity: nothing from it on is sent); NOT_CONNECTED;
 *          OUT_OF_RANGE. */
SHMLINK_EXPORT int shmlink_memif_tx_burst(shmlink_memif_t *iface, uint16_t qid, const shmlink_memif_buffer_t *bufs,
                                          size_t count, size_t *sent);
/** Receives up to `count` buffers (libmemif memif_rx_burst): one per descriptor, a chain's
 *  buffers flagged SHMLINK_MEMIF_BUFFER_NEXT (a chain may be split over calls). Descriptors are
 *  validated first; a packet with a bad one is dropped and counted. When nothing is there, the
 *  queue's eventfd is drained and the ring checked once more, so epoll on shmlink_memif_rx_fd()
 *  never misses a packet. Buffers stay valid until shmlink_memif_refill() returns them.
 *  @param[out] received buffers written (0 on failure).
 *  @return 0 (*received > 0); WOULD_BLOCK (nothing: no message recorded); NOT_CONNECTED;
 *          OUT_OF_RANGE; PROTOCOL; INVALID_ARGUMENT (NULL iface or received, NULL bufs with
 *          count > 0, count 0). */
SHMLINK_EXPORT int shmlink_memif_rx_burst(shmlink_memif_t *iface, uint16_t qid, shmlink_memif_buffer_t *bufs,
                                          size_t count, size_t *received);
/** Returns the oldest `count` received buffers of receive queue `qid` to the peer (libmemif
 *  memif_refill_queue): a slave re-posts them, a master advances the ring's tail.
 *  @param count buffers; SIZE_MAX = every buffer received so far.
 *  @return 0; NOT_CONNECTED; OUT_OF_RANGE; INVALID_ARGUMENT (NULL). */
SHMLINK_EXPORT int shmlink_memif_refill(shmlink_memif_t *iface, uint16_t qid, size_t count);
/** Sets a receive queue's mode (libmemif memif_set_rx_mode); polling sets MASK_INT on the ring so
 *  the peer stops writing the eventfd. Kept across reconnects; allowed while down.
 *  @param mode SHMLINK_MEMIF_RX_INTERRUPT or SHMLINK_MEMIF_RX_POLLING.
 *  @return 0; OUT_OF_RANGE (qid beyond the receive rings configured); INVALID_ARGUMENT (NULL,
 *          unknown mode). */
SHMLINK_EXPORT int shmlink_memif_set_rx_mode(shmlink_memif_t *iface, uint16_t qid, int mode);
/** The eventfd of receive queue `qid` (libmemif memif_get_queue_efd): readable when the peer
 *  signalled; owned by the library and replaced on every connection.
 *  @return 0 with *fd set; NOT_CONNECTED; OUT_OF_RANGE; INVALID_ARGUMENT (NULL). *fd is -1 on
 *          failure. */
SHMLINK_EXPORT int shmlink_memif_rx_fd(const shmlink_memif_t *iface, uint16_t qid, int *fd);
/** Waits until receive queue `qid` may have packets: returns at once when the ring is not empty,
 *  else blocks on its eventfd (interrupt mode) or spins (polling mode).
 *  @param timeout_ns relative ns; negative = forever; 0 = check once.
 *  @return 0; TIMEOUT; INTERRUPTED; NOT_CONNECTED; OUT_OF_RANGE; INVALID_ARGUMENT (NULL). */
SHMLINK_EXPORT int shmlink_memif_wait_rx(shmlink_memif_t *iface, uint16_t qid, int64_t timeout_ns);
/** Sends DISCONNECT with `reason` and closes the connection; on_disconnect runs inside if the
 *  link was up; a slave reconnects on its timer. Nothing happens while not connected.
 *  @param reason NULL = "disconnected by the application"; the peer sees at most 95 bytes.
 *  @return 0; INVALID_ARGUMENT (NULL iface); NO_SPACE; SYSTEM. */
SHMLINK_EXPORT int shmlink_memif_disconnect(shmlink_memif_t *iface, const char *reason);
/** Copies the reason of the last disconnect or refused handshake ("" if none; e.g. "peer
 *  disconnected: Incorrect secret") into buf[0..size), always NUL-terminated when size > 0 (cut
 *  when too long; buf may be NULL when size is 0), as snprintf.
 *  @return the full length without the NUL (>= 0; >= size means it was cut), or
 *          INVALID_ARGUMENT (NULL iface, NULL buf with size > 0), NO_SPACE. */
SHMLINK_EXPORT int shmlink_memif_last_disconnect(const shmlink_memif_t *iface, char *buf, size_t size);
/** A snapshot of the interface (libmemif memif_get_details, without queues and regions: see
 *  shmlink_memif_get_queue_details and shmlink_memif_get_region).
 *  @return 0; INVALID_ARGUMENT (NULL); NO_SPACE. */
SHMLINK_EXPORT int shmlink_memif_get_details(const shmlink_memif_t *iface, shmlink_memif_details_t *out);
/** Counters of a queue; they survive reconnects and may be read while down.
 *  @param tx non-zero: transmit queue `qid`; 0: receive queue `qid`.
 *  @return 0; OUT_OF_RANGE (qid not below tx_queues_configured / rx_queues_configured);
 *          INVALID_ARGUMENT (NULL); NO_SPACE. */
SHMLINK_EXPORT int shmlink_memif_get_counters(const shmlink_memif_t *iface, int tx, uint16_t qid,
                                              shmlink_memif_queue_counters_t *out);
/** A queue's state and counters (ring fields are 0 while down). Arguments and codes as
 *  shmlink_memif_get_counters. */
SHMLINK_EXPORT int shmlink_memif_get_queue_details(const shmlink_memif_t *iface, int tx, uint16_t qid,
                                                   shmlink_memif_queue_details_t *out);
/** Region `index` as mapped now. @return 0; OUT_OF_RANGE (index not below details.regions, e.g.
 *  while down); INVALID_ARGUMENT (NULL); NO_SPACE. */
SHMLINK_EXPORT int shmlink_memif_get_region(const shmlink_memif_t *iface, uint16_t index,
                                            shmlink_memif_region_details_t *out);

#ifdef __cplusplus
}
#endif
#endif /* SHMLINK_C_MEMIF_H */
