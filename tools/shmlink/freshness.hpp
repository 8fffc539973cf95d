// SPDX-License-Identifier: MIT
/// @file freshness.hpp
/// @brief How fresh a bridge replica is, as `ls`, `info` and `monitor` show it: the keywords a
/// replica carries (docs/design/bridge.md, "Freshness"; include/shmlink/bridge.hpp kKeyword*)
/// read back from any stream's keyword list. A stream without BR_ORIGIN is no replica.
#pragma once

#include "cli.hpp"

#include <shmlink/stream.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shmlink::cli {

/// The freshness keywords of one replica; each optional is empty when its keyword is absent or
/// not an integer (a replica of an older version, or a file edited by hand).
struct BridgeFreshness {
  /// The origin node: BR_ORIGIN's comment when it holds the whole name (BR_ORIGIN's value is its
  /// first 16 bytes, all an ISIO keyword string holds), else the value.
  std::string origin;
  std::optional<bool> link_up;                       ///< BR_LINK: 1 up, 0 down (or the replica stopped)
  std::optional<std::int64_t> age_us;                ///< BR_AGE_US: age of the newest frame on arrival, us
  std::optional<std::int64_t> skipped;               ///< BR_SKIPPED: latest-value mode, frames skipped
  std::optional<std::int64_t> lost;                  ///< BR_LOST: every-frame mode, frames lost at the owner
  std::optional<std::int64_t> source_cnt0;           ///< BR_SRC_CNT0: the source's cnt0 of the newest frame
  std::optional<std::int64_t> source_write_time_ns;  ///< BR_SRC_WTIME: its write time at the source, ns
};

/// The freshness of a stream from its keywords; nullopt when it has no string BR_ORIGIN (no replica).
std::optional<BridgeFreshness> bridge_freshness(const std::vector<Keyword>& keywords);

/// "up" / "down" / "?" (BR_LINK absent).
std::string link_text(const BridgeFreshness& f);

/// The BRIDGE cell of `ls` and `monitor`: "<origin> up" or "<origin> down".
std::string bridge_cell(const BridgeFreshness& f);

/// The text lines of `info`'s "bridge" section: {key, value} in display order (origin, link,
/// mode, frame age, skipped or lost, source cnt0, source write time).
std::vector<std::pair<std::string, std::string>> bridge_lines(const BridgeFreshness& f);

/// The JSON "bridge" object: {"origin", "link_up" (bool or null), "mode" ("latest" or
/// "every_frame"), "age_us", "skipped", "lost", "source_cnt0", "source_write_time_ns"} (absent
/// keywords are null); null for a stream that is no replica.
Json bridge_json(const std::optional<BridgeFreshness>& f);

}  // namespace shmlink::cli
