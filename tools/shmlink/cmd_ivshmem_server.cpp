// SPDX-License-Identifier: MIT
// `shmlink ivshmem-server`: the doorbell server of QEMU's ivshmem-doorbell device
// (include/shmlink/ivshmem_server.hpp; docs/cli.md, docs/vm.md "The doorbell server"). Options as
// QEMU's contrib ivshmem-server (-S -M -m -l -n -F -p), and pscom's spelling (-s NAME -m SIZE_MB
// -p SOCKET -n N -c MODE), told apart by -s.
#include "common.hpp"

#include <shmlink/ivshmem_server.hpp>
#include <shmlink_tools/signals.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace shmlink::cli {

namespace {

/// Options of `ivshmem-server` (both spellings land here; run() sorts them out).
struct IvshmemServerOptions {
  std::string socket;         ///< -S (QEMU) socket path
  std::string shm_name;       ///< -M (QEMU) POSIX shm object name
  std::string m;              ///< -m: a path (QEMU) or a size in MB (pscom, with -s)
  std::string size;           ///< -l (QEMU) size
  unsigned vectors = 1;       ///< -n
  bool foreground = false;    ///< -F
  std::string p;              ///< -p: the pid file (QEMU) or the socket (pscom, with -s)
  std::string pscom_shm;      ///< -s (pscom) shm object name
  std::string pscom_mode;     ///< -c (pscom) customisation mode: accepted, not used
  std::string permissions = "0660";
  std::string group;
  unsigned max_peers = 256;
  bool keep = false;
  bool replace = false;
};

std::atomic<shmlink::ivshmem::Server*> g_server{nullptr};

void ivshmem_stop_signal(int) {
  if (auto* s = g_server.load()) s->stop();  // async-signal-safe: one write(2) to an eventfd
}

/// pscom's -m: megabytes, or a number with M or G.
std::optional<std::uint64_t> parse_pscom_size(const std::string& text) {
  if (!text.empty() && (text.back() == 'M' || text.back() == 'm' || text.back() == 'G' || text.back() == 'g'))
    return parse_size(text);
  std::uint64_t mb = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), mb);
  if (ec != std::errc() || ptr != text.data() + text.size() || mb > (1ULL << 40)) return std::nullopt;
  return mb << 20;
}

/// The group named (or numbered) by `text`.
gid_t group_of(const std::string& text) {
  gid_t gid = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), gid);
  if (ec == std::errc() && ptr == text.data() + text.size()) return gid;
  if (const ::group* g = ::getgrnam(text.c_str())) return g->gr_gid;
  throw Error(Errc::invalid_argument, "ivshmem-server: --group " + text + ": no such group");
}

