// SPDX-License-Identifier: MIT
// Latest-value stream replication between processes over loopback TCP (issue 22): an owner
// process runs a Publisher on a stream in directory A, subscriber processes run Replicas in
// directories B and C (two "hosts"), and the test process reads and writes the files as any
// local program would. ZeroMQ lives only in the forked children.
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlink::Dtype;
using shmlink::Stream;
using shmlink::test::Shared;
using shmlink::test::spawn;
using shmlink::test::wait_until;
namespace bridge = shmlink::bridge;

constexpr bridge::LinkTiming kFast{std::chrono::milliseconds(50), std::chrono::milliseconds(400)};

/// A private directory standing for one host's stream directory.
class HostDir {
 public:
  HostDir() {
    std::string t = "/dev/shm/shmlink-bridge-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = t;
  }
  ~HostDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] std::string stream(const std::string& name) const { return path_ + "/" + name + ".im.shm"; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// What a child shares with the test: its stop flag, the bound endpoint, its counters.
struct Ctl {
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};
  char endpoint[128] = {};
  std::atomic<std::uint64_t> published{0}, duplicates{0}, echoes{0}, writes_sent{0}, writes_applied{0};
  std::atomic<int> link{0};
  char last_error[256] = {};  ///< the child's last_error(), for failure messages
  /// "published P, writes sent W, applied A, last error: E" for failure messages.
  [[nodiscard]] std::string describe() const {
    return "published " + std::to_string(published.load()) + ", writes sent " + std::to_string(writes_sent.load()) +
           ", applied " + std::to_string(writes_applied.load()) + ", last error: " + std::string(last_error);
  }
};

/// Runs a Publisher on `source` bound to `endpoint` until ctl->stop (or killed). With `host_dir`,
/// the child's SHMLINK_DIR is that directory (and `source` may be a bare name).
pid_t start_publisher(Ctl* ctl, const std::string& source, const std::string& endpoint = "tcp://127.0.0.1:*",
                      const std::string& host_dir = {}) {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test killed by its timeout
    if (!host_dir.empty()) ::setenv("SHMLINK_DIR", host_dir.c_str(), 1);
    bridge::PublisherOptions o;
    o.timing = kFast;
    bridge::Publisher p(source, endpoint, o);
    std::strncpy(ctl->endpoint, p.endpoint().c_str(), sizeof ctl->endpoint - 1);
    ctl->ready = 1;
    while (ctl->stop.load() == 0) {
      ctl->writes_applied = p.stats().writes_applied;
      std::strncpy(ctl->last_error, p.last_error().c_str(), sizeof ctl->last_error - 1);
      std::this_thread::sleep_for(1ms);
    }
    p.stop();
    ctl->writes_applied = p.stats().writes_applied;
    return 0;
  });
}

/// Runs a Replica of `name` from `endpoint` into file `local` until ctl->stop. With `host_dir`,
/// the child's SHMLINK_DIR is that directory and the replica takes its default place there.
pid_t start_replica(Ctl* ctl, const std::string& name, const std::string& endpoint, const std::string& local,
                    const std::string& host_dir = {}) {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    bridge::ReplicaOptions o;
    o.timing = kFast;
    if (host_dir.empty()) o.local_name = local;
    else ::setenv("SHMLINK_DIR", host_dir.c_str(), 1);
    o.reconnect_max = std::chrono::milliseconds(200);
    bridge::Replica r(name, endpoint, o);
    ctl->ready = 1;
    auto publish = [&] {
      const auto s = r.stats();
      ctl->published = s.frames_published;
      ctl->duplicates = s.duplicates_dropped;
      ctl->echoes = s.echoes;
      ctl->writes_sent = s.writes_sent;
      ctl->link = s.link_up ? 1 : 0;
      std::strncpy(ctl->last_error, r.last_error().c_str(), sizeof ctl->last_error - 1);
    };
    while (ctl->stop.load() == 0) {
      publish();
      std::this_thread::sleep_for(1ms);
    }
    r.stop();
    publish();
    return 0;
  });
}

