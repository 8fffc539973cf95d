// SPDX-License-Identifier: MIT
/// @file main.cpp
/// @brief `shmlink-vm-pingpong`: round trips between two processes, each on the host or in a VM
/// guest, through a pair of queues in one ivshmem region (docs/vm.md), over a shmlink::Interface
/// whose queues are channels of the region.
///
/// ```
///   ping (host or guest)                           pong (host or guest)
///   write(k, tag(k))    --- queue NAME-ping --->   read: sequence k, values k, tag(k)
///   read: k, ~tag(k)    <--- queue NAME-pong ---   write(k, ~tag(k))
/// ```
///
/// The ping side times every round (CLOCK_MONOTONIC, from its write to the reply read) and checks
/// the reply: sequence k, value 0 = k, value 1 = the bitwise complement of the tag it sent. The pong
/// side checks what it reads (sequence k, value 0 = k, value 1 = tag(k)) before answering. Both wait
/// by polling: futexes do not cross kernels.
#include <shmlink/error.hpp>
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/region.hpp>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: shmlink-vm-pingpong ping|pong REGION [--rounds N] [--name NAME]
                            [--wait polling|hybrid] [--timeout S]
  Round trips through two queues in one region, between the host and a VM guest or between two
  guests that share an ivshmem device. Start one side with ping and the other with pong, on the
  same region and NAME, in either order.
  REGION          the region: ivshmem: (in a guest, the first ivshmem device's memory),
                  ivshmem:DDDD:BB:SS.F (that device), or the region's file on the host (a path,
                  or a name in $SHMLINK_DIR, else /dev/shm, as NAME.region.shm)
  --rounds N      round trips (default 10000); both sides must be given the same N
  --name NAME     the queues are NAME-ping (ping's output) and NAME-pong (default pingpong)
  --wait MODE     polling (default: spin with a pause instruction) or hybrid (spin briefly, then
                  sleep with a back-off up to 50 us: kinder to a busy host, slower)
  --timeout S     the longest wait for the peer to attach and for each reply (default 30 s)
  ping prints "rounds R of N, wrong W; round trip min A us, p50 B us, p99 C us, max D us"; pong
  prints "rounds R of N, wrong W". Exit status 0 when all N rounds carried the right values,
  1 otherwise, 2 on a usage error.
  In a VM guest (REGION ivshmem:...) the figures include the hypervisor; under QEMU's TCG
  emulator they measure the emulation, not the machine, and are not comparable to host figures.
)";

/// The tag of round k: a value that differs in every bit position between rounds.
std::int64_t tag(std::uint64_t k) noexcept {
  return static_cast<std::int64_t>((k + 1) * 0x9E3779B97F4A7C15ULL);
}

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct Options {
  bool ping = true;
  std::string region;
  std::uint64_t rounds = 10000;
  std::string name = "pingpong";
  shmlink::WaitMode wait = shmlink::WaitMode::polling;
  double timeout_s = 30;
};

Options parse(int argc, char** argv) {
  if (argc < 3) throw std::invalid_argument("a role (ping or pong) and a REGION are required");
  Options o;
  const std::string_view role = argv[1];
  if (role != "ping" && role != "pong") throw std::invalid_argument("the role must be ping or pong");
  o.ping = role == "ping";
  o.region = argv[2];
  for (int i = 3; i < argc; i += 2) {
    const std::string_view key = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(std::string(key) + " needs a value");
    const std::string value = argv[i + 1];
    if (key == "--rounds") {
      o.rounds = std::stoull(value);
      if (o.rounds == 0) throw std::invalid_argument("--rounds must be at least 1");
    } else if (key == "--name") {
      o.name = value;
    } else if (key == "--wait") {
      if (value == "polling") o.wait = shmlink::WaitMode::polling;
      else if (value == "hybrid") o.wait = shmlink::WaitMode::hybrid;
      else throw std::invalid_argument("--wait must be polling or hybrid");
    } else if (key == "--timeout") {
      o.timeout_s = std::stod(value);
      if (!(o.timeout_s > 0)) throw std::invalid_argument("--timeout must be positive");
    } else {
      throw std::invalid_argument("unknown option " + std::string(key));
    }
  }
  return o;
}

/// The locator of channel `name` in the region `region` ("ivshmem:" + name for the first device).
std::string channel(const std::string& region, const std::string& name) {
  if (region.starts_with("ivshmem:")) return region == "ivshmem:" ? region + name : region + ":" + name;
  return shmlink::Region::open(region).path() + ":" + name;  // a name becomes its file's path
}

/// Nearest-rank percentile q (0..1) of sorted values, in us.
double percentile_us(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1e3;
}

