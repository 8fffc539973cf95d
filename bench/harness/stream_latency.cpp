// SPDX-License-Identifier: MIT
// Latency part of `shmlink bench stream` (docs/bench.md "Latency"): two processes pinned to two
// CPUs play ping-pong; the initiator times every round trip with CLOCK_MONOTONIC and the
// one-way latency is half of it. Raw floors (cache-line ping-pong, futex ping-pong, pipe) and
// shmlink's waits (spin, hybrid, futex, semaphore) run interleaved in rounds, on the harness's
// two-process engine (pingpong.hpp).
#include "harness/channels.hpp"
#include "harness/pingpong.hpp"
#include "harness/stream.hpp"

#include <shmlink/error.hpp>
#include <shmlink/stream.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace shmlink::bench {

namespace {

using namespace std::chrono_literals;

/// Bytes of the cacheline_payload reference's payload (one cache line).
constexpr std::size_t kPayloadBytes = 64;
/// Bytes of the pipe reference's messages (the sequence number alone).
constexpr std::size_t kPipeMessageBytes = 8;

/// Everything one run needs: the engine's run plus the ping/pong streams.
struct StreamRun : Run {
  const LatencyConfig& cfg;
  LatencyMode mode;
  Stream& ping;             ///< initiator -> responder frames
  Stream& pong;             ///< responder -> initiator frames
  int initiator_slot = -1;  ///< semaphore slot of the initiator on pong (claimed for the whole run)

  StreamRun(const LatencyConfig& c, const SharedMapping& m, LatencyMode md, Stream& pi, Stream& po, int slot)
      : Run(m, c.cores, std::vector<std::byte>(md == LatencyMode::pipe ? kPipeMessageBytes : kPayloadBytes)),
        cfg(c), mode(md), ping(pi), pong(po), initiator_slot(slot) {}
};

/// shmlink: the initiator writes "ping" frames and reads "pong" frames; the responder the
/// reverse. Every receive is a wait of the mode followed by a validated read_copy() of the
/// frame, whose first 8 bytes carry the sequence number.
struct StreamChannel {
  Run& run;                      ///< the run (its error text)
  LatencyMode mode;
  Side side;
  Stream* out;                   ///< stream this side writes
  Stream* in;                    ///< stream this side reads
  std::vector<std::byte> tx;     ///< outgoing frame
  std::vector<std::byte> rx;     ///< incoming frame
  std::uint64_t last = 0;        ///< cnt0 of the last frame read from `in`
  int slot = -1;                 ///< semaphore slot on `in` (semaphore mode)
  WriteOptions options;          ///< semaphores are posted unless --no-post-semaphores

  /// The initiator writes ping and reads pong (with the run's slot); the responder the reverse,
  /// claiming a slot on ping in semaphore mode. @throws Error when no slot is free.
  StreamChannel(StreamRun& r, Side s)
      : run(r), mode(r.mode), side(s), out(s == Side::parent ? &r.ping : &r.pong),
        in(s == Side::parent ? &r.pong : &r.ping), tx(r.cfg.payload_bytes), rx(r.cfg.payload_bytes),
        last(in->cnt0()) {
    options.post_semaphores = r.cfg.post_semaphores || mode == LatencyMode::semaphore;
    if (mode != LatencyMode::semaphore) return;
    slot = s == Side::parent ? r.initiator_slot : in->claim_semaphore();
    if (slot < 0) throw Error(Errc::busy, "no free semaphore slot in " + in->path());
    (void)in->sem_flush(slot);
  }
  /// The responder gives its slot back.
  ~StreamChannel() {
    if (side == Side::child && slot >= 0) in->release_semaphore(slot);
  }
  StreamChannel(const StreamChannel&) = delete;
  StreamChannel& operator=(const StreamChannel&) = delete;