/// Builds the server's spec from either spelling. @throws Error invalid_argument on a bad mix.
ivshmem::ServerSpec spec_of(const IvshmemServerOptions& o, std::string* pid_file) {
  ivshmem::ServerSpec spec;
  std::string name = "ivshmem";
  if (!o.pscom_shm.empty()) {  // pscom: -s NAME -m SIZE_MB -p SOCKET
    if (!o.socket.empty() || !o.shm_name.empty() || !o.size.empty())
      throw Error(Errc::invalid_argument,
                  "ivshmem-server: -s (pscom's spelling: -s NAME -m SIZE_MB -p SOCKET) cannot be mixed with -S, -M or -l");
    name = o.pscom_shm;
    spec.bytes = 1ULL << 20;  // pscom's default: 1 MiB
    if (!o.m.empty()) {
      const auto b = parse_pscom_size(o.m);
      if (!b) throw Error(Errc::invalid_argument, "ivshmem-server: -m " + o.m + ": with -s, -m is a size in MB (64, 512M, 1G)");
      spec.bytes = *b;
    }
    spec.socket_path = o.p.empty() ? ivshmem::kDefaultSocket : o.p;
    spec.shm_path = "/dev/shm/" + name;
  } else {  // QEMU contrib: -S SOCKET -M NAME | -m PATH -l SIZE -p PIDFILE
    if (!o.shm_name.empty() && !o.m.empty())
      throw Error(Errc::invalid_argument, "ivshmem-server: -M (a shm object) and -m (a path) exclude each other");
    if (!o.shm_name.empty()) name = o.shm_name;
    spec.socket_path = o.socket.empty() ? ivshmem::kDefaultSocket : o.socket;
    spec.bytes = 4ULL << 20;
    if (!o.size.empty()) spec.bytes = *parse_size(o.size);  // checked by the validator
    if (o.m.empty()) {
      spec.shm_path = "/dev/shm/" + name;
    } else {
      std::error_code ec;
      spec.shm_path = std::filesystem::is_directory(o.m, ec) ? o.m + "/" + name : o.m;
    }
    *pid_file = o.p;
  }
  if (name.empty() || name.find('/') != std::string::npos)
    throw Error(Errc::invalid_argument, "ivshmem-server: shm name '" + name + "' must be a name without '/'");
  spec.vectors = o.vectors;
  spec.max_peers = o.max_peers;
  spec.permissions = *parse_permissions(o.permissions);
  if (!o.group.empty()) spec.group = group_of(o.group);
  spec.keep_shm = o.keep;
  spec.replace = o.replace;
  // Absolute paths: a daemon changes to / and still removes its files at exit.
  spec.socket_path = std::filesystem::absolute(spec.socket_path).string();
  spec.shm_path = std::filesystem::absolute(spec.shm_path).string();
  if (!pid_file->empty()) *pid_file = std::filesystem::absolute(*pid_file).string();
  return spec;
}

void write_pid_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(errc_from_errno(errno), "writing pid file " + path + ": " + std::strerror(errno));
  const std::string text = std::to_string(::getpid()) + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) throw Error(Errc::system, "writing pid file " + path);
}

/// Detaches from the terminal: the parent returns once the child wrote its pid file (true in the
/// parent, which must then _exit without cleaning up what the child now owns).
bool daemonize(const std::string& pid_file) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw Error(Errc::system, std::string("ivshmem-server: pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(Errc::system, std::string("ivshmem-server: fork: ") + std::strerror(errno));
  if (pid > 0) {
    ::close(ready[1]);
    char c = 0;
    const ssize_t n = ::read(ready[0], &c, 1);
    ::_exit(n == 1 ? kExitOk : kExitFailure);
  }
  ::close(ready[0]);
  ::setsid();
  if (!pid_file.empty()) write_pid_file(pid_file);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (null > 2) ::close(null);
  }
  if (::chdir("/") != 0) {
  }
  const char c = 1;
  (void)!::write(ready[1], &c, 1);
  ::close(ready[1]);
  return false;
}

int run_server(const IvshmemServerOptions& o) {
  std::string pid_file;
  const ivshmem::ServerSpec spec = spec_of(o, &pid_file);
  if (!o.pscom_mode.empty())
    spdlog::info("ivshmem-server: -c {}: the shared memory holds a shmlink region directory whatever the mode", o.pscom_mode);
  ivshmem::Server server = ivshmem::Server::start(spec);
  const bool foreground = o.foreground || !o.pscom_shm.empty();  // pscom's server has no daemon mode
  fmt::print("shmlink ivshmem-server: listening on {}, shared memory {} ({} bytes, {} vector{}){}\n", spec.socket_path,
             spec.shm_path, spec.bytes, spec.vectors, spec.vectors == 1 ? "" : "s",
             foreground ? "" : ", running in the background");
  std::fflush(stdout);
  if (!foreground) daemonize(pid_file);
  else if (!pid_file.empty()) write_pid_file(pid_file);
  g_server.store(&server);
  const tools::SignalHandlers signals(ivshmem_stop_signal, {SIGINT, SIGTERM, SIGHUP});
  int rc = kExitOk;
  try {
    server.run();
  } catch (const Error& e) {
    rc = report_error(e);
  }
  g_server.store(nullptr);
  if (!pid_file.empty()) ::unlink(pid_file.c_str());
  return rc;
}

