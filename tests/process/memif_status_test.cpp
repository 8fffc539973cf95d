// SPDX-License-Identifier: MIT
// The memif status segment (include/shmlink/memif.hpp "Status"; docs/design/memif.md "Status
// segment"): every memif::Socket publishes itself and its interfaces in
// `$SHMLINK_DIR/<pid>-<k>.memif.shm`, with states, names, the last disconnect reason and the
// counters; a dead owner is told by the file lock; bad files are errors naming the file. Real
// sockets, real files, real processes (fork, SIGKILL), a fresh $SHMLINK_DIR per test.
#include "test_util.hpp"

#include <shmlink/memif.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shmlink::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using memif::Buffer;
using memif::Interface;
using memif::InterfaceOptions;
using memif::InterfaceStatus;
using memif::LinkState;
using memif::Role;
using memif::Socket;
using memif::SocketOptions;
using memif::SocketStatus;

SocketOptions socket_options(const std::string& path, const char* app, std::chrono::milliseconds reconnect = 20ms) {
  SocketOptions so;
  so.path = path;
  so.app_name = app;
  so.reconnect_interval = reconnect;
  return so;
}

InterfaceOptions iface(Role role, std::uint32_t id, const char* name) {
  InterfaceOptions o;
  o.role = role;
  o.id = id;
  o.name = name;
  o.log2_ring_size = 8;
  o.buffer_size = 1024;
  return o;
}

/// Polls both sockets until `pred` holds (or 20 s pass).
template <class Pred>
bool pump(Socket& a, Socket& b, Pred pred) {
  return wait_until([&] {
    (void)a.poll(0ms);
    (void)b.poll(0ms);
    return pred();
  });
}

/// The one published interface of the status file `file` (fails the test when there is not
/// exactly one).
InterfaceStatus only_interface(const std::string& file) {
  const SocketStatus s = memif::read_socket_status(file);
  EXPECT_EQ(s.interfaces.size(), 1U) << file;
  return s.interfaces.empty() ? InterfaceStatus{} : s.interfaces.front();
}

