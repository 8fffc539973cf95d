// SPDX-License-Identifier: MIT
// Writes the seed corpora of the fuzz targets: files made by the library itself, so that
// mutations start from every layout shmlink really writes.
//
//   shmlink_fuzz_seeds <out-dir>   ->  <out-dir>/{stream,queue,memif_status,packet,memif_messages,memif_handshake,villas,region}/*
//
// Streams: plain 1-, 2- and 3-axis streams of several dtypes, with keywords, semaphores, a
// circular buffer, rolling buffers, a written frame, and a packetised frame with its companion
// (as one two-file input, see fuzz_util.hpp). Queues: SPSC and MPMC, with signal tables, empty,
// part full, full and shut down. memif status: a master and a slave socket, connected. Packets:
// the ARP and ICMP echo frames `shmlink memif ping|responder` build and answer. memif messages
// and handshakes: memif_seeds.cpp. VILLAS regions: our own output regions as villas-node lays
// them out, both modes, empty, part full, full, drained and stopped. Regions: directories with
// entries ready, creating and removed, one with its lock left held.
#include <shmlink/memif.hpp>
#include <shmlink/queue.hpp>
#include <shmlink/stream.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "fuzz_util.hpp"
#include "queue/villas_region.hpp"
#include "region/region_access.hpp"
#include "packet.hpp"
#include "memif_fuzz.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put(const fs::path& out, const std::vector<char>& bytes) {
  std::ofstream(out, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void stream_seeds(const std::string& dir, const fs::path& out) {
  struct Case {
    const char* name;
    std::vector<std::uint32_t> shape;
    shmlink::Dtype dtype;
    std::uint16_t keywords;
    std::uint16_t semaphores;
    std::uint32_t depth;
    std::uint32_t circular;
    int frames;
  };
  const std::vector<Case> cases = {
      {"u8_4x4", {4, 4}, shmlink::Dtype::u8, 0, 10, 0, 0, 0},
      {"u16_8x4_written", {8, 4}, shmlink::Dtype::u16, 0, 10, 0, 0, 2},
      {"f32_16_kw", {16}, shmlink::Dtype::f32, 4, 3, 0, 0, 1},
      {"c128_2x2x2", {2, 2, 2}, shmlink::Dtype::c128, 0, 1, 0, 0, 1},
      {"f16_4x2_cb", {4, 2}, shmlink::Dtype::f16, 0, 2, 0, 3, 4},
      {"i32_4x4_rolling", {4, 4}, shmlink::Dtype::i32, 2, 10, 4, 0, 6},
      {"f64_3_rolling", {3}, shmlink::Dtype::f64, 0, 1, 2, 0, 1},
  };
  for (const Case& c : cases) {
    shmlink::StreamSpec spec;
    spec.shape = c.shape;
    spec.dtype = c.dtype;
    spec.keywords = c.keywords;
    spec.semaphores = c.semaphores;
    spec.depth = c.depth;
    spec.circular_buffer = c.circular;
    const std::string path = dir + "/" + c.name + ".im.shm";
    auto s = shmlink::Stream::create(path, spec, shmlink::OpenMode::PurgeAndCreate);
    if (c.keywords > 0) {
      s.set_keyword("GAIN", std::int64_t{12});
      s.set_keyword("LOOP", std::string("closed"), "state");
    }
    std::vector<std::byte> frame(s.frame_bytes(), std::byte{0x11});
    for (int i = 0; i < c.frames; ++i) (void)s.write(frame);
    put(out / c.name, slurp(path));
  }
  // A packetised frame: the stream and its companion as one two-file input.
  shmlink::StreamSpec spec;
  spec.shape = {8, 2};
  spec.dtype = shmlink::Dtype::u16;
  const std::string path = dir + "/pkt.im.shm";
  auto s = shmlink::Stream::create(path, spec, shmlink::OpenMode::PurgeAndCreate);
  std::vector<std::uint16_t> half(8, 3);
  (void)s.write_packet(0, 2, 0, std::span<const std::uint16_t>(half));
  (void)s.write_packet(1, 2, 8, std::span<const std::uint16_t>(half));
  (void)s.finalize_packets();
  (void)s.write_packet(1, 3, 0, std::span<const std::uint16_t>(half));
  (void)s.finalize_packets();
  const auto main_file = slurp(path);
  const auto companion = slurp(dir + "/pkt_pkt.im.shm");
  std::vector<char> two(std::begin(shmlink::fuzz::kTwoFileMagic), std::end(shmlink::fuzz::kTwoFileMagic));
  const auto n = static_cast<std::uint32_t>(main_file.size());
  const char* np = reinterpret_cast<const char*>(&n);
  two.insert(two.end(), np, np + 4);
  two.insert(two.end(), main_file.begin(), main_file.end());
  two.insert(two.end(), companion.begin(), companion.end());
  put(out / "packetised_with_companion", two);
}

void queue_seeds(const std::string& dir, const fs::path& out) {
  int k = 0;
  for (auto kind : {shmlink::QueueKind::spsc, shmlink::QueueKind::mpmc}) {
    for (int fill : {0, 3, 4}) {
      shmlink::QueueSpec spec;
      spec.kind = kind;
      spec.capacity = 4;
      spec.max_values = kind == shmlink::QueueKind::spsc ? 3 : 1;
      spec.signals = {{0, "v", shmlink::SignalType::f64, "V"}};
      if (kind == shmlink::QueueKind::spsc) spec.signals.push_back({2, "n", shmlink::SignalType::i64, ""});
      const std::string path = dir + "/q" + std::to_string(k) + ".queue.shm";
      auto q = shmlink::Queue::create(path, spec, shmlink::OpenMode::PurgeAndCreate);
      shmlink::Sample s;
      s.values.assign(spec.max_values, shmlink::SignalValue::of(2.0));
      for (int i = 0; i < fill + 2; ++i) {
        s.sequence = static_cast<std::uint64_t>(i);
        (void)q.try_push(s);
      }
      shmlink::Sample o;
      (void)q.try_pop(o);
      (void)q.try_pop(o);
      if (fill == 4) q.shutdown();
      put(out / ("queue_" + std::to_string(k++)), slurp(path));
    }
  }
}

void villas_seeds(const fs::path& out) {
  struct Case {
    std::uint32_t queuelen, samplelen;
    bool pthread_mode;
    int pushes, pulls;
    bool stop;
  };
  const Case cases[] = {{4, 2, true, 0, 0, false}, {8, 2, false, 3, 1, false}, {4, 1, false, 4, 0, false},
                        {64, 4, true, 5, 5, true}, {3, 8, false, 2, 0, true}};
  int k = 0;
  for (const Case& c : cases) {
    const std::uint64_t size = shmlink::villas::region_size(c.queuelen, c.samplelen);
    std::vector<char> bytes(size + 64);
    auto* base = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(bytes.data()) + 63) / 64 * 64);
    auto own = shmlink::villas::OwnRegion::init({base, size}, c.queuelen, c.samplelen, c.pthread_mode, "seed");
    auto peer = shmlink::villas::PeerRegion::attach({base, size}, "seed");
    shmlink::Sample s;
    s.flags = shmlink::kSampleHasSequence | shmlink::kSampleHasData | shmlink::kSampleHasTsOrigin;
    s.ts_origin_ns = 1'765'000'000'000'000'000;
    s.values.assign(c.samplelen, shmlink::SignalValue::of(0.25));
    for (int i = 0; i < c.pushes; ++i) {
      s.sequence = static_cast<std::uint64_t>(i);
      (void)own.try_push(s);
    }
    for (int i = 0; i < c.pulls; ++i) (void)peer.try_pull(s);
    if (c.stop) own.stop();
    put(out / ("villas_" + std::to_string(k++)), std::vector<char>(reinterpret_cast<char*>(base), reinterpret_cast<char*>(base) + size));
  }
}

