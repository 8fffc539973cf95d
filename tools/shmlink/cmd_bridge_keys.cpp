// SPDX-License-Identifier: MIT
// `shmlink bridge keygen`: CURVE key files for the bridge service (docs/bridge.md, "Keys").
#include "cli.hpp"
#include "output.hpp"

#include <shmlink/bridge_security.hpp>

#include <sys/stat.h>
#include <cerrno>
#include <unistd.h>

#include <iostream>
#include <memory>

namespace shmlink::cli {

namespace {

/// Options of `bridge keygen`.
struct KeygenOptions {
  std::string dir = "/etc/shmlink/keys";  ///< key directory (--dir)
  std::string name;                       ///< node name (--name); empty: the host name
  bool force = false;                     ///< replace existing key files (--force)
  bool json = false;                      ///< JSON on stdout
};

/// The host name, as gethostname(2) gives it.
std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) throw Error(errc_from_errno(errno), "reading the host name (give --name)");
  return buf;
}

/// True when `path` exists (as anything, a dangling link included).
bool exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

/// Makes and writes the key pair of `opt.name` in `opt.dir`; refuses to replace key files
/// without --force. Prints the files and what to copy where.
int run_keygen(KeygenOptions opt) {
  try {
    if (opt.name.empty()) opt.name = host_name();
    const std::string key_file = opt.dir + "/" + opt.name + ".key";
    const std::string pub_file = opt.dir + "/" + opt.name + ".pub";
    for (const std::string& f : {key_file, pub_file}) {
      if (!opt.force && exists(f)) {
        throw Error(Errc::exists, "key file " + f + " exists: refusing to replace it (--force replaces the key pair; "
                                  "peers that trust the old public key must then get the new one)");
      }
    }
    const bridge::CurveKeys keys = bridge::generate_keys();
    bridge::write_keys(opt.dir, opt.name, keys);
    if (opt.json) {
      Json j;
      j["schema_version"] = kSchemaVersion;
      j["node"] = opt.name;
      j["secret_key_file"] = key_file;
      j["public_key_file"] = pub_file;
      j["public_key"] = keys.public_z85;
      j["peers_directory"] = opt.dir + "/peers";
      print_json(j);
      return kExitOk;
    }
    std::cout << "wrote " << key_file << " (key pair, mode 0600: keep it on this host)\n"
              << "wrote " << pub_file << " (public key " << keys.public_z85 << ")\n"
              << "next: copy " << pub_file << " into " << opt.dir << "/peers/ on every host whose service should trust "
              << opt.name << " (keep the file name " << opt.name << ".pub),\n"
              << "      copy their NODE.pub files into " << opt.dir << "/peers/ here, and start the service with "
              << "`shmlink bridge serve --name " << opt.name << " --keys " << opt.dir << "`\n";
    return kExitOk;
  } catch (const Error& e) {
    return report_error(e);
  }
}

}  // namespace

Command add_bridge_keygen_command(CLI::App& bridge) {
  auto opt = std::make_shared<KeygenOptions>();
  CLI::App* sub = bridge.add_subcommand(
      "keygen",
      "Make the CURVE key pair of a bridge service: DIR/NODE.key (mode 0600) and DIR/NODE.pub; DIR (0700) and "
      "DIR/peers, where the public keys of trusted hosts go, are created when missing");
  sub->add_option("--dir", opt->dir, "Key directory (default /etc/shmlink/keys)");
  sub->add_option("--name", opt->name, "Node name, the key files' name (default: the host name)");
  sub->add_flag("--force", opt->force, "Replace an existing key pair of that name");
  sub->add_flag("--json", opt->json, "JSON output (schema_version 1)");
  sub->footer(subcommand_footer());
  return {sub, [opt] { return run_keygen(*opt); }};
}

}  // namespace shmlink::cli