  /// Writes one frame carrying `seq`.
  Status send(std::uint64_t seq) noexcept {
    std::memcpy(tx.data(), &seq, sizeof seq);
    return out->write(std::span<const std::byte>(tx), options);
  }
  /// Waits for a frame newer than `last` with the mode's wait, then copies it out.
  Status recv(std::uint64_t* seq, std::chrono::nanoseconds timeout) noexcept {
    Status st;
    std::uint64_t c = 0;
    switch (mode) {
      case LatencyMode::spin: st = in->wait_spin(last, timeout, &c); break;
      case LatencyMode::hybrid: st = in->wait_futex(last, timeout, &c, kDefaultSpin); break;
      case LatencyMode::futex: st = in->wait_futex(last, timeout, &c, 0ns); break;
      case LatencyMode::semaphore: st = in->sem_wait(slot, timeout); break;
      default: st = Errc::invalid_argument; break;
    }
    if (!st) return st;
    if (mode == LatencyMode::semaphore) c = in->cnt0();
    // A validated copy; the frame info (whose times sit on two more cache lines) is not needed:
    // in a ping-pong no newer frame can arrive before this one is answered.
    st = in->read_copy(std::span<std::byte>(rx));
    if (!st) return st;
    last = c;
    std::memcpy(seq, rx.data(), sizeof *seq);
    return Errc::ok;
  }

  /// Initiator: write a ping frame.
  Fail a_send(std::uint64_t seq) noexcept {
    (void)send(seq);
    return Fail::none;
  }
  /// Initiator: receive pong frames until one carries `seq`.
  Fail a_recv(std::uint64_t seq) noexcept {
    std::int64_t deadline = 0;
    for (;;) {
      std::uint64_t v = 0;
      const Status st = recv(&v, kWaitSlice);
      if (st.ok()) {
        if (v == seq) return Fail::none;
        continue;  // a stale frame (or a stale semaphore post): keep waiting
      }
      if (st.code() != Errc::timeout && st.code() != Errc::interrupted) {
        run.error = std::string("receiving: ") + st.message();
        return Fail::error;
      }
      if (const Fail f = after_empty_slice(deadline); f != Fail::none) return f;
    }
  }
  /// Responder: receive the next frame that carries a new sequence number.
  bool b_recv(std::uint64_t* seq) noexcept {
    for (;;) {
      const std::uint64_t before = *seq;
      const Status st = recv(seq, kChildTimeout);
      if (st.code() == Errc::interrupted) continue;
      if (!st) {
        run.error = std::string("receiving: ") + st.message();
        return false;
      }
      if (*seq != before) return true;
    }
  }
  /// Responder: write a pong frame.
  bool b_send(std::uint64_t seq) noexcept {
    (void)send(seq);
    return true;
  }
};

// ---- one run -----------------------------------------------------------------------------

/// Runs one mode once: forks a responder (pinned to the second CPU), drives `n` timed round
/// trips and merges them into `r`. `slot` is the initiator's semaphore slot on pong (claimed on
/// the first semaphore run). @throws Error on any failure or a stop request.
void run_once(const LatencyConfig& cfg, const SharedMapping& mapping, Stream& ping, Stream& pong, int& slot,
              LatencyResult& r, std::int64_t n, std::int64_t budget_ns) {
  const LatencyMode mode = r.mode;
  if (mode == LatencyMode::semaphore && slot < 0) {
    slot = pong.claim_semaphore();
    if (slot < 0) throw Error(Errc::busy, "bench: no free semaphore slot in " + pong.path());
  }
  StreamRun run(cfg, mapping, mode, ping, pong, slot);
  const std::string what = "bench " + result_name(r);
  switch (mode) {
    case LatencyMode::cacheline:
      latency_run<CachelineChannel>(run, what, "responder", cfg.warmup, n, budget_ns, r);
      return;
    case LatencyMode::cacheline_payload:
      latency_run<MessageChannel>(run, what, "responder", cfg.warmup, n, budget_ns, r);
      return;
    case LatencyMode::futex_raw:
      latency_run<FutexChannel>(run, what, "responder", cfg.warmup, n, budget_ns, r);
      return;
    case LatencyMode::pipe:
      make_pipes(run, true);
      latency_run<FdChannel>(run, what, "responder", cfg.warmup, n, budget_ns, r);
      return;
    default: latency_run<StreamChannel>(run, what, "responder", cfg.warmup, n, budget_ns, r); return;
  }
}

}  // namespace

// ---- modes ----------------------------------------------------------------------------------

