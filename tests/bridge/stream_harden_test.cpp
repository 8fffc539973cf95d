// SPDX-License-Identifier: MIT
// Hardening of bridged streams (docs/design/bridge.md): a restarted Replica does not publish again
// a frame its file already holds, a stream_meta never replaces a local stream that is not a
// replica of that origin nor announces a frame above the wire limit, a read-only Publisher drops
// a connection sending an oversized part, and stop() may come from two threads at once. Owner and
// replica run in this process on real sockets, each stream in its own directory.
#include <shmlink/bridge.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <zmq.hpp>

#include <chrono>
#include <thread>

#include "bridge/wire.hpp"
#include "bridge_queue_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
namespace bridge = shmlink::bridge;
namespace wire = shmlink::bridge::wire;
using shmlink::Stream;
using shmlink::test::HostDir;

namespace {

const bridge::LinkTiming kFast{50ms, 300ms};

/// Waits (3 s at most) for `done`.
bool eventually(const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + 3s;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

Stream make_source(const HostDir& a) {
  Stream s = Stream::create(a.path() + "/s.im.shm", shmlink::test::spec_of({4}, shmlink::Dtype::f64));
  const std::vector<double> v{1, 2, 3, 4};
  EXPECT_TRUE(s.write(std::span<const double>(v)).ok());
  return s;
}

bridge::ReplicaOptions replica_options(const HostDir& b) {
  bridge::ReplicaOptions o;
  o.timing = kFast;
  o.local_name = b.path() + "/s.im.shm";
  o.origin = "owner";
  return o;
}

/// A hand-made owner: a raw ROUTER on loopback that a Replica connects to (endpoint()), and
/// that answers the replica's first heartbeat with the stream_meta `h` for stream "s"
/// (send_meta(); no keywords).
struct RawOwner {
  zmq::context_t ctx;
  zmq::socket_t sock{ctx, zmq::socket_type::router};
  RawOwner() {
    sock.set(zmq::sockopt::linger, 0);
    sock.bind("tcp://127.0.0.1:*");
  }
  std::string endpoint() { return sock.get(zmq::sockopt::last_endpoint); }
  /// @return false when no heartbeat came (the routing id is unknown).
  bool send_meta(const wire::Header& h) {
    zmq::message_t id, rest;
    if (!sock.recv(id)) return false;  // the replica's first heartbeat: its routing id
    while (sock.get(zmq::sockopt::rcvmore)) (void)sock.recv(rest);
    const auto head = wire::encode(h);
    sock.send(id, zmq::send_flags::sndmore);
    sock.send(zmq::buffer(std::string("s")), zmq::send_flags::sndmore);
    sock.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::none);
    return true;
  }
};

}  // namespace

// A replica stopped and started again on its file: the owner sends the newest frame, which the
// file already holds (BR_SRC_GEN and BR_SRC_CNT0 say so): dropped, not published a second time.
TEST(BridgeStreamHarden, RestartedReplicaDoesNotPublishAFrameItAlreadyHas) {
  HostDir a, b;
  Stream src = make_source(a);
  bridge::PublisherOptions po;
  po.timing = kFast;
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  {
    bridge::Replica first("s", pub.endpoint(), replica_options(b));
    ASSERT_TRUE(first.wait_first_frame(3s)) << first.last_error();
  }
  Stream local = Stream::open(b.path() + "/s.im.shm");
  ASSERT_EQ(local.cnt0(), 1u);
  bridge::Replica again("s", pub.endpoint(), replica_options(b));
  ASSERT_TRUE(eventually([&] { return again.stats().duplicates_dropped + again.stats().frames_published >= 1; }));
  EXPECT_EQ(again.stats().frames_published, 0u);
  EXPECT_EQ(local.cnt0(), 1u) << "the frame the replica had was published again";
  const std::vector<double> v{5, 6, 7, 8};
  ASSERT_TRUE(src.write(std::span<const double>(v)).ok());
  ASSERT_TRUE(eventually([&] { return local.cnt0() == 2; })) << again.last_error();
}

