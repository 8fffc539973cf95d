/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink.h
 * @brief The shmlink C API: ImageStreamIO 2.00-compatible streams, sample queues, regions that
 * hold many of them in one mapping, the duplex co-simulation interface and memif packet
 * interfaces from C.
 *
 * One convention for every object (stream, queue, region, interface, memif socket and interface):
 * - `shmlink_<object>_create(...)` and `shmlink_<object>_open(...)` set `*out` to a new handle,
 *   or to NULL when they fail. A stream, queue or region is created (its file made) or opened (an
 *   existing file mapped); the channels of a region are created and opened through it
 *   (shmlink_region_create_stream & co.); an interface is created unattached
 *   (shmlink_interface_connect() attaches it to its peer); a memif socket is created, and
 *   interfaces are created on it.
 * - `shmlink_<object>_close(h)` releases everything the handle holds (mapping, claimed semaphore
 *   slot, connection, the interface's output queue and launched peer) and frees the handle; it
 *   must not be used afterwards. NULL is a no-op. A stream, queue or region file stays.
 * - `shmlink_<object>_destroy(name)` removes the named file of a stream, queue or region; it takes
 *   a name, not a handle, and handles open on it keep working on the unlinked file.
 *   shmlink_stream_remove and shmlink_queue_remove are the same calls under their older names;
 *   shmlink_region_remove(region, name) removes a channel from a region.
 * - What create needs is a `shmlink_<object>_spec_t`, filled with the defaults by
 *   `shmlink_<object>_spec_init()`; what an opener expects of a queue is a `shmlink_queue_expect_t`.
 * - Every struct, union and enum tag is its typedef name with `_s` for `_t` (as libuv does), so no
 *   tag shares a name with a function (`shmlink_queue_info()`). Use the `_t` names.
 * - Names kept for programs written against older headers are marked SHMLINK_DEPRECATED_FOR (a
 *   compiler warning that names the replacement; define SHMLINK_NO_DEPRECATION_WARNINGS to
 *   silence it) and keep their old meaning: shmlink_interface_new (= create),
 *   shmlink_interface_open (= connect), shmlink_interface_is_open (= is_connected),
 *   shmlink_interface_destroy (= close), shmlink_memif_socket_destroy and shmlink_memif_destroy
 *   (= their close), shmlink_memif_socket_args_init and shmlink_memif_args_init (= their
 *   spec_init), and the types shmlink_memif_socket_args_t and shmlink_memif_args_t. Two calls
 *   changed meaning (programs built against an older header must be rebuilt, docs/c-api.md
 *   "ABI"): shmlink_interface_close now frees the handle (the old close is
 *   shmlink_interface_disconnect) and shmlink_stream_destroy now takes a name.
 *
 * Calls and messages (Aeron-style):
 * - Every call returns an `int`: 0 (SHMLINK_OK) or a negative SHMLINK_E_* code; calls that
 *   return an index return it as a non-negative int. The codes equal `shmlink::Errc`.
 * - `shmlink_strerror(code)` returns a static string; `shmlink_last_error()` returns this
 *   thread's message for the last failed call, naming the resource ("opening
 *   /dev/shm/wfs.im.shm: version '1.04' is not '2.00'").
 * - No call aborts or exits; C++ exceptions never cross this boundary.
 * - Shapes are in ISIO order: shape[0] is the fastest axis (x). Times are ns since the epoch
 *   (CLOCK_REALTIME). Timeouts are relative ns on CLOCK_MONOTONIC; negative = wait forever.
 *
 * Thread safety: a stream handle may be used by many reader threads at once; one writer at a
 * time. A queue or interface handle serves one pushing/writing thread and one popping/reading
 * thread at a time (as the C++ Queue and Interface; the popping side of a queue handle and both
 * sides of an interface handle keep a scratch sample inside it); see there.
 * memif sockets and interfaces follow libmemif's model (see the memif section).
 */
#ifndef SHMLINK_H
#define SHMLINK_H

#include <shmlink/export.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a name kept for programs written against an older header (see the conventions above). */
#if !defined(SHMLINK_NO_DEPRECATION_WARNINGS) && defined(__GNUC__)
#define SHMLINK_DEPRECATED_FOR(replacement) __attribute__((deprecated("use " replacement)))
#else
#define SHMLINK_DEPRECATED_FOR(replacement)
#endif

/* ---- error codes (append-only; equal to shmlink::Errc) ---------------------------------- */
#define SHMLINK_OK 0
#define SHMLINK_E_INVALID_ARGUMENT (-1)
#define SHMLINK_E_NOT_FOUND (-2)
#define SHMLINK_E_EXISTS (-3)
#define SHMLINK_E_PERMISSION (-4)
#define SHMLINK_E_LAYOUT (-5)
#define SHMLINK_E_NO_SPACE (-6)
#define SHMLINK_E_SYSTEM (-7)
#define SHMLINK_E_TIMEOUT (-8)
#define SHMLINK_E_INTERRUPTED (-9)
#define SHMLINK_E_WOULD_BLOCK (-10)
#define SHMLINK_E_SIZE_MISMATCH (-11)
#define SHMLINK_E_CLOSED (-12)
#define SHMLINK_E_OUT_OF_RANGE (-13)
#define SHMLINK_E_NAME_TOO_LONG (-14)
#define SHMLINK_E_DTYPE_MISMATCH (-15)
#define SHMLINK_E_BUSY (-16)
#define SHMLINK_E_PEER_EXITED (-17)
#define SHMLINK_E_SHUT_DOWN (-18)
#define SHMLINK_E_TORN (-100)
#define SHMLINK_E_WRITER_ACTIVE (-101)
#define SHMLINK_E_REPLACED (-102)
#define SHMLINK_E_OVERWRITTEN (-103)
#define SHMLINK_E_INCOMPLETE (-104)
#define SHMLINK_E_NOT_CONNECTED (-150)
#define SHMLINK_E_PROTOCOL (-151)
#define SHMLINK_E_REFUSED (-152)

/* ---- datatypes (ISIO codes, reference section 6) ---------------------------------------- */
#define SHMLINK_DTYPE_U8 1
#define SHMLINK_DTYPE_I8 2
#define SHMLINK_DTYPE_U16 3
#define SHMLINK_DTYPE_I16 4
#define SHMLINK_DTYPE_U32 5
#define SHMLINK_DTYPE_I32 6
#define SHMLINK_DTYPE_U64 7
#define SHMLINK_DTYPE_I64 8
#define SHMLINK_DTYPE_F32 9
#define SHMLINK_DTYPE_F64 10
#define SHMLINK_DTYPE_C64 11
#define SHMLINK_DTYPE_C128 12
#define SHMLINK_DTYPE_F16 13

/** Open modes, as shmlink::OpenMode. */
typedef enum shmlink_open_mode_s {
  SHMLINK_EXCLUSIVE_CREATE = 0, /**< create; SHMLINK_E_EXISTS if present */
  SHMLINK_PURGE_AND_CREATE = 1, /**< create, atomically replacing an existing file (new inode) */
  SHMLINK_OPEN_OR_CREATE = 2,   /**< open if present, else create */
  SHMLINK_OPEN_EXISTING = 3     /**< open; SHMLINK_E_NOT_FOUND if absent */
} shmlink_open_mode_t;

/** An open stream. */
typedef struct shmlink_stream_s shmlink_stream_t;

/** Parameters of a new stream; initialise with shmlink_stream_spec_init(). */
typedef struct shmlink_stream_spec_s {
  uint32_t naxis;           /**< 1..3 */
  uint32_t shape[3];        /**< ISIO order, shape[0] fastest; unused axes 0 */
  uint8_t dtype;            /**< SHMLINK_DTYPE_* */
  uint16_t keywords;        /**< keyword slots (NBkw) */
  uint16_t semaphores;      /**< semaphore slots, default 10 */
  uint64_t imagetype;       /**< ISIO imagetype bits, default MATH_DATA (2) */
  uint32_t circular_buffer; /**< CBsize, default 0 */
  uint32_t permissions;     /**< file mode bits, default 0600 */
  const char *version;      /**< version string, NULL = "2.00" */
} shmlink_stream_spec_t;

/** Counters and times of one frame. */
typedef struct shmlink_frame_info_s {
  uint64_t cnt0, cnt1, cnt2;
  int64_t atime_ns;     /**< acquisition time, ns since the epoch */
  int64_t writetime_ns; /**< publication time, ns since the epoch */
} shmlink_frame_info_t;

/** Geometry of a stream. */
typedef struct shmlink_stream_geometry_s {
  uint32_t naxis;
  uint32_t shape[3];   /**< ISIO order; unused axes 0 */
  uint8_t dtype;       /**< SHMLINK_DTYPE_* */
  uint64_t nelement;   /**< elements per frame */
  size_t frame_bytes;  /**< bytes per frame */
  int semaphores;      /**< semaphore slots */
  int keyword_slots;   /**< keyword slots */
} shmlink_stream_geometry_t;

/** Keyword types, as ISIO stores them. */
typedef enum shmlink_keyword_type_s {
  SHMLINK_KW_INT = 'L',    /**< int64 */
  SHMLINK_KW_DOUBLE = 'D', /**< double */
  SHMLINK_KW_STRING = 'S'  /**< string, at most 16 bytes */
} shmlink_keyword_type_t;

/** A keyword value read back. */
typedef struct shmlink_keyword_s {
  char name[16];
  char type; /**< 'L', 'D' or 'S' */
  int64_t i;
  double d;
  char s[17]; /**< a string value: up to 16 bytes (ISIO's field holds 16), NUL-terminated */
  char comment[80];
} shmlink_keyword_t;

/** Static description of an error code; never NULL. */
SHMLINK_EXPORT const char *shmlink_strerror(int code);
/** This thread's message for the last failed call ("" if none). Valid until the next call. */
SHMLINK_EXPORT const char *shmlink_last_error(void);

/** Fills `spec` with defaults: 10 semaphores, MATH_DATA, 0600, version "2.00", f32. */
SHMLINK_EXPORT void shmlink_stream_spec_init(shmlink_stream_spec_t *spec);

/** Creates a stream (see shmlink::Stream::create). `*out` is set on success, NULL on failure.
 *  @param mode a shmlink_open_mode_t value (an int so that any value a C caller passes is defined).
 *  @return 0, INVALID_ARGUMENT (also for NULL arguments), NAME_TOO_LONG, EXISTS, NOT_FOUND
 *          (OPEN_EXISTING, or a missing directory), LAYOUT (OPEN_OR_CREATE on a bad file),
 *          PERMISSION, NO_SPACE, SYSTEM. */
SHMLINK_EXPORT int shmlink_stream_create(const char *name, const shmlink_stream_spec_t *spec, int mode,
                                         shmlink_stream_t **out);
/** Opens and validates an existing stream.
 *  @return 0, INVALID_ARGUMENT, NAME_TOO_LONG, NOT_FOUND, PERMISSION, LAYOUT, SYSTEM. */
SHMLINK_EXPORT int shmlink_stream_open(const char *name, shmlink_stream_t **out);
/** Releases the handle: unmaps the stream, gives back a semaphore slot it claimed, frees it. The
 *  file stays. NULL is accepted. @return 0. */
SHMLINK_EXPORT int shmlink_stream_close(shmlink_stream_t *stream);
/** Removes a stream file by name or path; handles open on it keep working on the unlinked file.
 *  (Before issue 20 this call took a handle, closed it and removed its file.)
 *  @return 0, NOT_FOUND, PERMISSION, INVALID_ARGUMENT, NAME_TOO_LONG. */
SHMLINK_EXPORT int shmlink_stream_destroy(const char *name);
/** The same as shmlink_stream_destroy (its older name). */
SHMLINK_EXPORT int shmlink_stream_remove(const char *name);

/** Geometry of an open stream. */
SHMLINK_EXPORT int shmlink_stream_geometry(const shmlink_stream_t *stream, shmlink_stream_geometry_t *out);

/** Publishes one frame of exactly frame_bytes bytes (writer protocol, reference 11.2).
 *  @param atime_ns acquisition time to store; negative = now. @return 0, SIZE_MISMATCH, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_write(shmlink_stream_t *stream, const void *data, size_t bytes, int64_t atime_ns);
/** Copies the current frame, seqlock-validated. `info` may be NULL.
 *  @return 0, SIZE_MISMATCH, TORN, WRITER_ACTIVE, CLOSED; LAYOUT for a rolling buffer whose cnt1
 *  names no slice (cnt1 >= depth: the newest frame is unknown; the message gives the values). */
SHMLINK_EXPORT int shmlink_stream_read_copy(const shmlink_stream_t *stream, void *out, size_t bytes,
                                            shmlink_frame_info_t *info);
/** Zero-copy, UNVALIDATED pointer to the current frame and its size. @return 0, CLOSED; LAYOUT for
 *  a rolling buffer whose cnt1 names no slice (as shmlink_stream_read_copy). */
SHMLINK_EXPORT int shmlink_stream_view(const shmlink_stream_t *stream, const void **data, size_t *bytes);
/** Counters and times of the current frame (racy snapshot). */
SHMLINK_EXPORT int shmlink_stream_frame_info(const shmlink_stream_t *stream, shmlink_frame_info_t *info);
/** cnt0 (acquire); 0 for NULL. */
SHMLINK_EXPORT uint64_t shmlink_stream_cnt0(const shmlink_stream_t *stream);

/** Waits until cnt0 != last_cnt0 by futex (spin first); for writers that only post the in-file
 *  semaphores (ImageStreamIO, milk) also on a semaphore slot the handle claims and keeps until
 *  close (C++ Stream::wait_futex). @return 0, TIMEOUT, INTERRUPTED, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_wait_futex(const shmlink_stream_t *stream, uint64_t last_cnt0,
                                             int64_t timeout_ns, uint64_t *cnt0_out);
/** Waits until cnt0 != last_cnt0 by spinning. @return 0, TIMEOUT, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_wait_spin(const shmlink_stream_t *stream, uint64_t last_cnt0,
                                            int64_t timeout_ns, uint64_t *cnt0_out);

/** Claims a semaphore slot (CAS on semReadPID). @return the index (>= 0); BUSY (every slot held by
 *  a live process); OUT_OF_RANGE (the stream has no semaphore slots); CLOSED. */
SHMLINK_EXPORT int shmlink_stream_claim_semaphore(shmlink_stream_t *stream, int preferred);
/** Waits on semaphore slot `index`. @return 0, TIMEOUT, INTERRUPTED, OUT_OF_RANGE, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_sem_wait(const shmlink_stream_t *stream, int index, int64_t timeout_ns);
/** Drains slot `index` (-1: all). @return the number of posts removed (>= 0) or an error. */
SHMLINK_EXPORT int shmlink_stream_sem_flush(const shmlink_stream_t *stream, int index);
/** Gives a slot claimed by this process back. @return 0, OUT_OF_RANGE, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_release_semaphore(shmlink_stream_t *stream, int index);
/** Takes one post from slot `index` without blocking. @return 0, WOULD_BLOCK, OUT_OF_RANGE, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_sem_trywait(const shmlink_stream_t *stream, int index);
/** Posts slot `index` (capped at 10), or every slot and semlog when -1, as ImageStreamIO_sempost.
 *  @return 0, OUT_OF_RANGE, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_sem_post(shmlink_stream_t *stream, int index);
/** Current value of slot `index` (>= 0), or OUT_OF_RANGE. */
SHMLINK_EXPORT int shmlink_stream_sem_value(const shmlink_stream_t *stream, int index);

/** Sets an int64 keyword. @return 0, INVALID_ARGUMENT (empty name), NAME_TOO_LONG, OUT_OF_RANGE, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_set_keyword_int(shmlink_stream_t *stream, const char *name, int64_t value,
                                                  const char *comment);
/** Sets a double keyword. */
SHMLINK_EXPORT int shmlink_stream_set_keyword_double(shmlink_stream_t *stream, const char *name, double value,
                                                     const char *comment);
/** Sets a string keyword (value at most 16 bytes, as ImageStreamIO stores them). */
SHMLINK_EXPORT int shmlink_stream_set_keyword_string(shmlink_stream_t *stream, const char *name,
                                                     const char *value, const char *comment);
/** Reads keyword `name`. @return 0, NOT_FOUND, CLOSED. */
SHMLINK_EXPORT int shmlink_stream_get_keyword(const shmlink_stream_t *stream, const char *name,
                                              shmlink_keyword_t *out);

/* ==== sample queues (shmlink::Queue, include/shmlink/queue.hpp) ============================
 *
 * A queue is one file `<dir>/<name>.queue.shm` (a name with '/' is a path used as given) holding
 * a bounded ring of samples: up to `max_values` 8-byte values each, plus a sequence number, two
 * timestamps and flags. Nothing accepted is lost: a full queue refuses (try_push: WOULD_BLOCK)
 * or blocks (push), never overwrites. After a shutdown, pushes fail with SHUT_DOWN while consumers
 * still drain what is left, then get SHUT_DOWN (CLOSED means only a closed handle).
 *
 * Memory ordering: a push fills the cell, then publishes it with a release store; a pop that
 * returns SHMLINK_OK acquired that store and sees the whole sample. The pop frees the cell with
 * a release store that the next push into that cell acquires.
 */

/* ---- signal types (shmlink::SignalType; VILLASnode's numbering) -------------------------- */
#define SHMLINK_SIGNAL_F64 1  /**< double (shmlink_value_t.f) */
#define SHMLINK_SIGNAL_I64 2  /**< int64 (shmlink_value_t.i) */
#define SHMLINK_SIGNAL_BOOL 3 /**< bool: shmlink_value_t.bits is 0 or 1 */
#define SHMLINK_SIGNAL_C64 4  /**< complex float: shmlink_value_t.z[0] real, z[1] imaginary */

/* ---- queue kinds (shmlink::QueueKind) ----------------------------------------------------- */
#define SHMLINK_QUEUE_SPSC 1 /**< one producer, one consumer (across all processes) */
#define SHMLINK_QUEUE_MPMC 2 /**< any number of producers and consumers */

/* ---- wait modes of blocking push/pop (shmlink::WaitMode) ---------------------------------- */
#define SHMLINK_WAIT_POLLING 1 /**< spin (lowest latency, burns a core, works across VMs) */
#define SHMLINK_WAIT_FUTEX 2   /**< sleep on a shared futex at once */
#define SHMLINK_WAIT_HYBRID 3  /**< spin a few microseconds, then sleep (default) */

/* ---- sample flags (shmlink::kSample*; VILLASnode's SampleFlags) --------------------------- */
#define SHMLINK_SAMPLE_HAS_TS_ORIGIN 0x1u       /**< ts_origin_ns is set */
#define SHMLINK_SAMPLE_HAS_TS_RECEIVED 0x2u     /**< ts_received_ns is set */
#define SHMLINK_SAMPLE_HAS_SEQUENCE 0x8u        /**< sequence is set */
#define SHMLINK_SAMPLE_HAS_DATA 0x10u           /**< values are set */
#define SHMLINK_SAMPLE_NEW_FRAME 0x10000u       /**< first sample of a new frame */
#define SHMLINK_SAMPLE_NEW_SIMULATION 0x20000u  /**< first sample of a new simulation run */

/* ---- limits --------------------------------------------------------------------------------- */
#define SHMLINK_SIGNAL_NAME_MAX 39             /**< longest signal name in bytes (without NUL) */
#define SHMLINK_SIGNAL_UNIT_MAX 15             /**< longest signal unit in bytes (without NUL) */
#define SHMLINK_MAX_SAMPLE_VALUES 4096u        /**< most values per sample, most signals per queue */
#define SHMLINK_MAX_QUEUE_CAPACITY 16777216u   /**< largest queue capacity in cells (2^24) */

/** One 8-byte value of a sample, host byte order (layout-identical to shmlink::SignalValue).
 *  Which member is meant is the signal table's business, never the value's. */
typedef union shmlink_value_s {
  double f;      /**< SHMLINK_SIGNAL_F64 */
  int64_t i;     /**< SHMLINK_SIGNAL_I64 */
  uint64_t bits; /**< the raw 8 bytes; SHMLINK_SIGNAL_BOOL: 0 or 1 */
  float z[2];    /**< SHMLINK_SIGNAL_C64: z[0] real, z[1] imaginary */
} shmlink_value_t;

/** One entry of a signal table: what value `index` of every sample means. */
typedef struct shmlink_signal_s {
  uint32_t index; /**< position in the sample's values, below the queue's max_values */
  char name[40];  /**< NUL-terminated, at most SHMLINK_SIGNAL_NAME_MAX bytes */
  uint8_t type;   /**< SHMLINK_SIGNAL_* */
  char unit[16];  /**< NUL-terminated, at most SHMLINK_SIGNAL_UNIT_MAX bytes ("V", "A", "") */
} shmlink_signal_t;

/** A sample as the caller holds it. The caller owns the `values` buffer of `capacity` entries.
 *  Pushing sends `length` values (`capacity` is ignored). Popping copies at most `capacity`
 *  values and sets `length` to the sample's real length: when `length > capacity` the sample was
 *  truncated (the values beyond `capacity` are lost; size the buffer to the queue's max_values
 *  and this never happens). */
typedef struct shmlink_sample_s {
  uint64_t sequence;      /**< producer's sequence number */
  int64_t ts_origin_ns;   /**< when the values were sampled, ns since the epoch (CLOCK_REALTIME) */
  int64_t ts_received_ns; /**< when the sample was received, ns since the epoch */
  uint32_t flags;         /**< SHMLINK_SAMPLE_* bits */
  uint32_t length;        /**< values in the sample */
  uint32_t capacity;      /**< entries of `values` (pop only) */
  shmlink_value_t *values; /**< caller's buffer; may be NULL when length (push) or capacity (pop) is 0 */
} shmlink_sample_t;

/** An open queue. */
typedef struct shmlink_queue_s shmlink_queue_t;

/** Parameters of a new queue; initialise with shmlink_queue_spec_init(). */
typedef struct shmlink_queue_spec_s {
  uint32_t capacity;               /**< cells: a power of two, 2..SHMLINK_MAX_QUEUE_CAPACITY; default 512 */
  uint32_t max_values;             /**< values per sample, 1..SHMLINK_MAX_SAMPLE_VALUES; default 64 */
  uint8_t kind;                    /**< SHMLINK_QUEUE_*; default SHMLINK_QUEUE_SPSC */
  uint8_t wait;                    /**< SHMLINK_WAIT_*; default SHMLINK_WAIT_HYBRID */
  uint32_t permissions;            /**< file mode bits, default 0600 */
  const shmlink_signal_t *signals; /**< the signal table (copied); NULL when signal_count is 0 */
  uint32_t signal_count;           /**< entries of `signals`; indices distinct and below max_values */
} shmlink_queue_spec_t;

/** What an opener expects of a queue; zero fields check nothing. Initialise with
 *  shmlink_queue_expect_init() (or `= {0}`). A mismatch fails the open with SHMLINK_E_LAYOUT. */
typedef struct shmlink_queue_expect_s {
  uint32_t max_values;             /**< exact values per sample; 0 = don't check */
  uint8_t kind;                    /**< SHMLINK_QUEUE_*; 0 = don't check */
  const shmlink_signal_t *signals; /**< the exact signal table, order included; NULL = don't check
                                        (non-NULL with signal_count 0: the queue must have none) */
  uint32_t signal_count;           /**< entries of `signals` */
  int read_only;                   /**< nonzero: map read-only, to inspect other users' queues
                                        (push, pop and shutdown then return SHMLINK_E_PERMISSION) */
} shmlink_queue_expect_t;

/** A snapshot of a queue's header. */
typedef struct shmlink_queue_info_s {
  uint32_t version;         /**< layout version */
  uint8_t kind;             /**< SHMLINK_QUEUE_* */
  uint8_t wait;             /**< SHMLINK_WAIT_* recorded in the file */
  uint32_t capacity;        /**< cells */
  uint32_t max_values;      /**< values per sample */
  uint32_t signal_count;    /**< entries of the signal table */
  uint32_t cell_bytes;      /**< bytes per cell */
  uint64_t file_bytes;      /**< size of the file */
  uint64_t pushed;          /**< samples pushed so far (the producer index) */
  uint64_t popped;          /**< samples popped so far (the consumer index) */
  int closed;               /**< 1 once the queue was shut down */
  int32_t creator_pid;      /**< process that created the file */
  int64_t creation_time_ns; /**< ns since the epoch */
} shmlink_queue_info_t;

/** Fills `spec` with defaults: capacity 512, 64 values, SPSC, hybrid wait, 0600, no signals.
 *  NULL is accepted (does nothing). */
SHMLINK_EXPORT void shmlink_queue_spec_init(shmlink_queue_spec_t *spec);
/** Fills `expect` with "check nothing, read-write". NULL is accepted (does nothing). */
SHMLINK_EXPORT void shmlink_queue_expect_init(shmlink_queue_expect_t *expect);

/** Creates a queue file, complete before it becomes visible (see shmlink::Queue::create).
 *  `*out` is set on success, NULL on failure.
 *  @param name a name in the stream directory (at most 79 bytes) or a path containing '/'.
 *  @param mode a shmlink_open_mode_t value. SHMLINK_OPEN_OR_CREATE opens an existing queue only
 *         when its max_values, kind and signal table equal the spec's (else LAYOUT);
 *         SHMLINK_OPEN_EXISTING ignores the spec.
 *  @return 0, INVALID_ARGUMENT (NULL arguments, capacity not a power of two, bad sizes, kind,
 *          wait or signal type; duplicate or out-of-range signal index; a signal name or unit
 *          too long or not NUL-terminated; bad mode), NAME_TOO_LONG, EXISTS, NOT_FOUND, LAYOUT,
 *          PERMISSION, NO_SPACE, SYSTEM.
 *  Thread safety: any thread. */
SHMLINK_EXPORT int shmlink_queue_create(const char *name, const shmlink_queue_spec_t *spec, int mode,
                                        shmlink_queue_t **out);
/** Opens and validates an existing queue, then checks `expect` (NULL: check nothing, read-write).
 *  `*out` is set on success, NULL on failure.
 *  @return 0, INVALID_ARGUMENT (NULL name or out, expect.kind not 0..2, bad signal strings),
 *          NAME_TOO_LONG, NOT_FOUND, PERMISSION, LAYOUT (a bad file, or a mismatch with
 *          `expect`: the message names the file and both sides), SYSTEM.
 *  Thread safety: any thread. */
SHMLINK_EXPORT int shmlink_queue_open(const char *name, const shmlink_queue_expect_t *expect,
                                      shmlink_queue_t **out);
/** Releases the handle: unmaps the queue and frees it (the file stays). NULL is accepted. No
 *  other thread may be using the handle. @return 0. */
SHMLINK_EXPORT int shmlink_queue_close(shmlink_queue_t *queue);
/** Removes a queue file by name or path (open handles keep working on the unlinked file).
 *  @return 0, INVALID_ARGUMENT, NAME_TOO_LONG, NOT_FOUND, PERMISSION. */
SHMLINK_EXPORT int shmlink_queue_destroy(const char *name);
/** The same as shmlink_queue_destroy (its older name). */
SHMLINK_EXPORT int shmlink_queue_remove(const char *name);

/** Pushes one sample if a cell is free. Never blocks, never allocates.
 *  @return 0; WOULD_BLOCK (full; no message is recorded: no room is not an error);
 *          SIZE_MISMATCH (more than max_values values); SHUT_DOWN (the queue was shut down);
 *          PERMISSION (opened read-only); INVALID_ARGUMENT (NULL queue or sample, NULL values
 *          with length > 0).
 *  The values are copied from sample->values straight into the cell.
 *  Thread safety: one pushing thread per handle (as the C++ Queue); an MPMC queue takes more
 *  producers through more handles. */
SHMLINK_EXPORT int shmlink_queue_try_push(shmlink_queue_t *queue, const shmlink_sample_t *sample);
/** Pushes one sample, waiting (by the handle's wait mode) while the queue is full.
 *  @param timeout_ns relative ns on CLOCK_MONOTONIC; negative waits forever; 0 tries once.
 *  @return 0, TIMEOUT (still full), INTERRUPTED, SHUT_DOWN, SIZE_MISMATCH, PERMISSION,
 *          INVALID_ARGUMENT. Thread safety: as shmlink_queue_try_push. */
SHMLINK_EXPORT int shmlink_queue_push(shmlink_queue_t *queue, const shmlink_sample_t *sample, int64_t timeout_ns);
/** Pushes up to `count` samples in order without blocking, stopping at the first that does not
 *  go in (a burst: as many as possible). The samples go to the queue in runs of up to 32, each
 *  one burst of the C++ API: one wake-up check per run, not per sample; the values are copied
 *  from the caller's arrays straight into the cells. Never allocates.
 *  @return how many were pushed (0..count, at most INT_MAX) when that is at least one or count
 *          is 0; otherwise the first sample's error as shmlink_queue_try_push (WOULD_BLOCK when
 *          full). A short count means: call again from samples + count to see why.
 *  Thread safety: as shmlink_queue_try_push. */
SHMLINK_EXPORT int shmlink_queue_try_push_burst(shmlink_queue_t *queue, const shmlink_sample_t *samples,
                                                size_t count);

/** Pops the oldest sample into `out` without blocking. Copies at most out->capacity values and
 *  sets out->length to the sample's length (length > capacity: truncated, see shmlink_sample_t),
 *  straight from the cell. Never allocates. On failure `*out` is unchanged.
 *  @return 0; WOULD_BLOCK (empty; no message is recorded: no data is not an error); SHUT_DOWN
 *          (shut down and drained); PERMISSION (read-only); INVALID_ARGUMENT (NULL queue or out, NULL
 *          values with capacity > 0).
 *  Thread safety: one popping thread per handle (as the C++ Queue; a blocking pop that has to
 *  wait fills the handle's pop scratch); an MPMC queue takes more consumers through more
 *  handles. */
SHMLINK_EXPORT int shmlink_queue_try_pop(shmlink_queue_t *queue, shmlink_sample_t *out);
/** Pops the oldest sample, waiting (by the handle's wait mode) while the queue is empty.
 *  @param timeout_ns relative ns on CLOCK_MONOTONIC; negative waits forever; 0 tries once.
 *  @return 0, TIMEOUT (still empty), INTERRUPTED, SHUT_DOWN (shut down and drained), PERMISSION,
 *          INVALID_ARGUMENT. Thread safety: as shmlink_queue_try_pop. */
SHMLINK_EXPORT int shmlink_queue_pop(shmlink_queue_t *queue, shmlink_sample_t *out, int64_t timeout_ns);
/** Pops up to `count` samples into out[0..count) without blocking (a burst), each as
 *  shmlink_queue_try_pop. Every out[i] is checked before anything is popped. One burst of the
 *  C++ API (one wake-up check), the values copied from the cells straight into the caller's
 *  arrays; never allocates.
 *  @return how many were popped (at most INT_MAX) when that is at least one or count is 0;
 *          otherwise WOULD_BLOCK (empty), SHUT_DOWN (shut down and drained), PERMISSION or
 *          INVALID_ARGUMENT. Thread safety: as shmlink_queue_try_pop. */
SHMLINK_EXPORT int shmlink_queue_try_pop_burst(shmlink_queue_t *queue, shmlink_sample_t *out, size_t count);

/** Shuts the queue down for every process: pushes then fail with SHUT_DOWN; consumers drain
 *  what is left, then get SHUT_DOWN; every waiter is woken. Idempotent.
 *  @return 0, INVALID_ARGUMENT (NULL), PERMISSION (opened read-only). Thread safety: any thread. */
SHMLINK_EXPORT int shmlink_queue_shutdown(shmlink_queue_t *queue);
/** @return 1 once any process shut the queue down, 0 before, INVALID_ARGUMENT for NULL.
 *  Thread safety: any thread. */
SHMLINK_EXPORT int shmlink_queue_is_shut(const shmlink_queue_t *queue);
/** Samples in the queue now: a racy estimate while others push or pop; 0 for NULL.
 *  Thread safety: any thread. */
SHMLINK_EXPORT uint64_t shmlink_queue_size_approx(const shmlink_queue_t *queue);
/** Makes this handle's blocking push/pop wait by `wait` (SHMLINK_WAIT_*); the file's recorded
 *  mode is unchanged. @return 0, INVALID_ARGUMENT (NULL, unknown mode).
 *  Thread safety: only while no push or pop runs on this handle. */
SHMLINK_EXPORT int shmlink_queue_set_wait(shmlink_queue_t *queue, int wait);
/** Header snapshot (counters are racy while others push or pop).
 *  @return 0, INVALID_ARGUMENT (NULL). Thread safety: any thread. */
SHMLINK_EXPORT int shmlink_queue_info(const shmlink_queue_t *queue, shmlink_queue_info_t *out);
/** The queue's name (file name without ".queue.shm"); "" for NULL. Valid while the handle is. */
SHMLINK_EXPORT const char *shmlink_queue_name(const shmlink_queue_t *queue);
/** The queue's file path; "" for NULL. Valid while the handle is. */
SHMLINK_EXPORT const char *shmlink_queue_path(const shmlink_queue_t *queue);
/** Entries of the signal table (>= 0), or INVALID_ARGUMENT for NULL. */
SHMLINK_EXPORT int shmlink_queue_signal_count(const shmlink_queue_t *queue);
/** Copies entry `position` (0..signal_count-1, in table order) of the signal table.
 *  @return 0, OUT_OF_RANGE, INVALID_ARGUMENT (NULL). Thread safety: any thread. */
SHMLINK_EXPORT int shmlink_queue_signal(const shmlink_queue_t *queue, uint32_t position, shmlink_signal_t *out);

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
/** Ends the link but keeps the handle: shuts the output (the peer drains it, then reads
 *  SHUT_DOWN), stops and reaps a launched peer (stop_timeout_ns, then SIGTERM, then SIGKILL),
 *  removes the output file and releases the lock. The peer status stays readable and connect
 *  may be called again. Idempotent. (Before issue 20 this was shmlink_interface_close.)
 *  @return 0, INVALID_ARGUMENT (NULL). Thread safety: while no other call runs. */
SHMLINK_EXPORT int shmlink_interface_disconnect(shmlink_interface_t *iface);
/** Disconnects the interface if connected (as shmlink_interface_disconnect), then frees the
 *  handle. NULL is accepted. (Before issue 20 this kept the handle: that call is now
 *  shmlink_interface_disconnect.) @return 0. Thread safety: while no other call runs. */
SHMLINK_EXPORT int shmlink_interface_close(shmlink_interface_t *iface);
/** The older name of shmlink_interface_close (it always freed the handle). */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_interface_close") int shmlink_interface_destroy(shmlink_interface_t *iface);

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

/* ==== regions: many channels in one mapping (shmlink::Region, include/shmlink/region.hpp)
 *
 * A region is one shared mapping (a file on /dev/shm or hugetlbfs; in a QEMU guest the same
 * memory is the ivshmem device's BAR2) with a directory of named streams and queues at its
 * start. Each channel inside is laid out byte for byte as its file-backed twin, and the stream
 * and queue handles that shmlink_region_create_stream & co. return are ordinary
 * shmlink_stream_t / shmlink_queue_t handles: every stream and queue call works on them, and
 * shmlink_stream_close / shmlink_queue_close release them (a handle keeps the region mapped even
 * after shmlink_region_close). The directory's allocator works between processes, and between
 * VMs that share no kernel, without futexes: a lock word with the holder's identity, recovered
 * from a holder that died. Everything a peer wrote into the directory is checked: a corrupted
 * directory is SHMLINK_E_LAYOUT naming the region and the entry, never a crash.
 *
 * Names: a region path containing '/' is used as given ("/dev/hugepages/ao.region"); a plain
 * name means `<dir>/<name>.region.shm` in the stream directory. Tools write a channel in a region
 * as "PATH:NAME" ("/dev/hugepages/ao.region:wfs"). Channel names follow the stream rule (1..79
 * bytes, no '/', no ':').
 *
 * Thread safety: any thread may call any region function; the region's lock serialises the
 * directory changes of every thread and process. Channel handles follow their own rules.
 */

/** An open region. */
typedef struct shmlink_region_s shmlink_region_t;

/* ---- what an entry holds (shmlink::ChannelKind) and its state (shmlink::EntryState) -------- */
#define SHMLINK_CHANNEL_STREAM 1     /**< an ImageStreamIO stream */
#define SHMLINK_CHANNEL_QUEUE 2      /**< a sample queue */
#define SHMLINK_ENTRY_CREATING 1     /**< being laid out by its creator: not openable yet */
#define SHMLINK_ENTRY_READY 2        /**< published: open_stream / open_queue find it */
#define SHMLINK_ENTRY_REMOVING 3     /**< a remove was interrupted; the next directory change ends it */
#define SHMLINK_CHANNEL_NAME_MAX 79  /**< longest channel name in bytes (without NUL) */

/** Parameters of a new region; initialise with shmlink_region_spec_init(). */
typedef struct shmlink_region_spec_s {
  uint32_t permissions; /**< file mode bits (read/write bits only), default 0600 */
  uint32_t max_entries; /**< directory entries, 1..16384 (128 bytes each), default 256 */
} shmlink_region_spec_t;

/** One entry of a region's directory, as copied and checked by shmlink_region_entries(). */
typedef struct shmlink_region_entry_s {
  char name[80];       /**< NUL-terminated, at most SHMLINK_CHANNEL_NAME_MAX bytes */
  uint32_t kind;       /**< SHMLINK_CHANNEL_* */
  uint32_t state;      /**< SHMLINK_ENTRY_* */
  uint64_t offset;     /**< bytes from the region's start (a multiple of 4096) */
  uint64_t size;       /**< bytes reserved (a multiple of 4096) */
  uint64_t generation; /**< +1 at every reservation and release of the slot */
  uint64_t owner;      /**< the creator's identity: (boot hash << 32) | pid */
} shmlink_region_entry_t;

/** Fills `spec` with defaults: 0600, 256 entries. NULL is accepted (does nothing). */
SHMLINK_EXPORT void shmlink_region_spec_init(shmlink_region_spec_t *spec);
/** Creates (or opens, by `mode`) a region file and formats its directory before it becomes
 *  visible. `*out` is set on success, NULL on failure.
 *  @param path a path, or a name in the stream directory (see above).
 *  @param size bytes: a power of two (QEMU's ivshmem requires it), at least 64 KiB; on hugetlbfs
 *         also a multiple of the huge page size.
 *  @param spec NULL = the defaults.
 *  @param mode a shmlink_open_mode_t value; SHMLINK_OPEN_OR_CREATE opens an existing region of
 *         the same size (else LAYOUT).
 *  @return 0, INVALID_ARGUMENT (NULL path or out, size, permissions, max_entries, bad mode),
 *          NAME_TOO_LONG, EXISTS, NOT_FOUND, PERMISSION, NO_SPACE, LAYOUT, SYSTEM. */
SHMLINK_EXPORT int shmlink_region_create(const char *path, uint64_t size, const shmlink_region_spec_t *spec,
                                         int mode, shmlink_region_t **out);
/** Opens a region file read-write and checks its directory header. `*out` is set on success,
 *  NULL on failure.
 *  @return 0, INVALID_ARGUMENT, NAME_TOO_LONG, NOT_FOUND, PERMISSION, LAYOUT (not a region, not
 *          formatted yet, another version, sizes that do not match the file), SYSTEM. */
SHMLINK_EXPORT int shmlink_region_open(const char *path, shmlink_region_t **out);
/** Releases the handle (unmaps unless a channel handle still uses the region) and frees it; the
 *  file and its channels stay. NULL is accepted. @return 0. */
SHMLINK_EXPORT int shmlink_region_close(shmlink_region_t *region);
/** Removes a region file by path or name; handles open on it keep working on the unlinked file.
 *  @return 0, INVALID_ARGUMENT, NAME_TOO_LONG, NOT_FOUND, PERMISSION, SYSTEM. */
SHMLINK_EXPORT int shmlink_region_destroy(const char *path);

/** Creates a stream named `name` in the region (as shmlink_stream_create; `spec->permissions`
 *  is the region's business and ignored). `*out` is set on success, NULL on failure.
 *  @param mode SHMLINK_EXCLUSIVE_CREATE; SHMLINK_PURGE_AND_CREATE (removes an existing entry
 *         first: its handles see REPLACED); SHMLINK_OPEN_OR_CREATE (opens an existing stream of
 *         the same shape and dtype, else LAYOUT); SHMLINK_OPEN_EXISTING.
 *  @return 0, INVALID_ARGUMENT (NULL arguments, the spec as shmlink_stream_create, the name),
 *          NAME_TOO_LONG, EXISTS, NO_SPACE (no room or no free entry), BUSY (another process
 *          is creating it), PERMISSION, TIMEOUT (the region's lock stayed held), LAYOUT; each
 *          message names "PATH:NAME". */
SHMLINK_EXPORT int shmlink_region_create_stream(shmlink_region_t *region, const char *name,
                                                const shmlink_stream_spec_t *spec, int mode, shmlink_stream_t **out);
/** Opens the ready stream `name` of the region with every check shmlink_stream_open does.
 *  @return 0, INVALID_ARGUMENT, NOT_FOUND (no such entry, or not ready yet), LAYOUT (a queue of
 *          that name, a corrupt entry or stream), TIMEOUT. */
SHMLINK_EXPORT int shmlink_region_open_stream(shmlink_region_t *region, const char *name, shmlink_stream_t **out);
/** Creates a queue named `name` in the region (as shmlink_queue_create; OPEN_OR_CREATE opens an
 *  existing queue whose max_values, kind and signals match). Codes as
 *  shmlink_region_create_stream. */
SHMLINK_EXPORT int shmlink_region_create_queue(shmlink_region_t *region, const char *name,
                                               const shmlink_queue_spec_t *spec, int mode, shmlink_queue_t **out);
/** Opens the ready queue `name` of the region, then checks `expect` (NULL: nothing, read-write),
 *  as shmlink_queue_open. Codes as shmlink_region_open_stream. */
SHMLINK_EXPORT int shmlink_region_open_queue(shmlink_region_t *region, const char *name,
                                             const shmlink_queue_expect_t *expect, shmlink_queue_t **out);
/** Removes the entry `name` (a stream also loses its partial-write companion). Handles still open
 *  on it keep their mapping; their writes, pushes and (once drained) pops return REPLACED. Its
 *  bytes go back to the free space once no writable handle has it open (until then the entry is
 *  listed as removing).
 *  @return 0, INVALID_ARGUMENT, NOT_FOUND, BUSY (a live process is still creating it),
 *          PERMISSION, TIMEOUT, LAYOUT. */
SHMLINK_EXPORT int shmlink_region_remove(shmlink_region_t *region, const char *name);
/** Copies the entries in use (every state but free, in table order) into out[0..capacity) and
 *  sets `*count` to how many there are: when `*count > capacity` only the first `capacity` were
 *  copied (call again with more room). `out` may be NULL when capacity is 0.
 *  @return 0, INVALID_ARGUMENT (NULL region or count, NULL out with capacity > 0), LAYOUT (the
 *          message names the corrupt entry), TIMEOUT, NO_SPACE. */
SHMLINK_EXPORT int shmlink_region_entries(const shmlink_region_t *region, shmlink_region_entry_t *out,
                                          size_t capacity, size_t *count);
/** The region's path ("" for NULL). Valid while the handle is. */
SHMLINK_EXPORT const char *shmlink_region_path(const shmlink_region_t *region);
/** The region's size in bytes (0 for NULL). */
SHMLINK_EXPORT uint64_t shmlink_region_size(const shmlink_region_t *region);

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
#endif /* SHMLINK_H */
