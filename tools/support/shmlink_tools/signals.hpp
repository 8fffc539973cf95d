// SPDX-License-Identifier: MIT
/// @file signals.hpp
/// @brief Stop signals of the long-running commands (`monitor`, `bench`, `ivshmem-server`): one
/// handler for a set of signals, the previous handlers restored when the scope ends.
#pragma once

#include <signal.h>

#include <initializer_list>
#include <utility>
#include <vector>

namespace shmlink::tools {

/// Installs `handler` for each of `signals` (sigaction(2) with an empty mask and no flags: no
/// SA_RESTART, so that blocking reads, poll() and futex waits return EINTR and their loops look
/// at what the handler set), and restores the previous handler of each on destruction. The
/// handler must be async-signal-safe (set a `volatile std::sig_atomic_t`, write(2) to an eventfd).
/// A signal number that sigaction() refuses is skipped.
class SignalHandlers {
 public:
  /// Installs `handler` for `signals` (e.g. {SIGINT, SIGTERM}).
  SignalHandlers(void (*handler)(int), std::initializer_list<int> signals);
  /// Restores the previous handlers, in reverse order.
  ~SignalHandlers();
  SignalHandlers(const SignalHandlers&) = delete;
  SignalHandlers& operator=(const SignalHandlers&) = delete;

 private:
  std::vector<std::pair<int, struct sigaction>> previous_;
};

}  // namespace shmlink::tools
