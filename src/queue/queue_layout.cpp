// SPDX-License-Identifier: MIT
// A queue's layout over a span of bytes (src/queue/queue_layout.hpp): checking a spec, laying
// a queue out, validating every header field a peer wrote against the span that holds it, and a
// queue's name -> file path (queue_path).
// The ring algorithms that run over a validated layout are in queue.cpp.
#include "queue/queue_layout.hpp"

#include <shmlink/channel.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include "os/clock.hpp"
#include "os/process.hpp"

#include <sys/stat.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <set>

namespace shmlink {

std::string queue_path(std::string_view name_or_path) {
  // The name part: the basename, without ".queue.shm"; checked by the rule every channel shares.
  std::string_view name = name_or_path.substr(name_or_path.rfind('/') + 1);
  if (name.size() > qlayout::kFileSuffix.size() && name.substr(name.size() - qlayout::kFileSuffix.size()) == qlayout::kFileSuffix)
    name.remove_suffix(qlayout::kFileSuffix.size());
  check_channel_name("queue", name, name_or_path, kMaxQueueName);
  for (std::string_view other : {std::string_view(".im.shm"), std::string_view(".memif.shm")}) {
    if (name.size() >= other.size() && name.substr(name.size() - other.size()) == other)
      throw Error(Errc::invalid_argument, "queue '" + escape_name(name_or_path) + "': a file name ending in '" +
                                              std::string(other) + "' is not a queue's");
  }
  if (name_or_path.find('/') != std::string_view::npos) return std::string(name_or_path);
  return stream_directory() + "/" + std::string(name) + std::string(qlayout::kFileSuffix);
}

std::string_view signal_type_name(SignalType t) noexcept {
  switch (t) {
    case SignalType::invalid: return "invalid";
    case SignalType::f64: return "f64";
    case SignalType::i64: return "i64";
    case SignalType::boolean: return "bool";
    case SignalType::c64: return "c64";
  }
  return "invalid";
}

std::string_view queue_kind_name(QueueKind kind) noexcept {
  switch (kind) {
    case QueueKind::spsc: return "spsc";
    case QueueKind::mpmc: return "mpmc";
  }
  return "unknown";
}

namespace qlayout {
namespace {

/// A NUL-terminated string in a fixed field, or nullopt when unterminated.
std::optional<std::string> fixed(const char* field, std::size_t size) {
  const void* nul = std::memchr(field, '\0', size);
  if (nul == nullptr) return std::nullopt;
  return std::string(field, static_cast<const char*>(nul));
}

std::string signals_text(const std::vector<Signal>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i].index) + ":" + v[i].name + "(" +
         std::string(signal_type_name(v[i].type)) + (v[i].unit.empty() ? "" : ", " + v[i].unit) + ")";
  return s + "]";
}

bool known_type(SignalType t) noexcept {
  return t == SignalType::f64 || t == SignalType::i64 || t == SignalType::boolean || t == SignalType::c64;
}

}  // namespace

void check_spec(const std::string& path, const QueueSpec& spec) {
  // An empty path: a spec checked on its own (Queue::bytes_for).
  auto bad = [&](const std::string& what) {
    throw Error(Errc::invalid_argument, (path.empty() ? "queue spec" : "creating queue " + path) + ": " + what);
  };
  if (spec.capacity < 2 || spec.capacity > kMaxQueueCapacity || !std::has_single_bit(spec.capacity))
    bad("capacity " + std::to_string(spec.capacity) + " is not a power of two in 2.." + std::to_string(kMaxQueueCapacity));
  if (spec.max_values < 1 || spec.max_values > kMaxSampleValues)
    bad("max_values " + std::to_string(spec.max_values) + " is not 1.." + std::to_string(kMaxSampleValues));
  if (spec.kind != QueueKind::spsc && spec.kind != QueueKind::mpmc) bad("unknown queue kind");
  if (spec.wait != WaitMode::polling && spec.wait != WaitMode::futex && spec.wait != WaitMode::hybrid)
    bad("unknown wait mode");
  if (spec.signals.size() > spec.max_values)
    bad(std::to_string(spec.signals.size()) + " signals but only " + std::to_string(spec.max_values) + " values per sample");
  std::set<std::uint32_t> seen;
  for (const Signal& s : spec.signals) {
    if (s.index >= spec.max_values)
      bad("signal '" + s.name + "' has index " + std::to_string(s.index) + ", not below max_values " +
          std::to_string(spec.max_values));
    if (!seen.insert(s.index).second) bad("two signals have index " + std::to_string(s.index));
    if (s.name.size() > kMaxSignalName) bad("signal name '" + s.name + "' exceeds 39 bytes");
    if (s.unit.size() > kMaxSignalUnit) bad("unit '" + s.unit + "' of signal '" + s.name + "' exceeds 15 bytes");
    if (!known_type(s.type)) bad("signal '" + s.name + "' has type " + std::to_string(static_cast<int>(s.type)));
  }
  check_channel_permissions(spec.permissions, path.empty() ? "a queue spec" : path);
}