int run(const Options& o) {
  const std::string ping_q = channel(o.region, o.name + "-ping");
  const std::string pong_q = channel(o.region, o.name + "-pong");
  const auto timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(o.timeout_s));
  shmlink::InterfaceSpec spec;
  spec.out = o.ping ? ping_q : pong_q;
  spec.in = o.ping ? pong_q : ping_q;
  spec.wait = o.wait;
  spec.capacity = 4;  // one sample in flight each way
  spec.attach_timeout = timeout;
  shmlink::Interface iface(spec);
  iface.export_signal(0, "round", shmlink::SignalType::i64);
  iface.export_signal(1, "tag", shmlink::SignalType::i64);
  iface.import_signal(0, "round", shmlink::SignalType::i64);
  iface.import_signal(1, "tag", shmlink::SignalType::i64);
  iface.open();
  const bool guest = o.region.starts_with("ivshmem:");
  std::fprintf(stderr, "vm_pingpong %s: %s <-> %s, %llu rounds, wait %s%s\n", o.ping ? "ping" : "pong",
               spec.out.c_str(), spec.in.c_str(), static_cast<unsigned long long>(o.rounds),
               o.wait == shmlink::WaitMode::polling ? "polling" : "hybrid",
               guest ? "; in a VM guest: the figures include the hypervisor, and under QEMU's TCG emulator they "
                       "measure the emulation (not comparable to host figures)"
                     : "");

  std::vector<std::int64_t> rtt;
  rtt.reserve(o.rounds);
  std::uint64_t done = 0, wrong = 0;
  std::string error;
  shmlink::Sample in;
  in.values.reserve(shmlink::kMaxSampleValues);
  const auto right = [&](std::uint64_t k, std::int64_t want_tag) {
    return in.sequence == k && in.values.size() >= 2 && in.values[0].i == static_cast<std::int64_t>(k) &&
           in.values[1].i == want_tag;
  };
  for (std::uint64_t k = 0; k < o.rounds; ++k) {
    if (o.ping) {
      const shmlink::SignalValue out[2] = {shmlink::SignalValue::of(static_cast<std::int64_t>(k)),
                                           shmlink::SignalValue::of(tag(k))};
      const std::int64_t t0 = monotonic_ns();
      if (auto st = iface.write(std::span<const shmlink::SignalValue>(out), timeout); !st.ok()) {
        error = "writing round " + std::to_string(k) + ": " + st.message();
        break;
      }
      if (auto st = iface.read(in, timeout); !st.ok()) {
        error = "reading the reply of round " + std::to_string(k) + ": " + st.message();
        break;
      }
      rtt.push_back(monotonic_ns() - t0);
      if (!right(k, ~tag(k))) ++wrong;
    } else {
      if (auto st = iface.read(in, timeout); !st.ok()) {
        error = "reading round " + std::to_string(k) + ": " + st.message();
        break;
      }
      if (!right(k, tag(k))) ++wrong;
      const shmlink::SignalValue out[2] = {shmlink::SignalValue::of(static_cast<std::int64_t>(k)),
                                           shmlink::SignalValue::of(~tag(k))};
      if (auto st = iface.write(std::span<const shmlink::SignalValue>(out), timeout); !st.ok()) {
        error = "answering round " + std::to_string(k) + ": " + st.message();
        break;
      }
    }
    ++done;
  }
  if (!o.ping && error.empty()) {
    // Keep the queues until ping has read the last reply: its close is the signal.
    const shmlink::Status st = iface.read(in, timeout);
    if (st.code() != shmlink::Errc::shut_down)
      error = std::string("after the last round, expected the ping side's close, got: ") + st.message();
  }
  iface.close();
  if (!error.empty()) std::fprintf(stderr, "vm_pingpong %s: %s\n", o.ping ? "ping" : "pong", error.c_str());
  std::printf("vm_pingpong %s: rounds %llu of %llu, wrong %llu", o.ping ? "ping" : "pong",
              static_cast<unsigned long long>(done), static_cast<unsigned long long>(o.rounds),
              static_cast<unsigned long long>(wrong));
  if (o.ping) {
    std::sort(rtt.begin(), rtt.end());
    std::printf("; round trip min %.2f us, p50 %.2f us, p99 %.2f us, max %.2f us%s", percentile_us(rtt, 0),
                percentile_us(rtt, 0.5), percentile_us(rtt, 0.99), percentile_us(rtt, 1),
                guest ? " (in a VM guest: emulation under TCG)" : "");
  }
  std::printf("\n");
  return error.empty() && done == o.rounds && wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlink-vm-pingpong: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {  // open: no region, no device, no peer within --timeout
    std::fprintf(stderr, "shmlink-vm-pingpong: %s\n", e.what());
    return 1;
  }
}