/// Region directories (issue 20): 256 KiB regions as the allocator leaves them, written up to the
/// end of their directory (the fuzz target zero-fills the rest).
void region_seeds(const fs::path& out) {
  using shmlink::detail::RegionAccess;
  struct Case {
    std::size_t max_entries;
    int entries, removed;
    bool held;  ///< the lock left held by a holder of another kernel
  };
  const Case cases[] = {{16, 0, 0, false}, {16, 3, 1, false}, {4, 4, 2, false}, {64, 9, 3, false}, {16, 2, 0, true}};
  int k = 0;
  for (const Case& c : cases) {
    shmlink::RegionOptions o;
    o.max_entries = c.max_entries;
    shmlink::Region r = shmlink::Region::create_memfd("seed", 256 * 1024, o);
    const auto& st = RegionAccess::state(r);
    for (int i = 0; i < c.entries; ++i) {
      auto res = RegionAccess::allocate(st, "e" + std::to_string(i), i % 2 == 0 ? shmlink::ChannelKind::stream
                                                                               : shmlink::ChannelKind::queue,
                                        4096 * static_cast<std::size_t>(1 + i % 3));
      if (i != c.entries - 1) st->dir.publish(res.slot);  // the last one stays "creating"
    }
    for (int i = 0; i < c.removed; ++i) (void)st->dir.remove("e" + std::to_string(i));
    if (c.held)
      std::atomic_ref<std::uint64_t>(reinterpret_cast<shmlink::rlayout::RegionHeader*>(st->bytes.data())->lock)
          .store(0x1234567800000042ULL);
    const auto* base = reinterpret_cast<const char*>(st->bytes.data());
    put(out / ("region_" + std::to_string(k++)),
        std::vector<char>(base, base + shmlink::rlayout::directory_bytes(static_cast<std::uint32_t>(c.max_entries))));
  }
}

