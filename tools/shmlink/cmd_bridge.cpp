// SPDX-License-Identifier: MIT
// `shmlink bridge`: the per-host bridge service and its clients (docs/bridge.md). The group lives
// here; `serve` is in cmd_bridge_serve.cpp, `keygen` in cmd_bridge_keys.cpp, and the clients of a
// running service (ping, ls, status, want, release) talk to it over its control socket
// (src/remote/control_protocol.hpp).
#include "cli.hpp"

#include <memory>
#include <vector>

namespace shmlink::cli {

Command add_bridge_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "bridge", "Streams and queues across machines: the per-host service (serve), its keys (keygen) and its clients");
  sub->require_subcommand(1);
  auto subs = std::make_shared<std::vector<Command>>();
  subs->push_back(add_bridge_serve_command(*sub));
  subs->push_back(add_bridge_keygen_command(*sub));
  return {sub, [subs]() -> int {
            for (const Command& c : *subs)
              if (c.app->parsed()) return c.run();
            return kExitUsage;
          }};
}

}  // namespace shmlink::cli
