// SPDX-License-Identifier: MIT
/// @file hostile_region.hpp
/// @brief Test support: what a hostile peer (a guest VM, issue 21) writes into a region, and
/// what the host checks afterwards. Shared by the host-only test (tests/process/
/// region_hostile_test.cpp, which scribbles through its own mapping, also under the sanitizers)
/// and the VM test (tests/vm/vm_hostile_test.cpp, whose guest program
/// tests/vm/guest/vm_hostile_guest.cpp scribbles through its ivshmem BAR2).
///
/// The offsets written here are the documented layouts (docs/design/region.md, streams.md,
/// queues.md); a hostile peer knows them too. Public headers only: the guest program links the
/// public library.
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace shmlink::test::hostile {

/// Where the victims lie in the region (copied from Region::entries() before the scribbling).
struct Target {
  std::span<std::byte> region;     ///< the whole region (its last 4096 bytes are never touched)
  std::uint64_t table_end = 0;     ///< 256 + 128 * max_entries: end of the entry table
  std::uint32_t stream_index = 0;  ///< table index of the stream's entry
  std::uint64_t stream_offset = 0, stream_size = 0;
  std::uint32_t queue_index = 0;   ///< table index of the queue's entry
  std::uint64_t queue_offset = 0, queue_size = 0;
};

/// Byte offsets of the documented layouts (docs/design/region.md, streams.md, queues.md).
inline constexpr std::uint64_t kHeaderBytes = 256, kEntryBytes = 128;
inline constexpr std::uint64_t kHeaderRegionSize = 16, kHeaderDirectoryBytes = 24, kHeaderMaxEntries = 32;
inline constexpr std::uint64_t kHeaderLock = 192;
inline constexpr std::uint64_t kEntryName = 0, kEntryKindState = 80, kEntryOffset = 88, kEntrySize = 96;
inline constexpr std::uint64_t kIsioNaxis = 112, kIsioSize = 116, kIsioNelement = 128, kIsioDatatype = 136;
inline constexpr std::uint64_t kIsioCnt0 = 264, kIsioCnt1 = 272, kIsioWrite = 288, kIsioNBkw = 290, kIsioCBsize = 292;
inline constexpr std::uint64_t kIsioMemsize = 312;
inline constexpr std::uint64_t kQueueCellBytes = 16, kQueueCapacity = 20, kQueueMaxValues = 24, kQueueSignals = 30;
inline constexpr std::uint64_t kQueueTail = 64, kQueueHead = 128;

/// The patterns, in the order the VM test's mailbox steps through them. The last one keeps
/// scribbling (scribble_channels()) until told to stop.
inline constexpr const char* kPatternNames[] = {
    "random bytes over the region header",
    "a valid magic with huge region_size, directory_bytes and max_entries",
    "random bytes over the entry table",
    "entries with huge offsets and sizes (wrapping past 2^64)",
    "an entry that overlaps another",
    "a ready entry that covers the directory and every channel (a loop)",
    "entry names without a NUL, with '/' and control characters",
    "random bytes over the stream's ImageStreamIO header",
    "a stream header with huge sizes, nelement, datatype and keyword count",
    "a stream whose write flag stays set",
    "random bytes over the queue's header",
    "a queue header with huge capacity, cell size and indices that loop",
    "random bytes over the stream and the queue, rewritten while the host reads",
};
inline constexpr int kPatternCount = static_cast<int>(std::size(kPatternNames));

/// Stores `value` at byte `offset` of `region` (nothing when it would not fit).
template <class T>
void put(std::span<std::byte> region, std::uint64_t offset, T value) {
  if (offset + sizeof(T) <= region.size()) std::memcpy(region.data() + offset, &value, sizeof(T));
}

/// Random 64-bit words over [begin, end) of `region`, never into its last 4096 bytes (the VM
/// test's mailbox page).
inline void randomize(std::span<std::byte> region, std::uint64_t begin, std::uint64_t end, std::mt19937_64& rng) {
  end = std::min<std::uint64_t>(end, region.size() - 4096);  // the mailbox page stays
  for (std::uint64_t o = begin; o + 8 <= end; o += 8) put<std::uint64_t>(region, o, rng());
}

/// One pass of the last pattern: random bytes over the first 4 KiB of the stream and of the
/// queue (their headers and first cells; the directory stays valid, so that the host keeps
/// reaching the channels while they change under it).
inline void scribble_channels(const Target& t, std::mt19937_64& rng) {
  randomize(t.region, t.stream_offset, t.stream_offset + 4096, rng);
  randomize(t.region, t.queue_offset, t.queue_offset + 4096, rng);
}

/// Writes pattern `k` (0 <= k < kPatternCount) into `t.region`, deterministic for a `seed`.
inline void apply(int k, const Target& t, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003U + static_cast<std::uint64_t>(k));
  const auto r = t.region;
  const std::uint64_t se = kHeaderBytes + kEntryBytes * t.stream_index;
  const std::uint64_t qe = kHeaderBytes + kEntryBytes * t.queue_index;
  const std::uint64_t so = t.stream_offset, qo = t.queue_offset;
  switch (k) {
    case 0: randomize(r, 0, kHeaderBytes, rng); break;
    case 1:
      put<std::uint64_t>(r, kHeaderRegionSize, ~0ULL - 4095);
      put<std::uint64_t>(r, kHeaderDirectoryBytes, 1ULL << 62);
      put<std::uint32_t>(r, kHeaderMaxEntries, 0xFFFFFFFFU);
      break;
    case 2: randomize(r, kHeaderBytes, t.table_end, rng); break;
    case 3:
      put<std::uint64_t>(r, se + kEntryOffset, ~0ULL - 4095);  // offset + size wraps to 4096
      put<std::uint64_t>(r, se + kEntrySize, 8192);
      put<std::uint64_t>(r, qe + kEntrySize, 1ULL << 63);
      break;
    case 4:
      put<std::uint64_t>(r, qe + kEntryOffset, so);  // the queue on top of the stream
      put<std::uint64_t>(r, qe + kEntrySize, t.stream_size);
      break;
    case 5: {
      const std::uint64_t free_entry = kHeaderBytes + kEntryBytes * (std::max(t.stream_index, t.queue_index) + 1);
      const char name[] = "loop";
      std::memcpy(r.data() + free_entry + kEntryName, name, sizeof name);
      put<std::uint64_t>(r, free_entry + kEntryKindState, 1ULL | (2ULL << 32));  // kind stream, state ready
      put<std::uint64_t>(r, free_entry + kEntryOffset, 0);
      put<std::uint64_t>(r, free_entry + kEntrySize, r.size());
      break;
    }
    case 6:
      std::memset(r.data() + se + kEntryName, 'w', 80);
      for (std::uint64_t i = 0; i < 80; ++i) r[qe + kEntryName + i] = std::byte{static_cast<unsigned char>(i % 3 == 0 ? '/' : i % 3 == 1 ? 1 : 'q')};
      break;
    case 7: randomize(r, so, so + 384, rng); break;
    case 8:
      put<std::uint8_t>(r, so + kIsioNaxis, 3);
      for (int i = 0; i < 3; ++i) put<std::uint32_t>(r, so + kIsioSize + 4U * static_cast<unsigned>(i), 0xFFFFFFFFU);
      put<std::uint64_t>(r, so + kIsioNelement, ~0ULL);
      put<std::uint8_t>(r, so + kIsioDatatype, 0xEE);
      put<std::uint16_t>(r, so + kIsioNBkw, 0xFFFF);
      put<std::uint32_t>(r, so + kIsioCBsize, 0xFFFFFFFFU);
      put<std::uint64_t>(r, so + kIsioMemsize, ~0ULL);
      put<std::uint64_t>(r, so + kIsioCnt1, ~0ULL);
      break;
    case 9:
      put<std::uint8_t>(r, so + kIsioWrite, 1);
      put<std::uint64_t>(r, so + kIsioCnt0, 12345);
      break;
    case 10: randomize(r, qo, qo + 384, rng); break;
    case 11:
      put<std::uint32_t>(r, qo + kQueueCellBytes, 0xFFFFFFF0U);
      put<std::uint32_t>(r, qo + kQueueCapacity, 0x80000000U);
      put<std::uint32_t>(r, qo + kQueueMaxValues, 0xFFFFFFFFU);
      put<std::uint16_t>(r, qo + kQueueSignals, 0xFFFF);
      put<std::uint64_t>(r, qo + kQueueTail, ~0ULL - 3);
      put<std::uint64_t>(r, qo + kQueueHead, 1ULL << 40);
      break;
    default: scribble_channels(t, rng); break;
  }
}

