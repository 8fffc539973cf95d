// SPDX-License-Identifier: MIT
// The queue part of the C API (include/shmlink.h) over shmlink::Queue, and the sample and
// signal-table conversions the interface (capi_interface.cpp) shares. Conventions:
// capi_common.cpp.
#include <shmlink.h>

#include "capi/capi_handles.hpp"
#include "capi/capi_internal.hpp"

#include <shmlink/error.hpp>
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <climits>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using shmlink::capi::check_pop_sample;
using shmlink::capi::check_push_sample;
using shmlink::capi::copy_field;
using shmlink::capi::fail;
using shmlink::capi::guarded;
using shmlink::capi::kind_valid;
using shmlink::capi::null_arg;
using shmlink::capi::to_c;
using shmlink::capi::to_cpp_signals;
using shmlink::capi::to_timeout;
using shmlink::capi::adopt;
using shmlink::capi::check_open_mode;
using shmlink::capi::new_queue_handle;
using shmlink::capi::to_cpp;
using shmlink::Errc;

namespace {

using shmlink::QueueKind;
using shmlink::SignalType;
using shmlink::SignalValue;
using shmlink::WaitMode;

// The C constants and types are the C++ ones; pin them so neither side can drift.
static_assert(SHMLINK_SIGNAL_F64 == static_cast<int>(SignalType::f64));
static_assert(SHMLINK_SIGNAL_I64 == static_cast<int>(SignalType::i64));
static_assert(SHMLINK_SIGNAL_BOOL == static_cast<int>(SignalType::boolean));
static_assert(SHMLINK_SIGNAL_C64 == static_cast<int>(SignalType::c64));
static_assert(SHMLINK_QUEUE_SPSC == static_cast<int>(QueueKind::spsc));
static_assert(SHMLINK_QUEUE_MPMC == static_cast<int>(QueueKind::mpmc));
static_assert(SHMLINK_WAIT_POLLING == static_cast<int>(WaitMode::polling));
static_assert(SHMLINK_WAIT_FUTEX == static_cast<int>(WaitMode::futex));
static_assert(SHMLINK_WAIT_HYBRID == static_cast<int>(WaitMode::hybrid));
static_assert(SHMLINK_SAMPLE_HAS_TS_ORIGIN == shmlink::kSampleHasTsOrigin);
static_assert(SHMLINK_SAMPLE_HAS_TS_RECEIVED == shmlink::kSampleHasTsReceived);
static_assert(SHMLINK_SAMPLE_HAS_SEQUENCE == shmlink::kSampleHasSequence);
static_assert(SHMLINK_SAMPLE_HAS_DATA == shmlink::kSampleHasData);
static_assert(SHMLINK_SAMPLE_NEW_FRAME == shmlink::kSampleNewFrame);
static_assert(SHMLINK_SAMPLE_NEW_SIMULATION == shmlink::kSampleNewSimulation);
static_assert(SHMLINK_SIGNAL_NAME_MAX == shmlink::kMaxSignalName);
static_assert(SHMLINK_SIGNAL_UNIT_MAX == shmlink::kMaxSignalUnit);
static_assert(SHMLINK_MAX_SAMPLE_VALUES == shmlink::kMaxSampleValues);
static_assert(SHMLINK_MAX_QUEUE_CAPACITY == shmlink::kMaxQueueCapacity);
// Values are copied between the two unions with memcpy: same size, alignment and member places.
static_assert(sizeof(shmlink_value_t) == sizeof(SignalValue) && alignof(shmlink_value_t) == alignof(SignalValue));
static_assert(offsetof(shmlink_value_t, f) == offsetof(SignalValue, f) &&
              offsetof(shmlink_value_t, i) == offsetof(SignalValue, i) &&
              offsetof(shmlink_value_t, bits) == offsetof(SignalValue, bits) &&
              offsetof(shmlink_value_t, z) == offsetof(SignalValue, z));
static_assert(std::is_trivially_copyable_v<shmlink_value_t> && std::is_trivially_copyable_v<SignalValue>);
static_assert(sizeof(shmlink_signal_t{}.name) == shmlink::kMaxSignalName + 1);
static_assert(sizeof(shmlink_signal_t{}.unit) == shmlink::kMaxSignalUnit + 1);
// The C ABI of the queue structs (see the stream structs in capi_stream.cpp).
static_assert(sizeof(shmlink_value_t) == 8 && alignof(shmlink_value_t) == 8);
static_assert(offsetof(shmlink_value_t, f) == 0 && offsetof(shmlink_value_t, i) == 0 &&
              offsetof(shmlink_value_t, bits) == 0 && offsetof(shmlink_value_t, z) == 0);
static_assert(sizeof(shmlink_signal_t) == 64 && alignof(shmlink_signal_t) == 4);
static_assert(offsetof(shmlink_signal_t, index) == 0 && offsetof(shmlink_signal_t, name) == 4 &&
              offsetof(shmlink_signal_t, type) == 44 && offsetof(shmlink_signal_t, unit) == 45);
static_assert(sizeof(shmlink_sample_t) == 48 && alignof(shmlink_sample_t) == 8);
static_assert(offsetof(shmlink_sample_t, sequence) == 0 && offsetof(shmlink_sample_t, ts_origin_ns) == 8 &&
              offsetof(shmlink_sample_t, ts_received_ns) == 16 && offsetof(shmlink_sample_t, flags) == 24 &&
              offsetof(shmlink_sample_t, length) == 28 && offsetof(shmlink_sample_t, capacity) == 32 &&
              offsetof(shmlink_sample_t, values) == 40);
static_assert(sizeof(shmlink_queue_spec_t) == 32 && alignof(shmlink_queue_spec_t) == 8);
static_assert(offsetof(shmlink_queue_spec_t, capacity) == 0 && offsetof(shmlink_queue_spec_t, max_values) == 4 &&
              offsetof(shmlink_queue_spec_t, kind) == 8 && offsetof(shmlink_queue_spec_t, wait) == 9 &&
              offsetof(shmlink_queue_spec_t, permissions) == 12 && offsetof(shmlink_queue_spec_t, signals) == 16 &&
              offsetof(shmlink_queue_spec_t, signal_count) == 24);
static_assert(sizeof(shmlink_queue_expect_t) == 24 && alignof(shmlink_queue_expect_t) == 8);
static_assert(offsetof(shmlink_queue_expect_t, max_values) == 0 && offsetof(shmlink_queue_expect_t, kind) == 4 &&
              offsetof(shmlink_queue_expect_t, signals) == 8 &&
              offsetof(shmlink_queue_expect_t, signal_count) == 16 &&
              offsetof(shmlink_queue_expect_t, read_only) == 20);
static_assert(sizeof(shmlink_queue_info_t) == 64 && alignof(shmlink_queue_info_t) == 8);
static_assert(offsetof(shmlink_queue_info_t, version) == 0 && offsetof(shmlink_queue_info_t, kind) == 4 &&
              offsetof(shmlink_queue_info_t, wait) == 5 && offsetof(shmlink_queue_info_t, capacity) == 8 &&
              offsetof(shmlink_queue_info_t, max_values) == 12 &&
              offsetof(shmlink_queue_info_t, signal_count) == 16 &&
              offsetof(shmlink_queue_info_t, cell_bytes) == 20 && offsetof(shmlink_queue_info_t, file_bytes) == 24 &&
              offsetof(shmlink_queue_info_t, pushed) == 32 && offsetof(shmlink_queue_info_t, popped) == 40 &&
              offsetof(shmlink_queue_info_t, closed) == 48 && offsetof(shmlink_queue_info_t, creator_pid) == 52 &&
              offsetof(shmlink_queue_info_t, creation_time_ns) == 56);
}  // namespace

