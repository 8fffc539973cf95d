// SPDX-License-Identifier: MIT
// Every-frame mode for recorders (issue 22; docs/design/bridge.md, "Every-frame mode"): an owner
// process runs a Publisher on a rolling-buffer source, replica processes ask for every frame (or
// the latest value), and the test process writes the source and reads the replicas slice by slice
// as a recorder would. Losses are made certain by stopping the owner (SIGSTOP) while the source
// is written past its depth, never by timing. ZeroMQ lives only in the forked children.
#include "bridge/link.hpp"
#include "bridge/wire.hpp"
#include "test_util.hpp"

#include <shmlink/bridge.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>
#include <zmq.h>

#include <signal.h>
#include <sys/prctl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <stop_token>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlink::Dtype;
using shmlink::Errc;
using shmlink::Stream;
using shmlink::test::Shared;
using shmlink::test::spawn;
using shmlink::test::wait_until;
namespace bridge = shmlink::bridge;
namespace wire = shmlink::bridge::wire;
using Mode = bridge::ReplicationMode;

/// Short heartbeats; a generous link timeout: no test here loses its link on purpose.
constexpr bridge::LinkTiming kFast{std::chrono::milliseconds(50), std::chrono::milliseconds(1000)};
constexpr std::size_t kElements = 64;  // u32 elements of one frame

/// What a child shares with the test: stop flag, endpoint, its counters after each 1 ms.
struct Ctl {
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};
  char endpoint[128] = {};
  std::atomic<std::uint64_t> published{0}, duplicates{0}, lost{0}, skipped{0}, source_cnt0{0};
  std::atomic<int> mode{-1};
  std::atomic<std::uint64_t> meta_flags{0}, meta_depth{0}, first_sequence{0};  ///< what a raw peer received
  std::atomic<std::uint64_t> sent{0}, metas{0};  ///< a publisher's frames_sent and metas_sent
  char last_error[256] = {};
  [[nodiscard]] std::string describe() const {
    return "published " + std::to_string(published.load()) + ", lost " + std::to_string(lost.load()) +
           ", skipped " + std::to_string(skipped.load()) + ", source cnt0 " + std::to_string(source_cnt0.load()) +
           ", last error: " + std::string(last_error);
  }
};

/// Stops a child through its flag and reaps it when the test ends (also after a failed ASSERT).
struct Child {
  Ctl* ctl;
  pid_t pid;
  Child(Ctl* c, pid_t p) : ctl(c), pid(p) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { finish(); }
  int finish() {
    if (rc) return *rc;
    ::kill(pid, SIGCONT);  // in case a failed check left it stopped
    ctl->stop = 1;
    rc = shmlink::test::reap(pid, 10);
    return *rc;
  }
  std::optional<int> rc;  ///< its exit status once reaped
};

/// A child's main loop: says it is ready, copies its counters (`publish`) every millisecond until
/// told to stop, then stops its bridge object (`stop`) and copies them a last time.
template <class Publish, class Stop>
int run_until_stopped(Ctl* ctl, Publish publish, Stop stop) {
  ctl->ready = 1;
  while (ctl->stop.load() == 0) {
    publish();
    std::this_thread::sleep_for(1ms);
  }
  stop();
  publish();
  return 0;
}

pid_t start_publisher(Ctl* ctl, const std::string& source, bool accept_every_frame = true,
                      const std::string& endpoint = "tcp://127.0.0.1:*") {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test killed by its timeout
    bridge::PublisherOptions o;
    o.timing = kFast;
    o.accept_every_frame = accept_every_frame;
    bridge::Publisher p(source, endpoint, o);
    std::strncpy(ctl->endpoint, p.endpoint().c_str(), sizeof ctl->endpoint - 1);
    auto publish = [&] {
      ctl->lost = p.stats().frames_lost;
      ctl->sent = p.stats().frames_sent;
      ctl->metas = p.stats().metas_sent;
      std::strncpy(ctl->last_error, p.last_error().c_str(), sizeof ctl->last_error - 1);
    };
    return run_until_stopped(ctl, publish, [&] { p.stop(); });
  });
}

