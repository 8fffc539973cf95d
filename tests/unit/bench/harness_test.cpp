// SPDX-License-Identifier: MIT
// The bench harness (bench/harness) on its own: the two-process engine every `shmlink bench`
// subcommand runs on moves round trips and samples through its floors and byte streams, turns a
// child that gives up into an error naming the run (never a hang), and the load report has the
// documented keys. Speed is never asserted.
#include "harness/channels.hpp"
#include "harness/machine.hpp"
#include "harness/pingpong.hpp"
#include "harness/queue_compare.hpp"

#include <shmlink/error.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace shmlink::bench;
/// The engine's run (gtest's Test::Run hides the plain name inside TEST bodies).
using BenchRun = shmlink::bench::Run;

/// The merged figures latency_run() fills.
struct Totals {
  std::vector<std::int64_t> round_trips_ns;
  std::int64_t initiator_cpu_ns = 0, responder_cpu_ns = 0, wall_ns = 0, involuntary_switches = 0;
  int runs = 0;
  bool budget_hit = false;
};

/// A responder that gives up on its first receive; the initiator waits as the real channels do.
struct GivingUpChannel {
  BenchRun& run;
  GivingUpChannel(BenchRun& r, Side /*side*/) : run(r) {}
  Fail a_send(std::uint64_t /*seq*/) noexcept { return Fail::none; }
  Fail a_recv(std::uint64_t /*seq*/) noexcept {
    std::int64_t deadline = 0;
    for (;;) {
      if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
      ::usleep(1000);
    }
  }
  bool b_recv(std::uint64_t* /*seq*/) noexcept {
    run.error = "gave up on purpose";
    return false;
  }
  bool b_send(std::uint64_t /*seq*/) noexcept { return true; }
};

constexpr std::int64_t kBudgetNs = 5'000'000'000;

TEST(BenchHarness, FutexFloorRoundTripsBetweenTwoProcesses) {
  const SharedMapping mapping(64);
  const ChildWatch watch;
  BenchRun run(mapping, std::nullopt, std::vector<std::byte>(64));
  Totals t;
  latency_run<FutexChannel>(run, "test futex_raw", "responder", 10, 200, kBudgetNs, t);
  EXPECT_EQ(t.round_trips_ns.size(), 200U);
  EXPECT_EQ(t.runs, 1);
  EXPECT_FALSE(t.budget_hit);
}

TEST(BenchHarness, PipeMessagesRoundTripAndStreamThroughput) {
  const SharedMapping mapping(40);
  const ChildWatch watch;
  {
    BenchRun run(mapping, std::nullopt, std::vector<std::byte>(40));
    make_pipes(run, true);
    Totals t;
    latency_run<FdChannel>(run, "test pipe", "child", 10, 100, kBudgetNs, t);
    EXPECT_EQ(t.round_trips_ns.size(), 100U);
  }
  BenchRun run(mapping, std::nullopt, std::vector<std::byte>(40));
  run.batch = 8;
  make_socketpair(run);
  const ThroughputOutcome o = throughput_run<FdChannel>(run, "test unix_socket_batch", 16, 1000);
  EXPECT_GT(o.wall_ns, 0);
}

TEST(BenchHarness, AChildThatGivesUpIsAnErrorNamingTheRunNotAHang) {
  const SharedMapping mapping(64);
  const ChildWatch watch;
  BenchRun run(mapping, std::nullopt, std::vector<std::byte>(64));
  Totals t;
  try {
    latency_run<GivingUpChannel>(run, "test giving_up", "responder", 0, 10, kBudgetNs, t);
    FAIL() << "expected an Error";
  } catch (const shmlink::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("test giving_up: gave up on purpose"), std::string::npos) << what;
    EXPECT_NE(what.find("(status 3)"), std::string::npos) << what;
  }
  EXPECT_EQ(t.runs, 0);
}

TEST(BenchHarness, LoadReportHasTheDocumentedKeys) {
  const LoadMeter meter;
  std::vector<std::string> notes;
  const Json load = meter.finish(notes);
  for (const char* key : {"loadavg_before", "loadavg_after", "other_cpu_percent", "steal_percent", "busy"})
    EXPECT_TRUE(load.contains(key)) << key;
  EXPECT_GT(clock_overhead_ns(), 0.0);
}

TEST(BenchHarness, CorePairsMustBeTwoDifferentAllowedCpus) {
  EXPECT_EQ(parse_core_pair("0,1", {0, 1}, "bench"), std::make_pair(0, 1));
  EXPECT_THROW(parse_core_pair("1,1", {0, 1}, "bench"), shmlink::Error);
  EXPECT_THROW(parse_core_pair("0,7", {0, 1}, "bench"), shmlink::Error);
  EXPECT_THROW(parse_core_pair("0", {0, 1}, "bench"), shmlink::Error);
}

/// `bench queue`'s comparison takes shmlink's best among its rows of channels in their own files,
/// as each peer makes its own: a faster `MODE@region` row (it has "placement") never stands for
/// shmlink there.
TEST(QueueComparison, TakesShmlinksBestAmongFileRowsOnly) {
  auto lat = [](const char* mode, double p50, bool placed) {
    Json e{{"mode", mode}, {"kind", "shmlink"}, {"one_way_ns", {{"p50", p50}}}};
    if (placed) e["placement"] = "region";
    return e;
  };
  auto tp = [](const char* mode, int batch, double rate, bool placed) {
    Json e{{"mode", mode}, {"kind", "shmlink"}, {"batch", batch}, {"runs", 1}, {"samples_per_s", rate}};
    if (placed) e["placement"] = "region";
    return e;
  };
  const Json latency = Json::array({lat("spsc_polling", 100, false), lat("spsc_polling@region", 50, true),
                                    lat("spsc_futex", 2000, false), lat("spsc_futex@region", 1000, true),
                                    Json{{"mode", "pipe"}, {"kind", "peer"}, {"one_way_ns", {{"p50", 4000}}}}});
  const Json throughput = Json::array({tp("spsc_single", 1, 1e6, false), tp("spsc_single@region", 1, 2e6, true),
                                       tp("spsc_bulk", 32, 5e6, false), tp("spsc_bulk@region", 32, 9e6, true)});
  const Json c = comparison_json(latency, throughput);
  EXPECT_EQ(c["best_latency_mode"], "spsc_polling") << c.dump();
  EXPECT_EQ(c["best_sleeping_latency_mode"], "spsc_futex") << c.dump();
  EXPECT_EQ(c["best_throughput_mode"], "spsc_bulk") << c.dump();
  EXPECT_EQ(c["best_single_throughput_mode"], "spsc_single") << c.dump();
  EXPECT_EQ(c["best_bulk_throughput_mode"], "spsc_bulk") << c.dump();
  const Json& pipe = c["peers"][0];
  EXPECT_EQ(pipe["peer"], "pipe");
  EXPECT_DOUBLE_EQ(pipe["latency_ratio"].get<double>(), 100.0 / 4000.0) << c.dump();
}

}  // namespace
