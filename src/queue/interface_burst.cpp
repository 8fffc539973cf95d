// SPDX-License-Identifier: MIT
// Interface::read_burst: the peer's samples handed to a handler as SampleViews, zero-copy from
// the cells when they are already there (Queue::try_pop_burst with a handler); what has to be
// waited for, and protocol villas, goes through pop() and the read scratch.
#include "queue/interface_impl.hpp"

#include "os/clock.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace shmlink {

namespace {

/// The handler of one burst, with the receive time read() would stamp.
struct Stamped {
  Interface::SampleHandlerFn fn;
  void* ctx;
  std::int64_t received_ns;

  static void call(void* self, const SampleView& v) noexcept {
    const auto& s = *static_cast<const Stamped*>(self);
    SampleView out = v;
    out.ts_received_ns = s.received_ns;
    out.flags |= kSampleHasTsReceived;
    s.fn(s.ctx, out);
  }
};

/// A view of a Sample (the read scratch), valid while it is not written again.
SampleView view_of(const Sample& s) noexcept {
  return SampleView{s.sequence, s.ts_origin_ns, s.ts_received_ns, s.flags, std::span<const SignalValue>(s.values)};
}

}  // namespace

Status Interface::read_burst_with(SampleHandlerFn fn, void* ctx, std::size_t limit, std::size_t& received,
                                  std::chrono::nanoseconds timeout) noexcept {
  received = 0;
  if (!impl_ || !impl_->open || impl_->foreign()) return Errc::closed;
  if (limit == 0 || fn == nullptr) return {};
  Impl& m = *impl_;
  if (!m.vl) {  // what is already there: straight from the cells
    Stamped stamped{fn, ctx, os::realtime_ns()};
    const Status st = m.in.try_pop_burst_with(&Stamped::call, &stamped, limit, received);
    if (st.code() == Errc::shut_down) m.note_shut_down();
    if (st.code() != Errc::would_block) return st;
  }
  // Nothing there (or protocol villas): one sample as read() gets it, waiting and checking the
  // peer as it does, then what else came without waiting.
  Status st = m.pop(m.read_scratch, timeout);
  if (!st.ok()) return st;
  fn(ctx, view_of(m.read_scratch));
  received = 1;
  if (received == limit) return {};
  if (!m.vl) {
    std::size_t more = 0;
    Stamped stamped{fn, ctx, os::realtime_ns()};
    st = m.in.try_pop_burst_with(&Stamped::call, &stamped, limit - received, more);
    received += more;
    if (st.code() == Errc::shut_down) m.note_shut_down();  // the next read answers it
    return {};
  }
  while (received < limit && m.pop(m.read_scratch, std::chrono::nanoseconds::zero()).ok()) {
    fn(ctx, view_of(m.read_scratch));
    ++received;
  }
  return {};  // whatever stopped the run is answered by the next read
}

}  // namespace shmlink
