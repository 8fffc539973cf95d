// SPDX-License-Identifier: MIT
/// @file main.cpp
/// @brief `shmlink-villas-echo`: a VILLASnode-compatible shmem peer that sends every sample it
/// reads straight back, as VILLASnode's own echo client (`villas-shmem`) does, over a
/// shmlink::Interface whose protocol is InterfaceProtocol::villas.
///
/// ```
///   villas-node (or any shmem peer)             shmlink-villas-echo
///   out.name = /echo-in   --- region /echo-in  --->  read(sample)
///   in.name  = /echo-out  <-- region /echo-out ----  write(same sample)
/// ```
///
/// Each sample keeps its sequence number, origin timestamp, flags and values; the received
/// timestamp is this side's. It runs until `--count` samples were echoed or the peer closes
/// (or dies, or is silent for `--timeout`), then prints one line: how many samples, and the
/// first and last sequence numbers.
#include <pthread.h>
#include <signal.h>

#include <shmlink/error.hpp>
#include <shmlink/interface.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/villas.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr const char* kUsage = R"(usage: shmlink-villas-echo [--in NAME] [--out NAME] [--mode pthread|polling]
                           [--queuelen N] [--samplelen N] [--count N] [--timeout S]
  Opens a VILLASnode shmem pair (the protocol of villas-node's `shmem` node type, v1.x) and sends
  every sample it reads back unchanged (sequence, origin timestamp, flags, values).
  --in NAME       the peer's output region, as the peer's out.name ("/villas-out"; a missing
                  leading '/' is added). Default: $SHMLINK_INTERFACE_IN (set when a shmlink
                  Interface launches this program through InterfaceSpec::exec)
  --out NAME      this side's output region (the peer's in.name). Default:
                  $SHMLINK_INTERFACE_OUT
  --mode M        pthread (default: the peer is woken through the region's condition variable)
                  or polling (the peer spins), as VILLASnode's `mode`
  --queuelen N    samples the output region holds (VILLASnode's queuelen), a power of two;
                  default 512
  --samplelen N   values per sample of the output region; default 64
  --count N       stop after N samples (default: until the peer closes)
  --timeout S     the longest wait for the peer to attach and for each sample, in seconds
                  (default 30; 0: no limit)
  Prints one line at the end: "villas-echo: echoed N samples, sequences F..L; <why it stopped>".
  Exit status: 0 when --count samples were echoed or the peer closed; 1 on an error (the peer
  died, a region failed a check); 2 on a usage error, also when the peer's blocks hold more
  values than this side's (--samplelen); 124 when the peer was silent for --timeout; 130 when stopped by
  SIGINT or SIGTERM (also while waiting for the peer to attach).
)";

constexpr int kExitUsage = 2;
constexpr int kExitTimeout = 124;
constexpr int kExitInterrupted = 130;

/// How long one read waits before looking at g_stop again.
constexpr auto kStopPoll = std::chrono::milliseconds(100);

/// Set by SIGINT/SIGTERM: stop reading, close the interface (which removes this side's region).
volatile std::sig_atomic_t g_stop = 0;

/// Signal handler: only records the request.
extern "C" void on_stop_signal(int /*signal*/) { g_stop = 1; }

/// The command line.
struct Options {
  std::string in;                  ///< the peer's region
  std::string out;                 ///< this side's region
  bool polling = false;            ///< --mode polling
  std::uint32_t queuelen = 512;    ///< --queuelen
  std::uint32_t samplelen = 64;    ///< --samplelen
  std::uint64_t count = 0;         ///< --count; 0: until the peer closes
  double timeout_s = 30;           ///< --timeout; 0: no limit
};

/// Parses a whole number in [low, high]; throws std::invalid_argument naming `what`.
std::uint64_t whole(const std::string& text, const char* what, std::uint64_t low, std::uint64_t high) {
  std::size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || text.front() == '-' || used != text.size() || value < low || value > high) {
    throw std::invalid_argument(std::string(what) + " must be a whole number from " + std::to_string(low) + " to " +
                                std::to_string(high) + ", got '" + text + "'");
  }
  return value;
}

/// The value of environment variable `name`, or "" when unset.
std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

