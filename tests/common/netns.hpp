// SPDX-License-Identifier: MIT
// Two network namespaces joined by a veth pair, standing for two hosts on one link (issue 22's
// bridge tests): separate network stacks whose only traffic is on that pair and on their own
// loopback. Made with iproute2's `ip` (Debian package iproute2), so the tests need root and
// `ip netns` support; make_pair() says why not otherwise and the test skips with that reason.
//
//   auto pair = shmlink::test::netns::make_pair(&why);
//   if (!pair) GTEST_SKIP() << why;
//   pid_t a = spawn_in(pair->ns_a, [&] { ... bind to pair->address_a ...; return 0; });
//   EXPECT_EQ(wait_child(a, 5s), 0);
//
// Names: namespaces `shl-<pid>-a` / `shl-<pid>-b` (a second pair of the same process
// `shl-<pid>-2-a` ...), veth ends `shl<pid>a` / `shl<pid>b` created inside them (nothing is left
// in the host's namespace). ~Pair deletes both namespaces (which destroys the veth pair), also when
// the test failed; namespaces `shl-<pid>-...` whose process is gone (a test killed by its timeout)
// are deleted by the next make_pair().
#pragma once

#include "test_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace shmlink::test::netns {

/// Runs `argv` (argv[0] looked up in PATH) with `input` on its stdin and waits for it. Returns its
/// exit status, or -1 when it could not be run or died by a signal; `output` (when not null) gets
/// its stdout and stderr.
inline int run_command(const std::vector<std::string>& argv, std::string* output = nullptr,
                       const std::string& input = {}) {
  int out_fds[2], in_fds[2];
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return -1;
  if (::pipe2(in_fds, O_CLOEXEC) != 0) {
    ::close(out_fds[0]), ::close(out_fds[1]);
    return -1;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_fds[0], 0);
    ::dup2(out_fds[1], 1);
    ::dup2(out_fds[1], 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(out_fds[1]);
  ::close(in_fds[0]);
  // Small inputs (a few command lines) fit in the pipe's buffer: written before reading output.
  for (std::size_t done = 0; pid > 0 && done < input.size();) {
    const ssize_t n = ::write(in_fds[1], input.data() + done, input.size() - done);
    if (n > 0) done += static_cast<std::size_t>(n);
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  ::close(in_fds[1]);
  std::string text;
  char buf[512];
  for (;;) {
    if (pid < 0) break;
    const ssize_t n = ::read(out_fds[0], buf, sizeof buf);
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  ::close(out_fds[0]);
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Runs `ip [-n ns] -batch -` with `commands` (one per line): one process for many steps. Returns
/// its exit status (non-zero at the first failed command; with `force`, after running them all).
inline int ip_batch(const std::string& ns, const std::string& commands, std::string* output = nullptr,
                    bool force = false) {
  std::vector<std::string> argv = {"ip"};
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  if (force) argv.emplace_back("-force");
  argv.insert(argv.end(), {"-batch", "-"});
  return run_command(argv, output, commands);
}

/// Two namespaces joined by a veth pair: `dev_a` (address_a/24) in `ns_a`, `dev_b`
/// (address_b/24) in `ns_b`, loopback up in both, and a route for 224.0.0.0/4 on the veth (so
/// multicast goes over the pair without naming an interface). Move-only; deleted with the object.
struct Pair {
  std::string ns_a, ns_b;            ///< namespace names (/run/netns/<name>)
  std::string dev_a, dev_b;          ///< the veth ends
  std::string address_a, address_b;  ///< "10.R.0.1" and "10.R.0.2" (R random, 1..254)
  int prefix = 24;                   ///< prefix length of both addresses

  Pair() = default;
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  Pair(Pair&& o) noexcept { *this = std::move(o); }
  Pair& operator=(Pair&& o) noexcept {
    if (this != &o) {
      remove();
      ns_a = std::move(o.ns_a), ns_b = std::move(o.ns_b);
      dev_a = std::move(o.dev_a), dev_b = std::move(o.dev_b);
      address_a = std::move(o.address_a), address_b = std::move(o.address_b);
      prefix = o.prefix;
      o.ns_a.clear(), o.ns_b.clear();
    }
    return *this;
  }
  ~Pair() { remove(); }

  /// Deletes both namespaces now (idempotent). Processes still inside keep them alive, without a
  /// name, until they exit.
  void remove() noexcept {
    try {
      std::string commands;
      for (const std::string* ns : {&ns_a, &ns_b})
        if (!ns->empty()) commands += "netns del " + *ns + "\n";
      if (!commands.empty()) ip_batch("", commands, nullptr, true);
    } catch (...) {
    }
    ns_a.clear(), ns_b.clear();
  }
};

/// Deletes namespaces named `shl-<pid>-...` whose process no longer exists.
inline void remove_stale_namespaces() {
  DIR* dir = ::opendir("/run/netns");
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("shl-", 0) != 0) continue;
    std::size_t i = 4;
    long long pid = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && pid < 1'000'000'000)
      pid = pid * 10 + (name[i++] - '0');
    if (i == 4 || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  ::closedir(dir);
  std::string commands;
  for (const auto& name : stale) commands += "netns del " + name + "\n";
  if (!commands.empty()) ip_batch("", commands, nullptr, true);
}

/// Makes a Pair, or returns nullopt with the reason in `why_not` (not root, no `ip`, `ip netns
/// add` refused, ...); whatever was made before a failure is removed.
inline std::optional<Pair> make_pair(std::string* why_not) {
  auto no = [&](const std::string& why) -> std::optional<Pair> {
    if (why_not != nullptr) *why_not = why;
    return std::nullopt;
  };
  if (::geteuid() != 0) return no("network namespaces need root (ip netns add)");
  remove_stale_namespaces();
  static std::atomic<int> made{0};
  const int k = ++made;
  const std::string pid = std::to_string(::getpid());
  const std::string tag = k == 1 ? pid : pid + "-" + std::to_string(k);
  Pair p;
  p.ns_a = "shl-" + tag + "-a";
  p.ns_b = "shl-" + tag + "-b";
  // Interface names are at most 15 bytes: "shl" + pid (<= 7 digits) + [k] + a/b.
  const std::string dev_tag = "shl" + pid + (k == 1 ? "" : std::to_string(k % 100));
  p.dev_a = dev_tag + "a";
  p.dev_b = dev_tag + "b";
  std::random_device rd;
  const int r = 1 + static_cast<int>(rd() % 254U);
  p.address_a = "10." + std::to_string(r) + ".0.1";
  p.address_b = "10." + std::to_string(r) + ".0.2";
  // Three `ip -batch` runs: the namespaces and the veth pair (made inside them, so nothing is left
  // in the host's namespace), then each side's address, links and multicast route.
  std::string out, leftovers;
  // Namespaces of our own names left by an earlier process of the same pid.
  for (const std::string* ns : {&p.ns_a, &p.ns_b})
    if (::access(("/run/netns/" + *ns).c_str(), F_OK) == 0) leftovers += "netns del " + *ns + "\n";
  if (!leftovers.empty()) ip_batch("", leftovers, nullptr, true);
  const int rc = ip_batch("",
                          "netns add " + p.ns_a + "\nnetns add " + p.ns_b + "\nlink add " + p.dev_a + " netns " +
                              p.ns_a + " type veth peer name " + p.dev_b + " netns " + p.ns_b + "\n",
                          &out);
  // On any failure p's destructor removes what was made.
  if (rc == 127) return no("ip (iproute2) could not be run: " + out);
  if (rc != 0) return no("ip netns add / ip link add (veth) failed: " + out);
  const std::tuple<std::string, std::string, std::string> sides[] = {{p.ns_a, p.dev_a, p.address_a},
                                                                     {p.ns_b, p.dev_b, p.address_b}};
  for (const auto& [ns, dev, address] : sides) {
    if (ip_batch(ns, "addr add " + address + "/24 dev " + dev + "\nlink set lo up\nlink set " + dev +
                         " up\nroute add 224.0.0.0/4 dev " + dev + "\n",
                 &out) != 0)
      return no("setting up " + dev + " in " + ns + " failed: " + out);
  }
  return p;
}

/// Forks a child that enters network namespace `ns` (setns on /run/netns/<ns>), runs `body` and
/// _exit()s with its result: 96 when the namespace cannot be opened, 97 when setns fails, 98 when
/// `body` throws. The child is killed when the test process dies (PR_SET_PDEATHSIG).
inline pid_t spawn_in(const std::string& ns, std::function<int()> body) {
  const std::string path = "/run/netns/" + ns;
  return spawn([path, body = std::move(body)] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 96;
    if (::setns(fd, CLONE_NEWNET) != 0) return 97;
    ::close(fd);
    return body();
  });
}

/// Sets this process's environment variables `env`: "NAME=VALUE" sets NAME, a bare "NAME" removes it.
inline void set_environment(const std::vector<std::string>& env) {
  for (const std::string& e : env) {
    const auto eq = e.find('=');
    if (eq == std::string::npos) ::unsetenv(e.c_str());
    else ::setenv(e.substr(0, eq).c_str(), e.c_str() + eq + 1, 1);
  }
}

/// Forks a child that enters network namespace `ns` (as spawn_in), sets the environment `env`
/// (set_environment), sends its stdout and stderr to the file `log` (created or truncated) and
/// execs `argv` (argv[0] a path: the program is not looked up in PATH). Returns its pid; the
/// child exits 126 when `log` cannot be opened, 127 when the program cannot be run.
inline pid_t exec_in(const std::string& ns, const std::vector<std::string>& argv, const std::vector<std::string>& env,
                     const std::string& log) {
  return spawn_in(ns, [=] {
    set_environment(env);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) return 126;
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (std::string& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    return 127;
  });
}

/// Waits for child `pid` at most `timeout`, then kills it (SIGKILL). Returns its exit status,
/// -SIGNAL when a signal ended it, -1000 when it had to be killed, -2000 when it is not our child.
inline int wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    if (r < 0 && errno != EINTR) return -2000;
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      return -1000;
    }
    timespec ts{0, 2'000'000};
    ::nanosleep(&ts, nullptr);
  }
}

}  // namespace shmlink::test::netns
