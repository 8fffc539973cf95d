// SPDX-License-Identifier: MIT
/// @file pipe_transport.cpp
/// @brief Frames over pipes, the baseline the stream pipeline is compared with.
///
/// Each frame travels as a 32-byte header (frame id, atime, writetime) followed by the frame's
/// bytes. A pipe is a queue: nothing is ever dropped, and a slow reader makes the writer block
/// once the pipe's buffer is full. Closing the write end ends the run (the reader sees EOF).
#include "ao_loop.hpp"

#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ao_loop {
namespace {

/// "AOLP": marks the start of each message, to catch a reader that lost its place.
constexpr std::uint32_t kPipeMagic = 0x504C4F41;

/// The header in front of every frame on a pipe (native byte order: both ends are local).
struct PipeHeader {
  std::uint32_t magic = kPipeMagic;
  std::uint32_t payload_bytes = 0;  ///< bytes of the frame that follows
  std::uint64_t frame_id = 0;
  std::int64_t atime_ns = 0;        ///< camera acquisition time, CLOCK_REALTIME ns
  std::int64_t writetime_ns = 0;    ///< when the writer sent it, CLOCK_REALTIME ns
};
static_assert(sizeof(PipeHeader) == 32, "no padding in the pipe header");

/// Writes both buffers completely, resuming after partial writes and signals.
/// Returns 0 or an errno value (EPIPE when the reader is gone).
int write_all(int fd, iovec (&parts)[2]) noexcept {
  iovec* next = parts;
  int count = 2;
  while (count > 0) {
    const ssize_t n = ::writev(fd, next, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    auto done = static_cast<std::size_t>(n);
    while (count > 0 && done >= next->iov_len) {  // drop the parts fully written
      done -= next->iov_len;
      ++next;
      --count;
    }
    if (count > 0) {  // and advance inside the part written halfway
      next->iov_base = static_cast<char*>(next->iov_base) + done;
      next->iov_len -= done;
    }
  }
  return 0;
}

/// Reads exactly `size` bytes unless EOF comes first. Returns the bytes read, or -1 on error.
ssize_t read_all(int fd, void* buffer, std::size_t size) noexcept {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, static_cast<char*>(buffer) + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;  // EOF
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

/// Sends header + frame with one writev per frame.
class PipeWriter final : public FrameWriter {
 public:
  /// Writes frames of `frame_bytes` bytes to `fd`.
  PipeWriter(UniqueFd fd, std::size_t frame_bytes) noexcept : fd_(std::move(fd)), frame_bytes_(frame_bytes) {}

  bool publish(std::span<const std::byte> data, std::uint64_t frame_id, std::int64_t atime_ns) override {
    if (data.size() != frame_bytes_ || fd_.get() < 0) {
      log_error("pipe write: wrong frame size or closed pipe");
      return false;
    }
    PipeHeader header;
    header.payload_bytes = static_cast<std::uint32_t>(data.size());
    header.frame_id = frame_id;
    header.atime_ns = atime_ns;
    header.writetime_ns = realtime_ns();
    iovec parts[2] = {{&header, sizeof header}, {const_cast<std::byte*>(data.data()), data.size()}};
    if (const int err = write_all(fd_.get(), parts); err != 0) {
      log_error(std::string("pipe write: ") + std::strerror(err));
      return false;
    }
    return true;
  }

  void finish() override { fd_.reset(); }  // the reader sees EOF

 private:
  UniqueFd fd_;
  std::size_t frame_bytes_;
};

/// Polls for the next message, then reads its header and frame.
class PipeReader final : public FrameReader {
 public:
  /// Reads frames from `fd`; their size is the size of the buffer given to next().
  explicit PipeReader(UniqueFd fd) noexcept : fd_(std::move(fd)) {}

  ReadResult next(std::span<std::byte> out, FrameMeta& meta, std::int64_t deadline_ns) override {
    pollfd ready{fd_.get(), POLLIN, 0};
    for (;;) {
      const std::int64_t left_ns = deadline_ns - monotonic_ns();
      if (left_ns <= 0) return ReadResult::timeout;
      const int left_ms = static_cast<int>(std::min<std::int64_t>((left_ns + 999'999) / 1'000'000, 1000));
      const int n = ::poll(&ready, 1, left_ms);
      if (n > 0) break;  // readable, or hung up (then read() reports EOF)
      if (n < 0 && errno != EINTR) return fail("poll");
    }
    PipeHeader header;
    const ssize_t got = read_all(fd_.get(), &header, sizeof header);
    if (got == 0) return ReadResult::end;  // the writer closed its end between two frames
    if (got != static_cast<ssize_t>(sizeof header)) return fail("truncated header");
    if (header.magic != kPipeMagic || header.payload_bytes != out.size()) return fail("bad header");
    if (read_all(fd_.get(), out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
      return fail("truncated frame");
    }
    meta = {header.frame_id, header.atime_ns, header.writetime_ns};
    return ReadResult::frame;
  }

  [[nodiscard]] std::uint64_t skipped() const noexcept override { return 0; }  // pipes never drop

 private:
  /// Logs `what` and returns ReadResult::error.
  static ReadResult fail(const char* what) {
    log_error(std::string("pipe read: ") + what);
    return ReadResult::error;
  }

  UniqueFd fd_;
};

}  // namespace

std::unique_ptr<FrameWriter> make_pipe_writer(int fd, std::size_t frame_bytes) {
  return std::make_unique<PipeWriter>(UniqueFd(fd), frame_bytes);
}

std::unique_ptr<FrameReader> make_pipe_reader(int fd) {
  return std::make_unique<PipeReader>(UniqueFd(fd));
}

}  // namespace ao_loop
