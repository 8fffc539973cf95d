// SPDX-License-Identifier: MIT
// The ivshmem doorbell server and host peers (issue 21): QEMU's ivshmem-server protocol version
// 0 over real UNIX sockets, eventfds and shared-memory files; peers in this process and in a
// forked one; hostile clients and a hostile server; QEMU's ivshmem-doorbell device when
// qemu-system-x86_64 is installed.
#include "ivshmem/peer_protocol.hpp"
#include "test_util.hpp"

#include <shmlink/ivshmem_server.hpp>
#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using shmlink::Errc;
using shmlink::ivshmem::Peer;
using shmlink::ivshmem::PeerInfo;
using shmlink::ivshmem::PeerOptions;
using shmlink::ivshmem::Server;
using shmlink::ivshmem::ServerSpec;
namespace proto = shmlink::ivshmem::proto;

/// A server on a private socket and /dev/shm file, served by a thread until the fixture ends.
class IvshmemServer : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tag = std::to_string(::getpid()) + "-" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    spec_.socket_path = dir_.path() + "/ivshmem.sock";
    spec_.shm_path = "/dev/shm/shmlink-test-ivshmem-" + tag;
    spec_.bytes = 1 << 20;
    spec_.vectors = 2;
  }
  void TearDown() override { stop(); }

  void start() {
    server_ = Server::start(spec_);
    thread_ = std::thread([this] { server_.run(); });
  }
  void stop() {
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
    server_ = Server();
  }
  /// Updates `p` until `pred(p.peers())` holds (5 s at most); returns whether it did.
  template <class Pred>
  static bool update_until(Peer& p, Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!pred(p.peers())) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      (void)p.update(50ms);
    }
    return true;
  }
  static bool has(const std::vector<PeerInfo>& ps, std::uint16_t id, unsigned vectors) {
    for (const PeerInfo& p : ps)
      if (p.id == id) return p.vectors == vectors;
    return false;
  }
  PeerOptions two() const {
    PeerOptions o;
    o.vectors = 2;
    return o;
  }

  shmlink::test::TempStreamDir dir_;
  ServerSpec spec_;
  Server server_;
  std::thread thread_;
};

TEST_F(IvshmemServer, PeersGetTheLowestFreeIdsAndSeeJoinsAndLeaves) {
  start();
  Peer a = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(a.id(), 0);
  EXPECT_EQ(a.vectors(), 2u);
  EXPECT_TRUE(a.peers().empty());
  std::optional<Peer> b = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(b->id(), 1);
  // The newcomer hears of the others before its own vectors, so it knows them at once.
  ASSERT_EQ(b->peers().size(), 1u);
  EXPECT_TRUE(has(b->peers(), 0, 2));
  ASSERT_TRUE(update_until(a, [](const auto& ps) { return has(ps, 1, 2); }));
  Peer c = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(c.id(), 2);
  b.reset();  // closing the connection is leaving
  ASSERT_TRUE(update_until(a, [](const auto& ps) { return ps.size() == 1 && has(ps, 2, 2); }));
  ASSERT_TRUE(update_until(c, [](const auto& ps) { return ps.size() == 1 && has(ps, 0, 2); }));
  Peer d = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(d.id(), 1) << "the id of the peer that left is the lowest free one";
  ASSERT_TRUE(update_until(a, [](const auto& ps) { return ps.size() == 2 && has(ps, 1, 2); }));
}

TEST_F(IvshmemServer, RingingAPeersVectorWakesItsWaitOnThatVectorOnly) {
  start();
  Peer a = Peer::connect(spec_.socket_path, two());
  Peer b = Peer::connect(spec_.socket_path, two());
  ASSERT_TRUE(update_until(a, [&](const auto& ps) { return has(ps, b.id(), 2); }));
  EXPECT_EQ(b.wait(1, 0ms), Errc::timeout);
  ASSERT_EQ(a.ring(b.id(), 1), Errc::ok);
  EXPECT_EQ(b.wait(0, 0ms), Errc::timeout);
  EXPECT_EQ(b.wait(1, 5s), Errc::ok);
  EXPECT_EQ(b.wait(1, 0ms), Errc::timeout) << "the wait consumed the ring";
  ASSERT_EQ(b.ring(a.id(), 0), Errc::ok);
  pollfd p{a.fd(0), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 5000), 1) << "the own fd is readable for the caller's poll";
  EXPECT_EQ(a.wait(0, 5s), Errc::ok);
  EXPECT_EQ(a.ring(b.id(), 2), Errc::out_of_range);
  EXPECT_EQ(a.ring(99, 0), Errc::not_found);
  EXPECT_EQ(a.wait(2, 0ms), Errc::out_of_range);
  EXPECT_EQ(a.fd(2), -1);
}

