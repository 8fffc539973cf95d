// SPDX-License-Identifier: MIT
// libFuzzer target: a bridged queue's messages from a hostile peer (issue 22). The input is a
// header part (its first 128 bytes) and a payload part (the rest), decoded as a receiver or
// sender decodes them: the header against the payload's size, then every record of a
// queue_samples message and the signal table of a queue_hello. Nothing may crash or read outside
// the input; a refusal (with a reason) is the expected answer to garbage.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bridge/queue_wire.hpp"

namespace qw = shmlink::bridge::queue_wire;

/// Where the values a record's view claims are summed, so that every one of them is read.
volatile std::uint64_t g_sink = 0;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  const std::span<const std::byte> head = in.first(size < qw::kHeaderBytes ? size : qw::kHeaderBytes);
  const std::span<const std::byte> payload = in.subspan(head.size());
  std::string why;
  const auto h = qw::decode_header(head, payload.size(), why);
  if (!h) return 0;
  if (h->kind == qw::Kind::samples) {
    std::vector<shmlink::SignalValue> values;
    shmlink::SampleView v;
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < h->count; ++i) {
      if (!qw::decode_record(payload, h->sample_bytes / 8, i, v, values, why)) continue;
      for (const auto& x : v.values) sum += x.bits;  // touch every value the view claims
    }
    g_sink = sum;
  } else if (h->kind == qw::Kind::hello) {
    (void)qw::decode_signals(payload, h->sample_bytes / 8, why);
  }
  return 0;
}
