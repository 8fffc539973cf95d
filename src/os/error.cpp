// SPDX-License-Identifier: MIT
// Error category, static descriptions and errno mapping (include/shmlink/error.hpp).
#include <shmlink/error.hpp>

#include <cerrno>

namespace shmlink {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmlink"; }
  std::string message(int code) const override { return shmlink::strerror(static_cast<Errc>(code)); }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

const char* strerror(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return "success";
    case Errc::invalid_argument: return "invalid argument";
    case Errc::not_found: return "not found";
    case Errc::exists: return "already exists";
    case Errc::permission: return "permission denied";
    case Errc::layout: return "layout, version or size mismatch";
    case Errc::no_space: return "no space left";
    case Errc::system: return "system error";
    case Errc::timeout: return "timed out";
    case Errc::interrupted: return "interrupted by a signal";
    case Errc::would_block: return "nothing available yet";
    case Errc::size_mismatch: return "size does not match (frame size, or sample longer than max_values)";
    case Errc::closed: return "handle closed or moved-from";
    case Errc::out_of_range: return "index out of range";
    case Errc::name_too_long: return "name too long";
    case Errc::dtype_mismatch: return "element type does not match the stream's datatype";
    case Errc::busy: return "no free slot";
    case Errc::peer_exited: return "the peer process exited";
    case Errc::shut_down: return "the queue or interface was shut down: no more samples will come";
    case Errc::torn: return "read kept colliding with the writer";
    case Errc::writer_active: return "write flag stayed set (writer active or dead mid-write)";
    case Errc::replaced: return "channel was re-created or removed (its file or region entry)";
    case Errc::overwritten: return "reader was lapped: frames were overwritten before they were read";
    case Errc::incomplete: return "frame published with packets missing";
    case Errc::not_connected: return "memif interface not connected";
    case Errc::protocol: return "peer broke the protocol (bad message, descriptor or handshake)";
    case Errc::refused: return "peer refused the connection";
  }
  return "unknown error";
}

Errc errc_from_errno(int err) noexcept {
  switch (err) {
    case 0: return Errc::ok;
    case ENOENT: case ENOTDIR: return Errc::not_found;
    case EEXIST: return Errc::exists;
    case EACCES: case EPERM: case EROFS: return Errc::permission;
    case ENOSPC: case ENOMEM: case EDQUOT: case EFBIG: return Errc::no_space;
    case ETIMEDOUT: return Errc::timeout;
    case EINTR: return Errc::interrupted;
    case EAGAIN: return Errc::would_block;
    case EINVAL: return Errc::invalid_argument;
    case ENAMETOOLONG: return Errc::name_too_long;
    case EBUSY: return Errc::busy;
    default: return Errc::system;
  }
}

Error::Error(Errc code, const std::string& message)
    : std::system_error(make_error_code(code), message), message_(message) {}

}  // namespace shmlink