// A local stream of the same name that is not a replica of this origin: the stream_meta is
// refused, naming the file, and the stream is left as it was (same inode, same shape).
TEST(BridgeStreamHarden, MetaNeverReplacesALocalStreamThatIsNotAReplica) {
  HostDir a, b;
  Stream src = make_source(a);
  Stream mine = Stream::create(b.path() + "/s.im.shm", shmlink::test::spec_of({3}, shmlink::Dtype::i32));
  const auto inode = mine.inode();
  bridge::PublisherOptions po;
  po.timing = kFast;
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  bridge::Replica r("s", pub.endpoint(), replica_options(b));
  ASSERT_TRUE(eventually([&] { return r.stats().refused >= 1; })) << r.last_error();
  EXPECT_NE(r.last_error().find(b.path() + "/s.im.shm"), std::string::npos) << r.last_error();
  EXPECT_FALSE(mine.replaced());
  EXPECT_EQ(Stream::open(b.path() + "/s.im.shm").inode(), inode);
  EXPECT_EQ(mine.cnt0(), 0u);
}

// A hand-made owner (raw ROUTER) announcing a frame of 4 GiB + 64 KiB: refused, no file made.
TEST(BridgeStreamHarden, MetaAnnouncingAFrameAboveTheWireLimitIsRefused) {
  HostDir b;
  RawOwner owner;
  bridge::Replica r("s", owner.endpoint(), replica_options(b));
  wire::Header h = wire::make_header(wire::Kind::stream_meta);
  h.generation = 7;
  h.dtype = static_cast<std::uint32_t>(shmlink::Dtype::u8);
  h.naxis = 2;
  h.size[0] = 65537;
  h.size[1] = 65536;
  ASSERT_TRUE(owner.send_meta(h));
  ASSERT_TRUE(eventually([&] { return r.stats().refused >= 1; })) << r.last_error();
  EXPECT_EQ(r.stats().metas, 0u);
  EXPECT_FALSE(std::filesystem::exists(b.path() + "/s.im.shm"));
}

// A hand-made owner granting every-frame mode with a rolling buffer of 65535 frames of 1 MiB
// (64 GiB of /dev/shm): refused before any file is made (the whole buffer is capped at 4 GiB).
TEST(BridgeStreamHarden, EveryFrameMetaAnnouncingARollingBufferAboveFourGiBIsRefused) {
  HostDir b;
  RawOwner owner;
  auto o = replica_options(b);
  o.mode = bridge::ReplicationMode::every_frame;
  bridge::Replica r("s", owner.endpoint(), o);
  wire::Header h = wire::make_header(wire::Kind::stream_meta);
  h.generation = 7;
  h.flags = wire::kMetaEveryFrame;
  h.cnt1 = 65535;  // depth
  h.dtype = static_cast<std::uint32_t>(shmlink::Dtype::u8);
  h.naxis = 2;
  h.size[0] = 1024;
  h.size[1] = 1024;
  ASSERT_TRUE(owner.send_meta(h));
  ASSERT_TRUE(eventually([&] { return r.stats().refused >= 1; })) << r.last_error();
  EXPECT_NE(r.last_error().find("above the limit of 4 GiB"), std::string::npos) << r.last_error();
  EXPECT_EQ(r.stats().metas, 0u);
  EXPECT_FALSE(std::filesystem::exists(b.path() + "/s.im.shm"));
}

// A read-only publisher takes only [topic, header]: a part above that drops the connection in
// libzmq before anything is read, and other subscribers are served on.
TEST(BridgeStreamHarden, ReadOnlyPublisherDropsAConnectionSendingAnOversizedPart) {
  HostDir a, b;
  Stream src = make_source(a);
  bridge::PublisherOptions po;
  po.timing = kFast;
  po.read_only = true;
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  zmq::context_t ctx;
  zmq::socket_t big(ctx, zmq::socket_type::dealer);
  big.set(zmq::sockopt::linger, 0);
  zmq::socket_t mon(ctx, zmq::socket_type::pair);
  ASSERT_EQ(::zmq_socket_monitor(big.handle(), "inproc://pub-monitor", ZMQ_EVENT_DISCONNECTED), 0);
  mon.connect("inproc://pub-monitor");
  big.connect(pub.endpoint());
  wire::Header h = wire::make_header(wire::Kind::heartbeat);
  h.flags = wire::kHeartbeatWant;
  const auto head = wire::encode(h);
  big.send(zmq::buffer(std::string("s")), zmq::send_flags::sndmore);
  big.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::sndmore);
  big.send(zmq::buffer(std::vector<std::byte>(wire::kMinPartLimit + 1)), zmq::send_flags::none);
  zmq::pollitem_t item{mon.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, 3s), 1) << "the connection sending an oversized part was kept";
  EXPECT_EQ(pub.stats().refused, 0u) << pub.last_error();
  bridge::Replica r("s", pub.endpoint(), replica_options(b));
  EXPECT_TRUE(r.wait_first_frame(3s)) << r.last_error();
}

