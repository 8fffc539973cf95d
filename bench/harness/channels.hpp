// SPDX-License-Identifier: MIT
/// @file channels.hpp
/// @brief The channels every bench compares with (pingpong.hpp explains the channel shape): the
/// raw cache-line and futex floors, the cache-line ping-pong carrying the whole message, and
/// byte streams (pipes, unix stream sockets) moving whole messages with blocking read / write.
#pragma once

#include "harness/pingpong.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace shmlink::bench {

/// Smallest read buffer of the byte-stream consumers, in bytes.
inline constexpr std::size_t kReadBufferBytes = 64 * 1024;

// ---- messages -------------------------------------------------------------------------------

/// Stores a sequence number into the first 8 bytes of a message.
inline void put_seq(std::byte* m, std::uint64_t seq) noexcept { std::memcpy(m, &seq, sizeof seq); }
/// The sequence number in the first 8 bytes of a message.
inline std::uint64_t get_seq(const std::byte* m) noexcept {
  std::uint64_t seq = 0;
  std::memcpy(&seq, m, sizeof seq);
  return seq;
}

/// "sample 12 arrived where 11 was expected".
inline std::string order_error(std::uint64_t got, std::uint64_t want) {
  return "sample " + std::to_string(got) + " arrived where " + std::to_string(want) + " was expected";
}

/// Producer loop of the message transports: messages `first` .. `first + n - 1`, each a copy of
/// `msg` with its sequence number, `batch` per call of `send(bytes, size)` (false: stop). `buf`
/// holds the batch (filled on the first call). @return false when a send failed.
template <class Send>
bool produce_batches(std::size_t batch, const std::vector<std::byte>& msg, std::vector<std::byte>& buf,
                     std::uint64_t first, std::int64_t n, Send&& send) noexcept {
  const std::size_t bytes = msg.size();
  if (buf.empty()) {
    buf.resize(batch * bytes);
    for (std::size_t i = 0; i < batch; ++i) std::memcpy(buf.data() + i * bytes, msg.data(), bytes);
  }
  const auto end = first + static_cast<std::uint64_t>(n);
  for (std::uint64_t seq = first; seq < end;) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(batch, end - seq));
    for (std::size_t i = 0; i < k; ++i) put_seq(buf.data() + i * bytes, seq + i);
    if (!send(buf.data(), k * bytes)) return false;
    seq += k;
  }
  return true;
}

// ---- blocking byte I/O ---------------------------------------------------------------------

/// Writes all `n` bytes (retrying after EINTR and short writes). @return 0, or the errno.
inline int write_all(int fd, const std::byte* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

/// Result of read_exact.
enum class ReadResult { ok, eof, interrupted, error };

/// Reads exactly `n` bytes. With `stop_on_eintr`, an EINTR before the first byte returns
/// `interrupted` (the caller checks for stop requests); within a message it retries.
inline ReadResult read_exact(int fd, std::byte* p, std::size_t n, bool stop_on_eintr) noexcept {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, p + got, n - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r == 0) {
      return ReadResult::eof;
    } else if (errno == EINTR) {
      if (stop_on_eintr && got == 0) return ReadResult::interrupted;
    } else {
      return ReadResult::error;
    }
  }
  return ReadResult::ok;
}

// ---- channels --------------------------------------------------------------------------------
//
// Latency: a_send / a_recv run in the parent (the initiator), b_recv / b_send in the child (the
// responder, which echoes). Throughput: produce runs in the child, consume in the parent.

/// Floor: cache-line ping-pong, both sides spinning with PAUSE on the other's line.
struct CachelineChannel {
  Shared* sh;
  std::uint64_t last = 0;  ///< responder: last value seen on ping

