// SPDX-License-Identifier: MIT
// The duplex co-simulation interface part of the C API (include/shmlink.h) over
// shmlink::Interface. Conventions: capi_common.cpp.
#include <shmlink.h>

#include "capi/capi_handles.hpp"
#include "capi/capi_internal.hpp"

#include <shmlink/error.hpp>
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

using shmlink::capi::check_pop_sample;
using shmlink::capi::check_push_sample;
using shmlink::capi::fail;
using shmlink::capi::from_c;
using shmlink::capi::guarded;
using shmlink::capi::kind_valid;
using shmlink::capi::null_arg;
using shmlink::capi::signal_type_valid;
using shmlink::capi::to_c;
using shmlink::capi::to_timeout;
using shmlink::capi::wait_valid;

namespace {

using shmlink::Errc;
using shmlink::QueueKind;
using shmlink::SignalType;
using shmlink::SignalValue;
using shmlink::WaitMode;

// The C ABI of the interface structs (see the stream structs in capi_stream.cpp).
static_assert(sizeof(shmlink_interface_spec_t) == 72 && alignof(shmlink_interface_spec_t) == 8);
static_assert(offsetof(shmlink_interface_spec_t, out) == 0 && offsetof(shmlink_interface_spec_t, in) == 8 &&
              offsetof(shmlink_interface_spec_t, capacity) == 16 &&
              offsetof(shmlink_interface_spec_t, max_values) == 20 &&
              offsetof(shmlink_interface_spec_t, kind) == 24 && offsetof(shmlink_interface_spec_t, wait) == 25 &&
              offsetof(shmlink_interface_spec_t, protocol) == 26 &&
              offsetof(shmlink_interface_spec_t, attach_timeout_ns) == 32 &&
              offsetof(shmlink_interface_spec_t, liveness_interval_ns) == 40 &&
              offsetof(shmlink_interface_spec_t, stop_timeout_ns) == 48 &&
              offsetof(shmlink_interface_spec_t, permissions) == 56 &&
              offsetof(shmlink_interface_spec_t, exec) == 64);
static_assert(sizeof(shmlink_peer_status_t) == 24 && alignof(shmlink_peer_status_t) == 4);
static_assert(offsetof(shmlink_peer_status_t, pid) == 0 && offsetof(shmlink_peer_status_t, launched) == 4 &&
              offsetof(shmlink_peer_status_t, exited) == 8 && offsetof(shmlink_peer_status_t, exit_code) == 12 &&
              offsetof(shmlink_peer_status_t, term_signal) == 16 && offsetof(shmlink_peer_status_t, closed) == 20);

static_assert(SHMLINK_PROTOCOL_SHMLINK == static_cast<int>(shmlink::InterfaceProtocol::shmlink));
static_assert(SHMLINK_PROTOCOL_VILLAS == static_cast<int>(shmlink::InterfaceProtocol::villas));
bool protocol_valid(unsigned p) noexcept { return p == SHMLINK_PROTOCOL_SHMLINK || p == SHMLINK_PROTOCOL_VILLAS; }

}  // namespace

/// The opaque interface handle. Writes build their sample in the write scratch (reserved at
/// open: no allocation); reads copy straight from the peer's cells into the caller's samples
/// (Interface::read_burst), so the handle needs no read scratch.
struct shmlink_interface_s {
  shmlink::Interface iface;
  alignas(64) shmlink::Sample write_scratch;  // the writing thread's
};

