// SPDX-License-Identifier: MIT
// GoogleTest cases for the queue and interface part of the C API (include/shmlink.h): round
// trips of every value type, would-block and timeouts, shutdown and drain, expectations, caller
// buffers that are too small, NULL and invalid arguments, and interfaces (loopback, two handles in
// two threads, a peer that dies, launched peers that never attach or exit at once).
//
// Each test gets a private stream directory (SHMLINK_DIR, tests/common/test_util.hpp), so queue
// names only need to be unique within a test. Suite names start with "capi" so that
// `ctest -R capi` selects them.
#include <shmlink.h>

#include <gtest/gtest.h>
#include <test_util.hpp>

#include <malloc.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::int64_t kMs = 1'000'000;      // ns per millisecond
constexpr std::int64_t kLong = 5'000 * kMs;  // a timeout that only expires when something is broken

struct QueueCloser {
  void operator()(shmlink_queue_t* q) const noexcept { shmlink_queue_close(q); }
};
using Queue = std::unique_ptr<shmlink_queue_t, QueueCloser>;

struct InterfaceDestroyer {
  void operator()(shmlink_interface_t* i) const noexcept { shmlink_interface_close(i); }
};
using Iface = std::unique_ptr<shmlink_interface_t, InterfaceDestroyer>;

