// SPDX-License-Identifier: MIT
// What every channel kind shares (include/shmlink/channel.hpp): the channel directory, the name
// and permission rules, and the escaping of names for messages.
#include <shmlink/channel.hpp>

#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace shmlink {
namespace {

bool is_directory(const char* path) noexcept {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

std::string stream_directory() {
  for (const char* var : {"SHMLINK_DIR", "MILK_SHM_DIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') {
      std::string dir(v);
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      return dir;
    }
  }
  if (is_directory("/milk/shm")) return "/milk/shm";
  return "/dev/shm";
}

std::string escape_name(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A valid UTF-8 sequence of 2 to 4 bytes (no overlong form, no surrogate, at most U+10FFFF)
    // passes whole, except the C1 controls U+0080..U+009F, which terminals obey too.
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07u;
    }
    bool valid = len != 0 && i + len <= n;
    for (std::size_t k = 1; valid && k < len; ++k) {
      valid = (p[i + k] & 0xc0u) == 0x80u;
      cp = (cp << 6) | (p[i + k] & 0x3fu);
    }
    if (valid) {
      valid = !(len == 3 && cp < 0x800) && !(len == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
              !(cp >= 0xd800 && cp <= 0xdfff) && !(cp >= 0x80 && cp <= 0x9f);
    }
    if (valid) {
      out.append(text.substr(i, len));
      i += len;
      continue;
    }
    switch (c) {
      case 0x1b: out += "\\e"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        constexpr char kHex[] = "0123456789abcdef";
        out += "\\x";
        out += kHex[c >> 4];
        out += kHex[c & 0xfu];
        break;
      }
    }
    ++i;
  }
  return out;
}

void check_channel_name(std::string_view kind, std::string_view name, std::string_view given, std::size_t max_bytes) {
  const std::string what = std::string(kind) + " '" + escape_name(given) + "'";
  if (given.empty()) throw Error(Errc::invalid_argument, std::string(kind) + " name is empty");
  if (name.empty() || name == "." || name == "..")
    throw Error(Errc::invalid_argument, what + ": no " + std::string(kind) + " name in it");
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '/') throw Error(Errc::invalid_argument, what + ": a name must not contain '/'");
    if (c < 0x20 || c == 0x7f)
      throw Error(Errc::invalid_argument, what + ": a name must not contain control characters (" +
                                              escape_name(std::string_view(&ch, 1)) + " here)");
  }
  if (name.size() > max_bytes)
    throw Error(Errc::name_too_long, what + ": name is " + std::to_string(name.size()) + " bytes, at most " +
                                         std::to_string(max_bytes) + " allowed");
}

const char* file_type_name(mode_t mode) noexcept {
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a regular file";
}

void check_channel_permissions(mode_t permissions, std::string_view resource) {
  const mode_t refused = permissions & ~mode_t{0666};
  if (refused == 0) return;
  std::string which;
  auto add = [&which](bool set, const char* bit) {
    if (set) which += (which.empty() ? "" : ", ") + std::string(bit);
  };
  char octal[16];
  std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(permissions));
  add((refused & S_ISUID) != 0, "set-user-ID");
  add((refused & S_ISGID) != 0, "set-group-ID");
  add((refused & S_ISVTX) != 0, "sticky");
  add((refused & 0111) != 0, "execute");
  add((refused & ~mode_t{07777}) != 0, "non-permission");
  throw Error(Errc::invalid_argument, "creating " + std::string(resource) + ": permissions " + octal + " have " +
                                          which + " bits; a channel file takes read and write bits only (a subset "
                                          "of 0666)");
}

}  // namespace shmlink