namespace {

/// "interface (out 'a2b', in 'b2a')" without allocating, for hot-path messages.
struct IfaceLabel {
  const char* out;
  const char* in;
};
IfaceLabel label_of(const shmlink::Interface& i) noexcept {
  return {i.spec().out.c_str(), i.spec().in.c_str()};
}

/// Describes the peer into `buf` without allocating (hot-path failures), as PeerStatus::describe.
void describe_peer(const shmlink::PeerStatus& p, char* buf, std::size_t size) noexcept {
  char who[160];
  if (p.command.empty()) std::snprintf(who, sizeof who, "peer");
  else std::snprintf(who, sizeof who, "peer '%s'", p.command.c_str());
  char pid[32] = "";
  if (p.pid > 0) std::snprintf(pid, sizeof pid, " (pid %d)", static_cast<int>(p.pid));
  if (p.term_signal != 0) std::snprintf(buf, size, "%s%s was killed by signal %d", who, pid, p.term_signal);
  else if (p.exit_code >= 0) std::snprintf(buf, size, "%s%s exited with status %d", who, pid, p.exit_code);
  else if (p.exited) std::snprintf(buf, size, "%s%s is gone (it ended without closing the interface)", who, pid);
  else if (p.closed) std::snprintf(buf, size, "%s%s closed the interface", who, pid);
  else std::snprintf(buf, size, "%s%s is not attached", who, pid);
}

/// Message for a non-ok interface status.
int status_fail(shmlink::Status st, const char* action, const shmlink::Interface& i, std::int64_t timeout_ns) noexcept {
  const IfaceLabel l = label_of(i);
  switch (st.code()) {
    case Errc::peer_exited: {
      char peer[256];
      describe_peer(i.peer(), peer, sizeof peer);
      return fail(SHMLINK_E_PEER_EXITED, "%s interface (out '%s', in '%s'): %s", action, l.out, l.in, peer);
    }
    case Errc::timeout:
      return fail(SHMLINK_E_TIMEOUT, "%s interface (out '%s', in '%s'): nothing moved within %" PRId64 " ns", action,
                  l.out, l.in, timeout_ns);
    case Errc::closed:
      return fail(SHMLINK_E_CLOSED, "%s interface (out '%s', in '%s'): the interface is not open", action, l.out,
                  l.in);
    case Errc::shut_down:
      return fail(SHMLINK_E_SHUT_DOWN, "%s interface (out '%s', in '%s'): the peer closed the interface", action,
                  l.out, l.in);
    default:
      return fail(static_cast<int>(st.code()), "%s interface (out '%s', in '%s'): %s", action, l.out, l.in,
                  st.message());
  }
}

/// A write of more values than the output queue takes (checked before the scratch is filled).
int too_many_values(shmlink::Interface& i, std::uint32_t count) noexcept {
  return fail(SHMLINK_E_SIZE_MISMATCH, "writing to interface (out '%s', in '%s'): %" PRIu32 " values, at most %" PRIu32
              " allowed", label_of(i).out, label_of(i).in, count, i.out_max_values());
}

/// The label for messages of setup calls that may allocate.
std::string label_string(const shmlink_interface_t* h) {
  const auto& s = h->iface.spec();
  return "interface (out '" + s.out + "', in '" + s.in + "')";
}

int register_signal(shmlink_interface_t* iface, const char* function, bool is_export, uint32_t index,
                    const char* name, int type, const char* unit) noexcept {
  if (iface == nullptr) return null_arg(function, "iface");
  if (!signal_type_valid(type))  // checked here: an int outside uint8_t must not wrap into range
    return fail(SHMLINK_E_INVALID_ARGUMENT,
                "%s: signal %" PRIu32 " of interface (out '%s', in '%s'): type %d is not a SHMLINK_SIGNAL_* value",
                function, index, label_of(iface->iface).out, label_of(iface->iface).in, type);
  const std::string_view n = name != nullptr ? name : "";
  const std::string_view u = unit != nullptr ? unit : "";
  return guarded(is_export ? "exporting a signal of" : "importing a signal of", label_of(iface->iface).out, [&] {
    try {
      if (is_export) iface->iface.export_signal(index, n, static_cast<SignalType>(type), u);
      else iface->iface.import_signal(index, n, static_cast<SignalType>(type), u);
    } catch (const shmlink::Error& e) {
      // The core's messages name the signal ("export 3: ..."); add which interface.
      const int code = static_cast<int>(e.errc()) < 0 ? static_cast<int>(e.errc()) : SHMLINK_E_SYSTEM;
      if (std::strncmp(e.what(), "interface (", 11) == 0) return fail(code, "%s", e.what());  // named already
      return fail(code, "%s: %s", label_string(iface).c_str(), e.what());
    }
    return SHMLINK_OK;
  });
}

int iface_info(const shmlink_interface_t* iface, shmlink_queue_info_t* out, bool in, const char* function) noexcept {
  if (iface == nullptr) return null_arg(function, "iface");
  if (out == nullptr) return null_arg(function, "out");
  auto& i = const_cast<shmlink::Interface&>(iface->iface);  // out_queue()/in_queue() are not const
  if (!i.is_open())
    return fail(SHMLINK_E_CLOSED, "%s: interface (out '%s', in '%s') is not open", function, label_of(i).out,
                label_of(i).in);
  if (i.spec().protocol == shmlink::InterfaceProtocol::villas) {  // no queue file: what is known
    *out = shmlink_queue_info_t{};
    out->kind = SHMLINK_QUEUE_MPMC;
    out->wait = static_cast<std::uint8_t>(i.spec().wait);
    out->capacity = i.spec().capacity;
    if (in) {  // the peer's region: its queuelen, and its mode (pthread: what HYBRID makes here)
      const auto peer = i.villas_peer_region();
      out->capacity = peer.queuelen;
      out->wait = peer.pthread_mode ? SHMLINK_WAIT_HYBRID : SHMLINK_WAIT_POLLING;
    }
    out->max_values = in ? i.in_max_values() : i.out_max_values();
    return SHMLINK_OK;
  }
  return guarded("reading the queue header of interface", label_of(i).out, [&] {
    to_c((in ? i.in_queue() : i.out_queue()).info(), out);
    return SHMLINK_OK;
  });
}

}  // namespace