std::string last_error() { return shmlink_last_error(); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// A name unique to the running test (well under 79 bytes).
std::string test_name(const char* suffix = "") {
  return std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + suffix;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string queue_file(const std::string& name) {
  return std::string(std::getenv("SHMLINK_DIR")) + "/" + name + ".queue.shm";
}

/// Copies `src` into a fixed C field, NUL-terminated (the test's strings fit).
template <std::size_t N>
void set_field(char (&dst)[N], const char* src) {
  const std::size_t n = std::min(std::strlen(src), N - 1);
  std::memcpy(dst, src, n);
  dst[n] = '\0';
}

shmlink_signal_t sig(std::uint32_t index, const char* name, std::uint8_t type, const char* unit = "") {
  shmlink_signal_t s{};
  s.index = index;
  set_field(s.name, name);
  s.type = type;
  set_field(s.unit, unit);
  return s;
}

shmlink_queue_spec_t qspec(std::uint32_t capacity = 8, std::uint32_t max_values = 4) {
  shmlink_queue_spec_t spec;
  shmlink_queue_spec_init(&spec);
  spec.capacity = capacity;
  spec.max_values = max_values;
  return spec;
}

Queue make_queue(const std::string& name, const shmlink_queue_spec_t& spec = qspec(),
                 int mode = SHMLINK_EXCLUSIVE_CREATE) {
  shmlink_queue_t* raw = nullptr;
  const int rc = shmlink_queue_create(name.c_str(), &spec, mode, &raw);
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  return Queue(raw);
}

Queue open_queue(const std::string& name, const shmlink_queue_expect_t* expect = nullptr) {
  shmlink_queue_t* raw = nullptr;
  const int rc = shmlink_queue_open(name.c_str(), expect, &raw);
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  return Queue(raw);
}

/// A caller-owned sample buffer: `capacity` values, the sample pointing at them.
struct SampleBuf {
  std::vector<shmlink_value_t> values;
  shmlink_sample_t s{};
  explicit SampleBuf(std::uint32_t capacity) : values(capacity) {
    s.capacity = capacity;
    s.values = capacity != 0 ? values.data() : nullptr;
  }
  SampleBuf(const SampleBuf&) = delete;
  SampleBuf& operator=(const SampleBuf&) = delete;
};

/// A sample to push: `n` f64 values seq*100 + i, sequence `seq`.
struct OutSample {
  std::vector<shmlink_value_t> values;
  shmlink_sample_t s{};
  OutSample(std::uint64_t seq, std::uint32_t n) : values(n) {
    for (std::uint32_t i = 0; i < n; ++i) values[i].f = static_cast<double>(seq * 100 + i);
    s.sequence = seq;
    s.flags = SHMLINK_SAMPLE_HAS_SEQUENCE | SHMLINK_SAMPLE_HAS_DATA;
    s.length = n;
    s.values = n != 0 ? values.data() : nullptr;
  }
  OutSample(const OutSample&) = delete;
  OutSample& operator=(const OutSample&) = delete;
};

std::int64_t elapsed_ns(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since).count();
}

class CapiQueueTest : public ::testing::Test {
 protected:
  shmlink::test::TempStreamDir dir_;
};
using capiQueue = CapiQueueTest;
using capiQueueIo = CapiQueueTest;
using capiQueueArgs = CapiQueueTest;
using capiInterface = CapiQueueTest;

// ---- specs and lifecycle --------------------------------------------------------------------

TEST_F(capiQueue, SpecInitFillsDefaultsAndAcceptsNull) {
  shmlink_queue_spec_t spec;
  std::memset(&spec, 0xAB, sizeof spec);
  shmlink_queue_spec_init(&spec);
  EXPECT_EQ(spec.capacity, 512U);
  EXPECT_EQ(spec.max_values, 64U);
  EXPECT_EQ(spec.kind, SHMLINK_QUEUE_SPSC);
  EXPECT_EQ(spec.wait, SHMLINK_WAIT_HYBRID);
  EXPECT_EQ(spec.permissions, 0600U);
  EXPECT_EQ(spec.signals, nullptr);
  EXPECT_EQ(spec.signal_count, 0U);
  shmlink_queue_spec_init(nullptr);

  shmlink_queue_expect_t expect;
  std::memset(&expect, 0xAB, sizeof expect);
  shmlink_queue_expect_init(&expect);
  EXPECT_EQ(expect.max_values, 0U);
  EXPECT_EQ(expect.kind, 0);
  EXPECT_EQ(expect.signals, nullptr);
  EXPECT_EQ(expect.signal_count, 0U);
  EXPECT_EQ(expect.read_only, 0);
  shmlink_queue_expect_init(nullptr);
}

TEST_F(capiQueue, CreateMakesTheFileAndInfoDescribesIt) {
  const shmlink_signal_t table[] = {sig(0, "v", SHMLINK_SIGNAL_F64, "V"), sig(2, "n", SHMLINK_SIGNAL_I64)};
  auto spec = qspec(16, 3);
  spec.kind = SHMLINK_QUEUE_MPMC;
  spec.wait = SHMLINK_WAIT_FUTEX;
  spec.signals = table;
  spec.signal_count = 2;
  auto q = make_queue(test_name(), spec);
  ASSERT_TRUE(q);
  EXPECT_TRUE(file_exists(queue_file(test_name())));
  EXPECT_STREQ(shmlink_queue_name(q.get()), test_name().c_str());
  EXPECT_EQ(std::string(shmlink_queue_path(q.get())), queue_file(test_name()));

  shmlink_queue_info_t info;
  ASSERT_EQ(shmlink_queue_info(q.get(), &info), SHMLINK_OK) << last_error();
  EXPECT_GT(info.version, 0U);
  EXPECT_EQ(info.kind, SHMLINK_QUEUE_MPMC);
  EXPECT_EQ(info.wait, SHMLINK_WAIT_FUTEX);
  EXPECT_EQ(info.capacity, 16U);
  EXPECT_EQ(info.max_values, 3U);
  EXPECT_EQ(info.signal_count, 2U);
  EXPECT_GE(info.cell_bytes, 3 * sizeof(shmlink_value_t));
  EXPECT_GT(info.file_bytes, 16ULL * info.cell_bytes);
  EXPECT_EQ(info.pushed, 0U);
  EXPECT_EQ(info.popped, 0U);
  EXPECT_EQ(info.closed, 0);
  EXPECT_EQ(info.creator_pid, static_cast<std::int32_t>(::getpid()));
  EXPECT_GT(info.creation_time_ns, 0);

  ASSERT_EQ(shmlink_queue_signal_count(q.get()), 2);
  shmlink_signal_t s;
  ASSERT_EQ(shmlink_queue_signal(q.get(), 1, &s), SHMLINK_OK);
  EXPECT_EQ(s.index, 2U);
  EXPECT_STREQ(s.name, "n");
  EXPECT_EQ(s.type, SHMLINK_SIGNAL_I64);
  EXPECT_STREQ(s.unit, "");
  ASSERT_EQ(shmlink_queue_signal(q.get(), 0, &s), SHMLINK_OK);
  EXPECT_STREQ(s.name, "v");
  EXPECT_STREQ(s.unit, "V");
  EXPECT_EQ(shmlink_queue_signal(q.get(), 2, &s), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_TRUE(contains(last_error(), test_name())) << last_error();
}

TEST_F(capiQueue, ExclusiveCreateTwiceIsExistsAndOpenExistingOfAMissingQueueIsNotFound) {
  auto q = make_queue(test_name());
  ASSERT_TRUE(q);
  const auto spec = qspec();
  shmlink_queue_t* raw = reinterpret_cast<shmlink_queue_t*>(&q);  // must be reset to NULL
  EXPECT_EQ(shmlink_queue_create(test_name().c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_E_EXISTS);
  EXPECT_EQ(raw, nullptr);
  EXPECT_EQ(shmlink_queue_create("absent", &spec, SHMLINK_OPEN_EXISTING, &raw), SHMLINK_E_NOT_FOUND);
  EXPECT_TRUE(contains(last_error(), "absent")) << last_error();
  EXPECT_EQ(shmlink_queue_open("absent", nullptr, &raw), SHMLINK_E_NOT_FOUND);
  EXPECT_EQ(raw, nullptr);
}

TEST_F(capiQueue, OpenOrCreateOpensAMatchingQueueAndRefusesAMismatchingOne) {
  auto spec = qspec(8, 4);
  auto a = make_queue(test_name(), spec, SHMLINK_OPEN_OR_CREATE);
  auto b = make_queue(test_name(), spec, SHMLINK_OPEN_OR_CREATE);
  ASSERT_TRUE(a && b);
  OutSample out(7, 2);
  ASSERT_EQ(shmlink_queue_try_push(a.get(), &out.s), SHMLINK_OK);
  EXPECT_EQ(shmlink_queue_size_approx(b.get()), 1U) << "both handles map the same queue";

  spec.max_values = 5;
  shmlink_queue_t* raw = nullptr;
  EXPECT_EQ(shmlink_queue_create(test_name().c_str(), &spec, SHMLINK_OPEN_OR_CREATE, &raw), SHMLINK_E_LAYOUT);
  EXPECT_EQ(raw, nullptr);
  EXPECT_TRUE(contains(last_error(), test_name())) << last_error();
}

TEST_F(capiQueue, PurgeAndCreateReplacesTheQueue) {
  auto a = make_queue(test_name());
  OutSample out(1, 1);
  ASSERT_EQ(shmlink_queue_try_push(a.get(), &out.s), SHMLINK_OK);
  auto b = make_queue(test_name(), qspec(4, 2), SHMLINK_PURGE_AND_CREATE);
  ASSERT_TRUE(b);
  EXPECT_EQ(shmlink_queue_size_approx(b.get()), 0U);
  shmlink_queue_info_t info;
  ASSERT_EQ(shmlink_queue_info(b.get(), &info), SHMLINK_OK);
  EXPECT_EQ(info.capacity, 4U);
}

TEST_F(capiQueue, DestroyDeletesTheFileByNameButOpenHandlesKeepWorking) {
  auto q = make_queue(test_name());
  ASSERT_TRUE(q);
  ASSERT_EQ(shmlink_queue_destroy(test_name().c_str()), SHMLINK_OK) << last_error();
  EXPECT_FALSE(file_exists(queue_file(test_name())));
  OutSample out(3, 1);
  SampleBuf in(4);
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
  EXPECT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_OK);
  EXPECT_EQ(shmlink_queue_destroy(test_name().c_str()), SHMLINK_E_NOT_FOUND);
  EXPECT_TRUE(contains(last_error(), test_name())) << last_error();
  EXPECT_EQ(shmlink_queue_close(nullptr), SHMLINK_OK);
}

TEST_F(capiQueue, RemoveIsDestroyUnderItsOlderName) {
#pragma GCC diagnostic push  // the older name is what this test calls, on purpose
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  ASSERT_TRUE(make_queue(test_name()));
  ASSERT_EQ(shmlink_queue_remove(test_name().c_str()), SHMLINK_OK) << last_error();
  EXPECT_FALSE(file_exists(queue_file(test_name())));
  EXPECT_EQ(shmlink_queue_remove(test_name().c_str()), SHMLINK_E_NOT_FOUND);
  EXPECT_EQ(shmlink_queue_remove(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "shmlink_queue_remove: name is NULL")) << last_error();
#pragma GCC diagnostic pop
}

// ---- expectations ---------------------------------------------------------------------------

TEST_F(capiQueue, MatchingExpectationsOpen) {
  const shmlink_signal_t table[] = {sig(0, "v", SHMLINK_SIGNAL_F64, "V"), sig(1, "on", SHMLINK_SIGNAL_BOOL)};
  auto spec = qspec(8, 2);
  spec.kind = SHMLINK_QUEUE_MPMC;
  spec.signals = table;
  spec.signal_count = 2;
  auto q = make_queue(test_name(), spec);
  ASSERT_TRUE(q);

  shmlink_queue_expect_t expect;
  shmlink_queue_expect_init(&expect);
  expect.max_values = 2;
  expect.kind = SHMLINK_QUEUE_MPMC;
  expect.signals = table;
  expect.signal_count = 2;
  auto o = open_queue(test_name(), &expect);
  EXPECT_TRUE(o);
  shmlink_queue_expect_t nothing = {0, 0, nullptr, 0, 0};  // zeroes: check nothing
  auto p = open_queue(test_name(), &nothing);
  EXPECT_TRUE(p);
}

TEST_F(capiQueue, MismatchedExpectationsAreLayoutNamingTheQueue) {
  const shmlink_signal_t table[] = {sig(0, "v", SHMLINK_SIGNAL_F64, "V")};
  auto spec = qspec(8, 2);
  spec.signals = table;
  spec.signal_count = 1;
  auto q = make_queue(test_name(), spec);
  ASSERT_TRUE(q);

  auto expect_layout = [&](const shmlink_queue_expect_t& e, const char* what) {
    shmlink_queue_t* raw = reinterpret_cast<shmlink_queue_t*>(&q);
    EXPECT_EQ(shmlink_queue_open(test_name().c_str(), &e, &raw), SHMLINK_E_LAYOUT) << what;
    EXPECT_EQ(raw, nullptr) << what;
    EXPECT_TRUE(contains(last_error(), test_name())) << what << ": " << last_error();
  };
  shmlink_queue_expect_t e;
  shmlink_queue_expect_init(&e);
  e.max_values = 3;
  expect_layout(e, "max_values");
  EXPECT_TRUE(contains(last_error(), "2")) << last_error();

  shmlink_queue_expect_init(&e);
  e.kind = SHMLINK_QUEUE_MPMC;
  expect_layout(e, "kind");

  const shmlink_signal_t other[] = {sig(0, "v", SHMLINK_SIGNAL_F64, "mV")};
  shmlink_queue_expect_init(&e);
  e.signals = other;
  e.signal_count = 1;
  expect_layout(e, "unit");

  const shmlink_signal_t typed[] = {sig(0, "v", SHMLINK_SIGNAL_I64, "V")};
  e.signals = typed;
  expect_layout(e, "type");

  e.signals = table;  // non-NULL with count 0: "the queue has no table"
  e.signal_count = 0;
  expect_layout(e, "empty table");
}

// ---- push and pop ---------------------------------------------------------------------------

TEST_F(capiQueueIo, RoundTripOfEveryValueTypeKeepsAllFields) {
  const shmlink_signal_t table[] = {sig(0, "voltage", SHMLINK_SIGNAL_F64, "V"), sig(1, "count", SHMLINK_SIGNAL_I64),
                                    sig(2, "breaker", SHMLINK_SIGNAL_BOOL), sig(3, "phasor", SHMLINK_SIGNAL_C64, "A")};
  for (const int kind : {SHMLINK_QUEUE_SPSC, SHMLINK_QUEUE_MPMC}) {
    SCOPED_TRACE(kind);
    const std::string name = test_name(kind == SHMLINK_QUEUE_SPSC ? "_spsc" : "_mpmc");
    auto spec = qspec(4, 4);
    spec.kind = static_cast<std::uint8_t>(kind);
    spec.signals = table;
    spec.signal_count = 4;
    auto producer = make_queue(name, spec);
    shmlink_queue_expect_t expect;
    shmlink_queue_expect_init(&expect);
    expect.max_values = 4;
    expect.signals = table;
    expect.signal_count = 4;
    auto consumer = open_queue(name, &expect);
    ASSERT_TRUE(producer && consumer);

    shmlink_value_t v[4];
    v[0].f = -1.25e-3;
    v[1].i = INT64_MIN + 5;
    v[2].bits = 1;
    v[3].z[0] = 3.5F;
    v[3].z[1] = -0.75F;
    shmlink_sample_t s{};
    s.sequence = 0xFEDCBA9876543210ULL;
    s.ts_origin_ns = 1'700'000'000'123'456'789;
    s.ts_received_ns = -7;
    s.flags = SHMLINK_SAMPLE_HAS_SEQUENCE | SHMLINK_SAMPLE_HAS_DATA | SHMLINK_SAMPLE_HAS_TS_ORIGIN |
              SHMLINK_SAMPLE_NEW_SIMULATION;
    s.length = 4;
    s.capacity = 0;  // ignored by push
    s.values = v;
    ASSERT_EQ(shmlink_queue_push(producer.get(), &s, kLong), SHMLINK_OK) << last_error();
    EXPECT_EQ(shmlink_queue_size_approx(consumer.get()), 1U);

    SampleBuf in(4);
    ASSERT_EQ(shmlink_queue_pop(consumer.get(), &in.s, kLong), SHMLINK_OK) << last_error();
    EXPECT_EQ(in.s.sequence, s.sequence);
    EXPECT_EQ(in.s.ts_origin_ns, s.ts_origin_ns);
    EXPECT_EQ(in.s.ts_received_ns, s.ts_received_ns);
    EXPECT_EQ(in.s.flags, s.flags);
    EXPECT_EQ(in.s.length, 4U);
    EXPECT_EQ(in.s.capacity, 4U) << "pop never changes the caller's capacity";
    EXPECT_EQ(in.values[0].f, -1.25e-3);
    EXPECT_EQ(in.values[1].i, INT64_MIN + 5);
    EXPECT_EQ(in.values[2].bits, 1U);
    EXPECT_EQ(in.values[3].z[0], 3.5F);
    EXPECT_EQ(in.values[3].z[1], -0.75F);

    shmlink_queue_info_t info;
    ASSERT_EQ(shmlink_queue_info(consumer.get(), &info), SHMLINK_OK);
    EXPECT_EQ(info.pushed, 1U);
    EXPECT_EQ(info.popped, 1U);
  }
}

TEST_F(capiQueueIo, EmptySamplesAndNullValuesWithZeroLengthAreFine) {
  auto q = make_queue(test_name());
  shmlink_sample_t s{};
  s.sequence = 9;
  ASSERT_EQ(shmlink_queue_try_push(q.get(), &s), SHMLINK_OK) << last_error();
  shmlink_sample_t in{};  // capacity 0, values NULL: metadata only
  ASSERT_EQ(shmlink_queue_try_pop(q.get(), &in), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.sequence, 9U);
  EXPECT_EQ(in.length, 0U);
}

TEST_F(capiQueueIo, FullIsWouldBlockAndEmptyIsWouldBlockWithoutAMessage) {
  auto q = make_queue(test_name(), qspec(2, 1));
  ASSERT_TRUE(q);
  shmlink_queue_t* missing = nullptr;
  ASSERT_EQ(shmlink_queue_open("marker", nullptr, &missing), SHMLINK_E_NOT_FOUND);
  const std::string marker = last_error();

  SampleBuf in(1);
  EXPECT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(shmlink_queue_pop(q.get(), &in.s, 0), SHMLINK_E_TIMEOUT) << "pop with timeout 0 tries once";
  OutSample a(1, 1), b(2, 1), c(3, 1);
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &a.s), SHMLINK_OK);
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &b.s), SHMLINK_OK);
  const std::string before = last_error();
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &c.s), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(last_error(), before) << "no room is not an error";
  EXPECT_EQ(shmlink_queue_size_approx(q.get()), 2U);

  ASSERT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_OK);
  EXPECT_EQ(in.s.sequence, 1U);
  ASSERT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_OK);
  EXPECT_EQ(in.s.sequence, 2U);
  in.s.sequence = 77;
  EXPECT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(in.s.sequence, 77U) << "a failed pop leaves the caller's sample alone";
}

