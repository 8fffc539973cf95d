// SPDX-License-Identifier: MIT
// The writer side of the memif status segment (layout: status_layout.hpp; readers:
// read_socket_status() in status.cpp; docs/design/memif.md "Status segment"). Internal.
//
// One StatusWriter per memif::Socket. It is used only by the socket's control thread (the one
// that calls Socket::poll and the Socket/Interface setup functions): every record has exactly
// one writer, which the seqlock protocol requires.
#pragma once

#include "memif/status_layout.hpp"

#include <shmlink/segment.hpp>

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shmlink::memif::detail {

/// Creates, updates and removes one status file.
class StatusWriter {
 public:
  StatusWriter() = default;
  StatusWriter(const StatusWriter&) = delete;
  StatusWriter& operator=(const StatusWriter&) = delete;
  /// Removes the file (close()).
  ~StatusWriter();

  /// Creates `<directory>/<pid>-<k>.memif.shm` (k: a per-process counter; taken names are
  /// skipped): built under a temporary name `.<name>.XXXXXX` in the same directory, locked
  /// (flock LOCK_EX, held until close), filled, `version` stored last (release), then renamed
  /// into place. Never throws: when the directory is missing or not writable, the reason is
  /// logged (warn the first time in this process, debug after) and false returned.
  /// @param socket socket display name (an absolute path or @name); @param app application name;
  /// @param role the socket's role (status::kRole*), in the header from the start.
  bool open(const std::string& directory, std::string_view socket, std::string_view app, std::uint8_t role) noexcept;
  /// True while a file is published.
  [[nodiscard]] bool is_open() const noexcept { return seg_.valid(); }
  /// The file's path ("" when none).
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Removes and closes the file (only in the process that created it: a forked child that
  /// destroys its copy of a socket leaves the parent's file alone). No-op when none.
  void close() noexcept;

  /// Stores the socket's role (status::kRole*), relaxed: a display value with nothing behind it.
  void set_role(std::uint8_t role) noexcept;
  /// Stores the number of interfaces without a record.
  void set_overflow(std::uint32_t count) noexcept;
  /// Takes a free record; -1 when all `capacity` are taken. Raises `used` (release) past it.
  int acquire() noexcept;
  /// Frees record `slot` (writes in_use = 0 under the seqlock).
  void release(int slot) noexcept;
  /// Writes record `slot` under its seqlock (see status_layout.hpp); `record.seq` is ignored.
  void write(int slot, const status::InterfaceRecord& record) noexcept;

 private:
  [[nodiscard]] std::uint8_t* record_at(int slot) const noexcept;
  Segment seg_;
  std::string path_;
  pid_t owner_ = 0;
  std::vector<bool> taken_;
};

/// Copies `text` into the fixed field `dst` of `size` bytes, truncated, NUL-terminated and
/// NUL-padded.
void copy_field(char* dst, std::size_t size, std::string_view text) noexcept;

}  // namespace shmlink::memif::detail
