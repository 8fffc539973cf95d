// SPDX-License-Identifier: MIT
// What the bridge service learns from its own host without ZeroMQ: the catalogue of the served
// directory read from the files' headers, the allow-list, who maps a replica (its idle rule),
// and JSON text for LS and STATUS (docs/design/bridge.md, "The service").
#pragma once

#include "bridge/wire.hpp"

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::bridge::detail {

/// True when `name` starts with one of `allow`'s prefixes, or `allow` is empty.
bool allowed(const std::vector<std::string>& allow, std::string_view name) noexcept;

/// The streams and queues of `directory` with their dtype and shape, read with pread(2) from
/// each file's header (never mapped, no channel opened), those `allow` permits and whose paths
/// are not in `skip` (the service's own replicas). Files whose header is not complete (being
/// created) or not valid are left out. @throws Error as list_channels() naming the directory.
std::vector<wire::CatalogueRecord> scan_catalogue(const std::string& directory, const std::vector<std::string>& allow,
                                                  const std::set<std::string>& skip);

/// For each path, whether a process other than this one maps or holds it open (one scan of
/// /proc). Processes of other users cannot be seen unless we are root; replica files are 0600,
/// so they cannot map them either.
std::vector<bool> used_by_others(const std::vector<std::string>& paths);

/// `s` as a JSON string literal (quotes, backslash and control characters escaped). JSON text is
/// UTF-8 (RFC 8259) while a channel name is any bytes: each byte that does not start a
/// well-formed UTF-8 sequence becomes U+FFFD (the replacement character), so the text always
/// parses; such a name is shown, not given back exactly.
std::string json_string(std::string_view s);

/// A node name is 1..63 bytes of printable characters, without TAB, ':' or '/'.
bool node_name_ok(std::string_view name) noexcept;

}  // namespace shmlink::bridge::detail
