// SPDX-License-Identifier: MIT
// Stream API behaviour in one process: naming, open modes, dtypes, keywords, reads, writes,
// waits with timeouts, semaphores, and every kind of bad input giving a clear error.
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <complex>
#include <cstring>
#include <fstream>
#include <numeric>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

using test::spec_of;

/// Runs `f`, expecting it to throw shmlink::Error with `code` and a message containing `text`.
template <class F>
void expect_error(F&& f, Errc code, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected " << strerror(code);
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << "message: " << e.what();
  }
}

TEST(StreamPaths, DirectoryRuleShmlinkDirThenMilkShmDir) {
  test::TempStreamDir dir;
  EXPECT_EQ(stream_directory(), dir.path());
  ::unsetenv("SHMLINK_DIR");
  ::setenv("MILK_SHM_DIR", "/tmp/milkdir/", 1);
  EXPECT_EQ(stream_directory(), "/tmp/milkdir");
  ::unsetenv("MILK_SHM_DIR");
  struct stat st {};
  EXPECT_EQ(stream_directory(), ::stat("/milk/shm", &st) == 0 ? "/milk/shm" : "/dev/shm");
  ::setenv("SHMLINK_DIR", dir.path().c_str(), 1);
}

TEST(StreamPaths, NamesAndDaoStylePaths) {
  test::TempStreamDir dir;
  EXPECT_EQ(stream_path("wfs"), dir.path() + "/wfs.im.shm");
  EXPECT_EQ(stream_path("/tmp/x.im.shm"), "/tmp/x.im.shm");
  EXPECT_EQ(stream_name("/tmp/x.im.shm"), "x");
  EXPECT_EQ(stream_name("dm01"), "dm01");
}

TEST(StreamPaths, NameOver79BytesRejected) {
  test::TempStreamDir dir;
  EXPECT_NO_THROW(stream_path(std::string(79, 'a')));
  expect_error([] { stream_path(std::string(80, 'a')); }, Errc::name_too_long, "at most 79");
  expect_error([] { Stream::create(std::string(80, 'b'), spec_of({4}, Dtype::u8)); }, Errc::name_too_long,
               "80 bytes");
  expect_error([] { stream_path(""); }, Errc::invalid_argument, "empty");
}

TEST(StreamPaths, OneNameRuleRefusesDotsSlashlessControlCharactersAndOtherKindsFiles) {
  test::TempStreamDir dir;
  expect_error([] { stream_path("."); }, Errc::invalid_argument, "no stream name");
  expect_error([] { stream_path(".."); }, Errc::invalid_argument, "no stream name");
  expect_error([] { stream_path("/tmp/.."); }, Errc::invalid_argument, "no stream name");
  expect_error([] { stream_path("a\nb"); }, Errc::invalid_argument, "'a\\nb'");
  expect_error([] { stream_path("x\x1b[2J"); }, Errc::invalid_argument, "'x\\e[2J'");
  // A NUL does not cut the message short: it is shown escaped, with what follows it.
  expect_error([] { stream_path(std::string("a\0bc", 4)); }, Errc::invalid_argument, "'a\\x00bc'");
  expect_error([] { stream_path("/tmp/q.queue.shm"); }, Errc::invalid_argument, ".queue.shm");
  expect_error([] { stream_path("/tmp/" + std::string(200, 'p') + ".im.shm"); }, Errc::name_too_long, "200 bytes");
  // DAO-style paths keep working; a name may hold any other byte (UTF-8 or not).
  EXPECT_EQ(stream_path("/tmp/x.im.shm"), "/tmp/x.im.shm");
  EXPECT_EQ(stream_path("caf\xc3\xa9"), dir.path() + "/caf\xc3\xa9.im.shm");
  expect_error([] { Stream::create("a\nb", spec_of({4}, Dtype::u8)); }, Errc::invalid_argument, "control");
  EXPECT_EQ(escape_name("ok-name_1.2"), "ok-name_1.2");
  EXPECT_EQ(escape_name("a\\b\x1b]0;x\a\n\xff\xc2\x9b\xc3\xa9"), "a\\\\b\\e]0;x\\x07\\n\\xff\\xc2\\x9b\xc3\xa9");
}

