// SPDX-License-Identifier: MIT
// The Interface's queues inside a region (include/shmlink/interface.hpp, `InterfaceSpec::out` /
// `in` given as `PATH:NAME` or `ivshmem:NAME`; docs/design/queues.md "Interface in a region"):
// creating its output entry, attaching to the peer's, removing its own at close. The file-based
// handshake, exec and the rest are in interface.cpp; Interface::Impl is in interface_impl.hpp.
#include <shmlink/interface.hpp>

#include "os/clock.hpp"
#include "os/log_internal.hpp"
#include "queue/interface_impl.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <utility>

namespace shmlink {
QueueSpec Interface::Impl::output_spec() const {
  QueueSpec qs;
  qs.capacity = spec.capacity;
  qs.max_values = values_per_sample();
  qs.kind = spec.kind;
  qs.wait = spec.wait;
  qs.signals = exports;
  qs.permissions = spec.permissions;
  return qs;
}

void Interface::Impl::create_output_in_region() {
  // PurgeAndCreate, as VILLASnode unlinks and retries (12.1): an entry of that name is a
  // previous incarnation's (or a dead peer's) output. A live owner on another kernel cannot be
  // told from a dead one, so the names of one region must belong to one Interface each.
  out = region.create_queue(out_entry, output_spec(), OpenMode::PurgeAndCreate);
  out.set_wait_mode(spec.wait);
  out_path = out.path();
}

void Interface::Impl::take_input(Queue q) {
  in = std::move(q);
  in.set_wait_mode(spec.wait);
  if (!peer.launched) {
    peer.pid = in.info().creator_pid;
    peer.command = in.path();
  }
  check_imports();
}

void Interface::Impl::attach_in_region(std::int64_t deadline) {
  std::string last = "it does not exist";
  for (;;) {
    if (peer.launched && reap(WNOHANG))
      throw Error(Errc::peer_exited, label() + ": " + peer.describe() + " before attaching");
    try {
      Queue q = region.open_queue(in_entry);
      if (q.is_shut()) {
        last = "it is shut (its owner is closing)";
      } else {
        take_input(std::move(q));
        // Its creator's pid means something here only when the entry's owner token (boot hash,
        // pid) is of this kernel and pid namespace: a guest's pid would name a host process.
        peer_local = false;
        for (const RegionEntry& e : region.entries())
          if (e.name == in_entry && e.state == EntryState::ready) peer_local = Region::owner_is_local(e);
        return;
      }
    } catch (const Error& e) {
      if (e.errc() != Errc::not_found) throw;
      last = "it does not exist (or is not ready)";
    }
    if (os::monotonic_ns() >= deadline) {
      const double s = static_cast<double>(spec.attach_timeout.count()) / 1e9;
      throw Error(Errc::timeout, label() + ": no peer attached within " + fmt_seconds(s) + ": the peer's queue " +
                                     quote(region.path() + ":" + in_entry) + ": " + last);
    }
    std::this_thread::sleep_for(kAttachPoll);
  }
}

void Interface::Impl::remove_output() noexcept {
  if (in_region()) {
    // Only while the entry is still ours (not re-created by a newer incarnation).
    if (!out.valid() || out.replaced() || !region.valid()) return;
    try {
      region.remove(out_entry);
    } catch (const Error& e) {
      detail::log(LogLevel::warn, label() + ": removing its output " + quote(out_path) + ": " + e.what());
    }
    return;
  }
  if (lock_fd < 0 || out_path.empty()) return;
  struct stat a {}, b {};
  if (::fstat(lock_fd, &a) == 0 && ::lstat(out_path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
    ::unlink(out_path.c_str());
}

}  // namespace shmlink
