// SPDX-License-Identifier: MIT
// GoogleTest cases for the C API (include/shmlink.h): every function, every error path, the
// thread-local message, cross-process futex waits and semaphore waits.
//
// Each test gets a private stream directory (SHMLINK_DIR, tests/common/test_util.hpp), so the
// tests never touch real streams in /dev/shm. Suite names start with "capi" so that
// `ctest -R capi` selects them.

#include <shmlink.h>

#include <shmlink/error.hpp>

#include <gtest/gtest.h>
#include <test_util.hpp>

#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kMs = 1'000'000;      // ns per millisecond
constexpr std::int64_t kLong = 5'000 * kMs;  // a timeout that only expires when something is broken

/// Owns a handle; closes it at scope exit.
struct Closer {
  void operator()(shmlink_stream_t* s) const noexcept { shmlink_stream_close(s); }
};
using Handle = std::unique_ptr<shmlink_stream_t, Closer>;

/// A stream name unique to the running test (test names are well under 79 bytes).
std::string test_stream_name(const char* suffix = "") {
  return std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + suffix;
}

/// The test's private stream directory (CapiTest points SHMLINK_DIR at it).
std::string stream_dir() { return std::getenv("SHMLINK_DIR"); }

std::string file_of(const std::string& name) { return stream_dir() + "/" + name + ".im.shm"; }

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string last_error() { return shmlink_last_error(); }

shmlink_stream_spec_t spec_of(std::uint32_t naxis, std::uint32_t x, std::uint32_t y = 0, std::uint32_t z = 0,
                              std::uint8_t dtype = SHMLINK_DTYPE_U16) {
  shmlink_stream_spec_t spec;
  shmlink_stream_spec_init(&spec);
  spec.naxis = naxis;
  spec.shape[0] = x;
  spec.shape[1] = y;
  spec.shape[2] = z;
  spec.dtype = dtype;
  return spec;
}

/// Creates stream `name` (4 x 3 uint16 unless a spec is given) or fails the test.
Handle make_stream(const std::string& name, shmlink_stream_spec_t spec = spec_of(2, 4, 3),
                   shmlink_open_mode_t mode = SHMLINK_EXCLUSIVE_CREATE) {
  shmlink_stream_t* raw = nullptr;
  const int rc = shmlink_stream_create(name.c_str(), &spec, mode, &raw);
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  return Handle(raw);
}

std::vector<std::uint16_t> pattern(std::size_t n, std::uint16_t base) {
  std::vector<std::uint16_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint16_t>(base + i);
  return v;
}

std::int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Every test runs with SHMLINK_DIR pointing at a fresh private directory, removed afterwards,
/// so no test touches real streams and no test sees another's files.
class CapiTest : public ::testing::Test {
 protected:
  shmlink::test::TempStreamDir dir_;
};
using capiErrors = CapiTest;
using capiCreate = CapiTest;
using capiOpen = CapiTest;
using capiGeometry = CapiTest;
using capiFrames = CapiTest;
using capiWait = CapiTest;
using capiSemaphore = CapiTest;
using capiKeyword = CapiTest;

// ---- errors -------------------------------------------------------------------------------------

const int kAllCodes[] = {SHMLINK_OK,
                         SHMLINK_E_INVALID_ARGUMENT,
                         SHMLINK_E_NOT_FOUND,
                         SHMLINK_E_EXISTS,
                         SHMLINK_E_PERMISSION,
                         SHMLINK_E_LAYOUT,
                         SHMLINK_E_NO_SPACE,
                         SHMLINK_E_SYSTEM,
                         SHMLINK_E_TIMEOUT,
                         SHMLINK_E_INTERRUPTED,
                         SHMLINK_E_WOULD_BLOCK,
                         SHMLINK_E_SIZE_MISMATCH,
                         SHMLINK_E_CLOSED,
                         SHMLINK_E_OUT_OF_RANGE,
                         SHMLINK_E_NAME_TOO_LONG,
                         SHMLINK_E_DTYPE_MISMATCH,
                         SHMLINK_E_BUSY,
                         SHMLINK_E_PEER_EXITED,
                         SHMLINK_E_SHUT_DOWN,
                         SHMLINK_E_TORN,
                         SHMLINK_E_WRITER_ACTIVE,
                         SHMLINK_E_REPLACED,
                         SHMLINK_E_OVERWRITTEN,
                         SHMLINK_E_INCOMPLETE};

TEST_F(capiErrors, StrerrorIsStaticAndDistinctForEveryCode) {
  std::vector<std::string> seen;
  for (const int code : kAllCodes) {
    const char* text = shmlink_strerror(code);
    ASSERT_NE(text, nullptr) << code;
    EXPECT_GT(std::strlen(text), 0U) << code;
    EXPECT_EQ(text, shmlink_strerror(code)) << "the same static string each time";
    EXPECT_STREQ(text, shmlink::strerror(static_cast<shmlink::Errc>(code)));
    EXPECT_STRNE(text, "unknown error") << code;
    for (const auto& other : seen) EXPECT_NE(other, text) << code;
    seen.emplace_back(text);
  }
}

TEST_F(capiErrors, StrerrorOfSharedCodesFitsEveryChannelKind) {
  // REPLACED comes from streams and queues, in files and in regions; PROTOCOL from memif and the
  // ivshmem server's protocol: neither text may name one kind only.
  const std::string replaced = shmlink_strerror(SHMLINK_E_REPLACED);
  EXPECT_EQ(replaced.find("stream"), std::string::npos) << replaced;
  EXPECT_NE(replaced.find("region entry"), std::string::npos) << replaced;
  const std::string protocol = shmlink_strerror(SHMLINK_E_PROTOCOL);
  EXPECT_EQ(protocol.find("memif"), std::string::npos) << protocol;
  EXPECT_NE(protocol.find("protocol"), std::string::npos) << protocol;
}

TEST_F(capiErrors, StrerrorOfUnknownCodeIsNeverNull) {
  for (const int code : {1, -19, -99, -105, -12345, 2147483647, -2147483647 - 1}) {
    ASSERT_NE(shmlink_strerror(code), nullptr) << code;
    EXPECT_STREQ(shmlink_strerror(code), "unknown error") << code;
  }
}

TEST_F(capiErrors, LastErrorIsEmptyInAFreshThread) {
  std::string in_thread = "not run";
  std::thread([&] { in_thread = shmlink_last_error(); }).join();
  EXPECT_EQ(in_thread, "");
}

