// SPDX-License-Identifier: MIT
// The comparison block of `shmlink bench queue` (harness/queue_compare.hpp; docs/bench.md
// "Comparison"): shmlink's best modes against each peer, like with like.
#include "harness/queue_compare.hpp"

#include "harness/queue.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace shmlink::bench {

/// A number, or null when absent.
Json number_or_null(std::optional<double> v) { return v ? Json(*v) : Json(nullptr); }

/// a / b, or nullopt when b is not positive.
std::optional<double> quotient(double a, double b) {
  if (!(b > 0)) return std::nullopt;
  return a / b;
}

namespace {

/// A shmlink row of a channel in its own file: the peers (pipes, sockets, message queues) each
/// make their own channel, so shmlink's best is looked for among its file rows only; a
/// `MODE@region` row (it has "placement") is compared with its file twin by ratio_vs_file instead.
bool file_row(const Json& e) { return e["kind"] == "shmlink" && !e.contains("placement"); }

/// The mode with the lowest one-way p50 among the latency entries `pick` accepts that ran.
std::optional<std::pair<std::string, double>> fastest(const Json& latency, bool (*pick)(const Json&)) {
  std::optional<std::pair<std::string, double>> best;
  for (const Json& e : latency) {
    if (!pick(e) || !e["one_way_ns"].is_object()) continue;
    const double p50 = e["one_way_ns"]["p50"].get<double>();
    if (!best || p50 < best->second) best = {e["mode"].get<std::string>(), p50};
  }
  return best;
}

/// The mode with the highest rate among the throughput entries `pick` accepts that ran.
std::optional<std::pair<std::string, double>> highest(const Json& throughput, bool (*pick)(const Json&)) {
  std::optional<std::pair<std::string, double>> best;
  for (const Json& e : throughput) {
    if (!pick(e) || e["runs"].get<int>() == 0) continue;
    const double rate = e["samples_per_s"].get<double>();
    if (!best || rate > best->second) best = {e["mode"].get<std::string>(), rate};
  }
  return best;
}

/// {"mode", value} of a best-of, or nulls.
void put_best(Json& j, const char* mode_key, const char* value_key, const std::optional<std::pair<std::string, double>>& b) {
  j[mode_key] = b ? Json(b->first) : Json(nullptr);
  j[value_key] = b ? Json(b->second) : Json(nullptr);
}

}  // namespace

Json comparison_json(const Json& latency, const Json& throughput) {
  const auto best_lat = fastest(latency, [](const Json& e) { return file_row(e); });
  // The peers sleep in the kernel while they wait: compare them with shmlink's futex waits too.
  const auto best_sleep = fastest(latency, [](const Json& e) {
    return file_row(e) && e["mode"].get<std::string>().ends_with("_futex");
  });
  const auto best_tp = highest(throughput, [](const Json& e) { return file_row(e); });
  const auto best_single =
      highest(throughput, [](const Json& e) { return file_row(e) && e["batch"].get<int>() == 1; });
  const auto best_bulk =
      highest(throughput, [](const Json& e) { return file_row(e) && e["batch"].get<int>() != 1; });
  Json c;
  put_best(c, "best_latency_mode", "best_latency_p50_ns", best_lat);
  put_best(c, "best_sleeping_latency_mode", "best_sleeping_latency_p50_ns", best_sleep);
  put_best(c, "best_throughput_mode", "best_samples_per_s", best_tp);
  put_best(c, "best_single_throughput_mode", "best_single_samples_per_s", best_single);
  put_best(c, "best_bulk_throughput_mode", "best_bulk_samples_per_s", best_bulk);

  auto find = [](const Json& list, const std::string& mode) -> const Json* {
    for (const Json& e : list)
      if (e["mode"] == mode) return &e;
    return nullptr;
  };
  auto p50_of = [&](const std::string& mode) -> std::optional<double> {
    const Json* e = find(latency, mode);
    if (e == nullptr || !(*e)["one_way_ns"].is_object()) return std::nullopt;
    return (*e)["one_way_ns"]["p50"].get<double>();
  };
  auto rate_of = [&](const std::string& mode) -> std::optional<double> {
    const Json* e = find(throughput, mode);
    if (e == nullptr || (*e)["runs"].get<int>() == 0) return std::nullopt;
    return (*e)["samples_per_s"].get<double>();
  };
  // ratio = shmlink / peer; `lower`: below 1 is ahead (latency), else above 1 (throughput).
  auto put_ratio = [](Json& e, const char* ratio_key, const char* ahead_key,
                      const std::optional<std::pair<std::string, double>>& ours, std::optional<double> theirs,
                      bool lower) -> std::optional<bool> {
    std::optional<double> r;
    if (ours && theirs) r = quotient(ours->second, *theirs);
    e[ratio_key] = number_or_null(r);
    if (!r) {
      e[ahead_key] = nullptr;
      return std::nullopt;
    }
    const bool ahead = lower ? *r < 1.0 : *r > 1.0;
    e[ahead_key] = ahead;
    return ahead;
  };

  Json peers = Json::array();
  std::optional<bool> all_ahead;
  for (QueuePeer p : kAllQueuePeers) {
    const std::string name = queue_peer_name(p);
    const std::string single_mode = queue_throughput_mode_name(queue_peer_throughput_mode(p, false));
    const std::string batch_mode = queue_throughput_mode_name(queue_peer_throughput_mode(p, true));
    const std::optional<double> p50 = p50_of(name);
    const std::optional<double> single = rate_of(single_mode);
    const std::optional<double> batched = rate_of(batch_mode);
    std::optional<double> best;
    if (single || batched) best = std::max(single.value_or(0.0), batched.value_or(0.0));
    Json e;
    e["peer"] = name;
    e["latency_p50_ns"] = number_or_null(p50);
    const std::optional<bool> lat_ahead = put_ratio(e, "latency_ratio", "latency_ahead", best_lat, p50, true);
    put_ratio(e, "sleeping_latency_ratio", "sleeping_latency_ahead", best_sleep, p50, true);
    e["samples_per_s"] = number_or_null(best);
    const std::optional<bool> tp_ahead = put_ratio(e, "throughput_ratio", "throughput_ahead", best_tp, best, false);
    e["single_samples_per_s"] = number_or_null(single);
    put_ratio(e, "single_throughput_ratio", "single_throughput_ahead", best_single, single, false);
    e["batch_samples_per_s"] = number_or_null(batched);
    put_ratio(e, "batch_throughput_ratio", "batch_throughput_ahead", best_bulk, batched, false);
    if (lat_ahead && tp_ahead) all_ahead = all_ahead.value_or(true) && *lat_ahead && *tp_ahead;
    peers.push_back(e);
  }
  c["peers"] = peers;
  c["ahead_of_all"] = all_ahead ? Json(*all_ahead) : Json(nullptr);
  return c;
}

}  // namespace shmlink::bench
