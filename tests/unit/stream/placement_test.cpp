// SPDX-License-Identifier: MIT
// Streams placed in memory the caller provides (Stream::bytes_for / create_in / open_in, issue
// 20): a memfd span at a non-zero offset shared by a writer and a reader in two processes, spans
// too small for the layout their metadata describes, hostile metadata next to a guard page,
// replaced() through Placement::still_current, the wait-slot registry keyed by offset, and the
// partial-write companion kept through Placement::sibling instead of a file.
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

using test::spec_of;

constexpr std::size_t kPage = 4096;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

/// A memfd of `size` bytes mapped MAP_SHARED in full; unmapped and closed at the end.
class Memfd {
 public:
  explicit Memfd(std::size_t size) : size_(size) {
    fd_ = ::memfd_create("shmlink-placement-test", MFD_CLOEXEC);
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0) throw std::runtime_error("memfd_create failed");
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<std::byte*>(p);
  }
  Memfd(const Memfd&) = delete;
  Memfd& operator=(const Memfd&) = delete;
  ~Memfd() {
    ::munmap(base_, size_);
    ::close(fd_);
  }
  [[nodiscard]] std::byte* base() const { return base_; }
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] std::size_t size() const { return size_; }

  /// A placement of `length` bytes at `offset`, named `name`, identified by the memfd's
  /// (dev, ino) and the offset, as a region would describe one of its entries.
  [[nodiscard]] Placement place(std::size_t offset, std::size_t length, const std::string& name) const {
    return place_at(base_, offset, length, name);
  }
  /// The same over another mapping `base` of this memfd (another process's view).
  [[nodiscard]] Placement place_at(std::byte* base, std::size_t offset, std::size_t length,
                                   const std::string& name) const {
    struct stat st {};
    (void)::fstat(fd_, &st);
    Placement p;
    p.bytes = {base + offset, length};
    p.name = name;
    p.path = "memfd:test:" + name;
    p.dev = static_cast<std::uint64_t>(st.st_dev);
    p.ino = static_cast<std::uint64_t>(st.st_ino);
    p.offset = offset;
    p.fd = fd_;
    return p;
  }

 private:
  int fd_ = -1;
  std::size_t size_ = 0;
  std::byte* base_ = nullptr;
};

bool all_zero(const std::byte* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != std::byte{0}) return false;
  return true;
}

template <class F>
Error thrown_by(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no shmlink::Error was thrown";
  return Error(Errc::ok, "");
}

TEST(StreamPlacement, BytesForIsTheFileSizeOfTheSameStreamAsAFile) {
  test::TempStreamDir dir;
  std::vector<StreamSpec> specs;
  specs.push_back(spec_of({7, 3}, Dtype::u16));
  StreamSpec rolling = spec_of({5}, Dtype::f32);
  rolling.depth = 4;
  specs.push_back(rolling);
  StreamSpec many = spec_of({9, 2, 2}, Dtype::c128);
  many.keywords = 3;
  many.semaphores = 0;
  many.circular_buffer = 2;
  specs.push_back(many);
  int k = 0;
  for (const StreamSpec& spec : specs) {
    const std::string name = "sized" + std::to_string(k++);
    const Stream s = Stream::create(name, spec);
    struct stat st {};
    ASSERT_EQ(::stat(s.path().c_str(), &st), 0);
    EXPECT_EQ(Stream::bytes_for(spec), static_cast<std::size_t>(st.st_size)) << name;
  }
  EXPECT_EQ(thrown_by([] { (void)Stream::bytes_for(spec_of({}, Dtype::u8)); }).errc(), Errc::invalid_argument);
}

