// SPDX-License-Identifier: MIT
// `shmlink cat NAME`: a summary of the current frame (counters, times, min/max/mean) and,
// with --npy, the frame saved as a NumPy .npy file; with --all, a rolling buffer's whole history
// (oldest frame first) instead of its newest frame.
#include "common.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <thread>

namespace shmlink::cli {

namespace {

/// Options of `cat`.
struct CatOptions {
  std::string name;        ///< stream name or path
  std::string dir;         ///< directory override
  std::string npy;         ///< output .npy file, if any
  bool json = false;       ///< JSON summary
  bool wait = false;       ///< wait for the next frame first
  bool all = false;        ///< a rolling buffer's whole history instead of the newest frame
  double timeout = -1.0;   ///< seconds to wait (< 0: forever)
};

/// Minimum, maximum and mean of a frame's elements (magnitudes for complex types).
struct FrameStats {
  Json min;                 ///< exact integer or double (null when every element is NaN)
  Json max;                 ///< likewise
  double mean = 0.0;        ///< arithmetic mean (NaN when an element is NaN)
  bool magnitude = false;   ///< computed over |z|
};

/// IEEE 754 binary16 bits to float (subnormals, infinities and NaN included).
float half_to_float(std::uint16_t h) noexcept {
  const unsigned sign = (h >> 15) & 1u;
  const unsigned exponent = (h >> 10) & 0x1Fu;
  const unsigned mantissa = h & 0x3FFu;
  float value = 0.0f;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    value = mantissa == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else {
    value = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return sign != 0 ? -value : value;
}

/// Integer stats: exact min/max, mean in double.
template <class T>
FrameStats integer_stats(std::span<const std::byte> bytes) {
  const std::size_t n = bytes.size() / sizeof(T);
  T lo = std::numeric_limits<T>::max();
  T hi = std::numeric_limits<T>::lowest();
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    T v{};
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += static_cast<double>(v);
  }
  FrameStats s;
  s.min = lo;
  s.max = hi;
  s.mean = n == 0 ? 0.0 : sum / static_cast<double>(n);
  return s;
}

/// Floating-point stats over values produced by `get(i)`; NaNs are skipped for min/max and
/// make the mean NaN.
template <class Get>
FrameStats float_stats(std::size_t n, Get get, bool magnitude) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  double sum = 0.0;
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = get(i);
    sum += v;
    if (std::isnan(v)) continue;
    any = true;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  FrameStats s;
  s.magnitude = magnitude;
  s.min = any ? Json(lo) : Json(nullptr);
  s.max = any ? Json(hi) : Json(nullptr);
  s.mean = n == 0 ? 0.0 : sum / static_cast<double>(n);
  return s;
}

/// Reads element `i` of type T from unaligned bytes.
template <class T>
T load(std::span<const std::byte> bytes, std::size_t i) noexcept {
  T v{};
  std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
  return v;
}

/// Stats of a frame of type `dtype`.
FrameStats frame_stats(Dtype dtype, std::span<const std::byte> b) {
  const std::size_t n = b.size() / std::max<std::size_t>(1, dtype_size(dtype));
  switch (dtype) {
    case Dtype::u8: return integer_stats<std::uint8_t>(b);
    case Dtype::i8: return integer_stats<std::int8_t>(b);
    case Dtype::u16: return integer_stats<std::uint16_t>(b);
    case Dtype::i16: return integer_stats<std::int16_t>(b);
    case Dtype::u32: return integer_stats<std::uint32_t>(b);
    case Dtype::i32: return integer_stats<std::int32_t>(b);
    case Dtype::u64: return integer_stats<std::uint64_t>(b);
    case Dtype::i64: return integer_stats<std::int64_t>(b);
    case Dtype::f32:
      return float_stats(n, [b](std::size_t i) { return static_cast<double>(load<float>(b, i)); }, false);
    case Dtype::f64: return float_stats(n, [b](std::size_t i) { return load<double>(b, i); }, false);
    case Dtype::f16:
      return float_stats(
          n, [b](std::size_t i) { return static_cast<double>(half_to_float(load<std::uint16_t>(b, i))); }, false);
    case Dtype::c64:
      return float_stats(
          n, [b](std::size_t i) { return static_cast<double>(std::abs(load<std::complex<float>>(b, i))); }, true);
    case Dtype::c128:
      return float_stats(n, [b](std::size_t i) { return std::abs(load<std::complex<double>>(b, i)); }, true);
  }
  return {};
}

/// The NumPy dtype descriptor of `dtype` ('<u2', '|u1', '<c8', ...).
std::string npy_descr(Dtype dtype) {
  switch (dtype) {
    case Dtype::u8: return "|u1";
    case Dtype::i8: return "|i1";
    case Dtype::u16: return "<u2";
    case Dtype::i16: return "<i2";
    case Dtype::u32: return "<u4";
    case Dtype::i32: return "<i4";
    case Dtype::u64: return "<u8";
    case Dtype::i64: return "<i8";
    case Dtype::f32: return "<f4";
    case Dtype::f64: return "<f8";
    case Dtype::c64: return "<c8";
    case Dtype::c128: return "<c16";
    case Dtype::f16: return "<f2";
  }
  throw Error(Errc::invalid_argument, "no NumPy descriptor for datatype code " + std::to_string(static_cast<int>(dtype)));
}

/// The .npy v1.0 header for a C-order array: magic, version, header length and the dict,
/// padded with spaces and a final '\n' so the data starts at a multiple of 64 bytes.
/// @param numpy_shape numpy order (slowest axis first).
std::string npy_header(Dtype dtype, const std::vector<std::uint32_t>& numpy_shape) {
  std::string shape_text = "(";
  for (std::size_t i = 0; i < numpy_shape.size(); ++i) {
    if (i != 0) shape_text += ", ";
    shape_text += std::to_string(numpy_shape[i]);
  }
  if (numpy_shape.size() == 1) shape_text += ',';
  shape_text += ')';
  std::string dict =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", npy_descr(dtype), shape_text);
  constexpr std::size_t kPrefix = 10;  // magic (6) + version (2) + header length (2)
  const std::size_t total = (kPrefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - kPrefix - dict.size() - 1, ' ');
  dict += '\n';
  if (dict.size() > 0xFFFF) throw Error(Errc::invalid_argument, ".npy header too long");
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>((dict.size() >> 8) & 0xFF);
  out += dict;
  return out;
}

/// The error for an output file that could not be written: permission (exit 4) when the OS
/// refused access, else a failure (exit 1; never not_found, which means a missing stream).
Error output_error(const std::string& file, const char* doing, int err) {
  const Errc code = err == EACCES || err == EPERM ? Errc::permission : err == ENOSPC ? Errc::no_space : Errc::system;
  return Error(code, fmt::format("cannot write the output file {}: {} it: {}", shown(file), doing, std::strerror(err)));
}

/// Writes `header` then `data` to `file`.
/// @throws Error naming the output file (output_error()).
void write_file(const std::string& file, const std::string& header, std::span<const std::byte> data) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (f == nullptr) throw output_error(file, "creating", errno);
  // errno is only meaningful right after a call that failed: clear it first, and keep the
  // failing call's own value (a full disk often shows only in fclose's final flush: ENOSPC).
  errno = 0;
  const bool written = std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
                       std::fwrite(data.data(), 1, data.size(), f) == data.size();
  const int write_err = written ? 0 : errno;
  errno = 0;
  const bool closed = std::fclose(f) == 0;
  const int close_err = closed ? 0 : errno;
  if (!written) throw output_error(file, "writing", write_err != 0 ? write_err : EIO);
  if (!closed) throw output_error(file, "closing", close_err != 0 ? close_err : EIO);
}

