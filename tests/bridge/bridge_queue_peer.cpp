// SPDX-License-Identifier: MIT
// One end of a bridged queue, as a process the tests can kill and restart:
//   bridge_queue_peer send QUEUE ENDPOINT [WINDOW]   (pops QUEUE, connects to ENDPOINT)
//   bridge_queue_peer recv QUEUE ENDPOINT            (binds ENDPOINT, pushes into QUEUE)
// The stream directory is the environment's (SHMLINK_DIR). Runs until SIGTERM/SIGINT; exits 0,
// or 1 with the error on stderr.
#include <shmlink/bridge_queue.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s send|recv QUEUE ENDPOINT [WINDOW]\n", argv[0]);
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const std::string role = argv[1];
  try {
    if (role == "send") {
      shmlink::bridge::QueueSenderOptions o;
      o.queue = argv[2];
      o.endpoint = argv[3];
      if (argc > 4) o.window = static_cast<std::uint32_t>(std::strtoul(argv[4], nullptr, 10));
      auto s = shmlink::bridge::QueueSender::open(o);
      const shmlink::Status st = s.run(g_stop);
      const auto stats = s.stats();
      std::fprintf(stderr, "sender: sent %llu resent %llu acked %llu %s\n",
                   static_cast<unsigned long long>(stats.sent), static_cast<unsigned long long>(stats.resent),
                   static_cast<unsigned long long>(stats.acked), stats.last_problem.c_str());
      return st.ok() ? 0 : 1;
    }
    if (role == "recv") {
      shmlink::bridge::QueueReceiverOptions o;
      o.queue = argv[2];
      o.endpoint = argv[3];
      auto r = shmlink::bridge::QueueReceiver::open(o);
      const shmlink::Status st = r.run(g_stop);
      const auto stats = r.stats();
      std::fprintf(stderr, "receiver: pushed %llu duplicates %llu refused %llu %s\n",
                   static_cast<unsigned long long>(stats.pushed), static_cast<unsigned long long>(stats.duplicates),
                   static_cast<unsigned long long>(stats.refused), stats.last_problem.c_str());
      return st.ok() ? 0 : 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bridge_queue_peer %s: %s\n", role.c_str(), e.what());
    return 1;
  }
  std::fprintf(stderr, "unknown role '%s'\n", role.c_str());
  return 2;
}
