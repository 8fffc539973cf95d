// SPDX-License-Identifier: MIT
// Stop signals of the long-running commands (shmlink_tools/signals.hpp).
#include "shmlink_tools/signals.hpp"

namespace shmlink::tools {

SignalHandlers::SignalHandlers(void (*handler)(int), std::initializer_list<int> signals) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR
  previous_.reserve(signals.size());
  for (const int sig : signals) {
    struct sigaction old {};
    if (::sigaction(sig, &sa, &old) == 0) previous_.emplace_back(sig, old);
  }
}

SignalHandlers::~SignalHandlers() {
  for (auto it = previous_.rbegin(); it != previous_.rend(); ++it) ::sigaction(it->first, &it->second, nullptr);
}

}  // namespace shmlink::tools
