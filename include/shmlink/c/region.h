/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink/c/region.h
 * @brief The shmlink C API, regions: many streams and queues in one mapping (shmlink::Region).
 * A part of shmlink.h: programs include <shmlink.h>, whose top states the conventions every
 * call follows (verbs, return codes, messages, timeouts, thread safety); this part also
 * compiles on its own.
 */
#ifndef SHMLINK_C_REGION_H
#define SHMLINK_C_REGION_H

#include <shmlink/c/stream.h>
#include <shmlink/c/queue.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif /* SHMLINK_C_REGION_H */
