// SPDX-License-Identifier: MIT
// Hostile and dying guests (issue 21), and a region on hugetlbfs served by `shmlink
// ivshmem-server -m`:
// - a guest writes garbage into the region (header, directory, a stream's ISIO header, a queue's
//   header; the patterns of tests/common/hostile_region.hpp) while the host opens, lists, reads
//   and pops: every answer is a status or an error naming the region, from the library and
//   from `shmlink ls`, `shmlink region ls` and `shmlink info`, never a crash or a hang;
// - a guest killed (its QEMU process) in the middle of a frame and of a stream of pushes: the
//   host gets writer_active for the stream, every sample fully pushed exactly once and in order,
//   a bounded wait at the half-pushed cell, and a new host writer and producer carry on;
// - a hugetlbfs mount with reserved 2 MiB pages, the server's region file on it, a guest and
//   a host process exchanging a stream through it.
#include "cli_run.hpp"
#include "guest_vm.hpp"
#include "hostile_region.hpp"
#include "test_util.hpp"
#include "vm_frames.hpp"

#include <shmlink/error.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>
#include <shmlink/stream.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shmlink::testvm::frame_value;
using shmlink::testvm::GuestSpec;
using shmlink::testvm::GuestVm;
namespace hostile = shmlink::test::hostile;

#define SKIP_WITHOUT_GUESTS()                                                                   \
  do {                                                                                          \
    if (auto why = shmlink::testvm::vm_unavailable_reason(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Starts `shmlink ARGS...` (a test::spawn child) with stdout and stderr into `log`; returns its pid.
pid_t start_cli(const std::vector<std::string>& args, const std::string& log) {
  return shmlink::test::spawn([&] { return shmlink::test::exec_cli(SHMLINK_CLI_PATH, args, log); });
}

std::uint64_t load_word(std::byte* word) {
  // SYNC POINT: pairs with the guest's release store of guest_step after writing a pattern.
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(word)).load(std::memory_order_acquire);
}

void store_word(std::byte* word, std::uint64_t v) {
  // SYNC POINT: pairs with the guest's acquire load of host_step: the region is restored.
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(word)).store(v, std::memory_order_release);
}

/// The file's bytes, mapped shared.
struct FileMapping {
  std::byte* bytes = nullptr;
  std::size_t size = 0;
  FileMapping(const std::string& path, std::size_t n) : size(n) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) bytes = static_cast<std::byte*>(p);
  }
  ~FileMapping() {
    if (bytes) ::munmap(bytes, size);
  }
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
};

// ---------------------------------------------------------------------------------------------
// A guest scribbles, the host answers with errors.