TEST_F(capiQueueIo, PushAndPopTimeOutInEveryWaitMode) {
  auto q = make_queue(test_name(), qspec(2, 1));
  ASSERT_TRUE(q);
  OutSample out(1, 1);
  SampleBuf in(1);
  for (const int wait : {SHMLINK_WAIT_POLLING, SHMLINK_WAIT_FUTEX, SHMLINK_WAIT_HYBRID}) {
    SCOPED_TRACE(wait);
    ASSERT_EQ(shmlink_queue_set_wait(q.get(), wait), SHMLINK_OK);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(shmlink_queue_pop(q.get(), &in.s, 20 * kMs), SHMLINK_E_TIMEOUT);
    EXPECT_GE(elapsed_ns(t0), 20 * kMs);
    EXPECT_TRUE(contains(last_error(), test_name())) << last_error();
    EXPECT_TRUE(contains(last_error(), "empty")) << last_error();

    ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
    ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
    t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(shmlink_queue_push(q.get(), &out.s, 20 * kMs), SHMLINK_E_TIMEOUT);
    EXPECT_GE(elapsed_ns(t0), 20 * kMs);
    EXPECT_TRUE(contains(last_error(), "full")) << last_error();
    ASSERT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_OK);
    ASSERT_EQ(shmlink_queue_try_pop(q.get(), &in.s), SHMLINK_OK);
  }
}

TEST_F(capiQueueIo, BlockingPopWakesWhenAnotherThreadPushes) {
  auto q = make_queue(test_name(), qspec(4, 2));
  ASSERT_TRUE(q);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    OutSample out(42, 2);
    EXPECT_EQ(shmlink_queue_push(q.get(), &out.s, kLong), SHMLINK_OK) << last_error();
  });
  SampleBuf in(2);
  EXPECT_EQ(shmlink_queue_pop(q.get(), &in.s, -1), SHMLINK_OK) << last_error();  // negative: forever
  producer.join();
  EXPECT_EQ(in.s.sequence, 42U);
  EXPECT_EQ(in.values[1].f, 4201.0);
}

TEST_F(capiQueueIo, OneHandleServesAPushingAndAPoppingThread) {
  auto q = make_queue(test_name(), qspec(8, 3));
  ASSERT_TRUE(q);
  constexpr std::uint64_t kCount = 5000;
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < kCount; ++i) {
      OutSample out(i, static_cast<std::uint32_t>(1 + i % 3));
      ASSERT_EQ(shmlink_queue_push(q.get(), &out.s, kLong), SHMLINK_OK) << last_error();
    }
  });
  SampleBuf in(3);
  for (std::uint64_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(shmlink_queue_pop(q.get(), &in.s, kLong), SHMLINK_OK) << last_error();
    ASSERT_EQ(in.s.sequence, i);
    ASSERT_EQ(in.s.length, 1 + i % 3);
    ASSERT_EQ(in.values[in.s.length - 1].f, static_cast<double>(i * 100 + in.s.length - 1));
  }
  producer.join();
}

TEST_F(capiQueueIo, MpmcTakesEverySampleExactlyOnceThroughSeveralHandles) {
  auto spec = qspec(16, 1);
  spec.kind = SHMLINK_QUEUE_MPMC;
  auto q = make_queue(test_name(), spec);
  ASSERT_TRUE(q);
  constexpr int kProducers = 3;
  constexpr std::uint64_t kEach = 2000;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      auto mine = open_queue(test_name());  // one handle per pushing thread
      for (std::uint64_t i = 0; i < kEach; ++i) {
        OutSample out(static_cast<std::uint64_t>(p) * kEach + i, 1);
        ASSERT_EQ(shmlink_queue_push(mine.get(), &out.s, kLong), SHMLINK_OK) << last_error();
      }
    });
  std::vector<int> seen(kProducers * kEach, 0);
  SampleBuf in(1);
  for (std::uint64_t n = 0; n < kProducers * kEach; ++n) {
    ASSERT_EQ(shmlink_queue_pop(q.get(), &in.s, kLong), SHMLINK_OK) << last_error();
    ASSERT_LT(in.s.sequence, seen.size());
    ++seen[in.s.sequence];
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(seen.size()));
}

TEST_F(capiQueueIo, ShutdownStopsPushesThenConsumersDrainThenGetClosed) {
  auto q = make_queue(test_name(), qspec(8, 1));
  auto consumer = open_queue(test_name());
  ASSERT_TRUE(q && consumer);
  for (std::uint64_t i = 0; i < 3; ++i) {
    OutSample out(i, 1);
    ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
  }
  EXPECT_EQ(shmlink_queue_is_shut(consumer.get()), 0);
  ASSERT_EQ(shmlink_queue_shutdown(q.get()), SHMLINK_OK);
  EXPECT_EQ(shmlink_queue_shutdown(q.get()), SHMLINK_OK) << "idempotent";
  EXPECT_EQ(shmlink_queue_is_shut(consumer.get()), 1);
  OutSample late(9, 1);
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &late.s), SHMLINK_E_SHUT_DOWN);
  EXPECT_EQ(shmlink_queue_push(q.get(), &late.s, kLong), SHMLINK_E_SHUT_DOWN);
  EXPECT_TRUE(contains(last_error(), test_name())) << last_error();

  SampleBuf in(1);
  for (std::uint64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(shmlink_queue_pop(consumer.get(), &in.s, kLong), SHMLINK_OK) << last_error();
    EXPECT_EQ(in.s.sequence, i);
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_queue_pop(consumer.get(), &in.s, kLong), SHMLINK_E_SHUT_DOWN);
  EXPECT_LT(elapsed_ns(t0), kLong / 2) << "a drained, shut queue answers at once";
  EXPECT_TRUE(contains(last_error(), "shut down")) << last_error();
  EXPECT_EQ(shmlink_queue_try_pop(consumer.get(), &in.s), SHMLINK_E_SHUT_DOWN);
  shmlink_queue_info_t info;
  ASSERT_EQ(shmlink_queue_info(consumer.get(), &info), SHMLINK_OK);
  EXPECT_EQ(info.closed, 1);
}

TEST_F(capiQueueIo, ShutdownWakesABlockedPopper) {
  auto q = make_queue(test_name(), qspec(4, 1));
  ASSERT_TRUE(q);
  ASSERT_EQ(shmlink_queue_set_wait(q.get(), SHMLINK_WAIT_FUTEX), SHMLINK_OK);
  int rc = 0;
  std::thread popper([&] {
    SampleBuf in(1);
    rc = shmlink_queue_pop(q.get(), &in.s, kLong);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(shmlink_queue_shutdown(q.get()), SHMLINK_OK);
  popper.join();
  EXPECT_EQ(rc, SHMLINK_E_SHUT_DOWN);
  EXPECT_LT(elapsed_ns(t0), kLong / 2);
}

TEST_F(capiQueueIo, PopIntoATooSmallBufferCopiesCapacityValuesAndReportsTheRealLength) {
  auto q = make_queue(test_name(), qspec(4, 5));
  ASSERT_TRUE(q);
  OutSample out(5, 5);
  ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
  ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);

  // Room for 4, of which the caller offers 2: the rest must stay untouched.
  std::vector<shmlink_value_t> buf(4);
  for (auto& v : buf) v.bits = 0xDEADBEEFDEADBEEFULL;
  shmlink_sample_t in{};
  in.values = buf.data();
  in.capacity = 2;
  ASSERT_EQ(shmlink_queue_try_pop(q.get(), &in), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.length, 5U) << "length is the sample's, so the caller sees it was truncated";
  EXPECT_EQ(in.capacity, 2U);
  EXPECT_EQ(buf[0].f, 500.0);
  EXPECT_EQ(buf[1].f, 501.0);
  EXPECT_EQ(buf[2].bits, 0xDEADBEEFDEADBEEFULL) << "pop wrote past the caller's capacity";
  EXPECT_EQ(buf[3].bits, 0xDEADBEEFDEADBEEFULL) << "pop wrote past the caller's capacity";

  shmlink_sample_t meta{};  // capacity 0: only the metadata
  ASSERT_EQ(shmlink_queue_pop(q.get(), &meta, kLong), SHMLINK_OK);
  EXPECT_EQ(meta.length, 5U);
  EXPECT_EQ(meta.sequence, 5U);
}

TEST_F(capiQueueIo, PushOfMoreValuesThanMaxValuesIsSizeMismatchGivingBothSizes) {
  auto q = make_queue(test_name(), qspec(4, 3));
  ASSERT_TRUE(q);
  OutSample big(1, 4);
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &big.s), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_TRUE(contains(last_error(), test_name())) << last_error();
  EXPECT_TRUE(contains(last_error(), "4")) << last_error();
  EXPECT_TRUE(contains(last_error(), "3")) << last_error();
  EXPECT_EQ(shmlink_queue_push(q.get(), &big.s, kLong), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_EQ(shmlink_queue_size_approx(q.get()), 0U);
}

TEST_F(capiQueueIo, BurstsMoveAsManyAsFitInOrder) {
  auto q = make_queue(test_name(), qspec(4, 2));
  ASSERT_TRUE(q);
  std::vector<std::unique_ptr<OutSample>> outs;
  std::vector<shmlink_sample_t> batch;
  for (std::uint64_t i = 0; i < 6; ++i) {
    outs.push_back(std::make_unique<OutSample>(i, 2));
    batch.push_back(outs.back()->s);
  }
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), 0), 0);
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), batch.size()), 4);
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data() + 4, 2), SHMLINK_E_WOULD_BLOCK);

  std::vector<std::unique_ptr<SampleBuf>> bufs;
  std::vector<shmlink_sample_t> ins;
  for (int i = 0; i < 3; ++i) {
    bufs.push_back(std::make_unique<SampleBuf>(2));
    ins.push_back(bufs.back()->s);
  }
  ASSERT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), 3), 3);
  for (std::uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ins[i].sequence, i);
    EXPECT_EQ(ins[i].values[1].f, static_cast<double>(i * 100 + 1));
  }
  ASSERT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), 3), 1);
  EXPECT_EQ(ins[0].sequence, 3U);
  EXPECT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), 3), SHMLINK_E_WOULD_BLOCK);

  // A bad entry anywhere is refused before anything is popped.
  ASSERT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), 1), 1);
  ins[2].values = nullptr;
  EXPECT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), 3), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_size_approx(q.get()), 1U);
  // A push burst stops at a sample that does not fit and reports it on the next call.
  OutSample big(9, 3);
  const shmlink_sample_t mixed[] = {outs[0]->s, big.s};
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), mixed, 2), 1);
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), mixed + 1, 1), SHMLINK_E_SIZE_MISMATCH);
}

