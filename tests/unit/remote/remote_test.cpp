// SPDX-License-Identifier: MIT
// The client of the bridge service's control socket (include/shmlink/remote.hpp) and the
// transparent open of remote names by Stream::open / Queue::open, against a fake service
// (tests/common/fake_control_server.hpp) in a private stream directory.
#include <shmlink/log.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/remote.hpp>
#include <shmlink/stream.hpp>

#include "fake_control_server.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlink::Errc;
using shmlink::Error;
using shmlink::test::FakeControlServer;
namespace remote = shmlink::remote;
namespace fs = std::filesystem;

/// Sets (or unsets, with nullopt) an environment variable for the scope.
class EnvVar {
 public:
  EnvVar(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value->c_str(), 1);
    else ::unsetenv(name);
  }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;
  ~EnvVar() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// A private stream directory with the variables the client reads cleared.
class Remote : public ::testing::Test {
 protected:
  shmlink::test::TempStreamDir dir_;
  EnvVar socket_{"SHMLINK_BRIDGE_SOCKET", std::nullopt};
  EnvVar bridge_{"SHMLINK_BRIDGE", std::nullopt};
  EnvVar timeout_{"SHMLINK_BRIDGE_TIMEOUT_MS", std::nullopt};
  EnvVar xdg_{"XDG_CONFIG_HOME", dir_.path() + "/config"};  // no config file unless a test writes one
  EnvVar home_{"HOME", dir_.path() + "/user"};

  [[nodiscard]] std::string socket_path() const { return dir_.path() + "/.shmlink-bridge.sock"; }

  /// Expects `f` to throw an Error with condition `e` and returns its message.
  template <class F>
  static std::string error_of(F&& f, Errc e) {
    try {
      f();
    } catch (const Error& x) {
      EXPECT_EQ(x.errc(), e) << x.what();
      return x.what();
    }
    ADD_FAILURE() << "no Error thrown";
    return {};
  }
};