/// Stops a child when a test ends early (a failed ASSERT), so no peer outlives its test.
struct Running {
  Ctl* ctl;
  pid_t pid;
  Running(Ctl* c, pid_t p) : ctl(c), pid(p) {}
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  ~Running() {
    ctl->stop = 1;
    (void)shmlink::test::reap(pid, 10);  // already reaped by finish(): returns at once
  }
};

/// Stops a child through its flag and reaps it; returns its exit status.
int finish(Ctl* ctl, pid_t pid) {
  ctl->stop = 1;
  return shmlink::test::reap(pid, 20);
}

/// Opens `path` once it exists and has published at least `cnt0` frames.
bool wait_frames(const std::string& path, std::uint64_t cnt0, Stream& out, double seconds = 10) {
  return wait_until(
      [&] {
        try {
          if (!out.valid() || out.replaced()) out = Stream::open(path);
          return out.cnt0() >= cnt0;
        } catch (const shmlink::Error&) {
          return false;
        }
      },
      seconds);
}

std::int64_t int_keyword(const Stream& s, const char* name) {
  const auto v = s.keyword(name);
  return v && std::holds_alternative<std::int64_t>(*v) ? std::get<std::int64_t>(*v) : -1;
}

std::vector<float> ramp(std::size_t n, float base) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  return v;
}

std::vector<float> copy_of(const Stream& s) {
  std::vector<float> v(s.frame_elements());
  EXPECT_TRUE(s.read_copy(std::as_writable_bytes(std::span(v))).ok());
  return v;
}

TEST(BridgeStream, ReplicaCarriesDataCountersSemaphoresAndKeywords) {
  HostDir a, b;
  auto spec = shmlink::test::spec_of({8, 4}, Dtype::f32);
  spec.keywords = 4;
  Stream src = Stream::create(a.stream("wfs"), spec);
  src.set_keyword("GAIN", std::int64_t{7}, "loop gain");
  ASSERT_TRUE(src.write(std::span<const float>(ramp(32, 1))).ok());

  Shared<Ctl> pub, rep;
  // Each "host" finds its streams by name in its own directory (SHMLINK_DIR).
  const pid_t p = start_publisher(&*pub, "wfs", "tcp://127.0.0.1:*", a.path());
  const Running p_guard{&*pub, p};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  const pid_t r = start_replica(&*rep, "wfs", pub->endpoint, "", b.path());
  const Running r_guard{&*rep, r};

  Stream replica;
  ASSERT_TRUE(wait_frames(b.stream("wfs"), 1, replica));
  EXPECT_EQ(copy_of(replica), ramp(32, 1));
  EXPECT_EQ(replica.dtype(), Dtype::f32);
  ASSERT_EQ(replica.shape().size(), 2U);
  EXPECT_EQ(replica.shape()[0], 8U);
  EXPECT_EQ(replica.shape()[1], 4U);
  EXPECT_EQ(replica.semaphore_count(), 10);
  EXPECT_EQ(int_keyword(replica, "GAIN"), 7);
  EXPECT_EQ(std::get<std::string>(replica.keyword(bridge::kKeywordOrigin).value_or(std::string())), "127.0.0.1");
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordLink), 1);
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), 1);
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceTime), src.writetime_ns());
  EXPECT_GE(int_keyword(replica, bridge::kKeywordAge), 0);
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSkipped), 0);
  // An idle source for longer than link_timeout: heartbeats keep the link up.
  std::this_thread::sleep_for(kFast.link_timeout + kFast.link_timeout / 2);
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordLink), 1);
  EXPECT_EQ(rep->link.load(), 1);

  // A semaphore reader and a futex waiter on the replica both wake for the next source frame.
  const int slot = replica.claim_semaphore();
  ASSERT_GE(slot, 0);
  replica.sem_flush(slot);
  const std::uint64_t before = replica.cnt0();
  ASSERT_TRUE(src.write(std::span<const float>(ramp(32, 100))).ok());
  EXPECT_TRUE(replica.sem_wait(slot, 10s).ok());
  std::uint64_t now = 0;
  EXPECT_TRUE(replica.wait_futex(before, 10s, &now).ok());
  EXPECT_EQ(now, before + 1);
  EXPECT_EQ(copy_of(replica), ramp(32, 100));
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), 2);
  replica.release_semaphore(slot);

  EXPECT_EQ(finish(&*rep, r), 0);
  EXPECT_EQ(finish(&*pub, p), 0);
  EXPECT_EQ(rep->published.load(), 2U);
}

