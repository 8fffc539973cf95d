// SPDX-License-Identifier: MIT
// The memif part of the C API (include/shmlink.h, "memif" section) over shmlink::memif.
//
// Handles: a shmlink_memif_socket owns the C++ Socket and one shmlink_memif per interface; each
// shmlink_memif points at its C++ Interface (owned by the Socket) and holds the C callbacks, which
// C++ trampolines call. Setup calls run inside guarded() (exceptions become codes and messages);
// queue calls are noexcept C++ members and format a message only on failure, into the fixed
// thread-local buffer, from a label made once at creation: reporting never allocates. "Ring
// full" and "nothing received" are not failures and record no message.
#include <shmlink.h>

#include "capi/capi_internal.hpp"

#include <shmlink/error.hpp>
#include <shmlink/memif.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace memif = shmlink::memif;

namespace {

using shmlink::Errc;
using shmlink::Status;
using shmlink::capi::copy_field;
using shmlink::capi::fail;
using shmlink::capi::guarded;
using shmlink::capi::null_arg;

// The C constants are the C++ enumerators and limits; pin them so neither side can drift.
static_assert(SHMLINK_MEMIF_MASTER == static_cast<int>(memif::Role::master));
static_assert(SHMLINK_MEMIF_SLAVE == static_cast<int>(memif::Role::slave));
static_assert(SHMLINK_MEMIF_MODE_ETHERNET == static_cast<int>(memif::InterfaceMode::ethernet));
static_assert(SHMLINK_MEMIF_MODE_IP == static_cast<int>(memif::InterfaceMode::ip));
static_assert(SHMLINK_MEMIF_MODE_PUNT_INJECT == static_cast<int>(memif::InterfaceMode::punt_inject));
static_assert(SHMLINK_MEMIF_RX_INTERRUPT == static_cast<int>(memif::RxMode::interrupt));
static_assert(SHMLINK_MEMIF_RX_POLLING == static_cast<int>(memif::RxMode::polling));
static_assert(SHMLINK_MEMIF_BUFFER_NEXT == memif::kBufferNext);
static_assert(SHMLINK_MEMIF_NAME_MAX == memif::kMaxName);
static_assert(SHMLINK_MEMIF_SECRET_MAX == memif::kMaxSecret);
static_assert(SHMLINK_MEMIF_MAX_LOG2_RING == memif::kMaxLog2RingSize);
static_assert(sizeof(shmlink_memif_details_t{}.name) == memif::kMaxName + 1);
static_assert(sizeof(shmlink_memif_details_t{}.peer_name) == memif::kMaxName + 1);
static_assert(sizeof(shmlink_memif_details_t{}.peer_app) == memif::kMaxName + 1);
static_assert(sizeof(shmlink_memif_details_t{}.socket) > SHMLINK_MEMIF_PATH_MAX + 1);

// shmlink_memif_buffer_t arrays are passed to the C++ queue calls as Buffer arrays without a
// copy (reinterpret_cast), so the two must be layout-identical.
static_assert(std::is_standard_layout_v<memif::Buffer> && std::is_trivially_copyable_v<memif::Buffer>);
static_assert(std::is_standard_layout_v<shmlink_memif_buffer_t> && std::is_trivially_copyable_v<shmlink_memif_buffer_t>);
static_assert(sizeof(shmlink_memif_buffer_t) == sizeof(memif::Buffer));
static_assert(alignof(shmlink_memif_buffer_t) == alignof(memif::Buffer));
static_assert(offsetof(shmlink_memif_buffer_t, data) == offsetof(memif::Buffer, data));
static_assert(offsetof(shmlink_memif_buffer_t, len) == offsetof(memif::Buffer, len));
static_assert(offsetof(shmlink_memif_buffer_t, capacity) == offsetof(memif::Buffer, capacity));
static_assert(offsetof(shmlink_memif_buffer_t, flags) == offsetof(memif::Buffer, flags));
static_assert(offsetof(shmlink_memif_buffer_t, desc_index) == offsetof(memif::Buffer, desc_index));
static_assert(std::is_same_v<decltype(shmlink_memif_buffer_t::data), decltype(memif::Buffer::data)>);
static_assert(std::is_same_v<decltype(shmlink_memif_buffer_t::len), decltype(memif::Buffer::len)>);
static_assert(std::is_same_v<decltype(shmlink_memif_buffer_t::capacity), decltype(memif::Buffer::capacity)>);
static_assert(std::is_same_v<decltype(shmlink_memif_buffer_t::flags), decltype(memif::Buffer::flags)>);
static_assert(std::is_same_v<decltype(shmlink_memif_buffer_t::desc_index), decltype(memif::Buffer::desc_index)>);

// The C ABI of the memif structs: size, alignment and every field offset (LP64). A change
// breaks programs built against the previous header: bump the SOVERSION (see capi_stream.cpp).
static_assert(sizeof(shmlink_memif_socket_spec_t) == 24 && alignof(shmlink_memif_socket_spec_t) == 8);
static_assert(offsetof(shmlink_memif_socket_spec_t, path) == 0 &&
              offsetof(shmlink_memif_socket_spec_t, app_name) == 8 &&
              offsetof(shmlink_memif_socket_spec_t, reconnect_interval_ms) == 16 &&
              offsetof(shmlink_memif_socket_spec_t, cache_line) == 20);
static_assert(sizeof(shmlink_memif_spec_t) == 64 && alignof(shmlink_memif_spec_t) == 8);
static_assert(offsetof(shmlink_memif_spec_t, role) == 0 && offsetof(shmlink_memif_spec_t, id) == 4 &&
              offsetof(shmlink_memif_spec_t, name) == 8 && offsetof(shmlink_memif_spec_t, secret) == 16 &&
              offsetof(shmlink_memif_spec_t, mode) == 24 && offsetof(shmlink_memif_spec_t, num_s2m_rings) == 25 &&
              offsetof(shmlink_memif_spec_t, num_m2s_rings) == 26 &&
              offsetof(shmlink_memif_spec_t, log2_ring_size) == 27 &&
              offsetof(shmlink_memif_spec_t, buffer_size) == 28 &&
              offsetof(shmlink_memif_spec_t, separate_buffer_region) == 32 &&
              offsetof(shmlink_memif_spec_t, rx_mode) == 36 && offsetof(shmlink_memif_spec_t, on_connect) == 40 &&
              offsetof(shmlink_memif_spec_t, on_disconnect) == 48 && offsetof(shmlink_memif_spec_t, ctx) == 56);
static_assert(sizeof(shmlink_memif_buffer_t) == 24 && alignof(shmlink_memif_buffer_t) == 8);
static_assert(offsetof(shmlink_memif_buffer_t, data) == 0 && offsetof(shmlink_memif_buffer_t, len) == 8 &&
              offsetof(shmlink_memif_buffer_t, capacity) == 12 && offsetof(shmlink_memif_buffer_t, flags) == 16 &&
              offsetof(shmlink_memif_buffer_t, desc_index) == 18);
static_assert(sizeof(shmlink_memif_queue_counters_t) == 56 && alignof(shmlink_memif_queue_counters_t) == 8);
static_assert(offsetof(shmlink_memif_queue_counters_t, packets) == 0 &&
              offsetof(shmlink_memif_queue_counters_t, bytes) == 8 &&
              offsetof(shmlink_memif_queue_counters_t, bad_descriptors) == 16 &&
              offsetof(shmlink_memif_queue_counters_t, dropped_packets) == 24 &&
              offsetof(shmlink_memif_queue_counters_t, clamped_jumps) == 32 &&
              offsetof(shmlink_memif_queue_counters_t, interrupts_sent) == 40 &&
              offsetof(shmlink_memif_queue_counters_t, ring_full) == 48);
static_assert(sizeof(shmlink_memif_queue_details_t) == 96 && alignof(shmlink_memif_queue_details_t) == 8);
static_assert(offsetof(shmlink_memif_queue_details_t, qid) == 0 &&
              offsetof(shmlink_memif_queue_details_t, s2m) == 4 &&
              offsetof(shmlink_memif_queue_details_t, transmit) == 8 &&
              offsetof(shmlink_memif_queue_details_t, region) == 12 &&
              offsetof(shmlink_memif_queue_details_t, offset) == 16 &&
              offsetof(shmlink_memif_queue_details_t, ring_size) == 20 &&
              offsetof(shmlink_memif_queue_details_t, buffer_size) == 24 &&
              offsetof(shmlink_memif_queue_details_t, head) == 28 &&
              offsetof(shmlink_memif_queue_details_t, tail) == 30 &&
              offsetof(shmlink_memif_queue_details_t, mask_int) == 32 &&
              offsetof(shmlink_memif_queue_details_t, rx_mode) == 36 &&
              offsetof(shmlink_memif_queue_details_t, counters) == 40);
static_assert(sizeof(shmlink_memif_region_details_t) == 24 && alignof(shmlink_memif_region_details_t) == 8);
static_assert(offsetof(shmlink_memif_region_details_t, index) == 0 &&
              offsetof(shmlink_memif_region_details_t, size) == 8 &&
              offsetof(shmlink_memif_region_details_t, fd) == 16);
static_assert(sizeof(shmlink_memif_details_t) == 264 && alignof(shmlink_memif_details_t) == 8);
static_assert(offsetof(shmlink_memif_details_t, role) == 0 && offsetof(shmlink_memif_details_t, id) == 4 &&
              offsetof(shmlink_memif_details_t, mode) == 8 && offsetof(shmlink_memif_details_t, connected) == 12 &&
              offsetof(shmlink_memif_details_t, connects) == 16 &&
              offsetof(shmlink_memif_details_t, tx_queues) == 24 &&
              offsetof(shmlink_memif_details_t, rx_queues) == 26 &&
              offsetof(shmlink_memif_details_t, tx_queues_configured) == 28 &&
              offsetof(shmlink_memif_details_t, rx_queues_configured) == 30 &&
              offsetof(shmlink_memif_details_t, regions) == 32 && offsetof(shmlink_memif_details_t, name) == 34 &&
              offsetof(shmlink_memif_details_t, peer_name) == 66 &&
              offsetof(shmlink_memif_details_t, peer_app) == 98 && offsetof(shmlink_memif_details_t, socket) == 130);

}  // namespace

