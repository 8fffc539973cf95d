// SPDX-License-Identifier: MIT
// The service's view of its own host (service_local.hpp).
#include "bridge/service_local.hpp"

#include "queue/queue_layout.hpp"
#include "stream/isio_layout.hpp"

#include <shmlink/catalog.hpp>
#include <shmlink/segment.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace shmlink::bridge::detail {

namespace {

/// Reads the first `n` bytes of `path` into `out` (opened O_NOFOLLOW | O_NONBLOCK, never mapped).
bool read_head(const std::string& path, void* out, std::size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, static_cast<char*>(out) + got, n - got, static_cast<off_t>(got));
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  return got == n;
}

bool stream_record(const std::string& path, wire::CatalogueRecord& r) {
  isio::Metadata m{};
  if (!read_head(path, &m, sizeof m)) return false;
  if (std::strncmp(m.version, isio::kVersion, sizeof m.version) != 0) return false;  // not (yet) a 2.00 stream
  if (m.naxis < 1 || m.naxis > 3 || !dtype_valid(m.datatype)) return false;
  r.dtype = m.datatype;
  r.shape.assign(m.size, m.size + m.naxis);
  return std::none_of(r.shape.begin(), r.shape.end(), [](std::uint32_t v) { return v == 0; });
}

bool queue_record(const std::string& path, wire::CatalogueRecord& r) {
  qlayout::QueueHeader q{};
  if (!read_head(path, &q, sizeof q)) return false;
  if (std::memcmp(q.magic, qlayout::kMagic, sizeof q.magic) != 0 || q.version != qlayout::kVersion) return false;
  r.queue = true;
  r.dtype = q.cell_bytes;
  r.shape = {q.capacity};
  return true;
}

}  // namespace

bool allowed(const std::vector<std::string>& allow, std::string_view name) noexcept {
  if (allow.empty()) return true;
  return std::any_of(allow.begin(), allow.end(), [&](const std::string& p) { return name.starts_with(p); });
}

std::vector<wire::CatalogueRecord> scan_catalogue(const std::string& directory, const std::vector<std::string>& allow,
                                                  const std::set<std::string>& skip) {
  std::vector<wire::CatalogueRecord> out;
  for (const ChannelListing& c : list_channels(directory, false)) {
    if ((c.kind != "stream" && c.kind != "queue") || skip.count(c.path) != 0 || !allowed(allow, c.name)) continue;
    wire::CatalogueRecord r;
    r.name = c.name;
    if (r.name.size() > kMaxChannelName) continue;
    if (c.kind == "stream" ? stream_record(c.path, r) : queue_record(c.path, r)) out.push_back(std::move(r));
  }
  return out;
}

std::vector<bool> used_by_others(const std::vector<std::string>& paths) {
  std::vector<bool> used(paths.size(), false);
  if (paths.empty()) return used;
  const auto holders = processes_using_each(paths);
  const int self = static_cast<int>(::getpid());
  for (std::size_t i = 0; i < paths.size() && i < holders.size(); ++i)
    used[i] = std::any_of(holders[i].begin(), holders[i].end(), [&](int pid) { return pid != self; });
  return used;
}

namespace {

/// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong
/// forms, no surrogates, at most U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i)
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  return n;
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(s.substr(i));
      if (n == 0) {
        out += "\\ufffd";  // not UTF-8 (a name is bytes): the replacement character keeps the JSON valid
      } else {
        out.append(s.substr(i, n));
        i += n - 1;
      }
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

bool node_name_ok(std::string_view name) noexcept {
  if (name.empty() || name.size() > 63) return false;
  return std::none_of(name.begin(), name.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f || c == ':' || c == '/';
  });
}

}  // namespace shmlink::bridge::detail