pid_t start_replica(Ctl* ctl, const std::string& name, const std::string& endpoint, const std::string& local, Mode mode) {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    bridge::ReplicaOptions o;
    o.timing = kFast;
    o.local_name = local;
    o.mode = mode;
    o.reconnect_max = std::chrono::milliseconds(200);
    bridge::Replica r(name, endpoint, o);
    auto publish = [&] {
      const auto s = r.stats();
      ctl->published = s.frames_published;
      ctl->duplicates = s.duplicates_dropped;
      ctl->lost = s.lost;
      ctl->skipped = s.skipped;
      ctl->source_cnt0 = s.source_cnt0;
      ctl->mode = static_cast<int>(s.mode);
      std::strncpy(ctl->last_error, r.last_error().c_str(), sizeof ctl->last_error - 1);
    };
    return run_until_stopped(ctl, publish, [&] { r.stop(); });
  });
}

/// Frame k: element 0 is k, element i is k ^ (i * 0x9E3779B9): a torn frame fails whole().
std::vector<std::uint32_t> frame_of(std::uint64_t k) {
  std::vector<std::uint32_t> f(kElements);
  f[0] = static_cast<std::uint32_t>(k);
  for (std::size_t i = 1; i < f.size(); ++i) f[i] = f[0] ^ static_cast<std::uint32_t>(i * 0x9E3779B9U);
  return f;
}
bool whole(const std::vector<std::uint32_t>& f) { return f == frame_of(f[0]); }

/// Stops child `pid` (SIGSTOP) and returns once all its threads are stopped (waitpid with
/// WUNTRACED reports the group stop only then), so nothing it does can race what follows.
bool stop_child(pid_t pid) {
  int st = 0;
  return ::kill(pid, SIGSTOP) == 0 && ::waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st);
}

/// Writes frame cnt0() + 1 into `s` (so frame k is source cnt0 k).
void write_next(Stream& s) {
  const auto f = frame_of(s.cnt0() + 1);
  ASSERT_TRUE(s.write(std::span<const std::uint32_t>(f)).ok());
}

/// A rolling-buffer source of `depth` slices holding frame 1.
Stream rolling_source(const std::string& path, std::uint32_t depth) {
  auto spec = shmlink::test::spec_of({static_cast<std::uint32_t>(kElements)}, Dtype::u32);
  spec.depth = depth;
  Stream s = Stream::create(path, spec);
  write_next(s);
  return s;
}

/// Opens `path` once it exists and has published at least `cnt0` frames.
bool wait_frames(const std::string& path, std::uint64_t cnt0, Stream& out) {
  return wait_until(
      [&] {
        try {
          if (!out.valid()) out = Stream::open(path);
          return out.cnt0() >= cnt0;
        } catch (const shmlink::Error&) {
          return false;
        }
      },
      10);
}

std::int64_t int_keyword(const Stream& s, const char* name) {
  const auto v = s.keyword(name);
  return v && std::holds_alternative<std::int64_t>(*v) ? std::get<std::int64_t>(*v) : -1;
}

/// The recorder: writes the source up to frame `last` while at most depth/2 frames are not yet
/// read from the replica (so nothing can be overwritten, neither at the owner nor on the replica),
/// and reads the replica slice by slice (read_next) from its frame 1 on. Every frame must come
/// whole, in order, once.
void record_every_frame(Stream& src, Stream& replica, std::uint64_t last) {
  replica.set_tail(0);  // from the replica's first frame on
  std::vector<std::uint32_t> f(kElements);
  std::uint64_t recorded = 0;
  while (recorded < last) {
    if (src.cnt0() < last && src.cnt0() - recorded < src.depth() / 2) {
      write_next(src);
      continue;
    }
    std::uint64_t skipped = 0;
    const auto r = replica.read_next(std::as_writable_bytes(std::span(f)), nullptr, &skipped, 5s);
    ASSERT_TRUE(r.ok()) << "after frame " << recorded << ": " << r.message() << ", skipped " << skipped;
    ASSERT_TRUE(whole(f)) << "a torn frame after frame " << recorded;
    ASSERT_EQ(f[0], recorded + 1) << "out of order or twice";
    ++recorded;
  }
}

