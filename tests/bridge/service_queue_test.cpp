// SPDX-License-Identifier: MIT
// Queues through the bridge service (issue 22; docs/design/bridge.md, "Queues through the
// service"): two `shmlink bridge serve` processes on loopback, each with its own directory, stand
// for two hosts. A producer pushes numbered samples at full speed into the owner's queue; a
// consumer on the asking host opens "OWNER:NAME" (its service makes the replica) and pops. The
// owner's service, then the asker's, is killed with SIGKILL and started again while samples are
// in flight: every sample arrives once, in order.
#include "remote/control_protocol.hpp"
#include "test_util.hpp"

#include <shmlink/queue.hpp>
#include <shmlink/remote.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifdef SHMLINK_CLI_PATH
namespace {

using namespace std::chrono_literals;
using shmlink::Errc;
using shmlink::Queue;
using shmlink::test::reap;
using shmlink::test::Shared;
using shmlink::test::spawn;
using shmlink::test::wait_until;

/// One "host": a stream directory of its own and a `shmlink bridge serve` process serving it.
class Host {
 public:
  explicit Host(std::string node) : node_(std::move(node)) {
    std::string t = "/dev/shm/shmlink-squeue-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = t;
  }
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;
  ~Host() {
    stop(SIGTERM);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] const std::string& node() const { return node_; }
  [[nodiscard]] std::string peer() const { return "127.0.0.1:" + std::to_string(port_); }

  /// Starts the service (on the port of the previous run, if any) and waits until it answers.
  bool start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"shmlink", "bridge", "serve", "--name", node_, "--port", std::to_string(port_),
                                  "--bind", "127.0.0.1", "--no-multicast", "--heartbeat-ms", "50", "--dir", dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string log = dir_ + "/serve.log";
    pid_ = spawn([&] {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test killed by its timeout
      ::unsetenv("SHMLINK_BRIDGE_SOCKET");
      ::unsetenv("SHMLINK_BRIDGE");
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (out < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) return 126;
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(SHMLINK_CLI_PATH, argv.data());
      return 127;
    });
    std::string status;
    if (!wait_until([&] { return !(status = request({"STATUS"})).empty(); }, 20)) return false;
    const auto at = status.find("\"port\":");
    if (at == std::string::npos) return false;
    port_ = static_cast<std::uint16_t>(std::stoul(status.substr(at + 7)));
    return true;
  }

