// SPDX-License-Identifier: MIT
// libFuzzer target: a VILLASnode v1.x shmem region written by a hostile peer (issue 19). The
// input is the whole region: it is inspected (bytes and file), attached as the peer's region and
// pulled from a bounded number of times, and, when its geometry allows, laid over our own output
// region (every byte of which the peer can write) before pushes and a stop. Nothing may crash,
// read or write outside the region, or loop without bound (libFuzzer's -timeout reports a hang);
// Errc::layout at attach, or a status from try_pull/try_push, is the expected answer.
#include "queue/villas_region.hpp"

#include <shmlink/villas.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "fuzz_util.hpp"

namespace {

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, FreeDeleter>;

/// A 64-aligned copy of the input (a mapping is page-aligned; the fuzzer's buffer is not).
Buffer aligned_copy(const std::uint8_t* data, std::size_t size) {
  const std::size_t rounded = (size + 63) / 64 * 64 + 64;
  Buffer b(static_cast<std::byte*>(std::aligned_alloc(64, rounded)));
  if (b) std::memcpy(b.get(), data, size);
  return b;
}

/// Our own polling-mode region of the peer's geometry, overwritten with the peer's bytes.
void exercise_own(const shmlink::villas::Geometry& g, const std::uint8_t* data, std::size_t size) {
  using namespace shmlink::villas;
  const std::uint64_t cap = block_capacity(g.blocksz);
  if (cap < 1 || cap > shmlink::kMaxSampleValues || region_size(static_cast<std::uint32_t>(g.blocks),
                                                                static_cast<std::uint32_t>(cap)) != size)
    return;
  Buffer b = aligned_copy(data, size);
  if (!b) return;
  try {
    // Polling mode: glibc's pthread objects are not ours to fuzz.
    OwnRegion own = OwnRegion::init({b.get(), size}, static_cast<std::uint32_t>(g.blocks),
                                    static_cast<std::uint32_t>(cap), false, "fuzz-own");
    std::memcpy(b.get(), data, size);  // the peer rewrote every byte of it
    shmlink::Sample s;
    s.flags = shmlink::kSampleHasData | shmlink::kSampleHasSequence;
    s.values.assign(cap < 4 ? cap : 4, shmlink::SignalValue::of(2.5));
    for (std::uint64_t i = 0; i < 8; ++i) {
      s.sequence = i;
      (void)own.try_push(s);
    }
    (void)own.queued();
    own.stop();
    (void)own.try_push(s);
  } catch (const shmlink::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shmlink::villas;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  (void)looks_like_region(input.first(size < 1024 ? size : 1024), size);
  try {
    (void)inspect(input, "fuzz");
  } catch (const shmlink::Error&) {
  }
  const std::string path = shmlink::fuzz::scratch_dir() + "/fz.villas";
  if (shmlink::fuzz::write_file(path, data, size)) {
    try {
      (void)inspect_file(path);
    } catch (const shmlink::Error&) {
    }
  }
  Buffer b = aligned_copy(data, size);
  if (!b) return 0;
  try {
    PeerRegion peer = PeerRegion::attach({b.get(), size}, "fuzz");
    shmlink::Sample s;
    for (int i = 0; i < 16; ++i)
      if (peer.try_pull(s) == shmlink::Errc::shut_down) break;
    (void)peer.info();
    exercise_own(peer.geometry(), data, size);
  } catch (const shmlink::Error&) {
  }
  return 0;
}
