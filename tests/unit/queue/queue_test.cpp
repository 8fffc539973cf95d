// SPDX-License-Identifier: MIT
// Sample queues in one process (include/shmlink/queue.hpp): queue_path and the open modes,
// QueueSpec and QueueExpect checks, corrupt headers written with plain file I/O, a peer that
// lies about a cell's length, and SPSC/MPMC behaviour: FIFO order, full and empty, bursts,
// exact round trips of every SignalType, timeouts, shutdown, info(), and each WaitMode woken
// from another thread. Dead peers between claim and publish are simulated in forked children.
#include "queue_test_util.hpp"
#include "test_util.hpp"

#include <shmlink/queue.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;
using test::TempStreamDir;
using test::expect_error;

// ---- the file layout, written here independently of src/queue/queue_layout.hpp -------------
// (so that a drift of the layout fails these tests instead of moving with them)
namespace off {
constexpr std::uint64_t kMagic = 0;         // char[8] "SHMLINKQ"
constexpr std::uint64_t kVersion = 8;       // u32, 2; 0 while being built
constexpr std::uint64_t kHeaderBytes = 12;  // u32, offset of cell 0
constexpr std::uint64_t kCellBytes = 16;    // u32
constexpr std::uint64_t kCapacity = 20;     // u32
constexpr std::uint64_t kMaxValues = 24;    // u32
constexpr std::uint64_t kKind = 28;         // u8
constexpr std::uint64_t kWait = 29;         // u8
constexpr std::uint64_t kTail = 64;         // u64, producer index
constexpr std::uint64_t kHead = 128;        // u64, consumer index
constexpr std::uint64_t kTable = 384;       // SignalEntry[signal_count], 64 bytes each
constexpr std::uint64_t kEntry = 64;
constexpr std::uint64_t kEntryIndex = 0;    // u32
constexpr std::uint64_t kEntryType = 4;     // u8
constexpr std::uint64_t kEntryName = 8;     // char[40]
constexpr std::uint64_t kEntryUnit = 48;    // char[16]
constexpr std::uint64_t kCellTurn = 0;      // u64 in each cell's 48-byte head: pos free, pos + 1 published
constexpr std::uint64_t kCellSequence = 8;  // u64
constexpr std::uint64_t kCellLength = 36;   // u32
}  // namespace off

constexpr std::uint64_t round64(std::uint64_t n) { return (n + 63) / 64 * 64; }
/// A cell: a 48-byte head plus 8 bytes per value, rounded up to a cache line.
constexpr std::uint64_t cell_bytes_for(std::uint32_t max_values) { return round64(48 + std::uint64_t{8} * max_values); }
/// Cell 0's offset: the 384-byte header plus 64 bytes per signal, rounded up to a cache line.
constexpr std::uint64_t header_bytes_for(std::size_t signals) { return round64(384 + std::uint64_t{64} * signals); }

template <class T>
void poke(const std::string& path, std::uint64_t offset, const T& value) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  const ssize_t n = ::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset));
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof value)) throw std::runtime_error("pwrite " + path);
}

template <class T>
T peek(const std::string& path, std::uint64_t offset) {
  T value{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  const ssize_t n = ::pread(fd, &value, sizeof value, static_cast<off_t>(offset));
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof value)) throw std::runtime_error("pread " + path);
  return value;
}

/// `n` bytes of the file at `offset`.
std::vector<std::uint8_t> peek_bytes(const std::string& path, std::uint64_t offset, std::size_t n) {
  std::vector<std::uint8_t> bytes(n);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  const ssize_t got = ::pread(fd, bytes.data(), n, static_cast<off_t>(offset));
  ::close(fd);
  if (got != static_cast<ssize_t>(n)) throw std::runtime_error("pread " + path);
  return bytes;
}

std::uint64_t file_size(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat " + path);
  return static_cast<std::uint64_t>(st.st_size);
}

// ---- helpers ---------------------------------------------------------------------------------

Signal sig(std::uint32_t index, std::string name, SignalType type = SignalType::f64, std::string unit = "") {
  Signal s;
  s.index = index;
  s.name = std::move(name);
  s.type = type;
  s.unit = std::move(unit);
  return s;
}

QueueSpec qspec(QueueKind kind = QueueKind::spsc, WaitMode wait = WaitMode::hybrid, std::uint32_t capacity = 8,
                std::uint32_t max_values = 4, std::vector<Signal> signals = {}) {
  QueueSpec s;
  s.capacity = capacity;
  s.max_values = max_values;
  s.kind = kind;
  s.wait = wait;
  s.signals = std::move(signals);
  return s;
}

/// A sample whose every field derives from `seq`, with `n` f64 values.
Sample make_sample(std::uint64_t seq, std::size_t n = 3) {
  Sample s;
  s.sequence = seq;
  s.ts_origin_ns = static_cast<std::int64_t>(seq) * 1000 + 7;
  s.ts_received_ns = static_cast<std::int64_t>(seq) * 1000 + 9;
  s.flags = kSampleHasSequence | kSampleHasData | static_cast<std::uint32_t>(seq & 0xff) << 20;
  for (std::size_t i = 0; i < n; ++i) s.values.push_back(SignalValue::of(static_cast<double>(seq) + 0.25 * static_cast<double>(i)));
  return s;
}

/// Every field equal, values compared bit for bit.
void expect_same(const Sample& got, const Sample& want) {
  EXPECT_EQ(got.sequence, want.sequence);
  EXPECT_EQ(got.ts_origin_ns, want.ts_origin_ns);
  EXPECT_EQ(got.ts_received_ns, want.ts_received_ns);
  EXPECT_EQ(got.flags, want.flags);
  ASSERT_EQ(got.values.size(), want.values.size());
  for (std::size_t i = 0; i < want.values.size(); ++i)
    EXPECT_EQ(got.values[i].bits, want.values[i].bits) << "value " << i;
}


/// Waits for `done`; a thread still blocked after `seconds` is a hang: the binary aborts with a
/// message instead of letting the suite wait forever.
void join_or_abort(std::thread& t, const std::atomic<bool>& done, const char* what, double seconds = 20) {
  if (!test::wait_until([&] { return done.load(); }, seconds)) {
    std::fprintf(stderr, "FATAL: %s still blocked after %.0f s\n", what, seconds);
    std::abort();
  }
  t.join();
}

/// test::spawn, with a child that dies with this process (a hung child never outlives the test).
pid_t spawn(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  return test::spawn([&body, parent] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) return 97;
    return body();
  });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* kind_text(QueueKind k) { return k == QueueKind::mpmc ? "mpmc" : "spsc"; }
const char* wait_text(WaitMode w) {
  return w == WaitMode::polling ? "polling" : w == WaitMode::futex ? "futex" : "hybrid";
}

// ===== queue_path ==============================================================================

TEST(QueuePath, NameBecomesFileInStreamDirectoryWithSuffix) {
  TempStreamDir dir;
  EXPECT_EQ(queue_path("dpsim"), dir.path() + "/dpsim.queue.shm");
  EXPECT_EQ(queue_path("dpsim.queue.shm"), dir.path() + "/dpsim.queue.shm") << "suffix doubled";
}