TEST(StreamCreate, PermissionsTakeReadAndWriteBitsOnly) {
  test::TempStreamDir dir;
  for (mode_t bad : {mode_t{07777}, mode_t{04600}, mode_t{02660}, mode_t{01666}, mode_t{0700}, mode_t{0644 | 0001}}) {
    StreamSpec s = spec_of({4}, Dtype::u8);
    s.permissions = bad;
    expect_error([&] { Stream::create("perm", s); }, Errc::invalid_argument, "read and write bits only");
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/perm.im.shm"));
  }
  StreamSpec s = spec_of({4}, Dtype::u8);
  s.permissions = 0666;
  EXPECT_NO_THROW(Stream::create("perm", s));
}

TEST(StreamCreate, DaoStyleFullPathIsUsedAsGiven) {
  test::TempStreamDir dir;
  const std::string path = dir.path() + "/sub.im.shm";
  auto s = Stream::create(path, spec_of({8, 8}, Dtype::f32));
  EXPECT_EQ(s.path(), path);
  EXPECT_EQ(s.name(), "sub");
  EXPECT_EQ(Stream::open(path).name(), "sub");
}

TEST(StreamCreate, ExclusiveCreateFailsWhenPresent) {
  test::TempStreamDir dir;
  auto s = Stream::create("x", spec_of({4}, Dtype::u8));
  expect_error([] { Stream::create("x", spec_of({4}, Dtype::u8)); }, Errc::exists, "x.im.shm");
  EXPECT_EQ(dir.entries(), 1);  // no temporary left behind
}

TEST(StreamCreate, PurgeAndCreateReplacesWithNewInodeAndOldMappingSurvives) {
  test::TempStreamDir dir;
  auto old = Stream::create("x", spec_of({64, 64}, Dtype::u16));
  const std::vector<std::uint16_t> frame(64 * 64, 7);
  ASSERT_TRUE(old.write(std::span<const std::uint16_t>(frame)).ok());
  auto fresh = Stream::create("x", spec_of({8, 8}, Dtype::f32), OpenMode::PurgeAndCreate);
  EXPECT_NE(old.inode(), fresh.inode());
  EXPECT_EQ(fresh.shape()[0], 8u);
  // The old handle still reads its own (unlinked) file: no truncation, no SIGBUS.
  std::vector<std::uint16_t> back(64 * 64);
  ASSERT_TRUE(old.read_copy(std::as_writable_bytes(std::span(back))).ok());
  EXPECT_EQ(back, frame);
  EXPECT_EQ(Stream::open("x").dtype(), Dtype::f32);
  EXPECT_EQ(dir.entries(), 1);
}

TEST(StreamCreate, OpenOrCreateOpensExistingAndCreatesMissing) {
  test::TempStreamDir dir;
  auto a = Stream::create("oc", spec_of({4, 2}, Dtype::i32), OpenMode::OpenOrCreate);
  ASSERT_TRUE(a.write(std::span<const std::int32_t>(std::vector<std::int32_t>(8, 3))).ok());
  auto b = Stream::create("oc", spec_of({4, 2}, Dtype::i32), OpenMode::OpenOrCreate);
  EXPECT_EQ(b.inode(), a.inode());
  EXPECT_EQ(b.cnt0(), 1u);
  expect_error([] { Stream::create("oc", spec_of({4, 3}, Dtype::i32), OpenMode::OpenOrCreate); }, Errc::layout,
               "exists as 4x2 int32, asked for 4x3 int32");
}

TEST(StreamCreate, OpenExistingFailsWhenAbsent) {
  test::TempStreamDir dir;
  expect_error([] { Stream::open("missing"); }, Errc::not_found, "missing.im.shm");
  expect_error([] { Stream::create("missing", spec_of({1}, Dtype::u8), OpenMode::OpenExisting); }, Errc::not_found,
               "missing.im.shm");
}

