// SPDX-License-Identifier: MIT
/// @file stream.hpp
/// @brief Named, typed N-d array streams whose files are byte-compatible with milk/cacao
/// ImageStreamIO 2.00 (docs/reference/imagestreamio.md, sections 2-12; "reference section N" below).
///
/// A stream is one file `<dir>/<name>.im.shm` holding a 384-byte metadata block, the current
/// frame, keywords, in-file POSIX semaphores (one per reader slot, plus semlog), PID arrays and
/// proc traces. One process writes frames; any number of processes read them by copy (validated
/// by a seqlock on the write flag and cnt0), by zero-copy view, and wait for new frames by
/// futex, by spinning on cnt0, or on an in-file semaphore as milk readers do.
///
/// Axis convention: `shape[0]` is ISIO's `size[0]`, the fastest-varying axis (x, image width);
/// element (x, y, z) lives at `data[(z * size[1] + y) * size[0] + x]` (reference section 7).
/// A numpy C-order array of shape (z, y, x) therefore maps to `shape = {x, y, z}`.
///
/// Rolling buffers (DAO's FIFO, ISIO's 3-axis circular buffer, reference 11.2 and 17.8): a stream
/// created with `StreamSpec::depth` N >= 2 is a 3-axis ISIO file whose last axis holds N frames
/// (slices), with imagetype CIRCULAR_BUFFER | ZAXIS_TEMPORAL. Each write fills the next slice,
/// stores its number in cnt1 and fills the slice's cntarray / atimearray / writetimearray
/// entries. "A frame" is then one slice: frame_bytes(), write(), read_copy() and view() work on
/// slices, and read_next() / read_frame() / read_slice() reach the history. Any 3-axis file whose
/// imagetype's low nibble is CIRCULAR_BUFFER is a rolling buffer (is_rolling_buffer()), as in
/// ImageStreamIO, also without ZAXIS_TEMPORAL: its frames are then placed by cnt0 and cnt1 alone.
///
/// Partial (packetised) writes: write_packet() + finalize_packets(). Which packets of which frame
/// arrived is recorded in a companion stream `<name>_pkt`, outside the ISIO metadata, so plain
/// ISIO tools still open the stream.
///
/// Timestamps are nanoseconds since the Unix epoch on CLOCK_REALTIME, stored in the file as
/// `struct timespec`. (ImageStreamIO writes CLOCK_TAI, which equals CLOCK_REALTIME unless the
/// kernel's TAI offset is set; compare like with like.)
#pragma once

#include <shmlink/channel.hpp>  // kForever, kMaxStreamName, stream_directory(), the name rule
#include <shmlink/error.hpp>
#include <shmlink/export.h>
#include <shmlink/placement.hpp>
#include <shmlink/segment.hpp>

#include <chrono>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace shmlink {

/// Element types, numbered exactly as ImageStreamIO's `_DATATYPE_*` codes (reference section 6).
enum class Dtype : std::uint8_t {
  u8 = 1, i8 = 2, u16 = 3, i16 = 4, u32 = 5, i32 = 6, u64 = 7, i64 = 8,
  f32 = 9, f64 = 10, c64 = 11, c128 = 12, f16 = 13,
};

/// An IEEE 754 binary16 value stored as its bit pattern (ISIO datatype 13, numpy float16).
struct f16 {
  std::uint16_t bits;
};

/// Size in bytes of one element of `t` (1, 2, 4, 8 or 16); 0 for an unknown code.
constexpr std::size_t dtype_size(Dtype t) noexcept {
  switch (t) {
    case Dtype::u8: case Dtype::i8: return 1;
    case Dtype::u16: case Dtype::i16: case Dtype::f16: return 2;
    case Dtype::u32: case Dtype::i32: case Dtype::f32: return 4;
    case Dtype::u64: case Dtype::i64: case Dtype::f64: case Dtype::c64: return 8;
    case Dtype::c128: return 16;
  }
  return 0;
}

/// True when `code` is a datatype code shmlink streams accept (1..13).
constexpr bool dtype_valid(std::uint8_t code) noexcept { return code >= 1 && code <= 13; }

/// The numpy name of a dtype ("uint16", "float32", "complex64", "float16"); "invalid" otherwise.
SHMLINK_EXPORT std::string_view dtype_name(Dtype t) noexcept;
/// The short name ("u16", "f32", "c64", "f16"); "invalid" otherwise.
SHMLINK_EXPORT std::string_view dtype_short_name(Dtype t) noexcept;
/// Parses a numpy name ("uint16", "float32", "complex128"), a short name ("u16", "f32", "c64")
/// or an ISIO short name ("UI16", "FLT", "CFLT"); nullopt when unknown.
SHMLINK_EXPORT std::optional<Dtype> parse_dtype(std::string_view text) noexcept;

/// The Dtype of a C++ element type (`dtype_of<std::uint16_t>() == Dtype::u16`).
template <class T>
constexpr Dtype dtype_of() noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, std::uint8_t>) return Dtype::u8;
  else if constexpr (std::is_same_v<U, std::int8_t>) return Dtype::i8;
  else if constexpr (std::is_same_v<U, std::uint16_t>) return Dtype::u16;
  else if constexpr (std::is_same_v<U, std::int16_t>) return Dtype::i16;
  else if constexpr (std::is_same_v<U, std::uint32_t>) return Dtype::u32;
  else if constexpr (std::is_same_v<U, std::int32_t>) return Dtype::i32;
  else if constexpr (std::is_same_v<U, std::uint64_t>) return Dtype::u64;
  else if constexpr (std::is_same_v<U, std::int64_t>) return Dtype::i64;
  else if constexpr (std::is_same_v<U, float>) return Dtype::f32;
  else if constexpr (std::is_same_v<U, double>) return Dtype::f64;
  else if constexpr (std::is_same_v<U, std::complex<float>>) return Dtype::c64;
  else if constexpr (std::is_same_v<U, std::complex<double>>) return Dtype::c128;
  else if constexpr (std::is_same_v<U, f16>) return Dtype::f16;
  else static_assert(sizeof(U) == 0, "no ISIO datatype for this element type");
}