TEST(QueuePath, NameWithSlashIsUsedAsGiven) {
  TempStreamDir dir;
  EXPECT_EQ(queue_path("/tmp/x/villas.q"), "/tmp/x/villas.q");
  EXPECT_EQ(queue_path("./rel/q"), "./rel/q");
  // create/open/remove take such a path too.
  const std::string p = dir.path() + "/by-path.bin";
  auto q = Queue::create(p, qspec());
  EXPECT_EQ(q.path(), p);
  EXPECT_TRUE(std::filesystem::exists(p));
  EXPECT_EQ(Queue::open(p).capacity(), 8u);
  q.close();
  Queue::remove(p);
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(QueuePath, EmptyAndOverlongNamesAreRejected) {
  TempStreamDir dir;
  EXPECT_EQ(queue_path(std::string(79, 'a')), dir.path() + "/" + std::string(79, 'a') + ".queue.shm");
  EXPECT_QUEUE_ERROR(queue_path(std::string(80, 'a')), Errc::name_too_long, "", std::string(80, 'a'));
  EXPECT_QUEUE_ERROR(queue_path(""), Errc::invalid_argument, "");
  EXPECT_QUEUE_ERROR(Queue::create(std::string(80, 'b'), qspec()), Errc::name_too_long, "");
  EXPECT_QUEUE_ERROR(Queue::open(std::string(80, 'b')), Errc::name_too_long, "");
  EXPECT_EQ(dir.entries(), 0);
  auto q = Queue::create(std::string(79, 'c'), qspec());
  EXPECT_EQ(q.name(), std::string(79, 'c'));
}

// ===== create / open / remove and the open modes ==============================================

TEST(QueueFile, CreateOpenRemove) {
  TempStreamDir dir;
  const std::string path = dir.path() + "/q1.queue.shm";
  auto q = Queue::create("q1", qspec(QueueKind::mpmc, WaitMode::futex, 16, 5, {sig(0, "v", SignalType::f64, "V")}));
  ASSERT_TRUE(q.valid());
  EXPECT_EQ(q.name(), "q1");
  EXPECT_EQ(q.path(), path);
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
  EXPECT_EQ(file_size(path), header_bytes_for(1) + 16 * cell_bytes_for(5));

  auto r = Queue::open("q1");
  EXPECT_EQ(r.capacity(), 16u);
  EXPECT_EQ(r.max_values(), 5u);
  EXPECT_EQ(r.kind(), QueueKind::mpmc);
  EXPECT_EQ(r.wait_mode(), WaitMode::futex);
  EXPECT_EQ(r.signals(), (std::vector<Signal>{sig(0, "v", SignalType::f64, "V")}));
  // Both handles are the same queue.
  ASSERT_EQ(q.try_push(make_sample(42)), Errc::ok);
  Sample out;
  ASSERT_EQ(r.try_pop(out), Errc::ok);
  expect_same(out, make_sample(42));

  // Destroying or closing a handle never removes the file; close() is idempotent.
  r.close();
  r.close();
  EXPECT_FALSE(r.valid());
  { auto tmp = Queue::open("q1"); }
  EXPECT_TRUE(std::filesystem::exists(path));

  Queue::remove("q1");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_QUEUE_ERROR(Queue::open("q1"), Errc::not_found, path);
  EXPECT_QUEUE_ERROR(Queue::remove("q1"), Errc::not_found, path);
  // The first handle still works on the unlinked file.
  EXPECT_EQ(q.try_push(make_sample(1)), Errc::ok);
}

TEST(QueueFile, ClosedAndMovedFromHandlesReportClosed) {
  TempStreamDir dir;
  auto q = Queue::create("mv", qspec());
  Queue moved = std::move(q);
  EXPECT_TRUE(moved.valid());
  EXPECT_FALSE(q.valid());  // NOLINT(bugprone-use-after-move): the contract under test
  Sample s = make_sample(1), out;
  EXPECT_EQ(q.try_push(s), Errc::closed);
  EXPECT_EQ(q.try_pop(out), Errc::closed);
  EXPECT_EQ(q.push(s, 10ms), Errc::closed);
  EXPECT_EQ(q.pop(out, 10ms), Errc::closed);
  EXPECT_FALSE(q.is_shut());
  EXPECT_QUEUE_ERROR(q.info(), Errc::closed, "");
  Queue dflt;
  EXPECT_FALSE(dflt.valid());
  EXPECT_EQ(dflt.try_push(s), Errc::closed);
  EXPECT_EQ(moved.try_push(s), Errc::ok);
}

// One name per meaning: a closed or moved-from handle says closed; a queue that was shut down
// (by any process) says shut_down, with its own message, and only once drained for pops.
TEST(QueueFile, AShutQueueSaysShutDownAndAClosedHandleSaysClosed) {
  TempStreamDir dir;
  auto q = Queue::create("sd", qspec());
  ASSERT_EQ(q.try_push(make_sample(1)), Errc::ok);
  Queue::open("sd").shutdown();
  Sample out;
  EXPECT_EQ(q.try_push(make_sample(2)), Errc::shut_down);
  EXPECT_EQ(q.try_pop(out), Errc::ok);
  EXPECT_EQ(q.try_pop(out), Errc::shut_down);
  EXPECT_EQ(static_cast<int>(Errc::shut_down), -18);
  EXPECT_STREQ(shmlink::strerror(Errc::shut_down), "the queue or interface was shut down: no more samples will come");
  EXPECT_STRNE(shmlink::strerror(Errc::closed), shmlink::strerror(Errc::shut_down));
  q.close();
  EXPECT_EQ(q.try_pop(out), Errc::closed);
}

// QueueExpect::writable = false maps the file read-only: the handle describes the queue, every
// push/pop returns permission and shutdown does nothing. Any write through the mapping would
// fault (SIGSEGV), so calling every member also proves that none writes.
TEST(QueueFile, ReadOnlyHandleInspectsButNeverWrites) {
  TempStreamDir dir;
  const std::vector<Signal> table{sig(0, "v", SignalType::f64, "V")};
  auto q = Queue::create("ro", qspec(QueueKind::mpmc, WaitMode::futex, 8, 4, table));
  ASSERT_EQ(q.try_push(make_sample(1)), Errc::ok);
  QueueExpect e;
  e.writable = false;
  e.signals = table;
  auto ro = Queue::open("ro", e);
  ASSERT_TRUE(ro.valid());
  EXPECT_EQ(ro.capacity(), 8u);
  EXPECT_EQ(ro.signals(), table);
  EXPECT_EQ(ro.size(), 1u);
  EXPECT_EQ(ro.info().pushed, 1u);
  Sample out;
  EXPECT_EQ(ro.try_push(make_sample(2)), Errc::permission);
  EXPECT_EQ(ro.push(make_sample(2), 50ms), Errc::permission);
  std::size_t n = 9;
  const std::vector<Sample> two{make_sample(2), make_sample(3)};
  EXPECT_EQ(ro.try_push_burst(two, n), Errc::permission);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(ro.try_pop(out), Errc::permission);
  EXPECT_EQ(ro.pop(out, 50ms), Errc::permission);
  std::vector<Sample> outs(2);
  EXPECT_EQ(ro.try_pop_burst(outs, n), Errc::permission);
  EXPECT_EQ(n, 0u);
  ro.shutdown();
  EXPECT_FALSE(q.is_shut()) << "a read-only handle shut the queue";
  EXPECT_EQ(q.size(), 1u);
  // The writer is unaffected, and the read-only handle sees its changes.
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  expect_same(out, make_sample(1));
  EXPECT_EQ(ro.size(), 0u);
  q.shutdown();
  EXPECT_TRUE(ro.is_shut());
  EXPECT_TRUE(ro.info().closed);
}

TEST(QueueFile, ExclusiveCreateTwiceFailsWithExists) {
  TempStreamDir dir;
  auto q = Queue::create("ex", qspec());
  ASSERT_EQ(q.try_push(make_sample(5)), Errc::ok);
  EXPECT_QUEUE_ERROR(Queue::create("ex", qspec()), Errc::exists, queue_path("ex"));
  EXPECT_QUEUE_ERROR(Queue::create("ex", qspec(), OpenMode::ExclusiveCreate), Errc::exists, queue_path("ex"));
  EXPECT_EQ(q.size(), 1u) << "the failed create touched the existing queue";
  EXPECT_EQ(dir.entries(), 1) << "a temporary file was left behind";
}

TEST(QueueFile, OpenOrCreateCreatesThenOpensTheSameQueue) {
  TempStreamDir dir;
  const auto spec = qspec(QueueKind::mpmc, WaitMode::hybrid, 8, 6, {sig(1, "i", SignalType::i64, "A")});
  auto a = Queue::create("ooc", spec, OpenMode::OpenOrCreate);
  ASSERT_EQ(a.try_push(make_sample(9)), Errc::ok);
  auto b = Queue::create("ooc", spec, OpenMode::OpenOrCreate);
  EXPECT_EQ(b.size(), 1u) << "OpenOrCreate re-created a matching queue";
  Sample out;
  ASSERT_EQ(b.try_pop(out), Errc::ok);
  expect_same(out, make_sample(9));
}

TEST(QueueFile, OpenOrCreateRefusesAMismatchingQueueNamingBoth) {
  TempStreamDir dir;
  const auto spec = qspec(QueueKind::spsc, WaitMode::hybrid, 8, 24, {sig(0, "volt_a", SignalType::f64, "kV")});
  auto q = Queue::create("mm", spec);
  ASSERT_EQ(q.try_push(make_sample(3)), Errc::ok);
  const std::string path = queue_path("mm");

  auto other = spec;
  other.max_values = 40;
  EXPECT_QUEUE_ERROR(Queue::create("mm", other, OpenMode::OpenOrCreate), Errc::layout, path, "24", "40");
  other = spec;
  other.kind = QueueKind::mpmc;
  EXPECT_QUEUE_ERROR(Queue::create("mm", other, OpenMode::OpenOrCreate), Errc::layout, path, "spsc", "mpmc");
  other = spec;
  other.signals[0].name = "volt_b";
  EXPECT_QUEUE_ERROR(Queue::create("mm", other, OpenMode::OpenOrCreate), Errc::layout, path, "volt_a", "volt_b");
  // The queue was left alone.
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(Queue::open("mm").max_values(), 24u);
  // Capacity and wait mode are not part of the match: the existing queue is opened as it is.
  other = spec;
  other.capacity = 64;
  other.wait = WaitMode::polling;
  auto same = Queue::create("mm", other, OpenMode::OpenOrCreate);
  EXPECT_EQ(same.capacity(), 8u);
  EXPECT_EQ(same.wait_mode(), WaitMode::hybrid);
  EXPECT_EQ(same.size(), 1u);
}

TEST(QueueFile, PurgeAndCreateReplacesTheQueue) {
  TempStreamDir dir;
  auto old = Queue::create("pg", qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4));
  ASSERT_EQ(old.try_push(make_sample(1)), Errc::ok);
  auto fresh = Queue::create("pg", qspec(QueueKind::mpmc, WaitMode::futex, 32, 9), OpenMode::PurgeAndCreate);
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_EQ(fresh.capacity(), 32u);
  EXPECT_EQ(fresh.max_values(), 9u);
  EXPECT_EQ(fresh.kind(), QueueKind::mpmc);
  auto reopened = Queue::open("pg");
  EXPECT_EQ(reopened.max_values(), 9u);
  EXPECT_EQ(reopened.size(), 0u);
  // The old handle keeps the old queue; nothing it pushes reaches the new one.
  EXPECT_EQ(old.size(), 1u);
  ASSERT_EQ(old.try_push(make_sample(2)), Errc::ok);
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_EQ(dir.entries(), 1);
  // PurgeAndCreate of an absent queue just creates it.
  auto absent = Queue::create("pg2", qspec(), OpenMode::PurgeAndCreate);
  EXPECT_TRUE(absent.valid());
}