class EveryFrame : public ::testing::Test {
 protected:
  shmlink::test::TempStreamDir dir;
  [[nodiscard]] std::string path(const std::string& name) const { return dir.path() + "/" + name + ".im.shm"; }
};

TEST(EveryFrameWire, TheModeFlagsDecodeAndOthersStayRefused) {
  auto decoded = [](wire::Header h, std::uint64_t payload) {
    h.payload_bytes = payload;
    const auto b = wire::encode(h);
    wire::Header out;
    return wire::decode(b, payload, out);
  };
  wire::Header hb = wire::make_header(wire::Kind::heartbeat);
  hb.flags = wire::kHeartbeatWant | wire::kHeartbeatReady | wire::kHeartbeatEveryFrame;
  hb.cnt1 = 64;
  EXPECT_EQ(decoded(hb, 0), wire::DecodeError::ok);
  wire::Header meta = wire::make_header(wire::Kind::stream_meta);
  meta.dtype = static_cast<std::uint32_t>(Dtype::u32);
  meta.naxis = 1;
  meta.size[0] = 4;
  meta.flags = wire::kMetaEveryFrame;
  meta.cnt1 = 16;
  EXPECT_EQ(decoded(meta, 0), wire::DecodeError::ok);
  meta.flags = wire::kMetaEveryFrame << 1;
  EXPECT_EQ(decoded(meta, 0), wire::DecodeError::flags);
  hb.flags = wire::kHeartbeatEveryFrame << 1;
  EXPECT_EQ(decoded(hb, 0), wire::DecodeError::flags);
}

TEST_F(EveryFrame, RollingSourceArrivesWholeInOrderOnceWithNothingLost) {
  constexpr std::uint64_t kFrames = 2000;
  Stream src = rolling_source(path("rec"), 32);
  Shared<Ctl> pub, rep;
  Child p{&*pub, start_publisher(&*pub, path("rec"))};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  Child r{&*rep, start_replica(&*rep, "rec", pub->endpoint, path("rec_copy"), Mode::every_frame)};
  Stream replica;
  ASSERT_TRUE(wait_frames(path("rec_copy"), 1, replica)) << rep->describe();
  // The replica is a rolling buffer of the source's depth and frame shape.
  EXPECT_TRUE(replica.rolling());
  EXPECT_EQ(replica.depth(), 32U);
  EXPECT_EQ(replica.frame_bytes(), src.frame_bytes());

  record_every_frame(src, replica, kFrames);

  EXPECT_EQ(replica.cnt0(), kFrames);
  ASSERT_TRUE(wait_until([&] { return rep->source_cnt0.load() == kFrames; })) << rep->describe();
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordLost), 0);
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSourceCnt0), static_cast<std::int64_t>(kFrames));
  EXPECT_EQ(r.finish(), 0);
  EXPECT_EQ(p.finish(), 0);
  EXPECT_EQ(rep->mode.load(), static_cast<int>(Mode::every_frame));
  EXPECT_EQ(rep->published.load(), kFrames) << rep->describe();
  EXPECT_EQ(rep->lost.load(), 0U);
  EXPECT_EQ(rep->duplicates.load(), 0U);
  EXPECT_EQ(pub->lost.load(), 0U) << pub->describe();
}

