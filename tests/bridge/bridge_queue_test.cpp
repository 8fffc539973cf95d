// SPDX-License-Identifier: MIT
// Bridged queues between two "hosts" (two stream directories) over loopback TCP, with the two ends
// as real processes (bridge_queue_peer) that the tests kill and restart: every sample pushed on A
// arrives on B once and in order (docs/design/bridge.md, "Queues: exactly once").
#include <shmlink/queue.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <vector>

#include "bridge_queue_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using shmlink::test::reap;
using shmlink::test::spawn;
using shmlink::test::wait_until;

namespace {

using shmlink::test::free_port;
using shmlink::test::HostDir;
using shmlink::test::tcp;

/// Starts bridge_queue_peer ROLE QUEUE ENDPOINT with SHMLINK_DIR = `dir`.
pid_t start_peer(const std::string& role, const std::string& dir, const std::string& endpoint,
                 const std::string& window = "") {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("SHMLINK_DIR", dir.c_str(), 1);
    if (window.empty())
      ::execl(BRIDGE_QUEUE_PEER, BRIDGE_QUEUE_PEER, role.c_str(), "q", endpoint.c_str(), static_cast<char*>(nullptr));
    else
      ::execl(BRIDGE_QUEUE_PEER, BRIDGE_QUEUE_PEER, role.c_str(), "q", endpoint.c_str(), window.c_str(),
              static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

/// Every peer process a test started: killed and reaped when the test ends early (a failed
/// check), so none outlives the test binary.
struct PeerGuard {
  std::vector<pid_t*> pids;
  ~PeerGuard() {
    for (pid_t* p : pids)
      if (*p > 0 && shmlink::test::still_running(*p)) reap(*p, 0);
  }
};

void stop(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  EXPECT_EQ(reap(pid, 10), 0) << "a bridge peer did not stop cleanly";
}

void kill_hard(pid_t pid) {
  ::kill(pid, SIGKILL);
  EXPECT_EQ(reap(pid, 10), -SIGKILL);
}

/// A TCP forwarder: accepts on `listen_port`, connects each client to `target_port`, copies both
/// ways. A forked child: SIGKILL cuts every connection at once (the link lost).
int run_proxy(std::uint16_t listen_port, std::uint16_t target_port) {
  const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(listen_port);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 8) != 0) return 3;
  std::vector<std::pair<int, int>> links;
  char buf[65536];
  for (;;) {
    std::vector<pollfd> fds{{ls, POLLIN, 0}};
    for (auto [c, t] : links) {
      fds.push_back({c, POLLIN, 0});
      fds.push_back({t, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) continue;
    if ((fds[0].revents & POLLIN) != 0) {
      const int c = ::accept(ls, nullptr, nullptr);
      const int t = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in b = a;
      b.sin_port = htons(target_port);
      if (c >= 0 && ::connect(t, reinterpret_cast<sockaddr*>(&b), sizeof b) == 0) {
        links.emplace_back(c, t);
      } else {
        ::close(c);
        ::close(t);
      }
      continue;  // fds no longer matches links
    }
    for (std::size_t i = 0; i < links.size(); ++i) {
      for (int side = 0; side < 2; ++side) {
        const pollfd& p = fds[1 + 2 * i + static_cast<std::size_t>(side)];
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const int to = side == 0 ? links[i].second : links[i].first;
        const ssize_t n = ::read(p.fd, buf, sizeof buf);
        if (n <= 0 || ::write(to, buf, static_cast<std::size_t>(n)) != n) {
          ::close(links[i].first);
          ::close(links[i].second);
          links[i] = {-1, -1};
          break;
        }
      }
    }
    std::erase_if(links, [](auto l) { return l.first < 0; });
  }
}

constexpr std::uint32_t kCapacity = 64;

/// The source queue on host A: 4 values per sample, one signal.
shmlink::Queue make_source(const HostDir& a) {
  shmlink::QueueSpec spec;
  spec.capacity = kCapacity;
  spec.max_values = 4;
  spec.signals = {{0, "step", shmlink::SignalType::i64, ""}};
  return shmlink::Queue::create(a.queue("q"), spec);
}

shmlink::Sample sample(std::uint64_t i) {
  shmlink::Sample s;
  s.sequence = i;
  s.flags = shmlink::kSampleHasSequence | shmlink::kSampleHasData;
  s.values = {shmlink::SignalValue::of(static_cast<std::int64_t>(i)), shmlink::SignalValue::of(0.5)};
  return s;
}

/// The acknowledged point and end of the sender's window, read from its state file on host A.
std::pair<std::uint64_t, std::uint64_t> window_of(const HostDir& a) {
  std::ifstream f(a.path() + "/q.queue.bridge-tx", std::ios::binary);
  std::uint64_t v[2] = {0, 0};
  f.seekg(24);
  f.read(reinterpret_cast<char*>(v), sizeof v);
  return {v[0], v[1]};
}

/// Pushes `n` samples on A from a thread while this thread pops them on B, calling `at(i)` when
/// sample i is the next expected (after a pause that lets the pipeline fill: B full, the receiver
/// holding a message it cannot push, the sender's window full of unacknowledged samples, A full). Expects values 0..n-1 in order, then, once the sender's window
/// is all acknowledged, nothing more.
void exchange(const HostDir& a, const HostDir& b, std::uint64_t n, const std::function<void(std::uint64_t)>& at) {
  shmlink::Queue src = shmlink::Queue::open(a.queue("q"));
  std::atomic<bool> push_failed{false}, quit{false};
  std::thread pusher([&] {
    for (std::uint64_t i = 0; i < n && !quit;) {
      const shmlink::Status st = src.push(sample(i), 100ms);
      if (st.ok()) ++i;
      else if (st.code() != shmlink::Errc::timeout) {
        push_failed = true;
        return;
      }
    }
  });
  struct Joiner {  // a failed check returns early: stop and join the pusher first
    std::thread& t;
    std::atomic<bool>& quit;
    ~Joiner() {
      quit = true;
      t.join();
    }
  } joiner{pusher, quit};
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(b.queue("q")); }));
  shmlink::Queue dst = shmlink::Queue::open(b.queue("q"));
  EXPECT_EQ(dst.max_values(), 4U);
  EXPECT_EQ(dst.capacity(), kCapacity);
  EXPECT_EQ(dst.signals(), src.signals());
  shmlink::Sample s;
  std::uint64_t expected = 0;
  for (; expected < n; ++expected) {
    if (expected == 700 || expected == 1900) {
      std::this_thread::sleep_for(150ms);  // not a timing check: only makes the cut hit data in flight
      at(expected);
    }
    const shmlink::Status st = dst.pop(s, 20s);
    ASSERT_TRUE(st.ok()) << "waiting for sample " << expected << ": " << st.message();
    ASSERT_EQ(s.values.size(), 2U);
    ASSERT_EQ(s.values[0].i, static_cast<std::int64_t>(expected)) << "a sample out of order or twice";
    ASSERT_EQ(s.sequence, expected);
  }
  EXPECT_FALSE(push_failed);
  ASSERT_TRUE(wait_until([&] { return window_of(a) == std::pair<std::uint64_t, std::uint64_t>{n, n}; }))
      << "acked " << window_of(a).first << ", end " << window_of(a).second;
  EXPECT_EQ(dst.pop(s, 200ms), shmlink::Status(shmlink::Errc::timeout)) << "a sample arrived twice";
}

}  // namespace