namespace shmlink::capi {  // declared and documented in capi_handles.hpp

bool kind_valid(unsigned k) noexcept { return k == SHMLINK_QUEUE_SPSC || k == SHMLINK_QUEUE_MPMC; }
bool wait_valid(unsigned w) noexcept { return w >= SHMLINK_WAIT_POLLING && w <= SHMLINK_WAIT_HYBRID; }
bool signal_type_valid(long long t) noexcept { return t >= SHMLINK_SIGNAL_F64 && t <= SHMLINK_SIGNAL_C64; }

int to_cpp_signals(const shmlink_signal_t* signals, std::uint32_t count, const char* action, const char* name,
                   std::vector<shmlink::Signal>& out) {
  if (count == 0) return SHMLINK_OK;
  if (signals == nullptr)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signals is NULL but signal_count is %" PRIu32, action, name,
                count);
  if (count > shmlink::kMaxSampleValues)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signal_count %" PRIu32 " exceeds %" PRIu32, action, name,
                count, shmlink::kMaxSampleValues);
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const shmlink_signal_t& c = signals[i];
    const std::size_t nlen = ::strnlen(c.name, sizeof c.name);
    const std::size_t ulen = ::strnlen(c.unit, sizeof c.unit);
    if (nlen == sizeof c.name)
      return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signal %" PRIu32 " (index %" PRIu32
                  "): name is not NUL-terminated within %zu bytes", action, name, i, c.index, sizeof c.name);
    if (ulen == sizeof c.unit)
      return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': signal %" PRIu32 " (index %" PRIu32
                  "): unit is not NUL-terminated within %zu bytes", action, name, i, c.index, sizeof c.unit);
    out.push_back(shmlink::Signal{c.index, std::string(c.name, nlen), static_cast<SignalType>(c.type),
                                  std::string(c.unit, ulen)});
  }
  return SHMLINK_OK;
}