/// The opaque interface handle: the C callbacks and a label for messages. Owned by its socket.
struct shmlink_memif_s {
  shmlink_memif_socket_s* owner = nullptr;
  memif::Interface* iface = nullptr;  // owned by owner->sock
  void (*on_connect)(shmlink_memif_t*, void*) = nullptr;
  void (*on_disconnect)(shmlink_memif_t*, const char*, void*) = nullptr;
  void* ctx = nullptr;
  char label[256] = "";  // "memif slave 'eth0' (id 3) on /run/vpp/memif.sock"
};

/// The opaque socket handle. `ifaces` is declared before `sock` so that the C++ socket (which
/// runs no callbacks while it is destroyed) goes first and the C handles after it.
struct shmlink_memif_socket_s {
  std::vector<std::unique_ptr<shmlink_memif_s>> ifaces;
  memif::Socket sock;
  char label[160] = "";  // "memif socket /run/vpp/memif.sock"

  explicit shmlink_memif_socket_s(memif::SocketOptions options) : sock(std::move(options)) {}
};

namespace {

/// Copies `line` into buf[0..size) as snprintf does; returns the full length (capped at INT_MAX).
int copy_out(std::string_view line, char* buf, std::size_t size) noexcept {
  if (size != 0) {
    const std::size_t n = std::min(line.size(), size - 1);
    if (n != 0) std::memcpy(buf, line.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(std::min<std::size_t>(line.size(), INT_MAX));
}

memif::Buffer* to_cpp(shmlink_memif_buffer_t* b) noexcept { return reinterpret_cast<memif::Buffer*>(b); }
const memif::Buffer* to_cpp(const shmlink_memif_buffer_t* b) noexcept {
  return reinterpret_cast<const memif::Buffer*>(b);
}

void to_c(const memif::QueueCounters& in, shmlink_memif_queue_counters_t* out) noexcept {
  out->packets = in.packets;
  out->bytes = in.bytes;
  out->bad_descriptors = in.bad_descriptors;
  out->dropped_packets = in.dropped_packets;
  out->clamped_jumps = in.clamped_jumps;
  out->interrupts_sent = in.interrupts_sent;
  out->ring_full = in.ring_full;
}

void to_c(const memif::QueueDetails& in, shmlink_memif_queue_details_t* out) noexcept {
  *out = shmlink_memif_queue_details_t{};
  out->qid = in.qid;
  out->s2m = in.s2m ? 1 : 0;
  out->transmit = in.transmit ? 1 : 0;
  out->region = in.region;
  out->offset = in.offset;
  out->ring_size = in.ring_size;
  out->buffer_size = in.buffer_size;
  out->head = in.head;
  out->tail = in.tail;
  out->mask_int = in.mask_int ? 1 : 0;
  out->rx_mode = static_cast<int>(in.rx_mode);
  to_c(in.counters, &out->counters);
}

/// Receive queues configured (the range of set_rx_mode), whether connected or not.
std::uint16_t rx_configured(const memif::Interface& i) noexcept {
  const auto& o = i.options();
  return o.role == memif::Role::slave ? o.num_m2s_rings : o.num_s2m_rings;
}

/// Message for a non-ok queue-call status that needs no call-specific detail.
/// "memif slave 'a' (id 0) on /tmp/s: rx_burst on rx queue 4: out of range (1 rx queue(s) connected)"
int queue_fail(Status st, const shmlink_memif_s* h, const char* op, bool tx, std::uint16_t qid) noexcept {
  const char* dir = tx ? "tx" : "rx";
  const unsigned n = tx ? h->iface->tx_queues() : h->iface->rx_queues();
  switch (st.code()) {
    case Errc::not_connected:
      return fail(SHMLINK_E_NOT_CONNECTED, "%s: %s on %s queue %u: the link is down", h->label, op, dir,
                  static_cast<unsigned>(qid));
    case Errc::out_of_range:
      return fail(SHMLINK_E_OUT_OF_RANGE, "%s: %s on %s queue %u: out of range (%u %s queue(s) connected)", h->label,
                  op, dir, static_cast<unsigned>(qid), n, dir);
    case Errc::protocol:
      return fail(SHMLINK_E_PROTOCOL, "%s: %s on %s queue %u: the peer posted a bad descriptor (disconnecting)",
                  h->label, op, dir, static_cast<unsigned>(qid));
    default:
      return fail(static_cast<int>(st.code()), "%s: %s on %s queue %u: %s", h->label, op, dir,
                  static_cast<unsigned>(qid), st.message());
  }
}

/// Shared body of get_counters and get_queue_details: the snapshot of one configured queue.
template <class Out>
int queue_snapshot(const shmlink_memif_t* iface, int tx, std::uint16_t qid, Out* out, const char* function) noexcept {
  if (iface == nullptr) return null_arg(function, "iface");
  if (out == nullptr) return null_arg(function, "out");
  return guarded("reading the queues of", iface->label, [&] {
    const memif::InterfaceDetails d = iface->iface->details();
    const auto& qs = tx != 0 ? d.tx_queues : d.rx_queues;
    if (qid >= qs.size())
      return fail(SHMLINK_E_OUT_OF_RANGE, "%s: %s: %s queue %u out of range (%zu configured)", function, iface->label,
                  tx != 0 ? "tx" : "rx", static_cast<unsigned>(qid), qs.size());
    if constexpr (std::is_same_v<Out, shmlink_memif_queue_counters_t>) to_c(qs[qid].counters, out);
    else to_c(qs[qid], out);
    return SHMLINK_OK;
  });
}

}  // namespace

// ---- sockets --------------------------------------------------------------------------------

void shmlink_memif_socket_spec_init(shmlink_memif_socket_spec_t* spec) {
  if (spec == nullptr) return;
  const memif::SocketOptions defaults;  // one source of truth for the defaults
  *spec = shmlink_memif_socket_spec_t{};
  spec->path = memif::kDefaultSocket.data();  // a NUL-terminated literal
  spec->app_name = "shmlink";
  spec->reconnect_interval_ms = static_cast<std::uint32_t>(defaults.reconnect_interval.count());
  spec->cache_line = defaults.cache_line;
}

int shmlink_memif_socket_create(const shmlink_memif_socket_spec_t* spec, shmlink_memif_socket_t** out) {
  if (out == nullptr) return null_arg("shmlink_memif_socket_create", "out");
  *out = nullptr;
  shmlink_memif_socket_spec_t a;
  shmlink_memif_socket_spec_init(&a);
  if (spec != nullptr) {
    if (spec->path != nullptr && spec->path[0] != '\0') a.path = spec->path;
    if (spec->app_name != nullptr && spec->app_name[0] != '\0') a.app_name = spec->app_name;
    if (spec->reconnect_interval_ms != 0) a.reconnect_interval_ms = spec->reconnect_interval_ms;
    if (spec->cache_line != 0) a.cache_line = spec->cache_line;
  }
  return guarded("creating memif socket", a.path, [&] {
    memif::SocketOptions o;
    o.path = a.path;
    o.app_name = a.app_name;
    o.reconnect_interval = a.reconnect_interval_ms == SHMLINK_MEMIF_NO_RECONNECT
                               ? std::chrono::milliseconds(0)
                               : std::chrono::milliseconds(a.reconnect_interval_ms);
    o.cache_line = a.cache_line;
    auto handle = std::make_unique<shmlink_memif_socket_s>(std::move(o));
    std::snprintf(handle->label, sizeof handle->label, "memif socket %s", handle->sock.name().c_str());
    *out = handle.release();
    return SHMLINK_OK;
  });
}

int shmlink_memif_socket_close(shmlink_memif_socket_t* sock) {
  delete sock;  // ~Socket disconnects every interface without callbacks; delete NULL is a no-op.
  return SHMLINK_OK;
}

int shmlink_memif_socket_poll(shmlink_memif_socket_t* sock, int timeout_ms) {
  if (sock == nullptr) return null_arg("shmlink_memif_socket_poll", "sock");
  return guarded("polling", sock->label, [&] {
    const Status st = sock->sock.poll(std::chrono::milliseconds(timeout_ms < 0 ? -1 : timeout_ms));
    if (st.ok()) return SHMLINK_OK;
    if (st.code() == Errc::timeout) return SHMLINK_E_TIMEOUT;  // nothing happened is not a failure
    return fail(static_cast<int>(st.code()), "polling %s: %s", sock->label, st.message());
  });
}

int shmlink_memif_socket_fd(const shmlink_memif_socket_t* sock) {
  if (sock == nullptr) return null_arg("shmlink_memif_socket_fd", "sock");
  return sock->sock.fd();
}

// ---- interfaces -----------------------------------------------------------------------------

void shmlink_memif_spec_init(shmlink_memif_spec_t* spec) {
  if (spec == nullptr) return;
  const memif::InterfaceOptions defaults;  // one source of truth for the defaults
  *spec = shmlink_memif_spec_t{};
  spec->role = static_cast<int>(defaults.role);
  spec->id = defaults.id;
  spec->name = "shmlink0";
  spec->secret = nullptr;
  spec->mode = static_cast<std::uint8_t>(defaults.mode);
  spec->num_s2m_rings = defaults.num_s2m_rings;
  spec->num_m2s_rings = defaults.num_m2s_rings;
  spec->log2_ring_size = defaults.log2_ring_size;
  spec->buffer_size = defaults.buffer_size;
  spec->separate_buffer_region = defaults.separate_buffer_region ? 1 : 0;
  spec->rx_mode = static_cast<int>(defaults.rx_mode);
  spec->on_connect = nullptr;
  spec->on_disconnect = nullptr;
  spec->ctx = nullptr;
}

int shmlink_memif_create(shmlink_memif_socket_t* sock, const shmlink_memif_spec_t* spec, shmlink_memif_t** out) {
  if (out == nullptr) return null_arg("shmlink_memif_create", "out");
  *out = nullptr;
  if (sock == nullptr) return null_arg("shmlink_memif_create", "sock");
  if (spec == nullptr) return null_arg("shmlink_memif_create", "spec");
  const char* name = spec->name != nullptr && spec->name[0] != '\0' ? spec->name : "shmlink0";
  // Checked here: an int outside the enumerations must not be converted into them.
  if (spec->role != SHMLINK_MEMIF_MASTER && spec->role != SHMLINK_MEMIF_SLAVE)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "memif interface '%s' (id %" PRIu32 ") on %s: role %d is not "
                "SHMLINK_MEMIF_MASTER (0) or SHMLINK_MEMIF_SLAVE (1)", name, spec->id, sock->label, spec->role);
  if (spec->rx_mode != SHMLINK_MEMIF_RX_INTERRUPT && spec->rx_mode != SHMLINK_MEMIF_RX_POLLING)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "memif interface '%s' (id %" PRIu32 ") on %s: rx_mode %d is not "
                "SHMLINK_MEMIF_RX_INTERRUPT (0) or SHMLINK_MEMIF_RX_POLLING (1)", name, spec->id, sock->label,
                spec->rx_mode);
  return guarded("adding a memif interface to", sock->label, [&] {
    const memif::InterfaceOptions defaults;
    auto handle = std::make_unique<shmlink_memif_s>();
    shmlink_memif_s* h = handle.get();
    h->owner = sock;
    h->on_connect = spec->on_connect;
    h->on_disconnect = spec->on_disconnect;
    h->ctx = spec->ctx;

    memif::InterfaceOptions o;
    o.role = static_cast<memif::Role>(spec->role);
    o.id = spec->id;
    o.name = name;
    if (spec->secret != nullptr) o.secret = spec->secret;
    o.mode = static_cast<memif::InterfaceMode>(spec->mode);  // checked by add_interface
    o.num_s2m_rings = spec->num_s2m_rings != 0 ? spec->num_s2m_rings : defaults.num_s2m_rings;
    o.num_m2s_rings = spec->num_m2s_rings != 0 ? spec->num_m2s_rings : defaults.num_m2s_rings;
    o.log2_ring_size = spec->log2_ring_size != 0 ? spec->log2_ring_size : defaults.log2_ring_size;
    o.buffer_size = spec->buffer_size != 0 ? spec->buffer_size : defaults.buffer_size;
    o.separate_buffer_region = spec->separate_buffer_region != 0;
    o.rx_mode = static_cast<memif::RxMode>(spec->rx_mode);
    // The trampolines never throw: a C callback cannot, and the reason is copied into a fixed
    // buffer for its NUL. They only run inside poll or disconnect, never inside add_interface,
    // so h->iface is set by then. A callback that throws anyway (C++ passed as C) terminates here rather
    // than unwinding through the memif state machine.
    if (h->on_connect != nullptr)
      o.on_connect = [h](memif::Interface&) noexcept { h->on_connect(h, h->ctx); };
    if (h->on_disconnect != nullptr)
      o.on_disconnect = [h](memif::Interface&, std::string_view reason) noexcept {
        char text[512];
        copy_field(text, reason);
        h->on_disconnect(h, text, h->ctx);
      };
    std::snprintf(h->label, sizeof h->label, "memif %s '%s' (id %" PRIu32 ") on %s", memif::role_name(o.role), name,
                  spec->id, sock->sock.name().c_str());
    // Room first: once add_interface succeeded nothing may fail, or the interface would have no
    // handle.
    sock->ifaces.reserve(sock->ifaces.size() + 1);
    h->iface = &sock->sock.add_interface(std::move(o));
    sock->ifaces.push_back(std::move(handle));  // cannot throw: capacity reserved
    *out = h;
    return SHMLINK_OK;
  });
}

