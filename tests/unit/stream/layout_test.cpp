// SPDX-License-Identifier: MIT
// ImageStreamIO 2.00 byte layout: the sizing rules against the reference's worked examples and
// every metadata field of a file created by shmlink, read back at its raw byte offset.
#include "stream/isio_layout.hpp"
#include "test_util.hpp"

#include <shmlink/stream.hpp>

#include <semaphore.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace {

using shmlink::isio::compute_layout;

template <class T>
T at(std::span<const std::byte> file, std::size_t offset) {
  T v;
  std::memcpy(&v, file.data() + offset, sizeof(T));
  return v;
}

TEST(IsioLayout, Example64x64FloatIs17920Bytes) {  // reference 5.1, verified against ISIO 2.00
  auto l = compute_layout({.imdatamemsize = 64 * 64 * 4});
  EXPECT_EQ(l.data, 384u);
  EXPECT_EQ(l.keywords, 16768u);
  EXPECT_EQ(l.semaphores, 16768u);
  EXPECT_EQ(l.semlog, 17088u);
  EXPECT_EQ(l.sem_read_pid, 17120u);
  EXPECT_EQ(l.sem_write_pid, 17160u);
  EXPECT_EQ(l.semctrl, 17200u);
  EXPECT_EQ(l.semstatus, 17240u);
  EXPECT_EQ(l.proctrace, 17280u);
  EXPECT_EQ(l.file_size, 17920u);
}

TEST(IsioLayout, Example5x3Uint8ThreeSemaphoresOneKeywordIs1360Bytes) {  // reference 5.2 a
  auto l = compute_layout({.imdatamemsize = 15, .nbkw = 1, .nbsem = 3});
  EXPECT_EQ(l.keywords, 400u);
  EXPECT_EQ(l.semaphores, 528u);
  EXPECT_EQ(l.semlog, 624u);
  EXPECT_EQ(l.sem_read_pid, 656u);
  EXPECT_EQ(l.sem_write_pid, 672u);
  EXPECT_EQ(l.semctrl, 688u);
  EXPECT_EQ(l.semstatus, 704u);
  EXPECT_EQ(l.proctrace, 720u);
  EXPECT_EQ(l.file_size, 1360u);
}

TEST(IsioLayout, TemporalCubeHasTimeAndCounterArrays) {  // reference 5.2 b
  auto l = compute_layout({.imdatamemsize = 32 * 32 * 8 * 2, .nbkw = 4, .size2 = 8, .imagetype = 0x20001});
  EXPECT_EQ(l.keywords, 16768u);
  EXPECT_EQ(l.semaphores, 17280u);
  EXPECT_EQ(l.proctrace, 17792u);
  EXPECT_EQ(l.atimearray, 18432u);
  EXPECT_EQ(l.writetimearray, 18560u);
  EXPECT_EQ(l.cntarray, 18688u);
  EXPECT_EQ(l.file_size, 18752u);
}

TEST(IsioLayout, CircularBufferAddsFrameMetadataAndData) {
  auto plain = compute_layout({.imdatamemsize = 100});
  auto cb = compute_layout({.imdatamemsize = 100, .cbsize = 3});
  EXPECT_EQ(cb.cbframemd, plain.file_size);
  EXPECT_EQ(cb.cbdata, plain.file_size + 3 * 48);
  EXPECT_EQ(cb.file_size, plain.file_size + 3 * 48 + 304);  // 3 x 100 rounded up to 8
}

TEST(IsioLayout, MultiGigabyteSizesUse64BitArithmetic) {
  auto l = compute_layout({.imdatamemsize = 3ULL << 30});
  EXPECT_EQ(l.keywords, 384 + (3ULL << 30));
}

