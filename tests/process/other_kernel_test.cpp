// SPDX-License-Identifier: MIT
// Streams and queues placed in memory shared with other kernels (Placement::same_kernel false, an
// ivshmem BAR2 seen by a guest VM and the host; issue 20, docs/design/streams.md "Streams on another
// kernel"): pids and futexes do not cross kernels.
//
// From this kernel, a peer on another kernel is one whose stores arrive and whose wake-ups never
// do. The peer here makes exactly those stores, with no wake-up: ISIO's writer protocol on the raw
// bytes (write = 1, data, cnt0 + 1, write = 0) or a semaphore post's CAS without its FUTEX_WAKE.
// The waiters raise the re-check slices of their futex sleeps (detail::foreign_writer_poll_ns,
// detail::sem_recheck_ns) to 30 s and wait up to 60 s: a wait that sleeps on a futex then outlasts
// the bound the test gives the reader process (kReaderBound, 10 s) and the test fails; a wait
// that polls sees every frame at once. Never a timing assertion.
//
// Semaphore slots: a pid in semReadPID written on another kernel means nothing here (it may be
// dead or alive here, or be this very process's pid number), so such a slot stays its holder's.
#include "stream/isio_layout.hpp"
#include "stream/tuning.hpp"
#include "test_util.hpp"

#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

using test::spec_of;

constexpr std::size_t kPage = 4096;
constexpr std::size_t kOffset = 2 * kPage;  // the stream sits at an offset, as in a region
constexpr int kFrames = 3;
/// How long a reader process may run before the test kills it and fails (a generous bound).
constexpr double kReaderBound = 10;

/// A memfd mapped MAP_SHARED, standing in for the BAR2 both kernels map.
class SharedMemory {
 public:
  explicit SharedMemory(std::size_t size) : size_(size) {
    fd_ = ::memfd_create("shmlink-other-kernel-test", MFD_CLOEXEC);
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0) throw std::runtime_error("memfd_create failed");
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<std::byte*>(p);
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory() {
    ::munmap(base_, size_);
    ::close(fd_);
  }
  [[nodiscard]] std::byte* base() const { return base_; }

  /// A placement of `length` bytes at kOffset of the mapping at `base` (this process's unless
  /// given), used by processes of other kernels when `same_kernel` is false.
  [[nodiscard]] Placement place(std::size_t length, bool same_kernel, std::byte* base = nullptr) const {
    struct stat st {};
    (void)::fstat(fd_, &st);
    Placement p;
    p.bytes = {(base != nullptr ? base : base_) + kOffset, length};
    p.name = "wfs";
    p.path = "bar2:test:wfs";
    p.dev = static_cast<std::uint64_t>(st.st_dev);
    p.ino = static_cast<std::uint64_t>(st.st_ino);
    p.offset = kOffset;
    p.fd = fd_;
    p.same_kernel = same_kernel;
    return p;
  }
  /// A second mapping of the memory (another process's view, at another address).
  [[nodiscard]] std::byte* map_again() const {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
  }

 private:
  int fd_ = -1;
  std::size_t size_ = 0;
  std::byte* base_ = nullptr;
};

/// The stream's chunks, as a peer on another kernel finds them (reference section 5).
struct RawStream {
  std::byte* base;
  isio::Layout layout;

  RawStream(std::byte* stream_base, const StreamSpec& spec)
      : base(stream_base),
        layout(isio::compute_layout({.imdatamemsize = frame_bytes(spec), .nbkw = spec.keywords, .nbsem = spec.semaphores})) {}
  static std::uint64_t frame_bytes(const StreamSpec& spec) {
    std::uint64_t n = 1;
    for (std::uint32_t d : spec.shape) n *= d;
    return n * 4;  // u32 streams only
  }
  isio::Metadata* md() const { return reinterpret_cast<isio::Metadata*>(base); }
  std::int32_t* read_pid() const { return reinterpret_cast<std::int32_t*>(base + layout.sem_read_pid); }
  std::uint64_t* sem_word(int i) const {
    return reinterpret_cast<std::uint64_t*>(base + layout.semaphores + 32 * static_cast<std::size_t>(i));
  }

  /// ISIO's writer protocol with no wake-up of any kind: every element of frame k is k.
  void write_frame(std::uint32_t elements) const {
    std::atomic_ref<std::uint8_t>(md()->write).store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    const std::uint64_t next = std::atomic_ref<std::uint64_t>(md()->cnt0).load(std::memory_order_relaxed) + 1;
    auto* data = reinterpret_cast<std::uint32_t*>(base + layout.data);
    for (std::uint32_t e = 0; e < elements; ++e) data[e] = static_cast<std::uint32_t>(next);
    std::atomic_ref<std::uint64_t>(md()->cnt0).fetch_add(1, std::memory_order_release);
    std::atomic_ref<std::uint8_t>(md()->write).store(0, std::memory_order_release);
  }
  /// A semaphore post's compare-and-swap (value + 1, release), without the FUTEX_WAKE that would
  /// stay in the poster's kernel.
  void post_without_wake(int slot) const {
    std::atomic_ref<std::uint64_t>(*sem_word(slot)).fetch_add(1, std::memory_order_release);
  }
};