/// What `cat` read: the newest frame, or (--all) a rolling buffer's history.
struct CatContent {
  std::vector<std::byte> bytes;           ///< C order, oldest frame first
  std::vector<std::uint32_t> shape;       ///< ISIO order (fastest first); history: frame shape + frame count
  std::uint64_t frames = 1;               ///< frames in `bytes`
  std::uint64_t overwritten = 0;          ///< history: older frames dropped, overwritten while they were copied
  FrameInfo newest;                       ///< counters and times of the newest frame read
  bool history = false;                   ///< --all
};

/// Copies every frame a rolling buffer holds, n = min(cnt0, depth), oldest first: slices
/// cnt1 - n + 1 .. cnt1 (mod depth), for writers that fill the per-slice counters (shmlink) and
/// for those that do not (ImageStreamIO's UpdateIm). The pair (cnt0, cnt1) is read under the
/// seqlock (write flag clear, cnt0 unchanged after reading cnt1). A writer may go on writing
/// during the copy: the k = cnt0 - c1 frames it committed meanwhile (plus one when a write is in
/// progress at the end) went to the slices after cnt1, in the copy's order from its oldest (once
/// the buffer is full: the k oldest of the copy); those are dropped and the newer frames kept
/// (`c.overwritten` says how many were dropped). Retried, for at most a second, only when the
/// writer may have overwritten every frame copied.
/// @throws Error torn or writer_active naming the stream when no frame could be kept.
void read_history(const Stream& s, CatContent& c) {
  const std::uint32_t depth = std::max<std::uint32_t>(1, s.depth());
  const std::size_t frame_bytes = s.frame_bytes();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  bool writing = false;
  while (std::chrono::steady_clock::now() < deadline) {
    // SYNC POINT A (acquire, Stream::cnt0): pairs with the writer's release increment of cnt0;
    // the slices of frames up to c1 are completely visible.
    const std::uint64_t c1 = s.cnt0();
    writing = s.write_flag();  // acquire: pairs with the writer's release store of write = 0
    if (writing) {
      std::this_thread::yield();
      continue;
    }
    const std::uint64_t newest = s.cnt1();
    const FrameInfo info = s.frame_info();
    // SYNC POINT C (acquire fence): a cnt1 or time stored by a later write makes its write = 1
    // visible to the loads below, so (c1, newest, info) belong to one frame when they pass.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.write_flag() || s.cnt0() != c1) continue;
    const std::uint64_t n = std::min<std::uint64_t>(c1, depth);
    c.bytes.resize(static_cast<std::size_t>(n) * frame_bytes);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto slice = static_cast<std::uint32_t>((newest % depth + depth - (n - 1 - i)) % depth);
      const std::span<const std::byte> v = s.view_slice(slice);
      std::memcpy(c.bytes.data() + i * frame_bytes, v.data(), std::min(frame_bytes, v.size()));
    }
    // SYNC POINT C (acquire fence): if the copy saw a store of a later write, that write's
    // write = 1 (set before its release fence) or its cnt0 increment is visible below.
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t in_progress = s.write_flag() ? 1 : 0;
    const std::uint64_t k = s.cnt0() - c1 + in_progress;
    // Write c1 + m went to slice cnt1 + m: a slice of the copy once m > depth - n.
    const std::uint64_t dropped = k > depth - n ? k - (depth - n) : 0;
    if (n > 0 && dropped >= n) continue;  // every slice copied may have been overwritten
    c.bytes.erase(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(dropped * frame_bytes));
    c.frames = n - dropped;
    c.overwritten = dropped;
    c.newest = info;
    c.newest.cnt0 = c1;
    c.newest.cnt1 = newest;
    return;
  }
  throw Error(writing ? Errc::writer_active : Errc::torn,
              fmt::format("reading the history of {}: {} for a second; try again", shown(s.path()),
                          writing ? "the write flag stayed set (a writer may have died mid-write)"
                                  : "the writer overwrote every frame while it was copied"));
}

