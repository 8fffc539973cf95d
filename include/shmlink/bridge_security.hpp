// SPDX-License-Identifier: MIT
/// @file bridge_security.hpp
/// @brief CURVE encryption and authentication for the bridge's ZeroMQ sockets (issue 22;
/// docs/design/bridge.md, "Threat model"; docs/bridge.md, "Keys"). Internal code includes it as
/// "bridge/security.hpp".
///
/// Key files (text, one `WORD <Z85>` per line; blank lines and `#` comments are ignored):
/// - `<dir>/<node>.key`: `public <Z85>` and `secret <Z85>` (mode 0600: a secret key file that
///   group or others can read is refused, as ssh refuses a private key);
/// - `<dir>/<node>.pub`: `public <Z85>` (mode 0644), the file other hosts copy;
/// - `<dir>/peers/<peer>.pub`: the public keys this node trusts, the file name (without `.pub`)
///   being the peer's node name.
/// A Z85 key is 40 characters of ZeroMQ's Z85 alphabet encoding 32 bytes (ZeroMQ RFC 32).
///
/// Sockets: a server (the end that authenticates its clients: Publisher, QueueReceiver, the
/// service's ROUTER) gets ZMQ_CURVE_SERVER and our secret key (apply_server); a client gets the
/// server's public key, which it must know beforehand (peer_public_key), and our key pair
/// (apply_client). Clients are authenticated by a ZAP handler (ZeroMQ RFC 27) that Security runs
/// in each context it serves: CURVE with a trusted client key is accepted, anything else refused
/// (NULL only when plaintext was allowed explicitly), and refusals are counted.
#pragma once

#include <shmlink/error.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace shmlink::bridge {

/// A CURVE key pair, both halves Z85-encoded (40 characters each).
struct CurveKeys {
  std::string public_z85;  ///< the public key (shared with peers)
  std::string secret_z85;  ///< the secret key (never leaves its host)
};

/// A trusted public key and the node name it belongs to (its file name without `.pub`).
struct TrustedKey {
  std::string node;        ///< peer node name
  std::string public_z85;  ///< its public key, Z85
};

/// Counters of a Security's ZAP handlers (racy snapshot).
struct SecurityStats {
  std::uint64_t accepted = 0;  ///< ZAP requests answered 200
  std::uint64_t refused = 0;   ///< ZAP requests answered 400 (untrusted key, mechanism, malformed)
  std::string last_refusal;    ///< the latest refusal: the peer's address and why; empty if none
};

/// True when libzmq was built with CURVE (zmq_has("curve")).
bool curve_available() noexcept;

/// Makes a new CURVE key pair (zmq_curve_keypair).
/// @throws Error system when libzmq lacks CURVE (built without libsodium) or fails.
CurveKeys generate_keys();

/// Writes `<dir>/<node>.key` (public and secret, mode 0600) and `<dir>/<node>.pub` (public, mode
/// 0644), each through a temporary file renamed over the old one. Creates `dir` (mode 0700, with
/// its parents) and `<dir>/peers` (0700) when they are missing; existing directories are left
/// as they are.
/// @throws Error invalid_argument (a node name that is not a valid file name: empty, over 63
///         bytes, or characters other than letters, digits, '.', '-', '_'; a key that is not
///         Z85), permission / system naming the file or directory.
void write_keys(const std::string& dir, const std::string& node, const CurveKeys& keys);

/// Reads `<dir>/<node>.key`.
/// @throws Error not_found (no such file), permission (the file can be read by group or others:
///         the message names it and its mode; or the OS refused), layout (malformed: the message
///         names the file and line; or a secret key whose public half differs from the file's
///         public key), invalid_argument (bad node name).
CurveKeys load_keys(const std::string& dir, const std::string& node);

/// The public keys of every `<dir>/peers/*.pub` (sorted by file name); none when `<dir>/peers`
/// does not exist.
/// @throws Error layout naming a malformed file, permission / system naming what could not be read.
std::vector<std::string> load_trusted(const std::string& dir);

/// As load_trusted(), with each key's node name.
std::vector<TrustedKey> load_trusted_keys(const std::string& dir);