TEST_F(IvshmemServer, APeerInAnotherProcessIsRungAndRingsBack) {
  server_ = Server::start(spec_);  // listening; the loop starts after the fork
  shmlink::test::Shared<shmlink::test::ChildReport> shared;
  shmlink::test::ChildReport* report = &*shared;
  const std::string sock = spec_.socket_path;
  const pid_t child = shmlink::test::spawn([&]() -> int {
    PeerOptions o;
    o.vectors = 2;
    Peer p = Peer::connect(sock, o);
    SHMLINK_CHILD_CHECK(report, p.id() == 0, p.id());
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (p.peers().empty() && std::chrono::steady_clock::now() < deadline) (void)p.update(50ms);
    SHMLINK_CHILD_CHECK(report, p.peers().size() == 1, static_cast<std::int64_t>(p.peers().size()));
    SHMLINK_CHILD_CHECK(report, p.wait(1, 10s) == Errc::ok, 0);
    // The shared memory is the same: the parent's word is seen here.
    SHMLINK_CHILD_CHECK(report, std::to_integer<int>(p.memory()[p.memory().size() - 1]) == 0x5a, 0);
    SHMLINK_CHILD_CHECK(report, p.ring(p.peers().front().id, 0) == Errc::ok, 0);
    return 0;
  });
  thread_ = std::thread([this] { server_.run(); });
  std::optional<Peer> parent;
  ASSERT_TRUE(shmlink::test::wait_until([&] { return server_.peer_count_approx() == 1; }, 10));
  parent = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(parent->id(), 1);
  ASSERT_TRUE(has(parent->peers(), 0, 2));
  parent->memory()[parent->memory().size() - 1] = std::byte{0x5a};
  ASSERT_EQ(parent->ring(0, 1), Errc::ok);
  EXPECT_EQ(parent->wait(0, 10s), Errc::ok);
  EXPECT_EQ(shmlink::test::reap(child, 20), 0) << report->describe();
  ASSERT_TRUE(update_until(*parent, [](const auto& ps) { return ps.empty(); })) << "the exited peer is announced as gone";
}