  CachelineChannel(Run& run, Side /*side*/) : sh(run.sh) {}
  /// Initiator: publish `seq` on ping.
  Fail a_send(std::uint64_t seq) noexcept {
    sh->ping.value.store(seq, std::memory_order_release);
    return Fail::none;
  }
  /// Initiator: spin until pong carries `seq`.
  Fail a_recv(std::uint64_t seq) noexcept {
    for (std::uint32_t i = 1;; ++i) {
      const std::uint64_t v = sh->pong.value.load(std::memory_order_acquire);
      if (v == seq) return Fail::none;
      if (v == kDead) return Fail::peer_gone;
      if (i % 65536 == 0 && stop_requested()) return Fail::stopped;
      relax();
    }
  }
  /// Responder: spin until ping changes.
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint64_t v;
    while ((v = sh->ping.value.load(std::memory_order_acquire)) == last) relax();
    last = v;
    *seq = v;
    return true;
  }
  /// Responder: echo `seq` on pong.
  bool b_send(std::uint64_t seq) noexcept {
    sh->pong.value.store(seq, std::memory_order_release);
    return true;
  }
};

/// Reference: the cache-line ping-pong carrying the whole message: the sender copies it into a
/// shared buffer, then publishes the sequence number (release); the receiver spins on the
/// number (acquire), then copies the message out and checks it. The least any shared-memory
/// transport of this message can cost.
struct MessageChannel {
  Shared* sh;
  std::byte* to_child;
  std::byte* to_parent;
  std::vector<std::byte> tx;  ///< outgoing message (private)
  std::vector<std::byte> rx;  ///< incoming message (private)
  std::uint64_t last = 0;     ///< responder: last value seen on ping

  MessageChannel(Run& run, Side /*side*/)
      : sh(run.sh), to_child(run.msg_to_child), to_parent(run.msg_to_parent),
        tx(run.message), rx(tx.size()) {}
  /// Copies the message carrying `seq` into `data`, then publishes `seq` on `flag`.
  void put(std::byte* data, Line& flag, std::uint64_t seq) noexcept {
    put_seq(tx.data(), seq);
    std::memcpy(data, tx.data(), tx.size());
    flag.value.store(seq, std::memory_order_release);
  }
  /// Copies the message out of `data`; returns its sequence number.
  std::uint64_t take(const std::byte* data) noexcept {
    std::memcpy(rx.data(), data, rx.size());
    keep(rx.data());
    return get_seq(rx.data());
  }
  Fail a_send(std::uint64_t seq) noexcept {
    put(to_child, sh->ping, seq);
    return Fail::none;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    for (std::uint32_t i = 1;; ++i) {
      const std::uint64_t v = sh->pong.value.load(std::memory_order_acquire);
      if (v == seq) return take(to_parent) == seq ? Fail::none : Fail::error;
      if (v == kDead) return Fail::peer_gone;
      if (i % 65536 == 0 && stop_requested()) return Fail::stopped;
      relax();
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint64_t v;
    while ((v = sh->ping.value.load(std::memory_order_acquire)) == last) relax();
    last = v;
    *seq = v;
    return v == kStop || take(to_child) == v;
  }
  bool b_send(std::uint64_t seq) noexcept {
    put(to_parent, sh->pong, seq);
    return true;
  }
};

/// Floor: futex ping-pong: store, FUTEX_WAKE; FUTEX_WAIT while unchanged; no spinning.
struct FutexChannel {
  Shared* sh;
  std::uint32_t last = 0;  ///< responder: last value seen on fping

  FutexChannel(Run& run, Side /*side*/) : sh(run.sh) {}
  Fail a_send(std::uint64_t seq) noexcept {
    sh->fping.value.store(static_cast<std::uint32_t>(seq), std::memory_order_release);
    futex_wake(sh->fping.value);
    return Fail::none;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    const auto want = static_cast<std::uint32_t>(seq);
    for (;;) {
      const std::uint32_t v = sh->fpong.value.load(std::memory_order_acquire);
      if (v == want) return Fail::none;
      if (v == static_cast<std::uint32_t>(kDead)) return Fail::peer_gone;
      if (stop_requested()) return Fail::stopped;
      futex_wait(sh->fpong.value, v);
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    std::uint32_t v;
    while ((v = sh->fping.value.load(std::memory_order_acquire)) == last) futex_wait(sh->fping.value, v);
    last = v;
    *seq = v == static_cast<std::uint32_t>(kStop) ? kStop : v;
    return true;
  }
  bool b_send(std::uint64_t seq) noexcept {
    sh->fpong.value.store(static_cast<std::uint32_t>(seq), std::memory_order_release);
    futex_wake(sh->fpong.value);
    return true;
  }
};

/// Peers: a pipe pair or a unix stream socket, blocking read / write of whole messages.
struct FdChannel {
  Run& run;
  int in = -1;                 ///< this side reads here
  int out = -1;                ///< this side writes here
  std::vector<std::byte> msg;  ///< the message (latency: received and echoed in place)
  std::vector<std::byte> buf;  ///< throughput: batch of messages, or the read buffer

