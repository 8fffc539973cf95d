// SPDX-License-Identifier: MIT
/// @file villas.hpp
/// @brief Read-only inspection of VILLASnode v1.x `shmem` regions (docs/reference/villas-shmem.md
/// section 5; the Interface's villas protocol, include/shmlink/interface.hpp, reads and writes them).
///
/// A VILLASnode region is one POSIX shared-memory object per direction (/dev/shm/<name>), created
/// by its writer: an allocator header, the shared struct at offset 80 (a Vyukov data queue with
/// its pthread objects, a pool of sample blocks whose free list is another queue), the cells and
/// the blocks. It has no magic and no version field: these functions recognise it by fingerprint
/// (sizes, masks, alignments, offsets that must agree with each other and with the file size).
/// Supported: the layout of VILLASnode v1.0 to v1.2 on x86_64 glibc.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace shmlink::villas {

/// What a VILLASnode v1.x shmem region holds, read without writing a byte.
struct RegionInfo {
  std::string path;                   ///< the file inspected (/dev/shm/<name>), or the caller's name
  std::uint64_t size = 0;             ///< file size, bytes
  bool pthread_mode = false;          ///< region mode: pthread (true) or polling (false)
  bool stopped = false;               ///< the data queue's state is STOPPED (the owner closed)
  std::uint32_t queue_cells = 0;      ///< data-queue cells (buffer_mask + 1)
  std::uint32_t pool_blocks = 0;      ///< pool blocks (pool len / blocksz) = the writer's queuelen
  std::uint32_t block_size = 0;       ///< bytes per pool block
  std::uint32_t sample_capacity = 0;  ///< values per sample ((block_size - 88) / 8)
  std::uint64_t queued = 0;           ///< samples in the data queue now (tail - head, clamped to queue_cells)
  std::uint64_t free_blocks = 0;      ///< blocks in the free list now (clamped to pool_blocks)
};

/// The sentence every layout error ends with: which VILLASnode regions shmlink reads.
inline constexpr std::string_view kSupportedVersions = "supported: VILLASnode v1.0 to v1.2 on x86_64 glibc";

/// Recognises a region by fingerprint in `bytes` (the whole file, mapped or read) and summarises it.
/// Checks (docs/reference/villas-shmem.md section 5.3): size, polling/mode agreement, pool state,
/// alignment 64, block size (a multiple of 64, room for a header and one value, at most the
/// block of kMaxSampleValues values: 32896 bytes), pool length a
/// whole number of blocks, queue masks (powers of two, cells = the blocks rounded up to a power of
/// two), file size = the size villas-node gives such a region, cells and blocks inside the file,
/// aligned and apart. Counters are read racily (a live region may move); they are clamped.
/// @param bytes the region's bytes (any alignment); @param what its name or path, for messages.
/// @throws Error layout naming `what` and the first check that failed, and saying which
///         VILLASnode versions are supported (kSupportedVersions).
SHMLINK_EXPORT RegionInfo inspect(std::span<const std::byte> bytes, std::string_view what);

/// Recognises a region from its header alone and summarises it: `header` is the file's first
/// bytes (at least the 816-byte header; more is ignored), `file_size` the file's size in bytes.
/// Runs the checks of inspect() against `file_size` without needing the cells or blocks, which
/// summaries never read (the queued and free counts come from the head and tail words in the
/// header). Use it to inspect a region of any size without reading it whole.
/// @param what its name or path, for messages.
/// @throws Error layout as inspect() (also when `header` is shorter than 816 bytes).
SHMLINK_EXPORT RegionInfo inspect(std::span<const std::byte> header, std::uint64_t file_size, std::string_view what);

/// Opens `name_or_path` ("/x" or "x" = /dev/shm/x; a path with another '/' is used as given)
/// read-only (O_NOFOLLOW | O_NONBLOCK: a link is refused, a FIFO cannot block), checks it is a
/// regular file and reads its 816-byte header with pread (never mapped, so a file shrunk
/// meanwhile cannot raise SIGBUS); inspect()s the header against the file's size. Only the
/// header is read, whatever the size. Never writes, never takes a lock.
/// @throws Error not_found, permission (opening), layout (as inspect(), also for an empty file,
///         a symbolic link (not followed), a file that is not regular, and a file that ends before its
///         header: it shrank while being read).
SHMLINK_EXPORT RegionInfo inspect_file(const std::string& name_or_path);

/// Cheap test for listings: could a file of `file_size` bytes whose first bytes are `head`
/// (at least 1024 bytes, or the whole file if shorter) be a VILLAS v1.x region? Only the first
/// 816 bytes are read. No exceptions.
SHMLINK_EXPORT bool looks_like_region(std::span<const std::byte> head, std::uint64_t file_size) noexcept;

}  // namespace shmlink::villas
