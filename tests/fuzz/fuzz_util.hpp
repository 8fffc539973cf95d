// SPDX-License-Identifier: MIT
// Shared pieces of the libFuzzer targets (tests/fuzz, issue 17 "Keep it fixed").
//
// Every target turns its input into the bytes of a file a hostile co-user of the stream
// directory could have written, and hands that file to the public API exactly as a program
// would (open by path, then every read, wait and write path with zero timeouts). The files live
// in one private directory on tmpfs per fuzzing process, removed when the process exits.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

namespace shmlink::fuzz {

/// The private scratch directory (created on first use under /dev/shm, or $TMPDIR when /dev/shm
/// is missing; removed with everything in it at exit). SHMLINK_DIR points at it, so that names
/// resolve there and directory scans (memif status files) see only the fuzzer's files.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : (tmp != nullptr ? tmp : "/tmp");
    std::string tmpl = base + "/shmlink-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return base;
    ::setenv("SHMLINK_DIR", tmpl.c_str(), 1);
    // Leaked on purpose: the exit handler runs after static strings are destroyed. A crash
    // (the finding itself) skips it and leaves the directory behind.
    static const std::string* const keep = new std::string(tmpl);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

/// Writes `size` bytes to `path` (created 0600, truncated first). Returns false on any error.
inline bool write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return done == size;
}

/// Inputs that hold two files: `kTwoFileMagic`, the first file's length (u32, little-endian),
/// the first file, then the second file (a stream and its partial-write companion, say).
inline constexpr char kTwoFileMagic[8] = {'S', 'H', 'M', 'L', 'F', 'Z', '2', '\0'};

/// Splits an input into one or two files (see kTwoFileMagic). `second_size` is 0 when the
/// input holds one file.
struct Split {
  const std::uint8_t* first = nullptr;
  std::size_t first_size = 0;
  const std::uint8_t* second = nullptr;
  std::size_t second_size = 0;
};
inline Split split_input(const std::uint8_t* data, std::size_t size) {
  Split s{data, size, nullptr, 0};
  if (size >= sizeof kTwoFileMagic + 4 && std::memcmp(data, kTwoFileMagic, sizeof kTwoFileMagic) == 0) {
    std::uint32_t n = 0;
    std::memcpy(&n, data + sizeof kTwoFileMagic, 4);
    const std::size_t rest = size - sizeof kTwoFileMagic - 4;
    if (n <= rest) {
      s.first = data + sizeof kTwoFileMagic + 4;
      s.first_size = n;
      s.second = s.first + n;
      s.second_size = rest - n;
    }
  }
  return s;
}

}  // namespace shmlink::fuzz
