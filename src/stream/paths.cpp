// SPDX-License-Identifier: MIT
// Stream directory and file naming (DESIGN.md "Streams"; reference section 8).
#include <shmlink/stream.hpp>

#include <sys/stat.h>

#include <cstdlib>

namespace shmlink {
namespace {

constexpr std::string_view kSuffix = ".im.shm";

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

std::string stream_name(std::string_view name_or_path) {
  std::string_view base = name_or_path;
  if (auto slash = base.rfind('/'); slash != std::string_view::npos) base = base.substr(slash + 1);
  if (base.size() > kSuffix.size() && base.substr(base.size() - kSuffix.size()) == kSuffix)
    base.remove_suffix(kSuffix.size());
  return std::string(base);
}

std::string stream_path(std::string_view name_or_path) {
  if (name_or_path.empty()) throw Error(Errc::invalid_argument, "stream name is empty");
  const std::string name = stream_name(name_or_path);
  if (name.empty() || name == "." || name == "..")
    throw Error(Errc::invalid_argument, "stream '" + std::string(name_or_path) + "': no stream name in it");
  if (name.size() > kMaxStreamName)
    throw Error(Errc::name_too_long, "stream '" + name + "': name is " + std::to_string(name.size()) +
                                         " bytes, at most " + std::to_string(kMaxStreamName) + " allowed");
  if (name_or_path.find('/') != std::string_view::npos) return std::string(name_or_path);
  return stream_directory() + "/" + name + std::string(kSuffix);
}

}  // namespace shmlink
