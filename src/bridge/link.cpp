// SPDX-License-Identifier: MIT
// libzmq owners, wire-format messages and the stream watcher (see link.hpp).
#include "bridge/link.hpp"

#include <shmlink/bridge.hpp>

#include <zmq.h>

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shmlink::bridge::detail {

namespace {

[[noreturn]] void fail(std::string_view what) {
  throw Error(Errc::system, std::string(what) + ": " + ::zmq_strerror(::zmq_errno()));
}

}  // namespace

std::uint64_t realtime_ns() noexcept {
  struct timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U + static_cast<std::uint64_t>(ts.tv_nsec);
}

Context::Context() : ctx_(::zmq_ctx_new()) {
  if (ctx_ == nullptr) fail("creating a ZeroMQ context");
}

Context::~Context() {
  if (ctx_ != nullptr) ::zmq_ctx_term(ctx_);
}

Socket::Socket(void* context, int type, std::string_view what) : s_(::zmq_socket(context, type)) {
  if (s_ == nullptr) fail(std::string("creating the ZeroMQ socket of ") + std::string(what));
  const int zero = 0;
  ::zmq_setsockopt(s_, ZMQ_LINGER, &zero, sizeof zero);
}

Socket::Socket(void* adopted) noexcept : s_(adopted) {
  const int zero = 0;
  if (s_ != nullptr) ::zmq_setsockopt(s_, ZMQ_LINGER, &zero, sizeof zero);
}

Socket::~Socket() {
  if (s_ != nullptr) ::zmq_close(s_);
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    if (s_ != nullptr) ::zmq_close(s_);
    s_ = o.s_;
    o.s_ = nullptr;
  }
  return *this;
}

void Socket::set(int option, int value) {
  if (::zmq_setsockopt(s_, option, &value, sizeof value) != 0) fail("setting ZeroMQ socket option " + std::to_string(option));
}

void Socket::limit_message_size(std::uint64_t most) {
  const auto limit = static_cast<std::int64_t>(std::max(most, wire::kMinPartLimit));
  if (::zmq_setsockopt(s_, ZMQ_MAXMSGSIZE, &limit, sizeof limit) != 0) fail("setting ZMQ_MAXMSGSIZE");
}

void Socket::attach(const std::string& endpoint, bool connect) {
  const int rc = connect ? ::zmq_connect(s_, endpoint.c_str()) : ::zmq_bind(s_, endpoint.c_str());
  if (rc != 0) fail(std::string(connect ? "connecting to " : "binding ") + endpoint);
}

std::string Socket::last_endpoint() const {
  char buf[256] = {};
  std::size_t len = sizeof buf;
  if (::zmq_getsockopt(s_, ZMQ_LAST_ENDPOINT, buf, &len) != 0) return {};
  return std::string(buf, ::strnlen(buf, sizeof buf));
}

// ---- received parts ------------------------------------------------------------------------

static_assert(sizeof(zmq_msg_t) == sizeof(Part) && alignof(zmq_msg_t) <= alignof(Part),
              "Part holds a zmq_msg_t in place");

namespace {
zmq_msg_t* as_msg(void* p) noexcept { return static_cast<zmq_msg_t*>(p); }
}  // namespace

Part::Part() noexcept { ::zmq_msg_init(as_msg(&msg_)); }
Part::~Part() { ::zmq_msg_close(as_msg(&msg_)); }
Part::Part(Part&& o) noexcept {
  ::zmq_msg_init(as_msg(&msg_));
  ::zmq_msg_move(as_msg(&msg_), as_msg(&o.msg_));  // o is left an empty message
}
Part& Part::operator=(Part&& o) noexcept {
  if (this != &o) ::zmq_msg_move(as_msg(&msg_), as_msg(&o.msg_));  // closes ours first
  return *this;
}
const std::byte* Part::data() const noexcept { return static_cast<const std::byte*>(::zmq_msg_data(as_msg(&msg_))); }
std::size_t Part::size() const noexcept { return ::zmq_msg_size(as_msg(&msg_)); }

bool recv_parts(void* socket, Parts& out, std::string* user_id) {
  out.parts.clear();
  if (user_id != nullptr) user_id->clear();
  out.parts.reserve(4);
  for (;;) {
    Part part;
    if (::zmq_msg_recv(as_msg(part.msg()), socket, out.parts.empty() ? ZMQ_DONTWAIT : 0) < 0)
      return false;  // nothing waiting (EAGAIN) or the socket is closing: parts are atomic
    if (out.parts.empty()) out.peer_address.clear();
    if (out.peer_address.empty()) {  // a ROUTER's identity part carries no metadata: the next ones do
      const char* address = ::zmq_msg_gets(as_msg(part.msg()), "Peer-Address");
      if (address != nullptr) out.peer_address = address;
    }
    if (user_id != nullptr && user_id->empty()) {
      const char* u = ::zmq_msg_gets(as_msg(part.msg()), "User-Id");  // NULL when the connection has none
      if (u != nullptr) *user_id = u;
    }
    const bool more = ::zmq_msg_more(as_msg(part.msg())) != 0;
    out.parts.push_back(std::move(part));
    if (!more) return true;
    if (out.parts.size() > 8) {  // no message of ours has more parts: drain and refuse
      for (bool again = true; again;) {
        Part rest;
        again = ::zmq_msg_recv(as_msg(rest.msg()), socket, 0) >= 0 && ::zmq_msg_more(as_msg(rest.msg())) != 0;
      }
      out.parts.clear();
      return true;
    }
  }
}

