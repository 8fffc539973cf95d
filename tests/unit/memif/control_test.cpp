// SPDX-License-Identifier: MIT
// memif control channel transport on real AF_UNIX SOCK_SEQPACKET sockets (reference sections 4
// and 13): 128-byte datagrams, one fd per message and never a leaked one, EOF, abstract names
// without a trailing NUL, and VPP's stale-socket rule for filesystem listeners.
#include "memif/control.hpp"

#include "test_util.hpp"

#include <shmlink/memif.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace shmlink;
using namespace shmlink::memif;

using test::TempStreamDir;

/// "memif-<pid>-<n>": unique per test within this run and across concurrent runs.
std::string unique_name() {
  static std::atomic<int> counter{0};
  return "memif-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

/// Open fds of this process (the directory's own fd is counted every time, so differences hold).
int count_fds() {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

struct Pair {
  UniqueFd a, b;
};
Pair seqpacket_pair(bool nonblocking = false) {
  int sv[2];
  const int type = SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  if (::socketpair(AF_UNIX, type, 0, sv) != 0) throw std::runtime_error("socketpair failed");
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

/// Sends `len` raw bytes with `fds` in one SCM_RIGHTS message (what a misbehaving peer might do).
void send_raw(int sock, std::size_t len, const std::vector<int>& fds) {
  std::vector<unsigned char> data(len, 0x42);
  iovec iov{data.data(), data.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  std::vector<unsigned char> control(CMSG_SPACE(sizeof(int) * fds.size()) + 8, 0);
  if (!fds.empty()) {
    mh.msg_control = control.data();
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ASSERT_EQ(::sendmsg(sock, &mh, MSG_NOSIGNAL), static_cast<ssize_t>(len)) << std::strerror(errno);
}

void write_counter(int efd, std::uint64_t v) { ASSERT_EQ(::write(efd, &v, 8), 8); }
std::uint64_t read_counter(int efd) {
  std::uint64_t v = 0;
  return ::read(efd, &v, 8) == 8 ? v : ~std::uint64_t{0};
}

// ---- messages on a socketpair ------------------------------------------------------------------

TEST(MemifControl, RoundTripWithoutFd) {
  auto p = seqpacket_pair();
  wire::HelloInfo h;
  h.name = "shmlink";
  const wire::Message out = wire::encode_hello(h);
  ASSERT_TRUE(send_message(p.a.get(), out).ok());
  wire::Message in = wire::make_message(wire::MsgType::none);
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));  // must be closed and reset by receive_message
  const MessageResult r = receive_message(p.b.get(), in, fd);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.bytes, 128u);
  EXPECT_EQ(r.fds_dropped, 0u);
  EXPECT_FALSE(fd);
  EXPECT_EQ(wire::message_bytes(in), wire::message_bytes(out));
  EXPECT_EQ(wire::decode_hello(in).name, "shmlink");
}

TEST(MemifControl, RoundTripWithMemfdSharesTheFile) {
  auto p = seqpacket_pair();
  UniqueFd mem(::memfd_create("memif-region", MFD_CLOEXEC));
  ASSERT_TRUE(mem);
  ASSERT_EQ(::ftruncate(mem.get(), 4096), 0);
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_add_region({0, 4096}), mem.get()).ok());
  wire::Message in{};
  UniqueFd got;
  const MessageResult r = receive_message(p.b.get(), in, got);
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_TRUE(got);
  EXPECT_NE(got.get(), mem.get());
  EXPECT_EQ(wire::message_type(in), wire::MsgType::add_region);
  EXPECT_EQ(wire::decode_add_region(in).size, 4096u);
  EXPECT_NE(::fcntl(got.get(), F_GETFD) & FD_CLOEXEC, 0);  // received fds are CLOEXEC
  ASSERT_EQ(::pwrite(mem.get(), "region!", 7, 100), 7);
  char buf[8] = {};
  ASSERT_EQ(::pread(got.get(), buf, 7, 100), 7);
  EXPECT_STREQ(buf, "region!");
}

TEST(MemifControl, RoundTripWithEventfdSharesTheCounter) {
  auto p = seqpacket_pair();
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  wire::AddRingInfo ring;
  ring.type = wire::RingType::m2s;
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_add_ring(ring), efd.get()).ok());
  wire::Message in{};
  UniqueFd got;
  ASSERT_TRUE(receive_message(p.b.get(), in, got).ok());
  ASSERT_TRUE(got);
  write_counter(got.get(), 5);
  EXPECT_EQ(read_counter(efd.get()), 5u);
  EXPECT_EQ(wire::decode_add_ring(in).type, wire::RingType::m2s);
}

