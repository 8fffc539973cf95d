// SPDX-License-Identifier: MIT
// A region on hugetlbfs (issue 20): where a hugetlbfs mount with free huge pages exists (or, as
// root, one mounted in a private mount namespace of a child), a region file there is created,
// sized in huge pages, holds channels and opens again by path. Skipped, with the reason, where
// the machine has no huge pages to give (ctest label `hugetlbfs`). The ivshmem server's file on
// hugetlbfs (issue 21) takes whole huge pages too.
#include <shmlink/ivshmem_server.hpp>
#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "test_util.hpp"

namespace shmlink {
namespace {

constexpr int kSkip = 77;

/// HugePages_Free of /proc/meminfo (pages of the default size), 0 when absent.
long free_huge_pages() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("HugePages_Free:", 0) == 0) return std::stol(line.substr(15));
  return 0;
}

/// A writable hugetlbfs mount point, or "".
std::string hugetlbfs_mount() {
  std::ifstream in("/proc/mounts");
  std::string dev, dir, type, rest;
  while (in >> dev >> dir >> type && std::getline(in, rest))
    if (type == "hugetlbfs" && ::access(dir.c_str(), W_OK) == 0) return dir;
  return "";
}

/// In a forked child: the directory to use (the existing mount, or a fresh one in a private
/// mount namespace), or "" when neither is possible.
std::string mount_for_child(const std::string& existing, const std::string& scratch) {
  if (!existing.empty()) return existing;
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0) return "";
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return "";
  if (::mount("none", scratch.c_str(), "hugetlbfs", 0, nullptr) != 0) return "";
  return scratch;
}

/// Runs `body(dir, page)` in a forked child on a writable hugetlbfs directory `dir` whose huge
/// page is `page` bytes (the existing mount, or one in the child's private mount namespace);
/// `body` returns 0 or fails by SHMLINK_CHILD_CHECK on `report`. Skips the calling test where
/// no huge pages are free or no mount can be had.
void in_hugetlbfs_child(test::Shared<test::ChildReport>& report,
                        const std::function<int(const std::string& dir, std::size_t page)>& body) {
  const long free = free_huge_pages();
  if (free < 2) GTEST_SKIP() << "no free huge pages (HugePages_Free is " << free << ")";
  const std::string existing = hugetlbfs_mount();
  char tmpl[] = "/tmp/shmlink-huge-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string scratch = tmpl;
  const pid_t child = test::spawn([&]() -> int {
    const std::string dir = mount_for_child(existing, scratch);
    if (dir.empty()) return kSkip;
    struct statfs fs {};
    SHMLINK_CHILD_CHECK(report, ::statfs(dir.c_str(), &fs) == 0, errno);
    return body(dir, static_cast<std::size_t>(fs.f_bsize));
  });
  const int rc = test::reap(child, 30);
  ::rmdir(scratch.c_str());
  if (rc == kSkip) GTEST_SKIP() << "no writable hugetlbfs mount, and none can be mounted here (not root, or no mount namespace)";
  EXPECT_EQ(rc, 0) << report->describe();
}

TEST(RegionHugetlbfs, ARegionOnHugetlbfsIsSizedInHugePagesAndHoldsEntries) {
  test::Shared<test::ChildReport> report;
  in_hugetlbfs_child(report, [&](const std::string& dir, std::size_t page) -> int {
    const std::string path = dir + "/shmlink-test-" + std::to_string(::getpid()) + ".region";
    // Half a huge page is a power of two but not a whole page: refused, naming the page size.
    bool refused = false;
    try {
      (void)Region::create(path, page / 2);
    } catch (const Error& e) {
      refused = e.errc() == Errc::invalid_argument &&
                std::string(e.what()).find("huge page size " + std::to_string(page)) != std::string::npos;
    }
    SHMLINK_CHILD_CHECK(report, refused, 0);
    {
      Region r = Region::create(path, page);
      SHMLINK_CHILD_CHECK(report, r.size() == page, r.size());
      QueueSpec q;
      q.capacity = 8;
      q.max_values = 4;
      Queue queue = r.create_queue("q", q);
      SHMLINK_CHILD_CHECK(report, queue.valid(), 0);
      Region again = Region::open(path);
      const auto entries = again.entries();
      SHMLINK_CHILD_CHECK(report, entries.size() == 1 && entries[0].name == "q", entries.size());
      Queue seen = again.open_queue("q");
      SHMLINK_CHILD_CHECK(report, seen.capacity() == 8, seen.capacity());
    }
    ::unlink(path.c_str());
    return 0;
  });
}

// `shmlink ivshmem-server -m FILE` on hugetlbfs (issue 21): a size that is not a whole number of
// huge pages is refused, naming the file and the page size (before, the server made a file of a
// whole page holding a directory of the smaller size, which no host process could open); a size
// of whole pages serves a region host processes open through the file.
TEST(RegionHugetlbfs, TheIvshmemServerOnHugetlbfsTakesWholeHugePagesOnly) {
  test::Shared<test::ChildReport> report;
  in_hugetlbfs_child(report, [&](const std::string& dir, std::size_t page) -> int {
    ivshmem::ServerSpec spec;
    spec.socket_path = "/tmp/shmlink-huge-" + std::to_string(::getpid()) + ".sock";
    spec.shm_path = dir + "/shmlink-test-" + std::to_string(::getpid()) + ".iv";
    spec.bytes = page / 2;
    bool refused = false;
    try {
      (void)ivshmem::Server::start(spec);
    } catch (const Error& e) {
      const std::string what = e.what();
      refused = e.errc() == Errc::invalid_argument && what.find(spec.shm_path) != std::string::npos &&
                what.find("huge page size " + std::to_string(page)) != std::string::npos;
    }
    SHMLINK_CHILD_CHECK(report, refused, 0);
    SHMLINK_CHILD_CHECK(report, ::access(spec.shm_path.c_str(), F_OK) != 0, errno);  // nothing left behind
    spec.bytes = page;
    {
      ivshmem::Server server = ivshmem::Server::start(spec);
      Region r = Region::open(spec.shm_path);
      SHMLINK_CHILD_CHECK(report, r.size() == page && !r.same_kernel(), r.size());
    }
    ::unlink(spec.shm_path.c_str());
    ::unlink(spec.socket_path.c_str());
    return 0;
  });
}

}  // namespace
}  // namespace shmlink