  FdChannel(Run& r, Side side) : run(r), msg(r.message) {
    run.close_other_side(side);
    in = side == Side::parent ? r.parent_in : r.child_in;
    out = side == Side::parent ? r.parent_out : r.child_out;
  }

  Fail a_send(std::uint64_t seq) noexcept {
    put_seq(msg.data(), seq);
    const int err = write_all(out, msg.data(), msg.size());
    if (err == 0) return Fail::none;
    if (err == EPIPE) return Fail::peer_gone;
    run.error = std::string("write: ") + std::strerror(err);
    return Fail::error;
  }
  Fail a_recv(std::uint64_t seq) noexcept {
    for (;;) {
      switch (read_exact(in, msg.data(), msg.size(), true)) {
        case ReadResult::ok:
          if (get_seq(msg.data()) == seq) return Fail::none;
          run.error = order_error(get_seq(msg.data()), seq);
          return Fail::error;
        case ReadResult::eof: return Fail::peer_gone;
        case ReadResult::interrupted:
          if (stop_requested()) return Fail::stopped;
          continue;
        case ReadResult::error: run.error = std::string("read: ") + std::strerror(errno); return Fail::error;
      }
    }
  }
  bool b_recv(std::uint64_t* seq) noexcept {
    if (read_exact(in, msg.data(), msg.size(), false) != ReadResult::ok) {
      run.error = "read: end of file or error";
      return false;
    }
    *seq = get_seq(msg.data());
    return true;
  }
  bool b_send(std::uint64_t /*seq*/) noexcept { return write_all(out, msg.data(), msg.size()) == 0; }

  /// Child: writes messages `first` .. `first + n - 1`, `batch` per write.
  bool produce(std::uint64_t first, std::int64_t n) noexcept {
    return produce_batches(run.batch, msg, buf, first, n, [this](const std::byte* p, std::size_t size) {
      if (const int err = write_all(out, p, size); err != 0) {
        run.error = std::string("write: ") + std::strerror(err);
        return false;
      }
      return true;
    });
  }

  /// Parent: reads messages `first` .. `first + n - 1` (reads of up to the buffer's size, at
  /// least 64 KiB), checking every message's sequence number.
  Fail consume(std::uint64_t first, std::int64_t n) noexcept {
    const std::size_t bytes = msg.size();
    if (buf.empty()) buf.resize(std::max(kReadBufferBytes, std::max<std::size_t>(2, run.batch) * bytes));
    const auto end = first + static_cast<std::uint64_t>(n);
    std::uint64_t want = first;
    std::size_t have = 0;  // bytes of a partial message kept at the front of buf
    while (want < end) {
      // Never read past the last expected message: the next run's data is not ours.
      const std::size_t room = std::min(buf.size() - have, static_cast<std::size_t>(end - want) * bytes - have);
      const ssize_t r = ::read(in, buf.data() + have, room);
      if (r == 0) return Fail::peer_gone;
      if (r < 0) {
        if (errno != EINTR) {
          run.error = std::string("read: ") + std::strerror(errno);
          return Fail::error;
        }
        if (stop_requested()) return Fail::stopped;
        continue;
      }
      have += static_cast<std::size_t>(r);
      std::size_t off = 0;
      for (; off + bytes <= have; off += bytes, ++want) {
        if (get_seq(buf.data() + off) != want) {
          run.error = order_error(get_seq(buf.data() + off), want);
          return Fail::error;
        }
      }
      if (off < have) std::memmove(buf.data(), buf.data() + off, have - off);
      have -= off;
    }
    return Fail::none;
  }
};

}  // namespace shmlink::bench