/// The bytes of a file.
std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// Writes `bytes` to `path`.
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Sends `count` packets of `size` bytes on queue 0 (retrying while the ring is full, polling
/// both sockets and draining the receiver so the ring frees up).
void send_packets(Socket& tx_sock, Interface& tx, Socket& rx_sock, Interface& rx, std::size_t count, std::uint32_t size,
                  std::size_t& received) {
  std::array<Buffer, 32> bufs{};
  std::size_t sent_total = 0;
  auto drain = [&] {
    std::size_t n = 0;
    while (rx.rx_burst(0, bufs, n).ok()) {
      for (std::size_t k = 0; k < n; ++k)
        if ((bufs[k].flags & memif::kBufferNext) == 0) ++received;
      ASSERT_TRUE(rx.refill(0, n).ok());
    }
  };
  ASSERT_TRUE(wait_until([&] {
    std::size_t n = 0;
    if (sent_total < count && tx.alloc(0, bufs, 1, size, n).ok()) {
      for (std::size_t k = 0; k < n; ++k) std::memset(bufs[k].data, 0x5a, bufs[k].len);
      std::size_t sent = 0;
      EXPECT_TRUE(tx.tx_burst(0, std::span<const Buffer>(bufs.data(), n), sent).ok());
      ++sent_total;
    }
    (void)tx_sock.poll(0ms);
    (void)rx_sock.poll(0ms);
    drain();
    return sent_total == count && received == count;
  })) << "sent " << sent_total << ", received " << received;
}

/// A master and a slave socket on one filesystem socket in a private $SHMLINK_DIR, connected.
struct Link {
  TempStreamDir dir;
  std::string path = dir.path() + "/memif.sock";
  std::optional<Socket> master, slave;
  Interface* m = nullptr;
  Interface* s = nullptr;

  explicit Link(std::chrono::milliseconds slave_reconnect = 20ms) {
    master.emplace(socket_options(path, "status-master"));
    m = &master->add_interface(iface(Role::master, 7, "mst"));
    slave.emplace(socket_options(path, "status-slave", slave_reconnect));
    s = &slave->add_interface(iface(Role::slave, 7, "slv"));
  }
  bool connect() {
    return pump(*master, *slave, [&] { return m->connected() && s->connected(); });
  }
};

TEST(MemifStatus, MasterAndSlaveEachPublishAFileWithStatesGoingToConnected) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  // The slave first: nobody listens, so it keeps trying.
  Socket slave(socket_options(path, "status-slave"));
  EXPECT_EQ(slave.status_file(), "") << "no file before the first interface";
  slave.add_interface(iface(Role::slave, 3, "slv"));
  ASSERT_NE(slave.status_file(), "");
  EXPECT_EQ(fs::path(slave.status_file()).parent_path().string(), dir.path());
  EXPECT_EQ(fs::path(slave.status_file()).filename().string().rfind(std::to_string(::getpid()) + "-", 0), 0U)
      << slave.status_file();
  SocketStatus ss = memif::read_socket_status(slave.status_file());
  EXPECT_TRUE(ss.alive);
  EXPECT_EQ(ss.pid, ::getpid());
  EXPECT_GT(ss.start_time_ticks, 0U);
  EXPECT_GT(ss.created_ns, 0);
  EXPECT_EQ(ss.socket, path);
  EXPECT_EQ(ss.app_name, "status-slave");
  ASSERT_TRUE(ss.role.has_value());
  EXPECT_EQ(*ss.role, Role::slave);
  ASSERT_EQ(ss.interfaces.size(), 1U);
  EXPECT_EQ(ss.interfaces[0].name, "slv");
  EXPECT_EQ(ss.interfaces[0].id, 3U);
  EXPECT_EQ(ss.interfaces[0].role, Role::slave);
  EXPECT_EQ(ss.interfaces[0].state, LinkState::connecting);
  EXPECT_EQ(ss.interfaces[0].connects, 0U);

  Socket master(socket_options(path, "status-master"));
  Interface& m = master.add_interface(iface(Role::master, 3, "mst"));
  ASSERT_NE(master.status_file(), "");
  EXPECT_NE(master.status_file(), slave.status_file());
  EXPECT_EQ(only_interface(master.status_file()).state, LinkState::listening);

  const std::vector<SocketStatus> all = memif::list_socket_status();  // $SHMLINK_DIR
  ASSERT_EQ(all.size(), 2U);
  for (const SocketStatus& s : all) EXPECT_EQ(s.error, "") << s.file;

  Interface& sl = *slave.interfaces().front();
  ASSERT_TRUE(pump(master, slave, [&] { return m.connected() && sl.connected(); }));
  const InterfaceStatus ms = only_interface(master.status_file());
  const InterfaceStatus sls = only_interface(slave.status_file());
  EXPECT_EQ(ms.state, LinkState::connected);
  EXPECT_EQ(sls.state, LinkState::connected);
  EXPECT_EQ(ms.peer_name, "slv");
  EXPECT_EQ(ms.peer_app, "status-slave");
  EXPECT_EQ(sls.peer_name, "mst");
  EXPECT_EQ(sls.peer_app, "status-master");
  EXPECT_EQ(ms.connects, 1U);
  EXPECT_EQ(sls.tx_queues, 1U);
  EXPECT_EQ(sls.rx_queues, 1U);
  EXPECT_EQ(sls.ring_size, 256U);
  EXPECT_EQ(sls.buffer_size, 1024U);
  EXPECT_EQ(ms.ring_size, 256U);
  EXPECT_EQ(ms.buffer_size, 0U) << "a master is never told the buffer size";
  EXPECT_FALSE(ms.torn);
}

TEST(MemifStatus, CountersMatchThePacketsSentAndReceived) {
  Link link;
  ASSERT_TRUE(link.connect());
  constexpr std::size_t kPackets = 300;
  constexpr std::uint32_t kSize = 100;
  std::size_t received = 0;
  send_packets(*link.slave, *link.s, *link.master, *link.m, kPackets, kSize, received);
  ASSERT_EQ(received, kPackets);
  // Counters are refreshed by poll at most every 100 ms: keep polling until they show.
  InterfaceStatus tx, rx;
  EXPECT_TRUE(pump(*link.master, *link.slave, [&] {
    tx = only_interface(link.slave->status_file());
    rx = only_interface(link.master->status_file());
    return tx.tx_packets == kPackets && rx.rx_packets == kPackets;
  })) << "slave tx " << tx.tx_packets << ", master rx " << rx.rx_packets;
  EXPECT_EQ(tx.tx_packets, kPackets);
  EXPECT_EQ(tx.tx_bytes, kPackets * kSize);
  EXPECT_EQ(rx.rx_packets, kPackets);
  EXPECT_EQ(rx.rx_bytes, kPackets * kSize);
  EXPECT_EQ(tx.rx_packets, 0U);
  EXPECT_EQ(rx.tx_packets, 0U);
  EXPECT_EQ(rx.bad_descriptors, 0U);
  EXPECT_EQ(rx.dropped_packets, 0U);
  // The published counters are the interface's own.
  const auto d = link.s->details();
  EXPECT_EQ(d.tx_queues[0].counters.packets, tx.tx_packets);
  EXPECT_EQ(d.tx_queues[0].counters.interrupts_sent, tx.interrupts_sent);
  EXPECT_GT(tx.updated_ns, 0);
}