const char* mode_name(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::cacheline: return "cacheline";
    case LatencyMode::cacheline_payload: return "cacheline_payload";
    case LatencyMode::futex_raw: return "futex_raw";
    case LatencyMode::pipe: return "pipe";
    case LatencyMode::spin: return "spin";
    case LatencyMode::hybrid: return "hybrid";
    case LatencyMode::futex: return "futex";
    case LatencyMode::semaphore: return "semaphore";
  }
  return "?";
}

const char* mode_description(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::cacheline: return "raw: atomic store / PAUSE spin on separate cache lines";
    case LatencyMode::cacheline_payload: return "raw: as cacheline, plus a 64-byte payload on its own cache line";
    case LatencyMode::futex_raw: return "raw: store + FUTEX_WAKE / FUTEX_WAIT, no spinning";
    case LatencyMode::pipe: return "raw: 8-byte write / blocking read on two pipes";
    case LatencyMode::spin: return "Stream::write / wait_spin + read_copy";
    case LatencyMode::hybrid: return "Stream::write / wait_futex (2 us spin, then futex) + read_copy";
    case LatencyMode::futex: return "Stream::write / wait_futex (spin 0) + read_copy";
    case LatencyMode::semaphore: return "Stream::write (posts) / sem_wait on a claimed slot + read_copy";
  }
  return "";
}

bool mode_is_floor(LatencyMode m) noexcept {
  return m == LatencyMode::cacheline || m == LatencyMode::cacheline_payload || m == LatencyMode::futex_raw ||
         m == LatencyMode::pipe;
}

LatencyMode mode_floor(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::spin:
    case LatencyMode::hybrid: return LatencyMode::cacheline;
    case LatencyMode::futex:
    case LatencyMode::semaphore: return LatencyMode::futex_raw;
    default: return m;
  }
}

std::optional<double> mode_target(LatencyMode m) noexcept {
  switch (m) {
    case LatencyMode::spin: return 1.5;
    case LatencyMode::futex: return 1.1;
    default: return std::nullopt;
  }
}

std::string result_name(const LatencyResult& r) {
  const std::string name = mode_name(r.mode);
  return r.placement.empty() ? name : name + "@" + r.placement;
}