TEST_F(EveryFrame, SourceFasterThanTheLinkLosesFramesCountedNeverTwiceNorOutOfOrder) {
  constexpr std::uint32_t kDepth = 4;
  Stream src = rolling_source(path("fast"), kDepth);
  Shared<Ctl> pub, rep;
  Child p{&*pub, start_publisher(&*pub, path("fast"))};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  Child r{&*rep, start_replica(&*rep, "fast", pub->endpoint, path("fast_copy"), Mode::every_frame)};
  Stream replica;
  ASSERT_TRUE(wait_frames(path("fast_copy"), 1, replica)) << rep->describe();
  ASSERT_EQ(replica.depth(), kDepth);

  // A recorder thread reads the replica slice by slice: whatever it gets is whole and newer than
  // the frame before (it may itself be lapped on a depth of 4: read_next says so, in order).
  std::atomic<std::uint64_t> recorded{0}, newest{1};
  std::atomic<bool> bad{false};
  std::jthread recorder([&](const std::stop_token& done) {  // joined however the test ends
    Stream rec = Stream::open(path("fast_copy"));
    rec.set_tail(0);
    std::vector<std::uint32_t> f(kElements);
    std::uint64_t prev = 0;
    while (!done.stop_requested()) {
      const auto st = rec.read_next(std::as_writable_bytes(std::span(f)), nullptr, nullptr, 20ms);
      if (st.code() != Errc::ok && st.code() != Errc::overwritten) continue;
      if (!whole(f) || f[0] <= prev) bad = true;
      prev = f[0];
      newest = prev;
      ++recorded;
    }
  });

  // Full speed for a while, then certainly faster than the link: the owner stopped while the
  // source is written 25 times its depth.
  for (int i = 0; i < 3000; ++i) write_next(src);
  ASSERT_TRUE(stop_child(p.pid));
  for (std::uint32_t i = 0; i < 25 * kDepth; ++i) write_next(src);
  ASSERT_EQ(::kill(p.pid, SIGCONT), 0);
  const std::uint64_t last = src.cnt0();
  const bool arrived = wait_until([&] { return rep->source_cnt0.load() == last && newest.load() == last; }, 10);
  recorder.request_stop();
  recorder.join();
  ASSERT_TRUE(arrived) << rep->describe() << ", recorder at " << newest.load();
  EXPECT_FALSE(bad.load()) << "the recorder saw a torn, repeated or older frame";
  EXPECT_GT(recorded.load(), 0U);

  EXPECT_EQ(r.finish(), 0);
  EXPECT_EQ(p.finish(), 0);
  // Each source frame was published once or counted lost, and the losses are reported.
  EXPECT_EQ(rep->published.load() + rep->lost.load(), last) << rep->describe();
  EXPECT_GE(rep->lost.load(), 24U * kDepth);  // the frames overwritten while the owner was stopped
  EXPECT_EQ(replica.cnt0(), rep->published.load());
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordLost), static_cast<std::int64_t>(rep->lost.load()));
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordSkipped), -1);  // not a latest-value replica
  EXPECT_EQ(pub->lost.load(), rep->lost.load()) << pub->describe();
  EXPECT_EQ(rep->duplicates.load(), 0U);
}

TEST_F(EveryFrame, RestartedOwnerResumesAfterTheFrameTheReplicaAcknowledged) {
  Stream src = rolling_source(path("resume"), 32);
  Shared<Ctl> first, second, rep;
  Child p1{&*first, start_publisher(&*first, path("resume"))};
  ASSERT_TRUE(wait_until([&] { return first->ready.load() == 1; }));
  const std::string endpoint = first->endpoint;
  Child r{&*rep, start_replica(&*rep, "resume", endpoint, path("resume_copy"), Mode::every_frame)};
  Stream replica;
  ASSERT_TRUE(wait_frames(path("resume_copy"), 1, replica)) << rep->describe();
  for (int i = 0; i < 9; ++i) write_next(src);
  ASSERT_TRUE(wait_until([&] { return rep->source_cnt0.load() == 10; })) << rep->describe();
  // The owner dies; the source goes on (fewer frames than its depth) before a new owner binds
  // the same endpoint. The replica's heartbeats (same generation, acknowledged 10) resume it.
  ::kill(p1.pid, SIGKILL);
  EXPECT_EQ(p1.finish(), -SIGKILL);
  for (int i = 0; i < 20; ++i) write_next(src);
  Child p2{&*second, start_publisher(&*second, path("resume"), true, endpoint)};
  ASSERT_TRUE(wait_until([&] { return second->ready.load() == 1; }));
  ASSERT_TRUE(wait_until([&] { return rep->source_cnt0.load() == 30; })) << rep->describe();
  // A recorder finds all 30 frames in the replica's history, in order.
  replica.set_tail(0);
  std::vector<std::uint32_t> f(kElements);
  for (std::uint32_t k = 1; k <= 30; ++k) {
    ASSERT_TRUE(replica.read_next(std::as_writable_bytes(std::span(f))).ok()) << "frame " << k;
    EXPECT_EQ(f, frame_of(k));
  }
  EXPECT_EQ(r.finish(), 0);
  EXPECT_EQ(rep->published.load(), 30U) << rep->describe();
  EXPECT_EQ(rep->lost.load(), 0U);
  EXPECT_EQ(rep->duplicates.load(), 0U);
}