/// ISIO `imagetype` bits (reference section 3).
inline constexpr std::uint64_t kImagetypeCircularBuffer = 0x0001;
inline constexpr std::uint64_t kImagetypeMathData = 0x0002;
inline constexpr std::uint64_t kImagetypeReceived = 0x0004;
inline constexpr std::uint64_t kImagetypeSent = 0x0008;
inline constexpr std::uint64_t kImagetypeZaxisTemporal = 0x20000;

/// True when a stream of `naxis` axes and ISIO `imagetype` is a rolling buffer, exactly as
/// ImageStreamIO treats it (reference section 3): 3 axes (ImageStreamIO_nbSlices, writeIndex and
/// readLastWroteIndex look only at naxis == 3) and imagetype's low nibble equal to
/// CIRCULAR_BUFFER (ImageStreamIO_readBufferAt, behind writeBuffer and readLastWroteBuffer, gives
/// any other stream its data area's start). The newest frame is then slice cnt1 of the last axis
/// and a write goes to slice (cnt1 + 1) % size[2]; a cnt1 of size[2] or more names no slice, and
/// the newest frame is then unreadable (readBufferAt fails; shmlink's reads return
/// Errc::layout). The ZAXIS_TEMPORAL bit is not needed; with it (imagetype & 0xF000F == 0x20001)
/// the file also has the per-slice cntarray, atimearray and writetimearray, which shmlink uses to
/// place and validate history frames. The one rule for "rolling" in the library, its bindings
/// and the CLI.
constexpr bool is_rolling_buffer(std::size_t naxis, std::uint64_t imagetype) noexcept {
  return naxis == 3 && (imagetype & 0xF) == kImagetypeCircularBuffer;
}

/// Most semaphore slots a stream may have: every count ISIO's `sem` field (uint16) can hold, so
/// that any stream ImageStreamIO or milk creates opens (0 included: a stream without semaphore
/// slots, waited on by futex or spin only). Each slot costs 48 bytes of file (sem_t, semReadPID,
/// semWritePID, semctrl, semstatus) and one post per write; the file's size must match the count.
inline constexpr std::uint16_t kMaxSemaphores = 65535;
/// Longest string keyword value in bytes: ISIO's `valstr` is char[16], with no terminating NUL
/// when the value fills it (reference 4.1).
inline constexpr std::size_t kMaxKeywordString = 16;
/// ImageStreamIO's cap on a semaphore's value when posting (`SEMAPHORE_MAXVAL`).
inline constexpr int kSemaphoreMaxValue = 10;
/// Most packets a packetised frame may have (DAO's MAX_NB_PARTIAL_PACKET).
inline constexpr std::uint32_t kMaxPackets = 512;
/// Default spin budget of futex waits before sleeping (docs/design/streams.md, "Reader protocols").
inline constexpr std::chrono::nanoseconds kDefaultSpin = std::chrono::microseconds(2);

/// The file of a stream: a name without '/' becomes `<stream_directory()>/<name>.im.shm`; a
/// name containing '/' is a path used as given (DAO style, e.g. "/tmp/x.im.shm").
/// @throws Error(invalid_argument) for an empty name; Error(name_too_long) when the stream name
/// (the path's basename without ".im.shm") exceeds kMaxStreamName bytes.
SHMLINK_EXPORT std::string stream_path(std::string_view name_or_path);

/// The stream name stored in the file for `name_or_path` (basename without ".im.shm").
SHMLINK_EXPORT std::string stream_name(std::string_view name_or_path);

/// The message for semaphore `index` that a stream of `count` slots does not have, naming the
/// stream (escaped, escape_name()): "stream 'wfs' has no semaphores" when count is 0, else
/// "semaphore 12 is outside 0..9 of stream 'wfs'". Used by the C API, Python and the CLI.
SHMLINK_EXPORT std::string semaphore_index_error(long long index, int count, std::string_view stream);

/// What a new stream looks like. Defaults give a plain ISIO stream (10 semaphores, MATH_DATA).
struct StreamSpec {
  /// Axis lengths in ISIO order (shape[0] fastest): 1 to 3 axes, each >= 1.
  std::vector<std::uint32_t> shape;
  /// Element type.
  Dtype dtype = Dtype::f32;
  /// Keyword slots (ISIO NBkw), 0..65535; each 128 bytes in the file.
  std::uint16_t keywords = 0;
  /// Semaphore slots (ISIO `sem`), 0..kMaxSemaphores (0: no slot; readers wait by futex or
  /// spin, and semaphore calls return out_of_range).
  std::uint16_t semaphores = 10;
  /// ISIO imagetype bits; `kImagetypeCircularBuffer | kImagetypeZaxisTemporal` adds the
  /// per-slice time and counter arrays (requires 3 axes).
  std::uint64_t imagetype = kImagetypeMathData;
  /// Depth of ISIO's fast circular buffer (CBsize), 0 = none.
  std::uint32_t circular_buffer = 0;
  /// Rolling-buffer depth (DAO's FIFO `depth`). 0 or 1: a plain stream. N >= 2: `shape` (1 or 2
  /// axes) is one frame and the file gets a third axis of N slices, with imagetype
  /// CIRCULAR_BUFFER | ZAXIS_TEMPORAL added (so its temporal arrays exist). A 3-axis `shape`
  /// whose imagetype's low nibble is CIRCULAR_BUFFER is a rolling buffer of depth shape[2] as it
  /// is (is_rolling_buffer(); the temporal arrays only with ZAXIS_TEMPORAL too).
  std::uint32_t depth = 0;
  /// File permission bits (0600 by default; 0660/0666 for multi-user milk set-ups): read and
  /// write bits only (check_channel_permissions(); create refuses others with invalid_argument).
  mode_t permissions = 0600;
  /// Version string written into the file (ISIO readers compare it with their own).
  std::string version = "2.00";
};