namespace {

/// Sends [identity, topic, header] with ZMQ_SNDMORE (the header's payload_bytes = `payload`).
bool send_head(void* socket, std::span<const std::byte> identity, std::string_view topic, wire::Header& h,
               std::size_t payload) {
  h.payload_bytes = payload;
  h.send_time_ns = realtime_ns();
  const auto header = wire::encode(h);
  const int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
  // A multipart message is queued whole or not at all once its first part is accepted.
  if (!identity.empty() && ::zmq_send(socket, identity.data(), identity.size(), more) < 0) return false;
  if (::zmq_send(socket, topic.data(), topic.size(), more) < 0) return false;
  return ::zmq_send(socket, header.data(), header.size(), payload == 0 ? ZMQ_DONTWAIT : more) >= 0;
}

/// libzmq's free function of a zero-copy payload: `hint` is the message's own reference.
void release_frame(void* /*data*/, void* hint) noexcept {
  auto* ref = static_cast<std::shared_ptr<FrameBuffer>*>(hint);
  // SYNC POINT: release, after libzmq's last read of the bytes; pairs with FramePool::acquire().
  (*ref)->in_flight.fetch_sub(1, std::memory_order_release);
  delete ref;
}

}  // namespace

bool send_message(void* socket, std::span<const std::byte> identity, std::string_view topic, wire::Header h,
                  std::span<const std::byte> payload) {
  if (!send_head(socket, identity, topic, h, payload.size())) return false;
  return payload.empty() || ::zmq_send(socket, payload.data(), payload.size(), ZMQ_DONTWAIT) >= 0;
}

bool send_message(void* socket, std::span<const std::byte> identity, std::string_view topic, wire::Header h,
                  const std::shared_ptr<FrameBuffer>& payload) {
  const std::size_t n = payload ? payload->bytes.size() : 0;
  if (n == 0) return send_head(socket, identity, topic, h, 0);
  // The payload's message first: once the head is accepted, the last part must follow.
  zmq_msg_t msg;
  auto* ref = new std::shared_ptr<FrameBuffer>(payload);
  payload->in_flight.fetch_add(1, std::memory_order_relaxed);  // released by release_frame()
  if (::zmq_msg_init_data(&msg, payload->bytes.data(), n, release_frame, ref) != 0) {
    payload->in_flight.fetch_sub(1, std::memory_order_relaxed);
    delete ref;
    return false;  // out of memory
  }
  const bool sent = send_head(socket, identity, topic, h, n) && ::zmq_msg_send(&msg, socket, ZMQ_DONTWAIT) >= 0;
  if (!sent) ::zmq_msg_close(&msg);  // frees it through release_frame()
  return sent;
}

std::shared_ptr<FrameBuffer> FramePool::acquire(std::size_t bytes) {
  for (const auto& b : pool_) {
    // SYNC POINT: acquire, pairs with release_frame()'s release: libzmq has finished reading it.
    if (b->in_flight.load(std::memory_order_acquire) == 0) {
      b->bytes.resize(bytes);
      return b;
    }
  }
  auto b = std::make_shared<FrameBuffer>();
  b->bytes.resize(bytes);
  if (pool_.size() < kMaxPooled) pool_.push_back(b);
  return b;
}

void put_shape(wire::Header& h, const Stream& s) noexcept {
  const auto shape = s.frame_shape();
  h.dtype = static_cast<std::uint32_t>(s.dtype());
  h.naxis = static_cast<std::uint8_t>(shape.size());
  for (std::size_t i = 0; i < 3; ++i) h.size[i] = i < shape.size() ? shape[i] : 0;
}

void set_origin(Stream& s, const std::string& origin) {
  s.set_keyword(kKeywordOrigin, origin.substr(0, kMaxKeywordString), std::string_view(origin).substr(0, 79));
}

bool is_replica_of(const Stream& s, const std::string& origin) noexcept {
  try {
    for (const Keyword& k : s.keywords()) {
      if (k.name != kKeywordOrigin) continue;
      const auto* value = std::get_if<std::string>(&k.value);
      if (value == nullptr) return false;
      if (!k.comment.empty()) return k.comment == std::string_view(origin).substr(0, 79);
      return *value == origin.substr(0, kMaxKeywordString);
    }
  } catch (...) {  // unreadable keywords, or out of memory: not known to be ours
  }
  return false;
}

// ---- Watcher -------------------------------------------------------------------------------

