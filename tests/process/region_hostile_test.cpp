// SPDX-License-Identifier: MIT
// A hostile peer scribbles over a region (issue 21: "a guest writes garbage into the directory
// and the host reports a clear error without crashing"), host-only, so that the checks also run
// under the sanitizers (tests/vm/vm_hostile_test.cpp does the same from a real guest). Every
// pattern of tests/common/hostile_region.hpp is written, through a second mapping of the file,
// into a fresh region holding a stream and a queue (the last pattern by a forked child while this
// process reads); then handles opened before the damage are used, and the region is opened,
// listed and its channels opened, read, written, popped and pushed the ways a host program does:
// every answer is a status or a shmlink::Error naming the region, never a crash or a read
// outside it.
#include "cli_run.hpp"
#include "hostile_region.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <string_view>

namespace shmlink::test {
namespace {

constexpr std::size_t kRegionBytes = 1 << 20;

struct Mapping {
  std::byte* bytes = nullptr;
  std::size_t size = 0;
  explicit Mapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) bytes = static_cast<std::byte*>(p), size = kRegionBytes;
  }
  ~Mapping() {
    if (bytes) ::munmap(bytes, size);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

class RegionHostile : public ::testing::Test {
 protected:
  // A fresh region with stream "wfs" (entry 0) and SPSC queue "q" (entry 1), a frame and two
  // samples in them, and the scribbler's view of it.
  hostile::Target fresh(std::optional<Mapping>& m) {
    region_ = Region::create(path_, kRegionBytes, OpenMode::PurgeAndCreate);
    wfs_ = region_.create_stream("wfs", spec_of({64, 16}, Dtype::u32));
    QueueSpec qs;
    qs.capacity = 16;
    qs.max_values = 4;
    q_ = region_.create_queue("q", qs);
    std::vector<std::uint32_t> frame(64 * 16, 7);
    EXPECT_TRUE(wfs_.write(std::span<const std::uint32_t>(frame)));
    Sample s;
    s.values.resize(2);
    EXPECT_TRUE(q_.try_push(s));
    EXPECT_TRUE(q_.try_push(s));
    const auto entries = region_.entries();
    EXPECT_EQ(entries.size(), 2U);
    hostile::Target t;
    m.reset();
    m.emplace(path_);
    t.region = {m->bytes, m->size};
    t.table_end = hostile::kHeaderBytes + hostile::kEntryBytes * 256;
    t.stream_index = 0, t.stream_offset = entries.at(0).offset, t.stream_size = entries.at(0).size;
    t.queue_index = 1, t.queue_offset = entries.at(1).offset, t.queue_size = entries.at(1).size;
    return t;
  }

  // The handles opened before the scribbling: bound to the values they checked at open.
  void use_old_handles() {
    std::vector<std::byte> frame(wfs_.frame_bytes());
    (void)wfs_.read_copy(frame, nullptr, 4);
    (void)wfs_.write(std::span<const std::byte>(frame));
    Sample s;
    for (int i = 0; i < 40; ++i)
      if (!q_.try_pop(s)) break;
    s.values.resize(2);
    (void)q_.try_push(s);
  }

  TempStreamDir dir_;
  const std::string path_ = dir_.path() + "/hostile.region.shm";
  Region region_;
  Stream wfs_;
  Queue q_;
};

TEST_F(RegionHostile, EveryPatternIsAStatusOrAnErrorNamingTheRegion) {
  for (int k = 0; k + 1 < hostile::kPatternCount; ++k) {
    // Three seeds for the random patterns, one for the fixed ones.
    const std::uint64_t seeds = std::string_view(hostile::kPatternNames[k]).starts_with("random") ? 3 : 1;
    for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
      SCOPED_TRACE(hostile::kPatternNames[k]);
      std::optional<Mapping> m;
      const hostile::Target t = fresh(m);
      ASSERT_NE(m->bytes, nullptr);
      hostile::apply(k, t, seed);
      for (const std::string& p : hostile::probe(path_, hostile::kPatternNames[k])) ADD_FAILURE() << p;
      use_old_handles();
    }
  }
}

TEST_F(RegionHostile, ScribblingWhileTheHostReadsIsAStatusOrAnErrorNamingTheRegion) {
  std::optional<Mapping> m;
  const hostile::Target t = fresh(m);
  ASSERT_NE(m->bytes, nullptr);
  // The scribbler is another process (as a guest would be): no thread of this one races the
  // library's reads, which a thread sanitizer would report.
  Shared<std::atomic<bool>> stop;
  const pid_t scribbler = spawn([&]() -> int {
    std::mt19937_64 rng(42);
    while (!stop->load(std::memory_order_relaxed)) hostile::scribble_channels(t, rng);
    return 0;
  });
  for (int round = 0; round < 5; ++round) {
    use_old_handles();
    for (const std::string& p : hostile::probe(path_, "scribbling")) ADD_FAILURE() << p;
  }
  stop->store(true, std::memory_order_relaxed);
  EXPECT_EQ(reap(scribbler, 30), 0);
}

// `shmlink ls` on a directory holding a region whose directory is damaged: the listing goes on
// (exit 0, the healthy stream file listed) and a warning names the region and what is wrong
// (before, the region's channels were left out without a word).
TEST_F(RegionHostile, LsNamesARegionWhoseDirectoryItCannotRead) {
#ifndef SHMLINK_CLI_PATH
  GTEST_SKIP() << "the shmlink CLI is not built";
#else
  std::optional<Mapping> m;
  const hostile::Target t = fresh(m);
  ASSERT_NE(m->bytes, nullptr);
  Stream healthy = Stream::create("healthy", spec_of({4}, Dtype::f32));
  hostile::apply(3, t, 1);  // entries with huge and wrapping offsets and sizes
  const auto ls = run_cli(SHMLINK_CLI_PATH, {"ls", "--dir", dir_.path(), "--interval", "0"}, dir_.path() + "/ls.log");
  EXPECT_EQ(ls.rc, 0) << ls.out;
  EXPECT_NE(ls.out.find("healthy"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("region " + path_ + ": entry 0 ('wfs'): bytes"), std::string::npos) << ls.out;
#endif
}

}  // namespace
}  // namespace shmlink::test
