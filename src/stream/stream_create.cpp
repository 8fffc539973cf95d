// SPDX-License-Identifier: MIT
// Streams: construction (create, create_in, open, open_in), validation, removal, geometry and info
// (include/shmlink/stream.hpp; internals in stream_impl.hpp).
#include "stream/stream_impl.hpp"

#include "remote/remote_open.hpp"

namespace shmlink {

// ---- construction -----------------------------------------------------------------------

Stream::Stream() noexcept = default;
Stream::Stream(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;
void Stream::close() noexcept { impl_.reset(); }

namespace {

/// The spec as laid out in the file: a rolling-buffer depth N >= 2 appends an axis of N slices
/// (after a 1 for a 1-axis frame) and sets imagetype's low nibble and z-axis bits to
/// CIRCULAR_BUFFER | ZAXIS_TEMPORAL (reference 17.8).
StreamSpec effective_spec(const std::string& path, const StreamSpec& spec) {
  if (spec.depth < 2) return spec;
  if (spec.shape.empty() || spec.shape.size() > 2)
    throw Error(Errc::invalid_argument, "creating " + path + ": a rolling buffer (depth " + std::to_string(spec.depth) +
                                            ") needs a frame shape of 1 or 2 axes, got " +
                                            std::to_string(spec.shape.size()));
  StreamSpec e = spec;
  if (e.shape.size() == 1) e.shape.push_back(1);
  e.shape.push_back(spec.depth);
  e.imagetype = (spec.imagetype & ~std::uint64_t{0xF000F}) | kImagetypeCircularBuffer | kImagetypeZaxisTemporal;
  e.depth = 0;
  return e;
}

/// Checks a spec and returns its sizing inputs; throws invalid_argument naming the path.
isio::Geometry check_spec(const std::string& path, const StreamSpec& spec) {
  auto bad = [&](const std::string& what) { throw Error(Errc::invalid_argument, "creating " + path + ": " + what); };
  if (spec.shape.empty() || spec.shape.size() > 3)
    bad("shape has " + std::to_string(spec.shape.size()) + " axes, 1 to 3 allowed");
  std::uint64_t n = 1;
  for (std::size_t i = 0; i < spec.shape.size(); ++i) {
    if (spec.shape[i] == 0) bad("axis " + std::to_string(i) + " has length 0");
    n *= spec.shape[i];
  }
  if (n > isio::kMaxElements) bad(std::to_string(n) + " elements exceed ImageStreamIO's limit of 1e10");
  if (!dtype_valid(static_cast<std::uint8_t>(spec.dtype)))
    bad("datatype code " + std::to_string(static_cast<int>(spec.dtype)) + " is not 1..13");
  // Semaphores: any count ISIO's uint16 `sem` holds (0..kMaxSemaphores), as ImageStreamIO and
  // milk's tools create them; the layout below sizes their chunks.
  static_assert(kMaxSemaphores == std::numeric_limits<decltype(spec.semaphores)>::max());
  if ((spec.imagetype & 0xF000F) == kImagetypeCircularBuffer && spec.shape.size() != 3)
    bad("a circular-buffer imagetype needs 3 axes");
  if (isio::has_temporal_arrays(spec.imagetype) && spec.shape.size() != 3)
    bad("a temporal (CIRCULAR_BUFFER|ZAXIS_TEMPORAL) stream needs 3 axes");
  if (spec.version.empty() || spec.version.size() > 31)
    bad("version string '" + spec.version + "' must be 1 to 31 bytes");
  check_channel_permissions(spec.permissions, path);
  isio::Geometry g;
  g.imdatamemsize = n * dtype_size(spec.dtype);
  g.nbkw = spec.keywords;
  g.nbsem = spec.semaphores;
  g.size2 = spec.shape.size() == 3 ? spec.shape[2] : 0;
  g.imagetype = spec.imagetype;
  g.cbsize = spec.circular_buffer;
  if (spec.circular_buffer > 0 && g.imdatamemsize > (std::uint64_t{1} << 40) / spec.circular_buffer)
    bad("circular buffer of " + std::to_string(spec.circular_buffer) + " frames is too large");
  return g;
}

/// Fills fresh, zeroed bytes as ImageStreamIO_createIm_gpu fills a new file (reference section
/// 9), with the version written last (release) and semlog initialised process-shared.
/// @param base the stream's first byte (at least l.file_size zero bytes); @param inode stored in
/// md->inode; @param what names the stream in errors.
void lay_out(std::byte* base, std::uint64_t inode, const std::string& name, const StreamSpec& spec,
             const isio::Geometry& g, const isio::Layout& l, const std::string& what) {
  auto* md = reinterpret_cast<Metadata*>(base);
  std::memcpy(md->name, name.data(), name.size());
  md->naxis = static_cast<std::uint8_t>(spec.shape.size());
  std::uint64_t n = 1;
  for (std::size_t i = 0; i < spec.shape.size(); ++i) {
    md->size[i] = spec.shape[i];
    n *= spec.shape[i];
  }
  md->nelement = n;
  md->datatype = static_cast<std::uint8_t>(spec.dtype);
  md->imagetype = spec.imagetype;
  const timespec now = os::to_timespec(os::realtime_ns());
  md->creationtime = now;
  md->lastaccesstime = now;
  md->creatorPID = os::current_pid();
  md->ownerPID = 0;
  md->shared = 1;
  md->inode = inode;
  md->location = -1;
  md->sem = g.nbsem;
  md->NBproctrace = isio::kProcTraceEntries;
  md->NBkw = g.nbkw;
  md->CBsize = g.cbsize;
  md->imdatamemsize = g.imdatamemsize;

  auto* kw = reinterpret_cast<isio::Keyword*>(base + l.keywords);
  for (int i = 0; i < g.nbkw; ++i) kw[i].type = 'N';
  auto* sems = reinterpret_cast<sem_t*>(base + l.semaphores);
  auto* read_pid = reinterpret_cast<std::int32_t*>(base + l.sem_read_pid);
  auto* write_pid = reinterpret_cast<std::int32_t*>(base + l.sem_write_pid);
  for (int i = 0; i < g.nbsem; ++i) {
    if (::sem_init(&sems[i], 1, 0) != 0) os::throw_errno(errno, "initialising semaphores of", what);
    read_pid[i] = -1;
    write_pid[i] = -1;
  }
  if (::sem_init(reinterpret_cast<sem_t*>(base + l.semlog), 1, 0) != 0)
    os::throw_errno(errno, "initialising semlog of", what);
  auto* pt = reinterpret_cast<isio::ProcTrace*>(base + l.proctrace);
  for (int i = 0; i < isio::kProcTraceEntries; ++i) pt[i].trigsemindex = -1;

  // SYNC POINT V: the version is the readiness marker. Every byte but the first, then the first
  // with release ordering; open_in loads it with acquire.
  std::memcpy(md->version + 1, spec.version.data() + 1, spec.version.size() - 1);
  aref(md->version[0]).store(spec.version[0], std::memory_order_release);
}

/// The placement of a stream file: its whole mapping, kept alive by the handle. replaced() is
/// true once the path names another inode or nothing (re-created or removed), as before
/// placements existed.
Placement file_placement(Segment seg, const std::string& name, bool writable) {
  auto owner = std::make_shared<Segment>(std::move(seg));
  Placement p;
  p.bytes = std::span<std::byte>(owner->data(), owner->size());
  p.name = name;
  p.path = owner->path();
  struct stat st {};
  if (::fstat(owner->fd(), &st) == 0) p.dev = static_cast<std::uint64_t>(st.st_dev);
  p.ino = owner->inode();
  p.fd = owner->fd();
  p.writable = writable;
  p.still_current = [path = p.path, ino = p.ino]() noexcept {
    struct stat now {};
    return ::stat(path.c_str(), &now) == 0 && static_cast<std::uint64_t>(now.st_ino) == ino;
  };
  p.owner = std::move(owner);
  return p;
}

/// Stream bytes must start on a cache line: the atomics, futex words and sem_t inside the layout
/// are aligned relative to the stream's first byte.
void check_alignment(const Placement& where, const char* verb) {
  if (reinterpret_cast<std::uintptr_t>(where.bytes.data()) % 64 != 0)
    throw Error(Errc::invalid_argument, std::string(verb) + " " + where.path +
                                            ": the placed bytes do not start on a 64-byte boundary");
}

}  // namespace

Stream Stream::Impl::bind_placed(const Placement& where, const isio::Layout& l, const Metadata& checked, bool writable,
                                  bool file) {
  auto impl = std::make_unique<Impl>();
  impl->where = where;
  impl->layout = l;
  impl->writable = writable;
  impl->file = file;
  // Bound from the copy open_placed() validated, never from a second read of the live bytes:
  // a peer rewriting the metadata after the checks costs frames, never memory safety.
  impl->bind(checked);
  return Stream(std::move(impl));
}

std::size_t Stream::bytes_for(const StreamSpec& requested) {
  const std::string what = "a stream";
  const StreamSpec spec = effective_spec(what, requested);
  return static_cast<std::size_t>(isio::compute_layout(check_spec(what, spec)).file_size);
}

Stream Stream::create_in(const Placement& where, const StreamSpec& requested) {
  check_channel_name("stream", where.name, where.name, kMaxStreamName);
  const StreamSpec spec = effective_spec(where.path, requested);
  const isio::Geometry g = check_spec(where.path, spec);
  const isio::Layout l = isio::compute_layout(g);
  if (!where.writable) throw Error(Errc::permission, "creating " + where.path + ": its memory is mapped read-only");
  check_alignment(where, "creating");
  if (where.bytes.size() < l.file_size)
    throw Error(Errc::invalid_argument, "creating " + where.path + ": the stream needs " +
                                            std::to_string(l.file_size) + " bytes, its placement holds " +
                                            std::to_string(where.bytes.size()));
  lay_out(where.bytes.data(), where.ino, where.name, spec, g, l, where.path);
  // Bound through the same validation as an open: the bytes may be writable by a peer already.
  return Impl::open_placed(where, OpenOptions{{spec.version}, true}, false);
}

Stream Stream::create(std::string_view name_or_path, const StreamSpec& requested, OpenMode mode) {
  const std::string path = stream_path(name_or_path);
  const std::string name = stream_name(name_or_path);
  if (mode == OpenMode::OpenExisting) return open(name_or_path);
  const StreamSpec spec = effective_spec(path, requested);
  const isio::Geometry g = check_spec(path, spec);
  const isio::Layout l = isio::compute_layout(g);

  if (mode == OpenMode::OpenOrCreate) {
    try {
      Stream s = open(path, OpenOptions{{spec.version}});  // by path: creating never asks the bridge
      auto shape = s.shape();
      if (!std::equal(shape.begin(), shape.end(), spec.shape.begin(), spec.shape.end()) || s.dtype() != spec.dtype)
        throw Error(Errc::layout, "opening " + path + ": exists as " + shape_text(shape) + " " +
                                      std::string(dtype_name(s.dtype())) + ", asked for " +
                                      shape_text(spec.shape) + " " + std::string(dtype_name(spec.dtype)));
      return s;
    } catch (const Error& e) {
      if (e.errc() != Errc::not_found) throw;
    }
    try {
      return create(name_or_path, requested, OpenMode::ExclusiveCreate);
    } catch (const Error& e) {
      if (e.errc() != Errc::exists) throw;
      return create(name_or_path, requested, OpenMode::OpenOrCreate);  // lost a creation race: open theirs
    }
  }

  // The file being replaced (if any, and if it is a valid stream): its waiters are told below.
  Stream old;
  if (mode == OpenMode::PurgeAndCreate) {
    try {
      old = open(path, OpenOptions{{spec.version}});
    } catch (const Error&) {
      // absent, foreign or broken: nobody of ours to wake
    }
  }
  // The fresh file is laid out as create_in() lays out any placement, before it gets its name.
  Segment seg = Segment::create_file(path, static_cast<std::size_t>(l.file_size), mode, spec.permissions,
                                     [&](Segment& fresh) { lay_out(fresh.data(), fresh.inode(), name, spec, g, l, fresh.path()); });
  // The partial-write companion of the replaced file describes frames of another file.
  if (old.valid() && is_companion(companion_path(path), old.inode())) ::unlink(companion_path(path).c_str());
  if (old.valid()) {
    // Courtesy to readers of the old file: futex waiters wake, see cnt0 unchanged and the path
    // pointing elsewhere, and return Errc::replaced; semaphore readers get one post.
    os::futex_wake(cnt0_futex_word(old.impl_->md));
    (void)old.sem_post(-1);
  }
  // The file is visible under its name now: bound through the same validation as an open.
  return Impl::open_placed(file_placement(std::move(seg), name, true), OpenOptions{{spec.version}, true}, true);
}

Stream Stream::open_in(const Placement& where, const OpenOptions& options) {
  return Impl::open_placed(where, options, false);
}

Stream Stream::open(std::string_view name_or_path, const OpenOptions& options) {
  std::string path = stream_path(name_or_path);
  // A missing file of a remote name opens the replica the bridge service makes (remote.hpp).
  Segment seg = remote::open_file_or_replica("stream", name_or_path, path, options.writable);
  return Impl::open_placed(file_placement(std::move(seg), stream_name(path), options.writable), options, true);
}

Stream Stream::Impl::open_placed(const Placement& where, const OpenOptions& options, bool file) {
  const std::string& path = where.path;
  const std::size_t size = where.bytes.size();
  auto fail = [&](const std::string& what) -> void { throw Error(Errc::layout, "opening " + path + ": " + what); };
  if (options.writable && !where.writable)
    throw Error(Errc::permission, "opening " + path + " read-write: its memory is mapped read-only");
  check_alignment(where, "opening");
  if (size < sizeof(Metadata))
    fail((file ? "file is " : "its placement holds ") + std::to_string(size) +
         " bytes, smaller than the 384-byte metadata");
  // SYNC POINT V (acquire): pairs with the creator's release store of version[0].
  if (aref(reinterpret_cast<const Metadata*>(where.bytes.data())->version[0]).load(std::memory_order_acquire) == '\0')
    fail("version is empty (stream not ready)");
  // Validate a private copy and bind from it: a peer changing the fields after this check can
  // cost frames, never make us size a pointer from a value we did not check.
  Metadata snap;
  std::memcpy(&snap, where.bytes.data(), sizeof snap);
  const Metadata* md = &snap;
  const auto version = fixed_string(md->version, sizeof(md->version));
  if (!version) fail("version field is not NUL-terminated");
  if (std::find(options.accepted_versions.begin(), options.accepted_versions.end(), *version) ==
      options.accepted_versions.end()) {
    std::string want;
    for (const auto& v : options.accepted_versions) want += (want.empty() ? "'" : " or '") + v + "'";
    fail("version '" + *version + "' is not " + want);
  }
  if (!fixed_string(md->name, sizeof(md->name))) fail("name field is not NUL-terminated");
  if (md->naxis < 1 || md->naxis > 3) fail("naxis is " + std::to_string(md->naxis) + ", not 1..3");
  std::uint64_t n = 1;
  for (int i = 0; i < md->naxis; ++i) {
    if (md->size[i] == 0) fail("size[" + std::to_string(i) + "] is 0");
    const auto p = os::checked_mul(n, md->size[i]);
    if (!p || *p > isio::kMaxElements)
      fail("sizes " + shape_text(std::span<const std::uint32_t>(md->size, md->naxis)) + " give more than 1e10 elements");
    n = *p;
  }
  for (int i = md->naxis; i < 3; ++i)
    if (md->size[i] != 0 && detail::log_enabled(LogLevel::warn))
      detail::log(LogLevel::warn, "opening " + path + ": size[" + std::to_string(i) + "] is " +
                                      std::to_string(md->size[i]) + " beyond naxis " + std::to_string(md->naxis) +
                                      " (ignored)");
  if (!dtype_valid(md->datatype)) fail("datatype is " + std::to_string(md->datatype) + ", not 1..13");
  if (md->nelement != n)
    fail("nelement is " + std::to_string(md->nelement) + " but the sizes give " + std::to_string(n));
  if (n > isio::kMaxElements) fail("nelement " + std::to_string(n) + " exceeds 1e10");
  if (md->imdatamemsize != n * isio::type_size(md->datatype))
    fail("imdatamemsize is " + std::to_string(md->imdatamemsize) + ", expected " +
         std::to_string(n * isio::type_size(md->datatype)));
  if (md->location != -1)
    fail("location is " + std::to_string(md->location) + " (GPU streams are not supported)");
  // sem: every value of the uint16 field is accepted (0..kMaxSemaphores, what ISIO accepts); the
  // file size check below proves the file holds that many slots and PID entries.
  static_assert(kMaxSemaphores == std::numeric_limits<decltype(md->sem)>::max());
  if (md->NBproctrace > 1024) fail("NBproctrace is " + std::to_string(md->NBproctrace));
  if (md->CBsize > 0 && md->imdatamemsize > (std::uint64_t{1} << 40) / md->CBsize)
    fail("CBsize " + std::to_string(md->CBsize) + " is implausible");
  if (md->CBsize > 0 && md->CBindex >= md->CBsize)
    fail("CBindex " + std::to_string(md->CBindex) + " is not below CBsize " + std::to_string(md->CBsize));
  if (isio::has_temporal_arrays(md->imagetype) && md->naxis != 3 && detail::log_enabled(LogLevel::warn))
    detail::log(LogLevel::warn, "opening " + path + ": temporal imagetype on a " + std::to_string(md->naxis) +
                                    "-axis stream");
  isio::Geometry g;
  g.imdatamemsize = md->imdatamemsize;
  g.nbkw = md->NBkw;
  g.nbsem = md->sem;
  g.nbproctrace = md->NBproctrace;
  g.size2 = md->size[2];
  g.imagetype = md->imagetype;
  g.cbsize = md->CBsize;
  g.location = md->location;
  const isio::Layout l = isio::compute_layout(g);
  if (!l.valid) fail("its metadata describes a file larger than 2^64 bytes");
  if (file && l.file_size != size)
    fail("file is " + std::to_string(size) + " bytes but its metadata describes " + std::to_string(l.file_size) +
         " bytes");
  if (l.file_size > size)
    fail("its metadata describes " + std::to_string(l.file_size) + " bytes, more than the " + std::to_string(size) +
         " bytes of its placement");
  return bind_placed(where, l, snap, options.writable, file);
}

/// True when `cpath` is a partial-write companion (u64, 516 x depth), and, when `owner_inode`
/// is given, the companion of the stream file with that inode (its cnt2).
bool is_companion(const std::string& cpath, std::optional<std::uint64_t> owner_inode) noexcept {
  try {
    const Stream c = Stream::open(cpath, OpenOptions{.writable = false});
    if (c.dtype() != Dtype::u64 || c.shape().size() != 2 || c.shape()[0] != kPktRecord) return false;
    return !owner_inode || c.cnt2() == *owner_inode;
  } catch (...) {
    return false;
  }
}

void Stream::remove(std::string_view name_or_path) {
  const std::string path = stream_path(name_or_path);
  struct stat st {};
  const bool known = ::stat(path.c_str(), &st) == 0;
  if (::unlink(path.c_str()) != 0) os::throw_errno(errno, "removing", path);
  const std::string pkt = companion_path(path);
  if (known && is_companion(pkt, static_cast<std::uint64_t>(st.st_ino)) && ::unlink(pkt.c_str()) != 0 && errno != ENOENT)
    os::throw_errno(errno, "removing", pkt);
}

// ---- geometry -----------------------------------------------------------------------------

namespace {
const std::string kEmpty;
}

const std::string& Stream::name() const noexcept { return impl_ ? impl_->name : kEmpty; }
const std::string& Stream::path() const noexcept { return impl_ ? impl_->path : kEmpty; }
std::span<const std::uint32_t> Stream::shape() const noexcept {
  return impl_ ? std::span<const std::uint32_t>(impl_->shape) : std::span<const std::uint32_t>();
}
Dtype Stream::dtype() const noexcept { return impl_ ? impl_->dtype : Dtype::f32; }
std::uint64_t Stream::nelement() const noexcept { return impl_ ? impl_->nelement : 0; }
std::size_t Stream::frame_bytes() const noexcept { return impl_ ? impl_->frame_bytes : 0; }
std::uint64_t Stream::frame_elements() const noexcept { return impl_ ? impl_->frame_elements : 0; }
std::size_t Stream::data_bytes() const noexcept { return impl_ ? impl_->data_bytes : 0; }
std::uint32_t Stream::depth() const noexcept { return impl_ ? impl_->depth : 1; }
bool Stream::rolling() const noexcept { return impl_ && impl_->rolling; }
std::span<const std::uint32_t> Stream::frame_shape() const noexcept {
  return impl_ ? std::span<const std::uint32_t>(impl_->frame_shape) : std::span<const std::uint32_t>();
}
int Stream::semaphore_count() const noexcept { return impl_ ? impl_->nsem : 0; }
int Stream::keyword_slots() const noexcept { return impl_ ? impl_->nkw : 0; }
std::uint64_t Stream::inode() const noexcept { return impl_ ? impl_->md->inode : 0; }
bool Stream::file_intact() const noexcept { return impl_ && impl_->intact(); }

bool Stream::replaced() const noexcept {
  // A file: its path names another inode or nothing (still_current of file_placement());
  // a region entry: removed or reused since it was opened.
  return impl_ && impl_->where.still_current && !impl_->where.still_current();
}

std::span<const std::byte> Stream::file_bytes() const noexcept {
  return impl_ ? std::span<const std::byte>(impl_->base, impl_->layout.file_size) : std::span<const std::byte>();
}

StreamInfo Stream::info() const {
  if (!impl_) throw Error(Errc::closed, "stream handle is closed");
  const Impl& m = *impl_;
  const Metadata* md = m.md;
  StreamInfo s;
  s.name = m.name;
  s.path = m.path;
  s.version = fixed_string(md->version, sizeof(md->version)).value_or("");
  s.shape = m.shape;
  s.dtype = m.dtype;
  s.nelement = m.nelement;
  s.frame_bytes = m.frame_bytes;
  s.data_bytes = m.data_bytes;
  s.depth = m.depth;
  s.rolling = m.rolling;
  s.file_bytes = m.layout.file_size;
  s.imagetype = md->imagetype;
  s.semaphores = md->sem;
  s.keyword_slots = md->NBkw;
  s.circular_buffer = md->CBsize;
  s.creator_pid = md->creatorPID;
  s.owner_pid = md->ownerPID;
  s.inode = md->inode;
  s.write_flag = write_flag();
  s.frame = frame_info();
  s.creation_time_ns = load_timespec(md->creationtime);
  s.last_access_time_ns = load_timespec(md->lastaccesstime);
  for (int i = 0; i < m.nsem; ++i) {
    s.sem_read_pids.push_back(aref(m.read_pid[i]).load(std::memory_order_relaxed));
    s.sem_write_pids.push_back(aref(m.write_pid[i]).load(std::memory_order_relaxed));
    s.sem_values.push_back(sem_value(i));
  }
  return s;
}

}  // namespace shmlink