std::uint64_t bytes_for(const QueueSpec& spec) noexcept {
  return file_bytes(static_cast<std::uint32_t>(spec.signals.size()), spec.max_values, spec.capacity);
}

void init(std::span<std::byte> bytes, const QueueSpec& spec) noexcept {
  auto* h = reinterpret_cast<QueueHeader*>(bytes.data());
  const auto nsig = static_cast<std::uint32_t>(spec.signals.size());
  std::memcpy(h->magic, kMagic, sizeof h->magic);
  h->header_bytes = static_cast<std::uint32_t>(header_bytes(nsig));
  h->cell_bytes = static_cast<std::uint32_t>(cell_bytes(spec.max_values));
  h->capacity = spec.capacity;
  h->max_values = spec.max_values;
  h->kind = static_cast<std::uint8_t>(spec.kind);
  h->wait = static_cast<std::uint8_t>(spec.wait);
  h->signal_count = static_cast<std::uint16_t>(nsig);
  h->creator_pid = os::current_pid();
  h->creation_time_ns = os::realtime_ns();
  h->state = kStateOpen;
  auto* table = reinterpret_cast<SignalEntry*>(bytes.data() + sizeof(QueueHeader));
  for (std::uint32_t i = 0; i < nsig; ++i) {
    const Signal& s = spec.signals[i];
    table[i].index = s.index;
    table[i].type = static_cast<std::uint8_t>(s.type);
    std::memcpy(table[i].name, s.name.data(), s.name.size());
    std::memcpy(table[i].unit, s.unit.data(), s.unit.size());
  }
  std::byte* cells = bytes.data() + h->header_bytes;
  for (std::uint32_t i = 0; i < spec.capacity; ++i)  // Vyukov: cell i starts at turn i
    reinterpret_cast<CellHeader*>(cells + std::uint64_t{i} * h->cell_bytes)->turn = i;
  // SYNC POINT R (release): the readiness marker, last; pairs with validate()'s acquire load of
  // version, so an opener that sees kVersion sees every field written above.
  std::atomic_ref<std::uint32_t>(h->version).store(kVersion, std::memory_order_release);
}

// Every size validate() computes from checked header fields (capacity <= kMaxQueueCapacity,
// max_values <= kMaxSampleValues, signal_count <= max_values) fits 64 bits with room to spare, so
// no header can wrap the expected size.
static_assert(file_bytes(kMaxSampleValues, kMaxSampleValues, kMaxQueueCapacity) < (std::uint64_t{1} << 40));

