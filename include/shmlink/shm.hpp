// SPDX-License-Identifier: MIT
/// @file shm.hpp
/// @brief `shmlink::Shm<T>`: the Durham AO (DAO) C++ `Dao::Shm<T>` interface on top of
/// ImageStreamIO 2.00 streams (docs/reference/imagestreamio.md, sections 16.3 and 17.8).
///
/// Differences from DAO, on purpose:
/// - Shapes are DAO/numpy order (slowest axis first, C order), stored reversed in ISIO's
///   `size[]` so that ISIO readers see the same image (reference section 7).
/// - Files are ISIO 2.00 (not DAO's legacy layout); semaphores live in the file.
/// - Waits never spin without bound when a timeout is given, and EINTR is not success.
/// - Errors in constructors throw `shmlink::Error` (a `std::runtime_error` subclass via
///   `std::system_error`), so code that caught DAO's `std::runtime_error` still works.
#pragma once

#include <shmlink/stream.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace shmlink {

/// How `Shm<T>::get_frame` synchronises (DAO's `Dao::ShmSync`, same numeric values).
enum class ShmSync : std::int32_t {
  SEM0 = 0, SEM1 = 1, SEM2 = 2, SEM3 = 3, SEM4 = 4,
  SEM5 = 5, SEM6 = 6, SEM7 = 7, SEM8 = 8, SEM9 = 9,
  SEM = 10,   ///< same as SEM0
  SPIN = 11,  ///< wait for cnt0 to move (bounded spin, then futex)
  NONE = 12,  ///< no wait
};

/// DAO's shape: axis lengths, slowest first (numpy / C order).
using Shape = std::vector<std::uint32_t>;

/// DAO's return codes (reference 16.1), as returned by Shm<T>::get_next_frame.
inline constexpr std::int_fast8_t kDaoSuccess = 0;     ///< DAO_SUCCESS
inline constexpr std::int_fast8_t kDaoError = 1;       ///< DAO_ERROR
inline constexpr std::int_fast8_t kDaoTimeout = -1;    ///< DAO_TIMEOUT
inline constexpr std::int_fast8_t kDaoOverwrite = -2;  ///< DAO_OVERWRITE: the reader was lapped
inline constexpr std::int_fast8_t kDaoNotReady = -3;   ///< DAO_NOTREADY: no new frame yet

/// A typed stream with DAO's `Dao::Shm<T>` member functions.
/// T is one of uint8..int64, float, double, std::complex<float>, std::complex<double>, f16.
template <class T>
class Shm {
 public:
  /// Creates (PurgeAndCreate, as DAO re-creates in place; here with a new inode) a stream of
  /// `shape` (2 or 3 axes, slowest first) and writes `frame` when given.
  /// @param depth DAO's FIFO depth: 1 = a plain stream; N >= 2 = a rolling buffer of N frames
  ///        of `shape` (which must then have 2 axes: ISIO has 3 axes at most).
  /// @throws Error invalid_argument ("invalid dao shape") for other axis counts, and every
  ///         error of Stream::create.
  Shm(const std::string& name, const Shape& shape, const T* frame = nullptr, std::uint32_t depth = 1) {
    if (shape.size() != 2 && shape.size() != 3)
      throw Error(Errc::invalid_argument, "creating " + name + ": invalid dao shape (needs 2 or 3 axes)");
    StreamSpec spec;
    spec.shape.assign(shape.rbegin(), shape.rend());
    spec.dtype = dtype_of<T>();
    spec.depth = depth;
    stream_ = Stream::create(name, spec, OpenMode::PurgeAndCreate);
    if (frame != nullptr) set_frame(frame);
  }

  /// Opens an existing stream.
  /// @throws Error not_found, layout, dtype_mismatch (the file's dtype is not T).
  explicit Shm(const std::string& name) : stream_(Stream::open(name)) {
    if (stream_.dtype() != dtype_of<T>())
      throw Error(Errc::dtype_mismatch, "opening " + stream_.path() + ": datatype is " +
                                            std::string(dtype_name(stream_.dtype())) + ", not " +
                                            std::string(dtype_name(dtype_of<T>())));
  }

  /// Publishes `frame` (get_element_count() elements) as DAO's daoShmImage2Shm does (the next
  /// slice of a rolling buffer).
  void set_frame(const T* frame) noexcept {
    (void)stream_.write(std::span<const T>(frame, get_element_count()));
  }

  /// Waits as `sync` says (SEMx: slot x, no timeout; SPIN: until cnt0 moves; NONE: no wait)
  /// and returns a zero-copy pointer to the current frame, or nullptr when the wait failed.
  /// The pointer is unvalidated (see Stream::view()); use stream().read_copy() for a copy.
  T* get_frame(ShmSync sync = ShmSync::NONE) noexcept { return wait_then_frame(sync, kForever, 0, false); }

  /// As get_frame(sync), with DAO's `syncValue`: SEMx waits at most `syncValue` seconds;
  /// SPIN waits until cnt0 >= syncValue (no timeout, as DAO); NONE ignores it.
  T* get_frame(ShmSync sync, std::size_t sync_value) noexcept {
    if (sync == ShmSync::SPIN) return wait_then_frame(sync, kForever, sync_value, true);
    return wait_then_frame(sync, std::chrono::seconds(static_cast<std::int64_t>(sync_value)), 0, false);
  }

