// SPDX-License-Identifier: MIT
/// @file remote.hpp
/// @brief Opening channels of other hosts: the client side of the local control protocol that
/// programs speak with the bridge service of their host (`shmlink bridge serve`; docs/bridge.md,
/// "Opening remote channels"; the protocol: docs/design/bridge.md, "The control socket").
///
/// Part of the core library: plain POSIX (an AF_UNIX SOCK_SEQPACKET socket), no ZeroMQ. The
/// service makes a same-name *replica* of the remote channel in the local stream directory and
/// answers its path; the caller then opens that file as any local channel. `Stream::open` and
/// `Queue::open` call remote_open() themselves when the local file does not exist and the name
/// says "HOST:NAME" (always) or remote opening is enabled (remote_open_enabled()).
#pragma once

#include <shmlink/error.hpp>
#include <shmlink/export.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmlink::remote {

/// The control socket of this host's bridge service: `$SHMLINK_BRIDGE_SOCKET` when set and not
/// empty, else `<stream_directory()>/.shmlink-bridge.sock`. Read on every call.
SHMLINK_EXPORT std::string control_socket_path();

/// Sends one request to the bridge service of this host and returns its answer.
///
/// Connects to the control socket (`$SHMLINK_BRIDGE_SOCKET`, else
/// `<stream_directory()>/.shmlink-bridge.sock`), sends the fields (after the protocol's magic,
/// TAB-separated), waits for one reply datagram of at most 1 MiB, and closes.
/// @param fields the verb and its fields, e.g. {"OPEN", "stream", "rtc1", "wfs", "5000", "0"};
///        no field may hold a TAB (they separate fields).
/// @param timeout the longest wait for the connection and the reply (>= 0 ms).
/// @return the reply's fields after "OK".
/// @throws Error not_found at once when no service listens (no socket file, or the file is left
///         from a service that ended: ECONNREFUSED), naming the socket and saying how to start
///         one; the service's own error when it answers "ERR" (its condition, errc_from_name(),
///         and its message, prefixed by the socket and the request); timeout when no reply came
///         within `timeout`; protocol when the reply lacks the magic, is neither OK nor ERR, or
///         is larger than 1 MiB; invalid_argument for a field holding a TAB or a socket path too
///         long for AF_UNIX; permission when the socket refuses us or the service listening on it
///         runs as another user than ours and not as root (SO_PEERCRED); system for other OS
///         errors.
SHMLINK_EXPORT std::vector<std::string> request(const std::vector<std::string>& fields,
                                                std::chrono::milliseconds timeout);

/// Whether opening a plain name that does not exist locally should ask the bridge service.
///
/// `$SHMLINK_BRIDGE` decides when set: "auto" (on) or "off" (off); another value is warned
/// about (library log) and ignored. Otherwise the first of `$XDG_CONFIG_HOME/shmlink/shmlink.conf`
/// (`$HOME/.config/shmlink/shmlink.conf` when XDG_CONFIG_HOME is unset or empty) and
/// `/etc/shmlink/shmlink.conf` that exists decides by its line `bridge = auto` or
/// `bridge = off` ('#' starts a comment; blank lines are skipped; any other line, or a file that
/// cannot be read, is warned about through the library log and ignored). Default: off, so no
/// program waits on a service that is not there. Read on every call (no cache). Never throws.
SHMLINK_EXPORT bool remote_open_enabled() noexcept;

/// Asks the bridge service for a local replica of channel `name` of host `host` and returns the
/// replica file's path once the service says it is ready (a stream holds its first frame).
/// @param kind "stream" or "queue"; @param host the node name, or "" for whichever peer has
///        `name`; @param timeout how long the service may take (also the client's wait, plus one
///        second for the service to answer a timeout itself); @param keep keep the replica while
///        no process uses it (until `bridge release`).
/// @param every_frame_window 0: the replica follows the latest value (a slow link skips frames,
///        counted in BR_SKIPPED). 1..1024: every-frame mode for recorders: the replica is a
///        rolling buffer of the source's depth that receives every source frame in cnt0 order,
///        this many in flight, and counts in BR_LOST the frames overwritten at the owner before
///        they could be sent (docs/bridge.md, "Every frame, for recorders"). Sent as OPEN's
///        optional mode and window fields, only when not 0.
/// @throws Error as request(); the service's not_found (no peer has the channel), timeout,
///         permission (the owner refused), invalid_argument (a window above 1024, or a service
///         too old to know every-frame mode), protocol (a reply without a path).
SHMLINK_EXPORT std::string remote_open(std::string_view kind, std::string_view host, std::string_view name,
                                       std::chrono::milliseconds timeout, bool keep,
                                       std::uint32_t every_frame_window = 0);

/// Splits "HOST:NAME" into {HOST, NAME}: HOST is 1 to 63 bytes of [A-Za-z0-9._-] (a host or node
/// name) and not "ivshmem" (a VM locator), NAME a valid channel name (check_channel_name(): 1 to
/// 79 bytes, no control character), and the text holds no '/' (a path or a region locator
/// "PATH:NAME"). The first ':' splits. @return nullopt for anything else.
SHMLINK_EXPORT std::optional<std::pair<std::string, std::string>> split_remote_name(std::string_view text);

/// How long remote opens wait: `$SHMLINK_BRIDGE_TIMEOUT_MS` when it is a positive integer (ms),
/// else 5000 ms (a malformed value is warned about through the library log).
SHMLINK_EXPORT std::chrono::milliseconds open_timeout() noexcept;

}  // namespace shmlink::remote