TEST(QueueFile, OpenExistingModeOpensOrFailsWithNotFound) {
  TempStreamDir dir;
  EXPECT_QUEUE_ERROR(Queue::create("oe", qspec(), OpenMode::OpenExisting), Errc::not_found, queue_path("oe"));
  EXPECT_EQ(dir.entries(), 0);
  auto q = Queue::create("oe", qspec(QueueKind::mpmc, WaitMode::hybrid, 4, 2));
  ASSERT_EQ(q.try_push(make_sample(1, 2)), Errc::ok);
  auto o = Queue::create("oe", qspec(), OpenMode::OpenExisting);
  EXPECT_EQ(o.capacity(), 4u);
  EXPECT_EQ(o.size(), 1u);
}

TEST(QueueFile, PermissionsAreExactWhateverTheUmask) {
  TempStreamDir dir;
  const mode_t saved = ::umask(077);
  struct Restore {
    mode_t m;
    ~Restore() { ::umask(m); }
  } restore{saved};
  for (mode_t perm : {mode_t{0600}, mode_t{0640}, mode_t{0644}, mode_t{0660}, mode_t{0666}}) {
    for (mode_t mask : {mode_t{077}, mode_t{022}, mode_t{0}}) {
      ::umask(mask);
      const std::string name = "perm" + std::to_string(perm) + "_" + std::to_string(mask);
      auto s = qspec();
      s.permissions = perm;
      auto q = Queue::create(name, s);
      struct stat st{};
      ASSERT_EQ(::stat(queue_path(name).c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, perm) << "permissions " << std::oct << perm << " under umask " << mask;
    }
  }
  ::umask(077);
  auto q = Queue::create("default-perm", qspec());
  struct stat st{};
  ASSERT_EQ(::stat(queue_path("default-perm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, mode_t{0600});
}

TEST(QueuePath, OneNameRuleWithStreams) {
  TempStreamDir dir;
  EXPECT_QUEUE_ERROR(queue_path("."), Errc::invalid_argument, "", "no queue name");
  EXPECT_QUEUE_ERROR(queue_path(".."), Errc::invalid_argument, "", "no queue name");
  EXPECT_QUEUE_ERROR(queue_path("/tmp/.."), Errc::invalid_argument, "", "no queue name");
  EXPECT_QUEUE_ERROR(queue_path("a\nb"), Errc::invalid_argument, "", "'a\\nb'", "control");
  // A NUL does not cut the message short: it is shown escaped, with what follows it.
  EXPECT_QUEUE_ERROR(queue_path(std::string("a\0bc", 4)), Errc::invalid_argument, "", "'a\\x00bc'");
  // A 200-character path ending in .im.shm: a stream file's name, and too long a queue name.
  const std::string long_path = "/tmp/" + std::string(193, 'p') + ".im.shm";
  EXPECT_THROW((void)queue_path(long_path), Error);
  EXPECT_QUEUE_ERROR(queue_path("/tmp/s.im.shm"), Errc::invalid_argument, "", ".im.shm");
  EXPECT_QUEUE_ERROR(queue_path(std::string(kMaxQueueName + 1, 'q')), Errc::name_too_long, "",
                     std::to_string(kMaxQueueName));
  EXPECT_QUEUE_ERROR(Queue::create("a\x1b[2J", qspec()), Errc::invalid_argument, "", "'a\\e[2J'");
  EXPECT_EQ(dir.entries(), 0);
}

TEST(QueueCreate, PermissionsTakeReadAndWriteBitsOnly) {
  TempStreamDir dir;
  for (mode_t bad : {mode_t{07777}, mode_t{04600}, mode_t{02660}, mode_t{01666}, mode_t{0700}}) {
    QueueSpec s = qspec();
    s.permissions = bad;
    EXPECT_QUEUE_ERROR(Queue::create("perm", s), Errc::invalid_argument, "", "read and write bits only");
  }
  EXPECT_EQ(dir.entries(), 0);
}

// ===== QueueSpec validation ====================================================================

class QueueSpecCheck : public ::testing::Test {
 protected:
  // Create must refuse `s` with invalid_argument naming the file and `parts`, creating nothing.
  void refuse(const QueueSpec& s, std::initializer_list<std::string> parts) {
    expect_error([&] { (void)Queue::create("bad", s); }, Errc::invalid_argument, queue_path("bad"), parts);
    expect_error([&] { (void)Queue::create("bad", s, OpenMode::OpenOrCreate); }, Errc::invalid_argument,
                 queue_path("bad"), parts);
    EXPECT_EQ(dir_.entries(), 0) << "a refused spec left a file";
  }
  TempStreamDir dir_;
};

TEST_F(QueueSpecCheck, CapacityMustBeAPowerOfTwoInRange) {
  for (std::uint32_t cap : {0u, 1u, 3u, 6u, 100u, 513u, kMaxQueueCapacity + 1, kMaxQueueCapacity * 2}) {
    SCOPED_TRACE(cap);
    refuse(qspec(QueueKind::spsc, WaitMode::hybrid, cap), {"capacity", std::to_string(cap)});
  }
  EXPECT_EQ(Queue::create("two", qspec(QueueKind::spsc, WaitMode::hybrid, 2)).capacity(), 2u);
}

TEST_F(QueueSpecCheck, MaxValuesMustBeOneToLimit) {
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 0), {"max_values", "0"});
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, kMaxSampleValues + 1), {"max_values", "4097"});
  auto q = Queue::create("big", qspec(QueueKind::spsc, WaitMode::hybrid, 2, kMaxSampleValues));
  EXPECT_EQ(q.max_values(), kMaxSampleValues);
  auto one = Queue::create("one", qspec(QueueKind::spsc, WaitMode::hybrid, 2, 1));
  EXPECT_EQ(one.max_values(), 1u);
}

TEST_F(QueueSpecCheck, SignalIndicesMustBeDistinctAndBelowMaxValues) {
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(1, "a"), sig(2, "b"), sig(1, "c")}), {"index", "1"});
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(0, "a"), sig(4, "over")}), {"over", "4"});
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(99, "far")}), {"far", "99"});
  // Indices need not be dense or sorted.
  auto q = Queue::create("sparse", qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(3, "d"), sig(0, "a")}));
  EXPECT_EQ(q.signals(), (std::vector<Signal>{sig(3, "d"), sig(0, "a")}));
}

TEST_F(QueueSpecCheck, AtMostMaxValuesSignals) {
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 2, {sig(0, "a"), sig(1, "b"), sig(2, "c")}), {"signals"});
}

TEST_F(QueueSpecCheck, NamesAndUnitsMustFitTheirFields) {
  const std::string name40(40, 'n'), unit16(16, 'u');
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(0, name40)}), {name40});
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(0, "ok", SignalType::f64, unit16)}), {unit16});
  const std::string name39(39, 'n'), unit15(15, 'u');
  auto q = Queue::create("fits", qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(2, name39, SignalType::c64, unit15)}));
  auto r = Queue::open("fits");
  EXPECT_EQ(r.signals(), (std::vector<Signal>{sig(2, name39, SignalType::c64, unit15)}));
}

TEST_F(QueueSpecCheck, SignalTypeMustBeKnown) {
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(0, "weird", static_cast<SignalType>(9))}), {"weird"});
  refuse(qspec(QueueKind::spsc, WaitMode::hybrid, 8, 4, {sig(0, "weirder", static_cast<SignalType>(255))}), {"weirder"});
}

// ===== QueueExpect =============================================================================

class QueueExpectCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    table_ = {sig(0, "volt_a", SignalType::f64, "kV"), sig(1, "count", SignalType::i64, ""),
              sig(3, "phasor", SignalType::c64, "mV")};
    q_ = Queue::create("ex", qspec(QueueKind::mpmc, WaitMode::hybrid, 8, 12, table_));
    path_ = queue_path("ex");
  }
  void mismatch(const QueueExpect& e, std::initializer_list<std::string> parts) {
    expect_error([&] { (void)Queue::open("ex", e); }, Errc::layout, path_, parts);
  }
  TempStreamDir dir_;
  std::vector<Signal> table_;
  Queue q_;
  std::string path_;
};

TEST_F(QueueExpectCheck, MatchingExpectationsOpen) {
  QueueExpect e;
  e.max_values = 12;
  e.kind = QueueKind::mpmc;
  e.signals = table_;
  EXPECT_TRUE(Queue::open("ex", e).valid());
  EXPECT_TRUE(Queue::open("ex", QueueExpect{}).valid());
}

