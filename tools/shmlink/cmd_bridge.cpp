// SPDX-License-Identifier: MIT
// `shmlink bridge`: the per-host bridge service and its clients (docs/bridge.md). The group lives
// here; `serve` is in cmd_bridge_serve.cpp, `keygen` in cmd_bridge_keys.cpp, and the clients of a
// running service (ping, ls, status, want, release) talk to it over its control socket
// (src/remote/control_protocol.hpp, client: include/shmlink/remote.hpp).
#include "common.hpp"

#include <shmlink/remote.hpp>
#include <shmlink/stream.hpp>

#include <iostream>
#include <memory>
#include <vector>

namespace shmlink::cli {

namespace {

/// The control socket the clients use, escaped for messages.
std::string control_socket() { return shown(remote::control_socket_path()); }

/// Options of the client subcommands.
struct ClientOptions {
  std::string name;      ///< want/release: NAME or HOST:NAME
  bool queue = false;    ///< want/release: the channel is a queue
  bool keep = false;     ///< want --keep
  bool every_frame = false;  ///< want --every-frame
  unsigned window = 64;  ///< want --window: every-frame frames in flight
  double timeout_s = 0;  ///< --timeout; 0: remote::open_timeout()
  bool json = false;     ///< ls/status --json
};

std::chrono::milliseconds timeout_of(const ClientOptions& opt) {
  if (opt.timeout_s <= 0) return remote::open_timeout();
  return std::chrono::milliseconds(static_cast<long long>(opt.timeout_s * 1000.0 + 0.5));
}

/// Splits NAME or HOST:NAME into {host, name} ("" host: any peer).
/// @throws Error invalid_argument for a name no channel can have.
std::pair<std::string, std::string> target_of(const std::string& text) {
  if (auto split = remote::split_remote_name(text)) return *split;
  check_channel_name("channel", text, text, kMaxChannelName);
  return {"", text};
}

/// The service's JSON answer to `verb` (LS, STATUS).
/// @throws Error as remote::request(); protocol when the answer is not one JSON object.
Json json_request(const std::string& verb, const ClientOptions& opt) {
  const auto reply = remote::request({verb}, timeout_of(opt));
  if (reply.size() != 1)
    throw Error(Errc::protocol, "bridge service at " + control_socket() + ": " + verb + " answered " +
                                    std::to_string(reply.size()) + " fields, not one JSON document");
  Json doc = Json::parse(reply[0], nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    throw Error(Errc::protocol, "bridge service at " + control_socket() + ": " + verb + " answered no JSON object");
  return doc;
}

/// A JSON value as a table cell: strings as they are, numbers and booleans as text, "-" if absent.
std::string cell(const Json& row, const char* key) {
  const auto it = row.find(key);
  if (it == row.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_boolean()) return it->get<bool>() ? "yes" : "no";
  return it->dump();
}

/// The DTYPE cell of a catalogue entry: the ISIO type's name for a stream, the bytes per
/// sample for a queue.
std::string dtype_cell(const Json& row) {
  const auto it = row.find("dtype");
  if (it == row.end() || !it->is_number_unsigned()) return cell(row, "dtype");
  const auto code = it->get<std::uint64_t>();
  if (cell(row, "kind") == "queue") return std::to_string(code) + " B/sample";
  if (code >= 1 && code <= 13) return std::string(dtype_name(static_cast<Dtype>(code)));
  return std::to_string(code);
}

/// The SHAPE cell: axes joined by 'x'.
std::string shape_cell(const Json& row) {
  const auto it = row.find("shape");
  if (it == row.end() || !it->is_array()) return "-";
  std::string out;
  for (const auto& axis : *it) {
    if (!out.empty()) out += 'x';
    out += axis.is_string() ? axis.get<std::string>() : axis.dump();
  }
  return out.empty() ? "-" : out;
}

/// The array `key` of `doc` (an empty one when absent or not an array).
const Json& array_of(const Json& doc, const char* key) {
  static const Json kEmpty = Json::array();
  const auto it = doc.find(key);
  return it != doc.end() && it->is_array() ? *it : kEmpty;
}

/// Prints `doc` with `schema_version` first when it has none of its own.
void print_service_json(const Json& doc) {
  if (doc.contains("schema_version")) return print_json(doc);
  Json out{{"schema_version", kSchemaVersion}};
  for (const auto& [key, value] : doc.items()) out[key] = value;
  print_json(out);
}

int run_ping(const ClientOptions& opt) {
  const auto reply = remote::request({"PING"}, timeout_of(opt));
  std::cout << "bridge service " << shown(reply.empty() ? std::string("?") : reply[0]) << " answers at "
            << control_socket() << '\n'
            << std::flush;
  return kExitOk;
}

int run_ls(const ClientOptions& opt) {
  const Json doc = json_request("LS", opt);
  if (opt.json) {
    print_service_json(doc);
    return kExitOk;
  }
  Table t{{"NODE", "KIND", "NAME", "DTYPE", "SHAPE"}, {}, {}};
  for (const Json& row : array_of(doc, "channels")) {
    if (!row.is_object()) continue;
    t.rows.push_back({{cell(row, "node")}, {cell(row, "kind")}, {cell(row, "name")}, {dtype_cell(row)},
                      {shape_cell(row)}});
  }
  std::cout << t.render(false) << std::flush;
  return kExitOk;
}

int run_status(const ClientOptions& opt) {
  const Json doc = json_request("STATUS", opt);
  if (opt.json) {
    print_service_json(doc);
    return kExitOk;
  }
  std::cout << "node " << shown(cell(doc, "node")) << ", control socket " << control_socket() << ", CURVE "
            << (cell(doc, "curve") == "yes" ? "on" : "off") << ", handshakes refused " << cell(doc, "handshakes_refused")
            << ", failed " << cell(doc, "handshakes_failed") << '\n';
  if (const std::string r = cell(doc, "last_refusal"); !r.empty() && r != "-") std::cout << "last refusal: " << shown(r) << '\n';
  if (const std::string e = cell(doc, "last_error"); !e.empty() && e != "-") std::cout << "last error: " << shown(e) << '\n';
  std::cout << '\n';
  Table peers{{"PEER", "ENDPOINT", "LINK", "CHANNELS", "PROBLEM"}, {false, false, false, true, false}, {}};
  for (const Json& row : array_of(doc, "peers")) {
    if (!row.is_object()) continue;
    const std::string link = cell(row, "link_up");
    const std::string problem = cell(row, "problem");
    peers.rows.push_back({{cell(row, "node")}, {cell(row, "endpoint")}, {link == "yes" ? "up" : link == "no" ? "down" : link},
                          {cell(row, "channels")}, {problem.empty() ? "-" : problem}});
  }
  std::cout << peers.render(false) << '\n';
  Table replicas{{"NODE", "NAME", "PATH", "KEPT", "LINK", "MODE", "FRAMES", "SKIPPED", "LOST"},
                 {false, false, false, false, false, false, true, true, true},
                 {}};
  for (const Json& row : array_of(doc, "replicas")) {
    if (!row.is_object()) continue;
    const std::string link = cell(row, "link_up");
    replicas.rows.push_back({{cell(row, "node")}, {cell(row, "name")}, {cell(row, "path")}, {cell(row, "kept")},
                             {link == "yes" ? "up" : link == "no" ? "down" : link}, {cell(row, "mode")},
                             {cell(row, "frames_published")}, {cell(row, "skipped")}, {cell(row, "lost")}});
  }
  std::cout << replicas.render(false) << std::flush;
  const Json& queues = array_of(doc, "queues");
  if (queues.empty()) return kExitOk;
  Table rows{{"NODE", "QUEUE", "PATH", "KEPT", "TRAVELLING", "PUSHED", "DUPLICATES"},
             {false, false, false, false, false, true, true},
             {}};
  for (const Json& row : queues) {
    if (!row.is_object()) continue;
    rows.rows.push_back({{cell(row, "node")}, {cell(row, "name")}, {cell(row, "path")}, {cell(row, "kept")},
                         {cell(row, "travelling")}, {cell(row, "pushed")}, {cell(row, "duplicates")}});
  }
  std::cout << '\n' << rows.render(false) << std::flush;
  return kExitOk;
}

int run_want(const ClientOptions& opt) {
  const auto [host, name] = target_of(opt.name);
  std::cout << shown(remote::remote_open(opt.queue ? "queue" : "stream", host, name, timeout_of(opt), opt.keep,
                                         opt.every_frame ? opt.window : 0))
            << '\n'
            << std::flush;
  return kExitOk;
}

int run_release(const ClientOptions& opt) {
  const auto [host, name] = target_of(opt.name);
  (void)remote::request({"RELEASE", opt.queue ? "queue" : "stream", host, name}, timeout_of(opt));
  return kExitOk;
}

/// Registers one client subcommand running `run` with the shared options.
Command client(CLI::App& bridge, const char* verb, const char* help, int (*run)(const ClientOptions&),
               const std::function<void(CLI::App&, ClientOptions&)>& options) {
  auto opt = std::make_shared<ClientOptions>();
  CLI::App* sub = bridge.add_subcommand(verb, help);
  options(*sub, *opt);
  sub->add_option("--timeout", opt->timeout_s,
                  "Seconds to wait for the service (default: $SHMLINK_BRIDGE_TIMEOUT_MS, else 5)")
      ->check(seconds_validator(0.001, 3600));
  sub->footer(subcommand_footer());
  return {sub, [opt, run]() -> int {
            try {
              return run(*opt);
            } catch (const Error& e) {
              return report_error(e);
            }
          }};
}

}  // namespace

Command add_bridge_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "bridge", "Streams and queues across machines: the per-host service (serve), its keys (keygen) and its clients");
  sub->require_subcommand(1);
  auto subs = std::make_shared<std::vector<Command>>();
  subs->push_back(add_bridge_serve_command(*sub));
  subs->push_back(add_bridge_keygen_command(*sub));
  const auto none = [](CLI::App&, ClientOptions&) {};
  const auto json = [](CLI::App& s, ClientOptions& o) { s.add_flag("--json", o.json, "JSON output (schema_version 1)"); };
  const auto named = [](bool keep) {
    return [keep](CLI::App& s, ClientOptions& o) {
      s.add_option("name", o.name, "Channel name, or HOST:NAME for the channel of node HOST")->required();
      CLI::Option* queue = s.add_flag("--queue", o.queue, "The channel is a queue (default: a stream)");
      if (!keep) return;
      s.add_flag("--keep", o.keep, "Keep the replica while no process uses it (until `bridge release`)");
      CLI::Option* every = s.add_flag("--every-frame", o.every_frame,
                                      "Every source frame in order, for recorders: the replica is a rolling buffer of "
                                      "the source's depth, frames lost at the owner are counted in BR_LOST")
                                ->excludes(queue);
      s.add_option("--window", o.window, "--every-frame: frames in flight (default 64)")
          ->check(CLI::Range(1, 1024))
          ->needs(every);
    };
  };
  subs->push_back(client(*sub, "ping", "Ask the bridge service of this host for its node name", run_ping, none));
  subs->push_back(client(*sub, "ls", "List every channel of the network (NODE KIND NAME DTYPE SHAPE)", run_ls, json));
  subs->push_back(client(*sub, "status", "Show the service's peers and replicas", run_status, json));
  subs->push_back(client(*sub, "want",
                         "Make a local replica of a remote channel now and print its path (--keep: keep it unused; "
                         "--every-frame [--window N]: every frame in order)",
                         run_want, named(true)));
  subs->push_back(
      client(*sub, "release", "Let a kept replica go (dropped once unused for the idle time)", run_release, named(false)));
  return {sub, [subs]() -> int {
            for (const Command& c : *subs)
              if (c.app->parsed()) return c.run();
            return kExitUsage;
          }};
}

}  // namespace shmlink::cli
