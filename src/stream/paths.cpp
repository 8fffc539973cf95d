// SPDX-License-Identifier: MIT
// Stream file naming (docs/reference/imagestreamio.md section 8); the directory and the name rule
// are the core's (src/os/channel.cpp).
#include <shmlink/stream.hpp>

namespace shmlink {
namespace {

constexpr std::string_view kSuffix = ".im.shm";

}  // namespace

std::string stream_name(std::string_view name_or_path) {
  std::string_view base = name_or_path;
  if (auto slash = base.rfind('/'); slash != std::string_view::npos) base = base.substr(slash + 1);
  if (base.size() > kSuffix.size() && base.substr(base.size() - kSuffix.size()) == kSuffix)
    base.remove_suffix(kSuffix.size());
  return std::string(base);
}

std::string semaphore_index_error(long long index, int count, std::string_view stream) {
  const std::string which = "stream '" + escape_name(stream) + "'";
  if (count <= 0) return which + " has no semaphores";
  return "semaphore " + std::to_string(index) + " is outside 0.." + std::to_string(count - 1) + " of " + which;
}

std::string stream_path(std::string_view name_or_path) {
  const std::string name = stream_name(name_or_path);
  check_channel_name("stream", name, name_or_path, kMaxStreamName);
  const std::string_view base = name_or_path.substr(name_or_path.rfind('/') + 1);
  for (std::string_view other : {std::string_view(".queue.shm"), std::string_view(".memif.shm")}) {
    if (base.size() >= other.size() && base.substr(base.size() - other.size()) == other)
      throw Error(Errc::invalid_argument, "stream '" + escape_name(name_or_path) + "': a file name ending in '" +
                                              std::string(other) + "' is not a stream's");
  }
  if (name_or_path.find('/') != std::string_view::npos) return std::string(name_or_path);
  return stream_directory() + "/" + name + std::string(kSuffix);
}

}  // namespace shmlink
