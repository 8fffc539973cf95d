# SPDX-License-Identifier: MIT
"""shmlink.Interface(protocol="villas") from Python against villas_peer, the independent
VILLASnode v1.x shmem peer of the test suite (tests/process/villas_peer.cpp): a round trip in
both region modes with sequence numbers, origin timestamps and values checked both ways, and a
hostile region refused with a LayoutError that names it."""

from __future__ import annotations

import os
import subprocess

import pytest

import shmlink

EXPORTS = [(j, f"x{j}", "f64") for j in range(4)]
IMPORTS = [(j, f"y{j}", "f64") for j in range(4)]


@pytest.fixture()
def names(request):
    """A fresh pair of POSIX shared-memory names (ours, the peer's); their regions and
    semaphores are removed afterwards whatever happened."""
    base = f"/shmlink-pyvp-{os.getpid()}-{request.node.name.replace('[', '-').rstrip(']')}"
    pair = (base + "-a", base + "-b")
    yield pair
    for n in pair:
        for path in (f"/dev/shm{n}", f"/dev/shm/sem.{n[1:]}"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


@pytest.fixture()
def villas_peer():
    exe = os.environ.get("SHMLINK_VILLAS_PEER")
    if not exe:
        pytest.fail("SHMLINK_VILLAS_PEER is not set: run the Python tests through ctest")
    return exe


def start_peer(exe: str, ours: str, theirs: str, mode: str, *more: str) -> subprocess.Popen:
    """villas_peer writing `theirs` and reading `ours` (the names swapped)."""
    return subprocess.Popen(
        [exe, "--out", theirs, "--in", ours, "--mode", mode, "--queuelen", "16", "--samplelen", "4",
         "--rendezvous-timeout-ms", "15000", "--timeout-ms", "15000", *more],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("mode", ["pthread", "polling"])
def test_round_trip_with_the_villas_peer(names, villas_peer, mode):
    ours, theirs = names
    peer = start_peer(villas_peer, ours, theirs, mode, "--echo", "12")
    try:
        iface = shmlink.Interface(ours, theirs, protocol="villas", capacity=16, max_values=4,
                                  wait="polling" if mode == "polling" else "hybrid", attach_timeout=15.0,
                                  exports=EXPORTS, imports=IMPORTS)
        with iface:
            for k in range(12):  # 12 round trips through 16 pool blocks each way
                values = [k * 10 + j - 0.5 for j in range(4)]
                iface.write(values, timeout=10, sequence=300 + k, ts_origin=1_600_000_000_000_000_000 + k)
                s = iface.read(timeout=10)
                assert s.tolist() == [2 * v for v in values]  # the peer doubles every value
                assert s.sequence == 300 + k  # and echoes the sequence and ts.origin
                assert s.ts_origin == 1_600_000_000_000_000_000 + k
        out, err = peer.communicate(timeout=20)
        assert peer.returncode == 0, err
        lines = [line for line in out.splitlines() if line.startswith("seq=")]
        assert len(lines) == 12, out
        assert lines[5] == ("seq=305 len=4 flags=25 origin=1600000000.000000005 "
                            "values=49.5,50.5,51.5,52.5"), out
        assert not os.path.exists(f"/dev/shm{ours}"), "close() removes our region"
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.communicate()


def test_hostile_region_is_a_layout_error_naming_it(names, villas_peer):
    ours, theirs = names
    peer = start_peer(villas_peer, ours, theirs, "pthread", "--hostile", "cells-outside", "--close-without-drain",
                      "--drain-timeout-ms", "2000")
    try:
        iface = shmlink.Interface(ours, theirs, protocol="villas", capacity=16, max_values=4, attach_timeout=15.0,
                                  exports=EXPORTS, imports=IMPORTS)
        with pytest.raises(shmlink.LayoutError, match=theirs[1:]):
            iface.open()
        assert not iface.is_open
        peer.communicate(timeout=20)  # it ends by itself
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.communicate()
