// SPDX-License-Identifier: MIT
// The stream and queue handles of the C API and the conversions that more than one object's file
// needs (capi_stream.cpp, capi_queue.cpp, capi_interface.cpp). Internal: not installed, not
// exported.
#pragma once

#include <shmlink.h>

#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

/// The opaque stream handle: owns one open stream. shmlink_stream_close deletes it.
struct shmlink_stream_s {
  shmlink::Stream stream;
};

/// The opaque queue handle. Pushes and non-blocking pops copy straight between the caller's
/// arrays and the cells (SampleView, Queue::try_pop_burst with a handler); only a pop that has to
/// wait goes through the pop scratch (Queue::pop fills a Sample), reserved to max_values at open
/// so that it never allocates. On its own cache line: the popping thread writes it.
struct shmlink_queue_s {
  shmlink::Queue queue;
  bool read_only = false;
  alignas(64) shmlink::Sample pop_scratch;  // the popping thread's
};

namespace shmlink::capi {

/// A C timeout (relative ns; negative = wait forever, the header's convention) as a C++ one.
inline std::chrono::nanoseconds to_timeout(std::int64_t ns) noexcept {
  return ns < 0 ? shmlink::kForever : std::chrono::nanoseconds(ns);
}

/// Checks an open mode: "creating stream 'wfs': open mode 7 is not a shmlink_open_mode_t".
/// @return SHMLINK_OK or SHMLINK_E_INVALID_ARGUMENT (message recorded).
int check_open_mode(const char* action, const char* name, int mode) noexcept;
/// Checks what the core cannot check of a C stream spec (naxis, which bounds the read of shape;
/// dtype) and the open mode, naming stream `name`. @return 0 or INVALID_ARGUMENT.
int check_stream_spec(const char* name, const shmlink_stream_spec_t* spec, int mode) noexcept;
/// A checked C stream spec as the C++ one (allocates: call inside guarded()).
shmlink::StreamSpec to_cpp(const shmlink_stream_spec_t& spec);

/// A queue handle whose pop scratch has room for `max_values` values (at most kMaxSampleValues),
/// allocated before the queue exists so that an out-of-memory cannot strand a created file.
/// @throws std::bad_alloc.
std::unique_ptr<shmlink_queue_s> new_queue_handle(std::uint32_t max_values);
/// Puts a freshly created or opened queue into `handle`, growing its pop scratch to the queue's
/// max_values. @throws std::bad_alloc.
void adopt(shmlink_queue_s& handle, shmlink::Queue q, bool read_only);
/// A C queue spec as the C++ one (the signal table through to_cpp_signals, naming `name` in
/// messages; the core checks the rest). @return 0 or INVALID_ARGUMENT. @throws std::bad_alloc.
int to_cpp(const shmlink_queue_spec_t& spec, const char* action, const char* name, shmlink::QueueSpec& out);
/// What a C opener expects (NULL: nothing, read-write) as the C++ QueueExpect; checks the kind.
/// @return 0 or INVALID_ARGUMENT. @throws std::bad_alloc.
int to_cpp(const shmlink_queue_expect_t* expect, const char* action, const char* name, shmlink::QueueExpect& out);

/// SHMLINK_QUEUE_SPSC or SHMLINK_QUEUE_MPMC.
bool kind_valid(unsigned k) noexcept;
/// SHMLINK_WAIT_POLLING..SHMLINK_WAIT_HYBRID.
bool wait_valid(unsigned w) noexcept;
/// SHMLINK_SIGNAL_F64..SHMLINK_SIGNAL_C64 (a long long, so that no int wraps into range).
bool signal_type_valid(long long t) noexcept;

/// Converts a C signal table into `out`. Checks what C adds (NULL pointers, strings that lack
/// their NUL, absurd counts): "creating queue 'q': signal 2 (index 5): name is not
/// NUL-terminated within 40 bytes"; the core checks the rest (indices, types, duplicates) and
/// names the file. @return SHMLINK_OK or SHMLINK_E_INVALID_ARGUMENT (message recorded).
int to_cpp_signals(const shmlink_signal_t* signals, std::uint32_t count, const char* action, const char* name,
                   std::vector<shmlink::Signal>& out);
/// Copies one signal table entry out (strings cut to the C fields, always NUL-terminated).
void to_c(const shmlink::Signal& in, shmlink_signal_t* out) noexcept;
/// Copies a queue header snapshot out.
void to_c(const shmlink::QueueInfo& in, shmlink_queue_info_t* out) noexcept;
/// Checks a sample to push: "shmlink_queue_push: sample is NULL". @return 0 or INVALID_ARGUMENT.
int check_push_sample(const char* function, const shmlink_sample_t* s) noexcept;
/// Checks a sample to pop into (NULL, or NULL values with a capacity). @return 0 or INVALID_ARGUMENT.
int check_pop_sample(const char* function, const shmlink_sample_t* s) noexcept;
/// Copies a C sample into `dst`, whose values vector has room for `c.length` values (checked by
/// the caller): no allocation.
void from_c(const shmlink_sample_t& c, shmlink::Sample& dst) noexcept;
/// Copies a popped sample out: at most `out->capacity` values, `out->length` the real length.
void to_c(const shmlink::SampleView& src, shmlink_sample_t* out) noexcept;
/// to_c() of a Sample (the interface's read scratch, a queue's pop scratch).
void to_c(const shmlink::Sample& src, shmlink_sample_t* out) noexcept;

}  // namespace shmlink::capi
