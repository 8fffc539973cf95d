// SPDX-License-Identifier: MIT
// A C++ peer for the Python tests: writes or checks a deterministic frame, or writes uniform
// frames as fast as it can (torn-read stress); produces and echoes queue samples; runs the
// other side of a co-simulation Interface.
//
//   shmlink_pypeer write NAME DTYPE WxHxD     create (replace) with ISIO shape, write the pattern
//   shmlink_pypeer check NAME                 read the frame, exit 0 if it is the pattern, else 1
//   shmlink_pypeer stress NAME SECONDS        write frames whose every element equals cnt0 (u32)
//   shmlink_pypeer write-after NAME MS        sleep MS, then write one pattern frame to NAME
//   shmlink_pypeer queue-produce NAME N       open queue NAME, push samples 0..N-1 (the sample
//                                             pattern below, max_values values each), shut it
//   shmlink_pypeer queue-echo IN OUT N        pop N samples from queue IN, push each unchanged
//                                             (sequence, timestamps, flags, bits) to queue OUT
//   shmlink_pypeer interface-echo [OUT IN]    open an Interface (names from the arguments, else
//                                             SHMLINK_INTERFACE_OUT / SHMLINK_INTERFACE_IN)
//                                             exporting 0 "y" f64 "V", 1 "n2" i64, 2 "notflag"
//                                             bool, 3 "z2" c64 and importing 0 "x" f64, 1 "n"
//                                             i64, 2 "flag" bool, 3 "z" c64; answer each sample
//                                             with 2x, 2n, !flag, 2z until the other side closes.
//                                             Exit 0 closed, 4 peer died, 5 timeout, 6 write
//                                             failed, 7 open failed (message on stderr).
//
// The sample pattern (tests/python/test_queue.py computes the same): sample k has sequence k
// and value i typed by the queue's signal table: f64 (and untyped) k + i * 0.25; i64
// k * 1000 - i * 7; bool (k + i) odd; c64 (k + 0.5, -i).
//
// The pattern (tests/python/conftest.py computes the same): element i (C order) is
//   integers: (i * 37 + 5) % 120, minus 60 for signed types; element 0 = the type's max and
//             element 1 = its min when there are at least 3 elements;
//   floats:   i * 0.25 - 1.5 (exact in float16 too);
//   complex:  (i * 0.25 - 1.5, -i * 0.5).
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <chrono>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace shmlink;

/// IEEE binary16 bits of a float that is exactly representable (normal or zero).
std::uint16_t half_bits(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000U;
  const std::int32_t exp = static_cast<std::int32_t>((x >> 23) & 0xFF) - 127 + 15;
  const std::uint32_t mant = (x >> 13) & 0x3FFU;
  if ((x & 0x7FFFFFFFU) == 0) return static_cast<std::uint16_t>(sign);
  return static_cast<std::uint16_t>(sign | (static_cast<std::uint32_t>(exp) << 10) | mant);
}

template <class T>
void fill_int(std::vector<std::byte>& buf, std::size_t n) {
  auto* p = reinterpret_cast<T*>(buf.data());
  for (std::size_t i = 0; i < n; ++i) {
    long long v = static_cast<long long>((i * 37 + 5) % 120);
    if (std::numeric_limits<T>::is_signed) v -= 60;
    p[i] = static_cast<T>(v);
  }
  if (n >= 3) {
    p[0] = std::numeric_limits<T>::max();
    p[1] = std::numeric_limits<T>::min();
  }
}

