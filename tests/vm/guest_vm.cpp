// SPDX-License-Identifier: MIT
// QEMU guests for tests (guest_vm.hpp, docs/vm.md).
#include "guest_vm.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

// The build tree's boot files (tests/vm/CMakeLists.txt); SHMLINK_VM_MISSING says why there are
// none ("" when there are).
#ifndef SHMLINK_VM_KERNEL
#define SHMLINK_VM_KERNEL ""
#endif
#ifndef SHMLINK_VM_INITRAMFS
#define SHMLINK_VM_INITRAMFS ""
#endif
#ifndef SHMLINK_VM_MISSING
#define SHMLINK_VM_MISSING "this build has no guest image (tests/vm/CMakeLists.txt)"
#endif
#ifndef SHMLINK_VM_DRIVER_MISSING
#define SHMLINK_VM_DRIVER_MISSING "this build has no guest driver (tests/vm/CMakeLists.txt)"
#endif

namespace shmlink::testvm {

struct GuestVmAccess {
  static tl::expected<GuestVm, std::string> start(const GuestSpec& spec, bool kvm) {
    return GuestVm::start_internal(spec, kvm);
  }
};

namespace {

constexpr std::size_t kMaxKernelCommandLine = 2047;  // x86 COMMAND_LINE_SIZE 2048, with the NUL
constexpr std::size_t kMaxEnv = 24;                  // the kernel passes at most 32 to /init
constexpr const char* kExitMarker = "SHMLINK-GUEST-EXIT ";

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string qemu_path() {
  static const std::string path = find_in_path("qemu-system-x86_64");
  return path;
}

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]) << 16 |
                                              static_cast<unsigned char>(bytes[i + 1]) << 8 |
                                              static_cast<unsigned char>(bytes[i + 2]));
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(n >> shift) & 63U];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]) << 16);
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63U];
    out += kAlphabet[(n >> 12) & 63U];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63U] : '=';
    out += '=';
  }
  return out;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_';
    if (!ok) return false;
  }
  return true;
}

bool valid_env_key(const std::string& key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool valid_env_value(const std::string& value) {
  for (char c : value) {
    if (c <= ' ' || c > '~' || c == '"' || c == '\'') return false;
  }
  return true;
}

// QEMU's option syntax: a ',' inside a value is written ",,".
std::string qemu_escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The status of the first "SHMLINK-GUEST-EXIT <status>" of the serial log, or -1.
int exit_status_in(const std::string& serial) {
  for (std::size_t at = serial.find(kExitMarker); at != std::string::npos;
       at = serial.find(kExitMarker, at + 1)) {
    std::size_t i = at + std::strlen(kExitMarker);
    int status = 0;
    std::size_t digits = 0;
    while (i < serial.size() && serial[i] >= '0' && serial[i] <= '9' && digits < 4) {
      status = status * 10 + (serial[i] - '0');
      ++i, ++digits;
    }
    if (digits > 0 && status <= 255) return status;
  }
  return -1;
}

std::string describe_wait_status(int raw) {
  if (WIFEXITED(raw)) return "exited with status " + std::to_string(WEXITSTATUS(raw));
  if (WIFSIGNALED(raw)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(raw));
  return "stopped";
}

enum class Accel { tcg, kvm };

Accel probe_accel() {
  if (const char* forced = std::getenv("SHMLINK_VM_ACCEL"); forced != nullptr && *forced != '\0') {
    return std::string(forced) == "kvm" ? Accel::kvm : Accel::tcg;
  }
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return Accel::tcg;
  ::close(fd);
  // /dev/kvm may exist and still not run guests (nested set-ups, docs/vm.md): boot one.
  GuestSpec probe;
  probe.name = "kvm-probe";
  probe.command = "true";
  probe.timeout = std::chrono::seconds(30);
  auto guest = GuestVmAccess::start(probe, true);
  return guest && guest->wait() == 0 ? Accel::kvm : Accel::tcg;
}

Accel accel() {
  static std::once_flag once;
  static Accel chosen = Accel::tcg;
  std::call_once(once, [] { chosen = probe_accel(); });
  return chosen;
}

}  // namespace

std::string vm_unavailable_reason() {
  if (qemu_path().empty()) {
    return "no qemu-system-x86_64 on PATH (Debian package qemu-system-x86; ./scripts/bootstrap installs it)";
  }
  if (std::string(SHMLINK_VM_MISSING).size() > 0) return SHMLINK_VM_MISSING;
  for (const char* file : {SHMLINK_VM_KERNEL, SHMLINK_VM_INITRAMFS}) {
    if (::access(file, R_OK) != 0) {
      return std::string("the guest image file ") + file + " is missing (" + std::strerror(errno) +
             "): build the target shmlink_vm_image";
    }
  }
  return "";
}