// C push bursts go to the core in runs of up to 32 samples: bursts longer than a run must cross
// run boundaries in order, a full queue must stop one inside a run, and a bad sample past the
// first run must still stop the burst exactly where it stands. Short and long samples.
TEST_F(capiQueueIo, BurstsLongerThanARunCrossRunsInOrderAndStopWhereTheyMust) {
  for (const std::uint32_t max_values : {3U, 1000U}) {
    SCOPED_TRACE(max_values);
    const std::string name = test_name() + std::to_string(max_values);
    auto q = make_queue(name, qspec(128, max_values));
    ASSERT_TRUE(q);
    std::vector<std::unique_ptr<OutSample>> outs;
    std::vector<shmlink_sample_t> batch;
    for (std::uint64_t i = 0; i < 200; ++i) {
      outs.push_back(std::make_unique<OutSample>(i, static_cast<std::uint32_t>(i % (max_values + 1) % 4)));
      outs.back()->s.ts_origin_ns = static_cast<std::int64_t>(i) * 10 + 1;
      batch.push_back(outs.back()->s);
    }
    ASSERT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), 100), 100) << last_error();
    // 28 cells left: the next burst stops inside its first run.
    ASSERT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data() + 100, 50), 28) << last_error();
    EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data() + 128, 1), SHMLINK_E_WOULD_BLOCK);

    std::vector<std::unique_ptr<SampleBuf>> bufs;
    std::vector<shmlink_sample_t> ins;
    for (int i = 0; i < 150; ++i) {
      bufs.push_back(std::make_unique<SampleBuf>(2));  // shorter than 3-value samples: truncated
      ins.push_back(bufs.back()->s);
    }
    ASSERT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), ins.size()), 128) << last_error();
    for (std::uint64_t i = 0; i < 128; ++i) {
      SCOPED_TRACE(i);
      ASSERT_EQ(ins[i].sequence, i);
      EXPECT_EQ(ins[i].ts_origin_ns, static_cast<std::int64_t>(i) * 10 + 1);
      ASSERT_EQ(ins[i].length, batch[i].length);
      for (std::uint32_t v = 0; v < std::min(ins[i].length, 2U); ++v)
        EXPECT_EQ(ins[i].values[v].f, static_cast<double>(i * 100 + v));
    }
    EXPECT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), ins.size()), SHMLINK_E_WOULD_BLOCK);

    // A sample with NULL values and a length, 70 samples in (in the third run): 70 go.
    batch[70].values = nullptr;
    batch[70].length = 2;
    ASSERT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), 80), 70) << last_error();
    EXPECT_EQ(shmlink_queue_size_approx(q.get()), 70U);
    EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data() + 70, 10), SHMLINK_E_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(last_error(), "shmlink_queue_try_push_burst")) << last_error();
    ASSERT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), ins.size()), 70);
    EXPECT_EQ(ins[69].sequence, 69U);
    // A sample longer than max_values, 40 samples in (in the second run): 40 go.
    OutSample big(1, max_values + 1);
    batch[40] = big.s;
    ASSERT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), 60), 40) << last_error();
    EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data() + 40, 20), SHMLINK_E_SIZE_MISMATCH);
    ASSERT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), ins.size()), 40);
    EXPECT_EQ(ins[39].sequence, 39U);
    EXPECT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), ins.size()), SHMLINK_E_WOULD_BLOCK);
  }
}

