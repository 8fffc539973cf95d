/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink/c/interface.h
 * @brief The shmlink C API, the duplex co-simulation interface (shmlink::Interface). A part of
 * shmlink.h: programs include <shmlink.h>, whose top states the conventions every call follows
 * (verbs, return codes, messages, timeouts, thread safety); this part also compiles on its own.
 */
#ifndef SHMLINK_C_INTERFACE_H
#define SHMLINK_C_INTERFACE_H

#include <shmlink/c/queue.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== the duplex co-simulation interface (shmlink::Interface, include/shmlink/interface.hpp)
 *
 * Two queues between two peers, as VILLASnode's shmem node and DPsim use them: each side
 * creates and writes its `out` queue and reads the peer's (`in`); the peer uses the same pair
 * with the names swapped. Either side may start first: shmlink_interface_connect() creates the
 * output and waits, up to attach_timeout_ns, for the peer's. A peer that dies is noticed within
 * liveness_interval_ns (SHMLINK_E_PEER_EXITED) instead of being waited on forever.
 */

/** A duplex link to one peer. */
typedef struct shmlink_interface_s shmlink_interface_t;

/** What an interface speaks (shmlink::InterfaceProtocol). */
#define SHMLINK_PROTOCOL_SHMLINK 0 /**< shmlink's queue files (the default) */
#define SHMLINK_PROTOCOL_VILLAS 1  /**< VILLASnode v1.x shmem regions (out/in are POSIX shm names
                                        such as "/villas-peer-out"; a villas-node is the peer; no
                                        signal table travels: peer_signal_count is 0) */

/** How an interface is set up; initialise with shmlink_interface_spec_init(). The strings are
 *  copied by shmlink_interface_create(). */
typedef struct shmlink_interface_spec_s {
  const char *out;              /**< queue this side creates and writes (name or path) */
  const char *in;               /**< queue this side reads: the peer's `out`; == out: loopback */
  uint32_t capacity;            /**< cells of the output queue, a power of two; default 512 */
  uint32_t max_values;          /**< values per output sample; 0 (default): highest export + 1 */
  uint8_t kind;                 /**< SHMLINK_QUEUE_* of the output queue; default SPSC */
  uint8_t wait;                 /**< SHMLINK_WAIT_* on both queues; default HYBRID (VILLAS: POLLING
                                     makes our region polling, the others pthread) */
  uint8_t protocol;             /**< SHMLINK_PROTOCOL_*; default SHMLINK. Honoured from library
                                     0.3.0 (libshmlink.so.0.3) on: this byte was padding before */
  int64_t attach_timeout_ns;    /**< how long connect waits for the peer; default 10 s; negative: forever */
  int64_t liveness_interval_ns; /**< how often a waiting read/write checks the peer; default
                                     20 ms; values below 1 ms act as 1 ms; negative is invalid */
  int64_t stop_timeout_ns;      /**< on close, how long a launched peer gets before SIGTERM (and as
                                     long again before SIGKILL); default 2 s; negative: forever */
  uint32_t permissions;         /**< file mode bits of the output queue; default 0600 */
  const char *const *exec;      /**< NULL, or a NULL-terminated argv launched by connect (argv[0]
                                     looked up in PATH) with SHMLINK_INTERFACE_IN = out and
                                     SHMLINK_INTERFACE_OUT = in in its environment */
} shmlink_interface_spec_t;

/** What became of the peer, as far as this side knows. */
typedef struct shmlink_peer_status_s {
  int32_t pid;      /**< launched child, else the creator of the peer's queue; 0 before attach */
  int launched;     /**< 1 when this side launched the peer (exec) */
  int exited;       /**< 1 once the peer's lock was seen released or the child was reaped */
  int exit_code;    /**< exit status of a launched peer that exited normally, else -1 */
  int term_signal;  /**< signal that killed a launched peer, else 0 */
  int closed;       /**< 1 when the peer shut its output (a clean close) */
} shmlink_peer_status_t;

/** Fills `spec` with defaults (see the fields); out, in and exec NULL. NULL is accepted. */
SHMLINK_EXPORT void shmlink_interface_spec_init(shmlink_interface_spec_t *spec);
/** Makes an interface handle from `spec`, not yet attached: nothing is created before
 *  shmlink_interface_connect(). `*out` is set on success, NULL on failure.
 *  @return 0, INVALID_ARGUMENT (NULL spec, out, spec->out or spec->in; unknown kind, wait or
 *          protocol; negative liveness interval), NO_SPACE. */
SHMLINK_EXPORT int shmlink_interface_create(const shmlink_interface_spec_t *spec, shmlink_interface_t **out);
/** The older name of shmlink_interface_create. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_interface_create") int shmlink_interface_new(
    const shmlink_interface_spec_t *spec, shmlink_interface_t **out);
/** Registers value `index` of this side's samples (its output signal table). Before connect only.
 *  @param name at most 39 bytes; NULL = "". @param type SHMLINK_SIGNAL_*.
 *  @param unit at most 15 bytes; NULL = "".
 *  @return 0, INVALID_ARGUMENT (index >= SHMLINK_MAX_SAMPLE_VALUES, already exported, bad type,
 *          name or unit too long), CLOSED (already connected). */