void to_c(const shmlink::Signal& in, shmlink_signal_t* out) noexcept {
  *out = shmlink_signal_t{};
  out->index = in.index;
  copy_field(out->name, in.name);
  out->type = static_cast<std::uint8_t>(in.type);
  copy_field(out->unit, in.unit);
}

void to_c(const shmlink::QueueInfo& in, shmlink_queue_info_t* out) noexcept {
  *out = shmlink_queue_info_t{};
  out->version = in.version;
  out->kind = static_cast<std::uint8_t>(in.kind);
  out->wait = static_cast<std::uint8_t>(in.wait);
  out->capacity = in.capacity;
  out->max_values = in.max_values;
  out->signal_count = static_cast<std::uint32_t>(in.signals.size());
  out->cell_bytes = in.cell_bytes;
  out->file_bytes = in.file_bytes;
  out->pushed = in.pushed;
  out->popped = in.popped;
  out->closed = in.closed ? 1 : 0;
  out->creator_pid = in.creator_pid;
  out->creation_time_ns = in.creation_time_ns;
}

int check_push_sample(const char* function, const shmlink_sample_t* s) noexcept {
  if (s == nullptr) return null_arg(function, "sample");
  if (s->values == nullptr && s->length != 0)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: sample values is NULL but its length is %" PRIu32, function,
                s->length);
  return SHMLINK_OK;
}

int check_pop_sample(const char* function, const shmlink_sample_t* s) noexcept {
  if (s == nullptr) return null_arg(function, "out");
  if (s->values == nullptr && s->capacity != 0)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: out values is NULL but its capacity is %" PRIu32, function,
                s->capacity);
  return SHMLINK_OK;
}

void from_c(const shmlink_sample_t& c, shmlink::Sample& dst) noexcept {
  dst.sequence = c.sequence;
  dst.ts_origin_ns = c.ts_origin_ns;
  dst.ts_received_ns = c.ts_received_ns;
  dst.flags = c.flags;
  dst.values.resize(c.length);
  if (c.length != 0) std::memcpy(dst.values.data(), c.values, std::size_t{c.length} * sizeof(SignalValue));
}

void to_c(const shmlink::SampleView& src, shmlink_sample_t* out) noexcept {
  out->sequence = src.sequence;
  out->ts_origin_ns = src.ts_origin_ns;
  out->ts_received_ns = src.ts_received_ns;
  out->flags = src.flags;
  const auto length = static_cast<std::uint32_t>(src.values.size());
  const std::uint32_t n = std::min(length, out->capacity);
  if (n != 0) std::memcpy(out->values, src.values.data(), std::size_t{n} * sizeof(SignalValue));
  out->length = length;
}

void to_c(const shmlink::Sample& src, shmlink_sample_t* out) noexcept {
  to_c(shmlink::SampleView{src.sequence, src.ts_origin_ns, src.ts_received_ns, src.flags, src.values}, out);
}

}  // namespace shmlink::capi

