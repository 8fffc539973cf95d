// SPDX-License-Identifier: MIT
// `shmlink ivshmem-server` (issue 21): started as QEMU's contrib server and as pscom's, joined
// by host peers, stopped by SIGTERM/SIGINT: the socket, pid file and shared memory are removed.
#include "test_util.hpp"

#include <shmlink/ivshmem_server.hpp>
#include <shmlink/region.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using shmlink::Errc;
using shmlink::ivshmem::Peer;
using shmlink::ivshmem::PeerOptions;

/// Starts `shmlink ARGS...` with stdout/stderr into `log`; returns its pid.
pid_t start_cli(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(out, 2);
    std::vector<char*> argv;
    std::string prog = SHMLINK_CLI_PATH;
    argv.push_back(prog.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(prog.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class IvshmemServerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "shmlink-test-ivcli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    sock_ = dir_.path() + "/iv.sock";
    log_ = dir_.path() + "/server.log";
    pid_file_ = dir_.path() + "/server.pid";
  }
  void TearDown() override { ::unlink(("/dev/shm/" + name_).c_str()); }

  shmlink::test::TempStreamDir dir_;
  std::string name_, sock_, log_, pid_file_;
};

TEST_F(IvshmemServerCli, QemuSpellingServesPeersAndSigtermRemovesSocketPidFileAndShm) {
  const pid_t pid = start_cli({"ivshmem-server", "-F", "-S", sock_, "-M", name_, "-l", "1M", "-n", "2", "-p", pid_file_}, log_);
  ASSERT_TRUE(shmlink::test::wait_until([&] { return fs::exists(pid_file_) || !shmlink::test::still_running(pid); }, 20))
      << slurp(log_);
  ASSERT_TRUE(shmlink::test::still_running(pid)) << slurp(log_);
  EXPECT_EQ(std::stoi(slurp(pid_file_)), pid);
  const std::string shm = "/dev/shm/" + name_;
  struct stat sb {};
  ASSERT_EQ(::stat(shm.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_size, 1 << 20);
  EXPECT_EQ(sb.st_mode & 0777, 0660u) << "readable and writable by the group QEMU may run as";
  EXPECT_FALSE(shmlink::Region::open(shm).same_kernel());
  {
    PeerOptions o;
    o.vectors = 2;
    Peer a = Peer::connect(sock_, o);
    Peer b = Peer::connect(sock_, o);
    EXPECT_EQ(a.id(), 0);
    EXPECT_EQ(b.id(), 1);
    ASSERT_EQ(b.ring(0, 1), Errc::ok);
    EXPECT_EQ(a.wait(1, 10s), Errc::ok);
  }
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_EQ(shmlink::test::reap(pid, 20), 0) << slurp(log_);
  EXPECT_FALSE(fs::exists(sock_));
  EXPECT_FALSE(fs::exists(pid_file_));
  EXPECT_FALSE(fs::exists(shm));
}

TEST_F(IvshmemServerCli, PscomSpellingTakesTheSizeInMegabytesAndTheSocketFromP) {
  const pid_t pid = start_cli({"ivshmem-server", "-s", name_, "-m", "2", "-p", sock_, "-c", "pscom", "--keep"}, log_);
  ASSERT_TRUE(shmlink::test::wait_until([&] { return fs::exists(sock_) || !shmlink::test::still_running(pid); }, 20))
      << slurp(log_);
  Peer a = Peer::connect(sock_);
  EXPECT_EQ(a.memory().size(), 2u << 20);
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  EXPECT_EQ(shmlink::test::reap(pid, 20), 0) << slurp(log_);
  EXPECT_FALSE(fs::exists(sock_));
  EXPECT_TRUE(fs::exists("/dev/shm/" + name_)) << "--keep leaves the shared memory";
}

TEST_F(IvshmemServerCli, WithoutForegroundItDetachesAndWritesThePidOfTheServer) {
  const pid_t parent = start_cli({"ivshmem-server", "-S", sock_, "-M", name_, "-l", "64K", "-p", pid_file_}, log_);
  EXPECT_EQ(shmlink::test::reap(parent, 20), 0) << slurp(log_);
  ASSERT_TRUE(fs::exists(pid_file_)) << "written before the starting process returns";
  ASSERT_TRUE(fs::exists(sock_));
  const pid_t daemon = std::stoi(slurp(pid_file_));
  ASSERT_NE(daemon, parent);
  { Peer a = Peer::connect(sock_); }
  ASSERT_EQ(::kill(daemon, SIGTERM), 0);
  EXPECT_TRUE(shmlink::test::wait_until([&] { return !fs::exists(pid_file_) && !fs::exists(sock_); }, 20));
  // Gone, or a zombie its new parent has not reaped yet.
  EXPECT_TRUE(shmlink::test::wait_until(
      [&] {
        const std::string stat = slurp("/proc/" + std::to_string(daemon) + "/stat");
        const auto close = stat.rfind(')');
        return stat.empty() || (close != std::string::npos && stat.compare(close, 3, ") Z") == 0);
      },
      20));
}

TEST_F(IvshmemServerCli, BadSizesAndMixedSpellingsAreUsageErrors) {
  const pid_t a = start_cli({"ivshmem-server", "-F", "-S", sock_, "-M", name_, "-l", "3M"}, log_);
  EXPECT_EQ(shmlink::test::reap(a, 20), 2) << slurp(log_);
  EXPECT_NE(slurp(log_).find("power of two"), std::string::npos) << slurp(log_);
  const pid_t b = start_cli({"ivshmem-server", "-s", name_, "-S", sock_}, log_);
  EXPECT_EQ(shmlink::test::reap(b, 20), 2) << slurp(log_);
  EXPECT_FALSE(fs::exists(sock_));
  EXPECT_FALSE(fs::exists("/dev/shm/" + name_));
}

}  // namespace
