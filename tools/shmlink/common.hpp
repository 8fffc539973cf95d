// SPDX-License-Identifier: MIT
/// @file common.hpp
/// @brief Everything the `shmlink` subcommands share, in one include: the base (cli.hpp: JSON
/// type, exit codes, the Command registry), argument parsing (args.hpp), output (output.hpp:
/// escaping, tables, JSON), streams for inspection (streams.hpp), stream rows and readers
/// (rows.hpp), watching (watch.hpp), queues and memif status files (channels.hpp), VILLAS regions
/// (villas_rows.hpp) and file owners (files.hpp). Listing a directory's channels and the SIGBUS
/// guard are the library's (include/shmlink/catalog.hpp, include/shmlink/segment.hpp).
#pragma once

#include "args.hpp"
#include "channels.hpp"
#include "cli.hpp"
#include "files.hpp"
#include "output.hpp"
#include "rows.hpp"
#include "streams.hpp"
#include "villas_rows.hpp"
#include "watch.hpp"
