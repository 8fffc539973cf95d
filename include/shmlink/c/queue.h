/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink/c/queue.h
 * @brief The shmlink C API, sample queues (shmlink::Queue): samples, signal tables, pushes and
 * pops. A part of shmlink.h: programs include <shmlink.h>, whose top states the conventions
 * every call follows (verbs, return codes, messages, timeouts, thread safety); this part also
 * compiles on its own.
 */
#ifndef SHMLINK_C_QUEUE_H
#define SHMLINK_C_QUEUE_H

#include <shmlink/c/common.h>

#ifdef __cplusplus
extern "C" {
#endif

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
/** The older name of shmlink_queue_destroy (same meaning). */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_queue_destroy") int shmlink_queue_remove(const char *name);

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

#ifdef __cplusplus
}
#endif
#endif /* SHMLINK_C_QUEUE_H */
