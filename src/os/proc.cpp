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
#include <string>
#include <utility>
#include <vector>

namespace shmlink {
namespace {

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

/// A file looked for: its device and inode.
struct Target {
  dev_t dev = 0;
  ino_t ino = 0;
  bool exists = false;  ///< stat(2) succeeded; absent files are never found
};

/// Marks in `held` the targets some descriptor of `pid` refers to; false when the process's
/// descriptors cannot be read (ENOENT, a process that just exited, is not that).
bool fds_hold(const std::string& pid, const std::vector<Target>& targets, std::vector<char>& held) {
  const std::string fd_dir = "/proc/" + pid + "/fd";
  DirPtr d(::opendir(fd_dir.c_str()));
  if (!d) return errno == ENOENT;
  while (dirent* e = ::readdir(d.get())) {
    if (e->d_name[0] == '.') continue;
    struct stat st {};
    // stat() on the /proc link follows it to the open file itself (even if unlinked).
    if (::stat((fd_dir + "/" + e->d_name).c_str(), &st) != 0) continue;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (targets[i].exists && st.st_ino == targets[i].ino && st.st_dev == targets[i].dev) held[i] = 1;
    }
  }
  return true;
}

/// Marks in `held` the targets `pid` maps; false when its maps cannot be read. `*empty` is set
/// when the maps were read and list no mapping at all: a kernel thread (or a zombie) has no
/// address space, hence no descriptor of its own either, so it is fully inspected even when its
/// fd/ directory is closed to us.
bool maps_hold(const std::string& pid, const std::vector<Target>& targets, std::vector<char>& held, bool* empty) {
  *empty = false;
  const std::string maps = "/proc/" + pid + "/maps";
  std::FILE* f = std::fopen(maps.c_str(), "r");
  if (f == nullptr) return errno == ENOENT;
  char line[4096];
  bool any = false;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    any = true;
    // "start-end perms offset major:minor inode path"
    unsigned long long inode = 0;
    unsigned int major = 0, minor = 0;
    if (std::sscanf(line, "%*s %*s %*s %x:%x %llu", &major, &minor, &inode) != 3 || inode == 0) continue;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (targets[i].exists && inode == targets[i].ino && ::makedev(major, minor) == targets[i].dev) held[i] = 1;
    }
  }
  const bool read_all = std::ferror(f) == 0;
  std::fclose(f);
  *empty = read_all && !any;
  return read_all;
}

}  // namespace

std::vector<std::vector<int>> processes_using_each(const std::vector<std::string>& paths, int* uninspectable) {
  std::vector<std::vector<int>> pids(paths.size());
  int hidden = 0;
  std::vector<Target> targets(paths.size());
  bool any = false;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    struct stat st {};
    if (::stat(paths[i].c_str(), &st) == 0) targets[i] = {st.st_dev, st.st_ino, true};
    any = any || targets[i].exists;
  }
  DirPtr proc(any ? ::opendir("/proc") : nullptr);
  std::vector<char> held(paths.size());
  while (proc) {
    dirent* e = ::readdir(proc.get());
    if (e == nullptr) break;
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0) continue;
    std::fill(held.begin(), held.end(), 0);
    const bool fds_read = fds_hold(e->d_name, targets, held);
    const bool all_found = std::all_of(held.begin(), held.end(), [](char h) { return h != 0; });
    bool no_mappings = false;
    const bool maps_read = all_found || maps_hold(e->d_name, targets, held, &no_mappings);
    bool missed = false;
    for (std::size_t i = 0; i < held.size(); ++i) {
      if (held[i] != 0) {
        pids[i].push_back(static_cast<int>(pid));
      } else if (targets[i].exists) {
        missed = true;
      }
    }
    if (missed && (!fds_read || !maps_read) && !no_mappings) ++hidden;
  }
  for (std::vector<int>& p : pids) std::sort(p.begin(), p.end());
  if (uninspectable != nullptr) *uninspectable = hidden;
  return pids;
}

std::vector<int> processes_using(const std::string& path, int* uninspectable) {
  return std::move(processes_using_each({path}, uninspectable).front());
}

}  // namespace shmlink