/// Bytes of heap in use (small blocks and mmapped ones), as glibc counts them.
std::size_t heap_in_use() {
  const struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Pushes and bursts copy the values straight from the caller's arrays into the cells and back
// (sample views): a handle holds no runs of scratch samples, only one sample's room for a pop
// that has to wait. For 4096-value samples that is 32 KiB, where runs of scratch samples for
// both directions took 256 KiB.
TEST_F(capiQueueIo, AHandleHoldsNoBurstScratchOnlyOnePopSample) {
  {  // mallinfo2 must see this allocator's heap (a sanitizer's allocator is invisible to it)
    const std::size_t before = heap_in_use();
    std::vector<std::byte> probe(256 * 1024);
    if (heap_in_use() < before + probe.size()) GTEST_SKIP() << "mallinfo2 does not see this build's allocator";
  }
  const std::size_t before = heap_in_use();
  auto q = make_queue(test_name(), qspec(8, SHMLINK_MAX_SAMPLE_VALUES));
  ASSERT_TRUE(q);
  const std::size_t handle_bytes = heap_in_use() - before;
  EXPECT_GE(handle_bytes, std::size_t{SHMLINK_MAX_SAMPLE_VALUES} * sizeof(shmlink_value_t)) << "the pop scratch";
  EXPECT_LT(handle_bytes, std::size_t{64} * 1024) << "a handle of a 4096-value queue holds " << handle_bytes << " bytes";
  // And the bursts move every value.
  std::vector<shmlink_value_t> values(SHMLINK_MAX_SAMPLE_VALUES);
  for (std::size_t i = 0; i < values.size(); ++i) values[i].i = static_cast<std::int64_t>(i) * 3;
  std::vector<shmlink_sample_t> batch(3);
  for (std::uint64_t k = 0; k < batch.size(); ++k) {
    batch[k].sequence = k;
    batch[k].length = SHMLINK_MAX_SAMPLE_VALUES;
    batch[k].values = values.data();
  }
  ASSERT_EQ(shmlink_queue_try_push_burst(q.get(), batch.data(), batch.size()), 3) << last_error();
  std::vector<std::vector<shmlink_value_t>> got(3, std::vector<shmlink_value_t>(SHMLINK_MAX_SAMPLE_VALUES));
  std::vector<shmlink_sample_t> ins(3);
  for (std::size_t k = 0; k < ins.size(); ++k) {
    ins[k].values = got[k].data();
    ins[k].capacity = SHMLINK_MAX_SAMPLE_VALUES;
  }
  ASSERT_EQ(shmlink_queue_try_pop_burst(q.get(), ins.data(), ins.size()), 3) << last_error();
  for (std::size_t k = 0; k < ins.size(); ++k) {
    ASSERT_EQ(ins[k].sequence, k);
    ASSERT_EQ(ins[k].length, SHMLINK_MAX_SAMPLE_VALUES);
    EXPECT_EQ(got[k].back().i, static_cast<std::int64_t>(SHMLINK_MAX_SAMPLE_VALUES - 1) * 3);
  }
}

TEST_F(capiQueueIo, ReadOnlyHandleInspectsButCannotPushPopOrShutdown) {
  const shmlink_signal_t table[] = {sig(0, "v", SHMLINK_SIGNAL_F64)};
  auto spec = qspec(4, 1);
  spec.signals = table;
  spec.signal_count = 1;
  auto q = make_queue(test_name(), spec);
  OutSample out(1, 1);
  ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
  shmlink_queue_expect_t expect;
  shmlink_queue_expect_init(&expect);
  expect.read_only = 1;
  auto ro = open_queue(test_name(), &expect);
  ASSERT_TRUE(ro);
  EXPECT_EQ(shmlink_queue_size_approx(ro.get()), 1U);
  EXPECT_EQ(shmlink_queue_signal_count(ro.get()), 1);
  shmlink_queue_info_t info;
  EXPECT_EQ(shmlink_queue_info(ro.get(), &info), SHMLINK_OK);
  EXPECT_EQ(info.pushed, 1U);
  SampleBuf in(1);
  EXPECT_EQ(shmlink_queue_try_pop(ro.get(), &in.s), SHMLINK_E_PERMISSION);
  EXPECT_TRUE(contains(last_error(), "read-only")) << last_error();
  EXPECT_EQ(shmlink_queue_try_push(ro.get(), &out.s), SHMLINK_E_PERMISSION);
  EXPECT_EQ(shmlink_queue_shutdown(ro.get()), SHMLINK_E_PERMISSION);
  EXPECT_EQ(shmlink_queue_is_shut(q.get()), 0);
  EXPECT_EQ(shmlink_queue_size_approx(q.get()), 1U);
}

// ---- NULL and invalid arguments -------------------------------------------------------------

TEST_F(capiQueueArgs, NullArgumentsAreInvalidArgumentNamingFunctionAndArgument) {
  auto q = make_queue(test_name());
  ASSERT_TRUE(q);
  const auto spec = qspec();
  shmlink_queue_t* raw = nullptr;
  OutSample out(1, 1);
  SampleBuf in(1);
  shmlink_queue_info_t info;
  shmlink_signal_t s;

  EXPECT_EQ(shmlink_queue_create(nullptr, &spec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "shmlink_queue_create") && contains(last_error(), "name")) << last_error();
  EXPECT_EQ(shmlink_queue_create("x", nullptr, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_create("x", &spec, SHMLINK_EXCLUSIVE_CREATE, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_open(nullptr, nullptr, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_open("x", nullptr, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_destroy(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "shmlink_queue_destroy: name is NULL")) << last_error();

  EXPECT_EQ(shmlink_queue_try_push(nullptr, &out.s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "shmlink_queue_try_push") && contains(last_error(), "queue")) << last_error();
  EXPECT_EQ(shmlink_queue_try_push(q.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "sample")) << last_error();
  EXPECT_EQ(shmlink_queue_push(nullptr, &out.s, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_push(q.get(), nullptr, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_try_push_burst(nullptr, &out.s, 1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), nullptr, 1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_try_pop(nullptr, &in.s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_try_pop(q.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_pop(nullptr, &in.s, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_pop(q.get(), nullptr, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_try_pop_burst(nullptr, &in.s, 1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_try_pop_burst(q.get(), nullptr, 1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_shutdown(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_is_shut(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_set_wait(nullptr, SHMLINK_WAIT_FUTEX), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_info(nullptr, &info), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_info(q.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_signal_count(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_signal(nullptr, 0, &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_signal(q.get(), 0, nullptr), SHMLINK_E_INVALID_ARGUMENT);

  // What NULL means where it is accepted.
  EXPECT_EQ(shmlink_queue_close(nullptr), SHMLINK_OK);
  EXPECT_EQ(shmlink_queue_size_approx(nullptr), 0U);
  EXPECT_STREQ(shmlink_queue_name(nullptr), "");
  EXPECT_STREQ(shmlink_queue_path(nullptr), "");
  EXPECT_EQ(shmlink_queue_try_push_burst(q.get(), nullptr, 0), 0);
  EXPECT_EQ(shmlink_queue_try_pop_burst(q.get(), nullptr, 0), 0);
}

TEST_F(capiQueueArgs, NullValuesWithALengthOrCapacityAreInvalidArgument) {
  auto q = make_queue(test_name());
  ASSERT_TRUE(q);
  shmlink_sample_t s{};
  s.length = 1;
  EXPECT_EQ(shmlink_queue_try_push(q.get(), &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "values")) << last_error();
  OutSample out(1, 1);
  ASSERT_EQ(shmlink_queue_try_push(q.get(), &out.s), SHMLINK_OK);
  shmlink_sample_t in{};
  in.capacity = 4;
  EXPECT_EQ(shmlink_queue_try_pop(q.get(), &in), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_pop(q.get(), &in, kLong), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_queue_size_approx(q.get()), 1U) << "a refused pop must not consume the sample";
}

TEST_F(capiQueueArgs, BadSpecsAreRefusedWithAMessageAndNoFile) {
  shmlink_queue_t* raw = nullptr;
  auto refused = [&](const shmlink_queue_spec_t& spec, int mode, const char* what, const char* needle) {
    EXPECT_EQ(shmlink_queue_create(test_name().c_str(), &spec, mode, &raw), SHMLINK_E_INVALID_ARGUMENT) << what;
    EXPECT_EQ(raw, nullptr) << what;
    EXPECT_TRUE(contains(last_error(), needle)) << what << ": " << last_error();
    EXPECT_FALSE(file_exists(queue_file(test_name()))) << what;
  };
  auto spec = qspec();
  refused(spec, 7, "mode", "open mode");
  refused(spec, -1, "negative mode", "open mode");
  spec.capacity = 6;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "capacity", "power of two");
  spec = qspec();
  spec.max_values = 0;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "max_values 0", "max_values");
  spec = qspec();
  spec.kind = 3;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "kind", "kind");
  spec = qspec();
  spec.wait = 0;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "wait", "wait");
  spec = qspec();
  spec.signal_count = 1;  // signals NULL
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "NULL signals", "signals");

  shmlink_signal_t table[2] = {sig(0, "a", SHMLINK_SIGNAL_F64), sig(0, "b", SHMLINK_SIGNAL_F64)};
  spec = qspec(8, 4);
  spec.signals = table;
  spec.signal_count = 2;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "duplicate index", "index 0");
  table[1].index = 4;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "index out of range", "index 4");
  table[1].index = 1;
  table[1].type = 9;
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "signal type", "type");
  table[1].type = SHMLINK_SIGNAL_C64;
  std::memset(table[1].name, 'n', sizeof table[1].name);  // no NUL
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "unterminated name", "NUL");
  set_field(table[1].name, "b");
  std::memset(table[1].unit, 'u', sizeof table[1].unit);
  refused(spec, SHMLINK_EXCLUSIVE_CREATE, "unterminated unit", "NUL");
  set_field(table[1].unit, "");
  EXPECT_EQ(shmlink_queue_create(test_name().c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_OK)
      << last_error();
  shmlink_queue_close(raw);

  spec = qspec();
  const std::string long_name(80, 'q');
  EXPECT_EQ(shmlink_queue_create(long_name.c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_EQ(shmlink_queue_create("", &spec, SHMLINK_EXCLUSIVE_CREATE, &raw), SHMLINK_E_INVALID_ARGUMENT);
}

TEST_F(capiQueueArgs, BadExpectationsAndWaitModesAreInvalidArgument) {
  auto q = make_queue(test_name());
  ASSERT_TRUE(q);
  shmlink_queue_expect_t e;
  shmlink_queue_expect_init(&e);
  e.kind = 5;
  shmlink_queue_t* raw = nullptr;
  EXPECT_EQ(shmlink_queue_open(test_name().c_str(), &e, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "kind")) << last_error();
  shmlink_queue_expect_init(&e);
  shmlink_signal_t bad = sig(0, "", SHMLINK_SIGNAL_F64);
  std::memset(bad.name, 'x', sizeof bad.name);
  e.signals = &bad;
  e.signal_count = 1;
  EXPECT_EQ(shmlink_queue_open(test_name().c_str(), &e, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(raw, nullptr);

  for (const int wait : {0, 4, -1, 1000})
    EXPECT_EQ(shmlink_queue_set_wait(q.get(), wait), SHMLINK_E_INVALID_ARGUMENT) << wait;
}

// ---- interfaces -----------------------------------------------------------------------------

/// An interface spec pointing at `out` and `in` (non-const lvalues: the spec keeps their c_str(),
/// so temporaries are refused at compile time).
shmlink_interface_spec_t ispec(std::string& out, std::string& in) {
  shmlink_interface_spec_t spec;
  shmlink_interface_spec_init(&spec);
  spec.out = out.c_str();
  spec.in = in.c_str();
  spec.capacity = 8;
  spec.attach_timeout_ns = kLong;
  spec.liveness_interval_ns = 5 * kMs;
  spec.stop_timeout_ns = 50 * kMs;
  return spec;
}

Iface make_iface(const shmlink_interface_spec_t& spec) {
  shmlink_interface_t* raw = nullptr;
  const int rc = shmlink_interface_create(&spec, &raw);
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  return Iface(raw);
}

std::string describe(const shmlink_interface_t* i) {
  char buf[256];
  const int n = shmlink_interface_peer_describe(i, buf, sizeof buf);
  EXPECT_GE(n, 0) << last_error();
  return buf;
}

TEST_F(capiInterface, SpecInitFillsDefaultsAndAcceptsNull) {
  shmlink_interface_spec_t spec;
  std::memset(&spec, 0xAB, sizeof spec);
  shmlink_interface_spec_init(&spec);
  EXPECT_EQ(spec.out, nullptr);
  EXPECT_EQ(spec.in, nullptr);
  EXPECT_EQ(spec.capacity, 512U);
  EXPECT_EQ(spec.max_values, 0U);
  EXPECT_EQ(spec.kind, SHMLINK_QUEUE_SPSC);
  EXPECT_EQ(spec.wait, SHMLINK_WAIT_HYBRID);
  EXPECT_EQ(spec.attach_timeout_ns, 10'000 * kMs);
  EXPECT_EQ(spec.liveness_interval_ns, 20 * kMs);
  EXPECT_EQ(spec.stop_timeout_ns, 2'000 * kMs);
  EXPECT_EQ(spec.permissions, 0600U);
  EXPECT_EQ(spec.exec, nullptr);
  EXPECT_EQ(spec.protocol, SHMLINK_PROTOCOL_SHMLINK);
  shmlink_interface_spec_init(nullptr);
}

// SHMLINK_PROTOCOL_VILLAS: VILLASnode's regions in /dev/shm instead of queue files, the same calls.
TEST_F(capiInterface, VillasProtocolLoopbackReadsWhatItWrites) {
  std::string name = "/shmlink-capi-vt" + std::to_string(::getpid());
  struct Cleanup {  // a failed assertion leaves nothing in /dev/shm either
    std::string object;
    ~Cleanup() {
      ::shm_unlink(object.c_str());
      ::sem_unlink(object.c_str());
    }
  } cleanup{name};
  auto spec = ispec(name, name);
  spec.protocol = 7;
  shmlink_interface_t* raw = nullptr;
  EXPECT_EQ(shmlink_interface_create(&spec, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "protocol 7")) << last_error();
  spec.protocol = SHMLINK_PROTOCOL_VILLAS;
  auto i = make_iface(spec);
  ASSERT_TRUE(i);
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 0, "voltage", SHMLINK_SIGNAL_F64, "V"), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 1, "steps", SHMLINK_SIGNAL_I64, nullptr), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_connect(i.get()), SHMLINK_OK) << last_error();
  EXPECT_TRUE(file_exists("/dev/shm" + name)) << "the region is a POSIX shared-memory object";
  EXPECT_FALSE(file_exists(queue_file(name.substr(1)))) << "no queue file";
  shmlink_queue_info_t info;
  ASSERT_EQ(shmlink_interface_out_info(i.get(), &info), SHMLINK_OK) << last_error();
  EXPECT_EQ(info.max_values, 2U);
  EXPECT_EQ(info.capacity, 8U);
  ASSERT_EQ(shmlink_interface_in_info(i.get(), &info), SHMLINK_OK);
  EXPECT_GE(info.max_values, 2U);
  EXPECT_EQ(info.capacity, 8U) << "the peer region's queuelen";
  EXPECT_EQ(info.wait, spec.wait == SHMLINK_WAIT_POLLING ? SHMLINK_WAIT_POLLING : SHMLINK_WAIT_HYBRID)
      << "the peer region's mode";
  EXPECT_EQ(shmlink_interface_peer_signal_count(i.get()), 0) << "no signal table travels";

  for (int k = 0; k < 3; ++k) {
    shmlink_value_t v[2];
    v[0].f = 1.5 * k;
    v[1].i = -k;
    ASSERT_EQ(shmlink_interface_write_values(i.get(), v, 2, kLong), SHMLINK_OK) << last_error();
  }
  shmlink_value_t many[3] = {};
  EXPECT_EQ(shmlink_interface_write_values(i.get(), many, 3, kLong), SHMLINK_E_SIZE_MISMATCH);
  SampleBuf in(4);
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(shmlink_interface_read(i.get(), &in.s, kLong), SHMLINK_OK) << last_error();
    EXPECT_EQ(in.s.sequence, static_cast<std::uint64_t>(k));
    EXPECT_EQ(in.s.length, 2U);
    EXPECT_EQ(in.values[0].f, 1.5 * k);
    EXPECT_EQ(in.values[1].i, -k);
    EXPECT_NE(in.s.flags & SHMLINK_SAMPLE_HAS_TS_RECEIVED, 0U);
  }
  EXPECT_EQ(shmlink_interface_read(i.get(), &in.s, 0), SHMLINK_E_WOULD_BLOCK);
  ASSERT_EQ(shmlink_interface_disconnect(i.get()), SHMLINK_OK);
  EXPECT_FALSE(file_exists("/dev/shm" + name)) << "close removes the region";
}

TEST_F(capiInterface, LoopbackReadsWhatItWrites) {
  std::string name = test_name();
  auto i = make_iface(ispec(name, name));
  ASSERT_TRUE(i);
  EXPECT_EQ(shmlink_interface_is_connected(i.get()), 0);
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 0, "voltage", SHMLINK_SIGNAL_F64, "V"), SHMLINK_OK)
      << last_error();
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 1, "steps", SHMLINK_SIGNAL_I64, nullptr), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 2, "phasor", SHMLINK_SIGNAL_C64, "A"), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_import_signal(i.get(), 2, nullptr, SHMLINK_SIGNAL_C64, nullptr), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_connect(i.get()), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_interface_is_connected(i.get()), 1);
  EXPECT_TRUE(file_exists(queue_file(name)));
  EXPECT_EQ(shmlink_interface_peer_alive(i.get()), 1);
  EXPECT_EQ(shmlink_interface_export_signal(i.get(), 3, "late", SHMLINK_SIGNAL_F64, ""), SHMLINK_E_CLOSED);

  shmlink_queue_info_t info;
  ASSERT_EQ(shmlink_interface_out_info(i.get(), &info), SHMLINK_OK) << last_error();
  EXPECT_EQ(info.max_values, 3U) << "max_values 0: highest export + 1";
  EXPECT_EQ(info.capacity, 8U);
  ASSERT_EQ(shmlink_interface_in_info(i.get(), &info), SHMLINK_OK);
  EXPECT_EQ(info.max_values, 3U);
  ASSERT_EQ(shmlink_interface_peer_signal_count(i.get()), 3);
  shmlink_signal_t s;
  ASSERT_EQ(shmlink_interface_peer_signal(i.get(), 0, &s), SHMLINK_OK);
  EXPECT_STREQ(s.name, "voltage");
  EXPECT_STREQ(s.unit, "V");
  EXPECT_EQ(shmlink_interface_peer_signal(i.get(), 3, &s), SHMLINK_E_OUT_OF_RANGE);

  EXPECT_EQ(shmlink_interface_next_sequence(i.get()), 0U);
  shmlink_value_t v[3];
  v[0].f = 230.5;
  v[1].i = -12;
  v[2].z[0] = 1.0F;
  v[2].z[1] = -2.0F;
  ASSERT_EQ(shmlink_interface_write_values(i.get(), v, 3, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_interface_next_sequence(i.get()), 1U);

  SampleBuf in(3);
  ASSERT_EQ(shmlink_interface_read(i.get(), &in.s, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.s.sequence, 0U);
  EXPECT_EQ(in.s.length, 3U);
  EXPECT_EQ(in.values[0].f, 230.5);
  EXPECT_EQ(in.values[1].i, -12);
  EXPECT_EQ(in.values[2].z[1], -2.0F);
  const std::uint32_t want = SHMLINK_SAMPLE_HAS_SEQUENCE | SHMLINK_SAMPLE_HAS_DATA | SHMLINK_SAMPLE_HAS_TS_ORIGIN |
                             SHMLINK_SAMPLE_HAS_TS_RECEIVED;
  EXPECT_EQ(in.s.flags & want, want);
  EXPECT_GT(in.s.ts_origin_ns, 0);
  EXPECT_GE(in.s.ts_received_ns, in.s.ts_origin_ns);

  // A sample as given; the next write_values continues from its sequence.
  OutSample given(41, 2);
  given.s.flags |= SHMLINK_SAMPLE_NEW_FRAME;
  ASSERT_EQ(shmlink_interface_write(i.get(), &given.s, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_interface_next_sequence(i.get()), 42U);
  ASSERT_EQ(shmlink_interface_read(i.get(), &in.s, kLong), SHMLINK_OK);
  EXPECT_EQ(in.s.sequence, 41U);
  EXPECT_EQ(in.s.length, 2U);
  EXPECT_EQ(in.values[1].f, 4101.0);
  EXPECT_NE(in.s.flags & SHMLINK_SAMPLE_NEW_FRAME, 0U);

  // Nothing there: would_block at 0 (no message), timeout otherwise.
  const std::string before = last_error();
  EXPECT_EQ(shmlink_interface_read(i.get(), &in.s, 0), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(last_error(), before);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_interface_read(i.get(), &in.s, 20 * kMs), SHMLINK_E_TIMEOUT);
  EXPECT_GE(elapsed_ns(t0), 20 * kMs);
  EXPECT_TRUE(contains(last_error(), name)) << last_error();

  // Too many values; a buffer that is too small.
  shmlink_value_t many[4] = {};
  EXPECT_EQ(shmlink_interface_write_values(i.get(), many, 4, kLong), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_TRUE(contains(last_error(), name)) << last_error();
  ASSERT_EQ(shmlink_interface_write_values(i.get(), v, 3, kLong), SHMLINK_OK);
  SampleBuf small(1);
  ASSERT_EQ(shmlink_interface_read(i.get(), &small.s, kLong), SHMLINK_OK);
  EXPECT_EQ(small.s.length, 3U);
  EXPECT_EQ(small.values[0].f, 230.5);

  // Full: would_block at 0, timeout otherwise.
  for (int n = 0; n < 8; ++n) ASSERT_EQ(shmlink_interface_write_values(i.get(), v, 3, 0), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_write_values(i.get(), v, 3, 0), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(shmlink_interface_write_values(i.get(), v, 3, 10 * kMs), SHMLINK_E_TIMEOUT);

  ASSERT_EQ(shmlink_interface_disconnect(i.get()), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_disconnect(i.get()), SHMLINK_OK) << "idempotent";
  EXPECT_EQ(shmlink_interface_is_connected(i.get()), 0);
  EXPECT_FALSE(file_exists(queue_file(name))) << "close removes the output";
  EXPECT_EQ(shmlink_interface_write_values(i.get(), v, 3, 0), SHMLINK_E_CLOSED);
  EXPECT_TRUE(contains(last_error(), "not open")) << last_error();
  EXPECT_EQ(shmlink_interface_read(i.get(), &in.s, 0), SHMLINK_E_CLOSED);
  EXPECT_EQ(shmlink_interface_out_info(i.get(), &info), SHMLINK_E_CLOSED);
}

TEST_F(capiInterface, ReadBurstCopiesWhatIsThereUpToCountAndWaitsOnlyForTheFirst) {
  std::string name = test_name();
  auto i = make_iface(ispec(name, name));
  ASSERT_TRUE(i);
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 1, "b", SHMLINK_SIGNAL_F64, nullptr), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_connect(i.get()), SHMLINK_OK) << last_error();
  for (std::uint64_t k = 0; k < 5; ++k) {
    OutSample o(k, 2);
    ASSERT_EQ(shmlink_interface_write(i.get(), &o.s, kLong), SHMLINK_OK) << last_error();
  }
  std::vector<std::unique_ptr<SampleBuf>> bufs;
  for (int k = 0; k < 4; ++k) bufs.push_back(std::make_unique<SampleBuf>(2));
  std::vector<shmlink_sample_t> out;
  for (auto& b : bufs) out.push_back(b->s);
  ASSERT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 3, 0), 3) << last_error();
  for (std::uint64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(out[k].sequence, k);
    EXPECT_EQ(out[k].length, 2U);
    EXPECT_EQ(out[k].values[1].f, static_cast<double>(k * 100 + 1));
    EXPECT_NE(out[k].flags & SHMLINK_SAMPLE_HAS_TS_RECEIVED, 0U);
    EXPECT_GT(out[k].ts_received_ns, 0);
  }
  ASSERT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 4, 0), 2) << "as many as are there";
  EXPECT_EQ(out[1].sequence, 4U);
  const std::string before = last_error();
  EXPECT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 4, 0), SHMLINK_E_WOULD_BLOCK);
  EXPECT_EQ(last_error(), before) << "no data is not an error";
  EXPECT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 4, 10 * kMs), SHMLINK_E_TIMEOUT);
  EXPECT_TRUE(contains(last_error(), name)) << last_error();
  EXPECT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 0, 0), 0);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    OutSample o(9, 2);
    EXPECT_EQ(shmlink_interface_write(i.get(), &o.s, kLong), SHMLINK_OK);
  });
  const int waited = shmlink_interface_read_burst(i.get(), out.data(), 4, kLong);
  writer.join();
  ASSERT_EQ(waited, 1) << last_error();
  EXPECT_EQ(out[0].sequence, 9U);
  // Every entry is checked before anything is read: a bad one costs no sample.
  OutSample o(10, 2);
  ASSERT_EQ(shmlink_interface_write(i.get(), &o.s, kLong), SHMLINK_OK);
  out[1].values = nullptr;
  EXPECT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 2, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "shmlink_interface_read_burst")) << last_error();
  ASSERT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 1, 0), 1) << "the sample is still there";
  EXPECT_EQ(out[0].sequence, 10U);
  EXPECT_EQ(shmlink_interface_read_burst(nullptr, out.data(), 1, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_read_burst(i.get(), nullptr, 1, 0), SHMLINK_E_INVALID_ARGUMENT);
  ASSERT_EQ(shmlink_interface_disconnect(i.get()), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_read_burst(i.get(), out.data(), 1, 0), SHMLINK_E_CLOSED);
}

