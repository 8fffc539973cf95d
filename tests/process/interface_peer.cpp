// SPDX-License-Identifier: MIT
// The peer program of interface_process_test: launched through InterfaceSpec::exec (queue names
// from SHMLINK_INTERFACE_IN / SHMLINK_INTERFACE_OUT) or by hand with the names as arguments.
//
//   interface_peer echo [OUT IN]   read x (index 0), send 2x (index 0) until the peer closes
//   interface_peer crash K         echo K samples, then SIGKILL itself
//   interface_peer exit CODE       exit at once with CODE (never attaches)
//   interface_peer sleep           sleep 60 s (never attaches)
//   interface_peer stubborn        attach, ignore SIGTERM, never read (close must SIGKILL it)
//   interface_peer --villas MODE ...  any mode above over InterfaceProtocol::villas (the names are
//                                  then POSIX shared-memory names, as villas-node's)
//
// Exit codes: 0 the peer closed cleanly; 3 bad usage; 4 the peer died; 5 timed out; 6 write
// failed; 7 open failed.
#include <shmlink/interface.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

int run(const std::string& mode, int argc, char** argv, bool villas) {
  shmlink::InterfaceSpec spec;
  if (villas) spec.protocol = shmlink::InterfaceProtocol::villas;
  spec.out = env("SHMLINK_INTERFACE_OUT");
  spec.in = env("SHMLINK_INTERFACE_IN");
  if (mode == "echo" && argc >= 4) {
    spec.out = argv[2];
    spec.in = argv[3];
  }
  const long crash_after = mode == "crash" && argc >= 3 ? std::atol(argv[2]) : -1;
  shmlink::Interface iface(spec);
  iface.export_signal(0, "y", shmlink::SignalType::f64, "V");
  iface.import_signal(0, "x", shmlink::SignalType::f64);
  try {
    iface.open();
  } catch (const shmlink::Error& e) {
    std::fprintf(stderr, "interface_peer: %s\n", e.what());
    return 7;
  }
  if (mode == "stubborn") {
    for (;;) std::this_thread::sleep_for(1s);
  }
  shmlink::Sample s;
  for (long n = 0;; ++n) {
    if (n == crash_after) ::raise(SIGKILL);
    const shmlink::Status st = iface.read(s, 20s);
    if (st.code() == shmlink::Errc::shut_down) return 0;
    if (st.code() == shmlink::Errc::peer_exited) return 4;
    if (!st.ok()) return 5;
    const shmlink::SignalValue y = shmlink::SignalValue::of(2 * s.values.at(0).f);
    if (!iface.write(std::span(&y, 1), 20s).ok()) return 6;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool villas = argc >= 2 && std::string(argv[1]) == "--villas";
  if (villas) {
    --argc;
    ++argv;
  }
  if (argc < 2) return 3;
  const std::string mode = argv[1];
  if (mode == "exit") return argc >= 3 ? std::atoi(argv[2]) : 0;
  if (mode == "sleep") {
    std::this_thread::sleep_for(60s);
    return 0;
  }
  if (mode != "echo" && mode != "crash" && mode != "stubborn") return 3;
  if (mode == "stubborn") ::signal(SIGTERM, SIG_IGN);  // from the start: only SIGKILL stops it
  return run(mode, argc, argv, villas);
}
