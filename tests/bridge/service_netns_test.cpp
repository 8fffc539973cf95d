// SPDX-License-Identifier: MIT
// The bridge service between two network stacks (issue 22): two real `shmlink bridge serve`
// processes, one in each of two network namespaces joined by a veth pair (tests/common/netns.hpp),
// stand for two hosts, node "A" (namespace a, which owns the streams) and node "B" (namespace b).
// Each host has its own stream directory; every client is a real process inside namespace b: the
// CLI (`shmlink bridge ls/want/status`) and programs that open "A:wfs" (or a plain name with
// SHMLINK_BRIDGE=auto) with Stream::open. The test process itself only creates and writes the
// source files of host A and looks at files. Both namespaces have their own network stack, so
// the services use the default ports (7710, multicast 7711) without meeting any other test.
// Needs root and `ip netns`: skipped with the reason otherwise.
#include "bridge_queue_util.hpp"
#include "netns.hpp"
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
namespace netns = shmlink::test::netns;
using shmlink::Dtype;
using shmlink::Errc;
using shmlink::Stream;
using shmlink::test::ChildReport;
using shmlink::test::HostDir;
using shmlink::test::Shared;
using shmlink::test::wait_until;

constexpr const char* kCli = SHMLINK_CLI_PATH;
constexpr int kServicePort = 7710;  // the default: each namespace has a network stack of its own