namespace {

/// Message for a non-ok queue status: "pushing to queue 'q': timed out".
int status_fail(shmlink::Status st, const char* action, const shmlink::Queue& q) noexcept {
  return fail(static_cast<int>(st.code()), "%s queue '%s': %s", action, q.name().c_str(), st.message());
}

/// Samples a C push burst hands to the core per call (one wake-up check each): up to 32, the
/// bench's and DPDK's usual burst. Their views live on the stack (48 bytes each); the values are
/// copied from the caller's arrays straight into the cells.
constexpr std::size_t kPushRun = 32;

/// A C sample as a view of the caller's values (no copy). shmlink_value_t and SignalValue are
/// layout-identical (asserted above); the core copies the values bytewise (memcpy).
shmlink::SampleView view_of(const shmlink_sample_t& c) noexcept {
  shmlink::SampleView v;
  v.sequence = c.sequence;
  v.ts_origin_ns = c.ts_origin_ns;
  v.ts_received_ns = c.ts_received_ns;
  v.flags = c.flags;
  if (c.length != 0) v.values = std::span(reinterpret_cast<const SignalValue*>(c.values), c.length);
  return v;
}

/// Checks a sample to push into `q`, and that its values fit a cell (so that the message says
/// how many values the sample has and the queue takes).
int check_push_fits(const char* function, const shmlink_sample_t* s, const shmlink::Queue& q) noexcept {
  if (const int rc = check_push_sample(function, s); rc != SHMLINK_OK) return rc;
  if (s->length > q.max_values())
    return fail(SHMLINK_E_SIZE_MISMATCH, "pushing to queue '%s': sample has %" PRIu32 " values, at most %" PRIu32
                " allowed", q.name().c_str(), s->length, q.max_values());
  return SHMLINK_OK;
}

/// The C result of a push status (`timeout_ns`: the wait, for the message).
int push_result(shmlink::Status st, const shmlink::Queue& q, std::int64_t timeout_ns) noexcept {
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no room is not an error
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "pushing to queue '%s': still full after %" PRId64 " ns", q.name().c_str(),
                timeout_ns);
  if (st.code() == Errc::shut_down)
    return fail(SHMLINK_E_SHUT_DOWN, "pushing to queue '%s': the queue was shut down", q.name().c_str());
  if (st.code() == Errc::permission)
    return fail(SHMLINK_E_PERMISSION, "pushing to queue '%s': the handle was opened read-only", q.name().c_str());
  return status_fail(st, "pushing to", q);
}

/// A push of `s` (checked here), its values copied from the caller's array straight into the
/// cell: waiting up to `timeout_ns` when `blocking`, else one try.
int queue_push(shmlink_queue_t* h, const shmlink_sample_t* s, const char* function, bool blocking,
               std::int64_t timeout_ns) noexcept {
  if (h == nullptr) return null_arg(function, "queue");
  auto& q = h->queue;
  if (const int rc = check_push_fits(function, s, q); rc != SHMLINK_OK) return rc;
  const shmlink::SampleView v = view_of(*s);
  return push_result(blocking ? q.push(v, to_timeout(timeout_ns)) : q.try_push(v), q, timeout_ns);
}

/// The C result of a pop status (`timeout_ns`: the wait, for the message).
int pop_result(shmlink::Status st, const shmlink::Queue& q, std::int64_t timeout_ns) noexcept {
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no data is not an error
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "popping from queue '%s': still empty after %" PRId64 " ns", q.name().c_str(),
                timeout_ns);
  if (st.code() == Errc::shut_down)
    return fail(SHMLINK_E_SHUT_DOWN, "popping from queue '%s': the queue was shut down and is drained",
                q.name().c_str());
  if (st.code() == Errc::permission)
    return fail(SHMLINK_E_PERMISSION, "popping from queue '%s': the handle was opened read-only", q.name().c_str());
  return status_fail(st, "popping from", q);
}