void memif_status_seeds(const fs::path& out) {
  const std::string sock = "@shmlink-fuzz-seed-" + std::to_string(::getpid());
  shmlink::memif::SocketOptions mo;
  mo.path = sock;
  mo.app_name = "seed-master";
  shmlink::memif::SocketOptions so = mo;
  so.app_name = "seed-slave";
  so.reconnect_interval = 50ms;
  shmlink::memif::Socket master(mo), slave(so);
  shmlink::memif::InterfaceOptions mi;
  mi.role = shmlink::memif::Role::master;
  mi.name = "m0";
  mi.secret = "s";
  auto& m = master.add_interface(mi);
  shmlink::memif::InterfaceOptions si;
  si.name = "s0";
  si.secret = "s";
  si.log2_ring_size = 4;
  slave.add_interface(si);
  for (int i = 0; i < 400 && !m.connected(); ++i) {
    (void)master.poll(5ms);
    (void)slave.poll(5ms);
  }
  put(out / "master", slurp(master.status_file()));
  put(out / "slave", slurp(slave.status_file()));
}

void packet_seeds(const fs::path& out) {
  namespace pkt = shmlink::cli::packet;
  const pkt::Mac a{{0x02, 0, 0, 0, 0, 1}}, b{{0x02, 0, 0, 0, 0, 2}};
  const pkt::Ipv4 ia{0xc0a80101}, ib{0xc0a80102};
  std::vector<std::uint8_t> frame(2048);
  const std::size_t arp = pkt::build_arp_request(frame, a, ia, ib);
  put(out / "arp_request", std::vector<char>(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(arp)));
  std::vector<std::uint8_t> reply(2048);
  if (auto n = pkt::respond(std::span<const std::uint8_t>(frame.data(), arp), reply, b, ib))
    put(out / "arp_reply", std::vector<char>(reply.begin(), reply.begin() + static_cast<std::ptrdiff_t>(*n)));
  for (std::size_t size : {pkt::kMinEchoFrameSize, std::size_t{98}, std::size_t{1514}}) {
    const std::size_t n = pkt::build_icmp_echo_request(frame, a, b, ia, ib, 7, 3, size);
    put(out / ("echo_request_" + std::to_string(size)), std::vector<char>(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n)));
    if (auto r = pkt::respond(std::span<const std::uint8_t>(frame.data(), n), reply, b, ib))
      put(out / ("echo_reply_" + std::to_string(size)), std::vector<char>(reply.begin(), reply.begin() + static_cast<std::ptrdiff_t>(*r)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const fs::path out(argv[1]);
    const std::string& dir = shmlink::fuzz::scratch_dir();
    for (const char* t : {"stream", "queue", "memif_status", "packet", "villas", "region"}) fs::create_directories(out / t);
    stream_seeds(dir, out / "stream");
    queue_seeds(dir, out / "queue");
    memif_status_seeds(out / "memif_status");
    packet_seeds(out / "packet");
    villas_seeds(out / "villas");
    region_seeds(out / "region");
    shmlink::fuzz::write_memif_seeds(out);  // memif_messages/, memif_handshake/
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlink_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