/// The pattern frame for `t` with `n` elements.
std::vector<std::byte> pattern(Dtype t, std::size_t n) {
  std::vector<std::byte> buf(n * dtype_size(t));
  switch (t) {
    case Dtype::u8: fill_int<std::uint8_t>(buf, n); break;
    case Dtype::i8: fill_int<std::int8_t>(buf, n); break;
    case Dtype::u16: fill_int<std::uint16_t>(buf, n); break;
    case Dtype::i16: fill_int<std::int16_t>(buf, n); break;
    case Dtype::u32: fill_int<std::uint32_t>(buf, n); break;
    case Dtype::i32: fill_int<std::int32_t>(buf, n); break;
    case Dtype::u64: fill_int<std::uint64_t>(buf, n); break;
    case Dtype::i64: fill_int<std::int64_t>(buf, n); break;
    case Dtype::f32: {
      auto* p = reinterpret_cast<float*>(buf.data());
      for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<float>(i) * 0.25F - 1.5F;
      break;
    }
    case Dtype::f64: {
      auto* p = reinterpret_cast<double*>(buf.data());
      for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<double>(i) * 0.25 - 1.5;
      break;
    }
    case Dtype::f16: {
      auto* p = reinterpret_cast<std::uint16_t*>(buf.data());
      for (std::size_t i = 0; i < n; ++i) p[i] = half_bits(static_cast<float>(i) * 0.25F - 1.5F);
      break;
    }
    case Dtype::c64: {
      auto* p = reinterpret_cast<std::complex<float>*>(buf.data());
      for (std::size_t i = 0; i < n; ++i) p[i] = {static_cast<float>(i) * 0.25F - 1.5F, -static_cast<float>(i) * 0.5F};
      break;
    }
    case Dtype::c128: {
      auto* p = reinterpret_cast<std::complex<double>*>(buf.data());
      for (std::size_t i = 0; i < n; ++i) p[i] = {static_cast<double>(i) * 0.25 - 1.5, -static_cast<double>(i) * 0.5};
      break;
    }
  }
  return buf;
}

/// "WxHxD" -> {W, H, D}.
std::vector<std::uint32_t> parse_shape(const std::string& s) {
  std::vector<std::uint32_t> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t x = s.find('x', pos);
    out.push_back(static_cast<std::uint32_t>(std::stoul(s.substr(pos, x - pos))));
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return out;
}

/// Value i of pattern sample k, as signal type t.
SignalValue sample_value(std::uint64_t k, std::uint32_t i, SignalType t) {
  switch (t) {
    case SignalType::i64: return SignalValue::of(static_cast<std::int64_t>(k) * 1000 - static_cast<std::int64_t>(i) * 7);
    case SignalType::boolean: return SignalValue::of((k + i) % 2 == 1);
    case SignalType::c64: return SignalValue::of(std::complex<float>(static_cast<float>(k) + 0.5F, -static_cast<float>(i)));
    case SignalType::f64:
    case SignalType::invalid: break;
  }
  return SignalValue::of(static_cast<double>(k) + i * 0.25);
}

/// `name` from the environment, or "".
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

int queue_produce(const std::string& name, long n) {
  Queue q = Queue::open(name);
  std::vector<SignalType> types(q.max_values(), SignalType::invalid);
  for (const Signal& s : q.signals()) types[s.index] = s.type;
  Sample s;
  for (long k = 0; k < n; ++k) {
    s.sequence = static_cast<std::uint64_t>(k);
    s.ts_origin_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    s.flags = kSampleHasSequence | kSampleHasData | kSampleHasTsOrigin;
    s.values.clear();
    for (std::uint32_t i = 0; i < q.max_values(); ++i) s.values.push_back(sample_value(s.sequence, i, types[i]));
    const Status st = q.push(s, std::chrono::seconds(20));
    if (!st.ok()) {
      std::fprintf(stderr, "shmlink_pypeer: pushing sample %ld to queue %s: %s\n", k, name.c_str(), st.message());
      return 1;
    }
  }
  q.shutdown();
  return 0;
}

int queue_echo(const std::string& in_name, const std::string& out_name, long n) {
  Queue in = Queue::open(in_name);
  Queue out = Queue::open(out_name);
  Sample s;
  for (long k = 0; k < n; ++k) {
    Status st = in.pop(s, std::chrono::seconds(20));
    if (st.ok()) st = out.push(s, std::chrono::seconds(20));
    if (!st.ok()) {
      std::fprintf(stderr, "shmlink_pypeer: echoing sample %ld: %s\n", k, st.message());
      return 1;
    }
  }
  return 0;
}