TEST_F(EveryFrame, LatestAndEveryFrameReplicasOfOneSourceAtOnce) {
  constexpr std::uint64_t kFrames = 400;
  Stream src = rolling_source(path("both"), 16);
  Shared<Ctl> pub, every, latest;
  Child p{&*pub, start_publisher(&*pub, path("both"))};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  Child e{&*every, start_replica(&*every, "both", pub->endpoint, path("both_every"), Mode::every_frame)};
  Child l{&*latest, start_replica(&*latest, "both", pub->endpoint, path("both_latest"), Mode::latest)};
  Stream every_copy, latest_copy;
  ASSERT_TRUE(wait_frames(path("both_every"), 1, every_copy)) << every->describe();
  ASSERT_TRUE(wait_frames(path("both_latest"), 1, latest_copy)) << latest->describe();
  EXPECT_TRUE(every_copy.rolling());
  EXPECT_FALSE(latest_copy.rolling());  // the newest slice, as a plain stream of the frame's shape
  EXPECT_EQ(latest_copy.frame_bytes(), src.frame_bytes());

  record_every_frame(src, every_copy, kFrames);
  ASSERT_TRUE(wait_until([&] { return latest->source_cnt0.load() == kFrames; })) << latest->describe();
  std::vector<std::uint32_t> f(kElements);
  ASSERT_TRUE(latest_copy.read_copy(std::as_writable_bytes(std::span(f))).ok());
  EXPECT_EQ(f, frame_of(kFrames));

  EXPECT_EQ(e.finish(), 0);
  EXPECT_EQ(l.finish(), 0);
  EXPECT_EQ(every->published.load(), kFrames) << every->describe();
  EXPECT_EQ(every->lost.load(), 0U);
  EXPECT_EQ(latest->mode.load(), static_cast<int>(Mode::latest));
  // The latest-value replica got some frames once each, the others skipped: together all of them.
  EXPECT_EQ(latest->published.load() + latest->skipped.load(), kFrames) << latest->describe();
  EXPECT_EQ(latest_copy.cnt0(), latest->published.load());
  EXPECT_EQ(latest->lost.load(), 0U);
}

TEST_F(EveryFrame, PlainSourceSendsEveryFrameTheOwnerSeesAndCountsTheRest) {
  Stream src = Stream::create(path("plain"), shmlink::test::spec_of({static_cast<std::uint32_t>(kElements)}, Dtype::u32));
  write_next(src);
  Shared<Ctl> pub, rep;
  Child p{&*pub, start_publisher(&*pub, path("plain"))};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  Child r{&*rep, start_replica(&*rep, "plain", pub->endpoint, path("plain_copy"), Mode::every_frame)};
  Stream replica;
  ASSERT_TRUE(wait_frames(path("plain_copy"), 1, replica)) << rep->describe();
  EXPECT_FALSE(replica.rolling());  // the source's depth: 1
  // One frame at a time, each waited for: every one arrives.
  for (std::uint64_t k = 2; k <= 20; ++k) {
    write_next(src);
    ASSERT_TRUE(wait_until([&] { return rep->source_cnt0.load() == k; })) << rep->describe();
  }
  // The owner stopped while 10 frames are written: it can only see the newest.
  ASSERT_TRUE(stop_child(p.pid));
  for (int i = 0; i < 10; ++i) write_next(src);
  ASSERT_EQ(::kill(p.pid, SIGCONT), 0);
  ASSERT_TRUE(wait_until([&] { return rep->source_cnt0.load() == 30; })) << rep->describe();
  std::vector<std::uint32_t> f(kElements);
  ASSERT_TRUE(replica.read_copy(std::as_writable_bytes(std::span(f))).ok());
  EXPECT_EQ(f, frame_of(30));
  EXPECT_EQ(r.finish(), 0);
  EXPECT_EQ(rep->published.load(), 21U) << rep->describe();
  EXPECT_EQ(rep->lost.load(), 9U);
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordLost), 9);
}