TEST(VmHostile, AGuestsGarbageInTheRegionIsAClearErrorOnTheHostNeverACrash) {
  SKIP_WITHOUT_GUESTS();
  constexpr std::size_t kRegionBytes = 1 << 20;
  shmlink::test::TempStreamDir dir;
  const std::string path = dir.path() + "/hostile.region.shm";
  const std::string log = dir.path() + "/cli.log";
  {
    shmlink::Region region = shmlink::Region::create(path, kRegionBytes);
    shmlink::Stream wfs = region.create_stream("wfs", shmlink::test::spec_of({64, 16}, shmlink::Dtype::u32));
    shmlink::QueueSpec qs;
    qs.capacity = 16;
    qs.max_values = 4;
    shmlink::Queue q = region.create_queue("q", qs);
    std::vector<std::uint32_t> frame(64 * 16, 7);
    ASSERT_TRUE(wfs.write(std::span<const std::uint32_t>(frame)));
    shmlink::Sample s;
    s.values.resize(2);
    ASSERT_TRUE(q.try_push(s));
  }
  FileMapping m(path, kRegionBytes);
  ASSERT_NE(m.bytes, nullptr) << path;
  const std::vector<std::byte> good(m.bytes, m.bytes + kRegionBytes - 4096);  // the mailbox page is not restored
  std::byte* host_step = m.bytes + kRegionBytes - 4096;
  std::byte* guest_step = host_step + 8;

  GuestSpec spec;
  spec.name = "hostile";
  spec.command = "shmlink_vm_hostile_guest scribble 7";
  spec.plain_path = path;
  spec.plain_size = kRegionBytes;
  spec.timeout = std::chrono::seconds(120);
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();

  auto check = [&](const std::string& label) {
    for (const std::string& p : hostile::probe(path, label)) ADD_FAILURE() << p;
    for (const auto& args : std::vector<std::vector<std::string>>{{"region", "ls", path},
                                                                   {"info", path + ":wfs"},
                                                                   {"info", path + ":q"}}) {
      if (const std::string p = shmlink::test::cli_problem(SHMLINK_CLI_PATH, args, path, log); !p.empty())
        ADD_FAILURE() << label << ": " << p;
    }
    // `shmlink ls` lists the directory (exit 0) and names a region it cannot list.
    bool listable = true;
    try {
      (void)shmlink::Region::open(path, false).entries();
    } catch (const shmlink::Error&) {
      listable = false;
    }
    const auto ls = shmlink::test::run_cli(SHMLINK_CLI_PATH, {"ls", "--dir", dir.path(), "--interval", "0"}, log);
    EXPECT_EQ(ls.rc, 0) << label << ": " << ls.out;
    if (!listable) {
      EXPECT_NE(ls.out.find(path), std::string::npos) << label << ": ls does not name the region\n" << ls.out;
    }
  };
  for (int k = 0; k < hostile::kPatternCount; ++k) {
    SCOPED_TRACE(hostile::kPatternNames[k]);
    std::memcpy(m.bytes, good.data(), good.size());
    const auto step = static_cast<std::uint64_t>(k + 1);
    store_word(host_step, step);
    while (load_word(guest_step) != step) {
      ASSERT_TRUE(guest->running()) << "the guest ended before pattern " << k << "\n" << guest->log();
      std::this_thread::sleep_for(2ms);
    }
    if (k + 1 < hostile::kPatternCount) {
      check(hostile::kPatternNames[k]);
    } else {  // the guest rewrites the channels all along
      for (int round = 0; round < 3; ++round) check(hostile::kPatternNames[k]);
      store_word(host_step, step + 1);
    }
  }
  EXPECT_EQ(guest->wait(), 0) << guest->log();
}

// ---------------------------------------------------------------------------------------------
// A guest killed mid-write.

