// SPDX-License-Identifier: MIT
/// @file segment.hpp
/// @brief Shared-memory backings and RAII mappings: a file in a directory (tmpfs, hugetlbfs,
/// any path) or an anonymous memfd, mapped `MAP_SHARED`.
///
/// Segments are created complete before they become visible: `Segment::create_file` builds the
/// file under a temporary name in the target directory, lets the caller fill it, and only then
/// links it under its real name (docs/design/streams.md, "Creation").
#pragma once

#include <shmlink/channel.hpp>
#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink {

/// How a create/open call treats an existing or missing resource (iceoryx-style explicit modes).
enum class OpenMode {
  ExclusiveCreate,  ///< create; fail with Errc::exists if it is already there
  PurgeAndCreate,   ///< create; atomically replace an existing one (new inode, readers keep the old)
  OpenOrCreate,     ///< open it if present (validating it), otherwise create it
  OpenExisting,     ///< open; fail with Errc::not_found if it is absent
};

/// A `MAP_SHARED` mapping owned by this object; unmapped on destruction. Move-only.
class SHMLINK_EXPORT Mapping {
 public:
  Mapping() noexcept = default;
  /// Maps `size` bytes of `fd` from offset 0.
  /// @param what the resource name used in error messages (a path).
  /// @param writable PROT_READ|PROT_WRITE when true, else PROT_READ.
  /// @throws Error (Errc::system, Errc::no_space) naming `what` when mmap fails.
  Mapping(int fd, std::size_t size, bool writable, std::string_view what);
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  /// First byte of the mapping (page aligned), or nullptr when empty.
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  /// Length of the mapping in bytes.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// The mapped bytes.
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  /// Unmaps now.
  void reset() noexcept;

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A shared-memory backing (file or memfd) plus its whole-file mapping. Move-only; closing
/// unmaps and closes the descriptor but never removes the file.
class SHMLINK_EXPORT Segment {
 public:
  /// Called on a freshly created, zero-filled, still invisible segment to fill it before it is
  /// published under its final name. Throwing aborts the creation and removes the temporary.
  using Initializer = std::function<void(Segment& fresh)>;

  Segment() noexcept = default;
  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  /// Creates a file of exactly `size` bytes at `path` (any file system: tmpfs, hugetlbfs, disk).
  /// The file is built under a temporary name in the same directory, its blocks are allocated
  /// (`posix_fallocate`, so a full tmpfs fails here rather than with SIGBUS later), `init` fills
  /// it, and only then it is linked as `path`: ExclusiveCreate with `renameat2(RENAME_NOREPLACE)`,
  /// PurgeAndCreate with `rename` (a new inode; mappings of the old file stay valid).
  /// @param mode ExclusiveCreate or PurgeAndCreate (the others throw Errc::invalid_argument).
  /// @param permissions file mode bits, applied with fchmod (the umask is not consulted).
  /// @throws Error exists / permission / no_space / not_found (missing directory) / system,
  ///         each naming `path`.
  static Segment create_file(const std::string& path, std::size_t size, OpenMode mode,
                             mode_t permissions, const Initializer& init);

  /// Opens and maps an existing file read-write (or read-only) in full. Opens with O_NONBLOCK, so
  /// a FIFO or device under the name never blocks, and refuses anything that is not a regular
  /// file before touching it. A symbolic link is followed (its target must be a regular file).
  /// @throws Error not_found / permission / system naming `path`; layout when the file is empty
  ///         or not a regular file (the message says what it is: a FIFO, a directory, ...).
  static Segment open_file(const std::string& path, bool writable = true);

  /// Creates an anonymous memfd of `size` bytes (MFD_CLOEXEC|MFD_ALLOW_SEALING), maps it and
  /// seals its size (F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL) so a peer cannot truncate it.
  /// @param name the memfd's name as shown in /proc/PID/fd (at most 249 bytes).
  static Segment create_memfd(const std::string& name, std::size_t size);

