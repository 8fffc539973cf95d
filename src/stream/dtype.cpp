// SPDX-License-Identifier: MIT
// Datatype names (reference section 6).
#include <shmlink/stream.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace shmlink {
namespace {

struct Names {
  Dtype type;
  std::string_view numpy, shortname, isio;
};

constexpr std::array<Names, 13> kNames{{
    {Dtype::u8, "uint8", "u8", "UI8"},       {Dtype::i8, "int8", "i8", "I8"},
    {Dtype::u16, "uint16", "u16", "UI16"},   {Dtype::i16, "int16", "i16", "I16"},
    {Dtype::u32, "uint32", "u32", "UI32"},   {Dtype::i32, "int32", "i32", "I32"},
    {Dtype::u64, "uint64", "u64", "UI64"},   {Dtype::i64, "int64", "i64", "I64"},
    {Dtype::f32, "float32", "f32", "FLT"},   {Dtype::f64, "float64", "f64", "DBL"},
    {Dtype::c64, "complex64", "c64", "CFLT"}, {Dtype::c128, "complex128", "c128", "CDBL"},
    {Dtype::f16, "float16", "f16", "F16"},
}};

const Names* find(Dtype t) noexcept {
  for (const auto& n : kNames)
    if (n.type == t) return &n;
  return nullptr;
}

}  // namespace

std::string_view dtype_name(Dtype t) noexcept {
  const Names* n = find(t);
  return n != nullptr ? n->numpy : "invalid";
}

std::string_view dtype_short_name(Dtype t) noexcept {
  const Names* n = find(t);
  return n != nullptr ? n->shortname : "invalid";
}

std::optional<Dtype> parse_dtype(std::string_view text) noexcept {
  for (const auto& n : kNames)
    if (text == n.numpy || text == n.shortname || text == n.isio) return n.type;
  // A few common aliases users type.
  if (text == "float") return Dtype::f32;
  if (text == "double") return Dtype::f64;
  if (text == "half") return Dtype::f16;
  return std::nullopt;
}

}  // namespace shmlink