  /// Ends the service with `sig` (SIGKILL: as a crash) and reaps it.
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    (void)reap(pid_, 10);
    pid_ = -1;
  }

  /// One request to this service's control socket: the reply's last field ("" on an error; the
  /// error's condition in `errc`).
  std::string request(const std::vector<std::string>& fields, Errc* errc = nullptr) const {
    ::setenv("SHMLINK_BRIDGE_SOCKET", (dir_ + "/" + std::string(shmlink::control::kSocketName)).c_str(), 1);
    try {
      const auto reply = shmlink::remote::request(fields, 5000ms);
      return reply.empty() ? std::string("OK") : reply.back();
    } catch (const shmlink::Error& e) {
      if (errc != nullptr) *errc = e.errc();
      return {};
    }
  }

  [[nodiscard]] std::string log() const {
    std::ifstream in(dir_ + "/serve.log");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::string node_, dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

/// The owner's queue "numbers": one int64 value per sample.
void make_numbers(const Host& owner, std::uint32_t capacity) {
  shmlink::QueueSpec spec;
  spec.capacity = capacity;
  spec.max_values = 1;
  (void)Queue::create(owner.dir() + "/numbers.queue.shm", spec, shmlink::OpenMode::ExclusiveCreate);
}

/// What the consumer child tells the test.
struct Progress {
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> pause_at{0};  // the consumer stops popping here until it changes
  std::atomic<int> opened{0};              // 1 opened, -1 could not
  std::atomic<int> done{0};
  std::atomic<std::uint64_t> wrong{0};  // samples whose number was not the next one
  std::atomic<std::int64_t> first_wrong_got{-1}, first_wrong_expected{-1};
};

TEST(ServiceQueue, EverySampleArrivesOnceInOrderAcrossKilledServices) {
  constexpr std::uint64_t kSamples = 6000;
  constexpr std::uint32_t kCapacity = 128;  // the owner's queue, the window and the replica: 384 in flight at most
  Host owner("qowner"), asker("qasker");
  make_numbers(owner, kCapacity);
  ASSERT_TRUE(owner.start()) << owner.log();
  ASSERT_TRUE(asker.start({"--peer", owner.peer()})) << asker.log();

  const std::string owner_queue = owner.dir() + "/numbers.queue.shm";
  const pid_t producer = spawn([&] {
    Queue q = Queue::open(owner_queue);
    shmlink::Sample s;
    s.values.resize(1);
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    for (std::uint64_t i = 0; i < kSamples;) {
      s.sequence = i;
      s.values[0] = shmlink::SignalValue::of(static_cast<std::int64_t>(i));
      const shmlink::Status st = q.push(s, 200ms);
      if (st.ok()) ++i;
      else if (st.code() != Errc::timeout || std::chrono::steady_clock::now() > deadline) return 1;
    }
    return 0;
  });

  Shared<Progress> p;
  p->pause_at = kSamples / 3;
  const std::string asker_dir = asker.dir();
  const pid_t consumer = spawn([&] {
    ::setenv("SHMLINK_DIR", asker_dir.c_str(), 1);
    ::unsetenv("SHMLINK_BRIDGE_SOCKET");
    Queue q;
    // The asker learns the owner's node from its first hello: retry until the open succeeds.
    if (!wait_until([&] {
          try {
            q = Queue::open("qowner:numbers");
            return true;
          } catch (const shmlink::Error&) {
            return false;
          }
        }, 20)) {
      p->opened = -1;
      return 1;
    }
    p->opened = 1;
    shmlink::Sample s;
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    std::uint64_t next = 0;
    while (next < kSamples && std::chrono::steady_clock::now() < deadline) {
      if (next >= p->pause_at.load()) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      if (!q.pop(s, 200ms).ok()) continue;
      const std::int64_t got = s.values.empty() ? -1 : s.values[0].i;
      if (got != static_cast<std::int64_t>(next) && p->wrong.fetch_add(1) == 0) {
        p->first_wrong_got = got;
        p->first_wrong_expected = static_cast<std::int64_t>(next);
      }
      p->received = ++next;
    }
    p->done = 1;
    return 0;
  });

  // Each kill happens while the consumer pauses: the producer is back-pressured, the owner's
  // window and the replica full, samples in flight at both services.
  EXPECT_TRUE(wait_until([&] { return p->received.load() == kSamples / 3; }, 60)) << "received " << p->received.load();
  std::this_thread::sleep_for(200ms);  // lets the flow fill the queues behind the pause (no timing assumption)
  owner.stop(SIGKILL);
  ASSERT_TRUE(owner.start()) << owner.log();
  p->pause_at = 2 * kSamples / 3;
  EXPECT_TRUE(wait_until([&] { return p->received.load() == 2 * kSamples / 3; }, 60))
      << "received " << p->received.load() << "\nasker:\n" << asker.log();
  std::this_thread::sleep_for(200ms);
  asker.stop(SIGKILL);
  ASSERT_TRUE(asker.start({"--peer", owner.peer()})) << asker.log();
  p->pause_at = kSamples;
  EXPECT_TRUE(wait_until([&] { return p->done.load() == 1; }, 90));
  EXPECT_EQ(reap(consumer, 10), 0);
  EXPECT_EQ(reap(producer, 10), 0);
  EXPECT_EQ(p->opened.load(), 1);
  EXPECT_EQ(p->received.load(), kSamples) << "owner:\n" << owner.log() << "\nasker:\n" << asker.log();
  EXPECT_EQ(p->wrong.load(), 0U) << "first: got " << p->first_wrong_got.load() << " for " << p->first_wrong_expected.load();
  // STATUS lists the replica as travelling, and `shmlink bridge status` shows it.
  const std::string status = asker.request({"STATUS"});
  EXPECT_NE(status.find("\"queues\":[{\"node\":\"qowner\",\"name\":\"numbers\""), std::string::npos) << status;
  EXPECT_NE(status.find("\"travelling\":true"), std::string::npos) << status;
  std::string table;
  if (FILE* cli = ::popen(SHMLINK_CLI_PATH " bridge status 2>&1", "r")) {  // SHMLINK_BRIDGE_SOCKET: the asker's
    char buf[512];
    while (std::fgets(buf, sizeof buf, cli) != nullptr) table += buf;
    ::pclose(cli);
  }
  EXPECT_NE(table.find("TRAVELLING"), std::string::npos) << table;
  EXPECT_NE(table.find(asker.dir() + "/numbers.queue.shm"), std::string::npos) << table;
  // Nothing is left behind in either queue, nothing came twice: the replica is empty.
  EXPECT_EQ(Queue::open(owner_queue).size(), 0U);
  EXPECT_EQ(Queue::open(asker.dir() + "/numbers.queue.shm").size(), 0U);
}

/// Pops `count` samples from the replica "qowner:numbers" in a child whose stream directory is
/// `dir`, checking that they are numbered `first`, `first` + 1, ...; the child's exit status is
/// 0 when all came in order, 2 when one was out of place, 1 when the open or a pop failed.
pid_t consume(const std::string& dir, std::int64_t first, std::int64_t count) {
  return spawn([=] {
    ::setenv("SHMLINK_DIR", dir.c_str(), 1);
    ::unsetenv("SHMLINK_BRIDGE_SOCKET");
    Queue q;
    if (!wait_until([&] {
          try {
            q = Queue::open("qowner:numbers");
            return true;
          } catch (const shmlink::Error&) {
            return false;
          }
        }, 20))
      return 1;
    shmlink::Sample s;
    for (std::int64_t n = first; n < first + count; ++n) {
      if (!q.pop(s, 20s).ok()) return 1;
      if (s.values.empty() || s.values[0].i != n) return 2;
    }
    return 0;
  });
}

TEST(ServiceQueue, AnIdleReplicaStopsTravellingAndTheNextOpenResumesExactlyThere) {
  constexpr std::int64_t kSamples = 3000;
  Host owner("qowner"), asker("qidle");
  make_numbers(owner, 64);
  ASSERT_TRUE(owner.start()) << owner.log();
  ASSERT_TRUE(asker.start({"--peer", owner.peer(), "--idle", "0.3"})) << asker.log();
  const std::string owner_queue = owner.dir() + "/numbers.queue.shm";
  const pid_t producer = spawn([&] {
    Queue q = Queue::open(owner_queue);
    shmlink::Sample s;
    s.values.resize(1);
    for (std::int64_t i = 0; i < kSamples; ++i) {
      s.values[0] = shmlink::SignalValue::of(i);
      if (!q.push(s, 30s).ok()) return 1;
    }
    return 0;
  });
  // A first consumer takes 1000 samples and exits: the replica is unused, and after the idle
  // time its marker says it no longer travels (the receiver stopped, the owner's sender released).
  EXPECT_EQ(reap(consume(asker.dir(), 0, 1000), 30), 0);
  const std::string marker = asker.dir() + "/numbers.queue.bridge-origin";
  const auto held = [&] {
    std::ifstream in(marker);
    std::string line, last;
    for (int i = 0; i < 4 && std::getline(in, line); ++i) last = line;
    return last;  // the fourth line: held 0/1
  };
  EXPECT_TRUE(wait_until([&] { return held() == "0"; }, 20)) << "marker says held " << held() << "\n" << asker.log();
  EXPECT_TRUE(std::filesystem::exists(asker.dir() + "/numbers.queue.shm")) << "the replica and its samples stay";
  // A second consumer opens it again and gets the rest, from exactly the next number on.
  EXPECT_EQ(reap(consume(asker.dir(), 1000, kSamples - 1000), 60), 0) << owner.log() << asker.log();
  EXPECT_EQ(reap(producer, 10), 0);
  EXPECT_EQ(Queue::open(asker.dir() + "/numbers.queue.shm").size(), 0U) << "nothing came twice";
}

TEST(ServiceQueue, AMissingQueueAndAReadOnlyOwnerAreRefused) {
  Host owner("qro"), asker("qask2");
  make_numbers(owner, 16);
  // "relayed" stands for the owner's own replica of a third node's queue (its marker says so).
  shmlink::QueueSpec spec;
  spec.max_values = 1;
  (void)Queue::create(owner.dir() + "/relayed.queue.shm", spec, shmlink::OpenMode::ExclusiveCreate);
  std::ofstream(owner.dir() + "/relayed.queue.bridge-origin") << "shmlink-bridge-queue 1\nthird\nrelayed\n1\n0\n";
  ASSERT_TRUE(owner.start({"--read-only"})) << owner.log();
  ASSERT_TRUE(asker.start({"--peer", owner.peer()})) << asker.log();
  // Wait until the asker has the owner's catalogue (its LS lists the owner's queue).
  ASSERT_TRUE(wait_until([&] { return asker.request({"LS"}).find("\"qro\"") != std::string::npos; }, 20)) << asker.log();

  Errc e = Errc::ok;
  EXPECT_EQ(asker.request({"OPEN", "queue", "qro", "nope", "5000", "0"}, &e), "");
  EXPECT_EQ(e, Errc::not_found);
  e = Errc::ok;
  EXPECT_EQ(asker.request({"OPEN", "queue", "qro", "numbers", "5000", "0"}, &e), "");
  EXPECT_EQ(e, Errc::permission);
  e = Errc::ok;
  EXPECT_EQ(asker.request({"OPEN", "queue", "qro", "relayed", "5000", "0"}, &e), "") << "a replica has one consumer already";
  EXPECT_EQ(e, Errc::invalid_argument);
  // The library's open says the same (the control socket is SHMLINK_BRIDGE_SOCKET, set above).
  try {
    (void)Queue::open("qro:nope");
    ADD_FAILURE() << "opened a queue that does not exist";
  } catch (const shmlink::Error& err) {
    EXPECT_EQ(err.errc(), Errc::not_found) << err.what();
    EXPECT_NE(std::string(err.what()).find("nope"), std::string::npos) << err.what();
  }
  EXPECT_FALSE(std::filesystem::exists(asker.dir() + "/numbers.queue.shm")) << "no replica of a refused queue";
  ::unsetenv("SHMLINK_BRIDGE_SOCKET");
}

}  // namespace
#endif
