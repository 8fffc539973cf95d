// SPDX-License-Identifier: MIT
// Runs examples/villas_echo as a user would, against a shmlink::Interface with
// InterfaceProtocol::villas in this (another) process: every sample comes back with its sequence,
// origin timestamp and values unchanged, in both region modes, with --count and until the peer
// closes, with the names on the command line and from SHMLINK_INTERFACE_IN/OUT (this side
// launching the echo through InterfaceSpec::exec); the summary line counts what was echoed;
// nothing is left in /dev/shm. No timing assertions.
#include "test_util.hpp"

#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#ifndef VILLAS_ECHO_PATH
#error "VILLAS_ECHO_PATH must name the shmlink-villas-echo binary"
#endif

namespace {

using namespace std::chrono_literals;

/// A running echo whose stdout is piped to us.
class Echo {
 public:
  /// Starts shmlink-villas-echo with `args`.
  explicit Echo(std::vector<std::string> args) {
    args.insert(args.begin(), VILLAS_ECHO_PATH);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = shmlink::test::spawn([&argv, &fds] {
      ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears close-on-exec on the copy
      ::dup2(fds[1], STDERR_FILENO);  // its messages too
      ::execv(argv[0], argv.data());
      return 127;
    });
    ::close(fds[1]);
    fd_ = fds[0];
  }
  Echo(const Echo&) = delete;
  Echo& operator=(const Echo&) = delete;
  ~Echo() {
    if (pid_ > 0) {  // a test that failed half-way: let it clean up first, then kill it
      ::kill(pid_, SIGTERM);
      (void)shmlink::test::reap(pid_, 5);
    }
    if (fd_ >= 0) ::close(fd_);
  }