int shmlink_memif_close(shmlink_memif_t* iface) {
  if (iface == nullptr) return SHMLINK_OK;
  shmlink_memif_socket_s* owner = iface->owner;
  return guarded("closing", iface->label, [&] {
    owner->sock.remove_interface(*iface->iface);
    auto it = std::find_if(owner->ifaces.begin(), owner->ifaces.end(), [&](const auto& p) { return p.get() == iface; });
    if (it != owner->ifaces.end()) owner->ifaces.erase(it);  // frees the handle
    return SHMLINK_OK;
  });
}

int shmlink_memif_is_connected(const shmlink_memif_t* iface) {
  if (iface == nullptr) return null_arg("shmlink_memif_is_connected", "iface");
  return iface->iface->connected() ? 1 : 0;
}

// ---- queues ---------------------------------------------------------------------------------

int shmlink_memif_alloc(shmlink_memif_t* iface, uint16_t qid, shmlink_memif_buffer_t* bufs, size_t count_bufs,
                        size_t packets, uint32_t size, size_t* out_count) {
  if (out_count != nullptr) *out_count = 0;
  if (iface == nullptr) return null_arg("shmlink_memif_alloc", "iface");
  if (out_count == nullptr) return null_arg("shmlink_memif_alloc", "out_count");
  if (bufs == nullptr && count_bufs != 0) return null_arg("shmlink_memif_alloc", "bufs");
  const Status st = iface->iface->alloc(qid, std::span<memif::Buffer>(to_cpp(bufs), count_bufs), packets, size,
                                        *out_count);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // ring full: not a failure
  if (st.code() == Errc::invalid_argument)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: alloc on tx queue %u: cannot reserve %zu packet(s) of %" PRIu32
                " bytes in %zu buffer(s) (packets and size must be >= 1, and one packet must fit in the buffers)",
                iface->label, static_cast<unsigned>(qid), packets, size, count_bufs);
  return queue_fail(st, iface, "alloc", true, qid);
}

