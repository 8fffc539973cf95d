// SPDX-License-Identifier: MIT
// Helpers shared by the queue unit tests (tests/unit/queue/*_test.cpp).
#pragma once

#include <shmlink/error.hpp>

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace shmlink::test {

/// `text` with every occurrence of `part` removed.
inline std::string without(std::string text, const std::string& part) {
  for (auto at = text.find(part); !part.empty() && at != std::string::npos; at = text.find(part))
    text.erase(at, part.size());
  return text;
}

/// `fn` must throw Error `code` whose message names `path` and, elsewhere than in the path,
/// contains every one of `parts`.
template <class Fn>
void expect_error(Fn&& fn, Errc code, const std::string& path, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected " << shmlink::strerror(code);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.errc(), code) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << "message '" << msg << "' does not name " << path;
    const std::string rest = without(msg, path);
    for (const std::string& p : parts)
      EXPECT_NE(rest.find(p), std::string::npos) << "message '" << msg << "' lacks '" << p << "'";
  }
}

}  // namespace shmlink::test

/// expect_error() of one statement, traced by its text.
#define EXPECT_QUEUE_ERROR(stmt, code, path, ...) \
  do {                                            \
    SCOPED_TRACE(#stmt);                          \
    ::shmlink::test::expect_error([&] { (void)(stmt); }, code, path, {__VA_ARGS__}); \
  } while (0)
