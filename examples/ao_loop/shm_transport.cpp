// SPDX-License-Identifier: MIT
/// @file shm_transport.cpp
/// @brief Frames over shmlink streams: this is the part of the example that uses shmlink.
///
/// A stream holds the latest frame only. The writer never waits for readers; a reader that
/// falls behind skips to the newest frame and counts the ones it missed from the cnt0 gap.
#include "ao_loop.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <utility>

namespace ao_loop {
namespace {

/// "256x256 u16" for error messages.
std::string describe(std::span<const std::uint32_t> shape, shmlink::Dtype dtype) {
  std::string text;
  for (const std::uint32_t n : shape) {
    if (!text.empty()) text += 'x';
    text += std::to_string(n);
  }
  text += ' ';
  text += shmlink::dtype_short_name(dtype);
  return text;
}

/// Throws std::runtime_error unless `stream` has the shape and element type of `spec`.
void check_geometry(const shmlink::Stream& stream, const shmlink::StreamSpec& spec) {
  const std::span<const std::uint32_t> shape = stream.shape();
  if (stream.dtype() != spec.dtype || !std::ranges::equal(shape, spec.shape)) {
    throw std::runtime_error(stream.path() + ": expected a " + describe(spec.shape, spec.dtype) +
                             " stream, found " + describe(shape, stream.dtype()));
  }
}

/// Publishes frames into a stream; the frame id goes to cnt2, the acquisition time to atime.
class ShmWriter final : public FrameWriter {
 public:
  /// Writes into `stream`.
  explicit ShmWriter(shmlink::Stream stream) noexcept : stream_(std::move(stream)) {}

  bool publish(std::span<const std::byte> data, std::uint64_t frame_id, std::int64_t atime_ns) override {
    shmlink::WriteOptions options;
    options.atime_ns = atime_ns;  // the camera's acquisition time travels with derived frames
    options.frame_id = frame_id;  // stored in cnt2, where DAO and milk tools look for it
    // Never blocks: copy, stamp writetime, cnt0 += 1, wake futex waiters, post semaphores.
    const shmlink::Status status = stream_.write(data, options);
    if (!status) log_error(stream_.name() + ": write failed: " + status.message());
    return status.ok();
  }

  void finish() override {
    // Streams have no "closed" state that readers see, so the run ends with a marker frame.
    const std::vector<std::byte> blank(stream_.frame_bytes());
    publish(blank, kEndOfRun, realtime_ns());
  }

 private:
  shmlink::Stream stream_;
};

/// Waits on a stream's futex and copies each new frame out with the seqlock-validated read.
class ShmReader final : public FrameReader {
 public:
  /// Reads `stream` from its current cnt0 on: frames published before are not delivered.
  explicit ShmReader(shmlink::Stream stream) noexcept
      : stream_(std::move(stream)), last_cnt0_(stream_.cnt0()) {}

  ReadResult next(std::span<std::byte> out, FrameMeta& meta, std::int64_t deadline_ns) override {
    for (;;) {
      const std::int64_t left_ns = deadline_ns - monotonic_ns();
      if (left_ns <= 0) return ReadResult::timeout;
      // Spin briefly, then sleep on the futex on cnt0 until cnt0 differs from the last one seen.
      const shmlink::Status woke = stream_.wait_futex(last_cnt0_, std::chrono::nanoseconds(left_ns));
      if (woke.code() == shmlink::Errc::timeout || woke.code() == shmlink::Errc::interrupted) continue;
      if (!woke) {
        log_error(stream_.name() + ": wait failed: " + woke.message());
        return ReadResult::error;
      }
      // The newest frame, validated by the seqlock (write flag + cnt0): never a torn copy.
      shmlink::FrameInfo info;
      const shmlink::Status copied = stream_.read_copy(out, &info);
      if (copied.code() == shmlink::Errc::torn) continue;  // the writer kept overtaking us: next frame
      if (!copied) {
        log_error(stream_.name() + ": read failed: " + copied.message());
        return ReadResult::error;
      }
      skipped_ += info.cnt0 - last_cnt0_ - 1;  // frames overwritten before we got to them
      last_cnt0_ = info.cnt0;
      meta = {info.cnt2, info.atime_ns, info.writetime_ns};
      return meta.frame_id == kEndOfRun ? ReadResult::end : ReadResult::frame;
    }
  }

  [[nodiscard]] std::uint64_t skipped() const noexcept override { return skipped_; }

 private:
  shmlink::Stream stream_;
  std::uint64_t last_cnt0_;
  std::uint64_t skipped_ = 0;
};

}  // namespace

std::unique_ptr<FrameWriter> make_shm_writer(const std::string& name, const shmlink::StreamSpec& spec) {
  // OpenOrCreate: use the stream the launcher (or a previous run) made, else create it. An
  // existing stream of another shape or element type throws Error(layout).
  return std::make_unique<ShmWriter>(shmlink::Stream::create(name, spec, shmlink::OpenMode::OpenOrCreate));
}

std::unique_ptr<FrameReader> make_shm_reader(const std::string& name, const shmlink::StreamSpec& spec,
                                             std::int64_t deadline_ns) {
  for (;;) {
    try {
      shmlink::Stream stream = shmlink::Stream::open(name);
      check_geometry(stream, spec);
      return std::make_unique<ShmReader>(std::move(stream));
    } catch (const shmlink::Error& e) {
      // The writer may not have created it yet: poll for it until the deadline.
      if (e.errc() != shmlink::Errc::not_found || monotonic_ns() > deadline_ns) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace ao_loop