/// How `Stream::open` validates a file.
struct OpenOptions {
  /// Version strings accepted in the file's `version` field.
  std::vector<std::string> accepted_versions = {"2.00"};
  /// Map read-write (default; needed for writing and for every semaphore operation, since the
  /// semaphores live in the file) or read-only (for tools inspecting other users' streams:
  /// mutating calls then return Errc::permission, claim_semaphore returns -1, sem_flush 0, and
  /// wait_futex sleeps in 10 ms slices because it can neither register as a waiter nor claim
  /// a semaphore slot: frames of writers that do not wake futexes are seen within 10 ms).
  bool writable = true;
};

/// A keyword value: ISIO type 'L' (int64), 'D' (double) or 'S' (string of at most
/// kMaxKeywordString = 16 bytes; stored without a terminating NUL when it is 16 bytes long).
using KeywordValue = std::variant<std::int64_t, double, std::string>;

/// One keyword as stored in the file (reference section 4.1).
struct Keyword {
  std::string name;     ///< at most 15 bytes
  KeywordValue value;   ///< 'L', 'D' or 'S'
  std::string comment;  ///< at most 79 bytes
  std::uint64_t count = 0;  ///< incremented on each write of this keyword
};

/// Counters and times of one frame.
struct FrameInfo {
  std::uint64_t cnt0 = 0;        ///< frame counter, +1 per update
  std::uint64_t cnt1 = 0;        ///< last slice written (rolling buffers)
  std::uint64_t cnt2 = 0;        ///< frame id / event count, as the writer set it
  std::int64_t atime_ns = 0;     ///< acquisition time, ns since the epoch
  std::int64_t writetime_ns = 0; ///< time the frame was published, ns since the epoch
};

/// Options of one write.
struct WriteOptions {
  /// Acquisition time to store (ns since the epoch); negative = the write time.
  std::int64_t atime_ns = -1;
  /// When set, stored in cnt2 (DAO's frame id).
  std::optional<std::uint64_t> frame_id;
  /// Post the in-file semaphores and semlog (for milk/DAO semaphore readers). On by default.
  bool post_semaphores = true;
};

/// A snapshot of a stream's metadata, for tools.
struct StreamInfo {
  std::string name;                  ///< name field of the file
  std::string path;                  ///< file path (a placed stream: Placement::path)
  std::string version;               ///< version field
  std::vector<std::uint32_t> shape;  ///< ISIO order
  Dtype dtype = Dtype::f32;
  std::uint64_t nelement = 0;
  std::uint64_t frame_bytes = 0;     ///< bytes of one frame (one slice of a rolling buffer)
  std::uint64_t data_bytes = 0;      ///< imdatamemsize: the whole data area
  std::uint32_t depth = 1;           ///< rolling-buffer slices; 1 for a plain stream
  bool rolling = false;              ///< is_rolling_buffer(): newest frame = slice cnt1
  std::uint64_t file_bytes = 0;      ///< bytes of the layout (the file size of a stream file)
  std::uint64_t imagetype = 0;
  std::uint16_t semaphores = 0;
  std::uint16_t keyword_slots = 0;
  std::uint32_t circular_buffer = 0;
  std::int32_t creator_pid = 0;
  std::int32_t owner_pid = 0;
  std::uint64_t inode = 0;
  bool write_flag = false;
  FrameInfo frame;                   ///< counters and times (racy snapshot)
  std::int64_t creation_time_ns = 0;
  std::int64_t last_access_time_ns = 0;
  std::vector<std::int32_t> sem_read_pids;   ///< semReadPID per slot (0 or -1 = free)
  std::vector<std::int32_t> sem_write_pids;  ///< semWritePID per slot (-1 = never posted)
  std::vector<int> sem_values;               ///< current value of each slot's semaphore
};

/// A handle on one stream file. Move-only; destruction unmaps but never removes the file.
///
/// Thread safety: one writer at a time per stream (across all processes); any number of
/// readers. Const members may be called concurrently from many threads.
///
/// Memory ordering: `write()` / `commit_write()` publish a frame with a release increment of
/// cnt0 (SYNC POINT A) followed by a release store of write = 0 (SYNC POINT B). A reader that
/// observes the new cnt0 through `cnt0()`, `wait_futex()`, `wait_spin()` (acquire loads pairing
/// with A) sees the complete frame data and timestamps of that update, unless a later update
/// has started meanwhile; `read_copy()` detects that case with the seqlock and retries.
/// Semaphore posts happen after B, so a milk reader woken by a post sees cnt0 and write = 0.
class SHMLINK_EXPORT Stream {
 public:
  Stream() noexcept;
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  /// Creates a stream file laid out as ImageStreamIO 2.00 (reference sections 5 and 9), filled
  /// completely (semaphores sem_init'ed process-shared, semlog too, PID arrays -1, proc traces,
  /// keywords 'N') under a temporary name, `version` written last with release ordering, then
  /// linked as `stream_path(name_or_path)`.
  /// PurgeAndCreate wakes the replaced file's futex waiters (they return Errc::replaced) and
  /// posts its semaphores once, so milk readers blocked on it wake and can notice the change.
  /// It also removes the replaced file's partial-write companion (`<name>_pkt`).
  /// @param mode ExclusiveCreate (default), PurgeAndCreate (replace: new inode), OpenOrCreate
  ///        (open an existing file if it validates and has the spec's shape and dtype, else
  ///        Errc::layout naming both; create it when absent), OpenExisting (= open()). Only
  ///        OpenExisting may ask the bridge service for a remote name (as open()); the other
  ///        modes look at the local file only.
  /// @throws Error invalid_argument (bad shape, dtype, semaphore count, circular-buffer rule),
  ///         name_too_long, exists, permission, no_space, system: each naming the file.
  static Stream create(std::string_view name_or_path, const StreamSpec& spec,
                       OpenMode mode = OpenMode::ExclusiveCreate);

