// SPDX-License-Identifier: MIT
// ImageStreamIO 2.00 on-disk layout: structs, static_asserts and the chunk sizing rules.
// Source: docs/reference/imagestreamio.md sections 2 (IMAGE_METADATA), 4 (keyword,
// proc trace, CB frame metadata) and 5 (chunk order and ROUND_UP_8), which follow
// milk-org/ImageStreamIO: ImageStruct.h and ImageStreamIO.c (ImageStreamIO_image_sizing).
//
// Everything here is plain data, fixed width, little-endian x86-64/aarch64 LP64 glibc.
#pragma once

#include "os/checked.hpp"

#include <semaphore.h>
#include <sys/types.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <ctime>

namespace shmlink::isio {

static_assert(std::endian::native == std::endian::little, "ISIO files are little-endian");
static_assert(sizeof(void*) == 8, "LP64 only");
static_assert(sizeof(sem_t) == 32, "ISIO 2.00 stores glibc's 32-byte sem_t in the file");
static_assert(sizeof(pid_t) == 4 && sizeof(ino_t) == 8 && sizeof(timespec) == 16);

inline constexpr char kVersion[] = "2.00";
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint16_t kProcTraceEntries = 10;  // NBproctrace, always 10 in ISIO
inline constexpr std::uint64_t kMaxElements = 10'000'000'000ULL;  // ISIO's "SEEMS BIG" limit

// IMAGE_METADATA, 384 bytes (reference section 2). Byte offsets, 32 bits per row:
//
//    0 +-------------------------------------------------------------------+
//      | version char[32] (written LAST at creation: "ready" marker)       |
//   32 +-------------------------------------------------------------------+
//      | name char[80]                                                     |
//  112 +--------+--------------------------+-------------------------------+
//      | naxis  | pad[3]                   |  size[0] @116, size[1] @120,  |
//      |        |                          |  size[2] @124 (u32 each)      |
//  128 +--------+--------------------------+-------------------------------+
//      | nelement u64 @128 | datatype u8 @136 + pad | (pad: shmlink wake     |
//      |   stamp u32 @140) | imagetype u64 @144                            |
//  152 | creationtime @152 | lastaccesstime @168 | atime @184 | writetime   |
//      |   (timespec, 16 B each; writetime @200)                           |
//  216 | creatorPID i32 | ownerPID i32 @220 | shared u8 @224 + pad         |
//  232 | inode u64 | location i8 @240 | status u8 @241 | pad | flag @248   |
//  256 | logflag u8 | pad | sem u16 @258 | NBproctrace u16 @260 | pad     |
//  264 | cnt0 u64 (futex word = low 32 bits) | cnt1 @272 | cnt2 @280       |
//  288 | write u8 | pad | NBkw u16 @290 | CBsize u32 @292 | CBindex @296   |
//  300 | (pad: shmlink futex waiter count u32) | CBcycle u64 @304          |
//  312 | imdatamemsize u64 | cudaMemHandle char[64] @320                   |
//  384 +-------------------------------------------------------------------+
struct Metadata {
  char version[32];
  char name[80];
  std::uint8_t naxis;
  std::uint8_t pad0[3];
  std::uint32_t size[3];
  std::uint64_t nelement;
  std::uint8_t datatype;
  std::uint8_t pad1[3];
  // ISIO padding. shmlink writers store here the low 32 bits of the cnt0 they are publishing,
  // before its increment (release), as a sign that they wake futex waiters (`wait_futex`): a
  // reader that sees cnt0 move without this stamp following knows the writer only posts the
  // semaphores (ImageStreamIO's UpdateIm, milk) and waits on a semaphore slot instead. ISIO
  // never reads or writes these bytes; they are 0 in every file it creates.
  std::uint32_t shmlink_wake_stamp;
  std::uint64_t imagetype;
  timespec creationtime;
  timespec lastaccesstime;
  timespec atime;
  timespec writetime;
  std::int32_t creatorPID;
  std::int32_t ownerPID;
  std::uint8_t shared;
  std::uint8_t pad2[7];
  std::uint64_t inode;
  std::int8_t location;
  std::uint8_t status;
  std::uint8_t pad3[6];
  std::uint64_t flag;
  std::uint8_t logflag;
  std::uint8_t pad4;
  std::uint16_t sem;
  std::uint16_t NBproctrace;
  std::uint8_t pad5[2];
  std::uint64_t cnt0;
  std::uint64_t cnt1;
  std::uint64_t cnt2;
  std::uint8_t write;
  std::uint8_t pad6;
  std::uint16_t NBkw;
  std::uint32_t CBsize;
  std::uint32_t CBindex;
  // ISIO padding (a zero-width bit-field forces 8-byte alignment of CBcycle). shmlink keeps
  // its futex waiter count here: ISIO never reads or writes these bytes, so plain ISIO tools
  // are unaffected, and a zero value (any ISIO-created file) means "nobody waits by futex".
  std::uint32_t shmlink_futex_waiters;
  std::uint64_t CBcycle;
  std::uint64_t imdatamemsize;
  char cudaMemHandle[64];
};

static_assert(sizeof(Metadata) == 384);
static_assert(offsetof(Metadata, version) == 0);
static_assert(offsetof(Metadata, name) == 32);
static_assert(offsetof(Metadata, naxis) == 112);
static_assert(offsetof(Metadata, size) == 116);
static_assert(offsetof(Metadata, nelement) == 128);
static_assert(offsetof(Metadata, datatype) == 136);
static_assert(offsetof(Metadata, shmlink_wake_stamp) == 140);
static_assert(offsetof(Metadata, imagetype) == 144);
static_assert(offsetof(Metadata, creationtime) == 152);
static_assert(offsetof(Metadata, lastaccesstime) == 168);
static_assert(offsetof(Metadata, atime) == 184);
static_assert(offsetof(Metadata, writetime) == 200);
static_assert(offsetof(Metadata, creatorPID) == 216);
static_assert(offsetof(Metadata, ownerPID) == 220);
static_assert(offsetof(Metadata, shared) == 224);
static_assert(offsetof(Metadata, inode) == 232);
static_assert(offsetof(Metadata, location) == 240);
static_assert(offsetof(Metadata, status) == 241);
static_assert(offsetof(Metadata, flag) == 248);
static_assert(offsetof(Metadata, logflag) == 256);
static_assert(offsetof(Metadata, sem) == 258);
static_assert(offsetof(Metadata, NBproctrace) == 260);
static_assert(offsetof(Metadata, cnt0) == 264);
static_assert(offsetof(Metadata, cnt1) == 272);
static_assert(offsetof(Metadata, cnt2) == 280);
static_assert(offsetof(Metadata, write) == 288);
static_assert(offsetof(Metadata, NBkw) == 290);
static_assert(offsetof(Metadata, CBsize) == 292);
static_assert(offsetof(Metadata, CBindex) == 296);
static_assert(offsetof(Metadata, shmlink_futex_waiters) == 300);
static_assert(offsetof(Metadata, CBcycle) == 304);
static_assert(offsetof(Metadata, imdatamemsize) == 312);
static_assert(offsetof(Metadata, cudaMemHandle) == 320);
static_assert(offsetof(Metadata, cnt0) % 8 == 0, "cnt0 is accessed with 64-bit atomics");
static_assert(offsetof(Metadata, shmlink_futex_waiters) % 4 == 0 && offsetof(Metadata, shmlink_wake_stamp) % 4 == 0,
              "the shmlink spare-area words are accessed with 32-bit atomics");

// IMAGE_KEYWORD, 128 bytes (reference 4.1):
//    0 | name char[16] | 16 type char ('N','L','D','S') + pad[7]
//   24 | value: int64 numl / double numf / char valstr[16]
//   40 | cnt u64 | 48 comment char[80] | 128
struct Keyword {
  char name[16];
  char type;
  std::uint8_t pad[7];
  union {
    std::int64_t numl;
    double numf;
    char valstr[16];
  } value;
  std::uint64_t cnt;
  char comment[80];
};
static_assert(sizeof(Keyword) == 128);
static_assert(offsetof(Keyword, name) == 0);
static_assert(offsetof(Keyword, type) == 16);
static_assert(offsetof(Keyword, value) == 24);
static_assert(offsetof(Keyword, cnt) == 40);
static_assert(offsetof(Keyword, comment) == 48);

// STREAM_PROC_TRACE, 64 bytes (reference 4.2):
//    0 triggermode i32 | 4 procwrite_PID i32 | 8 trigger_inode u64
//   16 ts_procstart timespec | 32 ts_streamupdate timespec
//   48 trigsemindex i32 | 52 triggerstatus i32 | 56 cnt0 u64 | 64
struct ProcTrace {
  std::int32_t triggermode;
  std::int32_t procwrite_PID;
  std::uint64_t trigger_inode;
  timespec ts_procstart;
  timespec ts_streamupdate;
  std::int32_t trigsemindex;
  std::int32_t triggerstatus;
  std::uint64_t cnt0;
};
static_assert(sizeof(ProcTrace) == 64);
static_assert(offsetof(ProcTrace, procwrite_PID) == 4);
static_assert(offsetof(ProcTrace, trigger_inode) == 8);
static_assert(offsetof(ProcTrace, ts_procstart) == 16);
static_assert(offsetof(ProcTrace, ts_streamupdate) == 32);
static_assert(offsetof(ProcTrace, trigsemindex) == 48);
static_assert(offsetof(ProcTrace, triggerstatus) == 52);
static_assert(offsetof(ProcTrace, cnt0) == 56);

// CBFRAMEMD, 48 bytes: 0 cnt0 u64 | 8 cnt1 u64 | 16 atime timespec | 32 writetime timespec
struct CbFrameMd {
  std::uint64_t cnt0;
  std::uint64_t cnt1;
  timespec atime;
  timespec writetime;
};
static_assert(sizeof(CbFrameMd) == 48);
static_assert(offsetof(CbFrameMd, cnt1) == 8);
static_assert(offsetof(CbFrameMd, atime) == 16);
static_assert(offsetof(CbFrameMd, writetime) == 32);

/// Bytes of one element of ISIO datatype `code`; 0 when unknown (reference section 6).
constexpr std::size_t type_size(std::uint8_t code) noexcept {
  constexpr std::size_t kSizes[] = {0, 1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 8, 16, 2};
  return code < sizeof(kSizes) / sizeof(kSizes[0]) ? kSizes[code] : 0;
}

/// ISIO's ROUND_UP_8.
constexpr std::uint64_t round_up_8(std::uint64_t n) noexcept { return (n + 7) & ~std::uint64_t{7}; }

/// True when the temporal arrays (atimearray, writetimearray, cntarray) exist.
constexpr bool has_temporal_arrays(std::uint64_t imagetype) noexcept {
  return (imagetype & 0xF000F) == (0x0001 | 0x20000);
}

/// Byte offsets of every chunk and the exact file size (reference section 5). `valid` is false
/// when a size overflowed 64 bits (the other fields are then meaningless): a file whose fields
/// make it so is refused.
struct Layout {
  std::uint64_t data = 0, keywords = 0, semaphores = 0, semlog = 0, sem_read_pid = 0, sem_write_pid = 0,
                semctrl = 0, semstatus = 0, proctrace = 0, atimearray = 0, writetimearray = 0, cntarray = 0,
                cbframemd = 0, cbdata = 0, file_size = 0;
  bool valid = true;
};

/// Inputs of the sizing rules, as read from or written to the metadata.
struct Geometry {
  std::uint64_t imdatamemsize = 0;  ///< typesize x nelement
  std::uint16_t nbkw = 0;
  std::uint16_t nbsem = 10;
  std::uint16_t nbproctrace = kProcTraceEntries;
  std::uint32_t size2 = 0;          ///< size[2] (slices), used by the temporal arrays
  std::uint64_t imagetype = 0x0002;
  std::uint32_t cbsize = 0;
  std::int8_t location = -1;
};

/// Lays the chunks out back to back, each rounded up to 8 bytes (ImageStreamIO_image_sizing).
/// All arithmetic is 64-bit and overflow-checked (os::CheckedSize), so multi-GiB streams size
/// correctly (unlike ISIO's int check) and no field value can wrap the file size.
constexpr Layout compute_layout(const Geometry& g) noexcept {
  Layout l;
  os::CheckedSize off(round_up_8(sizeof(Metadata)));
  l.data = off.value();
  if (g.location == -1) off.add_rounded(g.imdatamemsize, 1, 8);
  l.keywords = off.value();
  off.add_rounded(g.nbkw, sizeof(Keyword), 8);
  l.semaphores = off.value();
  off.add_rounded(g.nbsem, sizeof(sem_t), 8);
  l.semlog = off.value();
  off.add_rounded(1, sizeof(sem_t), 8);
  l.sem_read_pid = off.value();
  off.add_rounded(g.nbsem, 4, 8);
  l.sem_write_pid = off.value();
  off.add_rounded(g.nbsem, 4, 8);
  l.semctrl = off.value();
  off.add_rounded(g.nbsem, 4, 8);
  l.semstatus = off.value();
  off.add_rounded(g.nbsem, 4, 8);
  l.proctrace = off.value();
  off.add_rounded(g.nbproctrace, sizeof(ProcTrace), 8);
  const std::uint64_t slices = has_temporal_arrays(g.imagetype) ? g.size2 : 0;
  l.atimearray = off.value();
  off.add_rounded(slices, sizeof(timespec), 8);
  l.writetimearray = off.value();
  off.add_rounded(slices, sizeof(timespec), 8);
  l.cntarray = off.value();
  off.add_rounded(slices, 8, 8);
  l.cbframemd = off.value();
  off.add_rounded(g.cbsize, sizeof(CbFrameMd), 8);
  l.cbdata = off.value();
  if (g.cbsize > 0) off.add_rounded(g.imdatamemsize, g.cbsize, 8);
  l.file_size = off.value();
  // The in-file sem_t are used as one atomic u64 each (os/glibc_sem.hpp): their chunks must be
  // 8-aligned, which the rounding above guarantees; checked so that a change of it cannot slip.
  l.valid = off.ok() && l.semaphores % 8 == 0 && l.semlog % 8 == 0;
  return l;
}

// Worked examples from the reference (section 5.1 verified against ISIO 2.00; 5.2 a and b
// confirmed by section 21) pinned at compile time.
static_assert(compute_layout({.imdatamemsize = 64 * 64 * 4}).file_size == 17920);
static_assert(compute_layout({.imdatamemsize = 64 * 64 * 4}).semaphores == 16768);
static_assert(compute_layout({.imdatamemsize = 64 * 64 * 4}).proctrace == 17280);
static_assert(compute_layout({.imdatamemsize = 15, .nbkw = 1, .nbsem = 3}).file_size == 1360);
static_assert(compute_layout({.imdatamemsize = 32 * 32 * 8 * 2, .nbkw = 4, .size2 = 8, .imagetype = 0x20001})
                  .file_size == 18752);
static_assert(!compute_layout({.imdatamemsize = ~std::uint64_t{0} - 3}).valid);
static_assert(!compute_layout({.imdatamemsize = std::uint64_t{1} << 40, .cbsize = 1u << 31}).valid);

}  // namespace shmlink::isio
