// SPDX-License-Identifier: MIT
// Test helpers that make and write stream files the way ImageStreamIO 2.00 itself does, written
// from the ISIO rules (file chunk order and rounding, ImageStreamIO_createIm's steps, the writer
// order of ImageStreamIO_writeIndex + UpdateIm), independently of the shmlink library: the raw
// bytes a milk process leaves in the file, for tests that check shmlink against them.
#pragma once

#include "test_util.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

namespace shmlink::test {

/// What ImageStreamIO_createIm is asked for (CBsize 0, CPU location).
struct IsioSpec {
  std::uint8_t naxis = 2;
  std::uint32_t size[3] = {1, 1, 0};
  std::uint8_t datatype = 5;        ///< ISIO code (5 = uint32)
  std::size_t element_bytes = 4;    ///< bytes of one element of `datatype`
  std::uint64_t imagetype = 0x2;    ///< MATH_DATA
  std::uint16_t semaphores = 10;
  std::uint16_t keywords = 0;
};

/// A stream file created and mapped as ImageStreamIO_createIm does it (reference section 9):
/// zero-filled, metadata, every semaphore sem_init'ed process-shared with value 0 (semlog left
/// zero), semReadPID = semWritePID = -1, proc traces with trigsemindex -1, keywords 'N', the
/// version written last. The mapping stays until destruction; the file stays.
class IsioFile {
 public:
  IsioFile(const std::string& path, const IsioSpec& spec) : spec_(spec) {
    std::uint64_t n = 1;
    for (std::size_t i = 0; i < spec.naxis; ++i) n *= spec.size[i];
    data_bytes_ = n * spec.element_bytes;
    const bool temporal = spec.naxis == 3 && (spec.imagetype & 0xF000F) == 0x20001;
    off_ = isio_offsets(data_bytes_, spec.keywords, spec.semaphores, spec.naxis == 3 ? spec.size[2] : 0, temporal);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) throw std::runtime_error("creating " + path);
    if (::ftruncate(fd, static_cast<off_t>(off_.file_size)) != 0) throw std::runtime_error("sizing " + path);
    void* p = ::mmap(nullptr, off_.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct stat st {};
    ::fstat(fd, &st);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("mapping " + path);
    base_ = static_cast<char*>(p);
    const std::string name = path.substr(path.rfind('/') + 1, path.size() - path.rfind('/') - 1 - 7);
    std::memcpy(base_ + 32, name.data(), std::min<std::size_t>(name.size(), 79));
    base_[112] = static_cast<char>(spec.naxis);
    std::memcpy(base_ + 116, spec.size, 12);
    put<std::uint64_t>(128, n);
    base_[136] = static_cast<char>(spec.datatype);
    put<std::uint64_t>(144, spec.imagetype);
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    put(152, now);  // creationtime
    put(168, now);  // lastaccesstime
    put<std::int32_t>(216, ::getpid());
    base_[224] = 1;  // shared
    put<std::uint64_t>(232, st.st_ino);
    base_[240] = -1;  // location: CPU
    put<std::uint16_t>(258, spec.semaphores);
    put<std::uint16_t>(260, 10);  // NBproctrace
    put<std::uint16_t>(290, spec.keywords);
    put<std::uint64_t>(312, data_bytes_);
    for (std::size_t i = 0; i < spec.keywords; ++i) base_[off_.keywords + 128 * i + 16] = 'N';
    for (std::size_t i = 0; i < spec.semaphores; ++i) {
      ::sem_init(sem(i), 1, 0);
      put<std::int32_t>(off_.sem_read_pid + 4 * i, -1);
      put<std::int32_t>(off_.sem_write_pid + 4 * i, -1);
    }
    for (std::size_t i = 0; i < 10; ++i) put<std::int32_t>(off_.proc_trace + 64 * i + 48, -1);
    std::memcpy(base_, "2.00", 4);  // the version last: "ready"
  }
  IsioFile(const IsioFile&) = delete;
  IsioFile& operator=(const IsioFile&) = delete;
  ~IsioFile() { ::munmap(base_, off_.file_size); }

  /// Bytes of one slice of a 3-axis stream (of the whole data area otherwise).
  [[nodiscard]] std::size_t slice_bytes() const {
    return spec_.naxis == 3 ? data_bytes_ / spec_.size[2] : data_bytes_;
  }
  /// One update as a milk writer makes it with ImageStreamIO (reference 11.1): write = 1; for a
  /// rolling buffer (3 axes, imagetype & 0xF == CIRCULAR_BUFFER) the frame goes to slice
  /// ImageStreamIO_writeIndex() = (cnt1 + 1) % size[2] and cnt1 becomes that slice, otherwise the
  /// frame is the data area; then UpdateIm: writetime, atime, cnt0 += 1, write = 0, post every
  /// semaphore below 10 and semlog (glibc's sem_post, as ISIO). ISIO 2.00 uses plain stores and
  /// no fences; compiler barriers keep the steps in this order, the order an x86 (TSO) CPU then
  /// makes visible to a concurrent reader in another process.
  void write_frame(std::span<const std::byte> frame) {
    base_[288] = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const bool rolling = spec_.naxis == 3 && (spec_.imagetype & 0xF) == 1;
    std::uint64_t slice = 0;
    if (rolling) slice = (get<std::uint64_t>(272) + 1) % spec_.size[2];
    std::memcpy(base_ + off_.data + slice * slice_bytes(), frame.data(), frame.size());
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (rolling) put<std::uint64_t>(272, slice);
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    put(200, now);  // writetime
    put(184, now);  // atime
    std::atomic_signal_fence(std::memory_order_seq_cst);
    put<std::uint64_t>(264, get<std::uint64_t>(264) + 1);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    base_[288] = 0;
    for (std::size_t i = 0; i < spec_.semaphores; ++i) {
      int v = 0;
      ::sem_getvalue(sem(i), &v);
      if (v < 10) {
        ::sem_post(sem(i));
        put<std::int32_t>(off_.sem_write_pid + 4 * i, ::getpid());
      }
    }
  }
  /// The newest frame as ImageStreamIO's reader finds it: slice ImageStreamIO_readLastWroteIndex()
  /// (cnt1 for a rolling buffer, else 0).
  [[nodiscard]] std::span<const std::byte> newest_frame() const {
    const bool rolling = spec_.naxis == 3 && (spec_.imagetype & 0xF) == 1;
    const std::uint64_t slice = rolling ? get<std::uint64_t>(272) : 0;
    return {reinterpret_cast<const std::byte*>(base_ + off_.data + slice * slice_bytes()), slice_bytes()};
  }

  template <class T>
  [[nodiscard]] T get(std::size_t offset) const {
    T v;
    std::memcpy(&v, base_ + offset, sizeof v);
    return v;
  }
  template <class T>
  void put(std::size_t offset, const T& v) {
    std::memcpy(base_ + offset, &v, sizeof v);
  }
  [[nodiscard]] sem_t* sem(std::size_t i) const { return reinterpret_cast<sem_t*>(base_ + off_.semaphores + 32 * i); }
  [[nodiscard]] const IsioOffsets& offsets() const { return off_; }
  [[nodiscard]] std::uint64_t cnt0() const { return get<std::uint64_t>(264); }
  [[nodiscard]] std::uint64_t cnt1() const { return get<std::uint64_t>(272); }

 private:
  IsioSpec spec_;
  IsioOffsets off_{};
  std::uint64_t data_bytes_ = 0;
  char* base_ = nullptr;
};

}  // namespace shmlink::test
