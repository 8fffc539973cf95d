// SPDX-License-Identifier: MIT
/// @file ao_loop.hpp
/// @brief Shared declarations of the `ao_loop` example: a Shack-Hartmann camera, a centroiding
/// controller and a latency recorder, three processes linked either by shmlink streams or by
/// pipes, plus the launcher that runs both pipelines and compares them.
///
/// ```
///   camera ──frames (256x256 u16)──► controller ──slopes (512 f32)──► recorder
///          stream or pipe                       stream or pipe
/// ```
///
/// Every frame carries its frame id (the camera's tick number) and its acquisition time (atime,
/// CLOCK_REALTIME ns). The controller copies both onto the slopes frame it derives, so the
/// recorder can measure camera-atime-to-slopes-published latency and recompute the slopes it
/// should have received from the frame id alone.
#pragma once

#include <shmlink/stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ao_loop {

// ---- geometry of the synthetic wavefront sensor ------------------------------------------

/// Subapertures along one side of the lenslet array.
inline constexpr int kSubapsPerSide = 16;
/// Pixels along one side of a subaperture.
inline constexpr int kSubapPixels = 16;
/// Pixels along one side of a camera frame (256).
inline constexpr int kFrameSide = kSubapsPerSide * kSubapPixels;
/// Number of subapertures (256).
inline constexpr int kSubaps = kSubapsPerSide * kSubapsPerSide;
/// Number of slopes per frame: x slopes of every subaperture, then y slopes (512).
inline constexpr int kSlopes = 2 * kSubaps;
/// Largest difference, in pixels, between a measured and an expected slope that the recorder
/// accepts; noise alone stays below ~0.03 px, a frame/id mix-up or a torn frame exceeds it.
inline constexpr double kSlopeTolerancePx = 0.25;
/// Frame id that marks the end of a run on a stream (pipes signal it by closing instead).
inline constexpr std::uint64_t kEndOfRun = UINT64_MAX;

/// The camera stream: 256x256 uint16 pixels.
shmlink::StreamSpec camera_spec();
/// The slopes stream: 512 float32 (x slopes of the 256 subapertures, then their y slopes), pixels.
shmlink::StreamSpec slopes_spec();

/// Bytes of one frame of a stream shaped like `spec` (product of the shape times the element size).
std::size_t frame_bytes(const shmlink::StreamSpec& spec) noexcept;

/// Bytes of one camera frame (131072).
inline constexpr std::size_t kFrameBytes = std::size_t{kFrameSide} * kFrameSide * sizeof(std::uint16_t);
/// Bytes of one slopes frame (2048).
inline constexpr std::size_t kSlopesBytes = std::size_t{kSlopes} * sizeof(float);

// ---- the Shack-Hartmann model (shack_hartmann.cpp) ----------------------------------------

/// Spot offset of one subaperture from its centre, in pixels.
struct Offset {
  double x = 0;  ///< along the frame's fast axis
  double y = 0;  ///< along the slow axis
};

/// The true spot offset of subaperture `subap` (0..255, row-major) in frame `frame_id`: two
/// sinusoids of 2.5 px amplitude, periods 23 and 37 frames, with a per-subaperture phase. A
/// deterministic function of the frame id, so the recorder can check slopes without the frame.
Offset spot_offset(std::uint64_t frame_id, int subap) noexcept;

/// Renders camera frame `frame_id` into `pixels` (256x256, row-major): a Gaussian spot (sigma
/// 1.5 px, peak 1000 counts) per subaperture at spot_offset(), on a background of 100 counts
/// with ~5 counts rms of read noise.
void render_frame(std::uint64_t frame_id, std::span<std::uint16_t> pixels) noexcept;

/// Thresholded centre of gravity of every subaperture of `pixels` (256x256): writes the x
/// slopes then the y slopes (pixels, relative to the subaperture centre) into `slopes` (512).
void compute_slopes(std::span<const std::uint16_t> pixels, std::span<float> slopes) noexcept;

/// Largest |measured - expected| over all slopes of `slopes`, expected from spot_offset().
double slope_error(std::uint64_t frame_id, std::span<const float> slopes) noexcept;

// ---- clocks -----------------------------------------------------------------------------

