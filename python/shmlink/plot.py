# SPDX-License-Identifier: MIT
"""Figures from ``shmlink bench --json`` output.

    python3 -m shmlink.plot BENCH.json -o out.png

Left: one-way latency percentiles (min, p50, p90, p99, p99.9, max) of every mode, log scale,
floors dashed. Right: a latency histogram per mode when the JSON carries one
(``"histogram": {"edges_ns": [...], "counts": [...]}``), else p50 bars with p99 whiskers. Below:
bandwidth against memcpy when the run measured it. Uses Debian's python3-matplotlib (Agg).
"""

import argparse as _argparse
import json as _json
import sys as _sys
from typing import Any as _Any, Optional as _Optional

__all__ = ["plot", "main", "PERCENTILES"]

PERCENTILES = [("min", 0.0), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0)]


def _latency_rows(doc: dict[str, _Any]) -> list[dict[str, _Any]]:
    """The latency entries that have numbers (skipped modes are left out)."""
    return [e for e in doc.get("latency", []) if isinstance(e.get("one_way_ns"), dict)]


def plot(doc: dict[str, _Any], out: str, title: _Optional[str] = None) -> None:
    """Writes the figure for one bench document to ``out`` (format from the extension)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _latency_rows(doc)
    if not rows:
        raise ValueError("no latency results in this JSON (was it written by 'shmlink bench --json'?)")
    bandwidth = [b for b in doc.get("bandwidth", []) if b.get("memcpy_gb_per_s")]
    nrows = 2 if bandwidth else 1
    fig, axes = plt.subplots(nrows, 2, figsize=(13, 4.8 * nrows), squeeze=False)

    ax = axes[0][0]
    xs = list(range(len(PERCENTILES)))
    for e in rows:
        ys = [e["one_way_ns"][k] for k, _ in PERCENTILES]
        floor = e.get("kind") == "floor"
        ax.plot(xs, ys, marker="o", linestyle="--" if floor else "-", label=e["mode"] + (" (floor)" if floor else ""))
    ax.set_xticks(xs, [k for k, _ in PERCENTILES])
    ax.set_yscale("log")
    ax.set_ylabel("one-way latency (ns)")
    ax.set_title("latency percentiles")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)

    ax = axes[0][1]
    with_hist = [e for e in rows if isinstance(e.get("histogram"), dict)]
    if with_hist:
        for e in with_hist:
            h = e["histogram"]
            edges, counts = h["edges_ns"], h["counts"]
            ax.stairs(counts, edges, label=e["mode"])
        ax.set_xscale("log")
        ax.set_xlabel("one-way latency (ns)")
        ax.set_ylabel("samples")
        ax.set_title("latency histogram")
        ax.legend(fontsize=8)
    else:
        names = [e["mode"] for e in rows]
        p50 = [e["one_way_ns"]["p50"] for e in rows]
        p99 = [e["one_way_ns"]["p99"] for e in rows]
        err = [[0] * len(rows), [b - a for a, b in zip(p50, p99)]]
        colors = ["0.6" if e.get("kind") == "floor" else "C0" for e in rows]
        ax.bar(names, p50, yerr=err, color=colors, capsize=3)
        ax.set_yscale("log")
        ax.set_ylabel("one-way latency (ns): p50, whisker to p99")
        ax.set_title("p50 and p99 (grey: raw floors)")
        ax.tick_params(axis="x", rotation=45)
    if bandwidth:
        ax = axes[1][0]
        sizes = [b["frame_bytes"] for b in bandwidth]
        for key, label in (("memcpy_gb_per_s", "memcpy"), ("write_gb_per_s", "write"),
                           ("read_copy_gb_per_s", "read_copy"), ("write_read_gb_per_s", "write+read")):
            if all(key in b for b in bandwidth):
                ax.plot(sizes, [b[key] for b in bandwidth], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("frame (bytes)")
        ax.set_ylabel("GB/s")
        ax.set_title("bandwidth")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        axes[1][1].axis("off")
        m = doc.get("machine", {})
        axes[1][1].text(0, 0.9, "\n".join(f"{k}: {v}" for k, v in m.items() if not isinstance(v, (dict, list))),
                        fontsize=8, va="top", family="monospace")
    machine = doc.get("machine", {})
    fig.suptitle(title or f"shmlink bench — {machine.get('cpu_model', 'unknown CPU')}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: _Optional[list[str]] = None) -> int:
    """Command line: ``python3 -m shmlink.plot BENCH.json -o out.png [--title T]``."""
    p = _argparse.ArgumentParser(prog="python3 -m shmlink.plot", description=__doc__.split("\n")[0])
    p.add_argument("json", help="output of 'shmlink bench ... --json' ('-' for standard input)")
    p.add_argument("-o", "--output", default="bench.png", help="image to write (png, svg, pdf)")
    p.add_argument("--title", default=None)
    a = p.parse_args(argv)
    try:
        with (_sys.stdin if a.json == "-" else open(a.json, encoding="utf-8")) as f:
            doc = _json.load(f)
        plot(doc, a.output, a.title)
    except (OSError, ValueError, KeyError) as e:
        print(f"shmlink.plot: {a.json}: {e}", file=_sys.stderr)
        return 1
    print(a.output)
    return 0


if __name__ == "__main__":
    _sys.exit(main())