TEST(MemifControl, WrongSizeDatagramsAreMalformed) {
  auto p = seqpacket_pair();
  for (const std::size_t len : {std::size_t{100}, std::size_t{200}, std::size_t{127}, std::size_t{129}}) {
    send_raw(p.a.get(), len, {});
    wire::Message in{};
    UniqueFd got;
    const MessageResult r = receive_message(p.b.get(), in, got);
    EXPECT_EQ(r.code, Errc::layout) << len;
    EXPECT_EQ(r.bytes, len);
    EXPECT_EQ(r.describe(), "malformed message: " + std::to_string(len) + " bytes");
    EXPECT_FALSE(got);
  }
  // The channel still works for a well-formed message afterwards.
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_ack()).ok());
  wire::Message in{};
  UniqueFd got;
  ASSERT_TRUE(receive_message(p.b.get(), in, got).ok());
  EXPECT_EQ(wire::message_type(in), wire::MsgType::ack);
}

TEST(MemifControl, MalformedDatagramsFdIsClosed) {
  auto p = seqpacket_pair();
  const int before = count_fds();
  {
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
    send_raw(p.a.get(), 100, {efd.get()});
  }
  wire::Message in{};
  UniqueFd got;
  const MessageResult r = receive_message(p.b.get(), in, got);
  EXPECT_EQ(r.code, Errc::layout);
  EXPECT_EQ(r.fds_dropped, 1u);
  EXPECT_FALSE(got);
  EXPECT_EQ(count_fds(), before);
}

TEST(MemifControl, AFdThatCannotBeMadeNonBlockingIsDroppedWithTheReason) {
  auto p = seqpacket_pair();
  // An O_PATH fd travels by SCM_RIGHTS, but fcntl(F_SETFL) on it fails with EBADF.
  UniqueFd path_only(::open("/", O_PATH | O_CLOEXEC));
  ASSERT_TRUE(path_only);
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_add_region({0, 4096}), path_only.get()).ok());
  wire::Message in{};
  UniqueFd got;
  const MessageResult r = receive_message(p.b.get(), in, got);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(got);
  EXPECT_EQ(r.fds_dropped, 1u);
  EXPECT_EQ(r.describe(), std::string("making the received region/interrupt fd non-blocking: ") + std::strerror(EBADF));
}

TEST(MemifControl, ThreeFdsKeepTheFirstAndCloseTheOthers) {
  auto p = seqpacket_pair();
  const int before = count_fds();
  {
    UniqueFd e0(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    UniqueFd e1(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    UniqueFd e2(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    write_counter(e0.get(), 10);
    write_counter(e1.get(), 20);
    write_counter(e2.get(), 30);
    // A well-formed ADD_RING, but with three fds.
    const wire::Message m = wire::encode_add_ring({});
    iovec iov{const_cast<wire::Message*>(&m), 128};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(3 * sizeof(int))] = {};
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3 * sizeof(int));
    const int fds[3] = {e0.get(), e1.get(), e2.get()};
    std::memcpy(CMSG_DATA(c), fds, sizeof fds);
    ASSERT_EQ(::sendmsg(p.a.get(), &mh, MSG_NOSIGNAL), 128);
  }
  ASSERT_EQ(count_fds(), before);  // only the copies in flight hold the eventfds now
  wire::Message in{};
  UniqueFd got;
  const MessageResult r = receive_message(p.b.get(), in, got);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.fds_dropped, 2u);
  ASSERT_TRUE(got);
  EXPECT_EQ(read_counter(got.get()), 10u);  // the first fd of the message
  EXPECT_EQ(count_fds(), before + 1);      // one kept, two closed
  got.reset();
  EXPECT_EQ(count_fds(), before);
}

TEST(MemifControl, TooManyFdsAreReportedAndNoneLeaks) {
  auto p = seqpacket_pair();
  const int before = count_fds();
  {
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
    send_raw(p.a.get(), 128, std::vector<int>(40, efd.get()));  // more than the receiver's 16
  }
  wire::Message in{};
  UniqueFd got;
  const MessageResult r = receive_message(p.b.get(), in, got);
  EXPECT_EQ(r.code, Errc::layout);
  EXPECT_TRUE(r.control_truncated);
  EXPECT_NE(r.describe().find("control data truncated"), std::string::npos);
  EXPECT_FALSE(got);
  EXPECT_EQ(count_fds(), before);
}

