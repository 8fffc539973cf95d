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

bool recv_parts(void* socket, Parts& out, std::string* user_id) {
  out.parts.clear();
  if (user_id != nullptr) user_id->clear();
  for (;;) {
    zmq_msg_t msg;
    ::zmq_msg_init(&msg);
    if (::zmq_msg_recv(&msg, socket, out.parts.empty() ? ZMQ_DONTWAIT : 0) < 0) {
      ::zmq_msg_close(&msg);
      return false;  // nothing waiting (EAGAIN) or the socket is closing: parts are atomic
    }
    if (out.parts.empty()) out.peer_address.clear();
    if (out.peer_address.empty()) {  // a ROUTER's identity part carries no metadata: the next ones do
      const char* address = ::zmq_msg_gets(&msg, "Peer-Address");
      if (address != nullptr) out.peer_address = address;
    }
    if (user_id != nullptr && user_id->empty()) {
      const char* u = ::zmq_msg_gets(&msg, "User-Id");  // NULL when the connection has none
      if (u != nullptr) *user_id = u;
    }
    const auto* p = static_cast<const std::byte*>(::zmq_msg_data(&msg));
    out.parts.emplace_back(p, p + ::zmq_msg_size(&msg));
    const bool more = ::zmq_msg_more(&msg) != 0;
    ::zmq_msg_close(&msg);
    if (!more) return true;
    if (out.parts.size() > 8) {  // no message of ours has more parts: drain and refuse
      while (more) {
        zmq_msg_t rest;
        ::zmq_msg_init(&rest);
        const bool got = ::zmq_msg_recv(&rest, socket, 0) >= 0;
        const bool again = got && ::zmq_msg_more(&rest) != 0;
        ::zmq_msg_close(&rest);
        if (!again) break;
      }
      out.parts.clear();
      return true;
    }
  }
}

bool send_message(void* socket, std::span<const std::byte> identity, std::string_view topic, wire::Header h,
                  std::span<const std::byte> payload) {
  h.payload_bytes = payload.size();
  h.send_time_ns = realtime_ns();
  const auto header = wire::encode(h);
  const int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
  // A multipart message is queued whole or not at all once its first part is accepted.
  if (!identity.empty() && ::zmq_send(socket, identity.data(), identity.size(), more) < 0) return false;
  if (::zmq_send(socket, topic.data(), topic.size(), more) < 0) return false;
  if (::zmq_send(socket, header.data(), header.size(), payload.empty() ? ZMQ_DONTWAIT : more) < 0) return false;
  if (!payload.empty() && ::zmq_send(socket, payload.data(), payload.size(), ZMQ_DONTWAIT) < 0) return false;
  return true;
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

Watcher::Watcher(std::string path, bool spin) : path_(std::move(path)), spin_(spin) {
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
  // SYNC POINT: the write(2) follows the acquire load of the new cnt0; pairs with woken().
  const std::uint64_t one = 1;
  (void)!::write(efd_, &one, sizeof one);  // EAGAIN only at a counter of 2^64 - 2: still readable
}

void Watcher::woken() noexcept {
  std::uint64_t v = 0;
  (void)!::read(efd_, &v, sizeof v);  // EAGAIN: nothing pending
}

void Watcher::run() {
  constexpr auto kSlice = std::chrono::milliseconds(100);  // how often stop and re-arm are seen
  Stream s;
  std::uint64_t last = 0;
  std::string path;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || armed_; });
      if (stop_) break;
      if (path_changed_) {
        s.close();
        path_changed_ = false;
      }
      path = path_;
    }
    if (!s.valid()) {
      try {
        s = Stream::open(path);
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
    std::uint64_t c = 0;
    const Status st = spin_ ? s.wait_spin(last, kSlice, &c) : s.wait_futex(last, kSlice, &c);
    if (st.ok()) {
      last = c;
      notify();
    } else if (st.code() == Errc::replaced || st.code() == Errc::closed) {
      s.close();
      replaced_.store(true, std::memory_order_release);
      notify();
    }
  }
  s.close();
}

}  // namespace shmlink::bridge::detail