TEST_F(QueueExpectCheck, MaxValuesMismatchNamesBothValues) {
  QueueExpect e;
  e.max_values = 37;
  mismatch(e, {"12", "37"});
}

TEST_F(QueueExpectCheck, KindMismatchNamesBothKinds) {
  QueueExpect e;
  e.kind = QueueKind::spsc;
  mismatch(e, {"mpmc", "spsc"});
}

TEST_F(QueueExpectCheck, SignalNameMismatchNamesBothTables) {
  QueueExpect e;
  e.signals = table_;
  (*e.signals)[0].name = "volt_b";
  mismatch(e, {"volt_a", "volt_b"});
}

TEST_F(QueueExpectCheck, SignalTypeMismatchNamesBothTypes) {
  QueueExpect e;
  e.signals = table_;
  (*e.signals)[2].type = SignalType::boolean;
  mismatch(e, {"phasor", "c64", "bool"});
}

TEST_F(QueueExpectCheck, SignalUnitMismatchNamesBothUnits) {
  QueueExpect e;
  e.signals = table_;
  (*e.signals)[0].unit = "MW";
  mismatch(e, {"kV", "MW"});
}

TEST_F(QueueExpectCheck, SignalOrderAndCountMatter) {
  QueueExpect e;
  e.signals = std::vector<Signal>{table_[1], table_[0], table_[2]};
  mismatch(e, {"volt_a", "count"});
  e.signals = std::vector<Signal>{table_[0], table_[1]};
  mismatch(e, {"phasor"});
  e.signals = std::vector<Signal>{};
  mismatch(e, {"volt_a"});
  e.signals = table_;
  (*e.signals)[1].index = 2;
  mismatch(e, {"count"});
}

// ===== corrupt headers =========================================================================

/// A valid queue file (8 cells of 8 values, two signals) whose bytes each test then damages.
class QueueCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = queue_path("bad");
    auto q = Queue::create("bad", qspec(QueueKind::mpmc, WaitMode::hybrid, 8, 8,
                                        {sig(0, "alpha", SignalType::f64, "V"), sig(5, "beta", SignalType::i64, "A")}));
    ASSERT_EQ(q.try_push(make_sample(1)), Errc::ok);
    size_ = header_bytes_for(2) + 8 * cell_bytes_for(8);
    ASSERT_EQ(file_size(path_), size_);
    ASSERT_EQ(peek<std::uint32_t>(path_, off::kHeaderBytes), header_bytes_for(2));
    ASSERT_EQ(peek<std::uint32_t>(path_, off::kCellBytes), cell_bytes_for(8));
    ASSERT_EQ(peek<std::uint32_t>(path_, off::kVersion), 2u);
    ASSERT_EQ(peek<std::uint32_t>(path_, off::kTable + off::kEntry + off::kEntryIndex), 5u);
    ASSERT_TRUE(Queue::open("bad").valid());
  }
  /// Open (and OpenOrCreate, which must not repair or replace it) fail with layout naming `parts`.
  void refused(std::initializer_list<std::string> parts) {
    expect_error([&] { (void)Queue::open("bad"); }, Errc::layout, path_, parts);
    const auto spec = qspec(QueueKind::mpmc, WaitMode::hybrid, 8, 8,
                            {sig(0, "alpha", SignalType::f64, "V"), sig(5, "beta", SignalType::i64, "A")});
    expect_error([&] { (void)Queue::create("bad", spec, OpenMode::OpenOrCreate); }, Errc::layout, path_, {});
  }
  TempStreamDir dir_;
  std::string path_;
  std::uint64_t size_ = 0;
};

TEST_F(QueueCorrupt, WrongMagic) {
  poke(path_, off::kMagic, std::array<char, 8>{'S', 'H', 'M', 'L', 'I', 'N', 'K', 'X'});
  refused({"magic"});
}

TEST_F(QueueCorrupt, VersionZeroIsNotReady) {
  poke(path_, off::kVersion, std::uint32_t{0});
  refused({"version", "ready"});
}

TEST_F(QueueCorrupt, UnknownVersion) {
  poke(path_, off::kVersion, std::uint32_t{77});
  refused({"version", "77"});
}

TEST_F(QueueCorrupt, CapacityNotAPowerOfTwo) {
  poke(path_, off::kCapacity, std::uint32_t{6});
  refused({"capacity", "6"});
  poke(path_, off::kCapacity, std::uint32_t{0});
  refused({"capacity"});
}

TEST_F(QueueCorrupt, CapacityPowerOfTwoButNotTheFileSize) {
  poke(path_, off::kCapacity, std::uint32_t{16});
  refused({std::to_string(size_)});
}

TEST_F(QueueCorrupt, HeaderBytesWrong) {
  poke(path_, off::kHeaderBytes, static_cast<std::uint32_t>(header_bytes_for(2) + 64));
  refused({"header_bytes"});
}

TEST_F(QueueCorrupt, CellBytesWrong) {
  poke(path_, off::kCellBytes, static_cast<std::uint32_t>(cell_bytes_for(8) - 64));
  refused({"cell_bytes"});
}

TEST_F(QueueCorrupt, MaxValuesOutOfRange) {
  poke(path_, off::kMaxValues, std::uint32_t{0});
  refused({"max_values"});
}

TEST_F(QueueCorrupt, UnknownKindAndWaitMode) {
  poke(path_, off::kKind, std::uint8_t{7});
  refused({"kind", "7"});
  poke(path_, off::kKind, std::uint8_t{2});
  poke(path_, off::kWait, std::uint8_t{0});
  refused({"wait"});
}

TEST_F(QueueCorrupt, FileTruncated) {
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(size_ - 64)), 0);
  refused({std::to_string(size_ - 64), std::to_string(size_)});
}

TEST_F(QueueCorrupt, FileExtended) {
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(size_ + 4096)), 0);
  refused({std::to_string(size_ + 4096), std::to_string(size_)});
}

TEST_F(QueueCorrupt, FileShorterThanTheHeader) {
  ASSERT_EQ(::truncate(path_.c_str(), 100), 0);
  refused({"100"});
  ASSERT_EQ(::truncate(path_.c_str(), 0), 0);
  refused({});
}

TEST_F(QueueCorrupt, UnterminatedSignalName) {
  std::array<char, 40> full{};
  full.fill('x');
  poke(path_, off::kTable + off::kEntry + off::kEntryName, full);
  refused({"name"});
}

TEST_F(QueueCorrupt, UnterminatedSignalUnit) {
  std::array<char, 16> full{};
  full.fill('u');
  poke(path_, off::kTable + off::kEntryUnit, full);
  refused({"unit"});
}

TEST_F(QueueCorrupt, SignalIndexNotBelowMaxValues) {
  poke(path_, off::kTable + off::kEntry + off::kEntryIndex, std::uint32_t{8});
  refused({"beta", "index"});
}

TEST_F(QueueCorrupt, UnknownSignalTypeInTheTable) {
  poke(path_, off::kTable + off::kEntry + off::kEntryType, std::uint8_t{200});
  refused({"beta"});
}

TEST_F(QueueCorrupt, DuplicateSignalIndexInTheTable) {
  poke(path_, off::kTable + off::kEntry + off::kEntryIndex, std::uint32_t{0});
  refused({"index"});
}

// A peer that claims more values than a cell holds: the pop stops at max_values and never reads
// past the cell. The lying cell is the last one of the file, so reading on would leave the
// mapping (SIGSEGV/SIGBUS, or an ASan report).
TEST(QueueLyingPeer, CellLengthAboveMaxValuesIsClampedToTheCell) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    SCOPED_TRACE(kind_text(kind));
    TempStreamDir dir;
    auto q = Queue::create("lie", qspec(kind, WaitMode::hybrid, 2, 4));
    const std::string path = q.path();
    Sample a = make_sample(10, 2), b = make_sample(11, 4);
    ASSERT_EQ(q.try_push(a), Errc::ok);
    ASSERT_EQ(q.try_push(b), Errc::ok);
    const std::uint64_t cell1 = header_bytes_for(0) + cell_bytes_for(4);
    ASSERT_EQ(cell1 + cell_bytes_for(4), file_size(path)) << "cell 1 is not the last cell";
    ASSERT_EQ(peek<std::uint32_t>(path, header_bytes_for(0) + off::kCellLength), 2u);
    ASSERT_EQ(peek<std::uint32_t>(path, cell1 + off::kCellLength), 4u);
    poke(path, header_bytes_for(0) + off::kCellLength, std::uint32_t{1000});
    poke(path, cell1 + off::kCellLength, std::uint32_t{0xffffffff});
    Sample out;
    out.values.assign(9, SignalValue::of(1.0));
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    EXPECT_EQ(out.sequence, 10u);
    EXPECT_LE(out.values.size(), 4u);
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    EXPECT_EQ(out.sequence, 11u);
    ASSERT_LE(out.values.size(), 4u);
    for (std::size_t i = 0; i < out.values.size(); ++i) EXPECT_EQ(out.values[i].bits, b.values[i].bits);
  }
}

