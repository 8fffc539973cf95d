// SPDX-License-Identifier: MIT
// The catalog (include/shmlink/catalog.hpp): listing a stream directory by kind, name and path
// with holders; the temporary names of Segment::create_file (is_temporary_name()); the SIGBUS
// guard (read_guarded()). Public API only, real files in a private directory.
#include <shmlink/catalog.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/segment.hpp>
#include <shmlink/stream.hpp>

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace shmlink {
namespace {

namespace fs = std::filesystem;
using test::TempStreamDir;

/// The listing of `kind` and `name` in `all`, or nullptr.
const ChannelListing* find(const std::vector<ChannelListing>& all, std::string_view kind, std::string_view name) {
  auto it = std::find_if(all.begin(), all.end(),
                         [&](const ChannelListing& l) { return l.kind == kind && l.name == name; });
  return it == all.end() ? nullptr : &*it;
}

TEST(Catalog, TemporaryNamesAreCreateFilesOwn) {
  EXPECT_TRUE(is_temporary_name(".wfs.im.shm.Ab3xZ9"));
  EXPECT_TRUE(is_temporary_name(".q.queue.shm.000000"));
  EXPECT_TRUE(is_temporary_name(".123-0.memif.shm.zzzzzz"));
  EXPECT_TRUE(is_temporary_name(".ao.region.shm.AAAAAA"));
  // Other programs' dot files in a shared /dev/shm, and published or malformed names.
  EXPECT_FALSE(is_temporary_name(".org.chromium.Chromium.Ab3xZ9"));
  EXPECT_FALSE(is_temporary_name("wfs.im.shm"));
  EXPECT_FALSE(is_temporary_name(".wfs.im.shm"));
  EXPECT_FALSE(is_temporary_name(".wfs.im.shm.Ab3xZ"));    // five random characters
  EXPECT_FALSE(is_temporary_name(".wfs.im.shm.Ab3x-9"));   // not a letter or digit
  EXPECT_FALSE(is_temporary_name(".shm.Ab3xZ9"));          // no final name before ".shm"
  EXPECT_FALSE(is_temporary_name("x/.wfs.im.shm.Ab3xZ9"));  // a path, not a name
  EXPECT_FALSE(is_temporary_name(""));
}

TEST(Catalog, CreateFileBuildsUnderATemporaryName) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/seg.queue.shm";
  std::vector<std::string> seen;
  Segment::create_file(path, 4096, OpenMode::ExclusiveCreate, 0600, [&](Segment&) {
    for (const auto& e : fs::directory_iterator(dir.path())) seen.push_back(e.path().filename().string());
  });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(is_temporary_name(seen[0])) << seen[0];
  const std::vector<ChannelListing> during = {channel_file(dir.path() + "/" + seen[0])};
  EXPECT_EQ(during[0].kind, "temporary");
  EXPECT_EQ(during[0].name, "seg.queue.shm");
}

TEST(Catalog, ListsEveryKindByNameAndPathWithHolders) {
  TempStreamDir dir;
  Stream cam = Stream::create("cam", test::spec_of({4, 4}, Dtype::u16));
  { Queue q = Queue::create("ctl", QueueSpec{}); }
  std::ofstream(dir.path() + "/4242-0.memif.shm") << "x";
  std::ofstream(dir.path() + "/ao.region.shm") << "x";
  std::ofstream(dir.path() + "/.cam2.im.shm.Ab3xZ9") << "x";
  std::ofstream(dir.path() + "/notes.txt") << "not a channel";
  fs::create_directory(dir.path() + "/sub.im.shm");  // a directory named like a stream: skipped

  const std::vector<ChannelListing> all = list_channels();  // the stream directory
  ASSERT_EQ(all.size(), 5u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const ChannelListing& a, const ChannelListing& b) { return a.path < b.path; }));
  const ChannelListing* s = find(all, "stream", "cam");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->path, dir.path() + "/cam.im.shm");
  // This process maps the stream; nobody holds the queue (closed above).
  EXPECT_NE(std::find(s->holders.begin(), s->holders.end(), static_cast<int>(::getpid())), s->holders.end());
  const ChannelListing* q = find(all, "queue", "ctl");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->path, dir.path() + "/ctl.queue.shm");
  EXPECT_TRUE(q->holders.empty());
  EXPECT_NE(find(all, "memif-status", "4242-0"), nullptr);
  EXPECT_NE(find(all, "region", "ao"), nullptr);
  const ChannelListing* t = find(all, "temporary", "cam2.im.shm");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->path, dir.path() + "/.cam2.im.shm.Ab3xZ9");

  // Without holders: the same files, no /proc scan.
  const std::vector<ChannelListing> bare = list_channels(dir.path(), false);
  ASSERT_EQ(bare.size(), all.size());
  for (const ChannelListing& l : bare) EXPECT_TRUE(l.holders.empty()) << l.path;
}

