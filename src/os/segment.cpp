// SPDX-License-Identifier: MIT
// Mappings and backings (include/shmlink/segment.hpp).
#include <shmlink/segment.hpp>

#include "os/sys.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace shmlink {

// ---- Mapping --------------------------------------------------------------------------------

Mapping::Mapping(int fd, std::size_t size, bool writable, std::string_view what) {
  if (size == 0) throw Error(Errc::invalid_argument, "mapping " + std::string(what) + ": size is 0");
  const int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) os::throw_errno(errno, "mapping", std::string(what));
  data_ = static_cast<std::byte*>(p);
  size_ = size;
}

Mapping::Mapping(Mapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() { reset(); }

void Mapping::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

// ---- Segment --------------------------------------------------------------------------------

Segment::Segment(int fd, Mapping map, std::string path, std::uint64_t inode) noexcept
    : fd_(fd), map_(std::move(map)), path_(std::move(path)), inode_(inode) {}

Segment::Segment(Segment&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), map_(std::move(o.map_)), path_(std::move(o.path_)),
      inode_(std::exchange(o.inode_, 0)) {}

Segment& Segment::operator=(Segment&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    map_ = std::move(o.map_);
    path_ = std::move(o.path_);
    inode_ = std::exchange(o.inode_, 0);
  }
  return *this;
}

Segment::~Segment() { close(); }

void Segment::close() noexcept {
  map_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// What create_file appends to "." + the final name: mkostemp(3) replaces the X's.
constexpr std::string_view kTemporarySuffix = ".XXXXXX";

/// Removes a temporary file unless release() was called.
class TempGuard {
 public:
  explicit TempGuard(std::string path) : path_(std::move(path)) {}
  TempGuard(const TempGuard&) = delete;
  TempGuard& operator=(const TempGuard&) = delete;
  ~TempGuard() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  void release() noexcept { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

Segment Segment::create_file(const std::string& path, std::size_t size, OpenMode mode, mode_t permissions,
                             const Initializer& init) {
  if (mode != OpenMode::ExclusiveCreate && mode != OpenMode::PurgeAndCreate)
    throw Error(Errc::invalid_argument, "creating " + path + ": create_file takes ExclusiveCreate or PurgeAndCreate");
  if (size == 0) throw Error(Errc::invalid_argument, "creating " + path + ": size is 0");

  // The temporary lives in the target directory (rename must not cross file systems) and does
  // not end in ".im.shm", so directory scans never list a half-built segment; is_temporary_name()
  // recognises it (keep the two in step).
  std::string tmpl = dir_of(path) + "/." + base_of(path) + std::string(kTemporarySuffix);
  int raw = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (raw < 0) os::throw_errno(errno, "creating", path);
  os::UniqueFd fd(raw);
  TempGuard guard(tmpl);

  if (::fchmod(fd.get(), permissions) != 0) os::throw_errno(errno, "setting permissions of", path);
  // Allocate every block now: on a full tmpfs this fails with ENOSPC instead of a SIGBUS later.
  if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size)); err != 0) {
    if (err == EOPNOTSUPP || err == EINVAL) {
      if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) os::throw_errno(errno, "sizing", path);
    } else {
      throw Error(errc_from_errno(err), "sizing " + path + " to " + std::to_string(size) + " bytes: " +
                                            std::strerror(err));
    }
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting", path);

  Mapping map(fd.get(), size, true, path);
  Segment seg(fd.release(), std::move(map), path, static_cast<std::uint64_t>(st.st_ino));
  if (init) init(seg);

  // Publish: link the complete file under its real name.
  if (mode == OpenMode::ExclusiveCreate) {
    if (::renameat2(AT_FDCWD, tmpl.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
      int err = errno;
      if (err == EINVAL || err == ENOSYS) {  // file system without RENAME_NOREPLACE: link + unlink
        if (::link(tmpl.c_str(), path.c_str()) != 0) os::throw_errno(errno, "creating", path);
        ::unlink(tmpl.c_str());
      } else {
        os::throw_errno(err, "creating", path);
      }
    }
  } else if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    os::throw_errno(errno, "creating", path);
  }
  guard.release();
  return seg;
}

bool is_temporary_name(std::string_view file_name) noexcept {
  // "." + final name + "." + 6 random characters (mkostemp's template tail).
  constexpr std::size_t kRandom = kTemporarySuffix.size() - 1;
  constexpr std::string_view kFinalSuffix = ".shm";
  if (file_name.size() < 1 + kFinalSuffix.size() + 1 + 1 + kRandom || file_name.front() != '.') return false;
  if (file_name.find('/') != std::string_view::npos) return false;
  const std::string_view random = file_name.substr(file_name.size() - kRandom);
  for (char c : random) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum) return false;
  }
  if (file_name[file_name.size() - kRandom - 1] != '.') return false;
  const std::string_view final_name = file_name.substr(1, file_name.size() - kRandom - 2);
  return final_name.size() > kFinalSuffix.size() && final_name.ends_with(kFinalSuffix);
}

Segment Segment::open_file(const std::string& path, bool writable) {
  // O_NONBLOCK: a FIFO (or device) a co-user put under a channel's name must not block open();
  // it is refused just below, before anything else touches it. On a regular file the flag
  // changes nothing (mmap, fstat and locks ignore it). Symbolic links are followed: DAO and milk
  // set-ups link stream files under other names, and a link grants nothing its target's
  // permissions do not (the kernel's protected_symlinks refuses another user's link in a
  // sticky directory such as /dev/shm).
  int raw = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) os::throw_errno(errno, "opening", path);
  os::UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting", path);
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::layout, "opening " + path + ": not a regular file (" +
                                  (S_ISFIFO(st.st_mode)  ? "a FIFO"
                                   : S_ISDIR(st.st_mode) ? "a directory"
                                   : S_ISSOCK(st.st_mode) ? "a socket"
                                   : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                                  : "not a file") +
                                  ")");
  if (st.st_size <= 0) throw Error(Errc::layout, "opening " + path + ": file is empty");
  Mapping map(fd.get(), static_cast<std::size_t>(st.st_size), writable, path);
  return Segment(fd.release(), std::move(map), path, static_cast<std::uint64_t>(st.st_ino));
}

Segment Segment::create_memfd(const std::string& name, std::size_t size) {
  if (size == 0) throw Error(Errc::invalid_argument, "creating memfd " + name + ": size is 0");
  int raw = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) os::throw_errno(errno, "creating memfd", name);
  os::UniqueFd fd(raw);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) os::throw_errno(errno, "sizing memfd", name);
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
    os::throw_errno(errno, "sealing memfd", name);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting memfd", name);
  Mapping map(fd.get(), size, true, "memfd " + name);
  return Segment(fd.release(), std::move(map), std::string(), static_cast<std::uint64_t>(st.st_ino));
}

Segment Segment::adopt_fd(int fd_in, const std::string& what, bool writable) {
  os::UniqueFd fd(fd_in);
  if (!fd) throw Error(Errc::invalid_argument, "adopting " + what + ": invalid descriptor");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) os::throw_errno(errno, "inspecting", what);
  if (st.st_size <= 0) throw Error(Errc::layout, "adopting " + what + ": size is 0");
  Mapping map(fd.get(), static_cast<std::size_t>(st.st_size), writable, what);
  return Segment(fd.release(), std::move(map), std::string(), static_cast<std::uint64_t>(st.st_ino));
}

}  // namespace shmlink