TEST(MemifStatus, CountersRefreshForALoopThatPollsOnlyWhenTheFdIsReadable) {
  Link link;
  ASSERT_TRUE(link.connect());
  // Traffic without any poll: only the data path runs, so nothing but the status timer can make
  // the master's fd readable.
  constexpr std::size_t kPackets = 50;
  std::array<Buffer, 32> bufs{};
  std::size_t sent = 0, received = 0;
  ASSERT_TRUE(wait_until([&] {
    std::size_t n = 0;
    if (sent < kPackets && link.s->alloc(0, bufs, 1, 64, n).ok()) {
      std::size_t out = 0;
      EXPECT_TRUE(link.s->tx_burst(0, std::span<const Buffer>(bufs.data(), n), out).ok());
      ++sent;
    }
    while (link.m->rx_burst(0, bufs, n).ok()) {
      received += n;
      EXPECT_TRUE(link.m->refill(0, n).ok());
    }
    return received == kPackets;
  }));
  // The event loop of `shmlink memif responder`: poll() only when fd() is readable.
  InterfaceStatus rx;
  const bool fresh = wait_until([&] {
    pollfd p{link.master->fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) == 1) (void)link.master->poll(0ms);
    rx = only_interface(link.master->status_file());
    return rx.rx_packets == kPackets;
  }, 5);
  EXPECT_TRUE(fresh) << "published rx_packets " << rx.rx_packets << " of " << kPackets;
}

TEST(MemifStatus, ADisconnectReasonIsPublishedOnBothSides) {
  Link link(10s);  // the slave does not come back during the test
  ASSERT_TRUE(link.connect());
  link.m->disconnect("maintenance window");
  ASSERT_TRUE(pump(*link.master, *link.slave, [&] { return !link.s->connected(); }));
  const InterfaceStatus ms = only_interface(link.master->status_file());
  const InterfaceStatus sls = only_interface(link.slave->status_file());
  EXPECT_EQ(ms.state, LinkState::listening);
  EXPECT_EQ(ms.last_disconnect, "maintenance window");
  EXPECT_EQ(sls.state, LinkState::connecting);
  EXPECT_EQ(sls.last_disconnect, "peer disconnected: maintenance window");
  EXPECT_EQ(sls.tx_queues, 0U) << "no queues while down";
  EXPECT_EQ(sls.ring_size, 0U);
  EXPECT_EQ(sls.connects, 1U);
}

TEST(MemifStatus, ARefusedHandshakeIsPublishedWithItsReason) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/memif.sock";
  Socket master(socket_options(path, "status-master"));
  InterfaceOptions mo = iface(Role::master, 1, "mst");
  mo.secret = "right";
  master.add_interface(mo);
  Socket slave(socket_options(path, "status-slave", 10s));
  InterfaceOptions so = iface(Role::slave, 1, "slv");
  so.secret = "wrong";
  Interface& s = slave.add_interface(so);
  ASSERT_TRUE(pump(master, slave, [&] { return !s.last_disconnect().empty(); }));
  EXPECT_NE(only_interface(slave.status_file()).last_disconnect.find("Incorrect secret"), std::string::npos);
  EXPECT_NE(only_interface(master.status_file()).last_disconnect.find("Incorrect secret"), std::string::npos);
}