/// A u32 stream of `spec` at kOffset of fresh shared memory, created with same_kernel false.
struct SharedStream {
  StreamSpec spec;
  std::size_t need;
  SharedMemory mem;
  Stream created;
  RawStream raw;

  explicit SharedStream(const StreamSpec& s)
      : spec(s),
        need(Stream::bytes_for(s)),
        mem(kOffset + need + kPage),
        created(Stream::create_in(mem.place(need, false), s)),
        raw(mem.base() + kOffset, s) {}
  /// The stream through a mapping of its own (in a forked child: another process's view).
  /// @throws std::runtime_error when mmap fails.
  [[nodiscard]] Stream open_elsewhere() const {
    std::byte* mine = mem.map_again();
    if (mine == nullptr) throw std::runtime_error("mmap failed");
    return Stream::open_in(mem.place(need, false, mine));
  }
};

/// A pid that names no process here (a child that exited and was reaped).
pid_t gone_pid() {
  const pid_t p = test::spawn([] { return 0; });
  test::reap(p);
  return p;
}

struct Handshake {
  std::atomic<int> waiting{0};  ///< the reader is about to wait for frame `waiting`
  std::atomic<int> slot{-1};    ///< the slot the reader waits on
  test::ChildReport report;
};

/// The other kernel's side: for each of kFrames frames, once the reader process says it waits
/// for it (and had time to fall asleep: were it not asleep yet, it would only see it sooner),
/// calls `act(k)`; then reaps the reader, which must succeed within kReaderBound.
void feed(Handshake& hs, pid_t reader, const std::function<void()>& act) {
  ASSERT_GT(reader, 0);
  for (int k = 1; k <= kFrames; ++k) {
    if (!test::wait_until([&] { return hs.waiting.load() == k || !test::still_running(reader); }, kReaderBound)) {
      ADD_FAILURE() << "the reader never waited for frame " << k;  // stuck in an earlier wait: reaped below
      break;
    }
    std::this_thread::sleep_for(50ms);
    act();
  }
  EXPECT_EQ(test::reap(reader, kReaderBound), 0) << hs.report.describe();
}