/// CLOCK_REALTIME in ns since the epoch: the clock of stream timestamps (atime, writetime).
std::int64_t realtime_ns() noexcept;
/// CLOCK_MONOTONIC in ns: for pacing and durations.
std::int64_t monotonic_ns() noexcept;

// ---- file descriptors -------------------------------------------------------------------

/// Owns a file descriptor and closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  /// Takes ownership of `fd` (-1 for none).
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  /// The descriptor, or -1.
  [[nodiscard]] int get() const noexcept { return fd_; }
  /// Gives the descriptor up without closing it.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the held descriptor (if any) and holds `fd` instead.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// ---- diagnostics ------------------------------------------------------------------------

/// Names this process in its error messages, e.g. "controller/shm".
void set_process_label(const std::string& label);
/// Prints "ao_loop[<label>]: <message>" on stderr.
void log_error(const std::string& message);

// ---- transports: one interface, two implementations --------------------------------------

/// What a frame carries besides its pixels.
struct FrameMeta {
  std::uint64_t frame_id = 0;     ///< camera tick number (stream: cnt2)
  std::int64_t atime_ns = 0;      ///< camera acquisition time, CLOCK_REALTIME ns
  std::int64_t writetime_ns = 0;  ///< when this frame was published, CLOCK_REALTIME ns
};

/// Publishes frames of a fixed size.
class FrameWriter {
 public:
  virtual ~FrameWriter() = default;
  /// Publishes `data` (exactly the frame size) with its frame id and acquisition time; the
  /// publication time is taken by the transport. Returns false (after logging) on failure.
  virtual bool publish(std::span<const std::byte> data, std::uint64_t frame_id,
                       std::int64_t atime_ns) = 0;
  /// Tells readers that no more frames follow (stream: a kEndOfRun frame; pipe: close).
  virtual void finish() = 0;
};

/// Outcome of FrameReader::next().
enum class ReadResult {
  frame,    ///< a new frame was copied out
  end,      ///< the writer finished the run
  timeout,  ///< the deadline passed without a new frame
  error,    ///< the transport failed (logged)
};

/// Receives frames of a fixed size.
class FrameReader {
 public:
  virtual ~FrameReader() = default;
  /// Waits until `deadline_ns` (CLOCK_MONOTONIC) for the next frame and copies it into `out`
  /// (exactly the frame size) with its metadata.
  virtual ReadResult next(std::span<std::byte> out, FrameMeta& meta, std::int64_t deadline_ns) = 0;
  /// Frames the writer published that this reader never saw (a stream keeps only the latest
  /// frame; a pipe never drops).
  [[nodiscard]] virtual std::uint64_t skipped() const noexcept = 0;
};

/// Which transport a pipeline uses.
enum class Transport { shm, pipe };

/// "shm" or "pipe".
const char* transport_name(Transport t) noexcept;

/// A writer on stream `name` (created if absent, checked against `spec` if present).
std::unique_ptr<FrameWriter> make_shm_writer(const std::string& name, const shmlink::StreamSpec& spec);
/// A reader of stream `name`, opened (retrying until `deadline_ns` while it does not exist yet)
/// and checked against `spec`. Only frames published after it was opened are read.
std::unique_ptr<FrameReader> make_shm_reader(const std::string& name, const shmlink::StreamSpec& spec,
                                             std::int64_t deadline_ns);
/// A writer of `frame_bytes`-sized frames on the write end `fd` of a pipe (takes ownership).
std::unique_ptr<FrameWriter> make_pipe_writer(int fd, std::size_t frame_bytes);
/// A reader of frames on the read end `fd` of a pipe (takes ownership).
std::unique_ptr<FrameReader> make_pipe_reader(int fd);

// ---- the three roles ---------------------------------------------------------------------

/// Command-line options shared by the roles (`ao_loop camera|controller|recorder ...`).
struct RoleOptions {
  Transport transport = Transport::shm;  ///< what `in` and `out` name
  std::string in;            ///< input: stream name (shm) or pipe fd number (pipe)
  std::string out;           ///< output: stream name (shm) or pipe fd number (pipe)
  double seconds = 10;       ///< camera run time
  double rate_hz = 1000;     ///< camera frame rate
  double timeout_s = 30;     ///< a reader gives up this long after it started
  int report_fd = 1;         ///< where "ready" and "result ..." lines go (stdout by default)
};