// The bytes create_in lays out are the bytes create writes to a file (apart from the fields that
// differ by nature: creation times, creator pid, inode), and nothing outside the stream's
// bytes_for() bytes is touched.
TEST(StreamPlacement, CreateInLaysOutTheFileBytesAndTouchesNothingElse) {
  test::TempStreamDir dir;
  StreamSpec spec = spec_of({6, 4}, Dtype::i32);
  spec.keywords = 2;
  const std::size_t need = Stream::bytes_for(spec);
  Memfd mem(2 * kPage + round_up(need, kPage) + kPage);
  Placement where = mem.place(2 * kPage, need + kPage, "placed");
  Stream placed = Stream::create_in(where, spec);
  Stream file = Stream::create("placed", spec);
  ASSERT_EQ(placed.file_bytes().size(), need);
  ASSERT_EQ(file.file_bytes().size(), need);
  std::vector<std::byte> a(placed.file_bytes().begin(), placed.file_bytes().end());
  std::vector<std::byte> b(file.file_bytes().begin(), file.file_bytes().end());
  // creationtime (16 bytes at 152), lastaccesstime (16 at 168), creatorPID (4 at 216), inode (8 at 232):
  for (auto [off, len] : {std::pair{152, 16}, {168, 16}, {216, 4}, {232, 8}}) {
    std::memset(a.data() + off, 0, static_cast<std::size_t>(len));
    std::memset(b.data() + off, 0, static_cast<std::size_t>(len));
  }
  EXPECT_TRUE(a == b) << "create_in laid out other bytes than create";
  EXPECT_EQ(placed.inode(), where.ino);
  EXPECT_EQ(placed.name(), "placed");
  EXPECT_EQ(placed.path(), "memfd:test:placed");
  EXPECT_TRUE(all_zero(mem.base(), 2 * kPage)) << "bytes before the placement were written";
  EXPECT_TRUE(all_zero(mem.base() + 2 * kPage + need, mem.size() - 2 * kPage - need))
      << "bytes after bytes_for() were written";
  EXPECT_FALSE(placed.replaced());
  EXPECT_TRUE(placed.file_intact());
}

// A writer and a reader in two processes over one memfd span at a non-zero offset, each with its
// own mapping (different addresses): every frame arrives, in order, with its content.
TEST(StreamPlacement, AWriterAndAReaderInTwoProcessesShareAStreamInAMemfdAtAnOffset) {
  StreamSpec spec = spec_of({32, 8}, Dtype::u32);
  spec.depth = 8;
  const std::size_t need = Stream::bytes_for(spec);
  constexpr std::size_t kOffset = 3 * kPage;
  Memfd mem(kOffset + round_up(need, kPage));
  Stream writer = Stream::create_in(mem.place(kOffset, need, "wfs"), spec);
  constexpr int kFrames = 6;
  struct Flags {
    std::atomic<int> ready{0};
    test::ChildReport report;
  };
  test::Shared<Flags> flags;
  const pid_t reader = test::spawn([&]() -> int {
    auto* rep = &flags->report;
    // A mapping of its own, at another address than the parent's.
    void* p = ::mmap(nullptr, mem.size(), PROT_READ | PROT_WRITE, MAP_SHARED, mem.fd(), 0);
    SHMLINK_CHILD_CHECK(rep, p != MAP_FAILED, errno);
    Stream r = Stream::open_in(mem.place_at(static_cast<std::byte*>(p), kOffset, need, "wfs"));
    SHMLINK_CHILD_CHECK(rep, r.depth() == 8, r.depth());
    SHMLINK_CHILD_CHECK(rep, r.path() == "memfd:test:wfs", 0);
    flags->ready.store(1);
    std::vector<std::uint32_t> frame(r.frame_elements());
    for (int i = 1; i <= kFrames; ++i) {
      FrameInfo info;
      std::uint64_t skipped = 0;
      const Status st = r.read_next(std::as_writable_bytes(std::span(frame)), &info, &skipped, 10s);
      SHMLINK_CHILD_CHECK(rep, st.ok(), static_cast<int>(st.code()));
      SHMLINK_CHILD_CHECK(rep, info.cnt0 == static_cast<std::uint64_t>(i), info.cnt0);
      for (std::size_t e = 0; e < frame.size(); ++e)
        SHMLINK_CHILD_CHECK(rep, frame[e] == static_cast<std::uint32_t>(1000 * i) + e, frame[e]);
    }
    return 0;
  });
  ASSERT_GT(reader, 0);
  ASSERT_TRUE(test::wait_until([&] { return flags->ready.load() == 1 || !test::still_running(reader); }));
  std::vector<std::uint32_t> frame(writer.frame_elements());
  for (int i = 1; i <= kFrames; ++i) {
    for (std::size_t e = 0; e < frame.size(); ++e) frame[e] = static_cast<std::uint32_t>(1000 * i + e);
    ASSERT_TRUE(writer.write(std::span<const std::uint32_t>(frame)).ok());
  }
  EXPECT_EQ(test::reap(reader), 0) << flags->report.describe();
}

