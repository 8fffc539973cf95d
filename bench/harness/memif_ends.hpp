// SPDX-License-Identifier: MIT
/// @file memif_ends.hpp
/// @brief The shmlink and reference ends of `shmlink memif bench` (docs/bench.md): forked
/// children that send frames through one memif queue, or receive them, check their sequence
/// numbers and measure the packet rate. The reference end is a libmemif-style loop (our own
/// code) over the same ring layout, in an anonymous mapping shared by both ends; the DPDK ends
/// (dpdk-testpmd) are started by the command-line layer.
#pragma once

#include <shmlink/memif.hpp>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace shmlink::bench {

/// Which implementation runs one end of a case. `reference` is the libmemif-style loop (both
/// ends in one case; it has no control channel, so it pairs only with itself).
enum class MemifImpl { shmlink, dpdk, reference };

/// What a receiving end reports through its pipe when its window closed.
struct MemifReport {
  double pps = 0;            ///< packets per second over the measured window
  std::uint64_t packets = 0; ///< packets completed in the window
  std::int64_t ns = 0;       ///< window length, ns
  char error[240] = {};      ///< non-empty: what went wrong
};

/// Configuration of a shmlink or reference end.
struct MemifEndConfig {
  memif::Role role = memif::Role::slave;
  bool sender = false;
  std::uint32_t size = 64;          ///< frame bytes
  int cpu = 0;                      ///< the CPU the end is pinned to
  std::string socket;               ///< "@name"
  unsigned log2_ring = 10;          ///< slots per ring, log2
  std::uint32_t buffer_size = 2048; ///< bytes per buffer
  std::uint32_t burst = 32;         ///< packets per alloc/tx_burst and per rx_burst
  double warmup = 0.5;              ///< seconds after the first packet before the window opens
  double duration = 2.0;            ///< seconds of the window
  double link_timeout = 15.0;       ///< seconds to wait for the link and the first packet
  MemifImpl impl = MemifImpl::shmlink;  ///< shmlink or reference
  std::uint8_t* ref_memory = nullptr;   ///< reference: the shared ring + buffers (mapped before fork)
  bool check_seq = true;            ///< receiver: the sender numbers its frames (not testpmd)
};

/// Bytes of the reference's shared ring and buffers (header, descriptors, buffers).
std::size_t memif_reference_bytes(unsigned log2_ring, std::uint32_t buffer_size);

/// One shmlink or reference end: a forked child pinned to its CPU, reporting through a pipe.
/// The destructor stops (SIGTERM) and reaps it.
class MemifEnd {
 public:
  /// Forks the end. @throws Error when pipe2 or fork fails.
  explicit MemifEnd(const MemifEndConfig& c);
  MemifEnd(const MemifEnd&) = delete;
  MemifEnd& operator=(const MemifEnd&) = delete;
  /// Stops the child and closes the pipe.
  ~MemifEnd();
  /// Waits at most `seconds` until the end's interface exists. @return "" or what went wrong.
  std::string wait_ready(double seconds);
  /// Waits at most `seconds` for a receiver's report. @return "" or what went wrong.
  std::string read_report(MemifReport& r, double seconds);
  /// Sends SIGTERM and reaps the child (SIGKILL after 5 s).
  void stop();

 private:
  std::string read_exact(void* p, std::size_t len, double seconds);

  pid_t pid_ = -1;
  int fd_ = -1;
};

}  // namespace shmlink::bench
