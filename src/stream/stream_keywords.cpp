// SPDX-License-Identifier: MIT
// Streams: keywords (reference section 4.1).
#include "stream/stream_impl.hpp"

namespace shmlink {

// ---- keywords -------------------------------------------------------------------------------

std::vector<Keyword> Stream::keywords() const {
  std::vector<Keyword> out;
  if (!impl_) return out;
  for (int i = 0; i < impl_->nkw; ++i) {
    const isio::Keyword& k = impl_->kw[i];
    Keyword r;
    switch (k.type) {
      case 'L': r.value = k.value.numl; break;
      case 'D': r.value = k.value.numf; break;
      case 'S': r.value = std::string(k.value.valstr, strnlen(k.value.valstr, sizeof(k.value.valstr))); break;
      default: continue;  // 'N' (unused) or garbage: skip
    }
    r.name.assign(k.name, strnlen(k.name, sizeof(k.name)));
    r.comment.assign(k.comment, strnlen(k.comment, sizeof(k.comment)));
    r.count = k.cnt;
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<KeywordValue> Stream::keyword(std::string_view name) const {
  for (auto& k : keywords())
    if (k.name == name) return k.value;
  return std::nullopt;
}

void Stream::set_keyword(std::string_view name, const KeywordValue& value, std::string_view comment) {
  if (!impl_) throw Error(Errc::closed, "setting keyword: stream handle is closed");
  if (!impl_->writable)
    throw Error(Errc::permission, "setting keyword '" + std::string(name) + "' of " + impl_->path + ": opened read-only");
  const std::string where = "setting keyword '" + std::string(name) + "' of " + impl_->path;
  if (name.empty()) throw Error(Errc::invalid_argument, where + ": name is empty");
  if (name.size() > 15) throw Error(Errc::name_too_long, where + ": name must be 1 to 15 bytes");
  if (comment.size() > 79) throw Error(Errc::name_too_long, where + ": comment exceeds 79 bytes");
  // ISIO's valstr is char[16]: a 16-byte value fills it without a terminating NUL (reference
  // 4.1); keywords() reads at most 16 bytes back.
  static_assert(sizeof(isio::Keyword{}.value.valstr) == kMaxKeywordString);
  if (auto* s = std::get_if<std::string>(&value); s != nullptr && s->size() > kMaxKeywordString)
    throw Error(Errc::name_too_long, where + ": string value is " + std::to_string(s->size()) + " bytes, at most " +
                                         std::to_string(kMaxKeywordString) + " fit");
  isio::Keyword* slot = nullptr;
  for (int i = 0; i < impl_->nkw && slot == nullptr; ++i) {
    isio::Keyword& k = impl_->kw[i];
    if (k.type != 'N' && strnlen(k.name, sizeof(k.name)) == name.size() &&
        std::memcmp(k.name, name.data(), name.size()) == 0)
      slot = &k;
  }
  for (int i = 0; i < impl_->nkw && slot == nullptr; ++i)
    if (impl_->kw[i].type != 'L' && impl_->kw[i].type != 'D' && impl_->kw[i].type != 'S') slot = &impl_->kw[i];
  if (slot == nullptr)
    throw Error(Errc::out_of_range, where + ": all " + std::to_string(impl_->nkw) + " keyword slots are used");
  std::memset(slot->name, 0, sizeof(slot->name));
  std::memcpy(slot->name, name.data(), name.size());
  std::memset(&slot->value, 0, sizeof(slot->value));
  if (auto* i = std::get_if<std::int64_t>(&value)) {
    slot->value.numl = *i;
    slot->type = 'L';
  } else if (auto* d = std::get_if<double>(&value)) {
    slot->value.numf = *d;
    slot->type = 'D';
  } else {
    const auto& s = std::get<std::string>(value);
    if (!s.empty()) std::memcpy(slot->value.valstr, s.data(), s.size());
    slot->type = 'S';
  }
  std::memset(slot->comment, 0, sizeof(slot->comment));
  if (!comment.empty()) std::memcpy(slot->comment, comment.data(), comment.size());
  aref(slot->cnt).fetch_add(1, std::memory_order_release);
}

bool Stream::erase_keyword(std::string_view name) {
  if (!impl_) throw Error(Errc::closed, "erasing keyword: stream handle is closed");
  if (!impl_->writable)
    throw Error(Errc::permission, "erasing keyword '" + std::string(name) + "' of " + impl_->path + ": opened read-only");
  for (int i = 0; i < impl_->nkw; ++i) {
    isio::Keyword& k = impl_->kw[i];
    if ((k.type == 'L' || k.type == 'D' || k.type == 'S') && strnlen(k.name, sizeof(k.name)) == name.size() &&
        std::memcmp(k.name, name.data(), name.size()) == 0) {
      k.type = 'N';
      aref(k.cnt).fetch_add(1, std::memory_order_release);
      return true;
    }
  }
  return false;
}

}  // namespace shmlink