TEST(StreamPlacement, OpenInASpanTooSmallForItsLayoutIsALayoutErrorNamingThePath) {
  const StreamSpec spec = spec_of({100}, Dtype::f64);
  const std::size_t need = Stream::bytes_for(spec);
  Memfd mem(round_up(need, kPage) + kPage);
  (void)Stream::create_in(mem.place(0, need, "small"), spec);
  const Error e = thrown_by([&] { (void)Stream::open_in(mem.place(0, need - 1, "small")); });
  EXPECT_EQ(e.errc(), Errc::layout) << e.what();
  EXPECT_NE(std::string(e.what()).find("memfd:test:small"), std::string::npos) << e.what();
  const Error tiny = thrown_by([&] { (void)Stream::open_in(mem.place(0, 100, "small")); });
  EXPECT_EQ(tiny.errc(), Errc::layout) << tiny.what();
  // A larger span is fine (a region rounds its entries up); the file path keeps requiring ==.
  EXPECT_EQ(Stream::open_in(mem.place(0, need + kPage, "small")).frame_bytes(), 800u);
  // create_in refuses a span smaller than bytes_for(), naming the path.
  Memfd other(round_up(need, kPage));
  const Error c = thrown_by([&] { (void)Stream::create_in(other.place(0, need - 8, "cramped"), spec); });
  EXPECT_EQ(c.errc(), Errc::invalid_argument) << c.what();
  EXPECT_NE(std::string(c.what()).find("memfd:test:cramped"), std::string::npos) << c.what();
  EXPECT_TRUE(all_zero(other.base(), other.size())) << "a refused create_in wrote bytes";
}

// The span ends at a PROT_NONE page: any read or write past it would kill the test. Metadata a
// peer scribbled to describe more than the span never leads there.
TEST(StreamPlacement, HostileMetadataNeverReachesOutsideTheSpan) {
  const StreamSpec spec = spec_of({16, 16}, Dtype::u16);
  const std::size_t need = Stream::bytes_for(spec);
  const std::size_t readable = round_up(need + 64, kPage);
  Memfd mem(readable + kPage);
  ASSERT_EQ(::mprotect(mem.base() + readable, kPage, PROT_NONE), 0);
  const std::size_t offset = (readable - need) / 64 * 64;  // the span ends less than 64 bytes before the guard
  const Placement where = mem.place(offset, readable - offset, "hostile");
  auto* md = mem.base() + offset;
  struct Poke {
    std::size_t off;
    std::vector<std::uint8_t> bytes;
  };
  auto u32 = [](std::uint32_t v) {
    std::vector<std::uint8_t> b(4);
    std::memcpy(b.data(), &v, 4);
    return b;
  };
  auto u64 = [](std::uint64_t v) {
    std::vector<std::uint8_t> b(8);
    std::memcpy(b.data(), &v, 8);
    return b;
  };
  // Field offsets (reference section 3): size[3] at 116, nelement 128, imdatamemsize 312,
  // sem (u16) 258, NBkw (u16) 290.
  const std::vector<std::vector<Poke>> scribbles = {
      {{116, u32(16)}, {120, u32(17)}, {128, u64(16 * 17)}, {312, u64(16 * 17 * 2)}},  // one more row
      {{290, {0xff, 0x00}}},                                                          // 255 keywords
      {{258, {0x40, 0x00}}},                                                          // 64 semaphores
  };
  for (std::size_t k = 0; k < scribbles.size(); ++k) {
    std::memset(mem.base() + offset, 0, readable - offset);
    (void)Stream::create_in(where, spec);
    for (const Poke& p : scribbles[k]) std::memcpy(md + p.off, p.bytes.data(), p.bytes.size());
    const Error e = thrown_by([&] { (void)Stream::open_in(where); });
    EXPECT_EQ(e.errc(), Errc::layout) << "scribble " << k << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find("memfd:test:hostile"), std::string::npos) << e.what();
  }
}

TEST(StreamPlacement, ReplacedIsTrueOnceStillCurrentSaysSo) {
  const StreamSpec spec = spec_of({4}, Dtype::u8);
  Memfd mem(kPage * 2);
  Placement where = mem.place(0, Stream::bytes_for(spec), "entry");
  auto current = std::make_shared<std::atomic<bool>>(true);
  where.still_current = [current]() noexcept { return current->load(); };
  Stream s = Stream::create_in(where, spec);
  Stream r = Stream::open_in(where);
  EXPECT_FALSE(s.replaced());
  EXPECT_FALSE(r.replaced());
  current->store(false);
  EXPECT_TRUE(s.replaced());
  EXPECT_TRUE(r.replaced());
  // A waiter notices it too (after a poll slice with cnt0 unchanged).
  EXPECT_EQ(r.wait_futex(r.cnt0(), 2s, nullptr, 0ns).code(), Errc::replaced);
}

