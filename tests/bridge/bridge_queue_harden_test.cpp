// SPDX-License-Identifier: MIT
// Hardening of bridged queues (docs/design/bridge.md, "Queues: exactly once"): both ends in this
// process, stepped in turn, over real loopback sockets and real queue and state files in two
// stream directories ("hosts"). Each case drives one rule: a fresh sender meeting a receiver that
// is ahead, a renumbering interrupted by a crash, a damaged offset, one end per state file, a
// hostile hello, acks routed to their sender, an MPMC receiving queue, re-created queues, and
// oversized messages.
#include <shmlink/bridge_queue.hpp>
#include <shmlink/queue.hpp>

#include <gtest/gtest.h>

#include <zmq.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "bridge/queue_state.hpp"
#include "bridge/queue_wire.hpp"
#include "bridge_queue_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
namespace qw = shmlink::bridge::queue_wire;
using shmlink::Errc;
using shmlink::Queue;
using shmlink::bridge::QueueReceiver;
using shmlink::bridge::QueueSender;
using shmlink::bridge::QueueSenderOptions;
using shmlink::test::free_port;
using shmlink::test::HostDir;
using shmlink::test::tcp;

namespace {

constexpr std::uint32_t kValues = 2;

/// The sender's state file of queue "q" in `dir`.
std::string tx_state(const shmlink::test::HostDir& dir) { return dir.path() + "/q.queue.bridge-tx"; }


Queue make_queue(const std::string& path, shmlink::QueueKind kind = shmlink::QueueKind::spsc,
                 shmlink::OpenMode mode = shmlink::OpenMode::ExclusiveCreate) {
  shmlink::QueueSpec spec;
  spec.capacity = 16;
  spec.max_values = kValues;
  spec.kind = kind;
  return Queue::create(path, spec, mode);
}

void push(Queue& q, std::int64_t value) {
  shmlink::Sample s;
  s.flags = shmlink::kSampleHasData;
  s.values = {shmlink::SignalValue::of(value)};
  ASSERT_TRUE(q.try_push(s).ok()) << value;
}

/// Steps both ends until `done` (3 s at most); false when it never came.
bool step_until(QueueSender* tx, QueueReceiver& rx, const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < end) {
    if (tx != nullptr) {
      EXPECT_TRUE(tx->step(1ms).ok()) << tx->stats().last_problem;
    }
    EXPECT_TRUE(rx.step(1ms).ok()) << rx.stats().last_problem;
    if (done()) return true;
  }
  return false;
}

/// Pops `n` samples from the queue at `path` while stepping; their first values.
std::vector<std::int64_t> receive(QueueSender* tx, QueueReceiver& rx, const std::string& path, std::size_t n) {
  std::vector<std::int64_t> got;
  Queue q;
  shmlink::Sample out;
  (void)step_until(tx, rx, [&] {
    if (!q.valid() || q.replaced()) {
      q = Queue();
      if (::access(path.c_str(), F_OK) == 0) q = Queue::open(path);
    }
    while (q.valid() && got.size() < n && q.try_pop(out).ok()) got.push_back(out.values.at(0).i);
    return got.size() >= n;
  });
  return got;
}

std::vector<std::int64_t> iota(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> v;
  for (std::int64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

/// Reads / writes a u64 field of a state file.
std::uint64_t peek(const std::string& path, std::size_t offset) {
  std::uint64_t v = 0;
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_EQ(::pread(fd, &v, sizeof v, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof v));
  ::close(fd);
  return v;
}
void poke(const std::string& path, std::size_t offset, std::uint64_t v) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  EXPECT_EQ(::pwrite(fd, &v, sizeof v, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof v));
  ::close(fd);
}

void send_parts(zmq::socket_t& s, const qw::Header& h, const std::vector<std::byte>& payload) {
  const auto head = qw::encode_header(h);
  s.send(zmq::buffer(std::string("q")), zmq::send_flags::sndmore);
  if (payload.empty()) {
    s.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::none);
  } else {
    s.send(zmq::buffer(head.data(), head.size()), zmq::send_flags::sndmore);
    s.send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::none);
  }
}

void send_hello(zmq::socket_t& s, std::uint32_t values = kValues) {
  qw::Header h;
  h.kind = qw::Kind::hello;
  h.sample_bytes = values * 8;
  h.capacity = 16;
  send_parts(s, h, {});
}