  /// Opens an existing stream read-write (semaphores live in the file) and validates it:
  /// version, file size against the layout recomputed from the metadata, naxis, sizes, dtype,
  /// nelement, imdatamemsize, semaphore and proc-trace counts.
  ///
  /// Remote names (include/shmlink/remote.hpp, docs/bridge.md "Opening remote channels"): when
  /// the local file does not exist (ENOENT) and `name_or_path` is "HOST:NAME" (a file of that
  /// literal name is tried first and wins), or a plain name while remote::remote_open_enabled(),
  /// the bridge service of this host is asked for a replica (waiting at most
  /// remote::open_timeout()) and the replica file it answers is opened. Paths (a '/') never ask.
  /// @throws Error not_found, permission, layout (naming the file and the field), system; for a
  ///         remote name the service's error (not_found at once when no service runs), its
  ///         message naming the missing local file and the service's socket.
  static Stream open(std::string_view name_or_path, const OpenOptions& options = {});

  /// Removes the stream file (the name; open handles keep their mapping), and its partial-write
  /// companion `<name>_pkt` when one exists (only a companion of this very file: a stream that
  /// merely has that name stays).
  /// @throws Error not_found / permission naming the file.
  static void remove(std::string_view name_or_path);

  // ---- placement: a stream in memory someone else provides (include/shmlink/placement.hpp) ----
  /// The exact number of bytes create_in() lays out for `spec`: the file size of the same stream
  /// created by create() (ImageStreamIO's size, reference section 5).
  /// @throws Error invalid_argument as create() does (bad shape, dtype, circular-buffer rule, ...).
  static std::size_t bytes_for(const StreamSpec& spec);

  /// Lays out a stream in `where.bytes` exactly as create() lays out a file (same bytes, from the
  /// stream's first byte): name = `where.name`, md->inode = `where.ino`, the version written last
  /// with release ordering (SYNC POINT V), so that open_in() in another process sees a complete
  /// stream or none. The bytes must be zero-filled, invisible to other processes until this
  /// returns, start on a 64-byte boundary and hold at least bytes_for(spec) bytes (any beyond
  /// are left untouched). The handle keeps `where` (and so `where.owner`) until it closes.
  /// @throws Error invalid_argument (as create(), a span smaller than bytes_for(spec), a start
  ///         not 64-byte aligned), name_too_long / invalid_argument (the name rule,
  ///         check_channel_name()), permission (`where.writable` false); each naming `where.path`.
  static Stream create_in(const Placement& where, const StreamSpec& spec);

  /// Opens the stream laid out at the start of `where.bytes`, with every check open() makes,
  /// against the span: the layout its metadata describes must fit in `where.bytes.size()` (a
  /// file must match it exactly; a placement may be larger). Nothing outside the span is ever
  /// read or written, whatever a peer wrote into the metadata.
  /// @throws Error layout (naming `where.path` and the field), permission (read-write asked of a
  ///         read-only placement), invalid_argument (a start not 64-byte aligned).
  static Stream open_in(const Placement& where, const OpenOptions& options = {});

  /// True while a stream is held.
  [[nodiscard]] bool valid() const noexcept { return impl_ != nullptr; }
  /// Unmaps and closes (the file stays), giving back a semaphore slot wait_futex() claimed.
  /// Idempotent.
  void close() noexcept;

  // ---- geometry -----------------------------------------------------------------------
  /// Stream name (from the metadata; Placement::name when the metadata's is empty).
  [[nodiscard]] const std::string& name() const noexcept;
  /// File path (a placed stream: Placement::path, e.g. "REGION_PATH:NAME").
  [[nodiscard]] const std::string& path() const noexcept;
  /// Axis lengths, ISIO order (shape()[0] fastest), naxis entries.
  [[nodiscard]] std::span<const std::uint32_t> shape() const noexcept;
  /// Element type.
  [[nodiscard]] Dtype dtype() const noexcept;
  /// ISIO's nelement: elements of the whole data area (all slices of a rolling buffer).
  [[nodiscard]] std::uint64_t nelement() const noexcept;
  /// Bytes of one frame: imdatamemsize, or one slice (imdatamemsize / depth) of a rolling buffer.
  [[nodiscard]] std::size_t frame_bytes() const noexcept;
  /// Elements of one frame (nelement / depth).
  [[nodiscard]] std::uint64_t frame_elements() const noexcept;
  /// Bytes of the whole data area (imdatamemsize).
  [[nodiscard]] std::size_t data_bytes() const noexcept;
  /// Slices of a rolling buffer (size[2] of a stream is_rolling_buffer() names); 1 for every
  /// other stream.
  [[nodiscard]] std::uint32_t depth() const noexcept;
  /// True for a rolling buffer (depth() counts its slices).
  [[nodiscard]] bool rolling() const noexcept;
  /// Shape of one frame: shape() without its last axis for a rolling buffer (and without its
  /// unit y axis when size[1] is 1: a 1-axis frame), else shape().
  [[nodiscard]] std::span<const std::uint32_t> frame_shape() const noexcept;
  /// Semaphore slots in the file.
  [[nodiscard]] int semaphore_count() const noexcept;
  /// Keyword slots in the file.
  [[nodiscard]] int keyword_slots() const noexcept;
  /// Full metadata snapshot (racy: counters may move while it is taken).
  [[nodiscard]] StreamInfo info() const;
  /// Inode recorded in the metadata at creation.
  [[nodiscard]] std::uint64_t inode() const noexcept;
  /// True when the file at path() is no longer the one this handle maps: the stream was
  /// re-created (PurgeAndCreate, or ISIO's unlink + create: a new inode) or removed. The handle
  /// stays valid on the old file; re-open with `Stream::open(path())` to follow the stream.
  /// Costs one stat(2). A placed stream (create_in/open_in): true when its placement's
  /// `still_current` returns false (a region entry removed or reused); false without one.
  [[nodiscard]] bool replaced() const noexcept;
  /// True while the file this handle maps still covers the whole mapping (one fstat(2) of the
  /// open descriptor). False once the file was truncated in place, as ImageStreamIO and DAO
  /// re-create a stream of the same name (open with truncation, then re-size): every access to
  /// the mapping (view() spans, reads, cnt0()) then raises SIGBUS, a signal the library cannot
  /// catch for you. Tools and long-running readers that may meet foreign writers call it before
  /// touching the mapping after a pause (wait_futex() does after each poll slice); a truncation
  /// racing between the check and the access still faults. A placed stream: its backing
  /// (Placement::fd) must cover `offset + bytes.size()`; always true without a descriptor.
  [[nodiscard]] bool file_intact() const noexcept;

