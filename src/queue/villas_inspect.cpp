// SPDX-License-Identifier: MIT
// Read-only inspection of VILLASnode v1.x shmem regions (include/shmlink/villas.hpp).
#include "os/sys.hpp"
#include "queue/villas_region.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace shmlink::villas {

namespace {

/// The geometry of a region whose first bytes are `bytes` and whose file is `size` bytes long.
/// @throws Error layout naming `what`, the failed check and the supported versions.
Geometry checked(std::span<const std::byte> bytes, std::uint64_t size, std::string_view what) {
  std::string why;
  const auto g = check_region(bytes.first(bytes.size() < kSharedEnd ? bytes.size() : kSharedEnd), size, why);
  if (!g)
    throw Error(Errc::layout,
                "inspecting VILLAS region " + std::string(what) + ": " + why + " (" + std::string(kSupportedVersions) + ")");
  return *g;
}

/// Reads `out.size()` bytes of `fd` from byte `at` with pread. @throws Error layout naming
/// `path` when the file ends early (it shrank since its size of `size` bytes was taken),
/// Error from errno when a read fails.
void read_all(int fd, std::span<std::byte> out, std::uint64_t size, const std::string& path, std::uint64_t at = 0) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) os::throw_errno(errno, "reading VILLAS region", path);
    if (n == 0)
      throw Error(Errc::layout, "inspecting VILLAS region " + path + ": the file ended after " + std::to_string(at + done) +
                                    " of its " + std::to_string(size) + " bytes (it shrank while being read)");
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

RegionInfo inspect(std::span<const std::byte> bytes, std::string_view what) {
  return inspect(bytes, bytes.size(), what);
}

RegionInfo inspect(std::span<const std::byte> header, std::uint64_t file_size, std::string_view what) {
  // summarize() reads the queues' state, head and tail only: all inside the first kSharedEnd bytes.
  const std::span<const std::byte> h = header.first(header.size() < kSharedEnd ? header.size() : kSharedEnd);
  return summarize(h, checked(h, file_size, what), what);
}

RegionInfo inspect_file(const std::string& name_or_path) {
  // "/x" and "x" are POSIX shared-memory names (/dev/shm/x); anything with another '/' is a path.
  const std::string_view tail = name_or_path.empty() || name_or_path[0] != '/' ? std::string_view(name_or_path)
                                                                                 : std::string_view(name_or_path).substr(1);
  const std::string path = tail.find('/') == std::string_view::npos && !tail.empty() ? "/dev/shm/" + std::string(tail)
                                                                                      : name_or_path;
  // Never follows a link, and a FIFO swapped in cannot block the open (O_NONBLOCK).
  os::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK));
  if (!fd && errno == ELOOP)
    throw Error(Errc::layout, "inspecting VILLAS region " + path + ": a symbolic link, not followed (" +
                                  std::string(kSupportedVersions) + ")");
  if (!fd) os::throw_errno(errno, "opening VILLAS region", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting VILLAS region", path);
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::layout, "inspecting VILLAS region " + path + ": not a regular file (" +
                                  std::string(kSupportedVersions) + ")");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  // Read, never mapped: a file shrunk meanwhile gives a short read (a layout error), not SIGBUS.
  // Only the header is read, whatever the file's size (a sparse file of many GiB costs 816 bytes).
  std::vector<std::byte> bytes(size < kSharedEnd ? size : kSharedEnd);
  read_all(fd.get(), bytes, size, path);
  return inspect(bytes, size, path);
}

bool looks_like_region(std::span<const std::byte> head, std::uint64_t file_size) noexcept {
  std::string why;
  return check_region(head.first(head.size() < kSharedEnd ? head.size() : kSharedEnd), file_size, why).has_value();
}

}  // namespace shmlink::villas