// Issue 17 item 9: a FIFO named like a queue: a read-only open(2) without O_NONBLOCK blocked for
// ever; now it is refused as not a regular file, naming the file. In a child so that a hang fails the test.
TEST(QueueLyingPeer, FifoUnderTheNameIsRefusedWithoutBlocking) {
  TempStreamDir dir;
  const std::string path = queue_path("fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const pid_t child = test::spawn([&] {
    for (const bool writable : {false, true}) {  // read-only open(2) of a FIFO is the one that blocks
      try {
        QueueExpect want;
        want.writable = writable;
        (void)Queue::open("fifo", want);
        return 1;
      } catch (const Error& e) {
        const std::string m = e.what();
        if (e.errc() != Errc::layout || m.find(path) == std::string::npos || m.find("FIFO") == std::string::npos) return 2;
      }
    }
    return 0;
  });
  EXPECT_EQ(test::reap(child, 10), 0) << "-1000: Queue::open blocked on the FIFO";
}

// Issue 17 item 8: head or tail written behind a cell's turn (a rewound index). MPMC's claim
// loop re-read the index for ever, expecting another claimer to have moved it; now it sees that
// nobody did and returns Errc::layout. SPSC never loops on the index but must still honour its
// timeouts. Each case runs in a child: a livelock fails the test (-1000) instead of hanging it.
TEST(QueueLyingPeer, RewoundIndicesNeverLivelockAndMpmcReportsLayout) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    for (const bool rewind_head : {true, false}) {
      SCOPED_TRACE(std::string(kind_text(kind)) + (rewind_head ? ", head rewound" : ", tail rewound"));
      TempStreamDir dir;
      auto q = Queue::create("rewind", qspec(kind, WaitMode::hybrid, 8, 4));
      for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(q.try_push(make_sample(i)), Errc::ok);
      Sample out;
      for (int i = 0; i < 2; ++i) ASSERT_EQ(q.try_pop(out), Errc::ok);
      // head 2, tail 4; MPMC cells 0 and 1 now have turns 8 and 9, cells 2 and 3 turns 3 and 4.
      poke(q.path(), rewind_head ? off::kHead : off::kTail, std::uint64_t{rewind_head ? 0u : 1u});
      const pid_t child = test::spawn([&] {
        auto h = Queue::open("rewind");
        const Errc expect_bad = kind == QueueKind::mpmc ? Errc::layout : Errc::ok;
        Sample o;
        std::vector<Sample> many(4);
        std::vector<Sample> in = {make_sample(20), make_sample(21)};
        std::size_t n = 0;
        if (rewind_head) {
          const Status a = h.try_pop(o);
          const Status b = h.try_pop_burst(many, n);
          const Status c = h.pop(o, 500ms);
          if (kind == QueueKind::mpmc) return a.code() == expect_bad && b.code() == expect_bad && c.code() == expect_bad ? 0 : 1;
          // SPSC re-reads old cells (its own channel's data). Its branches only guard against
          // a hang (reap's bound below): any status is accepted, the calls only have to return.
          return 0;
        }
        const Status a = h.try_push(make_sample(30));
        const Status b = h.try_push_burst(in, n);
        const Status c = h.push(make_sample(31), 500ms);
        if (kind == QueueKind::mpmc) return a.code() == expect_bad && b.code() == expect_bad && c.code() == expect_bad ? 0 : 2;
        return 0;  // SPSC: as above, only a hang fails
      });
      EXPECT_EQ(test::reap(child, 20), 0) << "-1000: a call spun for ever on the rewound index";
    }
  }
}

// A consumer that found the ring empty and then saw the queue shut returned closed (now shut_down), even when
// the producer had pushed more samples between those two looks and only then shut down (seen
// as "got 2 of 5 samples" in QueueProcessShutdown under load). A consumer thread polls try_pop
// while the producer pushes 3 samples and shuts down, many times: every sample must come out
// before shut_down.
TEST(QueueShutdown, SamplesPushedBeforeShutdownAreNeverHiddenByClosed) {
  for (QueueKind kind : {QueueKind::spsc, QueueKind::mpmc}) {
    SCOPED_TRACE(kind_text(kind));
    int lost_rounds = 0;
    for (int round = 0; round < 100 && lost_rounds == 0; ++round) {
      TempStreamDir dir;
      auto q = Queue::create("shutrace", qspec(kind, WaitMode::polling, 8, 4));
      auto in = Queue::open("shutrace");
      std::atomic<bool> go{false};
      int got = 0;
      std::thread consumer([&] {
        Sample out;
        go.store(true);
        for (;;) {
          const Status st = in.try_pop(out);
          if (st.code() == Errc::shut_down) break;
          if (st.ok()) ++got;
        }
      });
      while (!go.load()) std::this_thread::yield();
      for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(q.try_push(make_sample(i)), Errc::ok);
      q.shutdown();
      consumer.join();
      if (got != 3) ++lost_rounds;
    }
    EXPECT_EQ(lost_rounds, 0) << "a consumer returned shut_down with samples pushed before the shutdown unread";
  }
}

// ===== behaviour of both kinds =================================================================

class QueueKinds : public ::testing::TestWithParam<QueueKind> {
 protected:
  Queue make(std::uint32_t capacity = 8, std::uint32_t max_values = 4, std::vector<Signal> signals = {}) {
    return Queue::create("k", qspec(GetParam(), WaitMode::hybrid, capacity, max_values, std::move(signals)));
  }
  TempStreamDir dir_;
};

TEST_P(QueueKinds, FifoOrderAcrossManyLaps) {
  auto q = make(4, 3);
  std::uint64_t next_in = 0, next_out = 0;
  Sample out;
  // Uneven batches, so that the indices wrap at every offset of the ring.
  for (int round = 0; round < 300; ++round) {
    const int in = 1 + round % 4, take = 1 + (round * 7) % 4;
    for (int i = 0; i < in && q.size() < 4; ++i) ASSERT_EQ(q.try_push(make_sample(next_in++)), Errc::ok);
    for (int i = 0; i < take && next_out < next_in; ++i) {
      ASSERT_EQ(q.try_pop(out), Errc::ok);
      ASSERT_EQ(out.sequence, next_out) << "round " << round;
      expect_same(out, make_sample(next_out));
      ++next_out;
    }
    ASSERT_EQ(q.size(), next_in - next_out);
  }
  while (next_out < next_in) {
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    ASSERT_EQ(out.sequence, next_out++);
  }
  EXPECT_EQ(q.try_pop(out), Errc::would_block);
  EXPECT_GT(next_in, 200u);
}

TEST_P(QueueKinds, ExactlyCapacitySamplesFitThenWouldBlock) {
  for (std::uint32_t cap : {2u, 8u, 64u}) {
    SCOPED_TRACE(cap);
    TempStreamDir dir;
    auto q = make(cap, 2);
    Sample out;
    EXPECT_EQ(q.try_pop(out), Errc::would_block);
    EXPECT_EQ(q.size(), 0u);
    for (std::uint32_t i = 0; i < cap; ++i) {
      ASSERT_EQ(q.try_push(make_sample(i, 2)), Errc::ok) << "sample " << i;
      EXPECT_EQ(q.size(), i + 1);
    }
    EXPECT_EQ(q.try_push(make_sample(999, 2)), Errc::would_block);
    EXPECT_EQ(q.try_push(make_sample(999, 2)), Errc::would_block);
    EXPECT_EQ(q.size(), cap);
    // One pop frees exactly one cell.
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    EXPECT_EQ(out.sequence, 0u);
    EXPECT_EQ(q.try_push(make_sample(cap, 2)), Errc::ok);
    EXPECT_EQ(q.try_push(make_sample(999, 2)), Errc::would_block);
    for (std::uint32_t i = 1; i <= cap; ++i) {
      ASSERT_EQ(q.try_pop(out), Errc::ok);
      EXPECT_EQ(out.sequence, i);
    }
    EXPECT_EQ(q.try_pop(out), Errc::would_block);
    EXPECT_EQ(q.size(), 0u);
  }
}