/// A raw DEALER (no Replica) that asks `stream`'s owner at `endpoint` for every frame with the
/// acknowledgement `ack` of generation `generation` and a window of 2^40 (clamped by the owner),
/// and notes what its stream_meta says and the cnt0 of the first frame it gets.
pid_t start_raw_subscriber(Ctl* ctl, const std::string& stream, const std::string& endpoint,
                           std::uint64_t generation, std::uint64_t ack) {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    namespace detail = shmlink::bridge::detail;
    detail::Context ctx;
    detail::Socket s(ctx.get(), ZMQ_DEALER, "a raw subscriber");
    s.attach(endpoint, true);
    wire::Header hb = wire::make_header(wire::Kind::heartbeat);
    hb.flags = wire::kHeartbeatWant | wire::kHeartbeatReady | wire::kHeartbeatEveryFrame;
    hb.generation = generation;
    hb.sequence = ack;
    hb.cnt1 = std::uint64_t{1} << 40;
    if (!detail::send_message(s.get(), {}, stream, hb)) return 2;
    detail::Parts m;
    zmq_pollitem_t item{s.get(), 0, ZMQ_POLLIN, 0};
    for (int slice = 0; slice < 100 && ctl->first_sequence.load() == 0; ++slice) {
      ::zmq_poll(&item, 1, 100);
      while (ctl->first_sequence.load() == 0 && detail::recv_parts(s.get(), m)) {
        if (m.parts.size() < 2) return 3;
        wire::Header h;
        const std::uint64_t payload = m.parts.size() == 3 ? m.parts[2].size() : 0;
        if (wire::decode(m.parts[1], payload, h) != wire::DecodeError::ok) return 4;
        if (h.kind == static_cast<std::uint16_t>(wire::Kind::stream_meta)) {
          ctl->meta_flags = h.flags;
          ctl->meta_depth = h.cnt1;
        } else if (h.kind == static_cast<std::uint16_t>(wire::Kind::stream_frame)) {
          ctl->first_sequence = h.sequence;
        }
      }
    }
    return ctl->first_sequence.load() != 0 ? 0 : 5;
  });
}

TEST_F(EveryFrame, AcknowledgementBeyondTheSourceStartsAtTheNewestFrame) {
  Stream src = rolling_source(path("liar"), 8);
  for (int i = 0; i < 4; ++i) write_next(src);
  Shared<Ctl> pub, raw;
  Child p{&*pub, start_publisher(&*pub, path("liar"))};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  // The generation of a stream file is its creation time: the peer claims to have had every
  // frame of this very source up to 2^64 - 1.
  const auto generation = static_cast<std::uint64_t>(src.creation_time_ns());
  ASSERT_NE(generation, 0U);
  Child r{&*raw, start_raw_subscriber(&*raw, "liar", pub->endpoint, generation, ~std::uint64_t{0})};
  EXPECT_EQ(r.finish(), 0) << pub->describe();
  EXPECT_EQ(raw->meta_flags.load(), wire::kMetaEveryFrame);
  EXPECT_EQ(raw->meta_depth.load(), 8U);
  EXPECT_EQ(raw->first_sequence.load(), 5U);  // the newest frame, nothing counted lost
  EXPECT_EQ(p.finish(), 0);
  EXPECT_EQ(pub->lost.load(), 0U);
}

