/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink/c/stream.h
 * @brief The shmlink C API, ImageStreamIO 2.00-compatible streams (shmlink::Stream). A part of
 * shmlink.h: programs include <shmlink.h>, whose top states the conventions every call follows
 * (verbs, return codes, messages, timeouts, thread safety); this part also compiles on its own.
 */
#ifndef SHMLINK_C_STREAM_H
#define SHMLINK_C_STREAM_H

#include <shmlink/c/common.h>

#ifdef __cplusplus
extern "C" {
#endif

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
/** The older name of shmlink_stream_destroy (same meaning). */
SHMLINK_EXPORT SHMLINK_DEPRECATED_FOR("shmlink_stream_destroy") int shmlink_stream_remove(const char *name);

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

#ifdef __cplusplus
}
#endif
#endif /* SHMLINK_C_STREAM_H */