// stop() called from two threads at once (and again by the destructor): one joins, none crashes.
// The replica's release heartbeat leaves before its socket closes (a short linger): the owner
// forgets it at once, long before its link_timeout of 10 s.
TEST(BridgeStreamHarden, StopFromTwoThreadsAtOnceAndReleaseArrives) {
  HostDir a, b;
  Stream src = make_source(a);
  bridge::PublisherOptions po;
  po.timing = {50ms, 10s};
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  auto ro = replica_options(b);
  ro.timing = {50ms, 10s};
  bridge::Replica r("s", pub.endpoint(), ro);
  ASSERT_TRUE(r.wait_first_frame(3s));
  ASSERT_TRUE(eventually([&] { return pub.stats().subscribers == 1; }));
  std::thread t1([&] { r.stop(); });
  std::thread t2([&] { r.stop(); });
  t1.join();
  t2.join();
  EXPECT_TRUE(eventually([&] { return pub.stats().subscribers == 0; })) << "the release heartbeat was lost";
  std::thread t3([&] { pub.stop(); });
  std::thread t4([&] { pub.stop(); });
  t3.join();
  t4.join();
}

// A source created and never written (cnt0 0) has no frame to wait for: the replica is ready once
// its file exists (the service answers OPEN then), and the first write arrives as frame 1.
TEST(BridgeStreamHarden, ReplicaOfANeverWrittenSourceIsReadyWithoutAFrame) {
  HostDir a, b;
  Stream src = Stream::create(a.path() + "/s.im.shm", shmlink::test::spec_of({4}, shmlink::Dtype::f64));
  bridge::PublisherOptions po;
  po.timing = kFast;
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  bridge::Replica r("s", pub.endpoint(), replica_options(b));
  ASSERT_TRUE(r.wait_first_frame(3s)) << r.last_error();
  Stream local = Stream::open(b.path() + "/s.im.shm");
  EXPECT_EQ(local.cnt0(), 0u);
  EXPECT_EQ(r.stats().frames_published, 0u);
  const std::vector<double> v{5, 6, 7, 8};
  ASSERT_TRUE(src.write(std::span<const double>(v)).ok());
  ASSERT_TRUE(eventually([&] { return local.cnt0() == 1; })) << r.last_error();
}

// A replica restarted on its file while the source is not written: the file already holds the
// newest frame (its resend is dropped as a duplicate), so the replica is ready at the meta; before,
// wait_first_frame() (and the service's OPEN) waited for a frame that never came.
TEST(BridgeStreamHarden, RestartedReplicaOfAStillSourceIsReadyAtOnce) {
  HostDir a, b;
  Stream src = make_source(a);
  bridge::PublisherOptions po;
  po.timing = kFast;
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  {
    bridge::Replica first("s", pub.endpoint(), replica_options(b));
    ASSERT_TRUE(first.wait_first_frame(3s)) << first.last_error();
  }
  bridge::Replica again("s", pub.endpoint(), replica_options(b));
  EXPECT_TRUE(again.wait_first_frame(3s)) << again.last_error();
  EXPECT_EQ(again.stats().frames_published, 0u);
}

// The owner's watcher sleeps on a semaphore slot of its own (no polling when idle): a writer
// that posts the semaphores wakes it, and one that posts none (post_semaphores = false, as a
// writer that only increments cnt0) is still found and sent, by every frame of a run of them.
TEST(BridgeStreamHarden, WritersThatPostNoSemaphoreStillReachTheReplica) {
  HostDir a, b;
  Stream src = make_source(a);
  bridge::PublisherOptions po;
  po.timing = kFast;
  bridge::Publisher pub(a.path() + "/s.im.shm", "tcp://127.0.0.1:*", po);
  bridge::Replica r("s", pub.endpoint(), replica_options(b));
  ASSERT_TRUE(r.wait_first_frame(3s)) << r.last_error();
  shmlink::WriteOptions quiet;
  quiet.post_semaphores = false;
  for (int i = 0; i < 6; ++i) {
    const std::vector<double> v{double(i), 0, 0, 0};
    ASSERT_TRUE(src.write(std::span<const double>(v), i % 3 == 2 ? shmlink::WriteOptions{} : quiet).ok());
    const std::uint64_t want = src.cnt0();
    ASSERT_TRUE(eventually([&] { return r.stats().source_cnt0 == want; }))
        << "frame " << want << " (posting: " << (i % 3 == 2) << ") never reached the replica: " << r.last_error();
  }
}
