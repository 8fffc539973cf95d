// SPDX-License-Identifier: MIT
// VILLASnode v1.x shmem interoperability (issue 19), with real processes, real POSIX shm regions
// and named semaphores. villas_peer (tests/process/villas_peer.cpp) is written from
// docs/reference/villas-shmem.md alone and shares no code with shmlink's VILLAS layer.
//
// VillasPeerSelf: the peer against itself (two processes with swapped names): both modes, both
// directions, sequence numbers, origin timestamps and values carried, pool blocks recycled (more
// samples than blocks), STOPPED believed before the cells (a villas-node reader loses what a
// closing writer left queued), every --hostile kind refused by the peer's own strict reader, and
// the leftovers of a peer killed in the rendezvous.
//
// VillasPeerInterface: shmlink's Interface with InterfaceProtocol::villas against the peer: both
// modes x either side first x both directions (values, sequence numbers, origin timestamps), the
// Interface exec-ing the peer, a peer SIGKILLed after sending (its samples read, then
// peer_exited), a peer SIGKILLed in the rendezvous (its stale post and region never attached, a
// later live peer is), every hostile kind (a layout error naming the region, at open or from one
// read, never a crash or a hang), shmlink's close draining for a reader that believes STOPPED
// first, a peer closing without draining (every queued sample still read, then closed), and
// v1.0's garbage in the samples' signals bytes ignored.
#include "test_util.hpp"

#include <shmlink/interface.hpp>
#include <shmlink/log.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef VILLAS_PEER_PATH
#error "VILLAS_PEER_PATH must name the villas_peer binary"
#endif