std::vector<LatencyResult> run_latency(const LatencyConfig& cfg, std::vector<std::string>& notes, bool* interrupted) {
  if (interrupted != nullptr) *interrupted = false;
  // The files' results first (report order), then the candidates run in cfg.place.
  std::vector<LatencyResult> results;
  for (LatencyMode m : kAllLatencyModes) results.push_back(LatencyResult{m, {}, {}, 0, 0, 0, 0, 0, false, {}});
  if (cfg.place) {
    for (LatencyMode m : kAllLatencyModes)
      if (!mode_is_floor(m)) results.push_back(LatencyResult{m, cfg.place->label, {}, 0, 0, 0, 0, 0, false, {}});
  }
  auto index_of = [&](LatencyMode m, bool placed) {
    for (std::size_t i = 0; i < results.size(); ++i)
      if (results[i].mode == m && results[i].placement.empty() != placed) return i;
    return results.size();
  };

  // Spinning against a process on the same CPU only progresses at scheduler ticks.
  const bool can_spin = cfg.cores.has_value() || allowed_cpus().size() >= 2;
  if (!can_spin) {
    for (LatencyResult& r : results) {
      if (r.mode == LatencyMode::cacheline || r.mode == LatencyMode::cacheline_payload || r.mode == LatencyMode::spin)
        r.skipped = "one CPU available: spinning against a peer on the same CPU measures the scheduler";
    }
  }

  // One round: each floor/candidate pair back to back (order alternating between rounds), the
  // candidate's run in cfg.place right after it, the cacheline_payload reference after the spin
  // pair, then the pipe reference. Floors shared by two pairs run twice per round with half the
  // samples.
  struct Pair {
    LatencyMode floor;
    LatencyMode candidate;
  };
  const Pair pairs[] = {{LatencyMode::cacheline, LatencyMode::spin},
                        {LatencyMode::cacheline, LatencyMode::hybrid},
                        {LatencyMode::futex_raw, LatencyMode::futex},
                        {LatencyMode::futex_raw, LatencyMode::semaphore}};
  auto schedule = [&](int round) {
    std::vector<std::size_t> order;
    for (const Pair& p : pairs) {
      std::vector<std::size_t> candidate{index_of(p.candidate, false)};
      if (cfg.place) candidate.push_back(index_of(p.candidate, true));
      if (round % 2 == 0) {
        order.push_back(index_of(p.floor, false));
        order.insert(order.end(), candidate.begin(), candidate.end());
      } else {
        order.insert(order.end(), candidate.begin(), candidate.end());
        order.push_back(index_of(p.floor, false));
      }
      if (p.candidate == LatencyMode::spin) order.push_back(index_of(LatencyMode::cacheline_payload, false));
    }
    order.push_back(index_of(LatencyMode::pipe, false));
    std::erase_if(order, [&](std::size_t i) { return !results[i].skipped.empty(); });
    return order;
  };
  const std::vector<std::size_t> first = schedule(0);
  auto occurrences = [&](std::size_t i) { return std::count(first.begin(), first.end(), i); };

  const SharedMapping mapping(kPayloadBytes);
  StreamSpec spec;
  spec.shape = {static_cast<std::uint32_t>(cfg.payload_bytes)};
  spec.dtype = Dtype::u8;
  // The ping/pong streams of each placement, and the initiator's semaphore slot on each pong.
  struct Pair2 {
    Stream ping, pong;
    int slot = -1;
  };
  Pair2 files{Stream::create(cfg.stream_dir + "/bench-ping.im.shm", spec),
              Stream::create(cfg.stream_dir + "/bench-pong.im.shm", spec), -1};
  std::optional<Pair2> placed;
  if (cfg.place) placed.emplace(Pair2{cfg.place->create("bench-ping", spec), cfg.place->create("bench-pong", spec), -1});
  const ChildWatch watch;
  if (cfg.cores && !pin_to_cpu(cfg.cores->first)) {
    throw Error(errc_from_errno(errno), "bench: pinning to CPU " + std::to_string(cfg.cores->first) + ": " +
                                            std::strerror(errno));
  }

  const int rounds = std::max(cfg.rounds, 1);
  bool stopped = false;
  for (int round = 0; round < rounds && !stopped; ++round) {
    const std::vector<std::size_t> order = schedule(round);
    for (std::size_t step = 0; step < order.size() && !stopped; ++step) {
      LatencyResult& r = results[order[step]];
      const auto parts = static_cast<std::int64_t>(rounds) * occurrences(order[step]);
      const std::int64_t n = std::max<std::int64_t>(1, (cfg.samples + parts - 1) / parts);
      const auto budget_ns = static_cast<std::int64_t>(cfg.max_seconds_per_mode * 1e9 / static_cast<double>(parts));
      if (cfg.progress) {
        cfg.progress("latency round " + std::to_string(round + 1) + "/" + std::to_string(rounds) + ": " +
                     result_name(r) + " (" + std::to_string(step + 1) + "/" + std::to_string(order.size()) + ")");
      }
      Pair2& streams = r.placement.empty() ? files : *placed;
      const LatencyResult before = r;
      try {
        if (interrupted != nullptr && stop_requested()) throw Error(Errc::interrupted, "bench: interrupted");
        run_once(cfg, mapping, streams.ping, streams.pong, streams.slot, r, n, budget_ns);
      } catch (const Error& e) {
        if (e.errc() != Errc::interrupted || interrupted == nullptr) throw;
        r = before;  // the interrupted run's samples are partial: keep only whole runs
        stopped = true;
        *interrupted = true;
      }
    }
  }
  if (files.slot >= 0) files.pong.release_semaphore(files.slot);
  if (placed && placed->slot >= 0) placed->pong.release_semaphore(placed->slot);
  for (const LatencyResult& r : results) {
    if (r.budget_hit) {
      notes.push_back(result_name(r) + ": the time budget (--max-seconds) ended some runs early; " +
                      std::to_string(r.round_trips_ns.size()) + " round trips measured");
    }
  }
  if (placed) {
    placed.reset();
    for (const char* name : {"bench-ping", "bench-pong"}) {
      try {
        cfg.place->remove(name);
      } catch (const Error&) {  // the place goes with the run anyway
      }
    }
  }
  return results;
}

}  // namespace shmlink::bench