  /// FIFO sequential read (DAO's get_next_frame, reference 17.7): with `wait`, first waits (no
  /// timeout, as DAO) for a frame after the tail. Returns a pointer to a validated private copy
  /// of that frame (DAO returns a pointer into shared memory; a copy cannot tear), valid until
  /// the next call on this object, or nullptr.
  /// @param status kDaoSuccess (the next frame in order), kDaoOverwrite (lapped: the newest
  ///        frame is returned and the tail jumps to it), kDaoNotReady (nothing new, nullptr),
  ///        kDaoError (the wait or the copy failed, nullptr).
  /// @param segment_cnt0 receives the frame's cnt0.
  T* get_next_frame(bool wait, std::int_fast8_t& status, std::uint64_t& segment_cnt0) noexcept {
    copy_.resize(get_element_count());
    FrameInfo info;
    const Status st = stream_.read_next(std::as_writable_bytes(std::span<T>(copy_)), &info, nullptr,
                                        wait ? kForever : std::chrono::nanoseconds::zero());
    segment_cnt0 = info.cnt0;
    switch (st.code()) {
      case Errc::ok: status = kDaoSuccess; return copy_.data();
      case Errc::overwritten: status = kDaoOverwrite; return copy_.data();
      case Errc::would_block: status = kDaoNotReady; return nullptr;
      default: status = kDaoError; return nullptr;
    }
  }
  /// As get_next_frame(wait, status, cnt0) without the cnt0.
  T* get_next_frame(bool wait, std::int_fast8_t& status) noexcept {
    std::uint64_t c = 0;
    return get_next_frame(wait, status, c);
  }
  /// DAO's check_segment_overwrite: kDaoOverwrite when the frame last returned by
  /// get_next_frame() has been overwritten since (its slice is being or was rewritten),
  /// else kDaoSuccess.
  [[nodiscard]] std::int_fast8_t check_segment_overwrite() const noexcept {
    const std::uint64_t t = stream_.tail();
    const std::uint64_t c = stream_.cnt0();
    if (t == 0) return kDaoSuccess;
    const std::uint64_t live = stream_.depth() - 1;  // frames older than c - live may be rewritten
    return (c > t + live || (c == t + live && stream_.write_flag())) ? kDaoOverwrite : kDaoSuccess;
  }
  /// Zero-copy pointer to slice `fifo_idx % depth` (DAO's get_arbitrary_frame); unvalidated.
  T* get_arbitrary_frame(std::uint32_t fifo_idx) noexcept {
    auto v = stream_.view_slice(fifo_idx);
    return const_cast<T*>(reinterpret_cast<const T*>(v.data()));
  }
  /// Moves the FIFO tail to the newest frame (DAO's reset_tail).
  void reset_tail() noexcept { (void)stream_.reset_tail(); }
  /// FIFO depth (1 for a plain stream).
  [[nodiscard]] std::uint32_t get_depth() const noexcept { return stream_.depth(); }

  /// DAO's shape of one frame, slowest axis first.
  [[nodiscard]] Shape get_shape() const {
    auto s = stream_.frame_shape();
    return Shape(s.rbegin(), s.rend());
  }
  /// Elements per frame.
  [[nodiscard]] std::size_t get_element_count() const noexcept {
    return static_cast<std::size_t>(stream_.frame_elements());
  }
  /// cnt0.
  [[nodiscard]] std::uint64_t get_counter() const noexcept { return stream_.cnt0(); }
  /// cnt0 of the frame in slice `fifo_idx % depth` (0 when never written).
  [[nodiscard]] std::uint64_t get_counter(std::uint32_t fifo_idx) const noexcept {
    return stream_.slice_info(fifo_idx).cnt0;
  }
  /// Acquisition time (ns since the epoch) of the frame in slice `fifo_idx % depth`.
  [[nodiscard]] std::int64_t get_timestamp(std::uint32_t fifo_idx) const noexcept {
    return stream_.slice_info(fifo_idx).atime_ns;
  }
  /// cnt1.
  [[nodiscard]] std::uint64_t get_cnt1() const noexcept { return stream_.cnt1(); }
  /// cnt2, which DAO uses as an external frame id.
  [[nodiscard]] std::uint64_t get_frame_id() const noexcept { return stream_.cnt2(); }
  /// Acquisition time of the current frame in ns since the epoch (DAO's get_timestamp).
  [[nodiscard]] std::int64_t get_timestamp() const noexcept { return stream_.atime_ns(); }
  /// The underlying stream.
  [[nodiscard]] Stream& stream() noexcept { return stream_; }
  [[nodiscard]] const Stream& stream() const noexcept { return stream_; }

 private:
  T* wait_then_frame(ShmSync sync, std::chrono::nanoseconds timeout, std::uint64_t target, bool use_target) noexcept {
    const auto s = static_cast<std::int32_t>(sync);
    if (s >= 0 && s <= 10) {
      if (!stream_.sem_wait(s == 10 ? 0 : s, timeout).ok()) return nullptr;
    } else if (sync == ShmSync::SPIN) {
      std::uint64_t c = stream_.cnt0();
      if (use_target) {
        while (c < target) {
          if (!stream_.wait_futex(c, timeout, &c).ok()) return nullptr;
        }
      } else if (!stream_.wait_futex(c, timeout, &c, std::chrono::microseconds(20)).ok()) {
        return nullptr;
      }
    } else if (sync != ShmSync::NONE) {
      return nullptr;
    }
    auto v = stream_.view();
    return const_cast<T*>(reinterpret_cast<const T*>(v.data()));
  }

  Stream stream_;
  std::vector<T> copy_;  // get_next_frame's private copy
};

}  // namespace shmlink
