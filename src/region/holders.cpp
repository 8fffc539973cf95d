// SPDX-License-Identifier: MIT
// Who holds a region's lock or owns an entry, and whether it still lives (region_internal.hpp;
// docs/design/region.md, "The recovery rule"): this kernel's identity, holder tokens, start
// times and the liveness rules. Only "the thread or process is gone" may mean dead; whatever
// cannot be read is unknown, and unknown is treated as alive.
#include "region/region_internal.hpp"

#include "os/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace shmlink::rdir {

namespace {

/// The state letter and start time (field 22, clock ticks since boot) of one /proc stat file.
struct TaskStat {
  char state = '?';
  std::uint64_t start = 0;
};
/// A read of a stat file: `err` 0 and `stat` filled, or the errno of the failure (EIO when the
/// text does not parse).
struct StatRead {
  int err = 0;
  TaskStat stat;
};
StatRead read_stat(const std::string& path) {
  StatRead r;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r.err = errno;
    return r;
  }
  char buf[1024];
  ssize_t n = 0;
  do {
    n = ::read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  const int read_err = errno;
  ::close(fd);
  if (n < 0) {
    r.err = read_err;  // ESRCH: the task went away between open and read
    return r;
  }
  const std::string text(buf, static_cast<std::size_t>(n));
  const auto paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) {
    r.err = EIO;
    return r;
  }
  std::istringstream fields(text.substr(paren + 2));
  fields >> r.stat.state;
  std::string skip;
  for (int k = 4; k < 22 && fields >> skip; ++k) {
  }
  if (!(fields >> r.stat.start)) r.err = EIO;
  return r;
}
bool exited(char state) noexcept { return state == 'Z' || state == 'X' || state == 'x'; }
std::string proc(const std::string& rest) { return std::string(g_proc_root) + "/" + rest; }

/// True when the /proc read is this pid namespace's and shows other users' tasks: /proc/self
/// names this process and pid 1 is visible (not so under hidepid, in a container given another
/// namespace's /proc, or with a test's folder). Otherwise its "no such task" proves nothing.
bool proc_trusted() {
  char link[32] = {};
  const ssize_t n = ::readlink(proc("self").c_str(), link, sizeof link - 1);
  if (n <= 0 || std::string(link, static_cast<std::size_t>(n)) != std::to_string(os::current_pid())) return false;
  struct stat st {};
  return ::stat(proc("1").c_str(), &st) == 0;
}

/// "Gone" as /proc (ENOENT, ESRCH) and kill(id, 0) (ESRCH) both say it; anything else unknown.
Liveness absent(int err, std::uint64_t id) {
  if ((err != ENOENT && err != ESRCH) || !proc_trusted()) return Liveness::unknown;
  errno = 0;
  const bool no_such = ::kill(static_cast<pid_t>(id), 0) != 0 && errno == ESRCH;
  return no_such ? Liveness::gone : Liveness::unknown;
}

/// The verdict on a readable stat of the task recorded with `start` (0: not recorded).
Liveness judge_stat(const TaskStat& st, std::uint64_t start) {
  if (!proc_trusted()) return Liveness::unknown;
  if (start != 0 && (st.start & 0xffffffffU) != (start & 0xffffffffU)) return Liveness::gone;  // a reused id
  return start != 0 ? Liveness::alive : Liveness::unknown;
}

}  // namespace

Liveness thread_liveness(std::uint64_t tid, std::uint64_t start) {
  const std::string t = std::to_string(tid);
  const StatRead r = read_stat(proc(t + "/task/" + t + "/stat"));
  if (r.err != 0) return absent(r.err, tid);
  if (exited(r.stat.state)) return proc_trusted() ? Liveness::gone : Liveness::unknown;
  return judge_stat(r.stat, start);
}

Liveness process_liveness(std::uint64_t pid, std::uint64_t start) {
  const std::string dir = proc(std::to_string(pid));
  const StatRead r = read_stat(dir + "/stat");
  if (r.err != 0) return absent(r.err, pid);
  if (!proc_trusted()) return Liveness::unknown;  // nor may its task list make it gone
  const Liveness v = judge_stat(r.stat, start);
  if (v == Liveness::gone || !exited(r.stat.state)) return v;
  // A zombie leader: the process lives while any other thread of it runs.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir + "/task", ec), end; it != end; it.increment(ec)) {
    if (ec) return Liveness::unknown;
    const StatRead t = read_stat(it->path().string() + "/stat");
    if (t.err == 0 && !exited(t.stat.state)) return v;
    if (t.err != 0 && t.err != ENOENT && t.err != ESRCH) return Liveness::unknown;
  }
  return ec ? Liveness::unknown : Liveness::gone;
}

std::uint64_t thread_start() {
  const StatRead r = read_stat(proc("thread-self/stat"));
  return r.err == 0 ? r.stat.start : 0;
}

std::uint64_t process_start() {
  const StatRead r = read_stat(proc("self/stat"));
  return r.err == 0 ? r.stat.start : 0;
}

std::uint64_t random_u64() noexcept {
  std::uint64_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof v)) return v;
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  v = static_cast<std::uint64_t>(ts.tv_nsec) ^ (static_cast<std::uint64_t>(ts.tv_sec) << 30) ^
      reinterpret_cast<std::uintptr_t>(&v) ^ (static_cast<std::uint64_t>(::gettid()) << 40);
  return v * 0x9e3779b97f4a7c15ULL;
}

// ---- identity -------------------------------------------------------------------------------

const Identity& local_identity() {
  static const Identity id = [] {
    Identity r;
    std::ifstream in(kBootIdPath);
    std::string text;
    std::getline(in, text);
    r.boot_id_read = text.size() >= 32;
    std::size_t n = 0;
    for (std::size_t i = 0; i + 1 < text.size() && n < 16;) {
      if (text[i] == '-') {
        ++i;
        continue;
      }
      unsigned v = 0;
      if (std::sscanf(text.c_str() + i, "%2x", &v) != 1) break;
      r.boot_id[n++] = static_cast<std::uint8_t>(v);
      i += 2;
    }
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) r.host_name = host;
    // The hash covers the boot and the pid namespace: pids mean something only within one.
    struct stat st {};
    const std::uint64_t ns = ::stat("/proc/self/ns/pid", &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
    std::uint32_t h = 2166136261U;  // FNV-1a
    auto mix = [&h](std::uint8_t b) { h = (h ^ b) * 16777619U; };
    for (std::uint8_t b : r.boot_id) mix(b);
    for (int k = 0; k < 8; ++k) mix(static_cast<std::uint8_t>(ns >> (8 * k)));
    r.token_hash = h == 0 ? 1 : h;
    return r;
  }();
  return id;
}

std::uint64_t holder_token() noexcept {
  return (std::uint64_t{local_identity().token_hash} << 32) | static_cast<std::uint32_t>(os::current_pid());
}

}  // namespace shmlink::rdir