/// Pops up to `n` samples straight from the cells into out[0..n) (checked by the caller), one
/// core burst (one wake-up check); `popped` receives how many.
shmlink::Status pop_into(shmlink::Queue& q, shmlink_sample_t* out, std::size_t n, std::size_t& popped) noexcept {
  std::size_t i = 0;
  return q.try_pop_burst([&](const shmlink::SampleView& v) noexcept { to_c(v, &out[i++]); }, n, popped);
}

/// A pop into `out` (checked first, so that a bad buffer never costs a sample): straight from
/// the cell when a sample is there; otherwise, when `blocking`, a wait up to `timeout_ns` into the
/// handle's pop scratch (Queue::pop fills a Sample), then copied out.
int queue_pop(shmlink_queue_t* h, shmlink_sample_t* out, const char* function, bool blocking,
              std::int64_t timeout_ns) noexcept {
  if (h == nullptr) return null_arg(function, "queue");
  if (const int rc = check_pop_sample(function, out); rc != SHMLINK_OK) return rc;
  auto& q = h->queue;
  std::size_t popped = 0;
  shmlink::Status st = pop_into(q, out, 1, popped);
  if (st.code() == Errc::would_block && blocking) {
    st = q.pop(h->pop_scratch, to_timeout(timeout_ns));
    if (st.ok()) to_c(h->pop_scratch, out);
  }
  return pop_result(st, q, timeout_ns);
}

/// Clamps a burst count so that it can be returned as an int.
std::size_t burst_limit(std::size_t count) noexcept { return std::min<std::size_t>(count, INT_MAX); }

}  // namespace

void shmlink_queue_spec_init(shmlink_queue_spec_t* spec) {
  if (spec == nullptr) return;
  const shmlink::QueueSpec defaults;  // one source of truth for the defaults
  *spec = shmlink_queue_spec_t{};
  spec->capacity = defaults.capacity;
  spec->max_values = defaults.max_values;
  spec->kind = static_cast<std::uint8_t>(defaults.kind);
  spec->wait = static_cast<std::uint8_t>(defaults.wait);
  spec->permissions = static_cast<std::uint32_t>(defaults.permissions);
  spec->signals = nullptr;
  spec->signal_count = 0;
}

void shmlink_queue_expect_init(shmlink_queue_expect_t* expect) {
  if (expect == nullptr) return;
  *expect = shmlink_queue_expect_t{};
}

std::unique_ptr<shmlink_queue_s> shmlink::capi::new_queue_handle(std::uint32_t max_values) {
  auto handle = std::make_unique<shmlink_queue_s>();
  handle->pop_scratch.values.reserve(std::min(max_values, shmlink::kMaxSampleValues));
  return handle;
}

void shmlink::capi::adopt(shmlink_queue_s& handle, shmlink::Queue q, bool read_only) {
  handle.pop_scratch.values.reserve(q.max_values());
  handle.queue = std::move(q);
  handle.read_only = read_only;
}

int shmlink::capi::to_cpp(const shmlink_queue_spec_t& spec, const char* action, const char* name,
                          shmlink::QueueSpec& out) {
  out.capacity = spec.capacity;
  out.max_values = spec.max_values;
  out.kind = static_cast<QueueKind>(spec.kind);  // the core rejects values outside the enum
  out.wait = static_cast<WaitMode>(spec.wait);
  out.permissions = static_cast<mode_t>(spec.permissions);
  return to_cpp_signals(spec.signals, spec.signal_count, action, name, out.signals);
}

int shmlink::capi::to_cpp(const shmlink_queue_expect_t* expect, const char* action, const char* name,
                          shmlink::QueueExpect& out) {
  if (expect == nullptr) return SHMLINK_OK;
  if (expect->kind != 0 && !kind_valid(expect->kind))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s '%s': expected kind %u is not 0, SPSC (1) or MPMC (2)", action, name,
                static_cast<unsigned>(expect->kind));
  if (expect->max_values != 0) out.max_values = expect->max_values;
  if (expect->kind != 0) out.kind = static_cast<QueueKind>(expect->kind);
  if (expect->signals != nullptr) {
    std::vector<shmlink::Signal> table;
    if (const int rc = to_cpp_signals(expect->signals, expect->signal_count, action, name, table); rc != SHMLINK_OK)
      return rc;
    out.signals = std::move(table);
  }
  out.writable = expect->read_only == 0;
  return SHMLINK_OK;
}

