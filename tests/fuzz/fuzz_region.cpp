// SPDX-License-Identifier: MIT
// libFuzzer target: a region directory written by a hostile peer (a buggy or hostile guest VM,
// issue 20). The input is the start of a region (header, entry table, anything after them); it
// lands in a zero-filled 256 KiB region which is attached, listed, and then used: entries
// reserved, published, looked up, removed, placements checked for currency, queues in ready
// entries opened by name. Nothing may crash,
// read or write outside the region, or loop without bound (the lock timeout is 1 ms here and a
// wait never outlasts five of them); Errc::layout (a corrupt directory), timeout (a lock that
// looks held by a live process) or no_space are the expected answers.
#include "region/region_access.hpp"

#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

constexpr std::size_t kRegionBytes = 256 * 1024;

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};

void exercise(shmlink::Region& r) {
  using shmlink::detail::RegionAccess;
  const auto& st = RegionAccess::state(r);
  std::vector<shmlink::rdir::Slot> seen;
  try {
    seen = st->dir.snapshot();
  } catch (const shmlink::Error&) {
  }
  for (const auto& s : seen) {
    shmlink::Placement p = RegionAccess::placement(st, s);
    (void)p.still_current();
    if (p.bytes.size() >= 8) (void)std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p.bytes.data())).load();
    // The channel in the entry, opened by name: its own checks run against the entry's bytes.
    try {
      if (s.entry.kind == shmlink::ChannelKind::queue) {
        shmlink::Queue q = r.open_queue(s.entry.name);
        shmlink::Sample m;
        (void)q.try_pop(m);
      }
    } catch (const shmlink::Error&) {
    }
  }
  try {
    auto res = RegionAccess::allocate(st, "fz", shmlink::ChannelKind::queue, 5000);
    st->dir.publish(res.slot);
    (void)RegionAccess::placement(st, res.slot).still_current();
  } catch (const shmlink::Error&) {
  }
  try {
    (void)st->dir.remove(seen.empty() ? "fz" : seen.front().entry.name);
    (void)r.entries();
  } catch (const shmlink::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  shmlink::rdir::g_lock_timeout_ns.store(1'000'000);
  std::unique_ptr<std::byte, FreeDeleter> buf(static_cast<std::byte*>(std::aligned_alloc(4096, kRegionBytes)));
  if (!buf) return 0;
  std::memset(buf.get(), 0, kRegionBytes);
  std::memcpy(buf.get(), data, size < kRegionBytes ? size : kRegionBytes);
  // The table is a copy of what the peer wrote, validated on its own as well.
  if (size >= sizeof(shmlink::rlayout::RegionHeader)) {
    shmlink::rdir::Header h;
    h.region_size = kRegionBytes;
    h.directory_bytes = shmlink::rlayout::directory_bytes(16);
    h.max_entries = 16;
    const std::size_t n = std::min<std::size_t>(16, (size - sizeof(shmlink::rlayout::RegionHeader)) /
                                                        sizeof(shmlink::rlayout::RegionEntry));
    std::vector<shmlink::rlayout::RegionEntry> table(n);
    if (n > 0)
      std::memcpy(table.data(), data + sizeof(shmlink::rlayout::RegionHeader), n * sizeof(shmlink::rlayout::RegionEntry));
    try {
      (void)shmlink::rdir::validate(table, h, "fuzz");
    } catch (const shmlink::Error&) {
    }
  }
  try {
    shmlink::Region r = shmlink::Region::attach({buf.get(), kRegionBytes}, nullptr, "fuzz", false);
    exercise(r);
  } catch (const shmlink::Error&) {
  }
  return 0;
}