/// One "host": its namespace, address, stream directory and running service.
struct Host {
  std::string node, ns, address, dir;
  pid_t service = -1;
  std::string log;  // the running (or last) service's output
  [[nodiscard]] std::string stream(const std::string& name) const { return dir + "/" + name + ".im.shm"; }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The environment of a process of host `h`: its stream directory, nothing inherited that would
/// change how names are opened, then `extra`.
std::vector<std::string> env_of(const Host& h, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> env = {"SHMLINK_DIR=" + h.dir, "SHMLINK_BRIDGE_SOCKET", "SHMLINK_BRIDGE",
                                  "SHMLINK_BRIDGE_TIMEOUT_MS", "XDG_CONFIG_HOME=" + h.dir};
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

/// Forks a program of host `h`: a child in its namespace with env_of(h, extra) that runs `body`.
pid_t program_in(const Host& h, const std::vector<std::string>& extra, std::function<int()> body) {
  const auto env = env_of(h, extra);
  return netns::spawn_in(h.ns, [env, body = std::move(body)] {
    netns::set_environment(env);
    return body();
  });
}

struct CliResult {
  int rc = 0;
  std::string out;
};

std::vector<float> ramp(std::size_t n, float base) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  return v;
}

std::int64_t int_keyword(const Stream& s, const char* name) {
  const auto v = s.keyword(name);
  return v && std::holds_alternative<std::int64_t>(*v) ? std::get<std::int64_t>(*v) : -1;
}

std::string string_keyword(const Stream& s, const char* name) {
  const auto v = s.keyword(name);
  return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : std::string("(none)");
}

/// The newest frame of the open stream `s` (f32), or empty when it cannot be read.
std::vector<float> frame(const Stream& s) {
  std::vector<float> v(s.frame_elements());
  if (!s.read_copy(std::as_writable_bytes(std::span(v))).ok()) return {};
  return v;
}

class ServiceNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    pair_ = netns::make_pair(&why);
    if (!pair_) GTEST_SKIP() << why;
    a_ = {"A", pair_->ns_a, pair_->address_a, dir_a_.path()};
    b_ = {"B", pair_->ns_b, pair_->address_b, dir_b_.path()};
  }
  void TearDown() override {
    for (Host* h : {&b_, &a_}) stop(*h);
  }

  /// Runs the CLI `shmlink args...` as a program of host `h` to its end.
  CliResult cli(const Host& h, const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) {
    std::vector<std::string> argv = {kCli};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log = logs_.path() + "/cli-" + std::to_string(++runs_) + ".log";
    CliResult r;
    r.rc = netns::wait_child(netns::exec_in(h.ns, argv, env_of(h, extra_env), log), 20s);
    r.out = read_file(log);
    return r;
  }

  /// Starts `shmlink bridge serve` of host `h` and waits until its control socket answers.
  /// Listed peers: the other host's address; with `multicast`, no peer (found by beacons).
  void serve(Host& h, bool multicast = false) {
    const Host& other = &h == &a_ ? b_ : a_;
    std::vector<std::string> argv = {kCli, "bridge", "serve", "--name", h.node, "--port", std::to_string(kServicePort),
                                     "--heartbeat-ms", "50"};
    if (!multicast)
      argv.insert(argv.end(), {"--no-multicast", "--bind", h.address, "--peer", other.address + ":" + std::to_string(kServicePort)});
    h.log = logs_.path() + "/serve-" + h.node + "-" + std::to_string(++runs_) + ".log";
    h.service = netns::exec_in(h.ns, argv, env_of(h), h.log);
    CliResult ping;
    const bool up = wait_until(
        [&] {
          ping = cli(h, {"bridge", "ping"});
          if (ping.rc == 0 || !shmlink::test::still_running(h.service)) return true;
          std::this_thread::sleep_for(20ms);
          return false;
        },
        20);
    ASSERT_TRUE(up && ping.rc == 0) << "service " << h.node << " in " << h.ns << ": " << read_file(h.log) << "\nping: " << ping.out;
    EXPECT_NE(ping.out.find(h.node), std::string::npos) << ping.out;
  }

  /// Stops host `h`'s service with SIGTERM: it exits 0.
  void stop(Host& h) {
    if (h.service <= 0) return;
    ::kill(h.service, SIGTERM);
    EXPECT_EQ(netns::wait_child(h.service, 10s), 0) << "service " << h.node << ": " << read_file(h.log);
    h.service = -1;
  }

  /// Kills host `h`'s service (SIGKILL), as a crash or a power cut would.
  void kill_service(Host& h) {
    ::kill(h.service, SIGKILL);
    EXPECT_EQ(netns::wait_child(h.service, 10s), -SIGKILL);
    h.service = -1;
  }

  /// Waits until `bridge ls` on B lists node A's stream `name`.
  bool b_lists(const std::string& name, std::string* last) {
    return wait_until(
        [&] {
          const CliResult r = cli(b_, {"bridge", "ls"});
          *last = r.out;
          std::istringstream lines(r.out);
          for (std::string line; std::getline(lines, line);) {
            std::istringstream words(line);
            std::string node, kind, stream;
            if (words >> node >> kind >> stream && node == a_.node && kind == "stream" && stream == name) return true;
          }
          std::this_thread::sleep_for(20ms);
          return false;
        },
        20);
  }

  /// Starts A's and B's services (listed peers) and waits until B lists A's stream `name`.
  void serve_both_listing(const std::string& name) {
    ASSERT_NO_FATAL_FAILURE(serve(a_));
    ASSERT_NO_FATAL_FAILURE(serve(b_));
    std::string ls;
    ASSERT_TRUE(b_lists(name, &ls)) << ls;
  }

  /// A source stream `name` of host A, `elements` f32 with keyword GAIN, one frame ramp(1) written.
  Stream source(const std::string& name, std::uint32_t elements = 64) {
    auto spec = shmlink::test::spec_of({elements}, Dtype::f32);
    spec.keywords = 4;
    Stream s = Stream::create(a_.stream(name), spec);
    s.set_keyword("GAIN", std::int64_t{7}, "loop gain");
    EXPECT_TRUE(s.write(std::span<const float>(ramp(elements, 1))).ok());
    return s;
  }

  HostDir dir_a_, dir_b_, logs_;
  std::optional<netns::Pair> pair_;
  Host a_, b_;
  int runs_ = 0;
};