/// Parses argv; throws std::invalid_argument on a mistake. `help` is set for --help.
Options parse(int argc, char** argv, bool& help) {
  Options o;
  o.in = env("SHMLINK_INTERFACE_IN");
  o.out = env("SHMLINK_INTERFACE_OUT");
  for (int i = 1; i < argc; ++i) {
    const std::string_view key = argv[i];
    if (key == "-h" || key == "--help") {
      help = true;
      return o;
    }
    if (i + 1 >= argc) throw std::invalid_argument("unknown option or missing value: '" + std::string(key) + "'");
    const std::string value = argv[++i];
    if (key == "--in") {
      o.in = value;
    } else if (key == "--out") {
      o.out = value;
    } else if (key == "--mode") {
      if (value != "pthread" && value != "polling") {
        throw std::invalid_argument("--mode must be pthread or polling, got '" + value + "'");
      }
      o.polling = value == "polling";
    } else if (key == "--queuelen") {
      o.queuelen = static_cast<std::uint32_t>(whole(value, "--queuelen", 2, shmlink::kMaxQueueCapacity));
    } else if (key == "--samplelen") {
      o.samplelen = static_cast<std::uint32_t>(whole(value, "--samplelen", 1, shmlink::kMaxSampleValues));
    } else if (key == "--count") {
      o.count = whole(value, "--count", 1, UINT64_MAX);
    } else if (key == "--timeout") {
      char* end = nullptr;
      o.timeout_s = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(o.timeout_s >= 0 && o.timeout_s <= 86400)) {
        throw std::invalid_argument("--timeout must be a number of seconds from 0 to 86400, got '" + value + "'");
      }
    } else {
      throw std::invalid_argument("unknown option '" + std::string(key) + "'");
    }
  }
  if (o.in.empty() || o.out.empty()) {
    throw std::invalid_argument("--in and --out are needed (or SHMLINK_INTERFACE_IN and SHMLINK_INTERFACE_OUT)");
  }
  return o;
}

/// What the echo loop did.
struct Echoed {
  std::uint64_t samples = 0;  ///< samples sent back
  std::uint64_t first = 0;    ///< sequence of the first
  std::uint64_t last = 0;     ///< sequence of the last
  std::string why;            ///< why it stopped, in words
  int status = 0;             ///< exit status
};

/// `s` as short text ("30", "0.5").
std::string seconds_text(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", s);
  return text;
}

/// Reads the peer's next sample, waiting at most `timeout_s` (0: no limit) in slices of
/// kStopPoll so that SIGINT/SIGTERM is honoured. Returns what Interface::read returned last.
shmlink::Status receive(shmlink::Interface& iface, shmlink::Sample& sample, double timeout_s) {
  const auto start = std::chrono::steady_clock::now();
  const auto limit = std::chrono::duration<double>(timeout_s);
  for (;;) {
    const shmlink::Status status = iface.read(sample, kStopPoll);
    if (status.code() != shmlink::Errc::timeout || g_stop != 0) return status;
    if (timeout_s > 0 && std::chrono::steady_clock::now() - start >= limit) return status;
  }
}

/// iface.open(), ended by SIGINT/SIGTERM: open() gives up its wait for the peer with
/// Errc::interrupted when a signal interrupts it, but a signal that lands just before the wait
/// only sets g_stop. A helper thread (signals blocked) re-sends the signal to this thread every
/// kStopPoll once g_stop is set, until open() returns. @throws shmlink::Error as open().
void open_interruptibly(shmlink::Interface& iface) {
  const pthread_t self = ::pthread_self();
  std::atomic<bool> done{false};
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t before;
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &before);  // the helper inherits the block
  std::thread nudger([&] {
    while (!done.load(std::memory_order_acquire)) {
      if (g_stop != 0) ::pthread_kill(self, SIGTERM);
      std::this_thread::sleep_for(kStopPoll);
    }
  });
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  const auto stop_nudger = [&] {
    done.store(true, std::memory_order_release);
    nudger.join();
  };
  try {
    iface.open();
  } catch (...) {
    stop_nudger();
    throw;
  }
  stop_nudger();
}