TEST(StreamCreate, BadShapeAndDtypeRejected) {
  test::TempStreamDir dir;
  expect_error([] { Stream::create("b", spec_of({}, Dtype::u8)); }, Errc::invalid_argument, "0 axes");
  expect_error([] { Stream::create("b", spec_of({1, 2, 3, 4}, Dtype::u8)); }, Errc::invalid_argument, "4 axes");
  expect_error([] { Stream::create("b", spec_of({4, 0}, Dtype::u8)); }, Errc::invalid_argument, "axis 1 has length 0");
  expect_error([] { Stream::create("b", spec_of({4}, static_cast<Dtype>(20))); }, Errc::invalid_argument,
               "datatype code 20");
  expect_error([] { Stream::create("b", spec_of({100000, 100000, 2}, Dtype::u8)); }, Errc::invalid_argument, "1e10");
  auto cb = spec_of({4, 4}, Dtype::u8);
  cb.imagetype = kImagetypeCircularBuffer | kImagetypeZaxisTemporal;
  expect_error([&] { Stream::create("b", cb); }, Errc::invalid_argument, "needs 3 axes");
  EXPECT_EQ(dir.entries(), 0);  // (0 semaphores is valid, as in ISIO: tests/process/isio_file_test.cpp)
}

TEST(StreamCreate, PermissionsAppliedRegardlessOfUmask) {
  test::TempStreamDir dir;
  const mode_t old = ::umask(077);
  auto spec = spec_of({4}, Dtype::u8);
  spec.permissions = 0660;
  auto s = Stream::create("perm", spec);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(s.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  auto d = Stream::create("perm2", spec_of({4}, Dtype::u8));
  ASSERT_EQ(::stat(d.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(StreamDtypes, AllThirteenRoundTripWithNamesAndSizes) {
  test::TempStreamDir dir;
  const std::pair<Dtype, std::size_t> all[] = {
      {Dtype::u8, 1}, {Dtype::i8, 1}, {Dtype::u16, 2}, {Dtype::i16, 2}, {Dtype::u32, 4},
      {Dtype::i32, 4}, {Dtype::u64, 8}, {Dtype::i64, 8}, {Dtype::f32, 4}, {Dtype::f64, 8},
      {Dtype::c64, 8}, {Dtype::c128, 16}, {Dtype::f16, 2}};
  for (auto [t, size] : all) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    EXPECT_EQ(dtype_size(t), size);
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
    EXPECT_EQ(parse_dtype(dtype_short_name(t)), t);
    const std::string name = "dt" + std::to_string(static_cast<int>(t));
    auto s = Stream::create(name, spec_of({3, 2}, t));
    std::vector<std::byte> frame(6 * size);
    for (std::size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<std::byte>(i * 7 + 1);
    ASSERT_TRUE(s.write(frame).ok());
    auto r = Stream::open(name);
    EXPECT_EQ(r.dtype(), t);
    EXPECT_EQ(r.frame_bytes(), 6 * size);
    std::vector<std::byte> back(frame.size());
    ASSERT_TRUE(r.read_copy(back).ok());
    EXPECT_EQ(back, frame);
  }
  EXPECT_EQ(parse_dtype("CFLT"), Dtype::c64);
  EXPECT_EQ(parse_dtype("bogus"), std::nullopt);
}

TEST(StreamDtypes, TypedWriteChecksElementType) {
  test::TempStreamDir dir;
  auto s = Stream::create("typed", spec_of({2}, Dtype::c64));
  const std::complex<float> ok[2] = {{1, 2}, {3, 4}};
  EXPECT_TRUE(s.write(std::span<const std::complex<float>>(ok)).ok());
  const double wrong[1] = {1.0};
  EXPECT_EQ(s.write(std::span<const double>(wrong)).code(), Errc::dtype_mismatch);
  EXPECT_EQ(s.view_as<std::complex<float>>()[1], std::complex<float>(3, 4));
  EXPECT_TRUE(s.view_as<float>().empty());
}

TEST(StreamIo, WriteUpdatesCountersTimesAndFrameId) {
  test::TempStreamDir dir;
  auto s = Stream::create("io", spec_of({4, 4, 2}, Dtype::f64));
  EXPECT_EQ(s.cnt0(), 0u);
  std::vector<double> frame(32);
  std::iota(frame.begin(), frame.end(), 0.5);
  ASSERT_TRUE(s.write(std::span<const double>(frame), {.atime_ns = 1234, .frame_id = 42}).ok());
  FrameInfo info;
  std::vector<double> back(32);
  ASSERT_TRUE(s.read_copy(std::as_writable_bytes(std::span(back)), &info).ok());
  EXPECT_EQ(back, frame);
  EXPECT_EQ(info.cnt0, 1u);
  EXPECT_EQ(info.cnt2, 42u);
  EXPECT_EQ(info.atime_ns, 1234);
  EXPECT_GT(info.writetime_ns, 1'600'000'000'000'000'000);
  EXPECT_FALSE(s.write_flag());
  ASSERT_TRUE(s.write(std::span<const double>(frame)).ok());
  EXPECT_EQ(s.cnt0(), 2u);
  EXPECT_EQ(s.atime_ns(), s.writetime_ns());  // no atime given: the write time
}

TEST(StreamIo, ZeroCopyWriteAndViewSeeTheSameBytes) {
  test::TempStreamDir dir;
  auto s = Stream::create("zc", spec_of({16}, Dtype::u8));
  auto r = Stream::open("zc");
  auto dst = s.begin_write();
  ASSERT_EQ(dst.size(), 16u);
  EXPECT_TRUE(s.write_flag());
  std::memset(dst.data(), 0xAB, dst.size());
  ASSERT_TRUE(s.commit_write().ok());
  EXPECT_FALSE(r.write_flag());
  EXPECT_EQ(r.cnt0(), 1u);
  for (auto b : r.view()) EXPECT_EQ(b, std::byte{0xAB});
}

TEST(StreamIo, SizeMismatchAndClosedHandles) {
  test::TempStreamDir dir;
  auto s = Stream::create("sz", spec_of({8}, Dtype::u16));
  std::vector<std::byte> small(15);
  EXPECT_EQ(s.write(small).code(), Errc::size_mismatch);
  EXPECT_EQ(s.read_copy(small).code(), Errc::size_mismatch);
  Stream closed;
  EXPECT_EQ(closed.write(small).code(), Errc::closed);
  EXPECT_EQ(closed.wait_futex(0, 1ms).code(), Errc::closed);
  s.close();
  EXPECT_FALSE(s.valid());
  EXPECT_EQ(s.read_copy(small).code(), Errc::closed);
  EXPECT_THROW((void)s.info(), Error);
}

TEST(StreamIo, ReadCopyReportsWriterDeadMidWrite) {
  test::TempStreamDir dir;
  auto s = Stream::create("dead", spec_of({8}, Dtype::u8));
  auto r = Stream::open("dead");
  (void)s.begin_write();  // a writer that never commits, as if killed mid-write
  std::vector<std::byte> out(8);
  EXPECT_EQ(r.read_copy(out).code(), Errc::writer_active);
}

TEST(StreamWait, FutexAndSpinTimeOutWhenNothingComes) {
  test::TempStreamDir dir;
  auto s = Stream::create("w", spec_of({1}, Dtype::u8));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(s.wait_futex(0, 30ms).code(), Errc::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  EXPECT_EQ(s.wait_spin(0, 5ms).code(), Errc::timeout);
  std::uint64_t c = 0;
  const std::uint8_t one[1] = {1};
  ASSERT_TRUE(s.write(std::span<const std::uint8_t>(one)).ok());
  EXPECT_TRUE(s.wait_futex(0, 0ms, &c).ok());
  EXPECT_EQ(c, 1u);
  EXPECT_TRUE(s.wait_spin(0, 0ms, &c).ok());
}

TEST(StreamSemaphores, PostsCapAtTenAndFlushDrains) {
  test::TempStreamDir dir;
  auto s = Stream::create("sem", spec_of({1}, Dtype::u8));
  const std::uint8_t one[1] = {1};
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(s.write(std::span<const std::uint8_t>(one)).ok());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sem_value(i), kSemaphoreMaxValue);
  EXPECT_EQ(s.info().sem_write_pids[3], ::getpid());
  EXPECT_EQ(s.sem_flush(2), 10);
  EXPECT_EQ(s.sem_value(2), 0);
  EXPECT_EQ(s.sem_wait(2, 10ms).code(), Errc::timeout);
  EXPECT_EQ(s.sem_trywait(2).code(), Errc::would_block);
  EXPECT_TRUE(s.sem_trywait(3).ok());
  EXPECT_EQ(s.sem_wait(10, 1ms).code(), Errc::out_of_range);
  EXPECT_EQ(s.sem_value(-1), -1);
  EXPECT_EQ(s.sem_flush(-1), 9 * 10 - 1);
}

TEST(StreamSemaphores, ClaimGivesEachProcessOneSlot) {
  test::TempStreamDir dir;
  auto s = Stream::create("claim", spec_of({1}, Dtype::u8));
  const int a = s.claim_semaphore(4);
  EXPECT_EQ(a, 4);
  EXPECT_EQ(s.claim_semaphore(7), 4);  // already holds one
  EXPECT_EQ(s.info().sem_read_pids[4], ::getpid());
  s.release_semaphore(4);
  EXPECT_EQ(s.info().sem_read_pids[4], -1);
}

TEST(StreamKeywords, IntDoubleStringRoundTripAndLimits) {
  test::TempStreamDir dir;
  auto spec = spec_of({4}, Dtype::u8);
  spec.keywords = 3;
  auto s = Stream::create("kw", spec);
  s.set_keyword("GAIN", std::int64_t{12}, "camera gain");
  s.set_keyword("EXPTIME", 0.001);
  s.set_keyword("MODE", std::string("closed-loop"));
  s.set_keyword("GAIN", std::int64_t{13});
  auto r = Stream::open("kw");
  auto all = r.keywords();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(std::get<std::int64_t>(*r.keyword("GAIN")), 13);
  EXPECT_EQ(all[0].count, 2u);
  EXPECT_DOUBLE_EQ(std::get<double>(*r.keyword("EXPTIME")), 0.001);
  EXPECT_EQ(std::get<std::string>(*r.keyword("MODE")), "closed-loop");
  EXPECT_EQ(r.keyword("NOPE"), std::nullopt);
  expect_error([&] { s.set_keyword("FOURTH", 1.0); }, Errc::out_of_range, "all 3 keyword slots");
  expect_error([&] { s.set_keyword("A_NAME_OF_16_BYT", 1.0); }, Errc::name_too_long, "1 to 15 bytes");
  expect_error([&] { s.set_keyword("MODE", std::string(17, 'x')); }, Errc::name_too_long, "at most 16");
  // Erasing frees the slot for another keyword.
  EXPECT_TRUE(s.erase_keyword("EXPTIME"));
  EXPECT_FALSE(s.erase_keyword("EXPTIME"));
  EXPECT_EQ(r.keyword("EXPTIME"), std::nullopt);
  EXPECT_EQ(r.keywords().size(), 2u);
  s.set_keyword("FOURTH", 4.0);
  EXPECT_DOUBLE_EQ(std::get<double>(*r.keyword("FOURTH")), 4.0);
}

// ---- bad files -------------------------------------------------------------------------------

class BadFile : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Stream::create("bad", spec_of({16, 16}, Dtype::f32));
    path_ = s.path();
    size_ = s.file_bytes().size();
  }
  void poke(std::size_t offset, const void* bytes, std::size_t n) {
    int fd = ::open(path_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
  }
  test::TempStreamDir dir_;
  std::string path_;
  std::size_t size_ = 0;
};

TEST_F(BadFile, TruncatedFileRejected) {
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(size_ - 8)), 0);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "metadata describes " + std::to_string(size_));
  ASSERT_EQ(::truncate(path_.c_str(), 100), 0);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "smaller than the 384-byte metadata");
  ASSERT_EQ(::truncate(path_.c_str(), 0), 0);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "empty");
}

