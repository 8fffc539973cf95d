// SPDX-License-Identifier: MIT
// CURVE keys, key files and the ZAP handler (include/shmlink/bridge_security.hpp;
// docs/design/bridge.md, "Threat model"). The ZAP exchange follows ZeroMQ RFC 27: the request's
// frames are version "1.0", request id, domain, address, routing id, mechanism, credentials (one
// 32-byte public key for CURVE, none for NULL); the reply's are "1.0", request id, status code,
// status text, user id, metadata.
#include "bridge/security.hpp"

#include <zmq.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>

namespace shmlink::bridge {

namespace {

constexpr std::size_t kZ85KeyChars = 40;
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kMaxKeyFileBytes = 4096;
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kZapDomain = "shmlink";
constexpr std::size_t kMaxZapFrames = 16;      // RFC 27 requests have 6 frames plus credentials
constexpr std::size_t kMaxZapFrameBytes = 1024;

/// libzmq's error text for the last call.
std::string zmq_reason() { return ::zmq_strerror(::zmq_errno()); }

/// True when `key` is 40 characters that decode as Z85 (ZeroMQ RFC 32).
bool is_z85_key(std::string_view key) {
  static constexpr std::string_view kAlphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  if (key.size() != kZ85KeyChars) return false;
  if (!std::all_of(key.begin(), key.end(), [](char c) { return kAlphabet.find(c) != std::string_view::npos; })) return false;
  std::uint8_t out[kKeyBytes];
  const std::string z(key);
  return ::zmq_z85_decode(out, z.c_str()) != nullptr;
}

/// Text safe to print: control and non-ASCII bytes as '?', at most 64 characters.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 64) out += "...";
  return out;
}

/// Refuses a node name that cannot be a key file's name.
void check_node(const std::string& node) {
  const bool ok = !node.empty() && node.size() <= 63 && node != "." && node != ".." &&
                  std::all_of(node.begin(), node.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                           c == '-' || c == '_';
                  });
  if (!ok) {
    throw Error(Errc::invalid_argument,
                "bridge node name '" + printable(node) +
                    "' cannot name a key file (1 to 63 letters, digits, '.', '-' or '_')");
  }
}

/// The file's text; for a secret key file, refuses one that group or others can read.
std::string read_key_file(const std::string& path, bool secret) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) throw Error(Errc::not_found, "bridge key file " + path + " does not exist (make it with 'shmlink bridge keygen')");
    throw Error(errc_from_errno(e), "opening bridge key file " + path + ": " + std::strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw Error(errc_from_errno(errno), "examining bridge key file " + path);
  if (!S_ISREG(st.st_mode)) throw Error(Errc::layout, "bridge key file " + path + " is not a regular file");
  if (secret && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error(Errc::permission, "secret key file " + path + " can be read by group or others (mode " + mode +
                                      "): refused; make it private with 'chmod 600 " + path + "'");
  }
  std::string text(kMaxKeyFileBytes + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(errc_from_errno(errno), "reading bridge key file " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > kMaxKeyFileBytes) throw Error(Errc::layout, "bridge key file " + path + " is larger than a key file can be");
  text.resize(got);
  return text;
}

/// Parses `public <Z85>` / `secret <Z85>` lines (blank lines and '#' comments skipped). The
/// public key is required; the secret key when `secret` (and refused otherwise).
CurveKeys parse_key_file(const std::string& path, const std::string& text, bool secret) {
  CurveKeys keys;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto space = line.find_first_of(" \t");
    const std::string_view word = line.substr(0, space);
    std::string_view value = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    const bool is_public = word == "public";
    const bool is_secret = word == "secret" && secret;
    std::string& slot = is_public ? keys.public_z85 : keys.secret_z85;
    if ((!is_public && !is_secret) || !slot.empty() || !is_z85_key(value)) {
      throw Error(Errc::layout, "bridge key file " + path + ": line " + std::to_string(line_no) + ": expected '" +
                                    (secret ? "public|secret" : "public") + " <40 Z85 characters>' once each, found '" +
                                    printable(line) + "'");
    }
    slot = std::string(value);
  }
  if (keys.public_z85.empty() || (secret && keys.secret_z85.empty())) {
    throw Error(Errc::layout, "bridge key file " + path + ": no '" +
                                  (keys.public_z85.empty() ? "public" : "secret") + " <Z85>' line");
  }
  return keys;
}

/// The public half of a Z85 secret key, or "" when it is not one.
std::string public_of(const std::string& secret_z85) {
  if (!is_z85_key(secret_z85)) return {};
  char pub[kZ85KeyChars + 1] = {};
  if (::zmq_curve_public(pub, secret_z85.c_str()) != 0) return {};
  return std::string(pub, kZ85KeyChars);
}