TEST(MemifControl, CredentialsAreIgnored) {
  auto p = seqpacket_pair();
  const int one = 1;
  ASSERT_EQ(::setsockopt(p.b.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_connect("if0"), efd.get()).ok());
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_connected("if1")).ok());
  wire::Message in{};
  UniqueFd got;
  MessageResult r = receive_message(p.b.get(), in, got);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_TRUE(got);
  EXPECT_EQ(wire::decode_connect(in), "if0");
  r = receive_message(p.b.get(), in, got);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_FALSE(got);
  EXPECT_EQ(wire::decode_connected(in), "if1");
}

TEST(MemifControl, EofAfterThePeerCloses) {
  auto p = seqpacket_pair();
  ASSERT_TRUE(send_message(p.a.get(), wire::encode_disconnect(0, "bye")).ok());
  p.a.reset();
  wire::Message in{};
  UniqueFd got;
  ASSERT_TRUE(receive_message(p.b.get(), in, got).ok());  // queued data first
  EXPECT_EQ(wire::decode_disconnect(in).reason, "bye");
  const MessageResult r = receive_message(p.b.get(), in, got);
  EXPECT_EQ(r.code, Errc::closed);
  EXPECT_EQ(r.bytes, 0u);
  // Sending to a closed peer is `closed` too, and raises no SIGPIPE.
  const MessageResult s = send_message(p.b.get(), wire::encode_ack());
  EXPECT_EQ(s.code, Errc::closed);
  EXPECT_EQ(s.sys_errno, EPIPE);
}

TEST(MemifControl, NonBlockingReceiveWithNothingQueuedWouldBlock) {
  auto p = seqpacket_pair(true);
  wire::Message in{};
  UniqueFd got;
  const MessageResult r = receive_message(p.b.get(), in, got);
  EXPECT_EQ(r.code, Errc::would_block);
  EXPECT_EQ(r.sys_errno, EAGAIN);
}

// ---- addresses ---------------------------------------------------------------------------------

TEST(MemifSocketName, AbstractNameHasNoTrailingNul) {
  const SocketAddress a = parse_socket_name("@memif-test");
  EXPECT_TRUE(a.abstract);
  EXPECT_EQ(a.display, "@memif-test");
  EXPECT_TRUE(a.path.empty());
  EXPECT_EQ(a.addr.sun_family, AF_UNIX);
  EXPECT_EQ(a.addr.sun_path[0], '\0');
  EXPECT_EQ(std::memcmp(a.addr.sun_path + 1, "memif-test", 10), 0);
  EXPECT_EQ(a.length, offsetof(sockaddr_un, sun_path) + 1 + 10);  // 2 + 1 + 10 = 13
  EXPECT_EQ(a.length, 13u);
}

TEST(MemifSocketName, FilesystemPath) {
  const SocketAddress a = parse_socket_name("/run/vpp/memif.sock");
  EXPECT_FALSE(a.abstract);
  EXPECT_EQ(a.path, "/run/vpp/memif.sock");
  EXPECT_EQ(a.display, "/run/vpp/memif.sock");
  EXPECT_STREQ(a.addr.sun_path, "/run/vpp/memif.sock");
  EXPECT_EQ(a.length, offsetof(sockaddr_un, sun_path) + 19 + 1);
}

TEST(MemifSocketName, Limits) {
  EXPECT_NO_THROW(parse_socket_name(std::string(107, 'p')));
  EXPECT_NO_THROW(parse_socket_name("@" + std::string(107, 'a')));
  auto code_of = [](const std::string& name) {
    try {
      parse_socket_name(name);
    } catch (const Error& e) {
      return e.errc();
    }
    return Errc::ok;
  };
  EXPECT_EQ(code_of(std::string(108, 'p')), Errc::name_too_long);
  EXPECT_EQ(code_of("@" + std::string(108, 'a')), Errc::name_too_long);
  EXPECT_EQ(code_of(""), Errc::invalid_argument);
  EXPECT_EQ(code_of("@"), Errc::invalid_argument);
  EXPECT_EQ(code_of(std::string("/tmp/a\0b", 8)), Errc::invalid_argument);
  // A leading NUL is libmemif's other spelling of an abstract name.
  const SocketAddress z = parse_socket_name(std::string("\0zz", 3));
  EXPECT_TRUE(z.abstract);
  EXPECT_EQ(z.display, "@zz");
  EXPECT_EQ(z.length, offsetof(sockaddr_un, sun_path) + 3);
}