int shmlink_memif_tx_burst(shmlink_memif_t* iface, uint16_t qid, const shmlink_memif_buffer_t* bufs, size_t count,
                           size_t* sent) {
  if (sent != nullptr) *sent = 0;
  if (iface == nullptr) return null_arg("shmlink_memif_tx_burst", "iface");
  if (sent == nullptr) return null_arg("shmlink_memif_tx_burst", "sent");
  if (bufs == nullptr && count != 0) return null_arg("shmlink_memif_tx_burst", "bufs");
  const Status st = iface->iface->tx_burst(qid, std::span<const memif::Buffer>(to_cpp(bufs), count), *sent);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::invalid_argument && *sent < count) {
    const shmlink_memif_buffer_t& b = bufs[*sent];
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: tx_burst on tx queue %u: buffer %zu (desc_index %u, len %" PRIu32
                ", capacity %" PRIu32 ") is not the next reserved one or its len is not 1..capacity; %zu sent",
                iface->label, static_cast<unsigned>(qid), *sent, static_cast<unsigned>(b.desc_index), b.len,
                b.capacity, *sent);
  }
  return queue_fail(st, iface, "tx_burst", true, qid);
}

int shmlink_memif_rx_burst(shmlink_memif_t* iface, uint16_t qid, shmlink_memif_buffer_t* bufs, size_t count,
                           size_t* received) {
  if (received != nullptr) *received = 0;
  if (iface == nullptr) return null_arg("shmlink_memif_rx_burst", "iface");
  if (received == nullptr) return null_arg("shmlink_memif_rx_burst", "received");
  if (bufs == nullptr && count != 0) return null_arg("shmlink_memif_rx_burst", "bufs");
  const Status st = iface->iface->rx_burst(qid, std::span<memif::Buffer>(to_cpp(bufs), count), *received);
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::would_block) return SHMLINK_E_WOULD_BLOCK;  // nothing received: not a failure
  if (st.code() == Errc::invalid_argument)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: rx_burst on rx queue %u: no buffers given (count 0)", iface->label,
                static_cast<unsigned>(qid));
  return queue_fail(st, iface, "rx_burst", false, qid);
}