TEST(VmHostile, AGuestKilledMidWriteLeavesTheHostAbleToContinue) {
  SKIP_WITHOUT_GUESTS();
  constexpr std::size_t kRegionBytes = 1 << 20;
  constexpr std::uint64_t kFrames = 20;
  shmlink::test::TempStreamDir dir;
  const std::string path = dir.path() + "/killed.region.shm";
  shmlink::Region region = shmlink::Region::create(path, kRegionBytes);
  shmlink::Stream frames = region.create_stream(
      "frames", shmlink::test::spec_of({shmlink::testvm::kFrameWidth, shmlink::testvm::kFrameHeight}, shmlink::Dtype::u32));
  shmlink::QueueSpec qs;
  qs.capacity = 64;
  qs.max_values = 4;
  shmlink::Queue samples = region.create_queue("samples", qs);

  GuestSpec spec;
  spec.name = "killed";
  spec.command = "shmlink_vm_hostile_guest write-then-stall frames samples " + std::to_string(kFrames);
  spec.plain_path = path;
  spec.plain_size = kRegionBytes;
  spec.timeout = std::chrono::seconds(120);
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();

  // Pop while the guest pushes; kill it once frame kFrames is open and samples keep coming.
  std::uint64_t next = 0;  // the sequence number expected next
  shmlink::Sample s;
  auto take = [&](const shmlink::Sample& got) {
    ASSERT_EQ(got.sequence, next) << "a sample lost, duplicated or reordered";
    ASSERT_EQ(got.values.size(), 2U);
    ASSERT_EQ(got.values[0].i, static_cast<std::int64_t>(next));
    ASSERT_EQ(got.values[1].i, static_cast<std::int64_t>(3 * next + 1)) << "a torn sample";
    ++next;
  };
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (!(frames.write_flag() && frames.cnt0() == kFrames && next >= kFrames + 200)) {
    ASSERT_TRUE(guest->running()) << "the guest ended early\n" << guest->log();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "cnt0 " << frames.cnt0() << ", popped " << next << "\n"
                                                          << guest->log();
    if (samples.try_pop(s)) {
      take(s);
      if (HasFatalFailure()) return;
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  guest->kill();

  // The queue: every sample the guest pushed completely, once, in order; then a bounded wait.
  while (samples.try_pop(s)) {
    take(s);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(samples.pop(s, 50ms).code(), shmlink::Errc::timeout);
  // The stream: the frame the guest left open is never returned as complete.
  std::vector<std::uint32_t> frame(frames.frame_bytes() / sizeof(std::uint32_t));
  EXPECT_TRUE(frames.write_flag());
  EXPECT_EQ(frames.read_copy(std::as_writable_bytes(std::span(frame))).code(), shmlink::Errc::writer_active);

  // A new host writer and a new host producer take over, in a handle of their own.
  shmlink::Region again = shmlink::Region::open(path);
  shmlink::Stream writer = again.open_stream("frames");
  for (std::size_t j = 0; j < frame.size(); ++j) frame[j] = frame_value(kFrames, j);
  ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)));
  std::vector<std::uint32_t> got(frame.size());
  shmlink::FrameInfo info;
  ASSERT_TRUE(frames.read_copy(std::as_writable_bytes(std::span(got)), &info));
  EXPECT_EQ(info.cnt0, kFrames + 1);
  EXPECT_EQ(got, frame);
  EXPECT_FALSE(frames.write_flag());

  shmlink::Queue producer = again.open_queue("samples");
  const std::uint64_t first_new = next;
  for (std::uint64_t i = first_new; i < first_new + 10; ++i) {
    shmlink::Sample p;
    p.sequence = i;
    p.values = {shmlink::SignalValue::of(static_cast<std::int64_t>(i)),
                shmlink::SignalValue::of(static_cast<std::int64_t>(3 * i + 1))};
    ASSERT_TRUE(producer.try_push(p)) << "push " << i;
  }
  for (std::uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(samples.pop(s, 1s)) << "the new producer's sample " << i;
    take(s);
    if (HasFatalFailure()) return;
  }
  EXPECT_FALSE(samples.try_pop(s));
}

// ---------------------------------------------------------------------------------------------
// hugetlbfs: `shmlink ivshmem-server -m FILE` on a hugetlbfs mount; a guest and a host process
// exchange a stream through it.

constexpr long kHugetlbfsMagic = 0x958458f6;  // statfs f_type of hugetlbfs (linux/magic.h)
constexpr const char* kNrHugepages = "/proc/sys/vm/nr_hugepages";

long meminfo_value(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

/// Huge pages reserved for the test (nr_hugepages raised when too few are free, restored at the
/// end) and a hugetlbfs mounted on a temporary directory (unmounted at the end).
class HugePages {
 public:
  /// "" when `pages` free 2 MiB pages and the mount are ready, else why not.
  std::string set_up(long pages) {
    if (::geteuid() != 0) return "mounting hugetlbfs needs root";
    if (meminfo_value("Hugepagesize") != 2048) return "the default huge page size is not 2 MiB";
    const long free = meminfo_value("HugePages_Free");
    if (free < pages) {
      original_ = std::stol(slurp(kNrHugepages));
      if (!write_nr(original_ + pages - free)) return std::string("cannot write ") + kNrHugepages;
      raised_ = true;
      if (meminfo_value("HugePages_Free") < pages)
        return "cannot reserve " + std::to_string(pages) + " huge pages of 2 MiB (HugePages_Free is " +
               std::to_string(meminfo_value("HugePages_Free")) + " after raising nr_hugepages)";
    }
    char tmpl[] = "/tmp/shmlink-vm-huge-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return std::string("mkdtemp: ") + std::strerror(errno);
    dir_ = tmpl;
    if (::mount("none", dir_.c_str(), "hugetlbfs", 0, "pagesize=2M") != 0)
      return "mounting hugetlbfs on " + dir_ + ": " + std::strerror(errno);
    mounted_ = true;
    return "";
  }
  ~HugePages() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) ::rmdir(dir_.c_str());
    if (raised_) (void)write_nr(original_);
  }
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  static bool write_nr(long n) {
    std::ofstream out(kNrHugepages);
    out << n << "\n";
    out.flush();
    return static_cast<bool>(out);
  }
  std::string dir_;
  long original_ = 0;
  bool raised_ = false, mounted_ = false;
};

