// SPDX-License-Identifier: MIT
// What the Interface process tests share (interface_process_test.cpp, villas_interface_test.cpp):
// a forked child tied to this process, the two sides of the echo pair, the echo loop and the
// checked lockstep exchange. Whatever the protocol, the same calls and the same checks.
#pragma once

#include "test_util.hpp"

#include <shmlink/interface.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <span>

namespace shmlink::test {

/// test::spawn with a child that dies with this process. Call from the main thread only
/// (PR_SET_PDEATHSIG fires when the forking *thread* ends).
inline pid_t spawn_tied(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  return spawn([&body, parent] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) return 97;
    return body();
  });
}

/// An interface exporting "x" and importing "y" (the test side), or the mirror (the echo side).
inline Interface make_side(const InterfaceSpec& spec, bool test_side) {
  Interface i(spec);
  if (test_side) {
    i.export_signal(0, "x", SignalType::f64);
    i.import_signal(0, "y", SignalType::f64, "V");
  } else {
    i.export_signal(0, "y", SignalType::f64, "V");
    i.import_signal(0, "x", SignalType::f64);
  }
  return i;
}

/// Echo loop of a forked or threaded peer: reads x, writes 2x, until closed. Returns 0 when the
/// other side closed, else a code naming what went wrong (10 + |Errc| of a failed read, 6 for a
/// failed write). With `crash_after` >= 0 it SIGKILLs itself before its crash_after-th read.
inline int echo(Interface& i, long crash_after = -1) {
  using namespace std::chrono_literals;
  Sample s;
  for (long n = 0;; ++n) {
    if (n == crash_after) ::raise(SIGKILL);
    const Status st = i.read(s, 20s);
    if (st.code() == Errc::shut_down) return 0;
    if (!st.ok()) return 10 + static_cast<int>(-static_cast<int>(st.code()));
    const SignalValue y = SignalValue::of(2 * s.values.at(0).f);
    if (!i.write(std::span(&y, 1), 20s).ok()) return 6;
  }
}

/// Sends x = k for k in [0, n) and checks each reply: value 2k, sequence k, the sequence, origin
/// and receive flags, and both timestamps set.
inline void exchange(Interface& i, int n) {
  using namespace std::chrono_literals;
  Sample s;
  for (int k = 0; k < n; ++k) {
    const SignalValue x = SignalValue::of(static_cast<double>(k));
    ASSERT_EQ(i.write(std::span(&x, 1), 10s), Status(Errc::ok)) << "step " << k;
    ASSERT_EQ(i.read(s, 10s), Status(Errc::ok)) << "step " << k << ": " << i.peer().describe();
    ASSERT_EQ(s.sequence, static_cast<std::uint64_t>(k));
    ASSERT_EQ(s.values.size(), 1U);
    ASSERT_EQ(s.values[0].f, 2.0 * k);
    ASSERT_NE(s.flags & kSampleHasSequence, 0U);
    ASSERT_NE(s.flags & kSampleHasTsOrigin, 0U);
    ASSERT_NE(s.flags & kSampleHasTsReceived, 0U);
    ASSERT_GT(s.ts_origin_ns, 0);
    ASSERT_GT(s.ts_received_ns, 0);
  }
}

}  // namespace shmlink::test