int shmlink_memif_refill(shmlink_memif_t* iface, uint16_t qid, size_t count) {
  if (iface == nullptr) return null_arg("shmlink_memif_refill", "iface");
  const Status st = iface->iface->refill(qid, count);
  if (st.ok()) return SHMLINK_OK;
  return queue_fail(st, iface, "refill", false, qid);
}

int shmlink_memif_set_rx_mode(shmlink_memif_t* iface, uint16_t qid, int mode) {
  if (iface == nullptr) return null_arg("shmlink_memif_set_rx_mode", "iface");
  if (mode != SHMLINK_MEMIF_RX_INTERRUPT && mode != SHMLINK_MEMIF_RX_POLLING)
    return fail(SHMLINK_E_INVALID_ARGUMENT, "%s: set_rx_mode on rx queue %u: mode %d is not "
                "SHMLINK_MEMIF_RX_INTERRUPT (0) or SHMLINK_MEMIF_RX_POLLING (1)", iface->label,
                static_cast<unsigned>(qid), mode);
  const Status st = iface->iface->set_rx_mode(qid, static_cast<memif::RxMode>(mode));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::out_of_range)
    return fail(SHMLINK_E_OUT_OF_RANGE, "%s: set_rx_mode on rx queue %u: out of range (%u rx queue(s) configured)",
                iface->label, static_cast<unsigned>(qid), static_cast<unsigned>(rx_configured(*iface->iface)));
  return queue_fail(st, iface, "set_rx_mode", false, qid);
}