SHMLINK_EXPORT int shmlink_interface_export_signal(shmlink_interface_t *iface, uint32_t index, const char *name,
                                                   int type, const char *unit);
/** States what value `index` of the peer's samples must be; checked against the peer's table
 *  at connect (type always; name and unit when not empty). Arguments and codes as export. */
SHMLINK_EXPORT int shmlink_interface_import_signal(shmlink_interface_t *iface, uint32_t index, const char *name,
                                                   int type, const char *unit);
/** Creates the output queue (replacing a stale one whose owner died), launches `exec` if
 *  given, and waits for the peer's output queue with a live owner. Does nothing when connected.
 *  @return 0, INVALID_ARGUMENT (empty names, bad sizes, loopback with exec), EXISTS (`out` is
 *          another live interface's output), TIMEOUT (no peer within attach_timeout_ns; a
 *          launched peer is stopped), PEER_EXITED (a launched peer ended before attaching: the
 *          message gives its exit status or signal), LAYOUT (the peer's table does not match the
 *          imports: the message names the index and both sides), NOT_FOUND (exec: command not
 *          found), NAME_TOO_LONG, PERMISSION, NO_SPACE, SYSTEM.
 *  Thread safety: while no other call runs on the handle. */
SHMLINK_EXPORT int shmlink_interface_connect(shmlink_interface_t *iface);
/** The older name of shmlink_interface_connect. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_interface_connect") int shmlink_interface_open(shmlink_interface_t *iface);
/** @return 1 between a successful connect and disconnect (or close), 0 otherwise,
 *          INVALID_ARGUMENT for NULL. */
SHMLINK_EXPORT int shmlink_interface_is_connected(const shmlink_interface_t *iface);
/** The older name of shmlink_interface_is_connected. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_interface_is_connected") int shmlink_interface_is_open(
    const shmlink_interface_t *iface);
/** Sends values[0..count) as one sample: sequence = shmlink_interface_next_sequence(),
 *  ts_origin = now, flags HAS_SEQUENCE | HAS_DATA | HAS_TS_ORIGIN. Waits while the output is full.
 *  Never allocates.
 *  @param timeout_ns relative ns; negative waits forever; 0 never waits.
 *  @return 0; WOULD_BLOCK (timeout 0 and full; no message recorded); TIMEOUT (still full,
 *          nothing sent); PEER_EXITED (full and the peer is gone: see shmlink_interface_peer);
 *          CLOSED (not connected); SHUT_DOWN (the peer closed cleanly); SIZE_MISMATCH (count >
 *          max_values); INTERRUPTED; INVALID_ARGUMENT (NULL iface, NULL values with count > 0).
 *  Thread safety: one writing thread per handle. */
SHMLINK_EXPORT int shmlink_interface_write_values(shmlink_interface_t *iface, const shmlink_value_t *values,
                                                  uint32_t count, int64_t timeout_ns);
/** Sends `sample` as given (sequence, timestamps and flags included); the next write_values then
 *  carries sample->sequence + 1. Codes and thread safety as shmlink_interface_write_values. */
SHMLINK_EXPORT int shmlink_interface_write(shmlink_interface_t *iface, const shmlink_sample_t *sample,
                                           int64_t timeout_ns);
/** Receives the peer's next sample into `out` (as shmlink_queue_pop: at most out->capacity
 *  values, out->length the real length), with ts_received_ns = now and HAS_TS_RECEIVED set.
 *  Samples the peer wrote before it closed or died are still delivered. Never allocates.
 *  @param timeout_ns relative ns; negative waits forever; 0 never waits.
 *  @return 0; WOULD_BLOCK (timeout 0 and nothing there; no message recorded); TIMEOUT; SHUT_DOWN
 *          (the peer closed and everything was read); CLOSED (this side is not connected);
 *          PEER_EXITED (the peer died and everything it wrote was read); INTERRUPTED;
 *          INVALID_ARGUMENT.
 *  Thread safety: one reading thread per handle (may differ from the writing thread). */
SHMLINK_EXPORT int shmlink_interface_read(shmlink_interface_t *iface, shmlink_sample_t *out, int64_t timeout_ns);
/** Receives up to `count` of the peer's samples into out[0..count) (a burst: as many as are
 *  there), each as shmlink_interface_read fills one; waits up to timeout_ns only while none is
 *  there. Every out[i] is checked before anything is read. Samples already queued are copied
 *  straight from the peer's cells (one wake-up check for the burst). Never allocates.
 *  @return how many were read (1..count; 0 when count is 0), or the codes of
 *          shmlink_interface_read (WOULD_BLOCK when timeout_ns is 0 and nothing is there).
 *  Thread safety: as shmlink_interface_read. Since 0.4. */