// A reader on the host waits with wait_futex on a stream in memory another kernel shares; the
// writer's frames arrive without any wake-up: the reader polls and gets every frame, in order.
TEST(StreamOnAnotherKernel, WaitFutexPollsAndSeesEveryFrameOfAWriterWhoseWakeUpsNeverArrive) {
  const SharedStream shared(spec_of({16}, Dtype::u32));
  test::Shared<Handshake> hs;
  const pid_t reader = test::spawn([&]() -> int {
    auto* rep = &hs->report;
    detail::foreign_writer_poll_ns().store(30'000'000'000);  // only polling can see a frame in time
    const Stream r = shared.open_elsewhere();
    std::uint64_t last = 0;
    std::vector<std::uint32_t> frame(r.frame_elements());
    for (int k = 1; k <= kFrames; ++k) {
      hs->waiting.store(k);
      std::uint64_t c = 0;
      const Status st = r.wait_futex(last, 60s, &c, 0ns);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(rep, c == static_cast<std::uint64_t>(k), c);
      SHMLINK_CHILD_CHECK(rep, r.read_copy(std::as_writable_bytes(std::span(frame))).ok(), k);
      SHMLINK_CHILD_CHECK(rep, frame.front() == static_cast<std::uint32_t>(k), frame.front());
      last = c;
    }
    // Waiting claimed no semaphore slot: posts from another kernel would not wake it either.
    for (std::int32_t pid : r.info().sem_read_pids) SHMLINK_CHILD_CHECK(rep, pid == 0 || pid == -1, pid);
    return 0;
  });
  feed(*hs, reader, [&] { shared.raw.write_frame(16); });
}

// sem_wait on a stream shared with another kernel polls the slot's value: a post made there (its
// CAS arrives, its wake-up does not) ends the wait.
TEST(StreamOnAnotherKernel, SemWaitPollsTheSlotAndTakesPostsWhoseWakeUpsNeverArrive) {
  const SharedStream shared(spec_of({4}, Dtype::u32));
  test::Shared<Handshake> hs;
  const pid_t reader = test::spawn([&]() -> int {
    auto* rep = &hs->report;
    detail::sem_recheck_ns().store(30'000'000'000);  // only polling can see a post in time
    Stream r = shared.open_elsewhere();
    const int slot = r.claim_semaphore();
    SHMLINK_CHILD_CHECK(rep, slot >= 0, slot);
    hs->slot.store(slot);
    for (int k = 1; k <= kFrames; ++k) {
      hs->waiting.store(k);
      const Status st = r.sem_wait(slot, 60s);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(rep, r.sem_value(slot) == 0, r.sem_value(slot));
    }
    SHMLINK_CHILD_CHECK(rep, r.sem_wait(slot, 20ms).code() == Errc::timeout, 0);  // nothing more was posted
    r.release_semaphore(slot);
    return 0;
  });
  feed(*hs, reader, [&] { shared.raw.post_without_wake(hs->slot.load()); });
}

// A slot whose semReadPID names a process that does not exist here may be a live reader on
// another kernel: with same_kernel false nobody takes it over (claim, reclaim, wait_futex); over
// the same bytes with same_kernel true, the dead holder's slot is taken as before.
TEST(StreamOnAnotherKernel, ASlotHeldByAPidUnknownHereIsNotTakenOver) {
  SharedStream shared(spec_of({4}, Dtype::u32));
  Stream& s = shared.created;
  const RawStream& raw = shared.raw;
  const int slots = shared.spec.semaphores;
  const pid_t guest = gone_pid();
  for (int i = 0; i < slots; ++i) raw.read_pid()[i] = guest;  // every slot: a guest's reader
  EXPECT_EQ(s.claim_semaphore(0), -1);
  EXPECT_EQ(s.reclaim_semaphores(true), 0);
  EXPECT_EQ(s.reclaim_semaphores(), 0);
  EXPECT_EQ(s.wait_futex(0, 20ms, nullptr, 0ns).code(), Errc::timeout);
  for (int i = 0; i < slots; ++i) EXPECT_EQ(raw.read_pid()[i], guest) << "slot " << i << " was taken";
  // The same bytes used by processes of this kernel only: a dead reader's slot is free.
  Stream local = Stream::open_in(shared.mem.place(shared.need, true));
  EXPECT_EQ(local.reclaim_semaphores(true), slots);
  EXPECT_EQ(local.claim_semaphore(3), 3);
  EXPECT_EQ(raw.read_pid()[3], ::getpid());
}

// A pid number written on another kernel can equal this process's pid: such a slot is not this
// process's (claim_semaphore does not return it, release_semaphore does not free it); a slot this
// process claimed itself is still recognised and given back.
TEST(StreamOnAnotherKernel, OurPidNumberInASlotClaimedOnAnotherKernelIsNotOurs) {
  SharedStream shared(spec_of({4}, Dtype::u32));
  Stream& s = shared.created;
  const RawStream& raw = shared.raw;
  raw.read_pid()[2] = ::getpid();  // a guest's reader whose pid number is ours
  const int mine = s.claim_semaphore(5);
  EXPECT_EQ(mine, 5);
  EXPECT_EQ(s.claim_semaphore(), 5) << "our own claim was not recognised";
  s.release_semaphore(2);
  EXPECT_EQ(raw.read_pid()[2], ::getpid()) << "the guest's slot was released";
  s.release_semaphore(5);
  EXPECT_EQ(raw.read_pid()[5], -1);
  EXPECT_NE(s.claim_semaphore(), 2) << "the guest's slot was taken as ours";
}

/// Voluntary context switches of the calling thread so far.
long voluntary_switches() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_nvcsw;
}

// A queue in memory shared with other kernels polls (futex wake-ups do not cross kernels), but a
// long wait does not burn a core: after a short spin it backs off into sleeps, which show as
// voluntary context switches (a pure spin makes none). Samples pushed meanwhile arrive.
TEST(QueueOnAnotherKernel, ALongPollingWaitSleepsBetweenLooks) {
  QueueSpec spec;
  spec.capacity = 8;
  spec.max_values = 2;
  const std::size_t need = Queue::bytes_for(spec);
  SharedMemory mem(kOffset + need + kPage);
  Queue q = Queue::create_in(mem.place(need, false), spec);
  ASSERT_EQ(q.wait_mode(), WaitMode::polling);
  Sample s;
  const long before = voluntary_switches();
  EXPECT_EQ(q.pop(s, 100ms).code(), Errc::timeout);
  EXPECT_GT(voluntary_switches(), before) << "the wait spun for 100 ms without sleeping";
  // A pusher in another process: its sample is found by the polling pop.
  const pid_t pusher = test::spawn([&]() -> int {
    std::byte* mine = mem.map_again();
    if (mine == nullptr) return 2;
    Queue p = Queue::open_in(mem.place(need, false, mine));
    Sample out;
    out.values.assign(2, SignalValue::of(4.5));
    return p.push(out, 5s).ok() ? 0 : 3;
  });
  ASSERT_GT(pusher, 0);
  EXPECT_EQ(q.pop(s, 5s).code(), Errc::ok);
  EXPECT_EQ(s.values.size(), 2u);
  EXPECT_EQ(test::reap(pusher), 0);
}

}  // namespace