int shmlink_memif_rx_fd(const shmlink_memif_t* iface, uint16_t qid, int* fd) {
  if (fd != nullptr) *fd = -1;
  if (iface == nullptr) return null_arg("shmlink_memif_rx_fd", "iface");
  if (fd == nullptr) return null_arg("shmlink_memif_rx_fd", "fd");
  const memif::Interface& i = *iface->iface;
  // Interface::rx_fd says -1 for both "down" and "out of range"; tell them apart for the code.
  if (!i.connected()) return queue_fail(Errc::not_connected, iface, "rx_fd", false, qid);
  if (qid >= i.rx_queues()) return queue_fail(Errc::out_of_range, iface, "rx_fd", false, qid);
  *fd = i.rx_fd(qid);
  if (*fd >= 0) return SHMLINK_OK;
  return queue_fail(Errc::not_connected, iface, "rx_fd", false, qid);  // went down meanwhile
}

int shmlink_memif_wait_rx(shmlink_memif_t* iface, uint16_t qid, int64_t timeout_ns) {
  if (iface == nullptr) return null_arg("shmlink_memif_wait_rx", "iface");
  const Status st = iface->iface->wait_rx(qid, std::chrono::nanoseconds(timeout_ns < 0 ? -1 : timeout_ns));
  if (st.ok()) return SHMLINK_OK;
  if (st.code() == Errc::timeout)
    return fail(SHMLINK_E_TIMEOUT, "%s: wait_rx on rx queue %u: nothing received within %" PRId64 " ns", iface->label,
                static_cast<unsigned>(qid), timeout_ns);
  return queue_fail(st, iface, "wait_rx", false, qid);
}

