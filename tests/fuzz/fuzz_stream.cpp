// SPDX-License-Identifier: MIT
// libFuzzer target: a stream file (and optionally its partial-write companion `<name>_pkt`)
// written by a hostile co-user, opened and used through every read, wait, semaphore and write
// path of shmlink::Stream. Nothing may crash, hang, read or write outside the mapping, or
// overflow (ASan + UBSan); refusing the file with shmlink::Error is the expected outcome for
// most inputs.
#include <shmlink/stream.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

#include "fuzz_util.hpp"
#include "stream/tuning.hpp"

using namespace std::chrono_literals;

namespace {

// Frames larger than this are not copied out (the file itself is at most libFuzzer's max_len,
// so a larger frame_bytes() would already be a validation bug that read_copy's span check
// reports; allocating it would only hide that behind an out-of-memory).
constexpr std::size_t kMaxCopy = std::size_t{1} << 24;

void exercise(shmlink::Stream& s) {
  (void)s.info();
  (void)s.keywords();
  (void)s.keyword("GAIN");
  (void)s.replaced();
  const std::size_t frame = s.frame_bytes();
  const auto view = s.view();
  const auto file = s.file_bytes();
  // A view must lie inside the mapping: a violation is a bug even where it would not crash.
  if (!view.empty() && (view.data() < file.data() || view.data() + view.size() > file.data() + file.size()))
    __builtin_trap();
  std::vector<std::byte> out(std::min(frame, kMaxCopy));
  shmlink::FrameInfo info;
  (void)s.read_copy(out, &info);
  const std::uint64_t cnt0 = s.cnt0();
  (void)s.read_frame(cnt0, out, &info);
  (void)s.read_frame(0, out, &info);
  for (std::uint32_t slice = 0; slice < std::min<std::uint32_t>(s.depth(), 4); ++slice) (void)s.read_slice(slice, out, &info);
  std::uint64_t skipped = 0;
  (void)s.read_next(out, &info, &skipped, 0ns);
  (void)s.reset_tail();
  (void)s.read_next(out, &info, &skipped, 0ns);
  (void)s.packet_status(0);
  (void)s.packet_status(cnt0);
  (void)s.wait_futex(cnt0, 0ns);
  (void)s.wait_spin(cnt0, 0ns);
  (void)s.cnt1();
  (void)s.cnt2();
  (void)s.atime_ns();
  (void)s.writetime_ns();
  (void)s.creation_time_ns();
  // Semaphores live in the file: any bytes there must cost that slot, never the process.
  const int sems = std::min(s.semaphore_count(), 12);
  for (int i = 0; i < sems; ++i) {
    (void)s.sem_trywait(i);
    (void)s.sem_wait(i, 0ns);
    (void)s.sem_flush(i);
  }
  const int slot = s.claim_semaphore();
  if (slot >= 0) s.release_semaphore(slot);
  // The write path over a hostile file (cnt1, counters, semaphores, semlog, temporal arrays).
  if (frame <= kMaxCopy) {
    std::fill(out.begin(), out.end(), std::byte{0x5a});
    (void)s.write(out);
    (void)s.write(out, shmlink::WriteOptions{.frame_id = 7});
    auto span = s.begin_write();
    if (span.size() == frame) (void)s.commit_write();
    if (frame >= 2) {
      (void)s.write_packet(0, 2, 0, std::span<const std::byte>(out.data(), 1));
      (void)s.finalize_packets();
    }
  }
  try {
    s.set_keyword("FZ", std::int64_t{1});
    (void)s.erase_keyword("FZ");
  } catch (const shmlink::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A hostile file can hold the write flag set for ever; each read would then wait the full
  // 200 ms grace for a writer presumed dead. 1 ms keeps the same paths at fuzzing speed.
  shmlink::detail::writer_grace_ns().store(1'000'000, std::memory_order_relaxed);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& dir = shmlink::fuzz::scratch_dir();
  const std::string path = dir + "/fz.im.shm";
  const std::string companion = dir + "/fz_pkt.im.shm";
  const auto split = shmlink::fuzz::split_input(data, size);
  if (!shmlink::fuzz::write_file(path, split.first, split.first_size)) return 0;
  if (split.second_size > 0) {
    if (!shmlink::fuzz::write_file(companion, split.second, split.second_size)) return 0;
  } else {
    ::unlink(companion.c_str());
  }
  for (bool writable : {false, true}) {
    try {
      shmlink::Stream s = shmlink::Stream::open(path, shmlink::OpenOptions{.writable = writable});
      exercise(s);
    } catch (const shmlink::Error&) {
      // Refused with a message naming the file: the expected answer to most inputs.
    }
  }
  return 0;
}
