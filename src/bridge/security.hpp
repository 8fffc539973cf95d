// SPDX-License-Identifier: MIT
// CURVE keys and the ZAP handler of the bridge (docs/design/bridge.md, "Threat model"). The
// declarations are public (include/shmlink/bridge_security.hpp) so that programs and the CLI can
// make and load keys; the bridge's own code includes them from here.
#pragma once

#include <shmlink/bridge_security.hpp>