int shmlink_queue_create(const char* name, const shmlink_queue_spec_t* spec, int mode, shmlink_queue_t** out) {
  if (out == nullptr) return null_arg("shmlink_queue_create", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_queue_create", "name");
  if (spec == nullptr) return null_arg("shmlink_queue_create", "spec");
  if (const int rc = check_open_mode("creating queue", name, mode); rc != SHMLINK_OK) return rc;
  return guarded("creating queue", name, [&] {
    shmlink::QueueSpec cpp;
    if (const int rc = to_cpp(*spec, "creating queue", name, cpp); rc != SHMLINK_OK) return rc;
    // The handle and its scratch samples are allocated first so that an out-of-memory cannot
    // strand a created file (adopt() then only reserves more when an existing queue was opened).
    auto handle = new_queue_handle(cpp.max_values);
    adopt(*handle, shmlink::Queue::create(name, cpp, static_cast<shmlink::OpenMode>(mode)), false);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_queue_open(const char* name, const shmlink_queue_expect_t* expect, shmlink_queue_t** out) {
  if (out == nullptr) return null_arg("shmlink_queue_open", "out");
  *out = nullptr;
  if (name == nullptr) return null_arg("shmlink_queue_open", "name");
  return guarded("opening queue", name, [&] {
    shmlink::QueueExpect cpp;
    if (const int rc = to_cpp(expect, "opening queue", name, cpp); rc != SHMLINK_OK) return rc;
    auto handle = std::make_unique<shmlink_queue_s>();
    adopt(*handle, shmlink::Queue::open(name, cpp), !cpp.writable);
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_queue_close(shmlink_queue_t* queue) {
  delete queue;  // ~Queue unmaps; the file stays. delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_queue_remove(const char* name) {
  if (name == nullptr) return null_arg("shmlink_queue_remove", "name");
  return shmlink_queue_destroy(name);
}

int shmlink_queue_destroy(const char* name) {
  if (name == nullptr) return null_arg("shmlink_queue_destroy", "name");
  return guarded("removing queue", name, [&] {
    shmlink::Queue::remove(name);
    return SHMLINK_OK;
  });
}

int shmlink_queue_try_push(shmlink_queue_t* queue, const shmlink_sample_t* sample) {
  return queue_push(queue, sample, "shmlink_queue_try_push", false, 0);
}

int shmlink_queue_push(shmlink_queue_t* queue, const shmlink_sample_t* sample, int64_t timeout_ns) {
  return queue_push(queue, sample, "shmlink_queue_push", true, timeout_ns);
}

int shmlink_queue_try_push_burst(shmlink_queue_t* queue, const shmlink_sample_t* samples, size_t count) {
  constexpr const char* kFn = "shmlink_queue_try_push_burst";
  if (queue == nullptr) return null_arg(kFn, "queue");
  if (samples == nullptr && count != 0) return null_arg(kFn, "samples");
  auto& q = queue->queue;
  const std::size_t n = burst_limit(count);
  std::size_t done = 0;
  // Runs of up to kPushRun views, each one core burst: the samples up to the first bad one are
  // pushed; the bad one is reported once it comes first.
  std::array<shmlink::SampleView, kPushRun> run;
  while (done < n) {
    const std::size_t want = std::min(run.size(), n - done);
    std::size_t ready = 0;
    int bad = SHMLINK_OK;
    for (; ready < want; ++ready) {
      if ((bad = check_push_fits(kFn, &samples[done + ready], q)) != SHMLINK_OK) break;
      run[ready] = view_of(samples[done + ready]);
    }
    std::size_t pushed = 0;
    shmlink::Status st = Errc::ok;
    if (ready != 0) st = q.try_push_burst(std::span<const shmlink::SampleView>(run.data(), ready), pushed);
    done += pushed;
    if (pushed < ready) return done > 0 ? static_cast<int>(done) : push_result(st, q, 0);
    if (bad != SHMLINK_OK) return done > 0 ? static_cast<int>(done) : bad;
  }
  return static_cast<int>(done);
}

int shmlink_queue_try_pop(shmlink_queue_t* queue, shmlink_sample_t* out) {
  return queue_pop(queue, out, "shmlink_queue_try_pop", false, 0);
}

int shmlink_queue_pop(shmlink_queue_t* queue, shmlink_sample_t* out, int64_t timeout_ns) {
  return queue_pop(queue, out, "shmlink_queue_pop", true, timeout_ns);
}

int shmlink_queue_try_pop_burst(shmlink_queue_t* queue, shmlink_sample_t* out, size_t count) {
  if (queue == nullptr) return null_arg("shmlink_queue_try_pop_burst", "queue");
  if (out == nullptr && count != 0) return null_arg("shmlink_queue_try_pop_burst", "out");
  const std::size_t n = burst_limit(count);
  for (std::size_t i = 0; i < n; ++i)  // all checked first: a bad entry must not lose a sample
    if (const int rc = check_pop_sample("shmlink_queue_try_pop_burst", &out[i]); rc != SHMLINK_OK) return rc;
  if (n == 0) return 0;
  std::size_t popped = 0;
  const shmlink::Status st = pop_into(queue->queue, out, n, popped);
  return popped > 0 ? static_cast<int>(popped) : pop_result(st, queue->queue, 0);
}

int shmlink_queue_shutdown(shmlink_queue_t* queue) {
  if (queue == nullptr) return null_arg("shmlink_queue_shutdown", "queue");
  if (queue->read_only)  // Queue::shutdown() would silently do nothing
    return fail(SHMLINK_E_PERMISSION, "shutting down queue '%s': the handle was opened read-only",
                queue->queue.name().c_str());
  queue->queue.shutdown();
  return SHMLINK_OK;
}

int shmlink_queue_is_shut(const shmlink_queue_t* queue) {
  if (queue == nullptr) return null_arg("shmlink_queue_is_shut", "queue");
  return queue->queue.is_shut() ? 1 : 0;
}

uint64_t shmlink_queue_size_approx(const shmlink_queue_t* queue) {
  return queue != nullptr ? queue->queue.size() : 0;
}

int shmlink_queue_set_wait(shmlink_queue_t* queue, int wait) {
  if (queue == nullptr) return null_arg("shmlink_queue_set_wait", "queue");
  if (wait < SHMLINK_WAIT_POLLING || wait > SHMLINK_WAIT_HYBRID)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "setting the wait mode of queue '%s': %d is not a SHMLINK_WAIT_* mode",
                queue->queue.name().c_str(), wait);
  queue->queue.set_wait_mode(static_cast<WaitMode>(wait));
  return SHMLINK_OK;
}

int shmlink_queue_info(const shmlink_queue_t* queue, shmlink_queue_info_t* out) {
  if (queue == nullptr) return null_arg("shmlink_queue_info", "queue");
  if (out == nullptr) return null_arg("shmlink_queue_info", "out");
  return guarded("reading the header of queue", queue->queue.name().c_str(), [&] {
    to_c(queue->queue.info(), out);
    return SHMLINK_OK;
  });
}

const char* shmlink_queue_name(const shmlink_queue_t* queue) {
  return queue != nullptr ? queue->queue.name().c_str() : "";
}

const char* shmlink_queue_path(const shmlink_queue_t* queue) {
  return queue != nullptr ? queue->queue.path().c_str() : "";
}

int shmlink_queue_signal_count(const shmlink_queue_t* queue) {
  if (queue == nullptr) return null_arg("shmlink_queue_signal_count", "queue");
  return static_cast<int>(queue->queue.signals().size());  // at most kMaxSampleValues
}

int shmlink_queue_signal(const shmlink_queue_t* queue, uint32_t position, shmlink_signal_t* out) {
  if (queue == nullptr) return null_arg("shmlink_queue_signal", "queue");
  if (out == nullptr) return null_arg("shmlink_queue_signal", "out");
  const auto& table = queue->queue.signals();
  if (position >= table.size())
    return fail(SHMLINK_E_OUT_OF_RANGE, "reading signal %" PRIu32 " of queue '%s': the table has %zu entries",
                position, queue->queue.name().c_str(), table.size());
  to_c(table[position], out);
  return SHMLINK_OK;
}
