// SPDX-License-Identifier: MIT
// `shmlink bridge keygen`: CURVE key files for the bridge service (docs/bridge.md, "Keys").
#include "cli.hpp"

namespace shmlink::cli {

Command add_bridge_keygen_command(CLI::App& bridge) {
  CLI::App* sub = bridge.add_subcommand("keygen", "Make the CURVE key pair of a bridge service (not built yet)");
  return {sub, []() -> int { return kExitFailure; }};
}

}  // namespace shmlink::cli
