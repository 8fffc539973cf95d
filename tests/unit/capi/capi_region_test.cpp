// SPDX-License-Identifier: MIT
// GoogleTest cases for the region part of the C API (include/shmlink.h, "regions"): a region file
// holding a stream and a queue, created by one process and used by name from another; entries,
// remove and destroy; the handles of channels outliving the region handle; every NULL and bad
// argument. Each test gets a private stream directory (SHMLINK_DIR), where plain region names
// live. Suite names start with "capi" so that `ctest -R capi` selects them.
#include <shmlink.h>

#include <gtest/gtest.h>
#include <test_util.hpp>

#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t kLong = 5'000'000'000;  // ns: a timeout that only expires when something is broken
constexpr std::uint64_t kRegionBytes = 1u << 20;
// Streams in regions need the stream placement (Stream::create_in); tests/unit/capi/CMakeLists.txt
// says whether this build has it, as src/CMakeLists.txt decides whether to build it.
#if SHMLINK_TEST_REGION_STREAMS
constexpr bool kRegionStreams = true;
#else
constexpr bool kRegionStreams = false;
#endif

std::string last_error() { return shmlink_last_error(); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct RegionCloser {
  void operator()(shmlink_region_t* r) const noexcept { shmlink_region_close(r); }
};
struct StreamCloser {
  void operator()(shmlink_stream_t* s) const noexcept { shmlink_stream_close(s); }
};
struct QueueCloser {
  void operator()(shmlink_queue_t* q) const noexcept { shmlink_queue_close(q); }
};
using Region = std::unique_ptr<shmlink_region_t, RegionCloser>;
using Stream = std::unique_ptr<shmlink_stream_t, StreamCloser>;
using Queue = std::unique_ptr<shmlink_queue_t, QueueCloser>;

/// A 4 x 3 uint16 stream spec.
shmlink_stream_spec_t image_spec() {
  shmlink_stream_spec_t spec;
  shmlink_stream_spec_init(&spec);
  spec.naxis = 2;
  spec.shape[0] = 4;
  spec.shape[1] = 3;
  spec.dtype = SHMLINK_DTYPE_U16;
  return spec;
}

/// A frame of 12 uint16 values starting at `first`.
std::array<std::uint16_t, 12> frame_from(std::uint16_t first) {
  std::array<std::uint16_t, 12> f{};
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::uint16_t>(first + i);
  return f;
}

/// One signal table entry.
shmlink_signal_t signal_of(std::uint32_t index, const char* name, std::uint8_t type) {
  shmlink_signal_t s{};
  s.index = index;
  std::strncpy(s.name, name, sizeof s.name - 1);
  s.type = type;
  return s;
}

class capiRegion : public ::testing::Test {
 protected:
  shmlink::test::TempStreamDir dir_;
  /// The region's plain name: the file is <dir>/<name>.region.shm.
  std::string name_ = "capi";
  std::string file_ = dir_.path() + "/capi.region.shm";

  Region make_region(int mode = SHMLINK_EXCLUSIVE_CREATE) {
    shmlink_region_t* r = nullptr;
    EXPECT_EQ(shmlink_region_create(name_.c_str(), kRegionBytes, nullptr, mode, &r), SHMLINK_OK) << last_error();
    return Region(r);
  }
};

TEST_F(capiRegion, AQueueIsUsedByNameFromAnotherProcessListedAndRemoved) {
  Region region = make_region();
  ASSERT_TRUE(region);
  EXPECT_EQ(::access(file_.c_str(), F_OK), 0) << file_;
  EXPECT_EQ(std::string(shmlink_region_path(region.get())), file_);
  EXPECT_EQ(shmlink_region_size(region.get()), kRegionBytes);

  const std::array<shmlink_signal_t, 2> table{signal_of(0, "voltage", SHMLINK_SIGNAL_F64),
                                              signal_of(1, "steps", SHMLINK_SIGNAL_I64)};
  shmlink_queue_spec_t qspec;
  shmlink_queue_spec_init(&qspec);
  qspec.capacity = 8;
  qspec.max_values = 2;
  qspec.signals = table.data();
  qspec.signal_count = static_cast<std::uint32_t>(table.size());
  shmlink_queue_t* raw = nullptr;
  ASSERT_EQ(shmlink_region_create_queue(region.get(), "meas", &qspec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_OK)
      << last_error();
  Queue queue(raw);
  ASSERT_EQ(shmlink_region_create_queue(region.get(), "back", &qspec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_OK)
      << last_error();
  Queue back(raw);
  EXPECT_EQ(dir_.entries(), 1) << "the channels live in the region file, not in files of their own";

  // The creator pushes three samples.
  for (int k = 0; k < 3; ++k) {
    std::array<shmlink_value_t, 2> v{};
    v[0].f = 1.5 * k;
    v[1].i = k;
    shmlink_sample_t s{};
    s.sequence = static_cast<std::uint64_t>(k);
    s.flags = SHMLINK_SAMPLE_HAS_SEQUENCE | SHMLINK_SAMPLE_HAS_DATA;
    s.length = 2;
    s.values = v.data();
    ASSERT_EQ(shmlink_queue_try_push(queue.get(), &s), SHMLINK_OK) << last_error();
  }

  // Another process opens the region by name and the queues by theirs: it pops the samples
  // (checking the signal table it expects) and pushes their sum back.
  const std::string name = name_;
  const pid_t child = shmlink::test::spawn([&name, &table] {
    shmlink_region_t* r = nullptr;
    if (shmlink_region_open(name.c_str(), &r) != SHMLINK_OK) return 10;
    shmlink_queue_expect_t expect;
    shmlink_queue_expect_init(&expect);
    expect.max_values = 2;
    expect.signals = table.data();
    expect.signal_count = static_cast<std::uint32_t>(table.size());
    shmlink_queue_t* q = nullptr;
    if (shmlink_region_open_queue(r, "meas", &expect, &q) != SHMLINK_OK) return 11;
    shmlink_queue_t* b = nullptr;
    if (shmlink_region_open_queue(r, "back", nullptr, &b) != SHMLINK_OK) return 12;
    double sum = 0;
    for (int k = 0; k < 3; ++k) {
      std::array<shmlink_value_t, 2> v{};
      shmlink_sample_t in{};
      in.values = v.data();
      in.capacity = 2;
      if (shmlink_queue_pop(q, &in, kLong) != SHMLINK_OK) return 13;
      if (in.sequence != static_cast<std::uint64_t>(k) || in.length != 2 || v[0].f != 1.5 * k || v[1].i != k) return 14;
      sum += v[0].f;
    }
    shmlink_value_t total;
    total.f = sum;
    shmlink_sample_t out{};
    out.length = 1;
    out.values = &total;
    if (shmlink_queue_push(b, &out, kLong) != SHMLINK_OK) return 15;
    shmlink_queue_close(b);
    shmlink_queue_close(q);
    shmlink_region_close(r);
    return 0;
  });
  ASSERT_EQ(shmlink::test::reap(child), 0) << "the child's exit code names the step that failed";
  std::array<shmlink_value_t, 2> v{};
  shmlink_sample_t in{};
  in.values = v.data();
  in.capacity = 2;
  ASSERT_EQ(shmlink_queue_pop(back.get(), &in, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.length, 1U);
  EXPECT_EQ(v[0].f, 4.5);
  EXPECT_EQ(shmlink_queue_size_approx(queue.get()), 0U) << "the child popped every sample";

  // Entries: both, ready, in table order; a short buffer gets the first and the full count.
  std::array<shmlink_region_entry_t, 4> entries{};
  std::size_t count = 0;
  ASSERT_EQ(shmlink_region_entries(region.get(), entries.data(), entries.size(), &count), SHMLINK_OK) << last_error();
  ASSERT_EQ(count, 2U);
  EXPECT_STREQ(entries[0].name, "meas");
  EXPECT_STREQ(entries[1].name, "back");
  for (std::size_t i = 0; i < count; ++i) {
    EXPECT_EQ(entries[i].kind, static_cast<std::uint32_t>(SHMLINK_CHANNEL_QUEUE));
    EXPECT_EQ(entries[i].state, static_cast<std::uint32_t>(SHMLINK_ENTRY_READY));
    EXPECT_GT(entries[i].size, 0U);
    EXPECT_LE(entries[i].offset + entries[i].size, kRegionBytes);
    EXPECT_EQ(entries[i].offset % 4096, 0U);
    EXPECT_NE(entries[i].owner, 0U);
  }
  std::array<shmlink_region_entry_t, 1> one{};
  count = 0;
  ASSERT_EQ(shmlink_region_entries(region.get(), one.data(), one.size(), &count), SHMLINK_OK);
  EXPECT_EQ(count, 2U);
  EXPECT_STREQ(one[0].name, "meas");
  count = 0;
  ASSERT_EQ(shmlink_region_entries(region.get(), nullptr, 0, &count), SHMLINK_OK);
  EXPECT_EQ(count, 2U);

  // Remove a queue: it is gone from the directory and cannot be opened by name any more.
  queue.reset();
  ASSERT_EQ(shmlink_region_remove(region.get(), "meas"), SHMLINK_OK) << last_error();
  ASSERT_EQ(shmlink_region_entries(region.get(), entries.data(), entries.size(), &count), SHMLINK_OK);
  ASSERT_EQ(count, 1U);
  EXPECT_STREQ(entries[0].name, "back");
  shmlink_queue_t* gone = nullptr;
  EXPECT_EQ(shmlink_region_open_queue(region.get(), "meas", nullptr, &gone), SHMLINK_E_NOT_FOUND);
  EXPECT_EQ(gone, nullptr);
  EXPECT_TRUE(contains(last_error(), file_ + ":meas")) << last_error();
  EXPECT_EQ(shmlink_region_remove(region.get(), "meas"), SHMLINK_E_NOT_FOUND);

  // Destroy removes the file by name.
  back.reset();
  region.reset();
  EXPECT_EQ(shmlink_region_destroy(name_.c_str()), SHMLINK_OK) << last_error();
  EXPECT_EQ(::access(file_.c_str(), F_OK), -1);
  EXPECT_EQ(shmlink_region_destroy(name_.c_str()), SHMLINK_E_NOT_FOUND);
  EXPECT_TRUE(contains(last_error(), file_)) << last_error();
}

TEST_F(capiRegion, AStreamIsUsedByNameFromAnotherProcess) {
  if (!kRegionStreams) GTEST_SKIP() << "this build places no streams in regions (Stream::create_in is missing)";
  Region region = make_region();
  ASSERT_TRUE(region);
  const shmlink_stream_spec_t sspec = image_spec();
  shmlink_stream_t* raw = nullptr;
  ASSERT_EQ(shmlink_region_create_stream(region.get(), "wfs", &sspec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_OK)
      << last_error();
  Stream stream(raw);
  EXPECT_EQ(::access((dir_.path() + "/wfs.im.shm").c_str(), F_OK), -1) << "the stream lives in the region";
  const auto frame = frame_from(100);
  ASSERT_EQ(shmlink_stream_write(stream.get(), frame.data(), sizeof frame, -1), SHMLINK_OK) << last_error();

  // Another process reads the frame by name and writes one back.
  const std::string name = name_;
  const pid_t child = shmlink::test::spawn([&name] {
    shmlink_region_t* r = nullptr;
    if (shmlink_region_open(name.c_str(), &r) != SHMLINK_OK) return 10;
    shmlink_stream_t* s = nullptr;
    if (shmlink_region_open_stream(r, "wfs", &s) != SHMLINK_OK) return 11;
    std::array<std::uint16_t, 12> got{};
    if (shmlink_stream_read_copy(s, got.data(), sizeof got, nullptr) != SHMLINK_OK) return 12;
    if (got != frame_from(100)) return 13;
    const auto reply = frame_from(7);
    if (shmlink_stream_write(s, reply.data(), sizeof reply, -1) != SHMLINK_OK) return 14;
    shmlink_stream_close(s);
    shmlink_region_close(r);
    return 0;
  });
  ASSERT_EQ(shmlink::test::reap(child), 0) << "the child's exit code names the step that failed";
  std::array<std::uint16_t, 12> back{};
  shmlink_frame_info_t info{};
  ASSERT_EQ(shmlink_stream_read_copy(stream.get(), back.data(), sizeof back, &info), SHMLINK_OK) << last_error();
  EXPECT_EQ(back, frame_from(7));
  EXPECT_EQ(info.cnt0, 2U);
  std::array<shmlink_region_entry_t, 2> entries{};
  std::size_t count = 0;
  ASSERT_EQ(shmlink_region_entries(region.get(), entries.data(), entries.size(), &count), SHMLINK_OK);
  ASSERT_EQ(count, 1U);
  EXPECT_STREQ(entries[0].name, "wfs");
  EXPECT_EQ(entries[0].kind, static_cast<std::uint32_t>(SHMLINK_CHANNEL_STREAM));
  shmlink_queue_t* wrong_kind = nullptr;
  EXPECT_NE(shmlink_region_open_queue(region.get(), "wfs", nullptr, &wrong_kind), SHMLINK_OK) << "a stream is not a queue";
  EXPECT_EQ(wrong_kind, nullptr);
}

TEST_F(capiRegion, ChannelHandlesKeepTheRegionMappedAfterItIsClosed) {
  Region region = make_region();
  ASSERT_TRUE(region);
  shmlink_queue_spec_t qspec;
  shmlink_queue_spec_init(&qspec);
  shmlink_queue_t* raw = nullptr;
  ASSERT_EQ(shmlink_region_create_queue(region.get(), "q", &qspec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_OK)
      << last_error();
  Queue queue(raw);
  region.reset();
  shmlink_value_t v;
  v.i = 42;
  shmlink_sample_t s{};
  s.length = 1;
  s.values = &v;
  ASSERT_EQ(shmlink_queue_try_push(queue.get(), &s), SHMLINK_OK) << last_error();
  shmlink_value_t got{};
  shmlink_sample_t in{};
  in.values = &got;
  in.capacity = 1;
  ASSERT_EQ(shmlink_queue_try_pop(queue.get(), &in), SHMLINK_OK) << last_error();
  EXPECT_EQ(got.i, 42);
}

TEST_F(capiRegion, APushIntoARemovedQueueIsReplacedNamingTheQueue) {
  Region region = make_region();
  ASSERT_TRUE(region);
  shmlink_queue_spec_t qspec;
  shmlink_queue_spec_init(&qspec);
  shmlink_queue_t* raw = nullptr;
  ASSERT_EQ(shmlink_region_create_queue(region.get(), "gone", &qspec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_OK)
      << last_error();
  Queue queue(raw);
  ASSERT_EQ(shmlink_region_remove(region.get(), "gone"), SHMLINK_OK) << last_error();
  shmlink_value_t v;
  v.i = 7;
  shmlink_sample_t s{};
  s.length = 1;
  s.values = &v;
  EXPECT_EQ(shmlink_queue_try_push(queue.get(), &s), SHMLINK_E_REPLACED);
  EXPECT_TRUE(contains(last_error(), "gone")) << last_error();
  shmlink_sample_t in{};
  EXPECT_EQ(shmlink_queue_pop(queue.get(), &in, kLong), SHMLINK_E_REPLACED) << "empty and removed";
}

TEST_F(capiRegion, ExistingNamesFollowTheOpenModes) {
  Region region = make_region();
  ASSERT_TRUE(region);
  shmlink_region_t* again = nullptr;
  EXPECT_EQ(shmlink_region_create(name_.c_str(), kRegionBytes, nullptr, SHMLINK_EXCLUSIVE_CREATE, &again),
            SHMLINK_E_EXISTS);
  EXPECT_EQ(again, nullptr);
  ASSERT_EQ(shmlink_region_create(name_.c_str(), kRegionBytes, nullptr, SHMLINK_OPEN_OR_CREATE, &again), SHMLINK_OK)
      << last_error();
  Region second(again);

  shmlink_queue_spec_t qspec;
  shmlink_queue_spec_init(&qspec);
  shmlink_queue_t* q = nullptr;
  ASSERT_EQ(shmlink_region_create_queue(region.get(), "q", &qspec, SHMLINK_EXCLUSIVE_CREATE, &q), SHMLINK_OK);
  Queue first(q);
  shmlink_queue_t* dup = nullptr;
  EXPECT_EQ(shmlink_region_create_queue(second.get(), "q", &qspec, SHMLINK_EXCLUSIVE_CREATE, &dup), SHMLINK_E_EXISTS);
  EXPECT_EQ(dup, nullptr);
  EXPECT_TRUE(contains(last_error(), file_) && contains(last_error(), "q")) << last_error();
  ASSERT_EQ(shmlink_region_create_queue(second.get(), "q", &qspec, SHMLINK_OPEN_OR_CREATE, &dup), SHMLINK_OK)
      << last_error();
  Queue opened(dup);
  shmlink_stream_t* wrong_kind = nullptr;
  EXPECT_NE(shmlink_region_open_stream(second.get(), "q", &wrong_kind), SHMLINK_OK) << "a queue is not a stream";
  EXPECT_EQ(wrong_kind, nullptr);
}

TEST_F(capiRegion, NullAndBadArgumentsAreInvalidArgument) {
  shmlink_region_spec_t spec;
  shmlink_region_spec_init(&spec);
  EXPECT_EQ(spec.permissions, 0600U);
  EXPECT_EQ(spec.max_entries, 256U);
  shmlink_region_spec_init(nullptr);

  shmlink_region_t* r = nullptr;
  EXPECT_EQ(shmlink_region_create(nullptr, kRegionBytes, nullptr, SHMLINK_EXCLUSIVE_CREATE, &r),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "shmlink_region_create: path is NULL")) << last_error();
  EXPECT_EQ(shmlink_region_create(name_.c_str(), kRegionBytes, nullptr, SHMLINK_EXCLUSIVE_CREATE, nullptr),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create(name_.c_str(), kRegionBytes, nullptr, 9, &r), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "open mode")) << last_error();
  EXPECT_EQ(shmlink_region_create(name_.c_str(), kRegionBytes + 4096, &spec, SHMLINK_EXCLUSIVE_CREATE, &r),
            SHMLINK_E_INVALID_ARGUMENT)
      << "not a power of two";
  EXPECT_EQ(r, nullptr);
  EXPECT_TRUE(contains(last_error(), name_)) << last_error();
  EXPECT_EQ(shmlink_region_open(nullptr, &r), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_open(name_.c_str(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_open(name_.c_str(), &r), SHMLINK_E_NOT_FOUND);
  EXPECT_TRUE(contains(last_error(), file_)) << last_error();
  EXPECT_EQ(shmlink_region_destroy(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_close(nullptr), SHMLINK_OK);

  Region region = make_region();
  ASSERT_TRUE(region);
  const shmlink_stream_spec_t sspec = image_spec();
  shmlink_stream_spec_t flat = sspec;
  flat.naxis = 0;
  shmlink_queue_spec_t qspec;
  shmlink_queue_spec_init(&qspec);
  shmlink_stream_t* s = nullptr;
  shmlink_queue_t* q = nullptr;
  EXPECT_EQ(shmlink_region_create_stream(nullptr, "x", &sspec, SHMLINK_EXCLUSIVE_CREATE, &s),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create_stream(region.get(), nullptr, &sspec, SHMLINK_EXCLUSIVE_CREATE, &s),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create_stream(region.get(), "x", nullptr, SHMLINK_EXCLUSIVE_CREATE, &s),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create_stream(region.get(), "x", &sspec, SHMLINK_EXCLUSIVE_CREATE, nullptr),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create_stream(region.get(), "x", &flat, SHMLINK_EXCLUSIVE_CREATE, &s),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), file_ + ":x") && contains(last_error(), "naxis")) << last_error();
  EXPECT_EQ(shmlink_region_create_stream(region.get(), "x", &sspec, -1, &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create_stream(region.get(), "bad/name", &sspec, SHMLINK_EXCLUSIVE_CREATE, &s),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(shmlink_region_open_stream(nullptr, "x", &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_open_stream(region.get(), nullptr, &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_open_stream(region.get(), "x", nullptr), SHMLINK_E_INVALID_ARGUMENT);
  if (kRegionStreams) {
    EXPECT_EQ(shmlink_region_open_stream(region.get(), "x", &s), SHMLINK_E_NOT_FOUND);
  }
  EXPECT_EQ(shmlink_region_create_queue(region.get(), "q", nullptr, SHMLINK_EXCLUSIVE_CREATE, &q),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_create_queue(region.get(), "q", &qspec, 7, &q), SHMLINK_E_INVALID_ARGUMENT);
  qspec.capacity = 3;
  EXPECT_EQ(shmlink_region_create_queue(region.get(), "q", &qspec, SHMLINK_EXCLUSIVE_CREATE, &q),
            SHMLINK_E_INVALID_ARGUMENT)
      << "capacity not a power of two";
  shmlink_queue_expect_t expect;
  shmlink_queue_expect_init(&expect);
  expect.kind = 9;
  EXPECT_EQ(shmlink_region_open_queue(region.get(), "q", &expect, &q), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(q, nullptr);
  EXPECT_EQ(shmlink_region_remove(nullptr, "x"), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_remove(region.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  shmlink_region_entry_t e;
  std::size_t count = 0;
  EXPECT_EQ(shmlink_region_entries(nullptr, &e, 1, &count), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_entries(region.get(), &e, 1, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_region_entries(region.get(), nullptr, 1, &count), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_STREQ(shmlink_region_path(nullptr), "");
  EXPECT_EQ(shmlink_region_size(nullptr), 0U);
}

}  // namespace