  // ---- writing ----------------------------------------------------------------------
  /// Publishes one frame: write = 1, release fence, copy, timestamps, the wake stamp (the new
  /// cnt0's low 32 bits, in metadata padding: tells wait_futex() this writer wakes futexes),
  /// cnt0 += 1 (release), write = 0 (release), futex wake if anyone waits, then post every
  /// semaphore slot whose value is below 10 (recording semWritePID) and semlog (reference
  /// section 11.2).
  /// A rolling buffer's frame goes to slice (cnt1 + 1) % depth; cnt1 becomes that slice and the
  /// slice's cntarray (the new cnt0), atimearray and writetimearray entries are filled before
  /// cnt0 is incremented. (A new stream's first frame therefore lands in slice 1, as in ISIO.)
  /// A placed stream whose placement is no longer current (a region entry removed by another
  /// process: Placement::current_word changed) is not written: the check costs one relaxed load
  /// and a compare. A stream file that was re-created is still written (its old inode is this
  /// handle's own; replaced() tells, at the cost of a stat).
  /// @param frame exactly frame_bytes() bytes, C order.
  /// @return ok, size_mismatch, closed, permission, replaced (the region entry was removed: re-open
  ///         it by name). Never blocks, never allocates.
  Status write(std::span<const std::byte> frame, const WriteOptions& options = {}) noexcept;

  /// Typed write: also checks that T matches dtype() (dtype_mismatch) and the element count.
  template <class T>
  Status write(std::span<const T> frame, const WriteOptions& options = {}) noexcept {
    if (!valid()) return Errc::closed;
    if (dtype_of<T>() != dtype()) return Errc::dtype_mismatch;
    return write(std::as_bytes(frame), options);
  }

  /// Zero-copy write, step 1: sets write = 1 (seqlock open) and returns the frame to fill in
  /// place (a rolling buffer's next slice). Must be followed by commit_write(). Calling it again
  /// before commit_write() returns the same frame. Empty span when closed or read-only, or when a
  /// placed stream's placement is no longer current (write() would return replaced).
  std::span<std::byte> begin_write() noexcept;
  /// Zero-copy write, step 2: timestamps, cnt0 += 1, write = 0, wake and post, as write().
  Status commit_write(const WriteOptions& options = {}) noexcept;

  // ---- reading ----------------------------------------------------------------------
  /// Copies the current frame (a rolling buffer's newest slice) into `out`, validated by the seqlock (write flag + cnt0): the
  /// copy is retried while a writer is active or cnt0 moved during it, so a torn frame is
  /// never returned.
  /// @param out exactly frame_bytes() bytes.
  /// @param info receives the counters and times of the copied frame.
  /// @param max_attempts attempts before giving up.
  /// @return ok; size_mismatch; writer_active when the write flag stayed set for 200 ms while
  ///         cnt0 did not move (a writer that died mid-write); torn when every attempt collided
  ///         with a new write, or a live writer left no gap between writes for 1 s; layout when
  ///         the stream is a rolling buffer whose cnt1 names no slice (cnt1 >= depth(): the
  ///         newest frame is unknown, as for ImageStreamIO's readLastWroteBuffer, which fails;
  ///         rolling_layout_error() says so in words).
  Status read_copy(std::span<std::byte> out, FrameInfo* info = nullptr,
                   int max_attempts = 1000) const noexcept;