Watcher::Watcher(std::string path, bool spin, std::function<void()> on_change)
    : path_(std::move(path)), spin_(spin), on_change_(std::move(on_change)) {
  efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd_ < 0) throw Error(errc_from_errno(errno), "creating the eventfd that wakes the bridge of " + path_);
  thread_ = std::thread([this] { run(); });
}

Watcher::~Watcher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ::close(efd_);
}

void Watcher::arm(bool on) {
  {
    std::lock_guard lock(mutex_);
    if (armed_ == on) return;
    armed_ = on;
  }
  cv_.notify_all();
}

void Watcher::set_path(std::string path) {
  {
    std::lock_guard lock(mutex_);
    path_ = std::move(path);
    path_changed_ = true;
  }
  cv_.notify_all();
}

void Watcher::notify() noexcept {
  if (on_change_) {
    on_change_();  // the caller's work, on this thread (it catches its own errors)
    return;
  }
  // SYNC POINT: the write(2) follows the acquire load of the new cnt0; pairs with woken().
  const std::uint64_t one = 1;
  (void)!::write(efd_, &one, sizeof one);  // EAGAIN only at a counter of 2^64 - 2: still readable
}

void Watcher::woken() noexcept {
  std::uint64_t v = 0;
  (void)!::read(efd_, &v, sizeof v);  // EAGAIN: nothing pending
}

namespace {

/// The semaphore slot a watcher waits on: the last free one (milk readers take the first ones),
/// and only where the stream has two slots or more (the only slot stays a reader's). -1: none.
int claim_watch_slot(Stream& s) noexcept {
  const int n = s.semaphore_count();
  if (n < 2) return -1;
  const int slot = s.claim_semaphore(n - 1);
  if (slot >= 0) (void)s.sem_flush(slot);  // posts of frames before ours are not news
  return slot;
}

}  // namespace

void Watcher::run() {
  constexpr auto kSlice = std::chrono::milliseconds(100);  // how often stop and re-arm are seen
  Stream s;
  int slot = -1;          // our semaphore slot of `s` (-1: none; wait_futex instead)
  bool futex = false;     // a frame came without a post: wait_futex from here on (see below)
  std::uint64_t last = 0;
  std::string path;
  auto close = [&] {
    if (slot >= 0) s.release_semaphore(slot);
    slot = -1;
    futex = false;
    s.close();
  };
  auto lost_file = [&] {
    close();
    replaced_.store(true, std::memory_order_release);
    notify();
  };
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || armed_; });
      if (stop_) break;
      if (path_changed_) {
        close();
        path_changed_ = false;
      }
      path = path_;
    }
    if (!s.valid()) {
      try {
        s = Stream::open(path);
        if (!spin_) slot = claim_watch_slot(s);
        last = s.cnt0();
        notify();
      } catch (const Error&) {
        replaced_.store(true, std::memory_order_release);
        notify();
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, kSlice, [&] { return stop_ || path_changed_; });
        continue;
      }
    }
    if (spin_ || slot < 0 || futex) {
      std::uint64_t c = 0;
      const Status st = spin_ ? s.wait_spin(last, kSlice, &c) : s.wait_futex(last, kSlice, &c);
      if (st.ok()) {
        last = c;
        notify();
      } else if (st.code() == Errc::replaced || st.code() == Errc::closed) {
        lost_file();
      }
      continue;
    }
    // Event-driven, no polling: every writer that posts the stream's semaphores (shmlink's
    // Stream::write by default, ImageStreamIO_UpdateIm, milk) posts our slot after its cnt0
    // increment and wakes us at once; an idle stream costs one look every kSlice.
    const Status st = s.sem_wait(slot, kSlice);
    if (st.code() == Errc::closed) {
      lost_file();
      continue;
    }
    if (!st.ok() && (!s.file_intact() || s.replaced())) {  // checked before touching the mapping again
      lost_file();
      continue;
    }
    if (st.ok()) (void)s.sem_flush(slot);  // posts coalesce, as the eventfd's wake-ups do
    std::uint64_t c = s.cnt0();  // SYNC POINT: acquire; the post (acquire) follows its increment
    if (c == last && st.ok()) {
      // A post with no new frame: a writer that posts before its increment (ISIO's Python
      // write()) is about to increment; or the file was re-created (PurgeAndCreate posts once).
      for (int i = 0; i < 50 && c == last; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        c = s.cnt0();
      }
      if (c == last && s.replaced()) {
        lost_file();
        continue;
      }
    }
    if (c == last) continue;
    if (!st.ok()) {
      // A new frame found at a slice's end. A posting writer caught between its increment and
      // its post posts within a moment; a writer that posts no semaphores (shmlink's
      // post_semaphores = false, a writer that only increments cnt0) does not: wait_futex from
      // here on (woken by shmlink writers' futex wakes, others seen in its 10 ms slices).
      futex = !s.sem_wait(slot, std::chrono::milliseconds(2)).ok();
      (void)s.sem_flush(slot);
    }
    last = c;
    notify();
  }
  close();
}

}  // namespace shmlink::bridge::detail