// Listed peers over the veth (--peer, --no-multicast): B's CLI sees A's catalogue and makes a
// replica; programs of B open "A:wfs" and, with SHMLINK_BRIDGE=auto, a plain name; the replica
// carries data, counters, keywords, and its semaphores wake a waiter when A's source is written.
TEST_F(ServiceNetns, ListedPeersGiveBTransparentReplicasWithDataCountersSemaphoresAndKeywords) {
  Stream src = source("wfs");
  Stream dm = source("dm", 16);
  ASSERT_TRUE(dm.write(std::span<const float>(ramp(16, 40))).ok());
  ASSERT_NO_FATAL_FAILURE(serve_both_listing("wfs"));
  std::string ls;
  EXPECT_TRUE(b_lists("dm", &ls)) << ls;

  const CliResult want = cli(b_, {"bridge", "want", "A:wfs"});
  ASSERT_EQ(want.rc, 0) << want.out;
  EXPECT_EQ(want.out, b_.stream("wfs") + "\n");

  // A program of B: opens "A:wfs", checks the first frame and keywords, then waits on a semaphore.
  struct Waiter {
    ChildReport report;
    std::atomic<int> waiting{0};
  };
  Shared<Waiter> w;
  const std::string expected_path = b_.stream("wfs");
  const pid_t reader = program_in(b_, {}, [&w, expected_path] {
    Stream s = Stream::open("A:wfs");
    SHMLINK_CHILD_CHECK(&w->report, s.path() == expected_path, 0);
    std::vector<float> got(64);
    SHMLINK_CHILD_CHECK(&w->report, s.read_copy(std::as_writable_bytes(std::span(got))).ok(), 0);
    SHMLINK_CHILD_CHECK(&w->report, got == ramp(64, 1), got[0]);
    SHMLINK_CHILD_CHECK(&w->report, string_keyword(s, bridge::kKeywordOrigin) == "A", 0);
    SHMLINK_CHILD_CHECK(&w->report, int_keyword(s, bridge::kKeywordLink) == 1, int_keyword(s, bridge::kKeywordLink));
    SHMLINK_CHILD_CHECK(&w->report, int_keyword(s, "GAIN") == 7, int_keyword(s, "GAIN"));
    SHMLINK_CHILD_CHECK(&w->report, int_keyword(s, bridge::kKeywordSourceCnt0) == 1,
                        int_keyword(s, bridge::kKeywordSourceCnt0));
    const std::uint64_t before = s.cnt0();
    const int slot = s.claim_semaphore();
    SHMLINK_CHILD_CHECK(&w->report, slot >= 0, slot);
    (void)s.sem_flush(slot);
    w->waiting = 1;
    SHMLINK_CHILD_CHECK(&w->report, s.sem_wait(slot, 20s).ok(), 0);  // woken by the replica's publication
    SHMLINK_CHILD_CHECK(&w->report, s.read_copy(std::as_writable_bytes(std::span(got))).ok(), 0);
    SHMLINK_CHILD_CHECK(&w->report, got == ramp(64, 2), got[0]);
    SHMLINK_CHILD_CHECK(&w->report, s.cnt0() == before + 1, s.cnt0());
    SHMLINK_CHILD_CHECK(&w->report, int_keyword(s, bridge::kKeywordSourceCnt0) == 2,
                        int_keyword(s, bridge::kKeywordSourceCnt0));
    return 0;
  });
  EXPECT_TRUE(wait_until([&] { return w->waiting == 1 || !shmlink::test::still_running(reader); }, 20));
  ASSERT_TRUE(src.write(std::span<const float>(ramp(64, 2))).ok());
  EXPECT_EQ(netns::wait_child(reader, 30s), 0) << w->report.describe() << "; service B: " << read_file(b_.log);

#ifdef SHMLINK_PYTHON
  // Python in B reads the replica through the same remote open.
  const CliResult py = [&] {
    const std::string log = logs_.path() + "/python.log";
    CliResult r;
    r.rc = netns::wait_child(
        netns::exec_in(b_.ns,
                       {SHMLINK_PYTHON, "-c",
                        "import shmlink; s = shmlink.Stream.open('A:wfs'); a = s.read(); "
                        "print(s.path, float(a.flat[0]), float(a.flat[-1]), s.keywords['BR_ORIGIN'], s.keywords['BR_LINK'])"},
                       env_of(b_, {"PYTHONPATH=" SHMLINK_PYTHONPATH, "PYTHONDONTWRITEBYTECODE=1"}), log),
        30s);
    r.out = read_file(log);
    return r;
  }();
  EXPECT_EQ(py.rc, 0) << py.out;
  EXPECT_EQ(py.out, b_.stream("wfs") + " 2.0 65.0 A 1\n");
#endif

  // A plain name: not asked for by default (fails as a missing local stream), asked for with
  // SHMLINK_BRIDGE=auto, from whichever peer offers it.
  Shared<ChildReport> plain;
  const std::string dm_path = b_.stream("dm");
  const auto open_dm = [&plain, dm_path](bool bridged) {
    return [&plain, dm_path, bridged] {
      try {
        const Stream s = Stream::open("dm");
        SHMLINK_CHILD_CHECK(&*plain, bridged, 0);
        SHMLINK_CHILD_CHECK(&*plain, s.path() == dm_path, 0);
        std::vector<float> got(16);
        SHMLINK_CHILD_CHECK(&*plain, s.read_copy(std::as_writable_bytes(std::span(got))).ok(), 0);
        SHMLINK_CHILD_CHECK(&*plain, got == ramp(16, 40), got[0]);
        SHMLINK_CHILD_CHECK(&*plain, string_keyword(s, bridge::kKeywordOrigin) == "A", 0);
      } catch (const shmlink::Error& e) {
        SHMLINK_CHILD_CHECK(&*plain, !bridged && e.errc() == Errc::not_found, static_cast<int>(e.errc()));
      }
      return 0;
    };
  };
  EXPECT_EQ(netns::wait_child(program_in(b_, {}, open_dm(false)), 20s), 0) << plain->describe();
  EXPECT_EQ(netns::wait_child(program_in(b_, {"SHMLINK_BRIDGE=auto"}, open_dm(true)), 20s), 0) << plain->describe();

  const CliResult status = cli(b_, {"bridge", "status"});
  EXPECT_EQ(status.rc, 0) << status.out;
  EXPECT_NE(status.out.find(b_.stream("wfs")), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(b_.stream("dm")), std::string::npos) << status.out;
}