  // ---- rolling buffers (history) -------------------------------------------------------
  /// Sequential reading, DAO's get_next_frame: copies the frame after the handle's tail (the
  /// cnt0 of the last frame it returned; set to the newest frame by create/open and reset_tail).
  /// Works on plain streams too, where only the newest frame exists.
  /// @param out exactly frame_bytes() bytes.
  /// @param info counters and times of the frame copied.
  /// @param skipped receives the number of frames lost (0 unless the result is overwritten).
  /// @param timeout when no new frame exists: 0 returns would_block at once, otherwise waits
  ///        (wait_futex, so every frame of a writer that only posts semaphores wakes it too) up
  ///        to `timeout` for one.
  /// @return ok (the next frame in order; the tail advances by one); overwritten (the reader
  ///         was lapped, or on a plain stream frames came faster than it read: `out` holds the
  ///         newest frame, the tail jumps to it, `skipped` says how many were lost); would_block
  ///         (nothing new, timeout 0); timeout; interrupted; replaced; writer_active; torn;
  ///         layout (a rolling buffer whose cnt1 names no slice, as read_copy()); size_mismatch;
  ///         closed.
  /// Memory ordering: as read_copy(); the copy is validated by the slice's cntarray entry and
  /// cnt0 (see docs/design/streams.md "Rolling buffers").
  Status read_next(std::span<std::byte> out, FrameInfo* info = nullptr, std::uint64_t* skipped = nullptr,
                   std::chrono::nanoseconds timeout = std::chrono::nanoseconds::zero()) noexcept;
  /// cnt0 of the last frame read_next() returned (0 before any frame was written).
  [[nodiscard]] std::uint64_t tail() const noexcept;
  /// Moves the tail to the newest frame (DAO's reset_tail); returns its cnt0.
  std::uint64_t reset_tail() noexcept;
  /// Sets the tail: read_next() then returns frame `cnt0 + 1` if it is still in the buffer
  /// (e.g. `set_tail(cnt0() - depth())` replays the whole history; its oldest frame only while
  /// no write is in progress, since that write is overwriting it).
  void set_tail(std::uint64_t cnt0) noexcept;
  /// Copies the frame whose cnt0 is `cnt0` from a rolling buffer's history (or the newest
  /// frame of a plain stream when `cnt0` is its cnt0), validated like read_next().
  /// @return ok; would_block (not written yet); overwritten (no longer in the buffer, or
  ///         overwritten during the copy); size_mismatch; writer_active; torn; layout (a rolling
  ///         buffer without the temporal arrays whose cnt1 names no slice: frames cannot be
  ///         placed); closed.
  Status read_frame(std::uint64_t cnt0, std::span<std::byte> out, FrameInfo* info = nullptr) const noexcept;
  /// Copies slice `slice` (DAO's get_arbitrary_frame: `slice % depth()`), validated.
  /// @return ok; would_block (the slice was never written); torn (it kept being overwritten);
  ///         writer_active (a commit into it stalled for 200 ms); layout (as read_frame());
  ///         size_mismatch; closed.
  Status read_slice(std::uint32_t slice, std::span<std::byte> out, FrameInfo* info = nullptr) const noexcept;
  /// Counters and times of slice `slice % depth()` from the temporal arrays (cnt0 from
  /// cntarray, 0 when never written; cnt1 = the slice), racy. On a plain stream: frame_info().
  /// A rolling buffer without the temporal arrays (no ZAXIS_TEMPORAL) has no per-slice record:
  /// cnt0 is then derived from cnt0 and cnt1 (the newest frame is slice cnt1, the one before it
  /// slice cnt1 - 1, ...), and the times are those of the newest frame for its slice, 0 for the
  /// others; cnt0 is 0 when cnt1 names no slice (cnt1 >= depth()).
  [[nodiscard]] FrameInfo slice_info(std::uint32_t slice) const noexcept;
  /// Zero-copy view of slice `slice % depth()` (unvalidated, as view()).
  [[nodiscard]] std::span<const std::byte> view_slice(std::uint32_t slice) const noexcept;

  // ---- partial (packetised) writes ----------------------------------------------------
  /// Writes packet `packet_id` (0-based) of `packet_total` of the frame being assembled: copies
  /// `data` (a whole number of elements) to element `element_offset` of the frame. The first
  /// packet of a frame opens it as begin_write() does (write = 1; a rolling buffer's next
  /// slice), so validated readers keep the previous frame until finalize_packets(). Packets may
  /// come in any order and may be rewritten. Each packet is recorded in the companion stream
  /// `<name>_pkt` (created or re-initialised at this handle's first packet; see
  /// packet_status()), outside the ISIO metadata: a file next to a stream file, or, for a
  /// placed stream, a sibling in its container found or reserved through Placement::sibling
  /// (made visible with Placement::publish once laid out).
  /// @return ok; replaced (a placed stream whose region entry was removed, as write());
  ///         invalid_argument (packet_total 0 or above kMaxPackets, packet_id >= total,
  ///         total differing from the open frame's, data not whole elements; a placed stream
  ///         whose placement has no `sibling`); out_of_range
  ///         (the span ends beyond the frame); permission; closed; exists (a stream named
  ///         `<name>_pkt` exists and is not a companion: it is left alone); or the companion
  ///         stream's creation error (name_too_long, no_space, permission, system).
  Status write_packet(std::uint32_t packet_id, std::uint32_t packet_total, std::uint64_t element_offset,
                      std::span<const std::byte> data) noexcept;
  /// Typed write_packet(): also checks that T is dtype() (dtype_mismatch).
  template <class T>
  Status write_packet(std::uint32_t packet_id, std::uint32_t packet_total, std::uint64_t element_offset,
                      std::span<const T> data) noexcept {
    if (!valid()) return Errc::closed;
    if (dtype_of<T>() != dtype()) return Errc::dtype_mismatch;
    return write_packet(packet_id, packet_total, element_offset, std::as_bytes(data));
  }
  /// Packet ids of the open frame not written yet (empty when no frame is open).
  [[nodiscard]] std::vector<std::uint32_t> missing_packets() const;
  /// Publishes the frame assembled by write_packet() exactly as commit_write() does, and
  /// records it in the companion stream. Never drops what arrived: a frame with missing packets
  /// is published too (its missing regions keep the slot's previous bytes) and reported.
  /// @return ok; incomplete (published, but packets were missing: see packet_status());
  ///         would_block (no packetised frame is open); permission; closed.
  Status finalize_packets(const WriteOptions& options = {}) noexcept;

  /// Which packets of a packetised frame arrived, read from the companion stream.
  struct PacketStatus {
    std::uint64_t cnt0 = 0;              ///< the frame
    std::uint32_t total = 0;             ///< packet_total of that frame
    std::vector<std::uint32_t> missing;  ///< ids that never arrived, ascending
    /// True when every packet arrived.
    [[nodiscard]] bool complete() const noexcept { return missing.empty(); }
  };
  /// The packets of frame `cnt0` (0: the newest frame), when that frame was assembled from
  /// packets and its record is still present (plain stream: the newest frame only; rolling
  /// buffer: any frame still in the buffer). nullopt otherwise, or when no companion stream
  /// exists. Opens the companion stream on first use and keeps it: unlike other const members,
  /// do not call it from several threads of one handle at once.
  [[nodiscard]] std::optional<PacketStatus> packet_status(std::uint64_t cnt0 = 0) const;

