// SPDX-License-Identifier: MIT
// Guest program of the UIO driver test (vm_uio_test.cpp): opens the first ivshmem device with
// Bar::open("ivshmem:"), checks that BAR2 holds TEXT at its start and at its end (the whole BAR
// is mapped), then writes REPLY at offset 4096 for the host to read.
//
//   shmlink_vm_bar_guest TEXT REPLY
//
// Exit status: 0 ok, 2 usage, 3 Bar::open failed, 4 BAR2 too small, 5 TEXT missing at the start,
// 6 TEXT missing at the end. Says what it saw on stdout (the serial log).
#include <shmlink/ivshmem.hpp>

#include <cstdio>
#include <cstring>
#include <span>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: shmlink_vm_bar_guest TEXT REPLY\n");
    return 2;
  }
  const std::string text = argv[1];
  const std::string reply = argv[2];
  auto bar = shmlink::ivshmem::Bar::open("ivshmem:");
  if (!bar) {
    std::printf("bar-guest: %s\n", bar.error().what());
    return 3;
  }
  const std::span<std::byte> mem = bar->memory();
  std::printf("bar-guest: BAR2 of %zu bytes, IVPosition %d\n", mem.size(), static_cast<int>(bar->iv_position()));
  if (mem.size() < 4096 + reply.size() || mem.size() < 2 * text.size()) return 4;
  if (std::memcmp(mem.data(), text.data(), text.size()) != 0) return 5;
  if (std::memcmp(mem.data() + mem.size() - text.size(), text.data(), text.size()) != 0) return 6;
  std::memcpy(mem.data() + 4096, reply.data(), reply.size());
  std::printf("bar-guest: read the host's text at both ends, wrote the reply\n");
  return 0;
}