// Discovery by multicast inside the namespaces: no --peer; each service hears the other's beacons
// over the veth (the namespaces route 224.0.0.0/4 there) and B makes a replica of A's stream.
TEST_F(ServiceNetns, MulticastDiscoveryFindsThePeerOverTheVeth) {
  Stream src = source("wfs");
  ASSERT_NO_FATAL_FAILURE(serve(a_, true));
  ASSERT_NO_FATAL_FAILURE(serve(b_, true));
  std::string ls;
  ASSERT_TRUE(b_lists("wfs", &ls)) << "B lists no peer and heard no beacon of A: " << ls << "\n"
                                   << cli(b_, {"bridge", "status"}).out << "\nservice B: " << read_file(b_.log);
  const CliResult want = cli(b_, {"bridge", "want", "A:wfs"});
  ASSERT_EQ(want.rc, 0) << want.out;
  EXPECT_EQ(frame(Stream::open(b_.stream("wfs"))), ramp(64, 1));
  const CliResult status = cli(b_, {"bridge", "status"});
  EXPECT_NE(status.out.find("tcp://" + a_.address + ":" + std::to_string(kServicePort)), std::string::npos)
      << "A was found at its veth address: " << status.out;
}

/// Frame k of the full-speed writer: element i holds (k << 16) | i, so that any mix of two frames
/// shows, and k names the source frame (its cnt0).
constexpr std::uint32_t kPatternElements = 2048;  // 16 KiB of u64
void fill_pattern(std::vector<std::uint64_t>& v, std::uint64_t k) {
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = (k << 16) | i;
}
/// k of a frame made by fill_pattern(), or 0 when it is torn (a mix of frames).
std::uint64_t pattern_frame(const std::vector<std::uint64_t>& v) {
  const std::uint64_t k = v[0] >> 16;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] != ((k << 16) | i)) return 0;
  return k;
}

