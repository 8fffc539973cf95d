// SPDX-License-Identifier: MIT
// `shmlink cat NAME`: a summary of the current frame (counters, times, min/max/mean) and,
// with --npy, the frame saved as a NumPy .npy file.
#include "common.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `cat`.
struct CatOptions {
  std::string name;        ///< stream name or path
  std::string dir;         ///< directory override
  std::string npy;         ///< output .npy file, if any
  bool json = false;       ///< JSON summary
  bool wait = false;       ///< wait for the next frame first
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

/// Writes `header` then `data` to `file`.
/// @throws Error (from errno) naming the file.
void write_file(const std::string& file, const std::string& header, std::span<const std::byte> data) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (f == nullptr) {
    const int err = errno;
    throw Error(errc_from_errno(err), fmt::format("opening {} for writing: {}", file, std::strerror(err)));
  }
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  ok = ok && std::fwrite(data.data(), 1, data.size(), f) == data.size();
  const int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw Error(errc_from_errno(err), fmt::format("writing {}: {}", file, std::strerror(err)));
}

/// A stat value as text (integers exactly, doubles with 6 significant digits).
std::string stat_text(const Json& v) {
  if (v.is_null()) return "nan";
  if (v.is_number_float()) return fmt::format("{:.6g}", v.get<double>());
  return v.dump();
}

/// Runs `cat`: optionally waits for a new frame, copies it (seqlock-validated), prints the
/// summary and writes the .npy file.
int run_cat(const CatOptions& opt) {
  const std::string path = resolve_stream(opt.name, opt.dir);
  Stream s = open_for_inspection(path);

  if (opt.wait) {
    const auto timeout = opt.timeout < 0 ? kForever
                                         : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::duration<double>(opt.timeout));
    std::uint64_t last = 0;
    guarded_read(s, [&] { last = s.cnt0(); });
    const Status st = wait_for_new_frame(s, last, timeout);
    if (!st) {
      throw Error(st.code(), fmt::format("waiting for a new frame of {}", shown(path)));
    }
  }

  std::vector<std::byte> frame(s.frame_bytes());
  FrameInfo fi;
  Status st;
  guarded_read(s, [&] { st = s.read_copy(frame, &fi); });
  if (!st) throw Error(st.code(), fmt::format("reading a frame of {}", shown(path)));

  const std::vector<std::uint32_t> shape(s.shape().begin(), s.shape().end());
  const std::vector<std::uint32_t> numpy_shape(shape.rbegin(), shape.rend());
  const FrameStats stats = frame_stats(s.dtype(), frame);

  if (!opt.npy.empty()) write_file(opt.npy, npy_header(s.dtype(), numpy_shape), frame);

  if (opt.json) {
    Json j;
    j["schema_version"] = kSchemaVersion;
    j["name"] = s.name();
    j["path"] = s.path();
    j["shape"] = shape;
    j["numpy_shape"] = numpy_shape;
    j["dtype"] = std::string(dtype_name(s.dtype()));
    j["cnt0"] = fi.cnt0;
    j["cnt1"] = fi.cnt1;
    j["cnt2"] = fi.cnt2;
    j["atime_ns"] = fi.atime_ns;
    j["atime"] = format_time_ns(fi.atime_ns);
    j["writetime_ns"] = fi.writetime_ns;
    j["writetime"] = format_time_ns(fi.writetime_ns);
    Json js;
    js["of"] = stats.magnitude ? "magnitude" : "value";
    js["min"] = stats.min;
    js["max"] = stats.max;
    js["mean"] = stats.mean;
    j["stats"] = std::move(js);
    j["npy"] = opt.npy.empty() ? Json(nullptr) : Json(opt.npy);
    print_json(j);
    return kExitOk;
  }

  const char* of = stats.magnitude ? " (of |z|)" : "";
  std::string out;
  out += fmt::format("{:<11}{}\n", "name:", shown(s.name()));
  out += fmt::format("{:<11}{}\n", "path:", shown(s.path()));
  out += fmt::format("{:<11}{} (numpy ({}))\n", "shape:", format_shape(shape), fmt::join(numpy_shape, ", "));
  out += fmt::format("{:<11}{}\n", "dtype:", dtype_name(s.dtype()));
  out += fmt::format("{:<11}{}\n", "cnt0:", fi.cnt0);
  out += fmt::format("{:<11}{}\n", "cnt1:", fi.cnt1);
  out += fmt::format("{:<11}{}\n", "cnt2:", fi.cnt2);
  out += fmt::format("{:<11}{}\n", "atime:", format_time_ns(fi.atime_ns));
  out += fmt::format("{:<11}{}\n", "writetime:", format_time_ns(fi.writetime_ns));
  out += fmt::format("{:<11}{}{}\n", "min:", stat_text(stats.min), of);
  out += fmt::format("{:<11}{}{}\n", "max:", stat_text(stats.max), of);
  out += fmt::format("{:<11}{}{}\n", "mean:", stat_text(Json(stats.mean)), of);
  if (!opt.npy.empty()) out += fmt::format("{:<11}{}\n", "npy:", shown(opt.npy));
  std::cout << out << std::flush;
  return kExitOk;
}

}  // namespace

Command add_cat_command(CLI::App& app) {
  auto opt = std::make_shared<CatOptions>();
  CLI::App* sub = app.add_subcommand("cat", "Summarise the current frame (min/max/mean) or save it as .npy");
  sub->add_option("name", opt->name, "Stream name, or a path to a .im.shm file")->required();
  sub->add_option("--dir", opt->dir, "Stream directory (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  sub->add_option("--npy", opt->npy,
                  "Write the frame to FILE as NumPy .npy v1.0 (numpy shape = ISIO shape reversed, C order)");
  sub->add_flag("--json", opt->json, "Print the summary as JSON");
  auto* wait = sub->add_flag("--wait", opt->wait, "Wait for the next frame before reading");
  sub->add_option("--timeout", opt->timeout, "Seconds --wait waits before giving up with exit code 124")
      ->check(seconds_validator(0.0, 1e9))
      ->needs(wait);
  sub->footer(exit_code_help());
  return {sub, [opt] { return run_cat(*opt); }};
}

}  // namespace shmlink::cli