TEST(MemifStatus, DestroyingOrRemovingUnpublishes) {
  Link link;
  ASSERT_TRUE(link.connect());
  const std::string mfile = link.master->status_file();
  const std::string sfile = link.slave->status_file();
  ASSERT_TRUE(fs::exists(mfile));
  ASSERT_TRUE(fs::exists(sfile));
  // Removing the interface frees its record; the file stays with the socket.
  link.slave->remove_interface(*link.s);
  link.s = nullptr;
  EXPECT_TRUE(memif::read_socket_status(sfile).interfaces.empty());
  EXPECT_FALSE(memif::read_socket_status(sfile).role.has_value()) << "no interface, no role";
  link.slave.reset();
  EXPECT_FALSE(fs::exists(sfile));
  link.master.reset();
  EXPECT_FALSE(fs::exists(mfile));
  EXPECT_TRUE(memif::list_socket_status(link.dir.path()).empty());
  EXPECT_EQ(link.dir.entries(), 0) << "nothing left behind (the listener removed its socket file too)";
}

TEST(MemifStatus, PublishStatusFalsePublishesNothing) {
  TempStreamDir dir;
  const std::string name = "@shmlink-status-off-" + std::to_string(::getpid());
  SocketOptions mo = socket_options(name, "quiet");
  mo.publish_status = false;
  SocketOptions so = mo;
  Socket master(mo);
  Interface& m = master.add_interface(iface(Role::master, 0, "mst"));
  Socket slave(so);
  Interface& s = slave.add_interface(iface(Role::slave, 0, "slv"));
  ASSERT_TRUE(pump(master, slave, [&] { return m.connected() && s.connected(); }));
  EXPECT_EQ(master.status_file(), "");
  EXPECT_EQ(slave.status_file(), "");
  EXPECT_EQ(dir.entries(), 0);
  EXPECT_TRUE(memif::list_socket_status().empty());
}

TEST(MemifStatus, AbstractSocketsArePublishedUnderTheirAtName) {
  TempStreamDir dir;
  const std::string name = "@shmlink-status-" + std::to_string(::getpid());
  Socket master(socket_options(name, "abstract"));
  master.add_interface(iface(Role::master, 0, "mst"));
  const std::vector<SocketStatus> all = memif::list_socket_status(dir.path());
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].socket, name);
  EXPECT_EQ(all[0].interfaces.at(0).state, LinkState::listening);
}

TEST(MemifStatus, InterfacesBeyondTheCapacityAreCountedAsOverflow) {
  TempStreamDir dir;
  Socket master(socket_options("@shmlink-status-many-" + std::to_string(::getpid()), "many"));
  std::vector<Interface*> ifs;
  for (std::uint32_t id = 0; id < 66; ++id) ifs.push_back(&master.add_interface(iface(Role::master, id, "m")));
  SocketStatus s = memif::read_socket_status(master.status_file());
  EXPECT_EQ(s.interfaces.size(), 64U);
  EXPECT_EQ(s.overflow, 2U);
  // A freed record goes to an interface that had none.
  master.remove_interface(*ifs[0]);
  s = memif::read_socket_status(master.status_file());
  EXPECT_EQ(s.interfaces.size(), 64U);
  EXPECT_EQ(s.overflow, 1U);
  for (const InterfaceStatus& i : s.interfaces) EXPECT_NE(i.id, 0U);
}

TEST(MemifStatus, ASigkilledOwnerLeavesADeadFileThatRemoveStaleDeletes) {
  TempStreamDir dir;
  // A live socket of our own, which must survive the clean-up.
  Socket mine(socket_options("@shmlink-status-live-" + std::to_string(::getpid()), "live"));
  mine.add_interface(iface(Role::master, 0, "live"));
  Shared<std::atomic<int>> ready;
  const std::string name = "@shmlink-status-victim-" + std::to_string(::getpid());
  const pid_t child = spawn([&]() -> int {
    Socket s(socket_options(name, "victim"));
    s.add_interface(iface(Role::master, 5, "victim"));
    ready->store(1);
    for (;;) (void)s.poll(100ms);
  });
  ASSERT_GT(child, 0);
  ASSERT_TRUE(wait_until([&] { return ready->load() == 1; })) << "child never published";
  auto victim = [&]() -> std::optional<SocketStatus> {
    for (SocketStatus& s : memif::list_socket_status(dir.path()))
      if (s.socket == name) return s;
    return std::nullopt;
  };
  std::optional<SocketStatus> v = victim();
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->alive);
  EXPECT_EQ(v->pid, child);
  EXPECT_EQ(memif::remove_stale_socket_status(dir.path()), 0U) << "nothing is stale while both live";

  ::kill(child, SIGKILL);
  EXPECT_EQ(reap(child), -SIGKILL);
  v = victim();
  ASSERT_TRUE(v.has_value()) << "SIGKILL leaves the file";
  EXPECT_FALSE(v->alive);
  EXPECT_EQ(v->pid, child);
  ASSERT_EQ(v->interfaces.size(), 1U);
  EXPECT_EQ(v->interfaces[0].name, "victim");

  EXPECT_EQ(memif::remove_stale_socket_status(dir.path()), 1U);
  EXPECT_FALSE(victim().has_value());
  EXPECT_TRUE(fs::exists(mine.status_file())) << "the live file stays";
  EXPECT_TRUE(memif::read_socket_status(mine.status_file()).alive);
}