TEST(VmHugetlbfs, AGuestAndAHostProcessExchangeAStreamThroughTheServersRegionOnHugetlbfs) {
  SKIP_WITHOUT_GUESTS();
  constexpr std::uint64_t kFrames = 20;
  HugePages huge;
  if (const std::string why = huge.set_up(4); !why.empty()) GTEST_SKIP() << why;
  shmlink::test::TempStreamDir dir;
  const std::string sock = dir.path() + "/iv.sock", log = dir.path() + "/server.log";
  const std::string file = huge.dir() + "/iv.region";
  const pid_t server = start_cli({"ivshmem-server", "-F", "-S", sock, "-m", file, "-l", "4M", "-n", "1"}, log);
  ASSERT_GT(server, 0);
  struct Stop {
    pid_t pid;
    ~Stop() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } stop{server};
  struct stat st {};
  for (auto deadline = std::chrono::steady_clock::now() + 20s; ::stat(sock.c_str(), &st) != 0;) {
    ASSERT_EQ(::waitpid(server, nullptr, WNOHANG), 0) << "the server ended: " << slurp(log);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no socket: " << slurp(log);
    std::this_thread::sleep_for(5ms);
  }
  struct statfs fs {};
  ASSERT_EQ(::statfs(file.c_str(), &fs), 0) << file << ": " << std::strerror(errno);
  EXPECT_EQ(fs.f_type, kHugetlbfsMagic);

  // The host process: the region through its file, as any host program opens it.
  shmlink::Region region = shmlink::Region::open(file);
  EXPECT_EQ(region.size(), std::size_t{4} << 20);
  EXPECT_FALSE(region.same_kernel());
  shmlink::Stream frames = region.create_stream(
      "frames", shmlink::test::spec_of({shmlink::testvm::kFrameWidth, shmlink::testvm::kFrameHeight}, shmlink::Dtype::u32));
  shmlink::Stream ack = region.create_stream("ack", shmlink::test::spec_of({1}, shmlink::Dtype::u64));

  GuestSpec spec;
  spec.name = "huge";
  spec.doorbell_socket = sock;
  spec.vectors = 1;
  spec.command = "shmlink_vm_region_guest read frames ack " + std::to_string(kFrames);
  spec.timeout = std::chrono::seconds(120);
  auto guest = GuestVm::start(spec);
  ASSERT_TRUE(guest) << guest.error();
  std::vector<std::uint32_t> frame(frames.frame_bytes() / sizeof(std::uint32_t));
  std::array<std::uint64_t, 1> seen{};
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    for (std::size_t j = 0; j < frame.size(); ++j) frame[j] = frame_value(i, j);
    ASSERT_TRUE(frames.write(std::span<const std::uint32_t>(frame)));
    while (ack.cnt0() < i + 1) {
      ASSERT_TRUE(guest->running()) << "no acknowledgement of frame " << i << "\n" << guest->log();
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_TRUE(ack.read_copy(std::as_writable_bytes(std::span(seen))));
    ASSERT_EQ(seen[0], i);
  }
  EXPECT_EQ(guest->wait(), 0) << guest->log();
}

}  // namespace