void shmlink_interface_spec_init(shmlink_interface_spec_t* spec) {
  if (spec == nullptr) return;
  const shmlink::InterfaceSpec defaults;  // one source of truth for the defaults
  *spec = shmlink_interface_spec_t{};
  spec->out = nullptr;
  spec->in = nullptr;
  spec->capacity = defaults.capacity;
  spec->max_values = defaults.max_values;
  spec->kind = static_cast<std::uint8_t>(defaults.kind);
  spec->wait = static_cast<std::uint8_t>(defaults.wait);
  spec->protocol = static_cast<std::uint8_t>(defaults.protocol);
  spec->attach_timeout_ns = defaults.attach_timeout.count();
  spec->liveness_interval_ns = defaults.liveness_interval.count();
  spec->stop_timeout_ns = defaults.stop_timeout.count();
  spec->permissions = static_cast<std::uint32_t>(defaults.permissions);
  spec->exec = nullptr;
}

int shmlink_interface_create(const shmlink_interface_spec_t* spec, shmlink_interface_t** out) {
  if (out == nullptr) return null_arg("shmlink_interface_create", "out");
  *out = nullptr;
  if (spec == nullptr) return null_arg("shmlink_interface_create", "spec");
  if (spec->out == nullptr) return null_arg("shmlink_interface_create", "spec->out");
  if (spec->in == nullptr) return null_arg("shmlink_interface_create", "spec->in");
  if (!kind_valid(spec->kind))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): kind %u is not SPSC (1) or MPMC (2)",
                spec->out, spec->in, static_cast<unsigned>(spec->kind));
  if (!wait_valid(spec->wait))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): wait mode %u is not 1..3", spec->out,
                spec->in, static_cast<unsigned>(spec->wait));
  if (!protocol_valid(spec->protocol))
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): protocol %u is not SHMLINK (0) or VILLAS (1)",
                spec->out, spec->in, static_cast<unsigned>(spec->protocol));
  if (spec->liveness_interval_ns < 0)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "interface (out '%s', in '%s'): liveness_interval_ns %" PRId64
                " is negative", spec->out, spec->in, spec->liveness_interval_ns);
  return guarded("setting up interface", spec->out, [&] {
    shmlink::InterfaceSpec cpp;
    cpp.out = spec->out;
    cpp.in = spec->in;
    cpp.capacity = spec->capacity;
    cpp.max_values = spec->max_values;
    cpp.kind = static_cast<QueueKind>(spec->kind);
    cpp.wait = static_cast<WaitMode>(spec->wait);
    cpp.protocol = static_cast<shmlink::InterfaceProtocol>(spec->protocol);
    cpp.attach_timeout = to_timeout(spec->attach_timeout_ns);
    cpp.liveness_interval = std::chrono::nanoseconds(spec->liveness_interval_ns);
    cpp.stop_timeout = to_timeout(spec->stop_timeout_ns);
    cpp.permissions = static_cast<mode_t>(spec->permissions);
    if (spec->exec != nullptr)
      for (const char* const* a = spec->exec; *a != nullptr; ++a) cpp.exec.emplace_back(*a);
    auto handle = std::make_unique<shmlink_interface_s>();
    handle->iface = shmlink::Interface(std::move(cpp));
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_interface_export_signal(shmlink_interface_t* iface, uint32_t index, const char* name, int type,
                                    const char* unit) {
  return register_signal(iface, "shmlink_interface_export_signal", true, index, name, type, unit);
}

int shmlink_interface_import_signal(shmlink_interface_t* iface, uint32_t index, const char* name, int type,
                                    const char* unit) {
  return register_signal(iface, "shmlink_interface_import_signal", false, index, name, type, unit);
}

int shmlink_interface_connect(shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_connect", "iface");
  return guarded("opening interface", label_of(iface->iface).out, [&] {
    auto& i = iface->iface;
    i.open();
    // Reserved once per open: write and read then never allocate.
    iface->write_scratch.values.reserve(i.out_max_values());
    return SHMLINK_OK;
  });
}

int shmlink_interface_is_connected(const shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_is_connected", "iface");
  return iface->iface.is_open() ? 1 : 0;
}

int shmlink_interface_write_values(shmlink_interface_t* iface, const shmlink_value_t* values, uint32_t count,
                                   int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_write_values", "iface");
  if (values == nullptr && count != 0) return null_arg("shmlink_interface_write_values", "values");
  auto& i = iface->iface;
  if (!i.is_open()) return status_fail(Errc::closed, "writing to", i, timeout_ns);
  auto& scratch = iface->write_scratch.values;
  if (count > i.out_max_values()) return too_many_values(i, count);
  scratch.resize(count);  // capacity reserved at open: no allocation
  if (count != 0) std::memcpy(scratch.data(), values, std::size_t{count} * sizeof(SignalValue));
  const auto st = i.write(std::span<const SignalValue>(scratch), to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no room is not an error
  return status_fail(st, "writing to", i, timeout_ns);
}

int shmlink_interface_write(shmlink_interface_t* iface, const shmlink_sample_t* sample, int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_write", "iface");
  if (const int rc = check_push_sample("shmlink_interface_write", sample); rc != SHMLINK_OK) return rc;
  auto& i = iface->iface;
  if (!i.is_open()) return status_fail(Errc::closed, "writing to", i, timeout_ns);
  if (sample->length > i.out_max_values()) return too_many_values(i, sample->length);
  from_c(*sample, iface->write_scratch);
  const auto st = i.write(iface->write_scratch, to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;
  return status_fail(st, "writing to", i, timeout_ns);
}

int shmlink_interface_read(shmlink_interface_t* iface, shmlink_sample_t* out, int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_read", "iface");
  if (const int rc = check_pop_sample("shmlink_interface_read", out); rc != SHMLINK_OK) return rc;
  auto& i = iface->iface;
  std::size_t got = 0;
  const auto st = i.read_burst([&](const shmlink::SampleView& v) noexcept { to_c(v, out); }, 1, got,
                               to_timeout(timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // no data is not an error
  return status_fail(st, "reading from", i, timeout_ns);
}

int shmlink_interface_read_burst(shmlink_interface_t* iface, shmlink_sample_t* out, size_t count,
                                 int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_interface_read_burst", "iface");
  if (out == nullptr && count != 0) return null_arg("shmlink_interface_read_burst", "out");
  const std::size_t n = std::min<std::size_t>(count, INT_MAX);  // returned as an int
  for (std::size_t k = 0; k < n; ++k)  // all checked first: a bad entry must not lose a sample
    if (const int rc = check_pop_sample("shmlink_interface_read_burst", &out[k]); rc != SHMLINK_OK) return rc;
  if (n == 0) return 0;
  auto& i = iface->iface;
  std::size_t got = 0;
  std::size_t k = 0;
  const auto st = i.read_burst([&](const shmlink::SampleView& v) noexcept { to_c(v, &out[k++]); }, n, got,
                               to_timeout(timeout_ns));
  if (st.ok()) return static_cast<int>(got);
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;
  return status_fail(st, "reading from", i, timeout_ns);
}

int shmlink_interface_disconnect(shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_disconnect", "iface");
  iface->iface.close();
  return SHMLINK_OK;
}

int shmlink_interface_close(shmlink_interface_t* iface) {
  delete iface;  // ~Interface disconnects; delete NULL is a no-op.
  return SHMLINK_OK;
}

// ---- the older names (shmlink.h: deprecated, same meaning) -----------------------------------

int shmlink_interface_new(const shmlink_interface_spec_t* spec, shmlink_interface_t** out) {
  return shmlink_interface_create(spec, out);
}

int shmlink_interface_open(shmlink_interface_t* iface) { return shmlink_interface_connect(iface); }

int shmlink_interface_is_open(const shmlink_interface_t* iface) { return shmlink_interface_is_connected(iface); }

int shmlink_interface_destroy(shmlink_interface_t* iface) { return shmlink_interface_close(iface); }

int shmlink_interface_peer(const shmlink_interface_t* iface, shmlink_peer_status_t* out) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer", "iface");
  if (out == nullptr) return null_arg("shmlink_interface_peer", "out");
  const auto& p = iface->iface.peer();
  *out = shmlink_peer_status_t{};
  out->pid = static_cast<std::int32_t>(p.pid);
  out->launched = p.launched ? 1 : 0;
  out->exited = p.exited ? 1 : 0;
  out->exit_code = p.exit_code;
  out->term_signal = p.term_signal;
  out->closed = p.closed ? 1 : 0;
  return SHMLINK_OK;
}

int shmlink_interface_peer_describe(const shmlink_interface_t* iface, char* buf, size_t size) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_describe", "iface");
  if (buf == nullptr && size != 0) return null_arg("shmlink_interface_peer_describe", "buf");
  return guarded("describing the peer of interface", label_of(iface->iface).out, [&] {
    const std::string line = iface->iface.peer().describe();
    if (size != 0) {
      const std::size_t n = std::min(line.size(), size - 1);
      std::memcpy(buf, line.data(), n);
      buf[n] = '\0';
    }
    return static_cast<int>(std::min<std::size_t>(line.size(), INT_MAX));
  });
}

int shmlink_interface_peer_alive(shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_alive", "iface");
  return iface->iface.peer_alive() ? 1 : 0;
}

uint64_t shmlink_interface_next_sequence(const shmlink_interface_t* iface) {
  return iface != nullptr ? iface->iface.next_sequence() : 0;
}

int shmlink_interface_out_info(const shmlink_interface_t* iface, shmlink_queue_info_t* out) {
  return iface_info(iface, out, false, "shmlink_interface_out_info");
}

int shmlink_interface_in_info(const shmlink_interface_t* iface, shmlink_queue_info_t* out) {
  return iface_info(iface, out, true, "shmlink_interface_in_info");
}

int shmlink_interface_peer_signal_count(const shmlink_interface_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_signal_count", "iface");
  return static_cast<int>(iface->iface.peer_signals().size());
}

int shmlink_interface_peer_signal(const shmlink_interface_t* iface, uint32_t position, shmlink_signal_t* out) {
  if (iface == nullptr) return null_arg("shmlink_interface_peer_signal", "iface");
  if (out == nullptr) return null_arg("shmlink_interface_peer_signal", "out");
  const auto& table = iface->iface.peer_signals();
  if (position >= table.size())
    return fail(SHMLINK_E_OUT_OF_RANGE, "reading peer signal %" PRIu32 " of interface (out '%s', in '%s'): the "
                "table has %zu entries", position, label_of(iface->iface).out, label_of(iface->iface).in, table.size());
  to_c(table[position], out);
  return SHMLINK_OK;
}
