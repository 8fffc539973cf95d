// SPDX-License-Identifier: MIT
// Micro-benchmarks of the stream hot paths with nobody waiting: write() of 64 B, 4 KiB and
// 4 MiB frames (with and without semaphore posts), read_copy() of the same, and a cnt0() load.
// One process, one thread; streams live in a scratch directory under /dev/shm removed at exit.
// Side-by-side ratios against raw floors are `shmlink bench stream` (docs/bench.md).
#include <shmlink/stream.hpp>

#include <benchmark/benchmark.h>

#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

/// The scratch directory of this run (set in main).
std::string g_dir;

/// A u8 stream of `bytes` per frame in the scratch directory, removed when the handle goes.
class ScratchStream {
 public:
  /// Creates (or replaces) the stream `name` of `bytes` bytes per frame.
  ScratchStream(const std::string& name, std::size_t bytes) : path_(g_dir + "/" + name + ".im.shm") {
    shmlink::StreamSpec spec;
    spec.shape = {static_cast<std::uint32_t>(bytes)};
    spec.dtype = shmlink::Dtype::u8;
    stream_ = shmlink::Stream::create(path_, spec, shmlink::OpenMode::PurgeAndCreate);
  }
  /// Closes and removes the stream.
  ~ScratchStream() {
    stream_.close();
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  ScratchStream(const ScratchStream&) = delete;
  ScratchStream& operator=(const ScratchStream&) = delete;
  /// The handle.
  shmlink::Stream& get() noexcept { return stream_; }

 private:
  std::string path_;
  shmlink::Stream stream_;
};

/// write() of a state.range(0)-byte frame; state.range(1) != 0 posts the 10 semaphores.
void BM_Write(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  ScratchStream s("write", bytes);
  std::vector<std::byte> frame(bytes, std::byte{1});
  shmlink::WriteOptions options;
  options.post_semaphores = state.range(1) != 0;
  for (auto _ : state) {
    const shmlink::Status st = s.get().write(std::span<const std::byte>(frame), options);
    if (!st) state.SkipWithError(st.message());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_Write)
    ->ArgNames({"bytes", "post_semaphores"})
    ->Args({64, 0})
    ->Args({64, 1})
    ->Args({4096, 0})
    ->Args({4096, 1})
    ->Args({4 << 20, 1});

/// read_copy() of a state.range(0)-byte frame (no concurrent writer: one seqlock pass).
void BM_ReadCopy(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  ScratchStream s("read", bytes);
  std::vector<std::byte> frame(bytes, std::byte{2});
  (void)s.get().write(std::span<const std::byte>(frame));
  std::vector<std::byte> out(bytes);
  for (auto _ : state) {
    const shmlink::Status st = s.get().read_copy(std::span<std::byte>(out));
    if (!st) state.SkipWithError(st.message());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_ReadCopy)->ArgName("bytes")->Arg(64)->Arg(4096)->Arg(4 << 20);

/// cnt0() with acquire ordering: the reader's poll.
void BM_Cnt0(benchmark::State& state) {
  ScratchStream s("cnt0", 64);
  for (auto _ : state) benchmark::DoNotOptimize(s.get().cnt0());
}
BENCHMARK(BM_Cnt0);

}  // namespace

/// Runs the benchmarks in a scratch directory under /dev/shm, removed afterwards.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::string tmpl = "/dev/shm/shmlink-gbench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("shmlink_stream_bench: mkdtemp in /dev/shm");
    return 1;
  }
  g_dir = tmpl;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
  return 0;
}