// ---- control and inspection -------------------------------------------------------------------

int shmlink_memif_disconnect(shmlink_memif_t* iface, const char* reason) {
  if (iface == nullptr) return null_arg("shmlink_memif_disconnect", "iface");
  return guarded("disconnecting", iface->label, [&] {
    if (reason != nullptr) iface->iface->disconnect(reason);
    else iface->iface->disconnect();
    return SHMLINK_OK;
  });
}

int shmlink_memif_last_disconnect(const shmlink_memif_t* iface, char* buf, size_t size) {
  if (iface == nullptr) return null_arg("shmlink_memif_last_disconnect", "iface");
  if (buf == nullptr && size != 0) return null_arg("shmlink_memif_last_disconnect", "buf");
  return guarded("reading the last disconnect of", iface->label,
                 [&] { return copy_out(iface->iface->last_disconnect(), buf, size); });
}

int shmlink_memif_get_details(const shmlink_memif_t* iface, shmlink_memif_details_t* out) {
  if (iface == nullptr) return null_arg("shmlink_memif_get_details", "iface");
  if (out == nullptr) return null_arg("shmlink_memif_get_details", "out");
  return guarded("reading the details of", iface->label, [&] {
    const memif::InterfaceDetails d = iface->iface->details();
    *out = shmlink_memif_details_t{};
    out->role = static_cast<int>(d.role);
    out->id = d.id;
    out->mode = static_cast<std::uint8_t>(d.mode);
    out->connected = d.connected ? 1 : 0;
    out->connects = d.connects;
    out->tx_queues = iface->iface->tx_queues();
    out->rx_queues = iface->iface->rx_queues();
    out->tx_queues_configured = static_cast<std::uint16_t>(d.tx_queues.size());
    out->rx_queues_configured = static_cast<std::uint16_t>(d.rx_queues.size());
    out->regions = static_cast<std::uint16_t>(d.regions.size());
    copy_field(out->name, d.name);
    copy_field(out->peer_name, d.peer_name);
    copy_field(out->peer_app, d.peer_app);
    copy_field(out->socket, d.socket);
    return SHMLINK_OK;
  });
}

