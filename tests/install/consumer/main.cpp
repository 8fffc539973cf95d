// A user's first program against an installed shmlink.
#include <shmlink/stream.hpp>

#include <cstdio>
#include <numeric>

int main() {
  shmlink::StreamSpec spec;
  spec.shape = {8};
  spec.dtype = shmlink::Dtype::i32;
  auto s = shmlink::Stream::create("consumer_demo", spec, shmlink::OpenMode::PurgeAndCreate);
  const int values[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  if (!s.write(std::span<const int>(values)).ok()) return 1;
  auto r = shmlink::Stream::open("consumer_demo");
  int back[8];
  if (!r.read_copy(std::as_writable_bytes(std::span(back))).ok()) return 2;
  std::printf("consumer: cnt0=%llu sum=%d\n", static_cast<unsigned long long>(r.cnt0()),
              std::accumulate(back, back + 8, 0));
  return 0;
}