// Two streams in one backing differ by their offset: the process-wide registry of wait_futex's
// semaphore slots must not mistake one's slot for the other's (keyed by file alone, a slot held
// for waiting on A made release_semaphore() on B keep B's slot claimed for ever).
TEST(StreamPlacement, StreamsAtTwoOffsetsOfOneBackingKeepTheirWaitSlotsApart) {
  const StreamSpec spec = spec_of({8}, Dtype::u8);  // 10 semaphores
  const std::size_t need = round_up(Stream::bytes_for(spec), kPage);
  Memfd mem(2 * need);
  Stream a = Stream::create_in(mem.place(0, need, "a"), spec);
  Stream b = Stream::create_in(mem.place(need, need, "b"), spec);
  // Nothing written yet: the wait claims a slot (the last one) and keeps it until a's close.
  EXPECT_EQ(a.wait_futex(0, 20ms, nullptr, 0ns).code(), Errc::timeout);
  ASSERT_EQ(a.info().sem_read_pids[9], ::getpid());
  ASSERT_EQ(b.claim_semaphore(9), 9);
  b.release_semaphore(9);
  EXPECT_EQ(b.info().sem_read_pids[9], -1) << "b's slot 9 was taken for a's wait slot";
  EXPECT_EQ(b.claim_semaphore(9), 9);
  EXPECT_EQ(b.claim_semaphore(), 9) << "b's own claim was not recognised as ours";
}

/// A tiny container of named placements in one memfd (what a region's directory does), for the
/// partial-write companion: first fit by bumping, entries visible once published.
struct Container {
  Memfd mem{64 * kPage};
  std::size_t next = 0;
  struct Entry {
    std::size_t offset, size;
    bool ready;
  };
  std::map<std::string, Entry> entries;

  Placement entry(const std::string& name) {
    const Entry& e = entries.at(name);
    Placement p = mem.place(e.offset, e.size, name);
    p.path = "container:" + name;
    p.sibling = [this](const std::string& n, std::size_t create_bytes) { return sibling(n, create_bytes); };
    return p;
  }
  std::optional<Placement> sibling(const std::string& name, std::size_t create_bytes) {
    if (auto it = entries.find(name); it != entries.end()) {
      if (it->second.ready) return entry(name);
      return std::nullopt;
    }
    if (create_bytes == 0) return std::nullopt;
    reserve(name, create_bytes);
    Placement p = entry(name);
    p.publish = [this, name] { entries.at(name).ready = true; };
    return p;
  }
  void reserve(const std::string& name, std::size_t bytes) {
    const std::size_t size = round_up(bytes, kPage);
    if (next + size > mem.size()) throw Error(Errc::no_space, "container is full");
    entries[name] = {next, size, false};
    next += size;
  }
};

TEST(StreamPlacement, PartialWritesKeepTheirCompanionAsASiblingAndNoFile) {
  test::TempStreamDir dir;
  Container box;
  StreamSpec spec = spec_of({8}, Dtype::u16);
  spec.depth = 3;
  box.reserve("frames", Stream::bytes_for(spec));
  box.entries.at("frames").ready = true;
  Stream w = Stream::create_in(box.entry("frames"), spec);
  const std::vector<std::uint16_t> half(4, 7);
  ASSERT_TRUE(w.write_packet(0, 2, 0, std::span<const std::uint16_t>(half)).ok());
  ASSERT_EQ(w.finalize_packets().code(), Errc::incomplete);
  ASSERT_TRUE(box.entries.count("frames_pkt") == 1 && box.entries.at("frames_pkt").ready)
      << "the companion was not made a published sibling";
  EXPECT_EQ(dir.entries(), 0) << "a placed stream wrote a companion file";
  Stream r = Stream::open_in(box.entry("frames"));
  const auto ps = r.packet_status();
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->cnt0, 1u);
  EXPECT_EQ(ps->total, 2u);
  EXPECT_EQ(ps->missing, std::vector<std::uint32_t>{1});
  // A second writer handle reuses the sibling, cleared: the old frame's record is gone.
  Stream w2 = Stream::open_in(box.entry("frames"));
  ASSERT_TRUE(w2.write_packet(1, 2, 4, std::span<const std::uint16_t>(half)).ok());
  ASSERT_TRUE(w2.write_packet(0, 2, 0, std::span<const std::uint16_t>(half)).ok());
  ASSERT_TRUE(w2.finalize_packets().ok());
  const auto ps2 = r.packet_status();
  ASSERT_TRUE(ps2.has_value());
  EXPECT_EQ(ps2->cnt0, 2u);
  EXPECT_TRUE(ps2->complete());
  EXPECT_FALSE(r.packet_status(1).has_value()) << "a cleared record was still believed";
  // A placement without siblings has nowhere to keep it.
  Memfd bare(kPage * 4);
  Stream lone = Stream::create_in(bare.place(0, Stream::bytes_for(spec), "lone"), spec);
  EXPECT_EQ(lone.write_packet(0, 2, 0, std::span<const std::uint16_t>(half)).code(), Errc::invalid_argument);
}

}  // namespace
