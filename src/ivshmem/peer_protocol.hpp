// SPDX-License-Identifier: MIT
// The ivshmem-server protocol (version 0) as bytes: sending one message, assembling received
// bytes and descriptors into messages, and the client's view of the server's messages (the peer
// table). Kept apart from the sockets so the fuzzer drives it (tests/fuzz/fuzz_ivshmem_peer.cpp).
#pragma once

#include "os/sys.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shmlink::ivshmem::proto {

/// Bytes of one message: an 8-byte little-endian signed integer.
inline constexpr std::size_t kMessageBytes = 8;

/// Result of one non-blocking send.
enum class SendResult { sent, would_block, failed };

/// Sends `value` (little-endian) and, when `fd >= 0`, that descriptor with it (SCM_RIGHTS), in
/// one sendmsg (MSG_NOSIGNAL | MSG_DONTWAIT). A short send is `failed` (the stream is broken).
SendResult send_message(int socket, std::int64_t value, int fd) noexcept;

/// One message received: its value and the descriptor that came with it (if any).
struct Message {
  std::int64_t value = 0;
  os::UniqueFd fd;
};

/// Assembles a byte stream into messages. Descriptors received with bytes belong to the message
/// those bytes are part of; a second descriptor for one message is closed.
class Assembler {
 public:
  /// Adds `bytes` (at most the bytes still missing from the current message: read_size()) and
  /// the descriptors that arrived with them; returns the completed message, if any.
  std::optional<Message> feed(std::span<const std::byte> bytes, std::vector<os::UniqueFd> fds);
  /// Bytes to read next so that one read never spans two messages (1..8).
  [[nodiscard]] std::size_t read_size() const noexcept { return kMessageBytes - have_; }

 private:
  std::byte buf_[kMessageBytes]{};
  std::size_t have_ = 0;
  os::UniqueFd fd_;
};

/// What one message did to the table.
enum class Event { version, own_id, shared_memory, peer_vector, own_vector, peer_left, ignored };

/// The client's state of a server connection: checks each message against the protocol.
class PeerTable {
 public:
  /// @param where names the connection in errors ("ivshmem server /tmp/ivshmem_socket").
  explicit PeerTable(std::string where) : where_(std::move(where)) {}
  /// Applies one message, taking its descriptor.
  /// @throws Error protocol naming `where` and the message when the server broke the protocol.
  Event apply(Message m);

  /// True once the version, the id and the shared memory arrived.
  [[nodiscard]] bool ready() const noexcept { return phase_ == Phase::running; }
  [[nodiscard]] std::int64_t own_id() const noexcept { return own_id_; }
  /// The shared-memory descriptor (valid once ready(); take it with release()).
  os::UniqueFd& shared_memory() noexcept { return shm_; }
  std::vector<os::UniqueFd>& own_vectors() noexcept { return own_; }
  const std::map<std::uint16_t, std::vector<os::UniqueFd>>& peers() const noexcept { return peers_; }

 private:
  enum class Phase { version, id, shared_memory, running };
  std::string where_;
  Phase phase_ = Phase::version;
  std::int64_t own_id_ = -1;
  os::UniqueFd shm_;
  std::vector<os::UniqueFd> own_;
  std::map<std::uint16_t, std::vector<os::UniqueFd>> peers_;
};

}  // namespace shmlink::ivshmem::proto
