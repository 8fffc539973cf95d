// SPDX-License-Identifier: MIT
// libFuzzer target: a queue file written by a hostile co-user (header, signal table, indices,
// cells with their turns), opened and used through every push, pop, burst and wait path of
// shmlink::Queue with short timeouts. Nothing may crash, overflow, read or write outside the
// mapping, or spin past its timeout (libFuzzer's -timeout reports a hang); Errc::layout at open,
// or a status from a hot-path call, is the expected answer to a corrupted file.
#include <shmlink/queue.hpp>

#include <chrono>
#include <vector>

#include "fuzz_util.hpp"

using namespace std::chrono_literals;

namespace {

shmlink::Sample make_sample(std::uint32_t values, std::uint64_t seq) {
  shmlink::Sample s;
  s.sequence = seq;
  s.flags = shmlink::kSampleHasData;
  s.values.assign(values, shmlink::SignalValue::of(1.5));
  return s;
}

void exercise(shmlink::Queue& q) {
  (void)q.info();
  (void)q.size();
  (void)q.is_shut();
  (void)q.consumer_pid();
  const std::uint32_t n = q.max_values() < 4 ? q.max_values() : 4;
  shmlink::Sample in = make_sample(n, 1);
  shmlink::Sample out;
  (void)q.try_push(in);
  (void)q.try_pop(out);
  std::vector<shmlink::Sample> burst(5, make_sample(n, 2));
  std::size_t moved = 0;
  (void)q.try_push_burst(burst, moved);
  (void)q.try_pop_burst(burst, moved);
  (void)q.push(in, 1ms);
  (void)q.pop(out, 1ms);
  (void)q.pop(out, 1ms);
  (void)q.try_pop_burst(burst, moved);
  q.shutdown();
  (void)q.try_pop(out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = shmlink::fuzz::scratch_dir() + "/fz.queue.shm";
  if (!shmlink::fuzz::write_file(path, data, size)) return 0;
  for (bool writable : {false, true}) {
    try {
      shmlink::Queue q = shmlink::Queue::open(path, shmlink::QueueExpect{.writable = writable});
      exercise(q);
    } catch (const shmlink::Error&) {
    }
  }
  return 0;
}