/// Frame k of the full-speed test: element 0 is k, element i is k ^ (i * 0x9E3779B9): a frame
/// mixing two writes fails check_frame().
void fill_frame(std::vector<std::uint32_t>& f, std::uint32_t k) {
  f[0] = k;
  for (std::size_t i = 1; i < f.size(); ++i) f[i] = k ^ static_cast<std::uint32_t>(i * 0x9E3779B9U);
}
bool check_frame(const std::vector<std::uint32_t>& f) {
  for (std::size_t i = 1; i < f.size(); ++i)
    if (f[i] != (f[0] ^ static_cast<std::uint32_t>(i * 0x9E3779B9U))) return false;
  return true;
}

TEST(BridgeStream, FullSpeedWriterNeverYieldsATornOrDuplicatedFrame) {
  HostDir a, b;
  const std::size_t n = 64 * 64;
  Stream src = Stream::create(a.stream("cam"), shmlink::test::spec_of({64, 64}, Dtype::u32));
  std::vector<std::uint32_t> frame(n);
  fill_frame(frame, 1);
  ASSERT_TRUE(src.write(std::span<const std::uint32_t>(frame)).ok());

  Shared<Ctl> pub, rep, writer;
  const pid_t p = start_publisher(&*pub, a.stream("cam"));
  const Running p_guard{&*pub, p};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  const pid_t r = start_replica(&*rep, "cam", pub->endpoint, b.stream("cam"));
  const Running r_guard{&*rep, r};
  Stream replica;
  ASSERT_TRUE(wait_frames(b.stream("cam"), 1, replica));

  // The writer: frames 2, 3, ... at full speed for about 1.5 s, frame k as source cnt0 k.
  const std::string src_path = a.stream("cam");
  const pid_t w = spawn([&] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    Stream s = Stream::open(src_path);
    std::vector<std::uint32_t> f(n);
    const auto end = std::chrono::steady_clock::now() + 1500ms;
    while (std::chrono::steady_clock::now() < end) {
      fill_frame(f, static_cast<std::uint32_t>(s.cnt0() + 1));
      if (!s.write(std::span<const std::uint32_t>(f)).ok()) return 1;
    }
    writer->published = s.cnt0();
    return 0;
  });

  // The reader on the replica: every publication it sees is whole and brings a newer source frame.
  std::vector<std::uint32_t> got(n);
  std::uint64_t last_cnt0 = replica.cnt0(), seen = 0, torn = 0, repeated = 0;
  std::uint32_t last_k = 1;
  // Returns after the next publication it sees (false: none within 100 ms).
  auto read_next = [&] {
    std::uint64_t c = 0;
    if (!replica.wait_futex(last_cnt0, 100ms, &c).ok()) return false;
    shmlink::FrameInfo info;
    if (!replica.read_copy(std::as_writable_bytes(std::span(got)), &info).ok() || info.cnt0 == last_cnt0) return false;
    ++seen;
    if (!check_frame(got)) ++torn;
    else if (got[0] <= last_k) ++repeated;
    last_k = got[0];
    last_cnt0 = info.cnt0;
    return true;
  };
  while (shmlink::test::still_running(w)) read_next();
  ASSERT_EQ(shmlink::test::reap(w, 10), 0);
  const std::uint64_t source_frames = writer->published.load();
  ASSERT_GT(source_frames, 2U);
  // The last source frame arrives too (latest value: nothing is left behind at rest).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (last_k != source_frames && std::chrono::steady_clock::now() < deadline) read_next();
  EXPECT_EQ(last_k, source_frames);
  EXPECT_EQ(finish(&*rep, r), 0);
  EXPECT_EQ(finish(&*pub, p), 0);
  EXPECT_EQ(torn, 0U);
  EXPECT_EQ(repeated, 0U);
  EXPECT_GT(seen, 0U);
  RecordProperty("source_frames", std::to_string(source_frames));
  RecordProperty("replica_publications", std::to_string(rep->published.load()));
  RecordProperty("publications_seen_by_reader", std::to_string(seen));
  // Publications on the replica: one per distinct source frame received, never more.
  EXPECT_EQ(replica.cnt0(), rep->published.load());
  EXPECT_LE(rep->published.load(), source_frames);
  // (A frame the replica already had may still arrive, e.g. after the owner forgot a subscriber
  // slowed down past link_timeout: the replica drops it, counted, without publishing it.)
}

