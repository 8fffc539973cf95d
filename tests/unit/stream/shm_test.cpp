// SPDX-License-Identifier: MIT
// shmlink::Shm<T>: DAO's Dao::Shm<T> semantics (reference section 16.3) on ISIO streams.
#include "test_util.hpp"

#include <shmlink/shm.hpp>

#include <complex>
#include <thread>

namespace {

using namespace shmlink;
using namespace std::chrono_literals;

TEST(Shm, CreateWithInitialFrameThenOpenAndRead) {
  test::TempStreamDir dir;
  std::vector<float> frame(6);
  for (int i = 0; i < 6; ++i) frame[i] = static_cast<float>(i) * 1.5f;
  Shm<float> w("dao", Shape{2, 3}, frame.data());  // DAO shape: 2 rows of 3, slowest first
  EXPECT_EQ(w.get_counter(), 1u);
  Shm<float> r("dao");
  EXPECT_EQ(r.get_shape(), (Shape{2, 3}));
  EXPECT_EQ(r.get_element_count(), 6u);
  // ISIO order in the file: size[0] = 3 (fastest), size[1] = 2.
  EXPECT_EQ(r.stream().shape()[0], 3u);
  EXPECT_EQ(r.stream().shape()[1], 2u);
  const float* p = r.get_frame();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(std::vector<float>(p, p + 6), frame);
}

TEST(Shm, InvalidShapeAndWrongTypeThrow) {
  test::TempStreamDir dir;
  EXPECT_THROW(Shm<float>("x", Shape{4}), Error);
  EXPECT_THROW(Shm<float>("x", Shape{1, 2, 3, 4}), Error);
  Shm<std::uint16_t> u("u", Shape{2, 2});
  try {
    Shm<float> f("u");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.errc(), Errc::dtype_mismatch);
  }
  EXPECT_THROW(Shm<float>("absent"), std::runtime_error);  // DAO callers catch runtime_error
}

TEST(Shm, SpinWaitsForNextFrameAndTargetCounter) {
  test::TempStreamDir dir;
  Shm<double> w("spin", Shape{2, 2});
  Shm<double> r("spin");
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    const double f[4] = {1, 2, 3, 4};
    w.set_frame(f);
    w.set_frame(f);
  });
  const double* p = r.get_frame(ShmSync::SPIN);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(r.get_counter(), 1u);
  ASSERT_NE(r.get_frame(ShmSync::SPIN, 2), nullptr);  // until cnt0 >= 2
  EXPECT_EQ(r.get_counter(), 2u);
  t.join();
}

TEST(Shm, SemaphoreModesWaitAndTimeOut) {
  test::TempStreamDir dir;
  Shm<std::complex<float>> w("sem", Shape{2, 2});
  Shm<std::complex<float>> r("sem");
  r.stream().sem_flush(-1);
  EXPECT_EQ(r.get_frame(ShmSync::SEM7, 0), nullptr);  // 0 s timeout, nothing posted
  const std::complex<float> f[4] = {{1, 1}, {2, 2}, {3, 3}, {4, 4}};
  w.set_frame(f);
  EXPECT_NE(r.get_frame(ShmSync::SEM7, 1), nullptr);
  EXPECT_NE(r.get_frame(ShmSync::SEM), nullptr);  // SEM is slot 0, posted once
  EXPECT_EQ(r.get_frame(ShmSync::SEM0, 0), nullptr);
  EXPECT_NE(r.get_frame(ShmSync::NONE), nullptr);
}

TEST(Shm, FrameIdAndTimestamp) {
  test::TempStreamDir dir;
  Shm<std::int32_t> w("id", Shape{1, 4});
  const std::int32_t f[4] = {1, 2, 3, 4};
  ASSERT_TRUE(w.stream().write(std::span<const std::int32_t>(f), {.atime_ns = 5'000, .frame_id = 77}).ok());
  EXPECT_EQ(w.get_frame_id(), 77u);
  EXPECT_EQ(w.get_timestamp(), 5'000);
}

}  // namespace