/// True when `what` names the region `path` (an error must say which resource it is about).
inline bool names(const std::string& what, const std::string& path) { return what.find(path) != std::string::npos; }

/// Opens the region at `path` and its channels the ways a host program does (writable and
/// read-only, entries(), every ready entry by name, a read, a write, pops and a push) and
/// returns what went wrong: an exception that is not shmlink::Error, an Error whose message does
/// not name the region, a stream frame larger than the region. Everything else (Errc::layout,
/// timeout, statuses) is an acceptable answer to garbage. `pattern` labels the problems.
inline std::vector<std::string> probe(const std::string& path, const std::string& pattern) {
  std::vector<std::string> problems;
  auto bad = [&](const std::string& step, const std::string& what) {
    problems.push_back(pattern + ": " + step + ": " + what);
  };
  auto guarded = [&](const std::string& step, auto&& fn) {
    try {
      fn();
    } catch (const shmlink::Error& e) {
      if (!names(e.what(), path)) bad(step, std::string("an error that does not name the region: ") + e.what());
    } catch (const std::exception& e) {
      bad(step, std::string("not a shmlink::Error: ") + e.what());
    }
  };
  for (const bool writable : {true, false}) {
    const std::string how = writable ? "writable" : "read-only";
    guarded("Region::open " + how, [&] {
      shmlink::Region region = shmlink::Region::open(path, writable);
      std::vector<std::string> names_seen = {"wfs", "q", "loop"};
      guarded("entries() " + how, [&] {
        for (const auto& e : region.entries())
          if (names_seen.size() < 8) names_seen.push_back(e.name);
      });
      for (const std::string& name : names_seen) {
        guarded("open_stream " + name + " " + how, [&] {
          shmlink::OpenOptions opt;
          opt.writable = writable;
          shmlink::Stream s = region.open_stream(name, opt);
          if (s.frame_bytes() > region.size()) {
            bad("open_stream " + name, "frame_bytes " + std::to_string(s.frame_bytes()) + " exceeds the region");
            return;
          }
          std::vector<std::byte> frame(s.frame_bytes());
          (void)s.read_copy(frame, nullptr, 4);
          (void)s.cnt0();
          if (writable) (void)s.write(std::span<const std::byte>(frame));
        });
        guarded("open_queue " + name + " " + how, [&] {
          shmlink::QueueExpect expect;
          expect.writable = writable;
          shmlink::Queue q = region.open_queue(name, expect);
          shmlink::Sample m;
          for (std::uint32_t i = 0; i < 2 * std::min<std::uint32_t>(q.capacity(), 4096) + 1; ++i)
            if (!q.try_pop(m)) break;
          if (writable) {
            shmlink::Sample s;
            s.values.resize(std::min<std::uint32_t>(q.max_values(), 4));
            (void)q.try_push(s);
          }
        });
      }
    });
  }
  return problems;
}

}  // namespace shmlink::test::hostile
