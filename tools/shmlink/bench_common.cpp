// SPDX-License-Identifier: MIT
// The command-line layer shared by the `shmlink bench` subcommands (bench_common.hpp).
#include "bench_common.hpp"

namespace shmlink::cli::bench {

std::string markdown_table(const Table& t) {
  std::string out = "|";
  for (const auto& h : t.headers) out += " " + h + " |";
  out += "\n|";
  for (std::size_t c = 0; c < t.headers.size(); ++c)
    out += c < t.right_aligned.size() && t.right_aligned[c] ? "---:|" : "---|";
  out += '\n';
  for (const auto& row : t.rows) {
    out += "|";
    for (std::size_t c = 0; c < t.headers.size(); ++c) out += " " + (c < row.size() ? row[c].text : "") + " |";
    out += '\n';
  }
  return out;
}

}  // namespace shmlink::cli::bench
