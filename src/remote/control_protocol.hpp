// SPDX-License-Identifier: MIT
/// @file control_protocol.hpp
/// @brief The local control protocol between programs (the library's transparent open, the
/// `shmlink bridge` CLI) and the bridge service of their host (docs/design/bridge.md,
/// "The control socket"). Header-only: the core library (client), the bridge library (server)
/// and the CLI include it; no ZeroMQ here, so the core needs nothing beyond POSIX.
///
/// Transport: an AF_UNIX SOCK_SEQPACKET socket at control_socket_path() (a file, so its mode
/// bits say who may ask; the client trusts only a service run by its own user or root, checked
/// with SO_PEERCRED). One request
/// datagram, one reply datagram, then the client closes. A datagram is UTF-8 text; fields are
/// separated by TAB (0x09), which no channel name can hold (check_channel_name() refuses control
/// characters). An empty host is an empty field. Only OPEN has optional fields: the trailing pair
/// mode and window, both or neither (a client sends them only for every-frame mode, so a service
/// of before them still answers latest-value opens).
///
/// Requests (first field the magic kControlMagic, second the verb):
/// | verb    | fields after the verb                         | reply on success            |
/// |---------|-----------------------------------------------|-----------------------------|
/// | PING    | (none)                                        | OK, node name               |
/// | OPEN    | kind ("stream", "queue"), host, name, timeout_ms, keep ("0"/"1") [, mode ("latest", "every_frame"), window (1..1024)] | OK, local path |
/// | RELEASE | kind, host, name                              | OK                          |
/// | LS      | (none)                                        | OK, JSON (bridge ls)        |
/// | STATUS  | (none)                                        | OK, JSON (bridge status)    |
///
/// OPEN asks the service for a replica of remote channel `name` (on node `host`, or on whichever
/// peer has it when `host` is empty) and answers once the replica file exists and holds its first
/// frame (a stream) or is ready (a queue), within timeout_ms. keep = "1" keeps the replica when no
/// process uses it (`bridge want --keep`). mode "every_frame" asks for a replica that receives
/// every source frame in order (a rolling buffer of the source's depth; frames lost at the owner
/// counted in BR_LOST), `window` frames in flight; without the pair, or with "latest", the
/// replica follows the latest value. RELEASE undoes keep (an unused replica is then dropped
/// after the idle time).
///
/// Replies: kControlMagic, then "OK" and the verb's fields, or "ERR", an error name (errc_name())
/// and a message naming the channel, the peer and what went wrong.
///
/// The JSON of LS and STATUS (one field; `shmlink bridge ls|status` print it with --json and
/// make their tables from these keys; unknown keys are passed through, missing ones shown "-"):
/// - LS: `{"schema_version": 1, "node": NODE, "channels": [{"node", "kind" ("stream"|"queue"),
///   "name", "dtype" (stream: ISIO datatype code; queue: bytes per sample), "shape" (array of
///   axes; queue: [capacity])}, ...]}` (the fields of bridge::CatalogueEntry).
/// - STATUS: `{"schema_version": 1, "node": NODE, "port", "curve" (bool: --keys), "handshakes_refused"
///   (connections our ZAP handlers refused), "handshakes_failed" (failed handshakes on the service's
///   own sockets), "last_refusal", "last_error", "peers": [{"node", "endpoint", "link_up" (bool),
///   "channels", "problem" (why the link is down, when a handshake said so; else "")}, ...],
///   "replicas": [{"node", "name", "path", "kept" (bool), "link_up" (bool), "frames_published",
///   "skipped", "lost", "mode" ("latest"|"every_frame": the mode in force), "age_us" (BR_AGE_US,
///   -1 unknown)}, ...], "queues": [...]}` (bridge::ServiceStats, PeerStatus, ReplicaStatus).
///
/// Size: a datagram is at most kMaxDatagram bytes. A server sending large LS/STATUS replies sets
/// SO_SNDBUF accordingly; without privileges the kernel caps it by net.core.wmem_max (a datagram
/// must fit the send buffer).
#pragma once

#include <shmlink/channel.hpp>
#include <shmlink/error.hpp>

#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::control {

/// First field of every request and reply: protocol name and version.
inline constexpr std::string_view kControlMagic = "SHMLINK-BRIDGE/1";
/// Largest datagram either side sends or accepts, in bytes (LS/STATUS replies included).
inline constexpr std::size_t kMaxDatagram = 1u << 20;
/// Field separator.
inline constexpr char kSep = '\t';
/// File name of the control socket inside the stream directory.
inline constexpr std::string_view kSocketName = ".shmlink-bridge.sock";
/// Default wait for OPEN when the caller gives none, in ms (DAO's service waits 5 s).
inline constexpr long kDefaultOpenTimeoutMs = 5000;
/// OPEN's mode field for every-frame mode (the other value is "latest").
inline constexpr std::string_view kModeEveryFrame = "every_frame";

/// Where the service of this stream directory listens: `$SHMLINK_BRIDGE_SOCKET` when set and not
/// empty, else `<stream_directory()>/.shmlink-bridge.sock`. Two services on one machine differ
/// by their stream directory (or by this variable).
inline std::string control_socket_path() {
  if (const char* p = std::getenv("SHMLINK_BRIDGE_SOCKET"); p != nullptr && *p != '\0') return p;
  return stream_directory() + "/" + std::string(kSocketName);
}

/// Joins fields with kSep, prefixed by kControlMagic.
inline std::string encode(const std::vector<std::string>& fields) {
  std::string out(kControlMagic);
  for (const auto& f : fields) {
    out += kSep;
    out += f;
  }
  return out;
}

/// Splits a datagram into its fields after the magic.
/// @return nullopt when the magic is wrong or missing (a peer that is not a shmlink service or
///         client, or another protocol version).
inline std::optional<std::vector<std::string>> decode(std::string_view datagram) {
  if (!datagram.starts_with(kControlMagic)) return std::nullopt;
  datagram.remove_prefix(kControlMagic.size());
  std::vector<std::string> fields;
  if (datagram.empty()) return fields;
  if (datagram.front() != kSep) return std::nullopt;
  datagram.remove_prefix(1);
  for (;;) {
    const auto at = datagram.find(kSep);
    fields.emplace_back(datagram.substr(0, at));
    if (at == std::string_view::npos) break;
    datagram.remove_prefix(at + 1);
  }
  return fields;
}

/// The name of an error condition as the protocol carries it ("not_found", "timeout", ...).
inline std::string_view errc_name(Errc e) noexcept {
  switch (e) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::exists: return "exists";
    case Errc::permission: return "permission";
    case Errc::layout: return "layout";
    case Errc::no_space: return "no_space";
    case Errc::timeout: return "timeout";
    case Errc::busy: return "busy";
    case Errc::protocol: return "protocol";
    case Errc::not_connected: return "not_connected";
    case Errc::refused: return "refused";
    default: return "system";
  }
}

/// The inverse of errc_name(); an unknown name is Errc::system.
inline Errc errc_from_name(std::string_view name) noexcept {
  for (Errc e : {Errc::invalid_argument, Errc::not_found, Errc::exists, Errc::permission, Errc::layout,
                 Errc::no_space, Errc::timeout, Errc::busy, Errc::protocol, Errc::not_connected, Errc::refused})
    if (errc_name(e) == name) return e;
  return Errc::system;
}

}  // namespace shmlink::control
