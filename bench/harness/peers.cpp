// SPDX-License-Identifier: MIT
// The Boost.Interprocess and ZeroMQ transports of the bench harness (peers.hpp).
#include "harness/peers.hpp"

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <zmq.hpp>

#include <unistd.h>

#include <exception>

namespace shmlink::bench {

namespace bip = boost::interprocess;

PeerRun::~PeerRun() {
  for (const std::string* m : {&mq_to_child, &mq_to_parent})
    if (!m->empty()) bip::message_queue::remove(m->c_str());
  if (!endpoint.empty()) ::unlink(endpoint.substr(6).c_str());  // "ipc://" + path
}

void make_mq(const std::string& name, std::size_t messages, std::size_t message_bytes) {
  bip::message_queue::remove(name.c_str());
  try {
    bip::message_queue q(bip::create_only, name.c_str(), messages, message_bytes);
  } catch (const bip::interprocess_exception& e) {
    throw Error(Errc::system, "creating Boost message_queue /dev/shm/" + name + ": " + e.what());
  }
}

std::string zmq_endpoint(const std::string& dir) {
  static unsigned counter = 0;
  return "ipc://" + dir + "/bench-zmq-" + std::to_string(counter++) + ".sock";
}

// ---- Boost.Interprocess message_queue -------------------------------------------------------

namespace {

/// Opens the Boost message_queue `name`. @throws Error naming it.
std::unique_ptr<bip::message_queue> open_mq(const std::string& name) {
  try {
    return std::make_unique<bip::message_queue>(bip::open_only, name.c_str());
  } catch (const bip::interprocess_exception& e) {
    throw Error(Errc::system, "opening Boost message_queue /dev/shm/" + name + ": " + e.what());
  }
}

}  // namespace

struct BoostTransport::Impl {
  std::unique_ptr<bip::message_queue> out;  ///< the queue this side sends to
  std::unique_ptr<bip::message_queue> in;   ///< the queue this side receives from
  boost::posix_time::ptime deadline;        ///< absolute limit of timed_receive
  unsigned calls = 0;                       ///< receives since `deadline` was set

  /// Sets `deadline` five wait slices ahead (done every 256 receives and after a timeout, so the
  /// clock is read rarely; a later deadline only delays noticing a dead child).
  void refresh_deadline() {
    deadline = boost::posix_time::microsec_clock::universal_time() +
               boost::posix_time::milliseconds(kWaitSliceMs * 5);
    calls = 0;
  }
};

BoostTransport::BoostTransport(PeerRun& run, Side side) : impl_(std::make_unique<Impl>()) {
  const std::string& out_name = side == Side::parent ? run.mq_to_child : run.mq_to_parent;
  const std::string& in_name = side == Side::parent ? run.mq_to_parent : run.mq_to_child;
  if (!out_name.empty()) impl_->out = open_mq(out_name);
  if (!in_name.empty()) impl_->in = open_mq(in_name);
  impl_->refresh_deadline();
}

BoostTransport::~BoostTransport() = default;

bool BoostTransport::send(const std::byte* p, std::size_t size, std::string& error) noexcept {
  try {
    impl_->out->send(p, size, 0);
    return true;
  } catch (const std::exception& e) {
    error = std::string("message_queue send: ") + e.what();
    return false;
  }
}

std::int64_t BoostTransport::receive(std::byte* p, std::size_t size, std::string& error) noexcept {
  try {
    if (++impl_->calls == 256) impl_->refresh_deadline();
    bip::message_queue::size_type got = 0;
    unsigned prio = 0;
    if (impl_->in->timed_receive(p, size, got, prio, impl_->deadline)) return static_cast<std::int64_t>(got);
    impl_->refresh_deadline();
    return 0;
  } catch (const std::exception& e) {
    error = std::string("message_queue receive: ") + e.what();
    return -1;
  }
}

// ---- ZeroMQ PAIR over ipc:// ------------------------------------------------------------------

struct ZmqTransport::Impl {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::pair};
};

ZmqTransport::ZmqTransport(PeerRun& run, Side side) : impl_(std::make_unique<Impl>()) {
  try {
    if (side == Side::parent) {
      impl_->sock.set(zmq::sockopt::linger, 0);
      impl_->sock.set(zmq::sockopt::rcvtimeo, kWaitSliceMs);
      impl_->sock.bind(run.endpoint);
    } else {
      impl_->sock.set(zmq::sockopt::linger, -1);  // closing flushes what the producer sent
      impl_->sock.connect(run.endpoint);
    }
  } catch (const zmq::error_t& e) {
    throw Error(errc_from_errno(e.num()), std::string(side == Side::parent ? "binding " : "connecting ") +
                                              run.endpoint + ": " + e.what());
  }
}

ZmqTransport::~ZmqTransport() {
  impl_->sock.close();
  impl_->ctx.close();
}

bool ZmqTransport::send(const std::byte* p, std::size_t size, std::string& error) noexcept {
  for (;;) {
    try {
      if (impl_->sock.send(zmq::const_buffer(p, size), zmq::send_flags::none)) return true;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      error = std::string("zmq send: ") + e.what();
      return false;
    }
  }
}

std::int64_t ZmqTransport::receive(std::byte* p, std::size_t size, std::string& error) noexcept {
  try {
    const auto got = impl_->sock.recv(zmq::mutable_buffer(p, size), zmq::recv_flags::none);
    if (!got) return 0;
    if (got->untruncated_size > size) {
      error = "zmq delivered a message of " + std::to_string(got->untruncated_size) + " bytes";
      return -1;
    }
    return static_cast<std::int64_t>(got->size);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    error = std::string("zmq recv: ") + e.what();
    return -1;
  }
}

}  // namespace shmlink::bench