TEST(BridgeQueue, SamplesArriveOnceAndInOrder) {
  HostDir a, b;
  auto src = make_source(a);
  const auto port = free_port();
  pid_t rx = start_peer("recv", b.path(), tcp(port));
  pid_t tx = start_peer("send", a.path(), tcp(port));
  PeerGuard guard{{&rx, &tx}};
  exchange(a, b, 3000, [](std::uint64_t) {});
  stop(tx);
  stop(rx);
}

TEST(BridgeQueue, SenderKilledAndRestartedLosesAndRepeatsNothing) {
  HostDir a, b;
  auto src = make_source(a);
  const auto port = free_port();
  pid_t rx2 = start_peer("recv", b.path(), tcp(port));
  pid_t tx = start_peer("send", a.path(), tcp(port));
  PeerGuard guard{{&rx2, &tx}};
  exchange(a, b, 3000, [&](std::uint64_t i) {
    if (i == 700) {
      // With the receiver gone, the sender pops a full window it cannot send; killed then, its
      // successor must find those samples in the state file (they are no longer in queue A).
      kill_hard(rx2);
      ASSERT_TRUE(wait_until([&] {
        const auto [acked, end] = window_of(a);
        return end - acked == kCapacity;
      }));
      kill_hard(tx);
      rx2 = start_peer("recv", b.path(), tcp(port));
      tx = start_peer("send", a.path(), tcp(port));
    } else {
      kill_hard(tx);  // with samples in flight
      tx = start_peer("send", a.path(), tcp(port));
    }
  });
  stop(tx);
  stop(rx2);
}