int interface_echo(int argc, char** argv) {
  InterfaceSpec spec;
  spec.out = argc >= 4 ? argv[2] : env("SHMLINK_INTERFACE_OUT");
  spec.in = argc >= 4 ? argv[3] : env("SHMLINK_INTERFACE_IN");
  Interface iface(spec);
  iface.export_signal(0, "y", SignalType::f64, "V");
  iface.export_signal(1, "n2", SignalType::i64);
  iface.export_signal(2, "notflag", SignalType::boolean);
  iface.export_signal(3, "z2", SignalType::c64);
  iface.import_signal(0, "x", SignalType::f64);
  iface.import_signal(1, "n", SignalType::i64);
  iface.import_signal(2, "flag", SignalType::boolean);
  iface.import_signal(3, "z", SignalType::c64);
  try {
    iface.open();
  } catch (const Error& e) {
    std::fprintf(stderr, "shmlink_pypeer: %s\n", e.what());
    return 7;
  }
  Sample s;
  for (;;) {
    const Status st = iface.read(s, std::chrono::seconds(20));
    if (st.code() == Errc::shut_down) return 0;
    if (st.code() == Errc::peer_exited) return 4;
    if (!st.ok()) return 5;
    SignalValue y[4] = {};
    if (s.values.size() >= 4) {
      y[0] = SignalValue::of(2 * s.values[0].f);
      y[1] = SignalValue::of(2 * s.values[1].i);
      y[2] = SignalValue::of(s.values[2].bits == 0);
      y[3] = SignalValue::of(2.0F * s.values[3].complex());
    }
    if (!iface.write(std::span<const SignalValue>(y, 4), std::chrono::seconds(20)).ok()) return 6;
  }
}

int run(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "interface-echo") return interface_echo(argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: shmlink_pypeer write|check|stress|write-after|queue-produce|queue-echo NAME ...\n"
                         "       shmlink_pypeer interface-echo [OUT IN]\n");
    return 2;
  }
  const std::string cmd = argv[1];
  const std::string name = argv[2];
  if (cmd == "write" && argc == 5) {
    StreamSpec spec;
    spec.shape = parse_shape(argv[4]);
    const auto t = parse_dtype(argv[3]);
    if (!t) return 2;
    spec.dtype = *t;
    Stream s = Stream::create(name, spec, OpenMode::PurgeAndCreate);
    return s.write(pattern(s.dtype(), s.frame_elements())).ok() ? 0 : 1;
  }
  if (cmd == "check" && argc == 3) {
    Stream s = Stream::open(name);
    std::vector<std::byte> got(s.frame_bytes());
    if (!s.read_copy(got).ok()) return 1;
    if (got != pattern(s.dtype(), s.frame_elements())) {
      std::fprintf(stderr, "stream %s: frame differs from the pattern\n", name.c_str());
      return 1;
    }
    return 0;
  }
  if (cmd == "write-after" && argc == 4) {
    Stream s = Stream::open(name);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(argv[3])));
    return s.write(pattern(s.dtype(), s.frame_elements())).ok() ? 0 : 1;
  }
  if (cmd == "queue-produce" && argc == 4) return queue_produce(name, std::atol(argv[3]));
  if (cmd == "queue-echo" && argc == 5) return queue_echo(name, argv[3], std::atol(argv[4]));
  if (cmd == "stress" && argc == 4) {
    Stream s = Stream::open(name);
    if (s.dtype() != Dtype::u32) return 2;
    std::vector<std::uint32_t> frame(s.frame_elements());
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(std::atof(argv[3]) * 1000));
    while (std::chrono::steady_clock::now() < end) {
      auto dst = s.begin_write();
      const auto value = static_cast<std::uint32_t>(s.cnt0() + 1);
      auto* p = reinterpret_cast<std::uint32_t*>(dst.data());
      for (std::size_t i = 0; i < frame.size(); ++i) p[i] = value;  // element by element: tears if unvalidated
      if (!s.commit_write({.post_semaphores = false}).ok()) return 1;
      // A camera-like pause between frames: without any gap a validated reader would starve.
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return 0;
  }
  std::fprintf(stderr, "shmlink_pypeer: bad arguments\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlink_pypeer: %s\n", e.what());
    return 1;
  }
}
