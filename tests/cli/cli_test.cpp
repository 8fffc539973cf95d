// SPDX-License-Identifier: MIT
// Tests of the `shmlink` command-line tool: they run the real binary (SHMLINK_CLI_PATH) with
// fork/exec in a private stream directory ($SHMLINK_DIR) and check its stdout, stderr and exit
// status, using the C++ API to write frames and to play live writers and readers.
#include <shmlink/interface.hpp>
#include <shmlink/memif.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include "isio_file.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef SHMLINK_CLI_PATH
#error "SHMLINK_CLI_PATH must name the shmlink binary"
#endif

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

/// What a finished CLI run left behind.
struct RunResult {
  int code = -1;    ///< exit status, or 128 + signal
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// A running `shmlink` process with its stdout and stderr piped to us.
class CliProcess {
 public:
  /// Starts the CLI with `args` (argv[0] is added). `before_exec`, when given, runs in the
  /// child between fork and exec (umask, credentials); the child exits 126 when it throws.
  explicit CliProcess(const std::vector<std::string>& args, const std::function<void()>& before_exec = {}) {
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (before_exec) {
        try {
          before_exec();
        } catch (...) {
          ::_exit(126);
        }
      }
      std::vector<char*> argv;
      std::string exe = SHMLINK_CLI_PATH;
      argv.push_back(exe.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
  }
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;
  ~CliProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }

  /// The child's pid.
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Stdout read so far.
  [[nodiscard]] const std::string& out() const noexcept { return out_; }

  /// Reads output until `pred(stdout so far)` holds, the child closes its stdout, or `limit`
  /// passes; returns whether pred held.
  bool read_until(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred(out_)) {
      if (out_fd_ < 0 || std::chrono::steady_clock::now() > deadline) return pred(out_);
      pump(50);
    }
    return true;
  }

  /// Reads what output is there without waiting (keeps a chatty child from blocking on a
  /// full pipe).
  void drain() { pump(0); }

  /// Reads stdout and stderr to EOF and reaps the child; kills it after `limit`. The result
  /// holds everything the child wrote, including what read_until() already read.
  RunResult finish(std::chrono::milliseconds limit = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool killed = false;
    while (out_fd_ >= 0 || err_fd_ >= 0) {
      pump(100);
      if (!killed && std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        killed = true;
      }
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    RunResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = out_;
    r.err = err_;
    return r;
  }

 private:
  /// Waits up to `timeout_ms` for output and appends what is there; closes a pipe at EOF.
  void pump(int timeout_ms) {
    std::array<pollfd, 2> fds{{{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}}};
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n <= 0) return;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? out_ : err_).append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        (i == 0 ? out_fd_ : err_fd_) = -1;
      }
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

/// Runs the CLI to completion.
RunResult run_cli(const std::vector<std::string>& args) { return CliProcess(args).finish(); }

/// Renders a result for assertion messages.
std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

/// Parses stdout as JSON, failing the test (not crashing) on bad JSON.
json parse_json(const RunResult& r) {
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << describe(r);
  return j;
}