/// A hello's reply arrived on `s` (one message read, without waiting).
bool got_reply(zmq::socket_t& s) {
  std::vector<zmq::message_t> parts;
  zmq::message_t m;
  if (!s.recv(m, zmq::recv_flags::dontwait)) return false;
  parts.push_back(std::move(m));
  while (parts.back().more()) {
    zmq::message_t more;
    (void)s.recv(more);
    parts.push_back(std::move(more));
  }
  if (parts.size() != 2) return false;
  std::string why;
  auto h = qw::decode_header({static_cast<const std::byte*>(parts[1].data()), parts[1].size()}, 0, why);
  return h && h->kind == qw::Kind::ack && (h->flags & qw::kAckReply) != 0;
}

zmq::socket_t raw_dealer(zmq::context_t& ctx, const std::string& endpoint) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  return s;
}

}  // namespace

// A new sender (fresh state file, a re-created source queue whose consumer index restarted at 0)
// meets a receiver that already pushed 5: the sender must not have popped before the answer, so
// that its empty window is renumbered to 5 and the 3 waiting samples go through.
TEST(BridgeQueueHarden, FreshSenderMeetsReceiverThatIsAhead) {
  HostDir a, b;
  const std::string ep = tcp(free_port());
  QueueReceiver rx = QueueReceiver::open({b.queue(), ep});
  {
    Queue src = make_queue(a.queue());
    for (int i = 0; i < 5; ++i) push(src, i);
    QueueSender tx = QueueSender::open({a.queue(), ep});
    ASSERT_EQ(receive(&tx, rx, b.queue(), 5), iota(0, 5));
  }
  std::filesystem::remove(tx_state(a));
  Queue src = make_queue(a.queue(), shmlink::QueueKind::spsc, shmlink::OpenMode::PurgeAndCreate);
  for (int i = 5; i < 8; ++i) push(src, i);  // waiting before the new sender starts
  QueueSender tx = QueueSender::open({a.queue(), ep});
  EXPECT_EQ(receive(&tx, rx, b.queue(), 3), iota(5, 8)) << tx.stats().last_problem;
  EXPECT_EQ(tx.stats().refused, 0u) << tx.stats().last_problem;
}

// A crash between the stores of a renumbering: renumber_offset and renumber_end written, end
// moved, acked not. The next sender finishes the renumbering instead of refusing the file.
TEST(BridgeQueueHarden, RenumberingInterruptedByACrashIsFinishedAtStart) {
  HostDir a;
  Queue src = make_queue(a.queue());
  { QueueSender first = QueueSender::open({a.queue(), ">tcp://127.0.0.1:1"}); }
  using H = shmlink::bridge::TxStateHeader;
  poke(tx_state(a), offsetof(H, renumber_offset), 100);
  poke(tx_state(a), offsetof(H, renumber_end), 100);
  poke(tx_state(a), offsetof(H, end), 100);  // acked still 0: 100 numbers "in" a window of 16
  QueueSender tx = QueueSender::open({a.queue(), ">tcp://127.0.0.1:1"});
  EXPECT_EQ(tx.stats().acked, 100u);
  EXPECT_EQ(tx.stats().end, 100u);
  EXPECT_EQ(peek(tx_state(a), offsetof(H, offset)), 100u);
  EXPECT_EQ(peek(tx_state(a), offsetof(H, renumber_end)), 0u);
}

