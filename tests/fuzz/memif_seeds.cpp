// SPDX-License-Identifier: MIT
// Seeds of the memif fuzz targets (memif_fuzz.hpp), encoded by the library's own wire code.
#include "memif_fuzz.hpp"

#include <fstream>
#include <string>
#include <vector>

namespace shmlink::fuzz {
namespace {

namespace mw = memif::wire;
using Bytes = std::vector<char>;

void append(Bytes& b, const mw::Message& m) {
  const char* p = reinterpret_cast<const char*>(&m);
  b.insert(b.end(), p, p + sizeof m);
}

void record(Bytes& b, AttachedFd fd, const mw::Message& m) {
  b.push_back(static_cast<char>(fd));
  append(b, m);
}

void save(const std::filesystem::path& file, const Bytes& b) {
  std::ofstream(file, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
}

}  // namespace

void write_memif_seeds(const std::filesystem::path& out) {
  const auto mem = memif::detail::create_slave_memory(handshake_layout(), "seed");
  mw::HelloInfo hello;
  hello.name = "seed-master";
  mw::InitInfo init;
  init.name = "seed-slave";
  init.secret = "s";
  mw::AddRingInfo s2m;
  s2m.type = mw::RingType::s2m;
  s2m.offset = mem.s2m[0].offset;
  s2m.log2_ring_size = mem.s2m[0].log2;
  mw::AddRingInfo m2s = s2m;
  m2s.type = mw::RingType::m2s;
  m2s.offset = mem.m2s[0].offset;
  const mw::Message region = mw::encode_add_region({0, mem.regions[0].size()});

  // fuzz_memif_messages: one datagram per message type.
  std::filesystem::create_directories(out / "memif_messages");
  const std::pair<const char*, mw::Message> messages[] = {
      {"hello", mw::encode_hello(hello)},       {"init", mw::encode_init(init)},
      {"ack", mw::encode_ack()},                {"add_region", region},
      {"add_ring", mw::encode_add_ring(s2m)},   {"connect", mw::encode_connect("seed0")},
      {"connected", mw::encode_connected("m0")}, {"disconnect", mw::encode_disconnect(0, "seed")},
  };
  for (const auto& [name, m] : messages) {
    Bytes b;
    append(b, m);
    save(out / "memif_messages" / name, b);
  }

  // fuzz_memif_handshake: role byte (0 master, 1 slave), then records (control byte + message).
  std::filesystem::create_directories(out / "memif_handshake");
  init.secret.clear();
  Bytes master{0};
  record(master, AttachedFd::none, mw::encode_init(init));
  record(master, AttachedFd::sealed_region, region);
  record(master, AttachedFd::blocking_eventfd, mw::encode_add_ring(s2m));
  record(master, AttachedFd::blocking_eventfd, mw::encode_add_ring(m2s));
  record(master, AttachedFd::none, mw::encode_connect("seed0"));
  save(out / "memif_handshake" / "master", master);
  Bytes slave{1};
  record(slave, AttachedFd::none, mw::encode_hello(hello));
  for (int k = 0; k < 4; ++k) record(slave, AttachedFd::none, mw::encode_ack());  // INIT, region, S2M, M2S
  record(slave, AttachedFd::none, mw::encode_connected("m0"));
  save(out / "memif_handshake" / "slave", slave);
}

}  // namespace shmlink::fuzz