/// A raw DEALER that asks `stream`'s owner for every frame with a window of `window` frames,
/// then reads nothing until told to stop.
pid_t start_silent_subscriber(Ctl* ctl, const std::string& stream, const std::string& endpoint, std::uint64_t window) {
  return spawn([=] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    namespace detail = shmlink::bridge::detail;
    detail::Context ctx;
    detail::Socket s(ctx.get(), ZMQ_DEALER, "a silent subscriber");
    s.set(ZMQ_RCVHWM, 4);  // what arrives stays queued at the owner, not here
    s.attach(endpoint, true);
    wire::Header hb = wire::make_header(wire::Kind::heartbeat);
    hb.flags = wire::kHeartbeatWant | wire::kHeartbeatReady | wire::kHeartbeatEveryFrame;
    hb.cnt1 = window;
    if (!detail::send_message(s.get(), {}, stream, hb)) return 2;
    ctl->ready = 1;
    while (ctl->stop.load() == 0) {  // heartbeats keep the subscription; nothing is read
      std::this_thread::sleep_for(20ms);
      (void)detail::send_message(s.get(), {}, stream, hb);
    }
    return 0;
  });
}

// The owner's send high-water mark was 16 messages: a window above it was never filled while the
// replica was busy (frames waited for the next acknowledgement instead of travelling). With 1 MiB
// frames the socket buffers hold a few, so a subscriber that reads nothing (and queues at most 4)
// had got about 30 of its 64 before the fix; now the whole window leaves, and not one frame more.
TEST_F(EveryFrame, AWindowAboveSixteenFramesLeavesWholeWhileTheSubscriberReadsNothing) {
  constexpr std::uint32_t kWindow = 64;
  constexpr std::uint32_t kMiB = 1U << 18;  // u32 elements of a 1 MiB frame
  auto spec = shmlink::test::spec_of({kMiB}, Dtype::u32);
  spec.depth = kWindow + 16;
  Stream src = Stream::create(path("big"), spec);
  Shared<Ctl> pub, raw;
  Child p{&*pub, start_publisher(&*pub, path("big"))};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  Child r{&*raw, start_silent_subscriber(&*raw, "big", pub->endpoint, kWindow)};
  ASSERT_TRUE(wait_until([&] { return pub->metas.load() == 1; })) << pub->describe();
  std::vector<std::uint32_t> f(kMiB);
  for (std::uint32_t k = 1; k < spec.depth; ++k) {  // within the depth: nothing is lost
    f[0] = k;
    ASSERT_TRUE(src.write(std::span<const std::uint32_t>(f)).ok());
  }
  EXPECT_TRUE(wait_until([&] { return pub->sent.load() >= kWindow; }, 10))
      << "frames sent: " << pub->sent.load() << "; " << pub->describe();
  EXPECT_EQ(r.finish(), 0);
  EXPECT_EQ(p.finish(), 0);
  EXPECT_EQ(pub->sent.load(), kWindow) << "the window bounds what is sent unacknowledged";
  EXPECT_EQ(pub->lost.load(), 0U);
}

TEST_F(EveryFrame, PublisherThatRefusesEveryFrameServesTheLatestValueAndSaysSo) {
  Stream src = rolling_source(path("refuse"), 8);
  Shared<Ctl> pub, rep;
  Child p{&*pub, start_publisher(&*pub, path("refuse"), /*accept_every_frame=*/false)};
  ASSERT_TRUE(wait_until([&] { return pub->ready.load() == 1; }));
  Child r{&*rep, start_replica(&*rep, "refuse", pub->endpoint, path("refuse_copy"), Mode::every_frame)};
  Stream replica;
  ASSERT_TRUE(wait_frames(path("refuse_copy"), 1, replica)) << rep->describe();
  EXPECT_FALSE(replica.rolling());  // a latest-value replica: the frame's shape
  for (int i = 0; i < 5; ++i) write_next(src);
  ASSERT_TRUE(wait_until([&] { return rep->source_cnt0.load() == 6; })) << rep->describe();
  std::vector<std::uint32_t> f(kElements);
  ASSERT_TRUE(replica.read_copy(std::as_writable_bytes(std::span(f))).ok());
  EXPECT_EQ(f, frame_of(6));
  EXPECT_EQ(r.finish(), 0);
  EXPECT_EQ(rep->mode.load(), static_cast<int>(Mode::latest));
  EXPECT_NE(std::string(rep->last_error).find("does not accept every-frame mode"), std::string::npos) << rep->last_error;
  EXPECT_EQ(int_keyword(replica, bridge::kKeywordLost), -1);
}

}  // namespace
