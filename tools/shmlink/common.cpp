// SPDX-License-Identifier: MIT
// Exit codes, help texts and error reporting shared by the shmlink subcommands (cli.hpp).
#include "cli.hpp"

#include "output.hpp"

#include <spdlog/spdlog.h>

namespace shmlink::cli {

// ---- exit codes ------------------------------------------------------------------------

int exit_code_for(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return kExitOk;
    case Errc::invalid_argument:
    case Errc::name_too_long: return kExitUsage;
    case Errc::not_found: return kExitNotFound;
    case Errc::permission: return kExitPermission;
    case Errc::layout: return kExitLayout;
    case Errc::timeout: return kExitTimeout;
    // Not Errc::interrupted: an error ends a command with nothing to show. 130 says "stopped,
    // here is what was done", which only `bench stream` returns itself (cmd_bench.cpp).
    default: return kExitFailure;
  }
}

std::string exit_code_help() {
  return "Exit codes:\n"
         "  0    success\n"
         "  1    failure (stream exists: add --force to replace it; no space, I/O error, torn read, an output file\n"
         "       that cannot be written, ...)\n"
         "  2    usage error (bad option, shape, dtype or name; name longer than 79 bytes)\n"
         "  3    stream, queue, memif socket, VILLAS region or directory not found\n"
         "  4    permission denied\n"
         "  5    layout mismatch (not a valid ImageStreamIO 2.00 stream, shmlink queue file or VILLAS region)\n"
         "  124  timed out waiting\n"
         "  130  bench stream interrupted by Ctrl-C, after printing the rows measured so far\n"
         "\n"
         "Streams and queues live in $SHMLINK_DIR, else $MILK_SHM_DIR, else /milk/shm if it exists, else /dev/shm.\n"
         "--json output is one JSON document on stdout with a \"schema_version\" key; diagnostics go to stderr.";
}

std::string program_description() {
  return "shmlink: move data between processes through shared memory, and see what is moving.\n"
         "Three kinds of channel, all found in the stream directory:\n"
         "  streams  ImageStreamIO 2.00 files (NAME.im.shm) that milk, cacao and pyMilk share: the latest frame\n"
         "           or a rolling buffer of frames, keywords, semaphores (ls, info, create, rm, monitor, cat, gc)\n"
         "  queues   lock-free sample queues (NAME.queue.shm; one or many producers) between simulators and\n"
         "           controllers (ls, info, rm, gc)\n"
         "  memif    packet interfaces speaking the memif protocol of VPP, DPDK and libmemif; running processes\n"
         "           publish their state in PID-K.memif.shm (memif responder/ping/bench; ls, info --memif, gc)\n"
         "Regions hold streams and queues side by side in one mapping (NAME.region.shm, or a file on hugetlbfs),\n"
         "reached as PATH:NAME (region create/ls/rm; ls, info, cat, monitor, create). ivshmem-server shares a\n"
         "region with QEMU guests (ivshmem-doorbell) and hands out their doorbells.\n"
         "Also, read-only: the VILLASnode v1.x shmem regions in /dev/shm that villas-node and Interfaces with\n"
         "the villas protocol share (ls, info).\n"
         "bench measures streams, queues and memif against raw floors in one run.\n";
}

std::string subcommand_footer() { return "Exit codes and the stream directory: see `shmlink --help`."; }

int report_error(const Error& e) {
  spdlog::error("{}", shown_message(e.what()));
  return exit_code_for(e.errc());
}

}  // namespace shmlink::cli
