// SPDX-License-Identifier: MIT
// Backings and mappings: files built under a temporary name and published complete, memfds
// sealed against resizing, adopted descriptors, clear errors.
#include "test_util.hpp"

#include <shmlink/segment.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace shmlink;

TEST(Segment, CreateFileInitialisesBeforeItBecomesVisible) {
  test::TempStreamDir dir;
  const std::string path = dir.path() + "/seg.bin";
  bool visible_during_init = true;
  auto seg = Segment::create_file(path, 4096, OpenMode::ExclusiveCreate, 0600, [&](Segment& s) {
    visible_during_init = ::access(path.c_str(), F_OK) == 0;
    std::memcpy(s.data(), "READY", 5);
  });
  EXPECT_FALSE(visible_during_init);
  auto again = Segment::open_file(path);
  EXPECT_EQ(again.size(), 4096u);
  EXPECT_EQ(std::memcmp(again.data(), "READY", 5), 0);
  EXPECT_EQ(again.inode(), seg.inode());
}

TEST(Segment, FailedInitLeavesNothingBehind) {
  test::TempStreamDir dir;
  EXPECT_THROW(Segment::create_file(dir.path() + "/x", 64, OpenMode::ExclusiveCreate, 0600,
                                    [](Segment&) { throw Error(Errc::invalid_argument, "nope"); }),
               Error);
  EXPECT_EQ(dir.entries(), 0);
}

TEST(Segment, ExclusiveFailsWhenPresentPurgeReplaces) {
  test::TempStreamDir dir;
  const std::string path = dir.path() + "/p";
  auto a = Segment::create_file(path, 64, OpenMode::ExclusiveCreate, 0600, {});
  try {
    Segment::create_file(path, 64, OpenMode::ExclusiveCreate, 0600, {});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  auto b = Segment::create_file(path, 128, OpenMode::PurgeAndCreate, 0600, {});
  EXPECT_NE(a.inode(), b.inode());
  EXPECT_EQ(Segment::open_file(path).size(), 128u);
  EXPECT_EQ(dir.entries(), 1);
  EXPECT_THROW(Segment::create_file(path, 64, OpenMode::OpenExisting, 0600, {}), Error);
}

TEST(Segment, OpenMissingOrInMissingDirectoryIsNotFound) {
  try {
    Segment::open_file("/dev/shm/definitely-not-here-shmlink");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
  }
  try {
    Segment::create_file("/nonexistent-dir-shmlink/x", 64, OpenMode::ExclusiveCreate, 0600, {});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-shmlink/x"), std::string::npos);
  }
}

TEST(Segment, MemfdIsSealedAgainstResize) {
  auto m = Segment::create_memfd("shmlink-test", 8192);
  EXPECT_EQ(m.size(), 8192u);
  EXPECT_TRUE(m.path().empty());
  EXPECT_NE(::ftruncate(m.fd(), 100), 0);  // F_SEAL_SHRINK
  EXPECT_NE(::ftruncate(m.fd(), 1 << 20), 0);  // F_SEAL_GROW
  // A second mapping of the same descriptor (as a peer receiving it by SCM_RIGHTS) shares bytes.
  auto peer = Segment::adopt_fd(::dup(m.fd()), "memfd from peer");
  std::memcpy(m.data(), "hello", 5);
  EXPECT_EQ(std::memcmp(peer.data(), "hello", 5), 0);
  EXPECT_THROW(Segment::adopt_fd(-1, "nothing"), Error);
}

TEST(Segment, MovedFromIsEmptyAndCloseIsIdempotent) {
  auto m = Segment::create_memfd("mv", 4096);
  Segment n = std::move(m);
  EXPECT_FALSE(m.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(n.valid());
  n.close();
  n.close();
  EXPECT_FALSE(n.valid());
}

TEST(Segment, ProcessesUsingEachFindsTheHoldersOfEveryFileInOneScan) {
  test::TempStreamDir dir;
  const std::string mapped = dir.path() + "/mapped.bin";
  const std::string opened = dir.path() + "/opened.bin";
  const std::string unused = dir.path() + "/unused.bin";
  const std::string missing = dir.path() + "/missing.bin";
  for (const std::string& p : {mapped, opened, unused}) {
    (void)Segment::create_file(p, 4096, OpenMode::ExclusiveCreate, 0600, [](Segment&) {});  // closed at once
  }
  int ready[2];
  int release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  auto wait_for_release = [&] {
    ::close(release[1]);
    char c = 0;
    (void)::read(release[0], &c, 1);  // returns at EOF: the parent closed its end
  };
  // One child maps `mapped` and closes the descriptor (found through /proc/<pid>/maps only), the
  // other keeps `opened` open without mapping it (found through /proc/<pid>/fd only).
  const pid_t mapper = test::spawn([&] {
    const int fd = ::open(mapped.c_str(), O_RDWR | O_CLOEXEC);
    void* m = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED || ::write(ready[1], "m", 1) != 1) return 2;
    wait_for_release();
    return 0;
  });
  const pid_t holder = test::spawn([&] {
    const int fd = ::open(opened.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::write(ready[1], "o", 1) != 1) return 2;
    wait_for_release();
    return 0;
  });
  ::close(release[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(::read(ready[0], &c, 1), 1);

  const std::vector<std::vector<int>> holders = processes_using_each({mapped, opened, unused, missing});
  ASSERT_EQ(holders.size(), 4u);
  EXPECT_EQ(holders[0], std::vector<int>{mapper});
  EXPECT_EQ(holders[1], std::vector<int>{holder});
  EXPECT_TRUE(holders[2].empty());
  EXPECT_TRUE(holders[3].empty());
  EXPECT_EQ(processes_using(mapped), std::vector<int>{mapper});  // the one-file form agrees
  EXPECT_EQ(processes_using(opened), std::vector<int>{holder});

  ::close(release[1]);
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_EQ(test::reap(mapper), 0);
  EXPECT_EQ(test::reap(holder), 0);
}

}  // namespace