SHMLINK_EXPORT int shmlink_interface_read_burst(shmlink_interface_t *iface, shmlink_sample_t *out, size_t count,
                                                int64_t timeout_ns);
/** Ends the link but keeps the handle: shuts the output (the peer drains it, then reads
 *  SHUT_DOWN), stops and reaps a launched peer (stop_timeout_ns, then SIGTERM, then SIGKILL),
 *  removes the output file and releases the lock. The peer status stays readable and connect
 *  may be called again. Idempotent. (Before issue 20 this was shmlink_interface_close.)
 *  @return 0, INVALID_ARGUMENT (NULL). Thread safety: while no other call runs. */
SHMLINK_EXPORT int shmlink_interface_disconnect(shmlink_interface_t *iface);
/** Disconnects the interface if connected (as shmlink_interface_disconnect), then frees the
 *  handle: it must not be used afterwards. NULL is accepted.
 *  Changed in 0.4: up to 0.3 this call only ended the link and kept the handle, which was then
 *  freed by shmlink_interface_destroy. Close now frees the handle, so the 0.3 sequence
 *  `shmlink_interface_close(h); shmlink_interface_destroy(h);` frees it twice (a double free):
 *  to end the link and keep the handle call shmlink_interface_disconnect(h), and free it with
 *  one shmlink_interface_close(h). @return 0. Thread safety: while no other call runs. */
SHMLINK_EXPORT int shmlink_interface_close(shmlink_interface_t *iface);
/** The older name of shmlink_interface_close: disconnects and frees the handle. Never call it
 *  after shmlink_interface_close(), which now frees the handle too (the 0.3 sequence `close(h);
 *  destroy(h);` is a double free): end the link with shmlink_interface_disconnect(h), then
 *  free the handle with shmlink_interface_close(h) alone. */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR(
    "shmlink_interface_close, which now frees the handle: the 0.3 sequence close(h); destroy(h); frees it twice; "
    "end the link with shmlink_interface_disconnect(h) and free it with one shmlink_interface_close(h)") int
shmlink_interface_destroy(shmlink_interface_t *iface);

/** What became of the peer (refreshed by reads, writes, shmlink_interface_peer_alive and
 *  disconnect).
 *  @return 0, INVALID_ARGUMENT (NULL). Thread safety: not while a read or write runs. */
SHMLINK_EXPORT int shmlink_interface_peer(const shmlink_interface_t *iface, shmlink_peer_status_t *out);
/** One line about the peer for people, e.g. "peer 'sim' (pid 4242) exited with status 1", copied
 *  into buf[0..size) and always NUL-terminated when size > 0 (cut when too long; buf may be NULL
 *  when size is 0).
 *  @return the full length of the line without the NUL (>= 0; >= size means it was cut), or
 *          INVALID_ARGUMENT, NO_SPACE. Thread safety: as shmlink_interface_peer. */
SHMLINK_EXPORT int shmlink_interface_peer_describe(const shmlink_interface_t *iface, char *buf, size_t size);
/** Checks now whether the peer is alive. @return 1 alive, 0 not (or not connected), INVALID_ARGUMENT.
 *  Thread safety: not while a read or write runs. */
SHMLINK_EXPORT int shmlink_interface_peer_alive(shmlink_interface_t *iface);
/** Sequence number the next shmlink_interface_write_values will carry; 0 for NULL. */
SHMLINK_EXPORT uint64_t shmlink_interface_next_sequence(const shmlink_interface_t *iface);
/** Header snapshot of the output queue (`out`) after connect. With SHMLINK_PROTOCOL_VILLAS there is no
 *  queue file: only capacity (queuelen), max_values (samplelen), kind (MPMC) and wait are filled,
 *  the rest is 0. @return 0, INVALID_ARGUMENT, CLOSED. */
SHMLINK_EXPORT int shmlink_interface_out_info(const shmlink_interface_t *iface, shmlink_queue_info_t *out);
/** Header snapshot of the peer's queue (`in`) after connect: in.max_values is the buffer size a
 *  read never truncates (with SHMLINK_PROTOCOL_VILLAS: capacity is the peer region's queuelen
 *  (its pool blocks), wait its mode (POLLING for a polling region, HYBRID for a pthread one),
 *  kind MPMC, the rest is 0; since 0.3.0). @return 0, INVALID_ARGUMENT, CLOSED. */
SHMLINK_EXPORT int shmlink_interface_in_info(const shmlink_interface_t *iface, shmlink_queue_info_t *out);
/** Entries of the peer's signal table after connect (>= 0), or INVALID_ARGUMENT for NULL. */
SHMLINK_EXPORT int shmlink_interface_peer_signal_count(const shmlink_interface_t *iface);
/** Copies entry `position` of the peer's signal table. @return 0, OUT_OF_RANGE, INVALID_ARGUMENT. */
SHMLINK_EXPORT int shmlink_interface_peer_signal(const shmlink_interface_t *iface, uint32_t position,
                                                 shmlink_signal_t *out);

#ifdef __cplusplus
}
#endif
#endif /* SHMLINK_C_INTERFACE_H */