TEST_P(QueueKinds, BurstPushAndPopCount) {
  auto q = make(8, 2);
  std::vector<Sample> in;
  for (std::uint64_t i = 0; i < 11; ++i) in.push_back(make_sample(i, 2));
  std::size_t pushed = 77;
  EXPECT_EQ(q.try_push_burst(std::span<const Sample>(in.data(), 0), pushed), Errc::ok);
  EXPECT_EQ(pushed, 0u);
  EXPECT_EQ(q.try_push_burst(std::span<const Sample>(in.data(), 3), pushed), Errc::ok);
  EXPECT_EQ(pushed, 3u);
  // 8 more offered, 5 fit: ok with the count (a burst reports why only when nothing went).
  EXPECT_EQ(q.try_push_burst(std::span<const Sample>(in.data() + 3, 8), pushed), Errc::ok);
  EXPECT_EQ(pushed, 5u);
  EXPECT_EQ(q.size(), 8u);
  EXPECT_EQ(q.try_push_burst(std::span<const Sample>(in.data() + 8, 3), pushed), Errc::would_block);
  EXPECT_EQ(pushed, 0u);
  std::vector<Sample> out(3);
  std::size_t popped = 77;
  EXPECT_EQ(q.try_pop_burst(out, popped), Errc::ok);
  EXPECT_EQ(popped, 3u);
  for (std::size_t i = 0; i < 3; ++i) expect_same(out[i], in[i]);
  out.assign(20, Sample{});
  EXPECT_EQ(q.try_pop_burst(out, popped), Errc::ok);
  EXPECT_EQ(popped, 5u);
  for (std::size_t i = 0; i < 5; ++i) expect_same(out[i], in[3 + i]);
  EXPECT_EQ(q.try_pop_burst(out, popped), Errc::would_block);
  EXPECT_EQ(popped, 0u);
  EXPECT_EQ(q.try_pop_burst(std::span<Sample>(out.data(), 0), popped), Errc::ok);
  EXPECT_EQ(popped, 0u);
  // A too-long sample stops a burst where it stands; it is the reason once it comes first.
  std::vector<Sample> mixed{make_sample(100, 2), make_sample(101, 3), make_sample(102, 2)};
  EXPECT_EQ(q.try_push_burst(mixed, pushed), Errc::ok);
  EXPECT_EQ(pushed, 1u);
  EXPECT_EQ(q.try_push_burst(std::span<const Sample>(mixed.data() + 1, 2), pushed), Errc::size_mismatch);
  EXPECT_EQ(pushed, 0u);
  EXPECT_EQ(q.size(), 1u);
  // After shutdown: pushes are refused, pops drain and then say shut_down.
  q.shutdown();
  EXPECT_EQ(q.try_push_burst(std::span<const Sample>(in.data(), 1), pushed), Errc::shut_down);
  EXPECT_EQ(q.try_pop_burst(out, popped), Errc::ok);
  EXPECT_EQ(popped, 1u);
  EXPECT_EQ(q.try_pop_burst(out, popped), Errc::shut_down);
  EXPECT_EQ(popped, 0u);
}

TEST_P(QueueKinds, EveryFieldAndSignalTypeRoundTripsBitExactly) {
  auto q = make(4, 8,
                {sig(0, "f", SignalType::f64), sig(1, "i", SignalType::i64), sig(2, "b", SignalType::boolean),
                 sig(3, "z", SignalType::c64)});
  Sample s;
  s.sequence = std::numeric_limits<std::uint64_t>::max();
  s.ts_origin_ns = std::numeric_limits<std::int64_t>::min();
  s.ts_received_ns = -1;
  s.flags = 0xffffffffu;
  SignalValue nan_payload, snan, neg_zero, zc;
  nan_payload.bits = 0x7ff8dead'beef0001ULL;  // quiet NaN with a payload
  snan.bits = 0x7ff40000'00000001ULL;         // signalling NaN: a float move could quieten it
  neg_zero.bits = 0x80000000'00000000ULL;     // -0.0
  zc = SignalValue::of(std::complex<float>(std::bit_cast<float>(0x80000000u), std::bit_cast<float>(0x7fc01234u)));
  s.values = {nan_payload,
              SignalValue::of(std::numeric_limits<std::int64_t>::min()),
              SignalValue::of(true),
              zc,
              snan,
              neg_zero,
              SignalValue::of(false),
              SignalValue::of(std::complex<float>(1.5f, -2.25f))};
  ASSERT_EQ(q.try_push(s), Errc::ok);
  Sample t = make_sample(5, 2);
  t.values[1] = SignalValue::of(std::int64_t{-1});
  ASSERT_EQ(q.push(t, 1s), Errc::ok);
  Sample out;
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  expect_same(out, s);
  EXPECT_EQ(out.values[2].bits, 1u);
  EXPECT_EQ(out.values[6].bits, 0u);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(out.values[3].complex().real()), 0x80000000u);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(out.values[3].complex().imag()), 0x7fc01234u);
  EXPECT_EQ(out.values[7].complex(), std::complex<float>(1.5f, -2.25f));
  EXPECT_EQ(out.values[1].i, std::numeric_limits<std::int64_t>::min());
  ASSERT_EQ(q.pop(out, 1s), Errc::ok);
  expect_same(out, t);
}

TEST_P(QueueKinds, SampleLengthsFromZeroToMaxValues) {
  auto q = make(8, 5);
  Sample out;
  for (std::size_t n : {std::size_t{0}, std::size_t{5}, std::size_t{1}, std::size_t{0}}) {
    SCOPED_TRACE(n);
    ASSERT_EQ(q.try_push(make_sample(n, n)), Errc::ok);
    out.values.assign(7, SignalValue::of(3.0));  // the pop sizes the vector to the sample
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    expect_same(out, make_sample(n, n));
  }
  // One value more than max_values is refused by every push, even on a full queue, and leaves
  // the queue as it was.
  EXPECT_EQ(q.try_push(make_sample(1, 6)), Errc::size_mismatch);
  EXPECT_EQ(q.push(make_sample(1, 6), 200ms), Errc::size_mismatch);
  EXPECT_EQ(q.size(), 0u);
  for (std::uint64_t i = 0; i < 8; ++i) ASSERT_EQ(q.try_push(make_sample(i, 1)), Errc::ok);
  EXPECT_EQ(q.try_push(make_sample(1, 6)), Errc::size_mismatch);
  EXPECT_EQ(q.push(make_sample(1, 6), 200ms), Errc::size_mismatch);
  EXPECT_EQ(q.size(), 8u);
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  EXPECT_EQ(out.sequence, 0u);
}

// Every length from 0 to 17 values, pushed as one burst and one at a time, comes out bit-exact:
// the copies move values in runs of 4, 2 and 1 around the cell's first line (two values share
// it with the header), so each length takes a different path through them. A copy that wrote
// past a sample's length would reach the next cell's turn and stall or corrupt the queue.
TEST_P(QueueKinds, EveryLengthRoundTripsInBurstsAndSingly) {
  constexpr std::size_t kMax = 17;
  auto q = make(64, kMax);
  std::vector<Sample> in;
  for (std::size_t n = 0; n <= kMax; ++n) in.push_back(make_sample(1000 + n, n));
  for (std::size_t n = kMax + 1; n-- > 0;) in.push_back(make_sample(2000 + n, n));
  std::size_t pushed = 0;
  ASSERT_EQ(q.try_push_burst(in, pushed), Errc::ok);
  ASSERT_EQ(pushed, in.size());
  std::vector<Sample> out(in.size());
  for (Sample& o : out) o.values.assign(kMax, SignalValue::of(-1.0));  // stale values must go
  std::size_t popped = 0;
  ASSERT_EQ(q.try_pop_burst(out, popped), Errc::ok);
  ASSERT_EQ(popped, in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same(out[i], in[i]);
  }
  for (const Sample& s : in) ASSERT_EQ(q.try_push(s), Errc::ok);
  Sample one;
  for (const Sample& s : in) {
    ASSERT_EQ(q.try_pop(one), Errc::ok);
    expect_same(one, s);
  }
  EXPECT_EQ(q.try_pop(one), Errc::would_block);
}

// A burst pop takes ownership of the drained cells' cache lines by storing back the bytes they
// hold (Impl::own_lines). The cells must come out of it byte for byte as the producer left them,
// except that an MPMC consumer frees each cell by its turn (pos + capacity); and a freed cell
// must not look published to the next lap. Cells of 17 values span three cache lines, so the
// pass touches a line of values at offset 64 and at 128 of every cell.
TEST_P(QueueKinds, BurstPopLeavesTheCellsAsWrittenButForTheFreedTurns) {
  constexpr std::uint32_t kCap = 8, kMax = 17;
  auto q = make(kCap, kMax);
  const std::string path = q.path();
  const std::uint64_t cells = header_bytes_for(0), cb = cell_bytes_for(kMax);
  ASSERT_EQ(cb, 192u);
  auto snapshot = [&] { return peek_bytes(path, cells, kCap * cb); };
  for (std::uint64_t lap = 0; lap < 3; ++lap) {
    SCOPED_TRACE(lap);
    std::vector<Sample> in;
    for (std::uint64_t i = 0; i < kCap; ++i) in.push_back(make_sample(lap * kCap + i, kMax));
    std::size_t pushed = 0;
    ASSERT_EQ(q.try_push_burst(in, pushed), Errc::ok);
    ASSERT_EQ(pushed, kCap);
    const std::vector<std::uint8_t> before = snapshot();
    std::vector<Sample> out(kCap);
    std::size_t popped = 0;
    ASSERT_EQ(q.try_pop_burst(out, popped), Errc::ok);
    ASSERT_EQ(popped, kCap);
    for (std::uint64_t i = 0; i < kCap; ++i) expect_same(out[i], in[i]);
    std::vector<std::uint8_t> after = snapshot();
    for (std::uint64_t i = 0; i < kCap; ++i) {
      const std::uint64_t pos = lap * kCap + i;
      const std::uint64_t turn = peek<std::uint64_t>(path, cells + i * cb + off::kCellTurn);
      EXPECT_EQ(turn, GetParam() == QueueKind::mpmc ? pos + kCap : pos + 1) << "cell " << i;
      std::memcpy(after.data() + i * cb + off::kCellTurn, before.data() + i * cb + off::kCellTurn, 8);
    }
    EXPECT_TRUE(after == before) << "a burst pop changed a cell's bytes beyond its turn";
    Sample none;
    EXPECT_EQ(q.try_pop(none), Errc::would_block) << "a freed cell looks published";
  }
}