/// A forked helper process (a writer or reader played with the C++ API), killed on destruction.
class Child {
 public:
  /// Runs `body` in a forked child, which exits when body returns or the parent dies.
  explicit Child(const std::function<void()>& body) {
    pid_ = ::fork();
    if (pid_ == 0) {
      try {
        body();
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  /// The child's pid.
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Kills and reaps the child.
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
};

/// Polls `pred` every 10 ms for up to `limit`; true when it held.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

/// Body of a writer child: writes zero frames to `name` about every millisecond for at most
/// 60 s, optionally holding semaphore slot 0 as a reader too.
void writer_loop(const std::string& name, bool claim_semaphore) {
  shmlink::Stream s = shmlink::Stream::open(name);
  if (claim_semaphore && s.claim_semaphore(0) < 0) ::_exit(2);
  std::vector<std::byte> frame(s.frame_bytes());
  const auto stop = std::chrono::steady_clock::now() + 60s;
  const pid_t parent = ::getppid();
  while (std::chrono::steady_clock::now() < stop && ::getppid() == parent) {
    (void)s.write(frame);
    std::this_thread::sleep_for(1ms);
  }
}

/// The raw bytes of a file.
std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// The .npy v1.0 header numpy itself writes for a C-order array with `dict`
/// ("{'descr': ..., }"): padded with spaces and '\n' to a multiple of 64 bytes.
std::string expected_npy_header(const std::string& dict) {
  std::string padded = dict;
  while ((10 + padded.size() + 1) % 64 != 0) padded += ' ';
  padded += '\n';
  std::string h("\x93NUMPY\x01\x00", 8);
  h += static_cast<char>(padded.size() & 0xFF);
  h += static_cast<char>(padded.size() >> 8);
  return h + padded;
}

/// Each test gets its own stream directory through $SHMLINK_DIR.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "shmlink-cli-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ::setenv("SHMLINK_DIR", dir_.c_str(), 1);
    ::unsetenv("MILK_SHM_DIR");
    ::setenv("NO_COLOR", "1", 1);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Path of stream `name` in the test directory.
  [[nodiscard]] fs::path stream_file(const std::string& name) const { return dir_ / (name + ".im.shm"); }

  /// Creates a stream through the CLI, asserting success.
  void create(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"create"};
    full.insert(full.end(), args.begin(), args.end());
    const RunResult r = run_cli(full);
    ASSERT_EQ(r.code, 0) << describe(r);
  }

  fs::path dir_;
};

// gtest suite name "cli", so that `ctest -R cli` selects these tests.
using cli = CliTest;

TEST_F(cli, HelpExitsZeroAndDocumentsExitCodes) {
  const RunResult r = run_cli({"--help"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("124"), std::string::npos) << r.out;
  for (const char* sub : {"ls", "info", "create", "rm", "monitor", "cat"}) {
    EXPECT_NE(r.out.find(sub), std::string::npos) << sub;
  }
  const RunResult sub = run_cli({"create", "--help"});
  EXPECT_EQ(sub.code, 0) << describe(sub);
  EXPECT_NE(sub.out.find("--shape"), std::string::npos) << sub.out;
}

TEST_F(cli, VersionExitsZero) {
  const RunResult r = run_cli({"--version"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("shmlink ", 0), 0u) << r.out;
}

TEST_F(cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_cli({}).code, 2);
  EXPECT_EQ(run_cli({"frobnicate"}).code, 2);
  EXPECT_EQ(run_cli({"ls", "--no-such-option"}).code, 2);
  EXPECT_EQ(run_cli({"ls", "--interval", "-1"}).code, 2);
  EXPECT_EQ(run_cli({"info"}).code, 2);  // NAME is required
  const RunResult r = run_cli({"create", "x"});  // --shape is required
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_NE(r.err.find("--shape"), std::string::npos) << r.err;
}

TEST_F(cli, UsageErrorsCarryTheDocumentedPrefix) {
  const std::vector<std::vector<std::string>> cases = {
      {},                                      // no subcommand
      {"frobnicate"},                          // unknown subcommand
      {"ls", "--no-such-option"},              // unknown option
      {"ls", "--interval", "-1"},              // a validator refuses the value
      {"info"},                                // a required argument is missing
      {"create", "x", "--dtype", "u17", "--shape", "4"},
      {"memif", "ping", "--bogus"},            // a nested subcommand
  };
  for (const auto& args : cases) {
    const RunResult r = run_cli(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << describe(r);
    EXPECT_EQ(r.err.rfind("shmlink: error: ", 0), 0u) << line << describe(r);
    EXPECT_NE(r.err.find("--help"), std::string::npos) << line << describe(r);
  }
}

TEST_F(cli, ExitCodeTableIsOnlyInTheTopLevelHelp) {
  const RunResult top = run_cli({"--help"});
  ASSERT_EQ(top.code, 0) << describe(top);
  EXPECT_NE(top.out.find("Exit codes:\n"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("  3    stream, queue"), std::string::npos) << top.out;
  for (const std::vector<std::string>& sub :
       {std::vector<std::string>{"create", "--help"}, {"ls", "--help"}, {"cat", "--help"}, {"monitor", "--help"},
        {"bench", "stream", "--help"}, {"memif", "ping", "--help"}, {"memif", "--help"}}) {
    const RunResult r = run_cli(sub);
    ASSERT_EQ(r.code, 0) << sub[0] << describe(r);
    EXPECT_EQ(r.out.find("Exit codes:\n"), std::string::npos) << sub[0] << "\n" << r.out;
    EXPECT_EQ(r.out.find("  3    stream, queue"), std::string::npos) << sub[0] << "\n" << r.out;
    EXPECT_NE(r.out.find("shmlink --help"), std::string::npos) << sub[0] << "\n" << r.out;
  }
}

TEST_F(cli, TopLevelHelpDescribesEveryChannelKindAndCommand) {
  const RunResult r = run_cli({"--help"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string intro = r.out.substr(0, r.out.find("Subcommands:"));
  for (const char* kind : {"streams", "queues", "memif", ".im.shm", ".queue.shm"})
    EXPECT_NE(intro.find(kind), std::string::npos) << kind << "\n" << r.out;
  for (const char* sub : {"ls", "info", "create", "rm", "monitor", "cat", "gc", "bench", "memif"})
    EXPECT_NE(r.out.find("\n  " + std::string(sub) + " "), std::string::npos) << sub << "\n" << r.out;
}

TEST_F(cli, CreateLsInfoCatRmRoundTrip) {
  create({"cam", "--shape", "5x3", "--dtype", "u16", "--keywords", "4", "--semaphores", "3"});
  ASSERT_TRUE(fs::exists(stream_file("cam")));

  // Keywords and a known frame, written with the C++ API.
  std::vector<std::uint16_t> frame(15);
  for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::uint16_t>(i * 1000 + 7);
  {
    shmlink::Stream s = shmlink::Stream::open("cam");
    s.set_keyword("EXPTIME", 0.25, "exposure [s]");
    s.set_keyword("GAIN", std::int64_t{3});
    s.set_keyword("MODE", std::string("fast"));
    ASSERT_TRUE(s.write(std::span<const std::uint16_t>(frame)).ok());
  }

  // ls, text.
  RunResult r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("cam"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5x3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("uint16"), std::string::npos) << r.out;

  // ls --json.
  r = run_cli({"ls", "--json", "--interval", "0.05"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  ASSERT_EQ(j.at("streams").size(), 1u) << r.out;
  const json& row = j["streams"][0];
  EXPECT_EQ(row.at("name"), "cam");
  EXPECT_EQ(row.at("shape"), json::array({5, 3}));
  EXPECT_EQ(row.at("dtype"), "uint16");
  EXPECT_EQ(row.at("cnt0"), 1);
  EXPECT_EQ(row.at("rate_hz"), 0.0);  // nobody writes during the interval
  EXPECT_EQ(row.at("writer_pid"), static_cast<int>(::getpid()));  // our write posted the semaphores
  EXPECT_EQ(row.at("writer_alive"), true);
  EXPECT_EQ(row.at("readers"), 0);
  EXPECT_EQ(row.at("semaphores"), 3);

  // info --json.
  r = run_cli({"info", "cam", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  EXPECT_EQ(j.at("name"), "cam");
  EXPECT_EQ(j.at("version"), "2.00");
  EXPECT_EQ(j.at("shape"), json::array({5, 3}));
  EXPECT_EQ(j.at("numpy_shape"), json::array({3, 5}));
  EXPECT_EQ(j.at("dtype"), "uint16");
  EXPECT_EQ(j.at("dtype_code"), 3);
  EXPECT_EQ(j.at("nelement"), 15);
  EXPECT_EQ(j.at("frame_bytes"), 30);
  EXPECT_EQ(j.at("file_bytes"), fs::file_size(stream_file("cam")));
  EXPECT_EQ(j.at("keyword_slots"), 4);
  EXPECT_EQ(j.at("semaphores"), 3);
  EXPECT_EQ(j.at("semaphore_slots").size(), 3u);
  EXPECT_EQ(j.at("cnt0"), 1);
  ASSERT_EQ(j.at("keywords").size(), 3u) << r.out;
  std::map<std::string, json> kw;
  for (const json& k : j["keywords"]) kw[k.at("name").get<std::string>()] = k;
  EXPECT_EQ(kw.at("EXPTIME").at("type"), "D");
  EXPECT_DOUBLE_EQ(kw.at("EXPTIME").at("value").get<double>(), 0.25);
  EXPECT_EQ(kw.at("EXPTIME").at("comment"), "exposure [s]");
  EXPECT_EQ(kw.at("GAIN").at("type"), "L");
  EXPECT_EQ(kw.at("GAIN").at("value"), 3);
  EXPECT_EQ(kw.at("MODE").at("type"), "S");
  EXPECT_EQ(kw.at("MODE").at("value"), "fast");

  // info, text.
  r = run_cli({"info", "cam"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("EXPTIME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5x3"), std::string::npos) << r.out;

  // cat --npy: header and bytes exactly.
  const fs::path npy = dir_ / "frame.npy";
  r = run_cli({"cat", "cam", "--npy", npy.string(), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string header = expected_npy_header("{'descr': '<u2', 'fortran_order': False, 'shape': (3, 5), }");
  const std::string bytes = read_file(npy);
  ASSERT_EQ(bytes.size(), header.size() + 30);
  EXPECT_EQ(header.size() % 64, 0u);
  EXPECT_EQ(bytes.substr(0, header.size()), header);
  EXPECT_EQ(std::memcmp(bytes.data() + header.size(), frame.data(), 30), 0);
  j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  EXPECT_EQ(j.at("cnt0"), 1);
  EXPECT_EQ(j.at("stats").at("min"), 7);
  EXPECT_EQ(j.at("stats").at("max"), 14007);
  EXPECT_DOUBLE_EQ(j.at("stats").at("mean").get<double>(), 7007.0);
  EXPECT_GT(j.at("atime_ns").get<std::int64_t>(), 0);

  // cat, text.
  r = run_cli({"cat", "cam"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("14007"), std::string::npos) << r.out;

  // rm, then ls lists nothing.
  r = run_cli({"rm", "cam"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(stream_file("cam")));
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(parse_json(r).at("streams").empty()) << r.out;
  r = run_cli({"ls"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.find("cam"), std::string::npos) << r.out;
}

TEST_F(cli, NpyShapeIsIsioShapeReversed) {
  create({"cube", "--shape", "4x3x2", "--dtype", "float32"});
  create({"line", "--shape", "7", "--dtype", "i8"});
  create({"cplx", "--shape", "2x2", "--dtype", "complex128"});
  const struct {
    const char* name;
    const char* dict;
    std::size_t data;
  } cases[] = {
      {"cube", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 96},
      {"line", "{'descr': '|i1', 'fortran_order': False, 'shape': (7,), }", 7},
      {"cplx", "{'descr': '<c16', 'fortran_order': False, 'shape': (2, 2), }", 64},
  };
  for (const auto& c : cases) {
    const fs::path npy = dir_ / (std::string(c.name) + ".npy");
    const RunResult r = run_cli({"cat", c.name, "--npy", npy.string()});
    ASSERT_EQ(r.code, 0) << describe(r);
    const std::string bytes = read_file(npy);
    const std::string header = expected_npy_header(c.dict);
    ASSERT_EQ(bytes.size(), header.size() + c.data) << c.name;
    EXPECT_EQ(bytes.substr(0, header.size()), header) << c.name;
  }
}

/// What a .npy file must hold: its shape (a Python tuple), dtype (a NumPy descriptor) and
/// flat C-order values (a Python list).
struct NpyExpect {
  fs::path file;       ///< the .npy file
  std::string shape;   ///< "(5, 3, 4)"
  std::string dtype;   ///< "<u2"
  std::string values;  ///< "[300, 301, ...]"
};

/// Runs the Python `script` with Debian's /usr/bin/python3 and numpy (imported as np). Empty
/// when it succeeded, else what Python said. numpy missing is a failure, not a skip: the tests
/// of `cat --npy` are only worth something when numpy loads the files (scripts/test installs
/// python3-numpy).
std::string run_numpy_script(const std::string& script, const fs::path& dir) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    return "numpy is not available to /usr/bin/python3 (install python3-numpy)";
  const fs::path file = dir / "npy-check.py";
  const fs::path out = dir / "npy-check.out";
  std::ofstream py(file);
  py << "import numpy as np\n" << script;
  py.close();
  const std::string cmd = "/usr/bin/python3 '" + file.string() + "' >'" + out.string() + "' 2>&1";
  return std::system(cmd.c_str()) == 0 ? std::string() : "numpy: " + read_file(out);
}

/// Loads every file with numpy (one run for all) and checks shapes, dtypes and values. Empty
/// when all holds, else what numpy or the checks said (run_numpy_script()).
std::string numpy_check(const std::vector<NpyExpect>& files, const fs::path& dir) {
  std::string py;
  for (const NpyExpect& e : files) {
    py += "a = np.load('" + e.file.string() + "')\n" +
          "assert a.shape == " + e.shape + ", ('" + e.file.string() + "', 'shape', a.shape)\n" +
          "assert a.dtype == np.dtype('" + e.dtype + "'), ('" + e.file.string() + "', 'dtype', a.dtype)\n" +
          "assert a.ravel().tolist() == " + e.values + ", ('" + e.file.string() + "', a.ravel().tolist())\n";
  }
  return run_numpy_script(py, dir);
}

/// A Python list of frames, for numpy_check(): for each entry of `firsts`, `n` consecutive
/// values starting there.
std::string values_from(const std::vector<int>& firsts, int n) {
  std::string out = "[";
  for (int first : firsts) {
    for (int i = 0; i < n; ++i) out += (out.size() > 1 ? ", " : "") + std::to_string(first + i);
  }
  return out + "]";
}

TEST_F(cli, CatNpyOfARollingBufferHoldsTheNewestFrameAndAllTheHistoryOldestFirst) {
  // Frame k of each stream holds 100 * k + element index (u16), so every value says which frame
  // and element it is.
  create({"plain", "--shape", "4x3", "--dtype", "u16"});
  create({"roll", "--shape", "4x3", "--dtype", "u16", "--depth", "5"});
  create({"young", "--shape", "4x3", "--dtype", "u16", "--depth", "5"});
  auto write_frames = [](const std::string& name, int from, int to) {
    shmlink::Stream s = shmlink::Stream::open(name);
    for (int k = from; k <= to; ++k) {
      std::vector<std::uint16_t> f(12);
      for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::uint16_t>(100 * k + static_cast<int>(i));
      ASSERT_TRUE(s.write(std::span<const std::uint16_t>(f)).ok());
    }
  };
  write_frames("plain", 1, 1);
  write_frames("roll", 1, 7);  // depth 5: frames 3..7 remain
  write_frames("young", 1, 2);  // fewer frames than slices

  struct Case {
    std::vector<std::string> args;
    const char* content;
    json shape;        // ISIO order
    std::string numpy_shape;
    int frames;
    int first_value;   // of the first element in the file
    int first_cnt0;
  };
  const std::vector<Case> cases = {
      {{"cat", "plain"}, "frame", json::array({4, 3}), "(3, 4)", 1, 100, 1},
      {{"cat", "roll"}, "frame", json::array({4, 3}), "(3, 4)", 1, 700, 7},
      {{"cat", "roll", "--all"}, "history", json::array({4, 3, 5}), "(5, 3, 4)", 5, 300, 3},
      {{"cat", "young", "--all"}, "history", json::array({4, 3, 2}), "(2, 3, 4)", 2, 100, 1},
      {{"cat", "plain", "--all"}, "history", json::array({4, 3, 1}), "(1, 3, 4)", 1, 100, 1},
  };
  int k = 0;
  std::vector<NpyExpect> expected;
  for (const Case& c : cases) {
    std::string trace = c.args[1];
    if (c.args.size() > 2) trace += " --all";
    SCOPED_TRACE(trace);
    const fs::path npy = dir_ / ("out" + std::to_string(k++) + ".npy");
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"--npy", npy.string(), "--json"});
    const RunResult r = run_cli(args);
    ASSERT_EQ(r.code, 0) << describe(r);
    const json j = parse_json(r);
    EXPECT_EQ(j.at("content"), c.content);
    EXPECT_EQ(j.at("frames"), c.frames);
    EXPECT_EQ(j.at("shape"), c.shape);
    EXPECT_EQ(j.at("stats").at("over"), c.content);
    EXPECT_EQ(j.at("first_cnt0"), c.first_cnt0);
    // The statistics cover exactly what the file holds.
    EXPECT_EQ(j.at("stats").at("min"), c.first_value);
    EXPECT_EQ(j.at("stats").at("max"), 100 * (c.first_cnt0 + c.frames - 1) + 11);
    std::vector<int> firsts;
    for (int f = 0; f < c.frames; ++f) firsts.push_back(100 * (c.first_cnt0 + f));
    expected.push_back({npy, c.numpy_shape, "<u2", values_from(firsts, 12)});
  }

  // The text form says which it read, next to the shape of what it read.
  RunResult r = run_cli({"cat", "roll"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("the newest frame"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4x3 (numpy (3, 4))"), std::string::npos) << r.out;
  r = run_cli({"cat", "roll", "--all"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("history: 5 frames, oldest first (cnt0 3..7)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4x3x5 (numpy (5, 3, 4))"), std::string::npos) << r.out;

  // numpy loads every file with the shape and the values the JSON described.
  EXPECT_EQ(numpy_check(expected, dir_), "");
}

TEST_F(cli, CatNpyOfHalfComplexAndOneAxisStreamsLoadsInNumpy) {
  create({"half", "--shape", "2x2", "--dtype", "float16"});
  create({"c64", "--shape", "3", "--dtype", "complex64"});
  create({"c128", "--shape", "2x2", "--dtype", "complex128"});
  create({"line", "--shape", "7", "--dtype", "i8"});
  auto write = [](const std::string& name, std::span<const std::byte> frame) {
    shmlink::Stream s = shmlink::Stream::open(name);
    ASSERT_TRUE(s.write(frame).ok()) << name;
  };
  const std::vector<std::uint16_t> half = {0x3800, 0x3E00, 0xC000, 0x3C00};  // 0.5, 1.5, -2.0, 1.0 (binary16)
  const std::vector<std::complex<float>> c64 = {{1, 2}, {-3, 0.5f}, {0, -1}};
  const std::vector<std::complex<double>> c128 = {{1, -1}, {2.5, 0}, {0, 3}, {-4, 4}};
  const std::vector<std::int8_t> line = {-3, -2, -1, 0, 1, 2, 127};
  write("half", std::as_bytes(std::span(half)));
  write("c64", std::as_bytes(std::span(c64)));
  write("c128", std::as_bytes(std::span(c128)));
  write("line", std::as_bytes(std::span(line)));
  std::vector<NpyExpect> expected = {
      {dir_ / "half.npy", "(2, 2)", "<f2", "[0.5, 1.5, -2.0, 1.0]"},
      {dir_ / "c64.npy", "(3,)", "<c8", "[(1+2j), (-3+0.5j), -1j]"},
      {dir_ / "c128.npy", "(2, 2)", "<c16", "[(1-1j), (2.5+0j), 3j, (-4+4j)]"},
      {dir_ / "line.npy", "(7,)", "|i1", "[-3, -2, -1, 0, 1, 2, 127]"},
      {dir_ / "line-all.npy", "(1, 7)", "|i1", "[-3, -2, -1, 0, 1, 2, 127]"},
  };
  for (const NpyExpect& e : expected) {
    const std::string name = e.file.stem().string();
    std::vector<std::string> args = {"cat", name.substr(0, name.find('-')), "--npy", e.file.string()};
    if (name.ends_with("-all")) args.emplace_back("--all");
    const RunResult r = run_cli(args);
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  EXPECT_EQ(numpy_check(expected, dir_), "");
}

TEST_F(cli, CatAllAgainstALiveWriterKeepsTheConsecutiveFramesItsCopyDidNotCollideWith) {
  // A deep buffer (128 frames of 256x256 u32, 32 MiB) whose copy takes milliseconds, and a writer
  // that composes each frame in place (begin_write, fill, commit_write) and pauses 1 ms between
  // frames, so that several frames commit during any copy of the whole buffer, and far fewer than
  // 128 (that would leave nothing to keep). Element i of frame k holds k * 65536 + i, so every value
  // says which frame and element it is, and a frame overwritten while it was copied would show
  // values of another frame.
  constexpr std::uint32_t kElements = 256 * 256;
  create({"live", "--shape", "256x256", "--dtype", "u32", "--depth", "128"});
  Child writer([] {
    // A loaded machine may stop any process for milliseconds; a real-time writer asks not to be
    // (root only; without it, the test holds all the same, it only exercises the collision less).
    (void)::setpriority(PRIO_PROCESS, 0, -20);
    shmlink::Stream s = shmlink::Stream::open("live");
    std::vector<std::uint32_t> frame(kElements);
    const auto stop = std::chrono::steady_clock::now() + 60s;
    const pid_t parent = ::getppid();
    while (std::chrono::steady_clock::now() < stop && ::getppid() == parent) {
      const auto k = static_cast<std::uint32_t>(s.cnt0() + 1);
      const std::span<std::byte> slice = s.begin_write();
      if (slice.size() != sizeof(std::uint32_t) * kElements) ::_exit(2);
      for (std::uint32_t i = 0; i < kElements; ++i) frame[i] = k * kElements + i;
      std::memcpy(slice.data(), frame.data(), slice.size());
      if (!s.commit_write().ok()) ::_exit(3);
      std::this_thread::sleep_for(1ms);  // under 1 kHz: a copy of 32 MiB outlasts the pause
    }
  });
  shmlink::Stream live = shmlink::Stream::open("live");
  ASSERT_TRUE(eventually([&] { return live.cnt0() > 200; })) << "the writer wrote " << live.cnt0() << " frames";

  const fs::path npy = dir_ / "live.npy";
  const RunResult r = run_cli({"cat", "live", "--all", "--npy", npy.string(), "--json"});
  const std::uint64_t written = live.cnt0();
  writer.stop();
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  ASSERT_TRUE(j.contains("overwritten_while_copying")) << r.out;
  const auto frames = j.at("frames").get<std::uint64_t>();
  const auto first = j.at("first_cnt0").get<std::uint64_t>();
  ASSERT_GE(frames, 1u);
  EXPECT_EQ(frames + j.at("overwritten_while_copying").get<std::uint64_t>(), 128u) << r.out;
  EXPECT_EQ(first + frames - 1, j.at("cnt0").get<std::uint64_t>());
  EXPECT_LE(j.at("cnt0").get<std::uint64_t>(), written);
  EXPECT_EQ(j.at("shape"), json::array({256, 256, frames}));
  // numpy loads it, and the frames are consecutive, oldest first, each holding its own cnt0.
  const std::string check = "a = np.load('" + npy.string() + "')\n" +
                            "assert a.shape == (" + std::to_string(frames) + ", 256, 256), a.shape\n" +
                            "assert a.dtype == np.dtype('<u4'), a.dtype\n" +
                            "idx = np.arange(65536, dtype=np.uint64)\n" +
                            "for i in range(a.shape[0]):\n" +
                            "    want = (" + std::to_string(first) + " + i) * 65536 + idx\n" +
                            "    assert (a[i].ravel().astype(np.uint64) == want).all(), ('frame', i, a[i].ravel()[:4])\n";
  EXPECT_EQ(run_numpy_script(check, dir_), "");
}

TEST_F(cli, CatAllReadsTheHistoryOfAWriterThatDoesNotFillTheSliceCounters) {
  // ImageStreamIO's writer order (UpdateIm): write = 1, the data into slice (cnt1 + 1) % depth,
  // cnt1 = that slice, cnt0 += 1, write = 0; the per-slice cntarray stays 0. Played here on the
  // file's bytes: cnt0 at offset 264, cnt1 at 272, write at 288, data at 384.
  create({"isio", "--shape", "3x2", "--dtype", "u8", "--depth", "4"});
  {
    const int fd = ::open(stream_file("isio").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const auto size = static_cast<std::size_t>(fs::file_size(stream_file("isio")));
    void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    ASSERT_NE(map, MAP_FAILED);
    auto* file = static_cast<unsigned char*>(map);
    auto u64 = [file](std::size_t offset) -> std::uint64_t& {
      return *reinterpret_cast<std::uint64_t*>(file + offset);  // 8-byte aligned in the metadata
    };
    for (int k = 1; k <= 6; ++k) {
      file[288] = 1;
      const std::uint64_t slice = (u64(272) + 1) % 4;
      for (std::size_t i = 0; i < 6; ++i) {
        file[384 + slice * 6 + i] = static_cast<unsigned char>(10 * k + static_cast<int>(i));
      }
      u64(272) = slice;
      u64(264) += 1;
      file[288] = 0;
    }
    ::munmap(map, size);
  }
  const fs::path newest = dir_ / "newest.npy";
  const fs::path history = dir_ / "history.npy";
  RunResult r = run_cli({"cat", "isio", "--npy", newest.string(), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("stats").at("min"), 60);
  r = run_cli({"cat", "isio", "--all", "--npy", history.string(), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("frames"), 4);
  EXPECT_EQ(j.at("first_cnt0"), 3);
  EXPECT_EQ(j.at("stats").at("min"), 30);
  EXPECT_EQ(j.at("stats").at("max"), 65);
  EXPECT_EQ(numpy_check({{newest, "(2, 3)", "|u1", values_from({60}, 6)},
                         {history, "(4, 2, 3)", "|u1", values_from({30, 40, 50, 60}, 6)}},  // oldest first
                        dir_),
            "");
}

TEST_F(cli, CatWaitTimeoutSaysTimedOut) {
  create({"quiet", "--shape", "4", "--dtype", "u8"});
  const RunResult r = run_cli({"cat", "quiet", "--wait", "--timeout", "0.1"});
  EXPECT_EQ(r.code, 124) << describe(r);
  EXPECT_NE(r.err.find("shmlink: error: timed out"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("quiet.im.shm"), std::string::npos) << r.err;
}

TEST_F(cli, CatNpyToAnUnwritablePathIsAnOutputFileErrorNotStreamNotFound) {
  create({"cam", "--shape", "4", "--dtype", "u8"});
  for (const std::string& out : {std::string("/proc/x.npy"), (dir_ / "no-such-dir" / "x.npy").string()}) {
    const RunResult r = run_cli({"cat", "cam", "--npy", out});
    EXPECT_EQ(r.code, 1) << out << "\n" << describe(r);
    EXPECT_NE(r.err.find("output file " + out), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("cam.im.shm"), std::string::npos) << "the stream is fine: " << r.err;
  }
}

TEST_F(cli, CatNpyOnAFullDiskSaysNoSpaceLeft) {
  // /dev/full accepts the open and the buffered writes; the final flush in fclose fails ENOSPC.
  create({"wfs", "--shape", "4", "--dtype", "u8"});
  const RunResult r = run_cli({"cat", "wfs", "--npy", "/dev/full"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("cannot write the output file /dev/full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::strerror(ENOSPC)), std::string::npos) << r.err;
}

TEST_F(cli, CatStatsUseMagnitudeForComplex) {
  create({"z", "--shape", "2", "--dtype", "c64"});
  create({"f", "--shape", "2", "--dtype", "f32"});
  {
    shmlink::Stream z = shmlink::Stream::open("z");
    const std::vector<std::complex<float>> zf = {{3.0f, 4.0f}, {0.0f, 0.0f}};
    ASSERT_TRUE(z.write(std::span<const std::complex<float>>(zf)).ok());
    shmlink::Stream f = shmlink::Stream::open("f");
    const std::vector<float> ff = {-1.5f, 2.5f};
    ASSERT_TRUE(f.write(std::span<const float>(ff)).ok());
  }
  RunResult r = run_cli({"cat", "z", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  EXPECT_EQ(j.at("stats").at("of"), "magnitude");
  EXPECT_DOUBLE_EQ(j.at("stats").at("min").get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j.at("stats").at("max").get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(j.at("stats").at("mean").get<double>(), 2.5);
  r = run_cli({"cat", "f", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  j = parse_json(r);
  EXPECT_EQ(j.at("stats").at("of"), "value");
  EXPECT_DOUBLE_EQ(j.at("stats").at("min").get<double>(), -1.5);
  EXPECT_DOUBLE_EQ(j.at("stats").at("max").get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(j.at("stats").at("mean").get<double>(), 0.5);
}

TEST_F(cli, CreateAcceptsNumpyAndShortDtypeNames) {
  const struct {
    const char* arg;
    const char* name;
  } cases[] = {{"uint16", "uint16"}, {"u16", "uint16"}, {"float32", "float32"}, {"f64", "float64"},
               {"complex64", "complex64"}, {"c128", "complex128"}, {"f16", "float16"}, {"int8", "int8"}};
  int i = 0;
  for (const auto& c : cases) {
    std::string name = "s";  // not "s" + to_string(): g++ 12 -O3 flags that (bogus -Wrestrict, GCC PR 105329)
    name += std::to_string(i++);
    create({name, "--shape", "2x2", "--dtype", c.arg});
    const RunResult r = run_cli({"info", name, "--json"});
    ASSERT_EQ(r.code, 0) << describe(r);
    EXPECT_EQ(parse_json(r).at("dtype"), c.name) << c.arg;
  }
}

TEST_F(cli, CreateRejectsBadShapeAndDtypeWithUsageError) {
  for (const char* shape : {"0x3", "2x3x4x5", "abc", "3x", "", "5000000000"}) {
    const RunResult r = run_cli({"create", "bad", "--shape", shape});
    EXPECT_EQ(r.code, 2) << shape << "\n" << describe(r);
    EXPECT_FALSE(r.err.empty()) << shape;
  }
  for (const char* dtype : {"u17", "float128", "x"}) {
    const RunResult r = run_cli({"create", "bad", "--shape", "4", "--dtype", dtype});
    EXPECT_EQ(r.code, 2) << dtype << "\n" << describe(r);
    EXPECT_NE(r.err.find(dtype), std::string::npos) << r.err;
  }
  EXPECT_EQ(run_cli({"create", "bad", "--shape", "4", "--semaphores", "65536"}).code, 2);
  EXPECT_EQ(run_cli({"create", "bad", "--shape", "4", "--semaphores", "-1"}).code, 2);
  EXPECT_EQ(run_cli({"create", "bad", "--shape", "4", "--permissions", "0999"}).code, 2);
  EXPECT_FALSE(fs::exists(stream_file("bad")));
}

TEST_F(cli, CreateExistingFailsUnlessForced) {
  create({"dup", "--shape", "4"});
  RunResult r = run_cli({"create", "dup", "--shape", "8"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("dup"), std::string::npos) << r.err;
  create({"dup", "--shape", "8", "--force"});
  r = run_cli({"info", "dup", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("shape"), json::array({8}));
}

TEST_F(cli, CreateOnAnExistingNameMentionsForce) {
  create({"taken", "--shape", "4"});
  const RunResult r = run_cli({"create", "taken", "--shape", "4"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("taken.im.shm"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
}

TEST_F(cli, CreateAppliesPermissions) {
  create({"perm", "--shape", "4", "--permissions", "0640"});
  struct stat st {};
  ASSERT_EQ(::stat(stream_file("perm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  create({"def", "--shape", "4"});
  ASSERT_EQ(::stat(stream_file("def").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(cli, MissingStreamExitsThreeNamingIt) {
  for (const char* cmd : {"info", "cat", "rm"}) {
    const RunResult r = run_cli({cmd, "nosuchstream"});
    EXPECT_EQ(r.code, 3) << cmd << "\n" << describe(r);
    EXPECT_NE(r.err.find("nosuchstream"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(run_cli({"rm", "-f", "nosuchstream"}).code, 0);
  const RunResult r = run_cli({"ls", "--dir", (dir_ / "nodir").string()});
  EXPECT_EQ(r.code, 3) << describe(r);
}

TEST_F(cli, CorruptedFileIsLayoutMismatch) {
  create({"good", "--shape", "4x4"});
  create({"badver", "--shape", "4x4"});
  create({"short", "--shape", "4x4"});
  {
    std::fstream f(stream_file("badver"), std::ios::in | std::ios::out | std::ios::binary);
    f.write("9.99", 4);  // version field at offset 0
  }
  fs::resize_file(stream_file("short"), fs::file_size(stream_file("short")) - 8);

  for (const char* name : {"badver", "short"}) {
    RunResult r = run_cli({"info", name});
    EXPECT_EQ(r.code, 5) << name << "\n" << describe(r);
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
    r = run_cli({"cat", name});
    EXPECT_EQ(r.code, 5) << name << "\n" << describe(r);
  }

  // ls lists broken files with their error instead of failing.
  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  ASSERT_EQ(j.at("streams").size(), 3u) << r.out;
  for (const json& row : j["streams"]) {
    if (row.at("name") == "good") {
      EXPECT_FALSE(row.contains("error")) << row.dump();
      EXPECT_EQ(row.at("shape"), json::array({4, 4}));
    } else {
      ASSERT_TRUE(row.contains("error")) << row.dump();
      EXPECT_EQ(row.at("exit_code"), 5) << row.dump();
      EXPECT_FALSE(row.at("error").get<std::string>().empty());
    }
  }
  r = run_cli({"ls"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("badver"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ERROR"), std::string::npos) << r.out;
}

TEST_F(cli, NameLongerThan79BytesIsUsageError) {
  const std::string too_long(80, 'n');
  const std::string longest(79, 'n');
  RunResult r = run_cli({"create", too_long, "--shape", "4"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_FALSE(r.err.empty());
  EXPECT_FALSE(fs::exists(stream_file(too_long)));
  r = run_cli({"info", too_long});
  EXPECT_EQ(r.code, 2) << describe(r);
  create({longest, "--shape", "4"});
  r = run_cli({"info", longest, "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("name"), longest);
}

TEST_F(cli, RmRemovesSeveralAndRefusesNonStreamPaths) {
  create({"a", "--shape", "4"});
  create({"b", "--shape", "4"});
  RunResult r = run_cli({"rm", "a", "missing", "b"});
  EXPECT_EQ(r.code, 3) << describe(r);  // the first failure's code; the others still go
  EXPECT_FALSE(fs::exists(stream_file("a")));
  EXPECT_FALSE(fs::exists(stream_file("b")));
  const fs::path other = dir_ / "notes.txt";
  std::ofstream(other) << "keep me";
  r = run_cli({"rm", other.string()});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(fs::exists(other));
}

TEST_F(cli, DirOptionOverridesEnvironment) {
  const fs::path other = dir_ / "sub";
  fs::create_directory(other);
  RunResult r = run_cli({"create", "elsewhere", "--shape", "2", "--dir", other.string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(other / "elsewhere.im.shm"));
  r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_TRUE(parse_json(r).at("streams").empty()) << r.out;
  r = run_cli({"ls", "--json", "--interval", "0", "--dir", other.string()});
  ASSERT_EQ(parse_json(r).at("streams").size(), 1u) << r.out;
  r = run_cli({"info", "elsewhere", "--dir", other.string()});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = run_cli({"info", (other / "elsewhere.im.shm").string()});
  EXPECT_EQ(r.code, 0) << describe(r);
}

TEST_F(cli, LsShowsLiveWriterAndReaders) {
  create({"live", "--shape", "8x8", "--dtype", "f32"});
  Child writer([] { writer_loop("live", true); });
  {
    // Closed before `ls`: a process holding the stream mapped counts as a reader.
    shmlink::Stream s = shmlink::Stream::open("live");
    ASSERT_TRUE(eventually([&] {
      const auto info = s.info();
      return s.cnt0() > 0 && !info.sem_read_pids.empty() && info.sem_read_pids[0] == writer.pid();
    }));
  }

  RunResult r = run_cli({"ls", "--json", "--interval", "0.3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  ASSERT_EQ(j.at("streams").size(), 1u) << r.out;
  json row = j["streams"][0];
  EXPECT_EQ(row.at("writer_pid"), writer.pid());
  EXPECT_EQ(row.at("writer_alive"), true);
  EXPECT_EQ(row.at("readers"), 1);
  EXPECT_EQ(row.at("reader_pids"), json::array({writer.pid()}));
  EXPECT_GT(row.at("rate_hz").get<double>(), 0.0);

  writer.stop();
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  row = parse_json(r).at("streams").at(0);
  EXPECT_EQ(row.at("writer_alive"), false);
  EXPECT_EQ(row.at("readers"), 0);
}

TEST_F(cli, ASemaphoreSlotHeldByALiveProcessThatDoesNotMapTheStreamIsNoReader) {
  create({"wfs", "--shape", "4", "--dtype", "u8"});
  // A process claims slot 0 and then execs `sleep`: the exec drops its mapping and (close on
  // exec) its descriptor without releasing the slot. Its pid stays in semReadPID, alive, as when
  // a reader died without releasing its slot and an unrelated process got its pid.
  Child unrelated([] {
    shmlink::Stream s = shmlink::Stream::open("wfs");
    if (s.claim_semaphore(0) != 0) ::_exit(2);
    ::execl("/bin/sleep", "sleep", "60", static_cast<char*>(nullptr));
    ::_exit(3);
  });
  const fs::path comm = fs::path("/proc") / std::to_string(unrelated.pid()) / "comm";
  ASSERT_TRUE(eventually([&] { return read_file(comm) == "sleep\n"; })) << read_file(comm);
  {
    shmlink::Stream s = shmlink::Stream::open("wfs");
    ASSERT_EQ(s.info().sem_read_pids.at(0), unrelated.pid());
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"ls", "--json", "--interval", "0"}, std::vector<std::string>{"info", "wfs", "--json"}}) {
    SCOPED_TRACE(args[0]);
    const RunResult r = run_cli(args);
    ASSERT_EQ(r.code, 0) << describe(r);
    const json j = parse_json(r);
    const json& row = args[0] == "ls" ? j.at("streams").at(0) : j;
    EXPECT_EQ(row.at("readers"), 0) << r.out;
    EXPECT_EQ(row.at("reader_pids"), json::array()) << r.out;
  }
  const RunResult text = run_cli({"info", "wfs"});
  EXPECT_EQ(text.out.find("(semaphore 0)"), std::string::npos) << text.out;
}

TEST_F(cli, ReadersUninspectableLeavesOutKernelThreads) {
  // Run as an unprivileged user, `ls` cannot read the /proc/PID/fd of root's processes. A kernel
  // thread denies its fd/ too, but its maps can be read and are empty: it maps nothing and is
  // not a hidden reader. Counted from here (root can read everything): kernel threads (empty
  // maps) and the other processes not owned by the unprivileged user.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run `ls` as another user and count what it cannot see";
  constexpr uid_t kNobody = 65534;
  int kernel_threads = 0;
  int others = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) continue;
    std::ifstream maps(e.path() / "maps");
    if (!maps) continue;
    std::string line;
    if (!std::getline(maps, line)) {
      ++kernel_threads;
    } else if (st.st_uid != kNobody) {
      ++others;
    }
  }
  if (kernel_threads < 10) GTEST_SKIP() << "only " << kernel_threads << " kernel threads visible (a container?)";
  create({"wfs", "--shape", "4", "--dtype", "u8"});
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(stream_file("wfs"), fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  const RunResult r = CliProcess({"ls", "--json", "--interval", "0"}, [] {
                        if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) throw std::runtime_error("setuid");
                      }).finish();
  ASSERT_EQ(r.code, 0) << describe(r);
  const int hidden = parse_json(r).at("streams").at(0).at("readers_uninspectable").get<int>();
  // Before, hidden was about kernel_threads + others; processes come and go meanwhile, so the
  // bound leaves half the kernel threads as margin.
  EXPECT_LE(hidden, others + kernel_threads / 2) << kernel_threads << " kernel threads, " << others << " others";
  EXPECT_GT(hidden, 0);  // root's own processes (this test) are hidden from nobody
}

/// Body of a reader child that holds `name` mapped without a semaphore slot and looks at its
/// frames by polling cnt0, as a Python reader holding `view()` or a control loop does; tells the
/// parent it is attached by writing one byte to `ready`. (No library wait: how those wait is
/// the library's business, and may claim a slot.)
void mapped_reader_loop(const std::string& name, int ready) {
  const shmlink::Stream s = shmlink::Stream::open(name);
  if (::write(ready, "r", 1) != 1) ::_exit(2);
  const pid_t parent = ::getppid();
  while (::getppid() == parent) {
    (void)s.cnt0();
    std::this_thread::sleep_for(10ms);
  }
}

/// Body of a reader child that claims semaphore slot `slot` of `name` and waits on it.
void semaphore_reader_loop(const std::string& name, int slot, int ready) {
  shmlink::Stream s = shmlink::Stream::open(name);
  if (s.claim_semaphore(slot) != slot) ::_exit(2);
  if (::write(ready, "s", 1) != 1) ::_exit(2);
  const pid_t parent = ::getppid();
  while (::getppid() == parent) (void)s.sem_wait(slot, 100ms);
}

TEST_F(cli, ReadersCountEveryProcessThatMapsTheStreamAndSayHowEachWaits) {
  create({"wfs", "--shape", "8x8", "--dtype", "f32", "--semaphores", "4"});
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  Child writer([] { writer_loop("wfs", false); });
  Child mapped([&] { mapped_reader_loop("wfs", ready[1]); });
  Child claimant([&] { semaphore_reader_loop("wfs", 2, ready[1]); });
  char byte = 0;
  for (int i = 0; i < 2; ++i) ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(eventually([&] {
    const shmlink::Stream s = shmlink::Stream::open("wfs");
    return s.info().sem_write_pids[0] == writer.pid();
  }));

  auto check = [&](const json& row, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(row.at("writer_pid"), writer.pid()) << row.dump();
    EXPECT_EQ(row.at("readers"), 2) << row.dump();  // the writer and the CLI itself are not readers
    const std::vector<int> pids = {std::min(mapped.pid(), claimant.pid()), std::max(mapped.pid(), claimant.pid())};
    EXPECT_EQ(row.at("reader_pids"), json(pids)) << row.dump();
    std::map<int, json> waits;
    for (const json& w : row.at("reader_waits")) waits[w.at("pid").get<int>()] = w;
    ASSERT_EQ(waits.size(), 2u) << row.dump();
    EXPECT_EQ(waits[mapped.pid()].at("wait"), "mapped") << row.dump();
    EXPECT_TRUE(waits[mapped.pid()].at("semaphore").is_null()) << row.dump();
    EXPECT_EQ(waits[claimant.pid()].at("wait"), "semaphore") << row.dump();
    EXPECT_EQ(waits[claimant.pid()].at("semaphore"), 2) << row.dump();
  };
  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  check(parse_json(r).at("streams").at(0), "ls --json");
  r = run_cli({"info", "wfs", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  check(parse_json(r), "info --json");
  r = run_cli({"monitor", "--once", "--json", "--interval", "0.01"});
  ASSERT_EQ(r.code, 0) << describe(r);
  check(parse_json(r).at("streams").at(0), "monitor --json");

  // Text: the count in `ls`, each reader and its wait in `monitor` and `info`.
  const std::string mapped_text = std::to_string(mapped.pid()) + " (mapped)";
  const std::string claimant_text = std::to_string(claimant.pid()) + " (semaphore 2)";
  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::size_t row = r.out.find("\nwfs ");
  ASSERT_NE(row, std::string::npos) << r.out;
  const std::string line = r.out.substr(row + 1, r.out.find('\n', row + 1) - row - 1);
  EXPECT_EQ(line.substr(line.find_last_of(' ') + 1), "2") << "READERS is the last column: " << r.out;
  for (const std::vector<std::string>& args : {std::vector<std::string>{"monitor", "--once", "--interval", "0.01"},
                                               std::vector<std::string>{"info", "wfs"}}) {
    r = run_cli(args);
    ASSERT_EQ(r.code, 0) << describe(r);
    EXPECT_NE(r.out.find(mapped_text), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(claimant_text), std::string::npos) << r.out;
  }
}

TEST_F(cli, MonitorSortsByStreamNameAndByTheSortKey) {
  // By file name "wfs-frames.im.shm" sorts before "wfs.im.shm" ('-' < '.').
  for (const char* name : {"wfs-frames", "wfs", "dm"}) create({name, "--shape", "4", "--dtype", "u8"});
  auto names_of = [](const json& streams) {
    std::vector<std::string> out;
    for (const json& row : streams) out.push_back(row.at("name").get<std::string>());
    return out;
  };
  const std::vector<std::string> by_name = {"dm", "wfs", "wfs-frames"};
  RunResult r = run_cli({"monitor", "--once", "--json", "--interval", "0.01"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(names_of(parse_json(r).at("streams")), by_name) << r.out;
  EXPECT_EQ(parse_json(r).at("sort"), "name");
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(names_of(parse_json(r).at("streams")), by_name) << r.out;
  r = run_cli({"monitor", "--once", "--interval", "0.01"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_LT(r.out.find("\nwfs "), r.out.find("\nwfs-frames ")) << r.out;
  EXPECT_LT(r.out.find("\ndm "), r.out.find("\nwfs ")) << r.out;
  EXPECT_NE(r.out.find("sorted by name"), std::string::npos) << r.out;

  // --sort rate: the stream being written comes first; the idle ones follow by name. (A loaded
  // machine may starve the writer for a whole interval: then its rate is 0 too; try again.)
  Child writer([] { writer_loop("wfs-frames", false); });
  ASSERT_TRUE(eventually([] { return shmlink::Stream::open("wfs-frames").cnt0() > 0; }));
  json by_rate;
  for (int attempt = 0; attempt < 10; ++attempt) {
    r = run_cli({"monitor", "--once", "--json", "--interval", "0.2", "--sort", "rate"});
    ASSERT_EQ(r.code, 0) << describe(r);
    by_rate = parse_json(r);
    const auto& rows = by_rate.at("streams");
    const bool written = std::any_of(rows.begin(), rows.end(), [](const json& row) {
      return row.at("name") == "wfs-frames" && row.at("rate_hz").is_number() && row.at("rate_hz").get<double>() > 0;
    });
    if (written) break;
  }
  EXPECT_EQ(names_of(by_rate.at("streams")), (std::vector<std::string>{"wfs-frames", "dm", "wfs"})) << by_rate.dump();
  r = run_cli({"monitor", "--once", "--json", "--interval", "0.01", "--sort", "cnt0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(names_of(parse_json(r).at("streams")).front(), "wfs-frames") << r.out;

  r = run_cli({"monitor", "--once", "--sort", "size"});
  EXPECT_EQ(r.code, 2) << describe(r);
}

/// Starts `shmlink monitor --interval 0.05` on a new pseudo-terminal of its own (forkpty: stdin,
/// stdout and stderr, its controlling terminal); `master` gets our side. @return its pid, or -1.
pid_t start_monitor_on_a_terminal(int& master) {
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    std::string exe = SHMLINK_CLI_PATH;
    std::vector<std::string> args = {exe, "monitor", "--interval", "0.05"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

TEST_F(cli, MonitorOnATerminalChangesTheOrderWithTheSKeyAndQuitsWithQ) {
  create({"wfs", "--shape", "4", "--dtype", "u8"});
  int master = -1;
  const pid_t pid = start_monitor_on_a_terminal(master);
  ASSERT_GE(pid, 0) << std::strerror(errno);
  std::string screen;
  // Reads the terminal until `text` appears after `from`; false after 20 s or at EOF.
  auto read_until = [&](const std::string& text, std::size_t from) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (screen.find(text, from) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd p{master, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t got = ::read(master, buf, sizeof buf);
      if (got <= 0) return false;
      screen.append(buf, static_cast<std::size_t>(got));
    }
    return true;
  };
  EXPECT_TRUE(read_until("sorted by name, s: change order, q: quit", 0)) << screen;
  const std::size_t before = screen.size();
  ASSERT_EQ(::write(master, "s", 1), 1);
  EXPECT_TRUE(read_until("sorted by rate", before)) << screen;
  ASSERT_EQ(::write(master, "q", 1), 1);
  int status = 0;
  for (int i = 0; i < 2000 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) {
    pollfd p{master, POLLIN, 0};
    char buf[4096];
    if (::poll(&p, 1, 10) > 0) (void)::read(master, buf, sizeof buf);  // keep the terminal drained
  }
  ::close(master);
  if (::waitpid(pid, &status, WNOHANG) == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "monitor did not quit on q:\n" << screen;
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(cli, MonitorGivesTheTerminalBackOnCtrlZAndTakesItAgainOnContinue) {
  create({"wfs", "--shape", "4", "--dtype", "u8"});
  int master = -1;
  const pid_t pid = start_monitor_on_a_terminal(master);
  ASSERT_GE(pid, 0) << std::strerror(errno);
  std::string screen;
  auto drain = [&] {
    pollfd p{master, POLLIN, 0};
    char buf[4096];
    while (::poll(&p, 1, 0) > 0) {
      const ssize_t got = ::read(master, buf, sizeof buf);
      if (got <= 0) break;
      screen.append(buf, static_cast<std::size_t>(got));
    }
  };
  // The terminal's settings, as the monitor's side sees them (Linux: the master reports its slave's).
  auto echo_on = [&] {
    drain();
    termios t{};
    return ::tcgetattr(master, &t) == 0 && (t.c_lflag & ECHO) != 0 && (t.c_lflag & ICANON) != 0;
  };
  auto cleanup = [&] {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(master);
  };
  if (!eventually([&] { return !echo_on() && screen.find("q: quit") != std::string::npos; }, 20s)) {
    cleanup();
    FAIL() << "monitor never put the terminal in key mode:\n" << screen;
  }
  // Ctrl-Z: the settings come back before the process stops. (Here its process group has no
  // parent in the session, so the kernel does not stop it; the terminal must be restored anyway.)
  ASSERT_EQ(::kill(pid, SIGTSTP), 0);
  const bool restored = eventually(echo_on, 20s);
  // fg/bg: SIGCONT; in the foreground again, keys are read without echo again.
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  const bool reapplied = eventually([&] { return !echo_on(); }, 20s);
  const std::size_t before = screen.size();
  ASSERT_EQ(::write(master, "s", 1), 1);
  const bool keys = eventually([&] { return !echo_on() && screen.find("sorted by rate", before) != std::string::npos; },
                               20s);
  ASSERT_EQ(::write(master, "q", 1), 1);
  int status = 0;
  const bool quit = eventually([&] {
    drain();
    return ::waitpid(pid, &status, WNOHANG) == pid;
  });
  if (!quit) cleanup();
  else ::close(master);
  EXPECT_TRUE(restored) << "Ctrl-Z left the terminal without echo";
  EXPECT_TRUE(reapplied) << "SIGCONT did not put the terminal back in key mode";
  EXPECT_TRUE(keys) << screen;
  ASSERT_TRUE(quit) << screen;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(cli, MonitorOnceReportsRateOfLiveWriter) {
  create({"busy", "--shape", "16x16", "--dtype", "u16"});
  create({"idle", "--shape", "4", "--dtype", "u8"});
  Child writer([] { writer_loop("busy", false); });
  shmlink::Stream s = shmlink::Stream::open("busy");
  ASSERT_TRUE(eventually([&] { return s.cnt0() > 0; }));

  RunResult r = run_cli({"monitor", "--once", "--json", "--interval", "0.5"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  ASSERT_EQ(j.at("streams").size(), 2u) << r.out;
  for (const json& row : j["streams"]) {
    if (row.at("name") == "busy") {
      EXPECT_GT(row.at("rate_hz").get<double>(), 0.0) << row.dump();
      EXPECT_EQ(row.at("writer_pid"), writer.pid());
      EXPECT_EQ(row.at("writer_alive"), true);
    } else {
      EXPECT_EQ(row.at("rate_hz").get<double>(), 0.0) << row.dump();
    }
  }

  r = run_cli({"monitor", "--once", "--interval", "0.3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("busy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RATE_HZ"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "no ANSI codes when not a TTY";
}

TEST_F(cli, BenchQueueStoppedByCtrlCEndsWithAnErrorAndExitOneNot130) {
  // Only `bench stream` prints the rows measured so far and exits 130; `bench queue` reports no
  // partial rows, so Ctrl-C ends it like any error: exit 1 and a message saying it was interrupted.
  CliProcess bench({"bench", "queue", "--json", "--rounds", "1000", "--samples", "100000000", "--warmup", "0"});
  // The scratch directory is made after the Ctrl-C handler is installed: interrupt from then on.
  const bool started = eventually([&] { return !fs::is_empty(dir_); }, 30s);
  ::kill(bench.pid(), SIGINT);
  const RunResult r = bench.finish();
  ASSERT_TRUE(started) << describe(r);
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("shmlink: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("interrupted"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(cli, MonitorStopsCleanlyOnSigint) {
  create({"m", "--shape", "4"});
  CliProcess p({"monitor", "--interval", "0.1"});
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(::kill(p.pid(), SIGINT), 0);
  const RunResult r = p.finish(20s);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("m "), std::string::npos) << r.out;

  const RunResult counted = run_cli({"monitor", "--interval", "0.05", "--count", "2", "--json"});
  ASSERT_EQ(counted.code, 0) << describe(counted);
  // One JSON document per line per refresh.
  std::size_t lines = 0;
  std::size_t pos = 0;
  while ((pos = counted.out.find('\n', pos)) != std::string::npos) {
    ++lines;
    ++pos;
  }
  EXPECT_EQ(lines, 2u) << counted.out;
  const json first = json::parse(counted.out.substr(0, counted.out.find('\n')), nullptr, false);
  ASSERT_FALSE(first.is_discarded()) << counted.out;
  EXPECT_EQ(first.at("schema_version"), 1);
}

TEST_F(cli, CatWaitReturnsNewFrameOrTimesOut) {
  create({"w", "--shape", "4", "--dtype", "u8"});
  RunResult r = run_cli({"cat", "w", "--wait", "--timeout", "0.2"});
  EXPECT_EQ(r.code, 124) << describe(r);
  EXPECT_NE(r.err.find("w.im.shm"), std::string::npos) << r.err;

  Child writer([] { writer_loop("w", false); });
  r = run_cli({"cat", "w", "--wait", "--timeout", "10", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_GT(parse_json(r).at("cnt0").get<std::uint64_t>(), 0u);
}

}  // namespace

namespace {

/// Creates stream `name` from a child process that then exits, so its creator is dead.
void create_from_dead_creator(const std::string& name) {
  pid_t pid = ::fork();
  if (pid == 0) {
    try {
      shmlink::StreamSpec spec;
      spec.shape = {4};
      spec.dtype = shmlink::Dtype::u8;
      shmlink::Stream::create(name, spec);
      ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST_F(cli, GcRemovesOnlyStreamsWithDeadCreatorAndNoUsers) {
  create_from_dead_creator("stale");
  create_from_dead_creator("held");
  create({"mine", "--shape", "4"});  // created by a `shmlink create` process: also dead creator
  shmlink::StreamSpec spec;
  spec.shape = {4};
  spec.dtype = shmlink::Dtype::u8;
  auto live = shmlink::Stream::create("live", spec);  // creator: this test process, alive

  // A live process keeps "held" open (mapped) while gc runs; killed by Child's destructor should
  // an assertion end the test early (a leaked holder keeps ctest's output pipe open forever).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  Child holder([&ready] {
    auto s = shmlink::Stream::open("held");
    char c = 'r';
    (void)!::write(ready[1], &c, 1);
    ::pause();
  });
  char c = 0;
  const ssize_t got = ::read(ready[0], &c, 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_EQ(got, 1);

  RunResult r = run_cli({"gc", "--streams", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json doc = parse_json(r);
  EXPECT_EQ(doc["schema_version"], 1);
  std::set<std::string> would;
  for (const auto& v : doc["removed"]) would.insert(v["name"].get<std::string>());
  EXPECT_EQ(would, (std::set<std::string>{"mine", "stale"}));
  EXPECT_TRUE(fs::exists(stream_file("stale")));  // dry run removed nothing

  r = run_cli({"gc", "--streams"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("removed stale"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(stream_file("stale")));
  EXPECT_FALSE(fs::exists(stream_file("mine")));
  EXPECT_TRUE(fs::exists(stream_file("held")));  // creator dead, but a live process has it open
  EXPECT_TRUE(fs::exists(stream_file("live")));  // creator alive

  holder.stop();
  r = run_cli({"gc", "--streams"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(stream_file("held")));  // its last user is gone now
  EXPECT_TRUE(fs::exists(stream_file("live")));
  r = run_cli({"gc", "--streams"});
  EXPECT_NE(r.out.find("nothing to remove"), std::string::npos) << r.out;
}

TEST_F(cli, GcLeavesFilesThatAreNotValidStreams) {
  std::ofstream(stream_file("junk")) << "not a stream";
  const RunResult r = run_cli({"gc", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(stream_file("junk")));
  EXPECT_EQ(parse_json(r)["removed"].size(), 0u);
}

}  // namespace

// ---- rolling buffers, permissions, groups, re-creation -----------------------------------

namespace {

/// The complete lines of `out` parsed as JSON (lines that do not parse are skipped).
std::vector<json> json_lines(const std::string& out) {
  std::vector<json> docs;
  std::size_t pos = 0;
  for (std::size_t nl; (nl = out.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    json j = json::parse(out.substr(pos, nl - pos), nullptr, false);
    if (!j.is_discarded()) docs.push_back(std::move(j));
  }
  return docs;
}

/// The row of stream `name` in a monitor refresh document, or null when absent (or when `doc`
/// is an event, not a refresh).
const json* row_of(const json& doc, const std::string& name) {
  if (!doc.contains("streams")) return nullptr;
  for (const json& row : doc["streams"]) {
    if (row.value("name", "") == name) return &row;
  }
  return nullptr;
}

/// True when some refresh document in `out` shows stream `name` open with `shape` and `dtype`
/// (and, when given, `cnt0`).
bool has_row(const std::string& out, const std::string& name, const json& shape, const std::string& dtype,
             std::optional<std::uint64_t> cnt0 = std::nullopt) {
  for (const json& doc : json_lines(out)) {
    const json* row = row_of(doc, name);
    if (row == nullptr || row->contains("error")) continue;
    if (row->at("shape") != shape || row->at("dtype") != dtype) continue;
    if (cnt0 && row->at("cnt0").get<std::uint64_t>() != *cnt0) continue;
    return true;
  }
  return false;
}

/// The event documents (those with an "event" key) of `out` whose event is `kind`.
std::vector<json> events_of(const std::string& out, const std::string& kind) {
  std::vector<json> found;
  for (const json& doc : json_lines(out)) {
    if (doc.value("event", "") == kind) found.push_back(doc);
  }
  return found;
}

/// Creates stream `name` with the C++ API (replacing any file there) and writes `frames`
/// frames of zeros.
void create_and_write(const std::string& name, std::vector<std::uint32_t> shape, shmlink::Dtype dtype, int frames) {
  shmlink::StreamSpec spec;
  spec.shape = std::move(shape);
  spec.dtype = dtype;
  shmlink::Stream s = shmlink::Stream::create(name, spec, shmlink::OpenMode::PurgeAndCreate);
  std::vector<std::byte> frame(s.frame_bytes());
  for (int i = 0; i < frames; ++i) ASSERT_TRUE(s.write(frame).ok());
}

/// True when some line of a text table in `out` starts with the cells `cells` (split at
/// whitespace).
bool has_table_row(const std::string& out, const std::vector<std::string>& cells) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> got;
    for (std::string w; got.size() < cells.size() && words >> w;) got.push_back(w);
    if (got == cells) return true;
  }
  return false;
}

/// Permission bits of `p`.
unsigned mode_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0xFFFFFFFFu;
  return st.st_mode & 07777;
}

/// Group of `p`.
gid_t gid_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return static_cast<gid_t>(-1);
  return st.st_gid;
}

TEST_F(cli, CreateDepthMakesRollingBufferThatInfoAndLsShow) {
  RunResult r = run_cli({"create", "roll", "--shape", "8x4", "--dtype", "u16", "--depth", "5", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  EXPECT_EQ(j.at("shape"), json::array({8, 4, 5}));
  EXPECT_EQ(j.at("depth"), 5);
  EXPECT_EQ(j.at("frame_shape"), json::array({8, 4}));
  EXPECT_EQ(j.at("frame_bytes"), 64);
  EXPECT_EQ(j.at("data_bytes"), 320);
  {
    shmlink::Stream s = shmlink::Stream::open("roll");
    EXPECT_TRUE(s.rolling());
    EXPECT_EQ(s.depth(), 5u);
    EXPECT_EQ(s.frame_bytes(), 64u);
    const std::vector<std::uint16_t> frame(32, 7);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.write(std::span<const std::uint16_t>(frame)).ok());
  }
  create({"plain", "--shape", "8x4", "--dtype", "u16"});

  r = run_cli({"info", "roll", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  j = parse_json(r);
  EXPECT_EQ(j.at("shape"), json::array({8, 4, 5}));
  EXPECT_EQ(j.at("numpy_shape"), json::array({5, 4, 8}));
  EXPECT_EQ(j.at("depth"), 5);
  EXPECT_EQ(j.at("frame_shape"), json::array({8, 4}));
  EXPECT_EQ(j.at("frame_bytes"), 64);
  EXPECT_EQ(j.at("data_bytes"), 320);
  EXPECT_EQ(j.at("nelement"), 160);
  const auto imagetype = j.at("imagetype").get<std::uint64_t>();
  EXPECT_EQ(imagetype & (shmlink::kImagetypeCircularBuffer | shmlink::kImagetypeZaxisTemporal),
            shmlink::kImagetypeCircularBuffer | shmlink::kImagetypeZaxisTemporal);
  EXPECT_EQ(j.at("cnt0"), 3);
  EXPECT_EQ(j.at("cnt1"), 3);  // the first frame lands in slice 1, as in ISIO

  r = run_cli({"info", "plain", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  j = parse_json(r);
  EXPECT_EQ(j.at("depth"), 1);
  EXPECT_EQ(j.at("frame_shape"), json::array({8, 4}));
  EXPECT_EQ(j.at("frame_bytes"), 64);  // unchanged meaning: one frame
  EXPECT_EQ(j.at("data_bytes"), 64);

  r = run_cli({"info", "roll"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("5 (rolling buffer"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("frame shape:      8x4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data bytes:       320\n"), std::string::npos) << r.out;

  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  j = parse_json(r);
  ASSERT_EQ(j.at("streams").size(), 2u) << r.out;
  std::map<std::string, json> rows;
  for (const json& row : j["streams"]) rows[row.at("name").get<std::string>()] = row;
  EXPECT_EQ(rows.at("roll").at("depth"), 5);
  EXPECT_EQ(rows.at("plain").at("depth"), 1);

  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string header = r.out.substr(0, r.out.find('\n'));
  EXPECT_NE(header.find("READERS  DEPTH"), std::string::npos) << r.out;  // added after the fixed columns
  // Without rolling buffers the table keeps its old columns.
  ASSERT_EQ(run_cli({"rm", "roll"}).code, 0);
  r = run_cli({"ls", "--interval", "0"});
  EXPECT_EQ(r.out.find("DEPTH"), std::string::npos) << r.out;
}

TEST_F(cli, CreateDepthRejectsThreeAxisShapeAndBadValues) {
  RunResult r = run_cli({"create", "bad", "--shape", "4x4x2", "--depth", "3"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_NE(r.err.find("depth"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.im.shm"), std::string::npos) << r.err;  // names the stream's file
  EXPECT_FALSE(fs::exists(stream_file("bad")));
  for (const char* depth : {"-1", "x", "4294967296"}) {
    r = run_cli({"create", "bad", "--shape", "4x4", "--depth", depth});
    EXPECT_EQ(r.code, 2) << depth << "\n" << describe(r);
    EXPECT_FALSE(fs::exists(stream_file("bad"))) << depth;
  }
  // Depth 1 is a plain stream.
  r = run_cli({"create", "one", "--shape", "4x4", "--depth", "1", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("depth"), 1);
  EXPECT_EQ(parse_json(r).at("shape"), json::array({4, 4}));
}

TEST_F(cli, InfoShowsFileModeAndOwner) {
  create({"perm", "--shape", "4", "--permissions", "0640"});
  RunResult r = run_cli({"info", "perm", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("mode"), "0640");
  EXPECT_EQ(j.at("uid"), ::getuid());
  EXPECT_EQ(j.at("gid"), gid_of(stream_file("perm")));
  r = run_cli({"info", "perm"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("mode:             0640\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("file owner:       " + std::to_string(::getuid()) + " ("), std::string::npos) << r.out;
}

TEST_F(cli, CreateAppliesPermissionsExactlyUnderRestrictiveUmask) {
  // umask 077 would turn 0660 into 0600 if the mode were only passed to open(2).
  for (const char* mode : {"0660", "0666", "0644"}) {
    const std::string name = std::string("m") + mode;
    CliProcess p({"create", name, "--shape", "4", "--permissions", mode}, [] { ::umask(077); });
    const RunResult r = p.finish();
    ASSERT_EQ(r.code, 0) << mode << "\n" << describe(r);
    EXPECT_EQ(mode_of(stream_file(name)), std::stoul(mode, nullptr, 8)) << mode;
    const RunResult info = run_cli({"info", name, "--json"});
    ASSERT_EQ(info.code, 0) << describe(info);
    EXPECT_EQ(parse_json(info).at("mode"), mode);
  }
}

TEST_F(cli, CreateGroupSetsTheFilesGroupByGidOrName) {
  const gid_t primary = ::getegid();
  RunResult r = run_cli({"create", "g1", "--shape", "4", "--permissions", "0660", "--group",
                         std::to_string(primary), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(gid_of(stream_file("g1")), primary);
  EXPECT_EQ(parse_json(r).at("gid"), primary);
  EXPECT_EQ(parse_json(r).at("mode"), "0660");

  // Another group the caller may use (root: any; others: a supplementary group), so the
  // change is visible.
  std::optional<gid_t> other;
  if (::geteuid() == 0) {
    if (::getgrgid(1) != nullptr) other = 1;
  } else {
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
    groups.resize(static_cast<std::size_t>(std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
    for (gid_t g : groups) {
      if (g != primary && ::getgrgid(g) != nullptr) other = g;
    }
  }
  if (!other) GTEST_SKIP() << "no second group with a name to switch to";
  const std::string name = ::getgrgid(*other)->gr_name;
  r = run_cli({"create", "g2", "--shape", "4", "--permissions", "0660", "--group", name});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(gid_of(stream_file("g2")), *other);
  EXPECT_EQ(mode_of(stream_file("g2")), 0660u);
  EXPECT_NE(r.out.find("group " + name), std::string::npos) << r.out;
  r = run_cli({"info", "g2", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("group"), name);
}

TEST_F(cli, CreateUnknownGroupFailsNamingItAndCreatesNothing) {
  RunResult r = run_cli({"create", "g", "--shape", "4", "--group", "no-such-group-shmlink"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_NE(r.err.find("no-such-group-shmlink"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(stream_file("g")));
  r = run_cli({"create", "g", "--shape", "4", "--group", "4294967295"});  // chown's "unchanged"
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_FALSE(fs::exists(stream_file("g")));
}

TEST_F(cli, CreateGroupTheCallerIsNotInIsPermissionErrorAndLeavesNoStream) {
  // An unprivileged caller and a group it does not belong to: as root, run the CLI as nobody
  // with group 0; otherwise use group 0 when the caller is not in it.
  constexpr uid_t kNobody = 65534;
  const bool root = ::geteuid() == 0;
  if (!root) {
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
    groups.resize(static_cast<std::size_t>(std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
    if (::getegid() == 0 || std::find(groups.begin(), groups.end(), 0) != groups.end())
      GTEST_SKIP() << "the caller belongs to group 0";
  }
  const fs::path sub = dir_ / "shared";
  fs::create_directory(sub);
  ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(sub.c_str(), 0777), 0);
  CliProcess p({"create", "g", "--dir", sub.string(), "--shape", "4", "--group", "0"}, [root] {
    if (!root) return;
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
      throw std::runtime_error("dropping privileges");
  });
  const RunResult r = p.finish();
  if (root && r.code == 127) GTEST_SKIP() << "the shmlink binary cannot be executed by nobody: " << describe(r);
  EXPECT_EQ(r.code, 4) << describe(r);
  EXPECT_NE(r.err.find("'0'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("must belong to the group"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("g.im.shm"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(sub / "g.im.shm")) << "a stream with the wrong group was left behind";
}

TEST_F(cli, LsAndMonitorScanProcOncePerTableAndALiveMonitorReusesTheScan) {
  // The /proc scan reads every process's maps (taking each one's mmap_lock): -vv logs each scan.
  create({"wfs", "--shape", "4", "--dtype", "u8"});
  auto scans = [](const RunResult& r) {
    int n = 0;
    for (std::size_t at = r.err.find("readers: scanned /proc"); at != std::string::npos;
         at = r.err.find("readers: scanned /proc", at + 1)) {
      ++n;
    }
    return n;
  };
  RunResult r = run_cli({"-vv", "ls", "--interval", "0.05"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(scans(r), 1) << r.err;
  r = run_cli({"-vv", "monitor", "--once", "--interval", "0.05"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(scans(r), 1) << r.err;

  // 30 refreshes 10 ms apart: one scan serves every refresh of up to 2 s.
  const auto start = std::chrono::steady_clock::now();
  r = run_cli({"-vv", "monitor", "--json", "--interval", "0.01", "--count", "30"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_GE(scans(r), 1);
  EXPECT_LE(scans(r), 1 + static_cast<int>(seconds / 2.0)) << seconds << " s\n" << r.err;
  const std::vector<json> docs = json_lines(r.out);
  ASSERT_EQ(docs.size(), 30u);
  for (const json& d : docs) EXPECT_TRUE(d.at("streams").at(0).contains("readers_uninspectable")) << d.dump();
}

TEST_F(cli, MonitorJsonReportsRecreationAndFollowsTheNewStream) {
  create_and_write("cam", {64, 64}, shmlink::Dtype::f32, 5);
  CliProcess mon({"monitor", "--interval", "0.05", "--json"});
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return has_row(out, "cam", {64, 64}, "float32", 5); }))
      << mon.out();

  // Another process would do the same: PurgeAndCreate with another shape and dtype.
  create_and_write("cam", {32, 32}, shmlink::Dtype::u16, 3);
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return has_row(out, "cam", {32, 32}, "uint16", 3); }))
      << mon.out();
  ASSERT_EQ(::kill(mon.pid(), SIGINT), 0);
  const RunResult r = mon.finish(20s);
  EXPECT_EQ(r.code, 0) << describe(r);

  const std::vector<json> events = events_of(r.out, "recreated");
  ASSERT_EQ(events.size(), 1u) << r.out;
  const json& e = events[0];
  EXPECT_EQ(e.at("schema_version"), 1);
  EXPECT_EQ(e.at("name"), "cam");
  EXPECT_EQ(e.at("path"), stream_file("cam").string());
  EXPECT_EQ(e.at("old_shape"), json::array({64, 64}));
  EXPECT_EQ(e.at("old_dtype"), "float32");
  EXPECT_EQ(e.at("new_shape"), json::array({32, 32}));
  EXPECT_EQ(e.at("new_dtype"), "uint16");
  EXPECT_EQ(e.at("new_depth"), 1);
  EXPECT_TRUE(events_of(r.out, "removed").empty()) << r.out;

  // Refreshes before the event show the old file, those after it the new one.
  bool after = false;
  for (const json& doc : json_lines(r.out)) {
    if (doc.contains("event")) {
      after = true;
      continue;
    }
    const json* row = row_of(doc, "cam");
    ASSERT_NE(row, nullptr) << doc.dump();
    EXPECT_EQ(row->at("shape"), after ? json::array({32, 32}) : json::array({64, 64})) << r.out;
  }
  EXPECT_TRUE(after);
}

TEST_F(cli, MonitorTextReportsRecreationAndRemovalOfANamedStream) {
  create_and_write("cam", {64, 64}, shmlink::Dtype::f32, 1);
  create_and_write("other", {4}, shmlink::Dtype::u8, 1);
  CliProcess mon({"monitor", "cam", "--interval", "0.05"});
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return out.find("64x64") != std::string::npos; }))
      << mon.out();
  create_and_write("cam", {32, 32}, shmlink::Dtype::u16, 2);
  const std::string recreated = "stream 'cam' re-created: 64x64 float32 -> 32x32 uint16\n";
  ASSERT_TRUE(mon.read_until([&](const std::string& out) {
    const auto at = out.find(recreated);
    return at != std::string::npos && out.find("32x32", at + recreated.size()) != std::string::npos;
  })) << mon.out();

  shmlink::Stream::remove("cam");
  const std::string removed = "stream 'cam' removed; waiting for it to come back\n";
  ASSERT_TRUE(mon.read_until([&](const std::string& out) { return out.find(removed) != std::string::npos; }))
      << mon.out();
  ASSERT_EQ(::kill(mon.pid(), SIGINT), 0);
  const RunResult r = mon.finish(20s);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.find("other"), std::string::npos) << "only the named stream is shown\n" << r.out;
  // A table row of the new file: its shape, short dtype and two frames.
  EXPECT_TRUE(has_table_row(r.out, {"cam", "32x32", "u16", "2"})) << r.out;
}

TEST_F(cli, MonitorWaitsForARemovedStreamAndFollowsItWhenItComesBack) {
  create_and_write("cam", {8, 8}, shmlink::Dtype::f32, 1);
  CliProcess mon({"monitor", "cam", "--interval", "0.05", "--json"});
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return has_row(out, "cam", {8, 8}, "float32"); }))
      << mon.out();

  shmlink::Stream::remove("cam");
  ASSERT_TRUE(mon.read_until([](const std::string& out) {
    bool seen = false;
    for (const json& doc : json_lines(out)) {
      if (doc.value("event", "") == "removed") seen = true;
      const json* row = row_of(doc, "cam");
      if (seen && row != nullptr && row->contains("error") && row->at("exit_code") == 3) return true;
    }
    return false;
  })) << mon.out();

  shmlink::StreamSpec spec;
  spec.shape = {16};
  spec.dtype = shmlink::Dtype::u8;
  {
    shmlink::Stream s = shmlink::Stream::create("cam", spec);
    const std::vector<std::uint8_t> frame(16, 1);
    ASSERT_TRUE(s.write(std::span<const std::uint8_t>(frame)).ok());
    ASSERT_TRUE(s.write(std::span<const std::uint8_t>(frame)).ok());
  }
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return has_row(out, "cam", {16}, "uint8", 2); }))
      << mon.out();
  ASSERT_EQ(::kill(mon.pid(), SIGINT), 0);
  const RunResult r = mon.finish(20s);
  EXPECT_EQ(r.code, 0) << describe(r);

  const std::vector<json> removed = events_of(r.out, "removed");
  ASSERT_EQ(removed.size(), 1u) << r.out;
  EXPECT_EQ(removed[0].at("waiting"), true);
  EXPECT_EQ(removed[0].at("old_shape"), json::array({8, 8}));
  EXPECT_EQ(removed[0].at("old_dtype"), "float32");
  const std::vector<json> created = events_of(r.out, "created");
  ASSERT_EQ(created.size(), 1u) << r.out;
  EXPECT_EQ(created[0].at("new_shape"), json::array({16}));
  EXPECT_EQ(created[0].at("new_dtype"), "uint8");
  EXPECT_FALSE(created[0].contains("old_shape"));
}

TEST_F(cli, MonitorSurvivesAStreamFileTruncatedInPlace) {
  // DAO re-creates a stream by truncating the same inode: reading a mapping past the new end
  // raises SIGBUS. The monitor must notice, report it and carry on.
  create_and_write("cam", {64, 64}, shmlink::Dtype::f32, 1);
  const fs::path file = stream_file("cam");
  const auto size = static_cast<off_t>(fs::file_size(file));
  CliProcess mon({"monitor", "cam", "--interval", "0.01", "--json"});
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return has_row(out, "cam", {64, 64}, "float32"); }))
      << mon.out();

  // Shrink and grow it while the monitor reads it (metadata page kept), then leave it short.
  // Some shrinks land in the middle of a refresh's reads: without the monitor's SIGBUS guard
  // that kills it (seen as exit 135 below); with it they are reported as re-creations.
  const auto stop = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < stop) {
    ASSERT_EQ(::truncate(file.c_str(), 4096), 0);
    std::this_thread::sleep_for(200us);
    ASSERT_EQ(::truncate(file.c_str(), size), 0);
    std::this_thread::sleep_for(200us);
    mon.drain();
  }
  ASSERT_EQ(::truncate(file.c_str(), 4096), 0);
  ASSERT_TRUE(mon.read_until([](const std::string& out) {
    for (const json& e : events_of(out, "recreated")) {
      if (e.contains("old_shape") && e.contains("new_error")) return true;
    }
    return false;
  })) << mon.out();

  // A proper re-creation afterwards is followed.
  create_and_write("cam", {32, 32}, shmlink::Dtype::u16, 1);
  ASSERT_TRUE(mon.read_until([](const std::string& out) { return has_row(out, "cam", {32, 32}, "uint16", 1); }))
      << mon.out();
  ASSERT_EQ(::kill(mon.pid(), SIGINT), 0);
  const RunResult r = mon.finish(20s);
  EXPECT_EQ(r.code, 0) << "killed by a signal?\n" << describe(r).substr(0, 4000);
}

TEST_F(cli, MonitorOnceJsonListsEventsOfItsInterval) {
  create_and_write("cam", {4, 4}, shmlink::Dtype::f32, 1);
  CliProcess mon({"monitor", "--once", "--json", "--interval", "3"});
  // The first sample is taken at start; re-create after it, within the interval. The monitor
  // has the file mapped once it appears in /proc/<pid>/maps.
  const std::string maps = "/proc/" + std::to_string(mon.pid()) + "/maps";
  ASSERT_TRUE(eventually([&] { return read_file(maps).find(stream_file("cam").string()) != std::string::npos; }));
  create_and_write("cam", {2, 2}, shmlink::Dtype::u8, 1);
  const RunResult r = mon.finish(30s);
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  ASSERT_TRUE(j.contains("events")) << r.out;
  ASSERT_EQ(j.at("events").size(), 1u) << r.out;
  EXPECT_EQ(j["events"][0].at("event"), "recreated");
  EXPECT_EQ(j["events"][0].at("old_shape"), json::array({4, 4}));
  EXPECT_EQ(j["events"][0].at("new_shape"), json::array({2, 2}));
  ASSERT_EQ(j.at("streams").size(), 1u);
  EXPECT_EQ(j["streams"][0].at("shape"), json::array({2, 2}));
}

}  // namespace

// ---- queues: ls, info, rm, gc -----------------------------------------------------------

namespace {

/// The signal table of the test queues: one signal of each kind of unit (with and without).
std::vector<shmlink::Signal> test_signals() {
  return {{0, "voltage", shmlink::SignalType::f64, "V"},
          {1, "count", shmlink::SignalType::i64, ""},
          {3, "breaker", shmlink::SignalType::boolean, ""}};
}

/// A queue spec: capacity 8, 4 values per sample, the test signal table.
shmlink::QueueSpec test_queue_spec(shmlink::QueueKind kind = shmlink::QueueKind::spsc,
                                   shmlink::WaitMode wait = shmlink::WaitMode::futex) {
  shmlink::QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 4;
  spec.kind = kind;
  spec.wait = wait;
  spec.signals = test_signals();
  return spec;
}

/// Pushes `pushes` samples into `q` and pops `pops` of them again, asserting each succeeds.
void push_and_pop(shmlink::Queue& q, int pushes, int pops) {
  for (int i = 0; i < pushes; ++i) {
    shmlink::Sample s;
    s.sequence = static_cast<std::uint64_t>(i);
    s.flags = shmlink::kSampleHasSequence | shmlink::kSampleHasData;
    s.values = {shmlink::SignalValue::of(0.5 * i), shmlink::SignalValue::of(std::int64_t{i}),
                shmlink::SignalValue::of(false), shmlink::SignalValue::of(i % 2 == 0)};
    ASSERT_TRUE(q.try_push(s).ok()) << "push " << i;
  }
  shmlink::Sample out;
  for (int i = 0; i < pops; ++i) {
    ASSERT_TRUE(q.try_pop(out).ok()) << "pop " << i;
    EXPECT_EQ(out.sequence, static_cast<std::uint64_t>(i));
  }
}

/// Creates queue `name` from a child process that then exits, so its creator is dead.
void create_queue_from_dead_creator(const std::string& name) {
  pid_t pid = ::fork();
  if (pid == 0) {
    try {
      shmlink::Queue::create(name, test_queue_spec());
      ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/// The row named `name` in `rows` (a JSON array), or null.
const json* named(const json& rows, const std::string& name) {
  for (const json& row : rows) {
    if (row.value("name", "") == name) return &row;
  }
  return nullptr;
}

/// The names in a JSON array of {name, ...} objects.
std::set<std::string> names_in(const json& rows) {
  std::set<std::string> out;
  for (const json& row : rows) out.insert(row.at("name").get<std::string>());
  return out;
}

/// Path of queue `name` in `dir`.
fs::path queue_file(const fs::path& dir, const std::string& name) { return dir / (name + ".queue.shm"); }

TEST_F(cli, LsListsQueuesWithCountersNextToStreams) {
  create({"cam", "--shape", "4x4"});
  shmlink::Queue samples = shmlink::Queue::create("samples", test_queue_spec());
  push_and_pop(samples, 5, 2);
  shmlink::Queue shut = shmlink::Queue::create(
      "shut", test_queue_spec(shmlink::QueueKind::mpmc, shmlink::WaitMode::polling));
  shut.shutdown();

  // JSON: streams keep their array (each row now says "kind": "stream"), queues get their own.
  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  ASSERT_EQ(j.at("streams").size(), 1u) << r.out;
  EXPECT_EQ(j["streams"][0].at("name"), "cam");
  EXPECT_EQ(j["streams"][0].at("kind"), "stream");
  EXPECT_EQ(j["streams"][0].at("shape"), json::array({4, 4}));  // stream keys unchanged
  ASSERT_EQ(j.at("queues").size(), 2u) << r.out;
  EXPECT_EQ(j["queues"][0].at("name"), "samples");  // sorted by file name
  const json& q = j["queues"][0];
  EXPECT_EQ(q.at("kind"), "queue");
  EXPECT_EQ(q.at("path"), queue_file(dir_, "samples").string());
  EXPECT_EQ(q.at("queue_kind"), "spsc");
  EXPECT_EQ(q.at("wait_mode"), "futex");
  EXPECT_EQ(q.at("capacity"), 8);
  EXPECT_EQ(q.at("max_values"), 4);
  EXPECT_EQ(q.at("size"), 3);
  EXPECT_EQ(q.at("pushed"), 5);
  EXPECT_EQ(q.at("popped"), 2);
  EXPECT_EQ(q.at("shut_down"), false);
  EXPECT_FALSE(q.contains("closed")) << q.dump();
  EXPECT_EQ(q.at("signal_count"), 3);
  EXPECT_EQ(q.at("creator_pid"), static_cast<int>(::getpid()));
  EXPECT_EQ(q.at("creator_alive"), true);
  EXPECT_EQ(q.at("file_bytes"), fs::file_size(queue_file(dir_, "samples")));
  EXPECT_FALSE(q.contains("error")) << q.dump();
  const json& s = j["queues"][1];
  EXPECT_EQ(s.at("name"), "shut");
  EXPECT_EQ(s.at("queue_kind"), "mpmc");
  EXPECT_EQ(s.at("wait_mode"), "polling");
  EXPECT_EQ(s.at("size"), 0);
  EXPECT_EQ(s.at("shut_down"), true);

  // Text: the stream table as before, then a queue table.
  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("NAME", 0), 0u) << "the stream table comes first\n" << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"cam", "4x4", "float32"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"QUEUE", "KIND", "WAIT", "CAPACITY", "VALUES", "SIZE", "PUSHED", "POPPED",
                                    "SIGNALS", "CREATOR"}))
      << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"samples", "spsc", "futex", "8", "4", "3", "5", "2", "3",
                                    std::to_string(::getpid()), "(alive)", "open"}))
      << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"shut", "mpmc", "polling", "8", "4", "0", "0", "0", "3"})) << r.out;
  EXPECT_NE(r.out.find("shut_down"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("closed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ERROR"), std::string::npos) << r.out;

  // Only queues: just the queue table; nothing at all: one line saying so.
  ASSERT_EQ(run_cli({"rm", "cam"}).code, 0);
  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("QUEUE", 0), 0u) << r.out;
  r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_TRUE(parse_json(r).at("streams").empty()) << r.out;
  samples.close();
  shut.close();
  shmlink::Queue::remove("samples");
  shmlink::Queue::remove("shut");
  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("no streams or queues in"), std::string::npos) << r.out;
  r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_TRUE(parse_json(r).at("queues").empty()) << r.out;
}

TEST_F(cli, InfoShowsQueueHeaderCountersAndSignalTable) {
  shmlink::Queue q = shmlink::Queue::create("samples", test_queue_spec(shmlink::QueueKind::mpmc));
  push_and_pop(q, 6, 4);

  RunResult r = run_cli({"info", "samples", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  EXPECT_EQ(j.at("kind"), "queue");
  EXPECT_EQ(j.at("name"), "samples");
  EXPECT_EQ(j.at("path"), queue_file(dir_, "samples").string());
  EXPECT_EQ(j.at("version"), 2);
  EXPECT_EQ(j.at("queue_kind"), "mpmc");
  EXPECT_EQ(j.at("wait_mode"), "futex");
  EXPECT_EQ(j.at("capacity"), 8);
  EXPECT_EQ(j.at("max_values"), 4);
  EXPECT_GE(j.at("cell_bytes").get<std::uint32_t>(), 48u + 4u * 8u);  // cell header + 4 values
  EXPECT_EQ(j.at("cell_bytes").get<std::uint32_t>() % 64u, 0u);
  EXPECT_EQ(j.at("file_bytes"), fs::file_size(queue_file(dir_, "samples")));
  EXPECT_EQ(j.at("mode"), "0600");
  EXPECT_EQ(j.at("size"), 2);
  EXPECT_EQ(j.at("pushed"), 6);
  EXPECT_EQ(j.at("popped"), 4);
  EXPECT_EQ(j.at("shut_down"), false);
  EXPECT_EQ(j.at("creator_pid"), static_cast<int>(::getpid()));
  EXPECT_EQ(j.at("creator_alive"), true);
  EXPECT_GT(j.at("creation_time_ns").get<std::int64_t>(), 0);
  EXPECT_EQ(j.at("signal_count"), 3);
  const json expected_signals = json::array({
      {{"index", 0}, {"name", "voltage"}, {"type", "f64"}, {"unit", "V"}},
      {{"index", 1}, {"name", "count"}, {"type", "i64"}, {"unit", ""}},
      {{"index", 3}, {"name", "breaker"}, {"type", "bool"}, {"unit", ""}},
  });
  EXPECT_EQ(j.at("signals"), expected_signals) << r.out;

  // Counters follow the queue; shutdown shows as shut_down (Errc::shut_down's name).
  push_and_pop(q, 1, 0);
  q.shutdown();
  r = run_cli({"info", "samples"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(has_table_row(r.out, {"kind:", "queue"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"queue", "kind:", "mpmc"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"wait", "mode:", "futex"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"capacity:", "8"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"max", "values:", "4"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"size:", "3"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"pushed:", "7"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"popped:", "4"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"state:", "shut_down"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"creator", "pid:", std::to_string(::getpid()), "(alive)"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"INDEX", "SIGNAL", "TYPE", "UNIT"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"0", "voltage", "f64", "V"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"1", "count", "i64", "-"})) << r.out;
  EXPECT_TRUE(has_table_row(r.out, {"3", "breaker", "bool", "-"})) << r.out;

  // The file name and the path name the same queue; so do --dir and a queue without signals.
  r = run_cli({"info", "samples.queue.shm", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("kind"), "queue");
  r = run_cli({"info", queue_file(dir_, "samples").string(), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("pushed"), 7);
  const fs::path other = dir_ / "sub";
  fs::create_directory(other);
  shmlink::QueueSpec bare;
  bare.capacity = 2;
  bare.max_values = 1;
  shmlink::Queue::create(queue_file(other, "bare").string(), bare);
  r = run_cli({"info", "bare", "--dir", other.string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("no signal table"), std::string::npos) << r.out;
  r = run_cli({"info", "bare"});  // not in $SHMLINK_DIR
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find("bare.queue.shm"), std::string::npos) << r.err;
}

TEST_F(cli, InfoAndRmPreferTheStreamWhenAQueueSharesItsName) {
  create({"both", "--shape", "4"});
  {
    shmlink::Queue q = shmlink::Queue::create("both", test_queue_spec());
    push_and_pop(q, 2, 0);
  }

  RunResult r = run_cli({"info", "both", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("kind"), "stream");
  EXPECT_NE(r.err.find("queue"), std::string::npos) << "mentions the queue\n" << r.err;
  EXPECT_NE(r.err.find("--queue"), std::string::npos) << r.err;

  r = run_cli({"info", "both", "--queue", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  EXPECT_EQ(j.at("kind"), "queue");
  EXPECT_EQ(j.at("pushed"), 2);
  EXPECT_TRUE(r.err.empty()) << r.err;

  // rm --queue takes the queue only; plain rm takes the stream and says the queue stays.
  r = run_cli({"rm", "--queue", "both"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(queue_file(dir_, "both")));
  EXPECT_TRUE(fs::exists(stream_file("both")));
  {
    shmlink::Queue q = shmlink::Queue::create("both", test_queue_spec());
  }
  r = run_cli({"rm", "both"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(stream_file("both")));
  EXPECT_TRUE(fs::exists(queue_file(dir_, "both")));
  EXPECT_NE(r.err.find("--queue"), std::string::npos) << r.err;
  // Now only the queue is there: the bare name finds it.
  r = run_cli({"info", "both", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("kind"), "queue");
  r = run_cli({"rm", "both"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(queue_file(dir_, "both")));
}

TEST_F(cli, RmRemovesQueuesAndRefusesOtherFiles) {
  for (const char* name : {"a", "b", "c"}) shmlink::Queue::create(name, test_queue_spec());
  RunResult r = run_cli({"rm", "--print", "a", "missing", "b.queue.shm", queue_file(dir_, "c").string()});
  EXPECT_EQ(r.code, 3) << describe(r);  // "missing"; the others still go
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("removed " + queue_file(dir_, "a").string()), std::string::npos) << r.out;
  for (const char* name : {"a", "b", "c"}) EXPECT_FALSE(fs::exists(queue_file(dir_, name))) << name;

  EXPECT_EQ(run_cli({"rm", "-f", "--queue", "missing"}).code, 0);
  r = run_cli({"rm", "--queue", "missing"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find("missing.queue.shm"), std::string::npos) << r.err;

  const fs::path other = dir_ / "notes.txt";
  std::ofstream(other) << "keep me";
  r = run_cli({"rm", "--queue", other.string()});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(fs::exists(other));
  r = run_cli({"rm", "--queue", std::string(80, 'q')});
  EXPECT_EQ(r.code, 2) << describe(r);
}

TEST_F(cli, GcRemovesOnlyQueuesWithDeadCreatorAndNoUsers) {
  create_queue_from_dead_creator("stale");
  create_queue_from_dead_creator("held");
  shmlink::Queue live = shmlink::Queue::create("live", test_queue_spec());  // creator: this process
  create_from_dead_creator("stale");  // a stale stream of the same name goes too

  // A live process keeps queue "held" open (mapped) while gc runs; killed by Child's destructor
  // should an assertion end the test early.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  Child holder([&ready] {
    auto q = shmlink::Queue::open("held");
    char c = 'r';
    (void)!::write(ready[1], &c, 1);
    ::pause();
  });
  char c = 0;
  const ssize_t got = ::read(ready[0], &c, 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_EQ(got, 1);

  RunResult r = run_cli({"gc", "--streams", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json doc = parse_json(r);
  EXPECT_EQ(doc.at("dry_run"), true);
  ASSERT_EQ(doc.at("removed").size(), 2u) << r.out;
  std::set<std::pair<std::string, std::string>> would;
  for (const json& v : doc["removed"]) would.insert({v.at("kind").get<std::string>(), v.at("name").get<std::string>()});
  EXPECT_EQ(would, (std::set<std::pair<std::string, std::string>>{{"queue", "stale"}, {"stream", "stale"}}));
  EXPECT_EQ(names_in(doc.at("kept")), (std::set<std::string>{"held", "live"}));
  const json* held = named(doc["kept"], "held");
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->at("kind"), "queue");
  EXPECT_NE(held->at("reason").get<std::string>().find(std::to_string(holder.pid())), std::string::npos)
      << held->dump();
  EXPECT_TRUE(fs::exists(queue_file(dir_, "stale")));  // dry run removed nothing

  r = run_cli({"gc", "--streams", "--dry-run"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("would remove stale (queue)"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(queue_file(dir_, "stale")));

  r = run_cli({"gc", "--streams"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("removed stale (queue)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(queue_file(dir_, "stale")));
  EXPECT_FALSE(fs::exists(stream_file("stale")));
  EXPECT_TRUE(fs::exists(queue_file(dir_, "held")));  // creator dead, but a live process has it open
  EXPECT_TRUE(fs::exists(queue_file(dir_, "live")));  // creator alive

  holder.stop();
  r = run_cli({"gc", "--streams"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(queue_file(dir_, "held")));  // its last user is gone now
  EXPECT_TRUE(fs::exists(queue_file(dir_, "live")));
  r = run_cli({"gc", "--streams"});
  EXPECT_NE(r.out.find("nothing to remove"), std::string::npos) << r.out;
}

TEST_F(cli, CorruptQueueIsLayoutMismatchNamingFileAndField) {
  shmlink::Queue::create("good", test_queue_spec());
  shmlink::Queue::create("badmagic", test_queue_spec());
  shmlink::Queue::create("short", test_queue_spec());
  {
    std::fstream f(queue_file(dir_, "badmagic"), std::ios::in | std::ios::out | std::ios::binary);
    f.write("NOTQUEUE", 8);  // the magic at offset 0
  }
  fs::resize_file(queue_file(dir_, "short"), fs::file_size(queue_file(dir_, "short")) - 64);

  RunResult r = run_cli({"info", "badmagic"});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find(queue_file(dir_, "badmagic").string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("magic"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = run_cli({"info", "badmagic", "--json"});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = run_cli({"info", "short", "--queue"});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find(queue_file(dir_, "short").string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bytes"), std::string::npos) << r.err;

  // ls lists broken queues with their error instead of failing.
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  ASSERT_EQ(j.at("queues").size(), 3u) << r.out;
  for (const json& row : j["queues"]) {
    EXPECT_EQ(row.at("kind"), "queue");
    if (row.at("name") == "good") {
      EXPECT_FALSE(row.contains("error")) << row.dump();
      EXPECT_EQ(row.at("capacity"), 8);
    } else {
      ASSERT_TRUE(row.contains("error")) << row.dump();
      EXPECT_EQ(row.at("exit_code"), 5) << row.dump();
      EXPECT_NE(row.at("error").get<std::string>().find(row.at("path").get<std::string>()), std::string::npos)
          << row.dump();
    }
  }
  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(has_table_row(r.out, {"badmagic", "-", "-"})) << r.out;
  EXPECT_NE(r.out.find("ERROR"), std::string::npos) << r.out;

  // gc leaves files that are not valid queues alone.
  r = run_cli({"gc", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(queue_file(dir_, "badmagic")));
  EXPECT_TRUE(fs::exists(queue_file(dir_, "short")));
  const json gc = parse_json(r);
  const json* bad = named(gc.at("kept"), "badmagic");
  ASSERT_NE(bad, nullptr) << r.out;
  EXPECT_NE(bad->at("reason").get<std::string>().find("not a valid queue"), std::string::npos) << bad->dump();
}

// ---- memif responder / ping ------------------------------------------------------------------

/// `memif ping` against `memif responder` in both role assignments, with chained 9000-byte frames.
TEST_F(cli, MemifPingGetsEveryReplyFromTheResponderInBothRoles) {
  for (const bool responder_master : {true, false}) {
    const std::string sock = (dir_ / (responder_master ? "a.sock" : "b.sock")).string();
    CliProcess responder({"memif", "responder", "--socket", sock, "--role", responder_master ? "master" : "slave",
                          "--duration", "30"});
    const RunResult r = run_cli({"memif", "ping", "--socket", sock, "--role", responder_master ? "slave" : "master",
                                 "-c", "4", "-i", "0.01", "-s", "9000", "--connect-timeout", "20"});
    EXPECT_EQ(r.code, 0) << describe(r);
    EXPECT_NE(r.out.find("192.168.1.1 is at aa:aa:aa:aa:aa:aa"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("4 packets transmitted, 4 received, 0 corrupted, 0% packet loss"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("9000 bytes from 192.168.1.1: icmp_seq=4"), std::string::npos) << r.out;
    ::kill(responder.pid(), SIGTERM);
    const RunResult rr = responder.finish();
    EXPECT_EQ(rr.code, 0) << describe(rr);
  }
}

/// A refused handshake is reported with the master's reason, and ping fails with the timeout code.
TEST_F(cli, MemifPingReportsARefusedHandshake) {
  const std::string sock = (dir_ / "s.sock").string();
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--secret", "right", "--duration", "30"});
  const RunResult r = run_cli({"memif", "ping", "--socket", sock, "--secret", "wrong", "--connect-timeout", "3"});
  EXPECT_EQ(r.code, 124) << describe(r);
  EXPECT_NE(r.err.find("Incorrect secret"), std::string::npos) << describe(r);
}

/// Nobody answering: ping reports the loss and exits 1.
TEST_F(cli, MemifPingFailsWhenRepliesAreMissing) {
  const std::string sock = (dir_ / "q.sock").string();
  // A responder for another address returns our echo requests with the MACs swapped, as
  // icmp_responder does with frames not for it: ping must not take those for replies.
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--ip", "10.0.0.1", "--duration", "30"});
  const RunResult r = run_cli({"memif", "ping", "--socket", sock, "-c", "2", "-i", "0.01", "-W", "0.2", "--no-arp",
                               "--connect-timeout", "20"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.out.find("2 packets transmitted, 0 received"), std::string::npos) << r.out;
}

/// How often `needle` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

/// A memif slave in this test process on socket `path`, with rings of 2^`log2_ring` slots.
struct TestSlave {
  TestSlave(const std::string& path, std::uint8_t log2_ring)
      : socket([&] {
          shmlink::memif::SocketOptions so;
          so.path = path;
          so.reconnect_interval = 50ms;
          so.publish_status = false;
          return so;
        }()),
        ifc(socket.add_interface([&] {
          shmlink::memif::InterfaceOptions io;
          io.role = shmlink::memif::Role::slave;
          io.log2_ring_size = log2_ring;
          return io;
        }())) {}
  /// Polls the socket until the link is up (10 s); false when it did not come.
  bool connect() {
    return eventually([&] {
      (void)socket.poll(10ms);
      return ifc.connected();
    });
  }
  shmlink::memif::Socket socket;
  shmlink::memif::Interface& ifc;
};

/// A burst of requests larger than the responder's transmit ring, sent while we are not reading
/// the answers: the responder must wait for ring space rather than drop answers (issue 18 item
/// 11), so every request gets its answer, in order, and it counts exactly what it sent. The
/// frames are Ethernet frames the responder returns with the MACs swapped (the path its ICMP
/// echo replies take too), each carrying its sequence number.
TEST_F(cli, MemifResponderAnswersABurstLargerThanItsRingWithoutDropping) {
  const std::string sock = (dir_ / "burst.sock").string();
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--duration", "60", "-v"});
  // 16 slots each way: the responder's transmit ring is full after 16 answers.
  TestSlave slave(sock, 4);
  ASSERT_TRUE(slave.connect()) << slave.ifc.last_disconnect();
  shmlink::memif::Socket& client = slave.socket;
  shmlink::memif::Interface& ifc = slave.ifc;

  constexpr std::uint32_t kFrames = 200;  // 12.5 rings' worth
  std::uint32_t sent = 0, answered = 0, out_of_order = 0;
  std::array<shmlink::memif::Buffer, 32> bufs{};
  auto last_progress = std::chrono::steady_clock::now();
  while (answered < kFrames && std::chrono::steady_clock::now() - last_progress < 3s && ifc.connected()) {
    (void)client.poll(0ms);
    // Up to three rings' worth of requests, for at most 10 ms, without reading an answer: the
    // responder answers the first 16 and then finds its transmit ring full.
    const auto phase_end = std::chrono::steady_clock::now() + 10ms;
    for (std::uint32_t phase = 0; sent < kFrames && phase < 48 && std::chrono::steady_clock::now() < phase_end;) {
      std::size_t n = 0;
      if (!ifc.alloc(0, bufs, 1, 64, n).ok()) {
        std::this_thread::yield();
        continue;
      }
      ++phase;
      std::uint8_t* f = bufs[0].data;
      std::memset(f, 0, 64);
      const std::uint8_t dst[6] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
      std::memcpy(f, dst, 6);
      std::memcpy(f + 6, src, 6);
      f[12] = 0x88;  // IEEE local experimental ethertype 0x88b5
      f[13] = 0xb5;
      std::memcpy(f + 14, &sent, sizeof sent);
      std::size_t done = 0;
      ASSERT_TRUE(ifc.tx_burst(0, std::span<const shmlink::memif::Buffer>(bufs.data(), n), done).ok());
      ++sent;
    }
    // Not reading for a moment lets the responder's transmit ring fill up while requests wait.
    std::this_thread::sleep_for(20ms);
    std::size_t n = 0;
    while (ifc.rx_burst(0, bufs, n).ok()) {
      for (std::size_t k = 0; k < n; ++k) {
        std::uint32_t seq = 0;
        ASSERT_GE(bufs[k].len, 18u);
        std::memcpy(&seq, bufs[k].data + 14, sizeof seq);
        if (seq != answered) ++out_of_order;
        ++answered;
        last_progress = std::chrono::steady_clock::now();
      }
      ASSERT_TRUE(ifc.refill(0, n).ok());
    }
  }
  EXPECT_EQ(sent, kFrames);
  EXPECT_EQ(answered, kFrames) << "answers lost";
  EXPECT_EQ(out_of_order, 0u);
  ::kill(responder.pid(), SIGTERM);
  const RunResult rr = responder.finish();
  EXPECT_EQ(rr.code, 0) << describe(rr);
  EXPECT_NE(rr.err.find("answered " + std::to_string(kFrames) + " frames"), std::string::npos) << describe(rr);
  EXPECT_EQ(rr.err.find("not sent"), std::string::npos) << describe(rr);
}

/// A slave refused by its master for a wrong secret warns with the reason at default verbosity,
/// once over its retries (later refusals for the same reason are info lines); the master warns
/// once too (issue 18 item 12).
TEST_F(cli, MemifRefusalIsOneWarningPerDistinctReason) {
  const std::string sock = (dir_ / "secret.sock").string();
  CliProcess master({"memif", "responder", "--socket", sock, "--role", "master", "--secret", "right", "--duration", "30"});
  ASSERT_TRUE(eventually([&] { return fs::exists(sock); }));
  // The slave retries every 500 ms: about 6 refusals in 3 s (at least 2 on loaded cores). -v shows
  // each one after the first at info level.
  const RunResult slave = run_cli({"memif", "responder", "--socket", sock, "--role", "slave", "--secret", "wrong",
                                   "--duration", "3", "-v"});
  EXPECT_EQ(slave.code, 0) << describe(slave);
  EXPECT_EQ(occurrences(slave.err, "warning: memif slave 'responder' (id 0): not connected: refused by the master: "
                                   "Incorrect secret"), 1u) << describe(slave);
  EXPECT_GE(occurrences(slave.err, "info: memif slave 'responder' (id 0): not connected: refused by the master: "
                                   "Incorrect secret"), 1u) << describe(slave);
  ::kill(master.pid(), SIGTERM);
  const RunResult m = master.finish();
  EXPECT_EQ(occurrences(m.err, "Incorrect secret"), 1u) << describe(m);
  EXPECT_NE(m.err.find("warning: memif socket " + sock + ": refused a peer ('shmlink-responder'): Incorrect secret"),
            std::string::npos) << describe(m);
}

/// `memif responder --connect-timeout 2` with no peer exits with the timeout code (124) and says
/// so, instead of waiting for ever (issue 18 item 13). The 30 s bound only catches a hang.
TEST_F(cli, MemifResponderHonoursConnectTimeout) {
  CliProcess responder({"memif", "responder", "--socket", (dir_ / "nobody.sock").string(), "--role", "slave",
                        "--connect-timeout", "2"});
  const RunResult r = responder.finish(30s);
  EXPECT_EQ(r.code, 124) << describe(r);
  EXPECT_NE(r.err.find("no link within 2 s"), std::string::npos) << describe(r);
}

/// Peers that change their application name at each attempt do not get a warning each: the
/// master's warning is keyed on the refusal's reason, not on the name the peer sent (issue 18
/// item 12 review).
TEST_F(cli, MemifRefusalWarningIsNotRenewedByAPeerChangingItsName) {
  const std::string sock = (dir_ / "names.sock").string();
  CliProcess master({"memif", "responder", "--socket", sock, "--role", "master", "--secret", "right", "--duration", "30"});
  ASSERT_TRUE(eventually([&] { return fs::exists(sock); }));
  for (int k = 0; k < 3; ++k) {
    shmlink::memif::SocketOptions so;
    so.path = sock;
    so.app_name = "rotating-" + std::to_string(k);
    so.publish_status = false;
    shmlink::memif::Socket client(so);
    shmlink::memif::InterfaceOptions io;
    io.role = shmlink::memif::Role::slave;
    io.secret = "wrong";
    shmlink::memif::Interface& ifc = client.add_interface(io);
    ASSERT_TRUE(eventually([&] {
      (void)client.poll(10ms);
      return !ifc.last_disconnect().empty();
    })) << k;
    EXPECT_NE(ifc.last_disconnect().find("Incorrect secret"), std::string::npos) << ifc.last_disconnect();
  }
  ::kill(master.pid(), SIGTERM);
  const RunResult m = master.finish();
  EXPECT_EQ(occurrences(m.err, "Incorrect secret"), 1u) << describe(m);
  EXPECT_NE(m.err.find("refused a peer ('rotating-0'): Incorrect secret"), std::string::npos) << describe(m);
}

/// A peer that connects, sends requests and never returns a buffer: the responder waits for
/// transmit space at most about a second per stall, then drops answers and says how many, and
/// it stops at --duration instead of waiting for ever (issue 18 item 11 review).
TEST_F(cli, MemifResponderHonoursDurationWhenThePeerReturnsNoBuffers) {
  const std::string sock = (dir_ / "stall.sock").string();
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--duration", "3", "-v"});
  // 16 slots each way: the responder's transmit ring is full after 16 answers.
  TestSlave slave(sock, 4);
  ASSERT_TRUE(slave.connect()) << slave.ifc.last_disconnect();
  shmlink::memif::Interface& ifc = slave.ifc;
  // 40 requests, never reading an answer (so never returning a buffer to the responder).
  std::array<shmlink::memif::Buffer, 4> bufs{};
  std::uint32_t sent = 0;
  const auto give_up = std::chrono::steady_clock::now() + 2s;
  while (sent < 40 && std::chrono::steady_clock::now() < give_up) {
    std::size_t n = 0;
    if (!ifc.alloc(0, bufs, 1, 64, n).ok()) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    std::uint8_t* f = bufs[0].data;
    std::memset(f, 0, 64);
    std::memset(f, 0xaa, 6);  // to the responder's MAC
    f[6] = 0x02;
    f[12] = 0x88;  // IEEE local experimental ethertype 0x88b5: returned with the MACs swapped
    f[13] = 0xb5;
    std::size_t done = 0;
    ASSERT_TRUE(ifc.tx_burst(0, std::span<const shmlink::memif::Buffer>(bufs.data(), n), done).ok());
    ++sent;
  }
  EXPECT_GT(sent, 16u) << "the responder took no more requests once its transmit ring was full";
  // 20 s only catches a hang: the responder must stop at its --duration (3 s).
  const RunResult rr = responder.finish(20s);
  EXPECT_EQ(rr.code, 0) << describe(rr);
  EXPECT_NE(rr.err.find("answers not sent"), std::string::npos) << describe(rr);
}

/// `memif ping --connect-timeout 0` waits for the link without limit, as the responder's does,
/// instead of failing at once: started before any master exists, it gets its replies once one
/// comes up (issue 18 item 13 review).
TEST_F(cli, MemifPingConnectTimeoutZeroMeansNoLimit) {
  const std::string sock = (dir_ / "late.sock").string();
  CliProcess ping({"memif", "ping", "--socket", sock, "--role", "slave", "--connect-timeout", "0", "-c", "1",
                   "--no-arp"});
  std::this_thread::sleep_for(300ms);  // no master yet: the ping must keep waiting
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--duration", "30"});
  const RunResult r = ping.finish(30s);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("1 packets transmitted, 1 received"), std::string::npos) << describe(r);
}

// ---- memif sockets in ls / info / gc -----------------------------------------------------------

/// The "memif" row of `ls --json` output `j` that publishes socket `name`, or nullptr.
const json* memif_row(const json& j, const std::string& name) {
  if (!j.contains("memif")) return nullptr;
  for (const json& row : j.at("memif")) {
    if (row.at("socket").is_string() && row.at("socket").get<std::string>() == name) return &row;
  }
  return nullptr;
}

/// A unique abstract socket name for the test running in `dir`.
std::string abstract_socket_for(const fs::path& dir) { return "@shmlink-cli-" + dir.filename().string(); }

/// `ls --json` of the test directory; the "memif" row of `name` once `pred(row)` holds (10 s).
std::optional<json> wait_memif_row(const std::string& name, const std::function<bool(const json&)>& pred) {
  std::optional<json> found;
  eventually([&] {
    const RunResult r = run_cli({"ls", "--json", "--interval", "0"});
    if (r.code != 0) return false;
    const json j = json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return false;
    const json* row = memif_row(j, name);
    if (row == nullptr || !pred(*row)) return false;
    found = *row;
    return true;
  });
  return found;
}

/// A running responder is listed by `ls` (text and JSON) and shown by `info`, with its peer's
/// traffic counted; once it exits, it is gone from `ls`.
TEST_F(cli, LsAndInfoShowAMemifResponderWhileItRuns) {
  const std::string sock = abstract_socket_for(dir_);
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--duration", "30"});
  // The file appears with its header (role included), then the interface's record: wait for it.
  std::optional<json> row = wait_memif_row(sock, [](const json& r) { return r.at("interfaces").size() == 1; });
  ASSERT_TRUE(row.has_value()) << "no memif row with its interface for " << sock;
  EXPECT_EQ(row->at("kind"), "memif");
  EXPECT_EQ(row->at("role"), "master");
  EXPECT_EQ(row->at("pid"), responder.pid());
  EXPECT_EQ(row->at("alive"), true);
  EXPECT_EQ(row->at("app_name"), "shmlink-responder");
  ASSERT_EQ(row->at("interfaces").size(), 1U) << row->dump();
  const json& ifc = row->at("interfaces")[0];
  EXPECT_EQ(ifc.at("name"), "responder");
  EXPECT_EQ(ifc.at("role"), "master");
  EXPECT_EQ(ifc.at("id"), 0);
  EXPECT_EQ(ifc.at("state"), "listening");

  RunResult r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(has_table_row(r.out, {"SOCKET", "ROLE", "ID", "NAME", "STATE", "PEER", "QUEUES", "RING", "BUFFER",
                                    "TX_PKTS", "RX_PKTS", "BAD", "PID"}))
      << r.out;
  EXPECT_TRUE(has_table_row(r.out, {sock, "master", "0", "responder", "listening", "-", "-", "-", "-", "0", "0", "0",
                                    std::to_string(responder.pid()), "(alive)"}))
      << r.out;
  EXPECT_EQ(r.out.find("no streams or queues"), std::string::npos) << r.out;

  // Traffic: ping's ARP request and three echo requests, each answered.
  r = run_cli({"memif", "ping", "--socket", sock, "-c", "3", "-i", "0.01", "--connect-timeout", "20"});
  ASSERT_EQ(r.code, 0) << describe(r);
  row = wait_memif_row(sock, [](const json& j) {
    const json& i = j.at("interfaces")[0];
    return i.at("rx_packets").get<std::uint64_t>() >= 4 && i.at("state") == "listening";
  });
  ASSERT_TRUE(row.has_value()) << "counters never showed the ping";
  const json& after = row->at("interfaces")[0];
  // Every frame is answered (ARP, echo; ping may repeat its ARP request): tx = rx.
  const std::uint64_t frames = after.at("rx_packets").get<std::uint64_t>();
  EXPECT_EQ(after.at("tx_packets").get<std::uint64_t>(), frames) << after.dump();
  EXPECT_EQ(after.at("connects"), 1);
  EXPECT_EQ(after.at("peer_app"), "shmlink-ping");
  EXPECT_EQ(after.at("peer_name"), "ping");
  EXPECT_NE(after.at("last_disconnect").get<std::string>().find("peer"), std::string::npos) << after.dump();

  // info by the abstract name, text and JSON.
  r = run_cli({"info", sock});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("socket:           " + sock), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("interface:        responder (id 0, master)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("state:            listening"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rx:               " + std::to_string(frames) + " packets"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("last disconnect:  peer"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::to_string(responder.pid()) + " (alive)"), std::string::npos) << r.out;
  r = run_cli({"info", "--memif", sock, "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  EXPECT_EQ(j.at("kind"), "memif");
  ASSERT_EQ(j.at("sockets").size(), 1U) << r.out;
  EXPECT_EQ(j.at("sockets")[0].at("socket"), sock);
  EXPECT_EQ(j.at("sockets")[0].at("interfaces")[0].at("name"), "responder");
  EXPECT_EQ(j.at("sockets")[0].at("interfaces")[0].at("rx_packets").get<std::uint64_t>(), frames);

  ::kill(responder.pid(), SIGTERM);
  const RunResult rr = responder.finish();
  EXPECT_EQ(rr.code, 0) << describe(rr);
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(memif_row(parse_json(r), sock), nullptr) << r.out;
  EXPECT_TRUE(parse_json(r).at("memif").empty()) << r.out;
  r = run_cli({"ls", "--interval", "0"});
  EXPECT_EQ(r.out.find(sock), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no streams or queues in"), std::string::npos) << r.out;
}

/// `info` of a filesystem socket path finds the status files of both ends (master and slave
/// publish the same socket).
TEST_F(cli, InfoOfASocketFileShowsBothEnds) {
  const std::string sock = (dir_ / "r.sock").string();
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--duration", "30"});
  ASSERT_TRUE(wait_memif_row(sock, [](const json&) { return true; }).has_value());
  CliProcess ping({"memif", "ping", "--socket", sock, "-c", "100", "-i", "0.1", "--connect-timeout", "20"});
  // Both ends publish the socket; wait until both say connected.
  RunResult r;
  json j;
  const bool both = eventually([&] {
    ping.drain();
    r = run_cli({"info", sock, "--json"});
    if (r.code != 0) return false;
    j = json::parse(r.out, nullptr, false);
    if (j.is_discarded() || j.at("sockets").size() != 2) return false;
    for (const json& s : j.at("sockets"))
      if (s.at("interfaces").empty() || s.at("interfaces")[0].at("state") != "connected") return false;
    return true;
  });
  ASSERT_TRUE(both) << describe(r);
  ASSERT_EQ(j.at("sockets").size(), 2U) << r.out;
  std::set<std::string> roles;
  for (const json& s : j.at("sockets")) {
    roles.insert(s.at("role").get<std::string>());
    EXPECT_EQ(s.at("interfaces")[0].at("state"), "connected") << s.dump();
  }
  EXPECT_EQ(roles, (std::set<std::string>{"master", "slave"}));
  ::kill(ping.pid(), SIGTERM);
  ping.finish();
  ::kill(responder.pid(), SIGTERM);
  responder.finish();
}

/// An unknown memif socket is "not found" (exit 3) naming it.
TEST_F(cli, InfoOfAnUnknownMemifSocketExitsThreeNamingIt) {
  RunResult r = run_cli({"info", "@shmlink-no-such-socket"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find("@shmlink-no-such-socket"), std::string::npos) << describe(r);
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = run_cli({"info", "--memif", (dir_ / "absent.sock").string(), "--json"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find("absent.sock"), std::string::npos) << describe(r);
}

/// A responder killed with SIGKILL leaves its status file: `ls` shows it dead, `gc --dry-run`
/// lists it and keeps it, `gc` removes it.
TEST_F(cli, ASigkilledResponderShowsDeadAndGcRemovesItsStatusFile) {
  const std::string sock = abstract_socket_for(dir_);
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "slave", "--duration", "30"});
  std::optional<json> row = wait_memif_row(sock, [](const json& r) { return r.at("interfaces").size() == 1; });
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->at("interfaces")[0].at("state"), "connecting") << row->dump();
  const std::string file = row->at("file").get<std::string>();
  const pid_t pid = responder.pid();
  ::kill(pid, SIGKILL);
  (void)responder.finish();
  ASSERT_TRUE(fs::exists(file));

  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json listing = parse_json(r);
  const json* dead = memif_row(listing, sock);
  ASSERT_NE(dead, nullptr) << r.out;
  EXPECT_EQ(dead->at("alive"), false);
  EXPECT_EQ(dead->at("pid"), pid);
  r = run_cli({"ls", "--interval", "0"});
  EXPECT_NE(r.out.find(std::to_string(pid) + " (dead)"), std::string::npos) << r.out;

  r = run_cli({"gc", "--dry-run"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("would remove " + sock), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(file));
  r = run_cli({"gc", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json gc = parse_json(r);
  const json* removed = named(gc.at("removed"), sock);
  ASSERT_NE(removed, nullptr) << r.out;
  EXPECT_EQ(removed->at("kind"), "memif");
  EXPECT_EQ(removed->at("path"), file);
  EXPECT_FALSE(fs::exists(file));
  r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_TRUE(parse_json(r).at("memif").empty()) << r.out;
}

/// gc keeps the status file of a live socket, and removes an old unlocked temporary of an
/// interrupted status-file creation but not a locked one.
TEST_F(cli, GcKeepsLiveMemifStatusFilesAndRemovesOldUnlockedTemporaries) {
  const std::string sock = abstract_socket_for(dir_);
  CliProcess responder({"memif", "responder", "--socket", sock, "--role", "master", "--duration", "30"});
  ASSERT_TRUE(wait_memif_row(sock, [](const json&) { return true; }).has_value());
  const fs::path stale_tmp = dir_ / ".99999-0.memif.shm.AbCdEf";
  const fs::path locked_tmp = dir_ / ".99999-1.memif.shm.GhIjKl";
  std::ofstream(stale_tmp) << "x";
  std::ofstream(locked_tmp) << "x";
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(5);
  fs::last_write_time(stale_tmp, old);
  fs::last_write_time(locked_tmp, old);
  const int lock_fd = ::open(locked_tmp.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(lock_fd, 0);
  ASSERT_EQ(::flock(lock_fd, LOCK_EX | LOCK_NB), 0);

  const RunResult r = run_cli({"gc", "--json"});
  ::close(lock_fd);
  ASSERT_EQ(r.code, 0) << describe(r);
  const json gc = parse_json(r);
  const json* kept = named(gc.at("kept"), sock);
  ASSERT_NE(kept, nullptr) << r.out;
  EXPECT_EQ(kept->at("kind"), "memif");
  EXPECT_NE(kept->at("reason").get<std::string>().find("alive"), std::string::npos) << kept->dump();
  const json* tmp = named(gc.at("removed"), stale_tmp.filename().string());
  ASSERT_NE(tmp, nullptr) << r.out;
  EXPECT_EQ(tmp->at("temporary"), true);
  EXPECT_EQ(tmp->at("kind"), "memif");
  EXPECT_FALSE(fs::exists(stale_tmp));
  EXPECT_TRUE(fs::exists(locked_tmp));
  EXPECT_TRUE(wait_memif_row(sock, [](const json& j) { return j.at("alive") == true; }).has_value());
  ::kill(responder.pid(), SIGTERM);
  responder.finish();
}

/// gc knows the temporaries of every kind the way the library names them (is_temporary_name():
/// ".<final>.XXXXXX" for a final name ending in ".shm"), a region's included, and leaves other
/// programs' dot files in a shared /dev/shm alone, however old: a Chromium temporary has the
/// same six-character tail.
TEST_F(cli, GcRemovesOldTemporariesOfEveryKindAndNoOtherDotFiles) {
  const fs::path region_tmp = dir_ / ".ao.region.shm.Ab3xZ9";
  const fs::path stream_tmp = dir_ / ".cam.im.shm.Qw3rTy";
  const fs::path foreign = dir_ / ".org.chromium.Chromium.Ab3xZ9";
  const fs::path young = dir_ / ".new.queue.shm.Zx9cVb";
  for (const fs::path& p : {region_tmp, stream_tmp, foreign, young}) std::ofstream(p) << "x";
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(5);
  for (const fs::path& p : {region_tmp, stream_tmp, foreign}) fs::last_write_time(p, old);

  const RunResult r = run_cli({"gc", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json gc = parse_json(r);
  const json* region = named(gc.at("removed"), region_tmp.filename().string());
  ASSERT_NE(region, nullptr) << r.out;
  EXPECT_EQ(region->at("temporary"), true);
  EXPECT_EQ(region->at("kind"), "region");
  const json* stream = named(gc.at("removed"), stream_tmp.filename().string());
  ASSERT_NE(stream, nullptr) << r.out;
  EXPECT_EQ(stream->at("kind"), "stream");
  EXPECT_FALSE(fs::exists(region_tmp));
  EXPECT_FALSE(fs::exists(stream_tmp));
  // Not ours: neither removed nor mentioned. Ours but under a minute old: kept.
  EXPECT_TRUE(fs::exists(foreign));
  EXPECT_EQ(named(gc.at("removed"), foreign.filename().string()), nullptr) << r.out;
  EXPECT_EQ(named(gc.at("kept"), foreign.filename().string()), nullptr) << r.out;
  EXPECT_TRUE(fs::exists(young));
}

}  // namespace

// ---- hostile files and names in the stream directory (issue 17) --------------------------

namespace {

/// Runs the CLI with a bound: a run that hangs is killed after `limit` and shows up as exit 137,
/// failing the test instead of the suite.
RunResult run_bounded(const std::vector<std::string>& args, std::chrono::milliseconds limit = 10s) {
  return CliProcess(args).finish(limit);
}

/// Creates a FIFO at `p`, asserting success.
void make_fifo(const fs::path& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0) << p << ": " << std::strerror(errno); }

/// True when `p` names something (lstat: a link or a FIFO counts).
bool present(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

/// Overwrites `bytes.size()` bytes of the file `p` at `offset`.
void patch_file(const fs::path& p, std::size_t offset, const std::string& bytes) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << p;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

/// A FIFO, a socket and a link to a FIFO named like stream, queue and memif status files: ls,
/// info and gc answer at once (before: ls, gc --dry-run and info blocked in open(2) for ever) and
/// report them as what they are; gc leaves them in place.
TEST_F(cli, FifosSocketsAndLinksNamedLikeChannelsNeitherHangNorAreRemoved) {
  shmlink::StreamSpec spec;
  spec.shape = {4};
  const shmlink::Stream good = shmlink::Stream::create("good", spec);  // creator alive: gc keeps it
  make_fifo(dir_ / "fs.im.shm");
  make_fifo(dir_ / "fq.queue.shm");
  make_fifo(dir_ / "99999-0.memif.shm");
  ASSERT_EQ(::symlink((dir_ / "fs.im.shm").c_str(), (dir_ / "link.im.shm").c_str()), 0);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = (dir_ / "sq.queue.shm").string();
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);

  RunResult r = run_bounded({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json doc = parse_json(r);
  const json* fs_row = named(doc.at("streams"), "fs");
  ASSERT_NE(fs_row, nullptr) << r.out;
  EXPECT_EQ(fs_row->at("exit_code"), 5) << fs_row->dump();
  EXPECT_NE(fs_row->at("error").get<std::string>().find("FIFO"), std::string::npos) << fs_row->dump();
  const json* link_row = named(doc.at("streams"), "link");
  ASSERT_NE(link_row, nullptr) << r.out;
  EXPECT_NE(link_row->at("error").get<std::string>().find("symbolic link"), std::string::npos) << link_row->dump();
  ASSERT_NE(named(doc.at("streams"), "good"), nullptr) << r.out;
  EXPECT_TRUE(named(doc.at("streams"), "good")->contains("shape")) << r.out;
  const json* fq_row = named(doc.at("queues"), "fq");
  ASSERT_NE(fq_row, nullptr) << r.out;
  EXPECT_NE(fq_row->at("error").get<std::string>().find("FIFO"), std::string::npos) << fq_row->dump();
  const json* sq_row = named(doc.at("queues"), "sq");
  ASSERT_NE(sq_row, nullptr) << r.out;
  EXPECT_NE(sq_row->at("error").get<std::string>().find("socket"), std::string::npos) << sq_row->dump();
  ASSERT_EQ(doc.at("memif").size(), 1u) << r.out;
  EXPECT_NE(doc.at("memif")[0].at("error").get<std::string>().find("FIFO"), std::string::npos) << r.out;

  r = run_bounded({"ls", "--interval", "0"});
  EXPECT_EQ(r.code, 0) << describe(r);

  r = run_bounded({"info", "fs"});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << describe(r);
  r = run_bounded({"info", "fq"});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << describe(r);
  r = run_bounded({"cat", "link"});
  EXPECT_EQ(r.code, 5) << describe(r);

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"gc", "--dry-run", "--json"}, std::vector<std::string>{"gc", "--json"},
        std::vector<std::string>{"gc", "--streams", "--json"}}) {
    r = run_bounded(args);
    ASSERT_EQ(r.code, 0) << describe(r);
    doc = parse_json(r);
    EXPECT_TRUE(doc.at("removed").empty()) << r.out;
  }
  for (const char* f : {"fs.im.shm", "fq.queue.shm", "99999-0.memif.shm", "link.im.shm", "sq.queue.shm", "good.im.shm"})
    EXPECT_TRUE(present(dir_ / f)) << f;
  ::close(sock);
}

/// A stream truncated in place (DAO-style re-creation: the same inode) while `cat --wait` waits
/// on it: cat ends with a clear error and exit 5, not SIGBUS (135).
TEST_F(cli, CatWaitEndsWithAnErrorWhenTheStreamIsTruncatedInPlace) {
  create({"trunc", "--shape", "64x64", "--dtype", "u16"});
  const fs::path file = stream_file("trunc");
  CliProcess cat({"cat", "trunc", "--wait", "--timeout", "20"});
  // Wait until cat has the file mapped (it then waits for a frame that never comes).
  const std::string maps = "/proc/" + std::to_string(cat.pid()) + "/maps";
  ASSERT_TRUE(eventually([&] { return read_file(maps).find(file.string()) != std::string::npos; }));
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(::truncate(file.c_str(), 0), 0);
  const RunResult r = cat.finish(15s);
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << describe(r);
}

/// The gc race: a process keeps turning a stale stream (creator dead, unused) into a live one
/// with PurgeAndCreate while gc --streams runs again and again. gc may remove a stale file, but
/// never the live file that replaced it between gc's judgement and its removal.
TEST_F(cli, GcNeverRemovesAStreamReCreatedBetweenItsJudgementAndTheRemoval) {
  // 60 gc runs against a creator: a race between processes over renames, which ASan does not
  // watch; gc's code paths run under ASan in the other Gc* tests.
  if (shmlink::test::kBuiltWithAsan) GTEST_SKIP() << "a rename race ASan cannot see; runs in the dev preset";
  int report[2];
  int stop[2];
  ASSERT_EQ(::pipe(report), 0);
  ASSERT_EQ(::pipe2(stop, O_NONBLOCK), 0);
  const std::string path = stream_file("race").string();
  Child creator([&report, &stop, path] {
    ::close(report[0]);
    ::close(stop[1]);
    shmlink::StreamSpec spec;
    spec.shape = {4};
    spec.dtype = shmlink::Dtype::u8;
    int lost = 0;
    char c = 0;
    for (int i = 0; i < 1000 && ::read(stop[0], &c, 1) != 1; ++i) {
      // A stale file: made by a child that exits.
      const pid_t pid = ::fork();
      if (pid == 0) {
        try {
          shmlink::Stream::create(path, spec, shmlink::OpenMode::PurgeAndCreate);
        } catch (...) {
          ::_exit(1);
        }
        ::_exit(0);
      }
      ::waitpid(pid, nullptr, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + i % 4));
      // Re-created by a live process, which keeps it: it must stay.
      shmlink::Stream live = shmlink::Stream::create(path, spec, shmlink::OpenMode::PurgeAndCreate);
      std::this_thread::sleep_for(8ms);
      if (live.replaced()) {
        std::this_thread::sleep_for(5ms);  // gc puts a file it moved by mistake back at once
        if (live.replaced()) ++lost;
      }
    }
    (void)!::write(report[1], &lost, sizeof lost);
  });
  ::close(report[1]);
  ::close(stop[0]);
  for (int i = 0; i < 60; ++i) {
    const RunResult r = run_bounded({"gc", "--streams"});
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  (void)!::write(stop[1], "x", 1);
  ::close(stop[1]);
  int lost = -1;
  ASSERT_EQ(::read(report[0], &lost, sizeof lost), static_cast<ssize_t>(sizeof lost));
  ::close(report[0]);
  EXPECT_EQ(lost, 0) << "gc removed a stream that its live creator had just re-created";
}

/// Streams made by `shmlink create` outlive the command (milk's DM command and configuration
/// streams): plain gc keeps them and says so, --streams removes them, --older-than spares
/// recent ones, and --dry-run lists exactly what each mode removes.
// A reader that died holding a semaphore slot leaves its pid in semReadPID: certain garbage,
// freed by plain gc (a dry run counts it), while a live reader's slot and the stream stay.
TEST_F(cli, GcFreesTheSemaphoreSlotsOfDeadReadersAndKeepsLiveOnes) {
  create({"wfs", "--shape", "8x8"});
  const std::string path = stream_file("wfs").string();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      shmlink::Stream s = shmlink::Stream::open(path);
      ::_exit(s.claim_semaphore(3) == 3 ? 0 : 1);
    } catch (...) {
      ::_exit(2);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  shmlink::Stream live = shmlink::Stream::open(path);
  ASSERT_EQ(live.claim_semaphore(5), 5);
  ASSERT_EQ(live.info().sem_read_pids.at(3), child);

  RunResult r = run_cli({"gc", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json doc = parse_json(r);
  const json* kept = named(doc.at("kept"), "wfs");
  ASSERT_NE(kept, nullptr) << r.out;
  EXPECT_EQ(kept->at("semaphore_slots_freed"), 1) << kept->dump();
  EXPECT_EQ(live.info().sem_read_pids.at(3), child);  // a dry run changes nothing

  r = run_cli({"gc"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("freed 1 semaphore slot(s) of dead readers in wfs"), std::string::npos) << r.out;
  const auto pids = live.info().sem_read_pids;
  EXPECT_EQ(pids.at(3), -1);
  EXPECT_EQ(pids.at(5), ::getpid());  // the live reader keeps its slot
  EXPECT_TRUE(fs::exists(stream_file("wfs")));
}

TEST_F(cli, GcKeepsStreamsMadeByCreateUnlessAskedWithStreams) {
  create({"dmcmd", "--shape", "64x64"});
  create_queue_from_dead_creator("q");
  // Partial-write companions (u64, 516 x depth): certain garbage once their stream is gone.
  create({"orphan_pkt", "--shape", "516x2", "--dtype", "u64"});
  create({"dmcmd_pkt", "--shape", "516x2", "--dtype", "u64"});
  RunResult r = run_cli({"gc"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(stream_file("dmcmd")));
  EXPECT_TRUE(fs::exists(queue_file(dir_, "q")));
  EXPECT_NE(r.out.find("--streams"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("removed orphan_pkt: partial-write companion"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(stream_file("orphan_pkt")));
  EXPECT_TRUE(fs::exists(stream_file("dmcmd_pkt")));  // its stream is there

  r = run_cli({"gc", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json doc = parse_json(r);
  EXPECT_TRUE(doc.at("removed").empty()) << r.out;
  const json* kept = named(doc.at("kept"), "dmcmd");
  ASSERT_NE(kept, nullptr) << r.out;
  EXPECT_EQ(kept->at("stale"), true) << kept->dump();

  r = run_cli({"gc", "--streams", "--older-than", "2h", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(parse_json(r).at("removed").empty()) << r.out;
  r = run_cli({"gc", "--streams", "--older-than", "2h"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(stream_file("dmcmd")));

  r = run_cli({"gc", "--streams", "--older-than", "0s", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(names_in(parse_json(r).at("removed")), (std::set<std::string>{"dmcmd", "dmcmd_pkt", "q"})) << r.out;
  EXPECT_TRUE(fs::exists(stream_file("dmcmd")));
  r = run_cli({"gc", "--streams", "--older-than", "0s"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("removed dmcmd"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(stream_file("dmcmd")));
  EXPECT_FALSE(fs::exists(queue_file(dir_, "q")));

  EXPECT_EQ(run_cli({"gc", "--older-than", "1h"}).code, 2);  // needs --streams
  EXPECT_EQ(run_cli({"gc", "--streams", "--older-than", "soon"}).code, 2);
}

/// gc --json after removing a stream whose file name holds byte 0xff, next to a file whose version
/// holds 0xff: valid JSON (the bytes become U+FFFD), exit 0 (before: exit 1 and nothing printed,
/// after the file was already removed). ls --json and info --json likewise.
TEST_F(cli, JsonOutputSurvivesNamesAndFieldsThatAreNotUtf8) {
  const std::string bad = "bad\xff";
  create_from_dead_creator(bad);
  create({"badver", "--shape", "4"});
  patch_file(stream_file("badver"), 0, "\xff");  // version "\xff.00"
  create({"stored", "--shape", "4"});
  patch_file(stream_file("stored"), 32, "s\xfe");  // the stored name

  RunResult r = run_cli({"gc", "--json"});  // keeps them all; "badver"'s reason quotes its version
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(named(parse_json(r).at("kept"), "badver"), nullptr) << r.out;
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(named(parse_json(r).at("streams"), "bad\xef\xbf\xbd"), nullptr) << r.out;
  r = run_cli({"info", "stored", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).value("name_differs", false), true) << r.out;
  r = run_cli({"gc", "--streams", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json doc = parse_json(r);
  EXPECT_NE(named(doc.at("removed"), "bad\xef\xbf\xbd"), nullptr) << r.out;
  EXPECT_NE(named(doc.at("kept"), "badver"), nullptr) << r.out;
  EXPECT_FALSE(fs::exists(stream_file(bad)));
  EXPECT_TRUE(fs::exists(stream_file("badver")));
}

/// Names that would drive the terminal (clear the screen, set its title) or forge rows: ls and
/// info print them escaped, show the file's own name and flag a stored name that differs.
TEST_F(cli, LsAndInfoPrintHostileNamesEscaped) {
  create({"clear", "--shape", "4"});
  create({"title", "--shape", "4"});
  create({"rows", "--shape", "4"});
  fs::rename(stream_file("clear"), dir_ / "x\x1b[2J.im.shm");
  patch_file(stream_file("title"), 32, std::string("t\x1b]0;x\a", 8));  // stored name, NUL-terminated
  fs::rename(stream_file("rows"), dir_ / "r\nfake  4  float32.im.shm");

  RunResult r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\a'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x\\e[2J"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("r\\nfake"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("title (stores 't\\e]0;x\\x07')"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\\\\e"), std::string::npos) << r.out;  // messages are not escaped twice
  // The stream table is header + 3 rows (VILLAS regions of other programs, machine-wide in
  // /dev/shm, may follow after a blank line).
  const std::size_t table_end = r.out.find("\n\n");
  const std::string streams = table_end == std::string::npos ? r.out : r.out.substr(0, table_end + 1);
  EXPECT_EQ(std::count(streams.begin(), streams.end(), '\n'), 4) << r.out;

  r = run_cli({"info", "title"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stored name:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("t\\e]0;x\\x07"), std::string::npos) << r.out;

  r = run_cli({"gc", "--streams"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
}

/// One name rule for streams and queues at the command line: ".", "..", control characters, a
/// NUL-free but over-long name, another kind's file name are usage errors (exit 2), shown escaped.
TEST_F(cli, ChannelNamesFollowOneRule) {
  for (const std::string& name : {std::string("."), std::string(".."), std::string("a\nb"), std::string("a\x1b[2Jb"),
                                  std::string(80, 'n')}) {
    RunResult r = run_cli({"create", name, "--shape", "4"});
    EXPECT_EQ(r.code, 2) << describe(r);
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << describe(r);
    r = run_cli({"info", "--queue", name});
    EXPECT_EQ(r.code, 2) << describe(r);
  }
  const RunResult r = run_cli({"create", "a\x1b[2Jb", "--shape", "4"});
  EXPECT_NE(r.err.find("a\\e[2Jb"), std::string::npos) << describe(r);
  EXPECT_EQ(run_cli({"info", "--queue", (dir_ / (std::string(190, 'p') + ".im.shm")).string()}).code, 2);
  EXPECT_TRUE(fs::is_empty(dir_));
}

/// `create --permissions` takes read and write bits only: set-user-ID, set-group-ID, sticky and
/// execute bits are refused (exit 2, no file); 0666 is fine.
TEST_F(cli, CreateRefusesSetuidSetgidStickyAndExecuteBits) {
  for (const char* mode : {"7777", "4600", "2660", "1666", "0700", "0755"}) {
    const RunResult r = run_cli({"create", "m", "--shape", "4", "--permissions", mode});
    EXPECT_EQ(r.code, 2) << mode << ": " << describe(r);
    EXPECT_FALSE(fs::exists(stream_file("m"))) << mode;
  }
  const RunResult r = run_cli({"create", "m", "--shape", "4", "--permissions", "7777"});
  EXPECT_NE(r.err.find("set-user-ID"), std::string::npos) << describe(r);
  create({"m", "--shape", "4", "--permissions", "0666"});
  struct stat st {};
  ASSERT_EQ(::stat(stream_file("m").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
}

// Issue 18 item 3: `create --semaphores` takes what ImageStreamIO and milk's tools accept, 0 and
// 129 included (before: 1..128, exit 2), and such streams are valid for info and gc (a 129-slot
// stream was "not a valid stream" to gc), whose reclaim reaches slot 128.
TEST_F(cli, CreateTakesZeroAnd129SemaphoresAndGcReclaimsTheLastSlot) {
  create({"none", "--shape", "4", "--semaphores", "0"});
  RunResult r = run_cli({"info", "none", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("semaphores"), 0);
  EXPECT_TRUE(parse_json(r).at("semaphore_slots").empty());

  create({"many", "--shape", "8x8", "--semaphores", "129"});
  r = run_cli({"info", "many", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("semaphores"), 129);
  EXPECT_EQ(parse_json(r).at("semaphore_slots").size(), 129u);
  const std::string path = stream_file("many").string();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      shmlink::Stream s = shmlink::Stream::open(path);
      ::_exit(s.claim_semaphore(128) == 128 ? 0 : 1);
    } catch (...) {
      ::_exit(2);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  r = run_cli({"gc"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("freed 1 semaphore slot(s) of dead readers in many"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("not a valid stream"), std::string::npos) << r.err;
  EXPECT_EQ(shmlink::Stream::open(path).info().sem_read_pids.at(128), -1);
  EXPECT_TRUE(fs::exists(stream_file("none")));
  EXPECT_TRUE(fs::exists(stream_file("many")));
}

// Issue 18 item 2: a milk stream whose imagetype is CIRCULAR_BUFFER without the temporal bit is
// a rolling buffer for `info` (depth and frame shape) and `cat` (the newest slice, cnt1), as
// ImageStreamIO reads it. Before: depth 1 and the whole cube.
TEST_F(cli, InfoAndCatTreatAnIsioCircularBufferWithoutTheTemporalBitAsRolling) {
  shmlink::test::IsioSpec spec;
  spec.naxis = 3;
  spec.size[0] = 3;
  spec.size[1] = 2;
  spec.size[2] = 4;
  spec.imagetype = shmlink::kImagetypeCircularBuffer;
  shmlink::test::IsioFile file(stream_file("cb").string(), spec);
  for (std::uint32_t k = 1; k <= 6; ++k) {
    std::vector<std::uint32_t> frame(6, k);
    file.write_frame(std::as_bytes(std::span(frame)));
  }
  RunResult r = run_cli({"info", "cb", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("depth"), 4);
  EXPECT_EQ(j.at("frame_shape"), json::array({3, 2}));
  EXPECT_EQ(j.at("frame_bytes"), 24);
  EXPECT_EQ(j.at("cnt1"), 2);
  r = run_cli({"cat", "cb", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json c = parse_json(r);
  EXPECT_EQ(c.at("cnt0"), 6) << c.dump();
  // Slices hold frames 4, 5, 6, 3: the whole cube has min 3; the newest frame is all 6.
  EXPECT_EQ(c.at("stats").at("min"), 6) << c.dump();
  EXPECT_EQ(c.at("stats").at("max"), 6) << c.dump();
}

// ---- VILLASnode shmem regions ------------------------------------------------------------

/// Handshake flags between the test and the VILLAS sides it forks (in MAP_SHARED memory).
struct VillasFlags {
  std::atomic<int> ready{0};  ///< sides that opened and wrote their samples
  std::atomic<int> stop{0};   ///< set by the test: close and exit
};

/// A shm name unique to this test process: "/shmlink-cli-villas-<pid>-<tag>".
std::string villas_name(const std::string& tag) {
  return "/shmlink-cli-villas-" + std::to_string(::getpid()) + "-" + tag;
}

/// Removes the region of `name` and its rendezvous semaphore from /dev/shm, if there.
void remove_villas_objects(const std::string& name) {
  std::error_code ec;
  fs::remove("/dev/shm" + name, ec);
  fs::remove("/dev/shm/sem." + name.substr(1), ec);
}

/// Runs `done` when it goes out of scope (also when an assertion returns early): stops the
/// test's VILLAS sides and removes what they left in /dev/shm.
class AtExit {
 public:
  explicit AtExit(std::function<void()> done) : done_(std::move(done)) {}
  AtExit(const AtExit&) = delete;
  AtExit& operator=(const AtExit&) = delete;
  ~AtExit() { done_(); }

 private:
  std::function<void()> done_;
};

/// Forks one side of a VILLAS pair: an Interface with protocol villas writing to `out` and
/// reading `in` (mode by `wait`: polling gives a polling region, else pthread), which writes
/// `samples` samples, reads none, counts itself ready and keeps both regions mapped until
/// `flags->stop` (at most 60 s), then closes. Returns its pid.
pid_t fork_villas_side(VillasFlags* flags, const std::string& out, const std::string& in, shmlink::WaitMode wait,
                       std::uint32_t queuelen, int samples) {
  return shmlink::test::spawn([=] {
    shmlink::InterfaceSpec spec;
    spec.protocol = shmlink::InterfaceProtocol::villas;
    spec.out = out;
    spec.in = in;
    spec.capacity = queuelen;
    spec.wait = wait;
    spec.attach_timeout = 30s;
    spec.stop_timeout = 50ms;  // nobody takes the queued samples: close() need not wait for that
    shmlink::Interface iface(spec);
    iface.export_signal(0, "x", shmlink::SignalType::f64);
    iface.export_signal(1, "y", shmlink::SignalType::f64);
    iface.open();
    for (int k = 0; k < samples; ++k) {
      const shmlink::SignalValue values[2] = {shmlink::SignalValue::of(1.0 * k), shmlink::SignalValue::of(2.0)};
      if (!iface.write(std::span<const shmlink::SignalValue>(values), 5s).ok()) return 3;
    }
    flags->ready.fetch_add(1);
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (flags->stop.load() == 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
    iface.close();
    return 0;
  });
}

/// The row of `ls --json`'s "villas" array named `name`, or null.
json villas_row(const json& ls, const std::string& name) {
  for (const json& row : ls.value("villas", json::array())) {
    if (row.value("name", "") == name) return row;
  }
  return nullptr;
}

/// True when `pids` (a JSON array) holds `pid`.
bool holds(const json& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), json(static_cast<int>(pid))) != pids.end();
}

TEST_F(cli, LsAndInfoShowLiveVillasRegionsWithoutChangingAByte) {
  const std::string a = villas_name("a");
  const std::string b = villas_name("b");
  shmlink::test::Shared<VillasFlags> flags;
  // Side A: pthread region of 16 samples, 3 queued; side B: polling region of 8, 5 queued.
  const pid_t pa = fork_villas_side(&*flags, a, b, shmlink::WaitMode::hybrid, 16, 3);
  const pid_t pb = fork_villas_side(&*flags, b, a, shmlink::WaitMode::polling, 8, 5);
  const AtExit finish([&] {
    flags->stop.store(1);
    EXPECT_EQ(shmlink::test::reap(pa, 30), 0);
    EXPECT_EQ(shmlink::test::reap(pb, 30), 0);
    remove_villas_objects(a);
    remove_villas_objects(b);
    remove_villas_objects(villas_name("forged"));
  });
  ASSERT_TRUE(shmlink::test::wait_until([&] { return flags->ready.load() == 2; }, 30))
      << "the VILLAS sides did not open";
  const std::string bytes_a = read_file("/dev/shm" + a);
  const std::string bytes_b = read_file("/dev/shm" + b);
  ASSERT_FALSE(bytes_a.empty());

  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_EQ(r.code, 0) << describe(r);
  const json ls = parse_json(r);
  const json ra = villas_row(ls, a);
  const json rb = villas_row(ls, b);
  ASSERT_TRUE(ra.is_object()) << r.out;
  ASSERT_TRUE(rb.is_object()) << r.out;
  EXPECT_EQ(ra.value("kind", ""), "villas");
  EXPECT_EQ(ra.value("path", ""), "/dev/shm" + a);
  EXPECT_EQ(ra.value("region_mode", ""), "pthread");
  EXPECT_EQ(ra.value("queued", -1), 3);
  EXPECT_EQ(ra.value("queue_cells", -1), 16);
  EXPECT_EQ(ra.value("pool_blocks", -1), 16);
  EXPECT_EQ(ra.value("free_blocks", -1), 13);
  EXPECT_FALSE(ra.value("stopped", true));
  EXPECT_EQ(rb.value("region_mode", ""), "polling");
  EXPECT_EQ(rb.value("queued", -1), 5);
  EXPECT_EQ(rb.value("queue_cells", -1), 8);
  for (const json& row : {ra, rb}) {
    // Both sides map both regions (each writes its own and reads the other's).
    EXPECT_TRUE(holds(row.at("holder_pids"), pa)) << row.dump();
    EXPECT_TRUE(holds(row.at("holder_pids"), pb)) << row.dump();
    EXPECT_FALSE(row.value("stale", true)) << row.dump();
    EXPECT_FALSE(row.value("semaphore", true)) << row.dump();  // removed once both were connected
  }

  r = run_cli({"ls", "--interval", "0"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("VILLAS"), std::string::npos) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  bool seen = false;
  while (std::getline(lines, line)) {
    if (line.rfind(a + " ", 0) != 0) continue;
    seen = true;
    EXPECT_NE(line.find("pthread"), std::string::npos) << line;
    EXPECT_NE(line.find("3/16"), std::string::npos) << line;
    EXPECT_NE(line.find(std::to_string(pa)), std::string::npos) << line;
  }
  EXPECT_TRUE(seen) << r.out;

  // info: by VILLASnode's name, without its '/', and by path; text and JSON.
  for (const std::string& name : {a, a.substr(1), "/dev/shm" + a}) {
    SCOPED_TRACE(name);
    r = run_cli({"info", name, "--json"});
    ASSERT_EQ(r.code, 0) << describe(r);
    const json j = parse_json(r);
    EXPECT_EQ(j.value("schema_version", 0), 1);
    EXPECT_EQ(j.value("kind", ""), "villas");
    EXPECT_EQ(j.value("path", ""), "/dev/shm" + a);
    EXPECT_EQ(j.value("region_mode", ""), "pthread");
    EXPECT_EQ(j.value("queued", -1), 3);
    EXPECT_EQ(j.value("queue_cells", -1), 16);
    EXPECT_EQ(j.value("file_bytes", std::uint64_t{0}), bytes_a.size());
    EXPECT_GT(j.value("sample_capacity", 0), 0);
    EXPECT_TRUE(holds(j.at("holder_pids"), pa)) << j.dump();
    EXPECT_TRUE(holds(j.at("holder_pids"), pb)) << j.dump();
    EXPECT_FALSE(j.value("stale", true));
  }
  // A stream of the region's bare name wins that name; stderr points to --villas.
  create({a.substr(1), "--shape", "4"});
  r = run_cli({"info", a.substr(1), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).value("kind", ""), "stream");
  EXPECT_NE(r.err.find("--villas"), std::string::npos) << r.err;
  r = run_cli({"info", "--villas", a.substr(1), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).value("kind", ""), "villas");

  r = run_cli({"info", b});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("polling"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5 (samples its reader has not taken yet)"), std::string::npos) << r.out;
  r = run_cli({"info", "--villas", b.substr(1), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).value("queued", -1), 5);

  // A copy whose data-queue mask (ShmemShared at 80, its CQueue at +8, buffer_mask at +72) is
  // not a power of two minus one: info refuses it, ls does not list it.
  const std::string forged = villas_name("forged");
  {
    std::string copy = bytes_a;
    copy[160] = 5;
    std::ofstream("/dev/shm" + forged, std::ios::binary) << copy;
  }
  r = run_cli({"info", forged});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find("/dev/shm" + forged), std::string::npos) << r.err;
  r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_EQ(r.code, 0) << describe(r);
  // ls lists a file only when its header passes every check: the forged one is not a region.
  EXPECT_TRUE(villas_row(parse_json(r), forged).is_null()) << r.out;
  remove_villas_objects(forged);

  // Read-only: not a byte of either region changed.
  EXPECT_TRUE(read_file("/dev/shm" + a) == bytes_a);
  EXPECT_TRUE(read_file("/dev/shm" + b) == bytes_b);
}

TEST_F(cli, LsShowsKilledVillasSidesAsStaleAndTheirLeftoverSemaphore) {
  const std::string c = villas_name("c");
  const std::string d = villas_name("d");
  shmlink::test::Shared<VillasFlags> flags;
  const AtExit cleanup([&] {
    remove_villas_objects(c);
    remove_villas_objects(d);
  });
  // C waits for a peer that never comes: its region is there, the rendezvous is pending.
  const pid_t pc = fork_villas_side(&*flags, c, d, shmlink::WaitMode::hybrid, 4, 0);
  const bool created = shmlink::test::wait_until(
      [&] {
        return fs::exists("/dev/shm" + c) && fs::exists("/dev/shm/sem." + c.substr(1)) &&
               villas_row(parse_json(run_cli({"ls", "--json", "--interval", "0"})), c).is_object();
      },
      30);
  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  const json waiting = villas_row(parse_json(r), c);
  ::kill(pc, SIGKILL);
  (void)shmlink::test::reap(pc, 30);
  ASSERT_TRUE(created) << "no region " << c;
  EXPECT_TRUE(holds(waiting.at("holder_pids"), pc)) << waiting.dump();
  EXPECT_FALSE(waiting.value("stale", true)) << waiting.dump();
  EXPECT_TRUE(waiting.value("semaphore", false)) << waiting.dump();

  r = run_cli({"ls", "--json", "--interval", "0"});
  const json dead = villas_row(parse_json(r), c);
  ASSERT_TRUE(dead.is_object()) << r.out;
  EXPECT_EQ(dead.at("holder_pids"), json::array()) << dead.dump();
  EXPECT_TRUE(dead.value("stale", false)) << dead.dump();
  EXPECT_TRUE(dead.value("semaphore", false)) << dead.dump();
  r = run_cli({"ls", "--interval", "0"});
  EXPECT_NE(r.out.find("none (stale)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("left behind"), std::string::npos) << r.out;
  r = run_cli({"info", c});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("none (stale"), std::string::npos) << r.out;
}

TEST_F(cli, InfoOnAFileThatIsNoVillasRegionExitsFiveWithTheLayoutError) {
  const std::string junk = villas_name("junk");
  const AtExit cleanup([&] { remove_villas_objects(junk); });
  {
    std::ofstream f("/dev/shm" + junk, std::ios::binary);
    const std::string bytes(12176, '\x5a');  // the size of a queuelen 64, samplelen 4 region
    f << bytes;
  }
  const std::string before = read_file("/dev/shm" + junk);
  RunResult r = run_cli({"info", junk});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("/dev/shm" + junk), std::string::npos) << r.err;   // names the file
  EXPECT_NE(r.err.find("v1.0 to v1.2"), std::string::npos) << r.err;      // and what is supported
  r = run_cli({"info", "--villas", junk.substr(1), "--json"});
  EXPECT_EQ(r.code, 5) << describe(r);
  // Not a region by its fingerprint: ls does not list it.
  r = run_cli({"ls", "--json", "--interval", "0"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(villas_row(parse_json(r), junk).is_null()) << r.out;
  EXPECT_TRUE(read_file("/dev/shm" + junk) == before);
  r = run_cli({"info", villas_name("absent")});
  EXPECT_EQ(r.code, 3) << describe(r);
  // The bare name (no stream or queue of that name) is not taken for a region either.
  r = run_cli({"info", junk.substr(1)});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find("no stream or queue named"), std::string::npos) << r.err;
}

TEST_F(cli, LsListsNoVillasRegionsWhenDevShmCannotBeListed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: a private /dev/shm that nobody may not list";
  constexpr uid_t kNobody = 65534;
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  // The CLI runs in its own mount namespace over a /dev/shm of mode 0700 (root's), as nobody.
  const RunResult r = CliProcess({"ls", "--json", "--interval", "0"}, [] {
                        if (::unshare(CLONE_NEWNS) != 0) ::_exit(126);
                        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(126);
                        if (::mount("none", "/dev/shm", "tmpfs", 0, "mode=0700") != 0) ::_exit(126);
                        if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
                          ::_exit(126);
                      }).finish();
  if (r.code == 126) GTEST_SKIP() << "no private mount namespace here";
  if (r.code == 127) GTEST_SKIP() << "the shmlink binary cannot be executed by nobody: " << describe(r);
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).value("villas", json::array()), json::array()) << r.out;
}

TEST_F(cli, VillasRegionWhoseHoldersCannotBeSeenIsUnknownNotStale) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: a region held by root's process, listed by nobody";
  constexpr uid_t kNobody = 65534;
  const std::string e = villas_name("e");
  const std::string f = villas_name("f");
  shmlink::test::Shared<VillasFlags> flags;
  const pid_t pe = fork_villas_side(&*flags, e, f, shmlink::WaitMode::hybrid, 4, 0);
  const AtExit cleanup([&] {
    ::kill(pe, SIGKILL);
    (void)shmlink::test::reap(pe, 30);
    remove_villas_objects(e);
    remove_villas_objects(f);
  });
  // E (root's) waits in its rendezvous: its region is held, by a process nobody cannot inspect.
  ASSERT_TRUE(shmlink::test::wait_until(
      [&] {
        const json row = villas_row(parse_json(run_cli({"ls", "--json", "--interval", "0"})), e);
        return row.is_object() && holds(row.at("holder_pids"), pe);
      },
      30));
  ASSERT_EQ(::chmod(("/dev/shm" + e).c_str(), 0644), 0);  // nobody may read its header
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  const auto as_nobody = [] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
      throw std::runtime_error("dropping privileges");
  };
  RunResult r = CliProcess({"ls", "--json", "--interval", "0"}, as_nobody).finish();
  if (r.code == 127) GTEST_SKIP() << "the shmlink binary cannot be executed by nobody: " << describe(r);
  ASSERT_EQ(r.code, 0) << describe(r);
  const json row = villas_row(parse_json(r), e);
  ASSERT_TRUE(row.is_object()) << r.out;
  EXPECT_EQ(row.at("holder_pids"), json::array()) << row.dump();
  EXPECT_GT(row.value("holders_uninspectable", 0), 0) << row.dump();
  EXPECT_TRUE(row.at("stale").is_null()) << row.dump();
  r = CliProcess({"ls", "--interval", "0"}, as_nobody).finish();
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::size_t at = r.out.find(e);
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  EXPECT_NE(line.find("unknown ("), std::string::npos) << line;
  EXPECT_EQ(line.find("stale"), std::string::npos) << line;
  EXPECT_EQ(line.find("left behind"), std::string::npos) << line;
  r = CliProcess({"info", e}, as_nobody).finish();
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("unknown ("), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("stale"), std::string::npos) << r.out;
  r = CliProcess({"info", e, "--json"}, as_nobody).finish();
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(parse_json(r).at("stale").is_null()) << r.out;
}

}  // namespace

// ---- regions (issue 20): region create|ls|rm, PATH:NAME in ls and info ----------------------

namespace {

/// region create / ls / rm round trip: a region made by the CLI takes a queue created by the
/// library; `region ls` shows its entry (name, kind, state, offset, size, generation), `region rm`
/// removes it, a second rm is "not found" naming PATH:NAME.
TEST_F(cli, RegionCreateLsRmRoundTrip) {
  RunResult r = run_cli({"region", "create", "ao", "--size", "64K", "--mode", "0640", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const fs::path path = dir_ / "ao.region.shm";
  json j = parse_json(r);
  EXPECT_EQ(j.at("schema_version"), 1);
  EXPECT_EQ(j.at("path"), path.string());
  EXPECT_EQ(j.at("size"), 65536);
  EXPECT_EQ(j.at("permissions"), "0640");
  EXPECT_EQ(fs::file_size(path), 65536u);
  EXPECT_EQ(static_cast<unsigned>(fs::status(path).permissions()), 0640u);
  {
    shmlink::QueueSpec spec;
    spec.capacity = 8;
    spec.max_values = 4;
    shmlink::Region region = shmlink::Region::open(path.string());
    (void)region.create_queue("ctl", spec);
  }

  r = run_cli({"region", "ls", path.string(), "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  j = parse_json(r);
  EXPECT_EQ(j.at("path"), path.string());
  ASSERT_EQ(j.at("entries").size(), 1u) << r.out;
  const json& e = j.at("entries").at(0);
  EXPECT_EQ(e.at("name"), "ctl");
  EXPECT_EQ(e.at("kind"), "queue");
  EXPECT_EQ(e.at("state"), "ready");
  EXPECT_GT(e.at("offset").get<std::uint64_t>(), 0u);
  EXPECT_GT(e.at("size").get<std::uint64_t>(), 0u);
  EXPECT_GE(e.at("generation").get<std::uint64_t>(), 1u);
  EXPECT_EQ(e.at("locator"), path.string() + ":ctl");
  r = run_cli({"region", "ls", "ao"});  // a name means <dir>/NAME.region.shm
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ctl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ready"), std::string::npos) << r.out;

  r = run_cli({"region", "rm", path.string(), "ctl"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find(path.string() + ":ctl"), std::string::npos) << r.out;
  r = run_cli({"region", "ls", path.string(), "--json"});
  EXPECT_TRUE(parse_json(r).at("entries").empty()) << r.out;
  r = run_cli({"region", "rm", path.string(), "ctl"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find(path.string() + ":ctl"), std::string::npos) << describe(r);
}

/// region create refuses what a region cannot be, with the CLI's exit codes and the path named:
/// a size that is not a power of two or is below 64 KiB (usage), an existing region (failure,
/// with the --force hint; --force replaces it), a malformed size (usage); region ls of a missing
/// region is "not found", of a file that is no region a layout mismatch.
TEST_F(cli, RegionCreateAndLsErrorsNameThePath) {
  RunResult r = run_cli({"region", "create", "odd", "--size", "96K"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_NE(r.err.find("odd.region.shm"), std::string::npos) << describe(r);
  r = run_cli({"region", "create", "tiny", "--size", "4K"});
  EXPECT_EQ(r.code, 2) << describe(r);
  r = run_cli({"region", "create", "bad", "--size", "lots"});
  EXPECT_EQ(r.code, 2) << describe(r);
  ASSERT_EQ(run_cli({"region", "create", "twice", "--size", "64K"}).code, 0);
  r = run_cli({"region", "create", "twice", "--size", "64K"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << describe(r);
  r = run_cli({"region", "create", "twice", "--size", "128K", "--force", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("size"), 131072);
  r = run_cli({"region", "ls", "absent"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find("absent.region.shm"), std::string::npos) << describe(r);
  std::ofstream(dir_ / "junk.region.shm") << std::string(70000, 'x');
  r = run_cli({"region", "ls", "junk"});
  EXPECT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find("junk.region.shm"), std::string::npos) << describe(r);
}

/// A queue inside a region of the stream directory is listed by `ls` as PATH:NAME and shown by
/// `info PATH:NAME`; an absent entry is "not found" naming PATH:NAME; gc leaves the region alone.
TEST_F(cli, LsAndInfoShowQueuesInsideRegionsAsPathColonName) {
  ASSERT_EQ(run_cli({"region", "create", "ao", "--size", "64K"}).code, 0);
  const std::string path = (dir_ / "ao.region.shm").string();
  shmlink::Region region = shmlink::Region::open(path);
  shmlink::QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 4;
  (void)region.create_queue("ctl", spec);

  RunResult r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json listing = parse_json(r);
  const json* q = named(listing.at("queues"), path + ":ctl");
  ASSERT_NE(q, nullptr) << r.out;
  EXPECT_EQ(q->at("path"), path + ":ctl");
  EXPECT_EQ(q->at("capacity"), 8);
  EXPECT_EQ(q->at("max_values"), 4);

  r = run_cli({"info", path + ":ctl", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("kind"), "queue");
  EXPECT_EQ(j.at("capacity"), 8);
  r = run_cli({"info", path + ":nothing"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find(path + ":nothing"), std::string::npos) << describe(r);

  r = run_cli({"gc", "--streams", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(region.entries().size(), 1u);
}


/// A stream inside a region, end to end: `create PATH:NAME` lays it out in a region made by
/// `region create`, the C++ API writes a frame through Region::open_stream, `cat PATH:NAME`
/// reads it back, `ls` (text and --json), `monitor [NAME] --once` and `info` show it as PATH:NAME,
/// `rm PATH:NAME` removes the entry (the region stays) and `region rm` removes a re-created one.
TEST_F(cli, StreamsInsideRegionsWorkInCreateCatLsInfoMonitorAndRm) {
  ASSERT_EQ(run_cli({"region", "create", "ao", "--size", "64K"}).code, 0);
  const std::string path = (dir_ / "ao.region.shm").string();
  const std::string cam = path + ":cam";
  RunResult r = run_cli({"create", cam, "--shape", "4x2", "--dtype", "u16", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(parse_json(r).at("path"), cam);
  const std::vector<std::uint16_t> frame{1, 2, 3, 4, 500, 600, 700, 800};
  {
    shmlink::Region region = shmlink::Region::open(path);
    shmlink::Stream s = region.open_stream("cam");
    ASSERT_TRUE(s.write(std::span<const std::uint16_t>(frame)).ok());
  }

  const fs::path npy = dir_ / "frame.npy";
  r = run_cli({"cat", cam, "--npy", npy.string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string bytes = read_file(npy);
  ASSERT_GE(bytes.size(), 16u);
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - 16, frame.data(), 16), 0);

  r = run_cli({"ls", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find(cam), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("stores"), std::string::npos) << "the entry's name is the stored one: " << r.out;
  r = run_cli({"ls", "--json", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json listing = parse_json(r);
  const json* row = named(listing.at("streams"), cam);
  ASSERT_NE(row, nullptr) << r.out;
  EXPECT_EQ(row->at("shape"), json::array({4, 2}));
  EXPECT_EQ(row->at("dtype"), "uint16");
  EXPECT_EQ(row->at("cnt0"), 1);

  r = run_cli({"info", cam, "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json info = parse_json(r);
  EXPECT_EQ(info.at("shape"), json::array({4, 2}));
  EXPECT_EQ(info.at("cnt0"), 1);

  r = run_cli({"monitor", cam, "--once", "--json", "--interval", "0.05"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json mon = parse_json(r);
  ASSERT_EQ(mon.at("streams").size(), 1u) << r.out;
  EXPECT_EQ(mon.at("streams").at(0).at("name"), cam);
  EXPECT_EQ(mon.at("streams").at(0).at("cnt0"), 1);
  r = run_cli({"monitor", "--once", "--json", "--interval", "0.05"});  // no names: the regions' streams too
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(named(parse_json(r).at("streams"), cam), nullptr) << r.out;

  r = run_cli({"rm", cam});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(shmlink::Region::open(path).entries().empty());
  EXPECT_TRUE(fs::exists(path));
  r = run_cli({"cat", cam, "--npy", npy.string()});
  EXPECT_EQ(r.code, 3) << describe(r);

  ASSERT_EQ(run_cli({"create", cam, "--shape", "4", "--dtype", "u8"}).code, 0);
  r = run_cli({"region", "rm", path, "cam"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(shmlink::Region::open(path).entries().empty());
}


/// A queue small enough for a 64 KiB region: 8 cells of 4 values.
shmlink::QueueSpec small_queue() {
  shmlink::QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 4;
  return spec;
}

/// Stores the 64-bit `value` at byte `offset` of the file `path` (a peer writing the region).
void poke_u64(const std::string& path, std::size_t offset, std::uint64_t value) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof value));
  ::close(fd);
}

/// Byte offsets in a region file (docs/design/region.md): entry i starts at 256 + 128 i; its
/// name at 0, kind | state << 32 at 80, owner at 112, owner_start at 120.
constexpr std::size_t region_entry(std::size_t i) { return 256 + 128 * i; }

/// `region rm PATH --index N` frees a table entry whatever it holds: a corrupt entry (a name
/// with '/') makes `region ls` fail naming "entry 0"; --index 0 frees it, and the region lists
/// again; a free entry is "not found" (3); neither NAME nor --index is a usage error (2).
TEST_F(cli, RegionRmIndexFreesACorruptEntry) {
  const std::string path = (dir_ / "ao.region.shm").string();
  {
    shmlink::Region region = shmlink::Region::create("ao", 64 * 1024);
    (void)region.create_queue("ctl", small_queue());
  }
  poke_u64(path, region_entry(0), 0x0000000000622f61ULL);  // name "a/b"
  RunResult r = run_cli({"region", "ls", path});
  ASSERT_EQ(r.code, 5) << describe(r);
  EXPECT_NE(r.err.find("entry 0"), std::string::npos) << describe(r);

  r = run_cli({"region", "rm", path, "--index", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("freed entry 0 of " + path), std::string::npos) << r.out;
  r = run_cli({"region", "ls", path, "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(parse_json(r).at("entries").empty()) << r.out;

  r = run_cli({"region", "rm", path, "--index", "0"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_NE(r.err.find(path), std::string::npos) << describe(r);
  EXPECT_EQ(run_cli({"region", "rm", path}).code, 2);
  EXPECT_NE(run_cli({"region", "rm", "--help"}).out.find("--index"), std::string::npos);
}

/// `gc` looks inside the directory's regions: an entry left `creating` by a dead process of this
/// host is reported stale and kept without --streams, listed by --streams --dry-run, and freed by
/// --streams (through the region's own recovery); one being created by another kernel's process
/// is kept whatever gc's flags.
TEST_F(cli, GcFreesRegionEntriesLeftCreatingByADeadProcess) {
  const std::string path = (dir_ / "ao.region.shm").string();
  std::uint64_t mine = 0;
  {
    shmlink::Region region = shmlink::Region::create("ao", 256 * 1024);
    (void)region.create_queue("dead", small_queue());
    (void)region.create_queue("vm", small_queue());
    mine = region.entries().at(0).owner;  // this process's token: hash << 32 | pid
  }
  const pid_t gone = ::fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(gone, nullptr, 0), gone);  // a pid of this host, dead
  const std::uint64_t creating_queue = 2 | (std::uint64_t{1} << 32);
  poke_u64(path, region_entry(0) + 80, creating_queue);
  poke_u64(path, region_entry(0) + 112, (mine & 0xffffffff00000000ULL) | static_cast<std::uint32_t>(gone));
  poke_u64(path, region_entry(0) + 120, 0);
  poke_u64(path, region_entry(1) + 80, creating_queue);  // another kernel's hash: liveness unknown
  poke_u64(path, region_entry(1) + 112, ((mine ^ 0x5a5a0000'00000000ULL) & 0xffffffff00000000ULL) | 1);

  auto in = [](const json& list, const std::string& p) -> const json* {
    for (const json& e : list)
      if (e.at("path") == p) return &e;
    return nullptr;
  };
  RunResult r = run_cli({"gc", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  json j = parse_json(r);
  const json* dead = in(j.at("kept"), path + ":dead");
  ASSERT_NE(dead, nullptr) << r.out;
  EXPECT_EQ(dead->at("stale"), true);
  EXPECT_EQ(dead->at("kind"), "queue");
  EXPECT_NE(dead->at("reason").get<std::string>().find(std::to_string(gone)), std::string::npos) << r.out;
  const json* vm = in(j.at("kept"), path + ":vm");
  ASSERT_NE(vm, nullptr) << r.out;
  EXPECT_EQ(vm->at("stale"), false);

  r = run_cli({"gc", "--streams", "--dry-run", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(in(parse_json(r).at("removed"), path + ":dead"), nullptr) << r.out;
  EXPECT_EQ(shmlink::Region::open(path, false).entries().size(), 2u);

  r = run_cli({"gc", "--streams"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("removed " + path + ":dead"), std::string::npos) << r.out;
  const std::vector<shmlink::RegionEntry> left = shmlink::Region::open(path, false).entries();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, "vm");
  EXPECT_EQ(left[0].state, shmlink::EntryState::creating);
}

/// `ls` lists the stream directory once for all its tables (streams, queues, the regions'
/// entries, memif status files): inotify sees the directory itself opened once.
TEST_F(cli, LsListsTheStreamDirectoryOnce) {
  shmlink::Stream cam = shmlink::Stream::create("cam", shmlink::test::spec_of({4, 4}, shmlink::Dtype::u16));
  { shmlink::Queue q = shmlink::Queue::create("q", small_queue()); }
  {
    shmlink::Region region = shmlink::Region::create("ao", 64 * 1024);
    (void)region.create_queue("ctl", small_queue());
  }
  const int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(::inotify_add_watch(in, dir_.c_str(), IN_OPEN), 0);
  const RunResult r = run_cli({"ls", "--interval", "0", "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const json j = parse_json(r);
  EXPECT_EQ(j.at("streams").size(), 1u) << r.out;
  EXPECT_EQ(j.at("queues").size(), 2u) << r.out;  // q and ao.region.shm:ctl
  int opened = 0;
  alignas(inotify_event) char buf[8192];
  for (ssize_t n; (n = ::read(in, buf, sizeof buf)) > 0;) {
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      if ((ev->mask & IN_OPEN) != 0 && (ev->mask & IN_ISDIR) != 0 && ev->len == 0) ++opened;  // the directory itself
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  ::close(in);
  EXPECT_EQ(opened, 1) << "ls opened (listed) the stream directory " << opened << " times";
}

}  // namespace