TEST_F(capiInterface, ImportThatDoesNotMatchIsLayoutNamingTheIndex) {
  std::string name = test_name();
  auto i = make_iface(ispec(name, name));
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 0, "f", SHMLINK_SIGNAL_F64, "Hz"), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_import_signal(i.get(), 0, "f", SHMLINK_SIGNAL_I64, nullptr), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_connect(i.get()), SHMLINK_E_LAYOUT);
  EXPECT_TRUE(contains(last_error(), "import 0")) << last_error();
  EXPECT_EQ(shmlink_interface_is_connected(i.get()), 0);
  EXPECT_FALSE(file_exists(queue_file(name))) << "a failed open leaves no output behind";
}

TEST_F(capiInterface, TwoHandlesInTwoThreadsExchangeSamples) {
  std::string a2b = test_name("_a2b"), b2a = test_name("_b2a");
  auto a = make_iface(ispec(a2b, b2a));
  auto b = make_iface(ispec(b2a, a2b));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(shmlink_interface_export_signal(a.get(), 0, "u", SHMLINK_SIGNAL_F64, "V"), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_import_signal(a.get(), 0, "i", SHMLINK_SIGNAL_F64, "A"), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_export_signal(b.get(), 0, "i", SHMLINK_SIGNAL_F64, "A"), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_export_signal(b.get(), 1, "k", SHMLINK_SIGNAL_I64, ""), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_import_signal(b.get(), 0, "u", SHMLINK_SIGNAL_F64, "V"), SHMLINK_OK);

  constexpr int kSteps = 50;
  // Each side: open (waiting for the other), then per step write one sample and read one.
  auto side = [&](shmlink_interface_t* me, double base, std::uint32_t n, std::vector<double>* got) {
    const int rc = shmlink_interface_connect(me);
    if (rc != SHMLINK_OK) return rc;
    SampleBuf in(4);
    for (int step = 0; step < kSteps; ++step) {
      shmlink_value_t v[2];
      v[0].f = base + step;
      v[1].i = step;
      if (const int w = shmlink_interface_write_values(me, v, n, kLong); w != SHMLINK_OK) return w;
      if (const int r = shmlink_interface_read(me, &in.s, kLong); r != SHMLINK_OK) return r;
      if (in.s.sequence != static_cast<std::uint64_t>(step)) return -1000;
      got->push_back(in.values[0].f);
    }
    return SHMLINK_OK;
  };
  std::vector<double> got_a, got_b;
  int rc_a = 1, rc_b = 1;
  std::string err_a, err_b;
  std::thread ta([&] {
    rc_a = side(a.get(), 1000, 1, &got_a);
    err_a = last_error();
  });
  std::thread tb([&] {
    rc_b = side(b.get(), 2000, 2, &got_b);
    err_b = last_error();
  });
  ta.join();
  tb.join();
  ASSERT_EQ(rc_a, SHMLINK_OK) << err_a;
  ASSERT_EQ(rc_b, SHMLINK_OK) << err_b;
  ASSERT_EQ(got_a.size(), static_cast<std::size_t>(kSteps));
  ASSERT_EQ(got_b.size(), static_cast<std::size_t>(kSteps));
  for (int step = 0; step < kSteps; ++step) {
    EXPECT_EQ(got_a[step], 2000.0 + step);
    EXPECT_EQ(got_b[step], 1000.0 + step);
  }
  shmlink_queue_info_t info;
  ASSERT_EQ(shmlink_interface_in_info(a.get(), &info), SHMLINK_OK);
  EXPECT_EQ(info.max_values, 2U);
  EXPECT_EQ(shmlink_interface_peer_signal_count(a.get()), 2);
  shmlink_peer_status_t peer;
  ASSERT_EQ(shmlink_interface_peer(a.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.pid, static_cast<std::int32_t>(::getpid()));
  EXPECT_EQ(peer.launched, 0);
  EXPECT_EQ(peer.exited, 0);

  // A closes: B reads what is left, then CLOSED; its peer status says so.
  shmlink_value_t last;
  last.f = -1;
  ASSERT_EQ(shmlink_interface_write_values(a.get(), &last, 1, kLong), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_disconnect(a.get()), SHMLINK_OK);
  SampleBuf in(2);
  ASSERT_EQ(shmlink_interface_read(b.get(), &in.s, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.values[0].f, -1.0);
  EXPECT_EQ(shmlink_interface_read(b.get(), &in.s, kLong), SHMLINK_E_SHUT_DOWN);
  EXPECT_TRUE(contains(last_error(), "closed")) << last_error();
  ASSERT_EQ(shmlink_interface_peer(b.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.closed, 1);
  EXPECT_EQ(shmlink_interface_peer_alive(b.get()), 0);
  ASSERT_EQ(shmlink_interface_disconnect(b.get()), SHMLINK_OK);
  EXPECT_EQ(dir_.entries(), 0) << "both outputs are removed";
}

/// Connects `a` and `b`, each the other's peer, from two threads (each connect waits for the other).
void connect_pair(shmlink_interface_t* a, shmlink_interface_t* b) {
  int rc_a = 1;
  std::string error_a;
  std::thread t([&] {
    rc_a = shmlink_interface_connect(a);
    error_a = last_error();
  });
  const int rc_b = shmlink_interface_connect(b);
  t.join();
  ASSERT_EQ(rc_a, SHMLINK_OK) << error_a;
  ASSERT_EQ(rc_b, SHMLINK_OK) << last_error();
}

TEST_F(capiInterface, CloseDisconnectsAndFreesTheHandle) {
  std::string a2b = test_name("_a2b"), b2a = test_name("_b2a");
  const auto spec_a = ispec(a2b, b2a);
  shmlink_interface_t* a = nullptr;  // closed by hand below, so no Iface
  ASSERT_EQ(shmlink_interface_create(&spec_a, &a), SHMLINK_OK) << last_error();
  auto b = make_iface(ispec(b2a, a2b));
  ASSERT_TRUE(a && b);
  ASSERT_NO_FATAL_FAILURE(connect_pair(a, b.get()));
  shmlink_value_t v;
  v.f = 7.5;
  ASSERT_EQ(shmlink_interface_write_values(a, &v, 1, kLong), SHMLINK_OK) << last_error();
  // Frees `a` (a leak here is reported by LeakSanitizer in the asan preset, or valgrind).
  ASSERT_EQ(shmlink_interface_close(a), SHMLINK_OK);
  EXPECT_FALSE(file_exists(queue_file(a2b))) << "close removes the output";
  SampleBuf in(1);
  ASSERT_EQ(shmlink_interface_read(b.get(), &in.s, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.values[0].f, 7.5);
  EXPECT_EQ(shmlink_interface_read(b.get(), &in.s, kLong), SHMLINK_E_SHUT_DOWN);
  shmlink_peer_status_t peer;
  ASSERT_EQ(shmlink_interface_peer(b.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.closed, 1);
  EXPECT_EQ(shmlink_interface_close(nullptr), SHMLINK_OK);
}

TEST_F(capiInterface, DisconnectKeepsTheHandleAndConnectAttachesAgain) {
  std::string a2b = test_name("_a2b"), b2a = test_name("_b2a");
  auto a = make_iface(ispec(a2b, b2a));
  auto b = make_iface(ispec(b2a, a2b));
  ASSERT_TRUE(a && b);
  ASSERT_NO_FATAL_FAILURE(connect_pair(a.get(), b.get()));
  ASSERT_EQ(shmlink_interface_disconnect(a.get()), SHMLINK_OK);
  ASSERT_EQ(shmlink_interface_disconnect(b.get()), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_is_connected(a.get()), 0);
  EXPECT_EQ(dir_.entries(), 0) << "both outputs are removed";
  shmlink_peer_status_t peer;  // the handle is still there: its peer status reads
  ASSERT_EQ(shmlink_interface_peer(a.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.pid, static_cast<std::int32_t>(::getpid()));

  ASSERT_NO_FATAL_FAILURE(connect_pair(a.get(), b.get()));
  EXPECT_EQ(shmlink_interface_is_connected(a.get()), 1);
  shmlink_value_t v;
  v.f = 3.25;
  ASSERT_EQ(shmlink_interface_write_values(b.get(), &v, 1, kLong), SHMLINK_OK) << last_error();
  SampleBuf in(1);
  ASSERT_EQ(shmlink_interface_read(a.get(), &in.s, kLong), SHMLINK_OK) << last_error();
  EXPECT_EQ(in.values[0].f, 3.25);
}

TEST_F(capiInterface, OlderNamesKeepTheirMeaning) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  std::string name = test_name();
  const auto spec = ispec(name, name);
  shmlink_interface_t* raw = nullptr;
  ASSERT_EQ(shmlink_interface_new(&spec, &raw), SHMLINK_OK) << last_error();  // = create
  EXPECT_EQ(shmlink_interface_is_open(raw), 0);                               // = is_connected
  ASSERT_EQ(shmlink_interface_open(raw), SHMLINK_OK) << last_error();         // = connect
  EXPECT_EQ(shmlink_interface_is_open(raw), 1);
  EXPECT_TRUE(file_exists(queue_file(name)));
  EXPECT_EQ(shmlink_interface_destroy(raw), SHMLINK_OK);  // = close: disconnects and frees
  EXPECT_FALSE(file_exists(queue_file(name)));
  EXPECT_EQ(shmlink_interface_destroy(nullptr), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_new(nullptr, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_open(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_is_open(nullptr), SHMLINK_E_INVALID_ARGUMENT);
#pragma GCC diagnostic pop
}

TEST_F(capiInterface, APeerThatDiesIsPeerExitedAfterItsSamplesAreRead) {
  std::string mine = test_name("_p2c"), theirs = test_name("_c2p");
  const pid_t child = shmlink::test::spawn([&] {
    auto spec = ispec(theirs, mine);
    shmlink_interface_t* c = nullptr;
    if (shmlink_interface_create(&spec, &c) != SHMLINK_OK) return 10;
    if (shmlink_interface_export_signal(c, 0, "x", SHMLINK_SIGNAL_F64, "") != SHMLINK_OK) return 11;
    if (shmlink_interface_connect(c) != SHMLINK_OK) return 12;
    for (int n = 0; n < 2; ++n) {
      shmlink_value_t v;
      v.f = 10.0 + n;
      if (shmlink_interface_write_values(c, &v, 1, kLong) != SHMLINK_OK) return 13;
    }
    ::_exit(0);  // dies without closing: the kernel drops its lock
  });
  ASSERT_GT(child, 0);
  auto i = make_iface(ispec(mine, theirs));
  ASSERT_EQ(shmlink_interface_connect(i.get()), SHMLINK_OK) << last_error();
  SampleBuf in(1);
  for (int n = 0; n < 2; ++n) {
    ASSERT_EQ(shmlink_interface_read(i.get(), &in.s, kLong), SHMLINK_OK) << last_error();
    EXPECT_EQ(in.values[0].f, 10.0 + n);
  }
  EXPECT_EQ(shmlink::test::reap(child), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_interface_read(i.get(), &in.s, kLong), SHMLINK_E_PEER_EXITED);
  EXPECT_LT(elapsed_ns(t0), kLong / 2) << "a dead peer is noticed within the liveness interval";
  EXPECT_TRUE(contains(last_error(), "peer")) << last_error();
  shmlink_peer_status_t peer;
  ASSERT_EQ(shmlink_interface_peer(i.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.exited, 1);
  EXPECT_EQ(peer.launched, 0);
  EXPECT_EQ(peer.pid, static_cast<std::int32_t>(child));
  EXPECT_EQ(shmlink_interface_peer_alive(i.get()), 0);
}

TEST_F(capiInterface, ExecPeerThatNeverAttachesTimesOutAndIsStopped) {
  std::string name = test_name(), peer_name = test_name("_peer");
  const char* const argv[] = {"sleep", "30", nullptr};
  auto spec = ispec(name, peer_name);
  spec.exec = argv;
  spec.attach_timeout_ns = 300 * kMs;
  auto i = make_iface(spec);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_interface_connect(i.get()), SHMLINK_E_TIMEOUT);
  const auto took = elapsed_ns(t0);
  EXPECT_GE(took, 300 * kMs);
  EXPECT_LT(took, kLong) << "the launched peer is stopped, not waited for";
  EXPECT_TRUE(contains(last_error(), "no peer attached")) << last_error();
  EXPECT_TRUE(contains(last_error(), name)) << last_error();
  shmlink_peer_status_t peer;
  ASSERT_EQ(shmlink_interface_peer(i.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.launched, 1);
  EXPECT_EQ(peer.exited, 1);
  EXPECT_GT(peer.pid, 0);
  EXPECT_TRUE(peer.term_signal == SIGTERM || peer.term_signal == SIGKILL) << peer.term_signal;
  EXPECT_EQ(shmlink_interface_is_connected(i.get()), 0);
  EXPECT_EQ(dir_.entries(), 0) << "a failed open leaves no output behind";
}

TEST_F(capiInterface, ExecPeerThatExitsAtOnceIsPeerExitedWithItsStatus) {
  std::string name = test_name(), peer_name = test_name("_peer");
  const char* const argv[] = {"false", nullptr};
  auto spec = ispec(name, peer_name);
  spec.exec = argv;
  auto i = make_iface(spec);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_interface_connect(i.get()), SHMLINK_E_PEER_EXITED);
  EXPECT_LT(elapsed_ns(t0), kLong) << "not the attach timeout";
  EXPECT_TRUE(contains(last_error(), "exited with status 1")) << last_error();
  shmlink_peer_status_t peer;
  ASSERT_EQ(shmlink_interface_peer(i.get(), &peer), SHMLINK_OK);
  EXPECT_EQ(peer.launched, 1);
  EXPECT_EQ(peer.exited, 1);
  EXPECT_EQ(peer.exit_code, 1);
  EXPECT_EQ(peer.term_signal, 0);
  EXPECT_TRUE(contains(describe(i.get()), "exited with status 1")) << describe(i.get());
}

TEST_F(capiInterface, ExecOfAMissingCommandIsNotFound) {
  const char* const argv[] = {"shmlink-no-such-command-for-capi-test", nullptr};
  std::string name = test_name(), peer_name = test_name("_peer");
  auto spec = ispec(name, peer_name);
  spec.exec = argv;
  auto i = make_iface(spec);
  EXPECT_EQ(shmlink_interface_connect(i.get()), SHMLINK_E_NOT_FOUND);
  EXPECT_TRUE(contains(last_error(), "shmlink-no-such-command-for-capi-test")) << last_error();
  EXPECT_EQ(dir_.entries(), 0);
}

TEST_F(capiInterface, PeerDescribeCopiesAndCutsLikeSnprintf) {
  std::string name = test_name();
  auto i = make_iface(ispec(name, name));
  const std::string full = describe(i.get());
  ASSERT_FALSE(full.empty());
  char small[5];
  std::memset(small, 'x', sizeof small);
  EXPECT_EQ(shmlink_interface_peer_describe(i.get(), small, sizeof small), static_cast<int>(full.size()));
  EXPECT_EQ(std::string(small), full.substr(0, 4));
  EXPECT_EQ(shmlink_interface_peer_describe(i.get(), nullptr, 0), static_cast<int>(full.size()));
  EXPECT_EQ(shmlink_interface_peer_describe(i.get(), nullptr, 4), SHMLINK_E_INVALID_ARGUMENT);
}

TEST_F(capiInterface, NullAndInvalidArgumentsAreInvalidArgument) {
  std::string name = test_name();
  auto good = ispec(name, name);
  shmlink_interface_t* raw = nullptr;
  EXPECT_EQ(shmlink_interface_create(nullptr, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_create(&good, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  auto spec = good;
  spec.out = nullptr;
  EXPECT_EQ(shmlink_interface_create(&spec, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "spec->out")) << last_error();
  spec = good;
  spec.in = nullptr;
  EXPECT_EQ(shmlink_interface_create(&spec, &raw), SHMLINK_E_INVALID_ARGUMENT);
  spec = good;
  spec.kind = 0;
  EXPECT_EQ(shmlink_interface_create(&spec, &raw), SHMLINK_E_INVALID_ARGUMENT);
  spec = good;
  spec.wait = 4;
  EXPECT_EQ(shmlink_interface_create(&spec, &raw), SHMLINK_E_INVALID_ARGUMENT);
  spec = good;
  spec.liveness_interval_ns = -1;
  EXPECT_EQ(shmlink_interface_create(&spec, &raw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(raw, nullptr);

  auto i = make_iface(good);
  ASSERT_TRUE(i);
  EXPECT_EQ(shmlink_interface_export_signal(nullptr, 0, "x", SHMLINK_SIGNAL_F64, ""), SHMLINK_E_INVALID_ARGUMENT);
  for (const int type : {0, 5, -1, 256 + SHMLINK_SIGNAL_F64})
    EXPECT_EQ(shmlink_interface_export_signal(i.get(), 0, "x", type, ""), SHMLINK_E_INVALID_ARGUMENT) << type;
  const std::string long_name(40, 'n');
  EXPECT_EQ(shmlink_interface_export_signal(i.get(), 0, long_name.c_str(), SHMLINK_SIGNAL_F64, ""),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), name)) << "the message names the interface: " << last_error();
  EXPECT_EQ(shmlink_interface_export_signal(i.get(), 0, "x", SHMLINK_SIGNAL_F64, "0123456789abcdef"),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_export_signal(i.get(), SHMLINK_MAX_SAMPLE_VALUES, "x", SHMLINK_SIGNAL_F64, ""),
            SHMLINK_E_INVALID_ARGUMENT);
  ASSERT_EQ(shmlink_interface_export_signal(i.get(), 0, "x", SHMLINK_SIGNAL_F64, ""), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_export_signal(i.get(), 0, "y", SHMLINK_SIGNAL_F64, ""), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "already")) << last_error();
  EXPECT_EQ(shmlink_interface_import_signal(nullptr, 0, "x", SHMLINK_SIGNAL_F64, ""), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_import_signal(i.get(), 0, "x", 9, ""), SHMLINK_E_INVALID_ARGUMENT);

  shmlink_value_t v{};
  SampleBuf in(1);
  OutSample out(1, 1);
  shmlink_peer_status_t peer;
  shmlink_queue_info_t info;
  shmlink_signal_t s;
  EXPECT_EQ(shmlink_interface_write_values(i.get(), &v, 1, 0), SHMLINK_E_CLOSED) << "not open yet";
  EXPECT_EQ(shmlink_interface_write(i.get(), &out.s, 0), SHMLINK_E_CLOSED);
  EXPECT_EQ(shmlink_interface_read(i.get(), &in.s, 0), SHMLINK_E_CLOSED);
  EXPECT_EQ(shmlink_interface_connect(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_is_connected(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_write_values(nullptr, &v, 1, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_write_values(i.get(), nullptr, 1, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_write(nullptr, &out.s, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_write(i.get(), nullptr, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_read(nullptr, &in.s, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_read(i.get(), nullptr, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_disconnect(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer(nullptr, &peer), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer(i.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer_describe(nullptr, nullptr, 0), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer_alive(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_out_info(nullptr, &info), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_in_info(i.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_in_info(i.get(), &info), SHMLINK_E_CLOSED);
  EXPECT_EQ(shmlink_interface_peer_signal_count(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer_signal(nullptr, 0, &s), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer_signal(i.get(), 0, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_interface_peer_signal(i.get(), 0, &s), SHMLINK_E_OUT_OF_RANGE) << "no peer yet";
  EXPECT_EQ(shmlink_interface_peer_alive(i.get()), 0);
  EXPECT_EQ(shmlink_interface_next_sequence(nullptr), 0U);
  EXPECT_EQ(shmlink_interface_close(nullptr), SHMLINK_OK);

  // Values NULL with count 0 is an empty sample.
  ASSERT_EQ(shmlink_interface_connect(i.get()), SHMLINK_OK) << last_error();
  EXPECT_EQ(shmlink_interface_write_values(i.get(), nullptr, 0, 0), SHMLINK_OK) << last_error();
  shmlink_sample_t meta{};
  EXPECT_EQ(shmlink_interface_read(i.get(), &meta, kLong), SHMLINK_OK);
  EXPECT_EQ(meta.length, 0U);
  shmlink_sample_t bad{};
  bad.length = 1;
  EXPECT_EQ(shmlink_interface_write(i.get(), &bad, 0), SHMLINK_E_INVALID_ARGUMENT);
  bad.length = 0;
  bad.capacity = 1;
  EXPECT_EQ(shmlink_interface_read(i.get(), &bad, 0), SHMLINK_E_INVALID_ARGUMENT);
}

TEST_F(capiInterface, SetupErrorsOfOpenAreReported) {
  std::string name = test_name(), empty;
  // Loopback with exec.
  const char* const argv[] = {"true", nullptr};
  auto spec = ispec(name, name);
  spec.exec = argv;
  auto a = make_iface(spec);
  EXPECT_EQ(shmlink_interface_connect(a.get()), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(last_error(), "loopback")) << last_error();
  // Empty names.
  auto b = make_iface(ispec(empty, name));
  EXPECT_EQ(shmlink_interface_connect(b.get()), SHMLINK_E_INVALID_ARGUMENT);
  // Capacity not a power of two.
  spec = ispec(name, name);
  spec.capacity = 3;
  auto c = make_iface(spec);
  EXPECT_EQ(shmlink_interface_connect(c.get()), SHMLINK_E_INVALID_ARGUMENT);
  // max_values below an exported index.
  spec = ispec(name, name);
  spec.max_values = 1;
  auto d = make_iface(spec);
  ASSERT_EQ(shmlink_interface_export_signal(d.get(), 3, "x", SHMLINK_SIGNAL_F64, ""), SHMLINK_OK);
  EXPECT_EQ(shmlink_interface_connect(d.get()), SHMLINK_E_INVALID_ARGUMENT);
  // Another open interface already owns `out`.
  auto e = make_iface(ispec(name, name));
  ASSERT_EQ(shmlink_interface_connect(e.get()), SHMLINK_OK) << last_error();
  auto f = make_iface(ispec(name, name));
  EXPECT_EQ(shmlink_interface_connect(f.get()), SHMLINK_E_EXISTS);
  EXPECT_TRUE(contains(last_error(), name)) << last_error();
  EXPECT_EQ(shmlink_interface_is_connected(e.get()), 1) << "the owner is unaffected";
}

}  // namespace
