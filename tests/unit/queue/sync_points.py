#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every atomic access of the queue says what orders it (docs/design/queues.md, "Synchronisation
points"): each acquire, release or seq_cst access in src/queue/queue.cpp names its SYNC POINT on
its line or in the comment lines right above it (or the statement it belongs to), every relaxed
access says why (a comment mentioning 'relaxed', 'hint', 'record' or 'no pair'), and every type
used with std::atomic_ref has a lock-free static_assert. Usage: sync_points.py SOURCE."""
import re
import sys


def context(lines, i):
    """Line i, the lines of its statement above it, and the comment lines right above those."""
    j = i
    while j > 0 and not re.search(r"[;{}]\s*(//.*)?$", lines[j - 1].strip()) and not lines[j - 1].strip().startswith("//"):
        j -= 1  # continuation lines of a multi-line statement
    k = j
    while k > 0 and lines[k - 1].strip().startswith(("//", "///")):
        k -= 1
    return "\n".join(lines[k:i + 1])


def main():
    path = sys.argv[1]
    lines = open(path, encoding="utf-8").read().split("\n")
    bad = []
    for i, line in enumerate(lines):
        code = line.split("//")[0]
        for order in re.findall(r"memory_order_(\w+)", code):
            around = context(lines, i)
            if order == "relaxed":
                if not re.search(r"relaxed|Relaxed|hint|record|no pair|SYNC POINT", around):
                    bad.append(f"{path}:{i + 1}: relaxed access without a reason: {line.strip()}")
            elif "atomic_signal_fence" in code:
                if "compiler" not in around:
                    bad.append(f"{path}:{i + 1}: compiler fence without a comment: {line.strip()}")
            elif "SYNC POINT" not in around and "No sync point" not in around and "no pair" not in around:
                bad.append(f"{path}:{i + 1}: {order} access names no SYNC POINT: {line.strip()}")
    text = "\n".join(lines)
    asserted = set(re.findall(r"static_assert\(std::atomic_ref<([\w:]+)>::is_always_lock_free\)", text))
    for t in ("std::uint64_t", "std::uint32_t", "std::int32_t"):
        if t not in asserted:
            bad.append(f"{path}: no static_assert(std::atomic_ref<{t}>::is_always_lock_free)")
    for b in bad:
        print(b)
    print(f"{len(bad)} problem(s) in {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