// A writer at full speed in namespace A: the replica in namespace B never holds a torn frame (the
// per-frame pattern), and never publishes a source frame twice: between two reads, the replica's
// cnt0 advances by at most as many source frames as were written between them, and at the end
// it holds the newest source frame with at most one publication per source frame.
TEST_F(ServiceNetns, FullSpeedWriterInANeverGivesBATornOrDuplicatedFrame) {
  Stream src = Stream::create(a_.stream("wfs"), shmlink::test::spec_of({kPatternElements}, Dtype::u64));
  std::vector<std::uint64_t> frame(kPatternElements);
  fill_pattern(frame, 1);
  ASSERT_TRUE(src.write(std::span<const std::uint64_t>(frame)).ok());
  ASSERT_NO_FATAL_FAILURE(serve_both_listing("wfs"));

  struct Run {
    ChildReport report;
    std::atomic<int> reading{0};
    std::atomic<std::uint64_t> last_k{0};  // the writer's last frame, once it is done
    std::atomic<std::uint64_t> reads{0}, frames_seen{0}, torn{0}, duplicated{0}, final_cnt0{0}, final_k{0};
  };
  Shared<Run> run;
  const pid_t reader = program_in(b_, {}, [&run] {
    const Stream s = Stream::open("A:wfs");
    std::vector<std::uint64_t> got(kPatternElements);
    std::uint64_t last_cnt0 = 0, last_seen = 0;
    run->reading = 1;
    const auto deadline = std::chrono::steady_clock::now() + 25s;
    while (std::chrono::steady_clock::now() < deadline) {
      shmlink::FrameInfo info;
      const auto st = s.read_copy(std::as_writable_bytes(std::span(got)), &info);
      SHMLINK_CHILD_CHECK(&run->report, st.ok(), static_cast<int>(st.code()));
      ++run->reads;
      const std::uint64_t k = pattern_frame(got);
      if (k == 0) {
        ++run->torn;
        continue;
      }
      if (last_cnt0 != 0) {
        if (info.cnt0 == last_cnt0 && k != last_seen) ++run->duplicated;  // one publication, two frames
        if (info.cnt0 > last_cnt0 && (k <= last_seen || k - last_seen < info.cnt0 - last_cnt0)) ++run->duplicated;
        if (info.cnt0 > last_cnt0) ++run->frames_seen;
      }
      last_cnt0 = info.cnt0, last_seen = k;
      run->final_cnt0 = info.cnt0, run->final_k = k;
      if (run->last_k != 0 && k == run->last_k) break;
      std::this_thread::yield();
    }
    return 0;
  });
  ASSERT_TRUE(wait_until([&] { return run->reading == 1 || !shmlink::test::still_running(reader); }, 20));
  Shared<std::atomic<std::uint64_t>> written;
  const std::string path = a_.stream("wfs");
  const pid_t writer = program_in(a_, {}, [&written, path] {
    Stream w = Stream::open(path);
    std::vector<std::uint64_t> f(kPatternElements);
    const auto end = std::chrono::steady_clock::now() + 1s;
    std::uint64_t k = 1;
    while (std::chrono::steady_clock::now() < end && k < 1'000'000) {
      fill_pattern(f, ++k);
      if (!w.write(std::span<const std::uint64_t>(f)).ok()) return 2;
    }
    *written = k;
    return 0;
  });
  ASSERT_EQ(netns::wait_child(writer, 20s), 0);
  run->last_k = written->load();
  EXPECT_EQ(netns::wait_child(reader, 30s), 0) << run->report.describe();
  EXPECT_EQ(src.cnt0(), written->load());
  EXPECT_EQ(run->final_k.load(), written->load()) << "the newest source frame reaches the replica";
  EXPECT_EQ(run->torn.load(), 0U) << "of " << run->reads.load() << " reads";
  EXPECT_EQ(run->duplicated.load(), 0U) << "of " << run->frames_seen.load() << " publications seen";
  EXPECT_LE(run->final_cnt0.load(), written->load()) << "more publications than source frames";
  EXPECT_GT(run->frames_seen.load(), 0U);
  const Stream replica = Stream::open(b_.stream("wfs"));
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), static_cast<std::int64_t>(written->load()));
}

// A program of B writes the replica: the frame reaches A's source once, and B's replica does not
// publish it again when A's publisher sends it back (no echo): the next source frame is the only
// publication after the program's own write.
TEST_F(ServiceNetns, AWriteOnBsReplicaReachesTheSourceWithoutEcho) {
  Stream src = source("wfs");
  ASSERT_NO_FATAL_FAILURE(serve_both_listing("wfs"));
  Shared<std::atomic<std::uint64_t>> before;
  const pid_t writer = program_in(b_, {}, [&before] {
    Stream s = Stream::open("A:wfs");
    *before = s.cnt0();
    return s.write(std::span<const float>(ramp(64, 900))).ok() ? 0 : 2;
  });
  ASSERT_EQ(netns::wait_child(writer, 20s), 0);
  EXPECT_TRUE(wait_until([&] { return frame(src) == ramp(64, 900); }, 20))
      << "the write did not reach A; service B: " << read_file(b_.log);
  EXPECT_EQ(src.cnt0(), 2U) << "written into the source once";
  ASSERT_TRUE(src.write(std::span<const float>(ramp(64, 50))).ok());
  const Stream replica = Stream::open(b_.stream("wfs"));  // made by the program's open
  EXPECT_TRUE(wait_until([&] { return frame(replica) == ramp(64, 50); }, 20));
  EXPECT_EQ(replica.cnt0(), before->load() + 2) << "the program's write, then the next source frame: nothing between";
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), 3);
}

