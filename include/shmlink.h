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
 *   shmlink_region_remove(region, name) removes a channel from a region.
 * - What create needs is a `shmlink_<object>_spec_t`, filled with the defaults by
 *   `shmlink_<object>_spec_init()`; what an opener expects of a queue is a `shmlink_queue_expect_t`.
 * - Every struct, union and enum tag is its typedef name with `_s` for `_t` (as libuv does), so no
 *   tag shares a name with a function (`shmlink_queue_info()`). Use the `_t` names.
 * - Names kept for programs written against older headers are marked SHMLINK_DEPRECATED_FOR (a
 *   compiler warning that names the replacement; define SHMLINK_NO_DEPRECATION_WARNINGS to
 *   silence it) and keep their old meaning: shmlink_interface_new (= create),
 *   shmlink_interface_open (= connect), shmlink_interface_is_open (= is_connected),
 *   shmlink_interface_destroy (= close), shmlink_stream_remove and shmlink_queue_remove (= their
 *   destroy), shmlink_memif_socket_destroy and shmlink_memif_destroy
 *   (= their close), shmlink_memif_socket_args_init and shmlink_memif_args_init (= their
 *   spec_init), and the types shmlink_memif_socket_args_t and shmlink_memif_args_t. Two calls
 *   changed meaning (programs built against an older header must be rebuilt, docs/c-api.md
 *   "ABI"): shmlink_interface_close now frees the handle (the old close is
 *   shmlink_interface_disconnect, so 0.3's `close(h); destroy(h);` would free h twice: write
 *   `shmlink_interface_close(h);` alone) and shmlink_stream_destroy now takes a name.
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
 * memif sockets and interfaces follow libmemif's model (see shmlink/c/memif.h).
 */
#ifndef SHMLINK_H
#define SHMLINK_H

/* The declarations live in one part per object (include/shmlink/c/); each part includes what it
 * needs (common.h: error codes, open modes, messages), so this list is the whole API. */
#include <shmlink/c/common.h>
#include <shmlink/c/stream.h>
#include <shmlink/c/queue.h>
#include <shmlink/c/interface.h>
#include <shmlink/c/region.h>
#include <shmlink/c/memif.h>

#endif /* SHMLINK_H */