TEST_F(BadFile, WrongVersionRejectedUnlessAccepted) {
  poke(0, "1.04", 4);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "version '1.04' is not '2.00'");
  EXPECT_NO_THROW(Stream::open("bad", OpenOptions{{"2.00", "1.04"}}));
}

TEST_F(BadFile, SizeMismatchFieldsNamed) {
  const std::uint64_t wrong = 999;
  poke(128, &wrong, 8);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "nelement is 999 but the sizes give 256");
}

TEST_F(BadFile, BadNaxisDatatypeAndMemsizeNamed) {
  const std::uint8_t naxis = 4;
  poke(112, &naxis, 1);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "naxis is 4");
  const std::uint8_t two = 2, dt = 42;
  poke(112, &two, 1);
  poke(136, &dt, 1);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "datatype is 42");
  const std::uint8_t f64 = 10;
  poke(136, &f64, 1);
  expect_error([] { Stream::open("bad"); }, Errc::layout, "imdatamemsize is 1024, expected 2048");
}

TEST_F(BadFile, GarbageFileRejectedNotCrashed) {
  std::vector<char> junk(size_, 'Z');
  poke(0, junk.data(), junk.size());
  expect_error([] { Stream::open("bad"); }, Errc::layout, "bad.im.shm");
}

TEST(StreamFiles, RemoveDeletesTheFile) {
  test::TempStreamDir dir;
  { auto s = Stream::create("rm", spec_of({1}, Dtype::u8)); }
  EXPECT_EQ(dir.entries(), 1);
  Stream::remove("rm");
  EXPECT_EQ(dir.entries(), 0);
  expect_error([] { Stream::remove("rm"); }, Errc::not_found, "rm.im.shm");
}

