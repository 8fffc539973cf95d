// SPDX-License-Identifier: MIT
// The testpmd harness (tests/common/testpmd.hpp) on its own: two DPDK testpmds, a txonly client
// feeding an rxonly server over memif, show that the harness starts, observes, counts and stops
// them. Skipped when dpdk-testpmd or the net_memif PMD is not installed.
#include "testpmd.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

using namespace std::chrono_literals;
using shmlink::test::Testpmd;
using shmlink::test::TestpmdOptions;

/// The CPUs for the server and the client: different ones when there are two.
std::pair<int, int> two_cpus() {
  const auto cpus = shmlink::test::allowed_cpus();
  return {cpus.front(), cpus.back()};
}

/// Stops the testpmd that stays last. Its peer has just left while it was forwarding, which
/// DPDK 22.11's memif PMD rarely survives (it unmaps the regions under the forwarding lcore): a
/// SIGSEGV after kDisconnected is that known PMD race, reported but not held against the harness.
/// Stops the testpmd that outlived its peer. Returns false when it died of the known DPDK memif PMD
/// race (SIGSEGV after its peer disconnected): then it had no chance to remove its socket.
bool expect_clean_stop_of_survivor(Testpmd& pmd) {
  const int status = pmd.stop();
  if (status == -SIGSEGV && pmd.log_count(Testpmd::kDisconnected) > 0) {
    std::cerr << "note: testpmd died of SIGSEGV after its peer disconnected (DPDK memif PMD race)\n";
    return false;
  }
  EXPECT_EQ(status, 0) << pmd.describe();
  return true;
}

TEST(TestpmdHarness, ClientTxonlyFeedsServerRxonlyOverFilesystemSocket) {
  // Two uninstrumented testpmds; the harness's own code runs under ASan in MemifTestpmd.*.
  if (shmlink::test::kBuiltWithAsan) GTEST_SKIP() << "two testpmds ASan cannot see; runs in the dev preset";
  if (!shmlink::test::testpmd_available()) GTEST_SKIP() << shmlink::test::testpmd_unavailable_reason();
  shmlink::test::TempStreamDir dir;
  const std::string socket = dir.path() + "/memif.sock";
  const auto [server_cpu, client_cpu] = two_cpus();

  TestpmdOptions so;
  so.role = "server";
  so.socket = socket;
  so.id = 7;
  so.forward_mode = "rxonly";
  so.cpu = server_cpu;
  Testpmd server(so, dir.path());
  ASSERT_TRUE(server.wait_for_log(Testpmd::kListening, 30s)) << server.describe();
  EXPECT_TRUE(std::filesystem::is_socket(socket));

  TestpmdOptions co = so;
  co.role = "client";
  co.forward_mode = "txonly";
  co.cpu = client_cpu;
  Testpmd client(co, dir.path());
  ASSERT_NE(server.file_prefix(), client.file_prefix());
  ASSERT_TRUE(client.wait_for_link(30s)) << client.describe();
  ASSERT_TRUE(server.wait_for_link(30s)) << server.describe();
  ASSERT_TRUE(client.wait_for_log(Testpmd::kForwarding, 30s)) << client.describe();
  ASSERT_TRUE(server.wait_for_rx(1, 30s)) << server.describe();

  // The client leaves first while linked: its final summary is exact.
  EXPECT_EQ(client.stop(), 0) << client.describe();
  const auto sent = client.rx_tx_totals();
  EXPECT_TRUE(sent.summary) << client.describe();
  EXPECT_GT(sent.tx_packets, 0u);
  EXPECT_EQ(sent.rx_packets, 0u);
  EXPECT_TRUE(server.wait_for_log(Testpmd::kDisconnected, 30s)) << server.describe();

  const bool server_exited_cleanly = expect_clean_stop_of_survivor(server);
  const auto received = server.rx_tx_totals();
  EXPECT_GT(received.rx_packets, 0u) << server.describe();
  EXPECT_LE(received.rx_packets, sent.tx_packets);
  EXPECT_EQ(received.tx_packets, 0u);
  EXPECT_EQ(server.stop(), server.stop());  // idempotent
  if (server_exited_cleanly) {
    EXPECT_FALSE(std::filesystem::exists(socket)) << "testpmd removes its socket on a clean exit";
  }
  EXPECT_FALSE(std::filesystem::exists(Testpmd::runtime_dir(server.file_prefix())));
  EXPECT_FALSE(std::filesystem::exists(Testpmd::runtime_dir(client.file_prefix())));
}

