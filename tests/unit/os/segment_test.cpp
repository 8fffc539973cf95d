// SPDX-License-Identifier: MIT
// Backings and mappings: files built under a temporary name and published complete, memfds
// sealed against resizing, adopted descriptors, clear errors.
#include "test_util.hpp"

#include <shmlink/segment.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

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

}  // namespace
