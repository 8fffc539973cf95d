// SPDX-License-Identifier: MIT
// Which processes hold a file: /proc/<pid>/fd and /proc/<pid>/maps (include/shmlink/segment.hpp).
#include <shmlink/segment.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace shmlink {
namespace {

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

/// 1 when some descriptor of `pid` refers to (dev, ino), 0 when none, -1 when unreadable.
int fds_hold(const std::string& pid, dev_t dev, ino_t ino) {
  const std::string fd_dir = "/proc/" + pid + "/fd";
  DirPtr d(::opendir(fd_dir.c_str()));
  if (!d) return errno == ENOENT ? 0 : -1;  // ENOENT: the process just exited
  while (dirent* e = ::readdir(d.get())) {
    if (e->d_name[0] == '.') continue;
    struct stat st {};
    // stat() on the /proc link follows it to the open file itself (even if unlinked).
    if (::stat((fd_dir + "/" + e->d_name).c_str(), &st) == 0 && st.st_ino == ino && st.st_dev == dev) return 1;
  }
  return 0;
}

/// 1 when `pid` maps (dev, ino), 0 when not, -1 when unreadable.
int maps_hold(const std::string& pid, dev_t dev, ino_t ino) {
  const std::string maps = "/proc/" + pid + "/maps";
  std::FILE* f = std::fopen(maps.c_str(), "r");
  if (f == nullptr) return errno == ENOENT ? 0 : -1;
  char line[4096];
  int found = 0;
  while (found == 0 && std::fgets(line, sizeof line, f) != nullptr) {
    // "start-end perms offset major:minor inode path"
    unsigned long long inode = 0;
    unsigned int major = 0, minor = 0;
    if (std::sscanf(line, "%*s %*s %*s %x:%x %llu", &major, &minor, &inode) == 3 && inode == ino &&
        ::makedev(major, minor) == dev)
      found = 1;
  }
  std::fclose(f);
  return found;
}

}  // namespace

std::vector<int> processes_using(const std::string& path, int* uninspectable) {
  std::vector<int> pids;
  int hidden = 0;
  struct stat target {};
  if (::stat(path.c_str(), &target) == 0) {
    DirPtr proc(::opendir("/proc"));
    while (proc) {
      dirent* e = ::readdir(proc.get());
      if (e == nullptr) break;
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || pid <= 0) continue;
      const int by_fd = fds_hold(e->d_name, target.st_dev, target.st_ino);
      const int by_map = by_fd == 1 ? 1 : maps_hold(e->d_name, target.st_dev, target.st_ino);
      if (by_fd == 1 || by_map == 1) pids.push_back(static_cast<int>(pid));
      else if (by_fd < 0 || by_map < 0) ++hidden;
    }
  }
  std::sort(pids.begin(), pids.end());
  if (uninspectable != nullptr) *uninspectable = hidden;
  return pids;
}

}  // namespace shmlink