// An offset damaged downwards claims that samples still in the source were already copied into
// the window: they would be skipped. The sender refuses to start, naming the file and the field.
TEST(BridgeQueueHarden, DamagedOffsetIsRefusedRatherThanSkippingSamples) {
  HostDir a;
  Queue src = make_queue(a.queue());
  for (int i = 0; i < 3; ++i) push(src, i);
  { QueueSender first = QueueSender::open({a.queue(), ">tcp://127.0.0.1:1"}); }
  // As after a renumbering to 10 (acked = end = offset = 10, consumer index 0), with the offset
  // damaged to 5: numbers 5..9 would be taken for 5 samples popped but not freed.
  using H = shmlink::bridge::TxStateHeader;
  poke(tx_state(a), offsetof(H, acked), 10);
  poke(tx_state(a), offsetof(H, end), 10);
  poke(tx_state(a), offsetof(H, offset), 5);
  try {
    (void)QueueSender::open({a.queue(), ">tcp://127.0.0.1:1"});
    FAIL() << "a damaged offset was accepted";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find(tx_state(a)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
  }
}

// One sender per state file: a second one is refused while the first holds it.
TEST(BridgeQueueHarden, SecondSenderOnOneStateFileIsBusy) {
  HostDir a;
  Queue src = make_queue(a.queue());
  auto first = std::make_unique<QueueSender>(QueueSender::open({a.queue(), ">tcp://127.0.0.1:1"}));
  try {
    (void)QueueSender::open({a.queue(), ">tcp://127.0.0.1:2"});
    FAIL() << "two senders share one state file";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::busy);
    EXPECT_NE(std::string(e.what()).find(tx_state(a)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(pid " + std::to_string(::getpid()) + ")"), std::string::npos) << e.what();
  }
  first.reset();  // released with the first sender
  EXPECT_NO_THROW((void)QueueSender::open({a.queue(), ">tcp://127.0.0.1:2"}));
}

// A hello the receiver cannot follow (3 values per sample for a queue of 2) is counted and
// described; step() still says ok and the receiver answers the right sender afterwards.
TEST(BridgeQueueHarden, HostileHelloIsCountedAndNeverStopsTheReceiver) {
  HostDir b;
  Queue dst = make_queue(b.queue());
  const std::string ep = tcp(free_port());
  QueueReceiver rx = QueueReceiver::open({b.queue(), ep});
  zmq::context_t ctx;
  zmq::socket_t s = raw_dealer(ctx, ep);
  send_hello(s, 3);
  const auto end = std::chrono::steady_clock::now() + 3s;
  while (rx.stats().refused == 0 && std::chrono::steady_clock::now() < end) ASSERT_TRUE(rx.step(5ms).ok());
  EXPECT_EQ(rx.stats().refused, 1u);
  EXPECT_NE(rx.stats().last_problem.find("refused a hello"), std::string::npos) << rx.stats().last_problem;
  send_hello(s);
  bool answered = false;
  while (!answered && std::chrono::steady_clock::now() < end) {
    ASSERT_TRUE(rx.step(5ms).ok()) << rx.stats().last_problem;
    answered = got_reply(s);
  }
  EXPECT_TRUE(answered);
}

// Two senders connected to one receiver: every answer goes to the connection whose hello it
// answers (a DEALER would deal them round-robin, half of them to the other connection).
TEST(BridgeQueueHarden, AcksGoToTheConnectionTheyAnswer) {
  HostDir b;
  const std::string ep = tcp(free_port());
  QueueReceiver rx = QueueReceiver::open({b.queue(), ep});
  std::atomic<bool> stop{false};
  std::thread runner([&] { (void)rx.run(stop); });
  zmq::context_t ctx;
  zmq::socket_t other = raw_dealer(ctx, ep);
  const auto until = std::chrono::steady_clock::now() + 3s;
  bool connected = false;  // `other` is known to the receiver once one of its hellos is answered
  while (!connected && std::chrono::steady_clock::now() < until) {
    send_hello(other);
    std::this_thread::sleep_for(10ms);
    while (got_reply(other)) connected = true;
  }
  ASSERT_TRUE(connected);
  zmq::socket_t asker = raw_dealer(ctx, ep);
  send_hello(asker);  // the first may be sent before the connection is up: DEALER queues it
  int replies = 0;
  for (int sent = 1; replies < 4 && std::chrono::steady_clock::now() < until;) {
    if (got_reply(asker)) {
      ++replies;
      if (sent < 4) send_hello(asker), ++sent;
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  stop = true;
  runner.join();
  EXPECT_EQ(replies, 4) << "answers to this connection went to the other one";
  EXPECT_FALSE(got_reply(other));
}

// An existing MPMC queue cannot be a receiving queue (the receiver must be its only producer).
TEST(BridgeQueueHarden, MpmcReceivingQueueIsRefused) {
  HostDir b;
  Queue dst = make_queue(b.queue(), shmlink::QueueKind::mpmc);
  try {
    (void)QueueReceiver::open({b.queue(), tcp(free_port())});
    FAIL() << "an MPMC receiving queue was accepted";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::layout);
    EXPECT_NE(std::string(e.what()).find(b.queue()), std::string::npos) << e.what();
  }
}

// Queues re-created while both ends run: the sender follows its source, the receiver its queue.
TEST(BridgeQueueHarden, ReCreatedQueuesAreFollowedWhileRunning) {
  HostDir a, b;
  const std::string ep = tcp(free_port());
  QueueReceiver rx = QueueReceiver::open({b.queue(), ep});
  Queue src = make_queue(a.queue());
  QueueSender tx = QueueSender::open({a.queue(), ep});
  for (int i = 0; i < 3; ++i) push(src, i);
  ASSERT_EQ(receive(&tx, rx, b.queue(), 3), iota(0, 3));
  src = make_queue(a.queue(), shmlink::QueueKind::spsc, shmlink::OpenMode::PurgeAndCreate);
  for (int i = 3; i < 6; ++i) push(src, i);
  EXPECT_EQ(receive(&tx, rx, b.queue(), 3), iota(3, 6)) << tx.stats().last_problem;
  (void)make_queue(b.queue(), shmlink::QueueKind::spsc, shmlink::OpenMode::PurgeAndCreate);
  for (int i = 6; i < 9; ++i) push(src, i);
  EXPECT_EQ(receive(&tx, rx, b.queue(), 3), iota(6, 9)) << rx.stats().last_problem;
}

// A message part above the largest legal one: libzmq drops that connection before the receiver
// reads it (nothing refused, nothing allocated for it), and the receiver serves others on.
TEST(BridgeQueueHarden, OversizedMessageDisconnectsThePeerOnly) {
  HostDir b;
  Queue dst = make_queue(b.queue());
  const std::string ep = tcp(free_port());
  QueueReceiver rx = QueueReceiver::open({b.queue(), ep});
  zmq::context_t ctx;
  zmq::socket_t big = raw_dealer(ctx, ep);
  zmq::socket_t mon(ctx, zmq::socket_type::pair);
  ::zmq_socket_monitor(big.handle(), "inproc://big-monitor", ZMQ_EVENT_DISCONNECTED);
  mon.connect("inproc://big-monitor");
  qw::Header h;
  h.kind = qw::Kind::samples;
  h.sample_bytes = kValues * 8;
  h.capacity = 16;
  // one byte above any legal part (and above the floor left for the CURVE handshake)
  h.payload_bytes = std::max<std::uint64_t>(qw::max_receiver_part(kValues), shmlink::bridge::wire::kMinPartLimit) + 1;
  h.count = static_cast<std::uint32_t>(h.payload_bytes / qw::record_bytes(kValues));
  send_parts(big, h, std::vector<std::byte>(h.payload_bytes));
  bool dropped = false;
  const auto end = std::chrono::steady_clock::now() + 3s;
  while (!dropped && std::chrono::steady_clock::now() < end) {
    ASSERT_TRUE(rx.step(5ms).ok()) << rx.stats().last_problem;
    zmq::message_t event;
    dropped = mon.recv(event, zmq::recv_flags::dontwait).has_value();
  }
  EXPECT_TRUE(dropped) << "the oversized message was read";
  EXPECT_EQ(rx.stats().refused, 0u) << rx.stats().last_problem;
  zmq::socket_t good = raw_dealer(ctx, ep);
  send_hello(good);
  bool answered = false;
  while (!answered && std::chrono::steady_clock::now() < end + 2s) {
    ASSERT_TRUE(rx.step(5ms).ok()) << rx.stats().last_problem;
    answered = got_reply(good);
  }
  EXPECT_TRUE(answered);
}

// A signal record with a non-zero byte in its padding (5..7) or after its name's NUL is refused:
// a record decodes one way only.
TEST(BridgeQueueHarden, SignalRecordWithNonZeroPaddingIsRefused) {
  shmlink::Signal sig;
  sig.index = 0;
  sig.type = shmlink::SignalType::f64;
  sig.name = "v";
  const std::vector<std::byte> good = qw::encode_signals({sig});
  std::string why;
  ASSERT_TRUE(qw::decode_signals(good, kValues, why)) << why;
  for (const std::size_t at : {std::size_t{5}, std::size_t{7}, std::size_t{8 + 2}, std::size_t{48 + 1}}) {
    std::vector<std::byte> bad = good;
    bad[at] = std::byte{1};
    EXPECT_FALSE(qw::decode_signals(bad, kValues, why)) << "byte " << at;
  }
}

// A state file larger than the free space of its file system: creating it fails with no_space
// naming the file (its blocks are allocated), instead of a sparse file that raises SIGBUS at the
// first store into a slot. Needs a small tmpfs of its own: a child in a mount namespace of its
// own (root or CAP_SYS_ADMIN; skipped otherwise).
TEST(BridgeQueueHarden, StateFileOnAFullFileSystemIsNoSpaceNamingIt) {
  HostDir a;
  const pid_t child = shmlink::test::spawn([&] {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", a.path().c_str(), "tmpfs", 0, "size=256k") != 0)
      return 77;
    Queue src = make_queue(a.queue());  // a few KiB
    QueueSenderOptions o{a.queue(), ">tcp://127.0.0.1:1"};
    o.window = 65536;  // 65536 slots of 48 bytes: 3 MiB
    try {
      (void)QueueSender::open(o);
    } catch (const shmlink::Error& e) {
      const bool named = std::string(e.what()).find(tx_state(a)) != std::string::npos;
      return e.errc() == Errc::no_space && named ? 0 : 2;
    }
    return 1;  // created: a sparse file past the end of the file system's space
  });
  const int rc = shmlink::test::reap(child, 20);
  if (rc == 77) GTEST_SKIP() << "no mount namespace with a tmpfs of its own here (needs root or CAP_SYS_ADMIN)";
  EXPECT_EQ(rc, 0) << "1: the state file was created sparse; 2: another error, or one not naming the file";
}