/// Opens the pair, echoes, closes. Set-up errors propagate as shmlink::Error.
Echoed echo(const Options& o) {
  shmlink::InterfaceSpec spec;
  spec.protocol = shmlink::InterfaceProtocol::villas;
  spec.in = o.in;
  spec.out = o.out;
  spec.capacity = o.queuelen;
  spec.max_values = o.samplelen;
  spec.wait = o.polling ? shmlink::WaitMode::polling : shmlink::WaitMode::hybrid;
  const auto timeout = o.timeout_s > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::duration<double>(o.timeout_s))
                                       : shmlink::kForever;
  spec.attach_timeout = timeout;
  shmlink::Interface iface(spec);
  open_interruptibly(iface);
  // A peer whose blocks hold more values than ours could send a sample we cannot echo unchanged.
  // Both regions round their blocks up to 64 bytes, so capacities are compared, not samplelens.
  const std::uint32_t ours = shmlink::villas::inspect_file(o.out).sample_capacity;
  if (iface.in_max_values() > ours) {
    const std::string why = "the peer's region '" + o.in + "' holds samples of up to " +
                            std::to_string(iface.in_max_values()) + " values, more than the " + std::to_string(ours) +
                            " of ours (--samplelen " + std::to_string(o.samplelen) + "); start the echo with --samplelen " +
                            std::to_string(iface.in_max_values());
    iface.close();
    throw shmlink::Error(shmlink::Errc::invalid_argument, why);
  }

  Echoed r;
  shmlink::Sample sample;
  sample.values.reserve(o.samplelen);
  while (o.count == 0 || r.samples < o.count) {
    const shmlink::Status got = receive(iface, sample, o.timeout_s);
    if (!got.ok()) {
      switch (got.code()) {
        case shmlink::Errc::shut_down: r.why = "the peer closed"; break;
        case shmlink::Errc::timeout:
          r.why = g_stop != 0 ? "stopped by a signal" : "nothing from the peer for " + seconds_text(o.timeout_s) + " s";
          r.status = g_stop != 0 ? kExitInterrupted : kExitTimeout;
          break;
        case shmlink::Errc::interrupted:
          r.why = "stopped by a signal";
          r.status = kExitInterrupted;
          break;
        case shmlink::Errc::peer_exited:
          r.why = iface.peer().describe();
          r.status = 1;
          break;
        default:
          r.why = std::string("reading: ") + got.message();
          r.status = 1;
          break;
      }
      break;
    }
    const shmlink::Status sent = iface.write(sample, timeout);
    if (!sent.ok()) {
      r.why = "writing sequence " + std::to_string(sample.sequence) + ": " + std::string(sent.message());
      r.status = sent.code() == shmlink::Errc::timeout       ? kExitTimeout
                 : sent.code() == shmlink::Errc::interrupted ? kExitInterrupted
                                                             : 1;
      break;
    }
    if (r.samples == 0) r.first = sample.sequence;
    r.last = sample.sequence;
    ++r.samples;
  }
  if (r.why.empty()) r.why = "--count reached";
  iface.close();  // after its samples were read: our close drains before it marks the region stopped
  return r;
}

}  // namespace

/// Parses the command line, echoes, prints the summary.
int main(int argc, char** argv) {
  bool help = false;
  Options o;
  try {
    o = parse(argc, argv, help);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "shmlink-villas-echo: %s\n\n%s", e.what(), kUsage);
    return kExitUsage;
  }
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  try {
    const Echoed r = echo(o);
    if (r.samples == 0) {
      std::printf("villas-echo: echoed 0 samples; %s\n", r.why.c_str());
    } else {
      std::printf("villas-echo: echoed %llu samples, sequences %llu..%llu; %s\n",
                  static_cast<unsigned long long>(r.samples), static_cast<unsigned long long>(r.first),
                  static_cast<unsigned long long>(r.last), r.why.c_str());
    }
    return r.status;
  } catch (const shmlink::Error& e) {  // open(): bad names, no peer in time, a region that fails a check, a signal
    std::fprintf(stderr, "shmlink-villas-echo: %s\n", e.what());
    switch (e.errc()) {
      case shmlink::Errc::timeout: return kExitTimeout;
      case shmlink::Errc::interrupted: return kExitInterrupted;  // SIGINT/SIGTERM while waiting for the peer
      case shmlink::Errc::invalid_argument: return kExitUsage;
      default: return 1;
    }
  }
}