TEST(StreamFiles, FullFileSystemGivesNoSpaceNotSigbus) {
  // A 1 MiB tmpfs of our own (needs root: CI runs as root; skipped with a reason otherwise).
  char tmpl[] = "/tmp/shmlink-small-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string mnt = tmpl;
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    ::rmdir(mnt.c_str());
    GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  }
  try {
    Stream::create(mnt + "/big.im.shm", spec_of({1024, 1024, 2}, Dtype::u8));
    ADD_FAILURE() << "a 2 MiB stream was created on a 1 MiB tmpfs";
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::no_space) << e.what();
    EXPECT_NE(std::string(e.what()).find(mnt + "/big.im.shm"), std::string::npos) << e.what();
  }
  int left = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(mnt)) ++left;
  EXPECT_EQ(left, 0) << "temporary file left behind";
  auto small = Stream::create(mnt + "/small.im.shm", spec_of({256}, Dtype::u8));
  EXPECT_TRUE(small.valid());
  small.close();
  ::umount(mnt.c_str());
  ::rmdir(mnt.c_str());
}

}  // namespace

namespace {

TEST(StreamOpen, ReadOnlyOpenReadsAndRefusesMutation) {
  using namespace shmlink;
  test::TempStreamDir dir;
  auto w = Stream::create("ro", test::spec_of({4}, Dtype::u16));
  const std::uint16_t f[4] = {1, 2, 3, 4};
  ASSERT_TRUE(w.write(std::span<const std::uint16_t>(f)).ok());
  OpenOptions ro;
  ro.writable = false;
  auto r = Stream::open("ro", ro);
  std::uint16_t back[4] = {};
  ASSERT_TRUE(r.read_copy(std::as_writable_bytes(std::span(back))).ok());
  EXPECT_EQ(back[3], 4);
  EXPECT_EQ(r.write(std::span<const std::uint16_t>(f)).code(), Errc::permission);
  EXPECT_TRUE(r.begin_write().empty());
  EXPECT_EQ(r.sem_wait(0, std::chrono::milliseconds(1)).code(), Errc::permission);
  EXPECT_EQ(r.sem_post(-1).code(), Errc::permission);
  EXPECT_EQ(r.claim_semaphore(), -1);
  EXPECT_THROW(r.set_keyword("X", 1.0), Error);
  // A read-only waiter cannot register for wake-ups, but still sees the next frame.
  std::uint64_t c = 0;
  ASSERT_TRUE(w.write(std::span<const std::uint16_t>(f)).ok());
  EXPECT_TRUE(r.wait_futex(1, std::chrono::milliseconds(100), &c).ok());
  EXPECT_EQ(c, 2u);
  EXPECT_EQ(r.wait_futex(2, std::chrono::milliseconds(25)).code(), Errc::timeout);
}

}  // namespace