/// Options of `ivshmem-client`.
struct IvshmemClientOptions {
  std::string socket = ivshmem::kDefaultSocket;  ///< -S
  unsigned vectors = 1;                           ///< -n: own vectors to wait for at connect
  std::vector<std::string> rings;                 ///< --ring PEER[:VECTOR]
  int wait_vector = -1;                           ///< --wait VECTOR
  double timeout = 10;                            ///< seconds for connect and --wait
  bool json = false;
};

int run_client(const IvshmemClientOptions& o) {
  ivshmem::PeerOptions po;
  po.vectors = o.vectors;
  po.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout * 1000));
  ivshmem::Peer peer = ivshmem::Peer::connect(o.socket, po);
  (void)peer.update(std::chrono::milliseconds(0));
  for (const std::string& r : o.rings) {
    unsigned id = 0, vector = 0;
    const auto colon = r.find(':');
    const std::string id_text = r.substr(0, colon);
    auto [p1, e1] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    bool ok = e1 == std::errc() && p1 == id_text.data() + id_text.size() && id <= 65535;
    if (colon != std::string::npos) {
      const std::string v = r.substr(colon + 1);
      auto [p2, e2] = std::from_chars(v.data(), v.data() + v.size(), vector);
      ok = ok && e2 == std::errc() && p2 == v.data() + v.size();
    }
    if (!ok) throw Error(Errc::invalid_argument, "ivshmem-client: --ring " + r + ": expected PEER or PEER:VECTOR");
    const Status st = peer.ring(static_cast<std::uint16_t>(id), vector);
    if (!st) throw Error(st.code(), "ivshmem server " + o.socket + ": ringing peer " + std::to_string(id) + " vector " +
                                        std::to_string(vector) + ": " + st.message());
  }
  Status waited;
  if (o.wait_vector >= 0) {
    waited = peer.wait(static_cast<unsigned>(o.wait_vector), po.timeout);
    if (!waited && waited.code() != Errc::timeout)
      throw Error(waited.code(), "ivshmem server " + o.socket + ": waiting on vector " +
                                     std::to_string(o.wait_vector) + ": " + waited.message());
  }
  const std::vector<ivshmem::PeerInfo> peers = peer.peers();
  if (o.json) {
    Json doc;
    doc["schema_version"] = kSchemaVersion;
    doc["id"] = peer.id();
    doc["vectors"] = peer.vectors();
    doc["memory_bytes"] = peer.memory().size();
    Json list = Json::array();
    for (const auto& p : peers) list.push_back(Json{{"id", p.id}, {"vectors", p.vectors}});
    doc["peers"] = list;
    if (o.wait_vector >= 0) doc["rung"] = waited.ok();
    std::cout << doc.dump() << '\n';
  } else {
    fmt::print("id {} ({} vectors, {} bytes of shared memory)\n", peer.id(), peer.vectors(), peer.memory().size());
    for (const auto& p : peers) fmt::print("peer {} ({} vectors)\n", p.id, p.vectors);
    if (o.wait_vector >= 0) fmt::print("vector {}: {}\n", o.wait_vector, waited.ok() ? "rung" : "timed out");
  }
  return waited.code() == Errc::timeout ? kExitTimeout : kExitOk;
}

}  // namespace

