// SPDX-License-Identifier: MIT
// A bridge replica's freshness keywords for `ls`, `info` and `monitor` (freshness.hpp).
#include "freshness.hpp"

#include "output.hpp"

#include <shmlink/bridge.hpp>

#include <fmt/format.h>

#include <string_view>

namespace shmlink::cli {

namespace {

using bridge::kKeywordAge;
using bridge::kKeywordLink;
using bridge::kKeywordLost;
using bridge::kKeywordOrigin;
using bridge::kKeywordSkipped;
using bridge::kKeywordSourceCnt0;
using bridge::kKeywordSourceTime;

Json optional_json(const std::optional<std::int64_t>& v) { return v ? Json(*v) : Json(nullptr); }

}  // namespace

std::optional<BridgeFreshness> bridge_freshness(const std::vector<Keyword>& keywords) {
  BridgeFreshness f;
  bool replica = false;
  for (const Keyword& k : keywords) {
    if (k.name == kKeywordOrigin) {
      const auto* s = std::get_if<std::string>(&k.value);
      if (s == nullptr) continue;
      replica = true;
      // The comment holds the whole name when the value is its first 16 bytes.
      f.origin = !k.comment.empty() && k.comment.starts_with(*s) ? k.comment : *s;
      continue;
    }
    const auto* i = std::get_if<std::int64_t>(&k.value);
    if (i == nullptr) continue;
    if (k.name == kKeywordLink) f.link_up = *i != 0;
    else if (k.name == kKeywordAge) f.age_us = *i;
    else if (k.name == kKeywordSkipped) f.skipped = *i;
    else if (k.name == kKeywordLost) f.lost = *i;
    else if (k.name == kKeywordSourceCnt0) f.source_cnt0 = *i;
    else if (k.name == kKeywordSourceTime) f.source_write_time_ns = *i;
  }
  if (!replica) return std::nullopt;
  return f;
}

std::string link_text(const BridgeFreshness& f) {
  if (!f.link_up) return "?";
  return *f.link_up ? "up" : "down";
}

std::string bridge_cell(const BridgeFreshness& f) { return f.origin + " " + link_text(f); }

std::vector<std::pair<std::string, std::string>> bridge_lines(const BridgeFreshness& f) {
  const auto number = [](const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : std::string("-"); };
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("origin", f.origin);
  out.emplace_back("link", link_text(f));
  out.emplace_back("mode", f.lost ? "every frame (BR_LOST)" : "latest value (BR_SKIPPED)");
  out.emplace_back("frame age", f.age_us ? fmt::format("{} us (when it arrived)", *f.age_us) : std::string("-"));
  if (f.lost) out.emplace_back("lost", number(f.lost));
  else out.emplace_back("skipped", number(f.skipped));
  out.emplace_back("source cnt0", number(f.source_cnt0));
  out.emplace_back("source writetime", f.source_write_time_ns ? format_time_ns(*f.source_write_time_ns) : std::string("-"));
  return out;
}

Json bridge_json(const std::optional<BridgeFreshness>& f) {
  if (!f) return nullptr;
  Json j;
  j["origin"] = f->origin;
  j["link_up"] = f->link_up ? Json(*f->link_up) : Json(nullptr);
  j["mode"] = f->lost ? "every_frame" : "latest";
  j["age_us"] = optional_json(f->age_us);
  j["skipped"] = optional_json(f->skipped);
  j["lost"] = optional_json(f->lost);
  j["source_cnt0"] = optional_json(f->source_cnt0);
  j["source_write_time_ns"] = optional_json(f->source_write_time_ns);
  return j;
}

}  // namespace shmlink::cli