TEST_F(Remote, RequestRoundTripReturnsTheFieldsAfterOk) {
  FakeControlServer server(socket_path(), [](const std::vector<std::string>& f) {
    return f == std::vector<std::string>{"PING"} ? FakeControlServer::ok({"node-a", "x y"})
                                                : FakeControlServer::err(Errc::protocol, "unexpected");
  });
  EXPECT_EQ(remote::request({"PING"}, 5s), (std::vector<std::string>{"node-a", "x y"}));
  EXPECT_EQ(server.last(), std::vector<std::string>{"PING"});
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(Remote, SocketVariableOverridesTheDirectory) {
  const std::string other = dir_.path() + "/other.sock";
  EnvVar var("SHMLINK_BRIDGE_SOCKET", other);
  FakeControlServer server(other, [](const auto&) { return FakeControlServer::ok({"b"}); });
  EXPECT_EQ(remote::request({"PING"}, 5s), std::vector<std::string>{"b"});
}

TEST_F(Remote, ErrReplyCarriesTheServiceConditionAndNamesTheSocket) {
  FakeControlServer server(socket_path(), [](const auto&) {
    return FakeControlServer::err(Errc::permission, "rtc1 refuses 'wfs' (read-only)");
  });
  const std::string what = error_of([] { remote::request({"OPEN", "stream", "rtc1", "wfs", "100", "0"}, 5s); },
                                    Errc::permission);
  EXPECT_NE(what.find(socket_path()), std::string::npos) << what;
  EXPECT_NE(what.find("wfs"), std::string::npos) << what;
  EXPECT_NE(what.find("read-only"), std::string::npos) << what;
  for (Errc e : {Errc::not_found, Errc::timeout, Errc::refused, Errc::busy})
    EXPECT_EQ(shmlink::control::errc_from_name(shmlink::control::errc_name(e)), e);
}

TEST_F(Remote, NoServiceIsNotFoundAtOnceNamingTheSocket) {
  // A wait of ten minutes if the client waited for a service: the answer must come back anyway.
  auto answer = std::async(std::launch::async, [] {
    return error_of([] { remote::request({"PING"}, 600s); }, Errc::not_found);
  });
  ASSERT_EQ(answer.wait_for(60s), std::future_status::ready) << "request() waited for a missing service";
  const std::string what = answer.get();
  EXPECT_NE(what.find(socket_path()), std::string::npos) << what;
  EXPECT_NE(what.find("shmlink bridge serve"), std::string::npos) << what;
}

TEST_F(Remote, SocketLeftByAnEndedServiceIsNotFound) {
  { FakeControlServer server(socket_path(), [](const auto&) { return FakeControlServer::ok(); }); }
  // The file stays (as after a crash) but nobody listens: ECONNREFUSED.
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_path().copy(addr.sun_path, socket_path().size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  ASSERT_TRUE(fs::exists(socket_path()));
  error_of([] { remote::request({"PING"}, 600s); }, Errc::not_found);
}

TEST_F(Remote, ReplyWithoutMagicIsAProtocolError) {
  FakeControlServer server(socket_path(), [](const auto&) { return std::string("HTTP/1.1 400\tOK"); });
  const std::string what = error_of([] { remote::request({"PING"}, 5s); }, Errc::protocol);
  EXPECT_NE(what.find("magic"), std::string::npos) << what;
}

TEST_F(Remote, ReplyNeitherOkNorErrIsAProtocolError) {
  FakeControlServer server(socket_path(), [](const auto&) {
    return shmlink::control::encode({"MAYBE", "x"});
  });
  error_of([] { remote::request({"PING"}, 5s); }, Errc::protocol);
}

TEST_F(Remote, OversizedReplyIsRefused) {
  FakeControlServer server(socket_path(), [](const auto&) {
    return FakeControlServer::ok({std::string(shmlink::control::kMaxDatagram, 'x')});
  });
  const std::string what = error_of([] { remote::request({"LS"}, 5s); }, Errc::protocol);
  EXPECT_NE(what.find("larger than"), std::string::npos) << what;
}

TEST_F(Remote, SilentServiceTimesOut) {
  FakeControlServer server(socket_path(), [](const auto&) { return FakeControlServer::kNoReply; });
  const std::string what = error_of([] { remote::request({"STATUS"}, 100ms); }, Errc::timeout);
  EXPECT_NE(what.find("STATUS"), std::string::npos) << what;
}

TEST_F(Remote, FieldWithATabIsRefusedBeforeSending) {
  FakeControlServer server(socket_path(), [](const auto&) { return FakeControlServer::ok(); });
  error_of([] { remote::request({"OPEN", "stream", "", "a\tb", "1", "0"}, 5s); }, Errc::invalid_argument);
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(Remote, SplitRemoteName) {
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(remote::split_remote_name("rtc1:wfs"), P("rtc1", "wfs"));
  EXPECT_EQ(remote::split_remote_name("rtc-1.lab_2:a:b"), P("rtc-1.lab_2", "a:b"));
  EXPECT_EQ(remote::split_remote_name("wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name(":wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name("rtc1:"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name("ivshmem:wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name("/dev/shm/r.region:wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name("rtc1:dir/wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name("bad host:wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name(std::string(64, 'h') + ":wfs"), std::nullopt);
  EXPECT_EQ(remote::split_remote_name(std::string(63, 'h') + ":wfs"), P(std::string(63, 'h'), "wfs"));
  EXPECT_EQ(remote::split_remote_name("rtc1:" + std::string(80, 'n')), std::nullopt);
  EXPECT_EQ(remote::split_remote_name("rtc1:a\nb"), std::nullopt);
}

/// Writes `text` to `path`, creating its directories.
void write_file(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST_F(Remote, EnabledByEnvironmentAndConfigFiles) {
  std::vector<std::string> warnings;
  std::mutex m;
  shmlink::set_log_handler([&](shmlink::LogLevel level, std::string_view text) {
    std::lock_guard<std::mutex> lock(m);
    if (level == shmlink::LogLevel::warn) warnings.emplace_back(text);
  });
  const bool etc = fs::exists("/etc/shmlink/shmlink.conf");
  if (!etc) {
    EXPECT_FALSE(remote::remote_open_enabled());  // default: off
  }
  {
    EnvVar on("SHMLINK_BRIDGE", "auto");
    EXPECT_TRUE(remote::remote_open_enabled());
  }
  const std::string xdg_conf = dir_.path() + "/config/shmlink/shmlink.conf";
  write_file(xdg_conf, "# shmlink settings\n\n  bridge =  auto   # ask the service\n");
  EXPECT_TRUE(remote::remote_open_enabled());
  {
    EnvVar off("SHMLINK_BRIDGE", "off");  // the variable wins over the file
    EXPECT_FALSE(remote::remote_open_enabled());
  }
  write_file(xdg_conf, "bridge=off\n");
  EXPECT_FALSE(remote::remote_open_enabled());
  // Without XDG_CONFIG_HOME: $HOME/.config.
  write_file(dir_.path() + "/user/.config/shmlink/shmlink.conf", "bridge = auto\n");
  {
    EnvVar no_xdg("XDG_CONFIG_HOME", std::nullopt);
    EXPECT_TRUE(remote::remote_open_enabled());
  }
  ASSERT_TRUE(warnings.empty()) << warnings.front();
  // Lines it does not understand are warned about (naming the file and line) and ignored.
  write_file(xdg_conf, "bridge = auto\nbridge = sometimes\nfoo\n");
  EXPECT_TRUE(remote::remote_open_enabled());
  {
    EnvVar bad("SHMLINK_BRIDGE", "yes");
    EXPECT_TRUE(remote::remote_open_enabled());  // ignored: the file decides
  }
  shmlink::set_log_handler({});
  ASSERT_EQ(warnings.size(), 5u);  // the file's two lines, the variable, the file's two lines again
  EXPECT_NE(warnings[0].find(xdg_conf + ":2: ignored 'bridge = sometimes'"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find(xdg_conf + ":3: ignored 'foo'"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find("SHMLINK_BRIDGE='yes'"), std::string::npos) << warnings[2];
}

TEST_F(Remote, OpenTimeoutFromTheEnvironment) {
  EXPECT_EQ(remote::open_timeout(), 5000ms);
  EnvVar t("SHMLINK_BRIDGE_TIMEOUT_MS", "250");
  EXPECT_EQ(remote::open_timeout(), 250ms);
  EnvVar bad("SHMLINK_BRIDGE_TIMEOUT_MS", "soon");
  EXPECT_EQ(remote::open_timeout(), 5000ms);
}

/// A fake service that answers OPEN by creating the local replica (a stream, or a queue) named
/// like the remote channel and answering its path.
FakeControlServer::Handler replica_maker() {
  return [](const std::vector<std::string>& f) {
    if (f.size() != 6 || f[0] != "OPEN") return FakeControlServer::err(Errc::protocol, "bad request");
    if (f[1] == "queue") {
      shmlink::QueueSpec spec;
      spec.capacity = 8;
      spec.max_values = 2;
      return FakeControlServer::ok({shmlink::Queue::create(f[3], spec, shmlink::OpenMode::OpenOrCreate).path()});
    }
    return FakeControlServer::ok({shmlink::Stream::create(f[3], shmlink::test::spec_of({4, 2}, shmlink::Dtype::f32),
                                                          shmlink::OpenMode::OpenOrCreate)
                                      .path()});
  };
}

TEST_F(Remote, StreamOpenOfHostNameAsksTheServiceAndOpensTheReplica) {
  FakeControlServer server(socket_path(), replica_maker());
  const shmlink::Stream s = shmlink::Stream::open("rtc1:wfs");
  EXPECT_EQ(s.name(), "wfs");
  EXPECT_EQ(s.path(), dir_.path() + "/wfs.im.shm");
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "stream", "rtc1", "wfs", "5000", "0"}));
  // The suffix form asks for the same channel.
  EnvVar t("SHMLINK_BRIDGE_TIMEOUT_MS", "700");
  (void)shmlink::Stream::open("rtc1:wfs.im.shm");
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "stream", "rtc1", "wfs", "700", "0"}));
}

TEST_F(Remote, PlainMissingNameAsksOnlyWhenEnabled) {
  // A user config file without a setting decides (off), whatever /etc/shmlink/shmlink.conf says.
  write_file(dir_.path() + "/config/shmlink/shmlink.conf", "# nothing set\n");
  FakeControlServer server(socket_path(), replica_maker());
  error_of([] { (void)shmlink::Stream::open("wfs"); }, Errc::not_found);
  EXPECT_EQ(server.requests(), 0);
  EnvVar on("SHMLINK_BRIDGE", "auto");
  const shmlink::Stream s = shmlink::Stream::open("wfs");
  EXPECT_EQ(s.name(), "wfs");
  EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "stream", "", "wfs", "5000", "0"}));
  // Now the file exists: the service is not asked again.
  (void)shmlink::Stream::open("wfs");
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(Remote, LocalFileNamedLikeARemoteNameWins) {
  FakeControlServer server(socket_path(), replica_maker());
  (void)shmlink::Stream::create("rtc1:wfs", shmlink::test::spec_of({3}, shmlink::Dtype::u8));
  const shmlink::Stream s = shmlink::Stream::open("rtc1:wfs");
  EXPECT_EQ(s.name(), "rtc1:wfs");
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(Remote, PathsAreNeverAskedFor) {
  FakeControlServer server(socket_path(), replica_maker());
  EnvVar on("SHMLINK_BRIDGE", "auto");
  error_of([this] { (void)shmlink::Stream::open(dir_.path() + "/rtc1:wfs.im.shm"); }, Errc::not_found);
  error_of([this] { (void)shmlink::Queue::open(dir_.path() + "/q.queue.shm"); }, Errc::not_found);
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(Remote, MissingServiceFailsAtOnceNamingTheFileAndTheSocket) {
  const std::string what = error_of([] { (void)shmlink::Stream::open("rtc1:wfs"); }, Errc::not_found);
  EXPECT_NE(what.find(dir_.path() + "/rtc1:wfs.im.shm does not exist"), std::string::npos) << what;
  EXPECT_NE(what.find("no bridge service at " + socket_path()), std::string::npos) << what;
}

TEST_F(Remote, QueueOpenOfHostNameOpensTheReplicaOrPassesTheServiceErrorOn) {
  {
    FakeControlServer server(socket_path(), replica_maker());
    const shmlink::Queue q = shmlink::Queue::open("sim2:samples");
    EXPECT_EQ(q.path(), dir_.path() + "/samples.queue.shm");
    EXPECT_EQ(server.last(), (std::vector<std::string>{"OPEN", "queue", "sim2", "samples", "5000", "0"}));
  }
  FakeControlServer server(socket_path(), [](const auto&) {
    return FakeControlServer::err(Errc::invalid_argument, "queues are not served yet");
  });
  const std::string what = error_of([] { (void)shmlink::Queue::open("sim2:other"); }, Errc::invalid_argument);
  EXPECT_NE(what.find("queues are not served yet"), std::string::npos) << what;
  EXPECT_NE(what.find("other.queue.shm does not exist"), std::string::npos) << what;
}

TEST_F(Remote, ReplyWithARelativePathIsRefused) {
  FakeControlServer server(socket_path(), [](const auto&) { return FakeControlServer::ok({"wfs"}); });
  error_of([] { (void)shmlink::Stream::open("rtc1:wfs"); }, Errc::protocol);
  EXPECT_EQ(server.requests(), 1);
}

}  // namespace

namespace {

// A "service" listening as another user (uid 65534) on the socket name: the client refuses to
// talk to it (SO_PEERCRED) instead of trusting the paths it would answer. Needs root (to run a
// child as another uid); skipped otherwise.
TEST_F(Remote, ServiceOfAnotherUserIsNotTrusted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a listener as another uid";
  // A directory the other user can reach (dir_ itself is private to us).
  std::string shared = "/dev/shm/shmlink-remote-uid-XXXXXX";
  ASSERT_NE(::mkdtemp(shared.data()), nullptr);
  fs::permissions(shared, fs::perms::all);
  const std::string path = shared + "/.shmlink-bridge.sock";
  EnvVar var("SHMLINK_BRIDGE_SOCKET", path);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const int l = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (l < 0 || ::bind(l, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(l, 4) != 0) ::_exit(3);
    (void)!::write(ready[1], "r", 1);
    const int c = ::accept(l, nullptr, nullptr);
    char buf[512];
    if (c >= 0 && ::recv(c, buf, sizeof buf, 0) > 0) {
      const std::string reply = "SHMLINK-BRIDGE/1\tOK\tmallory";
      (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    ::_exit(0);
  }
  ::close(ready[1]);
  char r = 0;
  ASSERT_EQ(::read(ready[0], &r, 1), 1) << "the other user's listener did not start";
  ::close(ready[0]);
  const std::string msg = error_of([] { (void)remote::request({"PING"}, 5s); }, Errc::permission);
  EXPECT_NE(msg.find("uid 65534"), std::string::npos) << msg;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  fs::remove_all(shared);
}

}  // namespace
