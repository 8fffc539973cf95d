# SPDX-License-Identifier: MIT
"""python3 -m shmlink.plot turns 'shmlink bench --json' output into a figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def lat(mode: str, kind: str, base: float) -> dict:
    return {"mode": mode, "kind": kind, "one_way_ns": {"min": base, "p50": base * 1.2, "p90": base * 1.5,
                                                      "p99": base * 3, "p999": base * 6, "max": base * 20}}


DOC = {
    "schema": "shmlink-bench-stream/1",
    "machine": {"cpu_model": "Test CPU", "cores_online": 2},
    "latency": [lat("cacheline", "floor", 80), lat("spin", "candidate", 95),
                {"mode": "semaphore", "kind": "candidate", "one_way_ns": None, "skipped": "no cores"}],
    "bandwidth": [{"frame_bytes": 4096, "memcpy_gb_per_s": 20.0, "write_gb_per_s": 18.0,
                   "read_copy_gb_per_s": 17.0, "write_read_gb_per_s": 9.0},
                  {"frame_bytes": 4 << 20, "memcpy_gb_per_s": 10.0, "write_gb_per_s": 9.0,
                   "read_copy_gb_per_s": 9.5, "write_read_gb_per_s": 4.6}],
}


def run_plot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shmlink.plot", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_plot_writes_a_png(tmp_path):
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(DOC))
    out = tmp_path / "bench.png"
    r = run_plot(str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_of_real_bench_output(tmp_path):
    cli = os.environ.get("SHMLINK_CLI")
    if not cli:
        pytest.fail("SHMLINK_CLI is not set: run the Python tests through ctest")
    # A short real run (every latency mode, one frame size): the plot reads its document whatever
    # the run measured; BenchCli.QuickJsonRunFollowsTheDocumentedSchema checks the full --quick run.
    r = subprocess.run([cli, "bench", "stream", "--quick", "--samples", "1000", "--max-seconds", "0.2", "--sizes", "4K",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    src = tmp_path / "real.json"
    src.write_text(r.stdout)
    out = tmp_path / "real.svg"
    p = run_plot(str(src), "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_text().lstrip().startswith("<?xml")


def test_plot_rejects_what_is_not_bench_output(tmp_path):
    src = tmp_path / "x.json"
    src.write_text('{"hello": 1}')
    r = run_plot(str(src), "-o", str(tmp_path / "x.png"))
    assert r.returncode == 1
    assert "no latency results" in r.stderr and "x.json" in r.stderr