/// Opens `options.out` as a writer of frames shaped like `spec`, for the chosen transport.
std::unique_ptr<FrameWriter> open_writer(const RoleOptions& options, const shmlink::StreamSpec& spec);
/// Opens `options.in` as a reader of frames shaped like `spec`, for the chosen transport.
std::unique_ptr<FrameReader> open_reader(const RoleOptions& options, const shmlink::StreamSpec& spec,
                                         std::int64_t deadline_ns);

/// The line protocol from a role to the launcher, on `RoleOptions::report_fd`: one "ready" line
/// once the role is attached to its inputs and outputs, then one "result key=value ..." line.
class Reporter {
 public:
  /// Reports on `fd` (not owned).
  explicit Reporter(int fd) noexcept : fd_(fd) {}
  /// Sends "ready".
  void ready() const;
  /// Sends "result" followed by the key=value pairs of `values`.
  void result(const std::map<std::string, std::string>& values) const;

 private:
  /// Writes `line` whole (retrying partial writes); silently gives up if the launcher is gone.
  void send(const std::string& line) const;
  int fd_;
};

/// Adds the distribution of `samples_ns` to `report` as `<prefix>_min_ns`, `_mean_ns`,
/// `_p50_ns`, `_p99_ns`, `_p999_ns` and `_max_ns` (nearest-rank percentiles); adds nothing when
/// there are no samples. Sorts `samples_ns`.
void add_latency_report(std::map<std::string, std::string>& report, const std::string& prefix,
                        std::vector<std::int64_t>& samples_ns);

/// Camera role: renders and publishes frames at `rate_hz` for `seconds`, then finishes the run.
/// Reports frames, ticks_missed, rate_hz. Returns the process exit status.
int run_camera(const RoleOptions& options);
/// Controller role: for each camera frame, computes slopes and publishes them with the frame's
/// id and atime. Reports frames, skipped, rate_hz and the percentiles of the hop latency (camera
/// atime to frame copied out in the controller). Returns the process exit status.
int run_controller(const RoleOptions& options);
/// Recorder role: checks each slopes frame and records its latency. Reports frames, wrong,
/// out_of_order, max_error_px, rate_hz and latency percentiles. Returns the process exit status.
int run_recorder(const RoleOptions& options);

// ---- the launcher and its report ---------------------------------------------------------

/// Options of `ao_loop run`.
struct RunOptions {
  double seconds = 10;                 ///< per transport; default from SHMLINK_DEMO_SECONDS
  double rate_hz = 1000;               ///< camera frame rate
  std::vector<Transport> transports;   ///< pipelines to run, in order
  std::string json_path;               ///< write the results as JSON here when not empty
};

/// Results of one pipeline, gathered from its three processes' reports.
struct PipelineResult {
  Transport transport = Transport::shm;  ///< which pipeline
  bool ok = false;                 ///< every process exited 0 and the checks passed
  std::string error;               ///< what went wrong, empty when ok
  std::map<std::string, std::string> camera, controller, recorder;  ///< raw reports
  /// Camera frames written minus slopes frames the recorder observed.
  [[nodiscard]] std::int64_t frames_lost() const noexcept;
  /// A number from a report, or `fallback` when absent.
  [[nodiscard]] static double number(const std::map<std::string, std::string>& report,
                                     const std::string& key, double fallback = 0) noexcept;
};

/// Runs one pipeline as three child processes (fork + exec of this binary) and collects their
/// reports. Never hangs: children that outlive the run plus a margin are killed.
PipelineResult run_pipeline(Transport transport, const RunOptions& options);

/// Prints the comparison table of `results` to stdout.
void print_report(const RunOptions& options, const std::vector<PipelineResult>& results);
/// Writes `results` as JSON (schema_version 1) to `path`; false (after logging) on failure.
bool write_json(const std::string& path, const RunOptions& options,
                const std::vector<PipelineResult>& results);

/// Entry point of `ao_loop run`: runs the pipelines, prints the report, writes the JSON.
/// Returns 0 when every pipeline passed, 1 otherwise, 130 when stopped by SIGINT/SIGTERM.
int run_demo(const RunOptions& options);

}  // namespace ao_loop
