#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""No source file of src/queue is much over 800 lines (issue 20: files stay readable in one
sitting; a file that grows past it is split by concern, as interface.cpp was into
interface_villas.cpp). Usage: file_lengths.py DIRECTORY [LIMIT]."""
import pathlib
import sys

directory = pathlib.Path(sys.argv[1])
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 810  # "about 800"
long = []
for f in sorted(directory.iterdir()):
    if f.suffix in (".cpp", ".hpp", ".h"):
        n = len(f.read_text(encoding="utf-8").splitlines())
        if n > limit:
            long.append(f"{f}: {n} lines, over {limit}")
print("\n".join(long) if long else f"every file of {directory} is at most {limit} lines")
sys.exit(1 if long else 0)