  /// Adopts a descriptor received from a peer (e.g. by SCM_RIGHTS) and maps its whole size.
  /// Takes ownership of `fd` even when it throws.
  static Segment adopt_fd(int fd, const std::string& what, bool writable = true);

  /// The mapping's first byte.
  [[nodiscard]] std::byte* data() const noexcept { return map_.data(); }
  /// The mapping's length in bytes (= the file size when mapped).
  [[nodiscard]] std::size_t size() const noexcept { return map_.size(); }
  /// The open descriptor (owned by the segment), or -1.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// The file's path ("" for memfds).
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Inode number of the backing (from fstat).
  [[nodiscard]] std::uint64_t inode() const noexcept { return inode_; }
  /// True when a backing is held.
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  /// Unmaps and closes now (the file stays).
  void close() noexcept;

 private:
  Segment(int fd, Mapping map, std::string path, std::uint64_t inode) noexcept;
  int fd_ = -1;
  Mapping map_;
  std::string path_;
  std::uint64_t inode_ = 0;
};

/// Processes that have the file at `path` open (a descriptor) or mapped, found by scanning
/// /proc/<pid>/fd and /proc/<pid>/maps for the file's device and inode. The calling process is
/// included when it holds the file. Processes whose /proc entries this process may not read
/// (other users', unless root) cannot be inspected: their number goes to `*uninspectable`.
/// @return pids, ascending; empty when nobody holds it or the file does not exist.
SHMLINK_EXPORT std::vector<int> processes_using(const std::string& path, int* uninspectable = nullptr);

/// processes_using() for several files in one scan of /proc (one pass over each process's
/// descriptors and maps, however many files): element i lists the processes holding `paths[i]`,
/// ascending (empty for a file that does not exist). `*uninspectable` counts the processes whose
/// /proc entries could not be read and that were not found holding every file.
SHMLINK_EXPORT std::vector<std::vector<int>> processes_using_each(const std::vector<std::string>& paths,
                                                                  int* uninspectable = nullptr);

/// True when `file_name` (a name, not a path) is what Segment::create_file calls a file it is
/// still building and has not published yet: "." + the final file name + "." + the six letters or
/// digits mkostemp(3) chose, e.g. ".wfs.im.shm.Ab3xZ9" for "wfs.im.shm". Only final names that end
/// in ".shm" count, as every shmlink channel file does (".im.shm", ".queue.shm", ".memif.shm",
/// ".region.shm"), so other programs' dot files in a shared /dev/shm are never taken for ours.
/// Directory listings (list_channels(), include/shmlink/catalog.hpp) and `shmlink gc` use it.
SHMLINK_EXPORT bool is_temporary_name(std::string_view file_name) noexcept;

/// Runs `read`, which reads a mapping of a file that another process may shrink (truncate in
/// place, as DAO's re-creation does), so that a read past the file's new end does not kill the
/// process with SIGBUS: the faulting page reads as zeros and this returns true, telling the
/// caller to discard what was read. Only the calling thread is guarded, and only against that
/// fault (si_code BUS_ADRERR, an address in `range`): a SIGBUS of another thread, at another
/// address or of another kind (a memory error, a signal sent by kill(2)) goes to the action in
/// place before (by default it kills the process), as if no guard were there. The handler is
/// process-wide: concurrent calls are serialised (one guarded `read` at a time), and `read` must
/// not start threads that read the range (their faults are not absorbed).
/// @param range the addresses guarded (a channel's whole mapping); empty: every address (for a
///        `read` that makes the mapping itself, e.g. an open).
/// @return true when an access in `read` faulted (what it read is garbage), false otherwise.
/// @throws whatever `read` throws (the previous SIGBUS action is restored first).
SHMLINK_EXPORT bool read_guarded(std::span<const std::byte> range, const std::function<void()>& read);

}  // namespace shmlink