  /// Its process id (-1 once reaped).
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Reads its stdout and stderr to EOF (at most `limit_s`), reaps it and returns its exit status
  /// (shmlink::test::reap's codes).
  int finish(double limit_s = 30) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
    char buffer[1024];
    while (fd_ >= 0 && std::chrono::steady_clock::now() < end) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n > 0) {
        out_.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    const int status = shmlink::test::reap(pid_, limit_s);
    pid_ = -1;
    return status;
  }
  /// What it printed (stdout and stderr).
  [[nodiscard]] const std::string& out() const noexcept { return out_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
};

/// Two shm names unique to this test process: `/shmlink-echo-test-<pid>-<tag>-{a,b}`.
struct Names {
  std::string ours;    ///< this side's output region (the echo's --in)
  std::string theirs;  ///< the echo's output region (its --out)
  explicit Names(const std::string& tag)
      : ours("/shmlink-echo-test-" + std::to_string(::getpid()) + "-" + tag + "-a"),
        theirs("/shmlink-echo-test-" + std::to_string(::getpid()) + "-" + tag + "-b") {}
  /// Nothing of the pair left in /dev/shm: neither region nor rendezvous semaphore.
  [[nodiscard]] std::vector<std::string> leftovers() const {
    std::vector<std::string> left;
    for (const std::string& name : {ours, theirs}) {
      for (const std::string& file : {"/dev/shm" + name, "/dev/shm/sem." + name.substr(1)}) {
        if (std::filesystem::exists(file)) left.push_back(file);
      }
    }
    return left;
  }
};

/// This side of the pair: protocol villas, two f64 signals each way.
shmlink::Interface open_side(const Names& names, shmlink::WaitMode wait, std::vector<std::string> exec = {},
                             std::uint32_t max_values = 64) {
  shmlink::InterfaceSpec spec;
  spec.max_values = max_values;
  spec.protocol = shmlink::InterfaceProtocol::villas;
  spec.out = names.ours;
  spec.in = names.theirs;
  spec.capacity = 64;
  spec.wait = wait;
  spec.attach_timeout = 20s;
  spec.exec = std::move(exec);
  shmlink::Interface iface(spec);
  iface.export_signal(0, "a", shmlink::SignalType::f64);
  iface.export_signal(1, "b", shmlink::SignalType::f64);
  iface.import_signal(0, "a", shmlink::SignalType::f64);
  iface.import_signal(1, "b", shmlink::SignalType::f64);
  iface.open();
  return iface;
}

/// Sends `n` samples (values k + 0.25 and -k) and checks that each comes back with the same
/// sequence, origin timestamp and values, one at a time.
void exchange(shmlink::Interface& iface, int n) {
  shmlink::Sample back;
  for (int k = 0; k < n; ++k) {
    SCOPED_TRACE("sample " + std::to_string(k));
    const shmlink::SignalValue values[2] = {shmlink::SignalValue::of(k + 0.25),
                                            shmlink::SignalValue::of(-static_cast<double>(k))};
    const std::uint64_t sequence = iface.next_sequence();
    ASSERT_TRUE(iface.write(std::span<const shmlink::SignalValue>(values), 10s).ok());
    const shmlink::Status got = iface.read(back, 10s);
    ASSERT_TRUE(got.ok()) << got.message();
    EXPECT_EQ(back.sequence, sequence);
    EXPECT_NE(back.flags & shmlink::kSampleHasTsOrigin, 0U);
    EXPECT_GT(back.ts_origin_ns, 0);
    ASSERT_EQ(back.values.size(), 2U);
    EXPECT_EQ(back.values[0].f, k + 0.25);
    EXPECT_EQ(back.values[1].f, -static_cast<double>(k));
  }
}

/// The echo's region mode and ours.
struct ModeCase {
  const char* mode;        ///< --mode
  shmlink::WaitMode wait;  ///< this side's wait (polling -> polling region, else pthread)
};

/// gtest prints a case by its mode.
void PrintTo(const ModeCase& c, std::ostream* os) { *os << c.mode; }

class VillasEcho : public ::testing::TestWithParam<ModeCase> {};

TEST_P(VillasEcho, EchoesEverySampleUnchangedAndStopsAtCount) {
  const Names names(std::string("count-") + GetParam().mode);
  Echo echo({"--in", names.ours, "--out", names.theirs, "--mode", GetParam().mode, "--count", "50", "--timeout",
             "20"});
  {
    shmlink::Interface iface = open_side(names, GetParam().wait);
    exchange(iface, 50);
    ASSERT_EQ(echo.finish(), 0) << echo.out();
    iface.close();
  }
  EXPECT_NE(echo.out().find("echoed 50 samples, sequences 0..49; --count reached"), std::string::npos) << echo.out();
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

TEST_P(VillasEcho, RunsUntilThePeerClosesWhenNoCountIsGiven) {
  const Names names(std::string("close-") + GetParam().mode);
  Echo echo({"--in", names.ours, "--out", names.theirs, "--mode", GetParam().mode, "--timeout", "20"});
  {
    shmlink::Interface iface = open_side(names, GetParam().wait);
    exchange(iface, 7);
    iface.close();  // the echo reads "closed" and ends by itself
  }
  ASSERT_EQ(echo.finish(), 0) << echo.out();
  EXPECT_NE(echo.out().find("echoed 7 samples, sequences 0..6; the peer closed"), std::string::npos) << echo.out();
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(Modes, VillasEcho,
                         ::testing::Values(ModeCase{"pthread", shmlink::WaitMode::hybrid},
                                           ModeCase{"polling", shmlink::WaitMode::polling}),
                         [](const ::testing::TestParamInfo<ModeCase>& param) { return std::string(param.param.mode); });

TEST(VillasEchoExec, TakesItsNamesFromTheEnvironmentWhenAnInterfaceLaunchesIt) {
  const Names names("exec");
  {
    shmlink::Interface iface =
        open_side(names, shmlink::WaitMode::hybrid, {VILLAS_ECHO_PATH, "--count", "20", "--timeout", "20"});
    exchange(iface, 20);
    iface.close();  // reaps the echo, which exited after its 20 samples
    const shmlink::PeerStatus peer = iface.peer();
    EXPECT_TRUE(peer.launched);
    EXPECT_EQ(peer.exit_code, 0) << peer.describe();
  }
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

TEST(VillasEchoUsage, MissingNamesAndBadOptionsExitTwo) {
  ::unsetenv("SHMLINK_INTERFACE_IN");
  ::unsetenv("SHMLINK_INTERFACE_OUT");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {},
           {"--in", "/x"},
           {"--in", "/x", "--out", "/y", "--mode", "futex"},
           {"--in", "/x", "--out", "/y", "--queuelen", "-3"},
           {"--in", "/x", "--out", "/y", "--teleport", "1"}}) {
    Echo echo(args);
    EXPECT_EQ(echo.finish(), 2) << args.size();
  }
}

TEST(VillasEchoUsage, GivesUpWhenNoPeerAttachesWithinTheTimeout) {
  const Names names("nopeer");
  Echo echo({"--in", names.ours, "--out", names.theirs, "--timeout", "0.5"});
  EXPECT_EQ(echo.finish(), 124);
  // The echo removed its region and semaphore, and the peer's semaphore it had created itself
  // (nobody else opened it).
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

TEST(VillasEcho, EchoesOriginFlagsAndANanPayloadExactly) {
  const Names names("exact");
  Echo echo({"--in", names.ours, "--out", names.theirs, "--count", "1", "--timeout", "20"});
  {
    shmlink::Interface iface = open_side(names, shmlink::WaitMode::hybrid);
    shmlink::Sample sent;
    sent.sequence = 4242;
    sent.ts_origin_ns = 1'234'567'890'123'456'789;
    sent.flags = shmlink::kSampleHasSequence | shmlink::kSampleHasData | shmlink::kSampleHasTsOrigin |
                 shmlink::kSampleNewFrame;
    // A quiet NaN with a payload: compared bit for bit, so no conversion may touch it.
    const std::uint64_t nan_bits = 0x7ff8'0000'dead'beefULL;
    double nan = 0;
    std::memcpy(&nan, &nan_bits, sizeof nan);
    sent.values = {shmlink::SignalValue::of(nan), shmlink::SignalValue::of(-0.0)};
    ASSERT_TRUE(iface.write(sent, 10s).ok());
    shmlink::Sample back;
    const shmlink::Status got = iface.read(back, 10s);
    ASSERT_TRUE(got.ok()) << got.message();
    EXPECT_EQ(back.sequence, sent.sequence);
    EXPECT_EQ(back.ts_origin_ns, sent.ts_origin_ns);
    EXPECT_EQ(back.flags & ~shmlink::kSampleHasTsReceived, sent.flags);
    ASSERT_EQ(back.values.size(), 2U);
    std::uint64_t bits[2] = {};
    std::memcpy(&bits[0], &back.values[0].f, sizeof bits[0]);
    std::memcpy(&bits[1], &back.values[1].f, sizeof bits[1]);
    EXPECT_EQ(bits[0], nan_bits);
    EXPECT_EQ(bits[1], 0x8000'0000'0000'0000ULL);  // -0.0
    ASSERT_EQ(echo.finish(), 0) << echo.out();
    iface.close();
  }
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

/// SIGINT or SIGTERM.
class VillasEchoSignal : public ::testing::TestWithParam<int> {};

TEST_P(VillasEchoSignal, EndsWith130AndCleansUpWhenSignalledWhileWaitingForItsPeer) {
  const Names names("signal-" + std::to_string(GetParam()));
  Echo echo({"--in", names.ours, "--out", names.theirs, "--timeout", "0"});  // would wait for ever
  // Its region exists once it is in the rendezvous, waiting on our (absent) side's semaphore.
  ASSERT_TRUE(shmlink::test::wait_until([&] { return std::filesystem::exists("/dev/shm" + names.theirs); }));
  ASSERT_EQ(::kill(echo.pid(), GetParam()), 0);
  EXPECT_EQ(echo.finish(10), 130) << echo.out();
  EXPECT_NE(echo.out().find("interrupted by a signal"), std::string::npos) << echo.out();
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(Signals, VillasEchoSignal, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return std::string(param.param == SIGINT ? "sigint" : "sigterm");
                         });

TEST(VillasEcho, EndsWithOneAndCleansUpWhenItsPeerIsKilled) {
  const Names names("killed");
  Echo echo({"--in", names.ours, "--out", names.theirs, "--timeout", "20"});
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t peer = shmlink::test::spawn([&] {
    shmlink::Interface iface = open_side(names, shmlink::WaitMode::hybrid);
    exchange(iface, 3);
    const char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) return 1;
    ::pause();  // until killed, the interface still open
    return 0;
  });
  ::close(ready[1]);
  char byte = 0;
  pollfd pfd{ready[0], POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 20'000), 1);
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(::kill(peer, SIGKILL), 0);
  EXPECT_EQ(shmlink::test::reap(peer, 10), -SIGKILL);
  EXPECT_EQ(echo.finish(), 1) << echo.out();
  EXPECT_NE(echo.out().find("echoed 3 samples, sequences 0..2"), std::string::npos) << echo.out();
  EXPECT_NE(echo.out().find("is gone"), std::string::npos) << echo.out();
  // The echo removed its own region; the killed side's region is the killed side's leftover.
  EXPECT_FALSE(std::filesystem::exists("/dev/shm" + names.theirs));
  ::shm_unlink(names.ours.c_str());
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

TEST(VillasEchoUsage, RefusesAPeerWhoseSamplesHoldMoreValuesThanSamplelen) {
  const Names names("samplelen");
  Echo echo({"--in", names.ours, "--out", names.theirs, "--samplelen", "2", "--timeout", "20"});
  {
    // Our samples hold up to 8 values; the echo's hold 2.
    shmlink::Interface iface = open_side(names, shmlink::WaitMode::hybrid, {}, 8);
    EXPECT_EQ(echo.finish(), 2) << echo.out();
    iface.close();
  }
  // 8 values take a 192-byte block (13 values); 2 a 128-byte one (5 values).
  EXPECT_NE(echo.out().find("up to 13 values, more than the 5 of ours (--samplelen 2)"), std::string::npos)
      << echo.out();
  EXPECT_EQ(names.leftovers(), std::vector<std::string>{});
}

}  // namespace
