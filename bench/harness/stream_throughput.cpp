// SPDX-License-Identifier: MIT
// Single-process parts of `shmlink bench stream` (docs/bench.md "Bandwidth" and "Write with
// nobody waiting"): batches of memcpy, Stream::write, Stream::read_copy and write + read_copy
// per frame size, and the cost of a small write when no reader waits, each interleaved with its
// floor and reported as the median of the batches.
#include "harness/stream.hpp"

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace shmlink::bench {

namespace {

/// Runs `op` `k` times and returns the mean ns per call.
template <class Op>
double time_batch(Op& op, std::int64_t k) {
  const std::int64_t t0 = mono_ns();
  for (std::int64_t i = 0; i < k; ++i) op();
  const std::int64_t t1 = mono_ns();
  return static_cast<double>(t1 - t0) / static_cast<double>(k);
}

/// The number of calls of `op` that take about `seconds` (at least 1), found by doubling.
template <class Op>
std::int64_t calibrate(Op& op, double seconds) {
  op();  // fault pages in, warm caches
  std::int64_t k = 1;
  for (;;) {
    const std::int64_t t0 = mono_ns();
    for (std::int64_t i = 0; i < k; ++i) op();
    const std::int64_t elapsed = mono_ns() - t0;
    if (elapsed >= 1'000'000 || k >= (std::int64_t{1} << 26)) {
      const double per = static_cast<double>(std::max<std::int64_t>(elapsed, 1)) / static_cast<double>(k);
      return std::clamp<std::int64_t>(static_cast<std::int64_t>(seconds * 1e9 / per), 1, std::int64_t{1} << 28);
    }
    k *= 2;
  }
}

/// Runs each of `ops` in `batches` rounds, rotating which goes first, each batch lasting about
/// `seconds`; returns the median ns per call of each. The operations are inlined into their
/// timing loops (no indirect call is timed).
template <class... Ops>
std::array<double, sizeof...(Ops)> interleave(int batches, double seconds, Ops&... ops) {
  constexpr std::size_t n = sizeof...(Ops);
  const std::array<std::int64_t, n> k{calibrate(ops, seconds)...};
  std::array<std::vector<double>, n> ns;
  auto run = [&](std::size_t which) {
    std::size_t i = 0;
    ((i++ == which ? ns[which].push_back(time_batch(ops, k[which])) : void()), ...);
  };
  for (int b = 0; b < std::max(batches, 1); ++b) {
    if (stop_requested()) throw Error(Errc::interrupted, "bench: interrupted");
    for (std::size_t j = 0; j < n; ++j) run((j + static_cast<std::size_t>(b)) % n);
  }
  std::array<double, n> out{};
  for (std::size_t i = 0; i < n; ++i) out[i] = median_of(ns[i]);
  return out;
}

/// Throws when a hot-path call failed (it never should here).
void check(Status st, const char* what) {
  if (!st) throw Error(st.code(), std::string("bench: ") + what + ": " + st.message());
}

/// A page-aligned, zero-filled heap buffer (deterministic alignment for memcpy and copies).
class PageBuffer {
 public:
  /// Allocates `size` bytes (rounded up to whole pages). @throws std::bad_alloc.
  explicit PageBuffer(std::size_t size) : size_(size) {
    const std::size_t rounded = (size + 4095) / 4096 * 4096;
    data_ = static_cast<std::byte*>(std::aligned_alloc(4096, rounded));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, rounded);
  }
  /// Frees the buffer.
  ~PageBuffer() { std::free(data_); }
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  /// First byte.
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  /// Size asked for.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Byte `i`.
  std::byte& operator[](std::size_t i) noexcept { return data_[i]; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A MAP_SHARED anonymous page holding a minimal seqlock-published 64-byte frame: the floor
/// of a write with nobody waiting.
///
///   offset 0   write flag (u32)   offset 8  counter (u64)   offset 16  waiters (u32)
///   offset 64  frame data
struct RawFrame {
  std::atomic<std::uint32_t> write{0};
  std::atomic<std::uint64_t> counter{0};
  std::atomic<std::uint32_t> waiters{0};
  alignas(64) std::byte data[64] = {};
};

/// Maps a RawFrame into a shared page; unmaps it on destruction.
class RawMapping {
 public:
  /// @throws Error when mmap fails.
  RawMapping() {
    addr_ = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (addr_ == MAP_FAILED) throw Error(errc_from_errno(errno), "bench: mmap failed");
    new (addr_) RawFrame();
  }
  /// Unmaps the page.
  ~RawMapping() { ::munmap(addr_, 4096); }
  RawMapping(const RawMapping&) = delete;
  RawMapping& operator=(const RawMapping&) = delete;
  /// The frame.
  [[nodiscard]] RawFrame* get() const noexcept { return static_cast<RawFrame*>(addr_); }

 private:
  void* addr_ = MAP_FAILED;
};

}  // namespace

std::vector<BandwidthResult> run_bandwidth(const ThroughputConfig& cfg, bool* interrupted) {
  std::vector<BandwidthResult> out;
  if (interrupted != nullptr) *interrupted = false;
  for (std::size_t size : cfg.frame_sizes) {
    PageBuffer src(size);
    PageBuffer mid(size);
    PageBuffer dst(size);
    for (std::size_t i = 0; i < size; ++i) src[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
    StreamSpec spec;
    spec.shape = {static_cast<std::uint32_t>(size)};
    spec.dtype = Dtype::u8;
    const std::string path = cfg.stream_dir + "/bench-bw.im.shm";
    Stream s = Stream::create(path, spec, OpenMode::PurgeAndCreate);
    const std::span<const std::byte> in(src.data(), size);
    const std::span<std::byte> outbuf(dst.data(), size);

    auto copy = [&] {
      std::memcpy(dst.data(), src.data(), size);
      keep(dst.data());
    };
    auto chain = [&] {
      std::memcpy(mid.data(), src.data(), size);
      keep(mid.data());
      std::memcpy(dst.data(), mid.data(), size);
      keep(dst.data());
    };
    auto write = [&] { check(s.write(in), "write"); };
    auto read = [&] {
      check(s.read_copy(outbuf), "read_copy");
      keep(dst.data());
    };
    auto write_read = [&] {
      check(s.write(in), "write");
      check(s.read_copy(outbuf), "read_copy");
      keep(dst.data());
    };
    std::array<double, 5> ns{};
    try {
      ns = interleave(cfg.batches, cfg.batch_seconds, copy, chain, write, read, write_read);
    } catch (const Error& e) {
      if (e.errc() != Errc::interrupted || interrupted == nullptr) throw;
      *interrupted = true;
      s.close();
      Stream::remove(path);
      break;
    }
    if (std::memcmp(src.data(), dst.data(), size) != 0) throw Error(Errc::system, "bench: read_copy returned other bytes");
    out.push_back(BandwidthResult{size, ns[0], ns[1], ns[2], ns[3], ns[4]});
    s.close();
    Stream::remove(path);
  }
  return out;
}

WriteCostResult run_write_cost(const ThroughputConfig& cfg) {
  WriteCostResult r;
  StreamSpec spec;
  spec.shape = {static_cast<std::uint32_t>(r.frame_bytes)};
  spec.dtype = Dtype::u8;
  r.semaphores = spec.semaphores;
  const std::string path = cfg.stream_dir + "/bench-write.im.shm";
  Stream s = Stream::create(path, spec, OpenMode::PurgeAndCreate);
  std::array<std::byte, 64> frame{};
  for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::byte>(i);
  const std::span<const std::byte> in(frame);
  RawMapping raw;
  RawFrame* f = raw.get();
  WriteOptions no_posts;
  no_posts.post_semaphores = false;
  const WriteOptions posts;

  auto raw_publish = [&] {
    // The minimal publish a futex-aware seqlock needs: flag, data, counter, flag, and a look
    // at the waiter count (no timestamps, no semaphores).
    f->write.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(f->data, frame.data(), frame.size());
    f->counter.fetch_add(1, std::memory_order_seq_cst);
    f->write.store(0, std::memory_order_release);
    if (f->waiters.load(std::memory_order_seq_cst) != 0) std::abort();
    keep(f);
  };
  auto write = [&] { check(s.write(in, no_posts), "write"); };
  auto write_posting = [&] { check(s.write(in, posts), "write"); };
  auto sys = [] {
    const long pid = ::syscall(SYS_getppid);
    keep(&pid);
  };
  auto clock = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    keep(&ts);
  };
  const auto ns = interleave(cfg.batches, cfg.batch_seconds / 2, raw_publish, write, write_posting, sys, clock);
  r.raw_publish_ns = ns[0];
  r.write_ns = ns[1];
  r.write_post_ns = ns[2];
  r.syscall_ns = ns[3];
  r.clock_ns = ns[4];
  s.close();
  Stream::remove(path);
  return r;
}

}  // namespace shmlink::bench