TEST_F(capiErrors, LastErrorIsThreadLocal) {
  shmlink_stream_t* out = nullptr;
  ASSERT_EQ(shmlink_stream_open("missing-in-main", &out), SHMLINK_E_NOT_FOUND);
  const std::string main_message = last_error();
  EXPECT_NE(main_message.find("missing-in-main"), std::string::npos) << main_message;

  std::string before, after;
  int rc = 0;
  std::thread([&] {
    before = shmlink_last_error();
    shmlink_stream_t* o = nullptr;
    rc = shmlink_stream_open("missing-in-thread", &o);
    after = shmlink_last_error();
  }).join();
  EXPECT_EQ(before, "") << "the main thread's message leaked into another thread";
  EXPECT_EQ(rc, SHMLINK_E_NOT_FOUND);
  EXPECT_NE(after.find("missing-in-thread"), std::string::npos) << after;
  EXPECT_EQ(after.find("missing-in-main"), std::string::npos) << after;
  EXPECT_EQ(last_error(), main_message) << "another thread's failure changed this thread's message";
}

TEST_F(capiErrors, LastErrorDescribesTheLastFailureEvenAfterSuccesses) {
  shmlink_stream_t* out = nullptr;
  ASSERT_EQ(shmlink_stream_open("gone", &out), SHMLINK_E_NOT_FOUND);
  const std::string message = last_error();
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  EXPECT_EQ(last_error(), message);
}