TEST(MemifSocketOptions, HandshakeTimeoutOutOfRangeIsRefusedNamingTheSocket) {
  auto error_of = [](std::chrono::milliseconds t) -> std::string {
    SocketOptions o;
    o.path = "@shmlink-test-handshake-range";
    o.handshake_timeout = t;
    try {
      Socket s(o);
    } catch (const Error& e) {
      EXPECT_EQ(e.errc(), Errc::invalid_argument);
      return e.what();
    }
    return "";
  };
  // now + milliseconds::max() overflows the steady clock (a deadline in the past, or UB).
  const std::string huge = error_of(std::chrono::milliseconds::max());
  EXPECT_NE(huge.find("@shmlink-test-handshake-range"), std::string::npos) << huge;
  EXPECT_NE(huge.find("above the limit of 1 hour"), std::string::npos) << huge;
  EXPECT_NE(error_of(std::chrono::hours(1) + std::chrono::milliseconds(1)), "");
  EXPECT_NE(error_of(std::chrono::milliseconds(-1)), "");
  EXPECT_EQ(error_of(std::chrono::hours(1)), "");
  EXPECT_EQ(error_of(std::chrono::milliseconds(0)), "");
}

// ---- listeners and connects ----------------------------------------------------------------------

TEST(MemifListener, AbstractListenConnectAndExchange) {
  const std::string name = "@shmlink-test-" + unique_name();
  const SocketAddress addr = parse_socket_name(name);
  SeqpacketListener l = listen_seqpacket(addr);
  ASSERT_TRUE(l.is_open());
  sockaddr_un bound{};
  socklen_t len = sizeof bound;
  ASSERT_EQ(::getsockname(l.fd(), reinterpret_cast<sockaddr*>(&bound), &len), 0);
  EXPECT_EQ(len, offsetof(sockaddr_un, sun_path) + name.size());  // '\0' + name, nothing more
  EXPECT_EQ(len, addr.length);
  EXPECT_EQ(bound.sun_path[0], '\0');
  EXPECT_EQ(std::string(bound.sun_path + 1, len - offsetof(sockaddr_un, sun_path) - 1), name.substr(1));

  UniqueFd server;
  EXPECT_EQ(l.accept(server).code, Errc::would_block);  // nobody yet
  ConnectResult c = connect_seqpacket(addr);
  ASSERT_TRUE(c) << std::strerror(c.error);
  ASSERT_TRUE(l.accept(server).ok());
  EXPECT_NE(::fcntl(server.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(c.fd.get(), F_GETFD) & FD_CLOEXEC, 0);

  // The master greets, the slave answers with a region fd: the section 6 opening.
  ASSERT_TRUE(send_message(server.get(), wire::encode_hello({})).ok());
  wire::Message in{};
  UniqueFd got;
  ASSERT_TRUE(receive_message(c.fd.get(), in, got).ok());
  EXPECT_EQ(wire::decode_hello(in).max_log2_ring_size, 14);
  UniqueFd mem(::memfd_create("r", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(mem.get(), 64), 0);
  ASSERT_TRUE(send_message(c.fd.get(), wire::encode_add_region({0, 64}), mem.get()).ok());
  MessageResult r = receive_message(server.get(), in, got);
  ASSERT_TRUE(r.ok()) << r.describe();  // the listener's SO_PASSCRED adds credentials: ignored
  ASSERT_TRUE(got);
  ASSERT_EQ(::pwrite(got.get(), "x", 1, 0), 1);
  char ch = 0;
  ASSERT_EQ(::pread(mem.get(), &ch, 1, 0), 1);
  EXPECT_EQ(ch, 'x');

  // A second listener on the same abstract name is refused.
  try {
    listen_seqpacket(addr);
    ADD_FAILURE() << "second listener on " << name;
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  // Closed: the name is free again, nothing to unlink.
  l.close();
  EXPECT_EQ(connect_seqpacket(addr).error, ECONNREFUSED);
  EXPECT_NO_THROW(listen_seqpacket(addr));
}

TEST(MemifListener, ListenerIsNonBlockingCloexecWithPasscred) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  SeqpacketListener l = listen_seqpacket(parse_socket_name(dir.path() + "/" + unique_name()));
  EXPECT_NE(::fcntl(l.fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(l.fd(), F_GETFL) & O_NONBLOCK, 0);
  int v = 0;
  socklen_t len = sizeof v;
  ASSERT_EQ(::getsockopt(l.fd(), SOL_SOCKET, SO_PASSCRED, &v, &len), 0);
  EXPECT_NE(v, 0);
  int type = 0;
  len = sizeof type;
  ASSERT_EQ(::getsockopt(l.fd(), SOL_SOCKET, SO_TYPE, &type, &len), 0);
  EXPECT_EQ(type, SOCK_SEQPACKET);
}

TEST(MemifListener, ConnectErrorsAreDistinguishable) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/" + unique_name();
  EXPECT_EQ(connect_seqpacket(parse_socket_name(path)).error, ENOENT);
  EXPECT_EQ(connect_seqpacket(parse_socket_name(path)).errc(), Errc::not_found);
  {
    // A socket file nobody listens on.
    UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    const SocketAddress a = parse_socket_name(path);
    ASSERT_EQ(::bind(s.get(), a.sockaddr_ptr(), a.length), 0);
  }
  EXPECT_EQ(connect_seqpacket(parse_socket_name(path)).error, ECONNREFUSED);
  EXPECT_EQ(connect_seqpacket(parse_socket_name("@shmlink-test-" + unique_name())).error, ECONNREFUSED);
}

TEST(MemifListener, StaleSocketFileIsReplaced) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/" + unique_name();
  const SocketAddress addr = parse_socket_name(path);
  {
    // Bound and closed without unlink, like a crashed libmemif master (section 13.3).
    UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length), 0);
    ASSERT_EQ(::listen(s.get(), 1), 0);
  }
  struct stat old_st{};
  ASSERT_EQ(::lstat(path.c_str(), &old_st), 0);
  // A second name keeps the stale inode allocated, so its number cannot be reused for the new one.
  const std::string keep = path + ".old";
  ASSERT_EQ(::link(path.c_str(), keep.c_str()), 0);
  SeqpacketListener l = listen_seqpacket(addr);
  struct stat new_st{};
  ASSERT_EQ(::lstat(path.c_str(), &new_st), 0);
  EXPECT_TRUE(S_ISSOCK(new_st.st_mode));
  EXPECT_NE(new_st.st_ino, old_st.st_ino);
  ConnectResult c = connect_seqpacket(addr);
  EXPECT_TRUE(c) << std::strerror(c.error);
}