/// Reads what `cat` shows: the newest frame (seqlock-validated read_copy), or with `all` every
/// frame the stream holds, oldest first (a plain stream: its one frame, with a frame axis of 1).
CatContent read_content(const Stream& s, bool all) {
  CatContent c;
  c.history = all;
  c.shape.assign(s.frame_shape().begin(), s.frame_shape().end());
  if (all && s.rolling()) {
    guarded_read(s, [&] { read_history(s, c); });
  } else {
    c.bytes.resize(s.frame_bytes());
    Status st;
    guarded_read(s, [&] { st = s.read_copy(c.bytes, &c.newest); });
    if (!st) throw Error(st.code(), fmt::format("reading a frame of {}: {}", shown(s.path()), st.message()));
  }
  if (all) c.shape.push_back(static_cast<std::uint32_t>(c.frames));
  return c;
}

/// A stat value as text (integers exactly, doubles with 6 significant digits).
std::string stat_text(const Json& v) {
  if (v.is_null()) return "nan";
  if (v.is_number_float()) return fmt::format("{:.6g}", v.get<double>());
  return v.dump();
}

/// "4x3 (numpy (3, 4))".
std::string shape_text(const std::vector<std::uint32_t>& shape) {
  const std::vector<std::uint32_t> numpy_shape(shape.rbegin(), shape.rend());
  return fmt::format("{} (numpy ({}{}))", format_shape(shape), fmt::join(numpy_shape, ", "),
                     numpy_shape.size() == 1 ? "," : "");
}

