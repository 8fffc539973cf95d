// SPDX-License-Identifier: MIT
// Permission bits, owners and groups of files (files.hpp).
#include "files.hpp"

#include <fmt/format.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

namespace shmlink::cli {

// ---- files and groups ------------------------------------------------------------------

namespace {

/// A buffer size for the reentrant user/group database calls.
std::size_t nss_buffer_size(int name) noexcept {
  const long n = ::sysconf(name);
  return n > 0 ? static_cast<std::size_t>(n) : 4096;
}

/// The name of user `uid`, empty when the user database has none.
std::string user_name(uid_t uid) {
  std::vector<char> buf(nss_buffer_size(_SC_GETPW_R_SIZE_MAX));
  while (true) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    const int rc = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return (rc == 0 && found != nullptr) ? std::string(found->pw_name) : std::string();
  }
}

/// Looks a group up by gid (`name` null) or by name; nullopt when there is no such group.
/// @throws Error system when the group database fails.
std::optional<std::pair<gid_t, std::string>> find_group(const char* name, gid_t gid) {
  std::vector<char> buf(nss_buffer_size(_SC_GETGR_R_SIZE_MAX));
  while (true) {
    struct group gr {};
    struct group* found = nullptr;
    const int rc = name != nullptr ? ::getgrnam_r(name, &gr, buf.data(), buf.size(), &found)
                                   : ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (found != nullptr) return std::make_pair(found->gr_gid, std::string(found->gr_name));
    // getgrnam_r reports "no such group" as 0 or, depending on the NSS module, ENOENT, ESRCH,
    // EBADF or EPERM.
    if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) return std::nullopt;
    throw Error(errc_from_errno(rc), fmt::format("looking up group '{}': {}",
                                                 name != nullptr ? std::string(name) : std::to_string(gid),
                                                 std::strerror(rc)));
  }
}

}  // namespace

std::optional<FileOwner> file_owner(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileOwner o;
  o.mode = st.st_mode & 07777;
  o.uid = st.st_uid;
  o.gid = st.st_gid;
  o.user = user_name(st.st_uid);
  try {
    if (auto g = find_group(nullptr, st.st_gid)) o.group = g->second;
  } catch (const Error&) {
    // No name for the group: the gid alone is shown.
  }
  return o;
}

std::string format_mode(mode_t mode) { return fmt::format("{:04o}", static_cast<unsigned>(mode & 07777)); }

void add_owner_json(Json& j, const FileOwner& owner) {
  j["mode"] = format_mode(owner.mode);
  j["uid"] = owner.uid;
  j["user"] = owner.user.empty() ? Json(nullptr) : Json(owner.user);
  j["gid"] = owner.gid;
  j["group"] = owner.group.empty() ? Json(nullptr) : Json(owner.group);
}

gid_t resolve_group(const std::string& text) {
  if (text.empty()) throw Error(Errc::invalid_argument, "--group: empty group name");
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    // (gid_t)-1 means "leave unchanged" to chown(2): not a usable gid.
    if (ec != std::errc() || ptr != text.data() + text.size() || value >= 0xFFFFFFFFu) {
      throw Error(Errc::invalid_argument, fmt::format("--group: gid '{}' is out of range", text));
    }
    return static_cast<gid_t>(value);
  }
  if (auto g = find_group(text.c_str(), 0)) return g->first;
  throw Error(Errc::invalid_argument, fmt::format("--group: no group named '{}' (see `getent group`)", text));
}

}  // namespace shmlink::cli
