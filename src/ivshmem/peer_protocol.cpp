// SPDX-License-Identifier: MIT
// The ivshmem-server protocol version 0 as bytes (peer_protocol.hpp).
#include "ivshmem/peer_protocol.hpp"

#include "os/fd_passing.hpp"

#include <shmlink/ivshmem_server.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace shmlink::ivshmem::proto {

static_assert(std::endian::native == std::endian::little, "the protocol's integers are little-endian");

SendResult send_message(int socket, std::int64_t value, int fd) noexcept {
  // `value` is little-endian on this (asserted) little-endian host.
  const ssize_t n = os::send_with_fd(socket, std::as_bytes(std::span(&value, 1)), fd, MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(kMessageBytes)) return SendResult::sent;
  if (n == -EAGAIN || n == -EWOULDBLOCK) return SendResult::would_block;
  return SendResult::failed;  // an error, or a short send that broke the message stream
}

std::optional<Message> Assembler::feed(std::span<const std::byte> bytes, std::vector<os::UniqueFd> fds) {
  for (os::UniqueFd& f : fds) {
    if (!f) continue;
    if (!fd_) fd_ = std::move(f);  // the extra ones close when `fds` goes
  }
  const std::size_t take = bytes.size() < read_size() ? bytes.size() : read_size();
  std::memcpy(buf_ + have_, bytes.data(), take);
  have_ += take;
  if (have_ < kMessageBytes) return std::nullopt;
  Message m;
  std::memcpy(&m.value, buf_, kMessageBytes);
  m.fd = std::move(fd_);
  have_ = 0;
  return m;
}

namespace {
/// False when /proc shows that `fd` is something else than an eventfd (a pipe could raise SIGPIPE
/// on ring(), a socket could block); true when it is one or /proc cannot tell.
bool eventfd_or_unknown(int fd) {
  char link[64];
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(path.c_str(), link, sizeof link);
  if (n < 0) return true;
  return std::string_view(link, static_cast<std::size_t>(n)) == "anon_inode:[eventfd]";
}

std::string describe(const Message& m) {
  return "message " + std::to_string(m.value) + (m.fd ? " with a descriptor" : " without a descriptor");
}
}  // namespace

Event PeerTable::apply(Message m) {
  switch (phase_) {
    case Phase::version:
      if (m.value != kProtocolVersion)
        throw Error(Errc::protocol, where_ + ": protocol version " + std::to_string(m.value) +
                                        " is not the version 0 this peer speaks");
      phase_ = Phase::id;  // a descriptor here is closed with m
      return Event::version;
    case Phase::id:
      if (m.value < 0 || m.value > kMaxPeerId)
        throw Error(Errc::protocol, where_ + ": the id given to this peer, " + std::to_string(m.value) +
                                        ", is outside 0..65535");
      own_id_ = m.value;
      phase_ = Phase::shared_memory;
      return Event::own_id;
    case Phase::shared_memory:
      if (m.value != -1 || !m.fd)
        throw Error(Errc::protocol, where_ + ": expected the shared memory (-1 with a descriptor), got " + describe(m));
      shm_ = std::move(m.fd);
      phase_ = Phase::running;
      return Event::shared_memory;
    case Phase::running:
      break;
  }
  if (m.value < 0 || m.value > kMaxPeerId)
    throw Error(Errc::protocol, where_ + ": " + describe(m) + ": a peer id must be in 0..65535");
  if (m.fd && !eventfd_or_unknown(m.fd.get()))
    throw Error(Errc::protocol, where_ + ": the descriptor sent for peer " + std::to_string(m.value) +
                                    " is not an eventfd");
  if (m.value == own_id_) {
    if (!m.fd || own_.size() >= kMaxVectors) return Event::ignored;
    own_.push_back(std::move(m.fd));
    return Event::own_vector;
  }
  const auto id = static_cast<std::uint16_t>(m.value);
  if (!m.fd) return peers_.erase(id) != 0 ? Event::peer_left : Event::ignored;
  std::vector<os::UniqueFd>& v = peers_[id];
  if (v.size() >= kMaxVectors) return Event::ignored;
  v.push_back(std::move(m.fd));
  return Event::peer_vector;
}

}  // namespace shmlink::ivshmem::proto