/// Writes `text` to `path` with `mode` through a temporary file renamed over it.
void write_file(const std::string& path, const std::string& text, mode_t mode) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // created 0600
  if (fd < 0) throw Error(errc_from_errno(errno), "creating " + path + ": " + std::strerror(errno));
  const auto fail = [&](const std::string& what) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(errc_from_errno(e), what + " " + path + ": " + std::strerror(e));
  };
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("writing");
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) fail("setting the mode of");
  if (::fsync(fd) != 0) fail("syncing");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(errc_from_errno(e), "renaming " + tmp + " to " + path + ": " + std::strerror(e));
  }
}

/// Creates `dir` with `mode` when missing (its parents as needed).
void make_directory(const std::string& dir, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return;
  const std::filesystem::path p(dir);
  if (p.has_parent_path() && p.parent_path() != p) std::filesystem::create_directories(p.parent_path(), ec);
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    throw Error(errc_from_errno(errno), "creating key directory " + dir + ": " + std::strerror(errno));
  }
}

void set_string(void* socket, int option, const std::string& value, const char* name, const std::string& what) {
  if (::zmq_setsockopt(socket, option, value.data(), value.size()) != 0) {
    throw Error(Errc::system, std::string("setting ") + name + " on " + what + ": " + zmq_reason());
  }
}

void set_int(void* socket, int option, int value, const char* name, const std::string& what) {
  if (::zmq_setsockopt(socket, option, &value, sizeof value) != 0) {
    throw Error(Errc::system, std::string("setting ") + name + " on " + what + ": " + zmq_reason());
  }
}

}  // namespace

bool curve_available() noexcept { return ::zmq_has("curve") != 0; }

CurveKeys generate_keys() {
  if (!curve_available()) throw Error(Errc::system, "making a CURVE key pair: this libzmq was built without CURVE (libsodium)");
  char pub[kZ85KeyChars + 1] = {};
  char sec[kZ85KeyChars + 1] = {};
  if (::zmq_curve_keypair(pub, sec) != 0) throw Error(Errc::system, "making a CURVE key pair: " + zmq_reason());
  return {std::string(pub, kZ85KeyChars), std::string(sec, kZ85KeyChars)};
}

void write_keys(const std::string& dir, const std::string& node, const CurveKeys& keys) {
  check_node(node);
  if (!is_z85_key(keys.public_z85) || public_of(keys.secret_z85) != keys.public_z85) {
    throw Error(Errc::invalid_argument, "writing the keys of bridge node '" + node + "': not a CURVE key pair in Z85");
  }
  make_directory(dir, 0700);
  make_directory(dir + "/peers", 0700);
  write_file(dir + "/" + node + ".key", "public " + keys.public_z85 + "\nsecret " + keys.secret_z85 + "\n", 0600);
  write_file(dir + "/" + node + ".pub", "public " + keys.public_z85 + "\n", 0644);
}

CurveKeys load_keys(const std::string& dir, const std::string& node) {
  check_node(node);
  const std::string path = dir + "/" + node + ".key";
  CurveKeys keys = parse_key_file(path, read_key_file(path, true), true);
  if (public_of(keys.secret_z85) != keys.public_z85) {
    throw Error(Errc::layout, "bridge key file " + path + ": the public key is not the secret key's");
  }
  return keys;
}

std::vector<TrustedKey> load_trusted_keys(const std::string& dir) {
  const std::filesystem::path peers = std::filesystem::path(dir) / "peers";
  std::vector<TrustedKey> out;
  std::error_code ec;
  if (!std::filesystem::exists(peers, ec)) return out;
  std::filesystem::directory_iterator it(peers, ec);
  if (ec) throw Error(errc_from_errno(ec.value()), "listing trusted keys in " + peers.string() + ": " + ec.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) throw Error(errc_from_errno(ec.value()), "listing trusted keys in " + peers.string() + ": " + ec.message());
    const std::filesystem::path& p = it->path();
    if (p.extension() != ".pub") continue;
    const std::string node = p.stem().string();
    try {
      check_node(node);
    } catch (const Error& e) {
      throw Error(Errc::layout, "trusted key file " + p.string() + ": " + e.what());
    }
    out.push_back({node, parse_key_file(p.string(), read_key_file(p.string(), false), false).public_z85});
  }
  std::sort(out.begin(), out.end(), [](const TrustedKey& a, const TrustedKey& b) { return a.node < b.node; });
  return out;
}

std::vector<std::string> load_trusted(const std::string& dir) {
  std::vector<std::string> out;
  for (TrustedKey& k : load_trusted_keys(dir)) out.push_back(std::move(k.public_z85));
  return out;
}

// ---- Security --------------------------------------------------------------------------------