TEST(Catalog, RegionsListTheirReadyEntriesAsPathColonName) {
  TempStreamDir dir;
  Region region = Region::create("ao", 64 * 1024);
  QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 4;
  Queue ctl = region.create_queue("ctl", spec);
  std::ofstream(dir.path() + "/zz.queue.shm") << "x";  // sorts after the region's entries

  const std::vector<ChannelListing> all = list_channels(dir.path(), true);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].kind, "region");
  EXPECT_EQ(all[0].name, "ao");
  EXPECT_EQ(all[0].path, dir.path() + "/ao.region.shm");
  EXPECT_EQ(all[1].kind, "region-queue");
  EXPECT_EQ(all[1].name, "ctl");
  EXPECT_EQ(all[1].path, dir.path() + "/ao.region.shm:ctl");
  // An entry's holders are the region file's: this process maps it.
  EXPECT_EQ(all[1].holders, all[0].holders);
  EXPECT_NE(std::find(all[1].holders.begin(), all[1].holders.end(), static_cast<int>(::getpid())),
            all[1].holders.end());
  EXPECT_EQ(all[2].kind, "queue");

  region.remove("ctl");
  EXPECT_EQ(list_channels(dir.path(), false).size(), 2u);  // removed: no entry listed
}

TEST(Catalog, ChannelFileReadsNothingUnlessAsked) {
  EXPECT_EQ(channel_file("/nowhere/x.im.shm").kind, "stream");
  EXPECT_EQ(channel_file("/nowhere/x.im.shm").name, "x");
  EXPECT_EQ(channel_file("x.queue.shm").kind, "queue");
  EXPECT_EQ(channel_file("x.queue.shm").path, "x.queue.shm");
  EXPECT_EQ(channel_file("/nowhere/notes.txt").kind, "");
  EXPECT_EQ(channel_file("/nowhere/notes.txt", true).kind, "");  // absent: not a VILLAS region
}

TEST(Catalog, ListingAMissingDirectoryNamesIt) {
  try {
    (void)list_channels("/nonexistent-shmlink-dir", false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-shmlink-dir"), std::string::npos) << e.what();
  }
}

TEST(Catalog, ReadGuardedAbsorbsSigbusOfATruncatedMapping) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/shrinks.bin";
  const long page = ::sysconf(_SC_PAGESIZE);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4 * page), 0);
  Mapping map(fd, static_cast<std::size_t>(4 * page), true, path);
  map.data()[3 * page] = std::byte{7};
  ASSERT_EQ(::ftruncate(fd, page), 0);  // truncated in place under the mapping
  ::close(fd);
  volatile std::byte seen{1};
  const std::byte* far = map.data() + 3 * page;
  EXPECT_TRUE(read_guarded(map.bytes(), [&] { seen = *far; }));
  EXPECT_EQ(static_cast<int>(seen), 0);  // the faulting page read as zeros
  // A read inside the file does not fault.
  EXPECT_FALSE(read_guarded(map.bytes(), [&] { seen = map.data()[0]; }));
  // An empty range guards every address (for a read that maps the file itself).
  EXPECT_FALSE(read_guarded({}, [] {}));
}

}  // namespace
}  // namespace shmlink
