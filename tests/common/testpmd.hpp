// SPDX-License-Identifier: MIT
// DPDK testpmd as a memif peer for the interop tests. The harness itself lives with the CLI
// (tools/shmlink/testpmd.hpp), which `shmlink memif bench` uses too; tests reach it as
// shmlink::test::Testpmd etc.
#pragma once

#include "test_util.hpp"

#include "../../tools/shmlink/testpmd.hpp"

namespace shmlink::test {
using namespace shmlink::cli::testpmd;  // NOLINT(google-build-using-namespace): re-export
}  // namespace shmlink::test
