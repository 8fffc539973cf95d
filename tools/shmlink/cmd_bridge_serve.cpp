// SPDX-License-Identifier: MIT
// `shmlink bridge serve`: runs the bridge service of this host (include/shmlink/bridge_service.hpp;
// docs/bridge.md) until SIGINT or SIGTERM, and logs its peers' links as they change.
#include "cli.hpp"

#include <shmlink/bridge_service.hpp>
#include <shmlink_tools/signals.hpp>

#include <spdlog/spdlog.h>

#include <signal.h>

#include <atomic>
#include <charconv>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace shmlink::cli {

namespace {

volatile sig_atomic_t g_bridge_stop = 0;

void bridge_stop_signal(int) { g_bridge_stop = 1; }

struct ServeArgs {
  bridge::ServiceOptions o;
  bool no_multicast = false;
  double idle_s = 30;
  unsigned heartbeat_ms = 1000;
  std::string data_ports;
  std::string keys;
};

/// "LO-HI" -> the options' data port range. @throws Error invalid_argument naming the option.
void parse_data_ports(const std::string& text, bridge::ServiceOptions& o) {
  const auto dash = text.find('-');
  unsigned lo = 0, hi = 0;
  const char* end = text.data() + text.size();
  bool ok = dash != std::string::npos;
  if (ok) {
    auto a = std::from_chars(text.data(), text.data() + dash, lo);
    auto b = std::from_chars(text.data() + dash + 1, end, hi);
    ok = a.ec == std::errc() && a.ptr == text.data() + dash && b.ec == std::errc() && b.ptr == end && lo >= 1 &&
         lo <= hi && hi <= 65535;
  }
  if (!ok) throw Error(Errc::invalid_argument, "bridge serve: --data-ports '" + text + "' is not LO-HI (ports 1..65535, LO <= HI)");
  o.data_port_first = static_cast<std::uint16_t>(lo);
  o.data_port_last = static_cast<std::uint16_t>(hi);
}

int run_serve(ServeArgs& a) {
  bridge::ServiceOptions& o = a.o;
  o.multicast = !a.no_multicast;
  o.keys.directory = a.keys;
  o.idle = std::chrono::milliseconds(static_cast<long>(a.idle_s * 1000));
  o.timing.heartbeat = std::chrono::milliseconds(a.heartbeat_ms);
  o.timing.link_timeout = 4 * o.timing.heartbeat;
  if (!a.data_ports.empty()) parse_data_ports(a.data_ports, o);
  // Before the service starts: once its control socket answers, a SIGTERM must stop it cleanly.
  const tools::SignalHandlers signals(bridge_stop_signal, {SIGINT, SIGTERM});
  bridge::Service service(o);
  spdlog::info("bridge service '{}' on port {} ({} listed peer{}{}{}), control socket {}", service.name(), service.port(),
               o.peers.size(), o.peers.size() == 1 ? "" : "s", o.keys.directory.empty() ? "" : ", CURVE keys in " + o.keys.directory,
               o.multicast ? ", multicast discovery in domain '" + o.domain + "'" : std::string(), service.control_socket());
  if (const std::string why = service.last_error(); !why.empty()) spdlog::warn("{}", why);
  std::map<std::string, bool> links;
  std::map<std::string, std::string> problems;
  while (g_bridge_stop == 0) {
    for (const bridge::PeerStatus& p : service.peers()) {
      auto [it, fresh] = links.emplace(p.endpoint, false);
      if (it->second != p.link_up || (fresh && p.link_up)) {
        if (p.link_up) spdlog::info("peer '{}' ({}) is up, {} channel{}", p.node, p.endpoint, p.channels, p.channels == 1 ? "" : "s");
        else spdlog::warn("peer '{}' ({}) is down (its catalogue is kept)", p.node, p.endpoint);
      }
      it->second = p.link_up;
      const auto pit = problems.emplace(p.endpoint, std::string()).first;
      if (p.problem != pit->second && !p.problem.empty())
        spdlog::warn("peer {}: {}", p.endpoint, p.problem);  // a failed handshake, said once per change
      pit->second = p.problem;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  spdlog::info("bridge service '{}': stopping (signal)", service.name());
  service.stop();
  return kExitOk;
}

}  // namespace

Command add_bridge_serve_command(CLI::App& bridge) {
  CLI::App* sub = bridge.add_subcommand(
      "serve", "Run the bridge service of this host until SIGINT or SIGTERM: serve this stream directory's channels to "
               "peer services and keep replicas of theirs that local programs open (docs/bridge.md)");
  auto a = std::make_shared<ServeArgs>();
  sub->add_option("--name", a->o.name, "Node name of this service (default: the host name)");
  sub->add_option("--port", a->o.port, "TCP port peers connect to (0: an ephemeral port)")->capture_default_str();
  sub->add_option("--peer", a->o.peers,
                  "A peer service, [NODE@]HOST:PORT (repeat for several); with --keys, NODE names its key peers/NODE.pub "
                  "(without NODE each trusted key is tried in turn)");
  sub->add_option("--bind", a->o.bind, "Address to bind the service port and the streams' data ports to")->capture_default_str();
  sub->add_option("--allow", a->o.allow, "Offer only local channels whose name starts with PREFIX (repeatable; default: all)");
  sub->add_flag("--read-only", a->o.read_only, "Refuse writes that replicas send back into local streams, and bridging local queues");
  sub->add_option("--keys", a->keys,
                  "Directory of CURVE keys: NODE.key (this node's, mode 0600) and peers/*.pub (the nodes trusted); every "
                  "connection is then encrypted and authenticated (docs/bridge.md, Keys)");
  sub->add_flag("--spin", a->o.spin, "Stream threads spin instead of futex waits (lower latency, a core each)");
  sub->add_option("--domain", a->o.domain, "Discovery domain: only services of the same domain find each other")
      ->capture_default_str();
  sub->add_flag("--no-multicast", a->no_multicast, "No multicast discovery (UDP beacons): listed peers only");
  sub->add_option("--discovery-port", a->o.discovery_port, "UDP port of the discovery beacons")->capture_default_str();
  sub->add_option("--idle", a->idle_s, "Seconds after which a replica no process maps is dropped (unless kept)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1e6));
  sub->add_option("--heartbeat-ms", a->heartbeat_ms, "Heartbeat period between services and streams, ms (link timeout: 4x)")
      ->capture_default_str()
      ->check(CLI::Range(10u, 60000u));
  sub->add_option("--data-ports", a->data_ports, "Ports LO-HI for the publishers of streams and senders of queues (default: ephemeral ports)");
  sub->add_option("--dir", a->o.directory, "Stream directory served (default: $SHMLINK_DIR, $MILK_SHM_DIR, /milk/shm, /dev/shm)");
  return {sub, [a]() -> int { return run_serve(*a); }};
}

}  // namespace shmlink::cli