Checked validate(std::span<const std::byte> bytes, const std::string& path, bool exact_size, const QueueExpect& expect) {
  auto fail = [&](const std::string& what) { throw Error(Errc::layout, "opening queue " + path + ": " + what); };
  // A file's size must be the layout's exactly; a placement (a region entry, a caller's span)
  // may hold more than the layout uses.
  const char* holder = exact_size ? "file is " : "placement holds ";
  const std::size_t size = bytes.size();
  if (size < kCacheLine)
    fail(holder + std::to_string(size) + " bytes, smaller than a queue header's first 64 bytes");
  const auto* h = reinterpret_cast<const QueueHeader*>(bytes.data());
  if (std::memcmp(h->magic, kMagic, sizeof h->magic) != 0) fail("no SHMLINKQ magic (not a shmlink queue)");
  // SYNC POINT R (acquire): pairs with init()'s release store of version: the fields below
  // were written before it.
  const std::uint32_t version =
      std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(h->version)).load(std::memory_order_acquire);
  if (version == 0) fail("version is 0 (queue not ready)");
  if (version != kVersion)
    fail("layout version " + std::to_string(version) + ", this shmlink reads version " + std::to_string(kVersion));
  if (size < sizeof(QueueHeader))
    fail(holder + std::to_string(size) + " bytes, smaller than the " + std::to_string(sizeof(QueueHeader)) +
         "-byte header");
  // One read of each geometry field, checked, then used: the limits below bound every size
  // computed from them (see the static_assert above: no product can wrap).
  Checked c;
  c.capacity = h->capacity;
  c.max_values = h->max_values;
  c.signal_count = h->signal_count;
  const std::uint8_t kind_code = h->kind, wait_code = h->wait;
  const std::uint32_t cap = c.capacity, maxv = c.max_values, nsig = c.signal_count;
  if (cap < 2 || cap > kMaxQueueCapacity || !std::has_single_bit(cap))
    fail("capacity " + std::to_string(cap) + " is not a power of two in 2.." + std::to_string(kMaxQueueCapacity));
  if (maxv < 1 || maxv > kMaxSampleValues) fail("max_values " + std::to_string(maxv) + " is out of range");
  if (nsig > maxv) fail(std::to_string(nsig) + " signals exceed max_values " + std::to_string(maxv));
  if (kind_code != static_cast<std::uint8_t>(QueueKind::spsc) && kind_code != static_cast<std::uint8_t>(QueueKind::mpmc))
    fail("kind " + std::to_string(kind_code) + " is not spsc (1) or mpmc (2)");
  if (wait_code < 1 || wait_code > 3) fail("wait mode " + std::to_string(wait_code) + " is not 1..3");
  if (h->header_bytes != header_bytes(nsig))
    fail("header_bytes is " + std::to_string(h->header_bytes) + ", expected " + std::to_string(header_bytes(nsig)));
  if (h->cell_bytes != cell_bytes(maxv))
    fail("cell_bytes is " + std::to_string(h->cell_bytes) + ", expected " + std::to_string(cell_bytes(maxv)));
  c.bytes = file_bytes(nsig, maxv, cap);
  if (exact_size ? c.bytes != size : c.bytes > size)
    fail(holder + std::to_string(size) + " bytes but its header describes " + std::to_string(c.bytes));
  const auto* table = reinterpret_cast<const SignalEntry*>(bytes.data() + sizeof(QueueHeader));
  for (std::uint32_t i = 0; i < nsig; ++i) {
    Signal s;
    s.index = table[i].index;
    s.type = static_cast<SignalType>(table[i].type);
    auto name = fixed(table[i].name, sizeof table[i].name);
    auto unit = fixed(table[i].unit, sizeof table[i].unit);
    if (!name || !unit) fail("signal " + std::to_string(i) + ": name or unit is not NUL-terminated");
    s.name = *name;
    s.unit = *unit;
    if (s.index >= maxv) fail("signal '" + s.name + "' index " + std::to_string(s.index) + " is not below max_values");
    if (!known_type(s.type)) fail("signal '" + s.name + "' has type " + std::to_string(table[i].type) + ", not 1..4");
    for (const Signal& prev : c.signals)
      if (prev.index == s.index)
        fail("signals '" + prev.name + "' and '" + s.name + "' both have index " + std::to_string(s.index));
    c.signals.push_back(std::move(s));
  }
  c.kind = static_cast<QueueKind>(kind_code);
  c.wait = static_cast<WaitMode>(wait_code);
  if (expect.max_values && *expect.max_values != maxv)
    fail("it has " + std::to_string(maxv) + " values per sample, expected " + std::to_string(*expect.max_values));
  if (expect.kind && *expect.kind != c.kind)
    fail("it is " + std::string(queue_kind_name(c.kind)) + ", expected " + std::string(queue_kind_name(*expect.kind)));
  if (expect.signals && *expect.signals != c.signals)
    fail("signal table " + signals_text(c.signals) + " differs from the expected " + signals_text(*expect.signals));
  return c;
}

std::string file_name(const std::string& path) {
  const std::string base = path.substr(path.rfind('/') + 1);
  return base.size() > kFileSuffix.size() && base.ends_with(kFileSuffix) ? base.substr(0, base.size() - kFileSuffix.size())
                                                                       : base;
}

Placement file_placement(Segment seg, const std::string& path, bool writable) {
  Placement where;
  struct stat st {};
  if (::fstat(seg.fd(), &st) == 0) where.dev = static_cast<std::uint64_t>(st.st_dev);
  where.ino = seg.inode();
  auto owner = std::make_shared<Segment>(std::move(seg));
  where.bytes = {owner->data(), owner->size()};
  where.fd = owner->fd();
  where.owner = std::move(owner);
  where.name = file_name(path);
  where.path = path;
  where.writable = writable;
  // Re-created (a new inode) or removed: the handle keeps its own file; replaced() says so.
  where.still_current = [path, ino = where.ino]() noexcept {
    struct stat now {};
    return ::stat(path.c_str(), &now) == 0 && static_cast<std::uint64_t>(now.st_ino) == ino;
  };
  return where;
}

}  // namespace qlayout
}  // namespace shmlink