TEST(MemifStatus, AForkedChildDestroyingItsCopyLeavesTheParentsFile) {
  TempStreamDir dir;
  std::optional<Socket> s;
  s.emplace(socket_options("@shmlink-status-fork-" + std::to_string(::getpid()), "parent"));
  s->add_interface(iface(Role::master, 0, "p"));
  const std::string file = s->status_file();
  const pid_t child = spawn([&] {
    s.reset();  // the child's copy: must not unlink the parent's file
    return 0;
  });
  EXPECT_EQ(reap(child), 0);
  ASSERT_TRUE(fs::exists(file));
  EXPECT_TRUE(memif::read_socket_status(file).alive);
  s.reset();
  EXPECT_FALSE(fs::exists(file));
}

TEST(MemifStatus, BadFilesAreErrorsNamingTheFileAndDoNotStopTheListing) {
  TempStreamDir dir;
  Socket good(socket_options("@shmlink-status-good-" + std::to_string(::getpid()), "good"));
  good.add_interface(iface(Role::master, 0, "g"));
  const std::string real = read_bytes(good.status_file());
  ASSERT_EQ(real.size(), 512U + 64U * 384U);

  const std::string badmagic = dir.path() + "/1-0.memif.shm";
  std::string bytes = real;
  bytes[0] = 'X';
  write_bytes(badmagic, bytes);
  const std::string tiny = dir.path() + "/2-0.memif.shm";
  write_bytes(tiny, real.substr(0, 100));
  const std::string cut = dir.path() + "/3-0.memif.shm";
  write_bytes(cut, real.substr(0, 1000));
  const std::string version = dir.path() + "/4-0.memif.shm";
  bytes = real;
  bytes[8] = 2;  // layout version 2
  write_bytes(version, bytes);
  const std::string capacity = dir.path() + "/5-0.memif.shm";
  bytes = real;
  const std::uint32_t huge = 1'000'000;
  std::memcpy(bytes.data() + 20, &huge, sizeof huge);
  write_bytes(capacity, bytes);

  auto expect_layout_error = [](const std::string& file, const char* what) {
    try {
      (void)memif::read_socket_status(file);
      ADD_FAILURE() << file << " was read";
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::layout) << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_layout_error(badmagic, "magic");
  expect_layout_error(tiny, "smaller than the 512-byte header");
  expect_layout_error(cut, "but its header describes 25088");
  expect_layout_error(version, "version 2");
  expect_layout_error(capacity, "capacity");

  const std::vector<SocketStatus> all = memif::list_socket_status(dir.path());
  ASSERT_EQ(all.size(), 6U);
  int errors = 0;
  for (const SocketStatus& s : all) {
    if (s.file == good.status_file()) {
      EXPECT_EQ(s.error, "");
      EXPECT_TRUE(s.alive);
      continue;
    }
    ++errors;
    EXPECT_EQ(s.error_code, Errc::layout) << s.file;
    EXPECT_NE(s.error.find(s.file), std::string::npos) << s.error;
  }
  EXPECT_EQ(errors, 5);
  // Files that are not status files are never removed as stale.
  EXPECT_FALSE(memif::remove_socket_status_if_stale(badmagic));
  EXPECT_TRUE(fs::exists(badmagic));
  EXPECT_THROW((void)memif::read_socket_status(dir.path() + "/absent.memif.shm"), Error);
}

/// Runs `body` in a forked child and returns its exit status, or -1 when it is still running after
/// `limit` (then it is killed): a hang fails the test instead of blocking the suite.
int run_bounded_child(const std::function<int()>& body, std::chrono::milliseconds limit = 5s) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int st = 0;
  while (::waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/// A FIFO, or a link to one, named like a status file (any local user can make one in the
/// directory): reading it is a layout error naming the file and what it is, at once (before:
/// open(2) waited for a writer for ever); the listing goes on and stale removal leaves it alone.
TEST(MemifStatus, AFifoOrALinkNamedLikeAStatusFileIsAnErrorNotAHang) {
  TempStreamDir dir;
  const std::string fifo = dir.path() + "/99999-0.memif.shm";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string link = dir.path() + "/99999-1.memif.shm";
  ASSERT_EQ(::symlink(fifo.c_str(), link.c_str()), 0);
  const int rc = run_bounded_child([&] {
    int ok = 0;
    for (const auto& [file, what] : {std::pair{fifo, "FIFO"}, std::pair{link, "symbolic link"}}) {
      try {
        (void)memif::read_socket_status(file);
      } catch (const Error& e) {
        const std::string msg = e.what();
        if (e.errc() == Errc::layout && msg.find(file) != std::string::npos && msg.find(what) != std::string::npos)
          ++ok;
        else
          std::fprintf(stderr, "%s\n", msg.c_str());
      }
    }
    const std::vector<SocketStatus> all = memif::list_socket_status(dir.path());
    if (all.size() == 2 && !all[0].error.empty() && !all[1].error.empty()) ++ok;
    if (!memif::remove_socket_status_if_stale(fifo) && !memif::remove_socket_status_if_stale(link)) ++ok;
    if (memif::remove_stale_socket_status(dir.path()) == 0) ++ok;
    return ok == 5 ? 0 : 1;
  });
  EXPECT_EQ(rc, 0) << (rc == -1 ? "reading a FIFO named like a status file hung" : "wrong errors");
  EXPECT_TRUE(fs::exists(fs::symlink_status(fifo)));
  EXPECT_TRUE(fs::exists(fs::symlink_status(link)));
}

/// Size fields a reader takes from the file are checked before any arithmetic on them: a header
/// with the largest capacity, or sizes that do not match the layout, is a layout error, never a
/// read outside the mapping.
TEST(MemifStatus, HostileSizeFieldsAreLayoutErrors) {
  TempStreamDir dir;
  Socket good(socket_options("@shmlink-status-sizes-" + std::to_string(::getpid()), "sizes"));
  good.add_interface(iface(Role::master, 0, "s"));
  const std::string real = read_bytes(good.status_file());
  struct Case {
    std::size_t offset;
    std::uint32_t value;
    const char* what;
  };
  int k = 10;
  for (const Case& c : {Case{20, 0xFFFFFFFFu, "capacity"}, Case{16, 0xFFFFFFFFu, "sizes"},
                        Case{12, 0xFFFFFFFFu, "sizes"}, Case{20, 4096, "but its header describes"}}) {
    std::string bytes = real;
    std::memcpy(bytes.data() + c.offset, &c.value, sizeof c.value);
    const std::string file = dir.path() + "/" + std::to_string(k++) + "-0.memif.shm";
    write_bytes(file, bytes);
    try {
      (void)memif::read_socket_status(file);
      ADD_FAILURE() << file << " was read";
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::layout) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.what), std::string::npos) << e.what();
    }
  }
}

TEST(MemifStatus, AMissingDirectoryLeavesTheSocketWorkingWithoutAFile) {
  TempStreamDir dir;
  const std::string missing = dir.path() + "/does-not-exist";
  ::setenv("SHMLINK_DIR", missing.c_str(), 1);  // TempStreamDir restores it
  Socket master(socket_options("@shmlink-status-nodir-" + std::to_string(::getpid()), "nodir"));
  Interface& m = master.add_interface(iface(Role::master, 0, "m"));
  Socket slave(socket_options("@shmlink-status-nodir-" + std::to_string(::getpid()), "nodir"));
  Interface& s = slave.add_interface(iface(Role::slave, 0, "s"));
  EXPECT_EQ(master.status_file(), "");
  ASSERT_TRUE(pump(master, slave, [&] { return m.connected() && s.connected(); }));
  EXPECT_FALSE(fs::exists(missing));
}

}  // namespace
}  // namespace shmlink::test