std::string vm_driver_unavailable_reason() {
  if (auto why = vm_unavailable_reason(); !why.empty()) return why;
  return SHMLINK_VM_DRIVER_MISSING;
}

bool vm_uses_kvm() { return vm_unavailable_reason().empty() && accel() == Accel::kvm; }

tl::expected<GuestVm, std::string> GuestVm::start(const GuestSpec& spec) {
  if (auto why = vm_unavailable_reason(); !why.empty()) return tl::make_unexpected(why);
  return start_internal(spec, accel() == Accel::kvm);
}

tl::expected<GuestVm, std::string> GuestVm::start_internal(const GuestSpec& spec, bool kvm) {
  const std::string what = "guest '" + spec.name + "'";
  if (!valid_name(spec.name)) return tl::make_unexpected(what + ": the name must be 1..64 of [A-Za-z0-9_-]");
  if (spec.env.size() > kMaxEnv) {
    return tl::make_unexpected(what + ": " + std::to_string(spec.env.size()) + " env entries, at most " +
                               std::to_string(kMaxEnv));
  }
  std::string append = "console=ttyS0 quiet panic=-1 shmlink_cmd=" + base64(spec.command);
  for (const auto& [key, value] : spec.env) {
    if (!valid_env_key(key) || key == "shmlink_cmd") {
      return tl::make_unexpected(what + ": env key '" + key + "' is not [A-Za-z_][A-Za-z0-9_]* (or is shmlink_cmd)");
    }
    if (!valid_env_value(value)) {
      return tl::make_unexpected(what + ": env value of '" + key +
                                 "' has a space, quote or non-printable byte (kernel command-line words cannot)");
    }
    append += " " + key + "=" + value;
  }
  if (append.size() > kMaxKernelCommandLine) {
    return tl::make_unexpected(what + ": the kernel command line would be " + std::to_string(append.size()) +
                               " bytes, at most " + std::to_string(kMaxKernelCommandLine) +
                               " (shorten the command or the env; the command travels base64-encoded)");
  }
  if (!spec.plain_path.empty() && spec.plain_size != 0 && (spec.plain_size & (spec.plain_size - 1)) != 0) {
    return tl::make_unexpected(what + ": plain_size " + std::to_string(spec.plain_size) +
                               " is not a power of two (QEMU's ivshmem requires one)");
  }
  if (spec.vectors == 0 || spec.vectors > 1024) {
    return tl::make_unexpected(what + ": vectors must be 1..1024, not " + std::to_string(spec.vectors));
  }

  const char* tmp = std::getenv("TMPDIR");
  std::string scratch = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/shmlink-vm-" + spec.name +
                        "-XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) {
    return tl::make_unexpected(what + ": cannot create a scratch directory " + scratch + ": " + std::strerror(errno));
  }
  GuestVm vm;
  vm.name_ = spec.name;
  vm.scratch_ = scratch;
  vm.timeout_ = spec.timeout;

  std::vector<std::string> args = {qemu_path()};
  if (kvm) {
    args.insert(args.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    args.insert(args.end(), {"-accel", "tcg", "-cpu", "max"});
  }
  args.insert(args.end(), {"-m", "256M", "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none", "-serial",
                           "file:" + scratch + "/serial.log", "-kernel", SHMLINK_VM_KERNEL, "-initrd",
                           SHMLINK_VM_INITRAMFS, "-append", append});
  if (!spec.plain_path.empty()) {
    std::uint64_t size = spec.plain_size;
    if (size == 0) {
      struct stat st {};
      if (::stat(spec.plain_path.c_str(), &st) != 0) {
        return tl::make_unexpected(what + ": cannot stat the ivshmem-plain file " + spec.plain_path + ": " +
                                   std::strerror(errno));
      }
      size = static_cast<std::uint64_t>(st.st_size);
    }
    args.insert(args.end(), {"-object",
                             "memory-backend-file,id=shmlink_plain,size=" + std::to_string(size) +
                                 ",mem-path=" + qemu_escape(spec.plain_path) + ",share=on",
                             "-device", "ivshmem-plain,memdev=shmlink_plain"});
  }
  if (!spec.doorbell_socket.empty()) {
    args.insert(args.end(), {"-chardev", "socket,id=shmlink_doorbell,path=" + qemu_escape(spec.doorbell_socket),
                             "-device",
                             "ivshmem-doorbell,chardev=shmlink_doorbell,vectors=" + std::to_string(spec.vectors)});
  }
  for (const auto& arg : args) {
    vm.command_line_ += (vm.command_line_.empty() ? "" : " ") + arg;
  }

  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const std::string stderr_path = scratch + "/qemu.stderr";
  const int err_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (err_fd < 0 || null_fd < 0) {
    const int saved = errno;
    if (err_fd >= 0) ::close(err_fd);
    if (null_fd >= 0) ::close(null_fd);
    return tl::make_unexpected(what + ": cannot open " + stderr_path + " or /dev/null: " + std::strerror(saved));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on. QEMU dies with the thread that started it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(err_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const int saved = errno;
  ::close(err_fd);
  ::close(null_fd);
  if (pid < 0) return tl::make_unexpected(what + ": fork failed: " + std::strerror(saved));
  vm.pid_ = pid;
  vm.deadline_ = std::chrono::steady_clock::now() + spec.timeout;
  return vm;
}

GuestVm::GuestVm(GuestVm&& other) noexcept
    : name_(std::move(other.name_)),
      scratch_(std::move(other.scratch_)),
      command_line_(std::move(other.command_line_)),
      pid_(std::exchange(other.pid_, -1)),
      deadline_(other.deadline_),
      timeout_(other.timeout_),
      finished_(other.finished_),
      status_(other.status_),
      note_(std::move(other.note_)) {
  other.scratch_.clear();
}

GuestVm& GuestVm::operator=(GuestVm&& other) noexcept {
  if (this != &other) {
    release();
    name_ = std::move(other.name_);
    scratch_ = std::exchange(other.scratch_, std::string());
    command_line_ = std::move(other.command_line_);
    pid_ = std::exchange(other.pid_, -1);
    deadline_ = other.deadline_;
    timeout_ = other.timeout_;
    finished_ = other.finished_;
    status_ = other.status_;
    note_ = std::move(other.note_);
  }
  return *this;
}

GuestVm::~GuestVm() { release(); }

void GuestVm::release() noexcept {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  if (!scratch_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(scratch_, ec);
    scratch_.clear();
  }
}

void GuestVm::reap(bool block_until_deadline) {
  if (pid_ <= 0) return;
  int raw = 0;
  pid_t got = 0;
  for (;;) {
    got = ::waitpid(pid_, &raw, WNOHANG);
    if (got != 0 && !(got < 0 && errno == EINTR)) break;
    if (!block_until_deadline) return;
    if (std::chrono::steady_clock::now() >= deadline_) {
      ::kill(pid_, SIGKILL);
      while ((got = ::waitpid(pid_, &raw, 0)) < 0 && errno == EINTR) {
      }
      note_ += "the guest was killed at its timeout of " + std::to_string(timeout_.count()) + " s\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  finished_ = true;
  if (got < 0) {
    note_ += std::string("waitpid on QEMU failed: ") + std::strerror(errno) + "\n";
  } else if (!note_.empty() && note_.find("killed at its timeout") != std::string::npos) {
    // the timeout note says it all
  } else if (!(WIFEXITED(raw) && WEXITSTATUS(raw) == 0)) {
    note_ += "QEMU " + describe_wait_status(raw) + "\n";
  }
  const std::string serial = read_file(scratch_ + "/serial.log");
  status_ = exit_status_in(serial);
  if (status_ < 0 && note_.empty()) {
    note_ += std::string("no '") + kExitMarker + "<status>' line in the serial log: the guest crashed, " +
             "panicked or powered off before its command ended\n";
  } else if (status_ < 0) {
    note_ += std::string("no '") + kExitMarker + "<status>' line in the serial log\n";
  }
}

int GuestVm::wait() {
  if (!finished_) reap(true);
  return status_;
}

bool GuestVm::running() {
  if (!finished_) reap(false);
  return !finished_;
}

void GuestVm::kill() {
  if (finished_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  note_ += "the guest was killed by GuestVm::kill()\n";
  reap(true);
}

std::string GuestVm::log() const {
  std::string text = scratch_.empty() ? std::string() : read_file(scratch_ + "/serial.log");
  text += "\n--- " + name_ + ": QEMU command line\n" + command_line_ + "\n";
  const std::string err = scratch_.empty() ? std::string() : read_file(scratch_ + "/qemu.stderr");
  if (!err.empty()) text += "--- " + name_ + ": QEMU's stderr\n" + err;
  if (!note_.empty()) text += "--- " + name_ + ": harness\n" + note_;
  return text;
}

}  // namespace shmlink::testvm