struct Security::Handler {
  void* context = nullptr;
  void* socket = nullptr;
  std::thread thread;
  std::atomic<bool> done{false};
};

Security::Security(CurveKeys own, std::vector<TrustedKey> trusted, bool allow_plaintext)
    : own_(std::move(own)), trusted_(std::move(trusted)), allow_plaintext_(allow_plaintext) {
  if (!curve_available()) throw Error(Errc::system, "bridge security: this libzmq was built without CURVE (libsodium)");
  if (!is_z85_key(own_.public_z85) || public_of(own_.secret_z85) != own_.public_z85) {
    throw Error(Errc::invalid_argument, "bridge security: our key pair is not a CURVE key pair in Z85");
  }
  for (const TrustedKey& k : trusted_) {
    if (!is_z85_key(k.public_z85)) {
      throw Error(Errc::invalid_argument, "bridge security: the trusted key of '" + printable(k.node) + "' is not Z85");
    }
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) throw Error(errc_from_errno(errno), "bridge security: creating the ZAP handlers' eventfd");
}

Security::~Security() {
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);  // level-triggered: every handler sees it
  std::lock_guard lock(mutex_);
  for (auto& h : handlers_) h->thread.join();
  handlers_.clear();
  ::close(stop_fd_);
}

void Security::serve(void* zmq_context) {
  std::lock_guard lock(mutex_);
  // Handlers whose context was terminated have closed their sockets: forget them (a new context
  // may come at the same address only after zmq_ctx_term returned, i.e. after `done`).
  for (auto it = handlers_.begin(); it != handlers_.end();) {
    if ((*it)->done.load(std::memory_order_acquire)) {
      (*it)->thread.join();
      it = handlers_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& h : handlers_)
    if (h->context == zmq_context) return;
  void* s = ::zmq_socket(zmq_context, ZMQ_REP);
  if (s == nullptr) throw Error(Errc::system, std::string("bridge security: creating the ZAP handler's socket: ") + zmq_reason());
  const int zero = 0;
  ::zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  if (::zmq_bind(s, kZapEndpoint) != 0) {
    const std::string why = zmq_reason();
    ::zmq_close(s);
    throw Error(Errc::system, std::string("bridge security: binding the ZAP handler at ") + kZapEndpoint + ": " + why +
                                  " (another ZAP handler serves this ZeroMQ context)");
  }
  auto h = std::make_unique<Handler>();
  h->context = zmq_context;
  h->socket = s;
  Handler* hp = h.get();
  const int stop_fd = stop_fd_;
  h->thread = std::thread([this, hp, stop_fd] {
    zmq_pollitem_t items[2] = {{hp->socket, 0, ZMQ_POLLIN, 0}, {nullptr, stop_fd, ZMQ_POLLIN, 0}};
    for (;;) {
      if (::zmq_poll(items, 2, -1) < 0) {
        if (::zmq_errno() == EINTR) continue;
        break;  // ETERM: the context is being terminated
      }
      if ((items[1].revents & ZMQ_POLLIN) != 0) break;
      if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
      std::vector<std::string> frames;
      bool truncated = false;
      bool got = false;
      for (;;) {
        zmq_msg_t m;
        ::zmq_msg_init(&m);
        if (::zmq_msg_recv(&m, hp->socket, ZMQ_DONTWAIT) < 0) {
          ::zmq_msg_close(&m);
          break;  // EAGAIN (nothing after all) or ETERM; the parts of a message arrive together
        }
        got = true;
        const std::size_t n = ::zmq_msg_size(&m);
        if (frames.size() < kMaxZapFrames && n <= kMaxZapFrameBytes) {
          frames.emplace_back(static_cast<const char*>(::zmq_msg_data(&m)), n);
        } else {
          truncated = true;
        }
        const bool more = ::zmq_msg_more(&m) != 0;
        ::zmq_msg_close(&m);
        if (!more) break;
      }
      if (!got) {
        if (::zmq_errno() == ETERM) break;
        continue;
      }
      const std::vector<std::string> reply = answer(frames, truncated);
      bool term = false;
      for (std::size_t i = 0; i < reply.size() && !term; ++i) {
        // REP drops a reply to a vanished requester rather than blocking.
        if (::zmq_send(hp->socket, reply[i].data(), reply[i].size(), i + 1 < reply.size() ? ZMQ_SNDMORE : 0) < 0)
          term = ::zmq_errno() == ETERM;
      }
      if (term) break;
    }
    hp->done.store(true, std::memory_order_release);  // before the close that lets zmq_ctx_term end
    ::zmq_close(hp->socket);
  });
  handlers_.push_back(std::move(h));
}

void Security::refuse(const std::string& address, const std::string& why) {
  std::lock_guard lock(stats_mutex_);
  ++stats_.refused;
  stats_.last_refusal = "peer " + address + ": " + why;
}

std::vector<std::string> Security::answer(const std::vector<std::string>& request, bool truncated) {
  const std::string id = request.size() > 1 ? request[1] : std::string();
  const std::string address = request.size() > 3 && !request[3].empty() ? printable(request[3]) : "(address unknown)";
  const auto reply = [&](const char* code, std::string text, std::string user) {
    return std::vector<std::string>{"1.0", id, code, std::move(text), std::move(user), std::string()};
  };
  const auto no = [&](std::string why) {
    refuse(address, why);
    return reply("400", std::move(why), "");
  };
  const auto yes = [&](std::string user) {
    {
      std::lock_guard lock(stats_mutex_);
      ++stats_.accepted;
    }
    return reply("200", "OK", std::move(user));
  };
  if (truncated || request.size() < 6) {
    return no("malformed ZAP request (" + std::to_string(request.size()) + " frames" +
              (truncated ? ", some too many or too long" : "") + ")");
  }
  if (request[0] != "1.0") return no("ZAP version '" + printable(request[0]) + "' is not 1.0");
  const std::string& mechanism = request[5];
  if (mechanism == "CURVE") {
    if (request.size() != 7 || request[6].size() != kKeyBytes) return no("malformed CURVE credentials");
    char z85[kZ85KeyChars + 1] = {};
    ::zmq_z85_encode(z85, reinterpret_cast<const std::uint8_t*>(request[6].data()), kKeyBytes);
    const std::string key(z85, kZ85KeyChars);
    for (const TrustedKey& t : trusted_)
      if (t.public_z85 == key) return yes(t.node);
    return no("CURVE key " + key + " is not trusted (no peers/*.pub holds it)");
  }
  if (mechanism == "NULL") {
    if (request.size() == 6 && allow_plaintext_) return yes("");
    return no("plaintext (NULL mechanism) is not allowed: CURVE is required");
  }
  return no("mechanism '" + printable(mechanism) + "' is not allowed: CURVE is required");
}

SecurityStats Security::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

std::uint64_t Security::refused() const {
  std::lock_guard lock(stats_mutex_);
  return stats_.refused;
}

std::shared_ptr<Security> make_security(void* zmq_context, const std::string& dir, const std::string& node) {
  if (!curve_available()) throw Error(Errc::system, "bridge security: this libzmq was built without CURVE (libsodium)");
  auto s = std::make_shared<Security>(load_keys(dir, node), load_trusted_keys(dir));
  s->set_directory(dir);
  if (zmq_context != nullptr) s->serve(zmq_context);
  return s;
}

void apply_server(void* socket, const Security& security, const std::string& what) {
  set_int(socket, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER", what);
  set_string(socket, ZMQ_CURVE_SECRETKEY, security.keys().secret_z85, "ZMQ_CURVE_SECRETKEY", what);
  set_string(socket, ZMQ_ZAP_DOMAIN, kZapDomain, "ZMQ_ZAP_DOMAIN", what);
  // ZMQ_ZAP_ENFORCE_DOMAIN (93, a draft option in libzmq 4.3): with it, a context without a ZAP
  // handler refuses clients instead of letting every client with our public key in. Builds
  // without the draft API refuse the option; serve() is what guarantees the handler there.
  const int one = 1;
  (void)::zmq_setsockopt(socket, 93, &one, sizeof one);
}

void apply_client(void* socket, const Security& security, const std::string& server_public_z85,
                  const std::string& what) {
  if (!is_z85_key(server_public_z85)) {
    throw Error(Errc::invalid_argument, what + ": the server's public key '" + printable(server_public_z85) +
                                            "' is not 40 Z85 characters");
  }
  set_string(socket, ZMQ_CURVE_SERVERKEY, server_public_z85, "ZMQ_CURVE_SERVERKEY", what);
  set_string(socket, ZMQ_CURVE_PUBLICKEY, security.keys().public_z85, "ZMQ_CURVE_PUBLICKEY", what);
  set_string(socket, ZMQ_CURVE_SECRETKEY, security.keys().secret_z85, "ZMQ_CURVE_SECRETKEY", what);
}

std::string peer_public_key(const Security& security, const std::string& node) {
  for (const TrustedKey& t : security.trusted())
    if (t.node == node) return t.public_z85;
  if (security.directory().empty()) {
    throw Error(Errc::not_found, "bridge security: no trusted key for node '" + printable(node) + "'");
  }
  check_node(node);
  const std::string path = security.directory() + "/peers/" + node + ".pub";
  return parse_key_file(path, read_key_file(path, false), false).public_z85;
}

}  // namespace shmlink::bridge
