// SPDX-License-Identifier: MIT
// Read-only inspection of VILLASnode v1.x shmem regions (include/shmlink/villas.hpp).
#include "os/sys.hpp"
#include "queue/villas_region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>

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

}  // namespace

RegionInfo inspect(std::span<const std::byte> bytes, std::string_view what) {
  return summarize(bytes, checked(bytes, bytes.size(), what), what);
}

RegionInfo inspect_file(const std::string& name_or_path) {
  // "/x" and "x" are POSIX shared-memory names (/dev/shm/x); anything with another '/' is a path.
  const std::string_view tail = name_or_path.empty() || name_or_path[0] != '/' ? std::string_view(name_or_path)
                                                                                 : std::string_view(name_or_path).substr(1);
  const std::string path = tail.find('/') == std::string_view::npos && !tail.empty() ? "/dev/shm/" + std::string(tail)
                                                                                      : name_or_path;
  os::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) os::throw_errno(errno, "opening VILLAS region", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting VILLAS region", path);
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::layout, "inspecting VILLAS region " + path + ": not a regular file (" +
                                  std::string(kSupportedVersions) + ")");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < kSharedEnd) (void)checked({}, size, path);  // throws the size message; nothing to map
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (m == MAP_FAILED) os::throw_errno(errno, "mapping VILLAS region", path);
  struct Unmap {
    void* p;
    std::uint64_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{m, size};
  return inspect({static_cast<const std::byte*>(m), size}, path);
}

bool looks_like_region(std::span<const std::byte> head, std::uint64_t file_size) noexcept {
  std::string why;
  return check_region(head.first(head.size() < kSharedEnd ? head.size() : kSharedEnd), file_size, why).has_value();
}

}  // namespace shmlink::villas