TEST(BridgeQueue, ReceiverKilledAndRestartedLosesAndRepeatsNothing) {
  HostDir a, b;
  auto src = make_source(a);
  const auto port = free_port();
  pid_t rx = start_peer("recv", b.path(), tcp(port));
  pid_t tx = start_peer("send", a.path(), tcp(port));
  PeerGuard guard{{&rx, &tx}};
  exchange(a, b, 3000, [&](std::uint64_t i) {
    if (i == 700 || i == 1900) {
      kill_hard(rx);
      rx = start_peer("recv", b.path(), tcp(port));
    }
  });
  stop(tx);
  stop(rx);
}

TEST(BridgeQueue, LinkCutAndBackLosesAndRepeatsNothing) {
  HostDir a, b;
  auto src = make_source(a);
  const auto port = free_port(), proxy_port = free_port();
  pid_t rx = start_peer("recv", b.path(), tcp(port));
  pid_t proxy = spawn([&] { return run_proxy(proxy_port, port); });
  pid_t tx = start_peer("send", a.path(), tcp(proxy_port));
  PeerGuard guard{{&rx, &tx, &proxy}};
  exchange(a, b, 3000, [&](std::uint64_t i) {
    if (i == 700 || i == 1900) {
      kill_hard(proxy);  // every connection cut at once, bytes in flight lost
      std::this_thread::sleep_for(100ms);
      proxy = spawn([&] { return run_proxy(proxy_port, port); });
    }
  });
  kill_hard(proxy);
  stop(tx);
  stop(rx);
}

TEST(BridgeQueue, FullReceivingQueueBackPressuresThePusherWithoutLoss) {
  HostDir a, b;
  auto src = make_source(a);
  const auto port = free_port();
  pid_t rx = start_peer("recv", b.path(), tcp(port));
  pid_t tx = start_peer("send", a.path(), tcp(port));  // window: the source's capacity
  PeerGuard guard{{&rx, &tx}};
  // Nobody pops on B: B fills (kCapacity, acknowledged), the window fills (kCapacity, not
  // acknowledged), then A fills (kCapacity): exactly 3 x kCapacity samples are accepted.
  std::uint64_t accepted = 0;
  const std::uint64_t room = 3 * kCapacity;
  ASSERT_TRUE(wait_until([&] {
    while (src.try_push(sample(accepted)).ok()) ++accepted;
    return accepted >= room;
  })) << "accepted " << accepted;
  std::this_thread::sleep_for(300ms);  // a sender that dropped samples would make room here
  EXPECT_EQ(src.try_push(sample(accepted)), shmlink::Status(shmlink::Errc::would_block));
  EXPECT_EQ(accepted, room);
  EXPECT_EQ(window_of(a), (std::pair<std::uint64_t, std::uint64_t>{kCapacity, 2 * kCapacity}));
  // Drain B: everything arrives, in order, and the pusher goes on.
  shmlink::Queue dst = shmlink::Queue::open(b.queue("q"));
  shmlink::Sample s;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    if (accepted < 1000 && src.try_push(sample(accepted)).ok()) ++accepted;
    ASSERT_TRUE(dst.pop(s, 20s).ok()) << "waiting for sample " << i;
    ASSERT_EQ(s.values[0].i, static_cast<std::int64_t>(i));
    while (accepted < 1000 && src.try_push(sample(accepted)).ok()) ++accepted;
  }
  EXPECT_EQ(dst.pop(s, 200ms), shmlink::Status(shmlink::Errc::timeout));
  stop(tx);
  stop(rx);
}