TEST(BridgeStream, WriteOnReplicaGoesBackWithoutEcho) {
  HostDir a, b, c;
  Stream src = Stream::create(a.stream("dm"), shmlink::test::spec_of({16}, Dtype::f32));
  ASSERT_TRUE(src.write(std::span<const float>(ramp(16, 0))).ok());
  Shared<Ctl> pub, rep1, rep2;
  const pid_t p = start_publisher(&*pub, a.stream("dm"));
  const Running p_guard{&*pub, p};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  const pid_t r1 = start_replica(&*rep1, "dm", pub->endpoint, b.stream("dm"));
  const Running r1_guard{&*rep1, r1};
  const pid_t r2 = start_replica(&*rep2, "dm", pub->endpoint, c.stream("dm"));
  const Running r2_guard{&*rep2, r2};
  Stream on_b, on_c;
  ASSERT_TRUE(wait_frames(b.stream("dm"), 1, on_b));
  ASSERT_TRUE(wait_frames(c.stream("dm"), 1, on_c));

  // A local program on host B writes the replica: the owner's source gets it.
  const std::uint64_t b_before = on_b.cnt0(), c_before = on_c.cnt0();
  ASSERT_TRUE(on_b.write(std::span<const float>(ramp(16, 500))).ok());
  ASSERT_TRUE(wait_until([&] { return src.cnt0() == 2; }, 10)) << "replica: " << rep1->describe()
                                                               << "; publisher: " << pub->describe();
  EXPECT_EQ(copy_of(src), ramp(16, 500));
  // Host C gets it as a source frame; host B's replica does not publish the echo again.
  ASSERT_TRUE(wait_frames(c.stream("dm"), c_before + 1, on_c));
  EXPECT_EQ(copy_of(on_c), ramp(16, 500));
  ASSERT_TRUE(wait_until([&] { return rep1->echoes.load() == 1; }, 5));
  EXPECT_EQ(on_b.cnt0(), b_before + 1);
  EXPECT_EQ(int_keyword(on_b, bridge::kKeywordSourceCnt0), 2);

  // The next source frame reaches B as usual.
  ASSERT_TRUE(src.write(std::span<const float>(ramp(16, 900))).ok());
  ASSERT_TRUE(wait_frames(b.stream("dm"), b_before + 2, on_b));
  EXPECT_EQ(copy_of(on_b), ramp(16, 900));
  EXPECT_EQ(finish(&*rep1, r1), 0);
  EXPECT_EQ(finish(&*rep2, r2), 0);
  EXPECT_EQ(finish(&*pub, p), 0);
  EXPECT_EQ(rep1->writes_sent.load(), 1U);
  EXPECT_EQ(pub->writes_applied.load(), 1U);
  EXPECT_EQ(on_b.cnt0(), b_before + 2);
}

