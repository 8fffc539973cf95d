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
              LatencyMode mode, std::int64_t n, std::int64_t budget_ns, LatencyResult& r) {
  if (mode == LatencyMode::semaphore && slot < 0) {
    slot = pong.claim_semaphore();
    if (slot < 0) throw Error(Errc::busy, "bench: no free semaphore slot in " + pong.path());
  }
  StreamRun run(cfg, mapping, mode, ping, pong, slot);
  const std::string what = std::string("bench ") + mode_name(mode);
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

std::vector<LatencyResult> run_latency(const LatencyConfig& cfg, std::vector<std::string>& notes, bool* interrupted) {
  if (interrupted != nullptr) *interrupted = false;
  std::vector<LatencyResult> results;
  for (LatencyMode m : kAllLatencyModes) results.push_back(LatencyResult{m, {}, 0, 0, 0, 0, 0, false, {}});
  auto result_of = [&](LatencyMode m) -> LatencyResult& {
    return *std::find_if(results.begin(), results.end(), [m](const LatencyResult& r) { return r.mode == m; });
  };

  // Spinning against a process on the same CPU only progresses at scheduler ticks.
  const bool can_spin = cfg.cores.has_value() || allowed_cpus().size() >= 2;
  if (!can_spin) {
    for (LatencyMode m : {LatencyMode::cacheline, LatencyMode::cacheline_payload, LatencyMode::spin})
      result_of(m).skipped = "one CPU available: spinning against a peer on the same CPU measures the scheduler";
  }

  // One round: each floor/candidate pair back to back (order alternating between rounds), the
  // cacheline_payload reference after the spin pair, then the pipe reference. Floors shared by two pairs run twice per round with half the samples.
  struct Pair {
    LatencyMode floor;
    LatencyMode candidate;
  };
  const Pair pairs[] = {{LatencyMode::cacheline, LatencyMode::spin},
                        {LatencyMode::cacheline, LatencyMode::hybrid},
                        {LatencyMode::futex_raw, LatencyMode::futex},
                        {LatencyMode::futex_raw, LatencyMode::semaphore}};
  auto schedule = [&](int round) {
    std::vector<LatencyMode> order;
    for (const Pair& p : pairs) {
      if (round % 2 == 0) {
        order.push_back(p.floor);
        order.push_back(p.candidate);
      } else {
        order.push_back(p.candidate);
        order.push_back(p.floor);
      }
      if (p.candidate == LatencyMode::spin) order.push_back(LatencyMode::cacheline_payload);
    }
    order.push_back(LatencyMode::pipe);
    std::erase_if(order, [&](LatencyMode m) { return !result_of(m).skipped.empty(); });
    return order;
  };
  const std::vector<LatencyMode> first = schedule(0);
  auto occurrences = [&](LatencyMode m) { return std::count(first.begin(), first.end(), m); };

  const SharedMapping mapping(kPayloadBytes);
  StreamSpec spec;
  spec.shape = {static_cast<std::uint32_t>(cfg.payload_bytes)};
  spec.dtype = Dtype::u8;
  Stream ping = Stream::create(cfg.stream_dir + "/bench-ping.im.shm", spec);
  Stream pong = Stream::create(cfg.stream_dir + "/bench-pong.im.shm", spec);
  int initiator_slot = -1;
  const ChildWatch watch;
  if (cfg.cores && !pin_to_cpu(cfg.cores->first)) {
    throw Error(errc_from_errno(errno), "bench: pinning to CPU " + std::to_string(cfg.cores->first) + ": " +
                                            std::strerror(errno));
  }

  const int rounds = std::max(cfg.rounds, 1);
  bool stopped = false;
  for (int round = 0; round < rounds && !stopped; ++round) {
    const std::vector<LatencyMode> order = schedule(round);
    for (std::size_t step = 0; step < order.size() && !stopped; ++step) {
      const LatencyMode m = order[step];
      const auto parts = static_cast<std::int64_t>(rounds) * occurrences(m);
      const std::int64_t n = std::max<std::int64_t>(1, (cfg.samples + parts - 1) / parts);
      const auto budget_ns = static_cast<std::int64_t>(cfg.max_seconds_per_mode * 1e9 / static_cast<double>(parts));
      if (cfg.progress) {
        cfg.progress("latency round " + std::to_string(round + 1) + "/" + std::to_string(rounds) + ": " +
                     mode_name(m) + " (" + std::to_string(step + 1) + "/" + std::to_string(order.size()) + ")");
      }
      LatencyResult& r = result_of(m);
      const LatencyResult before = r;
      try {
        if (interrupted != nullptr && stop_requested()) throw Error(Errc::interrupted, "bench: interrupted");
        run_once(cfg, mapping, ping, pong, initiator_slot, m, n, budget_ns, r);
      } catch (const Error& e) {
        if (e.errc() != Errc::interrupted || interrupted == nullptr) throw;
        r = before;  // the interrupted run's samples are partial: keep only whole runs
        stopped = true;
        *interrupted = true;
      }
    }
  }
  if (initiator_slot >= 0) pong.release_semaphore(initiator_slot);
  for (const LatencyResult& r : results) {
    if (r.budget_hit) {
      notes.push_back(std::string(mode_name(r.mode)) + ": the time budget (--max-seconds) ended some runs early; " +
                      std::to_string(r.round_trips_ns.size()) + " round trips measured");
    }
  }
  return results;
}

}  // namespace shmlink::bench