Command add_ivshmem_client_command(CLI::App& app) {
  auto o = std::make_shared<IvshmemClientOptions>();
  CLI::App* sub = app.add_subcommand(
      "ivshmem-client",
      "Join an ivshmem server as a host peer (like QEMU's contrib ivshmem-client): print this peer's id and the "
      "peers, ring peers' vectors, wait to be rung; then leave");
  sub->add_option("-S,--socket", o->socket, "The server's socket (default /tmp/ivshmem_socket)");
  sub->add_option("-n,--vectors", o->vectors, "Own vectors to receive before going on, 0-64 (default 1)")
      ->check(CLI::Range(0, 64));
  sub->add_option("--ring", o->rings, "Ring PEER on VECTOR (PEER or PEER:VECTOR, vector 0 by default); repeatable");
  sub->add_option("--wait", o->wait_vector, "Wait until rung on own VECTOR (exit 124 when --timeout passes first)")
      ->check(CLI::Range(0, 63));
  sub->add_option("--timeout", o->timeout, "Seconds for connecting and for --wait (default 10)")
      ->check(seconds_validator(0, 86400));
  sub->add_flag("--json", o->json,
                "Print JSON ({\"schema_version\":1,\"id\",\"vectors\",\"memory_bytes\",\"peers\":[{\"id\",\"vectors\"}],"
                "\"rung\" with --wait})");
  return {sub, [o] { return run_client(*o); }};
}

Command add_ivshmem_server_command(CLI::App& app) {
  auto o = std::make_shared<IvshmemServerOptions>();
  CLI::App* sub = app.add_subcommand(
      "ivshmem-server",
      "Doorbell server for QEMU's ivshmem-doorbell device (QEMU's ivshmem-server protocol, version 0): creates the "
      "shared memory as a region (directory formatted before any guest attaches), hands it and one eventfd per "
      "vector to every peer, announces peers joining and leaving. Options as QEMU's contrib ivshmem-server; "
      "pscom's spelling `-s NAME -m SIZE_MB [-p SOCKET]` is accepted too (-s selects it: then -m is a size and "
      "-p the socket). SIGINT/SIGTERM stop it and remove the socket, the pid file and (unless --keep) the "
      "shared memory.");
  sub->add_option("-S,--socket", o->socket, "Listening UNIX socket (default /tmp/ivshmem_socket)");
  sub->add_option("-M,--shm", o->shm_name, "Shared memory as the POSIX shm object NAME: /dev/shm/NAME (default ivshmem)");
  sub->add_option("-m", o->m,
                  "QEMU's spelling: the shared-memory file: a path, or a directory (e.g. a hugetlbfs mount) holding "
                  "DIR/NAME (NAME from -M, default ivshmem). With -s: the size in MB (pscom)");
  sub->add_option("-l,--size", o->size, "Bytes of shared memory with K, M or G: a power of two, at least 64K (default 4M)")
      ->check(size_validator());
  sub->add_option("-n,--vectors", o->vectors, "Interrupt vectors (eventfds) per peer, 1-64 (default 1); QEMU's vectors= must match")
      ->check(CLI::Range(1, 64));
  sub->add_flag("-F,--foreground", o->foreground, "Stay in the foreground (default: detach once listening)");
  sub->add_option("-p", o->p, "QEMU's spelling: pid file, written once listening, removed at exit (default none). With -s: the socket (pscom)");
  sub->add_option("-s", o->pscom_shm, "pscom's spelling: POSIX shm object NAME (selects pscom's -m and -p)");
  sub->add_option("-c", o->pscom_mode, "pscom's customisation mode (migration-framework, pscom): accepted, not used");
  sub->add_option("--mode", o->permissions,
                  "Mode of the shared-memory file in octal, read/write bits only (default 0660: the owner and the "
                  "group, e.g. the user QEMU runs as when it is in the group)")
      ->check(permissions_validator());
  sub->add_option("--group", o->group, "Group (name or number) of the shared-memory file and the socket (default the creator's)");
  sub->add_option("--max-peers", o->max_peers, "Peers served at once, 1-65536 (default 256); more are refused")
      ->check(CLI::Range(1, 65536));
  sub->add_flag("--keep", o->keep, "Leave the shared-memory file in place at exit (default: remove it)");
  sub->add_flag("-f,--force", o->replace,
                "Replace an existing shared-memory file (a new file: guests that mapped the old one keep it)");
  return {sub, [o] { return run_server(*o); }};
}

}  // namespace shmlink::cli