// A's service killed: B's replica keeps its last frame and says BR_LINK 0; A's service back: data
// flows again into the same file, read by a program of B that never reopens its handle.
TEST_F(ServiceNetns, ALostLinkKeepsTheLastFrameAndARestartedServiceResumesIt) {
  Stream src = source("wfs");
  ASSERT_NO_FATAL_FAILURE(serve_both_listing("wfs"));
  struct Seen {
    std::atomic<int> stop{0};
    std::atomic<int> base{-1};
    std::atomic<int> link{-1};
    std::atomic<int> replaced{0};
  };
  Shared<Seen> seen;
  const pid_t client = program_in(b_, {}, [&seen] {
    const Stream s = Stream::open("A:wfs");  // one handle for the whole test
    std::vector<float> got(64);
    while (seen->stop == 0) {
      if (s.read_copy(std::as_writable_bytes(std::span(got))).ok()) seen->base = static_cast<int>(got[0]);
      seen->link = static_cast<int>(int_keyword(s, bridge::kKeywordLink));
      if (s.replaced()) seen->replaced = 1;
      std::this_thread::sleep_for(2ms);
    }
    return 0;
  });
  const auto sees = [&](int base, int link) {
    return wait_until([&] { return seen->base == base && seen->link == link; }, 20);
  };
  EXPECT_TRUE(sees(1, 1));
  kill_service(a_);
  EXPECT_TRUE(sees(1, 0)) << "base " << seen->base.load() << ", BR_LINK " << seen->link.load();
  ASSERT_NO_FATAL_FAILURE(serve(a_));
  ASSERT_TRUE(src.write(std::span<const float>(ramp(64, 70))).ok());
  EXPECT_TRUE(sees(70, 1)) << "base " << seen->base.load() << ", BR_LINK " << seen->link.load() << "\n"
                           << cli(b_, {"bridge", "status"}).out << "\nservice B: " << read_file(b_.log);
  seen->stop = 1;
  EXPECT_EQ(netns::wait_child(client, 10s), 0);
  EXPECT_EQ(seen->replaced.load(), 0) << "the replica file was replaced: the client would have to reopen";
}

// Without a service, opening "A:x" fails at once with not_found (it does not wait out the open
// timeout, here 60 s); with B's service up but A never heard, likewise.
TEST_F(ServiceNetns, OpeningARemoteNameWithoutAServiceFailsAtOnceWithNotFound) {
  struct Outcome {
    std::atomic<int> errc{-1};
    std::atomic<std::int64_t> ms{-1};
  };
  Shared<Outcome> o;
  const auto try_open = [&o] {
    o->errc = -1;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      (void)Stream::open("A:x");
      o->errc = 0;
    } catch (const shmlink::Error& e) {
      o->errc = static_cast<int>(e.errc());
    }
    o->ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    return 0;
  };
  const std::vector<std::string> slow = {"SHMLINK_BRIDGE_TIMEOUT_MS=60000"};
  for (const bool with_b : {false, true}) {
    SCOPED_TRACE(with_b ? "B's service up, A's never heard" : "no service");
    if (with_b) {
      ASSERT_NO_FATAL_FAILURE(serve(b_));
    }
    ASSERT_EQ(netns::wait_child(program_in(b_, slow, try_open), 60s), 0);
    EXPECT_EQ(o->errc.load(), static_cast<int>(Errc::not_found));
    EXPECT_LT(o->ms.load(), 30000) << "waited for the open timeout instead of failing";
    const CliResult want = cli(b_, {"bridge", "want", "A:x"}, slow);
    EXPECT_EQ(want.rc, 3) << want.out;
  }
}

}  // namespace