TEST_F(IvshmemServer, TheSharedMemoryIsARegionFileThatOtherKernelsUse) {
  spec_.permissions = 0660;
  start();
  struct stat sb {};
  ASSERT_EQ(::stat(spec_.shm_path.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0660u);
  EXPECT_EQ(static_cast<std::uint64_t>(sb.st_size), spec_.bytes);
  shmlink::Region r = shmlink::Region::open(spec_.shm_path);
  EXPECT_FALSE(r.same_kernel()) << "channels between VMs must poll";
  Peer a = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(a.memory().size(), spec_.bytes);
  shmlink::Region in_peer = a.region();
  EXPECT_TRUE(in_peer.entries().empty());
  stop();
  EXPECT_FALSE(std::filesystem::exists(spec_.shm_path)) << "the server removes what it created";
  EXPECT_FALSE(std::filesystem::exists(spec_.socket_path));
  EXPECT_EQ(a.memory().size(), spec_.bytes) << "a peer keeps its mapping after the server went";
}

TEST_F(IvshmemServer, StartChecksItsSpecAndTheSocket) {
  ServerSpec bad = spec_;
  bad.bytes = 3 << 20;
  try {
    (void)Server::start(bad);
    FAIL() << "a size that is not a power of two was accepted";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(spec_.shm_path));
  start();
  ServerSpec second = spec_;
  second.shm_path += "-2";
  try {
    (void)Server::start(second);
    FAIL() << "a second server took a live socket";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find(spec_.socket_path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(second.shm_path)) << "a failed start removes what it created";
  ServerSpec same_file = spec_;
  same_file.socket_path += "-2";
  EXPECT_THROW((void)Server::start(same_file), shmlink::Error) << "the shm file exists";
}

TEST_F(IvshmemServer, AStaleSocketFileIsReplaced) {
  {
    Server s = Server::start(spec_);
    // A server killed without cleaning up leaves its socket file: simulate it.
    const std::string kept = spec_.socket_path + ".kept";
    ASSERT_EQ(::link(spec_.socket_path.c_str(), kept.c_str()), 0);
    s = Server();
    ASSERT_EQ(::rename(kept.c_str(), spec_.socket_path.c_str()), 0);
  }
  start();
  Peer a = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(a.id(), 0);
}

/// Connects a raw client to `path`.
shmlink::os::UniqueFd raw_client(const std::string& path) {
  shmlink::os::UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return {};
  return s;
}

TEST_F(IvshmemServer, HostileClientsAreDroppedWithoutHarmingOthers) {
  spec_.max_peers = 4;
  start();
  Peer a = Peer::connect(spec_.socket_path, two());
  // One sends garbage (clients never send), one closes at once, many connect beyond max_peers.
  shmlink::os::UniqueFd talker = raw_client(spec_.socket_path);
  ASSERT_TRUE(talker);
  ASSERT_TRUE(update_until(a, [](const auto& ps) { return ps.size() == 1; }));
  const char junk[] = "garbage that no ivshmem client sends";
  ASSERT_GT(::write(talker.get(), junk, sizeof junk), 0);
  ASSERT_TRUE(update_until(a, [](const auto& ps) { return ps.empty(); })) << "the talker is dropped and announced";
  { shmlink::os::UniqueFd quitter = raw_client(spec_.socket_path); }
  std::vector<shmlink::os::UniqueFd> crowd;
  for (int i = 0; i < 40; ++i) crowd.push_back(raw_client(spec_.socket_path));
  ASSERT_TRUE(shmlink::test::wait_until([&] { return server_.peer_count_approx() == 4; }, 10));
  // Beyond max_peers the server closes the connection: a Peer says so.
  try {
    (void)Peer::connect(spec_.socket_path, two());
    FAIL() << "a fifth peer was accepted";
  } catch (const shmlink::Error& e) {
    EXPECT_EQ(e.errc(), Errc::closed) << e.what();
    EXPECT_NE(std::string(e.what()).find(spec_.socket_path), std::string::npos) << e.what();
  }
  crowd.clear();
  ASSERT_TRUE(update_until(a, [](const auto& ps) { return ps.empty(); }));
  ASSERT_TRUE(shmlink::test::wait_until([&] { return server_.peer_count_approx() == 1; }, 10));
  Peer b = Peer::connect(spec_.socket_path, two());
  EXPECT_EQ(b.id(), 1);
  ASSERT_TRUE(update_until(a, [&](const auto& ps) { return has(ps, b.id(), 2); }));
  ASSERT_EQ(a.ring(b.id(), 0), Errc::ok);
  EXPECT_EQ(b.wait(0, 5s), Errc::ok) << "the server still serves";
}

// ---- a hostile server -----------------------------------------------------------------------

/// A listening socket that sends scripted messages to the first client.
class FakeServer {
 public:
  explicit FakeServer(std::string path) : path_(std::move(path)) {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path_.data(), path_.size());
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listener_.get(), 4), 0);
  }
  ~FakeServer() { ::unlink(path_.c_str()); }
  /// Queues a message for the client (sent from the listening side's accepted socket).
  void accept_and_send(const std::vector<std::pair<std::int64_t, int>>& script) {
    thread_ = std::thread([this, script] {
      client_.reset(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      for (const auto& [v, fd] : script) (void)proto::send_message(client_.get(), v, fd);
    });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::string path_;
  shmlink::os::UniqueFd listener_, client_;
  std::thread thread_;
};

TEST(IvshmemPeer, AServerBreakingTheProtocolIsAClearErrorNamingTheSocket) {
  shmlink::test::TempStreamDir dir;
  const std::string path = dir.path() + "/fake.sock";
  struct Case {
    std::vector<std::pair<std::int64_t, int>> script;
    const char* says;
  };
  shmlink::os::UniqueFd memfd(::memfd_create("fake-shm", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(memfd.get(), 65536), 0);
  const int m = memfd.get();
  const std::vector<Case> cases = {
      {{{1, -1}}, "protocol version 1"},
      {{{0, -1}, {70000, -1}}, "70000"},
      {{{0, -1}, {3, -1}, {-1, -1}}, "expected the shared memory"},
      {{{0, -1}, {3, -1}, {-1, m}, {-5, m}}, "-5"},
  };
  for (const Case& c : cases) {
    FakeServer fake(path);
    fake.accept_and_send(c.script);
    try {
      (void)Peer::connect(path, PeerOptions{1, 5000ms, true});
      ADD_FAILURE() << "accepted: " << c.says;
    } catch (const shmlink::Error& e) {
      EXPECT_EQ(e.errc(), Errc::protocol) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
    fake.join();
  }
}

TEST(IvshmemPeer, DescriptorsWhereNoneIsExpectedAreClosed) {
  proto::PeerTable t("ivshmem server test");
  auto message = [](std::int64_t v, int fd) {
    proto::Message m;
    m.value = v;
    m.fd.reset(fd);
    return m;
  };
  const int stray = ::eventfd(0, EFD_CLOEXEC);
  EXPECT_EQ(t.apply(message(0, stray)), proto::Event::version);
  EXPECT_EQ(::fcntl(stray, F_GETFD), -1) << "the descriptor sent with the version is closed";
  EXPECT_EQ(t.apply(message(7, -1)), proto::Event::own_id);
  EXPECT_EQ(t.apply(message(-1, ::eventfd(0, EFD_CLOEXEC))), proto::Event::shared_memory);
  for (unsigned v = 0; v < shmlink::ivshmem::kMaxVectors; ++v)
    EXPECT_EQ(t.apply(message(3, ::eventfd(0, EFD_CLOEXEC))), proto::Event::peer_vector);
  const int extra = ::eventfd(0, EFD_CLOEXEC);
  EXPECT_EQ(t.apply(message(3, extra)), proto::Event::ignored);
  EXPECT_EQ(::fcntl(extra, F_GETFD), -1) << "a vector beyond kMaxVectors is closed";
  EXPECT_EQ(t.apply(message(9, -1)), proto::Event::ignored) << "leaving of an unknown peer";
  EXPECT_EQ(t.apply(message(3, -1)), proto::Event::peer_left);
  EXPECT_TRUE(t.peers().empty());
  // The assembler keeps one descriptor per message: the second is closed.
  proto::Assembler a;
  const int first = ::eventfd(0, EFD_CLOEXEC);
  const int second = ::eventfd(0, EFD_CLOEXEC);
  std::vector<shmlink::os::UniqueFd> fds;
  fds.emplace_back(first);
  fds.emplace_back(second);
  const std::byte half[4]{};
  EXPECT_FALSE(a.feed(half, std::move(fds)).has_value());
  EXPECT_EQ(::fcntl(second, F_GETFD), -1);
  EXPECT_EQ(a.read_size(), 4u);
  auto done = a.feed(half, {});
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->fd.get(), first);
}

// ---- QEMU's ivshmem-doorbell device ---------------------------------------------------------

std::string find_qemu() {
  for (const char* d : {"/usr/bin", "/usr/local/bin"}) {
    std::string p = std::string(d) + "/qemu-system-x86_64";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

TEST_F(IvshmemServer, QemusDoorbellDeviceJoinsWithItsVectorsAndLeavesWhenKilled) {
  const std::string qemu = find_qemu();
  if (qemu.empty()) GTEST_SKIP() << "qemu-system-x86_64 is not installed (Debian: qemu-system-x86)";
  start();
  Peer host = Peer::connect(spec_.socket_path, two());
  const std::string chardev = "socket,path=" + spec_.socket_path + ",id=iv";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    // QEMU stays paused (-S): it connects to the server while it realizes the device.
    ::execl(qemu.c_str(), qemu.c_str(), "-S", "-nodefaults", "-display", "none", "-machine", "pc,accel=tcg", "-m", "64",
            "-chardev", chardev.c_str(), "-device", "ivshmem-doorbell,chardev=iv,vectors=2", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  const bool joined = update_until(host, [](const auto& ps) { return has(ps, 1, 2); });
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(joined) << "QEMU (id 1, 2 vectors) was not announced";
  ASSERT_TRUE(update_until(host, [](const auto& ps) { return ps.empty(); })) << "killed QEMU is announced as gone";
}

}  // namespace