TEST_F(capiErrors, NullArgumentMessagesNameTheFunctionAndArgument) {
  EXPECT_EQ(shmlink_stream_write(nullptr, "x", 1, -1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("shmlink_stream_write"), std::string::npos) << last_error();
  EXPECT_NE(last_error().find("stream"), std::string::npos) << last_error();
}

// ---- create -------------------------------------------------------------------------------------

TEST_F(capiCreate, SpecInitFillsDefaults) {
  shmlink_stream_spec_t spec;
  std::memset(&spec, 0xAB, sizeof spec);
  shmlink_stream_spec_init(&spec);
  EXPECT_EQ(spec.naxis, 0U);
  EXPECT_EQ(spec.shape[0], 0U);
  EXPECT_EQ(spec.shape[1], 0U);
  EXPECT_EQ(spec.shape[2], 0U);
  EXPECT_EQ(spec.dtype, SHMLINK_DTYPE_F32);
  EXPECT_EQ(spec.keywords, 0U);
  EXPECT_EQ(spec.semaphores, 10U);
  EXPECT_EQ(spec.imagetype, 2U);
  EXPECT_EQ(spec.circular_buffer, 0U);
  EXPECT_EQ(spec.permissions, 0600U);
  ASSERT_NE(spec.version, nullptr);
  EXPECT_STREQ(spec.version, "2.00");
}

TEST_F(capiCreate, SpecInitAcceptsNull) { shmlink_stream_spec_init(nullptr); }

TEST_F(capiCreate, CreateRejectsNullArguments) {
  const auto spec = spec_of(2, 4, 3);
  shmlink_stream_t* out = reinterpret_cast<shmlink_stream_t*>(0x1);
  EXPECT_EQ(shmlink_stream_create(nullptr, &spec, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr) << "*out is reset on failure";
  EXPECT_NE(last_error().find("name is NULL"), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_create("x", nullptr, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("spec is NULL"), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_create("x", &spec, SHMLINK_EXCLUSIVE_CREATE, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("out is NULL"), std::string::npos) << last_error();
  EXPECT_FALSE(file_exists(file_of("x")));
}

TEST_F(capiCreate, CreateRejectsBadNaxis) {
  const std::string name = test_stream_name();
  for (const std::uint32_t naxis : {0U, 4U, 100U}) {
    auto spec = spec_of(2, 4, 3);
    spec.naxis = naxis;
    shmlink_stream_t* out = nullptr;
    EXPECT_EQ(shmlink_stream_create(name.c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_INVALID_ARGUMENT)
        << naxis;
    EXPECT_EQ(out, nullptr);
    EXPECT_NE(last_error().find("naxis"), std::string::npos) << last_error();
    EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
  }
  EXPECT_FALSE(file_exists(file_of(name)));
}

TEST_F(capiCreate, CreateRejectsBadDtype) {
  const std::string name = test_stream_name();
  for (const std::uint8_t dtype : std::initializer_list<std::uint8_t>{0, 14, 255}) {
    const auto spec = spec_of(2, 4, 3, 0, dtype);
    shmlink_stream_t* out = nullptr;
    EXPECT_EQ(shmlink_stream_create(name.c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_INVALID_ARGUMENT)
        << int{dtype};
    EXPECT_EQ(out, nullptr);
    EXPECT_NE(last_error().find("dtype"), std::string::npos) << last_error();
  }
  EXPECT_FALSE(file_exists(file_of(name)));
}

TEST_F(capiCreate, CreateAcceptsEveryDtype) {
  for (int dtype = SHMLINK_DTYPE_U8; dtype <= SHMLINK_DTYPE_F16; ++dtype) {
    const std::string name = test_stream_name(std::to_string(dtype).c_str());
    auto s = make_stream(name, spec_of(1, 8, 0, 0, static_cast<std::uint8_t>(dtype)));
    ASSERT_TRUE(s) << dtype;
    shmlink_stream_geometry_t geo{};
    ASSERT_EQ(shmlink_stream_geometry(s.get(), &geo), SHMLINK_OK);
    EXPECT_EQ(geo.dtype, dtype);
  }
}

// A mode outside shmlink_open_mode_t is checked by capi_smoke.c: from C any int converts to the
// enum, in C++ a value outside the enum's range is undefined.

TEST_F(capiCreate, CreateRejectsZeroAxisLength) {
  const auto spec = spec_of(2, 4, 0);
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_create(test_stream_name().c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &out),
            SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(last_error(), "");
}

TEST_F(capiCreate, CreateRejectsEmptyName) {
  const auto spec = spec_of(2, 4, 3);
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_create("", &spec, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr);
}

TEST_F(capiCreate, CreateRejectsNameTooLong) {
  const std::string longest(79, 'a');
  const std::string too_long(80, 'b');
  const auto spec = spec_of(2, 4, 3);
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_create(too_long.c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(last_error().find(too_long), std::string::npos) << last_error();
  auto s = make_stream(longest);
  EXPECT_TRUE(s) << "79 bytes is the limit, not past it";
}

TEST_F(capiCreate, CreateMakesTheFileInShmlinkDir) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  EXPECT_TRUE(file_exists(file_of(name)));
  struct stat st {};
  ASSERT_EQ(::stat(file_of(name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(capiCreate, CreateAcceptsAPathAndPermissions) {
  const std::string path = stream_dir() + "/dao-style.im.shm";
  auto spec = spec_of(2, 4, 3);
  spec.permissions = 0640;
  auto s = make_stream(path, spec);
  ASSERT_TRUE(s);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640U);
}

TEST_F(capiCreate, ExclusiveCreateFailsWhenPresent) {
  const std::string name = test_stream_name();
  auto first = make_stream(name);
  ASSERT_TRUE(first);
  const auto spec = spec_of(2, 4, 3);
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_create(name.c_str(), &spec, SHMLINK_EXCLUSIVE_CREATE, &out), SHMLINK_E_EXISTS);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
}

TEST_F(capiCreate, PurgeAndCreateReplacesAnExistingStream) {
  const std::string name = test_stream_name();
  auto first = make_stream(name, spec_of(2, 4, 3));
  ASSERT_TRUE(first);
  auto second = make_stream(name, spec_of(1, 16, 0, 0, SHMLINK_DTYPE_F64), SHMLINK_PURGE_AND_CREATE);
  ASSERT_TRUE(second);
  shmlink_stream_t* raw = nullptr;
  ASSERT_EQ(shmlink_stream_open(name.c_str(), &raw), SHMLINK_OK) << last_error();
  Handle reopened(raw);
  shmlink_stream_geometry_t geo{};
  ASSERT_EQ(shmlink_stream_geometry(reopened.get(), &geo), SHMLINK_OK);
  EXPECT_EQ(geo.naxis, 1U);
  EXPECT_EQ(geo.dtype, SHMLINK_DTYPE_F64);
  // The old handle keeps its own (now unlinked) mapping.
  const auto frame = pattern(12, 7);
  EXPECT_EQ(shmlink_stream_write(first.get(), frame.data(), 24, -1), SHMLINK_OK);
}

TEST_F(capiCreate, OpenOrCreateCreatesThenOpens) {
  const std::string name = test_stream_name();
  auto created = make_stream(name, spec_of(2, 4, 3), SHMLINK_OPEN_OR_CREATE);
  ASSERT_TRUE(created);
  const auto frame = pattern(12, 40);
  ASSERT_EQ(shmlink_stream_write(created.get(), frame.data(), 24, -1), SHMLINK_OK);
  auto opened = make_stream(name, spec_of(2, 4, 3), SHMLINK_OPEN_OR_CREATE);
  ASSERT_TRUE(opened);
  EXPECT_EQ(shmlink_stream_cnt0(opened.get()), shmlink_stream_cnt0(created.get())) << "same file, not a new one";
}

TEST_F(capiCreate, OpenExistingModeFailsWhenAbsent) {
  const auto spec = spec_of(2, 4, 3);
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_create(test_stream_name().c_str(), &spec, SHMLINK_OPEN_EXISTING, &out),
            SHMLINK_E_NOT_FOUND);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(last_error().find(test_stream_name()), std::string::npos) << last_error();
}

// ---- open, close, destroy, remove -----------------------------------------------------------------

TEST_F(capiOpen, OpenRejectsNullArguments) {
  shmlink_stream_t* out = reinterpret_cast<shmlink_stream_t*>(0x1);
  EXPECT_EQ(shmlink_stream_open(nullptr, &out), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(shmlink_stream_open("x", nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("out is NULL"), std::string::npos) << last_error();
}

TEST_F(capiOpen, OpenMissingIsNotFoundAndNamesTheFile) {
  shmlink_stream_t* out = reinterpret_cast<shmlink_stream_t*>(0x1);
  EXPECT_EQ(shmlink_stream_open("does-not-exist", &out), SHMLINK_E_NOT_FOUND);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(last_error().find(file_of("does-not-exist")), std::string::npos) << last_error();
}

TEST_F(capiOpen, OpenRejectsNameTooLong) {
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_open(std::string(80, 'n').c_str(), &out), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_EQ(out, nullptr);
}

TEST_F(capiOpen, OpenRejectsAFileThatIsNotAStream) {
  const std::string name = test_stream_name();
  {
    std::ofstream junk(file_of(name), std::ios::binary);
    junk << std::string(4096, 'j');
  }
  shmlink_stream_t* out = nullptr;
  EXPECT_EQ(shmlink_stream_open(name.c_str(), &out), SHMLINK_E_LAYOUT);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
}

TEST_F(capiOpen, OpenSeesWhatTheCreatorWrote) {
  const std::string name = test_stream_name();
  auto writer = make_stream(name);
  ASSERT_TRUE(writer);
  const auto frame = pattern(12, 300);
  ASSERT_EQ(shmlink_stream_write(writer.get(), frame.data(), 24, -1), SHMLINK_OK);
  shmlink_stream_t* raw = nullptr;
  ASSERT_EQ(shmlink_stream_open(name.c_str(), &raw), SHMLINK_OK) << last_error();
  Handle reader(raw);
  std::vector<std::uint16_t> back(12);
  ASSERT_EQ(shmlink_stream_read_copy(reader.get(), back.data(), 24, nullptr), SHMLINK_OK);
  EXPECT_EQ(back, frame);
}

TEST_F(capiOpen, CloseAcceptsNullAndKeepsTheFile) {
  EXPECT_EQ(shmlink_stream_close(nullptr), SHMLINK_OK);
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_close(s.release()), SHMLINK_OK);
  EXPECT_TRUE(file_exists(file_of(name)));
}

TEST_F(capiOpen, DestroyRejectsNull) {
  EXPECT_EQ(shmlink_stream_destroy(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("shmlink_stream_destroy: name is NULL"), std::string::npos) << last_error();
}

TEST_F(capiOpen, RemoveIsDestroyUnderItsOlderName) {
#pragma GCC diagnostic push  // the older name is what this test calls, on purpose
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EXPECT_EQ(shmlink_stream_remove(nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("shmlink_stream_remove: name is NULL"), std::string::npos) << last_error();
  const std::string name = test_stream_name();
  ASSERT_TRUE(make_stream(name));
  EXPECT_EQ(shmlink_stream_remove(name.c_str()), SHMLINK_OK) << last_error();
  EXPECT_FALSE(file_exists(file_of(name)));
  EXPECT_EQ(shmlink_stream_remove(name.c_str()), SHMLINK_E_NOT_FOUND);
#pragma GCC diagnostic pop
}

TEST_F(capiOpen, DestroyRejectsEmptyAndTooLongNames) {
  EXPECT_EQ(shmlink_stream_destroy(""), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_destroy(std::string(80, 'r').c_str()), SHMLINK_E_NAME_TOO_LONG);
}

TEST_F(capiOpen, DestroyMissingIsNotFound) {
  EXPECT_EQ(shmlink_stream_destroy("never-created"), SHMLINK_E_NOT_FOUND);
  EXPECT_NE(last_error().find("never-created"), std::string::npos) << last_error();
}

TEST_F(capiOpen, DestroyDeletesTheFileByNameButOpenHandlesKeepWorking) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_destroy(name.c_str()), SHMLINK_OK) << last_error();
  EXPECT_FALSE(file_exists(file_of(name)));
  const auto frame = pattern(12, 9);
  std::vector<std::uint16_t> back(12);
  EXPECT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  EXPECT_EQ(shmlink_stream_read_copy(s.get(), back.data(), 24, nullptr), SHMLINK_OK);
  EXPECT_EQ(back, frame);
}

TEST_F(capiOpen, DestroyAcceptsAPath) {
  const std::string path = stream_dir() + "/by-path.im.shm";
  auto s = make_stream(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_destroy(path.c_str()), SHMLINK_OK) << last_error();
  EXPECT_FALSE(file_exists(path));
}

// ---- geometry -------------------------------------------------------------------------------------

TEST_F(capiGeometry, GeometryRejectsNullArguments) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  shmlink_stream_geometry_t geo{};
  EXPECT_EQ(shmlink_stream_geometry(nullptr, &geo), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_geometry(s.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("out is NULL"), std::string::npos) << last_error();
}

TEST_F(capiGeometry, GeometryReportsShapeDtypeAndSizes) {
  auto spec = spec_of(3, 5, 4, 3, SHMLINK_DTYPE_I32);
  spec.keywords = 7;
  spec.semaphores = 4;
  auto s = make_stream(test_stream_name(), spec);
  ASSERT_TRUE(s);
  shmlink_stream_geometry_t geo;
  std::memset(&geo, 0xCD, sizeof geo);
  ASSERT_EQ(shmlink_stream_geometry(s.get(), &geo), SHMLINK_OK);
  EXPECT_EQ(geo.naxis, 3U);
  EXPECT_EQ(geo.shape[0], 5U);
  EXPECT_EQ(geo.shape[1], 4U);
  EXPECT_EQ(geo.shape[2], 3U);
  EXPECT_EQ(geo.dtype, SHMLINK_DTYPE_I32);
  EXPECT_EQ(geo.nelement, 60U);
  EXPECT_EQ(geo.frame_bytes, 240U);
  EXPECT_EQ(geo.semaphores, 4);
  EXPECT_EQ(geo.keyword_slots, 7);
}

TEST_F(capiGeometry, GeometryZeroesUnusedAxes) {
  auto s = make_stream(test_stream_name(), spec_of(1, 9, 0, 0, SHMLINK_DTYPE_C128));
  ASSERT_TRUE(s);
  shmlink_stream_geometry_t geo;
  std::memset(&geo, 0xCD, sizeof geo);
  ASSERT_EQ(shmlink_stream_geometry(s.get(), &geo), SHMLINK_OK);
  EXPECT_EQ(geo.naxis, 1U);
  EXPECT_EQ(geo.shape[0], 9U);
  EXPECT_EQ(geo.shape[1], 0U);
  EXPECT_EQ(geo.shape[2], 0U);
  EXPECT_EQ(geo.frame_bytes, 9U * 16U);
}

// ---- frames ---------------------------------------------------------------------------------------

TEST_F(capiFrames, WriteRejectsNullArguments) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 0);
  EXPECT_EQ(shmlink_stream_write(nullptr, frame.data(), 24, -1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_write(s.get(), nullptr, 24, -1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("data is NULL"), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_cnt0(s.get()), 0U);
}

TEST_F(capiFrames, WriteRejectsWrongSizeWithAMessageGivingBothSizes) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  const std::vector<std::uint8_t> buffer(100);
  EXPECT_EQ(shmlink_stream_write(s.get(), buffer.data(), 100, -1), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_EQ(last_error(), "writing stream '" + name + "': buffer is 100 bytes, frame is 24 bytes");
  EXPECT_EQ(shmlink_stream_write(s.get(), buffer.data(), 23, -1), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_EQ(shmlink_stream_write(s.get(), buffer.data(), 0, -1), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_EQ(shmlink_stream_cnt0(s.get()), 0U) << "a rejected write publishes nothing";
}

TEST_F(capiFrames, WriteThenReadCopyRoundTripsDataCountersAndTimes) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 1000);
  ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, 1'700'000'000'123'456'789), SHMLINK_OK);
  std::vector<std::uint16_t> back(12);
  shmlink_frame_info_t info{};
  ASSERT_EQ(shmlink_stream_read_copy(s.get(), back.data(), 24, &info), SHMLINK_OK);
  EXPECT_EQ(back, frame);
  EXPECT_EQ(info.cnt0, 1U);
  EXPECT_EQ(info.atime_ns, 1'700'000'000'123'456'789);
  EXPECT_GT(info.writetime_ns, 0);

  const auto second = pattern(12, 2000);
  ASSERT_EQ(shmlink_stream_write(s.get(), second.data(), 24, -1), SHMLINK_OK);
  ASSERT_EQ(shmlink_stream_read_copy(s.get(), back.data(), 24, &info), SHMLINK_OK);
  EXPECT_EQ(back, second);
  EXPECT_EQ(info.cnt0, 2U);
  EXPECT_EQ(shmlink_stream_cnt0(s.get()), 2U);
}

TEST_F(capiFrames, NegativeAtimeMeansNow) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 1);
  const std::int64_t before = realtime_ns();
  ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  const std::int64_t after = realtime_ns();
  shmlink_frame_info_t info{};
  ASSERT_EQ(shmlink_stream_frame_info(s.get(), &info), SHMLINK_OK);
  // The library stamps with its TSC clock, within tens of ns of clock_gettime (src/os/tsc_clock.hpp).
  constexpr std::int64_t kSlack = 1'000;
  EXPECT_GE(info.atime_ns, before - kSlack);
  EXPECT_LE(info.atime_ns, after + kSlack);
  EXPECT_GE(info.writetime_ns, before - kSlack);
  EXPECT_LE(info.writetime_ns, after + kSlack);
}

TEST_F(capiFrames, ReadCopyRejectsNullArgumentsAndWrongSize) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  std::vector<std::uint8_t> out(100);
  EXPECT_EQ(shmlink_stream_read_copy(nullptr, out.data(), 24, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_read_copy(s.get(), nullptr, 24, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("out is NULL"), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_read_copy(s.get(), out.data(), 100, nullptr), SHMLINK_E_SIZE_MISMATCH);
  EXPECT_EQ(last_error(), "reading stream '" + name + "': buffer is 100 bytes, frame is 24 bytes");
  EXPECT_EQ(shmlink_stream_read_copy(s.get(), out.data(), 12, nullptr), SHMLINK_E_SIZE_MISMATCH);
}

TEST_F(capiFrames, ReadCopyOfANewStreamGivesZeros) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  std::vector<std::uint16_t> back(12, 0xFFFF);
  shmlink_frame_info_t info{};
  info.cnt0 = 99;
  ASSERT_EQ(shmlink_stream_read_copy(s.get(), back.data(), 24, &info), SHMLINK_OK);
  EXPECT_EQ(back, std::vector<std::uint16_t>(12, 0));
  EXPECT_EQ(info.cnt0, 0U);
}

TEST_F(capiFrames, ViewPointsAtTheCurrentFrame) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 77);
  ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  const void* data = nullptr;
  std::size_t bytes = 0;
  ASSERT_EQ(shmlink_stream_view(s.get(), &data, &bytes), SHMLINK_OK);
  ASSERT_NE(data, nullptr);
  ASSERT_EQ(bytes, 24U);
  EXPECT_EQ(std::memcmp(data, frame.data(), 24), 0);
  // Zero-copy: the same memory shows the next frame.
  const auto next = pattern(12, 500);
  ASSERT_EQ(shmlink_stream_write(s.get(), next.data(), 24, -1), SHMLINK_OK);
  EXPECT_EQ(std::memcmp(data, next.data(), 24), 0);
}

TEST_F(capiFrames, ViewRejectsNullArguments) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const void* data = nullptr;
  std::size_t bytes = 0;
  EXPECT_EQ(shmlink_stream_view(nullptr, &data, &bytes), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_view(s.get(), nullptr, &bytes), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_view(s.get(), &data, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("bytes is NULL"), std::string::npos) << last_error();
}

// Review of issue 18 item 3: a rolling buffer whose cnt1 names no slice (here 3 of 3, scribbled
// through the file) has no readable newest frame, as ImageStreamIO's readLastWroteBuffer fails;
// read_copy and view say LAYOUT with both values instead of serving slice cnt1 % 3.
TEST_F(capiFrames, ARollingBufferWhoseCnt1NamesNoSliceIsALayoutErrorWithTheValues) {
  const std::string name = test_stream_name();
  auto spec = spec_of(3, 4, 1, 3);  // 4 x 1 uint16 frames, 3 slices
  spec.imagetype = 0x1;             // CIRCULAR_BUFFER, as milk makes it
  auto s = make_stream(name, spec);
  ASSERT_TRUE(s);
  for (std::uint16_t k = 1; k <= 4; ++k)
    ASSERT_EQ(shmlink_stream_write(s.get(), pattern(4, k).data(), 8, -1), SHMLINK_OK) << last_error();
  const int fd = ::open((stream_dir() + "/" + name + ".im.shm").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const std::uint64_t three = 3;
  ASSERT_EQ(::pwrite(fd, &three, sizeof three, 272), static_cast<ssize_t>(sizeof three));  // cnt1
  ::close(fd);
  std::vector<std::uint16_t> out(4);
  EXPECT_EQ(shmlink_stream_read_copy(s.get(), out.data(), 8, nullptr), SHMLINK_E_LAYOUT);
  const std::string why = "stream '" + name + "': cnt1 is 3, outside the 3 slices of its rolling buffer";
  EXPECT_NE(last_error().find("reading " + why), std::string::npos) << last_error();
  const void* data = nullptr;
  std::size_t bytes = 0;
  EXPECT_EQ(shmlink_stream_view(s.get(), &data, &bytes), SHMLINK_E_LAYOUT);
  EXPECT_NE(last_error().find("viewing " + why), std::string::npos) << last_error();
  ASSERT_EQ(shmlink_stream_write(s.get(), pattern(4, 5).data(), 8, -1), SHMLINK_OK);  // to slice (3 + 1) % 3
  ASSERT_EQ(shmlink_stream_read_copy(s.get(), out.data(), 8, nullptr), SHMLINK_OK);
  EXPECT_EQ(out, pattern(4, 5));
}

TEST_F(capiFrames, FrameInfoRejectsNullArguments) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  shmlink_frame_info_t info{};
  EXPECT_EQ(shmlink_stream_frame_info(nullptr, &info), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_frame_info(s.get(), nullptr), SHMLINK_E_INVALID_ARGUMENT);
}

TEST_F(capiFrames, FrameInfoFollowsWrites) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 3);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, 1000 + i), SHMLINK_OK);
  shmlink_frame_info_t info{};
  ASSERT_EQ(shmlink_stream_frame_info(s.get(), &info), SHMLINK_OK);
  EXPECT_EQ(info.cnt0, 3U);
  EXPECT_EQ(info.atime_ns, 1002);
  EXPECT_GT(info.writetime_ns, 0);
}