/// Runs `cat`: optionally waits for a new frame, copies the newest frame (or, with --all, the
/// history), prints the summary and writes the .npy file.
int run_cat(const CatOptions& opt) {
  // A remote stream ("HOST:NAME") without a local file: the bridge service's replica.
  const std::string path = replica_of_missing(opt.name, opt.dir).value_or(resolve_stream(opt.name, opt.dir));
  Stream s = open_for_inspection(path);

  if (opt.wait) {
    const auto timeout = opt.timeout < 0 ? kForever
                                         : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::duration<double>(opt.timeout));
    std::uint64_t last = 0;
    guarded_read(s, [&] { last = s.cnt0(); });
    const Status st = wait_for_new_frame(s, last, timeout);
    if (st.code() == Errc::timeout) {
      throw Error(Errc::timeout,
                  fmt::format("timed out after {:g} s waiting for a new frame of {} (cnt0 stayed {})", opt.timeout,
                              shown(path), last));
    }
    if (!st) throw Error(st.code(), fmt::format("waiting for a new frame of {}: {}", shown(path), st.message()));
  }

  const CatContent c = read_content(s, opt.all);
  const FrameInfo& fi = c.newest;
  const std::vector<std::uint32_t> stream_shape(s.shape().begin(), s.shape().end());
  const std::vector<std::uint32_t> numpy_shape(c.shape.rbegin(), c.shape.rend());
  FrameStats stats = frame_stats(s.dtype(), c.bytes);
  if (c.bytes.empty()) {  // a history with no frame yet: nothing to summarise
    stats.min = nullptr;
    stats.max = nullptr;
    stats.mean = std::numeric_limits<double>::quiet_NaN();
  }
  const std::uint64_t first_cnt0 = c.history && c.frames > 0 ? fi.cnt0 - (c.frames - 1) : fi.cnt0;

  if (!opt.npy.empty()) write_file(opt.npy, npy_header(s.dtype(), numpy_shape), c.bytes);

  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["name"] = s.name();
    j["path"] = s.path();
    j["content"] = c.history ? "history" : "frame";
    j["frames"] = c.frames;
    j["overwritten_while_copying"] = c.overwritten;
    j["shape"] = c.shape;
    j["numpy_shape"] = numpy_shape;
    j["dtype"] = std::string(dtype_name(s.dtype()));
    j["stream_shape"] = stream_shape;
    j["depth"] = s.depth();
    j["cnt0"] = fi.cnt0;
    j["first_cnt0"] = first_cnt0;
    j["cnt1"] = fi.cnt1;
    j["cnt2"] = fi.cnt2;
    j["atime_ns"] = fi.atime_ns;
    j["atime"] = format_time_ns(fi.atime_ns);
    j["writetime_ns"] = fi.writetime_ns;
    j["writetime"] = format_time_ns(fi.writetime_ns);
    Json js;
    js["of"] = stats.magnitude ? "magnitude" : "value";
    js["over"] = c.history ? "history" : "frame";
    js["min"] = stats.min;
    js["max"] = stats.max;
    js["mean"] = stats.mean;
    j["stats"] = std::move(js);
    j["npy"] = opt.npy.empty() ? Json(nullptr) : Json(opt.npy);
    print_json(j);
    return kExitOk;
  }

  const char* of = stats.magnitude ? " (of |z|)" : "";
  const std::string over = c.history ? fmt::format(" (over the {} frames)", c.frames) : std::string();
  std::string stream_text = fmt::format("{} {}", format_shape(stream_shape), dtype_name(s.dtype()));
  if (s.rolling()) stream_text += fmt::format(", rolling buffer of {} frames", s.depth());
  std::string content;
  if (c.history) {
    content = c.frames == 0 ? std::string("history: no frame written yet")
                            : fmt::format("history: {} frame{}, oldest first (cnt0 {}..{})", c.frames,
                                          c.frames == 1 ? "" : "s", first_cnt0, fi.cnt0);
    if (c.overwritten > 0) {
      content += fmt::format("; {} older frame{} overwritten by the writer while copying, left out", c.overwritten,
                             c.overwritten == 1 ? " was" : "s were");
    }
  } else {
    content = s.rolling() ? fmt::format("the newest frame (slice {}; --all: the whole history)",
                                        fi.cnt1 % std::max<std::uint32_t>(1, s.depth()))
                          : std::string("the current frame");
  }
  std::string out;
  out += fmt::format("{:<11}{}\n", "name:", shown(s.name()));
  out += fmt::format("{:<11}{}\n", "path:", shown(s.path()));
  out += fmt::format("{:<11}{}\n", "stream:", stream_text);
  out += fmt::format("{:<11}{}\n", "content:", content);
  out += fmt::format("{:<11}{}\n", "shape:", shape_text(c.shape));
  out += fmt::format("{:<11}{}\n", "dtype:", dtype_name(s.dtype()));
  out += fmt::format("{:<11}{}\n", "cnt0:", fi.cnt0);
  out += fmt::format("{:<11}{}\n", "cnt1:", fi.cnt1);
  out += fmt::format("{:<11}{}\n", "cnt2:", fi.cnt2);
  out += fmt::format("{:<11}{}\n", "atime:", format_time_ns(fi.atime_ns));
  out += fmt::format("{:<11}{}\n", "writetime:", format_time_ns(fi.writetime_ns));
  out += fmt::format("{:<11}{}{}{}\n", "min:", stat_text(stats.min), of, over);
  out += fmt::format("{:<11}{}{}{}\n", "max:", stat_text(stats.max), of, over);
  out += fmt::format("{:<11}{}{}{}\n", "mean:", stat_text(Json(stats.mean)), of, over);
  if (!opt.npy.empty()) out += fmt::format("{:<11}{} ({})\n", "npy:", shown(opt.npy), shape_text(c.shape));
  std::cout << out << std::flush;
  return kExitOk;
}

}  // namespace