  /// Zero-copy view of the current frame (a rolling buffer's newest slice). NOT validated: a
  /// writer may change it while it is read. Use read_copy() when a consistent frame matters,
  /// or check cnt0 before and after. The span lies inside the mapping (its size comes from the
  /// metadata validated at open, never re-read). If another process truncates the file in place
  /// (a foreign re-creation), reading the span raises SIGBUS: see file_intact(). Empty when
  /// closed, or for a rolling buffer whose cnt1 names no slice (cnt1 >= depth(), see
  /// read_copy()): the newest frame is then unknown, and no other slice stands in for it.
  [[nodiscard]] std::span<const std::byte> view() const noexcept;

  /// Typed zero-copy view; empty when T does not match dtype().
  template <class T>
  [[nodiscard]] std::span<const T> view_as() const noexcept {
    if (!valid() || dtype_of<T>() != dtype()) return {};
    auto b = view();
    return {reinterpret_cast<const T*>(b.data()), b.size() / sizeof(T)};
  }

  /// cnt0 with acquire ordering (pairs with SYNC POINT A of the writer).
  [[nodiscard]] std::uint64_t cnt0() const noexcept;
  /// cnt1 (last slice written in rolling buffers), acquire.
  [[nodiscard]] std::uint64_t cnt1() const noexcept;
  /// cnt2 (frame id), acquire.
  [[nodiscard]] std::uint64_t cnt2() const noexcept;
  /// Sets cnt2 (release).
  void set_cnt2(std::uint64_t value) noexcept;
  /// The write flag (acquire): true while a writer is inside a write.
  [[nodiscard]] bool write_flag() const noexcept;
  /// Counters and times of the current frame (racy snapshot; use read_copy for a consistent one).
  [[nodiscard]] FrameInfo frame_info() const noexcept;
  /// Why reads of this rolling buffer return Errc::layout, naming the stream and the values:
  /// "stream 'wfs': cnt1 is 7, outside the 5 slices of its rolling buffer (the newest frame's
  /// slice is unknown)". Empty when cnt1 names a slice, for a plain stream and when closed. A
  /// racy snapshot, for error messages (the C API and Python use it).
  [[nodiscard]] std::string rolling_layout_error() const;

  // ---- waiting ----------------------------------------------------------------------
  /// Waits until cnt0 differs from `last_cnt0`: spins for `spin`, then sleeps on a shared futex on the
  /// low 32 bits of cnt0 (reference 12.3), which shmlink writers wake; any number of readers, nothing
  /// claimed. Writers that only post the in-file semaphores (ImageStreamIO's UpdateIm: milk, cacao)
  /// are told apart by the wake stamp shmlink writers leave in the metadata padding: when the newest
  /// frame lacks it, or nothing was written yet, the handle claims a semaphore slot (semReadPID :=
  /// getpid() by CAS, from the last slot down) and sleeps on both the futex and that slot
  /// (futex_waitv; the slot alone on kernels before 5.16 or where seccomp refuses futex_waitv), so
  /// every post wakes it as it would wake a semaphore reader. The slot is flushed before every sleep
  /// (posts of frames the caller has seen are told from new ones by a count of posts owed). The
  /// handle keeps the slot until close() (or, if it never saw a writer without the stamp, until its
  /// next wait after the newest frame is a shmlink writer's); `shmlink gc` frees it if the process
  /// dies (so a reader killed in its first wait on a fresh stream leaves the slot claimed until gc or
  /// a claimer that finds the pid dead). claim_semaphore() and release_semaphore() never return or
  /// release it. Without a slot (read-only handle, no slots, all taken by live readers, or the first
  /// frame of such a writer after a shmlink writer's), such frames are seen by a 10 ms re-check.
  /// Threads waiting on one handle at once each use a slot of their own (docs/design/streams.md).
  /// A stream placed in memory shared with other kernels (Placement::same_kernel false: VMs over
  /// an ivshmem BAR2), where no futex wake-up or semaphore post of another kernel's writer can
  /// wake it, **polls** instead: after `spin`, it looks at cnt0 between pauses that grow from a
  /// pause instruction to 50 us sleeps (a new frame is seen within about 0.1 ms; little CPU), checks
  /// file_intact() and replaced() every 10 ms, claims no semaphore slot, and logs once per handle
  /// (debug level) that it polls (docs/design/streams.md, "Streams on another kernel").
  /// @param cnt0_out receives the new cnt0 on success.
  /// @return ok, timeout, interrupted (a signal arrived), closed, replaced (the file was re-created or
  ///         removed while waiting: re-open it; noticed at once when the new file came from shmlink's
  ///         PurgeAndCreate, within 10 ms otherwise; also when the file was truncated in place, see
  ///         file_intact(): the wait checks it after each 10 ms slice before touching the mapping,
  ///         which turns most foreign in-place re-creations into replaced instead of SIGBUS; one that
  ///         truncates between that check and the next access to the mapping, or just before a writer's
  ///         wake-up arrives (after a real wake-up the wait unregisters and loads cnt0 without the
  ///         check, which would cost an fstat on the latency path), still raises SIGBUS).
  /// Memory ordering: on ok, the frame published by that cnt0 increment is visible (acquire
  /// load of cnt0, pairing with the writer's release increment; a taken semaphore post is an
  /// acquire pairing with the poster's release, which follows its cnt0 increment).
  Status wait_futex(std::uint64_t last_cnt0, std::chrono::nanoseconds timeout = kForever,
                    std::uint64_t* cnt0_out = nullptr,
                    std::chrono::nanoseconds spin = kDefaultSpin) const noexcept;

  /// Waits until cnt0 differs from `last_cnt0` by spinning on it with a pause instruction
  /// (the only mode that also works across VMs). Burns a core while waiting.
  /// @return ok, timeout, closed. Memory ordering as wait_futex().
  Status wait_spin(std::uint64_t last_cnt0, std::chrono::nanoseconds timeout = kForever,
                   std::uint64_t* cnt0_out = nullptr) const noexcept;