TEST_F(capiFrames, Cnt0OfNullIsZero) { EXPECT_EQ(shmlink_stream_cnt0(nullptr), 0U); }

// ---- waiting --------------------------------------------------------------------------------------

TEST_F(capiWait, WaitFutexRejectsNull) {
  EXPECT_EQ(shmlink_stream_wait_futex(nullptr, 0, 0, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("shmlink_stream_wait_futex"), std::string::npos) << last_error();
}

TEST_F(capiWait, WaitFutexTimesOutWhenNothingIsWritten) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  std::uint64_t seen = 12345;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_stream_wait_futex(s.get(), 0, 30 * kMs, &seen), SHMLINK_E_TIMEOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 25ms);
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_wait_futex(s.get(), 0, 0, nullptr), SHMLINK_E_TIMEOUT) << "zero timeout: one check";
}

TEST_F(capiWait, WaitFutexReturnsAtOnceWhenCnt0AlreadyMoved) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 0);
  ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  std::uint64_t seen = 0;
  EXPECT_EQ(shmlink_stream_wait_futex(s.get(), 0, 0, &seen), SHMLINK_OK);
  EXPECT_EQ(seen, 1U);
  EXPECT_EQ(shmlink_stream_wait_futex(s.get(), 0, 0, nullptr), SHMLINK_OK) << "cnt0_out may be NULL";
}

TEST_F(capiWait, WaitFutexSeesAWriteFromAForkedChild) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  const std::uint64_t last = shmlink_stream_cnt0(s.get());
  const auto frame = pattern(12, 4242);
  const pid_t child = shmlink::test::spawn([&]() -> int {
    // The child opens its own handle by name and writes once the parent is asleep.
    ::usleep(100'000);
    shmlink_stream_t* w = nullptr;
    if (shmlink_stream_open(name.c_str(), &w) != SHMLINK_OK) return 2;
    const int rc = shmlink_stream_write(w, frame.data(), 24, 99);
    shmlink_stream_close(w);
    return rc == SHMLINK_OK ? 0 : 3;
  });
  ASSERT_GT(child, 0) << std::strerror(errno);
  std::uint64_t seen = 0;
  const int rc = shmlink_stream_wait_futex(s.get(), last, kLong, &seen);
  EXPECT_EQ(shmlink::test::reap(child, 10), 0);
  ASSERT_EQ(rc, SHMLINK_OK) << last_error();
  EXPECT_EQ(seen, last + 1);
  std::vector<std::uint16_t> back(12);
  shmlink_frame_info_t info{};
  ASSERT_EQ(shmlink_stream_read_copy(s.get(), back.data(), 24, &info), SHMLINK_OK);
  EXPECT_EQ(back, frame);
  EXPECT_EQ(info.atime_ns, 99);
}

TEST_F(capiWait, WaitFutexWithNegativeTimeoutWaitsUntilAWrite) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    const auto frame = pattern(12, 1);
    // Keeps writing until the reader returns, so a missed wake cannot hang the test.
    while (!done.load()) {
      std::this_thread::sleep_for(20ms);
      (void)shmlink_stream_write(s.get(), frame.data(), 24, -1);
    }
  });
  std::uint64_t seen = 0;
  const int rc = shmlink_stream_wait_futex(s.get(), 0, -1, &seen);
  done = true;
  writer.join();
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  EXPECT_GE(seen, 1U);
}

TEST_F(capiWait, WaitSpinRejectsNull) {
  EXPECT_EQ(shmlink_stream_wait_spin(nullptr, 0, 0, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("shmlink_stream_wait_spin"), std::string::npos) << last_error();
}

TEST_F(capiWait, WaitSpinTimesOutWhenNothingIsWritten) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_stream_wait_spin(s.get(), 0, 10 * kMs, nullptr), SHMLINK_E_TIMEOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 8ms);
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
}

TEST_F(capiWait, WaitSpinReturnsAtOnceWhenCnt0AlreadyMoved) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 0);
  ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  std::uint64_t seen = 0;
  EXPECT_EQ(shmlink_stream_wait_spin(s.get(), 0, 0, &seen), SHMLINK_OK);
  EXPECT_EQ(seen, 1U);
}

TEST_F(capiWait, WaitSpinSeesAWriteFromAnotherThread) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    const auto frame = pattern(12, 5);
    (void)shmlink_stream_write(s.get(), frame.data(), 24, -1);
  });
  std::uint64_t seen = 0;
  const int rc = shmlink_stream_wait_spin(s.get(), 0, kLong, &seen);
  writer.join();
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  EXPECT_EQ(seen, 1U);
}

// ---- semaphores -----------------------------------------------------------------------------------

// ---- ABI ----------------------------------------------------------------------------------

// The library a program loads is the one its header describes: the SONAME names the C ABI, and
// 0.2 is the first with a 144-byte shmlink_keyword_t (s is char[17]; 0.1 had 136 bytes and its
// comment 1 byte earlier). Before the bump the changed layout shipped as libshmlink.so.0.1, so
// a program built against 0.1 loaded it and misread every keyword's comment. 0.3 is the first
// that honours shmlink_interface_spec_t.protocol (byte 26, padding before: a 0.2 library would
// silently speak the shmlink protocol to a program asking for VILLAS).
TEST(capiAbi, TheLoadedLibraryIsNamedForTheLayoutOfTheHeader) {
  static_assert(sizeof(shmlink_keyword_t) == 144 && offsetof(shmlink_keyword_t, comment) == 57);
  static_assert(offsetof(shmlink_interface_spec_t, protocol) == 26);
  std::vector<std::string> loaded;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        const std::string name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        if (name.find("libshmlink.so") != std::string::npos) static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &loaded);
  ASSERT_EQ(loaded.size(), 1u) << "libshmlink.so is not loaded exactly once";
  const std::string file = std::filesystem::path(loaded[0]).filename();
  EXPECT_EQ(file, "libshmlink.so.0.4") << loaded[0];
}

TEST_F(capiSemaphore, ClaimRejectsNull) {
  EXPECT_EQ(shmlink_stream_claim_semaphore(nullptr, -1), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("shmlink_stream_claim_semaphore"), std::string::npos) << last_error();
}

TEST_F(capiSemaphore, ClaimReturnsThePreferredSlotAndKeepsIt) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_claim_semaphore(s.get(), 3), 3);
  EXPECT_EQ(shmlink_stream_claim_semaphore(s.get(), 5), 3) << "a process keeps the slot it holds";
}

TEST_F(capiSemaphore, ClaimWithoutPreferenceTakesAFreeSlot) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const int index = shmlink_stream_claim_semaphore(s.get(), -1);
  EXPECT_GE(index, 0);
  EXPECT_LT(index, 10);
}

TEST_F(capiSemaphore, ClaimIsBusyWhileEverySlotIsHeldByALiveProcess) {
  const std::string name = test_stream_name();
  auto spec = spec_of(2, 4, 3);
  spec.semaphores = 1;
  auto s = make_stream(name, spec);
  ASSERT_TRUE(s);
  int to_child[2], to_parent[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(to_parent), 0);
  const pid_t child = shmlink::test::spawn([&]() -> int {
    shmlink_stream_t* h = nullptr;
    int index = -100;
    if (shmlink_stream_open(name.c_str(), &h) == SHMLINK_OK) index = shmlink_stream_claim_semaphore(h, -1);
    if (::write(to_parent[1], &index, sizeof index) != sizeof index) return 2;
    char go = 0;
    const ssize_t got = ::read(to_child[0], &go, 1);  // hold the slot until the parent has looked
    (void)got;
    shmlink_stream_close(h);
    return 0;
  });
  ASSERT_GT(child, 0);
  int child_index = -1;
  ASSERT_EQ(::read(to_parent[0], &child_index, sizeof child_index), static_cast<ssize_t>(sizeof child_index));
  EXPECT_EQ(child_index, 0);
  EXPECT_EQ(shmlink_stream_claim_semaphore(s.get(), -1), SHMLINK_E_BUSY);
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_claim_semaphore(s.get(), 0), SHMLINK_E_BUSY);
  const char go = 1;
  ASSERT_EQ(::write(to_child[1], &go, 1), 1);
  EXPECT_EQ(shmlink::test::reap(child, 10), 0);
  for (const int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
  EXPECT_EQ(shmlink_stream_claim_semaphore(s.get(), -1), 0) << "a dead owner's slot is reclaimed";
}

TEST_F(capiSemaphore, SemWaitRejectsNull) {
  EXPECT_EQ(shmlink_stream_sem_wait(nullptr, 0, 0), SHMLINK_E_INVALID_ARGUMENT);
}

TEST_F(capiSemaphore, SemWaitRejectsAnOutOfRangeSlot) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  for (const int index : {-1, -5, 10, 1000}) {
    EXPECT_EQ(shmlink_stream_sem_wait(s.get(), index, 0), SHMLINK_E_OUT_OF_RANGE) << index;
    EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
    EXPECT_NE(last_error().find(std::to_string(index)), std::string::npos) << last_error();
  }
}

// Issue 18 item 3: the range error reads as English, also for a stream without semaphores
// (before: "the stream has 10 slots" here, "semaphore 0 is outside 0..-1" in Python).
TEST_F(capiSemaphore, OutOfRangeErrorsNameTheRangeOrSayThereAreNoSemaphores) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_sem_value(s.get(), 12), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_NE(last_error().find("semaphore 12 is outside 0..9 of stream '" + name + "'"), std::string::npos)
      << last_error();
  auto spec = spec_of(1, 4, 0, 0, SHMLINK_DTYPE_U8);
  spec.semaphores = 0;
  const std::string none = test_stream_name() + "n";
  auto z = make_stream(none, spec);
  ASSERT_TRUE(z) << last_error();
  EXPECT_EQ(shmlink_stream_sem_wait(z.get(), 0, 0), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_NE(last_error().find("stream '" + none + "' has no semaphores"), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_sem_post(z.get(), 0), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_NE(last_error().find("has no semaphores"), std::string::npos) << last_error();
  // No slot at all is an empty index range, not "every slot busy" (it was E_BUSY).
  EXPECT_EQ(shmlink_stream_claim_semaphore(z.get(), -1), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_NE(last_error().find("claiming a semaphore: stream '" + none + "' has no semaphores"), std::string::npos)
      << last_error();
  EXPECT_EQ(shmlink_stream_claim_semaphore(z.get(), 0), SHMLINK_E_OUT_OF_RANGE);
}

TEST_F(capiSemaphore, SemWaitTimesOutWithoutAPost) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  const int index = shmlink_stream_claim_semaphore(s.get(), 0);
  ASSERT_EQ(index, 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(shmlink_stream_sem_wait(s.get(), index, 20 * kMs), SHMLINK_E_TIMEOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 15ms);
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
}

TEST_F(capiSemaphore, SemWaitWakesOnAWrite) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const int index = shmlink_stream_claim_semaphore(s.get(), 2);
  ASSERT_EQ(index, 2);
  ASSERT_GE(shmlink_stream_sem_flush(s.get(), index), 0);
  // Taken before the writer starts: a loaded machine may run the writer's 50 ms sleep before
  // this thread reaches the wait, and the bound below must still hold.
  const auto start = std::chrono::steady_clock::now();
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    const auto frame = pattern(12, 8);
    (void)shmlink_stream_write(s.get(), frame.data(), 24, -1);
  });
  const int rc = shmlink_stream_sem_wait(s.get(), index, kLong);
  const auto waited = std::chrono::steady_clock::now() - start;
  writer.join();
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
  EXPECT_GE(waited, 30ms) << "it waited for the write rather than finding an old post";
  EXPECT_EQ(shmlink_stream_cnt0(s.get()), 1U);
}

TEST_F(capiSemaphore, SemWaitWakesOnAWriteFromAForkedChild) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  const int index = shmlink_stream_claim_semaphore(s.get(), -1);
  ASSERT_GE(index, 0);
  ASSERT_GE(shmlink_stream_sem_flush(s.get(), index), 0);
  const pid_t child = shmlink::test::spawn([&]() -> int {
    ::usleep(50'000);
    shmlink_stream_t* w = nullptr;
    if (shmlink_stream_open(name.c_str(), &w) != SHMLINK_OK) return 2;
    const auto frame = pattern(12, 6);
    const int rc = shmlink_stream_write(w, frame.data(), 24, -1);
    shmlink_stream_close(w);
    return rc == SHMLINK_OK ? 0 : 3;
  });
  ASSERT_GT(child, 0);
  const int rc = shmlink_stream_sem_wait(s.get(), index, kLong);
  EXPECT_EQ(shmlink::test::reap(child, 10), 0);
  EXPECT_EQ(rc, SHMLINK_OK) << last_error();
}

TEST_F(capiSemaphore, SemFlushRejectsNullAndOutOfRange) {
  const std::string name = test_stream_name();
  auto s = make_stream(name);
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_sem_flush(nullptr, 0), SHMLINK_E_INVALID_ARGUMENT);
  for (const int index : {-2, 10, 99}) {
    EXPECT_EQ(shmlink_stream_sem_flush(s.get(), index), SHMLINK_E_OUT_OF_RANGE) << index;
    EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
  }
}

TEST_F(capiSemaphore, SemFlushReturnsThePostsItRemoved) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  EXPECT_EQ(shmlink_stream_sem_flush(s.get(), 4), 3);
  EXPECT_EQ(shmlink_stream_sem_flush(s.get(), 4), 0);
  EXPECT_EQ(shmlink_stream_sem_wait(s.get(), 4, 0), SHMLINK_E_TIMEOUT) << "drained";
  // Slot 4 is empty, the 9 others still hold 3 posts each.
  EXPECT_EQ(shmlink_stream_sem_flush(s.get(), -1), 27);
  EXPECT_EQ(shmlink_stream_sem_flush(s.get(), -1), 0);
}

TEST_F(capiSemaphore, SemaphorePostsAreCappedAtTen) {
  auto s = make_stream(test_stream_name());
  ASSERT_TRUE(s);
  const auto frame = pattern(12, 0);
  for (int i = 0; i < 15; ++i) ASSERT_EQ(shmlink_stream_write(s.get(), frame.data(), 24, -1), SHMLINK_OK);
  EXPECT_EQ(shmlink_stream_sem_flush(s.get(), 0), 10);
}

// ---- keywords -------------------------------------------------------------------------------------

shmlink_stream_spec_t keyword_spec(std::uint16_t slots) {
  auto spec = spec_of(2, 4, 3);
  spec.keywords = slots;
  return spec;
}

TEST_F(capiKeyword, SetAndGetAnInteger) {
  auto s = make_stream(test_stream_name(), keyword_spec(4));
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "EXPTIME", -1234567890123, "exposure [us]"), SHMLINK_OK)
      << last_error();
  shmlink_keyword_t kw;
  std::memset(&kw, 0xEE, sizeof kw);
  ASSERT_EQ(shmlink_stream_get_keyword(s.get(), "EXPTIME", &kw), SHMLINK_OK) << last_error();
  EXPECT_STREQ(kw.name, "EXPTIME");
  EXPECT_EQ(kw.type, SHMLINK_KW_INT);
  EXPECT_EQ(kw.i, -1234567890123);
  EXPECT_STREQ(kw.comment, "exposure [us]");
}

TEST_F(capiKeyword, SetAndGetADouble) {
  auto s = make_stream(test_stream_name(), keyword_spec(4));
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_set_keyword_double(s.get(), "GAIN", 2.718281828, nullptr), SHMLINK_OK) << last_error();
  shmlink_keyword_t kw{};
  ASSERT_EQ(shmlink_stream_get_keyword(s.get(), "GAIN", &kw), SHMLINK_OK);
  EXPECT_EQ(kw.type, SHMLINK_KW_DOUBLE);
  EXPECT_DOUBLE_EQ(kw.d, 2.718281828);
  EXPECT_STREQ(kw.comment, "") << "a NULL comment is stored empty";
}

TEST_F(capiKeyword, SetAndGetAString) {
  auto s = make_stream(test_stream_name(), keyword_spec(4));
  ASSERT_TRUE(s);
  const std::string longest(16, 's');  // ISIO's valstr holds 16 (issue 18 item 4; 15 before)
  ASSERT_EQ(shmlink_stream_set_keyword_string(s.get(), "CAMERA", longest.c_str(), "model"), SHMLINK_OK)
      << last_error();
  shmlink_keyword_t kw{};
  ASSERT_EQ(shmlink_stream_get_keyword(s.get(), "CAMERA", &kw), SHMLINK_OK);
  EXPECT_EQ(kw.type, SHMLINK_KW_STRING);
  EXPECT_EQ(std::string(kw.s), longest);
  EXPECT_STREQ(kw.comment, "model");
}

TEST_F(capiKeyword, KeywordsAreVisibleThroughAnotherHandle) {
  const std::string name = test_stream_name();
  auto s = make_stream(name, keyword_spec(2));
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "LOOP", 7, "loop number"), SHMLINK_OK);
  shmlink_stream_t* raw = nullptr;
  ASSERT_EQ(shmlink_stream_open(name.c_str(), &raw), SHMLINK_OK);
  Handle other(raw);
  shmlink_keyword_t kw{};
  ASSERT_EQ(shmlink_stream_get_keyword(other.get(), "LOOP", &kw), SHMLINK_OK);
  EXPECT_EQ(kw.i, 7);
}

TEST_F(capiKeyword, SettingAgainOverwritesInPlace) {
  auto s = make_stream(test_stream_name(), keyword_spec(1));
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "MODE", 1, nullptr), SHMLINK_OK);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "MODE", 2, nullptr), SHMLINK_OK) << "same slot, not a new one";
  ASSERT_EQ(shmlink_stream_set_keyword_string(s.get(), "MODE", "closed", "now a string"), SHMLINK_OK);
  shmlink_keyword_t kw{};
  ASSERT_EQ(shmlink_stream_get_keyword(s.get(), "MODE", &kw), SHMLINK_OK);
  EXPECT_EQ(kw.type, SHMLINK_KW_STRING);
  EXPECT_STREQ(kw.s, "closed");
}

TEST_F(capiKeyword, SetRejectsNullArguments) {
  auto s = make_stream(test_stream_name(), keyword_spec(2));
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_set_keyword_int(nullptr, "A", 1, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_set_keyword_int(s.get(), nullptr, 1, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_set_keyword_double(nullptr, "A", 1.0, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_set_keyword_double(s.get(), nullptr, 1.0, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_set_keyword_string(nullptr, "A", "v", nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_set_keyword_string(s.get(), nullptr, "v", nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_set_keyword_string(s.get(), "A", nullptr, nullptr), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("value is NULL"), std::string::npos) << last_error();
}

TEST_F(capiKeyword, SetRejectsTooLongNameValueOrComment) {
  const std::string name = test_stream_name();
  auto s = make_stream(name, keyword_spec(4));
  ASSERT_TRUE(s);
  const std::string name16(16, 'K'), value17(17, 'v'), comment80(80, 'c');
  EXPECT_EQ(shmlink_stream_set_keyword_int(s.get(), name16.c_str(), 1, nullptr), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_NE(last_error().find(name), std::string::npos) << "names the stream: " << last_error();
  EXPECT_EQ(shmlink_stream_set_keyword_string(s.get(), "S", value17.c_str(), nullptr), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_EQ(shmlink_stream_set_keyword_double(s.get(), "D", 1.0, comment80.c_str()), SHMLINK_E_NAME_TOO_LONG);
  EXPECT_EQ(shmlink_stream_set_keyword_int(s.get(), std::string(15, 'K').c_str(), 1, std::string(79, 'c').c_str()),
            SHMLINK_OK)
      << "15-byte names and 79-byte comments fit: " << last_error();
}

TEST_F(capiKeyword, SetFailsWhenEverySlotIsUsed) {
  auto s = make_stream(test_stream_name(), keyword_spec(2));
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "A", 1, nullptr), SHMLINK_OK);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "B", 2, nullptr), SHMLINK_OK);
  EXPECT_EQ(shmlink_stream_set_keyword_int(s.get(), "C", 3, nullptr), SHMLINK_E_OUT_OF_RANGE);
  EXPECT_NE(last_error(), "");
}

TEST_F(capiKeyword, SetFailsOnAStreamWithoutKeywordSlots) {
  auto s = make_stream(test_stream_name(), keyword_spec(0));
  ASSERT_TRUE(s);
  EXPECT_EQ(shmlink_stream_set_keyword_int(s.get(), "A", 1, nullptr), SHMLINK_E_OUT_OF_RANGE);
}

TEST_F(capiKeyword, GetRejectsNullArguments) {
  auto s = make_stream(test_stream_name(), keyword_spec(2));
  ASSERT_TRUE(s);
  shmlink_keyword_t kw{};
  EXPECT_EQ(shmlink_stream_get_keyword(nullptr, "A", &kw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_get_keyword(s.get(), nullptr, &kw), SHMLINK_E_INVALID_ARGUMENT);
  EXPECT_EQ(shmlink_stream_get_keyword(s.get(), "A", nullptr), SHMLINK_E_INVALID_ARGUMENT);
}

TEST_F(capiKeyword, GetMissingIsNotFoundAndNamesKeywordAndStream) {
  const std::string name = test_stream_name();
  auto s = make_stream(name, keyword_spec(2));
  ASSERT_TRUE(s);
  ASSERT_EQ(shmlink_stream_set_keyword_int(s.get(), "PRESENT", 1, nullptr), SHMLINK_OK);
  shmlink_keyword_t kw{};
  EXPECT_EQ(shmlink_stream_get_keyword(s.get(), "ABSENT", &kw), SHMLINK_E_NOT_FOUND);
  EXPECT_NE(last_error().find("ABSENT"), std::string::npos) << last_error();
  EXPECT_NE(last_error().find(name), std::string::npos) << last_error();
  EXPECT_EQ(shmlink_stream_get_keyword(s.get(), "PRES", &kw), SHMLINK_E_NOT_FOUND) << "exact names only";
}

}  // namespace