int shmlink_memif_get_counters(const shmlink_memif_t* iface, int tx, uint16_t qid,
                               shmlink_memif_queue_counters_t* out) {
  return queue_snapshot(iface, tx, qid, out, "shmlink_memif_get_counters");
}

int shmlink_memif_get_queue_details(const shmlink_memif_t* iface, int tx, uint16_t qid,
                                    shmlink_memif_queue_details_t* out) {
  return queue_snapshot(iface, tx, qid, out, "shmlink_memif_get_queue_details");
}

int shmlink_memif_get_region(const shmlink_memif_t* iface, uint16_t index, shmlink_memif_region_details_t* out) {
  if (iface == nullptr) return null_arg("shmlink_memif_get_region", "iface");
  if (out == nullptr) return null_arg("shmlink_memif_get_region", "out");
  return guarded("reading the regions of", iface->label, [&] {
    const memif::InterfaceDetails d = iface->iface->details();
    if (index >= d.regions.size())
      return fail(SHMLINK_E_OUT_OF_RANGE, "shmlink_memif_get_region: %s: region %u out of range (%zu mapped)",
                  iface->label, static_cast<unsigned>(index), d.regions.size());
    *out = shmlink_memif_region_details_t{};
    out->index = d.regions[index].index;
    out->size = d.regions[index].size;
    out->fd = d.regions[index].fd;
    return SHMLINK_OK;
  });
}

// ---- the older names (shmlink.h: deprecated, same meaning) -----------------------------------

void shmlink_memif_socket_args_init(shmlink_memif_socket_spec_t* spec) { shmlink_memif_socket_spec_init(spec); }

void shmlink_memif_args_init(shmlink_memif_spec_t* spec) { shmlink_memif_spec_init(spec); }

int shmlink_memif_socket_destroy(shmlink_memif_socket_t* sock) { return shmlink_memif_socket_close(sock); }

int shmlink_memif_destroy(shmlink_memif_t* iface) { return shmlink_memif_close(iface); }