Command add_cat_command(CLI::App& app) {
  auto opt = std::make_shared<CatOptions>();
  CLI::App* sub = app.add_subcommand(
      "cat", "Summarise a stream's newest frame or (--all) its history (min/max/mean), or save it as .npy");
  sub->add_option("name", opt->name, "Stream name, or a path to a .im.shm file")->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--npy", opt->npy,
                  "Write the frame to FILE as NumPy .npy v1.0 (numpy shape = ISIO frame shape reversed, C order; "
                  "with --all: (frames, ...) oldest first)");
  sub->add_flag("--all", opt->all,
                "A rolling buffer's whole history instead of its newest frame: the min(cnt0, depth) frames it "
                "holds, oldest first, less the oldest ones a live writer overwrote while they were copied (a plain "
                "stream: its one frame, with a frame axis of 1)");
  sub->add_flag("--json", opt->json, "Print the summary as JSON");
  auto* wait = sub->add_flag("--wait", opt->wait, "Wait for the next frame before reading");
  sub->add_option("--timeout", opt->timeout, "Seconds --wait waits before giving up with exit code 124")
      ->check(seconds_validator(0.0, 1e9))
      ->needs(wait);
  return {sub, [opt] { return run_cat(*opt); }};
}

}  // namespace shmlink::cli
