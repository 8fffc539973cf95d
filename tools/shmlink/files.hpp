// SPDX-License-Identifier: MIT
/// @file files.hpp
/// @brief Permission bits, owners and groups of files, for `info` and `create --group`.
#pragma once

#include "cli.hpp"

#include <sys/types.h>

#include <optional>
#include <string>

namespace shmlink::cli {

// ---- files, groups, re-creation events ------------------------------------------------

/// Permission bits and owner of a file, from stat(2).
struct FileOwner {
  mode_t mode = 0;     ///< permission bits (st_mode & 07777)
  uid_t uid = 0;       ///< owner
  gid_t gid = 0;       ///< group
  std::string user;    ///< the owner's name, empty when the user database has none
  std::string group;   ///< the group's name, empty when the group database has none
};

/// The permission bits and owner of `path` (following links); nullopt when it cannot be stat'ed.
std::optional<FileOwner> file_owner(const std::string& path);

/// Permission bits as four octal digits ("0660").
std::string format_mode(mode_t mode);

/// Adds "mode", "uid", "user", "gid", "group" (names null when unknown) to a JSON object.
void add_owner_json(Json& j, const FileOwner& owner);

/// A `--group` argument resolved to a gid: a numeric gid is used as given, anything else is
/// looked up as a group name.
/// @throws Error invalid_argument naming the group when no group has that name.
gid_t resolve_group(const std::string& text);

}  // namespace shmlink::cli