namespace {

/// A villas_peer process started with its stdout and stderr in files of `dir`.
class PeerProcess {
 public:
  PeerProcess(const std::string& dir, const std::string& tag, const std::vector<std::string>& args) {
    out_ = dir + "/" + tag + ".out";
    err_ = dir + "/" + tag + ".err";
    // Everything the child needs is made before fork(): other threads of this test may be
    // inside shmlink (an open() running) while it forks, so the child only makes system calls.
    std::string exe = VILLAS_PEER_PATH;
    std::vector<std::string> copy = args;
    std::vector<char*> argv{exe.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(97);
      const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (o < 0 || e < 0) ::_exit(96);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execv(exe.c_str(), argv.data());
      ::_exit(95);
    }
  }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  ~PeerProcess() {
    if (pid_ > 0 && rc_ == kNotReaped) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  /// Waits at most `seconds` (then SIGKILL): exit code, -signal, or -1000 when it overstayed.
  int wait(double seconds = 20) {
    if (rc_ == kNotReaped) rc_ = shmlink::test::reap(pid_, seconds);
    return rc_;
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string out() const { return slurp(out_); }
  [[nodiscard]] std::string err() const { return slurp(err_); }
  /// The stdout lines that describe a received sample ("seq=...").
  [[nodiscard]] std::vector<std::string> samples() const {
    std::vector<std::string> r;
    std::istringstream in(out());
    for (std::string l; std::getline(in, l);)
      if (l.rfind("seq=", 0) == 0) r.push_back(l);
    return r;
  }
  /// The summary line's fields (sent, received, closed, ...).
  [[nodiscard]] std::map<std::string, std::string> summary() const {
    std::map<std::string, std::string> r;
    std::istringstream in(out());
    for (std::string l; std::getline(in, l);) {
      if (l.rfind("summary ", 0) != 0) continue;
      std::istringstream words(l.substr(8));
      for (std::string w; words >> w;) {
        const auto eq = w.find('=');
        if (eq != std::string::npos) r[w.substr(0, eq)] = w.substr(eq + 1);
      }
    }
    return r;
  }
  /// For failure messages.
  [[nodiscard]] std::string describe() const { return "stdout:\n" + out() + "stderr:\n" + err(); }

 private:
  static constexpr int kNotReaped = -5000;
  static std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  pid_t pid_ = -1;
  int rc_ = kNotReaped;
  std::string out_, err_;
};

/// What villas_peer prints for sample `seq` with `k` values (value j = seq*100 + j + 0.25, each
/// multiplied by `factor`), flags 25 (HAS_TS_ORIGIN | HAS_SEQUENCE | HAS_DATA).
std::string values_text(std::uint64_t seq, int k, double factor = 1) {
  std::string r;
  for (int j = 0; j < k; ++j) {
    char v[40];
    std::snprintf(v, sizeof v, "%s%.17g", j == 0 ? "" : ",", factor * (static_cast<double>(seq) * 100 + j + 0.25));
    r += v;
  }
  return r;
}

/// The "values=" part of a sample line.
std::string values_of(const std::string& line) { return line.substr(line.find("values=") + 7); }

/// Unique region names per test, both removed (regions and semaphores) at the end whatever happened.
class VillasPeerSelf : public ::testing::Test {
 protected:
  VillasPeerSelf() {
    static int counter = 0;
    const std::string base = "/shmlink-vp-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    a = base + "-a";
    b = base + "-b";
  }
  ~VillasPeerSelf() override {
    for (const auto& n : {a, b}) {
      ::shm_unlink(n.c_str());
      ::sem_unlink(n.c_str());
    }
  }
  /// Arguments naming the pair (this side writes `out`, reads `in`) and the mode.
  static std::vector<std::string> pair(const std::string& out, const std::string& in, const std::string& mode,
                                       std::vector<std::string> more) {
    std::vector<std::string> r = {"--out", out, "--in", in, "--mode", mode, "--queuelen", "16", "--samplelen", "4",
                                  "--rendezvous-timeout-ms", "15000", "--timeout-ms", "15000"};
    r.insert(r.end(), more.begin(), more.end());
    return r;
  }
  static bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

  shmlink::test::TempStreamDir dir;  // for the peers' stdout/stderr files
  std::string a, b;
};

TEST_F(VillasPeerSelf, ExchangesBothWaysInBothModesRecyclingPoolBlocks) {
  // 40 samples through 16 blocks each way: blocks must come back through the free lists.
  for (const auto& [ma, mb] : {std::pair{"pthread", "pthread"}, {"polling", "polling"}, {"pthread", "polling"}}) {
    SCOPED_TRACE(std::string(ma) + " / " + mb);
    PeerProcess pa(dir.path(), "a", pair(a, b, ma, {"--send", "40", "--recv", "40"}));
    PeerProcess pb(dir.path(), "b", pair(b, a, mb, {"--send", "40", "--recv", "40", "--seq-base", "7"}));
    ASSERT_EQ(pa.wait(), 0) << pa.describe();
    ASSERT_EQ(pb.wait(), 0) << pb.describe();
    const auto ra = pa.samples(), rb = pb.samples();
    ASSERT_EQ(ra.size(), 40U) << pa.describe();
    ASSERT_EQ(rb.size(), 40U) << pb.describe();
    for (std::uint64_t k = 0; k < 40; ++k) {
      EXPECT_EQ(ra[k].rfind("seq=" + std::to_string(k + 7) + " len=4 flags=25 origin=", 0), 0U) << ra[k];
      EXPECT_EQ(values_of(ra[k]), values_text(k + 7, 4)) << ra[k];
      EXPECT_EQ(rb[k].rfind("seq=" + std::to_string(k) + " len=4 flags=25 origin=", 0), 0U) << rb[k];
      EXPECT_EQ(values_of(rb[k]), values_text(k, 4)) << rb[k];
    }
    EXPECT_EQ(pa.summary().at("sent"), "40");
    EXPECT_EQ(pa.summary().at("size"), "4496") << "48 + 736 + 16*32 + 16*128 + 128 + 1024";
    EXPECT_FALSE(exists("/dev/shm" + a) || exists("/dev/shm" + b)) << "closed regions are unlinked";
    EXPECT_FALSE(exists("/dev/shm/sem." + a.substr(1)) || exists("/dev/shm/sem." + b.substr(1)))
        << "the rendezvous semaphores are unlinked";
  }
}

TEST_F(VillasPeerSelf, EchoCarriesSequenceOriginAndFlags) {
  // a sends sequences 1000.. with ts.origin = base + n ns; b echoes each with the values doubled.
  const std::int64_t base = 1'700'000'000'123'456'789LL;
  PeerProcess pb(dir.path(), "b", pair(b, a, "polling", {"--echo", "20"}));
  PeerProcess pa(dir.path(), "a", pair(a, b, "pthread", {"--send", "20", "--recv", "20", "--seq-base", "1000",
                                                        "--origin-base-ns", std::to_string(base), "--values", "3"}));
  ASSERT_EQ(pa.wait(), 0) << pa.describe();
  ASSERT_EQ(pb.wait(), 0) << pb.describe();
  const auto got = pa.samples();
  ASSERT_EQ(got.size(), 20U) << pa.describe();
  for (std::uint64_t k = 0; k < 20; ++k) {
    char origin[40];
    std::snprintf(origin, sizeof origin, "%lld.%09lld", static_cast<long long>((base + static_cast<std::int64_t>(k)) / 1'000'000'000),
                  static_cast<long long>((base + static_cast<std::int64_t>(k)) % 1'000'000'000));
    EXPECT_EQ(got[k], "seq=" + std::to_string(1000 + k) + " len=3 flags=25 origin=" + origin +
                          " values=" + values_text(1000 + k, 3, 2));
  }
}

TEST_F(VillasPeerSelf, EchoOfALongerSampleIsCutToTheBlock) {
  // b's blocks hold (128 - 88) / 8 = 5 values; a sends 8: the echo carries the first 5, doubled.
  PeerProcess pa(dir.path(), "a", pair(a, b, "polling", {"--samplelen", "8", "--send", "2", "--recv", "2"}));
  PeerProcess pb(dir.path(), "b", pair(b, a, "polling", {"--samplelen", "2", "--echo", "2"}));
  ASSERT_EQ(pa.wait(), 0) << pa.describe();
  ASSERT_EQ(pb.wait(), 0) << pb.describe();
  const auto got = pa.samples();
  ASSERT_EQ(got.size(), 2U) << pa.describe();
  EXPECT_EQ(got[1].substr(0, got[1].find(" origin")), "seq=1 len=5 flags=25");
  EXPECT_EQ(values_of(got[1]), values_text(1, 5, 2));
}

TEST_F(VillasPeerSelf, ReaderBelievesStoppedBeforeTheCellsUnlessToldToDrain) {
  // villas-node's pull checks STOPPED first: what a writer left queued when it closed is lost.
  {
    PeerProcess pa(dir.path(), "a", pair(a, b, "pthread", {"--send", "5", "--close-without-drain"}));
    PeerProcess pb(dir.path(), "b", pair(b, a, "pthread", {"--recv", "5", "--wait-stopped"}));
    EXPECT_EQ(pa.wait(), 0) << pa.describe();
    EXPECT_EQ(pb.wait(), 6) << pb.describe();  // closed before the samples asked for
    EXPECT_EQ(pb.samples().size(), 0U);
    EXPECT_EQ(pb.summary().at("closed"), "1");
  }
  {
    PeerProcess pa(dir.path(), "a", pair(a, b, "polling", {"--send", "5", "--close-without-drain"}));
    PeerProcess pb(dir.path(), "b", pair(b, a, "polling", {"--recv", "5", "--wait-stopped", "--drain-first", "--until-closed"}));
    EXPECT_EQ(pa.wait(), 0) << pa.describe();
    EXPECT_EQ(pb.wait(), 0) << pb.describe();
    EXPECT_EQ(pb.samples().size(), 5U) << pb.describe();
    EXPECT_EQ(pb.summary().at("closed"), "1");
  }
}

TEST_F(VillasPeerSelf, EveryHostileKindIsRefusedByTheStrictReader) {
  // The peer's own reader checks every offset, so each kind must make it exit 8 naming a check:
  // this proves the kinds really corrupt what they claim (the shmlink tests rely on them).
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"bad-mask", "buffer_mask 62"},          {"cells-outside", "outside the region"},
      {"pool-outside", "pool buffer"},         {"freelist-outside", "free list: cells"},
      {"bad-mode", "mode 7"},                  {"huge-length", "length 4294967280 exceeds"},
      {"huge-capacity", "capacity 16777216"},  {"bad-sample-offset", "outside the pool buffer"},
      {"misaligned-sample", "not on a block boundary"}, {"bad-pool-off", "pool_off"},
      {"v011", "pool_off"}};
  for (const auto& [kind, message] : kinds) {
    SCOPED_TRACE(kind);
    PeerProcess pa(dir.path(), "a", pair(a, b, "pthread", {"--hostile", kind, "--send", "1", "--close-without-drain"}));
    PeerProcess pb(dir.path(), "b", pair(b, a, "pthread", {"--recv", "1", "--drain-first"}));
    EXPECT_EQ(pb.wait(), 8) << pb.describe();
    EXPECT_NE(pb.err().find(message), std::string::npos) << pb.describe();
    EXPECT_EQ(pa.wait(), 0) << pa.describe();
  }
  // moving-sequences: the reader gives up in bounded time (a bad sample or a timeout), no crash.
  PeerProcess pa(dir.path(), "a", pair(a, b, "polling", {"--hostile", "moving-sequences", "--hostile-ms", "500"}));
  PeerProcess pb(dir.path(), "b", pair(b, a, "polling", {"--recv", "1", "--timeout-ms", "300"}));
  const int rc = pb.wait();
  EXPECT_TRUE(rc == 8 || rc == 5) << rc << "\n" << pb.describe();
  EXPECT_EQ(pa.wait(), 0) << pa.describe();
}

TEST_F(VillasPeerSelf, RegionIsLaidOutAsTheReferenceSays) {
  // Before its peer comes, a's region is complete and its semaphore posted: read its bytes.
  PeerProcess pa(dir.path(), "a", pair(a, b, "pthread", {"--queuelen", "64", "--send", "1"}));
  ASSERT_TRUE(shmlink::test::wait_until([&] { return exists("/dev/shm/sem." + a.substr(1)); }, 10));
  sem_t* sem = ::sem_open(a.c_str(), 0);
  ASSERT_NE(sem, SEM_FAILED);
  ASSERT_TRUE(shmlink::test::wait_until([&] {
    int v = 0;
    return ::sem_getvalue(sem, &v) == 0 && v == 1;
  }, 10)) << "a posts its semaphore once its region is ready";
  ::sem_close(sem);
  const int fd = ::shm_open(a.c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 12176) << "the reference's size for queuelen 64, sample length 4";
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(st.st_size));
  ASSERT_EQ(::pread(fd, bytes.data(), bytes.size(), 0), st.st_size);
  ::close(fd);
  auto i32 = [&](std::size_t at) { std::int32_t v; std::memcpy(&v, &bytes[at], 4); return v; };
  auto i64 = [&](std::size_t at) { std::int64_t v; std::memcpy(&v, &bytes[at], 8); return v; };
  EXPECT_NE(i64(0), 0) << "memory::Type holds (meaningless) process pointers";
  EXPECT_EQ(i32(80), 0) << "ShmemShared.polling";
  EXPECT_EQ(i32(88), 1) << "data queue state INITIALIZED";
  EXPECT_EQ(i64(88 + 72), 63) << "buffer_mask";
  const std::int64_t cells = 88 + i64(88 + 80);
  EXPECT_EQ(i32(88 + 296), 1) << "mode pthread";
  EXPECT_EQ(i32(480), 1) << "pool state";
  const std::int64_t pool_buffer = 480 + i64(480 + 8);
  EXPECT_EQ(pool_buffer % 64, 0);
  EXPECT_EQ(i64(480 + 16), 64 * 128) << "pool len";
  EXPECT_EQ(i64(480 + 24), 128) << "blocksz: 88 + 4*8 rounded up to 64";
  EXPECT_EQ(i64(480 + 32), 64) << "alignment";
  EXPECT_EQ(i64(520 + 72), 63) << "free-list mask";
  const std::int64_t free_cells = 520 + i64(520 + 80);
  EXPECT_EQ(i64(520 + 152), 64) << "free-list tail: every block queued";
  EXPECT_EQ(i64(520 + 224), 0) << "free-list head";
  for (std::int64_t k = 0; k < 64; ++k) {
    EXPECT_EQ(i64(static_cast<std::size_t>(cells + 16 * k)), k) << "data cell " << k << " sequence";
    EXPECT_EQ(i64(static_cast<std::size_t>(free_cells + 16 * k)), k + 1) << "free cell " << k << " sequence";
    EXPECT_EQ(520 + i64(static_cast<std::size_t>(free_cells + 16 * k + 8)), pool_buffer + 128 * k) << "free block " << k;
  }
  // Where a real villas-node v1.2.0 region of this size has them (docs/reference/villas-shmem.md 5.4).
  EXPECT_EQ(cells, 848);
  EXPECT_EQ(pool_buffer, 1920);
  EXPECT_EQ(free_cells, 10144);
  PeerProcess pb(dir.path(), "b", pair(b, a, "pthread", {"--recv", "1"}));
  EXPECT_EQ(pb.wait(), 0) << pb.describe();
  EXPECT_EQ(pa.wait(), 0) << pa.describe();
}

TEST_F(VillasPeerSelf, KilledInTheRendezvousLeavesItsSemaphorePostedAndItsRegion) {
  PeerProcess pa(dir.path(), "a", pair(a, b, "pthread", {"--sigkill-in-rendezvous"}));
  EXPECT_EQ(pa.wait(), -SIGKILL) << pa.describe();
  EXPECT_TRUE(exists("/dev/shm" + a));
  sem_t* sem = ::sem_open(a.c_str(), 0);
  ASSERT_NE(sem, SEM_FAILED);
  int v = -1;
  EXPECT_EQ(::sem_getvalue(sem, &v), 0);
  EXPECT_EQ(v, 1) << "the stale semaphore is posted: a villas-node reader would attach to the stale region";
  ::sem_close(sem);
  // A peer started later replaces the stale region of its own name (unlink and retry). The stale
  // post is removed first: a villas-style reader would take it and map whatever is named `a`.
  ASSERT_EQ(::sem_unlink(a.c_str()), 0);
  PeerProcess again(dir.path(), "a2", pair(a, b, "pthread", {"--send", "2"}));
  PeerProcess pb(dir.path(), "b", pair(b, a, "pthread", {"--recv", "2"}));
  EXPECT_EQ(pb.wait(), 0) << pb.describe();
  EXPECT_EQ(again.wait(), 0) << again.describe();
}

// ---- shmlink's Interface (protocol villas) against villas_peer ----------------------------------

using namespace shmlink;
using namespace std::chrono_literals;

/// Sample k that the shmlink side sends: value j = k*10 + j - 0.5.
std::vector<SignalValue> shmlink_values(std::uint64_t k) {
  std::vector<SignalValue> v;
  for (int j = 0; j < 4; ++j) v.push_back(SignalValue::of(static_cast<double>(k) * 10 + j - 0.5));
  return v;
}
/// What villas_peer prints for it.
std::string shmlink_values_text(std::uint64_t k) {
  std::string r;
  for (int j = 0; j < 4; ++j) {
    char v[40];
    std::snprintf(v, sizeof v, "%s%.17g", j == 0 ? "" : ",", static_cast<double>(k) * 10 + j - 0.5);
    r += v;
  }
  return r;
}

/// Nanoseconds since the epoch in a peer's "origin=<sec>.<nsec>" field.
std::int64_t origin_of(const std::string& line) {
  const auto at = line.find("origin=") + 7;
  const auto dot = line.find('.', at);
  return std::stoll(line.substr(at, dot - at)) * 1'000'000'000 + std::stoll(line.substr(dot + 1, 9));
}

/// A posted semaphore (value >= 1) named `name` exists: its owner's region is ready.
bool posted(const std::string& name) {
  sem_t* s = ::sem_open(name.c_str(), 0);
  if (s == SEM_FAILED) return false;
  int v = 0;
  const bool r = ::sem_getvalue(s, &v) == 0 && v >= 1;
  ::sem_close(s);
  return r;
}

/// Collects what the library logs (thread-safe), for the checks of named errors.
class LogCapture {
 public:
  LogCapture() {
    set_log_handler([this](LogLevel, std::string_view m) {
      std::lock_guard<std::mutex> g(mu_);
      text_ += std::string(m) + "\n";
    });
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture() { set_log_handler({}); }
  std::string text() {
    std::lock_guard<std::mutex> g(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

class VillasPeerInterface : public VillasPeerSelf {
 protected:
  /// shmlink writes `a` and reads `b` (the peer the other way round); 4 f64 values each way.
  InterfaceSpec spec(bool polling) const {
    InterfaceSpec s;
    s.protocol = InterfaceProtocol::villas;
    s.out = a;
    s.in = b;
    s.capacity = 16;
    s.max_values = 4;
    s.wait = polling ? WaitMode::polling : WaitMode::hybrid;
    s.attach_timeout = 15s;
    return s;
  }
  static Interface make(const InterfaceSpec& s) {
    Interface i(s);
    for (std::uint32_t j = 0; j < 4; ++j) {
      i.export_signal(j, "x" + std::to_string(j), SignalType::f64);
      i.import_signal(j, "y" + std::to_string(j), SignalType::f64);
    }
    return i;
  }
  /// Peer arguments: it writes `b`, reads `a`.
  std::vector<std::string> peer_args(bool polling, std::vector<std::string> more) const {
    return pair(b, a, polling ? "polling" : "pthread", std::move(more));
  }
  /// Opens `i`, the shmlink side first (open() running while the peer is started once our region
  /// is posted, and `before_peer` has run) or the peer first (open() once the peer's region is
  /// posted).
  std::unique_ptr<PeerProcess> open_with_peer(Interface& i, bool shmlink_first, const std::vector<std::string>& args,
                                              const std::string& tag = "peer",
                                              const std::function<void()>& before_peer = {}) {
    std::unique_ptr<PeerProcess> p;
    if (shmlink_first) {
      std::exception_ptr failed;
      std::atomic<bool> done{false};
      std::thread opener([&] {
        try {
          i.open();
        } catch (...) {
          failed = std::current_exception();
        }
        done = true;
      });
      const bool ours = test::wait_until([&] { return posted(a) || done.load(); }, 15);
      if (before_peer) before_peer();
      p = std::make_unique<PeerProcess>(dir.path(), tag, args);
      opener.join();
      if (failed) std::rethrow_exception(failed);
      EXPECT_TRUE(ours) << "shmlink posted its semaphore before the peer started";
    } else {
      p = std::make_unique<PeerProcess>(dir.path(), tag, args);
      EXPECT_TRUE(test::wait_until([&] { return posted(b); }, 15)) << p->describe();
      i.open();
    }
    return p;
  }
};

TEST_F(VillasPeerInterface, BothModesEitherSideFirstBothDirections) {
  const std::int64_t base = 1'765'000'000'000'000'000LL;
  for (const bool polling : {false, true}) {
    for (const bool shmlink_first : {true, false}) {
      SCOPED_TRACE(std::string(polling ? "polling" : "pthread") + (shmlink_first ? ", shmlink first" : ", peer first"));
      Interface i = make(spec(polling));
      // 40 samples each way through 16 pool blocks on each side: blocks come back both ways.
      auto p = open_with_peer(i, shmlink_first,
                              peer_args(polling, {"--send", "40", "--recv", "40", "--seq-base", "500",
                                                  "--origin-base-ns", std::to_string(base)}));
      EXPECT_EQ(i.peer().pid, p->pid()) << "the process mapping the peer's region: " << i.peer().describe();
      EXPECT_FALSE(i.peer().launched);
      const std::int64_t t0 = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count();
      Sample s;
      for (std::uint64_t k = 0; k < 40; ++k) {
        const auto v = shmlink_values(k);
        ASSERT_EQ(i.write(v, 10s).code(), Errc::ok) << k;
        ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << k << "\n" << p->describe();
        EXPECT_EQ(s.sequence, 500 + k);
        EXPECT_EQ(s.ts_origin_ns, base + static_cast<std::int64_t>(k));
        EXPECT_NE(s.flags & kSampleHasSequence, 0U);
        EXPECT_NE(s.flags & kSampleHasTsOrigin, 0U);
        ASSERT_EQ(s.values.size(), 4U);
        for (std::size_t j = 0; j < 4; ++j)
          EXPECT_EQ(s.values[j].f, static_cast<double>(500 + k) * 100 + static_cast<double>(j) + 0.25) << k << "/" << j;
      }
      i.close();
      ASSERT_EQ(p->wait(), 0) << p->describe();
      const std::int64_t t1 = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count();
      const auto got = p->samples();
      ASSERT_EQ(got.size(), 40U) << p->describe();
      for (std::uint64_t k = 0; k < 40; ++k) {
        EXPECT_EQ(got[k].rfind("seq=" + std::to_string(k) + " len=4 flags=", 0), 0U) << got[k];
        EXPECT_EQ(values_of(got[k]), shmlink_values_text(k)) << got[k];
        EXPECT_GE(origin_of(got[k]), t0 - 1'000'000'000) << got[k];
        EXPECT_LE(origin_of(got[k]), t1) << got[k];
      }
      EXPECT_FALSE(exists("/dev/shm" + a) || exists("/dev/shm/sem." + a.substr(1)))
          << "shmlink's region and semaphore are gone after close";
    }
  }
}

TEST_F(VillasPeerInterface, OwnRegionHasTheReferenceSizeAndFields) {
  // What a villas-node reading shmlink's region relies on, read from the file while shmlink waits.
  for (const bool polling : {false, true}) {
    SCOPED_TRACE(polling ? "polling" : "pthread");
    InterfaceSpec sp = spec(polling);
    sp.capacity = 64;
    Interface i = make(sp);
    auto p = open_with_peer(i, true, peer_args(polling, {"--recv", "1"}), "peer", [&] {
      const int fd = ::shm_open(a.c_str(), O_RDONLY, 0);
      ASSERT_GE(fd, 0);
      struct stat st{};
      ASSERT_EQ(::fstat(fd, &st), 0);
      EXPECT_EQ(st.st_size, 12176) << "48 + 736 + 64*32 + 64*128 + 128 + 1024";
      EXPECT_EQ(st.st_mode & 0777, 0600U);
      std::vector<unsigned char> r(static_cast<std::size_t>(st.st_size));
      ASSERT_EQ(::pread(fd, r.data(), r.size(), 0), st.st_size);
      ::close(fd);
      auto i32 = [&](std::size_t at) { std::int32_t v; std::memcpy(&v, &r[at], 4); return v; };
      auto i64 = [&](std::size_t at) { std::int64_t v; std::memcpy(&v, &r[at], 8); return v; };
      EXPECT_EQ(i32(80), polling ? 1 : 0) << "ShmemShared.polling";
      EXPECT_EQ(i32(88), 1) << "data queue state";
      EXPECT_EQ(i64(88 + 72), 63) << "data queue mask";
      EXPECT_EQ(i32(88 + 296), polling ? 2 : 1) << "CQueueSignalled.mode";
      EXPECT_EQ(i64(480 + 16), 64 * 128) << "pool len";
      EXPECT_EQ(i64(480 + 24), 128) << "pool blocksz";
      EXPECT_EQ(i64(480 + 32), 64) << "pool alignment";
      EXPECT_EQ(88 + i64(88 + 80), 848) << "data cells where a villas-node region has them";
      EXPECT_EQ(480 + i64(480 + 8), 1920) << "pool buffer";
      EXPECT_EQ(520 + i64(520 + 80), 10144) << "free-list cells";
      EXPECT_EQ(i64(520 + 152) - i64(520 + 224), 64) << "every block in the free list";
    });
    ASSERT_EQ(i.write(shmlink_values(0), 10s).code(), Errc::ok);
    i.close();
    EXPECT_EQ(p->wait(), 0) << p->describe();
  }
}

TEST_F(VillasPeerInterface, ExecLaunchesThePeerWithTheNamesSwapped) {
  InterfaceSpec s = spec(false);
  const std::string out_file = dir.path() + "/exec.out";
  s.exec = {VILLAS_PEER_PATH, "--mode", "pthread", "--queuelen", "16", "--samplelen", "4", "--echo", "5",
            "--output", out_file};
  Interface i = make(s);
  i.open();
  EXPECT_TRUE(i.peer().launched);
  Sample r;
  for (std::uint64_t k = 0; k < 5; ++k) {
    Sample w;
    w.sequence = 70 + k;
    w.flags = kSampleHasSequence | kSampleHasData | kSampleHasTsOrigin;
    w.ts_origin_ns = 1'600'000'000'000'000'000LL + static_cast<std::int64_t>(k);
    w.values = shmlink_values(k);
    ASSERT_EQ(i.write(w, 10s).code(), Errc::ok);
    ASSERT_EQ(i.read(r, 10s).code(), Errc::ok) << i.peer().describe();
    EXPECT_EQ(r.sequence, 70 + k) << "the peer echoes the sequence";
    EXPECT_EQ(r.ts_origin_ns, w.ts_origin_ns) << "and ts.origin";
    ASSERT_EQ(r.values.size(), 4U);
    for (std::size_t j = 0; j < 4; ++j) EXPECT_EQ(r.values[j].f, 2 * w.values[j].f);
  }
  i.close();
  EXPECT_EQ(i.peer().exit_code, 0) << i.peer().describe();
  std::ifstream f(out_file);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("summary sent=5 received=5"), std::string::npos) << all;
}

TEST_F(VillasPeerInterface, PeerKilledAfterSendingIsReadThenPeerExited) {
  for (const bool polling : {false, true}) {
    SCOPED_TRACE(polling ? "polling" : "pthread");
    Interface i = make(spec(polling));
    auto p = open_with_peer(i, false, peer_args(polling, {"--sigkill-after-send", "6"}));
    EXPECT_EQ(p->wait(), -SIGKILL) << p->describe();
    Sample s;
    for (std::uint64_t k = 0; k < 6; ++k) {
      ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << k;
      EXPECT_EQ(s.sequence, k);
    }
    EXPECT_EQ(i.read(s, 10s).code(), Errc::peer_exited) << i.peer().describe();
    EXPECT_TRUE(i.peer().exited);
    i.close();
    ::shm_unlink(b.c_str());  // the killed peer's region
  }
}

TEST_F(VillasPeerInterface, PeerKilledInTheRendezvousIsNeverAttachedALaterPeerIs) {
  // The killed peer leaves /dev/shm/<b> and a posted sem.<b>, as a SIGKILLed villas-node does.
  {
    PeerProcess dead(dir.path(), "dead", peer_args(false, {"--sigkill-in-rendezvous"}));
    ASSERT_EQ(dead.wait(), -SIGKILL) << dead.describe();
  }
  ASSERT_TRUE(exists("/dev/shm" + b));
  ASSERT_TRUE(posted(b));
  Interface i = make(spec(false));
  // Once shmlink's own region is posted it is waiting with the stale objects in front of it.
  auto live = open_with_peer(i, true, peer_args(false, {"--send", "3", "--recv", "3", "--seq-base", "900"}), "live",
                             [] { std::this_thread::sleep_for(100ms); });
  Sample s;
  for (std::uint64_t k = 0; k < 3; ++k) {
    ASSERT_EQ(i.write(shmlink_values(k), 10s).code(), Errc::ok);
    ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << "attached to the stale region? " << live->describe();
    EXPECT_EQ(s.sequence, 900 + k);
  }
  i.close();
  EXPECT_EQ(live->wait(), 0) << live->describe();
  EXPECT_EQ(live->samples().size(), 3U);
}

TEST_F(VillasPeerInterface, HostileRegionsAreRefusedAtOpenWithANamedLayoutError) {
  for (const std::string kind : {"bad-mask", "cells-outside", "pool-outside", "freelist-outside", "bad-mode"}) {
    SCOPED_TRACE(kind);
    InterfaceSpec s = spec(false);
    s.attach_timeout = 10s;
    Interface i = make(s);
    PeerProcess p(dir.path(), "hostile", peer_args(false, {"--hostile", kind, "--close-without-drain",
                                                           "--drain-timeout-ms", "2000"}));
    try {
      i.open();
      ADD_FAILURE() << "open() accepted a region with " << kind;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::layout) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.substr(1)), std::string::npos) << "names the region: " << e.what();
    }
    EXPECT_FALSE(i.is_open());
    EXPECT_GT(p.wait(), -1000) << "the peer ends by itself";
    ::shm_unlink(b.c_str());
    ::sem_unlink(b.c_str());
    ::sem_unlink(a.c_str());
  }
}

TEST_F(VillasPeerInterface, RegionHeadersRewrittenAfterAttachAreNeverReRead) {
  // The peer corrupts its queue and pool headers once shmlink has checked them, then sends 5 right
  // samples: shmlink works from the copies it checked, so it reads them all, then closed.
  for (const std::string kind : {"bad-mask", "cells-outside", "pool-outside", "freelist-outside", "bad-mode"}) {
    SCOPED_TRACE(kind);
    Interface i = make(spec(false));
    auto p = open_with_peer(i, false, peer_args(false, {"--hostile", kind, "--hostile-late", "--send", "5"}));
    Sample s;
    for (std::uint64_t k = 0; k < 5; ++k) {
      ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << k;
      EXPECT_EQ(s.sequence, k);
    }
    EXPECT_EQ(p->wait(), 0) << p->describe();
    EXPECT_EQ(i.read(s, 10s).code(), Errc::shut_down);
    i.close();
  }
}

TEST_F(VillasPeerInterface, HostileSamplesAreSkippedWithANamedLayoutError) {
  // The first sample is corrupted, the two after it are right: read says layout once, then goes on.
  // A v0.11 sample is the exception: such a peer's region is refused for good, so every later read
  // (even after the peer closed) is the same layout error and nothing more is taken.
  for (const std::string kind :
       {"huge-length", "huge-capacity", "bad-sample-offset", "misaligned-sample", "bad-pool-off", "v011"}) {
    SCOPED_TRACE(kind);
    const bool sticky = kind == "v011";
    LogCapture log;
    Interface i = make(spec(true));
    auto p = open_with_peer(i, false, peer_args(true, {"--hostile", kind, "--send", "3", "--close-without-drain"}));
    Sample s;
    EXPECT_EQ(i.read(s, 10s).code(), Errc::layout);
    for (std::uint64_t k = 1; k < 3; ++k) {
      if (sticky) {
        EXPECT_EQ(i.read(s, 10s).code(), Errc::layout) << k;
        continue;
      }
      ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << k;
      EXPECT_EQ(s.sequence, k);
      EXPECT_EQ(s.values.at(0).f, static_cast<double>(k) * 100 + 0.25);
    }
    EXPECT_EQ(p->wait(), 0) << p->describe();
    EXPECT_EQ(i.read(s, 10s).code(), sticky ? Errc::layout : Errc::shut_down);
    EXPECT_NE(log.text().find(b.substr(1)), std::string::npos) << "the log names the region:\n" << log.text();
    if (kind == "v011") {
      EXPECT_NE(log.text().find("0.11"), std::string::npos) << log.text();
    }
    i.close();
  }
}

TEST_F(VillasPeerInterface, WrongBlocksPutBackIntoOurFreeListAreNeverUsed) {
  // The peer returns every block as a wrong offset: after our 16 blocks are gone a write finds no
  // usable block (timeout), never one of the wrong ones; the peer's strict reader checks every
  // sample it got (a sample written into a wrong block would fail there).
  for (const bool polling : {false, true}) {
    SCOPED_TRACE(polling ? "polling" : "pthread");
    LogCapture log;
    Interface i = make(spec(polling));
    auto p = open_with_peer(i, true, peer_args(polling, {"--recv", "16", "--until-closed", "--hostile", "bad-free-block"}));
    for (std::uint64_t k = 0; k < 16; ++k) ASSERT_EQ(i.write(shmlink_values(k), 10s).code(), Errc::ok) << k;
    // It took all 16 (it prints each after giving its block back wrong) and waits for more.
    ASSERT_TRUE(test::wait_until([&] { return p->samples().size() == 16; }, 15)) << p->describe();
    EXPECT_EQ(i.write(shmlink_values(16), 200ms).code(), Errc::timeout);
    EXPECT_EQ(i.write(shmlink_values(16), 0ns).code(), Errc::would_block);
    i.close();
    EXPECT_EQ(p->wait(), 0) << p->describe();
    EXPECT_EQ(p->summary().at("closed"), "1");
    EXPECT_NE(log.text().find(a.substr(1)), std::string::npos) << "the drop is logged naming our region:\n" << log.text();
  }
}

TEST_F(VillasPeerInterface, MovingSequencesNeitherCrashNorHang) {
  LogCapture log;  // one warning per skipped sample
  Interface i = make(spec(true));
  auto p = open_with_peer(i, false, peer_args(true, {"--hostile", "moving-sequences", "--hostile-ms", "1000"}));
  Sample s;
  int reads = 0, layout = 0;
  // A read that hangs runs the binary into its ctest TIMEOUT (120 s): that is what is checked.
  while (test::still_running(p->pid()) && reads < 400) {
    const Status st = i.read(s, 5ms);
    EXPECT_TRUE(st.code() == Errc::ok || st.code() == Errc::timeout || st.code() == Errc::layout ||
                st.code() == Errc::shut_down || st.code() == Errc::peer_exited)
        << st.code();
    layout += st.code() == Errc::layout ? 1 : 0;
    ++reads;
  }
  EXPECT_GT(layout, 0) << "the rewritten cells reached the reader (" << reads << " reads)";
  p->wait();
  i.close();
}

TEST_F(VillasPeerInterface, CloseDrainsWhatAVillasReaderWouldOtherwiseLose) {
  // The peer reads as villas-node does (STOPPED before the cells) and starts 300 ms late: every
  // sample written before close() must still reach it.
  for (const bool polling : {false, true}) {
    SCOPED_TRACE(polling ? "polling" : "pthread");
    InterfaceSpec sp = spec(polling);
    sp.stop_timeout = 10s;  // the drain's bound (it ends once the peer took everything): generous on a busy machine
    Interface i = make(sp);
    auto p = open_with_peer(i, true, peer_args(polling, {"--recv", "10", "--recv-delay-ms", "300"}));
    for (std::uint64_t k = 0; k < 10; ++k) ASSERT_EQ(i.write(shmlink_values(k), 10s).code(), Errc::ok);
    i.close();
    EXPECT_EQ(p->wait(), 0) << p->describe();
    EXPECT_EQ(p->samples().size(), 10U) << p->describe();
  }
}

TEST_F(VillasPeerInterface, PeerClosingWithoutDrainStillDeliversEverySampleThenClosed) {
  for (const bool polling : {false, true}) {
    SCOPED_TRACE(polling ? "polling" : "pthread");
    Interface i = make(spec(polling));
    auto p = open_with_peer(i, true, peer_args(polling, {"--send", "8", "--close-without-drain"}));
    ASSERT_EQ(p->wait(), 0) << p->describe();  // STOPPED with 8 samples queued
    Sample s;
    for (std::uint64_t k = 0; k < 8; ++k) {
      ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << k;
      EXPECT_EQ(s.sequence, k);
    }
    EXPECT_EQ(i.read(s, 10s).code(), Errc::shut_down);
    EXPECT_TRUE(i.peer().closed) << i.peer().describe();
    i.close();
  }
}

TEST_F(VillasPeerInterface, GarbageInTheSignalsBytesOfV10IsIgnored) {
  Interface i = make(spec(false));
  auto p = open_with_peer(i, false, peer_args(false, {"--send", "4", "--v10-signals"}));
  // The garbage is really there: the first queued sample's 16 signals bytes (at +24) are not zero.
  ASSERT_TRUE(test::wait_until([&] {
    const int fd = ::shm_open(b.c_str(), O_RDONLY, 0);
    if (fd < 0) return false;
    std::vector<unsigned char> r(4096);
    const ssize_t n = ::pread(fd, r.data(), r.size(), 0);
    ::close(fd);
    std::int64_t tail = 0, cells = 0, data_off = 0, signals = 0;
    if (n < 1024) return false;
    std::memcpy(&tail, &r[88 + 152], 8);
    std::memcpy(&cells, &r[88 + 80], 8);
    if (tail < 4 || 88 + cells + 16 > n) return false;
    std::memcpy(&data_off, &r[static_cast<std::size_t>(88 + cells + 8)], 8);
    const std::int64_t at = 88 + data_off + 24;
    if (at < 0 || at + 16 > n) return false;
    std::memcpy(&signals, &r[static_cast<std::size_t>(at)], 8);
    return signals != 0;
  }, 15));
  Sample s;
  for (std::uint64_t k = 0; k < 4; ++k) {
    ASSERT_EQ(i.read(s, 10s).code(), Errc::ok) << k;
    EXPECT_EQ(s.sequence, k);
    EXPECT_EQ(s.values.at(3).f, static_cast<double>(k) * 100 + 3.25);
  }
  i.close();
  EXPECT_EQ(p->wait(), 0) << p->describe();
}

}  // namespace
