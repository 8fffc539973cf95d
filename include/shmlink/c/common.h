/* SPDX-License-Identifier: MIT */
/**
 * @file shmlink/c/common.h
 * @brief The shmlink C API, error codes, open modes, shmlink_strerror and shmlink_last_error,
 * and the deprecation marker that every other part uses. A part of shmlink.h: programs include
 * <shmlink.h>, whose top states the conventions every call follows (verbs, return codes,
 * messages, timeouts, thread safety); this part also compiles on its own.
 */
#ifndef SHMLINK_C_COMMON_H
#define SHMLINK_C_COMMON_H

#include <shmlink/export.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a name kept for programs written against an older header (see the conventions at the top of shmlink.h). */
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

/** Open modes, as shmlink::OpenMode. */
typedef enum shmlink_open_mode_s {
  SHMLINK_EXCLUSIVE_CREATE = 0, /**< create; SHMLINK_E_EXISTS if present */
  SHMLINK_PURGE_AND_CREATE = 1, /**< create, atomically replacing an existing file (new inode) */
  SHMLINK_OPEN_OR_CREATE = 2,   /**< open if present, else create */
  SHMLINK_OPEN_EXISTING = 3     /**< open; SHMLINK_E_NOT_FOUND if absent */
} shmlink_open_mode_t;

/** Static description of an error code; never NULL. */
SHMLINK_EXPORT const char *shmlink_strerror(int code);
/** This thread's message for the last failed call ("" if none). Valid until the next call. */
SHMLINK_EXPORT const char *shmlink_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* SHMLINK_C_COMMON_H */