TEST(IsioLayout, CreatedFileHasEveryFieldAtItsOffset) {
  shmlink::test::TempStreamDir dir;
  shmlink::StreamSpec spec;
  spec.shape = {5, 3};
  spec.dtype = shmlink::Dtype::u8;
  spec.keywords = 1;
  spec.semaphores = 3;
  auto s = shmlink::Stream::create("layout5x3", spec);
  auto f = s.file_bytes();
  ASSERT_EQ(f.size(), 1360u);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/layout5x3.im.shm").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1360);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data())), "2.00");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data() + 32)), "layout5x3");
  EXPECT_EQ(at<std::uint8_t>(f, 112), 2);              // naxis
  EXPECT_EQ(at<std::uint32_t>(f, 116), 5u);            // size[0]
  EXPECT_EQ(at<std::uint32_t>(f, 120), 3u);            // size[1]
  EXPECT_EQ(at<std::uint32_t>(f, 124), 0u);            // size[2]
  EXPECT_EQ(at<std::uint64_t>(f, 128), 15u);           // nelement
  EXPECT_EQ(at<std::uint8_t>(f, 136), 1);              // datatype UINT8
  EXPECT_EQ(at<std::uint64_t>(f, 144), 2u);            // imagetype MATH_DATA
  EXPECT_GT(at<std::int64_t>(f, 152), 1'600'000'000);  // creationtime.tv_sec
  EXPECT_GT(at<std::int64_t>(f, 168), 1'600'000'000);  // lastaccesstime.tv_sec
  EXPECT_EQ(at<std::int32_t>(f, 216), ::getpid());     // creatorPID
  EXPECT_EQ(at<std::int32_t>(f, 220), 0);              // ownerPID
  EXPECT_EQ(at<std::uint8_t>(f, 224), 1);              // shared
  EXPECT_EQ(at<std::uint64_t>(f, 232), st.st_ino);     // inode of the final file
  EXPECT_EQ(at<std::int8_t>(f, 240), -1);              // location: CPU
  EXPECT_EQ(at<std::uint16_t>(f, 258), 3);             // sem
  EXPECT_EQ(at<std::uint16_t>(f, 260), 10);            // NBproctrace
  EXPECT_EQ(at<std::uint64_t>(f, 264), 0u);            // cnt0
  EXPECT_EQ(at<std::uint8_t>(f, 288), 0);              // write
  EXPECT_EQ(at<std::uint16_t>(f, 290), 1);             // NBkw
  EXPECT_EQ(at<std::uint32_t>(f, 292), 0u);            // CBsize
  EXPECT_EQ(at<std::uint64_t>(f, 312), 15u);           // imdatamemsize
  EXPECT_EQ(at<char>(f, 400 + 16), 'N');               // keyword 0 type: unused
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(at<std::int32_t>(f, 656 + 4 * i), -1);   // semReadPID
    EXPECT_EQ(at<std::int32_t>(f, 672 + 4 * i), -1);   // semWritePID
    EXPECT_EQ(at<std::uint32_t>(f, 688 + 4 * i), 0u);  // semctrl
    EXPECT_EQ(at<std::uint32_t>(f, 704 + 4 * i), 0u);  // semstatus
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(at<std::int32_t>(f, 720 + 64 * i + 4), 0);    // procwrite_PID
    EXPECT_EQ(at<std::int32_t>(f, 720 + 64 * i + 48), -1);  // trigsemindex
  }

  // A write updates cnt0, write flag, times and the data chunk at offset 384.
  const std::uint8_t frame[15] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  ASSERT_TRUE(s.write(std::as_bytes(std::span(frame)), {.atime_ns = 1'700'000'000'123'456'789}).ok());
  EXPECT_EQ(at<std::uint64_t>(f, 264), 1u);
  EXPECT_EQ(at<std::uint8_t>(f, 288), 0);
  EXPECT_EQ(at<std::int64_t>(f, 184), 1'700'000'000);  // atime.tv_sec
  EXPECT_EQ(at<std::int64_t>(f, 192), 123'456'789);    // atime.tv_nsec
  EXPECT_GT(at<std::int64_t>(f, 200), 1'600'000'000);  // writetime.tv_sec
  EXPECT_EQ(std::memcmp(f.data() + 384, frame, 15), 0);
  // Every semaphore slot was posted once, semWritePID recorded, semlog posted.
  for (int i = 0; i < 3; ++i) {
    int v = -1;
    sem_getvalue(const_cast<sem_t*>(reinterpret_cast<const sem_t*>(f.data() + 528 + 32 * i)), &v);
    EXPECT_EQ(v, 1);
    EXPECT_EQ(at<std::int32_t>(f, 672 + 4 * i), ::getpid());
  }
  int log_value = -1;
  sem_getvalue(const_cast<sem_t*>(reinterpret_cast<const sem_t*>(f.data() + 624)), &log_value);
  EXPECT_EQ(log_value, 1);
}

TEST(IsioLayout, KnownExampleStreamFileIs17920Bytes) {
  shmlink::test::TempStreamDir dir;
  shmlink::StreamSpec spec;
  spec.shape = {64, 64};
  spec.dtype = shmlink::Dtype::f32;
  auto s = shmlink::Stream::create("ex64", spec);
  EXPECT_EQ(s.file_bytes().size(), 17920u);
}

TEST(IsioLayout, CircularBufferSlotsFilledOnWrite) {
  shmlink::test::TempStreamDir dir;
  shmlink::StreamSpec spec;
  spec.shape = {4};
  spec.dtype = shmlink::Dtype::u32;
  spec.circular_buffer = 3;
  auto s = shmlink::Stream::create("cb", spec);
  auto l = compute_layout({.imdatamemsize = 16, .cbsize = 3});
  auto f = s.file_bytes();
  ASSERT_EQ(f.size(), l.file_size);
  for (std::uint32_t k = 1; k <= 4; ++k) {
    const std::uint32_t frame[4] = {k, k, k, k};
    ASSERT_TRUE(s.write(std::span<const std::uint32_t>(frame)).ok());
  }
  // As ISIO: the first update lands in slot 1; four updates visit 1, 2, 0, 1.
  EXPECT_EQ(at<std::uint32_t>(f, 296), 1u);  // CBindex
  EXPECT_EQ(at<std::uint64_t>(f, 304), 1u);  // CBcycle
  EXPECT_EQ(at<std::uint32_t>(f, l.cbdata + 16 * 1), 4u);
  EXPECT_EQ(at<std::uint32_t>(f, l.cbdata + 16 * 2), 2u);
  EXPECT_EQ(at<std::uint32_t>(f, l.cbdata + 16 * 0), 3u);
  EXPECT_EQ(at<std::uint64_t>(f, l.cbframemd + 48 * 1), 4u);  // CBFRAMEMD[1].cnt0
  EXPECT_EQ(at<std::uint64_t>(f, l.cbframemd + 48 * 0), 3u);
}

}  // namespace