TEST(TestpmdHarness, WaitForLinkGivesUpWhenTheProbeFails) {
  if (!shmlink::test::testpmd_available()) GTEST_SKIP() << shmlink::test::testpmd_unavailable_reason();
  shmlink::test::TempStreamDir dir;
  TestpmdOptions o;
  o.socket = dir.path() + "/memif.sock";
  o.bsize = 0;  // invalid: the vdev is not created
  Testpmd pmd(o, dir.path());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(pmd.wait_for_link(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s) << pmd.describe();
  pmd.stop();
}

TEST(TestpmdHarness, ParsesTotalsFromStatsBlocksAndSummary) {
  // Shapes of DPDK 22.11 testpmd output (one port, periodic stats, then the stop summary).
  const std::string periodic =
      "\x1b[2J\x1b[1;1H\n"
      "Port statistics ====================================\n"
      "  ######################## NIC statistics for port 0  ########################\n"
      "  RX-packets: 142336     RX-missed: 0          RX-bytes:  9109504\n"
      "  RX-errors: 0\n"
      "  RX-nombuf:  0         \n"
      "  TX-packets: 12         TX-errors: 0          TX-bytes:  768\n"
      "\n"
      "  Throughput (since last show)\n"
      "  Rx-pps:        71153          Rx-bps:     36430792\n"
      "  ############################################################################\n";
  const std::string link_down =
      "  ######################## NIC statistics for port 0  ########################\n"
      "  RX-packets: 0          RX-missed: 0          RX-bytes:  0\n"
      "  TX-packets: 0          TX-errors: 0          TX-bytes:  0\n"
      "  ############################################################################\n";
  const std::string per_stream =
      "  ------- Forward Stats for RX Port= 0/Queue= 0 -> TX Port= 0/Queue= 0 -------\n"
      "  RX-packets: 999999999      TX-packets: 999999999      TX-dropped: 0\n";
  const std::string summary =
      "  ---------------------- Forward statistics for port 0  ----------------------\n"
      "  RX-packets: 200000         RX-dropped: 0             RX-total: 200000\n"
      "  TX-packets: 20             TX-dropped: 5             TX-total: 25\n"
      "  ----------------------------------------------------------------------------\n"
      "\n"
      "  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++\n"
      "  RX-packets: 200000         RX-dropped: 0             RX-total: 200000\n"
      "  TX-packets: 20             TX-dropped: 5             TX-total: 25\n"
      "  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\n";

  auto t = shmlink::test::parse_testpmd_totals(periodic + link_down);
  EXPECT_EQ(t.rx_packets, 142336u);  // the link going down does not lose what was seen
  EXPECT_EQ(t.tx_packets, 12u);
  EXPECT_FALSE(t.summary);

  t = shmlink::test::parse_testpmd_totals(periodic + per_stream + summary);
  EXPECT_EQ(t.rx_packets, 200000u);
  EXPECT_EQ(t.tx_packets, 20u);
  EXPECT_TRUE(t.summary);

  // A summary taken while the link was down reads 0; the periodic blocks still count.
  const std::string zero_summary =
      "  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++\n"
      "  RX-packets: 0              RX-dropped: 0             RX-total: 0\n"
      "  TX-packets: 0              TX-dropped: 0             TX-total: 0\n"
      "  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\n";
  t = shmlink::test::parse_testpmd_totals(periodic + link_down + zero_summary);
  EXPECT_EQ(t.rx_packets, 142336u);
  EXPECT_EQ(t.tx_packets, 12u);
  EXPECT_TRUE(t.summary);

  t = shmlink::test::parse_testpmd_totals("");
  EXPECT_EQ(t.rx_packets, 0u);
  EXPECT_FALSE(t.summary);
}

}  // namespace