TEST_P(QueueKinds, ShutdownRefusesPushesAndDrainsBeforeClosed) {
  auto q = make(8, 2);
  auto peer = Queue::open("k");
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(q.try_push(make_sample(i, 2)), Errc::ok);
  EXPECT_FALSE(q.is_shut());
  EXPECT_FALSE(q.info().closed);
  peer.shutdown();
  EXPECT_TRUE(q.is_shut());
  EXPECT_TRUE(peer.is_shut());
  EXPECT_TRUE(q.info().closed);
  EXPECT_TRUE(Queue::open("k").is_shut()) << "shutdown is a state of the file";
  EXPECT_EQ(q.try_push(make_sample(9, 2)), Errc::shut_down);
  EXPECT_EQ(q.push(make_sample(9, 2), 100ms), Errc::shut_down);
  std::size_t pushed = 5;
  std::vector<Sample> more{make_sample(9, 2)};
  EXPECT_EQ(q.try_push_burst(more, pushed), Errc::shut_down);
  EXPECT_EQ(pushed, 0u);
  EXPECT_EQ(q.size(), 3u);
  Sample out;
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  EXPECT_EQ(out.sequence, 0u);
  ASSERT_EQ(q.pop(out, 1s), Errc::ok);
  EXPECT_EQ(out.sequence, 1u);
  std::vector<Sample> outs(4);
  std::size_t popped = 0;
  EXPECT_EQ(q.try_pop_burst(outs, popped), Errc::ok);
  EXPECT_EQ(popped, 1u);
  EXPECT_EQ(outs[0].sequence, 2u);
  EXPECT_EQ(q.try_pop(out), Errc::shut_down);
  EXPECT_EQ(q.pop(out, 100ms), Errc::shut_down);
  EXPECT_EQ(q.pop(out, kForever), Errc::shut_down);
  EXPECT_EQ(q.try_pop_burst(outs, popped), Errc::shut_down);
  EXPECT_EQ(popped, 0u);
  q.shutdown();  // again: harmless
  EXPECT_TRUE(q.is_shut());
}

TEST_P(QueueKinds, InfoDescribesTheQueue) {
  timespec t0{}, t1{};
  ::clock_gettime(CLOCK_REALTIME, &t0);
  const std::vector<Signal> table{sig(2, "p", SignalType::f64, "W"), sig(0, "q", SignalType::boolean)};
  auto q = Queue::create("info", qspec(GetParam(), WaitMode::polling, 16, 3, table));
  ::clock_gettime(CLOCK_REALTIME, &t1);
  for (std::uint64_t i = 0; i < 5; ++i) ASSERT_EQ(q.try_push(make_sample(i, 1)), Errc::ok);
  Sample out;
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  const QueueInfo i = Queue::open("info").info();
  EXPECT_EQ(i.name, "info");
  EXPECT_EQ(i.path, queue_path("info"));
  EXPECT_EQ(i.version, 2u);
  EXPECT_EQ(i.kind, GetParam());
  EXPECT_EQ(i.wait, WaitMode::polling);
  EXPECT_EQ(i.capacity, 16u);
  EXPECT_EQ(i.max_values, 3u);
  EXPECT_EQ(i.cell_bytes, cell_bytes_for(3));
  EXPECT_EQ(i.file_bytes, header_bytes_for(2) + 16 * cell_bytes_for(3));
  EXPECT_EQ(i.file_bytes, file_size(queue_path("info")));
  EXPECT_EQ(i.pushed, 5u);
  EXPECT_EQ(i.popped, 2u);
  EXPECT_FALSE(i.closed);
  EXPECT_EQ(i.creator_pid, ::getpid());
  // The library stamps with its TSC clock, within tens of ns of clock_gettime (src/os/tsc_clock.hpp).
  constexpr std::int64_t kSlack = 1'000;
  EXPECT_GE(i.creation_time_ns, static_cast<std::int64_t>(t0.tv_sec) * 1'000'000'000 + t0.tv_nsec - kSlack);
  EXPECT_LE(i.creation_time_ns, static_cast<std::int64_t>(t1.tv_sec) * 1'000'000'000 + t1.tv_nsec + kSlack);
  EXPECT_EQ(i.signals, table);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(signal_type_name(SignalType::f64), "f64");
  EXPECT_EQ(signal_type_name(SignalType::i64), "i64");
  EXPECT_EQ(signal_type_name(SignalType::boolean), "bool");
  EXPECT_EQ(signal_type_name(SignalType::c64), "c64");
  EXPECT_EQ(signal_type_name(SignalType::invalid), "invalid");
}

INSTANTIATE_TEST_SUITE_P(Kinds, QueueKinds, ::testing::Values(QueueKind::spsc, QueueKind::mpmc),
                         [](const auto& p) { return std::string(kind_text(p.param)); });

// ===== blocking calls: every kind in every wait mode ===========================================

class QueueWaits : public ::testing::TestWithParam<std::tuple<QueueKind, WaitMode>> {
 protected:
  Queue make(std::uint32_t capacity = 4) {
    return Queue::create("w", qspec(std::get<0>(GetParam()), std::get<1>(GetParam()), capacity, 4));
  }
  TempStreamDir dir_;
};

TEST_P(QueueWaits, PopTimesOutOnAnEmptyQueue) {
  auto q = make();
  Sample out;
  for (auto timeout : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(1ms), std::chrono::nanoseconds(60ms)}) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(q.pop(out, timeout), Errc::timeout);
    EXPECT_GE(seconds_since(t0), std::chrono::duration<double>(timeout).count());
  }
}

TEST_P(QueueWaits, PushTimesOutOnAFullQueue) {
  auto q = make();
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(q.try_push(make_sample(i)), Errc::ok);
  for (auto timeout : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(60ms)}) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(q.push(make_sample(9), timeout), Errc::timeout);
    EXPECT_GE(seconds_since(t0), std::chrono::duration<double>(timeout).count());
  }
  EXPECT_EQ(q.size(), 4u);
  Sample out;
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    EXPECT_EQ(out.sequence, i);
  }
  EXPECT_EQ(q.try_pop(out), Errc::would_block) << "a timed-out push left a sample";
}