/// The key material of one node and the ZAP handlers that authenticate its servers' clients.
/// Shared (std::shared_ptr) by the sockets that use it; it must outlive them, since a server
/// socket whose context has no ZAP handler would not authenticate its clients. Thread-safe.
class Security {
 public:
  /// Our key pair and the keys we trust; `allow_plaintext` lets a ZAP request of mechanism NULL
  /// through (off: every NULL request is refused). Checks `own` (Z85, public half matching).
  /// @throws Error system (libzmq without CURVE), invalid_argument (a key that is not Z85, or a
  ///         public key that is not the secret key's).
  Security(CurveKeys own, std::vector<TrustedKey> trusted, bool allow_plaintext = false);
  /// Stops every ZAP handler thread (each closes its socket).
  ~Security();
  Security(const Security&) = delete;
  Security& operator=(const Security&) = delete;

  /// Our key pair.
  [[nodiscard]] const CurveKeys& keys() const noexcept { return own_; }
  /// The trusted keys.
  [[nodiscard]] const std::vector<TrustedKey>& trusted() const noexcept { return trusted_; }
  /// Whether NULL-mechanism ZAP requests are accepted.
  [[nodiscard]] bool allow_plaintext() const noexcept { return allow_plaintext_; }
  /// The directory the keys came from (make_security), empty otherwise.
  [[nodiscard]] const std::string& directory() const noexcept { return directory_; }
  /// Sets the directory peer_public_key() reads `peers/<node>.pub` from.
  void set_directory(std::string dir) { directory_ = std::move(dir); }

  /// Runs a ZAP handler (ZeroMQ RFC 27) in `zmq_context`: a REP socket bound to
  /// "inproc://zeromq.zap.01" answered by a thread of its own, until this Security is destroyed
  /// or the context is terminated (the thread then closes its socket, so zmq_ctx_term completes).
  /// Call it before any server socket of that context accepts connections. Idempotent for a
  /// context already served.
  /// @throws Error system naming the endpoint when it cannot be bound (another handler is there).
  void serve(void* zmq_context);

  /// Answers one ZAP request (its frames after the REP envelope): version, request id, domain,
  /// address, routing id, mechanism, credentials. Returns the reply's frames: "1.0", request id,
  /// status code ("200" accepted, "400" refused), status text, user id (the peer's node name),
  /// metadata (empty). Counts the decision; a refusal is kept in stats().last_refusal with the
  /// peer's address. Never throws on a malformed request (it is refused).
  std::vector<std::string> answer(const std::vector<std::string>& request, bool truncated = false);

  /// ZAP decisions so far.
  [[nodiscard]] SecurityStats stats() const;
  /// Requests refused so far.
  [[nodiscard]] std::uint64_t refused() const;

  struct Handler;

 private:
  void refuse(const std::string& address, const std::string& why);
  CurveKeys own_;
  std::vector<TrustedKey> trusted_;
  bool allow_plaintext_;
  std::string directory_;
  int stop_fd_ = -1;  // eventfd: readable when the handlers must stop
  std::mutex mutex_;  // handlers_
  std::vector<std::unique_ptr<Handler>> handlers_;
  mutable std::mutex stats_mutex_;  // stats_ (a handler counts while the destructor joins it)
  SecurityStats stats_;
};

/// Loads `<dir>/<node>.key` and the trusted keys of `<dir>/peers/`, and serves ZAP in
/// `zmq_context` when it is not null (Security::serve).
/// @throws Error as load_keys(), load_trusted(), Security() and Security::serve().
std::shared_ptr<Security> make_security(void* zmq_context, const std::string& dir, const std::string& node);

/// Makes `socket` a CURVE server with our secret key, asking the ZAP handler of its context
/// (ZMQ_ZAP_DOMAIN "shmlink"). Call before bind (or connect). The socket's context must be
/// served (Security::serve) for clients to be authenticated. `what` names the socket in errors
/// ("the publisher of stream 'wfs'").
/// @throws Error system naming the socket and the option ZeroMQ refused.
void apply_server(void* socket, const Security& security, const std::string& what = "a bridge socket");

/// Makes `socket` a CURVE client with our key pair that accepts only a server holding the secret
/// half of `server_public_z85`. Call before connect (or bind). `what` names the socket in errors.
/// @throws Error invalid_argument (a server key that is not 40 Z85 characters), system; each
///         naming the socket.
void apply_client(void* socket, const Security& security, const std::string& server_public_z85,
                  const std::string& what = "a bridge socket");

/// The public key of peer `node`: from the trusted keys, else from `<dir>/peers/<node>.pub` of
/// the Security's directory (a file added since).
/// @throws Error not_found naming the file, layout (malformed file).
std::string peer_public_key(const Security& security, const std::string& node);

}  // namespace shmlink::bridge