TEST(BridgeStream, RecreatedSourceRecreatesReplica) {
  HostDir a, b;
  Stream src = Stream::create(a.stream("psf"), shmlink::test::spec_of({8}, Dtype::f32));
  ASSERT_TRUE(src.write(std::span<const float>(ramp(8, 1))).ok());
  Shared<Ctl> pub, rep;
  const pid_t p = start_publisher(&*pub, a.stream("psf"));
  const Running p_guard{&*pub, p};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  const pid_t r = start_replica(&*rep, "psf", pub->endpoint, b.stream("psf"));
  const Running r_guard{&*rep, r};
  Stream replica;
  ASSERT_TRUE(wait_frames(b.stream("psf"), 1, replica));

  // The owner re-creates the stream with another shape and dtype (a new inode).
  src = Stream::create(a.stream("psf"), shmlink::test::spec_of({4, 3}, Dtype::u16), shmlink::OpenMode::PurgeAndCreate);
  std::vector<std::uint16_t> f(12);
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::uint16_t>(40 + i);
  ASSERT_TRUE(src.write(std::span<const std::uint16_t>(f)).ok());
  std::vector<std::uint16_t> got(12);
  EXPECT_TRUE(wait_until([&] {
    try {
      if (!replica.replaced()) return false;
      Stream again = Stream::open(b.stream("psf"));
      if (again.dtype() != Dtype::u16 || again.shape().size() != 2 || again.cnt0() == 0) return false;
      return again.read_copy(std::as_writable_bytes(std::span(got))).ok() && got == f;
    } catch (const shmlink::Error&) {
      return false;
    }
  }));
  EXPECT_EQ(finish(&*rep, r), 0);
  EXPECT_EQ(finish(&*pub, p), 0);
}

TEST(BridgeStream, LostLinkKeepsLastFrameAndComesBack) {
  HostDir a, b;
  Stream src = Stream::create(a.stream("tt"), shmlink::test::spec_of({4}, Dtype::f32));
  ASSERT_TRUE(src.write(std::span<const float>(ramp(4, 10))).ok());
  Shared<Ctl> pub, pub2, rep;
  const pid_t p = start_publisher(&*pub, a.stream("tt"));
  const Running p_guard{&*pub, p};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  const std::string endpoint = pub->endpoint;
  const pid_t r = start_replica(&*rep, "tt", endpoint, b.stream("tt"));
  const Running r_guard{&*rep, r};
  Stream replica;
  ASSERT_TRUE(wait_frames(b.stream("tt"), 1, replica));
  ASSERT_EQ(int_keyword(replica, bridge::kKeywordLink), 1);

  // The owner's service dies: the replica marks the link down and keeps its frame.
  ::kill(p, SIGKILL);
  EXPECT_EQ(shmlink::test::reap(p, 10), -SIGKILL);
  ASSERT_TRUE(wait_until([&] { return int_keyword(replica, bridge::kKeywordLink) == 0; }, 10));
  EXPECT_TRUE(wait_until([&] { return rep->link.load() == 0; }));
  EXPECT_EQ(copy_of(replica), ramp(4, 10));
  EXPECT_EQ(replica.cnt0(), 1U);

  // Back on the same endpoint: the replica reconnects by itself and follows the source again.
  ASSERT_TRUE(src.write(std::span<const float>(ramp(4, 20))).ok());
  const pid_t p2 = start_publisher(&*pub2, a.stream("tt"), endpoint);
  const Running p2_guard{&*pub2, p2};
  ASSERT_TRUE(wait_until([&] { return pub2->ready.load() == 1; }));
  ASSERT_TRUE(wait_frames(b.stream("tt"), 2, replica));
  EXPECT_EQ(copy_of(replica), ramp(4, 20));
  EXPECT_TRUE(wait_until([&] { return int_keyword(replica, bridge::kKeywordLink) == 1; }, 10));
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), 2);
  EXPECT_EQ(finish(&*rep, r), 0);
  EXPECT_EQ(finish(&*pub2, p2), 0);
  EXPECT_EQ(replica.cnt0(), rep->published.load());  // every publication a distinct source frame
}

}  // namespace