TEST_P(QueueWaits, BlockingPopIsWokenByAPushFromAnotherThread) {
  auto q = make();
  std::atomic<bool> started{false}, done{false};
  Status st = Errc::system;
  Sample got;
  std::thread consumer([&] {
    Queue c = Queue::open("w");
    started = true;
    st = c.pop(got, kForever);
    done = true;
  });
  ASSERT_TRUE(test::wait_until([&] { return started.load(); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(done.load()) << "pop returned from an empty queue";
  const Sample s = make_sample(77, 4);
  ASSERT_EQ(q.try_push(s), Errc::ok);
  join_or_abort(consumer, done, "pop(kForever) after a push");
  EXPECT_EQ(st, Errc::ok);
  expect_same(got, s);
  EXPECT_EQ(q.size(), 0u);
}

TEST_P(QueueWaits, BlockingPushIsWokenByAPopFromAnotherThread) {
  auto q = make();
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(q.try_push(make_sample(i)), Errc::ok);
  std::atomic<bool> started{false}, done{false};
  Status st = Errc::system;
  std::thread producer([&] {
    Queue p = Queue::open("w");
    started = true;
    st = p.push(make_sample(4), kForever);
    done = true;
  });
  ASSERT_TRUE(test::wait_until([&] { return started.load(); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(done.load()) << "push returned on a full queue";
  Sample out;
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  EXPECT_EQ(out.sequence, 0u);
  join_or_abort(producer, done, "push(kForever) after a pop");
  EXPECT_EQ(st, Errc::ok);
  for (std::uint64_t i = 1; i <= 4; ++i) {
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    EXPECT_EQ(out.sequence, i);
  }
}

TEST_P(QueueWaits, ShutdownWakesBlockedPoppersWhichReturnClosed) {
  auto q = make();
  const int n = std::get<0>(GetParam()) == QueueKind::mpmc ? 3 : 1;
  std::vector<std::thread> threads;
  std::atomic<int> started{0}, finished{0};
  std::atomic<bool> all_done{false};
  std::vector<Status> st(static_cast<std::size_t>(n), Errc::system);
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      Queue c = Queue::open("w");
      Sample out;
      started.fetch_add(1);
      st[static_cast<std::size_t>(i)] = c.pop(out, kForever);
      if (finished.fetch_add(1) + 1 == n) all_done = true;
    });
  }
  ASSERT_TRUE(test::wait_until([&] { return started.load() == n; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(finished.load(), 0);
  q.shutdown();
  if (!test::wait_until([&] { return all_done.load(); }, 20)) {
    std::fprintf(stderr, "FATAL: pop(kForever) still blocked 20 s after shutdown\n");
    std::abort();
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) EXPECT_EQ(st[static_cast<std::size_t>(i)], Errc::shut_down) << "thread " << i;
}

TEST_P(QueueWaits, ShutdownWakesBlockedPushersAndTheQueueStillDrains) {
  auto q = make();
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(q.try_push(make_sample(i)), Errc::ok);
  std::atomic<bool> started{false}, done{false};
  Status st = Errc::system;
  std::thread producer([&] {
    Queue p = Queue::open("w");
    started = true;
    st = p.push(make_sample(99), kForever);
    done = true;
  });
  ASSERT_TRUE(test::wait_until([&] { return started.load(); }));
  std::this_thread::sleep_for(50ms);
  q.shutdown();
  join_or_abort(producer, done, "push(kForever) after shutdown");
  EXPECT_EQ(st, Errc::shut_down);
  Sample out;
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(q.pop(out, 1s), Errc::ok);
    EXPECT_EQ(out.sequence, i);
  }
  EXPECT_EQ(q.pop(out, 1s), Errc::shut_down);
}

// Two threads hand 20000 samples through a 4-cell queue with blocking calls only.
TEST_P(QueueWaits, BlockingHandOffBetweenThreadsKeepsOrder) {
  auto q = make();
  constexpr std::uint64_t kN = 20000;
  std::atomic<bool> done{false};
  Status bad = Errc::ok;
  std::thread producer([&] {
    Queue p = Queue::open("w");
    for (std::uint64_t i = 0; i < kN && bad.ok(); ++i) {
      const Status st = p.push(make_sample(i, 2), 20s);
      if (!st.ok()) bad = st;
    }
    done = true;
  });
  Sample out;
  std::uint64_t got = 0;
  for (; got < kN; ++got) {
    const Status st = q.pop(out, 20s);
    if (!st.ok() || out.sequence != got || out.values.size() != 2 ||
        out.values[1].f != static_cast<double>(got) + 0.25) {
      ADD_FAILURE() << "at " << got << ": " << st.message() << ", sequence " << out.sequence;
      q.shutdown();  // releases the producer
      break;
    }
  }
  join_or_abort(producer, done, "producer");
  EXPECT_EQ(got, kN);
  EXPECT_EQ(bad, Errc::ok);
  EXPECT_EQ(q.try_pop(out), Errc::would_block);
}

void on_sigusr1(int) {}

// A signal that lands while a futex-sleeping pop waits makes it return interrupted (the
// handler is installed without SA_RESTART). Polling never sleeps, so it has no such case.
TEST_P(QueueWaits, SignalInterruptsASleepingPop) {
  if (std::get<1>(GetParam()) == WaitMode::polling) GTEST_SKIP() << "polling never sleeps on the futex";
  auto q = make();
  struct sigaction sa{}, old{};
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  std::atomic<bool> started{false}, done{false};
  Status st = Errc::system;
  std::thread consumer([&] {
    Queue c = Queue::open("w");
    Sample out;
    started = true;
    st = c.pop(out, 20s);
    done = true;
  });
  ASSERT_TRUE(test::wait_until([&] { return started.load(); }));
  // Signals that arrive outside the futex sleep are simply handled; keep sending until one lands.
  for (int i = 0; i < 2000 && !done.load(); ++i) {
    ::pthread_kill(consumer.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(5ms);
  }
  join_or_abort(consumer, done, "pop while signalled");
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(st, Errc::interrupted);
}

INSTANTIATE_TEST_SUITE_P(
    KindsAndModes, QueueWaits,
    ::testing::Combine(::testing::Values(QueueKind::spsc, QueueKind::mpmc),
                       ::testing::Values(WaitMode::polling, WaitMode::futex, WaitMode::hybrid)),
    [](const auto& p) {
      return std::string(kind_text(std::get<0>(p.param))) + "_" + wait_text(std::get<1>(p.param));
    });

// ===== a peer that died between claiming a cell and finishing with it ==========================
// MPMC producers claim a cell (tail + 1) before they publish it; consumers claim (head + 1)
// before they free it. A peer SIGKILLed in between leaves the index ahead of the cell. Blocking
// calls must still honour their timeout. Simulated by moving the index in the file; the call
// runs in a child so that a hang is reported (the child is killed) instead of hanging the suite.

class QueueDeadPeer : public ::testing::TestWithParam<WaitMode> {
 protected:
  TempStreamDir dir_;
};

TEST_P(QueueDeadPeer, MpmcPopTimesOutWhenAProducerDiedBeforePublishing) {
  auto q = Queue::create("dp", qspec(QueueKind::mpmc, GetParam(), 4, 2));
  Sample out;
  ASSERT_EQ(q.try_push(make_sample(0, 1)), Errc::ok);
  ASSERT_EQ(q.try_pop(out), Errc::ok);
  ASSERT_EQ(peek<std::uint64_t>(q.path(), off::kTail), 1u);
  poke(q.path(), off::kTail, std::uint64_t{2});  // cell 1 claimed, never published
  pid_t child = spawn([] {
    auto c = Queue::open("dp");
    Sample o;
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = c.pop(o, 200ms);
    if (st.code() != Errc::timeout) return 10 - static_cast<int>(st.code());  // 10 + |code|
    if (seconds_since(t0) < 0.2) return 2;
    return 0;
  });
  EXPECT_EQ(test::reap(child, 5), 0) << "-1000: pop(200 ms) still running after 5 s (ignores its timeout)";
}

TEST_P(QueueDeadPeer, MpmcPushTimesOutWhenAConsumerDiedBeforeFreeing) {
  auto q = Queue::create("dc", qspec(QueueKind::mpmc, GetParam(), 4, 2));
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(q.try_push(make_sample(i, 1)), Errc::ok);
  ASSERT_EQ(peek<std::uint64_t>(q.path(), off::kHead), 0u);
  poke(q.path(), off::kHead, std::uint64_t{1});  // cell 0 claimed by a consumer, never freed
  pid_t child = spawn([] {
    auto c = Queue::open("dc");
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = c.push(make_sample(9, 1), 200ms);
    if (st.code() != Errc::timeout) return 10 - static_cast<int>(st.code());
    if (seconds_since(t0) < 0.2) return 2;
    return 0;
  });
  EXPECT_EQ(test::reap(child, 5), 0) << "-1000: push(200 ms) still running after 5 s (ignores its timeout)";
}

// SPSC publishes a cell by its turn and only then records tail. A producer SIGKILLed between the
// two leaves the record one behind the cells; the next producer must carry on after the published
// cell (neither overwrite it under a reader nor wait for it), whether or not it was popped since.
class SpscOrphanCell : public ::testing::TestWithParam<std::tuple<WaitMode, bool>> {
 protected:
  TempStreamDir dir_;
};

TEST_P(SpscOrphanCell, NextProducerCarriesOnAfterACellPublishedByADeadOne) {
  const auto [wait, popped_first] = GetParam();
  auto q = Queue::create("sp", qspec(QueueKind::spsc, wait, 4, 2));
  ASSERT_EQ(q.try_push(make_sample(0, 1)), Errc::ok);
  ASSERT_EQ(peek<std::uint64_t>(q.path(), off::kTail), 1u);
  // Cell 1 filled and published (turn 2) by a producer that died before storing tail = 2.
  const std::uint64_t cell1 = header_bytes_for(0) + cell_bytes_for(2);
  poke(q.path(), cell1 + off::kCellSequence, std::uint64_t{1});
  poke(q.path(), cell1 + off::kCellLength, std::uint32_t{0});
  poke(q.path(), cell1 + off::kCellTurn, std::uint64_t{2});
  ASSERT_EQ(peek<std::uint64_t>(q.path(), off::kTail), 1u);
  Sample out;
  std::uint64_t want = 0;
  if (popped_first)
    for (; want < 2; ++want) {
      ASSERT_EQ(q.pop(out, 1s), Errc::ok) << want;
      EXPECT_EQ(out.sequence, want);
    }
  auto producer = Queue::open("sp");
  ASSERT_EQ(producer.push(make_sample(2, 1), 1s), Errc::ok) << "the new producer stalled";
  EXPECT_EQ(peek<std::uint64_t>(q.path(), off::kTail), 3u);
  for (; want < 3; ++want) {
    ASSERT_EQ(q.pop(out, 1s), Errc::ok) << want;
    EXPECT_EQ(out.sequence, want) << "the published cell was overwritten or skipped";
  }
  EXPECT_EQ(q.try_pop(out), Errc::would_block);
  // The ring is whole: capacity more fit, then it is full, and they come out in order.
  for (std::uint64_t i = 10; i < 14; ++i) ASSERT_EQ(producer.try_push(make_sample(i, 1)), Errc::ok) << i;
  EXPECT_EQ(producer.try_push(make_sample(99, 1)), Errc::would_block);
  for (std::uint64_t i = 10; i < 14; ++i) {
    ASSERT_EQ(q.try_pop(out), Errc::ok);
    EXPECT_EQ(out.sequence, i);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, SpscOrphanCell,
                         ::testing::Combine(::testing::Values(WaitMode::polling, WaitMode::futex, WaitMode::hybrid),
                                            ::testing::Bool()),
                         [](const auto& p) {
                           return std::string(wait_text(std::get<0>(p.param))) +
                                  (std::get<1>(p.param) ? "_popped_first" : "_unpopped");
                         });

INSTANTIATE_TEST_SUITE_P(Modes, QueueDeadPeer,
                         ::testing::Values(WaitMode::polling, WaitMode::futex, WaitMode::hybrid),
                         [](const auto& p) { return std::string(wait_text(p.param)); });

}  // namespace