TEST(MemifListener, LiveListenerPathIsExists) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/" + unique_name();
  const SocketAddress addr = parse_socket_name(path);
  SeqpacketListener first = listen_seqpacket(addr);
  try {
    SeqpacketListener second = listen_seqpacket(addr);
    ADD_FAILURE() << "second listener on " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find("active listener on " + path), std::string::npos) << e.what();
  }
  // The refused listener left the first one's socket in place.
  ConnectResult c = connect_seqpacket(addr);
  EXPECT_TRUE(c) << std::strerror(c.error);
  UniqueFd server;
  EXPECT_TRUE(first.accept(server).ok());  // the probe's connection, or ours
}

TEST(MemifListener, RegularFileAtThePathIsAnErrorNamingIt) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/" + unique_name();
  std::ofstream(path) << "not a socket";
  try {
    listen_seqpacket(parse_socket_name(path));
    ADD_FAILURE() << "listened over a regular file";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_regular_file(path));  // untouched
}

TEST(MemifListener, MissingDirectoryIsNotFound) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/no-such-dir/" + unique_name();
  try {
    listen_seqpacket(parse_socket_name(path));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(MemifListener, UnlinksItsPathOnCloseAndDestruction) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/" + unique_name();
  SeqpacketListener l = listen_seqpacket(parse_socket_name(path));
  EXPECT_TRUE(std::filesystem::exists(path));
  l.close();
  EXPECT_FALSE(l.is_open());
  EXPECT_FALSE(std::filesystem::exists(path));
  l.close();  // idempotent
  {
    SeqpacketListener m = listen_seqpacket(parse_socket_name(path));
    SeqpacketListener moved = std::move(m);  // the path follows the move, unlinked once
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(MemifListener, LeavesAReplacedPathAlone) {
  TempStreamDir dir;  // a private directory (any would do; sockets live in it)
  const std::string path = dir.path() + "/" + unique_name();
  {
    SeqpacketListener l = listen_seqpacket(parse_socket_name(path));
    ASSERT_EQ(::unlink(path.c_str()), 0);
    std::ofstream(path) << "someone else's";
  }
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

}  // namespace
