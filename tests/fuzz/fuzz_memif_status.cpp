// SPDX-License-Identifier: MIT
// libFuzzer target: a memif status file (`<pid>-<k>.memif.shm`, shmlink's own format behind
// `shmlink ls`/`info`/`gc`) written by a hostile co-user of the stream directory, read through
// read_socket_status(), list_socket_status() and the stale-file removal gc uses. The reader maps
// the file read-only: nothing may crash, overflow or read outside the mapping.
#include <shmlink/memif.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& dir = shmlink::fuzz::scratch_dir();
  const std::string path = dir + "/99999-0.memif.shm";
  if (!shmlink::fuzz::write_file(path, data, size)) return 0;
  try {
    (void)shmlink::memif::read_socket_status(path);
  } catch (const shmlink::Error&) {
  }
  try {
    (void)shmlink::memif::list_socket_status(dir);
    // Nobody holds the file's lock: a valid file is stale and removed, an invalid one is kept.
    (void)shmlink::memif::remove_socket_status_if_stale(path);
  } catch (const shmlink::Error&) {
  }
  return 0;
}
