// SPDX-License-Identifier: MIT
// DPDK testpmd as a memif peer for the interop tests. The harness itself is in the library the CLI
// shares with tests (tools/support, target shmlink_tool_support: <shmlink_tools/testpmd.hpp>),
// which `shmlink memif bench` uses too; tests reach it as shmlink::test::Testpmd etc.
#pragma once

#include "test_util.hpp"

#include <shmlink_tools/testpmd.hpp>

namespace shmlink::test {
using namespace shmlink::cli::testpmd;  // NOLINT(google-build-using-namespace): re-export
}  // namespace shmlink::test
