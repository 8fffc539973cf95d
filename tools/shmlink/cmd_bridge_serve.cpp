// SPDX-License-Identifier: MIT
// `shmlink bridge serve`: runs the bridge service of this host (include/shmlink/bridge_service.hpp).
#include "cli.hpp"

namespace shmlink::cli {

Command add_bridge_serve_command(CLI::App& bridge) {
  CLI::App* sub = bridge.add_subcommand("serve", "Run the bridge service of this host (not built yet)");
  return {sub, []() -> int { return kExitFailure; }};
}

}  // namespace shmlink::cli