  // ---- semaphores (milk/ISIO compatible, reference section 10) ----------------------
  /// Claims a semaphore slot for this process: returns the slot already held by getpid(), or
  /// `preferred` if free, or the first free slot; a slot is free when its semReadPID is 0, -1
  /// or a dead process. Claimed with a compare-and-swap, so two readers never share a slot.
  /// A slot this process holds for wait_futex() (in any handle) is never returned. In memory
  /// shared with other kernels (Placement::same_kernel false) a pid cannot be checked: a slot is
  /// free only when 0 or -1, and "held by this process" means claimed by it (a slot holding our
  /// pid number may be another kernel's process).
  /// @return the slot index, or -1 when all are taken.
  int claim_semaphore(int preferred = -1) noexcept;
  /// Gives a claimed slot back (semReadPID := -1) if this process holds it, unless it holds it
  /// for wait_futex() (that slot is given back when its handle closes). Shared with other
  /// kernels: only a slot this process claimed with claim_semaphore().
  void release_semaphore(int index) noexcept;
  /// Frees the semaphore slots whose semReadPID names a process that no longer exists (a reader
  /// that died holding its slot; `shmlink gc` calls this). Each slot is freed with a
  /// compare-and-swap from the exact pid judged dead to -1, so a slot claimed meanwhile is left
  /// alone. A pid is judged by kill(pid, 0) in this process's pid namespace, as claim_semaphore()
  /// judges it: a reader in another pid namespace can look dead. In memory shared with other
  /// kernels (Placement::same_kernel false) it frees and counts nothing: a pid there may be a live
  /// reader of another kernel. Such slots are freed by their holders, or by removing the stream
  /// from its region and creating it again (docs/regions.md).
  /// @param count_only count the slots, change nothing (a dry run; also what a read-only handle does)
  /// @return how many slots named a dead reader (and, unless counting only, were freed).
  int reclaim_semaphores(bool count_only = false) noexcept;
  /// Waits on slot `index`, on CLOCK_MONOTONIC (immune to wall-clock jumps). Every semaphore
  /// call works on the in-file glibc `sem_t` words itself (glibc's 64-bit layout: value in the
  /// low 32 bits of the first u64, waiter count in the high 32; glibc's protocol, so glibc's
  /// sem_post/sem_wait in ISIO or milk processes interoperate both ways), because glibc's own
  /// calls abort the process on some bytes any co-user of the file can write there. A scribbled
  /// slot can cost its posts or wake-ups, never the process, and a wait always ends by its
  /// timeout (it re-checks the slot at least every 100 ms). In memory shared with other kernels
  /// (Placement::same_kernel false), where a post's wake-up never crosses, it polls the value
  /// instead (pauses growing to 50 us sleeps), never registering as a waiter.
  /// @return ok, timeout, interrupted, out_of_range, closed, permission (read-only handle).
  /// Memory ordering: on ok, what the poster wrote before its post is visible (acquire).
  Status sem_wait(int index, std::chrono::nanoseconds timeout = kForever) const noexcept;
  /// Takes one post from slot `index` without blocking; would_block when it is 0.
  Status sem_trywait(int index) const noexcept;
  /// Drains slot `index` (or every slot when -1): sets the value to 0 in one atomic step,
  /// whatever it was (O(1), unlike ISIO's one sem_trywait per post); returns the number of
  /// posts removed (saturated at INT_MAX).
  int sem_flush(int index) const noexcept;
  /// Current value of slot `index` (clamped to 0..INT_MAX); -1 for a bad index.
  [[nodiscard]] int sem_value(int index) const noexcept;
  /// Posts slot `index` (capped at 10, recording semWritePID), or every slot and semlog when
  /// index is -1, exactly as ImageStreamIO_sempost: one bounded compare-and-swap on the value,
  /// then a shared futex wake when the slot counts waiters (futex errors ignored).
  /// @return ok, out_of_range, closed, permission.
  /// Memory ordering: the post is a release; pairs with the acquire of sem_wait/sem_trywait.
  Status sem_post(int index) noexcept;

  // ---- keywords ---------------------------------------------------------------------
  /// All keywords whose type is not 'N' (unused).
  [[nodiscard]] std::vector<Keyword> keywords() const;
  /// The value of keyword `name`, if present.
  [[nodiscard]] std::optional<KeywordValue> keyword(std::string_view name) const;
  /// Sets keyword `name` (overwrites an existing one of that name, else takes the first free
  /// slot) and increments its cnt. Not synchronised with concurrent keyword writers.
  /// @throws Error name_too_long (name > 15, string value > kMaxKeywordString = 16, comment
  ///         > 79 bytes),
  ///         out_of_range when every slot is used.
  void set_keyword(std::string_view name, const KeywordValue& value, std::string_view comment = {});
  /// Removes keyword `name` (its slot becomes type 'N', unused). Not synchronised with
  /// concurrent keyword writers. @return true when it existed.
  /// @throws Error closed, permission (read-only handle).
  bool erase_keyword(std::string_view name);

  // ---- times ------------------------------------------------------------------------
  /// Creation time, ns since the epoch.
  [[nodiscard]] std::int64_t creation_time_ns() const noexcept;
  /// Acquisition time of the current frame, ns since the epoch.
  [[nodiscard]] std::int64_t atime_ns() const noexcept;
  /// Time the current frame was published, ns since the epoch.
  [[nodiscard]] std::int64_t writetime_ns() const noexcept;

  /// The stream's bytes (the mapped file; a placed stream: its layout's bytes_for() bytes at the
  /// start of its placement), for inspection and layout tests.
  [[nodiscard]] std::span<const std::byte> file_bytes() const noexcept;

  struct Impl;

 private:
  explicit Stream(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmlink
